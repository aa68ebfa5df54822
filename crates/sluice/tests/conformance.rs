//! Gateway API HTTPRoute conformance, run against the real `sluice` binary.
//!
//! Data: the HTTPRoute tests of kubernetes-sigs/gateway-api, extracted into
//! `../shared/gwapi-conformance` (`<test>.yaml` routes, `<test>.cases.json` requests and
//! expectations, `base-manifests.yaml`; see its README). For each test a fresh "cluster" is built
//! (config directory, echo pods standing in for the echo-basic Deployments, EndpointSlices, a TLS
//! Secret, the gateway process — see `conformance/setup.rs`), every case is sent once and
//! compared like the upstream suite's `CompareRequest` (`conformance/check.rs`). All mismatches
//! of a test are collected and reported together, so one run shows everything.
//!
//! One `#[tokio::test]` per conformance test, each on its own loopback IP (`127.0.0.<10+i>`,
//! echo pods on `127.1.<i>.*`), so they run in parallel under nextest or libtest.

#[path = "conformance/check.rs"]
mod check;
#[path = "conformance/model.rs"]
mod model;
#[path = "conformance/setup.rs"]
mod setup;

use model::{Case, CaseFile};
use setup::Cluster;

macro_rules! conformance_tests {
    ($($index:literal $name:ident => $test:literal;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                run($index, $test).await;
            }
        )*

        /// Every conformance test this file runs.
        const ALL_TESTS: &[&str] = &[$($test),*];
    };
}

conformance_tests! {
    0 httproute_303_redirect => "httproute-303-redirect";
    1 httproute_307_redirect => "httproute-307-redirect";
    2 httproute_308_redirect => "httproute-308-redirect";
    3 httproute_backend_request_redirect => "httproute-backend-request-redirect";
    4 httproute_backend_url_rewrite => "httproute-backend-url-rewrite";
    5 httproute_exact_path_matching => "httproute-exact-path-matching";
    6 httproute_header_matching => "httproute-header-matching";
    7 httproute_listener_hostname_matching => "httproute-listener-hostname-matching";
    8 httproute_matching_across_routes => "httproute-matching-across-routes";
    9 httproute_matching => "httproute-matching";
    10 httproute_method_matching => "httproute-method-matching";
    11 httproute_named_rule => "httproute-named-rule";
    12 httproute_path_match_order => "httproute-path-match-order";
    13 httproute_query_param_matching => "httproute-query-param-matching";
    14 httproute_redirect_host_and_status => "httproute-redirect-host-and-status";
    15 httproute_redirect_path => "httproute-redirect-path";
    16 httproute_redirect_port_and_scheme => "httproute-redirect-port-and-scheme";
    17 httproute_redirect_port => "httproute-redirect-port";
    18 httproute_redirect_scheme => "httproute-redirect-scheme";
    19 httproute_request_header_modifier => "httproute-request-header-modifier";
    20 httproute_response_header_modifier => "httproute-response-header-modifier";
    21 httproute_rewrite_host => "httproute-rewrite-host";
    22 httproute_rewrite_path => "httproute-rewrite-path";
    23 httproute_timeout_backend_request => "httproute-timeout-backend-request";
    24 httproute_timeout_request => "httproute-timeout-request";
    25 httproute_weight => "httproute-weight";
}

/// The data directory must not contain tests this file silently skips.
#[test]
fn every_conformance_case_file_has_a_test() {
    let dir = model::data_dir();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".cases.json").map(str::to_owned)
        })
        .collect();
    on_disk.sort();
    let mut covered: Vec<String> = ALL_TESTS.iter().map(|t| (*t).to_owned()).collect();
    covered.sort();
    assert_eq!(
        on_disk, covered,
        "conformance tests on disk vs. tests in conformance.rs"
    );
    let cases: usize = ALL_TESTS
        .iter()
        .map(|t| {
            CaseFile::load(&dir, t)
                .map(|f| f.cases.len())
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .sum();
    eprintln!("{} conformance tests, {cases} cases", ALL_TESTS.len());
}

async fn run(index: u8, test: &str) {
    let file = CaseFile::load(&model::data_dir(), test).unwrap_or_else(|e| panic!("{e}"));
    let cluster = Cluster::start(index, &file)
        .await
        .unwrap_or_else(|e| panic!("{test}: setup failed: {e}"));

    let mut failures = Vec::new();
    match &cluster.config_status {
        Ok(status) if status.ok => {}
        Ok(status) => failures.push(format!("config status not ok: {:?}", status.errors)),
        Err(e) => failures.push(format!("config status unavailable: {e}")),
    }
    for (i, case) in file.cases.iter().enumerate() {
        let prepared = match check::prepare(&cluster, &file, case) {
            Ok(prepared) => prepared,
            Err(e) => {
                failures.push(format!("case #{i}: cannot build request: {e}"));
                continue;
            }
        };
        let errors = check::run_case(&prepared, case).await;
        if !errors.is_empty() {
            failures.push(describe_failure(i, case, &prepared.description, &errors));
        }
    }
    if let (Some(dist), Some(first)) = (&file.distribution, file.cases.first()) {
        match check::prepare(&cluster, &file, first) {
            Ok(prepared) => {
                let errors = check::check_distribution(&prepared, dist).await;
                if !errors.is_empty() {
                    failures.push(describe_failure(0, first, "weighted distribution", &errors));
                }
            }
            Err(e) => failures.push(format!("distribution: cannot build request: {e}")),
        }
    }

    if !failures.is_empty() {
        panic!(
            "{test} ({}): {} failure(s) in {} cases\n{}\n{}",
            file.short_name,
            failures.len(),
            file.cases.len(),
            failures.join("\n"),
            cluster.describe()
        );
    }
}

fn describe_failure(index: usize, case: &Case, description: &str, errors: &[String]) -> String {
    let mut out = format!("  case #{index} (block {}): {description}", case.block);
    for error in errors {
        out.push_str("\n      - ");
        out.push_str(error);
    }
    out
}
