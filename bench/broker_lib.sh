# broker_lib.sh - shell helpers for the bench scripts that restart one stratad on one data
# directory between measurements (sendfile.sh, consume_ab.sh). Source it after setting
# BLIB_NAME (the script's name, for log lines) and DIR (a temp directory: the broker's data goes
# to DIR/data; DIR is removed on exit, after the broker was stopped).
# Defines log, free_port, builds_ok BUILD_DIR..., broker_start STRATAD [ARGS...], broker_stop,
# loopback_json STRATA_CLI, produce_topics STRATA_CLI BROKERS RECORDS; sets BROKERS (127.0.0.1:PORT, the same for every
# start), SPID (the running broker or "") and ADMIN (its admin API's HOST:PORT).
log() { echo "$BLIB_NAME: $*" >&2; }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
builds_ok() { # BUILD_DIR...: exit unless each has tools/strata and tools/stratad built
    local b f
    for b in "$@"; do
        for f in "$b/tools/strata" "$b/tools/stratad"; do
            [ -x "$f" ] || { log "$f not built"; exit 1; }
        done
    done
}
SPID=""
blib_cleanup() {
    if [ -n "$SPID" ]; then
        kill -TERM "$SPID" 2>/dev/null || true
        wait "$SPID" 2>/dev/null || true
    fi
    rm -rf "$DIR"
}
trap blib_cleanup EXIT
BROKERS=127.0.0.1:$(free_port)
ADMIN=""
broker_start() { # STRATAD [ARGS...]: start on DIR/data and wait until it serves
    ADMIN=127.0.0.1:$(free_port)
    "$1" --log-dir "$DIR/data" --smp 2 --listeners "$BROKERS" \
        --admin-listener "$ADMIN" "${@:2}" >>"$DIR/stratad.log" 2>&1 &
    SPID=$!
    for _ in $(seq 300); do
        grep -qs "started" "$DIR/stratad.log" && return
        sleep 0.1
    done
    log "stratad did not start"
    exit 1
}
broker_stop() {
    kill -TERM "$SPID"
    wait "$SPID" || log "stratad exited with $?"
    SPID=""
    : >"$DIR/stratad.log"
}
loopback_json() { # STRATA_CLI: the loopback TCP probe (3 s) as one JSON line, what=loopback
    "$1" --format json bench loopback -d 3s | python3 -c 'import json, sys
j = json.loads(sys.stdin.read()); j["what"] = "loopback"; print(json.dumps(j))'
}
produce_topics() { # STRATA_CLI BROKERS RECORDS: topics p1 and p8 of RECORDS 1 KiB records in
    # 64 KiB batches, as bench/kafka.sh writes them
    for np in 1 8; do
        log "produce $3 records of 1 KiB to $np partition(s) at $2 ..."
        "$1" --brokers "$2" --format json bench produce --topic "p$np" --partitions "$np" \
            --acks all --record-size 1024 --batch-bytes 65536 --linger-ms 5 --compression none \
            --count "$3" --duration 300s >/dev/null
    done
}
