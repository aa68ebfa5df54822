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
