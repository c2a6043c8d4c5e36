#!/bin/sh
# coil-tunnel and the ssh: endpoint for real, against the throwaway OpenSSH
# sshd of the `sshd` ctest fixture (COIL_TEST_SSHD=DIR, DIR/env).
#
# Usage: run_tunnel.sh local|remote|endpoint|reconnect|bench TUNNEL ECHO CHAT [BENCH]
#   local     two -L forwards at once to coil-echo servers: round trips of
#             1 byte and 1 MiB (hashed), four connections at once over the
#             one session, one -v line per connection, SIGTERM: exit 0
#   remote    -R to a local coil-echo server, reached through a TCP connect
#             to the port the sshd listens on; SIGINT: exit 0
#   endpoint  coil-echo send through ssh:...:to= (direct-tcpip) and
#             ssh:...:exec=cat; coil-chat join through ssh:...:to=; bad
#             descriptions (exit 2, the bad part named); an unknown host key
#             (exit 1, the fingerprint and what to do)
#   reconnect a private sshd (same fixture script, own DIR): the sshd
#             process serving the tunnel's session is killed; the tunnel
#             says so, reconnects, asks for -R again and works again
#   bench     coil-bench smoke runs (1 s) through ssh:...:to= (echo c=10,
#             stream, connect: one channel per connection on one session)
#             and through coil-tunnel -L: RESULT lines without errors
# Tests wait for lines and ports, never fixed sleeps.
set -eu

part=$1
TUNNEL=$2
ECHO=$3
CHAT=$4
BENCH=${5:-}
PY=${PYTHON3:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
fixture=$here/../ssh/sshd-fixture.sh
T="timeout -k 2 30"

. "$here/testlib.sh"
testlib_setup tunnel

sshd_dir=${COIL_TEST_SSHD:-}
[ -n "$sshd_dir" ] && [ -f "$sshd_dir/env" ] ||
    fail "COIL_TEST_SSHD is not set or has no env file: run through ctest (the sshd fixture starts OpenSSH's sshd; install openssh-server)"

# load_env DIR: the fixture's KEY=VALUE lines as shell variables.
load_env() {
    while IFS='=' read -r k v; do
        case $k in
        [A-Z]*) eval "$k=\$v" ;;
        esac
    done <"$1/env"
}
load_env "$sshd_dir"
ssh_ep() {
    echo "ssh:$SSHD_HOST:$SSHD_PORT:user=$SSH_USER:identity=$SSH_KEY_ED25519:knownHosts=$SSH_KNOWN_HOSTS${1:-}"
}

# start_echo NAME: a coil-echo server on a free loopback port -> $port.
start_echo() {
    "$ECHO" serve tcp:0:interface=127.0.0.1 2>"$dir/$1.err" &
    pid=$!
    pids="$pids $pid"
    wait_for "$1 saying it serves" "$pid" grep -qs "serving .* on tcp:" "$dir/$1.err"
    port=$(sed -n 's/.*serving .* on tcp:\([0-9][0-9]*\).*/\1/p' "$dir/$1.err" | head -n1)
    [ -n "$port" ] || fail "$1 printed no TCP port"
}

# start_tunnel NAME ARGS...: coil-tunnel in the background -> $tpid; its
# stderr in NAME.err.
start_tunnel() {
    name=$1
    shift
    "$TUNNEL" "$@" 2>"$dir/$name.err" &
    tpid=$!
    pids="$pids $tpid"
}

# lines_ge FILE PATTERN N: FILE has at least N lines matching PATTERN.
lines_ge() {
    [ "$(grep -c -- "$2" "$1" 2>/dev/null || true)" -ge "$3" ]
}

# The port of the Nth "listening on" line of a tunnel's stderr.
listen_port() {
    sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\) -> .*/\1/p' "$1" | sed -n "$2p"
}

roundtrip() {
    out=$(printf 'x' | $T "$ECHO" send "$1" 2>"$dir/send.err") || fail "1 byte over $1: $(cat "$dir/send.err")"
    [ "$out" = x ] || fail "1 byte over $1 came back as '$out'"
}

sha() {
    sha256sum | cut -d' ' -f1
}

stop_tunnel() {
    kill -"$1" "$tpid"
    rc=0
    wait "$tpid" || rc=$?
    [ "$rc" -eq 0 ] || fail "coil-tunnel exited $rc after SIG$1: $(cat "$dir"/*.err)"
}

# ---- local --------------------------------------------------------------------

test_local() {
    start_echo echo1
    p1=$port
    start_echo echo2
    p2=$port
    start_tunnel tunnel -v -L "0:127.0.0.1:$p1" -L "127.0.0.1:0:127.0.0.1:$p2" "$(ssh_ep)"
    t1=$tpid
    wait_for "coil-tunnel listening twice" "$tpid" lines_ge "$dir/tunnel.err" "listening on" 2
    grep -q "listening on 127.0.0.1:[0-9]* -> 127.0.0.1:$p1 via ssh $SSH_USER@$SSHD_HOST:$SSHD_PORT" \
        "$dir/tunnel.err" || fail "no listening line for -L $p1: $(cat "$dir/tunnel.err")"
    l1=$(listen_port "$dir/tunnel.err" 1)
    l2=$(listen_port "$dir/tunnel.err" 2)
    roundtrip "tcp:127.0.0.1:$l1"
    roundtrip "tcp:127.0.0.1:$l2"
    # 1 MiB each way through both forwards at once, and four connections on
    # the first: eight channels on one session.
    head -c 1048576 /dev/urandom >"$dir/mib"
    want=$(sha <"$dir/mib")
    for i in 1 2 3 4; do
        $T "$ECHO" send "tcp:127.0.0.1:$l1" <"$dir/mib" >"$dir/out1.$i" 2>"$dir/send1.$i.err" &
        eval "a$i=\$!"
        $T "$ECHO" send "tcp:127.0.0.1:$l2" <"$dir/mib" >"$dir/out2.$i" 2>"$dir/send2.$i.err" &
        eval "b$i=\$!"
    done
    for i in 1 2 3 4; do
        eval "wait \$a$i" || fail "1 MiB through -L $l1 (client $i)"
        eval "wait \$b$i" || fail "1 MiB through -L $l2 (client $i)"
        [ "$(sha <"$dir/out1.$i")" = "$want" ] || fail "1 MiB through -L $l1 differs ($i)"
        [ "$(sha <"$dir/out2.$i")" = "$want" ] || fail "1 MiB through -L $l2 differs ($i)"
    done
    rm -f "$dir"/send*.err
    # -v: one line per connection (2 single bytes + 8 MiB transfers).
    wait_for "ten -v lines" "$tpid" lines_ge "$dir/tunnel.err" "bytes out" 10
    grep -q "#[0-9]* 127.0.0.1:[0-9]* -> 127.0.0.1:$p1: 1048576 bytes out, 1048576 bytes in" \
        "$dir/tunnel.err" || fail "no -v line for a 1 MiB connection: $(cat "$dir/tunnel.err")"
    # Flow control: a client that writes and never reads. The echo comes
    # back through the channel into the tunnel's queue towards the client;
    # past the marks the tunnel stops reading the channel, the window is
    # not re-granted, sshd stops, and in turn the tunnel stops reading the
    # client: the tunnel's memory stays bounded (a channel window, 2 MiB,
    # plus the queues) however much the client pushes.
    rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$t1/status"; }
    before=$(rss)
    $T "$PY" - "$l1" >"$dir/flood.out" 2>"$dir/flood.err" <<'EOF2' || fail "flood: $(cat "$dir/flood.err")"
import select, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.setblocking(False)
sent, chunk = 0, b"f" * 65536
deadline = time.time() + 10
while time.time() < deadline:
    if not select.select([], [s], [], 1.0)[1]:
        break
    try:
        sent += s.send(chunk)
    except BlockingIOError:
        pass
print(sent)
if sent > 256 * 1024 * 1024:
    sys.exit("the tunnel never pushed back (%d bytes taken)" % sent)
s.close()
EOF2
    after=$(rss)
    [ $((after - before)) -lt 16384 ] ||
        fail "the tunnel grew by $((after - before)) kB while a client flooded it ($(cat "$dir/flood.out") bytes sent)"
    rm -f "$dir/flood.err"
    roundtrip "tcp:127.0.0.1:$l1"

    # A destination the server cannot reach: the local connection is
    # closed, with the server's reason printed; the tunnel goes on.
    dead=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    start_tunnel tunnel2 -L "0:127.0.0.1:$dead" "$(ssh_ep)"
    t2=$tpid
    wait_for "the second tunnel listening" "$t2" grep -qs "listening on" "$dir/tunnel2.err"
    l3=$(listen_port "$dir/tunnel2.err" 1)
    rc=0
    printf 'x' | $T "$ECHO" send "tcp:127.0.0.1:$l3" >/dev/null 2>&1 || rc=$?
    [ "$rc" -ne 0 ] || fail "a refused direct-tcpip destination looked like success"
    wait_for "the refusal printed" "$t2" grep -qs -- "-> 127.0.0.1:$dead: " "$dir/tunnel2.err"
    kill -TERM "$t2"
    wait "$t2" || fail "second tunnel: exit $? after SIGTERM"
    roundtrip "tcp:127.0.0.1:$l1"
    tpid=$t1
    stop_tunnel TERM

    # No SSH server at all: the tunnel retries with back-off; a local
    # connection waits --wait seconds, then is closed with the reason.
    noport=$(free_port)
    lp=$(free_port)
    start_tunnel tunnel3 -w 0.5 -L "$lp:127.0.0.1:$p1" \
        "ssh:127.0.0.1:$noport:user=$SSH_USER:identity=$SSH_KEY_ED25519:knownHosts=$SSH_KNOWN_HOSTS"
    wait_for "a retry line" "$tpid" grep -qs "reconnecting to .* in" "$dir/tunnel3.err"
    wait_for "the -L port accepting" "$tpid" "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()' "$lp"
    rc=0
    printf 'x' | $T "$ECHO" send "tcp:127.0.0.1:$lp" >/dev/null 2>&1 || rc=$?
    [ "$rc" -ne 0 ] || fail "a connection without an SSH session looked like success"
    wait_for "the wait bound said" "$tpid" grep -qs "did not come up within 0.5 s" "$dir/tunnel3.err"
    stop_tunnel INT
    rm -f "$dir/tunnel3.err"
}

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- remote -------------------------------------------------------------------

test_remote() {
    start_echo echo
    ep=$port
    start_tunnel tunnel -v -R "0:127.0.0.1:$ep" "$(ssh_ep)"
    wait_for "coil-tunnel forwarding from the server" "$tpid" grep -qs "forwarding localhost:[0-9]* at the server" "$dir/tunnel.err"
    rp=$(sed -n 's/.*forwarding localhost:\([0-9][0-9]*\) at the server.*/\1/p' "$dir/tunnel.err" | head -n1)
    [ -n "$rp" ] && [ "$rp" -gt 0 ] || fail "no server port in: $(cat "$dir/tunnel.err")"
    # The sshd listens on $rp (this machine is the server too).
    roundtrip "tcp:127.0.0.1:$rp"
    head -c 1048576 /dev/urandom >"$dir/mib"
    $T "$ECHO" send "tcp:127.0.0.1:$rp" <"$dir/mib" >"$dir/mib.out" 2>"$dir/send.err" ||
        fail "1 MiB through -R: $(cat "$dir/send.err")"
    [ "$(sha <"$dir/mib.out")" = "$(sha <"$dir/mib")" ] || fail "1 MiB through -R differs"
    rm -f "$dir/send.err"
    wait_for "-v lines for -R" "$tpid" lines_ge "$dir/tunnel.err" "<- 127.0.0.1:$ep" 2
    stop_tunnel INT
}

# ---- endpoint -----------------------------------------------------------------

expect_rc() {
    want=$1
    pattern=$2
    shift 2
    rc=0
    $T "$@" >"$dir/out" 2>"$dir/cmd.err" || rc=$?
    [ "$rc" -eq "$want" ] || fail "'$*' exited $rc, want $want: $(cat "$dir/cmd.err")"
    grep -Eq -- "$pattern" "$dir/cmd.err" ||
        fail "'$*': stderr does not match '$pattern': $(cat "$dir/cmd.err")"
    rm -f "$dir/cmd.err"
}

test_endpoint() {
    start_echo echo
    ep=$port
    to=$(ssh_ep ":to=127.0.0.1\\:$ep")
    roundtrip "$to"
    head -c 1048576 /dev/urandom >"$dir/mib"
    $T "$ECHO" send "$to" <"$dir/mib" >"$dir/mib.out" 2>"$dir/send.err" ||
        fail "1 MiB through $to: $(cat "$dir/send.err")"
    [ "$(sha <"$dir/mib.out")" = "$(sha <"$dir/mib")" ] || fail "1 MiB through ssh:...:to= differs"
    # exec=cat is an echo server too; the command with a ':' escaped.
    roundtrip "$(ssh_ep ":exec=cat")"
    out=$(: | $T "$ECHO" send "$(ssh_ep ":exec=echo a\\:b >&2; cat")" 2>"$dir/send.err") ||
        fail "exec with a colon: $(cat "$dir/send.err")"
    rm -f "$dir/send.err"

    # coil-chat join through the SSH server; a Python member watches.
    "$CHAT" serve tcp:0:interface=127.0.0.1 2>"$dir/chat.err" &
    cpid=$!
    pids="$pids $cpid"
    wait_for "coil-chat serving" "$cpid" grep -qs "serving .* on tcp:" "$dir/chat.err"
    cp=$(sed -n 's/.*serving .* on tcp:\([0-9][0-9]*\).*/\1/p' "$dir/chat.err" | head -n1)
    "$PY" - "$cp" "$dir/watch.ready" >"$dir/watch.out" 2>"$dir/watch.err" <<'EOF' &
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
buf = b""
def expect(want):
    global buf
    while want not in buf:
        d = s.recv(4096)
        if not d:
            sys.exit("chat closed; have %r" % buf)
        buf += d
    buf = buf[buf.index(want) + len(want):]
expect(b"What is your name?")
s.sendall(b"watcher\r\n")
expect(b"Welcome, watcher!")
open(sys.argv[2], "w").close()
expect(b"dave has joined the channel.")
expect(b"<dave> hello through ssh")
open(sys.argv[2] + ".got", "w").close()
expect(b"dave has left the channel.")
print("ok")
EOF
    wpid=$!
    pids="$pids $wpid"
    wait_for "the chat watcher" "$wpid" test -f "$dir/watch.ready"
    # stdin stays open until the watcher has the line (join leaves at EOF).
    out=$({
        printf 'hello through ssh\n'
        i=0
        until [ -f "$dir/watch.ready.got" ] || [ $i -ge 600 ]; do
            i=$((i + 1))
            sleep 0.05
        done
    } | $T "$CHAT" join "$(ssh_ep ":to=127.0.0.1\\:$cp")" --name dave 2>"$dir/join.err") ||
        fail "coil-chat join through ssh: $(cat "$dir/join.err")"
    echo "$out" | grep -q "Welcome, dave!" || fail "coil-chat join through ssh printed: $out"
    wait "$wpid" || fail "the chat watcher: $(cat "$dir/watch.err")"
    rm -f "$dir/join.err" "$dir/watch.err"

    # Bad descriptions: exit 2, the bad part named, the usage shown.
    base="ssh:$SSHD_HOST:$SSHD_PORT:user=$SSH_USER"
    expect_rc 2 "the channel is missing.*use ssh:HOST" "$ECHO" send "$base"
    expect_rc 2 "to='127.0.0.1' is not DESTHOST:DESTPORT" "$ECHO" send "$base:to=127.0.0.1"
    expect_rc 2 "unexpected argument '7000'" "$ECHO" send "$base:to=127.0.0.1:7000"
    expect_rc 2 "hostKeys='maybe' is not strict, accept-new or insecure-accept-any" \
        "$ECHO" send "$base:hostKeys=maybe:exec=cat"
    expect_rc 2 "password= takes env:VAR" "$ECHO" send "$base:password=hunter2:exec=cat"
    expect_rc 2 "identity file '$dir/none' cannot be read" "$ECHO" send "$base:identity=$dir/none:exec=cat"
    expect_rc 2 "user= belongs to a client description" "$CHAT" serve "$base:exec=cat"
    # An unknown host key: refused, with the fingerprint and what to do.
    : >"$dir/empty_known_hosts"
    expect_rc 1 "not in $dir/empty_known_hosts.*SHA256:.*ssh-keyscan" \
        sh -c "printf x | '$ECHO' send 'ssh:$SSHD_HOST:$SSHD_PORT:user=$SSH_USER:identity=$SSH_KEY_ED25519:knownHosts=$dir/empty_known_hosts:exec=cat'"
    # coil-tunnel: a host key it cannot trust ends it (exit 1), no retries.
    expect_rc 1 "cannot connect to $SSH_USER@$SSHD_HOST:$SSHD_PORT: host key for .* is not in $dir/empty_known_hosts" \
        "$TUNNEL" -L 0:127.0.0.1:1 "ssh:$SSHD_HOST:$SSHD_PORT:user=$SSH_USER:identity=$SSH_KEY_ED25519:knownHosts=$dir/empty_known_hosts"
    # coil-tunnel: bad arguments.
    expect_rc 2 "bad -L '99999:x:1'" "$TUNNEL" -L 99999:x:1 "$base"
    expect_rc 2 "nothing to forward" "$TUNNEL" "$base"
    expect_rc 2 "to= does not belong here" "$TUNNEL" -L 0:127.0.0.1:1 "$base:to=a\\:1"
    "$TUNNEL" --help | grep -q "coil-tunnel \[-v\]" || fail "coil-tunnel --help"
}

# ---- reconnect ----------------------------------------------------------------

test_reconnect() {
    # A private sshd: killing the process that serves our session must not
    # touch other tests' sessions on the shared one.
    own=$dir/sshd
    sh "$fixture" start "$own" >"$dir/fixture.out" 2>&1 || fail "private sshd: $(cat "$dir/fixture.out")"
    trap 'sh "$fixture" stop "$own" >/dev/null 2>&1 || true; testlib_cleanup' EXIT
    load_env "$own"
    start_echo echo
    ep=$port
    start_tunnel tunnel -v -L "0:127.0.0.1:$ep" -R "0:127.0.0.1:$ep" "$(ssh_ep ":keepalive=5")"
    wait_for "coil-tunnel listening" "$tpid" grep -qs "listening on" "$dir/tunnel.err"
    wait_for "coil-tunnel forwarding" "$tpid" grep -qs "forwarding localhost" "$dir/tunnel.err"
    l1=$(listen_port "$dir/tunnel.err" 1)
    roundtrip "tcp:127.0.0.1:$l1"
    # The sshd processes of our one session: the children of the listener.
    kids=$(pgrep -P "$SSHD_PID" || true)
    [ -n "$kids" ] || fail "no sshd child serves the tunnel's session"
    for k in $kids; do
        kill -KILL "$k"
    done
    wait_for "the tunnel noticing the loss" "$tpid" grep -qs "lost the session to" "$dir/tunnel.err"
    # A local connection while the session is down waits for the next one.
    roundtrip "tcp:127.0.0.1:$l1"
    wait_for "the session coming back" "$tpid" lines_ge "$dir/tunnel.err" "session to .* up" 2
    wait_for "-R asked for again" "$tpid" lines_ge "$dir/tunnel.err" "forwarding localhost" 2
    roundtrip "tcp:127.0.0.1:$l1"
    rp=$(sed -n 's/.*forwarding localhost:\([0-9][0-9]*\) at the server.*/\1/p' "$dir/tunnel.err" | tail -n1)
    roundtrip "tcp:127.0.0.1:$rp"
    grep -q "reconnecting to .* in [0-9.]* s" "$dir/tunnel.err" || fail "no back-off line"
    stop_tunnel TERM
}

# ---- bench --------------------------------------------------------------------

bench_ok() { # WHAT ARGS...: coil-bench ARGS ran, RESULT with errors=0
    what=$1
    shift
    $T "$BENCH" "$@" -d 1 -w 0.2 -q >"$dir/bench.out" 2>"$dir/bench.err" ||
        fail "coil-bench $what: $(cat "$dir/bench.err" "$dir/bench.out")"
    grep -q "^RESULT .*errors=0" "$dir/bench.out" || fail "coil-bench $what: $(cat "$dir/bench.out")"
    rm -f "$dir/bench.err"
}

test_bench() {
    [ -n "$BENCH" ] || fail "bench: the coil-bench path is missing"
    start_echo echo
    ep=$port
    to=$(ssh_ep ":to=127.0.0.1\\:$ep")
    bench_ok "echo through ssh:" echo "$to" -c 10 -s 64
    bench_ok "stream through ssh:" stream "$to" -c 1 -s 64k
    bench_ok "connect through ssh:" connect "$to" -c 4
    start_tunnel tunnel -L "0:127.0.0.1:$ep" "$(ssh_ep)"
    wait_for "coil-tunnel listening" "$tpid" grep -qs "listening on" "$dir/tunnel.err"
    l1=$(listen_port "$dir/tunnel.err" 1)
    bench_ok "echo through coil-tunnel" echo "tcp:127.0.0.1:$l1" -c 10 -s 64 --cpu-pid "$tpid"
    bench_ok "stream through coil-tunnel" stream "tcp:127.0.0.1:$l1" -c 1 -s 64k --cpu-pid "$tpid"
    stop_tunnel TERM
}

case $part in
bench) test_bench ;;
local) test_local ;;
remote) test_remote ;;
endpoint) test_endpoint ;;
reconnect) test_reconnect ;;
*)
    echo "usage: run_tunnel.sh local|remote|endpoint|reconnect|bench TUNNEL ECHO CHAT [BENCH]" >&2
    exit 2
    ;;
esac
echo "ok: $part"
