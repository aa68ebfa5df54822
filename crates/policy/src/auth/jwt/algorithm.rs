//! The JWS algorithms the gateway verifies (RFC 7518 §3.1), and the ones it never will.

use std::fmt;
use std::str::FromStr;

/// An asymmetric JWS signature algorithm.
///
/// There is deliberately no `none` and no HMAC (`HS*`): an unsigned token proves nothing, and an
/// HMAC key is a shared secret that would let anyone holding it (every service that validates
/// the tokens) mint tokens. Leaving them out of the type also closes the classic confusion
/// attack where a token says `HS256` and the verifier uses a published RSA key as the HMAC
/// secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Algorithm {
    pub const ALL: [Algorithm; 9] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// The `alg` header value (RFC 7518 §3.1, RFC 8037 §3.1 for EdDSA).
    pub fn as_str(&self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an `alg` name is not an [`Algorithm`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlgorithmError {
    #[error("alg \"none\" is never accepted: an unsigned token proves nothing")]
    Unsigned,
    #[error(
        "HMAC algorithms ({0}) are never accepted: the gateway verifies with public keys only, \
         and a shared secret would let every holder mint tokens"
    )]
    Hmac(&'static str),
    #[error("unknown JWS algorithm {0:?}; supported: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA")]
    Unknown(String),
}

/// Longest unknown name an error repeats: the name may come from a token, and an attacker
/// should not be able to fill logs through it.
const MAX_ECHOED: usize = 32;

impl FromStr for Algorithm {
    type Err = AlgorithmError;

    /// Names are case-sensitive (RFC 7515 §4.1.1); `none` and HMAC names are recognised in any
    /// case so that `None` or `hs256` get the explanation rather than "unknown".
    fn from_str(name: &str) -> Result<Algorithm, AlgorithmError> {
        if let Some(alg) = Algorithm::ALL.into_iter().find(|a| a.as_str() == name) {
            return Ok(alg);
        }
        if name.eq_ignore_ascii_case("none") {
            return Err(AlgorithmError::Unsigned);
        }
        for hmac in ["HS256", "HS384", "HS512"] {
            if name.eq_ignore_ascii_case(hmac) {
                return Err(AlgorithmError::Hmac(hmac));
            }
        }
        Err(AlgorithmError::Unknown(truncated(name, MAX_ECHOED)))
    }
}

/// At most `max` characters of `s`.
pub(crate) fn truncated(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.as_str().parse::<Algorithm>(), Ok(alg));
            assert_eq!(alg.to_string(), alg.as_str());
        }
    }

    #[test]
    fn none_and_hmac_are_refused_with_a_reason() {
        for name in ["none", "None", "NONE"] {
            let err = name.parse::<Algorithm>().unwrap_err();
            assert_eq!(err, AlgorithmError::Unsigned);
            assert!(err.to_string().contains("never accepted"));
        }
        for (name, canonical) in [("HS256", "HS256"), ("hs384", "HS384"), ("HS512", "HS512")] {
            let err = name.parse::<Algorithm>().unwrap_err();
            assert_eq!(err, AlgorithmError::Hmac(canonical));
            assert!(err.to_string().contains("never accepted"));
        }
    }

    #[test]
    fn unknown_and_miscased_names_are_refused() {
        for name in ["rs256", "ES512", "Ed25519", "", "RS256 "] {
            assert_eq!(
                name.parse::<Algorithm>(),
                Err(AlgorithmError::Unknown(name.to_owned()))
            );
        }
        let long = "x".repeat(1000);
        let err = long.parse::<Algorithm>().unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
    }
}
