//! Input-token counting at admission: `count_input` on chat requests of 1 KB, 16 KB and 128 KB
//! (English prose and code, split into messages as a conversation would be), for each encoding,
//! on text never seen before; then the next turn of a conversation, whose history is cached.
//!
//! Run with `cargo bench -p sluice-llm --bench tokens`. Divan reports time per call and bytes
//! per second; nanoseconds per KB is the time divided by the size. The BPE tables are built
//! before timing starts (as `warm_up` does at gateway start-up); `build_tables` times that once.

use std::sync::LazyLock;

use divan::counter::BytesCount;
use divan::{black_box, Bencher};
use serde_json::{json, Map, Value};
use sluice_llm::tokens::{count_input, count_text, warm_up, Encoding};
use sluice_llm::Operation;

fn main() {
    warm_up();
    divan::main();
}

const ENGLISH: &str = include_str!("../tests/data/tokens/english.txt");
const RUST: &str = include_str!("../tests/data/tokens/code_rust.txt");
const PYTHON: &str = include_str!("../tests/data/tokens/code_python.txt");

const SIZES_KB: [usize; 3] = [1, 16, 128];

/// A chat request of about `kb` KB of JSON: a system prompt, then user and assistant turns of
/// prose with code blocks, cycling through the fixture texts and cut to fit.
fn chat_request(kb: usize) -> Map<String, Value> {
    let target = kb * 1024;
    let pieces = [ENGLISH, RUST, ENGLISH, PYTHON];
    let mut messages = vec![
        json!({"role": "system", "content": "You are a careful senior engineer. Answer with code where it helps."}),
    ];
    let mut size = 200;
    let mut i = 0;
    while size < target {
        let text = pieces[i % pieces.len()];
        let text = if pieces[i % pieces.len()] == ENGLISH {
            text.to_string()
        } else {
            format!("Here is the code:\n```\n{text}```\n")
        };
        let room = target - size;
        let text: String = if text.len() > room {
            text.chars().take(room.max(16)).collect()
        } else {
            text
        };
        size += text.len() + 40;
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        messages.push(json!({"role": role, "content": text}));
        i += 1;
    }
    match json!({"model": "m", "messages": messages, "max_tokens": 512}) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A request: its size in KB, its body, and the body's JSON length.
type Request = (usize, Map<String, Value>, usize);

static REQUESTS: LazyLock<Vec<Request>> = LazyLock::new(|| {
    SIZES_KB
        .iter()
        .map(|&kb| {
            let body = chat_request(kb);
            let bytes = Value::Object(body.clone()).to_string().len();
            (kb, body, bytes)
        })
        .collect()
});

fn request(kb: usize) -> &'static Request {
    REQUESTS.iter().find(|r| r.0 == kb).unwrap_or(&REQUESTS[0])
}

/// The request with every message made unique (a counter and its index prefixed to its text),
/// so nothing comes from the count cache: the cost of counting text never seen before.
fn fresh(body: &Map<String, Value>, n: u64) -> Map<String, Value> {
    let mut body = body.clone();
    if let Some(Value::Array(messages)) = body.get_mut("messages") {
        for (i, m) in messages.iter_mut().enumerate() {
            if let Some(Value::String(text)) = m.get_mut("content") {
                text.insert_str(0, &format!("{n}.{i} "));
            }
        }
    }
    body
}

fn bench_chat(bencher: Bencher, model: &str, kb: usize) {
    let (_, body, bytes) = request(kb);
    let mut n = 0;
    bencher
        .counter(BytesCount::new(*bytes))
        .with_inputs(|| {
            n += 1;
            fresh(body, n)
        })
        .bench_local_refs(|body| count_input(Operation::ChatCompletions, black_box(model), body));
}

#[divan::bench(args = SIZES_KB)]
fn chat_o200k(bencher: Bencher, kb: usize) {
    bench_chat(bencher, "gpt-4o", kb);
}

#[divan::bench(args = SIZES_KB)]
fn chat_cl100k(bencher: Bencher, kb: usize) {
    bench_chat(bencher, "gpt-4", kb);
}

#[divan::bench(args = SIZES_KB)]
fn chat_approximate(bencher: Bencher, kb: usize) {
    bench_chat(bencher, "claude-sonnet-4-5", kb);
}

/// The next turn of a conversation: the 128 KB history, counted before, plus a new 1 KB user
/// message. The history's messages come from the count cache.
#[divan::bench(args = ["gpt-4o", "claude-sonnet-4-5"])]
fn next_turn_128k(bencher: Bencher, model: &str) {
    let (_, history, bytes) = request(128);
    count_input(Operation::ChatCompletions, model, history);
    let mut n = 0;
    bencher
        .counter(BytesCount::new(*bytes + 1024))
        .with_inputs(|| {
            n += 1;
            let mut body = history.clone();
            if let Some(Value::Array(messages)) = body.get_mut("messages") {
                let turn = format!("{n} {}", &ENGLISH[..1000]);
                messages.push(json!({"role": "user", "content": turn}));
            }
            body
        })
        .bench_local_refs(|body| count_input(Operation::ChatCompletions, black_box(model), body));
}

/// Worst case for the encoder: 128 KB of whitespace runs and one long word.
#[divan::bench(args = ["spaces", "letters"])]
fn pathological_128k(bencher: Bencher, kind: &str) {
    let text = match kind {
        "spaces" => " \t".repeat(64 * 1024) + "x",
        _ => "a".repeat(128 * 1024),
    };
    let mut n = 0;
    bencher
        .counter(BytesCount::new(text.len()))
        .with_inputs(|| {
            n += 1;
            format!("{n}{text}")
        })
        .bench_local_refs(|text| count_text(Encoding::O200kBase, black_box(text)));
}

/// Building both BPE tables from the data embedded in `tiktoken-rs` (what `warm_up` costs).
#[divan::bench(sample_count = 3, sample_size = 1)]
fn build_tables() -> usize {
    let o = tiktoken_rs::o200k_base().map_or(0, |b| b.encode_ordinary("x").len());
    let c = tiktoken_rs::cl100k_base().map_or(0, |b| b.encode_ordinary("x").len());
    o + c
}
