//! [`BodyView`] against the counters on a parsed `Map`: the same input tokens and output cap for
//! every operation and model, on request shapes of every dialect, on JSON spellings a `Map`
//! normalises (escapes, number forms, repeated keys, whitespace), and on random bodies.

use serde_json::{json, Map, Value};

use super::{count_input, requested_output_cap, try_count_input, BodyView};
use crate::Operation;

const OPS: [Operation; 7] = Operation::ALL;

const MODELS: [&str; 4] = ["gpt-4o", "gpt-4", "claude-opus-4-1", "gemini-2.5-pro"];

/// Asserts that the view of `raw` reads what the parsed `Map` of `raw` reads; returns how many
/// (operation, model) pairs counted a body they understood.
fn same(raw: &str) -> usize {
    let map: Map<String, Value> = serde_json::from_str(raw).unwrap();
    let mut understood = 0;
    for op in OPS {
        let view = BodyView::parse(op, raw.as_bytes()).unwrap();
        assert_eq!(
            view.output_cap(),
            requested_output_cap(op, &map),
            "{op:?} {raw}"
        );
        for model in MODELS {
            assert_eq!(
                view.count_input(model),
                count_input(op, model, &map),
                "{op:?} {model} {raw}"
            );
            let shaped = view.try_count_input(model);
            assert_eq!(shaped, try_count_input(op, model, &map), "{op:?} {model}");
            understood += usize::from(shaped.is_ok() && op != Operation::Models);
        }
    }
    understood
}

#[test]
fn every_dialect_counts_the_same() {
    let bodies = [
        // Chat Completions: roles, names, tool calls, content parts, tools, schema.
        json!({"model": "gpt-4o", "max_tokens": 16, "temperature": 0, "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "name": "ada", "content": [
                {"type": "text", "text": "Describe this image and file."},
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
                {"type": "image_url", "image_url": "https://x/z.png"},
                {"type": "input_audio", "input_audio": {"data": "AAAAAAAA", "format": "wav"}},
                {"type": "file", "file": {"filename": "a.txt", "file_data": "data:text/plain;base64,aGVsbG8gdGhlcmU="}},
                {"type": "refusal", "refusal": "no"}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}],
                "function_call": {"name": "legacy", "arguments": "{}"}, "audio": {"id": "a1"}},
            {"role": "tool", "tool_call_id": "c1", "content": "22 C, sunny"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "functions": [{"name": "legacy", "parameters": {}}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}}}),
        json!({"model": "o3", "max_completion_tokens": 256.0, "max_tokens": 5, "messages": [{"role": "developer", "content": "Be brief, but say enough to answer fully."}]}),
        // Legacy Completions and Embeddings: strings, token ids, batches.
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": ["Say this is a test", [1, 2, 3]], "suffix": "end", "max_tokens": 7}),
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": null}),
        json!({"model": "text-embedding-3-small", "input": [[5, 6], [7]]}),
        json!({"model": "text-embedding-3-small", "input": "The food was delicious and the waiter was kind."}),
        // Responses: instructions, items of every kind, tools, schema.
        json!({"model": "gpt-4.1", "instructions": "Answer in French.", "max_output_tokens": 2048, "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Bonjour, what is this?"},
                {"type": "input_image", "image_url": "https://x/i.png", "detail": "high"},
                {"type": "input_file", "file_id": "file-1", "filename": "doc.pdf"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Un document."}]},
            {"type": "function_call", "call_id": "c", "name": "lookup", "arguments": "{\"q\": 1}"},
            {"type": "function_call_output", "call_id": "c", "output": "found it"},
            {"type": "custom_tool_call", "name": "sh", "input": "ls -la"},
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "thought"}], "encrypted_content": "QUJDREVGR0g="},
            {"type": "item_reference", "id": "x"},
            {"type": "web_search_call", "status": "completed"}],
            "tools": [{"type": "function", "name": "lookup", "parameters": {}}, {"type": "web_search"}],
            "text": {"format": {"type": "json_schema", "name": "o", "schema": {"type": "object"}}}}),
        json!({"model": "gpt-5", "input": "Just a string input."}),
        // Anthropic Messages: system blocks, every block type, server and custom tools.
        json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "system": [{"type": "text", "text": "You are a poet."}], "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Read these."},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                {"type": "document", "title": "T", "context": "C", "source": {"type": "text", "data": "plain text doc"}},
                {"type": "document", "source": {"type": "base64", "data": "JVBERi0xLjQKL1R5cGUgL1BhZ2U="}},
                {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "inner"}]}},
                {"type": "document", "source": {"type": "url", "url": "https://x/d.pdf"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "redacted_thinking", "data": "ZZZZZZZZ"},
                {"type": "tool_use", "id": "t", "name": "calc", "input": {"x": 1.5e3}},
                {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {"query": "q"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "1500"}]}],
            "tools": [{"name": "calc", "input_schema": {"type": "object"}}, {"type": "web_search_20250305", "name": "web_search"}, {"type": "custom", "name": "c"}]}),
        json!({"model": "claude-haiku-4-5", "system": "Short.", "messages": [{"role": "user", "content": "Hi"}]}),
    ];
    let mut understood = 0;
    for body in bodies {
        understood += same(&body.to_string());
        understood += same(&serde_json::to_string_pretty(&body).unwrap());
    }
    // Each body is understood by its own operation at least (for every model).
    assert!(understood >= 11 * 2 * MODELS.len(), "{understood}");
}

#[test]
fn spellings_a_map_normalises_count_the_same() {
    let raws = [
        // Escapes in text, keys and values counted as JSON; `\/` and `\u` forms re-escaped.
        r#"{"messages":[{"role":"us\u0065r","content":"tab\there \"quoted\" \/ \u00e9\ud83d\ude80\n"}]}"#,
        r#"{"messages":[{"role":"tool","content":"x","extra":{"k\u0041":"v\\","n":[1.0e2,-0,1E-7,12345678901234567890,-9223372036854775808,0.1]}}]}"#,
        // Repeated keys, top level and nested: the first position, the last value.
        r#"{"messages":[{"role":"user","content":"first"}],"messages":[{"role":"user","content":"second","role":"system","x":1,"x":[2]}]}"#,
        r#"{"max_tokens":5,"max_tokens":null,"messages":[]}"#,
        r#"{"max_completion_tokens":"x","max_tokens":9,"messages":[]}"#,
        // Whitespace everywhere, and fields counting skips.
        " { \"model\" : \"m\" ,\n \"messages\" :\t[ { \"role\" : \"user\" , \"content\" : [ { \"type\" : \"text\" , \"text\" : \"hi\" } ] } ] , \"metadata\" : { \"a\" : [ 1 , { } ] } } ",
        // Shapes that fall back to the byte estimate (of the whole body, skipped fields too).
        r#"{"messages":"not an array","other":{"big":"0123456789abcdefghij","n":1.50}}"#,
        r#"{"input":{"a":1},"prompt":{"b":2},"tools":"none","system":3}"#,
        r#"{}"#,
    ];
    for raw in raws {
        same(raw);
    }
}

/// A small deterministic generator (xorshift64*), so the property test needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Keys and values the counters look for, mixed with others, so random bodies reach deep into
/// the walkers.
const KEYS: &[&str] = &[
    "messages",
    "content",
    "role",
    "name",
    "type",
    "text",
    "tool_calls",
    "function",
    "arguments",
    "image_url",
    "detail",
    "input_audio",
    "data",
    "format",
    "file",
    "file_data",
    "filename",
    "input",
    "instructions",
    "prompt",
    "suffix",
    "tools",
    "functions",
    "system",
    "source",
    "output",
    "summary",
    "encrypted_content",
    "thinking",
    "json_schema",
    "response_format",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "refusal",
    "x",
];
const STRINGS: &[&str] = &[
    "text",
    "image_url",
    "input_image",
    "input_text",
    "input_audio",
    "file",
    "input_file",
    "document",
    "tool_use",
    "tool_result",
    "function_call",
    "function_call_output",
    "reasoning",
    "message",
    "image",
    "base64",
    "content",
    "json_schema",
    "low",
    "high",
    "wav",
    "user",
    "assistant",
    "system",
    "data:application/pdf;base64,JVBERi0xLjQKL1R5cGUgL1BhZ2U=",
    "data:text/plain;base64,aGk=",
    "%%not base64%%",
    "",
    " ",
    "日本語",
    "🚀",
    "\u{0}",
    "a\u{301}",
    "    \n\n\t",
    "quote \" and \\ backslash",
    "A much longer sentence of ordinary English prose.",
];

fn random_value(rng: &mut Rng, depth: u32) -> Value {
    let leaf = depth >= 5 || rng.below(3) == 0;
    match if leaf { rng.below(6) } else { 6 + rng.below(2) } {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => json!(rng.next() as i64 >> rng.below(64)),
        3 => json!((rng.next() as f64) / 7.0 - 1e18),
        4 => json!(rng.below(3000)),
        5 => {
            let mut s = rng.pick(STRINGS).to_string();
            if rng.below(4) == 0 {
                s = s.repeat(1 + rng.below(40) as usize);
            }
            Value::String(s)
        }
        6 => Value::Array(
            (0..rng.below(5))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.below(6))
                .map(|_| (rng.pick(KEYS).to_string(), random_value(rng, depth + 1)))
                .collect(),
        ),
    }
}

#[test]
fn random_bodies_count_the_same() {
    let mut rng = Rng(0x5EED_0BAD_F00D_0002);
    let mut understood = 0;
    for _ in 0..1_000 {
        let body = match random_value(&mut rng, 0) {
            Value::Object(m) => m,
            other => {
                let mut m = Map::new();
                m.insert(rng.pick(KEYS).to_string(), other);
                m
            }
        };
        let raw = Value::Object(body).to_string();
        // A repeated key at the top level, as a client may send it.
        let raw = if raw.len() > 2 && rng.below(8) == 0 {
            format!("{{\"messages\": [], {}", &raw[1..])
        } else {
            raw
        };
        understood += same(&raw);
    }
    // The generator reaches the walkers, not only their fallbacks.
    assert!(understood > 500, "{understood}");
}

#[test]
fn bodies_that_are_not_objects_are_not_read() {
    for raw in ["[]", "1", "\"s\"", "{", "{\"messages\": [}", "{} {}"] {
        assert!(
            BodyView::parse(Operation::ChatCompletions, raw.as_bytes()).is_err(),
            "{raw}"
        );
    }
}
