//! The proxy's shared state: the runtime in effect (swapped atomically on reload), upstream
//! transports, metrics and the access log.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::HeaderValue;
use sluice_config::ir::SocketIr;
use sluice_config::Snapshot;

use crate::access_log::AccessLog;
use crate::metrics::Metrics;
use crate::upstream::{PoolSettings, Transports, Upstream};

/// Identifies a socket across reloads: the address it binds and the logical listener port.
pub type SocketKey = (IpAddr, u16);

/// One snapshot with everything the data plane derived from it.
pub struct Runtime {
    pub generation: u64,
    pub snapshot: Arc<Snapshot>,
    /// Indexed by `Cluster::id`.
    pub upstreams: Vec<Arc<Upstream>>,
    /// Outlier state of AI backends, indexed by `AiBackend::id`.
    pub ai_health: Vec<crate::ai::health::Health>,
}

impl Runtime {
    pub fn socket(&self, key: SocketKey) -> Option<&Arc<SocketIr>> {
        self.snapshot
            .sockets
            .iter()
            .find(|s| s.address == key.0 && s.port == key.1)
    }
}

/// What a request handler knows about its connection, and the connection's activity (requests
/// in flight, time of the last one) that the idle timeout reads.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub https: bool,
    pub socket: SocketKey,
    /// The TLS server name the client sent, if any.
    pub sni: Option<Box<str>>,
    /// The client certificate the TLS handshake verified (mutual TLS), if any.
    pub peer_cert: Option<Arc<sluice_policy::auth::PeerCert>>,
    /// `peer`'s IP as a header value (for X-Forwarded-For), made once per connection.
    pub client_address: HeaderValue,
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` when the last request finished.
    last_done_ms: AtomicU64,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, https: bool, socket: SocketKey, sni: Option<&str>) -> ConnInfo {
        ConnInfo {
            peer,
            https,
            socket,
            sni: sni.map(|s| s.to_ascii_lowercase().into_boxed_str()),
            peer_cert: None,
            client_address: crate::headers::client_address_value(peer.ip()),
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
        }
    }

    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn request_done(&self) {
        let now = self.opened.elapsed().as_millis() as u64;
        self.last_done_ms.store(now, Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// How long the connection has had no request in flight (zero while one is).
    pub fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_done_ms.load(Ordering::Acquire));
        self.opened.elapsed().saturating_sub(last)
    }
}

pub struct Proxy {
    runtime: ArcSwap<Runtime>,
    pub(crate) transports: Transports,
    /// Monotonic reference for health timestamps.
    pub(crate) epoch: Instant,
    pub(crate) vertex_tokens: crate::ai::vertex::TokenCache,
    /// Managed API keys and JWKS fetching, across reloads.
    pub auth: crate::auth::AuthState,
    /// Token rate limits and budgets, across reloads.
    pub limits: crate::limits::RateLimiting,
    /// External processors' gRPC channels, across reloads.
    pub(crate) ext_proc: crate::pipeline::ExtProcChannels,
    pub metrics: Arc<Metrics>,
    pub access_log: AccessLog,
}

impl Proxy {
    /// A proxy with no configuration yet (generation 0); [`Proxy::install`] the first one.
    pub fn new_empty(
        metrics: Arc<Metrics>,
        access_log: AccessLog,
        pool: PoolSettings,
    ) -> std::io::Result<Arc<Proxy>> {
        let empty = Snapshot {
            sockets: Vec::new(),
            clusters: Vec::new(),
            ai_backends: Vec::new(),
            warnings: Vec::new(),
            redacted_objects: serde_json::Value::Null,
        };
        Ok(Arc::new(Proxy {
            runtime: ArcSwap::from_pointee(Runtime {
                generation: 0,
                snapshot: Arc::new(empty),
                upstreams: Vec::new(),
                ai_health: Vec::new(),
            }),
            transports: Transports::new(pool)?,
            epoch: Instant::now(),
            vertex_tokens: Default::default(),
            auth: Default::default(),
            limits: Default::default(),
            ext_proc: Default::default(),
            metrics,
            access_log,
        }))
    }

    /// Why this process cannot serve `snapshot`, if it cannot: a policy keeps its limits in
    /// Redis but no Redis URL was given.
    pub fn check(&self, snapshot: &Snapshot) -> Result<(), String> {
        if self.limits.stores.shared_configured() {
            return Ok(());
        }
        match snapshot.rate_limit_policies().iter().find(|p| p.shared) {
            Some(p) => Err(format!(
                "TokenRateLimitPolicy {}: spec.store is Redis, but the gateway runs without --redis-url (SLUICE_REDIS_URL)",
                p.name
            )),
            None => Ok(()),
        }
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Makes `snapshot` the configuration of every request that starts from now on. Requests in
    /// flight keep the runtime they loaded.
    pub fn install(self: &Arc<Self>, snapshot: Snapshot) -> Arc<Runtime> {
        let snapshot = Arc::new(snapshot);
        let previous = self.runtime.load().snapshot.jwt_providers();
        crate::auth::jwks::start(self, snapshot.jwt_providers(), &previous);
        self.limits.prepare(&snapshot.rate_limit_policies());
        let generation = self.runtime.load().generation + 1;
        let rt = Arc::new(Runtime {
            generation,
            upstreams: self.transports.upstreams(&snapshot.clusters),
            ai_health: snapshot
                .ai_backends
                .iter()
                .map(|_| Default::default())
                .collect(),
            snapshot,
        });
        self.runtime.store(rt.clone());
        self.metrics.config_generation.set(generation as i64);
        rt
    }
}
