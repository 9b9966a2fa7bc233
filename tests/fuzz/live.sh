#!/bin/sh
# live.sh STRATAD LIVE_FUZZ [live_fuzz options...] - start STRATAD (normally the ASan+UBSan
# build) on a fresh data directory and free loopback ports, run the live fuzzer against it
# (tests/fuzz/live_fuzz.c: creates topics, produces, then fuzzes every served API and version
# over many connections), and fail when the fuzzer fails, when stratad died, when its output
# holds a sanitizer report (AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer,
# "runtime error:") or a response it could not encode, or when it does not stop cleanly on
# SIGTERM. The fuzzer prints its seed;
# pass --seed S to reproduce a run. LIVE_KEEP=1 keeps the data directory and log.
# LIVE_SASL_TLS=1 gives the broker a SASL_SSL listener (certificate made here with the openssl
# CLI) and sends the fuzzer's SASL connections to it through socat, which wraps each one in
# TLS: the fuzzed requests and logins then go through the broker's TLS layer too.
set -u
STRATAD=$1
FUZZ=$2
shift 2
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/strata-live.XXXXXX")
LOG=$DIR/stratad.log
port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Ports are picked free here, but a parallel test (or an outgoing connection) can take one
# before stratad binds it: stratad then says "already in use", and it starts again on new
# ports (at most 5 times), as tests/integration/broker.py does.
pick_ports() {
    KPORT=$(port)
    SPORT=$(port)
    APORT=$(port)
    LISTENERS="PLAINTEXT://127.0.0.1:$KPORT,SASL_PLAINTEXT://127.0.0.1:$SPORT"
    FUZZ_SASL_PORT=$SPORT
    if [ "${LIVE_SASL_TLS:-0}" = 1 ]; then
        TPORT=$(port)
        XPORT=$(port)
        LISTENERS="$LISTENERS,SASL_SSL://127.0.0.1:$TPORT"
        FUZZ_SASL_PORT=$XPORT
    fi
}
TLS_ARGS=""
SOCAT=""
PID=""
if [ "${LIVE_SASL_TLS:-0}" = 1 ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$DIR/key.pem" -out "$DIR/cert.pem" \
        -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null ||
        { echo "live.sh: openssl cannot make a certificate"; exit 1; }
    cat "$DIR/key.pem" "$DIR/cert.pem" >"$DIR/keystore.pem"
    TLS_ARGS="-X ssl.keystore.type=PEM -X ssl.keystore.location=$DIR/keystore.pem"
fi
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null
    [ -n "$SOCAT" ] && kill "$SOCAT" 2>/dev/null
    [ "${LIVE_KEEP:-0}" = 1 ] && echo "live.sh: kept $DIR" || rm -rf "$DIR"
}
trap cleanup EXIT
# A PLAINTEXT and a SASL_PLAINTEXT listener (some fuzzer connections log in there as the
# bootstrap user); authorization is on, open to everyone where no ACL names a resource.
# Tiered storage is on (file:// archive in the data directory): the fuzzer's fz-four topic
# uploads small segments and keeps little locally. Shard queues hold 64 messages
# (LIVE_QUEUE_CAPACITY; default 4096) so cross-shard posts often wait in the retry queue.
attempt=1
while :; do
    pick_ports
    STRATA_BOOTSTRAP_USER=fzadmin:fzpass "$STRATAD" --log-dir "$DIR/data" --smp 2 \
        --listeners "$LISTENERS" $TLS_ARGS \
        -X sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512 \
        -X allow.everyone.if.no.acl.found=true \
        -X remote.log.storage.system.enable=true -X log.retention.check.interval.ms=2000 \
        -X strata.shard.queue.capacity="${LIVE_QUEUE_CAPACITY:-64}" \
        --admin-listener "127.0.0.1:$APORT" >"$LOG" 2>&1 &
    PID=$!
    # Wait (bounded) for the broker to say it started.
    i=0
    until grep -q started "$LOG" 2>/dev/null; do
        if ! kill -0 "$PID" 2>/dev/null || [ $i -ge 600 ]; then
            break
        fi
        i=$((i + 1)); sleep 0.1
    done
    grep -q started "$LOG" 2>/dev/null && break
    if [ $attempt -lt 5 ] && grep -q "already in use" "$LOG" && ! kill -0 "$PID" 2>/dev/null; then
        wait "$PID" 2>/dev/null
        echo "live.sh: a port was taken meanwhile; starting again on new ports"
        attempt=$((attempt + 1))
        continue
    fi
    echo "live.sh: stratad did not start"; cat "$LOG"; exit 1
done
echo "live.sh: stratad pid $PID on 127.0.0.1:$KPORT ($STRATAD)"
if [ "${LIVE_SASL_TLS:-0}" = 1 ]; then
    command -v socat >/dev/null || { echo "live.sh: socat not found (scripts/deps.sh test)"; exit 1; }
    socat "TCP-LISTEN:$XPORT,bind=127.0.0.1,fork,reuseaddr" \
        "OPENSSL:127.0.0.1:$TPORT,verify=0" 2>"$DIR/socat.log" &
    SOCAT=$!
    i=0
    until /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1', $XPORT), 1).close()" 2>/dev/null; do
        [ $i -ge 100 ] && { echo "live.sh: socat did not listen"; cat "$DIR/socat.log"; exit 1; }
        i=$((i + 1)); sleep 0.1
    done
    echo "live.sh: SASL connections go through TLS: socat 127.0.0.1:$XPORT -> SASL_SSL 127.0.0.1:$TPORT"
fi
start=$(date +%s)
"$FUZZ" --port "$KPORT" --sasl-port "$FUZZ_SASL_PORT" --broker-pid "$PID" "$@"
frc=$?
end=$(date +%s)
[ -n "$SOCAT" ] && kill "$SOCAT" 2>/dev/null && wait "$SOCAT" 2>/dev/null
echo "live.sh: live_fuzz exit $frc after $((end - start)) s"
fail=0
[ "$frc" -eq 0 ] || fail=1
if ! kill -0 "$PID" 2>/dev/null; then
    echo "live.sh: stratad died"; fail=1
else
    echo "live.sh: stratad peak RSS $(grep VmHWM /proc/$PID/status | tr -s ' \t' ' ')"
    kill -TERM "$PID"
    wait "$PID"
    src=$?
    if [ "$src" -ne 0 ]; then
        echo "live.sh: stratad exited $src on SIGTERM"; fail=1
    fi
fi
trap - EXIT
if grep -q -E 'ERROR: AddressSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$LOG"; then
    echo "live.sh: sanitizer report in the stratad log"; fail=1
fi
# A response the broker built but could not encode is a handler bug, whatever the request.
if grep -a -E 'cannot encode .* response' "$LOG" | head -5 | grep -q .; then
    echo "live.sh: stratad could not encode a response:"
    grep -a -E 'cannot encode .* response' "$LOG" | sort | uniq -c | head -5
    fail=1
fi
if grep -q -E 'LeakSanitizer' "$LOG"; then
    grep -E 'SUMMARY: AddressSanitizer: .* leaked' "$LOG"
    echo "live.sh: leak report in the stratad log"; fail=1
fi
# A post refused by a closed shard loses an op: its request would never be freed.
if grep -q 'cannot post to shard' "$LOG"; then
    grep 'cannot post to shard' "$LOG" | head -3
    echo "live.sh: stratad lost a cross-shard post at shutdown"; fail=1
fi
if [ "$fail" -ne 0 ]; then
    echo "---- stratad log (last 200 lines) ----"
    tail -n 200 "$LOG"
    echo "live.sh: FAILED (log kept in $DIR)"
    exit 1
fi
[ "${LIVE_KEEP:-0}" = 1 ] && echo "live.sh: kept $DIR" || rm -rf "$DIR"
echo "live.sh: passed"
