//! The JWK set in force, readable from every request without locks, and the bookkeeping that
//! decides when an unknown `kid` may trigger a refetch.
//!
//! Fetching (HTTP or file) is the proxy's business; this module only holds and swaps sets.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::jwt::JwkSet;

/// Stands for "no refetch yet" in `last_refetch`.
const NEVER: u64 = u64::MAX;

/// The current JWK set behind an `ArcSwap`: requests load it without locking, a refresh
/// replaces it atomically, and requests still verifying against the old set keep it alive until
/// they finish.
pub struct JwksCache {
    set: ArcSwap<JwkSet>,
    /// When refetching was last allowed, as nanoseconds since `epoch`, or [`NEVER`]. An atomic
    /// rather than a lock: this is consulted on the request path whenever a token names an
    /// unknown `kid`, which an attacker can make happen on every request.
    last_refetch: AtomicU64,
    epoch: Instant,
}

impl JwksCache {
    pub fn new(initial: JwkSet) -> JwksCache {
        JwksCache {
            set: ArcSwap::from_pointee(initial),
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
        self.set.load_full()
    }

    /// Puts `set` in force for every later [`current`](Self::current).
    pub fn replace(&self, set: JwkSet) {
        self.set.store(Arc::new(set));
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
            .field("set", &self.set.load())
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

    #[test]
    fn debug_lists_the_keys() {
        let cache = JwksCache::new(set_with("k1"));
        let text = format!("{cache:?}");
        assert!(text.contains("k1") && text.contains("Ed25519"), "{text}");
    }
}
