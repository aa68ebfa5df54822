//! `PayloadProcessor` (gateway.networking.k8s.io/v1alpha1, the AI Gateway WG payload-processing
//! draft): an ordered list of processors over request and response payloads, attached to a
//! Gateway or an HTTPRoute, each with a failure mode and a timeout.
//!
//! ```yaml
//! spec:
//!   targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: ai}
//!   phase: PreRouting             # or PostRouting (after the route is chosen)
//!   maxBodyBytes: 2097152         # bodies are buffered only when a processor needs them
//!   processors:
//!   - name: model-from-body
//!     type: InProcess             # InProcess | Guardrail | Webhook | ExtProcess
//!     failureMode: FailClosed     # default; or FailOpen
//!     timeout: 100ms
//!     inProcess:
//!       request:
//!         setHeaders: [{name: X-Gateway-Model-Name, value: "json(request.body).model"}]
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ai::PolicyTargetRef;
use super::httproute::BackendObjectReference;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PayloadProcessorSpec {
    pub target_ref: PolicyTargetRef,
    /// `PreRouting` (before route matching; Gateway targets only) or `PostRouting`.
    pub phase: String,
    /// The most a body is buffered for processors that read it (default 2 MiB).
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    pub processors: Vec<ProcessorSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProcessorSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `FailClosed` (default) or `FailOpen`.
    #[serde(default)]
    pub failure_mode: Option<String>,
    /// A GEP-2257 duration; default 1s (ExtProcess, Webhook) or 100ms (in process).
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub in_process: Option<InProcessSpec>,
    #[serde(default)]
    pub guardrail: Option<GuardrailSpec>,
    #[serde(default)]
    pub webhook: Option<WebhookSpec>,
    #[serde(default)]
    pub ext_process: Option<ExtProcessSpec>,
}

/// CEL-driven mutations (the WG draft's in-process processor).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InProcessSpec {
    #[serde(default)]
    pub request: Option<MutationSpec>,
    #[serde(default)]
    pub response: Option<MutationSpec>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MutationSpec {
    /// Each value is a CEL expression; its result (a string, number or boolean) becomes the
    /// header value.
    #[serde(default)]
    pub set_headers: Vec<SetHeaderSpec>,
    #[serde(default)]
    pub remove_headers: Vec<String>,
    /// `path` is a JSONPath of member names (`$.metadata.tenant`); the value is CEL, its result
    /// set as JSON.
    #[serde(default)]
    pub set_body_fields: Vec<SetBodyFieldSpec>,
    #[serde(default)]
    pub remove_body_fields: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SetHeaderSpec {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SetBodyFieldSpec {
    pub path: String,
    pub value: String,
}

/// Detectors over the text of inference requests and answers (sluice.dev).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GuardrailSpec {
    /// `Request`, `Response` or both; default `[Request]`.
    #[serde(default)]
    pub apply_to: Vec<String>,
    /// `Block` (default), `Redact` or `Monitor`.
    #[serde(default)]
    pub action: Option<String>,
    /// `Email`, `Phone`, `CreditCard`, `USSSN`, `IBAN`, `IPAddress`, or `All`.
    #[serde(default)]
    pub pii: Vec<String>,
    /// `APIKey`, `AWSAccessKey`, `PrivateKey`, or `All`.
    #[serde(default)]
    pub secrets: Vec<String>,
    #[serde(default)]
    pub prompt_injection: Option<InjectionSpec>,
    #[serde(default)]
    pub regex: Vec<PatternListSpec>,
    #[serde(default)]
    pub keywords: Vec<PatternListSpec>,
    /// Also scan base64 and hex segments decoded. Default true.
    #[serde(default)]
    pub decode_encodings: Option<bool>,
    /// Caps on the request's text: bytes, and input tokens (counted with the model's tokenizer).
    #[serde(default)]
    pub max_text_bytes: Option<u64>,
    #[serde(default)]
    pub max_input_tokens: Option<u64>,
    /// The answer to a blocked request (default 400, "blocked by content policy").
    #[serde(default)]
    pub block: Option<BlockSpec>,
    /// How answers streamed back are checked (default `Window`).
    #[serde(default)]
    pub streaming: Option<StreamingSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InjectionSpec {
    /// Flag at this score (0..1). Default 0.5.
    #[serde(default)]
    pub threshold: Option<f32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatternListSpec {
    pub name: String,
    pub patterns: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BlockSpec {
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StreamingSpec {
    /// `Buffer`, `Window` (default) or `Monitor`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Text held back behind the newest chunk under `Window` (default 128 bytes, at least the
    /// longest match a detector can make).
    #[serde(default)]
    pub hold_back_bytes: Option<u32>,
}

/// An external moderation service over HTTP, speaking the OpenAI moderation API
/// (`POST /v1/moderations`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookSpec {
    pub backend_ref: BackendObjectReference,
    /// Default `/v1/moderations`.
    #[serde(default)]
    pub path: Option<String>,
    /// `Request`, `Response` or both; default `[Request]`.
    #[serde(default)]
    pub apply_to: Vec<String>,
    /// `Block` (default) or `Monitor` when the service flags the text.
    #[serde(default)]
    pub action: Option<String>,
    /// A model name sent to the service (`omni-moderation-latest` style), if it wants one.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub block: Option<BlockSpec>,
}

/// An Envoy ext_proc v3 gRPC server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtProcessSpec {
    pub backend_ref: BackendObjectReference,
    #[serde(default)]
    pub processing_mode: Option<ProcessingModeSpec>,
    /// Sent as gRPC metadata on every stream (the draft's processor `context`).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// Envoy's `ProcessingMode`: which parts go to the server.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProcessingModeSpec {
    /// `Send` (default) or `Skip`.
    #[serde(default)]
    pub request_header_mode: Option<String>,
    /// `None` (default), `Buffered` or `Streamed`.
    #[serde(default)]
    pub request_body_mode: Option<String>,
    /// `Send` or `Skip` (default).
    #[serde(default)]
    pub response_header_mode: Option<String>,
    /// `None` (default), `Buffered` or `Streamed`.
    #[serde(default)]
    pub response_body_mode: Option<String>,
}
