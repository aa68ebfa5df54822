//! The admin server: health, readiness, Prometheus metrics, the configuration in effect, and
//! (with an admin token) API key management under `/keys`. It listens on loopback by default
//! and never shows secret values.

mod keys;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use sluice_proxy::Proxy;
use tokio::net::TcpListener;

use crate::reload::Reloader;

pub struct Admin {
    pub proxy: Arc<Proxy>,
    pub reloader: Arc<Reloader>,
    pub ready: AtomicBool,
    /// Key management; `None` when no admin token is configured.
    pub keys: Option<keys::KeyAdmin>,
}

pub use keys::KeyAdmin;

impl Admin {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
        TcpListener::bind(addr).await
    }

    pub async fn run(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let admin = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(admin.handle(req).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        if path == "/keys" || path.starts_with("/keys/") {
            return match &self.keys {
                Some(k) => k.handle(req).await,
                None => json_status(
                    StatusCode::NOT_FOUND,
                    &serde_json::json!({"error": "API key management is off: start sluice with --admin-token-file (or SLUICE_ADMIN_TOKEN)"}),
                ),
            };
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        }
        match req.uri().path() {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" => {
                if self.ready.load(Ordering::Acquire) {
                    text(StatusCode::OK, "ready\n")
                } else {
                    text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                }
            }
            "/metrics" => {
                let mut r = Response::new(Full::new(Bytes::from(self.proxy.metrics.encode())));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                r
            }
            "/config" => {
                let rt = self.proxy.runtime();
                json(&serde_json::json!({
                    "generation": rt.generation,
                    "objects": rt.snapshot.redacted_objects,
                    "compiled": rt.snapshot.describe(),
                }))
            }
            "/config/status" => {
                json(&serde_json::to_value(self.reloader.status()).unwrap_or_default())
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(v: &serde_json::Value) -> Response<Full<Bytes>> {
    json_status(StatusCode::OK, v)
}

fn json_status(status: StatusCode, v: &serde_json::Value) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec_pretty(v).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}
