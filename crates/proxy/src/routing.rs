//! Route matching: socket → listener (by host) → virtual host → first entry in precedence order.

use std::borrow::Cow;

use http::{HeaderMap, Method};
use sluice_config::ir::{ListenerIr, PathMatch, RouteEntry, RouteMatch, SocketIr};

/// What the router needs from a request.
pub struct RequestView<'a> {
    /// Lowercased host without port.
    pub host: &'a str,
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

pub struct Hit<'a> {
    pub listener: &'a ListenerIr,
    pub entry: &'a RouteEntry,
}

/// Finds the route entry for a request, or `None` (404).
pub fn find<'a>(socket: &'a SocketIr, req: &RequestView<'_>) -> Option<Hit<'a>> {
    let listener = socket.listener_for(req.host)?;
    let vhost = listener.virtual_host_for(req.host)?;
    let mut query: Option<Vec<(Cow<'_, str>, Cow<'_, str>)>> = None;
    let entry = vhost.entries.iter().find(|e| {
        let m = &e.matcher;
        if !path_matches(m, req.path) {
            return false;
        }
        if m.method.as_ref().is_some_and(|want| want != req.method) {
            return false;
        }
        if !m.headers.iter().all(|h| {
            let mut values = req.headers.get_all(&h.name).iter();
            values.any(|v| v.to_str().is_ok_and(|s| h.value.matches(s)))
        }) {
            return false;
        }
        if m.query_params.is_empty() {
            return true;
        }
        let params = query.get_or_insert_with(|| parse_query(req.query));
        m.query_params.iter().all(|q| {
            params
                .iter()
                .find(|(k, _)| k == q.name.as_str())
                .is_some_and(|(_, v)| q.value.matches(v))
        })
    })?;
    Some(Hit {
        listener: listener.as_ref(),
        entry,
    })
}

fn path_matches(m: &RouteMatch, path: &str) -> bool {
    match &m.path {
        PathMatch::Exact(p) => p == path,
        PathMatch::Prefix(p) => {
            p.is_empty()
                || (path.starts_with(p.as_str())
                    && (path.len() == p.len() || path.as_bytes()[p.len()] == b'/'))
        }
        PathMatch::Regex(r) => r.is_match(path),
    }
}

/// The path a prefix match consumed, for `ReplacePrefixMatch` rewrites.
pub fn matched_prefix(m: &RouteMatch) -> Option<&str> {
    match &m.path {
        PathMatch::Prefix(p) => Some(p.as_str()),
        _ => None,
    }
}

/// Normalises a request path before routing, so `/public/../admin` cannot match a `/public`
/// route and then reach `/admin` on a backend that resolves dot segments itself: dot segments
/// are removed (RFC 3986 §5.2.4, including percent-encoded dots) and repeated slashes merged.
/// Paths that need none of this (nearly all) are returned as they are, without allocating.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    let b = path.as_bytes();
    let suspicious = b.windows(2).any(|w| w == b"//" || w == b"/.")
        || b.windows(3)
            .any(|w| w[0] == b'%' && w[1] == b'2' && (w[2] == b'e' || w[2] == b'E'));
    if !suspicious {
        return Cow::Borrowed(path);
    }
    let decoded = path.replace("%2e", ".").replace("%2E", ".");
    let mut out: Vec<&str> = Vec::new();
    let mut trailing_slash = decoded.ends_with('/');
    for seg in decoded.split('/') {
        match seg {
            "" => {}
            "." => trailing_slash = true,
            ".." => {
                out.pop();
                trailing_slash = true;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    trailing_slash |= decoded.ends_with('/');
    let mut result = String::with_capacity(decoded.len());
    for seg in &out {
        result.push('/');
        result.push_str(seg);
    }
    if result.is_empty() || trailing_slash {
        result.push('/');
    }
    Cow::Owned(result)
}

pub enum Normalized {
    Unchanged,
    Changed(http::Uri),
}

/// The request URI with its path normalised ([`normalize_path`]); `Unchanged` in the common case.
pub fn normalized_uri(uri: &http::Uri) -> Normalized {
    let Cow::Owned(path) = normalize_path(uri.path()) else {
        return Normalized::Unchanged;
    };
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    match http::uri::PathAndQuery::try_from(pq) {
        Ok(p) => {
            parts.path_and_query = Some(p);
            http::Uri::from_parts(parts).map_or(Normalized::Unchanged, Normalized::Changed)
        }
        Err(_) => Normalized::Unchanged,
    }
}

/// Parses `a=1&b=2` with percent-decoding; the first occurrence of a name wins when matching.
fn parse_query(query: Option<&str>) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let Some(q) = query else {
        return Vec::new();
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_dot_segments_and_slashes() {
        assert!(matches!(normalize_path("/a/b.c/d"), Cow::Borrowed(_)));
        assert_eq!(normalize_path("/public/../admin"), "/admin");
        assert_eq!(normalize_path("/public/%2e%2E/admin"), "/admin");
        assert_eq!(normalize_path("/a//b///c"), "/a/b/c");
        assert_eq!(normalize_path("/a/./b/"), "/a/b/");
        assert_eq!(normalize_path("/a/b/.."), "/a/");
        assert_eq!(normalize_path("/../../x"), "/x");
        assert_eq!(normalize_path("//"), "/");
        assert_eq!(normalize_path("/.well-known/x"), "/.well-known/x");
    }

    #[test]
    fn decodes_query_values() {
        let q = parse_query(Some("a=b%20c&d=e+f&g"));
        assert_eq!(q[0], (Cow::Borrowed("a"), Cow::Owned::<str>("b c".into())));
        assert_eq!(q[1].1, "e f");
        assert_eq!(q[2], (Cow::Borrowed("g"), Cow::Borrowed("")));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
