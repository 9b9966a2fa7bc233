#!/usr/bin/env bash
# sendfile.sh - hot consume with and without zero-copy Fetch (strata.fetch.sendfile.enable),
# against loopback TCP measured in the same run. One data directory: 1 and 8 partitions are
# produced once (acks=all), then the broker is restarted with sendfile on, off, on, off ...
# (ROUNDS pairs, alternating, so that the machine's load changes hit both), and each round
# consumes both topics hot (page cache) with `strata bench consume`, PASSES times each.
# Prints one JSON line per measurement and a summary: MB/s and ratio to loopback.
# Usage: bench/sendfile.sh [BUILD_DIR]  env: SF_PRODUCE_RECORDS (1000000 per topic),
#        SF_ROUNDS (2), SF_PASSES (2), BENCH_DIR (temp data parent)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
KB=$BUILD/tools/strata
STRATAD=$BUILD/tools/stratad
RECORDS=${SF_PRODUCE_RECORDS:-1000000}
ROUNDS=${SF_ROUNDS:-2}
PASSES=${SF_PASSES:-2}
DIR=$(mktemp -d "${BENCH_DIR:-$PWD}/.bench-sendfile.XXXXXX")
BLIB_NAME=sendfile.sh
. bench/broker_lib.sh
start() { # SENDFILE(true|false)
    broker_start "$STRATAD" -X "strata.fetch.sendfile.enable=$1"
}
stop() { broker_stop; }
loopback() { loopback_json "$KB"; }
OUT=$DIR/out.jsonl
echo "{\"load_start\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$OUT"
loopback >>"$OUT"
start true
for np in 1 8; do
    log "produce $RECORDS records of 1 KiB to $np partition(s) ..."
    "$KB" --brokers "$BROKERS" --format json bench produce --topic "p$np" --partitions "$np" \
        --acks all --record-size 1024 --count "$RECORDS" --duration 300s >/dev/null
done
stop
for round in $(seq "$ROUNDS"); do
    for sf in true false; do
        start "$sf"
        for np in 1 8; do
            log "round $round sendfile=$sf: consume p$np x$PASSES ..."
            "$KB" --brokers "$BROKERS" --format json bench consume --topic "p$np" \
                --count "$PASSES" --duration 120s | python3 -c 'import json, sys
j = json.loads(sys.stdin.read()); j.update(what="consume", sendfile=sys.argv[1] == "true",
partitions=int(sys.argv[2]), round=int(sys.argv[3])); print(json.dumps(j))' "$sf" "$np" "$round" >>"$OUT"
        done
        stop
    done
    loopback >>"$OUT"
done
echo "{\"load_end\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$OUT"
cat "$OUT"
python3 - "$OUT" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
loop = statistics.median(r["mb_per_s"] for r in rows if r.get("what") == "loopback")
print("loopback (median of %d): %.1f MB/s" % (sum(r.get("what") == "loopback" for r in rows), loop))
for np in (1, 8):
    for sf in (True, False):
        v = [r["mb_per_s"] for r in rows if r.get("what") == "consume" and r["partitions"] == np
             and r["sendfile"] == sf]
        print("hot consume %d partition(s), sendfile=%-5s: %s MB/s, median %.1f = %.2f x loopback"
              % (np, str(sf).lower(), " / ".join("%.1f" % x for x in v), statistics.median(v),
                 statistics.median(v) / loop))
EOF
