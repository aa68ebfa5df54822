//! Arbitrary bytes into the SSE parser in arbitrary chunkings. Checks that nothing panics and
//! that the events (and errors) do not depend on how the bytes were cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_llm::sse::{Event, Parser, SseError};

/// Every event the parser gives for `bytes` pushed in the given cuts.
fn parse(bytes: &[u8], cuts: &[usize]) -> (Vec<Event>, Option<SseError>, bool) {
    let mut p = Parser::new();
    let mut events = Vec::new();
    let mut at = 0;
    let mut pieces = cuts.iter().copied().chain(std::iter::once(bytes.len()));
    while at < bytes.len() {
        let end = pieces
            .next()
            .unwrap_or(bytes.len())
            .clamp(at + 1, bytes.len());
        p.push(&bytes[at..end]);
        loop {
            match p.next_event() {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => break,
                Err(e) => return (events, Some(e), true),
            }
        }
        at = end;
    }
    let partial = p.has_partial();
    (events, None, partial)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    // The first bytes choose the cut points; the rest is the stream.
    let n_cuts = usize::from(data[0] % 8);
    let (head, bytes) = data[1..].split_at(n_cuts.min(data.len() - 1));
    let mut cuts: Vec<usize> = Vec::new();
    let mut acc = 0;
    for &c in head {
        acc += usize::from(c) + 1;
        cuts.push(acc);
    }
    let whole = parse(bytes, &[]);
    let cut = parse(bytes, &cuts);
    let bytewise: Vec<usize> = (1..bytes.len()).collect();
    let single = parse(bytes, &bytewise);
    assert_eq!(whole.0, cut.0, "events depend on the chunking");
    assert_eq!(
        whole.0, single.0,
        "events depend on the chunking (byte by byte)"
    );
    assert_eq!(whole.1, cut.1);
    assert_eq!(whole.2, single.2, "partial state depends on the chunking");
});
