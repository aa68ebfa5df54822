//! What only the memory store does: forgetting buckets that are full again and budget counters
//! whose window is long over, so memory does not grow with every bucket ever used.

use std::time::Duration;

use sluice_state::limits::{Budget, MemoryLimiter, Period, SETTLE_GRACE, SWEEP_EVERY};

use crate::support::{at, per_minute, per_second, secs, unix, TestResult};

#[test]
fn a_bucket_that_is_full_again_is_dropped_when_touched() -> TestResult {
    let store = MemoryLimiter::new();
    let ls = [per_second(10), per_minute(100)];
    store.reserve("b", &ls, 5, secs(0))?;
    assert_eq!(store.len(), 2);
    // A refund that fills one limit drops that one only.
    store.settle("b", &ls, -5, secs(1))?;
    assert_eq!(
        store.len(),
        0,
        "both full: per_second by refill, per_minute by refund"
    );
    store.reserve("b", &ls, 5, secs(2))?;
    store.settle("b", &[per_second(10)], -5, secs(2))?;
    assert_eq!(store.len(), 1);
    // Reads and refusals store nothing.
    store.state("c", &ls, secs(2))?;
    store.reserve("c", &ls, 11, secs(2))?;
    assert_eq!(store.len(), 1);
    Ok(())
}

#[test]
fn the_sweep_drops_buckets_that_refilled_while_idle() -> TestResult {
    let store = MemoryLimiter::new();
    let start = secs(1000);
    store.state("warm-up", &[per_second(1)], start)?; // the first call sweeps (nothing)
    for n in 0..100 {
        store.reserve(&format!("idle-{n}"), &[per_second(10)], 10, start)?;
    }
    store.reserve("busy", &[per_minute(100)], 100, start)?;
    store.settle("busy", &[per_minute(100)], 500, start)?; // 500 in debt: 6 minutes to full
    assert_eq!(store.len(), 101);

    // Every idle bucket is full a second later, but sweeps run once per SWEEP_EVERY only.
    let early = start + SWEEP_EVERY - Duration::from_micros(1);
    store.state("other", &[per_second(1)], early)?;
    assert_eq!(store.len(), 101);
    store.state("other", &[per_second(1)], start + SWEEP_EVERY)?;
    assert_eq!(store.len(), 1, "only the bucket in debt is left");

    // An explicit sweep reports what it removed; the debt is paid back after 6 minutes.
    assert_eq!(store.sweep(start + Duration::from_secs(359))?, 0);
    assert_eq!(store.sweep(start + Duration::from_secs(360))?, 1);
    assert!(store.is_empty());
    Ok(())
}

#[test]
fn budget_counters_go_a_grace_period_after_their_window() -> TestResult {
    let store = MemoryLimiter::new();
    let day = Budget {
        limit: 100,
        period: Period::Day,
    };
    // 2026-11-30T12:00:00Z; the window ends at 2026-12-01T00:00:00Z.
    let decision = store.reserve_budget("t", &day, 10, unix(1_796_040_000))?;
    let end = decision.window.end;
    assert_eq!(store.len(), 1);
    assert_eq!(store.sweep(end)?, 0, "still settleable after the window");
    assert_eq!(
        store.sweep(end + SETTLE_GRACE - Duration::from_micros(1))?,
        0
    );
    assert_eq!(store.sweep(end + SETTLE_GRACE)?, 1);
    assert!(store.is_empty());
    // A counter settled down to zero needs no entry either.
    let decision = store.reserve_budget("t", &day, 10, at(Duration::ZERO))?;
    store.settle_budget("t", &day, &decision.window, -10)?;
    assert!(store.is_empty());
    Ok(())
}
