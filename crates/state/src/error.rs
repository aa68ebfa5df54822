//! The one error type of every store, so callers (the admin API, the watcher) map outcomes to
//! responses without knowing which backend is configured.

/// Why a store operation failed.
///
/// Messages never contain a Redis password: they are built from redacted descriptions, and
/// Redis client errors are scrubbed of the configured secret before they get here.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The id is already taken (create).
    #[error("{0:?} already exists")]
    Exists(String),
    /// No record with this id.
    #[error("{0:?} not found")]
    NotFound(String),
    /// The record is revoked, so it cannot change any more (rotate).
    #[error("{0:?} is revoked")]
    Revoked(String),
    /// The request or the configuration is malformed (bad record, URL or prefix); retrying
    /// cannot help.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The store cannot be reached or did not answer in time (Redis down, I/O error).
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// The store answered with data this version cannot read.
    #[error("state store corrupt: {0}")]
    Corrupt(String),
}
