#!/usr/bin/env bash
# Runs Sluice's whole test suite: formatting, lints, unit and integration tests (against real
# loopback servers), including the Gateway API conformance cases in ../shared/gwapi-conformance.
# Installs what it needs and fails loudly when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }
die() { printf '\nERROR: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs)"

# Debian packages some tests need: openssl (certificates), redis-server (the shared state store:
# managed API keys across replicas). Install only what is missing.
need_debs=()
for pair in "openssl:openssl" "redis-server:redis-server"; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null || need_debs+=("$pkg")
done
if [ ${#need_debs[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_debs[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq || die "apt-get update failed"
  $SUDO apt-get install -y -qq "${need_debs[@]}" || die "could not install ${need_debs[*]}"
fi
command -v redis-server >/dev/null || die "redis-server is still missing after installing it"

conformance="../shared/gwapi-conformance"
[ -f "$conformance/base-manifests.yaml" ] || die "Gateway API conformance data not found at $conformance (the repository expects shared/ beside it)"

say "cargo fmt --check"
cargo fmt --all -- --check || die "code is not formatted: run cargo fmt --all"

say "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

# Doc tests first (nextest does not run them), so the run closes on the main test summary.
say "doc tests"
cargo test --workspace --locked --doc

say "end-to-end tests (the official openai and anthropic Python SDKs against the gateway)"
command -v python3 >/dev/null || die "python3 not found: install Python 3.11+"
python3 -m pip --version >/dev/null 2>&1 || die "pip not found: install python3-pip"
python3 -m pip install --quiet --disable-pip-version-check -r e2e/requirements.txt \
  || die "could not install the Python packages of e2e/requirements.txt"
cargo build -p sluice --locked
SLUICE_BIN="$PWD/target/debug/sluice" python3 -m pytest -q e2e || die "end-to-end tests failed"

say "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  echo "(cargo-nextest not installed; using cargo test)"
  cargo test --workspace --locked --no-fail-fast
fi
