//! A `Guardrail` processor's settings to a compiled [`Guardrail`]: the detectors (built once
//! into a `sluice_policy::guard::Guard`), the action, the caps and the streaming mode.

use std::sync::Arc;

use sluice_policy::guard::{Guard, GuardSpec, NamedPatterns, PiiKind, SecretKind};

use super::payload::{apply_to, block_reply};
use crate::error::Diagnostics;
use crate::ir::{GuardAction, Guardrail, StreamMode};
use crate::objects::payload::{GuardrailSpec, PatternListSpec, PayloadProcessorSpec};
use crate::objects::Object;

const DEFAULT_HOLD_BACK: usize = 128;
const DEFAULT_INJECTION_THRESHOLD: f32 = 0.5;

pub(super) fn compile(
    p: &Object<PayloadProcessorSpec>,
    s: &GuardrailSpec,
    field: &str,
    diags: &mut Diagnostics,
) -> Option<Guardrail> {
    let before = diags.errors.len();
    let (on_request, on_response) = apply_to(p, &s.apply_to, &format!("{field}.applyTo"), diags);
    let action = match s.action.as_deref() {
        None | Some("Block") => GuardAction::Block,
        Some("Redact") => GuardAction::Redact,
        Some("Monitor") => GuardAction::Monitor,
        Some(other) => {
            diags.error(p.error(
                format!("{field}.action"),
                format!("unknown action {other:?}: use Block, Redact or Monitor"),
            ));
            GuardAction::Block
        }
    };
    let mut pii = Vec::new();
    for (i, name) in s.pii.iter().enumerate() {
        match name.as_str() {
            "All" => pii.extend([
                PiiKind::Email,
                PiiKind::Phone,
                PiiKind::CreditCard,
                PiiKind::UsSsn,
                PiiKind::Iban,
                PiiKind::IpAddress,
            ]),
            "Email" => pii.push(PiiKind::Email),
            "Phone" => pii.push(PiiKind::Phone),
            "CreditCard" => pii.push(PiiKind::CreditCard),
            "USSSN" => pii.push(PiiKind::UsSsn),
            "IBAN" => pii.push(PiiKind::Iban),
            "IPAddress" => pii.push(PiiKind::IpAddress),
            other => diags.error(p.error(
                format!("{field}.pii[{i}]"),
                format!("unknown PII kind {other:?}: use Email, Phone, CreditCard, USSSN, IBAN, IPAddress or All"),
            )),
        }
    }
    let mut secrets = Vec::new();
    for (i, name) in s.secrets.iter().enumerate() {
        match name.as_str() {
            "All" => secrets.extend([
                SecretKind::ApiKey,
                SecretKind::AwsAccessKey,
                SecretKind::PrivateKey,
            ]),
            "APIKey" => secrets.push(SecretKind::ApiKey),
            "AWSAccessKey" => secrets.push(SecretKind::AwsAccessKey),
            "PrivateKey" => secrets.push(SecretKind::PrivateKey),
            other => diags.error(p.error(
                format!("{field}.secrets[{i}]"),
                format!(
                    "unknown secret kind {other:?}: use APIKey, AWSAccessKey, PrivateKey or All"
                ),
            )),
        }
    }
    let injection_threshold = match &s.prompt_injection {
        None => None,
        Some(spec) => {
            let t = spec.threshold.unwrap_or(DEFAULT_INJECTION_THRESHOLD);
            if !(t > 0.0 && t <= 1.0) {
                diags.error(p.error(
                    format!("{field}.promptInjection.threshold"),
                    format!("{t} is not in (0, 1]"),
                ));
            }
            Some(t)
        }
    };
    let lists = |lists: &[PatternListSpec], name: &str, diags: &mut Diagnostics| {
        let mut out = Vec::new();
        for (i, l) in lists.iter().enumerate() {
            if l.patterns.is_empty() {
                diags.error(p.error(format!("{field}.{name}[{i}].patterns"), "is empty"));
            }
            out.push(NamedPatterns {
                name: l.name.clone(),
                patterns: l.patterns.clone(),
            });
        }
        out
    };
    let regex = lists(&s.regex, "regex", diags);
    let keywords = lists(&s.keywords, "keywords", diags);
    let caps = s.max_text_bytes.is_some() || s.max_input_tokens.is_some();
    if s.pii.is_empty()
        && s.secrets.is_empty()
        && injection_threshold.is_none()
        && regex.is_empty()
        && keywords.is_empty()
        && !caps
    {
        diags.error(p.error(
            field,
            "checks nothing: name pii, secrets, promptInjection, regex, keywords or a cap",
        ));
    }
    if caps && on_response && !on_request {
        diags.error(p.error(
            field,
            "maxTextBytes and maxInputTokens cap requests; this guardrail applies to responses only",
        ));
    }
    let stream = match s.streaming.as_ref().and_then(|st| st.mode.as_deref()) {
        None | Some("Window") => StreamMode::Window {
            hold_back: DEFAULT_HOLD_BACK,
        },
        Some("Buffer") => StreamMode::Buffer,
        Some("Monitor") => StreamMode::Monitor,
        Some(other) => {
            diags.error(p.error(
                format!("{field}.streaming.mode"),
                format!("unknown streaming mode {other:?}: use Buffer, Window or Monitor"),
            ));
            StreamMode::Monitor
        }
    };
    if diags.errors.len() != before {
        return None;
    }
    let spec = GuardSpec {
        pii,
        secrets,
        injection_threshold,
        regex,
        keywords,
        decode: s.decode_encodings.unwrap_or(true),
    };
    let guard = match Guard::compile(&spec) {
        Ok(g) => Arc::new(g),
        Err(e) => {
            diags.error(p.error(field, e.to_string()));
            return None;
        }
    };
    // The window must cover the longest match a detector can make, or a split one slips through.
    let stream = match stream {
        StreamMode::Window { hold_back } => {
            let asked = s
                .streaming
                .as_ref()
                .and_then(|st| st.hold_back_bytes)
                .map(|n| n as usize)
                .unwrap_or(hold_back);
            StreamMode::Window {
                hold_back: asked.max(guard.max_match_len()),
            }
        }
        other => other,
    };
    let block = block_reply(
        p,
        s.block.as_ref(),
        &format!("{field}.block"),
        "blocked by content policy",
        diags,
    );
    Some(Guardrail {
        guard,
        on_request,
        on_response,
        action,
        max_text_bytes: s.max_text_bytes,
        max_input_tokens: s.max_input_tokens,
        block,
        stream,
    })
}
