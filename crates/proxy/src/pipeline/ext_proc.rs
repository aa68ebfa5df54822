//! TEMPORARY: the ExtProcess processor lands with the `extproc` branch (Envoy ext_proc v3 client).

use sluice_config::ir::ExtProcess;

use super::body::BodyBuf;
use super::{Failure, RequestPayload, Verdict};

/// One gRPC channel per external processor, kept across reloads.
#[derive(Default)]
pub struct ExtProcChannels {}

impl ExtProcChannels {
    pub async fn on_request(
        &self,
        _e: &ExtProcess,
        _name: &str,
        _req: &mut RequestPayload<'_>,
    ) -> Result<Verdict, Failure> {
        Err(Failure::Unavailable("ext_proc is not built yet".into()))
    }

    pub async fn on_response(
        &self,
        _e: &ExtProcess,
        _name: &str,
        _request: &serde_json::Value,
        _parts: &mut http::response::Parts,
        _body: Option<&mut BodyBuf>,
    ) -> Result<Verdict, Failure> {
        Err(Failure::Unavailable("ext_proc is not built yet".into()))
    }
}
