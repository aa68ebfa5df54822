//! Upstream clusters at run time: a pooled HTTP client per transport, endpoint choice.

mod connector;
pub mod dns;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::Uri;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use sluice_config::ir::{Cluster, Endpoints, UpstreamProtocol};

pub use connector::{Connector, UpstreamStream};
use dns::DnsCache;

use crate::body::Body;

pub type Client = HyperClient<Connector, Body>;

/// Pool settings shared by every upstream client.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle_per_endpoint: usize,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(90),
            max_idle_per_endpoint: 1024,
        }
    }
}

/// A cluster of the current snapshot with its client and load-balancing state.
pub struct Upstream {
    pub cluster: Arc<Cluster>,
    pub client: Client,
    next: AtomicUsize,
    scheme: Scheme,
}

/// Where one request goes.
pub enum Endpoint {
    Addr(SocketAddr),
    Name(Arc<str>),
}

impl Upstream {
    /// Round-robin over ready endpoints; `None` when the cluster has none (503).
    pub fn pick(&self) -> Option<Authority> {
        match &self.cluster.endpoints {
            Endpoints::Static(addrs) => {
                if addrs.is_empty() {
                    return None;
                }
                let i = self.next.fetch_add(1, Ordering::Relaxed) % addrs.len();
                Authority::try_from(addrs[i].to_string()).ok()
            }
            Endpoints::Dns { hostname, port } => {
                Authority::try_from(format!("{hostname}:{port}")).ok()
            }
        }
    }

    pub fn uri(&self, authority: Authority, path_and_query: &str) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(authority)
            .path_and_query(path_and_query)
            .build()
    }

    pub fn speaks_http1(&self) -> bool {
        self.cluster.protocol != UpstreamProtocol::Http2
    }
}

/// Clients by transport key, reused across reloads so connection pools survive them.
pub struct Transports {
    dns: Arc<DnsCache>,
    settings: PoolSettings,
    clients: Mutex<HashMap<String, Client>>,
}

impl Transports {
    pub fn new(settings: PoolSettings) -> std::io::Result<Self> {
        Ok(Transports {
            dns: DnsCache::new()?,
            settings,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// Upstreams for a snapshot's clusters, indexed like them. Clients of transports no longer
    /// used are dropped (their idle connections close).
    pub fn upstreams(&self, clusters: &[Arc<Cluster>]) -> Vec<Arc<Upstream>> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let mut kept: HashMap<String, Client> = HashMap::new();
        let out = clusters
            .iter()
            .map(|c| {
                // TLS clusters keep a client of their own: the connector carries their SNI.
                let key = if c.tls.is_some() {
                    format!("{}|{}", c.transport_key, c.name)
                } else {
                    c.transport_key.clone()
                };
                let client = kept
                    .get(&key)
                    .or_else(|| clients.get(&key))
                    .cloned()
                    .unwrap_or_else(|| self.client(c));
                kept.insert(key, client.clone());
                Arc::new(Upstream {
                    cluster: c.clone(),
                    client,
                    next: AtomicUsize::new(fastrand::usize(..1024)),
                    scheme: if c.tls.is_some() {
                        Scheme::HTTPS
                    } else {
                        Scheme::HTTP
                    },
                })
            })
            .collect();
        *clients = kept;
        out
    }

    fn client(&self, c: &Cluster) -> Client {
        let connector = Connector {
            tls: c.tls.clone(),
            dns: self.dns.clone(),
            connect_timeout: self.settings.connect_timeout,
        };
        let mut b = HyperClient::builder(TokioExecutor::new());
        b.pool_idle_timeout(self.settings.idle_timeout)
            .pool_max_idle_per_host(self.settings.max_idle_per_endpoint)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .set_host(false)
            .http2_only(c.protocol == UpstreamProtocol::Http2 && c.tls.is_none());
        b.build(connector)
    }
}
