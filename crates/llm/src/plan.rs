//! From a client's inference request to the call a provider understands: path, headers, body,
//! and how to read the answer back ([`Decoding`]).

use std::time::SystemTime;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::HeaderMap;
use serde_json::{json, Value};

use crate::provider::{Credential, ProviderKind, Wire};
use crate::request::InferenceRequest;
use crate::{anthropic, bedrock, gemini, Dialect, Operation, Secret, TranslateError};

/// How to read a provider's answer and turn it into the client's.
#[derive(Debug, Clone)]
pub struct Decoding {
    pub op: Operation,
    pub wire: Wire,
    pub client: Dialect,
    pub stream: bool,
    /// Client and provider speak different dialects: the answer goes through the hub.
    pub translate: bool,
    /// The client asked for the usage chunk of an OpenAI stream (otherwise it is removed).
    pub client_wants_usage: bool,
    /// The model the provider was asked for (translated answers carry it).
    pub model: String,
}

/// One request to a provider, before credentials.
#[derive(Debug)]
pub struct Call {
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub decoding: Decoding,
}

/// Builds the provider call for `req`, sending `upstream_model` as the model.
pub fn plan(
    kind: &ProviderKind,
    req: &InferenceRequest,
    upstream_model: &str,
) -> Result<Call, TranslateError> {
    let op = req.op;
    if !kind.supports(op) {
        return Err(TranslateError::Unsupported(format!(
            "{} ({})",
            op_path(op),
            kind.otel_name()
        )));
    }
    let wire = kind.wire();
    let client = op.dialect();
    // Token counting is answered by the mock in its own shape: nothing to translate.
    let translate = op != Operation::CountTokens
        && !matches!(
            (client, wire),
            (Dialect::OpenAI, Wire::OpenAI) | (Dialect::Anthropic, Wire::Anthropic)
        );
    let body = if translate {
        let mut hub = hub_request(req)?;
        hub["model"] = json!(upstream_model);
        match wire {
            Wire::OpenAI => Bytes::from(hub.to_string()),
            Wire::Anthropic => Bytes::from(anthropic::messages_request(&hub)?.to_string()),
            Wire::Bedrock => Bytes::from(bedrock::converse_request(&hub)?.to_string()),
            Wire::Gemini => Bytes::from(gemini::generate_request(&hub)?.to_string()),
        }
    } else {
        same_dialect_body(req, upstream_model, wire)
    };
    let path_and_query = path(kind, op, upstream_model, req.stream);
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if req.stream && wire != Wire::Bedrock {
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
    } else {
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    }
    if let ProviderKind::Anthropic { version } = kind {
        if let Ok(v) = HeaderValue::from_str(version) {
            headers.insert(HeaderName::from_static("anthropic-version"), v);
        }
    }
    Ok(Call {
        path_and_query,
        headers,
        body,
        decoding: Decoding {
            op,
            wire,
            client,
            stream: req.stream,
            translate,
            client_wants_usage: req.wants_stream_usage(),
            model: upstream_model.to_string(),
        },
    })
}

/// The request in hub form (OpenAI chat), from an OpenAI chat or an Anthropic Messages client.
fn hub_request(req: &InferenceRequest) -> Result<Value, TranslateError> {
    let body = Value::Object(req.body().clone());
    match req.op {
        Operation::ChatCompletions => Ok(body),
        Operation::Messages => anthropic::hub_request_from_messages(&body),
        other => Err(TranslateError::Unsupported(op_path(other).to_string())),
    }
}

/// Same dialect: the client's bytes, touched only to rename the model or to ask an OpenAI stream
/// for its usage (which the client then does not see unless it asked).
fn same_dialect_body(req: &InferenceRequest, upstream_model: &str, wire: Wire) -> Bytes {
    let needs_usage = wire == Wire::OpenAI
        && req.stream
        && matches!(req.op, Operation::ChatCompletions | Operation::Completions)
        && !req.wants_stream_usage();
    if upstream_model == req.model && !needs_usage {
        return req.bytes();
    }
    let mut body = req.body().clone();
    body.insert("model".into(), json!(upstream_model));
    if needs_usage {
        let options = body.entry("stream_options").or_insert_with(|| json!({}));
        if let Value::Object(o) = options {
            o.insert("include_usage".into(), json!(true));
        } else {
            *options = json!({"include_usage": true});
        }
    }
    Bytes::from(Value::Object(body).to_string())
}

fn op_path(op: Operation) -> &'static str {
    match op {
        Operation::ChatCompletions | Operation::Messages => "/chat/completions",
        Operation::Completions => "/completions",
        Operation::Embeddings => "/embeddings",
        Operation::Responses => "/responses",
        Operation::Models => "/models",
        Operation::CountTokens => "/messages/count_tokens",
    }
}

fn path(kind: &ProviderKind, op: Operation, model: &str, stream: bool) -> String {
    match kind {
        ProviderKind::OpenAI { path_prefix } => format!("{path_prefix}{}", op_path(op)),
        ProviderKind::Azure {
            api_version,
            deployments,
        } => {
            let deployment = deployments.get(model).map_or(model, String::as_str);
            format!(
                "/openai/deployments/{}{}?api-version={}",
                encode_segment(deployment),
                op_path(op),
                encode_segment(api_version)
            )
        }
        ProviderKind::Anthropic { .. } => match op {
            Operation::CountTokens => "/v1/messages/count_tokens".into(),
            _ => "/v1/messages".into(),
        },
        ProviderKind::Bedrock { .. } => bedrock::converse_path(model, stream),
        ProviderKind::Vertex { project, location } => {
            gemini::endpoints::vertex_path(project, location, model, stream)
        }
        ProviderKind::Gemini => gemini::endpoints::gemini_api_path(model, stream),
        ProviderKind::Mock(_) => op_path(op).into(),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Adds the gateway's credential to a call: API-key headers, a bearer token, or a SigV4
/// signature over the final request (`host` is the Host the provider sees).
pub fn authorize(
    kind: &ProviderKind,
    credential: &Credential,
    call: &mut Call,
    host: &str,
    now: SystemTime,
    access_token: Option<&Secret>,
) -> Result<(), TranslateError> {
    let value = |s: &str| {
        let mut v = HeaderValue::from_str(s).map_err(|_| {
            TranslateError::Request("credential is not a valid header value".into())
        })?;
        v.set_sensitive(true);
        Ok::<_, TranslateError>(v)
    };
    match (kind, credential) {
        (ProviderKind::Vertex { .. }, _) => {
            if let Some(token) = access_token {
                call.headers
                    .insert(AUTHORIZATION, value(&format!("Bearer {}", token.expose()))?);
            }
        }
        (ProviderKind::Bedrock { region }, Credential::Aws(creds)) => {
            let uri: http::Uri = format!("https://{host}{}", call.path_and_query)
                .parse()
                .map_err(|_| TranslateError::Request("invalid Bedrock request URI".into()))?;
            call.headers.insert(
                http::header::HOST,
                HeaderValue::from_str(host)
                    .map_err(|_| TranslateError::Request("invalid host".into()))?,
            );
            bedrock::sigv4::sign(
                &http::Method::POST,
                &uri,
                &mut call.headers,
                &call.body,
                creds,
                region,
                "bedrock",
                now,
            )
            .map_err(|e| {
                TranslateError::Request(format!("cannot sign the Bedrock request: {e}"))
            })?;
        }
        (_, Credential::ApiKey(key)) => {
            let (name, v) = match kind {
                ProviderKind::Azure { .. } => {
                    (HeaderName::from_static("api-key"), value(key.expose())?)
                }
                ProviderKind::Anthropic { .. } => {
                    (HeaderName::from_static("x-api-key"), value(key.expose())?)
                }
                ProviderKind::Gemini => (
                    HeaderName::from_static("x-goog-api-key"),
                    value(key.expose())?,
                ),
                _ => (AUTHORIZATION, value(&format!("Bearer {}", key.expose()))?),
            };
            call.headers.insert(name, v);
        }
        _ => {}
    }
    Ok(())
}
