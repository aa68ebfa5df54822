//! Requests are normalised before routing, so a path cannot match one route and reach another
//! route's backend; and on HTTPS a Host that belongs to another listener than the TLS server name
//! selected is refused with 421 (the certificate shown was not for that host).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use sluice_testkit::gateway::free_port;
use sluice_testkit::{
    Alpn, CertAuthority, ClientRequest, EchoConfig, EchoedRequest, GatewayOptions, GatewayProcess,
    TempDir, Upstream,
};

fn indent(pem: &str) -> String {
    pem.lines().map(|l| format!("      {l}\n")).collect()
}

async fn echo(pod: &str) -> Upstream {
    EchoConfig::new("default", pod)
        .spawn(Ipv4Addr::LOCALHOST.into())
        .await
        .expect("echo")
}

fn backend(name: &str, addr: SocketAddr) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1alpha1\nkind: Backend\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  destination:\n    type: IP\n    ip: {{address: {}}}\n    ports: [{{number: {}, protocol: HTTP}}]\n",
        addr.ip(),
        addr.port()
    )
}

fn route(name: &str, prefix: &str, backend: &str, port: u16, hostnames: &str) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  parentRefs: [{{name: gw}}]\n  hostnames: {hostnames}\n  rules:\n  - matches: [{{path: {{type: PathPrefix, value: {prefix}}}}}]\n    backendRefs: [{{group: gateway.networking.k8s.io, kind: Backend, name: {backend}, port: {port}}}]\n"
    )
}

#[tokio::test]
async fn dot_segments_and_double_slashes_cannot_reach_another_route() {
    let public = echo("public").await;
    let admin = echo("admin").await;
    let listen = free_port(IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("port");
    let dir = TempDir::new("sluice-norm").expect("dir");
    let config = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: default}}\nspec:\n  gatewayClassName: sluice\n  listeners: [{{name: http, port: {listen}, protocol: HTTP}}]\n{}{}{}{}",
        backend("public", public.addr()),
        backend("admin", admin.addr()),
        route("public", "/public", "public", public.addr().port(), "[]"),
        route("admin", "/admin", "admin", admin.addr().port(), "[]"),
    );
    let path = dir.write("g.yaml", config).expect("config");
    let gw = GatewayProcess::start(GatewayOptions::new(env!("CARGO_BIN_EXE_sluice"), path))
        .await
        .expect("gateway");
    let addr = gw.listener_addr(listen);
    for (sent, pod, seen) in [
        ("/public/../admin/x", "admin", "/admin/x"),
        ("/public/%2e%2e/admin/x?q=1", "admin", "/admin/x?q=1"),
        ("//admin//x", "admin", "/admin/x"),
        ("/public/./a", "public", "/public/a"),
        ("/public/a", "public", "/public/a"),
    ] {
        let resp = ClientRequest::get(sent)
            .host("a.test")
            .send(addr)
            .await
            .expect("request");
        assert_eq!(resp.status, 200, "{sent}: {}", resp.text());
        let echoed: EchoedRequest = resp.json().expect("echo");
        assert_eq!(
            (echoed.pod.as_str(), echoed.path.as_str()),
            (pod, seen),
            "{sent}"
        );
    }
}

#[tokio::test]
async fn host_of_another_listener_than_the_sni_gets_421() {
    let a = echo("a").await;
    let b = echo("b").await;
    let ca = CertAuthority::new("sluice test CA").expect("ca");
    let cert_a = ca.issue(&["a.example.test"]).expect("cert a");
    let cert_b = ca.issue(&["b.example.test"]).expect("cert b");
    let listen = free_port(IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("port");
    let dir = TempDir::new("sluice-421").expect("dir");
    let secret = |name: &str, cert: &str, key: &str| {
        format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
            indent(cert),
            indent(key)
        )
    };
    let config = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: default}}\nspec:\n  gatewayClassName: sluice\n  listeners:\n  - {{name: a, port: {listen}, protocol: HTTPS, hostname: a.example.test, tls: {{certificateRefs: [{{name: a}}]}}}}\n  - {{name: b, port: {listen}, protocol: HTTPS, hostname: b.example.test, tls: {{certificateRefs: [{{name: b}}]}}}}\n{}{}{}{}{}{}",
        secret("a", cert_a.cert_pem(), cert_a.key_pem()),
        secret("b", cert_b.cert_pem(), cert_b.key_pem()),
        backend("a", a.addr()),
        backend("b", b.addr()),
        route("a", "/", "a", a.addr().port(), "[a.example.test]"),
        route("b", "/", "b", b.addr().port(), "[b.example.test]"),
    );
    let path = dir.write("g.yaml", config).expect("config");
    let gw = GatewayProcess::start(GatewayOptions::new(env!("CARGO_BIN_EXE_sluice"), path))
        .await
        .expect("gateway");
    let addr = gw.listener_addr(listen);
    let tls = ca.client_config(Alpn::Both).expect("client tls");
    let send = |sni: &'static str, host: &'static str| {
        ClientRequest::get("/")
            .host(host)
            .tls(tls.clone(), sni)
            .send(addr)
    };
    let ok = send("a.example.test", "a.example.test").await.expect("a");
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json::<EchoedRequest>().expect("echo").pod, "a");
    let ok = send("b.example.test", "b.example.test").await.expect("b");
    assert_eq!(ok.json::<EchoedRequest>().expect("echo").pod, "b");
    let misdirected = send("a.example.test", "b.example.test")
        .await
        .expect("mismatch");
    assert_eq!(misdirected.status, 421, "{}", misdirected.text());
}
