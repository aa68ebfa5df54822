//! Which tokenizer, and which image pricing, a model name implies.

use super::Encoding;

/// The encoding of `model` (see the table in the module documentation).
pub fn encoding_for_model(model: &str) -> Encoding {
    let name = base_name(model);
    let is = |prefix: &str| starts_with_ignore_case(name, prefix);
    // A family name alone or followed by `-`/`.`/`:` (`o1` and `o1-mini`, not `o10`).
    let family = |stem: &str| {
        is(stem)
            && matches!(
                name.as_bytes().get(stem.len()),
                None | Some(b'-' | b'.' | b':' | b'_')
            )
    };
    if is("gpt-4o")
        || is("chatgpt-4o")
        || is("gpt-4.1")
        || is("gpt-4.5")
        || is("gpt-5")
        || is("gpt-oss")
        || family("o1")
        || family("o3")
        || family("o4")
    {
        Encoding::O200kBase
    } else if family("gpt-4")
        || is("gpt-3.5")
        || is("gpt-35")
        || is("text-embedding-3")
        || is("text-embedding-ada-002")
        || family("davinci-002")
        || family("babbage-002")
    {
        Encoding::Cl100kBase
    } else {
        Encoding::Approximate
    }
}

/// The model's own name: without routing prefixes (`openai/`, `azure/`, `openrouter/openai/`) or
/// the fine-tune prefix (`ft:gpt-4o-mini-2024-07-18:org::id`).
fn base_name(model: &str) -> &str {
    let name = model.trim();
    let name = name.rsplit('/').next().unwrap_or(name);
    match name.get(..3) {
        Some(p) if p.eq_ignore_ascii_case("ft:") => &name[3..],
        _ => name,
    }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// What one input image costs a model, as a worst case over image sizes (the request carries the
/// image, or only its URL, but decoding it to learn its size is not worth the time here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ImageCost {
    /// `detail: "low"`.
    pub low: u64,
    /// `detail: "high"` or `"auto"` (and any image of a model without a detail setting).
    pub high: u64,
}

/// The most 512-px tiles OpenAI's high-detail rule can produce: the image is scaled to fit
/// 2048 × 2048, then its short side to 768, so a 768 × 2048 image is 2 × 4 tiles.
const MAX_TILES: u64 = 8;

/// The most 32-px patches the patch-based models take (larger images are scaled down).
const MAX_PATCHES: u64 = 1536;

const fn tiles(base: u64, per_tile: u64) -> ImageCost {
    ImageCost {
        low: base,
        high: base + per_tile * MAX_TILES,
    }
}

/// Patch-priced models bill `patches × multiplier` whatever the detail (multiplier in hundredths).
const fn patches(multiplier_pct: u64) -> ImageCost {
    let n = (MAX_PATCHES * multiplier_pct).div_ceil(100);
    ImageCost { low: n, high: n }
}

/// Image costs from OpenAI's vision pricing guide ("Calculating costs"); where the guide and the
/// pricing calculator disagree (gpt-5-mini, gpt-5-nano), the higher multiplier.
pub(super) fn image_cost(model: &str) -> ImageCost {
    let name = base_name(model);
    let is = |prefix: &str| starts_with_ignore_case(name, prefix);
    match encoding_for_model(model) {
        // Claude documents ≈ width × height / 750 tokens, scaled down past ~1,600 (newer models
        // are reported to take ~4,000 for a 12-MP photo); Gemini ~1,100 at high media
        // resolution. One generous figure for all of them.
        Encoding::Approximate => ImageCost {
            low: 4_800,
            high: 4_800,
        },
        _ if is("gpt-4o-mini") => tiles(2_833, 5_667),
        _ if is("gpt-4.1-mini") || is("gpt-5-mini") => patches(162),
        _ if is("gpt-4.1-nano") || is("gpt-5-nano") => patches(246),
        _ if is("o4-mini") => patches(172),
        _ if is("o1") || is("o3") => tiles(75, 150),
        // gpt-4o, gpt-4.1, gpt-4.5, gpt-4-turbo, and the default for the rest.
        _ => tiles(85, 170),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_by_model() {
        use Encoding::*;
        let cases = [
            ("gpt-4o", O200kBase),
            ("gpt-4o-mini-2024-07-18", O200kBase),
            ("chatgpt-4o-latest", O200kBase),
            ("gpt-4.1-nano", O200kBase),
            ("gpt-4.5-preview", O200kBase),
            ("gpt-5", O200kBase),
            ("gpt-5.1-codex", O200kBase),
            ("o1", O200kBase),
            ("o1-mini", O200kBase),
            ("o3-pro-2025-06-10", O200kBase),
            ("o4-mini", O200kBase),
            ("gpt-oss-120b", O200kBase),
            ("openai/gpt-4o", O200kBase),
            ("azure/gpt-4.1", O200kBase),
            ("openrouter/openai/GPT-4O", O200kBase),
            ("ft:gpt-4o-mini-2024-07-18:acme::abc123", O200kBase),
            ("gpt-4", Cl100kBase),
            ("gpt-4-0613", Cl100kBase),
            ("gpt-4-turbo", Cl100kBase),
            ("gpt-4-32k", Cl100kBase),
            ("gpt-3.5-turbo", Cl100kBase),
            ("gpt-35-turbo", Cl100kBase),
            ("text-embedding-3-small", Cl100kBase),
            ("text-embedding-ada-002", Cl100kBase),
            ("davinci-002", Cl100kBase),
            ("claude-sonnet-4-5", Approximate),
            ("anthropic/claude-3-5-haiku-20241022", Approximate),
            ("gemini-2.5-pro", Approximate),
            ("llama-3.1-70b", Approximate),
            ("mistral-large-latest", Approximate),
            ("qwen3-32b", Approximate),
            ("deepseek-chat", Approximate),
            ("mock-1", Approximate),
            ("o10-preview", Approximate),
            ("gpt-40", Approximate),
            ("", Approximate),
        ];
        for (model, want) in cases {
            assert_eq!(encoding_for_model(model), want, "{model}");
        }
    }

    #[test]
    fn image_costs() {
        assert_eq!(image_cost("gpt-4o").high, 1_445);
        assert_eq!(image_cost("gpt-4o").low, 85);
        assert_eq!(image_cost("gpt-4o-mini").high, 2_833 + 8 * 5_667);
        assert_eq!(image_cost("gpt-4.1-mini").low, 2_489);
        assert_eq!(image_cost("o3").high, 1_275);
        assert_eq!(image_cost("claude-opus-4-1").high, 4_800);
    }
}
