#!/usr/bin/env bash
# run.sh - the whole benchmark suite, end to end (`make bench`). Benchmarks are not tests: they
# never run in `make test`, nothing asserts on them, and every figure is a ratio to a limit of
# this machine measured in the same run (absolute times on a small shared machine mean little).
#
#   limits       fdatasync'd sequential writes (fio), loopback TCP (iperf3), raw ranged GETs of
#                the S3 test server (curl)                       bench/kafka.sh, bench/replay.sh
#   1, 2, 5, 7   produce acks=all 1/8 partitions, hot consume, latency at 50% of max, CPU per
#                byte; the librdkafka mock cluster as peer baseline          bench/kafka.sh
#   3            cold / warm replay from the S3 server                       bench/replay.sh
#   4            upload lag over time with tiering on                        bench/tiering.sh
#   6            1,000 and 10,000 partitions: start time, RSS, metadata      bench/scale.sh
#   engine       durable appends through plog vs raw write+fdatasync         bench/log_append
#                whether concurrent fdatasyncs of one file overlap           bench/sync_overlap
#   caching      produce acks=all, write.caching=false vs true, same run     bench/write_caching.sh
#   peers        the same produce/consume/latency scenarios against Apache Kafka (flush per
#                batch, and default) and the mock, two load drivers     bench/peers.sh
# Writes bench/results/<UTC date>.json (every figure), <date>.md (the report) and
# <date>-*.png (gnuplot), plus the perf summaries of the latency run (<date>-perf-*.txt).
# Usage: bench/run.sh [BUILD_DIR]   env: BENCH_QUICK=1 (short runs, to try the suite),
#        BENCH_DIR (temp data parent; default the repo, i.e. its filesystem), BENCH_KEEP=1
#        (keep the work directory: raw results, to rerun bench/report.py on them)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
for f in "$BUILD/tools/stratad" "$BUILD/tools/strata" "$BUILD/bench/log_append" \
    "$BUILD/bench/sync_overlap"; do
    [ -x "$f" ] || { echo "bench/run.sh: $f not built (cmake --build $BUILD)" >&2; exit 1; }
done
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RES=bench/results
mkdir -p "$RES"
W=$(mktemp -d "${BENCH_DIR:-$PWD}/.bench-run.XXXXXX")
[ -n "${BENCH_KEEP:-}" ] || trap 'rm -rf "$W"' EXIT
export BENCH_DIR=$W # every script's temp data under one hidden, removed directory
git rev-parse --short HEAD >"$W/git" 2>/dev/null || echo unknown >"$W/git"
git status --porcelain --untracked-files=no | wc -l >"$W/git_dirty"
export REPLAY_MB=${REPLAY_MB:-1024} # a cold replay of a few seconds, not under one
if [ -n "${BENCH_QUICK:-}" ]; then
    export WC_SECONDS=3 WC_ROUNDS=1 KBENCH_SECONDS=3 PEERS_SECONDS=3 PEERS_JAVA_RECORDS=100000 KBENCH_LATENCY_RUNS=1 REPLAY_MB=64 TIER_SECONDS=15 TIER_DRAIN=20
    export SCALE_PARTITIONS=${SCALE_PARTITIONS:-1000}
fi
T0=$(date +%s)
step() { echo "== bench [$(($(date +%s) - T0)) s] $*" >&2; }
uname -a >"$W/uname"
cut -d' ' -f1-3 /proc/loadavg >"$W/load_start"

step "engine: log_append (plog durable appends vs raw write+fdatasync)"
mkdir -p "$W/la"
"$BUILD/bench/log_append" --dir "$W/la" --seconds "${LOG_APPEND_SECONDS:-3}" \
    >"$W/log_append.txt" 2>&1 || echo "log_append failed" >>"$W/log_append.txt"
rm -rf "$W/la"
step "engine: sync_overlap (do concurrent fdatasyncs of one file overlap?)"
"$BUILD/bench/sync_overlap" --dir "$W" --seconds "${LOG_APPEND_SECONDS:-3}" \
    >"$W/sync_overlap.txt" 2>&1 || echo "sync_overlap failed" >>"$W/sync_overlap.txt"
step "limits + scenarios 1, 2, 5, 7 + mock baseline: bench/kafka.sh"
BENCH_OUT=$W/kafka.jsonl BENCH_PERF_DIR=$W/perf bench/kafka.sh "$BUILD" | tee "$W/kafka.txt" >&2
step "write.caching=false vs true: bench/write_caching.sh"
bench/write_caching.sh "$BUILD" "$W/write_caching.jsonl" >"$W/write_caching.txt" 2>&1 ||
    echo "write_caching.sh failed" >>"$W/write_caching.txt"
step "peers: Apache Kafka (flush=1, default) and the mock, two drivers: bench/peers.sh"
BENCH_OUT=$W/peers.jsonl bench/peers.sh "$BUILD" >"$W/peers.txt" 2>"$W/peers.err" ||
    { echo "peers.sh failed:"; tail -20 "$W/peers.err"; } >>"$W/peers.txt"
step "scenario 3: cold/warm replay vs raw ranged GET: bench/replay.sh"
# The lat pairs also with the S3 server and the consumer at nice 19 (stand-ins for remote hosts).
BENCH_OUT=$W/replay.jsonl BENCH_PERF_DIR=$W/perf REPLAY_PEER_NICE=${REPLAY_PEER_NICE:-19} \
    bench/replay.sh "$BUILD" >&2
step "scenario 4: upload lag with tiering on: bench/tiering.sh"
bench/tiering.sh "$BUILD" "$W/tiering" >&2
step "scenario 6: partition scale: bench/scale.sh"
bench/scale.sh "$BUILD" "$W/scale.jsonl" >&2
cut -d' ' -f1-3 /proc/loadavg >"$W/load_end"
echo $(($(date +%s) - T0)) >"$W/elapsed_s"
step "report"
/usr/bin/python3 bench/report.py "$W" "$RES" "$STAMP"
echo "bench: $RES/$STAMP.md, $RES/$STAMP.json ($(($(date +%s) - T0)) s)" >&2
