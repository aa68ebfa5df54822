//! Anthropic Messages API ↔ hub. (Stub with the agreed signatures; replaced by the real module.)
#![allow(unused_variables, dead_code)]
use serde_json::Value;
use crate::{TranslateError, Usage};
fn todo_err() -> TranslateError { TranslateError::Unsupported("anthropic".into()) }
pub fn messages_request(hub: &Value) -> Result<Value, TranslateError> { Err(todo_err()) }
pub fn usage_from_anthropic(u: &Value) -> Usage { Usage::default() }
pub fn hub_response(resp: &Value) -> Result<(Value, Usage), TranslateError> { Err(todo_err()) }
pub fn hub_request_from_messages(req: &Value) -> Result<Value, TranslateError> { Err(todo_err()) }
pub fn message_from_hub(hub: &Value, usage: &Usage) -> Result<Value, TranslateError> { Err(todo_err()) }
pub fn error_body(kind: &str, message: &str) -> Value { serde_json::json!({"type":"error","error":{"type":kind,"message":message}}) }
pub fn error_type_for_status(status: u16) -> &'static str { "api_error" }
pub fn error_message(body: &[u8]) -> String { String::new() }
pub struct AnthropicToHubStream;
impl AnthropicToHubStream {
    pub fn new() -> Self { AnthropicToHubStream }
    pub fn on_event(&mut self, event: &str, data: &Value) -> Result<Vec<Value>, TranslateError> { Err(todo_err()) }
    pub fn usage(&self) -> Usage { Usage::default() }
    pub fn done(&self) -> bool { false }
}
pub struct HubToAnthropicStream;
impl HubToAnthropicStream {
    pub fn new(model: &str) -> Self { HubToAnthropicStream }
    pub fn on_chunk(&mut self, chunk: &Value) -> Vec<(&'static str, Value)> { Vec::new() }
    pub fn finish(&mut self, usage: &Usage) -> Vec<(&'static str, Value)> { Vec::new() }
    pub fn error_event(kind: &str, message: &str) -> (&'static str, Value) { ("error", error_body(kind, message)) }
}
