//! Anthropic request shapes: `POST /v1/messages` and `POST /v1/messages/count_tokens` (the same
//! body without `max_tokens`).

use super::count::{Counter, ShapeError};
use super::media;
use crate::json::{Json, Object};

// Framing. Anthropic does not publish its prompt format; `ctok`'s reconstruction of
// `count_tokens` finds 6–11 tokens around a single user message depending on the model
// generation. Count 7 for the request and 4 for each message (11 for one message), which
// the 2× approximation of the text then dwarfs anyway.
const REQUEST_FRAME: u64 = 7;
const TOKENS_PER_MESSAGE: u64 = 4;

/// Anthropic's "tool use pricing and tokens" documentation lists the system prompt that enabling
/// tools adds, by model and `tool_choice`: from 159 to 530 tokens (Claude 3 Opus, `auto`).
/// Count the largest.
const TOOL_USE_SYSTEM_PROMPT: u64 = 530;
const TOKENS_PER_TOOL: u64 = 10;

/// Anthropic-defined tools (`{type: "bash_20250124"}`, `text_editor_…`, `computer_…`,
/// `web_search_…`) bring their own definitions, which are not in the request: the tool
/// documentation lists 245 tokens for bash, 700 for the text editor, and 735 plus a
/// 466–499-token system prompt for computer use. Count the largest of these for each.
const SERVER_TOOL_TOKENS: u64 = 1_300;

/// A tool call (`tool_use`): its name and input plus framing (not published, so generous).
const TOKENS_PER_TOOL_USE: u64 = 8;

pub(super) fn messages(c: &Counter<'_>, body: &Object<'_>) -> Result<u64, ShapeError> {
    let messages = match body.get("messages") {
        None => return Err(ShapeError::Missing("messages")),
        Some(Json::Array(m)) => m,
        Some(_) => {
            return Err(ShapeError::Type {
                field: "messages",
                expected: "an array",
            })
        }
    };
    let mut n = REQUEST_FRAME;
    if let Some(system) = body.get("system").filter(|s| !s.is_null()) {
        n += TOKENS_PER_MESSAGE + content(c, system);
    }
    for m in messages {
        n += TOKENS_PER_MESSAGE;
        n += match m.as_object() {
            Some(m) => c.field(m, "role") + m.get("content").map_or(0, |v| content(c, v)),
            None => c.value(m),
        };
    }
    n += tools(c, body.get("tools"));
    Ok(n)
}

fn tools(c: &Counter<'_>, tools: Option<&Json<'_>>) -> u64 {
    let Some(tools) = tools.and_then(Json::as_array).filter(|t| !t.is_empty()) else {
        return 0;
    };
    let defs: u64 = tools
        .iter()
        .map(|t| {
            let kind = t.get("type").and_then(Json::as_str);
            let server = matches!(kind, Some(k) if k != "custom");
            TOKENS_PER_TOOL + c.value(t) + if server { SERVER_TOOL_TOKENS } else { 0 }
        })
        .sum();
    TOOL_USE_SYSTEM_PROMPT + defs
}

/// `content` (or `system`, or a tool result's content): a string or an array of blocks.
fn content(c: &Counter<'_>, v: &Json<'_>) -> u64 {
    match v {
        Json::Array(blocks) => blocks.iter().map(|b| block(c, b)).sum(),
        other => c.value(other),
    }
}

fn block(c: &Counter<'_>, b: &Json<'_>) -> u64 {
    let Some(obj) = b.as_object() else {
        return c.value(b);
    };
    match obj.get("type").and_then(Json::as_str).unwrap_or("") {
        "text" => c.field(obj, "text"),
        "image" => c.image().high,
        "document" => document(c, obj),
        "tool_use" | "server_tool_use" => {
            TOKENS_PER_TOOL_USE + c.field(obj, "name") + obj.get("input").map_or(0, |i| c.value(i))
        }
        "tool_result" => TOKENS_PER_MESSAGE + obj.get("content").map_or(0, |v| content(c, v)),
        "thinking" => c.field(obj, "thinking"),
        // Encrypted thinking: about one token per four bytes of ciphertext.
        "redacted_thinking" => obj
            .get("data")
            .and_then(Json::as_str)
            .map_or(0, |d| (d.len() as u64 * 3 / 4).div_ceil(4)),
        // Search results, server tool results and anything newer: their JSON.
        _ => c.value(b),
    }
}

/// `{type: document, source: {type: base64 | text | content | url | file, …}, title, context}`.
fn document(c: &Counter<'_>, obj: &Object<'_>) -> u64 {
    let labels = c.field(obj, "title") + c.field(obj, "context");
    let Some(source) = obj.get("source").and_then(Json::as_object) else {
        return labels + media::REFERENCED_DOCUMENT_TOKENS;
    };
    let body = match source.get("type").and_then(Json::as_str) {
        Some("base64") => source
            .get("data")
            .and_then(Json::as_str)
            .map_or(0, |d| media::document_tokens(d, |t| c.text(t))),
        Some("text") => c.field(source, "data"),
        Some("content") => source.get("content").map_or(0, |v| content(c, v)),
        _ => media::REFERENCED_DOCUMENT_TOKENS,
    };
    labels + body
}
