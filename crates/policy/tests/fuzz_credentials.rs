//! A stable-toolchain stand-in for the cargo-fuzz targets in `fuzz/`: the same entry points
//! (`credential::presented`, `jwt::verify`) over a few hundred thousand deterministic
//! pseudo-random and mutated inputs, checking that nothing panics and that the results keep
//! their invariants. Seeds are fixed, so a failure reproduces.

#[path = "common/mint.rs"]
mod mint;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::{json, Value};
use sluice_policy::auth::credential::{presented, Credential, CredentialError, X_API_KEY};
use sluice_policy::auth::jwt::{verify, Algorithm, JwkSet, Validation};

use mint::TestKey;

/// SplitMix64: a tiny deterministic generator, fast enough in a debug build (each call yields
/// 64 bits, where a general-purpose RNG spends a call per byte).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0; the slight modulo bias does not matter here).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// What random header bytes are drawn from: mostly visible ASCII, weighted towards the bytes
/// the credential parser cares about, with some obs-text and control characters.
const BYTES: &[u8; 64] =
    b"Bbearer  \t\t.-_~+/=,;:\"'\\abcX0123456789\x7f\x00\x01\x80\xff\xc3\xa9()<>@[]{}?!#$%&*^`|";

const HEADER_SEEDS: &[&str] = &[
    "Bearer abc",
    "bearer  sk-sluice-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "BEARER eyJhbGciOiJFUzI1NiJ9.e30.AQID",
    "Basic dXNlcjpwYXNz",
    "Bearer",
    "Bearer ",
    "",
    " Bearer x ",
    "sk-ant-api03-abcdefghijklmnop",
    "Bearer a b",
    "Token abc",
];

fn random_bytes(rng: &mut Rng, max_len: usize) -> Vec<u8> {
    let len = rng.below(max_len + 1);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let bits = rng.next();
        for i in 0..8 {
            if out.len() == len {
                break;
            }
            let r = (bits >> (8 * i)) as u8;
            // One byte in 16 is any byte at all.
            out.push(if r & 0xf0 == 0 {
                r.rotate_left(4) ^ r
            } else {
                BYTES[usize::from(r & 63)]
            });
        }
    }
    out
}

/// A seed with one to four random edits.
fn mutated(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(5) {
            0 if at < bytes.len() => bytes[at] = *rng.pick(BYTES),
            1 if at < bytes.len() => bytes[at] ^= 1 << rng.below(8),
            2 if at < bytes.len() => {
                bytes.remove(at);
            }
            3 => {
                let other = rng.pick(HEADER_SEEDS).as_bytes();
                bytes.splice(at..at, other.iter().copied());
            }
            _ => bytes.insert(at, rng.next() as u8),
        }
    }
    bytes
}

fn header_value(rng: &mut Rng) -> Vec<u8> {
    if rng.below(3) == 0 {
        random_bytes(rng, 32)
    } else {
        let seed = rng.pick(HEADER_SEEDS);
        mutated(rng, seed.as_bytes())
    }
}

#[test]
fn credential_parsing_survives_random_headers() {
    let mut rng = Rng(0x5eed_c0de);
    let (mut used, mut accepted) = (0usize, 0usize);
    let vocabulary: Vec<String> = all_errors()
        .iter()
        .flat_map(|e| [e.to_string(), format!("{e:?}")])
        .collect();
    for _ in 0..200_000 {
        let auth = header_value(&mut rng);
        let key = if rng.below(4) == 0 {
            // Often the same value as the Authorization token, to reach the agreement check.
            auth.splitn(2, |b| *b == b' ')
                .nth(1)
                .unwrap_or(&auth)
                .to_vec()
        } else {
            header_value(&mut rng)
        };
        let mut map = HeaderMap::new();
        let shape = rng.below(6);
        let mut values: Vec<&[u8]> = Vec::new();
        let mut insert = |name: &http::HeaderName, value: &[u8]| -> bool {
            match HeaderValue::from_bytes(value) {
                Ok(v) => {
                    map.append(name.clone(), v);
                    true
                }
                // http refuses control characters other than tab; nothing to test then.
                Err(_) => false,
            }
        };
        let ok = match shape {
            0 => insert(&AUTHORIZATION, &auth),
            1 => insert(&X_API_KEY, &key),
            2 => insert(&AUTHORIZATION, &auth) && insert(&AUTHORIZATION, &key),
            3 => insert(&X_API_KEY, &key) && insert(&X_API_KEY, &auth),
            _ => insert(&AUTHORIZATION, &auth) && insert(&X_API_KEY, &key),
        };
        if !ok {
            continue;
        }
        used += 1;
        values.push(&auth);
        values.push(&key);
        match presented(&map) {
            Ok(None) => panic!("headers present but no credential: {map:?}"),
            Ok(Some(credential)) => {
                accepted += 1;
                let token = credential.token();
                assert!(!token.is_empty());
                assert!(
                    token.bytes().all(|b| (0x21..0x7f).contains(&b)),
                    "{token:?}"
                );
                let source: &[u8] = match credential {
                    Credential::Bearer(_) => {
                        let auth = map.get(AUTHORIZATION).expect("bearer needs the header");
                        let lower = String::from_utf8_lossy(auth.as_bytes()).to_ascii_lowercase();
                        assert!(lower.trim_start().starts_with("bearer "), "{lower:?}");
                        auth.as_bytes()
                    }
                    Credential::ApiKey(_) => {
                        assert!(map.get(AUTHORIZATION).is_none());
                        map.get(X_API_KEY)
                            .expect("api key needs the header")
                            .as_bytes()
                    }
                };
                assert!(
                    contains(source, token.as_bytes()),
                    "{token:?} not in {source:?}"
                );
                if token.len() >= 8 {
                    assert!(!format!("{credential:?}").contains(token));
                }
            }
            Err(err) => {
                let (display, debug) = (err.to_string(), format!("{err:?}"));
                // Every message is one of a fixed set: none can carry a header value.
                assert!(vocabulary.contains(&display), "{display}");
                for value in &values {
                    let Ok(value) = std::str::from_utf8(value) else {
                        continue; // a message is UTF-8, so it cannot contain this value
                    };
                    // A value that is itself a piece of some message ("Bearer is") proves
                    // nothing either way, hence the vocabulary check once something matched.
                    let leaked = |text: &str| {
                        value.len() >= 8
                            && text.contains(value)
                            && !vocabulary.iter().any(|m| m.contains(value))
                    };
                    assert!(!leaked(&display), "{display} leaks {value:?}");
                    assert!(!leaked(&debug), "{debug} leaks {value:?}");
                }
                assert!(!err.reason().is_empty());
            }
        }
    }
    // The generators must actually exercise both outcomes.
    assert!(used > 80_000, "only {used} usable inputs");
    assert!(accepted > 5_000, "only {accepted} accepted");
}

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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

const NOW: u64 = 1_700_000_000;

fn base64url_char(rng: &mut Rng) -> u8 {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    *rng.pick(ALPHABET)
}

/// A token with one edit that keeps it plausible (mostly base64url characters and dots).
fn mutated_token(rng: &mut Rng, token: &str) -> Vec<u8> {
    let mut bytes = token.as_bytes().to_vec();
    let at = rng.below(bytes.len());
    match rng.below(6) {
        0 | 1 => bytes[at] = base64url_char(rng),
        2 => bytes[at] = *rng.pick(b".=+/ \n"),
        3 => {
            bytes.remove(at);
        }
        4 => bytes.insert(at, base64url_char(rng)),
        _ => bytes.truncate(at),
    }
    bytes
}

/// A token whose header is arbitrary JSON-ish text, with a real payload and signature.
fn odd_header(rng: &mut Rng, token: &str) -> String {
    const HEADERS: &[&str] = &[
        r#"{"alg":"none"}"#,
        r#"{"alg":"HS256","kid":"ed"}"#,
        r#"{"alg":"EdDSA","kid":"ed","crit":["exp"]}"#,
        r#"{"alg":"EdDSA","alg":"none"}"#,
        r#"{"alg":"ES256","kid":"rsa"}"#,
        r#"{"alg":"RS256"}"#,
        r#"{"alg":["EdDSA"]}"#,
        r#"{"alg":"EdDSA","kid":null}"#,
        r#"[]"#,
        r#"{"#,
    ];
    let (_, rest) = token.split_once('.').unwrap_or(("", token));
    let header = if rng.bool() {
        rng.pick(HEADERS).as_bytes().to_vec()
    } else {
        random_bytes(rng, 40)
    };
    format!("{}.{rest}", mint::b64(&header))
}

#[test]
fn jwt_verification_survives_random_and_mutated_tokens() {
    let ed = TestKey::ed25519("ed");
    let p256 = TestKey::p256("p256");
    let rsa = TestKey::rsa("rsa");
    let keys = JwkSet::parse(&mint::jwks(&[ed.jwk(), p256.jwk(), rsa.jwk()])).unwrap();
    let v = Validation {
        issuer: Some("https://idp.example".into()),
        audiences: vec!["gateway".into()],
        ..Validation::new(Algorithm::ALL.to_vec())
    };
    let now = UNIX_EPOCH + Duration::from_secs(NOW);
    let claims =
        json!({"sub": "u", "exp": NOW + 60, "iss": "https://idp.example", "aud": "gateway"});
    let originals = [
        ed.token("EdDSA", &claims),
        p256.token("ES256", &claims),
        rsa.token("RS256", &claims),
        rsa.token("PS256", &claims),
    ];
    for token in &originals {
        assert!(verify(token, &keys, &v, now).is_ok());
    }

    let mut rng = Rng(0x0007_3a1d);
    let mut signature_checks = 0usize;
    for round in 0..40_000 {
        let original = &originals[round % originals.len()];
        let candidate: Vec<u8> = match rng.below(10) {
            // Mutations mostly reach the signature check, which is the slow part in a debug
            // build; keep them to a few thousand.
            0 => mutated_token(&mut rng, original),
            1..=3 => odd_header(&mut rng, original).into_bytes(),
            4..=6 => random_bytes(&mut rng, 200),
            _ => {
                // Three random base64url-ish segments.
                let mut t = Vec::new();
                for i in 0..3 {
                    if i > 0 {
                        t.push(b'.');
                    }
                    for _ in 0..rng.below(40) {
                        t.push(base64url_char(&mut rng));
                    }
                }
                t
            }
        };
        let Ok(token) = std::str::from_utf8(&candidate) else {
            // verify takes text; header values are checked to be ASCII before this point.
            continue;
        };
        let result = verify(token, &keys, &v, now);
        if token == original {
            assert!(result.is_ok());
            continue;
        }
        let err = result.expect_err("a changed token never verifies");
        if matches!(
            err.reason(),
            "bad_signature" | "expired" | "wrong_issuer" | "wrong_audience"
        ) {
            signature_checks += 1;
        }
        let display = err.to_string();
        if token.len() >= 8 {
            assert!(!display.contains(token), "{display}");
        }
        for part in token.split('.').filter(|p| p.len() >= 16) {
            assert!(!display.contains(part), "{display} leaks {part}");
        }
    }
    assert!(
        signature_checks > 1000,
        "only {signature_checks} reached the signature check"
    );
    check_now_does_not_matter_for_garbage();
}

/// Extreme clocks must not panic either.
fn check_now_does_not_matter_for_garbage() {
    let ed = TestKey::ed25519("ed");
    let keys = JwkSet::parse(&mint::jwks(&[ed.jwk()])).unwrap();
    let v = Validation::new(vec![Algorithm::EdDSA]);
    for exp in [
        json!(0),
        json!(-1e300),
        json!(1e300),
        json!(u64::MAX),
        json!(0.5),
    ] {
        let token = ed.token("EdDSA", &json!({"exp": exp}));
        for now in [
            UNIX_EPOCH,
            UNIX_EPOCH - Duration::from_secs(1 << 40),
            SystemTime::now(),
            UNIX_EPOCH + Duration::from_secs(1 << 40),
        ] {
            let _ = verify(&token, &keys, &v, now);
        }
    }
    let token = ed.token("EdDSA", &Value::Null);
    assert!(verify(&token, &keys, &v, SystemTime::now()).is_err());
}
