//! ExtProcess payload processors through the real gateway, against a real tonic ext_proc v3
//! server (crates/testkit): header and body mutations on the way in, response headers on the way
//! out on the same stream, immediate responses, one HTTP/2 connection for every exchange, and each
//! failure (server down, slow server) under both failure modes.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Value};
use sluice_testkit::extproc::{proto, reply, Action, HeaderAppendAction};
use sluice_testkit::upstream::full;
use sluice_testkit::{ClientRequest, ExtProcServer, Upstream};

use common::*;

/// An upstream that answers with what reached it (`{"headers": {...}, "body": "..."}`) and
/// counts the requests.
struct Echo {
    upstream: Upstream,
    count: Arc<AtomicUsize>,
}

impl Echo {
    fn addr(&self) -> std::net::SocketAddr {
        self.upstream.addr()
    }
}

async fn echo_upstream() -> Echo {
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
            let headers: serde_json::Map<String, Value> = parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        json!(String::from_utf8_lossy(v.as_bytes())),
                    )
                })
                .collect();
            let text = json!({ "headers": headers, "body": String::from_utf8_lossy(&body) });
            Response::new(full(text.to_string()))
        }
    })
    .await
    .expect("echo upstream");
    Echo { upstream, count }
}

/// A processor that tags requests, upper-cases their bodies, tags responses, and answers 403
/// itself when the request carries `x-deny`.
fn processor_logic(req: &proto::ProcessingRequest) -> Action {
    use proto::processing_request::Request as R;
    match &req.request {
        Some(R::RequestHeaders(h)) => {
            let denied = h
                .headers
                .as_ref()
                .is_some_and(|m| m.headers.iter().any(|h| h.key == "x-deny"));
            if denied {
                return Action::Reply(reply::immediate(
                    403,
                    vec![reply::set(
                        "x-denied-by",
                        "ext-proc",
                        HeaderAppendAction::OverwriteIfExistsOrAdd,
                    )],
                    b"denied by the processor",
                    "policy",
                ));
            }
            Action::Reply(reply::with_headers(
                req,
                proto::HeaderMutation {
                    set_headers: vec![reply::set(
                        "x-ext-proc",
                        "seen",
                        HeaderAppendAction::OverwriteIfExistsOrAdd,
                    )],
                    remove_headers: vec!["x-remove-me".into()],
                },
            ))
        }
        Some(R::RequestBody(b)) => Action::Reply(reply::with_body(
            req,
            reply::body_mutation_kind::Kind::Body(b.body.to_ascii_uppercase()),
        )),
        Some(R::ResponseHeaders(_)) => Action::Reply(reply::with_headers(
            req,
            proto::HeaderMutation {
                set_headers: vec![reply::set(
                    "x-ext-proc-response",
                    "tagged",
                    HeaderAppendAction::OverwriteIfExistsOrAdd,
                )],
                remove_headers: vec![],
            },
        )),
        _ => Action::Reply(reply::proceed(req)),
    }
}

fn payload_processor(ext_proc: std::net::SocketAddr, mode: &str, timeout: &str) -> Vec<Value> {
    let mut objects = service("ext-proc", ext_proc, Some("kubernetes.io/h2c"));
    objects.push(json!({
        "apiVersion": "gateway.networking.k8s.io/v1alpha1",
        "kind": "PayloadProcessor",
        "metadata": {"name": "pp", "namespace": "default"},
        "spec": {
            "targetRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"},
            "phase": "PostRouting",
            "processors": [{
                "name": "ext",
                "type": "ExtProcess",
                "failureMode": mode,
                "timeout": timeout,
                "extProcess": {
                    "backendRef": {"name": "ext-proc", "port": SERVICE_PORT},
                    "processingMode": {"requestBodyMode": "Buffered", "responseHeaderMode": "Send"},
                    "metadata": {"x-tenant": "acme"},
                },
            }],
        },
    }));
    objects
}

async fn gateway_with(
    ext_proc: std::net::SocketAddr,
    upstream: &Echo,
    mode: &str,
    timeout: &str,
) -> Gateway {
    let upstream_addr = upstream.addr();
    let mode = mode.to_string();
    let timeout = timeout.to_string();
    start(
        move |port| {
            let mut extra = service("echo", upstream_addr, None);
            extra.extend(payload_processor(ext_proc, &mode, &timeout));
            simple_config(port, service_ref("echo", SERVICE_PORT), extra)
        },
        &[],
    )
    .await
}

fn upstream_requests(upstream: &Echo) -> usize {
    upstream.count.load(Ordering::SeqCst)
}

fn post(body: &'static str) -> ClientRequest {
    ClientRequest::new(Method::POST, "/echo")
        .header("x-remove-me", "1")
        .body(Bytes::from_static(body.as_bytes()))
        .timeout(Duration::from_secs(10))
}

#[tokio::test]
async fn mutations_apply_both_ways_on_one_stream_over_one_connection() {
    let server = ExtProcServer::spawn(processor_logic)
        .await
        .expect("ext_proc server");
    let upstream = echo_upstream().await;
    let gw = gateway_with(server.addr(), &upstream, "FailClosed", "2s").await;

    let resp = post("hello").send(gw.addr()).await.expect("response");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen: Value = resp.json().expect("echo");
    assert_eq!(seen["headers"]["x-ext-proc"], "seen");
    assert!(seen["headers"].get("x-remove-me").is_none(), "{seen}");
    assert_eq!(
        seen["body"], "HELLO",
        "the body as the processor replaced it"
    );
    assert_eq!(seen["headers"]["content-length"], "5");
    assert_eq!(
        resp.header("x-ext-proc-response").as_deref(),
        Some("tagged")
    );

    // Many exchanges, some at once: one stream each (request and response phases together),
    // all on the processor's one HTTP/2 connection.
    let mut tasks = Vec::new();
    for _ in 0..24 {
        tasks.push(tokio::spawn(post("again").send(gw.addr())));
    }
    for t in tasks {
        let r = t.await.expect("join").expect("response");
        assert_eq!(r.status, 200);
        assert_eq!(r.json::<Value>().expect("echo")["body"], "AGAIN");
    }
    assert_eq!(server.streams_opened(), 25);
    assert_eq!(
        server.connection_count(),
        1,
        "one channel per processor, reused"
    );
    let phases: Vec<&str> = server
        .received()
        .iter()
        .take(3)
        .map(reply::phase_of)
        .collect();
    assert_eq!(
        phases,
        ["request_headers", "request_body", "response_headers"]
    );
    let md = &server.metadata()[0];
    assert_eq!(md.get("x-tenant").map(|v| v.as_bytes()), Some(&b"acme"[..]));
}

#[tokio::test]
async fn an_immediate_response_answers_the_client_and_nothing_goes_upstream() {
    let server = ExtProcServer::spawn(processor_logic)
        .await
        .expect("ext_proc server");
    let upstream = echo_upstream().await;
    let gw = gateway_with(server.addr(), &upstream, "FailClosed", "2s").await;
    let resp = post("hi")
        .header("x-deny", "1")
        .send(gw.addr())
        .await
        .expect("response");
    assert_eq!(resp.status, 403);
    assert_eq!(resp.text(), "denied by the processor");
    assert_eq!(resp.header("x-denied-by").as_deref(), Some("ext-proc"));
    assert_eq!(upstream_requests(&upstream), 0);
}

#[tokio::test]
async fn a_processor_that_is_down_follows_the_failure_mode() {
    let mut server = ExtProcServer::spawn(processor_logic)
        .await
        .expect("ext_proc server");
    let addr = server.addr();
    server.stop().await;
    let upstream = echo_upstream().await;

    let closed = gateway_with(addr, &upstream, "FailClosed", "1s").await;
    let resp = post("x").send(closed.addr()).await.expect("response");
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert!(
        !resp.text().contains(&addr.to_string()),
        "no internal address in the answer"
    );
    assert_eq!(upstream_requests(&upstream), 0);

    let open = gateway_with(addr, &upstream, "FailOpen", "1s").await;
    let resp = post("x").send(open.addr()).await.expect("response");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.json::<Value>().expect("echo")["body"],
        "x",
        "passed on unprocessed"
    );

    // The processor comes back: the next request is processed again.
    server.restart().await.expect("restart on the same port");
    let resp = post("back").send(closed.addr()).await.expect("response");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json::<Value>().expect("echo")["body"], "BACK");
}

#[tokio::test]
async fn a_slow_processor_times_out_under_both_failure_modes() {
    let server = ExtProcServer::spawn(|req: &proto::ProcessingRequest| {
        Action::ReplyAfter(Duration::from_secs(5), reply::proceed(req))
    })
    .await
    .expect("ext_proc server");
    let upstream = echo_upstream().await;
    let closed = gateway_with(server.addr(), &upstream, "FailClosed", "200ms").await;
    let started = std::time::Instant::now();
    let resp = post("x").send(closed.addr()).await.expect("response");
    assert_eq!(resp.status, 504, "{}", resp.text());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout bounds the wait"
    );

    let open = gateway_with(server.addr(), &upstream, "FailOpen", "200ms").await;
    let resp = post("y").send(open.addr()).await.expect("response");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json::<Value>().expect("echo")["body"], "y");
}

/// A processor behind TLS, named by a Backend whose `tls` trusts a private CA (`caBundleRef`)
/// and sends an SNI: the channel uses the Backend's TLS, as HTTP upstreams do. The same Backend
/// without the CA (the public roots) must not reach it: the certificate is really verified.
#[tokio::test]
async fn a_processor_behind_tls_is_reached_with_the_backend_s_ca_bundle() {
    use sluice_testkit::certs::{Alpn, CertAuthority};
    let ca = CertAuthority::new("ext_proc CA").expect("CA");
    let leaf = ca.issue(&["extproc.internal"]).expect("leaf certificate");
    let server = ExtProcServer::spawn_tls(
        processor_logic,
        leaf.server_config(Alpn::Http2).expect("server config"),
    )
    .await
    .expect("ext_proc server");
    let upstream = echo_upstream().await;
    let upstream_addr = upstream.addr();
    let ext_addr = server.addr();
    let gw = start(
        move |port| {
            let tls_port = |ca: bool| {
                let mut tls = json!({"mode": "Simple", "sni": "extproc.internal"});
                if ca {
                    tls["caBundleRef"] = json!({"name": "ext-proc-ca"});
                }
                json!({
                    "type": "IP",
                    "ip": {"address": ext_addr.ip().to_string()},
                    "ports": [{"number": ext_addr.port(), "protocol": "HTTP2", "tls": tls}],
                })
            };
            let processor = |name: &str, backend: &str| {
                json!({
                    "name": name,
                    "type": "ExtProcess",
                    "failureMode": "FailClosed",
                    "timeout": "2s",
                    "extProcess": {
                        "backendRef": {"group": "gateway.networking.k8s.io", "kind": "Backend", "name": backend},
                        "processingMode": {"requestBodyMode": "Buffered", "responseHeaderMode": "Send"},
                    },
                })
            };
            let pp = |name: &str, route: &str, backend: &str| {
                json!({
                    "apiVersion": "gateway.networking.k8s.io/v1alpha1",
                    "kind": "PayloadProcessor",
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {
                        "targetRef": {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": route},
                        "phase": "PostRouting",
                        "processors": [processor("ext", backend)],
                    },
                })
            };
            let mut objects = gateway(vec![http_listener("http", port)]);
            objects.extend(service("echo", upstream_addr, None));
            objects.push(route(
                "private-ca",
                &[],
                vec![prefix_rule("/echo", service_ref("echo", SERVICE_PORT))],
            ));
            objects.push(route(
                "public-roots",
                &[],
                vec![prefix_rule("/public", service_ref("echo", SERVICE_PORT))],
            ));
            objects.push(backend("ext-proc", tls_port(true)));
            objects.push(backend("ext-proc-public", tls_port(false)));
            objects.push(ca_config_map("ext-proc-ca", &ca.cert_pem()));
            objects.push(pp("with-ca", "private-ca", "ext-proc"));
            objects.push(pp("without-ca", "public-roots", "ext-proc-public"));
            objects
        },
        &[],
    )
    .await;

    let resp = post("hello").send(gw.addr()).await.expect("response");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen: Value = resp.json().expect("echo");
    assert_eq!(seen["headers"]["x-ext-proc"], "seen");
    assert_eq!(seen["body"], "HELLO", "mutated by the processor over TLS");
    assert_eq!(server.streams_opened(), 1);

    let refused = ClientRequest::new(Method::POST, "/public")
        .body(Bytes::from_static(b"hello"))
        .timeout(Duration::from_secs(10))
        .send(gw.addr())
        .await
        .expect("response");
    assert_eq!(
        refused.status,
        503,
        "an unverifiable processor is unavailable: {}",
        refused.text()
    );
    assert_eq!(
        server.streams_opened(),
        1,
        "no stream without a verified handshake"
    );
    assert_eq!(upstream_requests(&upstream), 1);
}
