//! The output cap a request asks for.

use serde_json::{Map, Value};

use crate::json::Object;
use crate::Operation;

/// The output cap the client asked for: `max_completion_tokens`, else `max_tokens` (OpenAI chat
/// and completions, Anthropic messages), `max_output_tokens` (Responses); `None` if absent (or
/// `null`) or not a positive integer (an integral float such as `256.0` is accepted, as
/// providers parsing JSON numbers do).
///
/// Legacy Completions default to 16 output tokens when `max_tokens` is absent; this still
/// returns `None` so the caller applies its own configured default for every operation alike.
/// Embeddings and `count_tokens` produce no output tokens: always `None`.
pub fn requested_output_cap(op: Operation, body: &Map<String, Value>) -> Option<u64> {
    // The first key present decides: a bad `max_completion_tokens` is not rescued by a good
    // `max_tokens`, since the provider would reject the request anyway.
    let value = cap_fields(op)
        .iter()
        .find_map(|k| body.get(*k).filter(|v| !v.is_null()))?;
    positive_integer(value.as_u64(), value.as_f64())
}

/// [`requested_output_cap`] of a body read by [`BodyView`](super::BodyView).
pub(super) fn output_cap_of(op: Operation, body: &Object<'_>) -> Option<u64> {
    let value = cap_fields(op)
        .iter()
        .find_map(|k| body.get(k).filter(|v| !v.is_null()))?;
    positive_integer(value.as_u64(), value.as_f64())
}

/// The fields that name the output cap of `op`, in the order they are looked at.
pub(super) fn cap_fields(op: Operation) -> &'static [&'static str] {
    match op {
        Operation::ChatCompletions => &["max_completion_tokens", "max_tokens"],
        Operation::Completions | Operation::Messages => &["max_tokens"],
        Operation::Responses => &["max_output_tokens"],
        Operation::Embeddings | Operation::Models | Operation::CountTokens => &[],
    }
}

/// A JSON number (given as `as_u64`, `as_f64`) that is a positive integer.
fn positive_integer(as_u64: Option<u64>, as_f64: Option<f64>) -> Option<u64> {
    if let Some(n) = as_u64 {
        return (n > 0).then_some(n);
    }
    let f = as_f64?;
    // Integral, positive and exactly representable (below 2^53).
    let ok = f.fract() == 0.0 && (1.0..=9_007_199_254_740_992.0).contains(&f);
    // In range and integral, so the cast is exact.
    ok.then_some(f as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cap(op: Operation, v: Value) -> Option<u64> {
        match v {
            Value::Object(m) => requested_output_cap(op, &m),
            _ => None,
        }
    }

    #[test]
    fn each_operation_reads_its_own_field() {
        use Operation::*;
        assert_eq!(cap(ChatCompletions, json!({"max_tokens": 100})), Some(100));
        assert_eq!(
            cap(
                ChatCompletions,
                json!({"max_completion_tokens": 50, "max_tokens": 100})
            ),
            Some(50)
        );
        assert_eq!(
            cap(
                ChatCompletions,
                json!({"max_completion_tokens": null, "max_tokens": 100})
            ),
            Some(100)
        );
        assert_eq!(cap(Completions, json!({"max_tokens": 7})), Some(7));
        assert_eq!(cap(Completions, json!({})), None);
        assert_eq!(cap(Messages, json!({"max_tokens": 1024})), Some(1024));
        assert_eq!(
            cap(Responses, json!({"max_output_tokens": 2048})),
            Some(2048)
        );
        assert_eq!(cap(Responses, json!({"max_tokens": 2048})), None);
        assert_eq!(cap(Embeddings, json!({"max_tokens": 5})), None);
        assert_eq!(cap(CountTokens, json!({"max_tokens": 5})), None);
        assert_eq!(cap(Models, json!({"max_tokens": 5})), None);
    }

    #[test]
    fn only_positive_integers() {
        use Operation::ChatCompletions as C;
        assert_eq!(cap(C, json!({"max_tokens": 0})), None);
        assert_eq!(cap(C, json!({"max_tokens": -5})), None);
        assert_eq!(cap(C, json!({"max_tokens": 2.5})), None);
        assert_eq!(cap(C, json!({"max_tokens": 256.0})), Some(256));
        assert_eq!(cap(C, json!({"max_tokens": "256"})), None);
        assert_eq!(cap(C, json!({"max_tokens": 1e300})), None);
        assert_eq!(
            cap(C, json!({"max_completion_tokens": "x", "max_tokens": 9})),
            None
        );
    }
}
