//! Gateway API durations (GEP-2257): `^([0-9]{1,5}(h|m|s|ms)){1,4}$`, e.g. `1h30m`, `500ms`, `0s`.

use std::time::Duration;

/// Parses a GEP-2257 duration; the error says what is wrong in words a config author understands.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!("invalid duration {text:?}: expected up to 4 parts of 1-5 digits with a unit h, m, s or ms (e.g. 500ms, 1m30s)")
    };
    if text.is_empty() {
        return Err(invalid());
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut parts = 0;
    let mut total = Duration::ZERO;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &text[start..i];
        if digits.is_empty() || digits.len() > 5 {
            return Err(invalid());
        }
        let n: u64 = digits.parse().map_err(|_| invalid())?;
        let unit = if text[i..].starts_with("ms") {
            i += 2;
            Duration::from_millis(n)
        } else if text[i..].starts_with('h') {
            i += 1;
            Duration::from_secs(n * 3600)
        } else if text[i..].starts_with('m') {
            i += 1;
            Duration::from_secs(n * 60)
        } else if text[i..].starts_with('s') {
            i += 1;
            Duration::from_secs(n)
        } else {
            return Err(invalid());
        };
        total += unit;
        parts += 1;
        if parts > 4 {
            return Err(invalid());
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gep_2257_forms() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(
            parse_duration("1m1s10ms"),
            Ok(Duration::from_millis(61_010))
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "1", "1d", "1.5s", "123456s", "1h1m1s1ms1h", "-1s", "s"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be rejected");
        }
    }
}
