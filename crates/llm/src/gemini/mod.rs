//! Google Gemini, on Vertex AI and on the Gemini API (`generativelanguage.googleapis.com`): hub
//! translation of `generateContent` bodies and streams, request paths and hosts, and the
//! service-account OAuth flow Vertex AI needs.

pub mod endpoints;
mod media;
mod schema;
pub mod translate;
pub mod vertex_auth;

pub use translate::{
    api_key_rejected, error_message, generate_request, generate_response, GenerateStream,
};
