//! `PayloadProcessor` objects to compiled [`Pipeline`]s, one per phase and attachment point:
//! PreRouting and PostRouting per Gateway, PostRouting per HTTPRoute. Objects on one target and
//! phase run oldest first (creationTimestamp, then load order); their processors in the order
//! written. Conflicts (a processor name used twice on one target and phase, two processors
//! writing one header) are reported.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, StatusCode};
use sluice_policy::expr::Expression;

use super::backends::Clusters;
use super::index::Index;
use crate::duration::parse_duration;
use crate::error::Diagnostics;
use crate::ir::{
    BackendTarget, BlockReply, BodyMode, Endpoints, ExtProcess, InProcess, JsonPath, Mutations,
    Pipeline, ProcessingMode, Processor, ProcessorKind, ValueExpr, Webhook, DEFAULT_MAX_BODY_BYTES,
};
use crate::objects::payload::{
    BlockSpec, ExtProcessSpec, InProcessSpec, MutationSpec, PayloadProcessorSpec, ProcessorSpec,
    WebhookSpec,
};
use crate::objects::{Object, GATEWAY_GROUP};

const MAX_PROCESSORS: usize = 16;
const DEFAULT_LOCAL_TIMEOUT: Duration = Duration::from_millis(100);
const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_secs(1);

type Key = (String, String);

/// The compiled pipelines of a configuration, by attachment point.
#[derive(Default)]
pub(crate) struct PayloadCatalog {
    gateway_pre: HashMap<Key, Arc<Pipeline>>,
    gateway_post: HashMap<Key, Arc<Pipeline>>,
    route_post: HashMap<Key, Arc<Pipeline>>,
}

impl PayloadCatalog {
    pub fn gateway(&self, ns: &str, name: &str) -> (Option<Arc<Pipeline>>, Option<Arc<Pipeline>>) {
        let key = (ns.to_string(), name.to_string());
        (
            self.gateway_pre.get(&key).cloned(),
            self.gateway_post.get(&key).cloned(),
        )
    }

    pub fn route(&self, ns: &str, name: &str) -> Option<Arc<Pipeline>> {
        self.route_post
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Phase {
    PreRouting,
    PostRouting,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum TargetKind {
    Gateway,
    Route,
}

/// One object's compiled processors, before objects are ordered and merged.
struct Compiled<'a> {
    object: &'a Object<PayloadProcessorSpec>,
    load_order: usize,
    max_body_bytes: Option<usize>,
    processors: Vec<Processor>,
}

pub(crate) fn build(
    idx: &Index<'_>,
    clusters: &mut Clusters,
    diags: &mut Diagnostics,
) -> PayloadCatalog {
    let mut groups: HashMap<(TargetKind, Key, Phase), Vec<Compiled<'_>>> = HashMap::new();
    for (load_order, p) in idx.set.payload_processors.iter().enumerate() {
        let before = diags.errors.len();
        let Some((target, phase)) = target_and_phase(idx, p, diags) else {
            continue;
        };
        let compiled = object(idx, p, load_order, clusters, diags);
        if diags.errors.len() != before {
            continue;
        }
        let key = (p.namespace().to_string(), p.spec.target_ref.name.clone());
        groups
            .entry((target, key, phase))
            .or_default()
            .push(compiled);
    }
    let mut cat = PayloadCatalog::default();
    for ((target, key, phase), mut objects) in groups {
        // Oldest first: a timestamp before none, then the order the objects were loaded in.
        objects.sort_by(|a, b| {
            let ts = |c: &Compiled<'_>| c.object.meta.creation_timestamp.clone();
            match (ts(a), ts(b)) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
            .then(a.load_order.cmp(&b.load_order))
        });
        report_conflicts(&objects, diags);
        let max_body_bytes = objects
            .iter()
            .filter_map(|c| c.max_body_bytes)
            .min()
            .unwrap_or(DEFAULT_MAX_BODY_BYTES);
        let processors = objects.into_iter().flat_map(|c| c.processors).collect();
        let pipeline = Arc::new(Pipeline {
            processors,
            max_body_bytes,
        });
        let map = match (target, phase) {
            (TargetKind::Gateway, Phase::PreRouting) => &mut cat.gateway_pre,
            (TargetKind::Gateway, Phase::PostRouting) => &mut cat.gateway_post,
            (TargetKind::Route, _) => &mut cat.route_post,
        };
        map.insert(key, pipeline);
    }
    cat
}

fn target_and_phase(
    idx: &Index<'_>,
    p: &Object<PayloadProcessorSpec>,
    diags: &mut Diagnostics,
) -> Option<(TargetKind, Phase)> {
    let t = &p.spec.target_ref;
    let phase = match p.spec.phase.as_str() {
        "PreRouting" => Phase::PreRouting,
        "PostRouting" => Phase::PostRouting,
        other => {
            diags.error(p.error(
                "spec.phase",
                format!("unknown phase {other:?}: use PreRouting or PostRouting"),
            ));
            return None;
        }
    };
    let is_key = |ns: &str, name: &str| ns == p.namespace() && name == t.name;
    let (target, exists) = match (t.group.as_str(), t.kind.as_str()) {
        (GATEWAY_GROUP, "Gateway") => (
            TargetKind::Gateway,
            idx.set
                .gateways
                .iter()
                .any(|g| is_key(g.namespace(), g.name())),
        ),
        (GATEWAY_GROUP, "HTTPRoute") => (
            TargetKind::Route,
            idx.set
                .http_routes
                .iter()
                .any(|r| is_key(r.namespace(), r.name())),
        ),
        (g, k) => {
            diags.error(p.error(
                "spec.targetRef.kind",
                format!("a PayloadProcessor targets a {GATEWAY_GROUP} Gateway or HTTPRoute, not {g}/{k}"),
            ));
            return None;
        }
    };
    if target == TargetKind::Route && phase == Phase::PreRouting {
        diags.error(p.error(
            "spec.phase",
            "PreRouting processors run before any route is chosen, so they attach to a Gateway; use PostRouting for an HTTPRoute",
        ));
        return None;
    }
    if !exists {
        diags.warn(p.error(
            "spec.targetRef",
            format!(
                "{} {}/{} not found; the processors run nowhere",
                t.kind,
                p.namespace(),
                t.name
            ),
        ));
    }
    Some((target, phase))
}

fn object<'a>(
    idx: &Index<'_>,
    p: &'a Object<PayloadProcessorSpec>,
    load_order: usize,
    clusters: &mut Clusters,
    diags: &mut Diagnostics,
) -> Compiled<'a> {
    let spec = &p.spec;
    if spec.processors.is_empty() || spec.processors.len() > MAX_PROCESSORS {
        diags.error(p.error(
            "spec.processors",
            format!("between 1 and {MAX_PROCESSORS} processors are required"),
        ));
    }
    let max_body_bytes = match spec.max_body_bytes {
        Some(0) => {
            diags.error(p.error("spec.maxBodyBytes", "must be at least 1"));
            None
        }
        Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        None => None,
    };
    let mut names: Vec<&str> = Vec::new();
    let mut processors = Vec::new();
    for (i, s) in spec.processors.iter().enumerate() {
        let field = format!("spec.processors[{i}]");
        if names.contains(&s.name.as_str()) {
            diags.error(p.error(
                format!("{field}.name"),
                format!("duplicate processor name {:?}", s.name),
            ));
        }
        names.push(&s.name);
        if let Some(proc) = processor(idx, p, s, &field, clusters, diags) {
            processors.push(proc);
        }
    }
    Compiled {
        object: p,
        load_order,
        max_body_bytes,
        processors,
    }
}

fn processor(
    idx: &Index<'_>,
    p: &Object<PayloadProcessorSpec>,
    s: &ProcessorSpec,
    field: &str,
    clusters: &mut Clusters,
    diags: &mut Diagnostics,
) -> Option<Processor> {
    if s.name.is_empty() {
        diags.error(p.error(format!("{field}.name"), "is required"));
    }
    let fail_open = match s.failure_mode.as_deref() {
        None | Some("FailClosed") => false,
        Some("FailOpen") => true,
        Some(other) => {
            diags.error(p.error(
                format!("{field}.failureMode"),
                format!("unknown failure mode {other:?}: use FailClosed or FailOpen"),
            ));
            false
        }
    };
    // Exactly the settings block of the processor's type.
    let blocks = [
        ("InProcess", "inProcess", s.in_process.is_some()),
        ("Guardrail", "guardrail", s.guardrail.is_some()),
        ("Webhook", "webhook", s.webhook.is_some()),
        ("ExtProcess", "extProcess", s.ext_process.is_some()),
    ];
    let Some(&(_, block, _)) = blocks.iter().find(|(kind, _, _)| *kind == s.kind) else {
        diags.error(p.error(
            format!("{field}.type"),
            format!(
                "unknown processor type {:?}: use InProcess, Guardrail, Webhook or ExtProcess",
                s.kind
            ),
        ));
        return None;
    };
    for (kind, other, present) in blocks {
        if present && kind != s.kind {
            diags.error(p.error(
                format!("{field}.{other}"),
                format!("is for type {kind}; this processor is {}", s.kind),
            ));
        }
    }
    let remote = matches!(s.kind.as_str(), "Webhook" | "ExtProcess");
    let timeout = match s.timeout.as_deref().map(parse_duration) {
        None => {
            if remote {
                DEFAULT_REMOTE_TIMEOUT
            } else {
                DEFAULT_LOCAL_TIMEOUT
            }
        }
        Some(Ok(d)) if d.is_zero() => {
            diags.error(p.error(format!("{field}.timeout"), "must be more than 0s"));
            return None;
        }
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            diags.error(p.error(format!("{field}.timeout"), e));
            return None;
        }
    };
    let sub = format!("{field}.{block}");
    let kind = match s.kind.as_str() {
        "InProcess" => ProcessorKind::InProcess(in_process(
            p,
            s.in_process.as_ref().or_else(|| {
                diags.error(p.error(&sub, "is required for type InProcess"));
                None
            })?,
            &sub,
            diags,
        )?),
        "Guardrail" => ProcessorKind::Guardrail(Arc::new(super::guardrail::compile(
            p,
            s.guardrail.as_ref().or_else(|| {
                diags.error(p.error(&sub, "is required for type Guardrail"));
                None
            })?,
            &sub,
            diags,
        )?)),
        "Webhook" => ProcessorKind::Webhook(webhook(
            idx,
            p,
            s.webhook.as_ref().or_else(|| {
                diags.error(p.error(&sub, "is required for type Webhook"));
                None
            })?,
            &sub,
            clusters,
            diags,
        )?),
        "ExtProcess" => ProcessorKind::ExtProcess(Arc::new(ext_process(
            idx,
            p,
            s.ext_process.as_ref().or_else(|| {
                diags.error(p.error(&sub, "is required for type ExtProcess"));
                None
            })?,
            &sub,
            clusters,
            diags,
        )?)),
        _ => return None,
    };
    Some(Processor {
        name: Arc::from(format!("{}/{}/{}", p.namespace(), p.name(), s.name)),
        fail_open,
        timeout,
        kind,
    })
}

fn in_process(
    p: &Object<PayloadProcessorSpec>,
    s: &InProcessSpec,
    field: &str,
    diags: &mut Diagnostics,
) -> Option<InProcess> {
    if s.request.is_none() && s.response.is_none() {
        diags.error(p.error(field, "has neither request nor response mutations"));
        return None;
    }
    let before = diags.errors.len();
    let request = s
        .request
        .as_ref()
        .map(|m| mutations(p, m, &format!("{field}.request"), "request", diags));
    let response = s
        .response
        .as_ref()
        .map(|m| mutations(p, m, &format!("{field}.response"), "response", diags));
    (diags.errors.len() == before).then_some(InProcess { request, response })
}

fn mutations(
    p: &Object<PayloadProcessorSpec>,
    s: &MutationSpec,
    field: &str,
    side: &str,
    diags: &mut Diagnostics,
) -> Mutations {
    // Response expressions also see the request they answer.
    let vars: &[&str] = if side == "request" {
        &["request"]
    } else {
        &["request", "response"]
    };
    let mut out = Mutations::default();
    for (i, h) in s.set_headers.iter().enumerate() {
        let f = format!("{field}.setHeaders[{i}]");
        let name = header_name(p, &h.name, &format!("{f}.name"), diags);
        let value = value_expr(p, &h.value, side, vars, &format!("{f}.value"), diags);
        if let (Some(name), Some(value)) = (name, value) {
            out.set_headers.push((name, value));
        }
    }
    for (i, h) in s.remove_headers.iter().enumerate() {
        if let Some(name) = header_name(p, h, &format!("{field}.removeHeaders[{i}]"), diags) {
            out.remove_headers.push(name);
        }
    }
    for (i, b) in s.set_body_fields.iter().enumerate() {
        let f = format!("{field}.setBodyFields[{i}]");
        let path = json_path(p, &b.path, &format!("{f}.path"), diags);
        let value = value_expr(p, &b.value, side, vars, &format!("{f}.value"), diags);
        if let (Some(path), Some(value)) = (path, value) {
            out.set_body_fields.push((path, value));
        }
    }
    for (i, b) in s.remove_body_fields.iter().enumerate() {
        if let Some(path) = json_path(p, b, &format!("{field}.removeBodyFields[{i}]"), diags) {
            out.remove_body_fields.push(path);
        }
    }
    out
}

fn header_name(
    p: &Object<PayloadProcessorSpec>,
    name: &str,
    field: &str,
    diags: &mut Diagnostics,
) -> Option<HeaderName> {
    match HeaderName::from_bytes(name.as_bytes()) {
        Ok(n) if n == http::header::HOST || name.starts_with(':') => {
            diags.error(p.error(field, format!("{name:?} cannot be changed by a processor")));
            None
        }
        Ok(n) => Some(n),
        Err(_) => {
            diags.error(p.error(field, format!("{name:?} is not a valid header name")));
            None
        }
    }
}

fn json_path(
    p: &Object<PayloadProcessorSpec>,
    text: &str,
    field: &str,
    diags: &mut Diagnostics,
) -> Option<JsonPath> {
    JsonPath::parse(text)
        .map_err(|e| diags.error(p.error(field, e)))
        .ok()
}

/// Compiles a value expression, recognising the two shapes the hot path reads without the CEL
/// interpreter: a body field (`json(request.body).model`) and a header
/// (`request.headers['x-tenant']`).
fn value_expr(
    p: &Object<PayloadProcessorSpec>,
    source: &str,
    side: &str,
    vars: &[&str],
    field: &str,
    diags: &mut Diagnostics,
) -> Option<ValueExpr> {
    let expr = match Expression::compile(source, vars) {
        Ok(e) => e,
        Err(e) => {
            diags.error(p.error(field, e));
            return None;
        }
    };
    let text = source.trim();
    if let Some(rest) = text.strip_prefix(&format!("json({side}.body)")) {
        if !rest.is_empty() && rest.starts_with(['.', '[']) {
            if let Ok(path) = JsonPath::parse(&format!("${rest}")) {
                return Some(ValueExpr::BodyField(path));
            }
        }
    }
    if side == "request" {
        if let Some(name) = text
            .strip_prefix("request.headers[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|q| {
                q.strip_prefix('\'')
                    .and_then(|q| q.strip_suffix('\''))
                    .or_else(|| q.strip_prefix('"').and_then(|q| q.strip_suffix('"')))
            })
        {
            if let Ok(h) = HeaderName::from_bytes(name.as_bytes()) {
                if h.as_str() == name {
                    return Some(ValueExpr::Header(h));
                }
            }
        }
    }
    Some(ValueExpr::Cel {
        reads_body: source.contains(".body"),
        expr: Arc::new(expr),
    })
}

pub(super) fn block_reply(
    p: &Object<PayloadProcessorSpec>,
    s: Option<&BlockSpec>,
    field: &str,
    default_message: &str,
    diags: &mut Diagnostics,
) -> BlockReply {
    let status = match s.and_then(|b| b.status) {
        None => StatusCode::BAD_REQUEST,
        Some(n) => match StatusCode::from_u16(n) {
            Ok(s) if (400..600).contains(&n) => s,
            _ => {
                diags.error(p.error(
                    format!("{field}.status"),
                    format!("{n} is not an error status (400-599)"),
                ));
                StatusCode::BAD_REQUEST
            }
        },
    };
    BlockReply {
        status,
        message: Arc::from(
            s.and_then(|b| b.message.as_deref())
                .unwrap_or(default_message),
        ),
    }
}

/// `Request` and/or `Response` (default: the request only).
pub(super) fn apply_to(
    p: &Object<PayloadProcessorSpec>,
    list: &[String],
    field: &str,
    diags: &mut Diagnostics,
) -> (bool, bool) {
    if list.is_empty() {
        return (true, false);
    }
    let (mut req, mut resp) = (false, false);
    for (i, s) in list.iter().enumerate() {
        match s.as_str() {
            "Request" => req = true,
            "Response" => resp = true,
            other => diags.error(p.error(
                format!("{field}[{i}]"),
                format!("unknown direction {other:?}: use Request or Response"),
            )),
        }
    }
    (req, resp)
}

fn webhook(
    idx: &Index<'_>,
    p: &Object<PayloadProcessorSpec>,
    s: &WebhookSpec,
    field: &str,
    clusters: &mut Clusters,
    diags: &mut Diagnostics,
) -> Option<Webhook> {
    let (on_request, on_response) = apply_to(p, &s.apply_to, &format!("{field}.applyTo"), diags);
    let block_flagged = match s.action.as_deref() {
        None | Some("Block") => true,
        Some("Monitor") => false,
        Some(other) => {
            diags.error(p.error(
                format!("{field}.action"),
                format!("unknown action {other:?}: use Block or Monitor"),
            ));
            true
        }
    };
    let path = s.path.as_deref().unwrap_or("/v1/moderations");
    let path = match http::uri::PathAndQuery::try_from(path) {
        Ok(pq) if path.starts_with('/') => pq,
        _ => {
            diags.error(p.error(
                format!("{field}.path"),
                format!("{path:?} is not an absolute path"),
            ));
            return None;
        }
    };
    let block = block_reply(
        p,
        s.block.as_ref(),
        &format!("{field}.block"),
        "blocked by content policy",
        diags,
    );
    let (cluster, host) = destination(
        idx,
        p,
        &s.backend_ref,
        &format!("{field}.backendRef"),
        clusters,
        diags,
    )?;
    Some(Webhook {
        cluster,
        host,
        path,
        model: s.model.clone(),
        on_request,
        on_response,
        block_flagged,
        block,
    })
}

/// Resolves a processor's backendRef to a cluster (and the Host to send, for a DNS backend).
fn destination(
    idx: &Index<'_>,
    p: &Object<PayloadProcessorSpec>,
    r: &crate::objects::httproute::BackendObjectReference,
    field: &str,
    clusters: &mut Clusters,
    diags: &mut Diagnostics,
) -> Option<(Arc<crate::ir::Cluster>, Option<Arc<str>>)> {
    let group = r.group.as_deref().unwrap_or("");
    let kind = r.kind.as_deref().unwrap_or("Service");
    if !matches!((group, kind), ("", "Service") | (GATEWAY_GROUP, "Backend")) {
        diags.error(p.error(
            field,
            format!("must be a Service or a {GATEWAY_GROUP} Backend, not {group}/{kind}"),
        ));
        return None;
    }
    match clusters.resolve(idx, p, field, r, diags) {
        BackendTarget::Cluster(c) => {
            let host = match &c.endpoints {
                Endpoints::Dns { hostname, port } => Some(Arc::from(format!("{hostname}:{port}"))),
                Endpoints::Static(_) => None,
            };
            Some((c, host))
        }
        _ => {
            diags.error(p.error(field, "does not resolve to a destination"));
            None
        }
    }
}

fn body_mode(
    p: &Object<PayloadProcessorSpec>,
    v: Option<&str>,
    field: &str,
    diags: &mut Diagnostics,
) -> BodyMode {
    match v {
        None | Some("None") => BodyMode::None,
        Some("Buffered") => BodyMode::Buffered,
        Some("Streamed") => BodyMode::Streamed,
        Some(other) => {
            diags.error(p.error(
                field,
                format!("unknown body mode {other:?}: use None, Buffered or Streamed"),
            ));
            BodyMode::None
        }
    }
}

fn header_mode(
    p: &Object<PayloadProcessorSpec>,
    v: Option<&str>,
    default: bool,
    field: &str,
    diags: &mut Diagnostics,
) -> bool {
    match v {
        None => default,
        Some("Send") => true,
        Some("Skip") => false,
        Some(other) => {
            diags.error(p.error(
                field,
                format!("unknown header mode {other:?}: use Send or Skip"),
            ));
            default
        }
    }
}

fn ext_process(
    idx: &Index<'_>,
    p: &Object<PayloadProcessorSpec>,
    s: &ExtProcessSpec,
    field: &str,
    clusters: &mut Clusters,
    diags: &mut Diagnostics,
) -> Option<ExtProcess> {
    let m = s.processing_mode.clone().unwrap_or_default();
    let mf = format!("{field}.processingMode");
    let mode = ProcessingMode {
        request_headers: header_mode(
            p,
            m.request_header_mode.as_deref(),
            true,
            &format!("{mf}.requestHeaderMode"),
            diags,
        ),
        request_body: body_mode(
            p,
            m.request_body_mode.as_deref(),
            &format!("{mf}.requestBodyMode"),
            diags,
        ),
        response_headers: header_mode(
            p,
            m.response_header_mode.as_deref(),
            false,
            &format!("{mf}.responseHeaderMode"),
            diags,
        ),
        response_body: body_mode(
            p,
            m.response_body_mode.as_deref(),
            &format!("{mf}.responseBodyMode"),
            diags,
        ),
    };
    let (cluster, _) = destination(
        idx,
        p,
        &s.backend_ref,
        &format!("{field}.backendRef"),
        clusters,
        diags,
    )?;
    let authority = match &cluster.endpoints {
        Endpoints::Dns { hostname, port } => format!("{hostname}:{port}"),
        Endpoints::Static(addrs) => match addrs.first() {
            Some(a) => a.to_string(),
            None => {
                diags.error(p.error(
                    format!("{field}.backendRef"),
                    "the Service has no ready endpoint",
                ));
                return None;
            }
        },
    };
    let scheme = if cluster.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let uri: http::Uri = match format!("{scheme}://{authority}").parse() {
        Ok(u) => u,
        Err(e) => {
            diags.error(p.error(
                format!("{field}.backendRef"),
                format!("invalid address: {e}"),
            ));
            return None;
        }
    };
    let metadata: Vec<(String, String)> = s
        .metadata
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    for (k, v) in &metadata {
        if http::HeaderName::from_bytes(k.as_bytes()).is_err()
            || http::HeaderValue::from_str(v).is_err()
        {
            diags.error(p.error(
                format!("{field}.metadata.{k}"),
                "is not a valid gRPC metadata entry",
            ));
        }
    }
    Some(ExtProcess {
        channel_key: format!("{uri}|{}", cluster.transport_key),
        uri,
        tls: cluster.tls.clone(),
        mode,
        metadata,
    })
}

/// Conflicts across the objects of one target and phase: a processor name twice, and two
/// processors writing one header (the later one wins; reported so it is not a surprise).
fn report_conflicts(objects: &[Compiled<'_>], diags: &mut Diagnostics) {
    let mut seen_names: HashMap<&str, &Object<PayloadProcessorSpec>> = HashMap::new();
    let mut seen_headers: HashMap<(bool, HeaderName), &str> = HashMap::new();
    for c in objects {
        for (i, proc) in c.processors.iter().enumerate() {
            let short = proc.name.rsplit('/').next().unwrap_or(&proc.name);
            if let Some(first) = seen_names.get(short) {
                if !std::ptr::eq(*first, c.object) {
                    diags.error(c.object.error(
                        format!("spec.processors[{i}].name"),
                        format!(
                            "processor {short:?} is also defined by PayloadProcessor {}/{} on the same target and phase; names must be unique there",
                            first.namespace(),
                            first.name()
                        ),
                    ));
                }
            } else {
                seen_names.insert(short, c.object);
            }
            if let ProcessorKind::InProcess(ip) = &proc.kind {
                let sides = [(true, ip.request.as_ref()), (false, ip.response.as_ref())];
                for (is_request, m) in sides {
                    for (h, _) in m.map(|m| m.set_headers.as_slice()).unwrap_or_default() {
                        if let Some(first) =
                            seen_headers.insert((is_request, h.clone()), &proc.name)
                        {
                            diags.warn(c.object.error(
                                format!("spec.processors[{i}]"),
                                format!(
                                    "sets header {h} that processor {first} also sets in this phase; the later one ({}) wins",
                                    proc.name
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
}
