//! The payload-processing pipeline: a phase's processors run in order over the request (and,
//! for those that act on it, over the response). Timeouts and failure modes belong here, not to
//! the processors: a processor returns `Continue`, a rejection, or an error; the pipeline bounds
//! its time and decides what a failure means (FailClosed refuses the request, FailOpen skips the
//! processor, logged and counted). A rejection short-circuits the rest.
//!
//! Bodies are buffered only when some processor reads them ([`Pipeline::needs_request_body`]),
//! up to the pipeline's limit.

mod body;
mod ext_proc;
mod guardrail;
mod in_process;
mod lookup;
mod response;
pub(crate) mod stream_guard;
mod webhook;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Method, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use sluice_config::ir::{Pipeline, Processor, ProcessorKind};
use sluice_llm::{Dialect, Operation};

pub use body::BodyBuf;
pub use ext_proc::{ExtProcChannels, OpenSessions};
pub use response::ResponseWork;

use crate::body::Body as HttpBody;
use crate::metrics::Label;
use crate::proxy::Proxy;

/// Sync work on a body at least this large runs on the blocking pool, so the processor's
/// timeout bounds the wait and the reactor is never stalled.
pub(crate) const BLOCKING_BODY_BYTES: usize = 64 * 1024;

/// A request as processors see it.
pub struct RequestPayload<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub headers: &'a mut HeaderMap,
    /// `None` when no processor of the phase reads the body.
    pub body: Option<&'a mut BodyBuf>,
    /// The inference operation, when the request is one (guardrails read its texts by dialect).
    pub op: Option<Operation>,
    /// The model, for token caps.
    pub model: Option<&'a str>,
    /// The runtime's upstreams (a Webhook's moderation service is one).
    pub upstreams: &'a [Arc<crate::upstream::Upstream>],
    /// Set when the body was larger than the pipeline's limit (and so was not buffered): a
    /// processor that reads it fails with [`Failure::TooLarge`].
    pub body_too_large: Option<usize>,
    /// Names of the headers processors set, so the AI path forwards them to providers.
    pub set_headers: &'a mut Vec<http::HeaderName>,
    /// ext_proc streams the response side continues on.
    pub sessions: &'a mut OpenSessions,
}

/// What one processor decided.
pub enum Verdict {
    Continue,
    Reject(Rejection),
}

/// A processor refused the request (or the response): the answer the client gets.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// An external processor's own answer (its headers and body), sent as it is.
    pub immediate: Option<Box<(HeaderMap, Bytes)>>,
}

impl Rejection {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Rejection {
        Rejection {
            status,
            code,
            message: message.into(),
            immediate: None,
        }
    }

    /// The response, in the client's dialect for inference requests, plain text otherwise.
    pub fn response(&self, dialect: Option<Dialect>) -> Response<HttpBody> {
        if let Some(im) = &self.immediate {
            let (headers, body) = &**im;
            let mut resp = Response::new(crate::body::full(body.clone()));
            *resp.status_mut() = self.status;
            *resp.headers_mut() = headers.clone();
            return resp;
        }
        let (bytes, content_type) = match dialect {
            Some(d) => (
                sluice_llm::errors::body(d, self.status.as_u16(), self.code, &self.message),
                "application/json",
            ),
            None => (
                Bytes::from(format!("{}\n", self.message)),
                "text/plain; charset=utf-8",
            ),
        };
        let mut resp = Response::new(crate::body::full(bytes));
        *resp.status_mut() = self.status;
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        resp
    }
}

/// Why a processor could not decide. The failure mode says what happens next.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("the body is larger than the pipeline's limit of {0} bytes")]
    TooLarge(usize),
    /// The processor's service could not be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Error(String),
}

impl Failure {
    /// The answer when the failure closes the request.
    fn rejection(&self, processor: &str) -> Rejection {
        let (status, code) = match self {
            Failure::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "processor_timeout"),
            Failure::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "request_too_large"),
            Failure::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "processor_unavailable"),
            Failure::Error(_) => (StatusCode::INTERNAL_SERVER_ERROR, "processor_failed"),
        };
        let message = match self {
            Failure::TooLarge(n) => {
                format!("the body exceeds the limit of {n} bytes for payload processing")
            }
            // Processor internals (addresses, expressions) stay in the log.
            _ => format!("payload processor {processor} failed"),
        };
        Rejection::new(status, code, message)
    }

    fn reason(&self) -> &'static str {
        match self {
            Failure::Timeout(_) => "timeout",
            Failure::TooLarge(_) => "too_large",
            Failure::Unavailable(_) => "unavailable",
            Failure::Error(_) => "error",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProcessorLabels {
    pub processor: Label,
    /// `request` or `response`.
    pub phase: &'static str,
    /// `continued`, `rejected`, `failed_open`, `failed_closed`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    pub processor: Label,
    pub detector: String,
    /// `block`, `redact`, `monitor`.
    pub action: &'static str,
}

impl Proxy {
    /// Runs `pipeline`'s request side. `Err` is the answer to send instead of forwarding.
    pub(crate) async fn run_request_pipeline(
        &self,
        pipeline: &Pipeline,
        req: &mut RequestPayload<'_>,
    ) -> Result<(), Rejection> {
        for p in &pipeline.processors {
            let started = Instant::now();
            let result = within(p.timeout, self.process_request(p, req)).await;
            let outcome = self.settle_outcome(p, "request", result, started)?;
            if !outcome {
                break;
            }
        }
        Ok(())
    }

    async fn process_request(
        &self,
        p: &Processor,
        req: &mut RequestPayload<'_>,
    ) -> Result<Verdict, Failure> {
        if let Some(limit) = req.body_too_large {
            if p.kind.needs_request_body() {
                return Err(Failure::TooLarge(limit));
            }
        }
        match &p.kind {
            ProcessorKind::InProcess(ip) => match &ip.request {
                Some(m) => in_process::on_request(m, req).map(|()| Verdict::Continue),
                None => Ok(Verdict::Continue),
            },
            ProcessorKind::Guardrail(g) if g.on_request => {
                guardrail::on_request(self, p, g, req).await
            }
            ProcessorKind::Webhook(w) if w.on_request => {
                webhook::on_request(self, &p.name, w, req).await
            }
            ProcessorKind::ExtProcess(e) => {
                let run = self.ext_proc.on_request(e, &p.name, req);
                run.await
            }
            _ => Ok(Verdict::Continue),
        }
    }

    /// Applies the failure mode and counts the outcome. `Ok(true)`: go on with the next
    /// processor; `Ok(false)`: stop here (nothing in this pipeline should run, though the
    /// request goes on); `Err`: answer with this rejection.
    fn settle_outcome(
        &self,
        p: &Processor,
        phase: &'static str,
        result: Result<Verdict, Failure>,
        started: Instant,
    ) -> Result<bool, Rejection> {
        let count = |outcome: &'static str| {
            self.metrics
                .processors
                .decisions
                .get_or_create(&ProcessorLabels {
                    processor: Label(p.name.clone()),
                    phase,
                    outcome,
                })
                .inc();
            self.metrics
                .processors
                .duration
                .get_or_create(&ProcessorDurationLabels {
                    processor: Label(p.name.clone()),
                })
                .observe(started.elapsed().as_secs_f64());
        };
        match result {
            Ok(Verdict::Continue) => {
                count("continued");
                Ok(true)
            }
            Ok(Verdict::Reject(r)) => {
                count("rejected");
                tracing::info!(processor = %p.name, phase, status = %r.status, "payload processor rejected");
                Err(r)
            }
            Err(failure) if p.fail_open => {
                count("failed_open");
                tracing::warn!(processor = %p.name, phase, reason = failure.reason(), error = %failure, "payload processor failed; FailOpen: skipped");
                Ok(true)
            }
            Err(failure) => {
                count("failed_closed");
                tracing::warn!(processor = %p.name, phase, reason = failure.reason(), error = %failure, "payload processor failed; FailClosed: refused");
                let mut r = failure.rejection(&p.name);
                if phase == "response" && matches!(failure, Failure::TooLarge(_)) {
                    // Not the client's fault: the answer was too large to check.
                    r = Rejection::new(
                        StatusCode::BAD_GATEWAY,
                        "response_too_large",
                        "the answer is too large for payload processing",
                    );
                }
                Err(r)
            }
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProcessorDurationLabels {
    pub processor: Label,
}

/// Runs one processor's work under its timeout: the pipeline, not each processor, applies it.
pub(crate) async fn within<T>(
    limit: std::time::Duration,
    work: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or(Err(Failure::Timeout(limit)))
}

/// Header map as CEL sees it: lowercase names, repeated values joined with `, `.
pub(crate) fn headers_json(headers: &HeaderMap) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for name in headers.keys() {
        let mut joined = String::new();
        for (i, v) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                joined.push_str(", ");
            }
            joined.push_str(&String::from_utf8_lossy(v.as_bytes()));
        }
        map.insert(name.as_str().to_string(), serde_json::Value::String(joined));
    }
    serde_json::Value::Object(map)
}

pub(crate) fn header_value(v: &serde_json::Value) -> Result<HeaderValue, Failure> {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        other => {
            return Err(Failure::Error(format!(
                "a header value must be a string, number or boolean, not {other}"
            )))
        }
    };
    HeaderValue::from_str(&text)
        .map_err(|_| Failure::Error(format!("{text:?} is not a valid header value")))
}
