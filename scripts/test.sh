#!/usr/bin/env bash
# test.sh - run every test: unit tests on the ASan+UBSan build, integration
# tests on the Release build (real stratad processes on loopback). Starts and
# stops the servers the tests need. Ends with one summary line.
# Usage: scripts/test.sh RELEASE_BUILD_DIR ASAN_BUILD_DIR
set -uo pipefail
cd "$(dirname "$0")/.."
REL=${1:-build}
ASAN=${2:-build-asan}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

pass=0
fail=0
failed=""
run_ctest() { # dir label [extra ctest args]
    local log dir=$1 label=$2
    shift 2
    log=$(mktemp)
    ctest --test-dir "$dir" -L "$label" --output-on-failure -j2 "$@" 2>&1 | tee "$log"
    local p t
    p=$(sed -n 's/.* \([0-9]\+\) tests failed out of \([0-9]\+\).*/\1 \2/p' "$log" | tail -1)
    if [ -z "$p" ]; then
        fail=$((fail + 1)); failed="$failed ctest($dir,$label)"
    else
        set -- $p
        t=$2
        fail=$((fail + $1)); pass=$((pass + t - $1))
        [ "$1" -eq 0 ] || failed="$failed $(grep -o '[0-9]* - [A-Za-z0-9_.-]* (Failed\|Timeout\|SEGFAULT)' "$log" | tr '\n' ' ')"
    fi
    rm -f "$log"
}

echo "== format (clang-format, as make format-check; make format fixes it)"
srcs=$(git ls-files '*.c' '*.h' 2>/dev/null)
if [ -z "$srcs" ]; then
    echo "not a git checkout: format check skipped"
elif clang-format --dry-run --Werror $srcs; then
    pass=$((pass + 1))
else
    fail=$((fail + 1)); failed="$failed format-check"
fi
echo "== unit tests (ASan+UBSan build: $ASAN)"
run_ctest "$ASAN" unit
echo "== integration tests (Release build: $REL)"
# Node.js Kafka client (kafkajs) for the integration tests, pinned by package-lock.json.
if ! (cd tests/integration/js && npm ci --no-audit --no-fund --silent >/dev/null 2>&1); then
    fail=$((fail + 1)); failed="$failed npm-ci"
fi
# Local S3 server (scripts/s3server.sh, bucket "strata") for the object store
# tests; stopped on exit.
S3DIR=$(mktemp -d "${TMPDIR:-/tmp}/strata-s3.XXXXXX")
trap 'scripts/s3server.sh stop "$S3DIR" >/dev/null 2>&1; rm -rf "$S3DIR"' EXIT
s3port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if STRATA_TEST_S3_URL=$(scripts/s3server.sh start "$s3port" "$S3DIR" strata); then
    export STRATA_TEST_S3_URL
    STRATA_TEST_S3_VERIFIES=$([ "$(cat "$S3DIR/flavor")" = verify ] && echo 1 || echo 0)
    export STRATA_TEST_S3_VERIFIES
else
    fail=$((fail + 1)); failed="$failed s3server"
fi
run_ctest "$REL" integration
# The broker-level integration tests again against the ASan+UBSan stratad:
# memory and undefined-behaviour errors in the server fail them.
echo "== integration tests under ASan+UBSan (build: $ASAN)"
run_ctest "$ASAN" integration -R '^(crash_kill9|stratad_process|kafka_clients|kafka_idempotence|kafka_hostile|fd_limits|tiering_long_names|kafka_fetch_budget|tiering_upload|live_fuzz|live_fuzz_tls|retry_queue|tls|sasl)$'

echo
[ -z "$failed" ] || echo "failed:$failed"
echo "${pass} passed, ${fail} failed"
[ "$fail" -eq 0 ]
