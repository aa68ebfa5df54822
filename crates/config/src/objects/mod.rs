//! The Kubernetes-shaped objects Sluice consumes, typed with the standards' exact field names.
//! Unknown fields are errors; unknown kinds are warnings (later features add kinds).

pub mod access;
pub mod ai;
pub mod backend;
pub mod core;
pub mod gateway;
pub mod httproute;
pub mod meta;
pub mod payload;
pub mod ratelimit;
pub mod reference_grant;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{ConfigError, Diagnostics, ObjectId};
pub use meta::ObjectMeta;

pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// Where an object came from, for messages.
#[derive(Debug, Clone)]
pub struct Source {
    pub file: Arc<str>,
    /// Zero-based index of the YAML document in its file.
    pub document: usize,
}

/// One typed object: metadata, its body (usually `spec`), and its origin.
#[derive(Debug, Clone)]
pub struct Object<T> {
    pub kind: &'static str,
    pub meta: ObjectMeta,
    pub spec: T,
    pub source: Source,
}

impl<T> Object<T> {
    pub fn id(&self) -> ObjectId {
        ObjectId {
            kind: self.kind.to_string(),
            namespace: if cluster_scoped(self.kind) {
                None
            } else {
                Some(self.meta.ns().to_string())
            },
            name: self.meta.name.clone(),
        }
    }

    pub fn namespace(&self) -> &str {
        self.meta.ns()
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// An error about `field` of this object.
    pub fn error(&self, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::new(message)
            .in_file(self.source.file.to_string())
            .on(self.id())
            .at(field)
    }
}

fn cluster_scoped(kind: &str) -> bool {
    matches!(kind, "GatewayClass" | "Namespace")
}

/// Every object of one configuration, grouped by kind, in load order.
#[derive(Debug, Clone, Default)]
pub struct ObjectSet {
    pub gateway_classes: Vec<Object<gateway::GatewayClassSpec>>,
    pub gateways: Vec<Object<gateway::GatewaySpec>>,
    pub http_routes: Vec<Object<httproute::HttpRouteSpec>>,
    pub reference_grants: Vec<Object<reference_grant::ReferenceGrantSpec>>,
    pub services: Vec<Object<core::ServiceSpec>>,
    pub endpoint_slices: Vec<Object<core::EndpointSliceBody>>,
    pub secrets: Vec<Object<core::SecretBody>>,
    pub config_maps: Vec<Object<core::ConfigMapBody>>,
    pub namespaces: Vec<Object<()>>,
    pub backends: Vec<Object<backend::BackendSpec>>,
    pub ai_backends: Vec<Object<ai::AiBackendSpec>>,
    pub ai_policies: Vec<Object<ai::AiPolicySpec>>,
    pub access_policies: Vec<Object<access::AccessPolicySpec>>,
    pub rate_limit_policies: Vec<Object<ratelimit::TokenRateLimitPolicySpec>>,
    pub payload_processors: Vec<Object<payload::PayloadProcessorSpec>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WithSpec<S> {
    spec: S,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionalSpec {
    /// A Namespace's `spec` (finalizers): accepted so real manifests load, never read.
    #[serde(default)]
    #[allow(dead_code)]
    spec: Option<Value>,
}

impl ObjectSet {
    /// Adds one parsed YAML document, reporting errors (bad shape) and warnings (unknown kind).
    pub fn add_document(&mut self, doc: Value, source: Source, diags: &mut Diagnostics) {
        let file = source.file.to_string();
        let Value::Object(mut map) = doc else {
            diags.error(
                ConfigError::new(format!("document {} is not a mapping", source.document + 1))
                    .in_file(file),
            );
            return;
        };
        let api_version = take_string(&mut map, "apiVersion");
        let kind = take_string(&mut map, "kind");
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            diags.error(
                ConfigError::new(format!(
                    "document {} has no apiVersion and kind",
                    source.document + 1
                ))
                .in_file(file),
            );
            return;
        };
        map.remove("status"); // written by controllers, never read
        let meta_value = map.remove("metadata").unwrap_or(Value::Null);
        // For messages when metadata itself is malformed: whatever name and namespace it has.
        let raw_field = |key: &str| {
            meta_value
                .get(key)
                .and_then(Value::as_str)
                .map(String::from)
        };
        let (raw_name, raw_ns) = (raw_field("name"), raw_field("namespace"));
        let meta: ObjectMeta = match parse(meta_value, "metadata") {
            Ok(m) => m,
            Err((field, msg)) => {
                diags.error(
                    ConfigError::new(msg)
                        .in_file(file)
                        .on(ObjectId {
                            kind: kind.clone(),
                            namespace: raw_ns,
                            name: raw_name.unwrap_or_else(|| String::from("<unnamed>")),
                        })
                        .at(field),
                );
                return;
            }
        };
        let group = api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
            .to_string();
        let version = api_version.rsplit('/').next().unwrap_or("").to_string();
        let ctx = Ctx {
            meta,
            source,
            rest: map,
        };
        match (group.as_str(), kind.as_str()) {
            (GATEWAY_GROUP, "GatewayClass") => {
                ctx.spec("GatewayClass", &mut self.gateway_classes, diags)
            }
            (GATEWAY_GROUP, "Gateway") => ctx.spec("Gateway", &mut self.gateways, diags),
            (GATEWAY_GROUP, "HTTPRoute") => ctx.spec("HTTPRoute", &mut self.http_routes, diags),
            (GATEWAY_GROUP, "ReferenceGrant") => {
                ctx.spec("ReferenceGrant", &mut self.reference_grants, diags)
            }
            (GATEWAY_GROUP, "PayloadProcessor") if version == "v1alpha1" => {
                ctx.spec("PayloadProcessor", &mut self.payload_processors, diags)
            }
            (GATEWAY_GROUP, "Backend") if version == "v1alpha1" => {
                ctx.spec("Backend", &mut self.backends, diags)
            }
            (ai::SLUICE_GROUP, "AIBackend") if version == "v1alpha1" => {
                ctx.spec("AIBackend", &mut self.ai_backends, diags)
            }
            (ai::SLUICE_GROUP, "AIPolicy") if version == "v1alpha1" => {
                ctx.spec("AIPolicy", &mut self.ai_policies, diags)
            }
            (ai::SLUICE_GROUP, "AccessPolicy") if version == "v1alpha1" => {
                ctx.spec("AccessPolicy", &mut self.access_policies, diags)
            }
            (ai::SLUICE_GROUP, "TokenRateLimitPolicy") if version == "v1alpha1" => {
                ctx.spec("TokenRateLimitPolicy", &mut self.rate_limit_policies, diags)
            }
            ("", "Service") => ctx.spec("Service", &mut self.services, diags),
            ("discovery.k8s.io", "EndpointSlice") => {
                ctx.flat("EndpointSlice", &mut self.endpoint_slices, diags)
            }
            ("", "Secret") => ctx.flat("Secret", &mut self.secrets, diags),
            ("", "ConfigMap") => ctx.flat("ConfigMap", &mut self.config_maps, diags),
            ("", "Namespace") => {
                let source = ctx.source.clone();
                let meta = ctx.meta.clone();
                match parse::<OptionalSpec>(Value::Object(ctx.rest), "") {
                    Ok(_) => self.namespaces.push(Object {
                        kind: "Namespace",
                        meta,
                        spec: (),
                        source,
                    }),
                    Err((field, msg)) => diags.error(
                        ConfigError::new(msg)
                            .in_file(source.file.to_string())
                            .on(ObjectId {
                                kind: "Namespace".into(),
                                namespace: None,
                                name: meta.name,
                            })
                            .at(field),
                    ),
                }
            }
            _ => diags.warn(
                ConfigError::new(format!("unknown kind {kind} ({api_version}); ignored"))
                    .in_file(file)
                    .on(ObjectId {
                        kind: kind.clone(),
                        namespace: ctx.meta.namespace.clone(),
                        name: ctx.meta.name.clone(),
                    }),
            ),
        }
    }
}

struct Ctx {
    meta: ObjectMeta,
    source: Source,
    rest: Map<String, Value>,
}

impl Ctx {
    fn object_error(&self, kind: &str, field: String, msg: String) -> ConfigError {
        ConfigError::new(msg)
            .in_file(self.source.file.to_string())
            .on(ObjectId {
                kind: kind.to_string(),
                namespace: if cluster_scoped(kind) {
                    None
                } else {
                    Some(self.meta.ns().to_string())
                },
                name: self.meta.name.clone(),
            })
            .at(field)
    }

    fn check_name(&self, kind: &str, diags: &mut Diagnostics) -> bool {
        if self.meta.name.is_empty() {
            diags.error(self.object_error(kind, "metadata.name".into(), "is required".into()));
            return false;
        }
        true
    }

    /// Kinds whose body is under `spec`.
    fn spec<S: DeserializeOwned>(
        self,
        kind: &'static str,
        out: &mut Vec<Object<S>>,
        diags: &mut Diagnostics,
    ) {
        if !self.check_name(kind, diags) {
            return;
        }
        let rest = Value::Object(self.rest.clone());
        match parse::<WithSpec<S>>(rest, "") {
            Ok(w) => out.push(Object {
                kind,
                meta: self.meta,
                spec: w.spec,
                source: self.source,
            }),
            Err((field, msg)) => diags.error(self.object_error(kind, field, msg)),
        }
    }

    /// Kinds whose payload fields sit at the top level (Secret, ConfigMap, EndpointSlice).
    fn flat<S: DeserializeOwned>(
        self,
        kind: &'static str,
        out: &mut Vec<Object<S>>,
        diags: &mut Diagnostics,
    ) {
        if !self.check_name(kind, diags) {
            return;
        }
        let rest = Value::Object(self.rest.clone());
        match parse::<S>(rest, "") {
            Ok(spec) => out.push(Object {
                kind,
                meta: self.meta,
                spec,
                source: self.source,
            }),
            Err((field, msg)) => diags.error(self.object_error(kind, field, msg)),
        }
    }
}

fn take_string(map: &mut Map<String, Value>, key: &str) -> Option<String> {
    match map.remove(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// Deserialises with the path of the failing field, e.g. `spec.rules[0].matches[0].path.type`.
fn parse<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, (String, String)> {
    let value = if value.is_null() {
        Value::Object(Map::new())
    } else {
        value
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = match (prefix.is_empty(), path == ".") {
            (true, _) => path,
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}.{path}"),
        };
        (field, e.into_inner().to_string())
    })
}
