//! A body's texts read without building a `serde_json::Value`.
//!
//! A guardrail reads every text of a request and of an answer, and on almost every request finds
//! nothing to mask. Building a `Value` for that (an ordered map per object, every key hashed,
//! every string owned) cost more than the scan itself on a typical 2 KB chat request. The
//! borrowed [`Json`] (strings borrowed from the body unless escaped, objects as lists of
//! members, a repeated key's last value kept as `Value` keeps it) is the same tree, so the walk
//! of [`super`] reads exactly the texts it reads in a `Value`, in the same order. A caller that
//! must rewrite a text builds the `Value` then, and only then.

use std::borrow::Cow;

use super::{walk_request, walk_response, Tree};
use crate::json::Json;
use crate::Operation;

/// Calls `f` on every text of a request body of `op`, the texts
/// [`visit_request`](super::visit_request) visits in the same body. Fails when `body` is not
/// JSON.
pub fn read_request(
    op: Operation,
    body: &str,
    f: &mut dyn FnMut(&str),
) -> Result<(), serde_json::Error> {
    let mut tree: Json<'_> = serde_json::from_str(body)?;
    walk_request(op, &mut tree, &mut |t: &mut Cow<'_, str>| f(t));
    Ok(())
}

/// Calls `f` on every text of a whole answer, as [`visit_response`](super::visit_response).
pub fn read_response(
    op: Operation,
    body: &str,
    f: &mut dyn FnMut(&str),
) -> Result<(), serde_json::Error> {
    let mut tree: Json<'_> = serde_json::from_str(body)?;
    walk_response(op, &mut tree, &mut |t: &mut Cow<'_, str>| f(t));
    Ok(())
}

impl<'a> Tree for Json<'a> {
    type Text = Cow<'a, str>;
    fn member(&mut self, key: &str) -> Option<&mut Self> {
        match self {
            Json::Object(members) => members.get_mut(key),
            _ => None,
        }
    }
    fn items(&mut self) -> Option<&mut [Self]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }
    fn text(&mut self) -> Option<&mut Cow<'a, str>> {
        match self {
            Json::String(t) => Some(t),
            _ => None,
        }
    }
    fn as_str(&self) -> Option<&str> {
        Json::as_str(self)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::texts::{visit_request, visit_response};

    /// Every text both ways, for every operation: the borrowed reading must see exactly what
    /// the `Value` walk sees, in the same order.
    fn assert_same(body: &str) {
        for op in Operation::ALL {
            let mut by_value = Vec::new();
            let mut v: Value = serde_json::from_str(body).expect("test bodies are JSON");
            visit_request(op, &mut v, &mut |s| by_value.push(s.clone()));
            let mut borrowed = Vec::new();
            read_request(op, body, &mut |s| borrowed.push(s.to_owned())).expect("JSON");
            assert_eq!(borrowed, by_value, "request texts of {op:?} in {body}");

            let mut by_value = Vec::new();
            let mut v: Value = serde_json::from_str(body).expect("test bodies are JSON");
            visit_response(op, &mut v, &mut |s| by_value.push(s.clone()));
            let mut borrowed = Vec::new();
            read_response(op, body, &mut |s| borrowed.push(s.to_owned())).expect("JSON");
            assert_eq!(borrowed, by_value, "answer texts of {op:?} in {body}");
        }
    }

    #[test]
    fn reads_what_the_value_walk_reads_in_every_dialect() {
        let bodies = [
            json!({"model": "m", "messages": [
                {"role": "system", "content": "sys"},
                {"role": "developer", "content": [{"type": "text", "text": "dev"}]},
                {"role": "user", "content": [{"type": "text", "text": "u1"}, {"type": "image_url", "image_url": {"url": "x"}}]},
                {"role": "assistant", "content": null, "refusal": "no", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"q\":1}"}}]},
                {"role": "tool", "tool_call_id": "c", "content": "result"},
            ]}),
            json!({"model": "m", "system": [{"type": "text", "text": "sys"}], "messages": [
                {"role": "user", "content": "hi"},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "tr"}]},
                                             {"type": "tool_result", "tool_use_id": "u", "content": "plain"},
                                             {"type": "tool_use", "id": "v", "name": "f", "input": {"text": "not a text"}}]},
            ]}),
            json!({"model": "m", "system": "plain system", "messages": []}),
            json!({"model": "m", "instructions": "ins", "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "q"}]},
                {"role": "user", "content": "direct"},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "out"},
            ]}),
            json!({"model": "m", "input": "one string"}),
            json!({"prompt": ["a", "b", 3]}),
            json!({"prompt": "p", "input": [[1, 2], "c"]}),
            json!({"choices": [{"message": {"role": "assistant", "content": "answer", "tool_calls": [{"function": {"arguments": "{\"a\":2}"}}]}},
                               {"text": "completion"}]}),
            json!({"content": [{"type": "text", "text": "claude"}, {"type": "tool_use", "input": {}}], "output": [
                {"type": "message", "content": [{"type": "output_text", "text": "o"}]}]}),
            // Odd shapes: every walk must skip them the same way.
            json!({"messages": "not an array", "choices": {"message": "x"}, "content": 7, "input": {"text": "x"}}),
            json!({"messages": [null, 1, "s", [], {"content": {"text": "nested object"}}]}),
            json!(["top", "level", "array"]),
            json!("a string"),
            json!(null),
        ];
        for b in bodies {
            assert_same(&b.to_string());
        }
    }

    #[test]
    fn a_repeated_key_counts_once_with_its_last_value() {
        // serde_json keeps the last value of a repeated key; a reading that took the first would
        // let a client hide a text from the guardrail behind a decoy.
        assert_same(
            r#"{"messages":[{"role":"user","content":"decoy","content":"the real text"}]}"#,
        );
        assert_same(
            r#"{"messages":[{"content":"a"}],"messages":[{"content":"b"},{"content":"c"}]}"#,
        );
        assert_same(r#"{"messages":[{"content":"a"}],"messages":7}"#);
        let mut seen = Vec::new();
        read_request(
            Operation::ChatCompletions,
            r#"{"messages":[{"content":"decoy","content":"real"}]}"#,
            &mut |s| seen.push(s.to_owned()),
        )
        .expect("JSON");
        assert_eq!(seen, ["real"]);
    }

    #[test]
    fn escapes_are_decoded_and_plain_strings_borrowed() {
        let body = r#"{"messages":[{"content":"card 4111\u0020 1111\n","role":"user"}]}"#;
        assert_same(body);
        let mut tree: Json<'_> =
            serde_json::from_str(r#"{"a":"plain","b":"esc\"aped"}"#).expect("JSON");
        assert!(matches!(
            tree.member("a"),
            Some(Json::String(Cow::Borrowed("plain")))
        ));
        assert!(matches!(tree.member("b"), Some(Json::String(Cow::Owned(s))) if s == "esc\"aped"));
        // Escaped keys are matched by what they decode to.
        assert_same(r#"{"mess\u0061ges":[{"content":"found"}]}"#);
    }

    #[test]
    fn what_is_not_json_is_an_error() {
        for bad in [
            "",
            "{",
            r#"{"messages": [}"#,
            r#"{"a":1} trailing"#,
            "{\"a\":\"\u{1}\"}",
        ] {
            assert!(
                read_request(Operation::ChatCompletions, bad, &mut |_| {}).is_err(),
                "{bad:?}"
            );
            assert!(serde_json::from_str::<Value>(bad).is_err(), "{bad:?}");
        }
    }
}
