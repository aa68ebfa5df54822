//! Byte-class bitmasks for 64-byte blocks: the one pass over the text looks at set bits only.
//!
//! Three classes: *word* bytes (ASCII letters, digits, `_`, and every non-ASCII byte, so
//! letters of other scripts join words), *trigger* bytes (where a detector can start: digits,
//! `@ : + ( - A < [ #`) and *base64* bytes (ASCII letters, digits, `+ / - _`). On x86_64 the
//! masks come from SSE2 compares (always available there); elsewhere from a table.

/// The class masks of one block; bit `k` is byte `k` of the block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Masks {
    pub word: u64,
    pub trigger: u64,
    pub base64: u64,
}

const WORD: u8 = 1;
const TRIGGER: u8 = 2;
const BASE64: u8 = 4;

const fn table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut c = 0usize;
    while c < 256 {
        let b = c as u8;
        let alnum = b.is_ascii_alphanumeric();
        if alnum || b == b'_' || b >= 0x80 {
            t[c] |= WORD;
        }
        if b.is_ascii_digit()
            || matches!(
                b,
                b'@' | b':' | b'+' | b'(' | b'-' | b'A' | b'<' | b'[' | b'#'
            )
        {
            t[c] |= TRIGGER;
        }
        if alnum || matches!(b, b'+' | b'/' | b'-' | b'_') {
            t[c] |= BASE64;
        }
        c += 1;
    }
    t
}
static CLASS: [u8; 256] = table();

/// Whether `b` is a word byte (see the module docs).
#[inline]
pub(crate) fn is_word_byte(b: u8) -> bool {
    CLASS[b as usize] & WORD != 0
}

/// Masks of up to 64 bytes; bits past `bytes.len()` are zero.
#[inline]
pub(crate) fn masks(bytes: &[u8]) -> Masks {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() == 64 {
        // SAFETY: SSE2 is part of the x86_64 baseline; the block is 64 readable bytes.
        return unsafe { sse2::masks64(bytes.as_ptr()) };
    }
    scalar(bytes)
}

/// Whether 64 bytes are all printable ASCII, tab, LF or CR (`None` off x86_64: the caller
/// uses its portable check).
#[inline]
pub(crate) fn plain64(bytes: &[u8; 64]) -> Option<bool> {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86_64 baseline; the array is 64 readable bytes.
        Some(unsafe { sse2::plain64(bytes.as_ptr()) })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = bytes;
        None
    }
}

fn scalar(bytes: &[u8]) -> Masks {
    let mut m = Masks::default();
    for (k, &b) in bytes.iter().enumerate().take(64) {
        let c = CLASS[b as usize];
        m.word |= u64::from(c & WORD != 0) << k;
        m.trigger |= u64::from(c & TRIGGER != 0) << k;
        m.base64 |= u64::from(c & BASE64 != 0) << k;
    }
    m
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::*;

    use super::Masks;

    /// Bytes of `x` in `lo..=hi` (unsigned), as 0xFF lanes: shift the range to the bottom of the
    /// signed range, then one signed compare.
    #[inline(always)]
    unsafe fn in_range(x: __m128i, lo: u8, hi: u8) -> __m128i {
        let shifted = _mm_add_epi8(x, _mm_set1_epi8(0x80u8.wrapping_sub(lo) as i8));
        _mm_cmplt_epi8(shifted, _mm_set1_epi8((i32::from(hi - lo) + 1 - 128) as i8))
    }

    #[inline(always)]
    unsafe fn eq(x: __m128i, c: u8) -> __m128i {
        _mm_cmpeq_epi8(x, _mm_set1_epi8(c as i8))
    }

    #[inline(always)]
    unsafe fn masks16(p: *const u8) -> (u64, u64, u64) {
        let x = _mm_loadu_si128(p as *const __m128i);
        let digit = in_range(x, b'0', b'9');
        let alpha = in_range(_mm_or_si128(x, _mm_set1_epi8(0x20)), b'a', b'z');
        let alnum = _mm_or_si128(digit, alpha);
        let under = eq(x, b'_');
        let dash = eq(x, b'-');
        let plus = eq(x, b'+');
        // Non-ASCII bytes have their top bit set, which is what movemask reads.
        let word = _mm_or_si128(_mm_or_si128(alnum, under), x);
        let b64 = _mm_or_si128(
            _mm_or_si128(alnum, under),
            _mm_or_si128(_mm_or_si128(dash, plus), eq(x, b'/')),
        );
        let t1 = _mm_or_si128(
            _mm_or_si128(digit, eq(x, b'@')),
            _mm_or_si128(eq(x, b':'), plus),
        );
        let t2 = _mm_or_si128(
            _mm_or_si128(eq(x, b'('), dash),
            _mm_or_si128(eq(x, b'A'), eq(x, b'<')),
        );
        let t3 = _mm_or_si128(eq(x, b'['), eq(x, b'#'));
        let trig = _mm_or_si128(_mm_or_si128(t1, t2), t3);
        (
            _mm_movemask_epi8(word) as u16 as u64,
            _mm_movemask_epi8(trig) as u16 as u64,
            _mm_movemask_epi8(b64) as u16 as u64,
        )
    }

    /// # Safety
    /// `p` must point to 64 readable bytes.
    #[inline]
    pub(super) unsafe fn plain64(p: *const u8) -> bool {
        let mut bad = _mm_setzero_si128();
        for k in 0..4 {
            let x = _mm_loadu_si128(p.add(16 * k) as *const __m128i);
            // Signed: bytes >= 0x80 are negative, so non-ASCII counts as "below space" too.
            let low = _mm_cmplt_epi8(x, _mm_set1_epi8(0x20));
            let allowed = _mm_or_si128(_mm_or_si128(eq(x, b'\t'), eq(x, b'\n')), eq(x, b'\r'));
            bad = _mm_or_si128(
                bad,
                _mm_or_si128(_mm_andnot_si128(allowed, low), eq(x, 0x7f)),
            );
        }
        _mm_movemask_epi8(bad) == 0
    }

    /// # Safety
    /// `p` must point to 64 readable bytes.
    #[inline]
    pub(super) unsafe fn masks64(p: *const u8) -> Masks {
        let mut m = Masks::default();
        for k in 0..4 {
            let (w, t, b) = masks16(p.add(16 * k));
            m.word |= w << (16 * k);
            m.trigger |= t << (16 * k);
            m.base64 |= b << (16 * k);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_and_table_agree_on_every_byte() {
        let all: Vec<u8> = (0..=255u8).collect();
        for block in all.chunks(64) {
            assert_eq!(masks(block), scalar(block));
        }
        let mut shuffled: Vec<u8> = (0..=255u8).rev().collect();
        shuffled.rotate_left(7);
        for block in shuffled.chunks(64) {
            assert_eq!(masks(block), scalar(block));
        }
    }

    #[test]
    fn plain_blocks() {
        let mut block = [b'a'; 64];
        assert_ne!(plain64(&block), Some(false));
        for bad in [0u8, 0x07, 0x1f, 0x7f, 0x80, 0xc3, 0xff] {
            block[37] = bad;
            assert_ne!(plain64(&block), Some(true), "{bad:#x}");
        }
        for ok in [b'\t', b'\n', b'\r', b' ', b'~'] {
            block[37] = ok;
            assert_ne!(plain64(&block), Some(false), "{ok:#x}");
        }
    }

    #[test]
    fn classes() {
        let m = masks(b"ab_9 @x-+/ A<[#");
        assert_eq!(m.word & 0b1111, 0b1111);
        assert_eq!(m.word >> 4 & 1, 0);
        assert!(m.trigger >> 3 & 1 == 1); // '9'
        assert!(m.trigger >> 5 & 1 == 1); // '@'
        assert!(m.base64 >> 9 & 1 == 1); // '/'
        assert!(m.trigger >> 11 & 1 == 1); // 'A'
        assert!(m.trigger >> 14 & 1 == 1); // '#'
    }
}
