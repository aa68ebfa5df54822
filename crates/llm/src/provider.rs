//! A provider as configured: which API it speaks, its settings, and its credential.

use std::collections::HashMap;
use std::time::Duration;

use crate::{Operation, Secret};

/// The API a provider speaks on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    /// OpenAI's schema (OpenAI, Azure OpenAI, OpenAI-compatible servers, the mock).
    OpenAI,
    Anthropic,
    /// Bedrock Converse / ConverseStream.
    Bedrock,
    /// Gemini `generateContent` (Vertex AI and the Gemini API).
    Gemini,
}

#[derive(Debug, Clone)]
pub enum ProviderKind {
    OpenAI {
        /// e.g. `/v1`; no trailing slash.
        path_prefix: String,
    },
    Azure {
        api_version: String,
        deployments: HashMap<String, String>,
    },
    Anthropic {
        version: String,
    },
    Bedrock {
        region: String,
    },
    Vertex {
        project: String,
        location: String,
    },
    Gemini,
    Mock(MockSettings),
}

/// The built-in mock's behaviour.
#[derive(Debug, Clone, Default)]
pub struct MockSettings {
    pub latency: Duration,
    pub chunk_interval: Duration,
    pub error_status: Option<u16>,
    pub error_every: u32,
}

/// A credential the gateway injects.
#[derive(Debug, Clone)]
pub enum Credential {
    None,
    /// `Authorization: Bearer` (OpenAI, compatible servers), `api-key` (Azure), `x-api-key`
    /// (Anthropic), `x-goog-api-key` (Gemini API).
    ApiKey(Secret),
    /// AWS keys for SigV4 (Bedrock).
    Aws(crate::bedrock::sigv4::Credentials),
    /// A Google service-account key file (JSON), exchanged for access tokens (Vertex AI).
    ServiceAccount(Secret),
}

impl ProviderKind {
    pub fn wire(&self) -> Wire {
        match self {
            ProviderKind::OpenAI { .. } | ProviderKind::Azure { .. } | ProviderKind::Mock(_) => {
                Wire::OpenAI
            }
            ProviderKind::Anthropic { .. } => Wire::Anthropic,
            ProviderKind::Bedrock { .. } => Wire::Bedrock,
            ProviderKind::Vertex { .. } | ProviderKind::Gemini => Wire::Gemini,
        }
    }

    /// `gen_ai.provider.name` (OpenTelemetry GenAI semantic conventions).
    pub fn otel_name(&self) -> &'static str {
        match self {
            ProviderKind::OpenAI { .. } => "openai",
            ProviderKind::Azure { .. } => "azure.ai.openai",
            ProviderKind::Anthropic { .. } => "anthropic",
            ProviderKind::Bedrock { .. } => "aws.bedrock",
            ProviderKind::Vertex { .. } => "gcp.vertex_ai",
            ProviderKind::Gemini => "gcp.gemini",
            ProviderKind::Mock(_) => "mock",
        }
    }

    /// Whether this provider can serve `op` (with translation where needed).
    pub fn supports(&self, op: Operation) -> bool {
        match (self.wire(), op) {
            (_, Operation::ChatCompletions | Operation::Messages | Operation::Models) => true,
            (Wire::Anthropic, Operation::CountTokens) => true,
            (Wire::OpenAI, Operation::CountTokens) => matches!(self, ProviderKind::Mock(_)),
            (Wire::OpenAI, Operation::Completions | Operation::Embeddings) => true,
            (Wire::OpenAI, Operation::Responses) => !matches!(self, ProviderKind::Azure { .. }),
            _ => false,
        }
    }
}
