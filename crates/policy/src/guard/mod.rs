//! TEMPORARY placeholder with the agreed API until the `guard` branch lands; replaced whole.
#![allow(dead_code, unused_variables)]
use std::ops::Range;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiKind {
    Email,
    Phone,
    CreditCard,
    UsSsn,
    Iban,
    IpAddress,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    ApiKey,
    AwsAccessKey,
    PrivateKey,
}
#[derive(Debug, Clone, Default)]
pub struct NamedPatterns {
    pub name: String,
    pub patterns: Vec<String>,
}
#[derive(Debug, Clone, Default)]
pub struct GuardSpec {
    pub pii: Vec<PiiKind>,
    pub secrets: Vec<SecretKind>,
    pub injection_threshold: Option<f32>,
    pub regex: Vec<NamedPatterns>,
    pub keywords: Vec<NamedPatterns>,
    pub decode: bool,
}
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GuardError(pub String);
#[derive(Debug)]
pub struct Guard;
impl Guard {
    pub fn compile(spec: &GuardSpec) -> Result<Guard, GuardError> {
        Ok(Guard)
    }
    pub fn scan(&self, text: &str) -> Scan {
        Scan {
            findings: vec![],
            injection_score: 0.0,
        }
    }
    pub fn max_match_len(&self) -> usize {
        64
    }
}
#[derive(Debug)]
pub struct Scan {
    pub findings: Vec<Finding>,
    pub injection_score: f32,
}
impl Scan {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}
#[derive(Debug, Clone)]
pub struct Finding {
    pub detector: Detector,
    pub span: Range<usize>,
    pub via: Via,
}
#[derive(Debug, Clone, Copy)]
pub enum Via {
    Plain,
    Normalised,
    Base64,
    Hex,
}
#[derive(Debug, Clone)]
pub enum Detector {
    Pii(PiiKind),
    Secret(SecretKind),
    Injection,
    Regex(Arc<str>),
    Keyword(Arc<str>),
}
impl Detector {
    pub fn label(&self) -> String {
        String::new()
    }
}
pub fn redact(text: &str, findings: &[Finding]) -> String {
    text.to_string()
}
#[derive(Debug, Clone, Copy)]
pub enum WindowAction {
    Block,
    Redact,
    Monitor,
}
pub struct Window<T> {
    q: Vec<T>,
}
impl<T> Window<T> {
    pub fn new(guard: Arc<Guard>, action: WindowAction, hold_back: usize) -> Self {
        Window { q: vec![] }
    }
    pub fn push(&mut self, tag: T, text: &str) -> Step<T> {
        Step {
            release: vec![(tag, text.to_string())],
            findings: vec![],
            blocked: false,
        }
    }
    pub fn finish(&mut self) -> Step<T> {
        Step {
            release: vec![],
            findings: vec![],
            blocked: false,
        }
    }
}
pub struct Step<T> {
    pub release: Vec<(T, String)>,
    pub findings: Vec<Finding>,
    pub blocked: bool,
}
