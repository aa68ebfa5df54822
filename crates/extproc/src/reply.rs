//! What a processor answered, in `http` types, ready to apply.
//!
//! The wire form (`ProcessingResponse`) is decoded once, in [`crate::wire`], into these types;
//! the caller never sees protobuf. Header mutations keep Envoy's semantics (removals first, then
//! sets in order, each with its append action) so a processor written against Envoy behaves the
//! same behind Sluice.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::StatusCode;

/// A processor's answer to one phase message.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Apply the mutation (possibly empty) and go on.
    Continue(Mutation),
    /// Stop here and answer the client with this response (Envoy's `ImmediateResponse`).
    Immediate(Immediate),
}

/// How one `set_headers` entry combines with what is already there
/// (`config.core.v3.HeaderValueOption.HeaderAppendAction`, or the deprecated `append` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Append {
    /// Add a value; existing values stay (`APPEND_IF_EXISTS_OR_ADD`, or `append: true`).
    Append,
    /// Replace every existing value, or add (`OVERWRITE_IF_EXISTS_OR_ADD`; also what ext_proc
    /// does when neither `append` nor a non-default `append_action` is given).
    Overwrite,
    /// Add only if the header is absent (`ADD_IF_ABSENT`).
    AddIfAbsent,
    /// Replace only if the header is present (`OVERWRITE_IF_EXISTS`).
    OverwriteIfExists,
}

/// What to do with the body the phase carried (or, after a headers phase, the body to come).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyChange {
    /// Replace the whole (buffered) body, or this chunk when streaming.
    Replace(Bytes),
    /// Drop the body (or this chunk).
    Clear,
    /// A `FULL_DUPLEX_STREAMED` body reply: the processor's next chunk of the new body.
    Streamed {
        /// The bytes to forward in place of what was sent.
        chunk: Bytes,
        /// Whether this is the processor's last chunk.
        end_of_stream: bool,
    },
}

/// The changes a processor asked for (`CommonResponse`, or the header part of an immediate
/// response, or a `TrailersResponse`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mutation {
    /// Headers to set, in the processor's order.
    pub set_headers: Vec<(HeaderName, HeaderValue, Append)>,
    /// Headers to remove; applied before `set_headers`, as Envoy does.
    pub remove_headers: Vec<HeaderName>,
    /// A new `:path` (request phases only); the caller applies it to the request URI.
    pub path: Option<PathAndQuery>,
    /// A new `:status` (response phases only); the caller applies it to the response.
    pub status: Option<StatusCode>,
    /// A body change, if any.
    pub body: Option<BodyChange>,
    /// The processor asked to re-run route selection (`clear_route_cache`).
    pub clear_route_cache: bool,
    /// `CONTINUE_AND_REPLACE`: apply this and send no further messages for this direction
    /// (request or response), whatever the processing mode says.
    pub continue_and_replace: bool,
}

impl Mutation {
    /// Whether applying this would change nothing.
    pub fn is_empty(&self) -> bool {
        self.set_headers.is_empty()
            && self.remove_headers.is_empty()
            && self.path.is_none()
            && self.status.is_none()
            && self.body.is_none()
    }

    /// Applies removals, then sets, to `headers`. Pseudo-headers (`path`, `status`) and the
    /// body are the caller's to apply: they do not live in a `HeaderMap`.
    pub fn apply_headers(&self, headers: &mut HeaderMap) {
        for name in &self.remove_headers {
            headers.remove(name);
        }
        for (name, value, append) in &self.set_headers {
            match append {
                Append::Append => {
                    headers.append(name.clone(), value.clone());
                }
                Append::Overwrite => {
                    headers.insert(name.clone(), value.clone());
                }
                Append::AddIfAbsent => {
                    if !headers.contains_key(name) {
                        headers.insert(name.clone(), value.clone());
                    }
                }
                Append::OverwriteIfExists => {
                    if headers.contains_key(name) {
                        headers.insert(name.clone(), value.clone());
                    }
                }
            }
        }
    }
}

/// A response the processor wants sent to the client instead of going on.
#[derive(Debug, Clone, PartialEq)]
pub struct Immediate {
    /// The HTTP status (200 when the processor left it unset, as Envoy does).
    pub status: StatusCode,
    /// Headers of the response; only `set_headers` / `remove_headers` are meaningful.
    pub headers: Mutation,
    /// The response body.
    pub body: Bytes,
    /// Free text for logs (`details`), never sent to the client.
    pub details: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(
        name: &'static str,
        value: &'static str,
        append: Append,
    ) -> (HeaderName, HeaderValue, Append) {
        (
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
            append,
        )
    }

    #[test]
    fn apply_headers_follows_each_append_action() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("1"));
        headers.insert("x-b", HeaderValue::from_static("1"));
        headers.insert("x-c", HeaderValue::from_static("1"));
        headers.insert("x-gone", HeaderValue::from_static("1"));
        let mutation = Mutation {
            remove_headers: vec![HeaderName::from_static("x-gone")],
            set_headers: vec![
                header("x-a", "2", Append::Append),
                header("x-b", "2", Append::Overwrite),
                header("x-c", "2", Append::AddIfAbsent),
                header("x-d", "2", Append::AddIfAbsent),
                header("x-c", "3", Append::OverwriteIfExists),
                header("x-e", "2", Append::OverwriteIfExists),
            ],
            ..Mutation::default()
        };
        mutation.apply_headers(&mut headers);

        let all = |name: &str| -> Vec<&str> {
            headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect()
        };
        assert_eq!(all("x-a"), ["1", "2"]);
        assert_eq!(all("x-b"), ["2"]);
        assert_eq!(all("x-c"), ["3"]);
        assert_eq!(all("x-d"), ["2"]);
        assert!(all("x-e").is_empty());
        assert!(all("x-gone").is_empty());
    }

    #[test]
    fn removal_runs_before_set_so_remove_then_set_keeps_the_new_value() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("old"));
        let mutation = Mutation {
            remove_headers: vec![HeaderName::from_static("x-a")],
            set_headers: vec![header("x-a", "new", Append::Append)],
            ..Mutation::default()
        };
        mutation.apply_headers(&mut headers);
        assert_eq!(headers.get_all("x-a").iter().collect::<Vec<_>>(), ["new"]);
    }
}
