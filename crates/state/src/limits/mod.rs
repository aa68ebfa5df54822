//! Token rate limits and budgets, in process ([`MemoryLimiter`]) or in Redis so that every
//! replica agrees ([`RedisLimiter`]), with the same semantics in both.
//!
//! A request is admitted by *reserving* an estimate of its tokens against every [`Limit`] of
//! its bucket at once ([`Limiter::reserve`]); when the response ends it is *settled* with the
//! difference to the real usage ([`Limiter::settle`]): unused tokens are refunded, usage above
//! the estimate is charged anyway and may leave the bucket in debt, which later requests wait
//! out. The algorithm is a token bucket that can carry debt, in exact integer arithmetic
//! ([`gcra`]).
//!
//! Budgets ([`Budget`]) cap cumulative spend per UTC day or month, in the caller's units.
//!
//! Time is always passed in (`now`), so tests inject a clock and replicas use their wall
//! clocks.

mod budget;
mod calendar;
mod clock;
pub mod gcra;
mod memory;
mod naming;
mod redis;
mod scripts;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use self::budget::{
    Budget, BudgetDecision, BudgetUsage, Period, Window, MAX_SPEND, SETTLE_GRACE,
};
pub use self::gcra::Limits;
pub use self::memory::{BucketKey, MemoryLimiter, SWEEP_EVERY};
pub use self::redis::RedisLimiter;
pub use self::scripts::EXPIRY_MARGIN_MS;
use crate::redis::RedisConn;
use crate::StoreError;

/// At most `amount` tokens per `period`, refilling continuously; a full bucket holds `amount`.
///
/// `amount` is 1 ..= [`gcra::MAX_CAPACITY`], `period` a whole number of microseconds up to
/// [`gcra::MAX_PERIOD`]. Storage is named by `(amount, period)`, so changing either starts a
/// fresh bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limit {
    pub amount: u64,
    pub period: Duration,
}

impl Limit {
    pub fn new(amount: u64, period: Duration) -> Limit {
        Limit { amount, period }
    }

    /// The period in microseconds, if it is a valid one.
    pub(crate) fn period_us(&self) -> Option<u64> {
        let whole = self.period.subsec_nanos().is_multiple_of(1000);
        if !whole || self.period.is_zero() || self.period > gcra::MAX_PERIOD {
            return None;
        }
        u64::try_from(self.period.as_micros()).ok()
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{:?}", self.amount, self.period)
    }
}

/// One limit of a bucket as response headers report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitState {
    pub limit: Limit,
    /// Whole tokens available now; 0 in debt.
    pub remaining: u64,
    /// Time until the bucket is full again (zero if it is).
    pub reset_after: Duration,
}

/// The outcome of [`Limiter::reserve`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub admitted: bool,
    /// When a refused reservation would fit every limit (assuming nothing else is reserved
    /// meanwhile). `None` when admitted, or when it can never fit.
    pub retry_after: Option<Duration>,
    /// The cost exceeds some limit's `amount`, so no wait can help (answer 429 without a
    /// Retry-After).
    pub never: bool,
    /// Each limit after the decision, in the order given.
    pub states: Vec<LimitState>,
}

/// The configured store of limits and budgets.
#[derive(Debug)]
pub enum Limiter {
    Memory(MemoryLimiter),
    Redis(RedisLimiter),
}

impl Limiter {
    /// Limits of this process only.
    pub fn memory() -> Limiter {
        Limiter::Memory(MemoryLimiter::new())
    }

    /// Limits shared through Redis at `conn`, with keys under `{prefix:…}`. Contacts nothing
    /// yet; [`StoreError::Invalid`] for a prefix with spaces or braces.
    pub async fn redis(conn: Arc<RedisConn>, prefix: &str) -> Result<Limiter, StoreError> {
        RedisLimiter::new(conn, prefix).map(Limiter::Redis)
    }

    /// Reserve `cost` tokens in every limit of `bucket`, or in none.
    ///
    /// `bucket` names who shares the bucket (e.g. `policy/rule|tenant=a|model=gpt-4o`); any
    /// string. Admitted iff every limit holds `cost` now (one in debt holds less than nothing).
    /// Otherwise nothing changes and the decision says how long to wait, or that a cost above
    /// some `amount` [never](Decision::never) fits.
    pub async fn reserve(
        &self,
        bucket: &str,
        limits: &[Limit],
        cost: u64,
        now: SystemTime,
    ) -> Result<Decision, StoreError> {
        match self {
            Limiter::Memory(store) => store.reserve(bucket, limits, cost, now),
            Limiter::Redis(store) => store.reserve(bucket, limits, cost, now).await,
        }
    }

    /// Apply `delta` = actual − reserved tokens to every limit of `bucket`: a negative delta
    /// refunds (never above full), a positive one is charged even into debt (which saturates at
    /// [`gcra::DEBT_PERIODS`] full buckets). Never refused.
    pub async fn settle(
        &self,
        bucket: &str,
        limits: &[Limit],
        delta: i64,
        now: SystemTime,
    ) -> Result<Vec<LimitState>, StoreError> {
        match self {
            Limiter::Memory(store) => store.settle(bucket, limits, delta, now),
            Limiter::Redis(store) => store.settle(bucket, limits, delta, now).await,
        }
    }

    /// Each limit of `bucket` now, changing nothing.
    pub async fn state(
        &self,
        bucket: &str,
        limits: &[Limit],
        now: SystemTime,
    ) -> Result<Vec<LimitState>, StoreError> {
        match self {
            Limiter::Memory(store) => store.state(bucket, limits, now),
            Limiter::Redis(store) => store.state(bucket, limits, now).await,
        }
    }

    /// Add `amount` to `bucket`'s spend in the current window of `budget` if it stays within
    /// the limit. Keep [`BudgetDecision::window`] for [`Limiter::settle_budget`].
    pub async fn reserve_budget(
        &self,
        bucket: &str,
        budget: &Budget,
        amount: u64,
        now: SystemTime,
    ) -> Result<BudgetDecision, StoreError> {
        match self {
            Limiter::Memory(store) => store.reserve_budget(bucket, budget, amount, now),
            Limiter::Redis(store) => store.reserve_budget(bucket, budget, amount, now).await,
        }
    }

    /// Add `delta` = actual − reserved to the spend of `window`, the window the reservation was
    /// counted in (even if another has begun since). May exceed the limit; never below 0.
    pub async fn settle_budget(
        &self,
        bucket: &str,
        budget: &Budget,
        window: &Window,
        delta: i64,
    ) -> Result<BudgetUsage, StoreError> {
        match self {
            Limiter::Memory(store) => store.settle_budget(bucket, budget, window, delta),
            Limiter::Redis(store) => store.settle_budget(bucket, budget, window, delta).await,
        }
    }

    /// `bucket`'s spend in the current window of `budget`.
    pub async fn spent(
        &self,
        bucket: &str,
        budget: &Budget,
        now: SystemTime,
    ) -> Result<BudgetUsage, StoreError> {
        match self {
            Limiter::Memory(store) => store.spent(bucket, budget, now),
            Limiter::Redis(store) => store.spent(bucket, budget, now).await,
        }
    }

    /// `memory`, or the Redis target and prefix; never contains a password.
    pub fn describe(&self) -> String {
        match self {
            Limiter::Memory(_) => "memory".to_owned(),
            Limiter::Redis(store) => store.describe(),
        }
    }
}
