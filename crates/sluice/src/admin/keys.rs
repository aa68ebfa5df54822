//! `/keys`: create, list, show, rotate and revoke managed API keys at run time.
//!
//! Every call needs `Authorization: Bearer <admin token>`. A key's text is shown exactly once,
//! in the answer that creates or rotates it; the store keeps only its SHA-256. After each change
//! the local key set is reloaded at once; other replicas see it on their next poll of the store
//! (well under a second).
//!
//! ```text
//! POST   /keys                {id?, tenant?, user?, labels?, models?, expiresAt?}  → 201 {key, …}
//! GET    /keys                                                                   → 200 [record…]
//! GET    /keys/{id}                                                              → 200 record
//! POST   /keys/{id}/rotate                                                       → 200 {key, …}
//! DELETE /keys/{id}          (revoke; the record stays, with revokedAt)          → 200 record
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_policy::auth::access::key_identity;
use sluice_policy::auth::apikey::{self, KeyDigest, KeyTable};
use sluice_policy::auth::credential::{self, Credential};
use sluice_policy::auth::KeyIdentity;
use sluice_policy::time::{format_rfc3339, parse_rfc3339};
use sluice_proxy::Proxy;
use sluice_state::keys::{KeyRecord, KeyStore, KeyWatch, StoreError};

use super::json_status;

const MAX_BODY: usize = 16 * 1024;

pub struct KeyAdmin {
    /// SHA-256 of the admin token: compared digest to digest, never the token itself.
    token: KeyDigest,
    store: Arc<KeyStore>,
    watch: KeyWatch,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewKey {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    models: Vec<String>,
    /// RFC 3339.
    #[serde(default)]
    expires_at: Option<String>,
}

impl KeyAdmin {
    /// Opens key management over `store`, loading its keys into `proxy` and keeping them current.
    pub async fn start(
        token: &str,
        store: Arc<KeyStore>,
        proxy: Arc<Proxy>,
        poll: std::time::Duration,
    ) -> Result<KeyAdmin, StoreError> {
        let watch = KeyWatch::start(store.clone(), poll, move |records| {
            let table = table(&records);
            proxy.metrics.managed_keys.set(table.len() as i64);
            proxy.auth.set_managed_keys(table);
        })
        .await?;
        Ok(KeyAdmin {
            token: KeyDigest::of(token),
            store,
            watch,
        })
    }

    pub async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if !self.authorized(req.headers()) {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "a valid admin token is required (Authorization: Bearer …)",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(2).collect();
        let result = match (&method, segments.as_slice()) {
            (&Method::GET, []) => self.list().await,
            (&Method::POST, []) => match read_json::<NewKey>(req).await {
                Ok(new) => self.create(new).await,
                Err(r) => return r,
            },
            (&Method::GET, [id]) => self.show(id).await,
            (&Method::POST, [id, "rotate"]) => self.rotate(id).await,
            (&Method::DELETE, [id]) => self.revoke(id).await,
            _ => return error(StatusCode::NOT_FOUND, "no such key operation"),
        };
        match result {
            Ok((status, body)) => json_status(status, &body),
            Err(e) => store_error(e),
        }
    }

    pub(crate) fn authorized(&self, headers: &http::HeaderMap) -> bool {
        matches!(
            credential::presented(headers),
            Ok(Some(Credential::Bearer(token))) if KeyDigest::of(token) == self.token
        )
    }

    async fn list(&self) -> Result<(StatusCode, Value), StoreError> {
        let records = self.store.list().await?;
        Ok((
            StatusCode::OK,
            Value::Array(records.iter().map(describe).collect()),
        ))
    }

    async fn show(&self, id: &str) -> Result<(StatusCode, Value), StoreError> {
        let records = self.store.list().await?;
        match records.iter().find(|r| r.id == id) {
            Some(r) => Ok((StatusCode::OK, describe(r))),
            None => Err(StoreError::NotFound(id.to_string())),
        }
    }

    async fn create(&self, new: NewKey) -> Result<(StatusCode, Value), StoreError> {
        let (key, digest) = apikey::generate();
        let id = match new.id {
            Some(id) => id,
            None => format!("key-{}", &digest.to_hex()[..12]),
        };
        if id.is_empty()
            || id.len() > 128
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Ok((
                StatusCode::BAD_REQUEST,
                json!({"error": "id: 1-128 characters of letters, digits, '-', '_' and '.'"}),
            ));
        }
        let expires_at = match new.expires_at.as_deref().map(parse_rfc3339) {
            None => None,
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                return Ok((
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("expiresAt: {e}")}),
                ))
            }
        };
        let record = KeyRecord {
            id,
            digest: digest.to_hex(),
            tenant: new.tenant,
            user: new.user,
            labels: new.labels,
            models: new.models,
            expires_at,
            created_at: now(),
            rotated_at: None,
            revoked_at: None,
        };
        self.store.create(record.clone()).await?;
        self.settle().await;
        let mut body = describe(&record);
        body["key"] = Value::String(key);
        Ok((StatusCode::CREATED, body))
    }

    async fn rotate(&self, id: &str) -> Result<(StatusCode, Value), StoreError> {
        let (key, digest) = apikey::generate();
        let record = self.store.rotate(id, &digest.to_hex(), now()).await?;
        self.settle().await;
        let mut body = describe(&record);
        body["key"] = Value::String(key);
        Ok((StatusCode::OK, body))
    }

    async fn revoke(&self, id: &str) -> Result<(StatusCode, Value), StoreError> {
        let record = self.store.revoke(id, now()).await?;
        self.settle().await;
        Ok((StatusCode::OK, describe(&record)))
    }

    /// This replica applies its own change at once instead of on the next poll.
    async fn settle(&self) {
        if let Err(e) = self.watch.refresh().await {
            tracing::warn!(error = %e, "key store: reload after a change failed; the next poll retries");
        }
    }
}

/// The lookup table of every usable managed key (revoked ones left out).
pub fn table(records: &[KeyRecord]) -> KeyTable<Arc<KeyIdentity>> {
    let mut table = KeyTable::new();
    for r in records.iter().filter(|r| r.revoked_at.is_none()) {
        let Ok(digest) = KeyDigest::from_hex(&r.digest) else {
            tracing::warn!(id = %r.id, "key store: record with an invalid digest skipped");
            continue;
        };
        let identity = key_identity(
            &r.id,
            r.tenant.as_deref(),
            r.user.as_deref(),
            r.labels.clone(),
            r.models.clone(),
            r.expires_at,
            "managed",
        );
        if table.insert(digest, identity).is_err() {
            tracing::warn!(id = %r.id, "key store: two records share one key; the second is skipped");
        }
    }
    table
}

/// A record as the API shows it: no digest, times as RFC 3339.
fn describe(r: &KeyRecord) -> Value {
    let time = |t: Option<u64>| t.map(format_rfc3339);
    json!({
        "id": r.id,
        "tenant": r.tenant,
        "user": r.user,
        "labels": r.labels,
        "models": r.models,
        "expiresAt": time(r.expires_at),
        "createdAt": format_rfc3339(r.created_at),
        "rotatedAt": time(r.rotated_at),
        "revokedAt": time(r.revoked_at),
        "status": if r.revoked_at.is_some() {
            "revoked"
        } else if r.expires_at.is_some_and(|t| t <= now()) {
            "expired"
        } else {
            "active"
        },
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
) -> Result<T, Response<Full<Bytes>>> {
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body could not be read or is over 16 KiB",
            )
        })?
        .to_bytes();
    let bytes = if bytes.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        bytes
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")))
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json_status(status, &json!({"error": message}))
}

fn store_error(e: StoreError) -> Response<Full<Bytes>> {
    let status = match &e {
        StoreError::NotFound(_) => StatusCode::NOT_FOUND,
        StoreError::Exists(_) | StoreError::Revoked(_) => StatusCode::CONFLICT,
        StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
        StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        StoreError::Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, &format!("key {e}"))
}
