#!/usr/bin/env bash
# Installs what building and testing ctdb-rs needs and a fresh machine lacks (Debian
# packages, as root), and the Python venv of the Samba tests. Quick when all is there.
# `deps.sh --build`: only what building needs (scripts/cluster.sh and node.sh use it).
#   libtdb-dev      the library crates/ctdb-tdb binds: Samba's clients share our TDB files
#   ctdb            Samba's ctdbd and ctdb tool: the reference peer and client
#   samba, smbclient  Samba's smbd clustered on our nodes, the test of everything
#   tdb-tools       tdbtool/tdbdump, another process writing and reading the files
#   python3-venv    target/py: PyPI's smbprotocol, the SMB client of the Samba tests, and
#                   kubernetes-validate, the schemas scripts/validate-k8s.sh checks deploy/k8s with
#   busybox, docker-compose  the image and clusters of the docker-compose tests
#   ethtool         in the image of Samba's ctdbd (deploy/samba-image): 10.interface's monitor
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -f /usr/include/tdb.h ] || need+=(libtdb-dev)
build_only=false
[ "${1:-}" = --build ] && build_only=true
$build_only || {
command -v ctdb >/dev/null 2>&1 && command -v ctdbd >/dev/null 2>&1 || need+=(ctdb)
command -v smbd >/dev/null 2>&1 || need+=(samba)
command -v smbclient >/dev/null 2>&1 || need+=(smbclient)
command -v tdbtool >/dev/null 2>&1 || need+=(tdb-tools)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
command -v busybox >/dev/null 2>&1 || need+=(busybox)
command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 ||
    need+=(docker-compose)
}
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "deps: missing Debian packages: ${need[*]} (install them as root)" >&2
        exit 1
    fi
    echo "== installing ${need[*]} (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

$build_only && exit 0
if ! target/py/bin/python -c "import smbprotocol" >/dev/null 2>&1; then
    echo "== making target/py (Python venv with smbprotocol for the Samba tests)"
    python3 -m venv target/py
    target/py/bin/pip install --quiet smbprotocol
fi
# The pinned kubernetes-validate (the pin lives in validate-k8s.sh).
bash scripts/validate-k8s.sh --install
