//! Fixtures shared by the key store tests.

use std::future::Future;
use std::time::{Duration, Instant};

use sluice_state::keys::{KeyRecord, KeyStore};
use sluice_testkit::{BoxError, RedisServer, TempDir};

pub type TestResult = Result<(), BoxError>;

/// What keeps a store's backing alive for the duration of a test; held only to be dropped at
/// its end (which removes the directory or kills the server).
#[allow(dead_code)]
pub enum Backing {
    Dir(TempDir),
    Redis(RedisServer),
}

pub async fn file_store() -> Result<(KeyStore, Backing), BoxError> {
    let dir = TempDir::new("keys")?;
    let store = KeyStore::open_file(dir.path().join("keys.json")).await?;
    Ok((store, Backing::Dir(dir)))
}

pub async fn redis_store() -> Result<(KeyStore, Backing), BoxError> {
    let server = RedisServer::start().await?;
    let store = KeyStore::connect_redis(&server.url(), "sluice").await?;
    Ok((store, Backing::Redis(server)))
}

/// A syntactically valid digest, distinct per `n`.
pub fn digest(n: u64) -> String {
    format!("{n:064x}")
}

pub fn record(id: &str, n: u64) -> KeyRecord {
    KeyRecord::new(id, digest(n), 1_700_000_000 + n)
}

/// Poll `condition` every few milliseconds until it holds; the time it took, or an error
/// naming `what` once `deadline` has passed.
pub async fn wait_until(
    what: &str,
    deadline: Duration,
    mut condition: impl FnMut() -> bool,
) -> Result<Duration, BoxError> {
    let start = Instant::now();
    loop {
        if condition() {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= deadline {
            return Err(format!("{what}: not true after {deadline:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Run `call` and return its output with how long it took.
pub async fn timed<T>(call: impl Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let output = call.await;
    (output, start.elapsed())
}
