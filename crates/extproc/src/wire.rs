//! Conversion between `http` types and the ext_proc v3 protobuf messages.
//!
//! Encoding follows what Envoy sends: every header as a `config.core.v3.HeaderValue` with the
//! lowercase name in `key` and the bytes in `raw_value` (Envoy's default since
//! `send_header_raw_value`), request pseudo-headers `:method`, `:scheme`, `:authority`, `:path`
//! first, `:status` first in response headers. `host` is not sent: like Envoy, the authority
//! travels as `:authority`.
//!
//! Decoding accepts a value in either `raw_value` or `value` (older servers use the string
//! field), refuses both at once (as Envoy does), and resolves the append flavour exactly like
//! Envoy's ext_proc filter: a non-default `append_action` wins; otherwise the deprecated
//! `append` flag decides, and when that is unset too the header is overwritten.

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{
    HeaderMap as WireHeaderMap, HeaderValue as WireHeaderValue, HeaderValueOption,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    body_mutation, common_response::ResponseStatus, processing_request, processing_response,
    BodyMutation, CommonResponse, HeaderMutation, HttpBody, HttpHeaders, HttpTrailers,
    ImmediateResponse, ProcessingRequest, ProcessingResponse,
};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::StatusCode;

use crate::error::ExtProcError;
use crate::phase::Phase;
use crate::reply::{Append, BodyChange, Immediate, Mutation, Reply};
use crate::session::HeadersMsg;

fn wire_entry(key: &str, value: &[u8]) -> WireHeaderValue {
    WireHeaderValue {
        key: key.to_owned(),
        value: String::new(),
        raw_value: value.to_vec(),
    }
}

/// Appends the regular headers; `host` is left out because `:authority` carries it.
fn push_regular(out: &mut Vec<WireHeaderValue>, headers: &HeaderMap) {
    for (name, value) in headers {
        if name == http::header::HOST {
            continue;
        }
        out.push(wire_entry(name.as_str(), value.as_bytes()));
    }
}

fn wrap(request: processing_request::Request) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(request),
        ..ProcessingRequest::default()
    }
}

fn http_headers(headers: Vec<WireHeaderValue>, end_of_stream: bool) -> HttpHeaders {
    HttpHeaders {
        headers: Some(WireHeaderMap { headers }),
        end_of_stream,
        ..HttpHeaders::default()
    }
}

pub(crate) fn request_headers(msg: &HeadersMsg<'_>) -> ProcessingRequest {
    let mut headers = Vec::with_capacity(msg.headers.len() + 4);
    headers.push(wire_entry(":method", msg.method.as_str().as_bytes()));
    headers.push(wire_entry(":scheme", msg.scheme.as_bytes()));
    headers.push(wire_entry(":authority", msg.authority.as_bytes()));
    headers.push(wire_entry(":path", msg.path.as_bytes()));
    push_regular(&mut headers, msg.headers);
    wrap(processing_request::Request::RequestHeaders(http_headers(
        headers,
        msg.end_of_stream,
    )))
}

pub(crate) fn response_headers(
    status: StatusCode,
    headers: &HeaderMap,
    end_of_stream: bool,
) -> ProcessingRequest {
    let mut list = Vec::with_capacity(headers.len() + 1);
    list.push(wire_entry(":status", status.as_str().as_bytes()));
    push_regular(&mut list, headers);
    wrap(processing_request::Request::ResponseHeaders(http_headers(
        list,
        end_of_stream,
    )))
}

pub(crate) fn body(phase: Phase, chunk: &Bytes, end_of_stream: bool) -> ProcessingRequest {
    let body = HttpBody {
        body: chunk.to_vec(),
        end_of_stream,
        ..HttpBody::default()
    };
    wrap(if phase.is_request() {
        processing_request::Request::RequestBody(body)
    } else {
        processing_request::Request::ResponseBody(body)
    })
}

pub(crate) fn trailers(phase: Phase, trailers: &HeaderMap) -> ProcessingRequest {
    let mut headers = Vec::with_capacity(trailers.len());
    push_regular(&mut headers, trailers);
    let trailers = HttpTrailers {
        trailers: Some(WireHeaderMap { headers }),
    };
    wrap(if phase.is_request() {
        processing_request::Request::RequestTrailers(trailers)
    } else {
        processing_request::Request::ResponseTrailers(trailers)
    })
}

/// Decodes one reply. The phase is the one the reply claims to answer; `None` for an
/// immediate response, which may answer any phase.
pub(crate) fn decode(response: ProcessingResponse) -> Result<(Option<Phase>, Reply), ExtProcError> {
    use processing_response::Response as R;
    let Some(response) = response.response else {
        return Err(ExtProcError::Protocol(
            "ProcessingResponse without a response".to_owned(),
        ));
    };
    let (phase, mutation) = match response {
        R::RequestHeaders(h) => (
            Phase::RequestHeaders,
            common(h.response, Phase::RequestHeaders)?,
        ),
        R::ResponseHeaders(h) => (
            Phase::ResponseHeaders,
            common(h.response, Phase::ResponseHeaders)?,
        ),
        R::RequestBody(b) => (Phase::RequestBody, common(b.response, Phase::RequestBody)?),
        R::ResponseBody(b) => (
            Phase::ResponseBody,
            common(b.response, Phase::ResponseBody)?,
        ),
        R::RequestTrailers(t) => (
            Phase::RequestTrailers,
            headers_only(t.header_mutation, Phase::RequestTrailers)?,
        ),
        R::ResponseTrailers(t) => (
            Phase::ResponseTrailers,
            headers_only(t.header_mutation, Phase::ResponseTrailers)?,
        ),
        R::ImmediateResponse(immediate) => {
            return Ok((None, Reply::Immediate(decode_immediate(immediate)?)))
        }
        R::StreamedImmediateResponse(_) => {
            return Err(ExtProcError::Protocol(
                "streamed_immediate_response is not supported".to_owned(),
            ))
        }
    };
    Ok((Some(phase), Reply::Continue(mutation)))
}

fn common(response: Option<CommonResponse>, phase: Phase) -> Result<Mutation, ExtProcError> {
    let mut mutation = Mutation::default();
    let Some(response) = response else {
        return Ok(mutation);
    };
    let status = ResponseStatus::try_from(response.status).map_err(|_| {
        ExtProcError::Protocol(format!("unknown CommonResponse.status {}", response.status))
    })?;
    mutation.continue_and_replace = status == ResponseStatus::ContinueAndReplace;
    mutation.clear_route_cache = response.clear_route_cache;
    if let Some(headers) = response.header_mutation {
        decode_header_mutation(headers, Some(phase), &mut mutation)?;
    }
    mutation.body = response.body_mutation.and_then(decode_body);
    Ok(mutation)
}

fn headers_only(headers: Option<HeaderMutation>, phase: Phase) -> Result<Mutation, ExtProcError> {
    let mut mutation = Mutation::default();
    if let Some(headers) = headers {
        decode_header_mutation(headers, Some(phase), &mut mutation)?;
    }
    Ok(mutation)
}

fn decode_body(body: BodyMutation) -> Option<BodyChange> {
    match body.mutation? {
        body_mutation::Mutation::Body(bytes) => Some(BodyChange::Replace(Bytes::from(bytes))),
        body_mutation::Mutation::ClearBody(true) => Some(BodyChange::Clear),
        body_mutation::Mutation::ClearBody(false) => None,
        body_mutation::Mutation::StreamedResponse(streamed) => Some(BodyChange::Streamed {
            chunk: Bytes::from(streamed.body),
            end_of_stream: streamed.end_of_stream,
        }),
    }
}

fn decode_immediate(immediate: ImmediateResponse) -> Result<Immediate, ExtProcError> {
    // An unset status (or the enum's `Empty` = 0) means 200, as in Envoy.
    let code = immediate.status.map_or(0, |s| s.code);
    let status = match code {
        0 => StatusCode::OK,
        200..=599 => StatusCode::from_u16(code as u16)
            .map_err(|_| ExtProcError::Protocol(format!("immediate response status {code}")))?,
        _ => {
            return Err(ExtProcError::Protocol(format!(
                "immediate response status {code} is not a final HTTP status"
            )))
        }
    };
    let mut headers = Mutation::default();
    if let Some(mutation) = immediate.headers {
        decode_header_mutation(mutation, None, &mut headers)?;
    }
    Ok(Immediate {
        status,
        headers,
        body: Bytes::from(immediate.body),
        details: immediate.details,
    })
}

/// Decodes set/remove lists. `phase` is `None` for an immediate response, where no
/// pseudo-header may be set at all.
fn decode_header_mutation(
    mutation: HeaderMutation,
    phase: Option<Phase>,
    out: &mut Mutation,
) -> Result<(), ExtProcError> {
    for key in mutation.remove_headers {
        // Envoy never lets a processor remove pseudo-headers or `host`, whatever the rules.
        if key.starts_with(':') || key.eq_ignore_ascii_case("host") {
            return Err(ExtProcError::DisallowedMutation(format!(
                "removal of {key}"
            )));
        }
        let name = HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| ExtProcError::BadHeader(format!("remove_headers entry {key:?}")))?;
        out.remove_headers.push(name);
    }
    out.set_headers.reserve(mutation.set_headers.len());
    for option in mutation.set_headers {
        let append = append_of(&option)?;
        // Envoy skips entries without a header; so does this client.
        let Some(header) = option.header else {
            continue;
        };
        let raw = match (header.raw_value.is_empty(), header.value.is_empty()) {
            (false, false) => {
                return Err(ExtProcError::Protocol(format!(
                    "header {} sets both value and raw_value",
                    header.key
                )))
            }
            (false, true) => header.raw_value,
            (true, _) => header.value.into_bytes(),
        };
        let key = header.key;
        if key.starts_with(':') {
            set_pseudo(&key, raw, phase, out)?;
            continue;
        }
        if key.eq_ignore_ascii_case("host") {
            return Err(ExtProcError::DisallowedMutation(key));
        }
        let name = HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| ExtProcError::BadHeader(format!("set_headers name {key:?}")))?;
        let value = HeaderValue::from_maybe_shared(Bytes::from(raw))
            .map_err(|_| ExtProcError::BadHeader(format!("set_headers value of {key}")))?;
        out.set_headers.push((name, value, append));
    }
    Ok(())
}

/// `:path` may change in request header/body phases and `:status` in response header/body
/// phases (both are allowed by Envoy's default mutation rules). `:method`, `:scheme` and
/// `:authority` are routing inputs that Envoy's defaults ignore; here they are refused outright
/// so the pipeline's failure mode decides instead of a silent no-op.
fn set_pseudo(
    key: &str,
    raw: Vec<u8>,
    phase: Option<Phase>,
    out: &mut Mutation,
) -> Result<(), ExtProcError> {
    match (key, phase) {
        (":path", Some(Phase::RequestHeaders | Phase::RequestBody)) => {
            let path = PathAndQuery::from_maybe_shared(Bytes::from(raw))
                .map_err(|_| ExtProcError::BadHeader("set_headers value of :path".to_owned()))?;
            if !path.as_str().starts_with('/') {
                return Err(ExtProcError::BadHeader(format!(
                    ":path {path} is not absolute"
                )));
            }
            out.path = Some(path);
            Ok(())
        }
        (":status", Some(Phase::ResponseHeaders | Phase::ResponseBody)) => {
            let status = StatusCode::from_bytes(&raw)
                .map_err(|_| ExtProcError::BadHeader("set_headers value of :status".to_owned()))?;
            out.status = Some(status);
            Ok(())
        }
        _ => Err(ExtProcError::DisallowedMutation(key.to_owned())),
    }
}

fn append_of(option: &HeaderValueOption) -> Result<Append, ExtProcError> {
    let action = HeaderAppendAction::try_from(option.append_action).map_err(|_| {
        ExtProcError::Protocol(format!("unknown append_action {}", option.append_action))
    })?;
    Ok(match action {
        // The default value: only the deprecated flag can ask for appending.
        HeaderAppendAction::AppendIfExistsOrAdd => {
            #[allow(deprecated)]
            let legacy_append = option.append.as_ref().is_some_and(|flag| flag.value);
            if legacy_append {
                Append::Append
            } else {
                Append::Overwrite
            }
        }
        HeaderAppendAction::AddIfAbsent => Append::AddIfAbsent,
        HeaderAppendAction::OverwriteIfExistsOrAdd => Append::Overwrite,
        HeaderAppendAction::OverwriteIfExists => Append::OverwriteIfExists,
    })
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::service::ext_proc::v3::HeadersResponse;
    use envoy_types::pb::google::protobuf::BoolValue;

    use super::*;

    fn set(
        key: &str,
        value: &str,
        raw: &[u8],
        action: HeaderAppendAction,
        legacy: Option<bool>,
    ) -> HeaderValueOption {
        #[allow(deprecated)]
        HeaderValueOption {
            header: Some(WireHeaderValue {
                key: key.to_owned(),
                value: value.to_owned(),
                raw_value: raw.to_vec(),
            }),
            append: legacy.map(|value| BoolValue { value }),
            append_action: action as i32,
            keep_empty_value: false,
        }
    }

    fn request_headers_reply(mutation: HeaderMutation) -> ProcessingResponse {
        ProcessingResponse {
            response: Some(processing_response::Response::RequestHeaders(
                HeadersResponse {
                    response: Some(CommonResponse {
                        header_mutation: Some(mutation),
                        ..CommonResponse::default()
                    }),
                },
            )),
            ..ProcessingResponse::default()
        }
    }

    fn decode_mutation(mutation: HeaderMutation) -> Result<Mutation, ExtProcError> {
        match decode(request_headers_reply(mutation))? {
            (Some(Phase::RequestHeaders), Reply::Continue(m)) => Ok(m),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn append_resolution_matches_envoy_ext_proc() {
        let m = decode_mutation(HeaderMutation {
            set_headers: vec![
                set(
                    "x-default",
                    "",
                    b"1",
                    HeaderAppendAction::AppendIfExistsOrAdd,
                    None,
                ),
                set(
                    "x-legacy-true",
                    "",
                    b"1",
                    HeaderAppendAction::AppendIfExistsOrAdd,
                    Some(true),
                ),
                set(
                    "x-legacy-false",
                    "",
                    b"1",
                    HeaderAppendAction::AppendIfExistsOrAdd,
                    Some(false),
                ),
                set("x-absent", "", b"1", HeaderAppendAction::AddIfAbsent, None),
                set(
                    "x-over",
                    "",
                    b"1",
                    HeaderAppendAction::OverwriteIfExistsOrAdd,
                    None,
                ),
                set(
                    "x-exists",
                    "",
                    b"1",
                    HeaderAppendAction::OverwriteIfExists,
                    Some(true),
                ),
            ],
            remove_headers: vec![],
        })
        .unwrap();
        let actions: Vec<_> = m
            .set_headers
            .iter()
            .map(|(n, _, a)| (n.as_str(), *a))
            .collect();
        assert_eq!(
            actions,
            [
                ("x-default", Append::Overwrite),
                ("x-legacy-true", Append::Append),
                ("x-legacy-false", Append::Overwrite),
                ("x-absent", Append::AddIfAbsent),
                ("x-over", Append::Overwrite),
                ("x-exists", Append::OverwriteIfExists),
            ]
        );
    }

    #[test]
    fn value_is_read_from_raw_value_or_value_but_not_both() {
        let m = decode_mutation(HeaderMutation {
            set_headers: vec![
                set(
                    "X-Raw",
                    "",
                    b"raw",
                    HeaderAppendAction::AppendIfExistsOrAdd,
                    None,
                ),
                set(
                    "x-str",
                    "text",
                    b"",
                    HeaderAppendAction::AppendIfExistsOrAdd,
                    None,
                ),
            ],
            remove_headers: vec![],
        })
        .unwrap();
        assert_eq!(m.set_headers[0].0.as_str(), "x-raw", "names are lowercased");
        assert_eq!(m.set_headers[0].1, "raw");
        assert_eq!(m.set_headers[1].1, "text");

        let both = decode_mutation(HeaderMutation {
            set_headers: vec![set(
                "x-both",
                "a",
                b"b",
                HeaderAppendAction::AppendIfExistsOrAdd,
                None,
            )],
            remove_headers: vec![],
        });
        assert!(matches!(both, Err(ExtProcError::Protocol(_))), "{both:?}");
    }

    #[test]
    fn invalid_names_and_values_are_bad_headers() {
        for option in [
            set(
                "bad name",
                "",
                b"1",
                HeaderAppendAction::AppendIfExistsOrAdd,
                None,
            ),
            set(
                "x-ok",
                "",
                b"line\nbreak",
                HeaderAppendAction::AppendIfExistsOrAdd,
                None,
            ),
        ] {
            let result = decode_mutation(HeaderMutation {
                set_headers: vec![option],
                remove_headers: vec![],
            });
            assert!(
                matches!(result, Err(ExtProcError::BadHeader(_))),
                "{result:?}"
            );
        }
        let result = decode_mutation(HeaderMutation {
            set_headers: vec![],
            remove_headers: vec!["bad name".to_owned()],
        });
        assert!(
            matches!(result, Err(ExtProcError::BadHeader(_))),
            "{result:?}"
        );
    }

    #[test]
    fn path_may_change_on_request_headers_but_routing_pseudo_headers_and_host_may_not() {
        let m = decode_mutation(HeaderMutation {
            set_headers: vec![set(
                ":path",
                "",
                b"/v2/chat?x=1",
                HeaderAppendAction::AppendIfExistsOrAdd,
                None,
            )],
            remove_headers: vec![],
        })
        .unwrap();
        assert_eq!(m.path.as_ref().map(|p| p.as_str()), Some("/v2/chat?x=1"));
        assert!(m.set_headers.is_empty());

        for key in [
            ":authority",
            ":method",
            ":scheme",
            ":status",
            "host",
            "Host",
        ] {
            let result = decode_mutation(HeaderMutation {
                set_headers: vec![set(
                    key,
                    "",
                    b"x",
                    HeaderAppendAction::AppendIfExistsOrAdd,
                    None,
                )],
                remove_headers: vec![],
            });
            assert!(
                matches!(result, Err(ExtProcError::DisallowedMutation(_))),
                "{key}: {result:?}"
            );
        }
        for key in [":path", "host"] {
            let result = decode_mutation(HeaderMutation {
                set_headers: vec![],
                remove_headers: vec![key.to_owned()],
            });
            assert!(
                matches!(result, Err(ExtProcError::DisallowedMutation(_))),
                "{key}: {result:?}"
            );
        }
    }

    #[test]
    fn status_may_change_on_response_headers_only() {
        let reply = ProcessingResponse {
            response: Some(processing_response::Response::ResponseHeaders(
                HeadersResponse {
                    response: Some(CommonResponse {
                        header_mutation: Some(HeaderMutation {
                            set_headers: vec![set(
                                ":status",
                                "",
                                b"418",
                                HeaderAppendAction::AppendIfExistsOrAdd,
                                None,
                            )],
                            remove_headers: vec![],
                        }),
                        ..CommonResponse::default()
                    }),
                },
            )),
            ..ProcessingResponse::default()
        };
        match decode(reply).unwrap() {
            (Some(Phase::ResponseHeaders), Reply::Continue(m)) => {
                assert_eq!(m.status, Some(StatusCode::IM_A_TEAPOT))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn request_headers_are_encoded_like_envoy() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.com"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        let msg = HeadersMsg {
            method: &http::Method::POST,
            path: "/v1/chat/completions",
            scheme: "https",
            authority: "example.com",
            headers: &headers,
            end_of_stream: false,
        };
        let Some(processing_request::Request::RequestHeaders(h)) = request_headers(&msg).request
        else {
            panic!("not request headers");
        };
        assert!(!h.end_of_stream);
        let entries: Vec<(String, Vec<u8>, String)> = h
            .headers
            .unwrap()
            .headers
            .into_iter()
            .map(|e| (e.key, e.raw_value, e.value))
            .collect();
        let expected = [
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "example.com"),
            (":path", "/v1/chat/completions"),
            ("content-type", "application/json"),
            ("x-multi", "a"),
            ("x-multi", "b"),
        ];
        assert_eq!(entries.len(), expected.len(), "{entries:?}");
        for ((key, raw, value), (want_key, want_value)) in entries.iter().zip(expected) {
            assert_eq!(key, want_key);
            assert_eq!(raw, want_value.as_bytes());
            assert!(value.is_empty(), "the string field stays empty");
        }
    }

    #[test]
    fn immediate_status_defaults_to_200_and_rejects_non_final_codes() {
        use envoy_types::pb::envoy::r#type::v3::HttpStatus;
        let immediate = |code: Option<i32>| ProcessingResponse {
            response: Some(processing_response::Response::ImmediateResponse(
                ImmediateResponse {
                    status: code.map(|code| HttpStatus { code }),
                    ..ImmediateResponse::default()
                },
            )),
            ..ProcessingResponse::default()
        };
        match decode(immediate(None)).unwrap() {
            (None, Reply::Immediate(i)) => assert_eq!(i.status, StatusCode::OK),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            decode(immediate(Some(101))),
            Err(ExtProcError::Protocol(_))
        ));
        assert!(matches!(
            decode(immediate(Some(700))),
            Err(ExtProcError::Protocol(_))
        ));
    }

    #[test]
    fn an_empty_reply_is_a_protocol_error() {
        assert!(matches!(
            decode(ProcessingResponse::default()),
            Err(ExtProcError::Protocol(_))
        ));
    }
}
