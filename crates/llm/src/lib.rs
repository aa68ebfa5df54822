//! AI protocol knowledge, free of any proxy machinery: what the client APIs look like, how each
//! provider's API differs, and how to translate between them, for whole bodies and for streams.
//!
//! # The hub
//!
//! Translation goes through one hub format, the OpenAI Chat Completions schema held as
//! `serde_json::Value`: a provider adapter turns the hub request into its own request and its own
//! responses (whole or streamed) back into hub responses and hub chunks; the Anthropic client
//! adapter does the same from the client's side. So N dialects need N adapters, not N².
//! When client and provider speak the same dialect, nothing goes through the hub: the body passes
//! through with unknown fields intact.
//!
//! Hub request: `{model, messages: [{role: system|developer|user|assistant|tool, content: string |
//! [{type: text, text} | {type: image_url, image_url: {url}}], tool_calls: [{id, type: function,
//! function: {name, arguments}}], tool_call_id}], tools: [{type: function, function: {name,
//! description, parameters}}], tool_choice, max_tokens | max_completion_tokens, temperature, top_p,
//! stop, stream, stream_options}`.
//!
//! Hub response: `{id, object: "chat.completion", created, model, choices: [{index, message: {role:
//! assistant, content, tool_calls}, finish_reason: stop|length|tool_calls|content_filter}], usage}`.
//!
//! Hub chunk: `{id, object: "chat.completion.chunk", created, model, choices: [{index, delta: {role,
//! content, tool_calls: [{index, id, type, function: {name, arguments}}]}, finish_reason}]}`; the
//! last chunk of every translated stream is a usage chunk (`choices: []`, `usage`), which the proxy
//! drops when the client did not ask for `stream_options.include_usage`.
//!
//! Usage is always also reported as a normalised [`Usage`], taken from the provider's own
//! numbers (so cache-creation tokens, which the hub cannot carry, are not lost).

pub mod anthropic;
pub mod api;
pub mod bedrock;
pub mod delta;
pub mod error;
pub mod errors;
pub mod gemini;
pub mod glob;
pub mod hub;
pub mod json;
pub mod mock;
pub mod plan;
pub mod provider;
pub mod request;
pub mod respond;
pub mod secret;
pub mod sse;
pub mod stream;
pub mod texts;
pub mod tokens;
pub mod usage;

pub use api::{Dialect, Operation};
pub use error::TranslateError;
pub use glob::glob_match;
pub use secret::Secret;
pub use usage::Usage;
