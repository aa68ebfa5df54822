//! One ext_proc stream: the conversation about one HTTP exchange.
//!
//! Two ways to talk, on the same session:
//! - lock-step (`request_headers`, `request_body`, ...): send one phase message, wait for its
//!   reply. This is Envoy's `SEND`/`BUFFERED`/`STREAMED` modes as the pipeline uses them; any
//!   phase may be skipped, so headers-only, headers + buffered body and chunk-by-chunk bodies all
//!   work.
//! - pipelined (`send_*` then [`Session::recv`]): for `FULL_DUPLEX_STREAMED` processors such as
//!   the Gateway API Inference Extension endpoint picker, which answer the request headers only
//!   after they have read the whole body.
//!
//! The gRPC call starts lazily, with the first message: gRPC servers written in Go send their
//! response headers only together with their first message, so waiting for them before sending
//! would deadlock. Until the response headers arrive, every send also drives the call.
//!
//! Cancellation: dropping a `Session` drops both halves of the stream, which resets it
//! (HTTP/2 `RST_STREAM`); the shared connection is untouched. A call that was cancelled
//! mid-way (the caller's timeout) leaves the conversation out of step, so the session refuses
//! any further use rather than pair a late reply with the wrong message.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use envoy_types::pb::envoy::service::ext_proc::v3::{ProcessingRequest, ProcessingResponse};
use http::{HeaderMap, Method, StatusCode};
use tokio::sync::mpsc;
use tonic::Streaming;

use crate::error::ExtProcError;
use crate::phase::{Phase, PhaseSet};
use crate::reply::Reply;
use crate::wire;

/// The request headers phase message, borrowed from the caller's request.
#[derive(Debug, Clone, Copy)]
pub struct HeadersMsg<'a> {
    /// Sent as `:method`.
    pub method: &'a Method,
    /// Path and query, sent as `:path`.
    pub path: &'a str,
    /// `http` or `https`, sent as `:scheme`.
    pub scheme: &'a str,
    /// Sent as `:authority` (the `host` header itself is not sent, as in Envoy).
    pub authority: &'a str,
    /// The regular headers.
    pub headers: &'a HeaderMap,
    /// True when the request has no body (no body phase will follow).
    pub end_of_stream: bool,
}

/// A reply together with the phase it answers (pipelined use).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The phase the reply is for. For an immediate response, the last phase sent.
    pub phase: Phase,
    /// What the processor said.
    pub reply: Reply,
}

pub(crate) type CallFuture = Pin<
    Box<
        dyn Future<Output = Result<tonic::Response<Streaming<ProcessingResponse>>, tonic::Status>>
            + Send,
    >,
>;

// The session owns its call in place: it goes Starting -> Open once, and boxing the stream
// would add an allocation per exchange to save bytes in a value that lives on one task.
#[allow(clippy::large_enum_variant)]
enum Call {
    /// Request sent (or about to be); response headers not yet received.
    Starting(CallFuture),
    Open(Streaming<ProcessingResponse>),
    /// The call failed; the error was returned once already.
    Gone,
}

enum State {
    Ready,
    /// An operation is in progress; seen at the start of the next one, it means that one
    /// was cancelled (its future dropped) half-way.
    Busy,
    /// The processor sent an immediate response: the exchange is over.
    Answered,
    /// An error ended the session.
    Failed,
}

/// Messages queued towards the processor before HTTP/2 flow control pushes back: enough for
/// the pipelined mode to queue a few body chunks without waiting.
pub(crate) const SEND_QUEUE: usize = 8;

/// One bidirectional `Process` stream. See the module docs for the two ways to use it.
pub struct Session {
    tx: mpsc::Sender<ProcessingRequest>,
    call: Call,
    state: State,
    sent: PhaseSet,
    last_sent: Option<Phase>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("sent", &self.sent)
            .field("last_sent", &self.last_sent)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(tx: mpsc::Sender<ProcessingRequest>, call: CallFuture) -> Self {
        Session {
            tx,
            call: Call::Starting(call),
            state: State::Ready,
            sent: PhaseSet::default(),
            last_sent: None,
        }
    }

    /// Sends the request headers and waits for the reply.
    pub async fn request_headers(&mut self, msg: &HeadersMsg<'_>) -> Result<Reply, ExtProcError> {
        self.exchange(Phase::RequestHeaders, wire::request_headers(msg))
            .await
    }

    /// Sends a request body (buffered: the whole body with `end_of_stream`; streamed: one
    /// chunk) and waits for the reply.
    pub async fn request_body(
        &mut self,
        chunk: &Bytes,
        end_of_stream: bool,
    ) -> Result<Reply, ExtProcError> {
        self.exchange(
            Phase::RequestBody,
            wire::body(Phase::RequestBody, chunk, end_of_stream),
        )
        .await
    }

    /// Sends the request trailers and waits for the reply.
    pub async fn request_trailers(&mut self, trailers: &HeaderMap) -> Result<Reply, ExtProcError> {
        self.exchange(
            Phase::RequestTrailers,
            wire::trailers(Phase::RequestTrailers, trailers),
        )
        .await
    }

    /// Sends the response headers (`:status` first) and waits for the reply.
    pub async fn response_headers(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        end_of_stream: bool,
    ) -> Result<Reply, ExtProcError> {
        self.exchange(
            Phase::ResponseHeaders,
            wire::response_headers(status, headers, end_of_stream),
        )
        .await
    }

    /// Sends a response body (whole or one chunk) and waits for the reply.
    pub async fn response_body(
        &mut self,
        chunk: &Bytes,
        end_of_stream: bool,
    ) -> Result<Reply, ExtProcError> {
        self.exchange(
            Phase::ResponseBody,
            wire::body(Phase::ResponseBody, chunk, end_of_stream),
        )
        .await
    }

    /// Sends the response trailers and waits for the reply.
    pub async fn response_trailers(&mut self, trailers: &HeaderMap) -> Result<Reply, ExtProcError> {
        self.exchange(
            Phase::ResponseTrailers,
            wire::trailers(Phase::ResponseTrailers, trailers),
        )
        .await
    }

    /// Pipelined: sends the request headers without waiting for a reply.
    pub async fn send_request_headers(&mut self, msg: &HeadersMsg<'_>) -> Result<(), ExtProcError> {
        self.send_only(Phase::RequestHeaders, wire::request_headers(msg))
            .await
    }

    /// Pipelined: sends a request body chunk without waiting for a reply.
    pub async fn send_request_body(
        &mut self,
        chunk: &Bytes,
        end_of_stream: bool,
    ) -> Result<(), ExtProcError> {
        self.send_only(
            Phase::RequestBody,
            wire::body(Phase::RequestBody, chunk, end_of_stream),
        )
        .await
    }

    /// Pipelined: sends the response headers without waiting for a reply.
    pub async fn send_response_headers(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        end_of_stream: bool,
    ) -> Result<(), ExtProcError> {
        self.send_only(
            Phase::ResponseHeaders,
            wire::response_headers(status, headers, end_of_stream),
        )
        .await
    }

    /// Pipelined: sends a response body chunk without waiting for a reply.
    pub async fn send_response_body(
        &mut self,
        chunk: &Bytes,
        end_of_stream: bool,
    ) -> Result<(), ExtProcError> {
        self.send_only(
            Phase::ResponseBody,
            wire::body(Phase::ResponseBody, chunk, end_of_stream),
        )
        .await
    }

    /// Pipelined: waits for the next reply. It must answer a phase this session has sent
    /// (or be an immediate response), else it is a protocol error.
    pub async fn recv(&mut self) -> Result<Answer, ExtProcError> {
        self.begin()?;
        let result = self.next_reply(None).await;
        self.end(&result);
        result
    }

    async fn exchange(
        &mut self,
        phase: Phase,
        message: ProcessingRequest,
    ) -> Result<Reply, ExtProcError> {
        self.begin()?;
        let result = match self.send(phase, message).await {
            Ok(()) => self.next_reply(Some(phase)).await,
            Err(err) => Err(err),
        };
        self.end(&result);
        result.map(|answer| answer.reply)
    }

    async fn send_only(
        &mut self,
        phase: Phase,
        message: ProcessingRequest,
    ) -> Result<(), ExtProcError> {
        self.begin()?;
        let result = self.send(phase, message).await;
        self.state = match result {
            Ok(()) => State::Ready,
            Err(_) => State::Failed,
        };
        result
    }

    fn begin(&mut self) -> Result<(), ExtProcError> {
        match self.state {
            State::Ready => {
                self.state = State::Busy;
                Ok(())
            }
            State::Busy => {
                self.state = State::Failed;
                Err(ExtProcError::Protocol(
                    "an earlier call on this session was cancelled; open a new session".to_owned(),
                ))
            }
            State::Answered => Err(ExtProcError::Protocol(
                "the processor already sent an immediate response".to_owned(),
            )),
            State::Failed => Err(ExtProcError::Protocol(
                "this session failed earlier; open a new session".to_owned(),
            )),
        }
    }

    fn end(&mut self, result: &Result<Answer, ExtProcError>) {
        self.state = match result {
            Err(_) => State::Failed,
            Ok(Answer {
                reply: Reply::Immediate(_),
                ..
            }) => State::Answered,
            Ok(_) => State::Ready,
        };
    }

    /// Queues one message. While the call is still starting, waiting for queue space also
    /// drives the call, so a processor that reads everything before answering cannot
    /// deadlock us.
    async fn send(&mut self, phase: Phase, message: ProcessingRequest) -> Result<(), ExtProcError> {
        let mut message = Some(message);
        let mut queue = |permit: Result<mpsc::Permit<'_, ProcessingRequest>, _>| match permit {
            Ok(permit) => {
                if let Some(message) = message.take() {
                    permit.send(message);
                }
                Step::Queued
            }
            Err(mpsc::error::SendError(())) => Step::Closed,
        };
        loop {
            let step = match &mut self.call {
                Call::Starting(call) => tokio::select! {
                    biased;
                    permit = self.tx.reserve() => queue(permit),
                    started = call => Step::Started(started),
                },
                Call::Open(_) => queue(self.tx.reserve().await),
                Call::Gone => return Err(ExtProcError::StreamClosed),
            };
            match step {
                Step::Queued => {
                    self.sent.insert(phase);
                    self.last_sent = Some(phase);
                    return Ok(());
                }
                // The transport dropped the request stream: the call is over, and its status
                // says why.
                Step::Closed => return Err(self.why_closed().await),
                Step::Started(Ok(response)) => self.call = Call::Open(response.into_inner()),
                Step::Started(Err(status)) => {
                    self.call = Call::Gone;
                    return Err(ExtProcError::from_status(status));
                }
            }
        }
    }

    /// The reason a call ended, once our sending side found it closed.
    async fn why_closed(&mut self) -> ExtProcError {
        match self.stream().await {
            Ok(stream) => match stream.message().await {
                Err(status) => ExtProcError::from_status(status),
                Ok(_) => ExtProcError::StreamClosed,
            },
            Err(err) => err,
        }
    }

    /// The response stream, waiting for the call to start if needed.
    async fn stream(&mut self) -> Result<&mut Streaming<ProcessingResponse>, ExtProcError> {
        if let Call::Starting(call) = &mut self.call {
            match call.await {
                Ok(response) => self.call = Call::Open(response.into_inner()),
                Err(status) => {
                    self.call = Call::Gone;
                    return Err(ExtProcError::from_status(status));
                }
            }
        }
        match &mut self.call {
            Call::Open(stream) => Ok(stream),
            Call::Starting(_) | Call::Gone => Err(ExtProcError::StreamClosed),
        }
    }

    /// Reads and checks the next reply. `expected` is the phase just sent (lock-step); `None`
    /// accepts a reply for any phase sent so far (pipelined).
    async fn next_reply(&mut self, expected: Option<Phase>) -> Result<Answer, ExtProcError> {
        let Some(last_sent) = self.last_sent else {
            return Err(ExtProcError::Protocol(
                "nothing was sent on this session yet".to_owned(),
            ));
        };
        let stream = self.stream().await?;
        let message = match stream.message().await {
            Ok(Some(message)) => message,
            Ok(None) => {
                self.call = Call::Gone;
                return Err(ExtProcError::StreamClosed);
            }
            Err(status) => {
                self.call = Call::Gone;
                return Err(ExtProcError::from_status(status));
            }
        };
        let (phase, reply) = wire::decode(message)?;
        let Some(phase) = phase else {
            return Ok(Answer {
                phase: last_sent,
                reply,
            });
        };
        match expected {
            Some(want) if want != phase => Err(ExtProcError::Protocol(format!(
                "reply for {} while waiting for {}",
                phase.wire_name(),
                want.wire_name()
            ))),
            None if !self.sent.contains(phase) => Err(ExtProcError::Protocol(format!(
                "reply for {}, which was never sent",
                phase.wire_name()
            ))),
            _ => Ok(Answer { phase, reply }),
        }
    }
}

// A short-lived value on the stack of `send`; boxing the started response would cost an
// allocation per session for nothing.
#[allow(clippy::large_enum_variant)]
enum Step {
    Queued,
    Closed,
    Started(Result<tonic::Response<Streaming<ProcessingResponse>>, tonic::Status>),
}
