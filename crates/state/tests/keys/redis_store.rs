//! What only the Redis store does: its key layout, prefixes, surviving data loss and script
//! flushes, refusing corrupt data, and never showing the password.

use std::time::Duration;

use redis::cmd;
use sluice_state::keys::{KeyRecord, KeyStore};
use sluice_state::redis::RedisConn;
use sluice_state::StoreError;
use sluice_testkit::RedisServer;

use crate::support::{record, timed, TestResult};

#[tokio::test]
async fn layout_is_one_hash_and_one_counter_under_the_hash_tag() -> TestResult {
    let server = RedisServer::start().await?;
    let store = KeyStore::connect_redis(&server.url(), "sluice").await?;
    let other = KeyStore::connect_redis(&server.url(), "tenant-2").await?;
    store.create(record("k", 1)).await?;

    let raw = RedisConn::connect(&server.url()).await?;
    let mut keys: Vec<String> = raw.query(cmd("KEYS").arg("*")).await?;
    keys.sort();
    assert_eq!(keys, vec!["{sluice}:apikeys", "{sluice}:apikeys:version"]);
    let json: String = raw
        .query(cmd("HGET").arg("{sluice}:apikeys").arg("k"))
        .await?;
    assert_eq!(serde_json::from_str::<KeyRecord>(&json)?, record("k", 1));
    let version: u64 = raw
        .query(cmd("GET").arg("{sluice}:apikeys:version"))
        .await?;
    assert_eq!(version, store.version().await?);
    // Redis Cluster hashes only the text inside the first {...}: both keys share one slot,
    // so the scripts may touch them together.
    assert!(keys.iter().all(|key| key.starts_with("{sluice}:")));

    // Another prefix is another store.
    assert_eq!(other.list().await?, vec![]);
    assert_eq!(other.version().await?, 0);
    assert_eq!(
        store.describe(),
        format!("redis://127.0.0.1:{}/0 (prefix sluice)", server.port())
    );
    Ok(())
}

#[tokio::test]
async fn versions_are_not_reused_after_the_data_is_lost() -> TestResult {
    let server = RedisServer::start().await?;
    let store = KeyStore::connect_redis(&server.url(), "sluice").await?;
    store.create(record("a", 1)).await?;
    store.create(record("b", 2)).await?;
    let before = store.version().await?;

    let raw = RedisConn::connect(&server.url()).await?;
    let () = raw.query(&cmd("FLUSHALL")).await?;
    assert_eq!(store.version().await?, 0);
    // Two new changes on the emptied store must not land on the old number, or a watcher
    // holding `before` would keep the lost records.
    store.create(record("c", 3)).await?;
    store.create(record("d", 4)).await?;
    assert!(store.version().await? > before);
    Ok(())
}

#[tokio::test]
async fn scripts_are_reloaded_after_a_script_flush() -> TestResult {
    let server = RedisServer::start().await?;
    let store = KeyStore::connect_redis(&server.url(), "sluice").await?;
    store.create(record("a", 1)).await?;
    let raw = RedisConn::connect(&server.url()).await?;
    let () = raw.query(cmd("SCRIPT").arg("FLUSH")).await?;
    store.create(record("b", 2)).await?;
    store.revoke("a", 9).await?;
    assert_eq!(store.list().await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn corrupt_records_are_reported_not_skipped() -> TestResult {
    let server = RedisServer::start().await?;
    let store = KeyStore::connect_redis(&server.url(), "sluice").await?;
    store.create(record("good", 1)).await?;
    let raw = RedisConn::connect(&server.url()).await?;

    let () = raw
        .query(
            cmd("HSET")
                .arg("{sluice}:apikeys")
                .arg("broken")
                .arg("{not json"),
        )
        .await?;
    let result = store.list().await;
    assert!(
        matches!(&result, Err(StoreError::Corrupt(m)) if m.contains("broken")),
        "{result:?}"
    );

    // A record filed under another id is as wrong as unreadable JSON.
    let () = raw
        .query(cmd("HDEL").arg("{sluice}:apikeys").arg("broken"))
        .await?;
    let json = serde_json::to_string(&record("elsewhere", 2))?;
    let () = raw
        .query(
            cmd("HSET")
                .arg("{sluice}:apikeys")
                .arg("misfiled")
                .arg(json),
        )
        .await?;
    let result = store.revoke("misfiled", 5).await;
    assert!(
        matches!(&result, Err(StoreError::Corrupt(m)) if m.contains("misfiled")),
        "{result:?}"
    );
    Ok(())
}

#[tokio::test]
async fn bad_prefixes_are_invalid() -> TestResult {
    let server = RedisServer::start().await?;
    for prefix in ["", "a{b", "a}b", "with space"] {
        let result = KeyStore::connect_redis(&server.url(), prefix).await;
        assert!(
            matches!(result, Err(StoreError::Invalid(_))),
            "{prefix:?}: {result:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_at_connect() -> TestResult {
    let mut server = RedisServer::start().await?;
    server.stop().await?;
    let (result, took) = timed(KeyStore::connect_redis(&server.url(), "sluice")).await;
    assert!(
        matches!(&result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    Ok(())
}

#[tokio::test]
async fn the_password_never_shows() -> TestResult {
    const PASSWORD: &str = "Zebra-7713-pw";
    let mut server = RedisServer::start_with_password(PASSWORD).await?;
    let url = server.url();
    assert!(url.contains(PASSWORD), "the fixture really uses a password");
    let mut shown = Vec::new();

    let store = KeyStore::connect_redis(&url, "sluice").await?;
    store.create(record("k", 1)).await?;
    assert_eq!(
        store.describe(),
        format!("redis://127.0.0.1:{}/0 (prefix sluice)", server.port())
    );
    shown.push(store.describe());
    shown.push(format!("{store:?}"));

    // A wrong password is refused, and the refusal does not echo it either.
    let wrong = url.replace(PASSWORD, "Wrong-Secret-99");
    match KeyStore::connect_redis(&wrong, "sluice").await {
        Err(e) => {
            assert!(!e.to_string().contains("Wrong-Secret-99"), "{e}");
            shown.push(e.to_string());
        }
        Ok(_) => return Err("connected with a wrong password".into()),
    }
    // A URL the client cannot parse is reported without the URL.
    let bad = format!("redis://:{PASSWORD}@127.0.0.1:{}/not-a-db", server.port());
    match KeyStore::connect_redis(&bad, "sluice").await {
        Err(e) => shown.push(format!("{e} / {e:?}")),
        Ok(_) => return Err("connected with a bad URL".into()),
    }

    // Errors while running, from a dead server and from a hung one.
    server.pause()?;
    match store.list().await {
        Err(e) => shown.push(format!("{e} / {e:?}")),
        Ok(_) => return Err("listed from a paused server".into()),
    }
    server.resume()?;
    server.stop().await?;
    for _ in 0..2 {
        match store.create(record("x", 2)).await {
            Err(e) => shown.push(format!("{e} / {e:?}")),
            Ok(()) => return Err("created on a stopped server".into()),
        }
    }
    match KeyStore::connect_redis(&url, "sluice").await {
        Err(e) => shown.push(format!("{e} / {e:?}")),
        Ok(_) => return Err("connected to a stopped server".into()),
    }

    assert_eq!(shown.len(), 8);
    for text in &shown {
        assert!(!text.contains(PASSWORD), "password shown in: {text}");
    }
    Ok(())
}
