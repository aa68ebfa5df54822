//! A memo of tokens whose signature has been verified, so that a client reusing its access
//! token (the normal case: one token for many requests until it expires) pays for the
//! public-key operation once rather than on every request.
//!
//! Entries are keyed by the SHA-256 of the whole token, so a hit means these exact bytes were
//! verified before: nothing about the token can differ. Only tokens whose signature checked out
//! are remembered, so forged tokens cannot fill the memo. What is remembered holds only while
//! the key set does; the memo belongs to one key set (see [`crate::auth::jwks::JwksCache`]) and
//! is dropped with it when keys rotate. Claims are still checked on every use, because `exp`
//! and `nbf` depend on the time and the [`Validation`](super::Validation) on the caller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use ring::digest::{digest, SHA256};

use super::algorithm::Algorithm;
use super::claims::Claims;

/// Shards, so that concurrent requests rarely wait on the same lock.
const SHARDS: usize = 16;
/// Entries per shard: 8192 tokens in all.
const SHARD_CAPACITY: usize = 512;
/// Longer tokens are verified every time: a bound on the memo's memory (at most 32 MiB of
/// token payloads), and real access tokens are far smaller.
pub(crate) const MAX_MEMO_TOKEN_LEN: usize = 4 * 1024;

pub(crate) type TokenDigest = [u8; 32];

/// The digest a token is remembered under.
pub(crate) fn token_digest(token: &str) -> TokenDigest {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

struct Entry {
    alg: Algorithm,
    claims: Arc<Claims>,
    /// `exp`, for evicting entries that can no longer be accepted anyway.
    expires: Option<f64>,
}

pub(crate) struct VerifiedMemo {
    shards: [Mutex<HashMap<TokenDigest, Entry>>; SHARDS],
}

impl VerifiedMemo {
    pub(crate) fn new() -> VerifiedMemo {
        VerifiedMemo {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }

    /// The algorithm and claims of a token verified before.
    pub(crate) fn get(&self, token: &TokenDigest) -> Option<(Algorithm, Arc<Claims>)> {
        let shard = self.shard(token);
        let entry = shard.get(token)?;
        Some((entry.alg, Arc::clone(&entry.claims)))
    }

    /// Remembers a token whose signature verified. When a shard is full, entries expired at
    /// `now` (seconds since the epoch) go first; if that frees nothing, the shard starts over.
    /// Simple and bounded; a busy gateway re-verifies a few tokens after a reset.
    pub(crate) fn insert(&self, token: TokenDigest, alg: Algorithm, claims: Arc<Claims>, now: f64) {
        let expires = claims.0.get("exp").and_then(serde_json::Value::as_f64);
        let mut shard = self.shard(&token);
        if shard.len() >= SHARD_CAPACITY && !shard.contains_key(&token) {
            shard.retain(|_, entry| entry.expires.is_none_or(|exp| exp >= now));
            if shard.len() >= SHARD_CAPACITY {
                shard.clear();
            }
        }
        shard.insert(
            token,
            Entry {
                alg,
                claims,
                expires,
            },
        );
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.len()))
            .sum()
    }

    fn shard(&self, token: &TokenDigest) -> std::sync::MutexGuard<'_, HashMap<TokenDigest, Entry>> {
        // Nothing panics while a shard is locked, but if something ever did, the map is still
        // consistent: every operation on it is a single HashMap call.
        self.shards[usize::from(token[0]) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(exp: Option<u64>) -> Arc<Claims> {
        let mut map = serde_json::Map::new();
        if let Some(exp) = exp {
            map.insert("exp".into(), json!(exp));
        }
        Arc::new(Claims(map))
    }

    /// A digest landing in shard 0, distinct for each `i`.
    fn digest_in_shard_0(i: usize) -> TokenDigest {
        let mut d = [0u8; 32];
        d[0] = 0;
        d[1..9].copy_from_slice(&(i as u64).to_le_bytes());
        d
    }

    #[test]
    fn remembers_and_returns_the_claims() {
        let memo = VerifiedMemo::new();
        let token = token_digest("a.b.c");
        assert!(memo.get(&token).is_none());
        memo.insert(token, Algorithm::ES256, claims(Some(10)), 0.0);
        let (alg, got) = memo.get(&token).unwrap();
        assert_eq!(alg, Algorithm::ES256);
        assert_eq!(got.0.get("exp"), Some(&json!(10)));
        assert!(memo.get(&token_digest("a.b.d")).is_none());
    }

    #[test]
    fn a_full_shard_evicts_expired_entries_first() {
        let memo = VerifiedMemo::new();
        for i in 0..SHARD_CAPACITY {
            // Half expire at 100, half never.
            let exp = if i % 2 == 0 { Some(100) } else { None };
            memo.insert(digest_in_shard_0(i), Algorithm::EdDSA, claims(exp), 50.0);
        }
        assert_eq!(memo.len(), SHARD_CAPACITY);
        // Nothing has expired at 50: the shard starts over.
        memo.insert(
            digest_in_shard_0(10_000),
            Algorithm::EdDSA,
            claims(None),
            50.0,
        );
        assert_eq!(memo.len(), 1);
        let memo = VerifiedMemo::new();
        for i in 0..SHARD_CAPACITY {
            let exp = if i % 2 == 0 { Some(100) } else { None };
            memo.insert(digest_in_shard_0(i), Algorithm::EdDSA, claims(exp), 50.0);
        }
        // At 200 the entries with exp 100 go, the others stay.
        memo.insert(
            digest_in_shard_0(20_000),
            Algorithm::EdDSA,
            claims(None),
            200.0,
        );
        assert_eq!(memo.len(), SHARD_CAPACITY / 2 + 1);
        assert!(memo.get(&digest_in_shard_0(1)).is_some());
        assert!(memo.get(&digest_in_shard_0(0)).is_none());
    }

    #[test]
    fn shards_are_bounded() {
        let memo = VerifiedMemo::new();
        for i in 0..(SHARD_CAPACITY * SHARDS * 3) {
            memo.insert(
                token_digest(&i.to_string()),
                Algorithm::EdDSA,
                claims(None),
                0.0,
            );
        }
        assert!(memo.len() <= SHARD_CAPACITY * SHARDS);
    }
}
