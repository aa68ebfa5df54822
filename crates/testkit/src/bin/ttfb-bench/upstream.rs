//! `ttfb-bench upstream`: an OpenAI Chat Completions server that streams slowly, like a model.
//!
//! Hand-written HTTP/1.1 on tokio so that each SSE event is exactly one chunk and one write
//! (`TCP_NODELAY`): the role chunk with the response head, then each text chunk `gap` after the
//! previous event, then the finish chunk, the usage chunk when `stream_options.include_usage` asks
//! for it (the gateway asks for it), and `data: [DONE]` with the end of the body.
//!
//! A request whose body contains `ttfb-bench-leak` gets a test card number in its third text chunk,
//! so a benchmark can check that an output guardrail really watches the stream.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::http1::{self, Framing, Head};
use crate::{Context, Result};

/// Largest request body read.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The answer, a few words per chunk; cycled when more chunks are asked for.
const PHRASES: &[&str] = &[
    "Here is a short ",
    "draft for the ",
    "operations lead: the ",
    "pallet left Rotterdam ",
    "on Tuesday and is ",
    "held at the border. ",
    "Rerouting adds about ",
    "twelve percent to ",
    "the freight cost, ",
    "so it needs your ",
    "approval by tonight. ",
    "Shall I send it?",
];
const LEAK_MARKER: &[u8] = b"ttfb-bench-leak";
const LEAK: &str = "card 4111 1111 1111 1111 ";

pub struct Config {
    pub listen: SocketAddr,
    pub gap: Duration,
    pub chunks: usize,
}

pub async fn serve(config: Config) -> Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .context(format_args!("listening on {}", config.listen))?;
    let addr = listener.local_addr().context("local address")?;
    println!(
        "ttfb-bench upstream: listening on {addr}, {} text chunks {} ms apart",
        config.chunks,
        config.gap.as_millis()
    );
    let config = Arc::new(config);
    let ids = Arc::new(AtomicU64::new(1));
    loop {
        let (stream, peer) = listener.accept().await.context("accepting")?;
        let config = Arc::clone(&config);
        let ids = Arc::clone(&ids);
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &config, &ids).await {
                eprintln!("ttfb-bench upstream: connection from {peer}: {e}");
            }
        });
    }
}

/// Whether an I/O error only means that the peer went away (e.g. a gateway ending a blocked
/// stream), which is not worth a message.
fn peer_gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
    )
}

async fn connection(mut stream: TcpStream, config: &Config, ids: &AtomicU64) -> Result<()> {
    stream.set_nodelay(true).context("TCP_NODELAY")?;
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        // The head.
        let end = loop {
            if let Some(end) = http1::head_end(&buf) {
                break end;
            }
            if buf.len() > http1::MAX_HEAD {
                return Err("request head too long".into());
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) if buf.is_empty() => return Ok(()),
                Ok(0) => return Err("connection closed inside a request head".into()),
                Ok(_) => {}
                Err(e) if peer_gone(&e) => return Ok(()),
                Err(e) => return Err(format!("reading: {e}").into()),
            }
        };
        let head = Head::parse(&buf[..end])?;
        buf.drain(..end);
        let mut parts = head.start.split(' ');
        let (method, version) = (parts.next().unwrap_or_default(), parts.nth(1));
        let http10 = version == Some("HTTP/1.0");
        let close = head.has_token("connection", "close") || http10;
        if head.has_token("expect", "100-continue") {
            stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .context("writing 100 Continue")?;
        }

        // The body.
        let mut framing = match head.framing()? {
            Framing::UntilClose => Framing::Length(0),
            framing => framing,
        };
        let mut body = Vec::new();
        loop {
            let used = framing.feed(&buf, &mut |b| body.extend_from_slice(b))?;
            buf.drain(..used);
            if framing.done() {
                break;
            }
            if body.len() > MAX_BODY {
                return Err("request body too long".into());
            }
            if stream.read_buf(&mut buf).await.context("reading a body")? == 0 {
                return Err("connection closed inside a request body".into());
            }
        }

        let written = if method == "POST" {
            let framing = match (http10, close) {
                (true, _) => Out::UntilClose,
                (false, true) => Out::ChunkedThenClose,
                (false, false) => Out::Chunked,
            };
            answer(&mut stream, config, ids, &body, framing).await
        } else {
            let text = r#"{"error":{"message":"ttfb-bench upstream answers POST only","type":"invalid_request_error"}}"#;
            let reply = format!(
                "HTTP/1.1 405 Method Not Allowed\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n{text}",
                text.len(),
                if close { "connection: close\r\n" } else { "" },
            );
            stream.write_all(reply.as_bytes()).await
        };
        match written {
            Ok(()) if !close => {}
            Ok(()) => return Ok(()),
            Err(e) if peer_gone(&e) => return Ok(()),
            Err(e) => return Err(format!("writing an answer: {e}").into()),
        }
    }
}

/// How an answer is framed: chunked for HTTP/1.1 clients, to the end of the connection for
/// HTTP/1.0 ones.
#[derive(Clone, Copy, PartialEq)]
enum Out {
    Chunked,
    ChunkedThenClose,
    UntilClose,
}

impl Out {
    fn event(self, out: &mut Vec<u8>, data: &[u8]) {
        match self {
            Out::UntilClose => out.extend_from_slice(data),
            Out::Chunked | Out::ChunkedThenClose => http1::chunk(out, data),
        }
    }
}

async fn answer(
    stream: &mut TcpStream,
    config: &Config,
    ids: &AtomicU64,
    body: &[u8],
    framing: Out,
) -> std::io::Result<()> {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let model = request["model"].as_str().unwrap_or("gpt-4o-mini");
    let id = format!("chatcmpl-ttfb{:010}", ids.fetch_add(1, Ordering::Relaxed));
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let leak = body.windows(LEAK_MARKER.len()).any(|w| w == LEAK_MARKER);
    let texts: Vec<&str> = (0..config.chunks)
        .map(|i| match i {
            2 if leak => LEAK,
            _ => PHRASES[i % PHRASES.len()],
        })
        .collect();
    let usage = json!({
        "prompt_tokens": body.len() / 4,
        "completion_tokens": texts.iter().map(|t| t.split_whitespace().count()).sum::<usize>(),
        "total_tokens": body.len() / 4 + texts.iter().map(|t| t.split_whitespace().count()).sum::<usize>(),
    });
    let connection = match framing {
        Out::Chunked => "",
        Out::ChunkedThenClose | Out::UntilClose => "connection: close\r\n",
    };

    if request["stream"] != Value::Bool(true) {
        let answer = json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": texts.concat()},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": usage,
        })
        .to_string();
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{connection}\r\n{answer}",
            answer.len()
        );
        return stream.write_all(reply.as_bytes()).await;
    }

    let event = |choices: Value, extra: Option<(&str, Value)>| {
        let mut chunk = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": choices,
        });
        if let Some((key, value)) = extra {
            chunk[key] = value;
        }
        format!("data: {chunk}\n\n")
    };
    let delta = |delta: Value, finish: Option<&str>| {
        event(
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]),
            None,
        )
    };
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n{}{connection}\r\n",
        match framing {
            Out::UntilClose => "",
            Out::Chunked | Out::ChunkedThenClose => "transfer-encoding: chunked\r\n",
        }
    )
    .into_bytes();
    framing.event(
        &mut out,
        delta(json!({"role": "assistant", "content": ""}), None).as_bytes(),
    );
    stream.write_all(&out).await?;
    for text in texts {
        // The simulated time per token; this is what the benchmark measures against.
        tokio::time::sleep(config.gap).await;
        out.clear();
        framing.event(&mut out, delta(json!({"content": text}), None).as_bytes());
        stream.write_all(&out).await?;
    }
    out.clear();
    framing.event(&mut out, delta(json!({}), Some("stop")).as_bytes());
    stream.write_all(&out).await?;
    if request["stream_options"]["include_usage"] == Value::Bool(true) {
        out.clear();
        framing.event(
            &mut out,
            event(json!([]), Some(("usage", usage))).as_bytes(),
        );
        stream.write_all(&out).await?;
    }
    out.clear();
    framing.event(&mut out, b"data: [DONE]\n\n");
    if framing != Out::UntilClose {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    stream.write_all(&out).await
}
