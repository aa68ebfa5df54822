//! An echo upstream faithful to the Gateway API conformance `echo-basic` backend.
//!
//! Conformance expectations are written against what `echo-basic` reports (its JSON body says
//! which pod/namespace served a request and exactly what request reached it), so reproducing its
//! observable behaviour is what lets us reuse the upstream test data unchanged:
//!
//! * `200` with `Content-Type: application/json` and a body
//!   `{"path","host","method","proto","headers","httpPort","namespace","ingress","service","pod"}`
//!   (plus `"tls"` when served over TLS); `path` is the raw request target including the query,
//!   `headers` uses Go's canonical header names and omits `Host`, like Go's `r.Header`.
//! * `?delay=<Go duration>` (e.g. `1s`, `500ms`) sleeps before answering; a bad duration is a 500.
//! * request header `X-Echo-Set-Header: Name: value, Other: value2` sets those response headers.
//! * `/health` answers `OK`, `/status/NNN` answers with status NNN.
//!
//! Not reproduced: Go `ServeMux` path-cleaning redirects, the `/ws` WebSocket echo (build one with
//! [`crate::upstream`] when needed) and gRPC mode.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use crate::upstream::{full, Body, ConnInfo, Upstream, UpstreamBuilder};

/// Identity of an echo "pod": what it reports in every response.
#[derive(Clone, Debug, Default)]
pub struct EchoConfig {
    /// Reported as `namespace` (the `NAMESPACE` env var of the real pod).
    pub namespace: String,
    /// Reported as `pod` (the `POD_NAME` env var); conformance matches backends by its prefix.
    pub pod: String,
    /// Reported as `ingress` (empty in Gateway API conformance).
    pub ingress: String,
    /// Reported as `service` (empty in Gateway API conformance).
    pub service: String,
}

impl EchoConfig {
    pub fn new(namespace: impl Into<String>, pod: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            pod: pod.into(),
            ..Self::default()
        }
    }

    /// A handler for [`UpstreamBuilder::spawn`].
    pub fn handler(
        self,
    ) -> impl Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>>
           + Send
           + Sync
           + 'static {
        let config = Arc::new(self);
        move |req| {
            let config = Arc::clone(&config);
            Box::pin(async move { respond(&config, req).await })
        }
    }

    /// Spawn a plaintext echo on `ip` with an ephemeral port.
    pub async fn spawn(self, ip: IpAddr) -> io::Result<Upstream> {
        Upstream::builder().ip(ip).spawn(self.handler()).await
    }

    /// Spawn with full control over address and TLS.
    pub async fn spawn_with(self, builder: UpstreamBuilder) -> io::Result<Upstream> {
        builder.spawn(self.handler()).await
    }
}

/// The echo body, as serialized by the server and parsed back by tests.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct EchoedRequest {
    pub path: String,
    pub host: String,
    pub method: String,
    pub proto: String,
    pub headers: BTreeMap<String, Vec<String>>,
    #[serde(rename = "httpPort", default)]
    pub http_port: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub ingress: String,
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub pod: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<EchoedTls>,
}

/// TLS facts reported by the echo (subset of echo-basic's `TLSAssertions`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct EchoedTls {
    pub version: String,
    #[serde(rename = "serverName")]
    pub server_name: String,
    #[serde(rename = "negotiatedProtocol", default)]
    pub negotiated_protocol: String,
}

impl EchoedRequest {
    /// All values of a header (case-insensitive name) joined with `,`, as the conformance
    /// harness compares them; `None` when absent.
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.iter().map(String::as_str))
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    }
}

/// Produce the echo-basic response for `req` (the body is never read, like echo-basic).
/// Public so custom upstreams can fall back to echo behaviour for some paths.
pub async fn respond<B>(config: &EchoConfig, req: Request<B>) -> Response<Body> {
    let path_only = req.uri().path().replace("//", "/");
    let request_uri = request_uri(&req);
    if path_only == "/health" {
        return plain(StatusCode::OK, "OK");
    }
    if path_only.starts_with("/status/") {
        let code = request_uri
            .strip_prefix("/status/")
            .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|c| c.parse::<u16>().ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
        return plain(code, "");
    }
    if let Some(delay) = query_value(req.uri().query().unwrap_or(""), "delay") {
        if !delay.is_empty() {
            match parse_go_duration(&delay) {
                Ok(d) => tokio::time::sleep(d).await,
                Err(message) => return error_json(&message),
            }
        }
    }

    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers() {
        if name == http::header::HOST {
            continue;
        }
        headers
            .entry(canonical_header_name(name.as_str()))
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let conn = req.extensions().get::<ConnInfo>();
    let echoed = EchoedRequest {
        path: request_uri,
        host: request_host(&req),
        method: req.method().as_str().to_owned(),
        proto: proto(req.version()).to_owned(),
        headers,
        http_port: conn.map(|c| c.local.port().to_string()).unwrap_or_default(),
        namespace: config.namespace.clone(),
        ingress: config.ingress.clone(),
        service: config.service.clone(),
        pod: config.pod.clone(),
        tls: conn.and_then(|c| c.tls.as_ref()).map(|t| EchoedTls {
            version: t.version.clone().unwrap_or_default(),
            server_name: t.server_name.clone().unwrap_or_default(),
            negotiated_protocol: t.alpn.clone().unwrap_or_default(),
        }),
    };
    let body = match serde_json::to_vec_pretty(&echoed) {
        Ok(body) => body,
        Err(e) => return error_json(&e.to_string()),
    };
    let mut response = Response::new(full(body));
    apply_echo_set_headers(req.headers(), response.headers_mut());
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Go's `r.RequestURI`: the raw request target (origin-form path + query; `:path` for HTTP/2).
fn request_uri<B>(req: &Request<B>) -> String {
    let uri = req.uri();
    if req.version() < Version::HTTP_2 && uri.scheme().is_some() {
        return uri.to_string(); // absolute-form request target, as sent
    }
    uri.path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned())
}

/// Go's `r.Host`: the Host header, else the URI authority (`:authority` in HTTP/2).
fn request_host<B>(req: &Request<B>) -> String {
    req.headers()
        .get(http::header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default()
}

fn proto(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// echo-basic's `writeEchoResponseHeaders`: every `X-Echo-Set-Header` value is a comma-separated
/// list of `Name: value`; a repeated name appends `,value` to the first value.
fn apply_echo_set_headers(request: &http::HeaderMap, response: &mut http::HeaderMap) {
    for list in request.get_all("x-echo-set-header") {
        let list = String::from_utf8_lossy(list.as_bytes());
        for kv in list.split(',') {
            let (name, value) = kv.trim().split_once(':').unwrap_or((kv.trim(), ""));
            // Go silently drops invalid field names (e.g. the empty one from an empty list).
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            let value = value.trim();
            let combined = match response.get(&name) {
                Some(existing) => {
                    format!("{},{value}", String::from_utf8_lossy(existing.as_bytes()))
                }
                None => value.to_owned(),
            };
            if let Ok(v) = HeaderValue::from_str(&combined) {
                response.insert(name, v);
            }
        }
    }
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `x-foo-bar` → `X-Foo-Bar`; names containing bytes
/// that are not valid token characters are returned unchanged.
pub fn canonical_header_name(name: &str) -> String {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid {
        return name.to_owned();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// First value of `key` in a URL query string (form-decoded), like Go's `FormValue`.
pub fn query_value(query: &str, key: &str) -> Option<String> {
    query.split(['&', ';']).find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(k) == key).then(|| form_decode(v))
    })
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Go's `time.ParseDuration` for non-negative durations: `1s`, `500ms`, `1.5h`, `2m30s`, `0`.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("time: invalid duration \"{s}\"");
    let rest = s.strip_prefix('+').unwrap_or(s);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() || rest.starts_with('-') {
        return Err(err());
    }
    let mut total = 0f64;
    let mut rest = rest;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration \"{s}\""))?;
        let number: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            unit => return Err(format!("time: unknown unit \"{unit}\" in duration \"{s}\"")),
        };
        total += number * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_nanos(total as u64))
}

fn plain(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
}

fn error_json(message: &str) -> Response<Body> {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut response = Response::new(full(body));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_follow_go() {
        assert_eq!(canonical_header_name("x-header-set"), "X-Header-Set");
        assert_eq!(canonical_header_name("CONTENT-type"), "Content-Type");
        assert_eq!(canonical_header_name("x_y"), "X_y");
        assert_eq!(canonical_header_name("bad name"), "bad name");
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("1x").is_err());
        assert!(parse_go_duration("").is_err());
    }

    #[test]
    fn query_values_are_form_decoded() {
        assert_eq!(query_value("a=1&delay=1s", "delay").as_deref(), Some("1s"));
        assert_eq!(query_value("x=a%20b+c", "x").as_deref(), Some("a b c"));
        assert_eq!(query_value("x=1", "delay"), None);
        assert_eq!(query_value("x=%zz%", "x").as_deref(), Some("%zz%"));
    }

    #[test]
    fn echo_set_header_semantics() {
        let mut req = http::HeaderMap::new();
        req.append("x-echo-set-header", HeaderValue::from_static("A: 1, B:2"));
        req.append("x-echo-set-header", HeaderValue::from_static("A: 3"));
        req.append("x-echo-set-header", HeaderValue::from_static(""));
        let mut resp = http::HeaderMap::new();
        apply_echo_set_headers(&req, &mut resp);
        assert_eq!(resp.get("a").map(|v| v.as_bytes()), Some(&b"1,3"[..]));
        assert_eq!(resp.get("b").map(|v| v.as_bytes()), Some(&b"2"[..]));
        assert_eq!(resp.len(), 2);
    }
}
