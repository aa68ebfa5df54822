//! Counts of texts, remembered.
//!
//! A conversation resends its whole history with every turn, so most of the text in a long
//! request was counted on the previous turn, and system prompts repeat across requests. Encoding
//! costs ~25–90 µs per KB plus ~1 µs per text however short (the pre-tokenizer regex); hashing the
//! text to find its count again costs ~1 µs per KB and a few nanoseconds per text. So texts of
//! [`MIN_LEN`] bytes and more are looked up by a keyed hash of their bytes before they are encoded.
//!
//! The hash is SipHash with a per-process random key (`RandomState`), so a client cannot craft a
//! text that collides with another client's to borrow its count; an accidental 64-bit collision
//! is negligible. The cache is bounded: [`SHARDS`] × [`PER_SHARD`] entries of 16 bytes (~260 KB),
//! and a full shard is simply cleared (a conversation that outgrows it is counted afresh).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{LazyLock, Mutex, PoisonError};

/// Shorter texts are counted in about the time a lookup takes; not worth an entry.
pub(super) const MIN_LEN: usize = 16;

const SHARDS: usize = 16;
const PER_SHARD: usize = 1024;

struct Cache {
    key: std::collections::hash_map::RandomState,
    shards: [Mutex<HashMap<u64, u64>>; SHARDS],
}

static CACHE: LazyLock<Cache> = LazyLock::new(|| Cache {
    key: std::collections::hash_map::RandomState::new(),
    shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
});

/// The count of `text` under table `tag`, from the cache or from `count` (then remembered).
pub(super) fn get_or_count(tag: u8, text: &str, count: impl FnOnce(&str) -> u64) -> u64 {
    if text.len() < MIN_LEN {
        return count(text);
    }
    let cache = &*CACHE;
    let mut h = cache.key.build_hasher();
    tag.hash(&mut h);
    text.hash(&mut h);
    let key = h.finish();
    let shard = &cache.shards[(key as usize) % SHARDS];
    // A panic while holding the lock cannot leave the map inconsistent (inserts are atomic from
    // our side), so a poisoned lock is used as it is.
    if let Some(&n) = shard
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return n;
    }
    // Count outside the lock: two threads may count the same text at once, which is harmless.
    let n = count(text);
    let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
    if map.len() >= PER_SHARD {
        map.clear();
    }
    map.insert(key, n);
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn long_texts_are_counted_once() {
        let text = "remember me ".repeat(200);
        let calls = Cell::new(0);
        let count = |t: &str| {
            calls.set(calls.get() + 1);
            t.len() as u64
        };
        assert_eq!(get_or_count(200, &text, count), text.len() as u64);
        assert_eq!(get_or_count(200, &text, count), text.len() as u64);
        assert_eq!(calls.get(), 1);
        // Another table is another entry.
        assert_eq!(get_or_count(201, &text, count), text.len() as u64);
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn short_texts_are_not_cached() {
        let calls = Cell::new(0);
        let count = |_: &str| {
            calls.set(calls.get() + 1);
            1
        };
        get_or_count(202, "short", count);
        get_or_count(202, "short", count);
        assert_eq!(calls.get(), 2);
    }
}
