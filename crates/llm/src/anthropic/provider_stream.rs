//! Anthropic Messages SSE events → hub chunks (Anthropic as the provider).

use serde_json::{json, Value};

use super::provider_response::{anthropic_usage, stream_error_text};
use super::{finish_reason, response_error, str_at};
use crate::{hub, TranslateError, Usage};

/// Translates one Anthropic message stream, event by event, into hub chunks.
///
/// Feed every SSE event to [`on_event`](Self::on_event) in order; after `message_stop` the stream
/// has emitted its usage chunk and [`done`](Self::done) is true. [`usage`](Self::usage) is the
/// usage seen so far, so a stream cut short still reports what it consumed.
#[derive(Debug)]
pub struct AnthropicToHubStream {
    id: String,
    model: String,
    created: u64,
    /// Anthropic's counters as last reported: `[input, cache_read, cache_creation, output]`.
    counters: [u64; 4],
    /// Anthropic content block index → hub tool call index, for `tool_use` blocks. Hub tool call
    /// indexes count tool calls only, while Anthropic's count every block (text, thinking…).
    tool_blocks: Vec<(u64, usize)>,
    finished: bool,
    done: bool,
}

/// The usage counters in `counters` order, by their Anthropic names.
const COUNTER_NAMES: [&str; 4] = [
    "input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "output_tokens",
];

impl Default for AnthropicToHubStream {
    fn default() -> Self {
        Self::new()
    }
}

impl AnthropicToHubStream {
    pub fn new() -> Self {
        AnthropicToHubStream {
            id: String::new(),
            model: String::new(),
            created: hub::now_unix(),
            counters: [0; 4],
            tool_blocks: Vec::new(),
            finished: false,
            done: false,
        }
    }

    /// Translates one event (`event` is the SSE event name; when empty, the data's `type` is used)
    /// into zero or more hub chunks. An `error` event is the provider failing mid-stream.
    pub fn on_event(&mut self, event: &str, data: &Value) -> Result<Vec<Value>, TranslateError> {
        let kind = if event.is_empty() {
            str_at(data, "type").unwrap_or("")
        } else {
            event
        };
        let chunks = match kind {
            "message_start" => self.message_start(data),
            "content_block_start" => self.block_start(data),
            "content_block_delta" => self.block_delta(data),
            "message_delta" => self.message_delta(data),
            "message_stop" => self.message_stop(),
            "error" => return Err(response_error(stream_error_text(data))),
            // ping, content_block_stop, and event types added later: nothing to say.
            _ => Vec::new(),
        };
        Ok(chunks)
    }

    /// The usage reported so far.
    pub fn usage(&self) -> Usage {
        let [input, cache_read, cache_creation, output] = self.counters;
        anthropic_usage(input, cache_read, cache_creation, output)
    }

    /// Whether `message_stop` arrived: the stream is complete.
    pub fn done(&self) -> bool {
        self.done
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        hub::chunk(&self.id, self.created, &self.model, delta, finish_reason)
    }

    /// Takes every counter present in a `usage` object. Output tokens are cumulative, so the
    /// latest value replaces the earlier one rather than adding to it.
    fn take_usage(&mut self, usage: Option<&Value>) {
        let Some(usage) = usage else { return };
        for (slot, name) in self.counters.iter_mut().zip(COUNTER_NAMES) {
            if let Some(n) = usage.get(name).and_then(Value::as_u64) {
                *slot = n;
            }
        }
    }

    fn message_start(&mut self, data: &Value) -> Vec<Value> {
        let message = data.get("message").unwrap_or(&Value::Null);
        self.id = str_at(message, "id").unwrap_or("").to_string();
        self.model = str_at(message, "model").unwrap_or("").to_string();
        self.take_usage(message.get("usage"));
        vec![self.chunk(json!({"role": "assistant", "content": ""}), None)]
    }

    fn block_start(&mut self, data: &Value) -> Vec<Value> {
        let block = data.get("content_block").unwrap_or(&Value::Null);
        match str_at(block, "type") {
            Some("tool_use") => {
                let hub_index = self.tool_blocks.len();
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                self.tool_blocks.push((index, hub_index));
                let call = json!({
                    "index": hub_index,
                    "id": str_at(block, "id").unwrap_or(""),
                    "type": "function",
                    "function": {"name": str_at(block, "name").unwrap_or(""), "arguments": ""},
                });
                vec![self.chunk(json!({"tool_calls": [call]}), None)]
            }
            // A text block starts empty in practice; any initial text is content all the same.
            Some("text") => self.content(str_at(block, "text").unwrap_or("")),
            _ => Vec::new(), // thinking, server tool blocks
        }
    }

    fn block_delta(&mut self, data: &Value) -> Vec<Value> {
        let delta = data.get("delta").unwrap_or(&Value::Null);
        match str_at(delta, "type") {
            Some("text_delta") => self.content(str_at(delta, "text").unwrap_or("")),
            Some("input_json_delta") => {
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let partial = str_at(delta, "partial_json").unwrap_or("");
                self.arguments(index, partial)
            }
            _ => Vec::new(), // thinking_delta, signature_delta, citations_delta
        }
    }

    fn content(&self, text: &str) -> Vec<Value> {
        if text.is_empty() {
            return Vec::new();
        }
        vec![self.chunk(json!({"content": text}), None)]
    }

    /// A piece of a tool call's arguments; pieces for blocks that are not tool calls (server
    /// tools) are dropped with their block.
    fn arguments(&self, block_index: u64, partial: &str) -> Vec<Value> {
        let hub_index = self
            .tool_blocks
            .iter()
            .find(|(b, _)| *b == block_index)
            .map(|(_, h)| *h);
        match hub_index {
            Some(h) if !partial.is_empty() => {
                let call = json!({"index": h, "function": {"arguments": partial}});
                vec![self.chunk(json!({"tool_calls": [call]}), None)]
            }
            _ => Vec::new(),
        }
    }

    fn message_delta(&mut self, data: &Value) -> Vec<Value> {
        self.take_usage(data.get("usage"));
        let stop = data.pointer("/delta/stop_reason").and_then(Value::as_str);
        if self.finished {
            return Vec::new();
        }
        self.finished = true;
        vec![self.chunk(json!({}), Some(finish_reason(stop)))]
    }

    /// Ends the stream with the usage chunk; a stream that never said why it stopped gets a
    /// plain `stop` first, since hub clients wait for a finish reason.
    fn message_stop(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        if !self.finished {
            self.finished = true;
            out.push(self.chunk(json!({}), Some("stop")));
        }
        self.done = true;
        out.push(hub::usage_chunk(
            &self.id,
            self.created,
            &self.model,
            &self.usage(),
        ));
        out
    }
}

#[cfg(test)]
#[path = "provider_stream_tests.rs"]
mod tests;
