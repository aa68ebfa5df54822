//! Rate limits and budgets against both stores: in memory, and real `redis-server` processes
//! started by the testkit (one per test, so tests run in parallel). Time is always injected.

/// Generate one `#[tokio::test]` per store for each behaviour named: `memory::<name>` and
/// `redis::<name>`, each calling `<name>(limiter)` on a fresh store.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use crate::support::{memory, TestResult};
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> TestResult {
                    let (limiter, _backing) = memory();
                    super::$name(limiter).await
                }
            )*
        }
        mod redis {
            use crate::support::{redis, TestResult};
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> TestResult {
                    let (limiter, _backing) = redis().await?;
                    super::$name(limiter).await
                }
            )*
        }
    };
}

mod budgets;
mod calendar;
mod differential;
mod gcra_model;
mod memory_store;
mod outage;
mod rates;
mod redis_store;
mod replicas;
mod support;
