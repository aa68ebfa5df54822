//! What travels in each phase, and what comes back: mutations, bodies, immediate responses,
//! skipped phases, pipelined (full-duplex) use and phase mismatches, against a real tonic
//! ext_proc server on loopback.

mod common;

use bytes::Bytes;
use common::{client_for, headers_msg, request_headers, PROMPT};
use http::{HeaderMap, HeaderValue, StatusCode};
use sluice_extproc::proto::{processing_request, HeaderMutation};
use sluice_extproc::{Append, BodyChange, ExtProcError, Phase, Reply};
use sluice_testkit::extproc::reply::body_mutation_kind::{Kind, StreamedBodyResponse};
use sluice_testkit::extproc::reply::{self, body_of, headers_of, phase_of};
use sluice_testkit::extproc::{Action, HeaderAppendAction};
use sluice_testkit::ExtProcServer;
use tokio::time::timeout;

fn continued(reply: Reply) -> sluice_extproc::Mutation {
    match reply {
        Reply::Continue(mutation) => mutation,
        other => panic!("expected Continue, got {other:?}"),
    }
}

fn text(pairs: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

#[tokio::test]
async fn request_headers_are_sent_like_envoy_and_mutations_come_back_applied() {
    common::within(async {
        let server = ExtProcServer::spawn(|request| {
            Action::Reply(reply::with_headers(
                request,
                HeaderMutation {
                    set_headers: vec![
                        reply::set(
                            "x-model",
                            "llama-3",
                            HeaderAppendAction::AppendIfExistsOrAdd,
                        ),
                        reply::set_legacy("x-multi", "two", true),
                        reply::set("x-keep", "ignored", HeaderAppendAction::AddIfAbsent),
                        reply::set(
                            "x-missing",
                            "ignored",
                            HeaderAppendAction::OverwriteIfExists,
                        ),
                        reply::set_string("x-from-string", "str"),
                        reply::set(
                            ":path",
                            "/v1/routed",
                            HeaderAppendAction::AppendIfExistsOrAdd,
                        ),
                    ],
                    remove_headers: vec!["x-drop".to_owned()],
                },
            ))
        })
        .await
        .unwrap();
        let client = client_for(&server);
        let mut headers = request_headers();
        let mut session = client.open(&[]).unwrap();

        let mutation = continued(
            timeout(
                PROMPT,
                session.request_headers(&headers_msg(&headers, false)),
            )
            .await
            .unwrap()
            .unwrap(),
        );

        // What the processor saw: pseudo-headers first, lowercase keys, values as raw bytes, no
        // `host` (it travels as `:authority`).
        let received = server.received();
        assert_eq!(received.len(), 1);
        assert_eq!(
            text(&headers_of(&received[0])),
            [
                (":method", "POST"),
                (":scheme", "https"),
                (":authority", "api.example.com"),
                (":path", "/v1/chat/completions"),
                ("content-type", "application/json"),
                ("x-drop", "secret"),
                ("x-keep", "original"),
                ("x-multi", "one"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let Some(processing_request::Request::RequestHeaders(sent)) = &received[0].request else {
            panic!("not request headers");
        };
        assert!(!sent.end_of_stream);
        assert!(sent
            .headers
            .as_ref()
            .unwrap()
            .headers
            .iter()
            .all(|h| h.value.is_empty()));

        // What came back, applied.
        assert_eq!(
            mutation.path.as_ref().map(|p| p.as_str()),
            Some("/v1/routed")
        );
        assert_eq!(mutation.set_headers[0].2, Append::Overwrite);
        mutation.apply_headers(&mut headers);
        let all = |name: &str| -> Vec<String> {
            headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(all("x-model"), ["llama-3"]);
        assert_eq!(all("x-multi"), ["one", "two"]);
        assert_eq!(all("x-keep"), ["original"]);
        assert!(all("x-missing").is_empty());
        assert_eq!(all("x-from-string"), ["str"]);
        assert!(all("x-drop").is_empty());
    })
    .await
}

#[tokio::test]
async fn response_headers_carry_status_and_come_back_mutated() {
    common::within(async {
        let server = ExtProcServer::spawn(|request| {
            if phase_of(request) != "response_headers" {
                return Action::Reply(reply::proceed(request));
            }
            Action::Reply(reply::with_headers(
                request,
                HeaderMutation {
                    set_headers: vec![
                        reply::set(":status", "203", HeaderAppendAction::AppendIfExistsOrAdd),
                        reply::set(
                            "x-guard",
                            "checked",
                            HeaderAppendAction::AppendIfExistsOrAdd,
                        ),
                        reply::set_legacy("cache-control", "no-store", true),
                    ],
                    remove_headers: vec!["server".to_owned()],
                },
            ))
        })
        .await
        .unwrap();
        let client = client_for(&server);
        let mut session = client.open(&[]).unwrap();
        let request = request_headers();
        let empty = continued(
            session
                .request_headers(&headers_msg(&request, true))
                .await
                .unwrap(),
        );
        assert!(empty.is_empty(), "{empty:?}");

        let mut response = HeaderMap::new();
        response.insert("server", HeaderValue::from_static("vllm"));
        response.insert("cache-control", HeaderValue::from_static("private"));
        let mutation = continued(
            session
                .response_headers(StatusCode::OK, &response, false)
                .await
                .unwrap(),
        );
        assert_eq!(
            text(&headers_of(&server.received()[1])),
            [
                (":status", "200"),
                ("server", "vllm"),
                ("cache-control", "private")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(
            mutation.status,
            Some(StatusCode::NON_AUTHORITATIVE_INFORMATION)
        );
        mutation.apply_headers(&mut response);
        assert!(response.get("server").is_none());
        assert_eq!(response["x-guard"], "checked");
        assert_eq!(
            response.get_all("cache-control").iter().collect::<Vec<_>>(),
            ["private", "no-store"]
        );
    })
    .await
}

#[tokio::test]
async fn buffered_bodies_are_replaced_and_cleared() {
    common::within(async {
        let server = ExtProcServer::spawn(|request| match body_of(request) {
            Some((body, _)) if phase_of(request) == "request_body" => Action::Reply(
                reply::with_body(request, Kind::Body(body.to_ascii_uppercase())),
            ),
            Some(_) => Action::Reply(reply::with_body(request, Kind::ClearBody(true))),
            None => Action::Reply(reply::proceed(request)),
        })
        .await
        .unwrap();
        let client = client_for(&server);
        let mut session = client.open(&[]).unwrap();
        let headers = request_headers();
        session
            .request_headers(&headers_msg(&headers, false))
            .await
            .unwrap();

        let body = Bytes::from_static(br#"{"model":"m"}"#);
        let mutation = continued(session.request_body(&body, true).await.unwrap());
        assert_eq!(
            mutation.body,
            Some(BodyChange::Replace(Bytes::from_static(br#"{"MODEL":"M"}"#)))
        );

        session
            .response_headers(StatusCode::OK, &HeaderMap::new(), false)
            .await
            .unwrap();
        let mutation = continued(
            session
                .response_body(&Bytes::from_static(b"answer"), true)
                .await
                .unwrap(),
        );
        assert_eq!(mutation.body, Some(BodyChange::Clear));

        let bodies: Vec<(Vec<u8>, bool)> = server
            .received()
            .iter()
            .filter_map(|r| body_of(r).map(|(b, eos)| (b.to_vec(), eos)))
            .collect();
        assert_eq!(bodies, [(body.to_vec(), true), (b"answer".to_vec(), true)]);
    })
    .await
}

#[tokio::test]
async fn streamed_chunks_are_each_answered_in_order() {
    common::within(async {
        let server = ExtProcServer::spawn(|request| match body_of(request) {
            Some((chunk, eos)) => {
                let mut replaced = chunk.to_vec();
                replaced.extend_from_slice(if eos { b"|last" } else { b"|more" });
                Action::Reply(reply::with_body(request, Kind::Body(replaced)))
            }
            None => Action::Reply(reply::proceed(request)),
        })
        .await
        .unwrap();
        let client = client_for(&server);
        let mut session = client.open(&[]).unwrap();
        let headers = request_headers();
        session
            .request_headers(&headers_msg(&headers, false))
            .await
            .unwrap();

        for i in 0..5 {
            let chunk = Bytes::from(format!("chunk{i}"));
            let last = i == 4;
            let mutation = continued(session.request_body(&chunk, last).await.unwrap());
            let expected = format!("chunk{i}|{}", if last { "last" } else { "more" });
            assert_eq!(
                mutation.body,
                Some(BodyChange::Replace(Bytes::from(expected)))
            );
        }
        assert_eq!(server.received().len(), 6);
        assert_eq!(server.streams_opened(), 1, "all chunks on one stream");
    })
    .await
}

#[tokio::test]
async fn immediate_response_carries_status_headers_body_and_ends_the_session() {
    common::within(async {
        let server = ExtProcServer::spawn(|_| {
            Action::Reply(reply::immediate(
                403,
                vec![reply::set(
                    "content-type",
                    "application/json",
                    HeaderAppendAction::AppendIfExistsOrAdd,
                )],
                br#"{"error":"blocked"}"#,
                "prompt injection",
            ))
        })
        .await
        .unwrap();
        let client = client_for(&server);
        let mut session = client.open(&[]).unwrap();
        let headers = request_headers();
        let reply = session
            .request_headers(&headers_msg(&headers, false))
            .await
            .unwrap();
        let Reply::Immediate(immediate) = reply else {
            panic!("expected immediate, got {reply:?}");
        };
        assert_eq!(immediate.status, StatusCode::FORBIDDEN);
        assert_eq!(
            immediate.body,
            Bytes::from_static(br#"{"error":"blocked"}"#)
        );
        assert_eq!(immediate.details, "prompt injection");
        let mut response = HeaderMap::new();
        immediate.headers.apply_headers(&mut response);
        assert_eq!(response["content-type"], "application/json");

        let after = session.request_body(&Bytes::from_static(b"x"), true).await;
        assert!(matches!(after, Err(ExtProcError::Protocol(_))), "{after:?}");
        assert_eq!(
            server.received().len(),
            1,
            "nothing is sent after an immediate response"
        );
    })
    .await
}

#[tokio::test]
async fn skipped_phases_are_fine_headers_only_then_response_body() {
    common::within(async {
        let server = ExtProcServer::spawn(|request| Action::Reply(reply::proceed(request)))
            .await
            .unwrap();
        let client = client_for(&server);
        let mut session = client.open(&[]).unwrap();
        let headers = request_headers();
        // A GET (no body), then straight to the response body: no request body, no response
        // headers, no trailers.
        session
            .request_headers(&headers_msg(&headers, true))
            .await
            .unwrap();
        session
            .response_body(&Bytes::from_static(b"{}"), true)
            .await
            .unwrap();
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        session.response_trailers(&trailers).await.unwrap();
        let phases: Vec<_> = server.received().iter().map(phase_of).collect();
        assert_eq!(
            phases,
            ["request_headers", "response_body", "response_trailers"]
        );
        assert_eq!(
            text(&headers_of(&server.received()[2])),
            [("grpc-status".to_owned(), "0".to_owned())]
        );
    })
    .await
}

#[tokio::test]
async fn a_reply_for_the_wrong_phase_is_a_protocol_error() {
    common::within(async {
        // Answers request headers as if they were response headers.
        let server = ExtProcServer::spawn(|request| {
            let mut wrong = request.clone();
            if let Some(processing_request::Request::RequestHeaders(h)) = wrong.request.take() {
                wrong.request = Some(processing_request::Request::ResponseHeaders(h));
            }
            Action::Reply(reply::proceed(&wrong))
        })
        .await
        .unwrap();
        let client = client_for(&server);
        let mut session = client.open(&[]).unwrap();
        let headers = request_headers();
        let result = session.request_headers(&headers_msg(&headers, false)).await;
        match result {
            Err(ExtProcError::Protocol(message)) => {
                assert!(message.contains("response_headers"), "{message}");
                assert!(message.contains("request_headers"), "{message}");
            }
            other => panic!("expected a protocol error, got {other:?}"),
        }
        let again = session.request_body(&Bytes::new(), true).await;
        assert!(
            matches!(again, Err(ExtProcError::Protocol(_))),
            "a failed session stays failed"
        );
    })
    .await
}

#[tokio::test]
async fn disallowed_mutations_are_refused_not_applied() {
    common::within(async {
        let server = ExtProcServer::spawn(|request| {
            Action::Reply(reply::with_headers(
                request,
                HeaderMutation {
                    set_headers: vec![reply::set(
                        ":authority",
                        "evil.example",
                        HeaderAppendAction::AppendIfExistsOrAdd,
                    )],
                    remove_headers: vec![],
                },
            ))
        })
        .await
        .unwrap();
        let client = client_for(&server);
        let mut session = client.open(&[]).unwrap();
        let headers = request_headers();
        let result = session.request_headers(&headers_msg(&headers, false)).await;
        assert!(
            matches!(&result, Err(ExtProcError::DisallowedMutation(name)) if name == ":authority"),
            "{result:?}"
        );
    })
    .await
}

/// A `FULL_DUPLEX_STREAMED` processor (the Inference Extension endpoint picker works this
/// way): silent until it has the whole body, then it answers headers and body together.
#[tokio::test]
async fn pipelined_session_talks_to_a_processor_that_answers_after_the_whole_body() {
    common::within(async {
        let server = ExtProcServer::spawn(|request| match body_of(request) {
            Some((_, true)) => {
                let headers = reply::with_headers(
                    &request_headers_probe(),
                    HeaderMutation {
                        set_headers: vec![reply::set(
                            "x-gateway-destination-endpoint",
                            "10.0.0.7:8000",
                            HeaderAppendAction::AppendIfExistsOrAdd,
                        )],
                        remove_headers: vec![],
                    },
                );
                let body = reply::with_body(
                    request,
                    Kind::StreamedResponse(StreamedBodyResponse {
                        body: b"whole-body".to_vec(),
                        end_of_stream: true,
                        ..StreamedBodyResponse::default()
                    }),
                );
                Action::ReplyMany(vec![headers, body])
            }
            _ => Action::Silence,
        })
        .await
        .unwrap();
        let client = client_for(&server);
        let mut session = client.open(&[]).unwrap();
        let headers = request_headers();
        session
            .send_request_headers(&headers_msg(&headers, false))
            .await
            .unwrap();
        // More chunks than the send queue holds: sending must not depend on replies.
        for i in 0..20 {
            session
                .send_request_body(&Bytes::from(format!("part{i}")), i == 19)
                .await
                .unwrap();
        }
        let first = timeout(PROMPT, session.recv()).await.unwrap().unwrap();
        assert_eq!(first.phase, Phase::RequestHeaders);
        let mutation = continued(first.reply);
        assert_eq!(mutation.set_headers[0].0, "x-gateway-destination-endpoint");
        assert_eq!(mutation.set_headers[0].1, "10.0.0.7:8000");

        let second = timeout(PROMPT, session.recv()).await.unwrap().unwrap();
        assert_eq!(second.phase, Phase::RequestBody);
        assert_eq!(
            continued(second.reply).body,
            Some(BodyChange::Streamed {
                chunk: Bytes::from_static(b"whole-body"),
                end_of_stream: true
            })
        );
        assert_eq!(server.received().len(), 21);
    })
    .await
}

#[tokio::test]
async fn pipelined_reply_for_a_phase_never_sent_is_a_protocol_error() {
    common::within(async {
        let server = ExtProcServer::spawn(|request| {
            // Answers the request headers with a response-body reply.
            let _ = request;
            Action::Reply(reply::with_body(
                &response_body_probe(),
                Kind::ClearBody(true),
            ))
        })
        .await
        .unwrap();
        let client = client_for(&server);
        let mut session = client.open(&[]).unwrap();
        let headers = request_headers();
        session
            .send_request_headers(&headers_msg(&headers, false))
            .await
            .unwrap();
        let result = timeout(PROMPT, session.recv()).await.unwrap();
        assert!(
            matches!(result, Err(ExtProcError::Protocol(_))),
            "{result:?}"
        );
    })
    .await
}

fn request_headers_probe() -> sluice_extproc::proto::ProcessingRequest {
    sluice_extproc::proto::ProcessingRequest {
        request: Some(processing_request::Request::RequestHeaders(
            Default::default(),
        )),
        ..Default::default()
    }
}

fn response_body_probe() -> sluice_extproc::proto::ProcessingRequest {
    sluice_extproc::proto::ProcessingRequest {
        request: Some(processing_request::Request::ResponseBody(Default::default())),
        ..Default::default()
    }
}
