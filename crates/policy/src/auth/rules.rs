//! Authorization: ordered allow and deny rules over the caller's identity and what the request
//! asks for. Deny rules win; once any rule exists, a request no Allow rule matches is denied.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::identity::{Identity, Method};
use super::jwt::Claims;
use crate::expr::Expression;

/// The variables a rule's `when` expression may read.
pub const EXPRESSION_VARIABLES: &[&str] = &["identity", "request", "model", "operation", "route"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

/// One rule. Every condition that is set must hold (empty lists hold for everything); the
/// values of one list are alternatives.
#[derive(Debug)]
pub struct Rule {
    pub name: Arc<str>,
    pub action: Action,
    pub methods: Vec<Method>,
    pub tenants: Vec<String>,
    pub users: Vec<String>,
    pub groups: Vec<String>,
    pub keys: Vec<String>,
    pub key_labels: BTreeMap<String, String>,
    /// Claim name (or dotted path) → accepted values (any of them, against a string claim or
    /// any element of an array claim).
    pub claims: BTreeMap<String, Vec<String>>,
    /// Model globs.
    pub models: Vec<String>,
    /// Operation names (`chat`, `text_completion`, `embeddings`, `models`, `count_tokens`).
    pub operations: Vec<String>,
    /// `namespace/name` of HTTPRoutes.
    pub routes: Vec<String>,
    pub when: Option<Expression>,
}

/// What the request asks for, as authorization sees it.
pub struct Request<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub headers: &'a http::HeaderMap,
    /// The requested model (after aliases), for inference requests.
    pub model: Option<&'a str>,
    /// The operation's name, for inference requests.
    pub operation: Option<&'a str>,
    /// `namespace/name` of the matched HTTPRoute.
    pub route: &'a str,
}

/// Why a request was refused: the rule that denied it, or no rule allowing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The credential itself is limited to other models.
    CredentialModel,
    Rule(Arc<str>),
    NoAllowRule,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denial::CredentialModel => {
                f.write_str("this credential is not allowed to use the requested model")
            }
            Denial::Rule(name) => write!(f, "denied by rule {name:?}"),
            Denial::NoAllowRule => f.write_str("no rule allows this request"),
        }
    }
}

/// Decides one request. `rules` is `None` when the policy only authenticates.
pub fn authorize(rules: Option<&[Rule]>, id: &Identity, req: &Request<'_>) -> Result<(), Denial> {
    if !id.credential_allows_model(req.model) {
        return Err(Denial::CredentialModel);
    }
    let Some(rules) = rules else {
        return Ok(());
    };
    let mut vars = None; // the CEL view, built once and only if a rule needs it
    let mut allowed = false;
    for rule in rules {
        if rule.action == Action::Allow && allowed {
            continue; // already allowed: only a Deny can change the outcome
        }
        if rule.matches(id, req, &mut vars) {
            match rule.action {
                Action::Deny => return Err(Denial::Rule(rule.name.clone())),
                Action::Allow => allowed = true,
            }
        }
    }
    if allowed {
        Ok(())
    } else {
        Err(Denial::NoAllowRule)
    }
}

impl Rule {
    /// A rule with no condition (it matches every request); set the conditions it needs.
    pub fn new(name: &str, action: Action) -> Rule {
        Rule {
            name: Arc::from(name),
            action,
            methods: Vec::new(),
            tenants: Vec::new(),
            users: Vec::new(),
            groups: Vec::new(),
            keys: Vec::new(),
            key_labels: BTreeMap::new(),
            claims: BTreeMap::new(),
            models: Vec::new(),
            operations: Vec::new(),
            routes: Vec::new(),
            when: None,
        }
    }

    fn matches(
        &self,
        id: &Identity,
        req: &Request<'_>,
        vars: &mut Option<Vec<(&'static str, Value)>>,
    ) -> bool {
        let listed = |list: &[String], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|l| l == v))
        };
        if !(self.methods.is_empty() || self.methods.contains(&id.method))
            || !listed(&self.tenants, id.tenant.as_deref())
            || !listed(&self.users, id.user.as_deref())
            || !(id.method == Method::ApiKey || self.keys.is_empty())
            || !listed(&self.keys, id.key_id.as_deref())
            || !listed(&self.operations, req.operation)
            || !listed(&self.routes, Some(req.route))
        {
            return false;
        }
        if !self.groups.is_empty()
            && !id
                .groups
                .iter()
                .any(|g| self.groups.iter().any(|r| **r == **g))
        {
            return false;
        }
        if !self
            .key_labels
            .iter()
            .all(|(k, v)| id.labels.get(k) == Some(v))
        {
            return false;
        }
        if !self
            .claims
            .iter()
            .all(|(name, accepted)| claim_has_any(&id.claims, name, accepted))
        {
            return false;
        }
        if !self.models.is_empty()
            && !req
                .model
                .is_some_and(|m| self.models.iter().any(|g| sluice_llm::glob_match(g, m)))
        {
            return false;
        }
        match &self.when {
            None => true,
            Some(expr) => {
                let vars = vars.get_or_insert_with(|| expression_vars(id, req));
                match expr.eval_bool(vars) {
                    Ok(b) => b,
                    // An expression that cannot be evaluated never grants access, and a Deny
                    // rule whose condition is unknowable denies.
                    Err(e) => {
                        tracing::warn!(rule = %self.name, error = %e, "authorization expression failed");
                        self.action == Action::Deny
                    }
                }
            }
        }
    }
}

fn claim_has_any(claims: &Claims, name: &str, accepted: &[String]) -> bool {
    let hit = |v: &Value| match v {
        Value::String(s) => accepted.iter().any(|a| a == s),
        Value::Bool(b) => accepted
            .iter()
            .any(|a| a == if *b { "true" } else { "false" }),
        Value::Number(n) => accepted.iter().any(|a| *a == n.to_string()),
        _ => false,
    };
    match claims.get(name) {
        Some(Value::Array(items)) => items.iter().any(hit),
        Some(v) => hit(v),
        None => false,
    }
}

fn expression_vars(id: &Identity, req: &Request<'_>) -> Vec<(&'static str, Value)> {
    let mut headers = serde_json::Map::new();
    for (name, value) in req.headers {
        if is_credential_header(name.as_str()) {
            continue; // expressions never see credentials
        }
        if let Ok(v) = value.to_str() {
            headers
                .entry(name.as_str())
                .or_insert_with(|| Value::String(v.to_string()));
        }
    }
    vec![
        ("identity", id.to_json()),
        (
            "request",
            json!({"method": req.method, "host": req.host, "path": req.path, "headers": headers}),
        ),
        ("model", req.model.map_or(Value::Null, |m| json!(m))),
        ("operation", req.operation.map_or(Value::Null, |o| json!(o))),
        ("route", json!(req.route)),
    ]
}

/// Headers that carry credentials: never shown to expressions, logs or upstreams.
pub fn is_credential_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("authorization")
        || name.eq_ignore_ascii_case("x-api-key")
        || name.eq_ignore_ascii_case("proxy-authorization")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, action: Action) -> Rule {
        Rule::new(name, action)
    }

    fn key(tenant: &str) -> Identity {
        let mut id = Identity::new(Method::ApiKey, Arc::from("keys"));
        id.key_id = Some(Arc::from("k1"));
        id.tenant = Some(Arc::from(tenant));
        id.labels = Arc::new(BTreeMap::from([("env".to_string(), "prod".to_string())]));
        id
    }

    fn request<'a>(headers: &'a http::HeaderMap, model: &'a str, op: &'a str) -> Request<'a> {
        Request {
            method: "POST",
            host: "gw",
            path: "/v1/chat/completions",
            headers,
            model: Some(model),
            operation: Some(op),
            route: "default/llm",
        }
    }

    #[test]
    fn no_rules_allows_any_authenticated_identity() {
        let h = http::HeaderMap::new();
        assert_eq!(
            authorize(None, &key("a"), &request(&h, "m", "chat")),
            Ok(())
        );
    }

    #[test]
    fn default_is_deny_once_rules_exist() {
        let h = http::HeaderMap::new();
        let mut r = rule("team-a", Action::Allow);
        r.tenants = vec!["a".into()];
        r.models = vec!["gpt-4o*".into()];
        let rules = [r];
        assert_eq!(
            authorize(Some(&rules), &key("a"), &request(&h, "gpt-4o-mini", "chat")),
            Ok(())
        );
        assert_eq!(
            authorize(Some(&rules), &key("a"), &request(&h, "claude-3", "chat")),
            Err(Denial::NoAllowRule)
        );
        assert_eq!(
            authorize(Some(&rules), &key("b"), &request(&h, "gpt-4o", "chat")),
            Err(Denial::NoAllowRule)
        );
    }

    #[test]
    fn deny_wins_wherever_it_is() {
        let h = http::HeaderMap::new();
        let allow = rule("all", Action::Allow);
        let mut deny = rule("no-embeddings", Action::Deny);
        deny.operations = vec!["embeddings".into()];
        deny.key_labels = BTreeMap::from([("env".into(), "prod".into())]);
        let rules = [allow, deny];
        assert_eq!(
            authorize(Some(&rules), &key("a"), &request(&h, "m", "chat")),
            Ok(())
        );
        assert_eq!(
            authorize(Some(&rules), &key("a"), &request(&h, "m", "embeddings")),
            Err(Denial::Rule(Arc::from("no-embeddings")))
        );
    }

    #[test]
    fn credential_model_list_applies_before_rules() {
        let h = http::HeaderMap::new();
        let mut id = key("a");
        id.models = Arc::from(vec!["mock-*".to_string()]);
        assert_eq!(authorize(None, &id, &request(&h, "mock-1", "chat")), Ok(()));
        assert_eq!(
            authorize(None, &id, &request(&h, "gpt-4o", "chat")),
            Err(Denial::CredentialModel)
        );
    }

    #[test]
    fn claims_match_strings_arrays_and_paths() {
        let h = http::HeaderMap::new();
        let mut id = Identity::new(Method::Jwt, Arc::from("idp"));
        id.claims = Arc::new(Claims(
            json!({"scope": "read", "realm_access": {"roles": ["ai-user", "x"]}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ));
        let mut r = rule("roles", Action::Allow);
        r.claims = BTreeMap::from([("realm_access.roles".into(), vec!["ai-user".into()])]);
        let mut keys_only = rule("keys", Action::Allow);
        keys_only.keys = vec!["k1".into()];
        assert_eq!(
            authorize(Some(&[r]), &id, &request(&h, "m", "chat")),
            Ok(())
        );
        // A key-id condition never matches a JWT identity.
        assert_eq!(
            authorize(Some(&[keys_only]), &id, &request(&h, "m", "chat")),
            Err(Denial::NoAllowRule)
        );
    }

    #[test]
    fn expressions_see_identity_and_request_but_not_credentials() {
        let mut h = http::HeaderMap::new();
        h.insert("x-team", http::HeaderValue::from_static("blue"));
        h.insert(
            "authorization",
            http::HeaderValue::from_static("Bearer secret"),
        );
        let mut r = rule("cel", Action::Allow);
        r.when = Some(
            Expression::compile(
                "request.headers['x-team'] == 'blue' && identity.labels.env == 'prod' && !('authorization' in request.headers)",
                EXPRESSION_VARIABLES,
            )
            .expect("compiles"),
        );
        assert_eq!(
            authorize(Some(&[r]), &key("a"), &request(&h, "m", "chat")),
            Ok(())
        );
    }

    #[test]
    fn a_failing_expression_never_allows_and_always_denies() {
        let h = http::HeaderMap::new();
        let expr =
            || Expression::compile("identity.claims.missing == 1", EXPRESSION_VARIABLES).ok();
        let mut allow = rule("allow", Action::Allow);
        allow.when = expr();
        assert_eq!(
            authorize(Some(&[allow]), &key("a"), &request(&h, "m", "chat")),
            Err(Denial::NoAllowRule)
        );
        let mut deny = rule("deny", Action::Deny);
        deny.when = expr();
        let rules = [rule("all", Action::Allow), deny];
        assert_eq!(
            authorize(Some(&rules), &key("a"), &request(&h, "m", "chat")),
            Err(Denial::Rule(Arc::from("deny")))
        );
    }
}
