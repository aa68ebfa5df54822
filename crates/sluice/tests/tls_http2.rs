//! TLS and HTTP/2, end to end against the real binary: downstream TLS termination with SNI
//! certificate selection, HTTP/2 downstream (ALPN `h2` over TLS, prior knowledge in clear text),
//! and upstream TLS origination / HTTP/2 through `Backend` objects and h2c Services.
//!
//! Every certificate is generated per test; clients and upstreams verify chains for real, so a
//! wrong certificate fails the handshake instead of being silently accepted.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use http::{StatusCode, Version};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use serde_json::{json, Value};
use sluice_testkit::certs::crypto_provider;
use sluice_testkit::{
    Alpn, CertAuthority, ClientRequest, EchoConfig, EchoedRequest, HttpVersion, LeafCert, Upstream,
};
use tokio::net::TcpStream;

use common::*;

fn echo() -> EchoConfig {
    EchoConfig::new(NS, "echo-pod")
}

async fn plain_echo() -> Upstream {
    echo().spawn(LOCALHOST).await.expect("echo upstream")
}

async fn tls_echo(config: Arc<ServerConfig>) -> Upstream {
    echo()
        .spawn_with(Upstream::builder().ip(LOCALHOST).tls(config))
        .await
        .expect("TLS echo upstream")
}

/// Sends `GET path` through the gateway's cleartext listener and returns status and echo.
async fn get_echo(addr: SocketAddr, path: &str) -> (StatusCode, Option<EchoedRequest>, String) {
    let resp = ClientRequest::get(path)
        .host("app.example.test")
        .send(addr)
        .await
        .expect("request through the gateway");
    let echoed = resp.json::<EchoedRequest>().ok();
    (resp.status, echoed, resp.text())
}

/// A Backend destination of type IP pointing at `addr` with one port.
fn ip_destination(addr: SocketAddr, protocol: &str, tls: Option<Value>) -> Value {
    let mut port = json!({ "number": addr.port(), "protocol": protocol });
    if let Some(t) = tls {
        port["tls"] = t;
    }
    json!({ "type": "IP", "ip": { "address": addr.ip().to_string() }, "ports": [port] })
}

/// Connects with TLS (SNI `sni`, trusting only `ca`) and returns the leaf certificate served.
async fn served_leaf(addr: SocketAddr, sni: &str, ca: &CertAuthority) -> CertificateDer<'static> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let connector =
        tokio_rustls::TlsConnector::from(ca.client_config(Alpn::Http1).expect("client config"));
    let name = ServerName::try_from(sni.to_owned()).expect("valid SNI");
    let tls = connector
        .connect(name, tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS handshake for SNI {sni} (certificate verified): {e}"));
    tls.get_ref()
        .1
        .peer_certificates()
        .expect("server certificates")[0]
        .clone()
        .into_owned()
}

#[tokio::test]
async fn sni_selects_exact_and_wildcard_listener_certificates() {
    let ca = CertAuthority::new("sni test CA").expect("CA");
    let exact = ca.issue(&["exact.example.test"]).expect("exact cert");
    let wild = ca.issue(&["*.wild.example.test"]).expect("wildcard cert");
    let upstream = plain_echo().await;
    let gw = start(
        |port| {
            let mut objects = gateway(vec![
                https_listener("exact", port, Some("exact.example.test"), "exact-cert"),
                https_listener("wild", port, Some("*.wild.example.test"), "wild-cert"),
            ]);
            objects.push(route(
                "main",
                &[],
                vec![prefix_rule("/", service_ref("echo", SERVICE_PORT))],
            ));
            objects.push(tls_secret("exact-cert", &exact));
            objects.push(tls_secret("wild-cert", &wild));
            objects.extend(service("echo", upstream.addr(), None));
            objects
        },
        &[],
    )
    .await;
    let addr = gw.addr();

    assert_eq!(
        served_leaf(addr, "exact.example.test", &ca).await,
        exact.cert_der(),
        "SNI exact.example.test must get the exact listener's certificate"
    );
    assert_eq!(
        served_leaf(addr, "api.wild.example.test", &ca).await,
        wild.cert_der(),
        "SNI api.wild.example.test must get the wildcard listener's certificate"
    );

    // And requests flow through each listener (TLS verified for the SNI, routed by Host).
    for host in ["exact.example.test", "api.wild.example.test"] {
        let resp = ClientRequest::get("/sni")
            .host(host)
            .tls(ca.client_config(Alpn::Http1).expect("client config"), host)
            .send(addr)
            .await
            .unwrap_or_else(|e| panic!("HTTPS request for {host}: {e}"));
        assert_eq!(resp.status, StatusCode::OK, "{host}: {}", resp.text());
        let echoed: EchoedRequest = resp.json().expect("echo body");
        assert_eq!(echoed.host, host);
        assert_eq!(echoed.header("X-Forwarded-Proto").as_deref(), Some("https"));
    }
}

#[tokio::test]
async fn http2_downstream_over_tls_is_negotiated_with_alpn() {
    let ca = CertAuthority::new("alpn test CA").expect("CA");
    let leaf = ca.issue(&["h2.example.test"]).expect("cert");
    let upstream = plain_echo().await;
    let gw = start(
        |port| {
            let mut objects = gateway(vec![https_listener("https", port, None, "cert")]);
            objects.push(route(
                "main",
                &[],
                vec![prefix_rule("/", service_ref("echo", SERVICE_PORT))],
            ));
            objects.push(tls_secret("cert", &leaf));
            objects.extend(service("echo", upstream.addr(), None));
            objects
        },
        &[],
    )
    .await;
    let addr = gw.addr();

    for (alpn, expected) in [
        (Alpn::Both, Version::HTTP_2),
        (Alpn::Http2, Version::HTTP_2),
        (Alpn::Http1, Version::HTTP_11),
        (Alpn::None, Version::HTTP_11),
    ] {
        let resp = ClientRequest::get("/alpn?x=1")
            .host("h2.example.test")
            .tls(
                ca.client_config(alpn).expect("client config"),
                "h2.example.test",
            )
            .send(addr)
            .await
            .unwrap_or_else(|e| panic!("HTTPS request offering {alpn:?}: {e}"));
        assert_eq!(resp.status, StatusCode::OK, "{alpn:?}: {}", resp.text());
        assert_eq!(
            resp.version, expected,
            "downstream version offering {alpn:?}"
        );
        let echoed: EchoedRequest = resp.json().expect("echo body");
        // The Service speaks HTTP/1.1: the :authority becomes the Host header upstream.
        assert_eq!(echoed.proto, "HTTP/1.1");
        assert_eq!(echoed.host, "h2.example.test");
        assert_eq!(echoed.path, "/alpn?x=1");
    }
}

#[tokio::test]
async fn h2c_prior_knowledge_and_http1_share_a_cleartext_port() {
    let upstream = plain_echo().await;
    let gw = start(
        |port| {
            simple_config(
                port,
                service_ref("echo", SERVICE_PORT),
                service("echo", upstream.addr(), None),
            )
        },
        &[],
    )
    .await;
    let addr = gw.addr();

    for (version, expected) in [
        (HttpVersion::Http1, Version::HTTP_11),
        (HttpVersion::Http2, Version::HTTP_2),
    ] {
        let resp = ClientRequest::get("/clear")
            .host("app.example.test")
            .version(version)
            .send(addr)
            .await
            .unwrap_or_else(|e| panic!("{version:?} request: {e}"));
        assert_eq!(resp.status, StatusCode::OK, "{version:?}: {}", resp.text());
        assert_eq!(resp.version, expected);
        let echoed: EchoedRequest = resp.json().expect("echo body");
        assert_eq!(echoed.host, "app.example.test");
        assert_eq!(echoed.header("X-Forwarded-Proto").as_deref(), Some("http"));
    }
}

#[tokio::test]
async fn upstream_tls_simple_verifies_with_config_map_ca_and_sends_sni() {
    let ca = CertAuthority::new("upstream CA").expect("CA");
    let leaf = ca
        .issue(&["upstream.internal", "127.0.0.1"])
        .expect("upstream cert");
    let upstream = tls_echo(leaf.server_config(Alpn::Http1).expect("server config")).await;
    let gw = start(
        |port| {
            let tls = |sni: Option<&str>| {
                let mut t = json!({ "mode": "Simple", "caBundleRef": { "name": "upstream-ca" } });
                if let Some(s) = sni {
                    t["sni"] = json!(s);
                }
                t
            };
            let mut objects = gateway(vec![http_listener("http", port)]);
            objects.push(route(
                "main",
                &[],
                vec![
                    prefix_rule("/named", backend_ref("tls-named")),
                    prefix_rule("/ip", backend_ref("tls-ip")),
                ],
            ));
            objects.push(backend(
                "tls-named",
                ip_destination(
                    upstream.addr(),
                    "HTTPS",
                    Some(tls(Some("upstream.internal"))),
                ),
            ));
            // No `sni`: the IP address is verified against the certificate's IP SAN, and (IP
            // literals are never sent as SNI) the upstream sees no server name.
            objects.push(backend(
                "tls-ip",
                ip_destination(upstream.addr(), "HTTPS", Some(tls(None))),
            ));
            objects.push(ca_config_map("upstream-ca", &ca.cert_pem()));
            objects
        },
        &[],
    )
    .await;
    let addr = gw.addr();

    let (status, echoed, text) = get_echo(addr, "/named").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let tls = echoed.expect("echo body").tls.expect("upstream saw TLS");
    assert_eq!(tls.server_name, "upstream.internal");
    assert_eq!(tls.negotiated_protocol, "http/1.1");

    let (status, echoed, text) = get_echo(addr, "/ip").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let tls = echoed.expect("echo body").tls.expect("upstream saw TLS");
    assert_eq!(tls.server_name, "", "no SNI for an IP destination");
}

/// A server config that requires a client certificate issued by `client_ca`.
fn mutual_tls_server_config(leaf: &LeafCert, client_ca: &CertAuthority) -> Arc<ServerConfig> {
    let provider = crypto_provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(client_ca.root_store().expect("client CA roots")),
        provider.clone(),
    )
    .build()
    .expect("client certificate verifier");
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![leaf.cert_der()], leaf.key_der())
        .expect("server certificate");
    config.alpn_protocols = Alpn::Http1.protocols();
    Arc::new(config)
}

#[tokio::test]
async fn upstream_tls_mutual_presents_the_client_certificate() {
    let server_ca = CertAuthority::new("mtls server CA").expect("CA");
    let client_ca = CertAuthority::new("mtls client CA").expect("CA");
    let server_leaf = server_ca.issue(&["mtls.internal"]).expect("server cert");
    let client_leaf = client_ca.issue(&["sluice-gateway"]).expect("client cert");
    let upstream = tls_echo(mutual_tls_server_config(&server_leaf, &client_ca)).await;
    let gw = start(
        |port| {
            let mut objects = gateway(vec![http_listener("http", port)]);
            objects.push(route(
                "main",
                &[],
                vec![
                    prefix_rule("/mutual", backend_ref("mutual")),
                    prefix_rule("/simple", backend_ref("simple")),
                ],
            ));
            objects.push(backend(
                "mutual",
                ip_destination(
                    upstream.addr(),
                    "HTTPS",
                    Some(json!({
                        "mode": "Mutual",
                        "sni": "mtls.internal",
                        "caBundleRef": { "name": "server-ca" },
                        "clientCertificateRef": { "name": "gateway-client" },
                    })),
                ),
            ));
            // Control: the same upstream without a client certificate must be refused.
            objects.push(backend(
                "simple",
                ip_destination(
                    upstream.addr(),
                    "HTTPS",
                    Some(json!({
                        "mode": "Simple",
                        "sni": "mtls.internal",
                        "caBundleRef": { "name": "server-ca" },
                    })),
                ),
            ));
            objects.push(ca_config_map("server-ca", &server_ca.cert_pem()));
            objects.push(tls_secret("gateway-client", &client_leaf));
            objects
        },
        &[],
    )
    .await;
    let addr = gw.addr();

    let (status, echoed, text) = get_echo(addr, "/mutual").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let tls = echoed.expect("echo body").tls.expect("upstream saw TLS");
    assert_eq!(tls.server_name, "mtls.internal");

    // With TLS 1.3 the client learns that its (missing) certificate was refused only after its
    // side of the handshake, so this is a connect failure (503) or a reset (502) — never a 200.
    let (status, _, text) = get_echo(addr, "/simple").await;
    assert!(
        status == StatusCode::BAD_GATEWAY || status == StatusCode::SERVICE_UNAVAILABLE,
        "without a client certificate the upstream must refuse: {status} {text}"
    );
}

#[tokio::test]
async fn upstream_tls_insecure_skip_verify_accepts_a_self_signed_certificate() {
    let self_signed =
        rcgen::generate_simple_self_signed(vec!["selfsigned.test".to_owned()]).expect("cert");
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![self_signed.cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                self_signed.signing_key.serialize_der(),
            )),
        )
        .expect("server certificate");
    config.alpn_protocols = Alpn::Http1.protocols();
    let upstream = tls_echo(Arc::new(config)).await;
    let gw = start(
        |port| {
            let mut objects = gateway(vec![http_listener("http", port)]);
            objects.push(route(
                "main",
                &[],
                vec![
                    prefix_rule("/insecure", backend_ref("insecure")),
                    prefix_rule("/verified", backend_ref("verified")),
                ],
            ));
            objects.push(backend(
        "insecure",
        ip_destination(
            upstream.addr(),
            "HTTPS",
            Some(json!({ "mode": "Simple", "sni": "selfsigned.test", "insecureSkipVerify": true })),
        ),
    ));
            // Control: the same upstream verified against the default (web PKI) roots fails.
            objects.push(backend(
                "verified",
                ip_destination(
                    upstream.addr(),
                    "HTTPS",
                    Some(json!({ "mode": "Simple", "sni": "selfsigned.test" })),
                ),
            ));
            objects
        },
        &[],
    )
    .await;
    let addr = gw.addr();

    let (status, echoed, text) = get_echo(addr, "/insecure").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let tls = echoed.expect("echo body").tls.expect("upstream saw TLS");
    assert_eq!(tls.server_name, "selfsigned.test");

    let (status, _, text) = get_echo(addr, "/verified").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
}

#[tokio::test]
async fn upstream_tls_with_the_wrong_ca_fails_to_connect() {
    let real_ca = CertAuthority::new("real upstream CA").expect("CA");
    let other_ca = CertAuthority::new("unrelated CA").expect("CA");
    let leaf = real_ca.issue(&["upstream.internal"]).expect("cert");
    let upstream = tls_echo(leaf.server_config(Alpn::Http1).expect("server config")).await;
    let gw = start(
        |port| {
            simple_config(
                port,
                backend_ref("wrong-ca"),
                vec![
                    backend(
                        "wrong-ca",
                        ip_destination(
                            upstream.addr(),
                            "HTTPS",
                            Some(json!({
                                "mode": "Simple",
                                "sni": "upstream.internal",
                                "caBundleRef": { "kind": "ConfigMap", "name": "other-ca" },
                            })),
                        ),
                    ),
                    ca_config_map("other-ca", &other_ca.cert_pem()),
                ],
            )
        },
        &[],
    )
    .await;

    let (status, _, text) = get_echo(gw.addr(), "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(text.contains("upstream_connect_error"), "{text}");
    let metrics = gw.metrics().await.expect("metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sluice_upstream_connect_errors_total{")
                && l.contains("wrong-ca")),
        "connect error counted:\n{metrics}"
    );
}

#[tokio::test]
async fn upstream_h2c_is_used_for_services_with_the_h2c_app_protocol() {
    let upstream = plain_echo().await;
    let gw = start(
        |port| {
            let mut objects = gateway(vec![http_listener("http", port)]);
            objects.push(route(
                "main",
                &[],
                vec![
                    prefix_rule("/h2c", service_ref("echo-h2c", SERVICE_PORT)),
                    prefix_rule("/h1", service_ref("echo-h1", SERVICE_PORT)),
                    prefix_rule("/backend-h2c", backend_ref("backend-h2c")),
                ],
            ));
            objects.extend(service(
                "echo-h2c",
                upstream.addr(),
                Some("kubernetes.io/h2c"),
            ));
            objects.extend(service("echo-h1", upstream.addr(), None));
            objects.push(backend(
                "backend-h2c",
                ip_destination(upstream.addr(), "HTTP2", None),
            ));
            objects
        },
        &[],
    )
    .await;
    let addr = gw.addr();

    for (path, proto) in [
        ("/h2c", "HTTP/2.0"),
        ("/h1", "HTTP/1.1"),
        ("/backend-h2c", "HTTP/2.0"),
    ] {
        let (status, echoed, text) = get_echo(addr, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {text}");
        let echoed = echoed.expect("echo body");
        assert_eq!(echoed.proto, proto, "{path}");
        assert_eq!(echoed.host, "app.example.test", "{path}");
        assert!(echoed.tls.is_none());
    }
}

#[tokio::test]
async fn upstream_http2_over_tls_is_negotiated_with_alpn_h2() {
    let ca = CertAuthority::new("h2 upstream CA").expect("CA");
    let leaf = ca.issue(&["h2.internal"]).expect("cert");
    // The upstream offers both; what the gateway offers decides.
    let upstream = tls_echo(leaf.server_config(Alpn::Both).expect("server config")).await;
    let gw = start(
        |port| {
            let tls =
                json!({ "mode": "Simple", "sni": "h2.internal", "caBundleRef": { "name": "ca" } });
            let mut objects = gateway(vec![http_listener("http", port)]);
            objects.push(route(
                "main",
                &[],
                vec![
                    prefix_rule("/http2", backend_ref("http2")),
                    prefix_rule("/tls", backend_ref("tls")),
                    prefix_rule("/https1", backend_ref("https1")),
                ],
            ));
            objects.push(backend(
                "http2",
                ip_destination(upstream.addr(), "HTTP2", Some(tls.clone())),
            ));
            objects.push(backend(
                "tls",
                ip_destination(upstream.addr(), "TLS", Some(tls.clone())),
            ));
            // Control: plain HTTP with TLS origination offers only http/1.1.
            objects.push(backend(
                "https1",
                ip_destination(upstream.addr(), "HTTP", Some(tls)),
            ));
            objects.push(ca_config_map("ca", &ca.cert_pem()));
            objects
        },
        &[],
    )
    .await;
    let addr = gw.addr();

    for (path, alpn, proto) in [
        ("/http2", "h2", "HTTP/2.0"),
        ("/tls", "h2", "HTTP/2.0"),
        ("/https1", "http/1.1", "HTTP/1.1"),
    ] {
        let (status, echoed, text) = get_echo(addr, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {text}");
        let echoed = echoed.expect("echo body");
        let tls = echoed.tls.expect("upstream saw TLS");
        assert_eq!(tls.negotiated_protocol, alpn, "{path}");
        assert_eq!(tls.server_name, "h2.internal", "{path}");
        assert_eq!(echoed.proto, proto, "{path}");
        assert_eq!(echoed.host, "app.example.test", "{path}");
    }
}

#[tokio::test]
async fn fqdn_backend_resolves_localhost_through_dns() {
    let upstream = plain_echo().await;
    let gw = start(
        |port| {
            simple_config(
                port,
                backend_ref("local"),
                vec![backend(
                    "local",
                    json!({
                        "type": "FQDN",
                        "fqdn": { "hostname": "localhost" },
                        "ports": [{ "number": upstream.addr().port(), "protocol": "HTTP" }],
                    }),
                )],
            )
        },
        &[],
    )
    .await;

    let (status, echoed, text) = get_echo(gw.addr(), "/dns").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let echoed = echoed.expect("echo body");
    assert_eq!(echoed.path, "/dns");
    assert_eq!(
        echoed.host, "app.example.test",
        "Host is forwarded, not rewritten"
    );

    // The access log shows the request went to the name (the DNS path), not a static address.
    let records = access_log_records(&gw, 1).await;
    assert_eq!(records[0]["path"], "/dns");
    assert_eq!(
        records[0]["upstream_address"],
        json!(format!("localhost:{}", upstream.addr().port()))
    );
}
