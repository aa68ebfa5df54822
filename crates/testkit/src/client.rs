//! A deliberately dumb HTTP client for tests.
//!
//! Gateway tests must see exactly what the gateway answered: no redirect following, no
//! connection reuse hiding per-connection behaviour, no automatic headers beyond `Host`. Each
//! request therefore opens its own connection to a given socket address (the gateway's listener)
//! while carrying an arbitrary `Host`/`:authority` and, for TLS, an arbitrary SNI — the same
//! decoupling of "where to connect" from "which virtual host" that the conformance suite uses.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use crate::BoxError;

/// Which HTTP version to speak on a cleartext connection. Over TLS the negotiated ALPN decides
/// (`h2` → HTTP/2, anything else → HTTP/1.1), so choose ALPN in the `ClientConfig` instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HttpVersion {
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c).
    Http2,
}

/// TLS settings for a request: trust/ALPN come from the config, SNI from `server_name`.
#[derive(Clone)]
pub struct ClientTls {
    pub config: Arc<ClientConfig>,
    pub server_name: String,
}

/// One request, built with chained setters and sent with [`ClientRequest::send`].
#[derive(Clone)]
pub struct ClientRequest {
    pub method: Method,
    /// Request target: path plus optional `?query`.
    pub path: String,
    /// `Host` header (HTTP/1.1) or `:authority` (HTTP/2); `None` or empty uses the socket
    /// address, like Go's client does for an empty `Request.Host`.
    pub host: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub version: HttpVersion,
    pub tls: Option<ClientTls>,
    /// Whole-exchange deadline (connect, TLS, request, full body).
    pub timeout: Duration,
}

impl ClientRequest {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            host: None,
            headers: Vec::new(),
            body: Bytes::new(),
            version: HttpVersion::Http1,
            tls: None,
            timeout: Duration::from_secs(10),
        }
    }

    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Add a header (repeat the call for multiple values).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub fn version(mut self, version: HttpVersion) -> Self {
        self.version = version;
        self
    }

    /// Connect with TLS, sending `server_name` as SNI and verifying the certificate for it.
    pub fn tls(mut self, config: Arc<ClientConfig>, server_name: impl Into<String>) -> Self {
        self.tls = Some(ClientTls {
            config,
            server_name: server_name.into(),
        });
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Send over a fresh connection to `addr` and read the whole response.
    ///
    /// The future owns a copy of the request (`'static`), so it can be handed straight to
    /// `tokio::spawn` even when built from a temporary.
    pub fn send(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = Result<ClientResponse, BoxError>> + Send + 'static {
        let request = self.clone();
        async move {
            match tokio::time::timeout(request.timeout, request.send_inner(addr)).await {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "{} {} to {addr} timed out after {:?}",
                    request.method, request.path, request.timeout
                )
                .into()),
            }
        }
    }

    async fn send_inner(&self, addr: SocketAddr) -> Result<ClientResponse, BoxError> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let authority = match &self.host {
            Some(h) if !h.is_empty() => h.clone(),
            _ => addr.to_string(),
        };
        match &self.tls {
            None => {
                let h2 = self.version == HttpVersion::Http2;
                self.exchange(TokioIo::new(tcp), h2, "http", &authority)
                    .await
            }
            Some(tls) => {
                let name = ServerName::try_from(tls.server_name.clone())?;
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config));
                let stream = connector.connect(name, tcp).await?;
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                self.exchange(TokioIo::new(stream), h2, "https", &authority)
                    .await
            }
        }
    }

    async fn exchange<I>(
        &self,
        io: I,
        h2: bool,
        scheme: &str,
        authority: &str,
    ) -> Result<ClientResponse, BoxError>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let mut builder = Request::builder().method(self.method.clone());
        if h2 {
            builder = builder.uri(format!("{scheme}://{authority}{}", self.path));
        } else {
            builder = builder
                .uri(self.path.as_str())
                .header(http::header::HOST, authority);
        }
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), HeaderValue::from_str(value)?);
        }
        let request = builder.body(Full::new(self.body.clone()))?;

        let response = if h2 {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            // The connection task ends by itself once `sender` is dropped.
            tokio::spawn(async move {
                let _ = conn.await;
            });
            sender.send_request(request).await?
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
                .title_case_headers(true)
                .handshake(io)
                .await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            sender.send_request(request).await?
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(ClientResponse {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        })
    }
}

/// A fully read response.
#[derive(Clone, Debug)]
pub struct ClientResponse {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ClientResponse {
    /// All values of a header joined with `,` (how the conformance suite compares them).
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<String> = self
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    }

    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, BoxError> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}
