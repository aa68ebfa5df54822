//! The behaviour of budgets, the same on both stores: spend accumulates within a UTC day or
//! month, over-limit reservations are refused, settlements land in the window they were
//! reserved in.

use std::sync::Arc;
use std::time::Duration;

use sluice_state::limits::{Budget, BudgetUsage, Limiter, Period, MAX_SPEND};
use sluice_state::StoreError;

use crate::support::{unix, TestResult};

on_both_stores!(
    spend_accumulates_and_over_limit_is_refused,
    settlements_refund_and_overrun,
    a_settlement_after_the_rollover_hits_the_reserving_day,
    a_settlement_after_the_rollover_hits_the_reserving_month,
    spending_starts_over_in_each_period,
    budgets_are_separate_per_bucket_and_period,
    invalid_budgets_are_refused,
    concurrent_reservations_never_overspend,
);

/// 2026-11-30T12:00:00Z
const NOV_30_NOON: u64 = 1_796_040_000;
/// 2026-11-30T23:59:59Z
const NOV_30_LAST: u64 = 1_796_083_199;
/// 2026-12-01T00:00:00Z
const DEC_1: u64 = 1_796_083_200;

fn usage(spent: u64, remaining: u64) -> BudgetUsage {
    BudgetUsage { spent, remaining }
}

async fn spend_accumulates_and_over_limit_is_refused(limiter: Limiter) -> TestResult {
    let budget = Budget {
        limit: 1000,
        period: Period::Day,
    };
    let now = unix(NOV_30_NOON);
    for expected in [300, 600, 900] {
        let decision = limiter.reserve_budget("t", &budget, 300, now).await?;
        assert!(decision.admitted);
        assert_eq!(
            (decision.spent, decision.remaining),
            (expected, 1000 - expected)
        );
        assert_eq!(decision.resets_at, unix(DEC_1));
        assert_eq!(decision.window.id, "2026-11-30");
    }
    // 900 + 200 > 1000: refused, and nothing is added.
    let refused = limiter.reserve_budget("t", &budget, 200, now).await?;
    assert!(!refused.admitted);
    assert_eq!((refused.spent, refused.remaining), (900, 100));
    assert_eq!(limiter.spent("t", &budget, now).await?, usage(900, 100));
    // Exactly up to the limit is fine.
    let last = limiter.reserve_budget("t", &budget, 100, now).await?;
    assert!(last.admitted);
    assert_eq!((last.spent, last.remaining), (1000, 0));
    assert!(!limiter.reserve_budget("t", &budget, 1, now).await?.admitted);
    // A reservation of nothing fits even a spent budget.
    assert!(limiter.reserve_budget("t", &budget, 0, now).await?.admitted);
    assert_eq!(limiter.spent("t", &budget, now).await?, usage(1000, 0));
    Ok(())
}

async fn settlements_refund_and_overrun(limiter: Limiter) -> TestResult {
    let budget = Budget {
        limit: 1000,
        period: Period::Day,
    };
    let now = unix(NOV_30_NOON);
    let reserved = limiter.reserve_budget("t", &budget, 800, now).await?;
    let window = &reserved.window;
    assert_eq!(
        limiter.settle_budget("t", &budget, window, -300).await?,
        usage(500, 500)
    );
    // Usage beyond the estimate is counted even past the limit.
    assert_eq!(
        limiter.settle_budget("t", &budget, window, 2000).await?,
        usage(2500, 0)
    );
    assert!(!limiter.reserve_budget("t", &budget, 0, now).await?.admitted);
    // Never below zero.
    assert_eq!(
        limiter.settle_budget("t", &budget, window, -10_000).await?,
        usage(0, 1000)
    );
    assert_eq!(limiter.spent("t", &budget, now).await?, usage(0, 1000));
    // Extreme deltas saturate instead of overflowing.
    assert_eq!(
        limiter
            .settle_budget("t", &budget, window, i64::MAX)
            .await?,
        usage(MAX_SPEND, 0)
    );
    assert_eq!(
        limiter
            .settle_budget("t", &budget, window, i64::MIN)
            .await?,
        usage(0, 1000)
    );
    Ok(())
}

async fn a_settlement_after_the_rollover_hits_the_reserving_day(limiter: Limiter) -> TestResult {
    let budget = Budget {
        limit: 1000,
        period: Period::Day,
    };
    let reserved = limiter
        .reserve_budget("t", &budget, 500, unix(NOV_30_LAST))
        .await?;
    assert_eq!(reserved.window.id, "2026-11-30");
    assert_eq!(reserved.resets_at, unix(DEC_1));
    // The response ends after midnight and used 200 more than reserved.
    let settled = limiter
        .settle_budget("t", &budget, &reserved.window, 200)
        .await?;
    assert_eq!(settled, usage(700, 300));
    assert_eq!(
        limiter.spent("t", &budget, unix(NOV_30_LAST)).await?,
        usage(700, 300)
    );
    assert_eq!(
        limiter.spent("t", &budget, unix(DEC_1)).await?,
        usage(0, 1000)
    );
    Ok(())
}

async fn a_settlement_after_the_rollover_hits_the_reserving_month(limiter: Limiter) -> TestResult {
    let budget = Budget {
        limit: 50_000_000, // micro-dollars: $50
        period: Period::Month,
    };
    let reserved = limiter
        .reserve_budget("t|usd", &budget, 1_500_000, unix(NOV_30_LAST))
        .await?;
    assert_eq!(reserved.window.id, "2026-11");
    let december = limiter
        .reserve_budget("t|usd", &budget, 1_000, unix(DEC_1))
        .await?;
    assert_eq!(december.window.id, "2026-12");
    limiter
        .settle_budget("t|usd", &budget, &reserved.window, -500_000)
        .await?;
    assert_eq!(
        limiter.spent("t|usd", &budget, unix(NOV_30_LAST)).await?,
        usage(1_000_000, 49_000_000)
    );
    assert_eq!(
        limiter.spent("t|usd", &budget, unix(DEC_1)).await?,
        usage(1_000, 49_999_000)
    );
    Ok(())
}

async fn spending_starts_over_in_each_period(limiter: Limiter) -> TestResult {
    let day = Budget {
        limit: 100,
        period: Period::Day,
    };
    assert!(
        limiter
            .reserve_budget("t", &day, 100, unix(NOV_30_NOON))
            .await?
            .admitted
    );
    assert!(
        !limiter
            .reserve_budget("t", &day, 1, unix(NOV_30_LAST))
            .await?
            .admitted
    );
    let next = limiter.reserve_budget("t", &day, 100, unix(DEC_1)).await?;
    assert!(next.admitted);
    assert_eq!(next.window.id, "2026-12-01");
    assert_eq!(next.resets_at, unix(DEC_1 + 86_400));
    Ok(())
}

async fn budgets_are_separate_per_bucket_and_period(limiter: Limiter) -> TestResult {
    let now = unix(NOV_30_NOON);
    let day = Budget {
        limit: 1000,
        period: Period::Day,
    };
    let month = Budget {
        limit: 1000,
        period: Period::Month,
    };
    limiter.reserve_budget("a", &day, 10, now).await?;
    limiter.reserve_budget("a", &month, 20, now).await?;
    limiter.reserve_budget("b", &day, 30, now).await?;
    assert_eq!(limiter.spent("a", &day, now).await?, usage(10, 990));
    assert_eq!(limiter.spent("a", &month, now).await?, usage(20, 980));
    assert_eq!(limiter.spent("b", &day, now).await?, usage(30, 970));
    assert_eq!(limiter.spent("b", &month, now).await?, usage(0, 1000));
    // A changed limit keeps what was spent.
    let lower = Budget { limit: 15, ..day };
    assert_eq!(limiter.spent("a", &lower, now).await?, usage(10, 5));
    assert!(!limiter.reserve_budget("a", &lower, 6, now).await?.admitted);
    Ok(())
}

async fn invalid_budgets_are_refused(limiter: Limiter) -> TestResult {
    let now = unix(NOV_30_NOON);
    let day = Budget {
        limit: 1000,
        period: Period::Day,
    };
    let huge = Budget {
        limit: MAX_SPEND + 1,
        period: Period::Day,
    };
    let invalid = |result: Result<_, StoreError>| matches!(result, Err(StoreError::Invalid(_)));
    assert!(invalid(
        limiter.reserve_budget("t", &huge, 1, now).await.map(|_| ())
    ));
    assert!(invalid(limiter.spent("t", &huge, now).await.map(|_| ())));
    assert!(invalid(
        limiter
            .reserve_budget("t", &day, MAX_SPEND + 1, now)
            .await
            .map(|_| ())
    ));
    let before_1970 = unix(0) - Duration::from_secs(1);
    assert!(invalid(
        limiter
            .reserve_budget("t", &day, 1, before_1970)
            .await
            .map(|_| ())
    ));
    // A month window cannot settle a day budget.
    let month_window = Period::Month.window(now)?;
    assert!(invalid(
        limiter
            .settle_budget("t", &day, &month_window, 5)
            .await
            .map(|_| ())
    ));
    assert_eq!(limiter.spent("t", &day, now).await?, usage(0, 1000));
    Ok(())
}

async fn concurrent_reservations_never_overspend(limiter: Limiter) -> TestResult {
    let limiter = Arc::new(limiter);
    let budget = Budget {
        limit: 1000,
        period: Period::Month,
    };
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let limiter = Arc::clone(&limiter);
        tasks.push(tokio::spawn(async move {
            limiter
                .reserve_budget("hot", &budget, 30, unix(NOV_30_NOON))
                .await
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await??.admitted);
    }
    assert_eq!(admitted, 33);
    assert_eq!(
        limiter.spent("hot", &budget, unix(NOV_30_NOON)).await?,
        usage(990, 10)
    );
    Ok(())
}
