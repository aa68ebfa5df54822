//! Responses the gateway gives itself, each with the status the spec asks for.

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};

use crate::body::{self, Body};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalReply {
    /// No listener, host or rule matches: 404.
    NoRoute,
    /// On HTTPS, the Host names a different listener than the TLS SNI chose: 421.
    Misdirected,
    /// The rule has no usable backend (none listed, all weights 0, or an unresolved reference): 500.
    InvalidBackend,
    /// The backend exists but has no ready endpoint: 503.
    NoEndpoints,
    /// Connecting to the upstream failed: 503.
    UpstreamConnect,
    /// The upstream closed or reset before sending response headers: 502.
    UpstreamFailed,
    /// `timeouts.request` or `timeouts.backendRequest` elapsed: 504.
    Timeout,
    /// The request body could not be read while buffering it for retries: 400.
    BadRequestBody,
}

impl LocalReply {
    pub fn status(self) -> StatusCode {
        match self {
            LocalReply::NoRoute => StatusCode::NOT_FOUND,
            LocalReply::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            LocalReply::InvalidBackend => StatusCode::INTERNAL_SERVER_ERROR,
            LocalReply::NoEndpoints | LocalReply::UpstreamConnect => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            LocalReply::UpstreamFailed => StatusCode::BAD_GATEWAY,
            LocalReply::Timeout => StatusCode::GATEWAY_TIMEOUT,
            LocalReply::BadRequestBody => StatusCode::BAD_REQUEST,
        }
    }

    /// Short machine-readable reason, used in the access log and the body.
    pub fn reason(self) -> &'static str {
        match self {
            LocalReply::NoRoute => "no_route",
            LocalReply::Misdirected => "misdirected_request",
            LocalReply::InvalidBackend => "invalid_backend",
            LocalReply::NoEndpoints => "no_healthy_upstream",
            LocalReply::UpstreamConnect => "upstream_connect_error",
            LocalReply::UpstreamFailed => "upstream_reset",
            LocalReply::Timeout => "timeout",
            LocalReply::BadRequestBody => "bad_request_body",
        }
    }

    fn message(self) -> &'static str {
        match self {
            LocalReply::NoRoute => "no route matches this request",
            LocalReply::Misdirected => {
                "the Host does not belong to the listener the TLS server name selected"
            }
            LocalReply::InvalidBackend => "the route has no valid backend",
            LocalReply::NoEndpoints => "the backend has no ready endpoint",
            LocalReply::UpstreamConnect => "could not connect to the backend",
            LocalReply::UpstreamFailed => "the backend closed the connection before responding",
            LocalReply::Timeout => "the backend did not respond in time",
            LocalReply::BadRequestBody => "the request body could not be read",
        }
    }

    pub fn response(self) -> Response<Body> {
        let text = format!("{}: {}\n", self.reason(), self.message());
        let mut resp = Response::new(body::full(text));
        *resp.status_mut() = self.status();
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    }
}
