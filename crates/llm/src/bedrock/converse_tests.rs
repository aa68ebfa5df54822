//! Tests of the Converse translation, with payloads shaped after the Bedrock API reference.

use super::*;
use crate::bedrock::eventstream::{encode, Decoder};

fn unsupported(hub: Value) -> String {
    match converse_request(&hub) {
        Err(TranslateError::Unsupported(what)) => what,
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

fn request_error(hub: Value) -> String {
    match converse_request(&hub) {
        Err(TranslateError::Request(what)) => what,
        other => panic!("expected Request error, got {other:?}"),
    }
}

#[test]
fn paths_encode_the_model_id_as_one_segment() {
    assert_eq!(
        converse_path("anthropic.claude-3-haiku-20240307-v1:0", false),
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
    assert_eq!(
        converse_path(
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            true
        ),
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
    );
    assert_eq!(
        converse_path("amazon.nova-lite-v1:0", true),
        "/model/amazon.nova-lite-v1%3A0/converse-stream"
    );
}

#[test]
fn system_prompt_multi_turn_and_sampling() {
    let hub = json!({
        "model": "anthropic.claude-3-haiku-20240307-v1:0",
        "messages": [
            {"role": "system", "content": "You are an app that creates playlists for a radio station."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": "Create a list of 3 pop songs."},
            {"role": "assistant", "content": "Here is a list of 3 pop songs by artists from the United Kingdom: ..."},
            {"role": "user", "content": [{"type": "text", "text": "Make sure the songs are by artists"}, {"type": "text", "text": " from the United States."}]}
        ],
        "max_tokens": 512,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": "END",
        "stream": false
    });
    let want = json!({
        "system": [
            {"text": "You are an app that creates playlists for a radio station."},
            {"text": "Answer in English."}
        ],
        "messages": [
            {"role": "user", "content": [{"text": "Create a list of 3 pop songs."}]},
            {"role": "assistant", "content": [{"text": "Here is a list of 3 pop songs by artists from the United Kingdom: ..."}]},
            {"role": "user", "content": [
                {"text": "Make sure the songs are by artists"},
                {"text": " from the United States."}
            ]}
        ],
        "inferenceConfig": {"maxTokens": 512, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]}
    });
    assert_eq!(converse_request(&hub).unwrap(), want);
}

#[test]
fn minimal_request_has_no_optional_sections() {
    let hub = json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]});
    assert_eq!(
        converse_request(&hub).unwrap(),
        json!({"messages": [{"role": "user", "content": [{"text": "Hi"}]}]})
    );
}

#[test]
fn max_completion_tokens_wins_and_stop_arrays_pass() {
    let hub = json!({
        "messages": [{"role": "user", "content": "Hi"}],
        "max_completion_tokens": 100, "max_tokens": 5,
        "stop": ["a", "b"], "temperature": null
    });
    assert_eq!(
        converse_request(&hub).unwrap()["inferenceConfig"],
        json!({"maxTokens": 100, "stopSequences": ["a", "b"]})
    );
}

#[test]
fn same_role_neighbours_merge_and_empty_messages_vanish() {
    let hub = json!({"messages": [
        {"role": "user", "content": "one"},
        {"role": "user", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": "a"},
        {"role": "assistant", "content": null},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "three"}
    ]});
    assert_eq!(
        converse_request(&hub).unwrap()["messages"],
        json!([
            {"role": "user", "content": [{"text": "one"}, {"text": "two"}]},
            {"role": "assistant", "content": [{"text": "a"}, {"text": "b"}]},
            {"role": "user", "content": [{"text": "three"}]}
        ])
    );
}

fn weather_tool() -> Value {
    json!({
        "type": "function",
        "function": {
            "name": "top_song",
            "description": "Get the most popular song played on a radio station.",
            "parameters": {
                "type": "object",
                "properties": {"sign": {"type": "string", "description": "The call sign for the radio station, e.g. WZPZ."}},
                "required": ["sign"]
            }
        }
    })
}

#[test]
fn tools_tool_calls_and_tool_results() {
    let hub = json!({
        "messages": [
            {"role": "user", "content": "What is the most popular song on WZPZ and WKRP?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "type": "function",
                 "function": {"name": "top_song", "arguments": "{\"sign\": \"WZPZ\"}"}},
                {"id": "tooluse_2", "type": "function",
                 "function": {"name": "top_song", "arguments": "{\"sign\":\"WKRP\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "content": "Elemental Hotel by 8 Storey Hike"},
            {"role": "tool", "tool_call_id": "tooluse_2", "content": [{"type": "text", "text": "Ghost Town"}]},
            {"role": "user", "content": "Thanks. Which is longer?"}
        ],
        "tools": [weather_tool()],
        "tool_choice": "auto"
    });
    let want = json!({
        "messages": [
            {"role": "user", "content": [{"text": "What is the most popular song on WZPZ and WKRP?"}]},
            {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "top_song", "input": {"sign": "WZPZ"}}},
                {"toolUse": {"toolUseId": "tooluse_2", "name": "top_song", "input": {"sign": "WKRP"}}}
            ]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "content": [{"text": "Elemental Hotel by 8 Storey Hike"}]}},
                {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "Ghost Town"}]}},
                {"text": "Thanks. Which is longer?"}
            ]}
        ],
        "toolConfig": {
            "tools": [{"toolSpec": {
                "name": "top_song",
                "description": "Get the most popular song played on a radio station.",
                "inputSchema": {"json": {
                    "type": "object",
                    "properties": {"sign": {"type": "string", "description": "The call sign for the radio station, e.g. WZPZ."}},
                    "required": ["sign"]
                }}
            }}],
            "toolChoice": {"auto": {}}
        }
    });
    assert_eq!(converse_request(&hub).unwrap(), want);
}

#[test]
fn assistant_text_comes_before_its_tool_uses_and_empty_arguments_are_an_object() {
    let hub = json!({"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "now", "arguments": ""}}
        ]},
        {"role": "tool", "tool_call_id": "t1", "content": {"time": "12:00"}}
    ], "tools": [{"type": "function", "function": {"name": "now", "description": ""}}]});
    let out = converse_request(&hub).unwrap();
    assert_eq!(
        out["messages"][1]["content"],
        json!([{"text": "Let me look."}, {"toolUse": {"toolUseId": "t1", "name": "now", "input": {}}}])
    );
    assert_eq!(
        out["messages"][2]["content"],
        json!([{"toolResult": {"toolUseId": "t1", "content": [{"json": {"time": "12:00"}}]}}])
    );
    // No parameters: an empty object schema; an empty description is left out.
    assert_eq!(
        out["toolConfig"],
        json!({"tools": [{"toolSpec": {"name": "now", "inputSchema": {"json": {"type": "object", "properties": {}}}}}]})
    );
}

fn with_choice(choice: Value, history_with_tools: bool) -> Value {
    let mut messages = vec![json!({"role": "user", "content": "hi"})];
    if history_with_tools {
        messages.push(json!({"role": "assistant", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "top_song", "arguments": "{}"}}
        ]}));
        messages.push(json!({"role": "tool", "tool_call_id": "t1", "content": "ok"}));
    }
    let mut hub = json!({"messages": messages, "tools": [weather_tool()]});
    if !choice.is_null() {
        hub["tool_choice"] = choice;
    }
    converse_request(&hub).unwrap()
}

#[test]
fn tool_choice_variants() {
    assert_eq!(
        with_choice(json!("required"), false)["toolConfig"]["toolChoice"],
        json!({"any": {}})
    );
    assert_eq!(
        with_choice(
            json!({"type": "function", "function": {"name": "top_song"}}),
            false
        )["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "top_song"}})
    );
    // No choice: Converse's default, no toolChoice sent.
    let none_given = with_choice(Value::Null, false);
    assert!(none_given["toolConfig"]["tools"].is_array());
    assert!(none_given["toolConfig"].get("toolChoice").is_none());
    // "none" removes the tools...
    assert!(with_choice(json!("none"), false)
        .get("toolConfig")
        .is_none());
    // ...unless the conversation holds tool blocks, which Converse refuses without a toolConfig.
    let kept = with_choice(json!("none"), true);
    assert!(kept["toolConfig"]["tools"].is_array());
    assert!(kept["toolConfig"].get("toolChoice").is_none());
    // No tools at all: no toolConfig whatever the choice.
    let hub = json!({"messages": [{"role": "user", "content": "hi"}], "tools": [], "tool_choice": "auto"});
    assert!(converse_request(&hub).unwrap().get("toolConfig").is_none());
    let bad = json!({"messages": [], "tools": [weather_tool()], "tool_choice": "sometimes"});
    assert!(request_error(bad).contains("tool_choice"));
}

#[test]
fn data_url_images_become_image_blocks() {
    let hub = json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklGRg=="}}
    ]}]});
    assert_eq!(
        converse_request(&hub).unwrap()["messages"][0]["content"],
        json!([
            {"text": "What is in these?"},
            {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
            {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}},
            {"image": {"format": "webp", "source": {"bytes": "UklGRg=="}}}
        ])
    );
}

fn image_msg(url: &str) -> Value {
    json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]})
}

#[test]
fn unsupported_images() {
    assert!(unsupported(image_msg("https://example.com/cat.png")).contains("data: URLs"));
    assert!(unsupported(image_msg("data:image/png,rawbytes")).contains("not base64"));
    assert!(unsupported(image_msg("data:image/svg+xml;base64,PHN2Zz4=")).contains("image/svg+xml"));
    assert!(request_error(image_msg("data:image/png;base64")).contains("malformed"));
}

#[test]
fn unsupported_hub_features() {
    let base = |extra: Value| {
        let mut hub = json!({"messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            hub[k] = v.clone();
        }
        hub
    };
    assert_eq!(unsupported(base(json!({"n": 2}))), "n > 1");
    assert!(converse_request(&base(json!({"n": 1}))).is_ok());
    assert_eq!(unsupported(base(json!({"logprobs": true}))), "logprobs");
    assert!(converse_request(&base(json!({"logprobs": false}))).is_ok());
    assert_eq!(
        unsupported(base(
            json!({"response_format": {"type": "json_schema", "json_schema": {}}})
        )),
        "response_format json_schema"
    );
    assert!(converse_request(&base(json!({"response_format": {"type": "text"}}))).is_ok());
    let audio = json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]});
    assert_eq!(unsupported(audio), "content part type input_audio");
    let tool = json!({"messages": [], "tools": [{"type": "custom", "custom": {"name": "x"}}]});
    assert_eq!(unsupported(tool), "tool type custom");
}

#[test]
fn malformed_requests() {
    assert!(request_error(json!({"model": "m"})).contains("messages"));
    assert!(
        request_error(json!({"messages": [{"role": "robot", "content": "x"}]})).contains("robot")
    );
    let call = |args: &str| {
        json!({"messages": [{"role": "assistant", "tool_calls": [
            {"id": "t", "type": "function", "function": {"name": "f", "arguments": args}}
        ]}]})
    };
    assert!(request_error(call("{not json")).contains("not JSON"));
    assert!(request_error(call("[1, 2]")).contains("object"));
    let no_id = json!({"messages": [{"role": "tool", "content": "x"}]});
    assert!(request_error(no_id).contains("tool_call_id"));
    let max = json!({"messages": [], "max_tokens": "ten"});
    assert!(request_error(max).contains("max_tokens"));
    let stop = json!({"messages": [], "stop": 3});
    assert!(request_error(stop).contains("stop"));
    let temp = json!({"messages": [], "temperature": "hot"});
    assert!(request_error(temp).contains("temperature"));
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

#[test]
fn text_response_with_cache_usage() {
    let resp = json!({
        "output": {"message": {"role": "assistant", "content": [
            {"text": "Here is a list of 3 pop songs"},
            {"text": " by artists from the United States."}
        ]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 125, "outputTokens": 60, "totalTokens": 2185,
                  "cacheReadInputTokens": 1500, "cacheWriteInputTokens": 500},
        "metrics": {"latencyMs": 1175}
    });
    let (hub, usage) = converse_response(&resp, "claude-haiku").unwrap();
    assert_eq!(
        usage,
        Usage {
            input: 2125,
            output: 60,
            cached_input: 1500,
            cache_creation: 500,
            reasoning: 0,
            total: 2185
        }
    );
    assert!(hub["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(hub["object"], "chat.completion");
    assert_eq!(hub["model"], "claude-haiku");
    assert_eq!(
        hub["choices"][0]["message"],
        json!({"role": "assistant", "content": "Here is a list of 3 pop songs by artists from the United States."})
    );
    assert_eq!(hub["choices"][0]["finish_reason"], "stop");
    assert_eq!(hub["usage"]["prompt_tokens"], 2125);
    assert_eq!(hub["usage"]["completion_tokens"], 60);
    assert_eq!(hub["usage"]["total_tokens"], 2185);
    assert_eq!(hub["usage"]["prompt_tokens_details"]["cached_tokens"], 1500);
}

#[test]
fn usage_without_cache_fields() {
    let resp = json!({
        "output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 10, "outputTokens": 3, "totalTokens": 13}
    });
    let (_, usage) = converse_response(&resp, "m").unwrap();
    assert_eq!(usage, Usage::new(10, 3));
}

#[test]
fn tool_use_response() {
    let resp = json!({
        "output": {"message": {"role": "assistant", "content": [
            {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "top_song", "input": {"sign": "WZPZ"}}}
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 375, "outputTokens": 54, "totalTokens": 429}
    });
    let (hub, _) = converse_response(&resp, "m").unwrap();
    assert_eq!(
        hub["choices"][0]["message"],
        json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "type": "function",
            "function": {"name": "top_song", "arguments": "{\"sign\":\"WZPZ\"}"}
        }]})
    );
    assert_eq!(hub["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn text_and_tool_use_keep_the_text_and_drop_reasoning() {
    let resp = json!({
        "output": {"message": {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "thinking", "signature": "sig"}}},
            {"text": "Checking."},
            {"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}
        ]}},
        "stopReason": "tool_use"
    });
    let (hub, usage) = converse_response(&resp, "m").unwrap();
    let message = &hub["choices"][0]["message"];
    assert_eq!(message["content"], "Checking.");
    assert_eq!(message["tool_calls"][0]["function"]["arguments"], "{}");
    assert_eq!(usage, Usage::default());
}

#[test]
fn tool_call_round_trip() {
    // A Converse tool use, through the hub and back, is the same block.
    let tool_use =
        json!({"toolUseId": "t9", "name": "top_song", "input": {"sign": "WZPZ", "n": [1, 2]}});
    let resp = json!({
        "output": {"message": {"role": "assistant", "content": [{"toolUse": tool_use}]}},
        "stopReason": "tool_use"
    });
    let (hub, _) = converse_response(&resp, "m").unwrap();
    let assistant = hub["choices"][0]["message"].clone();
    let next = json!({"messages": [
        {"role": "user", "content": "q"},
        assistant,
        {"role": "tool", "tool_call_id": "t9", "content": "Elemental Hotel"}
    ], "tools": [weather_tool()]});
    let out = converse_request(&next).unwrap();
    assert_eq!(
        out["messages"][1]["content"],
        json!([{"toolUse": tool_use}])
    );
    assert_eq!(
        out["messages"][2]["content"][0]["toolResult"]["toolUseId"],
        "t9"
    );
}

#[test]
fn stop_reasons() {
    for (reason, want) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("something_new", "stop"),
    ] {
        let resp = json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "x"}]}},
            "stopReason": reason
        });
        let (hub, _) = converse_response(&resp, "m").unwrap();
        assert_eq!(hub["choices"][0]["finish_reason"], want, "{reason}");
    }
}

#[test]
fn malformed_responses() {
    let err = converse_response(&json!({"stopReason": "end_turn"}), "m").unwrap_err();
    assert!(matches!(err, TranslateError::Response(_)));
    let no_id = json!({"output": {"message": {"content": [{"toolUse": {"name": "f"}}]}}});
    assert_eq!(
        converse_response(&no_id, "m").unwrap_err(),
        TranslateError::Response("toolUse without `toolUseId`".into())
    );
}

#[test]
fn ids_are_distinct() {
    let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_id()).collect();
    assert_eq!(ids.len(), 1000);
}

#[test]
fn error_messages() {
    assert_eq!(
        error_message(br#"{"message":"The security token included in the request is invalid."}"#),
        "The security token included in the request is invalid."
    );
    assert_eq!(
        error_message(br#"{"Message":"User is not authorized"}"#),
        "User is not authorized"
    );
    assert_eq!(
        error_message(b"<html>Bad Gateway</html>"),
        "<html>Bad Gateway</html>"
    );
    assert_eq!(error_message(br#"{"error":"x"}"#), r#"{"error":"x"}"#);
    assert_eq!(error_message(&[0x66, 0xff]), "f\u{fffd}");
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

fn event(kind: &str, payload: Value) -> bytes::Bytes {
    encode(
        &[
            (":event-type", kind),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

/// A ConverseStream body as Bedrock sends it (with the `p` padding field it adds to events): a
/// text block, then a tool use, then the stop and the metadata.
fn tool_stream_body() -> Vec<u8> {
    let events = [
        event(
            "messageStart",
            json!({"p": "abcdefghijk", "role": "assistant"}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Let me check"}, "p": "abcd"}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": " the charts."}, "p": "ab"}),
        ),
        event(
            "contentBlockStop",
            json!({"contentBlockIndex": 0, "p": "abcdefgh"}),
        ),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 1, "p": "a",
            "start": {"toolUse": {"name": "top_song", "toolUseId": "tooluse_abc"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": ""}}, "p": "ab"}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"sign\": "}}, "p": "abc"}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"WZPZ\"}"}}, "p": "abc"}),
        ),
        event(
            "contentBlockStop",
            json!({"contentBlockIndex": 1, "p": "abcdef"}),
        ),
        event(
            "messageStop",
            json!({"stopReason": "tool_use", "p": "abcdefghijklmnop"}),
        ),
        event(
            "metadata",
            json!({
                "usage": {"inputTokens": 375, "outputTokens": 54, "totalTokens": 629,
                          "cacheReadInputTokens": 200, "cacheWriteInputTokens": 0},
                "metrics": {"latencyMs": 1211}, "p": "abcdefgh"
            }),
        ),
    ];
    events.concat()
}

/// Decodes a body fed in small pieces and translates every message; stops at the first error.
fn translate(
    body: &[u8],
    piece: usize,
) -> (Vec<Value>, Result<(), TranslateError>, ConverseStream) {
    let mut decoder = Decoder::new();
    let mut stream = ConverseStream::new("claude-haiku");
    let mut chunks = Vec::new();
    for part in body.chunks(piece) {
        decoder.push(part);
        while let Some(msg) = decoder.next_message().unwrap() {
            match stream.on_message(&msg) {
                Ok(out) => chunks.extend(out),
                Err(e) => return (chunks, Err(e), stream),
            }
        }
    }
    assert!(!decoder.has_partial());
    (chunks, Ok(()), stream)
}

#[test]
fn full_stream_with_text_and_tool_use() {
    let (chunks, result, stream) = translate(&tool_stream_body(), 7);
    result.unwrap();
    let deltas: Vec<(Value, Value)> = chunks
        .iter()
        .filter(|c| !c["choices"].as_array().unwrap().is_empty())
        .map(|c| {
            (
                c["choices"][0]["delta"].clone(),
                c["choices"][0]["finish_reason"].clone(),
            )
        })
        .collect();
    let want = vec![
        (json!({"role": "assistant", "content": ""}), Value::Null),
        (json!({"content": "Let me check"}), Value::Null),
        (json!({"content": " the charts."}), Value::Null),
        (
            json!({"tool_calls": [{"index": 0, "id": "tooluse_abc", "type": "function",
                                "function": {"name": "top_song", "arguments": ""}}]}),
            Value::Null,
        ),
        (
            json!({"tool_calls": [{"index": 0, "function": {"arguments": ""}}]}),
            Value::Null,
        ),
        (
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"sign\": "}}]}),
            Value::Null,
        ),
        (
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"WZPZ\"}"}}]}),
            Value::Null,
        ),
        (json!({}), json!("tool_calls")),
    ];
    assert_eq!(deltas, want);
    // Every chunk shares one id and model; the last is the usage chunk.
    let id = chunks[0]["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"));
    assert!(chunks
        .iter()
        .all(|c| c["id"] == id && c["model"] == "claude-haiku"));
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 575);
    assert_eq!(last["usage"]["completion_tokens"], 54);
    assert_eq!(last["usage"]["prompt_tokens_details"]["cached_tokens"], 200);
    assert_eq!(chunks.len(), want.len() + 1);
    assert!(stream.done());
    assert_eq!(
        stream.usage(),
        Usage {
            input: 575,
            output: 54,
            cached_input: 200,
            cache_creation: 0,
            reasoning: 0,
            total: 629
        }
    );
}

#[test]
fn stream_translation_does_not_depend_on_how_bytes_arrive() {
    let body = tool_stream_body();
    let strip_ids = |chunks: Vec<Value>| {
        chunks
            .into_iter()
            .map(|mut c| {
                c["id"] = Value::Null;
                c["created"] = Value::Null;
                c
            })
            .collect::<Vec<_>>()
    };
    let (whole, ..) = translate(&body, body.len());
    for piece in [1, 2, 3, 13, 64, 1000] {
        let (chunks, ..) = translate(&body, piece);
        assert_eq!(strip_ids(chunks), strip_ids(whole.clone()), "piece {piece}");
    }
}

#[test]
fn parallel_tool_calls_get_their_own_indexes() {
    let body = [
        event("messageStart", json!({"role": "assistant"})),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 0, "start": {"toolUse": {"name": "a", "toolUseId": "ta"}}}),
        ),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 1, "start": {"toolUse": {"name": "b", "toolUseId": "tb"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{}"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"x\":1}"}}}),
        ),
    ]
    .concat();
    let (chunks, result, stream) = translate(&body, 5);
    result.unwrap();
    let calls: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["delta"]["tool_calls"][0])
        .collect();
    assert_eq!(calls[1]["index"], 0);
    assert_eq!(calls[2]["index"], 1);
    assert_eq!(
        calls[3],
        &json!({"index": 1, "function": {"arguments": "{}"}})
    );
    assert_eq!(
        calls[4],
        &json!({"index": 0, "function": {"arguments": "{\"x\":1}"}})
    );
    assert!(!stream.done());
}

#[test]
fn exception_mid_stream_is_an_error() {
    let body = [
        event("messageStart", json!({"role": "assistant"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Once upon"}}),
        ),
        encode(
            &[
                (":exception-type", "throttlingException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            br#"{"message":"Too many requests, please wait before trying again."}"#,
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "never seen"}}),
        ),
    ]
    .concat();
    let (chunks, result, stream) = translate(&body, 10);
    assert_eq!(chunks.len(), 2);
    assert_eq!(
        result,
        Err(TranslateError::Response(
            "throttlingException: Too many requests, please wait before trying again.".into()
        ))
    );
    assert!(!stream.done());
}

#[test]
fn model_stream_error_and_event_stream_errors() {
    let mut stream = ConverseStream::new("m");
    let mut decode = |bytes: bytes::Bytes| {
        let mut d = Decoder::new();
        d.push(&bytes);
        stream.on_message(&d.next_message().unwrap().unwrap())
    };
    let model_error = encode(
        &[(":exception-type", "modelStreamErrorException"), (":message-type", "exception")],
        br#"{"message":"Model stream error","originalStatusCode":424,"originalMessage":"upstream"}"#,
    );
    assert_eq!(
        decode(model_error),
        Err(TranslateError::Response(
            "modelStreamErrorException: Model stream error".into()
        ))
    );
    let generic = encode(
        &[
            (":message-type", "error"),
            (":error-code", "InternalFailure"),
            (":error-message", "oops"),
        ],
        b"",
    );
    assert_eq!(
        decode(generic),
        Err(TranslateError::Response("InternalFailure: oops".into()))
    );
    let untyped = encode(&[(":event-type", "messageStart")], b"{}");
    assert!(matches!(decode(untyped), Err(TranslateError::Response(_))));
    let not_json = encode(
        &[(":message-type", "event"), (":event-type", "metadata")],
        b"{oops",
    );
    assert!(matches!(decode(not_json), Err(TranslateError::Response(_))));
    let stray = encode(
        &[
            (":message-type", "event"),
            (":event-type", "contentBlockDelta"),
        ],
        br#"{"contentBlockIndex":4,"delta":{"toolUse":{"input":"{}"}}}"#,
    );
    assert!(matches!(decode(stray), Err(TranslateError::Response(_))));
}

#[test]
fn unknown_events_and_other_deltas_are_skipped() {
    let mut stream = ConverseStream::new("m");
    let mut d = Decoder::new();
    d.push(&event("somethingNew", json!({"x": 1})));
    d.push(&event(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hmm"}}}),
    ));
    d.push(&event(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"text": ""}}),
    ));
    d.push(&event(
        "contentBlockStart",
        json!({"contentBlockIndex": 0, "start": {"image": {}}}),
    ));
    while let Some(msg) = d.next_message().unwrap() {
        assert_eq!(stream.on_message(&msg), Ok(vec![]));
    }
    assert!(!stream.done());
    assert_eq!(stream.usage(), Usage::default());
}
