//! The GenAI metric series an AI exchange reports to, resolved once per combination of labels.
//!
//! Reporting one exchange touches up to eight series of five families. Looking each up by its
//! labels hashes every label string with SipHash under the family's lock and allocates the
//! labels first; that was ~2.5% of an AI request's CPU. Here one fast hash of the borrowed
//! labels finds a [`Series`] whose handles are shared with the families, so `/metrics` shows
//! exactly what lookups by label would (each series appears on first use, as before).
//!
//! The request model comes from the client, so the table is bounded: past [`MAX_SERIES`]
//! combinations it starts over (the families keep every series; only the shortcut is lost).

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError};

use hashbrown::{DefaultHashBuilder, HashTable};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use crate::metrics::{
    AiBackendLabels, AiCostLabels, GenAiLabels, GenAiMetrics, Label, Lazy, TokenLabels,
};

/// Combinations of labels remembered at most.
pub const MAX_SERIES: usize = 4096;

/// The labels of one exchange, borrowed from it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct SeriesKey<'a> {
    pub operation: &'static str,
    pub provider: &'static str,
    pub request_model: &'a str,
    /// Empty when the provider did not name one.
    pub response_model: &'a str,
    pub backend: &'a str,
    /// Empty when the backend has none.
    pub region: &'a str,
}

/// Every series one combination of labels reports to.
pub struct Series {
    operation: &'static str,
    provider: &'static str,
    request_model: Arc<str>,
    response_model: Arc<str>,
    backend: Arc<str>,
    region: Arc<str>,
    pub request_duration: Lazy<GenAiLabels, Histogram>,
    pub time_to_first_token: Lazy<GenAiLabels, Histogram>,
    pub time_per_output_token: Lazy<GenAiLabels, Histogram>,
    pub input_tokens: Lazy<TokenLabels, Histogram>,
    pub output_tokens: Lazy<TokenLabels, Histogram>,
    pub succeeded: Lazy<AiBackendLabels, Counter>,
    pub failed: Lazy<AiBackendLabels, Counter>,
    pub cost_usd: Lazy<AiCostLabels, Counter<f64>>,
}

impl Series {
    fn new(g: &GenAiMetrics, key: SeriesKey<'_>) -> Series {
        let request_model = Label(Arc::from(key.request_model));
        let response_model = Label(Arc::from(key.response_model));
        let backend = Label(Arc::from(key.backend));
        let region = Label(Arc::from(key.region));
        let gen_ai = GenAiLabels {
            gen_ai_operation_name: key.operation,
            gen_ai_provider_name: key.provider,
            gen_ai_request_model: request_model.clone(),
            gen_ai_response_model: response_model.clone(),
        };
        let tokens = |kind| TokenLabels {
            gen_ai_operation_name: key.operation,
            gen_ai_provider_name: key.provider,
            gen_ai_request_model: request_model.clone(),
            gen_ai_response_model: response_model.clone(),
            gen_ai_token_type: kind,
        };
        let outcome = |outcome| AiBackendLabels {
            backend: backend.clone(),
            provider: key.provider,
            region: region.clone(),
            outcome,
        };
        Series {
            operation: key.operation,
            provider: key.provider,
            request_duration: Lazy::new(&g.request_duration, gen_ai.clone()),
            time_to_first_token: Lazy::new(&g.time_to_first_token, gen_ai.clone()),
            time_per_output_token: Lazy::new(&g.time_per_output_token, gen_ai),
            input_tokens: Lazy::new(&g.token_usage, tokens("input")),
            output_tokens: Lazy::new(&g.token_usage, tokens("output")),
            succeeded: Lazy::new(&g.backend_requests, outcome("success")),
            failed: Lazy::new(&g.backend_requests, outcome("failure")),
            cost_usd: Lazy::new(
                &g.cost_usd,
                AiCostLabels {
                    provider: key.provider,
                    model: request_model.clone(),
                    region: region.clone(),
                },
            ),
            request_model: request_model.0,
            response_model: response_model.0,
            backend: backend.0,
            region: region.0,
        }
    }

    fn key(&self) -> SeriesKey<'_> {
        SeriesKey {
            operation: self.operation,
            provider: self.provider,
            request_model: &self.request_model,
            response_model: &self.response_model,
            backend: &self.backend,
            region: &self.region,
        }
    }
}

/// Series by their labels.
#[derive(Default)]
pub struct SeriesCache {
    hasher: DefaultHashBuilder,
    table: Mutex<HashTable<Arc<Series>>>,
}

impl SeriesCache {
    /// The series of `key`, made on first use.
    pub fn get(&self, g: &GenAiMetrics, key: SeriesKey<'_>) -> Arc<Series> {
        let hash = self.hash(&key);
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = table.find(hash, |s| s.key() == key) {
            return found.clone();
        }
        if table.len() >= MAX_SERIES {
            table.clear();
        }
        let series = Arc::new(Series::new(g, key));
        table.insert_unique(hash, series.clone(), |s| self.hash(&s.key()));
        series
    }

    fn hash(&self, key: &SeriesKey<'_>) -> u64 {
        self.hasher.hash_one(key)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn key<'a>(model: &'a str, backend: &'a str) -> SeriesKey<'a> {
        SeriesKey {
            operation: "chat",
            provider: "openai",
            request_model: model,
            response_model: "gpt-4o-2024-08-06",
            backend,
            region: "eu",
        }
    }

    fn series(m: &Metrics, prefix: &str) -> Vec<String> {
        let mut lines: Vec<String> = m
            .encode()
            .lines()
            .filter(|l| l.starts_with(prefix) && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn one_combination_is_resolved_once_and_others_apart() {
        let m = Metrics::new();
        let cache = &m.gen_ai.series;
        let a = cache.get(&m.gen_ai, key("gpt-4o", "ns/openai"));
        assert!(Arc::ptr_eq(
            &a,
            &cache.get(&m.gen_ai, key("gpt-4o", "ns/openai"))
        ));
        let b = cache.get(&m.gen_ai, key("gpt-4o", "ns/azure"));
        let c = cache.get(&m.gen_ai, key("gpt-4o-mini", "ns/openai"));
        assert!(!Arc::ptr_eq(&a, &b) && !Arc::ptr_eq(&a, &c));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn series_show_on_first_use_with_the_labels_a_lookup_would_give() {
        let m = Metrics::new();
        let s = m.gen_ai.series.get(&m.gen_ai, key("gpt-4o", "ns/openai"));
        assert!(series(&m, "sluice_ai_backend_requests").is_empty());
        s.succeeded.get().inc();
        s.output_tokens.get().observe(3.0);
        assert_eq!(
            series(&m, "sluice_ai_backend_requests"),
            [
                r#"sluice_ai_backend_requests_total{backend="ns/openai",provider="openai",region="eu",outcome="success"} 1"#
            ]
        );
        // The same histogram as a lookup by labels finds.
        let looked_up = m.gen_ai.token_usage.get_or_create(&TokenLabels {
            gen_ai_operation_name: "chat",
            gen_ai_provider_name: "openai",
            gen_ai_request_model: Label(Arc::from("gpt-4o")),
            gen_ai_response_model: Label(Arc::from("gpt-4o-2024-08-06")),
            gen_ai_token_type: "output",
        });
        looked_up.observe(5.0);
        let sums = series(&m, "gen_ai_client_token_usage_sum");
        assert_eq!(sums.len(), 1, "{sums:?}");
        assert!(sums[0].ends_with(" 8.0"), "{sums:?}");
        assert!(series(&m, "gen_ai_server_time_to_first_token").is_empty());
    }

    #[test]
    fn the_table_is_bounded() {
        let m = Metrics::new();
        let models: Vec<String> = (0..=MAX_SERIES).map(|i| format!("m{i}")).collect();
        for model in &models {
            m.gen_ai.series.get(&m.gen_ai, key(model, "b"));
        }
        assert!(m.gen_ai.series.len() <= MAX_SERIES);
        // Still correct after starting over.
        let again = m.gen_ai.series.get(&m.gen_ai, key("m0", "b"));
        assert_eq!(&*again.request_model, "m0");
    }
}
