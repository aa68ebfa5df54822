//! The AI path after routing: choose candidates, try them in order while nothing has reached
//! the client, and adapt the answer.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST};
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, Request, Response, StatusCode};
use sluice_config::ir::{AiBackend, AiRouteSettings, BackendTarget, ListenerIr, RuleIr};
use sluice_llm::mock;
use sluice_llm::plan::{self, Call};
use sluice_llm::provider::{Credential, ProviderKind};
use sluice_llm::respond;
use sluice_llm::stream::StreamAdapter;
use sluice_llm::{Operation, TranslateError};

use super::stream_body::{AiStream, MockStream};
use super::tally::{lock, SharedTally};
use super::{models, retry_after_secs, AiError, Intake};
use crate::body::{self, Body};
use crate::limits::{self, lock_held, Admission, Spent};
use crate::proxy::{Proxy, Runtime};

/// Provider answers read whole (non-streamed) are bounded too.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;
const MAX_ERROR_BYTES: usize = 64 * 1024;
const X_API_KEY: http::HeaderName = http::HeaderName::from_static("x-api-key");

/// What one attempt came to.
enum Attempt {
    Answer(Response<Body>),
    /// The provider failed in a way another attempt may fix (connect error, timeout, 429, 5xx).
    Retry(AiError, Option<Duration>),
    /// Final: the client's request is at fault, or a provider said so (4xx).
    Final(AiError),
    /// This backend cannot serve the request (translation unsupported): try the next.
    Skip,
}

/// Everything an AI request needs from the handler.
pub struct ServeAi<'a> {
    pub rt: &'a Runtime,
    pub listener: &'a ListenerIr,
    pub rule: &'a RuleIr,
    pub intake: Intake,
    pub client_headers: &'a HeaderMap,
    /// Identity headers an access policy set, forwarded to the provider (before any signing).
    pub identity_headers: Option<&'a sluice_policy::auth::access::IdentityHeaders>,
    /// Headers payload processors set: configuration, so forwarded like identity headers.
    pub processor_headers: &'a [http::HeaderName],
    pub request_id: &'a HeaderValue,
    pub started: Instant,
    pub tally: SharedTally,
    /// What an AI backend's own rate limits key on and reserve.
    pub limit_facts: crate::limits::Facts<'a>,
    /// Set when some rate-limit policy applies to this request.
    pub estimate: Option<crate::limits::Estimate>,
    /// Where a backend's reservation goes once its answer is on the way.
    pub held: crate::limits::HeldList,
}

impl Proxy {
    pub(crate) async fn serve_ai(&self, s: ServeAi<'_>) -> Result<Response<Body>, AiError> {
        let op = s.intake.op;
        {
            let mut t = lock(&s.tally);
            t.operation = op.otel_name();
        }
        let Some(request) = &s.intake.request else {
            // `GET /v1/models`: answered from configuration.
            if op == Operation::Models {
                return Ok(json_response(
                    StatusCode::OK,
                    Bytes::from(models::list(s.listener).to_string()),
                ));
            }
            return Err(AiError::new(
                StatusCode::NOT_FOUND,
                "unknown_url",
                "unknown inference endpoint",
            ));
        };
        {
            let mut t = lock(&s.tally);
            t.request_model = request.model.clone();
            t.stream = request.stream;
        }
        let merged;
        let settings = match s.rule.ai.as_deref() {
            Some(overrides) => {
                merged = s.intake.settings.route.with(overrides);
                &merged
            }
            None => &s.intake.settings.route,
        };
        let candidates = self.candidates(s.rt, s.rule, op, &request.model, settings)?;
        // Default: one attempt per candidate, plus, when `maxRetryAfter` allows waits, one more so
        // the last candidate's short `Retry-After` can actually be waited out. Without it a lone
        // backend's 429 was never retried unless `maxAttempts` was also raised, so
        // `maxRetryAfter` on its own did nothing.
        let max_attempts = settings
            .failover
            .max_attempts
            .unwrap_or_else(|| {
                candidates.len() as u32 + u32::from(!settings.failover.max_retry_after.is_zero())
            })
            .max(1);
        let mut attempts = 0;
        let mut i = 0;
        let mut last: Option<AiError> = None;
        while i < candidates.len() && attempts < max_attempts {
            let backend = candidates[i];
            // A backend whose own limit or budget is spent is passed over like an unavailable
            // one: the next candidate may have quota left.
            let reservation = match (&backend.rate_limits, &s.estimate) {
                (Some(policy), Some(estimate)) => {
                    match self
                        .limits
                        .admit(&self.metrics, policy, &s.limit_facts, estimate)
                        .await
                    {
                        Admission::Admitted(held, _) => Some(held),
                        Admission::Refused(r) => {
                            tracing::debug!(backend = %backend.name, "AI backend's rate limit reached; trying the next");
                            let mut e = r.error;
                            e.retry_after = r
                                .retry_after
                                .map(|w| HeaderValue::from(limits::retry_after_secs(w)));
                            last = Some(e);
                            i += 1;
                            continue;
                        }
                    }
                }
                _ => None,
            };
            attempts += 1;
            lock(&s.tally).attempts = attempts;
            let health = &s.rt.ai_health[backend.id];
            // Claims the half-open probe when the rest is over; a resting backend reached here
            // is the last resort and is tried anyway.
            let _ = health.admit(self.epoch);
            let outcome = self.attempt(&s, backend).await;
            if let Some(held) = reservation {
                match &outcome {
                    Attempt::Answer(_) => lock_held(&s.held).push(held),
                    // Refused, failed or passed over: the provider charged nothing.
                    _ => self.limits.settle(held, Spent::Nothing, &self.metrics),
                }
            }
            match outcome {
                Attempt::Answer(resp) => {
                    health.success();
                    self.note_backend(&s.tally, backend);
                    return Ok(resp);
                }
                Attempt::Final(e) => {
                    self.note_backend(&s.tally, backend);
                    return Err(e);
                }
                Attempt::Skip => {
                    attempts -= 1;
                    i += 1;
                }
                Attempt::Retry(e, retry_after) => {
                    self.note_backend(&s.tally, backend);
                    if health.failure(&settings.failover, self.epoch) {
                        tracing::warn!(backend = %backend.name, "AI backend ejected after consecutive failures");
                    }
                    tracing::debug!(backend = %backend.name, status = %e.status, error = %e.message, "AI attempt failed");
                    last = Some(e);
                    if i + 1 < candidates.len() {
                        self.count_failed_attempt(backend);
                        i += 1;
                        continue;
                    }
                    // The last candidate asked to come back later: wait if the policy allows.
                    match retry_after {
                        Some(wait)
                            if wait <= settings.failover.max_retry_after
                                && attempts < max_attempts =>
                        {
                            self.count_failed_attempt(backend);
                            tokio::time::sleep(wait).await;
                        }
                        _ => break,
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            AiError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_operation",
                "no backend of this route can serve this request",
            )
        }))
    }

    /// A failed attempt before failover: counted here, since the exchange reports only the backend
    /// that ended it.
    fn count_failed_attempt(&self, b: &AiBackend) {
        use crate::metrics::{AiBackendLabels, Label};
        self.metrics
            .gen_ai
            .backend_requests
            .get_or_create(&AiBackendLabels {
                backend: Label(b.name.clone()),
                provider: b.provider.otel_name(),
                region: Label(b.region.clone().unwrap_or_else(|| Arc::from(""))),
                outcome: "failover",
            })
            .inc();
    }

    fn note_backend(&self, tally: &SharedTally, b: &AiBackend) {
        let mut t = lock(tally);
        t.provider = b.provider.otel_name();
        t.backend = Some(b.name.clone());
        t.region = b.region.clone();
    }

    /// The rule's AI backends that can serve this request, in the order to try them.
    fn candidates<'r>(
        &self,
        rt: &Runtime,
        rule: &'r RuleIr,
        op: Operation,
        model: &str,
        settings: &AiRouteSettings,
    ) -> Result<Vec<&'r Arc<AiBackend>>, AiError> {
        let all: Vec<(u32, &Arc<AiBackend>)> = rule
            .backends
            .iter()
            .filter(|b| b.weight > 0)
            .filter_map(|b| match &b.target {
                BackendTarget::Ai(ai) => Some((b.weight, ai)),
                _ => None,
            })
            .collect();
        if all.is_empty() {
            return Err(AiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "invalid_backend",
                "the route has no valid backend",
            ));
        }
        let serving: Vec<_> = all
            .into_iter()
            .filter(|(_, b)| b.provider.supports(op))
            .collect();
        if serving.is_empty() {
            return Err(AiError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_operation",
                format!(
                    "this operation ({}) is not supported by the providers of this route",
                    op.otel_name()
                ),
            ));
        }
        let serving: Vec<_> = serving
            .into_iter()
            .filter(|(_, b)| b.serves(model))
            .collect();
        if serving.is_empty() {
            return Err(AiError::new(
                StatusCode::NOT_FOUND,
                "model_not_found",
                format!("The model `{model}` does not exist or is not served by this gateway"),
            ));
        }
        let allowed: Vec<_> = serving
            .into_iter()
            .filter(|(_, b)| settings.region_allowed(b.region.as_deref()))
            .collect();
        if allowed.is_empty() {
            let regions = settings
                .allowed_regions
                .as_deref()
                .unwrap_or_default()
                .join(", ");
            return Err(AiError::new(StatusCode::SERVICE_UNAVAILABLE, "region_unavailable", format!("no backend for model `{model}` is available in the allowed regions ({regions})")));
        }
        // Priority groups in order; weighted random order inside each.
        let mut priorities: Vec<u32> = allowed.iter().map(|(_, b)| b.priority).collect();
        priorities.sort_unstable();
        priorities.dedup();
        let mut ordered = Vec::with_capacity(allowed.len());
        for p in priorities {
            let mut group: Vec<_> = allowed
                .iter()
                .filter(|(_, b)| b.priority == p)
                .copied()
                .collect();
            while !group.is_empty() {
                let total: u32 = group.iter().map(|(w, _)| *w).sum();
                let mut n = fastrand::u32(..total.max(1));
                let idx = group
                    .iter()
                    .position(|(w, _)| {
                        if n < *w {
                            true
                        } else {
                            n -= w;
                            false
                        }
                    })
                    .unwrap_or(0);
                ordered.push(group.remove(idx).1);
            }
        }
        // Ejected backends go last: tried only when every healthy one failed.
        let (mut ready, ejected): (Vec<_>, Vec<_>) = ordered
            .into_iter()
            .partition(|b| !rt.ai_health[b.id].resting(self.epoch));
        ready.extend(ejected);
        Ok(ready)
    }

    async fn attempt(&self, s: &ServeAi<'_>, b: &AiBackend) -> Attempt {
        let Some(request) = &s.intake.request else {
            return Attempt::Skip;
        };
        let upstream_model = b.upstream_model(&request.model);
        let mut call = match plan::plan(&b.provider, request, upstream_model) {
            Ok(c) => c,
            Err(TranslateError::Unsupported(what)) => {
                tracing::debug!(backend = %b.name, %what, "backend cannot serve this request");
                return Attempt::Skip;
            }
            Err(e) => {
                return Attempt::Final(AiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    e.to_string(),
                ))
            }
        };
        if let ProviderKind::Mock(m) = &b.provider {
            return self.mock_attempt(s, b, m, call).await;
        }
        let Some(cluster) = &b.cluster else {
            return Attempt::Skip;
        };
        let Some(upstream) = s.rt.upstreams.get(cluster.id) else {
            return Attempt::Skip;
        };
        let Some(picked) = upstream.pick() else {
            return Attempt::Retry(
                AiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no_healthy_upstream",
                    "the provider has no ready endpoint",
                ),
                None,
            );
        };
        let authority = match &b.host {
            Some(h) => {
                Authority::try_from(&**h).unwrap_or_else(|_| picked.fallback_authority.clone())
            }
            None => picked.fallback_authority.clone(),
        };
        for name in s
            .identity_headers
            .into_iter()
            .flat_map(|h| h.names())
            .chain(s.processor_headers)
        {
            if let Some(v) = s.client_headers.get(name) {
                call.headers.insert(name.clone(), v.clone());
            }
        }
        if b.passthrough_client_auth {
            for name in [AUTHORIZATION, X_API_KEY] {
                if let Some(v) = s.client_headers.get(&name) {
                    call.headers.insert(name, v.clone());
                }
            }
        } else {
            let token = match (&b.provider, &b.credential) {
                (ProviderKind::Vertex { .. }, Credential::ServiceAccount(key)) => {
                    match self.vertex_tokens.token(key, &self.transports).await {
                        Ok(t) => Some(t),
                        Err(e) => {
                            tracing::warn!(backend = %b.name, error = %e, "no Vertex AI access token");
                            return Attempt::Retry(
                                AiError::new(
                                    StatusCode::BAD_GATEWAY,
                                    "provider_auth_error",
                                    "could not obtain an access token for the provider",
                                ),
                                None,
                            );
                        }
                    }
                }
                _ => None,
            };
            if let Err(e) = plan::authorize(
                &b.provider,
                &b.credential,
                &mut call,
                authority.as_str(),
                SystemTime::now(),
                token.as_ref(),
            ) {
                tracing::warn!(backend = %b.name, error = %e, "cannot authorize the provider request");
                return Attempt::Retry(
                    AiError::new(
                        StatusCode::BAD_GATEWAY,
                        "provider_auth_error",
                        "the gateway could not authorize the provider request",
                    ),
                    None,
                );
            }
        }
        call.headers.insert(
            HOST,
            HeaderValue::from_str(authority.as_str())
                .unwrap_or_else(|_| HeaderValue::from_static("")),
        );
        call.headers.insert(
            http::HeaderName::from_static("x-request-id"),
            s.request_id.clone(),
        );
        let pq = match PathAndQuery::try_from(call.path_and_query.as_str()) {
            Ok(pq) => pq,
            Err(_) => {
                return Attempt::Final(AiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "the model name cannot be used in a provider URL",
                ))
            }
        };
        let Ok(uri) = upstream.uri(authority, &pq) else {
            return Attempt::Skip;
        };
        let mut req = Request::new(body::full(call.body.clone()));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = uri;
        *req.headers_mut() = std::mem::take(&mut call.headers);
        let sent_at = Instant::now();
        let sent = picked.client.request(req);
        let result = match s.rule.timeouts.backend_request {
            Some(limit) => match tokio::time::timeout(limit, sent).await {
                Ok(r) => r,
                Err(_) => {
                    lock(&s.tally).upstream_time += sent_at.elapsed();
                    return Attempt::Retry(
                        AiError::new(
                            StatusCode::GATEWAY_TIMEOUT,
                            "timeout",
                            "the provider did not respond in time",
                        ),
                        None,
                    );
                }
            },
            None => sent.await,
        };
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                lock(&s.tally).upstream_time += sent_at.elapsed();
                let (status, code, msg) = if e.is_connect() {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "upstream_connect_error",
                        "could not connect to the provider",
                    )
                } else {
                    (
                        StatusCode::BAD_GATEWAY,
                        "upstream_reset",
                        "the provider closed the connection before responding",
                    )
                };
                return Attempt::Retry(AiError::new(status, code, msg), None);
            }
        };
        let (parts, incoming) = resp.into_parts();
        if let (ProviderKind::Vertex { .. }, Credential::ServiceAccount(key)) =
            (&b.provider, &b.credential)
        {
            if matches!(parts.status.as_u16(), 401 | 403) {
                self.vertex_tokens.invalidate(key);
            }
        }
        self.answer(
            s,
            b,
            &call,
            parts.status,
            &parts.headers,
            body::boxed(incoming),
            sent_at,
        )
        .await
    }

    /// Turns a provider's response into the client's, or into an attempt outcome on error.
    #[allow(clippy::too_many_arguments)]
    async fn answer(
        &self,
        s: &ServeAi<'_>,
        b: &AiBackend,
        call: &Call,
        status: StatusCode,
        headers: &HeaderMap,
        incoming: Body,
        sent_at: Instant,
    ) -> Attempt {
        let d = &call.decoding;
        if !status.is_success() {
            let bytes = read_limited(incoming, MAX_ERROR_BYTES)
                .await
                .unwrap_or_default();
            lock(&s.tally).upstream_time += sent_at.elapsed();
            return provider_error(b, d.wire, status, headers, &bytes);
        }
        let price = s
            .intake
            .settings
            .prices
            .get(&d.model)
            .or_else(|| {
                let requested = s.intake.request.as_ref()?;
                s.intake.settings.prices.get(&requested.model)
            })
            .copied();
        if d.stream {
            let adapter = StreamAdapter::new(d);
            let deadline = s.rule.timeouts.request.map(|t| (s.started + t).into());
            let body = AiStream::new(
                incoming,
                adapter,
                s.tally.clone(),
                price,
                s.started,
                sent_at,
                deadline,
            );
            let mut resp = Response::new(body::boxed(body));
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            resp.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            return Attempt::Answer(resp);
        }
        let bytes = match read_limited(incoming, MAX_ANSWER_BYTES).await {
            Ok(b) => b,
            Err(_) => {
                lock(&s.tally).upstream_time += sent_at.elapsed();
                return Attempt::Retry(
                    AiError::new(
                        StatusCode::BAD_GATEWAY,
                        "upstream_reset",
                        "the provider's answer could not be read",
                    ),
                    None,
                );
            }
        };
        lock(&s.tally).upstream_time += sent_at.elapsed();
        match respond::decode(d, bytes) {
            Ok(decoded) => {
                let mut t = lock(&s.tally);
                t.usage = decoded.usage;
                t.response_model = decoded.model;
                t.completed = true;
                t.cost_usd = price.map(|p| p.cost(&decoded.usage));
                t.time_to_first_token = Some(s.started.elapsed());
                drop(t);
                Attempt::Answer(json_response(StatusCode::OK, decoded.body))
            }
            Err(e) => {
                tracing::warn!(backend = %b.name, error = %e, "provider answer could not be translated");
                Attempt::Retry(
                    AiError::new(
                        StatusCode::BAD_GATEWAY,
                        "invalid_provider_response",
                        e.to_string(),
                    ),
                    None,
                )
            }
        }
    }

    async fn mock_attempt(
        &self,
        s: &ServeAi<'_>,
        b: &AiBackend,
        m: &sluice_llm::provider::MockSettings,
        call: Call,
    ) -> Attempt {
        let started = Instant::now();
        if !m.latency.is_zero() {
            tokio::time::sleep(m.latency).await;
        }
        let n = s.rt.ai_health[b.id]
            .mock_count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if let Some(status) = m.error_status.and_then(|c| StatusCode::from_u16(c).ok()) {
            if n.is_multiple_of(u64::from(m.error_every.max(1))) {
                let body = sluice_llm::errors::body(
                    sluice_llm::Dialect::OpenAI,
                    status.as_u16(),
                    "mock_error",
                    "the mock provider was configured to fail this request",
                );
                let mut headers = HeaderMap::new();
                if status == StatusCode::TOO_MANY_REQUESTS {
                    headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
                }
                return self
                    .answer(s, b, &call, status, &headers, body::full(body), started)
                    .await;
            }
        }
        let body: serde_json::Map<String, serde_json::Value> =
            match serde_json::from_slice(&call.body) {
                Ok(v) => v,
                Err(e) => {
                    return Attempt::Final(AiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        e.to_string(),
                    ))
                }
            };
        let model = call.decoding.model.clone();
        let upstream = match mock::answer(call.decoding.op, &body, &model) {
            mock::Answer::Json(v) => body::full(Bytes::from(v.to_string())),
            mock::Answer::Stream(events) => {
                let done_marker = call.decoding.op != Operation::Responses;
                body::boxed(MockStream::new(events, done_marker, m.chunk_interval))
            }
        };
        self.answer(
            s,
            b,
            &call,
            StatusCode::OK,
            &HeaderMap::new(),
            upstream,
            started,
        )
        .await
    }
}

/// A provider's error status to an attempt outcome: 429 and 5xx may succeed elsewhere; a
/// rejected gateway credential is the gateway's problem (502, never the client's 401); other
/// 4xx are the client's and end the request with the provider's message.
fn provider_error(
    b: &AiBackend,
    wire: sluice_llm::provider::Wire,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Attempt {
    let message = respond::provider_error_message(wire, body);
    let code = status.as_u16();
    // The Gemini API refuses a wrong API key with 400 (reason API_KEY_INVALID), not 401: without
    // this it reached the client as its own bad request ("API key not valid"), and failover
    // stopped, although the key at fault is the gateway's.
    let credential_rejected = matches!(code, 401 | 403)
        || (code == 400
            && wire == sluice_llm::provider::Wire::Gemini
            && sluice_llm::gemini::api_key_rejected(body));
    match code {
        429 => {
            let secs = retry_after_secs(headers);
            let mut e = AiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                message,
            );
            e.retry_after = secs.and_then(|s| HeaderValue::from_str(&s.to_string()).ok());
            Attempt::Retry(e, secs.map(Duration::from_secs))
        }
        _ if credential_rejected && !b.passthrough_client_auth => {
            tracing::warn!(backend = %b.name, status = code, "the provider rejected the gateway's credentials");
            Attempt::Retry(
                AiError::new(
                    StatusCode::BAD_GATEWAY,
                    "provider_auth_error",
                    "the provider rejected the gateway's credentials",
                ),
                None,
            )
        }
        500..=599 => {
            let status = if code == 529 {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                status
            };
            Attempt::Retry(AiError::new(status, "provider_error", message), None)
        }
        _ => Attempt::Final(AiError::new(status, "provider_error", message)),
    }
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(body::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

async fn read_limited(b: Body, limit: usize) -> Result<Bytes, ()> {
    body::collect_limited(b, limit).await.map_err(|_| ())
}
