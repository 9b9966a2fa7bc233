#!/usr/bin/env bash
# latency_ab.sh - produce latency of two builds in the same run, rounds in alternating order
# (never part of `make test`; nothing asserts on the numbers). Each round restarts the broker
# with each build in turn on an empty data directory (A then B in odd rounds, B then A in even
# ones, so that the machine's load changes hit both), warms it up, then runs `strata bench
# produce` at a fixed rate into 1 partition, 1 KiB records, linger 0, 64 KiB batches (the load
# of bench/kafka.sh's scenario 5), with acks=all and then acks=1. Besides the client's delivery
# latency it reads from /proc what stratad spent on the run: its threads' voluntary and
# involuntary context switches and its CPU seconds (user + system); and from /metrics the mean
# time of each stage of a produce in the broker (strata_kafka_produce_stage_seconds: queue,
# append, ack, reply; bench/promdelta.py), which the client's scheduling does not blur. Prints
# one JSON line per run and a summary: medians per build and B / A per round (the figure to
# quote on a noisy machine: both builds of one round see about the same load).
# Usage: bench/latency_ab.sh BUILD_A BUILD_B   env: LAB_RATE (records/s, 150000), LAB_SECONDS
#        (10), LAB_ROUNDS (5), BENCH_DIR (temp data parent), BENCH_OUT (JSON lines; default
#        bench/results/latency-ab-<UTC>.jsonl)
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?usage: bench/latency_ab.sh BUILD_A BUILD_B}
B=${2:?usage: bench/latency_ab.sh BUILD_A BUILD_B}
RATE=${LAB_RATE:-150000}
SECS=${LAB_SECONDS:-10}
ROUNDS=${LAB_ROUNDS:-5}
OUT=${BENCH_OUT:-bench/results/latency-ab-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
DIR=$(mktemp -d "${BENCH_DIR:-$PWD}/.bench-latency-ab.XXXXXX")
BLIB_NAME=latency_ab.sh
. bench/broker_lib.sh
builds_ok "$A" "$B"
# Context switches (voluntary, involuntary) summed over stratad's threads, and its CPU seconds.
proc_counts() {
    cat /proc/"$SPID"/task/*/status 2>/dev/null |
        awk '/^voluntary_ctxt/ {v += $2} /^nonvoluntary_ctxt/ {n += $2} END {printf "%d %d ", v, n}'
    awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$SPID/stat"
}
produce() { # BUILD TOPIC ACKS SECONDS
    "$1/tools/strata" --brokers "$BROKERS" --format json bench produce --topic "$2" \
        --partitions 1 --acks "$3" --record-size 1024 --linger-ms 0 --batch-bytes 65536 \
        --compression none --rate "$RATE" --duration "${4}s"
}
mkdir -p "$(dirname "$OUT")"
echo "{\"load_start\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"a\": \"$A\", \"b\": \"$B\"}" >>"$OUT"
for round in $(seq "$ROUNDS"); do
    order="$A $B"
    [ $((round % 2)) = 1 ] || order="$B $A"
    for b in $order; do
        rm -rf "$DIR/data"
        broker_start "$b/tools/stratad"
        produce "$b" warm all 3 >/dev/null
        for acks in all 1; do
            log "round $round $b: acks=$acks at $RATE records/s, ${SECS}s ..."
            curl -s "http://$ADMIN/metrics" >"$DIR/m0"
            read -r v0 n0 c0 < <(proc_counts)
            produce "$b" "lat-$acks" "$acks" "$SECS" >"$DIR/run.json"
            read -r v1 n1 c1 < <(proc_counts)
            curl -s "http://$ADMIN/metrics" >"$DIR/m1"
            /usr/bin/python3 bench/promdelta.py "$DIR/m0" "$DIR/m1" produce_stage \
                >"$DIR/stages.json"
            python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
st = json.load(open(sys.argv[2]))
a = sys.argv[3:]
j.update(what="latency", build=a[0], acks=a[1], round=int(a[2]),
         voluntary_switches=int(a[4]) - int(a[3]), involuntary_switches=int(a[6]) - int(a[5]),
         cpu_s=round(float(a[8]) - float(a[7]), 2))
for k, v in st.items():  # the broker'"'"'s own stage means (strata_kafka_produce_stage_seconds)
    j["stage_%s_mean_ms" % k.split("stage=")[-1].rstrip("}")] = v["mean_ms"]
print(json.dumps(j))' "$DIR/run.json" "$DIR/stages.json" "$b" "$acks" "$round" "$v0" "$v1" "$n0" \
                "$n1" "$c0" "$c1" >>"$OUT"
        done
        broker_stop
    done
done
echo "{\"load_end\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$OUT"
python3 - "$OUT" "$A" "$B" <<'EOF'
import json, statistics as S, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
a, b = sys.argv[2], sys.argv[3]
print("load %s -> %s" % (rows[0]["load_start"], rows[-1]["load_end"]))
lat = [r for r in rows if r.get("what") == "latency"]
keys = ("p50_ms", "p99_ms", "p999_ms", "voluntary_switches", "involuntary_switches", "cpu_s",
        "stage_queue_mean_ms", "stage_append_mean_ms", "stage_ack_mean_ms", "stage_reply_mean_ms")
lat = [r for r in lat if all(k in r for k in keys)]
for acks in ("all", "1"):
    for build in (a, b):
        v = [r for r in lat if r["build"] == build and r["acks"] == acks]
        fmt = lambda k: "%.3f" if k.endswith(("_ms", "_s")) else "%d"
        print("acks=%-3s %-28s medians: " % (acks, build) + ", ".join(
            "%s %s" % (k, fmt(k) % S.median(r[k] for r in v)) for k in keys)
              + "  (p99 rounds: %s)" % " / ".join("%.2f" % r["p99_ms"] for r in v))
    for k in keys:
        per = []
        for rd in sorted({r["round"] for r in lat}):
            x = {r["build"]: r[k] for r in lat if r["acks"] == acks and r["round"] == rd}
            if x.get(a):
                per.append(x[b] / x[a])
        print("acks=%-3s B / A %-22s median %.2f  (rounds: %s)"
              % (acks, k, S.median(per), " / ".join("%.2f" % x for x in per)))
EOF
echo "results: $OUT"
