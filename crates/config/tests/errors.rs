//! Bad configuration gets precise errors: every message names the file, the object and the
//! field. Each case asserts the exact text a user sees (`sluice validate` prints these).

mod common;

const GATEWAY: &str = r#"
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
metadata: {name: svc, namespace: ns}
spec:
  ports: [{name: http, port: 8080}]
"#;

/// Compiles `text` (plus a Gateway and a Service) and returns (errors, warnings) as printed.
fn diagnose(text: &str) -> (Vec<String>, Vec<String>) {
    common::diagnose_in("test.yaml", GATEWAY, text)
}

fn route(rules: &str) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: ns}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
{rules}"#
    )
}

fn service_ref() -> &'static str {
    "    backendRefs: [{name: svc, port: 8080}]\n"
}

#[test]
fn malformed_yaml_names_file_line_and_column() {
    let (errors, _) = diagnose("kind: [unclosed\n");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .starts_with("test.yaml: invalid YAML: error: line 17 column 7: unclosed bracket '['"),
        "{}",
        errors[0]
    );
}

#[test]
fn unknown_field_is_an_error_with_its_path() {
    let (errors, _) = diagnose(&route("  - matchs: []\n"));
    assert_eq!(
        errors,
        ["test.yaml: HTTPRoute ns/r: spec.rules[0].matchs: unknown field `matchs`, expected one of `name`, `matches`, `filters`, `backendRefs`, `timeouts`, `retry`, `sessionPersistence`"]
    );
}

#[test]
fn unknown_metadata_field_still_names_the_object() {
    let (errors, _) =
        diagnose("apiVersion: v1\nkind: Service\nmetadata: {name: s2, namespce: ns}\nspec: {}\n");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("test.yaml: Service s2: metadata.namespce: unknown field `namespce`"),
        "{}",
        errors[0]
    );
}

#[test]
fn invalid_regex_is_reported_at_its_field() {
    let (errors, _) = diagnose(&route(
        "  - matches: [{path: {type: RegularExpression, value: \"/a(\"}}]\n",
    ));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(
            "test.yaml: HTTPRoute ns/r: spec.rules[0].matches[0].path.value: invalid regular expression \"/a(\": regex parse error:"
        ),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].ends_with("error: unclosed group"),
        "{}",
        errors[0]
    );
}

#[test]
fn header_regex_is_checked_too() {
    let (errors, _) = diagnose(&route(
        "  - matches: [{headers: [{type: RegularExpression, name: x, value: \"[\"}]}]\n",
    ));
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with(
        "test.yaml: HTTPRoute ns/r: spec.rules[0].matches[0].headers[0].value: invalid regular expression \"[\""
    ));
}

#[test]
fn weight_out_of_range() {
    let (errors, _) = diagnose(&route(
        "  - backendRefs: [{name: svc, port: 8080, weight: 2000000}]\n",
    ));
    assert_eq!(
        errors,
        ["test.yaml: HTTPRoute ns/r: spec.rules[0].backendRefs[0].weight: weight 2000000 is out of range 0-1000000"]
    );
    let (errors, _) = diagnose(&route(
        "  - backendRefs: [{name: svc, port: 8080, weight: -1}]\n",
    ));
    assert_eq!(
        errors,
        ["test.yaml: HTTPRoute ns/r: spec.rules[0].backendRefs[0].weight: weight -1 is out of range 0-1000000"]
    );
}

#[test]
fn wrong_enum_value_lists_the_allowed_ones() {
    let (errors, _) = diagnose(&route("  - matches: [{path: {type: Prefix, value: /}}]\n"));
    assert_eq!(
        errors,
        ["test.yaml: HTTPRoute ns/r: spec.rules[0].matches[0].path.type: unknown variant `Prefix`, expected one of `Exact`, `PathPrefix`, `RegularExpression`"]
    );
}

#[test]
fn invalid_durations() {
    let (errors, _) = diagnose(&route(&format!(
        "  - timeouts: {{request: 1d}}\n{}",
        service_ref()
    )));
    assert_eq!(
        errors,
        ["test.yaml: HTTPRoute ns/r: spec.rules[0].timeouts.request: invalid duration \"1d\": expected up to 4 parts of 1-5 digits with a unit h, m, s or ms (e.g. 500ms, 1m30s)"]
    );
    let (errors, _) = diagnose(&route(&format!(
        "  - timeouts: {{request: 1s, backendRequest: 2s}}\n{}",
        service_ref()
    )));
    assert_eq!(
        errors,
        ["test.yaml: HTTPRoute ns/r: spec.rules[0].timeouts.backendRequest: must not be greater than timeouts.request"]
    );
}

#[test]
fn conflicting_listeners_protocol_and_hostname() {
    let other_gateway = |listener: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw2, namespace: ns}}\nspec:\n  gatewayClassName: x\n  listeners:\n  - {listener}\n"
        )
    };
    let (errors, _) = diagnose(&other_gateway(
        "{name: h, port: 80, protocol: HTTPS, tls: {certificateRefs: [{name: s}]}}",
    ));
    assert_eq!(
        errors[0],
        "test.yaml: Gateway ns/gw2: spec.listeners[0].protocol: conflicting listeners: port 80 on 0.0.0.0 is HTTP for Gateway ns/gw listener \"http\" but HTTPS here"
    );
    let (errors, _) = diagnose(&other_gateway("{name: h, port: 80, protocol: HTTP}"));
    assert_eq!(
        errors,
        ["test.yaml: Gateway ns/gw2: spec.listeners[0].hostname: conflicting listeners: hostname \"*\" on port 80 (0.0.0.0) is also served by Gateway ns/gw listener \"http\"; give one Gateway its own spec.addresses"]
    );
    // A specific address and "every address" on one port overlap.
    let (errors, _) = diagnose(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw2, namespace: ns}\nspec:\n  gatewayClassName: x\n  addresses: [{value: 127.0.0.2}]\n  listeners:\n  - {name: h, port: 80, protocol: HTTP}\n",
    );
    assert_eq!(
        errors,
        ["test.yaml: Gateway ns/gw2: spec.listeners[0].port: conflicting listeners: port 80 on 127.0.0.2 overlaps port 80 on 0.0.0.0 (Gateway ns/gw listener \"http\"); an unspecified address binds every interface"]
    );
    // Two specific addresses do not conflict.
    let (errors, _) = diagnose(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw2, namespace: ns}\nspec:\n  gatewayClassName: x\n  addresses: [{value: 127.0.0.2}]\n  listeners:\n  - {name: h, port: 81, protocol: HTTP}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw3, namespace: ns}\nspec:\n  gatewayClassName: x\n  addresses: [{value: 127.0.0.3}]\n  listeners:\n  - {name: h, port: 81, protocol: HTTP}\n",
    );
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn duplicate_listener_names_and_bad_ports() {
    let (errors, _) = diagnose(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw3, namespace: ns}\nspec:\n  gatewayClassName: x\n  addresses: [{value: 127.0.0.3}]\n  listeners:\n  - {name: a, port: 81, protocol: HTTP}\n  - {name: a, port: 82, protocol: HTTP}\n  - {name: b, port: 70000, protocol: HTTP}\n  - {name: c, port: 83, protocol: TCP}\n",
    );
    assert_eq!(
        errors,
        [
            "test.yaml: Gateway ns/gw3: spec.listeners[1].name: duplicate listener name \"a\"",
            "test.yaml: Gateway ns/gw3: spec.listeners[2].port: port 70000 is out of range 1-65535",
            "test.yaml: Gateway ns/gw3: spec.listeners[3].protocol: unsupported protocol \"TCP\" (supported: HTTP, HTTPS)",
        ]
    );
}

#[test]
fn dangling_references() {
    // A backend that does not exist: the route still loads; requests to it get 500.
    let (errors, warnings) = diagnose(&route("  - backendRefs: [{name: nope, port: 8080}]\n"));
    assert!(errors.is_empty());
    assert_eq!(
        warnings,
        ["test.yaml: HTTPRoute ns/r: spec.rules[0].backendRefs[0]: Service ns/nope not found; requests to it get 500"]
    );
    // A Service port that does not exist.
    let (_, warnings) = diagnose(&route("  - backendRefs: [{name: svc, port: 9}]\n"));
    assert_eq!(
        warnings,
        ["test.yaml: HTTPRoute ns/r: spec.rules[0].backendRefs[0]: Service ns/svc has no port 9; requests to it get 500"]
    );
    // A cross-namespace reference without a ReferenceGrant.
    let (_, warnings) = diagnose(&route(
        "  - backendRefs: [{name: svc, namespace: other, port: 8080}]\n",
    ));
    assert_eq!(
        warnings,
        ["test.yaml: HTTPRoute ns/r: spec.rules[0].backendRefs[0]: reference to Service other/svc is not permitted by any ReferenceGrant in namespace other; requests to it get 500"]
    );
    // A parent Gateway that does not exist.
    let (_, warnings) = diagnose(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r2, namespace: ns}\nspec:\n  parentRefs: [{name: nope}]\n",
    );
    assert_eq!(
        warnings,
        ["test.yaml: HTTPRoute ns/r2: spec.parentRefs[0]: Gateway ns/nope not found or not served by Sluice"]
    );
    // A TLS certificate Secret that does not exist: the listener cannot serve, so it is an error.
    let (errors, _) = diagnose(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: tls, namespace: ns}\nspec:\n  gatewayClassName: x\n  listeners:\n  - {name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: missing}]}}\n",
    );
    assert_eq!(
        errors,
        ["test.yaml: Gateway ns/tls: spec.listeners[0].tls.certificateRefs[0]: Secret ns/missing not found"]
    );
}

#[test]
fn missing_service_port_is_an_error() {
    let (errors, _) = diagnose(&route("  - backendRefs: [{name: svc}]\n"));
    assert_eq!(
        errors,
        ["test.yaml: HTTPRoute ns/r: spec.rules[0].backendRefs[0].port: is required for a Service backend"]
    );
}

#[test]
fn filter_errors() {
    let (errors, _) = diagnose(&route(
        "  - filters:\n    - {type: RequestRedirect, requestRedirect: {statusCode: 200}}\n    - {type: URLRewrite, urlRewrite: {hostname: Bad_Host}}\n    - {type: RequestHeaderModifier}\n    - {type: ExtensionRef, extensionRef: {group: x, kind: y, name: z}}\n",
    ));
    assert_eq!(
        errors,
        [
            "test.yaml: HTTPRoute ns/r: spec.rules[0].filters[0].requestRedirect.statusCode: status code 200 is not a redirect (301, 302, 303, 307, 308)",
            "test.yaml: HTTPRoute ns/r: spec.rules[0].filters[1].urlRewrite.hostname: invalid hostname \"Bad_Host\": expected a lowercase DNS name, optionally prefixed with \"*.\"",
            "test.yaml: HTTPRoute ns/r: spec.rules[0].filters[2].requestHeaderModifier: is required when type is RequestHeaderModifier",
            "test.yaml: HTTPRoute ns/r: spec.rules[0].filters[3].type: filter type \"ExtensionRef\" is not supported (supported: RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror)",
            "test.yaml: HTTPRoute ns/r: spec.rules[0].filters: RequestRedirect and URLRewrite cannot be used together",
        ]
    );
}

#[test]
fn replace_prefix_match_needs_prefix_matches() {
    let (errors, _) = diagnose(&route(
        "  - matches: [{path: {type: Exact, value: /a}}]\n    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]\n",
    ));
    assert_eq!(
        errors,
        ["test.yaml: HTTPRoute ns/r: spec.rules[0].filters[0].urlRewrite.path.type: ReplacePrefixMatch needs every match of the rule to be a PathPrefix match"]
    );
}

#[test]
fn unknown_kinds_are_warnings() {
    let (errors, warnings) =
        diagnose("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n");
    assert!(errors.is_empty());
    assert_eq!(
        warnings,
        ["test.yaml: Widget w: unknown kind Widget (example.com/v1); ignored"]
    );
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let (errors, _) = diagnose(&format!(
        "{}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: ns}}\ndata: {{tls.crt: \"!!notbase64\"}}\nbogus: 1\n",
        route("  - matches: [{method: FETCH}]\n    backendRefs: [{name: svc, port: 8080, weight: 5000000}]\n")
    ));
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors[0].starts_with("test.yaml: Secret ns/s: bogus: unknown field `bogus`"));
    assert_eq!(
        errors[1],
        "test.yaml: HTTPRoute ns/r: spec.rules[0].matches[0].method: unsupported method \"FETCH\""
    );
    assert_eq!(
        errors[2],
        "test.yaml: HTTPRoute ns/r: spec.rules[0].backendRefs[0].weight: weight 5000000 is out of range 0-1000000"
    );
}

#[test]
fn duplicate_objects_are_errors() {
    let (errors, _) = diagnose(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: ns}\nspec:\n  gatewayClassName: x\n  listeners: []\n",
    );
    assert_eq!(
        errors,
        ["test.yaml: Gateway ns/gw: metadata.name: duplicate object (also defined in test.yaml)"]
    );
}

#[test]
fn every_backend_is_validated_even_unreferenced() {
    let (errors, _) = diagnose(
        "apiVersion: gateway.networking.k8s.io/v1alpha1\nkind: Backend\nmetadata: {name: b, namespace: ns}\nspec:\n  destination:\n    type: FQDN\n    fqdn: {hostname: \"*.example.com\"}\n    ports: [{number: 443, protocol: QUIC}]\n---\napiVersion: gateway.networking.k8s.io/v1alpha1\nkind: Backend\nmetadata: {name: c, namespace: ns}\nspec:\n  destination:\n    type: IP\n    ip: {address: 10.0.0.300}\n    ports: [{number: 80}]\n",
    );
    assert_eq!(
        errors,
        [
            "test.yaml: Backend ns/b: spec.destination.fqdn.hostname: invalid hostname \"*.example.com\": a wildcard is not allowed here",
            "test.yaml: Backend ns/c: spec.destination.ip.address: \"10.0.0.300\" is not an IP address",
        ]
    );
}

#[test]
fn redirect_hostnames_must_be_precise() {
    let (errors, _) = diagnose(&route(
        "  - filters: [{type: RequestRedirect, requestRedirect: {hostname: \"*.example.com\"}}]\n",
    ));
    assert_eq!(
        errors,
        ["test.yaml: HTTPRoute ns/r: spec.rules[0].filters[0].requestRedirect.hostname: invalid hostname \"*.example.com\": a wildcard is not allowed here"]
    );
}

#[test]
fn listener_tls_that_cannot_be_honoured_is_refused() {
    let (errors, _) = diagnose(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: mtls, namespace: ns}\nspec:\n  gatewayClassName: x\n  addresses: [{value: 127.0.0.5}]\n  listeners:\n  - {name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: s}], frontendValidation: {caCertificateRefs: [{name: ca}]}}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: opaque, namespace: ns}\ntype: Opaque\nstringData: {tls.crt: x, tls.key: y}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: wrong-type, namespace: ns}\nspec:\n  gatewayClassName: x\n  addresses: [{value: 127.0.0.6}]\n  listeners:\n  - {name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: opaque}]}}\n",
    );
    assert_eq!(
        errors,
        [
            "test.yaml: Gateway ns/mtls: spec.listeners[0].tls.frontendValidation: client certificate validation is configured Gateway-wide: use spec.tls.frontend (Gateway API v1.4)",
            "test.yaml: Gateway ns/wrong-type: spec.listeners[0].tls.certificateRefs[0]: Secret ns/opaque has type \"Opaque\"; a certificate needs kubernetes.io/tls",
        ]
    );
}

#[test]
fn ignored_fields_are_warned_about() {
    let (errors, warnings) = diagnose(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: orphan, namespace: ns}\nspec:\n  rules: [{sessionPersistence: {sessionName: s}}]\n",
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        warnings,
        [
            "test.yaml: HTTPRoute ns/orphan: spec.parentRefs: no parent: the route is not attached to any Gateway",
            "test.yaml: HTTPRoute ns/orphan: spec.rules[0].sessionPersistence: ignored: not supported yet",
        ]
    );
}
