//! Anthropic Messages request → hub request (an Anthropic client served by another provider).

use serde_json::{json, Map, Value};

use super::{arguments_text, request_error, str_at};
use crate::TranslateError;

/// Translates an Anthropic Messages request into a hub (Chat Completions) request.
///
/// The system prompt becomes the first message; each `tool_result` block becomes its own `tool`
/// message, placed before what else its user turn says (OpenAI wants tool results right after the
/// assistant's calls). Extended thinking (`thinking`, and thinking blocks in history), `top_k` and
/// `cache_control` have no hub form and are dropped; server tools and documents are refused.
pub fn hub_request_from_messages(req: &Value) -> Result<Value, TranslateError> {
    let model = req
        .get("model")
        .filter(|m| m.is_string())
        .ok_or_else(|| missing("model"))?;
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| missing("messages"))?;
    let max_tokens = req
        .get("max_tokens")
        .and_then(Value::as_u64)
        .ok_or_else(|| missing("max_tokens"))?;
    let mut hub_messages = Vec::new();
    if let Some(system) = req.get("system") {
        hub_messages.extend(system_message(system)?);
    }
    for (i, m) in messages.iter().enumerate() {
        let translated = hub_messages_for(m).map_err(|e| locate(e, i))?;
        hub_messages.extend(translated);
    }
    let mut out = Map::new();
    out.insert("model".into(), model.clone());
    out.insert("messages".into(), Value::Array(hub_messages));
    out.insert("max_tokens".into(), max_tokens.into());
    copy_sampling(req, &mut out);
    add_tools(req, &mut out)?;
    Ok(Value::Object(out))
}

fn missing(field: &str) -> TranslateError {
    request_error(format!("`{field}` is missing or of the wrong type"))
}

/// Adds the message's position to a request error.
fn locate(e: TranslateError, i: usize) -> TranslateError {
    match e {
        TranslateError::Request(m) => TranslateError::Request(format!("messages[{i}]: {m}")),
        other => other,
    }
}

/// `system` (a string, or text blocks) → the hub system message; several blocks stay parts. An
/// empty prompt adds no message.
fn system_message(system: &Value) -> Result<Option<Value>, TranslateError> {
    let content = match system {
        Value::Null => return Ok(None),
        Value::String(s) if s.is_empty() => return Ok(None),
        Value::Array(blocks) if blocks.is_empty() => return Ok(None),
        Value::String(s) => Value::String(s.clone()),
        Value::Array(blocks) => {
            let parts: Vec<Value> = blocks
                .iter()
                .map(|b| json!({"type": "text", "text": str_at(b, "text").unwrap_or("")}))
                .collect();
            single_text_as_string(parts)
        }
        _ => {
            return Err(request_error(
                "`system` must be a string or an array of text blocks",
            ))
        }
    };
    Ok(Some(json!({"role": "system", "content": content})))
}

/// Hub content from parts: a lone text part as a plain string, the form every provider accepts.
fn single_text_as_string(mut parts: Vec<Value>) -> Value {
    match parts.as_mut_slice() {
        [only] if str_at(only, "type") == Some("text") => only["text"].take(),
        _ => Value::Array(parts),
    }
}

/// One Anthropic message → one or more hub messages.
fn hub_messages_for(m: &Value) -> Result<Vec<Value>, TranslateError> {
    let content = m.get("content").ok_or_else(|| missing("content"))?;
    match str_at(m, "role") {
        Some("user") => user_messages(content),
        Some("assistant") => Ok(vec![assistant_message(content)?]),
        Some(other) => Err(request_error(format!("unsupported role `{other}`"))),
        None => Err(missing("role")),
    }
}

/// A user turn: its tool results as `tool` messages first, then the rest as one user message.
fn user_messages(content: &Value) -> Result<Vec<Value>, TranslateError> {
    let blocks = match content {
        Value::String(s) => return Ok(vec![json!({"role": "user", "content": s})]),
        Value::Array(blocks) => blocks,
        _ => return Err(request_error("`content` must be a string or an array")),
    };
    let mut out = Vec::new();
    let mut parts = Vec::new();
    for block in blocks {
        match str_at(block, "type") {
            Some("tool_result") => out.push(tool_message(block, &mut parts)?),
            _ => parts.push(user_part(block)?),
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": single_text_as_string(parts)}));
    }
    Ok(out)
}

/// A text or image block → hub content part.
fn user_part(block: &Value) -> Result<Value, TranslateError> {
    match str_at(block, "type") {
        Some("text") => Ok(json!({"type": "text", "text": str_at(block, "text").unwrap_or("")})),
        Some("image") => image_part(block),
        Some(other) => Err(TranslateError::Unsupported(format!(
            "`{other}` content blocks"
        ))),
        None => Err(request_error("content block without `type`")),
    }
}

/// An image block → `image_url` part: base64 data as a `data:` URL, a URL source as is.
fn image_part(block: &Value) -> Result<Value, TranslateError> {
    let source = block.get("source").unwrap_or(&Value::Null);
    let url = match str_at(source, "type") {
        Some("base64") => {
            let media_type = str_at(source, "media_type").ok_or_else(|| missing("media_type"))?;
            let data = str_at(source, "data").ok_or_else(|| missing("data"))?;
            format!("data:{media_type};base64,{data}")
        }
        Some("url") => str_at(source, "url")
            .ok_or_else(|| missing("url"))?
            .to_string(),
        // File IDs live in Anthropic's Files API, which another provider cannot read.
        other => {
            let kind = other.unwrap_or("missing");
            return Err(TranslateError::Unsupported(format!(
                "image source `{kind}`"
            )));
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A `tool_result` block → hub `tool` message with its text. Tool messages are text-only in the
/// hub, so images in the result are moved to the user message that follows (`images_out`).
/// `is_error` has no hub field and is dropped; the text usually says what went wrong.
fn tool_message(block: &Value, images_out: &mut Vec<Value>) -> Result<Value, TranslateError> {
    let id = str_at(block, "tool_use_id").ok_or_else(|| missing("tool_use_id"))?;
    let text = match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => {
            let mut text = String::new();
            for item in items {
                match str_at(item, "type") {
                    Some("text") => text.push_str(str_at(item, "text").unwrap_or("")),
                    _ => images_out.push(user_part(item)?),
                }
            }
            text
        }
        Some(_) => {
            return Err(request_error(
                "`tool_result.content` must be a string or an array",
            ))
        }
    };
    Ok(json!({"role": "tool", "tool_call_id": id, "content": text}))
}

/// An assistant turn → one hub assistant message: text joined, `tool_use` blocks as tool calls.
/// Thinking blocks are the provider's own reasoning, meaningless to another provider: skipped.
fn assistant_message(content: &Value) -> Result<Value, TranslateError> {
    let blocks = match content {
        Value::String(s) => return Ok(json!({"role": "assistant", "content": s})),
        Value::Array(blocks) => blocks,
        _ => return Err(request_error("`content` must be a string or an array")),
    };
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match str_at(block, "type") {
            Some("text") => text.push_str(str_at(block, "text").unwrap_or("")),
            Some("tool_use") => tool_calls.push(tool_call(block)?),
            Some("thinking") | Some("redacted_thinking") => {}
            Some(other) => {
                return Err(TranslateError::Unsupported(format!(
                    "`{other}` content blocks"
                )))
            }
            None => return Err(request_error("content block without `type`")),
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
    Ok(message)
}

/// A `tool_use` block → hub tool call with compact JSON arguments.
fn tool_call(block: &Value) -> Result<Value, TranslateError> {
    let id = str_at(block, "id").ok_or_else(|| missing("id"))?;
    let name = str_at(block, "name").ok_or_else(|| missing("name"))?;
    Ok(json!({
        "id": id,
        "type": "function",
        "function": {"name": name, "arguments": arguments_text(block.get("input"))},
    }))
}

/// temperature, top_p, stop_sequences → stop, stream (with usage asked for, so the gateway can
/// report it in the final `message_delta`), metadata.user_id → user.
fn copy_sampling(req: &Value, out: &mut Map<String, Value>) {
    for key in ["temperature", "top_p"] {
        if let Some(v) = req.get(key).filter(|v| v.is_number()) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(stop) = req.get("stop_sequences").filter(|s| s.is_array()) {
        out.insert("stop".into(), stop.clone());
    }
    if let Some(stream) = req.get("stream").and_then(Value::as_bool) {
        out.insert("stream".into(), stream.into());
        if stream {
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
    }
    if let Some(user) = req.pointer("/metadata/user_id").filter(|u| u.is_string()) {
        out.insert("user".into(), user.clone());
    }
}

/// tools → hub function tools; tool_choice → hub tool_choice and `parallel_tool_calls`.
fn add_tools(req: &Value, out: &mut Map<String, Value>) -> Result<(), TranslateError> {
    if let Some(tools) = req.get("tools").and_then(Value::as_array) {
        let tools: Vec<Value> = tools.iter().map(hub_tool).collect::<Result<_, _>>()?;
        out.insert("tools".into(), Value::Array(tools));
    }
    let Some(choice) = req.get("tool_choice").filter(|c| !c.is_null()) else {
        return Ok(());
    };
    let hub_choice = match str_at(choice, "type") {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = str_at(choice, "name").ok_or_else(|| missing("tool_choice.name"))?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => return Err(request_error("unknown `tool_choice` type")),
    };
    out.insert("tool_choice".into(), hub_choice);
    if choice.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
        out.insert("parallel_tool_calls".into(), Value::Bool(false));
    }
    Ok(())
}

/// A client tool → hub function tool. Server tools (web search, code execution…) run inside
/// Anthropic's API and no other provider can run them.
fn hub_tool(t: &Value) -> Result<Value, TranslateError> {
    if let Some(kind) = str_at(t, "type").filter(|k| *k != "custom") {
        return Err(TranslateError::Unsupported(format!("server tool `{kind}`")));
    }
    let name = str_at(t, "name").ok_or_else(|| missing("tools[].name"))?;
    let mut function = json!({"name": name});
    if let Some(d) = t.get("description").filter(|d| d.is_string()) {
        function["description"] = d.clone();
    }
    if let Some(schema) = t.get("input_schema") {
        function["parameters"] = schema.clone();
    }
    Ok(json!({"type": "function", "function": function}))
}

#[cfg(test)]
#[path = "client_request_tests.rs"]
mod tests;
