//! Round trips through the hub: what an Anthropic body says survives hub and back, and the
//! other way round.

use serde_json::{json, Value};

use super::*;
use crate::Usage;

/// An Anthropic request already in the forms translation produces (a lone text as a string,
/// tool results as strings, compact sorted inputs), so a faithful round trip gives it back exactly.
fn anthropic_request() -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1000,
        "system": "You are a calculator.",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is on this receipt, doubled?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "UklGRg=="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/receipt.jpg"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Computing."},
                {"type": "tool_use", "id": "toolu_1", "name": "multiply", "input": {"a": 21.5, "b": 2}},
                {"type": "tool_use", "id": "toolu_2", "name": "currency", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "43"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "EUR"},
                {"type": "text", "text": "Thanks, and in words?"}
            ]},
            {"role": "assistant", "content": "Forty-three euros."},
            {"role": "user", "content": "Great."}
        ],
        "tools": [
            {"name": "multiply", "description": "a × b", "input_schema": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}},
            {"name": "currency", "input_schema": {"type": "object", "properties": {}}}
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["STOP"],
        "temperature": 0.0,
        "top_p": 0.5,
        "stream": true,
        "metadata": {"user_id": "u-1"}
    })
}

#[test]
fn anthropic_request_survives_the_hub() {
    let original = anthropic_request();
    let hub = hub_request_from_messages(&original).unwrap();
    assert_eq!(messages_request(&hub).unwrap(), original);
}

#[test]
fn anthropic_request_with_tool_choice_variants_survives() {
    for choice in [
        json!({"type": "auto"}),
        json!({"type": "none"}),
        json!({"type": "tool", "name": "multiply"}),
        json!({"type": "tool", "name": "multiply", "disable_parallel_tool_use": true}),
    ] {
        let mut original = anthropic_request();
        original["tool_choice"] = choice.clone();
        let back = messages_request(&hub_request_from_messages(&original).unwrap()).unwrap();
        assert_eq!(back["tool_choice"], choice);
    }
}

#[test]
fn hub_request_survives_anthropic() {
    let original = json!({
        "model": "gpt-4o",
        "max_tokens": 300,
        "messages": [
            {"role": "system", "content": "Be exact."},
            {"role": "user", "content": "Weather in Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 25°C"},
            {"role": "user", "content": [
                {"type": "text", "text": "And here?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            ]}
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "parallel_tool_calls": false,
        "stop": ["\n\n"],
        "temperature": 0.7,
        "stream": true,
        "stream_options": {"include_usage": true},
        "user": "alice"
    });
    let anthropic = messages_request(&original).unwrap();
    assert_eq!(hub_request_from_messages(&anthropic).unwrap(), original);
}

#[test]
fn anthropic_message_survives_the_hub() {
    let original = json!({
        "id": "msg_01Aq9w938a90dw8q",
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-4-1-20250805",
        "content": [
            {"type": "text", "text": "Checking the stock."},
            {"type": "tool_use", "id": "toolu_01", "name": "stock", "input": {"sku": "A-1", "warehouses": ["north", "south"]}}
        ],
        "stop_reason": "tool_use",
        "stop_sequence": null,
        "usage": {"input_tokens": 50, "output_tokens": 70, "cache_read_input_tokens": 4000, "cache_creation_input_tokens": 600}
    });
    let (hub, usage) = hub_response(&original).unwrap();
    assert_eq!(message_from_hub(&hub, &usage).unwrap(), original);
    // The hub's own usage agrees with the normalised one.
    assert_eq!(Usage::from_openai(&hub["usage"]).input, usage.input);
}

/// Accumulates Anthropic stream events into the message they describe.
fn accumulate_anthropic(events: &[(&str, Value)]) -> Value {
    let mut blocks: Vec<Value> = Vec::new();
    let mut json_parts: Vec<String> = Vec::new();
    let mut message = json!({});
    for (name, data) in events {
        match *name {
            "message_start" => message = data["message"].clone(),
            "content_block_start" => {
                blocks.push(data["content_block"].clone());
                json_parts.push(String::new());
            }
            "content_block_delta" => {
                let i = data["index"].as_u64().unwrap() as usize;
                let delta = &data["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        let text = blocks[i]["text"].as_str().unwrap().to_string();
                        blocks[i]["text"] = json!(text + delta["text"].as_str().unwrap());
                    }
                    "input_json_delta" => {
                        json_parts[i].push_str(delta["partial_json"].as_str().unwrap())
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let i = data["index"].as_u64().unwrap() as usize;
                if blocks[i]["type"] == "tool_use" && !json_parts[i].is_empty() {
                    blocks[i]["input"] = serde_json::from_str(&json_parts[i]).unwrap();
                }
            }
            "message_delta" => {
                message["stop_reason"] = data["delta"]["stop_reason"].clone();
                message["usage"]["output_tokens"] = data["usage"]["output_tokens"].clone();
            }
            _ => {}
        }
    }
    message["content"] = Value::Array(blocks);
    message
}

#[test]
fn anthropic_stream_survives_the_hub() {
    let text = |i: u64, t: &str| json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": t}});
    let piece = |i: u64, p: &str| json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": p}});
    let original: Vec<(&str, Value)> = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_s1", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 30, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ("ping", json!({"type": "ping"})),
        ("content_block_delta", text(0, "Two ")),
        ("content_block_delta", text(0, "lookups.")),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}}}),
        ),
        ("content_block_delta", piece(1, "{\"q\":")),
        ("content_block_delta", piece(1, "\"x\"}")),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_b", "name": "g", "input": {}}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 2}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 25}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let mut to_hub = AnthropicToHubStream::new();
    let mut to_anthropic = HubToAnthropicStream::new("claude-sonnet-4-5");
    let mut replayed = Vec::new();
    for (name, data) in &original {
        for chunk in to_hub.on_event(name, data).unwrap() {
            replayed.extend(to_anthropic.on_chunk(&chunk));
        }
    }
    assert!(to_hub.done());
    replayed.extend(to_anthropic.finish(&to_hub.usage()));
    let mut expected = accumulate_anthropic(&original);
    let got = accumulate_anthropic(&replayed);
    // message_start usage is only known at the end when re-streaming; the final counts match.
    expected["usage"]["input_tokens"] = got["usage"]["input_tokens"].clone();
    assert_eq!(got, expected);
    assert_eq!(
        got["content"][2],
        json!({"type": "tool_use", "id": "toolu_b", "name": "g", "input": {}})
    );
    let final_delta = replayed
        .iter()
        .rev()
        .find(|(n, _)| *n == "message_delta")
        .unwrap();
    assert_eq!(final_delta.1["usage"]["input_tokens"], 30);
    assert_eq!(final_delta.1["usage"]["output_tokens"], 25);
}

#[test]
fn hub_stream_survives_anthropic() {
    let chunk =
        |delta: Value, finish: Option<&str>| crate::hub::chunk("msg_h", 1, "m", delta, finish);
    let original = vec![
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "Hi"}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":1}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
    ];
    let usage = Usage {
        input: 20,
        cached_input: 5,
        output: 9,
        ..Usage::default()
    }
    .with_total();
    let mut to_anthropic = HubToAnthropicStream::new("m");
    let mut to_hub = AnthropicToHubStream::new();
    let mut events = Vec::new();
    for c in &original {
        events.extend(to_anthropic.on_chunk(c));
    }
    events.extend(to_anthropic.finish(&usage));
    let mut replayed = Vec::new();
    for (name, data) in &events {
        replayed.extend(to_hub.on_event(name, data).unwrap());
    }
    let deltas = |chunks: &[Value]| -> Vec<Value> {
        chunks
            .iter()
            .filter(|c| c["choices"].as_array().is_some_and(|a| !a.is_empty()))
            .map(|c| c["choices"][0].clone())
            .collect()
    };
    assert_eq!(deltas(&replayed), deltas(&original));
    assert_eq!(to_hub.usage(), usage);
}
