//! What only the file store does: persistence across reopen, the document format, atomic
//! writes and refusing corrupt files.

use std::fs;

use sluice_state::keys::KeyStore;
use sluice_state::StoreError;
use sluice_testkit::TempDir;

use crate::support::{digest, record, TestResult};

#[tokio::test]
async fn survives_reopen() -> TestResult {
    let dir = TempDir::new("keys")?;
    let path = dir.path().join("keys.json");
    let (records, version) = {
        let store = KeyStore::open_file(path.clone()).await?;
        store.create(record("a", 1)).await?;
        store.create(record("b", 2)).await?;
        store.rotate("a", &digest(3), 50).await?;
        store.revoke("b", 60).await?;
        (store.list().await?, store.version().await?)
    };
    let reopened = KeyStore::open_file(path).await?;
    assert_eq!(reopened.list().await?, records);
    assert_eq!(reopened.version().await?, version);
    // And it keeps counting from there.
    reopened.create(record("c", 4)).await?;
    assert_eq!(reopened.version().await?, version + 1);
    Ok(())
}

#[tokio::test]
async fn open_creates_parent_directories_and_an_empty_store() -> TestResult {
    let dir = TempDir::new("keys")?;
    let path = dir.path().join("state/nested/keys.json");
    let store = KeyStore::open_file(path.clone()).await?;
    assert_eq!(store.describe(), path.display().to_string());
    let document: serde_json::Value = serde_json::from_slice(&fs::read(&path)?)?;
    assert_eq!(document, serde_json::json!({"version": 0, "keys": []}));
    Ok(())
}

#[tokio::test]
async fn document_is_written_whole_and_sorted_without_leftovers() -> TestResult {
    let dir = TempDir::new("keys")?;
    let path = dir.path().join("keys.json");
    let store = KeyStore::open_file(path.clone()).await?;
    store.create(record("z", 1)).await?;
    store.create(record("m", 2)).await?;
    store.revoke("z", 70).await?;

    let document: serde_json::Value = serde_json::from_slice(&fs::read(&path)?)?;
    let expected = serde_json::json!({
        "version": 3,
        "keys": [
            {"id": "m", "digest": digest(2), "createdAt": 1_700_000_002u64},
            {"id": "z", "digest": digest(1), "createdAt": 1_700_000_001u64, "revokedAt": 70},
        ]
    });
    assert_eq!(document, expected);
    // Temp files are renamed over the document, never left beside it.
    let names: Vec<String> = fs::read_dir(dir.path())?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    assert_eq!(names, vec!["keys.json".to_owned()]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
    }
    Ok(())
}

#[tokio::test]
async fn corrupt_files_are_refused_naming_the_path() -> TestResult {
    let dir = TempDir::new("keys")?;
    let duplicate = format!(
        r#"{{"version": 2, "keys": [{{"id": "a", "digest": "{d}", "createdAt": 1}},
                                    {{"id": "a", "digest": "{d}", "createdAt": 2}}]}}"#,
        d = digest(1)
    );
    let cases = [
        ("truncated.json", "{\"version\": 1, \"keys\": [".to_owned()),
        ("wrong-shape.json", "[1, 2, 3]".to_owned()),
        ("duplicate.json", duplicate),
        (
            "bad-digest.json",
            r#"{"version": 1, "keys": [{"id": "a", "digest": "xyz", "createdAt": 1}]}"#.to_owned(),
        ),
    ];
    for (name, contents) in cases {
        let path = dir.write(name, contents)?;
        match KeyStore::open_file(path.clone()).await {
            Err(StoreError::Corrupt(message)) => assert!(
                message.contains(&path.display().to_string()),
                "{name}: {message}"
            ),
            Err(other) => return Err(format!("{name}: expected Corrupt, got {other:?}").into()),
            Ok(_) => return Err(format!("{name}: opened a corrupt file").into()),
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_failed_write_changes_nothing() -> TestResult {
    let dir = TempDir::new("keys")?;
    let path = dir.path().join("keys.json");
    let store = KeyStore::open_file(path.clone()).await?;
    store.create(record("a", 1)).await?;
    // Replace the document with a directory: the rename over it fails whoever we run as.
    fs::remove_file(&path)?;
    fs::create_dir(&path)?;
    let result = store.create(record("b", 2)).await;
    assert!(
        matches!(&result, Err(StoreError::Unavailable(m)) if m.contains("keys.json")),
        "{result:?}"
    );
    assert_eq!(store.list().await?, vec![record("a", 1)]);
    assert_eq!(store.version().await?, 1);
    Ok(())
}
