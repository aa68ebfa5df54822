//! The extracted conformance data (`<test>.cases.json`), see the data directory's README.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the extracted Gateway API conformance data lives: `$SLUICE_CONFORMANCE_DATA` if set,
/// else `shared/gwapi-conformance` checked out beside the repository.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SLUICE_CONFORMANCE_DATA") {
        return PathBuf::from(dir);
    }
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/gwapi-conformance"
    ))
}

#[derive(Debug, Deserialize)]
pub struct CaseFile {
    pub test: String,
    #[serde(rename = "shortName")]
    pub short_name: String,
    /// Gateways in the order the Go test addresses them; `block` indexes this list. Empty means
    /// the default `same-namespace` gateway.
    #[serde(default)]
    pub gateways: Vec<String>,
    pub manifest: String,
    pub cases: Vec<Case>,
    #[serde(default)]
    pub distribution: Option<Distribution>,
}

impl CaseFile {
    pub fn load(dir: &Path, test: &str) -> Result<Self, String> {
        let path = dir.join(format!("{test}.cases.json"));
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Gateway names this test addresses (default `same-namespace`).
    pub fn target_gateways(&self) -> Vec<String> {
        if self.gateways.is_empty() {
            vec!["same-namespace".to_owned()]
        } else {
            self.gateways.clone()
        }
    }

    /// The gateway a case's block targets.
    pub fn gateway_for_block(&self, block: usize) -> String {
        let gateways = self.target_gateways();
        gateways.get(block).unwrap_or(&gateways[0]).clone()
    }
}

#[derive(Debug, Deserialize)]
pub struct Case {
    #[serde(default)]
    pub block: usize,
    pub request: CaseRequest,
    pub expect: Expect,
}

#[derive(Debug, Deserialize)]
pub struct CaseRequest {
    #[serde(default)]
    pub host: String,
    pub path: String,
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default, rename = "unfollowRedirect")]
    pub unfollow_redirect: bool,
}

impl CaseRequest {
    pub fn method(&self) -> &str {
        if self.method.is_empty() {
            "GET"
        } else {
            &self.method
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Expect {
    #[serde(default = "default_status")]
    pub status: Vec<u16>,
    #[serde(default)]
    pub backend: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default, rename = "backendRequest")]
    pub backend_request: Option<BackendRequest>,
    #[serde(default, rename = "responseHeaders")]
    pub response_headers: BTreeMap<String, String>,
    #[serde(default, rename = "responseAbsentHeaders")]
    pub response_absent_headers: Vec<String>,
    #[serde(default)]
    pub redirect: Option<Redirect>,
    #[serde(default, rename = "_other")]
    pub other: Other,
}

fn default_status() -> Vec<u16> {
    vec![200]
}

#[derive(Debug, Deserialize)]
pub struct BackendRequest {
    pub path: String,
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default, rename = "absentHeaders")]
    pub absent_headers: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct Redirect {
    #[serde(default)]
    pub scheme: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
}

/// Go-literal fields without a dedicated place in the schema.
#[derive(Debug, Default, Deserialize)]
pub struct Other {
    /// Headers the echo backend is asked (via `X-Echo-Set-Header`) to put on its response.
    #[serde(default, rename = "BackendSetResponseHeaders")]
    pub backend_set_response_headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct Distribution {
    #[serde(rename = "expectedWeights")]
    pub expected_weights: BTreeMap<String, f64>,
    #[serde(rename = "totalRequests")]
    pub total_requests: usize,
    #[serde(rename = "concurrentRequests")]
    pub concurrent_requests: usize,
    pub tolerance: f64,
    /// Whole-sample repetitions allowed when the only problem is statistical deviation.
    #[serde(default = "one", rename = "maxRetries")]
    pub max_retries: usize,
}

fn one() -> usize {
    1
}
