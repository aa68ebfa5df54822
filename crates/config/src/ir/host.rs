//! Hostname patterns of listeners and routes: exact, `*.suffix` wildcard, or any.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub enum HostPattern {
    /// A full hostname, lowercased.
    Exact(String),
    /// `*.example.com`, stored as `.example.com`: matches one or more labels before the suffix.
    Wildcard(String),
    Any,
}

impl HostPattern {
    pub fn parse(text: &str) -> HostPattern {
        let lower = text.to_ascii_lowercase();
        if lower.is_empty() || lower == "*" {
            HostPattern::Any
        } else if let Some(rest) = lower.strip_prefix('*') {
            HostPattern::Wildcard(rest.to_string())
        } else {
            HostPattern::Exact(lower)
        }
    }

    /// `host` must be lowercased and without a port.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Wildcard(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
            HostPattern::Any => true,
        }
    }

    /// The intersection of a listener hostname and a route hostname (Gateway API attachment rules):
    /// the more specific of the two when one contains the other, else none.
    pub fn intersect(&self, other: &HostPattern) -> Option<HostPattern> {
        match (self, other) {
            (HostPattern::Any, o) | (o, HostPattern::Any) => Some(o.clone()),
            (HostPattern::Exact(a), HostPattern::Exact(b)) => (a == b).then(|| self.clone()),
            (HostPattern::Exact(e), w @ HostPattern::Wildcard(_))
            | (w @ HostPattern::Wildcard(_), HostPattern::Exact(e)) => {
                w.matches(e).then(|| HostPattern::Exact(e.clone()))
            }
            (HostPattern::Wildcard(a), HostPattern::Wildcard(b)) => {
                if a.ends_with(b.as_str()) {
                    Some(self.clone())
                } else if b.ends_with(a.as_str()) {
                    Some(other.clone())
                } else {
                    None
                }
            }
        }
    }

    /// Orders patterns most specific first: exact, then wildcards by suffix length, then any.
    pub fn specificity_cmp(&self, other: &HostPattern) -> Ordering {
        fn rank(p: &HostPattern) -> (u8, usize) {
            match p {
                HostPattern::Exact(h) => (0, usize::MAX - h.len()),
                HostPattern::Wildcard(s) => (1, usize::MAX - s.len()),
                HostPattern::Any => (2, 0),
            }
        }
        rank(self).cmp(&rank(other))
    }

    pub fn as_config_string(&self) -> String {
        match self {
            HostPattern::Exact(h) => h.clone(),
            HostPattern::Wildcard(s) => format!("*{s}"),
            HostPattern::Any => String::from("*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_needs_at_least_one_label() {
        let w = HostPattern::parse("*.example.com");
        assert!(w.matches("a.example.com"));
        assert!(w.matches("a.b.example.com"));
        assert!(!w.matches("example.com"));
        assert!(!w.matches("aexample.com"));
    }

    #[test]
    fn intersection_keeps_the_more_specific() {
        let l = HostPattern::parse("*.bar.com");
        assert_eq!(
            l.intersect(&HostPattern::parse("foo.bar.com")),
            Some(HostPattern::parse("foo.bar.com"))
        );
        assert_eq!(l.intersect(&HostPattern::parse("foo.com")), None);
        assert_eq!(
            l.intersect(&HostPattern::parse("*.foo.bar.com")),
            Some(HostPattern::parse("*.foo.bar.com"))
        );
        assert_eq!(HostPattern::Any.intersect(&l), Some(l.clone()));
    }
}
