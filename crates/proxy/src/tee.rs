//! Copies a streaming request body to mirrors without buffering it: each data frame is cloned
//! (a reference count) into a bounded channel. A mirror that falls behind is cut off; the main
//! request never waits for a mirror.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::mpsc;

use crate::body::{Body, BoxError};

pub struct Tee {
    inner: Body,
    taps: Vec<mpsc::Sender<Bytes>>,
}

/// The mirror's side of a [`Tee`].
pub struct Tap {
    rx: mpsc::Receiver<Bytes>,
}

const TAP_FRAMES: usize = 64;

impl Tee {
    pub fn new(inner: Body) -> Self {
        Tee {
            inner,
            taps: Vec::new(),
        }
    }

    pub fn tap(&mut self) -> Tap {
        let (tx, rx) = mpsc::channel(TAP_FRAMES);
        self.taps.push(tx);
        Tap { rx }
    }
}

impl HttpBody for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.taps.retain(|t| t.try_send(data.clone()).is_ok());
                }
            }
            Poll::Ready(_) => this.taps.clear(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl HttpBody for Tap {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}
