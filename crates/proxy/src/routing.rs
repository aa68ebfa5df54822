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
    fn decodes_query_values() {
        let q = parse_query(Some("a=b%20c&d=e+f&g"));
        assert_eq!(q[0], (Cow::Borrowed("a"), Cow::Owned::<str>("b c".into())));
        assert_eq!(q[1].1, "e f");
        assert_eq!(q[2], (Cow::Borrowed("g"), Cow::Borrowed("")));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
