//! Cumulative budgets over UTC calendar periods: what a budget is, which period an instant
//! belongs to, and the arithmetic every store applies to a period's spend.
//!
//! Units are the caller's (tokens, or micro-dollars for money). A store keeps one counter per
//! `(bucket, period id)`; the budget's `limit` is not part of it, so raising or lowering a limit
//! keeps what was spent. Two budgets with different units on one bucket need different bucket
//! names (e.g. append `|usd`), or they would share a counter.

use std::fmt;
use std::time::{Duration, SystemTime};

use super::calendar::Date;
use super::clock;
use crate::StoreError;

/// The largest budget limit, reservation or spend. Spends are Lua numbers in Redis (exact below
/// 2^53); 2^52 micro-dollars are 4.5 billion dollars.
pub const MAX_SPEND: u64 = 1 << 52;

/// How long a period's counter outlives the period: a request reserved just before the end is
/// still settled against it (see [`Window`]).
pub const SETTLE_GRACE: Duration = Duration::from_secs(86_400);

const DAY_US: u64 = 86_400 * 1_000_000;

/// A calendar period in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Period {
    Day,
    Month,
}

/// A budget: at most `limit` units per period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub limit: u64,
    pub period: Period,
}

/// One concrete period, e.g. the day 2026-11-22 or the month 2026-11.
///
/// A reservation returns the window it was counted in, and its settlement must name that
/// window: a request reserved at 23:59:59 and finished after midnight is charged to the day it
/// was admitted in, not to the next one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    pub period: Period,
    /// `2026-11-22` (day) or `2026-11` (month): stable, and the name of its counter.
    pub id: String,
    /// Inclusive.
    pub start: SystemTime,
    /// Exclusive: the start of the next window.
    pub end: SystemTime,
}

impl Period {
    /// The window of this period that contains `now`.
    pub fn window(self, now: SystemTime) -> Result<Window, StoreError> {
        let (start_us, end_us) = self.bounds_us(clock::micros(now)?);
        let start = Date::from_days(days_of(start_us));
        // What `format!("{:04}-{:02}-{:02}")` writes, without the formatting machinery: every
        // budget reservation names its window.
        let mut id = String::with_capacity(10);
        push_padded(&mut id, start.year.unsigned_abs(), 4);
        id.push('-');
        push_padded(&mut id, u64::from(start.month), 2);
        if self == Period::Day {
            id.push('-');
            push_padded(&mut id, u64::from(start.day), 2);
        }
        Ok(Window {
            period: self,
            id,
            start: clock::from_micros(start_us),
            end: clock::from_micros(end_us),
        })
    }

    /// Start and end in µs since the epoch of the window containing `now_us`.
    fn bounds_us(self, now_us: u64) -> (u64, u64) {
        let today = days_of(now_us);
        let (first, next) = match self {
            Period::Day => (today, today + 1),
            Period::Month => {
                let date = Date::from_days(today);
                let first = Date { day: 1, ..date };
                (first.days(), date.next_month().days())
            }
        };
        (micros_of(first), micros_of(next))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Period::Day => "day",
            Period::Month => "month",
        })
    }
}

/// `n` in decimal, zero-padded to at least `width` digits.
fn push_padded(out: &mut String, n: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut rest = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for _ in digits.len() - i..width {
        out.push('0');
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

/// Day number of an instant at or after the epoch.
fn days_of(us: u64) -> i64 {
    // `us` < 2^53, so the day number is far below i64::MAX.
    i64::try_from(us / DAY_US).unwrap_or(i64::MAX)
}

/// First microsecond of a day number at or after the epoch.
fn micros_of(days: i64) -> u64 {
    u64::try_from(days).unwrap_or(0) * DAY_US
}

/// The result of reserving against a budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetDecision {
    pub admitted: bool,
    /// Spent in the window after the decision.
    pub spent: u64,
    /// `limit − spent`, 0 when over.
    pub remaining: u64,
    /// When the window ends and spending starts again from 0.
    pub resets_at: SystemTime,
    /// The window counted in; pass it to `settle_budget`.
    pub window: Window,
}

/// A budget's spend in one window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetUsage {
    pub spent: u64,
    /// `limit − spent`, 0 when over.
    pub remaining: u64,
}

impl Budget {
    /// [`StoreError::Invalid`] for a limit above [`MAX_SPEND`].
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if self.limit > MAX_SPEND {
            return Err(StoreError::Invalid(format!(
                "{} budget of {}: at most {MAX_SPEND}",
                self.period, self.limit
            )));
        }
        Ok(())
    }

    /// [`StoreError::Invalid`] for a reservation above [`MAX_SPEND`].
    pub(crate) fn check_amount(&self, amount: u64) -> Result<(), StoreError> {
        if amount > MAX_SPEND {
            return Err(StoreError::Invalid(format!(
                "budget reservation of {amount}: at most {MAX_SPEND}"
            )));
        }
        Ok(())
    }

    /// [`StoreError::Invalid`] unless `window` is a window of this budget's period.
    pub(crate) fn check_window(&self, window: &Window) -> Result<(), StoreError> {
        if window.period != self.period {
            return Err(StoreError::Invalid(format!(
                "a {} budget cannot be settled in {} window {}",
                self.period, window.period, window.id
            )));
        }
        Ok(())
    }

    /// Whether `amount` more fits under the limit.
    pub(crate) fn admits(&self, spent: u64, amount: u64) -> bool {
        u128::from(spent) + u128::from(amount) <= u128::from(self.limit)
    }

    pub(crate) fn usage(&self, spent: u64) -> BudgetUsage {
        BudgetUsage {
            spent,
            remaining: self.limit.saturating_sub(spent),
        }
    }
}

/// `spent` after adding `delta`: never below 0, saturating at [`MAX_SPEND`].
pub(crate) fn settled(spent: u64, delta: i64) -> u64 {
    let next = i128::from(spent) + i128::from(bounded_delta(delta));
    // Clamped into 0 ..= MAX_SPEND.
    u64::try_from(next.clamp(0, i128::from(MAX_SPEND))).unwrap_or(MAX_SPEND)
}

/// `delta` clamped to ±[`MAX_SPEND`], which changes no outcome of [`settled`] and keeps
/// `spent + delta` exact in Lua.
pub(crate) fn bounded_delta(delta: i64) -> i64 {
    let bound = i64::try_from(MAX_SPEND).unwrap_or(i64::MAX);
    delta.clamp(-bound, bound)
}

/// When a window's counter may be dropped, in µs since the epoch.
pub(crate) fn expires_us(window: &Window) -> Result<u64, StoreError> {
    let end = clock::micros(window.end)?;
    let grace = u64::try_from(SETTLE_GRACE.as_micros()).unwrap_or(u64::MAX);
    Ok(end.saturating_add(grace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_ids_are_what_format_writes() {
        // Every 7th day from the epoch to 2254 (times end at 2^53 µs, in 2255), both periods.
        for days in (0..104_000).step_by(7) {
            let now = clock::from_micros(micros_of(days) + 1);
            let date = Date::from_days(days);
            let day = Period::Day.window(now).map(|w| w.id);
            let want = format!("{:04}-{:02}-{:02}", date.year, date.month, date.day);
            assert_eq!(day.as_deref(), Ok(want.as_str()));
            let month = Period::Month.window(now).map(|w| w.id);
            let want = format!("{:04}-{:02}", date.year, date.month);
            assert_eq!(month.as_deref(), Ok(want.as_str()));
        }
    }

    #[test]
    fn padding_never_cuts_digits() {
        for (n, width, want) in [
            (0, 4, "0000"),
            (7, 2, "07"),
            (12, 2, "12"),
            (12345, 4, "12345"),
        ] {
            let mut s = String::new();
            push_padded(&mut s, n, width);
            assert_eq!(s, want);
        }
        let mut s = String::new();
        push_padded(&mut s, u64::MAX, 4);
        assert_eq!(s, u64::MAX.to_string());
    }
}
