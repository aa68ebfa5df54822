//! `sluice`: the gateway binary. Wiring only; the work happens in sluice-config (objects → IR)
//! and sluice-proxy (data plane).

mod admin;
mod cli;
mod logging;
mod reload;

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use clap::Parser;
use sluice_config::load::{load_path, BUILTIN_NAME};
use sluice_config::{compile, CompileOptions};
use sluice_proxy::access_log::AccessLog;
use sluice_proxy::metrics::Metrics;
use sluice_proxy::server::{Server, ServerSettings};
use sluice_proxy::upstream::PoolSettings;
use sluice_proxy::Proxy;
use tokio::signal::unix::{signal, SignalKind};

use cli::{Cli, Command, ServeArgs, ValidateArgs};
use reload::{Reloader, Source};
use sluice_state::keys::KeyStore;

/// mimalloc: the request path allocates small, short-lived objects across tasks, where it is
/// measurably faster than glibc malloc (+25% requests/s, see docs/performance.md). Built with
/// `no_thp`: transparent huge pages would add ~7 MB of RSS to an idle gateway.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format, &cli.log_level);
    match cli.command {
        Command::Validate(args) => validate(&args),
        Command::Serve(args) => {
            let args = *args;
            // One usable CPU (a pinned or CPU-limited process): a single-threaded runtime avoids
            // the work-stealing scheduler's cross-thread bookkeeping, which buys nothing there.
            let workers = args.workers.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            });
            let mut rt = if workers <= 1 {
                tokio::runtime::Builder::new_current_thread()
            } else {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(workers);
                b
            };
            rt.enable_all();
            match rt.build() {
                Ok(rt) => rt.block_on(serve(args)),
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn validate(args: &ValidateArgs) -> ExitCode {
    let (set, diags) = load_path(&args.config);
    let result = compile(&set, diags, &CompileOptions::default());
    let (errors, warnings) = match &result {
        Ok(s) => (Vec::new(), s.warnings.clone()),
        Err(r) => (r.diagnostics.errors.clone(), r.diagnostics.warnings.clone()),
    };
    for w in &warnings {
        println!("warning: {w}");
    }
    for e in &errors {
        println!("error: {e}");
    }
    if errors.is_empty() {
        println!(
            "{}: valid ({} warning(s))",
            args.config.display(),
            warnings.len()
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "{}: {} error(s), {} warning(s)",
            args.config.display(),
            errors.len(),
            warnings.len()
        );
        ExitCode::FAILURE
    }
}

/// Key management when an admin token is configured: the state store (Redis, else a file) and
/// the watcher that keeps every policy's managed keys current.
async fn key_admin(
    args: &ServeArgs,
    proxy: &Arc<Proxy>,
) -> Result<Option<admin::KeyAdmin>, String> {
    let token = match (&args.admin_token_file, std::env::var("SLUICE_ADMIN_TOKEN")) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the admin token file {}: {e}", path.display()))?
            .trim()
            .to_string(),
        (None, Ok(t)) => t.trim().to_string(),
        (None, Err(_)) => return Ok(None),
    };
    if token.len() < 16 {
        return Err("the admin token must be at least 16 characters".into());
    }
    let store = match &args.redis_url {
        Some(url) => KeyStore::connect_redis(url, &args.redis_prefix).await,
        None => {
            let dir = args.state_dir.clone().or_else(default_state_dir).ok_or(
                "no state directory: set --state-dir (or SLUICE_STATE_DIR, XDG_STATE_HOME, HOME)",
            )?;
            KeyStore::open_file(dir.join("api-keys.json")).await
        }
    }
    .map_err(|e| format!("cannot open the key store: {e}"))?;
    let store = Arc::new(store);
    tracing::info!(store = %store.describe(), "API key management on");
    admin::KeyAdmin::start(&token, store, proxy.clone(), args.key_poll_interval)
        .await
        .map(Some)
        .map_err(|e| format!("cannot load the managed keys: {e}"))
}

fn default_state_dir() -> Option<std::path::PathBuf> {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Some(std::path::PathBuf::from(x).join("sluice"));
    }
    std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/state/sluice"))
}

fn accepts_managed_keys(proxy: &Proxy) -> bool {
    let rt = proxy.runtime();
    rt.snapshot
        .access_policies()
        .iter()
        .any(|p| p.api_keys.as_ref().is_some_and(|k| k.managed))
}

async fn serve(args: ServeArgs) -> ExitCode {
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: ServeArgs) -> Result<(), String> {
    let source = match &args.config {
        Some(p) => Source::Path(p.clone()),
        None => Source::Builtin,
    };
    let options = CompileOptions {
        default_bind: args.bind_address,
    };
    let snapshot = source.load(&options).map_err(|r| {
        let mut text = format!(
            "configuration {} is invalid:",
            args.config
                .as_ref()
                .map_or(BUILTIN_NAME.to_string(), |p| p.display().to_string())
        );
        for e in &r.diagnostics.errors {
            text.push_str(&format!("\n  {e}"));
        }
        text
    })?;
    for w in &snapshot.warnings {
        tracing::warn!(warning = %w, "configuration warning");
    }
    let metrics = Metrics::new();
    let access_log = AccessLog::start(args.access_log.clone(), metrics.clone())
        .map_err(|e| format!("cannot open the access log: {e}"))?;
    let admin_listener = admin::Admin::bind(args.admin_addr)
        .await
        .map_err(|e| format!("cannot listen on admin address {}: {e}", args.admin_addr))?;
    let settings = ServerSettings {
        port_offset: args.port_offset,
        max_connections: args.max_connections,
        max_header_bytes: args.max_header_bytes,
        idle_timeout: args.idle_timeout,
        ..ServerSettings::default()
    };
    let prepared_snapshot = snapshot;
    let pool = PoolSettings {
        dns_server: args.dns_server,
        ..PoolSettings::default()
    };
    let proxy = Proxy::new_empty(metrics.clone(), access_log, pool)
        .map_err(|e| format!("cannot start the proxy: {e}"))?;
    if let Some(url) = &args.redis_url {
        // Connected in the background: a Redis that is down at start is a failure mode to
        // follow, not a reason not to start.
        proxy
            .limits
            .stores
            .connect_shared(url.clone(), args.redis_prefix.clone());
    }
    proxy.check(&prepared_snapshot)?;
    let server = Server::new(proxy.clone(), settings);
    let prepared = server
        .prepare(&prepared_snapshot)
        .map_err(|e| e.to_string())?;
    let reloader = Reloader::new(
        source,
        options,
        proxy.clone(),
        server.clone(),
        &prepared_snapshot,
    );
    proxy.install(prepared_snapshot);
    server.commit(prepared);
    metrics
        .config_reloads
        .get_or_create(&sluice_proxy::metrics::ResultLabels { result: "ok" })
        .inc();

    let keys = key_admin(&args, &proxy).await?;
    if keys.is_none() && accepts_managed_keys(&proxy) {
        tracing::warn!("an AccessPolicy accepts managed keys, but key management is off (no --admin-token-file / SLUICE_ADMIN_TOKEN): no managed key can exist");
    }
    let admin = Arc::new(admin::Admin {
        proxy: proxy.clone(),
        reloader: reloader.clone(),
        ready: Default::default(),
        keys,
    });
    tokio::spawn(admin.clone().run(admin_listener));
    let _watcher = reloader
        .watch()
        .map_err(|e| format!("cannot watch the configuration: {e}"))?;
    // Install the signal handlers before reporting ready: until then SIGHUP/SIGTERM/SIGINT
    // keep their default action (terminate the process), so a reload or graceful shutdown
    // requested right after /readyz turned 200 would kill the gateway instead.
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    admin.ready.store(true, Ordering::Release);
    tracing::info!(admin = %args.admin_addr, "sluice is ready");

    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading configuration");
                reloader.reload().await;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    admin.ready.store(false, Ordering::Release);
    tracing::info!(deadline = ?args.shutdown_timeout, "shutting down: no new connections, finishing in-flight requests");
    let left = server.shutdown(args.shutdown_timeout).await;
    if left > 0 {
        tracing::warn!(
            connections = left,
            "shutdown deadline reached; closing remaining connections"
        );
    } else {
        tracing::info!("all connections finished");
    }
    Ok(())
}
