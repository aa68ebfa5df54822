//! API keys in Redis, shared by every replica.
//!
//! Layout (the `{prefix}` hash tag puts every key of one store in one Cluster slot, which the
//! scripts need to touch both keys atomically):
//! * `{<prefix>}:apikeys` — HASH, id → record JSON
//! * `{<prefix>}:apikeys:version` — counter, bumped by every change
//!
//! Every change is one Lua script run, so the check, the write and the version bump happen
//! together or not at all, whichever replica sends them. Record JSON is built and read only
//! in Rust; the scripts compare and store it as opaque strings (Lua's cjson would round large
//! integers and reorder fields).

use ::redis::Script;

use super::{KeyRecord, Snapshot};
use crate::redis::RedisConn;
use crate::StoreError;

/// Shared by both scripts. A missing counter (a new store, or one whose data was lost in a
/// restart or FLUSHALL) starts from the server clock in microseconds rather than from 0, so
/// version numbers are not reused after a data loss and a watcher cannot mistake a rebuilt
/// store for the one it already holds. The clock is concatenated as text: Lua numbers are
/// doubles and would be printed as "1.7e+15".
const BUMP_VERSION: &str = r"
local function bump(key)
  if redis.call('EXISTS', key) == 0 then
    local now = redis.call('TIME')
    redis.call('SET', key, now[1] .. string.format('%06d', tonumber(now[2])))
  end
  return redis.call('INCR', key)
end
";

/// KEYS: hash, version. ARGV: id, record JSON. Returns the new version, or -1 if the id exists.
const CREATE: &str = r"
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return -1
end
return bump(KEYS[2])
";

/// KEYS: hash, version. ARGV: id, expected current JSON, new JSON. Compare-and-set: returns the
/// new version, -1 if the record changed since it was read, -2 if it is gone.
const REPLACE: &str = r"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then
  return -2
end
if current ~= ARGV[2] then
  return -1
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return bump(KEYS[2])
";

/// Compare-and-set attempts before giving up on an update. Losing a race means another admin
/// call changed the same key in the same instant; a handful of retries settles any realistic
/// contention.
const MAX_ATTEMPTS: usize = 16;

/// A key store in Redis.
pub struct RedisKeyStore {
    conn: RedisConn,
    prefix: String,
    records_key: String,
    version_key: String,
    create: Script,
    replace: Script,
}

impl RedisKeyStore {
    /// Use `conn` with keys under `{prefix}`.
    pub fn new(conn: RedisConn, prefix: &str) -> Result<Self, StoreError> {
        let ok = !prefix.is_empty()
            && prefix
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}');
        if !ok {
            // Braces would break the hash tag, and with it the single-slot guarantee.
            return Err(StoreError::Invalid(format!(
                "Redis key prefix {prefix:?}: expected printable ASCII without spaces or braces"
            )));
        }
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            records_key: format!("{{{prefix}}}:apikeys"),
            version_key: format!("{{{prefix}}}:apikeys:version"),
            create: Script::new(&format!("{BUMP_VERSION}{CREATE}")),
            replace: Script::new(&format!("{BUMP_VERSION}{REPLACE}")),
        })
    }

    pub fn conn(&self) -> &RedisConn {
        &self.conn
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `redis://host:port/db (prefix <prefix>)`, without credentials.
    pub fn describe(&self) -> String {
        format!("{} (prefix {})", self.conn.describe(), self.prefix)
    }

    pub async fn version(&self) -> Result<u64, StoreError> {
        let version: Option<u64> = self
            .conn
            .query(::redis::cmd("GET").arg(&self.version_key))
            .await?;
        Ok(version.unwrap_or(0))
    }

    /// Version and records read in one MULTI/EXEC, so they belong together.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut pipeline = ::redis::pipe();
        pipeline
            .atomic()
            .cmd("GET")
            .arg(&self.version_key)
            .cmd("HGETALL")
            .arg(&self.records_key);
        let (version, fields): (Option<u64>, Vec<(String, String)>) =
            self.conn.query_pipeline(&pipeline).await?;
        let mut records = fields
            .iter()
            .map(|(id, json)| self.parse(id, json))
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Snapshot {
            version: version.unwrap_or(0),
            records,
        })
    }

    pub async fn create(&self, record: KeyRecord) -> Result<(), StoreError> {
        record.validate()?;
        let json = self.to_json(&record)?;
        let outcome: i64 = self
            .conn
            .invoke(
                self.create
                    .key(&self.records_key)
                    .key(&self.version_key)
                    .arg(&record.id)
                    .arg(json),
            )
            .await?;
        match outcome {
            -1 => Err(StoreError::Exists(record.id)),
            _ => Ok(()),
        }
    }

    /// Read record `id`, apply `change`, and write the result back only if nobody changed the
    /// record in between (otherwise read again). `Ok(None)` from `change` means "nothing to do".
    pub(super) async fn update(
        &self,
        id: &str,
        change: impl Fn(&KeyRecord) -> Result<Option<KeyRecord>, StoreError>,
    ) -> Result<KeyRecord, StoreError> {
        let not_found = || StoreError::NotFound(id.to_owned());
        for _ in 0..MAX_ATTEMPTS {
            let current: Option<String> = self
                .conn
                .query(::redis::cmd("HGET").arg(&self.records_key).arg(id))
                .await?;
            let current = current.ok_or_else(not_found)?;
            let record = self.parse(id, &current)?;
            let Some(next) = change(&record)? else {
                return Ok(record);
            };
            let outcome: i64 = self
                .conn
                .invoke(
                    self.replace
                        .key(&self.records_key)
                        .key(&self.version_key)
                        .arg(id)
                        .arg(&current)
                        .arg(self.to_json(&next)?),
                )
                .await?;
            match outcome {
                -2 => return Err(not_found()),
                -1 => continue,
                _ => return Ok(next),
            }
        }
        Err(StoreError::Unavailable(format!(
            "{}: key {id:?} kept changing during {MAX_ATTEMPTS} update attempts",
            self.describe()
        )))
    }

    fn parse(&self, id: &str, json: &str) -> Result<KeyRecord, StoreError> {
        let corrupt = |detail: String| {
            StoreError::Corrupt(format!(
                "{} field {id:?} of {}: {detail}",
                self.conn.describe(),
                self.records_key
            ))
        };
        let record: KeyRecord = serde_json::from_str(json).map_err(|e| corrupt(e.to_string()))?;
        if record.id != id {
            return Err(corrupt(format!("holds the record of {:?}", record.id)));
        }
        Ok(record)
    }

    fn to_json(&self, record: &KeyRecord) -> Result<String, StoreError> {
        serde_json::to_string(record)
            .map_err(|e| StoreError::Invalid(format!("key {:?}: {e}", record.id)))
    }
}
