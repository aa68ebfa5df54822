//! An inference request, parsed once: the body as a JSON object (every field kept, in order)
//! plus the few facts the gateway acts on.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::Operation;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request body is not valid JSON: {0}")]
    Json(String),
    #[error("the request body must be a JSON object")]
    NotObject,
    #[error("you must provide a model parameter")]
    MissingModel,
    #[error("`stream` must be a boolean")]
    BadStream,
}

#[derive(Debug, Clone)]
pub struct InferenceRequest {
    pub op: Operation,
    pub body: Map<String, Value>,
    pub model: String,
    pub stream: bool,
    /// The bytes as received: forwarded as they are while nothing changed the body.
    raw: Bytes,
    modified: bool,
}

impl InferenceRequest {
    pub fn parse(op: Operation, raw: Bytes) -> Result<InferenceRequest, RequestError> {
        let value: Value =
            serde_json::from_slice(&raw).map_err(|e| RequestError::Json(e.to_string()))?;
        let Value::Object(body) = value else {
            return Err(RequestError::NotObject);
        };
        let model = match body.get("model") {
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            _ => return Err(RequestError::MissingModel),
        };
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b && op.can_stream(),
            Some(_) => return Err(RequestError::BadStream),
        };
        Ok(InferenceRequest {
            op,
            body,
            model,
            stream,
            raw,
            modified: false,
        })
    }

    /// Replaces the model (an alias resolved); the body is re-serialised when sent.
    pub fn set_model(&mut self, model: &str) {
        if self.model != model {
            self.model = model.to_string();
            self.body
                .insert("model".into(), Value::String(model.to_string()));
            self.modified = true;
        }
    }

    /// The body to send when nothing else changes it.
    pub fn bytes(&self) -> Bytes {
        if self.modified {
            Bytes::from(Value::Object(self.body.clone()).to_string())
        } else {
            self.raw.clone()
        }
    }

    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Whether an OpenAI-schema client asked for the final usage chunk of a stream.
    pub fn wants_stream_usage(&self) -> bool {
        self.body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_model_and_stream_and_keeps_bytes() {
        let raw = Bytes::from_static(
            br#"{"model":"gpt-4o","stream":true,"x-future":{"a":1},"messages":[]}"#,
        );
        let r = InferenceRequest::parse(Operation::ChatCompletions, raw.clone()).unwrap();
        assert_eq!(r.model, "gpt-4o");
        assert!(r.stream);
        assert_eq!(r.bytes(), raw);
        let mut r = r;
        r.set_model("gpt-4o-mini");
        let v: Value = serde_json::from_slice(&r.bytes()).unwrap();
        assert_eq!(v["model"], "gpt-4o-mini");
        assert_eq!(v["x-future"]["a"], 1);
    }

    #[test]
    fn rejects_bad_bodies() {
        let p = |s: &'static str| {
            InferenceRequest::parse(Operation::ChatCompletions, Bytes::from_static(s.as_bytes()))
                .err()
        };
        assert!(matches!(p("{"), Some(RequestError::Json(_))));
        assert_eq!(p("[]"), Some(RequestError::NotObject));
        assert_eq!(p(r#"{"messages":[]}"#), Some(RequestError::MissingModel));
        assert_eq!(p(r#"{"model":""}"#), Some(RequestError::MissingModel));
        assert_eq!(
            p(r#"{"model":"m","stream":"yes"}"#),
            Some(RequestError::BadStream)
        );
    }

    #[test]
    fn embeddings_never_stream() {
        let r = InferenceRequest::parse(
            Operation::Embeddings,
            Bytes::from_static(br#"{"model":"e","stream":true}"#),
        )
        .unwrap();
        assert!(!r.stream);
    }
}
