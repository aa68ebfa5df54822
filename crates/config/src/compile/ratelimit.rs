//! `TokenRateLimitPolicy` objects to compiled [`RateLimits`], gathered per Gateway and per
//! HTTPRoute (a route's replaces its Gateway's).

use std::sync::Arc;
use std::time::Duration;

use super::index::Index;
use super::targets::{PolicyKind, PolicyTargets};
use crate::duration::parse_duration;
use crate::error::Diagnostics;
use crate::ir::{
    BucketKey, BudgetAmount, BudgetPeriod, BudgetRule, Cost, Limit, Limits, RateLimits, RateRule,
    Weights, DEFAULT_MAX_TOKENS,
};
use crate::objects::ratelimit::{
    BucketPart, BudgetSpec, CostSpec, RateRuleSpec, TokenRateLimitPolicySpec,
};
use crate::objects::Object;

const MAX_LIMITS: usize = 8;

/// Every TokenRateLimitPolicy of a configuration, by what it targets.
pub(crate) type RateLimitCatalog = PolicyTargets<RateLimits>;

const KIND: PolicyKind = PolicyKind {
    named: "a TokenRateLimitPolicy",
    idle: "limits nothing",
    ai_backends: true,
};

pub(crate) fn build(idx: &Index<'_>, diags: &mut Diagnostics) -> RateLimitCatalog {
    let mut cat = RateLimitCatalog::default();
    for p in &idx.set.rate_limit_policies {
        let before = diags.errors.len();
        let compiled = policy(p, diags);
        if diags.errors.len() != before {
            continue;
        }
        cat.attach(
            idx,
            p,
            &p.spec.target_refs,
            &Arc::new(compiled),
            &KIND,
            diags,
        );
    }
    cat
}

fn policy(p: &Object<TokenRateLimitPolicySpec>, diags: &mut Diagnostics) -> RateLimits {
    let spec = &p.spec;
    let shared = match spec.store.as_deref() {
        None | Some("Local") => false,
        Some("Redis") => true,
        Some(other) => {
            diags.error(p.error(
                "spec.store",
                format!("unknown store {other:?}: use Local or Redis"),
            ));
            false
        }
    };
    let fail_open = match spec.failure_mode.as_deref() {
        None | Some("FailOpen") => true,
        Some("FailClosed") => false,
        Some(other) => {
            diags.error(p.error(
                "spec.failureMode",
                format!("unknown failure mode {other:?}: use FailOpen or FailClosed"),
            ));
            true
        }
    };
    if spec.rules.is_empty() && spec.budgets.is_empty() {
        diags.error(p.error("spec", "has neither rules nor budgets"));
    }
    let mut names: Vec<&str> = Vec::new();
    let mut rules = Vec::new();
    for (i, r) in spec.rules.iter().enumerate() {
        if names.contains(&r.name.as_str()) {
            diags.error(p.error(
                format!("spec.rules[{i}].name"),
                format!("duplicate name {:?}", r.name),
            ));
        }
        names.push(&r.name);
        if let Some(rule) = rule(p, r, &format!("spec.rules[{i}]"), diags) {
            rules.push(rule);
        }
    }
    let mut budgets = Vec::new();
    for (i, b) in spec.budgets.iter().enumerate() {
        if names.contains(&b.name.as_str()) {
            diags.error(p.error(
                format!("spec.budgets[{i}].name"),
                format!("duplicate name {:?}", b.name),
            ));
        }
        names.push(&b.name);
        if let Some(budget) = budget(p, b, &format!("spec.budgets[{i}]"), diags) {
            budgets.push(budget);
        }
    }
    RateLimits {
        name: Arc::from(format!("{}/{}", p.namespace(), p.name())),
        shared,
        fail_open,
        rules,
        budgets,
    }
}

fn mode(
    p: &Object<TokenRateLimitPolicySpec>,
    m: Option<&str>,
    field: String,
    diags: &mut Diagnostics,
) -> bool {
    match m {
        None | Some("Enforce") => false,
        Some("Shadow") => true,
        Some(other) => {
            diags.error(p.error(
                field,
                format!("unknown mode {other:?}: use Enforce or Shadow"),
            ));
            false
        }
    }
}

fn rule(
    p: &Object<TokenRateLimitPolicySpec>,
    spec: &RateRuleSpec,
    field: &str,
    diags: &mut Diagnostics,
) -> Option<RateRule> {
    let bucket_by = bucket_by(p, &spec.bucket_by, &format!("{field}.bucketBy"), diags)?;
    let cost = cost(p, &spec.cost, &format!("{field}.cost"), diags)?;
    if spec.limits.is_empty() || spec.limits.len() > MAX_LIMITS {
        diags.error(p.error(
            format!("{field}.limits"),
            format!("between 1 and {MAX_LIMITS} limits are required"),
        ));
        return None;
    }
    let mut limits = Vec::new();
    for (i, l) in spec.limits.iter().enumerate() {
        let lf = format!("{field}.limits[{i}]");
        if l.amount == 0 {
            diags.error(p.error(format!("{lf}.amount"), "must be positive"));
            continue;
        }
        match parse_duration(&l.period) {
            Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(31 * 86_400) => {
                if limits
                    .iter()
                    .any(|x: &Limit| x.amount == l.amount && x.period == d)
                {
                    diags.error(p.error(lf, "the same limit is listed twice"));
                    continue;
                }
                limits.push(Limit::new(l.amount, d));
            }
            Ok(_) => diags.error(p.error(
                format!("{lf}.period"),
                "must be between 1s and 744h (31 days); for calendar periods use a budget",
            )),
            Err(e) => diags.error(p.error(format!("{lf}.period"), e)),
        }
    }
    if limits.len() != spec.limits.len() {
        return None;
    }
    let limits = match Limits::new(limits) {
        Ok(l) => l,
        Err(e) => {
            diags.error(p.error(format!("{field}.limits"), e.to_string()));
            return None;
        }
    };
    if spec.default_max_tokens == Some(0) {
        diags.error(p.error(format!("{field}.defaultMaxTokens"), "must be positive"));
        return None;
    }
    Some(RateRule {
        name: Arc::from(spec.name.as_str()),
        bucket_by,
        cost,
        limits,
        shadow: mode(p, spec.mode.as_deref(), format!("{field}.mode"), diags),
        default_max_tokens: spec.default_max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        inject_max_tokens: spec.inject_max_tokens,
    })
}

fn cost(
    p: &Object<TokenRateLimitPolicySpec>,
    spec: &CostSpec,
    field: &str,
    diags: &mut Diagnostics,
) -> Option<Cost> {
    let given = [
        spec.requests.is_some(),
        spec.tokens.is_some(),
        spec.weighted.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        diags.error(p.error(
            field,
            "exactly one of requests, tokens and weighted must be set",
        ));
        return None;
    }
    if spec.requests.is_some() {
        return Some(Cost::Requests);
    }
    if let Some(t) = spec.tokens.as_deref() {
        let (input, output) = match t {
            "Input" => (1.0, 0.0),
            "Output" => (0.0, 1.0),
            "Total" => (1.0, 1.0),
            other => {
                diags.error(p.error(
                    format!("{field}.tokens"),
                    format!("unknown token kind {other:?}: use Input, Output or Total"),
                ));
                return None;
            }
        };
        return Some(Cost::Tokens(Weights {
            input,
            cached_input: input,
            cache_creation: input,
            output,
        }));
    }
    let mut w = Weights::default();
    let mut cached = None;
    let mut creation = None;
    for (kind, weight) in spec.weighted.iter().flatten() {
        if !weight.is_finite() || *weight < 0.0 || *weight > 1_000.0 {
            diags.error(p.error(
                format!("{field}.weighted.{kind}"),
                "must be a number from 0 to 1000",
            ));
            return None;
        }
        match kind.as_str() {
            "input" => w.input = *weight,
            "output" => w.output = *weight,
            "cachedInput" => cached = Some(*weight),
            "cacheCreation" => creation = Some(*weight),
            other => {
                diags.error(p.error(
                    format!("{field}.weighted.{other}"),
                    "unknown token kind: use input, output, cachedInput or cacheCreation",
                ));
                return None;
            }
        }
    }
    // Cache reads and writes are input tokens: without their own weight they weigh as input.
    w.cached_input = cached.unwrap_or(w.input);
    w.cache_creation = creation.unwrap_or(w.input);
    if w.input + w.output + w.cached_input + w.cache_creation == 0.0 {
        diags.error(p.error(
            format!("{field}.weighted"),
            "every weight is 0: nothing would be counted",
        ));
        return None;
    }
    Some(Cost::Tokens(w))
}

fn bucket_by(
    p: &Object<TokenRateLimitPolicySpec>,
    parts: &[BucketPart],
    field: &str,
    diags: &mut Diagnostics,
) -> Option<Vec<BucketKey>> {
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let pf = format!("{field}[{i}]");
        let given = [
            part.identity.is_some(),
            part.header.is_some(),
            part.client_address.is_some(),
            part.model.is_some(),
            part.route.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            diags.error(p.error(
                pf,
                "exactly one of identity, header, clientAddress, model and route must be set",
            ));
            return None;
        }
        let key = if let Some(id) = part.identity.as_deref() {
            match id {
                "tenant" => BucketKey::Tenant,
                "user" => BucketKey::User,
                "key" => BucketKey::KeyId,
                other => {
                    diags.error(p.error(
                        format!("{pf}.identity"),
                        format!("unknown identity field {other:?}: use tenant, user or key"),
                    ));
                    return None;
                }
            }
        } else if let Some(h) = part.header.as_deref() {
            match http::HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()) {
                Ok(name) if name != http::header::AUTHORIZATION && name.as_str() != "x-api-key" => {
                    BucketKey::Header(name)
                }
                Ok(_) => {
                    diags.error(p.error(
                        format!("{pf}.header"),
                        "a credential header cannot name a bucket (it would end up in store keys); use identity: key",
                    ));
                    return None;
                }
                Err(_) => {
                    diags.error(p.error(
                        format!("{pf}.header"),
                        format!("{h:?} is not a header name"),
                    ));
                    return None;
                }
            }
        } else if part.client_address.is_some() {
            BucketKey::ClientAddress
        } else if part.model.is_some() {
            BucketKey::Model
        } else {
            BucketKey::Route
        };
        if out.contains(&key) {
            diags.error(p.error(pf, "listed twice"));
            return None;
        }
        out.push(key);
    }
    Some(out)
}

fn budget(
    p: &Object<TokenRateLimitPolicySpec>,
    spec: &BudgetSpec,
    field: &str,
    diags: &mut Diagnostics,
) -> Option<BudgetRule> {
    let bucket_by = bucket_by(p, &spec.bucket_by, &format!("{field}.bucketBy"), diags)?;
    let amount = match (spec.tokens, spec.usd) {
        (Some(t), None) if t > 0 => BudgetAmount::Tokens(t),
        (None, Some(usd)) if usd.is_finite() && usd > 0.0 && usd < 1e9 => {
            BudgetAmount::MicroUsd((usd * 1e6).round() as u64)
        }
        (Some(_), None) | (None, Some(_)) => {
            diags.error(p.error(field, "the budget must be positive (usd below one billion)"));
            return None;
        }
        _ => {
            diags.error(p.error(field, "exactly one of tokens and usd must be set"));
            return None;
        }
    };
    let period = match spec.period.as_str() {
        "Day" => BudgetPeriod::Day,
        "Month" => BudgetPeriod::Month,
        other => {
            diags.error(p.error(
                format!("{field}.period"),
                format!("unknown period {other:?}: use Day or Month (UTC calendar)"),
            ));
            return None;
        }
    };
    Some(BudgetRule {
        name: Arc::from(spec.name.as_str()),
        bucket_by,
        amount,
        period,
        shadow: mode(p, spec.mode.as_deref(), format!("{field}.mode"), diags),
    })
}
