//! Hub response → Anthropic message (an Anthropic client served by another provider).

use serde_json::{json, Value};

use super::{parse_arguments, response_error, stop_reason, str_at};
use crate::hub::content_text;
use crate::{TranslateError, Usage};

/// Translates a hub response into the Anthropic message the client expects.
///
/// `usage` is the normalised usage of the exchange (richer than the hub's: it knows cache
/// writes); Anthropic's `input_tokens` excludes cached and cache-written tokens, so they are
/// subtracted back out. Tool call arguments that are not a JSON object are the provider's fault.
pub fn message_from_hub(hub: &Value, usage: &Usage) -> Result<Value, TranslateError> {
    let choice = hub
        .pointer("/choices/0")
        .ok_or_else(|| response_error("response without choices"))?;
    let message = choice.get("message").unwrap_or(&Value::Null);
    let content = content_blocks(message)?;
    Ok(json!({
        "id": message_id(str_at(hub, "id").unwrap_or("")),
        "type": "message",
        "role": "assistant",
        "model": str_at(hub, "model").unwrap_or(""),
        "content": content,
        "stop_reason": stop_reason(str_at(choice, "finish_reason")),
        "stop_sequence": null,
        "usage": anthropic_usage_json(usage),
    }))
}

/// Anthropic message ids start with `msg_`; clients may rely on it, so other ids get the prefix.
pub(super) fn message_id(hub_id: &str) -> String {
    if hub_id.starts_with("msg_") {
        hub_id.to_string()
    } else {
        format!("msg_{hub_id}")
    }
}

/// Anthropic's `usage` object for a normalised usage.
pub(super) fn anthropic_usage_json(usage: &Usage) -> Value {
    let uncached = usage
        .input
        .saturating_sub(usage.cached_input)
        .saturating_sub(usage.cache_creation);
    json!({
        "input_tokens": uncached,
        "output_tokens": usage.output,
        "cache_read_input_tokens": usage.cached_input,
        "cache_creation_input_tokens": usage.cache_creation,
    })
}

/// A text block (when there is text; a refusal is the text the model gave instead), then one
/// `tool_use` block per tool call.
fn content_blocks(message: &Value) -> Result<Vec<Value>, TranslateError> {
    let mut text = content_text(message.get("content").unwrap_or(&Value::Null));
    if text.is_empty() {
        text = str_at(message, "refusal").unwrap_or("").to_string();
    }
    let mut blocks = Vec::new();
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        for call in calls {
            blocks.push(tool_use_block(call)?);
        }
    }
    Ok(blocks)
}

fn tool_use_block(call: &Value) -> Result<Value, TranslateError> {
    let function = call.get("function").unwrap_or(&Value::Null);
    let input =
        parse_arguments(str_at(function, "arguments").unwrap_or("")).map_err(response_error)?;
    Ok(json!({
        "type": "tool_use",
        "id": str_at(call, "id").unwrap_or(""),
        "name": str_at(function, "name").unwrap_or(""),
        "input": input,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn usage() -> Usage {
        Usage {
            input: 1200,
            output: 150,
            cached_input: 1000,
            cache_creation: 50,
            reasoning: 20,
            total: 1350,
        }
    }

    #[test]
    fn text_response() {
        let hub = json!({
            "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
            "object": "chat.completion", "created": 1741569952, "model": "gpt-4.1-2025-04-14",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris.", "refusal": null},
                "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1200, "completion_tokens": 150, "total_tokens": 1350}
        });
        assert_eq!(
            message_from_hub(&hub, &usage()).unwrap(),
            json!({
                "id": "msg_chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
                "type": "message",
                "role": "assistant",
                "model": "gpt-4.1-2025-04-14",
                "content": [{"type": "text", "text": "Paris."}],
                "stop_reason": "end_turn",
                "stop_sequence": null,
                "usage": {"input_tokens": 150, "output_tokens": 150, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 50}
            })
        );
    }

    #[test]
    fn tool_call_response() {
        let hub = json!({
            "id": "msg_already", "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null,
                "tool_calls": [
                    {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}},
                    {"id": "call_def", "type": "function", "function": {"name": "now", "arguments": ""}}
                ]
            }}]
        });
        let msg = message_from_hub(&hub, &Usage::new(40, 12)).unwrap();
        assert_eq!(msg["id"], "msg_already");
        assert_eq!(
            msg["content"],
            json!([
                {"type": "tool_use", "id": "call_abc", "name": "get_weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "call_def", "name": "now", "input": {}}
            ])
        );
        assert_eq!(msg["stop_reason"], "tool_use");
        assert_eq!(
            msg["usage"],
            json!({"input_tokens": 40, "output_tokens": 12, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0})
        );
    }

    #[test]
    fn stop_reasons_and_refusal() {
        let msg = |finish: Value, message: Value| {
            let hub = json!({"id": "x", "model": "m", "choices": [{"message": message, "finish_reason": finish}]});
            message_from_hub(&hub, &Usage::default()).unwrap()
        };
        let text = json!({"role": "assistant", "content": "…"});
        assert_eq!(
            msg(json!("length"), text.clone())["stop_reason"],
            "max_tokens"
        );
        assert_eq!(msg(json!("stop"), text.clone())["stop_reason"], "end_turn");
        assert_eq!(msg(Value::Null, text)["stop_reason"], "end_turn");
        let refused = msg(
            json!("content_filter"),
            json!({"role": "assistant", "content": null, "refusal": "I can't help with that."}),
        );
        assert_eq!(refused["stop_reason"], "refusal");
        assert_eq!(
            refused["content"],
            json!([{"type": "text", "text": "I can't help with that."}])
        );
        let empty = msg(json!("stop"), json!({"role": "assistant", "content": ""}));
        assert_eq!(empty["content"], json!([]));
    }

    #[test]
    fn content_parts_are_joined() {
        let hub = json!({"id": "x", "model": "m", "choices": [{"finish_reason": "stop", "message":
            {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}]});
        let msg = message_from_hub(&hub, &Usage::default()).unwrap();
        assert_eq!(msg["content"], json!([{"type": "text", "text": "ab"}]));
    }

    #[test]
    fn malformed_responses() {
        let no_choices = json!({"id": "x", "model": "m", "choices": []});
        assert!(matches!(
            message_from_hub(&no_choices, &Usage::default()),
            Err(TranslateError::Response(_))
        ));
        let bad_args = json!({"id": "x", "model": "m", "choices": [{"finish_reason": "tool_calls", "message": {
            "role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{nope"}}]
        }}]});
        assert!(matches!(
            message_from_hub(&bad_args, &Usage::default()),
            Err(TranslateError::Response(_))
        ));
    }

    #[test]
    fn usage_never_underflows() {
        // A provider that reports cache reads larger than its prompt count must not wrap around.
        let odd = Usage {
            input: 10,
            cached_input: 20,
            ..Usage::default()
        };
        assert_eq!(anthropic_usage_json(&odd)["input_tokens"], 0);
    }
}
