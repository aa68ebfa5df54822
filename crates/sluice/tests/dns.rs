//! FQDN backends follow DNS: the gateway re-resolves a name when its TTL runs out, serves the old
//! answer while it does (no request waits on DNS after the first), and opens new connections to
//! the new addresses. A real DNS server on loopback (a minimal one written here, answering A
//! queries with a 1-second TTL) stands in for the network's resolver via `--dns-server`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_testkit::gateway::free_port;
use sluice_testkit::{
    ClientRequest, EchoConfig, EchoedRequest, GatewayOptions, GatewayProcess, TempDir, Upstream,
};
use tokio::net::UdpSocket;

/// Answers every A query with `current` (TTL 1 s) and every other query with no records.
struct DnsServer {
    addr: SocketAddr,
    current: Arc<AtomicU32>,
    queries: Arc<AtomicUsize>,
}

impl DnsServer {
    async fn start(answer: Ipv4Addr) -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind DNS socket");
        let addr = socket.local_addr().expect("DNS address");
        let current = Arc::new(AtomicU32::new(u32::from(answer)));
        let queries = Arc::new(AtomicUsize::new(0));
        let (c, q) = (current.clone(), queries.clone());
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                if let Some(reply) =
                    answer_query(&buf[..n], Ipv4Addr::from(c.load(Ordering::SeqCst)))
                {
                    q.fetch_add(1, Ordering::SeqCst);
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        DnsServer {
            addr,
            current,
            queries,
        }
    }

    fn set(&self, ip: Ipv4Addr) {
        self.current.store(u32::from(ip), Ordering::SeqCst);
    }
}

/// Builds the response to one query (RFC 1035 §4.1): header, the question copied, and for an A
/// question one answer pointing back at the question name.
fn answer_query(query: &[u8], ip: Ipv4Addr) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    let mut i = 12;
    while *query.get(i)? != 0 {
        i += 1 + usize::from(query[i]);
    }
    let qtype = u16::from_be_bytes([*query.get(i + 1)?, *query.get(i + 2)?]);
    let question_end = i + 5;
    let is_a = qtype == 1;
    let mut out = Vec::with_capacity(question_end + 16);
    out.extend_from_slice(&query[0..2]); // id
    out.extend_from_slice(&[0x81, 0x80]); // response, recursion desired + available, NOERROR
    out.extend_from_slice(&[0, 1, 0, u8::from(is_a), 0, 0, 0, 0]);
    out.extend_from_slice(query.get(12..question_end)?);
    if is_a {
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4]); // name ptr, A, IN, TTL 1, len 4
        out.extend_from_slice(&ip.octets());
    }
    Some(out)
}

#[tokio::test]
async fn fqdn_backend_follows_dns_changes_after_the_ttl() {
    let first = Ipv4Addr::new(127, 0, 0, 1);
    let second = Ipv4Addr::new(127, 0, 0, 2);
    // One port number free on both addresses, since a Backend has one port.
    let port = loop {
        let p = free_port(IpAddr::V4(first)).expect("free port");
        if std::net::TcpListener::bind((second, p)).is_ok() {
            break p;
        }
    };
    let _a: Upstream = EchoConfig::new("dns", "pod-a")
        .spawn_with(Upstream::builder().bind(SocketAddr::new(first.into(), port)))
        .await
        .expect("echo a");
    let _b: Upstream = EchoConfig::new("dns", "pod-b")
        .spawn_with(Upstream::builder().bind(SocketAddr::new(second.into(), port)))
        .await
        .expect("echo b");
    let dns = DnsServer::start(first).await;

    let listen = free_port(IpAddr::V4(first)).expect("listener port");
    let dir = TempDir::new("sluice-dns").expect("temp dir");
    let config = dir
        .write(
            "gateway.yaml",
            format!(
                r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: sluice
  listeners: [{{name: http, port: {listen}, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1alpha1
kind: Backend
metadata: {{name: named, namespace: default}}
spec:
  destination:
    type: FQDN
    fqdn: {{hostname: upstream.sluice.test}}
    ports: [{{number: {port}, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  rules: [{{backendRefs: [{{group: gateway.networking.k8s.io, kind: Backend, name: named, port: {port}}}]}}]
"#
            ),
        )
        .expect("write config");
    let gateway = GatewayProcess::start(
        GatewayOptions::new(env!("CARGO_BIN_EXE_sluice"), config)
            .arg("--dns-server")
            .arg(dns.addr.to_string()),
    )
    .await
    .expect("gateway starts");
    let target = gateway.listener_addr(listen);
    let pod = || async {
        let resp = ClientRequest::get("/")
            .host("example.test")
            .send(target)
            .await
            .expect("request");
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json::<EchoedRequest>().expect("echo body").pod
    };

    assert_eq!(pod().await, "pod-a");
    dns.set(second);
    let changed_at = Instant::now();
    let mut served_by_a_after_change = 0;
    loop {
        match pod().await.as_str() {
            "pod-b" => break,
            _ => served_by_a_after_change += 1,
        }
        assert!(
            changed_at.elapsed() < Duration::from_secs(10),
            "still routed to the old address 10 s after the DNS change (TTL is 1 s)"
        );
    }
    // The stale answer kept serving until the TTL ran out, rather than blocking requests.
    assert!(served_by_a_after_change > 0);
    assert!(
        dns.queries.load(Ordering::SeqCst) >= 2,
        "the name was resolved again"
    );
    // And it sticks: every following request goes to the new address.
    for _ in 0..5 {
        assert_eq!(pod().await, "pod-b");
    }
}
