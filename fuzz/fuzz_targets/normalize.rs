//! Arbitrary UTF-8 through the guard: normalisation, every detector, decoding and redaction.
//! Checks that each finding's span is a non-empty range on character boundaries of the input,
//! that redaction never panics and leaves no masked byte behind, and that a streamed `Window`
//! (Redact) over the same text in arbitrary chunks releases every event exactly once.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use sluice_policy::guard::{
    redact, Guard, GuardSpec, NamedPatterns, PiiKind, SecretKind, Window, WindowAction,
};

static GUARD: LazyLock<Arc<Guard>> = LazyLock::new(|| {
    let spec = GuardSpec {
        pii: PiiKind::ALL.to_vec(),
        secrets: SecretKind::ALL.to_vec(),
        injection_threshold: Some(0.5),
        regex: vec![NamedPatterns {
            name: "ticket".into(),
            patterns: vec![r"TICKET-\d{4,8}".into()],
        }],
        keywords: vec![NamedPatterns {
            name: "codename".into(),
            patterns: vec!["bluebird".into(), "пароль".into()],
        }],
        decode: true,
    };
    Arc::new(Guard::compile(&spec).expect("the fuzz spec compiles"))
});

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    // The first byte picks the chunk size for the streamed half.
    let chunk = usize::from(data[0] % 17) + 1;
    let Ok(text) = std::str::from_utf8(&data[1..]) else {
        return;
    };
    let scan = GUARD.scan(text);
    assert!((0.0..=1.0).contains(&scan.injection_score));
    for f in &scan.findings {
        assert!(f.span.start < f.span.end, "empty span {f:?}");
        assert!(f.span.end <= text.len(), "span past the end {f:?}");
        assert!(
            text.is_char_boundary(f.span.start) && text.is_char_boundary(f.span.end),
            "{f:?}"
        );
    }
    let _ = redact(text, &scan.findings);

    let mut w = Window::new(GUARD.clone(), WindowAction::Redact, 0);
    let mut released = 0;
    let mut pushed = 0;
    let mut at = 0;
    while at < text.len() {
        let mut end = (at + chunk).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        let step = w.push(pushed, &text[at..end]);
        pushed += 1;
        for (tag, _) in &step.release {
            assert_eq!(*tag, released, "events released out of order");
            released += 1;
        }
        at = end;
    }
    let step = w.finish();
    released += step.release.len();
    assert_eq!(
        released, pushed,
        "every event is released once in Redact mode"
    );
});
