//! Virtual API keys: where they are stored ([`KeyStore`]: a JSON file, or Redis so that every
//! replica agrees) and how each replica keeps a current copy in process ([`KeyWatch`]).

mod file;
mod record;
mod redis;
mod watch;

use std::path::PathBuf;

pub use self::file::FileKeyStore;
pub use self::record::KeyRecord;
pub use self::redis::RedisKeyStore;
pub use self::watch::KeyWatch;
use crate::redis::RedisConn;
pub use crate::StoreError;

/// Every record of a store together with the version they belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub version: u64,
    /// Sorted by id, revoked records included.
    pub records: Vec<KeyRecord>,
}

/// The configured key store.
pub enum KeyStore {
    File(FileKeyStore),
    Redis(RedisKeyStore),
}

impl KeyStore {
    /// Open (or create, with parent directories) the JSON file at `path`. A file that cannot
    /// be parsed is [`StoreError::Corrupt`], naming the path.
    pub async fn open_file(path: PathBuf) -> Result<KeyStore, StoreError> {
        FileKeyStore::open(path).await.map(KeyStore::File)
    }

    /// Connect to Redis at `url` and keep keys under `{prefix}` (e.g. `sluice`).
    pub async fn connect_redis(url: &str, prefix: &str) -> Result<KeyStore, StoreError> {
        let conn = RedisConn::connect(url).await?;
        RedisKeyStore::new(conn, prefix).map(KeyStore::Redis)
    }

    /// Every record, revoked ones included, sorted by id.
    pub async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        Ok(self.snapshot().await?.records)
    }

    /// Every record and the version they belong to, read consistently.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        match self {
            KeyStore::File(store) => store.snapshot().await,
            KeyStore::Redis(store) => store.snapshot().await,
        }
    }

    /// Add a record; [`StoreError::Exists`] if its id is taken (checked atomically, also
    /// against other replicas), [`StoreError::Invalid`] if the id or digest is malformed.
    pub async fn create(&self, record: KeyRecord) -> Result<(), StoreError> {
        match self {
            KeyStore::File(store) => store.create(record).await,
            KeyStore::Redis(store) => store.create(record).await,
        }
    }

    /// Replace the digest of `id` and set `rotated_at`. [`StoreError::NotFound`], or
    /// [`StoreError::Revoked`] if the key is revoked.
    pub async fn rotate(
        &self,
        id: &str,
        new_digest: &str,
        at: u64,
    ) -> Result<KeyRecord, StoreError> {
        let change = |record: &KeyRecord| record.rotated(new_digest, at).map(Some);
        match self {
            KeyStore::File(store) => store.update(id, change).await,
            KeyStore::Redis(store) => store.update(id, change).await,
        }
    }

    /// Set `revoked_at` on `id` and return the record. Idempotent: revoking a revoked key
    /// changes nothing (the first time stays, the version does not move).
    pub async fn revoke(&self, id: &str, at: u64) -> Result<KeyRecord, StoreError> {
        let change = |record: &KeyRecord| Ok(record.revoked(at));
        match self {
            KeyStore::File(store) => store.update(id, change).await,
            KeyStore::Redis(store) => store.update(id, change).await,
        }
    }

    /// A number that increases with every change; cheap (one GET in Redis, memory for files).
    pub async fn version(&self) -> Result<u64, StoreError> {
        match self {
            KeyStore::File(store) => store.version().await,
            KeyStore::Redis(store) => store.version().await,
        }
    }

    /// The file path, or `redis://host:port/db (prefix p)`; never contains a password.
    pub fn describe(&self) -> String {
        match self {
            KeyStore::File(store) => store.path().display().to_string(),
            KeyStore::Redis(store) => store.describe(),
        }
    }
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KeyStore").field(&self.describe()).finish()
    }
}
