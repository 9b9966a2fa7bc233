#!/usr/bin/env bash
# scale.sh - scenario 6: many partitions. For each count in SCALE_PARTITIONS (1000 4000
# 10000), after an empty broker as the baseline: a fresh stratad, one topic with that many
# partitions (CreateTopics), records written round-robin to every partition (so each has a log
# on disk), then a restart on that data directory. Measured: time to create and fill; on the
# live broker and again after the restart, RSS before and after a burst of full-metadata
# requests (/proc/PID/status VmRSS), open descriptors and the latency of full Metadata requests
# (`strata bench metadata`); the start time (until the "started" line and one Metadata answer),
# or the error that stopped the start.
# Never part of `make test`; nothing asserts on the numbers.
# Usage: bench/scale.sh BUILD_DIR OUT.jsonl   env: SCALE_PARTITIONS ("1000 4000 10000"),
#        BENCH_DIR (tmp dir parent, default /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=${2:-bench/results/scale-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
CLI=$BUILD/tools/strata
STRATAD=$BUILD/tools/stratad
DIR=$(mktemp -d "${BENCH_DIR:-/tmp}/strata-scale.XXXXXX")
BPID=
cleanup() {
    [ -n "$BPID" ] && kill "$BPID" 2>/dev/null && wait "$BPID" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
# A partition keeps one descriptor per segment open (its .log; the index lives in memory):
# 10,000 one-segment partitions need 10,000. The limit is left as the machine sets it (stratad
# raises its soft limit to the hard one, here 20,000); a start that runs out of descriptors
# stops with EMFILE, and that is what gets reported. strata.max.partitions, derived from that
# limit, is set to the count under test.
BOOT=127.0.0.1:$(free_port)
ADMIN=127.0.0.1:$(free_port)
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# start DATA_DIR: start stratad (BPID), wait for its "started" line (printed once it serves
# Kafka), check that Metadata answers; START_S = seconds until then. @return 1 (START_ERR =
# its last ERROR line) when the broker stops during start-up.
start() {
    local t0 t1
    : >"$DIR/broker.log"
    t0=$(now)
    "$STRATAD" --log-dir "$1" --smp 2 --listeners "$BOOT" --admin-listener "$ADMIN" \
        -X strata.max.partitions="$SCALE_MAX_PARTITIONS" \
        >>"$DIR/broker.log" 2>&1 &
    BPID=$!
    for _ in $(seq 30000); do
        if grep -q "stratad: started" "$DIR/broker.log"; then
            "$CLI" --brokers "$BOOT" --timeout 30s cluster info >/dev/null
            t1=$(now)
            START_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
            return 0
        fi
        kill -0 "$BPID" 2>/dev/null || break
        sleep 0.01
    done
    wait "$BPID" || true
    BPID=
    START_S=null
    START_ERR=$(grep ERROR "$DIR/broker.log" | tail -1 | cut -c1-800)
    echo "scale.sh: broker did not start: $START_ERR" >&2
    return 1
}
stop() {
    kill "$BPID"
    wait "$BPID" || true
    BPID=
}
# measure: RSS, full-metadata latency and open descriptors of the running broker, as JSON.
measure() {
    local rss0 md
    rss0=$(rss_kb "$BPID")
    md=$("$CLI" --brokers "$BOOT" --timeout 60s --format json bench metadata --count 20)
    echo "{\"rss_kb\": $rss0, \"rss_kb_after_metadata\": $(rss_kb "$BPID")," \
        "\"open_fds\": $(find "/proc/$BPID/fd" -mindepth 1 | wc -l), \"metadata\": $md}"
}

: >"$OUT.tmp"
for n in 0 ${SCALE_PARTITIONS:-1000 4000 10000}; do
    data=$DIR/data-$n
    SCALE_MAX_PARTITIONS=$((n > 0 ? n : 1))
    echo "== scale: $n partitions" >&2
    start "$data"
    create_s=0
    if [ "$n" -gt 0 ]; then
        t0=$(now)
        "$CLI" --brokers "$BOOT" --timeout 120s topic create scale -p "$n" >/dev/null
        # Records round-robin over every partition, so each gets a log on disk.
        # Deliveries that cannot succeed (a broker out of descriptors) give up after 180 s (the
        # first append to a partition creates and syncs its files: minutes on a busy disk).
        "$CLI" --brokers "$BOOT" --timeout 120s --format json -X message.timeout.ms=180000 \
            bench produce --topic scale \
            --partitions "$n" --acks 1 --record-size 100 --rate "$((2 * n))" --duration 2s \
            >"$DIR/fill.json" || echo "scale.sh: filling $n partitions failed" >&2
        t1=$(now)
        create_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
    fi
    live=$(measure)
    stop
    dirs=$(find "$data" -maxdepth 1 -type d -name 'scale-*' | wc -l)
    START_ERR=
    restarted=null
    if start "$data"; then
        restarted=$(measure)
        stop
    fi
    /usr/bin/python3 -c 'import json, sys
n, dirs, create_s, start_s, err, lim, live, rs = sys.argv[1:9]
print(json.dumps({"partitions": int(n), "partition_dirs": int(dirs),
                  "create_and_fill_s": float(create_s), "nofile_limit": int(lim),
                  "live": json.loads(live), "start_s": json.loads(start_s),
                  "start_error": err or None, "restarted": json.loads(rs)}))' \
        "$n" "$dirs" "$create_s" "$START_S" "$START_ERR" "$(ulimit -n)" "$live" "$restarted" |
        tee -a "$OUT.tmp" >&2
    rm -rf "$data"
done
mv "$OUT.tmp" "$OUT"
