//! Reading configuration files: a file or a directory of `*.yaml`/`*.yml`, multi-document.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{ConfigError, Diagnostics};
use crate::objects::{ObjectSet, Source};

/// The configuration embedded in the binary, served by `sluice serve` without `--config`.
pub const BUILTIN_NAME: &str = "<built-in>";

/// The files a config path stands for, sorted so loading is deterministic.
pub fn config_files(path: &Path) -> Result<Vec<PathBuf>, Box<ConfigError>> {
    let meta = std::fs::metadata(path).map_err(|e| {
        ConfigError::new(format!("cannot read config path: {e}"))
            .in_file(path.display().to_string())
    })?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| {
        Box::new(
            ConfigError::new(format!("cannot list directory: {e}"))
                .in_file(path.display().to_string()),
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                )
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Loads every object under `path`, collecting all problems instead of stopping at the first.
pub fn load_path(path: &Path) -> (ObjectSet, Diagnostics) {
    let mut set = ObjectSet::default();
    let mut diags = Diagnostics::default();
    match config_files(path) {
        Ok(files) => {
            if files.is_empty() {
                diags.error(
                    ConfigError::new("no *.yaml or *.yml files")
                        .in_file(path.display().to_string()),
                );
            }
            for file in files {
                let name = file.display().to_string();
                match std::fs::read_to_string(&file) {
                    Ok(text) => add_text(&mut set, &name, &text, &mut diags),
                    Err(e) => {
                        diags.error(ConfigError::new(format!("cannot read: {e}")).in_file(name))
                    }
                }
            }
        }
        Err(e) => diags.error(*e),
    }
    (set, diags)
}

/// Loads objects from YAML text (used for the built-in configuration and in tests).
pub fn load_str(name: &str, text: &str) -> (ObjectSet, Diagnostics) {
    let mut set = ObjectSet::default();
    let mut diags = Diagnostics::default();
    add_text(&mut set, name, text, &mut diags);
    (set, diags)
}

fn add_text(set: &mut ObjectSet, name: &str, text: &str, diags: &mut Diagnostics) {
    // YAML 1.2 core booleans only: `y`, `no`, `on` stay strings (a class named `y` must not
    // become `true`, the "Norway problem").
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    let docs: Vec<serde_json::Value> = match serde_saphyr::from_multiple_with_options(text, options)
    {
        Ok(d) => d,
        Err(e) => {
            diags.error(ConfigError::new(format!("invalid YAML: {e}")).in_file(name));
            return;
        }
    };
    let file: Arc<str> = Arc::from(name);
    for (document, doc) in docs.into_iter().enumerate() {
        if doc.is_null() {
            continue; // empty document, e.g. a trailing `---`
        }
        let source = Source {
            file: file.clone(),
            document,
        };
        set.add_document(doc, source, diags);
    }
}
