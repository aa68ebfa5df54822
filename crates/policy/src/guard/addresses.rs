//! Personal data with letters in it: email addresses, IBANs and IPv6 addresses. Each is found
//! from one anchor byte (`@`, the check digits after a country code, `:`) and then read around
//! that anchor with its own grammar and checksum.

use std::ops::Range;

/// Longest email the detector reports: a 64-byte local part, `@`, a 253-byte domain.
pub(crate) const EMAIL_MAX: usize = 64 + 1 + 253;
/// Longest IBAN (34 characters) with a space after every four.
pub(crate) const IBAN_MAX: usize = 34 + 8;
/// Longest IPv6 text form (with an embedded IPv4 address).
pub(crate) const IPV6_MAX: usize = 45;

fn is_local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_label_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-'
}

/// File extensions that follow `@` in asset names (`icon@2x.png`) and are not top-level domains.
const NOT_TLDS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "js", "css", "json", "txt",
];

/// The email address around the `@` at `at`: a local part of letters, digits and `._%+-`
/// (at most 64, starting with a letter or digit, not ending with a dot), then at least two
/// domain labels (letters, digits, inner hyphens, at most 63 each) ending in an alphabetic
/// top-level domain of 2-24 letters or an `xn--` one. Package specs (`lodash@4.17.21`),
/// decorators (`@property`), mentions (`@alice`) and hosts without a dot are not emails.
pub(crate) fn email(b: &[u8], at: usize) -> Option<Range<usize>> {
    let mut s = at;
    while s > 0 && at - s < 64 && is_local_char(b[s - 1]) {
        s -= 1;
    }
    if s > 0 && is_local_char(b[s - 1]) {
        return None; // a local part longer than 64 bytes
    }
    while s < at && !b[s].is_ascii_alphanumeric() {
        s += 1;
    }
    if s == at || b[at - 1] == b'.' {
        return None;
    }
    let mut j = at + 1;
    let mut labels = 0;
    let mut last = j..j;
    loop {
        let ls = j;
        while j < b.len() && is_label_char(b[j]) && j - ls <= 63 {
            j += 1;
        }
        if j == ls || j - ls > 63 || b[ls] == b'-' || b[j - 1] == b'-' {
            return None;
        }
        labels += 1;
        last = ls..j;
        if j + 1 < b.len() && b[j] == b'.' && b[j + 1].is_ascii_alphanumeric() {
            j += 1;
            continue;
        }
        break;
    }
    let tld = &b[last];
    let tld_ok = (tld.len() >= 2 && tld.len() <= 24 && tld.iter().all(u8::is_ascii_alphabetic))
        || (tld.len() > 4 && tld[..4].eq_ignore_ascii_case(b"xn--"));
    if labels < 2
        || !tld_ok
        || j - at - 1 > 253
        || b.get(j) == Some(&b'@')
        || NOT_TLDS
            .iter()
            .any(|x| tld.eq_ignore_ascii_case(x.as_bytes()))
    {
        return None;
    }
    Some(s..j)
}

/// IBAN length per country (ISO 13616 registry), for the countries whose IBANs are common.
fn iban_len(cc: &[u8]) -> Option<usize> {
    Some(match cc {
        b"AD" => 24,
        b"AE" => 23,
        b"AL" => 28,
        b"AT" => 20,
        b"AZ" => 28,
        b"BA" => 20,
        b"BE" => 16,
        b"BG" => 22,
        b"BH" => 22,
        b"BR" => 29,
        b"CH" => 21,
        b"CR" => 22,
        b"CY" => 28,
        b"CZ" => 24,
        b"DE" => 22,
        b"DK" => 18,
        b"DO" => 28,
        b"EE" => 20,
        b"EG" => 29,
        b"ES" => 24,
        b"FI" => 18,
        b"FO" => 18,
        b"FR" => 27,
        b"GB" => 22,
        b"GE" => 22,
        b"GI" => 23,
        b"GL" => 18,
        b"GR" => 27,
        b"GT" => 28,
        b"HR" => 21,
        b"HU" => 28,
        b"IE" => 22,
        b"IL" => 23,
        b"IQ" => 23,
        b"IS" => 26,
        b"IT" => 27,
        b"JO" => 30,
        b"KW" => 30,
        b"KZ" => 20,
        b"LB" => 28,
        b"LI" => 21,
        b"LT" => 20,
        b"LU" => 20,
        b"LV" => 21,
        b"MC" => 27,
        b"MD" => 24,
        b"ME" => 22,
        b"MK" => 19,
        b"MR" => 27,
        b"MT" => 31,
        b"MU" => 30,
        b"NL" => 18,
        b"NO" => 15,
        b"PK" => 24,
        b"PL" => 28,
        b"PS" => 29,
        b"PT" => 25,
        b"QA" => 29,
        b"RO" => 24,
        b"RS" => 22,
        b"SA" => 24,
        b"SE" => 24,
        b"SI" => 19,
        b"SK" => 24,
        b"SM" => 27,
        b"TN" => 24,
        b"TR" => 26,
        b"UA" => 29,
        b"VA" => 22,
        b"VG" => 24,
        b"XK" => 20,
        _ => return None,
    })
}

/// The IBAN whose country code starts at `p`: two capital letters, two check digits, then the
/// country's number of capital letters and digits, either in one block or in groups of four
/// separated by single spaces; the whole must be ISO 7064 mod-97 valid (remainder 1).
pub(crate) fn iban(b: &[u8], p: usize) -> Option<Range<usize>> {
    let len = iban_len(b.get(p..p + 2)?)?;
    if !b.get(p + 2..p + 4)?.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut chars = [0u8; 34];
    chars[..4].copy_from_slice(&b[p..p + 4]);
    let mut count = 4;
    let mut j = p + 4;
    while count < len && j < b.len() {
        let c = b[j];
        if c.is_ascii_digit() || c.is_ascii_uppercase() {
            chars[count] = c;
            count += 1;
            j += 1;
        } else if c == b' ' && count % 4 == 0 && j + 1 < b.len() && b[j + 1].is_ascii_alphanumeric()
        {
            j += 1;
        } else {
            break;
        }
    }
    if count != len
        || b.get(j)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    {
        return None;
    }
    // Move the first four characters to the end, letters count as 10..35, the number mod 97.
    let mut rem = 0u32;
    for &c in chars[4..len].iter().chain(&chars[..4]) {
        if c.is_ascii_digit() {
            rem = (rem * 10 + u32::from(c - b'0')) % 97;
        } else {
            rem = (rem * 100 + u32::from(c - b'A' + 10)) % 97;
        }
    }
    (rem == 1).then_some(p..j)
}

/// The IPv6 address whose text contains the `:` at `colon`, read as the run of hex digits,
/// colons and dots around it and parsed by the standard library's RFC 4291 parser. Short
/// forms that mean little and collide with code (`::1`, `a::b`, `std::io`) are not reported:
/// an address needs eight groups, or `::` with at least two groups one of which has 3+ digits.
/// Returns the address range and where the run ends (so the caller skips it).
pub(crate) fn ipv6(b: &[u8], colon: usize) -> (Option<Range<usize>>, usize) {
    let hexc = |c: u8| c.is_ascii_hexdigit() || c == b':';
    let mut s = colon;
    while s > 0 && colon - s < IPV6_MAX && hexc(b[s - 1]) {
        s -= 1;
    }
    let mut e = colon;
    while e < b.len() && e - s < IPV6_MAX + 2 && (hexc(b[e]) || b[e] == b'.') {
        e += 1;
    }
    let run_end = e;
    while e > s && b[e - 1] == b'.' {
        e -= 1;
    }
    let glued = |c: Option<&u8>| {
        c.is_some_and(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b':' | b'.'))
    };
    // Trailing dots were trimmed (sentence ends), so only the left side checks for a dot.
    let glued_after = b
        .get(e)
        .is_some_and(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b':'));
    if e - s < 3 || (s > 0 && glued(b.get(s - 1))) || glued_after {
        return (None, run_end);
    }
    // Two colons at least (`a:b` is a time or a label, never an address).
    if memchr::memchr_iter(b':', &b[s..e]).nth(1).is_none() {
        return (None, run_end);
    }
    let Ok(text) = std::str::from_utf8(&b[s..e]) else {
        return (None, run_end);
    };
    if text.parse::<std::net::Ipv6Addr>().is_err() {
        return (None, run_end);
    }
    let groups: Vec<&str> = text.split(':').filter(|g| !g.is_empty()).collect();
    let full = !text.contains("::");
    let meaningful = groups.len() >= 2 && groups.iter().any(|g| g.len() >= 3);
    if full || meaningful {
        (Some(s..e), run_end)
    } else {
        (None, run_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find_email(s: &str) -> Option<&str> {
        let at = s.find('@')?;
        email(s.as_bytes(), at).map(|r| &s[r])
    }

    #[test]
    fn emails() {
        assert_eq!(
            find_email("mail jane.doe+tag@example.co.uk."),
            Some("jane.doe+tag@example.co.uk")
        );
        assert_eq!(
            find_email("<bob_99@mail-server.example.org>"),
            Some("bob_99@mail-server.example.org")
        );
        assert_eq!(
            find_email("(.alice@example.com)"),
            Some("alice@example.com")
        );
        for no in [
            "npm i lodash@4.17.21",
            "@property",
            "ping @alice please",
            "root@localhost",
            "icon@2x.png",
            "a.@example.com",
            "user@-bad.com",
            "user@example.c0m",
        ] {
            assert_eq!(find_email(no), None, "{no}");
        }
    }

    #[test]
    fn ibans() {
        let find = |s: &str| {
            let p = s.bytes().position(|c| c.is_ascii_uppercase())?;
            iban(s.as_bytes(), p).map(|r| s[r].to_string())
        };
        assert_eq!(
            find("DE89 3704 0044 0532 0130 00").as_deref(),
            Some("DE89 3704 0044 0532 0130 00")
        );
        assert_eq!(
            find("GB82WEST12345698765432, thanks").as_deref(),
            Some("GB82WEST12345698765432")
        );
        assert_eq!(
            find("FR1420041010050500013M02606").as_deref(),
            Some("FR1420041010050500013M02606")
        );
        // A wrong check digit, a wrong length, an unknown country.
        assert_eq!(find("DE88 3704 0044 0532 0130 00"), None);
        assert_eq!(find("DE89 3704 0044 0532 0130 0"), None);
        assert_eq!(find("ZZ89 3704 0044 0532 0130 00"), None);
    }

    #[test]
    fn ipv6_addresses() {
        let find = |s: &str| {
            let c = s.find(':')?;
            ipv6(s.as_bytes(), c).0.map(|r| s[r].to_string())
        };
        assert_eq!(
            find("addr 2001:db8::8a2e:370:7334.").as_deref(),
            Some("2001:db8::8a2e:370:7334")
        );
        assert_eq!(
            find("fe80::1ff:fe23:4567:890a").as_deref(),
            Some("fe80::1ff:fe23:4567:890a")
        );
        assert_eq!(
            find("2001:0db8:0000:0000:0000:ff00:0042:8329").as_deref(),
            Some("2001:0db8:0000:0000:0000:ff00:0042:8329")
        );
        assert_eq!(
            find("::ffff:192.0.2.128 ok").as_deref(),
            Some("::ffff:192.0.2.128")
        );
        for no in [
            "at 12:30:45",
            "std::io",
            "::1",
            "de::ad",
            "00:1A:2B:3C:4D:5E",
            "a::b",
            "10:30",
        ] {
            assert_eq!(find(no), None, "{no}");
        }
    }
}
