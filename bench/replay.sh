#!/usr/bin/env bash
# replay.sh - replay of archived data (hydration) against a local S3 server, as
# ratios to limits measured in the same run (never part of `make test`; nothing
# asserts on the numbers).
#
# Setup: scripts/s3server.sh on loopback; stratad with the s3:// archive, 16 MiB
# segments, a chunk cache of 4 x REPLAY_MB (split between 2 shards: the warm replay
# must find everything cached); topic "arch" (local.retention.bytes 32 MiB: all but the tail is only
# in the bucket) and topic "hot" (remote storage off, all local), both filled
# with the same incompressible records (REPLAY_MB MiB of 4 KiB random values,
# so object bytes ~ record bytes).
# Limit:     raw   sequential ranged GETs (16 MiB, signed, one connection, curl)
#                  over the same objects, in offset order: MB/s of object bytes.
# Scenarios: cold  the broker restarted with <log.dir>/cache deleted, `strata
#                  bench consume` of "arch" from offset 0: record MB/s / raw (target
#                  >= 0.9, issue 17); also object MB/s from the broker's hydration counters;
#                  then the same cold replay with `strata bench fetch` (the raw Fetch driver,
#                  no per-record work: the target is judged on it, both are reported);
#            warm  restarted with the cache kept: record MB/s of "arch" vs hot;
#            hot   `strata bench consume` of "hot" (local log, page cache).
#            lat   produce p99 (`strata bench produce` of 1 KiB incompressible records to
#                  topic "lat" (not archived), acks=all, linger 0, REPLAY_LAT_RATE records/s for
#                  REPLAY_LAT_SECONDS) during a cold replay of "arch" (cache deleted, broker
#                  restarted) vs the same produce alone just before it: p99 ratio (target
#                  <= 1.5), and how much of the produce the replay overlapped. Where it
#                  waits, for both produces (broker_alone, broker_during): stratad's
#                  histograms between two scrapes of /metrics (bench/promdelta.py: produce
#                  stages queue/append/ack/reply, fdatasync, loop lag, request latency) and
#                  the data disk's writes and cache flushes (/proc/diskstats); with
#                  BENCH_PERF_DIR also every thread's wait for a CPU (bench/schedlat.py).
#                  With REPLAY_PEER_NICE=N (make bench: 19) the lat rounds run a second
#                  time with the replay's peers, the S3 server (every thread) and the
#                  consumer, at nice N: they stand in for remote machines, and on these 2
#                  cores at equal priority their CPU alone delays the broker's fdatasync
#                  completions (bench/REPORT.md). Both are reported ("lat", "lat_peers_niced").
# Before/after: with REPLAY_BASE=DIR (another build directory, e.g. of main), the cold
# replay and the lat pair also run with DIR/tools/stratad (and REPLAY_BASE_ARGS, extra
# stratad arguments, e.g. "-X strata.hydration.threads=0": the same build with a setting
# changed) on the same data, in REPLAY_ROUNDS rounds of: raw GETs, a cold replay with each
# build (order alternating), raw GETs again; medians of the per-round ratios are reported
# (the machine's load changes within seconds: single runs mislead). The lat pair also runs
# REPLAY_ROUNDS times per build, the builds alternating (median p99s, ratio and replay MB/s),
# and so does the warm replay (this / base, median of the rounds).
# CPU: seconds used by the S3 server, stratad and the whole machine during the raw GETs and
# the cold replay, and stratad's minor page faults (each a fresh page: on this VM with free page
# reporting the host faults it in, bench/REPORT.md) (2 cores are shared by the server, the broker and the consumer); with
# BENCH_PERF_DIR set, perf profiles of stratad during the cold replay go there, and of the
# machine during the first lat produce-during-replay of each binary and its arguments (lat-N-*.txt).
# Usage: bench/replay.sh [BUILD_DIR]   env: REPLAY_MB (256), BENCH_DIR (tmp dir
#        parent, default /tmp), REPLAY_BASE (unset), REPLAY_LAT_RATE (5000),
#        REPLAY_LAT_SECONDS (5), REPLAY_BASE_ARGS (unset), REPLAY_ARGS (unset: extra stratad
#        arguments of this build), REPLAY_ROUNDS (3), REPLAY_DRIVER (consume: librdkafka;
#        fetch: `strata bench fetch`, the raw batch-level driver; its MB/s counts record
#        batches, ~1 % above record values).
#        Appends one JSON line to $BENCH_OUT (default bench/results/replay-<UTC>.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
MB=${REPLAY_MB:-256}
KB=$BUILD/tools/strata
STRATAD=$BUILD/tools/stratad
BASE=${REPLAY_BASE:-}
read -r -a BASE_ARGS <<<"${REPLAY_BASE_ARGS:-}"
read -r -a THIS_ARGS <<<"${REPLAY_ARGS:-}"
LAT_RATE=${REPLAY_LAT_RATE:-5000}
LAT_SECONDS=${REPLAY_LAT_SECONDS:-5}
ROUNDS=${REPLAY_ROUNDS:-3}
PEER_NICE=${REPLAY_PEER_NICE:-0}
case $PEER_NICE in
[0-9] | 1[0-9]) ;;
*) echo "replay.sh: REPLAY_PEER_NICE must be 0..19, not '$PEER_NICE'" >&2; exit 2 ;;
esac
for f in "$KB" "$STRATAD" ${BASE:+"$BASE/tools/stratad"}; do
    [ -x "$f" ] || { echo "replay.sh: $f not built (cmake --build $BUILD)" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "replay.sh: curl is required" >&2; exit 1; }

DIR=$(mktemp -d "${BENCH_DIR:-/tmp}/strata-replay.XXXXXX")
BPID=
cleanup() {
    [ -n "$BPID" ] && kill "$BPID" 2>/dev/null && wait "$BPID" 2>/dev/null || true
    scripts/s3server.sh stop "$DIR/s3" >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

mkdir -p "$DIR/s3"
URL=$(scripts/s3server.sh start "$(free_port)" "$DIR/s3" strata)
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=$URL
KPORT=$(free_port)
APORT=$(free_port)
BOOT=127.0.0.1:$KPORT

start_broker() { # [stratad binary [extra arguments]]
    : >"$DIR/broker.log"
    local bin=${1:-$STRATAD}
    [ $# -gt 0 ] && shift
    # The extra arguments last: they may override the settings above.
    "$bin" --log-dir "$DIR/data" --smp 2 --listeners "$BOOT" --admin-listener "127.0.0.1:$APORT" \
        -X remote.log.storage.system.enable=true -X strata.archive.url=s3://strata/bench \
        -X log.segment.bytes=16777216 -X log.retention.check.interval.ms=500 \
        -X strata.cache.bytes=$((4 * MB * 1048576)) "$@" \
        >>"$DIR/broker.log" 2>&1 &
    BPID=$!
    for _ in $(seq 300); do
        grep -q "stratad: started" "$DIR/broker.log" && return 0
        sleep 0.1
    done
    echo "replay.sh: broker did not start" >&2; cat "$DIR/broker.log" >&2; exit 1
}
stop_broker() { # appends the broker log of this run to $1
    kill "$BPID"; wait "$BPID" || true; BPID=
    cp "$DIR/broker.log" "$1"
}
stat_sum() { # key logfile: sum of key= over the shards' "hydration stats" lines
    grep "hydration stats" "$2" | grep -o " $1=[0-9]*" | cut -d= -f2 | awk '{s+=$1} END {print s+0}'
}

echo "== fill: $MB MiB of 4 KiB random records into arch (archived) and hot (local)"
start_broker
/usr/bin/python3 - "$BOOT" "$MB" <<'EOF'
import os, sys
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
boot, mb = sys.argv[1], int(sys.argv[2])
a = AdminClient({"bootstrap.servers": boot})
# "lat" (the lat pairs' produce) is not archived: its own uploads would land on some of the
# produces and not others (16 MiB segments), and compete for the S3 server.
fs = a.create_topics([NewTopic("arch", 1, 1, config={"local.retention.bytes": "33554432"}),
                      NewTopic("hot", 1, 1, config={"remote.storage.enable": "false"}),
                      NewTopic("lat", 1, 1, config={"remote.storage.enable": "false"})])
for f in fs.values():
    f.result(30)
p = Producer({"bootstrap.servers": boot, "acks": "all", "linger.ms": 5,
              "batch.size": 1000000, "queue.buffering.max.kbytes": 262144})
for i in range(mb * 256):
    v = os.urandom(4096)
    for t in ("arch", "hot"):
        while True:
            try:
                p.produce(t, v, partition=0)
                break
            except BufferError:
                p.poll(0.1)
    p.poll(0)
assert p.flush(120) == 0
EOF
# Wait until the archive holds all but the local tail and local retention dropped the head.
for _ in $(seq 600); do
    ok=$(/usr/bin/python3 - "$DIR/data" <<'EOF'
import glob, os, sqlite3, sys
d = sys.argv[1]
segs = sorted(glob.glob(os.path.join(d, "arch-0", "*.log")))
db = sqlite3.connect(os.path.join(d, "remote-index.db"))
hi = db.execute("SELECT max(last_offset) FROM segments WHERE topic='arch'").fetchone()[0]
first = int(os.path.basename(segs[0])[:20]) if segs else 0
print(1 if hi is not None and first > 0 and first <= hi + 1 and len(segs) <= 4 else 0)
EOF
)
    [ "$ok" = 1 ] && break
    sleep 0.5
done
[ "$ok" = 1 ] || { echo "replay.sh: uploads did not drain" >&2; exit 1; }
stop_broker "$DIR/fill.log"
# The S3 test server does not sync its objects: without this, the kernel writes the uploaded
# GiB back dirty_expire (30 s) later, in one burst that lands on whatever is measured then
# (make bench 20261205T090209Z: 2.2 GB written during the first produce-during-replay round,
# 0.61 ms per write instead of 0.07; a remote S3 would never write on the broker's disk).
sync

echo "== raw: sequential 16 MiB ranged GETs of the same objects (curl)"
/usr/bin/python3 - "$DIR/data/remote-index.db" >"$DIR/objects" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for k, s in db.execute("SELECT object_key, size FROM segments WHERE topic='arch' ORDER BY base_offset"):
    print(k, s)
EOF
S3PID=$(cat "$DIR/s3/s3rver.pid")
# CPU seconds (user + system) of a process, and busy seconds of the whole machine: who used
# the 2 cores during the raw GETs and during the cold replay.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
busy() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / {print ($2 + $3 + $4 + $7 + $8) / hz}' /proc/stat; }
minflt_of() { awk '{print $10}' "/proc/$1/stat"; }
cpu_snap() { # time, machine busy, S3 server, stratad (0 while no broker runs), its minor faults
    echo "$(date +%s.%N) $(busy) $(cpu_of "$S3PID") $([ -n "$BPID" ] && cpu_of "$BPID" || echo 0)" \
        "$([ -n "$BPID" ] && minflt_of "$BPID" || echo 0)"
}
# cpu_json START END: what the snapshots say, as JSON.
cpu_json() {
    /usr/bin/python3 -c 'import json, sys
a, b = [list(map(float, x.split())) for x in sys.argv[1:3]]
d = [y - x for x, y in zip(a, b)]
print(json.dumps({"seconds": round(d[0], 3), "machine_busy_s": round(d[1], 3),
                  "s3server_cpu_s": round(d[2], 3), "stratad_cpu_s": round(d[3], 3),
                  "stratad_minor_faults": int(d[4])}))' "$1" "$2"
}
raw_gets() { # sequential ranged GETs of every object: sets raw_bytes, raw_mbps, raw_cpu
c0=$(cpu_snap)
t0=$(date +%s.%N)
raw_bytes=0
while read -r key size; do
    pos=0
    while [ "$pos" -lt "$size" ]; do
        end=$((pos + 16777216 - 1))
        [ "$end" -ge "$size" ] && end=$((size - 1))
        n=$(curl -sS --fail --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER \
            -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -H "Range: bytes=$pos-$end" \
            -o /dev/null -w '%{size_download}' "$URL/strata/bench/$key")
        raw_bytes=$((raw_bytes + n))
        pos=$((end + 1))
    done
done <"$DIR/objects"
t1=$(date +%s.%N)
raw_cpu=$(cpu_json "$c0" "$(cpu_snap)")
raw_mbps=$(awk -v b="$raw_bytes" -v a="$t0" -v z="$t1" 'BEGIN {printf "%.1f", b / (z - a) / 1e6}')
echo "  raw: $raw_bytes bytes of $(wc -l <"$DIR/objects") objects, $raw_mbps MB/s"
}
raw_gets
raw1_mbps=$raw_mbps
raw1_cpu=$raw_cpu

consume() { # topic -> JSON of strata bench consume (or bench fetch: REPLAY_DRIVER=fetch)
    ${CONSUME_NICE:+nice -n "$CONSUME_NICE"} "$KB" --brokers "$BOOT" --format json \
        bench "${REPLAY_DRIVER:-consume}" --topic "$1" --duration 600s \
        2>"$DIR/kb.err" || { cat "$DIR/kb.err" >&2; exit 1; }
    cat "$DIR/kb.err" >&2
}
jget() { /usr/bin/python3 -c "import json,sys; print(json.loads(sys.argv[1])['$2'])" "$1"; }

echo "== cold: cache deleted, replay arch from offset 0"
rm -rf "$DIR/data/cache"
start_broker "$STRATAD" "${THIS_ARGS[@]}"
# Profiles of the broker during the cold replay (perf record on-CPU, system-wide
# sched_switch for off-CPU time) when BENCH_PERF_DIR is set.
PERF_PIDS=()
if [ -n "${BENCH_PERF_DIR:-}" ] && command -v perf >/dev/null; then
    perf record -q -g -F 999 -p "$BPID" -o "$DIR/cold-cpu.data" >/dev/null 2>&1 &
    PERF_PIDS+=($!)
    perf record -q -g -a -e sched:sched_switch -o "$DIR/cold-off.data" >/dev/null 2>&1 &
    PERF_PIDS+=($!)
    sleep 0.5
fi
c0=$(cpu_snap)
cold=$(consume arch)
cold_cpu=$(cpu_json "$c0" "$(cpu_snap)")
if [ ${#PERF_PIDS[@]} -gt 0 ]; then
    mkdir -p "$BENCH_PERF_DIR"
    kill -INT "${PERF_PIDS[@]}"
    wait "${PERF_PIDS[@]}" || true
    {
        perf report -i "$DIR/cold-cpu.data" --stdio --no-children --sort pid -g none 2>/dev/null |
            grep -v '^$' | grep -v '^# *$' | head -20
        perf report -i "$DIR/cold-cpu.data" --stdio --no-children --sort pid,dso,sym \
            --percent-limit 1 -g none 2>/dev/null | grep -v '^$' | grep -v '^# *$' | head -60
    } >"$BENCH_PERF_DIR/cold-oncpu.txt" || true
    perf script -i "$DIR/cold-off.data" -F comm,tid,time,trace,ip,sym 2>/dev/null |
        /usr/bin/python3 bench/offcpu.py "$BPID" "$BENCH_PERF_DIR/cold-offcpu.json" \
            >"$BENCH_PERF_DIR/cold-offcpu.txt" || true
fi
stop_broker "$DIR/cold.log"
cold_dl=$(stat_sum downloaded_bytes "$DIR/cold.log")
cold_ra=$(stat_sum readahead_downloads "$DIR/cold.log")
cold_gets=$(stat_sum downloads "$DIR/cold.log")
cold_pf=$(stat_sum prefetch_windows "$DIR/cold.log")
# cold_once BINARY [ARGS]: record MB/s of one cold replay of arch (cache deleted).
cold_once() {
    rm -rf "$DIR/data/cache"
    start_broker "$@"
    local j
    j=$(consume arch)
    stop_broker "$DIR/once.log"
    jget "$j" mb_per_s
}
# The same cold replay read by the raw Fetch driver (`strata bench fetch`: batch level, one
# Fetch in flight per leader, nothing done per record) when the main driver is librdkafka's,
# whose consumer needs CPU per record on the 2 cores the broker and the S3 server share
# (bench/REPORT.md): the target is judged on the raw driver, both figures are reported.
cold_fetch_mbps=null
if [ "${REPLAY_DRIVER:-consume}" = consume ]; then
    echo "== cold, raw Fetch driver: cache deleted, replay arch from offset 0"
    cold_fetch_mbps=$(REPLAY_DRIVER=fetch cold_once "$STRATAD" "${THIS_ARGS[@]}")
fi
# Before/after rounds: raw, this build and the base (order alternating), raw again; each
# cold figure is compared with the mean of the raws around it, and this build with the base
# run next to it (the machine's load changes within seconds).
: >"$DIR/rounds"
if [ -n "$BASE" ]; then
    for i in $(seq "$ROUNDS"); do
        echo "== round $i/$ROUNDS: raw, cold (this build and $BASE ${BASE_ARGS[*]}), raw"
        raw_gets
        ra=$raw_mbps
        if [ $((i % 2)) = 1 ]; then
            c_this=$(cold_once "$STRATAD" "${THIS_ARGS[@]}")
            c_base=$(cold_once "$BASE/tools/stratad" "${BASE_ARGS[@]}")
        else
            c_base=$(cold_once "$BASE/tools/stratad" "${BASE_ARGS[@]}")
            c_this=$(cold_once "$STRATAD" "${THIS_ARGS[@]}")
        fi
        raw_gets
        echo "$ra $c_this $c_base $raw_mbps" >>"$DIR/rounds"
    done
fi
raw_mbps=$raw1_mbps # the main cold figure is compared with the raw GETs just before it
raw_cpu=$raw1_cpu

# Where a produce waits, for the lat pairs: the broker's histograms (produce stages, fsync, loop
# lag, request latency) between two scrapes of GET /metrics, and the data disk's writes and
# cache flushes (/proc/diskstats: count and milliseconds the device took) in the same window.
DISK=$(awk -v d="$(stat -c %d "$DIR")" 'BEGIN {ma = int(d / 256); mi = d % 256}
    $1 == ma && $2 == mi {print $3}' /proc/diskstats)
scrape() { curl -s --max-time 5 "http://127.0.0.1:$APORT/metrics" >"$1" || : >"$1"; }
disk_snap() { # writes, sectors written, ms writing, flushes, ms flushing, discards, ms
    # discarding; dirty and writeback pages
    awk -v d="$DISK" '$3 == d {printf "%s %s %s %s %s %s %s ", $8, $10, $11, $19, $20, $15, $18}' \
        /proc/diskstats
    awk '/^nr_dirty |^nr_writeback / {printf "%s ", $2}' /proc/vmstat
    echo
}
# window_json PREFIX: JSON of the broker histograms and the disk between PREFIX.m0/.d0 and .m1/.d1.
window_json() {
    /usr/bin/python3 -c 'import json, sys
m = json.loads(sys.argv[1])
a, b = (list(map(float, x.split())) if x.split() else [0] * 9 for x in sys.argv[2:4])
d = [y - x for x, y in zip(a, b)]
disk = {"writes": int(d[0]), "written_mb": round(d[1] * 512 / 1e6, 1),
        "write_ms_per_io": round(d[2] / d[0], 3) if d[0] > 0 else None, "flushes": int(d[3]),
        "flush_ms_per_io": round(d[4] / d[3], 3) if d[3] > 0 else None, "discards": int(d[5]),
        "discard_ms": int(d[6]), "dirty_mb_end": round(b[7] * 4096 / 1e6, 1) if len(b) > 7 else None,
        "writeback_mb_end": round(b[8] * 4096 / 1e6, 1) if len(b) > 8 else None}
print(json.dumps({"metrics": m, "disk": disk}))' \
        "$(/usr/bin/python3 bench/promdelta.py "$1.m0" "$1.m1" produce_stage fsync loop_lag \
            'api=Produce' 'api=Fetch' 2>/dev/null || echo '{}')" "$(cat "$1.d0")" "$(cat "$1.d1")"
}
# With BENCH_PERF_DIR: scheduler delays (bench/schedlat.py) of every thread during the alone and
# the during produce of the first lat round of each binary (lat-N-sched-{alone,during}.txt).
sched_start() { # tag file
    [ -n "$2" ] || return 0
    perf record -q -a -e sched:sched_wakeup -e sched:sched_wakeup_new -e sched:sched_switch \
        -o "$DIR/sched-$1.data" >/dev/null 2>&1 &
    SCHED_PID=$!
}
sched_stop() { # tag file
    [ -n "$2" ] || return 0
    kill -INT "$SCHED_PID"
    wait "$SCHED_PID" || true
    perf script -i "$DIR/sched-$1.data" -F comm,tid,time,event,trace 2>/dev/null |
        /usr/bin/python3 bench/schedlat.py "$2.json" >"$2.txt" || true
    rm -f "$DIR/sched-$1.data"
}

# peers_nice N: every thread of the S3 test server to nice N (back to 0 needs root: else the
# server stays niced, which only the lat rounds that follow see).
peers_nice() {
    local t
    for t in /proc/"$S3PID"/task/*; do
        renice -n "$1" -p "${t##*/}" >/dev/null 2>&1 || true
    done
}
LAT_NICE=0 # lat_once's peers' nice value (the S3 server and the consumer during the replay)
# lat_once BINARY [ARGS]: produce p99 alone, then during a cold replay (cache deleted); JSON.
lat_once() {
    rm -rf "$DIR/data/cache"
    sync # each pair starts with nothing of earlier steps left to write back
    start_broker "$@"
    lat() { "$KB" --brokers "$BOOT" --format json bench produce -t lat --acks all --linger-ms 0 \
        --rate "$LAT_RATE" -s 1024 --random -d "${LAT_SECONDS}s" 2>>"$DIR/kb-lat.err"; }
    local alone during c0 c1 p0 p1 a0 stag=""
    if [ -n "${BENCH_PERF_DIR:-}" ] && command -v perf >/dev/null &&
        ! grep -qxF "$*" "$DIR/sched-profiled" 2>/dev/null; then
        echo "$*" >>"$DIR/sched-profiled"
        mkdir -p "$BENCH_PERF_DIR"
        stag="$BENCH_PERF_DIR/lat-$(wc -l <"$DIR/sched-profiled")-sched"
    fi
    scrape "$DIR/wa.m0"
    disk_snap >"$DIR/wa.d0"
    sched_start alone "${stag:+$stag-alone}"
    a0=$(date +%s.%N)
    alone=$(lat) || { cat "$DIR/kb-lat.err" >&2; exit 1; }
    sched_stop alone "${stag:+$stag-alone}"
    disk_snap >"$DIR/wa.d1"
    scrape "$DIR/wa.m1"
    c0=$(date +%s.%N)
    [ "$LAT_NICE" = 0 ] || peers_nice "$LAT_NICE"
    ( CONSUME_NICE=$LAT_NICE consume arch >"$DIR/lat-consume.json"
      date +%s.%N >"$DIR/lat-consume.end" ) &
    local cpid=$!
    sleep 0.3
    # With BENCH_PERF_DIR: profiles of the whole machine during the first produce-during-replay
    # of each binary (lat-<n>-*.txt): on-CPU time per thread (who competes with the shard
    # loops and the flusher) and stratad's off-CPU time per thread and stack.
    local perf_pids=() ptag=""
    if [ -n "${BENCH_PERF_DIR:-}" ] && command -v perf >/dev/null &&
        ! grep -qxF "$*" "$DIR/lat-profiled" 2>/dev/null; then
        echo "$*" >>"$DIR/lat-profiled"
        ptag="$BENCH_PERF_DIR/lat-$(wc -l <"$DIR/lat-profiled")"
        perf record -q -g -a -F 499 -o "$DIR/lat-cpu.data" >/dev/null 2>&1 &
        perf_pids+=($!)
        perf record -q -g -a -e sched:sched_switch -e sched:sched_wakeup -o "$DIR/lat-off.data" \
            >/dev/null 2>&1 &
        perf_pids+=($!)
    fi
    scrape "$DIR/wd.m0"
    disk_snap >"$DIR/wd.d0"
    sched_start during "${stag:+$stag-during}"
    p0=$(date +%s.%N)
    during=$(lat) || { cat "$DIR/kb-lat.err" >&2; exit 1; }
    p1=$(date +%s.%N)
    sched_stop during "${stag:+$stag-during}"
    disk_snap >"$DIR/wd.d1"
    scrape "$DIR/wd.m1"
    if [ ${#perf_pids[@]} -gt 0 ]; then
        mkdir -p "$BENCH_PERF_DIR"
        kill -INT "${perf_pids[@]}"
        wait "${perf_pids[@]}" || true
        {
            echo "binary: $1 ${*:2}"
            perf report -i "$DIR/lat-cpu.data" --stdio --no-children --sort comm,pid -g none \
                --percent-limit 0.5 2>/dev/null | grep -v '^$' | grep -v '^# *$' | head -60
            perf report -i "$DIR/lat-cpu.data" --stdio --no-children --pid "$BPID" \
                --sort pid,sym --percent-limit 0.3 -g none 2>/dev/null |
                grep -v '^$' | grep -v '^# *$' | head -80
        } >"$ptag-oncpu.txt" || true
        perf script -i "$DIR/lat-off.data" -F comm,tid,time,trace,ip,sym 2>/dev/null |
            /usr/bin/python3 bench/offcpu.py "$BPID" "$ptag-offcpu.json" >"$ptag-offcpu.txt" || true
    fi
    wait "$cpid"
    [ "$LAT_NICE" = 0 ] || peers_nice 0
    c1=$(cat "$DIR/lat-consume.end")
    stop_broker "$DIR/lat.log"
    echo "  lat $*: alone from $a0 p99 $(jget "$alone" p99_ms) ms; during from $p0 to $p1 p99" \
        "$(jget "$during" p99_ms) ms, replay $(jget "$(cat "$DIR/lat-consume.json")" mb_per_s) MB/s" >&2
    /usr/bin/python3 -c 'import json, sys
a, d, c, wa, wd = (json.loads(x) for x in sys.argv[1:6])
c0, c1, p0, p1 = map(float, sys.argv[6:10])
def show(w):  # mean / p99 bucket (ms) of each produce stage, fsync, disk ms per write / flush
    m = w["metrics"]
    st = " ".join("%s %.2f/%s" % (k.split("stage=")[1].rstrip("}"), v["mean_ms"], v["p99_le_ms"])
                  for k, v in m.items() if "stage=" in k)
    fs = m.get("strata_log_fsync_latency_seconds", {})
    return "%s | fsync %s/%s x%s | disk write %s flush %s ms" % (
        st, fs.get("mean_ms"), fs.get("p99_le_ms"), fs.get("count"),
        w["disk"]["write_ms_per_io"], w["disk"]["flush_ms_per_io"])
print("    stages mean/p99 ms alone:  " + show(wa), file=sys.stderr)
print("    stages mean/p99 ms during: " + show(wd), file=sys.stderr)
print(json.dumps({"alone": a, "during": d, "replay_mb_per_s": c["mb_per_s"],
                  "overlap": round(max(0.0, min(c1, p1) - max(c0, p0)) / (p1 - p0), 3),
                  "p99_ratio": round(d["p99_ms"] / a["p99_ms"], 2) if a["p99_ms"] else None,
                  "broker_alone": wa, "broker_during": wd}))' \
        "$alone" "$during" "$(cat "$DIR/lat-consume.json")" "$(window_json "$DIR/wa")" \
        "$(window_json "$DIR/wd")" "$c0" "$c1" "$p0" "$p1"
}
# lat_summary JSON...: the rounds of one build; JSON with every round and the median ratio.
lat_summary() {
    /usr/bin/python3 -c 'import json, statistics, sys
rs = [json.loads(x) for x in sys.argv[1:]]
out = dict(rs[len(rs) // 2])  # a representative round for the report line
out["rounds"] = [{"alone_p99_ms": r["alone"]["p99_ms"], "during_p99_ms": r["during"]["p99_ms"],
                  "p99_ratio": r["p99_ratio"], "overlap": r["overlap"],
                  "replay_mb_per_s": r["replay_mb_per_s"], "broker_alone": r.get("broker_alone"),
                  "broker_during": r.get("broker_during")} for r in rs]
out["p99_ratio"] = statistics.median(r["p99_ratio"] for r in rs)
out["alone"]["p99_ms"] = statistics.median(r["alone"]["p99_ms"] for r in rs)
out["during"]["p99_ms"] = statistics.median(r["during"]["p99_ms"] for r in rs)
out["replay_mb_per_s"] = statistics.median(r["replay_mb_per_s"] for r in rs)
# Steadier than the client p99 on a shared machine: the mean Produce latency of the broker during
# the replay over alone, and the fdatasyncs over 25 ms during it, per round.
def mean_of(w, k):
    return ((w or {}).get("metrics") or {}).get(k, {}).get("mean_ms")
PRQ, FS = "strata_kafka_request_latency_seconds{api=Produce}", "strata_log_fsync_latency_seconds"
rat = [mean_of(r.get("broker_during"), PRQ) / mean_of(r.get("broker_alone"), PRQ) for r in rs
       if mean_of(r.get("broker_during"), PRQ) and mean_of(r.get("broker_alone"), PRQ)]
out["broker_produce_mean_ratio"] = round(statistics.median(rat), 2) if rat else None
out["slow_fsyncs_during"] = [((r.get("broker_during") or {}).get("metrics") or {}).get(FS, {}).get(
    "over_25ms") for r in rs]
print(json.dumps(out))' "$@"
}
# ROUNDS lat_once rounds of this build, and of the base when set, the two alternating
# (this, base; base, this; ...): both builds see the same minutes of the machine's load.
# lat_rounds: the rounds at the peers' nice value LAT_NICE; sets lat_json and base_lat_json.
lat_rounds() {
    local lat_this=() lat_base=() i
    for i in $(seq "$ROUNDS"); do
        if [ -z "$BASE" ] || [ $((i % 2)) = 1 ]; then
            lat_this+=("$(lat_once "$STRATAD" "${THIS_ARGS[@]}")")
            [ -z "$BASE" ] || lat_base+=("$(lat_once "$BASE/tools/stratad" "${BASE_ARGS[@]}")")
        else
            lat_base+=("$(lat_once "$BASE/tools/stratad" "${BASE_ARGS[@]}")")
            lat_this+=("$(lat_once "$STRATAD" "${THIS_ARGS[@]}")")
        fi
    done
    lat_json=$(lat_summary "${lat_this[@]}")
    base_lat_json=null
    [ -z "$BASE" ] || base_lat_json=$(lat_summary "${lat_base[@]}")
}
echo "== lat: produce p99 alone vs during a cold replay"
lat_rounds
lat=$lat_json
base_lat=$base_lat_json
lat_niced=null
base_lat_niced=null
if [ "$PEER_NICE" != 0 ]; then
    echo "== lat again, the replay's S3 server and consumer at nice $PEER_NICE"
    LAT_NICE=$PEER_NICE
    lat_rounds
    lat_niced=$lat_json
    base_lat_niced=$base_lat_json
    LAT_NICE=0
fi

echo "== warm: restarted, cache kept"
start_broker "$STRATAD" "${THIS_ARGS[@]}"
warm=$(consume arch)
hot=$(consume hot)
stop_broker "$DIR/warm.log"
warm_gets=$(stat_sum downloads "$DIR/warm.log")
warm_hits=$(stat_sum cache_hits "$DIR/warm.log")
warm_ahead=$(stat_sum cache_ahead_hits "$DIR/warm.log")
# With a base build: warm replays of the same cache by each build, REPLAY_ROUNDS times,
# alternating (one "this base" line of MB/s per round).
: >"$DIR/warm_rounds"
if [ -n "$BASE" ]; then
    echo "== warm again, $ROUNDS rounds alternating with the base build"
    for i in $(seq "$ROUNDS"); do
        w_this= w_base=
        for who in $([ $((i % 2)) = 1 ] && echo "base this" || echo "this base"); do
            if [ "$who" = this ]; then
                start_broker "$STRATAD" "${THIS_ARGS[@]}"
                w_this=$(jget "$(consume arch)" mb_per_s)
            else
                start_broker "$BASE/tools/stratad" "${BASE_ARGS[@]}"
                w_base=$(jget "$(consume arch)" mb_per_s)
            fi
            stop_broker "$DIR/warm-$who-$i.log"
        done
        echo "$w_this $w_base" >>"$DIR/warm_rounds"
    done
fi

/usr/bin/python3 - "$cold" "$warm" "$hot" "$raw_mbps" "$raw_bytes" "$cold_dl" "$cold_gets" \
    "$cold_ra" "$warm_gets" "$warm_hits" "$MB" "$raw_cpu" "$cold_cpu" "$cold_pf" "$DIR/rounds" \
    "$raw1_mbps" "$lat" "$base_lat" "$cold_fetch_mbps" "$lat_niced" "$base_lat_niced" "$PEER_NICE" \
    "$warm_ahead" "$DIR/warm_rounds" <<'EOF' | tee -a "${BENCH_OUT:-bench/results/replay-$(date -u +%Y%m%dT%H%M%SZ).jsonl}"
import json, os, sys
cold, warm, hot = (json.loads(x) for x in sys.argv[1:4])
raw, raw_bytes, cold_dl, cold_gets, cold_ra, warm_gets, warm_hits, mb = sys.argv[4:12]
raw_cpu, cold_cpu = json.loads(sys.argv[12]), json.loads(sys.argv[13])
import statistics
cold_pf, raw1 = sys.argv[14], sys.argv[16]
rounds = [list(map(float, l.split())) for l in open(sys.argv[15]) if l.strip()]
lat, base_lat = json.loads(sys.argv[17]), json.loads(sys.argv[18])
raw = float(raw)
cold_obj = int(cold_dl) / cold["seconds"] / 1e6
r = {"bench": "replay", "mb": int(mb), "raw_get_mb_per_s": raw,
     "cold_mb_per_s": cold["mb_per_s"], "cold_ratio_to_raw": round(cold["mb_per_s"] / raw, 3),
     "cold_object_mb_per_s": round(cold_obj, 1),
     "cold_object_ratio_to_raw": round(cold_obj / raw, 3),
     "cold_gets": int(cold_gets), "cold_readahead_gets": int(cold_ra),
     "cold_complete": cold["complete"], "warm_mb_per_s": warm["mb_per_s"],
     "warm_gets": int(warm_gets), "warm_cache_hits": int(warm_hits),
     "warm_cache_ahead_hits": int(sys.argv[23]),
     "hot_mb_per_s": hot["mb_per_s"], "warm_ratio_to_hot": round(warm["mb_per_s"] / hot["mb_per_s"], 3),
     "raw_cpu": raw_cpu, "cold_cpu": cold_cpu, "cold_prefetch_windows": int(cold_pf),
     "raw_get_first_mb_per_s": float(raw1), "lat": lat}
cold_fetch = json.loads(sys.argv[19])  # MB/s, or null
lat_niced, base_lat_niced = json.loads(sys.argv[20]), json.loads(sys.argv[21])
if lat_niced is not None:
    lat_niced["peer_nice"] = int(sys.argv[22])
    r["lat_peers_niced"] = lat_niced
if cold_fetch is not None:
    r["cold_fetch_mb_per_s"] = cold_fetch
    r["cold_fetch_ratio_to_raw"] = round(cold_fetch / raw, 3)
if rounds:
    rr = [{"raw_before": a, "this": n, "base": b, "raw_after": z,
           "this_ratio_to_raw": round(2 * n / (a + z), 3), "base_ratio_to_raw": round(2 * b / (a + z), 3),
           "this_over_base": round(n / b, 3)} for a, n, b, z in rounds]
    r["this_args"] = os.environ.get("REPLAY_ARGS", "")
    r["base"] = {"build": os.environ.get("REPLAY_BASE"), "args": os.environ.get("REPLAY_BASE_ARGS", ""),
                 "rounds": rr, "lat": base_lat, "lat_peers_niced": base_lat_niced,
                 "this_ratio_to_raw": statistics.median(x["this_ratio_to_raw"] for x in rr),
                 "base_ratio_to_raw": statistics.median(x["base_ratio_to_raw"] for x in rr),
                 "this_over_base": statistics.median(x["this_over_base"] for x in rr)}
warm_rounds = [list(map(float, l.split())) for l in open(sys.argv[24]) if l.strip()]
if warm_rounds:
    r.setdefault("base", {})["warm_rounds"] = [{"this": n, "base": b} for n, b in warm_rounds]
    r["base"]["warm_this_over_base"] = statistics.median(n / b for n, b in warm_rounds)
print(json.dumps(r))
if warm_rounds:
    print("warm replay, %d rounds alternating: this build %s MB/s, base %s MB/s; this / base "
          "(median) %.2f" % (len(warm_rounds), " ".join("%.1f" % n for n, _ in warm_rounds),
                             " ".join("%.1f" % b for _, b in warm_rounds),
                             r["base"]["warm_this_over_base"]), file=sys.stderr)
if cold_fetch is not None:
    print("cold replay, raw Fetch driver: %.1f MB/s / raw GET %.1f MB/s = %.2f (target >= 0.9)"
          % (cold_fetch, raw, r["cold_fetch_ratio_to_raw"]), file=sys.stderr)
print("cold replay %.1f MB/s (objects %.1f MB/s) / raw GET %.1f MB/s = %.2f (target >= 0.9); "
      "warm %.1f MB/s / hot %.1f MB/s = %.2f" % (cold["mb_per_s"], cold_obj, raw,
      r["cold_ratio_to_raw"], warm["mb_per_s"], hot["mb_per_s"], r["warm_ratio_to_hot"]),
      file=sys.stderr)
if rounds:
    b = r["base"]
    print("%d rounds (median): cold / raw GETs: this build %.2f, base %s %s %.2f; this build / base "
          "%.2f" % (len(rr), b["this_ratio_to_raw"], b["build"], b["args"], b["base_ratio_to_raw"],
                    b["this_over_base"]), file=sys.stderr)
for name, l in (("this build", lat), ("base build", base_lat),
                ("this build, peers at nice %s" % sys.argv[22], lat_niced),
                ("base build, peers at nice %s" % sys.argv[22], base_lat_niced)):
    if l:
        print("%s: produce p99 (median of rounds) %.2f ms alone, %.2f ms during a cold replay (%.1f MB/s, overlap "
              "%.0f%%): ratio %s (target <= 1.5); broker's mean Produce latency during / alone %s, "
              "fdatasyncs over 25 ms during %s" % (name, l["alone"]["p99_ms"],
              l["during"]["p99_ms"], l["replay_mb_per_s"], 100 * l["overlap"], l["p99_ratio"],
              l.get("broker_produce_mean_ratio"), l.get("slow_fsyncs_during")), file=sys.stderr)
EOF
