//! Streamed answers, chunk by chunk: the provider's framing decoded (SSE or AWS event-stream),
//! usage gathered from the provider's own events, events translated to the client's dialect
//! when they differ, and a stream that fails or ends early closed with a terminal error event in
//! the client's dialect — never a clean-looking end.

use bytes::{BufMut, BytesMut};
use serde_json::{json, Map, Value};

use crate::anthropic::{AnthropicToHubStream, HubToAnthropicStream};
use crate::bedrock::eventstream;
use crate::bedrock::ConverseStream;
use crate::gemini::GenerateStream;
use crate::plan::Decoding;
use crate::provider::Wire;
use crate::sse;
use crate::{anthropic, Dialect, Operation, TranslateError, Usage};

enum Framing {
    Sse(sse::Parser),
    EventStream(eventstream::Decoder),
}

/// Where hub chunks come from when translating.
enum Source {
    /// Same dialect, OpenAI schema: events pass through (usage chunk removed if not asked for).
    OpenAIPass,
    /// Same dialect, Anthropic: events pass through.
    AnthropicPass {
        usage: Map<String, Value>,
    },
    /// OpenAI-schema provider, Anthropic client: provider chunks are hub chunks.
    OpenAIHub,
    Anthropic(Box<AnthropicToHubStream>),
    Bedrock(Box<ConverseStream>),
    Gemini(Box<GenerateStream>),
}

enum Sink {
    /// Events written as they came.
    Pass,
    OpenAI,
    Anthropic(Box<HubToAnthropicStream>),
}

pub struct StreamAdapter {
    d: Decoding,
    framing: Framing,
    source: Source,
    sink: Sink,
    usage: Usage,
    model: Option<String>,
    saw_finish: bool,
    done: bool,
    failed: bool,
}

impl StreamAdapter {
    pub fn new(d: &Decoding) -> StreamAdapter {
        let framing = match d.wire {
            Wire::Bedrock => Framing::EventStream(eventstream::Decoder::new()),
            _ => Framing::Sse(sse::Parser::new()),
        };
        let source = match (d.translate, d.wire) {
            (false, Wire::Anthropic) => Source::AnthropicPass { usage: Map::new() },
            (false, _) => Source::OpenAIPass,
            (true, Wire::OpenAI) => Source::OpenAIHub,
            (true, Wire::Anthropic) => Source::Anthropic(Box::default()),
            (true, Wire::Bedrock) => Source::Bedrock(Box::new(ConverseStream::new(&d.model))),
            (true, Wire::Gemini) => Source::Gemini(Box::new(GenerateStream::new(&d.model))),
        };
        let sink = match (d.translate, d.client) {
            (false, _) => Sink::Pass,
            (true, Dialect::OpenAI) => Sink::OpenAI,
            (true, Dialect::Anthropic) => {
                Sink::Anthropic(Box::new(HubToAnthropicStream::new(&d.model)))
            }
        };
        StreamAdapter {
            d: d.clone(),
            framing,
            source,
            sink,
            usage: Usage::default(),
            model: None,
            saw_finish: false,
            done: false,
            failed: false,
        }
    }

    pub fn usage(&self) -> Usage {
        self.usage
    }

    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The stream reached its proper end.
    pub fn completed(&self) -> bool {
        self.done && !self.failed
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Feeds provider bytes; writes what the client should get now into `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut BytesMut) {
        if self.done {
            return; // after the end (or a terminal error) nothing more goes to the client
        }
        match &mut self.framing {
            Framing::Sse(p) => p.push(bytes),
            Framing::EventStream(d) => d.push(bytes),
        }
        loop {
            let step = match &mut self.framing {
                Framing::Sse(p) => match p.next_event() {
                    Ok(Some(ev)) => self.on_sse(ev, out),
                    Ok(None) => return,
                    Err(e) => Err(TranslateError::Response(e.to_string())),
                },
                Framing::EventStream(d) => match d.next_message() {
                    Ok(Some(msg)) => self.on_event_stream(&msg, out),
                    Ok(None) => return,
                    Err(e) => Err(TranslateError::Response(e.to_string())),
                },
            };
            if let Err(e) = step {
                self.fail(&e.to_string(), out);
                return;
            }
            if self.done {
                return;
            }
        }
    }

    /// The provider's body ended. A stream that had not reached its end gets a terminal error.
    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.done {
            return;
        }
        // Gemini has no terminal event: the end of the body after a finish reason is the end.
        if let Source::Gemini(g) = &mut self.source {
            if self.saw_finish {
                let chunks = g.finish();
                self.usage = g.usage();
                for c in chunks {
                    self.sink_chunk(c, out);
                }
                self.complete(out);
                return;
            }
        }
        self.fail(
            "the provider's stream ended before the response was complete",
            out,
        );
    }

    /// Ends the stream with a terminal error event in the client's dialect.
    pub fn fail(&mut self, message: &str, out: &mut BytesMut) {
        if self.done {
            return;
        }
        self.done = true;
        self.failed = true;
        match self.d.client {
            Dialect::OpenAI => {
                let body = json!({"error": {
                    "message": message, "type": "server_error", "param": null,
                    "code": "upstream_stream_error",
                }});
                sse::encode_into(out, None, &body.to_string());
            }
            Dialect::Anthropic => {
                let (name, data) = HubToAnthropicStream::error_event("api_error", message);
                sse::encode_into(out, Some(name), &data.to_string());
            }
        }
    }

    fn on_sse(&mut self, ev: sse::Event, out: &mut BytesMut) -> Result<(), TranslateError> {
        let name = ev.event.as_deref();
        if ev.data == "[DONE]" {
            return match self.source {
                Source::OpenAIPass => {
                    sse::encode_into(out, name, "[DONE]");
                    self.done = true;
                    Ok(())
                }
                Source::OpenAIHub => {
                    self.complete(out);
                    Ok(())
                }
                _ => Ok(()),
            };
        }
        if matches!(self.source, Source::OpenAIPass) {
            return self.openai_pass(name, &ev.data, out);
        }
        let data: Value = serde_json::from_str(&ev.data)
            .map_err(|e| TranslateError::Response(format!("stream event is not JSON: {e}")))?;
        match &mut self.source {
            Source::OpenAIPass => Ok(()), // handled above, without building values
            Source::AnthropicPass { usage } => {
                merge_anthropic_usage(usage, name, &data);
                self.usage = anthropic::usage_from_anthropic(&Value::Object(usage.clone()));
                if self.model.is_none() {
                    self.model = data
                        .pointer("/message/model")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                }
                sse::encode_into(out, name, &ev.data);
                match name {
                    Some("message_stop") => self.done = true,
                    Some("error") => {
                        self.done = true;
                        self.failed = true;
                    }
                    _ => {}
                }
                Ok(())
            }
            Source::OpenAIHub => {
                if let Some(err) = data.get("error") {
                    return Err(TranslateError::Response(error_text(err)));
                }
                if let Some(u) = data.get("usage").filter(|u| !u.is_null()) {
                    self.usage = Usage::from_openai(u);
                }
                self.sink_chunk(data, out);
                Ok(())
            }
            Source::Anthropic(a) => {
                let chunks = a.on_event(name.unwrap_or("message"), &data)?;
                self.usage = a.usage();
                let finished = a.done();
                for c in chunks {
                    self.sink_chunk(c, out);
                }
                if finished {
                    self.complete(out);
                }
                Ok(())
            }
            Source::Gemini(g) => {
                let chunks = g.on_event(&data)?;
                self.usage = g.usage();
                for c in chunks {
                    self.sink_chunk(c, out);
                }
                Ok(())
            }
            Source::Bedrock(_) => Err(TranslateError::Response(
                "unexpected SSE from Bedrock".into(),
            )),
        }
    }

    fn on_event_stream(
        &mut self,
        msg: &eventstream::Message,
        out: &mut BytesMut,
    ) -> Result<(), TranslateError> {
        let Source::Bedrock(b) = &mut self.source else {
            return Err(TranslateError::Response(
                "unexpected event-stream framing".into(),
            ));
        };
        let chunks = b.on_message(msg)?;
        self.usage = b.usage();
        let finished = b.done();
        for c in chunks {
            self.sink_chunk(c, out);
        }
        if finished {
            self.complete(out);
        }
        Ok(())
    }

    /// An OpenAI-schema event passing through to an OpenAI-schema client.
    fn openai_pass(
        &mut self,
        name: Option<&str>,
        raw: &str,
        out: &mut BytesMut,
    ) -> Result<(), TranslateError> {
        // Most chunks are content deltas the gateway only forwards: build values only for the
        // first chunk (model), and for chunks that can carry usage or an error.
        let interesting = self.model.is_none()
            || raw.contains("\"usage\"")
            || raw.contains("\"error\"")
            || self.d.op == Operation::Responses;
        if !interesting {
            sse::encode_into(out, name, raw);
            return Ok(());
        }
        let data: Value = serde_json::from_str(raw)
            .map_err(|e| TranslateError::Response(format!("stream event is not JSON: {e}")))?;
        if self.model.is_none() {
            self.model = data
                .get("model")
                .or_else(|| data.pointer("/response/model"))
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        if data.get("error").is_some_and(|e| !e.is_null()) {
            sse::encode_into(out, name, raw);
            self.done = true;
            self.failed = true;
            return Ok(());
        }
        if self.d.op == Operation::Responses {
            let kind = data.get("type").and_then(Value::as_str).unwrap_or("");
            if let Some(u) = data.pointer("/response/usage").filter(|u| !u.is_null()) {
                self.usage = Usage::from_openai(u);
            }
            sse::encode_into(out, name, raw);
            match kind {
                "response.completed" | "response.incomplete" => self.done = true,
                "response.failed" | "error" => {
                    self.done = true;
                    self.failed = true;
                }
                _ => {}
            }
            return Ok(());
        }
        let usage = data.get("usage").filter(|u| !u.is_null());
        if let Some(u) = usage {
            self.usage = Usage::from_openai(u);
        }
        let usage_only = usage.is_some()
            && data
                .get("choices")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty);
        if !usage_only || self.d.client_wants_usage {
            sse::encode_into(out, name, raw);
        }
        Ok(())
    }

    fn sink_chunk(&mut self, chunk: Value, out: &mut BytesMut) {
        if self.model.is_none() {
            self.model = chunk
                .get("model")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        if chunk
            .pointer("/choices/0/finish_reason")
            .is_some_and(|f| !f.is_null())
        {
            self.saw_finish = true;
        }
        match &mut self.sink {
            Sink::Pass => {}
            Sink::OpenAI => {
                let usage_only = chunk
                    .get("choices")
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty);
                if !usage_only || self.d.client_wants_usage {
                    sse::encode_into(out, None, &chunk.to_string());
                }
            }
            Sink::Anthropic(a) => {
                for (name, data) in a.on_chunk(&chunk) {
                    sse::encode_into(out, Some(name), &data.to_string());
                }
            }
        }
    }

    /// The translated stream reached its end: close it the way the client's dialect does.
    fn complete(&mut self, out: &mut BytesMut) {
        if self.done {
            return;
        }
        self.done = true;
        match &mut self.sink {
            Sink::Pass => {}
            Sink::OpenAI => out.put_slice(b"data: [DONE]\n\n"),
            Sink::Anthropic(a) => {
                for (name, data) in a.finish(&self.usage) {
                    sse::encode_into(out, Some(name), &data.to_string());
                }
            }
        }
    }
}

/// Anthropic reports usage in `message_start` (input, cache) and `message_delta` (cumulative
/// output, sometimes input again): later values win.
fn merge_anthropic_usage(acc: &mut Map<String, Value>, name: Option<&str>, data: &Value) {
    let usage = match name {
        Some("message_start") => data.pointer("/message/usage"),
        Some("message_delta") => data.get("usage"),
        _ => None,
    };
    if let Some(Value::Object(u)) = usage {
        for (k, v) in u {
            if !v.is_null() {
                acc.insert(k.clone(), v.clone());
            }
        }
    }
}

fn error_text(err: &Value) -> String {
    err.get("message")
        .and_then(Value::as_str)
        .map_or_else(|| err.to_string(), str::to_string)
}
