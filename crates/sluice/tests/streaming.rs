//! Bodies stream through the gateway: large uploads and downloads pass with bounded gateway
//! memory, and neither a response nor a request is held back waiting for more data.
//!
//! The large transfers are generated and verified on the fly (nothing is buffered in the test
//! either): the body is a sequence of 64 KiB blocks, each an 8-byte big-endian block index
//! followed by a fixed pseudo-random payload. The receiver compares every byte against the
//! expected block (memcmp), which catches any loss, duplication, reordering or corruption — an
//! exact check that is much cheaper than hashing a gigabyte in a debug build.
//!
//! Size: `SLUICE_STREAM_TEST_MIB` (default [`DEFAULT_MIB`]) per direction.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_testkit::upstream::{channel, full, Body};
use sluice_testkit::{BoxError, Upstream};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use common::*;

const BLOCK: usize = 64 * 1024;
/// Per direction, unless `SLUICE_STREAM_TEST_MIB` says otherwise.
const DEFAULT_MIB: u64 = 1024;
/// The gateway's peak RSS (whole lifetime) must stay below this.
const RSS_LIMIT: u64 = 64 * 1024 * 1024;

fn transfer_bytes() -> u64 {
    let mib = std::env::var("SLUICE_STREAM_TEST_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(DEFAULT_MIB);
    mib * 1024 * 1024
}

/// The fixed payload of every block: 64 KiB from a xorshift generator (first 8 bytes are
/// overwritten with the block index).
fn pattern() -> Arc<Vec<u8>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(BLOCK);
    while out.len() < BLOCK {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    Arc::new(out)
}

/// A body producing `total` bytes of blocks, one 64 KiB frame at a time, on demand.
struct Generated {
    pattern: Arc<Vec<u8>>,
    sent: u64,
    total: u64,
}

impl Generated {
    fn new(total: u64) -> Self {
        Generated {
            pattern: pattern(),
            sent: 0,
            total,
        }
    }
}

impl HttpBody for Generated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.sent >= this.total {
            return Poll::Ready(None);
        }
        let block = this.sent / BLOCK as u64;
        let len = usize::try_from((this.total - this.sent).min(BLOCK as u64)).expect("block");
        let mut buf = BytesMut::with_capacity(len);
        buf.extend_from_slice(&block.to_be_bytes());
        buf.extend_from_slice(&this.pattern[8..]);
        buf.truncate(len);
        this.sent += len as u64;
        Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.total
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.total - self.sent)
    }
}

/// Checks received bytes against what [`Generated`] sends.
struct Verifier {
    expected: Vec<u8>,
    block: u64,
    received: u64,
    first_mismatch: Option<u64>,
}

impl Verifier {
    fn new() -> Self {
        let mut expected = pattern().as_ref().clone();
        expected[..8].copy_from_slice(&0u64.to_be_bytes());
        Verifier {
            expected,
            block: 0,
            received: 0,
            first_mismatch: None,
        }
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let block = self.received / BLOCK as u64;
            if block != self.block {
                self.expected[..8].copy_from_slice(&block.to_be_bytes());
                self.block = block;
            }
            let within = usize::try_from(self.received % BLOCK as u64).expect("offset");
            let n = data.len().min(BLOCK - within);
            if self.first_mismatch.is_none() && data[..n] != self.expected[within..within + n] {
                self.first_mismatch = Some(self.received);
            }
            self.received += n as u64;
            data = &data[n..];
        }
    }
}

/// Reads a whole body through a [`Verifier`], frame by frame.
async fn verify_body(mut body: Incoming) -> Result<Verifier, BoxError> {
    let mut v = Verifier::new();
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            v.feed(data);
        }
    }
    Ok(v)
}

async fn http1(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Generated> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    sender
}

fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_upload_streams_with_bounded_memory() {
    let total = transfer_bytes();
    // The upstream verifies the body as it arrives and answers with what it saw.
    let upstream = Upstream::spawn(|req: Request<Incoming>| async move {
        match verify_body(req.into_body()).await {
            Ok(v) => Response::new(full(format!(
                "{} {}",
                v.received,
                v.first_mismatch.map_or("ok".to_owned(), |o| o.to_string())
            ))),
            Err(e) => {
                let mut r = Response::new(full(format!("body error: {e}")));
                *r.status_mut() = StatusCode::BAD_GATEWAY;
                r
            }
        }
    })
    .await
    .expect("upstream");
    let gw = start(
        |port| {
            simple_config(
                port,
                service_ref("sink", SERVICE_PORT),
                service("sink", upstream.addr(), None),
            )
        },
        &[],
    )
    .await;

    let mut sender = http1(gw.addr()).await;
    let req = Request::builder()
        .method(Method::POST)
        .uri("/upload")
        .header("host", "stream.example.test")
        .body(Generated::new(total))
        .expect("request");
    let started = Instant::now();
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status();
    let text = resp.into_body().collect().await.expect("body").to_bytes();
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&text);
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        text,
        format!("{total} ok"),
        "upstream received every byte intact"
    );

    let peak = peak_rss_bytes(gw.pid());
    eprintln!(
        "upload: {} MiB in {elapsed:.2?} = {:.0} MiB/s; gateway peak RSS {:.1} MiB",
        total >> 20,
        mib_per_s(total, elapsed),
        peak as f64 / 1048576.0
    );
    assert!(
        peak < RSS_LIMIT,
        "gateway peak RSS {peak} bytes exceeds {RSS_LIMIT}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_download_streams_with_bounded_memory() {
    let total = transfer_bytes();
    let upstream = Upstream::spawn(move |_req: Request<Incoming>| async move {
        Response::new(
            Generated::new(total)
                .map_err(|never| match never {})
                .boxed(),
        )
    })
    .await
    .expect("upstream");
    let gw = start(
        |port| {
            simple_config(
                port,
                service_ref("source", SERVICE_PORT),
                service("source", upstream.addr(), None),
            )
        },
        &[],
    )
    .await;

    let tcp = TcpStream::connect(gw.addr()).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let req = Request::builder()
        .uri("/download")
        .header("host", "stream.example.test")
        .body(Empty::new())
        .expect("request");
    let started = Instant::now();
    let resp = sender.send_request(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some(total.to_string().as_str()),
        "the exact length is passed on"
    );
    let v = verify_body(resp.into_body()).await.expect("download body");
    let elapsed = started.elapsed();
    assert_eq!(v.received, total, "every byte arrived");
    assert_eq!(v.first_mismatch, None, "content intact");

    let peak = peak_rss_bytes(gw.pid());
    eprintln!(
        "download: {} MiB in {elapsed:.2?} = {:.0} MiB/s; gateway peak RSS {:.1} MiB",
        total >> 20,
        mib_per_s(total, elapsed),
        peak as f64 / 1048576.0
    );
    assert!(
        peak < RSS_LIMIT,
        "gateway peak RSS {peak} bytes exceeds {RSS_LIMIT}"
    );
}

const FIRST: &str = "first chunk, sent before the upstream waits;";
const REST: &str = " the rest, sent after the test releases the upstream";

/// An upstream whose response body sends [`FIRST`], then waits until `release` turns true
/// before sending [`REST`] and ending.
async fn held_response_upstream(release: watch::Receiver<bool>) -> Upstream {
    Upstream::spawn(move |_req: Request<Incoming>| {
        let mut release = release.clone();
        async move {
            let (mut tx, body) = channel(1);
            tokio::spawn(async move {
                tx.send_data(Bytes::from_static(FIRST.as_bytes()))
                    .await
                    .expect("send first chunk");
                release.wait_for(|r| *r).await.expect("release signal");
                tx.send_data(Bytes::from_static(REST.as_bytes()))
                    .await
                    .expect("send the rest");
            });
            Response::new(body)
        }
    })
    .await
    .expect("upstream")
}

/// Reads from `body` until `want` bytes have arrived (or the deadline passes).
async fn read_at_least(body: &mut Incoming, want: usize, deadline: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(deadline, async {
        while got.len() < want {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(d) = frame.data_ref() {
                        got.extend_from_slice(d);
                    }
                }
                Some(Err(e)) => panic!("body error: {e}"),
                None => break,
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "only {} of {want} bytes within {deadline:?}: the gateway holds the body back",
            got.len()
        )
    });
    got
}

#[tokio::test]
async fn response_chunks_are_forwarded_before_the_body_ends() {
    for h2 in [false, true] {
        let (release_tx, release_rx) = watch::channel(false);
        let upstream = held_response_upstream(release_rx).await;
        let gw = start(
            |port| {
                simple_config(
                    port,
                    service_ref("held", SERVICE_PORT),
                    service("held", upstream.addr(), None),
                )
            },
            &[],
        )
        .await;
        let tcp = TcpStream::connect(gw.addr()).await.expect("connect");
        let req = |uri: &str| {
            Request::builder()
                .uri(uri)
                .header("host", "held.example.test")
                .body(Empty::<Bytes>::new())
                .expect("request")
        };
        let resp = if h2 {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                    .await
                    .expect("h2c handshake");
            tokio::spawn(conn);
            sender
                .send_request(req("http://held.example.test/held"))
                .await
                .expect("response head")
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            sender
                .send_request(req("/held"))
                .await
                .expect("response head")
        };
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = resp.into_body();

        // The upstream is still holding the rest: the first chunk must already be here.
        let first = read_at_least(&mut body, FIRST.len(), Duration::from_secs(5)).await;
        assert_eq!(String::from_utf8_lossy(&first), FIRST, "h2={h2}");
        assert!(!*release_tx.borrow(), "rest not released yet");

        release_tx.send(true).expect("release the upstream");
        let rest = body.collect().await.expect("rest of the body").to_bytes();
        assert_eq!(String::from_utf8_lossy(&rest), REST, "h2={h2}");
    }
}

#[tokio::test]
async fn request_chunks_are_forwarded_before_the_body_ends() {
    // The upstream reports each chunk as it arrives, then answers with the byte count.
    let (chunks_tx, mut chunks_rx) = mpsc::unbounded_channel::<Bytes>();
    let upstream = Upstream::spawn(move |req: Request<Incoming>| {
        let chunks = chunks_tx.clone();
        async move {
            let mut body = req.into_body();
            let mut n = 0;
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(d) = frame.data_ref() {
                    n += d.len();
                    let _ = chunks.send(d.clone());
                }
            }
            Response::<Body>::new(full(n.to_string()))
        }
    })
    .await
    .expect("upstream");
    let gw = start(
        |port| {
            simple_config(
                port,
                service_ref("slow-client", SERVICE_PORT),
                service("slow-client", upstream.addr(), None),
            )
        },
        &[],
    )
    .await;

    let (body_tx, mut body_rx) = mpsc::channel::<Bytes>(1);
    let stream = futures_util::stream::poll_fn(move |cx| {
        body_rx
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok::<_, Infallible>(Frame::data(b))))
    });
    let tcp = TcpStream::connect(gw.addr()).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/upload")
        .header("host", "held.example.test")
        .body(StreamBody::new(stream))
        .expect("request");
    let response = tokio::spawn(sender.send_request(req));

    body_tx
        .send(Bytes::from_static(FIRST.as_bytes()))
        .await
        .expect("queue first chunk");
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        while seen.len() < FIRST.len() {
            seen.extend_from_slice(&chunks_rx.recv().await.expect("upstream alive"));
        }
    })
    .await
    .expect("the upstream gets the first chunk while the client still holds the rest");
    assert_eq!(String::from_utf8_lossy(&seen), FIRST);

    body_tx
        .send(Bytes::from_static(REST.as_bytes()))
        .await
        .expect("queue the rest");
    drop(body_tx);
    let resp = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("response in time")
        .expect("task")
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let n = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(n, (FIRST.len() + REST.len()).to_string());
}
