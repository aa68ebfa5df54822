//! Compiled HTTPRoute rules: matches, filters, weighted backends, timeouts and retries.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use regex::Regex;

use super::{AiBackend, AiRouteOverrides, Cluster};

/// One `matches[]` entry of a rule, bound to its rule. A virtual host's entries are sorted by
/// Gateway API precedence, so the first entry that matches a request wins.
#[derive(Debug)]
pub struct RouteEntry {
    pub matcher: RouteMatch,
    pub rule: Arc<RuleIr>,
}

#[derive(Debug, Clone)]
pub struct RouteMatch {
    pub path: PathMatch,
    pub headers: Vec<HeaderMatch>,
    pub query_params: Vec<QueryParamMatch>,
    pub method: Option<Method>,
}

#[derive(Debug, Clone)]
pub enum PathMatch {
    Exact(String),
    /// Prefix without trailing slash ("/" is stored as ""); matches on path-segment boundaries.
    Prefix(String),
    /// Anchored at both ends, as Gateway API implementations (RE2 full match) do.
    Regex(Regex),
}

#[derive(Debug, Clone)]
pub struct HeaderMatch {
    pub name: HeaderName,
    pub value: StringMatch,
}

#[derive(Debug, Clone)]
pub struct QueryParamMatch {
    /// Query parameter names match exactly (case-sensitive), per the spec.
    pub name: String,
    pub value: StringMatch,
}

#[derive(Debug, Clone)]
pub enum StringMatch {
    Exact(String),
    Regex(Regex),
}

impl StringMatch {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(s) => s == value,
            StringMatch::Regex(r) => r.is_match(value),
        }
    }
}

/// A compiled rule of an HTTPRoute.
#[derive(Debug)]
pub struct RuleIr {
    /// `namespace/name` of the HTTPRoute.
    pub route: Arc<str>,
    /// The rule's `name`, or its index when unnamed.
    pub rule: Arc<str>,
    pub filters: Vec<Filter>,
    pub backends: Vec<WeightedBackend>,
    /// Sum of backend weights; 0 means every request gets 500 (no backend can serve).
    pub total_weight: u32,
    pub timeouts: Timeouts,
    pub retry: Option<RetryPolicy>,
    /// The route's `AIPolicy` settings, overriding the Gateway's for this rule.
    pub ai: Option<Arc<AiRouteOverrides>>,
    /// The route's `AccessPolicy`, replacing its Gateway's.
    pub access: Option<Arc<sluice_policy::auth::AccessPolicy>>,
    /// The route's `TokenRateLimitPolicy`, replacing its Gateway's.
    pub rate_limits: Option<Arc<super::RateLimits>>,
    /// The route's PostRouting processors, after its Gateway's.
    pub post_routing: Option<Arc<super::Pipeline>>,
}

impl RuleIr {
    /// Whether a rate-limit policy of this rule (the route's, or one of its AI backends')
    /// counts input tokens.
    pub fn counts_tokens(&self) -> bool {
        self.rate_limits.as_ref().is_some_and(|p| p.counts_tokens())
            || self.backends.iter().any(|b| match &b.target {
                BackendTarget::Ai(ai) => ai.rate_limits.as_ref().is_some_and(|p| p.counts_tokens()),
                _ => false,
            })
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Timeouts {
    /// Whole request, from receipt to response headers, across retries. `None` = no limit.
    pub request: Option<Duration>,
    /// One attempt to the backend. `None` = no limit.
    pub backend_request: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub codes: Vec<u16>,
    /// Total retries after the first attempt.
    pub attempts: u32,
    pub backoff: Duration,
}

#[derive(Debug)]
pub struct WeightedBackend {
    pub weight: u32,
    pub target: BackendTarget,
    pub filters: Vec<Filter>,
}

#[derive(Debug)]
pub enum BackendTarget {
    Cluster(Arc<Cluster>),
    /// An `AIBackend`: the request goes through the AI path (translation, credentials, failover).
    Ai(Arc<AiBackend>),
    /// A reference that could not be resolved: requests sent here get 500 (the spec's
    /// behaviour), and the reason is logged.
    Invalid(Arc<str>),
}

#[derive(Debug)]
pub enum Filter {
    RequestHeaders(HeaderModifier),
    ResponseHeaders(HeaderModifier),
    Redirect(Redirect),
    Rewrite(Rewrite),
    Mirror(Mirror),
}

#[derive(Debug, Default)]
pub struct HeaderModifier {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub add: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

#[derive(Debug)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
    pub port: Option<u16>,
    pub status: u16,
}

#[derive(Debug)]
pub struct Rewrite {
    pub hostname: Option<HeaderValue>,
    pub path: Option<PathModifier>,
}

#[derive(Debug)]
pub enum PathModifier {
    Full(String),
    /// Replaces the prefix the rule matched with this value.
    Prefix(String),
}

#[derive(Debug)]
pub struct Mirror {
    pub target: BackendTarget,
    /// Fraction of requests mirrored, in parts per million.
    pub per_million: u32,
}
