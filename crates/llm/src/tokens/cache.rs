//! Counts of texts, remembered.
//!
//! A conversation resends its whole history with every turn, so most of the text in a long
//! request was counted on the previous turn, and system prompts repeat across requests. Encoding
//! costs ~25–90 µs per KB plus ~1 µs per text however short (the pre-tokenizer regex); hashing the
//! text to find its count again costs ~1 µs per KB and a few nanoseconds per text. So every text
//! is looked up before it is encoded, in one of two tables:
//!
//! * texts of [`MIN_LEN`] bytes and more by a keyed hash of their bytes. The hash is SipHash with
//!   a per-process random key (`RandomState`), so a client cannot craft a text that collides with
//!   another client's to borrow its count; an accidental 64-bit collision is negligible;
//! * shorter texts (roles, names, short messages: several in every request) by their bytes
//!   themselves, packed into the key, so they are exact and cannot evict the long texts, whose
//!   counts cost far more to redo.
//!
//! Each table is bounded: [`SHARDS`] × [`PER_SHARD`] entries (~260 KB for the long texts, ~400 KB
//! for the short ones), and a full shard is simply cleared (a conversation that outgrows it is
//! counted afresh).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::{LazyLock, Mutex, PoisonError};

/// Texts from this length are keyed by a hash; shorter ones by their bytes (up to 15 bytes, with
/// the tag and the length, fit in a `u128`).
pub(super) const MIN_LEN: usize = 16;

const SHARDS: usize = 16;
const PER_SHARD: usize = 1024;

struct Cache {
    key: std::collections::hash_map::RandomState,
    long: [Mutex<Table<u64>>; SHARDS],
    short: [Mutex<Table<u128>>; SHARDS],
}

/// A table whose keys need no second keyed hash: a long text's key already is one, and a short
/// text's key is the text itself, which a client gains nothing by colliding (a shard holds at
/// most [`PER_SHARD`] entries, and a full one is cleared).
type Table<K> = HashMap<K, u64, BuildHasherDefault<FoldHasher>>;

/// Folds a `u64` or `u128` key with one multiplication (SipHash on keys that are hashes already
/// was a third of a cache lookup).
#[derive(Default)]
struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(29) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }
}

static CACHE: LazyLock<Cache> = LazyLock::new(|| Cache {
    key: std::collections::hash_map::RandomState::new(),
    long: std::array::from_fn(|_| Mutex::default()),
    short: std::array::from_fn(|_| Mutex::default()),
});

/// The count of `text` under table `tag` (below 16), from the cache or from `count` (then
/// remembered).
pub(super) fn get_or_count(tag: u8, text: &str, count: impl FnOnce(&str) -> u64) -> u64 {
    debug_assert!(tag < 16, "a tag has four bits in a short text's key");
    let cache = &*CACHE;
    if text.len() < MIN_LEN {
        let key = short_key(tag, text.as_bytes());
        // Fold the key so that texts sharing a first letter spread over the shards.
        let folded = (key as u64 ^ (key >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let shard = &cache.short[(folded >> 60) as usize % SHARDS];
        return remembered(shard, key, text, count);
    }
    let mut h = cache.key.build_hasher();
    tag.hash(&mut h);
    text.hash(&mut h);
    let key = h.finish();
    remembered(&cache.long[(key as usize) % SHARDS], key, text, count)
}

/// The key of a text shorter than [`MIN_LEN`]: the tag and the length in the first byte (the
/// length tells `"a"` from `"a\0"`), then the text's bytes.
fn short_key(tag: u8, text: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    bytes[0] = (tag << 4) | text.len() as u8;
    bytes[1..=text.len()].copy_from_slice(text);
    u128::from_le_bytes(bytes)
}

fn remembered<K: Hash + Eq + Copy>(
    shard: &Mutex<Table<K>>,
    key: K,
    text: &str,
    count: impl FnOnce(&str) -> u64,
) -> u64 {
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

    // Tags 10..16 are the tests' own (the encodings use 0..3), so tests sharing the process-wide
    // cache do not see each other's entries.

    #[test]
    fn long_texts_are_counted_once() {
        let text = "remember me ".repeat(200);
        let calls = Cell::new(0);
        let count = |t: &str| {
            calls.set(calls.get() + 1);
            t.len() as u64
        };
        assert_eq!(get_or_count(10, &text, count), text.len() as u64);
        assert_eq!(get_or_count(10, &text, count), text.len() as u64);
        assert_eq!(calls.get(), 1);
        // Another table is another entry.
        assert_eq!(get_or_count(11, &text, count), text.len() as u64);
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn short_texts_are_counted_once_and_told_apart_exactly() {
        // The length plus 100 × the first byte: an entry of another text would show.
        let truth = |t: &str| t.len() as u64 + 100 * u64::from(t.bytes().next().unwrap_or(0));
        let calls = Cell::new(0);
        let count = |t: &str| {
            calls.set(calls.get() + 1);
            truth(t)
        };
        let texts = [
            "",
            "a",
            "a\0",
            "\0",
            "b",
            "user",
            "fifteen bytes!!",
            "fifteen bytes!?",
        ];
        for t in texts {
            assert_eq!(get_or_count(12, t, count), truth(t), "{t:?}");
        }
        assert_eq!(calls.get(), texts.len());
        for t in texts {
            assert_eq!(get_or_count(12, t, count), truth(t), "{t:?}");
        }
        assert_eq!(
            calls.get(),
            texts.len(),
            "the second round comes from the cache"
        );
        // Another table is another entry.
        assert_eq!(get_or_count(13, "a", count), truth("a"));
        assert_eq!(calls.get(), texts.len() + 1);
    }

    #[test]
    fn short_keys_hold_tag_length_and_bytes() {
        assert_ne!(short_key(1, b"a"), short_key(1, b"a\0"));
        assert_ne!(short_key(1, b"a"), short_key(2, b"a"));
        assert_ne!(short_key(1, b""), short_key(0, b""));
        assert_ne!(
            short_key(0, b"fifteen bytes!!"),
            short_key(0, b"fifteen bytes!?")
        );
        assert_eq!(short_key(2, b"ok"), short_key(2, b"ok"));
    }
}
