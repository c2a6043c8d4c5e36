#!/bin/sh
# coil-echo and coil-chat stopped (SIGTERM) while TLS connections are stuck:
# clients that finished the handshake and then never read again (the
# server's close_notify waits for them) and raw TCP clients stuck in the
# handshake (nothing sent, or half a ClientHello). The server must close
# what it can, abort the rest within its shutdown timeout and exit 0; in the
# ASan build that also means LeakSanitizer found nothing.
#
# Usage: run_teardown.sh echo|chat COIL_ECHO COIL_CHAT
set -eu

part=$1
case $part in
echo) TOOL=$2 ;;
chat) TOOL=$3 ;;
*)
    echo "usage: $0 echo|chat COIL_ECHO COIL_CHAT" >&2
    exit 2
    ;;
esac
PY=${PYTHON3:-python3}
certs=${COIL_TEST_CERTS:?COIL_TEST_CERTS is not set (the tls_certs ctest fixture sets it)}

here=$(cd "$(dirname "$0")" && pwd)
. "$here/testlib.sh"
testlib_setup teardown

"$TOOL" serve "ssl:0:interface=127.0.0.1:privateKey=$certs/server.key:certKey=$certs/server-chain.pem" \
    "unix:$dir/s.sock" 2>"$dir/server.err" &
server=$!
pids="$pids $server"
wait_for "the server saying it serves" "$server" grep -q "serving .* on unix:" "$dir/server.err"
port=$(sed -n 's/.*serving .* on ssl:\([0-9][0-9]*\).*/\1/p' "$dir/server.err" | head -n1)
[ -n "$port" ] || fail "the server printed no TLS port"

# The stuck clients, held open until this script ends. The last one
# finishes a handshake after the raw ones connected: the server accepts in
# order, so by then it holds every raw connection mid-handshake.
cat >"$dir/stuck.py" <<'EOF'
import socket, ssl, sys
port, ca, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(cafile=ca)
held = []
def tls():
    s = ctx.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=20),
        server_hostname="localhost")
    held.append(s)
for i in range(n):
    tls()
hello = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    if i % 2:
        s.sendall(hello)
    held.append(s)
tls()
print("ready", flush=True)
sys.stdin.read()
EOF
mkfifo "$dir/hold"
"$PY" "$dir/stuck.py" "$port" "$certs/ca.pem" 10 <"$dir/hold" >"$dir/clients.out" 2>"$dir/clients.err" &
clients=$!
pids="$pids $clients"
exec 3>"$dir/hold"
wait_for "the stuck clients connecting" "$clients" grep -q ready "$dir/clients.out"

kill -TERM "$server"
rc=0
wait "$server" || rc=$?
[ "$rc" -eq 0 ] || fail "the server exited $rc after SIGTERM with stuck TLS connections"
grep -q "did not close within" "$dir/server.err" ||
    fail "the server did not report aborting the stuck connections"
exec 3>&-
echo "ok: $part stopped with stuck TLS connections, exit 0"
