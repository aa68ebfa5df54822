//! The per-processor client: one lazily connected HTTP/2 channel, shared by every exchange.
//!
//! A tonic `Channel` multiplexes all calls over one connection and reconnects by itself after
//! the processor goes away, so one `ExtProcClient` per configured processor is all the gateway
//! needs; cloning it is cheap and shares the connection.

use std::time::Duration;

use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::ProcessingRequest;
use http::uri::{Scheme, Uri};
use tokio::sync::mpsc;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use crate::error::ExtProcError;
use crate::session::{Session, SEND_QUEUE};

/// How long an idle HTTP/2 connection may go unverified. Pings find a processor that vanished
/// without closing its socket (a killed pod) before a request has to.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where an external processor listens.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `http://host:port` (plaintext HTTP/2) or `https://host:port` (TLS).
    pub uri: Uri,
    /// The `:authority` to send instead of the URI's (e.g. a Kubernetes service name while
    /// connecting to an IP).
    pub authority: Option<String>,
    /// TLS settings; `Some` turns TLS on even for an `http://` URI.
    pub tls: Option<TlsSettings>,
}

/// TLS towards the processor.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// PEM bundle of the CAs to trust; `None` trusts the Web PKI roots.
    pub ca_pem: Option<String>,
    /// The name to verify and send as SNI; `None` uses the URI's host.
    pub sni: Option<String>,
    /// A complete rustls client configuration (the gateway's Backend TLS: its CA bundle, client
    /// certificate and verification settings). When set, it replaces `ca_pem`, and `sni` must
    /// be set; its ALPN is made `h2`, which gRPC needs.
    pub rustls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// A client for one external processor. Clone it freely: clones share the channel.
#[derive(Debug, Clone)]
pub struct ExtProcClient {
    grpc: ExternalProcessorClient<Channel>,
}

impl ExtProcClient {
    /// Builds the client without connecting: the first session connects, and a failed
    /// connection is retried by the next one. Must run inside a Tokio runtime (the channel
    /// starts a small worker task).
    pub fn new(endpoint: Endpoint, connect_timeout: Duration) -> Result<Self, ExtProcError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ExtProcError::InvalidEndpoint(
                "the client must be created inside a Tokio runtime".to_owned(),
            ));
        }
        if let Some(settings) = &endpoint.tls {
            if let Some(config) = &settings.rustls {
                return Self::with_rustls(&endpoint, config.clone(), settings, connect_timeout);
            }
        }
        let tls = endpoint.tls.is_some() || endpoint.uri.scheme() == Some(&Scheme::HTTPS);
        let uri = normalise_uri(&endpoint.uri, tls)?;
        let mut builder = tonic::transport::Endpoint::from(uri.clone())
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT);
        if let Some(authority) = &endpoint.authority {
            let origin = Uri::builder()
                .scheme(uri.scheme_str().unwrap_or("http"))
                .authority(authority.as_str())
                .path_and_query("/")
                .build()
                .map_err(|e| {
                    ExtProcError::InvalidEndpoint(format!("authority {authority:?}: {e}"))
                })?;
            builder = builder.origin(origin);
        }
        if tls {
            let settings = endpoint.tls.unwrap_or_default();
            let mut config = ClientTlsConfig::new();
            config = match &settings.ca_pem {
                Some(pem) => config.ca_certificate(Certificate::from_pem(pem)),
                None => config.with_webpki_roots(),
            };
            if let Some(sni) = settings.sni {
                config = config.domain_name(sni);
            }
            builder = builder
                .tls_config(config)
                .map_err(|e| ExtProcError::InvalidEndpoint(format!("TLS settings: {e}")))?;
        }
        Ok(ExtProcClient {
            grpc: ExternalProcessorClient::new(builder.connect_lazy()),
        })
    }

    /// A channel whose connections this crate makes: TCP, then TLS with the given rustls
    /// configuration (tonic's own TLS takes only a CA bundle). tonic sees a plaintext `http`
    /// endpoint over an already encrypted stream; requests still say `https`.
    fn with_rustls(
        endpoint: &Endpoint,
        config: std::sync::Arc<rustls::ClientConfig>,
        settings: &TlsSettings,
        connect_timeout: Duration,
    ) -> Result<Self, ExtProcError> {
        let sni = settings.sni.as_deref().ok_or_else(|| {
            ExtProcError::InvalidEndpoint(
                "TLS with a rustls configuration needs a server name".into(),
            )
        })?;
        let server_name = rustls::pki_types::ServerName::try_from(sni.to_owned())
            .map_err(|e| ExtProcError::InvalidEndpoint(format!("server name {sni:?}: {e}")))?;
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let uri = normalise_uri(&endpoint.uri, false)?;
        let authority = endpoint
            .authority
            .clone()
            .or_else(|| uri.authority().map(|a| a.to_string()))
            .unwrap_or_default();
        let origin = Uri::builder()
            .scheme("https")
            .authority(authority.as_str())
            .path_and_query("/")
            .build()
            .map_err(|e| ExtProcError::InvalidEndpoint(format!("authority {authority:?}: {e}")))?;
        let builder = tonic::transport::Endpoint::from(uri)
            .origin(origin)
            .connect_timeout(connect_timeout)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT);
        let connector = crate::tls::RustlsConnector::new(std::sync::Arc::new(config), server_name);
        Ok(ExtProcClient {
            grpc: ExternalProcessorClient::new(builder.connect_with_connector_lazy(connector)),
        })
    }

    /// Opens the stream for one HTTP exchange, with `metadata` as gRPC request metadata
    /// (e.g. an authorization header for the processor). No I/O happens until the first
    /// phase message: see [`Session`].
    pub fn open(&self, metadata: &[(&str, &str)]) -> Result<Session, ExtProcError> {
        let (tx, mut rx) = mpsc::channel::<ProcessingRequest>(SEND_QUEUE);
        let outbound = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let mut request = tonic::Request::new(outbound);
        for (key, value) in metadata {
            let key = MetadataKey::from_bytes(key.as_bytes())
                .map_err(|_| ExtProcError::BadHeader(format!("metadata key {key:?}")))?;
            let value = MetadataValue::try_from(*value)
                .map_err(|_| ExtProcError::BadHeader(format!("metadata value of {key}")))?;
            request.metadata_mut().append(key, value);
        }
        let mut grpc = self.grpc.clone();
        let call = Box::pin(async move { grpc.process(request).await });
        Ok(Session::new(tx, call))
    }
}

/// Checks the URI names a host and nothing else, and sets the scheme TLS implies.
fn normalise_uri(uri: &Uri, tls: bool) -> Result<Uri, ExtProcError> {
    let Some(authority) = uri.authority() else {
        return Err(ExtProcError::InvalidEndpoint(format!("{uri} has no host")));
    };
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(ExtProcError::InvalidEndpoint(format!(
                "{uri}: the scheme must be http or https"
            )))
        }
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(ExtProcError::InvalidEndpoint(format!(
            "{uri}: a processor address has no path"
        )));
    }
    Uri::builder()
        .scheme(if tls { "https" } else { "http" })
        .authority(authority.clone())
        .path_and_query("/")
        .build()
        .map_err(|e| ExtProcError::InvalidEndpoint(format!("{uri}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(uri: &str) -> Endpoint {
        Endpoint {
            uri: uri.parse().unwrap(),
            authority: None,
            tls: None,
        }
    }

    #[test]
    fn outside_a_runtime_new_is_an_error_not_a_panic() {
        let result = ExtProcClient::new(endpoint("http://127.0.0.1:1"), Duration::from_secs(1));
        assert!(
            matches!(result, Err(ExtProcError::InvalidEndpoint(_))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn endpoint_must_be_a_bare_http_or_https_address() {
        for uri in [
            "ftp://127.0.0.1:1",
            "http://127.0.0.1:1/some/path",
            "/relative",
        ] {
            let result = ExtProcClient::new(endpoint(uri), Duration::from_secs(1));
            assert!(
                matches!(result, Err(ExtProcError::InvalidEndpoint(_))),
                "{uri}: {result:?}"
            );
        }
        assert!(ExtProcClient::new(endpoint("http://127.0.0.1:1"), Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn tls_settings_switch_the_scheme_to_https() {
        let uri: Uri = "http://proc.internal:9002".parse().unwrap();
        assert_eq!(
            normalise_uri(&uri, true).unwrap().to_string(),
            "https://proc.internal:9002/"
        );
        assert_eq!(
            normalise_uri(&uri, false).unwrap().to_string(),
            "http://proc.internal:9002/"
        );
    }

    #[tokio::test]
    async fn invalid_metadata_is_a_bad_header() {
        let client =
            ExtProcClient::new(endpoint("http://127.0.0.1:1"), Duration::from_secs(1)).unwrap();
        let result = client.open(&[("bad key", "v")]);
        assert!(
            matches!(result, Err(ExtProcError::BadHeader(_))),
            "{result:?}"
        );
        let result = client.open(&[("x-ok", "line\nbreak")]);
        assert!(
            matches!(result, Err(ExtProcError::BadHeader(_))),
            "{result:?}"
        );
    }
}
