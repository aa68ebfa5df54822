//! The built-in mock provider: an in-process OpenAI-schema server with deterministic answers and
//! realistic usage, for offline use, demos, tests and the default configuration.
//!
//! Answers are a pure function of the request: the same request always gets the same text, tool
//! call, embedding and usage. Token counts approximate a BPE tokenizer (about four characters a
//! token, plus per-message overhead) so numbers look like a real provider's.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::hub::{self, content_text};
use crate::{Operation, Usage};

/// What the mock answers: a whole JSON body, or the chunks of a stream (each one SSE `data`,
/// with `event` names for the Responses API), ending with `[DONE]` where OpenAI sends it.
pub enum Answer {
    Json(Value),
    Stream(Vec<(Option<&'static str>, Value)>),
}

/// Approximate tokens of a text: about four characters each, at least one for non-empty text.
pub fn approx_tokens(text: &str) -> u64 {
    let chars = text.chars().count() as u64;
    chars.div_ceil(4)
}

/// Prompt tokens of a chat request: text of every message plus a few tokens of framing each.
pub fn prompt_tokens(body: &Map<String, Value>) -> u64 {
    let messages = body.get("messages").and_then(Value::as_array);
    let mut n = 3;
    for m in messages.into_iter().flatten() {
        n += 4 + approx_tokens(&m.get("content").map(content_text).unwrap_or_default());
        for call in m
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            n += approx_tokens(&call.to_string());
        }
    }
    if let Some(tools) = body.get("tools") {
        n += approx_tokens(&tools.to_string());
    }
    for key in ["prompt", "input"] {
        match body.get(key) {
            Some(Value::String(s)) => n += approx_tokens(s),
            Some(v @ Value::Array(_)) => n += approx_tokens(&v.to_string()),
            _ => {}
        }
    }
    n
}

/// The mock's answer to `op` with this (OpenAI-schema) body.
pub fn answer(op: Operation, body: &Map<String, Value>, model: &str) -> Answer {
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    match op {
        Operation::Embeddings => Answer::Json(embeddings(body, model)),
        Operation::Completions => completion(body, model, stream),
        Operation::Responses => responses(body, model, stream),
        Operation::CountTokens => Answer::Json(json!({"input_tokens": prompt_tokens(body)})),
        _ => chat(body, model, stream),
    }
}

fn id(prefix: &str, body: &Map<String, Value>) -> String {
    format!(
        "{prefix}{:016x}",
        fnv(Value::Object(body.clone()).to_string().as_bytes())
    )
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

fn max_tokens(body: &Map<String, Value>) -> Option<u64> {
    ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_u64))
}

/// The answer text split in words (each one "token"), cut at the output cap.
fn words(text: &str, cap: Option<u64>) -> (Vec<String>, bool) {
    let all: Vec<String> = text.split_inclusive(' ').map(str::to_string).collect();
    match cap {
        Some(c) if (all.len() as u64) > c => (all[..c as usize].to_vec(), true),
        _ => (all, false),
    }
}

fn last_user_text(body: &Map<String, Value>) -> String {
    let messages = body.get("messages").and_then(Value::as_array);
    let text = messages
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .and_then(|m| m.get("content"))
        .map(content_text)
        .unwrap_or_default();
    text.chars().take(200).collect()
}

/// A tool call when the request offers tools and the conversation waits on the user's turn.
fn tool_call(body: &Map<String, Value>) -> Option<Value> {
    let tools = body.get("tools")?.as_array()?;
    let last = body.get("messages")?.as_array()?.last()?;
    if last.get("role").and_then(Value::as_str) != Some("user") {
        return None;
    }
    let chosen = match body.get("tool_choice") {
        Some(Value::String(s)) if s == "none" => return None,
        Some(Value::Object(o)) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str),
        _ => None,
    };
    let tool = tools.iter().find(|t| {
        chosen.is_none_or(|c| t.pointer("/function/name").and_then(Value::as_str) == Some(c))
    })?;
    let function = tool.get("function")?;
    let name = function.get("name")?.as_str()?;
    let params = function.get("parameters");
    let mut args = Map::new();
    let required = params
        .and_then(|p| p.get("required"))
        .and_then(Value::as_array);
    for key in required.into_iter().flatten().filter_map(Value::as_str) {
        let ty = params
            .and_then(|p| p.pointer(&format!("/properties/{key}/type")))
            .and_then(Value::as_str)
            .unwrap_or("string");
        let v = match ty {
            "number" | "integer" => json!(1),
            "boolean" => json!(true),
            "array" => json!([]),
            "object" => json!({}),
            _ => json!("mock"),
        };
        args.insert(key.to_string(), v);
    }
    Some(json!({
        "id": format!("call_{:012x}", fnv(name.as_bytes()) & 0xffff_ffff_ffff),
        "type": "function",
        "function": {"name": name, "arguments": Value::Object(args).to_string()},
    }))
}

fn answer_text(body: &Map<String, Value>) -> String {
    let messages = body.get("messages").and_then(Value::as_array);
    if let Some(last) = messages.and_then(|m| m.last()) {
        if last.get("role").and_then(Value::as_str) == Some("tool") {
            let result = last.get("content").map(content_text).unwrap_or_default();
            return format!("The tool returned: {result}");
        }
    }
    format!(
        "This is a mock response from Sluice. You said: {}",
        last_user_text(body)
    )
}

fn chat(body: &Map<String, Value>, model: &str, stream: bool) -> Answer {
    let id = id("chatcmpl-mock", body);
    let created = hub::now_unix();
    let input = prompt_tokens(body);
    if let Some(call) = tool_call(body) {
        let output = approx_tokens(&call.to_string());
        let usage = Usage::new(input, output);
        let message = json!({"role": "assistant", "content": null, "tool_calls": [call.clone()]});
        if !stream {
            return Answer::Json(hub::response(
                &id,
                created,
                model,
                message,
                "tool_calls",
                &usage,
            ));
        }
        let mut delta_call = call;
        delta_call["index"] = json!(0);
        let mut out = vec![
            (
                None,
                hub::chunk(
                    &id,
                    created,
                    model,
                    json!({"role": "assistant", "content": null}),
                    None,
                ),
            ),
            (
                None,
                hub::chunk(
                    &id,
                    created,
                    model,
                    json!({"tool_calls": [delta_call]}),
                    None,
                ),
            ),
            (
                None,
                hub::chunk(&id, created, model, json!({}), Some("tool_calls")),
            ),
        ];
        push_usage(&mut out, body, &id, created, model, &usage);
        return Answer::Stream(out);
    }
    let (words, cut) = words(&answer_text(body), max_tokens(body));
    let usage = Usage::new(input, words.len() as u64);
    let finish = if cut { "length" } else { "stop" };
    if !stream {
        let message = json!({"role": "assistant", "content": words.concat()});
        return Answer::Json(hub::response(&id, created, model, message, finish, &usage));
    }
    let mut out = vec![(
        None,
        hub::chunk(
            &id,
            created,
            model,
            json!({"role": "assistant", "content": ""}),
            None,
        ),
    )];
    for w in &words {
        out.push((
            None,
            hub::chunk(&id, created, model, json!({"content": w}), None),
        ));
    }
    out.push((
        None,
        hub::chunk(&id, created, model, json!({}), Some(finish)),
    ));
    push_usage(&mut out, body, &id, created, model, &usage);
    Answer::Stream(out)
}

/// The usage chunk, only when the client asked for it, as OpenAI does.
fn push_usage(
    out: &mut Vec<(Option<&'static str>, Value)>,
    body: &Map<String, Value>,
    id: &str,
    created: u64,
    model: &str,
    usage: &Usage,
) {
    let wanted = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if wanted {
        out.push((None, hub::usage_chunk(id, created, model, usage)));
    }
}

fn completion(body: &Map<String, Value>, model: &str, stream: bool) -> Answer {
    let id = id("cmpl-mock", body);
    let created = hub::now_unix();
    let prompt = match body.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    };
    let text = format!(
        "This is a mock completion of: {}",
        prompt.chars().take(200).collect::<String>()
    );
    let (words, cut) = words(&text, max_tokens(body));
    let usage = Usage::new(prompt_tokens(body), words.len() as u64);
    let finish = if cut { "length" } else { "stop" };
    let choice = |text: &str, finish: Option<&str>| json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish});
    if !stream {
        return Answer::Json(json!({
            "id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [choice(&words.concat(), Some(finish))], "usage": usage.to_openai(),
        }));
    }
    let frame = |choices: Value| json!({"id": id, "object": "text_completion", "created": created, "model": model, "choices": choices});
    let mut out: Vec<(Option<&'static str>, Value)> = words
        .iter()
        .map(|w| (None, frame(json!([choice(w, None)]))))
        .collect();
    out.push((None, frame(json!([choice("", Some(finish))]))));
    let wanted = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    if wanted {
        let mut last = frame(json!([]));
        last["usage"] = usage.to_openai();
        out.push((None, last));
    }
    Answer::Stream(out)
}

fn embeddings(body: &Map<String, Value>, model: &str) -> Value {
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let dims = body
        .get("dimensions")
        .and_then(Value::as_u64)
        .unwrap_or(256)
        .clamp(1, 4096) as usize;
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let v = vector(text, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = inputs.iter().map(|t| approx_tokens(t)).sum();
    json!({
        "object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
}

/// A unit vector derived from the text's hash: equal texts, equal vectors.
fn vector(text: &str, dims: usize) -> Vec<f32> {
    let mut state = fnv(text.as_bytes()) | 1;
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn responses(body: &Map<String, Value>, model: &str, stream: bool) -> Answer {
    let id = id("resp_mock", body);
    let created = hub::now_unix();
    let input = match body.get("input") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .rev()
            .find(|i| i.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|i| i.get("content"))
            .map(|c| match c {
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(""),
                other => content_text(other),
            })
            .unwrap_or_default(),
        _ => String::new(),
    };
    let text = format!(
        "This is a mock response from Sluice. You said: {}",
        input.chars().take(200).collect::<String>()
    );
    let (words, cut) = words(&text, max_tokens(body));
    let usage = Usage::new(prompt_tokens(body), words.len() as u64);
    let msg_id = format!("msg_{}", &id[9..]);
    let full = words.concat();
    let usage_json = json!({
        "input_tokens": usage.input, "output_tokens": usage.output, "total_tokens": usage.total,
        "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0},
    });
    let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": []});
    let item = |status: &str, text: &str| {
        json!({
            "type": "message", "id": msg_id, "status": status, "role": "assistant",
            "content": if text.is_empty() && status == "in_progress" { json!([]) } else { json!([part(text)]) },
        })
    };
    let response = |status: &str, output: Value, usage: Value| {
        json!({
            "id": id, "object": "response", "created_at": created, "status": status, "model": model,
            "output": output, "usage": usage, "error": null,
            "incomplete_details": if cut && status != "in_progress" { json!({"reason": "max_output_tokens"}) } else { Value::Null },
            "parallel_tool_calls": true, "tool_choice": "auto", "tools": [],
        })
    };
    let final_status = if cut { "incomplete" } else { "completed" };
    if !stream {
        return Answer::Json(response(
            final_status,
            json!([item("completed", &full)]),
            usage_json,
        ));
    }
    let mut seq = 0u64;
    let mut ev = |name: &'static str, mut data: Value| {
        data["type"] = json!(name);
        data["sequence_number"] = json!(seq);
        seq += 1;
        (Some(name), data)
    };
    let mut out = vec![
        ev(
            "response.created",
            json!({"response": response("in_progress", json!([]), Value::Null)}),
        ),
        ev(
            "response.in_progress",
            json!({"response": response("in_progress", json!([]), Value::Null)}),
        ),
        ev(
            "response.output_item.added",
            json!({"output_index": 0, "item": item("in_progress", "")}),
        ),
        ev(
            "response.content_part.added",
            json!({"item_id": msg_id, "output_index": 0, "content_index": 0, "part": part("")}),
        ),
    ];
    for w in &words {
        out.push(ev("response.output_text.delta", json!({"item_id": msg_id, "output_index": 0, "content_index": 0, "delta": w, "logprobs": []})));
    }
    out.push(ev("response.output_text.done", json!({"item_id": msg_id, "output_index": 0, "content_index": 0, "text": full, "logprobs": []})));
    out.push(ev(
        "response.content_part.done",
        json!({"item_id": msg_id, "output_index": 0, "content_index": 0, "part": part(&full)}),
    ));
    out.push(ev(
        "response.output_item.done",
        json!({"output_index": 0, "item": item("completed", &full)}),
    ));
    let done_name = if cut {
        "response.incomplete"
    } else {
        "response.completed"
    };
    out.push(ev(
        done_name,
        json!({"response": response(final_status, json!([item("completed", &full)]), usage_json)}),
    ));
    Answer::Stream(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn chat_is_deterministic_with_consistent_usage() {
        let b =
            body(json!({"model": "m", "messages": [{"role": "user", "content": "Hello there"}]}));
        let (Answer::Json(a), Answer::Json(b2)) = (
            answer(Operation::ChatCompletions, &b, "m"),
            answer(Operation::ChatCompletions, &b, "m"),
        ) else {
            panic!()
        };
        assert_eq!(
            a["choices"][0]["message"]["content"],
            b2["choices"][0]["message"]["content"]
        );
        let text = a["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(text.ends_with("You said: Hello there"), "{text}");
        let words = text.split_inclusive(' ').count() as u64;
        assert_eq!(a["usage"]["completion_tokens"], json!(words));
        assert_eq!(a["usage"]["prompt_tokens"], json!(3 + 4 + 3));
        assert_eq!(a["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn stream_respects_max_tokens_and_include_usage() {
        let b = body(
            json!({"model": "m", "stream": true, "max_tokens": 3, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]}),
        );
        let Answer::Stream(chunks) = answer(Operation::ChatCompletions, &b, "m") else {
            panic!()
        };
        let text: String = chunks
            .iter()
            .filter_map(|(_, c)| {
                c.pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
            })
            .collect();
        assert_eq!(text, "This is a ");
        assert_eq!(
            chunks[chunks.len() - 2].1["choices"][0]["finish_reason"],
            "length"
        );
        assert_eq!(chunks.last().unwrap().1["usage"]["completion_tokens"], 3);
        let without = body(
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        );
        let Answer::Stream(chunks) = answer(Operation::ChatCompletions, &without, "m") else {
            panic!()
        };
        assert!(chunks.iter().all(|(_, c)| c.get("usage").is_none()));
    }

    #[test]
    fn tools_are_called_then_results_quoted() {
        let tools = json!([{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city", "days"]}}}]);
        let b = body(
            json!({"model": "m", "tools": tools, "messages": [{"role": "user", "content": "Weather?"}]}),
        );
        let Answer::Json(a) = answer(Operation::ChatCompletions, &b, "m") else {
            panic!()
        };
        assert_eq!(a["choices"][0]["finish_reason"], "tool_calls");
        let call = &a["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city": "mock", "days": 1}));
        let b = body(json!({"model": "m", "tools": tools, "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]}));
        let Answer::Json(a) = answer(Operation::ChatCompletions, &b, "m") else {
            panic!()
        };
        assert_eq!(
            a["choices"][0]["message"]["content"],
            "The tool returned: sunny"
        );
    }

    #[test]
    fn embeddings_are_unit_vectors_equal_for_equal_text() {
        let b = body(json!({"model": "e", "input": ["a", "b", "a"], "dimensions": 8}));
        let Answer::Json(a) = answer(Operation::Embeddings, &b, "e") else {
            panic!()
        };
        let v = |i: usize| {
            a["data"][i]["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(v(0), v(2));
        assert_ne!(v(0), v(1));
        let norm: f64 = v(1).iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-3);
        let b64 =
            body(json!({"model": "e", "input": "a", "dimensions": 8, "encoding_format": "base64"}));
        let Answer::Json(a) = answer(Operation::Embeddings, &b64, "e") else {
            panic!()
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(a["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes.len(), 8 * 4);
    }

    #[test]
    fn responses_stream_ends_with_completed_usage() {
        let b = body(json!({"model": "m", "input": "Hi", "stream": true}));
        let Answer::Stream(events) = answer(Operation::Responses, &b, "m") else {
            panic!()
        };
        let (name, last) = events.last().unwrap();
        assert_eq!(*name, Some("response.completed"));
        let delta: String = events
            .iter()
            .filter(|(n, _)| *n == Some("response.output_text.delta"))
            .map(|(_, e)| e["delta"].as_str().unwrap())
            .collect();
        assert_eq!(
            last["response"]["output"][0]["content"][0]["text"],
            json!(delta)
        );
        assert_eq!(
            last["response"]["usage"]["output_tokens"],
            json!(delta.split_inclusive(' ').count())
        );
    }
}
