//! The compiled guard and its scan: normalise, one pass over the bytes for PII and secrets,
//! one automaton pass for injection anchors and keywords, the user regexes, then the decoded
//! segments; findings mapped back to the original text.

use std::ops::Range;
use std::sync::LazyLock;

use super::addresses::{self, EMAIL_MAX, IBAN_MAX, IPV6_MAX};
use super::decode::{self, Encoding};
use super::injection::floor_boundary;
use super::injection::{self, SignalHit, Signals, SIGNALS};
use super::lists::{is_marker, marker_key, word_key, Target, UserRegexes, WordHit, Words};
use super::masks;
use super::normalize::Normalised;
use super::numbers::{self, Read};
use super::secrets::{self, API_KEY_MAX_BODY, PEM_HEADER_MAX};
use super::{Detector, Finding, GuardError, GuardSpec, PiiKind, Scan, SecretKind, Via};

/// Longest phone / card / SSN / IPv4 token: 20 digits and their separators, `+`, parentheses.
const NUMBER_MAX: usize = 48;

pub(crate) struct Engine {
    pii: [bool; 6],
    api_key: bool,
    aws: bool,
    pem: bool,
    /// The threshold and the signal checks, when injection scoring is on.
    injection: Option<(f32, &'static Signals)>,
    words: Option<Words>,
    regexes: Option<UserRegexes>,
    decode: bool,
    max_len: usize,
}

/// The signal regexes are constants: compiled once per process, shared by every guard.
static SIGNAL_CHECKS: LazyLock<Signals> = LazyLock::new(Signals::compile);

/// A detection in normalised-text coordinates.
struct Hit {
    detector: Detector,
    span: Range<usize>,
}

#[derive(Default)]
struct Raw {
    hits: Vec<Hit>,
    signals: Vec<SignalHit>,
    segments: Vec<(Range<usize>, Encoding)>,
}

/// What the pass carries from one block to the next.
#[derive(Default)]
struct PassState {
    /// Bytes before this were consumed by a detector.
    skip_until: usize,
    /// The IPv6 reader has looked at everything before this.
    ipv6_done: usize,
    /// Number tokens are read into this one.
    token: numbers::Token,
    /// Bit 63 of the previous block's word mask (a word running into this block).
    word_carry: u64,
    /// The base64 run continuing into this block started here.
    run_start: Option<usize>,
    /// Key and start of the current run of identical words, and its length.
    last_key: u32,
    repeat_start: usize,
    repeats: usize,
    /// The first flood of repeated words found (normalised text).
    repeated: Option<Range<usize>>,
}

impl PassState {
    /// Count identical words in a row (by their key; confirmed on the text when long enough).
    #[inline]
    fn repeat(&mut self, key: u32, p: usize, text: &str) {
        if key == self.last_key {
            self.repeats += 1;
            if self.repeats + 1 >= injection::REPEAT_RUN && self.repeated.is_none() {
                let end = floor_boundary(text, p + 64);
                let start = floor_boundary(text, self.repeat_start);
                self.repeated = injection::repeated_run(&text[start..end])
                    .map(|r| r.start + start..r.end + start);
            }
        } else {
            self.last_key = key;
            self.repeat_start = p;
            self.repeats = 0;
        }
    }

    /// Base64 runs of at least `decode::MIN_LEN` bytes in a block's mask `m` (block at `base`,
    /// ending at `end`); a run that reaches the block's end carries into the next block.
    fn base64_runs(
        &mut self,
        b: &[u8],
        m: u64,
        base: usize,
        end: usize,
        out: &mut Vec<(Range<usize>, Encoding)>,
    ) {
        let width = end - base;
        let mut from = 0;
        if let Some(s) = self.run_start {
            let ones = (m.trailing_ones() as usize).min(width);
            if ones == 64 {
                return;
            }
            self.run_start = None;
            push_segment(b, s, base + ones, out);
            from = ones;
        }
        let mut r = if from >= 64 { 0 } else { m & (!0u64 << from) };
        // A run reaching bit 63 continues into the next block.
        let top = r.leading_ones() as usize;
        if top > 0 && width == 64 {
            self.run_start = Some(base + 64 - top);
            r &= !(!0u64 << (64 - top));
        }
        // Bits where 16 set bits start.
        let mut x = r;
        x &= x >> 1;
        x &= x >> 2;
        x &= x >> 4;
        x &= x >> 8;
        while x != 0 {
            let s = x.trailing_zeros() as usize;
            let len = (!(r >> s)).trailing_zeros() as usize;
            push_segment(b, base + s, base + s + len, out);
            let clear = if s + len >= 64 {
                !0u64 << s
            } else {
                ((1u64 << len) - 1) << s
            };
            x &= !clear;
        }
    }
}

/// A base64-alphabet run `s..e`: with its padding, classified (hex or base64) and kept when
/// its length fits.
fn push_segment(b: &[u8], s: usize, e: usize, out: &mut Vec<(Range<usize>, Encoding)>) {
    decode::classify_run(b, s, e, out);
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

impl Engine {
    pub fn compile(spec: &GuardSpec) -> Result<Engine, GuardError> {
        let mut pii = [false; 6];
        for k in &spec.pii {
            pii[*k as usize] = true;
        }
        let has = |k: SecretKind| spec.secrets.contains(&k);
        let injection = match spec.injection_threshold {
            Some(t) if !(0.0..=1.0).contains(&t) || t.is_nan() => {
                return Err(GuardError::Threshold(t))
            }
            Some(t) => Some((t, &*SIGNAL_CHECKS)),
            None => None,
        };
        let words = Words::compile(injection.is_some(), &spec.keywords)?;
        let regexes = UserRegexes::compile(&spec.regex)?;
        let mut e = Engine {
            pii,
            api_key: has(SecretKind::ApiKey),
            aws: has(SecretKind::AwsAccessKey),
            pem: has(SecretKind::PrivateKey),
            injection,
            words,
            regexes,
            decode: spec.decode,
            max_len: 0,
        };
        e.max_len = e.compute_max_len();
        Ok(e)
    }

    fn wants(&self, k: PiiKind) -> bool {
        self.pii[k as usize]
    }

    fn compute_max_len(&self) -> usize {
        let mut m = 0;
        let mut at_least = |on: bool, n: usize| {
            if on {
                m = m.max(n);
            }
        };
        at_least(self.wants(PiiKind::Email), EMAIL_MAX);
        at_least(self.wants(PiiKind::Iban), IBAN_MAX);
        at_least(self.wants(PiiKind::IpAddress), IPV6_MAX.max(NUMBER_MAX));
        at_least(
            self.wants(PiiKind::Phone)
                || self.wants(PiiKind::CreditCard)
                || self.wants(PiiKind::UsSsn),
            NUMBER_MAX,
        );
        at_least(self.api_key, 3 + API_KEY_MAX_BODY);
        at_least(self.aws, 20);
        at_least(self.pem, 11 + PEM_HEADER_MAX + 5);
        // An injection finding blocks a stream, so its phrase must be seen whole too.
        at_least(self.injection.is_some(), 200);
        if let Some(w) = &self.words {
            at_least(true, w.longest_keyword);
        }
        if let Some(r) = &self.regexes {
            at_least(true, r.longest);
        }
        at_least(self.decode, decode::MAX_LEN);
        m
    }

    pub fn max_match_len(&self) -> usize {
        self.max_len
    }

    pub fn scan(&self, text: &str) -> Scan {
        let norm = Normalised::new(text);
        let mut raw = Raw::default();
        self.detect(&norm.text, &mut raw, self.decode);

        let mut findings = Vec::with_capacity(raw.hits.len());
        let via_of = |span: &Range<usize>, orig: &Range<usize>| {
            if norm.is_identity() || text.get(orig.clone()) == norm.text.get(span.clone()) {
                Via::Plain
            } else {
                Via::Normalised
            }
        };
        for h in raw.hits {
            let span = norm.to_original(h.span.clone());
            let via = via_of(&h.span, &span);
            findings.push(Finding {
                detector: h.detector,
                span,
                via,
            });
        }
        // Injection signals, with where each was seen.
        let mut signals: Vec<(SignalHit, Range<usize>, Via)> = raw
            .signals
            .into_iter()
            .map(|s| {
                let span = norm.to_original(s.span.clone());
                let via = via_of(&s.span, &span);
                (s, span, via)
            })
            .collect();

        if !raw.segments.is_empty() {
            let mut buf = Vec::new();
            for (seg, enc) in raw.segments {
                let Some(decoded) = decode::decode(&norm.text[seg.clone()], enc, &mut buf) else {
                    continue;
                };
                let inner = Normalised::new(&decoded);
                let mut sub = Raw::default();
                self.detect(&inner.text, &mut sub, false);
                let span = norm.to_original(seg);
                let via = match enc {
                    Encoding::Base64 => Via::Base64,
                    Encoding::Hex => Via::Hex,
                };
                for h in sub.hits {
                    findings.push(Finding {
                        detector: h.detector,
                        span: span.clone(),
                        via,
                    });
                }
                signals.extend(sub.signals.into_iter().map(|s| (s, span.clone(), via)));
            }
        }

        let injection_score = match &self.injection {
            Some((threshold, _)) => {
                let score = self.injection_score(&norm, &signals);
                if score >= *threshold && score > 0.0 {
                    findings.push(injection_finding(&signals, text, &norm));
                }
                score
            }
            None => 0.0,
        };
        findings.sort_by(|a, b| {
            (a.span.start, a.span.end, &a.detector, a.via).cmp(&(
                b.span.start,
                b.span.end,
                &b.detector,
                b.via,
            ))
        });
        findings.dedup_by(|b, a| a.detector == b.detector && a.span == b.span);
        Scan {
            findings,
            injection_score,
        }
    }

    fn injection_score(
        &self,
        norm: &Normalised<'_>,
        signals: &[(SignalHit, Range<usize>, Via)],
    ) -> f32 {
        let mut values: Vec<(usize, f32)> = signals
            .iter()
            .map(|(s, _, _)| (s.signal, s.value))
            .collect();
        let hidden = signals.iter().any(|(s, _, via)| {
            *via != Via::Plain
                && SIGNALS.get(s.signal).is_some_and(|d| d.weight >= 0.4)
                && s.value >= 0.4
        });
        if hidden {
            values.push((injection::OBFUSCATED_ID, injection::OBFUSCATED.1));
        }
        if norm.tag_chars >= injection::INVISIBLE_TAGS.2 {
            values.push((injection::TAGS_ID, injection::INVISIBLE_TAGS.1));
        }
        injection::combine(values)
    }

    /// Detect in `text` (already normalised). `decode` collects encoded segments to decode.
    fn detect(&self, text: &str, raw: &mut Raw, decode: bool) {
        self.pass(text, raw, decode);
        if let Some(words) = &self.words {
            words.find_odd(text, &mut |w| self.word_hit(text, w, raw));
        }
        if let Some(re) = &self.regexes {
            re.find(text, |list, span| {
                raw.hits.push(Hit {
                    detector: Detector::Regex(re.names[list].clone()),
                    span,
                });
            });
        }
    }

    fn word_hit(&self, text: &str, w: WordHit, raw: &mut Raw) {
        match w.target {
            Target::Signal(id) => {
                if let Some(h) = self
                    .injection
                    .as_ref()
                    .and_then(|(_, s)| s.check(text, w.span, id))
                {
                    raw.signals.push(h);
                }
            }
            Target::Keyword(list) => {
                if let Some(words) = &self.words {
                    raw.hits.push(Hit {
                        detector: Detector::Keyword(words.keyword_names[list].clone()),
                        span: w.span,
                    });
                }
            }
        }
    }

    /// The one pass: 64-byte blocks are classified by SIMD compares into bitmasks, and only set
    /// bits are visited: trigger bytes hand over to the detector they can start, word starts
    /// probe the word table, long base64 runs become segments to decode. Prose costs a few
    /// instructions per 16 bytes plus one hash probe per word.
    fn pass(&self, text: &str, raw: &mut Raw, decode: bool) {
        let b = text.as_bytes();
        let words = self.words.as_ref();
        let mut state = PassState::default();
        let mut base = 0;
        while base < b.len() {
            let end = (base + 64).min(b.len());
            let m = masks::masks(&b[base..end]);

            // Detector triggers not already inside something a detector consumed.
            let mut t = m.trigger & bits_from(state.skip_until, base);
            while t != 0 {
                let p = base + t.trailing_zeros() as usize;
                t &= t - 1;
                if p < state.skip_until {
                    continue;
                }
                if is_marker(b[p]) {
                    if let Some(w) = words {
                        w.at(text, p, marker_key(b, p), &mut |h| {
                            self.word_hit(text, h, raw)
                        });
                    }
                    continue;
                }
                state.skip_until =
                    self.trigger(b, p, &mut state.ipv6_done, &mut state.token, &mut raw.hits);
            }

            // Word starts: a word byte after a non-word byte.
            if let Some(w) = words {
                let mut starts = m.word & !((m.word << 1) | state.word_carry);
                while starts != 0 {
                    let p = base + starts.trailing_zeros() as usize;
                    starts &= starts - 1;
                    let bit = p - base;
                    let (len, key) = if bit <= 60 && p + 4 <= b.len() {
                        // The word's length (up to 4) from the mask, its first bytes in one load.
                        let len = (!(m.word >> bit)).trailing_zeros().min(4);
                        let four: [u8; 4] = b[p..p + 4].try_into().unwrap_or_default();
                        let raw = u32::from_le_bytes(four) | 0x2020_2020;
                        (len, raw & KEY_LEN_MASK[len as usize])
                    } else {
                        let key = word_key(b, p);
                        (4 - key.leading_zeros() / 8, key)
                    };
                    if self.injection.is_some() {
                        state.repeat(key, p, text);
                    }
                    // Most words are short ("a", "to", "of"): no pattern can start there.
                    if len < w.min_word_len {
                        continue;
                    }
                    w.at(text, p, key, &mut |h| self.word_hit(text, h, raw));
                }
            }
            state.word_carry = m.word >> 63;

            if decode {
                state.base64_runs(b, m.base64, base, end, &mut raw.segments);
            }
            base = end;
        }
        if decode {
            if let Some(s) = state.run_start.take() {
                push_segment(b, s, b.len(), &mut raw.segments);
            }
        }
        if let Some(span) = state.repeated {
            raw.signals.push(SignalHit {
                signal: injection::REPEATED_ID,
                span,
                value: injection::REPEATED_TOKENS.1,
            });
        }
    }

    /// A trigger byte at `p`. Returns where the pass goes on (past what was consumed).
    fn trigger(
        &self,
        b: &[u8],
        p: usize,
        ipv6_done: &mut usize,
        tok: &mut numbers::Token,
        hits: &mut Vec<Hit>,
    ) -> usize {
        let numbers_on = self.wants(PiiKind::Phone)
            || self.wants(PiiKind::CreditCard)
            || self.wants(PiiKind::UsSsn)
            || self.wants(PiiKind::IpAddress);
        let mut push = |d: Detector, span: Range<usize>| {
            let end = span.end;
            hits.push(Hit { detector: d, span });
            end
        };
        match b[p] {
            b'0'..=b'9' => self.at_digit(b, p, numbers_on, tok, &mut |d, r| {
                push(d, r);
            }),
            b'@' if self.wants(PiiKind::Email) => match addresses::email(b, p) {
                Some(r) => push(Detector::Pii(PiiKind::Email), r),
                None => p + 1,
            },
            b':' if self.wants(PiiKind::IpAddress) && p >= *ipv6_done => {
                let (found, end) = addresses::ipv6(b, p);
                *ipv6_done = end;
                match found {
                    Some(r) => push(Detector::Pii(PiiKind::IpAddress), r),
                    None => p + 1,
                }
            }
            b'+' | b'(' if numbers_on => {
                let starts =
                    b.get(p + 1).is_some_and(u8::is_ascii_digit) && (p == 0 || !is_word(b[p - 1]));
                match starts.then(|| numbers::read_token(b, p, tok)) {
                    Some(Read::Token) => match numbers::classify(b, tok, |k| self.wants(k)) {
                        Some((k, r)) => push(Detector::Pii(k), r),
                        None => p + 1,
                    },
                    Some(Read::TooLong(end)) => end,
                    _ => p + 1,
                }
            }
            b'-' => {
                if self.api_key {
                    if let Some(r) = secrets::api_key(b, p) {
                        return push(Detector::Secret(SecretKind::ApiKey), r);
                    }
                }
                if self.pem && b.get(p + 1) == Some(&b'-') {
                    if let Some(r) = secrets::private_key(b, p) {
                        return push(Detector::Secret(SecretKind::PrivateKey), r);
                    }
                }
                p + 1
            }
            b'A' if self.aws => match secrets::aws_access_key(b, p) {
                Some(r) => push(Detector::Secret(SecretKind::AwsAccessKey), r),
                None => p + 1,
            },
            _ => p + 1,
        }
    }

    /// A digit at `i`: an IBAN's check digits after its country code, or the start of a
    /// number token. Returns where the pass goes on.
    fn at_digit(
        &self,
        b: &[u8],
        i: usize,
        numbers_on: bool,
        tok: &mut numbers::Token,
        push: &mut impl FnMut(Detector, Range<usize>),
    ) -> usize {
        let skip_word = |mut k: usize| {
            while k < b.len() && is_word(b[k]) {
                k += 1;
            }
            k
        };
        if i > 0 {
            let p = b[i - 1];
            if self.wants(PiiKind::Iban)
                && p.is_ascii_uppercase()
                && i >= 2
                && b[i - 2].is_ascii_uppercase()
                && (i == 2 || !is_word(b[i - 3]))
            {
                if let Some(r) = addresses::iban(b, i - 2) {
                    let end = r.end;
                    push(Detector::Pii(PiiKind::Iban), r);
                    return end;
                }
            }
            if is_word(p) {
                return skip_word(i);
            }
            // Inside a dotted version, a date, a path or a thousands-separated amount.
            if matches!(p, b'.' | b'-' | b'/' | b',') && i >= 2 && b[i - 2].is_ascii_alphanumeric()
            {
                let mut k = i;
                while k < b.len() && b[k].is_ascii_digit() {
                    k += 1;
                }
                return k;
            }
        }
        if !numbers_on {
            return skip_word(i);
        }
        // Digits after a space that follows a word of letters and digits (`DE89 3704 …`,
        // `REF7 4111 …`) continue that code: not the start of a number of their own.
        if i >= 2 && b[i - 1] == b' ' && b[i - 2].is_ascii_digit() {
            let mut k = i - 2;
            while k > 0 && b[k - 1].is_ascii_alphanumeric() && i - k < 40 {
                k -= 1;
            }
            if b[k..i - 1].iter().any(u8::is_ascii_alphabetic) {
                let mut e = i;
                while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b' ') {
                    e += 1;
                }
                return e;
            }
        }
        match numbers::read_token(b, i, tok) {
            Read::Token => match numbers::classify(b, tok, |k| self.wants(k)) {
                Some((k, r)) => {
                    let end = r.end;
                    push(Detector::Pii(k), r);
                    end
                }
                None => tok.first_group_end(),
            },
            Read::TooLong(end) => end,
            Read::Nothing => i + 1,
        }
    }
}

/// One injection finding spanning the signals that scored, seen as the strongest one was.
fn injection_finding(
    signals: &[(SignalHit, Range<usize>, Via)],
    text: &str,
    norm: &Normalised<'_>,
) -> Finding {
    let strongest = signals
        .iter()
        .max_by(|a, b| a.0.value.total_cmp(&b.0.value));
    let span = signals
        .iter()
        .map(|(_, r, _)| r.clone())
        .reduce(|a, b| a.start.min(b.start)..a.end.max(b.end));
    match (strongest, span) {
        (Some((_, _, via)), Some(span)) => Finding {
            detector: Detector::Injection,
            span,
            via: *via,
        },
        // Only whole-text signals (repeated tokens, tag characters): the whole text.
        _ => {
            let via = if norm.is_identity() {
                Via::Plain
            } else {
                Via::Normalised
            };
            Finding {
                detector: Detector::Injection,
                span: 0..text.len(),
                via,
            }
        }
    }
}

/// The bytes of a word key kept for a word of 0..=4 bytes (little-endian).
const KEY_LEN_MASK: [u32; 5] = [0, 0xFF, 0xFFFF, 0xFF_FFFF, 0xFFFF_FFFF];

/// The bits of a block at `base` whose byte is at or after `from`.
#[inline]
fn bits_from(from: usize, base: usize) -> u64 {
    match from.saturating_sub(base) {
        0 => !0,
        k if k >= 64 => 0,
        k => !0u64 << k,
    }
}
