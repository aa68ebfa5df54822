//! The response side of the pipelines: processors that act on answers run in the order they
//! are declared (Gateway PreRouting, Gateway PostRouting, then the route's). A whole answer is
//! buffered (up to the limit) only when one of them reads the body; a streamed one (SSE) gets
//! its output guardrails as stream layers, and header-only processing otherwise.

use std::sync::Arc;
use std::time::Instant;

use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::Response;
use sluice_config::ir::{Pipeline, Processor, ProcessorKind};
use sluice_llm::{Dialect, Operation};

use super::body::BodyBuf;
use super::stream_guard::GuardedStream;
use super::{guardrail, in_process, webhook, within, Failure, Rejection, Verdict};
use crate::body::{self, Body, Buffered};
use crate::proxy::{Proxy, Runtime};

/// What the response side needs from the request, captured before it was sent.
pub struct ResponseWork {
    pub pipelines: Vec<Arc<Pipeline>>,
    /// `{method, path, headers}` for response expressions (`null` when no expression reads it).
    pub request: serde_json::Value,
    pub op: Option<Operation>,
    pub dialect: Option<Dialect>,
    pub rt: Arc<Runtime>,
    /// ext_proc streams opened on the request side, continued here.
    pub sessions: std::sync::Mutex<super::OpenSessions>,
}

impl ResponseWork {
    fn processors(&self) -> impl Iterator<Item = &Processor> {
        self.pipelines
            .iter()
            .flat_map(|p| p.processors.iter())
            .filter(|p| p.kind.acts_on_response())
    }

    fn limit(&self) -> usize {
        self.pipelines
            .iter()
            .map(|p| p.max_body_bytes)
            .min()
            .unwrap_or(sluice_config::ir::DEFAULT_MAX_BODY_BYTES)
    }
}

fn reads_body(p: &Processor) -> bool {
    match &p.kind {
        ProcessorKind::InProcess(ip) => ip.response.as_ref().is_some_and(|m| m.reads_body()),
        ProcessorKind::Guardrail(_) | ProcessorKind::Webhook(_) => true,
        ProcessorKind::ExtProcess(e) => e.mode.response_body != sluice_config::ir::BodyMode::None,
    }
}

fn is_stream(resp: &Response<Body>) -> bool {
    resp.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

impl Proxy {
    /// Runs the response side; a rejection replaces the answer.
    pub(crate) async fn process_response(
        &self,
        work: &ResponseWork,
        resp: Response<Body>,
    ) -> Result<Response<Body>, Rejection> {
        if is_stream(&resp) {
            return self.process_stream(work, resp).await;
        }
        let (mut parts, incoming) = resp.into_parts();
        let needs_body = work.processors().any(reads_body);
        let (mut buf, mut spilled) = if needs_body {
            match body::collect_or_spill(incoming, work.limit()).await {
                Ok(Buffered::Whole(bytes)) => (Some(BodyBuf::new(bytes)), None),
                Ok(Buffered::Spilled(rest)) => (None, Some(rest)),
                Err(_) => {
                    return Err(Rejection::new(
                        http::StatusCode::BAD_GATEWAY,
                        "upstream_error",
                        "the answer could not be read",
                    ))
                }
            }
        } else {
            (None, Some(incoming))
        };
        for p in work.processors() {
            let started = Instant::now();
            let run = self.process_whole_answer(
                p,
                work,
                &mut parts,
                buf.as_mut(),
                needs_body && spilled.is_some(),
            );
            let result = within(p.timeout, run).await;
            self.settle_outcome(p, "response", result, started)?;
        }
        let body = match (buf.as_mut(), spilled.take()) {
            (Some(b), _) => {
                if b.changed() {
                    parts.headers.remove(CONTENT_LENGTH);
                    let bytes = b.bytes();
                    parts
                        .headers
                        .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                    body::full(bytes)
                } else {
                    body::full(b.bytes())
                }
            }
            (None, Some(rest)) => rest,
            (None, None) => body::empty(),
        };
        Ok(Response::from_parts(parts, body))
    }

    async fn process_whole_answer(
        &self,
        p: &Processor,
        work: &ResponseWork,
        parts: &mut http::response::Parts,
        buf: Option<&mut BodyBuf>,
        too_large: bool,
    ) -> Result<Verdict, Failure> {
        if too_large && reads_body(p) {
            return Err(Failure::TooLarge(work.limit()));
        }
        match &p.kind {
            ProcessorKind::InProcess(ip) => match &ip.response {
                Some(m) => {
                    in_process::on_response(m, &work.request, parts.status, &mut parts.headers, buf)
                        .map(|()| Verdict::Continue)
                }
                None => Ok(Verdict::Continue),
            },
            ProcessorKind::Guardrail(g) => match buf {
                Some(buf) => guardrail::on_response(self, p, g, work.op, buf).await,
                None => Ok(Verdict::Continue),
            },
            ProcessorKind::Webhook(w) => {
                let (Some(buf), Some(upstream)) = (buf, work.rt.upstreams.get(w.cluster.id)) else {
                    return Ok(Verdict::Continue);
                };
                webhook::on_response(self, &p.name, w, upstream, work.op, buf).await
            }
            ProcessorKind::ExtProcess(e) => {
                self.ext_proc
                    .on_response(e, &p.name, &work.sessions, parts, buf)
                    .await
            }
        }
    }

    async fn process_stream(
        &self,
        work: &ResponseWork,
        resp: Response<Body>,
    ) -> Result<Response<Body>, Rejection> {
        let (mut parts, mut body) = resp.into_parts();
        for p in work.processors() {
            let started = Instant::now();
            let result = match &p.kind {
                ProcessorKind::InProcess(ip) => match &ip.response {
                    Some(m) => in_process::on_response(
                        m,
                        &work.request,
                        parts.status,
                        &mut parts.headers,
                        None,
                    )
                    .map(|()| Verdict::Continue),
                    None => Ok(Verdict::Continue),
                },
                ProcessorKind::Guardrail(g) => match (work.op, work.dialect) {
                    (Some(op), Some(dialect)) => {
                        body = crate::body::boxed(GuardedStream::new(
                            body,
                            op,
                            dialect,
                            g.clone(),
                            p.name.clone(),
                            self.metrics.clone(),
                            work.limit(),
                        ));
                        Ok(Verdict::Continue)
                    }
                    _ => Err(Failure::Error(
                        "a streamed answer of a non-inference API cannot be checked".into(),
                    )),
                },
                ProcessorKind::Webhook(w) => {
                    let (result, replay) = self.judge_whole_stream(p, w, work, body).await?;
                    body = replay;
                    result
                }
                ProcessorKind::ExtProcess(e) => {
                    let run =
                        self.ext_proc
                            .on_response(e, &p.name, &work.sessions, &mut parts, None);
                    within(p.timeout, run).await
                }
            };
            self.settle_outcome(p, "response", result, started)?;
        }
        Ok(Response::from_parts(parts, body))
    }

    /// A moderation service judges whole texts, so a streamed answer is held whole (as a
    /// Guardrail's Buffer mode holds it: nothing reaches the client before the verdict), its
    /// text is judged, and the events are then replayed as they came. Returns the verdict and the
    /// body to send on; only a stream that breaks while it is read is an answer of its own.
    async fn judge_whole_stream(
        &self,
        p: &Processor,
        w: &sluice_config::ir::Webhook,
        work: &ResponseWork,
        stream: Body,
    ) -> Result<(Result<Verdict, Failure>, Body), Rejection> {
        let bytes = match body::collect_or_spill(stream, work.limit()).await {
            Ok(Buffered::Whole(bytes)) => bytes,
            // Too long to hold: the check cannot run, and the failure mode decides.
            Ok(Buffered::Spilled(rest)) => return Ok((Err(Failure::TooLarge(work.limit())), rest)),
            Err(_) => {
                return Err(Rejection::new(
                    http::StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    "the answer could not be read",
                ))
            }
        };
        let judged = async {
            let op = work.op.ok_or_else(|| {
                Failure::Error("a streamed answer of a non-inference API cannot be checked".into())
            })?;
            let upstream = work.rt.upstreams.get(w.cluster.id).ok_or_else(|| {
                Failure::Unavailable("no upstream for the moderation service".into())
            })?;
            let text = stream_text(op, &bytes)?;
            webhook::on_stream_text(self, &p.name, w, upstream, text).await
        };
        Ok((within(p.timeout, judged).await, body::full(bytes)))
    }
}

/// The text a whole stream carries: its events' text deltas (message text and tool-call
/// arguments), in order, as one text.
fn stream_text(op: Operation, bytes: &[u8]) -> Result<String, Failure> {
    let mut parser = sluice_llm::sse::Parser::new();
    parser.push(bytes);
    let mut text = String::new();
    while let Some(ev) = parser
        .next_event()
        .map_err(|e| Failure::Error(format!("the streamed answer is not valid SSE: {e}")))?
    {
        if let Some(delta) = sluice_llm::delta::stream_delta_text(op, ev.event.as_deref(), &ev.data)
        {
            text.push_str(&delta);
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_s_text_is_its_deltas_in_order() {
        let chat = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo ZORB\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"LAX\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let text = stream_text(Operation::ChatCompletions, chat.as_bytes()).expect("valid SSE");
        assert_eq!(text, "Hello ZORBLAX");

        let messages = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"split \"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"word\"}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let text = stream_text(Operation::Messages, messages.as_bytes()).expect("valid SSE");
        assert_eq!(text, "split word");
    }
}
