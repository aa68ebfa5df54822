//! `ttfb-bench`: its upstream and its measuring client against each other, and the client's
//! refusals (a non-200 answer, a stream without `data: [DONE]`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use http::{Response, StatusCode};
use sluice_testkit::upstream::full;
use sluice_testkit::{TempDir, Upstream};

const BIN: &str = env!("CARGO_BIN_EXE_ttfb-bench");

/// Kills the upstream process when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `ttfb-bench upstream` on an ephemeral port; returns it and its address.
fn start_upstream() -> (Killed, String) {
    let mut child = Command::new(BIN)
        .args([
            "upstream",
            "--listen",
            "127.0.0.1:0",
            "--gap-ms",
            "1",
            "--chunks",
            "3",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start ttfb-bench upstream");
    let stdout = child.stdout.take().expect("piped stdout");
    let child = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the upstream's first line");
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (child, addr)
}

fn measure(dir: &TempDir, url: &str, body: &str) -> Output {
    let file = dir.path().join("body.json");
    std::fs::write(&file, body).expect("write the body");
    Command::new(BIN)
        .args(["measure", "--url", url, "--body-file"])
        .arg(&file)
        .args([
            "--requests",
            "5",
            "--warmup",
            "1",
            "--header",
            "x-test: 1",
            "--samples",
        ])
        .arg(dir.path().join("samples.csv"))
        .output()
        .expect("run ttfb-bench measure")
}

#[test]
fn measures_a_stream_from_its_upstream() {
    let dir = TempDir::new("ttfb").expect("temp dir");
    let (_upstream, addr) = start_upstream();
    let url = format!("http://{addr}/v1/chat/completions");
    let out = measure(
        &dir,
        &url,
        r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("ttfb_p50_us="))
        .expect("the machine-readable line");
    let value = |key: &str| -> f64 {
        line.split(' ')
            .find_map(|kv| kv.strip_prefix(key))
            .and_then(|v| v.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {line}"))
    };
    // The first text comes a gap after the role chunk, and the stream ends after the last one.
    assert!(value("ttfb_p50_us") > 0.0);
    assert!(value("first_text_p50_us") > value("ttfb_p50_us"), "{line}");
    assert!(
        value("total_p50_us") >= value("first_text_p50_us"),
        "{line}"
    );
    assert!(line.contains("requests=5 reconnects=0"), "{line}");
    let samples = std::fs::read_to_string(dir.path().join("samples.csv")).expect("samples");
    assert_eq!(samples.lines().count(), 1 + 5, "{samples}");
    assert!(samples.starts_with("ttfb_us,first_text_us,total_us\n"));

    // A non-streaming request gets a chat.completion, which is not a stream.
    let out = measure(&dir, &url, r#"{"model":"m","messages":[]}"#);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("did not end with data: [DONE]") && stderr.contains("application/json"),
        "{stderr}"
    );
}

#[tokio::test]
async fn refuses_errors_and_cut_streams() {
    let server = Upstream::spawn(|req| async move {
        let (status, body) = match req.uri().path() {
            "/error" => (StatusCode::TOO_MANY_REQUESTS, "slow down"),
            _ => (
                StatusCode::OK,
                "data: {\"choices\":[{\"delta\":{\"content\":\"cut\"}}]}\n\n",
            ),
        };
        let mut response = Response::new(full(body));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert("content-type", "text/event-stream".parse().expect("valid"));
        response
    })
    .await
    .expect("upstream");
    let addr = server.addr();
    // The client blocks: off the runtime that serves the upstream.
    let run = |path: &'static str| {
        let url = format!("http://{addr}{path}");
        tokio::task::spawn_blocking(move || {
            let dir = TempDir::new("ttfb").expect("temp dir");
            measure(&dir, &url, "{}")
        })
    };
    let out = run("/error").await.expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("429") && stderr.contains("slow down"),
        "{stderr}"
    );
    let out = run("/cut").await.expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("did not end with data: [DONE]"), "{stderr}");
}
