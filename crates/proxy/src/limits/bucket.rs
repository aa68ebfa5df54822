//! Bucket names: who shares a bucket, as a string the stores key on.
//!
//! `<policy>/<rule>|tenant=acme|model=gpt-4o`: the policy and rule (or budget) name, then one
//! `|key=value` per `bucketBy` entry in order. Values are the caller's (a header, a model
//! name), so they are escaped (`%`, `|` and `=` percent-encoded: no value can imitate another
//! combination) and values over [`MAX_VALUE`] bytes are replaced by a SHA-256 digest (a client
//! cannot make store keys arbitrarily long). Credentials never appear: credential headers are
//! refused as bucket keys at load, and an API key is named by its id.

use std::fmt::Write;
use std::net::IpAddr;

use http::HeaderMap;
use sluice_config::ir::BucketKey;
use sluice_policy::auth::Identity;

/// Longest value kept verbatim in a bucket name.
pub const MAX_VALUE: usize = 96;

/// What bucket keys read from a request.
pub struct Facts<'a> {
    pub identity: Option<&'a Identity>,
    pub headers: &'a HeaderMap,
    pub client: IpAddr,
    pub model: Option<&'a str>,
    pub route: &'a str,
}

/// The bucket rule (or budget) `rule` of `policy` charges for a request with these facts.
pub fn name(policy: &str, rule: &str, keys: &[BucketKey], facts: &Facts<'_>) -> String {
    let mut out = String::with_capacity(policy.len() + rule.len() + 1 + 24 * keys.len());
    out.push_str(policy);
    out.push('/');
    out.push_str(rule);
    for key in keys {
        let identity = |f: fn(&Identity) -> Option<&str>| facts.identity.and_then(f).unwrap_or("");
        let (label, value): (&str, std::borrow::Cow<'_, str>) = match key {
            BucketKey::Tenant => ("tenant", identity(|i| i.tenant.as_deref()).into()),
            BucketKey::User => ("user", identity(|i| i.user.as_deref()).into()),
            BucketKey::KeyId => ("key", identity(|i| i.key_id.as_deref()).into()),
            BucketKey::Header(h) => (
                h.as_str(),
                String::from_utf8_lossy(facts.headers.get(h).map_or(&b""[..], |v| v.as_bytes())),
            ),
            BucketKey::ClientAddress => ("client", facts.client.to_string().into()),
            BucketKey::Model => ("model", facts.model.unwrap_or("").into()),
            BucketKey::Route => ("route", facts.route.into()),
        };
        out.push('|');
        out.push_str(label);
        out.push('=');
        push_value(&mut out, &value);
    }
    out
}

fn push_value(out: &mut String, value: &str) {
    if value.len() > MAX_VALUE {
        let digest = ring::digest::digest(&ring::digest::SHA256, value.as_bytes());
        out.push_str("sha256:");
        for b in digest.as_ref() {
            let _ = write!(out, "{b:02x}");
        }
        return;
    }
    for c in value.chars() {
        match c {
            '%' => out.push_str("%25"),
            '|' => out.push_str("%7C"),
            '=' => out.push_str("%3D"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn facts<'a>(headers: &'a HeaderMap, identity: Option<&'a Identity>) -> Facts<'a> {
        Facts {
            identity,
            headers,
            client: "10.0.0.7".parse().unwrap(),
            model: Some("gpt-4o"),
            route: "default/chat",
        }
    }

    #[test]
    fn names_follow_the_keys_in_order() {
        let mut id = Identity::new(sluice_policy::auth::Method::ApiKey, Arc::from("k1"));
        id.tenant = Some(Arc::from("acme"));
        id.key_id = Some(Arc::from("k1"));
        let mut headers = HeaderMap::new();
        headers.insert("x-team", "blue".parse().unwrap());
        let keys = [
            BucketKey::Tenant,
            BucketKey::Model,
            BucketKey::Header(http::HeaderName::from_static("x-team")),
            BucketKey::ClientAddress,
            BucketKey::Route,
            BucketKey::KeyId,
            BucketKey::User,
        ];
        assert_eq!(
            name("ns/p", "r", &keys, &facts(&headers, Some(&id))),
            "ns/p/r|tenant=acme|model=gpt-4o|x-team=blue|client=10.0.0.7|route=default/chat|key=k1|user="
        );
        assert_eq!(name("ns/p", "r", &[], &facts(&headers, None)), "ns/p/r");
    }

    #[test]
    fn values_cannot_imitate_other_combinations() {
        let team = BucketKey::Header(http::HeaderName::from_static("x-team"));
        let mut a = HeaderMap::new();
        a.insert("x-team", "blue|model=gpt-4o".parse().unwrap());
        let forged = name("p", "r", std::slice::from_ref(&team), &facts(&a, None));
        assert_eq!(forged, "p/r|x-team=blue%7Cmodel%3Dgpt-4o");
        let real = name(
            "p",
            "r",
            &[team, BucketKey::Model],
            &facts(&HeaderMap::new(), None),
        );
        assert_ne!(forged, real);
    }

    #[test]
    fn long_values_are_digested() {
        let team = BucketKey::Header(http::HeaderName::from_static("x-team"));
        let mut h = HeaderMap::new();
        h.insert("x-team", "a".repeat(10_000).parse().unwrap());
        let n = name("p", "r", std::slice::from_ref(&team), &facts(&h, None));
        assert!(n.starts_with("p/r|x-team=sha256:"), "{n}");
        assert_eq!(n.len(), "p/r|x-team=sha256:".len() + 64);
        h.insert("x-team", "a".repeat(9_999).parse().unwrap());
        assert_ne!(name("p", "r", &[team], &facts(&h, None)), n);
    }
}
