//! Loading the configuration, and reloading it when files change or on SIGHUP. A new
//! configuration is compiled off the request path, its sockets bound, and only then swapped in;
//! anything that fails leaves the running configuration untouched and is reported.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use notify::{RecursiveMode, Watcher};
use serde::Serialize;
use sluice_config::load::{load_path, load_str, BUILTIN_NAME};
use sluice_config::{compile, CompileOptions, ConfigError, Rejected, Snapshot};
use sluice_proxy::metrics::ResultLabels;
use sluice_proxy::server::Server;
use sluice_proxy::Proxy;
use tokio::sync::mpsc;

pub const BUILTIN_CONFIG: &str = include_str!("default.yaml");
const BUILTIN_OPENAI: &str = include_str!("default-openai.yaml");
const BUILTIN_ANTHROPIC: &str = include_str!("default-anthropic.yaml");

/// The built-in configuration: the mock for every model, plus OpenAI and Anthropic for their
/// model names when their API key is in the environment.
pub fn builtin_config() -> String {
    let mut text = BUILTIN_CONFIG.to_string();
    for (var, extra) in [
        ("OPENAI_API_KEY", BUILTIN_OPENAI),
        ("ANTHROPIC_API_KEY", BUILTIN_ANTHROPIC),
    ] {
        if std::env::var(var).is_ok_and(|v| !v.is_empty()) {
            text.push_str("\n---\n");
            text.push_str(extra);
        }
    }
    text
}

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub enum Source {
    Builtin,
    Path(PathBuf),
}

impl Source {
    pub fn load(&self, options: &CompileOptions) -> Result<Snapshot, Rejected> {
        let (set, diags) = match self {
            Source::Builtin => load_str(BUILTIN_NAME, &builtin_config()),
            Source::Path(p) => load_path(p),
        };
        compile(&set, diags, options)
    }
}

/// The result of the last reload attempt, served at `/config/status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Generation of the configuration in effect (1 = the one loaded at start).
    pub generation: u64,
    /// Reload attempts so far (successful or not), counting the initial load.
    pub attempts: u64,
    /// Whether the last attempt succeeded.
    pub ok: bool,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub time: String,
}

pub struct Reloader {
    source: Source,
    options: CompileOptions,
    proxy: Arc<Proxy>,
    server: Arc<Server>,
    status: Mutex<Status>,
    /// Reloads run one at a time.
    serial: tokio::sync::Mutex<()>,
}

fn messages(list: &[ConfigError]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

impl Reloader {
    pub fn new(
        source: Source,
        options: CompileOptions,
        proxy: Arc<Proxy>,
        server: Arc<Server>,
        initial: &Snapshot,
    ) -> Arc<Self> {
        Arc::new(Reloader {
            source,
            options,
            proxy,
            server,
            status: Mutex::new(Status {
                generation: 1,
                attempts: 1,
                ok: true,
                errors: Vec::new(),
                warnings: messages(&initial.warnings),
                time: sluice_proxy::access_log::format_rfc3339(SystemTime::now()),
            }),
            serial: tokio::sync::Mutex::new(()),
        })
    }

    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn record(&self, ok: bool, errors: Vec<String>, warnings: Vec<String>) {
        let generation = self.proxy.runtime().generation;
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        s.generation = generation;
        s.attempts += 1;
        s.ok = ok;
        s.errors = errors;
        s.warnings = warnings;
        s.time = sluice_proxy::access_log::format_rfc3339(SystemTime::now());
        let result = if ok { "ok" } else { "failed" };
        self.proxy
            .metrics
            .config_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Loads, compiles, binds and swaps. Returns whether the new configuration is in effect.
    pub async fn reload(self: &Arc<Self>) -> bool {
        let _serial = self.serial.lock().await;
        let source = self.source.clone();
        let options = self.options.clone();
        let compiled = tokio::task::spawn_blocking(move || source.load(&options)).await;
        let snapshot = match compiled {
            Ok(Ok(s)) => s,
            Ok(Err(rejected)) => {
                let errors = messages(&rejected.diagnostics.errors);
                for e in &errors {
                    tracing::error!(error = %e, "configuration rejected; keeping the running one");
                }
                self.record(false, errors, messages(&rejected.diagnostics.warnings));
                return false;
            }
            Err(e) => {
                self.record(false, vec![format!("reload task failed: {e}")], Vec::new());
                return false;
            }
        };
        if let Err(e) = self.proxy.check(&snapshot) {
            tracing::error!(error = %e, "configuration rejected; keeping the running one");
            self.record(false, vec![e], messages(&snapshot.warnings));
            return false;
        }
        let prepared = match self.server.prepare(&snapshot) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "configuration rejected; keeping the running one");
                self.record(false, vec![e.to_string()], messages(&snapshot.warnings));
                return false;
            }
        };
        let warnings = messages(&snapshot.warnings);
        for w in &warnings {
            tracing::warn!(warning = %w, "configuration warning");
        }
        let rt = self.proxy.install(snapshot);
        self.server.commit(prepared);
        tracing::info!(generation = rt.generation, "configuration reloaded");
        self.record(true, Vec::new(), warnings);
        true
    }

    /// Watches the config path and reloads when it changes. Bursts of file events (editors
    /// write in several steps) are coalesced into one reload.
    pub fn watch(self: &Arc<Self>) -> notify::Result<Option<notify::RecommendedWatcher>> {
        let Source::Path(path) = &self.source else {
            return Ok(None);
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let is_file = path.is_file();
        let names = watched_names(path);
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if let Ok(event) = res {
                    let relevant = matches!(
                        event.kind,
                        notify::EventKind::Create(_)
                            | notify::EventKind::Modify(_)
                            | notify::EventKind::Remove(_)
                    ) && (!is_file
                        || event.paths.iter().any(|p| is_watched(p, &names)));
                    if relevant {
                        let _ = tx.send(());
                    }
                }
            })?;
        let watched: &Path = if is_file {
            path.parent().unwrap_or(Path::new("."))
        } else {
            path
        };
        watcher.watch(watched, RecursiveMode::NonRecursive)?;
        let this = self.clone();
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                // Quiet period: wait until no event arrived for a short while.
                while let Ok(Some(())) =
                    tokio::time::timeout(Duration::from_millis(150), rx.recv()).await
                {
                }
                this.reload().await;
            }
        });
        Ok(Some(watcher))
    }
}

/// Names of the entries in the config file's directory whose changes can change what the file
/// reads: the file itself and, when it is a relative symlink into a subdirectory, that
/// subdirectory's entry. This is how Kubernetes mounts a ConfigMap (`config.yaml ->
/// ..data/config.yaml`, `..data -> ..<timestamp>`) and updates it: a new `..data` symlink is
/// renamed over the old one, and `config.yaml` itself never changes.
fn watched_names(file: &Path) -> Vec<OsString> {
    let mut names: Vec<OsString> = file.file_name().map(Into::into).into_iter().collect();
    if let Ok(link) = std::fs::read_link(file) {
        let mut parts = link.components();
        if let (Some(Component::Normal(first)), Some(_)) = (parts.next(), parts.next()) {
            names.push(first.to_owned());
        }
    }
    names
}

fn is_watched(path: &Path, names: &[OsString]) -> bool {
    path.file_name()
        .is_some_and(|n| names.iter().any(|w| w == n))
}
