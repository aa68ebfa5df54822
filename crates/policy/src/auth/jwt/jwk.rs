//! JSON Web Key sets (RFC 7517), turned into ring verification keys once, when the set is
//! parsed, so that verifying a token decodes nothing but the token.
//!
//! Only signature keys the gateway can use are kept: RSA (at least 2048 bits), EC P-256 and
//! P-384, and Ed25519. Keys that can never verify an accepted token are skipped rather than
//! refused, because identity providers publish sets meant for many consumers: symmetric (`oct`)
//! keys, encryption keys (`use: "enc"`), unknown key types and curves, and keys whose own `alg`
//! is not one we accept. A key we *would* use whose material is broken or too weak is an error:
//! silently dropping it would turn a provider's mistake into unexplained authentication
//! failures.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;

use super::algorithm::Algorithm;
use super::key::{bit_len, Curve, Jwk, PublicKey};

/// RSA moduli below this many bits are refused (RFC 7518 §3.3 requires 2048).
pub const MIN_RSA_BITS: usize = 2048;
/// ring verifies RSA keys up to this size.
const MAX_RSA_BITS: usize = 8192;

/// A set of public keys for verifying JWS signatures.
pub struct JwkSet {
    keys: Vec<Jwk>,
}

/// Why a JWK set cannot be used. Messages carry no key material (a set may contain symmetric
/// keys, which are secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    #[error("the JWK set is not JSON of the form {{\"keys\": [...]}} ({0})")]
    Json(String),
    #[error("JWK #{index}{}: {reason}", kid_suffix(.kid))]
    InvalidKey {
        index: usize,
        kid: Option<String>,
        reason: &'static str,
    },
    #[error(
        "the JWK set has no usable signature keys (RSA of at least 2048 bits, EC P-256 or \
         P-384, or Ed25519)"
    )]
    NoUsableKeys,
}

fn kid_suffix(kid: &Option<String>) -> String {
    match kid {
        Some(kid) => format!(" (kid {:?})", super::algorithm::truncated(kid, 64)),
        None => String::new(),
    }
}

/// A JSON error described by kind and position only: serde's own messages quote values.
fn describe(err: &serde_json::Error) -> String {
    let kind = match err.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected structure",
        serde_json::error::Category::Eof => "unexpected end",
    };
    format!("{kind} at line {} column {}", err.line(), err.column())
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

/// The members of a JWK this module reads; the rest are ignored.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl JwkSet {
    /// Parses a JWK set document, `{"keys": [...]}`.
    pub fn parse(json: &[u8]) -> Result<JwkSet, JwkError> {
        let raw: RawSet = serde_json::from_slice(json).map_err(|e| JwkError::Json(describe(&e)))?;
        let mut keys = Vec::with_capacity(raw.keys.len());
        for (index, value) in raw.keys.into_iter().enumerate() {
            if let Some(key) = parse_key(index, value)? {
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Err(JwkError::NoUsableKeys);
        }
        Ok(JwkSet { keys })
    }

    /// An empty set, which verifies nothing (see [`crate::auth::jwks::JwksCache::empty`]).
    pub(crate) fn none() -> JwkSet {
        JwkSet { keys: Vec::new() }
    }

    /// The number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether some usable key has this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The `kid`s of the usable keys that have one.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(|k| k.kid.as_deref())
    }

    pub(crate) fn keys(&self) -> &[Jwk] {
        &self.keys
    }
}

impl fmt::Debug for JwkSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.keys).finish()
    }
}

/// One entry of the set: `Ok(None)` when it is skipped.
fn parse_key(index: usize, value: serde_json::Value) -> Result<Option<Jwk>, JwkError> {
    let invalid = |kid: &Option<String>, reason: &'static str| JwkError::InvalidKey {
        index,
        kid: kid.clone(),
        reason,
    };
    // Look at the type before reading the rest, so that a skipped key (perhaps a symmetric one
    // with unusual members) cannot make the set fail.
    let kty = value.get("kty").and_then(serde_json::Value::as_str);
    if !matches!(kty, Some("RSA" | "EC" | "OKP")) {
        if kty.is_none() {
            return Err(invalid(&None, "no \"kty\" member"));
        }
        return Ok(None);
    }
    let raw: RawJwk =
        serde_json::from_value(value).map_err(|_| invalid(&None, "a member has the wrong type"))?;
    if raw.use_.as_deref().is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    if raw
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
        return Ok(None);
    }
    let alg = match raw.alg.as_deref() {
        None => None,
        Some(name) => match name.parse::<Algorithm>() {
            Ok(alg) => Some(alg),
            // Meant for something we never accept (RSA-OAEP, HS256, ...).
            Err(_) => return Ok(None),
        },
    };
    let key = match raw.kty.as_str() {
        "RSA" => rsa_key(&raw).map_err(|reason| invalid(&raw.kid, reason))?,
        "EC" => match raw.crv.as_deref() {
            Some("P-256") => ec_key(&raw, Curve::P256),
            Some("P-384") => ec_key(&raw, Curve::P384),
            Some(_) => return Ok(None),
            None => Err("an EC key needs \"crv\""),
        }
        .map_err(|reason| invalid(&raw.kid, reason))?,
        _ => match raw.crv.as_deref() {
            Some("Ed25519") => ed25519_key(&raw).map_err(|reason| invalid(&raw.kid, reason))?,
            Some(_) => return Ok(None),
            None => return Err(invalid(&raw.kid, "an OKP key needs \"crv\"")),
        },
    };
    let jwk = Jwk {
        kid: raw.kid,
        alg,
        key,
    };
    // A stated alg from another family (an EC key "for RS256") can never verify anything.
    if let Some(alg) = alg {
        if !jwk.fits(alg) {
            return Ok(None);
        }
    }
    Ok(Some(jwk))
}

fn member<'a>(value: &'a Option<String>, missing: &'static str) -> Result<&'a str, &'static str> {
    value.as_deref().ok_or(missing)
}

/// A base64url member (RFC 7515 §2: no padding). Non-canonical trailing bits are refused.
fn decode(text: &str, bad: &'static str) -> Result<Vec<u8>, &'static str> {
    URL_SAFE_NO_PAD.decode(text).map_err(|_| bad)
}

fn rsa_key(raw: &RawJwk) -> Result<PublicKey, &'static str> {
    let n = decode(
        member(&raw.n, "an RSA key needs \"n\"")?,
        "\"n\" is not base64url",
    )?;
    let e = decode(
        member(&raw.e, "an RSA key needs \"e\"")?,
        "\"e\" is not base64url",
    )?;
    // RFC 7518 §6.3.1 asks for minimal encodings, but leading zeros are common in the wild and
    // harmless once stripped.
    let n = strip_leading_zeros(&n);
    let e = strip_leading_zeros(&e);
    let bits = bit_len(n);
    if bits < MIN_RSA_BITS {
        return Err("RSA modulus shorter than 2048 bits");
    }
    if bits > MAX_RSA_BITS {
        return Err("RSA modulus longer than 8192 bits");
    }
    if n.last().is_some_and(|b| b & 1 == 0) {
        return Err("RSA modulus is even");
    }
    // ring accepts odd exponents from 3 to 2^33 - 1; checking here reports a bad key when the
    // set loads instead of as a bad signature on every token.
    let exponent = match e.len() {
        1..=5 => e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
        _ => return Err("RSA exponent is out of range"),
    };
    if exponent < 3 || exponent % 2 == 0 || exponent >= 1 << 33 {
        return Err("RSA exponent is out of range");
    }
    Ok(PublicKey::Rsa(RsaPublicKeyComponents {
        n: n.to_vec(),
        e: e.to_vec(),
    }))
}

fn ec_key(raw: &RawJwk, curve: Curve) -> Result<PublicKey, &'static str> {
    let x = decode(
        member(&raw.x, "an EC key needs \"x\"")?,
        "\"x\" is not base64url",
    )?;
    let y = decode(
        member(&raw.y, "an EC key needs \"y\"")?,
        "\"y\" is not base64url",
    )?;
    // RFC 7518 §6.2.1.2: coordinates are exactly the curve's size, leading zeros included.
    if x.len() != curve.coordinate_len() || y.len() != curve.coordinate_len() {
        return Err("EC coordinates do not match the curve's size");
    }
    let mut point = Vec::with_capacity(1 + 2 * curve.coordinate_len());
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    // ring checks that the point is on the curve when it verifies; it has no separate check,
    // so a point off the curve shows up as signatures that never verify.
    let algorithm = match curve {
        Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
        Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
    };
    Ok(PublicKey::Ec(
        curve,
        UnparsedPublicKey::new(algorithm, point),
    ))
}

fn ed25519_key(raw: &RawJwk) -> Result<PublicKey, &'static str> {
    let x = decode(
        member(&raw.x, "an Ed25519 key needs \"x\"")?,
        "\"x\" is not base64url",
    )?;
    if x.len() != 32 {
        return Err("an Ed25519 public key is 32 bytes");
    }
    Ok(PublicKey::Ed25519(UnparsedPublicKey::new(
        &signature::ED25519,
        x,
    )))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::mint::{self, TestKey};
    use serde_json::{json, Value};

    fn set(keys: Vec<Value>) -> Result<JwkSet, JwkError> {
        JwkSet::parse(&serde_json::to_vec(&json!({ "keys": keys })).unwrap())
    }

    fn rsa_jwk() -> Value {
        TestKey::rsa("r").jwk()
    }

    #[test]
    fn parses_every_supported_key_type() {
        let keys = vec![
            rsa_jwk(),
            TestKey::p256("p256").jwk(),
            TestKey::p384("p384").jwk(),
            TestKey::ed25519("ed").jwk(),
        ];
        let set = set(keys).unwrap();
        assert_eq!(set.len(), 4);
        assert!(!set.is_empty());
        for kid in ["r", "p256", "p384", "ed"] {
            assert!(set.has_kid(kid), "{kid}");
        }
        assert!(!set.has_kid("other"));
        assert_eq!(set.kids().collect::<Vec<_>>(), ["r", "p256", "p384", "ed"]);
    }

    #[test]
    fn the_fixture_jwk_parses() {
        let set = JwkSet::parse(format!("{{\"keys\":[{}]}}", mint::RSA_JWK).as_bytes()).unwrap();
        assert!(set.has_kid("rsa-test-1"));
        assert_eq!(set.keys()[0].alg, Some(Algorithm::RS256));
        assert!(format!("{set:?}").contains("RSA-2048"));
    }

    #[test]
    fn unusable_keys_are_skipped() {
        let mut enc = TestKey::p256("enc").jwk();
        enc["use"] = json!("enc");
        let mut wrap_only = TestKey::p256("wrap").jwk();
        wrap_only["key_ops"] = json!(["wrapKey"]);
        let mut oaep = rsa_jwk();
        oaep["kid"] = json!("oaep");
        oaep["alg"] = json!("RSA-OAEP");
        let mut hs = rsa_jwk();
        hs["kid"] = json!("hs");
        hs["alg"] = json!("HS256");
        let mut ec_for_rsa = TestKey::p256("ec-rs").jwk();
        ec_for_rsa["alg"] = json!("RS256");
        let keys = vec![
            json!({"kty": "oct", "kid": "sym", "k": "c2VjcmV0"}),
            json!({"kty": "EC", "crv": "secp256k1", "kid": "k1", "x": "AA", "y": "AA"}),
            json!({"kty": "OKP", "crv": "X25519", "kid": "x", "x": "AA"}),
            json!({"kty": "PQ", "kid": "future", "weird": [1, 2]}),
            enc,
            wrap_only,
            oaep,
            hs,
            ec_for_rsa,
            TestKey::ed25519("kept").jwk(),
        ];
        let set = set(keys).unwrap();
        assert_eq!(set.kids().collect::<Vec<_>>(), ["kept"]);
    }

    #[test]
    fn a_set_with_nothing_usable_is_an_error() {
        assert_eq!(set(vec![]).unwrap_err(), JwkError::NoUsableKeys);
        assert_eq!(
            set(vec![json!({"kty": "oct", "k": "c2VjcmV0"})]).unwrap_err(),
            JwkError::NoUsableKeys
        );
    }

    #[test]
    fn documents_that_are_not_sets_are_errors() {
        for doc in [
            &b"not json"[..],
            b"[]",
            b"{}",
            b"{\"keys\": {}}",
            b"{\"keys\": [1]}",
        ] {
            assert!(
                JwkSet::parse(doc).is_err(),
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
    }

    #[test]
    fn error_messages_do_not_quote_the_document() {
        // A symmetric key in the wrong place: serde would quote the secret in its message.
        let doc = br#"{"keys": "c2VjcmV0LXN5bW1ldHJpYy1rZXk"}"#;
        let err = JwkSet::parse(doc).unwrap_err();
        assert!(matches!(err, JwkError::Json(_)));
        assert!(!err.to_string().contains("c2VjcmV0"), "{err}");
    }

    #[test]
    fn weak_and_broken_rsa_keys_are_errors() {
        let full = rsa_jwk();
        let n = URL_SAFE_NO_PAD.decode(full["n"].as_str().unwrap()).unwrap();
        let with_n = |n: &[u8]| {
            let mut k = rsa_jwk();
            k["n"] = json!(URL_SAFE_NO_PAD.encode(n));
            k
        };
        let reason = |k: Value| match set(vec![k]).unwrap_err() {
            JwkError::InvalidKey { reason, index, kid } => {
                assert_eq!((index, kid.as_deref()), (0, Some("r")));
                reason
            }
            other => panic!("{other:?}"),
        };
        // 1024 bits: half the modulus.
        assert_eq!(
            reason(with_n(&n[..128])),
            "RSA modulus shorter than 2048 bits"
        );
        // 2047 bits.
        let mut short = n.clone();
        short[0] = 0x7f;
        assert_eq!(reason(with_n(&short)), "RSA modulus shorter than 2048 bits");
        // Leading zero bytes do not count, but are tolerated on a full-size modulus.
        let mut padded = vec![0, 0];
        padded.extend_from_slice(&n);
        assert_eq!(set(vec![with_n(&padded)]).unwrap().len(), 1);
        let mut even = n.clone();
        *even.last_mut().unwrap() &= 0xfe;
        assert_eq!(reason(with_n(&even)), "RSA modulus is even");
        for e in [&[1u8][..], &[2], &[1, 0, 0], &[1, 0, 0, 0, 0, 1]] {
            let mut k = rsa_jwk();
            k["e"] = json!(URL_SAFE_NO_PAD.encode(e));
            assert_eq!(reason(k), "RSA exponent is out of range", "{e:?}");
        }
        let mut k = rsa_jwk();
        k["n"] = json!("not base64!");
        assert_eq!(reason(k), "\"n\" is not base64url");
        let mut k = rsa_jwk();
        k.as_object_mut().unwrap().remove("e");
        assert_eq!(reason(k), "an RSA key needs \"e\"");
    }

    #[test]
    fn broken_ec_and_okp_keys_are_errors() {
        let mut short = TestKey::p256("p").jwk();
        short["x"] = json!(URL_SAFE_NO_PAD.encode([1u8; 31]));
        let mut p384_size_on_p256 = TestKey::p384("p").jwk();
        p384_size_on_p256["crv"] = json!("P-256");
        let mut no_crv = TestKey::p256("p").jwk();
        no_crv.as_object_mut().unwrap().remove("crv");
        let mut ed_short = TestKey::ed25519("p").jwk();
        ed_short["x"] = json!(URL_SAFE_NO_PAD.encode([1u8; 31]));
        let mut padded = TestKey::ed25519("p").jwk();
        padded["x"] = json!(format!("{}=", padded["x"].as_str().unwrap()));
        let mut wrong_type = TestKey::ed25519("p").jwk();
        wrong_type["kid"] = json!(7);
        for key in [
            short,
            p384_size_on_p256,
            no_crv,
            ed_short,
            padded,
            wrong_type,
        ] {
            assert!(
                matches!(set(vec![key.clone()]), Err(JwkError::InvalidKey { .. })),
                "{key}"
            );
        }
        assert!(matches!(
            set(vec![json!({"kid": "no type"})]),
            Err(JwkError::InvalidKey { .. })
        ));
    }
}
