#!/usr/bin/env bash
# acl.sh - cost of ACL authorization on the request path: produce and consume with 1,000
# ACLs (authorizer on) as a ratio of the same load with authorization off, in the same run
# on the same data directory (never part of `make test`; nothing asserts on the numbers).
# Load: `strata bench produce` with small records, acks=1 and no linger (many small
# requests, so per-request costs show, not the disk), then `strata bench consume` of what
# it wrote (each run its own topic). Two measures: throughput (noisy on a shared machine)
# and stratad's CPU time per record (utime+stime from /proc, less sensitive to neighbours);
# ACLBENCH_RATE=N produces N records/s instead of as fast as possible, so that both sides
# batch alike and CPU per record compares the same work. First, build/bench/acl_decide
# times one decision with the same 1,000 ACLs (CPU ns, no I/O).
# ACLs: 1,000 bindings (literal and prefixed topics of 10 principal names and 12 prefix
# lengths, groups, 200 on the benchmarked topic itself for other principals) plus the
# ALLOW that lets User:ANONYMOUS (a PLAINTEXT client) write and read the topic. Runs
# alternate off/on ACLBENCH_ROUNDS times; the best of each side counts.
# Usage: bench/acl.sh [BUILD_DIR]   env: ACLBENCH_SECONDS (10), ACLBENCH_ROUNDS (2),
#        ACLBENCH_RATE (0: as fast as possible)
# Prints a table and appends one JSON line to $BENCH_OUT (default
# bench/results/acl-<UTC>.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SECS=${ACLBENCH_SECONDS:-10}
ROUNDS=${ACLBENCH_ROUNDS:-2}
RATE=${ACLBENCH_RATE:-0}
KB=$BUILD/tools/strata
STRATAD=$BUILD/tools/stratad
PY=/usr/bin/python3
for f in "$KB" "$STRATAD" "$BUILD/bench/acl_decide"; do
    [ -x "$f" ] || { echo "acl.sh: $f not built (cmake --build $BUILD)" >&2; exit 1; }
done
mkdir -p bench/results
OUT=${BENCH_OUT:-bench/results/acl-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
DIR=$(mktemp -d "${BENCH_DIR:-$PWD}/.bench.XXXXXX")
SPID=""
cleanup() {
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
APORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
B=127.0.0.1:$PORT
TOPIC=acl-bench

start() { # start [extra stratad flags...]
    "$STRATAD" --log-dir "$DIR/data" --listeners "127.0.0.1:$PORT" \
        --admin-listener "127.0.0.1:$APORT" --log-level warn "$@" >>"$DIR/stratad.log" 2>&1 &
    SPID=$!
    for _ in $(seq 100); do
        "$KB" --brokers "$B" --timeout 1s cluster info >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "acl.sh: stratad did not start" >&2
    cat "$DIR/stratad.log" >&2
    exit 1
}
stop() {
    kill "$SPID"
    wait "$SPID" || true
    SPID=""
}

# Set up once as a super user: the topic and the 1,000 ACLs (stored in meta.db).
start -X authorizer.class.name=strata -X super.users=User:ANONYMOUS
for r in $(seq "$ROUNDS"); do
    for side in off on; do
        "$KB" --brokers "$B" topic create "$TOPIC-$side-$r" -p 4 >/dev/null
    done
done
$PY - "$B" "$TOPIC" <<'EOF'
import sys
from kafka.admin import (ACL, ACLOperation as O, ACLPermissionType as P, KafkaAdminClient,
                         ResourcePattern as R, ResourceType as T, ACLResourcePatternType as PT)
b, topic = sys.argv[1], sys.argv[2]
acls = []
for i in range(600):
    acls.append(ACL("User:u%d" % (i % 10), "*", O.WRITE, P.ALLOW, R(T.TOPIC, "t-%d" % i)))
for i in range(150):
    acls.append(ACL("User:u%d" % (i % 10), "*", O.READ, P.ALLOW,
                    R(T.TOPIC, "acl-bench"[: 1 + i % 9] + "x" * (i % 4) + str(i), PT.PREFIXED)))
for i in range(48):
    acls.append(ACL("User:u%d" % (i % 10), "*", O.READ, P.ALLOW, R(T.GROUP, "g-%d" % i)))
for i in range(200):
    acls.append(ACL("User:other%d" % i, "*", O.READ, P.ALLOW, R(T.TOPIC, topic, PT.PREFIXED)))
acls.append(ACL("User:ANONYMOUS", "*", O.ALL, P.ALLOW, R(T.TOPIC, topic, PT.PREFIXED)))
acls.append(ACL("User:ANONYMOUS", "*", O.IDEMPOTENT_WRITE, P.ALLOW,
                R(T.CLUSTER, "kafka-cluster")))
assert len(acls) == 1000, len(acls)
k = KafkaAdminClient(bootstrap_servers=b)
for i in range(0, len(acls), 100):
    r = k.create_acls(acls[i:i + 100])
    assert not r["failed"], r["failed"][:1]
n = len(k.describe_acls(__import__("kafka.admin", fromlist=["ACLFilter"]).ACLFilter(
    None, None, O.ANY, P.ANY, __import__("kafka.admin", fromlist=["ResourcePatternFilter"])
    .ResourcePatternFilter(T.ANY, None, PT.ANY)))[0])
print("acl.sh: %d ACLs stored" % n, file=sys.stderr)
EOF
stop

cpu() { # stratad's CPU seconds so far
    awk '{print ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$SPID/stat"
}
run() { # run off|on ROUND -> appends "side rec/s MB/s cpu_s/Mrec consume_MB/s cpu_s/Mrec"
    if [ "$1" = on ]; then start -X authorizer.class.name=strata; else start; fi
    local t="$TOPIC-$1-$2" c0 c1 c2
    c0=$(cpu)
    "$KB" --brokers "$B" --format json bench produce --topic "$t" --partitions 4 \
        --acks 1 --record-size 100 --linger-ms 0 --rate "$RATE" --duration "${SECS}s" \
        >"$DIR/p.json"
    c1=$(cpu)
    "$KB" --brokers "$B" --format json bench consume --topic "$t" --duration 60s \
        >"$DIR/c.json"
    c2=$(cpu)
    stop
    $PY -c 'import json, sys
p = json.load(open(sys.argv[2])); c = json.load(open(sys.argv[3]))
assert p["failed"] == 0 and p["records"] > 0, p  # refused records would make no sense here
assert c["complete"] and c["errors"] == 0 and c["records"] == p["records"], c
c0, c1, c2 = map(float, sys.argv[4:7])
print(sys.argv[1], p["records_per_s"], p["mb_per_s"], (c1 - c0) / p["records"] * 1e6,
      c["mb_per_s"], (c2 - c1) / c["records"] * 1e6)' \
        "$1" "$DIR/p.json" "$DIR/c.json" "$c0" "$c1" "$c2" >>"$DIR/runs"
}
"$BUILD/bench/acl_decide" >"$DIR/decide.json"
for r in $(seq "$ROUNDS"); do
    run off "$r"
    run on "$r"
done
$PY - "$DIR/runs" "$OUT" "$(git rev-parse --short HEAD)" "$DIR/decide.json" "$RATE" <<'EOF'
import json, sys
runs = [l.split() for l in open(sys.argv[1])]
names = ("produce records/s (100 B)", "produce MB/s", "produce CPU s / 1M records",
         "consume MB/s", "consume CPU s / 1M records")
lower_is_better = (False, False, True, False, True)
best = {}
for side, *vals in runs:
    b = best.setdefault(side, [None] * len(names))
    for i, v in enumerate(map(float, vals)):
        if b[i] is None or (v < b[i] if lower_is_better[i] else v > b[i]):
            b[i] = v
print("%-28s %14s %14s %8s" % ("", "no authorizer", "1,000 ACLs", "on/off"))
d = json.load(open(sys.argv[4]))
print("one decision with %d ACLs: %.0f ns (empty set: %.0f ns)"
      % (d["acls"], d["ns_per_decision"], d["ns_per_decision_empty_set"]))
res = {"bench": "acl", "git": sys.argv[3], "rate": int(sys.argv[5]), "decide": d, "runs": runs}
for i, n in enumerate(names):
    off, on = best["off"][i], best["on"][i]
    print("%-28s %14.2f %14.2f %8.3f" % (n, off, on, on / off if off else 0))
    res[n] = {"off": off, "on": on, "ratio": on / off if off else None}
with open(sys.argv[2], "a") as f:
    f.write(json.dumps(res) + "\n")
print("results appended to", sys.argv[2])
EOF
