//! Bodies of AI answers: a provider's stream adapted to the client's dialect as it flows, and
//! the mock's stream paced by its configured interval.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame};
use serde_json::Value;
use sluice_config::ir::Price;
use sluice_llm::stream::StreamAdapter;

use super::tally::{lock, SharedTally};
use crate::body::{Body, BoxError};

/// A provider's streamed answer, translated and accounted chunk by chunk. It always ends
/// cleanly for the client's HTTP layer: failures become a terminal error event in the body.
pub struct AiStream {
    upstream: Body,
    adapter: StreamAdapter,
    tally: SharedTally,
    price: Option<Price>,
    started: Instant,
    upstream_started: Instant,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    out: BytesMut,
    ended: bool,
    first_sent: bool,
}

impl AiStream {
    pub fn new(
        upstream: Body,
        adapter: StreamAdapter,
        tally: SharedTally,
        price: Option<Price>,
        started: Instant,
        upstream_started: Instant,
        deadline: Option<tokio::time::Instant>,
    ) -> AiStream {
        AiStream {
            upstream,
            adapter,
            tally,
            price,
            started,
            upstream_started,
            deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
            out: BytesMut::new(),
            ended: false,
            first_sent: false,
        }
    }

    fn record_end(&mut self) {
        self.ended = true;
        let mut t = lock(&self.tally);
        t.usage = self.adapter.usage();
        if let Some(m) = self.adapter.model() {
            t.response_model = Some(m.to_string());
        }
        t.completed = self.adapter.completed();
        if self.adapter.failed() && t.error.is_none() {
            t.error = Some("stream failed".into());
        }
        t.cost_usd = self.price.map(|p| p.cost(&t.usage));
        t.upstream_time += self.upstream_started.elapsed();
    }

    fn emit(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            return None;
        }
        if !self.first_sent {
            self.first_sent = true;
            lock(&self.tally).time_to_first_token = Some(self.started.elapsed());
        }
        Some(self.out.split().freeze())
    }
}

impl HttpBody for AiStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(this.emit().map(|b| Ok(Frame::data(b))));
            }
            if let Some(d) = &mut this.deadline {
                if d.as_mut().poll(cx).is_ready() {
                    this.adapter.fail("the request timed out", &mut this.out);
                    this.record_end();
                    continue;
                }
            }
            match Pin::new(&mut this.upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        this.adapter.push(data, &mut this.out);
                    }
                    if this.adapter.completed() || this.adapter.failed() {
                        this.record_end();
                        continue;
                    }
                    if let Some(b) = this.emit() {
                        return Poll::Ready(Some(Ok(Frame::data(b))));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!(error = %e, "provider stream failed");
                    this.adapter
                        .fail("the provider's stream was interrupted", &mut this.out);
                    this.record_end();
                }
                Poll::Ready(None) => {
                    this.adapter.finish(&mut this.out);
                    this.record_end();
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for AiStream {
    fn drop(&mut self) {
        // The client went away mid-stream: keep what was counted so far.
        if !self.ended {
            self.record_end();
            let mut t = lock(&self.tally);
            t.completed = false;
            t.error.get_or_insert_with(|| "client disconnected".into());
        }
    }
}

/// The mock's stream: SSE events released one per interval, then `[DONE]` where OpenAI sends it.
pub struct MockStream {
    events: VecDeque<Bytes>,
    interval: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl MockStream {
    pub fn new(
        events: Vec<(Option<&'static str>, Value)>,
        done_marker: bool,
        interval: Duration,
    ) -> MockStream {
        let mut q: VecDeque<Bytes> = events
            .into_iter()
            .map(|(name, v)| sluice_llm::sse::encode(name, &v.to_string()))
            .collect();
        if done_marker {
            q.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
        }
        MockStream {
            events: q,
            interval,
            sleep: None,
        }
    }
}

impl HttpBody for MockStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.events.is_empty() {
            return Poll::Ready(None);
        }
        if !this.interval.is_zero() {
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(this.interval)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        Poll::Ready(this.events.pop_front().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.events.is_empty()
    }
}
