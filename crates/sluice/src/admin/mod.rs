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
        if path == "/budgets" {
            return self.budgets(&req).await;
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

impl Admin {
    /// `GET /budgets?tenant=…&user=…&key=…&model=…&route=…&client=…&header.<name>=…`: spend and
    /// remaining of every budget in effect, for the bucket those values name. Needs the admin
    /// token when one is configured (spend per tenant is not for everyone on the host).
    async fn budgets(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        if let Some(k) = &self.keys {
            if !k.authorized(req.headers()) {
                return json_status(
                    StatusCode::UNAUTHORIZED,
                    &serde_json::json!({"error": "a valid admin token is required (Authorization: Bearer …)"}),
                );
            }
        }
        let mut q = std::collections::HashMap::new();
        for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
            q.insert(k.into_owned(), v.into_owned());
        }
        let mut identity = sluice_policy::auth::Identity::new(
            sluice_policy::auth::Method::ApiKey,
            std::sync::Arc::from(""),
        );
        let field = |name: &str| q.get(name).map(|v| std::sync::Arc::<str>::from(v.as_str()));
        identity.tenant = field("tenant");
        identity.user = field("user");
        identity.key_id = field("key");
        let mut headers = http::HeaderMap::new();
        for (k, v) in &q {
            if let Some(name) = k.strip_prefix("header.") {
                if let (Ok(n), Ok(v)) = (
                    http::HeaderName::from_bytes(name.as_bytes()),
                    http::HeaderValue::from_str(v),
                ) {
                    headers.insert(n, v);
                }
            }
        }
        let client = match q.get("client").map(|c| c.parse()) {
            None => std::net::IpAddr::from([0, 0, 0, 0]),
            Some(Ok(ip)) => ip,
            Some(Err(_)) => {
                return json_status(
                    StatusCode::BAD_REQUEST,
                    &serde_json::json!({"error": "client: not an IP address"}),
                )
            }
        };
        let facts = sluice_proxy::limits::Facts {
            identity: Some(&identity),
            headers: &headers,
            client,
            model: q.get("model").map(String::as_str),
            route: q.get("route").map_or("", String::as_str),
        };
        let policies = self.proxy.runtime().snapshot.rate_limit_policies();
        let budgets = self.proxy.limits.budgets(&policies, &facts).await;
        json(&serde_json::json!({ "budgets": budgets }))
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
