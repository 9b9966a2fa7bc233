#!/usr/bin/env bash
# run.sh - object store throughput: our client vs the curl CLI against the same
# local S3 server (scripts/s3server.sh) in the same run, and prints ratios.
#   bench/objstore/run.sh [BUILD_DIR] [SIZE_MIB] [N_PUTS] [GET_PASSES]
# PUT: N_PUTS single PUTs of SIZE_MIB each (curl -T with SigV4, one process each).
# GET: GET_PASSES passes of sequential 1 MiB ranged GETs over one object (curl: one process,
#      one keep-alive connection, `next` per range).
# Not run by `make test`; numbers depend on the machine and its load.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
SIZE=${2:-64}
N=${3:-4}
P=${4:-4}
BIN=$BUILD/bench/objstore/obj_bench
[ -x "$BIN" ] || { echo "build first: cmake --build $BUILD --target obj_bench" >&2; exit 1; }

DIR=$(mktemp -d "${TMPDIR:-/tmp}/strata-objbench.XXXXXX")
trap 'scripts/s3server.sh stop "$DIR/s3" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=$(scripts/s3server.sh start "$PORT" "$DIR/s3" strata)
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1

now() { date +%s.%N; }
rate() { python3 -c "print(f'{$1 / ($3 - $2):.1f}')"; } # MiB start end

echo "== client (obj_bench), $N x $SIZE MiB PUT, $P x $SIZE x 1 MiB ranged GET"
"$BIN" "s3://strata/client" "$URL" "$SIZE" "$N" "$P" | tee "$DIR/client.txt"
c_put=$(awk '/put_mib_s/ {print $2}' "$DIR/client.txt")
c_get=$(awk '/get_range_mib_s/ {print $2}' "$DIR/client.txt")

echo "== curl CLI"
head -c $((SIZE << 20)) /dev/urandom >"$DIR/blob"
SIG=(--aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
t0=$(now)
for i in $(seq 0 $((N - 1))); do
    curl -sf "${SIG[@]}" -T "$DIR/blob" "$URL/strata/curl/obj-$i" -o /dev/null
done
t1=$(now)
k_put=$(rate $((N * SIZE)) "$t0" "$t1")
: >"$DIR/get.cfg"
for j in $(seq 0 $((P * SIZE - 1))); do
    i=$((j % SIZE))
    s=$((i << 20))
    [ "$j" -eq 0 ] || echo "next" >>"$DIR/get.cfg"
    printf 'url = "%s/strata/curl/obj-0"\nrange = "%d-%d"\noutput = "/dev/null"\n' \
        "$URL" "$s" $((s + (1 << 20) - 1)) >>"$DIR/get.cfg"
    printf 'aws-sigv4 = "aws:amz:us-east-1:s3"\nuser = "S3RVER:S3RVER"\n' >>"$DIR/get.cfg"
    printf 'header = "x-amz-content-sha256: UNSIGNED-PAYLOAD"\nfail\nsilent\n' >>"$DIR/get.cfg"
done
t0=$(now)
curl -K "$DIR/get.cfg"
t1=$(now)
k_get=$(rate $((P * SIZE)) "$t0" "$t1")
echo "put_mib_s $k_put"
echo "get_range_mib_s $k_get"

echo
echo "== ratios (client / curl; > 1 means the client is faster)"
python3 -c "print(f'PUT {$SIZE} MiB:        client {$c_put} MiB/s  curl {$k_put} MiB/s  ratio {$c_put / $k_put:.2f}')"
python3 -c "print(f'GET 1 MiB ranges:  client {$c_get} MiB/s  curl {$k_get} MiB/s  ratio {$c_get / $k_get:.2f}')"
