//! The stored form of a virtual API key, and the rules for changing one.
//!
//! The rules live here, not in the stores, so the file and Redis stores cannot drift apart:
//! each store only decides *where* a record is read and written atomically.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// One virtual API key. The key text itself is never stored, only its SHA-256 digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    pub id: String,
    /// Lowercase hex SHA-256 of the key text.
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Model globs this key may use; empty means no restriction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds of the last rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<u64>,
    /// Unix seconds; once set, the record never changes again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}

impl KeyRecord {
    /// A record with only the required fields set.
    pub fn new(id: impl Into<String>, digest: impl Into<String>, created_at: u64) -> Self {
        Self {
            id: id.into(),
            digest: digest.into(),
            tenant: None,
            user: None,
            labels: BTreeMap::new(),
            models: Vec::new(),
            expires_at: None,
            created_at,
            rotated_at: None,
            revoked_at: None,
        }
    }

    /// Refuse records that would be stored but could never authenticate anything, or whose
    /// id could not be addressed in the admin API.
    pub fn validate(&self) -> Result<(), StoreError> {
        validate_id(&self.id)?;
        validate_digest(&self.digest)
    }

    /// The record after rotating to `new_digest` at `at`.
    pub fn rotated(&self, new_digest: &str, at: u64) -> Result<KeyRecord, StoreError> {
        validate_digest(new_digest)?;
        if self.revoked_at.is_some() {
            return Err(StoreError::Revoked(self.id.clone()));
        }
        Ok(KeyRecord {
            digest: new_digest.to_owned(),
            rotated_at: Some(at),
            ..self.clone()
        })
    }

    /// The record after revoking it at `at`, or `None` if it is already revoked: revoking is
    /// idempotent and the first revocation time stays.
    pub fn revoked(&self, at: u64) -> Option<KeyRecord> {
        self.revoked_at.is_none().then(|| KeyRecord {
            revoked_at: Some(at),
            ..self.clone()
        })
    }
}

fn validate_id(id: &str) -> Result<(), StoreError> {
    // Ids appear in admin URLs and log lines: keep them to a plain, printable alphabet.
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "key id {id:?}: expected 1-128 characters of A-Z a-z 0-9 - _ . :"
        )))
    }
}

fn validate_digest(digest: &str) -> Result<(), StoreError> {
    let ok = digest.len() == 64
        && digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(
            "key digest: expected 64 lowercase hex characters (SHA-256)".to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const DIGEST_B: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn serializes_camel_case_and_omits_empty_fields() {
        let mut record = KeyRecord::new("k1", DIGEST_A, 10);
        assert_eq!(
            serde_json::to_string(&record).map_err(|e| e.to_string()),
            Ok(format!(
                r#"{{"id":"k1","digest":"{DIGEST_A}","createdAt":10}}"#
            ))
        );
        record.expires_at = Some(20);
        record.labels.insert("team".into(), "search".into());
        let json = serde_json::to_value(&record).map_err(|e| e.to_string());
        let json = json
            .as_ref()
            .map(|v| (v["expiresAt"].clone(), v["labels"].clone()));
        assert_eq!(
            json,
            Ok((serde_json::json!(20), serde_json::json!({"team": "search"})))
        );
    }

    #[test]
    fn validation() {
        assert_eq!(
            KeyRecord::new("team-a.key_1:x", DIGEST_B, 1).validate(),
            Ok(())
        );
        for id in ["", "a b", "a/b", "ä", &"x".repeat(129)] {
            let result = KeyRecord::new(id, DIGEST_A, 1).validate();
            assert!(matches!(result, Err(StoreError::Invalid(_))), "{id:?}");
        }
        for digest in ["", "abc", &DIGEST_A.to_uppercase(), &format!("{DIGEST_A}0")] {
            let result = KeyRecord::new("k", digest, 1).validate();
            assert!(matches!(result, Err(StoreError::Invalid(_))), "{digest:?}");
        }
    }

    #[test]
    fn rotation_keeps_everything_but_the_digest() {
        let mut record = KeyRecord::new("k", DIGEST_A, 1);
        record.tenant = Some("t".into());
        let rotated = record.rotated(DIGEST_B, 5);
        let mut expected = record.clone();
        expected.digest = DIGEST_B.into();
        expected.rotated_at = Some(5);
        assert_eq!(rotated, Ok(expected));
        assert!(matches!(
            record.rotated("nope", 5),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn revocation_is_final_and_idempotent() {
        let record = KeyRecord::new("k", DIGEST_A, 1);
        let revoked = record.revoked(7);
        assert_eq!(revoked.as_ref().and_then(|r| r.revoked_at), Some(7));
        let revoked = revoked.unwrap_or(record);
        assert_eq!(revoked.revoked(9), None);
        assert_eq!(
            revoked.rotated(DIGEST_B, 9),
            Err(StoreError::Revoked("k".into()))
        );
    }
}
