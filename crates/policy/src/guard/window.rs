//! Guarding a stream of text deltas (the text of SSE events) with bounded look-behind.
//!
//! Events are held until at least `hold_back` bytes of text follow them (or the stream ends),
//! so any match no longer than `hold_back` that starts inside an event is seen whole before
//! any of the event is released. Each push scans only the unreleased text plus `hold_back`
//! bytes of context before it, never the stream so far.
//!
//! Offsets: the stream's text is the concatenation of every pushed delta; `settled` is the
//! offset before which every match has been found and reported. A match that reaches the end
//! of the text seen so far may still grow (an email whose domain is still arriving, a private
//! key whose END line has not come), so it holds `settled` at its start until it stops growing.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use super::injection::floor_boundary;
use super::redact::push_mask;
use super::{Detector, Finding, Guard};

/// Least progress (bytes) that triggers a scan; release waits at most this much longer.
const SCAN_STEP: usize = 32;

/// What a finding does to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowAction {
    /// Stop: nothing containing any part of a match is released.
    Block,
    /// Mask the matched text in the released events.
    Redact,
    /// Release everything at once; report findings (they may lag by the hold-back).
    Monitor,
}

/// What a push or finish gives back.
#[derive(Debug)]
pub struct Step<T> {
    /// Events now released, in order, each with the text to send for it.
    pub release: Vec<(T, String)>,
    /// Findings first seen in this step; spans are offsets in the whole stream's text.
    pub findings: Vec<Finding>,
    /// The stream is blocked (this step or before): nothing more will be released.
    pub blocked: bool,
}

impl<T> Default for Step<T> {
    fn default() -> Self {
        Step {
            release: Vec::new(),
            findings: Vec::new(),
            blocked: false,
        }
    }
}

/// A mask over stream offsets; `labelled` once its label has gone out with an event.
#[derive(Debug)]
struct Mask {
    span: Range<usize>,
    detector: Detector,
    labelled: bool,
}

pub struct Window<T> {
    guard: Arc<Guard>,
    action: WindowAction,
    hold_back: usize,
    /// Stream text from `buf_start` to `total`.
    buf: String,
    buf_start: usize,
    total: usize,
    settled: usize,
    /// Events not yet released, with their text's stream range.
    pending: VecDeque<(T, Range<usize>)>,
    /// Findings already reported whose span may still be met again in a scan.
    reported: Vec<(Detector, Range<usize>)>,
    /// Redact: masks that may still cover unreleased text, merged and sorted.
    masks: Vec<Mask>,
    blocked: bool,
}

impl<T> Window<T> {
    /// `hold_back` is raised to `guard.max_match_len()` when smaller.
    pub fn new(guard: Arc<Guard>, action: WindowAction, hold_back: usize) -> Self {
        let hold_back = hold_back.max(guard.max_match_len()).max(1);
        Window {
            guard,
            action,
            hold_back,
            buf: String::new(),
            buf_start: 0,
            total: 0,
            settled: 0,
            pending: VecDeque::new(),
            reported: Vec::new(),
            masks: Vec::new(),
            blocked: false,
        }
    }

    /// Bytes of stream text held in memory (unreleased text and scan context).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The hold-back in force (bytes).
    pub fn hold_back(&self) -> usize {
        self.hold_back
    }

    /// The next event and its delta text (which may be empty).
    pub fn push(&mut self, tag: T, text: &str) -> Step<T> {
        let mut step = Step {
            blocked: self.blocked,
            ..Step::default()
        };
        if self.blocked {
            return step;
        }
        let start = self.total;
        self.buf.push_str(text);
        self.total += text.len();
        self.pending.push_back((tag, start..self.total));
        if !text.is_empty() {
            self.settle(false, &mut step);
        }
        self.release(&mut step);
        self.trim();
        step
    }

    /// The end of the stream: settle the rest and release everything that is clean.
    pub fn finish(&mut self) -> Step<T> {
        let mut step = Step {
            blocked: self.blocked,
            ..Step::default()
        };
        if self.blocked {
            return step;
        }
        self.settle(true, &mut step);
        self.release(&mut step);
        self.trim();
        step
    }

    /// Scan the window and report what it newly holds; move `settled` forward.
    fn settle(&mut self, finishing: bool, step: &mut Step<T>) {
        let target = if finishing {
            self.total
        } else {
            self.total.saturating_sub(self.hold_back)
        };
        // Scan once at least SCAN_STEP bytes can settle: tiny deltas (a token is ~4 bytes)
        // would otherwise rescan the same window on every push.
        if !finishing && target < self.settled + SCAN_STEP.min(self.hold_back) {
            return;
        }
        // The window: `hold_back` bytes of settled context, then everything after it.
        let from = floor_boundary(
            &self.buf,
            self.settled
                .saturating_sub(self.hold_back)
                .saturating_sub(self.buf_start),
        );
        let offset = self.buf_start + from;
        let scan = self.guard.scan(&self.buf[from..]);
        let mut new_settled = target;
        let mut definitive = Vec::new();
        for f in scan.findings {
            let span = f.span.start + offset..f.span.end + offset;
            // Injection findings describe the text rather than mask it: they never hold it.
            if !finishing && span.end >= self.total && f.detector != Detector::Injection {
                new_settled = new_settled.min(span.start);
                continue;
            }
            definitive.push(Finding { span, ..f });
        }
        let old_settled = self.settled;
        self.settled = self.settled.max(new_settled);
        for f in definitive {
            let known = self
                .reported
                .iter()
                .any(|(d, r)| *d == f.detector && r.start < f.span.end && f.span.start < r.end);
            if known || f.span.end <= old_settled {
                continue;
            }
            self.reported.push((f.detector.clone(), f.span.clone()));
            match self.action {
                WindowAction::Block => self.blocked = true,
                WindowAction::Redact if f.detector != Detector::Injection => self.add_mask(&f),
                _ => {}
            }
            step.findings.push(f);
        }
        step.findings.sort_by_key(|f| f.span.start);
        if self.blocked {
            step.blocked = true;
        }
    }

    fn add_mask(&mut self, f: &Finding) {
        let mut span = f.span.clone();
        let mut detector = f.detector.clone();
        let mut labelled = false;
        // Merge with every mask it overlaps; the earliest keeps its label.
        self.masks.retain(|m| {
            if m.span.start < span.end && span.start < m.span.end {
                if m.span.start <= span.start {
                    detector = m.detector.clone();
                    labelled = m.labelled;
                }
                span = span.start.min(m.span.start)..span.end.max(m.span.end);
                false
            } else {
                true
            }
        });
        let at = self.masks.partition_point(|m| m.span.start < span.start);
        self.masks.insert(
            at,
            Mask {
                span,
                detector,
                labelled,
            },
        );
    }

    /// Release the events that may go, in order.
    fn release(&mut self, step: &mut Step<T>) {
        let limit = match self.action {
            WindowAction::Monitor => usize::MAX,
            _ if self.blocked => {
                // Only what lies wholly before the first match found.
                let first = step
                    .findings
                    .iter()
                    .map(|f| f.span.start)
                    .min()
                    .unwrap_or(0);
                self.settled.min(first)
            }
            _ => self.settled,
        };
        while let Some((_, r)) = self.pending.front() {
            let empty = r.is_empty();
            // Text waits for the limit; an empty event only waits behind held text, except
            // after a block, where nothing past the block point goes.
            let may_go = r.end <= limit || (empty && !self.blocked);
            if !may_go {
                break;
            }
            let Some((tag, r)) = self.pending.pop_front() else {
                break;
            };
            let text = self.render(r);
            step.release.push((tag, text));
        }
        if self.blocked {
            // Nothing after the block point is ever released.
            self.pending.clear();
        }
    }

    /// The text of stream range `r` (inside the buffer), with masks applied.
    fn render(&mut self, r: Range<usize>) -> String {
        let base = self.buf_start;
        if self.action != WindowAction::Redact || self.masks.is_empty() {
            return self.buf[r.start - base..r.end - base].to_owned();
        }
        let mut out = String::with_capacity(r.len());
        let mut at = r.start;
        for m in self.masks.iter_mut() {
            if m.span.end <= at || m.span.start >= r.end {
                continue;
            }
            let s = m.span.start.max(at);
            let e = m.span.end.min(r.end);
            out.push_str(&self.buf[at - base..s - base]);
            if !m.labelled {
                push_mask(&mut out, &m.detector);
                m.labelled = true;
            }
            at = e;
        }
        out.push_str(&self.buf[at - base..r.end - base]);
        self.masks.retain(|m| m.span.end > r.end);
        out
    }

    /// Drop text no scan needs any more: before `hold_back` bytes ahead of what is unsettled
    /// or unreleased.
    fn trim(&mut self) {
        let keep_from = self
            .pending
            .front()
            .map_or(self.total, |(_, r)| r.start)
            .min(self.settled)
            .saturating_sub(self.hold_back);
        if keep_from <= self.buf_start || keep_from - self.buf_start < self.hold_back.min(4096) {
            return;
        }
        let cut = floor_boundary(&self.buf, keep_from - self.buf_start);
        self.buf.drain(..cut);
        self.buf_start += cut;
        let start = self.buf_start;
        self.reported.retain(|(_, r)| r.end > start);
    }
}
