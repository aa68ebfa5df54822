//! Media in hub messages (image URLs, audio, files) → Gemini `inlineData` / `fileData` parts.

use serde_json::{json, Value};

use crate::TranslateError;

/// The Gemini part for a media URL: a base64 `data:` URL is sent inline; an `http(s)://` or
/// `gs://` URL is sent by reference, with a media type guessed from its extension because Gemini
/// requires one.
pub(crate) fn url_part(url: &str) -> Result<Value, TranslateError> {
    if url.starts_with("data:") {
        let (mime_type, data) = parse_data_url(url)?;
        return Ok(inline_part(mime_type, data));
    }
    let scheme_ok = ["https://", "http://", "gs://"].iter().any(|s| {
        url.len() > s.len()
            && url
                .get(..s.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(s))
    });
    if !scheme_ok {
        return Err(TranslateError::Unsupported(
            "media URLs other than data:, http(s):// and gs://".to_string(),
        ));
    }
    let mime_type = guess_mime_type(url).ok_or_else(|| {
        TranslateError::Unsupported(
            "a media URL whose file extension does not tell its media type".to_string(),
        )
    })?;
    Ok(json!({"fileData": {"mimeType": mime_type, "fileUri": url}}))
}

pub(crate) fn inline_part(mime_type: &str, base64_data: &str) -> Value {
    json!({"inlineData": {"mimeType": mime_type, "data": base64_data}})
}

/// `data:<media type>[;params];base64,<data>` → (media type, base64 data). Gemini wants base64,
/// so a percent-encoded (non-base64) data URL is not supported.
pub(crate) fn parse_data_url(url: &str) -> Result<(&str, &str), TranslateError> {
    let rest = url.strip_prefix("data:").unwrap_or(url);
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| TranslateError::Request("data URL without a comma".to_string()))?;
    let Some(meta) = meta.strip_suffix(";base64") else {
        return Err(TranslateError::Unsupported(
            "data URLs that are not base64".to_string(),
        ));
    };
    let mime_type = meta.split(';').next().unwrap_or_default();
    if mime_type.is_empty() {
        return Err(TranslateError::Request(
            "data URL without a media type".to_string(),
        ));
    }
    Ok((mime_type, data))
}

/// The media type of a URL's file, by extension (query and fragment ignored); only types Gemini
/// takes as input.
pub(crate) fn guess_mime_type(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let file = path.rsplit('/').next().unwrap_or(path);
    let (_, ext) = file.rsplit_once('.')?;
    let mime = match ext.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "aac" => "audio/aac",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        "mpeg" | "mpg" => "video/mpeg",
        "mov" => "video/mov",
        "webm" => "video/webm",
        _ => return None,
    };
    Some(mime)
}

/// An OpenAI `input_audio` part (`{data, format: wav|mp3}`) → inline audio.
pub(crate) fn audio_part(audio: &Value) -> Result<Value, TranslateError> {
    let data = audio
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::Request("input_audio without data".to_string()))?;
    let mime_type = match audio.get("format").and_then(Value::as_str) {
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mp3",
        other => {
            return Err(TranslateError::Unsupported(format!(
                "input_audio format {}",
                other.unwrap_or("(none)")
            )))
        }
    };
    Ok(inline_part(mime_type, data))
}

/// An OpenAI `file` part: inline `file_data` (a data URL) is sent inline; an uploaded `file_id`
/// lives in OpenAI's storage, which Gemini cannot reach.
pub(crate) fn file_part(file: &Value) -> Result<Value, TranslateError> {
    match file.get("file_data").and_then(Value::as_str) {
        Some(url) => {
            let (mime_type, data) = parse_data_url(url)?;
            Ok(inline_part(mime_type, data))
        }
        None => Err(TranslateError::Unsupported(
            "file parts without inline file_data".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_go_inline() {
        assert_eq!(
            url_part("data:image/png;base64,iVBORw0KGgo=").unwrap(),
            json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}})
        );
        assert_eq!(
            parse_data_url("data:image/jpeg;name=x.jpg;base64,AAAA").unwrap(),
            ("image/jpeg", "AAAA")
        );
        assert!(matches!(
            url_part("data:text/plain,hello%20world"),
            Err(TranslateError::Unsupported(_))
        ));
        assert!(matches!(
            url_part("data:;base64,AAAA"),
            Err(TranslateError::Request(_))
        ));
        assert!(matches!(
            url_part("data:image/png;base64"),
            Err(TranslateError::Request(_))
        ));
    }

    #[test]
    fn remote_urls_go_by_reference() {
        assert_eq!(
            url_part("https://example.com/cats/Tabby.JPG?size=large#top").unwrap(),
            json!({"fileData": {"mimeType": "image/jpeg",
                                "fileUri": "https://example.com/cats/Tabby.JPG?size=large#top"}})
        );
        assert_eq!(
            url_part("gs://bucket/report.pdf").unwrap(),
            json!({"fileData": {"mimeType": "application/pdf", "fileUri": "gs://bucket/report.pdf"}})
        );
        // No extension, or one in the query only: the type cannot be told.
        for url in [
            "https://example.com/image",
            "https://example.com/get?f=a.png",
        ] {
            assert!(
                matches!(url_part(url), Err(TranslateError::Unsupported(_))),
                "{url}"
            );
        }
        assert!(matches!(
            url_part("ftp://x/a.png"),
            Err(TranslateError::Unsupported(_))
        ));
        assert!(matches!(
            url_part("https://"),
            Err(TranslateError::Unsupported(_))
        ));
    }

    #[test]
    fn audio_and_files() {
        assert_eq!(
            audio_part(&json!({"data": "UklGR", "format": "wav"})).unwrap(),
            json!({"inlineData": {"mimeType": "audio/wav", "data": "UklGR"}})
        );
        assert!(audio_part(&json!({"data": "x", "format": "opus"})).is_err());
        assert_eq!(
            file_part(
                &json!({"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="})
            )
            .unwrap(),
            json!({"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}})
        );
        assert!(matches!(
            file_part(&json!({"file_id": "file-abc"})),
            Err(TranslateError::Unsupported(_))
        ));
    }
}
