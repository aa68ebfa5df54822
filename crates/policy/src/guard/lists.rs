//! The word automaton (injection anchors and user keywords in one Aho-Corasick pass) and the
//! user regex lists (one `RegexSet` pass, then only the lists that matched are searched for
//! their spans).

use std::ops::Range;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::{Regex, RegexSet};

use super::injection::SIGNALS;
use super::normalize::Normalised;
use super::{GuardError, NamedPatterns};

/// What an automaton pattern stands for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// An anchor of injection signal `n`.
    Signal(usize),
    /// An entry of keyword list `n`.
    Keyword(usize),
}

pub(crate) struct Words {
    ac: AhoCorasick,
    /// Per pattern id, everything it stands for (a keyword can also be an anchor).
    targets: Vec<Vec<Target>>,
    pub keyword_names: Vec<Arc<str>>,
    /// Longest keyword, in bytes of normalised text.
    pub longest_keyword: usize,
}

/// One automaton match, already checked for word boundaries.
pub(crate) struct WordHit {
    pub target: Target,
    pub span: Range<usize>,
}

impl Words {
    /// `None` when there is nothing to look for.
    pub fn compile(injection: bool, keywords: &[NamedPatterns]) -> Result<Option<Words>, GuardError> {
        let mut patterns: Vec<String> = Vec::new();
        let mut targets: Vec<Vec<Target>> = Vec::new();
        let mut add = |p: String, t: Target| match patterns.iter().position(|q| *q == p) {
            Some(k) => targets[k].push(t),
            None => {
                patterns.push(p);
                targets.push(vec![t]);
            }
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
                    return Err(GuardError::EmptyKeyword { list: kw.name.clone(), index });
                }
                longest_keyword = longest_keyword.max(folded.len());
                add(folded, Target::Keyword(list));
            }
        }
        if patterns.is_empty() {
            return Ok(None);
        }
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&patterns)
            .or_else(|_| {
                // A DFA for a very large keyword list can exceed the size limit; the NFA
                // is slower but has no such limit.
                AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .build(&patterns)
            })
            .map_err(|e| GuardError::Keywords(e.to_string()))?;
        Ok(Some(Words {
            ac,
            targets,
            keyword_names: keywords.iter().map(|k| Arc::from(k.name.as_str())).collect(),
            longest_keyword,
        }))
    }

    /// Every anchor that starts a word and every keyword that is a whole word, in `text`.
    pub fn find(&self, text: &str, mut each: impl FnMut(WordHit)) {
        for m in self.ac.find_overlapping_iter(text) {
            let span = m.start()..m.end();
            let starts_word = !word_char_at_end(&text[..span.start]) || !word_char_at_start(&text[span.clone()]);
            if !starts_word {
                continue;
            }
            let mut ends_word = None;
            for &target in &self.targets[m.pattern().as_usize()] {
                if let Target::Keyword(_) = target {
                    let ends = *ends_word.get_or_insert_with(|| {
                        !word_char_at_start(&text[span.end..]) || !word_char_at_end(&text[span.clone()])
                    });
                    if !ends {
                        continue;
                    }
                }
                each(WordHit { target, span: span.clone() });
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
                let err = |e: regex::Error| GuardError::Regex { list: l.name.clone(), index, source: Box::new(e) };
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
