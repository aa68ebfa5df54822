//! Counting a whole request: dispatch by operation, the shared counter, and the fallback for
//! bodies whose shape is not understood.

use serde_json::{Map, Value};

use super::family::{encoding_for_model, image_cost, ImageCost};
use super::{anthropic, cap, count_text, openai, Encoding};
use crate::json::{self, Json, Object};
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
///
/// For a body still in its received bytes, [`BodyView`] counts the same without building it.
pub fn count_input(op: Operation, model: &str, body: &Map<String, Value>) -> u64 {
    try_count_input(op, model, body).unwrap_or_else(|_| byte_estimate(body))
}

/// [`count_input`], saying why when the body's shape is not understood.
pub fn try_count_input(
    op: Operation,
    model: &str,
    body: &Map<String, Value>,
) -> Result<u64, ShapeError> {
    count_fields(op, model, &Object::of_map(body))
}

fn count_fields(op: Operation, model: &str, body: &Object<'_>) -> Result<u64, ShapeError> {
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

/// The top-level fields the input count of `op` reads (`openai.rs`, `anthropic.rs`).
fn counted_fields(op: Operation) -> &'static [&'static str] {
    match op {
        Operation::ChatCompletions => &["messages", "tools", "functions", "response_format"],
        Operation::Completions => &["prompt", "suffix"],
        Operation::Embeddings => &["input"],
        Operation::Responses => &["instructions", "input", "tools", "text"],
        Operation::Messages | Operation::CountTokens => &["messages", "system", "tools"],
        Operation::Models => &[],
    }
}

/// Most top-level fields one operation's count and cap read (checked by a test).
pub(crate) const WANTED_MAX: usize = 8;

/// Writes into `out` the top-level fields the input count and the output cap of `op` read, each
/// once, and returns how many. Both lists are a handful of names: a linear `contains` is cheaper
/// than building a set.
pub(crate) fn admission_fields(op: Operation, out: &mut [&'static str]) -> usize {
    let mut n = 0;
    for key in counted_fields(op).iter().chain(cap::cap_fields(op)) {
        if n < out.len() && !out[..n].contains(key) {
            out[n] = key;
            n += 1;
        }
    }
    n
}

/// A request body as admission reads it, straight from the bytes received: only the top-level
/// fields its operation's input count and output cap look at are built, their strings borrowed
/// from the bytes; every other field is validated and skipped.
///
/// [`BodyView::count_input`] and [`BodyView::output_cap`] give what [`count_input`] and
/// [`requested_output_cap`](super::requested_output_cap) give for the same body parsed into a
/// `Map`. One difference: a body with invalid UTF-8 inside a field neither reads fails to parse
/// as a `Map` at all (and an empty `Map` counts as one token), while the view counts it.
pub struct BodyView<'a> {
    op: Operation,
    raw: &'a [u8],
    fields: Object<'a>,
}

impl<'a> BodyView<'a> {
    /// Reads `raw`, which must hold one JSON object.
    pub fn parse(op: Operation, raw: &'a [u8]) -> Result<BodyView<'a>, serde_json::Error> {
        let mut wanted: [&str; WANTED_MAX] = [""; WANTED_MAX];
        let n = admission_fields(op, &mut wanted);
        let fields = json::top_level(raw, &wanted[..n])?;
        Ok(BodyView { op, raw, fields })
    }

    /// The view of `raw` from top-level `fields` already read, which hold at least the
    /// [`admission_fields`] of `op` (other fields are ignored).
    pub(crate) fn of_fields(op: Operation, raw: &'a [u8], fields: Object<'a>) -> BodyView<'a> {
        BodyView { op, raw, fields }
    }

    /// The output cap the client asked for (see [`requested_output_cap`](super::requested_output_cap)).
    pub fn output_cap(&self) -> Option<u64> {
        cap::output_cap_of(self.op, &self.fields)
    }

    /// Input tokens (see [`count_input`]).
    pub fn count_input(&self, model: &str) -> u64 {
        self.try_count_input(model).unwrap_or_else(|_| {
            // Rare (the provider will reject the body): the size of the whole body as a `Map`
            // re-serialises it, exactly as `count_input` measures it.
            let body: Map<String, Value> = serde_json::from_slice(self.raw).unwrap_or_default();
            byte_estimate(&body)
        })
    }

    /// [`BodyView::count_input`], saying why when the body's shape is not understood.
    pub fn try_count_input(&self, model: &str) -> Result<u64, ShapeError> {
        count_fields(self.op, model, &self.fields)
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
pub(super) struct Counter<'m> {
    pub encoding: Encoding,
    model: &'m str,
}

impl<'m> Counter<'m> {
    pub fn new(model: &'m str) -> Counter<'m> {
        Counter {
            encoding: encoding_for_model(model),
            model,
        }
    }

    /// What an image costs with this model (looked up when a request has one: most have none).
    pub fn image(&self) -> ImageCost {
        image_cost(self.model)
    }

    pub fn text(&self, text: &str) -> u64 {
        count_text(self.encoding, text)
    }

    /// A value whose structure is not known: its text if it is a string, else its JSON (the
    /// punctuation and keys make this an over-count of whatever the provider renders).
    pub fn value(&self, v: &Json<'_>) -> u64 {
        match v {
            Json::Null => 0,
            Json::String(s) => self.text(s),
            other => self.text(&other.to_json()),
        }
    }

    /// The string at `key`, if it is one.
    pub fn field(&self, obj: &Object<'_>, key: &str) -> u64 {
        obj.get(key)
            .and_then(Json::as_str)
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
    fn every_operation_reads_few_enough_fields_for_the_view() {
        for op in Operation::ALL {
            let n = counted_fields(op).len() + cap::cap_fields(op).len();
            assert!(n <= WANTED_MAX, "{op:?}");
        }
    }

    #[test]
    fn models_cost_nothing() {
        assert_eq!(count_input(Operation::Models, "gpt-4o", &Map::new()), 0);
    }
}
