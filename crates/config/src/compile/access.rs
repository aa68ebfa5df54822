//! `AccessPolicy` objects to compiled [`AccessPolicy`]s, gathered per Gateway and per HTTPRoute.
//! Key texts from Secrets become digests here and go no further; JWKS files and inline sets
//! are parsed; CEL conditions are compiled, so every mistake is a configuration error.

use std::sync::Arc;
use std::time::Duration;

use sluice_policy::auth::access::{
    key_identity, ApiKeys, CertName, ClaimMapping, IdentityHeaders, JwksSource, JwtProvider,
    MtlsIdentity,
};
use sluice_policy::auth::apikey::{KeyDigest, KeyTable};
use sluice_policy::auth::jwks::JwksCache;
use sluice_policy::auth::jwt::{Algorithm, JwkSet, Validation};
use sluice_policy::auth::rules::{Action, Rule, EXPRESSION_VARIABLES};
use sluice_policy::auth::{AccessPolicy, Method};
use sluice_policy::expr::Expression;

use super::backends::secret_data;
use super::index::Index;
use super::targets::{PolicyKind, PolicyTargets};
use crate::duration::parse_duration;
use crate::error::Diagnostics;
use crate::objects::access::{
    AccessPolicySpec, ApiKeysSpec, IdentityHeadersSpec, JwtProviderSpec, MtlsSpec, RuleSpec,
};
use crate::objects::Object;

const DEFAULT_ALGORITHMS: &[Algorithm] = &[Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];
const DEFAULT_SKEW: Duration = Duration::from_secs(60);
const MAX_SKEW: Duration = Duration::from_secs(300);
const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(300);
const OPERATIONS: &[&str] = &[
    "chat",
    "text_completion",
    "embeddings",
    "models",
    "count_tokens",
];

/// Every AccessPolicy of a configuration, by what it targets.
pub(crate) type AccessCatalog = PolicyTargets<AccessPolicy>;

const KIND: PolicyKind = PolicyKind {
    named: "an AccessPolicy",
    idle: "protects nothing",
    ai_backends: false,
};

pub(crate) fn build(idx: &Index<'_>, diags: &mut Diagnostics) -> AccessCatalog {
    let mut cat = AccessCatalog::default();
    for p in &idx.set.access_policies {
        let errors_before = diags.errors.len();
        let compiled = policy(idx, p, diags);
        if diags.errors.len() != errors_before {
            continue;
        }
        cat.attach(
            idx,
            p,
            &p.spec.target_refs,
            &Arc::new(compiled),
            &KIND,
            diags,
        );
    }
    cat
}

fn policy(idx: &Index<'_>, p: &Object<AccessPolicySpec>, diags: &mut Diagnostics) -> AccessPolicy {
    let spec = &p.spec;
    if spec.api_keys.is_none() && spec.jwt.is_none() && spec.mtls.is_none() {
        diags.error(p.error(
            "spec",
            "names no authentication method: set apiKeys, jwt or mtls",
        ));
    }
    let api_keys = spec.api_keys.as_ref().map(|k| api_keys(idx, p, k, diags));
    let jwt = spec.jwt.as_ref().map_or_else(Vec::new, |j| {
        if j.providers.is_empty() {
            diags.error(p.error("spec.jwt.providers", "at least one provider is required"));
        }
        let mut names: Vec<&str> = Vec::new();
        j.providers
            .iter()
            .enumerate()
            .filter_map(|(i, prov)| {
                let field = format!("spec.jwt.providers[{i}]");
                if names.contains(&prov.name.as_str()) {
                    diags.error(p.error(format!("{field}.name"), "duplicate provider name"));
                }
                names.push(&prov.name);
                jwt_provider(p, prov, &field, j.providers.len(), diags).map(Arc::new)
            })
            .collect()
    });
    let mtls = spec.mtls.as_ref().and_then(|m| mtls(p, m, diags));
    let rules = spec.rules.as_ref().map(|rules| {
        let mut names: Vec<&str> = Vec::new();
        rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                if names.contains(&r.name.as_str()) {
                    diags.error(p.error(format!("spec.rules[{i}].name"), "duplicate rule name"));
                }
                names.push(&r.name);
                rule(p, r, &format!("spec.rules[{i}]"), diags)
            })
            .collect()
    });
    AccessPolicy {
        name: Arc::from(format!("{}/{}", p.namespace(), p.name())),
        api_keys,
        jwt,
        mtls,
        rules,
        identity_headers: identity_headers(p, spec.identity_headers.as_ref(), diags),
    }
}

fn api_keys(
    idx: &Index<'_>,
    p: &Object<AccessPolicySpec>,
    spec: &ApiKeysSpec,
    diags: &mut Diagnostics,
) -> ApiKeys {
    let mut table = KeyTable::new();
    let mut ids: Vec<&str> = Vec::new();
    if spec.keys.is_empty() && !spec.managed {
        diags.error(p.error(
            "spec.apiKeys",
            "lists no keys and does not accept managed keys (set keys or managed: true)",
        ));
    }
    for (i, k) in spec.keys.iter().enumerate() {
        let field = format!("spec.apiKeys.keys[{i}]");
        if k.id.is_empty() {
            diags.error(p.error(format!("{field}.id"), "must not be empty"));
            continue;
        }
        if ids.contains(&k.id.as_str()) {
            diags.error(p.error(
                format!("{field}.id"),
                format!("duplicate key id {:?}", k.id),
            ));
            continue;
        }
        ids.push(&k.id);
        let digest = match (&k.secret_ref, &k.digest) {
            (Some(r), None) => {
                let ns = r.namespace.as_deref().unwrap_or(p.namespace());
                let secret_field = format!("{field}.secretRef");
                if !idx.reference_allowed("AccessPolicy", p.namespace(), "", "Secret", ns, &r.name)
                {
                    diags.error(p.error(secret_field, format!("reference to Secret {ns}/{} is not permitted by any ReferenceGrant in namespace {ns}", r.name)));
                    continue;
                }
                let Some(secret) = idx.secret(ns, &r.name) else {
                    diags.error(p.error(secret_field, format!("Secret {ns}/{} not found", r.name)));
                    continue;
                };
                let data = match secret_data(secret) {
                    Ok(d) => d,
                    Err(e) => {
                        diags.error(p.error(secret_field, format!("Secret {ns}/{}: {e}", r.name)));
                        continue;
                    }
                };
                let name = r.key.as_deref().unwrap_or("apiKey");
                let Some(text) = data.get(name) else {
                    diags.error(p.error(
                        format!("{secret_field}.key"),
                        format!("Secret {ns}/{} has no key {name:?}", r.name),
                    ));
                    continue;
                };
                let text = String::from_utf8_lossy(text);
                let text = text.trim();
                if text.len() < 16 {
                    diags.error(p.error(
                        secret_field,
                        format!("the key in Secret {ns}/{} is shorter than 16 characters; use a random key (`sluice keys generate`-style: 32 random bytes)", r.name),
                    ));
                    continue;
                }
                KeyDigest::of(text)
            }
            (None, Some(d)) => {
                let hex = d.strip_prefix("sha256:").unwrap_or("");
                match KeyDigest::from_hex(hex) {
                    Ok(d) => d,
                    Err(_) => {
                        diags.error(p.error(
                            format!("{field}.digest"),
                            "must be sha256: followed by 64 hexadecimal digits",
                        ));
                        continue;
                    }
                }
            }
            _ => {
                diags.error(p.error(field, "exactly one of secretRef and digest must be set"));
                continue;
            }
        };
        let expires_at = match k
            .expires_at
            .as_deref()
            .map(sluice_policy::time::parse_rfc3339)
        {
            None => None,
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                diags.error(p.error(format!("{field}.expiresAt"), e));
                continue;
            }
        };
        let identity = key_identity(
            &k.id,
            k.tenant.as_deref(),
            k.user.as_deref(),
            k.labels.clone(),
            k.models.clone(),
            expires_at,
            "config",
        );
        if table.insert(digest, identity).is_err() {
            diags.error(p.error(
                format!("{field}.secretRef"),
                "the same key text is already declared under another id",
            ));
        }
    }
    ApiKeys {
        table,
        managed: spec.managed,
    }
}

fn jwt_provider(
    p: &Object<AccessPolicySpec>,
    spec: &JwtProviderSpec,
    field: &str,
    providers: usize,
    diags: &mut Diagnostics,
) -> Option<JwtProvider> {
    let mut ok = true;
    let mut fail = |diags: &mut Diagnostics, at: &str, msg: String| {
        diags.error(p.error(format!("{field}.{at}"), msg));
        ok = false;
    };
    if providers > 1 && spec.issuer.is_none() {
        fail(
            diags,
            "issuer",
            "is required when there are several providers (the token's iss picks one)".into(),
        );
    }
    let algorithms: Vec<Algorithm> = if spec.algorithms.is_empty() {
        DEFAULT_ALGORITHMS.to_vec()
    } else {
        let mut out = Vec::new();
        for (i, a) in spec.algorithms.iter().enumerate() {
            match a.parse::<Algorithm>() {
                Ok(a) => out.push(a),
                Err(e) => fail(diags, &format!("algorithms[{i}]"), e.to_string()),
            }
        }
        out
    };
    let clock_skew = match spec.clock_skew.as_deref().map(parse_duration) {
        None => DEFAULT_SKEW,
        Some(Ok(d)) if d <= MAX_SKEW => d,
        Some(Ok(_)) => {
            fail(diags, "clockSkew", "must be at most 5m".into());
            DEFAULT_SKEW
        }
        Some(Err(e)) => {
            fail(diags, "clockSkew", e);
            DEFAULT_SKEW
        }
    };
    let j = &spec.jwks;
    let given = [j.file.is_some(), j.url.is_some(), j.inline.is_some()];
    let (source, keys) = if given.iter().filter(|g| **g).count() != 1 {
        fail(
            diags,
            "jwks",
            "exactly one of file, url and inline must be set".into(),
        );
        return None;
    } else if let Some(path) = &j.file {
        match std::fs::read(path) {
            Ok(bytes) => match JwkSet::parse(&bytes) {
                Ok(set) => (JwksSource::File(path.into()), JwksCache::new(set)),
                Err(e) => {
                    fail(diags, "jwks.file", format!("{path}: {e}"));
                    return None;
                }
            },
            Err(e) => {
                fail(diags, "jwks.file", format!("cannot read {path}: {e}"));
                return None;
            }
        }
    } else if let Some(text) = &j.inline {
        match JwkSet::parse(text.as_bytes()) {
            Ok(set) => (JwksSource::Inline, JwksCache::new(set)),
            Err(e) => {
                fail(diags, "jwks.inline", e.to_string());
                return None;
            }
        }
    } else {
        let url = j.url.clone().unwrap_or_default();
        if let Err(e) = check_jwks_url(&url) {
            fail(diags, "jwks.url", e);
        }
        let refresh = match j.refresh_interval.as_deref().map(parse_duration) {
            None => DEFAULT_JWKS_REFRESH,
            Some(Ok(d)) if d >= Duration::from_secs(10) => d,
            Some(Ok(_)) => {
                fail(diags, "jwks.refreshInterval", "must be at least 10s".into());
                DEFAULT_JWKS_REFRESH
            }
            Some(Err(e)) => {
                fail(diags, "jwks.refreshInterval", e);
                DEFAULT_JWKS_REFRESH
            }
        };
        (JwksSource::Url { url, refresh }, JwksCache::empty())
    };
    if j.refresh_interval.is_some() && j.url.is_none() {
        fail(
            diags,
            "jwks.refreshInterval",
            "applies only to a url".into(),
        );
    }
    let claims = spec.claims.clone().unwrap_or_default();
    if !ok {
        return None;
    }
    Some(JwtProvider {
        name: Arc::from(spec.name.as_str()),
        issuer: spec.issuer.clone(),
        validation: Validation {
            algorithms,
            issuer: spec.issuer.clone(),
            audiences: spec.audiences.clone(),
            clock_skew,
            require_exp: spec.require_expiry.unwrap_or(true),
        },
        source,
        keys,
        claims: ClaimMapping {
            tenant: claims.tenant,
            user: claims.user.unwrap_or_else(|| "sub".to_string()),
            groups: claims.groups,
        },
    })
}

/// HTTPS, or plain HTTP only to a loopback address (a local identity provider in development).
fn check_jwks_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(()),
        Some("http")
            if host == "localhost"
                || host
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback()) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "{url:?} must be an https:// URL (plain http only to a loopback address)"
        )),
    }
}

fn mtls(
    p: &Object<AccessPolicySpec>,
    spec: &MtlsSpec,
    diags: &mut Diagnostics,
) -> Option<MtlsIdentity> {
    let user_from = match spec.user_from.as_deref() {
        None | Some("SubjectAltName") => CertName::SubjectAltName,
        Some("SubjectCommonName") => CertName::SubjectCommonName,
        Some(other) => {
            diags.error(p.error(
                "spec.mtls.userFrom",
                format!("unknown value {other:?}: use SubjectAltName or SubjectCommonName"),
            ));
            return None;
        }
    };
    Some(MtlsIdentity {
        user_from,
        tenant_from_organization: spec.tenant_from_organization,
    })
}

fn rule(
    p: &Object<AccessPolicySpec>,
    spec: &RuleSpec,
    field: &str,
    diags: &mut Diagnostics,
) -> Option<Rule> {
    let action = match spec.action.as_str() {
        "Allow" => Action::Allow,
        "Deny" => Action::Deny,
        other => {
            diags.error(p.error(
                format!("{field}.action"),
                format!("unknown action {other:?}: use Allow or Deny"),
            ));
            return None;
        }
    };
    let mut methods = Vec::new();
    for (i, m) in spec.methods.iter().enumerate() {
        match Method::parse(m) {
            Some(m) => methods.push(m),
            None => diags.error(p.error(
                format!("{field}.methods[{i}]"),
                format!("unknown method {m:?}: use APIKey, JWT or MTLS"),
            )),
        }
    }
    for (i, op) in spec.operations.iter().enumerate() {
        if !OPERATIONS.contains(&op.as_str()) {
            diags.error(p.error(
                format!("{field}.operations[{i}]"),
                format!(
                    "unknown operation {op:?}: use one of {}",
                    OPERATIONS.join(", ")
                ),
            ));
        }
    }
    let routes = spec
        .routes
        .iter()
        .map(|r| {
            if r.contains('/') {
                r.clone()
            } else {
                format!("{}/{r}", p.namespace())
            }
        })
        .collect();
    let when = match spec.when.as_deref() {
        None => None,
        Some(src) => match Expression::compile(src, EXPRESSION_VARIABLES) {
            Ok(e) => Some(e),
            Err(e) => {
                diags.error(p.error(format!("{field}.when"), e));
                return None;
            }
        },
    };
    Some(Rule {
        name: Arc::from(spec.name.as_str()),
        action,
        methods,
        tenants: spec.tenants.clone(),
        users: spec.users.clone(),
        groups: spec.groups.clone(),
        keys: spec.keys.clone(),
        key_labels: spec.key_labels.clone(),
        claims: spec.claims.clone(),
        models: spec.models.clone(),
        operations: spec.operations.clone(),
        routes,
        when,
    })
}

fn identity_headers(
    p: &Object<AccessPolicySpec>,
    spec: Option<&IdentityHeadersSpec>,
    diags: &mut Diagnostics,
) -> IdentityHeaders {
    let Some(spec) = spec else {
        return IdentityHeaders::default();
    };
    let mut name = |at: &str, v: &Option<String>| {
        let v = v.as_deref()?;
        let lower = v.to_ascii_lowercase();
        let reserved = [
            "authorization",
            "x-api-key",
            "host",
            "content-length",
            "x-gateway-model-name",
        ];
        match http::HeaderName::from_bytes(lower.as_bytes()) {
            Ok(_) if reserved.contains(&lower.as_str()) => {
                diags.error(p.error(
                    format!("spec.identityHeaders.{at}"),
                    format!("{v:?} is reserved and cannot carry an identity"),
                ));
                None
            }
            Ok(h) => Some(h),
            Err(_) => {
                diags.error(p.error(
                    format!("spec.identityHeaders.{at}"),
                    format!("{v:?} is not a valid header name"),
                ));
                None
            }
        }
    };
    IdentityHeaders {
        tenant: name("tenant", &spec.tenant),
        user: name("user", &spec.user),
        key_id: name("keyId", &spec.key_id),
        groups: name("groups", &spec.groups),
    }
}
