//! Bedrock (stub with the agreed signatures; replaced by the real module).
#![allow(unused_variables, dead_code)]
use serde_json::Value;
use crate::{TranslateError, Usage};
fn todo_err() -> TranslateError { TranslateError::Unsupported("bedrock".into()) }
pub fn converse_path(model_id: &str, stream: bool) -> String { String::new() }
pub fn converse_request(hub: &Value) -> Result<Value, TranslateError> { Err(todo_err()) }
pub fn converse_response(resp: &Value, model: &str) -> Result<(Value, Usage), TranslateError> { Err(todo_err()) }
pub fn error_message(body: &[u8]) -> String { String::new() }
pub struct ConverseStream;
impl ConverseStream {
    pub fn new(model: &str) -> Self { ConverseStream }
    pub fn on_message(&mut self, msg: &eventstream::Message) -> Result<Vec<Value>, TranslateError> { Err(todo_err()) }
    pub fn usage(&self) -> Usage { Usage::default() }
    pub fn done(&self) -> bool { false }
}
pub mod eventstream {
    #[derive(Debug)] pub struct EventStreamError;
    impl std::fmt::Display for EventStreamError { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("x") } }
    pub struct Message;
    #[derive(Default)] pub struct Decoder;
    impl Decoder { pub fn new() -> Self { Decoder } pub fn push(&mut self, b: &[u8]) {} pub fn next_message(&mut self) -> Result<Option<Message>, EventStreamError> { Ok(None) } }
}
pub mod sigv4 {
    use crate::Secret;
    #[derive(Debug, Clone)] pub struct Credentials { pub access_key_id: String, pub secret_access_key: Secret, pub session_token: Option<Secret> }
    #[derive(Debug)] pub struct SignError;
    impl std::fmt::Display for SignError { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("x") } }
    #[allow(clippy::too_many_arguments)]
    pub fn sign(method: &http::Method, uri: &http::Uri, headers: &mut http::HeaderMap, body: &[u8], creds: &Credentials, region: &str, service: &str, time: std::time::SystemTime) -> Result<(), SignError> { Err(SignError) }
}
