//! Authentication and authorization for inference APIs.

pub mod apikey;
pub mod credential;
pub mod jwks;
pub mod jwt;
