#!/bin/sh
# Runs the seed book's chapter-2 examples (examples/*.c) for real on
# loopback and checks what they print and send, byte for byte.
#
# Usage: run_examples.sh echo  ECHO_SERVER ECHO_CLIENT
#        run_examples.sh quote QUOTE_SERVER QUOTE_CLIENT
#        run_examples.sh chat  CHAT_SERVER
#   echo   echo_client's exact output; python3 clients: text, binary and
#          1 MiB echoed intact, two clients at once; a refused connection;
#          SIGTERM with a client still connected
#   quote  a python3 session where every count and quote is known; then
#          quote_client's three connections, checked against the server's
#          log (each connection gets the quote before it); a refused connect
#   chat   the conversation of example 2-5 with python3 clients: name prompt,
#          a taken name, join / "<name> line" / leave broadcasts, nothing
#          for unregistered clients, a freed name taken again
# Every server must exit 0 on SIGTERM (under ASan: with no leaks). Servers
# are killed on exit; each part takes a second or two.
set -eu

part=$1
SERVER=$2
CLIENT=${3:-}
PY=${PYTHON3:-python3}
T="timeout -k 2 15" # a hung client fails the test instead of stalling it

dir=$(mktemp -d "${TMPDIR:-/tmp}/coil-examples.XXXXXX")
server_pid=""
cleanup() {
    [ -z "$server_pid" ] || kill -KILL "$server_pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
    echo "FAIL ($part): $*" >&2
    for f in "$dir"/*.out "$dir"/*.err; do
        [ -s "$f" ] || continue
        echo "--- $f:" >&2
        cat "$f" >&2
    done
    exit 1
}

# A port nobody listens on right now.
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# listening PORT: true when some socket listens on PORT (IPv4 or IPv6).
listening() {
    hex=$(printf ':%04X' "$1")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
        awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }'
}

# start_server: run $SERVER --port PORT with stdout in server.out and wait
# until it listens (no probe connection: it would count as a client), an
# event polled every 0.05 s, never a fixed wait. A port taken in the
# meantime makes the server exit; then try another.
start_server() {
    for _ in 1 2 3; do
        port=$(free_port)
        "$SERVER" --port "$port" >"$dir/server.out" 2>"$dir/server.err" &
        server_pid=$!
        i=0
        while kill -0 "$server_pid" 2>/dev/null; do
            listening "$port" && return 0
            i=$((i + 1))
            [ $i -lt 200 ] || fail "server did not listen within 10 s"
            sleep 0.05
        done
        wait "$server_pid" || true
        server_pid=""
    done
    fail "server could not start"
}

# stop_server [signalled]: SIGTERM (unless a client sent it already); the
# server must close what is open, free everything and exit 0.
stop_server() {
    [ "${1:-}" = signalled ] || kill -TERM "$server_pid"
    rc=0
    wait "$server_pid" || rc=$?
    server_pid=""
    [ "$rc" -eq 0 ] || fail "server exited $rc after SIGTERM"
}

# same FILE TEXT: FILE holds exactly TEXT (and a final newline).
same() {
    printf '%s\n' "$2" >"$dir/want"
    cmp -s "$1" "$dir/want" || fail "$1 differs from what was expected:
$(diff "$dir/want" "$1" || true)"
}

# py SCRIPT ARGS...: run a python3 client script (helpers first).
py() {
    script=$1
    shift
    cat "$dir/helpers.py" "$script" >"$dir/run.py"
    $T "$PY" "$dir/run.py" "$@" >"$dir/py.out" 2>"$dir/py.err" ||
        fail "python3 client failed: $(cat "$dir/py.err")"
}

cat >"$dir/helpers.py" <<'EOF'
import os, signal, socket, sys, threading, time
port = int(sys.argv[1])

class Client:
    """A TCP client that checks it receives exactly what is expected."""
    def __init__(self):
        self.s = socket.create_connection(("localhost", port), timeout=5)
        self.buf = b""
    def send(self, data):
        self.s.sendall(data)
    def expect(self, want):
        while len(self.buf) < len(want):
            chunk = self.s.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        got, self.buf = self.buf[:len(want)], self.buf[len(want):]
        if got != want:
            sys.exit("expected %r, got %r" % (want, got))
    def expect_eof(self):
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
        except ConnectionResetError:
            pass
        if self.buf:
            sys.exit("expected the end, got %r" % self.buf)
    def close(self):
        self.s.close()
EOF

case $part in
echo)
    start_server
    # The book's client: "Hello, world!" comes back, then it hangs up.
    $T "$CLIENT" "$port" >"$dir/client.out" 2>"$dir/client.err" ||
        fail "echo_client exited $?"
    same "$dir/client.out" "Server said: Hello, world!
Connection lost."
    cat >"$dir/echo.py" <<'EOF'
a, b = Client(), Client()
a.send(b"hello\n"); b.send(b"from b\r\n")
b.expect(b"from b\r\n"); a.expect(b"hello\n")
binary = bytes(range(256)) * 4
a.send(binary); a.expect(binary)
big = os.urandom(1 << 20)  # sent from a thread: the echo flows back meanwhile
t = threading.Thread(target=b.send, args=(big,)); t.start()
b.expect(big); t.join()
a.close(); b.close()
EOF
    py "$dir/echo.py" "$port"
    # A client still connected when the server is told to stop.
    cat >"$dir/stop.py" <<'EOF'
c = Client()
c.send(b"ping"); c.expect(b"ping")
os.kill(int(sys.argv[2]), signal.SIGTERM)
c.expect_eof()
EOF
    py "$dir/stop.py" "$port" "$server_pid"
    stop_server signalled
    # Nobody listens now: the client says so and exits 1.
    rc=0
    $T "$CLIENT" --port "$port" >"$dir/client.out" 2>"$dir/client.err" || rc=$?
    [ "$rc" -eq 1 ] || fail "echo_client exited $rc on a refused connection, want 1"
    same "$dir/client.out" "Connection failed."
    ;;

quote)
    # A session where every number is known: a connection's count is taken
    # when its data arrives, and a client that saw EOF knows the server has
    # already counted its connection out.
    start_server
    cat >"$dir/quote.py" <<'EOF'
a, b, c = Client(), Client(), Client()
c.send(b"c1"); c.expect(b"An apple a day keeps the doctor away")  # 3 open
for x in (a, b):
    x.s.shutdown(socket.SHUT_WR); x.expect_eof(); x.close()
c.send(b"c2"); c.expect(b"c1")                                     # 1 open
d = Client()
d.send(b"d1"); d.expect(b"c2")                                     # 2 open
c.close(); d.close()
EOF
    py "$dir/quote.py" "$port"
    stop_server
    same "$dir/server.out" "Number of active connections: 3
> Received: \`\`c1''
>  Sending: \`\`An apple a day keeps the doctor away''
Number of active connections: 1
> Received: \`\`c2''
>  Sending: \`\`c1''
Number of active connections: 2
> Received: \`\`d1''
>  Sending: \`\`c2''"

    # The book's client: three connections at once, in whatever order the
    # server serves them. Each gets the quote the previous one sent.
    start_server
    $T "$CLIENT" "$port" >"$dir/client.out" 2>"$dir/client.err" ||
        fail "quote_client exited $?"
    stop_server
    cat >"$dir/check.py" <<'EOF'
quotes = {"You snooze you lose", "The early bird gets the worm", "Carpe diem"}
client = open(sys.argv[2]).read().splitlines()
server = open(sys.argv[3]).read().splitlines()
got = sorted(l[len("Received quote: "):] for l in client if l.startswith("Received quote: "))
assert len(got) == 3, client
assert client.count("connection lost: connection closed cleanly") == 3, client
assert len(client) == 6, client
assert len(server) == 9, server
sent, received = [], []
for i in range(0, 9, 3):
    n, r, s = server[i:i + 3]
    assert n in ("Number of active connections: %d" % k for k in (1, 2, 3)), n
    assert r.startswith("> Received: ``") and r.endswith("''"), r
    assert s.startswith(">  Sending: ``") and s.endswith("''"), s
    received.append(r[14:-2]); sent.append(s[14:-2])
assert set(received) == quotes, received
assert sent == ["An apple a day keeps the doctor away"] + received[:2], (sent, received)
assert got == sorted(sent), (got, sent)
EOF
    py "$dir/check.py" 0 "$dir/client.out" "$dir/server.out"

    rc=0
    $T "$CLIENT" "$port" >"$dir/client.out" 2>"$dir/client.err" || rc=$?
    [ "$rc" -eq 1 ] || fail "quote_client exited $rc on refused connections, want 1"
    [ "$(grep -c '^connection failed: .*refused' "$dir/client.out")" -eq 3 ] ||
        fail "quote_client did not report three refused connections"
    ;;

chat)
    start_server
    cat >"$dir/chat.py" <<'EOF'
ask = b"What's your name?\r\n"
alice = Client(); alice.expect(ask)
alice.send(b"alice\n"); alice.expect(b"Welcome, alice!\r\n")
bob = Client(); bob.expect(ask)
bob.send(b"alice\r\n"); bob.expect(b"Name taken, please choose another.\r\n")
bob.send(b"bob\r\n"); bob.expect(b"Welcome, bob!\r\n")
alice.expect(b"bob has joined the channel.\r\n")
carol = Client(); carol.expect(ask)          # connected, never registered
alice.send(b"hello bob\r\n"); bob.expect(b"<alice> hello bob\r\n")
# The pause is what is tested (a line in two reads, most likely); nothing
# depends on how long it is.
bob.send(b"hi al"); time.sleep(0.05); bob.send(b"ice\nand more\n")
alice.expect(b"<bob> hi alice\r\n<bob> and more\r\n")
bob.close(); alice.expect(b"bob has left the channel.\r\n")
carol.s.shutdown(socket.SHUT_WR)              # the server hangs up on
carol.expect_eof(); carol.close()             # her, sent her nothing more
bob = Client(); bob.expect(ask)               # the name is free again
bob.send(b"bob\n"); bob.expect(b"Welcome, bob!\r\n")
# Lines go out in order, so had anyone received something unexpected
# before this point, it would come before these lines and fail here.
alice.expect(b"bob has joined the channel.\r\n")
bob.send(b"bye\n"); alice.expect(b"<bob> bye\r\n")
alice.send(b"see you\n"); bob.expect(b"<alice> see you\r\n")
# Stopping the server with clients connected closes them.
os.kill(int(sys.argv[2]), signal.SIGTERM)
alice.expect_eof(); bob.expect_eof()
EOF
    py "$dir/chat.py" "$port" "$server_pid"
    stop_server signalled
    ;;

*)
    fail "unknown part '$part'"
    ;;
esac
echo "ok: $part"
