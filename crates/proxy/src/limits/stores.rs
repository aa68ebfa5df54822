//! Where limits are kept: this process's memory, and Redis when replicas must agree.
//!
//! The shared store sits behind a small breaker: after a failed call it is skipped for
//! [`REST`], so while Redis is down every request is decided at once by its policy's failure
//! mode instead of each waiting out a timeout; the first request after the rest tries Redis
//! again, so recovery follows within [`REST`] of Redis coming back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use sluice_state::limits::Limiter;
use sluice_state::redis::{RedisConn, RedisSettings};

/// How long the shared store is skipped after a failure.
pub const REST: Duration = Duration::from_millis(100);

/// A Redis call for a limit answers within this, or counts as a failure: admission waits on it.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(250);

/// Which store a reservation was made in; its settlement goes to the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Local,
    Shared,
}

impl Which {
    pub fn as_str(self) -> &'static str {
        match self {
            Which::Local => "memory",
            Which::Shared => "redis",
        }
    }
}

/// The stores of one gateway process, kept across reloads.
pub struct Stores {
    local: Arc<Limiter>,
    shared: ArcSwapOption<Limiter>,
    /// Whether `--redis-url` was given (the shared store may still be connecting).
    shared_configured: std::sync::atomic::AtomicBool,
    epoch: Instant,
    /// Milliseconds after `epoch` until which the shared store is skipped.
    resting_until_ms: AtomicU64,
}

impl Default for Stores {
    fn default() -> Self {
        Stores {
            local: Arc::new(Limiter::memory()),
            shared: ArcSwapOption::empty(),
            shared_configured: Default::default(),
            epoch: Instant::now(),
            resting_until_ms: AtomicU64::new(0),
        }
    }
}

impl Stores {
    pub fn local(&self) -> &Arc<Limiter> {
        &self.local
    }

    /// The shared store, unless it is not connected yet or resting after a failure.
    pub fn shared(&self) -> Option<Arc<Limiter>> {
        let now = self.epoch.elapsed().as_millis() as u64;
        if now < self.resting_until_ms.load(Ordering::Acquire) {
            return None;
        }
        self.shared.load_full()
    }

    /// The shared store if connected, resting or not.
    pub fn shared_raw(&self) -> Option<Arc<Limiter>> {
        self.shared.load_full()
    }

    pub fn get(&self, which: Which) -> Option<Arc<Limiter>> {
        match which {
            Which::Local => Some(self.local.clone()),
            Which::Shared => self.shared(),
        }
    }

    /// A shared-store call failed: skip it for [`REST`].
    pub fn trip(&self) {
        let until = (self.epoch.elapsed() + REST).as_millis() as u64;
        self.resting_until_ms.fetch_max(until, Ordering::AcqRel);
    }

    pub fn shared_configured(&self) -> bool {
        self.shared_configured.load(Ordering::Acquire)
    }

    /// Connects the shared store in the background (retrying every [`REST`] until Redis
    /// answers), so the gateway starts, and follows its policies' failure modes, while Redis is
    /// still down.
    pub fn connect_shared(self: &Arc<Self>, url: String, prefix: String) {
        self.shared_configured.store(true, Ordering::Release);
        let stores = self.clone();
        tokio::spawn(async move {
            let settings = RedisSettings {
                connect_timeout: Duration::from_secs(1),
                command_timeout: COMMAND_TIMEOUT,
            };
            let mut warned = false;
            loop {
                match RedisConn::connect_with(&url, settings).await {
                    Ok(conn) => match Limiter::redis(Arc::new(conn), &prefix).await {
                        Ok(limiter) => {
                            tracing::info!(store = %limiter.describe(), "rate-limit store connected");
                            stores.shared.store(Some(Arc::new(limiter)));
                            return;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "rate limits cannot use Redis");
                            return;
                        }
                    },
                    Err(e) => {
                        if !warned {
                            tracing::warn!(error = %e, "rate-limit store not reachable yet; policies follow their failure mode until it is");
                            warned = true;
                        }
                        tokio::time::sleep(REST).await;
                    }
                }
            }
        });
    }
}
