//! The echo upstream must behave like Gateway API's echo-basic, over HTTP/1.1, h2c and TLS.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use sluice_testkit::upstream::{channel, full, Upstream};
use sluice_testkit::{Alpn, CertAuthority, ClientRequest, EchoConfig, EchoedRequest, HttpVersion};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn echo() -> Upstream {
    EchoConfig::new("ns-1", "svc-abc-123")
        .spawn(LOCALHOST)
        .await
        .expect("echo spawns")
}

#[tokio::test]
async fn echoes_http1_requests_like_echo_basic() {
    let echo = echo().await;
    let response = ClientRequest::get("/some/path?x=1&y=two")
        .host("example.com")
        .header("x-custom", "a")
        .header("X-Multi", "1")
        .header("x-multi", "2")
        .send(echo.addr())
        .await
        .expect("request succeeds");
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        response.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    let echoed: EchoedRequest = response.json().expect("JSON body");
    assert_eq!(echoed.path, "/some/path?x=1&y=two");
    assert_eq!(echoed.host, "example.com");
    assert_eq!(echoed.method, "GET");
    assert_eq!(echoed.proto, "HTTP/1.1");
    assert_eq!(echoed.namespace, "ns-1");
    assert_eq!(echoed.pod, "svc-abc-123");
    assert_eq!(echoed.ingress, "");
    assert_eq!(echoed.http_port, echo.addr().port().to_string());
    assert_eq!(echoed.headers.get("X-Custom"), Some(&vec!["a".to_owned()]));
    assert_eq!(echoed.header("x-multi").as_deref(), Some("1,2"));
    assert!(
        !echoed.headers.contains_key("Host"),
        "Host is reported separately"
    );
    assert!(echoed.tls.is_none());
}

#[tokio::test]
async fn echoes_h2c_prior_knowledge_on_the_same_port() {
    let echo = echo().await;
    let response = ClientRequest::new(http::Method::POST, "/h2?q")
        .host("h2.example")
        .version(HttpVersion::Http2)
        .body("ignored")
        .send(echo.addr())
        .await
        .expect("h2c request succeeds");
    assert_eq!(response.version, http::Version::HTTP_2);
    let echoed: EchoedRequest = response.json().expect("JSON body");
    assert_eq!(echoed.proto, "HTTP/2.0");
    assert_eq!(echoed.host, "h2.example");
    assert_eq!(echoed.method, "POST");
    assert_eq!(echoed.path, "/h2?q");
}

#[tokio::test]
async fn delay_query_parameter_delays_the_answer() {
    let echo = echo().await;
    let start = Instant::now();
    let response = ClientRequest::get("/slow?delay=300ms")
        .send(echo.addr())
        .await
        .expect("request succeeds");
    assert_eq!(response.status, StatusCode::OK);
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "answered too early"
    );

    let too_slow = ClientRequest::get("/slow?delay=1s")
        .timeout(Duration::from_millis(200))
        .send(echo.addr())
        .await;
    assert!(
        too_slow.is_err(),
        "a 1s delay must outlast a 200ms client timeout"
    );

    let bad = ClientRequest::get("/slow?delay=soon")
        .send(echo.addr())
        .await
        .expect("request succeeds");
    assert_eq!(bad.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(bad.text().contains("invalid duration"), "{}", bad.text());
}

#[tokio::test]
async fn echo_set_header_sets_response_headers() {
    let echo = echo().await;
    let response = ClientRequest::get("/")
        .header("X-Echo-Set-Header", "X-Foo: bar, X-Baz: qux,X-Foo:again")
        .send(echo.addr())
        .await
        .expect("request succeeds");
    assert_eq!(response.header("x-foo").as_deref(), Some("bar,again"));
    assert_eq!(response.header("x-baz").as_deref(), Some("qux"));

    // The conformance harness always sends the header, usually empty: that must be harmless.
    let response = ClientRequest::get("/")
        .header("X-Echo-Set-Header", "")
        .send(echo.addr())
        .await
        .expect("request succeeds");
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn health_and_status_endpoints() {
    let echo = echo().await;
    let health = ClientRequest::get("/health")
        .send(echo.addr())
        .await
        .expect("health");
    assert_eq!(
        (health.status, health.text().as_str()),
        (StatusCode::OK, "OK")
    );
    let teapot = ClientRequest::get("/status/418")
        .send(echo.addr())
        .await
        .expect("status");
    assert_eq!(teapot.status, StatusCode::IM_A_TEAPOT);
    let bad = ClientRequest::get("/status/4180")
        .send(echo.addr())
        .await
        .expect("status");
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn echo_over_tls_reports_sni_and_alpn() {
    let ca = CertAuthority::new("test CA").expect("CA");
    let leaf = ca.issue(&["echo.test", "*.wild.test"]).expect("leaf");
    let echo = EchoConfig::new("ns", "tls-pod")
        .spawn_with(Upstream::builder().tls(leaf.server_config(Alpn::Both).expect("server config")))
        .await
        .expect("echo spawns");

    for (alpn, proto, negotiated) in [
        (Alpn::Both, "HTTP/2.0", "h2"),
        (Alpn::Http1, "HTTP/1.1", "http/1.1"),
    ] {
        let config = ca.client_config(alpn).expect("client config");
        let response = ClientRequest::get("/tls")
            .host("a.wild.test")
            .tls(config, "a.wild.test")
            .send(echo.addr())
            .await
            .expect("TLS request succeeds");
        let echoed: EchoedRequest = response.json().expect("JSON body");
        assert_eq!(echoed.proto, proto);
        let tls = echoed.tls.expect("TLS facts reported");
        assert_eq!(tls.server_name, "a.wild.test");
        assert_eq!(tls.negotiated_protocol, negotiated);
        assert_eq!(tls.version, "TLSv1.3");
    }

    let wrong_name = ClientRequest::get("/")
        .tls(
            ca.client_config(Alpn::Http1).expect("client config"),
            "other.test",
        )
        .send(echo.addr())
        .await;
    assert!(
        wrong_name.is_err(),
        "certificate must not verify for other.test"
    );

    let untrusted = CertAuthority::new("other CA").expect("CA");
    let untrusted = ClientRequest::get("/")
        .tls(
            untrusted.client_config(Alpn::Http1).expect("client config"),
            "echo.test",
        )
        .send(echo.addr())
        .await;
    assert!(untrusted.is_err(), "a different CA must not be trusted");
}

#[tokio::test]
async fn ip_address_certificates_verify() {
    let ca = CertAuthority::new("ip CA").expect("CA");
    let leaf = ca.issue(&["127.0.0.1"]).expect("leaf");
    let echo = EchoConfig::new("ns", "ip-pod")
        .spawn_with(Upstream::builder().tls(leaf.server_config(Alpn::Http1).expect("config")))
        .await
        .expect("echo spawns");
    let response = ClientRequest::get("/")
        .tls(
            ca.client_config(Alpn::Http1).expect("client config"),
            "127.0.0.1",
        )
        .send(echo.addr())
        .await
        .expect("IP SAN verifies");
    assert_eq!(response.status, StatusCode::OK);
    assert!(leaf.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(leaf.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(leaf.cert_chain().len(), 2);
}

#[tokio::test]
async fn custom_upstreams_stream_and_shut_down() {
    let upstream = Upstream::spawn(|_req| async {
        let (mut sender, body) = channel(1);
        tokio::spawn(async move {
            for i in 0..3 {
                if sender
                    .send_data(Bytes::from(format!("chunk{i};")))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Response::new(body)
    })
    .await
    .expect("upstream spawns");
    let addr = upstream.addr();
    let response = ClientRequest::get("/").send(addr).await.expect("request");
    assert_eq!(response.text(), "chunk0;chunk1;chunk2;");
    assert_eq!(upstream.accepted_connections(), 1);

    upstream.shutdown().await;
    let after = ClientRequest::get("/").send(addr).await;
    assert!(after.is_err(), "port must be closed after shutdown");

    let plain = Upstream::spawn(|_req| async { Response::new(full("x")) })
        .await
        .expect("upstream spawns");
    let addr = plain.addr();
    drop(plain);
    // Drop aborts asynchronously: wait (bounded) until the runtime has closed the listener.
    tokio::time::timeout(Duration::from_secs(5), async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("listener closes after drop");
}
