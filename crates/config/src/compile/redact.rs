//! The objects as JSON for the admin server, with every secret payload removed.

use serde_json::{json, Value};

use crate::objects::{Object, ObjectSet};

fn entry<T: serde::Serialize>(o: &Object<T>) -> Value {
    json!({
        "kind": o.kind,
        "metadata": o.meta,
        "spec": o.spec,
        "source": o.source.file.as_ref(),
    })
}

pub(crate) fn objects_json(set: &ObjectSet) -> Value {
    let mut out: Vec<Value> = Vec::new();
    out.extend(set.gateway_classes.iter().map(entry));
    out.extend(set.gateways.iter().map(entry));
    out.extend(set.http_routes.iter().map(entry));
    out.extend(set.reference_grants.iter().map(entry));
    out.extend(set.services.iter().map(entry));
    out.extend(set.endpoint_slices.iter().map(entry));
    out.extend(set.backends.iter().map(entry));
    out.extend(set.payload_processors.iter().map(entry));
    out.extend(set.namespaces.iter().map(
        |n| json!({"kind": "Namespace", "metadata": n.meta, "source": n.source.file.as_ref()}),
    ));
    // Secrets and ConfigMaps: names and keys only — values never leave the process.
    out.extend(set.secrets.iter().map(|s| {
        let keys: Vec<&String> = s
            .spec
            .data
            .keys()
            .chain(s.spec.string_data.keys())
            .collect();
        json!({"kind": "Secret", "metadata": s.meta, "type": s.spec.kind, "keys": keys,
               "source": s.source.file.as_ref()})
    }));
    out.extend(set.config_maps.iter().map(|c| {
        let keys: Vec<&String> = c.spec.data.keys().collect();
        json!({"kind": "ConfigMap", "metadata": c.meta, "keys": keys, "source": c.source.file.as_ref()})
    }));
    Value::Array(out)
}
