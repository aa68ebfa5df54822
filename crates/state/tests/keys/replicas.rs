//! Two replicas sharing one Redis: changes through one reach the other's watcher in time, and
//! racing writes are decided atomically by Redis.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_state::keys::{KeyStore, KeyWatch};
use sluice_state::StoreError;
use sluice_testkit::{BoxError, RedisServer};

use crate::support::{digest, record, wait_until, TestResult};

/// Two independent connections, as two gateway processes would have.
async fn replicas(server: &RedisServer) -> Result<(Arc<KeyStore>, Arc<KeyStore>), BoxError> {
    let a = KeyStore::connect_redis(&server.url(), "sluice").await?;
    let b = KeyStore::connect_redis(&server.url(), "sluice").await?;
    Ok((Arc::new(a), Arc::new(b)))
}

#[tokio::test]
async fn a_revocation_reaches_the_other_replica_within_a_second() -> TestResult {
    let server = RedisServer::start().await?;
    let (a, b) = replicas(&server).await?;
    a.create(record("shared", 1)).await?;
    let loads = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&loads);
    let watch = KeyWatch::start(b, Duration::from_millis(200), move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    })
    .await?;
    assert_eq!(watch.records()[0].revoked_at, None);

    let start = Instant::now();
    a.revoke("shared", 1_800_000_000).await?;
    let revoked = || watch.records().first().and_then(|r| r.revoked_at) == Some(1_800_000_000);
    // Wait past the requirement so a failure reports how late it was.
    wait_until(
        "revocation seen by replica b",
        Duration::from_secs(3),
        revoked,
    )
    .await?;
    let took = start.elapsed();
    eprintln!("revocation reached replica b after {took:?}");
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");
    assert_eq!(loads.load(Ordering::SeqCst), 2, "initial load + one reload");
    assert!(watch.healthy());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_creates_of_one_id_have_exactly_one_winner() -> TestResult {
    let server = RedisServer::start().await?;
    let (a, b) = replicas(&server).await?;
    let mut wins = [0usize; 2];
    for round in 0..30u64 {
        let id = format!("race-{round}");
        let from_a = tokio::spawn({
            let (a, id) = (Arc::clone(&a), id.clone());
            async move { a.create(record(&id, 2 * round)).await }
        });
        let from_b = tokio::spawn({
            let (b, id) = (Arc::clone(&b), id.clone());
            async move { b.create(record(&id, 2 * round + 1)).await }
        });
        let results = [from_a.await?, from_b.await?];
        let exists = Err(StoreError::Exists(id.clone()));
        let winner = match &results {
            [Ok(()), lost] if *lost == exists => 0,
            [lost, Ok(())] if *lost == exists => 1,
            other => return Err(format!("{id}: expected one winner, got {other:?}").into()),
        };
        wins[winner] += 1;
        let stored = a.list().await?.into_iter().find(|r| r.id == id);
        assert_eq!(
            stored.map(|r| r.digest),
            Some(digest(2 * round + winner as u64))
        );
    }
    assert_eq!(wins[0] + wins[1], 30);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_updates_of_one_key_all_apply() -> TestResult {
    let server = RedisServer::start().await?;
    let (a, b) = replicas(&server).await?;
    a.create(record("hot", 0)).await?;
    let before = a.version().await?;
    let mut tasks = Vec::new();
    for n in 1..=20u64 {
        let store = Arc::clone(if n % 2 == 0 { &a } else { &b });
        tasks.push(tokio::spawn(async move {
            store.rotate("hot", &digest(n), n).await
        }));
    }
    let mut digests = HashSet::new();
    for task in tasks {
        digests.insert(task.await??.digest);
    }
    // Each rotation was applied on top of the one before it, none lost to a race.
    assert_eq!(digests.len(), 20);
    assert_eq!(a.version().await?, before + 20);
    let last = a.list().await?;
    assert!(digests.contains(&last[0].digest));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_racing_rotation_never_undoes_a_revocation() -> TestResult {
    let server = RedisServer::start().await?;
    let (a, b) = replicas(&server).await?;
    for round in 0..40u64 {
        let id = format!("k{round}");
        a.create(record(&id, 1)).await?;
        let rotate = tokio::spawn({
            let (a, id) = (Arc::clone(&a), id.clone());
            async move { a.rotate(&id, &digest(2), 10).await }
        });
        let revoke = tokio::spawn({
            let (b, id) = (Arc::clone(&b), id.clone());
            async move { b.revoke(&id, 20).await }
        });
        let (rotated, revoked) = (rotate.await?, revoke.await?);
        let stored = b.list().await?.into_iter().find(|r| r.id == id);
        let stored = stored.ok_or_else(|| format!("{id} vanished"))?;
        // Whatever the order, the revocation stands, and the rotation either happened before
        // it (and is kept) or was refused.
        assert_eq!(stored.revoked_at, Some(20), "{id}: {stored:?}");
        assert_eq!(Ok(&stored), revoked.as_ref(), "{id}");
        match rotated {
            Ok(_) => assert_eq!(stored.digest, digest(2), "{id}"),
            Err(StoreError::Revoked(_)) => assert_eq!(stored.digest, digest(1), "{id}"),
            Err(other) => return Err(format!("{id}: rotate failed: {other}").into()),
        }
    }
    Ok(())
}
