//! Limits and budgets of one replica, in process.
//!
//! One mutex guards everything: every operation is a few integer steps on a handful of slots
//! with no await inside, so holding it is shorter than sharding it would be worth.
//!
//! Buckets are keyed by a 64-bit SipHash of their name with a per-process random key, computed
//! once per operation before the lock is taken: no name is copied or hashed again inside. A
//! client cannot craft names that collide (it does not know the key), and an accidental
//! collision between two of the buckets in use is negligible (below 10⁻⁷ with a million).
//!
//! Memory stays bounded by what is actually in use, as in Redis where keys expire:
//! * a limit whose bucket is full after an operation is dropped at once (a full bucket and an
//!   absent one behave the same);
//! * at most once per [`SWEEP_EVERY`] of the callers' clock, the next operation also drops every
//!   bucket that has refilled to full since it was last touched, and every budget counter past
//!   its window's end plus
//!   [`SETTLE_GRACE`](super::budget::SETTLE_GRACE). The sweep is driven by the `now` callers pass in,
//!   not a background task, so it follows an injected clock and needs no runtime.

use std::collections::hash_map::Entry;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use super::budget::{self, Budget, BudgetDecision, BudgetUsage, Window};
use super::gcra::{self, Level, Limits, Meter, PerLimit};
use super::{clock, Decision, Limit, LimitState};
use crate::StoreError;

/// How often (in the callers' time) stale buckets and counters are swept out.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The limits and budgets of one process.
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    /// Keys bucket names (see the module documentation).
    names: RandomState,
    inner: Mutex<Inner>,
}

/// A bucket's key: the keyed hash of its name.
type Key = u64;

/// A bucket's name as this limiter keys it ([`MemoryLimiter::bucket_key`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketKey(Key);

/// The keys are already hashes: the maps use them as they are.
type KeyMap<V> = HashMap<Key, V, BuildHasherDefault<KeyHasher>>;

#[derive(Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; anything else is folded in all the same.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Bucket → its limits that are not full.
    rates: KeyMap<Vec<RateSlot>>,
    /// Bucket → its budget counters.
    budgets: KeyMap<Vec<BudgetSlot>>,
    next_sweep_us: u64,
}

#[derive(Debug)]
struct RateSlot {
    limit: Limit,
    level: Level,
    /// When the bucket is full again, so the sweep needs no arithmetic.
    full_at_us: u64,
}

#[derive(Debug)]
struct BudgetSlot {
    window_id: String,
    spent: u64,
    expires_us: u64,
}

impl MemoryLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn reserve(
        &self,
        bucket: &str,
        limits: &[Limit],
        cost: u64,
        now: SystemTime,
    ) -> Result<Decision, StoreError> {
        let meters = gcra::meters(limits)?;
        self.reserve_metered(self.bucket_key(bucket), &meters, cost, now)
    }

    /// [`reserve`](Self::reserve) in the bucket whose name hashed to `bucket`, with limits
    /// checked beforehand.
    pub fn reserve_at(
        &self,
        bucket: BucketKey,
        limits: &Limits,
        cost: u64,
        now: SystemTime,
    ) -> Result<Decision, StoreError> {
        self.reserve_metered(bucket, limits.meters(), cost, now)
    }

    fn reserve_metered(
        &self,
        bucket: BucketKey,
        meters: &[Meter],
        cost: u64,
        now: SystemTime,
    ) -> Result<Decision, StoreError> {
        let now_us = clock::micros(now)?;
        let mut inner = self.lock();
        inner.sweep_if_due(now_us);
        let levels = inner.levels(bucket.0, meters, now_us);
        let mut used: PerLimit<u64> = levels.iter().map(|l| l.used).collect();
        if gcra::never_fits(meters, cost) {
            return Ok(gcra::never(meters, &used, now_us));
        }
        let admitted = gcra::admit(meters, &mut used, cost);
        if admitted {
            inner.store(bucket.0, meters, &levels, &used);
        }
        Ok(gcra::decision(meters, &used, cost, admitted, now_us))
    }

    pub fn settle(
        &self,
        bucket: &str,
        limits: &[Limit],
        delta: i64,
        now: SystemTime,
    ) -> Result<Vec<LimitState>, StoreError> {
        let meters = gcra::meters(limits)?;
        let now_us = clock::micros(now)?;
        let used = self.settle_levels(self.bucket_key(bucket), &meters, delta, now_us);
        Ok(gcra::states(&meters, &used, now_us))
    }

    /// [`settle`](Self::settle) in the bucket whose name hashed to `bucket`, with limits
    /// checked beforehand, for a caller that does not read the states after it.
    pub fn settle_at(
        &self,
        bucket: BucketKey,
        limits: &Limits,
        delta: i64,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let now_us = clock::micros(now)?;
        self.settle_levels(bucket, limits.meters(), delta, now_us);
        Ok(())
    }

    fn settle_levels(
        &self,
        bucket: BucketKey,
        meters: &[Meter],
        delta: i64,
        now_us: u64,
    ) -> PerLimit<u64> {
        let mut inner = self.lock();
        inner.sweep_if_due(now_us);
        let levels = inner.levels(bucket.0, meters, now_us);
        let mut used: PerLimit<u64> = levels.iter().map(|l| l.used).collect();
        gcra::settle(meters, &mut used, delta);
        inner.store(bucket.0, meters, &levels, &used);
        used
    }

    pub fn state(
        &self,
        bucket: &str,
        limits: &[Limit],
        now: SystemTime,
    ) -> Result<Vec<LimitState>, StoreError> {
        let meters = gcra::meters(limits)?;
        let now_us = clock::micros(now)?;
        let key = self.key(bucket);
        let mut inner = self.lock();
        inner.sweep_if_due(now_us);
        let used: PerLimit<u64> = inner
            .levels(key, &meters, now_us)
            .iter()
            .map(|l| l.used)
            .collect();
        Ok(gcra::states(&meters, &used, now_us))
    }

    pub fn reserve_budget(
        &self,
        bucket: &str,
        budget: &Budget,
        amount: u64,
        now: SystemTime,
    ) -> Result<BudgetDecision, StoreError> {
        budget.check()?;
        budget.check_amount(amount)?;
        let window = budget.period.window(now)?;
        let expires_us = budget::expires_us(&window)?;
        let now_us = clock::micros(now)?;
        let key = self.key(bucket);
        let mut inner = self.lock();
        inner.sweep_if_due(now_us);
        let spent = inner.spent(key, &window.id);
        let admitted = budget.admits(spent, amount);
        let spent = if admitted { spent + amount } else { spent };
        if admitted {
            inner.set_spent(key, &window.id, spent, expires_us);
        }
        let usage = budget.usage(spent);
        Ok(BudgetDecision {
            admitted,
            spent: usage.spent,
            remaining: usage.remaining,
            resets_at: window.end,
            window,
        })
    }

    pub fn settle_budget(
        &self,
        bucket: &str,
        budget: &Budget,
        window: &Window,
        delta: i64,
    ) -> Result<BudgetUsage, StoreError> {
        budget.check()?;
        budget.check_window(window)?;
        let expires_us = budget::expires_us(window)?;
        let key = self.key(bucket);
        let mut inner = self.lock();
        let spent = budget::settled(inner.spent(key, &window.id), delta);
        inner.set_spent(key, &window.id, spent, expires_us);
        Ok(budget.usage(spent))
    }

    pub fn spent(
        &self,
        bucket: &str,
        budget: &Budget,
        now: SystemTime,
    ) -> Result<BudgetUsage, StoreError> {
        budget.check()?;
        let window = budget.period.window(now)?;
        let now_us = clock::micros(now)?;
        let key = self.key(bucket);
        let mut inner = self.lock();
        inner.sweep_if_due(now_us);
        Ok(budget.usage(inner.spent(key, &window.id)))
    }

    /// Drop every bucket that is full at `now` and every budget counter expired by `now`;
    /// returns how many entries went. Operations call this themselves every [`SWEEP_EVERY`].
    pub fn sweep(&self, now: SystemTime) -> Result<usize, StoreError> {
        let now_us = clock::micros(now)?;
        Ok(self.lock().sweep(now_us))
    }

    /// How many limit levels and budget counters are held (for tests and metrics).
    pub fn len(&self) -> usize {
        let inner = self.lock();
        let rates: usize = inner.rates.values().map(Vec::len).sum();
        let budgets: usize = inner.budgets.values().map(Vec::len).sum();
        rates + budgets
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn key(&self, bucket: &str) -> Key {
        self.names.hash_one(bucket)
    }

    /// The key of the bucket named `bucket`, for callers that reserve and later settle the
    /// same bucket without hashing its name twice. Valid for this limiter only.
    pub fn bucket_key(&self, bucket: &str) -> BucketKey {
        BucketKey(self.key(bucket))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while the lock is held, and every write leaves whole numbers behind,
        // so a poisoned lock still guards consistent data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    /// Each meter's level refilled to `now_us` (full if not stored).
    fn levels(&self, bucket: Key, meters: &[Meter], now_us: u64) -> PerLimit<Level> {
        let slots = self.rates.get(&bucket);
        meters
            .iter()
            .map(|m| {
                let stored = slots
                    .and_then(|slots| slots.iter().find(|s| s.limit == m.limit))
                    .map(|s| s.level);
                gcra::refill(&m.scale, stored, m.scale.tick(now_us))
            })
            .collect()
    }

    /// Write back `used` for each meter at its refilled level's tick; full buckets are removed.
    fn store(&mut self, bucket: Key, meters: &[Meter], refilled: &[Level], used: &[u64]) {
        let mut entry = match self.rates.entry(bucket) {
            Entry::Occupied(e) => e,
            // Nothing stored: a slot only for levels that are not full, and none at all if all
            // are.
            Entry::Vacant(_) if used.iter().all(|&u| u == 0) => return,
            Entry::Vacant(e) => e.insert_entry(Vec::with_capacity(meters.len())),
        };
        let slots = entry.get_mut();
        for ((m, level), &used) in meters.iter().zip(refilled).zip(used) {
            let level = Level { used, ..*level };
            let position = slots.iter().position(|s| s.limit == m.limit);
            match (position, used) {
                (Some(i), 0) => {
                    slots.swap_remove(i);
                }
                (None, 0) => {}
                (Some(i), _) => {
                    slots[i].level = level;
                    slots[i].full_at_us = gcra::full_at_us(&m.scale, level);
                }
                (None, _) => slots.push(RateSlot {
                    limit: m.limit,
                    level,
                    full_at_us: gcra::full_at_us(&m.scale, level),
                }),
            }
        }
        if slots.is_empty() {
            entry.remove();
        }
    }

    fn spent(&self, bucket: Key, window_id: &str) -> u64 {
        self.budgets
            .get(&bucket)
            .and_then(|slots| slots.iter().find(|s| s.window_id == window_id))
            .map_or(0, |s| s.spent)
    }

    /// Zero needs no counter, like a missing key in Redis.
    fn set_spent(&mut self, bucket: Key, window_id: &str, spent: u64, expires_us: u64) {
        let mut entry = match self.budgets.entry(bucket) {
            Entry::Occupied(e) => e,
            Entry::Vacant(e) => {
                if spent != 0 {
                    e.insert(vec![BudgetSlot {
                        window_id: window_id.to_owned(),
                        spent,
                        expires_us,
                    }]);
                }
                return;
            }
        };
        let slots = entry.get_mut();
        match slots.iter().position(|s| s.window_id == window_id) {
            Some(i) if spent == 0 => {
                slots.swap_remove(i);
            }
            Some(i) => {
                slots[i].spent = spent;
                slots[i].expires_us = expires_us;
            }
            None if spent == 0 => {}
            None => slots.push(BudgetSlot {
                window_id: window_id.to_owned(),
                spent,
                expires_us,
            }),
        }
        if slots.is_empty() {
            entry.remove();
        }
    }

    fn sweep_if_due(&mut self, now_us: u64) {
        if now_us >= self.next_sweep_us {
            self.sweep(now_us);
            let every = u64::try_from(SWEEP_EVERY.as_micros()).unwrap_or(u64::MAX);
            self.next_sweep_us = now_us.saturating_add(every);
        }
    }

    fn sweep(&mut self, now_us: u64) -> usize {
        let mut removed = 0;
        self.rates.retain(|_, slots| {
            let before = slots.len();
            slots.retain(|s| s.full_at_us > now_us);
            removed += before - slots.len();
            !slots.is_empty()
        });
        self.budgets.retain(|_, slots| {
            let before = slots.len();
            slots.retain(|s| s.expires_us > now_us);
            removed += before - slots.len();
            !slots.is_empty()
        });
        removed
    }
}
