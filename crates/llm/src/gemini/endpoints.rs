//! Where Gemini requests go: Vertex AI's regional hosts and paths, and the Gemini API's paths.
//!
//! The Gemini API key travels in the `x-goog-api-key` header, never in the query string, so it
//! cannot end up in access logs; nothing here takes a key.

/// Host of the Vertex AI API for a location: `{location}-aiplatform.googleapis.com`, or
/// `aiplatform.googleapis.com` for the `global` location, which has no regional host.
///
/// The location is not escaped (a host has no escaping): check it first with [`is_valid_location`].
pub fn vertex_host(location: &str) -> String {
    if location == "global" {
        "aiplatform.googleapis.com".to_string()
    } else {
        format!("{location}-aiplatform.googleapis.com")
    }
}

/// Whether `location` can name a Vertex AI location (`us-central1`, `europe-west4`, `global`):
/// lowercase letters, digits and inner hyphens, so it is safe inside a host name.
pub fn is_valid_location(location: &str) -> bool {
    !location.is_empty()
        && !location.starts_with('-')
        && !location.ends_with('-')
        && location
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Path of a Google publisher model's generate call on Vertex AI:
/// `/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent`,
/// or `:streamGenerateContent?alt=sse` for a stream (without `alt=sse` Vertex streams one JSON
/// array instead of server-sent events).
pub fn vertex_path(project: &str, location: &str, model: &str, stream: bool) -> String {
    format!(
        "/v1/projects/{}/locations/{}/publishers/google/models/{}{}",
        encode_segment(project),
        encode_segment(location),
        encode_segment(model),
        method(stream)
    )
}

/// Path of a generate call on the Gemini API (`generativelanguage.googleapis.com`):
/// `/v1beta/models/{model}:generateContent`, or `:streamGenerateContent?alt=sse`. A model given
/// as a resource name (`models/gemini-2.5-flash`) is accepted too.
pub fn gemini_api_path(model: &str, stream: bool) -> String {
    let model = model.strip_prefix("models/").unwrap_or(model);
    format!("/v1beta/models/{}{}", encode_segment(model), method(stream))
}

/// Host of the Gemini API.
pub const GEMINI_API_HOST: &str = "generativelanguage.googleapis.com";

/// Header that carries a Gemini API key.
pub const API_KEY_HEADER: &str = "x-goog-api-key";

fn method(stream: bool) -> &'static str {
    if stream {
        ":streamGenerateContent?alt=sse"
    } else {
        ":generateContent"
    }
}

/// Percent-encodes one path segment (RFC 3986). Unreserved characters stay, and so does `@`,
/// which Vertex model versions use (`model@001`) and which is legal in a segment; everything else
/// is escaped, notably `/` (would change the path), `:` (would be read as the method separator),
/// `?` and `#`.
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for &b in segment.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vertex_paths() {
        assert_eq!(
            vertex_path("my-proj", "us-central1", "gemini-2.5-pro", false),
            "/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent"
        );
        assert_eq!(
            vertex_path("my-proj", "global", "gemini-2.5-flash", true),
            "/v1/projects/my-proj/locations/global/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn vertex_hosts() {
        assert_eq!(
            vertex_host("us-central1"),
            "us-central1-aiplatform.googleapis.com"
        );
        assert_eq!(
            vertex_host("europe-west4"),
            "europe-west4-aiplatform.googleapis.com"
        );
        assert_eq!(vertex_host("global"), "aiplatform.googleapis.com");
    }

    #[test]
    fn locations_safe_for_a_host() {
        assert!(is_valid_location("us-central1"));
        assert!(is_valid_location("global"));
        for bad in [
            "",
            "-us",
            "us-",
            "US-central1",
            "us.central1",
            "evil.com/x",
            "a b",
        ] {
            assert!(!is_valid_location(bad), "{bad:?}");
        }
    }

    #[test]
    fn gemini_api_paths() {
        assert_eq!(
            gemini_api_path("gemini-2.5-flash", false),
            "/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            gemini_api_path("models/gemini-2.5-flash", true),
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn segments_are_escaped() {
        assert_eq!(
            gemini_api_path("a/b:c?d#e f", false),
            "/v1beta/models/a%2Fb%3Ac%3Fd%23e%20f:generateContent"
        );
        assert_eq!(
            vertex_path("p/x", "us-central1", "m@001", false),
            "/v1/projects/p%2Fx/locations/us-central1/publishers/google/models/m@001:generateContent"
        );
        // Non-ASCII goes byte by byte as UTF-8.
        assert_eq!(encode_segment("é"), "%C3%A9");
    }
}
