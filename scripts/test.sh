#!/usr/bin/env bash
# The whole test suite: unit, golden-vector, property and integration tests.
# Integration tests run the real binaries, so build them first.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins
cargo test --workspace --all-targets
