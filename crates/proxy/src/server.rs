//! Downstream listeners: one accept loop per socket of the configuration, HTTP/1.1 and HTTP/2 on
//! the same port (ALPN on TLS, prior knowledge in clear text), connection limits, idle timeouts,
//! and graceful shutdown. Sockets come and go with reloads without restarting the process.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use sluice_config::Snapshot;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::proxy::{ConnInfo, Proxy, SocketKey};

#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Added to every listener port when binding (the logical port stays as configured), so a
    /// Gateway on port 80 can run unprivileged on 10080 — as Envoy Gateway maps ports.
    pub port_offset: u16,
    pub max_connections: usize,
    /// Request line and headers together; larger requests get 431.
    pub max_header_bytes: usize,
    /// A connection with no request in progress is closed after this long.
    pub idle_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub max_concurrent_streams: u32,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            port_offset: 0,
            max_connections: 16_384,
            max_header_bytes: 64 * 1024,
            idle_timeout: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(10),
            max_concurrent_streams: 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address} (listener port {port}): {source}")]
pub struct BindError {
    pub address: String,
    pub port: u16,
    #[source]
    pub source: io::Error,
}

struct RunningSocket {
    local: SocketAddr,
    stop: watch::Sender<bool>,
}

/// Sockets bound for a configuration that is not yet in effect.
pub struct Prepared {
    new: Vec<(SocketKey, TcpListener)>,
    keep: Vec<SocketKey>,
}

pub struct Server {
    proxy: Arc<Proxy>,
    settings: ServerSettings,
    sockets: Mutex<HashMap<SocketKey, RunningSocket>>,
    connections: Arc<Semaphore>,
    tracker: Arc<Tracker>,
    shutdown: watch::Sender<bool>,
}

/// Counts live connections so shutdown can wait for them.
#[derive(Default)]
struct Tracker {
    active: AtomicUsize,
    idle: Notify,
}

struct ConnGuard(Arc<Tracker>, Arc<Proxy>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.1.metrics.active_connections.dec();
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Server {
    pub fn new(proxy: Arc<Proxy>, settings: ServerSettings) -> Arc<Server> {
        Arc::new(Server {
            proxy,
            connections: Arc::new(Semaphore::new(settings.max_connections)),
            settings,
            sockets: Mutex::new(HashMap::new()),
            tracker: Arc::new(Tracker::default()),
            shutdown: watch::channel(false).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketKey, RunningSocket>> {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Binds the sockets `snapshot` needs that are not open yet. Nothing changes for traffic until
    /// [`Server::commit`]; if a bind fails, the new sockets are closed again and the error returned,
    /// so a reload that cannot bind is rejected whole.
    pub fn prepare(&self, snapshot: &Snapshot) -> Result<Prepared, BindError> {
        let running = self.lock();
        let mut prepared = Prepared {
            new: Vec::new(),
            keep: Vec::new(),
        };
        for s in &snapshot.sockets {
            let key = (s.address, s.port);
            if running.contains_key(&key) {
                prepared.keep.push(key);
                continue;
            }
            let ip = s.address;
            let port = s
                .port
                .checked_add(self.settings.port_offset)
                .ok_or_else(|| BindError {
                    address: ip.to_string(),
                    port: s.port,
                    source: io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "port plus --port-offset exceeds 65535",
                    ),
                })?;
            let addr = SocketAddr::new(ip, port);
            let listener = bind(addr).map_err(|source| BindError {
                address: addr.to_string(),
                port: s.port,
                source,
            })?;
            prepared.new.push((key, listener));
        }
        Ok(prepared)
    }

    /// Starts accepting on new sockets and closes sockets the configuration no longer has
    /// (their open connections drain gracefully).
    pub fn commit(self: &Arc<Self>, prepared: Prepared) {
        let mut running = self.lock();
        let wanted: Vec<SocketKey> = prepared
            .keep
            .iter()
            .copied()
            .chain(prepared.new.iter().map(|(k, _)| *k))
            .collect();
        running.retain(|key, socket| {
            let keep = wanted.contains(key);
            if !keep {
                tracing::info!(address = %socket.local, "closing listener no longer configured");
                let _ = socket.stop.send(true);
            }
            keep
        });
        for (key, listener) in prepared.new {
            let local = listener
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::new(key.0, 0));
            let (stop, stop_rx) = watch::channel(false);
            tracing::info!(address = %local, port = key.1, "listening");
            running.insert(key, RunningSocket { local, stop });
            let server = self.clone();
            tokio::spawn(async move { server.accept_loop(key, listener, stop_rx).await });
        }
    }

    /// Where each configured socket is actually bound.
    pub fn bound(&self) -> Vec<(SocketKey, SocketAddr)> {
        self.lock().iter().map(|(k, s)| (*k, s.local)).collect()
    }

    /// Stops accepting (new connections are refused), asks every connection to finish its
    /// in-flight requests, and waits for them up to `deadline`. Returns how many were cut off.
    pub async fn shutdown(&self, deadline: Duration) -> usize {
        let _ = self.shutdown.send(true);
        for (_, s) in self.lock().drain() {
            let _ = s.stop.send(true);
        }
        let wait = async {
            loop {
                let notified = self.tracker.idle.notified();
                if self.tracker.active.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(deadline, wait).await;
        self.tracker.active.load(Ordering::Acquire)
    }

    async fn accept_loop(
        self: Arc<Self>,
        key: SocketKey,
        listener: TcpListener,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut shutdown = self.shutdown.subscribe();
        loop {
            let accepted = tokio::select! {
                _ = stop.changed() => break,
                _ = shutdown.changed() => break,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                        self.proxy.metrics.connections_rejected.inc();
                        drop(stream);
                        continue;
                    };
                    self.tracker.active.fetch_add(1, Ordering::AcqRel);
                    self.proxy.metrics.active_connections.inc();
                    let guard = ConnGuard(self.tracker.clone(), self.proxy.clone());
                    let server = self.clone();
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        server.connection(key, stream, peer, stop).await;
                        drop(permit);
                        drop(guard);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn connection(
        &self,
        key: SocketKey,
        stream: TcpStream,
        peer: SocketAddr,
        stop: watch::Receiver<bool>,
    ) {
        let _ = stream.set_nodelay(true);
        let tls = self.proxy.runtime().socket(key).and_then(|s| s.tls.clone());
        match tls {
            None => {
                let info = Arc::new(ConnInfo::new(peer, false, key, None));
                self.serve_io(stream, info, stop).await
            }
            Some(cfg) => {
                let accept = TlsAcceptor::from(cfg).accept(stream);
                match tokio::time::timeout(self.settings.tls_handshake_timeout, accept).await {
                    Ok(Ok(tls_stream)) => {
                        let conn = tls_stream.get_ref().1;
                        let mut info = ConnInfo::new(peer, true, key, conn.server_name());
                        info.peer_cert = conn
                            .peer_certificates()
                            .and_then(|certs| certs.first())
                            .and_then(|leaf| crate::auth::peer::from_der(leaf))
                            .map(Arc::new);
                        let info = Arc::new(info);
                        self.serve_io(tls_stream, info, stop).await
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }
        }
    }

    async fn serve_io<I>(&self, io: I, info: Arc<ConnInfo>, mut stop: watch::Receiver<bool>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let proxy = self.proxy.clone();
        let conn_info = info.clone();
        let service = service_fn(move |req| {
            let proxy = proxy.clone();
            let info = conn_info.clone();
            async move { Ok::<_, Infallible>(proxy.serve(info, req).await) }
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .max_buf_size(self.settings.max_header_bytes.max(8192))
            // Also bounds a request head that never completes (slowloris): hyper's graceful
            // shutdown, which the idle check uses, waits for a head it has started reading.
            .header_read_timeout(self.settings.idle_timeout)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(self.settings.max_header_bytes as u32)
            .max_concurrent_streams(self.settings.max_concurrent_streams)
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20));
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(conn);
        // `stop` fires for this socket's removal and for process shutdown alike (shutdown stops
        // every socket), so the loop watches one channel.
        let mut draining = false;
        let idle_limit = self.settings.idle_timeout;
        let mut idle_check = tokio::time::interval((idle_limit / 4).max(Duration::from_millis(50)));
        idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = idle_check.tick(), if !draining => {
                    if info.idle_for() >= idle_limit {
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended with error");
                    }
                    break;
                }
                _ = stop.changed(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}
