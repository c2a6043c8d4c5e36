#!/bin/sh
# Smoke test of coil-bench against a real echo server on loopback.
#
# Usage: bench_smoke.sh run COIL_BENCH SERVER_BIN
#          SERVER_BIN is coil-echo (run as "serve tcp:0:interface=127.0.0.1
#          unix:PATH") or a peer such as bench's uv_echo (run as "0
#          127.0.0.1"); echo, stream and connect runs must finish with
#          exit 0, a RESULT line with requests>0 and errors=0; with
#          coil-echo, an echo run over the UNIX socket too
#        bench_smoke.sh refused COIL_BENCH SERVER_BIN
#          coil-bench against a port just closed must exit 1 and name the
#          endpoint in its message
#        bench_smoke.sh args COIL_BENCH
#          bad arguments exit 2 with a message; --help exits 0
# Each part takes a few seconds; every command is bounded by timeout.
set -eu

part=$1
BENCH=$2
SERVER=${3:-}
T="timeout -k 2 10"

dir=$(mktemp -d "${TMPDIR:-/tmp}/coil-bench-smoke.XXXXXX")
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
    echo "FAIL: $*" >&2
    for f in "$dir"/*.out "$dir"/*.err; do
        [ -f "$f" ] || continue
        echo "--- $f:" >&2
        cat "$f" >&2
    done
    exit 1
}

# Start SERVER on a free loopback port and wait for the line that says
# where it listens (polled, not a fixed wait); sets server_pid and port. coil-echo
# says "serving echo on tcp:PORT (127.0.0.1:PORT)" on stderr, the peers
# "listening on 127.0.0.1:PORT pid PID" on stdout.
start_server() {
    case $(basename "$SERVER") in
    coil-echo*)
        "$SERVER" serve tcp:0:interface=127.0.0.1 "unix:$dir/echo.sock" \
            >"$dir/server.out" 2>&1 &
        ;;
    *)
        "$SERVER" 0 127.0.0.1 >"$dir/server.out" 2>&1 &
        ;;
    esac
    server_pid=$!
    i=0
    port=
    while [ -z "$port" ]; do
        port=$(sed -n 's/.*127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$dir/server.out" | head -n 1)
        [ -n "$port" ] && break
        kill -0 "$server_pid" 2>/dev/null || fail "$SERVER exited early"
        i=$((i + 1))
        [ $i -lt 200 ] || fail "$SERVER did not start within 10 s"
        sleep 0.05
    done
}

stop_server() {
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

# expect_ok NAME ARGS...: exit 0, a RESULT last line with requests>0 and
# errors=0.
expect_ok() {
    name=$1
    shift
    rc=0
    $T "$BENCH" "$@" >"$dir/$name.out" 2>"$dir/$name.err" || rc=$?
    [ $rc -eq 0 ] || fail "coil-bench $* exited $rc"
    last=$(tail -n 1 "$dir/$name.out")
    case $last in
    "RESULT mode="*) ;;
    *) fail "coil-bench $*: the last line is not a RESULT line: $last" ;;
    esac
    req=$(echo "$last" | sed -n 's/.* requests=\([0-9][0-9]*\) .*/\1/p')
    [ -n "$req" ] && [ "$req" -gt 0 ] || fail "coil-bench $*: no requests: $last"
    case "$last " in
    *" errors=0 "*) ;;
    *) fail "coil-bench $*: errors: $last" ;;
    esac
    echo "ok: coil-bench $*"
    echo "    $last"
}

case $part in
run)
    start_server
    ep=tcp:127.0.0.1:$port
    expect_ok echo echo "$ep" -c 4 -s 1k -d 1 -w 0
    expect_ok stream stream "$ep" -c 2 -s 64k -d 0.5 -w 0 --cpu-pid "$server_pid"
    expect_ok connect connect "$ep" -c 4 -d 0.5 -w 0
    case $(basename "$SERVER") in
    coil-echo*) expect_ok unix echo "unix:$dir/echo.sock" -c 2 -s 100 -d 0.5 -w 0.2 ;;
    esac
    # The server must still be there and serving after all of it.
    kill -0 "$server_pid" 2>/dev/null || fail "$SERVER died during the runs"
    stop_server
    ;;
refused)
    start_server
    stop_server
    ep=tcp:127.0.0.1:$port
    rc=0
    $T "$BENCH" echo "$ep" -c 2 -d 1 -w 0 >"$dir/refused.out" 2>"$dir/refused.err" || rc=$?
    [ $rc -eq 1 ] || fail "coil-bench against closed $ep exited $rc, want 1"
    grep -q "$ep" "$dir/refused.err" || fail "the message does not name $ep"
    grep -q "refused" "$dir/refused.err" || fail "the message does not say refused"
    grep -q '^RESULT .* errors=[1-9]' "$dir/refused.out" || fail "no RESULT line with errors"
    echo "ok: refused: $(head -n 1 "$dir/refused.err")"
    ;;
args)
    # bad_args WANT_TEXT ARGS...: exit 2, WANT_TEXT in the message.
    bad_args() {
        want=$1
        shift
        rc=0
        $T "$BENCH" "$@" >"$dir/args.out" 2>"$dir/args.err" || rc=$?
        [ $rc -eq 2 ] || fail "coil-bench $* exited $rc, want 2"
        grep -qF -- "$want" "$dir/args.err" || fail "coil-bench $*: no '$want' in message"
        echo "ok: coil-bench $* -> $(head -n 1 "$dir/args.err")"
    }
    bad_args "-c needs a positive number" echo tcp:127.0.0.1:9 -c x
    bad_args "-c needs a positive number" echo tcp:127.0.0.1:9 -c 0
    bad_args "-s needs a positive size" echo tcp:127.0.0.1:9 -s 10q
    bad_args "-d needs a positive number" echo tcp:127.0.0.1:9 -d 0
    bad_args "-w needs a non-negative number" echo tcp:127.0.0.1:9 -w -1
    bad_args "unknown mode" frobnicate tcp:127.0.0.1:9
    bad_args "needs an ENDPOINT" echo
    bad_args "unknown option" echo tcp:127.0.0.1:9 --bogus
    bad_args "tcp:nope" echo tcp:nope
    rc=0
    $T "$BENCH" --help >"$dir/help.out" 2>&1 || rc=$?
    [ $rc -eq 0 ] || fail "coil-bench --help exited $rc"
    grep -q "^Usage: coil-bench" "$dir/help.out" || fail "--help prints no usage"
    echo "ok: --help"
    ;;
*)
    echo "usage: $0 run|refused|args COIL_BENCH [SERVER_BIN]" >&2
    exit 2
    ;;
esac
