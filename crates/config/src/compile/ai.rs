//! `AIBackend` and `AIPolicy` objects to the runtime model: provider settings checked, credentials
//! resolved (Secret, environment, file) into [`Secret`]s, backend references resolved to
//! clusters, and policies gathered per Gateway and per HTTPRoute.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_llm::provider::{Credential, MockSettings, ProviderKind};
use sluice_llm::Secret;

use super::backends::{secret_data, Clusters};
use super::index::Index;
use crate::duration::parse_duration;
use crate::error::Diagnostics;
use crate::ir::{
    AiBackend, AiListener, AiRouteOverrides, AiRouteSettings, BackendTarget, Endpoints, Failover,
    Price, DEFAULT_MAX_REQUEST_BYTES,
};
use crate::objects::ai::{
    AiBackendSpec, AiPolicySpec, CredentialSource, FailoverSpec, ProviderSpec, ProviderType,
};
use crate::objects::{Object, GATEWAY_GROUP};

type Key = (String, String);

/// Every AI object of a configuration, compiled.
#[derive(Default)]
pub(crate) struct AiCatalog {
    /// By namespace and name; `Err` holds why the backend cannot serve (already reported).
    backends: HashMap<Key, Result<Arc<AiBackend>, String>>,
    pub list: Vec<Arc<AiBackend>>,
    gateways: HashMap<Key, Arc<AiListener>>,
    routes: HashMap<Key, Arc<AiRouteOverrides>>,
}

impl AiCatalog {
    pub fn backend(&self, ns: &str, name: &str) -> Option<&Result<Arc<AiBackend>, String>> {
        self.backends.get(&(ns.to_string(), name.to_string()))
    }

    /// The AI settings of a Gateway's listeners: its policy's, or defaults when the Gateway
    /// carries AI routes but no policy; `None` when it has neither.
    pub fn listener(
        &self,
        gw_ns: &str,
        gw_name: &str,
        has_ai_routes: bool,
    ) -> Option<Arc<AiListener>> {
        match self.gateways.get(&(gw_ns.to_string(), gw_name.to_string())) {
            Some(s) => Some(s.clone()),
            None if has_ai_routes => Some(Arc::new(AiListener::default())),
            None => None,
        }
    }

    pub fn route(&self, ns: &str, name: &str) -> Option<Arc<AiRouteOverrides>> {
        self.routes
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }
}

/// Compiles every AIBackend (referenced or not, so each problem is reported) and AIPolicy.
pub(crate) fn build(
    idx: &Index<'_>,
    clusters: &mut Clusters,
    diags: &mut Diagnostics,
) -> AiCatalog {
    let mut cat = AiCatalog::default();
    for b in &idx.set.ai_backends {
        let key = (b.namespace().to_string(), b.name().to_string());
        if cat.backends.contains_key(&key) {
            diags.error(b.error("metadata.name", "duplicate AIBackend"));
            continue;
        }
        let errors_before = diags.errors.len();
        let built = backend(idx, b, cat.list.len(), clusters, diags);
        let entry = match built {
            Some(ai) if diags.errors.len() == errors_before => {
                let ai = Arc::new(ai);
                cat.list.push(ai.clone());
                Ok(ai)
            }
            _ => Err(format!("AIBackend {}/{} is invalid", key.0, key.1)),
        };
        cat.backends.insert(key, entry);
    }
    for p in &idx.set.ai_policies {
        policy(idx, p, &mut cat, diags);
    }
    cat
}

fn backend(
    idx: &Index<'_>,
    b: &Object<AiBackendSpec>,
    id: usize,
    clusters: &mut Clusters,
    diags: &mut Diagnostics,
) -> Option<AiBackend> {
    let spec = &b.spec;
    let provider = provider(b, &spec.provider, diags)?;
    let is_mock = matches!(provider, ProviderKind::Mock(_));
    let (cluster, host) = match (&spec.backend_ref, is_mock) {
        (Some(_), true) => {
            diags.error(b.error(
                "spec.backendRef",
                "the Mock provider runs in process and takes no backendRef",
            ));
            return None;
        }
        (None, true) => (None, None),
        (None, false) => {
            diags.error(b.error("spec.backendRef", "is required (where the provider is)"));
            return None;
        }
        (Some(r), false) => {
            let group = r.group.as_deref().unwrap_or("");
            let kind = r.kind.as_deref().unwrap_or("Service");
            if !matches!((group, kind), ("", "Service") | (GATEWAY_GROUP, "Backend")) {
                diags.error(b.error(
                    "spec.backendRef",
                    format!("must be a Service or a {GATEWAY_GROUP} Backend, not {group}/{kind}"),
                ));
                return None;
            }
            match clusters.resolve(idx, b, "spec.backendRef", r, diags) {
                BackendTarget::Cluster(c) => {
                    let host = match &c.endpoints {
                        Endpoints::Dns { hostname, port } => {
                            let default_port = if c.tls.is_some() { 443 } else { 80 };
                            Some(Arc::from(if *port == default_port {
                                hostname.clone()
                            } else {
                                format!("{hostname}:{port}")
                            }))
                        }
                        Endpoints::Static(_) => None,
                    };
                    (Some(c), host)
                }
                // Reported by `resolve` as a warning: the backend exists but cannot serve.
                _ => (None, None),
            }
        }
    };
    if !is_mock && cluster.is_none() {
        diags.error(b.error("spec.backendRef", "does not resolve to a destination"));
        return None;
    }
    let credential = credential(idx, b, &provider, spec.credentials.as_ref(), diags)?;
    Some(AiBackend {
        id,
        name: Arc::from(format!("{}/{}", b.namespace(), b.name())),
        provider,
        credential,
        cluster,
        host,
        region: spec.region.as_deref().map(Arc::from),
        priority: spec.priority,
        models: spec.models.clone(),
        model_rewrite: spec.model_rewrite.clone().into_iter().collect(),
        passthrough_client_auth: spec.passthrough_client_auth,
        rate_limits: clusters.rate_limits.backend(b.namespace(), b.name()),
    })
}

fn provider(
    b: &Object<AiBackendSpec>,
    p: &ProviderSpec,
    diags: &mut Diagnostics,
) -> Option<ProviderKind> {
    // Settings blocks for another provider type are mistakes, not options to ignore.
    let given: [(&str, bool, ProviderType); 5] = [
        ("openai", p.openai.is_some(), ProviderType::OpenAI),
        ("azure", p.azure.is_some(), ProviderType::AzureOpenAI),
        ("anthropic", p.anthropic.is_some(), ProviderType::Anthropic),
        ("bedrock", p.bedrock.is_some(), ProviderType::Bedrock),
        ("vertex", p.vertex.is_some(), ProviderType::VertexAI),
    ];
    let mut ok = true;
    for (name, present, owner) in given {
        if present && owner != p.kind {
            diags.error(b.error(
                format!("spec.provider.{name}"),
                format!("applies to provider type {owner:?}, not {:?}", p.kind),
            ));
            ok = false;
        }
    }
    if p.mock.is_some() && p.kind != ProviderType::Mock {
        diags.error(b.error(
            "spec.provider.mock",
            format!("applies to provider type Mock, not {:?}", p.kind),
        ));
        ok = false;
    }
    let missing = |diags: &mut Diagnostics, name: &str| {
        diags.error(b.error(
            format!("spec.provider.{name}"),
            format!("is required for provider type {:?}", p.kind),
        ));
    };
    let kind = match p.kind {
        ProviderType::OpenAI => {
            let prefix = p
                .openai
                .as_ref()
                .and_then(|o| o.path_prefix.clone())
                .unwrap_or_else(|| "/v1".to_string());
            if !prefix.is_empty() && !prefix.starts_with('/') {
                diags.error(b.error("spec.provider.openai.pathPrefix", "must start with /"));
                ok = false;
            }
            ProviderKind::OpenAI {
                path_prefix: prefix.trim_end_matches('/').to_string(),
            }
        }
        ProviderType::AzureOpenAI => match &p.azure {
            Some(a) => ProviderKind::Azure {
                api_version: a.api_version.clone(),
                deployments: a.deployments.clone().into_iter().collect(),
            },
            None => {
                missing(diags, "azure");
                return None;
            }
        },
        ProviderType::Anthropic => ProviderKind::Anthropic {
            version: p
                .anthropic
                .as_ref()
                .and_then(|a| a.version.clone())
                .unwrap_or_else(|| "2023-06-01".to_string()),
        },
        ProviderType::Bedrock => match &p.bedrock {
            Some(s) => ProviderKind::Bedrock {
                region: s.region.clone(),
            },
            None => {
                missing(diags, "bedrock");
                return None;
            }
        },
        ProviderType::VertexAI => match &p.vertex {
            Some(v) => ProviderKind::Vertex {
                project: v.project.clone(),
                location: v.location.clone(),
            },
            None => {
                missing(diags, "vertex");
                return None;
            }
        },
        ProviderType::Gemini => ProviderKind::Gemini,
        ProviderType::Mock => {
            let m = p.mock.clone().unwrap_or_default();
            let mut dur = |name: &str, v: &Option<String>| match v.as_deref().map(parse_duration) {
                None => Duration::ZERO,
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    diags.error(b.error(format!("spec.provider.mock.{name}"), e));
                    ok = false;
                    Duration::ZERO
                }
            };
            let latency = dur("latency", &m.latency);
            let chunk_interval = dur("chunkInterval", &m.chunk_interval);
            if let Some(s) = m.error_status {
                if !(400..=599).contains(&s) {
                    diags.error(b.error(
                        "spec.provider.mock.errorStatus",
                        format!("{s} is not an error status (400-599)"),
                    ));
                    ok = false;
                }
            }
            if m.error_every == Some(0) {
                diags.error(b.error("spec.provider.mock.errorEvery", "must be at least 1"));
                ok = false;
            }
            ProviderKind::Mock(MockSettings {
                latency,
                chunk_interval,
                error_status: m.error_status,
                error_every: m.error_every.unwrap_or(1),
            })
        }
    };
    ok.then_some(kind)
}

/// Resolves the credential a provider needs. `None` (with an error reported) when it is required
/// and cannot be read; the error never contains the credential.
fn credential(
    idx: &Index<'_>,
    b: &Object<AiBackendSpec>,
    provider: &ProviderKind,
    source: Option<&CredentialSource>,
    diags: &mut Diagnostics,
) -> Option<Credential> {
    let field = "spec.credentials";
    let required = !matches!(
        provider,
        ProviderKind::OpenAI { .. } | ProviderKind::Mock(_)
    );
    let Some(src) = source else {
        if required {
            diags.error(b.error(
                field,
                "is required for this provider (secretRef, env or file)",
            ));
            return None;
        }
        return Some(Credential::None);
    };
    let given = [
        src.secret_ref.is_some(),
        src.env.is_some(),
        src.file.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        diags.error(b.error(field, "exactly one of secretRef, env and file must be set"));
        return None;
    }
    let aws = matches!(provider, ProviderKind::Bedrock { .. });
    let fail = |diags: &mut Diagnostics, at: &str, msg: String| {
        let path = if at.is_empty() {
            field.to_string()
        } else {
            format!("{field}.{at}")
        };
        diags.error(b.error(path, msg));
        None
    };
    // Bedrock needs three values; everything else one.
    let read: Result<Vec<Option<String>>, (String, String)> = if let Some(r) = &src.secret_ref {
        let ns = r.namespace.as_deref().unwrap_or(b.namespace());
        if !idx.reference_allowed("AIBackend", b.namespace(), "", "Secret", ns, &r.name) {
            return fail(diags, "secretRef", format!("reference to Secret {ns}/{} is not permitted by any ReferenceGrant in namespace {ns}", r.name));
        }
        let Some(secret) = idx.secret(ns, &r.name) else {
            return fail(
                diags,
                "secretRef",
                format!("Secret {ns}/{} not found", r.name),
            );
        };
        let data = match secret_data(secret) {
            Ok(d) => d,
            Err(e) => return fail(diags, "secretRef", format!("Secret {ns}/{}: {e}", r.name)),
        };
        let get = |k: &str| {
            data.get(k)
                .map(|v| String::from_utf8_lossy(v).trim().to_string())
        };
        if aws {
            Ok(vec![
                get("accessKeyId"),
                get("secretAccessKey"),
                get("sessionToken"),
            ])
        } else {
            let key = r.key.as_deref().unwrap_or("apiKey");
            match get(key) {
                Some(v) => Ok(vec![Some(v)]),
                None => Err((
                    "secretRef.key".into(),
                    format!("Secret {ns}/{} has no key {key:?}", r.name),
                )),
            }
        }
    } else if let Some(var) = &src.env {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if aws {
            Ok(vec![
                get(&format!("{var}ACCESS_KEY_ID")),
                get(&format!("{var}SECRET_ACCESS_KEY")),
                get(&format!("{var}SESSION_TOKEN")),
            ])
        } else {
            match get(var) {
                Some(v) => Ok(vec![Some(v.trim().to_string())]),
                None => Err((
                    "env".into(),
                    format!("environment variable {var} is not set"),
                )),
            }
        }
    } else {
        let path = src.file.as_deref().unwrap_or_default();
        match std::fs::read_to_string(path) {
            Ok(text) if aws => Ok(aws_file(&text)),
            Ok(text) => Ok(vec![Some(text.trim().to_string())]),
            Err(e) => Err(("file".into(), format!("cannot read {path}: {e}"))),
        }
    };
    let values = match read {
        Ok(v) => v,
        Err((at, msg)) => return fail(diags, &at, msg),
    };
    match provider {
        ProviderKind::Bedrock { .. } => {
            let (Some(id), Some(key)) = (
                values.first().cloned().flatten(),
                values.get(1).cloned().flatten(),
            ) else {
                return fail(
                    diags,
                    "",
                    "AWS credentials need an access key id and a secret access key".into(),
                );
            };
            Some(Credential::Aws(sluice_llm::bedrock::sigv4::Credentials {
                access_key_id: id,
                secret_access_key: Secret::new(key),
                session_token: values.get(2).cloned().flatten().map(Secret::new),
            }))
        }
        ProviderKind::Vertex { .. } => {
            let text = values.into_iter().next().flatten().unwrap_or_default();
            if let Err(e) = check_service_account(&text) {
                return fail(diags, "", format!("not a usable service-account key: {e}"));
            }
            Some(Credential::ServiceAccount(Secret::new(text)))
        }
        _ => match values.into_iter().next().flatten() {
            Some(v) if !v.is_empty() => Some(Credential::ApiKey(Secret::new(v))),
            _ => fail(diags, "", "the credential is empty".into()),
        },
    }
}

/// `KEY=value` lines (`AWS_ACCESS_KEY_ID=…`) or the three values on separate lines.
fn aws_file(text: &str) -> Vec<Option<String>> {
    let mut out = vec![None, None, None];
    let plain: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    for (i, line) in plain.iter().enumerate() {
        match line.split_once('=') {
            Some((k, v)) if k.ends_with("ACCESS_KEY_ID") => out[0] = Some(v.trim().to_string()),
            Some((k, v)) if k.ends_with("SECRET_ACCESS_KEY") => out[1] = Some(v.trim().to_string()),
            Some((k, v)) if k.ends_with("SESSION_TOKEN") => out[2] = Some(v.trim().to_string()),
            _ if i < 3 => out[i] = Some(line.to_string()),
            _ => {}
        }
    }
    out
}

/// A Google service-account key must parse and hold a usable private key; the message never
/// contains the key.
fn check_service_account(text: &str) -> Result<(), String> {
    let sa = sluice_llm::gemini::vertex_auth::ServiceAccount::from_json(text)
        .map_err(|e| e.to_string())?;
    // Signing once proves the key is usable now rather than on the first request.
    sluice_llm::gemini::vertex_auth::jwt_assertion(&sa, "", 0)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn policy(idx: &Index<'_>, p: &Object<AiPolicySpec>, cat: &mut AiCatalog, diags: &mut Diagnostics) {
    let spec = &p.spec;
    let route_settings = AiRouteSettings {
        allowed_regions: spec
            .allowed_regions
            .as_ref()
            .map(|l| l.iter().map(|r| Arc::from(r.as_str())).collect()),
        failover: failover(p, spec.failover.as_ref(), diags),
    };
    if spec.target_refs.is_empty() {
        diags.error(p.error("spec.targetRefs", "at least one target is required"));
    }
    for (i, t) in spec.target_refs.iter().enumerate() {
        let field = format!("spec.targetRefs[{i}]");
        if t.group != GATEWAY_GROUP || !matches!(t.kind.as_str(), "Gateway" | "HTTPRoute") {
            diags.error(p.error(
                format!("{field}.kind"),
                format!(
                    "an AIPolicy targets a {GATEWAY_GROUP} Gateway or HTTPRoute, not {}/{}",
                    t.group, t.kind
                ),
            ));
            continue;
        }
        let key = (p.namespace().to_string(), t.name.clone());
        if t.kind == "Gateway" {
            if !idx
                .set
                .gateways
                .iter()
                .any(|g| g.namespace() == key.0 && g.name() == key.1)
            {
                diags.warn(p.error(
                    &field,
                    format!(
                        "Gateway {}/{} not found; the policy applies to nothing",
                        key.0, key.1
                    ),
                ));
            }
            let mut settings = AiListener {
                max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
                aliases: spec.model_aliases.clone().into_iter().collect(),
                prices: HashMap::new(),
                route: route_settings.clone(),
            };
            if let Some(n) = spec.max_request_bytes {
                match usize::try_from(n) {
                    Ok(n) if n > 0 => settings.max_request_bytes = n,
                    _ => diags.error(
                        p.error("spec.maxRequestBytes", "must be a positive number of bytes"),
                    ),
                }
            }
            for (j, price) in spec.prices.iter().enumerate() {
                let values = [
                    Some(price.input),
                    Some(price.output),
                    price.cached_input,
                    price.cache_creation,
                ];
                if values.iter().flatten().any(|v| !v.is_finite() || *v < 0.0) {
                    diags.error(p.error(
                        format!("spec.prices[{j}]"),
                        "prices must be finite and not negative",
                    ));
                }
                settings.prices.insert(
                    price.model.clone(),
                    Price {
                        input: price.input,
                        output: price.output,
                        cached_input: price.cached_input.unwrap_or(price.input),
                        cache_creation: price.cache_creation.unwrap_or(price.input),
                    },
                );
            }
            if cat
                .gateways
                .insert(key.clone(), Arc::new(settings))
                .is_some()
            {
                diags.error(p.error(
                    &field,
                    format!(
                        "Gateway {}/{} already has an AIPolicy; merge them into one",
                        key.0, key.1
                    ),
                ));
            }
        } else {
            for (name, set) in [
                ("maxRequestBytes", spec.max_request_bytes.is_some()),
                ("modelAliases", !spec.model_aliases.is_empty()),
                ("prices", !spec.prices.is_empty()),
            ] {
                if set {
                    diags.error(p.error(format!("spec.{name}"), "applies only to a policy that targets a Gateway (it is needed before routing)"));
                }
            }
            if !idx
                .set
                .http_routes
                .iter()
                .any(|r| r.namespace() == key.0 && r.name() == key.1)
            {
                diags.warn(p.error(
                    &field,
                    format!(
                        "HTTPRoute {}/{} not found; the policy applies to nothing",
                        key.0, key.1
                    ),
                ));
            }
            let overrides = AiRouteOverrides {
                allowed_regions: route_settings.allowed_regions.clone(),
                failover: spec.failover.as_ref().map(|_| route_settings.failover),
            };
            if cat
                .routes
                .insert(key.clone(), Arc::new(overrides))
                .is_some()
            {
                diags.error(p.error(
                    &field,
                    format!(
                        "HTTPRoute {}/{} already has an AIPolicy; merge them into one",
                        key.0, key.1
                    ),
                ));
            }
        }
    }
}

fn failover(
    p: &Object<AiPolicySpec>,
    f: Option<&FailoverSpec>,
    diags: &mut Diagnostics,
) -> Failover {
    let mut out = Failover::default();
    let Some(f) = f else { return out };
    let mut dur = |name: &str, v: &Option<String>, default: Duration| match v
        .as_deref()
        .map(parse_duration)
    {
        None => default,
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            diags.error(p.error(format!("spec.failover.{name}"), e));
            default
        }
    };
    out.max_retry_after = dur("maxRetryAfter", &f.max_retry_after, out.max_retry_after);
    out.ejection_time = dur("ejectionTime", &f.ejection_time, out.ejection_time);
    if f.max_attempts == Some(0) {
        diags.error(p.error("spec.failover.maxAttempts", "must be at least 1"));
    }
    out.max_attempts = f.max_attempts;
    if let Some(n) = f.consecutive_failures {
        if n == 0 {
            diags.error(p.error("spec.failover.consecutiveFailures", "must be at least 1"));
        }
        out.consecutive_failures = n.max(1);
    }
    out
}
