//! WebSocket through the gateway: the HTTP/1.1 upgrade handshake is forwarded to the upstream,
//! the 101 comes back, and from then on the gateway relays frames in both directions until the
//! close handshake completes.

mod common;

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use sluice_testkit::upstream::{empty, Body};
use sluice_testkit::Upstream;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use common::*;

const GREETING: &str = "hello from upstream";

fn status(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = code;
    r
}

fn header_has_token(req: &Request<Incoming>, name: &str, token: &str) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A WebSocket upstream: answers the handshake (400 unless it is a proper WebSocket upgrade),
/// greets, then echoes text as `echo: <text>` and binary reversed, until the client closes.
/// Everything it received is reported on `seen` when the connection ends.
fn websocket_upstream(
    seen: mpsc::UnboundedSender<Vec<Message>>,
) -> impl Fn(Request<Incoming>) -> std::future::Ready<Response<Body>> + Send + Sync + 'static {
    move |mut req| {
        let key = req.headers().get("sec-websocket-key").cloned();
        let valid = header_has_token(&req, "connection", "upgrade")
            && header_has_token(&req, "upgrade", "websocket")
            && req
                .headers()
                .get("sec-websocket-version")
                .is_some_and(|v| v == "13");
        let Some(key) = key.filter(|_| valid) else {
            return std::future::ready(status(StatusCode::BAD_REQUEST));
        };
        let on_upgrade = hyper::upgrade::on(&mut req);
        let seen = seen.clone();
        tokio::spawn(async move {
            let upgraded = on_upgrade.await.expect("upstream side upgraded");
            let mut ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            ws.send(Message::text(GREETING)).await.expect("greet");
            let mut received = Vec::new();
            while let Some(msg) = ws.next().await {
                let msg = msg.expect("upstream reads a frame");
                received.push(msg.clone());
                let reply = match msg {
                    Message::Text(t) => Message::text(format!("echo: {}", t.as_str())),
                    Message::Binary(b) => {
                        Message::binary(b.iter().rev().copied().collect::<Vec<u8>>())
                    }
                    // Pongs to pings and the close reply are sent by tungstenite itself.
                    _ => continue,
                };
                ws.send(reply).await.expect("upstream replies");
            }
            let _ = seen.send(received);
        });
        let mut resp = status(StatusCode::SWITCHING_PROTOCOLS);
        let h = resp.headers_mut();
        h.insert("connection", "upgrade".parse().expect("header"));
        h.insert("upgrade", "websocket".parse().expect("header"));
        h.insert(
            "sec-websocket-accept",
            derive_accept_key(key.as_bytes()).parse().expect("header"),
        );
        std::future::ready(resp)
    }
}

/// The next message within a deadline.
async fn next<S>(ws: &mut WebSocketStream<S>) -> Message
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("a message within 5s")
        .expect("stream still open")
        .expect("valid frame")
}

#[tokio::test]
async fn websocket_round_trip_through_the_gateway() {
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let upstream = Upstream::spawn(websocket_upstream(seen_tx))
        .await
        .expect("websocket upstream");
    let gw = start(
        |port| {
            simple_config(
                port,
                service_ref("ws", SERVICE_PORT),
                service("ws", upstream.addr(), None),
            )
        },
        &[],
    )
    .await;

    let tcp = TcpStream::connect(gw.addr())
        .await
        .expect("connect to the gateway");
    let (mut ws, response) = tokio_tungstenite::client_async("ws://ws.example.test/chat", tcp)
        .await
        .expect("WebSocket handshake through the gateway");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);

    // Upstream → client without any prompt.
    assert_eq!(next(&mut ws).await, Message::text(GREETING));

    // Several messages each way, text and binary, interleaved with a ping.
    let big: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let sent = vec![
        Message::text("one"),
        Message::binary(vec![0u8, 1, 2, 255]),
        Message::Ping(Bytes::from_static(b"are you there")),
        Message::text("two"),
        Message::binary(big.clone()),
        Message::text("three"),
    ];
    for m in &sent {
        ws.send(m.clone()).await.expect("client sends");
    }
    let expected = [
        Message::text("echo: one"),
        Message::binary(vec![255u8, 2, 1, 0]),
        Message::Pong(Bytes::from_static(b"are you there")),
        Message::text("echo: two"),
        Message::binary(big.iter().rev().copied().collect::<Vec<u8>>()),
        Message::text("echo: three"),
    ];
    for want in expected {
        let got = next(&mut ws).await;
        assert_eq!(got, want, "message relayed from the upstream");
    }

    // Close handshake: the upstream answers our close, then the stream ends.
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .await
    .expect("client sends close");
    let reply = next(&mut ws).await;
    match reply {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected the close reply, got {other:?}"),
    }
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("stream ends after the close handshake");
    assert!(end.is_none(), "no frames after close: {end:?}");

    // The upstream saw exactly what the client sent, in order, ending with the close frame.
    let received = tokio::time::timeout(Duration::from_secs(5), seen_rx.recv())
        .await
        .expect("upstream connection finished")
        .expect("upstream report");
    let mut want = sent;
    want.push(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    })));
    assert_eq!(received, want);

    // The exchange is logged once, as a 101.
    let records = access_log_records(&gw, 1).await;
    assert_eq!(records[0]["status"], 101);
    assert_eq!(records[0]["path"], "/chat");
}
