//! Hub request → Anthropic Messages request (Anthropic as the provider).

use serde_json::{json, Map, Value};

use super::{parse_arguments, request_error, str_at};
use crate::hub::content_text;
use crate::TranslateError;

/// Anthropic requires `max_tokens`; the hub does not. This is the budget when the client set none.
const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Translates a hub (Chat Completions) request into an Anthropic Messages request.
///
/// System and developer messages become the top-level `system`; tool results become `tool_result`
/// blocks in a user turn; consecutive turns of one role merge, since Anthropic requires user and
/// assistant to alternate. Hub fields Anthropic has no use for (`stream_options`, `seed`, penalties,
/// `logprobs`, `response_format`) are dropped; `n > 1` cannot be served and is refused.
pub fn messages_request(hub: &Value) -> Result<Value, TranslateError> {
    if hub.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(TranslateError::Unsupported("n > 1".into()));
    }
    let messages = hub
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| request_error("`messages` must be an array"))?;
    let mut system = Vec::new();
    let mut turns = Turns::default();
    for (i, m) in messages.iter().enumerate() {
        add_message(m, &mut system, &mut turns)
            .map_err(|e| prefix_error(e, &format!("messages[{i}]")))?;
    }
    let mut out = Map::new();
    if let Some(model) = hub.get("model") {
        out.insert("model".into(), model.clone());
    }
    out.insert("max_tokens".into(), max_tokens(hub)?.into());
    if let Some(system) = system_prompt(&system) {
        out.insert("system".into(), system);
    }
    out.insert("messages".into(), turns.into_value());
    copy_sampling(hub, &mut out)?;
    add_tools(hub, &mut out)?;
    if let Some(user) = hub.get("user").filter(|u| u.is_string()) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    Ok(Value::Object(out))
}

/// Adds the error's location, keeping its kind.
fn prefix_error(e: TranslateError, at: &str) -> TranslateError {
    match e {
        TranslateError::Request(m) => TranslateError::Request(format!("{at}: {m}")),
        other => other,
    }
}

/// Routes one hub message to the system prompt or to the turns.
fn add_message(
    m: &Value,
    system: &mut Vec<Value>,
    turns: &mut Turns,
) -> Result<(), TranslateError> {
    let content = m.get("content").unwrap_or(&Value::Null);
    match str_at(m, "role") {
        Some("system") | Some("developer") => {
            system.push(content.clone());
            Ok(())
        }
        Some("user") => {
            turns.push("user", user_blocks(content)?);
            Ok(())
        }
        Some("assistant") => {
            turns.push("assistant", assistant_blocks(m)?);
            Ok(())
        }
        Some("tool") => {
            turns.push("user", vec![tool_result_block(m)?]);
            Ok(())
        }
        Some(other) => Err(request_error(format!("unsupported role `{other}`"))),
        None => Err(request_error("missing `role`")),
    }
}

/// Conversation turns in Anthropic's shape: alternating roles, each with content blocks.
#[derive(Default)]
struct Turns(Vec<(&'static str, Vec<Value>)>);

impl Turns {
    /// Appends blocks, merging into the last turn when it has the same role. A message with no
    /// blocks adds nothing: Anthropic rejects empty content.
    fn push(&mut self, role: &'static str, blocks: Vec<Value>) {
        if blocks.is_empty() {
            return;
        }
        match self.0.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => self.0.push((role, blocks)),
        }
    }

    fn into_value(self) -> Value {
        let turns = self
            .0
            .into_iter()
            .map(|(role, blocks)| json!({"role": role, "content": turn_content(role, blocks)}));
        Value::Array(turns.collect())
    }
}

/// A turn's `content`: tool results first in user turns (Anthropic requires them to lead), and a
/// lone plain text block as a plain string, the form most requests use.
fn turn_content(role: &str, mut blocks: Vec<Value>) -> Value {
    if role == "user" {
        // A stable sort keeps the order within tool results and within the other blocks.
        blocks.sort_by_key(|b| str_at(b, "type") != Some("tool_result"));
    }
    match blocks.as_slice() {
        [only] if is_plain_text(only) => only["text"].clone(),
        _ => Value::Array(blocks),
    }
}

/// A text block with nothing but its text (no `cache_control`, no citations).
fn is_plain_text(block: &Value) -> bool {
    str_at(block, "type") == Some("text") && block.as_object().is_some_and(|o| o.len() == 2)
}

/// The system prompt: one string, system messages separated by a blank line; or text blocks when
/// a part carries `cache_control`, which only blocks can hold.
fn system_prompt(contents: &[Value]) -> Option<Value> {
    if contents.is_empty() {
        return None;
    }
    let has_cache_control = contents
        .iter()
        .filter_map(Value::as_array)
        .flatten()
        .any(|p| p.get("cache_control").is_some());
    if !has_cache_control {
        let texts: Vec<String> = contents.iter().map(content_text).collect();
        return Some(Value::String(texts.join("\n\n")));
    }
    let blocks = contents.iter().flat_map(|c| match c {
        Value::Array(parts) => parts.iter().filter_map(text_part_block).collect(),
        other => vec![json!({"type": "text", "text": content_text(other)})],
    });
    Some(Value::Array(blocks.collect()))
}

/// A hub text part as an Anthropic text block, `cache_control` kept; `None` for other parts.
fn text_part_block(part: &Value) -> Option<Value> {
    let text = str_at(part, "text")?;
    let mut block = json!({"type": "text", "text": text});
    if let Some(cc) = part.get("cache_control") {
        block["cache_control"] = cc.clone();
    }
    Some(block)
}

/// A user message's content as blocks: text, images, PDF files.
fn user_blocks(content: &Value) -> Result<Vec<Value>, TranslateError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(text_blocks(s)),
        Value::Array(parts) => parts.iter().map(part_block).collect(),
        _ => Err(request_error("`content` must be a string or an array")),
    }
}

/// One text block, or none for empty text (Anthropic rejects empty text blocks).
fn text_blocks(text: &str) -> Vec<Value> {
    if text.is_empty() {
        return Vec::new();
    }
    vec![json!({"type": "text", "text": text})]
}

/// One hub content part as an Anthropic block.
fn part_block(part: &Value) -> Result<Value, TranslateError> {
    let mut block = match str_at(part, "type") {
        Some("text") => json!({"type": "text", "text": str_at(part, "text").unwrap_or("")}),
        Some("image_url") => image_block(part)?,
        Some("file") => document_block(part)?,
        Some(other) => return Err(TranslateError::Unsupported(format!("`{other}` content"))),
        None => return Err(request_error("content part without `type`")),
    };
    if let Some(cc) = part.get("cache_control") {
        block["cache_control"] = cc.clone();
    }
    Ok(block)
}

/// `image_url` part → image block: a `data:` URL becomes a base64 source, an http(s) URL a URL
/// source (Anthropic fetches it).
fn image_block(part: &Value) -> Result<Value, TranslateError> {
    // `image_url` is an object `{url, detail}`; some clients send the URL string directly.
    let image = part.get("image_url").unwrap_or(&Value::Null);
    let url = str_at(image, "url")
        .or_else(|| image.as_str())
        .ok_or_else(|| request_error("`image_url` without `url`"))?;
    let source = if url.starts_with("data:") {
        let (media_type, data) = parse_data_url(url)?;
        json!({"type": "base64", "media_type": media_type, "data": data})
    } else if url.starts_with("https://") || url.starts_with("http://") {
        json!({"type": "url", "url": url})
    } else {
        return Err(request_error("image URL must be a data: or http(s) URL"));
    };
    Ok(json!({"type": "image", "source": source}))
}

/// `file` part holding inline PDF data → document block. File IDs belong to the client's provider
/// account and mean nothing to Anthropic.
fn document_block(part: &Value) -> Result<Value, TranslateError> {
    let data_url = part
        .pointer("/file/file_data")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::Unsupported("`file` content without `file_data`".into()))?;
    let (media_type, data) = parse_data_url(data_url)?;
    Ok(
        json!({"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}),
    )
}

/// Splits `data:<media type>;base64,<data>`. Only base64 data URLs can become a base64 source.
fn parse_data_url(url: &str) -> Result<(&str, &str), TranslateError> {
    let rest = url.strip_prefix("data:").unwrap_or(url);
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| request_error("malformed data: URL"))?;
    let media_type = meta
        .strip_suffix(";base64")
        .ok_or_else(|| request_error("data: URL must be base64-encoded"))?;
    Ok((media_type, data))
}

/// An assistant message as blocks: its text, then one `tool_use` per tool call.
fn assistant_blocks(m: &Value) -> Result<Vec<Value>, TranslateError> {
    let content = m.get("content").unwrap_or(&Value::Null);
    let mut blocks = text_blocks(&content_text(content));
    if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
        for call in calls {
            blocks.push(tool_use_block(call)?);
        }
    }
    Ok(blocks)
}

/// A hub tool call → `tool_use` block, its arguments string parsed into the `input` object.
fn tool_use_block(call: &Value) -> Result<Value, TranslateError> {
    let id = str_at(call, "id").ok_or_else(|| request_error("tool call without `id`"))?;
    let function = call.get("function").unwrap_or(&Value::Null);
    let name = str_at(function, "name").ok_or_else(|| request_error("tool call without a name"))?;
    let input =
        parse_arguments(str_at(function, "arguments").unwrap_or("")).map_err(request_error)?;
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

/// A hub tool message → `tool_result` block. Empty content is left out (it is optional).
fn tool_result_block(m: &Value) -> Result<Value, TranslateError> {
    let id = str_at(m, "tool_call_id")
        .ok_or_else(|| request_error("tool message without `tool_call_id`"))?;
    let mut block = json!({"type": "tool_result", "tool_use_id": id});
    let text = content_text(m.get("content").unwrap_or(&Value::Null));
    if !text.is_empty() {
        block["content"] = Value::String(text);
    }
    Ok(block)
}

/// `max_completion_tokens` (current) or `max_tokens` (older), else the default.
fn max_tokens(hub: &Value) -> Result<u64, TranslateError> {
    let given = hub
        .get("max_completion_tokens")
        .filter(|v| !v.is_null())
        .or_else(|| hub.get("max_tokens").filter(|v| !v.is_null()));
    match given {
        None => Ok(DEFAULT_MAX_TOKENS),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| request_error("`max_tokens` must be a non-negative integer")),
    }
}

/// temperature, top_p, stop → stop_sequences, stream. Values are passed unchanged: Anthropic's
/// own validation speaks more precisely than a silent clamp would.
fn copy_sampling(hub: &Value, out: &mut Map<String, Value>) -> Result<(), TranslateError> {
    for key in ["temperature", "top_p"] {
        if let Some(v) = hub.get(key).filter(|v| v.is_number()) {
            out.insert(key.into(), v.clone());
        }
    }
    match hub.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            out.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        Some(_) => {
            return Err(request_error(
                "`stop` must be a string or an array of strings",
            ))
        }
    }
    if let Some(stream) = hub.get("stream").filter(|v| v.is_boolean()) {
        out.insert("stream".into(), stream.clone());
    }
    Ok(())
}

/// tools → Anthropic tools, with tool_choice and parallel_tool_calls folded into `tool_choice`.
/// Without tools no `tool_choice` is sent: Anthropic has nothing to apply it to.
fn add_tools(hub: &Value, out: &mut Map<String, Value>) -> Result<(), TranslateError> {
    let tools = match hub.get("tools").and_then(Value::as_array) {
        Some(t) if !t.is_empty() => t,
        _ => return Ok(()),
    };
    let tools: Vec<Value> = tools.iter().map(tool).collect::<Result<_, _>>()?;
    out.insert("tools".into(), Value::Array(tools));
    let parallel = hub.get("parallel_tool_calls").and_then(Value::as_bool);
    if let Some(choice) = tool_choice(hub.get("tool_choice"), parallel)? {
        out.insert("tool_choice".into(), choice);
    }
    Ok(())
}

/// A hub function tool → `{name, description, input_schema}`.
fn tool(t: &Value) -> Result<Value, TranslateError> {
    if let Some(kind) = str_at(t, "type").filter(|k| *k != "function") {
        return Err(TranslateError::Unsupported(format!("`{kind}` tools")));
    }
    let function = t.get("function").unwrap_or(&Value::Null);
    let name = str_at(function, "name").ok_or_else(|| request_error("tool without a name"))?;
    // Anthropic requires a schema; a parameterless function takes an empty object.
    let schema = function
        .get("parameters")
        .filter(|p| p.is_object())
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    let mut out = json!({"name": name, "input_schema": schema});
    if let Some(d) = function.get("description").filter(|d| d.is_string()) {
        out["description"] = d.clone();
    }
    if let Some(cc) = t.get("cache_control") {
        out["cache_control"] = cc.clone();
    }
    Ok(out)
}

/// auto → auto, required → any, none → none, a named function → tool; `parallel_tool_calls:
/// false` becomes `disable_parallel_tool_use` (meaningless with `none`, which calls no tool).
fn tool_choice(
    choice: Option<&Value>,
    parallel: Option<bool>,
) -> Result<Option<Value>, TranslateError> {
    let mut out = match choice {
        None | Some(Value::Null) => json!({"type": "auto"}),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "required" => json!({"type": "any"}),
            "none" => json!({"type": "none"}),
            other => return Err(request_error(format!("unknown tool_choice `{other}`"))),
        },
        Some(obj) => {
            let name = obj
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| request_error("tool_choice without a function name"))?;
            json!({"type": "tool", "name": name})
        }
    };
    let disable_parallel = parallel == Some(false) && out["type"] != "none";
    if disable_parallel {
        out["disable_parallel_tool_use"] = Value::Bool(true);
    }
    // Anthropic's default is auto: only say so when the client did, or to carry the flag.
    let explicit = choice.is_some_and(|c| !c.is_null());
    Ok((explicit || disable_parallel).then_some(out))
}

#[cfg(test)]
#[path = "provider_request_tests.rs"]
mod tests;
