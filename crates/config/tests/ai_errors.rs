//! AI kinds (AIBackend, AIPolicy) get the same precise errors as every other object: file,
//! object and field, and never the value of a credential.

mod common;

const BASE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: ns}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: http, port: 80, protocol: HTTP}
---
apiVersion: v1
kind: Service
metadata: {name: vllm, namespace: ns}
spec:
  ports: [{name: http, port: 8000}]
---
apiVersion: v1
kind: Secret
metadata: {name: keys, namespace: ns}
stringData:
  apiKey: sk-test-never-printed
"#;

fn diagnose(text: &str) -> (Vec<String>, Vec<String>) {
    common::diagnose_in("ai.yaml", BASE, text)
}

fn backend(spec: &str) -> String {
    format!("apiVersion: sluice.dev/v1alpha1\nkind: AIBackend\nmetadata: {{name: b, namespace: ns}}\nspec:\n{spec}")
}

#[test]
fn a_valid_backend_and_route_compile() {
    let text = backend(
        "  provider: {type: OpenAI, openai: {pathPrefix: /v1}}\n  backendRef: {name: vllm, port: 8000}\n  credentials: {secretRef: {name: keys}}\n",
    ) + "\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: ns}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n  - backendRefs: [{group: sluice.dev, kind: AIBackend, name: b}]\n";
    let (errors, _) = diagnose(&text);
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn unknown_provider_field_is_named() {
    let (errors, _) = diagnose(&backend(
        "  provider: {type: OpenAI, opneai: {}}\n  backendRef: {name: vllm, port: 8000}\n",
    ));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .starts_with("ai.yaml: AIBackend ns/b: spec.provider.opneai: unknown field `opneai`"),
        "{}",
        errors[0]
    );
}

#[test]
fn provider_settings_must_match_the_type() {
    let (errors, _) = diagnose(&backend(
        "  provider: {type: OpenAI, azure: {apiVersion: x}}\n  backendRef: {name: vllm, port: 8000}\n",
    ));
    assert_eq!(errors, ["ai.yaml: AIBackend ns/b: spec.provider.azure: applies to provider type AzureOpenAI, not OpenAI"]);
}

#[test]
fn missing_credentials_and_backend_ref_are_reported() {
    let (errors, _) = diagnose(&backend("  provider: {type: Anthropic}\n"));
    assert_eq!(
        errors,
        ["ai.yaml: AIBackend ns/b: spec.backendRef: is required (where the provider is)"]
    );
    let (errors, _) = diagnose(&backend(
        "  provider: {type: Anthropic}\n  backendRef: {name: vllm, port: 8000}\n",
    ));
    assert_eq!(errors, ["ai.yaml: AIBackend ns/b: spec.credentials: is required for this provider (secretRef, env or file)"]);
}

#[test]
fn credential_errors_never_show_values() {
    let (errors, _) = diagnose(&backend(
        "  provider: {type: Anthropic}\n  backendRef: {name: vllm, port: 8000}\n  credentials: {secretRef: {name: keys, key: other}}\n",
    ));
    assert_eq!(errors, ["ai.yaml: AIBackend ns/b: spec.credentials.secretRef.key: Secret ns/keys has no key \"other\""]);
    let (errors, _) = diagnose(&backend(
        "  provider: {type: Anthropic}\n  backendRef: {name: vllm, port: 8000}\n  credentials: {env: SLUICE_TEST_SURELY_UNSET_VAR}\n",
    ));
    assert_eq!(errors, ["ai.yaml: AIBackend ns/b: spec.credentials.env: environment variable SLUICE_TEST_SURELY_UNSET_VAR is not set"]);
    let (errors, _) = diagnose(&backend(
        "  provider: {type: VertexAI, vertex: {project: p, location: us-central1}}\n  backendRef: {name: vllm, port: 8000}\n  credentials: {secretRef: {name: keys}}\n",
    ));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(
            "ai.yaml: AIBackend ns/b: spec.credentials: not a usable service-account key"
        ),
        "{}",
        errors[0]
    );
    assert!(!errors[0].contains("sk-test-never-printed"));
}

#[test]
fn mock_takes_no_backend_ref_and_checks_its_settings() {
    let (errors, _) = diagnose(&backend(
        "  provider: {type: Mock, mock: {latency: 5x, errorStatus: 200}}\n",
    ));
    assert_eq!(
        errors,
        [
            "ai.yaml: AIBackend ns/b: spec.provider.mock.latency: invalid duration \"5x\": expected up to 4 parts of 1-5 digits with a unit h, m, s or ms (e.g. 500ms, 1m30s)",
            "ai.yaml: AIBackend ns/b: spec.provider.mock.errorStatus: 200 is not an error status (400-599)",
        ]
    );
}

#[test]
fn rules_cannot_mix_ai_and_plain_backends() {
    let text = backend("  provider: {type: Mock}\n")
        + "\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: ns}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n  - backendRefs: [{group: sluice.dev, kind: AIBackend, name: b}, {name: vllm, port: 8000}]\n";
    let (errors, _) = diagnose(&text);
    assert_eq!(errors, ["ai.yaml: HTTPRoute ns/r: spec.rules[0].backendRefs: mixes AIBackends with other backends; a rule sends either AI traffic or plain HTTP"]);
}

#[test]
fn policies_check_targets_and_gateway_only_fields() {
    let policy = |target: &str, extra: &str| {
        format!("apiVersion: sluice.dev/v1alpha1\nkind: AIPolicy\nmetadata: {{name: p, namespace: ns}}\nspec:\n  targetRefs: [{target}]\n{extra}")
    };
    let (errors, _) = diagnose(&policy(
        "{group: gateway.networking.k8s.io, kind: Service, name: x}",
        "",
    ));
    assert_eq!(errors, ["ai.yaml: AIPolicy ns/p: spec.targetRefs[0].kind: an AIPolicy targets a gateway.networking.k8s.io Gateway or HTTPRoute, not gateway.networking.k8s.io/Service"]);
    let (errors, warnings) = diagnose(&policy(
        "{group: gateway.networking.k8s.io, kind: HTTPRoute, name: missing}",
        "  modelAliases: {fast: gpt-4o-mini}\n",
    ));
    assert_eq!(errors, ["ai.yaml: AIPolicy ns/p: spec.modelAliases: applies only to a policy that targets a Gateway (it is needed before routing)"]);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("HTTPRoute ns/missing not found")),
        "{warnings:?}"
    );
    let (errors, _) = diagnose(&policy(
        "{group: gateway.networking.k8s.io, kind: Gateway, name: gw}",
        "  failover: {maxRetryAfter: soon}\n  prices: [{model: m, input: -1, output: 2}]\n",
    ));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "ai.yaml: AIPolicy ns/p: spec.failover.maxRetryAfter: invalid duration \"soon\""
        ),
        "{}",
        errors[0]
    );
    assert_eq!(
        errors[1],
        "ai.yaml: AIPolicy ns/p: spec.prices[0]: prices must be finite and not negative"
    );
}

#[test]
fn unknown_ai_backend_reference_is_a_warning_and_500() {
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: ns}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n  - backendRefs: [{group: sluice.dev, kind: AIBackend, name: nope}]\n";
    let (errors, warnings) = diagnose(text);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(warnings, ["ai.yaml: HTTPRoute ns/r: spec.rules[0].backendRefs[0]: AIBackend ns/nope not found; requests to it get 500"]);
}
