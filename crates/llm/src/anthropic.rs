//! Anthropic Messages API ↔ hub. (Being written.)
