//! Upstream clusters: where a backend reference sends traffic, and how (protocol, TLS).

use std::net::SocketAddr;
use std::sync::Arc;

/// A destination the proxy keeps connection pools for.
#[derive(Debug)]
pub struct Cluster {
    /// Index in `Snapshot::clusters`.
    pub id: usize,
    /// Human name for logs and metrics, e.g. `Service default/api:8080`.
    pub name: Arc<str>,
    pub endpoints: Endpoints,
    pub protocol: UpstreamProtocol,
    pub tls: Option<UpstreamTls>,
    /// Identifies the transport (protocol + TLS settings) so pools survive reloads that do not
    /// change it.
    pub transport_key: String,
}

#[derive(Debug, Clone)]
pub enum Endpoints {
    /// Ready endpoint addresses (Service via EndpointSlices, or Backend of type IP).
    Static(Vec<SocketAddr>),
    /// A DNS name resolved (and re-resolved on TTL) by the proxy.
    Dns { hostname: String, port: u16 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    Http1,
    /// HTTP/2: prior knowledge in clear text (h2c), ALPN h2 over TLS.
    Http2,
    /// Over TLS: ALPN offers h2 and http/1.1 and the server picks. In clear text: HTTP/1.1.
    Auto,
}

#[derive(Debug, Clone)]
pub struct UpstreamTls {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: rustls::pki_types::ServerName<'static>,
}
