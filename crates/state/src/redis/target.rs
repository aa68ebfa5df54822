//! Turning a Redis URL into connection settings and a description that is safe to log.
//!
//! Operators put passwords in Redis URLs (`redis://:secret@host:6379/0`), and the URL ends up in
//! log lines, `/config/status` and error messages. So the raw URL is never echoed: everything
//! user-visible is rebuilt from the parsed parts, without the credentials.

use ::redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use crate::StoreError;

/// A parsed Redis URL.
pub(crate) struct Target {
    pub(crate) info: ConnectionInfo,
    /// `redis://host:port/db`, without credentials.
    pub(crate) describe: String,
    /// The password, kept only to scrub it from client error messages.
    pub(crate) secret: Option<String>,
}

/// What every URL error says instead of echoing the (possibly secret-bearing) URL.
const URL_SHAPE: &str = "expected redis://[[user]:password@]host[:port][/db]";

pub(crate) fn parse(url: &str) -> Result<Target, StoreError> {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    if matches!(scheme, "rediss" | "valkeys") {
        // This build carries no TLS stack on purpose (see Cargo.toml); say so plainly rather
        // than surfacing the client's feature-flag wording.
        return Err(StoreError::Invalid(format!(
            "{scheme}:// (Redis over TLS) is not supported by this build; use redis://"
        )));
    }
    let info = url
        .into_connection_info()
        .map_err(|e| StoreError::Invalid(format!("bad Redis URL ({e}); {URL_SHAPE}")))?;
    let db = info.redis_settings().db();
    let describe = match info.addr() {
        ConnectionAddr::Tcp(host, port) if host.contains(':') => {
            format!("redis://[{host}]:{port}/{db}")
        }
        ConnectionAddr::Tcp(host, port) => format!("redis://{host}:{port}/{db}"),
        ConnectionAddr::Unix(path) => format!("redis+unix://{}?db={db}", path.display()),
        // Only TLS addresses remain, and those were refused above.
        other => format!("redis://{other}/{db}"),
    };
    let secret = info
        .redis_settings()
        .password()
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    Ok(Target {
        info,
        describe,
        secret,
    })
}

/// `text` with every occurrence of `secret` masked.
pub(crate) fn scrub(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() => text.replace(secret, "***"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe(url: &str) -> String {
        match parse(url) {
            Ok(target) => target.describe,
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn descriptions_never_contain_credentials() {
        assert_eq!(
            describe("redis://127.0.0.1:6390"),
            "redis://127.0.0.1:6390/0"
        );
        assert_eq!(
            describe("redis://:hunter2@cache:7000/3"),
            "redis://cache:7000/3"
        );
        assert_eq!(
            describe("redis://ops:hunter2@cache/1"),
            "redis://cache:6379/1"
        );
        assert_eq!(describe("redis://[::1]:6379"), "redis://[::1]:6379/0");
        assert_eq!(
            describe("redis+unix:///run/redis.sock?db=2&pass=hunter2"),
            "redis+unix:///run/redis.sock?db=2"
        );
    }

    #[test]
    fn the_secret_is_kept_only_for_scrubbing() {
        let target = parse("redis://ops:hunter2@cache:7000").map_err(|e| e.to_string());
        assert_eq!(target.map(|t| t.secret), Ok(Some("hunter2".to_owned())));
        assert_eq!(
            scrub("WRONGPASS for hunter2", Some("hunter2")),
            "WRONGPASS for ***"
        );
        assert_eq!(scrub("no secret here", None), "no secret here");
    }

    #[test]
    fn bad_urls_are_invalid_and_not_echoed() {
        for url in [
            "http://:hunter2@cache:6379",
            "redis://:hunter2@cache:6379/notadb",
            "redis://:hunter2@0.0.0.0:6379",
            "rediss://:hunter2@cache:6379",
            ":hunter2@cache",
        ] {
            match parse(url) {
                Err(StoreError::Invalid(message)) => {
                    assert!(!message.contains("hunter2"), "{url}: {message}")
                }
                Err(other) => panic!("{url}: expected Invalid, got {other}"),
                Ok(target) => panic!("{url}: parsed as {}", target.describe),
            }
        }
    }
}
