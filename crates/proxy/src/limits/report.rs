//! Budgets as the admin server shows them: spend and what remains in the current period.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{json, Value};
use sluice_config::ir::{BudgetAmount, RateLimits};

use super::{budget_bucket, budget_spec, Facts, RateLimiting, Which};

impl RateLimiting {
    /// Every budget of `policies` for the bucket `facts` name (a field a budget does not key
    /// on is ignored), read from the store the policy uses.
    pub async fn budgets(&self, policies: &[Arc<RateLimits>], facts: &Facts<'_>) -> Vec<Value> {
        let now = SystemTime::now();
        let mut out = Vec::new();
        for p in policies {
            for b in &p.budgets {
                let name = budget_bucket(p, b, facts);
                let usd = matches!(b.amount, BudgetAmount::MicroUsd(_));
                let spec = budget_spec(b);
                let which = if p.shared {
                    Which::Shared
                } else {
                    Which::Local
                };
                let read = match self.stores.get(which) {
                    Some(store) => store
                        .spent(&name, &spec, now)
                        .await
                        .map_err(|e| e.to_string()),
                    None => Err("the shared store is unavailable".to_string()),
                };
                let window = spec.period.window(now).ok();
                let amount = |n: u64| if usd { json!(n as f64 / 1e6) } else { json!(n) };
                let mut entry = json!({
                    "policy": &*p.name,
                    "budget": &*b.name,
                    "bucket": name,
                    "unit": if usd { "usd" } else { "tokens" },
                    "period": spec.period.to_string(),
                    "window": window.as_ref().map(|w| w.id.clone()),
                    "resetsAt": window.as_ref().map(|w| sluice_policy::time::format_rfc3339(
                        w.end.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                    )),
                    "limit": amount(spec.limit),
                    "store": which.as_str(),
                    "shadow": b.shadow,
                });
                match read {
                    Ok(u) => {
                        entry["spent"] = amount(u.spent);
                        entry["remaining"] = amount(u.remaining);
                    }
                    Err(e) => entry["error"] = json!(e),
                }
                out.push(entry);
            }
        }
        out
    }
}
