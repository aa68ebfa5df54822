//! Gemini `generateContent` / `streamGenerateContent` ↔ hub, for Vertex AI and the Gemini API
//! alike (both take and return the same JSON).
//!
//! Gemini's shape differs from the hub's in ways that need state: roles are `user` and `model`
//! and must not repeat back to back; the system prompt is a separate `systemInstruction`; a tool
//! result names its *function*, not a call id; function calls carry no ids at all (so ids are made
//! up on the way back); and thinking models attach an opaque `thoughtSignature` to function calls
//! that must be sent back with them on the next turn (Gemini 3 refuses a request without it).
//! The hub has nowhere to keep that signature except the one field a client hands back verbatim,
//! the tool call id. So tool call ids are `call_<n>` (the call's position in the response), or
//! `call_<n>_ts_<signature as unpadded base64url>` when the call was signed; such an id coming back
//! in an assistant message restores the signature on its `functionCall`.

use std::collections::HashMap;

use base64::alphabet;
use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE_NO_PAD,
};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use ring::rand::SecureRandom;
use serde_json::{json, Map, Value};

use super::{media, schema};
use crate::{hub, TranslateError, Usage};

// ---------------------------------------------------------------------------------------------
// Request: hub → Gemini
// ---------------------------------------------------------------------------------------------

/// A hub (Chat Completions) request → a Gemini `GenerateContentRequest` body. The model is not
/// part of the body: it goes in the path (see [`super::endpoints`]).
pub fn generate_request(hub: &Value) -> Result<Value, TranslateError> {
    let messages = hub
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| request_error("messages must be an array"))?;
    let mut system = Vec::new();
    let mut turns = Turns::default();
    for message in messages {
        add_message(message, &mut system, &mut turns)?;
    }
    if turns.contents.is_empty() {
        // Gemini needs at least one turn; a system prompt alone is not one.
        return Err(request_error("no user or assistant message with content"));
    }
    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(turns.contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    // tool_choice is checked even without tools, but only sent with them: it means nothing
    // alone, and Gemini may refuse a calling config with no functions declared.
    let tool_config = tool_config(hub)?;
    if let Some(tools) = tools(hub)? {
        out.insert("tools".into(), tools);
        if let Some(tool_config) = tool_config {
            out.insert("toolConfig".into(), tool_config);
        }
    }
    let generation_config = generation_config(hub)?;
    if !generation_config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(generation_config));
    }
    Ok(Value::Object(out))
}

/// The conversation as Gemini `contents`, built message by message.
#[derive(Default)]
struct Turns {
    contents: Vec<Value>,
    /// Function name of each tool call id seen so far: a tool result must name its function.
    /// Later calls overwrite earlier ones with the same id, which is right because a tool message
    /// answers the assistant message just before it (ids like `call_0` recur across turns).
    call_names: HashMap<String, String>,
}

impl Turns {
    /// Appends parts as a turn of `role`, merged into the previous turn when that has the same
    /// role (Gemini wants turns to alternate; tool results and a user message become one turn).
    fn push(&mut self, role: &str, parts: Vec<Value>) {
        if parts.is_empty() {
            return; // Gemini refuses a turn without parts.
        }
        if let Some(last) = self.contents.last_mut() {
            if last["role"] == role {
                if let Some(existing) = last["parts"].as_array_mut() {
                    existing.extend(parts);
                    return;
                }
            }
        }
        self.contents.push(json!({"role": role, "parts": parts}));
    }
}

fn add_message(
    message: &Value,
    system: &mut Vec<Value>,
    turns: &mut Turns,
) -> Result<(), TranslateError> {
    let role = message
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| request_error("message without a role"))?;
    let content = message.get("content").unwrap_or(&Value::Null);
    match role {
        "system" | "developer" => system.extend(text_only_parts(content, role)?),
        "user" => turns.push("user", user_parts(content)?),
        "assistant" => {
            let parts = assistant_parts(message, &mut turns.call_names)?;
            turns.push("model", parts);
        }
        "tool" => {
            let part = function_response(message, &turns.call_names)?;
            turns.push("user", vec![part]);
        }
        "function" => {
            return Err(TranslateError::Unsupported(
                "legacy function-role messages (use tool messages)".into(),
            ))
        }
        other => return Err(request_error(format!("unknown message role {other:?}"))),
    }
    Ok(())
}

/// A text part, or nothing for empty text (Gemini refuses a part with no data).
fn text_part(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({ "text": text }))
}

/// The content of a message that may hold only text (system, developer, assistant).
fn text_only_parts(content: &Value, role: &str) -> Result<Vec<Value>, TranslateError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(text_part(s).into_iter().collect()),
        Value::Array(parts) => {
            let mut out = Vec::new();
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => out.extend(text_part(str_field(part, "text"))),
                    // An assistant's refusal is what it said.
                    Some("refusal") => out.extend(text_part(str_field(part, "refusal"))),
                    other => {
                        return Err(TranslateError::Unsupported(format!(
                            "{} content parts in {role} messages",
                            other.unwrap_or("untyped")
                        )))
                    }
                }
            }
            Ok(out)
        }
        _ => Err(request_error(
            "content must be a string or an array of parts",
        )),
    }
}

fn user_parts(content: &Value) -> Result<Vec<Value>, TranslateError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(text_part(s).into_iter().collect()),
        Value::Array(parts) => {
            let mut out = Vec::new();
            for part in parts {
                out.extend(user_part(part)?);
            }
            Ok(out)
        }
        _ => Err(request_error(
            "content must be a string or an array of parts",
        )),
    }
}

fn user_part(part: &Value) -> Result<Option<Value>, TranslateError> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => Ok(text_part(str_field(part, "text"))),
        Some("image_url") => {
            // `{"image_url": {"url": …}}`, or the bare string some clients send.
            let image = part.get("image_url").unwrap_or(&Value::Null);
            let url = image
                .get("url")
                .and_then(Value::as_str)
                .or_else(|| image.as_str())
                .ok_or_else(|| request_error("image_url part without a url"))?;
            media::url_part(url).map(Some)
        }
        Some("input_audio") => media::audio_part(&part["input_audio"]).map(Some),
        Some("file") => media::file_part(&part["file"]).map(Some),
        other => Err(TranslateError::Unsupported(format!(
            "{} content parts",
            other.unwrap_or("untyped")
        ))),
    }
}

/// An assistant message: its text, then one `functionCall` part per tool call.
fn assistant_parts(
    message: &Value,
    call_names: &mut HashMap<String, String>,
) -> Result<Vec<Value>, TranslateError> {
    let content = message.get("content").unwrap_or(&Value::Null);
    let mut parts = text_only_parts(content, "assistant")?;
    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => return Ok(parts),
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err(request_error("tool_calls must be an array")),
    };
    for call in calls {
        let (id, part) = function_call_part(call)?;
        if let Some(name) = part["functionCall"]["name"].as_str() {
            call_names.insert(id, name.to_string());
        }
        parts.push(part);
    }
    Ok(parts)
}

/// A hub tool call → (its id, a Gemini `functionCall` part with the thought signature the id
/// carries, if any).
fn function_call_part(call: &Value) -> Result<(String, Value), TranslateError> {
    if call
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("function")
        != "function"
    {
        return Err(TranslateError::Unsupported(
            "tool calls other than functions".into(),
        ));
    }
    let id = str_field(call, "id").to_string();
    let function = call.get("function").unwrap_or(&Value::Null);
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| request_error("tool call without a function name"))?;
    let args = parse_arguments(function.get("arguments"))?;
    let mut part = json!({"functionCall": {"name": name, "args": args}});
    if let Some(signature) = signature_from_call_id(&id) {
        part["thoughtSignature"] = Value::String(signature);
    }
    Ok((id, part))
}

/// Tool call arguments (a JSON string in the hub) → the object Gemini wants as `args`.
fn parse_arguments(arguments: Option<&Value>) -> Result<Value, TranslateError> {
    let text = match arguments {
        None | Some(Value::Null) => return Ok(json!({})),
        Some(Value::String(s)) => s.trim(),
        // Some clients send the object itself; it is what Gemini wants anyway.
        Some(v @ Value::Object(_)) => return Ok(v.clone()),
        Some(_) => return Err(request_error("tool call arguments must be a JSON string")),
    };
    if text.is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(request_error("tool call arguments must be a JSON object")),
        Err(e) => Err(request_error(format!(
            "tool call arguments are not JSON: {e}"
        ))),
    }
}

/// A tool message → a `functionResponse` part naming the function that was called.
fn function_response(
    message: &Value,
    call_names: &HashMap<String, String>,
) -> Result<Value, TranslateError> {
    let id = str_field(message, "tool_call_id");
    let name = call_names
        .get(id)
        .map(String::as_str)
        // Without the call in the history, a `name` on the tool message itself still helps.
        .or_else(|| message.get("name").and_then(Value::as_str))
        .ok_or_else(|| {
            request_error(format!(
                "tool message answers tool_call_id {id:?}, which no earlier assistant message made"
            ))
        })?;
    let text = hub::content_text(message.get("content").unwrap_or(&Value::Null));
    // Gemini wants an object: a JSON object result is sent as itself, anything else wrapped.
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "content": text }),
    };
    Ok(json!({"functionResponse": {"name": name, "response": response}}))
}

/// Hub `tools` → one Gemini tool holding every function declaration.
fn tools(hub: &Value) -> Result<Option<Value>, TranslateError> {
    let Some(tools) = hub.get("tools").and_then(Value::as_array) else {
        return Ok(None);
    };
    if tools.is_empty() {
        return Ok(None);
    }
    let declarations = tools
        .iter()
        .map(function_declaration)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(json!([{ "functionDeclarations": declarations }])))
}

fn function_declaration(tool: &Value) -> Result<Value, TranslateError> {
    match tool.get("type").and_then(Value::as_str) {
        Some("function") => {}
        other => {
            return Err(TranslateError::Unsupported(format!(
                "{} tools",
                other.unwrap_or("untyped")
            )))
        }
    }
    let function = tool.get("function").unwrap_or(&Value::Null);
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| request_error("tool without a function name"))?;
    let mut declaration = json!({ "name": name });
    if let Some(description) = function.get("description").and_then(Value::as_str) {
        declaration["description"] = json!(description);
    }
    if let Some(parameters) = function.get("parameters").filter(|p| !p.is_null()) {
        let parameters = schema::to_gemini(parameters)?;
        // Gemini refuses an object schema without properties ("should be non-empty for OBJECT
        // type"); a function without parameters simply has none.
        if has_properties_or_is_not_object(&parameters) {
            declaration["parameters"] = parameters;
        }
    }
    Ok(declaration)
}

fn has_properties_or_is_not_object(schema: &Value) -> bool {
    let is_object = match schema.get("type").and_then(Value::as_str) {
        None => schema.get("anyOf").is_none(),
        Some(t) => t.eq_ignore_ascii_case("object"),
    };
    let has_properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    has_properties || !is_object
}

/// Hub `tool_choice` → `toolConfig.functionCallingConfig`.
fn tool_config(hub: &Value) -> Result<Option<Value>, TranslateError> {
    let config = match hub.get("tool_choice") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(choice)) => match choice.as_str() {
            "auto" => json!({"mode": "AUTO"}),
            "none" => json!({"mode": "NONE"}),
            // ANY: the model must call one of the functions.
            "required" => json!({"mode": "ANY"}),
            other => return Err(request_error(format!("unknown tool_choice {other:?}"))),
        },
        Some(choice @ Value::Object(_)) => {
            let name = choice
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .filter(|_| {
                    // `type` is required by OpenAI, but its absence is no ambiguity.
                    matches!(
                        choice.get("type").and_then(Value::as_str),
                        None | Some("function")
                    )
                })
                .ok_or_else(|| {
                    TranslateError::Unsupported("tool_choice other than a named function".into())
                })?;
            json!({"mode": "ANY", "allowedFunctionNames": [name]})
        }
        Some(_) => return Err(request_error("tool_choice must be a string or an object")),
    };
    Ok(Some(json!({ "functionCallingConfig": config })))
}

/// Sampling and output settings → `generationConfig` (empty when the request sets none).
fn generation_config(hub: &Value) -> Result<Map<String, Value>, TranslateError> {
    let mut config = Map::new();
    // `max_completion_tokens` replaced `max_tokens` in the hub schema; the newer name wins.
    let max_tokens = non_null(hub, "max_completion_tokens").or_else(|| non_null(hub, "max_tokens"));
    if let Some(max_tokens) = max_tokens {
        config.insert("maxOutputTokens".into(), number(max_tokens, "max_tokens")?);
    }
    for (hub_key, gemini_key) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("n", "candidateCount"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("seed", "seed"),
    ] {
        if let Some(value) = non_null(hub, hub_key) {
            config.insert(gemini_key.into(), number(value, hub_key)?);
        }
    }
    if let Some(stop) = stop_sequences(hub)? {
        config.insert("stopSequences".into(), stop);
    }
    if let Some(format) = non_null(hub, "response_format") {
        add_response_format(format, &mut config)?;
    }
    Ok(config)
}

fn non_null<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

fn number(value: &Value, name: &str) -> Result<Value, TranslateError> {
    if value.is_number() {
        Ok(value.clone())
    } else {
        Err(request_error(format!("{name} must be a number")))
    }
}

/// `stop`: a string or an array of strings → `stopSequences`.
fn stop_sequences(hub: &Value) -> Result<Option<Value>, TranslateError> {
    match non_null(hub, "stop") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(json!([s]))),
        Some(Value::Array(a)) if a.is_empty() => Ok(None),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            Ok(Some(Value::Array(a.clone())))
        }
        Some(_) => Err(request_error(
            "stop must be a string or an array of strings",
        )),
    }
}

/// `response_format` → JSON output (`responseMimeType`), with the schema when one is given.
fn add_response_format(
    format: &Value,
    config: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    match format.get("type").and_then(Value::as_str) {
        Some("text") => {}
        Some("json_object") => {
            config.insert("responseMimeType".into(), json!("application/json"));
        }
        Some("json_schema") => {
            config.insert("responseMimeType".into(), json!("application/json"));
            let schema = format.get("json_schema").and_then(|s| s.get("schema"));
            if let Some(schema) = schema.filter(|s| !s.is_null()) {
                config.insert("responseSchema".into(), schema::to_gemini(schema)?);
            }
        }
        other => {
            return Err(TranslateError::Unsupported(format!(
                "response_format {}",
                other.unwrap_or("without a type")
            )))
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Tool call ids and thought signatures
// ---------------------------------------------------------------------------------------------

/// Reads a thought signature whether or not Gemini padded its base64, so a change there cannot
/// silently drop signatures.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Separates the call index from the thought signature in a tool call id.
const SIGNATURE_MARK: &str = "_ts_";

/// The id of the `index`th function call of a response: `call_<index>`, or, when Gemini attached a
/// thought signature to the call, `call_<index>_ts_<signature as base64url>`.
///
/// Gemini gives function calls no ids, so they are made up; and a thinking model's signature must
/// come back with the call on the next turn, which only the id can carry through a client. The
/// signature is re-encoded as unpadded base64url so the id stays within `[A-Za-z0-9_-]`, which
/// every client accepts (Anthropic's tool ids must match it).
fn call_id(index: usize, signature: Option<&str>) -> String {
    match signature.and_then(|s| LENIENT_BASE64.decode(s).ok()) {
        Some(bytes) if !bytes.is_empty() => {
            format!(
                "call_{index}{SIGNATURE_MARK}{}",
                URL_SAFE_NO_PAD.encode(bytes)
            )
        }
        _ => format!("call_{index}"),
    }
}

/// The thought signature (standard base64, as Gemini sends it) a [`call_id`] carries.
fn signature_from_call_id(id: &str) -> Option<String> {
    let rest = id.strip_prefix("call_")?;
    let (index, signature) = rest.split_once(SIGNATURE_MARK)?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(signature).ok()?;
    Some(STANDARD.encode(bytes))
}

// ---------------------------------------------------------------------------------------------
// Response: Gemini → hub
// ---------------------------------------------------------------------------------------------

/// A Gemini `GenerateContentResponse` → a hub chat completion (one choice per candidate), and its
/// usage.
pub fn generate_response(resp: &Value, model: &str) -> Result<(Value, Usage), TranslateError> {
    if let Some(error) = resp.get("error") {
        return Err(TranslateError::Response(error_text(error)));
    }
    let usage = usage_from(resp.get("usageMetadata"));
    let id = response_id(resp);
    let created = hub::now_unix();
    let candidates = candidates(resp);
    let Some((first, rest)) = candidates.split_first() else {
        if prompt_blocked(resp) {
            // The prompt itself was refused: no candidate, nothing generated.
            let message = json!({"role": "assistant", "content": ""});
            let out = hub::response(&id, created, model, message, "content_filter", &usage);
            return Ok((out, usage));
        }
        return Err(TranslateError::Response("no candidates".into()));
    };
    let (message, finish) = choice(first);
    let mut out = hub::response(&id, created, model, message, finish, &usage);
    if let Some(choices) = out["choices"].as_array_mut() {
        for (i, candidate) in rest.iter().enumerate() {
            let (message, finish) = choice(candidate);
            choices.push(json!({
                "index": i + 1, "message": message, "finish_reason": finish, "logprobs": null,
            }));
        }
    }
    Ok((out, usage))
}

fn candidates(resp: &Value) -> &[Value] {
    resp.get("candidates")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn prompt_blocked(resp: &Value) -> bool {
    resp.get("promptFeedback")
        .and_then(|f| f.get("blockReason"))
        .is_some_and(|r| !r.is_null())
}

/// One candidate → (hub assistant message, finish reason).
fn choice(candidate: &Value) -> (Value, &'static str) {
    let (text, calls) = read_parts(candidate);
    let finish = finish_reason(candidate.get("finishReason"), !calls.is_empty());
    // As OpenAI does: content is null when the message is only tool calls.
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    let mut message = json!({"role": "assistant", "content": content});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    (message, finish)
}

/// A candidate's answer text (thoughts left out) and its function calls as hub tool calls.
fn read_parts(candidate: &Value) -> (String, Vec<Value>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in parts(candidate) {
        if let Some(t) = answer_text(part) {
            text.push_str(t);
        } else if part.get("functionCall").is_some() {
            calls.push(tool_call(calls.len(), part));
        }
    }
    (text, calls)
}

fn parts(candidate: &Value) -> &[Value] {
    candidate
        .get("content")
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The text of a part that is answer text, not a thought summary.
fn answer_text(part: &Value) -> Option<&str> {
    if part.get("thought").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    part.get("text").and_then(Value::as_str)
}

/// A `functionCall` part → a hub tool call (arguments as compact JSON text).
fn tool_call(index: usize, part: &Value) -> Value {
    let call = &part["functionCall"];
    let arguments = match call.get("args") {
        None | Some(Value::Null) => "{}".to_string(),
        Some(args) => args.to_string(),
    };
    let signature = part.get("thoughtSignature").and_then(Value::as_str);
    json!({
        "id": call_id(index, signature),
        "type": "function",
        "function": {"name": str_field(call, "name"), "arguments": arguments},
    })
}

fn finish_reason(reason: Option<&Value>, has_tool_calls: bool) -> &'static str {
    match reason.and_then(Value::as_str) {
        Some("MAX_TOKENS") => "length",
        Some(
            "SAFETY"
            | "RECITATION"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT"
            | "IMAGE_RECITATION",
        ) => "content_filter",
        // STOP, and reasons the hub has no word for (OTHER, MALFORMED_FUNCTION_CALL, …).
        _ if has_tool_calls => "tool_calls",
        _ => "stop",
    }
}

/// `usageMetadata` → normalised usage. Gemini counts thinking apart from `candidatesTokenCount`;
/// in [`Usage`] it is part of the output.
fn usage_from(meta: Option<&Value>) -> Usage {
    let Some(meta) = meta else {
        return Usage::default();
    };
    let n = |key: &str| meta.get(key).and_then(Value::as_u64).unwrap_or(0);
    let thoughts = n("thoughtsTokenCount");
    Usage {
        input: n("promptTokenCount"),
        cached_input: n("cachedContentTokenCount"),
        output: n("candidatesTokenCount") + thoughts,
        reasoning: thoughts,
        ..Usage::default()
    }
    .with_total()
}

/// `chatcmpl-<responseId>`, or a random id when Gemini sent none.
fn response_id(resp: &Value) -> String {
    match resp.get("responseId").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => format!("chatcmpl-{id}"),
        _ => random_id(),
    }
}

fn random_id() -> String {
    let mut bytes = [0u8; 12];
    // Ids only need to be unique enough to tell responses apart in logs: should the system
    // random source fail, the clock will do.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return format!("chatcmpl-{}", hub::now_unix());
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("chatcmpl-{hex}")
}

// ---------------------------------------------------------------------------------------------
// Stream: Gemini SSE events → hub chunks
// ---------------------------------------------------------------------------------------------

/// Turns the events of `streamGenerateContent?alt=sse` (each one a whole
/// `GenerateContentResponse` holding the next piece) into hub chunks.
#[derive(Debug)]
pub struct GenerateStream {
    model: String,
    id: Option<String>,
    created: u64,
    usage: Usage,
    /// Progress of each candidate, by index.
    candidates: Vec<CandidateState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct CandidateState {
    /// The role chunk went out.
    started: bool,
    /// Tool calls sent so far; the next one's index.
    tool_calls: usize,
    /// The finish chunk went out.
    finished: bool,
}

impl GenerateStream {
    pub fn new(model: &str) -> GenerateStream {
        GenerateStream {
            model: model.to_string(),
            id: None,
            created: hub::now_unix(),
            usage: Usage::default(),
            candidates: Vec::new(),
        }
    }

    /// The hub chunks for one event's parsed JSON. An event holding an `error` object (Google
    /// sends one when a stream fails midway) is an error.
    pub fn on_event(&mut self, data: &Value) -> Result<Vec<Value>, TranslateError> {
        if let Some(error) = data.get("error") {
            return Err(TranslateError::Response(error_text(error)));
        }
        if self.id.is_none() {
            self.id = Some(response_id(data));
        }
        // Usage comes on many events, each time the running total: the last one counts.
        if let Some(meta) = data.get("usageMetadata") {
            self.usage = usage_from(Some(meta));
        }
        let mut out = Vec::new();
        let candidates = candidates(data);
        if candidates.is_empty() && prompt_blocked(data) {
            self.start(0, &mut out);
            self.finish_candidate(0, "content_filter", &mut out);
        }
        for (index, candidate) in candidates.iter().enumerate() {
            self.on_candidate(index, candidate, &mut out);
        }
        Ok(out)
    }

    /// The chunk that ends the stream: the usage of the whole exchange.
    pub fn finish(&mut self) -> Vec<Value> {
        let id = self.id.get_or_insert_with(random_id);
        vec![hub::usage_chunk(id, self.created, &self.model, &self.usage)]
    }

    /// Usage so far (all of it once the stream has ended).
    pub fn usage(&self) -> Usage {
        self.usage
    }

    fn on_candidate(&mut self, index: usize, candidate: &Value, out: &mut Vec<Value>) {
        self.start(index, out);
        for part in parts(candidate) {
            if let Some(text) = answer_text(part).filter(|t| !t.is_empty()) {
                out.push(self.chunk(index, json!({ "content": text }), None));
            } else if part.get("functionCall").is_some() {
                let state = self.state(index);
                let mut call = tool_call(state.tool_calls, part);
                call["index"] = json!(state.tool_calls);
                state.tool_calls += 1;
                out.push(self.chunk(index, json!({ "tool_calls": [call] }), None));
            }
        }
        if let Some(reason) = candidate.get("finishReason").filter(|r| !r.is_null()) {
            let finish = finish_reason(Some(reason), self.state(index).tool_calls > 0);
            self.finish_candidate(index, finish, out);
        }
    }

    /// The role chunk, once per candidate, before anything else of it.
    fn start(&mut self, index: usize, out: &mut Vec<Value>) {
        let state = self.state(index);
        if !state.started {
            state.started = true;
            out.push(self.chunk(index, json!({"role": "assistant", "content": ""}), None));
        }
    }

    fn finish_candidate(&mut self, index: usize, finish: &str, out: &mut Vec<Value>) {
        let state = self.state(index);
        if !state.finished {
            state.finished = true;
            out.push(self.chunk(index, json!({}), Some(finish)));
        }
    }

    fn state(&mut self, index: usize) -> &mut CandidateState {
        if self.candidates.len() <= index {
            self.candidates.resize(index + 1, CandidateState::default());
        }
        &mut self.candidates[index]
    }

    fn chunk(&self, index: usize, delta: Value, finish: Option<&str>) -> Value {
        let id = self.id.as_deref().unwrap_or_default();
        let mut chunk = hub::chunk(id, self.created, &self.model, delta, finish);
        if index != 0 {
            chunk["choices"][0]["index"] = json!(index);
        }
        chunk
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// The message of a Google error body (`{"error": {"code", "message", "status"}}`, bare or, as
/// Vertex sometimes sends it, inside a JSON array); any other body as text.
pub fn error_message(body: &[u8]) -> String {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let error = parsed.as_ref().and_then(|v| match v {
        Value::Array(items) => items.first().and_then(|first| first.get("error")),
        other => other.get("error"),
    });
    match error {
        Some(error) => error_text(error),
        None => String::from_utf8_lossy(body).trim().to_string(),
    }
}

/// Whether a Google error body says the API key itself was refused (`API_KEY_INVALID` in the
/// error's `details`). The Gemini API answers a wrong or revoked key with 400 `INVALID_ARGUMENT`,
/// not 401, so the status alone cannot tell the gateway's credential problem from a bad request.
pub fn api_key_rejected(body: &[u8]) -> bool {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let error = parsed.as_ref().and_then(|v| match v {
        Value::Array(items) => items.first().and_then(|first| first.get("error")),
        other => other.get("error"),
    });
    error
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array)
        .is_some_and(|details| {
            details
                .iter()
                .any(|d| d.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID"))
        })
}

/// A Google `error` value's message.
fn error_text(error: &Value) -> String {
    match error.get("message").and_then(Value::as_str) {
        Some(message) => message.to_string(),
        None => match error {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
    }
}

fn request_error(message: impl Into<String>) -> TranslateError {
    TranslateError::Request(message.into())
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;
