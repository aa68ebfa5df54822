//! Which credential a request presents, read from its headers.
//!
//! Two headers carry credentials: `Authorization: Bearer <token>` (what OpenAI-style clients and
//! OAuth/OIDC clients send) and `x-api-key: <key>` (what the Anthropic SDK sends). Anything
//! unclear is an error rather than a guess: a second copy of either header, another scheme, a
//! malformed token, or the two headers disagreeing. Guessing would let a client (or something in
//! front of it) smuggle a second identity past whatever looked at the first one.
//!
//! The query string is never consulted, which is why [`presented`] takes no URI: credentials in
//! URLs end up in access logs, proxy logs and browser history (RFC 6750 §5.3 advises against
//! them), and accepting them anywhere would invite clients to send them.
//!
//! Nothing here allocates: the credential borrows from the header map. No error message carries
//! a header's value, because that value is a secret (or a client's mistaken attempt at one).

use std::fmt;

use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};

/// The header the Anthropic SDK sends its API key in.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// A credential as the request presented it, borrowed from its headers.
///
/// `Debug` shows only the kind and length: the token is a secret.
#[derive(Clone, Copy)]
pub enum Credential<'a> {
    /// `Authorization: Bearer <token>`: an opaque token, a virtual API key or a JWT.
    Bearer(&'a str),
    /// `x-api-key: <key>`.
    ApiKey(&'a str),
}

impl Credential<'_> {
    /// The credential text, without the scheme.
    pub fn token(&self) -> &str {
        match self {
            Credential::Bearer(token) | Credential::ApiKey(token) => token,
        }
    }
}

impl fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Credential::Bearer(_) => "Bearer",
            Credential::ApiKey(_) => "ApiKey",
        };
        write!(f, "{kind}(<{} bytes redacted>)", self.token().len())
    }
}

/// Why the credential headers of a request cannot be read. Messages name the header, never its
/// value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("more than one Authorization header")]
    DuplicateAuthorization,
    #[error("more than one x-api-key header")]
    DuplicateApiKey,
    #[error("unsupported authorization scheme (only Bearer is accepted)")]
    UnsupportedScheme,
    #[error("the {header} header carries no credential")]
    Empty { header: &'static str },
    #[error("the {header} credential is malformed (it must be visible ASCII without spaces)")]
    Malformed { header: &'static str },
    #[error("the {header} header contains non-ASCII or control characters")]
    InvalidCharacters { header: &'static str },
    #[error("the Authorization and x-api-key headers carry different credentials")]
    Ambiguous,
}

impl CredentialError {
    /// A short snake_case name for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            CredentialError::DuplicateAuthorization => "duplicate_authorization",
            CredentialError::DuplicateApiKey => "duplicate_api_key",
            CredentialError::UnsupportedScheme => "unsupported_scheme",
            CredentialError::Empty { .. } => "empty_credential",
            CredentialError::Malformed { .. } => "malformed_credential",
            CredentialError::InvalidCharacters { .. } => "invalid_characters",
            CredentialError::Ambiguous => "ambiguous_credentials",
        }
    }
}

const AUTHORIZATION_NAME: &str = "Authorization";
const X_API_KEY_NAME: &str = "x-api-key";

/// The credential the request presents, if any.
///
/// Only headers are read (see the module documentation for why never the query string).
/// When both headers are present with the same value (some clients set both), that value is the
/// credential, reported as [`Credential::Bearer`]; with different values the request is
/// ambiguous and refused.
pub fn presented(headers: &HeaderMap) -> Result<Option<Credential<'_>>, CredentialError> {
    let bearer = match single(
        headers,
        &AUTHORIZATION,
        CredentialError::DuplicateAuthorization,
    )? {
        Some(value) => Some(bearer_token(value)?),
        None => None,
    };
    let api_key = match single(headers, &X_API_KEY, CredentialError::DuplicateApiKey)? {
        Some(value) => Some(api_key(value)?),
        None => None,
    };
    match (bearer, api_key) {
        (None, None) => Ok(None),
        (Some(token), None) => Ok(Some(Credential::Bearer(token))),
        (None, Some(key)) => Ok(Some(Credential::ApiKey(key))),
        // Both values came from the client, so comparing them in variable time reveals nothing
        // the client did not already know.
        (Some(token), Some(key)) if token == key => Ok(Some(Credential::Bearer(token))),
        (Some(_), Some(_)) => Err(CredentialError::Ambiguous),
    }
}

/// The one value of `name`, or `duplicate` when the request repeats the header.
fn single<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
    duplicate: CredentialError,
) -> Result<Option<&'a HeaderValue>, CredentialError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(duplicate);
    }
    Ok(first)
}

/// The token of an `Authorization: Bearer <token>` value (RFC 6750 §2.1): the scheme in any
/// case, one or more spaces, then the token.
fn bearer_token(value: &HeaderValue) -> Result<&str, CredentialError> {
    let text = visible_ascii(value, AUTHORIZATION_NAME)?;
    if text.is_empty() {
        return Err(CredentialError::Empty {
            header: AUTHORIZATION_NAME,
        });
    }
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(CredentialError::UnsupportedScheme);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(CredentialError::Empty {
            header: AUTHORIZATION_NAME,
        });
    }
    if token.contains(' ') {
        return Err(CredentialError::Malformed {
            header: AUTHORIZATION_NAME,
        });
    }
    Ok(token)
}

/// The key of an `x-api-key` value.
fn api_key(value: &HeaderValue) -> Result<&str, CredentialError> {
    let key = visible_ascii(value, X_API_KEY_NAME)?;
    if key.is_empty() {
        return Err(CredentialError::Empty {
            header: X_API_KEY_NAME,
        });
    }
    if key.contains(' ') {
        return Err(CredentialError::Malformed {
            header: X_API_KEY_NAME,
        });
    }
    Ok(key)
}

/// The header value as text, without surrounding spaces and tabs (RFC 9110 §5.5: they are not
/// part of the value; hyper already strips them from what it parses, but a `HeaderMap` built
/// elsewhere may still carry them). What remains must be visible ASCII or spaces: tokens and API
/// keys are ASCII, and rejecting the rest here means later stages only ever see plain text.
///
/// Tokens are deliberately not held to the strict RFC 6750 `b64token` alphabet: some providers'
/// keys use other visible characters, and the value is only ever hashed or parsed as a JWT, so
/// a wider alphabet costs nothing.
fn visible_ascii<'a>(
    value: &'a HeaderValue,
    header: &'static str,
) -> Result<&'a str, CredentialError> {
    let bytes = trim_ows(value.as_bytes());
    if !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err(CredentialError::InvalidCharacters { header });
    }
    // Every byte is ASCII, so this cannot fail; mapping the error keeps the code panic-free.
    std::str::from_utf8(bytes).map_err(|_| CredentialError::InvalidCharacters { header })
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            map.append(name, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    fn read(pairs: &[(&str, &[u8])]) -> Result<Option<(&'static str, String)>, CredentialError> {
        let map = headers(pairs);
        presented(&map).map(|c| {
            c.map(|c| match c {
                Credential::Bearer(t) => ("bearer", t.to_owned()),
                Credential::ApiKey(t) => ("api_key", t.to_owned()),
            })
        })
    }

    fn ok(
        kind: &'static str,
        token: &str,
    ) -> Result<Option<(&'static str, String)>, CredentialError> {
        Ok(Some((kind, token.to_owned())))
    }

    #[test]
    fn no_credential_headers_is_none() {
        assert_eq!(read(&[]), Ok(None));
        assert_eq!(read(&[("content-type", b"application/json")]), Ok(None));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_allows_several_spaces() {
        assert_eq!(
            read(&[("authorization", b"Bearer abc.def-ghi")]),
            ok("bearer", "abc.def-ghi")
        );
        assert_eq!(
            read(&[("authorization", b"bearer abc")]),
            ok("bearer", "abc")
        );
        assert_eq!(
            read(&[("authorization", b"BEARER abc")]),
            ok("bearer", "abc")
        );
        assert_eq!(
            read(&[("authorization", b"Bearer    abc")]),
            ok("bearer", "abc")
        );
        assert_eq!(
            read(&[("authorization", b"  Bearer abc \t")]),
            ok("bearer", "abc")
        );
        assert_eq!(
            read(&[("authorization", b"Bearer sk/+a==")]),
            ok("bearer", "sk/+a==")
        );
    }

    #[test]
    fn api_key_header_is_an_api_key() {
        assert_eq!(
            read(&[("x-api-key", b"sk-ant-123")]),
            ok("api_key", "sk-ant-123")
        );
        assert_eq!(
            read(&[("X-Api-Key", b" sk-ant-123 ")]),
            ok("api_key", "sk-ant-123")
        );
    }

    #[test]
    fn other_schemes_are_refused() {
        for value in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"Token abc",
            b"Bearerabc",
            b"abc",
            b"Digest a=b",
        ] {
            assert_eq!(
                read(&[("authorization", value)]),
                Err(CredentialError::UnsupportedScheme),
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn empty_and_malformed_tokens_are_refused() {
        let empty = Err(CredentialError::Empty {
            header: "Authorization",
        });
        assert_eq!(read(&[("authorization", b"Bearer")]), empty);
        assert_eq!(read(&[("authorization", b"Bearer    ")]), empty);
        assert_eq!(read(&[("authorization", b"")]), empty);
        assert_eq!(
            read(&[("authorization", b"Bearer a b")]),
            Err(CredentialError::Malformed {
                header: "Authorization"
            })
        );
        assert_eq!(
            read(&[("x-api-key", b"")]),
            Err(CredentialError::Empty {
                header: "x-api-key"
            })
        );
        assert_eq!(
            read(&[("x-api-key", b"sk 1")]),
            Err(CredentialError::Malformed {
                header: "x-api-key"
            })
        );
    }

    #[test]
    fn non_ascii_and_control_characters_are_refused() {
        let auth = Err(CredentialError::InvalidCharacters {
            header: "Authorization",
        });
        assert_eq!(read(&[("authorization", b"Bearer ab\tc")]), auth);
        assert_eq!(
            read(&[("authorization", "Bearer caf\u{e9}".as_bytes())]),
            auth
        );
        assert_eq!(read(&[("authorization", b"Bearer a\xffb")]), auth);
        assert_eq!(
            read(&[("x-api-key", b"k\tey")]),
            Err(CredentialError::InvalidCharacters {
                header: "x-api-key"
            })
        );
    }

    #[test]
    fn repeated_headers_are_refused() {
        assert_eq!(
            read(&[
                ("authorization", b"Bearer a"),
                ("authorization", b"Bearer a")
            ]),
            Err(CredentialError::DuplicateAuthorization)
        );
        assert_eq!(
            read(&[("x-api-key", b"a"), ("x-api-key", b"b")]),
            Err(CredentialError::DuplicateApiKey)
        );
    }

    #[test]
    fn both_headers_must_agree() {
        assert_eq!(
            read(&[("authorization", b"Bearer same"), ("x-api-key", b"same")]),
            ok("bearer", "same")
        );
        assert_eq!(
            read(&[("authorization", b"Bearer one"), ("x-api-key", b"two")]),
            Err(CredentialError::Ambiguous)
        );
        // A malformed header is not rescued by a good one.
        assert_eq!(
            read(&[("authorization", b"Basic abc"), ("x-api-key", b"two")]),
            Err(CredentialError::UnsupportedScheme)
        );
    }

    #[test]
    fn messages_and_debug_never_contain_the_value() {
        let secret = "sk-very-secret-value";
        let cases: Vec<Vec<(&str, Vec<u8>)>> = vec![
            vec![("authorization", format!("Basic {secret}").into_bytes())],
            vec![("authorization", secret.as_bytes().to_vec())],
            vec![("authorization", format!("Bearer {secret} x").into_bytes())],
            vec![("authorization", format!("Bearer {secret}\tx").into_bytes())],
            vec![(
                "authorization",
                format!("Bearer {secret}\u{e9}").into_bytes(),
            )],
            vec![("x-api-key", format!("{secret} x").into_bytes())],
            vec![
                ("authorization", format!("Bearer {secret}").into_bytes()),
                ("x-api-key", b"other".to_vec()),
            ],
            vec![
                ("x-api-key", secret.as_bytes().to_vec()),
                ("x-api-key", secret.as_bytes().to_vec()),
            ],
        ];
        for case in cases {
            let pairs: Vec<(&str, &[u8])> = case.iter().map(|(n, v)| (*n, v.as_slice())).collect();
            let map = headers(&pairs);
            let err = presented(&map).expect_err("every case is an error");
            assert!(!err.to_string().contains(secret), "{err}");
            assert!(!format!("{err:?}").contains(secret), "{err:?}");
        }
        let map = headers(&[("authorization", format!("Bearer {secret}").as_bytes())]);
        let credential = presented(&map).unwrap().unwrap();
        assert_eq!(credential.token(), secret);
        assert_eq!(format!("{credential:?}"), "Bearer(<20 bytes redacted>)");
    }

    #[test]
    fn reasons_are_distinct() {
        let all = [
            CredentialError::DuplicateAuthorization,
            CredentialError::DuplicateApiKey,
            CredentialError::UnsupportedScheme,
            CredentialError::Empty { header: "x" },
            CredentialError::Malformed { header: "x" },
            CredentialError::InvalidCharacters { header: "x" },
            CredentialError::Ambiguous,
        ];
        let mut reasons: Vec<_> = all.iter().map(CredentialError::reason).collect();
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), all.len());
    }
}
