//! Local input-token counting for token-budget admission.
//!
//! A token rate limit reserves a request's input tokens plus its requested output cap when the
//! request is admitted, before any provider has seen it; the provider's usage report settles the
//! reservation afterwards. So this module must be fast, must never fail, and where it cannot be
//! exact it must err high: an estimate that runs low lets a client overshoot its budget.
//!
//! # Encodings
//!
//! | model (after stripping `provider/` and `ft:` prefixes, case-insensitive) | [`Encoding`] |
//! | --- | --- |
//! | `gpt-4o*`, `chatgpt-4o*`, `gpt-4.1*`, `gpt-4.5*`, `gpt-5*`, `o1*`, `o3*`, `o4*`, `gpt-oss*` | [`Encoding::O200kBase`] (exact) |
//! | `gpt-4`, `gpt-4-*` (turbo, 32k, dated), `gpt-3.5*`, `gpt-35*` (Azure), `text-embedding-3*`, `text-embedding-ada-002`, `davinci-002`, `babbage-002` | [`Encoding::Cl100kBase`] (exact) |
//! | everything else: `claude-*`, `gemini-*`, Llama, Mistral, Qwen, DeepSeek, `mock-*`, unknown | [`Encoding::Approximate`] |
//!
//! The table follows OpenAI's published model-to-encoding mapping (the `tiktoken` library's
//! `model.py`). `gpt-oss` uses `o200k_harmony`, which is `o200k_base` plus special tokens that
//! never occur in counted text. Azure deployment names are chosen by the customer and cannot be
//! recognised: name the deployment after its model, or the estimate is the (high) approximation.
//!
//! # The approximation
//!
//! Models without a public tokenizer are estimated as `max(2 × o200k tokens, a per-character
//! sum weighted by script)`; see `approx.rs` for the weights and the measurements behind them.
//! On 165 texts (English, code in five languages, JSON, CJK, 20 other scripts, numbers, random
//! strings, emoji) it was never below any of the nine tokenizers measured (Claude 3–4.6 and
//! Opus 4.7 as reconstructed by `ctok`, Gemini/Gemma, Llama 2 and 3.1, Mistral, Qwen 3,
//! DeepSeek V3): at least 1.05 times the largest of them, and on average 1.35 times the largest,
//! 1.46 times Claude Opus 4.7 and 1.74 times Claude 3–4.6.
//!
//! # Cost
//!
//! Encoding runs at ~25–60 µs per KB of request (o200k is the faster table; code costs more per
//! byte than prose), so a 128 KB request takes ~5 ms the first time. Every text's count is remembered
//! (`cache.rs`; texts of 16 bytes and more by a keyed hash): the next turn of a conversation,
//! which resends its history, costs ~1 µs per KB of history, and the roles and short messages
//! every request carries skip the encoder. Pathological text (one 128 KB word, or whitespace) is
//! bounded at ~70–115 µs per KB by feeding the encoder short segments (`bpe.rs`).
//!
//! # Request shapes
//!
//! [`count_input`] walks the body of each operation the way the provider builds its prompt
//! (`openai.rs`, `anthropic.rs`): message text through the encoding plus the documented framing
//! overheads, fixed worst-case costs for images (`media.rs`), and the JSON of tool definitions.
//! What is not visible in the body cannot be counted: context a provider keeps server-side
//! (`previous_response_id`, `conversation`, stored prompts), files referenced by id or URL, and
//! tokens a built-in tool adds while the request runs.

mod anthropic;
mod approx;
mod bpe;
mod cache;
mod cap;
mod count;
mod family;
mod media;
mod openai;
#[cfg(test)]
mod view_tests;

pub use cap::requested_output_cap;
pub(crate) use count::{admission_fields, WANTED_MAX};
pub use count::{count_input, try_count_input, BodyView, ShapeError};
pub use family::encoding_for_model;

/// How a model's text is turned into tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// OpenAI's `o200k_base` (GPT-4o and later): exact.
    O200kBase,
    /// OpenAI's `cl100k_base` (GPT-4, GPT-3.5, embeddings v3 and ada-002): exact.
    Cl100kBase,
    /// No public tokenizer: a conservative estimate (see the module documentation).
    Approximate,
}

impl Encoding {
    /// The name used in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
            Encoding::Approximate => "approximate",
        }
    }
}

/// Builds the `o200k_base` and `cl100k_base` tables now (~0.3 s in a release build, ~70 MB
/// resident afterwards) so that the first request counted does not pay for it. Idempotent and
/// cheap after the first call.
pub fn warm_up() {
    bpe::warm_up();
}

/// Tokens of `text` under `encoding`. Exact for the OpenAI encodings (special-token strings such
/// as `<|endoftext|>` count as ordinary text, as the APIs treat them in user content); the
/// approximation never counts fewer than `o200k_base`.
///
/// Counts are remembered (see `cache.rs`), so the history a conversation resends with every turn,
/// a system prompt many requests share, and roles and short messages are encoded once.
pub fn count_text(encoding: Encoding, text: &str) -> u64 {
    cache::get_or_count(encoding as u8, text, |text| match encoding {
        Encoding::O200kBase => bpe::count(bpe::Table::O200k, text),
        Encoding::Cl100kBase => bpe::count(bpe::Table::Cl100k, text),
        Encoding::Approximate => approx::count(text),
    })
}
