//! Redis going away (dead or hung) and coming back: calls fail fast with `Unavailable`, the
//! watcher keeps serving the last records and recovers on its own.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_state::keys::{KeyStore, KeyWatch};
use sluice_state::StoreError;
use sluice_testkit::RedisServer;

use crate::support::{record, timed, wait_until, TestResult};

/// The store's command timeout plus scheduling slack on a busy 2-core machine.
const FAIL_WITHIN: Duration = Duration::from_millis(1500);

fn is_unavailable<T>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Unavailable(_)))
}

#[tokio::test]
async fn watcher_survives_a_redis_restart() -> TestResult {
    let mut server = RedisServer::start().await?;
    let store = Arc::new(KeyStore::connect_redis(&server.url(), "sluice").await?);
    store.create(record("k1", 1)).await?;
    let watch = KeyWatch::start(Arc::clone(&store), Duration::from_millis(200), |_| {}).await?;
    let before = watch.records();

    server.stop().await?;
    let (listed, took) = timed(store.list()).await;
    assert!(is_unavailable(&listed), "{listed:?}");
    assert!(took < FAIL_WITHIN, "list took {took:?}");
    let (created, took) = timed(store.create(record("k2", 2))).await;
    assert!(is_unavailable(&created), "{created:?}");
    assert!(took < FAIL_WITHIN, "create took {took:?}");

    wait_until("watch unhealthy", Duration::from_secs(3), || {
        !watch.healthy()
    })
    .await?;
    assert_eq!(
        watch.records(),
        before,
        "the last good records stay in effect"
    );
    assert!(is_unavailable(&watch.refresh().await));
    assert_eq!(watch.records(), before);

    // Redis comes back empty (no persistence): the watcher reconnects by itself and adopts
    // what the store now holds, then follows new changes again.
    server.restart().await?;
    wait_until("watch healthy", Duration::from_secs(5), || watch.healthy()).await?;
    wait_until("watch reloaded", Duration::from_secs(1), || {
        watch.records().is_empty()
    })
    .await?;
    store.create(record("k3", 3)).await?;
    wait_until("new key seen", Duration::from_secs(1), || {
        *watch.records() == vec![record("k3", 3)]
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_hung_redis_cannot_block_callers() -> TestResult {
    let mut server = RedisServer::start().await?;
    let store = Arc::new(KeyStore::connect_redis(&server.url(), "sluice").await?);
    store.create(record("k1", 1)).await?;
    let watch = KeyWatch::start(Arc::clone(&store), Duration::from_millis(200), |_| {}).await?;

    server.pause()?;
    for (what, result) in [
        ("version", timed(store.version()).await),
        ("list", timed(async { store.list().await.map(|_| 0) }).await),
        (
            "revoke",
            timed(async { store.revoke("k1", 5).await.map(|_| 0) }).await,
        ),
    ] {
        let (result, took) = result;
        assert!(is_unavailable(&result), "{what}: {result:?}");
        assert!(took < FAIL_WITHIN, "{what} took {took:?}");
    }
    let (refreshed, took) = timed(watch.refresh()).await;
    assert!(is_unavailable(&refreshed), "{refreshed:?}");
    assert!(
        took < FAIL_WITHIN * 2,
        "refresh (version + snapshot) took {took:?}"
    );
    assert!(!watch.healthy());
    assert_eq!(*watch.records(), vec![record("k1", 1)]);

    server.resume()?;
    wait_until("watch healthy", Duration::from_secs(5), || watch.healthy()).await?;
    store.revoke("k1", 6).await?;
    wait_until("revocation seen", Duration::from_secs(1), || {
        watch.records()[0].revoked_at == Some(6)
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_watch_cannot_start_on_an_unreachable_store() -> TestResult {
    let mut server = RedisServer::start().await?;
    let store = Arc::new(KeyStore::connect_redis(&server.url(), "sluice").await?);
    server.stop().await?;
    let (started, took) = timed(KeyWatch::start(store, Duration::from_millis(200), |_| {})).await;
    assert!(matches!(started, Err(StoreError::Unavailable(_))));
    assert!(took < FAIL_WITHIN, "took {took:?}");
    Ok(())
}

/// Log lines written through a `tracing` subscriber, kept in memory.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut bytes = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
        bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_outage_is_logged_once_and_so_is_the_recovery() -> TestResult {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Thread-local, and this test's runtime (watcher task included) runs on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut server = RedisServer::start().await?;
    let store = Arc::new(KeyStore::connect_redis(&server.url(), "sluice").await?);
    let watch = KeyWatch::start(Arc::clone(&store), Duration::from_millis(200), |_| {}).await?;
    server.stop().await?;
    for _ in 0..3 {
        assert!(is_unavailable(&watch.refresh().await));
    }
    server.restart().await?;
    wait_until("watch healthy", Duration::from_secs(5), || watch.healthy()).await?;
    watch.refresh().await?;

    let text = log.text();
    let count = |needle: &str| text.matches(needle).count();
    assert_eq!(count("API key store unreachable"), 1, "{text}");
    assert_eq!(count("API key store reachable again"), 1, "{text}");
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains(&store.describe()), "{text}");
    Ok(())
}
