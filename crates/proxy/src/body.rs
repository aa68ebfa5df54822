//! Body types of the data plane. Bodies stream frame by frame; the core never buffers them
//! (retries buffer only small, declared-length bodies, see `handler::replayable`).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The one body type requests and responses travel as.
pub type Body = BoxBody<Bytes, BoxError>;

pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn boxed<B>(body: B) -> Body
where
    B: HttpBody<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}

/// Counts the bytes that pass and calls `on_end` exactly once: when the body ends, fails, or is
/// dropped early (client gone). Used for access logs and metrics of streamed bodies.
pub struct Metered<F: FnOnce(u64, bool) + Send> {
    inner: Body,
    bytes: u64,
    on_end: Option<F>,
}

impl<F: FnOnce(u64, bool) + Send> Metered<F> {
    pub fn new(inner: Body, on_end: F) -> Self {
        Metered {
            inner,
            bytes: 0,
            on_end: Some(on_end),
        }
    }

    fn finish(&mut self, complete: bool) {
        if let Some(f) = self.on_end.take() {
            f(self.bytes, complete);
        }
    }
}

impl<F: FnOnce(u64, bool) + Send + Unpin> HttpBody for Metered<F> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.finish(true);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(false);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish(true);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<F: FnOnce(u64, bool) + Send> Drop for Metered<F> {
    fn drop(&mut self) {
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}

/// Ends a body with an error if it has not finished by `deadline`. GEP-2257 timeouts cover the
/// whole response, not just its headers; once the status is sent the only way to enforce them
/// is to abort the body (HTTP/1.1: the connection closes mid-body; HTTP/2: the stream is reset).
pub struct Deadline {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    pub fn new(inner: Body, deadline: tokio::time::Instant) -> Self {
        Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        // Data that is ready wins over a deadline that passed at the same time.
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match std::future::Future::poll(this.sleep.as_mut(), cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err("response timed out".into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A body that never produces a frame.
    struct Stalled;

    impl HttpBody for Stalled {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn deadline_passes_finished_bodies_and_cuts_stalled_ones() {
        let soon = || tokio::time::Instant::now() + Duration::from_millis(20);
        let done = Deadline::new(full("complete"), soon())
            .collect()
            .await
            .expect("a finished body passes");
        assert_eq!(done.to_bytes(), "complete");
        let cut = Deadline::new(boxed(Stalled), soon()).collect().await;
        assert!(
            cut.is_err(),
            "a stalled body ends with an error at the deadline"
        );
    }
}

/// Why [`collect_limited`] stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum CollectError {
    TooLarge,
    Failed,
}

/// Reads a whole body, refusing more than `limit` bytes. (A plain frame loop: `Limited`'s boxed
/// error conversions trip the compiler's higher-ranked `Send` checks inside handler futures.)
pub async fn collect_limited(mut body: Body, limit: usize) -> Result<Bytes, CollectError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| CollectError::Failed)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(CollectError::TooLarge);
            }
            if buf.is_empty() && body.is_end_stream() {
                return Ok(data);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// A body read up to a limit: whole, or (when it is larger) what was read so far plus the rest
/// still streaming, so a caller that gives up on buffering loses nothing.
pub enum Buffered {
    Whole(Bytes),
    Spilled(Body),
}

/// Reads `body` whole when it fits in `limit` bytes; otherwise hands back an equivalent body
/// (the bytes read so far, then the rest).
pub async fn collect_or_spill(mut body: Body, limit: usize) -> Result<Buffered, CollectError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| CollectError::Failed)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                buf.extend_from_slice(&data);
                let head = futures_util::stream::iter(std::iter::once(Ok::<_, BoxError>(
                    Frame::data(buf.freeze()),
                )));
                let rest = http_body_util::BodyStream::new(body);
                let chained =
                    http_body_util::StreamBody::new(futures_util::StreamExt::chain(head, rest));
                return Ok(Buffered::Spilled(boxed(chained)));
            }
            if buf.is_empty() && body.is_end_stream() {
                return Ok(Buffered::Whole(data));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Buffered::Whole(buf.freeze()))
}
