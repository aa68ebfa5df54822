//! The rate-limit algorithm as pure functions: a token bucket per [`Limit`] that can go into
//! debt, in exact integer arithmetic. The memory store calls these directly; the Redis store
//! runs the same steps in Lua (`scripts.rs`) and hands the resulting levels back here, so both
//! report through the same code.
//!
//! # State and precision
//!
//! A limit of `amount` tokens per `period` refills at `amount / period` tokens per microsecond,
//! rarely a whole number. Instead of rounding a rate or a per-token interval, levels are kept in
//! *units*: one token is [`Scale::per_token`] units and every tick of [`Scale::tick_us`]
//! microseconds refills [`Scale::per_tick`] units, where `per_tick / per_token` is
//! `amount × tick_us / period` in lowest terms. Refills, reservations and refunds are then
//! integer additions and subtractions: nothing rounds, and no error accumulates over any number
//! of calls.
//!
//! A bucket is one number, `used` (units taken out of a full bucket: 0 = full,
//! [`Scale::capacity`] = empty, above = debt), valid as of tick `at` ([`Level`]).
//!
//! Redis runs Lua 5.1, whose numbers are doubles, exact only below 2^53. So:
//! * a capacity (`amount × per_token`) is at most [`MAX_CAPACITY`] = 2^48;
//! * debt saturates at [`DEBT_PERIODS`] full buckets, so `used ≤ 16 × capacity ≤ 2^52`, a
//!   reservation checks at most `17 × capacity < 2^53`, and the time to refill from the deepest
//!   debt is at most 16 periods;
//! * times are microseconds since the epoch (< 2^53 until the year 2255).
//!
//! The tick is 1 µs whenever `amount × period_µs / gcd(amount, period_µs) ≤ 2^48`, which holds
//! for round configurations (20 000 tokens/minute, 2 000 000 or 10^9 tokens/day) and for any
//! amount up to 4 600 000 a minute, 78 000 an hour or 3 200 a day. Otherwise the tick is the
//! smallest power of ten of microseconds that fits (refills then arrive in steps of `tick_us`;
//! 1 999 993 tokens/day, a prime, gets 1 ms ticks), and as a last resort the period itself. A limit's scale depends only on its
//! `(amount, period)`, which also names its storage, so every replica derives the same one.

use std::time::Duration;

use super::{Decision, Limit, LimitState};
use crate::StoreError;

/// The largest capacity in units, and so the largest `amount`.
pub const MAX_CAPACITY: u64 = 1 << 48;

/// How many full buckets of debt a limit can carry; charges beyond that are forgotten.
pub const DEBT_PERIODS: u64 = 15;

/// The longest period of a rate limit (longer spans are budgets, see `budget.rs`).
pub const MAX_PERIOD: Duration = Duration::from_secs(400 * 86_400);

/// How one limit counts: see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scale {
    /// Microseconds per tick; refills happen at multiples of it since the epoch.
    pub tick_us: u64,
    /// Units refilled per tick.
    pub per_tick: u64,
    /// Units per token.
    pub per_token: u64,
    /// Units in a full bucket: `amount × per_token`.
    pub capacity: u64,
}

impl Scale {
    /// The scale of `limit`; [`StoreError::Invalid`] for an amount of 0 or above
    /// [`MAX_CAPACITY`], or a period that is not a whole number of microseconds in
    /// `1 µs ..= MAX_PERIOD`.
    pub fn new(limit: &Limit) -> Result<Scale, StoreError> {
        let invalid = |why: &str| StoreError::Invalid(format!("rate limit {limit}: {why}"));
        if limit.amount == 0 || limit.amount > MAX_CAPACITY {
            return Err(invalid(&format!("amount must be 1 ..= {MAX_CAPACITY}")));
        }
        let period_us = limit.period_us().ok_or_else(|| {
            invalid(&format!(
                "period must be a whole number of microseconds, 1 µs ..= {MAX_PERIOD:?}"
            ))
        })?;
        let powers_of_ten = std::iter::successors(Some(1u64), |t| t.checked_mul(10));
        powers_of_ten
            .take_while(|&tick| tick < period_us)
            .chain([period_us])
            .find_map(|tick| Scale::with_tick(limit.amount, period_us, tick))
            // With a tick of one period the capacity is `amount`, which was checked above.
            .ok_or_else(|| invalid("no exact scale"))
    }

    fn with_tick(amount: u64, period_us: u64, tick_us: u64) -> Option<Scale> {
        let rate_num = u128::from(amount) * u128::from(tick_us);
        // Every call to a store derives its limits' scales, and the numerator nearly always fits
        // in 64 bits, where a remainder is one instruction instead of a 128-bit library call.
        let (per_tick, per_token) = match u64::try_from(rate_num) {
            Ok(num) => {
                let common = gcd_u64(num, period_us);
                (u128::from(num / common), u128::from(period_us / common))
            }
            Err(_) => {
                let rate_den = u128::from(period_us);
                let common = gcd(rate_num, rate_den);
                (rate_num / common, rate_den / common)
            }
        };
        let capacity = u128::from(amount) * per_token;
        if capacity > u128::from(MAX_CAPACITY) {
            return None;
        }
        // tick_us ≤ period_us, so per_tick ≤ capacity: everything fits in u64.
        Some(Scale {
            tick_us,
            per_tick: u64::try_from(per_tick).ok()?,
            per_token: u64::try_from(per_token).ok()?,
            capacity: u64::try_from(capacity).ok()?,
        })
    }

    /// The tick `now_us` falls in.
    pub fn tick(&self, now_us: u64) -> u64 {
        now_us / self.tick_us
    }

    /// The deepest a bucket can go: `capacity` plus [`DEBT_PERIODS`] buckets of debt.
    pub fn max_used(&self) -> u64 {
        self.capacity * (DEBT_PERIODS + 1)
    }

    /// A token count clamped to what can matter for a change of `used` (±`max_used` in units),
    /// so that `tokens × per_token` stays exact in Lua. Clamping there does not change any
    /// outcome: the result is clamped to `0 ..= max_used` anyway.
    pub fn bounded_tokens(&self, tokens: i64) -> i64 {
        let bound =
            i64::try_from((DEBT_PERIODS + 1) * self.capacity / self.per_token).unwrap_or(i64::MAX);
        tokens.clamp(-bound, bound)
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn gcd_u64(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// One limit's bucket between calls: `used` units as of tick `at`. No level at all means full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    pub used: u64,
    pub at: u64,
}

/// The level at `now_tick`: what has refilled since `at` is paid back (never below full).
///
/// A `now_tick` before `at` (a replica whose clock is behind the one that wrote the level)
/// refills nothing and keeps `at`, so time never runs backwards for a bucket.
pub fn refill(scale: &Scale, level: Option<Level>, now_tick: u64) -> Level {
    let Some(level) = level else {
        return Level {
            used: 0,
            at: now_tick,
        };
    };
    if now_tick <= level.at {
        return level;
    }
    let drained = (now_tick - level.at).saturating_mul(scale.per_tick);
    Level {
        used: level.used.saturating_sub(drained),
        at: now_tick,
    }
}

/// Whether a bucket at `used` holds `cost` tokens. A bucket in debt holds less than nothing, so
/// not even a cost of 0 fits.
pub fn fits(scale: &Scale, used: u64, cost: u64) -> bool {
    u128::from(used) + u128::from(cost) * u128::from(scale.per_token) <= u128::from(scale.capacity)
}

/// `used` after adding `tokens` (negative: a refund), clamped to `0 ..= max_used`: a refund
/// never fills above full, a charge always succeeds (into debt).
pub fn charge(scale: &Scale, used: u64, tokens: i64) -> u64 {
    let next = i128::from(used) + i128::from(tokens) * i128::from(scale.per_token);
    let clamped = next.clamp(0, i128::from(scale.max_used()));
    // In 0 ..= max_used ≤ 2^50.
    u64::try_from(clamped).unwrap_or(scale.max_used())
}

/// Whole tokens left (0 in debt).
pub fn remaining(scale: &Scale, used: u64) -> u64 {
    scale.capacity.saturating_sub(used) / scale.per_token
}

/// The microsecond at which a bucket at `level` is full again.
pub fn full_at_us(scale: &Scale, level: Level) -> u64 {
    (level.at + level.used.div_ceil(scale.per_tick)) * scale.tick_us
}

/// Time from `now_us` until `ticks` more ticks (from the current one) have refilled.
fn after_ticks(scale: &Scale, now_us: u64, ticks: u64) -> Duration {
    let at = scale
        .tick(now_us)
        .saturating_add(ticks)
        .saturating_mul(scale.tick_us);
    Duration::from_micros(at.saturating_sub(now_us))
}

/// Time until a bucket at `used` is full again.
pub fn reset_after(scale: &Scale, used: u64, now_us: u64) -> Duration {
    after_ticks(scale, now_us, used.div_ceil(scale.per_tick))
}

/// Time until a bucket at `used` holds `cost` (zero if it does now). `cost` must not exceed
/// the limit's amount, or it never does.
pub fn retry_after(scale: &Scale, used: u64, cost: u64, now_us: u64) -> Duration {
    let needed = u128::from(used) + u128::from(cost) * u128::from(scale.per_token);
    let excess = needed.saturating_sub(u128::from(scale.capacity));
    let ticks = excess.div_ceil(u128::from(scale.per_tick));
    after_ticks(scale, now_us, u64::try_from(ticks).unwrap_or(u64::MAX))
}

/// A limit of one call, checked, with its scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meter {
    pub limit: Limit,
    pub scale: Scale,
}

/// Scales of the limits this thread used last. A scale is a pure function of its limit, and a
/// gateway has a handful of distinct limits, while deriving one takes a few 64-bit divisions per
/// candidate tick on every call.
const SCALE_MEMO: usize = 16;

/// The remembered scales, and the slot the next one goes to.
type ScaleMemo = ([Option<(Limit, Scale)>; SCALE_MEMO], usize);

thread_local! {
    static SCALES: std::cell::RefCell<ScaleMemo> =
        const { std::cell::RefCell::new(([None; SCALE_MEMO], 0)) };
}

/// [`Scale::new`], remembered per thread (errors are not remembered: they are config mistakes
/// reported once).
fn remembered_scale(limit: &Limit) -> Result<Scale, StoreError> {
    let known = SCALES.with(|memo| {
        memo.borrow()
            .0
            .iter()
            .flatten()
            .find(|(l, _)| l == limit)
            .map(|(_, s)| *s)
    });
    if let Some(scale) = known {
        return Ok(scale);
    }
    let scale = Scale::new(limit)?;
    SCALES.with(|memo| {
        let mut memo = memo.borrow_mut();
        let (slots, next) = &mut *memo;
        slots[*next] = Some((*limit, scale));
        *next = (*next + 1) % SCALE_MEMO;
    });
    Ok(scale)
}

/// Limits one call checks before it needs the heap (a rule has a handful).
pub const INLINE_LIMITS: usize = 4;

/// One value per limit of a call, kept on the stack.
pub type PerLimit<T> = smallvec::SmallVec<[T; INLINE_LIMITS]>;

/// Limits checked once, with their scales, for callers that apply the same set on every call
/// (a configured rule): [`meters`] then costs nothing per call. Reads as the `[Limit]` it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    limits: Vec<Limit>,
    meters: PerLimit<Meter>,
}

impl Limits {
    /// [`StoreError::Invalid`] as [`meters`] says.
    pub fn new(limits: Vec<Limit>) -> Result<Limits, StoreError> {
        let meters = meters(&limits)?;
        Ok(Limits { limits, meters })
    }

    pub fn meters(&self) -> &[Meter] {
        &self.meters
    }
}

impl std::ops::Deref for Limits {
    type Target = [Limit];

    fn deref(&self) -> &[Limit] {
        &self.limits
    }
}

/// Check the limits of one call. The same `(amount, period)` twice is
/// [`StoreError::Invalid`]: both would be one stored bucket, charged twice per reservation.
pub fn meters(limits: &[Limit]) -> Result<PerLimit<Meter>, StoreError> {
    let mut meters: PerLimit<Meter> = PerLimit::with_capacity(limits.len());
    for limit in limits {
        if meters.iter().any(|m| m.limit == *limit) {
            return Err(StoreError::Invalid(format!(
                "rate limit {limit} is listed twice"
            )));
        }
        meters.push(Meter {
            limit: *limit,
            scale: remembered_scale(limit)?,
        });
    }
    Ok(meters)
}

/// Whether `cost` is more than some limit can ever hold.
pub fn never_fits(meters: &[Meter], cost: u64) -> bool {
    meters.iter().any(|m| cost > m.limit.amount)
}

/// Reserve `cost` in every bucket or in none: `used[i]` is limit `i`'s refilled level and is
/// updated only when every limit holds `cost`.
pub fn admit(meters: &[Meter], used: &mut [u64], cost: u64) -> bool {
    let all_fit = meters
        .iter()
        .zip(used.iter())
        .all(|(m, &u)| fits(&m.scale, u, cost));
    if all_fit {
        for (m, u) in meters.iter().zip(used.iter_mut()) {
            *u += cost * m.scale.per_token;
        }
    }
    all_fit
}

/// Apply `delta` (actual − reserved tokens) to every bucket.
pub fn settle(meters: &[Meter], used: &mut [u64], delta: i64) {
    for (m, u) in meters.iter().zip(used.iter_mut()) {
        *u = charge(&m.scale, *u, delta);
    }
}

/// What to tell the caller about buckets at `used`.
pub fn states(meters: &[Meter], used: &[u64], now_us: u64) -> Vec<LimitState> {
    meters
        .iter()
        .zip(used)
        .map(|(m, &u)| LimitState {
            limit: m.limit,
            remaining: remaining(&m.scale, u),
            reset_after: reset_after(&m.scale, u, now_us),
        })
        .collect()
}

/// The decision on reserving `cost`, given the levels after it (`admitted`) or after refill
/// only (refused). A refusal waits for the slowest limit: each refills on its own, so by then
/// every one holds `cost`.
pub fn decision(
    meters: &[Meter],
    used: &[u64],
    cost: u64,
    admitted: bool,
    now_us: u64,
) -> Decision {
    let retry_after = (!admitted).then(|| {
        meters
            .iter()
            .zip(used)
            .map(|(m, &u)| retry_after(&m.scale, u, cost, now_us))
            .max()
            .unwrap_or(Duration::ZERO)
    });
    Decision {
        admitted,
        retry_after,
        never: false,
        states: states(meters, used, now_us),
    }
}

/// The refusal of a cost that can never fit ([`never_fits`]), with the buckets' states.
pub fn never(meters: &[Meter], used: &[u64], now_us: u64) -> Decision {
    Decision {
        admitted: false,
        retry_after: None,
        never: true,
        states: states(meters, used, now_us),
    }
}
