# Shared by the offline image builders (build-image.sh, samba-image/build.sh): source
# it after setting $root (the root filesystem being made) and defining die().

# Copies a file to the same path under the root, following symlinks.
put() {
    mkdir -p "$root$(dirname "$2")"
    cp -L "$1" "$root$2"
}

# Copies the shared libraries and the ELF interpreter that ldd reports for $1 (a static
# binary has none). Returns 1, saying which, when a library is not installed.
put_libs() {
    local out lib
    out=$(ldd "$1" 2>&1) || {
        case "$out" in
        *"not a dynamic executable"* | *"statically linked"*) return 0 ;;
        *) die "ldd $1: $out" ;;
        esac
    }
    if grep -q "not found" <<<"$out"; then
        echo "ldd $1: a library is missing: $(grep "not found" <<<"$out")" >&2
        return 1
    fi
    for lib in $(awk '/=> \// { print $3 } /^[[:space:]]*\// { print $1 }' <<<"$out"); do
        [ -e "$root$lib" ] || put "$lib" "$lib"
    done
}

# import_rootfs NAME TAG TARBALL IIDFILE [docker import options...]: makes image TAG
# from TARBALL with `docker import` (no registry, no builder), labelled with the
# tarball's checksum, unless TAG already has that label; writes the image id to
# IIDFILE (when not empty) and removes the image it replaces unless a container uses it.
import_rootfs() {
    local name=$1 tag=$2 tarball=$3 iidfile=$4 sum previous current id
    shift 4
    sum=$(sha256sum "$tarball" | cut -c1-16)
    previous=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
    current=$(docker image inspect -f '{{index .Config.Labels "org.ctdb-rs.rootfs"}}' "$tag" 2>/dev/null || true)
    if [ "$current" = "$sum" ]; then
        echo "$name: $tag is up to date (rootfs $sum)"
        [ -z "$iidfile" ] || docker image inspect -f '{{.Id}}' "$tag" >"$iidfile"
        return 0
    fi
    id=$(docker import "$@" --change "LABEL org.ctdb-rs.rootfs=$sum" "$tarball" "$tag") ||
        die "docker import failed"
    [ -z "$iidfile" ] || echo "$id" >"$iidfile"
    if [ -n "$previous" ] && [ "$previous" != "$id" ]; then
        docker rmi "$previous" >/dev/null 2>&1 || true
    fi
    echo "$name: built $tag ($id, rootfs $sum, $(du -sh "$tarball" | cut -f1))"
}
