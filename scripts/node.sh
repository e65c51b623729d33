#!/usr/bin/env bash
# Builds ctdb-rs and runs one node in the foreground with the built-in defaults:
# client socket /tmp/ctdb.socket, data under /tmp/ctdb-rs, node 127.0.0.1.
# Point a client at it with:  ./target/release/ctdb status   (or Samba's ctdb tool)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh --build
cargo build --release --workspace --bins
exec ./target/release/ctdbd
