//! Anthropic message → hub response, and Anthropic usage → [`Usage`] (Anthropic as the provider).

use serde_json::{json, Value};

use super::{arguments_text, finish_reason, response_error, str_at};
use crate::usage::UsageFields;
use crate::{hub, TranslateError, Usage};

/// Normalises an Anthropic `usage` object. Anthropic's `input_tokens` counts only the tokens after
/// the last cache breakpoint, so the cache reads and writes are added to make `input` the whole
/// prompt, as [`Usage`] defines it.
pub fn usage_from_anthropic(u: &Value) -> Usage {
    usage_of_anthropic(u)
}

/// [`usage_from_anthropic`] over any JSON value that reads like one.
pub(crate) fn usage_of_anthropic<J: UsageFields + ?Sized>(u: &J) -> Usage {
    anthropic_usage(
        u.count("input_tokens"),
        u.count("cache_read_input_tokens"),
        u.count("cache_creation_input_tokens"),
        u.count("output_tokens"),
    )
}

/// A [`Usage`] from Anthropic's four counters.
pub(super) fn anthropic_usage(
    input: u64,
    cache_read: u64,
    cache_creation: u64,
    output: u64,
) -> Usage {
    Usage {
        input: input + cache_read + cache_creation,
        cached_input: cache_read,
        cache_creation,
        output,
        ..Usage::default()
    }
    .with_total()
}

/// Translates an Anthropic message into a hub response, keeping the message's id and model.
///
/// Text blocks are joined into the content; `tool_use` blocks become tool calls; thinking and
/// server-tool blocks have no hub form and are skipped. Also returns the normalised usage.
pub fn hub_response(resp: &Value) -> Result<(Value, Usage), TranslateError> {
    if str_at(resp, "type") == Some("error") {
        return Err(response_error(stream_error_text(resp)));
    }
    let blocks = resp
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| response_error("message without `content`"))?;
    let message = hub_message(blocks);
    let usage = usage_from_anthropic(resp.get("usage").unwrap_or(&Value::Null));
    let finish = finish_reason(str_at(resp, "stop_reason"));
    let response = hub::response(
        str_at(resp, "id").unwrap_or(""),
        hub::now_unix(),
        str_at(resp, "model").unwrap_or(""),
        message,
        finish,
        &usage,
    );
    Ok((response, usage))
}

/// The hub assistant message for a list of Anthropic content blocks. Content is `null` when the
/// message is only tool calls, as OpenAI sends it.
fn hub_message(blocks: &[Value]) -> Value {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match str_at(block, "type") {
            Some("text") => text.push_str(str_at(block, "text").unwrap_or("")),
            Some("tool_use") => tool_calls.push(hub_tool_call(block)),
            _ => {} // thinking, redacted_thinking, server tool blocks: nothing the hub can carry
        }
    }
    let content = if text.is_empty() && !tool_calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    let mut message = json!({"role": "assistant", "content": content});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    message
}

/// A `tool_use` block → hub tool call, the input object as compact JSON arguments.
fn hub_tool_call(block: &Value) -> Value {
    json!({
        "id": str_at(block, "id").unwrap_or(""),
        "type": "function",
        "function": {
            "name": str_at(block, "name").unwrap_or(""),
            "arguments": arguments_text(block.get("input")),
        },
    })
}

/// `type: message` of an Anthropic error object (a body, or the data of a stream `error` event).
pub(super) fn stream_error_text(v: &Value) -> String {
    let error = v.get("error").unwrap_or(&Value::Null);
    format!(
        "{}: {}",
        str_at(error, "type").unwrap_or("error"),
        str_at(error, "message").unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_adds_cache_tokens_to_input() {
        let u = usage_from_anthropic(&json!({
            "input_tokens": 21,
            "cache_creation_input_tokens": 188086,
            "cache_read_input_tokens": 1000,
            "output_tokens": 393,
            "service_tier": "standard"
        }));
        assert_eq!(
            u,
            Usage {
                input: 21 + 188086 + 1000,
                cached_input: 1000,
                cache_creation: 188086,
                output: 393,
                reasoning: 0,
                total: 21 + 188086 + 1000 + 393,
            }
        );
        assert_eq!(usage_from_anthropic(&json!({})), Usage::default());
        // null cache fields (older API versions) count as zero.
        let nulls = json!({"input_tokens": 5, "output_tokens": 1, "cache_read_input_tokens": null});
        assert_eq!(usage_from_anthropic(&nulls), Usage::new(5, 1));
    }

    #[test]
    fn text_message() {
        let (hub, usage) = hub_response(&json!({
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [
                {"type": "thinking", "thinking": "The user greets me.", "signature": "EqQB"},
                {"type": "text", "text": "Hello"},
                {"type": "text", "text": ", world!"}
            ],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": 12, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 0, "output_tokens": 6}
        }))
        .unwrap();
        assert_eq!(hub["id"], "msg_01XFDUDYJgAACzvnptvVoYEL");
        assert_eq!(hub["object"], "chat.completion");
        assert_eq!(hub["model"], "claude-sonnet-4-5-20250929");
        assert!(hub["created"].as_u64().is_some_and(|c| c > 0));
        assert_eq!(
            hub["choices"],
            json!([{
                "index": 0,
                "message": {"role": "assistant", "content": "Hello, world!"},
                "finish_reason": "stop",
                "logprobs": null
            }])
        );
        assert_eq!(usage, anthropic_usage(12, 100, 0, 6));
        assert_eq!(hub["usage"], usage.to_openai());
        assert_eq!(hub["usage"]["prompt_tokens"], 112);
        assert_eq!(hub["usage"]["prompt_tokens_details"]["cached_tokens"], 100);
    }

    #[test]
    fn tool_use_message() {
        let (hub, _) = hub_response(&json!({
            "id": "msg_tools", "type": "message", "role": "assistant", "model": "claude-opus-4-1",
            "content": [
                {"type": "text", "text": "I'll check."},
                {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris", "days": [1, 2]}},
                {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 300, "output_tokens": 80}
        }))
        .unwrap();
        assert_eq!(
            hub["choices"][0]["message"],
            json!({
                "role": "assistant",
                "content": "I'll check.",
                "tool_calls": [
                    {"id": "toolu_01A", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"days\":[1,2]}"}},
                    {"id": "toolu_01B", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
                ]
            })
        );
        assert_eq!(hub["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn tool_only_message_has_null_content() {
        let (hub, _) = hub_response(&json!({
            "id": "m", "model": "c", "stop_reason": "tool_use",
            "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"x": 1}}]
        }))
        .unwrap();
        assert_eq!(hub["choices"][0]["message"]["content"], Value::Null);
    }

    #[test]
    fn stop_reasons() {
        let finish = |reason: Value| {
            let resp = json!({"id": "m", "model": "c", "content": [], "stop_reason": reason});
            hub_response(&resp).unwrap().0["choices"][0]["finish_reason"].clone()
        };
        assert_eq!(finish(json!("end_turn")), "stop");
        assert_eq!(finish(json!("stop_sequence")), "stop");
        assert_eq!(finish(json!("max_tokens")), "length");
        assert_eq!(finish(json!("tool_use")), "tool_calls");
        assert_eq!(finish(json!("refusal")), "content_filter");
        assert_eq!(finish(json!("pause_turn")), "stop");
        assert_eq!(finish(Value::Null), "stop");
    }

    #[test]
    fn error_and_malformed_bodies() {
        let err = hub_response(&json!({
            "type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}
        }));
        assert_eq!(
            err,
            Err(TranslateError::Response(
                "overloaded_error: Overloaded".into()
            ))
        );
        assert!(matches!(
            hub_response(&json!({"id": "m"})),
            Err(TranslateError::Response(_))
        ));
    }
}
