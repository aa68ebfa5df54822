//! The connection and the stream lifecycle: one shared HTTP/2 connection, server down and back,
//! streams closed or failed by the server, caller timeouts and drops, metadata, TLS.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{client_at, client_for, headers_msg, request_headers, PROMPT};
use http::{HeaderMap, StatusCode};
use sluice_extproc::proto::HeaderMutation;
use sluice_extproc::{Endpoint, ExtProcClient, ExtProcError, Reply, TlsSettings};
use sluice_testkit::extproc::reply::{self, headers_of, phase_of};
use sluice_testkit::extproc::{Action, HeaderAppendAction};
use sluice_testkit::{Alpn, CertAuthority, ExtProcServer};
use tokio::time::timeout;

fn proceed_all(request: &sluice_extproc::proto::ProcessingRequest) -> Action {
    Action::Reply(reply::proceed(request))
}

async fn one_exchange(client: &ExtProcClient) -> Result<Reply, ExtProcError> {
    let headers = request_headers();
    let mut session = client.open(&[])?;
    timeout(
        PROMPT,
        session.request_headers(&headers_msg(&headers, true)),
    )
    .await
    .expect("no hang")
}

#[tokio::test]
async fn fifty_concurrent_sessions_share_one_tcp_connection() {
    common::within(async {
        // Echoes the caller's x-session header back as x-echo, so cross-talk between streams
        // would show.
        let server = ExtProcServer::spawn(|request| {
            let session = headers_of(request)
                .into_iter()
                .find(|(k, _)| k == "x-session")
                .map(|(_, v)| String::from_utf8(v).unwrap());
            match session {
                Some(id) => Action::Reply(reply::with_headers(
                    request,
                    HeaderMutation {
                        set_headers: vec![reply::set(
                            "x-echo",
                            &id,
                            HeaderAppendAction::AppendIfExistsOrAdd,
                        )],
                        remove_headers: vec![],
                    },
                )),
                None => Action::Reply(reply::proceed(request)),
            }
        })
        .await
        .unwrap();
        let client = client_for(&server);

        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..50 {
            let client = client.clone();
            tasks.spawn(async move {
                let mut headers = request_headers();
                headers.insert("x-session", i.to_string().parse().unwrap());
                let mut session = client.open(&[]).unwrap();
                let reply = session
                    .request_headers(&headers_msg(&headers, false))
                    .await
                    .unwrap();
                let Reply::Continue(mutation) = reply else {
                    panic!("{reply:?}")
                };
                assert_eq!(
                    mutation.set_headers[0].1,
                    i.to_string().as_str(),
                    "session {i} got another's reply"
                );
                session
                    .request_body(&Bytes::from(format!("body {i}")), true)
                    .await
                    .unwrap();
                session
                    .response_headers(StatusCode::OK, &HeaderMap::new(), false)
                    .await
                    .unwrap();
                session
                    .response_body(&Bytes::from_static(b"ok"), true)
                    .await
                    .unwrap();
            });
        }
        let all = timeout(PROMPT * 4, async {
            while let Some(done) = tasks.join_next().await {
                done.unwrap();
            }
        });
        all.await.expect("50 sessions finish");

        assert_eq!(
            server.connection_count(),
            1,
            "one HTTP/2 connection for every session"
        );
        assert_eq!(server.streams_opened(), 50);
        assert_eq!(server.received().len(), 200);
        timeout(PROMPT, server.wait_streams_ended(50))
            .await
            .expect("dropped sessions end their streams");
    })
    .await
}

#[tokio::test]
async fn server_down_is_a_connect_error_within_connect_timeout_and_the_client_recovers() {
    common::within(async {
        let mut server = ExtProcServer::spawn(proceed_all).await.unwrap();
        server.stop().await;
        let connect_timeout = Duration::from_secs(2);
        let client = client_at(&server.uri(), connect_timeout);

        for attempt in 0..2 {
            let started = Instant::now();
            let result = one_exchange(&client).await;
            assert!(
                matches!(result, Err(ExtProcError::Connect(_))),
                "attempt {attempt}: {result:?}"
            );
            assert!(
                started.elapsed() < connect_timeout,
                "refused fails fast: {:?}",
                started.elapsed()
            );
        }

        server.restart().await.unwrap();
        let reply = one_exchange(&client)
            .await
            .expect("works again once the server is back");
        assert!(matches!(reply, Reply::Continue(m) if m.is_empty()));
        assert_eq!(server.connection_count(), 1);
    })
    .await
}

#[tokio::test]
async fn a_processor_crash_fails_the_next_exchange_then_the_same_client_reconnects() {
    common::within(async {
        let mut server = ExtProcServer::spawn(proceed_all).await.unwrap();
        let client = client_for(&server);
        one_exchange(&client).await.expect("first exchange");

        server.stop().await;
        let result = one_exchange(&client).await;
        // Whether the client noticed the closed socket before sending decides which of the two
        // transport errors it is (refused reconnect, or the old connection dying under the call);
        // neither is mistaken for a verdict of the processor.
        assert!(
            matches!(
                result,
                Err(ExtProcError::Connect(_)) | Err(ExtProcError::ConnectionLost(_))
            ),
            "{result:?}"
        );

        server.restart().await.unwrap();
        one_exchange(&client)
            .await
            .expect("reconnects after the restart");
        assert_eq!(server.connection_count(), 2);
    })
    .await
}

/// A listener whose accept queue is full: the kernel drops new SYNs, so a connect neither
/// succeeds nor is refused — the case `connect_timeout` exists for.
fn unresponsive_listener() -> (socket2::Socket, Vec<std::net::TcpStream>, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..64 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(stream) => fillers.push(stream),
            Err(_) => return (socket, fillers, addr),
        }
    }
    panic!("the accept queue never filled up");
}

#[tokio::test]
async fn connect_timeout_bounds_a_connect_that_hangs() {
    common::within(async {
        let (_listener, _fillers, addr) = unresponsive_listener();
        let connect_timeout = Duration::from_millis(400);
        let client = client_at(&format!("http://{addr}"), connect_timeout);

        let started = Instant::now();
        let result = one_exchange(&client).await;
        let elapsed = started.elapsed();
        assert!(
            matches!(result, Err(ExtProcError::Connect(_))),
            "{result:?}"
        );
        assert!(
            elapsed >= connect_timeout,
            "gave up before the timeout: {elapsed:?}"
        );
        assert!(
            elapsed < connect_timeout + Duration::from_secs(2),
            "took {elapsed:?}"
        );
    })
    .await
}

#[tokio::test]
async fn server_closing_the_stream_mid_exchange_is_an_error_not_a_hang() {
    common::within(async {
        let server = ExtProcServer::spawn(|request| match phase_of(request) {
            "request_headers" => Action::Reply(reply::proceed(request)),
            _ => Action::Close,
        })
        .await
        .unwrap();
        let client = client_for(&server);
        let headers = request_headers();
        let mut session = client.open(&[]).unwrap();
        session
            .request_headers(&headers_msg(&headers, false))
            .await
            .unwrap();
        let result = timeout(
            PROMPT,
            session.request_body(&Bytes::from_static(b"{}"), true),
        )
        .await
        .expect("no hang");
        assert!(
            matches!(result, Err(ExtProcError::StreamClosed)),
            "{result:?}"
        );
    })
    .await
}

#[tokio::test]
async fn server_failing_the_stream_surfaces_its_grpc_status() {
    common::within(async {
        let server = ExtProcServer::spawn(|request| match phase_of(request) {
            "request_headers" => Action::Reply(reply::proceed(request)),
            _ => Action::Fail(tonic::Status::permission_denied("tenant over quota")),
        })
        .await
        .unwrap();
        let client = client_for(&server);
        let headers = request_headers();
        let mut session = client.open(&[]).unwrap();
        session
            .request_headers(&headers_msg(&headers, false))
            .await
            .unwrap();
        let result = timeout(
            PROMPT,
            session.request_body(&Bytes::from_static(b"{}"), true),
        )
        .await
        .expect("no hang");
        match result {
            Err(ExtProcError::Status(tonic::Code::PermissionDenied, message)) => {
                assert_eq!(message, "tenant over quota")
            }
            other => panic!("{other:?}"),
        }
    })
    .await
}

#[tokio::test]
async fn caller_timeout_on_a_slow_server_cancels_the_stream_and_keeps_the_connection() {
    common::within(async {
        let server = ExtProcServer::spawn(|request| {
            let slow = headers_of(request).iter().any(|(k, _)| k == "x-slow");
            if slow {
                Action::ReplyAfter(Duration::from_secs(60), reply::proceed(request))
            } else {
                Action::Reply(reply::proceed(request))
            }
        })
        .await
        .unwrap();
        let client = client_for(&server);

        let mut headers = request_headers();
        headers.insert("x-slow", "1".parse().unwrap());
        let mut session = client.open(&[]).unwrap();
        let timed_out = tokio::time::timeout(
            Duration::from_millis(200),
            session.request_headers(&headers_msg(&headers, false)),
        )
        .await;
        assert!(timed_out.is_err(), "the slow reply cannot arrive in time");

        // The interrupted session refuses further use instead of pairing a late reply with the
        // wrong message.
        let reuse = session.request_body(&Bytes::new(), true).await;
        assert!(matches!(reuse, Err(ExtProcError::Protocol(_))), "{reuse:?}");

        drop(session);
        timeout(PROMPT, server.wait_streams_ended(1))
            .await
            .expect("dropping the session cancels its stream on the server");

        one_exchange(&client)
            .await
            .expect("the channel is still good");
        assert_eq!(
            server.connection_count(),
            1,
            "cancelling a stream keeps the connection"
        );
    })
    .await
}

#[tokio::test]
async fn dropping_a_session_mid_exchange_ends_its_stream() {
    common::within(async {
        let server = ExtProcServer::spawn(proceed_all).await.unwrap();
        let client = client_for(&server);
        let headers = request_headers();
        let mut session = client.open(&[]).unwrap();
        session
            .request_headers(&headers_msg(&headers, false))
            .await
            .unwrap();
        assert_eq!(server.streams_ended(), 0);
        drop(session);
        timeout(PROMPT, server.wait_streams_ended(1))
            .await
            .expect("stream ended");
    })
    .await
}

#[tokio::test]
async fn metadata_travels_as_grpc_request_headers() {
    common::within(async {
        let server = ExtProcServer::spawn(proceed_all).await.unwrap();
        let client = client_for(&server);
        let headers = request_headers();
        let mut session = client
            .open(&[("authorization", "Bearer proc-token"), ("x-tenant", "acme")])
            .unwrap();
        session
            .request_headers(&headers_msg(&headers, true))
            .await
            .unwrap();
        let metadata = server.metadata();
        assert_eq!(metadata.len(), 1);
        assert_eq!(metadata[0]["authorization"], "Bearer proc-token");
        assert_eq!(metadata[0]["x-tenant"], "acme");
        assert_eq!(metadata[0]["content-type"], "application/grpc");
    })
    .await
}

#[tokio::test]
async fn tls_with_a_ca_bundle_and_sni_and_a_wrong_ca_is_refused() {
    common::within(async {
        let ca = CertAuthority::new("extproc test CA").unwrap();
        let leaf = ca.issue(&["extproc.test"]).unwrap();
        let server =
            ExtProcServer::spawn_tls(proceed_all, leaf.server_config(Alpn::Http2).unwrap())
                .await
                .unwrap();
        let client_with = |ca_pem: String| {
            ExtProcClient::new(
                Endpoint {
                    uri: server.uri().parse().unwrap(),
                    authority: Some("extproc.test".to_owned()),
                    tls: Some(TlsSettings {
                        ca_pem: Some(ca_pem),
                        sni: Some("extproc.test".to_owned()),
                        rustls: None,
                    }),
                },
                Duration::from_secs(2),
            )
            .unwrap()
        };

        one_exchange(&client_with(ca.cert_pem()))
            .await
            .expect("TLS exchange");

        let other = CertAuthority::new("someone else").unwrap();
        let result = one_exchange(&client_with(other.cert_pem())).await;
        assert!(
            matches!(result, Err(ExtProcError::Connect(_))),
            "{result:?}"
        );
        assert_eq!(server.connection_count(), 2);
    })
    .await
}
