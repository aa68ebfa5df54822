//! Rate-limit decisions: the in-memory store (what every request of a `Local` policy pays) and,
//! when `redis-server` is installed, the Redis store over loopback.
//!
//! Run with `cargo bench -p sluice-state --bench limits`. Target: an in-memory decision (one
//! reservation against a bucket's limits) within 1 µs. A Redis reservation is one EVALSHA (one
//! round trip); its cost here is loopback latency plus the script.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use divan::{black_box, Bencher};
use sluice_state::limits::{Budget, Limit, Limiter, Period};

fn main() {
    divan::main();
}

const MINUTE: Limit = Limit {
    amount: 1_000_000_000,
    period: Duration::from_secs(60),
};
const DAY: Limit = Limit {
    amount: 1_000_000_000_000,
    period: Duration::from_secs(86_400),
};

/// A clock that moves 1 µs per call, so buckets refill a little between decisions as they
/// would under real traffic.
fn now() -> SystemTime {
    static TICK: AtomicU64 = AtomicU64::new(0);
    UNIX_EPOCH
        + Duration::from_secs(1_795_305_600)
        + Duration::from_micros(TICK.fetch_add(1, Ordering::Relaxed))
}

/// Polls a future of the in-memory store, which never waits: no runtime needed.
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the in-memory store never waits"),
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    });
    RT.block_on(f)
}

#[divan::bench]
fn memory_reserve_one_limit(b: Bencher) {
    let l = Limiter::memory();
    let limits = [MINUTE];
    b.bench(|| ready(l.reserve(black_box("ns/p/r|tenant=acme"), &limits, 1200, now())));
}

#[divan::bench]
fn memory_reserve_two_limits(b: Bencher) {
    let l = Limiter::memory();
    let limits = [MINUTE, DAY];
    b.bench(|| ready(l.reserve(black_box("ns/p/r|tenant=acme"), &limits, 1200, now())));
}

#[divan::bench]
fn memory_reserve_then_settle(b: Bencher) {
    let l = Limiter::memory();
    let limits = [MINUTE, DAY];
    b.bench(|| {
        let t = now();
        let d = ready(l.reserve("ns/p/r|tenant=acme", &limits, 1200, t));
        let s = ready(l.settle("ns/p/r|tenant=acme", &limits, -900, t));
        (d, s)
    });
}

/// 10 000 tenants in turn: every decision touches another bucket.
#[divan::bench]
fn memory_reserve_10k_buckets(b: Bencher) {
    let l = Limiter::memory();
    let limits = [MINUTE];
    let names: Vec<String> = (0..10_000).map(|i| format!("ns/p/r|tenant=t{i}")).collect();
    let mut i = 0;
    b.bench_local(|| {
        i = (i + 1) % names.len();
        ready(l.reserve(&names[i], &limits, 1200, now()))
    });
}

#[divan::bench]
fn memory_reserve_budget(b: Bencher) {
    let l = Limiter::memory();
    let budget = Budget {
        limit: 1 << 50,
        period: Period::Month,
    };
    b.bench(|| ready(l.reserve_budget(black_box("ns/p/b|tenant=acme"), &budget, 1200, now())));
}

/// The Redis store on loopback; skipped when `redis-server` is not installed.
#[divan::bench(sample_count = 20, sample_size = 50)]
fn redis_reserve_then_settle(b: Bencher) {
    type Store = Option<(sluice_testkit::RedisServer, Arc<Limiter>)>;
    static SERVER: LazyLock<Store> = LazyLock::new(|| {
        block_on(async {
            let server = sluice_testkit::RedisServer::start().await.ok()?;
            let conn = sluice_state::redis::RedisConn::connect(&server.url())
                .await
                .ok()?;
            let l = Limiter::redis(Arc::new(conn), "bench").await.ok()?;
            Some((server, Arc::new(l)))
        })
    });
    let Some((_, l)) = SERVER.as_ref() else {
        eprintln!("redis-server not found: Redis bench skipped");
        return;
    };
    let limits = [MINUTE, DAY];
    b.bench(|| {
        block_on(async {
            let t = now();
            let d = l.reserve("ns/p/r|tenant=acme", &limits, 1200, t).await;
            let s = l.settle("ns/p/r|tenant=acme", &limits, -900, t).await;
            (d, s)
        })
    });
}
