//! `TokenRateLimitPolicy` (sluice.dev/v1alpha1): limits and budgets counted in what inference
//! costs (tokens, money) or in requests, attached to a Gateway, an HTTPRoute or an AIBackend's
//! `Backend`.
//!
//! ```yaml
//! spec:
//!   targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: ai}]
//!   store: Redis                  # Local (default) or Redis (--redis-url): replicas agree
//!   failureMode: FailOpen         # when Redis is unreachable: FailOpen (local limiter) or FailClosed (503)
//!   rules:
//!   - name: tenant-tokens
//!     bucketBy: [{identity: tenant}, {model: {}}]
//!     cost: {tokens: Total}       # or {requests: {}}, or {weighted: {input: 1, output: 4, cachedInput: 0.1}}
//!     limits: [{amount: 20000, period: 1m}, {amount: 2000000, period: 24h}]
//!     defaultMaxTokens: 1024      # reserved when the client sends no output cap
//!   budgets:
//!   - {name: tenant-month, bucketBy: [{identity: tenant}], usd: 500, period: Month}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ai::PolicyTargetRef;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenRateLimitPolicySpec {
    pub target_refs: Vec<PolicyTargetRef>,
    /// `Local` (default: this process only) or `Redis` (shared through `--redis-url`).
    #[serde(default)]
    pub store: Option<String>,
    /// When the store is unreachable: `FailOpen` (default: the local limiter decides, counted
    /// and logged) or `FailClosed` (503).
    #[serde(default)]
    pub failure_mode: Option<String>,
    #[serde(default)]
    pub rules: Vec<RateRuleSpec>,
    #[serde(default)]
    pub budgets: Vec<BudgetSpec>,
}

/// One part of a bucket's identity: requests with equal values share a bucket.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BucketPart {
    /// `tenant`, `user` or `key` (the API key id) of the caller's identity (an AccessPolicy).
    #[serde(default)]
    pub identity: Option<String>,
    /// A request header's value.
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub client_address: Option<Empty>,
    #[serde(default)]
    pub model: Option<Empty>,
    #[serde(default)]
    pub route: Option<Empty>,
}

/// `{}`: a part that takes no settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CostSpec {
    /// One per request.
    #[serde(default)]
    pub requests: Option<Empty>,
    /// `Input`, `Output` or `Total` tokens.
    #[serde(default)]
    pub tokens: Option<String>,
    /// Tokens of each kind times a weight, summed; kinds not given weigh 0.
    #[serde(default)]
    pub weighted: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LimitSpec {
    pub amount: u64,
    /// A duration (`1m`, `24h`): the bucket refills `amount` over it.
    pub period: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateRuleSpec {
    pub name: String,
    /// Empty: one bucket for everything the policy covers.
    #[serde(default)]
    pub bucket_by: Vec<BucketPart>,
    pub cost: CostSpec,
    pub limits: Vec<LimitSpec>,
    /// `Enforce` (default) or `Shadow` (decide, count and log; never refuse).
    #[serde(default)]
    pub mode: Option<String>,
    /// Output tokens reserved when the request names no cap. Default 4096.
    #[serde(default)]
    pub default_max_tokens: Option<u64>,
    /// Send `defaultMaxTokens` to the provider when the client named no cap, so the
    /// reservation is an upper bound. Default false.
    #[serde(default)]
    pub inject_max_tokens: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BudgetSpec {
    pub name: String,
    #[serde(default)]
    pub bucket_by: Vec<BucketPart>,
    /// A token budget (input + output)...
    #[serde(default)]
    pub tokens: Option<u64>,
    /// ...or a money budget in USD, from the AIPolicy price table.
    #[serde(default)]
    pub usd: Option<f64>,
    /// `Day` or `Month` (UTC calendar).
    pub period: String,
    #[serde(default)]
    pub mode: Option<String>,
}
