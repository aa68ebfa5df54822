//! Sluice configuration: Kubernetes-shaped objects (Gateway API, core, WG drafts), loading from
//! YAML, validation with precise errors, and compilation into the immutable runtime model (IR)
//! the data plane reads.

pub mod compile;
pub mod duration;
pub mod error;
pub mod ir;
pub mod load;
pub mod objects;

pub use compile::{compile, CompileOptions, CONTROLLER_NAME};
pub use error::{ConfigError, Diagnostics, ObjectId, Rejected};
pub use ir::Snapshot;

/// Loads and compiles a configuration path in one step.
pub fn load_and_compile(
    path: &std::path::Path,
    options: &CompileOptions,
) -> Result<Snapshot, Rejected> {
    let (set, diags) = load::load_path(path);
    compile(&set, diags, options)
}
