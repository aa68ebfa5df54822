//! The verification pipeline: structure, algorithm, key, signature, claims.

use std::time::SystemTime;

use serde_json::{Map, Value};

use super::algorithm::{truncated, Algorithm};
use super::claims::Claims;
use super::error::JwtError;
use super::jwk::JwkSet;
use super::token;
use super::validation::Validation;

/// Longest `alg` an error repeats.
const MAX_ECHOED_ALG: usize = 32;

/// Verifies `token` against `keys` and `v` at time `now`, returning its claims.
///
/// See the [module documentation](super) for the order of the checks and why it matters.
pub fn verify(
    token: &str,
    keys: &JwkSet,
    v: &Validation,
    now: SystemTime,
) -> Result<Claims, JwtError> {
    let (_, claims) = verify_signature(token, keys, &v.algorithms)?;
    v.check(&claims, now)?;
    Ok(claims)
}

/// Everything up to and including parsing the payload of a correctly signed token, but no
/// claim checks: what stays true of a token for as long as the key set does (see
/// [`crate::auth::jwks::JwksCache::verify`], which remembers it).
pub(crate) fn verify_signature(
    token: &str,
    keys: &JwkSet,
    algorithms: &[Algorithm],
) -> Result<(Algorithm, Claims), JwtError> {
    let compact = token::split(token)?;
    if compact.header.crit {
        return Err(JwtError::CriticalHeader);
    }
    let alg = allowed_algorithm(&compact.header.alg, algorithms)?;
    check_signature(
        keys,
        compact.header.kid.as_deref(),
        alg,
        compact.signing_input,
        &compact.signature,
    )?;
    let claims: Map<String, Value> = serde_json::from_slice(&compact.payload)
        .map_err(|_| JwtError::Malformed("payload is not a JSON object"))?;
    Ok((alg, Claims(claims)))
}

fn allowed_algorithm(name: &str, algorithms: &[Algorithm]) -> Result<Algorithm, JwtError> {
    match name.parse::<Algorithm>() {
        Ok(alg) if algorithms.contains(&alg) => Ok(alg),
        _ => Err(JwtError::AlgorithmNotAllowed(truncated(
            name,
            MAX_ECHOED_ALG,
        ))),
    }
}

/// Finds a key that verifies the signature. With a `kid`, only keys with that `kid` are
/// candidates; without one, every key that fits the algorithm is tried (issuers with a single
/// key often omit `kid`).
fn check_signature(
    keys: &JwkSet,
    kid: Option<&str>,
    alg: Algorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<(), JwtError> {
    let mut named = false;
    let mut tried = false;
    for key in keys.keys() {
        if kid.is_some() && key.kid() != kid {
            continue;
        }
        named = true;
        if !key.fits(alg) {
            continue;
        }
        tried = true;
        if key.verify(alg, message, signature) {
            return Ok(());
        }
    }
    match (kid, named, tried) {
        (_, _, true) => Err(JwtError::BadSignature),
        (Some(_), true, false) => Err(JwtError::KeyAlgorithmMismatch),
        _ => Err(JwtError::UnknownKey),
    }
}

#[cfg(test)]
mod tests;
