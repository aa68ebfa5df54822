//! What a request may cost, measured before it is sent: its input tokens, counted locally, and
//! its output cap (injected into the request when a rule asks for it and the client named none).

use serde_json::Value;
use sluice_config::ir::RateLimits;
use sluice_llm::request::InferenceRequest;
use sluice_llm::tokens::{count_input, requested_output_cap, BodyView};
use sluice_llm::Operation;

use super::Estimate;
use crate::ai::Intake;

/// Bodies from this size are counted on the blocking pool (~30 µs per KB: a large one would
/// stall the other requests of this worker thread).
const COUNT_INLINE_BELOW: usize = crate::ai::MEASURE_INLINE_BELOW;

/// The estimate of `intake` under `policies` (all that apply: the route's or Gateway's and those
/// of the rule's AI backends). Injects the smallest `defaultMaxTokens` of the rules that ask
/// for it when the client sent no cap.
pub async fn estimate(intake: Option<&mut Intake>, policies: &[&RateLimits]) -> Estimate {
    let Some(intake) = intake else {
        return Estimate::default();
    };
    let op = intake.op;
    let Some(request) = intake.request.as_mut() else {
        return Estimate::default();
    };
    let produces_output = cap_field(op).is_some();
    let counts = policies.iter().any(|p| p.counts_tokens());
    // Counting reads neither the model nor the output cap, the only fields the gateway changes,
    // so counting before a cap is injected counts the body as sent. The intake measured the
    // body as it read it when a limit on the listener counts tokens and the body is small.
    let (input, mut requested_cap) = if let Some(m) = request.measured() {
        (if counts { m.input_tokens } else { 0 }, m.output_cap)
    } else if let Some(read) = read_received(op, request, counts).await {
        read
    } else {
        read_parsed(op, request, counts).await
    };
    if requested_cap.is_none() {
        let inject = policies
            .iter()
            .flat_map(|p| &p.rules)
            .filter(|r| r.inject_max_tokens)
            .map(|r| r.default_max_tokens)
            .min();
        if let (Some(cap), Some(field)) = (inject, cap_field(op)) {
            request.set_field(field, Value::from(cap));
            requested_cap = Some(cap);
        }
    }
    Estimate {
        input,
        requested_cap,
        produces_output,
        price: intake.settings.prices.get(&request.model).copied(),
    }
}

/// Input tokens (when `counts`) and output cap, read straight from the bytes received without
/// building the body; `None` when the body was changed since or cannot be read that way.
async fn read_received(
    op: Operation,
    request: &InferenceRequest,
    counts: bool,
) -> Option<(u64, Option<u64>)> {
    let raw = request.received()?;
    let read = move |model: &str, raw: &[u8]| {
        let view = BodyView::parse(op, raw).ok()?;
        let input = if counts { view.count_input(model) } else { 0 };
        Some((input, view.output_cap()))
    };
    if raw.len() < COUNT_INLINE_BELOW {
        return read(&request.model, raw);
    }
    let (raw, model) = (raw.clone(), request.model.clone());
    // The counter never panics; if the task is lost anyway, the parsed body is read instead.
    tokio::task::spawn_blocking(move || read(&model, &raw))
        .await
        .ok()
        .flatten()
}

/// Input tokens (when `counts`) and output cap of the body as parsed (built if need be).
async fn read_parsed(
    op: Operation,
    request: &InferenceRequest,
    counts: bool,
) -> (u64, Option<u64>) {
    let cap = requested_output_cap(op, request.body());
    let input = if !counts {
        0
    } else if request.raw_len() < COUNT_INLINE_BELOW {
        count_input(op, &request.model, request.body())
    } else {
        let copy = request.clone();
        tokio::task::spawn_blocking(move || count_input(op, &copy.model, copy.body()))
            .await
            // The counter never panics; if the task is lost anyway, the request is counted
            // at one token per byte, which is never below the truth.
            .unwrap_or(request.raw_len() as u64)
    };
    (input, cap)
}

/// The field an output cap is injected as, in the client's own schema; `None` for operations
/// without output tokens.
fn cap_field(op: Operation) -> Option<&'static str> {
    match op {
        // The current name; `max_tokens` is refused by OpenAI's reasoning models, and every
        // translation reads both.
        Operation::ChatCompletions => Some("max_completion_tokens"),
        Operation::Completions | Operation::Messages => Some("max_tokens"),
        Operation::Responses => Some("max_output_tokens"),
        Operation::Embeddings | Operation::Models | Operation::CountTokens => None,
    }
}
