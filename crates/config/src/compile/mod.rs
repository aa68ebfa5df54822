//! The translator: one object set in, one immutable [`Snapshot`] out, or every error found.
//!
//! Steps: index the objects; build listeners per socket from the served Gateways; attach each
//! HTTPRoute to the listeners it may attach to; compile its rules (matches, filters, backends);
//! sort each virtual host's entries by Gateway API precedence.

mod access;
mod ai;
mod backends;
mod filters;
mod gateways;
mod guardrail;
mod index;
mod payload;
mod ratelimit;
mod redact;
mod routes;
mod targets;
mod tls;

use std::net::IpAddr;

use crate::error::{Diagnostics, Rejected};
use crate::ir::Snapshot;
use crate::objects::ObjectSet;

pub use index::CONTROLLER_NAME;
pub use tls::public_client_tls;

/// Process-level settings that shape compilation.
#[derive(Debug, Clone)]
pub struct CompileOptions {
    /// Bind address for Gateways without `spec.addresses` (`--bind-address`; all interfaces by
    /// default). Known at compile time so that overlapping sockets are configuration errors,
    /// not bind failures.
    pub default_bind: IpAddr,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            default_bind: IpAddr::from([0, 0, 0, 0]),
        }
    }
}

/// Compiles objects to a snapshot. Load-time diagnostics (`loaded`) are merged in, so one call
/// reports every problem of the configuration.
pub fn compile(
    set: &ObjectSet,
    loaded: Diagnostics,
    options: &CompileOptions,
) -> Result<Snapshot, Rejected> {
    let mut diags = loaded;
    let idx = index::Index::new(set, &mut diags);
    let mut clusters = backends::Clusters::default();
    clusters.check_backends(&idx, &mut diags);
    // Before the AI backends: a policy may target an AIBackend.
    clusters.rate_limits = ratelimit::build(&idx, &mut diags);
    clusters.ai = ai::build(&idx, &mut clusters, &mut diags);
    clusters.access = access::build(&idx, &mut diags);
    clusters.payload = payload::build(&idx, &mut clusters, &mut diags);
    let mut sockets = gateways::build_sockets(&idx, options, &mut diags);
    routes::attach_routes(&idx, &mut sockets, &mut clusters, &mut diags);
    let sockets = gateways::finish(sockets, &clusters, &mut diags);
    let ai_backends = clusters.ai.list.clone();
    if diags.has_errors() {
        return Err(Rejected { diagnostics: diags });
    }
    Ok(Snapshot {
        sockets,
        clusters: clusters.into_vec(),
        ai_backends,
        warnings: diags.warnings,
        redacted_objects: redact::objects_json(set),
    })
}
