//! The OpenAI-style rate-limit headers every response of a limited route carries.
//!
//! `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`: of all limits counted in requests
//! (resp. tokens or weighted cost) that applied, the one with the least remaining. Resets are
//! written the way OpenAI writes them (`20ms`, `1s`, `6m0s`, `1h2m3s`).

use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use sluice_state::limits::LimitState;

const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");

/// The most constraining request and token limits seen while deciding.
#[derive(Clone, Debug, Default)]
pub struct RateHeaders {
    requests: Option<LimitState>,
    tokens: Option<LimitState>,
}

impl RateHeaders {
    /// Takes in the states of one rule's limits.
    pub fn observe(&mut self, counts_requests: bool, states: &[LimitState]) {
        let slot = if counts_requests {
            &mut self.requests
        } else {
            &mut self.tokens
        };
        for s in states {
            let tighter = slot.as_ref().is_none_or(|cur| {
                (s.remaining, std::cmp::Reverse(s.reset_after))
                    < (cur.remaining, std::cmp::Reverse(cur.reset_after))
            });
            if tighter {
                *slot = Some(*s);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_none() && self.tokens.is_none()
    }

    pub fn write(&self, headers: &mut HeaderMap) {
        let sets = [
            (
                &self.requests,
                LIMIT_REQUESTS,
                REMAINING_REQUESTS,
                RESET_REQUESTS,
            ),
            (&self.tokens, LIMIT_TOKENS, REMAINING_TOKENS, RESET_TOKENS),
        ];
        // Room for all of them at once: a map that grows while they go in rehashes every
        // header of the response, which made writing them cost twice as much.
        let sets_used = usize::from(self.requests.is_some()) + usize::from(self.tokens.is_some());
        headers.reserve(3 * sets_used);
        for (state, limit, remaining, reset) in sets {
            let Some(s) = state else { continue };
            headers.insert(limit, HeaderValue::from(s.limit.amount));
            headers.insert(remaining, HeaderValue::from(s.remaining));
            if let Some(v) = reset_value(s.reset_after) {
                headers.insert(reset, v);
            }
        }
    }
}

/// `20ms`, `1s`, `6m0s`, `1h2m3s`: whole milliseconds below a second, else whole seconds
/// rounded up (a client that waits that long finds the bucket full).
pub fn format_reset(d: Duration) -> String {
    let mut out = Reset::default();
    out.write(d);
    String::from_utf8_lossy(out.as_bytes()).into_owned()
}

/// [`format_reset`] as a header value, built on the stack (it goes on every response).
fn reset_value(d: Duration) -> Option<HeaderValue> {
    let mut out = Reset::default();
    out.write(d);
    HeaderValue::from_bytes(out.as_bytes()).ok()
}

/// A reset as text: at most `18446744073709551615h59m59s` (29 bytes).
#[derive(Default)]
struct Reset {
    buf: [u8; 32],
    len: usize,
}

impl Reset {
    fn write(&mut self, d: Duration) {
        if d < Duration::from_secs(1) {
            self.number(u64::try_from(d.as_micros().div_ceil(1000)).unwrap_or(u64::MAX));
            self.text(b"ms");
            return;
        }
        let secs = u64::try_from(d.as_micros().div_ceil(1_000_000)).unwrap_or(u64::MAX);
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        if h > 0 {
            self.number(h);
            self.text(b"h");
        }
        if h > 0 || m > 0 {
            self.number(m);
            self.text(b"m");
        }
        self.number(s);
        self.text(b"s");
    }

    fn number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.text(&digits[i..]);
    }

    fn text(&mut self, t: &[u8]) {
        self.buf[self.len..self.len + t.len()].copy_from_slice(t);
        self.len += t.len();
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_state::limits::Limit;

    fn state(amount: u64, remaining: u64, reset_ms: u64) -> LimitState {
        LimitState {
            limit: Limit::new(amount, Duration::from_secs(60)),
            remaining,
            reset_after: Duration::from_millis(reset_ms),
        }
    }

    #[test]
    fn resets_read_like_openai() {
        assert_eq!(format_reset(Duration::ZERO), "0ms");
        assert_eq!(format_reset(Duration::from_micros(19_001)), "20ms");
        assert_eq!(format_reset(Duration::from_micros(7)), "1ms");
        assert_eq!(format_reset(Duration::from_millis(105)), "105ms");
        assert_eq!(format_reset(Duration::from_micros(999_999)), "1000ms");
        assert_eq!(format_reset(Duration::from_millis(1000)), "1s");
        assert_eq!(format_reset(Duration::from_millis(1001)), "2s");
        assert_eq!(format_reset(Duration::from_secs(360)), "6m0s");
        assert_eq!(format_reset(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(format_reset(Duration::from_secs(7200)), "2h0m0s");
        assert_eq!(
            format_reset(Duration::MAX),
            format!(
                "{}h{}m{}s",
                u64::MAX / 3600,
                u64::MAX / 60 % 60,
                u64::MAX % 60
            )
        );
        assert_eq!(
            reset_value(Duration::from_millis(1500)).unwrap(),
            HeaderValue::from_static("2s")
        );
    }

    #[test]
    fn the_tightest_limit_of_each_kind_is_reported() {
        let mut h = RateHeaders::default();
        h.observe(
            false,
            &[state(20_000, 500, 1_000), state(2_000_000, 90_000, 60_000)],
        );
        h.observe(false, &[state(1_000, 500, 9_000)]);
        h.observe(true, &[state(60, 59, 1_000)]);
        let mut out = HeaderMap::new();
        h.write(&mut out);
        // Equal remaining: the longer wait is the binding one.
        assert_eq!(out[&LIMIT_TOKENS], "1000");
        assert_eq!(out[&REMAINING_TOKENS], "500");
        assert_eq!(out[&RESET_TOKENS], "9s");
        assert_eq!(out[&LIMIT_REQUESTS], "60");
        assert_eq!(out[&REMAINING_REQUESTS], "59");
        assert_eq!(out[&RESET_REQUESTS], "1s");
    }
}
