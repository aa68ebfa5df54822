//! Keeping a replica's copy of the key set current without the request path ever waiting on
//! the store.
//!
//! A background task asks the store for its version every interval (one GET in Redis) and
//! reloads everything only when the version moved. Reloads — the task's and those asked for
//! through [`KeyWatch::refresh`] — are serialised, so an older snapshot can never replace a
//! newer one and `on_change` sees the snapshots in order. While the store is unreachable the
//! last good records stay in effect; after an outage the next successful poll reloads whatever
//! the version says, since the store may have lost its data meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::{KeyRecord, KeyStore};
use crate::StoreError;

type OnChange = dyn Fn(Arc<Vec<KeyRecord>>) + Send + Sync;

/// Polls below this would only load the store, not make revocations faster in practice.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Keeps a store's records in process, current within the poll interval.
///
/// Dropping it stops the background task.
pub struct KeyWatch {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

struct Shared {
    store: Arc<KeyStore>,
    records: ArcSwap<Vec<KeyRecord>>,
    healthy: AtomicBool,
    loaded: Mutex<Loaded>,
    on_change: Box<OnChange>,
}

/// What the records in effect were loaded from; guarded by the reload lock.
struct Loaded {
    version: u64,
    /// Set by a failed poll: reload on the next success even if the version looks the same.
    stale: bool,
}

impl KeyWatch {
    /// Load once (an unreadable store is an error here), then poll `version()` every `every`
    /// and reload on change. `on_change` gets the full record list after every load, the first
    /// included; it runs on the watcher's task, so it should be quick. Needs a Tokio runtime.
    pub async fn start(
        store: Arc<KeyStore>,
        every: Duration,
        on_change: impl Fn(Arc<Vec<KeyRecord>>) + Send + Sync + 'static,
    ) -> Result<KeyWatch, StoreError> {
        let snapshot = store.snapshot().await?;
        let records = Arc::new(snapshot.records);
        on_change(Arc::clone(&records));
        let shared = Arc::new(Shared {
            store,
            records: ArcSwap::new(records),
            healthy: AtomicBool::new(true),
            loaded: Mutex::new(Loaded {
                version: snapshot.version,
                stale: false,
            }),
            on_change: Box::new(on_change),
        });
        let task = tokio::spawn(poll_forever(Arc::clone(&shared), every.max(MIN_INTERVAL)));
        Ok(KeyWatch { shared, task })
    }

    /// The records in effect: lock-free, never waits on the store.
    pub fn records(&self) -> Arc<Vec<KeyRecord>> {
        self.shared.records.load_full()
    }

    /// False from a failed poll until the next successful one.
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }

    /// Reload now, whatever the version says (after the admin API's own write, so this
    /// replica sees it at once). On error the previous records stay in effect.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        self.shared.check(true).await
    }

    /// The store being watched.
    pub fn store(&self) -> &Arc<KeyStore> {
        &self.shared.store
    }
}

impl Drop for KeyWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn poll_forever(shared: Arc<Shared>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    // After a slow poll (a Redis timeout), wait a full interval rather than firing a burst.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick completes at once; the initial load already happened in start().
    ticks.tick().await;
    loop {
        ticks.tick().await;
        // Errors were logged by check(); the watcher's job is to keep trying.
        let _ = shared.check(false).await;
    }
}

impl Shared {
    /// Reload if forced, after an outage, or when the version moved; record the outcome.
    async fn check(&self, force: bool) -> Result<(), StoreError> {
        let mut loaded = self.loaded.lock().await;
        let result = self.reload_if_needed(&mut loaded, force).await;
        match &result {
            Ok(()) => {
                if !self.healthy.swap(true, Ordering::AcqRel) {
                    tracing::info!(
                        store = %self.store.describe(),
                        keys = self.records.load().len(),
                        "API key store reachable again"
                    );
                }
            }
            Err(error) => {
                loaded.stale = true;
                // Once per outage: a poll every 200 ms would otherwise flood the log.
                if self.healthy.swap(false, Ordering::AcqRel) {
                    tracing::warn!(
                        store = %self.store.describe(),
                        %error,
                        keys = self.records.load().len(),
                        "API key store unreachable; keeping the last loaded keys"
                    );
                }
            }
        }
        result
    }

    async fn reload_if_needed(&self, loaded: &mut Loaded, force: bool) -> Result<(), StoreError> {
        if !force && !loaded.stale && self.store.version().await? == loaded.version {
            return Ok(());
        }
        let snapshot = self.store.snapshot().await?;
        let records = Arc::new(snapshot.records);
        self.records.store(Arc::clone(&records));
        *loaded = Loaded {
            version: snapshot.version,
            stale: false,
        };
        (self.on_change)(records);
        Ok(())
    }
}
