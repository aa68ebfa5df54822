//! Verification of JWTs in JWS compact form (RFC 7515, 7517, 7518, 7519), on top of `ring`.
//!
//! Only what an API gateway needs: asymmetric signatures checked against keys from a JWK set,
//! then the registered time, issuer and audience claims. The order of the checks is what keeps
//! the classic attacks out:
//!
//! 1. size cap, three strict base64url segments, a JSON header with a string `alg`;
//! 2. a `crit` header is refused (no extension is understood);
//! 3. `alg` must be one the configuration allows, so `none` and `HS*` fail before any key is
//!    looked at, and no key is ever used as an HMAC secret;
//! 4. the key comes from the configured set only (never from the token's `jwk`/`jku`/`x5c`),
//!    chosen by `kid`, and must fit the algorithm: its type and curve, and its own `alg` when
//!    the JWK states one;
//! 5. the signature is checked before the payload is parsed, so forged tokens cost no JSON work
//!    and learn nothing about claim checks;
//! 6. `exp`, `nbf`, `iss`, `aud`.

mod algorithm;
mod claims;
mod error;
mod jwk;
mod key;
pub(crate) mod memo;
mod token;
pub(crate) mod validation;
mod verify;

#[cfg(test)]
#[path = "../../../tests/common/mint.rs"]
pub(crate) mod mint;

pub use algorithm::{Algorithm, AlgorithmError};
pub use claims::Claims;
pub use error::JwtError;
pub use jwk::{JwkError, JwkSet, MIN_RSA_BITS};
pub use token::MAX_TOKEN_LEN;
pub use validation::Validation;
pub use verify::verify;

pub(crate) use memo::VerifiedMemo;
pub(crate) use verify::verify_signature;
