//! Vertex AI access tokens: a service-account JWT exchanged at the key's token endpoint (RFC 7523
//! bearer grant), cached per backend and refreshed five minutes before expiry. Concurrent
//! requests that find the token stale wait for one refresh instead of each fetching.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::header::{CONTENT_TYPE, HOST};
use http::{Request, Uri};
use sluice_llm::gemini::vertex_auth::{self, ServiceAccount, CLOUD_PLATFORM_SCOPE};
use sluice_llm::Secret;

use crate::body;
use crate::upstream::Transports;

/// Refresh this long before the token expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The current token of one service account and when it expires.
type Slot = Arc<tokio::sync::Mutex<Option<(Secret, Instant)>>>;

#[derive(Default)]
pub struct TokenCache {
    /// Per service-account identity (email and key id): the current token, behind an async lock
    /// so one refresh serves every waiting request.
    slots: Mutex<HashMap<String, Slot>>,
    /// Tokens fetched, for tests and metrics.
    pub fetched: std::sync::atomic::AtomicU64,
}

impl TokenCache {
    /// Forgets the cached token of this key (the provider rejected it before its expiry, e.g.
    /// revoked): the next request fetches a new one instead of failing until the refresh time.
    pub fn invalidate(&self, key_json: &Secret) {
        if let Ok(sa) = ServiceAccount::from_json(key_json.expose()) {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.remove(&slot_id(&sa));
        }
    }

    pub async fn token(
        &self,
        key_json: &Secret,
        transports: &Transports,
    ) -> Result<Secret, String> {
        let sa = ServiceAccount::from_json(key_json.expose()).map_err(|e| e.to_string())?;
        let id = slot_id(&sa);
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(id).or_default().clone()
        };
        let mut current = slot.lock().await;
        if let Some((token, expires)) = current.as_ref() {
            if Instant::now() + REFRESH_MARGIN < *expires {
                return Ok(token.clone());
            }
        }
        let (token, lifetime) = fetch(&sa, transports).await?;
        self.fetched
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *current = Some((
            token.clone(),
            Instant::now() + Duration::from_secs(lifetime),
        ));
        Ok(token)
    }
}

fn slot_id(sa: &ServiceAccount) -> String {
    format!(
        "{}|{}",
        sa.client_email,
        sa.private_key_id.as_deref().unwrap_or("")
    )
}

async fn fetch(sa: &ServiceAccount, transports: &Transports) -> Result<(Secret, u64), String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let assertion =
        vertex_auth::jwt_assertion(sa, CLOUD_PLATFORM_SCOPE, now).map_err(|e| e.to_string())?;
    let uri: Uri = sa
        .token_uri
        .parse()
        .map_err(|_| "the service account's token_uri is not a URI".to_string())?;
    let client = transports
        .endpoint_client(&uri)
        .map_err(|e| format!("token endpoint: {e}"))?;
    let host = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    let req = Request::post(uri.clone())
        .header(HOST, host)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body::full(vertex_auth::token_request_body(&assertion)))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(TOKEN_TIMEOUT, client.request(req))
        .await
        .map_err(|_| "the token endpoint did not answer in time".to_string())?
        .map_err(|e| format!("token endpoint unreachable: {e}"))?;
    let status = resp.status();
    let bytes = body::collect_limited(body::boxed(resp.into_body()), 64 * 1024)
        .await
        .map_err(|_| "could not read the token response".to_string())?;
    let parsed = vertex_auth::parse_token_response(&bytes).map_err(|e| e.to_string());
    if !status.is_success() {
        return Err(format!(
            "token endpoint answered {status}: {}",
            parsed.err().unwrap_or_default()
        ));
    }
    parsed
}
