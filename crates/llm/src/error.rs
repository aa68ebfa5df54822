//! What can go wrong translating between dialects.

/// A body that cannot be translated. `Request` errors are the client's (400); `Response` errors
/// are the provider's (502).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    #[error("invalid request: {0}")]
    Request(String),
    #[error("invalid response from provider: {0}")]
    Response(String),
    #[error("{0} is not supported by this provider")]
    Unsupported(String),
}
