//! API keys in one local JSON file, for a single gateway without Redis.
//!
//! The document is `{"version": n, "keys": [record, ...]}` with records sorted by id. Every
//! change rewrites it whole through a temporary file in the same directory, fsynced and then
//! renamed over the old one, so a crash leaves either the old or the new document, never half
//! of one. The file belongs to one process: writers in it are serialised by a mutex, and the
//! in-memory copy is authoritative (edits made to the file by others are not picked up).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::{KeyRecord, Snapshot};
use crate::StoreError;

/// The on-disk document.
#[derive(Serialize, Deserialize)]
struct Document {
    version: u64,
    keys: Vec<KeyRecord>,
}

struct State {
    version: u64,
    records: BTreeMap<String, KeyRecord>,
}

impl State {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            version: self.version,
            records: self.records.values().cloned().collect(),
        }
    }
}

/// A key store backed by a JSON file.
pub struct FileKeyStore {
    path: PathBuf,
    state: Mutex<State>,
}

impl FileKeyStore {
    /// Load `path`, or create an empty store there (with its parent directories) if it does
    /// not exist yet.
    pub async fn open(path: PathBuf) -> Result<Self, StoreError> {
        let state = match tokio::fs::read(&path).await {
            Ok(bytes) => parse(&path, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let state = State {
                    version: 0,
                    records: BTreeMap::new(),
                };
                write(&path, &state).await?;
                state
            }
            Err(e) => return Err(io_error(&path, "reading", &e)),
        };
        Ok(Self {
            path,
            state: Mutex::new(state),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        Ok(self.state.lock().await.snapshot())
    }

    pub async fn version(&self) -> Result<u64, StoreError> {
        Ok(self.state.lock().await.version)
    }

    pub async fn create(&self, record: KeyRecord) -> Result<(), StoreError> {
        record.validate()?;
        let mut state = self.state.lock().await;
        if state.records.contains_key(&record.id) {
            return Err(StoreError::Exists(record.id));
        }
        self.commit(&mut state, record).await
    }

    /// Apply `change` to record `id` and persist the result; `Ok(None)` from `change` means
    /// "nothing to do" and leaves the store (and its version) untouched.
    pub(super) async fn update(
        &self,
        id: &str,
        change: impl Fn(&KeyRecord) -> Result<Option<KeyRecord>, StoreError>,
    ) -> Result<KeyRecord, StoreError> {
        let mut state = self.state.lock().await;
        let current = state
            .records
            .get(id)
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        match change(current)? {
            None => Ok(current.clone()),
            Some(next) => {
                self.commit(&mut state, next.clone()).await?;
                Ok(next)
            }
        }
    }

    /// Write the state with `record` put in, and adopt it in memory only once it is on disk,
    /// so a failed write leaves memory and file agreeing.
    async fn commit(&self, state: &mut State, record: KeyRecord) -> Result<(), StoreError> {
        let mut records = state.records.clone();
        records.insert(record.id.clone(), record);
        let next = State {
            version: state.version + 1,
            records,
        };
        write(&self.path, &next).await?;
        *state = next;
        Ok(())
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<State, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt(format!("{}: {detail}", path.display()));
    let document: Document = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut records = BTreeMap::new();
    for record in document.keys {
        record.validate().map_err(|e| corrupt(e.to_string()))?;
        let id = record.id.clone();
        if records.insert(id.clone(), record).is_some() {
            return Err(corrupt(format!("key {id:?} appears twice")));
        }
    }
    Ok(State {
        version: document.version,
        records,
    })
}

async fn write(path: &Path, state: &State) -> Result<(), StoreError> {
    let document = state.snapshot();
    let document = Document {
        version: document.version,
        keys: document.records,
    };
    let mut bytes = serde_json::to_vec_pretty(&document)
        .map_err(|e| StoreError::Corrupt(format!("serializing {}: {e}", path.display())))?;
    bytes.push(b'\n');
    let owned = path.to_path_buf();
    // One blocking task for the whole sequence: it is a handful of syscalls that must run in
    // order, and fsync can block for a while.
    tokio::task::spawn_blocking(move || write_atomically(&owned, &bytes))
        .await
        .map_err(|e| io_error(path, "writing", &io::Error::other(e)))?
        .map_err(|e| io_error(path, "writing", &e))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".tmp-{}", std::process::id()));
    let temp = dir.join(temp_name);
    let result = write_synced(&temp, bytes).and_then(|()| fs::rename(&temp, path));
    if result.is_err() {
        // Best effort: the error being returned matters more than a leftover temp file.
        let _ = fs::remove_file(&temp);
    }
    result?;
    // The rename is durable only once the directory entry is on disk too.
    File::open(dir)?.sync_all()
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        // Digests are not keys, but tenants, users and labels are nobody else's business.
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn io_error(path: &Path, doing: &str, e: &io::Error) -> StoreError {
    StoreError::Unavailable(format!("{doing} {}: {e}", path.display()))
}
