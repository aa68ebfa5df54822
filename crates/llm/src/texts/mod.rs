//! Every piece of human-readable text in an inference payload, in every dialect, visited
//! mutably: what a guardrail scans and, when it redacts, rewrites in place. Requests cover every
//! message role (system, developer, user, assistant, tool), tool results and tool-call arguments;
//! answers cover message content, tool-call arguments and completions; stream events cover the
//! text deltas of each client dialect.
//!
//! The walk is written once, over [`Tree`]: a `serde_json::Value` (to rewrite) or the borrowed
//! [`Json`](crate::json::Json) (to read a body's texts without building a `Value`, see
//! [`borrowed`]).

pub mod borrowed;

use serde_json::Value;

use crate::Operation;

/// A JSON tree the walk can descend: objects by member, arrays by item, and strings.
pub trait Tree: Sized {
    /// A string of the tree, as the visitor sees it.
    type Text;
    /// The member `key` of an object (for a key given more than once, its last value, as
    /// `serde_json` keeps it); `None` for anything else.
    fn member(&mut self, key: &str) -> Option<&mut Self>;
    /// The items of an array; `None` for anything else.
    fn items(&mut self) -> Option<&mut [Self]>;
    /// The string this is, to visit; `None` for anything else.
    fn text(&mut self) -> Option<&mut Self::Text>;
    /// The string this is, to compare.
    fn as_str(&self) -> Option<&str>;
}

impl Tree for Value {
    type Text = String;
    fn member(&mut self, key: &str) -> Option<&mut Self> {
        self.get_mut(key)
    }
    fn items(&mut self) -> Option<&mut [Self]> {
        self.as_array_mut().map(Vec::as_mut_slice)
    }
    fn text(&mut self) -> Option<&mut String> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    fn as_str(&self) -> Option<&str> {
        Value::as_str(self)
    }
}

/// Calls `f` on every text of a request body of `op` (as the client sent it).
pub fn visit_request(op: Operation, body: &mut Value, f: &mut dyn FnMut(&mut String)) {
    walk_request(op, body, f)
}

/// Calls `f` on every text of a whole (non-streamed) answer, in the client's dialect of `op`.
pub fn visit_response(op: Operation, body: &mut Value, f: &mut dyn FnMut(&mut String)) {
    walk_response(op, body, f)
}

/// The texts of a request body of `op`, in a fixed order (the order guardrail labels follow).
fn walk_request<T: Tree>(op: Operation, body: &mut T, f: &mut dyn FnMut(&mut T::Text)) {
    match op {
        Operation::ChatCompletions => {
            for m in items(body.member("messages")) {
                visit_openai_message(m, f);
            }
        }
        Operation::Completions => visit_strings(body.member("prompt"), f),
        Operation::Embeddings => visit_strings(body.member("input"), f),
        Operation::Responses => {
            visit_strings(body.member("instructions"), f);
            if let Some(input) = body.member("input") {
                if let Some(s) = input.text() {
                    f(s);
                } else {
                    for item in items(Some(input)) {
                        visit_responses_item(item, f);
                    }
                }
            }
        }
        Operation::Messages | Operation::CountTokens => {
            visit_anthropic_content(body.member("system"), f);
            for m in items(body.member("messages")) {
                visit_anthropic_content(m.member("content"), f);
            }
        }
        Operation::Models => {}
    }
}

/// The texts of a whole answer in the client's dialect of `op`.
fn walk_response<T: Tree>(op: Operation, body: &mut T, f: &mut dyn FnMut(&mut T::Text)) {
    match op {
        Operation::ChatCompletions => {
            for c in items(body.member("choices")) {
                if let Some(m) = c.member("message") {
                    visit_openai_message(m, f);
                }
            }
        }
        Operation::Completions => {
            for c in items(body.member("choices")) {
                visit_strings(c.member("text"), f);
            }
        }
        Operation::Responses => {
            for item in items(body.member("output")) {
                visit_responses_item(item, f);
            }
        }
        Operation::Messages => visit_anthropic_content(body.member("content"), f),
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

/// The items of `v` when it is an array (none otherwise).
fn items<T: Tree>(v: Option<&mut T>) -> std::slice::IterMut<'_, T> {
    v.and_then(Tree::items).unwrap_or_default().iter_mut()
}

/// A string, or an array of strings (token arrays and other values are left alone).
fn visit_strings<T: Tree>(v: Option<&mut T>, f: &mut dyn FnMut(&mut T::Text)) {
    let Some(v) = v else { return };
    if let Some(s) = v.text() {
        f(s);
        return;
    }
    for i in items(Some(v)) {
        if let Some(s) = i.text() {
            f(s);
        }
    }
}

/// A string, or text parts (`[{text}]`): OpenAI message and Responses item content.
fn visit_content<T: Tree>(v: Option<&mut T>, f: &mut dyn FnMut(&mut T::Text)) {
    let Some(v) = v else { return };
    if let Some(s) = v.text() {
        f(s);
        return;
    }
    for p in items(Some(v)) {
        visit_strings(p.member("text"), f);
    }
}

/// An OpenAI chat message: content (a string or text parts), refusal, tool-call arguments.
fn visit_openai_message<T: Tree>(m: &mut T, f: &mut dyn FnMut(&mut T::Text)) {
    visit_content(m.member("content"), f);
    visit_strings(m.member("refusal"), f);
    for call in items(m.member("tool_calls")) {
        if let Some(func) = call.member("function") {
            visit_strings(func.member("arguments"), f);
        }
    }
}

/// A Responses input or output item: a message (content string or parts), a function call's
/// arguments, or a function call's output.
fn visit_responses_item<T: Tree>(item: &mut T, f: &mut dyn FnMut(&mut T::Text)) {
    visit_content(item.member("content"), f);
    visit_strings(item.member("arguments"), f);
    visit_strings(item.member("output"), f);
}

/// Anthropic content: a string or blocks (text, tool_result with its own content, tool_use
/// input is JSON and left alone).
fn visit_anthropic_content<T: Tree>(v: Option<&mut T>, f: &mut dyn FnMut(&mut T::Text)) {
    let Some(v) = v else { return };
    if let Some(s) = v.text() {
        f(s);
        return;
    }
    for b in items(Some(v)) {
        visit_strings(b.member("text"), f);
        if b.member("type").and_then(|t| t.as_str()) == Some("tool_result") {
            visit_anthropic_content(b.member("content"), f);
        }
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
