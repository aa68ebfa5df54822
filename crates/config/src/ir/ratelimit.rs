//! Token rate limits and budgets as the data plane reads them.

use std::sync::Arc;

use sluice_llm::Usage;
pub use sluice_state::limits::{Limit, Limits};

/// Output tokens reserved for a request that names no cap, unless a rule says otherwise.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// One `TokenRateLimitPolicy`, compiled.
#[derive(Debug)]
pub struct RateLimits {
    /// `namespace/name` of the policy.
    pub name: Arc<str>,
    /// Buckets live in Redis (shared by replicas) rather than in this process.
    pub shared: bool,
    /// When the shared store is unreachable: decide with the local limiter (true) or answer 503.
    pub fail_open: bool,
    pub rules: Vec<RateRule>,
    pub budgets: Vec<BudgetRule>,
}

impl RateLimits {
    /// Whether admission needs the request's input tokens counted.
    pub fn counts_tokens(&self) -> bool {
        !self.budgets.is_empty()
            || self
                .rules
                .iter()
                .any(|r| matches!(r.cost, Cost::Tokens(w) if w.input + w.cached_input + w.cache_creation > 0.0))
    }
}

/// What requests with equal values share a bucket by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketKey {
    Tenant,
    User,
    KeyId,
    Header(http::HeaderName),
    ClientAddress,
    Model,
    Route,
}

#[derive(Debug)]
pub struct RateRule {
    pub name: Arc<str>,
    pub bucket_by: Vec<BucketKey>,
    pub cost: Cost,
    /// Several apply at once; checked at load, so the store does not check them per request.
    pub limits: Limits,
    pub shadow: bool,
    /// Output tokens reserved when the request names no cap.
    pub default_max_tokens: u64,
    pub inject_max_tokens: bool,
}

/// What one request costs against a limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cost {
    Requests,
    Tokens(Weights),
}

/// Weights of each kind of token; a cost is their weighted sum, rounded up.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Weights {
    /// Input tokens not read from or written to a cache.
    pub input: f64,
    pub cached_input: f64,
    pub cache_creation: f64,
    /// Output tokens, reasoning included.
    pub output: f64,
}

impl Weights {
    /// The reservation: input counted at the full input weight (what will be cached is not
    /// known before the answer), and the whole output cap.
    pub fn estimate(&self, input: u64, output_cap: u64) -> u64 {
        let max_input = self.input.max(self.cached_input).max(self.cache_creation);
        (input as f64 * max_input + output_cap as f64 * self.output).ceil() as u64
    }

    /// What the answer actually cost.
    pub fn actual(&self, u: &Usage) -> u64 {
        let plain = u.input.saturating_sub(u.cached_input + u.cache_creation);
        (plain as f64 * self.input
            + u.cached_input as f64 * self.cached_input
            + u.cache_creation as f64 * self.cache_creation
            + u.output as f64 * self.output)
            .ceil() as u64
    }
}

impl Cost {
    pub fn estimate(&self, input: u64, output_cap: u64) -> u64 {
        match self {
            Cost::Requests => 1,
            Cost::Tokens(w) => w.estimate(input, output_cap),
        }
    }

    pub fn actual(&self, u: &Usage) -> u64 {
        match self {
            Cost::Requests => 1,
            Cost::Tokens(w) => w.actual(u),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetPeriod {
    Day,
    Month,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BudgetAmount {
    /// Input + output tokens.
    Tokens(u64),
    /// Micro-dollars (USD × 10⁶), priced with the Gateway's AIPolicy price table.
    MicroUsd(u64),
}

#[derive(Debug)]
pub struct BudgetRule {
    pub name: Arc<str>,
    pub bucket_by: Vec<BucketKey>,
    pub amount: BudgetAmount,
    pub period: BudgetPeriod,
    pub shadow: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_costs_reserve_high_and_settle_exactly() {
        let w = Weights {
            input: 1.0,
            cached_input: 0.1,
            cache_creation: 1.25,
            output: 4.0,
        };
        // Reservation: 100 input at the highest input weight + 50 output × 4.
        assert_eq!(w.estimate(100, 50), 325);
        let u = Usage {
            input: 100,
            cached_input: 60,
            cache_creation: 20,
            output: 10,
            ..Usage::default()
        };
        // 20 plain + 60 × 0.1 + 20 × 1.25 + 10 × 4 = 20 + 6 + 25 + 40.
        assert_eq!(w.actual(&u), 91);
        assert_eq!(Cost::Requests.actual(&u), 1);
    }
}
