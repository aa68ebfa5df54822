//! Authentication and authorization for inference APIs.
//!
//! - [`credential`]: what a request presents (`Authorization: Bearer`, `x-api-key`);
//! - [`apikey`]: virtual API keys, held only as SHA-256 digests;
//! - [`jwt`] and [`jwks`]: JWS verification against a provider's published keys;
//! - [`identity`]: who the caller is, whichever method proved it;
//! - [`rules`]: allow and deny rules over identity, model, operation and route;
//! - [`access`]: one compiled policy tying these together.

pub mod access;
pub mod apikey;
pub mod credential;
pub mod identity;
pub mod jwks;
pub mod jwt;
pub mod rules;

pub use access::{AccessPolicy, AuthError, KeyIdentity, PeerCert, Presented};
pub use identity::{Identity, Method};
pub use rules::Denial;
