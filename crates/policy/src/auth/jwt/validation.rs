//! What a token must say about itself to be accepted, once its signature checks out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::algorithm::Algorithm;
use super::claims::Claims;
use super::error::JwtError;

/// The expectations a verified token's header and claims must meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// Algorithms accepted in the header; everything else is refused before a key is chosen.
    pub algorithms: Vec<Algorithm>,
    /// When set, `iss` must be exactly this.
    pub issuer: Option<String>,
    /// When non-empty, `aud` (a string or an array of strings) must contain one of these.
    /// When empty, `aud` is not checked.
    pub audiences: Vec<String>,
    /// Tolerance for clocks that disagree, applied to `exp` and `nbf`.
    pub clock_skew: Duration,
    /// Whether a token without `exp` is refused. A token that never expires cannot be revoked
    /// short of rotating the issuer's keys.
    pub require_exp: bool,
}

impl Validation {
    /// Accepts `algorithms`, requires `exp`, allows 60 s of clock skew, and checks neither
    /// issuer nor audience until they are set.
    pub fn new(algorithms: Vec<Algorithm>) -> Validation {
        Validation {
            algorithms,
            issuer: None,
            audiences: Vec::new(),
            clock_skew: Duration::from_secs(60),
            require_exp: true,
        }
    }

    /// Checks the registered claims (RFC 7519 §4.1) the validation cares about.
    pub(crate) fn check(&self, claims: &Claims, now: SystemTime) -> Result<(), JwtError> {
        let now = seconds_since_epoch(now);
        let skew = self.clock_skew.as_secs_f64();
        match numeric_date(claims, "exp", "exp is not a NumericDate")? {
            Some(exp) if now > exp + skew => return Err(JwtError::Expired),
            Some(_) => {}
            None if self.require_exp => return Err(JwtError::MissingExpiry),
            None => {}
        }
        if let Some(nbf) = numeric_date(claims, "nbf", "nbf is not a NumericDate")? {
            if now + skew < nbf {
                return Err(JwtError::NotYetValid);
            }
        }
        if let Some(issuer) = &self.issuer {
            if claims.0.get("iss").and_then(Value::as_str) != Some(issuer.as_str()) {
                return Err(JwtError::WrongIssuer);
            }
        }
        if !self.audiences.is_empty() {
            let accepted = |aud: &str| self.audiences.iter().any(|a| a == aud);
            let ok = match claims.0.get("aud") {
                Some(Value::String(aud)) => accepted(aud),
                Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(accepted),
                _ => false,
            };
            if !ok {
                return Err(JwtError::WrongAudience);
            }
        }
        Ok(())
    }
}

/// A NumericDate claim (RFC 7519 §2: seconds since the epoch, fractions allowed).
fn numeric_date(
    claims: &Claims,
    name: &str,
    invalid: &'static str,
) -> Result<Option<f64>, JwtError> {
    match claims.0.get(name) {
        None => Ok(None),
        Some(value) => value.as_f64().map(Some).ok_or(JwtError::Malformed(invalid)),
    }
}

pub(crate) fn seconds_since_epoch(time: SystemTime) -> f64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn check(v: &Validation, claims: Value) -> Result<(), JwtError> {
        let Value::Object(map) = claims else {
            unreachable!()
        };
        v.check(&Claims(map), at(NOW))
    }

    fn no_skew() -> Validation {
        Validation {
            clock_skew: Duration::ZERO,
            ..Validation::new(vec![Algorithm::ES256])
        }
    }

    #[test]
    fn expiry_with_and_without_skew() {
        let v = no_skew();
        assert_eq!(check(&v, json!({"exp": NOW + 1})), Ok(()));
        assert_eq!(check(&v, json!({"exp": NOW})), Ok(()));
        assert_eq!(check(&v, json!({"exp": NOW - 1})), Err(JwtError::Expired));
        assert_eq!(
            check(&v, json!({"exp": NOW as f64 - 0.5})),
            Err(JwtError::Expired)
        );
        let skewed = Validation {
            clock_skew: Duration::from_secs(30),
            ..no_skew()
        };
        assert_eq!(check(&skewed, json!({"exp": NOW - 30})), Ok(()));
        assert_eq!(
            check(&skewed, json!({"exp": NOW - 31})),
            Err(JwtError::Expired)
        );
    }

    #[test]
    fn missing_expiry_only_when_required() {
        assert_eq!(check(&no_skew(), json!({})), Err(JwtError::MissingExpiry));
        let optional = Validation {
            require_exp: false,
            ..no_skew()
        };
        assert_eq!(check(&optional, json!({})), Ok(()));
        // A present exp is checked even when not required.
        assert_eq!(
            check(&optional, json!({"exp": NOW - 1})),
            Err(JwtError::Expired)
        );
    }

    #[test]
    fn dates_must_be_numbers() {
        let v = no_skew();
        assert_eq!(
            check(&v, json!({"exp": (NOW + 10).to_string()})),
            Err(JwtError::Malformed("exp is not a NumericDate"))
        );
        assert_eq!(
            check(&v, json!({"exp": null})),
            Err(JwtError::Malformed("exp is not a NumericDate"))
        );
        assert_eq!(
            check(&v, json!({"exp": NOW + 10, "nbf": "soon"})),
            Err(JwtError::Malformed("nbf is not a NumericDate"))
        );
    }

    #[test]
    fn not_before_with_and_without_skew() {
        let v = no_skew();
        let exp = NOW + 100;
        assert_eq!(check(&v, json!({"exp": exp, "nbf": NOW})), Ok(()));
        assert_eq!(
            check(&v, json!({"exp": exp, "nbf": NOW + 1})),
            Err(JwtError::NotYetValid)
        );
        let skewed = Validation {
            clock_skew: Duration::from_secs(30),
            ..no_skew()
        };
        assert_eq!(check(&skewed, json!({"exp": exp, "nbf": NOW + 30})), Ok(()));
        assert_eq!(
            check(&skewed, json!({"exp": exp, "nbf": NOW + 31})),
            Err(JwtError::NotYetValid)
        );
    }

    #[test]
    fn issuer_must_match_exactly() {
        let v = Validation {
            issuer: Some("https://idp.example".into()),
            ..no_skew()
        };
        let exp = NOW + 100;
        assert_eq!(
            check(&v, json!({"exp": exp, "iss": "https://idp.example"})),
            Ok(())
        );
        for iss in [
            json!("https://idp.example/"),
            json!("https://evil.example"),
            json!(1),
        ] {
            assert_eq!(
                check(&v, json!({"exp": exp, "iss": iss})),
                Err(JwtError::WrongIssuer)
            );
        }
        assert_eq!(check(&v, json!({"exp": exp})), Err(JwtError::WrongIssuer));
        // Unchecked when not configured.
        assert_eq!(
            check(&no_skew(), json!({"exp": exp, "iss": "anyone"})),
            Ok(())
        );
    }

    #[test]
    fn audience_string_or_array_must_intersect() {
        let v = Validation {
            audiences: vec!["gateway".into(), "api".into()],
            ..no_skew()
        };
        let exp = NOW + 100;
        assert_eq!(check(&v, json!({"exp": exp, "aud": "api"})), Ok(()));
        assert_eq!(
            check(&v, json!({"exp": exp, "aud": ["other", "gateway"]})),
            Ok(())
        );
        for aud in [
            json!("other"),
            json!(["other", 1]),
            json!([]),
            json!({"api": 1}),
            json!(1),
        ] {
            assert_eq!(
                check(&v, json!({"exp": exp, "aud": aud})),
                Err(JwtError::WrongAudience)
            );
        }
        assert_eq!(check(&v, json!({"exp": exp})), Err(JwtError::WrongAudience));
        assert_eq!(check(&no_skew(), json!({"exp": exp, "aud": "x"})), Ok(()));
    }
}
