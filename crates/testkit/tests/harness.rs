//! The gateway process harness, exercised against `fake-sluice` (admin contract only).

use std::time::Duration;

use sluice_testkit::{GatewayOptions, GatewayProcess, TempDir};

const FAKE: &str = env!("CARGO_BIN_EXE_fake-sluice");

fn options(dir: &TempDir) -> GatewayOptions {
    // Logs inside the test's own temp dir, so expected failures leave nothing behind.
    GatewayOptions::new(FAKE, dir.path())
        .ready_timeout(Duration::from_secs(10))
        .log_dir(dir.path().join("logs"))
}

#[tokio::test]
async fn starts_reloads_and_terminates() {
    let dir = TempDir::new("harness").expect("temp dir");
    let mut gateway = GatewayProcess::start(options(&dir).env("FAKE_NOT_READY_REQUESTS", "3"))
        .await
        .expect("fake gateway becomes ready");

    let status = gateway.config_status().await.expect("status");
    assert_eq!((status.generation, status.ok), (1, true));
    assert!(gateway
        .metrics()
        .await
        .expect("metrics")
        .contains("fake_up 1"));

    gateway.reload().expect("SIGHUP");
    let status = gateway
        .wait_for_generation(2, Duration::from_secs(5))
        .await
        .expect("reload observed");
    assert!(status.generation >= 2);

    gateway.terminate().expect("SIGTERM");
    let exit = gateway
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("exits");
    assert!(exit.success(), "{exit}");
    let stdout = std::fs::read_to_string(gateway.stdout_path()).expect("stdout captured");
    for flag in [
        "--bind-address",
        "--port-offset",
        "--log-format",
        "--access-log",
    ] {
        assert!(stdout.contains(flag), "{flag} passed: {stdout}");
    }
    assert!(gateway.logs_tail(10).contains("terminating"));
}

#[tokio::test]
async fn early_exit_is_reported_with_stderr() {
    let dir = TempDir::new("harness").expect("temp dir");
    let error = GatewayProcess::start(options(&dir).env("FAKE_EXIT_CODE", "3"))
        .await
        .err()
        .expect("start must fail");
    let message = error.to_string();
    assert!(message.contains("exited before ready"), "{message}");
    assert!(message.contains("asked to fail with 3"), "{message}");
}

#[tokio::test]
async fn readiness_deadline_is_enforced() {
    let dir = TempDir::new("harness").expect("temp dir");
    let error = GatewayProcess::start(
        options(&dir)
            .env("FAKE_NOT_READY_REQUESTS", "1000000")
            .ready_timeout(Duration::from_millis(300)),
    )
    .await
    .err()
    .expect("start must time out");
    assert!(error.to_string().contains("not ready after"), "{error}");
}

#[tokio::test]
async fn listener_addresses_apply_the_port_offset() {
    let dir = TempDir::new("harness").expect("temp dir");
    let ip = "127.0.0.3".parse().expect("ip");
    let gateway = GatewayProcess::start(
        options(&dir)
            .bind_address(ip)
            .port_offset(20000)
            .admin_ip(ip),
    )
    .await
    .expect("ready");
    assert_eq!(gateway.listener_addr(80).to_string(), "127.0.0.3:20080");
    assert_eq!(gateway.admin_addr().ip(), ip);
}
