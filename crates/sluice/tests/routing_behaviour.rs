//! Routing behaviour beyond the Gateway API conformance suite, against the real binary and real
//! loopback upstreams: timeouts, retries, unusable backends, request mirroring and the request
//! metrics.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use serde_json::{json, Value};
use sluice_testkit::upstream::channel;
use sluice_testkit::{
    ClientRequest, ClientResponse, EchoConfig, EchoedRequest, GatewayProcess, Upstream,
};
use support::*;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn send(addr: SocketAddr, request: ClientRequest) -> ClientResponse {
    let what = format!("{} {}", request.method, request.path);
    match request.timeout(Duration::from_secs(15)).send(addr).await {
        Ok(r) => r,
        Err(e) => panic!("{what}: {e}"),
    }
}

async fn get(addr: SocketAddr, path: &str) -> ClientResponse {
    send(addr, ClientRequest::get(path)).await
}

/// Start a gateway with one listener and `docs` (GatewayClass and Gateway are added).
async fn start(env: &TestEnv, docs: Vec<Value>) -> (GatewayProcess, SocketAddr) {
    let port = env.free_port();
    let mut all = vec![gateway_class(), gateway(&[("http", port)])];
    all.extend(docs);
    env.write_config(&all);
    let gw = env.start().await;
    let addr = gw.listener_addr(port);
    (gw, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_answer_504() {
    let echo = EchoConfig::new(NS, "echo")
        .spawn(LOCALHOST)
        .await
        .expect("echo");
    let env = TestEnv::new("routing-timeouts");
    let mut request_timeout = rule("/request-timeout", vec![backend("echo")]);
    request_timeout["timeouts"] = json!({"request": "300ms"});
    let mut backend_timeout = rule("/backend-timeout", vec![backend("echo")]);
    backend_timeout["timeouts"] = json!({"backendRequest": "300ms"});
    let mut docs = vec![route("timeouts", vec![request_timeout, backend_timeout])];
    docs.extend(service_at("echo", &[echo.addr()]));
    let (_gw, addr) = start(&env, docs).await;

    for path in ["/request-timeout", "/backend-timeout"] {
        // Within the limit: answered.
        let ok = get(addr, &format!("{path}?delay=10ms")).await;
        assert_eq!(ok.status, 200, "{path}: {}", ok.text());
        // The upstream takes 5s: the gateway gives up after ~300ms.
        let started = Instant::now();
        let slow = get(addr, &format!("{path}?delay=5s")).await;
        let took = started.elapsed();
        assert_eq!(slow.status, 504, "{path}: {}", slow.text());
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "{path}: 504 after {took:?}, expected ~300ms"
        );
    }
}

/// GEP-2257: `request` covers the whole exchange and `backendRequest` lasts "until the full
/// response has been received from the backend" — a body that stalls after the headers must not
/// hang the client past the limit. The status is already sent, so the gateway can only abort
/// the response (the client sees an incomplete body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_cover_a_stalled_response_body() {
    let stalled = Upstream::spawn(|_req: Request<Incoming>| async {
        let (mut sender, body) = channel(4);
        tokio::spawn(async move {
            let _ = sender.send_data(Bytes::from_static(b"partial ")).await;
            // Never finishes the body; the sender lives as long as the test's runtime.
            std::future::pending::<()>().await;
            drop(sender);
        });
        Response::new(body)
    })
    .await
    .expect("upstream");
    let env = TestEnv::new("routing-body-timeouts");
    let mut request_timeout = rule("/request-timeout", vec![backend("stalled")]);
    request_timeout["timeouts"] = json!({"request": "500ms"});
    let mut backend_timeout = rule("/backend-timeout", vec![backend("stalled")]);
    backend_timeout["timeouts"] = json!({"backendRequest": "500ms"});
    let mut docs = vec![route("timeouts", vec![request_timeout, backend_timeout])];
    docs.extend(service_at("stalled", &[stalled.addr()]));
    let (_gw, addr) = start(&env, docs).await;

    for path in ["/request-timeout", "/backend-timeout"] {
        let started = Instant::now();
        let outcome = ClientRequest::get(path)
            .timeout(Duration::from_secs(10))
            .send(addr)
            .await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "{path}: the client waited {took:?} on a stalled body ({outcome:?})"
        );
        assert!(
            took >= Duration::from_millis(400),
            "{path}: ended after {took:?}, before the 500ms limit ({outcome:?})"
        );
        if let Ok(response) = outcome {
            assert_eq!(
                response.status, 504,
                "{path}: a stalled body cannot complete"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_until_success_or_attempts_exhausted() {
    let recorder = Recorder::new();
    let upstream = recording_upstream(recorder.clone(), |seen, nth| async move {
        let path = seen.path.split('?').next().unwrap_or("").to_owned();
        match path.as_str() {
            // Fails twice with a retryable code, then succeeds.
            "/retry/recovers" if nth <= 2 => reply(503, "not yet", &[]),
            "/retry/recovers" => reply(200, format!("ok on attempt {nth}"), &[]),
            "/retry/exhausted" | "/retry/exhausted-large" => {
                reply(503, format!("still failing ({nth})"), &[])
            }
            // 500 is not in the rule's retry codes.
            "/retry/not-retryable" => reply(500, "broken", &[]),
            // Fails once, then echoes the body it got.
            "/retry/post" if nth <= 1 => reply(503, "not yet", &[]),
            "/retry/post" => reply(200, seen.body, &[]),
            _ => reply(404, "unknown test path", &[]),
        }
    })
    .await;
    let env = TestEnv::new("routing-retry");
    let mut retried = rule("/retry", vec![backend("flaky")]);
    retried["retry"] = json!({"codes": [502, 503], "attempts": 2, "backoff": "10ms"});
    let mut docs = vec![route("retry", vec![retried])];
    docs.extend(service_at("flaky", &[upstream.addr()]));
    let (_gw, addr) = start(&env, docs).await;

    let recovered = get(addr, "/retry/recovers").await;
    assert_eq!(recovered.status, 200, "{}", recovered.text());
    assert_eq!(recovered.text(), "ok on attempt 3");
    assert_eq!(
        recorder.for_path("/retry/recovers").len(),
        3,
        "2 failures + 1 success"
    );

    let exhausted = get(addr, "/retry/exhausted").await;
    assert_eq!(exhausted.status, 503);
    assert_eq!(
        exhausted.text(),
        "still failing (3)",
        "the last attempt's answer"
    );
    assert_eq!(
        recorder.for_path("/retry/exhausted").len(),
        3,
        "1 try + 2 retries"
    );

    let not_retryable = get(addr, "/retry/not-retryable").await;
    assert_eq!(not_retryable.status, 500);
    assert_eq!(recorder.for_path("/retry/not-retryable").len(), 1);

    let body = "{\"prompt\":\"small body, resent on retry\"}";
    let posted = send(
        addr,
        ClientRequest::new(Method::POST, "/retry/post")
            .header("content-type", "application/json")
            .body(body),
    )
    .await;
    assert_eq!(posted.status, 200, "{}", posted.text());
    assert_eq!(posted.text(), body);
    let attempts = recorder.for_path("/retry/post");
    assert_eq!(attempts.len(), 2);
    for (i, seen) in attempts.iter().enumerate() {
        assert_eq!(seen.method, Method::POST, "attempt {i}");
        assert_eq!(seen.body, body.as_bytes(), "attempt {i} body");
        assert_eq!(seen.header("content-type"), Some("application/json"));
        assert_eq!(
            seen.header("content-length"),
            Some(body.len().to_string().as_str()),
            "attempt {i}"
        );
    }

    // A body too large to hold for a replay (over 64 KiB) streams through once, intact, and
    // the failure is passed on rather than retried with a missing body.
    let large: Vec<u8> = (0..100 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    let posted = send(
        addr,
        ClientRequest::new(Method::POST, "/retry/exhausted-large").body(large.clone()),
    )
    .await;
    assert_eq!(posted.status, 503);
    let attempts = recorder.for_path("/retry/exhausted-large");
    assert_eq!(attempts.len(), 1, "not retried");
    assert_eq!(attempts[0].body.len(), large.len());
    assert!(attempts[0].body == large, "large body forwarded intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_backends_get_503_or_500() {
    let env = TestEnv::new("routing-unusable");
    // Nothing listens on this port.
    let dead = env.addr(env.free_port());
    let live = named_upstream("live").await;
    let mut zero_a = backend("live");
    zero_a["weight"] = json!(0);
    let mut zero_b = backend("also-live");
    zero_b["weight"] = json!(0);
    let mut docs = vec![route(
        "unusable",
        vec![
            rule("/dead", vec![backend("dead")]),
            rule("/not-ready", vec![backend("not-ready")]),
            rule("/missing", vec![backend("does-not-exist")]),
            rule("/zero", vec![zero_a, zero_b]),
            rule("/live", vec![backend("live")]),
        ],
    )];
    docs.extend(service_at("dead", &[dead]));
    docs.push(service("not-ready"));
    docs.extend(endpoints("not-ready", &[live.addr()], false));
    docs.extend(service_at("live", &[live.addr()]));
    docs.extend(service_at("also-live", &[live.addr()]));
    let (gw, addr) = start(&env, docs).await;

    assert_eq!(get(addr, "/live").await.status, 200, "control");
    let dead_response = get(addr, "/dead").await;
    assert_eq!(dead_response.status, 503, "{}", dead_response.text());
    let not_ready = get(addr, "/not-ready").await;
    assert_eq!(not_ready.status, 503, "{}", not_ready.text());
    let missing = get(addr, "/missing").await;
    assert_eq!(missing.status, 500, "{}", missing.text());
    let zero = get(addr, "/zero").await;
    assert_eq!(zero.status, 500, "{}", zero.text());

    let status = gw.config_status().await.expect("status");
    assert!(
        status.ok,
        "an unresolved backendRef is not an error: {status:?}"
    );
    let file = env.config.display().to_string();
    let prefix = format!("{file}: HTTPRoute {NS}/unusable: spec.rules[2].backendRefs[0]: ");
    let warnings = warnings(&status);
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with(&prefix) && w.contains("does-not-exist")),
        "warning naming file, route, field and Service, starting {prefix:?}: {warnings:?}"
    );

    let metrics = gw.metrics().await.expect("metrics");
    let connect_errors = metric_value(
        &metrics,
        "sluice_upstream_connect_errors_total",
        &[("backend", "Service default/dead:80")],
    );
    assert!(
        connect_errors.is_some_and(|n| n >= 1.0),
        "connect error counted: {connect_errors:?}\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_mirror_copies_requests_and_percent_zero_copies_none() {
    let main = EchoConfig::new(NS, "main")
        .spawn(LOCALHOST)
        .await
        .expect("echo");
    let recorder = Recorder::new();
    let mirror = recording_upstream(recorder.clone(), |_, _| async {
        reply(
            200,
            "mirror answer, never seen by the client",
            &[("x-from", "mirror")],
        )
    })
    .await;
    let env = TestEnv::new("routing-mirror");
    let mirror_filter = |extra: Value| {
        let mut m = json!({"backendRef": {"name": "mirror", "port": 80}});
        if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
            m.extend(extra.clone());
        }
        json!({"type": "RequestMirror", "requestMirror": m})
    };
    let mut all = rule("/mirrored", vec![backend("main")]);
    all["filters"] = json!([mirror_filter(json!({}))]);
    let mut none = rule("/unmirrored", vec![backend("main")]);
    none["filters"] = json!([mirror_filter(json!({"percent": 0}))]);
    let mut none_fraction = rule("/unmirrored-fraction", vec![backend("main")]);
    none_fraction["filters"] = json!([mirror_filter(
        json!({"fraction": {"numerator": 0, "denominator": 10}})
    )]);
    // Mirrors that cannot answer: nothing listens / never responds.
    let black_hole = recording_upstream(Recorder::new(), |_, _| async {
        std::future::pending::<()>().await;
        reply(200, "unreachable", &[])
    })
    .await;
    let dead = env.addr(env.free_port());
    let mut to_dead = rule("/mirror-dead", vec![backend("main")]);
    to_dead["filters"] = json!([{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "dead", "port": 80}}}]);
    let mut to_hole = rule("/mirror-hole", vec![backend("main")]);
    to_hole["filters"] = json!([{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "hole", "port": 80}}}]);
    let mut docs = vec![route(
        "mirror",
        vec![all, none, none_fraction, to_dead, to_hole],
    )];
    docs.extend(service_at("main", &[main.addr()]));
    docs.extend(service_at("mirror", &[mirror.addr()]));
    docs.extend(service_at("dead", &[dead]));
    docs.extend(service_at("hole", &[black_hole.addr()]));
    let (_gw, addr) = start(&env, docs).await;

    // The client's answer never depends on the mirror.
    for path in ["/mirror-dead/x", "/mirror-hole/x"] {
        let started = Instant::now();
        let response = send(addr, ClientRequest::new(Method::POST, path).body("payload")).await;
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        let echoed: EchoedRequest = response.json().expect("echo body");
        assert_eq!(echoed.pod, "main", "{path}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{path}: took {:?}",
            started.elapsed()
        );
    }

    // A POST with a body: the client gets the main backend's answer...
    let body = "mirror this body";
    let response = send(
        addr,
        ClientRequest::new(Method::POST, "/mirrored/post?q=1")
            .host("mirror.example")
            .header("x-test-header", "copied")
            .header("content-type", "text/plain")
            .body(body),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("x-from"), None, "not the mirror's answer");
    let echoed: EchoedRequest = response.json().expect("echo body");
    assert_eq!(echoed.pod, "main");
    assert_eq!(echoed.method, "POST");
    assert_eq!(echoed.path, "/mirrored/post?q=1");
    // ...and the mirror gets a copy: method, path, headers and body.
    let seen = recorder
        .wait_until(Duration::from_secs(10), "the mirrored POST", |s| {
            !s.is_empty()
        })
        .await;
    let copy = &seen[0];
    assert_eq!(copy.method, Method::POST);
    assert_eq!(copy.path, "/mirrored/post?q=1");
    assert_eq!(copy.header("x-test-header"), Some("copied"));
    assert_eq!(copy.header("content-type"), Some("text/plain"));
    assert_eq!(copy.header("host"), Some("mirror.example"));
    assert_eq!(copy.body, body.as_bytes());

    let get_response = get(addr, "/mirrored/get").await;
    assert_eq!(get_response.status, 200);
    recorder
        .wait_until(Duration::from_secs(10), "the mirrored GET", |s| {
            s.iter()
                .any(|r| r.method == Method::GET && r.path == "/mirrored/get" && r.body.is_empty())
        })
        .await;

    // percent: 0 and fraction 0/10 never mirror. Mirrors are started before the main request
    // is forwarded, so once a later request's copy has arrived, earlier copies would have too.
    for i in 0..10 {
        assert_eq!(get(addr, &format!("/unmirrored/{i}")).await.status, 200);
        assert_eq!(
            get(addr, &format!("/unmirrored-fraction/{i}")).await.status,
            200
        );
    }
    assert_eq!(get(addr, "/mirrored/marker").await.status, 200);
    let seen = recorder
        .wait_until(Duration::from_secs(10), "the marker", |s| {
            s.iter().any(|r| r.path == "/mirrored/marker")
        })
        .await;
    let unexpected: Vec<&String> = seen
        .iter()
        .map(|s| &s.path)
        .filter(|p| p.starts_with("/unmirrored"))
        .collect();
    assert!(unexpected.is_empty(), "mirrored at 0%: {unexpected:?}");
    assert_eq!(seen.len(), 3, "exactly the three mirrored requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route_backend_and_status() {
    let echo = EchoConfig::new(NS, "echo")
        .spawn(LOCALHOST)
        .await
        .expect("echo");
    let env = TestEnv::new("routing-metrics");
    let mut docs = vec![route("counted", vec![rule("/", vec![backend("echo")])])];
    docs.extend(service_at("echo", &[echo.addr()]));
    let (gw, addr) = start(&env, docs).await;

    for i in 0..7 {
        assert_eq!(get(addr, &format!("/ok/{i}")).await.status, 200);
    }
    for _ in 0..3 {
        assert_eq!(get(addr, "/status/418").await.status, 418);
    }

    let labels = |status: &'static str| {
        [
            ("gateway", "default/gw"),
            ("route", "default/counted"),
            ("backend", "Service default/echo:80"),
            ("status", status),
        ]
    };
    // Metrics are written when a response body ends, which may be a moment after the client
    // has read it: poll until the counts arrive, then require them exact.
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let text = gw.metrics().await.expect("metrics");
        let ok = metric_value(&text, "sluice_requests_total", &labels("200"));
        let teapot = metric_value(&text, "sluice_requests_total", &labels("418"));
        if (ok, teapot) == (Some(7.0), Some(3.0)) || Instant::now() >= deadline {
            break text;
        }
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(
        metric_value(&metrics, "sluice_requests_total", &labels("200")),
        Some(7.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, "sluice_requests_total", &labels("418")),
        Some(3.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "sluice_request_duration_seconds_count",
            &[("gateway", "default/gw"), ("route", "default/counted")]
        ),
        Some(10.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "sluice_upstream_duration_seconds_count",
            &[("backend", "Service default/echo:80")]
        ),
        Some(10.0)
    );
    // (Families without samples, e.g. connect errors here, are not printed by the encoder.)
    for family in [
        "sluice_active_connections",
        "sluice_config_reloads",
        "sluice_config_generation",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {family} ")),
            "family {family} is exported"
        );
    }
}
