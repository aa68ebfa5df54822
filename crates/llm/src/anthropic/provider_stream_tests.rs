use super::*;
use serde_json::json;

/// Feeds events in order and collects every chunk.
fn run(stream: &mut AnthropicToHubStream, events: &[(&str, Value)]) -> Vec<Value> {
    let mut out = Vec::new();
    for (name, data) in events {
        out.extend(stream.on_event(name, data).unwrap());
    }
    out
}

/// The deltas of one-choice chunks, and the finish reasons, for compact assertions.
fn deltas(chunks: &[Value]) -> Vec<(Value, Value)> {
    chunks
        .iter()
        .filter(|c| c["choices"].as_array().is_some_and(|a| !a.is_empty()))
        .map(|c| {
            (
                c["choices"][0]["delta"].clone(),
                c["choices"][0]["finish_reason"].clone(),
            )
        })
        .collect()
}

/// The event sequence of a streamed tool-use answer, shaped as Anthropic's streaming reference
/// shows it: message_start, ping, a text block, a tool_use block whose input arrives as
/// input_json_delta pieces, message_delta with the stop reason and cumulative usage, message_stop.
fn tool_use_stream() -> Vec<(&'static str, Value)> {
    vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {
                "id": "msg_014p7gG3wDgGV9EUtLvnow3U", "type": "message", "role": "assistant",
                "model": "claude-sonnet-4-5-20250929", "stop_sequence": null, "stop_reason": null,
                "content": [],
                "usage": {"input_tokens": 472, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2048, "output_tokens": 2}
            }}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Okay, let's check"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " the weather:"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {
                "type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}
            }}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"location\":"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": " \"San Fra"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "ncisco, CA\"}"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 89}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]
}

#[test]
fn full_tool_use_stream() {
    let mut s = AnthropicToHubStream::new();
    let chunks = run(&mut s, &tool_use_stream());
    for c in &chunks {
        assert_eq!(c["id"], "msg_014p7gG3wDgGV9EUtLvnow3U");
        assert_eq!(c["model"], "claude-sonnet-4-5-20250929");
        assert_eq!(c["object"], "chat.completion.chunk");
    }
    assert_eq!(
        deltas(&chunks),
        vec![
            (json!({"role": "assistant", "content": ""}), Value::Null),
            (json!({"content": "Okay, let's check"}), Value::Null),
            (json!({"content": " the weather:"}), Value::Null),
            (
                json!({"tool_calls": [{"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                    "function": {"name": "get_weather", "arguments": ""}}]}),
                Value::Null
            ),
            (
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"location\":"}}]}),
                Value::Null
            ),
            (
                json!({"tool_calls": [{"index": 0, "function": {"arguments": " \"San Fra"}}]}),
                Value::Null
            ),
            (
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "ncisco, CA\"}"}}]}),
                Value::Null
            ),
            (json!({}), json!("tool_calls")),
        ]
    );
    // The arguments pieces join into the whole input.
    let args: String = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0/function/arguments"))
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args, "{\"location\": \"San Francisco, CA\"}");
    // Last chunk: usage, with the cache read counted in the prompt and the final output count.
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 472 + 2048);
    assert_eq!(last["usage"]["completion_tokens"], 89);
    assert_eq!(
        last["usage"]["prompt_tokens_details"]["cached_tokens"],
        2048
    );
    assert!(s.done());
    assert_eq!(s.usage(), anthropic_usage(472, 2048, 0, 89));
}

#[test]
fn usage_so_far_when_cut_short() {
    let mut s = AnthropicToHubStream::new();
    let events = tool_use_stream();
    run(&mut s, &events[..5]);
    assert!(!s.done());
    assert_eq!(s.usage(), anthropic_usage(472, 2048, 0, 2));
}

#[test]
fn message_delta_may_repeat_input_and_cache_counts() {
    let mut s = AnthropicToHubStream::new();
    run(
        &mut s,
        &[
            (
                "message_start",
                json!({"message": {"id": "msg_1", "model": "claude-haiku-4-5",
                "usage": {"input_tokens": 10, "output_tokens": 1}}}),
            ),
            (
                "message_delta",
                json!({"delta": {"stop_reason": "end_turn"},
                "usage": {"input_tokens": 12, "cache_creation_input_tokens": 3000, "cache_read_input_tokens": 0, "output_tokens": 40}}),
            ),
        ],
    );
    assert_eq!(s.usage(), anthropic_usage(12, 0, 3000, 40));
    assert_eq!(s.usage().cache_creation, 3000);
    assert_eq!(s.usage().input, 3012);
}

#[test]
fn thinking_blocks_are_skipped_and_tool_indexes_count_tools_only() {
    let mut s = AnthropicToHubStream::new();
    let chunks = run(
        &mut s,
        &[
            (
                "message_start",
                json!({"message": {"id": "msg_2", "model": "claude-opus-4-1", "usage": {"input_tokens": 5, "output_tokens": 0}}}),
            ),
            (
                "content_block_start",
                json!({"index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
            ),
            (
                "content_block_delta",
                json!({"index": 0, "delta": {"type": "thinking_delta", "thinking": "Two lookups needed."}}),
            ),
            (
                "content_block_delta",
                json!({"index": 0, "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}}),
            ),
            ("content_block_stop", json!({"index": 0})),
            (
                "content_block_start",
                json!({"index": 1, "content_block": {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}}}),
            ),
            (
                "content_block_delta",
                json!({"index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
            ),
            ("content_block_stop", json!({"index": 1})),
            (
                "content_block_start",
                json!({"index": 2, "content_block": {"type": "tool_use", "id": "toolu_b", "name": "g", "input": {}}}),
            ),
            (
                "content_block_delta",
                json!({"index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"q\":1}"}}),
            ),
            ("content_block_stop", json!({"index": 2})),
            (
                "message_delta",
                json!({"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}}),
            ),
            ("message_stop", json!({})),
        ],
    );
    assert_eq!(
        deltas(&chunks),
        vec![
            (json!({"role": "assistant", "content": ""}), Value::Null),
            (
                json!({"tool_calls": [{"index": 0, "id": "toolu_a", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
                Value::Null
            ),
            (
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
                Value::Null
            ),
            (
                json!({"tool_calls": [{"index": 1, "id": "toolu_b", "type": "function", "function": {"name": "g", "arguments": ""}}]}),
                Value::Null
            ),
            (
                json!({"tool_calls": [{"index": 1, "function": {"arguments": "{\"q\":1}"}}]}),
                Value::Null
            ),
            (json!({}), json!("tool_calls")),
        ]
    );
}

#[test]
fn stop_reasons_in_stream() {
    for (reason, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ] {
        let mut s = AnthropicToHubStream::new();
        let chunks = s
            .on_event(
                "message_delta",
                &json!({"delta": {"stop_reason": reason}, "usage": {"output_tokens": 1}}),
            )
            .unwrap();
        assert_eq!(chunks[0]["choices"][0]["finish_reason"], finish, "{reason}");
    }
}

#[test]
fn message_stop_without_message_delta_still_finishes() {
    let mut s = AnthropicToHubStream::new();
    let chunks = run(
        &mut s,
        &[
            (
                "message_start",
                json!({"message": {"id": "msg_3", "model": "c", "usage": {"input_tokens": 1, "output_tokens": 1}}}),
            ),
            ("message_stop", json!({})),
        ],
    );
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[1]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[2]["choices"], json!([]));
    assert!(s.done());
}

#[test]
fn event_type_from_data_when_name_is_missing() {
    let mut s = AnthropicToHubStream::new();
    let chunks = s
        .on_event("", &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}))
        .unwrap();
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"content": "hi"}));
}

#[test]
fn error_event_is_a_response_error() {
    let mut s = AnthropicToHubStream::new();
    let err = s.on_event(
        "error",
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    assert_eq!(
        err,
        Err(TranslateError::Response(
            "overloaded_error: Overloaded".into()
        ))
    );
    assert!(!s.done());
}

#[test]
fn unknown_and_ping_events_emit_nothing() {
    let mut s = AnthropicToHubStream::default();
    assert!(s
        .on_event("ping", &json!({"type": "ping"}))
        .unwrap()
        .is_empty());
    assert!(s.on_event("future_event", &json!({})).unwrap().is_empty());
    let citations = json!({"index": 0, "delta": {"type": "citations_delta", "citation": {}}});
    assert!(s
        .on_event("content_block_delta", &citations)
        .unwrap()
        .is_empty());
}
