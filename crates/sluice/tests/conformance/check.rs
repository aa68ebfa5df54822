//! Sending one conformance case and comparing like Gateway API's `CompareRequest`
//! (`conformance/utils/http/http.go`), but collecting every mismatch instead of the first.
//!
//! Each case is sent exactly once: the gateway reports readiness only after loading the config,
//! so the upstream suite's retry-until-consistent loop would only hide flakiness.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::Method;
use sluice_testkit::{ClientRequest, ClientResponse, EchoedRequest};
use tokio::task::JoinSet;

use super::model::{Case, CaseFile, Distribution, Redirect};
use super::setup::Cluster;

/// SNI when a TLS case has no host (the Go suite always passes `example.org` as server name).
const DEFAULT_SNI: &str = "example.org";

/// A case's request after applying the harness defaults, plus where it goes.
pub struct Prepared {
    pub request: ClientRequest,
    pub connect: SocketAddr,
    pub scheme: &'static str,
    /// Go's `CalculateHost(gwAddr, scheme)`: the logical gateway address, port omitted when it
    /// is the scheme's default. Used as Host when the case has none and as redirect base.
    pub logical_host: String,
    pub description: String,
}

pub fn prepare(cluster: &Cluster, file: &CaseFile, case: &Case) -> Result<Prepared, String> {
    let gateway = file.gateway_for_block(case.block);
    let target = cluster
        .gateways
        .get(&gateway)
        .ok_or_else(|| format!("gateway {gateway} not in config"))?;
    let scheme = if target.https { "https" } else { "http" };
    let default_port = if target.https { 443 } else { 80 };
    let logical_host = if target.logical_port == default_port {
        cluster.ip.to_string()
    } else {
        format!("{}:{}", cluster.ip, target.logical_port)
    };
    let r = &case.request;
    let host = if r.host.is_empty() {
        logical_host.clone()
    } else {
        r.host.clone()
    };
    let method = Method::from_bytes(r.method().as_bytes()).map_err(|e| e.to_string())?;
    let mut request = ClientRequest::new(method, r.path.as_str()).host(host.as_str());
    for (name, value) in &r.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    // Like MakeRequest: always present, listing the headers the echo should set (often none).
    let echo_set: Vec<String> = case
        .expect
        .other
        .backend_set_response_headers
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect();
    request = request.header("X-Echo-Set-Header", echo_set.join(","));
    if target.https {
        let sni = if r.host.is_empty() {
            DEFAULT_SNI
        } else {
            r.host.as_str()
        };
        request = request.tls(Arc::clone(&cluster.client_tls), sni);
    }
    let connect = cluster.connect_addr(target.logical_port);
    let description = format!(
        "{} {scheme}://{host}{} (gateway {gateway}, sent to {connect}){}",
        r.method(),
        r.path,
        if r.headers.is_empty() {
            String::new()
        } else {
            format!(" headers {:?}", r.headers)
        }
    );
    Ok(Prepared {
        request,
        connect,
        scheme,
        logical_host,
        description,
    })
}

/// Send a case and return every mismatch (empty = pass).
pub async fn run_case(prepared: &Prepared, case: &Case) -> Vec<String> {
    match prepared.request.send(prepared.connect).await {
        Ok(response) => compare(prepared, case, &response),
        Err(e) => vec![format!("request failed: {e}")],
    }
}

fn compare(prepared: &Prepared, case: &Case, response: &ClientResponse) -> Vec<String> {
    let expect = &case.expect;
    let status = response.status.as_u16();
    if is_redirect(status) && !case.request.unfollow_redirect {
        // The Go client would follow it; no case in the data relies on that.
        return vec![format!(
            "unexpected redirect {status} to {:?} (following redirects is not supported)",
            response.header("location").unwrap_or_default()
        )];
    }
    if !expect.status.contains(&status) {
        let mut msg = format!("status: expected {:?}, got {status}", expect.status);
        if let Some(location) = response.header("location") {
            msg.push_str(&format!(" (Location: {location})"));
        }
        msg.push_str(&format!(" body: {}", snippet(&response.text())));
        return vec![msg];
    }
    let mut errors = Vec::new();
    if status == 200 || status == 204 {
        compare_backend(case, response, &mut errors);
        compare_response_headers(case, response, &mut errors);
    } else if is_redirect(status) {
        if let Some(redirect) = &expect.redirect {
            compare_redirect(prepared, case, redirect, response, &mut errors);
        }
    }
    errors
}

fn compare_backend(case: &Case, response: &ClientResponse, errors: &mut Vec<String>) {
    let expect = &case.expect;
    let echoed: EchoedRequest = match response.json() {
        Ok(e) => e,
        Err(e) => {
            errors.push(format!(
                "response is not an echo body ({e}): {}",
                snippet(&response.text())
            ));
            return;
        }
    };
    let mut check = |what: &str, want: &str, got: &str| {
        if want != got {
            errors.push(format!("{what}: expected {want:?}, got {got:?}"));
        }
    };
    if let Some(req) = &expect.backend_request {
        check("backend path", &req.path, &echoed.path);
        let method = if req.method.is_empty() {
            "GET"
        } else {
            req.method.as_str()
        };
        check("backend method", method, &echoed.method);
        if let Some(host) = req.host.as_deref().filter(|h| !h.is_empty()) {
            check("backend host", host, &echoed.host);
        }
    }
    if let Some(ns) = &expect.namespace {
        check("namespace", ns, &echoed.namespace);
    }
    if let Some(backend) = &expect.backend {
        if !echoed.pod.starts_with(backend.as_str()) {
            errors.push(format!(
                "backend: expected pod {backend}-*, got {:?}",
                echoed.pod
            ));
        }
    }
    let Some(req) = &expect.backend_request else {
        return;
    };
    for (name, want) in &req.headers {
        match echoed.header(name) {
            Some(got) if &got == want => {}
            Some(got) => errors.push(format!(
                "backend header {name}: expected {want:?}, got {got:?}"
            )),
            None => errors.push(format!(
                "backend header {name}: expected {want:?}, absent (got headers {:?})",
                echoed.headers
            )),
        }
    }
    for name in &req.absent_headers {
        if let Some(got) = echoed.header(name) {
            errors.push(format!(
                "backend header {name}: expected absent, got {got:?}"
            ));
        }
    }
}

fn compare_response_headers(case: &Case, response: &ClientResponse, errors: &mut Vec<String>) {
    let expect = &case.expect;
    for (name, want) in &expect.response_headers {
        match response.header(name) {
            Some(got) if &got == want => {}
            Some(got) => errors.push(format!(
                "response header {name}: expected {want:?}, got {got:?}"
            )),
            None => errors.push(format!("response header {name}: expected {want:?}, absent")),
        }
    }
    for name in &expect.response_absent_headers {
        if let Some(got) = response.header(name) {
            errors.push(format!(
                "response header {name}: expected absent, got {got:?}"
            ));
        }
    }
}

/// Location components as Go's `url.URL` gives them (Scheme, Hostname(), Port(), Path).
#[derive(Debug)]
struct Location {
    scheme: String,
    host: String,
    port: String,
    path: String,
}

/// Parse `Location`, resolving a relative reference against the request URL the Go client
/// would have used (`<scheme>://<logical gateway host><path>`).
fn parse_location(raw: &str, scheme: &str, base_host: &str) -> Result<Location, String> {
    let absolute = if raw.starts_with("//") {
        format!("{scheme}:{raw}")
    } else if raw.starts_with('/') {
        format!("{scheme}://{base_host}{raw}")
    } else {
        raw.to_owned()
    };
    let uri: http::Uri = absolute
        .parse()
        .map_err(|e| format!("bad Location {raw:?}: {e}"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| format!("Location {raw:?} has no host"))?;
    Ok(Location {
        scheme: uri.scheme_str().unwrap_or("").to_owned(),
        host: authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port: authority
            .port()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        path: uri.path().to_owned(),
    })
}

fn compare_redirect(
    prepared: &Prepared,
    case: &Case,
    want: &Redirect,
    response: &ClientResponse,
    errors: &mut Vec<String>,
) {
    let Some(raw) = response.header("location") else {
        errors.push("redirect: no Location header".to_owned());
        return;
    };
    let got = match parse_location(&raw, prepared.scheme, &prepared.logical_host) {
        Ok(l) => l,
        Err(e) => {
            errors.push(e);
            return;
        }
    };
    let mut check = |what: &str, want: &str, got: &str| {
        if want != got {
            errors.push(format!(
                "redirect {what}: expected {want:?}, got {got:?} (Location: {raw})"
            ));
        }
    };
    if let Some(host) = &want.host {
        check("host", host, &got.host);
    }
    match &want.port {
        Some(port) => check("port", port, &got.port),
        // Unspecified port: the scheme's well-known port may appear, nothing else may.
        None => {
            let allowed = match got.scheme.to_ascii_lowercase().as_str() {
                "http" => Some("80"),
                "https" => Some("443"),
                _ => None,
            };
            if let Some(allowed) = allowed {
                if !got.port.is_empty() && got.port != allowed {
                    check("port", &format!("{allowed} or none"), &got.port);
                }
            }
        }
    }
    check(
        "scheme",
        want.scheme.as_deref().unwrap_or(prepared.scheme),
        &got.scheme,
    );
    let request_path = case.request.path.split('?').next().unwrap_or("");
    check(
        "path",
        want.path.as_deref().unwrap_or(request_path),
        &got.path,
    );
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 300 | 301 | 302 | 303 | 304 | 305 | 307 | 308)
}

fn snippet(text: &str) -> String {
    let flat: String = text.chars().take(300).collect();
    format!("{:?}", flat)
}

/// `conformance/utils/weight`: backend name = pod name minus its last two `-` components.
fn backend_of(pod: &str) -> String {
    let parts: Vec<&str> = pod.split('-').collect();
    if parts.len() < 3 {
        return pod.to_owned();
    }
    parts[..parts.len() - 2].join("-")
}

/// Send `totalRequests` requests (`concurrentRequests` at a time) and compare the share each
/// backend received with `expectedWeights` (± tolerance; weight 0 ⇒ no traffic at all).
///
/// Like `conformance/utils/weight` (`MaxTestRetries`), a sample whose only problem is a share
/// outside the tolerance is drawn again, up to `maxRetries` samples: with 500 requests a 70/30
/// split misses ±0.05 about 1.5% of the time by chance. Failed requests, unexpected backends and
/// traffic to weight-0 backends fail at once, and a consistent skew still fails every sample.
pub async fn check_distribution(prepared: &Prepared, dist: &Distribution) -> Vec<String> {
    let attempts = dist.max_retries.max(1);
    let mut last = Vec::new();
    for attempt in 1..=attempts {
        let (counts, errors) = sample_distribution(prepared, dist).await;
        let (hard, deviations) = evaluate(dist, &counts, &errors);
        if hard.is_empty() && deviations.is_empty() {
            if attempt > 1 {
                eprintln!("weighted distribution passed on sample {attempt} of {attempts}");
            }
            return Vec::new();
        }
        last = hard.iter().chain(&deviations).cloned().collect();
        last.push(format!(
            "observed counts (sample {attempt} of {attempts}): {counts:?}"
        ));
        if !hard.is_empty() {
            break;
        }
    }
    last
}

async fn sample_distribution(
    prepared: &Prepared,
    dist: &Distribution,
) -> (BTreeMap<String, usize>, Vec<String>) {
    let sent = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..dist.concurrent_requests.max(1) {
        let sent = Arc::clone(&sent);
        let request = prepared.request.clone();
        let (connect, total) = (prepared.connect, dist.total_requests);
        workers.spawn(async move {
            let mut seen = Vec::new();
            while sent.fetch_add(1, Ordering::SeqCst) < total {
                // Entropy like http.AddEntropy (random header only; no random sleeps).
                let jitter = sluice_testkit::random_below(10_000).to_string();
                let result = match request
                    .clone()
                    .header("X-Jitter", jitter)
                    .send(connect)
                    .await
                {
                    Ok(r) if r.status == 200 => r
                        .json::<EchoedRequest>()
                        .map(|e| e.pod)
                        .map_err(|e| format!("not an echo body: {e}")),
                    Ok(r) => Err(format!("status {}", r.status)),
                    Err(e) => Err(e.to_string()),
                };
                seen.push(result);
            }
            seen
        });
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors = Vec::new();
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(results) => {
                for result in results {
                    match result {
                        Ok(pod) => *counts.entry(backend_of(&pod)).or_default() += 1,
                        Err(e) => errors.push(e),
                    }
                }
            }
            Err(e) => errors.push(format!("worker failed: {e}")),
        }
    }
    (counts, errors)
}

/// Split problems into hard failures (never retried) and statistical deviations.
fn evaluate(
    dist: &Distribution,
    counts: &BTreeMap<String, usize>,
    errors: &[String],
) -> (Vec<String>, Vec<String>) {
    let mut hard = Vec::new();
    if let Some(first) = errors.first() {
        hard.push(format!(
            "{} of {} requests failed, e.g. {first}",
            errors.len(),
            dist.total_requests
        ));
    }
    for backend in counts.keys() {
        match dist.expected_weights.get(backend) {
            None => hard.push(format!("unexpected backend {backend} received traffic")),
            Some(w) if *w == 0.0 => {
                hard.push(format!("weight-0 backend {backend} received traffic"))
            }
            Some(_) => {}
        }
    }
    let mut deviations = Vec::new();
    for (backend, want) in &dist.expected_weights {
        let got = counts.get(backend).copied().unwrap_or(0) as f64 / dist.total_requests as f64;
        if *want > 0.0 && got == 0.0 {
            hard.push(format!(
                "backend {backend} (weight {want}) received no traffic"
            ));
        } else if (got - want).abs() > dist.tolerance {
            deviations.push(format!(
                "weight {backend}: expected {want} ± {}, got {got:.3}",
                dist.tolerance
            ));
        }
    }
    (hard, deviations)
}

#[test]
fn locations_parse_like_go_url() {
    let l = parse_location("https://example.org:8443/a?b", "http", "127.0.0.1").expect("absolute");
    assert_eq!(
        (
            l.scheme.as_str(),
            l.host.as_str(),
            l.port.as_str(),
            l.path.as_str()
        ),
        ("https", "example.org", "8443", "/a")
    );
    let l = parse_location("/relative", "http", "127.0.0.1:8080").expect("relative");
    assert_eq!(
        (l.host.as_str(), l.port.as_str(), l.path.as_str()),
        ("127.0.0.1", "8080", "/relative")
    );
    let l = parse_location("//other.example/x", "https", "ignored").expect("scheme-relative");
    assert_eq!(
        (l.scheme.as_str(), l.host.as_str()),
        ("https", "other.example")
    );
}

#[test]
fn backend_names_drop_two_pod_suffixes() {
    assert_eq!(
        backend_of("infra-backend-v1-7d9c5b6f4d-x2k9q"),
        "infra-backend-v1"
    );
    assert_eq!(backend_of("short"), "short");
}
