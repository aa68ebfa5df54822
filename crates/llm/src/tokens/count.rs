//! Counting a whole request: dispatch by operation, the shared counter, and the fallback for
//! bodies whose shape is not understood.

use serde_json::{Map, Value};

use super::family::{encoding_for_model, image_cost, ImageCost};
use super::{anthropic, count_text, openai, Encoding};
use crate::Operation;

/// Why a body's input could not be counted by its shape (then [`count_input`] estimates it from
/// its size). A provider would reject such a body anyway.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("`{0}` is missing")]
    Missing(&'static str),
    #[error("`{field}` must be {expected}")]
    Type {
        field: &'static str,
        expected: &'static str,
    },
}

/// Input tokens of one inference request as the provider would count them (prompt tokens), for
/// admission. Never fails: a body it cannot understand is estimated from its byte length.
pub fn count_input(op: Operation, model: &str, body: &Map<String, Value>) -> u64 {
    try_count_input(op, model, body).unwrap_or_else(|_| byte_estimate(body))
}

/// [`count_input`], saying why when the body's shape is not understood.
pub fn try_count_input(
    op: Operation,
    model: &str,
    body: &Map<String, Value>,
) -> Result<u64, ShapeError> {
    let c = Counter::new(model);
    match op {
        Operation::ChatCompletions => openai::chat(&c, body),
        Operation::Completions => openai::completions(&c, body),
        Operation::Embeddings => openai::embeddings(&c, body),
        Operation::Responses => openai::responses(&c, body),
        Operation::Messages | Operation::CountTokens => anthropic::messages(&c, body),
        Operation::Models => Ok(0),
    }
}

/// Half a token per byte of the body's JSON. That is above every tokenizer measured on English,
/// code, JSON and CJK (the densest, Claude Opus 4.7 on JSON, is ~0.5 a byte); only digit runs and
/// random strings go higher. A body that lands here is most likely rejected by the provider, so
/// the reservation is released at once and need not be tight.
fn byte_estimate(body: &Map<String, Value>) -> u64 {
    let mut w = ByteCounter(0);
    // Serialising a `Map` into a counting writer cannot fail; if it somehow did, the bytes
    // counted so far are still an estimate.
    let _ = serde_json::to_writer(&mut w, body);
    w.0.div_ceil(2)
}

struct ByteCounter(u64);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Counting helpers shared by the request shapes: one model's encoding and image pricing.
pub(super) struct Counter {
    pub encoding: Encoding,
    pub image: ImageCost,
}

impl Counter {
    pub fn new(model: &str) -> Counter {
        Counter {
            encoding: encoding_for_model(model),
            image: image_cost(model),
        }
    }

    pub fn text(&self, text: &str) -> u64 {
        count_text(self.encoding, text)
    }

    /// A value whose structure is not known: its text if it is a string, else its JSON (the
    /// punctuation and keys make this an over-count of whatever the provider renders).
    pub fn value(&self, v: &Value) -> u64 {
        match v {
            Value::Null => 0,
            Value::String(s) => self.text(s),
            other => self.text(&other.to_string()),
        }
    }

    /// The string at `key`, if it is one.
    pub fn field(&self, obj: &Map<String, Value>, key: &str) -> u64 {
        obj.get(key)
            .and_then(Value::as_str)
            .map_or(0, |s| self.text(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn malformed_bodies_fall_back_to_size() {
        let body = obj(json!({"model": "gpt-4o", "messages": "not an array"}));
        let err = try_count_input(Operation::ChatCompletions, "gpt-4o", &body);
        assert_eq!(
            err,
            Err(ShapeError::Type {
                field: "messages",
                expected: "an array"
            })
        );
        let bytes = serde_json::to_string(&body).map_or(0, |s| s.len() as u64);
        assert_eq!(
            count_input(Operation::ChatCompletions, "gpt-4o", &body),
            bytes.div_ceil(2)
        );
    }

    #[test]
    fn models_cost_nothing() {
        assert_eq!(count_input(Operation::Models, "gpt-4o", &Map::new()), 0);
    }
}
