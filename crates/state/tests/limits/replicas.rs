//! Several replicas sharing one Redis, each with its own connection: reservations racing from
//! all of them are decided atomically, so together they never admit more than a bucket holds.

use std::sync::Arc;

use sluice_state::limits::{Budget, Limiter, Period};
use sluice_testkit::{BoxError, RedisServer};

use crate::support::{per_hour, per_minute, redis_limiter, secs, TestResult};

async fn replicas(server: &RedisServer, n: usize) -> Result<Vec<Arc<Limiter>>, BoxError> {
    let mut replicas = Vec::new();
    for _ in 0..n {
        replicas.push(Arc::new(redis_limiter(server).await?));
    }
    Ok(replicas)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_replicas_never_admit_more_than_the_bucket_holds() -> TestResult {
    let server = RedisServer::start().await?;
    let replicas = replicas(&server, 2).await?;
    let ls = [per_minute(100), per_hour(1000)];
    for round in 0..5u64 {
        let bucket = format!("hot-{round}");
        let mut tasks = Vec::new();
        for n in 0..40 {
            let limiter = Arc::clone(&replicas[n % 2]);
            let bucket = bucket.clone();
            tasks.push(tokio::spawn(async move {
                limiter.reserve(&bucket, &ls, 7, secs(round)).await
            }));
        }
        let mut admitted = [0usize; 2];
        for (n, task) in tasks.into_iter().enumerate() {
            admitted[n % 2] += usize::from(task.await??.admitted);
        }
        // 100 / 7 = 14, whichever replica got them.
        assert_eq!(admitted[0] + admitted[1], 14, "round {round}: {admitted:?}");
        let states = replicas[0].state(&bucket, &ls, secs(round)).await?;
        assert_eq!(states[0].remaining, 2, "round {round}");
        assert_eq!(states[1].remaining, 902, "round {round}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_settlements_are_all_counted() -> TestResult {
    let server = RedisServer::start().await?;
    let replicas = replicas(&server, 3).await?;
    let ls = [per_minute(1000)];
    // Reserve 300 in one go, then 30 settlements of -10 and +3 each from three replicas.
    assert!(replicas[0].reserve("b", &ls, 300, secs(0)).await?.admitted);
    let mut tasks = Vec::new();
    for n in 0..30 {
        let limiter = Arc::clone(&replicas[n % 3]);
        tasks.push(tokio::spawn(async move {
            limiter.settle("b", &ls, -10, secs(0)).await?;
            limiter.settle("b", &ls, 3, secs(0)).await
        }));
    }
    for task in tasks {
        task.await??;
    }
    // 300 − 30 × 7 = 90 used.
    let states = replicas[1].state("b", &ls, secs(0)).await?;
    assert_eq!(states[0].remaining, 910);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_replicas_never_overspend_a_budget() -> TestResult {
    let server = RedisServer::start().await?;
    let replicas = replicas(&server, 2).await?;
    let budget = Budget {
        limit: 1000,
        period: Period::Day,
    };
    let mut tasks = Vec::new();
    for n in 0..40 {
        let limiter = Arc::clone(&replicas[n % 2]);
        tasks.push(tokio::spawn(async move {
            limiter.reserve_budget("hot", &budget, 30, secs(0)).await
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await??.admitted);
    }
    assert_eq!(admitted, 33);
    assert_eq!(replicas[1].spent("hot", &budget, secs(0)).await?.spent, 990);
    Ok(())
}
