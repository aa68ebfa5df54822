//! The ExtProcess processor: an Envoy ext_proc v3 server consulted over gRPC. One HTTP/2 channel
//! per processor (kept across reloads that keep its address), one stream per exchange: the
//! request phases and, when the processing mode asks for them, the response phases of the same
//! exchange go on one stream, as Envoy sends them, so a stateful processor can correlate them.
//!
//! What the processing mode selects is sent; the reply's header mutations, body replacement and
//! `:status` are applied; an immediate response answers the client. A `:path` mutation is refused
//! (Sluice routes before PostRouting processors run; see docs/ext-proc.md), so the failure mode
//! decides.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::HOST;
use http::HeaderMap;
use sluice_config::ir::{BodyMode, ExtProcess};
use sluice_extproc::{
    BodyChange, Endpoint, ExtProcClient, ExtProcError, HeadersMsg, Mutation, Reply, Session,
    TlsSettings,
};

use super::body::BodyBuf;
use super::{Failure, Rejection, RequestPayload, Verdict};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One gRPC channel per external processor, kept across reloads.
#[derive(Default)]
pub struct ExtProcChannels {
    clients: Mutex<HashMap<String, ExtProcClient>>,
}

/// Open ext_proc streams of one exchange, carried from the request side to the response side.
#[derive(Default)]
pub struct OpenSessions(Vec<(Arc<str>, Session)>);

impl OpenSessions {
    fn take(&mut self, name: &str) -> Option<Session> {
        let i = self.0.iter().position(|(n, _)| &**n == name)?;
        Some(self.0.swap_remove(i).1)
    }
}

impl ExtProcChannels {
    fn client(&self, e: &ExtProcess) -> Result<ExtProcClient, Failure> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&e.channel_key) {
            return Ok(c.clone());
        }
        let tls = e.tls.as_ref().map(|t| TlsSettings {
            ca_pem: None,
            sni: Some(t.server_name.to_str().into_owned()),
            rustls: Some(t.config.clone()),
        });
        let client = ExtProcClient::new(
            Endpoint {
                uri: e.uri.clone(),
                authority: None,
                tls,
            },
            CONNECT_TIMEOUT,
        )
        .map_err(failure)?;
        clients.insert(e.channel_key.clone(), client.clone());
        Ok(client)
    }

    fn open(&self, e: &ExtProcess) -> Result<Session, Failure> {
        let metadata: Vec<(&str, &str)> = e
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.client(e)?.open(&metadata).map_err(failure)
    }

    pub async fn on_request(
        &self,
        e: &ExtProcess,
        name: &Arc<str>,
        req: &mut RequestPayload<'_>,
    ) -> Result<Verdict, Failure> {
        let mode = e.mode;
        let sends_body = mode.request_body != BodyMode::None;
        let wants_response = mode.response_headers || mode.response_body != BodyMode::None;
        if !mode.request_headers && !sends_body && !wants_response {
            return Ok(Verdict::Continue);
        }
        let mut session = self.open(e)?;
        if mode.request_headers {
            let authority = req
                .headers
                .get(HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let no_body = req.body.as_ref().is_none_or(|b| b.is_empty());
            let msg = HeadersMsg {
                method: req.method,
                path: req.path,
                scheme: "http",
                authority: &authority,
                headers: req.headers,
                end_of_stream: no_body && !sends_body,
            };
            let reply = session.request_headers(&msg).await;
            if let Some(v) = self.apply_request(reply, req)? {
                return Ok(v);
            }
        }
        if sends_body {
            if let Some(buf) = req.body.as_deref_mut() {
                // Buffered and streamed modes both send the body whole: the gateway has it
                // buffered already, and one chunk with end_of_stream is valid in both.
                let bytes = buf.bytes();
                let reply = session.request_body(&bytes, true).await;
                if let Some(v) = self.apply_request(reply, req)? {
                    return Ok(v);
                }
            }
        }
        if wants_response {
            req.sessions.0.push((name.clone(), session));
        }
        Ok(Verdict::Continue)
    }

    /// Applies a request-phase reply; `Some` is the verdict that ends processing here.
    fn apply_request(
        &self,
        reply: Result<Reply, ExtProcError>,
        req: &mut RequestPayload<'_>,
    ) -> Result<Option<Verdict>, Failure> {
        match reply {
            Ok(Reply::Continue(m)) => {
                if m.path.is_some() {
                    return Err(Failure::Error(
                        "the external processor changed :path, which Sluice does not apply".into(),
                    ));
                }
                m.apply_headers(req.headers);
                for (n, _, _) in &m.set_headers {
                    if !req.set_headers.contains(n) {
                        req.set_headers.push(n.clone());
                    }
                }
                apply_body(&m, req.body.as_deref_mut());
                // CONTINUE_AND_REPLACE: nothing more goes to the processor for the request.
                Ok(m.continue_and_replace.then_some(Verdict::Continue))
            }
            Ok(Reply::Immediate(im)) => Ok(Some(Verdict::Reject(immediate(im)))),
            // A clean close before answering: Envoy goes on without the processor.
            Err(ExtProcError::StreamClosed) => Ok(Some(Verdict::Continue)),
            Err(e) => Err(failure(e)),
        }
    }

    pub async fn on_response(
        &self,
        e: &ExtProcess,
        name: &str,
        sessions: &Mutex<OpenSessions>,
        parts: &mut http::response::Parts,
        body: Option<&mut BodyBuf>,
    ) -> Result<Verdict, Failure> {
        let mode = e.mode;
        let sends_body = mode.response_body != BodyMode::None && body.is_some();
        if !mode.response_headers && !sends_body {
            return Ok(Verdict::Continue);
        }
        let taken = sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(name);
        // The request side ended early (or sent nothing): a fresh stream for the answer.
        let mut session = match taken {
            Some(s) => s,
            None => self.open(e)?,
        };
        let mut body = body;
        if mode.response_headers {
            let reply = session
                .response_headers(parts.status, &parts.headers, !sends_body && body.is_none())
                .await;
            if let Some(v) = apply_response(reply, parts, body.as_deref_mut())? {
                return Ok(v);
            }
        }
        if sends_body {
            if let Some(buf) = body {
                let bytes = buf.bytes();
                let reply = session.response_body(&bytes, true).await;
                if let Some(v) = apply_response(reply, parts, Some(buf))? {
                    return Ok(v);
                }
            }
        }
        Ok(Verdict::Continue)
    }
}

fn apply_response(
    reply: Result<Reply, ExtProcError>,
    parts: &mut http::response::Parts,
    body: Option<&mut BodyBuf>,
) -> Result<Option<Verdict>, Failure> {
    match reply {
        Ok(Reply::Continue(m)) => {
            m.apply_headers(&mut parts.headers);
            if let Some(s) = m.status {
                parts.status = s;
            }
            if m.body.is_some() {
                parts.headers.remove(http::header::CONTENT_LENGTH);
            }
            apply_body(&m, body);
            Ok(None)
        }
        Ok(Reply::Immediate(im)) => Ok(Some(Verdict::Reject(immediate(im)))),
        Err(ExtProcError::StreamClosed) => Ok(Some(Verdict::Continue)),
        Err(e) => Err(failure(e)),
    }
}

fn apply_body(m: &Mutation, body: Option<&mut BodyBuf>) {
    let Some(buf) = body else { return };
    match &m.body {
        Some(BodyChange::Replace(b)) => buf.set_bytes(b.clone()),
        Some(BodyChange::Clear) => buf.set_bytes(bytes::Bytes::new()),
        Some(BodyChange::Streamed { chunk, .. }) => buf.set_bytes(chunk.clone()),
        None => {}
    }
}

fn immediate(im: sluice_extproc::Immediate) -> Rejection {
    let mut headers = HeaderMap::new();
    im.headers.apply_headers(&mut headers);
    tracing::info!(status = %im.status, details = %im.details, "external processor answered immediately");
    Rejection {
        status: im.status,
        code: "processor_response",
        message: String::new(),
        immediate: Some(Box::new((headers, im.body))),
    }
}

fn failure(e: ExtProcError) -> Failure {
    match e {
        ExtProcError::Connect(_) | ExtProcError::ConnectionLost(_) => {
            Failure::Unavailable(e.to_string())
        }
        ExtProcError::Timeout => Failure::Timeout(Duration::ZERO),
        other => Failure::Error(other.to_string()),
    }
}
