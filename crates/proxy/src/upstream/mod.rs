//! Upstream clusters at run time: pooled HTTP clients and endpoint choice.
//!
//! The URI of an upstream request carries the Host the backend must see (so HTTP/2 `:authority`
//! is right); where to connect is the connector's business. So each endpoint of a static cluster
//! has its own client (and pool), and an FQDN cluster has one client whose connector dials the
//! resolved addresses — replaced when the DNS answer changes.

mod connector;
pub mod dns;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::uri::{Authority, Scheme};
use http::Uri;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use sluice_config::ir::{Cluster, Endpoints, UpstreamProtocol};

pub use connector::{Connector, Dial, UpstreamStream};
use dns::DnsCache;

use crate::body::Body;

pub type Client = HyperClient<Connector, Body>;

/// Pool settings shared by every upstream client.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// DNS server for FQDN backends; `None` = the system resolver configuration.
    pub dns_server: Option<SocketAddr>,
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

/// A cluster of the current snapshot with its clients and load-balancing state.
pub struct Upstream {
    pub cluster: Arc<Cluster>,
    targets: Targets,
    next: AtomicUsize,
    scheme: Scheme,
}

enum Targets {
    /// One client per ready endpoint (empty: no endpoint, 503).
    Static(Vec<Target>),
    Dns(Box<(DnsPool, Target)>),
}

/// An endpoint with what a request needs of it, formatted once.
struct Target {
    client: Arc<Client>,
    address: Arc<str>,
    authority: Authority,
}

impl Target {
    fn new(client: Client, address: String) -> Option<Target> {
        Some(Target {
            authority: Authority::try_from(address.as_str()).ok()?,
            address: Arc::from(address),
            client: Arc::new(client),
        })
    }

    fn picked(&self, client: Arc<Client>) -> Picked {
        Picked {
            client,
            address: self.address.clone(),
            fallback_authority: self.authority.clone(),
        }
    }
}

/// The endpoint chosen for one request.
pub struct Picked {
    /// Behind an `Arc`: the client itself is several reference counts to clone.
    pub client: Arc<Client>,
    /// For logs: `ip:port`, or `name:port` for FQDN clusters.
    pub address: Arc<str>,
    /// Used as URI authority when the request has no Host to forward.
    pub fallback_authority: Authority,
}

/// A pool and the DNS answer it was opened with (`None` until the first answer arrived).
type PoolForAnswer = (Option<Arc<[IpAddr]>>, Arc<Client>);

/// Pooled connections outlive the DNS answer they were opened with. When a name resolves to a
/// different set of addresses, the cluster gets a fresh pool: new requests connect to the new
/// addresses, and the old pool closes once its in-flight requests finish.
struct DnsPool {
    hostname: String,
    cache: Arc<DnsCache>,
    make: Box<dyn Fn() -> Client + Send + Sync>,
    current: ArcSwap<PoolForAnswer>,
}

impl DnsPool {
    fn client(&self) -> Arc<Client> {
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
                    let client = Arc::new((self.make)());
                    self.current.store(Arc::new((Some(addrs), client.clone())));
                    client
                }
            },
            None => current.1.clone(),
        }
    }
}

impl Upstream {
    /// Round-robin over ready endpoints; `None` when the cluster has none (503).
    pub fn pick(&self) -> Option<Picked> {
        match &self.targets {
            Targets::Static(list) => {
                if list.is_empty() {
                    return None;
                }
                let t = &list[self.next.fetch_add(1, Ordering::Relaxed) % list.len()];
                Some(t.picked(t.client.clone()))
            }
            Targets::Dns(d) => Some(d.1.picked(d.0.client())),
        }
    }

    pub fn uri(
        &self,
        authority: Authority,
        path_and_query: &http::uri::PathAndQuery,
    ) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(authority)
            .path_and_query(path_and_query.clone())
            .build()
    }
}

/// Clients by transport and endpoint, reused across reloads so connection pools survive them.
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

    /// Upstreams for a snapshot's clusters, indexed like them. Clients no longer used are
    /// dropped (their idle connections close).
    pub fn upstreams(&self, clusters: &[Arc<Cluster>]) -> Vec<Arc<Upstream>> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let mut kept: HashMap<String, Client> = HashMap::new();
        let mut client_for = |c: &Arc<Cluster>, dial: Dial| {
            // TLS settings and protocol are in the transport key; the dial target completes it.
            let key = format!("{}|{}|{}", c.transport_key, c.name, dial);
            let client = kept
                .get(&key)
                .or_else(|| clients.get(&key))
                .cloned()
                .unwrap_or_else(|| build_client(c, dial, &self.dns, &self.settings));
            kept.insert(key, client.clone());
            client
        };
        let out = clusters
            .iter()
            .map(|c| {
                let targets = match &c.endpoints {
                    Endpoints::Static(addrs) => Targets::Static(
                        addrs
                            .iter()
                            .filter_map(|a| {
                                Target::new(client_for(c, Dial::Address(*a)), a.to_string())
                            })
                            .collect(),
                    ),
                    Endpoints::Dns { hostname, port } => {
                        let dial = Dial::Name(Arc::from(hostname.as_str()), *port);
                        let client = client_for(c, dial.clone());
                        let (dns, settings, cluster) =
                            (self.dns.clone(), self.settings.clone(), c.clone());
                        let pool = DnsPool {
                            hostname: hostname.clone(),
                            cache: self.dns.clone(),
                            make: Box::new(move || {
                                build_client(&cluster, dial.clone(), &dns, &settings)
                            }),
                            current: ArcSwap::from_pointee((None, Arc::new(client.clone()))),
                        };
                        match Target::new(client, format!("{hostname}:{port}")) {
                            Some(t) => Targets::Dns(Box::new((pool, t))),
                            None => Targets::Static(Vec::new()),
                        }
                    }
                };
                Arc::new(Upstream {
                    cluster: c.clone(),
                    targets,
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

fn build_client(c: &Cluster, dial: Dial, dns: &Arc<DnsCache>, settings: &PoolSettings) -> Client {
    let connector = Connector {
        dial,
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

impl Transports {
    /// A client for one endpoint named by a credential (e.g. an OAuth token URI): resolved with
    /// the gateway's DNS cache, TLS with the public roots for `https`.
    pub fn endpoint_client(&self, uri: &Uri) -> Result<Client, String> {
        let host = uri
            .host()
            .ok_or("no host")?
            .trim_matches(|c| c == '[' || c == ']');
        let https = uri.scheme() == Some(&Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            Some(sluice_config::compile::public_client_tls(host)?)
        } else {
            None
        };
        let dial = match host.parse::<IpAddr>() {
            Ok(ip) => Dial::Address(SocketAddr::new(ip, port)),
            Err(_) => Dial::Name(Arc::from(host), port),
        };
        let connector = Connector {
            dial,
            tls,
            dns: self.dns.clone(),
            connect_timeout: self.settings.connect_timeout,
        };
        let mut b = HyperClient::builder(TokioExecutor::new());
        b.pool_timer(TokioTimer::new()).set_host(false);
        Ok(b.build(connector))
    }
}
