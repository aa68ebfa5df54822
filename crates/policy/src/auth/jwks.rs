//! The JWK set in force, readable from every request without locks, and the bookkeeping that
//! decides when an unknown `kid` may trigger a refetch.
//!
//! Fetching (HTTP or file) is the proxy's business; this module only holds and swaps sets.
//! Each set comes with a memo of the tokens it has verified ([`JwksCache::verify`]), which is
//! replaced along with the set, so a rotation forgets everything the old keys vouched for.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;

use super::jwt::memo::{token_digest, MAX_MEMO_TOKEN_LEN};
use super::jwt::validation::seconds_since_epoch;
use super::jwt::{verify_signature, Claims, JwkSet, JwtError, Validation, VerifiedMemo};

/// Stands for "no refetch yet" in `last_refetch`.
const NEVER: u64 = u64::MAX;

/// The current JWK set behind an `ArcSwap`: requests load it without locking, a refresh
/// replaces it atomically, and requests still verifying against the old set keep it alive until
/// they finish.
pub struct JwksCache {
    current: ArcSwap<Generation>,
    /// When refetching was last allowed, as nanoseconds since `epoch`, or [`NEVER`]. An atomic
    /// rather than a lock: this is consulted on the request path whenever a token names an
    /// unknown `kid`, which an attacker can make happen on every request.
    last_refetch: AtomicU64,
    epoch: Instant,
}

/// A key set and the tokens it has verified, swapped as one so that no token verified by an
/// old set can be remembered into a new one.
struct Generation {
    set: Arc<JwkSet>,
    memo: VerifiedMemo,
}

impl Generation {
    fn new(set: JwkSet) -> Arc<Generation> {
        Arc::new(Generation {
            set: Arc::new(set),
            memo: VerifiedMemo::new(),
        })
    }
}

impl JwksCache {
    pub fn new(initial: JwkSet) -> JwksCache {
        JwksCache {
            current: ArcSwap::new(Generation::new(initial)),
            last_refetch: AtomicU64::new(NEVER),
            epoch: Instant::now(),
        }
    }

    /// A cache with no keys, which verifies no token, for when the first fetch has not
    /// completed yet.
    pub fn empty() -> JwksCache {
        JwksCache::new(JwkSet::none())
    }

    /// The set in force now. Holding the `Arc` keeps this set alive across a replacement.
    pub fn current(&self) -> Arc<JwkSet> {
        Arc::clone(&self.current.load().set)
    }

    /// Puts `set` in force for every later [`current`](Self::current) and
    /// [`verify`](Self::verify), and forgets the tokens the previous set verified.
    pub fn replace(&self, set: JwkSet) {
        self.current.store(Generation::new(set));
    }

    /// Puts a set already in force elsewhere (a previous configuration's) in force here too,
    /// without copying it; the memo starts empty.
    pub fn replace_shared(&self, set: Arc<JwkSet>) {
        self.current.store(Arc::new(Generation {
            set,
            memo: VerifiedMemo::new(),
        }));
    }

    /// [`jwt::verify`](super::jwt::verify) against the current set, remembering tokens whose
    /// signature verified so that the next request with the same token skips the public-key
    /// operation (tens of microseconds) and only re-checks the algorithm and the claims.
    /// Claims are shared rather than copied, hence the `Arc`.
    pub fn verify(
        &self,
        token: &str,
        v: &Validation,
        now: SystemTime,
    ) -> Result<Arc<Claims>, JwtError> {
        let generation = self.current.load();
        if token.len() > MAX_MEMO_TOKEN_LEN {
            return super::jwt::verify(token, &generation.set, v, now).map(Arc::new);
        }
        let digest = token_digest(token);
        let claims = match generation.memo.get(&digest) {
            // The memo was filled under some caller's Validation; this caller's may allow
            // fewer algorithms.
            Some((alg, _)) if !v.algorithms.contains(&alg) => {
                return Err(JwtError::AlgorithmNotAllowed(alg.as_str().to_owned()));
            }
            Some((_, claims)) => claims,
            None => {
                let (alg, claims) = verify_signature(token, &generation.set, &v.algorithms)?;
                let claims = Arc::new(claims);
                let now = seconds_since_epoch(now);
                generation
                    .memo
                    .insert(digest, alg, Arc::clone(&claims), now);
                claims
            }
        };
        v.check(&claims, now)?;
        Ok(claims)
    }

    /// Whether a token with an unknown `kid` should trigger a refetch now: true at most once per
    /// `min_interval` (rotation must be picked up quickly, but unknown kids from attackers must
    /// not cause a fetch storm). The first call is always allowed. Concurrent callers race on
    /// one compare-and-swap, so exactly one of them wins each interval.
    pub fn refetch_allowed(&self, now: Instant, min_interval: Duration) -> bool {
        let now_nanos = nanos(now.saturating_duration_since(self.epoch));
        let interval = nanos(min_interval);
        let mut last = self.last_refetch.load(Ordering::Acquire);
        loop {
            if last != NEVER && now_nanos.saturating_sub(last) < interval {
                return false;
            }
            // `last` may lie after `now` if callers pass instants out of order; saturating_sub
            // then gives 0, which counts as "too soon" unless the interval is zero.
            match self.last_refetch.compare_exchange_weak(
                last,
                now_nanos,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => last = actual,
            }
        }
    }
}

/// Nanoseconds, saturating below [`NEVER`] (which would take 584 years of uptime).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos())
        .unwrap_or(NEVER - 1)
        .min(NEVER - 1)
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksCache")
            .field("set", &self.current.load().set)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::mint::{self, TestKey};

    fn set_with(kid: &str) -> JwkSet {
        JwkSet::parse(&mint::jwks(&[TestKey::ed25519(kid).jwk()])).unwrap()
    }

    #[test]
    fn replace_swaps_the_current_set_and_old_readers_keep_theirs() {
        let cache = JwksCache::new(set_with("one"));
        let before = cache.current();
        assert!(before.has_kid("one"));
        cache.replace(set_with("two"));
        assert!(cache.current().has_kid("two"));
        assert!(!cache.current().has_kid("one"));
        assert!(before.has_kid("one"), "a reader's set outlives the swap");
    }

    #[test]
    fn empty_holds_no_keys() {
        let cache = JwksCache::empty();
        assert!(cache.current().is_empty());
        assert_eq!(cache.current().len(), 0);
        cache.replace(set_with("k"));
        assert_eq!(cache.current().len(), 1);
    }

    #[test]
    fn refetch_is_allowed_once_per_interval() {
        let cache = JwksCache::empty();
        let start = Instant::now();
        let interval = Duration::from_secs(30);
        assert!(
            cache.refetch_allowed(start, interval),
            "first unknown kid fetches"
        );
        assert!(!cache.refetch_allowed(start, interval));
        assert!(!cache.refetch_allowed(start + Duration::from_secs(29), interval));
        assert!(cache.refetch_allowed(start + Duration::from_secs(30), interval));
        assert!(!cache.refetch_allowed(start + Duration::from_secs(31), interval));
        // An instant before the last refetch is never a reason to fetch again.
        assert!(!cache.refetch_allowed(start, interval));
        assert!(cache.refetch_allowed(start + Duration::from_secs(61), interval));
        // A zero interval always allows.
        assert!(cache.refetch_allowed(start + Duration::from_secs(61), Duration::ZERO));
    }

    #[test]
    fn concurrent_callers_get_one_refetch_per_interval() {
        let cache = Arc::new(JwksCache::empty());
        let now = Instant::now();
        let winners: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let cache = Arc::clone(&cache);
                    s.spawn(move || {
                        (0..1000)
                            .filter(|_| cache.refetch_allowed(now, Duration::from_secs(60)))
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(winners, 1);
    }

    const NOW: u64 = 1_700_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn eddsa_only() -> Validation {
        Validation {
            clock_skew: Duration::ZERO,
            ..Validation::new(vec![crate::auth::jwt::Algorithm::EdDSA])
        }
    }

    fn memo_len(cache: &JwksCache) -> usize {
        cache.current.load().memo.len()
    }

    #[test]
    fn verify_remembers_verified_tokens() {
        let key = TestKey::ed25519("k");
        let cache = JwksCache::new(JwkSet::parse(&mint::jwks(&[key.jwk()])).unwrap());
        let token = key.token("EdDSA", &serde_json::json!({"sub": "a", "exp": NOW + 60}));
        let first = cache.verify(&token, &eddsa_only(), at(NOW)).unwrap();
        let second = cache.verify(&token, &eddsa_only(), at(NOW)).unwrap();
        assert!(
            Arc::ptr_eq(&first, &second),
            "the second call is served from the memo"
        );
        assert_eq!(first.string("sub"), Some("a"));
        assert_eq!(memo_len(&cache), 1);
        // Same claims through the plain function.
        assert_eq!(
            *first,
            crate::auth::jwt::verify(&token, &cache.current(), &eddsa_only(), at(NOW)).unwrap()
        );
    }

    #[test]
    fn remembered_tokens_are_still_checked() {
        let key = TestKey::ed25519("k");
        let cache = JwksCache::new(JwkSet::parse(&mint::jwks(&[key.jwk()])).unwrap());
        let token = key.token("EdDSA", &serde_json::json!({"exp": NOW + 60, "aud": "x"}));
        assert!(cache.verify(&token, &eddsa_only(), at(NOW)).is_ok());
        // Time moves on.
        assert_eq!(
            cache
                .verify(&token, &eddsa_only(), at(NOW + 61))
                .unwrap_err(),
            JwtError::Expired
        );
        // Another caller's validation.
        let es256_only = Validation {
            algorithms: vec![crate::auth::jwt::Algorithm::ES256],
            ..eddsa_only()
        };
        assert_eq!(
            cache.verify(&token, &es256_only, at(NOW)).unwrap_err(),
            JwtError::AlgorithmNotAllowed("EdDSA".into())
        );
        let other_audience = Validation {
            audiences: vec!["y".into()],
            ..eddsa_only()
        };
        assert_eq!(
            cache.verify(&token, &other_audience, at(NOW)).unwrap_err(),
            JwtError::WrongAudience
        );
        assert_eq!(memo_len(&cache), 1);
    }

    #[test]
    fn forged_tokens_are_not_remembered() {
        let key = TestKey::ed25519("k");
        let impostor = TestKey::ed25519("k");
        let cache = JwksCache::new(JwkSet::parse(&mint::jwks(&[key.jwk()])).unwrap());
        let forged = impostor.token("EdDSA", &serde_json::json!({"exp": NOW + 60}));
        for _ in 0..3 {
            assert_eq!(
                cache.verify(&forged, &eddsa_only(), at(NOW)).unwrap_err(),
                JwtError::BadSignature
            );
        }
        assert_eq!(memo_len(&cache), 0);
        let none = mint::unsigned(&serde_json::json!({"alg": "none"}), &serde_json::json!({}));
        assert!(cache.verify(&none, &eddsa_only(), at(NOW)).is_err());
        assert_eq!(memo_len(&cache), 0);
    }

    #[test]
    fn rotation_forgets_what_the_old_keys_verified() {
        let old = TestKey::ed25519("old");
        let new = TestKey::ed25519("new");
        let cache = JwksCache::new(JwkSet::parse(&mint::jwks(&[old.jwk()])).unwrap());
        let token = old.token("EdDSA", &serde_json::json!({"exp": NOW + 60}));
        assert!(cache.verify(&token, &eddsa_only(), at(NOW)).is_ok());
        cache.replace(JwkSet::parse(&mint::jwks(&[new.jwk()])).unwrap());
        assert_eq!(
            cache.verify(&token, &eddsa_only(), at(NOW)).unwrap_err(),
            JwtError::UnknownKey
        );
        let token = new.token("EdDSA", &serde_json::json!({"exp": NOW + 60}));
        assert!(cache.verify(&token, &eddsa_only(), at(NOW)).is_ok());
    }

    #[test]
    fn long_tokens_are_verified_every_time() {
        let key = TestKey::ed25519("k");
        let cache = JwksCache::new(JwkSet::parse(&mint::jwks(&[key.jwk()])).unwrap());
        let pad = "x".repeat(MAX_MEMO_TOKEN_LEN);
        let token = key.token("EdDSA", &serde_json::json!({"exp": NOW + 60, "pad": pad}));
        let first = cache.verify(&token, &eddsa_only(), at(NOW)).unwrap();
        let second = cache.verify(&token, &eddsa_only(), at(NOW)).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(first, second);
        assert_eq!(memo_len(&cache), 0);
    }

    #[test]
    fn debug_lists_the_keys() {
        let cache = JwksCache::new(set_with("k1"));
        let text = format!("{cache:?}");
        assert!(text.contains("k1") && text.contains("Ed25519"), "{text}");
    }
}
