//! A compiled access policy: which authentication methods it accepts, how each maps to an
//! [`Identity`], and the authorization rules. Built once per configuration; the request path
//! only reads it (the one exception is a JWKS refetch for an unknown signing key, which the
//! caller performs and then retries).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

use super::apikey::KeyTable;
use super::credential::{self, Credential, CredentialError};
use super::identity::{Identity, Method};
use super::jwks::JwksCache;
use super::jwt::{Claims, JwtError, Validation};
use super::rules::{self, Denial, Rule};

pub struct AccessPolicy {
    /// `namespace/name` of the AccessPolicy.
    pub name: Arc<str>,
    pub api_keys: Option<ApiKeys>,
    pub jwt: Vec<Arc<JwtProvider>>,
    pub mtls: Option<MtlsIdentity>,
    /// `None`: authentication only (any authenticated caller may proceed).
    pub rules: Option<Vec<Rule>>,
    pub identity_headers: IdentityHeaders,
}

impl std::fmt::Debug for AccessPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key table: digests are not secrets, but nothing gains from printing them.
        f.debug_struct("AccessPolicy")
            .field("name", &self.name)
            .field("api_keys", &self.api_keys.as_ref().map(|k| k.table.len()))
            .field("jwt", &self.jwt.iter().map(|p| &p.name).collect::<Vec<_>>())
            .field("mtls", &self.mtls.is_some())
            .field("rules", &self.rules.as_ref().map(Vec::len))
            .finish()
    }
}

/// Keys declared in configuration (held as digests), and whether keys managed at run time
/// through the admin API are accepted too.
pub struct ApiKeys {
    pub table: KeyTable<Arc<KeyIdentity>>,
    pub managed: bool,
}

/// What an API key stands for.
#[derive(Debug)]
pub struct KeyIdentity {
    pub identity: Identity,
    /// Unix seconds after which the key is refused.
    pub expires_at: Option<u64>,
}

/// Where a provider's signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// Read when configuration loads (and on every reload).
    File(PathBuf),
    /// Given in the configuration.
    Inline,
    /// Fetched, refreshed every `refresh`, and refetched early on an unknown `kid`.
    Url { url: String, refresh: Duration },
}

pub struct JwtProvider {
    pub name: Arc<str>,
    pub issuer: Option<String>,
    pub validation: Validation,
    pub source: JwksSource,
    pub keys: JwksCache,
    pub claims: ClaimMapping,
}

impl std::fmt::Debug for JwtProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtProvider")
            .field("name", &self.name)
            .field("source", &self.source)
            .finish()
    }
}

/// Which claims name the tenant, the user and the groups.
#[derive(Debug, Clone)]
pub struct ClaimMapping {
    pub tenant: Option<String>,
    pub user: String,
    pub groups: Option<String>,
}

/// How a verified client certificate names the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MtlsIdentity {
    pub user_from: CertName,
    pub tenant_from_organization: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertName {
    /// The first URI SAN (a SPIFFE ID), else DNS, else email; the subject CN when none.
    SubjectAltName,
    SubjectCommonName,
}

/// The facts of a client certificate the TLS handshake verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCert {
    pub common_name: Option<String>,
    pub organization: Option<String>,
    pub uri_sans: Vec<String>,
    pub dns_sans: Vec<String>,
    pub email_sans: Vec<String>,
}

/// Headers the gateway sets on the upstream request from the identity. They are removed from
/// every incoming request first, so a client can never forge them.
#[derive(Debug, Clone, Default)]
pub struct IdentityHeaders {
    pub tenant: Option<http::HeaderName>,
    pub user: Option<http::HeaderName>,
    pub key_id: Option<http::HeaderName>,
    pub groups: Option<http::HeaderName>,
}

impl IdentityHeaders {
    pub fn names(&self) -> impl Iterator<Item = &http::HeaderName> {
        [&self.tenant, &self.user, &self.key_id, &self.groups]
            .into_iter()
            .flatten()
    }

    /// Replaces any client-sent identity headers with the identity's values.
    pub fn apply(&self, headers: &mut HeaderMap, id: &Identity) {
        for name in self.names() {
            headers.remove(name);
        }
        let mut set = |name: &Option<http::HeaderName>, value: Option<&str>| {
            if let (Some(name), Some(value)) = (name, value) {
                if let Ok(v) = http::HeaderValue::from_str(value) {
                    headers.insert(name.clone(), v);
                }
            }
        };
        set(&self.tenant, id.tenant.as_deref());
        set(&self.user, id.user.as_deref());
        set(&self.key_id, id.key_id.as_deref());
        let groups = id.groups.join(",");
        set(
            &self.groups,
            (!groups.is_empty()).then_some(groups.as_str()),
        );
    }
}

/// Why authentication failed. Messages never contain the credential.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "missing credentials: send an API key (Authorization: Bearer or x-api-key) or a token"
    )]
    Missing,
    #[error("{0}")]
    Credential(#[from] CredentialError),
    #[error("invalid API key")]
    InvalidKey,
    #[error("API key expired")]
    ExpiredKey,
    #[error("invalid token: {error}")]
    Jwt { provider: Arc<str>, error: JwtError },
    /// The token names a signing key the provider's JWKS does not hold (yet): the caller may
    /// refetch the JWKS and authenticate again.
    #[error("invalid token: unknown signing key")]
    UnknownJwtKey(Arc<JwtProvider>),
    #[error("invalid token: not a JWT")]
    NotAJwt,
    #[error("invalid token: no configured issuer accepts it")]
    NoJwtProvider,
}

impl AuthError {
    /// A short machine-readable reason for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_credentials",
            AuthError::Credential(_) => "malformed_credentials",
            AuthError::InvalidKey => "invalid_api_key",
            AuthError::ExpiredKey => "expired_api_key",
            AuthError::Jwt { error, .. } => error.reason(),
            AuthError::UnknownJwtKey(_) => "unknown_signing_key",
            AuthError::NotAJwt => "malformed_token",
            AuthError::NoJwtProvider => "unknown_issuer",
        }
    }
}

/// What a request presents for authentication.
pub struct Presented<'a> {
    pub headers: &'a HeaderMap,
    pub peer: Option<&'a PeerCert>,
    pub now: SystemTime,
}

impl AccessPolicy {
    /// Establishes who is calling. Never falls back to anonymous: no credential is an error
    /// unless a verified client certificate stands in for one.
    pub fn authenticate(
        &self,
        p: &Presented<'_>,
        managed: &KeyTable<Arc<KeyIdentity>>,
    ) -> Result<Identity, AuthError> {
        if self.api_keys.is_none() && self.jwt.is_empty() {
            // Certificates only: request headers play no part.
            return self.by_certificate(p.peer);
        }
        match credential::presented(p.headers)? {
            Some(cred) => self.by_credential(cred, p.now, managed),
            None => self.by_certificate(p.peer),
        }
    }

    /// A verified client certificate stands in for a credential when the policy accepts mTLS.
    fn by_certificate(&self, peer: Option<&PeerCert>) -> Result<Identity, AuthError> {
        match (&self.mtls, peer) {
            (Some(m), Some(cert)) => Ok(m.identity(cert)),
            _ => Err(AuthError::Missing),
        }
    }

    fn by_credential(
        &self,
        cred: Credential<'_>,
        now: SystemTime,
        managed: &KeyTable<Arc<KeyIdentity>>,
    ) -> Result<Identity, AuthError> {
        let token = cred.token();
        if !self.jwt.is_empty() && looks_like_jwt(token) {
            return self.by_jwt(token, now);
        }
        let Some(keys) = &self.api_keys else {
            return Err(AuthError::NotAJwt);
        };
        let found = keys
            .table
            .find(token)
            .or_else(|| keys.managed.then(|| managed.find(token)).flatten())
            .ok_or(AuthError::InvalidKey)?;
        if let Some(exp) = found.expires_at {
            let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            if secs >= exp {
                return Err(AuthError::ExpiredKey);
            }
        }
        Ok(found.identity.clone())
    }

    fn by_jwt(&self, token: &str, now: SystemTime) -> Result<Identity, AuthError> {
        let provider = match self.jwt.as_slice() {
            [only] => only,
            many => {
                let iss = unverified_issuer(token);
                many.iter()
                    .find(|p| p.issuer.is_some() && p.issuer == iss)
                    .ok_or(AuthError::NoJwtProvider)?
            }
        };
        match provider.keys.verify(token, &provider.validation, now) {
            Ok(claims) => Ok(provider.identity(claims)),
            Err(JwtError::UnknownKey) => Err(AuthError::UnknownJwtKey(provider.clone())),
            Err(error) => Err(AuthError::Jwt {
                provider: provider.name.clone(),
                error,
            }),
        }
    }

    /// Decides whether `id` may make `req`.
    pub fn authorize(&self, id: &Identity, req: &rules::Request<'_>) -> Result<(), Denial> {
        rules::authorize(self.rules.as_deref(), id, req)
    }
}

impl JwtProvider {
    fn identity(&self, claims: Arc<Claims>) -> Identity {
        let mut id = Identity::new(Method::Jwt, self.name.clone());
        id.user = claims.string(&self.claims.user).map(Arc::from);
        id.tenant = self
            .claims
            .tenant
            .as_deref()
            .and_then(|c| claims.string(c))
            .map(Arc::from);
        if let Some(g) = &self.claims.groups {
            id.groups = claims.strings(g).into_iter().map(Arc::from).collect();
        }
        id.claims = claims;
        id
    }
}

impl MtlsIdentity {
    fn identity(&self, cert: &PeerCert) -> Identity {
        let mut id = Identity::new(Method::Mtls, Arc::from("mtls"));
        let san = cert
            .uri_sans
            .first()
            .or(cert.dns_sans.first())
            .or(cert.email_sans.first());
        let user = match self.user_from {
            CertName::SubjectAltName => san.or(cert.common_name.as_ref()),
            CertName::SubjectCommonName => cert.common_name.as_ref(),
        };
        id.user = user.map(|u| Arc::from(u.as_str()));
        if self.tenant_from_organization {
            id.tenant = cert.organization.as_deref().map(Arc::from);
        }
        id
    }
}

/// A compact JWS has three base64url segments; API keys never contain dots in that shape.
fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|&b| b == b'.').count() == 2
}

/// The `iss` of a token before verification, only to choose which provider verifies it.
fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine as _;
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}

/// Builds the identity of a configured or managed API key.
pub fn key_identity(
    id: &str,
    tenant: Option<&str>,
    user: Option<&str>,
    labels: BTreeMap<String, String>,
    models: Vec<String>,
    expires_at: Option<u64>,
    issuer: &str,
) -> Arc<KeyIdentity> {
    let mut identity = Identity::new(Method::ApiKey, Arc::from(issuer));
    identity.key_id = Some(Arc::from(id));
    identity.tenant = tenant.map(Arc::from);
    identity.user = user.map(Arc::from);
    identity.labels = Arc::new(labels);
    identity.models = Arc::from(models);
    Arc::new(KeyIdentity {
        identity,
        expires_at,
    })
}
