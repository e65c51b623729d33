#!/usr/bin/env bash
# The whole test suite: unit, golden-vector, property and integration tests.
# Integration tests run the real binaries, so build them first. The Samba tests drive
# smbd with PyPI's smbprotocol from a venv in target/py, made here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! target/py/bin/python -c "import smbprotocol" >/dev/null 2>&1; then
    echo "== making target/py (Python venv with smbprotocol for the Samba tests)"
    python3 -m venv target/py
    target/py/bin/pip install --quiet smbprotocol
fi
cargo build --workspace --bins
cargo test --workspace --all-targets
