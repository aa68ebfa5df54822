//! Anthropic Messages API ↔ hub, in both directions.
//!
//! - Provider direction (a hub request is served by Anthropic): [`messages_request`] turns the hub
//!   request into a Messages request; [`hub_response`] and [`AnthropicToHubStream`] turn the
//!   Anthropic message, whole or streamed, back into hub objects; [`usage_from_anthropic`]
//!   normalises Anthropic's usage.
//! - Client direction (an Anthropic SDK client is served by another provider):
//!   [`hub_request_from_messages`] turns the client's Messages request into a hub request;
//!   [`message_from_hub`] and [`HubToAnthropicStream`] turn the hub response, whole or streamed,
//!   into what the client expects; [`error_body`], [`error_type_for_status`] and
//!   [`error_message`] speak Anthropic's error shape.
//!
//! What the hub cannot say is dropped, never guessed: extended thinking, `top_k`, server tools
//! and documents are refused or skipped as each function documents.

mod client_request;
mod client_response;
mod client_stream;
mod provider_request;
mod provider_response;
mod provider_stream;
#[cfg(test)]
mod roundtrip_tests;

pub use client_request::hub_request_from_messages;
pub use client_response::message_from_hub;
pub use client_stream::HubToAnthropicStream;
pub use provider_request::messages_request;
pub(crate) use provider_response::usage_of_anthropic;
pub use provider_response::{hub_response, usage_from_anthropic};
pub use provider_stream::AnthropicToHubStream;

use serde_json::{json, Value};

use crate::TranslateError;

/// Anthropic's error body: `{"type":"error","error":{"type":kind,"message":message}}`.
pub fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// The Anthropic error `type` for an HTTP status, as Anthropic's error reference maps them.
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        // Anthropic documents `invalid_request_error` for 400 and for other unlisted 4xx codes.
        400..=499 => "invalid_request_error",
        // 500 and every other status: an error on the provider's side.
        _ => "api_error",
    }
}

/// The human-readable message of an error body: `error.message` (Anthropic's shape, which OpenAI's
/// shares), a top-level `message`, or else the whole body, lossily decoded.
pub fn error_message(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("message"))
            .and_then(Value::as_str)
    });
    match message {
        Some(m) => m.to_string(),
        None => String::from_utf8_lossy(body).into_owned(),
    }
}

/// Anthropic `stop_reason` → hub `finish_reason`. An absent or unknown reason counts as a normal
/// stop, since the message did end.
fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn (a server tool loop paused: the turn is over for
        // the client) and anything newer.
        _ => "stop",
    }
}

/// Hub `finish_reason` → Anthropic `stop_reason`; `None` (no reason given) is a normal end.
fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// The string at `key`, if `v` is an object holding one.
fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A client error naming what is wrong.
fn request_error(message: impl Into<String>) -> TranslateError {
    TranslateError::Request(message.into())
}

/// A provider error naming what is wrong.
fn response_error(message: impl Into<String>) -> TranslateError {
    TranslateError::Response(message.into())
}

/// Parses a tool call's `arguments` string into the object Anthropic's `input` must be. An empty
/// string (some providers stream no arguments for parameterless tools) means `{}`.
fn parse_arguments(arguments: &str) -> Result<Value, String> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err("tool call arguments are not a JSON object".to_string()),
        Err(e) => Err(format!("tool call arguments are not valid JSON: {e}")),
    }
}

/// Compact JSON text of a tool `input`, the hub's `arguments`.
fn arguments_text(input: Option<&Value>) -> String {
    match input {
        Some(v) => v.to_string(),
        None => "{}".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_shape() {
        assert_eq!(
            error_body("rate_limit_error", "slow down"),
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
        );
    }

    #[test]
    fn error_types_follow_status() {
        let cases = [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (409, "invalid_request_error"),
            (413, "request_too_large"),
            (422, "invalid_request_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "api_error"),
            (503, "api_error"),
            (529, "overloaded_error"),
        ];
        for (status, kind) in cases {
            assert_eq!(error_type_for_status(status), kind, "status {status}");
        }
    }

    #[test]
    fn error_message_from_bodies() {
        let anthropic = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#;
        assert_eq!(error_message(anthropic), "Overloaded");
        let openai = br#"{"error":{"message":"Invalid API key","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        assert_eq!(error_message(openai), "Invalid API key");
        assert_eq!(error_message(br#"{"message":"flat"}"#), "flat");
        assert_eq!(error_message(b"upstream timed out"), "upstream timed out");
        assert_eq!(error_message(b"bad \xff byte"), "bad \u{fffd} byte");
        assert_eq!(error_message(br#"{"error":"text"}"#), r#"{"error":"text"}"#);
    }

    #[test]
    fn stop_reasons_map_both_ways() {
        assert_eq!(finish_reason(Some("end_turn")), "stop");
        assert_eq!(finish_reason(Some("stop_sequence")), "stop");
        assert_eq!(finish_reason(Some("pause_turn")), "stop");
        assert_eq!(finish_reason(Some("max_tokens")), "length");
        assert_eq!(finish_reason(Some("tool_use")), "tool_calls");
        assert_eq!(finish_reason(Some("refusal")), "content_filter");
        assert_eq!(finish_reason(None), "stop");
        assert_eq!(stop_reason(Some("stop")), "end_turn");
        assert_eq!(stop_reason(Some("length")), "max_tokens");
        assert_eq!(stop_reason(Some("tool_calls")), "tool_use");
        assert_eq!(stop_reason(Some("content_filter")), "refusal");
        assert_eq!(stop_reason(None), "end_turn");
    }

    #[test]
    fn arguments_parse_to_objects() {
        assert_eq!(parse_arguments(r#"{"a":1}"#), Ok(json!({"a": 1})));
        assert_eq!(parse_arguments(""), Ok(json!({})));
        assert!(parse_arguments("[1]").is_err());
        assert!(parse_arguments("{oops").is_err());
        assert_eq!(
            arguments_text(Some(&json!({"a": [1, 2]}))),
            r#"{"a":[1,2]}"#
        );
        assert_eq!(arguments_text(None), "{}");
    }
}
