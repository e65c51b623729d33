#!/usr/bin/env bash
# The whole test suite: unit, golden-vector, property and integration tests (Samba's
# ctdbd, ctdb tool and smbd against our nodes, docker-compose clusters). Installs what
# is missing first (scripts/deps.sh). Integration tests run the real binaries, so
# build them first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --workspace --bins
cargo test --workspace --all-targets
