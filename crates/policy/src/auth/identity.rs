//! Who is calling: the identity an authentication method establishes, which authorization rules,
//! rate limits, budgets, cache partitions and logs all key on.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::jwt::Claims;

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    ApiKey,
    Jwt,
    Mtls,
}

impl Method {
    /// The name rules and logs use (`APIKey`, `JWT`, `MTLS`).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::ApiKey => "APIKey",
            Method::Jwt => "JWT",
            Method::Mtls => "MTLS",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "APIKey" => Some(Method::ApiKey),
            "JWT" => Some(Method::Jwt),
            "MTLS" => Some(Method::Mtls),
            _ => None,
        }
    }
}

/// An authenticated caller. Cheap to clone: everything shared is behind `Arc`.
#[derive(Debug, Clone)]
pub struct Identity {
    pub method: Method,
    /// The API key's id (never the key), the JWT provider's name, or `mtls`.
    pub issuer: Arc<str>,
    /// API keys: the key's id. JWT and mTLS: the user.
    pub key_id: Option<Arc<str>>,
    pub tenant: Option<Arc<str>>,
    pub user: Option<Arc<str>>,
    pub groups: Arc<[Arc<str>]>,
    /// An API key's labels.
    pub labels: Arc<BTreeMap<String, String>>,
    /// Model globs the credential itself is limited to (an API key's `models`); empty: any.
    pub models: Arc<[String]>,
    /// A JWT's verified claims (for rules on claims and CEL); empty for other methods.
    pub claims: Arc<Claims>,
}

impl Identity {
    /// An identity with only a method and issuer set; the rest filled by the method.
    pub fn new(method: Method, issuer: Arc<str>) -> Identity {
        Identity {
            method,
            issuer,
            key_id: None,
            tenant: None,
            user: None,
            groups: Arc::from(Vec::new()),
            labels: Arc::default(),
            models: Arc::from(Vec::new()),
            claims: Arc::default(),
        }
    }

    /// Whether the credential's own model list (if any) allows `model`.
    pub fn credential_allows_model(&self, model: Option<&str>) -> bool {
        if self.models.is_empty() {
            return true;
        }
        model.is_some_and(|m| self.models.iter().any(|g| sluice_llm::glob_match(g, m)))
    }

    /// The CEL view of this identity: `identity.method`, `.tenant`, `.user`, `.groups`,
    /// `.keyId`, `.labels`, `.claims`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "method": self.method.as_str(),
            "issuer": &*self.issuer,
            "keyId": self.key_id.as_deref(),
            "tenant": self.tenant.as_deref(),
            "user": self.user.as_deref(),
            "groups": self.groups.iter().map(|g| &**g).collect::<Vec<_>>(),
            "labels": &*self.labels,
            "claims": &self.claims.0,
        })
    }
}
