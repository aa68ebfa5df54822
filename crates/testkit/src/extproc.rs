//! A scriptable Envoy ext_proc v3 server (`envoy.service.ext_proc.v3.ExternalProcessor`).
//!
//! Each message a client sends goes through the test's handler, which says what the server
//! does: reply (now or after a delay), stay silent, close the stream cleanly or fail it with a
//! gRPC status. The server counts accepted TCP connections (to prove a client reuses one),
//! records every message and every stream's gRPC metadata, and reports streams that ended —
//! including those the client cancelled — through a waitable counter, so tests synchronise on
//! events, never on sleeps.
//!
//! Like grpc-go servers, it sends a stream's response headers only with its first reply, so
//! a client that waits for headers before sending deadlocks here too.
//!
//! It is a real tonic service served by hyper's HTTP/2 server on loopback, plaintext (h2c) or
//! TLS with ALPN `h2`. [`ExtProcServer::stop`] kills the listener and every connection at once
//! (a crashed processor); [`ExtProcServer::restart`] brings it back on the same port.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::{
    ExternalProcessor, ExternalProcessorServer,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    processing_request, processing_response, BodyMutation, BodyResponse, CommonResponse,
    HeaderMutation, HeadersResponse, ImmediateResponse, ProcessingRequest, ProcessingResponse,
    TrailersResponse,
};
use futures_util::{Stream, StreamExt};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tonic::{Request, Response, Status, Streaming};

/// `config.core.v3.HeaderValueOption.HeaderAppendAction`.
pub use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
/// The generated ext_proc v3 messages, re-exported so tests need no extra dependency.
pub use envoy_types::pb::envoy::service::ext_proc::v3 as proto;

/// What the server does with one received message.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send this reply now.
    Reply(ProcessingResponse),
    /// Send these replies, in order (a `FULL_DUPLEX_STREAMED` processor answering headers and
    /// body once it has read the whole body).
    ReplyMany(Vec<ProcessingResponse>),
    /// Send this reply after the delay (a slow processor).
    ReplyAfter(Duration, ProcessingResponse),
    /// Send nothing and keep reading (pipelined clients; or a processor that hangs).
    Silence,
    /// End the stream cleanly (gRPC status OK) without replying.
    Close,
    /// End the stream with this gRPC status.
    Fail(Status),
}

type Handler = dyn Fn(&ProcessingRequest) -> Action + Send + Sync;

struct Shared {
    handler: Box<Handler>,
    connections: AtomicUsize,
    streams_opened: AtomicUsize,
    streams_ended: watch::Sender<usize>,
    received: Mutex<Vec<ProcessingRequest>>,
    metadata: Mutex<Vec<http::HeaderMap>>,
}

/// A running (or stopped) ext_proc test server. Dropping it stops it.
pub struct ExtProcServer {
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl ExtProcServer {
    /// Starts a plaintext (h2c) server on a free loopback port.
    pub async fn spawn<H>(handler: H) -> io::Result<Self>
    where
        H: Fn(&ProcessingRequest) -> Action + Send + Sync + 'static,
    {
        Self::start(Box::new(handler), None).await
    }

    /// Starts a TLS server; `config` should offer ALPN `h2` (gRPC clients insist on it).
    pub async fn spawn_tls<H>(handler: H, config: Arc<rustls::ServerConfig>) -> io::Result<Self>
    where
        H: Fn(&ProcessingRequest) -> Action + Send + Sync + 'static,
    {
        Self::start(Box::new(handler), Some(config)).await
    }

    async fn start(
        handler: Box<Handler>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            handler,
            connections: AtomicUsize::new(0),
            streams_opened: AtomicUsize::new(0),
            streams_ended: watch::channel(0).0,
            received: Mutex::new(Vec::new()),
            metadata: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone(), tls.clone()));
        Ok(ExtProcServer {
            addr,
            tls,
            shared,
            accept: Some(accept),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or `https://` for a TLS server).
    pub fn uri(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// TCP connections accepted since the server was created (restarts included).
    pub fn connection_count(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// `Process` streams started.
    pub fn streams_opened(&self) -> usize {
        self.shared.streams_opened.load(Ordering::SeqCst)
    }

    /// `Process` streams over, for any reason (completed, closed, failed, cancelled).
    pub fn streams_ended(&self) -> usize {
        *self.shared.streams_ended.borrow()
    }

    /// Waits until at least `count` streams have ended. Wrap it in a timeout.
    pub async fn wait_streams_ended(&self, count: usize) {
        let mut ended = self.shared.streams_ended.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we borrow it.
        let _ = ended.wait_for(|n| *n >= count).await;
    }

    /// Every message received, in arrival order (all streams).
    pub fn received(&self) -> Vec<ProcessingRequest> {
        lock(&self.shared.received).clone()
    }

    /// The gRPC request metadata of each stream, in opening order.
    pub fn metadata(&self) -> Vec<http::HeaderMap> {
        lock(&self.shared.metadata).clone()
    }

    /// Stops listening and drops every open connection at once, like a crashed process.
    pub async fn stop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            // Wait until the task is gone so the listener is closed when this returns.
            let _ = accept.await;
        }
    }

    /// Listens again on the same port (after [`stop`](Self::stop)).
    pub async fn restart(&mut self) -> io::Result<()> {
        self.stop().await;
        let listener = TcpListener::bind(self.addr).await?;
        self.accept = Some(tokio::spawn(accept_loop(
            listener,
            self.shared.clone(),
            self.tls.clone(),
        )));
        Ok(())
    }
}

impl Drop for ExtProcServer {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A handler panic poisons nothing of value here: the data is append-only records.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Accepts connections until aborted. The connection tasks live in a `JoinSet` owned by this
/// future, so aborting the loop aborts every connection with it.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let mut connections = JoinSet::new();
    let service = ExternalProcessorServer::new(Processor {
        shared: shared.clone(),
    });
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let _ = tcp.set_nodelay(true);
                let service = TowerToHyperService::new(service.clone());
                let tls = tls.clone();
                connections.spawn(async move {
                    let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(config) => {
                            if let Ok(stream) = TlsAcceptor::from(config).accept(tcp).await {
                                let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

#[derive(Clone)]
struct Processor {
    shared: Arc<Shared>,
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

/// Marks a stream as ended when dropped: on completion, on failure, and when hyper drops the
/// response because the client reset the stream.
struct EndGuard(Arc<Shared>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0.streams_ended.send_modify(|n| *n += 1);
    }
}

struct StreamState {
    inbound: Streaming<ProcessingRequest>,
    shared: Arc<Shared>,
    done: bool,
    queued: std::collections::VecDeque<ProcessingResponse>,
    _guard: EndGuard,
}

#[tonic::async_trait]
impl ExternalProcessor for Processor {
    type ProcessStream = ReplyStream;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        self.shared.streams_opened.fetch_add(1, Ordering::SeqCst);
        lock(&self.shared.metadata).push(request.metadata().clone().into_headers());
        let mut state = StreamState {
            inbound: request.into_inner(),
            shared: self.shared.clone(),
            done: false,
            queued: std::collections::VecDeque::new(),
            _guard: EndGuard(self.shared.clone()),
        };
        // Like grpc-go (the language of most processors), send the response headers only
        // together with the first reply: a client that waits for them before sending its
        // first message deadlocks here, as it would against a real processor.
        match next_reply(&mut state).await {
            None => Ok(Response::new(Box::pin(futures_util::stream::empty()))),
            Some(Err(status)) => Err(status),
            Some(Ok(first)) => {
                let rest = futures_util::stream::unfold(state, |mut state| async move {
                    next_reply(&mut state).await.map(|reply| (reply, state))
                });
                let replies = futures_util::stream::once(async move { Ok(first) }).chain(rest);
                Ok(Response::new(Box::pin(replies)))
            }
        }
    }
}

/// Reads messages until the handler produces something to send; `None` ends the stream.
async fn next_reply(state: &mut StreamState) -> Option<Result<ProcessingResponse, Status>> {
    if let Some(reply) = state.queued.pop_front() {
        return Some(Ok(reply));
    }
    if state.done {
        return None;
    }
    loop {
        let message = match state.inbound.message().await {
            Ok(Some(message)) => message,
            // Client half-closed or reset: the conversation is over.
            Ok(None) | Err(_) => return None,
        };
        lock(&state.shared.received).push(message.clone());
        match (state.shared.handler)(&message) {
            Action::Reply(reply) => return Some(Ok(reply)),
            Action::ReplyMany(replies) => {
                state.queued.extend(replies);
                if let Some(reply) = state.queued.pop_front() {
                    return Some(Ok(reply));
                }
            }
            Action::ReplyAfter(delay, reply) => {
                tokio::time::sleep(delay).await;
                return Some(Ok(reply));
            }
            Action::Silence => continue,
            Action::Close => return None,
            Action::Fail(status) => {
                state.done = true;
                return Some(Err(status));
            }
        }
    }
}

/// Builders for replies, so handlers read like the protocol.
pub mod reply {
    use super::*;

    /// The phase of a request, as the name of the reply that must answer it.
    pub fn phase_of(request: &ProcessingRequest) -> &'static str {
        use processing_request::Request as R;
        match &request.request {
            Some(R::RequestHeaders(_)) => "request_headers",
            Some(R::ResponseHeaders(_)) => "response_headers",
            Some(R::RequestBody(_)) => "request_body",
            Some(R::ResponseBody(_)) => "response_body",
            Some(R::RequestTrailers(_)) => "request_trailers",
            Some(R::ResponseTrailers(_)) => "response_trailers",
            None => "none",
        }
    }

    /// A reply to `request`'s phase carrying `common` (headers and body phases) or its header
    /// mutation (trailer phases).
    pub fn answer(request: &ProcessingRequest, common: CommonResponse) -> ProcessingResponse {
        use processing_request::Request as Q;
        use processing_response::Response as R;
        let headers = || HeadersResponse {
            response: Some(common.clone()),
        };
        let body = || BodyResponse {
            response: Some(common.clone()),
        };
        let trailers = || TrailersResponse {
            header_mutation: common.header_mutation.clone(),
        };
        let response = match &request.request {
            Some(Q::RequestHeaders(_)) => R::RequestHeaders(headers()),
            Some(Q::ResponseHeaders(_)) => R::ResponseHeaders(headers()),
            Some(Q::RequestBody(_)) => R::RequestBody(body()),
            Some(Q::ResponseBody(_)) => R::ResponseBody(body()),
            Some(Q::RequestTrailers(_)) => R::RequestTrailers(trailers()),
            Some(Q::ResponseTrailers(_)) | None => R::ResponseTrailers(trailers()),
        };
        wrap(response)
    }

    /// "Continue, change nothing" for `request`'s phase.
    pub fn proceed(request: &ProcessingRequest) -> ProcessingResponse {
        answer(request, CommonResponse::default())
    }

    /// A reply to `request`'s phase applying `mutation` to headers.
    pub fn with_headers(
        request: &ProcessingRequest,
        mutation: HeaderMutation,
    ) -> ProcessingResponse {
        answer(
            request,
            CommonResponse {
                header_mutation: Some(mutation),
                ..CommonResponse::default()
            },
        )
    }

    /// A reply to `request`'s phase applying `mutation` to the body.
    pub fn with_body(
        request: &ProcessingRequest,
        mutation: body_mutation_kind::Kind,
    ) -> ProcessingResponse {
        answer(
            request,
            CommonResponse {
                body_mutation: Some(BodyMutation {
                    mutation: Some(mutation),
                }),
                ..CommonResponse::default()
            },
        )
    }

    /// The body mutation kinds (`body`, `clear_body`, `streamed_response`).
    pub mod body_mutation_kind {
        pub use envoy_types::pb::envoy::service::ext_proc::v3::body_mutation::Mutation as Kind;
        pub use envoy_types::pb::envoy::service::ext_proc::v3::StreamedBodyResponse;
    }

    /// One `set_headers` entry with the value in `raw_value`.
    pub fn set(key: &str, value: &str, action: HeaderAppendAction) -> HeaderValueOption {
        #[allow(deprecated)]
        HeaderValueOption {
            header: Some(HeaderValue {
                key: key.to_owned(),
                value: String::new(),
                raw_value: value.as_bytes().to_vec(),
            }),
            append: None,
            append_action: action as i32,
            keep_empty_value: false,
        }
    }

    /// One `set_headers` entry with the value in the string `value` field (older servers).
    pub fn set_string(key: &str, value: &str) -> HeaderValueOption {
        #[allow(deprecated)]
        HeaderValueOption {
            header: Some(HeaderValue {
                key: key.to_owned(),
                value: value.to_owned(),
                raw_value: Vec::new(),
            }),
            append: None,
            append_action: 0,
            keep_empty_value: false,
        }
    }

    /// One `set_headers` entry using the deprecated `append` flag.
    pub fn set_legacy(key: &str, value: &str, append: bool) -> HeaderValueOption {
        #[allow(deprecated)]
        HeaderValueOption {
            header: Some(HeaderValue {
                key: key.to_owned(),
                value: String::new(),
                raw_value: value.as_bytes().to_vec(),
            }),
            append: Some(envoy_types::pb::google::protobuf::BoolValue { value: append }),
            append_action: 0,
            keep_empty_value: false,
        }
    }

    /// An immediate response.
    pub fn immediate(
        status: u16,
        headers: Vec<HeaderValueOption>,
        body: &[u8],
        details: &str,
    ) -> ProcessingResponse {
        wrap(processing_response::Response::ImmediateResponse(
            ImmediateResponse {
                status: Some(HttpStatus {
                    code: i32::from(status),
                }),
                headers: Some(HeaderMutation {
                    set_headers: headers,
                    remove_headers: Vec::new(),
                }),
                body: body.to_vec(),
                grpc_status: None,
                details: details.to_owned(),
            },
        ))
    }

    /// Wraps a response oneof.
    pub fn wrap(response: processing_response::Response) -> ProcessingResponse {
        ProcessingResponse {
            response: Some(response),
            ..ProcessingResponse::default()
        }
    }

    /// The header values of a request or response headers message, as `(key, bytes)` in
    /// order, with the value taken from `raw_value` or, if empty, `value`.
    pub fn headers_of(request: &ProcessingRequest) -> Vec<(String, Vec<u8>)> {
        use processing_request::Request as R;
        let map = match &request.request {
            Some(R::RequestHeaders(h) | R::ResponseHeaders(h)) => h.headers.as_ref(),
            Some(R::RequestTrailers(t) | R::ResponseTrailers(t)) => t.trailers.as_ref(),
            _ => None,
        };
        map.map(|m| {
            m.headers
                .iter()
                .map(|h| {
                    let value = if h.raw_value.is_empty() {
                        h.value.as_bytes().to_vec()
                    } else {
                        h.raw_value.clone()
                    };
                    (h.key.clone(), value)
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// The body bytes and end-of-stream flag of a body message.
    pub fn body_of(request: &ProcessingRequest) -> Option<(&[u8], bool)> {
        use processing_request::Request as R;
        match &request.request {
            Some(R::RequestBody(b) | R::ResponseBody(b)) => Some((&b.body, b.end_of_stream)),
            _ => None,
        }
    }
}
