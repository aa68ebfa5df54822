//! A stand-in for `sluice serve` implementing only the admin contract the harness relies on
//! (`/readyz`, `/config/status`, `/metrics`, SIGHUP reload, SIGTERM exit), so the harness in
//! `sluice_testkit::gateway` can be tested without the real gateway.
//!
//! Behaviour knobs (environment): `FAKE_EXIT_CODE=<n>` exits immediately with that code after
//! printing to stderr; `FAKE_NOT_READY_REQUESTS=<n>` answers 503 to the first n `/readyz` polls.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::{Response, StatusCode};
use sluice_testkit::upstream::{full, Upstream};
use tokio::signal::unix::{signal, SignalKind};

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<(), sluice_testkit::BoxError> {
    let args: Vec<String> = std::env::args().collect();
    if let Ok(code) = std::env::var("FAKE_EXIT_CODE") {
        eprintln!("fake-sluice: asked to fail with {code}");
        std::process::exit(code.parse().unwrap_or(1));
    }
    let admin: SocketAddr = flag(&args, "--admin-addr")
        .ok_or("missing --admin-addr")?
        .parse()?;
    println!("fake-sluice: args {args:?}");
    let not_ready: u64 = std::env::var("FAKE_NOT_READY_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let generation = Arc::new(AtomicU64::new(1));
    let polls = Arc::new(AtomicU64::new(0));
    let handler_generation = Arc::clone(&generation);
    let _server = Upstream::builder()
        .bind(admin)
        .spawn(move |req| {
            let generation = handler_generation.load(Ordering::SeqCst);
            let polls = Arc::clone(&polls);
            async move {
                let (status, body) = match req.uri().path() {
                    "/readyz" if polls.fetch_add(1, Ordering::SeqCst) < not_ready => {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready".to_owned())
                    }
                    "/readyz" => (StatusCode::OK, "ready".to_owned()),
                    "/config/status" => (
                        StatusCode::OK,
                        serde_json::json!({"generation": generation, "ok": true, "errors": []})
                            .to_string(),
                    ),
                    "/metrics" => (StatusCode::OK, "fake_up 1\n".to_owned()),
                    _ => (StatusCode::NOT_FOUND, String::new()),
                };
                let mut response = Response::new(full(body));
                *response.status_mut() = status;
                response
            }
        })
        .await?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let g = generation.fetch_add(1, Ordering::SeqCst) + 1;
                eprintln!("fake-sluice: reloaded, generation {g}");
            }
            _ = term.recv() => {
                eprintln!("fake-sluice: terminating");
                return Ok(());
            }
        }
    }
}
