//! `AccessPolicy` (sluice.dev/v1alpha1): authentication and authorization for the routes of a
//! Gateway or of one HTTPRoute. A route's policy replaces its Gateway's (the more specific wins).
//!
//! ```yaml
//! spec:
//!   targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: ai}]
//!   apiKeys:
//!     keys:
//!     - {id: ci, tenant: team-a, secretRef: {name: api-keys, key: ci}, models: ["gpt-4o*"]}
//!     managed: true                 # also keys created through the admin API
//!   jwt:
//!     providers:
//!     - {name: corp, issuer: https://idp.example, audiences: [sluice], jwks: {url: https://idp.example/jwks}}
//!   mtls: {userFrom: SubjectAltName}
//!   rules:
//!   - {name: team-a-gpt, action: Allow, tenants: [team-a], models: ["gpt-*"]}
//!   identityHeaders: {tenant: x-tenant-id}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ai::{PolicyTargetRef, SecretKeyRef};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccessPolicySpec {
    pub target_refs: Vec<PolicyTargetRef>,
    #[serde(default)]
    pub api_keys: Option<ApiKeysSpec>,
    #[serde(default)]
    pub jwt: Option<JwtSpec>,
    #[serde(default)]
    pub mtls: Option<MtlsSpec>,
    /// Allow and deny rules. Absent: every authenticated caller may proceed. Present (even
    /// empty): Deny rules win, and a request no Allow rule matches is denied.
    #[serde(default)]
    pub rules: Option<Vec<RuleSpec>>,
    #[serde(default)]
    pub identity_headers: Option<IdentityHeadersSpec>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiKeysSpec {
    #[serde(default)]
    pub keys: Vec<ApiKeySpec>,
    /// Also accept keys created, rotated and revoked through the admin API.
    #[serde(default)]
    pub managed: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiKeySpec {
    pub id: String,
    /// The key text, in a Secret (only its SHA-256 is kept in memory).
    #[serde(default)]
    pub secret_ref: Option<SecretKeyRef>,
    /// Or only the key's SHA-256, as `sha256:<64 hex digits>`.
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Model globs this key may use; none = any (rules still apply).
    #[serde(default)]
    pub models: Vec<String>,
    /// RFC 3339 instant after which the key is refused.
    #[serde(default)]
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtSpec {
    pub providers: Vec<JwtProviderSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtProviderSpec {
    pub name: String,
    /// Required `iss`. With several providers, the token's `iss` picks the provider.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values (any one); none = `aud` not checked.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Signature algorithms accepted. Default RS256, ES256, EdDSA. `none` and HMAC never are.
    #[serde(default)]
    pub algorithms: Vec<String>,
    pub jwks: JwksSpec,
    /// Tolerance on `exp` and `nbf`. Default `60s`, at most `5m`.
    #[serde(default)]
    pub clock_skew: Option<String>,
    /// Refuse tokens without `exp`. Default true.
    #[serde(default)]
    pub require_expiry: Option<bool>,
    #[serde(default)]
    pub claims: Option<ClaimsSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwksSpec {
    /// A JWKS document on disk, read when configuration loads.
    #[serde(default)]
    pub file: Option<String>,
    /// An HTTPS (or loopback HTTP) URL, fetched and refreshed.
    #[serde(default)]
    pub url: Option<String>,
    /// The JWKS document itself.
    #[serde(default)]
    pub inline: Option<String>,
    /// How often a URL is refetched. Default `5m`. An unknown `kid` refetches early (at most
    /// once per 10 s).
    #[serde(default)]
    pub refresh_interval: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClaimsSpec {
    /// Claim naming the tenant (a dotted path reaches into objects). None by default.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Claim naming the user. Default `sub`.
    #[serde(default)]
    pub user: Option<String>,
    /// Claim listing groups (array, or space-separated string). None by default.
    #[serde(default)]
    pub groups: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MtlsSpec {
    /// `SubjectAltName` (default: first URI, DNS or email SAN, else the CN) or `SubjectCommonName`.
    #[serde(default)]
    pub user_from: Option<String>,
    /// Use the subject's Organization (O) as the tenant.
    #[serde(default)]
    pub tenant_from_organization: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleSpec {
    pub name: String,
    /// `Allow` or `Deny`.
    pub action: String,
    /// `APIKey`, `JWT`, `MTLS`.
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub tenants: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// API key ids.
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub key_labels: BTreeMap<String, String>,
    /// Claim (or dotted path) → accepted values.
    #[serde(default)]
    pub claims: BTreeMap<String, Vec<String>>,
    /// Model globs.
    #[serde(default)]
    pub models: Vec<String>,
    /// `chat`, `text_completion`, `embeddings`, `models`, `count_tokens`.
    #[serde(default)]
    pub operations: Vec<String>,
    /// HTTPRoutes as `namespace/name` (or `name` in the policy's namespace).
    #[serde(default)]
    pub routes: Vec<String>,
    /// A CEL expression over `identity`, `request`, `model`, `operation`, `route`.
    #[serde(default)]
    pub when: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IdentityHeadersSpec {
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub groups: Option<String>,
}
