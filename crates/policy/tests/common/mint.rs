//! Test-only token minting: signs JWTs with `ring` for every algorithm the verifier accepts, so
//! tests are real sign-then-verify round trips. Shared by the unit tests (included with
//! `#[path]`), the integration tests and the benchmarks.
#![allow(dead_code)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{json, Value};

/// The test-only RSA key (see `tests/fixtures/README.md`).
pub const RSA_PKCS8: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/rsa2048.pk8.der"
));
pub const RSA_SPKI_DER: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/rsa2048.spki.der"
));
pub const RSA_SPKI_PEM: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/rsa2048.spki.pem"
));
pub const RSA_JWK: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/rsa2048.jwk.json"
));

enum Signer {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private key with a `kid`, and its public JWK (without `alg`).
pub struct TestKey {
    pub kid: String,
    signer: Signer,
    public: Value,
}

impl TestKey {
    pub fn rsa(kid: &str) -> TestKey {
        let pair = RsaKeyPair::from_pkcs8(RSA_PKCS8).expect("fixture key");
        let mut public: Value = serde_json::from_str(RSA_JWK).expect("fixture JWK");
        public["kid"] = json!(kid);
        if let Some(map) = public.as_object_mut() {
            map.remove("alg");
            map.remove("use");
        }
        TestKey {
            kid: kid.to_owned(),
            signer: Signer::Rsa(pair),
            public,
        }
    }

    pub fn p256(kid: &str) -> TestKey {
        TestKey::ecdsa(
            kid,
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            "P-256",
            32,
        )
    }

    pub fn p384(kid: &str) -> TestKey {
        TestKey::ecdsa(
            kid,
            &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            "P-384",
            48,
        )
    }

    fn ecdsa(
        kid: &str,
        alg: &'static signature::EcdsaSigningAlgorithm,
        crv: &str,
        size: usize,
    ) -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generate EC key");
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("EC key");
        let point = pair.public_key().as_ref();
        let (x, y) = point[1..].split_at(size);
        let public = json!({"kty": "EC", "crv": crv, "kid": kid, "x": b64(x), "y": b64(y)});
        TestKey {
            kid: kid.to_owned(),
            signer: Signer::Ecdsa(pair),
            public,
        }
    }

    pub fn ed25519(kid: &str) -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("generate Ed25519 key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("Ed25519 key");
        let public = json!({
            "kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(pair.public_key().as_ref()),
        });
        TestKey {
            kid: kid.to_owned(),
            signer: Signer::Ed25519(pair),
            public,
        }
    }

    /// The public JWK, without `alg`.
    pub fn jwk(&self) -> Value {
        self.public.clone()
    }

    /// The public JWK stating `alg`.
    pub fn jwk_for(&self, alg: &str) -> Value {
        let mut jwk = self.jwk();
        jwk["alg"] = json!(alg);
        jwk
    }

    /// Signs `message`. RSA keys pick PKCS#1 v1.5 or PSS and the hash from `alg`; EC and
    /// Ed25519 keys always sign with their own algorithm, whatever `alg` says, so tests can
    /// mint tokens whose header lies about the algorithm.
    pub fn sign(&self, alg: &str, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Rsa(pair) => {
                let padding: &'static dyn signature::RsaEncoding = match alg {
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    "PS512" => &signature::RSA_PSS_SHA512,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(padding, &rng, message, &mut out)
                    .expect("RSA sign");
                out
            }
            Signer::Ecdsa(pair) => pair
                .sign(&rng, message)
                .expect("ECDSA sign")
                .as_ref()
                .to_vec(),
            Signer::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }

    /// A token with header `{"alg": alg, "kid": <this key's kid>}` and `claims`.
    pub fn token(&self, alg: &str, claims: &Value) -> String {
        self.token_with_header(&json!({"alg": alg, "kid": self.kid, "typ": "JWT"}), claims)
    }

    /// A token with exactly `header` (its `alg` picks the RSA padding) and `claims`.
    pub fn token_with_header(&self, header: &Value, claims: &Value) -> String {
        let alg = header["alg"].as_str().unwrap_or("");
        let input = format!("{}.{}", b64_json(header), b64_json(claims));
        let sig = self.sign(alg, input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }

    /// A token over raw header and payload bytes (for payloads that are not JSON objects).
    pub fn token_raw(&self, alg: &str, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let sig = self.sign(alg, input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }
}

/// A JWK set document holding `keys`.
pub fn jwks(keys: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "keys": keys })).expect("JSON")
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64_json(value: &Value) -> String {
    b64(&serde_json::to_vec(value).expect("JSON"))
}

/// An HS256 token MACed with `secret`: the algorithm-confusion attack when `secret` is a
/// public key.
pub fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64_json(header), b64_json(claims));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// An unsigned (`alg: none`) token, with the empty signature RFC 7519 §6.1 prescribes.
pub fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.{}.", b64_json(header), b64_json(claims))
}
