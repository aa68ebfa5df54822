//! Prometheus metrics of the data plane. Label values are shared `Arc<str>` from the IR, so a
//! request clones pointers, not strings.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A label value that is cheap to clone.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Label(pub Arc<str>);

impl Label {
    pub fn none() -> Label {
        Label(Arc::from(""))
    }
}

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(&self.0)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub gateway: Label,
    pub route: Label,
    pub backend: Label,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub gateway: Label,
    pub route: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    pub backend: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0,
    ]
    .into_iter()
}

pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<RouteLabels, Histogram>,
    pub upstream_duration: Family<BackendLabels, Histogram>,
    pub upstream_connect_errors: Family<BackendLabels, Counter>,
    pub active_connections: Gauge,
    pub connections_rejected: Counter,
    pub config_reloads: Family<ResultLabels, Counter>,
    pub config_generation: Gauge,
    pub access_log_dropped: Counter,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("sluice");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by gateway, route, backend and status",
            requests.clone(),
        );
        let request_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        registry.register(
            "request_duration_seconds",
            "Time from request received to response complete",
            request_duration.clone(),
        );
        let upstream_duration = Family::<BackendLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        registry.register(
            "upstream_duration_seconds",
            "Time from sending upstream to upstream response headers",
            upstream_duration.clone(),
        );
        let upstream_connect_errors = Family::<BackendLabels, Counter>::default();
        registry.register(
            "upstream_connect_errors",
            "Failed connection attempts to upstreams",
            upstream_connect_errors.clone(),
        );
        let active_connections = Gauge::default();
        registry.register(
            "active_connections",
            "Open downstream connections",
            active_connections.clone(),
        );
        let connections_rejected = Counter::default();
        registry.register(
            "connections_rejected",
            "Downstream connections closed because the connection limit was reached",
            connections_rejected.clone(),
        );
        let config_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads by result",
            config_reloads.clone(),
        );
        let config_generation = Gauge::default();
        registry.register(
            "config_generation",
            "Generation of the configuration in effect",
            config_generation.clone(),
        );
        let access_log_dropped = Counter::default();
        registry.register(
            "access_log_dropped",
            "Access log lines dropped because the writer could not keep up",
            access_log_dropped.clone(),
        );
        Arc::new(Metrics {
            registry,
            requests,
            request_duration,
            upstream_duration,
            upstream_connect_errors,
            active_connections,
            connections_rejected,
            config_reloads,
            config_generation,
            access_log_dropped,
        })
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
