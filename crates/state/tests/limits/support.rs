//! Fixtures shared by the limiter tests: stores, an injected clock, a seeded random source.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice_state::limits::{Limit, Limiter};
use sluice_state::redis::RedisConn;
use sluice_testkit::{BoxError, RedisServer};

pub type TestResult = Result<(), BoxError>;

/// 2026-11-22T00:00:00Z in seconds since the epoch (a day boundary, so every tick size
/// divides it).
pub const T0_SECS: u64 = 1_795_305_600;

/// What keeps a store's backing alive for the duration of a test.
#[allow(dead_code)]
pub enum Backing {
    None,
    Redis(RedisServer),
}

pub fn memory() -> (Limiter, Backing) {
    (Limiter::memory(), Backing::None)
}

pub async fn redis() -> Result<(Limiter, Backing), BoxError> {
    let server = RedisServer::start().await?;
    let limiter = redis_limiter(&server).await?;
    Ok((limiter, Backing::Redis(server)))
}

/// A limiter with its own connection, as one replica would have.
pub async fn redis_limiter(server: &RedisServer) -> Result<Limiter, BoxError> {
    let conn = RedisConn::connect(&server.url()).await?;
    Ok(Limiter::redis(Arc::new(conn), "sluice").await?)
}

/// A raw connection for inspecting keys.
pub async fn raw(server: &RedisServer) -> Result<RedisConn, BoxError> {
    Ok(RedisConn::connect(&server.url()).await?)
}

/// The injected clock: `T0` plus an offset.
pub fn at(offset: Duration) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0_SECS) + offset
}

pub fn secs(s: u64) -> SystemTime {
    at(Duration::from_secs(s))
}

pub fn ms(ms: u64) -> SystemTime {
    at(Duration::from_millis(ms))
}

/// An instant given as seconds since the epoch.
pub fn unix(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s)
}

pub fn limit(amount: u64, period: Duration) -> Limit {
    Limit::new(amount, period)
}

pub fn per_second(amount: u64) -> Limit {
    limit(amount, Duration::from_secs(1))
}

pub fn per_minute(amount: u64) -> Limit {
    limit(amount, Duration::from_secs(60))
}

pub fn per_hour(amount: u64) -> Limit {
    limit(amount, Duration::from_secs(3600))
}

pub fn per_day(amount: u64) -> Limit {
    limit(amount, Duration::from_secs(86_400))
}

/// SplitMix64: a fixed seed gives the same sequence on every run and platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = u64::try_from(hi - lo).unwrap_or(0) + 1;
        lo + i64::try_from(self.below(span)).unwrap_or(0)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Poll `condition` until it holds; the time it took, or an error naming `what` after
/// `deadline`.
pub async fn wait_until<F, Fut>(
    what: &str,
    deadline: Duration,
    mut condition: F,
) -> Result<Duration, BoxError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, BoxError>>,
{
    let start = Instant::now();
    loop {
        if condition().await? {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= deadline {
            return Err(format!("{what}: not true after {deadline:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Run `call` and return its output with how long it took.
pub async fn timed<T>(call: impl Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let output = call.await;
    (output, start.elapsed())
}
