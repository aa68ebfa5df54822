//! A generic upstream server: one accept loop, any async handler.
//!
//! Tests need many kinds of backends (echo, slow, streaming, huge bodies, WebSocket, flaky).
//! They all share the same plumbing — bind, accept, optional TLS, HTTP/1.1 + h2c auto-detection,
//! upgrades, shutdown — so that lives here once and each test only writes the handler.
//!
//! The server speaks HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on the same port, like the
//! Gateway API echo backend does on its two ports; with TLS it offers ALPN `h2` and `http/1.1`
//! (whatever the given `rustls::ServerConfig` advertises). Dropping the [`Upstream`] stops the
//! accept loop and aborts every open connection, so a test never leaks servers into the next.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::BoxError;

/// Response body type for handlers: boxed so that full, empty and streaming bodies mix freely.
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// A complete in-memory body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A streaming body fed through the returned sender; dropping the sender ends the body and
/// `Sender::abort` ends it with an error (e.g. to simulate an upstream reset mid-body).
pub fn channel(buffer: usize) -> (http_body_util::channel::Sender<Bytes, BoxError>, Body) {
    let (sender, body) = http_body_util::channel::Channel::new(buffer);
    (sender, body.boxed())
}

/// Facts about the connection a request arrived on, inserted into every request's extensions
/// so handlers can assert on peer address, SNI or negotiated ALPN.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: Option<TlsInfo>,
}

/// TLS facts of a connection (see [`ConnInfo`]).
#[derive(Clone, Debug)]
pub struct TlsInfo {
    /// SNI sent by the client, if any.
    pub server_name: Option<String>,
    /// Negotiated ALPN protocol, if any (e.g. `h2`).
    pub alpn: Option<String>,
    /// `TLSv1.2` / `TLSv1.3`.
    pub version: Option<String>,
}

/// Configures where and how an [`Upstream`] listens.
#[derive(Clone)]
pub struct UpstreamBuilder {
    bind: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for UpstreamBuilder {
    fn default() -> Self {
        Self {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            tls: None,
        }
    }
}

impl UpstreamBuilder {
    /// Listen on exactly this address (port 0 = ephemeral).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Listen on this IP with an ephemeral port.
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.bind = SocketAddr::new(ip, 0);
        self
    }

    /// Terminate TLS with this config (see `certs::LeafCert::server_config`).
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Bind and start serving `handler` for every request.
    pub async fn spawn<H, F>(self, handler: H) -> io::Result<Upstream>
    where
        H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
        F: Future<Output = Response<Body>> + Send + 'static,
    {
        let listener = TcpListener::bind(self.bind).await?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(ServerState {
            handler,
            tls: self.tls.map(tokio_rustls::TlsAcceptor::from),
        });
        let task = tokio::spawn(accept_loop(listener, state, Arc::clone(&accepted)));
        Ok(Upstream {
            addr,
            accepted,
            task: Some(task),
        })
    }
}

/// A running upstream server. Stops on drop.
pub struct Upstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: Option<JoinHandle<()>>,
}

impl Upstream {
    /// Builder for a non-default bind address or TLS.
    pub fn builder() -> UpstreamBuilder {
        UpstreamBuilder::default()
    }

    /// Plaintext server on `127.0.0.1:<ephemeral>`.
    pub async fn spawn<H, F>(handler: H) -> io::Result<Upstream>
    where
        H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
        F: Future<Output = Response<Body>> + Send + 'static,
    {
        UpstreamBuilder::default().spawn(handler).await
    }

    /// The bound address (with the real port when 0 was requested).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many TCP connections have been accepted so far (useful for pooling assertions).
    pub fn accepted_connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Stop serving and wait until the listener and all connections are closed.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // The task was aborted on purpose, so its JoinError carries no information.
            let _ = task.await;
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct ServerState<H> {
    handler: H,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Accepts until aborted. Connection tasks live in a `JoinSet` owned by this future, so aborting
/// the loop drops the set and aborts every connection with it.
async fn accept_loop<H, F>(
    listener: TcpListener,
    state: Arc<ServerState<H>>,
    accepted: Arc<AtomicUsize>,
) where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            // Transient accept errors (EMFILE, ECONNABORTED) must not kill the server.
            Err(_) => {
                tokio::task::yield_now().await;
                continue;
            }
        };
        accepted.fetch_add(1, Ordering::SeqCst);
        let state = Arc::clone(&state);
        connections.spawn(async move {
            // Errors on one connection (client reset, bad TLS) only end that connection.
            let _ = serve_connection(stream, peer, state).await;
        });
    }
}

async fn serve_connection<H, F>(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<ServerState<H>>,
) -> Result<(), BoxError>
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let local = stream.local_addr()?;
    // Small responses in tests must not be delayed by Nagle.
    stream.set_nodelay(true)?;
    match &state.tls {
        None => {
            let info = ConnInfo {
                peer,
                local,
                tls: None,
            };
            serve_http(TokioIo::new(stream), info, state).await
        }
        Some(acceptor) => {
            let tls = acceptor.accept(stream).await?;
            let (_, session) = tls.get_ref();
            let info = ConnInfo {
                peer,
                local,
                tls: Some(TlsInfo {
                    server_name: session.server_name().map(str::to_owned),
                    alpn: session
                        .alpn_protocol()
                        .map(|p| String::from_utf8_lossy(p).into_owned()),
                    version: session.protocol_version().map(|v| match v {
                        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
                        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
                        other => format!("{other:?}"),
                    }),
                }),
            };
            serve_http(TokioIo::new(tls), info, state).await
        }
    }
}

async fn serve_http<I, H, F>(
    io: I,
    info: ConnInfo,
    state: Arc<ServerState<H>>,
) -> Result<(), BoxError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let service = service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(info.clone());
        let response = (state.handler)(req);
        async move { Ok::<_, std::convert::Infallible>(response.await) }
    });
    auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(io, service)
        .await
}
