//! The compiled guard and its scan: normalise, one pass over the bytes for PII and secrets,
//! one automaton pass for injection anchors and keywords, the user regexes, then the decoded
//! segments; findings mapped back to the original text.

use std::ops::Range;

use super::addresses::{self, EMAIL_MAX, IBAN_MAX, IPV6_MAX};
use super::decode::{self, Encoding};
use super::injection::{self, SignalHit, Signals, SIGNALS};
use super::lists::{Target, UserRegexes, Words};
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
    injection: Option<(f32, Signals)>,
    words: Option<Words>,
    regexes: Option<UserRegexes>,
    decode: bool,
    max_len: usize,
}

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

/// Trigger classes of the byte pass.
const T_DIGIT: u8 = 1;
const T_AT: u8 = 2;
const T_COLON: u8 = 3;
const T_PLUS: u8 = 4;
const T_PAREN: u8 = 5;
const T_DASH: u8 = 6;
const T_UPPER_A: u8 = 7;

const fn triggers() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut c = b'0';
    while c <= b'9' {
        t[c as usize] = T_DIGIT;
        c += 1;
    }
    t[b'@' as usize] = T_AT;
    t[b':' as usize] = T_COLON;
    t[b'+' as usize] = T_PLUS;
    t[b'(' as usize] = T_PAREN;
    t[b'-' as usize] = T_DASH;
    t[b'A' as usize] = T_UPPER_A;
    t
}
static TRIGGER: [u8; 256] = triggers();

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
            Some(t) if !(0.0..=1.0).contains(&t) || t.is_nan() => return Err(GuardError::Threshold(t)),
            Some(t) => Some((t, Signals::compile())),
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
            self.wants(PiiKind::Phone) || self.wants(PiiKind::CreditCard) || self.wants(PiiKind::UsSsn),
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
            findings.push(Finding { detector: h.detector, span, via });
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
                    findings.push(Finding { detector: h.detector, span: span.clone(), via });
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
            (a.span.start, a.span.end, &a.detector, a.via).cmp(&(b.span.start, b.span.end, &b.detector, b.via))
        });
        findings.dedup_by(|b, a| a.detector == b.detector && a.span == b.span);
        Scan { findings, injection_score }
    }

    fn injection_score(&self, norm: &Normalised<'_>, signals: &[(SignalHit, Range<usize>, Via)]) -> f32 {
        let mut values: Vec<(usize, f32)> = signals.iter().map(|(s, _, _)| (s.signal, s.value)).collect();
        let hidden = signals
            .iter()
            .any(|(s, _, via)| *via != Via::Plain && SIGNALS[s.signal].weight >= 0.4 && s.value >= 0.4);
        if hidden {
            values.push((injection::OBFUSCATED_ID, injection::OBFUSCATED.1));
        }
        if injection::repeated_run(&norm.text).is_some() {
            values.push((injection::REPEATED_ID, injection::REPEATED_TOKENS.1));
        }
        if norm.tag_chars >= injection::INVISIBLE_TAGS.2 {
            values.push((injection::TAGS_ID, injection::INVISIBLE_TAGS.1));
        }
        injection::combine(values)
    }

    /// Detect in `text` (already normalised). `decode` collects encoded segments to decode.
    fn detect(&self, text: &str, raw: &mut Raw, decode: bool) {
        self.byte_pass(text, &mut raw.hits);
        if let Some(words) = &self.words {
            let signals = self.injection.as_ref().map(|(_, s)| s);
            words.find(text, |w| match w.target {
                Target::Signal(id) => {
                    if let Some(h) = signals.and_then(|s| s.check(text, w.span, id)) {
                        raw.signals.push(h);
                    }
                }
                Target::Keyword(list) => raw.hits.push(Hit {
                    detector: Detector::Keyword(words.keyword_names[list].clone()),
                    span: w.span,
                }),
            });
        }
        if let Some(re) = &self.regexes {
            re.find(text, |list, span| {
                raw.hits.push(Hit { detector: Detector::Regex(re.names[list].clone()), span });
            });
        }
        if decode {
            decode::segments(text, &mut raw.segments);
        }
    }

    /// PII and secrets in one pass: most bytes are one table lookup; digits, `@`, `:`, `+`,
    /// `(`, `-` and `A` hand over to the detector they can start.
    fn byte_pass(&self, text: &str, hits: &mut Vec<Hit>) {
        let numbers_on = self.wants(PiiKind::Phone)
            || self.wants(PiiKind::CreditCard)
            || self.wants(PiiKind::UsSsn)
            || self.wants(PiiKind::IpAddress);
        let b = text.as_bytes();
        let mut push = |d: Detector, span: Range<usize>| hits.push(Hit { detector: d, span });
        let mut ipv6_done = 0;
        let mut i = 0;
        while i < b.len() {
            let t = TRIGGER[b[i] as usize];
            if t == 0 {
                i += 1;
                continue;
            }
            match t {
                T_DIGIT => {
                    i = self.at_digit(b, i, numbers_on, &mut push);
                }
                T_AT if self.wants(PiiKind::Email) => match addresses::email(b, i) {
                    Some(r) => {
                        i = r.end;
                        push(Detector::Pii(PiiKind::Email), r);
                    }
                    None => i += 1,
                },
                T_COLON if self.wants(PiiKind::IpAddress) && i >= ipv6_done => {
                    let (found, end) = addresses::ipv6(b, i);
                    ipv6_done = end;
                    if let Some(r) = found {
                        push(Detector::Pii(PiiKind::IpAddress), r);
                    }
                    i += 1;
                }
                T_PLUS | T_PAREN if numbers_on => {
                    let starts = b.get(i + 1).is_some_and(u8::is_ascii_digit) && (i == 0 || !is_word(b[i - 1]));
                    i = match starts.then(|| numbers::read_token(b, i)) {
                        Some(Read::Token(tok)) => match numbers::classify(b, &tok, |k| self.wants(k)) {
                            Some((k, r)) => {
                                let end = r.end;
                                push(Detector::Pii(k), r);
                                end
                            }
                            None => i + 1,
                        },
                        Some(Read::TooLong(end)) => end,
                        _ => i + 1,
                    };
                }
                T_DASH => {
                    if self.api_key {
                        if let Some(r) = secrets::api_key(b, i) {
                            i = r.end;
                            push(Detector::Secret(SecretKind::ApiKey), r);
                            continue;
                        }
                    }
                    if self.pem && b.get(i + 1) == Some(&b'-') {
                        if let Some(r) = secrets::private_key(b, i) {
                            i = r.end;
                            push(Detector::Secret(SecretKind::PrivateKey), r);
                            continue;
                        }
                    }
                    i += 1;
                }
                T_UPPER_A if self.aws => match secrets::aws_access_key(b, i) {
                    Some(r) => {
                        i = r.end;
                        push(Detector::Secret(SecretKind::AwsAccessKey), r);
                    }
                    None => i += 1,
                },
                _ => i += 1,
            }
        }
    }

    /// A digit at `i`: an IBAN's check digits after its country code, or the start of a
    /// number token. Returns where the pass goes on.
    fn at_digit(&self, b: &[u8], i: usize, numbers_on: bool, push: &mut impl FnMut(Detector, Range<usize>)) -> usize {
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
            if matches!(p, b'.' | b'-' | b'/' | b',') && i >= 2 && b[i - 2].is_ascii_alphanumeric() {
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
        match numbers::read_token(b, i) {
            Read::Token(tok) => match numbers::classify(b, &tok, |k| self.wants(k)) {
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
fn injection_finding(signals: &[(SignalHit, Range<usize>, Via)], text: &str, norm: &Normalised<'_>) -> Finding {
    let strongest = signals
        .iter()
        .max_by(|a, b| a.0.value.total_cmp(&b.0.value));
    let span = signals
        .iter()
        .map(|(_, r, _)| r.clone())
        .reduce(|a, b| a.start.min(b.start)..a.end.max(b.end));
    match (strongest, span) {
        (Some((_, _, via)), Some(span)) => Finding { detector: Detector::Injection, span, via: *via },
        // Only whole-text signals (repeated tokens, tag characters): the whole text.
        _ => {
            let via = if norm.is_identity() { Via::Plain } else { Via::Normalised };
            Finding { detector: Detector::Injection, span: 0..text.len(), via }
        }
    }
}

#[cfg(test)]
mod phase_timing {
    use super::*;
    use std::time::Instant;

    #[test]
    #[ignore]
    fn phases() {
        let unit = "The quarterly report shows revenue grew by 12.5% compared to 2023, mostly from the new subscription tier. Could you show me how to parse a JSON document in Rust using serde and handle errors properly? The model should ignore whitespace differences when comparing the two outputs. Our meeting is at 10:30 on Tuesday; please bring the slides. ";
        let text = unit.repeat(2 * 1024 * 1024 / unit.len());
        let spec = GuardSpec { pii: PiiKind::ALL.to_vec(), secrets: SecretKind::ALL.to_vec(), injection_threshold: Some(0.5), decode: true, ..Default::default() };
        let e = Engine::compile(&spec).unwrap();
        let mb = text.len() as f64 / 1e6;
        let time = |name: &str, f: &dyn Fn()| {
            f();
            let t = Instant::now();
            for _ in 0..5 { f(); }
            let s = t.elapsed().as_secs_f64() / 5.0;
            println!("{name:>14}: {:8.2} ms  {:8.1} MB/s", s * 1e3, mb / s);
        };
        time("memchr-miss", &|| { std::hint::black_box(memchr::memchr(0xff, text.as_bytes())); });
        time("is_ascii", &|| { std::hint::black_box(text.is_ascii()); });
        time("is_plain", &|| { std::hint::black_box(super::super::normalize::is_plain(&text)); });
        time("byte_pass", &|| { let mut h = Vec::new(); e.byte_pass(&text, &mut h); std::hint::black_box(h); });
        time("words", &|| { let mut n = 0; e.words.as_ref().unwrap().find(&text, |_| n += 1); std::hint::black_box(n); });
        time("words+checks", &|| { let mut raw = Raw::default(); let w = e.words.as_ref().unwrap(); let s = &e.injection.as_ref().unwrap().1; w.find(&text, |h| if let Target::Signal(id) = h.target { if let Some(x) = s.check(&text, h.span, id) { raw.signals.push(x) } }); std::hint::black_box(raw.signals.len()); });
        time("segments", &|| { let mut v = Vec::new(); decode::segments(&text, &mut v); std::hint::black_box(v); });
        time("repeated", &|| { std::hint::black_box(injection::repeated_run(&text)); });
        {
            use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
            let pats: Vec<String> = SIGNALS.iter().flat_map(|s| s.anchors.iter().map(|a| a.to_string())).collect();
            for (name, kind, mk) in [("ac-ll-dfa", AhoCorasickKind::DFA, MatchKind::LeftmostLongest), ("ac-std-dfa", AhoCorasickKind::DFA, MatchKind::Standard), ("ac-ll-cnfa", AhoCorasickKind::ContiguousNFA, MatchKind::LeftmostLongest)] {
                let ac = AhoCorasick::builder().ascii_case_insensitive(true).match_kind(mk).kind(Some(kind)).build(&pats).unwrap();
                time(name, &|| { std::hint::black_box(ac.find_iter(&*text).count()); });
            }
            let alt = pats.iter().map(|p| regex::escape(p)).collect::<Vec<_>>().join("|");
            let re = regex::RegexBuilder::new(&alt).case_insensitive(true).unicode(false).build().unwrap();
            time("regex-alt", &|| { std::hint::black_box(re.find_iter(&text).count()); });
            println!("matches: {}", re.find_iter(&text).count());
        }
        time("scan", &|| { std::hint::black_box(e.scan(&text)); });
    }
}
