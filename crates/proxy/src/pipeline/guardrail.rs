//! The Guardrail processor over whole payloads: the texts of a request (every role, tool results
//! included) or of a whole answer, in the client's dialect, scanned by the compiled detectors;
//! then block, redact in place, or monitor. Matched text never reaches logs or metrics: only
//! detector labels do.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;
use sluice_config::ir::{GuardAction, Guardrail, Processor};
use sluice_llm::Operation;
use sluice_policy::guard::{redact, Detector, Finding};

use super::body::BodyBuf;
use super::{Failure, FindingLabels, Rejection, RequestPayload, Verdict, BLOCKING_BODY_BYTES};
use crate::metrics::Label;
use crate::proxy::Proxy;

/// Which side of the exchange a check reads.
#[derive(Clone, Copy)]
pub enum Side {
    Request,
    Response,
}

/// What a check found.
pub struct Checked {
    /// Detector labels of the findings (`pii:email`, `injection`, ...), one per finding.
    pub labels: Vec<String>,
    /// A finding that cannot be masked (prompt injection) or a cap was exceeded.
    pub unmaskable: bool,
    /// Why a cap refused the request, if one did.
    pub cap: Option<String>,
}

impl Checked {
    fn flagged(&self) -> bool {
        !self.labels.is_empty() || self.cap.is_some()
    }
}

pub async fn on_request(
    proxy: &Proxy,
    p: &Processor,
    g: &Arc<Guardrail>,
    req: &mut RequestPayload<'_>,
) -> Result<Verdict, Failure> {
    let Some(buf) = req.body.as_deref_mut() else {
        return Ok(Verdict::Continue);
    };
    let checked = run(g, req.op, req.model, Side::Request, buf).await?;
    Ok(decide(proxy, p, g, &checked))
}

/// A whole answer (not streamed).
pub async fn on_response(
    proxy: &Proxy,
    p: &Processor,
    g: &Arc<Guardrail>,
    op: Option<Operation>,
    buf: &mut BodyBuf,
) -> Result<Verdict, Failure> {
    let checked = run(g, op, None, Side::Response, buf).await?;
    Ok(decide(proxy, p, g, &checked))
}

/// Checks `buf`, inline for small bodies, on the blocking pool for large ones (so the
/// processor's timeout bounds the wait, and the reactor keeps serving others).
async fn run(
    g: &Arc<Guardrail>,
    op: Option<Operation>,
    model: Option<&str>,
    side: Side,
    buf: &mut BodyBuf,
) -> Result<Checked, Failure> {
    if buf.len() < BLOCKING_BODY_BYTES {
        return check(g, op, model, side, buf);
    }
    // The buffer (with its tree, if one was built) moves to the blocking pool and back; its
    // bytes stay here too, so a lost task cannot lose the body.
    let mut owned = buf.take_leaving_bytes();
    let g = g.clone();
    let model = model.map(str::to_string);
    let (checked, owned) = tokio::task::spawn_blocking(move || {
        let checked = check(&g, op, model.as_deref(), side, &mut owned);
        (checked, owned)
    })
    .await
    .map_err(|e| Failure::Error(format!("guardrail task failed: {e}")))?;
    *buf = owned;
    checked
}

fn decide(proxy: &Proxy, p: &Processor, g: &Guardrail, checked: &Checked) -> Verdict {
    if !checked.flagged() {
        return Verdict::Continue;
    }
    let blocks = match g.action {
        GuardAction::Block => true,
        // What cannot be masked (an injection attempt, a cap) is blocked under Redact too.
        GuardAction::Redact => checked.unmaskable,
        GuardAction::Monitor => false,
    };
    let action = match (blocks, g.action) {
        (true, _) => "block",
        (false, GuardAction::Redact) => "redact",
        _ => "monitor",
    };
    for label in checked
        .labels
        .iter()
        .map(String::as_str)
        .chain(checked.cap.as_ref().map(|_| "cap"))
    {
        proxy
            .metrics
            .processors
            .findings
            .get_or_create(&FindingLabels {
                processor: Label(p.name.clone()),
                detector: label.to_string(),
                action,
            })
            .inc();
    }
    tracing::info!(processor = %p.name, detectors = ?checked.labels, cap = checked.cap.is_some(), action, "guardrail finding");
    if !blocks {
        return Verdict::Continue;
    }
    let message = match &checked.cap {
        Some(cap) if checked.labels.is_empty() => cap.clone(),
        _ => g.block.message.to_string(),
    };
    let status = if checked.cap.is_some() && checked.labels.is_empty() {
        StatusCode::BAD_REQUEST
    } else {
        g.block.status
    };
    Verdict::Reject(Rejection::new(status, "content_blocked", message))
}

/// Scans every text of the payload; under Redact, masks what was found, in place.
pub fn check(
    g: &Guardrail,
    op: Option<Operation>,
    model: Option<&str>,
    side: Side,
    buf: &mut BodyBuf,
) -> Result<Checked, Failure> {
    let mut checked = Checked {
        labels: Vec::new(),
        unmaskable: false,
        cap: None,
    };
    let redacting = g.action == GuardAction::Redact;
    let Some(op) = op else {
        // Not an inference API: the body is one text.
        let bytes = buf.bytes();
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Failure::Error("the body is not UTF-8 text".into()))?;
        if let Some(cap) = g.max_text_bytes.filter(|&cap| text.len() as u64 > cap) {
            checked.cap = Some(format!("the text exceeds the limit of {cap} bytes"));
        }
        let findings = scan(g, text, &mut checked);
        if redacting && !findings.is_empty() && !checked.unmaskable {
            buf.set_bytes(Bytes::from(redact(text, &findings)));
        }
        return Ok(checked);
    };
    let mut text_bytes: u64 = 0;
    buf.json_edit(|root| {
        let mut changed = false;
        let mut visit = |s: &mut String| {
            text_bytes += s.len() as u64;
            let findings = scan(g, s, &mut checked);
            if redacting && !findings.is_empty() {
                let masked = redact(s, &findings);
                if masked != *s {
                    *s = masked;
                    changed = true;
                }
            }
        };
        match side {
            Side::Request => sluice_llm::texts::visit_request(op, root, &mut visit),
            Side::Response => sluice_llm::texts::visit_response(op, root, &mut visit),
        }
        ((), changed)
    })?;
    if let Side::Request = side {
        if let Some(cap) = g.max_text_bytes.filter(|&cap| text_bytes > cap) {
            checked.cap = Some(format!(
                "the prompt's text ({text_bytes} bytes) exceeds the limit of {cap} bytes"
            ));
        }
        if let Some(cap) = g.max_input_tokens {
            let body = buf.json()?;
            if let Value::Object(map) = body {
                let tokens = sluice_llm::tokens::count_input(op, model.unwrap_or(""), map);
                if tokens > cap {
                    checked.cap = Some(format!(
                        "the prompt ({tokens} tokens) exceeds the limit of {cap} input tokens"
                    ));
                }
            }
        }
    }
    if checked.cap.is_some() {
        checked.unmaskable = true;
    }
    Ok(checked)
}

/// Scans one text; records labels, and returns the findings redaction may mask.
fn scan(g: &Guardrail, text: &str, checked: &mut Checked) -> Vec<Finding> {
    let result = g.guard.scan(text);
    let mut maskable = Vec::new();
    for f in result.findings {
        checked.labels.push(f.detector.label());
        if matches!(f.detector, Detector::Injection) {
            checked.unmaskable = true;
        } else {
            maskable.push(f);
        }
    }
    maskable
}
