#!/usr/bin/env bash
# Smoke test for the peer echo servers (uv_echo, event_echo, twisted_echo.py).
#
#   bench/peer_smoke.sh BUILD_DIR
#
# Starts each peer on a free loopback port (port 0; the port is read back from the
# server's "listening on HOST:PORT pid PID" line), checks that 1 byte, 64 KiB and
# 4 MiB of random data echo back exactly, then stops the server with SIGTERM and
# checks that it exits 0. A peer whose binary was not built (library missing) is
# skipped with a note. Exits non-zero on any failure.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
build_dir=$1
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3 # Debian's interpreter, the one with python3-twisted
tmp=$(mktemp -d)
server_pid=

cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# Client: one connection per size; send from a thread while receiving, so a large
# payload cannot deadlock on full socket buffers.
cat >"$tmp/client.py" <<'EOF'
import os, socket, sys, threading

host, port = sys.argv[1], int(sys.argv[2])
ok = True
for size in (1, 64 * 1024, 4 * 1024 * 1024):
    payload = os.urandom(size)
    s = socket.create_connection((host, port), timeout=20)
    def send(s=s, payload=payload):
        try:
            s.sendall(payload)
        except OSError:
            pass  # shows up as a mismatch below
    sender = threading.Thread(target=send)
    sender.start()
    got = bytearray()
    try:
        while len(got) < size:
            chunk = s.recv(min(1 << 20, size - len(got)))
            if not chunk:
                break
            got += chunk
    except OSError as e:
        print("  %8d bytes: error %s" % (size, e))
    sender.join()
    s.close()
    if bytes(got) == payload:
        print("  %8d bytes: ok" % size)
    else:
        ok = False
        print("  %8d bytes: MISMATCH (got %d bytes)" % (size, len(got)))
sys.exit(0 if ok else 1)
EOF

failures=0
ran=0

# run_peer NAME CMD...
run_peer() {
    local name=$1
    shift
    echo "$name:"
    "$@" 0 127.0.0.1 >"$tmp/$name.out" 2>"$tmp/$name.err" &
    server_pid=$!

    local line= i
    for i in $(seq 1 100); do
        line=$(head -n 1 "$tmp/$name.out" 2>/dev/null || true)
        case $line in listening\ on\ *) break ;; esac
        if ! kill -0 "$server_pid" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    # "listening on HOST:PORT pid PID"
    if [[ ! $line =~ ^listening\ on\ (.*):([0-9]+)\ pid\ ([0-9]+)$ ]]; then
        echo "  FAIL: no 'listening on' line; stderr:" >&2
        sed 's/^/    /' "$tmp/$name.err" >&2
        failures=$((failures + 1))
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
        return
    fi
    local port=${BASH_REMATCH[2]} pid=${BASH_REMATCH[3]}
    if [ "$pid" != "$server_pid" ]; then
        echo "  FAIL: printed pid $pid, started pid $server_pid" >&2
        failures=$((failures + 1))
    fi

    if ! "$py" "$tmp/client.py" 127.0.0.1 "$port"; then
        failures=$((failures + 1))
    fi

    kill -TERM "$server_pid"
    local rc=0
    wait "$server_pid" || rc=$?
    server_pid=
    if [ "$rc" -ne 0 ]; then
        echo "  FAIL: exit status $rc after SIGTERM; stderr:" >&2
        sed 's/^/    /' "$tmp/$name.err" >&2
        failures=$((failures + 1))
    else
        echo "  clean exit on SIGTERM"
    fi
    ran=$((ran + 1))
}

for bin in uv_echo event_echo; do
    if [ -x "$build_dir/bench/$bin" ]; then
        run_peer "$bin" "$build_dir/bench/$bin"
    else
        echo "$bin: SKIP (not built: $build_dir/bench/$bin)"
    fi
done
if "$py" -c 'import twisted' 2>/dev/null; then
    run_peer twisted_echo "$py" "$here/twisted_echo.py"
else
    echo "twisted_echo: SKIP ($py has no twisted; Debian: python3-twisted)"
fi

if [ "$ran" -eq 0 ]; then
    echo "FAIL: no peer was run" >&2
    exit 1
fi
if [ "$failures" -ne 0 ]; then
    echo "FAIL: $failures failure(s)" >&2
    exit 1
fi
echo "PASS: $ran peer(s)"
