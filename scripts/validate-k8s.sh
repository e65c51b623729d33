#!/usr/bin/env bash
# Validates the Kubernetes manifests of deploy/k8s offline, against the API schemas of
# one Kubernetes version (PyPI's kubernetes-validate carries them), strictly: an
# unknown field is an error. See scripts/validate_k8s.py for what is checked.
#
# usage: scripts/validate-k8s.sh            (CTDB_RS_K8S_VERSION picks another version)
#        scripts/validate-k8s.sh --install  only install kubernetes-validate (scripts/deps.sh)
# Exit status: 0 valid, 1 invalid, 2 a prerequisite is missing (Python's venv, or
# kubernetes-validate could not be installed into target/py).
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned: the schemas, and so the verdicts, change with the package.
kv_version=1.37.0
k8s_version=${CTDB_RS_K8S_VERSION:-1.31.0}
venv=target/py

installed() {
    "$venv/bin/python" -c 'import sys, importlib.metadata as m
sys.exit(m.version("kubernetes-validate") != sys.argv[1])' "$kv_version" >/dev/null 2>&1
}

if ! installed; then
    echo "validate-k8s: installing kubernetes-validate==$kv_version into $venv" >&2
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" || {
            echo "validate-k8s: cannot make the venv $venv (python3 -m venv)" >&2
            exit 2
        }
    fi
    "$venv/bin/pip" install --quiet "kubernetes-validate==$kv_version" || {
        echo "validate-k8s: cannot install kubernetes-validate==$kv_version" >&2
        exit 2
    }
fi

[ "${1:-}" = --install ] && exit 0
exec "$venv/bin/python" scripts/validate_k8s.py "$k8s_version"
