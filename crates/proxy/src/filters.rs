//! Applying HTTPRoute filters to a request or response.

use http::header::{HeaderMap, HeaderValue, LOCATION};
use http::{Response, StatusCode};
use sluice_config::ir::{HeaderModifier, PathModifier, Redirect};

use crate::body::{self, Body};

/// Applies `set`, `add` and `remove` in the order the spec lists them.
pub fn modify_headers(headers: &mut HeaderMap, m: &HeaderModifier) {
    for (name, value) in &m.set {
        headers.insert(name.clone(), value.clone());
    }
    for (name, value) in &m.add {
        headers.append(name.clone(), value.clone());
    }
    for name in &m.remove {
        headers.remove(name);
    }
}

/// The path after a path modifier; `prefix` is what the rule's PathPrefix match consumed.
pub fn rewrite_path(path: &str, modifier: &PathModifier, prefix: Option<&str>) -> String {
    match modifier {
        PathModifier::Full(p) => p.clone(),
        PathModifier::Prefix(replacement) => {
            let consumed = prefix.unwrap_or("");
            let rest = path.get(consumed.len()..).unwrap_or("");
            let out = format!("{}{}", replacement.trim_end_matches('/'), rest);
            if out.is_empty() {
                "/".to_string()
            } else {
                out
            }
        }
    }
}

/// What a redirect needs to know about the request it answers.
pub struct RedirectContext<'a> {
    pub https: bool,
    /// Host without port.
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The Gateway listener port the request arrived on (the logical port, not an offset one).
    pub listener_port: u16,
    pub matched_prefix: Option<&'a str>,
}

/// Builds the redirect response. Port rules of the spec: an explicit port wins; with a scheme
/// and no port, the scheme's well-known port; otherwise the listener's port. Well-known ports
/// (80 for http, 443 for https) are left out of `Location`.
pub fn redirect(r: &Redirect, ctx: &RedirectContext<'_>) -> Response<Body> {
    let scheme = r
        .scheme
        .as_deref()
        .unwrap_or(if ctx.https { "https" } else { "http" });
    let host = r.hostname.as_deref().unwrap_or(ctx.host);
    let port = match (r.port, &r.scheme) {
        (Some(p), _) => p,
        (None, Some(s)) => {
            if s == "https" {
                443
            } else {
                80
            }
        }
        (None, None) => ctx.listener_port,
    };
    let default_port = (scheme == "http" && port == 80) || (scheme == "https" && port == 443);
    let path = match &r.path {
        Some(m) => rewrite_path(ctx.path, m, ctx.matched_prefix),
        None => ctx.path.to_string(),
    };
    let mut location = String::with_capacity(64);
    location.push_str(scheme);
    location.push_str("://");
    if host.contains(':') {
        // An IPv6 literal: brackets were dropped when the Host was parsed.
        location.push('[');
        location.push_str(host);
        location.push(']');
    } else {
        location.push_str(host);
    }
    if !default_port {
        location.push(':');
        location.push_str(&port.to_string());
    }
    location.push_str(&path);
    if let Some(q) = ctx.query {
        location.push('?');
        location.push_str(q);
    }
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FOUND);
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rewrite_keeps_the_rest() {
        let m = PathModifier::Prefix("/one".into());
        assert_eq!(
            rewrite_path("/prefix/one/two", &m, Some("/prefix/one")),
            "/one/two"
        );
        let strip = PathModifier::Prefix("/".into());
        assert_eq!(
            rewrite_path("/strip-prefix/three", &strip, Some("/strip-prefix")),
            "/three"
        );
        assert_eq!(
            rewrite_path("/strip-prefix", &strip, Some("/strip-prefix")),
            "/"
        );
    }

    fn ctx<'a>(https: bool, port: u16) -> RedirectContext<'a> {
        RedirectContext {
            https,
            host: "example.com",
            path: "/a",
            query: Some("x=1"),
            listener_port: port,
            matched_prefix: None,
        }
    }

    #[test]
    fn redirect_ports_follow_the_spec() {
        let r = |scheme: Option<&str>, port: Option<u16>| Redirect {
            scheme: scheme.map(String::from),
            hostname: None,
            path: None,
            port,
            status: 302,
        };
        let loc = |resp: Response<Body>| resp.headers()[LOCATION].to_str().unwrap().to_string();
        assert_eq!(
            loc(redirect(&r(None, None), &ctx(false, 80))),
            "http://example.com/a?x=1"
        );
        assert_eq!(
            loc(redirect(&r(None, None), &ctx(false, 8080))),
            "http://example.com:8080/a?x=1"
        );
        assert_eq!(
            loc(redirect(&r(Some("https"), None), &ctx(false, 8080))),
            "https://example.com/a?x=1"
        );
        assert_eq!(
            loc(redirect(&r(Some("https"), Some(8443)), &ctx(false, 80))),
            "https://example.com:8443/a?x=1"
        );
        let v6 = RedirectContext {
            host: "::1",
            ..ctx(false, 8080)
        };
        assert_eq!(
            loc(redirect(&r(None, None), &v6)),
            "http://[::1]:8080/a?x=1"
        );
    }
}
