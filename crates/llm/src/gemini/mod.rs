//! Google Gemini (Vertex AI and the Gemini API) ↔ hub. (Being written.)
