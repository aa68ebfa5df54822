//! Every piece of human-readable text in an inference payload, in every dialect, visited
//! mutably: what a guardrail scans and, when it redacts, rewrites in place. Requests cover every
//! message role (system, developer, user, assistant, tool), tool results and tool-call arguments;
//! answers cover message content, tool-call arguments and completions; stream events cover the
//! text deltas of each client dialect.

use serde_json::Value;

use crate::Operation;

/// Calls `f` on every text of a request body of `op` (as the client sent it).
pub fn visit_request(op: Operation, body: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match op {
        Operation::ChatCompletions => {
            if let Some(msgs) = body.get_mut("messages").and_then(Value::as_array_mut) {
                for m in msgs {
                    visit_openai_message(m, f);
                }
            }
        }
        Operation::Completions => visit_strings(body.get_mut("prompt"), f),
        Operation::Embeddings => visit_strings(body.get_mut("input"), f),
        Operation::Responses => {
            visit_strings(body.get_mut("instructions"), f);
            match body.get_mut("input") {
                Some(Value::String(s)) => f(s),
                Some(Value::Array(items)) => {
                    for item in items {
                        visit_responses_item(item, f);
                    }
                }
                _ => {}
            }
        }
        Operation::Messages | Operation::CountTokens => {
            visit_anthropic_content(body.get_mut("system"), f);
            if let Some(msgs) = body.get_mut("messages").and_then(Value::as_array_mut) {
                for m in msgs {
                    visit_anthropic_content(m.get_mut("content"), f);
                }
            }
        }
        Operation::Models => {}
    }
}

/// Calls `f` on every text of a whole (non-streamed) answer, in the client's dialect of `op`.
pub fn visit_response(op: Operation, body: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match op {
        Operation::ChatCompletions => {
            for c in array_mut(body, "choices") {
                if let Some(m) = c.get_mut("message") {
                    visit_openai_message(m, f);
                }
            }
        }
        Operation::Completions => {
            for c in array_mut(body, "choices") {
                visit_strings(c.get_mut("text"), f);
            }
        }
        Operation::Responses => {
            for item in array_mut(body, "output") {
                visit_responses_item(item, f);
            }
        }
        Operation::Messages => visit_anthropic_content(body.get_mut("content"), f),
        Operation::Embeddings | Operation::Models | Operation::CountTokens => {}
    }
}

/// The text delta an event of a client stream carries, if any: OpenAI chat and completion
/// chunks, Responses `*.delta` events, Anthropic `content_block_delta` (text and tool input).
pub fn stream_delta_mut<'a>(
    op: Operation,
    event: Option<&str>,
    data: &'a mut Value,
) -> Option<&'a mut String> {
    match op {
        Operation::ChatCompletions => {
            let choice = data.get_mut("choices")?.as_array_mut()?.first_mut()?;
            let delta = choice.get_mut("delta")?;
            if delta.get("content").is_some_and(Value::is_string) {
                return string_mut(delta.get_mut("content"));
            }
            let call = delta.get_mut("tool_calls")?.as_array_mut()?.first_mut()?;
            string_mut(call.get_mut("function")?.get_mut("arguments"))
        }
        Operation::Completions => {
            let choice = data.get_mut("choices")?.as_array_mut()?.first_mut()?;
            string_mut(choice.get_mut("text"))
        }
        Operation::Responses => {
            let kind = data.get("type").and_then(Value::as_str).or(event)?;
            if kind == "response.output_text.delta"
                || kind == "response.function_call_arguments.delta"
            {
                string_mut(data.get_mut("delta"))
            } else {
                None
            }
        }
        Operation::Messages => {
            if data.get("type").and_then(Value::as_str) != Some("content_block_delta") {
                return None;
            }
            let delta = data.get_mut("delta")?;
            match delta.get("type").and_then(Value::as_str)? {
                "text_delta" => string_mut(delta.get_mut("text")),
                "input_json_delta" => string_mut(delta.get_mut("partial_json")),
                _ => None,
            }
        }
        Operation::Embeddings | Operation::Models | Operation::CountTokens => None,
    }
}

fn string_mut(v: Option<&mut Value>) -> Option<&mut String> {
    match v? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

fn array_mut<'a>(v: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    v.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// A string, or an array of strings (token arrays and other values are left alone).
fn visit_strings(v: Option<&mut Value>, f: &mut dyn FnMut(&mut String)) {
    match v {
        Some(Value::String(s)) => f(s),
        Some(Value::Array(items)) => {
            for i in items {
                if let Value::String(s) = i {
                    f(s);
                }
            }
        }
        _ => {}
    }
}

/// An OpenAI chat message: content (a string or text parts), refusal, tool-call arguments.
fn visit_openai_message(m: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match m.get_mut("content") {
        Some(Value::String(s)) => f(s),
        Some(Value::Array(parts)) => {
            for p in parts {
                visit_strings(p.get_mut("text"), f);
            }
        }
        _ => {}
    }
    visit_strings(m.get_mut("refusal"), f);
    for call in array_mut(m, "tool_calls") {
        if let Some(func) = call.get_mut("function") {
            visit_strings(func.get_mut("arguments"), f);
        }
    }
}

/// A Responses input or output item: a message (content string or parts), a function call's
/// arguments, or a function call's output.
fn visit_responses_item(item: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match item.get_mut("content") {
        Some(Value::String(s)) => f(s),
        Some(Value::Array(parts)) => {
            for p in parts {
                visit_strings(p.get_mut("text"), f);
            }
        }
        _ => {}
    }
    visit_strings(item.get_mut("arguments"), f);
    visit_strings(item.get_mut("output"), f);
}

/// Anthropic content: a string or blocks (text, tool_result with its own content, tool_use
/// input is JSON and left alone).
fn visit_anthropic_content(v: Option<&mut Value>, f: &mut dyn FnMut(&mut String)) {
    match v {
        Some(Value::String(s)) => f(s),
        Some(Value::Array(blocks)) => {
            for b in blocks {
                visit_strings(b.get_mut("text"), f);
                if b.get("type").and_then(Value::as_str) == Some("tool_result") {
                    visit_anthropic_content(b.get_mut("content"), f);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collect_request(op: Operation, mut v: Value) -> Vec<String> {
        let mut out = Vec::new();
        visit_request(op, &mut v, &mut |s| out.push(s.clone()));
        out
    }

    #[test]
    fn every_role_and_tool_result_of_a_chat_request() {
        let texts = collect_request(
            Operation::ChatCompletions,
            json!({"model": "m", "messages": [
                {"role": "system", "content": "sys"},
                {"role": "developer", "content": [{"type": "text", "text": "dev"}]},
                {"role": "user", "content": [{"type": "text", "text": "u1"}, {"type": "image_url", "image_url": {"url": "x"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"q\":1}"}}]},
                {"role": "tool", "tool_call_id": "c", "content": "result"},
            ]}),
        );
        assert_eq!(texts, ["sys", "dev", "u1", "{\"q\":1}", "result"]);
    }

    #[test]
    fn anthropic_system_blocks_and_nested_tool_results() {
        let texts = collect_request(
            Operation::Messages,
            json!({"model": "m", "system": [{"type": "text", "text": "sys"}], "messages": [
                {"role": "user", "content": "hi"},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "tr"}]},
                                             {"type": "tool_result", "tool_use_id": "u", "content": "plain"}]},
            ]}),
        );
        assert_eq!(texts, ["sys", "hi", "tr", "plain"]);
    }

    #[test]
    fn responses_completions_and_embeddings_inputs() {
        let texts = collect_request(
            Operation::Responses,
            json!({"model": "m", "instructions": "ins", "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "q"}]},
                {"type": "function_call_output", "call_id": "c", "output": "out"},
            ]}),
        );
        assert_eq!(texts, ["ins", "q", "out"]);
        assert_eq!(
            collect_request(Operation::Completions, json!({"prompt": ["a", "b"]})),
            ["a", "b"]
        );
        assert_eq!(
            collect_request(Operation::Embeddings, json!({"input": [[1, 2], "c"]})),
            ["c"]
        );
    }

    #[test]
    fn rewriting_changes_the_body_in_place() {
        let mut v = json!({"messages": [{"role": "user", "content": "secret"}]});
        visit_request(Operation::ChatCompletions, &mut v, &mut |s| {
            *s = s.replace("secret", "[X]")
        });
        assert_eq!(v["messages"][0]["content"], "[X]");
    }

    #[test]
    fn answers_and_stream_deltas() {
        let mut a = json!({"choices": [{"message": {"role": "assistant", "content": "answer"}}]});
        let mut seen = Vec::new();
        visit_response(Operation::ChatCompletions, &mut a, &mut |s| {
            seen.push(s.clone())
        });
        let mut m = json!({"content": [{"type": "text", "text": "claude"}]});
        visit_response(Operation::Messages, &mut m, &mut |s| seen.push(s.clone()));
        assert_eq!(seen, ["answer", "claude"]);

        let mut chunk = json!({"choices": [{"index": 0, "delta": {"content": "tok"}}]});
        assert_eq!(
            stream_delta_mut(Operation::ChatCompletions, None, &mut chunk).map(|s| s.clone()),
            Some("tok".into())
        );
        let mut ev = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "t"}});
        assert_eq!(
            stream_delta_mut(Operation::Messages, Some("content_block_delta"), &mut ev)
                .map(|s| s.clone()),
            Some("t".into())
        );
        let mut usage = json!({"choices": [], "usage": {"total_tokens": 1}});
        assert!(stream_delta_mut(Operation::ChatCompletions, None, &mut usage).is_none());
        let mut r = json!({"type": "response.output_text.delta", "delta": "d"});
        assert_eq!(
            stream_delta_mut(Operation::Responses, None, &mut r).map(|s| s.clone()),
            Some("d".into())
        );
    }
}
