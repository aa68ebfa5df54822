//! Reading the claims of a verified token.

use serde_json::{Map, Value};

/// The claims of a verified token: the payload's JSON object.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Claims(pub Map<String, Value>);

impl Claims {
    /// The claim `name`, or when no top-level claim has exactly that name and it contains dots,
    /// the value at that path through nested objects (`realm_access.roles` in Keycloak tokens).
    /// The exact name wins so that claims named like URLs (`https://example.com/roles`, common
    /// with Auth0) stay reachable.
    pub fn get(&self, name: &str) -> Option<&Value> {
        if let Some(value) = self.0.get(name) {
            return Some(value);
        }
        let mut segments = name.split('.');
        let first = segments.next()?;
        // With no dot, the single segment is `name` itself, already looked up.
        let mut value = self.0.get(first).filter(|_| name.contains('.'))?;
        for segment in segments {
            value = value.as_object()?.get(segment)?;
        }
        Some(value)
    }

    /// The claim as a string, if it is one.
    pub fn string(&self, name: &str) -> Option<&str> {
        self.get(name)?.as_str()
    }

    /// The claim as a list of strings: an array's string elements (others are skipped), or a
    /// string split on whitespace (OAuth `scope` is a space-separated string, RFC 8693 §4.2).
    /// Empty when the claim is missing or of another type.
    pub fn strings(&self, name: &str) -> Vec<&str> {
        match self.get(name) {
            Some(Value::String(s)) => s.split_ascii_whitespace().collect(),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Claims {
        match value {
            Value::Object(map) => Claims(map),
            _ => unreachable!(),
        }
    }

    #[test]
    fn top_level_and_dotted_paths() {
        let c = claims(json!({
            "sub": "u1",
            "realm_access": {"roles": ["admin", "dev"], "nested": {"deep": "yes"}},
            "https://example.com/roles": ["x"],
            "a.b": "exact",
            "a": {"b": "path"},
        }));
        assert_eq!(c.string("sub"), Some("u1"));
        assert_eq!(c.strings("realm_access.roles"), ["admin", "dev"]);
        assert_eq!(c.string("realm_access.nested.deep"), Some("yes"));
        assert_eq!(c.strings("https://example.com/roles"), ["x"]);
        assert_eq!(c.string("a.b"), Some("exact"));
        assert_eq!(c.get("realm_access.missing"), None);
        assert_eq!(c.get("sub.x"), None);
        assert_eq!(c.get("missing"), None);
        assert_eq!(c.get("realm_access.roles.0"), None);
        assert_eq!(c.get(""), None);
        assert_eq!(c.get("."), None);
    }

    #[test]
    fn strings_accepts_string_array_and_scope() {
        let c = claims(json!({
            "scope": "read  write\tadmin",
            "groups": ["a", 1, "b", null],
            "one": "solo",
            "n": 5,
            "empty": "",
        }));
        assert_eq!(c.strings("scope"), ["read", "write", "admin"]);
        assert_eq!(c.strings("groups"), ["a", "b"]);
        assert_eq!(c.strings("one"), ["solo"]);
        assert!(c.strings("n").is_empty());
        assert!(c.strings("empty").is_empty());
        assert!(c.strings("missing").is_empty());
        assert_eq!(c.string("n"), None);
    }
}
