//! Authentication on the request path: credential parsing, API-key lookup, JWT verification.
//!
//! Run with `cargo bench -p sluice-policy --bench auth`. Targets: API-key authentication (parse
//! the headers, digest, look up) within 5 µs; JWT verification with cached keys within 20 µs.
//! A single public-key signature check alone costs more than 20 µs on most servers (ECDSA P-256
//! and Ed25519 verification are 50-100 µs), which is why `JwksCache::verify` remembers tokens it
//! has verified: the `remembered_*` benches are the per-request cost for a client that reuses
//! its token, the `verify_*` ones the cost of a token's first request.

#[path = "../tests/common/mint.rs"]
mod mint;

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use divan::{black_box, Bencher};
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::json;
use sluice_policy::auth::apikey::{generate, KeyTable};
use sluice_policy::auth::credential::{presented, X_API_KEY};
use sluice_policy::auth::jwks::JwksCache;
use sluice_policy::auth::jwt::{verify, Algorithm, JwkSet, Validation};

use mint::TestKey;

fn main() {
    divan::main();
}

/// 10 000 generated keys and a table of their digests.
static KEYS: LazyLock<(KeyTable<u32>, Vec<String>)> = LazyLock::new(|| {
    let mut table = KeyTable::new();
    let mut keys = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let (key, digest) = generate();
        table
            .insert(digest, i)
            .expect("generated keys are distinct");
        keys.push(key);
    }
    (table, keys)
});

mod apikey {
    use super::*;

    #[divan::bench]
    fn find_hit_in_10k(bencher: Bencher) {
        let (table, keys) = &*KEYS;
        bencher.bench(|| table.find(black_box(&keys[4321])));
    }

    #[divan::bench]
    fn find_miss_in_10k(bencher: Bencher) {
        let (table, _) = &*KEYS;
        let (stranger, _) = generate();
        bencher.bench(|| table.find(black_box(&stranger)));
    }

    /// The whole of API-key authentication: read the credential from the headers, then find it.
    #[divan::bench]
    fn authenticate_x_api_key(bencher: Bencher) {
        let (table, keys) = &*KEYS;
        let mut headers = request_headers();
        headers.insert(
            X_API_KEY,
            HeaderValue::from_str(&keys[4321]).expect("ASCII"),
        );
        bencher.bench(|| {
            let credential = presented(black_box(&headers)).ok().flatten()?;
            table.find(credential.token())
        });
    }
}

/// Headers a typical SDK request carries besides the credential.
fn request_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("host", "gateway.example"),
        ("content-type", "application/json"),
        ("accept", "application/json"),
        ("user-agent", "OpenAI/Python 1.51.0"),
        ("x-stainless-lang", "python"),
        ("content-length", "512"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
}

mod credential {
    use super::*;

    #[divan::bench]
    fn bearer(bencher: Bencher) {
        let mut headers = request_headers();
        let value = "Bearer sk-sluice-Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg";
        headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
        bencher.bench(|| presented(black_box(&headers)).map(|c| c.map(|c| c.token().len())));
    }

    #[divan::bench]
    fn none(bencher: Bencher) {
        let headers = request_headers();
        bencher.bench(|| presented(black_box(&headers)).map(|c| c.is_some()));
    }
}

mod jwt {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    struct Fixture {
        keys: JwkSet,
        /// The same keys, with the memo of verified tokens.
        cache: JwksCache,
        validation: Validation,
        rs256: String,
        es256: String,
        eddsa: String,
    }

    static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
        let rsa = TestKey::rsa("rsa-1");
        let p256 = TestKey::p256("ec-1");
        let ed = TestKey::ed25519("ed-1");
        // A realistic set: the current keys plus a rotated-out one per kind.
        let jwks = [
            TestKey::p256("ec-0").jwk(),
            rsa.jwk_for("RS256"),
            p256.jwk(),
            TestKey::ed25519("ed-0").jwk(),
            ed.jwk(),
        ];
        let claims = json!({
            "iss": "https://idp.example/realms/main",
            "sub": "8f14e45f-ceea-467a-9575-1bd5f1bc1d12",
            "aud": ["account", "sluice-gateway"],
            "exp": NOW + 300,
            "nbf": NOW - 10,
            "iat": NOW - 10,
            "scope": "openid profile email models:read",
            "realm_access": {"roles": ["offline_access", "llm-users"]},
            "email": "someone@example.com",
        });
        Fixture {
            keys: JwkSet::parse(&mint::jwks(&jwks)).expect("JWKS"),
            cache: JwksCache::new(JwkSet::parse(&mint::jwks(&jwks)).expect("JWKS")),
            validation: Validation {
                issuer: Some("https://idp.example/realms/main".into()),
                audiences: vec!["sluice-gateway".into()],
                clock_skew: Duration::from_secs(60),
                ..Validation::new(vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA])
            },
            rs256: rsa.token("RS256", &claims),
            es256: p256.token("ES256", &claims),
            eddsa: ed.token("EdDSA", &claims),
        }
    });

    fn run(bencher: Bencher, token: fn(&Fixture) -> &str) {
        let f = &*FIXTURE;
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        let token = token(f);
        assert!(verify(token, &f.keys, &f.validation, now).is_ok());
        bencher.bench(|| verify(black_box(token), &f.keys, &f.validation, black_box(now)));
    }

    #[divan::bench]
    fn verify_rs256(bencher: Bencher) {
        run(bencher, |f| &f.rs256);
    }

    #[divan::bench]
    fn verify_es256(bencher: Bencher) {
        run(bencher, |f| &f.es256);
    }

    #[divan::bench]
    fn verify_eddsa(bencher: Bencher) {
        run(bencher, |f| &f.eddsa);
    }

    /// A client reusing its token: the signature was checked on its first request, so this
    /// is digest, memo lookup, algorithm and claim checks.
    fn run_remembered(bencher: Bencher, token: fn(&Fixture) -> &str) {
        let f = &*FIXTURE;
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        let token = token(f);
        assert!(f.cache.verify(token, &f.validation, now).is_ok());
        bencher.bench(|| {
            f.cache
                .verify(black_box(token), &f.validation, black_box(now))
        });
    }

    #[divan::bench]
    fn remembered_rs256(bencher: Bencher) {
        run_remembered(bencher, |f| &f.rs256);
    }

    #[divan::bench]
    fn remembered_es256(bencher: Bencher) {
        run_remembered(bencher, |f| &f.es256);
    }

    #[divan::bench]
    fn remembered_eddsa(bencher: Bencher) {
        run_remembered(bencher, |f| &f.eddsa);
    }

    /// A forged token costs a signature check but no payload parsing.
    #[divan::bench]
    fn reject_forged_es256(bencher: Bencher) {
        let f = &*FIXTURE;
        let forged = TestKey::p256("ec-1").token("ES256", &json!({"exp": NOW + 300}));
        let now: SystemTime = UNIX_EPOCH + Duration::from_secs(NOW);
        bencher.bench(|| verify(black_box(&forged), &f.keys, &f.validation, now).is_err());
    }

    /// `alg: none` is refused before any key is touched.
    #[divan::bench]
    fn reject_alg_none(bencher: Bencher) {
        let f = &*FIXTURE;
        let token = mint::unsigned(&json!({"alg": "none"}), &json!({"exp": NOW + 300}));
        let now: SystemTime = UNIX_EPOCH + Duration::from_secs(NOW);
        bencher.bench(|| verify(black_box(&token), &f.keys, &f.validation, now).is_err());
    }
}

/// What the gateway pays per request with an `AccessPolicy`: authentication and authorization
/// (credential model list, then a Deny and an Allow rule over tenant, model and operation).
mod policy {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use sluice_policy::auth::access::{
        key_identity, AccessPolicy, ApiKeys, ClaimMapping, IdentityHeaders, JwksSource,
        JwtProvider, KeyIdentity, Presented,
    };
    use sluice_policy::auth::rules::{Action, Request, Rule};

    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn rule(name: &str, action: Action) -> Rule {
        Rule::new(name, action)
    }

    struct Fixture {
        policy: AccessPolicy,
        managed: KeyTable<Arc<KeyIdentity>>,
        key: String,
        token: String,
    }

    static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
        let mut table = KeyTable::new();
        let mut key = String::new();
        for i in 0..10_000 {
            let (k, digest) = generate();
            let tenant = format!("tenant-{}", i % 50);
            let id = key_identity(
                &format!("key-{i}"),
                Some(&tenant),
                None,
                BTreeMap::new(),
                vec![],
                None,
                "config",
            );
            table.insert(digest, id).expect("distinct");
            if i == 4321 {
                key = k;
            }
        }
        let signer = TestKey::rsa("rsa-1");
        let keys = JwkSet::parse(&mint::jwks(&[signer.jwk_for("RS256")])).expect("JWKS");
        let token = signer.token(
            "RS256",
            &json!({"iss": "https://idp", "aud": "sluice", "sub": "u", "org": "tenant-21", "exp": NOW + 300}),
        );
        let mut deny = rule("no-embeddings", Action::Deny);
        deny.tenants = vec!["tenant-7".into()];
        deny.operations = vec!["embeddings".into()];
        let mut allow = rule("tenants", Action::Allow);
        allow.tenants = (0..50).map(|i| format!("tenant-{i}")).collect();
        allow.models = vec!["gpt-4o*".into(), "claude-*".into()];
        Fixture {
            policy: AccessPolicy {
                name: Arc::from("bench/policy"),
                api_keys: Some(ApiKeys {
                    table,
                    managed: false,
                }),
                jwt: vec![Arc::new(JwtProvider {
                    name: Arc::from("idp"),
                    issuer: Some("https://idp".into()),
                    validation: Validation {
                        issuer: Some("https://idp".into()),
                        audiences: vec!["sluice".into()],
                        ..Validation::new(vec![Algorithm::RS256])
                    },
                    source: JwksSource::Inline,
                    keys: JwksCache::new(keys),
                    claims: ClaimMapping {
                        tenant: Some("org".into()),
                        user: "sub".into(),
                        groups: None,
                    },
                })],
                mtls: None,
                rules: Some(vec![deny, allow]),
                identity_headers: IdentityHeaders::default(),
            },
            managed: KeyTable::new(),
            key,
            token,
        }
    });

    fn admit(f: &Fixture, headers: &HeaderMap) -> bool {
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        let presented = Presented {
            headers,
            peer: None,
            now,
        };
        let Ok(id) = f.policy.authenticate(&presented, &f.managed) else {
            return false;
        };
        let req = Request {
            method: "POST",
            host: "gateway.example",
            path: "/v1/chat/completions",
            headers,
            model: Some("gpt-4o-mini"),
            operation: Some("chat"),
            route: "default/llm",
        };
        f.policy.authorize(&id, &req).is_ok()
    }

    /// API key (10 000 keys) → identity → two rules.
    #[divan::bench]
    fn admit_api_key(bencher: Bencher) {
        let f = &*FIXTURE;
        let mut headers = request_headers();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {}", f.key)).expect("ASCII"),
        );
        assert!(admit(f, &headers));
        bencher.bench(|| admit(f, black_box(&headers)));
    }

    /// RS256 JWT seen before (the memo holds its verified signature) → claims → two rules.
    #[divan::bench]
    fn admit_jwt_remembered(bencher: Bencher) {
        let f = &*FIXTURE;
        let mut headers = request_headers();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {}", f.token)).expect("ASCII"),
        );
        assert!(admit(f, &headers));
        bencher.bench(|| admit(f, black_box(&headers)));
    }
}
