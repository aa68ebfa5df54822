//! An Envoy ext_proc v3 client (`envoy.service.ext_proc.v3.ExternalProcessor/Process`).
//!
//! External processors — the Gateway API Inference Extension endpoint pickers, vLLM's semantic
//! router, custom guardrails — speak Envoy's external processing protocol: one bidirectional
//! gRPC stream per HTTP exchange, on which the proxy sends the phases of the exchange (request
//! headers, body, trailers, then the same for the response) and the processor answers each
//! with mutations or an immediate response.
//!
//! - [`ExtProcClient`]: one per configured processor; one lazily connected HTTP/2 channel that
//!   every exchange shares.
//! - [`Session`]: one stream per exchange. The caller (the gateway's payload pipeline) decides
//!   which phases it sends, which is what Envoy's processing mode decides, and applies its own
//!   per-call timeouts by wrapping calls in `tokio::time::timeout`.
//! - [`Reply`] / [`Mutation`] / [`Immediate`]: the answers, decoded into `http` types.
//!
//! The protobuf types come from `envoy-types` (generated from Envoy's published protos), so the
//! wire format is Envoy's. What is and is not supported is listed in `docs/ext-proc.md`.

mod client;
mod error;
mod phase;
mod reply;
mod session;
mod tls;
mod wire;

pub use client::{Endpoint, ExtProcClient, TlsSettings};
pub use error::ExtProcError;
pub use phase::Phase;
pub use reply::{Append, BodyChange, Immediate, Mutation, Reply};
pub use session::{Answer, HeadersMsg, Session};

/// The generated ext_proc v3 messages, for processors and tests that build them directly.
pub use envoy_types::pb::envoy::service::ext_proc::v3 as proto;

#[cfg(test)]
mod tests {
    /// The pipeline keeps a session across awaits on spawned tasks and shares the client
    /// between them.
    #[test]
    fn session_is_send_and_client_is_send_and_sync() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync>() {}
        send::<crate::Session>();
        send_sync::<crate::ExtProcClient>();
    }
}
