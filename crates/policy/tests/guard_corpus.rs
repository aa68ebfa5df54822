//! The guardrail corpus: every case in `tests/guard_corpus/*.jsonl` is scanned, and precision
//! and recall are computed per detector family (pii, secret, injection) over (case, label)
//! pairs. The numbers are printed (`cargo test -p sluice-policy --test guard_corpus --
//! --nocapture`) and held above floors set just under what the detectors measure today, so a
//! regression fails the test. docs/guardrails.md has the table.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use sluice_policy::guard::{Guard, GuardSpec, PiiKind, SecretKind};

#[derive(Deserialize)]
struct Case {
    text: String,
    labels: Vec<String>,
}

#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    tp: usize,
    fp: usize,
    fn_: usize,
}

impl Counts {
    fn precision(&self) -> f64 {
        if self.tp + self.fp == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fp) as f64
        }
    }
    fn recall(&self) -> f64 {
        if self.tp + self.fn_ == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fn_) as f64
        }
    }
}

fn family(label: &str) -> &str {
    label.split(':').next().unwrap_or(label)
}

fn load() -> Vec<(String, Case)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/guard_corpus");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for f in files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
    {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        for (n, line) in std::fs::read_to_string(&f).unwrap().lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let case: Case =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}:{}: {e}", n + 1));
            cases.push((format!("{name}:{}", n + 1), case));
        }
    }
    cases
}

#[test]
fn corpus_precision_and_recall() {
    let guard = Guard::compile(&GuardSpec {
        pii: PiiKind::ALL.to_vec(),
        secrets: SecretKind::ALL.to_vec(),
        injection_threshold: Some(0.5),
        decode: true,
        ..GuardSpec::default()
    })
    .unwrap();
    let cases = load();
    assert!(cases.len() >= 150, "the corpus has {} cases", cases.len());
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    let mut misses = Vec::new();
    for (id, case) in &cases {
        let scan = guard.scan(&case.text);
        let got: BTreeSet<String> = scan.findings.iter().map(|f| f.detector.label()).collect();
        let want: BTreeSet<String> = case.labels.iter().cloned().collect();
        for l in got.union(&want) {
            let c = counts.entry(family(l).to_owned()).or_default();
            match (got.contains(l), want.contains(l)) {
                (true, true) => c.tp += 1,
                (true, false) => {
                    c.fp += 1;
                    misses.push(format!(
                        "FP {id} {l} (score {:.2}): {:?}",
                        scan.injection_score,
                        short(&case.text)
                    ));
                }
                (false, true) => {
                    c.fn_ += 1;
                    misses.push(format!(
                        "FN {id} {l} (score {:.2}): {:?}",
                        scan.injection_score,
                        short(&case.text)
                    ));
                }
                (false, false) => {}
            }
        }
    }
    println!("{} cases", cases.len());
    println!("| family | TP | FP | FN | precision | recall |");
    println!("|---|---|---|---|---|---|");
    for (f, c) in &counts {
        println!(
            "| {f} | {} | {} | {} | {:.3} | {:.3} |",
            c.tp,
            c.fp,
            c.fn_,
            c.precision(),
            c.recall()
        );
    }
    for m in &misses {
        println!("{m}");
    }
    // Floors: just under today's numbers (see docs/guardrails.md), so a regression fails.
    let floor = |f: &str, p: f64, r: f64| {
        let c = counts.get(f).copied().unwrap_or_default();
        assert!(
            c.precision() >= p,
            "{f} precision {:.3} < {p}",
            c.precision()
        );
        assert!(c.recall() >= r, "{f} recall {:.3} < {r}", c.recall());
    };
    floor("pii", 0.99, 0.95);
    floor("secret", 0.99, 0.99);
    floor("injection", 0.98, 0.94);
}

fn short(s: &str) -> String {
    s.chars().take(90).collect()
}
