#!/usr/bin/env bash
# Runs Apiary's test suite: every crate's unit and integration tests through
# cargo-nextest (after the doctests, so nextest's summary closes the run). Installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo test --workspace --locked --doc --quiet
cargo nextest run --workspace --locked --no-fail-fast "$@"
