//! Whole (non-streamed) answers: usage taken from the provider's own numbers, and the body
//! translated to the client's dialect when they differ.

use bytes::Bytes;
use serde_json::Value;

use crate::json::Json;
use crate::plan::Decoding;
use crate::provider::Wire;
use crate::{anthropic, bedrock, errors, gemini, Dialect, Operation, TranslateError, Usage};

#[derive(Debug)]
pub struct Decoded {
    /// The body for the client.
    pub body: Bytes,
    pub usage: Usage,
    /// The model the provider says answered.
    pub model: Option<String>,
}

pub fn decode(d: &Decoding, body: Bytes) -> Result<Decoded, TranslateError> {
    let not_json =
        |e: serde_json::Error| TranslateError::Response(format!("body is not JSON: {e}"));
    if !d.translate {
        // Passed through as it came: only `model` and `usage` are built, the rest is checked
        // and skipped.
        let (usage, model) = {
            let head = Head::read(&body).map_err(not_json)?;
            let usage = match (d.wire, d.op, &head.usage) {
                (_, Operation::CountTokens, _) | (_, _, None) => Usage::default(),
                (Wire::Anthropic, _, Some(u)) => anthropic::usage_of_anthropic(u),
                (_, _, Some(u)) => Usage::of_openai(u),
            };
            (usage, head.model)
        };
        return Ok(Decoded { body, usage, model });
    }
    let v: Value = serde_json::from_slice(&body).map_err(not_json)?;
    let model = v.get("model").and_then(Value::as_str).map(str::to_string);
    let (hub, usage) = match d.wire {
        Wire::OpenAI => {
            let usage = v.get("usage").map(Usage::from_openai).unwrap_or_default();
            (v, usage)
        }
        Wire::Anthropic => anthropic::hub_response(&v)?,
        Wire::Bedrock => bedrock::converse_response(&v, &d.model)?,
        Wire::Gemini => gemini::generate_response(&v, &d.model)?,
    };
    let model = hub
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or(model);
    let body = match d.client {
        Dialect::OpenAI => Bytes::from(hub.to_string()),
        Dialect::Anthropic => Bytes::from(anthropic::message_from_hub(&hub, &usage)?.to_string()),
    };
    Ok(Decoded { body, usage, model })
}

/// The top-level `model` (when a string) and `usage` of an answer, as a `Value` of the same
/// bytes would give them (a repeated key: its last value); any other JSON gives neither.
/// `usage` borrows from the body: the answer is passed through, so only three numbers are read
/// from it.
#[derive(Default)]
struct Head<'a> {
    model: Option<String>,
    usage: Option<Json<'a>>,
}

impl<'a> Head<'a> {
    fn read(body: &'a [u8]) -> Result<Head<'a>, serde_json::Error> {
        let is_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if !is_object {
            // Checked as JSON all the same; it has neither field.
            serde_json::from_slice::<serde::de::IgnoredAny>(body)?;
            return Ok(Head::default());
        }
        let mut de = serde_json::Deserializer::from_slice(body);
        let head = serde::Deserializer::deserialize_map(&mut de, HeadVisitor)?;
        de.end()?;
        Ok(head)
    }
}

struct HeadVisitor;

impl<'de> serde::de::Visitor<'de> for HeadVisitor {
    type Value = Head<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Head<'de>, A::Error> {
        let mut head = Head::default();
        while let Some(key) = map.next_key::<HeadKey>()? {
            match key {
                HeadKey::Model => head.model = map.next_value::<ModelField>()?.0,
                HeadKey::Usage => head.usage = Some(map.next_value()?),
                HeadKey::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(head)
    }
}

/// A top-level key, compared without being copied.
enum HeadKey {
    Model,
    Usage,
    Other,
}

impl<'de> serde::Deserialize<'de> for HeadKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<HeadKey, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = HeadKey;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, key: &str) -> Result<HeadKey, E> {
                Ok(match key {
                    "model" => HeadKey::Model,
                    "usage" => HeadKey::Usage,
                    _ => HeadKey::Other,
                })
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// `model`'s value: kept when it is a string, like `Value::as_str`.
struct ModelField(Option<String>);

impl<'de> serde::Deserialize<'de> for ModelField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ModelField, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(ModelField(match v {
            Value::String(s) => Some(s),
            _ => None,
        }))
    }
}

/// The human message of a provider's error body, in whatever shape its API uses.
pub fn provider_error_message(wire: Wire, body: &[u8]) -> String {
    let msg = match wire {
        Wire::OpenAI => errors::openai_message(body),
        Wire::Anthropic => anthropic::error_message(body),
        Wire::Bedrock => bedrock::error_message(body),
        Wire::Gemini => gemini::error_message(body),
    };
    msg.chars().take(1000).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the whole-`Value` reading gives: the reference `Head::read` must agree with.
    fn by_value(body: &str) -> Option<(Option<String>, Option<Value>)> {
        let v: Value = serde_json::from_str(body).ok()?;
        Some((
            v.get("model").and_then(Value::as_str).map(str::to_string),
            v.get("usage").cloned(),
        ))
    }

    #[test]
    fn head_reads_model_and_usage_as_a_value_would() {
        let bodies = [
            r#"{"id":"x","model":"gpt-4o","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
            r#"{"usage":{"input_tokens":1},"model":"a","usage":{"input_tokens":2},"model":"b"}"#,
            r#"{"model":7,"usage":null}"#,
            r#"{"mod\u0065l":"escaped-key","nested":{"model":"inner"}}"#,
            r#"{"model":"\u00e9t\u00e9"}"#,
            r#"[{"model":"in-array"}]"#,
            r#""just a string""#,
            r#"12.5e3"#,
            r#"{}"#,
        ];
        for body in bodies {
            let head = Head::read(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
            let expected = by_value(body);
            let expected = expected
                .as_ref()
                .map(|(model, usage)| (model.clone(), usage.as_ref().map(Json::of_value)));
            assert_eq!(Some((head.model, head.usage)), expected, "{body}");
        }
    }

    #[test]
    fn head_refuses_what_is_not_json() {
        for body in [
            r#"{"model":"a""#,
            r#"{"model":"a"} trailing"#,
            "",
            "{model:1}",
        ] {
            assert!(Head::read(body.as_bytes()).is_err(), "{body}");
            assert!(by_value(body).is_none(), "{body}");
        }
    }
}
