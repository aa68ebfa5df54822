//! Configuration reload against the real `sluice` binary and real loopback upstreams:
//!
//! * hot reload under continuous load, alternating valid and invalid files (50 writes);
//! * listeners added and removed by a reload while another listener keeps serving;
//! * SIGHUP with an unchanged file counts an attempt;
//! * a reload whose new listener cannot bind is rejected whole;
//! * a request in flight finishes on the configuration it started with;
//! * a config directory reloads as files come and go; a Kubernetes ConfigMap volume (symlink
//!   swap) reloads;
//! * TLS certificates rotate on reload, and a certificate that does not match its key is
//!   rejected;
//! * a burst of writes ends on the last version; a deleted file is an error, restoring it reloads.
//!
//! Every wait is on observable state (`/config/status`, an upstream having received a request, a
//! port refusing connections) with a deadline; nothing sleeps to synchronise.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sluice_testkit::{Alpn, BoxError, CertAuthority, ClientRequest};
use support::*;

/// Upper bound for one reload to show up in `/config/status` (debounce is ~150 ms; the rest is
/// slack for a loaded 2-core machine).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(15);
const ROUTE: &str = "reload";

async fn get(addr: SocketAddr, path: &str) -> sluice_testkit::ClientResponse {
    match ClientRequest::get(path)
        .timeout(Duration::from_secs(10))
        .send(addr)
        .await
    {
        Ok(r) => r,
        Err(e) => panic!("GET {path} via {addr}: {e}"),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

// ---------------------------------------------------------------------------------------------
// (a) hot reload under load
// ---------------------------------------------------------------------------------------------

/// Which upstream configuration version `v` routes to: even → `a`, odd → `b`.
fn upstream_of(version: u64) -> &'static str {
    match version % 2 {
        0 => "a",
        _ => "b",
    }
}

/// Version `v`: one route on `/` whose responses carry `x-config-version: v`, to upstream
/// `upstream_of(v)`.
fn versioned_config(port: u16, a: SocketAddr, b: SocketAddr, version: u64) -> Vec<Value> {
    let mut r = rule("/", vec![backend(&format!("svc-{}", upstream_of(version)))]);
    r["filters"] = json!([set_response_header(
        "x-config-version",
        &version.to_string()
    )]);
    let mut docs = vec![
        gateway_class(),
        gateway(&[("http", port)]),
        route(ROUTE, vec![r]),
    ];
    docs.extend(service_at("svc-a", &[a]));
    docs.extend(service_at("svc-b", &[b]));
    docs
}

/// A way to break the route's rule, and the field the error must name.
type Breakage = (&'static str, fn(&mut Value));

const BREAKAGES: &[Breakage] = &[
    ("spec.rules[0].timeouts.request", |r| {
        r["timeouts"] = json!({"request": "soon"});
    }),
    ("spec.rules[0].retry.codes[0]", |r| {
        r["retry"] = json!({"codes": [200], "attempts": 1});
    }),
    (
        "spec.rules[0].filters[0].responseHeaderModifier.set[0].name",
        |r| {
            r["filters"][0]["responseHeaderModifier"]["set"][0]["name"] = json!("bad header");
        },
    ),
    ("spec.rules[0].matches[0].path.value", |r| {
        r["matches"][0]["path"]["value"] = json!("no-leading-slash");
    }),
    ("spec.rules[0].backendRefs[0].port", |r| {
        r["backendRefs"][0]
            .as_object_mut()
            .expect("backendRef is an object")
            .remove("port");
    }),
];

/// An invalid configuration: a version that would be visible (≥ 1000) if it were ever served,
/// broken by `BREAKAGES[which]`. Returns the docs and the field the error must name.
fn broken_config(
    port: u16,
    a: SocketAddr,
    b: SocketAddr,
    which: usize,
) -> (Vec<Value>, &'static str) {
    let (field, breaks) = BREAKAGES[which % BREAKAGES.len()];
    let mut docs = versioned_config(port, a, b, 1000 + which as u64);
    let route = docs
        .iter_mut()
        .find(|d| d["kind"] == "HTTPRoute")
        .expect("config has a route");
    breaks(&mut route["spec"]["rules"][0]);
    (docs, field)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, BoxError> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes; errors show up on the sender.
        let _ = conn.await;
    });
    Ok(sender)
}

async fn send_on(
    sender: &mut Sender,
    addr: SocketAddr,
) -> Result<(StatusCode, HeaderMap, Bytes), BoxError> {
    sender.ready().await?;
    let request = Request::get("/")
        .header(http::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))?;
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok((parts.status, parts.headers, body))
}

/// What one load task saw.
#[derive(Debug, Default)]
struct LoadReport {
    requests: u64,
    failures: Vec<String>,
    versions: BTreeSet<u64>,
}

impl LoadReport {
    /// Checks one response: 200, a served (valid) version never older than the last one seen on
    /// this task, from the upstream that version routes to.
    fn check(&mut self, result: Result<(StatusCode, HeaderMap, Bytes), BoxError>, last: &mut u64) {
        self.requests += 1;
        let (status, headers, body) = match result {
            Ok(r) => r,
            Err(e) => {
                self.failures.push(format!("request error: {e}"));
                return;
            }
        };
        if status != StatusCode::OK {
            self.failures.push(format!(
                "status {status}: {}",
                String::from_utf8_lossy(&body)
            ));
            return;
        }
        let Some(version) = header(&headers, "x-config-version").and_then(|v| v.parse().ok())
        else {
            self.failures
                .push(format!("no x-config-version header: {headers:?}"));
            return;
        };
        if version >= 1000 {
            self.failures
                .push(format!("served the rejected configuration {version}"));
        }
        if version < *last {
            self.failures
                .push(format!("version went back from {last} to {version}"));
        }
        *last = version;
        let expected = upstream_of(version);
        if header(&headers, "x-upstream") != Some(expected) || body != expected.as_bytes() {
            self.failures.push(format!(
                "version {version} answered by {:?} (body {:?}), expected {expected}",
                header(&headers, "x-upstream"),
                String::from_utf8_lossy(&body)
            ));
        }
        self.versions.insert(version);
    }
}

/// Sends requests back to back on one keep-alive connection until `stop`; reconnects (and
/// records a failure) if the connection breaks.
async fn keepalive_load(addr: SocketAddr, stop: Arc<AtomicBool>) -> LoadReport {
    let mut report = LoadReport::default();
    let mut last = 0;
    let mut sender: Option<Sender> = None;
    while !stop.load(Ordering::Relaxed) {
        if sender.is_none() {
            match connect(addr).await {
                Ok(s) => sender = Some(s),
                Err(e) => {
                    report.requests += 1;
                    report.failures.push(format!("connect: {e}"));
                    continue;
                }
            }
        }
        let conn = sender.as_mut().expect("connected above");
        let result = send_on(conn, addr).await;
        if result.is_err() {
            sender = None;
        }
        report.check(result, &mut last);
        // Pacing only (keeps the 2-core machine responsive), not synchronisation.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    report
}

/// Sends requests each on a new connection until `stop` (exercises accept during reloads).
async fn fresh_connection_load(addr: SocketAddr, stop: Arc<AtomicBool>) -> LoadReport {
    let mut report = LoadReport::default();
    let mut last = 0;
    while !stop.load(Ordering::Relaxed) {
        let result = ClientRequest::get("/")
            .timeout(Duration::from_secs(10))
            .send(addr)
            .await
            .map(|r| (r.status, r.headers, r.body));
        report.check(result, &mut last);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    report
}

fn summary(label: &str, samples: &mut [Duration]) -> String {
    samples.sort();
    if samples.is_empty() {
        return format!("{label}: no samples");
    }
    format!(
        "{label}: n={} min={:?} median={:?} max={:?}",
        samples.len(),
        samples[0],
        samples[samples.len() / 2],
        samples[samples.len() - 1]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_reload_under_load_alternating_valid_and_invalid() {
    let a = named_upstream("a").await;
    let b = named_upstream("b").await;
    let env = TestEnv::new("reload-load");
    let port = env.free_port();
    env.write_config(&versioned_config(port, a.addr(), b.addr(), 0));
    let gw = env.start().await;
    let addr = gw.listener_addr(port);
    let config_file = env.config.display().to_string();

    let initial = gw.config_status().await.expect("status");
    assert_eq!((initial.generation, attempts(&initial)), (1, 1));
    let first = get(addr, "/").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-config-version").as_deref(), Some("0"));

    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        load.push(tokio::spawn(keepalive_load(addr, stop.clone())));
    }
    load.push(tokio::spawn(fresh_connection_load(addr, stop.clone())));

    let mut version = 0u64;
    let mut generation = 1u64;
    let mut expected_attempts = 1u64;
    let mut valid_latency = Vec::new();
    let mut invalid_latency = Vec::new();
    for write in 1..=50u64 {
        let valid = write % 2 == 1;
        let (docs, field) = if valid {
            (versioned_config(port, a.addr(), b.addr(), version + 1), "")
        } else {
            broken_config(port, a.addr(), b.addr(), (write / 2 - 1) as usize)
        };
        let written = Instant::now();
        // Half the writes replace the file atomically (rename), half rewrite it in place.
        if write % 4 < 2 {
            env.write_config(&docs);
        } else {
            env.write_config_in_place(&docs);
        }
        expected_attempts += 1;
        let what = format!(
            "write {write} ({})",
            if valid { "valid" } else { "invalid" }
        );
        let status = wait_status(&gw, RELOAD_TIMEOUT, &what, |s| {
            attempts(s) >= expected_attempts
        })
        .await;
        let latency = written.elapsed();
        assert_eq!(
            attempts(&status),
            expected_attempts,
            "{what}: one write must be one reload attempt: {status:?}"
        );
        if valid {
            version += 1;
            generation += 1;
            valid_latency.push(latency);
            assert!(status.ok, "{what} rejected: {status:?}");
            assert!(status.errors.is_empty(), "{what}: {status:?}");
            assert_eq!(status.generation, generation, "{what}: {status:?}");
        } else {
            invalid_latency.push(latency);
            assert!(!status.ok, "{what} accepted: {status:?}");
            assert_eq!(
                status.generation, generation,
                "{what}: the running configuration must stay: {status:?}"
            );
            // file: HTTPRoute namespace/name: field: message
            let prefix = format!("{config_file}: HTTPRoute {NS}/{ROUTE}: {field}: ");
            assert!(
                status.errors.iter().any(|e| e.starts_with(&prefix)),
                "{what}: no error starting with {prefix:?}: {:?}",
                status.errors
            );
        }
        // A fresh request shows the configuration in effect now.
        let response = get(addr, "/").await;
        assert_eq!(response.status, 200, "{what}: {}", response.text());
        assert_eq!(
            response.header("x-config-version"),
            Some(version.to_string()),
            "{what}"
        );
        assert_eq!(
            response.header("x-upstream").as_deref(),
            Some(upstream_of(version)),
            "{what}"
        );
    }

    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    let mut failures = Vec::new();
    let mut versions = BTreeSet::new();
    for (task, handle) in load.into_iter().enumerate() {
        let report = handle.await.expect("load task");
        assert!(
            report.requests >= 50,
            "load task {task} sent only {} requests",
            report.requests
        );
        total += report.requests;
        failures.extend(report.failures.iter().map(|f| format!("task {task}: {f}")));
        versions.extend(report.versions);
    }
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed, first ones: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert_eq!(
        versions,
        (0..=25).collect::<BTreeSet<u64>>(),
        "load saw every valid version and nothing else"
    );

    let status = gw.config_status().await.expect("status");
    assert_eq!(status.generation, 1 + 25);
    assert_eq!(attempts(&status), 1 + 50);
    let metrics = gw.metrics().await.expect("metrics");
    assert_eq!(
        metric_value(&metrics, "sluice_config_reloads_total", &[("result", "ok")]),
        Some(26.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            "sluice_config_reloads_total",
            &[("result", "failed")]
        ),
        Some(25.0)
    );
    assert_eq!(
        metric_value(&metrics, "sluice_config_generation", &[]),
        Some(26.0)
    );
    let log = std::fs::read_to_string(gw.stderr_path()).expect("gateway log");
    assert!(
        log.contains("configuration rejected") && log.contains(BREAKAGES[0].0),
        "rejections are logged with their errors:\n{}",
        gw.logs_tail(20)
    );
    eprintln!(
        "hot reload: {total} requests under load, 0 failed; {}; {}",
        summary("write→generation (valid)", &mut valid_latency),
        summary("write→attempt (invalid)", &mut invalid_latency)
    );
}

// ---------------------------------------------------------------------------------------------
// (b) listeners come and go
// ---------------------------------------------------------------------------------------------

fn listeners_config(listeners: &[(&str, u16)], echo: SocketAddr) -> Vec<Value> {
    let mut docs = vec![
        gateway_class(),
        gateway(listeners),
        route(ROUTE, vec![rule("/", vec![backend("svc")])]),
    ];
    docs.extend(service_at("svc", &[echo]));
    docs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listeners_come_and_go_while_others_keep_serving() {
    let upstream = named_upstream("up").await;
    let env = TestEnv::new("reload-listeners");
    let (main_port, extra_port) = (env.free_port(), env.free_port());
    env.write_config(&listeners_config(&[("http", main_port)], upstream.addr()));
    let gw = env.start().await;
    let main_addr = gw.listener_addr(main_port);
    let extra_addr = gw.listener_addr(extra_port);
    wait_refused(extra_addr, Duration::from_secs(1))
        .await
        .expect("extra port is not served before it is configured");

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(fresh_connection_checks(main_addr, stop.clone()));

    let both = [("http", main_port), ("extra", extra_port)];
    for round in 0..2u64 {
        // Add the listener: it accepts and routes.
        env.write_config(&listeners_config(&both, upstream.addr()));
        let generation = 2 + 2 * round;
        let status = wait_status(&gw, RELOAD_TIMEOUT, "listener added", |s| {
            s.generation >= generation
        })
        .await;
        assert!(status.ok, "{status:?}");
        let response = get(extra_addr, "/").await;
        assert_eq!(
            response.status,
            200,
            "new listener serves: {}",
            response.text()
        );
        assert_eq!(response.header("x-upstream").as_deref(), Some("up"));

        // Remove it: its port refuses connections.
        env.write_config(&listeners_config(&[("http", main_port)], upstream.addr()));
        let status = wait_status(&gw, RELOAD_TIMEOUT, "listener removed", |s| {
            s.generation > generation
        })
        .await;
        assert!(status.ok, "{status:?}");
        wait_refused(extra_addr, Duration::from_secs(5))
            .await
            .expect("removed listener's port refuses connections");
    }

    stop.store(true, Ordering::Relaxed);
    let (requests, failures) = load.await.expect("load task");
    assert!(
        requests >= 10,
        "only {requests} requests on the main listener"
    );
    assert!(
        failures.is_empty(),
        "main listener failed {} of {requests} requests: {failures:?}",
        failures.len()
    );
    assert_eq!(get(main_addr, "/").await.status, 200);
}

/// Requests on fresh connections to `addr` until `stop`: (count, failures).
async fn fresh_connection_checks(addr: SocketAddr, stop: Arc<AtomicBool>) -> (u64, Vec<String>) {
    let mut requests = 0;
    let mut failures = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        requests += 1;
        match ClientRequest::get("/")
            .timeout(Duration::from_secs(10))
            .send(addr)
            .await
        {
            Ok(r) if r.status == 200 => {}
            Ok(r) => failures.push(format!("status {}: {}", r.status, r.text())),
            Err(e) => failures.push(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (requests, failures)
}

// ---------------------------------------------------------------------------------------------
// (c) SIGHUP with an unchanged file
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_unchanged_file_counts_an_attempt() {
    let upstream = named_upstream("up").await;
    let env = TestEnv::new("reload-sighup");
    let port = env.free_port();
    env.write_config(&listeners_config(&[("http", port)], upstream.addr()));
    let mut gw = env.start().await;
    let before = gw.config_status().await.expect("status");
    assert_eq!(attempts(&before), 1);

    for n in 2..=3 {
        gw.reload().expect("SIGHUP");
        let status = wait_status(&gw, RELOAD_TIMEOUT, "SIGHUP reload", |s| attempts(s) >= n).await;
        assert_eq!(attempts(&status), n, "{status:?}");
        assert!(status.ok && status.errors.is_empty(), "{status:?}");
        let response = get(gw.listener_addr(port), "/").await;
        assert_eq!(response.status, 200);
    }
    let metrics = gw.metrics().await.expect("metrics");
    assert_eq!(
        metric_value(&metrics, "sluice_config_reloads_total", &[("result", "ok")]),
        Some(3.0),
        "{metrics}"
    );
}

// ---------------------------------------------------------------------------------------------
// (d) a reload whose listener cannot bind
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_needing_a_taken_port_is_rejected() {
    let upstream = named_upstream("up").await;
    let env = TestEnv::new("reload-port-taken");
    let (main_port, taken_port) = (env.free_port(), env.free_port());
    env.write_config(&listeners_config(&[("http", main_port)], upstream.addr()));
    let mut gw = env.start().await;
    let main_addr = gw.listener_addr(main_port);
    let taken_addr = gw.listener_addr(taken_port);

    // Another process (this test) holds the port the new listener needs.
    let squatter = std::net::TcpListener::bind(taken_addr).expect("bind the port first");
    let both = [("http", main_port), ("extra", taken_port)];
    env.write_config(&listeners_config(&both, upstream.addr()));
    let status = wait_status(&gw, RELOAD_TIMEOUT, "reload attempt", |s| attempts(s) >= 2).await;
    assert!(
        !status.ok,
        "reload with an unbindable port accepted: {status:?}"
    );
    assert_eq!(status.generation, 1, "{status:?}");
    assert!(
        status
            .errors
            .iter()
            .any(|e| e.contains(&format!("cannot listen on {taken_addr}"))),
        "error names the address: {:?}",
        status.errors
    );
    // The old configuration keeps serving; the squatter still owns its port.
    assert_eq!(get(main_addr, "/").await.status, 200);
    squatter
        .set_nonblocking(true)
        .expect("nonblocking squatter");
    let probe = tokio::net::TcpStream::connect(taken_addr)
        .await
        .expect("squatter accepts");
    drop(probe);
    assert!(
        squatter.accept().is_ok(),
        "the connection went to the squatter, not to the gateway"
    );

    // Once the port is free, the same file reloads fine.
    drop(squatter);
    gw.reload().expect("SIGHUP");
    let status = wait_status(&gw, RELOAD_TIMEOUT, "reload after port freed", |s| {
        attempts(s) >= 3
    })
    .await;
    assert!(status.ok, "{status:?}");
    assert_eq!(status.generation, 2);
    assert_eq!(get(taken_addr, "/").await.status, 200);
    assert_eq!(get(main_addr, "/").await.status, 200);
}

// ---------------------------------------------------------------------------------------------
// (e) in-flight requests keep their configuration
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inflight_request_finishes_on_the_config_it_started_with() {
    let recorder = Recorder::new();
    let gate = Gate::new();
    let slow = {
        let gate = gate.clone();
        recording_upstream(recorder.clone(), move |_, _| {
            let gate = gate.clone();
            async move {
                gate.pass().await;
                reply(200, "slow done", &[])
            }
        })
        .await
    };
    let fast = named_upstream("fast").await;
    let env = TestEnv::new("reload-inflight");
    let port = env.free_port();
    let config = |with_slow: bool| {
        let mut rules = vec![rule("/fast", vec![backend("fast")])];
        if with_slow {
            let mut r = rule("/slow", vec![backend("slow")]);
            r["filters"] = json!([set_response_header("x-config-version", "1")]);
            rules.push(r);
        }
        let mut docs = vec![
            gateway_class(),
            gateway(&[("http", port)]),
            route(ROUTE, rules),
        ];
        docs.extend(service_at("slow", &[slow.addr()]));
        docs.extend(service_at("fast", &[fast.addr()]));
        docs
    };
    env.write_config(&config(true));
    let gw = env.start().await;
    let addr = gw.listener_addr(port);

    let inflight = tokio::spawn(
        ClientRequest::get("/slow")
            .timeout(Duration::from_secs(30))
            .send(addr),
    );
    recorder
        .wait_until(Duration::from_secs(10), "the slow request", |s| {
            !s.is_empty()
        })
        .await;

    env.write_config(&config(false));
    let status = wait_status(&gw, RELOAD_TIMEOUT, "route removed", |s| s.generation >= 2).await;
    assert!(status.ok, "{status:?}");
    assert_eq!(
        get(addr, "/slow").await.status,
        404,
        "route is gone for new requests"
    );
    assert_eq!(get(addr, "/fast").await.status, 200);

    gate.open(1);
    let response = inflight
        .await
        .expect("request task")
        .expect("in-flight request completes");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "slow done");
    assert_eq!(
        response.header("x-config-version").as_deref(),
        Some("1"),
        "response filters of the old configuration still apply"
    );
    assert_eq!(recorder.all().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// (f) a config directory, (g) a Kubernetes ConfigMap volume
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_directory_reloads_when_files_come_and_go() {
    let upstream = named_upstream("up").await;
    let env = TestEnv::new("reload-dir");
    let port = env.free_port();
    let dir = env.dir.subdir("conf").expect("config dir");
    let mut base = vec![
        gateway_class(),
        gateway(&[("http", port)]),
        route("base", vec![rule("/base", vec![backend("svc")])]),
    ];
    base.extend(service_at("svc", &[upstream.addr()]));
    std::fs::write(dir.join("00-base.yaml"), yaml(&base)).expect("write");
    let mut options = env.options();
    options.config = dir.clone();
    let gw = env.start_with(options).await;
    let addr = gw.listener_addr(port);
    assert_eq!(get(addr, "/extra").await.status, 404);

    // A new file adds a route.
    let extra = dir.join("10-extra.yaml");
    std::fs::write(
        &extra,
        yaml(&[route("extra", vec![rule("/extra", vec![backend("svc")])])]),
    )
    .expect("write");
    let status = wait_status(&gw, RELOAD_TIMEOUT, "file added", |s| s.generation >= 2).await;
    assert!(status.ok, "{status:?}");
    assert_eq!(get(addr, "/extra").await.status, 200);

    // A broken file is rejected with its own name; the rest keeps serving.
    let broken = dir.join("20-broken.yaml");
    let mut bad = rule("/broken", vec![backend("svc")]);
    bad["timeouts"] = json!({"backendRequest": "forever"});
    let seen = attempts(&status);
    std::fs::write(&broken, yaml(&[route("broken", vec![bad])])).expect("write");
    let status = wait_status(&gw, RELOAD_TIMEOUT, "broken file", |s| attempts(s) > seen).await;
    assert!(!status.ok, "{status:?}");
    let prefix = format!(
        "{}: HTTPRoute {NS}/broken: spec.rules[0].timeouts.backendRequest: ",
        broken.display()
    );
    assert!(
        status.errors.iter().any(|e| e.starts_with(&prefix)),
        "{prefix:?} in {:?}",
        status.errors
    );
    assert_eq!(status.generation, 2);
    assert_eq!(get(addr, "/extra").await.status, 200);

    // Removing files removes their objects.
    std::fs::remove_file(&broken).expect("remove");
    std::fs::remove_file(&extra).expect("remove");
    let status = wait_status(&gw, RELOAD_TIMEOUT, "files removed", |s| {
        s.ok && s.generation >= 3
    })
    .await;
    assert!(status.errors.is_empty(), "{status:?}");
    wait_until_status(addr, "/extra", 404).await;
    assert_eq!(get(addr, "/base").await.status, 200);
}

/// Poll `path` until it answers `status` (a later reload may still be on its way).
async fn wait_until_status(addr: SocketAddr, path: &str, status: u16) {
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    loop {
        let response = get(addr, path).await;
        if response.status == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} still answers {} instead of {status}",
            response.status
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Kubernetes mounts a ConfigMap as `config.yaml -> ..data/config.yaml`, `..data -> ..<stamp>`,
/// and updates it by creating a new `..<stamp>` directory and atomically renaming a new `..data`
/// symlink over the old one: `config.yaml` itself never changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_style_symlink_swap_reloads() {
    let upstream = named_upstream("up").await;
    let env = TestEnv::new("reload-configmap");
    let port = env.free_port();
    let volume = env.dir.subdir("volume").expect("volume dir");
    let config = |version: &str| {
        let mut r = rule("/", vec![backend("svc")]);
        r["filters"] = json!([set_response_header("x-config-version", version)]);
        let mut docs = vec![
            gateway_class(),
            gateway(&[("http", port)]),
            route(ROUTE, vec![r]),
        ];
        docs.extend(service_at("svc", &[upstream.addr()]));
        yaml(&docs)
    };
    let publish = |stamp: &str, text: String| {
        let data = volume.join(stamp);
        std::fs::create_dir(&data).expect("data dir");
        std::fs::write(data.join("config.yaml"), text).expect("write");
        let tmp = volume.join("..data_tmp");
        std::os::unix::fs::symlink(stamp, &tmp).expect("symlink");
        std::fs::rename(&tmp, volume.join("..data")).expect("swap ..data");
    };
    publish("..2025_01_01_00_00_00.1", config("1"));
    std::os::unix::fs::symlink("..data/config.yaml", volume.join("config.yaml")).expect("link");
    let mut options = env.options();
    options.config = volume.join("config.yaml");
    let gw = env.start_with(options).await;
    let addr = gw.listener_addr(port);
    assert_eq!(
        get(addr, "/").await.header("x-config-version").as_deref(),
        Some("1")
    );

    publish("..2025_01_01_00_00_00.2", config("2"));
    std::fs::remove_dir_all(volume.join("..2025_01_01_00_00_00.1")).expect("remove old data");
    let status = wait_status(&gw, RELOAD_TIMEOUT, "ConfigMap update", |s| {
        s.generation >= 2
    })
    .await;
    assert!(status.ok, "{status:?}");
    assert_eq!(
        get(addr, "/").await.header("x-config-version").as_deref(),
        Some("2")
    );
}

// ---------------------------------------------------------------------------------------------
// (h) certificate rotation
// ---------------------------------------------------------------------------------------------

/// The leaf certificate an HTTPS listener presents for `sni` (verified against `ca`).
async fn served_certificate(
    addr: SocketAddr,
    sni: &str,
    ca: &CertAuthority,
) -> rustls::pki_types::CertificateDer<'static> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let connector =
        tokio_rustls::TlsConnector::from(ca.client_config(Alpn::Http1).expect("client config"));
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).expect("SNI");
    let tls = connector
        .connect(name, tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS handshake for {sni}: {e}"));
    tls.get_ref().1.peer_certificates().expect("certificates")[0]
        .clone()
        .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificate_rotates_on_reload_and_a_bad_one_is_rejected() {
    const HOST: &str = "rotate.example.test";
    let ca = CertAuthority::new("rotation test CA").expect("CA");
    let (first, second) = (
        ca.issue(&[HOST]).expect("leaf"),
        ca.issue(&[HOST]).expect("leaf"),
    );
    let upstream = named_upstream("up").await;
    let env = TestEnv::new("reload-tls");
    let port = env.free_port();
    let config = |cert: &str, key: &str| {
        let mut gw = gateway(&[]);
        gw["spec"]["listeners"] = json!([{
            "name": "https", "port": port, "protocol": "HTTPS", "hostname": HOST,
            "tls": {"mode": "Terminate", "certificateRefs": [{"name": "cert"}]},
        }]);
        let mut docs = vec![
            gateway_class(),
            gw,
            route(ROUTE, vec![rule("/", vec![backend("svc")])]),
            sluice_testkit::k8s::tls_secret("cert", NS, cert, key),
        ];
        docs.extend(service_at("svc", &[upstream.addr()]));
        docs
    };
    let https_get = |addr: SocketAddr| {
        ClientRequest::get("/")
            .host(HOST)
            .tls(ca.client_config(Alpn::Http1).expect("client config"), HOST)
            .timeout(Duration::from_secs(10))
            .send(addr)
    };

    env.write_config(&config(first.cert_pem(), first.key_pem()));
    let gw = env.start().await;
    let addr = gw.listener_addr(port);
    assert_eq!(served_certificate(addr, HOST, &ca).await, first.cert_der());
    assert_eq!(https_get(addr).await.expect("HTTPS").status, 200);

    // Rotation: new connections get the new certificate.
    env.write_config(&config(second.cert_pem(), second.key_pem()));
    let status = wait_status(&gw, RELOAD_TIMEOUT, "rotation", |s| s.generation >= 2).await;
    assert!(status.ok, "{status:?}");
    assert_eq!(served_certificate(addr, HOST, &ca).await, second.cert_der());
    assert_eq!(https_get(addr).await.expect("HTTPS").status, 200);

    // A certificate that does not match its key is rejected; the current one stays.
    env.write_config(&config(first.cert_pem(), second.key_pem()));
    let status = wait_status(&gw, RELOAD_TIMEOUT, "bad certificate", |s| attempts(s) >= 3).await;
    assert!(!status.ok, "{status:?}");
    assert_eq!(status.generation, 2);
    let prefix = format!("{}: Secret {NS}/cert: data: ", env.config.display());
    assert!(
        status
            .errors
            .iter()
            .any(|e| e.starts_with(&prefix) && e.contains("do not match")),
        "{prefix:?} in {:?}",
        status.errors
    );
    assert_eq!(served_certificate(addr, HOST, &ca).await, second.cert_der());
    assert_eq!(https_get(addr).await.expect("HTTPS").status, 200);
}

// ---------------------------------------------------------------------------------------------
// (i) bursts of writes, a deleted file
// ---------------------------------------------------------------------------------------------

/// Poll `/` until it shows `x-config-version: version`.
async fn wait_for_version(addr: SocketAddr, version: u64) {
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    loop {
        let response = get(addr, "/").await;
        if response.header("x-config-version") == Some(version.to_string()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "version {version} never served; last answer {} {:?}",
            response.status,
            response.header("x-config-version")
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_writes_ends_on_the_last_version() {
    let a = named_upstream("a").await;
    let b = named_upstream("b").await;
    let env = TestEnv::new("reload-burst");
    let port = env.free_port();
    env.write_config(&versioned_config(port, a.addr(), b.addr(), 0));
    let gw = env.start().await;
    let addr = gw.listener_addr(port);

    for version in 1..=20 {
        env.write_config_in_place(&versioned_config(port, a.addr(), b.addr(), version));
    }
    wait_for_version(addr, 20).await;
    let status = gw.config_status().await.expect("status");
    assert!(status.ok, "{status:?}");
    // Debouncing coalesces the burst; how much depends on timing, never more than one
    // reload per write.
    assert!(
        (2..=21).contains(&attempts(&status)),
        "attempts {}",
        attempts(&status)
    );
    eprintln!(
        "burst of 20 writes: {} reload attempt(s)",
        attempts(&status) - 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_config_file_is_rejected_and_restoring_it_reloads() {
    let a = named_upstream("a").await;
    let b = named_upstream("b").await;
    let env = TestEnv::new("reload-deleted");
    let port = env.free_port();
    env.write_config(&versioned_config(port, a.addr(), b.addr(), 0));
    let gw = env.start().await;
    let addr = gw.listener_addr(port);

    std::fs::remove_file(&env.config).expect("delete config");
    let status = wait_status(&gw, RELOAD_TIMEOUT, "deletion", |s| attempts(s) >= 2).await;
    assert!(!status.ok, "{status:?}");
    assert_eq!(status.generation, 1);
    assert!(
        status
            .errors
            .iter()
            .any(|e| e.starts_with(&format!("{}: ", env.config.display()))),
        "error names the missing file: {:?}",
        status.errors
    );
    let response = get(addr, "/").await;
    assert_eq!(response.status, 200, "still serving the loaded config");
    assert_eq!(response.header("x-config-version").as_deref(), Some("0"));

    env.write_config(&versioned_config(port, a.addr(), b.addr(), 1));
    let status = wait_status(&gw, RELOAD_TIMEOUT, "restore", |s| s.generation >= 2).await;
    assert!(status.ok, "{status:?}");
    wait_for_version(addr, 1).await;
}
