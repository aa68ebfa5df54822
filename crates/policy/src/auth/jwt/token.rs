//! Taking a JWS compact serialisation (RFC 7515 §7.1) apart, before anything is trusted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Deserializer};

use super::error::JwtError;

/// Tokens longer than this are refused before any decoding. Real access tokens are a few
/// kilobytes at most; the cap bounds the work an attacker can ask for per request.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// A token split into its parts, all base64 decoded; nothing is verified yet.
pub(crate) struct Compact<'a> {
    pub header: Header,
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`: the bytes the signature covers.
    pub signing_input: &'a [u8],
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
}

/// The protected header members this verifier reads. Others are ignored, and in particular
/// keys offered by the token itself (`jwk`, `jku`, `x5u`, `x5c`) are never used: a token must
/// not choose the key that verifies it.
#[derive(Deserialize)]
pub(crate) struct Header {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
    /// Present in any form, even `null`: an extension the issuer marked as must-understand
    /// (RFC 7515 §4.1.11). None is supported, so such a token is refused.
    #[serde(default, deserialize_with = "present")]
    pub crit: bool,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// Splits and decodes `token`. Errors are only structural.
pub(crate) fn split(token: &str) -> Result<Compact<'_>, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::TooLarge);
    }
    const THREE: JwtError = JwtError::Malformed("a JWS compact token has exactly three segments");
    let (signing_input, signature) = token.rsplit_once('.').ok_or(THREE)?;
    let (header, payload) = signing_input.split_once('.').ok_or(THREE)?;
    if payload.contains('.') {
        return Err(THREE);
    }
    let header = decode(header, "header is not base64url")?;
    let payload = decode(payload, "payload is not base64url")?;
    let signature = decode(signature, "signature is not base64url")?;
    // serde_json refuses duplicate `alg`, `kid` or `crit` members, so the header cannot say
    // two things at once.
    let header: Header = serde_json::from_slice(&header)
        .map_err(|_| JwtError::Malformed("header is not a JSON object with a string \"alg\""))?;
    Ok(Compact {
        header,
        signing_input: signing_input.as_bytes(),
        payload,
        signature,
    })
}

/// Strict base64url: no padding, no whitespace, and no stray bits in the last character, so
/// each decoded value has exactly one encoding and tokens cannot be altered without changing
/// what was signed.
///
/// Empty segments decode to nothing: RFC 7515 allows them (an unsecured JWS has an empty
/// signature), and the later stages refuse them with a more precise reason.
fn decode(segment: &str, bad: &'static str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwtError::Malformed(bad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(value: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    fn malformed(token: &str) -> &'static str {
        match split(token) {
            Err(JwtError::Malformed(why)) => why,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("accepted {token}"),
        }
    }

    #[test]
    fn splits_a_well_formed_token() {
        let header = b64(&json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}));
        let payload = b64(&json!({"sub": "a"}));
        let token = format!("{header}.{payload}.AQID");
        let compact = split(&token).unwrap();
        assert_eq!(compact.header.alg, "ES256");
        assert_eq!(compact.header.kid.as_deref(), Some("k1"));
        assert!(!compact.header.crit);
        assert_eq!(
            compact.signing_input,
            format!("{header}.{payload}").as_bytes()
        );
        assert_eq!(compact.payload, br#"{"sub":"a"}"#);
        assert_eq!(compact.signature, [1, 2, 3]);
    }

    #[test]
    fn empty_segments_decode_to_nothing() {
        let h = b64(&json!({"alg": "none"}));
        let token = format!("{h}..");
        let compact = split(&token).unwrap();
        assert!(compact.payload.is_empty() && compact.signature.is_empty());
        assert_eq!(compact.signing_input, format!("{h}.").as_bytes());
        assert_eq!(
            malformed(".e30.AQID"),
            "header is not a JSON object with a string \"alg\""
        );
    }

    #[test]
    fn segment_count_must_be_three() {
        let h = b64(&json!({"alg": "ES256"}));
        for token in [
            String::new(),
            h.clone(),
            format!("{h}.e30"),
            format!("{h}.e30.AQID.AQID"),
            format!("{h}.e30.AQID.AQID.AQID"),
        ] {
            assert_eq!(
                malformed(&token),
                "a JWS compact token has exactly three segments"
            );
        }
    }

    #[test]
    fn base64_must_be_strict_base64url() {
        let h = b64(&json!({"alg": "ES256"}));
        assert_eq!(
            malformed(&format!("{h}.e30=.AQID")),
            "payload is not base64url"
        );
        assert_eq!(
            malformed(&format!("{h}.e30.AQ+D")),
            "signature is not base64url"
        );
        assert_eq!(
            malformed(&format!("{h}.e30.AQ/D")),
            "signature is not base64url"
        );
        assert_eq!(
            malformed(&format!("{h}.e 30.AQID")),
            "payload is not base64url"
        );
        // "AQE" would be canonical for [1, 1]; "AQF" has non-zero trailing bits.
        assert_eq!(
            malformed(&format!("{h}.e30.AQF")),
            "signature is not base64url"
        );
        assert_eq!(
            malformed(&format!("{h}.e30.A")),
            "signature is not base64url"
        );
        assert_eq!(
            malformed(&format!("!{h}.e30.AQID")),
            "header is not base64url"
        );
    }

    #[test]
    fn header_must_be_an_object_with_a_string_alg() {
        for header in [
            json!("ES256"),
            json!({}),
            json!({"alg": 256}),
            json!({"alg": null}),
            json!({"alg": "ES256", "kid": 1}),
        ] {
            let token = format!("{}.e30.AQID", b64(&header));
            assert_eq!(
                malformed(&token),
                "header is not a JSON object with a string \"alg\"",
                "{header}"
            );
        }
        let duplicate = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","alg":"none"}"#);
        assert_eq!(
            malformed(&format!("{duplicate}.e30.AQID")),
            "header is not a JSON object with a string \"alg\""
        );
    }

    #[test]
    fn crit_is_noticed_in_any_form() {
        for crit in [json!(["exp"]), json!([]), json!(null), json!("b64")] {
            let token = format!("{}.e30.AQID", b64(&json!({"alg": "ES256", "crit": crit})));
            assert!(split(&token).unwrap().header.crit, "{crit}");
        }
    }

    #[test]
    fn size_is_capped_before_decoding() {
        let token = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(split(&token).err(), Some(JwtError::TooLarge));
        let h = b64(&json!({"alg": "ES256"}));
        let filler = "A".repeat(MAX_TOKEN_LEN - h.len() - 2 - 4);
        let token = format!("{h}.{filler}.AQID");
        assert_eq!(token.len(), MAX_TOKEN_LEN);
        assert!(split(&token).is_ok());
    }
}
