//! The text delta of one streamed event, read straight from its JSON without building a
//! `serde_json::Value`.
//!
//! An output guardrail looks at every event of a stream, and most events are a few hundred bytes
//! of which it needs one string. Building the whole `Value` (an ordered map per object, every key
//! hashed, every string owned) was the largest cost of a guarded stream, and it is paid on the
//! answer's first event too, which is on the time-to-first-byte path. Typed views with borrowed
//! strings read the same fields and skip the rest.
//!
//! The result is exactly what [`texts::stream_delta_mut`](crate::texts::stream_delta_mut) finds
//! in the same event: whenever a view cannot decide the way the `Value` walk would (a field of an
//! unexpected type, a repeated key, which `Value` resolves to its last occurrence), reading falls
//! back to that walk.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use crate::json::BorrowedStr;
use crate::texts::stream_delta_mut;
use crate::Operation;

/// The text delta `event` (its SSE event name, and its data) carries, if any, as
/// [`stream_delta_mut`] finds it.
pub fn stream_delta_text<'a>(
    op: Operation,
    event: Option<&str>,
    data: &'a str,
) -> Option<Cow<'a, str>> {
    match read(op, event, data) {
        Ok(found) => found,
        Err(_) => {
            let mut v: Value = serde_json::from_str(data).ok()?;
            stream_delta_mut(op, event, &mut v).map(|s| Cow::Owned(std::mem::take(s)))
        }
    }
}

/// The typed reading; an error means "ask the `Value` walk".
fn read<'a>(
    op: Operation,
    event: Option<&str>,
    data: &'a str,
) -> Result<Option<Cow<'a, str>>, serde_json::Error> {
    Ok(match op {
        Operation::ChatCompletions => {
            let chunk: Chunk<ChatChoice<'a>> = serde_json::from_str(data)?;
            chunk.first().and_then(|c| c.delta).and_then(|d| match d {
                ChatDelta {
                    content: Some(text),
                    ..
                } => Some(text.0),
                ChatDelta {
                    tool_calls: Some(calls),
                    ..
                } => calls
                    .into_iter()
                    .next()
                    .and_then(|c| c.function)
                    .and_then(|f| f.arguments)
                    .map(|t| t.0),
                _ => None,
            })
        }
        Operation::Completions => {
            let chunk: Chunk<CompletionChoice<'a>> = serde_json::from_str(data)?;
            chunk.first().and_then(|c| c.text).map(|t| t.0)
        }
        Operation::Responses => {
            let ev: ResponsesEvent<'a> = serde_json::from_str(data)?;
            let kind = ev.kind.as_ref().map(|k| &*k.0).or(event);
            match kind {
                Some("response.output_text.delta" | "response.function_call_arguments.delta") => {
                    ev.delta.map(|t| t.0)
                }
                _ => None,
            }
        }
        Operation::Messages => {
            let ev: MessagesEvent<'a> = serde_json::from_str(data)?;
            if ev.kind.as_ref().map(|k| &*k.0) != Some("content_block_delta") {
                return Ok(None);
            }
            ev.delta.and_then(|d| match d.kind.as_ref().map(|k| &*k.0) {
                Some("text_delta") => d.text.map(|t| t.0),
                Some("input_json_delta") => d.partial_json.map(|t| t.0),
                _ => None,
            })
        }
        Operation::Embeddings | Operation::Models | Operation::CountTokens => None,
    })
}

// The views skip every field they do not name. A repeated field is an error (serde's derive
// refuses it), which sends the event to the `Value` walk.

#[derive(Deserialize)]
struct Chunk<C> {
    choices: Option<Vec<C>>,
}

impl<C> Chunk<C> {
    fn first(self) -> Option<C> {
        self.choices?.into_iter().next()
    }
}

#[derive(Deserialize)]
struct ChatChoice<'a> {
    #[serde(borrow, default)]
    delta: Option<ChatDelta<'a>>,
}

#[derive(Deserialize)]
struct ChatDelta<'a> {
    #[serde(borrow, default)]
    content: Option<BorrowedStr<'a>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCall<'a>>>,
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    #[serde(borrow, default)]
    function: Option<Function<'a>>,
}

#[derive(Deserialize)]
struct Function<'a> {
    #[serde(borrow, default)]
    arguments: Option<BorrowedStr<'a>>,
}

#[derive(Deserialize)]
struct CompletionChoice<'a> {
    #[serde(borrow, default)]
    text: Option<BorrowedStr<'a>>,
}

#[derive(Deserialize)]
struct ResponsesEvent<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<BorrowedStr<'a>>,
    #[serde(borrow, default)]
    delta: Option<BorrowedStr<'a>>,
}

#[derive(Deserialize)]
struct MessagesEvent<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<BorrowedStr<'a>>,
    #[serde(borrow, default)]
    delta: Option<MessagesDelta<'a>>,
}

#[derive(Deserialize)]
struct MessagesDelta<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<BorrowedStr<'a>>,
    #[serde(borrow, default)]
    text: Option<BorrowedStr<'a>>,
    #[serde(borrow, default)]
    partial_json: Option<BorrowedStr<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the `Value` walk finds.
    fn walked(op: Operation, event: Option<&str>, data: &str) -> Option<String> {
        let mut v: Value = serde_json::from_str(data).ok()?;
        stream_delta_mut(op, event, &mut v).cloned()
    }

    fn same(op: Operation, event: Option<&str>, data: &str) {
        assert_eq!(
            stream_delta_text(op, event, data).map(Cow::into_owned),
            walked(op, event, data),
            "{op:?} {event:?} {data}"
        );
    }

    #[test]
    fn chat_chunks_read_as_the_value_walk_does() {
        let op = Operation::ChatCompletions;
        for data in [
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hello \"world\"\n"}}]}"#,
            r#"{"choices":[{"delta":{"content":null,"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"x","function":{"name":"f"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1}}"#,
            r#"{"choices":null}"#,
            r#"{"usage":{"prompt_tokens":1}}"#,
            // Not what the views expect: the `Value` walk decides.
            r#"{"choices":[{"delta":{"content":7,"tool_calls":[{"function":{"arguments":"x"}}]}}]}"#,
            r#"{"choices":[{"delta":{"content":"first","content":"last"}}]}"#,
            r#"{"choices":"no"}"#,
            r#"{"choices":[1,{"delta":{"content":"x"}}]}"#,
            r#"{"choices":[{"delta":{"content":"a"}},{"delta":{"content":7}}]}"#,
            r#"[1,2]"#,
            r#"not json"#,
        ] {
            same(op, None, data);
        }
    }

    #[test]
    fn other_dialects_read_as_the_value_walk_does() {
        let cases = [
            (
                Operation::Completions,
                None,
                r#"{"choices":[{"text":"Hi","index":0}]}"#,
            ),
            (
                Operation::Completions,
                None,
                r#"{"choices":[{"text":null}]}"#,
            ),
            (
                Operation::Responses,
                Some("response.output_text.delta"),
                r#"{"type":"response.output_text.delta","item_id":"m","delta":"Hi"}"#,
            ),
            (
                Operation::Responses,
                Some("response.function_call_arguments.delta"),
                r#"{"delta":"{\"q\":"}"#,
            ),
            (
                Operation::Responses,
                Some("response.completed"),
                r#"{"type":"response.completed","response":{"id":"r"}}"#,
            ),
            (
                Operation::Responses,
                None,
                r#"{"type":"response.created","delta":{"not":"text"}}"#,
            ),
            (
                Operation::Messages,
                Some("content_block_delta"),
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            ),
            (
                Operation::Messages,
                Some("content_block_delta"),
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\""}}"#,
            ),
            (
                Operation::Messages,
                Some("content_block_delta"),
                r#"{"type":"content_block_delta","delta":{"type":"thinking_delta","thinking":"hm"}}"#,
            ),
            (
                Operation::Messages,
                Some("message_delta"),
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":3}}"#,
            ),
            (
                Operation::Messages,
                Some("message_start"),
                r#"{"type":"message_start","message":{"id":"m","content":[],"usage":{"input_tokens":5}}}"#,
            ),
            (
                Operation::Messages,
                None,
                r#"{"type":"content_block_delta","type":"ping","delta":{"type":"text_delta","text":"x"}}"#,
            ),
            (Operation::Embeddings, None, r#"{"data":[]}"#),
        ];
        for (op, event, data) in cases {
            same(op, event, data);
        }
    }

    #[test]
    fn unescaped_text_is_borrowed() {
        let data = r#"{"choices":[{"delta":{"content":"plain"}}]}"#;
        assert!(matches!(
            stream_delta_text(Operation::ChatCompletions, None, data),
            Some(Cow::Borrowed("plain"))
        ));
    }
}
