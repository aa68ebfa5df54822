//! Shared helpers for the end-to-end test files `tls_http2`, `websocket`, `streaming` and
//! `limits` (the reload/shutdown/routing tests use `tests/support/mod.rs` instead).
//!
//! Each test builds a small "cluster" as Kubernetes-shaped objects (`serde_json::Value`s emitted
//! as YAML by the testkit), writes it to a fresh temp dir and starts the real `sluice` binary on
//! it. Upstreams bind kernel-assigned ephemeral ports on 127.0.0.1. The gateway's listener and
//! admin ports are picked at random *below* the kernel's ephemeral range (so no outgoing
//! connection of any test can take them between the pick and the bind), checked to be free,
//! never handed out twice in one process, and a start that still loses a port race is retried
//! with new ports ([`start`]). So tests in one file (and several files) run in parallel without
//! sharing anything. Synchronisation is on observable state with deadlines ([`eventually`]).

#![allow(dead_code)] // every test file uses a different subset

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_testkit::k8s::{self, to_yaml};
use sluice_testkit::{GatewayOptions, GatewayProcess, LeafCert, TempDir};

pub const NS: &str = "default";
pub const GATEWAY: &str = "gw";
pub const CLASS: &str = "sluice";
pub const CONTROLLER: &str = "sluice.dev/gateway-controller";
pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A port that is free on 127.0.0.1 right now, outside the kernel's ephemeral range, and not
/// handed out before by this process.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    const LOWEST: u16 = 10_000;
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if ephemeral_start < LOWEST + 1_000 {
        // No room below the ephemeral range: let the kernel choose.
        return sluice_testkit::gateway::free_port(LOCALHOST).expect("a free port on 127.0.0.1");
    }
    let span = u64::from(ephemeral_start - LOWEST);
    for _ in 0..1_000 {
        let offset = u16::try_from(sluice_testkit::random_below(span)).expect("below span");
        let port = LOWEST + offset;
        let fresh = HANDED_OUT
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(port);
        if fresh && std::net::TcpListener::bind((LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port found below {ephemeral_start}");
}

/// An HTTP listener on `port`.
pub fn http_listener(name: &str, port: u16) -> Value {
    json!({ "name": name, "port": port, "protocol": "HTTP" })
}

/// An HTTPS listener on `port`, terminating TLS with the `kubernetes.io/tls` Secret `secret`.
pub fn https_listener(name: &str, port: u16, hostname: Option<&str>, secret: &str) -> Value {
    let mut l = json!({
        "name": name,
        "port": port,
        "protocol": "HTTPS",
        "tls": { "mode": "Terminate", "certificateRefs": [{ "kind": "Secret", "name": secret }] },
    });
    if let Some(h) = hostname {
        l["hostname"] = json!(h);
    }
    l
}

/// The GatewayClass plus the Gateway `gw` with these listeners.
pub fn gateway(listeners: Vec<Value>) -> Vec<Value> {
    vec![
        k8s::gateway_class(CLASS, CONTROLLER),
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": { "name": GATEWAY, "namespace": NS },
            "spec": { "gatewayClassName": CLASS, "listeners": listeners },
        }),
    ]
}

/// An HTTPRoute attached to the whole Gateway `gw`.
pub fn route(name: &str, hostnames: &[&str], rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": { "name": name, "namespace": NS },
        "spec": {
            "parentRefs": [{ "name": GATEWAY }],
            "hostnames": hostnames,
            "rules": rules,
        },
    })
}

/// A rule sending requests whose path starts with `prefix` to `backend_ref`.
pub fn prefix_rule(prefix: &str, backend_ref: Value) -> Value {
    json!({
        "matches": [{ "path": { "type": "PathPrefix", "value": prefix } }],
        "backendRefs": [backend_ref],
    })
}

/// A backendRef to port `port` of the Service `name`.
pub fn service_ref(name: &str, port: u16) -> Value {
    json!({ "name": name, "port": port })
}

/// A backendRef to the `Backend` `name` (its only port).
pub fn backend_ref(name: &str) -> Value {
    json!({ "group": "gateway.networking.k8s.io", "kind": "Backend", "name": name })
}

/// Service port number every test Service exposes (the endpoints listen elsewhere).
pub const SERVICE_PORT: u16 = 8080;

/// A Service `name` with one port `http` (8080) plus an EndpointSlice whose single endpoint is
/// `endpoint`; `app_protocol` is set on both ports (e.g. `kubernetes.io/h2c`).
pub fn service(name: &str, endpoint: SocketAddr, app_protocol: Option<&str>) -> Vec<Value> {
    let mut port = json!({ "name": "http", "port": SERVICE_PORT, "protocol": "TCP" });
    if let Some(ap) = app_protocol {
        port["appProtocol"] = json!(ap);
    }
    let svc = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": name, "namespace": NS },
        "spec": { "ports": [port] },
    });
    let slice = k8s::endpoint_slice(
        &format!("{name}-abc12"),
        NS,
        name,
        &[k8s::SlicePort {
            name: "http".to_owned(),
            port: endpoint.port(),
            protocol: "TCP".to_owned(),
            app_protocol: app_protocol.map(str::to_owned),
        }],
        &[k8s::Endpoint {
            ip: endpoint.ip(),
            pod: format!("{name}-pod"),
            ready: true,
        }],
    );
    vec![svc, slice]
}

/// A `gateway.networking.k8s.io/v1alpha1` Backend with this `spec.destination`.
pub fn backend(name: &str, destination: Value) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1alpha1",
        "kind": "Backend",
        "metadata": { "name": name, "namespace": NS },
        "spec": { "destination": destination },
    })
}

/// A ConfigMap holding `ca.crt` (what `caBundleRef` points at by default).
pub fn ca_config_map(name: &str, ca_pem: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": name, "namespace": NS },
        "data": { "ca.crt": ca_pem },
    })
}

/// A `kubernetes.io/tls` Secret with this certificate and key.
pub fn tls_secret(name: &str, leaf: &LeafCert) -> Value {
    k8s::tls_secret(name, NS, leaf.cert_pem(), leaf.key_pem())
}

/// The objects for the common case: one HTTP listener on `port` and a catch-all route `main`
/// to `backend_ref`, plus `extra` objects (Services, Backends, ...).
pub fn simple_config(port: u16, backend_ref: Value, extra: Vec<Value>) -> Vec<Value> {
    let mut objects = gateway(vec![http_listener("http", port)]);
    objects.push(route("main", &[], vec![prefix_rule("/", backend_ref)]));
    objects.extend(extra);
    objects
}

/// A running gateway plus the directory holding its configuration.
pub struct Gateway {
    pub process: GatewayProcess,
    pub config_dir: TempDir,
    /// The listener port the configuration was built with.
    pub port: u16,
}

impl Gateway {
    /// Where the listener on [`Gateway::port`] is bound.
    pub fn addr(&self) -> SocketAddr {
        self.process.listener_addr(self.port)
    }
}

impl Deref for Gateway {
    type Target = GatewayProcess;
    fn deref(&self) -> &GatewayProcess {
        &self.process
    }
}

impl DerefMut for Gateway {
    fn deref_mut(&mut self) -> &mut GatewayProcess {
        &mut self.process
    }
}

/// Builds the configuration for a free listener port with `build(port)`, writes it as one
/// multi-document YAML file and starts `sluice serve` on it with the extra `args`; returns once
/// `/readyz` is 200 and the configuration loaded without errors.
pub async fn start(build: impl Fn(u16) -> Vec<Value>, args: &[&str]) -> Gateway {
    start_with(build, |o| args.iter().fold(o, |o, a| o.arg(*a))).await
}

/// Like [`start`], with full control over the harness options. If a port picked for the
/// listener or the admin server was taken in the meantime, starts again with new ports.
pub async fn start_with(
    build: impl Fn(u16) -> Vec<Value>,
    configure: impl Fn(GatewayOptions) -> GatewayOptions,
) -> Gateway {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let port = free_port();
        let config_dir = TempDir::new("e2e-config").expect("config temp dir");
        let yaml = k8s::join_documents(build(port).iter().map(to_yaml));
        let file = config_dir.write("config.yaml", yaml).expect("write config");
        let options = configure(
            GatewayOptions::new(env!("CARGO_BIN_EXE_sluice"), file)
                .admin_addr(SocketAddr::new(LOCALHOST, free_port()))
                .ready_timeout(Duration::from_secs(20)),
        );
        let process = match GatewayProcess::start(options).await {
            Ok(p) => p,
            Err(e) if attempts < 3 && e.to_string().contains("Address already in use") => {
                eprintln!("port race lost, retrying with new ports: {e}");
                continue;
            }
            Err(e) => panic!("gateway starts and becomes ready: {e}"),
        };
        let status = process.config_status().await.expect("/config/status");
        assert!(
            status.ok && status.errors.is_empty(),
            "configuration must load cleanly: {status:?}"
        );
        return Gateway {
            process,
            config_dir,
            port,
        };
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The access log lines (parsed) once at least `count` have been written.
pub async fn access_log_records(gw: &Gateway, count: usize) -> Vec<Value> {
    let path = gw.access_log_path().expect("access log file").to_owned();
    eventually(
        Duration::from_secs(5),
        &format!("{count} access log line(s) in {}", path.display()),
        || {
            let path = path.clone();
            async move {
                let text = std::fs::read_to_string(&path).ok()?;
                let records: Vec<Value> = text
                    .lines()
                    .map(|l| serde_json::from_str(l).expect("access log line is JSON"))
                    .collect();
                (records.len() >= count).then_some(records)
            }
        },
    )
    .await
}

/// Peak resident set size (`VmHWM`) of a process, in bytes.
pub fn peak_rss_bytes(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmHWM in /proc/<pid>/status")
}
