//! The exact OpenAI encodings, via `tiktoken-rs`, behind a segmenter that keeps its regex engine
//! within safe limits.
//!
//! Why segment: `tiktoken-rs` pre-tokenises with `fancy-regex` and unwraps its result. A long
//! enough run of one kind of character (a million spaces and a letter, a million `^`; reported
//! upstream as openai/tiktoken#15 and zurawiki/tiktoken-rs#117) makes the regex engine give up,
//! and the unwrap then panics, which in a release build (`panic = "abort"`) would take the whole
//! gateway down on one request. Long pieces are also slow: a whitespace run longer than ~100 bytes costs ~5 times
//! as much per byte as prose. So text is fed to the encoder in segments of at most
//! [`MAX_SEGMENT`] bytes, and whitespace runs in pieces of at most [`MAX_SPACE_RUN`] bytes.
//!
//! Segments are cut where the encodings' pre-tokenisers would cut anyway, so counts stay exact:
//! before a space that follows a non-space (no pre-token of `o200k_base` or `cl100k_base`
//! contains a non-space followed by a space), or after a newline that precedes a non-space other
//! than `/` (no pre-token contains a newline followed by anything else). Text with no
//! such place within a segment (a long unbroken CJK line, a base64 blob) is cut at a character
//! boundary, which can add a token at the cut; long whitespace runs split into pieces can also
//! count a token or two more than whole. Both errors are upwards.

use std::sync::LazyLock;

use tiktoken_rs::CoreBPE;

/// Longest segment handed to the encoder: short enough that no regex backtracking can get deep,
/// long enough that the per-call overhead is lost in the noise (measured: 1 KiB segments encode
/// prose as fast as whole texts).
const MAX_SEGMENT: usize = 1024;

/// Longest whitespace run handed to the encoder in one piece (runs longer than ~100 bytes take a
/// slow path in the encoder).
const MAX_SPACE_RUN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Table {
    O200k,
    Cl100k,
}

// Built on first use or by `warm_up`. `None` only if the tables embedded in `tiktoken-rs` fail
// to parse, which its own tests rule out; counting then falls back to one token per byte, an
// upper bound for any byte-level BPE.
static O200K: LazyLock<Option<CoreBPE>> = LazyLock::new(|| tiktoken_rs::o200k_base().ok());
static CL100K: LazyLock<Option<CoreBPE>> = LazyLock::new(|| tiktoken_rs::cl100k_base().ok());

pub(super) fn warm_up() {
    LazyLock::force(&O200K);
    LazyLock::force(&CL100K);
}

fn table(which: Table) -> Option<&'static CoreBPE> {
    match which {
        Table::O200k => O200K.as_ref(),
        Table::Cl100k => CL100K.as_ref(),
    }
}

/// Exact token count of `text` (up to the rare upward errors described in the module doc).
pub(super) fn count(which: Table, text: &str) -> u64 {
    let Some(bpe) = table(which) else {
        return text.len() as u64;
    };
    Segments { rest: text }
        .map(|segment| bpe.encode_ordinary(segment).len() as u64)
        .sum()
}

fn is_space(b: u8) -> bool {
    b.is_ascii_whitespace() || b == b'\x0b'
}

/// Splits text into segments no longer than [`MAX_SEGMENT`], with whitespace runs in pieces no
/// longer than [`MAX_SPACE_RUN`].
pub(super) struct Segments<'a> {
    pub(super) rest: &'a str,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let cut = cut_point(self.rest.as_bytes());
        // `cut_point` only returns char boundaries (ASCII positions or a checked boundary), but
        // a wrong one must not panic here: fall back to the whole rest.
        let (head, tail) = match (self.rest.get(..cut), self.rest.get(cut..)) {
            (Some(h), Some(t)) if cut > 0 => (h, t),
            _ => (self.rest, ""),
        };
        self.rest = tail;
        Some(head)
    }
}

/// Where the next segment of `bytes` ends (> 0, a char boundary).
fn cut_point(bytes: &[u8]) -> usize {
    // Bounded look: counting a whole long run here on every call would be quadratic in it.
    let leading_space = bytes
        .iter()
        .take(MAX_SPACE_RUN + 1)
        .take_while(|&&b| is_space(b))
        .count();
    if leading_space > MAX_SPACE_RUN {
        return MAX_SPACE_RUN;
    }
    let limit = bytes.len().min(MAX_SEGMENT);
    // A long whitespace run inside the window: end the segment where it starts, so the next
    // segment begins with it and is split by the branch above.
    let mut run = 0;
    for (i, &b) in bytes[..limit].iter().enumerate() {
        if is_space(b) {
            run += 1;
            if run > MAX_SPACE_RUN && i + 1 - run > 0 {
                return i + 1 - run;
            }
        } else {
            run = 0;
        }
    }
    if bytes.len() <= MAX_SEGMENT {
        return bytes.len();
    }
    // A place where the pre-tokeniser cuts anyway, as late as possible but not in the first
    // half (which would make segments needlessly short).
    let preferred = (MAX_SEGMENT / 2..=limit)
        .rev()
        .find(|&p| p < bytes.len() && natural_cut(bytes, p));
    match preferred {
        Some(p) => p,
        None => floor_char_boundary(bytes, limit),
    }
}

/// Whether no pre-token of either encoding spans position `p` (0 < p < len). Not after a
/// newline followed by `/`: o200k's punctuation pre-token (` ?[^\s\p{L}\p{N}]+[\r\n/]*`) can run
/// on through newlines into slashes (`,\n//`).
fn natural_cut(bytes: &[u8], p: usize) -> bool {
    let (before, at) = (bytes[p - 1], bytes[p]);
    (at == b' ' && !is_space(before)) || (before == b'\n' && !is_space(at) && at != b'/')
}

/// The largest char boundary at or below `i` (`i` > 3, so the result is > 0).
fn floor_char_boundary(bytes: &[u8], mut i: usize) -> usize {
    // UTF-8 continuation bytes are 0b10xx_xxxx; a boundary is any other byte (or the end).
    while i > 0 && i < bytes.len() && (bytes[i] & 0xC0) == 0x80 {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(text: &str) -> Vec<&str> {
        Segments { rest: text }.collect()
    }

    #[test]
    fn short_text_is_one_segment() {
        assert_eq!(segments("hello world"), vec!["hello world"]);
        assert!(segments("").is_empty());
    }

    #[test]
    fn segments_cover_the_text_and_respect_the_limits() {
        let text = format!(
            "{}{}{}{}",
            "word ".repeat(700),
            " ".repeat(1000),
            "漢字".repeat(600),
            "\n\n\t  x".repeat(300)
        );
        let parts = segments(&text);
        assert_eq!(parts.concat(), text);
        for p in &parts {
            assert!(p.len() <= MAX_SEGMENT, "{}", p.len());
            let longest_run = p
                .as_bytes()
                .split(|b| !is_space(*b))
                .map(<[u8]>::len)
                .max()
                .unwrap_or(0);
            assert!(longest_run <= MAX_SPACE_RUN);
        }
    }

    #[test]
    fn prose_is_cut_before_a_space() {
        let text = "alpha beta ".repeat(200);
        let parts = segments(&text);
        assert!(parts.len() > 1);
        for p in &parts[1..] {
            assert!(p.starts_with(' '), "{p:?}");
        }
    }

    #[test]
    fn segmenting_keeps_counts_exact_on_prose_and_code() {
        let text = include_str!("mod.rs").repeat(3);
        for which in [Table::O200k, Table::Cl100k] {
            let Some(bpe) = table(which) else {
                panic!("table failed to build")
            };
            let whole = bpe.encode_ordinary(&text).len() as u64;
            assert_eq!(count(which, &text), whole, "{which:?}");
        }
    }

    #[test]
    fn pathological_inputs_do_not_panic() {
        // Each of these makes fancy-regex give up (`StackOverflow`) when encoded whole, which
        // tiktoken-rs turns into a panic: a million spaces and a letter (found here), a million
        // `^` (openai/tiktoken#15) and a million `A` (zurawiki/tiktoken-rs#117).
        let cases = [
            (Table::O200k, " ".repeat(1_000_000) + "a"),
            (Table::Cl100k, " \t\n".repeat(300_000) + "a"),
            (Table::Cl100k, "^".repeat(1_000_000)),
            (Table::O200k, "A".repeat(1_000_000)),
        ];
        for (table, text) in &cases {
            assert!(count(*table, text) > 0);
        }
    }
}
