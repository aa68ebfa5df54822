//! The Redis connection shared by every Redis-backed store (API keys now; rate-limit counters
//! and budgets later).
//!
//! One [`RedisConn`] wraps one multiplexed, auto-reconnecting [`ConnectionManager`], so all
//! stores of a process share a single socket. Every call is bounded by a deadline: a Redis that
//! hangs (rather than refusing connections) must not stall the key watcher or an admin request,
//! so after the deadline the caller gets [`StoreError::Unavailable`] and the manager keeps
//! reconnecting in the background.

mod target;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, Cmd, FromRedisValue, Pipeline, RedisError, RedisResult, ScriptInvocation};

use crate::StoreError;

/// Timeouts of a [`RedisConn`].
#[derive(Clone, Copy, Debug)]
pub struct RedisSettings {
    /// Bound on establishing the first connection (DNS, TCP, AUTH, SELECT).
    pub connect_timeout: Duration,
    /// Bound on every later command, including any reconnect it has to wait for.
    pub command_timeout: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        // One second each: a revocation has to reach every replica within a second, so a
        // watcher stuck longer than that on one poll is already failing its purpose.
        Self {
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
        }
    }
}

/// A connection to one Redis server (or proxy), cheap to clone.
#[derive(Clone)]
pub struct RedisConn {
    manager: ConnectionManager,
    describe: Arc<str>,
    secret: Option<Arc<str>>,
    command_timeout: Duration,
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConn")
            .field("target", &self.describe)
            .finish_non_exhaustive()
    }
}

impl RedisConn {
    /// Connect with the default timeouts.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, RedisSettings::default()).await
    }

    /// Connect and authenticate now, failing after `settings.connect_timeout`.
    ///
    /// A bad URL is [`StoreError::Invalid`]; an unreachable or refusing server is
    /// [`StoreError::Unavailable`]. Neither message contains the password.
    pub async fn connect_with(url: &str, settings: RedisSettings) -> Result<Self, StoreError> {
        let target = target::parse(url)?;
        let describe: Arc<str> = target.describe.into();
        let secret: Option<Arc<str>> = target.secret.map(Into::into);
        let unavailable = |e: RedisError| {
            let message = format!("connecting to {describe}: {e}");
            StoreError::Unavailable(target::scrub(&message, secret.as_deref()))
        };
        let client = Client::open(target.info).map_err(unavailable)?;
        // Few, short reconnect retries: callers poll again soon anyway, and a reconnect
        // stuck in a long backoff would delay recovery after Redis comes back.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.command_timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let manager = tokio::time::timeout(
            settings.connect_timeout,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!(
                "connecting to {describe}: no answer within {:?}",
                settings.connect_timeout
            ))
        })?
        .map_err(unavailable)?;
        Ok(Self {
            manager,
            describe,
            secret,
            command_timeout: settings.command_timeout,
        })
    }

    /// `redis://host:port/db`, never with credentials.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Run one command.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        let mut conn = self.manager.clone();
        self.bounded(async move { cmd.query_async(&mut conn).await })
            .await
    }

    /// Run a pipeline (use [`Pipeline::atomic`] for a consistent multi-key read).
    pub async fn query_pipeline<T: FromRedisValue>(
        &self,
        pipeline: &Pipeline,
    ) -> Result<T, StoreError> {
        let mut conn = self.manager.clone();
        self.bounded(async move { pipeline.query_async(&mut conn).await })
            .await
    }

    /// Run a Lua script: EVALSHA, loading the script first if the server does not know it yet
    /// (after a restart or a SCRIPT FLUSH).
    pub async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut conn = self.manager.clone();
        self.bounded(async move { invocation.invoke_async(&mut conn).await })
            .await
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.command_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.unavailable(&e.to_string())),
            Err(_) => {
                Err(self.unavailable(&format!("no answer within {:?}", self.command_timeout)))
            }
        }
    }

    fn unavailable(&self, detail: &str) -> StoreError {
        let message = format!("{}: {detail}", self.describe);
        StoreError::Unavailable(target::scrub(&message, self.secret.as_deref()))
    }
}
