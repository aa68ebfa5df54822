//! Idle connections are closed after `--idle-timeout`, for HTTP/1.1 keep-alive and HTTP/2 alike;
//! a connection with a request in flight is never idle, however long the request takes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_testkit::gateway::free_port;
use sluice_testkit::{ClientRequest, EchoConfig, GatewayOptions, GatewayProcess, TempDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IDLE: &str = "400ms";

async fn gateway(dir: &TempDir, echo: SocketAddr) -> (GatewayProcess, SocketAddr) {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let port = free_port(ip).expect("port");
    let config = dir
        .write(
            "g.yaml",
            format!(
                r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: sluice
  listeners: [{{name: http, port: {port}, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1alpha1
kind: Backend
metadata: {{name: echo, namespace: default}}
spec:
  destination:
    type: IP
    ip: {{address: {}}}
    ports: [{{number: {}, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  rules: [{{backendRefs: [{{group: gateway.networking.k8s.io, kind: Backend, name: echo, port: {}}}]}}]
"#,
                echo.ip(),
                echo.port(),
                echo.port()
            ),
        )
        .expect("config");
    let gw = GatewayProcess::start(
        GatewayOptions::new(env!("CARGO_BIN_EXE_sluice"), config)
            .arg("--idle-timeout")
            .arg(IDLE),
    )
    .await
    .expect("gateway");
    let addr = gw.listener_addr(port);
    (gw, addr)
}

#[tokio::test]
async fn idle_http1_keepalive_connection_is_closed() {
    let dir = TempDir::new("sluice-idle1").expect("dir");
    let echo = EchoConfig::new("ns", "pod")
        .spawn(Ipv4Addr::LOCALHOST.into())
        .await
        .expect("echo");
    let (_gw, addr) = gateway(&dir, echo.addr()).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .expect("write");
    // Read the whole response, then wait for the server to close the idle connection.
    let started = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = Vec::new();
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("the gateway closes an idle connection within 10 s")
            .expect("read");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "closed before the idle timeout"
    );
}

#[tokio::test]
async fn idle_http2_connection_is_closed_but_a_slow_request_is_not_cut() {
    let dir = TempDir::new("sluice-idle2").expect("dir");
    let echo = EchoConfig::new("ns", "pod")
        .spawn(Ipv4Addr::LOCALHOST.into())
        .await
        .expect("echo");
    let (_gw, addr) = gateway(&dir, echo.addr()).await;

    // A request slower than the idle timeout completes (the echo waits `delay`).
    let slow = ClientRequest::get("/?delay=1200ms")
        .host("a.test")
        .send(addr)
        .await
        .expect("slow");
    assert_eq!(slow.status, 200);

    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    let started = Instant::now();
    let driver = tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(format!("http://{addr}/"))
        .header("host", "a.test")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await.expect("body");
    // The connection future ends when the gateway sends GOAWAY and closes.
    tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .expect("the gateway closes an idle HTTP/2 connection within 10 s")
        .expect("join")
        .expect("clean close");
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn a_request_head_that_never_completes_is_cut_off() {
    let dir = TempDir::new("sluice-idle3").expect("dir");
    let echo = EchoConfig::new("ns", "pod")
        .spawn(Ipv4Addr::LOCALHOST.into())
        .await
        .expect("echo");
    let (_gw, addr) = gateway(&dir, echo.addr()).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // Half a request head, then silence (slowloris).
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.te")
        .await
        .expect("write");
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("the gateway closes a connection whose head never completes within 10 s")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
    }
    assert!(started.elapsed() >= Duration::from_millis(400));
}
