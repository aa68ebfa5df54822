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

/// The fields the gateway reads, borrowed from the body: the rest is validated as JSON by the
/// same pass but not built into values (a passthrough request never needs them).
#[derive(serde::Deserialize)]
struct View<'a> {
    #[serde(borrow, default)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    stream: Option<Value>,
    #[serde(default)]
    stream_options: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct InferenceRequest {
    pub op: Operation,
    pub model: String,
    pub stream: bool,
    wants_usage: bool,
    /// The bytes as received: forwarded as they are while nothing changed the body.
    raw: Bytes,
    /// The whole body as JSON, built on first use (translation, rewriting, the mock).
    body: std::sync::OnceLock<Map<String, Value>>,
    modified: bool,
}

impl InferenceRequest {
    pub fn parse(op: Operation, raw: Bytes) -> Result<InferenceRequest, RequestError> {
        // serde would also read a struct from an array; only an object is a request.
        let is_object = raw.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let view: View<'_> = serde_json::from_slice(&raw).map_err(|e| {
            if e.classify() == serde_json::error::Category::Data && !is_object {
                RequestError::NotObject
            } else {
                RequestError::Json(e.to_string())
            }
        })?;
        if !is_object {
            return Err(RequestError::NotObject);
        }
        let model = match view.model {
            Some(m) if !m.is_empty() => m.into_owned(),
            _ => return Err(RequestError::MissingModel),
        };
        let stream = match view.stream {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b && op.can_stream(),
            Some(_) => return Err(RequestError::BadStream),
        };
        let wants_usage = view
            .stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(InferenceRequest {
            op,
            model,
            stream,
            wants_usage,
            raw,
            body: std::sync::OnceLock::new(),
            modified: false,
        })
    }

    /// The whole body as a JSON object (parsed once, on first use).
    pub fn body(&self) -> &Map<String, Value> {
        // `parse` already checked that the bytes are a JSON object.
        self.body
            .get_or_init(|| serde_json::from_slice(&self.raw).unwrap_or_default())
    }

    /// Lends the body's tree, if it was built, to a reader that may change it (the payload
    /// processors): a tree lent is not built again. Give it back with
    /// [`InferenceRequest::return_tree`] when the bytes are unchanged.
    pub fn lend_tree(&mut self) -> Option<Map<String, Value>> {
        if self.modified {
            // A changed body lives only in its tree: it stays here.
            return None;
        }
        self.body.take()
    }

    /// Takes back a tree lent by [`InferenceRequest::lend_tree`], which must still be the body
    /// as received.
    pub fn return_tree(&mut self, tree: Map<String, Value>) {
        if !self.modified {
            let _ = self.body.set(tree);
        }
    }

    /// Replaces the model (an alias resolved); the body is re-serialised when sent.
    pub fn set_model(&mut self, model: &str) {
        if self.model != model {
            self.body();
            self.model = model.to_string();
            if let Some(body) = self.body.get_mut() {
                body.insert("model".into(), Value::String(model.to_string()));
            }
            self.modified = true;
        }
    }

    /// The body as received, while nothing has changed it (once something has, the body is
    /// [`InferenceRequest::body`]). Reading fields straight from these bytes spares building the
    /// whole body.
    pub fn received(&self) -> Option<&Bytes> {
        (!self.modified).then_some(&self.raw)
    }

    /// Size of the body as received.
    pub fn raw_len(&self) -> usize {
        self.raw.len()
    }

    /// Sets a top-level field of the body (e.g. an output cap the gateway imposes); the body is
    /// re-serialised when sent.
    pub fn set_field(&mut self, key: &str, value: Value) {
        self.body();
        if let Some(body) = self.body.get_mut() {
            body.insert(key.to_string(), value);
        }
        self.modified = true;
    }

    /// The body to send when nothing else changes it.
    pub fn bytes(&self) -> Bytes {
        if self.modified {
            Bytes::from(Value::Object(self.body().clone()).to_string())
        } else {
            self.raw.clone()
        }
    }

    /// Whether an OpenAI-schema client asked for the final usage chunk of a stream.
    pub fn wants_stream_usage(&self) -> bool {
        self.wants_usage
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
        assert_eq!(r.received(), Some(&raw));
        let mut r = r;
        r.set_model("gpt-4o-mini");
        assert_eq!(r.received(), None);
        let v: Value = serde_json::from_slice(&r.bytes()).unwrap();
        assert_eq!(v["model"], "gpt-4o-mini");
        assert_eq!(v["x-future"]["a"], 1);
    }

    #[test]
    fn a_lent_tree_comes_back_only_to_an_unchanged_body() {
        let raw = Bytes::from_static(br#"{"model":"m","messages":[]}"#);
        let mut r = InferenceRequest::parse(Operation::ChatCompletions, raw.clone()).unwrap();
        assert!(r.lend_tree().is_none(), "nothing built yet");
        let tree = r.body().clone();
        let lent = r.lend_tree().expect("built by body()");
        assert_eq!(lent, tree);
        r.return_tree(lent);
        assert_eq!(r.body(), &tree);
        assert_eq!(r.bytes(), raw);

        r.set_model("other");
        assert!(
            r.lend_tree().is_none(),
            "a changed body lives only in its tree"
        );
        assert_eq!(r.body()["model"], "other");
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
