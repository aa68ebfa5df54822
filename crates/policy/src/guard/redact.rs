//! Masking findings out of a text.

use std::ops::Range;

use super::{Detector, Finding};

/// `text` with each finding's span replaced by `[REDACTED:<LABEL>]` (`[REDACTED:EMAIL]`,
/// `[REDACTED:API_KEY]`, `[REDACTED:<LIST NAME>]`). Overlapping spans are merged into one mask
/// labelled by the earliest (longest on a tie) finding. Injection findings are not masked: they
/// describe the text as a whole. Spans that are out of range or not on character boundaries
/// are ignored rather than trusted.
pub fn redact(text: &str, findings: &[Finding]) -> String {
    let masks = merged_masks(text, findings);
    let mut out = String::with_capacity(text.len() + masks.len() * 16);
    let mut at = 0;
    for (span, label) in masks {
        out.push_str(&text[at..span.start]);
        push_mask(&mut out, label);
        at = span.end;
    }
    out.push_str(&text[at..]);
    out
}

pub(crate) fn push_mask(out: &mut String, d: &Detector) {
    out.push_str("[REDACTED:");
    out.push_str(&d.mask_label());
    out.push(']');
}

/// The spans to mask, sorted and merged, each with the detector naming it.
pub(crate) fn merged_masks<'f>(
    text: &str,
    findings: &'f [Finding],
) -> Vec<(Range<usize>, &'f Detector)> {
    let mut spans: Vec<(Range<usize>, &Detector)> = findings
        .iter()
        .filter(|f| f.detector != Detector::Injection)
        .filter(|f| {
            f.span.start < f.span.end
                && f.span.end <= text.len()
                && text.is_char_boundary(f.span.start)
                && text.is_char_boundary(f.span.end)
        })
        .map(|f| (f.span.clone(), &f.detector))
        .collect();
    spans.sort_by(|a, b| a.0.start.cmp(&b.0.start).then(b.0.end.cmp(&a.0.end)));
    let mut merged: Vec<(Range<usize>, &Detector)> = Vec::with_capacity(spans.len());
    for (span, d) in spans {
        match merged.last_mut() {
            Some((last, _)) if span.start < last.end => last.end = last.end.max(span.end),
            _ => merged.push((span, d)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::super::{PiiKind, SecretKind, Via};
    use super::*;

    fn f(d: Detector, span: Range<usize>) -> Finding {
        Finding {
            detector: d,
            span,
            via: Via::Plain,
        }
    }

    #[test]
    fn masks_merges_and_skips_injection() {
        let text = "mail a@b.co key sk-x now";
        let out = redact(
            text,
            &[
                f(Detector::Pii(PiiKind::Email), 5..11),
                f(Detector::Pii(PiiKind::Phone), 7..13), // overlaps the email
                f(Detector::Secret(SecretKind::ApiKey), 16..20),
                f(Detector::Injection, 0..24),
            ],
        );
        assert_eq!(out, "mail [REDACTED:EMAIL]ey [REDACTED:API_KEY] now");
    }

    #[test]
    fn ignores_spans_that_do_not_fit() {
        let text = "héllo";
        let out = redact(
            text,
            &[
                f(Detector::Keyword("x".into()), 1..2),
                f(Detector::Keyword("y".into()), 3..99),
            ],
        );
        assert_eq!(out, text);
    }
}
