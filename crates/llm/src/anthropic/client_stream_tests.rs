use super::*;
use crate::hub;
use serde_json::json;

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    hub::chunk(
        "chatcmpl-123",
        1_700_000_000,
        "gpt-4o-2024-08-06",
        delta,
        finish,
    )
}

/// Feeds chunks, then finishes with `usage`; returns every event.
fn run(stream: &mut HubToAnthropicStream, chunks: &[Value], usage: &Usage) -> Vec<Event> {
    let mut out = Vec::new();
    for c in chunks {
        out.extend(stream.on_chunk(c));
    }
    out.extend(stream.finish(usage));
    out
}

/// Every event's data must repeat its name as `type`, as Anthropic's stream does.
fn assert_types_match(events: &[Event]) {
    for (name, data) in events {
        assert_eq!(data["type"], *name);
    }
}

/// An OpenAI-style stream: text, then one tool call whose arguments come in pieces, the finish
/// chunk, then the usage chunk.
fn text_then_tool_call() -> Vec<Value> {
    vec![
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "Let me "}), None),
        chunk(json!({"content": "check."}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_Xy9", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"ci"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "ty\":\"Oslo\"}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        hub::usage_chunk(
            "chatcmpl-123",
            1_700_000_000,
            "gpt-4o-2024-08-06",
            &Usage::new(0, 0),
        ),
    ]
}

#[test]
fn text_then_tool_call_stream() {
    let mut s = HubToAnthropicStream::new("claude-sonnet-4-5");
    let usage = Usage {
        input: 900,
        cached_input: 800,
        output: 31,
        ..Usage::default()
    }
    .with_total();
    let events = run(&mut s, &text_then_tool_call(), &usage);
    assert_types_match(&events);
    let expected: Vec<Event> = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {
                "id": "msg_chatcmpl-123", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}
            }}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "check."}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {
                "type": "tool_use", "id": "call_Xy9", "name": "get_weather", "input": {}
            }}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"ci"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "ty\":\"Oslo\"}"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                "usage": {"input_tokens": 100, "output_tokens": 31, "cache_read_input_tokens": 800, "cache_creation_input_tokens": 0}
            }),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    assert_eq!(events, expected);
}

#[test]
fn usage_chunk_is_absorbed() {
    let mut s = HubToAnthropicStream::new("m");
    s.on_chunk(&chunk(json!({"content": "x"}), None));
    let usage_chunk = hub::usage_chunk("chatcmpl-123", 1, "m", &Usage::new(5, 6));
    assert!(s.on_chunk(&usage_chunk).is_empty());
}

#[test]
fn parallel_tool_calls_then_text_each_get_a_block() {
    let mut s = HubToAnthropicStream::new("m");
    let call = |index: u64, id: &str, name: &str| {
        chunk(
            json!({"tool_calls": [{"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
            None,
        )
    };
    let args = |index: u64, piece: &str| {
        chunk(
            json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
            None,
        )
    };
    let events = run(
        &mut s,
        &[
            call(0, "call_1", "a"),
            args(0, "{}"),
            call(1, "call_2", "b"),
            args(1, "{\"x\":1}"),
            chunk(json!({"content": "Done."}), Some("stop")),
        ],
        &Usage::new(3, 4),
    );
    assert_types_match(&events);
    let summary: Vec<(String, Value)> = events
        .iter()
        .map(|(name, d)| (name.to_string(), d["index"].clone()))
        .collect();
    let expect = |name: &str, index: Value| (name.to_string(), index);
    assert_eq!(
        summary,
        vec![
            expect("message_start", Value::Null),
            expect("content_block_start", json!(0)),
            expect("content_block_delta", json!(0)),
            expect("content_block_stop", json!(0)),
            expect("content_block_start", json!(1)),
            expect("content_block_delta", json!(1)),
            expect("content_block_stop", json!(1)),
            expect("content_block_start", json!(2)),
            expect("content_block_delta", json!(2)),
            expect("content_block_stop", json!(2)),
            expect("message_delta", Value::Null),
            expect("message_stop", Value::Null),
        ]
    );
    assert_eq!(events[4].1["content_block"]["name"], "b");
    assert_eq!(
        events[7].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    assert_eq!(events[10].1["delta"]["stop_reason"], "end_turn");
}

#[test]
fn one_chunk_carrying_a_whole_call_and_a_finish() {
    // Some OpenAI-compatible servers send a whole tool call in one chunk.
    let mut s = HubToAnthropicStream::new("m");
    let events = run(
        &mut s,
        &[chunk(
            json!({"role": "assistant", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":true}"}}
            ]}),
            Some("tool_calls"),
        )],
        &Usage::default(),
    );
    let names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[2].1["delta"]["partial_json"], "{\"a\":true}");
    assert_eq!(events[4].1["delta"]["stop_reason"], "tool_use");
}

#[test]
fn finish_reasons_map_to_stop_reasons() {
    for (finish, stop) in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ] {
        let mut s = HubToAnthropicStream::new("m");
        let events = run(
            &mut s,
            &[chunk(json!({"content": "x"}), Some(finish))],
            &Usage::default(),
        );
        let delta = events.iter().find(|(n, _)| *n == "message_delta").unwrap();
        assert_eq!(delta.1["delta"]["stop_reason"], stop, "{finish}");
    }
}

#[test]
fn empty_stream_is_still_a_whole_message() {
    let mut s = HubToAnthropicStream::new("");
    let events = s.finish(&Usage::new(7, 0));
    let names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["message_start", "message_delta", "message_stop"]);
    assert_eq!(events[1].1["usage"]["input_tokens"], 7);
    assert_eq!(events[1].1["delta"]["stop_reason"], "end_turn");
    // Finishing again, or feeding chunks afterwards, emits nothing more.
    assert!(s.finish(&Usage::default()).is_empty());
    assert!(s
        .on_chunk(&chunk(json!({"content": "late"}), None))
        .is_empty());
}

#[test]
fn model_from_chunks_when_none_given() {
    let mut s = HubToAnthropicStream::new("");
    let events = s.on_chunk(&chunk(json!({"role": "assistant"}), None));
    assert_eq!(events[0].1["message"]["model"], "gpt-4o-2024-08-06");
    assert_eq!(events.len(), 1, "an empty delta opens no block");
}

#[test]
fn error_event_shape() {
    assert_eq!(
        HubToAnthropicStream::error_event("overloaded_error", "Overloaded"),
        (
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        )
    );
}

#[test]
fn calls_sharing_index_zero_are_told_apart_by_id() {
    let mut s = HubToAnthropicStream::new("m");
    let whole = |id: &str, name: &str, args: &str| {
        chunk(
            json!({"tool_calls": [{"index": 0, "id": id, "type": "function", "function": {"name": name, "arguments": args}}]}),
            None,
        )
    };
    let events = run(
        &mut s,
        &[
            whole("call_a", "f", "{\"n\":1}"),
            // A continuation without an id belongs to the latest call with that index.
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": ""}}]}),
                None,
            ),
            whole("call_b", "g", "{\"n\":2}"),
        ],
        &Usage::default(),
    );
    let starts: Vec<&Value> = events
        .iter()
        .filter(|(n, _)| *n == "content_block_start")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(starts.len(), 2);
    assert_eq!(
        (
            starts[0]["index"].clone(),
            starts[0]["content_block"]["id"].clone()
        ),
        (json!(0), json!("call_a"))
    );
    assert_eq!(
        (
            starts[1]["index"].clone(),
            starts[1]["content_block"]["id"].clone()
        ),
        (json!(1), json!("call_b"))
    );
    let pieces: Vec<(Value, Value)> = events
        .iter()
        .filter(|(n, _)| *n == "content_block_delta")
        .map(|(_, d)| (d["index"].clone(), d["delta"]["partial_json"].clone()))
        .collect();
    assert_eq!(
        pieces,
        vec![
            (json!(0), json!("{\"n\":1}")),
            (json!(1), json!("{\"n\":2}"))
        ]
    );
}
