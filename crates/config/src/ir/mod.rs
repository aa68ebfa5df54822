//! The runtime model (IR): everything the data plane reads, compiled from one object set and
//! swapped whole. Nothing here refers back to the objects; strings the hot path compares are
//! pre-lowercased, regexes pre-compiled, references pre-resolved.

mod ai;
mod describe;
mod host;
mod payload;
mod ratelimit;
mod route;
mod upstream;

use std::net::IpAddr;
use std::sync::Arc;

pub use ai::*;
pub use host::HostPattern;
pub use payload::*;
pub use ratelimit::*;
pub use route::*;
pub use upstream::*;

use crate::error::ConfigError;

/// One compiled configuration.
#[derive(Debug)]
pub struct Snapshot {
    /// Every bound socket: a (bind address, port) with the listeners sharing it.
    pub sockets: Vec<Arc<SocketIr>>,
    /// Every upstream cluster referenced by a route, indexed by `Cluster::id`.
    pub clusters: Vec<Arc<Cluster>>,
    /// Every `AIBackend`, indexed by `AiBackend::id`.
    pub ai_backends: Vec<Arc<AiBackend>>,
    /// Non-fatal findings (unknown kinds, routes that attach to nothing, ...).
    pub warnings: Vec<ConfigError>,
    /// The objects as JSON with secret payloads removed, for the admin server's `/config`.
    pub redacted_objects: serde_json::Value,
}

impl Snapshot {
    /// Every access policy in effect, each once.
    pub fn access_policies(&self) -> Vec<Arc<sluice_policy::auth::AccessPolicy>> {
        let mut out: Vec<Arc<sluice_policy::auth::AccessPolicy>> = Vec::new();
        let mut add = |p: &Arc<sluice_policy::auth::AccessPolicy>| {
            if !out.iter().any(|o| Arc::ptr_eq(o, p)) {
                out.push(p.clone());
            }
        };
        for l in self.sockets.iter().flat_map(|s| &s.listeners) {
            if let Some(p) = &l.access {
                add(p);
            }
            for e in l.virtual_hosts.iter().flat_map(|v| &v.entries) {
                if let Some(p) = &e.rule.access {
                    add(p);
                }
            }
        }
        out
    }

    /// Every token rate-limit policy in effect (on Gateways, routes and AI backends), each once.
    pub fn rate_limit_policies(&self) -> Vec<Arc<RateLimits>> {
        let mut out: Vec<Arc<RateLimits>> = Vec::new();
        let mut add = |p: &Arc<RateLimits>| {
            if !out.iter().any(|o| Arc::ptr_eq(o, p)) {
                out.push(p.clone());
            }
        };
        for l in self.sockets.iter().flat_map(|s| &s.listeners) {
            if let Some(p) = &l.rate_limits {
                add(p);
            }
            for e in l.virtual_hosts.iter().flat_map(|v| &v.entries) {
                if let Some(p) = &e.rule.rate_limits {
                    add(p);
                }
            }
        }
        for b in &self.ai_backends {
            if let Some(p) = &b.rate_limits {
                add(p);
            }
        }
        out
    }

    /// Every JWT provider of every access policy in effect.
    pub fn jwt_providers(&self) -> Vec<Arc<sluice_policy::auth::access::JwtProvider>> {
        self.access_policies()
            .iter()
            .flat_map(|p| p.jwt.iter().cloned())
            .collect()
    }
}

/// Listeners that share one socket. A port is either plain HTTP or HTTPS for all its listeners.
#[derive(Debug)]
pub struct SocketIr {
    /// Address to bind: a Gateway's `spec.addresses` IP, or the process-wide bind address.
    pub address: IpAddr,
    /// The logical port from the Gateway (used in redirects); the bound port may be offset.
    pub port: u16,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Most specific hostname first; the request's host picks the first that matches.
    pub listeners: Vec<Arc<ListenerIr>>,
}

impl SocketIr {
    /// The listener serving `host` (already lowercased, without port), if any.
    pub fn listener_for(&self, host: &str) -> Option<&Arc<ListenerIr>> {
        self.listeners.iter().find(|l| l.hostname.matches(host))
    }
}

#[derive(Debug)]
pub struct ListenerIr {
    /// `namespace/name` of the Gateway.
    pub gateway: Arc<str>,
    pub name: Arc<str>,
    pub hostname: HostPattern,
    pub port: u16,
    pub https: bool,
    /// Set when the Gateway serves AI traffic (an `AIPolicy` targets it, or a route attached to
    /// it sends to an `AIBackend`): inference requests are then parsed before routing.
    pub ai: Option<Arc<AiListener>>,
    /// The Gateway's `AccessPolicy`; a route's own policy replaces it.
    pub access: Option<Arc<sluice_policy::auth::AccessPolicy>>,
    /// The Gateway's `TokenRateLimitPolicy`; a route's own replaces it.
    pub rate_limits: Option<Arc<RateLimits>>,
    /// Whether some rate-limit policy a request on this listener can meet (the Gateway's, a
    /// route's, an AI backend's) counts input tokens: the intake then counts them as it parses.
    pub counts_tokens: bool,
    /// The Gateway's PreRouting processors: run before route matching.
    pub pre_routing: Option<Arc<Pipeline>>,
    /// The Gateway's PostRouting processors: run before the route's own.
    pub post_routing: Option<Arc<Pipeline>>,
    /// Most specific host first (exact, then longer wildcards, then any).
    pub virtual_hosts: Vec<VirtualHost>,
}

impl ListenerIr {
    pub fn virtual_host_for(&self, host: &str) -> Option<&VirtualHost> {
        self.virtual_hosts.iter().find(|v| v.host.matches(host))
    }
}

/// Every route rule match that applies to one hostname, in Gateway API precedence order.
#[derive(Debug)]
pub struct VirtualHost {
    pub host: HostPattern,
    pub entries: Vec<RouteEntry>,
}
