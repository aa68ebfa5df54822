//! One ext_proc exchange over loopback against the testkit's tonic server: what a request
//! pays for each external processor in its path (stream setup, encoding, one HTTP/2 round trip
//! per phase, decoding), on an already-open connection.
//!
//! Run with `cargo bench -p sluice-extproc --bench exchange`. The server shares the machine,
//! so these numbers are client and server together.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use divan::Bencher;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use sluice_extproc::proto::HeaderMutation;
use sluice_extproc::{Endpoint, ExtProcClient, HeadersMsg, Reply};
use sluice_testkit::extproc::reply::{self, phase_of};
use sluice_testkit::extproc::{Action, HeaderAppendAction};
use sluice_testkit::ExtProcServer;

fn main() {
    divan::main();
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    client: ExtProcClient,
    _server: ExtProcServer,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (server, client) = runtime.block_on(async {
        let server = ExtProcServer::spawn(|request| {
            if phase_of(request) == "request_headers" {
                Action::Reply(reply::with_headers(
                    request,
                    HeaderMutation {
                        set_headers: vec![reply::set(
                            "x-gateway-destination-endpoint",
                            "10.0.0.7:8000",
                            HeaderAppendAction::AppendIfExistsOrAdd,
                        )],
                        remove_headers: vec![],
                    },
                ))
            } else {
                Action::Reply(reply::proceed(request))
            }
        })
        .await
        .expect("server");
        let endpoint = Endpoint {
            uri: server.uri().parse().expect("uri"),
            authority: None,
            tls: None,
        };
        let client = ExtProcClient::new(endpoint, Duration::from_secs(1)).expect("client");
        (server, client)
    });
    Fixture {
        runtime,
        client,
        _server: server,
    }
});

fn typical_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("host", "api.example.com"),
        ("content-type", "application/json"),
        ("accept", "application/json"),
        (
            "authorization",
            "Bearer sk-0123456789abcdef0123456789abcdef",
        ),
        ("user-agent", "OpenAI/Python 1.50.0"),
        ("x-stainless-lang", "python"),
        ("x-stainless-package-version", "1.50.0"),
        ("x-request-id", "0b6f7c1e-9a43-4a39-9a1f-2f4c3b7f6e11"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("content-length", "4096"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
}

fn msg(headers: &HeaderMap, end_of_stream: bool) -> HeadersMsg<'_> {
    HeadersMsg {
        method: &Method::POST,
        path: "/v1/chat/completions",
        scheme: "https",
        authority: "api.example.com",
        headers,
        end_of_stream,
    }
}

/// Headers only: open a stream, send request headers, apply the reply.
#[divan::bench]
fn request_headers_only(b: Bencher) {
    let fixture = &*FIXTURE;
    let headers = typical_headers();
    b.bench(|| {
        fixture.runtime.block_on(async {
            let mut session = fixture.client.open(&[]).expect("open");
            let reply = session
                .request_headers(&msg(&headers, true))
                .await
                .expect("reply");
            let Reply::Continue(mutation) = reply else {
                panic!("{reply:?}")
            };
            let mut out = headers.clone();
            mutation.apply_headers(&mut out);
            divan::black_box(out);
        })
    });
}

/// A whole buffered exchange: request headers + 4 KiB body, response headers + 4 KiB body.
#[divan::bench]
fn buffered_request_and_response(b: Bencher) {
    let fixture = &*FIXTURE;
    let headers = typical_headers();
    let body = Bytes::from(vec![b'x'; 4096]);
    b.bench(|| {
        fixture.runtime.block_on(async {
            let mut session = fixture.client.open(&[]).expect("open");
            session
                .request_headers(&msg(&headers, false))
                .await
                .expect("headers");
            session.request_body(&body, true).await.expect("body");
            session
                .response_headers(StatusCode::OK, &headers, false)
                .await
                .expect("response headers");
            session
                .response_body(&body, true)
                .await
                .expect("response body");
        })
    });
}
