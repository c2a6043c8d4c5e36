#!/bin/sh
# Twisted Conch's SSH client (python3-twisted 22.4, conch_client.py) against
# coil's SSH server (coil_sshd_test_server, backend $COIL_REACTOR): Conch
# has no strict kex, no chacha20-poly1305 and no GCM, so this is the
# ordinary kex path with aes256-ctr + hmac-sha2-512 (and aes128-ctr +
# hmac-sha2-256); publickey login with ed25519 and ecdsa keys, host key
# verified, `whoami`, 1 MiB echoed by `cat`, an exit status.
#
#   sh run_conch.sh FIXTURE_DIR CONCH_CLIENT_PY
set -u
fixture=${1:?usage: run_conch.sh FIXTURE_DIR CONCH_CLIENT_PY}
client=${2:?usage: run_conch.sh FIXTURE_DIR CONCH_CLIENT_PY}
me="run_conch.sh (${COIL_REACTOR:-default} backend)"
py=/usr/bin/python3
[ -f "$fixture/env" ] || {
    echo "$me: $fixture/env is missing: the ctest fixture sshd_interop did not run" >&2
    exit 1
}
while IFS='=' read -r k v; do
    case $k in [A-Z]*) eval "$k=\$v" ;; esac
done <"$fixture/env"
[ -x $py ] && $py -c 'import twisted.conch.ssh.transport' 2>/dev/null || {
    echo "$me: Debian's /usr/bin/python3 with python3-twisted is needed (apt-get install python3-twisted)" >&2
    exit 1
}

d=$(mktemp -d "${TMPDIR:-/tmp}/coil-sshd-conch.XXXXXX")
spid=
cleanup() {
    [ -z "$spid" ] || kill -KILL "$spid" 2>/dev/null || true
    rm -rf "$d"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fail() {
    echo "FAIL ($me): $*" >&2
    for f in "$d"/*.err; do
        [ -f "$f" ] || continue
        echo "--- $f (last 40 lines):" >&2
        tail -n 40 "$f" >&2
    done
    exit 1
}

"$SERVER_BIN" -v "$HOST_KEY" "$AUTHORIZED_KEYS" >"$d/server.out" 2>"$d/server.err" &
spid=$!
i=0
until grep -q '^listening on [0-9]' "$d/server.out"; do
    kill -0 "$spid" 2>/dev/null || fail "the server exited before listening"
    i=$((i + 1))
    [ $i -lt 1200 ] || fail "the server did not listen within 60 s"
    sleep 0.05
done
port=$(sed -n 's/^listening on \([0-9][0-9]*\)$/\1/p' "$d/server.out")

run() { # KEY CIPHER MAC
    $py "$client" --port "$port" --known-host-key "$HOST_KEY_PUB" --key "$1" \
        --user conch --cipher "$2" --mac "$3" >"$d/conch.out" 2>"$d/conch.err" ||
        fail "conch_client.py with $1, $2, $3 exited with status $?: $(cat "$d/conch.out")"
    for want in "OK kex curve25519-sha256 cipher $2 mac $3" "OK logged in as conch" \
        "method=publickey" "cipher=$2" "client=SSH-2.0-Twisted" \
        "OK cat echoed 1048576 bytes, exit status 0" "OK exit status 9"; do
        grep -q -F -e "$want" "$d/conch.out" || fail "expected '$want' in: $(cat "$d/conch.out")"
    done
    # The server's log: this cipher, and no strict kex (Conch 22.4 has none).
    line=$(grep "kex curve25519-sha256.*cipher $2" "$d/server.err" | tail -n 1)
    [ -n "$line" ] || fail "the server did not log the kex with $2"
    case $line in *strict*) fail "strict kex with Conch? $line" ;; esac
    echo "ok: Conch with $(basename "$1"), $2 + $3"
}
run "$KEY_ED25519" aes256-ctr hmac-sha2-512
run "$KEY_ECDSA" aes128-ctr hmac-sha2-256
run "$KEY_ED25519" aes256-ctr hmac-sha2-256

# A host key that is not the server's is refused by the client.
rc=0
$py "$client" --port "$port" --known-host-key "$HOST_KEYGEN_PUB" --key "$KEY_ED25519" \
    --user conch >"$d/conch.out" 2>"$d/conch.err" || rc=$?
[ $rc -ne 0 ] || fail "Conch accepted a host key that is not in its known key file"
grep -q "host key .* is not the one" "$d/conch.err" || fail "no host key message: $(cat "$d/conch.err")"
echo "ok: Conch refuses another host key"

kill -TERM "$spid"
rc=0
wait "$spid" || rc=$?
spid=
[ $rc -eq 0 ] || fail "the server exited with status $rc after SIGTERM"
if grep -q -e AddressSanitizer -e 'runtime error:' -e LeakSanitizer "$d/server.err"; then
    fail "the sanitizers reported errors"
fi
echo "PASS: $me"
