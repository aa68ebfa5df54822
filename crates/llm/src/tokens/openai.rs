//! OpenAI request shapes: Chat Completions, legacy Completions, Embeddings and Responses.

use super::count::{Counter, ShapeError};
use super::media;
use crate::json::{Json, Object};

// The chat framing, from the OpenAI cookbook "How to count tokens with tiktoken"
// (`num_tokens_from_messages`, verified there against the API for gpt-3.5-turbo, gpt-4, gpt-4o
// and gpt-4o-mini): each message is `<|start|>{role}<|message|>{content}<|end|>`, 3 tokens plus
// its role and content; a `name` costs one token more than its text; and the reply is primed with
// `<|start|>assistant<|message|>`, 3 tokens. The Responses API's framing is not published; its
// items are the same messages under other names, so they are counted the same way.
const TOKENS_PER_MESSAGE: u64 = 3;
const TOKENS_PER_NAME: u64 = 1;
const REPLY_PRIMING: u64 = 3;

// Tool definitions are rendered into the system prompt. The cookbook's `num_tokens_for_tools`
// counts 7 (gpt-4o) or 10 (gpt-4) tokens to open each function, 12 to close the list, and
// compact `name:type:description` lines for parameters; this counts the definition's JSON
// instead, whose quotes, braces and keys make it longer than that rendering, plus the same
// opening and closing.
const TOKENS_PER_TOOL: u64 = 10;
const TOOLS_END: u64 = 12;

/// A tool call in an assistant message: its name and arguments plus framing
/// (`to=functions.{name}`, the channel and the call markers; not published, so generous).
const TOKENS_PER_TOOL_CALL: u64 = 8;

fn array<'a, 'j>(body: &'a Object<'j>, key: &'static str) -> Result<&'a [Json<'j>], ShapeError> {
    match body.get(key) {
        None => Err(ShapeError::Missing(key)),
        Some(Json::Array(a)) => Ok(a),
        Some(_) => Err(ShapeError::Type {
            field: key,
            expected: "an array",
        }),
    }
}

/// `POST /chat/completions`.
pub(super) fn chat(c: &Counter<'_>, body: &Object<'_>) -> Result<u64, ShapeError> {
    let messages = array(body, "messages")?;
    let mut n = REPLY_PRIMING;
    n += messages.iter().map(|m| message(c, m)).sum::<u64>();
    n += tools(c, body.get("tools"));
    n += tools(c, body.get("functions"));
    // Structured outputs: the schema is shown to the model.
    if let Some(format) = body.get("response_format").and_then(Json::as_object) {
        n += format.get("json_schema").map_or(0, |s| c.value(s));
    }
    Ok(n)
}

/// One chat message: framing plus every field's text, as the cookbook counts it (fields it does
/// not know, such as `tool_call_id`, are counted as text too, which can only err upwards).
fn message(c: &Counter<'_>, m: &Json<'_>) -> u64 {
    let Some(m) = m.as_object() else {
        return TOKENS_PER_MESSAGE + c.value(m);
    };
    let mut n = TOKENS_PER_MESSAGE;
    for (key, v) in m.iter() {
        n += match key {
            "content" => content(c, v),
            "name" => c.value(v) + TOKENS_PER_NAME,
            "tool_calls" => v.as_array().map_or_else(
                || c.value(v),
                |calls| calls.iter().map(|t| tool_call(c, t)).sum(),
            ),
            "function_call" => tool_call(c, v),
            // A reference to an earlier audio answer, whose tokens cannot be seen here.
            "audio" => 0,
            _ => c.value(v),
        };
    }
    n
}

/// `{id, type: function, function: {name, arguments}}` (or the legacy `function_call`
/// `{name, arguments}`).
fn tool_call(c: &Counter<'_>, call: &Json<'_>) -> u64 {
    let f = call.get("function").unwrap_or(call);
    match f.as_object() {
        Some(f) if f.contains_key("name") => {
            TOKENS_PER_TOOL_CALL + c.field(f, "name") + f.get("arguments").map_or(0, |a| c.value(a))
        }
        _ => TOKENS_PER_TOOL_CALL + c.value(call),
    }
}

/// Tool definitions: chat's `{type: function, function: {...}}`, the Responses API's flat
/// `{type: function, name, ...}`, and built-in tools (`{type: web_search}`), all by their JSON.
fn tools(c: &Counter<'_>, tools: Option<&Json<'_>>) -> u64 {
    let Some(tools) = tools.and_then(Json::as_array).filter(|t| !t.is_empty()) else {
        return 0;
    };
    let defs: u64 = tools
        .iter()
        .map(|t| TOKENS_PER_TOOL + c.value(t.get("function").unwrap_or(t)))
        .sum();
    defs + TOOLS_END
}

/// Message content: a string, or an array of parts.
fn content(c: &Counter<'_>, v: &Json<'_>) -> u64 {
    match v {
        Json::Array(parts) => parts.iter().map(|p| part(c, p)).sum(),
        other => c.value(other),
    }
}

/// One content part, in either API's naming.
fn part(c: &Counter<'_>, p: &Json<'_>) -> u64 {
    let Some(obj) = p.as_object() else {
        return c.value(p);
    };
    match obj.get("type").and_then(Json::as_str).unwrap_or("") {
        "text" | "input_text" | "output_text" | "summary_text" | "reasoning_text" => {
            c.field(obj, "text")
        }
        "refusal" => c.field(obj, "refusal"),
        // Chat: `{image_url: {url, detail}}` (or a bare URL string).
        "image_url" => image(c, obj.get("image_url").and_then(|i| i.get("detail"))),
        // Responses: `{image_url | file_id, detail}`.
        "input_image" | "computer_screenshot" => image(c, obj.get("detail")),
        "input_audio" => {
            let audio = obj.get("input_audio").unwrap_or(p);
            let data = audio.get("data").and_then(Json::as_str).unwrap_or("");
            let format = audio.get("format").and_then(Json::as_str);
            media::audio_tokens(data, format)
        }
        // Chat: `{file: {file_data | file_id, filename}}`; Responses: `{file_data | file_id |
        // file_url, filename}`.
        "file" => file(c, obj.get("file").and_then(Json::as_object).unwrap_or(obj)),
        "input_file" => file(c, obj),
        _ => c.value(p),
    }
}

fn image(c: &Counter<'_>, detail: Option<&Json<'_>>) -> u64 {
    match detail.and_then(Json::as_str) {
        Some("low") => c.image().low,
        _ => c.image().high,
    }
}

fn file(c: &Counter<'_>, f: &Object<'_>) -> u64 {
    let name = c.field(f, "filename");
    match f.get("file_data").and_then(Json::as_str) {
        Some(data) => name + media::document_tokens(data, |t| c.text(t)),
        None => name + media::REFERENCED_DOCUMENT_TOKENS,
    }
}

/// `POST /completions`: the prompt exactly as tokenised, with no framing. The prompt may be a
/// string, an array of strings (a batch), an array of token ids, or an array of such arrays;
/// when absent OpenAI uses `<|endoftext|>`, one token.
pub(super) fn completions(c: &Counter<'_>, body: &Object<'_>) -> Result<u64, ShapeError> {
    let prompt = match body.get("prompt") {
        None | Some(Json::Null) => 1,
        Some(p) => text_or_tokens(c, p),
    };
    Ok(prompt + body.get("suffix").map_or(0, |s| c.value(s)))
}

/// `POST /embeddings`: the input exactly as tokenised (same forms as a completions prompt).
pub(super) fn embeddings(c: &Counter<'_>, body: &Object<'_>) -> Result<u64, ShapeError> {
    match body.get("input") {
        None | Some(Json::Null) => Err(ShapeError::Missing("input")),
        Some(input) => Ok(text_or_tokens(c, input)),
    }
}

/// A string, a token id, or an array of either (nested once for batches of token arrays).
fn text_or_tokens(c: &Counter<'_>, v: &Json<'_>) -> u64 {
    match v {
        Json::String(s) => c.text(s),
        Json::Number(_) => 1,
        Json::Array(items) => items.iter().map(|i| text_or_tokens(c, i)).sum(),
        other => c.value(other),
    }
}

/// `POST /responses`: `instructions` as a system message, then `input` (a string, one user
/// message, or an array of items), tools, and the output schema.
pub(super) fn responses(c: &Counter<'_>, body: &Object<'_>) -> Result<u64, ShapeError> {
    let mut n = REPLY_PRIMING;
    if let Some(instructions) = body.get("instructions").filter(|v| !v.is_null()) {
        n += TOKENS_PER_MESSAGE + c.text("system") + content(c, instructions);
    }
    n += match body.get("input") {
        // Input may also come only from a stored prompt or conversation, invisible here.
        None | Some(Json::Null) => 0,
        Some(Json::String(s)) => TOKENS_PER_MESSAGE + c.text("user") + c.text(s),
        Some(Json::Array(items)) => items.iter().map(|i| item(c, i)).sum(),
        Some(_) => {
            return Err(ShapeError::Type {
                field: "input",
                expected: "a string or an array",
            })
        }
    };
    n += tools(c, body.get("tools"));
    let schema = body
        .get("text")
        .and_then(|t| t.get("format"))
        .filter(|f| f.get("type").and_then(Json::as_str) == Some("json_schema"));
    n += schema.map_or(0, |s| c.value(s));
    Ok(n)
}

/// One Responses input item.
fn item(c: &Counter<'_>, it: &Json<'_>) -> u64 {
    let Some(obj) = it.as_object() else {
        return TOKENS_PER_MESSAGE + c.value(it);
    };
    let kind = obj.get("type").and_then(Json::as_str);
    match kind {
        None | Some("message") => {
            TOKENS_PER_MESSAGE
                + c.field(obj, "role")
                + obj.get("content").map_or(0, |v| content(c, v))
        }
        Some("function_call") => tool_call(c, it),
        Some("custom_tool_call") => {
            TOKENS_PER_TOOL_CALL + c.field(obj, "name") + obj.get("input").map_or(0, |v| c.value(v))
        }
        Some("function_call_output" | "custom_tool_call_output" | "computer_call_output") => {
            TOKENS_PER_MESSAGE + obj.get("output").map_or(0, |v| content(c, v))
        }
        Some("reasoning") => reasoning(c, obj),
        // A stored item, invisible here.
        Some("item_reference") => 0,
        Some(_) => TOKENS_PER_MESSAGE + c.value(it),
    }
}

/// A reasoning item passed back: its summary and any visible text, plus its encrypted content
/// at about one token per four bytes of ciphertext (the reasoning text it stands for).
fn reasoning(c: &Counter<'_>, obj: &Object<'_>) -> u64 {
    let texts: u64 = ["summary", "content"]
        .iter()
        .filter_map(|k| obj.get(k))
        .map(|v| content(c, v))
        .sum();
    let encrypted = obj
        .get("encrypted_content")
        .and_then(Json::as_str)
        .map_or(0, |e| (e.len() as u64 * 3 / 4).div_ceil(4));
    TOKENS_PER_MESSAGE + texts + encrypted
}
