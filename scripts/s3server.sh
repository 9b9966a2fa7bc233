#!/usr/bin/env bash
# s3server.sh - a local, signature-verifying S3-compatible server for tests
# (npm s3rver, pinned). Strata's own copy of the recipe in the team's shared
# notes; it must work on a fresh machine with only node + npm.
#
#   s3server.sh start PORT DATADIR [BUCKET...]   install if needed, start on 127.0.0.1:PORT,
#                                                create the buckets, print the endpoint URL
#   s3server.sh stop DATADIR                     stop the server whose pid is in DATADIR/s3rver.pid
#
# Objects live in DATADIR/store; DATADIR also holds s3rver.pid, s3rver.log and
# `flavor` (verify|legacy). Credentials: access key S3RVER, secret S3RVER,
# region us-east-1, path-style URLs.
# Env: S3RVER_FLAVOR     verify (default): @20minutes/s3rver@4.0.4, checks SigV4 (Node >= 20);
#                        falls back to legacy with a warning on older Node
#                        legacy: s3rver@3.7.1, does NOT check signatures
#      STRATA_S3SERVER_CACHE  install parent dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/strata)
#      S3RVER_START_TIMEOUT   seconds to wait for the server (default 30)
# Quirks worth knowing (measured): ListObjectsV2 paging needs
# --openssl-legacy-provider (set below); AbortMultipartUpload answers 405;
# keys with & < > ' come back double-escaped in list XML on 4.0.4; suffix
# ranges (bytes=-N) return wrong data; query values with !*'() fail signature
# checks on 4.0.4.
set -euo pipefail

die() { echo "s3server.sh: $*" >&2; exit 1; }

node_major() { node -e 'process.stdout.write(String(parseInt(process.versions.node)))'; }

FLAVOR=${S3RVER_FLAVOR:-verify}
if [ "$FLAVOR" = verify ] && [ "${1:-}" = start ] && command -v node >/dev/null &&
    [ "$(node_major)" -lt 20 ]; then
    echo "s3server.sh: Node $(node --version) < 20: using the legacy flavor (no signature checks)" >&2
    FLAVOR=legacy
fi
case "$FLAVOR" in
verify) PKG=@20minutes/s3rver VERSION=4.0.4 NAME=20minutes-s3rver ;;
legacy) PKG=s3rver VERSION=3.7.1 NAME=s3rver ;;
*) die "S3RVER_FLAVOR must be verify or legacy" ;;
esac
CACHE=${STRATA_S3SERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/strata}/$NAME-$VERSION
if [ "$PKG" = s3rver ]; then
    BIN=$CACHE/node_modules/s3rver/bin/s3rver.js
else
    BIN=$CACHE/s3rver.js # generated below: the package lacks the bin/s3rver.js it declares
fi

is_ours() { # pid -> true if it is a live s3rver process (either flavor)
    kill -0 "$1" 2>/dev/null && ps -p "$1" -o args= 2>/dev/null | grep -q 's3rver\.js'
}

install() {
    [ -f "$BIN" ] && return 0
    command -v npm >/dev/null || die "npm not found (scripts/deps.sh test installs it)"
    mkdir -p "$(dirname "$CACHE")"
    local tmp
    tmp=$(mktemp -d "$CACHE.tmp.XXXXXX")
    echo "s3server.sh: installing $PKG@$VERSION into $CACHE" >&2
    # No --prefix: it would also move npm's global config (and its CA file)
    # to $tmp/etc/npmrc. A package.json makes npm install into $tmp itself.
    echo '{"private": true}' >"$tmp/package.json"
    (cd "$tmp" && npm install --no-audit --no-fund --no-save --loglevel=error \
        "$PKG@$VERSION" >&2) || { rm -rf "$tmp"; die "npm install failed"; }
    if [ "$PKG" != s3rver ]; then
        echo "require('$PKG/lib/cli').parseAsync(process.argv); // written by s3server.sh" >"$tmp/s3rver.js"
    fi
    # atomic publish; if another job won the race, keep theirs
    mv -T "$tmp" "$CACHE" 2>/dev/null || rm -rf "$tmp"
    [ -f "$BIN" ] || die "install incomplete: $BIN missing"
}

start() {
    local port=$1 dir=$2
    shift 2
    [[ $port =~ ^[0-9]+$ ]] || die "bad port: $port"
    command -v node >/dev/null || die "node not found"
    command -v curl >/dev/null || die "curl not found"
    mkdir -p "$dir/store"
    dir=$(cd "$dir" && pwd)
    local pidf=$dir/s3rver.pid
    if [ -f "$pidf" ] && is_ours "$(cat "$pidf")"; then
        die "already running (pid $(cat "$pidf")); stop it first"
    fi
    local url=http://127.0.0.1:$port
    curl -s -o /dev/null "$url/" && die "port $port already in use"
    install
    local buckets=()
    for b in "$@"; do buckets+=(--configure-bucket "$b"); done
    # --openssl-legacy-provider: s3rver encrypts ListObjectsV2 continuation tokens
    # with DES, which OpenSSL 3 (Node >= 17) rejects -> 500 on paged listings.
    NODE_OPTIONS="${NODE_OPTIONS:-} --openssl-legacy-provider" \
        nohup node "$BIN" --address 127.0.0.1 --port "$port" --directory "$dir/store" \
        --silent "${buckets[@]}" </dev/null >"$dir/s3rver.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$pidf"
    echo "$FLAVOR" >"$dir/flavor"
    local deadline=$((SECONDS + ${S3RVER_START_TIMEOUT:-30}))
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/" || true)" = 200 ]; do
        if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
            kill "$pid" 2>/dev/null || true
            rm -f "$pidf"
            cat "$dir/s3rver.log" >&2
            die "server did not come up on $url"
        fi
        sleep 0.2
    done
    # the port may have been taken by another server: make sure ours answered
    is_ours "$pid" || { rm -f "$pidf"; cat "$dir/s3rver.log" >&2; die "server exited"; }
    echo "$url"
}

stop() {
    local pidf=$1/s3rver.pid pid
    [ -f "$pidf" ] || die "no pid file: $pidf"
    pid=$(cat "$pidf")
    if is_ours "$pid"; then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidf"
}

case "${1:-}" in
start) [ $# -ge 3 ] || die "usage: $0 start PORT DATADIR [BUCKET...]"; shift; start "$@" ;;
stop) [ $# -eq 2 ] || die "usage: $0 stop DATADIR"; stop "$2" ;;
*) die "usage: $0 start PORT DATADIR [BUCKET...] | stop DATADIR" ;;
esac
