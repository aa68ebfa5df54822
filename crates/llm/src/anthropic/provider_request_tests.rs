use super::*;
use serde_json::json;

/// A weather-agent conversation: system and developer prompts, an image question, two parallel
/// tool calls, their results, and a follow-up question.
fn agent_conversation() -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "You are a weather assistant."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in metres."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "Where is this, and what is the weather in Paris and Oslo?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/photo.jpg"}}
            ]},
            {"role": "assistant", "content": "Let me check both cities.", "tool_calls": [
                {"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "toolu_02", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\", \"unit\": \"c\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_01", "content": "18°C, cloudy"},
            {"role": "tool", "tool_call_id": "toolu_02", "content": [{"type": "text", "text": "4°C, snow"}]},
            {"role": "user", "content": "Which is warmer?"}
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}, "required": ["city"]}
        }}],
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "max_completion_tokens": 1024,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "stream": true,
        "stream_options": {"include_usage": true},
        "user": "user-42"
    })
}

#[test]
fn full_conversation_translates() {
    let out = messages_request(&agent_conversation()).unwrap();
    assert_eq!(
        out,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": "You are a weather assistant.\n\nAnswer in metres.",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Where is this, and what is the weather in Paris and Oslo?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/photo.jpg"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me check both cities."},
                    {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"city": "Oslo", "unit": "c"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18°C, cloudy"},
                    {"type": "tool_result", "tool_use_id": "toolu_02", "content": "4°C, snow"},
                    {"type": "text", "text": "Which is warmer?"}
                ]}
            ],
            "temperature": 0.2,
            "top_p": 0.9,
            "stop_sequences": ["END"],
            "stream": true,
            "tools": [{
                "name": "get_weather",
                "description": "Current weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}, "required": ["city"]}
            }],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "metadata": {"user_id": "user-42"}
        })
    );
}

#[test]
fn minimal_request_gets_default_max_tokens() {
    let out = messages_request(&json!({
        "model": "claude-haiku-4-5",
        "messages": [{"role": "user", "content": "Hi"}]
    }))
    .unwrap();
    assert_eq!(
        out,
        json!({
            "model": "claude-haiku-4-5",
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": "Hi"}]
        })
    );
}

#[test]
fn legacy_max_tokens_and_stop_array() {
    let out = messages_request(&json!({
        "model": "m", "max_tokens": 77, "stop": ["\n\nHuman:", "###"],
        "messages": [{"role": "user", "content": "Hi"}]
    }))
    .unwrap();
    assert_eq!(out["max_tokens"], 77);
    assert_eq!(out["stop_sequences"], json!(["\n\nHuman:", "###"]));
    // max_completion_tokens wins over max_tokens when both are set.
    let both = json!({"model": "m", "max_tokens": 77, "max_completion_tokens": 99, "messages": []});
    assert_eq!(messages_request(&both).unwrap()["max_tokens"], 99);
    let bad = json!({"model": "m", "max_tokens": "lots", "messages": []});
    assert!(matches!(
        messages_request(&bad),
        Err(TranslateError::Request(_))
    ));
}

#[test]
fn consecutive_same_role_messages_merge() {
    let out = messages_request(&json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "First."},
            {"role": "user", "content": [{"type": "text", "text": "Second."}]},
            {"role": "assistant", "content": "A"},
            {"role": "assistant", "content": ""},
            {"role": "assistant", "content": "B"},
            {"role": "user", "content": ""},
            {"role": "user", "content": "Third."}
        ]
    }))
    .unwrap();
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "First."}, {"type": "text", "text": "Second."}]},
            {"role": "assistant", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
            {"role": "user", "content": "Third."}
        ])
    );
}

#[test]
fn tool_results_lead_their_user_turn() {
    // A user message before the tool result (out of OpenAI's order) still yields a valid turn.
    let out = messages_request(&json!({
        "model": "m",
        "messages": [
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "now", "arguments": ""}}
            ]},
            {"role": "user", "content": "hurry"},
            {"role": "tool", "tool_call_id": "c1", "content": "12:00"},
            {"role": "tool", "tool_call_id": "c2", "content": ""}
        ]
    }))
    .unwrap();
    assert_eq!(
        out["messages"],
        json!([
            {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "now", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "12:00"},
                {"type": "tool_result", "tool_use_id": "c2"},
                {"type": "text", "text": "hurry"}
            ]}
        ])
    );
}

#[test]
fn tool_choice_variants() {
    let with = |choice: Value, parallel: Value| {
        let mut req = json!({
            "model": "m", "messages": [],
            "tools": [{"type": "function", "function": {"name": "f"}}]
        });
        if !choice.is_null() {
            req["tool_choice"] = choice;
        }
        if !parallel.is_null() {
            req["parallel_tool_calls"] = parallel;
        }
        messages_request(&req).unwrap().get("tool_choice").cloned()
    };
    assert_eq!(
        with(json!("auto"), Value::Null),
        Some(json!({"type": "auto"}))
    );
    assert_eq!(
        with(json!("required"), Value::Null),
        Some(json!({"type": "any"}))
    );
    assert_eq!(
        with(json!("none"), Value::Null),
        Some(json!({"type": "none"}))
    );
    assert_eq!(
        with(
            json!({"type": "function", "function": {"name": "f"}}),
            Value::Null
        ),
        Some(json!({"type": "tool", "name": "f"}))
    );
    assert_eq!(
        with(json!("required"), json!(false)),
        Some(json!({"type": "any", "disable_parallel_tool_use": true}))
    );
    assert_eq!(
        with(json!("none"), json!(false)),
        Some(json!({"type": "none"}))
    );
    assert_eq!(
        with(Value::Null, json!(false)),
        Some(json!({"type": "auto", "disable_parallel_tool_use": true}))
    );
    assert_eq!(with(Value::Null, json!(true)), None);
    assert_eq!(with(Value::Null, Value::Null), None);
}

#[test]
fn tool_without_parameters_gets_empty_schema() {
    let out = messages_request(&json!({
        "model": "m", "messages": [], "tool_choice": "required",
        "tools": [{"type": "function", "function": {"name": "ping"}}]
    }))
    .unwrap();
    assert_eq!(
        out["tools"],
        json!([{"name": "ping", "input_schema": {"type": "object", "properties": {}}}])
    );
    // No tools: tool_choice has nothing to apply to and is not sent.
    let none = messages_request(
        &json!({"model": "m", "messages": [], "tool_choice": "auto", "tools": []}),
    )
    .unwrap();
    assert!(none.get("tool_choice").is_none() && none.get("tools").is_none());
}

#[test]
fn cache_control_is_kept_on_parts_tools_and_system() {
    let out = messages_request(&json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": [
                {"type": "text", "text": "Long policy…", "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Doc", "cache_control": {"type": "ephemeral"}}]}
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}, "cache_control": {"type": "ephemeral"}}]
    }))
    .unwrap();
    assert_eq!(
        out["system"],
        json!([
            {"type": "text", "text": "Long policy…", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Be brief."}
        ])
    );
    assert_eq!(
        out["messages"][0]["content"],
        json!([{"type": "text", "text": "Doc", "cache_control": {"type": "ephemeral"}}])
    );
    assert_eq!(
        out["tools"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
}

#[test]
fn pdf_file_part_becomes_document() {
    let out = messages_request(&json!({
        "model": "m",
        "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
            {"type": "text", "text": "Summarise."}
        ]}]
    }))
    .unwrap();
    assert_eq!(
        out["messages"][0]["content"][0],
        json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}})
    );
    let by_id = json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]});
    assert!(matches!(
        messages_request(&by_id),
        Err(TranslateError::Unsupported(_))
    ));
}

#[test]
fn invalid_requests_are_refused() {
    let request = |messages: Value| messages_request(&json!({"model": "m", "messages": messages}));
    let bad_args = request(json!([{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"city\":"}}
    ]}]));
    match bad_args {
        Err(TranslateError::Request(m)) => assert!(m.starts_with("messages[0]: "), "{m}"),
        other => panic!("expected a request error, got {other:?}"),
    }
    let array_args = request(json!([{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
    ]}]));
    assert!(matches!(array_args, Err(TranslateError::Request(_))));
    let no_id = request(json!([{"role": "tool", "content": "x"}]));
    assert!(matches!(no_id, Err(TranslateError::Request(_))));
    let role = request(json!([{"role": "narrator", "content": "x"}]));
    assert!(matches!(role, Err(TranslateError::Request(_))));
    let ftp = request(
        json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]),
    );
    assert!(matches!(ftp, Err(TranslateError::Request(_))));
    let not_b64 = request(
        json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/svg+xml,<svg/>"}}]}]),
    );
    assert!(matches!(not_b64, Err(TranslateError::Request(_))));
    let audio = request(
        json!([{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]),
    );
    assert!(matches!(audio, Err(TranslateError::Unsupported(_))));
    assert!(matches!(
        messages_request(&json!({"model": "m"})),
        Err(TranslateError::Request(_))
    ));
    assert!(matches!(
        messages_request(&json!({"model": "m", "n": 2, "messages": []})),
        Err(TranslateError::Unsupported(_))
    ));
    // n = 1 is the default and fine.
    assert!(messages_request(&json!({"model": "m", "n": 1, "messages": []})).is_ok());
    let custom_tool = json!({"model": "m", "messages": [], "tools": [{"type": "custom", "custom": {"name": "x"}}]});
    assert!(matches!(
        messages_request(&custom_tool),
        Err(TranslateError::Unsupported(_))
    ));
    let bad_stop = json!({"model": "m", "messages": [], "stop": 5});
    assert!(matches!(
        messages_request(&bad_stop),
        Err(TranslateError::Request(_))
    ));
}

#[test]
fn image_url_given_as_plain_string() {
    let out = messages_request(
        &json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": "https://example.com/a.webp"}
        ]}]}),
    )
    .unwrap();
    assert_eq!(
        out["messages"][0]["content"],
        json!([{"type": "image", "source": {"type": "url", "url": "https://example.com/a.webp"}}])
    );
}
