//! Policies attached with `targetRefs`: which Gateways, HTTPRoutes and AIBackends each covers.
//! One policy of a kind per target; a reference to an object that does not exist (yet) is a
//! warning, since it may arrive in a later file or reload.

use std::collections::HashMap;
use std::sync::Arc;

use super::index::Index;
use crate::error::Diagnostics;
use crate::objects::ai::{PolicyTargetRef, SLUICE_GROUP};
use crate::objects::{Object, GATEWAY_GROUP};

type Key = (String, String);

/// How a policy kind reads in messages, and what it may target.
pub(crate) struct PolicyKind {
    /// With its article: `an AccessPolicy`.
    pub named: &'static str,
    /// What an unattached policy does: `protects nothing`.
    pub idle: &'static str,
    /// Whether a `sluice.dev` `AIBackend` is a valid target.
    pub ai_backends: bool,
}

/// The compiled policies of one kind, by the object each targets.
pub(crate) struct PolicyTargets<T> {
    gateways: HashMap<Key, Arc<T>>,
    routes: HashMap<Key, Arc<T>>,
    backends: HashMap<Key, Arc<T>>,
}

impl<T> Default for PolicyTargets<T> {
    fn default() -> Self {
        PolicyTargets {
            gateways: HashMap::new(),
            routes: HashMap::new(),
            backends: HashMap::new(),
        }
    }
}

fn find<T>(map: &HashMap<Key, Arc<T>>, ns: &str, name: &str) -> Option<Arc<T>> {
    map.get(&(ns.to_string(), name.to_string())).cloned()
}

impl<T> PolicyTargets<T> {
    pub fn gateway(&self, ns: &str, name: &str) -> Option<Arc<T>> {
        find(&self.gateways, ns, name)
    }

    pub fn route(&self, ns: &str, name: &str) -> Option<Arc<T>> {
        find(&self.routes, ns, name)
    }

    pub fn backend(&self, ns: &str, name: &str) -> Option<Arc<T>> {
        find(&self.backends, ns, name)
    }

    /// Records `compiled` for every target of `p` (in its namespace), reporting bad kinds,
    /// missing targets and targets that already have a policy of this kind.
    pub fn attach<S>(
        &mut self,
        idx: &Index<'_>,
        p: &Object<S>,
        refs: &[PolicyTargetRef],
        compiled: &Arc<T>,
        kind: &PolicyKind,
        diags: &mut Diagnostics,
    ) {
        if refs.is_empty() {
            diags.error(p.error("spec.targetRefs", "at least one target is required"));
        }
        for (i, t) in refs.iter().enumerate() {
            let field = format!("spec.targetRefs[{i}]");
            let key = (p.namespace().to_string(), t.name.clone());
            let is_key = |ns: &str, name: &str| ns == key.0 && name == key.1;
            let (map, exists) = match (t.group.as_str(), t.kind.as_str()) {
                (GATEWAY_GROUP, "Gateway") => (
                    &mut self.gateways,
                    idx.set
                        .gateways
                        .iter()
                        .any(|g| is_key(g.namespace(), g.name())),
                ),
                (GATEWAY_GROUP, "HTTPRoute") => (
                    &mut self.routes,
                    idx.set
                        .http_routes
                        .iter()
                        .any(|r| is_key(r.namespace(), r.name())),
                ),
                (SLUICE_GROUP, "AIBackend") if kind.ai_backends => (
                    &mut self.backends,
                    idx.set
                        .ai_backends
                        .iter()
                        .any(|b| is_key(b.namespace(), b.name())),
                ),
                (g, k) => {
                    let backends = if kind.ai_backends {
                        format!(", or a {SLUICE_GROUP} AIBackend")
                    } else {
                        String::new()
                    };
                    diags.error(p.error(
                        format!("{field}.kind"),
                        format!(
                            "{} targets a {GATEWAY_GROUP} Gateway or HTTPRoute{backends}, not {g}/{k}",
                            kind.named
                        ),
                    ));
                    continue;
                }
            };
            if !exists {
                // Not an error: the target may arrive in a later file or reload. But an author
                // who mistyped a name must hear about it.
                diags.warn(p.error(
                    &field,
                    format!(
                        "{} {}/{} not found; the policy {}",
                        t.kind, key.0, key.1, kind.idle
                    ),
                ));
            }
            if map.insert(key.clone(), compiled.clone()).is_some() {
                diags.error(p.error(
                    &field,
                    format!(
                        "{} {}/{} already has {}; merge them into one",
                        t.kind, key.0, key.1, kind.named
                    ),
                ));
            }
        }
    }
}
