//! Lookup tables over the object set, and the Gateway API reference rules (ReferenceGrant).

use std::collections::{BTreeMap, HashMap};

use crate::error::Diagnostics;
use crate::objects::core::{ConfigMapBody, EndpointSliceBody, SecretBody, ServiceSpec};
use crate::objects::gateway::GatewaySpec;
use crate::objects::{backend::BackendSpec, Object, ObjectSet, GATEWAY_GROUP};

/// The `controllerName` this gateway answers for.
pub const CONTROLLER_NAME: &str = "sluice.dev/gateway-controller";

pub(crate) struct Index<'a> {
    pub set: &'a ObjectSet,
    pub gateways: Vec<&'a Object<GatewaySpec>>,
    namespaces: HashMap<&'a str, &'a BTreeMap<String, String>>,
    services: HashMap<(String, String), &'a Object<ServiceSpec>>,
    backends: HashMap<(String, String), &'a Object<BackendSpec>>,
    slices: HashMap<(String, String), Vec<&'a Object<EndpointSliceBody>>>,
    secrets: HashMap<(String, String), &'a Object<SecretBody>>,
    config_maps: HashMap<(String, String), &'a Object<ConfigMapBody>>,
}

impl<'a> Index<'a> {
    pub fn new(set: &'a ObjectSet, diags: &mut Diagnostics) -> Self {
        let served_classes: Vec<&str> = set
            .gateway_classes
            .iter()
            .filter(|c| c.spec.controller_name == CONTROLLER_NAME)
            .map(|c| c.name())
            .collect();
        let gateways = set
            .gateways
            .iter()
            .filter(|g| {
                set.gateway_classes.is_empty()
                    || served_classes.contains(&g.spec.gateway_class_name.as_str())
            })
            .collect();
        for g in &set.gateways {
            if !set.gateway_classes.is_empty()
                && !served_classes.contains(&g.spec.gateway_class_name.as_str())
            {
                diags.warn(g.error(
                    "spec.gatewayClassName",
                    format!(
                        "GatewayClass {:?} is not handled by {CONTROLLER_NAME}; Gateway not served",
                        g.spec.gateway_class_name
                    ),
                ));
            }
        }
        let mut idx = Index {
            set,
            gateways,
            namespaces: set
                .namespaces
                .iter()
                .map(|n| (n.name(), &n.meta.labels))
                .collect(),
            services: HashMap::new(),
            backends: HashMap::new(),
            slices: HashMap::new(),
            secrets: HashMap::new(),
            config_maps: HashMap::new(),
        };
        // Kinds only checked for uniqueness (cluster-scoped ones share the "" namespace).
        let mut seen: HashMap<(String, String), &Object<()>> = HashMap::new();
        for n in &set.namespaces {
            unique(&mut seen, n, diags);
        }
        let mut seen = HashMap::new();
        for c in &set.gateway_classes {
            unique(&mut seen, c, diags);
        }
        let mut seen = HashMap::new();
        for g in &set.gateways {
            unique(&mut seen, g, diags);
        }
        let mut seen = HashMap::new();
        for g in &set.reference_grants {
            unique(&mut seen, g, diags);
        }
        for s in &set.services {
            unique(&mut idx.services, s, diags);
        }
        for b in &set.backends {
            unique(&mut idx.backends, b, diags);
        }
        for s in &set.secrets {
            unique(&mut idx.secrets, s, diags);
        }
        for c in &set.config_maps {
            unique(&mut idx.config_maps, c, diags);
        }
        for slice in &set.endpoint_slices {
            match slice.meta.labels.get("kubernetes.io/service-name") {
                Some(svc) => idx
                    .slices
                    .entry((slice.namespace().to_string(), svc.clone()))
                    .or_default()
                    .push(slice),
                None => diags.warn(slice.error(
                    "metadata.labels",
                    "has no kubernetes.io/service-name label; ignored",
                )),
            }
        }
        idx
    }

    /// Labels of a namespace; a namespace without a Namespace object has none.
    pub fn namespace_labels(&self, ns: &str) -> Option<&BTreeMap<String, String>> {
        self.namespaces.get(ns).copied()
    }

    pub fn service(&self, ns: &str, name: &str) -> Option<&'a Object<ServiceSpec>> {
        self.services.get(&key(ns, name)).copied()
    }

    pub fn backend(&self, ns: &str, name: &str) -> Option<&'a Object<BackendSpec>> {
        self.backends.get(&key(ns, name)).copied()
    }

    pub fn endpoint_slices(&self, ns: &str, service: &str) -> &[&'a Object<EndpointSliceBody>] {
        self.slices
            .get(&key(ns, service))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn secret(&self, ns: &str, name: &str) -> Option<&'a Object<SecretBody>> {
        self.secrets.get(&key(ns, name)).copied()
    }

    pub fn config_map(&self, ns: &str, name: &str) -> Option<&'a Object<ConfigMapBody>> {
        self.config_maps.get(&key(ns, name)).copied()
    }

    /// Whether an object of `from_kind` in `from_ns` may refer to `to_kind` `to_name` in `to_ns`.
    /// Same-namespace references are always allowed; others need a ReferenceGrant in `to_ns`.
    pub fn reference_allowed(
        &self,
        from_kind: &str,
        from_ns: &str,
        to_group: &str,
        to_kind: &str,
        to_ns: &str,
        to_name: &str,
    ) -> bool {
        if from_ns == to_ns {
            return true;
        }
        // The referring object's API group: Sluice's own kinds live in sluice.dev.
        let from_group = match from_kind {
            "AIBackend" | "AIPolicy" | "AccessPolicy" | "TokenRateLimitPolicy" => {
                crate::objects::ai::SLUICE_GROUP
            }
            _ => GATEWAY_GROUP,
        };
        self.set
            .reference_grants
            .iter()
            .filter(|g| g.namespace() == to_ns)
            .any(|g| {
                g.spec
                    .from
                    .iter()
                    .any(|f| f.group == from_group && f.kind == from_kind && f.namespace == from_ns)
                    && g.spec.to.iter().any(|t| {
                        t.group == to_group
                            && t.kind == to_kind
                            && t.name.as_deref().is_none_or(|n| n == to_name)
                    })
            })
    }
}

fn unique<'a, T>(
    map: &mut HashMap<(String, String), &'a Object<T>>,
    obj: &'a Object<T>,
    diags: &mut Diagnostics,
) {
    let ns = if obj.id().namespace.is_some() {
        obj.namespace()
    } else {
        ""
    };
    if let Some(prev) = map.insert(key(ns, obj.name()), obj) {
        diags.error(obj.error(
            "metadata.name",
            format!("duplicate object (also defined in {})", prev.source.file),
        ));
    }
}

fn key(ns: &str, name: &str) -> (String, String) {
    (ns.to_string(), name.to_string())
}
