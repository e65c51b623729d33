#!/usr/bin/env bash
# The whole test suite: unit, golden-vector, property and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets
