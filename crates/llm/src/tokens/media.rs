//! Estimates for non-text inputs: audio and documents. (Images are priced per model in
//! `family.rs`.) None of these decode the media itself beyond what is cheap: the size of a
//! base64 payload and, for PDFs, a scan for page objects.

use base64::Engine;

/// Input audio: OpenAI counts about one token per 100 ms. The payload's length gives its
/// duration only through its bitrate, so assume the lowest plausible one: 8 kHz 8-bit mono PCM
/// (8,000 bytes a second) for WAV and PCM, 8 kbit/s (1,000 bytes a second) for compressed
/// formats. Real audio is usually denser, so this over-counts rather than under.
pub(super) fn audio_tokens(data: &str, format: Option<&str>) -> u64 {
    let bytes = decoded_len(data);
    let bytes_per_second: u64 = match format {
        Some(f) if f.eq_ignore_ascii_case("wav") || f.starts_with("pcm") => 8_000,
        _ => 1_000,
    };
    // 10 tokens a second.
    (bytes * 10).div_ceil(bytes_per_second).max(1)
}

/// Tokens for one page of a PDF: Anthropic documents 1,500–3,000 text tokens a page, and both
/// Anthropic and OpenAI add an image of each page (≤ 1,600 and ≤ 1,445 tokens).
pub(super) const PDF_PAGE_TOKENS: u64 = 4_600;

/// A document given by reference (file id, URL): its content is not in the request, so count it
/// as one PDF page. This under-counts long documents; the provider's usage report settles it.
pub(super) const REFERENCED_DOCUMENT_TOKENS: u64 = PDF_PAGE_TOKENS;

/// An inline document, as base64 (`data`, possibly a `data:` URL). PDFs are counted by page
/// objects; text is counted as text by the caller's encoding (`text_tokens`); anything else as
/// one token per two decoded bytes.
pub(super) fn document_tokens(data: &str, text_tokens: impl Fn(&str) -> u64) -> u64 {
    let (media_type, payload) = split_data_url(data);
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(payload.trim()) else {
        // Not base64 after all: count what was sent.
        return text_tokens(data);
    };
    let is_pdf = bytes.starts_with(b"%PDF") || media_type == Some("application/pdf");
    if is_pdf {
        return pdf_tokens(&bytes);
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => text_tokens(text),
        Err(_) => (bytes.len() as u64).div_ceil(2),
    }
}

/// Pages × [`PDF_PAGE_TOKENS`]. Page objects (`/Type /Page`) are only visible when they are not
/// inside a compressed object stream; when none are found, assume one page per 3 KB, the size
/// of a plain text page (denser files are mostly images, which this over-counts).
fn pdf_tokens(bytes: &[u8]) -> u64 {
    let pages = count_page_objects(bytes);
    let pages = if pages > 0 {
        pages
    } else {
        (bytes.len() as u64).div_ceil(3_000)
    };
    pages.max(1) * PDF_PAGE_TOKENS
}

/// Occurrences of `/Type /Page` or `/Type/Page` not followed by `s` (which would be the page
/// tree's `/Pages`).
fn count_page_objects(bytes: &[u8]) -> u64 {
    let mut n = 0;
    let mut i = 0;
    while let Some(off) = find(&bytes[i..], b"/Type") {
        let mut j = i + off + b"/Type".len();
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if bytes[j..].starts_with(b"/Page") && bytes.get(j + 5) != Some(&b's') {
            n += 1;
        }
        i = j;
    }
    n
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `data:<media type>;base64,<payload>` → (media type, payload); anything else is all payload.
pub(super) fn split_data_url(data: &str) -> (Option<&str>, &str) {
    if let Some(rest) = data.strip_prefix("data:") {
        if let Some((meta, payload)) = rest.split_once(',') {
            let media_type = meta.split(';').next().filter(|m| !m.is_empty());
            return (media_type, payload);
        }
    }
    (None, data)
}

/// Bytes a base64 text decodes to.
fn decoded_len(data: &str) -> u64 {
    let padding = data.bytes().rev().take_while(|&b| b == b'=').count() as u64;
    (data.len() as u64 * 3 / 4).saturating_sub(padding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn audio_by_size_and_format() {
        // One second of 16 kHz 16-bit mono WAV is 32,000 bytes: 40 tokens by the 8 kHz 8-bit bound.
        assert_eq!(audio_tokens(&b64(&[0u8; 32_000]), Some("wav")), 40);
        // 8,000 bytes of mp3 is 8 s at 8 kbit/s, 2 s at 32 kbit/s: 80 tokens.
        assert_eq!(audio_tokens(&b64(&[0u8; 8_000]), Some("mp3")), 80);
        assert_eq!(audio_tokens("", None), 1);
    }

    #[test]
    fn pdf_pages_are_counted() {
        let pdf = b"%PDF-1.4\n1 0 obj << /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>\n\
            2 0 obj << /Type /Page /Parent 1 0 R >>\n3 0 obj <</Type/Page/Parent 1 0 R>>\n";
        assert_eq!(count_page_objects(pdf), 2);
        let data = format!("data:application/pdf;base64,{}", b64(pdf));
        assert_eq!(document_tokens(&data, |_| 0), 2 * PDF_PAGE_TOKENS);
        // Page objects hidden in object streams: one page per 3 KB.
        let mut opaque = b"%PDF-1.7\n".to_vec();
        opaque.resize(7_000, b'x');
        assert_eq!(document_tokens(&b64(&opaque), |_| 0), 3 * PDF_PAGE_TOKENS);
    }

    #[test]
    fn text_documents_are_counted_as_text() {
        let data = format!("data:text/plain;base64,{}", b64(b"hello there"));
        assert_eq!(document_tokens(&data, |t| t.len() as u64), 11);
        assert_eq!(document_tokens("not base64!", |t| t.len() as u64), 11);
        assert_eq!(document_tokens(&b64(&[0xff, 0xfe, 0x00, 0x01]), |_| 0), 2);
    }

    #[test]
    fn data_urls() {
        assert_eq!(
            split_data_url("data:image/png;base64,AAAA"),
            (Some("image/png"), "AAAA")
        );
        assert_eq!(split_data_url("AAAA"), (None, "AAAA"));
    }
}
