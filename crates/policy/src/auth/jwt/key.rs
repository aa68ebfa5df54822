//! A verification key as the verifier uses it: which algorithms it may verify, and the
//! signature check itself. Built by [`super::jwk`] when a set is parsed.

use std::fmt;

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};

use super::algorithm::Algorithm;

/// One usable verification key.
pub(crate) struct Jwk {
    pub(super) kid: Option<String>,
    /// The key's own `alg`: when stated, the only algorithm it may verify.
    pub(super) alg: Option<Algorithm>,
    pub(super) key: PublicKey,
}

pub(super) enum PublicKey {
    /// Modulus and exponent, big-endian without leading zeros. ring re-derives its Montgomery
    /// form on each verification; it offers no way to keep a parsed RSA public key.
    Rsa(RsaPublicKeyComponents<Vec<u8>>),
    /// An uncompressed point `0x04 || x || y`, bound to the curve's one JWS algorithm.
    Ec(Curve, UnparsedPublicKey<Vec<u8>>),
    Ed25519(UnparsedPublicKey<Vec<u8>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Curve {
    P256,
    P384,
}

impl Curve {
    pub(super) fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.key {
            PublicKey::Rsa(c) => format!("RSA-{}", bit_len(&c.n)),
            PublicKey::Ec(Curve::P256, _) => "EC P-256".to_owned(),
            PublicKey::Ec(Curve::P384, _) => "EC P-384".to_owned(),
            PublicKey::Ed25519(_) => "OKP Ed25519".to_owned(),
        };
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("key", &kind)
            .finish()
    }
}

impl Jwk {
    pub(crate) fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether this key may verify `alg`: its type and curve must belong to the algorithm's
    /// family, and its own `alg`, if stated, must be exactly `alg` (RFC 7517 §4.4), so an RSA
    /// key published for RS256 cannot be used for PS256 and vice versa.
    pub(crate) fn fits(&self, alg: Algorithm) -> bool {
        if self.alg.is_some_and(|own| own != alg) {
            return false;
        }
        use Algorithm::*;
        matches!(
            (&self.key, alg),
            (
                PublicKey::Rsa(_),
                RS256 | RS384 | RS512 | PS256 | PS384 | PS512
            ) | (PublicKey::Ec(Curve::P256, _), ES256)
                | (PublicKey::Ec(Curve::P384, _), ES384)
                | (PublicKey::Ed25519(_), EdDSA)
        )
    }

    /// Whether `signature` is this key's `alg` signature over `message`. False when the key
    /// does not fit `alg`.
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        if !self.fits(alg) {
            return false;
        }
        let key = match &self.key {
            PublicKey::Ec(_, key) | PublicKey::Ed25519(key) => key,
            PublicKey::Rsa(components) => {
                let params = match alg {
                    Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                    Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA => return false,
                };
                return components.verify(params, message, signature).is_ok();
            }
        };
        key.verify(message, signature).is_ok()
    }
}

/// The bit length of a big-endian number without leading zero bytes.
pub(super) fn bit_len(n: &[u8]) -> usize {
    match n.first() {
        Some(first) => n.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::jwk::JwkSet;
    use crate::auth::jwt::mint::{self, TestKey};

    #[test]
    fn keys_fit_only_their_family_and_stated_alg() {
        use Algorithm::*;
        let set = JwkSet::parse(&mint::jwks(&[
            TestKey::rsa("r").jwk(),
            TestKey::p256("p256").jwk(),
            TestKey::p384("p384").jwk(),
            TestKey::ed25519("ed").jwk(),
        ]))
        .unwrap();
        let fitting = |kid: &str| -> Vec<Algorithm> {
            let key = set.keys().iter().find(|k| k.kid() == Some(kid)).unwrap();
            Algorithm::ALL
                .into_iter()
                .filter(|a| key.fits(*a))
                .collect()
        };
        assert_eq!(fitting("r"), [RS256, RS384, RS512, PS256, PS384, PS512]);
        assert_eq!(fitting("p256"), [ES256]);
        assert_eq!(fitting("p384"), [ES384]);
        assert_eq!(fitting("ed"), [EdDSA]);

        let stated = JwkSet::parse(&mint::jwks(&[TestKey::rsa("r").jwk_for("RS256")])).unwrap();
        let key = &stated.keys()[0];
        assert!(key.fits(RS256));
        assert!(!key.fits(PS256));
        assert!(!key.fits(RS512));
    }

    #[test]
    fn a_signature_verifies_only_under_its_own_algorithm() {
        let rsa = TestKey::rsa("r");
        let set = JwkSet::parse(&mint::jwks(&[rsa.jwk()])).unwrap();
        let key = &set.keys()[0];
        for signed_as in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
            let signature = rsa.sign(signed_as, b"message");
            for alg in Algorithm::ALL {
                let expected = alg.as_str() == signed_as;
                assert_eq!(
                    key.verify(alg, b"message", &signature),
                    expected,
                    "signed {signed_as}, verified as {alg}"
                );
            }
            assert!(!key.verify(Algorithm::ES256, b"message", &signature));
            let verifies_other = key.verify(signed_as.parse().unwrap(), b"massage", &signature);
            assert!(!verifies_other);
        }
    }
}
