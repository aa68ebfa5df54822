//! Redis going away (dead or hung) and coming back: every operation fails fast with
//! `Unavailable`, and works again once Redis is back.

use std::time::{Duration, SystemTime};

use sluice_state::limits::{Budget, Limiter, Period};
use sluice_state::StoreError;
use sluice_testkit::RedisServer;

use crate::support::{per_minute, redis_limiter, secs, timed, TestResult};

/// The connection's command timeout (1 s) plus scheduling slack on a busy 2-core machine.
const FAIL_WITHIN: Duration = Duration::from_millis(1500);

const DAY: Budget = Budget {
    limit: 1000,
    period: Period::Day,
};

/// Every operation of `limiter` fails with `Unavailable` within [`FAIL_WITHIN`].
async fn every_operation_is_unavailable(limiter: &Limiter) -> TestResult {
    let ls = [per_minute(100)];
    let now = SystemTime::now();
    let window = Period::Day.window(now)?;
    let results = [
        (
            "reserve",
            timed(async { limiter.reserve("b", &ls, 1, secs(1)).await.map(|_| ()) }).await,
        ),
        (
            "settle",
            timed(async { limiter.settle("b", &ls, 1, secs(1)).await.map(|_| ()) }).await,
        ),
        (
            "state",
            timed(async { limiter.state("b", &ls, secs(1)).await.map(|_| ()) }).await,
        ),
        (
            "reserve_budget",
            timed(async { limiter.reserve_budget("b", &DAY, 1, now).await.map(|_| ()) }).await,
        ),
        (
            "settle_budget",
            timed(async {
                limiter
                    .settle_budget("b", &DAY, &window, 1)
                    .await
                    .map(|_| ())
            })
            .await,
        ),
        (
            "spent",
            timed(async { limiter.spent("b", &DAY, now).await.map(|_| ()) }).await,
        ),
    ];
    for (what, (result, took)) in results {
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{what}: {result:?}"
        );
        assert!(took < FAIL_WITHIN, "{what} took {took:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_stopped_redis_fails_fast_and_a_restarted_one_works_again() -> TestResult {
    let mut server = RedisServer::start().await?;
    let limiter = redis_limiter(&server).await?;
    let ls = [per_minute(100)];
    limiter.reserve("b", &ls, 40, secs(0)).await?;

    server.stop().await?;
    every_operation_is_unavailable(&limiter).await?;

    // Back, and empty (no persistence): the bucket starts full, the scripts are reloaded.
    server.restart().await?;
    let decision = limiter.reserve("b", &ls, 100, secs(0)).await?;
    assert!(decision.admitted, "{decision:?}");
    assert!(
        limiter
            .reserve_budget("b", &DAY, 1, SystemTime::now())
            .await?
            .admitted
    );
    Ok(())
}

#[tokio::test]
async fn a_hung_redis_cannot_block_callers() -> TestResult {
    let mut server = RedisServer::start().await?;
    let limiter = redis_limiter(&server).await?;
    let ls = [per_minute(100)];
    limiter.reserve("b", &ls, 40, secs(0)).await?;

    server.pause()?;
    every_operation_is_unavailable(&limiter).await?;

    // Resumed with its data: the 40 reserved before are still taken. The reserve of 1 and the
    // settle of +1 that timed out had already been sent, so Redis may have run them when it
    // woke: the caller cannot know, which is why a timed-out reservation must be treated as
    // possibly taken. At 1 s, 1.67 tokens have refilled: 61 left, or 60 or 59 after those.
    server.resume()?;
    let states = limiter.state("b", &ls, secs(1)).await?;
    assert!((59..=61).contains(&states[0].remaining), "{states:?}");
    assert!(limiter.reserve("b", &ls, 10, secs(0)).await?.admitted);
    Ok(())
}
