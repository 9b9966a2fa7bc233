#!/usr/bin/env bash
# peers.sh - Strata side by side with Apache Kafka (bench/peers/kafka.sh) and librdkafka's mock
# cluster: the same scenarios, the same settings, one broker at a time on this machine, two load
# drivers (`strata bench` on librdkafka, and Kafka's own Java perf tools, so that no driver
# favours one broker). Prints Strata / peer for every figure; never part of `make test`.
#
# Brokers (each started fresh, alone on the machine while measured):
#   strata         stratad --smp 2: every acked batch fdatasync'd
#   kafka-flush    Kafka, log.flush.interval.messages=1: every appended batch fsynced before
#                  it is acked (the promise Strata makes)
#   kafka-default  Kafka's defaults: acked from the page cache (Strata's write.caching=true)
#   mock           librdkafka's in-memory mock cluster (strata bench driver only)
# Scenarios per broker, 1 KiB records, acks=all, batch.size $PEERS_BATCH_BYTES, no compression,
# after a 3 s warm-up produce (the JVM's JIT, the page cache) that is not counted:
#   strata bench   produce max rate 1 and 8 partitions (linger 5 ms); hot consume of both with
#                  `bench consume` (librdkafka) and `bench fetch` (raw Fetch v12 at record-batch
#                  level, no per-record work; not the mock); produce at a fixed rate (50% of
#                  Strata's lower max, linger 0): p50/p99/p999
#   java tools     kafka-producer-perf-test 1 and 8 partitions at max rate, and at the same
#                  fixed rate (its p99); kafka-consumer-perf-test of the 1-partition topic
# Usage: bench/peers.sh [BUILD_DIR]  env: PEERS_SECONDS (10), PEERS_BATCH_BYTES (65536),
#        PEERS_RATE (records/s of the latency runs; default 50% of Strata's lower max),
#        PEERS_JAVA_RECORDS (300000 per java max-rate run), PEERS_ONLY (space-separated subset
#        of the brokers), BENCH_DIR (temp data parent), BENCH_OUT (JSON lines; default
#        bench/results/peers-<UTC>.jsonl)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SECS=${PEERS_SECONDS:-10}
BATCH=${PEERS_BATCH_BYTES:-65536}
RECORD=1024
JREC=${PEERS_JAVA_RECORDS:-300000}
ONLY=${PEERS_ONLY:-strata kafka-flush kafka-default mock}
KB=$BUILD/tools/strata
STRATAD=$BUILD/tools/stratad
KPEER=bench/peers/kafka.sh
for f in "$KB" "$STRATAD"; do
    [ -x "$f" ] || { echo "peers.sh: $f not built (cmake --build $BUILD)" >&2; exit 1; }
done
"$KPEER" install >/dev/null

DIR=$(mktemp -d "${BENCH_DIR:-$PWD}/.bench-peers.XXXXXX")
R=$DIR/results
mkdir -p "$R"
SPID=""
MPID=""
KDIR=""
cleanup() {
    [ -z "$MPID" ] || kill "$MPID" 2>/dev/null || true
    if [ -n "$SPID" ]; then
        kill -TERM "$SPID" 2>/dev/null || true
        wait "$SPID" 2>/dev/null || true
    fi
    [ -z "$KDIR" ] || "$KPEER" stop "$KDIR" || true
    rm -rf "$DIR"
}
trap cleanup EXIT
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
jget() { # FILE KEY
    python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])[sys.argv[2]])' "$1" "$2"
}
log() { echo "peers.sh: $*" >&2; }

# kb_produce BROKERS TOPIC PARTITIONS LINGER_MS RATE SECONDS OUT.json
kb_produce() {
    "$KB" --brokers "$1" --format json bench produce --topic "$2" --partitions "$3" --acks all \
        --record-size "$RECORD" --linger-ms "$4" --batch-bytes "$BATCH" --compression none \
        --rate "$5" --duration "${6}s" >"$7"
}
# java_produce BROKERS TOPIC RECORDS THROUGHPUT LINGER_MS OUT.json (the tool's summary line
# turned into the fields of `strata bench produce`)
java_produce() {
    "$KPEER" run org.apache.kafka.tools.ProducerPerformance --topic "$2" --num-records "$3" \
        --record-size "$RECORD" --throughput "$4" --command-property bootstrap.servers="$1" \
        acks=all batch.size="$BATCH" linger.ms="$5" compression.type=none \
        max.request.size=$((BATCH * 16)) 2>/dev/null | tail -1 >"$6.txt" || true
    python3 - "$6.txt" "$4" >"$6" <<'EOF'
import json, re, sys
t = open(sys.argv[1]).read()
m = re.search(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg "
              r"latency, ([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, "
              r"(\d+) ms 99.9th", t)
if not m:
    print(json.dumps({"error": t.strip()[-300:]}))
    sys.exit(0)
n, rps = int(m.group(1)), float(m.group(2))
print(json.dumps({"driver": "kafka-producer-perf-test", "records": n, "records_per_s": rps,
                  "mb_per_s": rps * 1024 / 1e6, "rate": int(sys.argv[2]),
                  "avg_ms": float(m.group(4)), "max_ms": float(m.group(5)),
                  "p50_ms": float(m.group(6)), "p95_ms": float(m.group(7)),
                  "p99_ms": float(m.group(8)), "p999_ms": float(m.group(9))}))
EOF
}
# java_consume BROKERS TOPIC RECORDS OUT.json: fetch.MB.sec (the fetch phase, not the group
# join) in MB of 1e6 bytes
java_consume() {
    timeout 120 "$KPEER" run org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$1" \
        --topic "$2" --num-records "$3" --timeout 30000 2>/dev/null | tail -1 >"$4.txt" || true
    python3 - "$4.txt" >"$4" <<'EOF'
import json, sys
f = [x.strip() for x in open(sys.argv[1]).read().split(",")]
try:
    mib, n, reb, fetch_ms = float(f[2]), int(f[4]), float(f[6]), float(f[7])
    print(json.dumps({"driver": "kafka-consumer-perf-test", "records": n,
                      "bytes": int(mib * 1048576), "rebalance_ms": reb, "fetch_ms": fetch_ms,
                      "mb_per_s": mib * 1.048576 / (fetch_ms / 1e3) if fetch_ms > 0 else 0}))
except (IndexError, ValueError):
    print(json.dumps({"error": ",".join(f)[-300:]}))
EOF
}

start_broker() { # NAME: sets BROKERS
    local port
    port=$(free_port)
    BROKERS=127.0.0.1:$port
    case "$1" in
    strata)
        "$STRATAD" --log-dir "$DIR/strata" --smp 2 --listeners "$BROKERS" \
            --admin-listener "127.0.0.1:$(free_port)" >"$DIR/stratad.log" 2>&1 &
        SPID=$!
        for _ in $(seq 300); do
            grep -qs started "$DIR/stratad.log" && return
            kill -0 "$SPID" 2>/dev/null || { cat "$DIR/stratad.log" >&2; exit 1; }
            sleep 0.1
        done
        log "stratad did not start"
        exit 1
        ;;
    kafka-flush | kafka-default)
        KDIR=$DIR/$1
        "$KPEER" start "$KDIR" "$port" "${1#kafka-}" 2>"$DIR/$1.start.log" ||
            { cat "$DIR/$1.start.log" >&2; exit 1; }
        ;;
    mock)
        "$KB" bench mock --mock-topic warm:1 --mock-topic bench-p1:1 --mock-topic bench-p8:8 \
            --mock-topic bench-lat:1 >"$DIR/mock.addr" &
        MPID=$!
        for _ in $(seq 100); do [ -s "$DIR/mock.addr" ] && break; sleep 0.1; done
        BROKERS=$(cat "$DIR/mock.addr")
        ;;
    esac
}
stop_broker() { # NAME
    case "$1" in
    strata) kill -TERM "$SPID"; wait "$SPID" || log "stratad exited with $?"; SPID=""; rm -rf "$DIR/strata" ;;
    kafka-*) "$KPEER" stop "$KDIR"; rm -rf "$KDIR" || { sleep 1; rm -rf "$KDIR"; }; KDIR="" ;;
    mock) kill "$MPID"; wait "$MPID" || true; MPID="" ;;
    esac
}

RATE=${PEERS_RATE:-}
cut -d' ' -f1-3 /proc/loadavg >"$R/load_start"
for b in $ONLY; do
    log "== $b: start"
    start_broker "$b"
    echo "$(cut -d' ' -f1-3 /proc/loadavg)" >"$R/$b-load"
    log "$b: warm-up produce (3 s, not counted) ..."
    kb_produce "$BROKERS" warm 1 5 0 3 /dev/null || true
    for np in 1 8; do
        log "$b: strata bench produce, $np partition(s), ${SECS}s ..."
        kb_produce "$BROKERS" "bench-p$np" "$np" 5 0 "$SECS" "$R/$b-kb-produce-p$np.json"
    done
    for np in 1 8; do
        log "$b: strata bench consume bench-p$np (hot) ..."
        passes=1
        [ "$b" != mock ] || passes=$((40 / np)) # the mock keeps ~5 MB per partition
        "$KB" --brokers "$BROKERS" --format json bench consume --topic "bench-p$np" \
            --count "$passes" --duration 60s >"$R/$b-kb-consume-p$np.json"
        if [ "$b" != mock ]; then # the mock serves Fetch up to v11
            log "$b: strata bench fetch bench-p$np (hot, raw Fetch) ..."
            "$KB" --brokers "$BROKERS" --format json bench fetch --topic "bench-p$np" \
                --duration 60s >"$R/$b-kb-fetch-p$np.json" || log "$b: bench fetch failed"
        fi
    done
    if [ -z "$RATE" ]; then
        RATE=$(python3 -c 'import sys; print(int(min(map(float, sys.argv[1:])) / 2))' \
            "$(jget "$R/$b-kb-produce-p1.json" records_per_s)" \
            "$(jget "$R/$b-kb-produce-p8.json" records_per_s)")
        log "latency runs at $RATE records/s (50% of $b's lower max)"
        echo "$RATE" >"$R/rate"
    fi
    log "$b: strata bench produce at $RATE records/s, linger 0, ${SECS}s ..."
    kb_produce "$BROKERS" bench-lat 1 0 "$RATE" "$SECS" "$R/$b-kb-latency.json"
    if [ "$b" != mock ]; then
        # Topics for the Java driver, created by the same CLI on every broker.
        "$KB" --brokers "$BROKERS" topic create jbench-p1 -p 1 >/dev/null
        "$KB" --brokers "$BROKERS" topic create jbench-p8 -p 8 >/dev/null
        "$KB" --brokers "$BROKERS" topic create jbench-lat -p 1 >/dev/null
        for np in 1 8; do
            log "$b: kafka-producer-perf-test, $np partition(s), $JREC records ..."
            java_produce "$BROKERS" "jbench-p$np" "$JREC" -1 5 "$R/$b-java-produce-p$np.json"
        done
        log "$b: kafka-producer-perf-test at $RATE records/s, linger 0, ${SECS}s ..."
        java_produce "$BROKERS" jbench-lat $((RATE * SECS)) "$RATE" 0 "$R/$b-java-latency.json"
        log "$b: kafka-consumer-perf-test jbench-p1 ..."
        java_consume "$BROKERS" jbench-p1 "$JREC" "$R/$b-java-consume-p1.json"
    fi
    stop_broker "$b"
done
cut -d' ' -f1-3 /proc/loadavg >"$R/load_end"

mkdir -p bench/results
OUT=${BENCH_OUT:-bench/results/peers-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
python3 - "$R" "$OUT" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$ONLY" <<'EOF'
import datetime, json, os, sys
d, out, rev, only = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split()
def rd(name):
    p = os.path.join(d, name)
    if not os.path.exists(p) or not open(p).read().strip():
        return None
    j = json.loads(open(p).read().strip().splitlines()[-1])
    return None if "error" in j else j
def txt(name):
    p = os.path.join(d, name)
    return open(p).read().strip() if os.path.exists(p) else ""
peers = [b for b in ("kafka-flush", "kafka-default", "mock") if b in only]
figures = [  # (key, label, field, higher is better)
    ("kb-produce-p1", "produce 1 partition, strata bench", "mb_per_s", True),
    ("kb-produce-p8", "produce 8 partitions, strata bench", "mb_per_s", True),
    ("kb-consume-p1", "hot consume 1 partition, strata bench", "mb_per_s", True),
    ("kb-consume-p8", "hot consume 8 partitions, strata bench", "mb_per_s", True),
    ("kb-fetch-p1", "hot consume 1 partition, strata bench fetch (raw)", "mb_per_s", True),
    ("kb-fetch-p8", "hot consume 8 partitions, strata bench fetch (raw)", "mb_per_s", True),
    ("kb-latency", "produce p50 @rate, strata bench", "p50_ms", False),
    ("kb-latency", "produce p99 @rate, strata bench", "p99_ms", False),
    ("kb-latency", "produce p999 @rate, strata bench", "p999_ms", False),
    ("java-produce-p1", "produce 1 partition, kafka-producer-perf-test", "mb_per_s", True),
    ("java-produce-p8", "produce 8 partitions, kafka-producer-perf-test", "mb_per_s", True),
    ("java-latency", "produce p50 @rate, kafka-producer-perf-test", "p50_ms", False),
    ("java-latency", "produce p99 @rate, kafka-producer-perf-test", "p99_ms", False),
    ("java-latency", "produce p999 @rate, kafka-producer-perf-test", "p999_ms", False),
    ("java-consume-p1", "consume 1 partition, kafka-consumer-perf-test", "mb_per_s", True),
]
common = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "git": rev, "nproc": os.cpu_count(), "loadavg_start": txt("load_start"),
          "loadavg_end": txt("load_end"), "rate": int(txt("rate") or 0),
          "loadavg_at_broker_start": {b: txt(b + "-load") for b in ["strata"] + peers}}
unit = lambda f: "MB/s" if f == "mb_per_s" else "ms"
rows, lines = [], []
for key, label, field, higher in figures:
    s = rd("strata-%s.json" % key)
    vals = {b: (rd("%s-%s.json" % (b, key)) or {}).get(field) for b in ["strata"] + peers}
    if all(v is None for v in vals.values()):
        continue
    ratios = {b: (vals["strata"] / vals[b] if vals["strata"] is not None and vals[b] else None)
              for b in peers}
    rec = dict(common, scenario="%s:%s" % (key, field), label=label, unit=unit(field),
               higher_is_better=higher, values=vals,
               strata_over={b: r for b, r in ratios.items()},
               strata_wins={b: (r >= 1 if higher else r <= 1) if r is not None else None
                            for b, r in ratios.items()},
               raw={b: rd("%s-%s.json" % (b, key)) for b in ["strata"] + peers})
    lines.append(json.dumps(rec, sort_keys=True))
    fmt = lambda v: "-" if v is None else ("%.1f" % v)
    rows.append([label + " (" + unit(field) + ")"] + [fmt(vals[b]) for b in ["strata"] + peers]
                + ["-" if ratios[b] is None else "%.2f%s" % (ratios[b], "" if
                   (ratios[b] >= 1 if higher else ratios[b] <= 1) else " (peer wins)")
                   for b in peers])
with open(out, "a") as f:
    f.write("\n".join(lines) + "\n")
hdr = ["figure", "strata"] + peers + ["strata/" + b for b in peers]
w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
print("Strata vs peers (git %s, %d cores, loadavg %s -> %s; one broker at a time; latency at "
      "%s records/s; ratios: MB/s strata/peer, latency strata/peer, lower better)"
      % (rev, os.cpu_count(), common["loadavg_start"], common["loadavg_end"], common["rate"]))
print("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
print("  ".join("-" * n for n in w))
for r in rows:
    print("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)))
print("results: %s" % out)
EOF
