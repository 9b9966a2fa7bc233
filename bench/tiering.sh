#!/usr/bin/env bash
# tiering.sh - scenario 4: sustained produce with tiering on; upload lag over time must stay
# bounded (never part of `make test`; nothing asserts on the numbers).
#
# Setup: scripts/s3server.sh on loopback; stratad with remote storage on for every topic, the
# s3:// archive, small segments (TIER_SEGMENT, 8 MiB) and topic "tier" (2 partitions,
# local.retention.bytes 32 MiB, so uploads also free local disk).
# Load: `strata bench produce` acks=1 at TIER_MBPS MB/s (1 KiB records) for TIER_SECONDS.
# Sampled every 0.5 s, during the load and while the backlog drains (up to TIER_DRAIN s):
#   upload lag = bytes (and count) of sealed local segments not yet in the remote index,
#   read from the data directory and remote-index.db (the Kafka RemoteCopyLagBytes notion),
#   and the broker's own figure, upload_lag_bytes of the admin API's GET /v1/storage
#   (docs/admin-api.md), recorded beside it. Bounded: the lag of the second half of the load is not above the
#   first half's by more than two segments per partition, and it drains to 0 after the load.
# Writes TIER_OUT.json (summary) and TIER_OUT.csv (t_s, lag_bytes, lag_segments, admin_lag).
# Usage: bench/tiering.sh BUILD_DIR OUT_PREFIX   env: TIER_MBPS (40), TIER_SECONDS (60),
#        TIER_DRAIN (60), TIER_SEGMENT (8388608), BENCH_DIR (tmp dir parent, default /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUTP=${2:-bench/results/tiering-$(date -u +%Y%m%dT%H%M%SZ)}
MBPS=${TIER_MBPS:-40}
SECS=${TIER_SECONDS:-60}
DRAIN=${TIER_DRAIN:-60}
SEG=${TIER_SEGMENT:-8388608}
CLI=$BUILD/tools/strata
STRATAD=$BUILD/tools/stratad

DIR=$(mktemp -d "${BENCH_DIR:-/tmp}/strata-tiering.XXXXXX")
BPID=
PPID_=
cleanup() {
    [ -z "$PPID_" ] || kill "$PPID_" 2>/dev/null || true
    [ -n "$BPID" ] && kill "$BPID" 2>/dev/null && wait "$BPID" 2>/dev/null || true
    scripts/s3server.sh stop "$DIR/s3" >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

mkdir -p "$DIR/s3"
URL=$(scripts/s3server.sh start "$(free_port)" "$DIR/s3" strata)
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=$URL
BOOT=127.0.0.1:$(free_port)
ADMIN=http://127.0.0.1:$(free_port)
"$STRATAD" --log-dir "$DIR/data" --smp 2 --listeners "$BOOT" --admin-listener "${ADMIN#http://}" \
    -X remote.log.storage.system.enable=true -X strata.archive.url=s3://strata/bench \
    -X log.segment.bytes="$SEG" -X log.retention.check.interval.ms=1000 >"$DIR/broker.log" 2>&1 &
BPID=$!
for _ in $(seq 300); do
    grep -q "stratad: started" "$DIR/broker.log" && break
    sleep 0.1
done
grep -q "stratad: started" "$DIR/broker.log" || { cat "$DIR/broker.log" >&2; exit 1; }
"$CLI" --brokers "$BOOT" topic create tier -p 2 -c local.retention.bytes=33554432 >/dev/null

echo "== tiering: produce acks=1 at $MBPS MB/s for ${SECS}s, segments of $SEG B" >&2
RATE=$((MBPS * 1000000 / 1024))
"$CLI" --brokers "$BOOT" --format json bench produce --topic tier --partitions 2 --acks 1 \
    --record-size 1024 --random --rate "$RATE" --duration "${SECS}s" >"$DIR/produce.json" &
PPID_=$!
/usr/bin/python3 - "$DIR/data" "$ADMIN" "$PPID_" "$SECS" "$DRAIN" "$SEG" "$OUTP" \
    >"$OUTP.json.tmp" <<'EOF'
import glob, json, os, sqlite3, sys, time, urllib.request
data, admin, ppid, secs, drain, seg, outp = sys.argv[1:8]
secs, drain, seg = float(secs), float(drain), int(seg)

def uploaded():
    try:
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(data, "remote-index.db"), uri=True,
                             timeout=1)
        rows = db.execute("SELECT topic, partition, base_offset FROM segments").fetchall()
        db.close()
        return set(rows)
    except sqlite3.Error:
        return set()

def lag():
    up, nbytes, nseg = uploaded(), 0, 0
    n_up[0] = len(up)
    for d in glob.glob(os.path.join(data, "tier-*")):
        part = int(d.rsplit("-", 1)[1])
        logs = sorted(glob.glob(os.path.join(d, "*.log")))
        for f in logs[:-1]:  # the last one is the active segment
            base = int(os.path.basename(f)[:20])
            if ("tier", part, base) not in up:
                try:
                    nbytes += os.path.getsize(f)
                    nseg += 1
                except OSError:
                    pass  # deleted by local retention meanwhile: uploaded
    return nbytes, nseg

def admin_lag():
    try:
        with urllib.request.urlopen(admin + "/v1/storage", timeout=2) as r:
            return json.loads(r.read())["remote"].get("upload_lag_bytes")
    except Exception:
        return None

n_up = [0]
t0, samples, load_end = time.time(), [], None
while True:
    t = time.time() - t0
    b, n = lag()
    samples.append((round(t, 2), b, n, admin_lag()))
    if load_end is None and (t >= secs or not os.path.exists("/proc/%s" % ppid)):
        load_end = t
    if load_end is not None and (n == 0 or t - load_end >= drain):
        break
    time.sleep(0.5)
with open(outp + ".csv", "w") as f:
    f.write("t_s,lag_bytes,lag_segments,admin_upload_lag_bytes\n")
    for s in samples:
        f.write("%s,%d,%d,%s\n" % (s[0], s[1], s[2], "" if s[3] is None else s[3]))
during = [s for s in samples if s[0] <= load_end]
half = len(during) // 2
first, second = during[:half] or during, during[half:] or during
max1, max2 = max(s[1] for s in first), max(s[1] for s in second)
drained = samples[-1][2] == 0
bounded = max2 <= max1 + 2 * 2 * seg and drained
print(json.dumps({"seconds": secs, "segment_bytes": seg, "samples": len(samples),
                  "max_lag_bytes": max(s[1] for s in samples),
                  "max_lag_segments": max(s[2] for s in samples),
                  "max_lag_first_half": max1, "max_lag_second_half": max2,
                  "mean_lag_bytes": sum(s[1] for s in during) / max(len(during), 1),
                  "drained": drained,
                  "drain_s": max(0.0, round(samples[-1][0] - load_end, 1)) if drained else None,
                  "bounded": bounded, "uploaded_segments": n_up[0],
                  "admin_max_lag_bytes": max((s[3] for s in samples if s[3] is not None),
                                             default=None), "csv": os.path.basename(outp + ".csv")}))
EOF
wait "$PPID_" || echo "tiering.sh: producer failed" >&2
PPID_=
/usr/bin/python3 - "$OUTP.json.tmp" "$DIR/produce.json" "$MBPS" >"$OUTP.json" <<'EOF'
import json, sys
s = json.loads(open(sys.argv[1]).read())
s["produce"] = json.loads(open(sys.argv[2]).read())
s["target_mb_per_s"] = float(sys.argv[3])
print(json.dumps(s))
EOF
rm -f "$OUTP.json.tmp"
echo "tiering: $(cat "$OUTP.json")" >&2
