//! Arbitrary text as a token into `jwt::verify`, against a fixed key set of every supported
//! kind. The fuzzer holds no private key, so no input can carry a valid signature: the target
//! checks that nothing panics, that nothing verifies, and that errors never echo the token.
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use sluice_policy::auth::jwt::{verify, Algorithm, JwkSet, JwtError, Validation};

static KEYS: LazyLock<JwkSet> = LazyLock::new(|| {
    let rsa = include_str!("../../crates/policy/tests/fixtures/rsa2048.jwk.json");
    // P-256 and Ed25519 public keys from RFC 7515 A.3 and RFC 8037 A.2.
    let doc = format!(
        r#"{{"keys": [{rsa},
        {{"kty":"EC","crv":"P-256","kid":"ec",
          "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
          "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}},
        {{"kty":"OKP","crv":"Ed25519","kid":"ed",
          "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}]}}"#
    );
    JwkSet::parse(doc.as_bytes()).expect("the fixed key set parses")
});

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let v = Validation {
        issuer: Some("https://idp.example".into()),
        audiences: vec!["gateway".into()],
        ..Validation::new(Algorithm::ALL.to_vec())
    };
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    match verify(token, &KEYS, &v, now) {
        // Only the header's alg is ever echoed, and only in part; every other message is
        // fixed text, so the token cannot leak through an error.
        Err(JwtError::AlgorithmNotAllowed(alg)) => assert!(alg.chars().count() <= 33),
        Err(err) => assert!(!err.reason().is_empty()),
        Ok(_) => panic!("no input can carry a valid signature for these keys"),
    }
});
