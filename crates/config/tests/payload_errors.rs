//! PayloadProcessor: what compiles (order across objects, fast-path expressions), and precise
//! errors (file, object, field) or warnings (conflicts) for the rest.

mod common;

use sluice_config::ir::{GuardAction, ProcessorKind, StreamMode, ValueExpr};

const BASE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: ns}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: http, port: 80, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: ns}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: svc, port: 80}]
"#;

fn processor(name: &str, extra_meta: &str, target: &str, phase: &str, body: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1alpha1\nkind: PayloadProcessor\nmetadata: {{name: {name}, namespace: ns{extra_meta}}}\nspec:\n  targetRef: {{group: gateway.networking.k8s.io, kind: {target}}}\n  phase: {phase}\n{body}"
    )
}

fn gateway_post(body: &str) -> String {
    processor("pp", "", "Gateway, name: gw", "PostRouting", body)
}

fn errors_of(text: &str) -> (Vec<String>, Vec<String>) {
    common::diagnose_in("pp.yaml", BASE, text)
}

fn one_error(text: &str) -> String {
    let (errors, _) = errors_of(text);
    assert_eq!(errors.len(), 1, "{text}\n{errors:#?}");
    errors[0].clone()
}

fn compile(text: &str) -> sluice_config::Snapshot {
    let full = format!("{BASE}\n---\n{text}");
    let (set, diags) = sluice_config::load::load_str("pp.yaml", &full);
    sluice_config::compile(&set, diags, &sluice_config::CompileOptions::default())
        .unwrap_or_else(|r| panic!("{:#?}", r.diagnostics.errors))
}

const TAG: &str = r#"  processors:
  - name: tag
    type: InProcess
    inProcess:
      request:
        setHeaders: [{name: x-tag, value: "'v'"}]
"#;

#[test]
fn objects_attach_per_phase_and_run_oldest_first() {
    let newer = processor(
        "newer",
        ", creationTimestamp: \"2026-02-01T00:00:00Z\"",
        "Gateway, name: gw",
        "PostRouting",
        &TAG.replace("name: tag", "name: b"),
    );
    let older = processor(
        "older",
        ", creationTimestamp: \"2026-01-01T00:00:00Z\"",
        "Gateway, name: gw",
        "PostRouting",
        &TAG.replace("name: tag", "name: a")
            .replace("x-tag", "x-other"),
    );
    let pre = processor(
        "model",
        "",
        "Gateway, name: gw",
        "PreRouting",
        r#"  maxBodyBytes: 4096
  processors:
  - name: model
    type: InProcess
    timeout: 20ms
    failureMode: FailOpen
    inProcess:
      request:
        setHeaders:
        - {name: X-Gateway-Model-Name, value: json(request.body).model}
        - {name: x-tenant, value: "request.headers['x-team']"}
        - {name: x-both, value: "request.headers['x-team'] + json(request.body).model"}
"#,
    );
    let route = processor("route", "", "HTTPRoute, name: r", "PostRouting", TAG);
    let s = compile(&format!("{newer}\n---\n{older}\n---\n{pre}\n---\n{route}"));
    let l = &s.sockets[0].listeners[0];
    let post = l.post_routing.as_ref().expect("Gateway PostRouting");
    let names: Vec<&str> = post.processors.iter().map(|p| &*p.name).collect();
    assert_eq!(names, ["ns/older/a", "ns/newer/b"]);
    assert_eq!(post.max_body_bytes, 2 * 1024 * 1024);
    assert!(!post.needs_request_body());

    let pre = l.pre_routing.as_ref().expect("PreRouting");
    assert_eq!(pre.max_body_bytes, 4096);
    assert!(pre.needs_request_body());
    let p = &pre.processors[0];
    assert!(p.fail_open);
    assert_eq!(p.timeout, std::time::Duration::from_millis(20));
    let ProcessorKind::InProcess(ip) = &p.kind else {
        panic!("InProcess")
    };
    let sets = &ip.request.as_ref().expect("request").set_headers;
    assert!(matches!(&sets[0].1, ValueExpr::BodyField(path) if path.source == "$.model"));
    assert!(matches!(&sets[1].1, ValueExpr::Header(h) if h.as_str() == "x-team"));
    assert!(matches!(
        &sets[2].1,
        ValueExpr::Cel {
            reads_body: true,
            ..
        }
    ));

    let entry = &l.virtual_hosts[0].entries[0];
    let route_post = entry.rule.post_routing.as_ref().expect("route PostRouting");
    assert_eq!(&*route_post.processors[0].name, "ns/route/tag");
}

#[test]
fn guardrail_settings_compile() {
    let s = compile(&gateway_post(
        r#"  processors:
  - name: pii
    type: Guardrail
    guardrail:
      applyTo: [Request, Response]
      action: Redact
      pii: [Email, CreditCard]
      secrets: [All]
      promptInjection: {threshold: 0.7}
      regex: [{name: order, patterns: ["ORD-[0-9]{8}"]}]
      keywords: [{name: banned, patterns: [zorblax]}]
      maxInputTokens: 8000
      streaming: {mode: Window, holdBackBytes: 8}
      block: {status: 422, message: nope}
"#,
    ));
    let post = s.sockets[0].listeners[0]
        .post_routing
        .clone()
        .expect("post");
    let ProcessorKind::Guardrail(g) = &post.processors[0].kind else {
        panic!("Guardrail")
    };
    assert!(g.on_request && g.on_response);
    assert_eq!(g.action, GuardAction::Redact);
    assert_eq!(g.block.status.as_u16(), 422);
    assert_eq!(g.max_input_tokens, Some(8000));
    // The hold-back never drops below the longest match a detector can make.
    match g.stream {
        StreamMode::Window { hold_back } => assert!(hold_back >= g.guard.max_match_len()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn precise_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "  processors:\n  - {name: a, type: Magic}\n",
            "spec.processors[0].type: unknown processor type \"Magic\"",
        ),
        (
            "  processors:\n  - {name: a, type: InProcess}\n",
            "spec.processors[0].inProcess: is required for type InProcess",
        ),
        (
            "  processors:\n  - {name: a, type: InProcess, failureMode: Maybe, inProcess: {request: {removeHeaders: [x]}}}\n",
            "spec.processors[0].failureMode: unknown failure mode \"Maybe\"",
        ),
        (
            "  processors:\n  - {name: a, type: InProcess, timeout: 5 minutes, inProcess: {request: {removeHeaders: [x]}}}\n",
            "spec.processors[0].timeout: invalid duration",
        ),
        (
            "  processors:\n  - name: a\n    type: InProcess\n    inProcess: {request: {setHeaders: [{name: x, value: \"requets.body\"}]}}\n",
            "spec.processors[0].inProcess.request.setHeaders[0].value:",
        ),
        (
            "  processors:\n  - name: a\n    type: InProcess\n    inProcess: {request: {setHeaders: [{name: x, value: \"response.status\"}]}}\n",
            "unknown variable response",
        ),
        (
            "  processors:\n  - name: a\n    type: InProcess\n    inProcess: {request: {setHeaders: [{name: x, value: \"1 +\"}]}}\n",
            "invalid CEL expression",
        ),
        (
            "  processors:\n  - name: a\n    type: InProcess\n    inProcess: {request: {setBodyFields: [{path: \"$.messages[*]\", value: \"1\"}]}}\n",
            "spec.processors[0].inProcess.request.setBodyFields[0].path: JSONPath \"$.messages[*]\"",
        ),
        (
            "  processors:\n  - name: a\n    type: InProcess\n    inProcess: {request: {setHeaders: [{name: host, value: \"'x'\"}]}}\n",
            "cannot be changed by a processor",
        ),
        (
            "  processors:\n  - {name: a, type: InProcess, inProcess: {request: {removeHeaders: [x]}}, guardrail: {pii: [Email]}}\n",
            "spec.processors[0].guardrail: is for type Guardrail",
        ),
        (
            "  processors: []\n",
            "spec.processors: between 1 and 16 processors are required",
        ),
        (
            "  processors:\n  - {name: a, type: Guardrail, guardrail: {pii: [Passport]}}\n",
            "spec.processors[0].guardrail.pii[0]: unknown PII kind \"Passport\"",
        ),
        (
            "  processors:\n  - {name: a, type: Guardrail, guardrail: {action: Redact}}\n",
            "checks nothing",
        ),
        (
            "  processors:\n  - {name: a, type: Guardrail, guardrail: {pii: [Email], block: {status: 200}}}\n",
            "spec.processors[0].guardrail.block.status: 200 is not an error status",
        ),
        (
            "  processors:\n  - {name: a, type: Guardrail, guardrail: {pii: [Email], streaming: {mode: Later}}}\n",
            "spec.processors[0].guardrail.streaming.mode: unknown streaming mode \"Later\"",
        ),
        (
            "  processors:\n  - {name: a, type: Guardrail, guardrail: {regex: [{name: r, patterns: [\"(unclosed\"]}]}}\n",
            "spec.processors[0].guardrail:",
        ),
        (
            "  processors:\n  - {name: a, type: InProcess, inProcess: {request: {removeHeaders: [x]}}}\n  - {name: a, type: InProcess, inProcess: {request: {removeHeaders: [y]}}}\n",
            "spec.processors[1].name: duplicate processor name \"a\"",
        ),
    ];
    for (body, want) in cases {
        let err = one_error(&gateway_post(body));
        assert!(
            err.starts_with("pp.yaml: PayloadProcessor ns/pp: "),
            "names file and object: {err}"
        );
        assert!(err.contains(want), "{body}\nwant {want:?}\n got {err}");
    }
}

#[test]
fn phase_and_target_errors() {
    let err = one_error(&processor(
        "pp",
        "",
        "HTTPRoute, name: r",
        "PreRouting",
        TAG,
    ));
    assert!(
        err.contains("spec.phase: PreRouting processors run before any route is chosen"),
        "{err}"
    );
    let err = one_error(&processor("pp", "", "Gateway, name: gw", "Sometime", TAG));
    assert!(
        err.contains("spec.phase: unknown phase \"Sometime\""),
        "{err}"
    );
    let err = one_error(&processor(
        "pp",
        "",
        "Service, name: gw",
        "PostRouting",
        TAG,
    ));
    assert!(err.contains("spec.targetRef.kind:"), "{err}");
    let (errors, warnings) = errors_of(&processor(
        "pp",
        "",
        "Gateway, name: nope",
        "PostRouting",
        TAG,
    ));
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("Gateway ns/nope not found")),
        "{warnings:#?}"
    );
}

#[test]
fn conflicts_across_objects_are_reported() {
    let a = processor("a", "", "Gateway, name: gw", "PostRouting", TAG);
    let b = processor("b", "", "Gateway, name: gw", "PostRouting", TAG);
    let (errors, _) = errors_of(&format!("{a}\n---\n{b}"));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("PayloadProcessor ns/b")
            && errors[0].contains("processor \"tag\" is also defined by PayloadProcessor ns/a"),
        "{}",
        errors[0]
    );
    // Two processors writing one header: allowed (the later wins) but reported.
    let b = processor(
        "b",
        "",
        "Gateway, name: gw",
        "PostRouting",
        &TAG.replace("name: tag", "name: other"),
    );
    let (errors, warnings) = errors_of(&format!("{a}\n---\n{b}"));
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("sets header x-tag that processor ns/a/tag also sets")),
        "{warnings:#?}"
    );
}
