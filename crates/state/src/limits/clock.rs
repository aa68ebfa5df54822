//! The caller's clock as integer microseconds since the Unix epoch, the one time scale of every
//! limit and budget (in memory, and in Redis where Lua numbers are doubles).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::StoreError;

/// 2^53 µs after the epoch is in the year 2255. Later instants would no longer be exact as Lua
/// numbers, so they are refused rather than rounded.
pub(crate) const MAX_MICROS: u64 = 1 << 53;

/// `now` in whole microseconds since 1970-01-01T00:00:00Z (sub-microsecond parts dropped).
pub(crate) fn micros(now: SystemTime) -> Result<u64, StoreError> {
    let since = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| StoreError::Invalid(format!("time {now:?} is before 1970")))?;
    match u64::try_from(since.as_micros()) {
        Ok(us) if us < MAX_MICROS => Ok(us),
        _ => Err(StoreError::Invalid(format!(
            "time {now:?} is beyond the year 2255"
        ))),
    }
}

pub(crate) fn from_micros(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us)
}
