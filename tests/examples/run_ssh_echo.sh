#!/bin/sh
# Runs examples/ssh_echo_server.c for real: OpenSSH's ssh logs in with a
# throwaway ed25519 key (the host key checked against a known_hosts line
# made from the host key the example generated), its input comes back on
# stdout, the greeting names the user and key on stderr, the exit status is
# 0, and the server exits 0 on SIGTERM (under ASan: with no leaks).
# Usage: run_ssh_echo.sh SSH_ECHO_SERVER
set -eu
SERVER=$1
PY=${PYTHON3:-python3}
me=ssh_echo
testlib_wait=60
. "$(dirname "$0")/../tools/testlib.sh"
testlib_setup ssh-echo
for tool in ssh ssh-keygen "$PY"; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing (install openssh-client / python3)"
done
ssh-keygen -q -t ed25519 -N '' -C alice -f "$dir/alice" </dev/null >/dev/null
port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HOME=$dir "$SERVER" --port "$port" --host-key "$dir/host" --authorized-keys "$dir/alice.pub" \
    >"$dir/server.out" 2>"$dir/server.err" &
pid=$!
pids=$pid
wait_for "the server's 'listening' line" "$pid" grep -q "listening on 127.0.0.1:$port" "$dir/server.out"
[ "$(stat -c %a "$dir/host")" = 600 ] || fail "the generated host key is not mode 0600"
echo "[127.0.0.1]:$port $(ssh-keygen -y -f "$dir/host")" >"$dir/known_hosts"
fp=$(ssh-keygen -l -f "$dir/alice.pub" | awk '{print $2}')
printf 'hello over ssh\nsecond line\n' |
    timeout -k 2 30 ssh -F /dev/null -p "$port" -i "$dir/alice" -o IdentitiesOnly=yes \
        -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$dir/known_hosts" \
        alice@127.0.0.1 cat >"$dir/ssh.out" 2>"$dir/ssh.err" || fail "ssh exited with $?"
[ "$(cat "$dir/ssh.out")" = "$(printf 'hello over ssh\nsecond line')" ] || fail "the echo differs"
grep -q "hello alice (publickey $fp), echoing 'cat'" "$dir/ssh.err" || fail "no greeting naming alice and $fp"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pids=""
[ "$rc" = 0 ] || fail "the server exited with $rc on SIGTERM"
echo "ok: ssh_echo_server over OpenSSH's ssh"
