#!/usr/bin/env bash
# tls.sh - cost of TLS on the Kafka path: produce and consume throughput over an SSL
# listener as a ratio of a PLAINTEXT listener of the same broker, in the same run (never
# part of `make test`; nothing asserts on the numbers). One stratad serves both listeners;
# `strata bench` (librdkafka) produces with acks=1 and then consumes what it wrote, each
# round on its own topics, alternating plaintext and TLS. Two measures: throughput (noisy on
# a shared machine) and stratad's CPU time per MB (utime+stime from /proc), which shows
# the encryption work more steadily, and the client's (strata bench) CPU time per MB, the
# other end of the encryption. The test certificates (EC P-256) are made here with
# the openssl CLI; the TLS version and cipher are whatever librdkafka and OpenSSL agree on
# (TLS 1.3, TLS_AES_256_GCM_SHA384 with this OpenSSL 3), printed with the results.
# Usage: bench/tls.sh [BUILD_DIR]   env: TLSBENCH_SECONDS (10), TLSBENCH_ROUNDS (2),
#        TLSBENCH_RECORD (1024 bytes), TLSBENCH_MTLS=1 (client certificates required)
# Prints a table and appends one JSON line to $BENCH_OUT (default
# bench/results/tls-<UTC>.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SECS=${TLSBENCH_SECONDS:-10}
ROUNDS=${TLSBENCH_ROUNDS:-2}
REC=${TLSBENCH_RECORD:-1024}
KB=$BUILD/tools/strata
STRATAD=$BUILD/tools/stratad
PY=/usr/bin/python3
for f in "$KB" "$STRATAD"; do
    [ -x "$f" ] || { echo "tls.sh: $f not built (cmake --build $BUILD)" >&2; exit 1; }
done
mkdir -p bench/results
OUT=${BENCH_OUT:-bench/results/tls-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
DIR=$(mktemp -d "${BENCH_DIR:-$PWD}/.bench.XXXXXX")
SPID=""
cleanup() {
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT
port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PPORT=$(port)
SPORT=$(port)
APORT=$(port)

# Certificates: a CA, the broker's (127.0.0.1), a client's (for TLSBENCH_MTLS).
C=$DIR/certs
mkdir -p "$C"
ossl() { openssl "$@" >/dev/null 2>&1 || { echo "tls.sh: openssl $* failed" >&2; exit 1; }; }
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
ossl req -x509 "${ec[@]}" -keyout "$C/ca.key" -out "$C/ca.pem" -days 2 -subj "/CN=bench CA"
for who in server client; do
    if [ $who = server ]; then ext="subjectAltName=IP:127.0.0.1"; else ext="extendedKeyUsage=clientAuth"; fi
    echo "$ext" >"$C/$who.ext"
    ossl req -new "${ec[@]}" -keyout "$C/$who.key" -out "$C/$who.csr" -subj "/CN=$who"
    ossl x509 -req -in "$C/$who.csr" -CA "$C/ca.pem" -CAkey "$C/ca.key" -set_serial "$RANDOM" \
        -days 2 -extfile "$C/$who.ext" -out "$C/$who.pem"
done
cat "$C/server.key" "$C/server.pem" >"$C/server-full.pem"
TLSX=(-X security.protocol=SSL -X "ssl.ca.location=$C/ca.pem")
SRVX=()
if [ -n "${TLSBENCH_MTLS:-}" ]; then
    TLSX+=(-X "ssl.certificate.location=$C/client.pem" -X "ssl.key.location=$C/client.key")
    # Client certificates turn authorization on; this bench measures TLS, not ACLs.
    SRVX=(-X ssl.client.auth=required -X "ssl.truststore.location=$C/ca.pem"
        -X allow.everyone.if.no.acl.found=true)
fi

"$STRATAD" --log-dir "$DIR/data" --admin-listener "127.0.0.1:$APORT" --log-level warn \
    --listeners "PLAINTEXT://127.0.0.1:$PPORT,SSL://127.0.0.1:$SPORT" \
    -X "ssl.keystore.location=$C/server-full.pem" ${SRVX[@]+"${SRVX[@]}"} >>"$DIR/stratad.log" 2>&1 &
SPID=$!
for _ in $(seq 100); do
    "$KB" --brokers "127.0.0.1:$PPORT" --timeout 1s cluster info >/dev/null 2>&1 && break
    sleep 0.1
done
SUITE=$($PY -c 'import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="127.0.0.1")
print(s.version(), s.cipher()[0])' "$SPORT" "$C/ca.pem" 2>/dev/null || echo "python client could not connect")

cpu() { awk '{print ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$SPID/stat"; }
run() { # run plain|tls ROUND -> appends one line per run to $DIR/runs (see the names below)
    local t="tls-bench-$1-$2" c0 c1 c2 b=127.0.0.1:$PPORT x=()
    if [ "$1" = tls ]; then b=127.0.0.1:$SPORT; x=("${TLSX[@]}"); fi
    "$KB" --brokers "$b" ${x[@]+"${x[@]}"} topic create "$t" -p 4 >/dev/null
    c0=$(cpu)
    /usr/bin/time -f "%U %S" -o "$DIR/pt" \
        "$KB" --brokers "$b" ${x[@]+"${x[@]}"} --format json bench produce --topic "$t" \
        --partitions 4 --acks 1 --record-size "$REC" --random --duration "${SECS}s" >"$DIR/p.json"
    c1=$(cpu)
    /usr/bin/time -f "%U %S" -o "$DIR/ct" \
        "$KB" --brokers "$b" ${x[@]+"${x[@]}"} --format json bench consume --topic "$t" \
        --duration 120s >"$DIR/c.json"
    c2=$(cpu)
    $PY -c 'import json, sys
p = json.load(open(sys.argv[2])); c = json.load(open(sys.argv[3]))
assert p["failed"] == 0 and p["records"] > 0, p
assert c["complete"] and c["errors"] == 0 and c["records"] == p["records"], c
c0, c1, c2 = map(float, sys.argv[4:7])
gb = p["records"] * int(sys.argv[7]) / 1e9
pt = sum(map(float, open(sys.argv[8]).read().split()[-2:]))
ct = sum(map(float, open(sys.argv[9]).read().split()[-2:]))
print(sys.argv[1], p["mb_per_s"], (c1 - c0) / gb, pt / gb, c["mb_per_s"], (c2 - c1) / gb, ct / gb)' \
        "$1" "$DIR/p.json" "$DIR/c.json" "$c0" "$c1" "$c2" "$REC" "$DIR/pt" "$DIR/ct" >>"$DIR/runs"
}
for r in $(seq "$ROUNDS"); do
    run plain "$r"
    run tls "$r"
done
kill "$SPID"
wait "$SPID" || true
SPID=""
$PY - "$DIR/runs" "$OUT" "$(git rev-parse --short HEAD)" "$SUITE" "$REC" "${TLSBENCH_MTLS:+mtls}" <<'PYEOF'
import json, sys
runs = [l.split() for l in open(sys.argv[1])]
names = ("produce MB/s", "produce broker CPU s/GB", "produce client CPU s/GB",
         "consume MB/s", "consume broker CPU s/GB", "consume client CPU s/GB")
lower_is_better = (False, True, True, False, True, True)
best = {}
for side, *vals in runs:
    b = best.setdefault(side, [None] * len(names))
    for i, v in enumerate(map(float, vals)):
        if b[i] is None or (v < b[i] if lower_is_better[i] else v > b[i]):
            b[i] = v
print("TLS: %s%s, records of %s bytes (incompressible)"
      % (sys.argv[4], " with client certificates" if sys.argv[6] else "", sys.argv[5]))
print("%-26s %12s %12s %9s" % ("", "PLAINTEXT", "SSL", "SSL/plain"))
res = {"bench": "tls", "git": sys.argv[3], "tls": sys.argv[4], "mtls": bool(sys.argv[6]),
       "record_bytes": int(sys.argv[5]), "runs": runs}
for i, n in enumerate(names):
    plain, tls = best["plain"][i], best["tls"][i]
    print("%-26s %12.2f %12.2f %9.3f" % (n, plain, tls, tls / plain if plain else 0))
    res[n] = {"plaintext": plain, "ssl": tls, "ratio": tls / plain if plain else None}
with open(sys.argv[2], "a") as f:
    f.write(json.dumps(res) + "\n")
print("results appended to", sys.argv[2])
PYEOF
