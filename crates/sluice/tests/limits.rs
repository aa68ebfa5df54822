//! Protocol hygiene and limits at the edge: malformed requests, oversized heads, the connection
//! limit, hop-by-hop and forwarding headers, request ids and the access log.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sluice_testkit::upstream::{full, Body};
use sluice_testkit::{ClientRequest, HttpVersion, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::*;

/// An upstream that reads the whole request body, then answers 200 with JSON
/// `{"headers": [[name, value], ...], "body": "..."}` describing exactly what reached it, and
/// sets a few hop-by-hop response headers the gateway must not pass on. Counts requests.
async fn inspecting_upstream() -> (Upstream, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let upstream = Upstream::spawn(move |req: Request<Incoming>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let headers: Vec<(String, String)> = parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let text = json!({ "headers": headers, "body": String::from_utf8_lossy(&body) });
            let mut resp = Response::new(full(text.to_string()));
            let h = resp.headers_mut();
            h.insert("connection", "x-upstream-private".parse().expect("value"));
            h.insert("x-upstream-private", "1".parse().expect("value"));
            h.insert("keep-alive", "timeout=5".parse().expect("value"));
            h.insert("x-upstream-kept", "1".parse().expect("value"));
            resp
        }
    })
    .await
    .expect("inspecting upstream");
    (upstream, count)
}

/// What the inspecting upstream reported: all values of each (lowercase) header, and the body.
struct Seen {
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn parse(json_text: &[u8]) -> Seen {
        let v: Value = serde_json::from_slice(json_text).unwrap_or_else(|e| {
            panic!(
                "upstream report {:?}: {e}",
                String::from_utf8_lossy(json_text)
            )
        });
        let headers = v["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .map(|p| {
                (
                    p[0].as_str().expect("name").to_owned(),
                    p[1].as_str().expect("value").to_owned(),
                )
            })
            .collect();
        Seen {
            headers,
            body: v["body"].as_str().expect("body").to_owned(),
        }
    }

    fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn one(&self, name: &str) -> &str {
        match self.values(name).as_slice() {
            [v] => v,
            other => panic!("expected exactly one {name} upstream, got {other:?}"),
        }
    }
}

/// Writes `request` on a fresh connection and reads until the gateway closes it (a reset after
/// the response counts as closed). Returns everything read.
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request).await.expect("write request");
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the gateway answers and closes within 10s");
    out
}

/// The status code of a raw HTTP/1.1 response.
fn raw_status(response: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(response);
    let line = text.lines().next().unwrap_or("");
    line.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 response: {text:?}"))
}

/// A gateway with one listener routing everything to the inspecting upstream.
async fn inspected_gateway(args: &[&str]) -> (Gateway, SocketAddr, Upstream, Arc<AtomicUsize>) {
    let (upstream, count) = inspecting_upstream().await;
    let gw = start(
        |port| {
            simple_config(
                port,
                service_ref("inspect", SERVICE_PORT),
                service("inspect", upstream.addr(), None),
            )
        },
        args,
    )
    .await;
    let addr = gw.addr();
    (gw, addr, upstream, count)
}

#[tokio::test]
async fn malformed_requests_get_400_and_never_reach_the_upstream() {
    let (_gw, addr, _upstream, count) = inspected_gateway(&[]).await;
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1 extra tokens here\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nThis line has no colon\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage-tls-hello\r\n\r\n",
    ] {
        let response = raw_exchange(addr, garbage).await;
        assert_eq!(
            raw_status(&response),
            400,
            "{:?} → {:?}",
            String::from_utf8_lossy(garbage),
            String::from_utf8_lossy(&response)
        );
    }
    // A well-formed request on the same listener still works, and is the only one forwarded.
    let ok = raw_exchange(
        addr,
        b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&ok), 200);
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

/// A request whose head is about `head_bytes` long (one big header).
fn request_with_head_of(head_bytes: usize) -> Vec<u8> {
    let start = "GET /big HTTP/1.1\r\nHost: big.example.test\r\nConnection: close\r\nX-Big: ";
    let end = "\r\n\r\n";
    let filler = head_bytes.saturating_sub(start.len() + end.len());
    format!("{start}{}{end}", "a".repeat(filler)).into_bytes()
}

#[tokio::test]
async fn oversized_request_heads_get_431() {
    // Default limit: 64 KiB.
    let (_gw, addr, _upstream, count) = inspected_gateway(&[]).await;
    let small = raw_exchange(addr, &request_with_head_of(32 * 1024)).await;
    assert_eq!(
        raw_status(&small),
        200,
        "a 32 KiB head is within the default"
    );
    let big = raw_exchange(addr, &request_with_head_of(80 * 1024)).await;
    assert_eq!(
        raw_status(&big),
        431,
        "an 80 KiB head exceeds the default 64 KiB"
    );
    assert_eq!(count.load(Ordering::SeqCst), 1, "the 431 was not forwarded");
    // HTTP/2 (h2c) enforces the same limit on the header list.
    for (size, status) in [(32 * 1024, 200), (80 * 1024, 431)] {
        let resp = ClientRequest::get("/big-h2")
            .host("big.example.test")
            .version(HttpVersion::Http2)
            .header("x-big", "a".repeat(size))
            .send(addr)
            .await
            .expect("h2c request");
        assert_eq!(resp.status.as_u16(), status, "h2 header of {size} bytes");
    }
    assert_eq!(count.load(Ordering::SeqCst), 2);

    // A configured limit.
    let (_gw, addr, _upstream, count) = inspected_gateway(&["--max-header-bytes", "16384"]).await;
    let small = raw_exchange(addr, &request_with_head_of(8 * 1024)).await;
    assert_eq!(raw_status(&small), 200, "an 8 KiB head is within 16 KiB");
    let big = raw_exchange(addr, &request_with_head_of(24 * 1024)).await;
    assert_eq!(raw_status(&big), 431, "a 24 KiB head exceeds 16 KiB");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

/// An open HTTP/1.1 keep-alive connection that has completed one request.
async fn open_connection(
    addr: SocketAddr,
) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = Request::builder()
        .uri("/held")
        .header("host", "limit.example.test")
        .body(Empty::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    resp.into_body().collect().await.expect("body");
    sender
}

#[tokio::test]
async fn connections_above_the_limit_are_closed() {
    let (gw, addr, _upstream, _count) = inspected_gateway(&["--max-connections", "2"]).await;

    // Two connections, each proven accepted by a completed request, and kept open.
    let first = open_connection(addr).await;
    let second = open_connection(addr).await;

    // A third is accepted by the kernel but closed by the gateway without an answer.
    let refused = raw_exchange(
        addr,
        b"GET /third HTTP/1.1\r\nHost: limit.example.test\r\n\r\n",
    )
    .await;
    assert!(
        refused.is_empty(),
        "the connection over the limit must be closed unanswered, got {:?}",
        String::from_utf8_lossy(&refused)
    );
    let metrics = gw.metrics().await.expect("metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sluice_connections_rejected_total ") && !l.ends_with(" 0")),
        "rejection counted:\n{metrics}"
    );

    // The open connections still work.
    let mut second = second;
    let resp = second
        .send_request(
            Request::builder()
                .uri("/again")
                .header("host", "limit.example.test")
                .body(Empty::new())
                .expect("request"),
        )
        .await
        .expect("second connection still served");
    assert_eq!(resp.status(), StatusCode::OK);

    // Closing one frees a slot (the gateway notices the close asynchronously, hence the poll).
    drop(first);
    eventually(
        Duration::from_secs(5),
        "a new connection is accepted",
        || async {
            let resp = ClientRequest::get("/fourth")
                .host("limit.example.test")
                .timeout(Duration::from_secs(2))
                .send(addr)
                .await
                .ok()?;
            (resp.status == StatusCode::OK).then_some(())
        },
    )
    .await;
    drop(second);
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped_and_forwarding_headers_appended() {
    let (_gw, addr, _upstream, _count) = inspected_gateway(&[]).await;

    // Request direction. `Transfer-Encoding: Chunked` is spelled with a capital C: the upstream
    // must see the gateway's own framing (`chunked`), not the client's header.
    let response = raw_exchange(
        addr,
        b"POST /hop HTTP/1.1\r\n\
          Host: hop.example.test\r\n\
          Connection: close, X-Drop-Me\r\n\
          X-Drop-Me: secret\r\n\
          Keep-Alive: timeout=5\r\n\
          TE: gzip, trailers\r\n\
          Proxy-Connection: keep-alive\r\n\
          Upgrade: websocket\r\n\
          Transfer-Encoding: Chunked\r\n\
          X-Keep-Me: yes\r\n\
          X-Forwarded-For: 203.0.113.7\r\n\
          X-Forwarded-For: 198.51.100.9\r\n\
          X-Forwarded-Proto: https\r\n\
          X-Request-Id: req-abc-123\r\n\
          \r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&response), 200);
    let text = String::from_utf8_lossy(&response);
    let (_, body) = text.split_once("\r\n\r\n").expect("response head and body");
    // The body is the upstream's JSON report, whatever framing (length or chunked) carries it.
    let json_start = body.find('{').expect("JSON body");
    let json_end = body.rfind('}').expect("JSON body");
    let seen = Seen::parse(&body.as_bytes()[json_start..=json_end]);

    for name in [
        "connection",
        "x-drop-me",
        "keep-alive",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(
            seen.values(name).is_empty(),
            "{name} must not be forwarded: {:?}",
            seen.headers
        );
    }
    // `TE: trailers` is the one TE value meaningful end to end (gRPC): only it crosses.
    assert_eq!(seen.one("te"), "trailers");
    assert_eq!(seen.one("transfer-encoding"), "chunked");
    assert_eq!(seen.body, "hello world", "body re-framed intact");
    assert_eq!(seen.one("x-keep-me"), "yes");
    assert_eq!(
        seen.one("x-forwarded-for"),
        "203.0.113.7, 198.51.100.9, 127.0.0.1",
        "every earlier hop is kept and the client address appended"
    );
    assert_eq!(seen.one("x-forwarded-proto"), "https, http");
    assert_eq!(seen.one("x-request-id"), "req-abc-123", "a sent id is kept");
    assert_eq!(seen.one("host"), "hop.example.test");

    // Without forwarding headers or a request id: they are created; each request gets its own id.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let resp = ClientRequest::get("/plain")
            .host("hop.example.test")
            .send(addr)
            .await
            .expect("request");
        assert_eq!(resp.status, StatusCode::OK);
        // Response direction: hop-by-hop headers from the upstream do not reach the client.
        assert_eq!(resp.header("x-upstream-kept").as_deref(), Some("1"));
        assert_eq!(resp.header("x-upstream-private"), None);
        assert_eq!(resp.header("keep-alive"), None);
        assert!(
            !resp
                .header("connection")
                .unwrap_or_default()
                .contains("x-upstream-private"),
            "{:?}",
            resp.headers
        );
        let seen = Seen::parse(&resp.body);
        assert_eq!(seen.one("x-forwarded-for"), "127.0.0.1");
        assert_eq!(seen.one("x-forwarded-proto"), "http");
        let id = seen.one("x-request-id").to_owned();
        assert!(!id.is_empty(), "a request id is generated");
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "generated ids are unique");
}

fn is_rfc3339_utc_millis(s: &str) -> bool {
    // 2026-11-22T00:49:55.123Z
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[tokio::test]
async fn access_log_has_one_json_line_per_request() {
    let upstream = Upstream::spawn(|req: Request<Incoming>| async move {
        // Read the body before answering so `bytes_in` is final when the response ends.
        let _ = req.into_body().collect().await;
        Response::<Body>::new(full("pong!"))
    })
    .await
    .expect("upstream");
    let log_dir = sluice_testkit::TempDir::new("access-log").expect("temp dir");
    let log_path = log_dir.path().join("access.jsonl");
    let log_arg = log_path.display().to_string();
    let gw = start_with(
        |port| {
            let mut objects = gateway(vec![http_listener("http", port)]);
            objects.push(route(
                "logged",
                &["log.example.test"],
                vec![prefix_rule("/", service_ref("logged", SERVICE_PORT))],
            ));
            objects.extend(service("logged", upstream.addr(), None));
            objects
        },
        |o| o.access_log(log_arg.clone()),
    )
    .await;
    assert_eq!(gw.access_log_path(), Some(log_path.as_path()));
    let addr = gw.addr();
    let before = SystemTime::now();

    let routed = ClientRequest::new(http::Method::POST, "/logged?q=1")
        .host("log.example.test")
        .header("x-request-id", "log-req-1")
        .body("ping")
        .send(addr)
        .await
        .expect("routed request");
    assert_eq!(routed.status, StatusCode::OK);
    assert_eq!(routed.body, "pong!");
    let unrouted = ClientRequest::get("/nothing-here")
        .host("other.example.test")
        .send(addr)
        .await
        .expect("unrouted request");
    assert_eq!(unrouted.status, StatusCode::NOT_FOUND);

    let records = access_log_records(&gw, 2).await;
    assert_eq!(records.len(), 2, "one line per request: {records:#?}");
    let ok = records
        .iter()
        .find(|r| r["request_id"] == "log-req-1")
        .expect("line of the routed request");
    let missed = records
        .iter()
        .find(|r| r["status"] == 404)
        .expect("line of the unrouted request");

    for r in [ok, missed] {
        for field in [
            "time",
            "method",
            "host",
            "path",
            "status",
            "route",
            "backend",
            "upstream_address",
            "duration_ms",
            "upstream_duration_ms",
            "bytes_in",
            "bytes_out",
            "request_id",
        ] {
            assert!(r.get(field).is_some(), "field {field} missing in {r}");
        }
        let time = r["time"].as_str().expect("time is a string");
        assert!(is_rfc3339_utc_millis(time), "time {time:?}");
        // The timestamp is today's (UTC) date: within a day of the test start.
        let secs = before.duration_since(UNIX_EPOCH).expect("clock").as_secs();
        let year_now = 1970 + secs / 31_556_952;
        let year: u64 = time[..4].parse().expect("year");
        assert!(year.abs_diff(year_now) <= 1, "time {time:?}");
        assert!(r["duration_ms"].as_f64().expect("duration_ms number") >= 0.0);
    }

    assert_eq!(ok["method"], "POST");
    assert_eq!(ok["host"], "log.example.test");
    assert_eq!(ok["path"], "/logged");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["route"], "default/logged");
    assert_eq!(
        ok["backend"],
        format!("Service default/logged:{SERVICE_PORT}")
    );
    assert_eq!(ok["upstream_address"], upstream.addr().to_string());
    let upstream_ms = ok["upstream_duration_ms"]
        .as_f64()
        .expect("upstream_duration_ms number");
    assert!(upstream_ms >= 0.0);
    assert!(ok["duration_ms"].as_f64().expect("duration") >= upstream_ms);
    assert_eq!(ok["bytes_in"], 4);
    assert_eq!(ok["bytes_out"], 5);
    assert_eq!(ok["request_id"], "log-req-1");

    assert_eq!(missed["method"], "GET");
    assert_eq!(missed["host"], "other.example.test");
    assert_eq!(missed["path"], "/nothing-here");
    assert_eq!(missed["route"], "");
    assert_eq!(missed["backend"], "");
    assert_eq!(missed["upstream_address"], Value::Null);
    assert_eq!(missed["upstream_duration_ms"], Value::Null);
    assert_eq!(missed["bytes_in"], 0);
    assert_eq!(missed["bytes_out"], unrouted.body.len());
    let generated = missed["request_id"].as_str().expect("request_id");
    assert!(!generated.is_empty() && generated != "log-req-1");
}
