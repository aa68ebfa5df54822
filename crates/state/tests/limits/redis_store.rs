//! What only the Redis store does: its key layout (one hash tag per bucket), expiry of idle
//! keys, script reloads, refusing corrupt data, prefixes, and never showing the password.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use redis::cmd;
use sluice_state::limits::{Budget, Limiter, Period, EXPIRY_MARGIN_MS};
use sluice_state::redis::RedisConn;
use sluice_state::StoreError;
use sluice_testkit::{BoxError, RedisServer};

use crate::support::{
    limit, per_minute, per_second, raw, redis_limiter, secs, unix, wait_until, TestResult,
};

async fn keys(conn: &RedisConn) -> Result<BTreeSet<String>, StoreError> {
    let keys: Vec<String> = conn.query(cmd("KEYS").arg("*")).await?;
    Ok(keys.into_iter().collect())
}

async fn pttl(conn: &RedisConn, key: &str) -> Result<i64, StoreError> {
    conn.query(cmd("PTTL").arg(key)).await
}

/// `{sluice:<16 hex>}` of a key, checked to be well-formed.
fn hash_tag(key: &str) -> &str {
    let tag = key.split_inclusive('}').next().unwrap_or("");
    assert!(
        tag.starts_with("{sluice:") && tag.len() == "{sluice:}".len() + 16,
        "{key}"
    );
    tag
}

#[tokio::test]
async fn a_buckets_keys_share_one_hash_tag_and_live_until_full() -> TestResult {
    let server = RedisServer::start().await?;
    let limiter = redis_limiter(&server).await?;
    let conn = raw(&server).await?;
    let bucket = "policy/rule|tenant=a|model={gpt-4o}";
    let ls = [per_second(10), per_minute(100)];
    limiter.reserve(bucket, &ls, 10, secs(0)).await?;
    let now = SystemTime::now();
    let day = Budget {
        limit: 100,
        period: Period::Day,
    };
    let reserved = limiter.reserve_budget(bucket, &day, 5, now).await?;

    let keys_now = keys(&conn).await?;
    assert_eq!(keys_now.len(), 3, "{keys_now:?}");
    let tags: BTreeSet<&str> = keys_now.iter().map(|k| hash_tag(k)).collect();
    assert_eq!(
        tags.len(),
        1,
        "one Cluster slot for the whole bucket: {keys_now:?}"
    );
    let tag = tags.into_iter().next().unwrap_or_default();
    let second = format!("{tag}:rate:10:1000000:{bucket}");
    let minute = format!("{tag}:rate:100:60000000:{bucket}");
    let budget = format!("{tag}:budget:{}:{bucket}", reserved.window.id);
    let expected: BTreeSet<String> = [&second, &minute, &budget].map(String::clone).into();
    assert_eq!(keys_now, expected);

    // Rate keys expire when the bucket is full again (10 tokens: 1 s and 6 s) plus the margin.
    let margin = i64::try_from(EXPIRY_MARGIN_MS)?;
    let ttl = pttl(&conn, &second).await?;
    assert!((900 + margin..=1000 + margin).contains(&ttl), "{ttl}");
    let ttl = pttl(&conn, &minute).await?;
    assert!((5900 + margin..=6000 + margin).contains(&ttl), "{ttl}");
    // A budget's counter lives until a day after its window ends.
    let until = reserved.window.end + Duration::from_secs(86_400);
    let at_most = until.duration_since(SystemTime::now())?.as_millis();
    let ttl = u128::try_from(pttl(&conn, &budget).await?)?;
    // + 2: PXAT is rounded up to a whole millisecond, and so is Redis' view of now.
    assert!(
        (at_most.saturating_sub(5000)..=at_most + 2).contains(&ttl),
        "{ttl} vs {at_most}"
    );

    // Another bucket hashes elsewhere.
    limiter.reserve("other", &ls, 1, secs(0)).await?;
    let tags: BTreeSet<String> = keys(&conn)
        .await?
        .iter()
        .map(|k| hash_tag(k).to_owned())
        .collect();
    assert_eq!(tags.len(), 2);

    // Full again (refund): the keys are deleted, not kept at zero.
    limiter.settle(bucket, &ls, -10, secs(0)).await?;
    limiter
        .settle_budget(bucket, &day, &reserved.window, -5)
        .await?;
    let left = keys(&conn).await?;
    assert!(left.iter().all(|k| k.ends_with(":other")), "{left:?}");
    Ok(())
}

#[tokio::test]
async fn idle_keys_vanish_by_themselves() -> TestResult {
    let server = RedisServer::start().await?;
    let limiter = redis_limiter(&server).await?;
    let conn = raw(&server).await?;
    // Full again 100 ms after the reservation (on the injected clock), so the key expires
    // after 100 ms + the margin on Redis' clock.
    let ls = [limit(10, Duration::from_millis(100))];
    limiter.reserve("idle", &ls, 10, secs(0)).await?;
    assert_eq!(keys(&conn).await?.len(), 1);
    let took = wait_until("key expired", Duration::from_secs(10), || async {
        Ok::<bool, BoxError>(keys(&conn).await?.is_empty())
    })
    .await?;
    assert!(
        took <= Duration::from_millis(100 + EXPIRY_MARGIN_MS + 500),
        "took {took:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_settlement_of_a_long_gone_window_leaves_no_key() -> TestResult {
    let server = RedisServer::start().await?;
    let limiter = redis_limiter(&server).await?;
    let conn = raw(&server).await?;
    let day = Budget {
        limit: 100,
        period: Period::Day,
    };
    // 2020-01-15: its counter expired long ago on Redis' clock.
    let window = Period::Day.window(unix(1_579_046_400))?;
    let settled = limiter.settle_budget("t", &day, &window, 7).await?;
    assert_eq!(settled.spent, 7);
    assert!(keys(&conn).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn scripts_are_reloaded_after_a_script_flush() -> TestResult {
    let server = RedisServer::start().await?;
    let limiter = redis_limiter(&server).await?;
    let conn = raw(&server).await?;
    let ls = [per_second(10)];
    limiter.reserve("b", &ls, 4, secs(0)).await?;
    let () = conn.query(cmd("SCRIPT").arg("FLUSH")).await?;
    assert!(limiter.reserve("b", &ls, 4, secs(0)).await?.admitted);
    assert_eq!(limiter.settle("b", &ls, 1, secs(0)).await?[0].remaining, 1);
    let day = Budget {
        limit: 10,
        period: Period::Day,
    };
    let () = conn.query(cmd("SCRIPT").arg("FLUSH")).await?;
    assert!(
        limiter
            .reserve_budget("b", &day, 3, secs(0))
            .await?
            .admitted
    );
    Ok(())
}

#[tokio::test]
async fn corrupt_values_are_reported_not_overwritten() -> TestResult {
    let server = RedisServer::start().await?;
    let limiter = redis_limiter(&server).await?;
    let conn = raw(&server).await?;
    let ls = [per_second(10), per_minute(100)];
    limiter.reserve("b", &ls, 1, secs(0)).await?;
    let day = Budget {
        limit: 10,
        period: Period::Day,
    };
    let now = SystemTime::now();
    limiter.reserve_budget("b", &day, 1, now).await?;
    let all = keys(&conn).await?;
    let minute_key = all.iter().find(|k| k.contains(":rate:100:")).cloned();
    let budget_key = all.iter().find(|k| k.contains(":budget:")).cloned();
    let (Some(minute_key), Some(budget_key)) = (minute_key, budget_key) else {
        return Err(format!("keys missing: {all:?}").into());
    };

    // Not a level; a level deeper than any debt; not a number.
    for garbage in ["garbage", "99999999999999999:1", "12.5:3"] {
        let () = conn.query(cmd("SET").arg(&minute_key).arg(garbage)).await?;
        let corrupt = |r: &Result<(), StoreError>| matches!(r, Err(StoreError::Corrupt(m)) if m.contains(&minute_key));
        let reserved = limiter.reserve("b", &ls, 1, secs(0)).await.map(|_| ());
        assert!(corrupt(&reserved), "{garbage}: {reserved:?}");
        let settled = limiter.settle("b", &ls, -1, secs(0)).await.map(|_| ());
        assert!(corrupt(&settled), "{garbage}: {settled:?}");
        let read = limiter.state("b", &ls, secs(0)).await.map(|_| ());
        assert!(corrupt(&read), "{garbage}: {read:?}");
        // Nothing was written, not even to the healthy key of the same bucket.
        let value: String = conn.query(cmd("GET").arg(&minute_key)).await?;
        assert_eq!(value, garbage);
    }
    let second = limiter.state("b", &[per_second(10)], secs(0)).await?;
    assert_eq!(second[0].remaining, 9);

    for garbage in ["-3", "abc", "1e5", "9007199254740993"] {
        let () = conn.query(cmd("SET").arg(&budget_key).arg(garbage)).await?;
        let corrupt = |r: &Result<(), StoreError>| matches!(r, Err(StoreError::Corrupt(m)) if m.contains(&budget_key));
        let reserved = limiter.reserve_budget("b", &day, 1, now).await.map(|_| ());
        assert!(corrupt(&reserved), "{garbage}: {reserved:?}");
        let window = Period::Day.window(now)?;
        let settled = limiter
            .settle_budget("b", &day, &window, 1)
            .await
            .map(|_| ());
        assert!(corrupt(&settled), "{garbage}: {settled:?}");
        let spent = limiter.spent("b", &day, now).await.map(|_| ());
        assert!(corrupt(&spent), "{garbage}: {spent:?}");
    }
    Ok(())
}

#[tokio::test]
async fn prefixes_separate_stores_and_must_be_plain() -> TestResult {
    let server = RedisServer::start_with_password("s3cr3t-pw").await?;
    let conn = Arc::new(RedisConn::connect(&server.url()).await?);
    for bad in ["", "a b", "a{b", "a}b", "tab\t", "é"] {
        let made = Limiter::redis(Arc::clone(&conn), bad).await;
        assert!(matches!(made, Err(StoreError::Invalid(_))), "{bad:?}");
    }
    let a = Limiter::redis(Arc::clone(&conn), "tenant-1").await?;
    let b = Limiter::redis(Arc::clone(&conn), "tenant-2").await?;
    let ls = [per_second(10)];
    a.reserve("b", &ls, 10, secs(0)).await?;
    assert_eq!(a.state("b", &ls, secs(0)).await?[0].remaining, 0);
    assert_eq!(b.state("b", &ls, secs(0)).await?[0].remaining, 10);
    let keys_now = keys(&conn).await?;
    assert!(
        keys_now.iter().all(|k| k.starts_with("{tenant-1:")),
        "{keys_now:?}"
    );

    let described = a.describe();
    assert_eq!(
        described,
        format!("redis://127.0.0.1:{}/0 (prefix tenant-1)", server.port())
    );
    assert!(!format!("{a:?}").contains("s3cr3t"));
    Ok(())
}
