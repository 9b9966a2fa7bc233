#!/bin/sh
# run.sh live SECONDS [live_fuzz options...] - fuzz a live ASan+UBSan stratad for SECONDS
# (tests/fuzz/live.sh with <repo>/build-asan/tools/stratad and the live_fuzz of <repo>/build,
# or STRATAD / LIVE_FUZZ): every served API and version, 32 connections, lists of up to
# 200,000 partitions (make test: 2,000), a fresh seed unless
# --seed S is given. It prints the seed; a failure keeps the broker's log. Build both first
# (make build asan).
# run.sh SECONDS [OUTDIR] - build the Kafka decoder fuzz target with clang + libFuzzer
# (-fsanitize=fuzzer,address,undefined) into OUTDIR (default: <repo>/build-fuzz) and run it
# for SECONDS over the committed seed corpus (tests/fuzz/corpus/kp, read-only) plus a working
# corpus in OUTDIR/corpus-kp where new inputs go. Crashes land in OUTDIR/ as crash-*.
# Exit status: libFuzzer's (0 = no crash), or 77 when clang cannot build libFuzzer targets
# (ctest reports that as skipped). CLANG overrides the compiler.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ "${1:-}" = live ]; then
    shift
    SECS=${1:-60}
    [ $# -gt 0 ] && shift
    STRATAD=${STRATAD:-$ROOT/build-asan/tools/stratad}
    LIVE_FUZZ=${LIVE_FUZZ:-$ROOT/build/tests/live_fuzz}
    exec "$ROOT/tests/fuzz/live.sh" "$STRATAD" "$LIVE_FUZZ" --seconds "$SECS" \
        --requests 1000000000 --conns 32 --max-parts 200000 --regress "$ROOT/tests/fuzz/live_regress.txt" "$@"
fi
SECS=${1:-60}
OUT=${2:-$ROOT/build-fuzz}
CLANG=${CLANG:-clang}
mkdir -p "$OUT/corpus-kp"
BIN="$OUT/kp_decode_fuzz"
SRCS="$ROOT/kafka/kp_arena.c $ROOT/kafka/kp_errcode.c $ROOT/kafka/kp_reader.c
      $ROOT/kafka/kp_writer.c $ROOT/kafka/kp_msg.c $ROOT/tests/fuzz/kp_decode_fuzz.c"
FLAGS="-std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
       -fno-omit-frame-pointer -D_GNU_SOURCE -I$ROOT"

if ! command -v "$CLANG" >/dev/null 2>&1; then
    echo "run.sh: $CLANG not found; skipping" >&2
    exit 77
fi
probe="$OUT/probe.c"
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe"
if ! "$CLANG" -fsanitize=fuzzer,address,undefined "$probe" -o "$OUT/probe" 2>/dev/null; then
    echo "run.sh: $CLANG cannot link libFuzzer targets; skipping" >&2
    exit 77
fi

# Rebuild only when a source or header is newer than the binary.
stale=0
[ -x "$BIN" ] || stale=1
for f in $SRCS "$ROOT"/kafka/*.h "$ROOT"/core/st_err.h; do
    [ "$f" -nt "$BIN" ] && stale=1
done
if [ "$stale" = 1 ]; then
    echo "run.sh: building $BIN"
    # shellcheck disable=SC2086
    "$CLANG" $FLAGS $SRCS -o "$BIN.tmp"
    mv "$BIN.tmp" "$BIN"
fi

cd "$OUT"
exec "$BIN" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 "$OUT/corpus-kp" "$ROOT/tests/fuzz/corpus/kp"
