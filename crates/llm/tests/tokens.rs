//! Token counting: exact counts against the reference tokenizer, the request shapes of every
//! operation, the approximation's margin against real tokenizers, and robustness.
//!
//! Reference counts (`O200K`, `CL100K` columns) come from OpenAI's Python `tiktoken` 0.14,
//! loaded with the same `.tiktoken` files that `tiktoken-rs` embeds (their SHA-256 match the
//! hashes `tiktoken` pins). The `MAX_OTHER` column is the largest count among Gemini/Gemma 3,
//! Llama 2, Llama 3.1, Mistral, Qwen 3, DeepSeek V3 (their published tokenizers, via npm
//! packages) and Claude 3–4.6 and Opus 4.7 (`ctok`'s offline reconstruction); see
//! `src/tokens/approx.rs`.

use serde_json::{json, Map, Value};
use sluice_llm::tokens::{
    count_input, count_text, encoding_for_model, requested_output_cap, try_count_input, warm_up,
    Encoding, ShapeError,
};
use sluice_llm::Operation;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn o200k(text: &str) -> u64 {
    count_text(Encoding::O200kBase, text)
}

fn cl100k(text: &str) -> u64 {
    count_text(Encoding::Cl100kBase, text)
}

// ---------------------------------------------------------------------------------------------
// Exact counts

/// (file under tests/data/tokens, o200k, cl100k, largest count among the other tokenizers).
const CORPUS: &[(&str, u64, u64, u64)] = &[
    ("arabic_hindi.txt", 195, 470, 560),
    ("chinese.txt", 257, 359, 356),
    ("code_js.txt", 359, 349, 615),
    ("code_python.txt", 414, 412, 663),
    ("code_rust.txt", 541, 539, 861),
    ("emoji.txt", 229, 305, 373),
    ("english.txt", 301, 306, 458),
    ("gen_emoji_mix.txt", 613, 947, 1010),
    ("gen_numbers_csv.txt", 1327, 1327, 2201),
    ("gen_random_alnum.txt", 1022, 1078, 1435),
    ("gen_random_ascii.txt", 1102, 1118, 1502),
    ("gen_random_b64.txt", 891, 944, 1256),
    ("gen_random_hex.txt", 756, 755, 1180),
    ("gen_ws_spaces.txt", 243, 240, 383),
    ("japanese.txt", 220, 299, 313),
    ("json.txt", 526, 524, 776),
    ("korean.txt", 154, 248, 315),
    ("numbers.txt", 329, 329, 532),
    ("random.txt", 358, 379, 480),
    ("russian.txt", 128, 231, 217),
    ("whitespace_markdown.txt", 211, 210, 297),
];

fn corpus_text(name: &str) -> String {
    let path = format!("{}/tests/data/tokens/{name}", env!("CARGO_MANIFEST_DIR"));
    match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => panic!("{path}: {e}"),
    }
}

#[test]
fn well_known_strings() {
    // (text, o200k, cl100k), from tiktoken.
    let cases = [
        ("hello world", 2, 2),
        ("Hello, world!", 4, 4),
        ("tiktoken is great!", 6, 6),
        ("antidisestablishmentarianism", 6, 6),
        ("2 + 2 = 4", 7, 7),
        ("お誕生日おめでとう", 8, 9),
        ("The quick brown fox jumps over the lazy dog.", 10, 10),
        (" leading and trailing spaces  ", 5, 5),
        ("<|endoftext|> is text here", 10, 10),
        ("", 0, 0),
    ];
    for (text, want_o, want_c) in cases {
        assert_eq!(o200k(text), want_o, "o200k {text:?}");
        assert_eq!(cl100k(text), want_c, "cl100k {text:?}");
    }
}

/// The one fixture with whitespace runs longer than 64 bytes (up to 81): those are encoded in
/// 64-byte pieces to bound the encoder's cost, which may count a token more per long run.
const LONG_WHITESPACE_RUNS: &str = "gen_ws_spaces.txt";

#[test]
fn corpus_counts_match_tiktoken() {
    for &(name, want_o, want_c, _) in CORPUS {
        let text = corpus_text(name);
        let (got_o, got_c) = (o200k(&text), cl100k(&text));
        if name == LONG_WHITESPACE_RUNS {
            assert!((want_o..=want_o + want_o / 50).contains(&got_o), "{got_o}");
            assert!((want_c..=want_c + want_c / 50).contains(&got_c), "{got_c}");
        } else {
            assert_eq!(got_o, want_o, "o200k {name}");
            assert_eq!(got_c, want_c, "cl100k {name}");
        }
    }
}

#[test]
fn long_text_is_segmented_without_changing_the_count() {
    // 24.8 KB, so the encoder sees it in ~1 KB segments; tiktoken counted it whole. Without the
    // fixture with long whitespace runs the count is exact.
    let names: Vec<&str> = CORPUS
        .iter()
        .map(|c| c.0)
        .filter(|n| *n != LONG_WHITESPACE_RUNS)
        .collect();
    let joined = names
        .iter()
        .map(|n| corpus_text(n))
        .collect::<Vec<_>>()
        .join("\n\n");
    assert_eq!(joined.len(), 24_761);
    assert_eq!(o200k(&joined), 9_938);
    assert_eq!(cl100k(&joined), 11_136);
}

#[test]
fn warm_up_is_idempotent() {
    warm_up();
    warm_up();
    assert_eq!(o200k("hello world"), 2);
}

// ---------------------------------------------------------------------------------------------
// The approximation

#[test]
fn approximation_covers_every_measured_tokenizer() {
    for &(name, want_o, _, max_other) in CORPUS {
        let text = corpus_text(name);
        let approx = count_text(Encoding::Approximate, &text);
        assert!(approx >= want_o, "{name}: {approx} < o200k {want_o}");
        assert!(
            approx >= max_other,
            "{name}: {approx} < largest other tokenizer {max_other}"
        );
        // And not absurdly high: within 4× the largest real count on every kind of text.
        assert!(approx <= 4 * max_other, "{name}: {approx} vs {max_other}");
    }
}

#[test]
fn approximation_is_at_least_o200k_on_mixed_text() {
    let mixed = "Résumé: 東京で会いましょう 🚀 — fn main() { println!(\"{}\", 42); } \
                 {\"k\": [1, 2.5, null]} Привет, мир! 안녕하세요 नमस्ते";
    assert!(count_text(Encoding::Approximate, mixed) >= 2 * o200k(mixed));
    assert_eq!(count_text(Encoding::Approximate, ""), 0);
}

// ---------------------------------------------------------------------------------------------
// Chat Completions

/// The OpenAI cookbook's example conversation ("How to count tokens with tiktoken"), for which
/// it reports 129 prompt tokens from the API for gpt-3.5-turbo and gpt-4-0613, and 124 for
/// gpt-4o and gpt-4o-mini.
fn cookbook_messages() -> Value {
    json!([
        {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
        {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
        {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
        {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
        {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
        {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},
    ])
}

fn chat(model: &str, body: Value) -> u64 {
    count_input(Operation::ChatCompletions, model, &obj(body))
}

#[test]
fn chat_matches_the_cookbook() {
    let body = json!({"model": "x", "messages": cookbook_messages(), "max_tokens": 1});
    assert_eq!(chat("gpt-4o", body.clone()), 124);
    assert_eq!(chat("gpt-4o-mini", body.clone()), 124);
    assert_eq!(chat("gpt-4-0613", body.clone()), 129);
    assert_eq!(chat("gpt-3.5-turbo", body), 129);
}

#[test]
fn chat_framing_per_message() {
    // 3 (priming) + 3 (message) + 1 ("user") + 2 ("hello world").
    let body = json!({"messages": [{"role": "user", "content": "hello world"}]});
    assert_eq!(chat("gpt-4o", body), 9);
    // Parts are counted like the string they add up to.
    let parts = json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "hello"}, {"type": "text", "text": " world"}]}]});
    assert_eq!(chat("gpt-4o", parts), 9);
    assert_eq!(chat("gpt-4o", json!({"messages": []})), 3);
}

#[test]
fn chat_tools_are_counted_generously() {
    // The cookbook's tool example: the API reports 101 prompt tokens for gpt-4o and 105 for
    // gpt-4. Counting the definitions' JSON must not fall below that, nor run far above.
    let body = json!({
        "messages": [
            {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
            {"role": "user", "content": "What's the weather like in San Francisco?"},
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {"type": "object", "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "description": "The unit of temperature to return", "enum": ["celsius", "fahrenheit"]},
            }, "required": ["location"]},
        }}],
    });
    let gpt4o = chat("gpt-4o", body.clone());
    assert!((101..=150).contains(&gpt4o), "{gpt4o}");
    let gpt4 = chat("gpt-4", body);
    assert!((105..=155).contains(&gpt4), "{gpt4}");
}

#[test]
fn chat_tool_calls_and_tool_messages() {
    let args = r#"{"location":"Paris","unit":"celsius"}"#;
    let base = json!({"messages": [{"role": "user", "content": "Weather in Paris?"}]});
    let with_call = json!({"messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": args}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18°C, sunny"},
    ]});
    let extra = chat("gpt-4o", with_call) - chat("gpt-4o", base);
    // Two more messages (3 + role each), the call's name and arguments, the result, the id.
    let floor = 2 * 3
        + o200k("assistant")
        + o200k("tool")
        + o200k("get_weather")
        + o200k(args)
        + o200k("18°C, sunny")
        + o200k("call_1");
    assert!(extra >= floor, "{extra} < {floor}");
    assert!(extra <= floor + 20, "{extra}");
}

#[test]
fn chat_images_by_model_and_detail() {
    let image = |detail: &str| {
        json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": detail}}]}]})
    };
    // 3 + 3 + 1 ("user") of framing around each image.
    assert_eq!(chat("gpt-4o", image("low")), 7 + 85);
    assert_eq!(chat("gpt-4o", image("high")), 7 + 1_445);
    assert_eq!(chat("gpt-4o", image("auto")), 7 + 1_445);
    assert_eq!(chat("gpt-4o-mini", image("low")), 7 + 2_833);
    assert_eq!(chat("gpt-4.1-nano", image("high")), 7 + 3_779);
    assert!(chat("claude-sonnet-4-5", image("low")) >= 4_800);
}

#[test]
fn chat_audio_and_files() {
    use base64::Engine;
    let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
    let audio = json!({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": b64(16_000), "format": "wav"}}]}]});
    // 16,000 bytes of WAV: at most 2 s at 8 kHz 8-bit, 10 tokens a second.
    assert_eq!(chat("gpt-4o-audio-preview", audio), 7 + 20);
    let pdf = format!(
        "data:application/pdf;base64,{}",
        base64::engine::general_purpose::STANDARD
            .encode(b"%PDF-1.4\n<< /Type /Page >>\n<< /Type /Page >>\n<< /Type /Pages >>")
    );
    let file = json!({"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_data": pdf, "filename": "a.pdf"}}]}]});
    let n = chat("gpt-4o", file);
    assert!(n >= 2 * 4_600, "{n}");
    let by_id = json!({"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_id": "file-abc"}}]}]});
    assert_eq!(chat("gpt-4o", by_id), 7 + 4_600);
}

#[test]
fn chat_response_format_schema_is_counted() {
    let base = json!({"messages": [{"role": "user", "content": "hi"}]});
    let mut with_schema = base.clone();
    let schema = json!({"name": "answer", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}});
    with_schema["response_format"] = json!({"type": "json_schema", "json_schema": schema.clone()});
    let extra = chat("gpt-4o", with_schema) - chat("gpt-4o", base);
    assert_eq!(extra, o200k(&schema.to_string()));
}

// ---------------------------------------------------------------------------------------------
// Completions and Embeddings

#[test]
fn completions_prompt_forms() {
    let c = |body: Value| count_input(Operation::Completions, "gpt-3.5-turbo-instruct", &obj(body));
    assert_eq!(c(json!({"prompt": "hello world"})), 2);
    assert_eq!(c(json!({"prompt": ["hello world", "Hello, world!"]})), 6);
    assert_eq!(c(json!({"prompt": [15339, 1917]})), 2);
    assert_eq!(c(json!({"prompt": [[1, 2, 3], [4, 5]]})), 5);
    assert_eq!(
        c(json!({"prompt": "hello world", "suffix": "hello world"})),
        4
    );
    // No prompt: OpenAI uses <|endoftext|>, one token.
    assert_eq!(c(json!({})), 1);
}

#[test]
fn embeddings_input_forms() {
    let e = |body: Value| count_input(Operation::Embeddings, "text-embedding-3-small", &obj(body));
    assert_eq!(e(json!({"input": "hello world"})), 2);
    assert_eq!(
        e(json!({"input": ["hello world", "tiktoken is great!"]})),
        8
    );
    assert_eq!(e(json!({"input": [1, 2, 3, 4]})), 4);
    assert_eq!(e(json!({"input": [[1, 2], [3]]})), 3);
    let missing = try_count_input(
        Operation::Embeddings,
        "text-embedding-3-small",
        &obj(json!({"model": "m"})),
    );
    assert_eq!(missing, Err(ShapeError::Missing("input")));
    // The fallback: half a token per byte of `{"model":"m"}` (13 bytes).
    assert_eq!(e(json!({"model": "m"})), 7);
}

// ---------------------------------------------------------------------------------------------
// Responses

fn responses(model: &str, body: Value) -> u64 {
    count_input(Operation::Responses, model, &obj(body))
}

#[test]
fn responses_string_input_is_one_user_message() {
    // Same as the chat message: 3 + 3 + 1 + 2.
    assert_eq!(responses("gpt-4o", json!({"input": "hello world"})), 9);
    let items = json!({"input": [{"role": "user", "content": [{"type": "input_text", "text": "hello world"}]}]});
    assert_eq!(responses("gpt-4o", items), 9);
    let with_instructions = json!({"instructions": "hello world", "input": "hello world"});
    assert_eq!(responses("gpt-4o", with_instructions), 9 + 3 + 1 + 2);
    // Only a stored prompt: nothing visible to count but the priming.
    assert_eq!(responses("gpt-4o", json!({"prompt": {"id": "pmpt_1"}})), 3);
}

#[test]
fn responses_items() {
    let body = json!({"input": [
        {"role": "user", "content": [
            {"type": "input_text", "text": "What is in this image?"},
            {"type": "input_image", "image_url": "https://example.com/x.png", "detail": "low"}]},
        {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{\"q\":\"x\"}"},
        {"type": "function_call_output", "call_id": "c1", "output": "found it"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "thinking"}]},
        {"type": "item_reference", "id": "msg_1"},
    ]});
    let n = responses("gpt-4o", body);
    let floor = 3
        + 3
        + 1
        + o200k("What is in this image?")
        + 85
        + o200k("lookup")
        + o200k("{\"q\":\"x\"}")
        + 3
        + o200k("found it")
        + 3
        + o200k("thinking");
    assert!(n >= floor, "{n} < {floor}");
    assert!(n <= floor + 30, "{n}");
}

#[test]
fn responses_tools_and_schema() {
    let base = responses("gpt-4.1", json!({"input": "hi"}));
    let tool = json!({"type": "function", "name": "f", "description": "does f", "parameters": {"type": "object"}});
    let with_tools = responses("gpt-4.1", json!({"input": "hi", "tools": [tool.clone()]}));
    assert_eq!(with_tools - base, 10 + o200k(&tool.to_string()) + 12);
    let format = json!({"type": "json_schema", "name": "a", "schema": {"type": "object"}});
    let with_schema = responses(
        "gpt-4.1",
        json!({"input": "hi", "text": {"format": format.clone()}}),
    );
    assert_eq!(with_schema - base, o200k(&format.to_string()));
    let bad = try_count_input(Operation::Responses, "gpt-4.1", &obj(json!({"input": 5})));
    assert!(matches!(bad, Err(ShapeError::Type { field: "input", .. })));
}

// ---------------------------------------------------------------------------------------------
// Anthropic Messages and count_tokens

fn messages(body: Value) -> u64 {
    count_input(Operation::Messages, "claude-sonnet-4-5", &obj(body))
}

fn approx(text: &str) -> u64 {
    count_text(Encoding::Approximate, text)
}

#[test]
fn anthropic_text_and_system() {
    let body =
        json!({"max_tokens": 100, "messages": [{"role": "user", "content": "Hello, Claude"}]});
    // 7 (request) + 4 (message) + role + text.
    assert_eq!(
        messages(body.clone()),
        11 + approx("user") + approx("Hello, Claude")
    );
    assert_eq!(
        count_input(
            Operation::CountTokens,
            "claude-sonnet-4-5",
            &obj(body.clone())
        ),
        messages(body)
    );
    let with_system = json!({"system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello, Claude"}]}]});
    assert_eq!(
        messages(with_system),
        11 + 4 + approx("Be brief.") + approx("user") + approx("Hello, Claude")
    );
}

#[test]
fn anthropic_blocks() {
    let input = json!({"city": "Paris"});
    let body = json!({"messages": [
        {"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            {"type": "text", "text": "What is this?"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Let me look.", "signature": "sig"},
            {"type": "tool_use", "id": "tu_1", "name": "weather", "input": input.clone()}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "tu_1", "content": [{"type": "text", "text": "18°C"}]},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "A short note."}, "title": "Note"}]},
    ]});
    let want = 7
        + 3 * 4
        + approx("user") * 2
        + approx("assistant")
        + 4_800
        + approx("What is this?")
        + approx("Let me look.")
        + 8
        + approx("weather")
        + approx(&input.to_string())
        + 4
        + approx("18°C")
        + approx("Note")
        + approx("A short note.");
    assert_eq!(messages(body), want);
}

#[test]
fn anthropic_tools_add_the_tool_use_system_prompt() {
    let base = json!({"messages": [{"role": "user", "content": "hi"}]});
    let tool = json!({"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}});
    let mut with_tool = base.clone();
    with_tool["tools"] = json!([tool.clone()]);
    assert_eq!(
        messages(with_tool) - messages(base.clone()),
        530 + 10 + approx(&tool.to_string())
    );
    let server = json!({"type": "bash_20250124", "name": "bash"});
    let mut with_server = base.clone();
    with_server["tools"] = json!([server.clone()]);
    assert_eq!(
        messages(with_server) - messages(base),
        530 + 10 + approx(&server.to_string()) + 1_300
    );
}

#[test]
fn anthropic_dialect_to_an_openai_model_uses_its_encoding() {
    // A Messages request routed to gpt-4o: counted with o200k (and OpenAI image prices).
    let body = obj(json!({"messages": [{"role": "user", "content": "hello world"}]}));
    assert_eq!(
        count_input(Operation::Messages, "gpt-4o", &body),
        11 + o200k("user") + 2
    );
}

// ---------------------------------------------------------------------------------------------
// Output caps

#[test]
fn output_caps() {
    let cap = |op, v: Value| requested_output_cap(op, &obj(v));
    assert_eq!(
        cap(
            Operation::ChatCompletions,
            json!({"max_completion_tokens": 300, "max_tokens": 5})
        ),
        Some(300)
    );
    assert_eq!(
        cap(Operation::ChatCompletions, json!({"max_tokens": 5})),
        Some(5)
    );
    assert_eq!(cap(Operation::ChatCompletions, json!({})), None);
    assert_eq!(
        cap(Operation::Completions, json!({"max_tokens": 16})),
        Some(16)
    );
    assert_eq!(cap(Operation::Completions, json!({})), None);
    assert_eq!(
        cap(Operation::Responses, json!({"max_output_tokens": 64})),
        Some(64)
    );
    assert_eq!(
        cap(Operation::Messages, json!({"max_tokens": 1024})),
        Some(1024)
    );
    assert_eq!(
        cap(Operation::CountTokens, json!({"max_tokens": 1024})),
        None
    );
    assert_eq!(cap(Operation::Embeddings, json!({"max_tokens": 1})), None);
    assert_eq!(cap(Operation::Messages, json!({"max_tokens": 0})), None);
    assert_eq!(
        cap(Operation::Messages, json!({"max_tokens": "1024"})),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// Malformed bodies and garbage

const OPS: [Operation; 7] = Operation::ALL;

const MODELS: [&str; 4] = ["gpt-4o", "gpt-4", "claude-opus-4-1", "gpt-4o-mini"];

#[test]
fn malformed_bodies_never_panic_and_are_estimated() {
    let bodies = [
        json!({}),
        json!({"messages": null}),
        json!({"messages": {"role": "user"}}),
        json!({"messages": [null, 1, "text", [], {"content": {"nested": [1, 2]}}]}),
        json!({"messages": [{"role": 5, "content": [null, 3, {"type": 9}, {"type": "image_url"},
            {"type": "input_audio"}, {"type": "file"}, {"type": "text", "text": 4}]}]}),
        json!({"messages": [{"role": "assistant", "tool_calls": "x", "function_call": 3}]}),
        json!({"messages": [{"role": "user", "content": [{"type": "document", "source": 5},
            {"type": "document", "source": {"type": "base64", "data": "%%%"}},
            {"type": "tool_result", "content": {"a": 1}}, {"type": "redacted_thinking", "data": 7}]}]}),
        json!({"input": {"a": 1}, "prompt": {"b": 2}, "tools": "none", "system": 3}),
        json!({"input": [null, {"type": "reasoning", "encrypted_content": 5}, {"type": "function_call"}]}),
        json!({"tools": [null, 1, {"type": 2}], "functions": {}, "response_format": [], "text": "x"}),
    ];
    for body in bodies {
        let body = obj(body);
        for op in OPS {
            for model in MODELS {
                let n = count_input(op, model, &body);
                let _ = try_count_input(op, model, &body);
                // Only `Models` and bodies that are nearly empty may count nothing.
                if op != Operation::Models && body.len() > 1 {
                    assert!(n > 0, "{op:?} {model} {body:?}");
                }
            }
        }
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

/// Keys and values that the counters look for, mixed with garbage, so random bodies reach deep
/// into the walkers.
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
    "input",
    "instructions",
    "prompt",
    "tools",
    "system",
    "source",
    "output",
    "summary",
    "encrypted_content",
    "thinking",
    "input_schema",
    "json_schema",
    "response_format",
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
    "low",
    "high",
    "wav",
    "mp3",
    "user",
    "assistant",
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
];

fn random_value(rng: &mut Rng, depth: u32) -> Value {
    let leaf = depth >= 5 || rng.below(3) == 0;
    match if leaf { rng.below(5) } else { 5 + rng.below(2) } {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => json!(rng.next() as i64 >> rng.below(64)),
        3 => json!((rng.next() as f64) / 7.0 - 1e18),
        4 => {
            let mut s = rng.pick(STRINGS).to_string();
            if rng.below(4) == 0 {
                s = s.repeat(1 + rng.below(40) as usize);
            }
            Value::String(s)
        }
        5 => Value::Array(
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
fn random_garbage_never_panics() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for _ in 0..1_500 {
        let body = match random_value(&mut rng, 0) {
            Value::Object(m) => m,
            other => {
                let mut m = Map::new();
                m.insert(rng.pick(KEYS).to_string(), other);
                m
            }
        };
        let op = OPS[rng.below(OPS.len() as u64) as usize];
        let model = MODELS[rng.below(MODELS.len() as u64) as usize];
        let _ = count_input(op, model, &body);
        let _ = requested_output_cap(op, &body);
    }
}

#[test]
fn encoding_table_is_public() {
    assert_eq!(encoding_for_model("openai/gpt-5-mini"), Encoding::O200kBase);
    assert_eq!(encoding_for_model("gpt-4-turbo"), Encoding::Cl100kBase);
    assert_eq!(
        encoding_for_model("gemini-2.5-flash"),
        Encoding::Approximate
    );
    assert_eq!(Encoding::O200kBase.name(), "o200k_base");
}
