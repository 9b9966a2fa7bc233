#!/usr/bin/env bash
# consume_ab.sh - hot consume of two builds in the same run, rounds in alternating order, against
# loopback TCP measured in the same run (never part of `make test`; nothing asserts on the numbers).
# One data directory: 1 and 8 partitions of 1 KiB records in 64 KiB batches (as bench/kafka.sh
# writes them) are produced once with build A; then each round measures loopback, and restarts
# the broker with each build in turn (A then B in odd rounds, B then A in even ones, so that the
# machine's load changes hit both), each consuming both topics hot (page cache) with
# `strata bench consume` (or the raw Fetch driver `strata bench fetch`: CAB_DRIVER=fetch),
# PASSES times each. Prints one JSON line per measurement and a summary: MB/s, ratio to the
# median loopback, and B / A per round (its median is the figure to quote on a noisy machine:
# both builds of one round see about the same load).
# Usage: bench/consume_ab.sh BUILD_A BUILD_B   env: CAB_RECORDS (1000000 per topic), CAB_ROUNDS (4),
#        CAB_PASSES (2), CAB_DRIVER (consume or fetch), BENCH_DIR (temp data parent), BENCH_OUT
#        (JSON lines; default bench/results/consume-ab-<UTC>.jsonl)
# Example (before/after a change): cp -r build /tmp/base; ...change, rebuild...;
#        bench/consume_ab.sh /tmp/base build
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?usage: bench/consume_ab.sh BUILD_A BUILD_B}
B=${2:?usage: bench/consume_ab.sh BUILD_A BUILD_B}
RECORDS=${CAB_RECORDS:-1000000}
ROUNDS=${CAB_ROUNDS:-4}
PASSES=${CAB_PASSES:-2}
DRIVER=${CAB_DRIVER:-consume}
OUT=${BENCH_OUT:-bench/results/consume-ab-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
DIR=$(mktemp -d "${BENCH_DIR:-$PWD}/.bench-consume-ab.XXXXXX")
BLIB_NAME=consume_ab.sh
. bench/broker_lib.sh
builds_ok "$A" "$B"
loopback() { loopback_json "$A/tools/strata" >>"$OUT"; }
mkdir -p "$(dirname "$OUT")"
echo "{\"load_start\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"a\": \"$A\", \"b\": \"$B\"}" >>"$OUT"
broker_start "$A/tools/stratad"
produce_topics "$A/tools/strata" "$BROKERS" "$RECORDS"
broker_stop
for round in $(seq "$ROUNDS"); do
    loopback
    order="$A $B"
    [ $((round % 2)) = 1 ] || order="$B $A"
    for b in $order; do
        broker_start "$b/tools/stratad"
        for np in 1 8; do
            log "round $round $b: $DRIVER p$np x$PASSES ..."
            "$b/tools/strata" --brokers "$BROKERS" --format json bench "$DRIVER" --topic "p$np" \
                --count "$PASSES" --duration 120s | python3 -c 'import json, sys
j = json.loads(sys.stdin.read())
j.update(what="consume", driver=sys.argv[4], build=sys.argv[1], partitions=int(sys.argv[2]),
         round=int(sys.argv[3]))
print(json.dumps(j))' "$b" "$np" "$round" "$DRIVER" >>"$OUT"
        done
        broker_stop
    done
done
loopback
echo "{\"load_end\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$OUT"
python3 - "$OUT" "$A" "$B" <<'EOF'
import json, statistics as S, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
a, b = sys.argv[2], sys.argv[3]
loop = S.median(r["mb_per_s"] for r in rows if r.get("what") == "loopback")
print("loopback median %.1f MB/s; load %s -> %s" % (loop, rows[0]["load_start"], rows[-1]["load_end"]))
cons = [r for r in rows if r.get("what") == "consume"]
for np in (1, 8):
    for build in (a, b):
        v = [r["mb_per_s"] for r in cons if r["build"] == build and r["partitions"] == np]
        print("%d partition(s) %-28s median %7.1f MB/s = %.2f x loopback  (rounds: %s)"
              % (np, build, S.median(v), S.median(v) / loop, " / ".join("%.0f" % x for x in v)))
    per = []
    for rd in sorted({r["round"] for r in cons}):
        x = {r["build"]: r["mb_per_s"] for r in cons if r["partitions"] == np and r["round"] == rd}
        per.append(x[b] / x[a])
    print("%d partition(s) B / A median %.2f  (rounds: %s)"
          % (np, S.median(per), " / ".join("%.2f" % x for x in per)))
EOF
echo "results: $OUT"
