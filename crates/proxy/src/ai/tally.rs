//! What an AI exchange reports when it ends: shared between the request handler (which fills
//! in the backend and the answer) and a streamed body (which finds usage as it goes).

use std::sync::Arc;
use std::time::Duration;

use sluice_llm::Usage;

use super::series::SeriesKey;

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
    let overhead = total.saturating_sub(t.upstream_time);
    let g = &metrics.gen_ai;
    if let Some(backend) = &t.backend {
        let series = g.series.get(
            g,
            SeriesKey {
                operation: t.operation,
                provider: t.provider,
                request_model: &t.request_model,
                response_model: t.response_model.as_deref().unwrap_or(""),
                backend,
                region: t.region.as_deref().unwrap_or(""),
            },
        );
        series.request_duration.get().observe(total.as_secs_f64());
        g.gateway_overhead.observe(overhead.as_secs_f64());
        if t.completed {
            series.input_tokens.get().observe(t.usage.input as f64);
            series.output_tokens.get().observe(t.usage.output as f64);
            if let Some(ttft) = t.time_to_first_token.filter(|_| t.stream) {
                series.time_to_first_token.get().observe(ttft.as_secs_f64());
                if t.usage.output > 1 {
                    let per =
                        total.saturating_sub(ttft).as_secs_f64() / (t.usage.output - 1) as f64;
                    series.time_per_output_token.get().observe(per);
                }
            }
            series.succeeded.get().inc();
        } else {
            series.failed.get().inc();
        }
        if let Some(cost) = t.cost_usd.filter(|c| *c > 0.0) {
            series.cost_usd.get().inc_by(cost);
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
