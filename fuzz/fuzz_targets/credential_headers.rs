//! Arbitrary bytes as `Authorization` and `x-api-key` header values, alone, together and
//! repeated, into `credential::presented`.
//!
//! Input layout: the first byte picks which headers are set; the rest is split at the first
//! 0x00 byte into the Authorization value and the x-api-key value (0x00 cannot occur in a
//! header value, so it is free to use as a separator).
#![no_main]

use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use libfuzzer_sys::fuzz_target;
use sluice_policy::auth::credential::{presented, Credential, CredentialError, X_API_KEY};

fuzz_target!(|data: &[u8]| {
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    let (auth, key) = match rest.iter().position(|b| *b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, rest),
    };
    let (Ok(auth_value), Ok(key_value)) =
        (HeaderValue::from_bytes(auth), HeaderValue::from_bytes(key))
    else {
        return; // http refuses these bytes before the gateway ever sees them
    };
    let mut headers = HeaderMap::new();
    if shape & 1 != 0 {
        headers.append(AUTHORIZATION, auth_value.clone());
    }
    if shape & 2 != 0 {
        headers.append(X_API_KEY, key_value.clone());
    }
    if shape & 4 != 0 {
        headers.append(AUTHORIZATION, key_value);
    }
    if shape & 8 != 0 {
        headers.append(X_API_KEY, auth_value);
    }
    match presented(&headers) {
        Ok(None) => assert!(headers.is_empty()),
        Ok(Some(credential)) => {
            let token = credential.token();
            assert!(!token.is_empty());
            assert!(token.bytes().all(|b| (0x21..0x7f).contains(&b)));
            let source = match credential {
                Credential::Bearer(_) => headers.get(AUTHORIZATION),
                Credential::ApiKey(_) => headers.get(X_API_KEY),
            };
            let source = source.map(HeaderValue::as_bytes).unwrap_or_default();
            assert!(source.windows(token.len()).any(|w| w == token.as_bytes()));
        }
        // Every message is one of a fixed set, so none can carry a header value.
        Err(err) => assert!(all_errors()
            .iter()
            .any(|e| e.to_string() == err.to_string())),
    }
});

fn all_errors() -> Vec<CredentialError> {
    let mut all = vec![
        CredentialError::DuplicateAuthorization,
        CredentialError::DuplicateApiKey,
        CredentialError::UnsupportedScheme,
        CredentialError::Ambiguous,
    ];
    for header in ["Authorization", "x-api-key"] {
        all.push(CredentialError::Empty { header });
        all.push(CredentialError::Malformed { header });
        all.push(CredentialError::InvalidCharacters { header });
    }
    all
}
