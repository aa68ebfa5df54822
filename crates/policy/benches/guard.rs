//! Guardrail detection speed.
//!
//! Run with `cargo bench -p sluice-policy --bench guard`. Targets (docs/guardrails.md): PII +
//! secrets + injection scoring over a 2 MiB chat body at >= 200 MB/s on one core, and a
//! ~2 KB chat message well under 10 µs. divan prints the time per scan and, with the byte
//! counters, the throughput in MB/s.

use std::sync::{Arc, LazyLock};

use divan::counter::BytesCount;
use divan::{black_box, Bencher};
use sluice_policy::guard::{Guard, GuardSpec, PiiKind, SecretKind, Window, WindowAction};

fn main() {
    divan::main();
}

fn spec(decode: bool) -> GuardSpec {
    GuardSpec {
        pii: PiiKind::ALL.to_vec(),
        secrets: SecretKind::ALL.to_vec(),
        injection_threshold: Some(0.5),
        decode,
        ..GuardSpec::default()
    }
}

static GUARD: LazyLock<Guard> =
    LazyLock::new(|| Guard::compile(&spec(true)).expect("spec compiles"));
static GUARD_NO_DECODE: LazyLock<Guard> =
    LazyLock::new(|| Guard::compile(&spec(false)).expect("spec compiles"));

/// Sentences of the kind chat bodies hold: questions, explanations, numbers that are not PII
/// (years, prices, versions, times, ids), a little code and markdown.
const SENTENCES: &[&str] = &[
    "Can you help me rewrite this paragraph so it sounds more professional?",
    "The quarterly report shows revenue grew by 12.5% compared to 2023, mostly from the new subscription tier.",
    "Here is the function I am working on, it should return the sum of the even numbers in the list.",
    "```python\ndef total(xs):\n    return sum(x for x in xs if x % 2 == 0)\n```",
    "I upgraded from version 1.4.2 to 2.0.1 and now the build fails with an error about missing symbols.",
    "Our meeting is at 10:30 on Tuesday; please bring the slides and the budget spreadsheet.",
    "Summarise the following article in three bullet points for a non-technical audience.",
    "The order #A-49213 shipped on 2024-03-18 and should arrive within five business days.",
    "Explain the difference between a process and a thread, with an example from a web server.",
    "Please translate this email into German and keep the tone friendly but formal.",
    "We measured a p99 latency of 41 ms at 12000 requests per second on the staging cluster.",
    "What are the main causes of inflation, and how do central banks respond to them?",
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "The recipe needs 250 g of flour, 2 eggs, 120 ml of milk and a pinch of salt.",
    "- item one: check the logs\n- item two: restart the worker\n- item three: page the on-call engineer",
    "In the previous step we configured the database; now we add the migration scripts.",
    "The model should ignore whitespace differences when comparing the two outputs.",
    "Our internal wiki says the deployment window is Friday between 18:00 and 20:00 UTC.",
    "Could you show me how to parse a JSON document in Rust using serde and handle errors properly?",
    "Thanks! That worked. One more question: how do I enable logging for only one module?",
];

/// A few PII items, spread thinly through the body.
const PII: &[&str] = &[
    "You can reach me at jordan.miller@example.com if anything is unclear.",
    "My phone number is (415) 555-0132, call after 5pm.",
    "The card on file is 4111 1111 1111 1111, expiring next year.",
    "Send the refund to DE89 3704 0044 0532 0130 00 please.",
    "The server at 192.168.10.24 stopped answering pings.",
];

/// Deterministic text of about `len` bytes: prose, with one PII sentence per ~16 KiB.
fn body(len: usize) -> String {
    let mut out = String::with_capacity(len + 256);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut since_pii = 0;
    while out.len() < len {
        let r = next();
        if since_pii > 16 * 1024 {
            out.push_str(PII[(r % PII.len() as u64) as usize]);
            since_pii = 0;
        } else {
            let s = SENTENCES[(r % SENTENCES.len() as u64) as usize];
            out.push_str(s);
            since_pii += s.len();
        }
        out.push(if r % 5 == 0 { '\n' } else { ' ' });
    }
    out
}

static BIG: LazyLock<String> = LazyLock::new(|| body(2 * 1024 * 1024));
static SMALL: LazyLock<String> = LazyLock::new(|| body(2 * 1024));

#[divan::bench]
fn scan_2mib(b: Bencher) {
    let text = BIG.as_str();
    assert!(!GUARD.scan(text).is_clean(), "the body holds PII");
    b.counter(BytesCount::of_str(text))
        .bench(|| GUARD.scan(black_box(text)));
}

#[divan::bench]
fn scan_2mib_no_decode(b: Bencher) {
    let text = BIG.as_str();
    b.counter(BytesCount::of_str(text))
        .bench(|| GUARD_NO_DECODE.scan(black_box(text)));
}

#[divan::bench]
fn scan_2kb(b: Bencher) {
    let text = SMALL.as_str();
    b.counter(BytesCount::of_str(text))
        .bench(|| GUARD.scan(black_box(text)));
}

/// A 2 MiB body with non-ASCII text (curly quotes, accents, an emoji per sentence), which
/// takes the normalising path instead of the plain-ASCII fast path.
#[divan::bench]
fn scan_2mib_unicode(b: Bencher) {
    static TEXT: LazyLock<String> = LazyLock::new(|| BIG.replace(". ", "’s café — ok 🙂. "));
    let text = TEXT.as_str();
    b.counter(BytesCount::of_str(text))
        .bench(|| GUARD.scan(black_box(text)));
}

/// A streamed answer of ~8 KiB in 6-byte deltas through a Redact window: the cost per event.
#[divan::bench]
fn window_redact_8kib_stream(b: Bencher) {
    let guard = Arc::new(Guard::compile(&spec(true)).expect("spec compiles"));
    let text = &BIG[..8 * 1024];
    let deltas: Vec<&str> = text
        .as_bytes()
        .chunks(6)
        .map(|c| std::str::from_utf8(c).expect("ASCII"))
        .collect();
    b.counter(BytesCount::of_str(text)).bench(|| {
        let mut w = Window::new(guard.clone(), WindowAction::Redact, 0);
        let mut out = 0;
        for (i, d) in deltas.iter().enumerate() {
            out += w.push(i, d).release.len();
        }
        out + w.finish().release.len()
    });
}
