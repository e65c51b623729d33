#!/usr/bin/env bash
# Builds ctdb-rs and runs one node in the foreground, for trying it out as any user:
# client socket /tmp/ctdb.socket, configuration, run dir and data under /tmp/ctdb-rs
# (made 0700; ctdbd refuses it if another user owns it), node 127.0.0.1.
# Without CTDB_BASE, as a system daemon, ctdbd uses Samba's places instead
# (/etc/ctdb, /run/ctdb, /var/lib/ctdb; README "Security defaults").
# Point a client at it with:
#   CTDB_SOCKET=/tmp/ctdb.socket ./target/release/ctdb status   (or Samba's ctdb tool)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh --build
cargo build --release --workspace --bins
umask 022
mkdir -p -m 0700 /tmp/ctdb-rs
export CTDB_BASE=/tmp/ctdb-rs CTDB_SOCKET=/tmp/ctdb.socket
exec ./target/release/ctdbd
