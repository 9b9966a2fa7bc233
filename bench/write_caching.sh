#!/usr/bin/env bash
# write_caching.sh - produce acks=all with write.caching=false (every acknowledged batch is
# fdatasync'd first) vs write.caching=true (acknowledged from the page cache, synced by flush.ms /
# flush.bytes), in the same run on the same broker: throughput at max rate, and delivery latency
# p50/p99 at a fixed rate (WC_RATE records/s; at max rate latency only measures client queueing).
# The two topics alternate (off, on, off, on, ...) so that noise of the shared machine falls on
# both; the report takes the median round of each. Not a test: nothing asserts on it.
# Usage: bench/write_caching.sh [BUILD_DIR] [OUT.jsonl]
#   env: WC_SECONDS (8 per run), WC_ROUNDS (3), WC_RECORD (1024 B), WC_LINGER (5 ms),
#        WC_RATE (5000 records/s for the latency runs),
#        BENCH_DIR (temp data parent)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=${2:-bench/results/write-caching-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
SECS=${WC_SECONDS:-8}
ROUNDS=${WC_ROUNDS:-3}
RECORD=${WC_RECORD:-1024}
LINGER=${WC_LINGER:-5}
RATE=${WC_RATE:-5000}
STRATAD=$BUILD/tools/stratad
KB=$BUILD/tools/strata
DIR=$(mktemp -d "${BENCH_DIR:-$PWD}/.bench-wc.XXXXXX")
SPID=""
cleanup() {
    [ -z "$SPID" ] || { kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null || true; }
    rm -rf "$DIR"
}
trap cleanup EXIT
free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
log() { echo "write_caching.sh: $*" >&2; }

PORT=$(free_port)
BROKERS=127.0.0.1:$PORT
: >"$DIR/stratad.log" # grep below may run before the broker opens it
"$STRATAD" --log-dir "$DIR/data" --smp 2 --listeners "$BROKERS" \
    --admin-listener "127.0.0.1:$(free_port)" >"$DIR/stratad.log" 2>&1 &
SPID=$!
for _ in $(seq 300); do
    grep -q started "$DIR/stratad.log" && break
    kill -0 "$SPID" 2>/dev/null || { cat "$DIR/stratad.log" >&2; exit 1; }
    sleep 0.1
done
"$KB" --brokers "$BROKERS" topic create wc-off -c write.caching=false >/dev/null
"$KB" --brokers "$BROKERS" topic create wc-on -c write.caching=true >/dev/null
mkdir -p "$(dirname "$OUT")"
: >"$OUT"
for r in $(seq "$ROUNDS"); do
    for rate in 0 "$RATE"; do
        for wc in off on; do
            log "round $r: produce acks=all, write.caching=$wc, rate=$rate/s, ${SECS}s ..."
            "$KB" --brokers "$BROKERS" --format json bench produce --topic "wc-$wc" \
                --partitions 1 --acks all --record-size "$RECORD" --linger-ms "$LINGER" \
                --compression none --rate "$rate" --duration "${SECS}s" >"$DIR/run.json"
            /usr/bin/python3 -c 'import json, sys
j = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
j.update({"scenario": "write_caching", "write_caching": sys.argv[2] == "on",
          "round": int(sys.argv[3]), "rate": int(sys.argv[4])})
print(json.dumps(j))' "$DIR/run.json" "$wc" "$r" "$rate" >>"$OUT"
        done
    done
done
# Median round of each setting: throughput of the max-rate runs, latency of the fixed-rate ones.
/usr/bin/python3 - "$OUT" "$RATE" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(wc, rate, key):
    rs = sorted((r for r in rows if r["write_caching"] == wc and r["rate"] == rate),
                key=lambda r: r[key])
    return rs[len(rs) // 2]
n = len([r for r in rows if r["rate"] == 0 and r["write_caching"]])
print("acks=all, 1 partition, median of %d rounds" % n)
print("write.caching  max MB/s  max records/s | at %s records/s: p50 ms  p99 ms" % sys.argv[2])
res = {}
for wc in (False, True):
    t = med(wc, 0, "mb_per_s")
    l = med(wc, int(sys.argv[2]), "p99_ms")
    res[wc] = (t, l)
    print("%-13s %9.1f %14.0f | %24.2f %7.2f" % (str(wc).lower(), t["mb_per_s"],
                                                 t["records_per_s"], l["p50_ms"], l["p99_ms"]))
(t0, l0), (t1, l1) = res[False], res[True]
print("true/false: throughput x%.2f, p99 at fixed rate x%.2f" %
      (t1["mb_per_s"] / max(t0["mb_per_s"], 1e-9), l1["p99_ms"] / max(l0["p99_ms"], 1e-9)))
EOF
