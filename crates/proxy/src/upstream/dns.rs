//! A DNS cache for FQDN backends: answers from memory, re-resolves in the background when a
//! record's TTL runs out, and keeps serving the last good answer while it does (or if DNS fails).

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;

/// TTLs are clamped so a zero TTL cannot cause a lookup storm and a huge one cannot pin an
/// address forever.
const MIN_TTL: Duration = Duration::from_secs(1);
const MAX_TTL: Duration = Duration::from_secs(300);

pub struct DnsCache {
    resolver: TokioResolver,
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Clone)]
struct Entry {
    addrs: Arc<[IpAddr]>,
    expires: Instant,
    refreshing: bool,
}

impl DnsCache {
    /// Uses `server` (UDP/TCP on that address) when given, else the system configuration
    /// (/etc/resolv.conf, /etc/hosts).
    pub fn new(server: Option<std::net::SocketAddr>) -> io::Result<Arc<Self>> {
        use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
        use hickory_resolver::name_server::TokioConnectionProvider;
        let resolver = match server {
            Some(addr) => {
                let group = NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true);
                let config = ResolverConfig::from_parts(None, Vec::new(), group);
                TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                    .build()
            }
            None => match TokioResolver::builder_tokio() {
                Ok(b) => b.build(),
                Err(e) => {
                    // No fallback to public resolvers: where names resolve is configuration.
                    tracing::warn!(error = %e, "cannot read the system DNS configuration; FQDN backends will not resolve (use --dns-server)");
                    TokioResolver::builder_with_config(
                        ResolverConfig::from_parts(None, Vec::new(), NameServerConfigGroup::new()),
                        TokioConnectionProvider::default(),
                    )
                    .build()
                }
            },
        };
        Ok(Arc::new(DnsCache {
            resolver,
            entries: Mutex::new(HashMap::new()),
        }))
    }

    /// Addresses for `host`. Only the first lookup of a name waits on DNS; later ones are served
    /// from the cache while a refresh runs in the background.
    pub async fn resolve(self: &Arc<Self>, host: &str) -> io::Result<Arc<[IpAddr]>> {
        let now = Instant::now();
        let cached = self.lock().get(host).cloned();
        match cached {
            Some(e) if e.expires > now => Ok(e.addrs),
            Some(e) => {
                if !e.refreshing {
                    if let Some(entry) = self.lock().get_mut(host) {
                        entry.refreshing = true;
                    }
                    let this = self.clone();
                    let name = host.to_string();
                    tokio::spawn(async move {
                        let _ = this.lookup(&name).await;
                    });
                }
                Ok(e.addrs)
            }
            None => self.lookup(host).await,
        }
    }

    /// The cached answer for `host` without waiting; starts a background refresh when it has
    /// expired. `None` until the first lookup completed.
    pub fn peek(self: &Arc<Self>, host: &str) -> Option<Arc<[IpAddr]>> {
        let mut entries = self.lock();
        let entry = entries.get_mut(host)?;
        if entry.expires <= Instant::now() && !entry.refreshing {
            entry.refreshing = true;
            let this = self.clone();
            let name = host.to_string();
            tokio::spawn(async move {
                let _ = this.lookup(&name).await;
            });
        }
        Some(entry.addrs.clone())
    }

    async fn lookup(&self, host: &str) -> io::Result<Arc<[IpAddr]>> {
        match self.resolver.lookup_ip(host).await {
            Ok(found) => {
                let addrs: Arc<[IpAddr]> = found.iter().collect::<Vec<_>>().into();
                if addrs.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{host}: no addresses"),
                    ));
                }
                let ttl = found
                    .valid_until()
                    .saturating_duration_since(Instant::now())
                    .clamp(MIN_TTL, MAX_TTL);
                self.lock().insert(
                    host.to_string(),
                    Entry {
                        addrs: addrs.clone(),
                        expires: Instant::now() + ttl,
                        refreshing: false,
                    },
                );
                Ok(addrs)
            }
            Err(e) => {
                let mut entries = self.lock();
                if let Some(entry) = entries.get_mut(host) {
                    // Keep the stale answer; try again after the minimum TTL.
                    entry.refreshing = false;
                    entry.expires = Instant::now() + MIN_TTL;
                    return Ok(entry.addrs.clone());
                }
                Err(io::Error::other(format!(
                    "DNS lookup of {host} failed: {e}"
                )))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}
