//! The access log: one JSON line per request. Records travel over a bounded channel to a writer
//! thread, so the request path never blocks on (or serialises for) the log; when the writer
//! falls behind, lines are dropped and counted rather than slowing traffic.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub enum Destination {
    Off,
    Stdout,
    File(PathBuf),
}

impl std::str::FromStr for Destination {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "off" => Destination::Off,
            "stdout" | "-" => Destination::Stdout,
            path => Destination::File(PathBuf::from(path)),
        })
    }
}

/// One request, as logged.
#[derive(Debug, Serialize)]
pub struct Record {
    #[serde(serialize_with = "rfc3339")]
    pub time: SystemTime,
    pub request_id: String,
    pub method: String,
    pub host: String,
    pub path: String,
    pub protocol: &'static str,
    pub status: u16,
    pub gateway: Arc<str>,
    pub listener: Arc<str>,
    pub route: Arc<str>,
    pub backend: Arc<str>,
    pub upstream_address: Option<Arc<str>>,
    pub duration_ms: f64,
    pub upstream_duration_ms: Option<f64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub client_address: SocketAddr,
    /// Why the gateway answered itself (no route, invalid backend, timeout, ...), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// False when the response body did not complete (client gone, upstream reset).
    pub complete: bool,
    /// Who called, when an access policy authenticated them. Never the credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityRecord>,
    /// Inference facts, for requests that took the AI path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ai: Option<AiRecord>,
}

/// The caller's identity as the access log shows it.
#[derive(Debug, Serialize)]
pub struct IdentityRecord {
    pub method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Arc<str>>,
}

impl IdentityRecord {
    pub fn of(id: &sluice_policy::auth::Identity) -> IdentityRecord {
        IdentityRecord {
            method: id.method.as_str(),
            key_id: id.key_id.clone(),
            tenant: id.tenant.clone(),
            user: id.user.clone(),
        }
    }
}

/// What an AI request used and where it was served. Never holds credentials or content.
#[derive(Debug, Serialize)]
pub struct AiRecord {
    pub operation: &'static str,
    pub provider: &'static str,
    pub backend: Option<Arc<str>>,
    pub region: Option<Arc<str>>,
    pub request_model: String,
    pub response_model: Option<String>,
    pub stream: bool,
    pub attempts: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_creation_tokens: u64,
    pub reasoning_tokens: u64,
    pub total_tokens: u64,
    pub cost_usd: Option<f64>,
    pub time_to_first_token_ms: Option<f64>,
    pub gateway_overhead_ms: f64,
    pub completed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone)]
pub struct AccessLog {
    tx: Option<SyncSender<Record>>,
    metrics: Arc<Metrics>,
}

impl AccessLog {
    pub fn start(dest: Destination, metrics: Arc<Metrics>) -> std::io::Result<AccessLog> {
        let mut out: Box<dyn Write + Send> = match dest {
            Destination::Off => return Ok(AccessLog { tx: None, metrics }),
            Destination::Stdout => Box::new(std::io::stdout()),
            Destination::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (tx, rx) = sync_channel::<Record>(16 * 1024);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut buf = Vec::with_capacity(64 * 1024);
                while let Ok(first) = rx.recv() {
                    write_line(&mut buf, &first);
                    // Batch whatever else is queued into one write.
                    while let Ok(next) = rx.try_recv() {
                        write_line(&mut buf, &next);
                        if buf.len() > 60 * 1024 {
                            break;
                        }
                    }
                    let _ = out.write_all(&buf).and_then(|_| out.flush());
                    buf.clear();
                }
            })?;
        Ok(AccessLog {
            tx: Some(tx),
            metrics,
        })
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn log(&self, record: Record) {
        if let Some(tx) = &self.tx {
            if let Err(TrySendError::Full(_)) = tx.try_send(record) {
                self.metrics.access_log_dropped.inc();
            }
        }
    }
}

fn write_line(buf: &mut Vec<u8>, r: &Record) {
    if serde_json::to_writer(&mut *buf, r).is_ok() {
        buf.push(b'\n');
    }
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_rfc3339(*t))
}

/// `2026-11-22T00:49:55.123Z`, without a date library.
pub fn format_rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_timestamps() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_308_595_123);
        assert_eq!(format_rfc3339(t), "2026-11-22T00:49:55.123Z");
        assert_eq!(format_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(format_rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }
}
