//! Guardrail detection over request and response text: personal data (PII), credentials,
//! prompt injection and jailbreak attempts, and user-defined regex and keyword lists.
//!
//! A [`GuardSpec`] (plain data, mapped from configuration) is compiled once into a [`Guard`],
//! which is immutable, `Send + Sync` and meant to be shared in an `Arc`. [`Guard::scan`] finds
//! everything in a text in one pass over its bytes plus one automaton pass for words;
//! [`redact`] masks what was found; [`Window`] applies the same detection to a stream of text
//! deltas without releasing any part of a match before the match has been seen whole.
//!
//! Detection runs on a normalised copy of the text (see [`normalize`](self) for what is
//! folded); findings are always reported as byte ranges of the caller's original text.
//! docs/guardrails.md describes every detector, its accepted and rejected forms, the
//! injection signals and their weights, and the measured precision, recall and speed.

mod addresses;
mod decode;
mod engine;
mod injection;
mod lists;
mod masks;
mod normalize;
mod numbers;
mod redact;
mod secrets;
mod window;

use std::ops::Range;
use std::sync::Arc;

pub use redact::redact;
pub use window::{Step, Window, WindowAction};

/// Kinds of personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiKind {
    Email,
    Phone,
    CreditCard,
    UsSsn,
    Iban,
    IpAddress,
}

impl PiiKind {
    pub const ALL: [PiiKind; 6] = [
        PiiKind::Email,
        PiiKind::Phone,
        PiiKind::CreditCard,
        PiiKind::UsSsn,
        PiiKind::Iban,
        PiiKind::IpAddress,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::CreditCard => "credit_card",
            PiiKind::UsSsn => "us_ssn",
            PiiKind::Iban => "iban",
            PiiKind::IpAddress => "ip_address",
        }
    }

    /// The kind with this [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<PiiKind> {
        PiiKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Kinds of credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretKind {
    /// OpenAI / Anthropic style keys: `sk-…`, `sk-proj-…`, `sk-ant-…`.
    ApiKey,
    /// AWS access key ids: `AKIA` or `ASIA` and 16 more capitals or digits.
    AwsAccessKey,
    /// PEM private key blocks, `-----BEGIN … PRIVATE KEY-----` through the END line.
    PrivateKey,
}

impl SecretKind {
    pub const ALL: [SecretKind; 3] = [
        SecretKind::ApiKey,
        SecretKind::AwsAccessKey,
        SecretKind::PrivateKey,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SecretKind::ApiKey => "api_key",
            SecretKind::AwsAccessKey => "aws_access_key",
            SecretKind::PrivateKey => "private_key",
        }
    }

    /// The kind with this [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<SecretKind> {
        SecretKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A named list of user patterns (regexes, or keywords and phrases).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamedPatterns {
    pub name: String,
    pub patterns: Vec<String>,
}

/// What to detect. Plain data: the config crate maps YAML into it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GuardSpec {
    pub pii: Vec<PiiKind>,
    pub secrets: Vec<SecretKind>,
    /// `Some(t)`: prompt-injection / jailbreak scoring on; flagged when the score is `>= t`.
    pub injection_threshold: Option<f32>,
    /// User regexes (Rust `regex` syntax), matched on the normalised text.
    pub regex: Vec<NamedPatterns>,
    /// Words and phrases, matched case-insensitively as whole words on the normalised text.
    pub keywords: Vec<NamedPatterns>,
    /// Also scan what base64 and hex segments decode to.
    pub decode: bool,
}

/// A [`GuardSpec`] that could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("guard regex list {list:?}, pattern {index}: {source}")]
    Regex {
        list: String,
        index: usize,
        #[source]
        source: Box<regex::Error>,
    },
    #[error("guard keyword list {list:?}, entry {index}: empty after normalisation")]
    EmptyKeyword { list: String, index: usize },
    #[error("guard keyword lists: {0}")]
    Keywords(String),
    #[error("guard injection threshold {0} is outside 0..=1")]
    Threshold(f32),
}

/// Which detector produced a finding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detector {
    Pii(PiiKind),
    Secret(SecretKind),
    Injection,
    /// A user regex list, by name.
    Regex(Arc<str>),
    /// A user keyword list, by name.
    Keyword(Arc<str>),
}

impl Detector {
    /// `pii:email`, `secret:api_key`, `injection`, `regex:<name>`, `keyword:<name>`.
    pub fn label(&self) -> String {
        match self {
            Detector::Pii(k) => format!("pii:{}", k.name()),
            Detector::Secret(k) => format!("secret:{}", k.name()),
            Detector::Injection => "injection".to_owned(),
            Detector::Regex(n) => format!("regex:{n}"),
            Detector::Keyword(n) => format!("keyword:{n}"),
        }
    }

    /// The word in a redaction mask: `EMAIL`, `API_KEY`, or the list name in capitals.
    pub fn mask_label(&self) -> String {
        match self {
            Detector::Pii(k) => k.name().to_ascii_uppercase(),
            Detector::Secret(k) => k.name().to_ascii_uppercase(),
            Detector::Injection => "INJECTION".to_owned(),
            Detector::Regex(n) | Detector::Keyword(n) => n.to_uppercase(),
        }
    }

    /// The family for metrics: `pii`, `secret`, `injection`, `regex`, `keyword`.
    pub fn family(&self) -> &'static str {
        match self {
            Detector::Pii(_) => "pii",
            Detector::Secret(_) => "secret",
            Detector::Injection => "injection",
            Detector::Regex(_) => "regex",
            Detector::Keyword(_) => "keyword",
        }
    }
}

/// How the matched text was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Via {
    /// In the text as written.
    Plain,
    /// Only after normalisation (look-alikes, invisible characters, fullwidth forms, ...).
    Normalised,
    /// Inside a base64 segment; the span is the whole segment.
    Base64,
    /// Inside a hex segment; the span is the whole segment.
    Hex,
}

/// One detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub detector: Detector,
    /// Byte range in the original text (character boundaries).
    pub span: Range<usize>,
    pub via: Via,
}

/// The result of [`Guard::scan`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scan {
    /// Sorted by span start; at most one finding per detector and span.
    pub findings: Vec<Finding>,
    /// The prompt-injection score in 0..=1 (0 when injection scoring is off).
    pub injection_score: f32,
}

impl Scan {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// A compiled [`GuardSpec`].
pub struct Guard {
    inner: engine::Engine,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("max_match_len", &self.max_match_len())
            .finish_non_exhaustive()
    }
}

impl Guard {
    pub fn compile(spec: &GuardSpec) -> Result<Guard, GuardError> {
        Ok(Guard {
            inner: engine::Engine::compile(spec)?,
        })
    }

    /// Everything the spec asks for in `text`.
    pub fn scan(&self, text: &str) -> Scan {
        self.inner.scan(text)
    }

    /// An upper bound, in bytes of plain text, of a match that can be masked or that blocks:
    /// the least hold-back a [`Window`] needs. Text disguised with invisible characters is
    /// longer than its plain form; see docs/guardrails.md.
    pub fn max_match_len(&self) -> usize {
        self.inner.max_match_len()
    }
}

#[cfg(test)]
mod tests;
