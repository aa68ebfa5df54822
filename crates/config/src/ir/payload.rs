//! Compiled payload-processing pipelines (`PayloadProcessor` objects): which processors run, in
//! what order, with which failure mode and timeout, and what each needs from the exchange.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, StatusCode};
use sluice_policy::expr::Expression;

/// The processors of one phase at one attachment point (a Gateway, or an HTTPRoute), in order:
/// every object's processors, objects oldest first.
#[derive(Debug)]
pub struct Pipeline {
    pub processors: Vec<Processor>,
    /// The most of a body buffered for the processors that read it.
    pub max_body_bytes: usize,
}

impl Pipeline {
    /// Whether some processor reads or rewrites the request body (so it must be buffered).
    pub fn needs_request_body(&self) -> bool {
        self.processors.iter().any(|p| p.kind.needs_request_body())
    }

    /// Whether some processor acts on the response.
    pub fn acts_on_response(&self) -> bool {
        self.processors.iter().any(|p| p.kind.acts_on_response())
    }

    /// Whether some response-side expression reads the request (its method, path or headers),
    /// so a snapshot of it must be kept until the answer comes.
    pub fn reads_request_on_response(&self) -> bool {
        self.processors
            .iter()
            .any(|p| matches!(&p.kind, ProcessorKind::InProcess(ip) if ip.response.is_some()))
    }
}

pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

#[derive(Debug)]
pub struct Processor {
    /// `namespace/object/processor`, for logs, metrics and error messages.
    pub name: Arc<str>,
    /// FailOpen: a processor that fails (timeout, error, body too large) is skipped, logged and
    /// counted. FailClosed (the default): the request is refused.
    pub fail_open: bool,
    pub timeout: Duration,
    pub kind: ProcessorKind,
}

#[derive(Debug)]
pub enum ProcessorKind {
    InProcess(InProcess),
    Guardrail(Arc<Guardrail>),
    Webhook(Webhook),
    ExtProcess(Arc<ExtProcess>),
}

impl ProcessorKind {
    pub fn needs_request_body(&self) -> bool {
        match self {
            ProcessorKind::InProcess(p) => p.request.as_ref().is_some_and(Mutations::reads_body),
            ProcessorKind::Guardrail(g) => g.on_request,
            ProcessorKind::Webhook(w) => w.on_request,
            ProcessorKind::ExtProcess(e) => e.mode.request_body != BodyMode::None,
        }
    }

    pub fn acts_on_response(&self) -> bool {
        match self {
            ProcessorKind::InProcess(p) => p.response.is_some(),
            ProcessorKind::Guardrail(g) => g.on_response,
            ProcessorKind::Webhook(w) => w.on_response,
            ProcessorKind::ExtProcess(e) => {
                e.mode.response_headers || e.mode.response_body != BodyMode::None
            }
        }
    }
}

/// CEL-driven header and body mutations.
#[derive(Debug, Default)]
pub struct InProcess {
    pub request: Option<Mutations>,
    pub response: Option<Mutations>,
}

#[derive(Debug, Default)]
pub struct Mutations {
    pub set_headers: Vec<(HeaderName, ValueExpr)>,
    pub remove_headers: Vec<HeaderName>,
    pub set_body_fields: Vec<(JsonPath, ValueExpr)>,
    pub remove_body_fields: Vec<JsonPath>,
}

impl Mutations {
    /// Whether these mutations read or write the body (so it must be buffered and parsed).
    pub fn reads_body(&self) -> bool {
        !self.set_body_fields.is_empty()
            || !self.remove_body_fields.is_empty()
            || self.set_headers.iter().any(|(_, v)| v.reads_body())
    }
}

/// A value computed per request.
#[derive(Debug)]
pub enum ValueExpr {
    /// `json(request.body).a.b` (or `json(response.body)...`): a field of the body, read
    /// without the CEL interpreter.
    BodyField(JsonPath),
    /// `request.headers['x-name']`: a header, read directly.
    Header(HeaderName),
    /// Any other CEL expression.
    Cel {
        expr: Arc<Expression>,
        reads_body: bool,
    },
}

impl ValueExpr {
    pub fn reads_body(&self) -> bool {
        match self {
            ValueExpr::BodyField(_) => true,
            ValueExpr::Header(_) => false,
            ValueExpr::Cel { reads_body, .. } => *reads_body,
        }
    }
}

/// A JSONPath of member names and array indexes (`$.metadata.tenant`, `$.messages[0].role`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    pub source: String,
    pub steps: Vec<PathStep>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    Member(String),
    Index(usize),
}

impl JsonPath {
    /// Parses `$.a.b[0]`, `$['a b'].c`; wildcards and filters are not supported (a mutation
    /// must name exactly one place).
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let rest = text
            .strip_prefix('$')
            .ok_or_else(|| format!("JSONPath {text:?} must start with `$`"))?;
        let bytes = rest.as_bytes();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'.' => {
                    let start = i + 1;
                    let mut end = start;
                    while end < bytes.len() && bytes[end] != b'.' && bytes[end] != b'[' {
                        end += 1;
                    }
                    let name = &rest[start..end];
                    if name.is_empty() || name == "*" {
                        return Err(format!(
                            "JSONPath {text:?}: expected a member name after `.`"
                        ));
                    }
                    steps.push(PathStep::Member(name.to_string()));
                    i = end;
                }
                b'[' => {
                    let close = rest[i..]
                        .find(']')
                        .map(|c| i + c)
                        .ok_or_else(|| format!("JSONPath {text:?}: unclosed `[`"))?;
                    let inner = rest[i + 1..close].trim();
                    let quoted = inner.len() >= 2
                        && ((inner.starts_with('\'') && inner.ends_with('\''))
                            || (inner.starts_with('"') && inner.ends_with('"')));
                    if quoted {
                        steps.push(PathStep::Member(inner[1..inner.len() - 1].to_string()));
                    } else {
                        let n = inner.parse::<usize>().map_err(|_| {
                            format!("JSONPath {text:?}: `[{inner}]` is neither an index nor a quoted name (wildcards and filters are not supported)")
                        })?;
                        steps.push(PathStep::Index(n));
                    }
                    i = close + 1;
                }
                _ => {
                    return Err(format!(
                        "JSONPath {text:?}: unexpected character at {}",
                        i + 1
                    ))
                }
            }
        }
        if steps.is_empty() {
            return Err(format!(
                "JSONPath {text:?} names the whole body, not a field"
            ));
        }
        Ok(JsonPath {
            source: text.to_string(),
            steps,
        })
    }
}

/// What a guardrail does on a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardAction {
    Block,
    Redact,
    Monitor,
}

/// How a guardrail checks an answer that is streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMode {
    /// Hold the whole answer, then release it or block.
    Buffer,
    /// Hold back only the newest `hold_back` bytes of text, so a match split across chunks is
    /// still caught before any of it is sent.
    Window { hold_back: usize },
    /// Pass chunks at once; report findings.
    Monitor,
}

#[derive(Debug)]
pub struct Guardrail {
    pub guard: Arc<sluice_policy::guard::Guard>,
    pub on_request: bool,
    pub on_response: bool,
    pub action: GuardAction,
    pub max_text_bytes: Option<u64>,
    pub max_input_tokens: Option<u64>,
    pub block: BlockReply,
    pub stream: StreamMode,
}

/// The answer to a blocked request or response, in the client's dialect.
#[derive(Debug, Clone)]
pub struct BlockReply {
    pub status: StatusCode,
    pub message: Arc<str>,
}

/// An OpenAI-moderation-compatible service.
#[derive(Debug)]
pub struct Webhook {
    pub cluster: Arc<super::Cluster>,
    /// `Host` for the call (the Backend's hostname), when the cluster has one.
    pub host: Option<Arc<str>>,
    pub path: http::uri::PathAndQuery,
    pub model: Option<String>,
    pub on_request: bool,
    pub on_response: bool,
    /// Block (true) or monitor a flagged text.
    pub block_flagged: bool,
    pub block: BlockReply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    None,
    Buffered,
    Streamed,
}

#[derive(Debug, Clone, Copy)]
pub struct ProcessingMode {
    pub request_headers: bool,
    pub request_body: BodyMode,
    pub response_headers: bool,
    pub response_body: BodyMode,
}

/// An Envoy ext_proc v3 server.
#[derive(Debug)]
pub struct ExtProcess {
    /// `http://host:port` (h2c) or `https://...`.
    pub uri: http::Uri,
    /// TLS to the processor: the Backend's own TLS (CA bundle, client certificate, SNI), as
    /// HTTP upstreams use it. `None`: h2c.
    pub tls: Option<super::upstream::UpstreamTls>,
    pub mode: ProcessingMode,
    pub metadata: Vec<(String, String)>,
    /// Identifies the channel so a reload that keeps the processor keeps its connection.
    pub channel_key: String,
}
