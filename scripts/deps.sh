#!/usr/bin/env bash
# deps.sh - install what Strata needs from Debian's packages (and npm for tests).
# Usage: scripts/deps.sh build   # compiler, CMake and the libraries stratad links
#        scripts/deps.sh test    # build deps + cmocka, Kafka clients, Node.js, clang (fuzz),
#                                # Java 17 + Maven (the Java client tests)
#        scripts/deps.sh bench   # build deps + benchmark tools (fio, iperf3, gnuplot, perf, the
#                                # S3 test server's node + npm, python3, curl, and Java 17 +
#                                # Maven for the Apache Kafka peer of bench/peers/kafka.sh)
# Installs only what is missing; uses sudo when not root. Safe to run repeatedly.
set -euo pipefail

BUILD_PKGS="gcc make cmake pkg-config libuv1-dev libcurl4-openssl-dev libssl-dev libzstd-dev
libsqlite3-dev libyaml-dev librdkafka-dev zlib1g-dev liblz4-dev libsnappy-dev libjansson-dev"
# prometheus: its promtool checks GET /metrics in tests/integration/test_admin.py.
# libfuse3-dev + fuse3 (fusermount3): holdfs, the FUSE filesystem of the power-cut test.
# iproute2: ss(8) reads the broker's socket send buffer back in tests/integration/test_sndbuf.py.
# zsh, fish: test_cli.py loads `strata completion zsh` and `strata completion fish` in them.
TEST_PKGS="libcmocka-dev kcat python3 python3-confluent-kafka python3-kafka zstd curl clang
libclang-rt-14-dev clang-format procps iproute2 prometheus libfuse3-dev fuse3 socat openssl zsh fish"
# Benchmarks only (bench/run.sh), never needed by tests: fio probes fdatasync'd writes, iperf3
# loopback TCP, gnuplot-nox draws the report's PNGs, linux-perf profiles stratad; the replay
# and tiering scenarios use the S3 test server (node + npm) and curl; python3-confluent-kafka
# fills the replay topics.
BENCH_PKGS="fio iperf3 gnuplot-nox linux-perf python3 python3-confluent-kafka curl"

want="$BUILD_PKGS"
case "${1:-build}" in
build) ;;
test) want="$BUILD_PKGS $TEST_PKGS" ;;
bench) want="$BUILD_PKGS $BENCH_PKGS" ;;
*) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
# Node.js may come from another source than Debian; only install it when absent.
if [ "${1:-build}" = test ] || [ "${1:-build}" = bench ]; then
    command -v node >/dev/null 2>&1 || missing="$missing nodejs"
    command -v npm >/dev/null 2>&1 || missing="$missing npm"
fi
# Java 17 and Maven: the Java client tests (tests/integration/java) and the Apache Kafka peer
# of the benchmarks (bench/peers/kafka.sh); only when absent (they may come from another
# source than Debian).
if [ "${1:-build}" = test ] || [ "${1:-build}" = bench ]; then
    { command -v java && command -v javac; } >/dev/null 2>&1 || missing="$missing openjdk-17-jdk-headless"
    command -v mvn >/dev/null 2>&1 || missing="$missing maven"
fi

if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "deps: installing:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
# PyPI confluent-kafka 2.x (librdkafka 2.x, which speaks KIP-848's consumer group protocol) for
# tests/integration/test_kip848.py, beside Debian's 1.7 that the other tests use: installed with
# pip into a cache directory (never into the system), the one the test puts first on sys.path.
if [ "${1:-build}" = test ]; then
    CK_DIR="${STRATA_PYDEPS:-$HOME/.cache/strata/pydeps}/confluent-kafka-2.16.1"
    if [ ! -d "$CK_DIR/confluent_kafka" ]; then
        echo "deps: pip install confluent-kafka==2.16.1 --target $CK_DIR"
        /usr/bin/python3 -m pip install -q --disable-pip-version-check --no-deps \
            --only-binary=:all: --target "$CK_DIR" confluent-kafka==2.16.1
    fi
fi
