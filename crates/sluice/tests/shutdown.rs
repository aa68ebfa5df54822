//! Graceful shutdown of the real `sluice` binary: on SIGTERM/SIGINT it stops accepting (the
//! listening sockets close), reports not-ready, lets in-flight requests finish up to
//! `--shutdown-timeout`, and exits 0.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sluice_testkit::{ClientRequest, GatewayProcess, HttpVersion};
use support::*;

/// Config: `/slow` → `slow`, everything else → `fast`.
fn config(port: u16, slow: SocketAddr, fast: SocketAddr) -> Vec<Value> {
    let mut docs = vec![
        gateway_class(),
        gateway(&[("http", port)]),
        route(
            "shutdown",
            vec![
                rule("/slow", vec![backend("slow")]),
                rule("/", vec![backend("fast")]),
            ],
        ),
    ];
    docs.extend(service_at("slow", &[slow]));
    docs.extend(service_at("fast", &[fast]));
    docs
}

/// Poll `/readyz` until it answers 503 or the admin port refuses: the gateway has stopped
/// advertising readiness.
async fn wait_not_ready(gw: &GatewayProcess, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        match gw.admin_get("/readyz").await {
            Ok(r) if r.status == 503 => return "503".to_owned(),
            Ok(r) if Instant::now() >= deadline => {
                panic!("/readyz still {} after {timeout:?}", r.status)
            }
            Ok(_) => {}
            Err(e) => return format!("refused ({e})"),
        }
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_inflight_refuses_new_and_exits_zero() {
    let recorder = Recorder::new();
    let gate = Gate::new();
    let slow = {
        let gate = gate.clone();
        recording_upstream(recorder.clone(), move |_, _| {
            let gate = gate.clone();
            async move {
                gate.pass().await;
                reply(200, "finished after SIGTERM", &[])
            }
        })
        .await
    };
    let fast = named_upstream("fast").await;
    let env = TestEnv::new("shutdown-graceful");
    let port = env.free_port();
    env.write_config(&config(port, slow.addr(), fast.addr()));
    let mut gw = env
        .start_with(env.options().arg("--shutdown-timeout").arg("20s"))
        .await;
    let addr = gw.listener_addr(port);

    // An idle keep-alive connection: shutdown must close it rather than wait for it.
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut idle, idle_conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    let idle_conn = tokio::spawn(idle_conn);
    let response = idle
        .send_request(
            Request::get("/")
                .header(http::header::HOST, addr.to_string())
                .body(Full::new(Bytes::new()))
                .expect("request"),
        )
        .await
        .expect("request on the idle connection");
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.expect("body");

    // The in-flight requests, over HTTP/1.1 and HTTP/2 (h2c): the upstream holds them until
    // the gate opens.
    let inflight = tokio::spawn(
        ClientRequest::get("/slow/h1")
            .timeout(Duration::from_secs(60))
            .send(addr),
    );
    let inflight_h2 = tokio::spawn(
        ClientRequest::get("/slow/h2")
            .version(HttpVersion::Http2)
            .timeout(Duration::from_secs(60))
            .send(addr),
    );
    recorder
        .wait_until(Duration::from_secs(10), "both slow requests", |s| {
            s.len() == 2
        })
        .await;

    let sent = Instant::now();
    gw.terminate().expect("SIGTERM");

    // New connections are refused once the listener is closed.
    wait_refused(addr, Duration::from_secs(5))
        .await
        .expect("listener closes after SIGTERM");
    let refused_after = sent.elapsed();
    let readyz = wait_not_ready(&gw, Duration::from_secs(5)).await;
    // The idle connection is closed by the gateway.
    tokio::time::timeout(Duration::from_secs(5), idle_conn)
        .await
        .expect("idle keep-alive connection closed during shutdown")
        .expect("connection task")
        .expect("idle connection closed cleanly");
    // Kept open until here so the connection could only end from the gateway's side.
    drop(idle);
    // Still draining: the process waits for the in-flight request.
    assert!(
        gw.wait_exit(Duration::ZERO).await.is_err(),
        "gateway exited with a request in flight"
    );

    let released = Instant::now();
    gate.open(2);
    for (version, task) in [("HTTP/1.1", inflight), ("HTTP/2", inflight_h2)] {
        let response = task
            .await
            .expect("request task")
            .unwrap_or_else(|e| panic!("{version} in-flight request fails: {e}"));
        assert_eq!(response.status, 200, "{version}");
        assert_eq!(response.text(), "finished after SIGTERM", "{version}");
    }

    let status = gw
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("gateway exits after the last request");
    assert_eq!(status.code(), Some(0), "exit status {status}");
    let log = std::fs::read_to_string(gw.stderr_path()).expect("log");
    assert!(
        log.contains("all connections finished"),
        "no connection was cut off:\n{}",
        gw.logs_tail(20)
    );
    eprintln!(
        "graceful shutdown: listener refused {refused_after:?} after SIGTERM, /readyz {readyz}, \
         exit {:?} after the last response was released",
        released.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_timeout_bounds_a_stuck_request() {
    let recorder = Recorder::new();
    // Never answers.
    let stuck = recording_upstream(recorder.clone(), |_, _| async {
        std::future::pending::<()>().await;
        reply(200, "unreachable", &[])
    })
    .await;
    let fast = named_upstream("fast").await;
    let env = TestEnv::new("shutdown-deadline");
    let port = env.free_port();
    env.write_config(&config(port, stuck.addr(), fast.addr()));
    let mut gw = env
        .start_with(env.options().arg("--shutdown-timeout").arg("1s"))
        .await;
    let addr = gw.listener_addr(port);

    let inflight = tokio::spawn(
        ClientRequest::get("/slow")
            .timeout(Duration::from_secs(30))
            .send(addr),
    );
    recorder
        .wait_until(Duration::from_secs(10), "the stuck request", |s| {
            !s.is_empty()
        })
        .await;

    let sent = Instant::now();
    gw.terminate().expect("SIGTERM");
    let status = gw
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("gateway exits despite the stuck request");
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(
        took >= Duration::from_millis(900),
        "exited after {took:?}: did not wait for the in-flight request"
    );
    assert!(
        took <= Duration::from_secs(6),
        "exited after {took:?}: deadline of 1s not enforced"
    );
    // The client is not left hanging: its connection ends with the process.
    let outcome = tokio::time::timeout(Duration::from_secs(5), inflight)
        .await
        .expect("client request ends once the gateway is gone")
        .expect("request task");
    if let Ok(response) = &outcome {
        assert_ne!(
            response.status, 200,
            "a stuck upstream cannot have answered"
        );
    }
    let log = std::fs::read_to_string(gw.stderr_path()).expect("log");
    assert!(
        log.contains("shutdown deadline reached"),
        "cut-off is logged:\n{}",
        gw.logs_tail(20)
    );
    eprintln!("shutdown deadline 1s: process exited {took:?} after SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_when_idle_exits_zero_promptly() {
    let fast = named_upstream("fast").await;
    let env = TestEnv::new("shutdown-sigint");
    let port = env.free_port();
    env.write_config(&config(port, fast.addr(), fast.addr()));
    let mut gw = env.start().await;
    let addr = gw.listener_addr(port);
    assert_eq!(
        ClientRequest::get("/")
            .send(addr)
            .await
            .expect("request")
            .status,
        200
    );

    let sent = Instant::now();
    gw.signal(libc::SIGINT).expect("SIGINT");
    let status = gw
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("idle gateway exits promptly");
    assert_eq!(status.code(), Some(0), "exit status {status}");
    wait_refused(addr, Duration::from_secs(1))
        .await
        .expect("nothing listens after exit");
    eprintln!("idle SIGINT: exited {:?} after the signal", sent.elapsed());
}
