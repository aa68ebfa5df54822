//! Idle connections are closed after `--idle-timeout`, for HTTP/1.1 keep-alive and HTTP/2 alike;
//! a connection with a request in flight is never idle, however long the request takes.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use sluice_testkit::{ClientRequest, EchoConfig, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

const IDLE: &str = "400ms";

/// A gateway with `--idle-timeout 400ms` routing everything to an echo upstream (returned too, so
/// it lives as long as the test).
async fn gateway() -> (common::Gateway, Upstream) {
    let echo = EchoConfig::new("ns", "pod")
        .spawn(Ipv4Addr::LOCALHOST.into())
        .await
        .expect("echo");
    let addr = echo.addr();
    let destination = json!({
        "type": "IP",
        "ip": {"address": addr.ip().to_string()},
        "ports": [{"number": addr.port(), "protocol": "HTTP"}],
    });
    let gw = common::start(
        |port| {
            common::simple_config(
                port,
                common::backend_ref("echo"),
                vec![common::backend("echo", destination.clone())],
            )
        },
        &["--idle-timeout", IDLE],
    )
    .await;
    (gw, echo)
}

/// Reads until the peer closes the connection; fails if that takes more than 10 s.
async fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = Vec::new();
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("the gateway closes the connection within 10 s")
            .unwrap_or(0);
        if n == 0 {
            return got;
        }
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn idle_http1_keepalive_connection_is_closed() {
    let (gw, _echo) = gateway().await;
    let mut s = TcpStream::connect(gw.addr()).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .expect("write");
    // Read the whole response, then wait for the server to close the idle connection.
    let started = Instant::now();
    let got = read_until_closed(&mut s).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "closed before the idle timeout"
    );
}

#[tokio::test]
async fn idle_http2_connection_is_closed_but_a_slow_request_is_not_cut() {
    let (gw, _echo) = gateway().await;
    let addr = gw.addr();

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
    let (gw, _echo) = gateway().await;
    let mut s = TcpStream::connect(gw.addr()).await.expect("connect");
    // Half a request head, then silence (slowloris).
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.te")
        .await
        .expect("write");
    let started = Instant::now();
    read_until_closed(&mut s).await;
    assert!(started.elapsed() >= Duration::from_millis(400));
}
