//! Vertex AI credentials from a service-account key: the OAuth 2.0 JWT bearer grant (RFC 7523) as
//! Google documents it for service accounts. The caller signs an assertion with
//! [`jwt_assertion`], POSTs [`token_request_body`] to the account's `token_uri` as
//! `application/x-www-form-urlencoded`, and reads the access token with
//! [`parse_token_response`]; it sends that token as `Authorization: Bearer …` until shortly before
//! it expires, then repeats. Nothing here does I/O.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde_json::{json, Value};

use crate::Secret;

/// OAuth scope that covers Vertex AI.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Where Google's tokens come from, for key files that do not say.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// How long an assertion is valid: Google accepts at most one hour.
const ASSERTION_LIFETIME_SECS: u64 = 3600;

/// Token lifetime assumed when the token endpoint omits `expires_in` (RFC 6749 makes it optional;
/// Google's tokens last an hour).
const DEFAULT_EXPIRES_IN_SECS: u64 = 3600;

/// What can go wrong getting a token. No variant ever holds key material, an assertion or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("invalid service account key file: {0}")]
    KeyFile(String),
    #[error("invalid service account private key: {0}")]
    PrivateKey(String),
    #[error("could not sign the token assertion")]
    Signing,
    #[error("token request refused: {0}")]
    Refused(String),
    #[error("invalid token response: {0}")]
    TokenResponse(String),
}

/// The parts of a service-account JSON key file that the token exchange needs. `Debug` shows
/// everything but the private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub client_email: String,
    pub private_key: Secret,
    pub private_key_id: Option<String>,
    pub token_uri: String,
}

impl ServiceAccount {
    /// Reads a key file as the Cloud console downloads it (`"type": "service_account"`).
    ///
    /// The JSON is walked by hand rather than deserialised so that no parse error can quote a
    /// field's value (the private key among them) back into a log.
    pub fn from_json(json: &str) -> Result<ServiceAccount, AuthError> {
        let v: Value = serde_json::from_str(json)
            .map_err(|_| AuthError::KeyFile("not a JSON object".to_string()))?;
        if !v.is_object() {
            return Err(AuthError::KeyFile("not a JSON object".to_string()));
        }
        match v.get("type").and_then(Value::as_str) {
            Some("service_account") => {}
            Some(other) => {
                return Err(AuthError::KeyFile(format!(
                    "type is {other:?}, expected \"service_account\""
                )))
            }
            None => return Err(AuthError::KeyFile("no \"type\"".to_string())),
        }
        let private_key = required_str(&v, "private_key")?;
        Ok(ServiceAccount {
            client_email: required_str(&v, "client_email")?.to_string(),
            private_key: Secret::new(private_key),
            private_key_id: optional_str(&v, "private_key_id").map(str::to_string),
            token_uri: optional_str(&v, "token_uri")
                .unwrap_or(DEFAULT_TOKEN_URI)
                .to_string(),
        })
    }
}

fn required_str<'a>(v: &'a Value, key: &str) -> Result<&'a str, AuthError> {
    optional_str(v, key).ok_or_else(|| AuthError::KeyFile(format!("no {key:?} string")))
}

/// A non-empty string field.
fn optional_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A signed JWT asserting the service account's identity, for the token endpoint: RS256 over
/// `{iss, scope, aud: token_uri, iat, exp}`, valid for an hour from `now_unix`.
pub fn jwt_assertion(sa: &ServiceAccount, scope: &str, now_unix: u64) -> Result<String, AuthError> {
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = &sa.private_key_id {
        // The key id lets Google pick the right public key without trying each of the account's.
        header["kid"] = json!(kid);
    }
    let claims = json!({
        "iss": sa.client_email,
        "scope": scope,
        "aud": sa.token_uri,
        "iat": now_unix,
        "exp": now_unix + ASSERTION_LIFETIME_SECS,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = key_pair(&sa.private_key)?;
    let signature = sign(&key, signing_input.as_bytes())?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

fn sign(key: &RsaKeyPair, message: &[u8]) -> Result<Vec<u8>, AuthError> {
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        message,
        &mut signature,
    )
    .map_err(|_| AuthError::Signing)?;
    Ok(signature)
}

/// The RSA key of a PEM private key: PKCS#8 (`PRIVATE KEY`, what Google issues) or PKCS#1
/// (`RSA PRIVATE KEY`).
fn key_pair(pem: &Secret) -> Result<RsaKeyPair, AuthError> {
    // A key pasted through an environment variable or a YAML string often keeps its JSON escapes
    // as a literal backslash-n; a real PEM never contains a backslash, so undoing them is safe.
    let pem = pem.expose().replace("\\n", "\n");
    if let Some(der) = pem_block(&pem, "PRIVATE KEY")? {
        return RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| AuthError::PrivateKey(format!("not an RSA PKCS#8 key ({e})")));
    }
    if let Some(der) = pem_block(&pem, "RSA PRIVATE KEY")? {
        return RsaKeyPair::from_der(&der)
            .map_err(|e| AuthError::PrivateKey(format!("not an RSA PKCS#1 key ({e})")));
    }
    Err(AuthError::PrivateKey(
        "no \"-----BEGIN PRIVATE KEY-----\" block".to_string(),
    ))
}

/// The DER bytes of the first PEM block with this label, if there is one.
fn pem_block(pem: &str, label: &str) -> Result<Option<Vec<u8>>, AuthError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let Some(start) = pem.find(&begin).map(|i| i + begin.len()) else {
        return Ok(None);
    };
    let Some(len) = pem[start..].find(&end) else {
        return Err(AuthError::PrivateKey(format!("no \"{end}\"")));
    };
    let body: String = pem[start..start + len]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(body)
        .map(Some)
        .map_err(|_| AuthError::PrivateKey("PEM body is not base64".to_string()))
}

/// The form body that trades an assertion for an access token. The grant type is
/// percent-encoded; a JWT is base64url and dots, which need no encoding, but it goes through the
/// same encoder so that nothing else could break the form.
pub fn token_request_body(assertion: &str) -> String {
    format!(
        "grant_type={}&assertion={}",
        form_encode("urn:ietf:params:oauth:grant-type:jwt-bearer"),
        form_encode(assertion)
    )
}

/// `application/x-www-form-urlencoded` for a value: unreserved characters stay, the rest is `%XX`.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The access token and its lifetime in seconds from a token endpoint's response body, or the
/// endpoint's own error (`{"error", "error_description"}`, RFC 6749 §5.2).
pub fn parse_token_response(body: &[u8]) -> Result<(Secret, u64), AuthError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| AuthError::TokenResponse("body is not JSON".to_string()))?;
    if let Some(error) = v.get("error") {
        return Err(AuthError::Refused(oauth_error_text(error, &v)));
    }
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AuthError::TokenResponse("no access_token".to_string()))?;
    let expires_in = v
        .get("expires_in")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_EXPIRES_IN_SECS);
    Ok((Secret::new(token), expires_in))
}

/// `error_description` when there is one (it says what is wrong: "Invalid JWT Signature."),
/// with the error code in front; Google's other APIs put `{code, message, status}` in `error`.
fn oauth_error_text(error: &Value, body: &Value) -> String {
    let code = match error {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("error")
            .to_string(),
        other => other.to_string(),
    };
    match body.get("error_description").and_then(Value::as_str) {
        Some(description) => format!("{code}: {description}"),
        None => code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{KeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

    const KEY_PEM: &str = include_str!("testdata/test_sa_key.pem");
    const PUBLIC_RSA_DER: &[u8] = include_bytes!("testdata/test_sa_public_rsa.der");

    fn key_file(private_key: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": "sluice-test",
            "private_key_id": "0123456789abcdef",
            "private_key": private_key,
            "client_email": "gateway@sluice-test.iam.gserviceaccount.com",
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token",
        })
        .to_string()
    }

    fn account() -> ServiceAccount {
        ServiceAccount::from_json(&key_file(KEY_PEM)).unwrap()
    }

    fn decode_json(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn key_file_is_parsed() {
        let sa = account();
        assert_eq!(
            sa.client_email,
            "gateway@sluice-test.iam.gserviceaccount.com"
        );
        assert_eq!(sa.private_key_id.as_deref(), Some("0123456789abcdef"));
        assert_eq!(sa.token_uri, "https://oauth2.googleapis.com/token");
        assert_eq!(sa.private_key.expose(), KEY_PEM);
        // The file itself holds the key with JSON escapes; serde turned them into newlines.
        assert!(key_file(KEY_PEM).contains("\\n"));
        assert!(sa.private_key.expose().contains('\n'));
    }

    #[test]
    fn debug_hides_the_private_key() {
        let shown = format!("{:?}", account());
        assert!(shown.contains("Secret(***)"));
        assert!(!shown.contains("PRIVATE KEY"));
        assert!(shown.contains("gateway@sluice-test"));
    }

    #[test]
    fn key_file_errors() {
        let err = |json: &str| ServiceAccount::from_json(json).unwrap_err();
        assert!(matches!(err("not json"), AuthError::KeyFile(_)));
        assert!(matches!(err("[]"), AuthError::KeyFile(_)));
        let user_creds = json!({"type": "authorized_user", "client_id": "x"}).to_string();
        assert_eq!(
            err(&user_creds),
            AuthError::KeyFile("type is \"authorized_user\", expected \"service_account\"".into())
        );
        let no_key = json!({"type": "service_account", "client_email": "a@b"}).to_string();
        assert_eq!(
            err(&no_key),
            AuthError::KeyFile("no \"private_key\" string".into())
        );
        // A wrongly typed field is reported by name, never by value.
        let bad = json!({"type": "service_account", "client_email": "a@b",
                         "private_key": ["-----BEGIN PRIVATE KEY-----secret"]})
        .to_string();
        assert!(!err(&bad).to_string().contains("secret"));
    }

    #[test]
    fn token_uri_defaults() {
        let json = json!({"type": "service_account", "client_email": "a@b", "private_key": "k"});
        let sa = ServiceAccount::from_json(&json.to_string()).unwrap();
        assert_eq!(sa.token_uri, DEFAULT_TOKEN_URI);
        assert_eq!(sa.private_key_id, None);
    }

    #[test]
    fn assertion_is_signed_rs256_and_verifies() {
        let now = 1_750_000_000;
        let jwt = jwt_assertion(&account(), CLOUD_PLATFORM_SCOPE, now).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(!jwt.contains('='), "base64url without padding");

        assert_eq!(
            decode_json(parts[0]),
            json!({"alg": "RS256", "typ": "JWT", "kid": "0123456789abcdef"})
        );
        assert_eq!(
            decode_json(parts[1]),
            json!({
                "iss": "gateway@sluice-test.iam.gserviceaccount.com",
                "scope": "https://www.googleapis.com/auth/cloud-platform",
                "aud": "https://oauth2.googleapis.com/token",
                "iat": now,
                "exp": now + 3600,
            })
        );

        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert_eq!(signature.len(), 256, "2048-bit key");
        let signed = format!("{}.{}", parts[0], parts[1]);
        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, PUBLIC_RSA_DER);
        public.verify(signed.as_bytes(), &signature).unwrap();
        // A changed claim no longer verifies.
        let tampered = format!("{}.{}", parts[0], parts[0]);
        assert!(public.verify(tampered.as_bytes(), &signature).is_err());
    }

    #[test]
    fn committed_public_key_matches_the_private_key() {
        let key = key_pair(&Secret::new(KEY_PEM)).unwrap();
        assert_eq!(key.public_key().as_ref(), PUBLIC_RSA_DER);
    }

    #[test]
    fn header_has_no_kid_without_a_key_id() {
        let mut sa = account();
        sa.private_key_id = None;
        let jwt = jwt_assertion(&sa, CLOUD_PLATFORM_SCOPE, 0).unwrap();
        let header = jwt.split('.').next().unwrap();
        assert_eq!(decode_json(header), json!({"alg": "RS256", "typ": "JWT"}));
    }

    #[test]
    fn escaped_and_reflowed_keys_are_accepted() {
        // Literal backslash-n, as when the key file's string is pasted into an env variable.
        let escaped = KEY_PEM.replace('\n', "\\n");
        let mut sa = account();
        sa.private_key = Secret::new(escaped);
        jwt_assertion(&sa, CLOUD_PLATFORM_SCOPE, 0).unwrap();
        // CRLF line ends and surrounding text.
        sa.private_key = Secret::new(format!("\r\n{}\r\n", KEY_PEM.replace('\n', "\r\n")));
        jwt_assertion(&sa, CLOUD_PLATFORM_SCOPE, 0).unwrap();
    }

    #[test]
    fn bad_private_keys() {
        let mut sa = account();
        let mut err = |key: &str| {
            sa.private_key = Secret::new(key);
            jwt_assertion(&sa, CLOUD_PLATFORM_SCOPE, 0).unwrap_err()
        };
        assert!(matches!(err("not a key"), AuthError::PrivateKey(_)));
        assert!(matches!(
            err("-----BEGIN PRIVATE KEY-----\nAAAA"),
            AuthError::PrivateKey(_)
        ));
        assert!(matches!(
            err("-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----"),
            AuthError::PrivateKey(_)
        ));
        assert!(matches!(
            err("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"),
            AuthError::PrivateKey(_)
        ));
    }

    #[test]
    fn token_request_body_is_form_encoded() {
        assert_eq!(
            token_request_body("aGVhZGVy.Y2xhaW1z.c2ln-_"),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=aGVhZGVy.Y2xhaW1z.c2ln-_"
        );
        assert_eq!(form_encode("a+b/c= d"), "a%2Bb%2Fc%3D%20d");
    }

    #[test]
    fn token_response_is_parsed() {
        let body = br#"{"access_token":"ya29.c.token","expires_in":3599,"token_type":"Bearer"}"#;
        let (token, expires_in) = parse_token_response(body).unwrap();
        assert_eq!(token.expose(), "ya29.c.token");
        assert_eq!(expires_in, 3599);
        let (_, expires_in) = parse_token_response(br#"{"access_token":"t"}"#).unwrap();
        assert_eq!(expires_in, 3600);
    }

    #[test]
    fn token_errors() {
        let body = br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#;
        assert_eq!(
            parse_token_response(body).unwrap_err(),
            AuthError::Refused("invalid_grant: Invalid JWT Signature.".into())
        );
        assert_eq!(
            parse_token_response(br#"{"error":"invalid_scope"}"#).unwrap_err(),
            AuthError::Refused("invalid_scope".into())
        );
        assert!(matches!(
            parse_token_response(b"<html>502</html>").unwrap_err(),
            AuthError::TokenResponse(_)
        ));
        assert!(matches!(
            parse_token_response(br#"{"token_type":"Bearer"}"#).unwrap_err(),
            AuthError::TokenResponse(_)
        ));
    }
}
