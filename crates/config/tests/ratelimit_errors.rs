//! TokenRateLimitPolicy: what compiles, and precise errors (file, object, field) for the rest.

mod common;

use sluice_config::ir::{BucketKey, BudgetAmount, BudgetPeriod, Cost};

const BASE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: ns}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: http, port: 80, protocol: HTTP}
"#;

fn policy(spec: &str) -> String {
    format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: TokenRateLimitPolicy\nmetadata: {{name: p, namespace: ns}}\nspec:\n  targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: gw}}]\n{spec}"
    )
}

fn one_error(spec: &str) -> String {
    let (errors, _) = common::diagnose_in("limits.yaml", BASE, &policy(spec));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors[0].clone()
}

#[test]
fn a_complete_policy_compiles_to_the_gateway() {
    let text = format!(
        "{BASE}\n---\n{}",
        policy(
            r#"  store: Redis
  failureMode: FailClosed
  rules:
  - name: tenant-tokens
    bucketBy: [{identity: tenant}, {model: {}}, {header: X-Team}]
    cost: {weighted: {input: 1, output: 4, cachedInput: 0.1}}
    limits: [{amount: 20000, period: 1m}, {amount: 2000000, period: 24h}]
    defaultMaxTokens: 512
    injectMaxTokens: true
  - {name: requests, cost: {requests: {}}, limits: [{amount: 10, period: 1s}], mode: Shadow}
  budgets:
  - {name: month, bucketBy: [{identity: key}], usd: 12.5, period: Month}
  - {name: day, tokens: 1000000, period: Day}
"#
        )
    );
    let (set, diags) = sluice_config::load::load_str("limits.yaml", &text);
    let snapshot = sluice_config::compile(&set, diags, &sluice_config::CompileOptions::default())
        .expect("compiles");
    let limits = snapshot.sockets[0].listeners[0]
        .rate_limits
        .clone()
        .expect("the Gateway's policy");
    assert_eq!(&*limits.name, "ns/p");
    assert!(limits.shared && !limits.fail_open);
    let r = &limits.rules[0];
    assert_eq!(
        r.bucket_by,
        vec![
            BucketKey::Tenant,
            BucketKey::Model,
            BucketKey::Header(http::HeaderName::from_static("x-team"))
        ]
    );
    let Cost::Tokens(w) = r.cost else {
        panic!("token cost expected")
    };
    assert_eq!(
        (w.input, w.output, w.cached_input, w.cache_creation),
        (1.0, 4.0, 0.1, 1.0)
    );
    assert_eq!(r.limits.len(), 2);
    assert_eq!(
        (r.default_max_tokens, r.inject_max_tokens, r.shadow),
        (512, true, false)
    );
    assert!(limits.rules[1].shadow && limits.rules[1].cost == Cost::Requests);
    assert_eq!(limits.budgets[0].amount, BudgetAmount::MicroUsd(12_500_000));
    assert_eq!(limits.budgets[1].period, BudgetPeriod::Day);
}

#[test]
fn mistakes_are_named() {
    let cases = [
        ("  rules: [{name: r, cost: {tokens: All}, limits: [{amount: 1, period: 1m}]}]\n", "spec.rules[0].cost.tokens: unknown token kind \"All\""),
        ("  rules: [{name: r, cost: {requests: {}, tokens: Total}, limits: [{amount: 1, period: 1m}]}]\n", "spec.rules[0].cost: exactly one of requests, tokens and weighted"),
        ("  rules: [{name: r, cost: {weighted: {input: -1}}, limits: [{amount: 1, period: 1m}]}]\n", "spec.rules[0].cost.weighted.input: must be a number from 0 to 1000"),
        ("  rules: [{name: r, cost: {weighted: {prompt: 1}}, limits: [{amount: 1, period: 1m}]}]\n", "spec.rules[0].cost.weighted.prompt: unknown token kind"),
        ("  rules: [{name: r, cost: {requests: {}}, limits: []}]\n", "spec.rules[0].limits: between 1 and 8 limits"),
        ("  rules: [{name: r, cost: {requests: {}}, limits: [{amount: 0, period: 1m}]}]\n", "spec.rules[0].limits[0].amount: must be positive"),
        ("  rules: [{name: r, cost: {requests: {}}, limits: [{amount: 5, period: 1month}]}]\n", "spec.rules[0].limits[0].period: invalid duration"),
        ("  rules: [{name: r, cost: {requests: {}}, limits: [{amount: 5, period: 800h}]}]\n", "spec.rules[0].limits[0].period: must be between 1s and 744h"),
        ("  rules: [{name: r, bucketBy: [{identity: group}], cost: {requests: {}}, limits: [{amount: 5, period: 1m}]}]\n", "spec.rules[0].bucketBy[0].identity: unknown identity field \"group\""),
        ("  rules: [{name: r, bucketBy: [{header: authorization}], cost: {requests: {}}, limits: [{amount: 5, period: 1m}]}]\n", "spec.rules[0].bucketBy[0].header: a credential header cannot name a bucket"),
        ("  rules: [{name: r, bucketBy: [{model: {}, route: {}}], cost: {requests: {}}, limits: [{amount: 5, period: 1m}]}]\n", "spec.rules[0].bucketBy[0]: exactly one of"),
        ("  rules: [{name: r, cost: {requests: {}}, limits: [{amount: 5, period: 1m}], mode: Audit}]\n", "spec.rules[0].mode: unknown mode \"Audit\""),
        ("  store: Memcached\n  rules: [{name: r, cost: {requests: {}}, limits: [{amount: 5, period: 1m}]}]\n", "spec.store: unknown store \"Memcached\""),
        ("  failureMode: Open\n  rules: [{name: r, cost: {requests: {}}, limits: [{amount: 5, period: 1m}]}]\n", "spec.failureMode: unknown failure mode \"Open\""),
        ("  budgets: [{name: b, tokens: 5, usd: 1, period: Day}]\n", "spec.budgets[0]: exactly one of tokens and usd"),
        ("  budgets: [{name: b, tokens: 5, period: Week}]\n", "spec.budgets[0].period: unknown period \"Week\""),
        ("  budgets: [{name: b, usd: -2, period: Day}]\n", "spec.budgets[0]: the budget must be positive"),
        ("  rules: [{name: x, cost: {requests: {}}, limits: [{amount: 5, period: 1m}]}]\n  budgets: [{name: x, tokens: 5, period: Day}]\n", "spec.budgets[0].name: duplicate name \"x\""),
        ("  store: Local\n", "spec: has neither rules nor budgets"),
        ("  rules: [{name: r, cost: {requests: {}}, limits: [{amount: 5, period: 1m}], burst: 3}]\n", "spec.rules[0].burst: unknown field"),
    ];
    for (spec, expected) in cases {
        let e = one_error(spec);
        assert!(
            e.starts_with("limits.yaml: TokenRateLimitPolicy ns/p: ") && e.contains(expected),
            "{spec}\nexpected {expected:?}\ngot {e}"
        );
    }
}

#[test]
fn a_policy_on_an_ai_backend_attaches_to_that_backend_only() {
    let text = format!(
        "{BASE}\n---\n{}\n---\n{}\n---\n{}",
        "apiVersion: sluice.dev/v1alpha1\nkind: AIBackend\nmetadata: {name: quota, namespace: ns}\nspec: {provider: {type: Mock}}",
        "apiVersion: sluice.dev/v1alpha1\nkind: AIBackend\nmetadata: {name: free, namespace: ns}\nspec: {provider: {type: Mock}}",
        "apiVersion: sluice.dev/v1alpha1\nkind: TokenRateLimitPolicy\nmetadata: {name: tpm, namespace: ns}\nspec:\n  targetRefs: [{group: sluice.dev, kind: AIBackend, name: quota}]\n  rules: [{name: tpm, cost: {tokens: Total}, limits: [{amount: 30000, period: 1m}]}]\n",
    );
    let (set, diags) = sluice_config::load::load_str("limits.yaml", &text);
    let snapshot = sluice_config::compile(&set, diags, &sluice_config::CompileOptions::default())
        .expect("compiles");
    let by_name = |n: &str| {
        snapshot
            .ai_backends
            .iter()
            .find(|b| &*b.name == n)
            .expect("backend")
            .rate_limits
            .clone()
    };
    assert_eq!(&*by_name("ns/quota").expect("attached").name, "ns/tpm");
    assert!(by_name("ns/free").is_none());
    assert!(snapshot.sockets[0].listeners[0].rate_limits.is_none());
    assert_eq!(snapshot.rate_limit_policies().len(), 1);

    // Other kinds are named as mistakes.
    let wrong = "apiVersion: sluice.dev/v1alpha1\nkind: TokenRateLimitPolicy\nmetadata: {name: p, namespace: ns}\nspec:\n  targetRefs: [{group: gateway.networking.k8s.io, kind: Service, name: x}]\n  rules: [{name: r, cost: {requests: {}}, limits: [{amount: 5, period: 1m}]}]\n";
    let (errors, _) = common::diagnose_in("limits.yaml", BASE, wrong);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = &errors[0];
    assert!(e.contains("spec.targetRefs[0].kind"), "{e}");
    assert!(
        e.contains(
            "targets a gateway.networking.k8s.io Gateway or HTTPRoute, or a sluice.dev AIBackend"
        ),
        "{e}"
    );
}
