//! Command-line interface.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sluice_proxy::access_log::Destination;

#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "Sluice: an AI gateway — a Gateway API–conformant proxy extended for inference traffic"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format: `human` for terminals, `json` for machines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info`, `debug`, `sluice_proxy=debug` (RUST_LOG overrides).
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve(Box<ServeArgs>),
    /// Load and compile a configuration without serving; print every error and warning.
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A YAML file or a directory of *.yaml/*.yml files (multi-document). Without it, the
    /// built-in default configuration is served.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Address of the admin server (/healthz, /readyz, /metrics, /config, /config/status).
    #[arg(long, default_value = "127.0.0.1:15000")]
    pub admin_addr: SocketAddr,
    /// Address listeners bind when their Gateway has no spec.addresses.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// Added to every listener port when binding (e.g. 10000 serves a port-80 listener on 10080,
    /// unprivileged); redirects and matching keep the configured port.
    #[arg(long, default_value_t = 0)]
    pub port_offset: u16,
    /// Access log destination: `stdout`, `off`, or a file path (appended).
    #[arg(long, default_value = "stdout")]
    pub access_log: Destination,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// Most downstream connections open at once; more are closed on accept.
    #[arg(long, default_value_t = 16_384)]
    pub max_connections: usize,
    /// Largest request head (request line and headers) accepted; larger gets 431.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_header_bytes: usize,
    /// Idle time after which a downstream connection is closed.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// DNS server (ip:port) for FQDN backends, instead of /etc/resolv.conf.
    #[arg(long)]
    pub dns_server: Option<SocketAddr>,
    /// Worker threads (default: the CPUs this process may run on).
    #[arg(long)]
    pub workers: Option<usize>,
    /// File holding the admin token that `/keys` on the admin server requires (Bearer). Without
    /// it (or SLUICE_ADMIN_TOKEN), runtime key management is off.
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// Redis URL of the shared state store (managed API keys, and the limits and budgets of
    /// TokenRateLimitPolicies with `store: Redis`), e.g. redis://10.0.0.5:6379/0.
    /// Replicas given the same URL and prefix share their keys. Without it, a local file is used.
    #[arg(long, env = "SLUICE_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Namespace of this gateway's keys and limits in Redis (hash-tagged, so Redis Cluster works).
    #[arg(long, default_value = "sluice")]
    pub redis_prefix: String,
    /// Directory of the local state store (when no Redis URL is given). Default:
    /// $XDG_STATE_HOME/sluice or ~/.local/state/sluice.
    #[arg(long, env = "SLUICE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// How often each replica checks the state store for key changes (revocations take effect
    /// within this).
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    pub key_poll_interval: Duration,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A YAML file or a directory of *.yaml/*.yml files.
    #[arg(long, short = 'c')]
    pub config: PathBuf,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    sluice_config::duration::parse_duration(s)
}
