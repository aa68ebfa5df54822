//! What an AI exchange reports when it ends: shared between the request handler (which fills
//! in the backend and the answer) and a streamed body (which finds usage as it goes).

use std::sync::Arc;
use std::time::Duration;

use sluice_llm::Usage;

#[derive(Debug, Default)]
pub struct AiTally {
    pub operation: &'static str,
    pub provider: &'static str,
    pub backend: Option<Arc<str>>,
    pub region: Option<Arc<str>>,
    pub request_model: String,
    pub response_model: Option<String>,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
    /// From request start to the first byte of answer sent to the client.
    pub time_to_first_token: Option<Duration>,
    /// Time spent waiting on providers (all attempts, body included).
    pub upstream_time: Duration,
    pub attempts: u32,
    pub stream: bool,
    /// The answer reached its proper end (a stream its terminal event).
    pub completed: bool,
    /// Why the exchange failed, if it did (never contains credentials).
    pub error: Option<String>,
}

pub type SharedTally = Arc<std::sync::Mutex<AiTally>>;

pub fn lock(t: &SharedTally) -> std::sync::MutexGuard<'_, AiTally> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes the GenAI metrics of a finished exchange and returns its access-log record.
pub fn report(
    metrics: &crate::metrics::Metrics,
    t: &AiTally,
    total: Duration,
) -> crate::access_log::AiRecord {
    use crate::metrics::{AiBackendLabels, AiCostLabels, GenAiLabels, Label, TokenLabels};
    let overhead = total.saturating_sub(t.upstream_time);
    let g = &metrics.gen_ai;
    if t.backend.is_some() {
        let request_model = Label(Arc::from(t.request_model.as_str()));
        let response_model = Label(Arc::from(t.response_model.as_deref().unwrap_or("")));
        let labels = GenAiLabels {
            gen_ai_operation_name: t.operation,
            gen_ai_provider_name: t.provider,
            gen_ai_request_model: request_model.clone(),
            gen_ai_response_model: response_model.clone(),
        };
        g.request_duration
            .get_or_create(&labels)
            .observe(total.as_secs_f64());
        g.gateway_overhead.observe(overhead.as_secs_f64());
        if t.completed {
            for (kind, n) in [("input", t.usage.input), ("output", t.usage.output)] {
                g.token_usage
                    .get_or_create(&TokenLabels {
                        gen_ai_operation_name: t.operation,
                        gen_ai_provider_name: t.provider,
                        gen_ai_request_model: request_model.clone(),
                        gen_ai_response_model: response_model.clone(),
                        gen_ai_token_type: kind,
                    })
                    .observe(n as f64);
            }
            if let Some(ttft) = t.time_to_first_token.filter(|_| t.stream) {
                g.time_to_first_token
                    .get_or_create(&labels)
                    .observe(ttft.as_secs_f64());
                if t.usage.output > 1 {
                    let per =
                        total.saturating_sub(ttft).as_secs_f64() / (t.usage.output - 1) as f64;
                    g.time_per_output_token.get_or_create(&labels).observe(per);
                }
            }
        }
        let region = Label(t.region.clone().unwrap_or_else(|| Arc::from("")));
        g.backend_requests
            .get_or_create(&AiBackendLabels {
                backend: Label(t.backend.clone().unwrap_or_else(|| Arc::from(""))),
                provider: t.provider,
                region: region.clone(),
                outcome: if t.completed { "success" } else { "failure" },
            })
            .inc();
        if let Some(cost) = t.cost_usd.filter(|c| *c > 0.0) {
            g.cost_usd
                .get_or_create(&AiCostLabels {
                    provider: t.provider,
                    model: request_model,
                    region,
                })
                .inc_by(cost);
        }
    }
    crate::access_log::AiRecord {
        operation: t.operation,
        provider: t.provider,
        backend: t.backend.clone(),
        region: t.region.clone(),
        request_model: t.request_model.clone(),
        response_model: t.response_model.clone(),
        stream: t.stream,
        attempts: t.attempts,
        input_tokens: t.usage.input,
        output_tokens: t.usage.output,
        cached_input_tokens: t.usage.cached_input,
        cache_creation_tokens: t.usage.cache_creation,
        reasoning_tokens: t.usage.reasoning,
        total_tokens: t.usage.total,
        cost_usd: t.cost_usd,
        time_to_first_token_ms: t.time_to_first_token.map(|d| d.as_secs_f64() * 1000.0),
        gateway_overhead_ms: overhead.as_secs_f64() * 1000.0,
        completed: t.completed,
        error: t.error.clone(),
    }
}
