//! Normalised token usage: one shape for every provider.

/// Tokens one exchange used, in one meaning whatever the provider:
///
/// - `input`: every prompt token, including those read from or written to a prompt cache
///   (OpenAI's `prompt_tokens`; Anthropic's `input_tokens + cache_read_input_tokens +
///   cache_creation_input_tokens`; Bedrock's `inputTokens + cacheReadInputTokens +
///   cacheWriteInputTokens`; Gemini's `promptTokenCount`).
/// - `cached_input`: the part of `input` read from a cache.
/// - `cache_creation`: the part of `input` written to a cache.
/// - `output`: every generated token, reasoning included.
/// - `reasoning`: the part of `output` spent on reasoning.
/// - `total`: `input + output`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    pub cache_creation: u64,
    pub reasoning: u64,
    pub total: u64,
}

/// What usage readers need of a JSON value, so that a `serde_json::Value` and the borrowed
/// [`Json`](crate::json::Json) of a passed-through answer (no tree of owned strings built for
/// three numbers) read alike.
pub(crate) trait UsageFields {
    /// The member `key` of an object (`None` for anything else).
    fn field(&self, key: &str) -> Option<&Self>;
    fn as_count(&self) -> Option<u64>;

    /// The member `key` as a whole number, 0 when missing or anything else.
    fn count(&self, key: &str) -> u64 {
        self.field(key).and_then(Self::as_count).unwrap_or(0)
    }
}

impl UsageFields for serde_json::Value {
    fn field(&self, key: &str) -> Option<&Self> {
        self.get(key)
    }
    fn as_count(&self) -> Option<u64> {
        self.as_u64()
    }
}

impl UsageFields for crate::json::Json<'_> {
    fn field(&self, key: &str) -> Option<&Self> {
        self.get(key)
    }
    fn as_count(&self) -> Option<u64> {
        self.as_u64()
    }
}

impl Usage {
    /// Builds a usage whose `total` is `input + output`.
    pub fn new(input: u64, output: u64) -> Usage {
        Usage {
            input,
            output,
            total: input + output,
            ..Usage::default()
        }
    }

    /// Recomputes `total` after the parts changed.
    pub fn with_total(mut self) -> Usage {
        self.total = self.input + self.output;
        self
    }

    /// From an OpenAI `usage` object (Chat Completions, Completions, Embeddings) or a Responses API
    /// `usage` object (`input_tokens`/`output_tokens`).
    pub fn from_openai(u: &serde_json::Value) -> Usage {
        Usage::of_openai(u)
    }

    /// [`from_openai`](Usage::from_openai) over any JSON value that reads like one.
    pub(crate) fn of_openai<J: UsageFields + ?Sized>(u: &J) -> Usage {
        let input = u.count("prompt_tokens").max(u.count("input_tokens"));
        let output = u.count("completion_tokens").max(u.count("output_tokens"));
        let in_details = u
            .field("prompt_tokens_details")
            .or_else(|| u.field("input_tokens_details"));
        let out_details = u
            .field("completion_tokens_details")
            .or_else(|| u.field("output_tokens_details"));
        Usage {
            input,
            output,
            cached_input: in_details.map_or(0, |d| d.count("cached_tokens")),
            cache_creation: 0,
            reasoning: out_details.map_or(0, |d| d.count("reasoning_tokens")),
            total: input + output,
        }
    }

    /// The OpenAI Chat Completions `usage` object for this usage.
    pub fn to_openai(&self) -> serde_json::Value {
        serde_json::json!({
            "prompt_tokens": self.input,
            "completion_tokens": self.output,
            "total_tokens": self.total,
            "prompt_tokens_details": {"cached_tokens": self.cached_input},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_usage_with_details() {
        let u = Usage::from_openai(&json!({
            "prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 100},
            "completion_tokens_details": {"reasoning_tokens": 12}
        }));
        assert_eq!(
            u,
            Usage {
                input: 120,
                output: 30,
                cached_input: 100,
                cache_creation: 0,
                reasoning: 12,
                total: 150
            }
        );
        assert_eq!(Usage::from_openai(&u.to_openai()), u);
    }

    #[test]
    fn responses_api_usage() {
        let u = Usage::from_openai(&json!({
            "input_tokens": 10, "output_tokens": 5, "total_tokens": 15,
            "input_tokens_details": {"cached_tokens": 2},
            "output_tokens_details": {"reasoning_tokens": 1}
        }));
        assert_eq!(
            (u.input, u.output, u.cached_input, u.reasoning, u.total),
            (10, 5, 2, 1, 15)
        );
    }
}
