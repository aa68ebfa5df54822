//! The one error type of the client.
//!
//! Variants are split by what the pipeline does with them: `Connect`, `ConnectionLost` and
//! `Timeout` are transport trouble (worth a retry later, counted as "processor unavailable"),
//! `Status` is the processor's own gRPC verdict, `StreamClosed` is a clean close (Envoy proceeds without the
//! processor in that case; the pipeline decides), and `Protocol` / `BadHeader` /
//! `DisallowedMutation` are a processor that answered something this client will not apply.

use std::error::Error as _;

/// Everything that can go wrong talking to an external processor.
#[derive(Debug, thiserror::Error)]
pub enum ExtProcError {
    /// The endpoint given to [`crate::ExtProcClient::new`] cannot be used.
    #[error("invalid ext_proc endpoint: {0}")]
    InvalidEndpoint(String),
    /// No connection could be made (refused, unreachable, connect timeout, TLS handshake).
    #[error("cannot connect to the external processor: {0}")]
    Connect(String),
    /// The connection to the processor broke (closed, reset, GOAWAY) before or during the
    /// call. The channel reconnects for the next session.
    #[error("lost the connection to the external processor: {0}")]
    ConnectionLost(String),
    /// The call ran past a deadline (gRPC `DEADLINE_EXCEEDED` or a transport timeout).
    #[error("external processor call timed out")]
    Timeout,
    /// The processor ended the stream with a non-OK gRPC status.
    #[error("external processor failed with gRPC status {0:?}: {1}")]
    Status(tonic::Code, String),
    /// The processor closed the stream cleanly (status OK) before answering. Envoy treats this
    /// as "continue without the processor"; whether Sluice does is the pipeline's choice.
    #[error("external processor closed the stream before answering")]
    StreamClosed,
    /// The processor broke the protocol (a reply for a phase that was not sent, an unsupported
    /// reply kind), or the session was used after it could no longer be trusted.
    #[error("ext_proc protocol violation: {0}")]
    Protocol(String),
    /// A header name or value that HTTP does not allow (from the processor, or caller metadata).
    #[error("invalid header: {0}")]
    BadHeader(String),
    /// A mutation this client refuses to apply: pseudo-headers other than `:path` (request) and
    /// `:status` (response), and `host`. See `docs/ext-proc.md`.
    #[error("external processor may not mutate {0}")]
    DisallowedMutation(String),
}

impl ExtProcError {
    /// Classifies a tonic status. A status the processor sent arrives in trailers and has no
    /// source error; one that tonic made up locally from a transport failure carries it. So:
    /// a connector failure is `Connect`, any other local failure is `ConnectionLost`,
    /// deadlines are `Timeout`, and the rest keeps the processor's code and message.
    pub(crate) fn from_status(status: tonic::Status) -> Self {
        if let Some(connect) = find_connect_error(&status) {
            return ExtProcError::Connect(connect);
        }
        if let Some(source) = status.source() {
            let mut text = status.message().to_owned();
            push_chain(&mut text, Some(source));
            return ExtProcError::ConnectionLost(text);
        }
        match status.code() {
            tonic::Code::DeadlineExceeded => ExtProcError::Timeout,
            code => ExtProcError::Status(code, status.message().to_owned()),
        }
    }
}

/// Walks the source chain for tonic's `ConnectError`, which wraps every failure of the
/// connector (TCP connect, its timeout, the TLS handshake), and renders the whole chain: the
/// top-level message alone ("transport error") says nothing useful.
fn find_connect_error(status: &tonic::Status) -> Option<String> {
    let mut source = status.source();
    while let Some(err) = source {
        if err.downcast_ref::<tonic::ConnectError>().is_some() {
            let mut text = err.to_string();
            push_chain(&mut text, err.source());
            return Some(text);
        }
        source = err.source();
    }
    None
}

fn push_chain(text: &mut String, mut source: Option<&(dyn std::error::Error + 'static)>) {
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
}
