//! Shared by the error tests: compile a configuration and return what `sluice validate` prints.

use sluice_config::load::load_str;
use sluice_config::{compile, CompileOptions};

/// Compiles `base` and `text` as one file named `file`; returns (errors, warnings) as printed.
pub fn diagnose_in(file: &str, base: &str, text: &str) -> (Vec<String>, Vec<String>) {
    let full = format!("{base}\n---\n{text}");
    let (set, diags) = load_str(file, &full);
    let show = |list: &[sluice_config::ConfigError]| list.iter().map(ToString::to_string).collect();
    match compile(&set, diags, &CompileOptions::default()) {
        Ok(s) => (Vec::new(), show(&s.warnings)),
        Err(r) => (show(&r.diagnostics.errors), show(&r.diagnostics.warnings)),
    }
}
