//! JWKS documents behind URLs: fetched when a configuration is installed, refreshed on each
//! provider's interval, and refetched early when a token names an unknown signing key — one
//! fetch at a time per URL, at most once per [`MIN_REFETCH`], however many requests ask.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use http::header::HOST;
use http::{Request, Uri};
use sluice_policy::auth::access::{JwksSource, JwtProvider};
use sluice_policy::auth::jwt::JwkSet;

use crate::body;
use crate::upstream::Transports;

/// Unknown `kid`s from attackers must not turn into a fetch storm against the identity provider.
const MIN_REFETCH: Duration = Duration::from_secs(10);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_JWKS_BYTES: usize = 512 * 1024;

/// When each URL was last refetched for an unknown `kid`, behind an async lock that makes concurrent refetches wait
/// for one fetch.
type Slot = Arc<tokio::sync::Mutex<Option<Instant>>>;

#[derive(Default)]
pub struct JwksFetcher {
    slots: Mutex<HashMap<String, Slot>>,
    /// Successful fetches, for tests and metrics.
    pub fetched: std::sync::atomic::AtomicU64,
}

impl JwksFetcher {
    fn slot(&self, url: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(url.to_string()).or_default().clone()
    }

    /// Refetches `provider`'s JWKS unless another request just did (then its result is used)
    /// or the last fetch is too recent.
    pub async fn refetch(&self, provider: &JwtProvider, transports: &Transports) {
        let JwksSource::Url { url, .. } = &provider.source else {
            return;
        };
        let seen = provider.keys.current();
        let slot = self.slot(url);
        let mut last = slot.lock().await;
        if !Arc::ptr_eq(&seen, &provider.keys.current()) {
            return; // refreshed while this request waited
        }
        if last.is_some_and(|t| t.elapsed() < MIN_REFETCH) {
            return;
        }
        *last = Some(Instant::now());
        self.fetch_into(provider, url, transports).await;
    }

    async fn fetch_into(&self, provider: &JwtProvider, url: &str, transports: &Transports) {
        match fetch(url, transports).await {
            Ok(set) => {
                provider.keys.replace(set);
                self.fetched
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(provider = %provider.name, %url, error = %e, "JWKS fetch failed; keeping the keys in hand");
            }
        }
    }
}

/// Starts the refresh loop of every URL provider of a new configuration. A provider also in the
/// previous configuration starts from that one's keys instead of an empty set. Each loop ends
/// when its configuration (or the proxy) is gone.
pub(crate) fn start(
    proxy: &Arc<crate::Proxy>,
    providers: Vec<Arc<JwtProvider>>,
    previous: &[Arc<JwtProvider>],
) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    for p in providers {
        let JwksSource::Url { url, refresh } = p.source.clone() else {
            continue;
        };
        if let Some(set) = previous
            .iter()
            .find(|q| q.source == p.source)
            .map(|q| q.keys.current())
            .filter(|set| !set.is_empty())
        {
            p.keys.replace_shared(set);
        }
        let fresh = p.keys.current().is_empty();
        let provider: Weak<JwtProvider> = Arc::downgrade(&p);
        let proxy: Weak<crate::Proxy> = Arc::downgrade(proxy);
        drop(p);
        handle.spawn(async move {
            let mut first = fresh;
            loop {
                if !first {
                    tokio::time::sleep(refresh).await;
                }
                first = false;
                let (Some(p), Some(proxy)) = (provider.upgrade(), proxy.upgrade()) else {
                    return; // the configuration was replaced
                };
                let fetcher = &proxy.auth.jwks;
                // Serialised with refetches, but not counted against their rate limit: that
                // limit is for fetches an unknown `kid` (which anyone can send) triggers.
                let slot = fetcher.slot(&url);
                let _serialised = slot.lock().await;
                fetcher.fetch_into(&p, &url, &proxy.transports).await;
            }
        });
    }
}

async fn fetch(url: &str, transports: &Transports) -> Result<JwkSet, String> {
    let uri: Uri = url.parse().map_err(|_| "not a URI".to_string())?;
    let client = transports.endpoint_client(&uri)?;
    let host = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    let req = Request::get(uri)
        .header(HOST, host)
        .header(http::header::ACCEPT, "application/json")
        .body(body::empty())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(FETCH_TIMEOUT, client.request(req))
        .await
        .map_err(|_| "no answer in time".to_string())?
        .map_err(|e| format!("unreachable: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("answered {status}"));
    }
    let bytes = tokio::time::timeout(
        FETCH_TIMEOUT,
        body::collect_limited(body::boxed(resp.into_body()), MAX_JWKS_BYTES),
    )
    .await
    .map_err(|_| "body not received in time".to_string())?
    .map_err(|_| "could not read the body (or it is over 512 KiB)".to_string())?;
    JwkSet::parse(&bytes).map_err(|e| e.to_string())
}
