//! One request's journey through the core gateway:
//!
//! 1. load the runtime in effect (the request keeps it to the end, whatever reloads happen);
//! 2. match a route (listener by host, virtual host, first entry in precedence order) or 404;
//! 3. apply the rule's filters (header modifiers, redirect, rewrite, mirrors);
//! 4. choose a backend by weight and apply its filters; 500 for an invalid one, 503 for no endpoint;
//! 5. forward with timeouts and retries; stream the response back, applying response filters;
//! 6. when the response body ends (or the client goes), write metrics and the access log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, HOST, UPGRADE};
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sluice_config::ir::{BackendTarget, Filter, HeaderModifier, Mirror, Redirect, Rewrite, RuleIr};
use sluice_llm::Dialect;

use crate::access_log::{IdentityRecord, Record};
use crate::ai::tally::{lock, SharedTally};
use crate::ai::{self, AiError, Intake, ServeAi};
use crate::body::{self, Body, Deadline, Metered};
use crate::filters::{modify_headers, redirect, rewrite_path, RedirectContext};
use crate::headers::{append_forwarded, strip_hop_by_hop};
use crate::limits::{
    self, lock_held, Admission, Facts, Held, HeldList, RateHeaders, Refusal, Spent,
};
use crate::metrics::{AuthLabels, BackendLabels, Label, RequestLabels, RouteLabels};
use crate::pipeline::{BodyBuf, RequestPayload, ResponseWork};
use crate::proxy::{ConnInfo, Proxy, Runtime};
use crate::reply::LocalReply;
use crate::routing::{self, RequestView};
use crate::tee::Tee;
use crate::upstream::Upstream;

/// Bodies up to this size are buffered so a retry can resend them; larger ones are not retried.
const MAX_REPLAY_BODY: u64 = 64 * 1024;
const REQUEST_ID: &str = "x-request-id";

/// Request-scoped facts gathered along the way, for the log and metrics.
struct Exchange {
    started: Instant,
    wall: SystemTime,
    request_id: HeaderValue,
    method: Method,
    host: String,
    path: String,
    version: Version,
    gateway: Arc<str>,
    listener: Arc<str>,
    route: Arc<str>,
    backend: Arc<str>,
    upstream_address: Option<Arc<str>>,
    upstream_duration: Option<Duration>,
    /// When the last upstream attempt started (`timeouts.backendRequest` runs from there).
    attempt_started: Option<Instant>,
    reason: Option<&'static str>,
    bytes_in: Arc<AtomicU64>,
    /// Set for inference API requests on AI listeners: errors answer in this dialect.
    dialect: Option<Dialect>,
    /// The requested model, for messages.
    model: Option<String>,
    /// AI facts for metrics and the access log, when the request went the AI path.
    ai: Option<SharedTally>,
    /// Who called, when an access policy applied and admitted them.
    identity: Option<sluice_policy::auth::Identity>,
    /// Rate-limit reservations to settle when the response ends.
    held: HeldList,
    /// The route's rate-limit state, for the `x-ratelimit-*` headers.
    rate_headers: Option<RateHeaders>,
    /// Request headers payload processors set (forwarded to AI providers).
    processor_headers: Vec<http::HeaderName>,
    /// ext_proc streams to continue with the response.
    ext_sessions: crate::pipeline::OpenSessions,
}

/// Why the gateway answered a request itself.
enum Reply {
    Local(LocalReply),
    Ai(AiError),
    /// Refused by access control: 401 (with a `WWW-Authenticate` challenge) or 403.
    Auth(AiError),
    /// Refused by a rate limit or budget (429), or by a store that fails closed (503).
    Limited(Refusal),
    /// Refused by a payload processor (a guardrail, an external processor), or a processor
    /// failed under FailClosed.
    Processor(crate::pipeline::Rejection),
}

impl From<LocalReply> for Reply {
    fn from(r: LocalReply) -> Reply {
        Reply::Local(r)
    }
}

impl From<AiError> for Reply {
    fn from(e: AiError) -> Reply {
        Reply::Ai(e)
    }
}

impl Proxy {
    /// Serves one request. Never fails: every problem becomes a response with the right status.
    pub async fn serve(
        self: Arc<Self>,
        conn: Arc<ConnInfo>,
        req: Request<Incoming>,
    ) -> Response<Body> {
        conn.request_started(); // ended in `finish`, when the response body is done
        let rt = self.runtime();
        let request_id = req
            .headers()
            .get(REQUEST_ID)
            .cloned()
            .unwrap_or_else(new_request_id);
        let empty: Arc<str> = Arc::from("");
        let mut x = Exchange {
            started: Instant::now(),
            wall: if self.access_log.enabled() {
                SystemTime::now()
            } else {
                SystemTime::UNIX_EPOCH
            },
            request_id,
            method: req.method().clone(),
            host: String::new(),
            // Only the access log reads these; skip the copies when it is off.
            path: if self.access_log.enabled() {
                req.uri().path().to_string()
            } else {
                String::new()
            },
            version: req.version(),
            gateway: empty.clone(),
            listener: empty.clone(),
            route: empty.clone(),
            backend: empty,
            upstream_address: None,
            upstream_duration: None,
            attempt_started: None,
            reason: None,
            bytes_in: Arc::new(AtomicU64::new(0)),
            dialect: None,
            model: None,
            ai: None,
            identity: None,
            held: HeldList::default(),
            rate_headers: None,
            processor_headers: Vec::new(),
            ext_sessions: Default::default(),
        };
        let resp = match self.forward(&rt, &conn, req, &mut x).await {
            Ok(resp) => resp,
            Err(Reply::Local(reply)) => {
                x.reason = Some(reply.reason());
                match x.dialect {
                    Some(d) => AiError::from_local(reply, x.model.as_deref()).response(d),
                    None => reply.response(),
                }
            }
            Err(Reply::Ai(e)) => {
                x.reason = Some(e.code);
                e.response(x.dialect.unwrap_or(Dialect::OpenAI))
            }
            Err(Reply::Auth(e)) => {
                x.reason.get_or_insert(e.code);
                let mut resp = e.response(x.dialect.unwrap_or(Dialect::OpenAI));
                if e.status == StatusCode::UNAUTHORIZED {
                    crate::auth::challenge(resp.headers_mut());
                }
                resp
            }
            Err(Reply::Limited(r)) => {
                x.reason = Some(r.error.code);
                r.response(x.dialect.unwrap_or(Dialect::OpenAI))
            }
            Err(Reply::Processor(r)) => {
                x.reason = Some(r.code);
                r.response(x.dialect)
            }
        };
        // AI clients match errors to logs by request id (the OpenAI SDK reads it from errors).
        let mut resp = resp;
        if let Some(h) = &x.rate_headers {
            h.write(resp.headers_mut());
        }
        if x.dialect.is_some() {
            resp.headers_mut().insert(REQUEST_ID, x.request_id.clone());
        }
        self.finish(conn, x, resp)
    }

    async fn forward(
        &self,
        rt: &Arc<Runtime>,
        conn: &ConnInfo,
        req: Request<Incoming>,
        x: &mut Exchange,
    ) -> Result<Response<Body>, Reply> {
        let mut req = req.map(body::boxed);
        let host = request_host(&req);
        if self.access_log.enabled() {
            x.host = host.clone();
        }
        let socket = rt.socket(conn.socket).ok_or(LocalReply::NoRoute)?;
        if let Some(sni) = conn.sni.as_deref() {
            // The certificate was chosen for the SNI's listener; a Host of another listener on
            // the same connection must not ride on it (GEP-3567).
            if sni != host {
                let by_sni = socket.listener_for(sni).map(Arc::as_ptr);
                if by_sni.is_some() && by_sni != socket.listener_for(&host).map(Arc::as_ptr) {
                    return Err(LocalReply::Misdirected.into());
                }
            }
        }
        if let routing::Normalized::Changed(uri) = routing::normalized_uri(req.uri()) {
            *req.uri_mut() = uri;
        }
        // AI listeners: inference requests are read and parsed before routing, so routes can
        // match on the model. A client's own model header is never trusted.
        let mut intake: Option<Intake> = None;
        let listener = socket.listener_for(&host);
        if let Some((settings, measure)) =
            listener.and_then(|l| Some((l.ai.clone()?, l.counts_tokens)))
        {
            req.headers_mut().remove(ai::MODEL_HEADER);
            if let Some(op) = ai::operation(req.method(), req.uri().path()) {
                x.dialect = Some(op.dialect());
                let (mut parts, incoming) = req.into_parts();
                let (taken, bytes) =
                    ai::intake(op, &settings, measure, &mut parts.headers, incoming).await?;
                x.model = taken.request.as_ref().map(|r| r.model.clone());
                intake = Some(taken);
                req = Request::from_parts(parts, body::full(bytes));
            }
        }
        // PreRouting processors: routing then sees the headers they set.
        if let Some(pre) = listener.and_then(|l| l.pre_routing.as_ref()) {
            self.run_phase(pre, &mut req, &mut intake, rt, x).await?;
        }
        let view = RequestView {
            host: &host,
            method: req.method(),
            path: req.uri().path(),
            query: req.uri().query(),
            headers: req.headers(),
        };
        let hit = routing::find(socket, &view).ok_or(LocalReply::NoRoute)?;
        let rule: &Arc<RuleIr> = &hit.entry.rule;
        x.gateway = hit.listener.gateway.clone();
        x.listener = hit.listener.name.clone();
        x.route = rule.route.clone();
        let prefix = routing::matched_prefix(&hit.entry.matcher);

        // PostRouting access control: the route's AccessPolicy, else its Gateway's.
        let access = rule.access.as_ref().or(hit.listener.access.as_ref());
        if let Some(policy) = access {
            let (mut parts, body) = req.into_parts();
            if let (Some(_), Some(gateway_policy)) = (&rule.access, &hit.listener.access) {
                // The Gateway's identity headers are not set on this route, but a client must
                // not be able to send them either.
                for name in gateway_policy.identity_headers.names() {
                    parts.headers.remove(name);
                }
            }
            let target = crate::auth::Target {
                method: parts.method.as_str(),
                host: &host,
                path: parts.uri.path(),
                model: x.model.as_deref(),
                operation: intake.as_ref().map(|i| i.op.otel_name()),
                route: &rule.route,
            };
            let admitted = self
                .auth
                .admit(
                    policy,
                    &mut parts.headers,
                    conn.peer_cert.as_deref(),
                    &target,
                    &self.transports,
                )
                .await;
            let labels = |outcome, reason, method| AuthLabels {
                policy: Label(policy.name.clone()),
                outcome,
                reason,
                method,
            };
            match admitted {
                Ok(identity) => {
                    self.metrics
                        .auth_decisions
                        .get_or_create(&labels("allowed", "", identity.method.as_str()))
                        .inc();
                    x.identity = Some(identity);
                }
                Err(refusal) => {
                    let outcome = if refusal.error.status == StatusCode::FORBIDDEN {
                        "forbidden"
                    } else {
                        "unauthenticated"
                    };
                    self.metrics
                        .auth_decisions
                        .get_or_create(&labels(outcome, refusal.reason, ""))
                        .inc();
                    x.reason = Some(refusal.reason);
                    return Err(Reply::Auth(refusal.error));
                }
            }
            req = Request::from_parts(parts, body);
        }

        // PostRouting processors: the Gateway's, then the route's (guardrails see the caller
        // admitted, and run before tokens are reserved).
        for post in [&hit.listener.post_routing, &rule.post_routing]
            .into_iter()
            .flatten()
        {
            self.run_phase(post, &mut req, &mut intake, rt, x).await?;
        }
        let response_work = self.response_work(
            [
                &hit.listener.pre_routing,
                &hit.listener.post_routing,
                &rule.post_routing,
            ],
            &req,
            intake.as_ref().map(|i| i.op),
            x.dialect,
            rt,
            &mut x.ext_sessions,
        );

        // Token rate limits and budgets: the route's policy, else its Gateway's, here; an AI
        // backend's own before each attempt on it.
        let route_limits = rule
            .rate_limits
            .as_ref()
            .or(hit.listener.rate_limits.as_ref());
        let mut policies: Vec<&sluice_config::ir::RateLimits> =
            route_limits.map(|p| &**p).into_iter().collect();
        policies.extend(rule.backends.iter().filter_map(|b| match &b.target {
            BackendTarget::Ai(ai) => ai.rate_limits.as_deref(),
            _ => None,
        }));
        let estimate = if policies.is_empty() {
            None
        } else {
            Some(limits::estimate(intake.as_mut(), &policies).await)
        };
        if let (Some(policy), Some(estimate)) = (route_limits, &estimate) {
            let facts = Facts {
                identity: x.identity.as_ref(),
                headers: req.headers(),
                client: conn.peer.ip(),
                model: x.model.as_deref(),
                route: &rule.route,
            };
            match self
                .limits
                .admit(&self.metrics, policy, &facts, estimate)
                .await
            {
                Admission::Admitted(held, headers) => {
                    lock_held(&x.held).push(held);
                    x.rate_headers = Some(headers);
                }
                Admission::Refused(r) => return Err(Reply::Limited(r)),
            }
        }

        let redirect_to = |r: &sluice_config::ir::Redirect, req: &Request<Body>| {
            let ctx = RedirectContext {
                https: conn.https,
                host: &host,
                path: req.uri().path(),
                query: req.uri().query(),
                listener_port: hit.listener.port,
                matched_prefix: prefix,
            };
            redirect(r, &ctx)
        };
        // Rule filters, then the chosen backend's (a backend redirect answers like a rule's).
        let mut applied = Applied::default();
        if let Some(r) = applied.apply(&rule.filters, req.headers_mut()) {
            return Ok(redirect_to(r, &req));
        }
        if rule
            .backends
            .iter()
            .any(|b| matches!(b.target, BackendTarget::Ai(_)))
        {
            let Some(intake) = intake else {
                return Err(AiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_url",
                    format!(
                        "{} {} is not an inference API this gateway serves",
                        req.method(),
                        req.uri().path()
                    ),
                )
                .into());
            };
            let dialect = x.dialect.unwrap_or(Dialect::OpenAI);
            x.dialect = Some(dialect);
            let tally = SharedTally::default();
            x.ai = Some(tally.clone());
            let mut resp = self
                .serve_ai(ServeAi {
                    rt,
                    listener: hit.listener,
                    rule,
                    intake,
                    client_headers: req.headers(),
                    // A policy that applies has admitted the caller by now (or answered).
                    identity_headers: access.map(|p| &p.identity_headers),
                    processor_headers: &x.processor_headers,
                    request_id: &x.request_id,
                    started: x.started,
                    tally,
                    limit_facts: Facts {
                        identity: x.identity.as_ref(),
                        headers: req.headers(),
                        client: conn.peer.ip(),
                        model: x.model.as_deref(),
                        route: &rule.route,
                    },
                    estimate,
                    held: x.held.clone(),
                })
                .await?;
            for m in &applied.response_mods {
                modify_headers(resp.headers_mut(), m);
            }
            resp.headers_mut().insert(REQUEST_ID, x.request_id.clone());
            if let Some(work) = &response_work {
                resp = self
                    .process_response(work, resp)
                    .await
                    .map_err(Reply::Processor)?;
            }
            return Ok(resp);
        }
        let backend = pick_backend(rule).ok_or(LocalReply::InvalidBackend)?;
        if let Some(r) = applied.apply(&backend.filters, req.headers_mut()) {
            return Ok(redirect_to(r, &req));
        }
        let Applied {
            response_mods,
            rewrite,
            mirrors,
        } = applied;
        let cluster = match &backend.target {
            BackendTarget::Cluster(c) => c,
            BackendTarget::Invalid(_) | BackendTarget::Ai(_) => {
                return Err(LocalReply::InvalidBackend.into())
            }
        };
        x.backend = cluster.name.clone();
        let upstream = rt
            .upstreams
            .get(cluster.id)
            .ok_or(LocalReply::InvalidBackend)?;

        // Path and query after rewrites.
        // Path and query after rewrites; without a rewrite, the request's own (no copy).
        let path_and_query = match rewrite.and_then(|r| r.path.as_ref()) {
            Some(m) => {
                let path = rewrite_path(req.uri().path(), m, prefix);
                let text = match req.uri().query() {
                    Some(q) => format!("{path}?{q}"),
                    None => path,
                };
                PathAndQuery::try_from(text).map_err(|_| LocalReply::InvalidBackend)?
            }
            None => req
                .uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        };

        let client_upgrade =
            if req.version() == Version::HTTP_11 && req.headers().contains_key(UPGRADE) {
                Some(hyper::upgrade::on(&mut req))
            } else {
                None
            };
        let (parts, incoming) = req.into_parts();
        let mut headers = parts.headers;
        let upgrade = strip_hop_by_hop(&mut headers);
        if let Some(proto) = &upgrade {
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(UPGRADE, proto.clone());
        }
        append_forwarded(&mut headers, &conn.client_address, conn.https);
        headers.insert(REQUEST_ID, x.request_id.clone());
        match rewrite.and_then(|r| r.hostname.as_ref()) {
            Some(h) => {
                headers.insert(HOST, h.clone());
            }
            None => {
                if !headers.contains_key(HOST) {
                    if let Some(a) = parts.uri.authority() {
                        if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                            headers.insert(HOST, v);
                        }
                    }
                }
            }
        }

        // Only the access log reports bytes in.
        let mut body: Body = if self.access_log.enabled() {
            let bytes_in = x.bytes_in.clone();
            Metered::new(incoming, move |n, _| {
                bytes_in.store(n, Ordering::Relaxed);
            })
            .boxed()
        } else {
            incoming
        };
        if !mirrors.is_empty() {
            body = self.start_mirrors(rt, &mirrors, &parts.method, &path_and_query, &headers, body);
        }

        let outgoing = Outgoing {
            method: parts.method,
            path_and_query,
            headers,
        };
        let timeouts = rule.timeouts;
        let send = self.send_with_retries(upstream, rule, outgoing, body, x);
        let mut resp = match timeouts.request {
            Some(limit) => tokio::time::timeout(limit, send)
                .await
                .map_err(|_| LocalReply::Timeout)??,
            None => send.await?,
        };

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client) = client_upgrade {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                tokio::spawn(async move {
                    if let (Ok(c), Ok(u)) = (client.await, upstream_upgrade.await) {
                        let mut c = hyper_util::rt::TokioIo::new(c);
                        let mut u = hyper_util::rt::TokioIo::new(u);
                        let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                    }
                });
            }
            let (parts, _) = resp.into_parts();
            return Ok(Response::from_parts(parts, body::empty()));
        }

        let (mut parts, incoming) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        for m in response_mods {
            modify_headers(&mut parts.headers, m);
        }
        parts.version = Version::HTTP_11;
        // GEP-2257: `request` and `backendRequest` last until the response is complete, not
        // just until its headers; a body still streaming at the deadline is cut off.
        let request_deadline = timeouts.request.map(|limit| x.started + limit);
        let backend_deadline = timeouts
            .backend_request
            .zip(x.attempt_started)
            .map(|(limit, started)| started + limit);
        let body = match request_deadline.into_iter().chain(backend_deadline).min() {
            Some(deadline) => Deadline::new(body::boxed(incoming), deadline.into()).boxed(),
            None => body::boxed(incoming),
        };
        let resp = Response::from_parts(parts, body);
        match &response_work {
            Some(work) => self
                .process_response(work, resp)
                .await
                .map_err(Reply::Processor),
            None => Ok(resp),
        }
    }

    /// Runs one pipeline's request side: buffers the body if a processor reads it (up to the
    /// pipeline's limit), runs the processors, and puts back what they changed. An inference
    /// request whose body changed is parsed again (its model may have changed too).
    async fn run_phase(
        &self,
        pipeline: &sluice_config::ir::Pipeline,
        req: &mut Request<Body>,
        intake: &mut Option<Intake>,
        rt: &Runtime,
        x: &mut Exchange,
    ) -> Result<(), Reply> {
        let mut buf: Option<BodyBuf> = None;
        let mut body_too_large = None;
        if pipeline.needs_request_body() {
            match intake.as_mut().and_then(|i| i.request.as_mut()) {
                Some(r) if r.raw_len() > pipeline.max_body_bytes => {
                    body_too_large = Some(pipeline.max_body_bytes)
                }
                // The tree the intake (or an earlier phase) built is reused, not rebuilt.
                Some(r) => buf = Some(BodyBuf::with_tree(r.bytes(), r.lend_tree())),
                None => {
                    let incoming = std::mem::replace(req.body_mut(), body::empty());
                    match body::collect_or_spill(incoming, pipeline.max_body_bytes).await {
                        Ok(body::Buffered::Whole(bytes)) => buf = Some(BodyBuf::new(bytes)),
                        Ok(body::Buffered::Spilled(rest)) => {
                            *req.body_mut() = rest;
                            body_too_large = Some(pipeline.max_body_bytes);
                        }
                        Err(_) => return Err(LocalReply::BadRequestBody.into()),
                    }
                }
            }
        }
        let model_header = req.headers().get(ai::MODEL_HEADER).cloned();
        let model = x.model.clone();
        let (mut parts, mut incoming) =
            std::mem::replace(req, Request::new(body::empty())).into_parts();
        let result = {
            let mut payload = RequestPayload {
                method: &parts.method,
                path: parts.uri.path(),
                headers: &mut parts.headers,
                body: buf.as_mut(),
                op: intake.as_ref().map(|i| i.op),
                model: model.as_deref(),
                upstreams: &rt.upstreams,
                body_too_large,
                set_headers: &mut x.processor_headers,
                sessions: &mut x.ext_sessions,
            };
            self.run_request_pipeline(pipeline, &mut payload).await
        };
        if let Err(rejection) = result {
            *req = Request::from_parts(parts, incoming);
            return Err(Reply::Processor(rejection));
        }
        if let Some(mut buf) = buf {
            let bytes = buf.bytes();
            if buf.changed() {
                parts
                    .headers
                    .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                if let Some(i) = intake.as_mut() {
                    let reparsed = i.read(bytes.clone())
                        .map_err(|e| {
                            tracing::warn!(error = %e, "payload processors left an invalid inference request");
                            Reply::Processor(crate::pipeline::Rejection::new(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "processor_failed",
                                "payload processing produced an invalid request",
                            ))
                        })?;
                    // The model header follows a changed model, unless a processor set it.
                    if parts.headers.get(ai::MODEL_HEADER) == model_header.as_ref() {
                        if let Ok(v) = HeaderValue::from_str(&reparsed.model) {
                            parts.headers.insert(ai::MODEL_HEADER, v);
                        }
                    }
                    x.model = Some(reparsed.model.clone());
                    i.request = Some(reparsed);
                }
            }
            incoming = body::full(bytes);
            if let (Some(r), Some(tree)) = (
                intake.as_mut().and_then(|i| i.request.as_mut()),
                buf.into_tree(),
            ) {
                r.return_tree(tree);
            }
        }
        *req = Request::from_parts(parts, incoming);
        Ok(())
    }

    /// What the response side will need, when some processor acts on answers.
    fn response_work(
        &self,
        pipelines: [&Option<Arc<sluice_config::ir::Pipeline>>; 3],
        req: &Request<Body>,
        op: Option<sluice_llm::Operation>,
        dialect: Option<Dialect>,
        rt: &Arc<Runtime>,
        sessions: &mut crate::pipeline::OpenSessions,
    ) -> Option<ResponseWork> {
        let pipelines: Vec<_> = pipelines
            .into_iter()
            .flatten()
            .filter(|p| p.acts_on_response())
            .cloned()
            .collect();
        if pipelines.is_empty() {
            return None;
        }
        // Only response expressions read the request: guardrails and external processors never
        // pay for the snapshot.
        let request = if pipelines.iter().any(|p| p.reads_request_on_response()) {
            serde_json::json!({
                "method": req.method().as_str(),
                "path": req.uri().path(),
                "headers": crate::pipeline::headers_json(req.headers()),
            })
        } else {
            serde_json::Value::Null
        };
        Some(ResponseWork {
            pipelines,
            request,
            op,
            dialect,
            rt: rt.clone(),
            sessions: std::sync::Mutex::new(std::mem::take(sessions)),
        })
    }

    /// Sends to the upstream, retrying per the rule's policy while the body can be replayed.
    async fn send_with_retries(
        &self,
        upstream: &Upstream,
        rule: &RuleIr,
        out: Outgoing,
        body: Body,
        x: &mut Exchange,
    ) -> Result<Response<Incoming>, LocalReply> {
        let retry = rule.retry.as_ref();
        let attempts = retry.map_or(0, |r| r.attempts);
        // Replayable: nothing to send, or small enough to hold while retries may need it.
        let (mut first_body, replay) = if attempts == 0 {
            (Some(body), None)
        } else if body.is_end_stream() {
            (None, Some(Bytes::new()))
        } else if body
            .size_hint()
            .upper()
            .is_some_and(|n| n <= MAX_REPLAY_BODY)
        {
            let bytes = body
                .collect()
                .await
                .map_err(|_| LocalReply::BadRequestBody)?
                .to_bytes();
            (None, Some(bytes))
        } else {
            (Some(body), None)
        };
        let mut attempt = 0;
        // The last attempt takes the headers; earlier ones (only when retries are possible) copy.
        let host = host_authority(&out.headers);
        let mut headers = Some(out.headers);
        loop {
            let picked = upstream.pick().ok_or(LocalReply::NoEndpoints)?;
            let uri = upstream
                .uri(
                    host.clone()
                        .unwrap_or_else(|| picked.fallback_authority.clone()),
                    &out.path_and_query,
                )
                .map_err(|_| LocalReply::InvalidBackend)?;
            x.upstream_address = Some(picked.address);
            let body = match (&replay, first_body.take()) {
                (Some(bytes), _) => body::full(bytes.clone()),
                (None, Some(b)) => b,
                (None, None) => return Err(LocalReply::UpstreamFailed),
            };
            let mut req = Request::new(body);
            *req.method_mut() = out.method.clone();
            *req.uri_mut() = uri;
            let last = replay.is_none() || attempt >= attempts;
            *req.headers_mut() = match (last, headers.as_ref()) {
                (false, Some(h)) => h.clone(),
                _ => headers.take().unwrap_or_default(),
            };
            let started = Instant::now();
            x.attempt_started = Some(started);
            let sent = picked.client.request(req);
            let result = match rule.timeouts.backend_request {
                Some(limit) => match tokio::time::timeout(limit, sent).await {
                    Ok(r) => r,
                    Err(_) => {
                        x.upstream_duration = Some(started.elapsed());
                        return Err(LocalReply::Timeout);
                    }
                },
                None => sent.await,
            };
            let elapsed = started.elapsed();
            x.upstream_duration = Some(elapsed);
            self.metrics
                .upstream_duration
                .get_or_create(&BackendLabels {
                    backend: Label(upstream.cluster.name.clone()),
                })
                .observe(elapsed.as_secs_f64());
            let can_retry = replay.is_some() && attempt < attempts;
            match result {
                Ok(resp) => {
                    let retryable =
                        retry.is_some_and(|r| r.codes.contains(&resp.status().as_u16()));
                    if !(can_retry && retryable) {
                        return Ok(resp);
                    }
                }
                Err(e) => {
                    let connect = e.is_connect();
                    if connect {
                        self.metrics
                            .upstream_connect_errors
                            .get_or_create(&BackendLabels {
                                backend: Label(upstream.cluster.name.clone()),
                            })
                            .inc();
                    }
                    tracing::debug!(backend = %upstream.cluster.name, error = %e, "upstream request failed");
                    // After a connect error nothing reached the upstream; after any other error
                    // it may have acted on the request, so only idempotent methods go again.
                    if !can_retry || !(connect || out.method.is_idempotent()) {
                        return Err(if connect {
                            LocalReply::UpstreamConnect
                        } else {
                            LocalReply::UpstreamFailed
                        });
                    }
                }
            }
            attempt += 1;
            if let Some(r) = retry {
                let factor = 1u32 << (attempt - 1).min(6);
                tokio::time::sleep(r.backoff * factor).await;
            }
        }
    }

    /// Starts one fire-and-forget copy of the request per sampled mirror; returns the body to send
    /// to the main backend (teed when the request has one).
    fn start_mirrors(
        &self,
        rt: &Runtime,
        mirrors: &[&Mirror],
        method: &Method,
        path_and_query: &PathAndQuery,
        headers: &HeaderMap,
        body: Body,
    ) -> Body {
        // A request with a body is teed; one without keeps its (empty) body and mirrors get empty.
        let (mut tee, plain) = if body.is_end_stream() {
            (None, Some(body))
        } else {
            (Some(Tee::new(body)), None)
        };
        for m in mirrors {
            if m.per_million < 1_000_000 && fastrand::u32(..1_000_000) >= m.per_million {
                continue;
            }
            let BackendTarget::Cluster(c) = &m.target else {
                continue;
            };
            let Some(up) = rt.upstreams.get(c.id).cloned() else {
                continue;
            };
            let Some(picked) = up.pick() else { continue };
            let authority =
                host_authority(headers).unwrap_or_else(|| picked.fallback_authority.clone());
            let Ok(uri) = up.uri(authority, path_and_query) else {
                continue;
            };
            let mirror_body = match &mut tee {
                Some(t) => t.tap().boxed(),
                None => body::empty(),
            };
            let mut req = Request::new(mirror_body);
            *req.method_mut() = method.clone();
            *req.uri_mut() = uri;
            *req.headers_mut() = headers.clone();
            tokio::spawn(async move {
                let sent =
                    tokio::time::timeout(Duration::from_secs(30), picked.client.request(req));
                if let Ok(Ok(resp)) = sent.await {
                    let _ = resp.into_body().collect().await;
                }
            });
        }
        match (tee, plain) {
            (Some(t), _) => t.boxed(),
            (None, Some(b)) => b,
            (None, None) => body::empty(),
        }
    }

    /// Wraps the response body so metrics and the access log are written when it ends.
    fn finish(
        self: Arc<Self>,
        conn: Arc<ConnInfo>,
        x: Exchange,
        resp: Response<Body>,
    ) -> Response<Body> {
        let status = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        let proxy = self.clone();
        let metered = Metered::new(body, move |bytes_out, complete| {
            conn.request_done();
            let held = std::mem::take(&mut *lock_held(&x.held));
            if !held.is_empty() {
                proxy.settle_held(held, x.ai.clone(), status, complete);
            }
            let duration = x.started.elapsed();
            let ai = x.ai.as_ref().map(|t| {
                let t = lock(t);
                (
                    ai::tally::report(&proxy.metrics, &t, duration),
                    t.backend.clone(),
                )
            });
            let (ai, backend) = match ai {
                Some((record, Some(b))) => (Some(record), b),
                Some((record, None)) => (Some(record), x.backend.clone()),
                None => (None, x.backend.clone()),
            };
            proxy
                .metrics
                .requests
                .get_or_create(&RequestLabels {
                    gateway: Label(x.gateway.clone()),
                    route: Label(x.route.clone()),
                    backend: Label(backend.clone()),
                    status,
                })
                .inc();
            proxy
                .metrics
                .request_duration
                .get_or_create(&RouteLabels {
                    gateway: Label(x.gateway.clone()),
                    route: Label(x.route.clone()),
                })
                .observe(duration.as_secs_f64());
            if proxy.access_log.enabled() {
                proxy.access_log.log(Record {
                    time: x.wall,
                    request_id: x.request_id.to_str().unwrap_or("").to_string(),
                    method: x.method.to_string(),
                    host: x.host,
                    path: x.path,
                    protocol: match x.version {
                        Version::HTTP_2 => "HTTP/2",
                        Version::HTTP_10 => "HTTP/1.0",
                        _ => "HTTP/1.1",
                    },
                    status,
                    gateway: x.gateway,
                    listener: x.listener,
                    route: x.route,
                    backend,
                    upstream_address: x.upstream_address,
                    duration_ms: duration.as_secs_f64() * 1000.0,
                    upstream_duration_ms: x.upstream_duration.map(|d| d.as_secs_f64() * 1000.0),
                    bytes_in: x.bytes_in.load(Ordering::Relaxed),
                    bytes_out,
                    client_address: conn.peer,
                    reason: x.reason,
                    complete,
                    identity: x.identity.as_ref().map(IdentityRecord::of),
                    ai,
                });
            }
        });
        Response::from_parts(parts, metered.boxed())
    }
}

impl Proxy {
    /// Settles the rate-limit reservations of a finished exchange. A response that did not
    /// complete is settled from a task: when the client leaves mid-stream, the stream records
    /// its last usage as it is dropped, which is after this exchange's end is reported.
    fn settle_held(
        self: &Arc<Self>,
        held: Vec<Held>,
        tally: Option<SharedTally>,
        status: u16,
        complete: bool,
    ) {
        let settle = move |proxy: &Proxy| {
            let spent = match &tally {
                _ if !(200..300).contains(&status) => Spent::Nothing,
                None => Spent::Exactly(sluice_llm::Usage::default(), None),
                Some(t) => {
                    let t = lock(t);
                    if t.completed {
                        Spent::Exactly(t.usage, t.cost_usd)
                    } else {
                        Spent::AtLeast(t.usage, t.cost_usd)
                    }
                }
            };
            for h in held {
                proxy.limits.settle(h, spent, &proxy.metrics);
            }
        };
        if complete {
            settle(self);
        } else {
            let proxy = self.clone();
            tokio::spawn(async move { settle(&proxy) });
        }
    }
}

/// What the filters of a rule and of its backend leave for later steps.
#[derive(Default)]
struct Applied<'a> {
    response_mods: Vec<&'a HeaderModifier>,
    rewrite: Option<&'a Rewrite>,
    mirrors: Vec<&'a Mirror>,
}

impl<'a> Applied<'a> {
    /// Applies request header filters now and records the rest; a redirect ends the request.
    fn apply(&mut self, filters: &'a [Filter], headers: &mut HeaderMap) -> Option<&'a Redirect> {
        for f in filters {
            match f {
                Filter::RequestHeaders(m) => modify_headers(headers, m),
                Filter::ResponseHeaders(m) => self.response_mods.push(m),
                Filter::Redirect(r) => return Some(r),
                Filter::Rewrite(r) => self.rewrite = Some(r),
                Filter::Mirror(m) => self.mirrors.push(m),
            }
        }
        None
    }
}

struct Outgoing {
    method: Method,
    path_and_query: PathAndQuery,
    headers: HeaderMap,
}

/// Weighted random choice; `None` when no backend can take traffic (500).
fn pick_backend(rule: &RuleIr) -> Option<&sluice_config::ir::WeightedBackend> {
    if rule.total_weight == 0 {
        return None;
    }
    let mut n = fastrand::u32(..rule.total_weight);
    for b in &rule.backends {
        if n < b.weight {
            return Some(b);
        }
        n -= b.weight;
    }
    None
}

/// The request's host, lowercased and without port: `:authority` (HTTP/2, absolute-form) or
/// the Host header.
fn request_host<B>(req: &Request<B>) -> String {
    let raw = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("");
    let without_port = if let Some(rest) = raw.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                raw
            }
        })
    };
    without_port.to_ascii_lowercase()
}

/// The authority of the upstream request URI is the Host the backend must see (it becomes HTTP/2
/// `:authority`); without one, the endpoint's address is used.
fn host_authority(headers: &HeaderMap) -> Option<Authority> {
    headers
        .get(HOST)
        .and_then(|h| Authority::try_from(h.as_bytes()).ok())
}

/// 128 random bits as 32 hex digits, without going through `fmt`.
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, word) in [fastrand::u64(..), fastrand::u64(..)]
        .into_iter()
        .enumerate()
    {
        for j in 0..16 {
            out[i * 16 + j] = HEX[((word >> (60 - 4 * j)) & 0xf) as usize];
        }
    }
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_lowercased_without_port() {
        let req = |h: &str| Request::builder().header(HOST, h).body(()).unwrap();
        assert_eq!(request_host(&req("Example.COM:8080")), "example.com");
        assert_eq!(request_host(&req("[::1]:80")), "::1");
        assert_eq!(request_host(&req("example.com")), "example.com");
    }
}
