#!/usr/bin/env bash
# Builds the ctdb-rs container image without pulling anything: a root filesystem made
# here from the workspace's binaries, the shared libraries they load (found with ldd),
# busybox for /bin/sh and the tools of event scripts, /etc/passwd and /tmp, then
# `docker import` (which needs no registry and no builder).
#
# usage: deploy/build-image.sh [--build] [--release] [--bin-dir DIR] [--tag TAG] [--no-strip]
#                              [--iidfile FILE]
#   --build      run `cargo build --workspace --bins` (with --release: the release profile) first
#   --release    take the binaries from target/release (default: target/debug)
#   --bin-dir    take the binaries from DIR instead
#   --tag        image name (default: $CTDB_RS_IMAGE, else ctdb-rs:dev)
#   --no-strip   keep debug information (the debug binaries are ~80 MB each with it)
#   --iidfile    write the image's id to FILE (what tests start containers from: a tag
#                can move when another build runs at the same time)
#
# Idempotent: the image carries a label with the checksum of its root filesystem, and an
# image whose label matches is kept as it is. Runs of this script are serialised by a
# lock file, so tests that build at the same time do not race.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
tag=${CTDB_RS_IMAGE:-ctdb-rs:dev}
profile=debug
bin_dir=
build=0
strip=1
iidfile=

die() {
    echo "build-image: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --build) build=1 ;;
    --release) profile=release ;;
    --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift ;;
    --tag) tag=${2:?--tag needs a name}; shift ;;
    --no-strip) strip=0 ;;
    --iidfile) iidfile=${2:?--iidfile needs a file}; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

binaries="ctdbd ctdb-transport ctdb-db ctdb-recoverd ctdb-eventd ctdb"

if [ "$build" = 1 ]; then
    if [ "$profile" = release ]; then
        (cd "$top" && cargo build --release --workspace --bins)
    else
        (cd "$top" && cargo build --workspace --bins)
    fi
fi
if [ -z "$bin_dir" ]; then
    bin_dir=${CARGO_TARGET_DIR:-$top/target}/$profile
fi
for b in $binaries; do
    [ -x "$bin_dir/$b" ] || die "$bin_dir/$b is missing: build it first (cargo build --workspace --bins, or pass --build)"
done
command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the docker daemon is not reachable (docker info fails)"
command -v ldd >/dev/null || die "ldd is needed to find the binaries' shared libraries"

# One build at a time on this machine (same tag or not: it is cheap).
exec 9>"${TMPDIR:-/tmp}/ctdb-rs-build-image.lock"
flock 9

work=$(mktemp -d "${TMPDIR:-/tmp}/ctdb-rs-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,usr/bin,etc/ctdb/events/legacy,tmp,run/ctdb,var/lib/ctdb,root,proc,sys,dev}
chmod 1777 "$root/tmp"
# The run directory and the databases' directory belong to the user the containers
# run as (nobody, as the compose cluster and the Kubernetes pods run) and to nobody
# else: a node refuses directories others may write to (README, "Security defaults").
# A volume docker creates on them starts with this owner and mode. (The owner is set
# in the archive below.)
chmod 0755 "$root/run/ctdb"
chmod 0700 "$root/var/lib/ctdb"

# put, put_libs, import_rootfs
. "$(dirname "$0")/rootfs.sh"

for b in $binaries; do
    put "$bin_dir/$b" "/usr/bin/$b"
    if [ "$strip" = 1 ] && command -v strip >/dev/null; then
        strip --strip-debug "$root/usr/bin/$b"
    fi
    put_libs "$bin_dir/$b" || die "cannot copy the libraries of $b"
done

# The shell and the tools of event scripts and health checks.
busybox=$(command -v busybox || true)
if [ -n "$busybox" ]; then
    put "$busybox" /bin/busybox
    put_libs "$busybox" || die "cannot copy the libraries of busybox"
    for applet in $("$busybox" --list); do
        [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
    done
else
    echo "build-image: busybox is not installed (apt-get install busybox): using bash and coreutils" >&2
    for tool in bash cat ls mkdir rm mv cp ln touch sleep echo grep sed awk head tail tr \
        cut wc sort date env id ps kill test true false chmod stat readlink; do
        path=$(command -v "$tool" 2>/dev/null || true)
        case "$path" in
        /*) put "$path" "/bin/$tool"; put_libs "$path" || die "cannot copy the libraries of $tool" ;;
        *) ;; # a shell builtin or not installed
        esac
    done
    [ -e "$root/bin/bash" ] || die "neither busybox nor bash is installed"
    ln -sf bash "$root/bin/sh"
fi

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
echo "ctdb-rs" >"$root/etc/hostname"
: >"$root/etc/hosts"

# Deterministic archive, so the checksum only changes when the contents do.
tarball=$work/rootfs.tar
tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    --exclude=./run/ctdb --exclude=./var/lib/ctdb -cf "$tarball" .
# The node's own directories belong to nobody.
tar -C "$root" --mtime=@0 --owner=65534 --group=65534 --numeric-owner --no-recursion \
    -rf "$tarball" ./run/ctdb ./var/lib/ctdb
# The defaults of a node in a container: configuration in /etc/ctdb, the run directory
# (component sockets and the client socket) in /run/ctdb, databases in /var/lib/ctdb.
# Without a command the image runs the whole node under ctdbd.
import_rootfs build-image "$tag" "$tarball" "$iidfile" \
    --change 'ENV PATH=/usr/bin:/bin' \
    --change 'ENV CTDB_BASE=/etc/ctdb' \
    --change 'ENV CTDB_RUNDIR=/run/ctdb' \
    --change 'ENV CTDB_SOCKET=/run/ctdb/ctdb.socket' \
    --change 'ENV CTDB_VOLATILE_DB_DIR=/var/lib/ctdb/volatile' \
    --change 'ENV CTDB_PERSISTENT_DB_DIR=/var/lib/ctdb/persistent' \
    --change 'ENV CTDB_STATE_DB_DIR=/var/lib/ctdb/state' \
    --change 'WORKDIR /' \
    --change 'EXPOSE 4379' \
    --change 'CMD ["/usr/bin/ctdbd"]' \
    --message "ctdb-rs from $bin_dir"
