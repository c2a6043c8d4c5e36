#!/bin/sh
# Runs coil-echo and coil-chat for real over TCP on loopback and UNIX sockets.
#
# Usage: run_tools.sh echo|chat|hostile|args COIL_ECHO COIL_CHAT
#   echo  coil-echo serve on TCP + UNIX; coil-echo send with 1 byte, 16 MiB
#         of random bytes (file and pipe), empty stdin; a refused connection;
#         a connection lost before the echo came back; clean stop on SIGTERM
#   chat  coil-chat serve on TCP + UNIX, driven by python3 clients and by
#         coil-chat join: the whole conversation of the seed book's example
#         2-5, asserted line by line
#   hostile  coil-chat serve against hostile clients (chat_hostile.py): a
#         stalled reader while another floods, control bytes in lines, bad
#         names, the name timeout, the caps on connections without a name;
#         coil-chat join against a server that sends control bytes
#   args  bad arguments (exit 2 with a message), --help (exit 0), a port in
#         use (exit 1)
# Every server is killed on exit; each part finishes in a few seconds.
set -eu

part=$1
ECHO=$2
CHAT=$3
PY=${PYTHON3:-python3}
here=$(cd "$(dirname "$0")" && pwd)
# Every client command is bounded: a hang fails the test, it does not stall it.
T="timeout -k 2 20"

. "$here/testlib.sh"
testlib_setup tools

# start_server NAME CMD...: run CMD in the background (stderr to NAME.err)
# and wait until it says it serves on a UNIX socket (its last endpoint).
start_server() {
    name=$1
    shift
    "$@" 2>"$dir/$name.err" &
    server_pid=$!
    pids="$pids $server_pid"
    wait_for "$name saying it serves" "$server_pid" grep -q "serving .* on unix:" "$dir/$name.err"
    port=$(sed -n 's/.*serving .* on tcp:\([0-9][0-9]*\).*/\1/p' "$dir/$name.err" | head -n1)
    [ -n "$port" ] || fail "$name printed no TCP port"
}

# stop_server: SIGTERM; it must exit 0 (under ASan: without leaks).
stop_server() {
    kill -TERM "$server_pid"
    rc=0
    wait "$server_pid" || rc=$?
    [ "$rc" -eq 0 ] || fail "server exited $rc after SIGTERM"
}

# expect_rc WANT PATTERN CMD...: CMD exits WANT and its stderr matches
# PATTERN (grep -E; empty: anything).
expect_rc() {
    want=$1
    pattern=$2
    shift 2
    rc=0
    $T "$@" >"$dir/out" 2>"$dir/cmd.err" || rc=$?
    [ "$rc" -eq "$want" ] || fail "'$*' exited $rc, want $want: $(cat "$dir/cmd.err")"
    if [ -n "$pattern" ] && ! grep -Eq -- "$pattern" "$dir/cmd.err"; then
        fail "'$*': stderr does not match '$pattern': $(cat "$dir/cmd.err")"
    fi
    return 0
}

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

sha() {
    sha256sum | cut -d' ' -f1
}

# ---- echo -------------------------------------------------------------------

test_echo() {
    # TLS too, with the certificates of the tls_certs fixture.
    certs=${COIL_TEST_CERTS:?COIL_TEST_CERTS is not set (the tls_certs ctest fixture sets it)}
    start_server echo "$ECHO" serve tcp:0:interface=127.0.0.1 \
        "ssl:0:interface=127.0.0.1:privateKey=$certs/server.key:certKey=$certs/server-chain.pem" \
        "unix:$dir/echo.sock"
    tcp=tcp:127.0.0.1:$port
    unix=unix:$dir/echo.sock
    tls_port=$(sed -n 's/.*serving .* on ssl:\([0-9][0-9]*\).*/\1/p' "$dir/echo.err" | head -n1)
    [ -n "$tls_port" ] || fail "coil-echo printed no TLS port"
    tls=tls:127.0.0.1:$tls_port:caCerts=$certs/ca.pem

    # TLS: verification is on; the wrong trust store is refused, clearly.
    expect_rc 1 "certificate verify failed" \
        sh -c "printf 'x' | '$ECHO' send tls:127.0.0.1:$tls_port:caCerts=$certs/other.pem"
    expect_rc 1 "hostname mismatch.*expected host other.test" \
        sh -c "printf 'x' | '$ECHO' send tls:127.0.0.1:$tls_port:caCerts=$certs/ca.pem:sni=other.test"
    # And openssl s_client talks to it. Its stdin stays open until the echo
    # is back (at stdin EOF it quits), bounded by 30 s.
    : >"$dir/s_client.out"
    {
        printf 'ping\n'
        i=0
        until grep -q ping "$dir/s_client.out" || [ $i -ge 600 ]; do
            i=$((i + 1))
            sleep 0.05
        done
    } | $T openssl s_client -connect "127.0.0.1:$tls_port" \
        -CAfile "$certs/ca.pem" -verify_hostname localhost -verify_return_error -quiet -no_ign_eof \
        >"$dir/s_client.out" 2>/dev/null || true
    out=$(head -c 5 "$dir/s_client.out")
    [ "$out" = "ping" ] || fail "openssl s_client got '$out' from the TLS echo"

    for ep in "$tcp" "$unix" "$tls"; do
        # One byte.
        out=$(printf 'x' | $T "$ECHO" send "$ep") || fail "1 byte over $ep"
        [ "$out" = x ] || fail "1 byte over $ep came back as '$out'"
        # Empty stdin, from a pipe and from /dev/null.
        n=$(: | $T "$ECHO" send "$ep" | wc -c) || fail "empty pipe over $ep"
        [ "$n" -eq 0 ] || fail "empty stdin over $ep echoed $n bytes"
        n=$($T "$ECHO" send "$ep" </dev/null | wc -c) || fail "/dev/null over $ep"
        [ "$n" -eq 0 ] || fail "/dev/null over $ep echoed $n bytes"
    done

    # 16 MiB of random bytes: as a regular file (read from a timer) and
    # through a pipe (watched), binary-safe, hashed.
    head -c 16777216 /dev/urandom >"$dir/big"
    want=$(sha <"$dir/big")
    $T "$ECHO" send "$tcp" <"$dir/big" >"$dir/big.tcp" 2>"$dir/send.err" ||
        fail "16 MiB file over TCP"
    [ "$(sha <"$dir/big.tcp")" = "$want" ] || fail "16 MiB over TCP differs"
    cat "$dir/big" | $T "$ECHO" send "$unix" >"$dir/big.unix" 2>"$dir/send.err" ||
        fail "16 MiB pipe over UNIX"
    [ "$(sha <"$dir/big.unix")" = "$want" ] || fail "16 MiB over UNIX differs"
    $T "$ECHO" send "$tls" <"$dir/big" >"$dir/big.tls" 2>"$dir/send.err" ||
        fail "16 MiB file over TLS"
    [ "$(sha <"$dir/big.tls")" = "$want" ] || fail "16 MiB over TLS differs"
    rm -f "$dir/big.tcp" "$dir/big.unix" "$dir/big.tls"

    # Several clients at once.
    for i in 1 2 3 4; do
        head -c 1000000 "$dir/big" | $T "$ECHO" send "$tcp" >"$dir/par$i" 2>"$dir/par$i.err" &
        eval "par$i=\$!"
    done
    for i in 1 2 3 4; do
        eval "wait \$par$i" || fail "parallel client $i"
        [ "$(sha <"$dir/par$i")" = "$(head -c 1000000 "$dir/big" | sha)" ] ||
            fail "parallel client $i got a wrong echo"
    done

    # A client that writes and never reads: the server must stop reading
    # (backpressure) and still serve others; then it goes away.
    $T "$PY" - "$port" <<'EOF' || fail "backpressure check"
import select, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.setblocking(False)
sent, chunk = 0, b"z" * 65536
deadline = time.time() + 10
# Send until the socket has not been writable for a second: the buffers are
# full on both sides (a slow machine can only end this early, with little
# sent, which passes; a server that never pushes back is caught below).
while time.time() < deadline:
    if not select.select([], [s], [], 1.0)[1]:
        break
    try:
        sent += s.send(chunk)
    except BlockingIOError:
        pass
# Socket buffers fill up on both sides and the sender is blocked: a server
# that kept reading would have taken everything (hundreds of MiB).
if sent > 256 * 1024 * 1024:
    sys.exit("server never pushed back (%d bytes taken)" % sent)
s2 = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s2.sendall(b"still here")
if s2.recv(100) != b"still here":
    sys.exit("server stuck while one client is paused")
s2.close()
s.close()
EOF

    # Refused: a free port; a missing socket file.
    cport=$(free_port)
    expect_rc 1 "tcp:127.0.0.1:$cport.*(refused|Connection)" \
        sh -c "printf 'x' | '$ECHO' send tcp:127.0.0.1:$cport"
    expect_rc 1 "unix:$dir/nothing.sock" \
        sh -c "printf 'x' | '$ECHO' send unix:$dir/nothing.sock"

    # A peer that takes some bytes and hangs up before echoing them all.
    "$PY" - "$dir/half.sock" <<'EOF' &
import socket, sys
l = socket.socket(socket.AF_UNIX)
l.bind(sys.argv[1]); l.listen(1)
c, _ = l.accept()
c.settimeout(5)
c.sendall(c.recv(10))
c.close()
EOF
    pids="$pids $!"
    wait_for "the fake server's socket" "$!" test -S "$dir/half.sock"
    expect_rc 1 "lost" sh -c "head -c 100000 '$dir/big' | '$ECHO' send unix:$dir/half.sock"

    stop_server
    [ ! -e "$dir/echo.sock" ] || fail "the UNIX socket file was left behind"
}

# ---- chat -------------------------------------------------------------------

test_chat() {
    start_server chat "$CHAT" serve tcp:0:interface=127.0.0.1 "unix:$dir/chat.sock"
    $T "$PY" - "$CHAT" "$port" "$dir/chat.sock" <<'EOF' || fail "chat conversation"
import os, select, socket, struct, subprocess, sys, time

CHAT, PORT, SOCK = sys.argv[1], int(sys.argv[2]), sys.argv[3]
TIMEOUT = 5.0

class Client:
    def __init__(self, who, unix=False):
        self.who = who
        if unix:
            self.s = socket.socket(socket.AF_UNIX)
            self.s.settimeout(TIMEOUT)
            self.s.connect(SOCK)
        else:
            self.s = socket.create_connection(("127.0.0.1", PORT), timeout=TIMEOUT)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def line(self):
        """The next line, which must end with \\r\\n."""
        while b"\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise AssertionError("%s: connection closed; have %r" % (self.who, self.buf))
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        if not line.endswith(b"\r"):
            raise AssertionError("%s: line %r does not end with \\r\\n" % (self.who, line))
        return line[:-1]

    def expect(self, want):
        got = self.line()
        if got != want:
            raise AssertionError("%s: got %r, want %r" % (self.who, got[:200], want[:200]))

    def expect_nothing(self, wait=0.3):
        self.s.settimeout(wait)
        try:
            d = self.s.recv(65536)
            if d or self.buf:
                raise AssertionError("%s: unexpected %r" % (self.who, self.buf + d))
            raise AssertionError("%s: unexpected close" % self.who)
        except socket.timeout:
            pass
        finally:
            self.s.settimeout(TIMEOUT)

    def expect_close(self):
        d = self.s.recv(65536)
        if d:
            raise AssertionError("%s: expected the close, got %r" % (self.who, d))

    def register(self, name, *others):
        self.expect(b"What is your name?")
        self.send(name + b"\r\n")
        self.expect(b"Welcome, " + name + b"!")
        for o in others:
            o.expect(name + b" has joined the channel.")

    def close(self):
        self.s.close()

# Example 2-5: alice on TCP, bob on UNIX.
alice = Client("alice")
alice.register(b"alice")
bob = Client("bob", unix=True)
bob.register(b"bob", alice)
alice.send(b"hi\r\n")
bob.expect(b"<alice> hi")
alice.expect_nothing()                      # not back to the sender
bob.send(b"hello alice\r\n")                # UNIX -> TCP
alice.expect(b"<bob> hello alice")
bob.expect_nothing(0.1)

# A name in use, then a free one; LF-only lines are accepted.
carol = Client("carol")
carol.expect(b"What is your name?")
carol.send(b"alice\n")
carol.expect(b"Name taken, please choose another.")
carol.send(b"carol\n")
carol.expect(b"Welcome, carol!")
alice.expect(b"carol has joined the channel.")
bob.expect(b"carol has joined the channel.")
# The pauses are what is tested (one line in three reads, most likely);
# nothing depends on how long they are.
carol.send(b"lf only\nsplit ")
time.sleep(0.1)
carol.send(b"line\r")
time.sleep(0.1)
carol.send(b"\n")
for c in (alice, bob):
    c.expect(b"<carol> lf only")
    c.expect(b"<carol> split line")
carol.expect_nothing(0.1)

# Several lines in one segment arrive in order.
alice.send(b"one\r\ntwo\nthree\r\n")
for c in (bob, carol):
    c.expect(b"<alice> one")
    c.expect(b"<alice> two")
    c.expect(b"<alice> three")

# 16 KiB is the limit: a line of exactly 16384 bytes goes through ...
big = b"x" * 16384
bob.send(big + b"\r\n")
alice.expect(b"<bob> " + big)
carol.expect(b"<bob> " + big)

# ... one byte more disconnects its sender with a message; others go on.
mallory = Client("mallory")
mallory.register(b"mallory", alice, bob, carol)
mallory.send(b"y" * 16385 + b"\r\n")
got = mallory.line()
if not got.startswith(b"Line too long") or b"16384" not in got:
    raise AssertionError("mallory: got %r" % got)
mallory.s.settimeout(TIMEOUT)
mallory.expect_close()
for c in (alice, bob, carol):
    c.expect(b"mallory has left the channel.")
alice.send(b"still on\r\n")
bob.expect(b"<alice> still on")
carol.expect(b"<alice> still on")

# An unregistered client leaving is not announced.
ghost = Client("ghost", unix=True)
ghost.expect(b"What is your name?")
ghost.close()
alice.expect_nothing(0.2)

# A user leaving; the name is free again.
bob.close()
alice.expect(b"bob has left the channel.")
carol.expect(b"bob has left the channel.")
bob = Client("bob2", unix=True)
bob.register(b"bob", alice, carol)

# coil-chat join: on UNIX, with alice on TCP.
p = subprocess.Popen([CHAT, "join", "unix:" + SOCK, "--name", "dave"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
join_buf = b""
def join_line():
    """The join client's next stdout line (read unbuffered, with a timeout)."""
    global join_buf
    deadline = time.time() + TIMEOUT
    while b"\n" not in join_buf:
        r, _, _ = select.select([p.stdout], [], [], max(0, deadline - time.time()))
        if not r:
            p.kill()
            raise AssertionError("join: no line; have %r; stderr %r"
                                 % (join_buf, p.stderr.read()))
        d = os.read(p.stdout.fileno(), 65536)
        if not d:
            raise AssertionError("join: stdout closed; have %r" % join_buf)
        join_buf += d
    line, join_buf = join_buf.split(b"\n", 1)
    return line + b"\n"
for want in (b"What is your name?\n", b"Welcome, dave!\n"):
    got = join_line()
    if got != want:
        raise AssertionError("join: got %r, want %r" % (got, want))
for c in (alice, bob, carol):
    c.expect(b"dave has joined the channel.")
p.stdin.write(b"hey there\n")
p.stdin.flush()
for c in (alice, bob, carol):
    c.expect(b"<dave> hey there")
alice.send(b"hi dave\r\n")
got = join_line()
if got != b"<alice> hi dave\n":
    raise AssertionError("join: got %r" % got)
for c in (bob, carol):
    c.expect(b"<alice> hi dave")
p.stdin.close()                             # EOF: leave, exit 0
if p.wait(TIMEOUT) != 0 or join_buf or p.stdout.read():
    raise AssertionError("join exited %d: %r" % (p.returncode, p.stderr.read()))
for c in (alice, bob, carol):
    c.expect(b"dave has left the channel.")

# Clients leaving while a broadcast is under way: resets in the middle of
# a stream of lines (ASan catches use after free).
crowd = []
for i in range(8):
    c = Client("crowd%d" % i, unix=bool(i % 2))
    c.expect(b"What is your name?")
    c.send(b"crowd%d\r\n" % i)
    c.expect(b"Welcome, crowd%d!" % i)
    crowd.append(c)
alice.send(b"".join(b"flood %d\r\n" % i for i in range(2000)))
for c in crowd:
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
# Everyone else still gets everything, in order, and then the leave notices.
for c in (bob, carol):
    seen = 0
    while seen < 2000:
        l = c.line()
        if l.startswith(b"crowd"):
            continue
        if l != b"<alice> flood %d" % seen:
            raise AssertionError("%s: got %r at %d" % (c.who, l, seen))
        seen += 1
alice.send(b"after\r\n")
for c in (bob, carol):
    while True:
        l = c.line()
        if l == b"<alice> after":
            break
        if not (l.startswith(b"crowd") and l.endswith(b"the channel.")):
            raise AssertionError("%s: got %r" % (c.who, l))

for c in (alice, bob, carol):
    c.close()
print("conversation ok")
EOF
    # A client still connected when the server stops: it says when it is
    # registered, the server is stopped then, and it must see the close.
    "$PY" - "$port" >"$dir/lingerer.out" <<'EOF' &
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
buf = b""
while b"Welcome" not in buf:
    if b"?" in buf:
        s.sendall(b"zoe\r\n")
        buf = b""
    d = s.recv(100)
    if not d:
        sys.exit("closed before the welcome")
    buf += d
print("registered", flush=True)
while True:
    d = s.recv(100)
    if not d:
        break
EOF
    lingerer=$!
    pids="$pids $lingerer"
    wait_for "the lingering client registering" "$lingerer" grep -q registered "$dir/lingerer.out"
    stop_server
    wait "$lingerer" || fail "a client still connected at shutdown did not see the close"
    [ ! -e "$dir/chat.sock" ] || fail "the UNIX socket file was left behind"

    # join: nothing to connect to.
    expect_rc 1 "unix:$dir/none.sock" sh -c "'$CHAT' join unix:$dir/none.sock --name x </dev/null"
}

# ---- hostile clients against coil-chat -------------------------------------------

# hostile CASE [SOCK]: run chat_hostile.py CASE against the running server.
hostile() {
    $T "$PY" "$here/chat_hostile.py" "$1" "$CHAT" "${port:-0}" "${2:-$dir/none}" \
        "${server_pid:-0}" || fail "hostile clients: $1"
}

test_hostile() {
    # A small ASan quarantine (no effect without ASan): freed buffers are
    # not memory the server holds, and the RSS bound is what is tested.
    start_server hostile env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4" \
        "$CHAT" serve --max-queue 1M tcp:0:interface=127.0.0.1 "unix:$dir/h.sock"
    hostile stall
    hostile inject
    hostile names
    stop_server
    start_server timeout "$CHAT" serve --name-timeout 3 tcp:0:interface=127.0.0.1 \
        "unix:$dir/t.sock"
    hostile timeout
    stop_server
    start_server caps "$CHAT" serve --max-unregistered 4 --max-unregistered-per-address 2 \
        tcp:0:interface=127.0.0.1 "unix:$dir/c.sock"
    hostile caps "$dir/c.sock"
    stop_server
    port=0 server_pid=0
    hostile join "$dir/fake.sock"

    expect_rc 2 "--max-queue needs a positive size" "$CHAT" serve --max-queue 0 tcp:0
    expect_rc 2 "--max-queue needs a positive size" "$CHAT" serve --max-queue 1X tcp:0
    expect_rc 2 "--name-timeout needs a positive" "$CHAT" serve --name-timeout -1 tcp:0
    expect_rc 2 "--max-unregistered needs a positive" "$CHAT" serve --max-unregistered x tcp:0
    expect_rc 2 "are for serve" "$CHAT" join tcp:127.0.0.1:1 -n bob --max-queue 1M
}

# ---- arguments ----------------------------------------------------------------

test_args() {
    expect_rc 0 "" "$ECHO" --help
    grep -q "Usage: coil-echo serve" "$dir/out" || fail "coil-echo --help prints no usage"
    expect_rc 0 "" "$ECHO" serve --help
    expect_rc 0 "" "$CHAT" --help
    grep -q "Usage: coil-chat serve" "$dir/out" || fail "coil-chat --help prints no usage"
    expect_rc 0 "" "$CHAT" join -h

    expect_rc 2 "missing command" "$ECHO"
    expect_rc 2 "unknown command 'frobnicate'" "$ECHO" frobnicate
    expect_rc 2 "unknown option '--bogus'" "$ECHO" serve --bogus tcp:0
    expect_rc 2 "serve: missing ENDPOINT" "$ECHO" serve
    expect_rc 2 "send: missing ENDPOINT" "$ECHO" send
    expect_rc 2 "unexpected 'tcp:127.0.0.1:2'" "$ECHO" send tcp:127.0.0.1:1 tcp:127.0.0.1:2
    expect_rc 2 "^coil-echo: bad server endpoint 'tcp:80x'" "$ECHO" serve tcp:80x
    expect_rc 2 "bad server endpoint 'bogus:1'" "$ECHO" serve tcp:0 bogus:1
    expect_rc 2 "^coil-echo: bad client endpoint 'tcp:127.0.0.1'" "$ECHO" send tcp:127.0.0.1
    expect_rc 2 "bad client endpoint 'tcp:127.0.0.1:99999'" "$ECHO" send tcp:127.0.0.1:99999

    expect_rc 2 "missing command" "$CHAT"
    expect_rc 2 "unknown command 'talk'" "$CHAT" talk
    expect_rc 2 "missing --name" "$CHAT" join tcp:127.0.0.1:1
    expect_rc 2 "'--name' needs a value" "$CHAT" join tcp:127.0.0.1:1 --name
    expect_rc 2 "non-empty" "$CHAT" join tcp:127.0.0.1:1 --name=
    expect_rc 2 "join: missing ENDPOINT" "$CHAT" join --name bob
    expect_rc 2 "^coil-chat: bad server endpoint 'tcp:80x'" "$CHAT" serve tcp:80x
    expect_rc 2 "^coil-chat: bad client endpoint 'unix:'" "$CHAT" join unix: -n bob

    # A port in use: the arguments are right, listening fails: exit 1.
    start_server echo "$ECHO" serve tcp:0:interface=127.0.0.1 "unix:$dir/a.sock"
    expect_rc 1 "tcp:$port:interface=127.0.0.1.*(in use|Address)" \
        "$ECHO" serve "tcp:$port:interface=127.0.0.1"
    expect_rc 1 "in use|Address" "$CHAT" serve "tcp:$port:interface=127.0.0.1"
    stop_server
}

case $part in
echo) test_echo ;;
chat) test_chat ;;
hostile) test_hostile ;;
args) test_args ;;
*)
    echo "usage: $0 echo|chat|hostile|args COIL_ECHO COIL_CHAT" >&2
    exit 2
    ;;
esac
echo "tools $part: ok"
