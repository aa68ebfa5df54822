//! `Backend` from the AI Gateway Working Group egress draft (gateway.networking.k8s.io/v1alpha1):
//! an external destination by FQDN or IP, with per-port protocol and TLS origination.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendSpec {
    pub destination: Destination,
    /// Extension hooks of the draft (credential injection etc.); later issues give them meaning.
    #[serde(default)]
    pub extensions: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Destination {
    #[serde(rename = "type")]
    pub kind: DestinationType,
    #[serde(default)]
    pub fqdn: Option<FqdnDestination>,
    #[serde(default)]
    pub ip: Option<IpDestination>,
    #[serde(default)]
    pub ports: Vec<BackendPort>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum DestinationType {
    #[serde(rename = "FQDN")]
    Fqdn,
    #[serde(rename = "IP")]
    Ip,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FqdnDestination {
    pub hostname: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IpDestination {
    pub address: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendPort {
    pub number: u32,
    /// HTTP (HTTP/1.1), HTTP2 (h2 over TLS, h2c in clear), HTTPS or TLS (HTTP over TLS, ALPN
    /// picks h2 or http/1.1).
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub tls: Option<BackendTls>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendTls {
    #[serde(default)]
    pub mode: Option<TlsMode>,
    #[serde(default)]
    pub sni: Option<String>,
    #[serde(default)]
    pub ca_bundle_ref: Option<super::meta::LocalObjectReference>,
    #[serde(default)]
    pub insecure_skip_verify: Option<bool>,
    #[serde(default)]
    pub client_certificate_ref: Option<super::meta::LocalObjectReference>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum TlsMode {
    None,
    Simple,
    Mutual,
}
