//! Opens upstream connections: TCP (with a connect timeout and TCP_NODELAY), then TLS with the
//! cluster's SNI and trust settings. ALPN `h2` makes the pool speak HTTP/2.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use sluice_config::ir::UpstreamTls;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::dns::DnsCache;
use crate::body::BoxError;

/// Where a connector connects, whatever host the request URI names.
#[derive(Clone, Debug)]
pub enum Dial {
    Address(SocketAddr),
    /// Resolved through the DNS cache at connect time.
    Name(Arc<str>, u16),
}

impl std::fmt::Display for Dial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dial::Address(a) => write!(f, "{a}"),
            Dial::Name(n, p) => write!(f, "{n}:{p}"),
        }
    }
}

#[derive(Clone)]
pub struct Connector {
    pub dial: Dial,
    pub tls: Option<UpstreamTls>,
    pub dns: Arc<DnsCache>,
    pub connect_timeout: Duration,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<UpstreamStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (addrs, port): (Arc<[IpAddr]>, u16) = match &this.dial {
                Dial::Address(a) => (Arc::from(vec![a.ip()]), a.port()),
                Dial::Name(name, port) => (this.dns.resolve(name).await?, *port),
            };
            let tcp = connect_any(&addrs, port, this.connect_timeout).await?;
            match &this.tls {
                None => Ok(TokioIo::new(UpstreamStream::Plain(tcp))),
                Some(tls) => {
                    let connector = TlsConnector::from(tls.config.clone());
                    let stream = tokio::time::timeout(
                        this.connect_timeout,
                        connector.connect(tls.server_name.clone(), tcp),
                    )
                    .await
                    .map_err(|_| {
                        io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                    })??;
                    Ok(TokioIo::new(UpstreamStream::Tls(Box::new(stream))))
                }
            }
        })
    }
}

/// Tries the addresses in turn, starting at a random one so load spreads over DNS answers.
async fn connect_any(addrs: &[IpAddr], port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let start = if addrs.len() > 1 {
        fastrand::usize(..addrs.len())
    } else {
        0
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    for i in 0..addrs.len() {
        let addr = SocketAddr::new(addrs[(start + i) % addrs.len()], port);
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => last = e,
            Err(_) => {
                last = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect to {addr} timed out"),
                )
            }
        }
    }
    Err(last)
}

pub enum UpstreamStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        match self {
            UpstreamStream::Plain(s) => s.connected(),
            UpstreamStream::Tls(s) => {
                let (tcp, session) = s.get_ref();
                let c = tcp.connected();
                if session.alpn_protocol() == Some(b"h2") {
                    c.negotiated_h2()
                } else {
                    c
                }
            }
        }
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Plain(s) => s.is_write_vectored(),
            UpstreamStream::Tls(s) => s.is_write_vectored(),
        }
    }
}
