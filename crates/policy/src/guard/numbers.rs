//! Numbers that identify a person: payment card numbers, US social security numbers, phone
//! numbers and IPv4 addresses.
//!
//! All four start as the same thing in text, a run of digit groups joined by single separators
//! (`4111 1111 1111 1111`, `078-05-1120`, `+44 20 7946 0958`, `192.168.0.1`), so the scanner
//! reads such a token once and then asks which shape it has. What makes a shape is strict on
//! purpose: order ids, timestamps, dates and version numbers are digit groups too.

use std::ops::Range;

use super::PiiKind;

/// A token longer than this many digits is a long number, not anything detected here.
const MAX_TOKEN_DIGITS: usize = 20;
const MAX_GROUPS: usize = 12;

/// Digit groups as read from the text. One is reused for every token of a pass (it is filled
/// in place: returning it by value cost a copy per number).
#[derive(Debug, Default)]
pub(crate) struct Token {
    /// Byte range of each group's digits.
    groups: [(u32, u32); MAX_GROUPS],
    /// The separator before each group (`0` for the first, and after a closing parenthesis
    /// followed directly by a digit).
    seps: [u8; MAX_GROUPS],
    n: usize,
    digits: usize,
    plus: bool,
    /// Index of the group written in parentheses, as in `(415) 555-0132`.
    paren: Option<usize>,
    /// Where the token starts (`+` or `(` included) and ends.
    pub start: usize,
    pub end: usize,
    /// The token touches a letter, digit, `_` or `@` after it: it is part of a bigger word.
    glued: bool,
}

impl Token {
    fn group(&self, k: usize) -> Range<usize> {
        self.groups[k].0 as usize..self.groups[k].1 as usize
    }
    fn len(&self, k: usize) -> usize {
        (self.groups[k].1 - self.groups[k].0) as usize
    }
    /// End of the first group: where the scan goes on when nothing matched.
    pub fn first_group_end(&self) -> usize {
        self.groups[0].1 as usize
    }
}

/// What reading a token at a position gave.
pub(crate) enum Read {
    /// The token was read into the caller's [`Token`].
    Token,
    /// Not a token start (e.g. a lone `+` or `(`): move on one byte.
    Nothing,
    /// A run of more digits than any detected number has: skip to this offset.
    TooLong(usize),
}

/// Read digit groups starting at `start`, which holds a digit, `+` or `(`.
pub(crate) fn read_token(b: &[u8], start: usize, t: &mut Token) -> Read {
    // Groups and separators are written before they are read; the rest is reset.
    t.n = 0;
    t.digits = 0;
    t.plus = false;
    t.paren = None;
    t.start = start;
    t.end = start;
    t.glued = false;
    let mut j = start;
    if b[j] == b'+' {
        t.plus = true;
        j += 1;
    }
    let mut sep = 0u8;
    loop {
        let open = b.get(j) == Some(&b'(');
        let g0 = if open { j + 1 } else { j };
        let mut g1 = g0;
        while g1 < b.len() && b[g1].is_ascii_digit() {
            g1 += 1;
        }
        if g1 == g0 || (open && b.get(g1) != Some(&b')')) {
            break;
        }
        if t.n == MAX_GROUPS || t.digits + (g1 - g0) > MAX_TOKEN_DIGITS {
            // Skip the whole digit/separator run so its tail is not read as a new token.
            let mut k = g1;
            while k < b.len() && (b[k].is_ascii_digit() || is_sep(b[k])) {
                k += 1;
            }
            return Read::TooLong(k);
        }
        t.groups[t.n] = (g0 as u32, g1 as u32);
        t.seps[t.n] = sep;
        if open {
            t.paren = Some(t.n);
        }
        t.n += 1;
        t.digits += g1 - g0;
        j = if open { g1 + 1 } else { g1 };
        t.end = j;
        // A separator continues the token only if a group follows it.
        match b.get(j) {
            Some(&s) if is_sep(s) && next_is_group(b, j + 1) => {
                sep = s;
                j += 1;
            }
            Some(d) if d.is_ascii_digit() && open => sep = 0,
            _ => break,
        }
    }
    if t.n == 0 {
        return Read::Nothing;
    }
    t.glued = b
        .get(t.end)
        .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'@');
    Read::Token
}

fn is_sep(c: u8) -> bool {
    matches!(c, b' ' | b'-' | b'.' | b'/')
}

fn next_is_group(b: &[u8], j: usize) -> bool {
    match b.get(j) {
        Some(d) if d.is_ascii_digit() => true,
        Some(b'(') => b.get(j + 1).is_some_and(u8::is_ascii_digit),
        _ => false,
    }
}

/// The detections a token holds, in order of how specific the shape is.
pub(crate) fn classify(
    b: &[u8],
    t: &Token,
    want: impl Fn(PiiKind) -> bool,
) -> Option<(PiiKind, Range<usize>)> {
    // Fewer than 8 digits is at most an IPv4 address (`1.1.1.1`): years, prices, times and
    // counts leave here.
    if t.glued || (t.digits < 8 && (t.n < 4 || !want(PiiKind::IpAddress))) {
        return None;
    }
    if want(PiiKind::IpAddress) {
        if let Some(r) = ipv4(b, t) {
            return Some((PiiKind::IpAddress, r));
        }
    }
    if want(PiiKind::UsSsn) && ssn(b, t) {
        return Some((PiiKind::UsSsn, t.start..t.end));
    }
    if want(PiiKind::CreditCard) {
        if let Some(end) = card(b, t) {
            return Some((PiiKind::CreditCard, t.start..end));
        }
    }
    if want(PiiKind::Phone) && phone(b, t) {
        return Some((PiiKind::Phone, t.start..t.end));
    }
    None
}

fn all_seps(t: &Token, range: Range<usize>, allowed: &[u8]) -> bool {
    t.seps[range].iter().all(|s| allowed.contains(s))
}

fn same_seps(t: &Token, upto: usize) -> bool {
    (2..upto).all(|k| t.seps[k] == t.seps[1])
}

fn value(b: &[u8], r: Range<usize>) -> u32 {
    b[r].iter().fold(0u32, |v, d| v * 10 + u32::from(d - b'0'))
}

/// Dotted quad, each part 0..=255 without leading zeros; an optional `/prefix` after it is
/// allowed. Version strings (`v1.2.3.4`, `version 10.0.0.1`) are left alone.
fn ipv4(b: &[u8], t: &Token) -> Option<Range<usize>> {
    if t.plus || t.paren.is_some() || t.n < 4 || !all_seps(t, 1..4, b".") {
        return None;
    }
    if t.n > 4 && t.seps[4] != b'/' {
        return None;
    }
    for k in 0..4 {
        let r = t.group(k);
        if r.len() > 3 || (r.len() > 1 && b[r.start] == b'0') || value(b, r) > 255 {
            return None;
        }
    }
    let end = t.groups[3].1 as usize;
    // `1.2.3.4-beta`, `1.2.3.4+build`: a version with a suffix.
    if matches!(b.get(end), Some(b'-' | b'+'))
        && b.get(end + 1).is_some_and(u8::is_ascii_alphabetic)
    {
        return None;
    }
    if after_version_word(b, t.start) {
        return None;
    }
    Some(t.start..end)
}

fn after_version_word(b: &[u8], start: usize) -> bool {
    let mut k = start;
    while k > 0 && b[k - 1] == b' ' {
        k -= 1;
    }
    let word_end = k;
    while k > 0 && b[k - 1].is_ascii_alphabetic() {
        k -= 1;
    }
    let word = &b[k..word_end];
    [
        "version", "ver", "v", "release", "build", "firmware", "chrome", "firefox",
    ]
    .iter()
    .any(|w| word.eq_ignore_ascii_case(w.as_bytes()))
}

/// `AAA-GG-SSSS` (or with spaces) outside the ranges the SSA never issues: area 000, 666 and
/// 900-999, group 00, serial 0000.
fn ssn(b: &[u8], t: &Token) -> bool {
    if t.plus || t.paren.is_some() || t.n != 3 || t.len(0) != 3 || t.len(1) != 2 || t.len(2) != 4 {
        return false;
    }
    if !matches!(t.seps[1], b'-' | b' ') || t.seps[2] != t.seps[1] {
        return false;
    }
    let area = value(b, t.group(0));
    area != 0 && area != 666 && area < 900 && value(b, t.group(1)) != 0 && value(b, t.group(2)) != 0
}

/// 13-19 digits, in one block or in groups with one kind of separator, passing the Luhn check
/// and starting with an issuer prefix in use. When the token has more groups than the card
/// (`4111 1111 1111 1111 12/26`), the longest leading groups that form a card count.
/// Returns the end of the card.
fn card(b: &[u8], t: &Token) -> Option<usize> {
    if t.plus || t.paren.is_some() {
        return None;
    }
    let mut digits = t.digits;
    let mut n = t.n;
    loop {
        if (13..=19).contains(&digits)
            && (n == 1 || (all_seps(t, 1..n, b" -.") && same_seps(t, n)))
            && (1..n).all(|k| t.len(k) >= 2)
            && card_digits_valid(b, t, n)
        {
            return Some(t.groups[n - 1].1 as usize);
        }
        if n == 1 {
            return None;
        }
        digits -= t.len(n - 1);
        n -= 1;
    }
}

fn card_digits_valid(b: &[u8], t: &Token, n: usize) -> bool {
    let mut buf = [0u8; 19];
    let mut len = 0;
    for k in 0..n {
        for &d in &b[t.group(k)] {
            buf[len] = d - b'0';
            len += 1;
        }
    }
    let digits = &buf[..len];
    issuer_known(digits) && luhn(digits)
}

/// The Luhn checksum: every second digit from the right doubled, digits summed, mod 10 == 0.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Issuer identification number prefixes of the card networks in use (Visa, Mastercard,
/// American Express, Discover, Diners Club, JCB, UnionPay, Maestro, RuPay, Mir).
fn issuer_known(d: &[u8]) -> bool {
    let p = |n: usize| d[..n].iter().fold(0u32, |v, &x| v * 10 + u32::from(x));
    match d[0] {
        4 => true,                                                           // Visa
        5 => (51..=55).contains(&p(2)) || matches!(p(2), 50 | 56..=58),      // Mastercard, Maestro
        2 => (2221..=2720).contains(&p(4)) || (2200..=2204).contains(&p(4)), // Mastercard, Mir
        3 => {
            matches!(p(2), 34 | 37 | 36 | 38 | 39)
                || (300..=305).contains(&p(3))
                || (3528..=3589).contains(&p(4))
        }
        6 => matches!(p(2), 60 | 62 | 63 | 64 | 65 | 67 | 68 | 69) || p(4) == 6011 || p(3) == 622,
        _ => false,
    }
}

/// Phone numbers:
/// - international, `+` then a country code and 8-15 digits in all (E.164), with spaces,
///   dashes, dots or an area code in parentheses between groups;
/// - North American without `+`: `415-555-0132`, `415.555.0132`, `415 555 0132`,
///   `(415) 555-0132`, `1-800-555-0199`, area code and exchange starting with 2-9;
/// - European national numbers with a trunk `0`: `030 1234567`, `020 7946 0958`,
///   `06 12 34 56 78`, `030/1234567`: 10 or 11 digits in at least two groups.
///
/// A block of digits without any separator is never a phone number here: order ids and
/// timestamps look exactly like that.
fn phone(b: &[u8], t: &Token) -> bool {
    if t.plus {
        return (8..=15).contains(&t.digits)
            && b[t.groups[0].0 as usize] != b'0'
            && all_seps(t, 1..t.n, b" -.\0");
    }
    if t.n < 2 {
        return false;
    }
    let mut all_lens = [0usize; MAX_GROUPS];
    for (k, l) in all_lens.iter_mut().enumerate().take(t.n) {
        *l = t.len(k);
    }
    let lens = &all_lens[..t.n];
    let first = |k: usize| b[t.groups[k].0 as usize];
    // North American.
    let nanp = |o: usize| {
        lens[o..] == [3, 3, 4]
            && (b'2'..=b'9').contains(&first(o))
            && (b'2'..=b'9').contains(&first(o + 1))
    };
    let nanp_seps_ok = |o: usize| {
        let s1 = t.seps[o + 1];
        let s2 = t.seps[o + 2];
        if t.paren == Some(o) {
            matches!(s1, b' ' | 0 | b'-') && matches!(s2, b'-' | b' ' | b'.')
        } else {
            t.paren.is_none() && matches!(s1, b'-' | b' ' | b'.') && s2 == s1
        }
    };
    if t.n == 3 && nanp(0) && nanp_seps_ok(0) {
        return true;
    }
    if t.n == 4 && lens[0] == 1 && first(0) == b'1' && nanp(1) && nanp_seps_ok(1) {
        let s0 = t.seps[1];
        return t.paren == Some(1) && matches!(s0, b' ' | b'-')
            || (t.paren.is_none() && s0 == t.seps[2]);
    }
    // European national format.
    if t.paren.is_some() || !(10..=11).contains(&t.digits) {
        return false;
    }
    let g0 = t.group(0);
    if lens.iter().any(|&l| l < 2) || !same_seps(t, t.n) {
        return false;
    }
    // A trunk prefix is one `0` followed by a non-zero digit (`00` starts an international call).
    if b[g0.start] != b'0' || b[g0.start + 1] == b'0' {
        return false;
    }
    match t.seps[1] {
        b' ' | b'-' => true,
        b'.' => lens.iter().all(|&l| l == 2),
        b'/' => t.n <= 3,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(s: &str) -> Option<(PiiKind, &str)> {
        let b = s.as_bytes();
        let start = b
            .iter()
            .position(|&c| c.is_ascii_digit() || c == b'+' || c == b'(')?;
        let mut t = Token::default();
        match read_token(b, start, &mut t) {
            Read::Token => classify(b, &t, |_| true).map(|(k, r)| (k, &s[r])),
            _ => None,
        }
    }

    #[test]
    fn luhn_accepts_valid_and_rejects_off_by_one() {
        let d = |s: &str| s.bytes().map(|c| c - b'0').collect::<Vec<_>>();
        assert!(luhn(&d("4111111111111111")));
        assert!(luhn(&d("378282246310005")));
        assert!(!luhn(&d("4111111111111112")));
    }

    #[test]
    fn cards() {
        use PiiKind::CreditCard as C;
        assert_eq!(
            detect("card 4111 1111 1111 1111 ok"),
            Some((C, "4111 1111 1111 1111"))
        );
        assert_eq!(
            detect("4111-1111-1111-1111"),
            Some((C, "4111-1111-1111-1111"))
        );
        assert_eq!(detect("4111111111111111"), Some((C, "4111111111111111")));
        assert_eq!(
            detect("amex 3782 822463 10005."),
            Some((C, "3782 822463 10005"))
        );
        assert_eq!(
            detect("5555 5555 5555 4444 12/26"),
            Some((C, "5555 5555 5555 4444"))
        );
        // Invalid Luhn, unknown issuer, mixed separators, glued to letters.
        assert_eq!(detect("4111 1111 1111 1112"), None);
        assert_eq!(detect("1234 5678 9012 3452"), None);
        assert_eq!(detect("4111 1111-1111 1111"), None);
        assert_eq!(detect("4111111111111111abc"), None);
    }

    #[test]
    fn ssns() {
        use PiiKind::UsSsn as S;
        assert_eq!(detect("SSN 078-05-1120."), Some((S, "078-05-1120")));
        assert_eq!(detect("ssn 219 09 9999"), Some((S, "219 09 9999")));
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "912-34-5678",
            "123-00-4567",
            "123-45-0000",
            "123-45 6789",
        ] {
            assert_eq!(detect(bad), None, "{bad}");
        }
    }

    #[test]
    fn phones() {
        use PiiKind::Phone as P;
        for ok in [
            "+1 415 555 0132",
            "+14155550132",
            "+44 20 7946 0958",
            "+1 (415) 555-0132",
            "+49-30-1234567",
            "(415) 555-0132",
            "(415)555-0132",
            "415-555-0132",
            "415.555.0132",
            "1-800-555-0199",
            "030 1234567",
            "020 7946 0958",
            "06 12 34 56 78",
            "06.12.34.56.78",
            "030/1234567",
        ] {
            assert_eq!(detect(ok), Some((P, ok)), "{ok}");
        }
        for no in [
            "4155550132",
            "1700000000",
            "2024-01-15",
            "order 1234-5678-9012",
            "115-555-0132",
            "+0 123 456 789",
            "+12 34",
            "01.02.2023",
            "12 345 678",
        ] {
            assert_eq!(detect(no).map(|x| x.0), None, "{no}");
        }
    }

    #[test]
    fn ipv4() {
        use PiiKind::IpAddress as I;
        assert_eq!(detect("host 192.168.1.20:8080"), Some((I, "192.168.1.20")));
        assert_eq!(detect("net 10.0.0.0/8"), Some((I, "10.0.0.0")));
        assert_eq!(detect("at 8.8.8.8."), Some((I, "8.8.8.8")));
        for no in [
            "999.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "version 10.0.0.1",
            "v 1.2.3.4",
            "256.1.1.1",
        ] {
            assert_eq!(detect(no).map(|x| x.0), None, "{no}");
        }
    }
}
