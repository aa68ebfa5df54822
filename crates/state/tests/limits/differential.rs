//! Memory and Redis side by side: the same random operations (fixed seed) must give exactly
//! the same answers, which checks that the Lua scripts mirror `gcra.rs` and the budget
//! arithmetic step for step, including limits with coarse ticks and huge capacities.
//!
//! The injected clock runs ahead of the real one (real elapsed time plus random jumps), never
//! behind it: Redis expires keys on its own clock, so a key must never vanish while the
//! injected clock still sees its bucket short, which would be a difference of the harness, not
//! of the stores.

use std::time::{Duration, Instant, SystemTime};

use sluice_state::limits::{Budget, Limit, Limiter, Period, Window, MAX_SPEND};
use sluice_testkit::RedisServer;

use crate::support::{
    limit, per_day, per_hour, per_minute, per_second, redis_limiter, Rng, TestResult,
};

const STEPS: usize = 1500;

fn limit_pool() -> Vec<Limit> {
    vec![
        per_second(10),
        limit(7, Duration::from_secs(3)),
        per_hour(15),
        per_minute(20_000),
        per_day(2_000_000),
        // 1 ms ticks.
        per_day(1_999_993),
        // 1 s ticks, capacity close to 2^48.
        limit(1 << 40, Duration::from_secs(3600)),
        limit(1 << 48, Duration::from_secs(1)),
        limit(3, Duration::from_micros(7)),
        limit(1_000_003, Duration::from_secs(400 * 86_400)),
    ]
}

fn budget_pool() -> Vec<Budget> {
    vec![
        Budget {
            limit: 1000,
            period: Period::Day,
        },
        Budget {
            limit: 50_000_000,
            period: Period::Month,
        },
        Budget {
            limit: MAX_SPEND,
            period: Period::Day,
        },
    ]
}

#[tokio::test]
async fn memory_and_redis_give_the_same_answers() -> TestResult {
    let server = RedisServer::start().await?;
    let redis = redis_limiter(&server).await?;
    let memory = Limiter::memory();
    let mut rng = Rng::new(0xd1ff_2026);
    let limits = limit_pool();
    let budgets = budget_pool();
    let buckets = ["a", "b|tenant=x", "{c}"];
    let (real_start, clock_start) = (Instant::now(), SystemTime::now());
    let mut jumped = Duration::ZERO;
    // Windows of reservations, for settlements (only while still settleable).
    let mut windows: Vec<(usize, Window)> = Vec::new();

    for step in 0..STEPS {
        jumped += match rng.below(10) {
            0..=3 => Duration::ZERO,
            4..=5 => Duration::from_micros(rng.below(1000)),
            6..=7 => Duration::from_micros(rng.below(2_000_000)),
            8 => Duration::from_micros(rng.below(120_000_000)),
            _ => Duration::from_micros(rng.below(5 * 86_400_000_000)),
        };
        let now = clock_start + real_start.elapsed() + jumped;
        let bucket = *rng.pick(&buckets);
        let mut chosen: Vec<Limit> = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let l = *rng.pick(&limits);
            if !chosen.contains(&l) {
                chosen.push(l);
            }
        }
        let smallest = chosen.iter().map(|l| l.amount).min().unwrap_or(1);
        let budget_index = rng.below(budgets.len() as u64) as usize;
        let budget = budgets[budget_index];
        let context = format!("step {step}: {bucket} {chosen:?}");

        match rng.below(6) {
            0 | 1 => {
                let cost = match rng.below(8) {
                    0 => smallest + 1,
                    1 => 0,
                    2..=4 => rng.below(smallest + 1),
                    _ => rng.below(smallest / 8 + 2).min(smallest),
                };
                let m = memory.reserve(bucket, &chosen, cost, now).await?;
                let r = redis.reserve(bucket, &chosen, cost, now).await?;
                assert_eq!(m, r, "{context}: reserve {cost}");
            }
            2 => {
                let bound = i64::try_from(smallest.saturating_mul(2)).unwrap_or(i64::MAX);
                let delta = match rng.below(20) {
                    0 => i64::MAX,
                    1 => i64::MIN,
                    _ => rng.range(-bound, bound),
                };
                let m = memory.settle(bucket, &chosen, delta, now).await?;
                let r = redis.settle(bucket, &chosen, delta, now).await?;
                assert_eq!(m, r, "{context}: settle {delta}");
            }
            3 => {
                let m = memory.state(bucket, &chosen, now).await?;
                let r = redis.state(bucket, &chosen, now).await?;
                assert_eq!(m, r, "{context}: state");
            }
            4 => {
                let amount = rng.below(budget.limit.min(1 << 40) / 3 + 2);
                let m = memory.reserve_budget(bucket, &budget, amount, now).await?;
                let r = redis.reserve_budget(bucket, &budget, amount, now).await?;
                assert_eq!(m, r, "{context}: reserve_budget {budget:?} {amount}");
                windows.push((budget_index, m.window));
            }
            _ => {
                // Settle a past reservation whose counter is still kept (window end + grace).
                windows.retain(|(_, w)| w.end + Duration::from_secs(86_400) > now);
                let Some((index, window)) = windows
                    .get(rng.below(windows.len() as u64 + 1) as usize)
                    .cloned()
                else {
                    let m = memory.spent(bucket, &budget, now).await?;
                    let r = redis.spent(bucket, &budget, now).await?;
                    assert_eq!(m, r, "{context}: spent {budget:?}");
                    continue;
                };
                let budget = budgets[index];
                let delta = match rng.below(10) {
                    0 => i64::MIN,
                    1 => i64::MAX,
                    _ => rng.range(-1000, 1000),
                };
                let m = memory
                    .settle_budget(bucket, &budget, &window, delta)
                    .await?;
                let r = redis.settle_budget(bucket, &budget, &window, delta).await?;
                assert_eq!(m, r, "{context}: settle_budget {window:?} {delta}");
            }
        }
    }
    Ok(())
}
