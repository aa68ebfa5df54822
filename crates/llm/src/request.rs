//! An inference request, parsed once: the body as a JSON object (every field kept, in order)
//! plus the few facts the gateway acts on.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::json::{self, Json};
use crate::tokens::{self, BodyView};
use crate::Operation;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request body is not valid JSON: {0}")]
    Json(String),
    #[error("the request body must be a JSON object")]
    NotObject,
    #[error("you must provide a model parameter")]
    MissingModel,
    #[error("`model` must be a string")]
    BadModel,
    #[error("`stream` must be a boolean")]
    BadStream,
}

/// The top-level fields every intake reads; the rest is validated as JSON by the same pass but
/// not built into values (a passthrough request never needs them).
const INTAKE_FIELDS: [&str; 3] = ["model", "stream", "stream_options"];

/// What token admission reads from a body, measured by the intake's own pass over it
/// ([`InferenceRequest::read`]): the input tokens, counted for the model the request is routed
/// as, and the output cap the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    pub input_tokens: u64,
    pub output_cap: Option<u64>,
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
    /// Set by [`InferenceRequest::read`] when asked; dropped when the body changes.
    measured: Option<Measured>,
}

impl InferenceRequest {
    /// Reads the body of an `op` request: the model (its alias not resolved) and the streaming
    /// flags, nothing else built.
    pub fn parse(op: Operation, raw: Bytes) -> Result<InferenceRequest, RequestError> {
        InferenceRequest::read(op, raw, None, false)
    }

    /// Reads the body of an `op` request as the gateway's intake does, in one pass: the model,
    /// resolved through `aliases`; the streaming flags; and, with `measure`, what token
    /// admission needs ([`InferenceRequest::measured`]), so admission does not read the body
    /// again. Counting costs about 30 µs per KB on this thread: large bodies are better left
    /// to be measured elsewhere.
    pub fn read(
        op: Operation,
        raw: Bytes,
        aliases: Option<&HashMap<String, String>>,
        measure: bool,
    ) -> Result<InferenceRequest, RequestError> {
        // serde would also read a map from an array; only an object is a request.
        let is_object = raw.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let mut keys = [""; INTAKE_FIELDS.len() + tokens::WANTED_MAX];
        keys[..INTAKE_FIELDS.len()].copy_from_slice(&INTAKE_FIELDS);
        let mut n = INTAKE_FIELDS.len();
        if measure {
            n += tokens::admission_fields(op, &mut keys[n..]);
        }
        let fields = json::top_level(&raw, &keys[..n]).map_err(|e| {
            if e.classify() == serde_json::error::Category::Data && !is_object {
                RequestError::NotObject
            } else {
                RequestError::Json(e.to_string())
            }
        })?;
        if !is_object {
            return Err(RequestError::NotObject);
        }
        let model = match fields.get("model") {
            Some(Json::String(m)) if !m.is_empty() => m,
            None | Some(Json::Null) | Some(Json::String(_)) => {
                return Err(RequestError::MissingModel)
            }
            Some(_) => return Err(RequestError::BadModel),
        };
        let stream = match fields.get("stream") {
            None | Some(Json::Null) => false,
            Some(Json::Bool(b)) => *b && op.can_stream(),
            Some(_) => return Err(RequestError::BadStream),
        };
        let wants_usage = fields
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Json::as_bool)
            .unwrap_or(false);
        let routed = aliases
            .and_then(|a| a.get(&**model))
            .map_or(&**model, String::as_str);
        let aliased = routed != &**model;
        let routed = routed.to_string();
        let measured = measure.then(|| {
            let view = BodyView::of_fields(op, &raw, fields);
            Measured {
                input_tokens: view.count_input(&routed),
                output_cap: view.output_cap(),
            }
        });
        let mut request = InferenceRequest {
            op,
            model: routed,
            stream,
            wants_usage,
            raw,
            body: std::sync::OnceLock::new(),
            modified: false,
            measured: None,
        };
        if aliased {
            request.rewrite_model();
        }
        request.measured = measured;
        Ok(request)
    }

    /// Input tokens and output cap, when [`InferenceRequest::read`] measured them and the body
    /// has not changed since (other than its alias resolved).
    pub fn measured(&self) -> Option<Measured> {
        self.measured
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
            self.model = model.to_string();
            self.rewrite_model();
            // The input count depends on the model's tokenizer.
            self.measured = None;
        }
    }

    /// Writes `self.model` into the body.
    fn rewrite_model(&mut self) {
        self.body();
        if let Some(body) = self.body.get_mut() {
            body.insert("model".into(), Value::String(self.model.clone()));
        }
        self.modified = true;
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
        self.measured = None;
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
    fn a_model_that_is_not_a_string_is_named() {
        let r = InferenceRequest::parse(
            Operation::ChatCompletions,
            Bytes::from_static(br#"{"model":5,"messages":[]}"#),
        );
        assert_eq!(r.err(), Some(RequestError::BadModel));
    }

    #[test]
    fn a_repeated_field_reads_as_its_last_value_like_the_body() {
        let r = InferenceRequest::parse(
            Operation::ChatCompletions,
            Bytes::from_static(br#"{"model":"a","stream":true,"model":"b"}"#),
        )
        .unwrap();
        assert_eq!(r.model, "b");
        assert_eq!(r.body()["model"], "b");
    }

    #[test]
    fn reading_resolves_the_alias_and_measures_in_the_same_pass() {
        let raw = Bytes::from_static(
            br#"{"model":"fast","max_tokens":64,"messages":[{"role":"user","content":"How many tokens is this sentence, counted the way the provider counts it?"}]}"#,
        );
        let aliases = HashMap::from([("fast".to_string(), "gpt-4o-mini".to_string())]);
        let op = Operation::ChatCompletions;
        let r = InferenceRequest::read(op, raw.clone(), Some(&aliases), true).unwrap();
        assert_eq!(r.model, "gpt-4o-mini");
        assert_eq!(r.body()["model"], "gpt-4o-mini");
        let view = BodyView::parse(op, &raw).unwrap();
        let expected = Measured {
            input_tokens: view.count_input("gpt-4o-mini"),
            output_cap: Some(64),
        };
        assert_eq!(r.measured(), Some(expected));
        // Counted with the routed model's tokenizer, not the alias's (an unknown name).
        assert_ne!(view.count_input("fast"), expected.input_tokens);

        let plain = InferenceRequest::read(op, raw.clone(), None, false).unwrap();
        assert_eq!((plain.model.as_str(), plain.measured()), ("fast", None));
    }

    #[test]
    fn a_changed_body_or_model_drops_the_measure() {
        let raw = Bytes::from_static(br#"{"model":"gpt-4o","messages":[]}"#);
        let op = Operation::ChatCompletions;
        let mut r = InferenceRequest::read(op, raw.clone(), None, true).unwrap();
        assert!(r.measured().is_some());
        r.set_field("max_completion_tokens", Value::from(10));
        assert_eq!(r.measured(), None);

        let mut r = InferenceRequest::read(op, raw, None, true).unwrap();
        r.set_model("claude-sonnet-4-5");
        assert_eq!(r.measured(), None);
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
