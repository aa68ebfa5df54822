//! The behaviour every key store must have, run against the file store and the Redis store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_state::keys::{KeyRecord, KeyStore, KeyWatch};
use sluice_state::StoreError;

use crate::support::{digest, record, TestResult};

/// Generate one `#[tokio::test]` per backend for each behaviour below.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod file {
            use crate::support::{file_store, TestResult};
            $(
                #[tokio::test]
                async fn $name() -> TestResult {
                    let (store, _backing) = file_store().await?;
                    super::$name(std::sync::Arc::new(store)).await
                }
            )*
        }
        mod redis {
            use crate::support::{redis_store, TestResult};
            $(
                #[tokio::test]
                async fn $name() -> TestResult {
                    let (store, _backing) = redis_store().await?;
                    super::$name(std::sync::Arc::new(store)).await
                }
            )*
        }
    };
}

suite!(
    starts_empty,
    create_then_list_sorted_by_id,
    duplicate_id_is_exists,
    rotate_replaces_the_digest,
    unknown_ids_are_not_found,
    revoke_is_idempotent,
    revoked_keys_cannot_rotate,
    version_increases_on_every_change,
    invalid_input_is_refused,
    snapshot_matches_list_and_version,
    watch_loads_at_start_and_refresh_sees_own_write,
);

async fn starts_empty(store: Arc<KeyStore>) -> TestResult {
    assert_eq!(store.list().await?, Vec::<KeyRecord>::new());
    assert_eq!(store.version().await?, 0);
    Ok(())
}

async fn create_then_list_sorted_by_id(store: Arc<KeyStore>) -> TestResult {
    let mut full = record("team-b", 2);
    full.tenant = Some("acme".into());
    full.user = Some("ada".into());
    full.labels.insert("env".into(), "prod".into());
    full.models = vec!["gpt-4o*".into(), "claude-*".into()];
    full.expires_at = Some(u64::MAX);
    let plain = record("team-a", 1);
    store.create(full.clone()).await?;
    store.create(plain.clone()).await?;
    // Every field round-trips, including a timestamp that a double could not hold.
    assert_eq!(store.list().await?, vec![plain, full]);
    Ok(())
}

async fn duplicate_id_is_exists(store: Arc<KeyStore>) -> TestResult {
    let first = record("dup", 1);
    store.create(first.clone()).await?;
    let version = store.version().await?;
    let second = store.create(record("dup", 2)).await;
    assert_eq!(second, Err(StoreError::Exists("dup".into())));
    assert_eq!(store.list().await?, vec![first]);
    assert_eq!(
        store.version().await?,
        version,
        "a refused create is no change"
    );
    Ok(())
}

async fn rotate_replaces_the_digest(store: Arc<KeyStore>) -> TestResult {
    let mut original = record("k", 1);
    original.tenant = Some("acme".into());
    store.create(original.clone()).await?;
    let before = store.version().await?;

    let rotated = store.rotate("k", &digest(9), 500).await?;
    let expected = KeyRecord {
        digest: digest(9),
        rotated_at: Some(500),
        ..original
    };
    assert_eq!(rotated, expected);
    assert_eq!(store.list().await?, vec![expected.clone()]);
    assert!(store.version().await? > before);

    let again = store.rotate("k", &digest(10), 600).await?;
    assert_eq!((again.digest, again.rotated_at), (digest(10), Some(600)));
    Ok(())
}

async fn unknown_ids_are_not_found(store: Arc<KeyStore>) -> TestResult {
    store.create(record("known", 1)).await?;
    let version = store.version().await?;
    assert_eq!(
        store.rotate("ghost", &digest(2), 5).await,
        Err(StoreError::NotFound("ghost".into()))
    );
    assert_eq!(
        store.revoke("ghost", 5).await,
        Err(StoreError::NotFound("ghost".into()))
    );
    assert_eq!(store.version().await?, version);
    Ok(())
}

async fn revoke_is_idempotent(store: Arc<KeyStore>) -> TestResult {
    let original = record("k", 1);
    store.create(original.clone()).await?;
    let revoked = store.revoke("k", 100).await?;
    let expected = KeyRecord {
        revoked_at: Some(100),
        ..original
    };
    assert_eq!(revoked, expected);
    let version = store.version().await?;

    // The second revocation changes nothing: the first time stays, the version does not move.
    assert_eq!(store.revoke("k", 200).await?, expected);
    assert_eq!(store.version().await?, version);
    // Revoked records stay listed (the admin API shows them).
    assert_eq!(store.list().await?, vec![expected]);
    Ok(())
}

async fn revoked_keys_cannot_rotate(store: Arc<KeyStore>) -> TestResult {
    store.create(record("k", 1)).await?;
    let revoked = store.revoke("k", 100).await?;
    assert_eq!(
        store.rotate("k", &digest(2), 200).await,
        Err(StoreError::Revoked("k".into()))
    );
    assert_eq!(store.list().await?, vec![revoked]);
    Ok(())
}

async fn version_increases_on_every_change(store: Arc<KeyStore>) -> TestResult {
    let mut last = store.version().await?;
    let mut changes = 0;
    let mut check = |now: u64, what: &str| {
        assert!(now > last, "{what}: version {now} not above {last}");
        last = now;
        changes += 1;
    };
    store.create(record("a", 1)).await?;
    check(store.version().await?, "create a");
    store.create(record("b", 2)).await?;
    check(store.version().await?, "create b");
    store.rotate("a", &digest(3), 10).await?;
    check(store.version().await?, "rotate a");
    store.revoke("b", 11).await?;
    check(store.version().await?, "revoke b");
    assert_eq!(changes, 4);
    Ok(())
}

async fn invalid_input_is_refused(store: Arc<KeyStore>) -> TestResult {
    let bad_digest = KeyRecord::new("k", "not-a-digest", 1);
    assert!(matches!(
        store.create(bad_digest).await,
        Err(StoreError::Invalid(_))
    ));
    let bad_id = KeyRecord::new("a key", digest(1), 1);
    assert!(matches!(
        store.create(bad_id).await,
        Err(StoreError::Invalid(_))
    ));
    store.create(record("k", 1)).await?;
    let version = store.version().await?;
    assert!(matches!(
        store.rotate("k", &digest(0xab).to_uppercase(), 5).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.list().await?, vec![record("k", 1)]);
    assert_eq!(store.version().await?, version);
    Ok(())
}

async fn snapshot_matches_list_and_version(store: Arc<KeyStore>) -> TestResult {
    store.create(record("b", 2)).await?;
    store.create(record("a", 1)).await?;
    let snapshot = store.snapshot().await?;
    assert_eq!(snapshot.version, store.version().await?);
    assert_eq!(snapshot.records, store.list().await?);
    assert_eq!(snapshot.records, vec![record("a", 1), record("b", 2)]);
    Ok(())
}

async fn watch_loads_at_start_and_refresh_sees_own_write(store: Arc<KeyStore>) -> TestResult {
    store.create(record("before", 1)).await?;
    let seen: Arc<Mutex<Vec<Arc<Vec<KeyRecord>>>>> = Arc::default();
    let sink = Arc::clone(&seen);
    // An interval so long that only start() and refresh() can load anything in this test.
    let watch = KeyWatch::start(
        Arc::clone(&store),
        Duration::from_secs(3600),
        move |records| {
            if let Ok(mut seen) = sink.lock() {
                seen.push(records);
            }
        },
    )
    .await?;
    assert_eq!(*watch.records(), vec![record("before", 1)]);
    assert!(watch.healthy());

    store.create(record("after", 2)).await?;
    assert_eq!(
        watch.records().len(),
        1,
        "no reload without a poll or refresh"
    );
    watch.refresh().await?;
    let expected = vec![record("after", 2), record("before", 1)];
    assert_eq!(*watch.records(), expected);

    let seen = seen.lock().map_err(|e| e.to_string())?;
    let seen: Vec<Vec<KeyRecord>> = seen.iter().map(|r| r.to_vec()).collect();
    assert_eq!(seen, vec![vec![record("before", 1)], expected]);
    Ok(())
}
