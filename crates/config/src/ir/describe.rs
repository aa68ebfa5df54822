//! A JSON view of the compiled routing table for the admin server's `/config`. Secrets never
//! appear: the IR holds TLS material only inside rustls types, which this does not print.

use serde_json::{json, Value};

use super::{BackendTarget, Endpoints, Filter, PathMatch, Snapshot, StringMatch};

impl Snapshot {
    pub fn describe(&self) -> Value {
        let sockets: Vec<Value> = self
            .sockets
            .iter()
            .map(|s| {
                let listeners: Vec<Value> = s
                    .listeners
                    .iter()
                    .map(|l| {
                        let hosts: Vec<Value> = l
                            .virtual_hosts
                            .iter()
                            .map(|v| {
                                let entries: Vec<Value> = v
                                    .entries
                                    .iter()
                                    .map(|e| {
                                        let m = &e.matcher;
                                        let path = match &m.path {
                                            PathMatch::Exact(p) => json!({"type": "Exact", "value": p}),
                                            PathMatch::Prefix(p) => json!({"type": "PathPrefix", "value": if p.is_empty() { "/" } else { p.as_str() }}),
                                            PathMatch::Regex(r) => json!({"type": "RegularExpression", "value": r.as_str()}),
                                        };
                                        let headers: Vec<Value> = m
                                            .headers
                                            .iter()
                                            .map(|h| json!({"name": h.name.as_str(), "value": string_match(&h.value)}))
                                            .collect();
                                        let query: Vec<Value> = m
                                            .query_params
                                            .iter()
                                            .map(|q| json!({"name": q.name, "value": string_match(&q.value)}))
                                            .collect();
                                        let backends: Vec<Value> = e
                                            .rule
                                            .backends
                                            .iter()
                                            .map(|b| match &b.target {
                                                BackendTarget::Cluster(c) => json!({"cluster": &*c.name, "weight": b.weight}),
                                                BackendTarget::Invalid(why) => json!({"invalid": &**why, "weight": b.weight}),
                                                BackendTarget::Ai(a) => json!({"aiBackend": &*a.name, "provider": a.provider.otel_name(), "region": a.region.as_deref(), "priority": a.priority, "weight": b.weight}),
                                            })
                                            .collect();
                                        let filters: Vec<&str> = e.rule.filters.iter().map(filter_name).collect();
                                        json!({
                                            "route": &*e.rule.route,
                                            "rule": &*e.rule.rule,
                                            "path": path,
                                            "method": m.method.as_ref().map(|m| m.as_str()),
                                            "headers": headers,
                                            "queryParams": query,
                                            "filters": filters,
                                            "backends": backends,
                                        })
                                    })
                                    .collect();
                                json!({"host": v.host.as_config_string(), "entries": entries})
                            })
                            .collect();
                        json!({
                            "gateway": &*l.gateway,
                            "name": &*l.name,
                            "hostname": l.hostname.as_config_string(),
                            "protocol": if l.https { "HTTPS" } else { "HTTP" },
                            "virtualHosts": hosts,
                        })
                    })
                    .collect();
                json!({
                    "address": s.address.to_string(),
                    "port": s.port,
                    "tls": s.tls.is_some(),
                    "listeners": listeners,
                })
            })
            .collect();
        let clusters: Vec<Value> = self
            .clusters
            .iter()
            .map(|c| {
                let endpoints = match &c.endpoints {
                    Endpoints::Static(a) => {
                        json!(a.iter().map(|a| a.to_string()).collect::<Vec<_>>())
                    }
                    Endpoints::Dns { hostname, port } => json!({"dns": hostname, "port": port}),
                };
                json!({
                    "name": &*c.name,
                    "protocol": format!("{:?}", c.protocol),
                    "tls": c.tls.as_ref().map(|t| format!("{:?}", t.server_name)),
                    "endpoints": endpoints,
                })
            })
            .collect();
        json!({"sockets": sockets, "clusters": clusters})
    }
}

fn string_match(m: &StringMatch) -> Value {
    match m {
        StringMatch::Exact(s) => json!({"type": "Exact", "value": s}),
        StringMatch::Regex(r) => json!({"type": "RegularExpression", "value": r.as_str()}),
    }
}

fn filter_name(f: &Filter) -> &'static str {
    match f {
        Filter::RequestHeaders(_) => "RequestHeaderModifier",
        Filter::ResponseHeaders(_) => "ResponseHeaderModifier",
        Filter::Redirect(_) => "RequestRedirect",
        Filter::Rewrite(_) => "URLRewrite",
        Filter::Mirror(_) => "RequestMirror",
    }
}
