//! `GET /v1/models`: the models this listener can route, from configuration.

use std::collections::BTreeMap;

use serde_json::json;
use sluice_config::ir::{BackendTarget, ListenerIr};

/// Every model named by an AI backend reachable from `listener` (declared models and rewrite
/// sources) and every alias, with the provider that serves it.
pub fn list(listener: &ListenerIr) -> serde_json::Value {
    let mut models: BTreeMap<String, &'static str> = BTreeMap::new();
    for vhost in &listener.virtual_hosts {
        for entry in &vhost.entries {
            for b in &entry.rule.backends {
                if let BackendTarget::Ai(ai) = &b.target {
                    let owner = ai.provider.otel_name();
                    let names = ai.models.iter().filter(|m| !m.contains('*'));
                    for m in names.chain(ai.model_rewrite.keys()) {
                        models.entry(m.clone()).or_insert(owner);
                    }
                }
            }
        }
    }
    if let Some(settings) = &listener.ai {
        for alias in settings.aliases.keys() {
            models.entry(alias.clone()).or_insert("sluice");
        }
    }
    let data: Vec<_> = models
        .into_iter()
        .map(|(id, owner)| json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
        .collect();
    json!({"object": "list", "data": data})
}
