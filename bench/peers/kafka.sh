#!/usr/bin/env bash
# kafka.sh - Apache Kafka as the peer broker of the benchmarks (bench/peers.sh, `make bench`):
# installs it from Maven Central into a cache, runs a single-node KRaft broker on loopback, stops
# it. Never part of `make test`.
#
#   bench/peers/kafka.sh install           jars of bench/peers/pom.xml (pinned version) into the
#                                          cache; prints the classpath folder
#   bench/peers/kafka.sh start DIR PORT flush|default
#                                          formats a KRaft broker+controller in DIR (a fresh temp
#                                          dir) and starts it on 127.0.0.1:PORT; returns once it
#                                          answers. flush: log.flush.interval.messages=1 (every
#                                          appended batch fsynced before it is acked, Strata's
#                                          promise); default: Kafka's default (page cache only)
#   bench/peers/kafka.sh stop DIR          SIGTERM (controlled shutdown), SIGKILL after 60 s
#   bench/peers/kafka.sh run CLASS ARGS... a main class (e.g. the perf tools) on the classpath
#
# env: KAFKA_PEER_CACHE (default ~/.cache/strata-bench), KAFKA_PEER_HEAP (default 1G, Kafka's
# own default heap), JAVA (default java).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
POM=$HERE/pom.xml
VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")
CACHE=${KAFKA_PEER_CACHE:-$HOME/.cache/strata-bench}/kafka-$VERSION
LIBS=$CACHE/libs
JAVA=${JAVA:-java}
HEAP=${KAFKA_PEER_HEAP:-1G}
log() { echo "peers/kafka.sh: $*" >&2; }

install() {
    if [ -f "$CACHE/.complete" ]; then
        echo "$LIBS"
        return
    fi
    command -v mvn >/dev/null 2>&1 || { log "mvn missing (scripts/deps.sh bench)"; exit 1; }
    log "installing Apache Kafka $VERSION into $CACHE ..."
    rm -rf "$LIBS"
    mkdir -p "$LIBS"
    mvn -q -B -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$LIBS" >&2
    ls "$LIBS"/kafka_2.13-"$VERSION".jar "$LIBS"/kafka-tools-"$VERSION".jar >/dev/null
    touch "$CACHE/.complete"
    echo "$LIBS"
}

java_run() { # HEAP_FLAGS CLASS ARGS...: Kafka's JVM flags (kafka-run-class.sh's)
    local heap=$1
    shift
    # shellcheck disable=SC2086
    "$JAVA" $heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
        -Djava.awt.headless=true -cp "$LIBS/*" "$@"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() { # DIR PORT MODE
    local dir=$1 port=$2 mode=$3 cport
    install >/dev/null
    cport=$(free_port)
    mkdir -p "$dir/data"
    {
        echo "process.roles=broker,controller"
        echo "node.id=1"
        echo "controller.quorum.voters=1@127.0.0.1:$cport"
        echo "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
        echo "advertised.listeners=PLAINTEXT://127.0.0.1:$port"
        echo "controller.listener.names=CONTROLLER"
        echo "inter.broker.listener.name=PLAINTEXT"
        echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        echo "log.dirs=$dir/data"
        echo "num.partitions=1"
        echo "offsets.topic.replication.factor=1"
        echo "transaction.state.log.replication.factor=1"
        echo "transaction.state.log.min.isr=1"
        echo "share.coordinator.state.topic.replication.factor=1"
        echo "share.coordinator.state.topic.min.isr=1"
        echo "group.initial.rebalance.delay.ms=0"
        case "$mode" in
        flush) echo "log.flush.interval.messages=1" ;;
        default) ;;
        *) log "mode must be flush or default"; exit 2 ;;
        esac
    } >"$dir/server.properties"
    java_run -Xmx256M kafka.tools.StorageTool format -t "$(java_run -Xmx256M kafka.tools.StorageTool random-uuid)" \
        -c "$dir/server.properties" >"$dir/format.log" 2>&1 ||
        { cat "$dir/format.log" >&2; exit 1; }
    java_run "-Xms$HEAP -Xmx$HEAP" kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 &
    echo $! >"$dir/kafka.pid"
    local pid
    pid=$(cat "$dir/kafka.pid")
    # Ready when the broker listener accepts and answers ApiVersions (the JVM starts slowly on a
    # loaded 2-core machine: up to 120 s).
    for _ in $(seq 600); do
        kill -0 "$pid" 2>/dev/null || { tail -30 "$dir/kafka.log" >&2; log "broker exited"; exit 1; }
        if python3 - "$port" <<'EOF' 2>/dev/null; then
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
cid = b"probe"
body = struct.pack(">hhih", 18, 0, 1, len(cid)) + cid  # ApiVersions v0
s.sendall(struct.pack(">i", len(body)) + body)
n = struct.unpack(">i", s.recv(4))[0]
d = b""
while len(d) < n:
    d += s.recv(n - len(d))
sys.exit(0 if struct.unpack(">h", d[4:6])[0] == 0 else 1)
EOF
            # The controller registers the broker shortly after the listener opens.
            sleep 1
            log "Kafka $VERSION ($mode) on 127.0.0.1:$port, pid $pid"
            return
        fi
        sleep 0.2
    done
    log "broker did not answer in 120 s"
    exit 1
}

stop() { # DIR
    local dir=$1 pid
    [ -f "$dir/kafka.pid" ] || return 0
    pid=$(cat "$dir/kafka.pid")
    kill -TERM "$pid" 2>/dev/null || { rm -f "$dir/kafka.pid"; return 0; }
    for _ in $(seq 600); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$dir/kafka.pid"; return 0; }
        sleep 0.1
    done
    log "broker $pid did not stop in 60 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$dir/kafka.pid"
}

case "${1:-}" in
install) install ;;
start) [ $# -eq 4 ] || { log "usage: start DIR PORT flush|default"; exit 2; }; start "$2" "$3" "$4" ;;
stop) [ $# -eq 2 ] || { log "usage: stop DIR"; exit 2; }; stop "$2" ;;
run) shift; install >/dev/null; java_run -Xmx512M "$@" ;; # the perf tools' heap (their scripts')
*) sed -n '2,19p' "$0" >&2; exit 2 ;;
esac
