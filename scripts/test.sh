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
run_ctest() { # dir label
    local log
    log=$(mktemp)
    ctest --test-dir "$1" -L "$2" --output-on-failure -j2 2>&1 | tee "$log"
    local p t
    p=$(sed -n 's/.* \([0-9]\+\) tests failed out of \([0-9]\+\).*/\1 \2/p' "$log" | tail -1)
    if [ -z "$p" ]; then
        fail=$((fail + 1)); failed="$failed ctest($1,$2)"
    else
        set -- $p
        t=$2
        fail=$((fail + $1)); pass=$((pass + t - $1))
        [ "$1" -eq 0 ] || failed="$failed $(grep -o '[0-9]* - [A-Za-z0-9_.-]* (Failed\|Timeout\|SEGFAULT)' "$log" | tr '\n' ' ')"
    fi
    rm -f "$log"
}

echo "== unit tests (ASan+UBSan build: $ASAN)"
run_ctest "$ASAN" unit
echo "== integration tests (Release build: $REL)"
run_ctest "$REL" integration

echo
[ -z "$failed" ] || echo "failed:$failed"
echo "${pass} passed, ${fail} failed"
[ "$fail" -eq 0 ]
