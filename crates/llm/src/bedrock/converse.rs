//! The Bedrock Converse API (`POST /model/{modelId}/converse`) and ConverseStream API
//! (`…/converse-stream`, an AWS event stream) ↔ hub.
//!
//! Converse differs from the hub in ways that shape this code: the system prompt is a separate
//! `system` list; messages must alternate user/assistant, so tool results (hub `tool` messages)
//! become `toolResult` blocks of a user message and neighbours of one role are merged; tool call
//! arguments are JSON values, not strings; images are only accepted as bytes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::eventstream::Message;
use crate::{hub, TranslateError, Usage};

/// The request path for a model: the id percent-encoded as one path segment (model ids hold `:`
/// and ARNs hold `/`, which must not split the path).
pub fn converse_path(model_id: &str, stream: bool) -> String {
    let op = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    format!("/model/{}/{op}", encode_segment(model_id))
}

/// Percent-encodes every byte but the unreserved `A-Za-z0-9-_.~`.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Request: hub → Converse
// ---------------------------------------------------------------------------------------------

/// The Converse request body for a hub request. The model id goes in the path
/// ([`converse_path`]), not the body.
pub fn converse_request(hub: &Value) -> Result<Value, TranslateError> {
    reject_unsupported(hub)?;
    let messages = hub
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::Request("`messages` must be an array".into()))?;
    let (system, turns) = convert_messages(messages)?;
    let has_tool_blocks = turns.iter().any(Turn::has_tool_blocks);
    let mut out = Map::new();
    out.insert(
        "messages".into(),
        Value::Array(turns.into_iter().map(Turn::into_value).collect()),
    );
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    if let Some(config) = inference_config(hub)? {
        out.insert("inferenceConfig".into(), config);
    }
    if let Some(config) = tool_config(hub, has_tool_blocks)? {
        out.insert("toolConfig".into(), config);
    }
    Ok(Value::Object(out))
}

/// Hub features Converse has no equivalent for; dropping them silently would change what the
/// client gets back.
fn reject_unsupported(hub: &Value) -> Result<(), TranslateError> {
    let unsupported = |what: &str| Err(TranslateError::Unsupported(what.into()));
    if hub.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return unsupported("n > 1");
    }
    if hub.get("logprobs").and_then(Value::as_bool) == Some(true) {
        return unsupported("logprobs");
    }
    let format = hub
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str);
    if let Some(kind @ ("json_object" | "json_schema")) = format {
        return unsupported(&format!("response_format {kind}"));
    }
    Ok(())
}

/// One Converse message under construction.
struct Turn {
    role: &'static str,
    content: Vec<Value>,
}

impl Turn {
    fn has_tool_blocks(&self) -> bool {
        self.content
            .iter()
            .any(|b| b.get("toolUse").is_some() || b.get("toolResult").is_some())
    }

    fn into_value(self) -> Value {
        json!({"role": self.role, "content": self.content})
    }
}

/// Splits hub messages into the system blocks and alternating Converse turns.
fn convert_messages(messages: &[Value]) -> Result<(Vec<Value>, Vec<Turn>), TranslateError> {
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for msg in messages {
        let role = msg.get("role").and_then(Value::as_str).unwrap_or("");
        let content = msg.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => system.extend(text_block(&hub::content_text(content))),
            "user" => push_blocks(&mut turns, "user", user_blocks(content)?),
            "assistant" => push_blocks(&mut turns, "assistant", assistant_blocks(msg)?),
            "tool" => push_blocks(&mut turns, "user", vec![tool_result_block(msg)?]),
            other => {
                return Err(TranslateError::Request(format!(
                    "unknown message role {other:?}"
                )))
            }
        }
    }
    Ok((system, turns))
}

/// Appends blocks to the last turn when it has the same role (Converse requires alternation),
/// else starts a turn. A message with no blocks adds nothing: Converse rejects empty content.
fn push_blocks(turns: &mut Vec<Turn>, role: &'static str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => last.content.extend(blocks),
        _ => turns.push(Turn {
            role,
            content: blocks,
        }),
    }
}

/// A text block, or none for empty text (Converse rejects blank text blocks).
fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({"text": text}))
}

/// The blocks of a user message (or of a tool result): text and images.
fn user_blocks(content: &Value) -> Result<Vec<Value>, TranslateError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(text_block(s).into_iter().collect()),
        Value::Array(parts) => parts.iter().filter_map(user_part).collect(),
        _ => Err(TranslateError::Request(
            "message content must be a string or an array of parts".into(),
        )),
    }
}

/// One content part as a block; `None` for an empty text part.
fn user_part(part: &Value) -> Option<Result<Value, TranslateError>> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => text_block(part.get("text").and_then(Value::as_str).unwrap_or("")).map(Ok),
        Some("image_url") => Some(image_block(part)),
        other => Some(Err(TranslateError::Unsupported(format!(
            "content part type {}",
            other.unwrap_or("(none)")
        )))),
    }
}

/// An `image_url` part as an image block. Converse takes image bytes only, so only base64
/// `data:` URLs can be sent; fetching remote URLs is not the gateway's business.
fn image_block(part: &Value) -> Result<Value, TranslateError> {
    let image = part.get("image_url");
    let url = image
        .and_then(|i| i.get("url"))
        .or(image)
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::Request("image_url part without a url".into()))?;
    let rest = url.strip_prefix("data:").ok_or_else(|| {
        TranslateError::Unsupported("image URLs other than base64 data: URLs".into())
    })?;
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| TranslateError::Request("malformed data: URL".into()))?;
    let mut params = meta.split(';');
    let mime = params.next().unwrap_or("").to_ascii_lowercase();
    if !params.any(|p| p.eq_ignore_ascii_case("base64")) {
        return Err(TranslateError::Unsupported(
            "data: URLs that are not base64".into(),
        ));
    }
    let format = match mime.as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => return Err(TranslateError::Unsupported(format!("image type {other:?}"))),
    };
    Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
}

/// An assistant message: its text, then a `toolUse` block per tool call.
fn assistant_blocks(msg: &Value) -> Result<Vec<Value>, TranslateError> {
    let content = msg.get("content").unwrap_or(&Value::Null);
    let mut blocks: Vec<Value> = text_block(&hub::content_text(content))
        .into_iter()
        .collect();
    let calls = msg.get("tool_calls").and_then(Value::as_array);
    for call in calls.into_iter().flatten() {
        blocks.push(tool_use_block(call)?);
    }
    Ok(blocks)
}

fn tool_use_block(call: &Value) -> Result<Value, TranslateError> {
    let id = required_str(call, "id", "tool call")?;
    let function = call.get("function").unwrap_or(&Value::Null);
    let name = required_str(function, "name", "tool call function")?;
    let input = parse_arguments(function.get("arguments").unwrap_or(&Value::Null))?;
    Ok(json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}))
}

/// Tool call arguments (a JSON string in the hub) as the object Converse wants; empty arguments
/// are an empty object.
fn parse_arguments(arguments: &Value) -> Result<Value, TranslateError> {
    let parsed = match arguments {
        Value::Null => return Ok(json!({})),
        Value::String(s) if s.trim().is_empty() => return Ok(json!({})),
        Value::String(s) => serde_json::from_str(s).map_err(|e| {
            TranslateError::Request(format!("tool call arguments are not JSON: {e}"))
        })?,
        other => other.clone(),
    };
    if !parsed.is_object() {
        return Err(TranslateError::Request(
            "tool call arguments must be a JSON object".into(),
        ));
    }
    Ok(parsed)
}

/// A hub `tool` message as a `toolResult` block. Text stays text; a non-string, non-array
/// content (some clients send the tool's JSON as is) becomes a `json` block.
fn tool_result_block(msg: &Value) -> Result<Value, TranslateError> {
    let id = required_str(msg, "tool_call_id", "tool message")?;
    let content = match msg.get("content").unwrap_or(&Value::Null) {
        c @ (Value::Null | Value::String(_) | Value::Array(_)) => user_blocks(c)?,
        other => vec![json!({"json": other})],
    };
    Ok(json!({"toolResult": {"toolUseId": id, "content": content}}))
}

fn required_str<'a>(v: &'a Value, key: &str, what: &str) -> Result<&'a str, TranslateError> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::Request(format!("{what} without `{key}`")))
}

/// `inferenceConfig` from the sampling fields, or `None` when none is set.
fn inference_config(hub: &Value) -> Result<Option<Value>, TranslateError> {
    let mut config = Map::new();
    let max = field(hub, "max_completion_tokens").or_else(|| field(hub, "max_tokens"));
    if let Some(max) = max {
        if max.as_u64().is_none() {
            return Err(TranslateError::Request(
                "max_tokens must be a non-negative integer".into(),
            ));
        }
        config.insert("maxTokens".into(), max.clone());
    }
    for (hub_key, key) in [("temperature", "temperature"), ("top_p", "topP")] {
        if let Some(v) = field(hub, hub_key) {
            if !v.is_number() {
                return Err(TranslateError::Request(format!(
                    "{hub_key} must be a number"
                )));
            }
            config.insert(key.into(), v.clone());
        }
    }
    if let Some(stop) = stop_sequences(hub)? {
        config.insert("stopSequences".into(), stop);
    }
    Ok((!config.is_empty()).then_some(Value::Object(config)))
}

/// A hub field that is present and not null.
fn field<'a>(hub: &'a Value, key: &str) -> Option<&'a Value> {
    hub.get(key).filter(|v| !v.is_null())
}

/// `stop` (a string or an array of strings) as a list.
fn stop_sequences(hub: &Value) -> Result<Option<Value>, TranslateError> {
    match field(hub, "stop") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(json!([s]))),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => Ok(Some(json!(a))),
        Some(_) => Err(TranslateError::Request(
            "stop must be a string or an array of strings".into(),
        )),
    }
}

/// `toolConfig` from `tools` and `tool_choice`, or `None` when there are no tools or the choice
/// is `none`.
///
/// Converse has no "none" choice, so "none" drops the tools; except that Converse refuses a
/// conversation holding toolUse/toolResult blocks without a `toolConfig`, so then the tools stay
/// (with the default choice) rather than the request failing.
fn tool_config(hub: &Value, has_tool_blocks: bool) -> Result<Option<Value>, TranslateError> {
    let tools = match hub.get("tools").and_then(Value::as_array) {
        Some(tools) if !tools.is_empty() => tools,
        _ => return Ok(None),
    };
    let specs = tools.iter().map(tool_spec).collect::<Result<Vec<_>, _>>()?;
    let mut config = json!({"tools": specs});
    match tool_choice(field(hub, "tool_choice"))? {
        Choice::None if !has_tool_blocks => return Ok(None),
        Choice::None | Choice::Default => {}
        Choice::Converse(choice) => config["toolChoice"] = choice,
    }
    Ok(Some(config))
}

enum Choice {
    /// No `tool_choice`: Converse's default (auto) applies.
    Default,
    /// `"none"`.
    None,
    Converse(Value),
}

fn tool_choice(choice: Option<&Value>) -> Result<Choice, TranslateError> {
    let Some(choice) = choice else {
        return Ok(Choice::Default);
    };
    let named = choice
        .get("function")
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str);
    match (choice.as_str(), named) {
        (Some("auto"), _) => Ok(Choice::Converse(json!({"auto": {}}))),
        (Some("required"), _) => Ok(Choice::Converse(json!({"any": {}}))),
        (Some("none"), _) => Ok(Choice::None),
        (None, Some(name)) => Ok(Choice::Converse(json!({"tool": {"name": name}}))),
        _ => Err(TranslateError::Request(format!(
            "unsupported tool_choice {choice}"
        ))),
    }
}

/// A hub function tool as a Converse `toolSpec`.
fn tool_spec(tool: &Value) -> Result<Value, TranslateError> {
    let kind = tool
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("function");
    if kind != "function" {
        return Err(TranslateError::Unsupported(format!("tool type {kind}")));
    }
    let function = tool.get("function").unwrap_or(&Value::Null);
    let name = required_str(function, "name", "tool function")?;
    let schema = field(function, "parameters")
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    let mut spec = json!({"name": name, "inputSchema": {"json": schema}});
    // Converse rejects an empty description, so an empty one is left out.
    if let Some(desc) = function.get("description").and_then(Value::as_str) {
        if !desc.is_empty() {
            spec["description"] = json!(desc);
        }
    }
    Ok(json!({"toolSpec": spec}))
}

// ---------------------------------------------------------------------------------------------
// Response: Converse → hub
// ---------------------------------------------------------------------------------------------

/// The hub response for a Converse response, and its usage. Text blocks are joined into
/// `content`; `toolUse` blocks become `tool_calls`; other blocks (reasoning, citations) have no
/// hub field and are left out.
pub fn converse_response(resp: &Value, model: &str) -> Result<(Value, Usage), TranslateError> {
    let blocks = resp
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::Response("no output.message.content".into()))?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(tool_use) = block.get("toolUse") {
            tool_calls.push(tool_call(tool_use)?);
        }
    }
    let mut message = json!({"role": "assistant", "content": text});
    if !tool_calls.is_empty() {
        // OpenAI sends a null content beside tool calls when there is no text.
        if text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let finish = finish_reason(resp.get("stopReason").and_then(Value::as_str));
    let usage = usage_from(resp.get("usage"));
    let body = hub::response(&new_id(), hub::now_unix(), model, message, finish, &usage);
    Ok((body, usage))
}

/// A `toolUse` block as a hub tool call, the input serialised compactly as the arguments.
fn tool_call(tool_use: &Value) -> Result<Value, TranslateError> {
    let missing = |k: &str| TranslateError::Response(format!("toolUse without `{k}`"));
    let id = tool_use
        .get("toolUseId")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("toolUseId"))?;
    let name = tool_use
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("name"))?;
    let arguments = match tool_use.get("input") {
        None | Some(Value::Null) => "{}".to_string(),
        Some(input) => input.to_string(),
    };
    Ok(json!({
        "id": id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }))
}

/// The hub `finish_reason` for a Converse `stopReason`; an unknown or missing reason is `stop`.
fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("guardrail_intervened" | "content_filtered") => "content_filter",
        _ => "stop",
    }
}

/// Converse `usage` as a [`Usage`]: Bedrock's `inputTokens` leaves out the cached tokens, which
/// `Usage::input` counts.
fn usage_from(usage: Option<&Value>) -> Usage {
    let n = |k: &str| {
        usage
            .and_then(|u| u.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let cached = n("cacheReadInputTokens");
    let written = n("cacheWriteInputTokens");
    Usage {
        input: n("inputTokens") + cached + written,
        output: n("outputTokens"),
        cached_input: cached,
        cache_creation: written,
        ..Usage::default()
    }
    .with_total()
}

/// A fresh `chatcmpl-` id: the time in nanoseconds and a process-wide counter, so two ids made in
/// the same nanosecond still differ.
fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("chatcmpl-{nanos:x}{n:04x}")
}

/// The text of a Bedrock error body (`{"message": …}`, or `Message` from some services), else the
/// body itself.
pub fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            ["message", "Message"]
                .iter()
                .find_map(|k| v.get(k).and_then(Value::as_str).map(str::to_string))
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

// ---------------------------------------------------------------------------------------------
// Stream: ConverseStream events → hub chunks
// ---------------------------------------------------------------------------------------------

/// Translates the messages of a ConverseStream response into hub chunks, one message at a time.
#[derive(Debug)]
pub struct ConverseStream {
    id: String,
    created: u64,
    model: String,
    usage: Usage,
    done: bool,
    /// Content block index → hub tool call index, for the tool-use blocks started so far.
    tools: HashMap<u64, usize>,
}

impl ConverseStream {
    pub fn new(model: &str) -> ConverseStream {
        ConverseStream {
            id: new_id(),
            created: hub::now_unix(),
            model: model.to_string(),
            usage: Usage::default(),
            done: false,
            tools: HashMap::new(),
        }
    }

    /// The usage from the `metadata` event (zero before it).
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Whether the `metadata` event, the last of a stream, was seen.
    pub fn done(&self) -> bool {
        self.done
    }

    /// The hub chunks for one event-stream message. Exceptions (`:message-type` `exception`
    /// or `error`) are errors carrying the exception type and message.
    pub fn on_message(&mut self, msg: &Message) -> Result<Vec<Value>, TranslateError> {
        match msg.header_str(":message-type") {
            Some("event") => {}
            Some("exception") => return Err(exception(msg)),
            Some("error") => return Err(stream_error(msg)),
            other => {
                return Err(TranslateError::Response(format!(
                    "event-stream message of unknown type {other:?}"
                )))
            }
        }
        let event = msg.header_str(":event-type").ok_or_else(|| {
            TranslateError::Response("event-stream event without :event-type".into())
        })?;
        let payload: Value = serde_json::from_slice(&msg.payload)
            .map_err(|e| TranslateError::Response(format!("{event} event is not JSON: {e}")))?;
        self.on_event(event, &payload)
    }

    fn on_event(&mut self, event: &str, payload: &Value) -> Result<Vec<Value>, TranslateError> {
        match event {
            "messageStart" => Ok(vec![self.chunk(json!({"role": "assistant", "content": ""}))]),
            "contentBlockStart" => Ok(self.on_block_start(payload).into_iter().collect()),
            "contentBlockDelta" => self.on_block_delta(payload),
            "messageStop" => {
                let reason = finish_reason(payload.get("stopReason").and_then(Value::as_str));
                Ok(vec![hub::chunk(
                    &self.id,
                    self.created,
                    &self.model,
                    json!({}),
                    Some(reason),
                )])
            }
            "metadata" => {
                self.usage = usage_from(payload.get("usage"));
                self.done = true;
                Ok(vec![hub::usage_chunk(
                    &self.id,
                    self.created,
                    &self.model,
                    &self.usage,
                )])
            }
            // contentBlockStop carries nothing the hub needs; events added to the API later are
            // skipped rather than failing the stream.
            _ => Ok(Vec::new()),
        }
    }

    /// A tool-use block start opens a hub tool call; other block starts carry nothing.
    fn on_block_start(&mut self, payload: &Value) -> Option<Value> {
        let tool_use = payload.pointer("/start/toolUse")?;
        let block = payload.get("contentBlockIndex").and_then(Value::as_u64)?;
        let index = self.tools.len();
        self.tools.insert(block, index);
        Some(self.chunk(json!({"tool_calls": [{
            "index": index,
            "id": tool_use.get("toolUseId").and_then(Value::as_str).unwrap_or(""),
            "type": "function",
            "function": {
                "name": tool_use.get("name").and_then(Value::as_str).unwrap_or(""),
                "arguments": "",
            },
        }]})))
    }

    /// Text deltas become content deltas and tool input deltas argument deltas; other deltas
    /// (reasoning, citations) have no hub field.
    fn on_block_delta(&mut self, payload: &Value) -> Result<Vec<Value>, TranslateError> {
        let delta = payload.get("delta").unwrap_or(&Value::Null);
        if let Some(text) = delta.get("text").and_then(Value::as_str) {
            if text.is_empty() {
                return Ok(Vec::new());
            }
            return Ok(vec![self.chunk(json!({"content": text}))]);
        }
        let Some(input) = delta.pointer("/toolUse/input").and_then(Value::as_str) else {
            return Ok(Vec::new());
        };
        let block = payload.get("contentBlockIndex").and_then(Value::as_u64);
        let index = block.and_then(|b| self.tools.get(&b)).ok_or_else(|| {
            TranslateError::Response("toolUse delta for a block that did not start one".into())
        })?;
        Ok(vec![self.chunk(json!({"tool_calls": [{
            "index": index,
            "function": {"arguments": input},
        }]}))])
    }

    fn chunk(&self, delta: Value) -> Value {
        hub::chunk(&self.id, self.created, &self.model, delta, None)
    }
}

/// An `exception` message: `:exception-type` names it, the payload's `message` says it.
fn exception(msg: &Message) -> TranslateError {
    let kind = msg.header_str(":exception-type").unwrap_or("exception");
    TranslateError::Response(format!("{kind}: {}", error_message(&msg.payload)))
}

/// An `error` message: the event-stream's own error form, with code and message in headers.
fn stream_error(msg: &Message) -> TranslateError {
    let code = msg.header_str(":error-code").unwrap_or("error");
    let text = msg.header_str(":error-message").unwrap_or("");
    TranslateError::Response(format!("{code}: {text}"))
}

#[cfg(test)]
#[path = "converse_tests.rs"]
mod tests;
