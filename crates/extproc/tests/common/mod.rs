//! Shared helpers for the ext_proc integration tests.
#![allow(dead_code)]

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method};
use sluice_extproc::{Endpoint, ExtProcClient, HeadersMsg};
use sluice_testkit::ExtProcServer;

/// Upper bound for anything that should happen "at once" on loopback: generous so a loaded CI
/// machine does not flake, small enough that a hang fails the test quickly.
pub const PROMPT: Duration = Duration::from_secs(5);

pub fn client_for(server: &ExtProcServer) -> ExtProcClient {
    client_at(&server.uri(), Duration::from_secs(2))
}

pub fn client_at(uri: &str, connect_timeout: Duration) -> ExtProcClient {
    let endpoint = Endpoint {
        uri: uri.parse().expect("uri"),
        authority: None,
        tls: None,
    };
    ExtProcClient::new(endpoint, connect_timeout).expect("client")
}

pub fn request_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("api.example.com"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("x-drop", HeaderValue::from_static("secret"));
    headers.insert("x-keep", HeaderValue::from_static("original"));
    headers.append("x-multi", HeaderValue::from_static("one"));
    headers
}

pub fn headers_msg<'a>(headers: &'a HeaderMap, end_of_stream: bool) -> HeadersMsg<'a> {
    HeadersMsg {
        method: &Method::POST,
        path: "/v1/chat/completions",
        scheme: "https",
        authority: "api.example.com",
        headers,
        end_of_stream,
    }
}

/// Runs a whole test under a deadline, so a regression that makes a call hang fails the test
/// instead of stalling the suite.
pub async fn within<T>(test: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PROMPT * 6, test)
        .await
        .expect("the test hung")
}
