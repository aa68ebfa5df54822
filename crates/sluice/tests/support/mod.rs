//! Helpers shared by the behaviour tests (`reload`, `shutdown`, `routing_behaviour`,
//! `validate_cli`). Every test file includes this module with `mod support;` and uses a part of
//! it, hence the `dead_code` allowance.
//!
//! Isolation: each [`TestEnv`] gets its own loopback address `127.1xx.y.z` (Linux routes all of
//! 127.0.0.0/8 to `lo`; away from the `127.0.0.x` / `127.1.x.x` addresses the conformance suite
//! uses), its own temp directory and free ports on that address, so tests run in parallel — in
//! one process or several — without sharing sockets. Upstreams listen on `127.0.0.1:<ephemeral>` (bound by the kernel, no race).
//!
//! Synchronisation is always on observable state with a deadline (`/config/status`, `/readyz`,
//! an upstream having received a request, a port refusing connections), never on fixed sleeps.
#![allow(dead_code)]

use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Value};
use sluice_testkit::gateway::free_port;
use sluice_testkit::k8s;
use sluice_testkit::upstream::{full, Body};
use sluice_testkit::{ConfigStatus, GatewayOptions, GatewayProcess, TempDir, Upstream};
use tokio::sync::{watch, Semaphore};

/// Namespace of every generated object.
pub const NS: &str = "default";
/// Name of the generated Gateway.
pub const GATEWAY: &str = "gw";
const CLASS: &str = "sluice";
const CONTROLLER: &str = "sluice.dev/gateway-controller";
/// Poll interval for deadline-bounded waits.
pub const POLL: Duration = Duration::from_millis(10);

/// The `sluice` binary under test.
pub fn sluice_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sluice"))
}

/// A loopback address no other test of this process has: `127.100-199.x.1-254`.
pub fn unique_loopback_ip() -> Ipv4Addr {
    static TAKEN: Mutex<Option<HashSet<Ipv4Addr>>> = Mutex::new(None);
    let mut taken = TAKEN.lock().unwrap_or_else(|p| p.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    loop {
        let r = |n: u64| u8::try_from(sluice_testkit::random_below(n)).unwrap_or(0);
        let ip = Ipv4Addr::new(127, 100 + r(100), r(256), 1 + r(254));
        if taken.insert(ip) {
            return ip;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration objects
// ---------------------------------------------------------------------------------------------

pub fn gateway_class() -> Value {
    k8s::gateway_class(CLASS, CONTROLLER)
}

/// The Gateway `default/gw` with HTTP listeners `(name, port)`; it binds on `--bind-address`.
pub fn gateway(listeners: &[(&str, u16)]) -> Value {
    let listeners: Vec<Value> = listeners
        .iter()
        .map(|(name, port)| json!({"name": name, "port": port, "protocol": "HTTP"}))
        .collect();
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": GATEWAY, "namespace": NS},
        "spec": {"gatewayClassName": CLASS, "listeners": listeners},
    })
}

/// A Service `default/<name>` with one unnamed port 80.
pub fn service(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"ports": [{"port": 80, "protocol": "TCP"}]},
    })
}

/// One EndpointSlice per address (each may have its own port) for Service `service`.
pub fn endpoints(service: &str, addrs: &[SocketAddr], ready: bool) -> Vec<Value> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": format!("{service}-{i}"),
                    "namespace": NS,
                    "labels": {"kubernetes.io/service-name": service},
                },
                "addressType": "IPv4",
                "ports": [{"name": "", "port": addr.port(), "protocol": "TCP"}],
                "endpoints": [{"addresses": [addr.ip().to_string()], "conditions": {"ready": ready}}],
            })
        })
        .collect()
}

/// A Service plus its (ready) endpoints.
pub fn service_at(name: &str, addrs: &[SocketAddr]) -> Vec<Value> {
    let mut docs = vec![service(name)];
    docs.extend(endpoints(name, addrs, true));
    docs
}

/// A `backendRefs` entry for Service `name` port 80.
pub fn backend(name: &str) -> Value {
    json!({"name": name, "port": 80})
}

/// A rule matching `PathPrefix path` and forwarding to `backends`; add `filters`, `timeouts`,
/// `retry` to the returned value as needed.
pub fn rule(path: &str, backends: Vec<Value>) -> Value {
    json!({
        "matches": [{"path": {"type": "PathPrefix", "value": path}}],
        "backendRefs": backends,
    })
}

/// A `ResponseHeaderModifier` filter setting one header.
pub fn set_response_header(name: &str, value: &str) -> Value {
    json!({
        "type": "ResponseHeaderModifier",
        "responseHeaderModifier": {"set": [{"name": name, "value": value}]},
    })
}

/// The HTTPRoute `default/<name>` attached to every listener of the Gateway.
pub fn route(name: &str, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"parentRefs": [{"name": GATEWAY}], "rules": rules},
    })
}

/// A multi-document YAML stream of `docs`.
pub fn yaml(docs: &[Value]) -> String {
    k8s::join_documents(docs.iter().map(k8s::to_yaml))
}

// ---------------------------------------------------------------------------------------------
// Test environment and gateway process
// ---------------------------------------------------------------------------------------------

/// One test's address, directory and config file.
pub struct TestEnv {
    pub ip: Ipv4Addr,
    pub dir: TempDir,
    /// The `--config` file.
    pub config: PathBuf,
}

impl TestEnv {
    pub fn new(name: &str) -> Self {
        let dir = TempDir::new(name).expect("create temp dir");
        let config = dir.path().join("config.yaml");
        Self {
            ip: unique_loopback_ip(),
            dir,
            config,
        }
    }

    /// A port nothing listens on at this test's address (for listeners and dead endpoints).
    pub fn free_port(&self) -> u16 {
        free_port(IpAddr::V4(self.ip)).expect("find a free port")
    }

    pub fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.ip), port)
    }

    /// Replace the config file atomically (write a sibling, then rename over it), the way
    /// editors and Kubernetes volume updates do, so the watcher never sees a half-written file.
    pub fn write_config(&self, docs: &[Value]) {
        self.write_config_text(&yaml(docs));
    }

    pub fn write_config_text(&self, text: &str) {
        let tmp = self.dir.path().join("config.yaml.tmp");
        std::fs::write(&tmp, text).expect("write config");
        std::fs::rename(&tmp, &self.config).expect("rename config into place");
    }

    /// Rewrite the config file in place (truncate, then write), as `cat >` or many editors do.
    pub fn write_config_in_place(&self, docs: &[Value]) {
        std::fs::write(&self.config, yaml(docs)).expect("write config");
    }

    /// Options for `sluice serve` on this test's address, access log off.
    pub fn options(&self) -> GatewayOptions {
        GatewayOptions::new(sluice_bin(), &self.config)
            .bind_address(IpAddr::V4(self.ip))
            .admin_ip(IpAddr::V4(self.ip))
            .access_log("off")
    }

    pub async fn start(&self) -> GatewayProcess {
        self.start_with(self.options()).await
    }

    pub async fn start_with(&self, options: GatewayOptions) -> GatewayProcess {
        match GatewayProcess::start(options).await {
            Ok(g) => g,
            Err(e) => panic!("gateway did not start: {e}"),
        }
    }
}

/// `attempts` of `/config/status` (every reload attempt, counting the initial load).
pub fn attempts(status: &ConfigStatus) -> u64 {
    status
        .extra
        .get("attempts")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// `warnings` of `/config/status`.
pub fn warnings(status: &ConfigStatus) -> Vec<String> {
    status
        .extra
        .get("warnings")
        .and_then(Value::as_array)
        .map(|w| {
            w.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Poll `/config/status` until `done` holds; panics with the last status and the logs after
/// `timeout`.
pub async fn wait_status(
    gateway: &GatewayProcess,
    timeout: Duration,
    what: &str,
    done: impl Fn(&ConfigStatus) -> bool,
) -> ConfigStatus {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match gateway.config_status().await {
            Ok(s) if done(&s) => return s,
            Ok(s) => format!("{s:?}"),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            panic!(
                "{what}: not reached after {timeout:?}; last status: {last}\n{}",
                gateway.logs_tail(40)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Wait until `addr` refuses connections (a closed listener). Other connect errors fail.
pub async fn wait_refused(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(()),
            // A connection caught in the backlog while the listener closes is reset: the socket
            // is going away, so keep probing until connections are refused outright.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => return Err(format!("connect to {addr}: unexpected error {e}")),
            Ok(stream) => drop(stream),
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{addr} still accepts connections after {timeout:?}"
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Upstreams
// ---------------------------------------------------------------------------------------------

/// A response with `status`, a text body and extra headers.
pub fn reply(status: u16, body: impl Into<Bytes>, headers: &[(&str, &str)]) -> Response<Body> {
    let mut response = Response::new(full(body.into()));
    *response.status_mut() = StatusCode::from_u16(status).expect("valid status");
    for (name, value) in headers {
        response.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            http::HeaderValue::from_str(value).expect("header value"),
        );
    }
    response
}

/// An upstream answering every request `200 <name>` with `x-upstream: <name>`.
pub async fn named_upstream(name: &'static str) -> Upstream {
    Upstream::spawn(move |_req: Request<Incoming>| async move {
        reply(200, name, &[("x-upstream", name)])
    })
    .await
    .expect("spawn upstream")
}

/// One request as an upstream received it (body fully read).
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Everything a recording upstream received, with a way to wait for more.
pub struct Recorder {
    seen: Mutex<Vec<Seen>>,
    count: watch::Sender<usize>,
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            seen: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
        })
    }

    /// Store `seen`; returns how many requests for the same path (without query) arrived so
    /// far, this one included.
    fn record(&self, seen: Seen) -> usize {
        let mut all = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let path = path_only(&seen.path).to_owned();
        all.push(seen);
        let nth = all.iter().filter(|s| path_only(&s.path) == path).count();
        drop(all);
        self.count.send_modify(|n| *n += 1);
        nth
    }

    pub fn all(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Requests whose path (without query) is `path`.
    pub fn for_path(&self, path: &str) -> Vec<Seen> {
        self.all()
            .into_iter()
            .filter(|s| path_only(&s.path) == path)
            .collect()
    }

    /// Wait until `done` holds for the recorded requests.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Seen]) -> bool,
    ) -> Vec<Seen> {
        let mut changed = self.count.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let all = self.all();
            if done(&all) {
                return all;
            }
            let paths: Vec<String> = all
                .iter()
                .map(|s| format!("{} {}", s.method, s.path))
                .collect();
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                panic!("upstream: {what} not seen after {timeout:?}; received: {paths:?}");
            }
        }
    }
}

fn path_only(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// An upstream that records every request (body included) in `recorder`, then answers with
/// `respond(request, nth)`, `nth` being the 1-based count of requests for that path so far.
pub async fn recording_upstream<F, Fut>(recorder: Arc<Recorder>, respond: F) -> Upstream
where
    F: Fn(Seen, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let respond = Arc::new(respond);
    Upstream::spawn(move |req: Request<Incoming>| {
        let recorder = recorder.clone();
        let respond = respond.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) => return reply(400, format!("body: {e}"), &[]),
            };
            let seen = Seen {
                method: parts.method,
                path: parts
                    .uri
                    .path_and_query()
                    .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned()),
                headers: parts.headers,
                body,
            };
            let nth = recorder.record(seen.clone());
            respond(seen, nth).await
        }
    })
    .await
    .expect("spawn upstream")
}

/// A gate upstream handlers wait on until the test opens it (one request per permit).
pub struct Gate(Semaphore);

impl Gate {
    pub fn new() -> Arc<Self> {
        Arc::new(Self(Semaphore::new(0)))
    }

    pub async fn pass(&self) {
        self.0
            .acquire()
            .await
            .expect("gate is never closed")
            .forget();
    }

    pub fn open(&self, requests: usize) {
        self.0.add_permits(requests);
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

/// The value of the sample `name{labels...}` in Prometheus/OpenMetrics text: the sample whose
/// label set equals `labels` exactly (order-insensitive). `None` if there is none.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    want.sort();
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, mut got) = match series.split_once('{') {
            Some((metric, rest)) => (metric, parse_labels(rest.strip_suffix('}')?)?),
            None => (series, Vec::new()),
        };
        got.sort();
        (metric == name && got == want)
            .then(|| value.parse().ok())
            .flatten()
    })
}

/// `a="x",b="y"` → pairs (values may contain escaped quotes and commas).
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => {
                    let (_, escaped) = chars.next()?;
                    value.push(if escaped == 'n' { '\n' } else { escaped });
                }
                '"' => break i,
                c => value.push(c),
            }
        };
        out.push((key.trim_start_matches(',').to_owned(), value));
        rest = &after[end + 1..];
    }
    Some(out)
}
