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
here=$(cd "$(dirname "$0")" && pwd)
. "$here/sshdlib.sh"
sshd_setup sshd-conch "$fixture"
[ -x $py ] && $py -c 'import twisted.conch.ssh.transport' 2>/dev/null || {
    echo "$me: Debian's /usr/bin/python3 with python3-twisted is needed (apt-get install python3-twisted)" >&2
    exit 1
}

start_server server "$HOST_KEY" -v

run() { # KEY CIPHER MAC
    $py "$client" --port "$port" --known-host-key "$HOST_KEY_PUB" --key "$1" \
        --user conch --cipher "$2" --mac "$3" >"$dir/conch.out" 2>"$dir/conch.err" ||
        fail "conch_client.py with $1, $2, $3 exited with status $?: $(cat "$dir/conch.out")"
    for want in "OK kex curve25519-sha256 cipher $2 mac $3" "OK logged in as conch" \
        "method=publickey" "cipher=$2" "client=SSH-2.0-Twisted" \
        "OK cat echoed 1048576 bytes, exit status 0" "OK exit status 9"; do
        grep -q -F -e "$want" "$dir/conch.out" || fail "expected '$want' in: $(cat "$dir/conch.out")"
    done
    # The server's log: this cipher, and no strict kex (Conch 22.4 has none).
    line=$(grep "kex curve25519-sha256.*cipher $2" "$dir/server.err" | tail -n 1)
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
    --user conch >"$dir/conch.out" 2>"$dir/conch.err" || rc=$?
[ $rc -ne 0 ] || fail "Conch accepted a host key that is not in its known key file"
grep -q "host key .* is not the one" "$dir/conch.err" || fail "no host key message: $(cat "$dir/conch.err")"
echo "ok: Conch refuses another host key"

stop_server "$spid" server
echo "PASS: $me"
