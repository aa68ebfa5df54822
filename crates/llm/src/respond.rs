//! Whole (non-streamed) answers: usage taken from the provider's own numbers, and the body
//! translated to the client's dialect when they differ.

use bytes::Bytes;
use serde_json::Value;

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
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| TranslateError::Response(format!("body is not JSON: {e}")))?;
    let model = v.get("model").and_then(Value::as_str).map(str::to_string);
    if !d.translate {
        let usage = match (d.wire, d.op) {
            (_, Operation::CountTokens) => Usage::default(),
            (Wire::Anthropic, _) => v
                .get("usage")
                .map(anthropic::usage_from_anthropic)
                .unwrap_or_default(),
            _ => v.get("usage").map(Usage::from_openai).unwrap_or_default(),
        };
        return Ok(Decoded { body, usage, model });
    }
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
