//! Redis key names of limits and budgets.
//!
//! * `{<prefix>:<hash>}:rate:<amount>:<period µs>:<bucket>`: one limit's level
//! * `{<prefix>:<hash>}:budget:<window id>:<bucket>`: one budget window's spend
//!
//! `<hash>` is the FNV-1a hash of the bucket name, so all keys of one bucket share one hash tag
//! (one Cluster slot, as a script touching all of a bucket's limits requires) while buckets
//! spread over slots. The bucket name itself follows verbatim (Redis keys are binary-safe and it
//! is the last component, so no separator inside it is ambiguous): distinct buckets never share
//! a key even if their hashes collide; a collision only puts them in one slot. FNV rather than
//! std's hasher because every replica, whatever its build, must compute the same tag.

use super::gcra::Meter;
use crate::StoreError;

/// The key names of one store.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    prefix: String,
}

impl Names {
    /// [`StoreError::Invalid`] unless `prefix` is non-empty printable ASCII without spaces or
    /// braces (a brace would end the hash tag early).
    pub(crate) fn new(prefix: &str) -> Result<Self, StoreError> {
        let ok = !prefix.is_empty()
            && prefix
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}');
        if !ok {
            return Err(StoreError::Invalid(format!(
                "Redis key prefix {prefix:?}: expected printable ASCII without spaces or braces"
            )));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn rate(&self, bucket: &str, meter: &Meter) -> String {
        format!(
            "{}:rate:{}:{}:{bucket}",
            self.tag(bucket),
            meter.limit.amount,
            meter.limit.period.as_micros()
        )
    }

    pub(crate) fn budget(&self, bucket: &str, window_id: &str) -> String {
        format!("{}:budget:{window_id}:{bucket}", self.tag(bucket))
    }

    fn tag(&self, bucket: &str) -> String {
        format!("{{{}:{:016x}}}", self.prefix, fnv1a(bucket.as_bytes()))
    }
}

/// 64-bit FNV-1a: tiny, and the same on every platform and version.
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}
