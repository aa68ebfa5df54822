//! HTTPRoutes: attachment to listeners, rule compilation, and Gateway API match precedence.

use std::cmp::Reverse;
use std::sync::Arc;

use http::{HeaderName, Method};
use regex::Regex;

use super::backends::Clusters;
use super::filters::compile_filters;
use super::gateways::{validate_hostname, ListenerBuild, SocketBuild};
use super::index::Index;
use crate::duration::parse_duration;
use crate::error::Diagnostics;
use crate::ir::{
    HeaderMatch, HostPattern, PathMatch, QueryParamMatch, RetryPolicy, RouteEntry, RouteMatch,
    RuleIr, StringMatch, Timeouts,
};
use crate::objects::gateway::FromNamespaces;
use crate::objects::httproute::{
    HttpRouteMatch, HttpRouteRule, HttpRouteSpec, PathMatchType, StringMatchType,
};
use crate::objects::{Object, GATEWAY_GROUP};

/// Orders entries of one virtual host: the smallest key wins. Fields in the order of the spec's
/// precedence list, then its tie-breakers (oldest route, `namespace/name`, rule and match order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SortKey {
    path_kind: u8,
    path_len: Reverse<usize>,
    has_method: Reverse<bool>,
    headers: Reverse<usize>,
    query_params: Reverse<usize>,
    created: String,
    route: String,
    rule: usize,
    matcher: usize,
}

pub(crate) struct EntryBuild {
    pub key: SortKey,
    pub entry: RouteEntry,
}

struct CompiledRule {
    rule: Arc<RuleIr>,
    matches: Vec<(RouteMatch, SortKeyPart)>,
}

#[derive(Clone)]
struct SortKeyPart {
    path_kind: u8,
    path_len: usize,
    has_method: bool,
    headers: usize,
    query_params: usize,
}

pub(crate) fn attach_routes(
    idx: &Index<'_>,
    sockets: &mut [SocketBuild],
    clusters: &mut Clusters,
    diags: &mut Diagnostics,
) {
    let mut seen = std::collections::HashSet::new();
    for route in &idx.set.http_routes {
        if !seen.insert((route.namespace(), route.name())) {
            diags.error(route.error("metadata.name", "duplicate HTTPRoute"));
            continue;
        }
        let hostnames = route_hostnames(route, diags);
        let rules: Vec<CompiledRule> = route
            .spec
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| compile_rule(idx, route, i, r, clusters, diags))
            .collect();
        if route.spec.parent_refs.is_empty() {
            diags.warn(route.error(
                "spec.parentRefs",
                "no parent: the route is not attached to any Gateway",
            ));
        }
        for (i, rule) in route.spec.rules.iter().enumerate() {
            if rule.session_persistence.is_some() {
                diags.warn(route.error(
                    format!("spec.rules[{i}].sessionPersistence"),
                    "ignored: not supported yet",
                ));
            }
        }
        let created = route.meta.creation_timestamp.clone().unwrap_or_default();
        let route_name = format!("{}/{}", route.namespace(), route.name());
        let mut attached = false;
        let mut warned = false;
        for (p, parent) in route.spec.parent_refs.iter().enumerate() {
            let field = format!("spec.parentRefs[{p}]");
            let group = parent.group.as_deref().unwrap_or(GATEWAY_GROUP);
            let kind = parent.kind.as_deref().unwrap_or("Gateway");
            if group != GATEWAY_GROUP || kind != "Gateway" {
                diags.warn(route.error(
                    field,
                    format!("parent {group}/{kind} is not supported (only Gateway); ignored"),
                ));
                continue;
            }
            let gw_ns = parent.namespace.as_deref().unwrap_or(route.namespace());
            let mut found_gateway = false;
            let mut reasons: Vec<String> = Vec::new();
            for socket in sockets.iter_mut() {
                for listener in socket.listeners.iter_mut() {
                    if listener.gateway_ns != gw_ns || listener.gateway_name != parent.name {
                        continue;
                    }
                    found_gateway = true;
                    if parent
                        .section_name
                        .as_deref()
                        .is_some_and(|s| s != &*listener.name)
                        || parent
                            .port
                            .is_some_and(|port| port != u32::from(listener.port))
                    {
                        continue;
                    }
                    if let Err(reason) = allowed(idx, listener, route.namespace()) {
                        reasons.push(reason);
                        continue;
                    }
                    let effective: Vec<HostPattern> = if hostnames.is_empty() {
                        vec![listener.hostname.clone()]
                    } else {
                        hostnames
                            .iter()
                            .filter_map(|h| listener.hostname.intersect(h))
                            .collect()
                    };
                    if effective.is_empty() {
                        reasons.push(format!(
                            "no hostname of the route matches listener {:?} ({})",
                            &*listener.name,
                            listener.hostname.as_config_string()
                        ));
                        continue;
                    }
                    attached = true;
                    add_entries(listener, &effective, &rules, &created, &route_name);
                }
            }
            if !found_gateway {
                warned = true;
                diags.warn(route.error(
                    field,
                    format!(
                        "Gateway {gw_ns}/{} not found or not served by Sluice",
                        parent.name
                    ),
                ));
            } else if !reasons.is_empty() && !attached {
                warned = true;
                diags.warn(route.error(field, format!("not attached: {}", reasons.join("; "))));
            }
        }
        if !attached && !warned && !route.spec.parent_refs.is_empty() {
            diags.warn(route.error("spec.parentRefs", "route is not attached to any listener"));
        }
    }
}

fn allowed(idx: &Index<'_>, listener: &ListenerBuild, route_ns: &str) -> Result<(), String> {
    if !listener.allows_http_route {
        return Err(format!(
            "listener {:?} does not allow HTTPRoute (allowedRoutes.kinds)",
            &*listener.name
        ));
    }
    let ok = match listener.from {
        FromNamespaces::All => true,
        FromNamespaces::Same => route_ns == listener.gateway_ns,
        FromNamespaces::Selector => {
            let empty = Default::default();
            let labels = idx.namespace_labels(route_ns).unwrap_or(&empty);
            listener
                .selector
                .as_ref()
                .is_some_and(|s| s.matches(labels))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "listener {:?} does not allow routes from namespace {route_ns}",
            &*listener.name
        ))
    }
}

fn add_entries(
    listener: &mut ListenerBuild,
    hosts: &[HostPattern],
    rules: &[CompiledRule],
    created: &str,
    route: &str,
) {
    for host in hosts {
        let (_, entries) = listener
            .vhosts
            .entry(host.as_config_string())
            .or_insert_with(|| (host.clone(), Vec::new()));
        for (r, rule) in rules.iter().enumerate() {
            for (m, (matcher, part)) in rule.matches.iter().enumerate() {
                entries.push(EntryBuild {
                    key: SortKey {
                        path_kind: part.path_kind,
                        path_len: Reverse(part.path_len),
                        has_method: Reverse(part.has_method),
                        headers: Reverse(part.headers),
                        query_params: Reverse(part.query_params),
                        created: created.to_string(),
                        route: route.to_string(),
                        rule: r,
                        matcher: m,
                    },
                    entry: RouteEntry {
                        matcher: matcher.clone(),
                        rule: rule.rule.clone(),
                    },
                });
            }
        }
    }
}

fn route_hostnames(route: &Object<HttpRouteSpec>, diags: &mut Diagnostics) -> Vec<HostPattern> {
    let mut out = Vec::new();
    for (i, h) in route.spec.hostnames.iter().enumerate() {
        match validate_hostname(h) {
            Ok(()) => out.push(HostPattern::parse(h)),
            Err(e) => diags.error(route.error(format!("spec.hostnames[{i}]"), e)),
        }
    }
    out
}

fn compile_rule(
    idx: &Index<'_>,
    route: &Object<HttpRouteSpec>,
    i: usize,
    rule: &HttpRouteRule,
    clusters: &mut Clusters,
    diags: &mut Diagnostics,
) -> Option<CompiledRule> {
    let field = format!("spec.rules[{i}]");
    let errors_before = diags.errors.len();
    let mut matches = Vec::new();
    if rule.matches.is_empty() {
        matches.push(default_match());
    }
    for (m, spec) in rule.matches.iter().enumerate() {
        if let Some(compiled) = compile_match(route, &format!("{field}.matches[{m}]"), spec, diags)
        {
            matches.push(compiled);
        }
    }
    let prefix_only = matches
        .iter()
        .all(|(m, _)| matches!(m.path, PathMatch::Prefix(_)));
    let filters = compile_filters(
        idx,
        route,
        &format!("{field}.filters"),
        &rule.filters,
        prefix_only,
        clusters,
        diags,
    );
    let mut backends = Vec::new();
    for (b, backend_ref) in rule.backend_refs.iter().enumerate() {
        let bfield = format!("{field}.backendRefs[{b}]");
        let weight = match backend_ref.weight {
            None => 1,
            Some(w) if (0..=1_000_000).contains(&w) => w as u32,
            Some(w) => {
                diags.error(route.error(
                    format!("{bfield}.weight"),
                    format!("weight {w} is out of range 0-1000000"),
                ));
                continue;
            }
        };
        let target = clusters.resolve(idx, route, &bfield, &backend_ref.object_ref(), diags);
        let filters = compile_filters(
            idx,
            route,
            &format!("{bfield}.filters"),
            &backend_ref.filters,
            prefix_only,
            clusters,
            diags,
        );
        backends.push(crate::ir::WeightedBackend {
            weight,
            target,
            filters,
        });
    }
    let is_ai =
        |b: &crate::ir::WeightedBackend| matches!(b.target, crate::ir::BackendTarget::Ai(_));
    if backends.iter().any(is_ai) && !backends.iter().all(is_ai) {
        diags.error(route.error(
            format!("{field}.backendRefs"),
            "mixes AIBackends with other backends; a rule sends either AI traffic or plain HTTP",
        ));
    }
    let total_weight = backends.iter().map(|b| b.weight).sum();
    let timeouts = compile_timeouts(route, &field, rule, diags);
    let retry = compile_retry(route, &field, rule, diags);
    if diags.errors.len() > errors_before {
        return None;
    }
    let rule_name = rule.name.clone().unwrap_or_else(|| i.to_string());
    Some(CompiledRule {
        rule: Arc::new(RuleIr {
            route: Arc::from(format!("{}/{}", route.namespace(), route.name())),
            rule: Arc::from(rule_name),
            filters,
            backends,
            total_weight,
            timeouts,
            retry,
            ai: clusters.ai.route(route.namespace(), route.name()),
            access: clusters.access.route(route.namespace(), route.name()),
            rate_limits: clusters.rate_limits.route(route.namespace(), route.name()),
            post_routing: clusters.payload.route(route.namespace(), route.name()),
        }),
        matches,
    })
}

fn default_match() -> (RouteMatch, SortKeyPart) {
    (
        RouteMatch {
            path: PathMatch::Prefix(String::new()),
            headers: Vec::new(),
            query_params: Vec::new(),
            method: None,
        },
        SortKeyPart {
            path_kind: 1,
            path_len: 1,
            has_method: false,
            headers: 0,
            query_params: 0,
        },
    )
}

fn anchored(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))
}

fn compile_match(
    route: &Object<HttpRouteSpec>,
    field: &str,
    m: &HttpRouteMatch,
    diags: &mut Diagnostics,
) -> Option<(RouteMatch, SortKeyPart)> {
    let before = diags.errors.len();
    let (kind, value) = match &m.path {
        Some(p) => (
            p.kind.unwrap_or(PathMatchType::PathPrefix),
            p.value.clone().unwrap_or_else(|| "/".into()),
        ),
        None => (PathMatchType::PathPrefix, "/".into()),
    };
    let path = match kind {
        PathMatchType::Exact | PathMatchType::PathPrefix if !value.starts_with('/') => {
            diags.error(route.error(
                format!("{field}.path.value"),
                format!("path {value:?} must start with \"/\""),
            ));
            None
        }
        PathMatchType::Exact => Some(PathMatch::Exact(value.clone())),
        PathMatchType::PathPrefix => {
            Some(PathMatch::Prefix(value.trim_end_matches('/').to_string()))
        }
        PathMatchType::RegularExpression => match anchored(&value) {
            Ok(r) => Some(PathMatch::Regex(r)),
            Err(e) => {
                diags.error(route.error(format!("{field}.path.value"), e));
                None
            }
        },
    };
    let mut headers: Vec<HeaderMatch> = Vec::new();
    for (h, hm) in m.headers.iter().enumerate() {
        let hfield = format!("{field}.headers[{h}]");
        let Ok(name) = HeaderName::from_bytes(hm.name.as_bytes()) else {
            diags.error(route.error(
                format!("{hfield}.name"),
                format!("invalid header name {:?}", hm.name),
            ));
            continue;
        };
        if headers.iter().any(|x| x.name == name) {
            continue; // the spec: later matches on an already-matched name are ignored
        }
        if let Some(value) = string_match(route, &hfield, hm.kind, &hm.value, diags) {
            headers.push(HeaderMatch { name, value });
        }
    }
    let mut query_params: Vec<QueryParamMatch> = Vec::new();
    for (q, qm) in m.query_params.iter().enumerate() {
        let qfield = format!("{field}.queryParams[{q}]");
        if query_params.iter().any(|x| x.name == qm.name) {
            continue;
        }
        if let Some(value) = string_match(route, &qfield, qm.kind, &qm.value, diags) {
            query_params.push(QueryParamMatch {
                name: qm.name.clone(),
                value,
            });
        }
    }
    let method = match &m.method {
        Some(text) => match text.as_str() {
            "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "CONNECT" | "OPTIONS" | "TRACE"
            | "PATCH" => Method::from_bytes(text.as_bytes()).ok(),
            _ => {
                diags.error(route.error(
                    format!("{field}.method"),
                    format!("unsupported method {text:?}"),
                ));
                None
            }
        },
        None => None,
    };
    if diags.errors.len() > before {
        return None;
    }
    let path = path?;
    let part = SortKeyPart {
        path_kind: match kind {
            PathMatchType::Exact => 0,
            PathMatchType::PathPrefix => 1,
            PathMatchType::RegularExpression => 2,
        },
        path_len: value.len(),
        has_method: method.is_some(),
        headers: headers.len(),
        query_params: query_params.len(),
    };
    Some((
        RouteMatch {
            path,
            headers,
            query_params,
            method,
        },
        part,
    ))
}

fn string_match(
    route: &Object<HttpRouteSpec>,
    field: &str,
    kind: Option<StringMatchType>,
    value: &str,
    diags: &mut Diagnostics,
) -> Option<StringMatch> {
    match kind.unwrap_or(StringMatchType::Exact) {
        StringMatchType::Exact => Some(StringMatch::Exact(value.to_string())),
        StringMatchType::RegularExpression => match anchored(value) {
            Ok(r) => Some(StringMatch::Regex(r)),
            Err(e) => {
                diags.error(route.error(format!("{field}.value"), e));
                None
            }
        },
    }
}

fn compile_timeouts(
    route: &Object<HttpRouteSpec>,
    field: &str,
    rule: &HttpRouteRule,
    diags: &mut Diagnostics,
) -> Timeouts {
    let Some(t) = &rule.timeouts else {
        return Timeouts::default();
    };
    let mut parse = |name: &str, v: &Option<String>| {
        v.as_deref().and_then(|text| match parse_duration(text) {
            Ok(d) if d.is_zero() => None, // "0s" disables the timeout
            Ok(d) => Some(d),
            Err(e) => {
                diags.error(route.error(format!("{field}.timeouts.{name}"), e));
                None
            }
        })
    };
    let out = Timeouts {
        request: parse("request", &t.request),
        backend_request: parse("backendRequest", &t.backend_request),
    };
    if let (Some(r), Some(b)) = (out.request, out.backend_request) {
        if b > r {
            diags.error(route.error(
                format!("{field}.timeouts.backendRequest"),
                "must not be greater than timeouts.request",
            ));
        }
    }
    out
}

fn compile_retry(
    route: &Object<HttpRouteSpec>,
    field: &str,
    rule: &HttpRouteRule,
    diags: &mut Diagnostics,
) -> Option<RetryPolicy> {
    let r = rule.retry.as_ref()?;
    for (i, code) in r.codes.iter().enumerate() {
        if !(400..=599).contains(code) {
            diags.error(route.error(
                format!("{field}.retry.codes[{i}]"),
                format!("status code {code} is out of range 400-599"),
            ));
        }
    }
    let backoff = match r.backoff.as_deref().map(parse_duration) {
        None => std::time::Duration::from_millis(25),
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            diags.error(route.error(format!("{field}.retry.backoff"), e));
            return None;
        }
    };
    Some(RetryPolicy {
        codes: r.codes.clone(),
        attempts: r.attempts.unwrap_or(1),
        backoff,
    })
}
