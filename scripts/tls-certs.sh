#!/usr/bin/env bash
# Makes the certificates of a TLS test cluster with openssl: a CA (DIR/ca.pem, ca.key)
# and, for each address given, DIR/node.N.pem and node.N.key (P-256) naming that
# address (subjectAltName IP), for both ends of a node connection. Keys are 0600.
# usage: scripts/tls-certs.sh DIR ADDR...
# (ctdb-bench compare --tls-dir DIR uses them; see BENCHMARKS.md.)
set -euo pipefail
dir=$1; shift
[ $# -gt 0 ] || { echo "usage: $0 DIR ADDR..." >&2; exit 2; }
mkdir -p "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 30 -subj /CN=ctdb-rs-test-ca 2>/dev/null
i=0
for addr in "$@"; do
    printf 'subjectAltName=IP:%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' \
        "$addr" >"$dir/node.$i.ext"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$dir/node.$i.key" -out "$dir/node.$i.csr" -subj "/CN=node$i" 2>/dev/null
    openssl x509 -req -in "$dir/node.$i.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
        -CAcreateserial -out "$dir/node.$i.pem" -days 30 -extfile "$dir/node.$i.ext" 2>/dev/null
    rm -f "$dir/node.$i.csr" "$dir/node.$i.ext"
    i=$((i + 1))
done
echo "tls-certs: CA and $i node certificates in $dir"
