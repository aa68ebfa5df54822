//! Tests of [`super`] (Gemini ↔ hub), with payloads shaped as Google documents them.

use super::*;

fn request(hub: Value) -> Value {
    generate_request(&hub).unwrap()
}

fn request_err(hub: Value) -> TranslateError {
    generate_request(&hub).unwrap_err()
}

fn weather_tool() -> Value {
    json!({
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["c", "f"]}
                },
                "required": ["city"],
                "additionalProperties": false
            },
            "strict": true
        }
    })
}

// --- requests ---------------------------------------------------------------------------------

#[test]
fn system_prompt_turns_and_generation_config() {
    let body = request(json!({
        "model": "gemini-2.5-flash",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Bonjour."},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "user", "content": [{"type": "text", "text": "Be brief."}]}
        ],
        "max_tokens": 100,
        "max_completion_tokens": 256,
        "temperature": 0.2,
        "top_p": 0.9,
        "n": 1,
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": null,
        "stop": "END",
        "stream": false
    }));
    assert_eq!(
        body,
        json!({
            "systemInstruction": {"parts": [{"text": "You are terse."}, {"text": "Answer in French."}]},
            "contents": [
                {"role": "user", "parts": [{"text": "Hi"}]},
                {"role": "model", "parts": [{"text": "Bonjour."}]},
                // Back-to-back user messages become one turn.
                {"role": "user", "parts": [{"text": "What is 2+2?"}, {"text": "Be brief."}]}
            ],
            "generationConfig": {
                "maxOutputTokens": 256,
                "temperature": 0.2,
                "topP": 0.9,
                "candidateCount": 1,
                "seed": 7,
                "presencePenalty": 0.5,
                "stopSequences": ["END"]
            }
        })
    );
}

#[test]
fn bare_request_has_no_optional_sections() {
    let body = request(json!({"messages": [{"role": "user", "content": "Hi"}],
                              "max_tokens": 10, "stop": ["a", "b"]}));
    assert_eq!(
        body,
        json!({
            "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
            "generationConfig": {"maxOutputTokens": 10, "stopSequences": ["a", "b"]}
        })
    );
    let body = request(json!({"messages": [{"role": "user", "content": "Hi"}], "stop": []}));
    assert_eq!(
        body,
        json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]})
    );
}

#[test]
fn tool_call_and_result_round_trip() {
    let body = request(json!({
        "model": "gemini-2.5-pro",
        "messages": [
            {"role": "user", "content": "Weather in Paris and Oslo?"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "call_0", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_time", "arguments": "{\"city\": \"Oslo\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_0", "content": "{\"temp_c\": 18, \"sky\": \"clear\"}"},
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "14:05"}]},
            {"role": "user", "content": "Thanks. And tomorrow?"}
        ],
        "tools": [weather_tool(), {"type": "function", "function": {"name": "get_time",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
    }));
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather in Paris and Oslo?"}]},
            {"role": "model", "parts": [
                {"text": "Let me check."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {"city": "Oslo"}}}
            ]},
            // The results answer by function name; with the next user message they make one turn.
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather",
                                      "response": {"temp_c": 18, "sky": "clear"}}},
                {"functionResponse": {"name": "get_time", "response": {"content": "14:05"}}},
                {"text": "Thanks. And tomorrow?"}
            ]}
        ])
    );
    assert_eq!(
        body["tools"],
        json!([{"functionDeclarations": [
            {"name": "get_weather", "description": "Current weather for a city",
             "parameters": {"type": "object",
                            "properties": {"city": {"type": "string"},
                                           "unit": {"type": "string", "enum": ["c", "f"]}},
                            "required": ["city"]}},
            {"name": "get_time",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
        ]}])
    );
    assert_eq!(
        body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
}

#[test]
fn tool_ids_recur_across_turns() {
    // Ids synthesised per response repeat (`call_0` every turn): each result names the function
    // of the call just before it.
    let body = request(json!({"messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [{"id": "call_0", "type": "function",
            "function": {"name": "first", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "[1, 2]"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_0", "type": "function",
            "function": {"name": "second", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "done"}
    ]}));
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "go"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "first", "args": {}}}]},
            // A JSON result that is not an object is wrapped like text.
            {"role": "user", "parts": [{"functionResponse": {"name": "first",
                                                             "response": {"content": "[1, 2]"}}}]},
            {"role": "model", "parts": [{"functionCall": {"name": "second", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "second",
                                                             "response": {"content": "done"}}}]}
        ])
    );
}

#[test]
fn tool_choice_modes() {
    let config = |choice: Value| {
        request(json!({"messages": [{"role": "user", "content": "x"}],
                       "tools": [weather_tool()], "tool_choice": choice}))["toolConfig"]
            .clone()
    };
    assert_eq!(
        config(json!("auto")),
        json!({"functionCallingConfig": {"mode": "AUTO"}})
    );
    assert_eq!(
        config(json!("none")),
        json!({"functionCallingConfig": {"mode": "NONE"}})
    );
    assert_eq!(
        config(json!("required")),
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );
    assert_eq!(config(Value::Null), Value::Null);
    assert_eq!(
        config(json!({"function": {"name": "get_weather"}})),
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
    // Without tools there is nothing to configure.
    let body =
        request(json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "none"}));
    assert_eq!(body.get("toolConfig"), None);
    let bad = |choice: Value| {
        generate_request(&json!({"messages": [{"role": "user", "content": "x"}],
                                 "tool_choice": choice}))
        .unwrap_err()
    };
    assert!(matches!(
        bad(json!("sometimes")),
        TranslateError::Request(_)
    ));
    assert!(matches!(
        bad(json!({"type": "allowed_tools", "allowed_tools": {}})),
        TranslateError::Unsupported(_)
    ));
}

#[test]
fn functions_without_parameters_declare_none() {
    let body = request(json!({
        "messages": [{"role": "user", "content": "x"}],
        "tools": [
            {"type": "function", "function": {"name": "now"}},
            {"type": "function", "function": {"name": "ping",
                "parameters": {"type": "object", "properties": {}, "additionalProperties": false}}}
        ]
    }));
    assert_eq!(
        body["tools"],
        json!([{"functionDeclarations": [{"name": "now"}, {"name": "ping"}]}])
    );
    let err = request_err(json!({"messages": [{"role": "user", "content": "x"}],
                                 "tools": [{"type": "web_search"}]}));
    assert!(matches!(err, TranslateError::Unsupported(_)));
}

#[test]
fn images_audio_and_files() {
    let body = request(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Compare these."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/photos/cat.webp"}},
        {"type": "image_url", "image_url": "gs://bucket/dog.jpeg"},
        {"type": "input_audio", "input_audio": {"data": "SUQz", "format": "mp3"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}}
    ]}]}));
    assert_eq!(
        body["contents"][0]["parts"],
        json!([
            {"text": "Compare these."},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/photos/cat.webp"}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://bucket/dog.jpeg"}},
            {"inlineData": {"mimeType": "audio/mp3", "data": "SUQz"}},
            {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}}
        ])
    );
    let err = request_err(json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/render?id=4"}}]}]}));
    assert!(matches!(err, TranslateError::Unsupported(_)));
    let err = request_err(json!({"messages": [{"role": "user", "content": [
        {"type": "video_url", "video_url": {"url": "https://example.com/a.mp4"}}]}]}));
    assert!(matches!(err, TranslateError::Unsupported(_)));
    // Images belong in user messages only.
    let err = request_err(json!({"messages": [
        {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://e.com/a.png"}}]},
        {"role": "user", "content": "x"}]}));
    assert!(matches!(err, TranslateError::Unsupported(_)));
}

#[test]
fn response_formats() {
    let config = |format: Value| {
        request(json!({"messages": [{"role": "user", "content": "x"}],
                       "response_format": format}))
        .get("generationConfig")
        .cloned()
    };
    assert_eq!(config(json!({"type": "text"})), None);
    assert_eq!(
        config(json!({"type": "json_object"})),
        Some(json!({"responseMimeType": "application/json"}))
    );
    assert_eq!(
        config(
            json!({"type": "json_schema", "json_schema": {"name": "answer", "strict": true,
            "schema": {"type": "object", "additionalProperties": false,
                       "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}}})
        ),
        Some(json!({
            "responseMimeType": "application/json",
            "responseSchema": {"type": "object", "properties": {"answer": {"type": "integer"}},
                               "required": ["answer"]}
        }))
    );
    assert_eq!(
        config(json!({"type": "json_schema", "json_schema": {"name": "free"}})),
        Some(json!({"responseMimeType": "application/json"}))
    );
}

#[test]
fn invalid_requests() {
    let cases = [
        json!({}),
        json!({"messages": "hi"}),
        json!({"messages": [{"content": "no role"}]}),
        json!({"messages": [{"role": "narrator", "content": "x"}]}),
        json!({"messages": [{"role": "system", "content": "only a system prompt"}]}),
        json!({"messages": [{"role": "user", "content": 42}]}),
        json!({"messages": [{"role": "user", "content": "x"},
                            {"role": "tool", "tool_call_id": "call_9", "content": "?"}]}),
        json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "a", "type": "function",
                   "function": {"name": "f", "arguments": "{not json"}}]}]}),
        json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "a", "type": "function",
                   "function": {"name": "f", "arguments": "[1]"}}]}]}),
        json!({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
        json!({"messages": [{"role": "user", "content": "x"}], "stop": [1]}),
    ];
    for hub in cases {
        assert!(
            matches!(generate_request(&hub), Err(TranslateError::Request(_))),
            "{hub}"
        );
    }
}

#[test]
fn tool_message_name_is_a_fallback() {
    // The call is not in the history (trimmed by the client), but the tool message names it.
    let body = request(json!({"messages": [
        {"role": "user", "content": "x"},
        {"role": "tool", "tool_call_id": "call_7", "name": "lookup", "content": "ok"}
    ]}));
    assert_eq!(
        body["contents"][0]["parts"][1],
        json!({"functionResponse": {"name": "lookup", "response": {"content": "ok"}}})
    );
}

// --- responses --------------------------------------------------------------------------------

#[test]
fn text_response_with_thoughts_and_usage() {
    let resp = json!({
        "candidates": [{
            "content": {"role": "model", "parts": [
                {"text": "The user wants a greeting.", "thought": true},
                {"text": "Hello"},
                {"text": ", world."}
            ]},
            "finishReason": "STOP",
            "index": 0,
            "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
        }],
        "usageMetadata": {
            "promptTokenCount": 1200,
            "candidatesTokenCount": 5,
            "thoughtsTokenCount": 40,
            "cachedContentTokenCount": 1024,
            "totalTokenCount": 1245,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 1200}]
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "mEbEaL3qB9"
    });
    let (out, usage) = generate_response(&resp, "gemini-2.5-flash").unwrap();
    assert_eq!(
        usage,
        Usage {
            input: 1200,
            cached_input: 1024,
            cache_creation: 0,
            output: 45,
            reasoning: 40,
            total: 1245
        }
    );
    assert_eq!(out["id"], "chatcmpl-mEbEaL3qB9");
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["model"], "gemini-2.5-flash");
    assert_eq!(
        out["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": "Hello, world."},
                "finish_reason": "stop", "logprobs": null}])
    );
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 1200, "completion_tokens": 45, "total_tokens": 1245,
               "prompt_tokens_details": {"cached_tokens": 1024},
               "completion_tokens_details": {"reasoning_tokens": 40}})
    );
}

#[test]
fn function_call_response() {
    let resp = json!({
        "candidates": [{
            "content": {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris", "unit": "c"}}},
                {"functionCall": {"name": "get_time", "args": {"city": "Oslo"}}},
                {"functionCall": {"name": "now"}}
            ]},
            "finishReason": "STOP"
        }],
        "usageMetadata": {"promptTokenCount": 80, "candidatesTokenCount": 20, "totalTokenCount": 100}
    });
    let (out, usage) = generate_response(&resp, "gemini-2.0-flash").unwrap();
    assert_eq!(usage, Usage::new(80, 20));
    assert!(out["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(
        out["choices"][0],
        json!({
            "index": 0,
            "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_0", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"c\"}"}},
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_time", "arguments": "{\"city\":\"Oslo\"}"}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "now", "arguments": "{}"}}
            ]},
            "finish_reason": "tool_calls",
            "logprobs": null
        })
    );
}

#[test]
fn tool_call_round_trips_through_the_client() {
    // What Gemini answers, what the client sends back, and what Gemini then gets must line up.
    let resp = json!({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "Checking."},
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    ]}, "finishReason": "STOP"}]});
    let (out, _) = generate_response(&resp, "m").unwrap();
    let assistant = out["choices"][0]["message"].clone();
    assert_eq!(assistant["content"], "Checking.");
    let id = assistant["tool_calls"][0]["id"].clone();
    let body = request(json!({"messages": [
        {"role": "user", "content": "Weather?"},
        assistant,
        {"role": "tool", "tool_call_id": id, "content": "{\"temp_c\":18}"}
    ]}));
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather?"}]},
            {"role": "model", "parts": [
                {"text": "Checking."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
            ]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                             "response": {"temp_c": 18}}}]}
        ])
    );
}

#[test]
fn thought_signatures_ride_in_tool_call_ids() {
    // Gemini 3 signs the first call of a step and refuses the next request if the signature does
    // not come back with it.
    let signature = "CiQBcsjafE1x/0aTj+r7d8E0a9g3dUWe9Vb0xEHm7l2Q0y8Q9ZA=";
    let resp = json!({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
         "thoughtSignature": signature},
        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
    ]}, "finishReason": "STOP"}]});
    let (out, _) = generate_response(&resp, "gemini-3-pro-preview").unwrap();
    let assistant = out["choices"][0]["message"].clone();
    let first_id = assistant["tool_calls"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let second_id = assistant["tool_calls"][1]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(first_id.starts_with("call_0_ts_"), "{first_id}");
    assert!(first_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    assert_eq!(second_id, "call_1");

    let body = request(json!({"messages": [
        {"role": "user", "content": "Paris and Oslo?"},
        assistant,
        {"role": "tool", "tool_call_id": first_id, "content": "18C"},
        {"role": "tool", "tool_call_id": second_id, "content": "9C"}
    ]}));
    assert_eq!(
        body["contents"][1]["parts"],
        json!([
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
             "thoughtSignature": signature},
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
        ])
    );
    assert_eq!(
        body["contents"][2]["parts"][0]["functionResponse"]["name"],
        "get_weather"
    );
    // An unpadded signature comes back padded: the same bytes.
    let id = call_id(0, Some("CiQBcsjafE1x"));
    assert_eq!(signature_from_call_id(&id).as_deref(), Some("CiQBcsjafE1x"));
    let id = call_id(0, Some("CiQBcsjafE0"));
    assert_eq!(signature_from_call_id(&id).as_deref(), Some("CiQBcsjafE0="));
    // Not base64 at all: the call keeps a plain id rather than failing.
    assert_eq!(call_id(3, Some("not base64!")), "call_3");
    // Ids of other origins never grow a signature.
    assert_eq!(signature_from_call_id("call_abc_ts_AAAA"), None);
    assert_eq!(signature_from_call_id("toolu_01_ts_AAAA"), None);
    assert_eq!(signature_from_call_id("call_0_ts_!!"), None);
}

#[test]
fn finish_reasons() {
    let finish = |reason: &str, parts: Value| {
        let resp = json!({"candidates": [{"content": {"role": "model", "parts": parts},
                                          "finishReason": reason}]});
        generate_response(&resp, "m").unwrap().0["choices"][0]["finish_reason"].clone()
    };
    let text = json!([{"text": "partial"}]);
    let call = json!([{"functionCall": {"name": "f", "args": {}}}]);
    assert_eq!(finish("STOP", text.clone()), "stop");
    assert_eq!(finish("STOP", call.clone()), "tool_calls");
    assert_eq!(finish("MAX_TOKENS", text.clone()), "length");
    assert_eq!(finish("MAX_TOKENS", call), "length");
    for reason in [
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
    ] {
        assert_eq!(finish(reason, json!([])), "content_filter", "{reason}");
    }
    assert_eq!(finish("OTHER", text), "stop");
}

#[test]
fn safety_block_of_the_prompt() {
    let resp = json!({
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}]},
        "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12}
    });
    let (out, usage) = generate_response(&resp, "gemini-2.5-flash").unwrap();
    assert_eq!(usage, Usage::new(12, 0));
    assert_eq!(
        out["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": ""},
                "finish_reason": "content_filter", "logprobs": null}])
    );
}

#[test]
fn candidate_blocked_while_generating() {
    let resp = json!({"candidates": [{"finishReason": "SAFETY", "index": 0,
        "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": true}]}]});
    let (out, _) = generate_response(&resp, "m").unwrap();
    assert_eq!(
        out["choices"][0]["message"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
}

#[test]
fn several_candidates_become_several_choices() {
    let resp = json!({"candidates": [
        {"content": {"role": "model", "parts": [{"text": "A"}]}, "finishReason": "STOP", "index": 0},
        {"content": {"role": "model", "parts": [{"text": "B"}]}, "finishReason": "MAX_TOKENS", "index": 1}
    ]});
    let (out, _) = generate_response(&resp, "m").unwrap();
    assert_eq!(
        out["choices"],
        json!([
            {"index": 0, "message": {"role": "assistant", "content": "A"}, "finish_reason": "stop", "logprobs": null},
            {"index": 1, "message": {"role": "assistant", "content": "B"}, "finish_reason": "length", "logprobs": null}
        ])
    );
}

#[test]
fn bad_responses() {
    assert_eq!(
        generate_response(&json!({"usageMetadata": {}}), "m").unwrap_err(),
        TranslateError::Response("no candidates".into())
    );
    let err = json!({"error": {"code": 429, "message": "Resource exhausted.", "status": "RESOURCE_EXHAUSTED"}});
    assert_eq!(
        generate_response(&err, "m").unwrap_err(),
        TranslateError::Response("Resource exhausted.".into())
    );
}

// --- streams ----------------------------------------------------------------------------------

fn deltas(chunks: &[Value]) -> Vec<Value> {
    chunks
        .iter()
        .map(|c| {
            json!({"delta": c["choices"][0]["delta"], "finish": c["choices"][0]["finish_reason"]})
        })
        .collect()
}

#[test]
fn streamed_text_and_function_call() {
    // The events of one `streamGenerateContent?alt=sse` exchange, as their `data:` JSON.
    let events = [
        json!({"candidates": [{"content": {"role": "model", "parts": [
                   {"text": "Planning the lookup.", "thought": true}]}, "index": 0}],
               "usageMetadata": {"promptTokenCount": 30, "totalTokenCount": 30, "thoughtsTokenCount": 8},
               "modelVersion": "gemini-2.5-flash", "responseId": "r-1"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Let me "}]}, "index": 0}],
               "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 2,
                                 "thoughtsTokenCount": 8, "totalTokenCount": 40},
               "responseId": "r-1"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [
                   {"text": "check."},
                   {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]}, "index": 0}],
               "responseId": "r-1"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [
                   {"functionCall": {"name": "get_time", "args": {}}}]},
                   "finishReason": "STOP", "index": 0}],
               "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 25,
                                 "thoughtsTokenCount": 8, "cachedContentTokenCount": 16,
                                 "totalTokenCount": 63},
               "responseId": "r-1"}),
    ];
    let mut stream = GenerateStream::new("gemini-2.5-flash");
    let mut chunks = Vec::new();
    for event in &events {
        chunks.extend(stream.on_event(event).unwrap());
    }
    for chunk in &chunks {
        assert_eq!(chunk["id"], "chatcmpl-r-1");
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "gemini-2.5-flash");
        assert_eq!(chunk["choices"][0]["index"], 0);
    }
    assert_eq!(
        deltas(&chunks),
        vec![
            json!({"delta": {"role": "assistant", "content": ""}, "finish": null}),
            json!({"delta": {"content": "Let me "}, "finish": null}),
            json!({"delta": {"content": "check."}, "finish": null}),
            json!({"delta": {"tool_calls": [{"index": 0, "id": "call_0", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}, "finish": null}),
            json!({"delta": {"tool_calls": [{"index": 1, "id": "call_1", "type": "function",
                "function": {"name": "get_time", "arguments": "{}"}}]}, "finish": null}),
            json!({"delta": {}, "finish": "tool_calls"}),
        ]
    );
    let expected = Usage {
        input: 30,
        cached_input: 16,
        cache_creation: 0,
        output: 33,
        reasoning: 8,
        total: 63,
    };
    assert_eq!(stream.usage(), expected);
    let last = stream.finish();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0]["id"], "chatcmpl-r-1");
    assert_eq!(last[0]["choices"], json!([]));
    assert_eq!(last[0]["usage"], expected.to_openai());
}

#[test]
fn streamed_text_ends_with_stop_then_usage_only_event() {
    let mut stream = GenerateStream::new("m");
    let mut chunks = stream
        .on_event(
            &json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]},
                                           "finishReason": "MAX_TOKENS"}]}),
        )
        .unwrap();
    // Some streams carry the final usage on an event of its own, with an empty text part.
    chunks.extend(
        stream
            .on_event(
                &json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]},
                                               "finishReason": "MAX_TOKENS"}],
                              "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1,
                                                "totalTokenCount": 4}}),
            )
            .unwrap(),
    );
    assert_eq!(
        deltas(&chunks),
        vec![
            json!({"delta": {"role": "assistant", "content": ""}, "finish": null}),
            json!({"delta": {"content": "Hi"}, "finish": null}),
            json!({"delta": {}, "finish": "length"}),
        ]
    );
    assert_eq!(stream.usage(), Usage::new(3, 1));
    // Without a responseId the id is made up, and the same on every chunk.
    let id = chunks[0]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("chatcmpl-") && id.len() > "chatcmpl-".len());
    assert!(chunks.iter().all(|c| c["id"] == id.as_str()));
    assert_eq!(stream.finish()[0]["id"], id.as_str());
}

#[test]
fn streamed_safety_blocks() {
    let mut stream = GenerateStream::new("m");
    let chunks = stream
        .on_event(
            &json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                          "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}),
        )
        .unwrap();
    assert_eq!(
        deltas(&chunks),
        vec![
            json!({"delta": {"role": "assistant", "content": ""}, "finish": null}),
            json!({"delta": {}, "finish": "content_filter"}),
        ]
    );
    assert_eq!(stream.finish()[0]["usage"]["prompt_tokens"], 9);

    let mut stream = GenerateStream::new("m");
    let mut chunks = stream
        .on_event(
            &json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Sure, "}]}}]}),
        )
        .unwrap();
    chunks.extend(
        stream
            .on_event(&json!({"candidates": [{"finishReason": "SAFETY"}]}))
            .unwrap(),
    );
    assert_eq!(
        deltas(&chunks)[2],
        json!({"delta": {}, "finish": "content_filter"})
    );
}

#[test]
fn streamed_candidates_keep_their_index() {
    let mut stream = GenerateStream::new("m");
    let chunks = stream
        .on_event(&json!({"candidates": [
            {"content": {"role": "model", "parts": [{"text": "A"}]}, "index": 0},
            {"content": {"role": "model", "parts": [{"text": "B"}]}, "index": 1, "finishReason": "STOP"}
        ]}))
        .unwrap();
    let indexed: Vec<(Value, Value)> = chunks
        .iter()
        .map(|c| {
            (
                c["choices"][0]["index"].clone(),
                c["choices"][0]["delta"].clone(),
            )
        })
        .collect();
    assert_eq!(
        indexed,
        vec![
            (json!(0), json!({"role": "assistant", "content": ""})),
            (json!(0), json!({"content": "A"})),
            (json!(1), json!({"role": "assistant", "content": ""})),
            (json!(1), json!({"content": "B"})),
            (json!(1), json!({})),
        ]
    );
}

#[test]
fn streamed_error_event() {
    let mut stream = GenerateStream::new("m");
    stream
        .on_event(
            &json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}]}),
        )
        .unwrap();
    let err = stream
        .on_event(
            &json!({"error": {"code": 503, "message": "The model is overloaded.",
                                    "status": "UNAVAILABLE"}}),
        )
        .unwrap_err();
    assert_eq!(
        err,
        TranslateError::Response("The model is overloaded.".into())
    );
}

#[test]
fn stream_through_the_sse_parser() {
    // The wire form, parsed with the crate's SSE parser, as the proxy will feed events in.
    let wire = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hi\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 2,\"candidatesTokenCount\": 1,\"totalTokenCount\": 3},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"abc\"}\r\n\r\n\
                data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" there\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 2,\"candidatesTokenCount\": 2,\"totalTokenCount\": 4},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"abc\"}\r\n\r\n";
    let mut parser = crate::sse::Parser::new();
    parser.push(wire.as_bytes());
    let mut stream = GenerateStream::new("gemini-2.5-flash");
    let mut text = String::new();
    let mut finish = None;
    while let Some(event) = parser.next_event().unwrap() {
        let data: Value = serde_json::from_str(&event.data).unwrap();
        for chunk in stream.on_event(&data).unwrap() {
            text.push_str(
                chunk["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap_or(""),
            );
            if let Some(f) = chunk["choices"][0]["finish_reason"].as_str() {
                finish = Some(f.to_string());
            }
        }
    }
    assert_eq!(text, "Hi there");
    assert_eq!(finish.as_deref(), Some("stop"));
    assert_eq!(stream.usage(), Usage::new(2, 2));
}

// --- errors -----------------------------------------------------------------------------------

#[test]
fn error_messages() {
    let body = br#"{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT"}}"#;
    assert_eq!(
        error_message(body),
        "API key not valid. Please pass a valid API key."
    );
    let vertex = br#"[{"error": {"code": 404, "message": "Publisher Model `x` was not found.", "status": "NOT_FOUND"}}]"#;
    assert_eq!(error_message(vertex), "Publisher Model `x` was not found.");
    assert_eq!(
        error_message(b"upstream connect error\n"),
        "upstream connect error"
    );
    assert_eq!(error_message(br#"{"detail": "x"}"#), r#"{"detail": "x"}"#);
    assert_eq!(error_message(br#"{"error": "quota"}"#), "quota");
    assert_eq!(error_message(b"\xffbad"), "\u{fffd}bad");
}

#[test]
fn api_key_rejections() {
    // As the Gemini API answers a wrong key: 400 INVALID_ARGUMENT, the reason in the details.
    let wrong_key = br#"{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]}}"#;
    assert!(api_key_rejected(wrong_key));
    let array = br#"[{"error": {"code": 400, "status": "INVALID_ARGUMENT", "details": [{"reason": "API_KEY_INVALID"}]}}]"#;
    assert!(api_key_rejected(array));
    // A bad request of the client's own is not a key problem.
    let bad_request = br#"{"error": {"code": 400, "message": "* GenerateContentRequest.contents: contents is not specified", "status": "INVALID_ARGUMENT"}}"#;
    assert!(!api_key_rejected(bad_request));
    assert!(!api_key_rejected(
        br#"{"error": {"details": [{"reason": "OTHER"}]}}"#
    ));
    assert!(!api_key_rejected(b"not json"));
}
