//! Hub chunks → Anthropic Messages SSE events (an Anthropic client served by another provider).

use serde_json::{json, Value};

use super::client_response::{anthropic_usage_json, message_id};
use super::{error_body, stop_reason, str_at};
use crate::Usage;

/// One Anthropic SSE event: the event name and its data (whose `type` repeats the name).
type Event = (&'static str, Value);

/// Translates one hub chunk stream into the Anthropic event stream.
///
/// Anthropic streams content as blocks opened, filled and closed one at a time: text arrives in a
/// `text` block, each tool call in its own `tool_use` block whose arguments are `input_json_delta`
/// pieces. A new kind of content closes the open block and opens the next, indexed in order.
/// Usage comes last, so [`finish`](Self::finish) writes it into the closing `message_delta`.
#[derive(Debug)]
pub struct HubToAnthropicStream {
    model: String,
    started: bool,
    finished: bool,
    /// The block being filled, if any.
    open: Option<Open>,
    /// Index of the next block to open.
    next_block: usize,
    /// Every tool call seen: its hub index, its id, and its Anthropic block index.
    tool_blocks: Vec<ToolBlock>,
    /// The hub finish reason, held until `finish` writes the `message_delta`.
    finish_reason: Option<String>,
}

#[derive(Debug)]
struct ToolBlock {
    hub_index: u64,
    id: String,
    block: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(usize),
    Tool(usize),
}

impl Open {
    fn index(self) -> usize {
        match self {
            Open::Text(i) | Open::Tool(i) => i,
        }
    }
}

impl HubToAnthropicStream {
    /// `model` is the name the client asked for; when empty, the chunks' model is used.
    pub fn new(model: &str) -> Self {
        HubToAnthropicStream {
            model: model.to_string(),
            started: false,
            finished: false,
            open: None,
            next_block: 0,
            tool_blocks: Vec::new(),
            finish_reason: None,
        }
    }

    /// The events for one hub chunk. The first chunk also opens the message; usage-only chunks
    /// (`choices: []`) yield nothing, their numbers arrive through [`finish`](Self::finish).
    pub fn on_chunk(&mut self, chunk: &Value) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        if !self.started {
            out.push(self.message_start(str_at(chunk, "id").unwrap_or(""), str_at(chunk, "model")));
        }
        // The hub has one choice (n > 1 is refused upstream); others would interleave nonsense.
        let Some(choice) = chunk.pointer("/choices/0") else {
            return out;
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if let Some(text) = str_at(delta, "content").filter(|t| !t.is_empty()) {
            self.text(text, &mut out);
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for (position, call) in calls.iter().enumerate() {
                self.tool_call(call, position, &mut out);
            }
        }
        if let Some(reason) = str_at(choice, "finish_reason") {
            self.finish_reason = Some(reason.to_string());
        }
        out
    }

    /// Closes the stream: closes the open block, then `message_delta` (stop reason and the final
    /// usage) and `message_stop`. A stream that produced no chunk still gets a whole message.
    pub fn finish(&mut self, usage: &Usage) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        if !self.started {
            out.push(self.message_start("", None));
        }
        self.close(&mut out);
        let stop = stop_reason(self.finish_reason.as_deref());
        out.push((
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": null},
                "usage": anthropic_usage_json(usage),
            }),
        ));
        out.push(("message_stop", json!({"type": "message_stop"})));
        self.finished = true;
        out
    }

    /// An `error` event, for a failure after the stream began (the status line is already sent).
    pub fn error_event(kind: &str, message: &str) -> (&'static str, Value) {
        ("error", error_body(kind, message))
    }

    fn message_start(&mut self, hub_id: &str, chunk_model: Option<&str>) -> Event {
        self.started = true;
        if self.model.is_empty() {
            self.model = chunk_model.unwrap_or("").to_string();
        }
        // Usage is unknown this early; the final message_delta carries the real numbers.
        let message = json!({
            "id": message_id(hub_id),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        });
        (
            "message_start",
            json!({"type": "message_start", "message": message}),
        )
    }

    /// Text goes to the open text block, or to a new one.
    fn text(&mut self, text: &str, out: &mut Vec<Event>) {
        let index = match self.open {
            Some(Open::Text(i)) => i,
            _ => self.open_block(Open::Text, json!({"type": "text", "text": ""}), out),
        };
        out.push(block_delta(
            index,
            json!({"type": "text_delta", "text": text}),
        ));
    }

    /// A tool call delta. The first delta of a call opens its `tool_use` block; argument pieces
    /// go to that call's block. A call without an index is placed by position.
    fn tool_call(&mut self, call: &Value, position: usize, out: &mut Vec<Event>) {
        let hub_index = call
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        let id = str_at(call, "id").unwrap_or("");
        let block = match self.known_block(hub_index, id) {
            Some(b) => b,
            None => {
                let start = json!({
                    "type": "tool_use",
                    "id": id,
                    "name": call.pointer("/function/name").and_then(Value::as_str).unwrap_or(""),
                    "input": {},
                });
                let block = self.open_block(Open::Tool, start, out);
                let id = id.to_string();
                self.tool_blocks.push(ToolBlock {
                    hub_index,
                    id,
                    block,
                });
                block
            }
        };
        let arguments = call.pointer("/function/arguments").and_then(Value::as_str);
        if let Some(piece) = arguments.filter(|a| !a.is_empty()) {
            // Providers send each call's arguments before the next call starts, so `block` is the
            // open one; were pieces ever interleaved, they still name the right block.
            out.push(block_delta(
                block,
                json!({"type": "input_json_delta", "partial_json": piece}),
            ));
        }
    }

    /// The block of an already started call: the latest one with this index, unless the delta
    /// names a different id. Some OpenAI-compatible servers give every call index 0 and tell
    /// calls apart only by id; a new id is then a new call.
    fn known_block(&self, hub_index: u64, id: &str) -> Option<usize> {
        let latest = self
            .tool_blocks
            .iter()
            .rev()
            .find(|t| t.hub_index == hub_index)?;
        let same_call = id.is_empty() || latest.id.is_empty() || latest.id == id;
        same_call.then_some(latest.block)
    }

    /// Closes the open block and opens a new one of `kind`; returns its index.
    fn open_block(
        &mut self,
        kind: fn(usize) -> Open,
        content_block: Value,
        out: &mut Vec<Event>,
    ) -> usize {
        self.close(out);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some(kind(index));
        out.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": content_block}),
        ));
        index
    }

    fn close(&mut self, out: &mut Vec<Event>) {
        if let Some(open) = self.open.take() {
            out.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": open.index()}),
            ));
        }
    }
}

fn block_delta(index: usize, delta: Value) -> Event {
    (
        "content_block_delta",
        json!({"type": "content_block_delta", "index": index, "delta": delta}),
    )
}

#[cfg(test)]
#[path = "client_stream_tests.rs"]
mod tests;
