//! Virtual API keys, held only as SHA-256 digests.
//!
//! The gateway never stores a key's text: configuration holds digests, and a presented key is
//! digested and looked up. A leaked configuration or memory dump therefore yields no usable keys,
//! and because the keys are 256 bits of randomness, a fast hash is enough (there is nothing to
//! brute-force, so no password hash is needed).
//!
//! # Why looking up by digest is safe
//!
//! The lookup is a hash-map probe on the digest of the presented key, which takes time that
//! depends on the digest. An attacker timing it learns at most something about the SHA-256
//! output of keys *they* chose, never about a stored key: to use that knowledge they would need
//! to find a key whose digest matches a stored one, which is a preimage attack on SHA-256. The
//! final comparison of the full digest is still constant-time, as defence in depth and so that a
//! reader does not have to take the argument above on trust.

use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};

/// The prefix of every generated key: it lets secret scanners (and people) recognise a leaked
/// Sluice key, and lets the gateway tell virtual keys from provider keys at a glance.
pub const KEY_PREFIX: &str = "sk-sluice-";

/// The SHA-256 digest of an API key's text.
///
/// `Debug` prints only the first 8 hex digits: enough to tell keys apart in logs, not enough to
/// make the log a lookup table.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// The digest of `key` exactly as presented (no trimming or case folding).
    pub fn of(key: &str) -> KeyDigest {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, key.as_bytes()).as_ref());
        KeyDigest(out)
    }

    /// Parses 64 hex digits, in either case.
    pub fn from_hex(s: &str) -> Result<KeyDigest, DigestParseError> {
        // The message never repeats the input: an operator may have pasted the key itself.
        if s.len() != 64 {
            return Err(DigestParseError::WrongLength(s.chars().count()));
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
            *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Ok(KeyDigest(out))
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(char::from(DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        out
    }

    /// The digest's first 8 bytes, used to pick a [`KeyTable`] bucket.
    fn bucket(&self) -> u64 {
        let mut head = [0u8; 8];
        head.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(head)
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({}…)", &self.to_hex()[..8])
    }
}

fn hex_value(c: u8) -> Result<u8, DigestParseError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(DigestParseError::NotHex),
    }
}

/// Why a string is not a key digest. Never repeats the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestParseError {
    #[error("an API key digest is 64 hex digits (SHA-256), found {0} characters")]
    WrongLength(usize),
    #[error("an API key digest is 64 hex digits (SHA-256), found a non-hex character")]
    NotHex,
}

/// The operating system's random number generator failed, so no key can be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

/// A new key and its digest: [`KEY_PREFIX`] followed by 43 base64url characters encoding 32
/// bytes from the system random number generator.
pub fn try_generate() -> Result<(String, KeyDigest), RandomError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| RandomError)?;
    let mut key = String::with_capacity(KEY_PREFIX.len() + 43);
    key.push_str(KEY_PREFIX);
    URL_SAFE_NO_PAD.encode_string(bytes, &mut key);
    let digest = KeyDigest::of(&key);
    Ok((key, digest))
}

/// Like [`try_generate`], for callers with no way to handle a broken system random number
/// generator.
///
/// # Panics
///
/// When the operating system cannot supply randomness. There is no safe fallback: a key made
/// from anything weaker must not exist.
pub fn generate() -> (String, KeyDigest) {
    match try_generate() {
        Ok(generated) => generated,
        Err(err) => panic!("cannot generate an API key: {err}"),
    }
}

/// Two entries for the same key digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("API key {0:?} is configured twice")]
pub struct DuplicateKey(pub KeyDigest);

/// Values (tenants, key records) indexed by the digest of their API key.
///
/// Entries are bucketed by the first 8 bytes of the digest; the bucket's entries are then
/// compared on all 32 bytes in constant time. Buckets almost always hold one entry: two
/// configured keys sharing 64 bits of SHA-256 output would take about 2^32 tries to arrange.
pub struct KeyTable<T> {
    buckets: HashMap<u64, Vec<(KeyDigest, T)>>,
    len: usize,
}

impl<T> KeyTable<T> {
    pub fn new() -> Self {
        KeyTable {
            buckets: HashMap::new(),
            len: 0,
        }
    }

    /// Adds the value for a key digest; a digest can be added once.
    pub fn insert(&mut self, digest: KeyDigest, value: T) -> Result<(), DuplicateKey> {
        let bucket = self.buckets.entry(digest.bucket()).or_default();
        if bucket.iter().any(|(stored, _)| *stored == digest) {
            return Err(DuplicateKey(digest));
        }
        bucket.push((digest, value));
        self.len += 1;
        Ok(())
    }

    /// The value for the key presented as `key`, if it is in the table.
    pub fn find(&self, key: &str) -> Option<&T> {
        self.find_digest(&KeyDigest::of(key))
    }

    /// The value for a key's digest, if it is in the table.
    pub fn find_digest(&self, digest: &KeyDigest) -> Option<&T> {
        self.buckets
            .get(&digest.bucket())?
            .iter()
            .find(|(stored, _)| equal_in_constant_time(&stored.0, &digest.0))
            .map(|(_, value)| value)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T> Default for KeyTable<T> {
    fn default() -> Self {
        KeyTable::new()
    }
}

impl<T> fmt::Debug for KeyTable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyTable").field("len", &self.len).finish()
    }
}

/// Whether `a == b`, taking the same time wherever they differ: the differences are folded
/// together with OR instead of stopping at the first one. `black_box` keeps the optimiser from
/// turning the fold back into an early exit.
fn equal_in_constant_time(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_of_the_text() {
        // SHA-256("abc") from FIPS 180-2, appendix B.1.
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(KeyDigest::of("abc").to_hex(), expected);
        assert_eq!(KeyDigest::from_hex(expected), Ok(KeyDigest::of("abc")));
        assert_eq!(
            KeyDigest::from_hex(&expected.to_uppercase()),
            Ok(KeyDigest::of("abc"))
        );
        assert_ne!(KeyDigest::of("abc"), KeyDigest::of("abc "));
    }

    #[test]
    fn from_hex_rejects_bad_input_without_repeating_it() {
        let key = "sk-sluice-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let err = KeyDigest::from_hex(key).unwrap_err();
        assert_eq!(err, DigestParseError::WrongLength(key.len()));
        assert!(!err.to_string().contains(key));
        let not_hex = format!("{}g", "0".repeat(63));
        assert_eq!(KeyDigest::from_hex(&not_hex), Err(DigestParseError::NotHex));
        // 64 bytes but 32 characters: the length check counts bytes, the digit check fails.
        assert_eq!(
            KeyDigest::from_hex(&"é".repeat(32)),
            Err(DigestParseError::NotHex)
        );
        assert_eq!(
            KeyDigest::from_hex(&"é".repeat(31)),
            Err(DigestParseError::WrongLength(31))
        );
    }

    #[test]
    fn debug_shows_only_a_prefix() {
        let digest = KeyDigest::of("abc");
        assert_eq!(format!("{digest:?}"), "KeyDigest(ba7816bf…)");
        let err = DuplicateKey(digest);
        assert!(!err.to_string().contains(&digest.to_hex()));
    }

    #[test]
    fn generated_keys_have_the_prefix_and_32_random_bytes() {
        let (key, digest) = generate();
        assert!(key.starts_with(KEY_PREFIX));
        let body = &key[KEY_PREFIX.len()..];
        assert_eq!(body.len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(body).map(|b| b.len()), Ok(32));
        assert_eq!(digest, KeyDigest::of(&key));
        let (other, _) = generate();
        assert_ne!(key, other);
    }

    #[test]
    fn table_finds_inserted_keys_only() {
        let mut table = KeyTable::new();
        assert!(table.is_empty());
        let keys: Vec<String> = (0..100).map(|_| generate().0).collect();
        for (i, key) in keys.iter().enumerate() {
            table.insert(KeyDigest::of(key), i).unwrap();
        }
        assert_eq!(table.len(), 100);
        assert!(!table.is_empty());
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(table.find(key), Some(&i));
        }
        assert_eq!(table.find(&format!("{} ", keys[0])), None);
        assert_eq!(table.find(""), None);
        assert_eq!(table.find(&generate().0), None);
    }

    #[test]
    fn duplicate_digests_are_refused() {
        let mut table = KeyTable::default();
        let digest = KeyDigest::of("k");
        table.insert(digest, 1).unwrap();
        assert_eq!(table.insert(digest, 2), Err(DuplicateKey(digest)));
        assert_eq!(table.len(), 1);
        assert_eq!(table.find("k"), Some(&1));
    }

    #[test]
    fn digests_sharing_a_bucket_are_told_apart() {
        let mut a = [7u8; 32];
        let mut b = a;
        a[31] = 1;
        b[31] = 2;
        let (a, b) = (KeyDigest(a), KeyDigest(b));
        assert_eq!(a.bucket(), b.bucket());
        let mut table = KeyTable::new();
        table.insert(a, "a").unwrap();
        table.insert(b, "b").unwrap();
        assert_eq!(table.find_digest(&a), Some(&"a"));
        assert_eq!(table.find_digest(&b), Some(&"b"));
        let mut c = a.0;
        c[31] = 3;
        assert_eq!(table.find_digest(&KeyDigest(c)), None);
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn constant_time_equality_is_equality() {
        let a = [1u8; 32];
        for i in 0..32 {
            let mut b = a;
            b[i] ^= 0x80;
            assert!(!equal_in_constant_time(&a, &b));
        }
        assert!(equal_in_constant_time(&a, &[1u8; 32]));
    }
}
