//! HTTPRoute filters: header modifiers, redirects, URL rewrites and mirrors.

use http::{HeaderName, HeaderValue};

use super::backends::Clusters;
use super::gateways::validate_precise_hostname;
use super::index::Index;
use crate::error::Diagnostics;
use crate::ir::{Filter, HeaderModifier, Mirror, PathModifier, Redirect, Rewrite};
use crate::objects::httproute::{
    HttpHeaderFilter, HttpPathModifier, HttpRouteFilter, HttpRouteSpec, PathModifierType,
};
use crate::objects::Object;

pub(crate) fn compile_filters(
    idx: &Index<'_>,
    route: &Object<HttpRouteSpec>,
    field: &str,
    filters: &[HttpRouteFilter],
    prefix_only: bool,
    clusters: &mut Clusters,
    diags: &mut Diagnostics,
) -> Vec<Filter> {
    let mut out = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (i, f) in filters.iter().enumerate() {
        let ffield = format!("{field}[{i}]");
        let kind = f.kind.as_str();
        if kind != "RequestMirror" && seen.contains(&kind) {
            diags.error(route.error(
                format!("{ffield}.type"),
                format!("filter {kind} may appear only once per rule"),
            ));
            continue;
        }
        seen.push(kind);
        let missing = |diags: &mut Diagnostics, name: &str| {
            diags.error(route.error(
                format!("{ffield}.{name}"),
                format!("is required when type is {kind}"),
            ));
        };
        match kind {
            "RequestHeaderModifier" => match &f.request_header_modifier {
                Some(m) => {
                    if let Some(m) = header_modifier(route, &format!("{ffield}.requestHeaderModifier"), m, diags) {
                        out.push(Filter::RequestHeaders(m));
                    }
                }
                None => missing(diags, "requestHeaderModifier"),
            },
            "ResponseHeaderModifier" => match &f.response_header_modifier {
                Some(m) => {
                    if let Some(m) = header_modifier(route, &format!("{ffield}.responseHeaderModifier"), m, diags) {
                        out.push(Filter::ResponseHeaders(m));
                    }
                }
                None => missing(diags, "responseHeaderModifier"),
            },
            "RequestRedirect" => match &f.request_redirect {
                Some(r) => {
                    let rf = format!("{ffield}.requestRedirect");
                    let status = r.status_code.unwrap_or(302);
                    if ![301, 302, 303, 307, 308].contains(&status) {
                        diags.error(route.error(
                            format!("{rf}.statusCode"),
                            format!("status code {status} is not a redirect (301, 302, 303, 307, 308)"),
                        ));
                    }
                    if let Some(s) = &r.scheme {
                        if s != "http" && s != "https" {
                            diags.error(route.error(
                                format!("{rf}.scheme"),
                                format!("scheme {s:?} is not http or https"),
                            ));
                        }
                    }
                    if let Some(h) = &r.hostname {
                        if let Err(e) = validate_precise_hostname(h) {
                            diags.error(route.error(format!("{rf}.hostname"), e));
                        }
                    }
                    let port = r.port.and_then(|p| {
                        let ok = u16::try_from(p).ok().filter(|p| *p > 0);
                        if ok.is_none() {
                            diags.error(route.error(
                                format!("{rf}.port"),
                                format!("port {p} is out of range 1-65535"),
                            ));
                        }
                        ok
                    });
                    let path = r
                        .path
                        .as_ref()
                        .and_then(|p| path_modifier(route, &format!("{rf}.path"), p, prefix_only, diags));
                    out.push(Filter::Redirect(Redirect {
                        scheme: r.scheme.clone(),
                        hostname: r.hostname.clone(),
                        path,
                        port,
                        status,
                    }));
                }
                None => missing(diags, "requestRedirect"),
            },
            "URLRewrite" => match &f.url_rewrite {
                Some(r) => {
                    let rf = format!("{ffield}.urlRewrite");
                    let hostname = r.hostname.as_ref().and_then(|h| {
                        if let Err(e) = validate_precise_hostname(h) {
                            diags.error(route.error(format!("{rf}.hostname"), e));
                            return None;
                        }
                        HeaderValue::from_str(h).ok()
                    });
                    let path = r
                        .path
                        .as_ref()
                        .and_then(|p| path_modifier(route, &format!("{rf}.path"), p, prefix_only, diags));
                    out.push(Filter::Rewrite(Rewrite { hostname, path }));
                }
                None => missing(diags, "urlRewrite"),
            },
            "RequestMirror" => match &f.request_mirror {
                Some(m) => {
                    let mf = format!("{ffield}.requestMirror");
                    let per_million = match (m.percent, &m.fraction) {
                        (Some(_), Some(_)) => {
                            diags.error(route.error(mf.clone(), "percent and fraction are mutually exclusive"));
                            0
                        }
                        (Some(p), None) if p <= 100 => p * 10_000,
                        (Some(p), None) => {
                            diags.error(route.error(format!("{mf}.percent"), format!("{p} is out of range 0-100")));
                            0
                        }
                        (None, Some(fr)) => {
                            let den = fr.denominator.unwrap_or(100);
                            if den == 0 || fr.numerator > den {
                                diags.error(route.error(
                                    format!("{mf}.fraction"),
                                    "numerator must be at most denominator, and denominator above 0",
                                ));
                                0
                            } else {
                                ((u64::from(fr.numerator) * 1_000_000) / u64::from(den)) as u32
                            }
                        }
                        (None, None) => 1_000_000,
                    };
                    let target = clusters.resolve(idx, route, &format!("{mf}.backendRef"), &m.backend_ref, diags);
                    out.push(Filter::Mirror(Mirror { target, per_million }));
                }
                None => missing(diags, "requestMirror"),
            },
            other => diags.error(route.error(
                format!("{ffield}.type"),
                format!(
                    "filter type {other:?} is not supported (supported: RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror)"
                ),
            )),
        }
    }
    if seen.contains(&"RequestRedirect") && seen.contains(&"URLRewrite") {
        diags.error(route.error(
            field,
            "RequestRedirect and URLRewrite cannot be used together",
        ));
    }
    out
}

fn header_modifier(
    route: &Object<HttpRouteSpec>,
    field: &str,
    m: &HttpHeaderFilter,
    diags: &mut Diagnostics,
) -> Option<HeaderModifier> {
    let before = diags.errors.len();
    let mut pairs = |list: &[crate::objects::httproute::HttpHeader], name: &str| {
        let mut out = Vec::new();
        for (i, h) in list.iter().enumerate() {
            let n = HeaderName::from_bytes(h.name.as_bytes());
            let v = HeaderValue::from_str(&h.value);
            match (n, v) {
                (Ok(n), Ok(v)) => out.push((n, v)),
                (Err(_), _) => diags.error(route.error(
                    format!("{field}.{name}[{i}].name"),
                    format!("invalid header name {:?}", h.name),
                )),
                (_, Err(_)) => diags.error(
                    route.error(format!("{field}.{name}[{i}].value"), "invalid header value"),
                ),
            }
        }
        out
    };
    let set = pairs(&m.set, "set");
    let add = pairs(&m.add, "add");
    let mut remove = Vec::new();
    for (i, r) in m.remove.iter().enumerate() {
        match HeaderName::from_bytes(r.as_bytes()) {
            Ok(n) => remove.push(n),
            Err(_) => diags.error(route.error(
                format!("{field}.remove[{i}]"),
                format!("invalid header name {r:?}"),
            )),
        }
    }
    (diags.errors.len() == before).then_some(HeaderModifier { set, add, remove })
}

fn path_modifier(
    route: &Object<HttpRouteSpec>,
    field: &str,
    p: &HttpPathModifier,
    prefix_only: bool,
    diags: &mut Diagnostics,
) -> Option<PathModifier> {
    match p.kind {
        PathModifierType::ReplaceFullPath => match &p.replace_full_path {
            Some(v) => Some(PathModifier::Full(v.clone())),
            None => {
                diags.error(route.error(
                    format!("{field}.replaceFullPath"),
                    "is required when type is ReplaceFullPath",
                ));
                None
            }
        },
        PathModifierType::ReplacePrefixMatch => {
            if !prefix_only {
                diags.error(route.error(
                    format!("{field}.type"),
                    "ReplacePrefixMatch needs every match of the rule to be a PathPrefix match",
                ));
                return None;
            }
            match &p.replace_prefix_match {
                Some(v) => Some(PathModifier::Prefix(v.clone())),
                None => {
                    diags.error(route.error(
                        format!("{field}.replacePrefixMatch"),
                        "is required when type is ReplacePrefixMatch",
                    ));
                    None
                }
            }
        }
    }
}
