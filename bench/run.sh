#!/usr/bin/env bash
# run.sh - run the benchmarks (not tests: they print ratios measured in the
# same run against this machine's own limits; nothing asserts on them).
# Usage: bench/run.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DIR=$(mktemp -d "${BENCH_DIR:-$PWD}/.bench.XXXXXX")
trap 'rm -rf "$DIR"' EXIT
"$BUILD/bench/log_append" --dir "$DIR" --seconds "${BENCH_SECONDS:-5}"
# Kafka produce/consume/latency against a real stratad (ratios to disk and loopback).
bench/kafka.sh "$BUILD"
