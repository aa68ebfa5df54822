//! AI traffic in the runtime model: providers behind backends, and the per-Gateway and per-route
//! AI settings.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_llm::provider::{Credential, ProviderKind};

use super::Cluster;

/// An `AIBackend` ready for requests: provider settings, credential, where it lives.
#[derive(Debug)]
pub struct AiBackend {
    /// Index in `Snapshot::ai_backends` (health state is kept per index).
    pub id: usize,
    /// `namespace/name`.
    pub name: Arc<str>,
    pub provider: ProviderKind,
    pub credential: Credential,
    /// Where requests go; `None` for the in-process mock.
    pub cluster: Option<Arc<Cluster>>,
    /// The Host (`:authority`) the provider expects, e.g. `api.openai.com`.
    pub host: Option<Arc<str>>,
    pub region: Option<Arc<str>>,
    pub priority: u32,
    pub models: Vec<String>,
    pub model_rewrite: HashMap<String, String>,
    pub passthrough_client_auth: bool,
    /// The `TokenRateLimitPolicy` targeting this backend: checked before each attempt on it, so
    /// a backend whose quota is spent is skipped like an unavailable one.
    pub rate_limits: Option<Arc<super::RateLimits>>,
}

impl AiBackend {
    /// Whether this backend serves `model`: no `models` list means any; entries may be globs
    /// (`*` matches any run of characters, e.g. `gpt-4o*`).
    pub fn serves(&self, model: &str) -> bool {
        self.models.is_empty()
            || self.model_rewrite.contains_key(model)
            || self.models.iter().any(|m| glob_match(m, model))
    }

    /// The model name this provider gets for a client's `model`.
    pub fn upstream_model<'a>(&'a self, model: &'a str) -> &'a str {
        self.model_rewrite.get(model).map_or(model, String::as_str)
    }
}

/// A Gateway's AI settings (defaults when no `AIPolicy` targets it).
#[derive(Debug, Clone)]
pub struct AiListener {
    pub max_request_bytes: usize,
    pub aliases: HashMap<String, String>,
    pub prices: HashMap<String, Price>,
    pub route: AiRouteSettings,
}

pub const DEFAULT_MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;

impl Default for AiListener {
    fn default() -> Self {
        AiListener {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            aliases: HashMap::new(),
            prices: HashMap::new(),
            route: AiRouteSettings::default(),
        }
    }
}

/// What an HTTPRoute's `AIPolicy` sets for its rules; unset fields inherit the Gateway's.
#[derive(Debug, Clone, Default)]
pub struct AiRouteOverrides {
    pub allowed_regions: Option<Vec<Arc<str>>>,
    pub failover: Option<Failover>,
}

impl AiRouteSettings {
    /// The Gateway's settings with a route's overrides applied. Regions can only narrow: a
    /// route may restrict traffic further than its Gateway, never lift the Gateway's restriction.
    pub fn with(&self, o: &AiRouteOverrides) -> AiRouteSettings {
        let allowed_regions = match (&self.allowed_regions, &o.allowed_regions) {
            (None, r) | (r, None) => r.clone(),
            (Some(gw), Some(route)) => {
                Some(route.iter().filter(|r| gw.contains(r)).cloned().collect())
            }
        };
        AiRouteSettings {
            allowed_regions,
            failover: o.failover.unwrap_or(self.failover),
        }
    }
}

/// Settings that apply to a rule's AI backends: the Gateway's, narrowed by the route's policy.
#[derive(Debug, Clone, Default)]
pub struct AiRouteSettings {
    /// `None` = any region.
    pub allowed_regions: Option<Vec<Arc<str>>>,
    pub failover: Failover,
}

impl AiRouteSettings {
    pub fn region_allowed(&self, region: Option<&str>) -> bool {
        match &self.allowed_regions {
            None => true,
            Some(list) => region.is_some_and(|r| list.iter().any(|a| &**a == r)),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Failover {
    /// Attempts in all, first included; `None` = one per candidate backend.
    pub max_attempts: Option<u32>,
    pub max_retry_after: Duration,
    pub consecutive_failures: u32,
    pub ejection_time: Duration,
}

impl Default for Failover {
    fn default() -> Self {
        Failover {
            max_attempts: None,
            max_retry_after: Duration::ZERO,
            consecutive_failures: 5,
            ejection_time: Duration::from_secs(30),
        }
    }
}

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cached_input: f64,
    pub cache_creation: f64,
}

impl Price {
    /// The cost of `u` in USD: uncached input, cached input and cache writes each at their price.
    pub fn cost(&self, u: &sluice_llm::Usage) -> f64 {
        let plain = u.input.saturating_sub(u.cached_input + u.cache_creation);
        (plain as f64 * self.input
            + u.cached_input as f64 * self.cached_input
            + u.cache_creation as f64 * self.cache_creation
            + u.output as f64 * self.output)
            / 1_000_000.0
    }
}

pub use sluice_llm::glob_match;
