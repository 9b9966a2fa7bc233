#!/usr/bin/env bash
# consume_drivers.sh - hot consume with two load drivers, against Strata and Apache Kafka (its
# default settings) in the same run, as ratios to loopback TCP measured in the same run (never
# part of `make test`; nothing asserts on the numbers). Drivers: `strata bench consume`
# (librdkafka, which parses every record before it sends the next Fetch) and `strata bench
# fetch` (raw Fetch v12 at record-batch level: CRC-32C per batch, nothing per record; MB/s of
# record batches, ~1 % more bytes than the values consume counts for 1 KiB records). Every broker
# holds the same topics, 1 and 8 partitions of CD_RECORDS 1 KiB records in 64 KiB batches (as
# bench/kafka.sh writes them), produced once with `strata bench produce`; both brokers stay up,
# only one is read at a time. Each round measures loopback, then reads both topics hot (page
# cache) CD_PASSES times over from each broker with each driver, in alternating orders (brokers
# and drivers), so the machine's load changes hit all of them. On this VM pages of hot segments
# get evicted within a minute or two of reads even with free memory (one stratad, 1 GB read
# every 5 s: strata_kafka_fetch_cold_reads_total grows from the 7th read on); smaller topics
# read CD_PASSES times over hold less, but librdkafka pays a restart per pass (stop + start of
# every partition) and its figure drops. Prints one JSON line per measurement and a summary:
# medians, their ratio to the median loopback, the driver's CPU (user + system) per MB, and
# per-round ratios fetch / consume and strata / kafka (their medians are the figures to quote
# on a noisy machine).
# Usage: bench/consume_drivers.sh [BUILD_DIR]   env: CD_RECORDS (1000000 per topic), CD_PASSES (1),
#        CD_ROUNDS (3), CD_BROKERS ("strata kafka-default"), BENCH_DIR (temp data parent),
#        BENCH_OUT (JSON lines; default bench/results/consume-drivers-<UTC>.jsonl)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
RECORDS=${CD_RECORDS:-1000000}
PASSES=${CD_PASSES:-1}
ROUNDS=${CD_ROUNDS:-3}
BROKER_NAMES=${CD_BROKERS:-strata kafka-default}
OUT=${BENCH_OUT:-bench/results/consume-drivers-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
KB=$BUILD/tools/strata
KPEER=bench/peers/kafka.sh
DIR=$(mktemp -d "${BENCH_DIR:-$PWD}/.bench-drivers.XXXXXX")
BLIB_NAME=consume_drivers.sh
. bench/broker_lib.sh
builds_ok "$BUILD"
KDIR=""
cleanup() {
    [ -z "$KDIR" ] || "$KPEER" stop "$KDIR" || true
    blib_cleanup
}
trap cleanup EXIT
declare -A ADDR
mkdir -p "$(dirname "$OUT")"
echo "{\"load_start\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"records\": $RECORDS, \"passes\": $PASSES,\
 \"git\": \"$(git rev-parse --short HEAD)\"}" >>"$OUT"
for b in $BROKER_NAMES; do
    case "$b" in
    strata)
        broker_start "$BUILD/tools/stratad"
        ADDR[$b]=$BROKERS
        ;;
    kafka-default)
        "$KPEER" install >/dev/null
        port=$(free_port)
        KDIR=$DIR/kafka
        "$KPEER" start "$KDIR" "$port" default 2>"$DIR/kafka.start.log" ||
            { cat "$DIR/kafka.start.log" >&2; exit 1; }
        ADDR[$b]=127.0.0.1:$port
        ;;
    *) log "unknown broker $b (strata, kafka-default)"; exit 1 ;;
    esac
    produce_topics "$KB" "${ADDR[$b]}" "$RECORDS"
done
read -r -a names <<<"$BROKER_NAMES"
for round in $(seq "$ROUNDS"); do
    loopback_json "$KB" >>"$OUT"
    order=("${names[@]}")
    drivers=(consume fetch)
    if [ $((round % 2)) = 0 ]; then
        order=(); for ((i = ${#names[@]} - 1; i >= 0; i--)); do order+=("${names[i]}"); done
        drivers=(fetch consume)
    fi
    for b in "${order[@]}"; do
        for np in 1 8; do
            for d in "${drivers[@]}"; do
                log "round $round $b: $d p$np ..."
                /usr/bin/time -f "%U %S" -o "$DIR/cpu" "$KB" --brokers "${ADDR[$b]}" \
                    --format json bench "$d" --topic "p$np" --count "$PASSES" --duration 120s \
                    >"$DIR/run.json"
                python3 -c 'import json, sys
j = json.loads(open(sys.argv[5]).read())
cpu = sum(map(float, open(sys.argv[6]).read().split()[-2:]))
j.update(what=sys.argv[1], broker=sys.argv[2], partitions=int(sys.argv[3]), round=int(sys.argv[4]),
         load=open("/proc/loadavg").read().split()[0], driver_cpu_s=cpu,
         driver_cpu_ms_per_mb=cpu * 1e3 / (j["bytes"] / 1e6) if j["bytes"] else None)
print(json.dumps(j))' "$d" "$b" "$np" "$round" "$DIR/run.json" "$DIR/cpu" >>"$OUT"
            done
        done
    done
done
loopback_json "$KB" >>"$OUT"
echo "{\"load_end\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$OUT"
python3 - "$OUT" <<'EOF'
import json, statistics as S, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
start = next(i for i in range(len(rows) - 1, -1, -1) if "load_start" in rows[i])
rows = rows[start:]  # this run only (BENCH_OUT may hold earlier ones)
loop = S.median(r["mb_per_s"] for r in rows if r.get("what") == "loopback")
runs = [r for r in rows if r.get("what") in ("consume", "fetch")]
brokers = sorted({r["broker"] for r in runs}, key=lambda b: b != "strata")
print("git %s, %d records per topic read %s times; loopback median %.1f MB/s (rounds: %s); load %s -> %s"
      % (rows[0]["git"], rows[0]["records"], rows[0].get("passes", 1), loop,
         " / ".join("%.0f" % r["mb_per_s"] for r in rows if r.get("what") == "loopback"),
         rows[0]["load_start"], rows[-1]["load_end"]))
def pick(b, d, np):
    return {r["round"]: r for r in runs if (r["broker"], r["what"], r["partitions"]) == (b, d, np)}
for np in (1, 8):
    for b in brokers:
        for d in ("consume", "fetch"):
            v = [r["mb_per_s"] for r in pick(b, d, np).values()]
            rec = [r["records_per_s"] for r in pick(b, d, np).values()]
            cpu = [r["driver_cpu_ms_per_mb"] for r in pick(b, d, np).values()]
            print("%d partition(s) %-13s %-7s median %7.1f MB/s = %.2f x loopback, %9.0f records/s,"
                  " driver CPU %.2f ms/MB  (rounds: %s)"
                  % (np, b, d, S.median(v), S.median(v) / loop, S.median(rec), S.median(cpu),
                     " / ".join("%.0f" % x for x in v)))
        f, c = pick(b, "fetch", np), pick(b, "consume", np)
        if all("wait_ms_avg" in r for r in f.values()):
            print("%d partition(s) %-13s fetch: per Fetch %.2f ms to the first bytes, %.2f ms "
                  "receiving, %.2f ms walking (medians)"
                  % (np, b, *(S.median(r[k] for r in f.values())
                              for k in ("wait_ms_avg", "receive_ms_avg", "walk_ms_avg"))))
        per = [f[k]["records_per_s"] / c[k]["records_per_s"] for k in sorted(f) if k in c]
        print("%d partition(s) %-13s fetch / consume (records/s) median %.2f  (rounds: %s)"
              % (np, b, S.median(per), " / ".join("%.2f" % x for x in per)))
    for peer in brokers[1:]:
        for d in ("consume", "fetch"):
            s, k = pick("strata", d, np), pick(peer, d, np)
            per = [s[i]["mb_per_s"] / k[i]["mb_per_s"] for i in sorted(s) if i in k]
            print("%d partition(s) strata / %s, %s: median %.2f  (rounds: %s)"
                  % (np, peer, d, S.median(per), " / ".join("%.2f" % x for x in per)))
EOF
echo "results: $OUT"
