//! AccessPolicy and Gateway client-certificate validation get precise errors (file, object,
//! field), and no error ever contains a key.

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
kind: Secret
metadata: {name: keys, namespace: ns}
stringData:
  alice: sk-alice-never-printed-0123456789
  short: tooshort
"#;

fn diagnose(text: &str) -> (Vec<String>, Vec<String>) {
    common::diagnose_in("access.yaml", BASE, text)
}

fn policy(spec: &str) -> String {
    format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: AccessPolicy\nmetadata: {{name: p, namespace: ns}}\nspec:\n  targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: gw}}]\n{spec}"
    )
}

fn one_error(spec: &str) -> String {
    let (errors, _) = diagnose(&policy(spec));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    for e in &errors {
        assert!(!e.contains("never-printed"), "a key leaked: {e}");
    }
    errors[0].clone()
}

#[test]
fn a_complete_policy_compiles() {
    let (errors, warnings) = diagnose(&policy(
        r#"  apiKeys:
    managed: true
    keys:
    - {id: alice, tenant: a, secretRef: {name: keys, key: alice}, expiresAt: "2030-01-01T00:00:00Z"}
    - {id: hashed, digest: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
  jwt:
    providers:
    - {name: idp, issuer: "https://idp", jwks: {url: "https://idp/jwks"}, algorithms: [RS256, EdDSA]}
  rules:
  - {name: a, action: Allow, tenants: [a], models: ["gpt-*"], operations: [chat]}
  - {name: cel, action: Deny, when: "identity.tenant == 'x' && model == 'y'"}
  identityHeaders: {tenant: x-tenant}
"#,
    ));
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(warnings.is_empty(), "{warnings:#?}");
}

#[test]
fn unknown_fields_are_named() {
    let e = one_error("  apiKeys: {managed: true, mangaed: true}\n");
    assert!(
        e.starts_with("access.yaml: AccessPolicy ns/p: spec.apiKeys.mangaed: unknown field"),
        "{e}"
    );
}

#[test]
fn a_policy_needs_a_method() {
    let e = one_error("  rules: []\n");
    assert!(e.contains("spec: names no authentication method"), "{e}");
}

#[test]
fn key_sources_are_checked() {
    let e = one_error("  apiKeys:\n    keys: [{id: a, secretRef: {name: keys, key: nope}}]\n");
    assert!(
        e.contains("spec.apiKeys.keys[0].secretRef.key: Secret ns/keys has no key \"nope\""),
        "{e}"
    );
    let e = one_error("  apiKeys:\n    keys: [{id: a, secretRef: {name: keys, key: short}}]\n");
    assert!(e.contains("shorter than 16 characters"), "{e}");
    let e = one_error("  apiKeys:\n    keys: [{id: a, digest: \"md5:abc\"}]\n");
    assert!(
        e.contains("spec.apiKeys.keys[0].digest: must be sha256:"),
        "{e}"
    );
    let e = one_error(
        "  apiKeys:\n    keys: [{id: a, secretRef: {name: keys, key: alice}, expiresAt: tomorrow}]\n",
    );
    assert!(
        e.contains("spec.apiKeys.keys[0].expiresAt: \"tomorrow\" is not an RFC 3339"),
        "{e}"
    );
    let e = one_error(
        "  apiKeys:\n    keys:\n    - {id: a, secretRef: {name: keys, key: alice}}\n    - {id: a, secretRef: {name: keys, key: alice}}\n",
    );
    assert!(
        e.contains("spec.apiKeys.keys[1].id: duplicate key id \"a\""),
        "{e}"
    );
    let e = one_error(
        "  apiKeys:\n    keys:\n    - {id: a, secretRef: {name: keys, key: alice}}\n    - {id: b, secretRef: {name: keys, key: alice}}\n",
    );
    assert!(e.contains("already declared under another id"), "{e}");
}

#[test]
fn jwt_algorithms_none_and_hmac_are_refused() {
    for alg in ["none", "HS256"] {
        let e = one_error(&format!(
            "  jwt:\n    providers: [{{name: i, jwks: {{url: \"https://idp/jwks\"}}, algorithms: [{alg}]}}]\n"
        ));
        assert!(
            e.contains("spec.jwt.providers[0].algorithms[0]:"),
            "{alg}: {e}"
        );
    }
}

#[test]
fn jwks_sources_are_checked() {
    let e =
        one_error("  jwt:\n    providers: [{name: i, jwks: {url: \"http://idp.example/jwks\"}}]\n");
    assert!(
        e.contains("spec.jwt.providers[0].jwks.url:") && e.contains("https://"),
        "{e}"
    );
    let e = one_error("  jwt:\n    providers: [{name: i, jwks: {inline: \"{}\"}}]\n");
    assert!(e.contains("spec.jwt.providers[0].jwks.inline:"), "{e}");
    let e = one_error("  jwt:\n    providers: [{name: i, jwks: {file: /nonexistent/jwks.json}}]\n");
    assert!(
        e.contains("spec.jwt.providers[0].jwks.file: cannot read /nonexistent/jwks.json"),
        "{e}"
    );
    let e = one_error("  jwt:\n    providers: [{name: i, jwks: {}}]\n");
    assert!(e.contains("exactly one of file, url and inline"), "{e}");
    let e = one_error(
        "  jwt:\n    providers:\n    - {name: a, jwks: {url: \"https://a/jwks\"}}\n    - {name: b, issuer: \"https://b\", jwks: {url: \"https://b/jwks\"}}\n",
    );
    assert!(
        e.contains("spec.jwt.providers[0].issuer: is required when there are several"),
        "{e}"
    );
    let e = one_error(
        "  jwt:\n    providers: [{name: i, jwks: {url: \"https://idp/jwks\"}, clockSkew: 1h}]\n",
    );
    assert!(e.contains("clockSkew: must be at most 5m"), "{e}");
}

#[test]
fn rules_are_checked_and_cel_compiled_at_load() {
    let keys = "  apiKeys: {managed: true}\n";
    let e = one_error(&format!("{keys}  rules: [{{name: r, action: Permit}}]\n"));
    assert!(
        e.contains("spec.rules[0].action: unknown action \"Permit\""),
        "{e}"
    );
    let e = one_error(&format!(
        "{keys}  rules: [{{name: r, action: Allow, operations: [chats]}}]\n"
    ));
    assert!(
        e.contains("spec.rules[0].operations[0]: unknown operation \"chats\""),
        "{e}"
    );
    let e = one_error(&format!(
        "{keys}  rules: [{{name: r, action: Allow, methods: [Basic]}}]\n"
    ));
    assert!(
        e.contains("spec.rules[0].methods[0]: unknown method \"Basic\""),
        "{e}"
    );
    let e = one_error(&format!(
        "{keys}  rules: [{{name: r, action: Allow, when: \"identty.tenant == 'a'\"}}]\n"
    ));
    assert!(
        e.contains("spec.rules[0].when: unknown variable identty"),
        "{e}"
    );
    let e = one_error(&format!(
        "{keys}  rules: [{{name: r, action: Allow, when: \"identity.tenant ==\"}}]\n"
    ));
    assert!(
        e.contains("spec.rules[0].when: invalid CEL expression"),
        "{e}"
    );
    let e = one_error(&format!(
        "{keys}  rules:\n  - {{name: r, action: Allow}}\n  - {{name: r, action: Deny}}\n"
    ));
    assert!(e.contains("spec.rules[1].name: duplicate rule name"), "{e}");
}

#[test]
fn identity_headers_cannot_be_credentials() {
    let e = one_error("  apiKeys: {managed: true}\n  identityHeaders: {tenant: Authorization}\n");
    assert!(
        e.contains("spec.identityHeaders.tenant: \"Authorization\" is reserved"),
        "{e}"
    );
}

#[test]
fn targets_are_checked() {
    let (errors, warnings) = diagnose(&format!(
        "{}\n---\n{}",
        policy("  apiKeys: {managed: true}\n"),
        policy("  apiKeys: {managed: true}\n").replace("name: p,", "name: q,")
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("Gateway ns/gw already has an AccessPolicy"),
        "{}",
        errors[0]
    );
    assert!(warnings.is_empty());
    let text = "apiVersion: sluice.dev/v1alpha1\nkind: AccessPolicy\nmetadata: {name: p, namespace: ns}\nspec:\n  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: missing}]\n  apiKeys: {managed: true}\n";
    let (errors, warnings) = diagnose(text);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("HTTPRoute ns/missing not found; the policy protects nothing"));
    let e = one_error_raw("apiVersion: sluice.dev/v1alpha1\nkind: AccessPolicy\nmetadata: {name: p, namespace: ns}\nspec:\n  targetRefs: [{group: gateway.networking.k8s.io, kind: Backend, name: b}]\n  apiKeys: {managed: true}\n");
    assert!(
        e.contains("spec.targetRefs[0].kind: an AccessPolicy targets"),
        "{e}"
    );
}

fn one_error_raw(text: &str) -> String {
    let (errors, _) = diagnose(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors[0].clone()
}

const TLS_GATEWAY: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: tls, namespace: ns}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: cert}]}}
  tls:
    frontend:
      default:
        validation: VALIDATION
"#;

fn frontend_errors(validation: &str) -> Vec<String> {
    let certs = sluice_testkit::CertAuthority::new("access-errors CA").expect("CA");
    let leaf = certs.issue(&["example.test"]).expect("leaf");
    let extra = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: cert, namespace: ns}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {:?}\n  tls.key: {:?}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ca, namespace: ns}}\ndata:\n  ca.crt: {:?}\n  wrong.crt: x\n",
        leaf.cert_pem(), leaf.key_pem(), certs.cert_pem()
    );
    let text = format!(
        "{}\n---\n{extra}",
        TLS_GATEWAY.replace("VALIDATION", validation)
    );
    diagnose(&text).0
}

#[test]
fn client_certificate_validation_is_checked() {
    assert!(frontend_errors("{caCertificateRefs: [{kind: ConfigMap, name: ca}]}").is_empty());
    let e = frontend_errors("{caCertificateRefs: [{kind: ConfigMap, name: nope}]}");
    assert!(
        e.len() == 1
            && e[0].contains("Gateway ns/tls: spec.tls.frontend.default.validation.caCertificateRefs[0]: ConfigMap ns/nope not found"),
        "{e:#?}"
    );
    let e = frontend_errors("{caCertificateRefs: [{kind: ConfigMap, name: ca}], mode: Sometimes}");
    assert!(
        e.len() == 1 && e[0].contains("validation.mode: unknown mode \"Sometimes\""),
        "{e:#?}"
    );
    let e = frontend_errors("{caCertificateRefs: [{kind: Service, name: ca}]}");
    assert!(
        e.len() == 1 && e[0].contains("caCertificateRefs[0].kind: unsupported CA reference"),
        "{e:#?}"
    );
    let e = frontend_errors("{caCertificateRefs: []}");
    assert!(
        e.len() == 1 && e[0].contains("at least one CA certificate reference"),
        "{e:#?}"
    );
}

#[test]
fn a_routes_policy_replaces_the_gateways_for_that_route_only() {
    let routes = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: open, namespace: ns}
spec:
  parentRefs: [{name: gw}]
  rules: [{matches: [{path: {type: PathPrefix, value: /open}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: special, namespace: ns}
spec:
  parentRefs: [{name: gw}]
  rules: [{matches: [{path: {type: PathPrefix, value: /special}}]}]
---
apiVersion: sluice.dev/v1alpha1
kind: AccessPolicy
metadata: {name: route-policy, namespace: ns}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: special}]
  apiKeys: {managed: true}
"#;
    let text = format!(
        "{BASE}\n---\n{}\n---\n{routes}",
        policy("  apiKeys: {managed: true}\n")
    );
    let (set, diags) = sluice_config::load::load_str("access.yaml", &text);
    let snapshot = sluice_config::compile(&set, diags, &sluice_config::CompileOptions::default())
        .expect("compiles");
    let listener = &snapshot.sockets[0].listeners[0];
    assert_eq!(listener.access.as_ref().map(|p| &*p.name), Some("ns/p"));
    let rule_policy = |route: &str| {
        listener
            .virtual_hosts
            .iter()
            .flat_map(|v| &v.entries)
            .find(|e| &*e.rule.route == route)
            .map(|e| e.rule.access.as_ref().map(|p| p.name.to_string()))
    };
    assert_eq!(
        rule_policy("ns/open"),
        Some(None),
        "the Gateway's policy applies"
    );
    assert_eq!(
        rule_policy("ns/special"),
        Some(Some("ns/route-policy".to_string()))
    );
    assert_eq!(snapshot.access_policies().len(), 2);
}
