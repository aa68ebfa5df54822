//! Text normalisation before detection, with a map back to the original bytes.
//!
//! Attackers hide words from filters with look-alike characters: fullwidth or mathematical
//! letters (`ｉｇｎｏｒｅ`, `𝐢𝐠𝐧𝐨𝐫𝐞`), Cyrillic or Greek homoglyphs (`іgnоrе`), invisible characters
//! between letters (`ig\u{200B}nore`), combining accents (`ïgnörë`) and Unicode tag characters that
//! carry a whole invisible ASCII message. Detection runs on a folded copy of the text in which
//! all of these read as plain ASCII; a [`Normalised`] remembers which original bytes each part of
//! the copy came from, so findings are reported (and masked) in the caller's text.
//!
//! Per character, in order: invisible characters are dropped; tag characters become the ASCII
//! they encode; the character is decomposed for compatibility (NFKD); combining diacritics
//! (U+0300..U+036F) are dropped; Cyrillic, Greek and other Latin look-alikes fold to Latin;
//! letters left outside ASCII are lower-cased; what remains is recomposed (NFC). This equals NFKC
//! plus folding for everything detection cares about; composition across characters (Hangul
//! jamo typed one by one) is not done, because no detector looks at such text.

use std::borrow::Cow;
use std::ops::Range;

use unicode_normalization::char::{compose, decompose_compatible};

/// Text ready for detection: `text` is the folded copy, `segs` maps it back. An empty `segs`
/// means the copy is the original (the fast path for plain ASCII).
#[derive(Debug)]
pub(crate) struct Normalised<'a> {
    pub text: Cow<'a, str>,
    segs: Vec<Seg>,
    /// How many Unicode tag characters (invisible ASCII) the original held.
    pub tag_chars: usize,
}

/// A run of the folded text and where it came from. A `copied` run is byte-for-byte the
/// original, so offsets inside it map one to one; any other run came from one original
/// character and every byte of it maps to that whole character.
#[derive(Debug, Clone, Copy)]
struct Seg {
    norm: u32,
    orig: u32,
    norm_len: u32,
    orig_len: u32,
    copied: bool,
}

/// True for the bytes the fast path accepts as they are: printable ASCII, tab, LF, CR.
#[inline]
fn plain_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) || b == b'\n' || b == b'\r' || b == b'\t'
}

/// Whether `text` needs no folding at all: printable ASCII, tab, LF and CR only. SSE2 checks 64
/// bytes per step on x86_64; elsewhere the standard library's ASCII check, then eight bytes at
/// a time with the classic "has a byte below n" bit trick, looking byte by byte only at words
/// that might hold a control character (a newline is one too).
pub(crate) fn is_plain(text: &str) -> bool {
    let mut blocks = text.as_bytes().chunks_exact(64);
    for block in &mut blocks {
        match block.try_into().ok().and_then(super::masks::plain64) {
            Some(true) => {}
            Some(false) => return false,
            None => return is_plain_portable(text),
        }
    }
    is_plain_portable(std::str::from_utf8(blocks.remainder()).unwrap_or("\u{0}"))
}

/// [`is_plain`] without SIMD.
fn is_plain_portable(text: &str) -> bool {
    if !text.is_ascii() {
        return false;
    }
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let bytes = text.as_bytes();
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let below_space = x.wrapping_sub(LOW * 0x20) & !x & HIGH;
        let y = x ^ (LOW * 0x7f);
        let del = y.wrapping_sub(LOW) & !y & HIGH;
        if (below_space | del) != 0 && !w.iter().all(|&b| plain_byte(b)) {
            return false;
        }
    }
    words.remainder().iter().all(|&b| plain_byte(b))
}

impl<'a> Normalised<'a> {
    pub fn new(original: &'a str) -> Normalised<'a> {
        if is_plain(original) {
            return Normalised {
                text: Cow::Borrowed(original),
                segs: Vec::new(),
                tag_chars: 0,
            };
        }
        let mut out = String::with_capacity(original.len());
        let mut segs: Vec<Seg> = Vec::new();
        let mut folded = String::new();
        let mut tag_chars = 0;
        let bytes = original.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            // A run of bytes that are copied as they are.
            let run_start = i;
            while i < bytes.len() && plain_byte(bytes[i]) {
                i += 1;
            }
            if i > run_start {
                push_copied(&mut segs, &mut out, original, run_start..i);
            }
            if i >= bytes.len() {
                break;
            }
            let Some(c) = original[i..].chars().next() else {
                break;
            };
            let len = c.len_utf8();
            tag_chars += usize::from(tag_ascii(c).is_some());
            folded.clear();
            fold_char(c, &mut folded);
            if folded.len() == len && folded.as_str() == &original[i..i + len] {
                push_copied(&mut segs, &mut out, original, i..i + len);
            } else {
                segs.push(Seg {
                    norm: out.len() as u32,
                    orig: i as u32,
                    norm_len: folded.len() as u32,
                    orig_len: len as u32,
                    copied: false,
                });
                out.push_str(&folded);
            }
            i += len;
        }
        Normalised {
            text: Cow::Owned(out),
            segs,
            tag_chars,
        }
    }

    /// Whether the folded text is the original.
    pub fn is_identity(&self) -> bool {
        self.segs.is_empty()
    }

    /// The original byte range a range of the folded text came from. Both ends land on
    /// character boundaries of the original.
    pub fn to_original(&self, r: Range<usize>) -> Range<usize> {
        if self.segs.is_empty() {
            return r;
        }
        let start = {
            let s = &self.segs[self.seg_at(r.start)];
            if s.copied {
                s.orig as usize + (r.start - s.norm as usize)
            } else {
                s.orig as usize
            }
        };
        let end = if r.end <= r.start {
            start
        } else {
            let s = &self.segs[self.seg_at(r.end - 1)];
            if s.copied {
                s.orig as usize + (r.end - s.norm as usize)
            } else {
                (s.orig + s.orig_len) as usize
            }
        };
        start..end.max(start)
    }

    /// The segment holding folded byte `pos`: the last one starting at or before it that is
    /// not empty (dropped characters make empty segments).
    fn seg_at(&self, pos: usize) -> usize {
        let pos = pos as u32;
        let idx = self.segs.partition_point(|s| s.norm <= pos);
        let mut k = idx.saturating_sub(1);
        while k > 0 && self.segs[k].norm_len == 0 {
            k -= 1;
        }
        k
    }
}

fn push_copied(segs: &mut Vec<Seg>, out: &mut String, original: &str, r: Range<usize>) {
    let len = (r.end - r.start) as u32;
    if let Some(last) = segs.last_mut() {
        if last.copied && last.orig + last.orig_len == r.start as u32 {
            last.norm_len += len;
            last.orig_len += len;
            out.push_str(&original[r]);
            return;
        }
    }
    segs.push(Seg {
        norm: out.len() as u32,
        orig: r.start as u32,
        norm_len: len,
        orig_len: len,
        copied: true,
    });
    out.push_str(&original[r]);
}

/// Characters that render as nothing (or nearly) and are used to split words: zero-width
/// spaces and joiners, word joiner, BOM, soft hyphen, bidi controls, invisible operators,
/// variation selectors, the Mongolian vowel separator, the combining grapheme joiner.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{E0100}'..='\u{E01EF}'
        | '\u{E0001}' | '\u{E007F}')
}

/// Unicode "tag" characters U+E0020..U+E007E mirror printable ASCII and render as nothing:
/// a known way to smuggle an instruction past a human reader.
fn tag_ascii(c: char) -> Option<char> {
    let u = c as u32;
    (0xE0020..=0xE007E)
        .contains(&u)
        .then(|| char::from((u - 0xE0000) as u8))
}

/// Fold one character into `out` (possibly nothing).
fn fold_char(c: char, out: &mut String) {
    if c.is_ascii() {
        // Only control characters reach here (plain ASCII is copied): they are dropped.
        return;
    }
    if is_invisible(c) {
        return;
    }
    if let Some(a) = tag_ascii(c) {
        out.push(a);
        return;
    }
    // Decompose, drop diacritics, fold look-alikes, lower-case what is not ASCII.
    let mut parts: [char; 24] = ['\0'; 24];
    let mut n = 0;
    decompose_compatible(c, |d| {
        if ('\u{0300}'..='\u{036F}').contains(&d) || is_invisible(d) {
            return;
        }
        let d = homoglyph(d).unwrap_or(d);
        if d.is_ascii() {
            if n < parts.len() {
                parts[n] = d;
                n += 1;
            }
            return;
        }
        for l in d.to_lowercase() {
            let l = homoglyph(l).unwrap_or(l);
            if n < parts.len() {
                parts[n] = l;
                n += 1;
            }
        }
    });
    // Recompose what decomposition split and folding kept (Hangul syllables, marks outside
    // the Latin diacritics block).
    let mut k = 0;
    while k < n {
        let mut base = parts[k];
        k += 1;
        while k < n {
            match compose(base, parts[k]) {
                Some(composed) => {
                    base = composed;
                    k += 1;
                }
                None => break,
            }
        }
        out.push(base);
    }
}

/// Latin look-alikes from other scripts (Unicode confusables that matter for English text),
/// applied after compatibility decomposition, so fullwidth and mathematical forms are already
/// plain letters by then.
fn homoglyph(c: char) -> Option<char> {
    Some(match c {
        // Cyrillic lower case
        'а' => 'a',
        'в' => 'b',
        'е' => 'e',
        'ё' => 'e',
        'к' => 'k',
        'м' => 'm',
        'н' => 'h',
        'о' => 'o',
        'р' => 'p',
        'с' => 'c',
        'т' => 't',
        'у' => 'y',
        'х' => 'x',
        'ѕ' => 's',
        'і' => 'i',
        'ї' => 'i',
        'ј' => 'j',
        'ԁ' => 'd',
        'ԛ' => 'q',
        'ԝ' => 'w',
        'һ' => 'h',
        'ү' => 'y',
        'ɡ' => 'g',
        'ӏ' => 'l',
        'ь' => 'b',
        'ꙇ' => 'i',
        // Cyrillic upper case
        'А' => 'A',
        'В' => 'B',
        'Е' => 'E',
        'Ё' => 'E',
        'К' => 'K',
        'М' => 'M',
        'Н' => 'H',
        'О' => 'O',
        'Р' => 'P',
        'С' => 'C',
        'Т' => 'T',
        'У' => 'Y',
        'Х' => 'X',
        'Ѕ' => 'S',
        'І' => 'I',
        'Ї' => 'I',
        'Ј' => 'J',
        'Ԛ' => 'Q',
        'Ԝ' => 'W',
        'Һ' => 'H',
        'Ү' => 'Y',
        'Ӏ' => 'I',
        'Ь' => 'b',
        // Greek lower case
        'α' => 'a',
        'β' => 'b',
        'γ' => 'y',
        'ε' => 'e',
        'ι' => 'i',
        'κ' => 'k',
        'ν' => 'v',
        'ο' => 'o',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'u',
        'χ' => 'x',
        'ω' => 'w',
        'ϲ' => 'c',
        'ϳ' => 'j',
        // Greek upper case
        'Α' => 'A',
        'Β' => 'B',
        'Ε' => 'E',
        'Ζ' => 'Z',
        'Η' => 'H',
        'Ι' => 'I',
        'Κ' => 'K',
        'Μ' => 'M',
        'Ν' => 'N',
        'Ο' => 'O',
        'Ρ' => 'P',
        'Τ' => 'T',
        'Υ' => 'Y',
        'Χ' => 'X',
        'Ϲ' => 'C',
        // Armenian, Latin extensions and IPA letters that read as ASCII
        'օ' => 'o',
        'ս' => 'u',
        'ց' => 'g',
        'ı' => 'i',
        'ȷ' => 'j',
        'ɑ' => 'a',
        'ɩ' => 'i',
        'ʏ' => 'y',
        'ᴀ' => 'a',
        'ʙ' => 'b',
        'ᴄ' => 'c',
        'ᴅ' => 'd',
        'ᴇ' => 'e',
        'ɢ' => 'g',
        'ʜ' => 'h',
        'ɪ' => 'i',
        'ᴊ' => 'j',
        'ᴋ' => 'k',
        'ʟ' => 'l',
        'ᴍ' => 'm',
        'ɴ' => 'n',
        'ᴏ' => 'o',
        'ᴘ' => 'p',
        'ʀ' => 'r',
        'ꜱ' => 's',
        'ᴛ' => 't',
        'ᴜ' => 'u',
        'ᴠ' => 'v',
        'ᴡ' => 'w',
        'ᴢ' => 'z',
        // Punctuation look-alikes that matter for addresses and markers
        '‐' | '‑' | '‒' | '–' | '—' | '−' => '-',
        '․' => '.',
        '﹫' | '＠' => '@',
        '‚' => ',',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Normalised::new(s).text.into_owned()
    }

    #[test]
    fn plain_ascii_is_borrowed_as_is() {
        let n = Normalised::new("Hello, world 123\n");
        assert!(n.is_identity());
        assert!(matches!(n.text, Cow::Borrowed(_)));
        assert_eq!(n.to_original(3..7), 3..7);
    }

    #[test]
    fn plain_check_covers_blocks_and_tail() {
        let base = "a".repeat(200);
        assert!(is_plain(&base));
        for at in [0, 63, 64, 150, 199] {
            let mut s = base.clone();
            s.replace_range(at..at + 1, "\u{1}");
            assert!(!is_plain(&s), "control at {at}");
            let mut s = base.clone();
            s.replace_range(at..at + 1, "\n");
            assert!(is_plain(&s), "newline at {at}");
            let mut s = base.clone();
            s.insert(at, 'é');
            assert!(!is_plain(&s), "non-ASCII at {at}");
        }
    }

    #[test]
    fn folds_the_common_disguises() {
        assert_eq!(norm("ｉｇｎｏｒｅ"), "ignore");
        assert_eq!(norm("𝐢𝐠𝐧𝐨𝐫𝐞"), "ignore");
        assert_eq!(norm("іgnоrе"), "ignore"); // Cyrillic і, о, е
        assert_eq!(norm("ig\u{200B}no\u{00AD}re"), "ignore");
        assert_eq!(norm("ïgnörë"), "ignore");
        assert_eq!(norm("i\u{0308}gnore"), "ignore"); // a combining diaeresis
        assert_eq!(norm("ΑΒΟ"), "ABO"); // Greek capitals
        assert_eq!(norm("a\u{0007}b"), "ab");
        assert_eq!(norm("x\u{E0068}\u{E0069}y"), "xhiy"); // tag characters
        assert_eq!(norm("ÄRGER"), "ARGER");
        assert_eq!(norm("Straße"), "Straße");
        assert_eq!(norm("ПРИВЕТ"), "пPиBET"); // look-alikes fold, other letters lower-case
        assert_eq!(norm("한국"), "한국");
    }

    #[test]
    fn maps_ranges_back_to_original_characters() {
        let s = "é john\u{200B}@ex.com";
        let n = Normalised::new(s);
        assert_eq!(n.text, "e john@ex.com");
        let at = n.text.find("john").unwrap();
        let r = n.to_original(at..n.text.len());
        assert_eq!(&s[r], "john\u{200B}@ex.com");
        // A range inside a folded character covers the whole character.
        let n = Normalised::new("ｈi");
        assert_eq!(n.to_original(0..1), 0..3);
        assert_eq!(n.to_original(1..2), 3..4);
    }
}
