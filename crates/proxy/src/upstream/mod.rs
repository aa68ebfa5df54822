//! Upstream clusters at run time: a pooled HTTP client per transport, endpoint choice.

mod connector;
pub mod dns;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
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
    /// DNS server for FQDN backends; `None` = the system resolver configuration.
    pub dns_server: Option<std::net::SocketAddr>,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle_per_endpoint: usize,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            dns_server: None,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(90),
            max_idle_per_endpoint: 1024,
        }
    }
}

/// A cluster of the current snapshot with its client and load-balancing state.
pub struct Upstream {
    pub cluster: Arc<Cluster>,
    client: Client,
    /// For FQDN clusters: the pool follows DNS (see [`Upstream::client`]).
    dns: Option<DnsPool>,
    next: AtomicUsize,
    scheme: Scheme,
}

/// Pooled connections outlive the DNS answer they were opened with. When a name resolves to a
/// different set of addresses, the cluster gets a fresh pool: new requests connect to the new
/// addresses, and the old pool closes once its in-flight requests finish.
struct DnsPool {
    hostname: String,
    cache: Arc<DnsCache>,
    make: Box<dyn Fn() -> Client + Send + Sync>,
    current: ArcSwap<(Option<Arc<[IpAddr]>>, Client)>,
}

impl DnsPool {
    fn client(&self) -> Client {
        let current = self.current.load();
        match self.cache.peek(&self.hostname) {
            Some(addrs) => match &current.0 {
                Some(seen) if **seen == *addrs => current.1.clone(),
                // First answer: the pool was opened with it.
                None => {
                    let client = current.1.clone();
                    self.current.store(Arc::new((Some(addrs), client.clone())));
                    client
                }
                Some(_) => {
                    tracing::info!(host = %self.hostname, addresses = ?addrs, "DNS answer changed; new connection pool");
                    let client = (self.make)();
                    self.current.store(Arc::new((Some(addrs), client.clone())));
                    client
                }
            },
            None => current.1.clone(),
        }
    }
}

impl Upstream {
    /// The pooled client to send this request with.
    pub fn client(&self) -> Client {
        match &self.dns {
            Some(d) => d.client(),
            None => self.client.clone(),
        }
    }

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
            dns: DnsCache::new(settings.dns_server)?,
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
                    .unwrap_or_else(|| build_client(c, &self.dns, &self.settings));
                kept.insert(key, client.clone());
                let dns = match &c.endpoints {
                    Endpoints::Dns { hostname, .. } => {
                        let (dns, settings, cluster) =
                            (self.dns.clone(), self.settings.clone(), c.clone());
                        Some(DnsPool {
                            hostname: hostname.clone(),
                            cache: self.dns.clone(),
                            make: Box::new(move || build_client(&cluster, &dns, &settings)),
                            current: ArcSwap::from_pointee((None, client.clone())),
                        })
                    }
                    Endpoints::Static(_) => None,
                };
                Arc::new(Upstream {
                    cluster: c.clone(),
                    client,
                    dns,
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
}

fn build_client(c: &Cluster, dns: &Arc<DnsCache>, settings: &PoolSettings) -> Client {
    let connector = Connector {
        tls: c.tls.clone(),
        dns: dns.clone(),
        connect_timeout: settings.connect_timeout,
    };
    let mut b = HyperClient::builder(TokioExecutor::new());
    b.pool_idle_timeout(settings.idle_timeout)
        .pool_max_idle_per_host(settings.max_idle_per_endpoint)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .set_host(false)
        .http2_only(c.protocol == UpstreamProtocol::Http2 && c.tls.is_none());
    b.build(connector)
}
