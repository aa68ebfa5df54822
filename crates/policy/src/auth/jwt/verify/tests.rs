//! Sign-then-verify round trips for every rule of the pipeline, including the classic attacks.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::signature::KeyPair;
use serde_json::{json, Value};

use super::*;
use crate::auth::jwt::mint::{self, TestKey};
use crate::auth::jwt::MAX_TOKEN_LEN;

const NOW: u64 = 1_700_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

/// One key of each kind, generated once: RSA is a fixture, the others are fresh per run.
struct Keys {
    rsa: TestKey,
    p256: TestKey,
    p384: TestKey,
    ed: TestKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: TestKey::rsa("rsa"),
        p256: TestKey::p256("p256"),
        p384: TestKey::p384("p384"),
        ed: TestKey::ed25519("ed"),
    })
}

fn set(jwks: &[Value]) -> JwkSet {
    JwkSet::parse(&mint::jwks(jwks)).unwrap()
}

fn full_set() -> JwkSet {
    let k = keys();
    set(&[k.rsa.jwk(), k.p256.jwk(), k.p384.jwk(), k.ed.jwk()])
}

fn all_algorithms() -> Validation {
    Validation {
        clock_skew: Duration::ZERO,
        ..Validation::new(Algorithm::ALL.to_vec())
    }
}

fn claims() -> Value {
    json!({"sub": "user-1", "exp": NOW + 300, "iss": "https://idp.example", "aud": "gateway"})
}

fn check(token: &str) -> Result<Claims, JwtError> {
    verify(token, &full_set(), &all_algorithms(), now())
}

fn key_for(alg: Algorithm) -> &'static TestKey {
    let k = keys();
    match alg {
        Algorithm::ES256 => &k.p256,
        Algorithm::ES384 => &k.p384,
        Algorithm::EdDSA => &k.ed,
        _ => &k.rsa,
    }
}

#[test]
fn every_algorithm_verifies_and_returns_the_claims() {
    for alg in Algorithm::ALL {
        let token = key_for(alg).token(alg.as_str(), &claims());
        let verified = check(&token).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(verified.string("sub"), Some("user-1"), "{alg}");
        assert_eq!(Value::Object(verified.0), claims());
    }
}

#[test]
fn only_configured_algorithms_are_accepted() {
    let v = Validation {
        algorithms: vec![Algorithm::ES256],
        ..all_algorithms()
    };
    let token = keys().rsa.token("RS256", &claims());
    assert_eq!(
        verify(&token, &full_set(), &v, now()),
        Err(JwtError::AlgorithmNotAllowed("RS256".into()))
    );
    let token = keys().p256.token("ES256", &claims());
    assert!(verify(&token, &full_set(), &v, now()).is_ok());
}

#[test]
fn unsigned_tokens_are_refused() {
    for alg in ["none", "None", "NONE", "nOnE"] {
        let token = mint::unsigned(&json!({"alg": alg}), &claims());
        assert_eq!(
            check(&token),
            Err(JwtError::AlgorithmNotAllowed(alg.into()))
        );
        // With a kid and a signature-shaped tail, too.
        let token = format!(
            "{}AQID",
            mint::unsigned(&json!({"alg": alg, "kid": "rsa"}), &claims())
        );
        assert_eq!(
            check(&token),
            Err(JwtError::AlgorithmNotAllowed(alg.into()))
        );
    }
}

/// The algorithm-confusion attack: the attacker MACs a token with the server's *public* RSA
/// key in whatever form a naive verifier might feed to HMAC.
#[test]
fn hmac_signed_with_the_public_key_is_refused() {
    let rsa = ring::signature::RsaKeyPair::from_pkcs8(mint::RSA_PKCS8).unwrap();
    let pkcs1_der = rsa.public_key().as_ref().to_vec();
    let jwk_json = keys().rsa.jwk().to_string();
    let secrets: [&[u8]; 5] = [
        mint::RSA_JWK.as_bytes(),
        jwk_json.as_bytes(),
        mint::RSA_SPKI_DER,
        mint::RSA_SPKI_PEM.as_bytes(),
        &pkcs1_der,
    ];
    for secret in secrets {
        for header in [
            json!({"alg": "HS256", "kid": "rsa"}),
            json!({"alg": "HS256"}),
        ] {
            let token = mint::hs256(secret, &header, &claims());
            assert_eq!(
                check(&token),
                Err(JwtError::AlgorithmNotAllowed("HS256".into()))
            );
        }
        // Even relabelled as RS256, an HMAC tag is no RSA signature.
        let forged = mint::hs256(secret, &json!({"alg": "RS256", "kid": "rsa"}), &claims());
        assert_eq!(check(&forged), Err(JwtError::BadSignature));
    }
}

#[test]
fn a_wrong_signature_is_refused() {
    // Same kid, different private key.
    let impostor = TestKey::p256("p256");
    let token = impostor.token("ES256", &claims());
    assert_eq!(check(&token), Err(JwtError::BadSignature));
    // Another key's signature spliced onto the token.
    let good = keys().ed.token("EdDSA", &claims());
    let other = keys()
        .ed
        .token("EdDSA", &json!({"sub": "other", "exp": NOW + 300}));
    let (input, _) = good.rsplit_once('.').unwrap();
    let (_, sig) = other.rsplit_once('.').unwrap();
    assert_eq!(
        check(&format!("{input}.{sig}")),
        Err(JwtError::BadSignature)
    );
    // Truncated and empty signatures.
    let token = keys().rsa.token("RS256", &claims());
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap();
    let truncated = format!("{input}.{}", mint::b64(&sig[..sig.len() - 1]));
    assert_eq!(check(&truncated), Err(JwtError::BadSignature));
    assert_eq!(check(&format!("{input}.")), Err(JwtError::BadSignature));
}

#[test]
fn a_tampered_payload_is_refused() {
    for alg in Algorithm::ALL {
        let token = key_for(alg).token(alg.as_str(), &claims());
        let parts: Vec<&str> = token.split('.').collect();
        let mut escalated = claims();
        escalated["sub"] = json!("admin");
        let tampered = format!("{}.{}.{}", parts[0], mint::b64_json(&escalated), parts[2]);
        assert_eq!(check(&tampered), Err(JwtError::BadSignature), "{alg}");
        // A tampered header (kid kept, so the same key is used).
        let header = json!({"alg": alg.as_str(), "kid": key_for(alg).kid, "typ": "at+jwt"});
        let tampered = format!("{}.{}.{}", mint::b64_json(&header), parts[1], parts[2]);
        assert_eq!(check(&tampered), Err(JwtError::BadSignature), "{alg}");
    }
}

#[test]
fn ecdsa_signatures_must_be_fixed_width_not_der() {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &rng,
    )
    .unwrap();
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .unwrap();
    let point = pair.public_key().as_ref();
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": "der",
        "x": mint::b64(&point[1..33]), "y": mint::b64(&point[33..])});
    let input = format!(
        "{}.{}",
        mint::b64_json(&json!({"alg": "ES256", "kid": "der"})),
        mint::b64_json(&claims())
    );
    let der = pair.sign(&rng, input.as_bytes()).unwrap();
    let token = format!("{input}.{}", mint::b64(der.as_ref()));
    assert_eq!(
        verify(&token, &set(&[jwk]), &all_algorithms(), now()),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn key_selection_by_kid() {
    let k = keys();
    // Unknown kid.
    let token = k
        .p256
        .token_with_header(&json!({"alg": "ES256", "kid": "nope"}), &claims());
    assert_eq!(check(&token), Err(JwtError::UnknownKey));
    // An empty kid is a kid like any other.
    let token = k
        .p256
        .token_with_header(&json!({"alg": "ES256", "kid": ""}), &claims());
    assert_eq!(check(&token), Err(JwtError::UnknownKey));
    // The kid names a key of another family.
    let token = k
        .p256
        .token_with_header(&json!({"alg": "ES256", "kid": "rsa"}), &claims());
    assert_eq!(check(&token), Err(JwtError::KeyAlgorithmMismatch));
    // A P-256 key cannot verify ES384, whatever the header says.
    let token = k
        .p256
        .token_with_header(&json!({"alg": "ES384", "kid": "p256"}), &claims());
    assert_eq!(check(&token), Err(JwtError::KeyAlgorithmMismatch));
    // The kid-named key is the only candidate even when another key would verify.
    let both = set(&[k.p256.jwk(), {
        let mut other = TestKey::p256("other").jwk();
        other["kid"] = json!("p256-second");
        other
    }]);
    let token = k
        .p256
        .token_with_header(&json!({"alg": "ES256", "kid": "p256-second"}), &claims());
    assert_eq!(
        verify(&token, &both, &all_algorithms(), now()),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn kidless_tokens_try_every_fitting_key() {
    let k = keys();
    let extra_p256 = TestKey::p256("x1");
    let extra_rsa_like = TestKey::ed25519("x2");
    let many = set(&[
        extra_p256.jwk(),
        extra_rsa_like.jwk(),
        k.rsa.jwk(),
        k.p256.jwk(),
        k.ed.jwk(),
    ]);
    for (key, alg) in [(&k.p256, "ES256"), (&k.ed, "EdDSA"), (&k.rsa, "PS384")] {
        let token = key.token_with_header(&json!({"alg": alg}), &claims());
        assert!(
            verify(&token, &many, &all_algorithms(), now()).is_ok(),
            "{alg}"
        );
    }
    // Signed by a key not in the set.
    let stranger = TestKey::p256("stranger");
    let token = stranger.token_with_header(&json!({"alg": "ES256"}), &claims());
    assert_eq!(
        verify(&token, &many, &all_algorithms(), now()),
        Err(JwtError::BadSignature)
    );
    // No key in the set fits ES384.
    let token = k
        .p384
        .token_with_header(&json!({"alg": "ES384"}), &claims());
    assert_eq!(
        verify(&token, &many, &all_algorithms(), now()),
        Err(JwtError::UnknownKey)
    );
}

#[test]
fn keys_offered_by_the_token_are_ignored() {
    let attacker = TestKey::p256("attacker");
    for extra in [
        json!({"jwk": attacker.jwk()}),
        json!({"jku": "https://evil.example/jwks.json"}),
        json!({"x5c": ["MIIB"]}),
    ] {
        let mut header = json!({"alg": "ES256"});
        header
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let token = attacker.token_with_header(&header, &claims());
        assert_eq!(check(&token), Err(JwtError::BadSignature), "{header}");
    }
}

#[test]
fn a_jwk_stating_rs256_cannot_verify_ps256() {
    let rsa = &keys().rsa;
    let pinned = set(&[rsa.jwk_for("RS256")]);
    let token = rsa.token("PS256", &claims());
    assert_eq!(
        verify(&token, &pinned, &all_algorithms(), now()),
        Err(JwtError::KeyAlgorithmMismatch)
    );
    let kidless = rsa.token_with_header(&json!({"alg": "PS256"}), &claims());
    assert_eq!(
        verify(&kidless, &pinned, &all_algorithms(), now()),
        Err(JwtError::UnknownKey)
    );
    let token = rsa.token("RS256", &claims());
    assert!(verify(&token, &pinned, &all_algorithms(), now()).is_ok());
}

#[test]
fn crit_headers_are_refused_even_when_signed() {
    let k = &keys().ed;
    for crit in [json!(["exp"]), json!(["b64"]), json!([])] {
        let header = json!({"alg": "EdDSA", "kid": "ed", "crit": crit, "b64": false});
        let token = k.token_with_header(&header, &claims());
        assert_eq!(check(&token), Err(JwtError::CriticalHeader));
    }
}

#[test]
fn oversized_tokens_are_refused_before_decoding() {
    let k = &keys().ed;
    let mut big = claims();
    big["pad"] = json!("x".repeat(MAX_TOKEN_LEN));
    let token = k.token("EdDSA", &big);
    assert!(token.len() > MAX_TOKEN_LEN);
    assert_eq!(check(&token), Err(JwtError::TooLarge));
    // Just under the cap is fine.
    let mut fits = claims();
    fits["pad"] = json!("x".repeat(MAX_TOKEN_LEN / 2));
    assert!(check(&k.token("EdDSA", &fits)).is_ok());
}

#[test]
fn the_payload_must_be_a_json_object() {
    let k = &keys().ed;
    let header = br#"{"alg":"EdDSA","kid":"ed"}"#;
    for payload in [
        &b"[1,2]"[..],
        b"\"sub\"",
        b"42",
        b"null",
        b"{\"exp\":",
        b"",
        b"\xff\xfe",
    ] {
        let token = k.token_raw("EdDSA", header, payload);
        assert_eq!(
            check(&token),
            Err(JwtError::Malformed("payload is not a JSON object")),
            "{}",
            String::from_utf8_lossy(payload)
        );
    }
}

#[test]
fn malformed_tokens_are_refused() {
    let good = keys().ed.token("EdDSA", &claims());
    assert!(check(&good).is_ok());
    let [h, p, sig]: [&str; 3] = good.split('.').collect::<Vec<_>>().try_into().unwrap();
    let cases = [
        (
            String::new(),
            "a JWS compact token has exactly three segments",
        ),
        (
            "not a token".to_owned(),
            "a JWS compact token has exactly three segments",
        ),
        (
            format!("{h}.{p}"),
            "a JWS compact token has exactly three segments",
        ),
        (
            format!("{good}.{sig}"),
            "a JWS compact token has exactly three segments",
        ),
        (format!("{h}=.{p}.{sig}"), "header is not base64url"),
        (format!("{h} .{p}.{sig}"), "header is not base64url"),
        (format!("{h}.{p}=.{sig}"), "payload is not base64url"),
        (format!("{h}.{p}.{sig}="), "signature is not base64url"),
        (
            format!("{h}.{p}.+{}", &sig[1..]),
            "signature is not base64url",
        ),
        (
            format!("{h}.{p}./{}", &sig[1..]),
            "signature is not base64url",
        ),
        (format!("{h}.{p}.{sig}\n"), "signature is not base64url"),
        (
            format!("{}.{p}.{sig}", mint::b64(b"not json")),
            "header is not a JSON object with a string \"alg\"",
        ),
        ("a.b.c".to_owned(), "header is not base64url"),
        (
            "..".to_owned(),
            "header is not a JSON object with a string \"alg\"",
        ),
    ];
    for (token, why) in cases {
        assert_eq!(check(&token), Err(JwtError::Malformed(why)), "{token}");
    }
}

#[test]
fn claims_are_checked_after_the_signature() {
    let k = &keys().p256;
    let v = Validation {
        issuer: Some("https://idp.example".into()),
        audiences: vec!["gateway".into()],
        clock_skew: Duration::from_secs(30),
        ..Validation::new(vec![Algorithm::ES256])
    };
    let run = |claims: Value| verify(&k.token("ES256", &claims), &full_set(), &v, now());
    let base = claims();
    assert!(run(base.clone()).is_ok());

    let with = |name: &str, value: Value| {
        let mut c = base.clone();
        c[name] = value;
        c
    };
    assert_eq!(run(with("exp", json!(NOW - 31))), Err(JwtError::Expired));
    assert!(run(with("exp", json!(NOW - 29))).is_ok());
    assert_eq!(
        run(with("nbf", json!(NOW + 31))),
        Err(JwtError::NotYetValid)
    );
    assert!(run(with("nbf", json!(NOW + 29))).is_ok());
    assert_eq!(
        run(with("iss", json!("https://evil.example"))),
        Err(JwtError::WrongIssuer)
    );
    assert_eq!(
        run(with("aud", json!("other"))),
        Err(JwtError::WrongAudience)
    );
    assert!(run(with("aud", json!(["other", "gateway"]))).is_ok());
    let mut no_exp = base.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(run(no_exp), Err(JwtError::MissingExpiry));

    // A forged token with expired claims reports the forgery, not the expiry.
    let impostor = TestKey::p256("p256");
    let forged = impostor.token("ES256", &with("exp", json!(NOW - 1000)));
    assert_eq!(
        verify(&forged, &full_set(), &v, now()),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn errors_never_contain_the_token() {
    let k = keys();
    let good = k.rsa.token("RS256", &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let tokens = [
        k.p256.token("ES256", &with_exp(NOW - 1000)),
        TestKey::p256("p256").token("ES256", &claims()),
        format!("{}.{}.{}", parts[0], parts[1], &parts[2][..10]),
        mint::unsigned(&json!({"alg": "none"}), &claims()),
        format!("{good}{}", "A".repeat(MAX_TOKEN_LEN)),
    ];
    for token in tokens {
        let err = check(&token).unwrap_err();
        for text in [err.to_string(), format!("{err:?}")] {
            for part in token.split('.').filter(|p| p.len() >= 8) {
                assert!(!text.contains(part), "{text}");
            }
        }
    }
    // An absurd alg is echoed only in part.
    let long_alg = "A".repeat(500);
    let token = mint::unsigned(&json!({"alg": long_alg}), &claims());
    let err = check(&token).unwrap_err();
    assert_eq!(err.reason(), "algorithm_not_allowed");
    assert!(err.to_string().len() < 100);
}

fn with_exp(exp: u64) -> Value {
    let mut c = claims();
    c["exp"] = json!(exp);
    c
}
