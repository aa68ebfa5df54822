//! A stable-toolchain stand-in for the `normalize` fuzz target (fuzz/), run by every
//! `cargo test`: pseudo-random texts built from the fragments detectors care about (digits and
//! separators, `@`, colons, look-alikes, invisible and tag characters, base64 and hex, markers)
//! go through `Guard::scan`, `redact` and a `Window` in every action. Checks: spans are
//! non-empty, in range and on character boundaries; redaction keeps text outside the spans;
//! every streamed event comes out once and in order (Redact, Monitor) or the stream blocks.

use std::sync::Arc;

use sluice_policy::guard::{
    redact, Guard, GuardSpec, NamedPatterns, PiiKind, SecretKind, Window, WindowAction,
};

const FRAGMENTS: &[&str] = &[
    "4111",
    " ",
    "-",
    ".",
    "1111",
    "@",
    "example",
    ".com",
    "jane",
    "+44",
    "(415)",
    "555",
    "0132",
    ":",
    "::",
    "fe80",
    "192",
    "168",
    "078-05-1120",
    "DE89",
    "3704",
    "0044",
    "sk-",
    "proj",
    "Q8f7Hn2LmZ0pXv9TqRsW",
    "AKIA",
    "IOSFODNN7EXAMPLE",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "\n",
    "ignore",
    "all",
    "previous",
    "instructions",
    "іgnоrе",
    "\u{200B}",
    "\u{00AD}",
    "\u{E0069}",
    "ｉ",
    "𝐢",
    "é",
    "e\u{0301}",
    "🙂",
    "aWdub3Jl",
    "IGFsbA==",
    "69676e6f7265",
    "<|im_start|>",
    "### system:",
    "TICKET-",
    "2024",
    "bluebird",
    "你好",
    "ß",
    "\t",
    "0x",
    "9",
    "0",
    "A",
    "=",
    "/",
    "_",
    "'",
    "\"",
    "poem ",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn guard() -> Arc<Guard> {
    Arc::new(
        Guard::compile(&GuardSpec {
            pii: PiiKind::ALL.to_vec(),
            secrets: SecretKind::ALL.to_vec(),
            injection_threshold: Some(0.3),
            regex: vec![NamedPatterns {
                name: "ticket".into(),
                patterns: vec![r"TICKET-\d{4,8}".into()],
            }],
            keywords: vec![NamedPatterns {
                name: "codename".into(),
                patterns: vec!["bluebird".into()],
            }],
            decode: true,
        })
        .unwrap(),
    )
}

#[test]
fn random_texts_keep_the_guard_invariants() {
    let guard = guard();
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for case in 0..4000 {
        let n = rng.below(40);
        let text: String = (0..n)
            .map(|_| FRAGMENTS[rng.below(FRAGMENTS.len())])
            .collect();
        let scan = guard.scan(&text);
        assert!((0.0..=1.0).contains(&scan.injection_score));
        for f in &scan.findings {
            assert!(
                f.span.start < f.span.end && f.span.end <= text.len(),
                "case {case}: {f:?} in {text:?}"
            );
            assert!(
                text.is_char_boundary(f.span.start) && text.is_char_boundary(f.span.end),
                "case {case}"
            );
        }
        let masked = redact(&text, &scan.findings);
        if scan
            .findings
            .iter()
            .all(|f| f.detector.label() == "injection")
        {
            assert_eq!(masked, text);
        } else {
            assert!(masked.contains("[REDACTED:"), "case {case}: {text:?}");
        }

        let chunk = 1 + rng.below(12);
        for action in [
            WindowAction::Block,
            WindowAction::Redact,
            WindowAction::Monitor,
        ] {
            let mut w = Window::new(guard.clone(), action, 0);
            let mut released = Vec::new();
            let mut findings = Vec::new();
            let mut deltas = Vec::new();
            let mut blocked = false;
            let mut pushed = 0;
            let mut at = 0;
            while at < text.len() {
                let mut end = (at + chunk).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                deltas.push(&text[at..end]);
                let step = w.push(pushed, &text[at..end]);
                released.extend(step.release.into_iter().map(|(t, _)| t));
                findings.extend(step.findings);
                blocked |= step.blocked;
                pushed += 1;
                at = end;
            }
            let step = w.finish();
            released.extend(step.release.into_iter().map(|(t, _)| t));
            findings.extend(step.findings);
            blocked |= step.blocked;
            assert!(
                released.windows(2).all(|p| p[0] + 1 == p[1]),
                "case {case} {action:?}: order"
            );
            assert!(released.first().is_none_or(|&t| t == 0));
            if action == WindowAction::Block && blocked {
                // Nothing released reaches into the first match.
                let first = findings
                    .iter()
                    .map(|f| f.span.start)
                    .min()
                    .expect("a block has a finding");
                let out: usize = released.iter().map(|&t| deltas[t].len()).sum();
                assert!(
                    out <= first,
                    "case {case}: released {out} bytes, match at {first} in {text:?}"
                );
            } else {
                assert_eq!(
                    released.len(),
                    pushed,
                    "case {case} {action:?}: every event once"
                );
            }
        }
    }
}
