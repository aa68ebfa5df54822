//! AI traffic through the gateway.
//!
//! Before routing ([`intake`]): on a listener that serves AI traffic, an inference request's
//! body is read (up to the listener's limit), parsed once, its model resolved through aliases and
//! exposed as `X-Gateway-Model-Name` for HTTPRoute header matches; a client-sent copy of that
//! header is dropped, never trusted.
//!
//! After routing, when the rule sends to `AIBackend`s ([`serve`]): candidates are filtered
//! (operation, model, allowed regions), ordered (priority, then weight, ejected ones last), and
//! tried in turn while nothing has reached the client; each attempt plans the provider call
//! (translation, model rewrite, credentials) and adapts the answer back, whole or streamed.

pub(crate) mod health;
mod models;
pub(crate) mod series;
mod serve;
mod stream_body;
pub(crate) mod tally;
pub(crate) mod vertex;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, Method, Response, StatusCode};
use sluice_config::ir::AiListener;
use sluice_llm::request::{InferenceRequest, RequestError};
use sluice_llm::{Dialect, Operation};

use crate::body::{self, Body};
use crate::reply::LocalReply;

pub use serve::ServeAi;

pub const MODEL_HEADER: HeaderName = HeaderName::from_static("x-gateway-model-name");

/// An inference request read before routing.
pub struct Intake {
    pub op: Operation,
    /// `None` for operations without a body (`GET /v1/models`).
    pub request: Option<InferenceRequest>,
    pub settings: Arc<AiListener>,
    /// Whether the request's input tokens are counted as it is read (and read again after a
    /// processor changes it): some rate limit on the listener counts them.
    pub measure: bool,
}

impl Intake {
    /// Reads `raw` as this intake's operation: the alias resolved, measured when asked.
    pub fn read(&self, raw: Bytes) -> Result<InferenceRequest, RequestError> {
        read_request(self.op, &self.settings, self.measure, raw)
    }
}

/// Bodies from this size are measured by admission on the blocking pool, not as they are
/// read (counting costs ~30 µs per KB: a large body would stall the other requests of this
/// worker thread).
pub const MEASURE_INLINE_BELOW: usize = 32 * 1024;

fn read_request(
    op: Operation,
    settings: &AiListener,
    measure: bool,
    raw: Bytes,
) -> Result<InferenceRequest, RequestError> {
    let measure = measure && raw.len() < MEASURE_INLINE_BELOW;
    InferenceRequest::read(op, raw, Some(&settings.aliases), measure)
}

/// An error the gateway answers itself, in the client's dialect.
#[derive(Debug, Clone)]
pub struct AiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<HeaderValue>,
}

impl AiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> AiError {
        AiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn from_local(r: LocalReply, model: Option<&str>) -> AiError {
        let message = match (r, model) {
            (LocalReply::NoRoute, Some(m)) => {
                return AiError::new(
                    StatusCode::NOT_FOUND,
                    "model_not_found",
                    format!("The model `{m}` does not exist or is not served by this gateway"),
                )
            }
            (LocalReply::NoRoute, None) => "no route matches this request".to_string(),
            (LocalReply::InvalidBackend, _) => "the route has no valid backend".into(),
            (LocalReply::NoEndpoints, _) => "the backend has no ready endpoint".into(),
            (LocalReply::UpstreamConnect, _) => "could not connect to the provider".into(),
            (LocalReply::UpstreamFailed, _) => {
                "the provider closed the connection before responding".into()
            }
            (LocalReply::Timeout, _) => "the provider did not respond in time".into(),
            (LocalReply::BadRequestBody, _) => "the request body could not be read".into(),
            (LocalReply::Misdirected, _) => "misdirected request".into(),
        };
        AiError::new(r.status(), r.reason(), message)
    }

    pub fn response(&self, dialect: Dialect) -> Response<Body> {
        let bytes =
            sluice_llm::errors::body(dialect, self.status.as_u16(), self.code, &self.message);
        let mut resp = Response::new(body::full(bytes));
        *resp.status_mut() = self.status;
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(ra) = &self.retry_after {
            resp.headers_mut().insert(RETRY_AFTER, ra.clone());
        }
        resp
    }
}

/// The operation of a request on an AI listener, if it is an inference API call.
pub fn operation(method: &Method, path: &str) -> Option<Operation> {
    let op = Operation::from_path(path)?;
    let method_ok = if op == Operation::Models {
        method == Method::GET
    } else {
        method == Method::POST
    };
    method_ok.then_some(op)
}

/// Reads and parses the body of an inference request (bounded by the listener's limit) and
/// sets `X-Gateway-Model-Name`; with `measure`, counts its input tokens in the same pass. The
/// body is returned so a plain route can still forward it.
pub async fn intake(
    op: Operation,
    settings: &Arc<AiListener>,
    measure: bool,
    headers: &mut HeaderMap,
    incoming: Body,
) -> Result<(Intake, Bytes), AiError> {
    let limit = settings.max_request_bytes;
    let too_large = || {
        AiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("the request body exceeds the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = match body::collect_limited(incoming, limit).await {
        Ok(b) => b,
        Err(body::CollectError::TooLarge) => return Err(too_large()),
        Err(body::CollectError::Failed) => {
            return Err(AiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request_body",
                "the request body could not be read",
            ))
        }
    };
    if !op.has_body() {
        return Ok((
            Intake {
                op,
                request: None,
                settings: settings.clone(),
                measure,
            },
            bytes,
        ));
    }
    let request = read_request(op, settings, measure, bytes.clone()).map_err(|e| {
        AiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            e.to_string(),
        )
    })?;
    if let Ok(v) = HeaderValue::from_str(&request.model) {
        headers.insert(MODEL_HEADER, v);
    }
    Ok((
        Intake {
            op,
            request: Some(request),
            settings: settings.clone(),
            measure,
        },
        bytes,
    ))
}

/// `Retry-After` in seconds (the delta form; HTTP dates count as unknown).
pub fn retry_after_secs(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| s.ceil() as u64)
}
