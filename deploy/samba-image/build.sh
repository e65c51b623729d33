#!/usr/bin/env bash
# Builds a container image of Samba's own CTDB from the host's Debian `ctdb` package,
# without pulling anything, the way deploy/build-image.sh builds ours: a root
# filesystem of the package's daemon, tool, helpers and event-script support files, the
# shared libraries they load (found with ldd, Samba's private ones included), busybox for
# /bin/sh and the scripts' tools, iproute2's `ip` and `ss`, util-linux's `flock`, ethtool, then
# `docker import`. Used by tests/tests/compose_failover.rs to measure Samba's ctdbd
# beside ours; nothing of Samba's is kept in this repository but this script.
#
# usage: deploy/samba-image/build.sh [--tag TAG] [--iidfile FILE]
#   --tag        image name (default: $CTDB_SAMBA_IMAGE, else ctdb-samba:dev)
#   --iidfile    write the image's id to FILE
#
# Needs Debian's `ctdb` (Samba 4.17's: /usr/sbin/ctdbd, /usr/bin/ctdb, /usr/libexec/ctdb,
# /etc/ctdb/functions, /usr/share/ctdb/events), `busybox`, `iproute2` and `ethtool` installed.
# The image enables the legacy event scripts 00.ctdb and 10.interface (symlinks in
# /etc/ctdb/events/legacy, as `ctdb event script enable` makes) and keeps the package's
# /etc/ctdb support files; mount ctdb.conf, nodes and public_addresses into /etc/ctdb.
# Idempotent, like build-image.sh: an image whose rootfs checksum label matches is kept.
set -euo pipefail

tag=${CTDB_SAMBA_IMAGE:-ctdb-samba:dev}
iidfile=

die() {
    echo "samba-image: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --tag) tag=${2:?--tag needs a name}; shift ;;
    --iidfile) iidfile=${2:?--iidfile needs a file}; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

[ -x /usr/sbin/ctdbd ] && [ -x /usr/bin/ctdb ] && [ -r /etc/ctdb/functions ] ||
    die "Samba's ctdb is not installed (apt-get install ctdb)"
command -v busybox >/dev/null || die "busybox is not installed (apt-get install busybox)"
[ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || die "iproute2 is not installed"
command -v ethtool >/dev/null || die "ethtool is not installed (apt-get install ethtool): 10.interface's monitor needs it"
command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the docker daemon is not reachable (docker info fails)"

exec 9>"${TMPDIR:-/tmp}/ctdb-samba-build-image.lock"
flock 9

work=$(mktemp -d "${TMPDIR:-/tmp}/ctdb-samba-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,tmp,run/ctdb,var/run,var/lib/ctdb,var/log/ctdb,root,proc,sys,dev,shared}
mkdir -p "$root"/var/lib/ctdb/{volatile,persistent,state,scripts}
mkdir -p "$root"/etc/ctdb/events/{legacy,notification}
chmod 1777 "$root/tmp"

# put, put_libs, import_rootfs
. "$(dirname "$0")/../rootfs.sh"

put_bin() {
    put_libs "$1" || die "ldd $1: a library is missing"
    put "$1" "${2:-$1}"
}

put_bin /usr/sbin/ctdbd
put_bin /usr/bin/ctdb
# The helpers ctdbd runs (eventd, recovery, takeover, locks, killtcp, ...); ones whose
# libraries are not installed (Ceph's, etcd's) are left out.
for helper in /usr/libexec/ctdb/*; do
    [ -f "$helper" ] || continue
    if put_libs "$helper"; then
        put "$helper" "$helper"
    else
        echo "samba-image: leaving out $helper (a library is missing)" >&2
    fi
done
for f in functions notify.sh debug-hung-script.sh debug_locks.sh ctdb-crash-cleanup.sh \
    script.options ctdb.tunables; do
    [ -e "/etc/ctdb/$f" ] && put "/etc/ctdb/$f" "/etc/ctdb/$f"
done
for script in 00.ctdb 10.interface; do
    put "/usr/share/ctdb/events/legacy/$script.script" "/usr/share/ctdb/events/legacy/$script.script"
    ln -s "/usr/share/ctdb/events/legacy/$script.script" "$root/etc/ctdb/events/legacy/$script.script"
done

# busybox first, then the real tools over its applets.
busybox=$(command -v busybox)
put_bin "$busybox" /bin/busybox
for applet in $("$busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
ip=$(command -v ip)
put_bin "$ip" /sbin/ip
rm -f "$root/bin/ip"
ln -s /sbin/ip "$root/bin/ip"
ln -s /sbin/ip "$root/usr/sbin/ip"
if command -v ss >/dev/null; then
    put_bin "$(command -v ss)" /usr/bin/ss
fi
put_bin "$(command -v flock)" /usr/bin/flock
rm -f "$root/bin/flock"
# 10.interface's monitor asks ethtool whether the interface has a link.
put_bin "$(command -v ethtool)" /usr/sbin/ethtool
# 00.ctdb checks persistent databases with tdbtool (or tdbdump) where there is one.
for tool in tdbtool tdbdump; do
    if command -v "$tool" >/dev/null; then
        put_bin "$(command -v "$tool")" "/usr/bin/$tool"
    fi
done

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
echo "ctdb-samba" >"$root/etc/hostname"
: >"$root/etc/hosts"

tarball=$work/rootfs.tar
tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$tarball" .
version=$(dpkg-query -W -f '${Version}' ctdb 2>/dev/null || echo unknown)
import_rootfs samba-image "$tag" "$tarball" "$iidfile" \
    --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV CTDB_BASE=/etc/ctdb' \
    --change 'WORKDIR /' \
    --change 'EXPOSE 4379' \
    --change 'CMD ["/usr/sbin/ctdbd", "--interactive"]' \
    --change "LABEL org.ctdb-rs.samba-ctdb=$version" \
    --message "Samba's ctdb $version from the host's Debian package"
