//! Gemini (stub with the agreed signatures; replaced by the real module).
#![allow(unused_variables, dead_code)]
use serde_json::Value;
use crate::{TranslateError, Usage};
fn todo_err() -> TranslateError { TranslateError::Unsupported("gemini".into()) }
pub fn generate_request(hub: &Value) -> Result<Value, TranslateError> { Err(todo_err()) }
pub fn generate_response(resp: &Value, model: &str) -> Result<(Value, Usage), TranslateError> { Err(todo_err()) }
pub fn vertex_path(project: &str, location: &str, model: &str, stream: bool) -> String { String::new() }
pub fn vertex_host(location: &str) -> String { String::new() }
pub fn gemini_api_path(model: &str, stream: bool) -> String { String::new() }
pub fn error_message(body: &[u8]) -> String { String::new() }
pub struct GenerateStream;
impl GenerateStream {
    pub fn new(model: &str) -> Self { GenerateStream }
    pub fn on_event(&mut self, data: &Value) -> Result<Vec<Value>, TranslateError> { Err(todo_err()) }
    pub fn usage(&self) -> Usage { Usage::default() }
    pub fn finish(&mut self) -> Vec<Value> { Vec::new() }
}
pub mod vertex_auth {
    use crate::Secret;
    #[derive(Debug)] pub struct AuthError(pub String);
    impl std::fmt::Display for AuthError { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(&self.0) } }
    #[derive(Debug, Clone)] pub struct ServiceAccount { pub client_email: String, pub private_key: Secret, pub private_key_id: Option<String>, pub token_uri: String }
    impl ServiceAccount { pub fn from_json(s: &str) -> Result<ServiceAccount, AuthError> { Err(AuthError(String::new())) } }
    pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
    pub fn jwt_assertion(sa: &ServiceAccount, scope: &str, now_unix: u64) -> Result<String, AuthError> { Err(AuthError(String::new())) }
    pub fn token_request_body(assertion: &str) -> String { String::new() }
    pub fn parse_token_response(body: &[u8]) -> Result<(Secret, u64), AuthError> { Err(AuthError(String::new())) }
}
