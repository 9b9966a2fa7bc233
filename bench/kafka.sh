#!/usr/bin/env bash
# kafka.sh - Kafka benchmarks against a real stratad, as ratios to this machine's limits
# measured in the same run (never part of `make test`; nothing asserts on the numbers).
#
# Limits (same filesystem as the broker's data directory):
#   disk      fdatasync'd sequential writes of the size the broker sees (one producer
#             batch, --batch-bytes): fio if installed, else build/bench/log_append's raw
#             probe. Also the latency of one such write+fdatasync.
#   disk@sync the same probe with one write per fdatasync of the size the broker actually
#             syncs (bytes / fdatasync counted with perf on stratad; fio and perf only):
#             the disk's bandwidth at the broker's group-commit granularity.
#   loopback  TCP bandwidth over 127.0.0.1: iperf3 if installed, else `strata bench loopback`.
#   page cache buffered writes of 1 GiB into new pages, then rewriting them (resident): on a
#             VM that returns freed pages to the host the first is far lower (context for 3.).
# Scenarios (`strata bench` on librdkafka, 1 KiB records):
#   1. produce acks=all at max rate, 1 and 8 partitions: MB/s / disk (target >= 0.8);
#   2. hot consume of what 1. wrote (page cache): MB/s / loopback, with two drivers on the same
#      data: `strata bench consume` (librdkafka: parses every record, its fetch thread is
#      CPU-bound per record) and `strata bench fetch` (raw Fetch v12 at record-batch level:
#      CRC-32C per batch, nothing per record; MB/s of record batches, ~1 % above the values);
#   3. produce acks=all, 1 partition, at 50% of the lower of 1.'s maxima: p50/p99/p999
#      latency, p99 / one write+fdatasync (target <= 3); repeated, the median run counts,
#      and a run that could not keep the rate is flagged "overloaded". The same load with
#      acks=1 runs after each, as the latency floor without fdatasync.
#   7. CPU of stratad during 1. (1 partition): cycles per produced byte, from `perf stat -e
#      cycles` where the PMU is exposed, else CPU time (/proc/PID/stat) x the CPU clock.
# Peer baseline: librdkafka's in-memory mock cluster (`strata bench mock`) runs 1., 2. and 3.'s
# acks=all load with the same client settings in the same run.
# Profiles: an extra acks=all latency run (not counted) under perf: on-CPU (cpu-clock),
# off-CPU (sched:sched_switch with kernel stacks: where the shard threads block) and perf trace
# of write/fdatasync durations per thread; the summaries go to $BENCH_PERF_DIR when set.
# The disk is probed twice (before 1. and after it); ratios use the better probe.
# Prints a table and appends one JSON line per scenario to $BENCH_OUT (default
# bench/results/kafka-<UTC>.jsonl).
# Usage: bench/kafka.sh [BUILD_DIR]   env: KBENCH_SECONDS (10), KBENCH_BATCH_BYTES (65536),
#        KBENCH_LATENCY_RUNS (3: scenario 3 is repeated, the run with the median p99 counts),
#        BENCH_DIR (where the temp data dir goes; default the repo, i.e. its filesystem),
#        KBENCH_NO_FIO=1 (use log_append's raw probe even when fio is installed)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SECS=${KBENCH_SECONDS:-10}
RECORD=1024
BATCH=${KBENCH_BATCH_BYTES:-65536}
LINGER=5
LAT_LINGER=0 # latency runs: no artificial client delay
LAT_RUNS=${KBENCH_LATENCY_RUNS:-3}
KB=$BUILD/tools/strata
STRATAD=$BUILD/tools/stratad
for f in "$KB" "$STRATAD"; do
    [ -x "$f" ] || { echo "kafka.sh: $f not built (cmake --build $BUILD)" >&2; exit 1; }
done

DIR=$(mktemp -d "${BENCH_DIR:-$PWD}/.bench.XXXXXX")
SPID=""
IPID=""
MPID=""
cleanup() {
    [ -z "$IPID" ] || kill "$IPID" 2>/dev/null || true
    [ -z "$MPID" ] || kill "$MPID" 2>/dev/null || true
    if [ -n "$SPID" ]; then
        kill -TERM "$SPID" 2>/dev/null || true
        wait "$SPID" 2>/dev/null || true
    fi
    rm -rf "$DIR"
}
trap cleanup EXIT
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
jget() { # FILE KEY: a top-level value of a one-line JSON object
    python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])[sys.argv[2]])' "$1" "$2"
}
log() { echo "kafka.sh: $*" >&2; }

HAVE_FIO=0
[ -n "${KBENCH_NO_FIO:-}" ] || ! command -v fio >/dev/null 2>&1 || HAVE_FIO=1
HAVE_PERF=0
if command -v perf >/dev/null 2>&1 &&
    perf stat -e syscalls:sys_enter_fdatasync -x, -o /dev/null true >/dev/null 2>&1; then
    HAVE_PERF=1
fi

# ---- Limit: fdatasync'd sequential writes ----

# fio_probe BYTES SECONDS OUT.json: one job, write(BYTES) + fdatasync, repeated.
fio_probe() {
    fio --name=seqsync --directory="$DIR" --rw=write --bs="$1" --size=4g --fdatasync=1 \
        --ioengine=sync --runtime="$2" --time_based --output-format=json >"$3.fio" 2>/dev/null
    python3 - "$3.fio" "$1" >"$3" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
w, s = j["write"], j["sync"]["lat_ns"]
print(json.dumps({"tool": "fio", "write_bytes": int(sys.argv[2]),
                  "mb_per_s": w["bw_bytes"] / 1e6,
                  "write_sync_lat_ms": (w["clat_ns"]["mean"] + s["mean"]) / 1e6,
                  "sync_p50_ms": s["percentile"]["50.000000"] / 1e6,
                  "sync_p99_ms": s["percentile"]["99.000000"] / 1e6}))
EOF
    rm -f "$DIR"/seqsync.* "$3.fio"
}

# Fallback: log_append's raw probe (it also runs its own plog scenarios).
raw_probe() {
    local out
    out=$("$BUILD/bench/log_append" --dir "$DIR" --seconds "$2" --records $(($1 / RECORD)) \
        --record-bytes "$RECORD")
    echo "$out" >&2
    python3 - "$out" >"$3" <<'EOF'
import json, re, sys
m = re.search(r"raw write\+fdatasync of (\d+) B\s+([\d.]+) MB/s", sys.argv[1])
n, mbps = int(m.group(1)), float(m.group(2))
print(json.dumps({"tool": "log_append", "write_bytes": n, "mb_per_s": mbps,
                  "write_sync_lat_ms": n / (mbps * 1e6) * 1e3}))
EOF
}

# ---- Start the broker ----

PORT=$(free_port)
BROKERS=127.0.0.1:$PORT
"$STRATAD" --log-dir "$DIR/data" --smp 2 --listeners "$BROKERS" \
    --admin-listener "127.0.0.1:$(free_port)" >"$DIR/stratad.log" 2>&1 &
SPID=$!
for _ in $(seq 300); do
    grep -qs started "$DIR/stratad.log" && break
    kill -0 "$SPID" 2>/dev/null || { cat "$DIR/stratad.log" >&2; exit 1; }
    sleep 0.1
done
grep -q started "$DIR/stratad.log" || { log "stratad did not start"; exit 1; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "limits: disk (write+fdatasync of $BATCH B) ..."
if [ "$HAVE_FIO" = 1 ]; then
    fio_probe "$BATCH" 5 "$DIR/disk.json"
else
    raw_probe "$BATCH" 5 "$DIR/disk.json"
fi
log "limits: loopback TCP ..."
if command -v iperf3 >/dev/null 2>&1; then
    ip=$(free_port)
    iperf3 -s -1 -p "$ip" >/dev/null 2>&1 &
    IPID=$!
    sleep 0.5
    iperf3 -c 127.0.0.1 -p "$ip" -t 3 -J >"$DIR/iperf.json"
    wait "$IPID" 2>/dev/null || true
    IPID=""
    python3 -c 'import json, sys; j = json.load(open(sys.argv[1]))
print(json.dumps({"tool": "iperf3", "mb_per_s": j["end"]["sum_received"]["bits_per_second"] / 8e6}))' \
        "$DIR/iperf.json" >"$DIR/loop.json"
else
    "$KB" --format json bench loopback -d 3s | python3 -c 'import json, sys; j = json.loads(sys.stdin.read())
j["tool"] = "strata bench loopback"; print(json.dumps(j))' >"$DIR/loop.json"
fi

# The page cache: buffered writes of 1 GiB into a new file (no sync), then the same 1 GiB
# rewritten in place. On this VM (virtio-balloon free page reporting) a page the guest freed
# goes back to the host, and the first write into it waits for the host to fault it in: the
# broker's appends fill new pages at the first figure, a bound no broker setting moves.
log "limits: page cache, new pages vs resident ..."
pc_dd() { # FLAGS...: MB/s of a 1 GiB buffered dd into $DIR/pagecache.bin
    dd if=/dev/zero of="$DIR/pagecache.bin" bs=1M count=1024 "$@" 2>&1 |
        awk '/copied/ {print 1073.741824 / $(NF-3)}'
}
pc_new=$(pc_dd)
pc_res=$(pc_dd conv=notrunc)
rm -f "$DIR/pagecache.bin"
echo "{\"new_pages_mb_per_s\": ${pc_new:-0}, \"resident_mb_per_s\": ${pc_res:-0}}" >"$DIR/pagecache.json"

# ---- Load driver helpers (`strata bench`) ----

# kb_produce BROKERS TOPIC PARTITIONS ACKS LINGER_MS RATE OUT.json
kb_produce() {
    "$KB" --brokers "$1" --format json bench produce --topic "$2" --partitions "$3" --acks "$4" \
        --record-size "$RECORD" --linger-ms "$5" --batch-bytes "$BATCH" --compression none \
        --rate "$6" --duration "${SECS}s" >"$7"
}
# kb_consume BROKERS TOPIC PASSES OUT.json
kb_consume() {
    "$KB" --brokers "$1" --format json bench consume --topic "$2" --count "$3" --duration 60s >"$4"
}
# kb_fetch BROKERS TOPIC OUT.json: the raw Fetch driver over the same data
kb_fetch() {
    "$KB" --brokers "$1" --format json bench fetch --topic "$2" --duration 60s >"$3"
}
# CPU seconds (user + system) used so far by process $1.
cpu_s() {
    awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}
CPU_MHZ=$(awk -F: '/^cpu MHz/ {print $2 + 0; exit}' /proc/cpuinfo)
HAVE_CYCLES=0
perf stat -e cycles -x, true 2>&1 >/dev/null | grep -q '^[0-9]' && HAVE_CYCLES=1

# ---- 1. produce acks=all at max rate; fdatasyncs counted on stratad; 7. its CPU ----

for np in 1 8; do
    log "produce acks=all, $np partition(s), ${SECS}s ..."
    PERF_PID=""
    if [ "$HAVE_PERF" = 1 ]; then
        ev=syscalls:sys_enter_fdatasync,syscalls:sys_enter_pwrite64,task-clock
        [ "$HAVE_CYCLES" = 0 ] || ev=$ev,cycles
        perf stat -x, -e "$ev" -p "$SPID" -o "$DIR/perf-p$np.csv" &
        PERF_PID=$!
        sleep 0.2
    fi
    c0=$(cpu_s "$SPID")
    kb_produce "$BROKERS" "bench-p$np" "$np" all "$LINGER" 0 "$DIR/produce-p$np.json"
    c1=$(cpu_s "$SPID")
    syncs=0
    cycles=0
    if [ -n "$PERF_PID" ]; then
        kill -INT "$PERF_PID"
        wait "$PERF_PID" || true
        syncs=$(awk -F, '/sys_enter_fdatasync/ {print $1}' "$DIR/perf-p$np.csv")
        cycles=$(awk -F, '$3 == "cycles" && $1 ~ /^[0-9]+$/ {print $1}' "$DIR/perf-p$np.csv")
    fi
    echo "{\"fdatasyncs\": ${syncs:-0}, \"cpu_s\": $(awk -v a="$c0" -v b="$c1" 'BEGIN {print b - a}'),\
 \"cpu_mhz\": ${CPU_MHZ:-0}, \"perf_cycles\": ${cycles:-0}}" >"$DIR/syncs-p$np.json"
    # The disk at the broker's sync size: one write of bytes-per-fdatasync, then fdatasync.
    if [ "${syncs:-0}" -gt 0 ] && [ "$HAVE_FIO" = 1 ]; then
        bytes=$(python3 -c 'import sys; r = int(sys.argv[1]) * int(sys.argv[2]); s = int(sys.argv[3])
print(min(max(r // s // 4096 * 4096, 4096), 64 << 20))' \
            "$(jget "$DIR/produce-p$np.json" records)" "$RECORD" "$syncs")
        log "limits: disk at the broker's sync size ($bytes B per fdatasync) ..."
        fio_probe "$bytes" 3 "$DIR/disksync-p$np.json"
    fi
done

# The disk again: the machine is shared, and one 5 s probe can fall on someone else's burst.
# The report uses the better of the two (the higher bandwidth, the lower latency).
log "limits: disk again (write+fdatasync of $BATCH B) ..."
if [ "$HAVE_FIO" = 1 ]; then
    fio_probe "$BATCH" 5 "$DIR/disk2.json"
else
    raw_probe "$BATCH" 5 "$DIR/disk2.json"
fi

# ---- 2. hot consume (page cache) ----

for np in 1 8; do
    log "consume bench-p$np (hot) ..."
    kb_consume "$BROKERS" "bench-p$np" 1 "$DIR/consume-p$np.json"
    log "fetch bench-p$np (hot, raw Fetch driver) ..."
    kb_fetch "$BROKERS" "bench-p$np" "$DIR/fetch-p$np.json"
done

# ---- 3. produce latency at 50% of the 1-partition max ----

# 50% of the lower of the two maxima: one max on this shared machine can be a lucky window,
# and a rate above what the broker sustains measures queueing, not latency.
RATE=$(python3 -c 'import sys; print(int(min(map(float, sys.argv[1:])) / 2))' \
    "$(jget "$DIR/produce-p1.json" records_per_s)" "$(jget "$DIR/produce-p8.json" records_per_s)")
# Profiles of stratad during two extra acks=all runs (not measured ones): first on-CPU samples
# and off-CPU switches, then the duration of every write/fdatasync system call per thread
# (perf trace: a summary, plus each call of 5 ms or more; its tracing cost would swamp the
# on-CPU profile if both ran at once).
perf_profile() { # SECONDS
    [ "$HAVE_PERF" = 1 ] || return 0
    perf record -q -g -F 499 -p "$SPID" -o "$DIR/perf-cpu.data" -- sleep "$1" >/dev/null 2>&1 &
    # System-wide: a thread's switch back in is recorded in the context of whoever ran before.
    perf record -q -g -a -e sched:sched_switch -o "$DIR/perf-off.data" -- sleep "$1" \
        >/dev/null 2>&1 &
}
perf_syscalls() { # SECONDS
    [ "$HAVE_PERF" = 1 ] || return 0
    perf trace -s --duration 5 -p "$SPID" -e pwrite64,pwritev,write,writev,fdatasync,fsync \
        -o "$DIR/perf-trace.txt" -- sleep "$1" >/dev/null 2>&1 &
}
perf_summaries() {
    [ "$HAVE_PERF" = 1 ] && [ -n "${BENCH_PERF_DIR:-}" ] || return 0
    mkdir -p "$BENCH_PERF_DIR"
    {
        perf report -i "$DIR/perf-cpu.data" --stdio --no-children --sort pid -g none 2>/dev/null |
            grep -v '^$' | grep -v '^# *$' | head -20
        perf report -i "$DIR/perf-cpu.data" --stdio --no-children --sort dso,sym \
            --percent-limit 1.5 -g none 2>/dev/null | grep -v '^$' | grep -v '^# *$' | head -60
    } >"$BENCH_PERF_DIR/latency-oncpu.txt" || true
    perf script -i "$DIR/perf-off.data" -F comm,tid,time,trace,ip,sym 2>/dev/null |
        /usr/bin/python3 bench/offcpu.py "$SPID" "$BENCH_PERF_DIR/latency-offcpu.json" \
            >"$BENCH_PERF_DIR/latency-offcpu.txt" || true
    cp "$DIR/perf-trace.txt" "$BENCH_PERF_DIR/latency-syscalls.txt" 2>/dev/null || true
}
# Repeated: one run's p99 on a shared 2-core VM is mostly noise; the median run is reported.
# Each acks=all run is followed by the same load with acks=1 (no fdatasync wait): the floor
# of client + network + broker without durability, under the same noise.
for i in $(seq "$LAT_RUNS"); do
    for acks in all 1; do
        log "produce latency acks=$acks at $RATE records/s (50% of max), 1 partition, ${SECS}s, run $i/$LAT_RUNS ..."
        kb_produce "$BROKERS" "bench-lat-$acks-$i" 1 "$acks" "$LAT_LINGER" "$RATE" \
            "$DIR/latency-$acks-$i.json"
    done
done
if [ "$HAVE_PERF" = 1 ]; then
    log "produce latency acks=all at $RATE records/s, profiled (perf record + perf trace) ..."
    perf_profile "$SECS"
    kb_produce "$BROKERS" bench-lat-profiled 1 all "$LAT_LINGER" "$RATE" "$DIR/latency-profiled.json"
    sleep 2 # the profiles end
    log "produce latency acks=all at $RATE records/s, perf trace of write/fdatasync ..."
    perf_syscalls "$SECS"
    kb_produce "$BROKERS" bench-lat-traced 1 all "$LAT_LINGER" "$RATE" "$DIR/latency-traced.json"
    sleep 2
    perf_summaries
fi

# ---- Peer baseline: librdkafka's mock cluster, same load ----

log "mock cluster baseline: produce p1/p8, consume, latency at $RATE records/s ..."
"$KB" bench mock --mock-topic bench-p1:1 --mock-topic bench-p8:8 --mock-topic bench-lat:1 \
    >"$DIR/mock.addr" &
MPID=$!
for _ in $(seq 100); do [ -s "$DIR/mock.addr" ] && break; sleep 0.1; done
MOCK=$(cat "$DIR/mock.addr")
for np in 1 8; do
    kb_produce "$MOCK" "bench-p$np" "$np" all "$LINGER" 0 "$DIR/mock-produce-p$np.json"
    # The mock keeps ~5 MB per partition: read it several times over.
    kb_consume "$MOCK" "bench-p$np" $((40 / np)) "$DIR/mock-consume-p$np.json"
done
kb_produce "$MOCK" bench-lat 1 all "$LAT_LINGER" "$RATE" "$DIR/mock-latency.json"
kill "$MPID"
wait "$MPID" || true
MPID=""
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

kill -TERM "$SPID"
wait "$SPID" || log "stratad exited with $?"
SPID=""

# ---- Report ----

mkdir -p bench/results
OUT=${BENCH_OUT:-bench/results/kafka-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
python3 - "$DIR" "$OUT" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "$LOAD_BEFORE" "$LOAD_AFTER" <<'EOF'
import datetime, json, os, sys
d, out, rev, load0, load1 = sys.argv[1:6]
def rd(name):
    p = os.path.join(d, name)
    return json.loads(open(p).read().strip().splitlines()[-1]) if os.path.exists(p) else None
loop = rd("loop.json")
# The better of the two disk probes (bandwidth and latency each): the limit is what the disk
# can do, and a probe that fell on another process's burst understates it.
probes = [x for x in (rd("disk.json"), rd("disk2.json")) if x]
disk = dict(max(probes, key=lambda x: x["mb_per_s"]))
disk["write_sync_lat_ms"] = min(x["write_sync_lat_ms"] for x in probes)
for key in ("sync_p50_ms", "sync_p99_ms"):
    if all(key in x for x in probes):
        disk[key] = min(x[key] for x in probes)
disk["probes"] = probes
common = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "git": rev, "nproc": os.cpu_count(), "loadavg_before": load0, "loadavg_after": load1}
rows, lines = [], []
def emit(scenario, result, limit, ratio, target, met, extra=None):
    rec = dict(common, scenario=scenario, result=result, limit=limit, ratio=ratio,
               target=target, met=met, **(extra or {}))
    lines.append(json.dumps(rec, sort_keys=True))
for np in (1, 8):
    r, s, ds = rd("produce-p%d.json" % np), rd("syncs-p%d.json" % np), rd("disksync-p%d.json" % np)
    ratio = r["mb_per_s"] / disk["mb_per_s"]
    extra = {"fdatasyncs": s["fdatasyncs"]}
    if s["fdatasyncs"]:
        extra["bytes_per_fdatasync"] = r["records"] * r["record_bytes"] // s["fdatasyncs"]
    if ds:
        extra["disk_at_sync_size"] = ds
        extra["ratio_to_disk_at_sync_size"] = r["mb_per_s"] / ds["mb_per_s"]
    emit("produce_acks_all_p%d" % np, r, dict(disk, name="fdatasync_seq_write"), ratio,
         ">= 0.8", ratio >= 0.8, extra)
    rows.append(("1. produce acks=all, %d partition%s" % (np, "s" if np > 1 else ""),
                 "%.1f MB/s" % r["mb_per_s"], "disk %.1f MB/s" % disk["mb_per_s"],
                 "%.2f" % ratio, ">= 0.8", "yes" if ratio >= 0.8 else "NO"))
    if ds:
        rows.append(("   same, vs disk at its sync size (%d KiB)" % (ds["write_bytes"] // 1024),
                     "", "disk %.1f MB/s" % ds["mb_per_s"],
                     "%.2f" % (r["mb_per_s"] / ds["mb_per_s"]), "", ""))
for np in (1, 8):
    r = rd("consume-p%d.json" % np)
    ratio = r["mb_per_s"] / loop["mb_per_s"]
    emit("consume_hot_p%d" % np, r, dict(loop, name="loopback_tcp"), ratio, None, None)
    rows.append(("2. hot consume, %d partition%s" % (np, "s" if np > 1 else ""),
                 "%.1f MB/s" % r["mb_per_s"], "loopback %.1f MB/s" % loop["mb_per_s"],
                 "%.2f" % ratio, "", ""))
    f = rd("fetch-p%d.json" % np)
    if f:
        fratio = f["mb_per_s"] / loop["mb_per_s"]
        emit("fetch_hot_p%d" % np, f, dict(loop, name="loopback_tcp"), fratio, None, None,
             {"consume_mb_per_s": r["mb_per_s"],
              "fetch_over_consume_records": f["records_per_s"] / r["records_per_s"]})
        rows.append(("   same data, raw Fetch driver (bench fetch)", "%.1f MB/s" % f["mb_per_s"],
                     "loopback %.1f MB/s" % loop["mb_per_s"], "%.2f" % fratio, "", ""))
def latency_runs(acks):
    out, i = [], 1
    while rd("latency-%s-%d.json" % (acks, i)):
        out.append(rd("latency-%s-%d.json" % (acks, i)))
        i += 1
    return out
def median(runs):
    return sorted(runs, key=lambda x: x["p99_ms"])[len(runs) // 2]
runs, floor_runs = latency_runs("all"), latency_runs("1")
r, fl = median(runs), median(floor_runs)
r_lat = r
ref = disk["write_sync_lat_ms"]
ratio = r["p99_ms"] / ref
over = lambda x: x["records_per_s"] < 0.95 * x["rate"]
emit("produce_latency_50pct", r, dict(disk, name="write_fdatasync_latency"), ratio, "<= 3",
     ratio <= 3, {"runs": [dict({k: x[k] for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms",
                                                    "records_per_s")}, overloaded=over(x))
                           for x in runs], "reported": "median p99 of the runs",
                  "overloaded": over(r), "acks1_floor": fl,
                  "profiled_run": rd("latency-profiled.json"),
                  "page_cache": rd("pagecache.json"),
                  "traced_run": rd("latency-traced.json"),
                  "acks1_runs": [{k: x[k] for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms")}
                                 for x in floor_runs]})
rows.append(("3. latency @%d rec/s (median of %d runs)%s" % (r["rate"], len(runs),
             " OVERLOADED" if over(r) else ""),
             "p99 %.2f ms" % r["p99_ms"], "write+fdatasync %.2f ms" % ref, "%.1f" % ratio,
             "<= 3", "yes" if ratio <= 3 else "NO"))
rows.append(("   p50 %.2f  p99 %.2f  p999 %.2f ms" % (r["p50_ms"], r["p99_ms"], r["p999_ms"]),
             "p50 %.2f ms" % r["p50_ms"],
             "fdatasync p99 %.2f ms" % disk["sync_p99_ms"] if "sync_p99_ms" in disk else "",
             "", "", ""))
rows.append(("   p99 of each run: " + " ".join("%.1f" % x["p99_ms"] for x in runs) + " ms",
             "", "", "", "", ""))
pc = rd("pagecache.json")
if pc:
    rows.append(("   page cache writes: new pages %.0f MB/s, resident %.0f MB/s" % (
        pc["new_pages_mb_per_s"], pc["resident_mb_per_s"]), "", "", "", "", ""))
rows.append(("   floor, same load acks=1 (no fdatasync)", "p99 %.2f ms" % fl["p99_ms"],
             "write+fdatasync %.2f ms" % ref, "%.1f" % (fl["p99_ms"] / ref), "", ""))
rows.append(("   p50 %.2f  p99 %.2f  p999 %.2f ms; p99 runs: %s" % (
    fl["p50_ms"], fl["p99_ms"], fl["p999_ms"], " ".join("%.1f" % x["p99_ms"] for x in floor_runs)),
    "", "", "", "", ""))
# 7. CPU of stratad during 1.: cycles per produced byte.
for np in (1, 8):
    r, s = rd("produce-p%d.json" % np), rd("syncs-p%d.json" % np)
    nbytes = r["records"] * r["record_bytes"]
    if s.get("perf_cycles"):
        cycles, how = s["perf_cycles"], "perf stat -e cycles"
    else:
        cycles, how = s["cpu_s"] * s["cpu_mhz"] * 1e6, "CPU time x %.0f MHz" % s["cpu_mhz"]
    cpb = cycles / nbytes if nbytes else None
    emit("cpu_produce_p%d" % np, dict(r, cpu_s=s["cpu_s"], cycles=cycles, method=how),
         None, cpb, None, None, {"cycles_per_byte": cpb, "cpu_s": s["cpu_s"]})
    rows.append(("7. stratad CPU, produce %d partition%s" % (np, "s" if np > 1 else ""),
                 "%.2f cycles/B" % cpb, how, "", "", ""))
# Peer baseline: the librdkafka mock cluster under the same load.
for np in (1, 8):
    for kind, own, lim in (("produce", "produce-p%d.json", disk), ("consume", "consume-p%d.json", loop)):
        m = rd("mock-%s-p%d.json" % (kind, np))
        if not m:
            continue
        o = rd(own % np)
        emit("mock_%s_p%d" % (kind, np), m, None, o["mb_per_s"] / m["mb_per_s"], None, None,
             {"strata_mb_per_s": o["mb_per_s"], "mock_ratio_to_limit": m["mb_per_s"] / lim["mb_per_s"]})
        rows.append(("mock cluster %s, %d partition%s" % (kind, np, "s" if np > 1 else ""),
                     "%.1f MB/s" % m["mb_per_s"], "strata %.1f MB/s" % o["mb_per_s"],
                     "%.2f" % (o["mb_per_s"] / m["mb_per_s"]), "(strata/mock)", ""))
m = rd("mock-latency.json")
if m:
    emit("mock_latency_50pct", m, None, r_lat["p99_ms"] / m["p99_ms"] if m["p99_ms"] else None,
         None, None, {"strata_p99_ms": r_lat["p99_ms"]})
    rows.append(("mock cluster latency @%d rec/s" % m["rate"], "p99 %.2f ms" % m["p99_ms"],
                 "strata p99 %.2f ms" % r_lat["p99_ms"], "", "", ""))
with open(out, "a") as f:
    f.write("\n".join(lines) + "\n")
w = [max(len(x[i]) for x in rows) for i in range(6)]
hdr = ("scenario", "measured", "limit (same run)", "ratio", "target", "met")
w = [max(w[i], len(hdr[i])) for i in range(6)]
fmt = "  ".join("%%-%ds" % n for n in w)
print("Kafka benchmarks (git %s, %s cores, loadavg %s -> %s; limits measured in this run)"
      % (rev, os.cpu_count(), load0, load1))
print("disk probe: %s, %d B writes each followed by fdatasync; loopback probe: %s"
      % (disk["tool"], disk["write_bytes"], loop["tool"]))
print(fmt % hdr)
print(fmt % tuple("-" * n for n in w))
for row in rows:
    print(fmt % row)
print("results: %s" % out)
EOF
