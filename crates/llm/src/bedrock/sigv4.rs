//! AWS Signature Version 4 request signing (header form, `AWS4-HMAC-SHA256`), written from the
//! AWS specification:
//!
//! 1. Canonical request: method, canonical URI, canonical query, canonical headers, signed
//!    header names, hex SHA-256 of the payload, one per line.
//! 2. String to sign: the algorithm, the `x-amz-date` time, the credential scope
//!    (`date/region/service/aws4_request`) and the hex SHA-256 of the canonical request.
//! 3. Signing key: HMAC-SHA256 chained over date, region, service and `aws4_request`, starting
//!    from `"AWS4" + secret key`; the signature is the hex HMAC of the string to sign.
//!
//! The canonical URI is the path *as it goes on the wire* with each segment URI-encoded once more,
//! as every service but S3 requires; so a Bedrock model id `a:b`, sent as `a%3Ab`, is signed as
//! `a%253Ab`. Paths are not normalised (no `.`/`..` removal): Bedrock paths never contain them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{HeaderName, HeaderValue, AUTHORIZATION, HOST};
use ring::{digest, hmac};

use crate::Secret;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";

/// Headers the signer writes itself: any earlier value is dropped, never signed.
const SIGNER_HEADERS: &[&str] = &["authorization", X_AMZ_DATE, X_AMZ_SECURITY_TOKEN];

/// Headers left out of the signature because something between the signer and AWS may add,
/// change or drop them (hop-by-hop headers, the HTTP client's own `user-agent` and `expect`, the
/// tracing header AWS load balancers rewrite); signing them would make valid requests fail.
const UNSIGNED_HEADERS: &[&str] = &[
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// AWS credentials. `Debug` shows the access key id (an identifier, not a secret) and hides the
/// secret key and session token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("header {0} has a value that is not text")]
    HeaderValue(String),
    #[error("request has no host: neither a Host header nor an authority in the URI")]
    NoHost,
    #[error("signing time is outside the years 1970 to 9999")]
    Time,
}

/// A request reduced to what the signature covers, with the path and query exactly as they go on
/// the wire (still percent-encoded). `headers` are (name, value) in order, names in any case,
/// `host` included.
#[derive(Debug, Clone)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

/// Every intermediate of one signature, for callers and tests that need more than the headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureParts {
    /// The `x-amz-date` value, `YYYYMMDDTHHMMSSZ`.
    pub amz_date: String,
    pub canonical_request: String,
    /// Lowercase header names joined by `;`.
    pub signed_headers: String,
    pub string_to_sign: String,
    /// Hex HMAC-SHA256 of the string to sign.
    pub signature: String,
    /// The `Authorization` header value.
    pub authorization: String,
}

/// Signs a request in place: adds `x-amz-date`, `x-amz-security-token` (when the credentials
/// carry a session token) and `authorization`, replacing any earlier values. Every other header in
/// the map is signed (bar [`UNSIGNED_HEADERS`]), and `host` always is: taken from the map, or from
/// the URI's authority when the map has none (the HTTP client then sends that same value).
#[allow(clippy::too_many_arguments)] // each is a distinct input of the signature; a struct would only rename them
pub fn sign(
    method: &http::Method,
    uri: &http::Uri,
    headers: &mut http::HeaderMap,
    body: &[u8],
    creds: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<(), SignError> {
    for name in SIGNER_HEADERS {
        headers.remove(*name);
    }
    let parts = RequestParts {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: header_list(uri, headers)?,
        body,
    };
    let sig = signature_parts(&parts, creds, region, service, time)?;
    insert(headers, X_AMZ_DATE, &sig.amz_date)?;
    if let Some(token) = &creds.session_token {
        insert(headers, X_AMZ_SECURITY_TOKEN, token.expose())?;
    }
    insert(headers, AUTHORIZATION.as_str(), &sig.authorization)
}

/// The headers of a map as text, with `host` from the URI when the map has none.
fn header_list(
    uri: &http::Uri,
    headers: &http::HeaderMap,
) -> Result<Vec<(String, String)>, SignError> {
    let mut list = Vec::with_capacity(headers.len() + 1);
    if !headers.contains_key(HOST) {
        list.push((HOST.as_str().to_string(), uri_host(uri)?));
    }
    for (name, value) in headers {
        let text = std::str::from_utf8(value.as_bytes())
            .map_err(|_| SignError::HeaderValue(name.to_string()))?;
        list.push((name.as_str().to_string(), text.to_string()));
    }
    Ok(list)
}

/// The Host header value an HTTP client sends for this URI: the authority without user info, and
/// without the port when it is the scheme's default.
fn uri_host(uri: &http::Uri) -> Result<String, SignError> {
    let authority = uri.authority().ok_or(SignError::NoHost)?;
    let default_port = match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    };
    Ok(match authority.port_u16() {
        Some(port) if Some(port) != default_port => format!("{}:{port}", authority.host()),
        _ => authority.host().to_string(),
    })
}

fn insert(headers: &mut http::HeaderMap, name: &'static str, value: &str) -> Result<(), SignError> {
    let value = HeaderValue::from_str(value).map_err(|_| SignError::HeaderValue(name.into()))?;
    headers.insert(HeaderName::from_static(name), value);
    Ok(())
}

/// Computes the signature of a request: the canonical request (with `x-amz-date` and, when the
/// credentials have one, `x-amz-security-token` added to the headers), the string to sign, the
/// signature and the `Authorization` value. [`sign`] is this plus writing the headers.
pub fn signature_parts(
    req: &RequestParts<'_>,
    creds: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<SignatureParts, SignError> {
    let amz_date = amz_date(time)?;
    let headers = signed_header_list(req, creds, &amz_date);
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        return Err(SignError::NoHost);
    }
    let (canonical_headers, signed_headers) = canonical_headers(&headers);
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_uri(req.path),
        canonical_query(req.query),
        canonical_headers,
        signed_headers,
        payload_hash(req.body, &headers),
    );
    let scope = format!("{}/{region}/{service}/aws4_request", &amz_date[..8]);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex(digest::digest(&digest::SHA256, canonical_request.as_bytes()).as_ref())
    );
    let key = signing_key(&creds.secret_access_key, &amz_date[..8], region, service);
    let signature = hex(hmac::sign(&key, string_to_sign.as_bytes()).as_ref());
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key_id
    );
    Ok(SignatureParts {
        amz_date,
        canonical_request,
        signed_headers,
        string_to_sign,
        signature,
        authorization,
    })
}

/// The request's headers that are signed, plus the ones the signer adds.
fn signed_header_list(
    req: &RequestParts<'_>,
    creds: &Credentials,
    amz_date: &str,
) -> Vec<(String, String)> {
    let skip = |name: &str| {
        SIGNER_HEADERS
            .iter()
            .chain(UNSIGNED_HEADERS)
            .any(|s| name.eq_ignore_ascii_case(s))
    };
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .filter(|(name, _)| !skip(name))
        .cloned()
        .collect();
    headers.push((X_AMZ_DATE.into(), amz_date.into()));
    if let Some(token) = &creds.session_token {
        headers.push((X_AMZ_SECURITY_TOKEN.into(), token.expose().into()));
    }
    headers
}

/// The payload hash: an explicit `x-amz-content-sha256` (e.g. `UNSIGNED-PAYLOAD`) is what AWS
/// checks against, so it wins; otherwise the hex SHA-256 of the body.
fn payload_hash(body: &[u8], headers: &[(String, String)]) -> String {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(X_AMZ_CONTENT_SHA256))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| hex(digest::digest(&digest::SHA256, body).as_ref()))
}

fn signing_key(secret: &Secret, date: &str, region: &str, service: &str) -> hmac::Key {
    let mut key = format!("AWS4{}", secret.expose()).into_bytes();
    for part in [date, region, service, "aws4_request"] {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), part.as_bytes());
        key = tag.as_ref().to_vec();
    }
    hmac::Key::new(hmac::HMAC_SHA256, &key)
}

/// Each `/`-separated segment of the wire path URI-encoded (so `%` becomes `%25`); `/` when empty.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    let mut out = String::with_capacity(path.len() * 2);
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        uri_encode(segment.as_bytes(), &mut out);
    }
    out
}

/// Query parameters decoded, then URI-encoded and sorted by name and then value; a parameter
/// without `=` has an empty value.
fn canonical_query(query: &str) -> String {
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (encode(&percent_decode(k)), encode(&percent_decode(v)))
        })
        .collect();
    params.sort();
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Lowercase names sorted, each with its values trimmed (inner whitespace runs collapsed to one
/// space) and joined by commas in their original order; and the signed-headers list.
fn canonical_headers(headers: &[(String, String)]) -> (String, String) {
    let mut grouped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        grouped
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value);
    }
    let mut canonical = String::new();
    for (name, values) in &grouped {
        let _ = writeln!(canonical, "{name}:{}", values.join(","));
    }
    let signed = grouped.keys().cloned().collect::<Vec<_>>().join(";");
    (canonical, signed)
}

fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    uri_encode(bytes, &mut out);
    out
}

/// AWS URI encoding: unreserved characters (`A-Za-z0-9-_.~`) as they are, every other byte
/// as `%XX` with uppercase hex.
fn uri_encode(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Decodes `%XX` escapes; anything else (including a `%` not followed by two hex digits) is kept
/// as it is. `+` is not a space here: SigV4 treats it as a literal.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `YYYYMMDDTHHMMSSZ` (UTC) for a time between 1970 and 9999.
fn amz_date(time: SystemTime) -> Result<String, SignError> {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| SignError::Time)?
        .as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    if year > 9999 {
        return Err(SignError::Time);
    }
    let s = secs % 86_400;
    Ok(format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    ))
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01.
///
/// Days are counted from 0000-03-01 instead, so that the leap day is the last day of a
/// "year" (March to February); then 400-year eras (146097 days each, the Gregorian cycle) are
/// taken off, the year within the era follows from the day of the era with the 4/100/400 leap
/// corrections, and the month from the day of that March-based year (months of 153 days per
/// 5 months: 31, 30, 31, 30, 31).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // 719468 days from 0000-03-01 to 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March … 11 = February
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[path = "sigv4_vectors.rs"]
mod vectors;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// 2015-08-30T12:36:00Z, the time of AWS's SigV4 test suite.
    pub(super) fn suite_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    pub(super) fn suite_creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: token.map(Secret::new),
        }
    }

    #[test]
    fn dates_format_in_utc() {
        let at = |secs: u64| amz_date(UNIX_EPOCH + Duration::from_secs(secs)).unwrap();
        assert_eq!(at(0), "19700101T000000Z");
        assert_eq!(at(1_440_938_160), "20150830T123600Z");
        assert_eq!(at(11_016 * 86_400 + 86_399), "20000229T235959Z");
        assert_eq!(at(11_017 * 86_400), "20000301T000000Z");
        assert_eq!(at(10_956 * 86_400), "19991231T000000Z");
        assert_eq!(at(20_088 * 86_400 + 3_661), "20241231T010101Z");
        assert_eq!(at(47_541 * 86_400), "21000301T000000Z");
        assert_eq!(at(157_113 * 86_400), "24000229T000000Z");
        assert_eq!(at(2_932_896 * 86_400), "99991231T000000Z");
        assert_eq!(
            amz_date(UNIX_EPOCH + Duration::from_secs(2_932_897 * 86_400)),
            Err(SignError::Time)
        );
        assert_eq!(
            amz_date(UNIX_EPOCH - Duration::from_secs(1)),
            Err(SignError::Time)
        );
    }

    #[test]
    fn civil_dates_match_day_counts_for_every_day_of_four_centuries() {
        // Walk day by day from 1970 and check each date follows the previous one.
        let (mut y, mut m, mut d) = (1970, 1, 1);
        for days in 0..146_097 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > month_len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let c = suite_creds(Some("session-token-value"));
        let shown = format!("{c:?}");
        assert!(shown.contains("AKIDEXAMPLE"));
        assert!(!shown.contains("wJalrXUtnFEMI"));
        assert!(!shown.contains("session-token-value"));
    }

    #[test]
    fn uri_and_query_encoding() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/a b/c%3Ad"), "/a%20b/c%253Ad");
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("b=2&a=1&a=0&c"), "a=0&a=1&b=2&c=");
        assert_eq!(canonical_query("k=a%20b&x=+/"), "k=a%20b&x=%2B%2F");
        assert_eq!(canonical_query("bad=%zz%4"), "bad=%25zz%254");
        assert_eq!(percent_decode("%E1%88%B4"), "ሴ".as_bytes());
    }

    /// A Converse request as the gateway sends it: the model id is percent-encoded in the wire
    /// path and encoded once more in the canonical URI; host comes from the URI.
    #[test]
    fn bedrock_request_signs_double_encoded_path() {
        let uri: http::Uri = "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
            .parse()
            .unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("user-agent", HeaderValue::from_static("sluice"));
        headers.insert("authorization", HeaderValue::from_static("Bearer stale"));
        let body = br#"{"messages":[]}"#;
        let creds = suite_creds(Some("tok"));
        sign(
            &http::Method::POST,
            &uri,
            &mut headers,
            body,
            &creds,
            "us-east-1",
            "bedrock",
            suite_time(),
        )
        .unwrap();
        let parts = RequestParts {
            method: "POST",
            path: uri.path(),
            query: "",
            headers: vec![
                (
                    "host".into(),
                    "bedrock-runtime.us-east-1.amazonaws.com".into(),
                ),
                ("content-type".into(), "application/json".into()),
            ],
            body,
        };
        let expected =
            signature_parts(&parts, &creds, "us-east-1", "bedrock", suite_time()).unwrap();
        let creq: Vec<&str> = expected.canonical_request.lines().collect();
        assert_eq!(
            creq[1],
            "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse"
        );
        assert_eq!(
            expected.signed_headers,
            "content-type;host;x-amz-date;x-amz-security-token"
        );
        assert_eq!(
            creq.last().copied(),
            Some(hex(digest::digest(&digest::SHA256, body).as_ref()).as_str())
        );
        assert_eq!(headers["authorization"], expected.authorization.as_str());
        assert_eq!(headers["x-amz-date"], "20150830T123600Z");
        assert_eq!(headers["x-amz-security-token"], "tok");
        assert!(!headers.contains_key("host"));
        assert!(expected.authorization.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, "
        ));
    }

    #[test]
    fn signing_twice_replaces_the_signer_headers() {
        let uri: http::Uri = "https://example.amazonaws.com/".parse().unwrap();
        let mut once = http::HeaderMap::new();
        let creds = suite_creds(Some("tok"));
        let run = |h: &mut http::HeaderMap, c: &Credentials| {
            sign(
                &http::Method::GET,
                &uri,
                h,
                b"",
                c,
                "us-east-1",
                "service",
                suite_time(),
            )
            .unwrap()
        };
        run(&mut once, &creds);
        let mut twice = once.clone();
        run(&mut twice, &creds);
        assert_eq!(once, twice);
        // Re-signed without a token, the old token goes.
        run(&mut twice, &suite_creds(None));
        assert!(!twice.contains_key("x-amz-security-token"));
    }

    #[test]
    fn host_from_uri_drops_default_ports_and_keeps_others() {
        let host = |u: &str| uri_host(&u.parse().unwrap());
        assert_eq!(host("https://h.example:443/x"), Ok("h.example".into()));
        assert_eq!(host("http://h.example:80/x"), Ok("h.example".into()));
        assert_eq!(host("http://h.example:8443/x"), Ok("h.example:8443".into()));
        assert_eq!(host("https://h.example/x"), Ok("h.example".into()));
        assert_eq!(host("/x"), Err(SignError::NoHost));
    }

    #[test]
    fn missing_host_and_bad_header_values_are_errors() {
        let uri: http::Uri = "/x".parse().unwrap();
        let creds = suite_creds(None);
        let mut h = http::HeaderMap::new();
        let r = sign(
            &http::Method::GET,
            &uri,
            &mut h,
            b"",
            &creds,
            "r",
            "s",
            suite_time(),
        );
        assert_eq!(r, Err(SignError::NoHost));
        h.insert("host", HeaderValue::from_static("h"));
        h.insert("x-bin", HeaderValue::from_bytes(&[0xff, 0xfe]).unwrap());
        let r = sign(
            &http::Method::GET,
            &uri,
            &mut h,
            b"",
            &creds,
            "r",
            "s",
            suite_time(),
        );
        assert_eq!(r, Err(SignError::HeaderValue("x-bin".into())));
    }

    #[test]
    fn hop_by_hop_headers_are_not_signed() {
        let parts = RequestParts {
            method: "GET",
            path: "/",
            query: "",
            headers: vec![
                ("Host".into(), "h".into()),
                ("Connection".into(), "keep-alive".into()),
                ("User-Agent".into(), "x".into()),
                ("X-Amz-Date".into(), "19990101T000000Z".into()),
                ("My-Header".into(), "v".into()),
            ],
            body: b"",
        };
        let p = signature_parts(&parts, &suite_creds(None), "r", "s", suite_time()).unwrap();
        assert_eq!(p.signed_headers, "host;my-header;x-amz-date");
        assert!(p
            .canonical_request
            .contains("x-amz-date:20150830T123600Z\n"));
    }

    #[test]
    fn explicit_content_sha256_is_the_payload_hash() {
        let parts = RequestParts {
            method: "PUT",
            path: "/",
            query: "",
            headers: vec![
                ("host".into(), "h".into()),
                ("x-amz-content-sha256".into(), "UNSIGNED-PAYLOAD".into()),
            ],
            body: b"ignored",
        };
        let p = signature_parts(&parts, &suite_creds(None), "r", "s", suite_time()).unwrap();
        assert!(p.canonical_request.ends_with("\nUNSIGNED-PAYLOAD"));
    }
}
