//! Limits and budgets in Redis, shared by every replica.
//!
//! Each operation is one Lua script run (`scripts.rs`) over the keys of one bucket, all in one
//! slot (`naming.rs`), so a reservation checks and takes every limit atomically whichever
//! replica sends it. The scripts return raw levels; the states, waits and decisions reported to
//! the caller are computed by the same Rust as in memory (`gcra.rs`). Every call is bounded by
//! the [`RedisConn`] timeouts and fails as [`StoreError::Unavailable`].

use std::sync::Arc;
use std::time::SystemTime;

use ::redis::{Script, ScriptInvocation};

use super::budget::{self, Budget, BudgetDecision, BudgetUsage, Window, MAX_SPEND};
use super::gcra::{self, Meter};
use super::naming::Names;
use super::{clock, scripts, Decision, Limit, LimitState};
use crate::redis::RedisConn;
use crate::StoreError;

/// Script reply status: the stored value at the given key index is unreadable.
const CORRUPT: i64 = -1;

/// Limits and budgets in Redis.
pub struct RedisLimiter {
    conn: Arc<RedisConn>,
    names: Names,
    reserve: Script,
    settle: Script,
    state: Script,
    budget_reserve: Script,
    budget_settle: Script,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RedisLimiter")
            .field(&self.describe())
            .finish()
    }
}

impl RedisLimiter {
    /// Use `conn` with keys under `{prefix:…}`. Contacts nothing: scripts are loaded on first
    /// use (and again after a Redis restart).
    pub fn new(conn: Arc<RedisConn>, prefix: &str) -> Result<Self, StoreError> {
        Ok(Self {
            conn,
            names: Names::new(prefix)?,
            reserve: Script::new(&scripts::reserve()),
            settle: Script::new(&scripts::settle()),
            state: Script::new(&scripts::state()),
            budget_reserve: Script::new(&scripts::budget_reserve()),
            budget_settle: Script::new(&scripts::budget_settle()),
        })
    }

    /// `redis://host:port/db (prefix <prefix>)`, without credentials.
    pub fn describe(&self) -> String {
        format!("{} (prefix {})", self.conn.describe(), self.names.prefix())
    }

    pub async fn reserve(
        &self,
        bucket: &str,
        limits: &[Limit],
        cost: u64,
        now: SystemTime,
    ) -> Result<Decision, StoreError> {
        let meters = gcra::meters(limits)?;
        let now_us = clock::micros(now)?;
        if gcra::never_fits(&meters, cost) {
            let (_, used) = self
                .run_rate(&self.state, bucket, &meters, now_us, |_| 0)
                .await?;
            return Ok(gcra::never(&meters, &used, now_us));
        }
        // Not never: cost ≤ every amount ≤ 2^48, exact as i64 and in Lua.
        let tokens = i64::try_from(cost).unwrap_or(i64::MAX);
        let (status, used) = self
            .run_rate(&self.reserve, bucket, &meters, now_us, |_| tokens)
            .await?;
        Ok(gcra::decision(&meters, &used, cost, status == 1, now_us))
    }

    pub async fn settle(
        &self,
        bucket: &str,
        limits: &[Limit],
        delta: i64,
        now: SystemTime,
    ) -> Result<Vec<LimitState>, StoreError> {
        let meters = gcra::meters(limits)?;
        let now_us = clock::micros(now)?;
        let (_, used) = self
            .run_rate(&self.settle, bucket, &meters, now_us, |m| {
                m.scale.bounded_tokens(delta)
            })
            .await?;
        Ok(gcra::states(&meters, &used, now_us))
    }

    pub async fn state(
        &self,
        bucket: &str,
        limits: &[Limit],
        now: SystemTime,
    ) -> Result<Vec<LimitState>, StoreError> {
        let meters = gcra::meters(limits)?;
        let now_us = clock::micros(now)?;
        let (_, used) = self
            .run_rate(&self.state, bucket, &meters, now_us, |_| 0)
            .await?;
        Ok(gcra::states(&meters, &used, now_us))
    }

    /// Run a rate script over `meters`; its status and each limit's level after it.
    async fn run_rate(
        &self,
        script: &Script,
        bucket: &str,
        meters: &[Meter],
        now_us: u64,
        tokens: impl Fn(&Meter) -> i64,
    ) -> Result<(i64, Vec<u64>), StoreError> {
        if meters.is_empty() {
            // Nothing to check, and a script without keys could run on any Cluster node.
            return Ok((1, Vec::new()));
        }
        let keys: Vec<String> = meters.iter().map(|m| self.names.rate(bucket, m)).collect();
        let mut invocation = script.prepare_invoke();
        for (m, key) in meters.iter().zip(&keys) {
            let s = &m.scale;
            invocation
                .key(key)
                .arg(s.tick(now_us))
                .arg(s.per_tick)
                .arg(s.per_token)
                .arg(s.capacity)
                .arg(s.tick_us)
                .arg(tokens(m));
        }
        let reply: Vec<i64> = self.conn.invoke(&invocation).await?;
        let corrupt =
            |detail: &str| StoreError::Corrupt(format!("{}: {detail}", self.conn.describe()));
        match reply.as_slice() {
            [CORRUPT, index] => {
                let key = usize::try_from(*index - 1)
                    .ok()
                    .and_then(|i| keys.get(i))
                    .map_or("?", String::as_str);
                Err(corrupt(&format!("key {key:?} does not hold a level")))
            }
            [status, used @ ..] if used.len() == meters.len() => {
                let used = used
                    .iter()
                    .map(|&u| u64::try_from(u))
                    .collect::<Result<Vec<u64>, _>>()
                    .map_err(|_| corrupt(&format!("negative level in {reply:?}")))?;
                Ok((*status, used))
            }
            _ => Err(corrupt(&format!(
                "unexpected reply {reply:?} for {} limits",
                meters.len()
            ))),
        }
    }

    pub async fn reserve_budget(
        &self,
        bucket: &str,
        budget: &Budget,
        amount: u64,
        now: SystemTime,
    ) -> Result<BudgetDecision, StoreError> {
        budget.check()?;
        budget.check_amount(amount)?;
        let window = budget.period.window(now)?;
        let key = self.names.budget(bucket, &window.id);
        let mut invocation = self.budget_reserve.prepare_invoke();
        invocation
            .key(&key)
            .arg(amount)
            .arg(budget.limit)
            .arg(expires_ms(&window)?);
        let (status, spent) = self.run_budget(&invocation, &key).await?;
        let usage = budget.usage(spent);
        Ok(BudgetDecision {
            admitted: status == 1,
            spent: usage.spent,
            remaining: usage.remaining,
            resets_at: window.end,
            window,
        })
    }

    pub async fn settle_budget(
        &self,
        bucket: &str,
        budget: &Budget,
        window: &Window,
        delta: i64,
    ) -> Result<BudgetUsage, StoreError> {
        budget.check()?;
        budget.check_window(window)?;
        let key = self.names.budget(bucket, &window.id);
        let mut invocation = self.budget_settle.prepare_invoke();
        invocation
            .key(&key)
            .arg(budget::bounded_delta(delta))
            .arg(expires_ms(window)?);
        let (_, spent) = self.run_budget(&invocation, &key).await?;
        Ok(budget.usage(spent))
    }

    pub async fn spent(
        &self,
        bucket: &str,
        budget: &Budget,
        now: SystemTime,
    ) -> Result<BudgetUsage, StoreError> {
        budget.check()?;
        let window = budget.period.window(now)?;
        let key = self.names.budget(bucket, &window.id);
        let raw: Option<String> = self.conn.query(::redis::cmd("GET").arg(&key)).await?;
        let spent = match raw {
            None => 0,
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|&spent| spent <= MAX_SPEND)
                .ok_or_else(|| self.corrupt_budget(&key))?,
        };
        Ok(budget.usage(spent))
    }

    async fn run_budget(
        &self,
        invocation: &ScriptInvocation<'_>,
        key: &str,
    ) -> Result<(i64, u64), StoreError> {
        let reply: Vec<i64> = self.conn.invoke(invocation).await?;
        match reply.as_slice() {
            [status @ (0 | 1), spent] => {
                let spent = u64::try_from(*spent).map_err(|_| self.corrupt_budget(key))?;
                Ok((*status, spent))
            }
            _ => Err(self.corrupt_budget(key)),
        }
    }

    fn corrupt_budget(&self, key: &str) -> StoreError {
        StoreError::Corrupt(format!(
            "{}: key {key:?} does not hold a budget spend",
            self.conn.describe()
        ))
    }
}

/// When a window's counter expires, in ms since the epoch (rounded up).
fn expires_ms(window: &Window) -> Result<u64, StoreError> {
    Ok(budget::expires_us(window)?.div_ceil(1000))
}
