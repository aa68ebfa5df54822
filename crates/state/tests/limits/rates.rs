//! The behaviour of rate limits, the same on both stores: refill, burst, all-or-nothing
//! reservations over several limits, refunds, debt, `never`, reported states, concurrency.

use std::sync::Arc;
use std::time::Duration;

use sluice_state::limits::{Decision, Limit, LimitState, Limiter};
use sluice_state::StoreError;

use crate::support::{
    at, limit, ms, per_day, per_hour, per_minute, per_second, secs, unix, TestResult,
};

on_both_stores!(
    refills_over_time,
    bursts_up_to_the_amount,
    refused_if_any_limit_is_short_and_then_nothing_changes,
    refunds_never_fill_above_full,
    debt_blocks_until_refill_pays_it_back,
    never_for_a_cost_above_some_amount,
    several_limits_report_remaining_and_reset,
    buckets_and_limit_configurations_are_independent,
    invalid_input_is_refused,
    a_lagging_clock_refills_nothing,
    concurrent_reservations_never_overdraw,
    concurrent_reserve_and_refund_leave_the_bucket_full,
);

const S: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);
const US: Duration = Duration::from_micros(1);

fn state(limit: Limit, remaining: u64, reset_after: Duration) -> LimitState {
    LimitState {
        limit,
        remaining,
        reset_after,
    }
}

fn admitted(states: Vec<LimitState>) -> Decision {
    Decision {
        admitted: true,
        retry_after: None,
        never: false,
        states,
    }
}

fn refused(retry_after: Duration, states: Vec<LimitState>) -> Decision {
    Decision {
        admitted: false,
        retry_after: Some(retry_after),
        never: false,
        states,
    }
}

async fn refills_over_time(limiter: Limiter) -> TestResult {
    // One token every 100 ms.
    let l = limit(100, 10 * S);
    let ls = [l];
    assert_eq!(
        limiter.reserve("b", &ls, 100, secs(0)).await?,
        admitted(vec![state(l, 0, 10 * S)])
    );
    assert_eq!(
        limiter.reserve("b", &ls, 1, secs(0)).await?,
        refused(100 * MS, vec![state(l, 0, 10 * S)])
    );
    assert_eq!(
        limiter.reserve("b", &ls, 1, ms(99)).await?,
        refused(MS, vec![state(l, 0, 9901 * MS)])
    );
    assert_eq!(
        limiter.reserve("b", &ls, 1, ms(100)).await?,
        admitted(vec![state(l, 0, 10 * S)])
    );
    // 51 tokens refilled since 0, one of them taken again at 100 ms.
    assert_eq!(
        limiter.state("b", &ls, ms(5100)).await?,
        vec![state(l, 50, 5 * S)]
    );
    assert_eq!(
        limiter.state("b", &ls, secs(20)).await?,
        vec![state(l, 100, Duration::ZERO)]
    );
    Ok(())
}

async fn bursts_up_to_the_amount(limiter: Limiter) -> TestResult {
    // 1000 a minute: 60 ms per token.
    let l = per_minute(1000);
    let ls = [l];
    assert_eq!(
        limiter.state("b", &ls, secs(0)).await?,
        vec![state(l, 1000, Duration::ZERO)]
    );
    assert_eq!(
        limiter.reserve("b", &ls, 600, secs(0)).await?,
        admitted(vec![state(l, 400, 36 * S)])
    );
    assert_eq!(
        limiter.reserve("b", &ls, 400, secs(0)).await?,
        admitted(vec![state(l, 0, 60 * S)])
    );
    assert_eq!(
        limiter.reserve("b", &ls, 1, secs(0)).await?,
        refused(60 * MS, vec![state(l, 0, 60 * S)])
    );
    // A whole burst again once the bucket has refilled, not more.
    assert_eq!(
        limiter.reserve("b", &ls, 1000, secs(3600)).await?,
        admitted(vec![state(l, 0, 60 * S)])
    );
    Ok(())
}

async fn refused_if_any_limit_is_short_and_then_nothing_changes(limiter: Limiter) -> TestResult {
    // 10 a second, and 15 an hour (one token per 240 s).
    let (fast, slow) = (per_second(10), per_hour(15));
    let ls = [fast, slow];
    assert_eq!(
        limiter.reserve("b", &ls, 10, secs(0)).await?,
        admitted(vec![state(fast, 0, S), state(slow, 5, 2400 * S)])
    );
    let before = limiter.state("b", &ls, secs(1)).await?;
    assert_eq!(
        before,
        vec![state(fast, 10, Duration::ZERO), state(slow, 5, 2399 * S)]
    );
    // Fits `fast`, not `slow` (5 + 1/240 tokens): refused, and `fast` keeps its 10.
    let decision = limiter.reserve("b", &ls, 6, secs(1)).await?;
    assert_eq!(decision, refused(239 * S, before.clone()));
    assert_eq!(limiter.state("b", &ls, secs(1)).await?, before);
    // The wait is exact: one microsecond earlier is still too early.
    let early = limiter.reserve("b", &ls, 6, at(240 * S - US)).await?;
    assert_eq!(early.retry_after, Some(US));
    assert_eq!(
        limiter.reserve("b", &ls, 6, secs(240)).await?,
        admitted(vec![state(fast, 4, 600 * MS), state(slow, 0, 3600 * S)])
    );
    Ok(())
}

async fn refunds_never_fill_above_full(limiter: Limiter) -> TestResult {
    // 100 a minute: 600 ms per token.
    let l = per_minute(100);
    let ls = [l];
    limiter.reserve("b", &ls, 50, secs(0)).await?;
    assert_eq!(
        limiter.settle("b", &ls, -30, secs(0)).await?,
        vec![state(l, 80, 12 * S)]
    );
    assert_eq!(
        limiter.settle("b", &ls, -1000, secs(0)).await?,
        vec![state(l, 100, Duration::ZERO)]
    );
    // Refunding a full bucket does not make it hold more than its amount.
    assert_eq!(
        limiter.settle("b", &ls, -5, secs(1)).await?,
        vec![state(l, 100, Duration::ZERO)]
    );
    assert!(limiter.reserve("b", &ls, 100, secs(1)).await?.admitted);
    assert!(!limiter.reserve("b", &ls, 1, secs(1)).await?.admitted);
    Ok(())
}

async fn debt_blocks_until_refill_pays_it_back(limiter: Limiter) -> TestResult {
    // One token a second.
    let l = per_minute(60);
    let ls = [l];
    limiter.reserve("b", &ls, 60, secs(0)).await?;
    // The response used 30 tokens more than reserved: charged anyway.
    assert_eq!(
        limiter.settle("b", &ls, 30, secs(0)).await?,
        vec![state(l, 0, 90 * S)]
    );
    assert_eq!(
        limiter.reserve("b", &ls, 1, secs(0)).await?,
        refused(31 * S, vec![state(l, 0, 90 * S)])
    );
    // Even a reservation of nothing waits while the bucket is in debt.
    assert_eq!(
        limiter.reserve("b", &ls, 0, secs(10)).await?,
        refused(20 * S, vec![state(l, 0, 80 * S)])
    );
    assert_eq!(
        limiter.reserve("b", &ls, 1, secs(30)).await?,
        refused(S, vec![state(l, 0, 60 * S)])
    );
    assert_eq!(
        limiter.reserve("b", &ls, 1, secs(31)).await?,
        admitted(vec![state(l, 0, 60 * S)])
    );
    Ok(())
}

async fn never_for_a_cost_above_some_amount(limiter: Limiter) -> TestResult {
    let (fast, slow) = (per_second(10), per_minute(100));
    let ls = [fast, slow];
    let never = |states| Decision {
        admitted: false,
        retry_after: None,
        never: true,
        states,
    };
    assert_eq!(
        limiter.reserve("b", &ls, 11, secs(0)).await?,
        never(vec![
            state(fast, 10, Duration::ZERO),
            state(slow, 100, Duration::ZERO)
        ])
    );
    assert!(limiter.reserve("b", &ls, 10, secs(0)).await?.admitted);
    // A never-fitting cost changes nothing and reports the current states.
    assert_eq!(
        limiter.reserve("b", &ls, u64::MAX, secs(0)).await?,
        never(vec![state(fast, 0, S), state(slow, 90, 6 * S)])
    );
    assert_eq!(
        limiter.state("b", &ls, secs(0)).await?,
        vec![state(fast, 0, S), state(slow, 90, 6 * S)]
    );
    Ok(())
}

async fn several_limits_report_remaining_and_reset(limiter: Limiter) -> TestResult {
    // 3 ms per token, and 43.2 ms per token.
    let (minute, day) = (per_minute(20_000), per_day(2_000_000));
    let ls = [minute, day];
    assert_eq!(
        limiter.reserve("b", &ls, 5000, secs(0)).await?,
        admitted(vec![
            state(minute, 15_000, 15 * S),
            state(day, 1_995_000, 216 * S)
        ])
    );
    // After 6 s the day limit has 138.9 tokens back: 4861.1 used.
    assert_eq!(
        limiter.state("b", &ls, secs(6)).await?,
        vec![state(minute, 17_000, 9 * S), state(day, 1_995_138, 210 * S)]
    );
    // Same limits in the other order: the same buckets, reported in that order.
    assert_eq!(
        limiter.state("b", &[day, minute], secs(6)).await?,
        vec![state(day, 1_995_138, 210 * S), state(minute, 17_000, 9 * S)]
    );
    Ok(())
}

async fn buckets_and_limit_configurations_are_independent(limiter: Limiter) -> TestResult {
    let l = per_second(10);
    assert!(limiter.reserve("a", &[l], 10, secs(0)).await?.admitted);
    let full = |l| vec![state(l, l.amount, Duration::ZERO)];
    assert_eq!(limiter.state("b", &[l], secs(0)).await?, full(l));
    // Bucket names are opaque: separators, braces, spaces and non-ASCII are just characters.
    for name in ["a|x", "{a}", "a b", "ä", ""] {
        assert_eq!(
            limiter.state(name, &[l], secs(0)).await?,
            full(l),
            "{name:?}"
        );
    }
    // A changed limit is a fresh bucket.
    let changed = per_second(11);
    assert_eq!(
        limiter.state("a", &[changed], secs(0)).await?,
        full(changed)
    );
    let longer = limit(10, 2 * S);
    assert_eq!(limiter.state("a", &[longer], secs(0)).await?, full(longer));
    assert_eq!(
        limiter.state("a", &[l], secs(0)).await?,
        vec![state(l, 0, S)]
    );
    Ok(())
}

async fn invalid_input_is_refused(limiter: Limiter) -> TestResult {
    let bad_limits = [
        limit(0, S),
        limit(10, Duration::ZERO),
        limit(10, Duration::from_nanos(1500)),
        limit(10, Duration::from_secs(401 * 86_400)),
        limit((1 << 48) + 1, S),
    ];
    for bad in bad_limits {
        let ls = [per_second(5), bad];
        let reserved = limiter.reserve("b", &ls, 1, secs(0)).await;
        assert!(
            matches!(reserved, Err(StoreError::Invalid(_))),
            "{bad:?}: {reserved:?}"
        );
        let settled = limiter.settle("b", &ls, 1, secs(0)).await;
        assert!(
            matches!(settled, Err(StoreError::Invalid(_))),
            "{bad:?}: {settled:?}"
        );
        let read = limiter.state("b", &ls, secs(0)).await;
        assert!(
            matches!(read, Err(StoreError::Invalid(_))),
            "{bad:?}: {read:?}"
        );
    }
    let twice = limiter
        .reserve("b", &[per_second(5), per_second(5)], 1, secs(0))
        .await;
    assert!(matches!(twice, Err(StoreError::Invalid(_))), "{twice:?}");
    let before_1970 = unix(0) - S;
    let early = limiter.reserve("b", &[per_second(5)], 1, before_1970).await;
    assert!(matches!(early, Err(StoreError::Invalid(_))), "{early:?}");
    // Nothing was taken by the refused calls.
    assert_eq!(
        limiter.state("b", &[per_second(5)], secs(0)).await?,
        vec![state(per_second(5), 5, Duration::ZERO)]
    );
    // No limits: nothing to exceed.
    assert_eq!(
        limiter.reserve("b", &[], 1_000_000, secs(0)).await?,
        admitted(vec![])
    );
    // The extremes that are allowed work.
    let extremes = [
        limit(1 << 48, S),
        limit(1, Duration::from_secs(400 * 86_400)),
        limit(3, US),
    ];
    assert!(limiter.reserve("b", &extremes, 1, secs(0)).await?.admitted);
    Ok(())
}

async fn a_lagging_clock_refills_nothing(limiter: Limiter) -> TestResult {
    let l = per_second(10);
    let ls = [l];
    limiter.reserve("b", &ls, 10, secs(5)).await?;
    // A replica whose clock is a second behind sees no refill, rather than a negative one.
    assert_eq!(limiter.state("b", &ls, secs(4)).await?[0].remaining, 0);
    assert!(!limiter.reserve("b", &ls, 1, secs(4)).await?.admitted);
    assert_eq!(limiter.state("b", &ls, ms(5100)).await?[0].remaining, 1);
    Ok(())
}

async fn concurrent_reservations_never_overdraw(limiter: Limiter) -> TestResult {
    let limiter = Arc::new(limiter);
    let ls = [per_minute(100), per_hour(1000)];
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let limiter = Arc::clone(&limiter);
        tasks.push(tokio::spawn(async move {
            limiter.reserve("hot", &ls, 7, secs(0)).await
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await??.admitted);
    }
    // No time passes: exactly what the bucket holds, 100 / 7 = 14 reservations.
    assert_eq!(admitted, 14);
    let states = limiter.state("hot", &ls, secs(0)).await?;
    assert_eq!(
        states.iter().map(|s| s.remaining).collect::<Vec<_>>(),
        [2, 902]
    );
    Ok(())
}

async fn concurrent_reserve_and_refund_leave_the_bucket_full(limiter: Limiter) -> TestResult {
    let limiter = Arc::new(limiter);
    let ls = [per_minute(50), per_day(5000)];
    let mut tasks = Vec::new();
    for n in 0..30u64 {
        let limiter = Arc::clone(&limiter);
        tasks.push(tokio::spawn(async move {
            let cost = 10 + n % 5;
            let decision = limiter.reserve("hot", &ls, cost, secs(0)).await?;
            if decision.admitted {
                // Nothing was used after all.
                limiter.settle("hot", &ls, -(cost as i64), secs(0)).await?;
            }
            Ok::<bool, StoreError>(decision.admitted)
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await??);
    }
    // A refusal needs more than 50 - 14 = 36 tokens held by others: at least 3 reservations.
    assert!(admitted >= 3, "{admitted}");
    assert_eq!(
        limiter.state("hot", &ls, secs(0)).await?,
        vec![
            state(ls[0], 50, Duration::ZERO),
            state(ls[1], 5000, Duration::ZERO)
        ]
    );
    Ok(())
}
