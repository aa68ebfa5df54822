//! The command line of the real binary: `sluice validate`, `sluice serve` with a bad
//! configuration, `--version`/`--help`, and `sluice serve` without `--config` (the built-in
//! default Gateway on 127.0.0.1:8080).

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_testkit::gateway::{free_port, validate};
use sluice_testkit::{ClientRequest, GatewayProcess, TempDir};
use support::*;

fn run(args: &[&str]) -> Output {
    Command::new(sluice_bin())
        .args(args)
        .output()
        .expect("run sluice")
}

fn good_config(port: u16) -> Vec<Value> {
    let mut docs = vec![
        gateway_class(),
        gateway(&[("http", port)]),
        route("good", vec![rule("/", vec![backend("echo")])]),
    ];
    docs.extend(service_at(
        "echo",
        &[SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9)],
    ));
    docs
}

/// Errors the bad configuration below must report: (file name, object, field).
const EXPECTED_ERRORS: &[(&str, &str, &str)] = &[
    (
        "10-routes.yaml",
        "HTTPRoute default/bad-timeout",
        "spec.rules[0].timeouts.request",
    ),
    (
        "10-routes.yaml",
        "HTTPRoute default/bad-path",
        "spec.rules[0].matches[0].path.value",
    ),
    (
        "20-more.yaml",
        "HTTPRoute default/bad-header",
        "spec.rules[0].filters[0].responseHeaderModifier.set[0].name",
    ),
    (
        "20-more.yaml",
        "HTTPRoute default/bad-retry",
        "spec.rules[0].retry.codes[0]",
    ),
];

/// A directory with errors in two files, several objects.
fn write_bad_config(dir: &TempDir) -> std::path::PathBuf {
    let config = dir.subdir("bad").expect("config dir");
    let mut base = vec![gateway_class(), gateway(&[("http", 18080)])];
    base.extend(service_at(
        "echo",
        &[SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9)],
    ));
    std::fs::write(config.join("00-base.yaml"), yaml(&base)).expect("write");

    let mut bad_timeout = rule("/", vec![backend("echo")]);
    bad_timeout["timeouts"] = json!({"request": "ten seconds"});
    let mut bad_path = rule("/", vec![backend("echo")]);
    bad_path["matches"][0]["path"]["value"] = json!("relative/path");
    std::fs::write(
        config.join("10-routes.yaml"),
        yaml(&[
            route("bad-timeout", vec![bad_timeout]),
            route("bad-path", vec![bad_path]),
        ]),
    )
    .expect("write");

    let mut bad_header = rule("/h", vec![backend("echo")]);
    bad_header["filters"] = json!([set_response_header("not a header", "x")]);
    let mut bad_retry = rule("/r", vec![backend("echo")]);
    bad_retry["retry"] = json!({"codes": [200]});
    std::fs::write(
        config.join("20-more.yaml"),
        yaml(&[
            route("bad-header", vec![bad_header]),
            route("bad-retry", vec![bad_retry]),
        ]),
    )
    .expect("write");
    config
}

/// Every expected error appears on one line as `<dir>/<file>: <Kind ns/name>: <field>: ...`.
fn assert_reports_every_error(output: &str, config: &Path) {
    for (file, object, field) in EXPECTED_ERRORS {
        let needle = format!("{}: {object}: {field}: ", config.join(file).display());
        assert!(
            output.lines().any(|l| l.contains(&needle)),
            "missing error {needle:?} in:\n{output}"
        );
    }
}

#[tokio::test]
async fn validate_accepts_a_good_config() {
    let dir = TempDir::new("cli-validate-good").expect("temp dir");
    let config = dir
        .write("good.yaml", yaml(&good_config(18080)))
        .expect("write");
    let out = validate(sluice_bin(), &config).await.expect("validate");
    assert!(out.success, "{out:?}");
    assert_eq!(out.code, Some(0));
    assert!(out.stdout.contains("valid"), "{out:?}");
    assert!(!out.stdout.contains("error"), "{out:?}");
}

#[tokio::test]
async fn validate_reports_every_error_with_file_object_and_field() {
    let dir = TempDir::new("cli-validate-bad").expect("temp dir");
    let config = write_bad_config(&dir);
    let out = validate(sluice_bin(), &config).await.expect("validate");
    assert!(!out.success, "{out:?}");
    assert_ne!(out.code, Some(0));
    let text = format!("{}{}", out.stdout, out.stderr);
    assert_reports_every_error(&text, &config);
    assert!(
        text.contains(&format!("{} error(s)", EXPECTED_ERRORS.len())),
        "error count:\n{text}"
    );
}

#[tokio::test]
async fn validate_reports_unreadable_and_malformed_files() {
    let dir = TempDir::new("cli-validate-io").expect("temp dir");
    let missing = dir.path().join("nope.yaml");
    let out = validate(sluice_bin(), &missing).await.expect("validate");
    assert!(!out.success);
    assert!(
        out.stdout.contains(&missing.display().to_string()),
        "names the path: {out:?}"
    );

    let broken = dir
        .write("broken.yaml", "kind: [unclosed\n")
        .expect("write");
    let out = validate(sluice_bin(), &broken).await.expect("validate");
    assert!(!out.success);
    assert!(
        out.stdout.contains(&format!("{}: ", broken.display())),
        "names the file: {out:?}"
    );
}

#[tokio::test]
async fn serve_with_an_invalid_config_exits_nonzero_with_the_errors() {
    let dir = TempDir::new("cli-serve-bad").expect("temp dir");
    let config = write_bad_config(&dir);
    let ip = unique_loopback_ip();
    let mut gw = GatewayProcess::spawn(
        sluice_testkit::GatewayOptions::new(sluice_bin(), &config)
            .bind_address(IpAddr::V4(ip))
            .admin_ip(IpAddr::V4(ip))
            .access_log("off"),
    )
    .expect("spawn");
    let status = gw
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exits on its own");
    assert!(!status.success(), "{status}");
    let stderr = std::fs::read_to_string(gw.stderr_path()).expect("stderr");
    assert_reports_every_error(&stderr, &config);
    // It never served: nothing listens on the admin port.
    assert!(gw.admin_get("/readyz").await.is_err());
}

#[test]
fn version_and_help() {
    let version = run(&["--version"]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("sluice {}", env!("CARGO_PKG_VERSION"))
    );

    let help = run(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for word in ["serve", "validate", "Usage"] {
        assert!(text.contains(word), "--help mentions {word}:\n{text}");
    }

    let serve_help = run(&["serve", "--help"]);
    assert!(serve_help.status.success());
    let text = String::from_utf8_lossy(&serve_help.stdout);
    for flag in [
        "--config",
        "--admin-addr",
        "--bind-address",
        "--port-offset",
        "--access-log",
        "--shutdown-timeout",
    ] {
        assert!(
            text.contains(flag),
            "serve --help documents {flag}:\n{text}"
        );
    }

    let wrong = run(&["serve", "--no-such-flag"]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("--no-such-flag"));
}

/// Kills the child on drop so a failing assertion never leaks a gateway.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // Already gone is fine.
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test]
async fn default_config_serves_on_8080_or_validates() {
    let builtin = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/default.yaml");
    let out = validate(sluice_bin(), &builtin).await.expect("validate");
    assert!(out.success, "the built-in configuration is valid: {out:?}");

    let default_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
    // Check the port first; if anything holds it, the validation above is the whole test.
    match std::net::TcpListener::bind(default_addr) {
        Ok(probe) => drop(probe),
        Err(e) => {
            eprintln!("skipping `sluice serve` without --config: {default_addr} is taken ({e})");
            return;
        }
    }
    let admin = SocketAddr::new(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        free_port(IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("free port"),
    );
    let logs = TempDir::new("cli-default").expect("temp dir");
    let mut child = KillOnDrop(
        Command::new(sluice_bin())
            .args(["serve", "--admin-addr", &admin.to_string()])
            .args(["--access-log", "off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(logs.path().join("stderr.log")).expect("log file"))
            .spawn()
            .expect("spawn sluice serve"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            let log = std::fs::read_to_string(logs.path().join("stderr.log")).unwrap_or_default();
            if log.contains("8080") && log.contains("in use") {
                eprintln!("skipping: port 8080 was taken between the check and the bind");
                return;
            }
            panic!("sluice serve exited early ({status}):\n{log}");
        }
        let ready = ClientRequest::get("/readyz")
            .timeout(Duration::from_secs(1))
            .send(admin)
            .await;
        if ready.is_ok_and(|r| r.status == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "built-in configuration not ready"
        );
        tokio::time::sleep(POLL).await;
    }
    // The default answers the OpenAI API offline with the mock provider, for any model...
    let response = ClientRequest::new(http::Method::POST, "/v1/chat/completions")
        .body(r#"{"model":"any-model","messages":[{"role":"user","content":"Hello there"}]}"#)
        .send(default_addr)
        .await
        .expect("request to 127.0.0.1:8080");
    assert_eq!(response.status, 200, "{}", response.text());
    let answer: serde_json::Value = serde_json::from_str(&response.text()).expect("JSON");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "This is a mock response from Sluice. You said: Hello there"
    );
    assert_eq!(answer["model"], "any-model");
    assert_eq!(answer["usage"]["completion_tokens"], 11);
    // ...and anything else gets a clear 404 in the OpenAI error shape.
    let response = ClientRequest::get("/anything")
        .send(default_addr)
        .await
        .expect("request to 127.0.0.1:8080");
    assert_eq!(response.status, 404);
    assert!(
        response.text().contains("unknown_url"),
        "{}",
        response.text()
    );

    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our un-reaped child.
    let pid = libc::pid_t::try_from(child.0.id()).expect("pid");
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(status.code(), Some(0));
}
