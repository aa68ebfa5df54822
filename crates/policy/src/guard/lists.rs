//! The word table (injection anchors and user keywords, looked up at each word start of the
//! one pass over the text) and the user regex lists (one `RegexSet` pass, then only the
//! patterns that matched are searched for their spans).
//!
//! The word table is keyed by the first four bytes of a word, ASCII case folded (or of a
//! `<`, `[` or `#` marker): a word start costs one hash probe, and only a key hit compares
//! whole patterns. Keywords that start with other punctuation, or markers shorter than four
//! bytes, go to a small Aho-Corasick automaton of their own.

use std::ops::Range;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::{Regex, RegexSet};

use super::injection::SIGNALS;
use super::masks::is_word_byte;
use super::normalize::Normalised;
use super::{GuardError, NamedPatterns};

/// What a pattern stands for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// An anchor of injection signal `n`.
    Signal(usize),
    /// An entry of keyword list `n`.
    Keyword(usize),
}

struct Pattern {
    bytes: Box<[u8]>,
    /// Everything the pattern stands for (a keyword can also be an anchor).
    targets: Vec<Target>,
}

pub(crate) struct Words {
    patterns: Vec<Pattern>,
    /// A bit per folded first-two-letters pair that starts some key: most words miss here,
    /// on a table that always sits in L1, before any probe.
    pairs: [u64; 16],
    /// Open addressing: key (0 = empty) and its bucket of pattern ids.
    slots: Box<[u32]>,
    slot_bucket: Box<[u32]>,
    buckets: Vec<Vec<u32>>,
    /// Patterns the key scheme cannot hold, with their pattern ids.
    odd: Option<(AhoCorasick, Vec<u32>)>,
    /// Words shorter than this (1..=4 bytes) cannot start any pattern: no probe for them.
    pub min_word_len: u32,
    pub keyword_names: Vec<Arc<str>>,
    /// Longest keyword, in bytes of normalised text.
    pub longest_keyword: usize,
}

/// One match, already checked for word boundaries.
pub(crate) struct WordHit {
    pub target: Target,
    pub span: Range<usize>,
}

#[inline]
fn fold(b: u8) -> u8 {
    b | 0x20
}

/// Whether a marker byte starts a raw key (patterns such as `<|im_start|>`, `[inst]`, `### system`).
#[inline]
pub(crate) fn is_marker(b: u8) -> bool {
    matches!(b, b'<' | b'[' | b'#')
}

/// The key of a word starting at `i`: up to four word bytes, folded, zero-padded.
#[inline]
pub(crate) fn word_key(b: &[u8], i: usize) -> u32 {
    let mut k = [0u8; 4];
    for (j, slot) in k.iter_mut().enumerate() {
        match b.get(i + j) {
            Some(&c) if is_word_byte(c) => *slot = fold(c),
            _ => break,
        }
    }
    u32::from_le_bytes(k)
}

/// The key of a marker at `i`: four bytes, folded (0 when fewer remain).
#[inline]
pub(crate) fn marker_key(b: &[u8], i: usize) -> u32 {
    match b.get(i..i + 4) {
        Some(k) => u32::from_le_bytes([fold(k[0]), fold(k[1]), fold(k[2]), fold(k[3])]),
        None => 0,
    }
}

#[inline]
fn pair_of(key: u32) -> usize {
    ((key & 31) << 5 | (key >> 8 & 31)) as usize
}

#[inline]
fn slot_of(key: u32, mask: usize) -> usize {
    (key.wrapping_mul(0x9E37_79B1) >> 7) as usize & mask
}

impl Words {
    /// `None` when there is nothing to look for.
    pub fn compile(
        injection: bool,
        keywords: &[NamedPatterns],
    ) -> Result<Option<Words>, GuardError> {
        let mut patterns: Vec<Pattern> = Vec::new();
        let mut add =
            |p: String, t: Target| match patterns.iter().position(|q| *q.bytes == *p.as_bytes()) {
                Some(k) => patterns[k].targets.push(t),
                None => patterns.push(Pattern {
                    bytes: p.into_bytes().into_boxed_slice(),
                    targets: vec![t],
                }),
            };
        if injection {
            for (id, s) in SIGNALS.iter().enumerate() {
                for a in s.anchors {
                    add(a.to_ascii_lowercase(), Target::Signal(id));
                }
            }
        }
        let mut longest_keyword = 0;
        for (list, kw) in keywords.iter().enumerate() {
            for (index, p) in kw.patterns.iter().enumerate() {
                // Keywords go through the same folding as the text they are matched against.
                let folded = Normalised::new(p).text.trim().to_ascii_lowercase();
                if folded.is_empty() {
                    return Err(GuardError::EmptyKeyword {
                        list: kw.name.clone(),
                        index,
                    });
                }
                longest_keyword = longest_keyword.max(folded.len());
                add(folded, Target::Keyword(list));
            }
        }
        if patterns.is_empty() {
            return Ok(None);
        }
        let keyed: Vec<Option<u32>> = patterns
            .iter()
            .map(|p| {
                let b = &p.bytes;
                if is_word_byte(b[0]) {
                    Some(word_key(b, 0))
                } else if is_marker(b[0]) && b.len() >= 4 {
                    Some(marker_key(b, 0))
                } else {
                    None
                }
            })
            .collect();
        let min_word_len = patterns
            .iter()
            .filter(|p| is_word_byte(p.bytes[0]))
            .map(|p| {
                p.bytes
                    .iter()
                    .take(4)
                    .take_while(|&&c| is_word_byte(c))
                    .count() as u32
            })
            .min()
            .unwrap_or(4);
        let size = (keyed.len() * 4).next_power_of_two().max(64);
        let mut slots = vec![0u32; size].into_boxed_slice();
        let mut slot_bucket = vec![0u32; size].into_boxed_slice();
        let mut buckets: Vec<Vec<u32>> = Vec::new();
        let mut odd_ids = Vec::new();
        let mut pairs = [0u64; 16];
        for (id, key) in keyed.iter().enumerate() {
            let Some(key) = *key else {
                odd_ids.push(id as u32);
                continue;
            };
            let pair = pair_of(key);
            pairs[pair / 64] |= 1 << (pair % 64);
            let mut s = slot_of(key, size - 1);
            loop {
                if slots[s] == key {
                    buckets[slot_bucket[s] as usize].push(id as u32);
                    break;
                }
                if slots[s] == 0 {
                    slots[s] = key;
                    slot_bucket[s] = buckets.len() as u32;
                    buckets.push(vec![id as u32]);
                    break;
                }
                s = (s + 1) & (size - 1);
            }
        }
        let odd = if odd_ids.is_empty() {
            None
        } else {
            let ac = AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(odd_ids.iter().map(|&id| &*patterns[id as usize].bytes))
                .map_err(|e| GuardError::Keywords(e.to_string()))?;
            Some((ac, odd_ids))
        };
        Ok(Some(Words {
            patterns,
            pairs,
            slots,
            slot_bucket,
            buckets,
            odd,
            min_word_len,
            keyword_names: keywords
                .iter()
                .map(|k| Arc::from(k.name.as_str()))
                .collect(),
            longest_keyword,
        }))
    }

    /// Patterns whose key is `key`, compared at `i`; hits reported through `each`.
    #[inline]
    pub fn at(&self, text: &str, i: usize, key: u32, each: &mut impl FnMut(WordHit)) {
        let pair = pair_of(key);
        if self.pairs[pair / 64] & (1 << (pair % 64)) == 0 {
            return;
        }
        let mask = self.slots.len() - 1;
        let mut s = slot_of(key, mask);
        loop {
            let k = self.slots[s];
            if k == key {
                break;
            }
            if k == 0 {
                return;
            }
            s = (s + 1) & mask;
        }
        let b = text.as_bytes();
        for &id in &self.buckets[self.slot_bucket[s] as usize] {
            let p = &self.patterns[id as usize];
            let end = i + p.bytes.len();
            if end <= b.len() && b[i..end].eq_ignore_ascii_case(&p.bytes) {
                self.report(text, i..end, p, each);
            }
        }
    }

    fn report(&self, text: &str, span: Range<usize>, p: &Pattern, each: &mut impl FnMut(WordHit)) {
        let mut ends_word = None;
        for &target in &p.targets {
            if let Target::Keyword(_) = target {
                let ends = *ends_word.get_or_insert_with(|| {
                    !word_char_at_start(&text[span.end..]) || !word_char_at_end(&text[span.clone()])
                });
                if !ends {
                    continue;
                }
            }
            each(WordHit {
                target,
                span: span.clone(),
            });
        }
    }

    /// Matches of the patterns outside the key scheme (a separate pass; only when configured).
    pub fn find_odd(&self, text: &str, each: &mut impl FnMut(WordHit)) {
        let Some((ac, ids)) = &self.odd else { return };
        for m in ac.find_overlapping_iter(text) {
            let span = m.start()..m.end();
            let starts_word =
                !word_char_at_end(&text[..span.start]) || !word_char_at_start(&text[span.clone()]);
            if starts_word && text.is_char_boundary(span.start) && text.is_char_boundary(span.end) {
                let p = &self.patterns[ids[m.pattern().as_usize()] as usize];
                self.report(text, span, p, each);
            }
        }
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn word_char_at_end(s: &str) -> bool {
    s.chars().next_back().is_some_and(is_word)
}

fn word_char_at_start(s: &str) -> bool {
    s.chars().next().is_some_and(is_word)
}

/// Most bytes a regex with no upper bound (`\d+`) is assumed to match, for hold-back sizing.
pub(crate) const UNBOUNDED_REGEX_LEN: usize = 256;

pub(crate) struct UserRegexes {
    set: RegexSet,
    /// Per pattern in `set`: the regex and its list.
    each: Vec<(Regex, usize)>,
    pub names: Vec<Arc<str>>,
    pub longest: usize,
}

impl UserRegexes {
    pub fn compile(lists: &[NamedPatterns]) -> Result<Option<UserRegexes>, GuardError> {
        let mut each = Vec::new();
        let mut sources = Vec::new();
        let mut longest = 0;
        for (list, l) in lists.iter().enumerate() {
            for (index, p) in l.patterns.iter().enumerate() {
                let err = |e: regex::Error| GuardError::Regex {
                    list: l.name.clone(),
                    index,
                    source: Box::new(e),
                };
                let re = Regex::new(p).map_err(err)?;
                let max = regex_syntax::Parser::new()
                    .parse(p)
                    .ok()
                    .and_then(|h| h.properties().maximum_len())
                    .unwrap_or(UNBOUNDED_REGEX_LEN);
                longest = longest.max(max.min(UNBOUNDED_REGEX_LEN));
                each.push((re, list));
                sources.push(p.as_str());
            }
        }
        if each.is_empty() {
            return Ok(None);
        }
        let set = RegexSet::new(&sources).map_err(|e| GuardError::Regex {
            list: "(all lists together)".to_owned(),
            index: 0,
            source: Box::new(e),
        })?;
        Ok(Some(UserRegexes {
            set,
            each,
            names: lists.iter().map(|l| Arc::from(l.name.as_str())).collect(),
            longest,
        }))
    }

    /// Non-empty matches of every pattern, as (list, span).
    pub fn find(&self, text: &str, mut each: impl FnMut(usize, Range<usize>)) {
        let matched = self.set.matches(text);
        if !matched.matched_any() {
            return;
        }
        for k in matched.iter() {
            let (re, list) = &self.each[k];
            for m in re.find_iter(text) {
                if !m.is_empty() {
                    each(*list, m.range());
                }
            }
        }
    }
}
