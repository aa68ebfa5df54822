//! Sluice's AI kinds (sluice.dev/v1alpha1), for what no standard covers yet:
//!
//! - `AIBackend`: a model provider behind a `Backend` or `Service` — which API it speaks, the
//!   credentials the gateway injects, its region and failover priority, model rewriting. HTTPRoute
//!   rules send traffic to it with `backendRefs: [{group: sluice.dev, kind: AIBackend, name}]`.
//! - `AIPolicy`: AI settings attached with `targetRefs` to a Gateway (body limit, model aliases,
//!   prices, allowed regions, failover) or an HTTPRoute (allowed regions and failover for its
//!   rules, overriding the Gateway's).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::httproute::BackendObjectReference;

pub const SLUICE_GROUP: &str = "sluice.dev";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AiBackendSpec {
    pub provider: ProviderSpec,
    /// Where the provider lives: a `Backend` (gateway.networking.k8s.io) or a `Service`. Not
    /// used by the `Mock` provider, required by every other.
    #[serde(default)]
    pub backend_ref: Option<BackendObjectReference>,
    /// Where the provider processes data (e.g. `eu-west-1`), for region policies.
    #[serde(default)]
    pub region: Option<String>,
    /// Failover order among a rule's AI backends: lower first. Weights apply within a priority.
    #[serde(default)]
    pub priority: u32,
    /// Models this backend serves (globs with `*` allowed; none = any model). Names without a
    /// `*` are listed by `GET /v1/models`.
    #[serde(default)]
    pub models: Vec<String>,
    /// Client model name → the name this provider knows it by.
    #[serde(default)]
    pub model_rewrite: BTreeMap<String, String>,
    #[serde(default)]
    pub credentials: Option<CredentialSource>,
    /// Forward the client's own `Authorization` / `x-api-key` instead of injecting credentials.
    #[serde(default)]
    pub passthrough_client_auth: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum ProviderType {
    /// OpenAI, or any server with an OpenAI-compatible API (vLLM, SGLang, TGI, Ollama, Groq, …).
    OpenAI,
    AzureOpenAI,
    Anthropic,
    Bedrock,
    VertexAI,
    /// The Gemini API (generativelanguage.googleapis.com) with an API key.
    Gemini,
    Mock,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderSpec {
    #[serde(rename = "type")]
    pub kind: ProviderType,
    #[serde(default)]
    pub openai: Option<OpenAiSettings>,
    #[serde(default)]
    pub azure: Option<AzureSettings>,
    #[serde(default)]
    pub anthropic: Option<AnthropicSettings>,
    #[serde(default)]
    pub bedrock: Option<BedrockSettings>,
    #[serde(default)]
    pub vertex: Option<VertexSettings>,
    #[serde(default)]
    pub mock: Option<MockSettings>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OpenAiSettings {
    /// Path before `/chat/completions` etc.; `/v1` by default (e.g. `/api/v1`, `/openai/v1`).
    #[serde(default)]
    pub path_prefix: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AzureSettings {
    pub api_version: String,
    /// Model → deployment name; a model without an entry is its own deployment name.
    #[serde(default)]
    pub deployments: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnthropicSettings {
    /// The `anthropic-version` header; `2023-06-01` by default.
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BedrockSettings {
    /// The AWS region requests are signed for (e.g. `us-east-1`).
    pub region: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VertexSettings {
    pub project: String,
    pub location: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MockSettings {
    /// Wait before the answer (or its first chunk).
    #[serde(default)]
    pub latency: Option<String>,
    /// Wait between streamed chunks.
    #[serde(default)]
    pub chunk_interval: Option<String>,
    /// Answer with this error status instead …
    #[serde(default)]
    pub error_status: Option<u16>,
    /// … on every Nth request (1 = always; default 1 when `errorStatus` is set).
    #[serde(default)]
    pub error_every: Option<u32>,
}

/// Where a credential comes from: exactly one of the three.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CredentialSource {
    #[serde(default)]
    pub secret_ref: Option<SecretKeyRef>,
    /// An environment variable of the gateway process (for Bedrock: a prefix, read as
    /// `<prefix>ACCESS_KEY_ID`, `<prefix>SECRET_ACCESS_KEY`, `<prefix>SESSION_TOKEN`).
    #[serde(default)]
    pub env: Option<String>,
    /// A file (e.g. a mounted secret or a service-account key).
    #[serde(default)]
    pub file: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretKeyRef {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    /// The key in the Secret's data (for Bedrock, not used: the Secret holds `accessKeyId`,
    /// `secretAccessKey` and optionally `sessionToken`).
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AiPolicySpec {
    pub target_refs: Vec<PolicyTargetRef>,
    /// Largest request body accepted on AI routes (Gateway-level only). Default 2 MiB.
    #[serde(default)]
    pub max_request_bytes: Option<u64>,
    /// Client model name → model name used for routing and sent upstream (Gateway-level only).
    #[serde(default)]
    pub model_aliases: BTreeMap<String, String>,
    /// Regions an AI request may be served from; backends elsewhere are never tried.
    #[serde(default)]
    pub allowed_regions: Option<Vec<String>>,
    /// USD per million tokens, per model (Gateway-level only).
    #[serde(default)]
    pub prices: Vec<ModelPrice>,
    #[serde(default)]
    pub failover: Option<FailoverSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyTargetRef {
    pub group: String,
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelPrice {
    pub model: String,
    pub input: f64,
    pub output: f64,
    #[serde(default)]
    pub cached_input: Option<f64>,
    #[serde(default)]
    pub cache_creation: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FailoverSpec {
    /// Attempts in all (first try included) across the rule's backends. Default: one per backend.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// A 429's `Retry-After` up to this long is waited out on the same backend when no other
    /// backend is left; longer ones fail over or end the request. Default `0s`.
    #[serde(default)]
    pub max_retry_after: Option<String>,
    /// Consecutive failures that eject a backend. Default 5.
    #[serde(default)]
    pub consecutive_failures: Option<u32>,
    /// How long an ejected backend rests before one probe request may try it. Default `30s`.
    #[serde(default)]
    pub ejection_time: Option<String>,
}
