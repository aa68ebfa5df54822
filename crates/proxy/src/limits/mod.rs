//! Token rate limits and budgets on the request path.
//!
//! Admission ([`RateLimiting::admit`]) reserves, in every rule's bucket and every budget of a
//! policy at once, what the request may cost at most: its input tokens counted locally plus the
//! output cap it asked for (or the rule's default). One enforcing rule or budget that does not
//! fit refuses the request before anything reaches a provider, and whatever the others reserved
//! is given back. The reservations are [`Held`] until the response ends, then settled with the
//! real usage ([`Held::settle`]): the unused part is refunded, usage beyond the estimate is
//! charged as debt. A request that never reached a provider's answer is refunded entirely; a
//! stream cut before its usage report keeps its whole reservation (the provider may have
//! generated up to the cap).
//!
//! Shared policies (`store: Redis`) reserve in Redis; when Redis cannot be reached a policy
//! follows its failure mode (FailOpen: this process's memory decides; FailClosed: 503).

pub mod bucket;
mod estimate;
pub mod headers;
mod report;
pub mod stores;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::join_all;
use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};
use sluice_config::ir::{BudgetAmount, BudgetPeriod, Cost, Price, RateLimits};
use sluice_llm::{Dialect, Usage};
use sluice_state::limits::{BucketKey, Budget, BudgetDecision, Decision, Limiter, Period, Window};
use sluice_state::StoreError;

pub use self::bucket::Facts;
pub use self::estimate::estimate;
pub use self::headers::RateHeaders;
pub use self::stores::{Stores, Which};
use crate::ai::AiError;
use crate::body::Body;
use crate::metrics::{Label, Metrics, PolicyCounters, RateLimitLabels, StoreLabels};

const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
/// Read by the OpenAI and Anthropic SDKs: `false` stops their automatic retries, for refusals
/// that waiting a few seconds cannot fix (a budget spent until the period ends, a request
/// larger than the limit).
const SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");

/// What a request may cost, known before it is sent.
#[derive(Clone, Copy, Debug, Default)]
pub struct Estimate {
    /// Input tokens counted locally.
    pub input: u64,
    /// The output cap the request names (or that the gateway injected).
    pub requested_cap: Option<u64>,
    /// Whether the operation produces output tokens (embeddings do not).
    pub produces_output: bool,
    /// The requested model's price, for money budgets.
    pub price: Option<Price>,
}

impl Estimate {
    fn cap(&self, default: u64) -> u64 {
        if self.produces_output {
            self.requested_cap.unwrap_or(default)
        } else {
            0
        }
    }

    /// Most a request can cost in micro-dollars: input at the highest input price, the whole
    /// cap at the output price.
    fn micro_usd(&self, cap: u64) -> u64 {
        let Some(p) = self.price else { return 0 };
        let input = p.input.max(p.cached_input).max(p.cache_creation);
        micro_usd((self.input as f64 * input + cap as f64 * p.output) / 1_000_000.0)
    }
}

fn micro_usd(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * 1e6).ceil() as u64
    } else {
        0
    }
}

/// The reservations a request holds (from its route's or Gateway's policy and from the AI
/// backend that answered), settled when its response ends.
pub type HeldList = Arc<std::sync::Mutex<Vec<Held>>>;

pub fn lock_held(h: &HeldList) -> std::sync::MutexGuard<'_, Vec<Held>> {
    h.lock().unwrap_or_else(|p| p.into_inner())
}

/// How much of a reservation a finished request used.
#[derive(Clone, Copy, Debug)]
pub enum Spent {
    /// Refused at admission (by another rule or budget): everything goes back.
    Refused,
    /// Nothing reached a provider's answer (a failure, a provider error): tokens go back; the
    /// request still counts against request limits.
    Nothing,
    /// The answer completed with this usage (and cost in USD, when priced).
    Exactly(Usage, Option<f64>),
    /// The answer started but did not complete: at least this, and never less than reserved.
    AtLeast(Usage, Option<f64>),
}

/// One rule's reservation.
#[derive(Clone)]
struct HeldRule {
    rule: usize,
    bucket: String,
    /// The bucket's key in the local store, once reserved there: settlement does not hash the
    /// name again.
    local_key: Option<BucketKey>,
    reserved: u64,
}

/// What one budget would reserve, before the store says in which window.
#[derive(Clone)]
struct PlannedBudget {
    budget: usize,
    bucket: String,
    spec: Budget,
    reserved: u64,
}

impl PlannedBudget {
    fn held(self, window: Window) -> HeldBudget {
        HeldBudget {
            budget: self.budget,
            bucket: self.bucket,
            spec: self.spec,
            window,
            reserved: self.reserved,
        }
    }
}

/// One budget's reservation.
struct HeldBudget {
    budget: usize,
    bucket: String,
    spec: Budget,
    window: Window,
    reserved: u64,
}

/// The reservations of one admitted request, settled when its response ends.
pub struct Held {
    policy: Arc<RateLimits>,
    counters: Arc<PolicyCounters>,
    which: Which,
    rules: Vec<HeldRule>,
    budgets: Vec<HeldBudget>,
}

/// A refused request: 429 (limit or budget) or 503 (FailClosed without a store).
pub struct Refusal {
    pub error: AiError,
    pub retry_after: Option<Duration>,
    /// Retrying soon cannot help.
    pub final_: bool,
    pub headers: RateHeaders,
}

impl Refusal {
    pub fn response(&self, dialect: Dialect) -> Response<Body> {
        let mut resp = self.error.response(dialect);
        let h = resp.headers_mut();
        if let Some(wait) = self.retry_after {
            h.insert(
                http::header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(wait)),
            );
            let ms = wait.as_micros().div_ceil(1000).max(1);
            h.insert(RETRY_AFTER_MS, HeaderValue::from(ms as u64));
        }
        if self.final_ {
            h.insert(SHOULD_RETRY, HeaderValue::from_static("false"));
        }
        self.headers.write(h);
        resp
    }
}

/// `Retry-After` in whole seconds, rounded up and at least 1: a client that waits that long finds
/// room.
pub fn retry_after_secs(wait: Duration) -> u64 {
    u64::try_from(wait.as_micros().div_ceil(1_000_000))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The outcome of [`RateLimiting::admit`].
pub enum Admission {
    Admitted(Held, RateHeaders),
    Refused(Refusal),
}

/// Limits and budgets of the gateway process, kept across reloads.
#[derive(Default)]
pub struct RateLimiting {
    pub stores: Arc<Stores>,
    /// The tokenizer tables are loaded on the first configuration that counts tokens.
    warmed: std::sync::atomic::AtomicBool,
}

impl RateLimiting {
    /// Loads the tokenizer in the background the first time a policy needs it (it costs ~70 MB
    /// and a second of CPU, so gateways without token limits never pay).
    pub fn prepare(&self, policies: &[Arc<RateLimits>]) {
        use std::sync::atomic::Ordering;
        if policies.iter().any(|p| p.counts_tokens()) && !self.warmed.swap(true, Ordering::AcqRel) {
            tokio::task::spawn_blocking(sluice_llm::tokens::warm_up);
        }
    }

    /// Reserves what the request may cost in every rule and budget of `policy`.
    pub async fn admit(
        &self,
        metrics: &Arc<Metrics>,
        policy: &Arc<RateLimits>,
        facts: &Facts<'_>,
        estimate: &Estimate,
    ) -> Admission {
        let now = SystemTime::now();
        let counters = metrics.rate_limits.policy(policy);
        // What each rule and budget would reserve, built once; admitted ones move into `held`.
        let mut rules: Vec<HeldRule> = policy
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| HeldRule {
                rule: i,
                bucket: bucket::name(&policy.name, &r.name, &r.bucket_by, facts),
                local_key: None,
                reserved: r
                    .cost
                    .estimate(estimate.input, estimate.cap(r.default_max_tokens)),
            })
            .collect();
        // Budgets reserve with the largest cap any rule would assume (the default otherwise).
        let cap = estimate.cap(
            policy
                .rules
                .iter()
                .map(|r| r.default_max_tokens)
                .max()
                .unwrap_or(sluice_config::ir::DEFAULT_MAX_TOKENS),
        );
        let budgets: Vec<PlannedBudget> = policy
            .budgets
            .iter()
            .enumerate()
            .map(|(i, b)| PlannedBudget {
                budget: i,
                bucket: budget_bucket(policy, b, facts),
                spec: budget_spec(b),
                reserved: match b.amount {
                    BudgetAmount::Tokens(_) => estimate.input + cap,
                    BudgetAmount::MicroUsd(_) => estimate.micro_usd(cap),
                },
            })
            .collect();

        let mut which = if policy.shared {
            Which::Shared
        } else {
            Which::Local
        };
        let (rule_decisions, budget_decisions) = loop {
            let store = match self.stores.get(which) {
                Some(s) => s,
                None => match self.fallback(metrics, policy) {
                    Some(w) => {
                        which = w;
                        continue;
                    }
                    None => return Admission::Refused(unavailable()),
                },
            };
            // The clock is read only where the store's latency is observed.
            let started = (which == Which::Shared).then(Instant::now);
            let (r, b) = reserve_all(&store, policy, &mut rules, &budgets, now).await;
            let failed = r
                .iter()
                .filter_map(|r| r.as_ref().err())
                .chain(b.iter().filter_map(|b| b.as_ref().err()))
                .next();
            if let Some(started) = started {
                observe_store(metrics, "reserve", started, failed.is_some());
            }
            let Some(e) = failed else {
                break (
                    r.into_iter().flatten().collect::<Vec<_>>(),
                    b.into_iter().flatten().collect::<Vec<_>>(),
                );
            };
            tracing::warn!(policy = %policy.name, error = %e, "rate-limit store failed");
            self.stores.trip();
            // Whatever did get reserved before the failure goes back.
            let partial = Held {
                policy: policy.clone(),
                counters: counters.clone(),
                which,
                rules: rules
                    .iter()
                    .zip(&r)
                    .filter(|(_, d)| matches!(d, Ok(d) if d.admitted))
                    .map(|(h, _)| h.clone())
                    .collect(),
                budgets: budgets
                    .iter()
                    .zip(&b)
                    .filter_map(|(p, d)| match d {
                        Ok(d) if d.admitted => Some(p.clone().held(d.window.clone())),
                        _ => None,
                    })
                    .collect(),
            };
            apply_settlement(store, partial, Spent::Refused, metrics.clone());
            match self.fallback(metrics, policy) {
                Some(w) => which = w,
                None => return Admission::Refused(unavailable()),
            }
        };

        let mut headers = RateHeaders::default();
        let mut held = Held {
            policy: policy.clone(),
            counters: counters.clone(),
            which,
            rules: Vec::with_capacity(rules.len()),
            budgets: Vec::new(),
        };
        let mut refusal: Option<Refusal> = None;
        for (planned, d) in rules.into_iter().zip(&rule_decisions) {
            let rule = &policy.rules[planned.rule];
            let rule_counters = &counters.rules[planned.rule];
            let cost = planned.reserved;
            headers.observe(rule.cost == Cost::Requests, &d.states);
            let outcome = if d.admitted {
                rule_counters.reserved.get().inc_by(cost);
                held.rules.push(planned);
                &rule_counters.decisions.admitted
            } else if rule.shadow {
                tracing::info!(policy = %policy.name, rule = %rule.name, "shadow rate limit exceeded; request let through");
                &rule_counters.decisions.shadow_limited
            } else {
                let worse = match &refusal {
                    None => true,
                    Some(r) => !r.final_ && (d.never || d.retry_after > r.retry_after),
                };
                if worse {
                    refusal = Some(limit_refusal(rule, d, cost));
                }
                &rule_counters.decisions.limited
            };
            outcome.get().inc();
        }
        for (planned, d) in budgets.into_iter().zip(&budget_decisions) {
            let budget = &policy.budgets[planned.budget];
            let decisions = &counters.budgets[planned.budget];
            let outcome = if d.admitted {
                held.budgets.push(planned.held(d.window.clone()));
                &decisions.admitted
            } else if budget.shadow {
                tracing::info!(policy = %policy.name, budget = %budget.name, "shadow budget exceeded; request let through");
                &decisions.shadow_limited
            } else {
                if refusal.as_ref().is_none_or(|r| !r.final_) {
                    refusal = Some(budget_refusal(budget, d, now));
                }
                &decisions.limited
            };
            outcome.get().inc();
        }
        match refusal {
            None => Admission::Admitted(held, headers),
            Some(mut r) => {
                r.headers = headers;
                self.settle(held, Spent::Refused, metrics);
                Admission::Refused(r)
            }
        }
    }

    /// The store to use when the shared one cannot be: the local one (FailOpen, counted and
    /// logged) or none (FailClosed).
    fn fallback(&self, metrics: &Metrics, policy: &RateLimits) -> Option<Which> {
        let mode = if policy.fail_open {
            "fail_open"
        } else {
            "fail_closed"
        };
        metrics
            .rate_limits
            .fallbacks
            .get_or_create(&RateLimitLabels {
                policy: Label(policy.name.clone()),
                rule: Label::none(),
                outcome: mode,
            })
            .inc();
        tracing::debug!(policy = %policy.name, mode, "rate-limit store unavailable");
        policy.fail_open.then_some(Which::Local)
    }

    /// Settles `held` with what the request used (in Redis: in the background).
    pub fn settle(&self, held: Held, spent: Spent, metrics: &Arc<Metrics>) {
        let store = match held.which {
            Which::Local => self.stores.local().clone(),
            // Settled even while the breaker rests: a refund that fails is logged, and what
            // stays charged refills on its own.
            Which::Shared => match self.stores.shared_raw() {
                Some(s) => s,
                None => return,
            },
        };
        apply_settlement(store, held, spent, metrics.clone());
    }
}

fn unavailable() -> Refusal {
    Refusal {
        error: AiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "rate_limit_store_unavailable",
            "the rate-limit store is unavailable and the policy fails closed; try again shortly",
        ),
        retry_after: Some(stores::REST),
        final_: false,
        headers: RateHeaders::default(),
    }
}

/// A budget's bucket; money budgets get their own (`|usd`), so a token and a money budget on the
/// same keys never share a counter.
fn budget_bucket(
    policy: &RateLimits,
    b: &sluice_config::ir::BudgetRule,
    facts: &Facts<'_>,
) -> String {
    let mut name = bucket::name(&policy.name, &b.name, &b.bucket_by, facts);
    if matches!(b.amount, BudgetAmount::MicroUsd(_)) {
        name.push_str("|usd");
    }
    name
}

fn budget_spec(b: &sluice_config::ir::BudgetRule) -> Budget {
    Budget {
        limit: match b.amount {
            BudgetAmount::Tokens(t) => t,
            BudgetAmount::MicroUsd(u) => u,
        },
        period: match b.period {
            BudgetPeriod::Day => Period::Day,
            BudgetPeriod::Month => Period::Month,
        },
    }
}

/// Reserves every rule and budget in `store`: in memory one after the other (each is a few
/// integer steps under a lock, with nothing to wait for), in Redis concurrently (one round
/// trip: the connection pipelines them).
async fn reserve_all(
    store: &Limiter,
    policy: &RateLimits,
    rules: &mut [HeldRule],
    budgets: &[PlannedBudget],
    now: SystemTime,
) -> (
    Vec<Result<Decision, StoreError>>,
    Vec<Result<BudgetDecision, StoreError>>,
) {
    if let Limiter::Memory(memory) = store {
        return (
            rules
                .iter_mut()
                .map(|r| {
                    let key = *r.local_key.insert(memory.bucket_key(&r.bucket));
                    memory.reserve_at(key, &policy.rules[r.rule].limits, r.reserved, now)
                })
                .collect(),
            budgets
                .iter()
                .map(|b| memory.reserve_budget(&b.bucket, &b.spec, b.reserved, now))
                .collect(),
        );
    }
    let rules = join_all(
        rules
            .iter()
            .map(|r| store.reserve(&r.bucket, &policy.rules[r.rule].limits, r.reserved, now)),
    );
    let budgets = join_all(
        budgets
            .iter()
            .map(|b| store.reserve_budget(&b.bucket, &b.spec, b.reserved, now)),
    );
    futures_util::future::join(rules, budgets).await
}

fn limit_refusal(
    rule: &sluice_config::ir::RateRule,
    d: &sluice_state::limits::Decision,
    cost: u64,
) -> Refusal {
    let unit = match rule.cost {
        Cost::Requests => "requests",
        Cost::Tokens(_) => "tokens",
    };
    let binding = d.states.iter().min_by_key(|s| s.remaining).map(|s| s.limit);
    let limit = binding.map_or_else(String::new, |l| {
        format!(
            " per {}: limit {}",
            headers::format_reset(l.period),
            l.amount
        )
    });
    let message = if d.never {
        format!("Request too large for rate limit `{}` on {unit}{limit}, requested {cost}. It can never fit; reduce the input or the output cap (max_tokens).", rule.name)
    } else {
        let remaining = d.states.iter().map(|s| s.remaining).min().unwrap_or(0);
        let wait = d.retry_after.map_or_else(String::new, |w| {
            format!(" Please try again in {}.", headers::format_reset(w))
        });
        format!(
            "Rate limit `{}` reached on {unit}{limit}, remaining {remaining}, requested {cost}.{wait}",
            rule.name
        )
    };
    Refusal {
        error: AiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            message,
        ),
        retry_after: d.retry_after,
        final_: d.never,
        headers: RateHeaders::default(),
    }
}

fn budget_refusal(
    b: &sluice_config::ir::BudgetRule,
    d: &sluice_state::limits::BudgetDecision,
    now: SystemTime,
) -> Refusal {
    let (spent, limit) = match b.amount {
        BudgetAmount::Tokens(t) => (format!("{} tokens", d.spent), format!("{t} tokens")),
        BudgetAmount::MicroUsd(u) => (
            format!("${:.2}", d.spent as f64 / 1e6),
            format!("${:.2}", u as f64 / 1e6),
        ),
    };
    let period = match b.period {
        BudgetPeriod::Day => "day (UTC)",
        BudgetPeriod::Month => "month (UTC)",
    };
    let reset = d.resets_at.duration_since(now).unwrap_or_default();
    Refusal {
        error: AiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            format!(
                "Budget `{}` exhausted: {spent} of {limit} spent this {period}; it resets at {}.",
                b.name,
                sluice_policy::time::format_rfc3339(
                    d.resets_at
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs())
                )
            ),
        ),
        retry_after: Some(reset),
        final_: true,
        headers: RateHeaders::default(),
    }
}

fn observe_store(metrics: &Metrics, op: &'static str, started: Instant, failed: bool) {
    let labels = StoreLabels { op };
    metrics
        .rate_limits
        .store_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    if failed {
        metrics
            .rate_limits
            .store_errors
            .get_or_create(&labels)
            .inc();
    }
}

/// What each rule and budget of a reservation is charged beyond (or refunded below) what was
/// reserved; counts the tokens settled, refunded and overrun.
fn deltas(held: &Held, spent: Spent) -> (Vec<i64>, Vec<i64>) {
    let policy = &held.policy;
    let rules = held
        .rules
        .iter()
        .map(|h| {
            let rule = &policy.rules[h.rule];
            let counters = &held.counters.rules[h.rule];
            let actual = match spent {
                Spent::Refused => 0,
                // Requests are counted when admitted, whatever comes of them.
                _ if rule.cost == Cost::Requests => h.reserved,
                Spent::Nothing => 0,
                Spent::Exactly(u, _) => rule.cost.actual(&u),
                Spent::AtLeast(u, _) => rule.cost.actual(&u).max(h.reserved),
            };
            let delta = i64::try_from(actual).unwrap_or(i64::MAX)
                - i64::try_from(h.reserved).unwrap_or(i64::MAX);
            counters.settled.get().inc_by(actual);
            if delta != 0 {
                let kind = if delta < 0 {
                    &counters.refunded
                } else {
                    &counters.overrun
                };
                kind.get().inc_by(delta.unsigned_abs());
            }
            delta
        })
        .collect();
    let budgets = held
        .budgets
        .iter()
        .map(|h| {
            let b = &policy.budgets[h.budget];
            let actual = |u: &Usage, usd: Option<f64>| match b.amount {
                BudgetAmount::Tokens(_) => u.input + u.output,
                BudgetAmount::MicroUsd(_) => usd.map_or(0, micro_usd),
            };
            let actual = match spent {
                Spent::Refused | Spent::Nothing => 0,
                Spent::Exactly(u, usd) => actual(&u, usd),
                Spent::AtLeast(u, usd) => actual(&u, usd).max(h.reserved),
            };
            i64::try_from(actual).unwrap_or(i64::MAX)
                - i64::try_from(h.reserved).unwrap_or(i64::MAX)
        })
        .collect();
    (rules, budgets)
}

/// Applies what a request used to its reservations: at once in memory (a few integer steps under
/// a lock), in a background task for Redis.
fn apply_settlement(store: Arc<Limiter>, held: Held, spent: Spent, metrics: Arc<Metrics>) {
    if held.rules.is_empty() && held.budgets.is_empty() {
        return;
    }
    let (rule_deltas, budget_deltas) = deltas(&held, spent);
    let now = SystemTime::now();
    if let Limiter::Memory(memory) = &*store {
        let rules = held
            .rules
            .iter()
            .zip(&rule_deltas)
            .filter(|(_, d)| **d != 0);
        for (h, d) in rules {
            let limits = &held.policy.rules[h.rule].limits;
            let key = h.local_key.unwrap_or_else(|| memory.bucket_key(&h.bucket));
            if let Err(e) = memory.settle_at(key, limits, *d, now) {
                tracing::warn!(policy = %held.policy.name, error = %e, "rate-limit settlement failed");
            }
        }
        let budgets = held
            .budgets
            .iter()
            .zip(&budget_deltas)
            .filter(|(_, d)| **d != 0);
        for (h, d) in budgets {
            if let Err(e) = memory.settle_budget(&h.bucket, &h.spec, &h.window, *d) {
                tracing::warn!(policy = %held.policy.name, error = %e, "budget settlement failed");
            }
        }
        return;
    }
    tokio::spawn(async move {
        let started = Instant::now();
        let rules = join_all(
            held.rules
                .iter()
                .zip(&rule_deltas)
                .filter(|(_, d)| **d != 0)
                .map(|(h, d)| store.settle(&h.bucket, &held.policy.rules[h.rule].limits, *d, now)),
        );
        let budgets = join_all(
            held.budgets
                .iter()
                .zip(&budget_deltas)
                .filter(|(_, d)| **d != 0)
                .map(|(h, d)| store.settle_budget(&h.bucket, &h.spec, &h.window, *d)),
        );
        let (rules, budgets) = futures_util::future::join(rules, budgets).await;
        let mut failed = false;
        for e in rules
            .iter()
            .filter_map(|r| r.as_ref().err())
            .chain(budgets.iter().filter_map(|r| r.as_ref().err()))
        {
            failed = true;
            tracing::warn!(policy = %held.policy.name, error = %e, "rate-limit settlement failed; the reservation stays charged");
        }
        observe_store(&metrics, "settle", started, failed);
    });
}
