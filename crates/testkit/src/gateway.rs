//! Process harness for the `sluice` binary.
//!
//! End-to-end tests run the real binary (`env!("CARGO_BIN_EXE_sluice")`) so that CLI parsing,
//! config loading, listener binding and reload are covered exactly as deployed. The harness
//! synchronises only on observable state — `/readyz` and `/config/status` on the admin server —
//! never on fixed sleeps, and keeps stdout/stderr in files whose tails go into every error.
//!
//! Binary contract assumed here:
//! `sluice serve --config <path> --admin-addr <ip:port> --bind-address <ip> --port-offset <N>
//! --log-format json --access-log <path|stdout|off>`; admin `GET /readyz` is 200 once config is
//! loaded and listeners are bound; `GET /config/status` is JSON `{generation, ok, errors, ..}`;
//! `GET /metrics` is Prometheus text; SIGHUP reloads; `sluice validate --config <path>` exits
//! non-zero on errors.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::client::{ClientRequest, ClientResponse};
use crate::tempdir::{tail, TempDir};
use crate::BoxError;

/// Interval between polls of admin endpoints / process state.
const POLL: Duration = Duration::from_millis(25);

/// How to start the gateway.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    pub binary: PathBuf,
    /// Config file or directory (`--config`).
    pub config: PathBuf,
    /// `--bind-address` for all Gateway listeners.
    pub bind_address: IpAddr,
    /// `--port-offset`: listener port P is bound on P + offset.
    pub port_offset: u16,
    /// `--admin-addr`; `None` picks a free port on `admin_ip`.
    pub admin_addr: Option<SocketAddr>,
    /// IP for an automatically chosen admin port.
    pub admin_ip: IpAddr,
    /// `--access-log`; `None` writes `access.log` next to the captured stdout/stderr.
    pub access_log: Option<String>,
    pub log_format: String,
    /// Appended after the standard flags.
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Deadline for `/readyz` to turn 200 in [`GatewayProcess::start`].
    pub ready_timeout: Duration,
    /// Where stdout/stderr/access logs go. `None` creates a temp dir owned by the process
    /// handle (kept if the test panics or startup fails); a given directory is the caller's.
    pub log_dir: Option<PathBuf>,
}

impl GatewayOptions {
    pub fn new(binary: impl Into<PathBuf>, config: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            config: config.into(),
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_offset: 0,
            admin_addr: None,
            admin_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            access_log: None,
            log_format: "json".to_owned(),
            extra_args: Vec::new(),
            env: Vec::new(),
            ready_timeout: Duration::from_secs(10),
            log_dir: None,
        }
    }

    pub fn bind_address(mut self, ip: IpAddr) -> Self {
        self.bind_address = ip;
        self
    }

    pub fn port_offset(mut self, offset: u16) -> Self {
        self.port_offset = offset;
        self
    }

    pub fn admin_addr(mut self, addr: SocketAddr) -> Self {
        self.admin_addr = Some(addr);
        self
    }

    pub fn admin_ip(mut self, ip: IpAddr) -> Self {
        self.admin_ip = ip;
        self
    }

    pub fn access_log(mut self, target: impl Into<String>) -> Self {
        self.access_log = Some(target.into());
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }
}

/// What `/config/status` reports about the last (re)load.
#[derive(Clone, Debug, Deserialize)]
pub struct ConfigStatus {
    pub generation: u64,
    pub ok: bool,
    #[serde(default)]
    pub errors: Vec<String>,
    /// Any further fields the binary reports (warnings, timestamps, ...).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A running `sluice serve`. Killed (SIGKILL) on drop; an owned log directory is kept when the
/// test panics (see [`TempDir`]).
pub struct GatewayProcess {
    child: Child,
    admin: SocketAddr,
    bind: IpAddr,
    offset: u16,
    stdout: PathBuf,
    stderr: PathBuf,
    access_log: Option<PathBuf>,
    log_dir: PathBuf,
    // Declared last so it is dropped after the child is killed.
    owned_dir: Option<TempDir>,
}

impl GatewayProcess {
    /// Spawn and wait until `/readyz` answers 200 (or fail with the log tails).
    pub async fn start(options: GatewayOptions) -> Result<Self, BoxError> {
        let timeout = options.ready_timeout;
        let mut gateway = Self::spawn(options)?;
        if let Err(e) = gateway.wait_ready(timeout).await {
            // The error names the log files: they must outlive this process handle.
            if let Some(dir) = &mut gateway.owned_dir {
                dir.keep();
            }
            return Err(e);
        }
        Ok(gateway)
    }

    /// Spawn without waiting for readiness (for tests of startup failures).
    pub fn spawn(options: GatewayOptions) -> Result<Self, BoxError> {
        let (log_dir, owned_dir) = match &options.log_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                (dir.clone(), None)
            }
            None => {
                let dir = TempDir::new("gateway")?;
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        let admin = match options.admin_addr {
            Some(addr) => addr,
            None => SocketAddr::new(options.admin_ip, free_port(options.admin_ip)?),
        };
        let stdout = log_dir.join("stdout.log");
        let stderr = log_dir.join("stderr.log");
        let (access_log_arg, access_log) = match options.access_log {
            Some(target) => {
                let path = (target != "off" && target != "stdout").then(|| PathBuf::from(&target));
                (target, path)
            }
            None => {
                let path = log_dir.join("access.log");
                (path.display().to_string(), Some(path))
            }
        };
        let mut command = Command::new(&options.binary);
        command
            .arg("serve")
            .arg("--config")
            .arg(&options.config)
            .arg("--admin-addr")
            .arg(admin.to_string())
            .arg("--bind-address")
            .arg(options.bind_address.to_string())
            .arg("--port-offset")
            .arg(options.port_offset.to_string())
            .arg("--log-format")
            .arg(&options.log_format)
            .arg("--access-log")
            .arg(&access_log_arg)
            .args(&options.extra_args)
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(File::create(&stdout)?)
            .stderr(File::create(&stderr)?);
        let child = command
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", options.binary.display()))?;
        Ok(Self {
            child,
            admin,
            bind: options.bind_address,
            offset: options.port_offset,
            stdout,
            stderr,
            access_log,
            log_dir,
            owned_dir,
        })
    }

    /// Poll `/readyz` until it answers 200; fails early if the process exits.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), BoxError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(self.failure(&format!("gateway exited before ready: {status}")));
            }
            let last = match self.admin_get("/readyz").await {
                Ok(r) if r.status == 200 => return Ok(()),
                Ok(r) => format!("/readyz {}: {}", r.status, r.text()),
                Err(e) => format!("/readyz: {e}"),
            };
            if Instant::now() >= deadline {
                return Err(self.failure(&format!("not ready after {timeout:?} ({last})")));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// Where a listener declared with `logical_port` is actually bound.
    pub fn listener_addr(&self, logical_port: u16) -> SocketAddr {
        SocketAddr::new(self.bind, logical_port.saturating_add(self.offset))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send `signal` (e.g. `libc::SIGHUP`) if the process is still running.
    pub fn signal(&mut self, signal: i32) -> Result<(), BoxError> {
        if self.child.try_wait()?.is_some() {
            return Err("gateway already exited".into());
        }
        let pid = libc::pid_t::try_from(self.child.id())?;
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our un-reaped child.
        let rc = unsafe { libc::kill(pid, signal) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(())
    }

    /// SIGHUP: ask for a config reload.
    pub fn reload(&mut self) -> Result<(), BoxError> {
        self.signal(libc::SIGHUP)
    }

    /// SIGTERM: ask for a graceful shutdown.
    pub fn terminate(&mut self) -> Result<(), BoxError> {
        self.signal(libc::SIGTERM)
    }

    /// Wait for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, BoxError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(self.failure(&format!("still running after {timeout:?}")));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// GET an admin path (e.g. `/metrics`).
    pub async fn admin_get(&self, path: &str) -> Result<ClientResponse, BoxError> {
        ClientRequest::get(path)
            .timeout(Duration::from_secs(2))
            .send(self.admin)
            .await
    }

    pub async fn config_status(&self) -> Result<ConfigStatus, BoxError> {
        let response = self.admin_get("/config/status").await?;
        if response.status != 200 {
            return Err(format!("/config/status {}: {}", response.status, response.text()).into());
        }
        response
            .json()
            .map_err(|e| format!("/config/status body {:?}: {e}", response.text()).into())
    }

    /// Poll `/config/status` until `generation >= generation`.
    pub async fn wait_for_generation(
        &self,
        generation: u64,
        timeout: Duration,
    ) -> Result<ConfigStatus, BoxError> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.config_status().await {
                Ok(status) if status.generation >= generation => return Ok(status),
                Ok(status) => format!("generation {}", status.generation),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(self.failure(&format!(
                    "config generation {generation} not reached after {timeout:?} ({last})"
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Prometheus text from `/metrics`.
    pub async fn metrics(&self) -> Result<String, BoxError> {
        Ok(self.admin_get("/metrics").await?.text())
    }

    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    pub fn stdout_path(&self) -> &Path {
        &self.stdout
    }

    pub fn stderr_path(&self) -> &Path {
        &self.stderr
    }

    /// The access log file, unless it goes to stdout or is off.
    pub fn access_log_path(&self) -> Option<&Path> {
        self.access_log.as_deref()
    }

    /// Keep the log directory even if the test passes.
    pub fn keep_logs(&mut self) {
        if let Some(dir) = &mut self.owned_dir {
            dir.keep();
        }
    }

    /// The last `lines` lines of stdout and stderr, labelled, for failure messages.
    pub fn logs_tail(&self, lines: usize) -> String {
        format!(
            "--- gateway stdout ({}) ---\n{}\n--- gateway stderr ({}) ---\n{}",
            self.stdout.display(),
            tail(&self.stdout, lines),
            self.stderr.display(),
            tail(&self.stderr, lines)
        )
    }

    fn failure(&self, message: &str) -> BoxError {
        format!("{message}\n{}", self.logs_tail(40)).into()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Errors here mean the process is already gone, which is what we want.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs_tail(40));
        }
    }
}

/// Result of `sluice validate`.
#[derive(Clone, Debug)]
pub struct ValidateOutput {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Run `sluice validate --config <config>`.
pub async fn validate(binary: &Path, config: &Path) -> Result<ValidateOutput, BoxError> {
    let mut command = Command::new(binary);
    command.arg("validate").arg("--config").arg(config);
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    Ok(ValidateOutput {
        success: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// A port that was free on `ip` a moment ago (the listener is closed before returning, so
/// another process could in principle grab it; on a per-test loopback IP nobody else does).
pub fn free_port(ip: IpAddr) -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind((ip, 0))?.local_addr()?.port())
}
