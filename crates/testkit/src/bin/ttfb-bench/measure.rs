//! `ttfb-bench measure`: requests one after another over one kept-alive HTTP/1.1 connection.
//!
//! A blocking socket and hand-written HTTP/1.1: the clock starts just before the request is
//! written (one write) and each read is stamped as soon as it returns, so the times are the
//! gateway's and the kernel's, not a client library's. Per request:
//! - **time to first byte**: the read that brought the first byte of the body (after the head
//!   and, when chunked, the first chunk-size line);
//! - **first text**: the read that brought the first byte of the first `data:` event whose JSON
//!   has a non-empty `choices[].delta.content`;
//! - **total**: the read that brought the end of the body.
//!
//! Anything but a 200 whose stream ends with `data: [DONE]` is an error.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http1::{self, Framing, Head};
use crate::{Context, Result};

/// A request that has not finished by then is an error (the streams take well under a second).
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of an error answer's body goes into the message.
const ERROR_BODY: usize = 2048;

pub struct Config {
    pub url: String,
    pub body: Vec<u8>,
    pub requests: usize,
    pub warmup: usize,
    /// `name: value`.
    pub headers: Vec<String>,
    /// Where to write every measured request's times (CSV, microseconds), for histograms.
    pub samples: Option<std::path::PathBuf>,
}

struct Target {
    /// The `Host` header: `host[:port]` as in the URL.
    authority: String,
    path: String,
    port: u16,
    host: String,
}

fn parse_url(url: &str) -> Result<Target> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--url {url:?}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (
            host,
            port.parse()
                .context(format_args!("--url {url:?}: port {port:?}"))?,
        ),
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("--url {url:?}: no host").into());
    }
    Ok(Target {
        authority: authority.to_owned(),
        path: path.to_owned(),
        port,
        host: host.to_owned(),
    })
}

/// The whole request, written with one `write_all`.
fn build_request(target: &Target, config: &Config) -> Result<Vec<u8>> {
    let mut extra = String::new();
    let (mut host, mut content_type) = (false, false);
    for header in &config.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("--header {header:?}: expected 'name: value'"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty()
            || name.bytes().any(|b| b <= b' ' || b == b':' || b >= 0x7f)
            || value.bytes().any(|b| b == b'\r' || b == b'\n')
        {
            return Err(format!("--header {header:?}: not a valid header").into());
        }
        match name.to_ascii_lowercase().as_str() {
            "content-length" | "transfer-encoding" | "connection" => {
                return Err(format!("--header {header:?}: ttfb-bench sets {name} itself").into())
            }
            "host" => host = true,
            "content-type" => content_type = true,
            _ => {}
        }
        extra.push_str(&format!("{name}: {value}\r\n"));
    }
    if !host {
        extra.push_str(&format!("host: {}\r\n", target.authority));
    }
    if !content_type {
        extra.push_str("content-type: application/json\r\n");
    }
    let mut request = format!(
        "POST {} HTTP/1.1\r\n{extra}content-length: {}\r\n\r\n",
        target.path,
        config.body.len()
    )
    .into_bytes();
    request.extend_from_slice(&config.body);
    Ok(request)
}

/// Times of one request, from just before its write.
struct Sample {
    ttfb: Duration,
    first_text: Duration,
    total: Duration,
}

/// The server-sent events of a body, parsed as they arrive.
#[derive(Default)]
struct Events {
    line: Vec<u8>,
    data: Vec<u8>,
    /// When the first byte of the event being read arrived.
    event_start: Option<Instant>,
    first_text: Option<Instant>,
    /// The `data` of the last complete event.
    last: Vec<u8>,
    count: usize,
}

impl Events {
    fn feed(&mut self, mut bytes: &[u8], now: Instant) {
        while !bytes.is_empty() {
            let (piece, rest, end) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            if self.event_start.is_none() && piece.iter().any(|&b| b != b'\r') {
                self.event_start = Some(now);
            }
            self.line.extend_from_slice(piece);
            if end {
                self.end_line();
            }
            bytes = rest;
        }
    }

    fn end_line(&mut self) {
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.is_empty() {
            self.dispatch();
        } else if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if !self.data.is_empty() {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
        }
        line.clear();
        self.line = line;
    }

    fn dispatch(&mut self) {
        let start = self.event_start.take();
        if self.data.is_empty() {
            return;
        }
        self.count += 1;
        if self.first_text.is_none() && self.data != b"[DONE]" && has_text(&self.data) {
            self.first_text = start;
        }
        std::mem::swap(&mut self.last, &mut self.data);
        self.data.clear();
    }
}

/// Whether a chunk's JSON carries text: a non-empty `choices[].delta.content`.
fn has_text(data: &[u8]) -> bool {
    let Ok(chunk) = serde_json::from_slice::<Value>(data) else {
        return false;
    };
    chunk["choices"].as_array().is_some_and(|choices| {
        choices.iter().any(|c| {
            c["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
    })
}

struct Connection {
    target: Target,
    stream: Option<TcpStream>,
    reconnects: usize,
}

impl Connection {
    fn stream(&mut self) -> Result<&mut TcpStream> {
        if self.stream.is_none() {
            let addrs: Vec<_> = (self.target.host.as_str(), self.target.port)
                .to_socket_addrs()
                .context(format_args!("resolving {}", self.target.host))?
                .collect();
            let stream = TcpStream::connect(&addrs[..])
                .context(format_args!("connecting to {}", self.target.authority))?;
            stream.set_nodelay(true).context("TCP_NODELAY")?;
            stream
                .set_read_timeout(Some(READ_TIMEOUT))
                .context("read timeout")?;
            self.stream = Some(stream);
        }
        self.stream.as_mut().ok_or_else(|| "not connected".into())
    }

    /// One request, read to the end of its body.
    fn request(&mut self, request: &[u8], buf: &mut [u8]) -> Result<Sample> {
        let stream = self.stream()?;
        let t0 = Instant::now();
        stream.write_all(request).context("writing the request")?;
        let mut head_buf: Vec<u8> = Vec::new();
        let mut head: Option<(Head, Framing)> = None;
        let mut events = Events::default();
        let mut error_body = Vec::new();
        let mut ttfb = None;
        loop {
            let n = match stream.read(buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(format!("no end of the answer within {READ_TIMEOUT:?}").into())
                }
                Err(e) => return Err(format!("reading the answer: {e}").into()),
            };
            let now = Instant::now();
            let mut input = &buf[..n];
            if head.is_none() {
                head_buf.extend_from_slice(input);
                input = &[];
                while let Some(end) = http1::head_end(&head_buf) {
                    let parsed = Head::parse(&head_buf[..end])?;
                    if parsed
                        .start
                        .split(' ')
                        .nth(1)
                        .is_some_and(|s| s.starts_with('1'))
                    {
                        // 100 Continue and the like: the real head follows.
                        head_buf.drain(..end);
                        continue;
                    }
                    let framing = parsed.framing()?;
                    head = Some((parsed, framing));
                    input = &head_buf[end..];
                    break;
                }
                if head.is_none() {
                    if n == 0 {
                        return Err("the connection closed before an answer".into());
                    }
                    if head_buf.len() > http1::MAX_HEAD {
                        return Err("response head too long".into());
                    }
                    continue;
                }
            }
            let Some((parsed, framing)) = head.as_mut() else {
                continue;
            };
            let ok = parsed.start.split(' ').nth(1) == Some("200");
            let used = framing.feed(input, &mut |bytes| {
                if ok {
                    ttfb.get_or_insert(now);
                    events.feed(bytes, now);
                } else if error_body.len() < ERROR_BODY {
                    error_body.extend_from_slice(bytes);
                }
            })?;
            if used < input.len() {
                return Err(
                    "bytes after the end of the answer (the server sent more than one answer)"
                        .into(),
                );
            }
            let ended_by_close = n == 0;
            if !framing.done() && !ended_by_close {
                continue;
            }
            if ended_by_close && !matches!(framing, Framing::UntilClose) {
                return Err("the connection closed in the middle of the answer".into());
            }
            let close = ended_by_close
                || parsed.has_token("connection", "close")
                || parsed.start.starts_with("HTTP/1.0");
            if close {
                self.stream = None;
                self.reconnects += 1;
            }
            if !ok {
                return Err(format!(
                    "answer {:?}: {}",
                    parsed.start,
                    String::from_utf8_lossy(&error_body[..error_body.len().min(ERROR_BODY)])
                )
                .into());
            }
            if events.last != b"[DONE]" {
                let last = String::from_utf8_lossy(&events.last);
                return Err(format!(
                    "the stream did not end with data: [DONE] ({} events, content-type {:?}; last event: {:.300})",
                    events.count,
                    parsed.header("content-type").unwrap_or("none"),
                    last
                )
                .into());
            }
            let (Some(ttfb), Some(first_text)) = (ttfb, events.first_text) else {
                return Err(
                    "the stream carried no text (no data: event with a non-empty delta.content)"
                        .into(),
                );
            };
            return Ok(Sample {
                ttfb: ttfb - t0,
                first_text: first_text - t0,
                total: now - t0,
            });
        }
    }
}

/// Nearest-rank percentile of sorted values, in microseconds.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let d = sorted[rank.clamp(1, sorted.len()) - 1];
    d.as_nanos() as f64 / 1000.0
}

pub fn run(config: &Config) -> Result<()> {
    if config.requests == 0 {
        return Err("--requests must be at least 1".into());
    }
    let target = parse_url(&config.url)?;
    let request = build_request(&target, config)?;
    let mut connection = Connection {
        target,
        stream: None,
        reconnects: 0,
    };
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..config.warmup {
        connection
            .request(&request, &mut buf)
            .context(format_args!("{}: warm-up request {}", config.url, i + 1))?;
    }
    connection.reconnects = 0;
    let mut samples = Vec::with_capacity(config.requests);
    for i in 0..config.requests {
        samples.push(
            connection
                .request(&request, &mut buf)
                .context(format_args!("{}: request {}", config.url, i + 1))?,
        );
    }
    if let Some(path) = &config.samples {
        let mut csv = String::from("ttfb_us,first_text_us,total_us\n");
        for s in &samples {
            let us = |d: Duration| d.as_nanos() as f64 / 1000.0;
            csv.push_str(&format!(
                "{:.1},{:.1},{:.1}\n",
                us(s.ttfb),
                us(s.first_text),
                us(s.total)
            ));
        }
        std::fs::write(path, csv).context(format_args!("writing {}", path.display()))?;
    }
    let series = |pick: fn(&Sample) -> Duration| {
        let mut values: Vec<Duration> = samples.iter().map(pick).collect();
        values.sort_unstable();
        [50.0, 90.0, 99.0].map(|p| percentile(&values, p))
    };
    let ttfb = series(|s| s.ttfb);
    let text = series(|s| s.first_text);
    let total = series(|s| s.total);
    println!(
        "{}: {} requests ({} warm-up) over one connection{}: first byte p50 {:.1} µs, p90 {:.1}, p99 {:.1}; first text p50 {:.1} µs; whole stream p50 {:.1} µs",
        config.url,
        config.requests,
        config.warmup,
        match connection.reconnects {
            0 => String::new(),
            n => format!(" ({n} reconnections: the server closed it)"),
        },
        ttfb[0],
        ttfb[1],
        ttfb[2],
        text[0],
        total[0],
    );
    println!(
        "ttfb_p50_us={:.1} ttfb_p90_us={:.1} ttfb_p99_us={:.1} first_text_p50_us={:.1} first_text_p90_us={:.1} first_text_p99_us={:.1} total_p50_us={:.1} total_p90_us={:.1} total_p99_us={:.1} requests={} reconnects={}",
        ttfb[0], ttfb[1], ttfb[2], text[0], text[1], text[2], total[0], total[1], total[2],
        config.requests, connection.reconnects,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere() {
        let stream =
            b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\r\n\r\n: comment\n\ndata: [DONE]\n\n";
        let text_at = stream
            .windows(4)
            .position(|w| w == b"\"Hi\"")
            .expect("text");
        for piece in 1..=stream.len() {
            let t0 = Instant::now();
            let mut events = Events::default();
            let mut text_read = None;
            for (k, part) in stream.chunks(piece).enumerate() {
                let now = t0 + Duration::from_micros(k as u64);
                events.feed(part, now);
                // The text event starts after the first event's blank line.
                let first_byte = stream[..text_at]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map(|i| i + 1);
                if text_read.is_none() && first_byte.is_some_and(|b| b < (k + 1) * piece) {
                    text_read = Some(now);
                }
            }
            assert_eq!(events.count, 3, "piece {piece}");
            assert_eq!(events.last, b"[DONE]");
            assert_eq!(events.first_text, text_read, "piece {piece}");
        }
    }

    #[test]
    fn urls_and_requests() {
        let t = parse_url("http://127.0.0.1:18480/v1/chat/completions").expect("valid");
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 18480));
        assert_eq!(t.path, "/v1/chat/completions");
        let t = parse_url("http://[::1]:8080").expect("valid");
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 8080, "/")
        );
        assert!(parse_url("https://example.com/").is_err());
        assert!(parse_url("http://host:port/").is_err());
        let config = Config {
            url: String::new(),
            body: b"{}".to_vec(),
            requests: 1,
            warmup: 0,
            headers: vec!["X-Test: yes".into()],
            samples: None,
        };
        let t = parse_url("http://localhost:1/p").expect("valid");
        let request = String::from_utf8(build_request(&t, &config).expect("valid")).expect("utf-8");
        assert_eq!(
            request,
            "POST /p HTTP/1.1\r\nX-Test: yes\r\nhost: localhost:1\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
        );
        let bad = Config {
            headers: vec!["no colon".into()],
            ..config
        };
        assert!(build_request(&t, &bad).is_err());
    }

    #[test]
    fn percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v[..1], 90.0), 1.0);
    }
}
