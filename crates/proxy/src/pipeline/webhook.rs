//! The Webhook guardrail: the payload's texts go to an external moderation service speaking the
//! OpenAI moderation API (`POST /v1/moderations` with `{"input": [texts]}`, answered with
//! `{"results": [{"flagged", "categories"}]}`); a flagged text blocks (or is only counted).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, HOST};
use http::uri::Authority;
use http::{Method, Request};
use serde_json::{json, Value};
use sluice_config::ir::Webhook;
use sluice_llm::Operation;

use super::body::BodyBuf;
use super::guardrail::Side;
use super::{Failure, FindingLabels, Rejection, RequestPayload, Verdict};
use crate::metrics::Label;
use crate::proxy::Proxy;
use crate::upstream::Upstream;

/// Moderation answers larger than this are an error.
const MAX_VERDICT_BYTES: usize = 1024 * 1024;

pub async fn on_request(
    proxy: &Proxy,
    name: &Arc<str>,
    w: &Webhook,
    req: &mut RequestPayload<'_>,
) -> Result<Verdict, Failure> {
    let Some(buf) = req.body.as_deref_mut() else {
        return Ok(Verdict::Continue);
    };
    let texts = texts(req.op, Side::Request, buf)?;
    let upstream = req
        .upstreams
        .get(w.cluster.id)
        .ok_or_else(|| Failure::Unavailable("no upstream for the moderation service".into()))?;
    judge(proxy, name, w, upstream, texts).await
}

pub async fn on_response(
    proxy: &Proxy,
    name: &Arc<str>,
    w: &Webhook,
    upstream: &Upstream,
    op: Option<Operation>,
    buf: &mut BodyBuf,
) -> Result<Verdict, Failure> {
    let texts = texts(op, Side::Response, buf)?;
    judge(proxy, name, w, upstream, texts).await
}

/// Judges the whole text of a streamed answer (held by the caller until the verdict).
pub async fn on_stream_text(
    proxy: &Proxy,
    name: &Arc<str>,
    w: &Webhook,
    upstream: &Upstream,
    text: String,
) -> Result<Verdict, Failure> {
    let texts = if text.is_empty() {
        Vec::new()
    } else {
        vec![text]
    };
    judge(proxy, name, w, upstream, texts).await
}

fn texts(op: Option<Operation>, side: Side, buf: &mut BodyBuf) -> Result<Vec<String>, Failure> {
    let Some(op) = op else {
        let bytes = buf.bytes();
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Failure::Error("the body is not UTF-8 text".into()))?;
        return Ok(vec![text.to_string()]);
    };
    if let Some(body) = buf.untouched_text() {
        let mut out = Vec::new();
        let mut read = |s: &str| {
            if !s.is_empty() {
                out.push(s.to_owned())
            }
        };
        // Not JSON: the tree's parse below reports it.
        if side.read_texts(op, body, &mut read).is_ok() {
            return Ok(out);
        }
    }
    buf.json_edit(|root| {
        let mut out = Vec::new();
        let mut visit = |s: &mut String| {
            if !s.is_empty() {
                out.push(s.clone())
            }
        };
        side.visit_texts(op, root, &mut visit);
        (out, false)
    })
}

async fn judge(
    proxy: &Proxy,
    name: &Arc<str>,
    w: &Webhook,
    upstream: &Upstream,
    texts: Vec<String>,
) -> Result<Verdict, Failure> {
    if texts.is_empty() {
        return Ok(Verdict::Continue);
    }
    let picked = upstream.pick().ok_or_else(|| {
        Failure::Unavailable("the moderation service has no ready endpoint".into())
    })?;
    let authority = match &w.host {
        Some(h) => Authority::try_from(&**h).unwrap_or_else(|_| picked.fallback_authority.clone()),
        None => picked.fallback_authority.clone(),
    };
    let mut payload = json!({ "input": texts });
    if let Some(model) = &w.model {
        payload["model"] = Value::String(model.clone());
    }
    let uri = upstream
        .uri(authority.clone(), &w.path)
        .map_err(|e| Failure::Error(format!("moderation URL: {e}")))?;
    let mut call = Request::new(crate::body::full(Bytes::from(payload.to_string())));
    *call.method_mut() = Method::POST;
    *call.uri_mut() = uri;
    call.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(h) = HeaderValue::from_str(authority.as_str()) {
        call.headers_mut().insert(HOST, h);
    }
    let resp = picked.client.request(call).await.map_err(|e| {
        if e.is_connect() {
            Failure::Unavailable(format!(
                "could not connect to the moderation service at {}",
                picked.address
            ))
        } else {
            Failure::Unavailable(format!("the moderation service failed: {e}"))
        }
    })?;
    let status = resp.status();
    let body =
        crate::body::collect_limited(crate::body::boxed(resp.into_body()), MAX_VERDICT_BYTES)
            .await
            .map_err(|_| Failure::Error("the moderation answer could not be read".into()))?;
    if !status.is_success() {
        return Err(Failure::Unavailable(format!(
            "the moderation service answered {status}"
        )));
    }
    let verdict: Value = serde_json::from_slice(&body)
        .map_err(|e| Failure::Error(format!("the moderation answer is not JSON: {e}")))?;
    let results = verdict
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| Failure::Error("the moderation answer has no `results`".into()))?;
    let mut categories: Vec<String> = Vec::new();
    let mut flagged = false;
    for r in results {
        if r.get("flagged").and_then(Value::as_bool).unwrap_or(false) {
            flagged = true;
            if let Some(map) = r.get("categories").and_then(Value::as_object) {
                for (k, v) in map {
                    if v.as_bool() == Some(true) && !categories.contains(k) {
                        categories.push(k.clone());
                    }
                }
            }
        }
    }
    if !flagged {
        return Ok(Verdict::Continue);
    }
    if categories.is_empty() {
        categories.push("flagged".into());
    }
    let action = if w.block_flagged { "block" } else { "monitor" };
    for c in &categories {
        proxy
            .metrics
            .processors
            .findings
            .get_or_create(&FindingLabels {
                processor: Label(name.clone()),
                detector: format!("webhook:{c}"),
                action,
            })
            .inc();
    }
    tracing::info!(processor = %name, categories = ?categories, action, "moderation service flagged the text");
    if !w.block_flagged {
        return Ok(Verdict::Continue);
    }
    Ok(Verdict::Reject(Rejection::new(
        w.block.status,
        "content_blocked",
        w.block.message.to_string(),
    )))
}
