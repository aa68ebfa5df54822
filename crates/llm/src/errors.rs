//! Error bodies in the client's dialect.

use bytes::Bytes;
use serde_json::json;

use crate::Dialect;

/// OpenAI's error `type` for a status.
pub fn openai_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

/// A complete error body for `dialect`: OpenAI `{"error": {message, type, param, code}}` or
/// Anthropic `{"type": "error", "error": {type, message}}`.
pub fn body(dialect: Dialect, status: u16, code: &str, message: &str) -> Bytes {
    let v = match dialect {
        Dialect::OpenAI => json!({"error": {
            "message": message,
            "type": openai_type(status),
            "param": null,
            "code": code,
        }}),
        Dialect::Anthropic => {
            crate::anthropic::error_body(crate::anthropic::error_type_for_status(status), message)
        }
    };
    Bytes::from(v.to_string())
}

/// The message of an OpenAI-schema error body (`{"error": {"message"}}`), else the body's text.
pub fn openai_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned())
}
