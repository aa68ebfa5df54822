//! Prometheus metrics of the data plane. Label values are shared `Arc<str>` from the IR, so a
//! request clones pointers, not strings.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sluice_config::ir::RateLimits;

/// A label value that is cheap to clone.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Label(pub Arc<str>);

impl Label {
    pub fn none() -> Label {
        Label(Arc::from(""))
    }
}

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(&self.0)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub gateway: Label,
    pub route: Label,
    pub backend: Label,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub gateway: Label,
    pub route: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    pub backend: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

/// Labels of the OpenTelemetry GenAI metrics (semantic conventions, Prometheus spelling).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GenAiLabels {
    pub gen_ai_operation_name: &'static str,
    pub gen_ai_provider_name: &'static str,
    pub gen_ai_request_model: Label,
    pub gen_ai_response_model: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub gen_ai_operation_name: &'static str,
    pub gen_ai_provider_name: &'static str,
    pub gen_ai_request_model: Label,
    pub gen_ai_response_model: Label,
    pub gen_ai_token_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AiBackendLabels {
    pub backend: Label,
    pub provider: &'static str,
    pub region: Label,
    pub outcome: &'static str,
}

/// An access-control decision: `outcome` is `allowed`, `unauthenticated` or `forbidden`;
/// `method` how the caller authenticated (empty when they did not).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    pub policy: Label,
    pub outcome: &'static str,
    pub reason: &'static str,
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AiCostLabels {
    pub provider: &'static str,
    pub model: Label,
    pub region: Label,
}

/// A rate-limit decision or token count: `rule` is a rule's or budget's name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RateLimitLabels {
    pub policy: Label,
    pub rule: Label,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    pub op: &'static str,
}

/// Token rate limits and budgets.
pub struct RateLimitMetrics {
    /// `outcome`: admitted, limited or shadow_limited.
    pub decisions: Family<RateLimitLabels, Counter>,
    /// Requests decided without the shared store (`outcome`: fail_open or fail_closed).
    pub fallbacks: Family<RateLimitLabels, Counter>,
    /// In each rule's unit (`outcome`: reserved, settled, refunded, overrun).
    pub tokens: Family<RateLimitLabels, Counter>,
    /// Redis calls of the shared store (`op`: reserve, settle).
    pub store_duration: HistFamily<StoreLabels>,
    pub store_errors: Family<StoreLabels, Counter>,
    /// Each policy's counters, resolved on first use (see [`PolicyCounters`]).
    policies: Mutex<HashMap<usize, CachedPolicy, BuildHasherDefault<AddressHasher>>>,
}

/// Hashes the policies' addresses (unique while their entries live, see [`CachedPolicy`]) with
/// one multiplication: the lookup is on every limited request, and nothing about it needs a
/// keyed hash.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        // Fibonacci hashing: the product's high bits mix in every bit of the address (whose
        // aligned low bits carry nothing); folding them down gives the low bits the table
        // indexes with the same mix.
        let h = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 32);
    }
}

struct CachedPolicy {
    /// Holds the policy's allocation (not the policy), so its address, the key, is not reused
    /// by another policy while the entry exists.
    policy: Weak<RateLimits>,
    counters: Arc<PolicyCounters>,
}

/// The `decisions` and `tokens` counters of one policy's rules and budgets, so that a request
/// increments them directly instead of hashing its labels to look each one up in its family.
/// Each is registered with its family on first use, so `/metrics` shows the same series as
/// looking them up would.
pub struct PolicyCounters {
    /// By rule index.
    pub rules: Vec<RuleCounters>,
    /// Decisions, by budget index.
    pub budgets: Vec<OutcomeCounters>,
}

/// `ratelimit_decisions` of one rule or budget.
pub struct OutcomeCounters {
    pub admitted: LazyCounter,
    pub limited: LazyCounter,
    pub shadow_limited: LazyCounter,
}

/// One rule's decisions and `ratelimit_tokens`.
pub struct RuleCounters {
    pub decisions: OutcomeCounters,
    pub reserved: LazyCounter,
    pub settled: LazyCounter,
    pub refunded: LazyCounter,
    pub overrun: LazyCounter,
}

/// A counter of a rate-limit family, looked up the first time it is used.
pub type LazyCounter = Lazy<RateLimitLabels, Counter>;

/// A metric of a family, looked up by its labels the first time it is used, then used directly.
pub struct Lazy<L, M> {
    family: Family<L, M>,
    labels: L,
    metric: OnceLock<M>,
}

impl<L: Clone + std::hash::Hash + Eq, M: Clone> Lazy<L, M> {
    pub fn new(family: &Family<L, M>, labels: L) -> Lazy<L, M> {
        Lazy {
            family: family.clone(),
            labels,
            metric: OnceLock::new(),
        }
    }

    pub fn get(&self) -> &M {
        self.metric
            .get_or_init(|| self.family.get_or_create(&self.labels).clone())
    }
}

impl OutcomeCounters {
    fn new(family: &Family<RateLimitLabels, Counter>, policy: &Label, rule: &Label) -> Self {
        let counter = |outcome| {
            LazyCounter::new(
                family,
                RateLimitLabels {
                    policy: policy.clone(),
                    rule: rule.clone(),
                    outcome,
                },
            )
        };
        OutcomeCounters {
            admitted: counter("admitted"),
            limited: counter("limited"),
            shadow_limited: counter("shadow_limited"),
        }
    }
}

impl PolicyCounters {
    fn new(m: &RateLimitMetrics, policy: &RateLimits) -> PolicyCounters {
        let name = Label(policy.name.clone());
        let rules = policy
            .rules
            .iter()
            .map(|r| {
                let rule = Label(r.name.clone());
                let tokens = |outcome| {
                    LazyCounter::new(
                        &m.tokens,
                        RateLimitLabels {
                            policy: name.clone(),
                            rule: rule.clone(),
                            outcome,
                        },
                    )
                };
                RuleCounters {
                    decisions: OutcomeCounters::new(&m.decisions, &name, &rule),
                    reserved: tokens("reserved"),
                    settled: tokens("settled"),
                    refunded: tokens("refunded"),
                    overrun: tokens("overrun"),
                }
            })
            .collect();
        let budgets = policy
            .budgets
            .iter()
            .map(|b| OutcomeCounters::new(&m.decisions, &name, &Label(b.name.clone())))
            .collect();
        PolicyCounters { rules, budgets }
    }
}

impl RateLimitMetrics {
    fn register(r: &mut Registry) -> RateLimitMetrics {
        let m = RateLimitMetrics {
            decisions: Family::default(),
            fallbacks: Family::default(),
            tokens: Family::default(),
            store_duration: Family::new_with_constructor(overhead_histogram),
            store_errors: Family::default(),
            policies: Mutex::default(),
        };
        r.register(
            "ratelimit_decisions",
            "Rate-limit and budget decisions by policy, rule (or budget) and outcome",
            m.decisions.clone(),
        );
        r.register(
            "ratelimit_store_fallbacks",
            "Requests decided without the shared store, by policy and failure mode",
            m.fallbacks.clone(),
        );
        r.register(
            "ratelimit_tokens",
            "Tokens (in each rule's unit) reserved at admission, settled from usage, refunded, and charged beyond the reservation",
            m.tokens.clone(),
        );
        r.register(
            "ratelimit_store_duration_seconds",
            "Latency of shared rate-limit store (Redis) calls",
            m.store_duration.clone(),
        );
        r.register(
            "ratelimit_store_errors",
            "Failed shared rate-limit store (Redis) calls",
            m.store_errors.clone(),
        );
        m
    }
}

impl RateLimitMetrics {
    /// The counters of `policy`, built on its first request (one short lookup by its address
    /// afterwards). Entries of policies no longer in use go when a new one is added.
    pub fn policy(&self, policy: &Arc<RateLimits>) -> Arc<PolicyCounters> {
        let key = Arc::as_ptr(policy) as usize;
        let mut cache = self.policies.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = cache.get(&key) {
            return entry.counters.clone();
        }
        cache.retain(|_, e| e.policy.strong_count() > 0);
        let counters = Arc::new(PolicyCounters::new(self, policy));
        cache.insert(
            key,
            CachedPolicy {
                policy: Arc::downgrade(policy),
                counters: counters.clone(),
            },
        );
        counters
    }
}

/// The GenAI metrics, registered under their OpenTelemetry names.
pub struct GenAiMetrics {
    pub token_usage: Family<TokenLabels, Histogram>,
    pub request_duration: Family<GenAiLabels, Histogram>,
    pub time_to_first_token: Family<GenAiLabels, Histogram>,
    pub time_per_output_token: Family<GenAiLabels, Histogram>,
    /// Total time minus time waiting on providers.
    pub gateway_overhead: Histogram,
    pub backend_requests: Family<AiBackendLabels, Counter>,
    pub cost_usd: Family<AiCostLabels, Counter<f64>>,
    /// The series above by their labels, for reporting without lookups.
    pub series: crate::ai::series::SeriesCache,
}

type HistFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn token_histogram() -> Histogram {
    Histogram::new([
        1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
        4194304.0, 16777216.0, 67108864.0,
    ])
}

fn request_histogram() -> Histogram {
    Histogram::new([
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ])
}

fn ttft_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ])
}

fn tpot_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
    ])
}

fn overhead_histogram() -> Histogram {
    Histogram::new([
        0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
        0.05, 0.1,
    ])
}

impl GenAiMetrics {
    fn register_own(&self, sluice: &mut Registry) {
        sluice.register(
            "ai_gateway_overhead_seconds",
            "Time an AI request spent in the gateway: total minus time waiting on providers",
            self.gateway_overhead.clone(),
        );
        sluice.register(
            "ai_backend_requests",
            "AI requests by the backend (and region) that served or failed them",
            self.backend_requests.clone(),
        );
        sluice.register(
            "ai_cost_usd",
            "Cost of AI requests in USD, from the configured price table",
            self.cost_usd.clone(),
        );
    }

    fn register_otel(root: &mut Registry) -> GenAiMetrics {
        let token_usage: HistFamily<TokenLabels> = Family::new_with_constructor(token_histogram);
        root.register(
            "gen_ai_client_token_usage",
            "Tokens used per request, by token type (OpenTelemetry gen_ai.client.token.usage)",
            token_usage.clone(),
        );
        let request_duration: HistFamily<GenAiLabels> =
            Family::new_with_constructor(request_histogram);
        root.register(
            "gen_ai_server_request_duration_seconds",
            "Time to answer an inference request (gen_ai.server.request.duration)",
            request_duration.clone(),
        );
        let time_to_first_token: HistFamily<GenAiLabels> =
            Family::new_with_constructor(ttft_histogram);
        root.register(
            "gen_ai_server_time_to_first_token_seconds",
            "Time to the first byte of the answer (gen_ai.server.time_to_first_token)",
            time_to_first_token.clone(),
        );
        let time_per_output_token: HistFamily<GenAiLabels> =
            Family::new_with_constructor(tpot_histogram);
        root.register(
            "gen_ai_server_time_per_output_token_seconds",
            "Time per output token after the first (gen_ai.server.time_per_output_token)",
            time_per_output_token.clone(),
        );
        let gateway_overhead = overhead_histogram();
        let backend_requests = Family::<AiBackendLabels, Counter>::default();
        let cost_usd = Family::<AiCostLabels, Counter<f64>>::default();
        GenAiMetrics {
            token_usage,
            request_duration,
            time_to_first_token,
            time_per_output_token,
            gateway_overhead,
            backend_requests,
            cost_usd,
            series: Default::default(),
        }
    }
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0,
    ]
    .into_iter()
}

pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<RouteLabels, Histogram>,
    pub upstream_duration: Family<BackendLabels, Histogram>,
    pub upstream_connect_errors: Family<BackendLabels, Counter>,
    pub active_connections: Gauge,
    pub connections_rejected: Counter,
    pub config_reloads: Family<ResultLabels, Counter>,
    pub config_generation: Gauge,
    pub access_log_dropped: Counter,
    pub auth_decisions: Family<AuthLabels, Counter>,
    /// Managed API keys in effect (after revocations), as last loaded from the key store.
    pub managed_keys: Gauge,
    pub gen_ai: GenAiMetrics,
    pub rate_limits: RateLimitMetrics,
    pub processors: ProcessorMetrics,
}

/// Payload processors.
pub struct ProcessorMetrics {
    pub decisions: Family<crate::pipeline::ProcessorLabels, Counter>,
    pub duration: HistFamily<crate::pipeline::ProcessorDurationLabels>,
    pub findings: Family<crate::pipeline::FindingLabels, Counter>,
}

impl ProcessorMetrics {
    fn register(r: &mut Registry) -> ProcessorMetrics {
        let m = ProcessorMetrics {
            decisions: Family::default(),
            duration: Family::new_with_constructor(overhead_histogram),
            findings: Family::default(),
        };
        r.register(
            "processor_decisions",
            "Payload processor runs by processor, phase (request, response) and outcome (continued, rejected, failed_open, failed_closed)",
            m.decisions.clone(),
        );
        r.register(
            "processor_duration_seconds",
            "Time a payload processor took, failures included",
            m.duration.clone(),
        );
        r.register(
            "guardrail_findings",
            "Guardrail findings by processor, detector and the action taken",
            m.findings.clone(),
        );
        m
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        // GenAI metrics keep their OpenTelemetry names; the gateway's own carry `sluice_`.
        let mut root = Registry::default();
        let gen_ai = GenAiMetrics::register_otel(&mut root);
        let registry = root.sub_registry_with_prefix("sluice");
        gen_ai.register_own(registry);
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by gateway, route, backend and status",
            requests.clone(),
        );
        let request_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        registry.register(
            "request_duration_seconds",
            "Time from request received to response complete",
            request_duration.clone(),
        );
        let upstream_duration = Family::<BackendLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        registry.register(
            "upstream_duration_seconds",
            "Time from sending upstream to upstream response headers",
            upstream_duration.clone(),
        );
        let upstream_connect_errors = Family::<BackendLabels, Counter>::default();
        registry.register(
            "upstream_connect_errors",
            "Failed connection attempts to upstreams",
            upstream_connect_errors.clone(),
        );
        let active_connections = Gauge::default();
        registry.register(
            "active_connections",
            "Open downstream connections",
            active_connections.clone(),
        );
        let connections_rejected = Counter::default();
        registry.register(
            "connections_rejected",
            "Downstream connections closed because the connection limit was reached",
            connections_rejected.clone(),
        );
        let config_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads by result",
            config_reloads.clone(),
        );
        let config_generation = Gauge::default();
        registry.register(
            "config_generation",
            "Generation of the configuration in effect",
            config_generation.clone(),
        );
        let access_log_dropped = Counter::default();
        registry.register(
            "access_log_dropped",
            "Access log lines dropped because the writer could not keep up",
            access_log_dropped.clone(),
        );
        let auth_decisions = Family::<AuthLabels, Counter>::default();
        registry.register(
            "auth_decisions",
            "Access-control decisions by policy, outcome, reason and authentication method",
            auth_decisions.clone(),
        );
        let managed_keys = Gauge::default();
        registry.register(
            "managed_api_keys",
            "Managed API keys in effect (revoked keys excluded)",
            managed_keys.clone(),
        );
        let rate_limits = RateLimitMetrics::register(registry);
        let processors = ProcessorMetrics::register(registry);
        Arc::new(Metrics {
            rate_limits,
            processors,
            registry: root,
            auth_decisions,
            managed_keys,
            gen_ai,
            requests,
            request_duration,
            upstream_duration,
            upstream_connect_errors,
            active_connections,
            connections_rejected,
            config_reloads,
            config_generation,
            access_log_dropped,
        })
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_config::ir::{BudgetAmount, BudgetPeriod, BudgetRule, Cost, RateRule};

    fn policy(name: &str) -> Arc<RateLimits> {
        Arc::new(RateLimits {
            name: Arc::from(name),
            shared: false,
            fail_open: true,
            rules: vec![RateRule {
                name: Arc::from("per-user"),
                bucket_by: vec![],
                cost: Cost::Requests,
                limits: sluice_state::limits::Limits::new(vec![sluice_state::limits::Limit::new(
                    10,
                    std::time::Duration::from_secs(60),
                )])
                .unwrap(),
                shadow: false,
                default_max_tokens: 16,
                inject_max_tokens: false,
            }],
            budgets: vec![BudgetRule {
                name: Arc::from("daily"),
                bucket_by: vec![],
                amount: BudgetAmount::Tokens(100),
                period: BudgetPeriod::Day,
                shadow: false,
            }],
        })
    }

    fn series(m: &Metrics) -> Vec<String> {
        m.encode()
            .lines()
            .filter(|l| l.starts_with("sluice_ratelimit_"))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn policy_counters_are_resolved_once_and_show_only_when_used() {
        let m = Metrics::new();
        let p = policy("ns/limits");
        let counters = m.rate_limits.policy(&p);
        assert!(Arc::ptr_eq(&counters, &m.rate_limits.policy(&p)));
        // Nothing is registered until a counter is used, as with looking labels up.
        assert!(series(&m).is_empty(), "{:?}", series(&m));
        counters.rules[0].decisions.admitted.get().inc();
        counters.rules[0].reserved.get().inc_by(7);
        counters.budgets[0].limited.get().inc();
        let mut got = series(&m);
        got.sort();
        assert_eq!(
            got,
            [
                r#"sluice_ratelimit_decisions_total{policy="ns/limits",rule="daily",outcome="limited"} 1"#,
                r#"sluice_ratelimit_decisions_total{policy="ns/limits",rule="per-user",outcome="admitted"} 1"#,
                r#"sluice_ratelimit_tokens_total{policy="ns/limits",rule="per-user",outcome="reserved"} 7"#,
            ]
        );
        // The same series as a lookup by labels.
        let looked_up = m.rate_limits.decisions.get_or_create(&RateLimitLabels {
            policy: Label(Arc::from("ns/limits")),
            rule: Label(Arc::from("per-user")),
            outcome: "admitted",
        });
        assert_eq!(looked_up.get(), 1);
    }

    #[test]
    fn a_reloaded_policy_gets_its_own_entry_and_old_ones_go() {
        let m = Metrics::new();
        let old = policy("ns/limits");
        let old_counters = m.rate_limits.policy(&old);
        let weak = Arc::downgrade(&old_counters);
        drop(old_counters);
        drop(old);
        // A reload compiles a new policy (same name): new entry, same series, old entry pruned.
        let new = policy("ns/limits");
        let counters = m.rate_limits.policy(&new);
        counters.rules[0].settled.get().inc_by(3);
        assert!(
            weak.upgrade().is_none(),
            "the old policy's counters were dropped"
        );
        let cache = m.rate_limits.policies.lock().unwrap();
        assert_eq!(cache.len(), 1);
        drop(cache);
        let again = policy("ns/limits");
        m.rate_limits.policy(&again).rules[0]
            .settled
            .get()
            .inc_by(2);
        assert!(series(&m).contains(
            &r#"sluice_ratelimit_tokens_total{policy="ns/limits",rule="per-user",outcome="settled"} 5"#
                .to_string()
        ));
    }
}
