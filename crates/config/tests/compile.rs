//! What the translator builds from objects: which Gateways are served, how routes attach, the
//! precedence order of matches, and how backend references resolve to endpoints.

use std::sync::Arc;

use sluice_config::ir::{
    BackendTarget, Cluster, Endpoints, HostPattern, PathMatch, Snapshot, UpstreamProtocol,
};
use sluice_config::load::{load_path, load_str};
use sluice_config::{compile, CompileOptions};

fn build(text: &str) -> Snapshot {
    let (set, diags) = load_str("t.yaml", text);
    match compile(&set, diags, &CompileOptions::default()) {
        Ok(s) => s,
        Err(r) => panic!("unexpected errors: {:#?}", r.diagnostics.errors),
    }
}

const BASE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: sluice
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: a}}}}
---
apiVersion: v1
kind: Namespace
metadata: {name: apps, labels: {team: a}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: apps}
spec:
  ports:
  - {name: web, port: 80, targetPort: 8080}
  - {name: grpc, port: 81, appProtocol: kubernetes.io/h2c}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-1, namespace: apps, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{name: web, port: 9080}, {name: grpc, port: 9081}]
endpoints:
- addresses: [10.0.0.1]
  conditions: {ready: true}
- addresses: [10.0.0.2]
  conditions: {ready: false}
- addresses: [10.0.0.3]
"#;

fn cluster_of(s: &Snapshot, route: &str) -> Arc<Cluster> {
    for socket in &s.sockets {
        for l in &socket.listeners {
            for v in &l.virtual_hosts {
                for e in &v.entries {
                    if &*e.rule.route == route {
                        if let BackendTarget::Cluster(c) = &e.rule.backends[0].target {
                            return c.clone();
                        }
                    }
                }
            }
        }
    }
    panic!("route {route} has no cluster");
}

#[test]
fn service_endpoints_come_from_ready_endpoint_slice_addresses_and_named_ports() {
    let s = build(&format!(
        "{BASE}---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: apps}}\nspec:\n  parentRefs: [{{name: gw, namespace: infra}}]\n  rules:\n  - backendRefs: [{{name: api, port: 80}}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: g, namespace: apps}}\nspec:\n  parentRefs: [{{name: gw, namespace: infra}}]\n  hostnames: [grpc.example]\n  rules:\n  - backendRefs: [{{name: api, port: 81}}]\n"
    ));
    let web = cluster_of(&s, "apps/r");
    match &web.endpoints {
        Endpoints::Static(a) => assert_eq!(
            a.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["10.0.0.1:9080", "10.0.0.3:9080"],
            "not-ready endpoints are skipped; unknown readiness counts as ready"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(web.protocol, UpstreamProtocol::Http1);
    let grpc = cluster_of(&s, "apps/g");
    assert_eq!(
        grpc.protocol,
        UpstreamProtocol::Http2,
        "appProtocol kubernetes.io/h2c"
    );
}

#[test]
fn allowed_routes_selector_uses_namespace_labels() {
    let text = format!(
        "{BASE}---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: other}}\nspec:\n  parentRefs: [{{name: gw, namespace: infra}}]\n"
    );
    let (set, diags) = load_str("t.yaml", &text);
    let s = compile(&set, diags, &CompileOptions::default()).expect("valid");
    assert!(s.sockets[0].listeners[0].virtual_hosts.is_empty());
    assert_eq!(
        s.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["t.yaml: HTTPRoute other/r: spec.parentRefs[0]: not attached: listener \"http\" does not allow routes from namespace other"]
    );
}

#[test]
fn gateway_classes_select_what_is_served() {
    let gw = |name: &str, class: &str| {
        format!("---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: d}}\nspec:\n  gatewayClassName: {class}\n  addresses: [{{value: 127.0.0.{}}}]\n  listeners: [{{name: h, port: 80, protocol: HTTP}}]\n", name.len())
    };
    // No GatewayClass at all: every Gateway is served.
    let s = build(&format!("{}{}", gw("a", "x"), gw("bb", "y")));
    assert_eq!(s.sockets.len(), 2);
    // With classes: only those whose controllerName is Sluice's.
    let s = build(&format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: mine}}\nspec: {{controllerName: sluice.dev/gateway-controller}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: theirs}}\nspec: {{controllerName: example.com/other}}\n{}{}",
        gw("a", "mine"),
        gw("bb", "theirs")
    ));
    assert_eq!(s.sockets.len(), 1);
    assert_eq!(&*s.sockets[0].listeners[0].gateway, "d/a");
}

#[test]
fn reference_grant_permits_cross_namespace_backends() {
    let route = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: infra}\nspec:\n  parentRefs: [{name: gw2}]\n  rules:\n  - backendRefs: [{name: api, namespace: apps, port: 80}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw2, namespace: infra}\nspec:\n  gatewayClassName: sluice\n  addresses: [{value: 127.0.0.9}]\n  listeners: [{name: h, port: 8081, protocol: HTTP}]\n";
    let grant = "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: g, namespace: apps}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: infra}]\n  to: [{group: \"\", kind: Service}]\n";
    let without = build(&format!("{BASE}{route}"));
    let entry = &without
        .sockets
        .iter()
        .find(|s| s.port == 8081)
        .unwrap()
        .listeners[0]
        .virtual_hosts[0]
        .entries[0];
    assert!(matches!(
        entry.rule.backends[0].target,
        BackendTarget::Invalid(_)
    ));
    let with = build(&format!("{BASE}{route}{grant}"));
    assert_eq!(&*cluster_of(&with, "infra/r").name, "Service apps/api:80");
}

#[test]
fn matches_are_ordered_by_gateway_api_precedence() {
    let s = build(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: d}
spec:
  gatewayClassName: sluice
  listeners: [{name: h, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b-newer, namespace: d, creationTimestamp: "2026-01-02T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: a, value: "1"}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a-older, namespace: d, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}, method: GET}]
  - matches: [{path: {type: Exact, value: /api}}]
  - matches: [{path: {type: PathPrefix, value: /api/v1}}]
  - matches: [{path: {type: PathPrefix, value: /}}]
"#,
    );
    let order: Vec<String> = s.sockets[0].listeners[0].virtual_hosts[0]
        .entries
        .iter()
        .map(|e| {
            let p = match &e.matcher.path {
                PathMatch::Exact(p) => format!("={p}"),
                PathMatch::Prefix(p) => format!("{p}/*"),
                PathMatch::Regex(r) => r.as_str().to_string(),
            };
            format!(
                "{} {p} m={} h={}",
                e.rule.route,
                e.matcher.method.is_some(),
                e.matcher.headers.len()
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            "d/a-older =/api m=false h=0",
            "d/a-older /api/v1/* m=false h=0",
            "d/a-older /api/* m=true h=0",
            "d/b-newer /api/* m=false h=1",
            "d/a-older /* m=false h=0",
            "d/b-newer /* m=false h=0",
        ]
    );
}

#[test]
fn route_hostnames_intersect_with_listener_hostnames() {
    let s = build(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: d}
spec:
  gatewayClassName: sluice
  listeners: [{name: h, port: 80, protocol: HTTP, hostname: "*.example.com"}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: d}
spec:
  parentRefs: [{name: gw}]
  hostnames: [a.example.com, other.org, "*.b.example.com"]
"#,
    );
    let hosts: Vec<HostPattern> = s.sockets[0].listeners[0]
        .virtual_hosts
        .iter()
        .map(|v| v.host.clone())
        .collect();
    assert_eq!(
        hosts,
        [
            HostPattern::parse("a.example.com"),
            HostPattern::parse("*.b.example.com")
        ]
    );
}

#[test]
fn backends_by_fqdn_and_ip() {
    let s = build(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: d}
spec:
  gatewayClassName: sluice
  listeners: [{name: h, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1alpha1
kind: Backend
metadata: {name: openai, namespace: d}
spec:
  destination:
    type: FQDN
    fqdn: {hostname: api.openai.com}
    ports: [{number: 443, protocol: HTTPS}]
---
apiVersion: gateway.networking.k8s.io/v1alpha1
kind: Backend
metadata: {name: local, namespace: d}
spec:
  destination:
    type: IP
    ip: {address: 127.0.0.1}
    ports: [{number: 8000, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: o, namespace: d}
spec:
  parentRefs: [{name: gw}]
  hostnames: [o.test]
  rules: [{backendRefs: [{group: gateway.networking.k8s.io, kind: Backend, name: openai}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: l, namespace: d}
spec:
  parentRefs: [{name: gw}]
  hostnames: [l.test]
  rules: [{backendRefs: [{group: gateway.networking.k8s.io, kind: Backend, name: local, port: 8000}]}]
"#,
    );
    let o = cluster_of(&s, "d/o");
    assert!(
        matches!(&o.endpoints, Endpoints::Dns { hostname, port: 443 } if hostname == "api.openai.com")
    );
    let tls = o
        .tls
        .as_ref()
        .expect("HTTPS means TLS (mode Simple by default)");
    assert_eq!(
        format!("{:?}", tls.server_name),
        "DnsName(\"api.openai.com\")"
    );
    assert_eq!(
        tls.config.alpn_protocols,
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    let l = cluster_of(&s, "d/l");
    assert!(matches!(&l.endpoints, Endpoints::Static(a) if a[0].to_string() == "127.0.0.1:8000"));
    assert!(l.tls.is_none());
}

#[test]
fn a_directory_loads_every_yaml_file_in_order() {
    let dir = std::env::temp_dir().join(format!("sluice-config-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("a.yaml"),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: d}\nspec:\n  gatewayClassName: x\n  listeners: [{name: h, port: 80, protocol: HTTP}]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("b.yml"),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: d}\nspec:\n  parentRefs: [{name: gw}]\n---\n",
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "not config").unwrap();
    let (set, diags) = load_path(&dir);
    assert!(diags.errors.is_empty(), "{:?}", diags.errors);
    assert_eq!((set.gateways.len(), set.http_routes.len()), (1, 1));
    assert!(set.http_routes[0].source.file.ends_with("b.yml"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn yaml_1_1_boolean_words_stay_strings() {
    let (set, diags) = load_str(
        "t.yaml",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: no}\nspec: {controllerName: y}\n",
    );
    assert!(diags.errors.is_empty(), "{:?}", diags.errors);
    assert_eq!(set.gateway_classes[0].meta.name, "no");
    assert_eq!(set.gateway_classes[0].spec.controller_name, "y");
}
