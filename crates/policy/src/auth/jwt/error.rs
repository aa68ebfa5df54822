//! Why a token is refused.

/// Why a JWT is not accepted. No variant carries the token or any part of its signature; only
/// [`JwtError::AlgorithmNotAllowed`] echoes a (truncated) header value, which is not secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("token larger than {} bytes", super::token::MAX_TOKEN_LEN)]
    TooLarge,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("the token has a \"crit\" header, and no extension it could name is supported")]
    CriticalHeader,
    #[error("algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(String),
    #[error("no key for this token (unknown kid, or no key for its algorithm)")]
    UnknownKey,
    #[error("the key named by the token's kid is not for the token's algorithm")]
    KeyAlgorithmMismatch,
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token has no expiry (exp)")]
    MissingExpiry,
    #[error("token issuer is not the expected one")]
    WrongIssuer,
    #[error("token audience does not include this gateway")]
    WrongAudience,
}

impl JwtError {
    /// A short snake_case name for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            JwtError::TooLarge => "too_large",
            JwtError::Malformed(_) => "malformed",
            JwtError::CriticalHeader => "critical_header",
            JwtError::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            JwtError::UnknownKey => "unknown_key",
            JwtError::KeyAlgorithmMismatch => "key_algorithm_mismatch",
            JwtError::BadSignature => "bad_signature",
            JwtError::Expired => "expired",
            JwtError::NotYetValid => "not_yet_valid",
            JwtError::MissingExpiry => "missing_expiry",
            JwtError::WrongIssuer => "wrong_issuer",
            JwtError::WrongAudience => "wrong_audience",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct_snake_case() {
        let all = [
            JwtError::TooLarge,
            JwtError::Malformed("x"),
            JwtError::CriticalHeader,
            JwtError::AlgorithmNotAllowed("x".into()),
            JwtError::UnknownKey,
            JwtError::KeyAlgorithmMismatch,
            JwtError::BadSignature,
            JwtError::Expired,
            JwtError::NotYetValid,
            JwtError::MissingExpiry,
            JwtError::WrongIssuer,
            JwtError::WrongAudience,
        ];
        let mut reasons: Vec<_> = all.iter().map(JwtError::reason).collect();
        assert!(reasons
            .iter()
            .all(|r| r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), all.len());
        assert_eq!(JwtError::Expired.reason(), "expired");
    }
}
