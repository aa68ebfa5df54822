use super::*;
use serde_json::json;

/// A Claude-SDK agent request: system blocks, an image, a tool call with its result, thinking
/// history, tools and sampling options.
fn sdk_request() -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 2048,
        "system": [
            {"type": "text", "text": "You are a travel agent.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Prices in EUR."}
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/map.png"}},
                {"type": "text", "text": "Book me the cheapest flight to this city."}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Need to search flights.", "signature": "EqQB"},
                {"type": "text", "text": "Searching."},
                {"type": "tool_use", "id": "toolu_01", "name": "search_flights", "input": {"max_stops": 1, "to": "LIS"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": [
                    {"type": "text", "text": "[{\"flight\":\"TP123\",\"price\":89}]"}
                ]},
                {"type": "text", "text": "Take it."}
            ]}
        ],
        "tools": [{
            "name": "search_flights",
            "description": "Search flights",
            "input_schema": {"type": "object", "properties": {"to": {"type": "string"}, "max_stops": {"type": "integer"}}, "required": ["to"]},
            "cache_control": {"type": "ephemeral"}
        }],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
        "stop_sequences": ["</answer>"],
        "temperature": 0.5,
        "top_p": 0.95,
        "top_k": 40,
        "stream": true,
        "metadata": {"user_id": "u-7"},
        "thinking": {"type": "enabled", "budget_tokens": 1024}
    })
}

#[test]
fn sdk_request_translates() {
    let hub = hub_request_from_messages(&sdk_request()).unwrap();
    assert_eq!(
        hub,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 2048,
            "messages": [
                {"role": "system", "content": [
                    {"type": "text", "text": "You are a travel agent."},
                    {"type": "text", "text": "Prices in EUR."}
                ]},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/map.png"}},
                    {"type": "text", "text": "Book me the cheapest flight to this city."}
                ]},
                {"role": "assistant", "content": "Searching.", "tool_calls": [
                    {"id": "toolu_01", "type": "function", "function": {"name": "search_flights", "arguments": "{\"max_stops\":1,\"to\":\"LIS\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_01", "content": "[{\"flight\":\"TP123\",\"price\":89}]"},
                {"role": "user", "content": "Take it."}
            ],
            "temperature": 0.5,
            "top_p": 0.95,
            "stop": ["</answer>"],
            "stream": true,
            "stream_options": {"include_usage": true},
            "user": "u-7",
            "tools": [{"type": "function", "function": {
                "name": "search_flights",
                "description": "Search flights",
                "parameters": {"type": "object", "properties": {"to": {"type": "string"}, "max_stops": {"type": "integer"}}, "required": ["to"]}
            }}],
            "tool_choice": "auto",
            "parallel_tool_calls": false
        })
    );
}

#[test]
fn simple_request_with_string_system() {
    let hub = hub_request_from_messages(&json!({
        "model": "claude-haiku-4-5", "max_tokens": 100, "stream": false,
        "system": "Be terse.",
        "messages": [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": [{"type": "text", "text": "Bye"}]}
        ]
    }))
    .unwrap();
    assert_eq!(
        hub,
        json!({
            "model": "claude-haiku-4-5", "max_tokens": 100, "stream": false,
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": "Hi."},
                {"role": "user", "content": "Bye"}
            ]
        })
    );
}

#[test]
fn parallel_tool_results_become_separate_tool_messages() {
    let hub = hub_request_from_messages(&json!({
        "model": "m", "max_tokens": 10,
        "messages": [
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "a", "input": {}},
                {"type": "tool_use", "id": "t2", "name": "b", "input": {"x": "y"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "one"},
                {"type": "tool_result", "tool_use_id": "t2", "is_error": true, "content": [
                    {"type": "text", "text": "failed: "},
                    {"type": "text", "text": "timeout"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
                ]},
                {"type": "tool_result", "tool_use_id": "t3"}
            ]}
        ]
    }))
    .unwrap();
    assert_eq!(
        hub["messages"],
        json!([
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
                {"id": "t2", "type": "function", "function": {"name": "b", "arguments": "{\"x\":\"y\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "t1", "content": "one"},
            {"role": "tool", "tool_call_id": "t2", "content": "failed: timeout"},
            {"role": "tool", "tool_call_id": "t3", "content": ""},
            // The tool result's image rides in a user message: hub tool messages are text-only.
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            ]}
        ])
    );
}

#[test]
fn tool_choice_variants() {
    let choice = |c: Value| {
        let req = json!({"model": "m", "max_tokens": 1, "messages": [], "tool_choice": c,
            "tools": [{"name": "f", "input_schema": {"type": "object"}}]});
        let hub = hub_request_from_messages(&req).unwrap();
        (
            hub["tool_choice"].clone(),
            hub.get("parallel_tool_calls").cloned(),
        )
    };
    assert_eq!(choice(json!({"type": "auto"})), (json!("auto"), None));
    assert_eq!(choice(json!({"type": "any"})), (json!("required"), None));
    assert_eq!(choice(json!({"type": "none"})), (json!("none"), None));
    assert_eq!(
        choice(json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            Some(json!(false))
        )
    );
    assert_eq!(
        choice(json!({"type": "any", "disable_parallel_tool_use": false})),
        (json!("required"), None)
    );
}

#[test]
fn missing_required_fields_are_named() {
    let base =
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
    for field in ["model", "messages", "max_tokens"] {
        let mut req = base.clone();
        req.as_object_mut().unwrap().remove(field);
        match hub_request_from_messages(&req) {
            Err(TranslateError::Request(m)) => assert!(m.contains(field), "{m}"),
            other => panic!("{field}: expected a request error, got {other:?}"),
        }
    }
    assert!(hub_request_from_messages(&base).is_ok());
}

#[test]
fn invalid_and_unsupported_content() {
    let with = |messages: Value| {
        hub_request_from_messages(&json!({"model": "m", "max_tokens": 5, "messages": messages}))
    };
    let no_content = with(json!([{"role": "user"}]));
    assert!(matches!(no_content, Err(TranslateError::Request(m)) if m.contains("messages[0]")));
    let role = with(json!([{"role": "system", "content": "x"}]));
    assert!(matches!(role, Err(TranslateError::Request(_))));
    let doc = with(json!([{"role": "user", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}
    ]}]));
    assert!(matches!(doc, Err(TranslateError::Unsupported(_))));
    let file_image = with(json!([{"role": "user", "content": [
        {"type": "image", "source": {"type": "file", "file_id": "file_011"}}
    ]}]));
    assert!(matches!(file_image, Err(TranslateError::Unsupported(_))));
    let no_tool_id =
        with(json!([{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]));
    assert!(matches!(no_tool_id, Err(TranslateError::Request(_))));
    let server_block = with(json!([{"role": "assistant", "content": [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}
    ]}]));
    assert!(matches!(server_block, Err(TranslateError::Unsupported(_))));
    let server_tool = hub_request_from_messages(&json!({
        "model": "m", "max_tokens": 5, "messages": [],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]
    }));
    assert!(matches!(server_tool, Err(TranslateError::Unsupported(_))));
    let custom_tool = hub_request_from_messages(&json!({
        "model": "m", "max_tokens": 5, "messages": [],
        "tools": [{"type": "custom", "name": "f", "input_schema": {"type": "object"}}]
    }));
    assert_eq!(
        custom_tool.unwrap()["tools"],
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])
    );
    let bad_choice = hub_request_from_messages(&json!({
        "model": "m", "max_tokens": 5, "messages": [], "tool_choice": {"type": "sometimes"}
    }));
    assert!(matches!(bad_choice, Err(TranslateError::Request(_))));
}

#[test]
fn empty_system_prompt_adds_no_message() {
    for system in [json!(""), json!([]), Value::Null] {
        let hub = hub_request_from_messages(&json!({
            "model": "m", "max_tokens": 5, "system": system,
            "messages": [{"role": "user", "content": "x"}]
        }))
        .unwrap();
        assert_eq!(hub["messages"], json!([{"role": "user", "content": "x"}]));
    }
    let bad = json!({"model": "m", "max_tokens": 5, "system": 3, "messages": []});
    assert!(matches!(
        hub_request_from_messages(&bad),
        Err(TranslateError::Request(_))
    ));
}
