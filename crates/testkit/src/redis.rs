//! A real `redis-server` for tests: its own process, loopback port and directory.
//!
//! Tests of Redis-backed state run against the real server, never a mock, so that scripts,
//! transactions, reconnects and outages behave as in production. The server runs without
//! persistence (`--save '' --appendonly no`), so [`RedisServer::restart`] also simulates a
//! Redis that comes back empty. Readiness is observed (the server answers PING), never assumed
//! after a sleep.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::gateway::free_port;
use crate::tempdir::{tail, TempDir};
use crate::BoxError;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// How long a fresh server may take to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);
/// Another process can take a port between our probe and redis-server's bind; try a new one.
const START_ATTEMPTS: usize = 3;

/// A running `redis-server` on `127.0.0.1`, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    password: Option<String>,
    // Declared last so it is removed after the process is gone.
    dir: TempDir,
}

impl RedisServer {
    /// Start a server without a password.
    pub async fn start() -> Result<Self, BoxError> {
        Self::launch(None).await
    }

    /// Start a server that requires `password` (`--requirepass`); [`RedisServer::url`]
    /// carries it.
    pub async fn start_with_password(password: &str) -> Result<Self, BoxError> {
        Self::launch(Some(password.to_owned())).await
    }

    async fn launch(password: Option<String>) -> Result<Self, BoxError> {
        let dir = TempDir::new("redis")?;
        let mut server = Self {
            child: None,
            port: 0,
            password,
            dir,
        };
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            server.port = free_port(LOOPBACK)?;
            match server.spawn_and_wait().await {
                Ok(()) => return Ok(server),
                Err(e) => {
                    server.kill();
                    // Only a lost port race is worth another try.
                    let stderr = tail(&server.dir.path().join("stderr.log"), 20);
                    let lost_race = [server.log(), stderr]
                        .iter()
                        .any(|text| text.contains("Address already in use"));
                    if !lost_race {
                        return Err(e);
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| "redis-server did not start".into()))
    }

    /// `redis://127.0.0.1:<port>`, with `:<password>@` if the server has one.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Kill the server (SIGKILL, like a crash) and wait until the process is gone. Clients
    /// see their connections reset and new connections refused.
    pub async fn stop(&mut self) -> Result<(), BoxError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // An error here means the process already exited, which is the goal.
        let _ = child.kill();
        tokio::task::spawn_blocking(move || child.wait()).await??;
        Ok(())
    }

    /// Freeze the server (SIGSTOP): it keeps its sockets and the kernel still accepts
    /// connections, but nothing is answered, like a Redis hung on a slow disk or a swap storm.
    pub fn pause(&mut self) -> Result<(), BoxError> {
        self.signal(libc::SIGSTOP)
    }

    /// Undo [`RedisServer::pause`] (SIGCONT).
    pub fn resume(&mut self) -> Result<(), BoxError> {
        self.signal(libc::SIGCONT)
    }

    fn signal(&mut self, signal: i32) -> Result<(), BoxError> {
        if !self.is_running() {
            return Err("redis-server is not running".into());
        }
        let pid = match &self.child {
            Some(child) => libc::pid_t::try_from(child.id())?,
            None => return Err("redis-server is not running".into()),
        };
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our un-reaped child.
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(io::Error::last_os_error().into());
        }
        Ok(())
    }

    /// Stop (if running) and start again on the same port, empty, and wait until it answers.
    pub async fn restart(&mut self) -> Result<(), BoxError> {
        self.stop().await?;
        let result = self.spawn_and_wait().await;
        if result.is_err() {
            self.kill();
        }
        result
    }

    /// The last `lines` lines of the server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path(), lines)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn log(&self) -> String {
        self.log_tail(40)
    }

    async fn spawn_and_wait(&mut self) -> Result<(), BoxError> {
        let stderr = File::create(self.dir.path().join("stderr.log"))?;
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let child = command.spawn().map_err(|e| -> BoxError {
            if e.kind() == io::ErrorKind::NotFound {
                "redis-server not found on PATH: install the Debian package `redis-server` \
                 (apt-get install redis-server)"
                    .into()
            } else {
                format!("spawning redis-server: {e}").into()
            }
        })?;
        self.child = Some(child);
        self.wait_ready().await
    }

    /// Poll until the server answers PING; fail early if it exits.
    async fn wait_ready(&mut self) -> Result<(), BoxError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait()?,
                None => return Err("redis-server is not running".into()),
            };
            if let Some(status) = exited {
                let stderr = tail(&self.dir.path().join("stderr.log"), 20);
                return Err(format!(
                    "redis-server on port {} exited before answering ({status}):\n{stderr}\n{}",
                    self.port,
                    self.log()
                )
                .into());
            }
            let last = match ping(self.port).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "redis-server on port {} not answering after {READY_TIMEOUT:?} ({last}):\n{}",
                    self.port,
                    self.log()
                )
                .into());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Errors mean the process is already gone, which is what we want.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("redis-server log ({}):\n{}", self.port, self.log());
        }
    }
}

/// One PING over a fresh connection. A password-protected server answers `-NOAUTH`, which
/// proves just as well that it is up.
async fn ping(port: u16) -> Result<(), BoxError> {
    let exchange = async {
        let mut stream = TcpStream::connect((LOOPBACK, port)).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 64];
        while !reply.ends_with(b"\r\n") {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
        }
        Ok::<_, io::Error>(reply)
    };
    let reply = tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .map_err(|_| "PING timed out")??;
    if reply.starts_with(b"+PONG") || reply.starts_with(b"-NOAUTH") {
        Ok(())
    } else {
        Err(format!("PING answered {:?}", String::from_utf8_lossy(&reply)).into())
    }
}
