#!/usr/bin/env bash
# A local ctdb-rs cluster: N nodes on 127.0.0.1..N, each with its own CTDB_BASE.
# usage: scripts/cluster.sh start [N] [DIR]   build, start, wait until every node is OK
#        scripts/cluster.sh stop [DIR]        stop every node of DIR
#        scripts/cluster.sh env PNN [DIR]     print the exports that point ctdb at node PNN
# DIR defaults to /tmp/ctdb-rs-cluster, N to 3.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
bin=${CTDB_RS_BIN:-$top/target/release}

cmd=${1:-start}
case "$cmd" in
start)
    n=${2:-3}; dir=${3:-/tmp/ctdb-rs-cluster}
    if [ -z "${CTDB_RS_BIN:-}" ]; then
        bash scripts/deps.sh --build
        cargo build --release --workspace --bins
    fi
    # ctdbd refuses directories others may write to (README "Security defaults").
    umask 022
    mkdir -p -m 0700 "$dir"
    : > "$dir/nodes"
    for i in $(seq 1 "$n"); do echo "127.0.0.$i" >> "$dir/nodes"; done
    for i in $(seq 0 $((n - 1))); do
        b="$dir/node.$i"
        mkdir -p "$b/events"
        cp "$dir/nodes" "$b/nodes"
        cat > "$b/ctdb.conf" <<EOC
[logging]
	location = file:$b/log.ctdb
	log level = NOTICE
[cluster]
	node address = 127.0.0.$((i + 1))
[database]
	volatile database directory = $b/db/volatile
	persistent database directory = $b/db/persistent
	state database directory = $b/db/state
EOC
        CTDB_BASE="$b" CTDB_SOCKET="$b/ctdb.socket" setsid "$bin/ctdbd" </dev/null >"$b/stdout" 2>&1 &
        echo $! > "$b/ctdbd.pid"
    done
    for _ in $(seq 1 60); do
        ok=$(CTDB_BASE="$dir/node.0" CTDB_SOCKET="$dir/node.0/ctdb.socket" "$bin/ctdb" status 2>/dev/null | grep -c ' OK' || true)
        if [ "$ok" -ge "$n" ]; then
            echo "cluster up: $n nodes in $dir"
            for i in $(seq 0 $((n - 1))); do
                echo "  node $i: CTDB_BASE=$dir/node.$i CTDB_SOCKET=$dir/node.$i/ctdb.socket $bin/ctdb status"
            done
            echo "stop it with: bash scripts/cluster.sh stop $dir"
            exit 0
        fi
        sleep 1
    done
    echo "cluster did not become healthy; logs are in $dir/node.*/log.ctdb" >&2
    exit 1
    ;;
stop)
    dir=${2:-/tmp/ctdb-rs-cluster}
    for p in "$dir"/node.*/ctdbd.pid; do
        [ -f "$p" ] || continue
        kill "$(cat "$p")" 2>/dev/null || true
        rm -f "$p"
    done
    ;;
env)
    pnn=${2:?pnn}; dir=${3:-/tmp/ctdb-rs-cluster}
    echo "export CTDB_BASE=$dir/node.$pnn CTDB_SOCKET=$dir/node.$pnn/ctdb.socket"
    ;;
*)
    sed -n '2,6p' "$0" >&2
    exit 2
    ;;
esac
