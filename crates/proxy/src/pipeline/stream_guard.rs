//! Output guardrails on streamed answers. The answer's SSE events (already in the client's
//! dialect) are parsed as they pass; each event's text delta feeds the guard's [`Window`], which
//! holds events back only while text after them is needed to decide (Window mode), holds all of
//! them until the end (Buffer mode), or holds none (Monitor mode). Events without text (role,
//! usage, stop) wait only behind held text, so an answer's first bytes are not delayed.
//!
//! A block ends the stream with a terminal error event in the client's dialect and no `[DONE]`;
//! what was held is never sent. Redaction rewrites the held events' deltas before release.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame};
use serde_json::Value;
use sluice_config::ir::{GuardAction, Guardrail, StreamMode};
use sluice_llm::sse;
use sluice_llm::{Dialect, Operation};
use sluice_policy::guard::{Window, WindowAction};

use super::FindingLabels;
use crate::body::{Body, BoxError};
use crate::metrics::{Label, Metrics};

/// One event held by the window, as received, with the text delta it carried (if any).
struct Held {
    event: Option<String>,
    data: String,
    original_text: String,
}

pub struct GuardedStream {
    inner: Body,
    parser: sse::Parser,
    window: Window<Held>,
    op: Operation,
    dialect: Dialect,
    guard: Arc<Guardrail>,
    processor: Arc<str>,
    metrics: Arc<Metrics>,
    out: VecDeque<Bytes>,
    /// The inner stream is done (ended, failed, or the guard blocked it).
    ended: bool,
    /// Buffer mode: a block releases nothing at all, not even the text before the match.
    all_or_nothing: bool,
}

impl GuardedStream {
    pub fn new(
        inner: Body,
        op: Operation,
        dialect: Dialect,
        guard: Arc<Guardrail>,
        processor: Arc<str>,
        metrics: Arc<Metrics>,
        max_hold_bytes: usize,
    ) -> GuardedStream {
        let action = match guard.action {
            GuardAction::Block => WindowAction::Block,
            GuardAction::Redact => WindowAction::Redact,
            GuardAction::Monitor => WindowAction::Monitor,
        };
        let (action, hold_back) = match guard.stream {
            StreamMode::Window { hold_back } => (action, hold_back),
            // The whole answer is the window.
            StreamMode::Buffer => (action, max_hold_bytes),
            StreamMode::Monitor => (WindowAction::Monitor, guard.guard.max_match_len()),
        };
        let all_or_nothing = guard.stream == StreamMode::Buffer;
        GuardedStream {
            inner,
            parser: sse::Parser::new(),
            window: Window::new(guard.guard.clone(), action, hold_back),
            op,
            dialect,
            guard,
            processor,
            metrics,
            out: VecDeque::new(),
            ended: false,
            all_or_nothing,
        }
    }

    fn on_event(&mut self, ev: sse::Event) {
        // The text is read without building the event (see `sluice_llm::delta`); an event is
        // parsed whole again only if redaction rewrites its text.
        let text = if ev.data == "[DONE]" {
            String::new()
        } else {
            sluice_llm::delta::stream_delta_text(self.op, ev.event.as_deref(), &ev.data)
                .map(Cow::into_owned)
                .unwrap_or_default()
        };
        let step = self.window.push(
            Held {
                event: ev.event,
                data: ev.data,
                original_text: text.clone(),
            },
            &text,
        );
        self.apply(step);
    }

    fn apply(&mut self, step: sluice_policy::guard::Step<Held>) {
        let release = if step.blocked && self.all_or_nothing {
            Vec::new()
        } else {
            step.release
        };
        for (held, text) in release {
            self.out.push_back(self.render(held, text));
        }
        if !step.findings.is_empty() {
            let action = if step.blocked {
                "block"
            } else {
                match self.guard.action {
                    GuardAction::Redact => "redact",
                    _ => "monitor",
                }
            };
            for f in &step.findings {
                self.metrics
                    .processors
                    .findings
                    .get_or_create(&FindingLabels {
                        processor: Label(self.processor.clone()),
                        detector: f.detector.label(),
                        action,
                    })
                    .inc();
            }
            tracing::info!(processor = %self.processor, findings = step.findings.len(), action, "output guardrail finding in a stream");
        }
        if step.blocked {
            self.block();
        }
    }

    fn render(&self, held: Held, text: String) -> Bytes {
        if text != held.original_text {
            if let Ok(mut v) = serde_json::from_str::<Value>(&held.data) {
                if let Some(delta) =
                    sluice_llm::texts::stream_delta_mut(self.op, held.event.as_deref(), &mut v)
                {
                    *delta = text;
                    return sse::encode(held.event.as_deref(), &v.to_string());
                }
            }
        }
        sse::encode(held.event.as_deref(), &held.data)
    }

    /// Ends the answer with a terminal error event in the client's dialect (no `[DONE]`).
    fn block(&mut self) {
        let status = self.guard.block.status.as_u16();
        let data = sluice_llm::errors::body(
            self.dialect,
            status,
            "content_blocked",
            &self.guard.block.message,
        );
        let text = String::from_utf8_lossy(&data);
        let mut out = BytesMut::new();
        match self.dialect {
            Dialect::OpenAI => sse::encode_into(&mut out, None, &text),
            Dialect::Anthropic => sse::encode_into(&mut out, Some("error"), &text),
        }
        self.out.push_back(out.freeze());
        self.ended = true;
    }

    fn end(&mut self) {
        if self.ended {
            return;
        }
        let step = self.window.finish();
        self.apply(step);
        self.ended = true;
    }
}

impl HttpBody for GuardedStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(b) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        this.parser.push(data);
                        loop {
                            match this.parser.next_event() {
                                Ok(Some(ev)) => {
                                    this.on_event(ev);
                                    if this.ended {
                                        break;
                                    }
                                }
                                Ok(None) => break,
                                Err(_) => {
                                    // An event too large to hold: nothing of it is released.
                                    this.block();
                                    break;
                                }
                            }
                        }
                    }
                }
                // The answer failed upstream: release what is clean, then end (the inner
                // stream already wrote its own terminal error event, which was an event).
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!(error = %e, "guarded stream failed");
                    this.end();
                }
                Poll::Ready(None) => this.end(),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.out.is_empty()
    }
}
