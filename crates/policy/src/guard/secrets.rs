//! Credentials pasted into prompts or produced by a model: provider API keys, AWS access key
//! ids and PEM private keys.

use std::ops::Range;

use memchr::memmem;

/// Longest key body after `sk-` that is still read as one key; real keys are 48-170.
pub(crate) const API_KEY_MAX_BODY: usize = 256;
/// How far after a private-key header the detector looks for the END line; the longest real
/// keys (RSA-8192) are about 6.5 KiB.
pub(crate) const PEM_MAX: usize = 8 * 1024;
/// The header line is what must be seen whole before any of it streams out; the block after it
/// is held until its END line arrives (see `Window`).
pub(crate) const PEM_HEADER_MAX: usize = 64;

fn is_key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// An OpenAI / Anthropic style key starting at the `-` of `sk-` (at `dash`): `sk-` then 20-256
/// letters, digits, `_` and `-` (which covers `sk-proj-…`, `sk-ant-api03-…`,
/// `sk-svcacct-…`) with at least one digit and either a capital letter or six digits, so
/// hyphenated words (`sk-this-is-not-a-key`) are not keys. `sk-` must start a word.
pub(crate) fn api_key(b: &[u8], dash: usize) -> Option<Range<usize>> {
    if dash < 2 || &b[dash - 2..dash] != b"sk" {
        return None;
    }
    let start = dash - 2;
    if start > 0 && (is_key_char(b[start - 1]) || b[start - 1] == b'.') {
        return None;
    }
    let mut e = dash + 1;
    let (mut digits, mut upper) = (0, 0);
    while e < b.len() && is_key_char(b[e]) {
        digits += usize::from(b[e].is_ascii_digit());
        upper += usize::from(b[e].is_ascii_uppercase());
        e += 1;
        if e - dash - 1 > API_KEY_MAX_BODY {
            return None;
        }
    }
    let body = e - dash - 1;
    (body >= 20 && digits >= 1 && (upper >= 1 || digits >= 6)).then_some(start..e)
}

/// An AWS access key id at `a`: `AKIA` (long-term) or `ASIA` (temporary) then 16 capital
/// letters or digits, as a whole word.
pub(crate) fn aws_access_key(b: &[u8], a: usize) -> Option<Range<usize>> {
    let head = b.get(a..a + 4)?;
    if head != b"AKIA" && head != b"ASIA" {
        return None;
    }
    if a > 0 && (b[a - 1].is_ascii_alphanumeric() || b[a - 1] == b'_') {
        return None;
    }
    let body = b.get(a + 4..a + 20)?;
    if !body
        .iter()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return None;
    }
    if b.get(a + 20)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    {
        return None;
    }
    Some(a..a + 20)
}

/// A PEM private key at `dash`: `-----BEGIN <label>-----` whose label contains
/// `PRIVATE KEY` (RSA, EC, DSA, OPENSSH, ENCRYPTED, PGP ... BLOCK), through the end of its
/// `-----END <label>-----` line. With no END line within [`PEM_MAX`] bytes the block is taken
/// to run to the end of the text (or `PEM_MAX`): a truncated key is still a key.
pub(crate) fn private_key(b: &[u8], dash: usize) -> Option<Range<usize>> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    if !b[dash..].starts_with(BEGIN) {
        return None;
    }
    let label_start = dash + BEGIN.len();
    let limit = (label_start + PEM_HEADER_MAX).min(b.len());
    let label_len = memmem::find(&b[label_start..limit], b"-----")?;
    let label = &b[label_start..label_start + label_len];
    if memmem::find(label, b"PRIVATE KEY").is_none()
        || !label
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b' ')
    {
        return None;
    }
    let body = label_start + label_len + 5;
    let window_end = (dash + PEM_MAX).min(b.len());
    let Some(end_at) = memmem::find(&b[body..window_end], b"-----END ") else {
        return Some(dash..window_end);
    };
    let end_label = body + end_at + 9;
    let close_limit = (end_label + PEM_HEADER_MAX).min(b.len());
    match memmem::find(&b[end_label..close_limit], b"-----") {
        Some(k) => Some(dash..end_label + k + 5),
        None => Some(dash..window_end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Option<&str> {
        let d = s.find("sk-")? + 2;
        api_key(s.as_bytes(), d).map(|r| &s[r])
    }

    #[test]
    fn api_keys() {
        let k = "sk-proj-Xa81kLmN02pQrStUvWx9YzAbCdEf";
        assert_eq!(key(&format!("key={k};")), Some(k));
        let a = "sk-ant-api03-AbCdEf0123456789_ghIJklMNop-qrSTuv";
        assert_eq!(key(&format!("\"{a}\"")), Some(a));
        assert_eq!(key("sk-abc123"), None); // too short
        assert_eq!(key("sk-this-is-not-a-key-just-words"), None);
        assert_eq!(key("task-Xa81kLmN02pQrStUvWx9YzAbCdEf"), None);
    }

    #[test]
    fn aws_keys() {
        fn find(s: &str) -> Option<&str> {
            aws_access_key(s.as_bytes(), s.find('A')?).map(|r| &s[r])
        }
        assert_eq!(
            find("id AKIAIOSFODNN7EXAMPLE ok"),
            Some("AKIAIOSFODNN7EXAMPLE")
        );
        assert_eq!(find("ASIAY34FZKBOKMUTVV7A"), Some("ASIAY34FZKBOKMUTVV7A"));
        assert_eq!(find("AKIAIOSFODNN7EXAMPL"), None);
        assert_eq!(find("AKIAIOSFODNN7EXAMPLEX"), None);
        assert_eq!(find("ASIA PACIFIC REGION OFFICE"), None);
        assert_eq!(find("AKIAiosfodnn7example"), None);
    }

    #[test]
    fn private_keys() {
        let pem =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
        let s = format!("key:\n{pem}\nthanks");
        let d = s.find("-----").unwrap();
        assert_eq!(private_key(s.as_bytes(), d).map(|r| &s[r]), Some(pem));
        let cut = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA";
        assert_eq!(private_key(cut.as_bytes(), 0), Some(0..cut.len()));
        let public = "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----";
        assert_eq!(private_key(public.as_bytes(), 0), None);
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB";
        assert_eq!(private_key(cert.as_bytes(), 0), None);
    }
}
