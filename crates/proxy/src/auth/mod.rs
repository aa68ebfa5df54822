//! Access control on the request path (PostRouting: authentication, then authorization).
//!
//! The route's `AccessPolicy`, or else its Gateway's, decides. Everything it needs is in
//! memory: configured keys in the policy, managed keys in [`AuthState::managed`] (kept current
//! by the binary's key-store watcher), JWKS in each provider's cache. The only wait a request
//! can see is a JWKS refetch when a token names a signing key not seen yet (key rotation),
//! shared by every request that needs it and bounded by a timeout.
//!
//! A failure is always an answer (401 or 403), never anonymous access. Once the policy has
//! consumed a credential, the credential headers are removed so it never reaches an upstream,
//! and the identity headers the policy sets are removed from the client's request first.

pub(crate) mod jwks;
pub mod peer;

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use http::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, StatusCode};
use sluice_policy::auth::access::JwksSource;
use sluice_policy::auth::apikey::KeyTable;
use sluice_policy::auth::rules::Request as AuthzRequest;
use sluice_policy::auth::{AccessPolicy, AuthError, Identity, KeyIdentity, PeerCert, Presented};

use crate::ai::AiError;
use crate::upstream::Transports;

pub use jwks::JwksFetcher;

const X_API_KEY: &str = "x-api-key";

/// Process-wide authentication state that outlives configuration reloads.
#[derive(Default)]
pub struct AuthState {
    /// Keys managed through the admin API (revoked ones already left out).
    managed: ArcSwap<KeyTable<Arc<KeyIdentity>>>,
    pub(crate) jwks: JwksFetcher,
}

impl AuthState {
    /// Replaces the managed keys every policy with `managed: true` accepts.
    pub fn set_managed_keys(&self, table: KeyTable<Arc<KeyIdentity>>) {
        self.managed.store(Arc::new(table));
    }

    pub fn managed_key_count(&self) -> usize {
        self.managed.load().len()
    }
}

/// What authorization needs to know about the request beyond its headers.
pub(crate) struct Target<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub model: Option<&'a str>,
    pub operation: Option<&'a str>,
    pub route: &'a str,
}

/// An authentication or authorization refusal, ready to answer.
pub(crate) struct Refusal {
    pub error: AiError,
    /// For logs and metrics: `missing_credentials`, `expired`, `forbidden`, …
    pub reason: &'static str,
}

impl AuthState {
    /// Authenticates and authorizes one request against `policy`, then removes the consumed
    /// credential and sets the policy's identity headers.
    pub(crate) async fn admit(
        &self,
        policy: &AccessPolicy,
        headers: &mut HeaderMap,
        peer: Option<&PeerCert>,
        target: &Target<'_>,
        transports: &Transports,
    ) -> Result<Identity, Refusal> {
        let identity = self.authenticate(policy, headers, peer, transports).await?;
        let req = AuthzRequest {
            method: target.method,
            host: target.host,
            path: target.path,
            headers,
            model: target.model,
            operation: target.operation,
            route: target.route,
        };
        if let Err(denial) = policy.authorize(&identity, &req) {
            return Err(Refusal {
                error: AiError::new(StatusCode::FORBIDDEN, "forbidden", denial.to_string()),
                reason: "forbidden",
            });
        }
        if policy.api_keys.is_some() || !policy.jwt.is_empty() {
            headers.remove(AUTHORIZATION);
            headers.remove(X_API_KEY);
        }
        policy.identity_headers.apply(headers, &identity);
        Ok(identity)
    }

    async fn authenticate(
        &self,
        policy: &AccessPolicy,
        headers: &HeaderMap,
        peer: Option<&PeerCert>,
        transports: &Transports,
    ) -> Result<Identity, Refusal> {
        let presented = Presented {
            headers,
            peer,
            now: SystemTime::now(),
        };
        let managed = self.managed.load();
        let first = policy.authenticate(&presented, &managed);
        let result = match first {
            // A signing key not seen yet: the provider may have rotated. Refetch (shared, rate
            // limited) and try once more.
            Err(AuthError::UnknownJwtKey(provider))
                if matches!(provider.source, JwksSource::Url { .. }) =>
            {
                self.jwks.refetch(&provider, transports).await;
                policy.authenticate(&presented, &managed)
            }
            other => other,
        };
        result.map_err(|e| {
            let mut error =
                AiError::new(StatusCode::UNAUTHORIZED, "invalid_api_key", e.to_string());
            if matches!(e, AuthError::Missing) {
                error.code = "missing_api_key";
            }
            Refusal {
                error,
                reason: e.reason(),
            }
        })
    }
}

/// RFC 6750: a 401 names the scheme the client should use.
pub(crate) fn challenge(headers: &mut HeaderMap) {
    headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
}
