#!/bin/sh
# OpenSSH's ssh against coil's SSH server (coil_sshd_test_server, on the
# reactor backend $COIL_REACTOR names), with the keys of the fixture
# (interop-fixture.sh). Host key verification stays on in every run: a
# known_hosts with the server's key for [127.0.0.1]:PORT and
# StrictHostKeyChecking=yes.
#
#   sh run_openssh.sh PART FIXTURE_DIR
#
# PART:
#   ciphers   the default negotiation (chacha20-poly1305 with strict kex,
#             from ssh -vvv and the server), then forced aes256-gcm,
#             aes128-gcm, aes128-ctr + hmac-sha2-256-etm, aes256-ctr +
#             hmac-sha2-512; each echoes 1 MiB through `cat`, byte for byte
#   auth      ed25519, ecdsa and rsa keys; a wrong key; seven wrong keys
#             ("Too many authentication failures"); password and
#             keyboard-interactive (SSH_ASKPASS); a wrong password and an
#             unknown user refused alike; exit statuses; an ssh-keygen host
#             key, and a changed host key refused
#   rekey     64 MiB each way with every byte checked (sha256) while the
#             client rekeys every MiB (RekeyLimit=1M); then rekeys started
#             by the server (--rekey-bytes); rekeys counted by the server
#   channels  20 sessions at once through one ControlMaster connection,
#             each echoing its own data; shell with and without a pty;
#             direct-tcpip (ssh -W) to 127.0.0.1 and refused elsewhere
# Waits on events (a line printed, a process exiting), never fixed sleeps.
set -u
part=${1:?usage: run_openssh.sh PART FIXTURE_DIR}
fixture=${2:?usage: run_openssh.sh PART FIXTURE_DIR}
me="run_openssh.sh $part (${COIL_REACTOR:-default} backend)"

here=$(cd "$(dirname "$0")" && pwd)
. "$here/sshdlib.sh"
sshd_setup sshd-openssh "$fixture"
command -v ssh >/dev/null 2>&1 || {
    echo "$me: ssh is missing: install the Debian package 'openssh-client'" >&2
    exit 1
}
ok() { echo "ok: $*"; }

# sshc NAME ARGS...: ssh to the server NAME with strict host keys (no
# connection sharing); sshm NAME ARGS...: the same, for a ControlMaster.
sshm() {
    kn=$1
    shift
    ssh -F /dev/null -o BatchMode=yes -o UserKnownHostsFile="$dir/known_hosts.$kn" \
        -o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null \
        -o IdentitiesOnly=yes -o ConnectTimeout=60 -o ServerAliveInterval=0 \
        -p "$port" "$@"
}
sshc() {
    kn=$1
    shift
    sshm "$kn" -o ControlMaster=no -o ControlPath=none "$@"
}

has() { grep -q -F -e "$2" "$1" || fail "expected '$2' in $1: $(head -c 2000 "$1")"; }
hasnt() { ! grep -q -F -e "$2" "$1" || fail "did not expect '$2' in $1"; }

head -c 1048576 /dev/urandom >"$dir/1m"

# echo_check NAME WHAT SSH-ARGS...: 1 MiB through `cat`, compared.
echo_check() {
    en=$1
    what=$2
    shift 2
    sshc "$en" "$@" cat <"$dir/1m" >"$dir/echo.out" 2>"$dir/echo.err" ||
        fail "$what: ssh ... cat exited with status $?"
    cmp -s "$dir/1m" "$dir/echo.out" ||
        fail "$what: cat echoed $(wc -c <"$dir/echo.out") bytes, not the 1 MiB sent"
}

askpass_env() { # ANSWER CMD...
    # ssh asks SSH_ASKPASS (never a tty) for passwords and prompts.
    answer=$1
    shift
    env SSH_ASKPASS="$ASKPASS" SSH_ASKPASS_REQUIRE=force DISPLAY=:0 \
        COIL_TEST_ASKPASS_ANSWER="$answer" COIL_TEST_ASKPASS_LOG="$dir/askpass.log" "$@"
}

# pattern_sha N: the sha256 of the first N bytes of "source"'s pattern
# (byte i = i % 251).
pattern_sha() {
    /usr/bin/python3 -c "
import hashlib
n = $1
block = bytes(range(251)) * 4096
h = hashlib.sha256()
i = 0
while i < n:
    k = min(len(block), n - i)
    h.update(block[:k])
    i += k
print(h.hexdigest())"
}

case $part in
ciphers)
    start_server s "$HOST_KEY" -v
    sshc s -vvv -i "$KEY_ED25519" alice@127.0.0.1 whoami >"$dir/who.out" 2>"$dir/ssh.err" ||
        fail "default: ssh whoami exited with status $?"
    has "$dir/ssh.err" "kex: algorithm: curve25519-sha256"
    has "$dir/ssh.err" "kex: host key algorithm: ssh-ed25519"
    has "$dir/ssh.err" "Server host key: ssh-ed25519 $HOST_FP"
    has "$dir/ssh.err" "kex: server->client cipher: chacha20-poly1305@openssh.com MAC: <implicit>"
    has "$dir/ssh.err" "kex: client->server cipher: chacha20-poly1305@openssh.com MAC: <implicit>"
    has "$dir/ssh.err" "will use strict KEX ordering"
    has "$dir/who.out" "user=alice method=publickey key_type=ssh-ed25519 fingerprint=$FP_ED25519 cipher=chacha20-poly1305@openssh.com"
    has "$dir/who.out" "client=SSH-2.0-OpenSSH_"
    has "$dir/who.out" "request=exec command=whoami"
    # The server's own log (-v: debug) says the same.
    has "$dir/s.err" "kex curve25519-sha256, host key ssh-ed25519, cipher chacha20-poly1305@openssh.com, strict kex"
    ok "default: curve25519-sha256, ssh-ed25519, chacha20-poly1305 with strict kex"
    echo_check s "default" -i "$KEY_ED25519" alice@127.0.0.1
    ok "default: 1 MiB echoed by cat"
    for c in "aes256-gcm@openssh.com" "aes128-gcm@openssh.com" \
        "aes128-ctr hmac-sha2-256-etm@openssh.com" "aes256-ctr hmac-sha2-512" \
        "aes128-ctr hmac-sha2-256" "aes256-ctr hmac-sha2-512-etm@openssh.com"; do
        set -- $c
        cipher=$1
        mac=${2:-}
        copt="-c $cipher"
        [ -n "$mac" ] && copt="$copt -m $mac"
        sshc s -v $copt -i "$KEY_ED25519" bob@127.0.0.1 whoami >"$dir/who.out" 2>"$dir/ssh.err" ||
            fail "$c: ssh whoami exited with status $?"
        has "$dir/ssh.err" "kex: server->client cipher: $cipher MAC: ${mac:-<implicit>}"
        has "$dir/ssh.err" "kex: client->server cipher: $cipher MAC: ${mac:-<implicit>}"
        has "$dir/who.out" "user=bob method=publickey"
        has "$dir/who.out" "cipher=$cipher"
        has "$dir/s.err" "host key ssh-ed25519, cipher $cipher"
        echo_check s "$c" $copt -i "$KEY_ED25519" bob@127.0.0.1
        ok "$c: negotiated, 1 MiB echoed by cat"
    done
    stop_server "$spid" s
    ;;
auth)
    start_server s "$HOST_KEY"
    s_pid=$spid
    for k in ED25519:ssh-ed25519 ECDSA:ecdsa-sha2-nistp256 RSA:; do
        K=${k%%:*}
        type=${k#*:}
        eval "key=\$KEY_$K fpr=\$FP_$K"
        sshc s -i "$key" carol@127.0.0.1 whoami >"$dir/who.out" 2>"$dir/ssh.err" ||
            fail "$K key: ssh whoami exited with status $?"
        has "$dir/who.out" "user=carol method=publickey"
        has "$dir/who.out" "fingerprint=$fpr"
        [ -z "$type" ] || has "$dir/who.out" "key_type=$type "
        ok "publickey $K ($(sed -n 's/.*key_type=\([^ ]*\).*/\1/p' "$dir/who.out"))"
    done
    rc=0
    sshc s -i "$KEY_WRONG1" carol@127.0.0.1 whoami >"$dir/who.out" 2>"$dir/ssh.err" || rc=$?
    [ $rc -eq 255 ] || fail "a key not in authorized_keys: ssh exited with status $rc, not 255"
    has "$dir/ssh.err" "Permission denied (publickey"
    [ ! -s "$dir/who.out" ] || fail "a wrong key ran the command"
    ok "a wrong key is refused"
    rc=0
    sshc s -i "$KEY_WRONG1" -i "$KEY_WRONG2" -i "$KEY_WRONG3" -i "$KEY_WRONG4" \
        -i "$KEY_WRONG5" -i "$KEY_WRONG6" -i "$KEY_WRONG7" -i "$KEY_ED25519" \
        carol@127.0.0.1 whoami >"$dir/who.out" 2>"$dir/ssh.err" || rc=$?
    [ $rc -eq 255 ] || fail "seven wrong keys: ssh exited with status $rc, not 255"
    # OpenSSH's sshd says "Too many authentication failures"; any case will do.
    grep -q -i "too many authentication failures" "$dir/ssh.err" ||
        fail "seven wrong keys: no 'Too many authentication failures' in: $(cat "$dir/ssh.err")"
    [ ! -s "$dir/who.out" ] || fail "the eighth key got in after seven failures"
    ok "seven wrong keys: Too many authentication failures"

    pw() { # USER ANSWER METHOD
        askpass_env "$2" setsid -w ssh -F /dev/null -o BatchMode=no \
            -o UserKnownHostsFile="$dir/known_hosts.s" -o StrictHostKeyChecking=yes \
            -o GlobalKnownHostsFile=/dev/null -o ControlMaster=no -o ControlPath=none \
            -o PubkeyAuthentication=no -o PreferredAuthentications="$3" \
            -o NumberOfPasswordPrompts=1 -o ConnectTimeout=60 -p "$port" \
            "$1@127.0.0.1" whoami
    }
    : >"$dir/askpass.log"
    pw alice secret password >"$dir/who.out" 2>"$dir/ssh.err" || fail "password: ssh exited with status $?"
    has "$dir/who.out" "user=alice method=password"
    ok "password"
    : >"$dir/askpass.log"
    pw alice secret keyboard-interactive >"$dir/who.out" 2>"$dir/ssh.err" ||
        fail "keyboard-interactive: ssh exited with status $?"
    has "$dir/who.out" "user=alice method=keyboard-interactive"
    has "$dir/askpass.log" "Password"
    ok "keyboard-interactive (prompt: $(head -n 1 "$dir/askpass.log"))"
    for m in password keyboard-interactive; do
        rc=0
        pw alice wrong "$m" >"$dir/who.out" 2>"$dir/wrong.err" || rc=$?
        [ $rc -eq 255 ] || fail "$m, wrong password: ssh exited with status $rc, not 255"
        rc=0
        pw mallory secret "$m" >"$dir/who.out" 2>"$dir/unknown.err" || rc=$?
        [ $rc -eq 255 ] || fail "$m, unknown user: ssh exited with status $rc, not 255"
        has "$dir/wrong.err" "Permission denied"
        sed 's/mallory/USER/g' "$dir/unknown.err" >"$dir/unknown.norm"
        sed 's/alice/USER/g' "$dir/wrong.err" >"$dir/wrong.norm"
        cmp -s "$dir/unknown.norm" "$dir/wrong.norm" ||
            fail "$m: an unknown user is not answered like a wrong password: '$(cat "$dir/unknown.err")' against '$(cat "$dir/wrong.err")'"
        ok "$m: wrong password and unknown user refused alike ($(head -n 1 "$dir/wrong.err"))"
    done

    for st in 0 7 42; do
        rc=0
        sshc s -i "$KEY_ED25519" carol@127.0.0.1 "exit $st" </dev/null 2>"$dir/ssh.err" || rc=$?
        [ $rc -eq $st ] || fail "exit $st: ssh exited with status $rc"
    done
    rc=0
    sshc s -i "$KEY_ED25519" carol@127.0.0.1 "no-such-command" </dev/null 2>"$dir/ssh.err" || rc=$?
    [ $rc -eq 127 ] || fail "an unknown command: ssh exited with status $rc, not 127"
    has "$dir/ssh.err" "unknown command: no-such-command"
    ok "exit statuses 0, 7, 42; 127 and stderr for an unknown command"

    # A host key made by ssh-keygen; and the other server's key refused.
    start_server k "$HOST_KEYGEN"
    kpid=$spid
    sshc k -i "$KEY_ED25519" carol@127.0.0.1 whoami >"$dir/who.out" 2>"$dir/ssh.err" ||
        fail "ssh-keygen host key: ssh exited with status $?"
    has "$dir/who.out" "user=carol"
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$HOST_KEY_PUB")" >"$dir/known_hosts.bad"
    rc=0
    sshc bad -i "$KEY_ED25519" carol@127.0.0.1 whoami >"$dir/who.out" 2>"$dir/ssh.err" || rc=$?
    [ $rc -eq 255 ] || fail "a changed host key: ssh exited with status $rc, not 255"
    has "$dir/ssh.err" "Host key verification failed"
    ok "a host key from ssh-keygen; a changed host key refused by ssh"
    stop_server "$kpid" k
    stop_server "$s_pid" s
    ;;
rekey)
    start_server s "$HOST_KEY" --stats
    n=67108864
    want=$(pattern_sha $n)
    sshc s -o RekeyLimit=1M -i "$KEY_ED25519" carol@127.0.0.1 "source $n" 2>"$dir/ssh.err" |
        sha256sum >"$dir/src.sum"
    got=$(cut -d' ' -f1 "$dir/src.sum")
    [ "$got" = "$want" ] || fail "source $n with RekeyLimit=1M: sha256 $got, want $want"
    ok "64 MiB from the server, the client rekeying every MiB: every byte right"
    head -c $n /dev/urandom >"$dir/64m"
    sum=$(sha256sum "$dir/64m" | cut -d' ' -f1)
    sshc s -o RekeyLimit=1M -i "$KEY_ED25519" carol@127.0.0.1 sink <"$dir/64m" >"$dir/sink.out" 2>"$dir/ssh.err" ||
        fail "sink: ssh exited with status $?"
    [ "$(cat "$dir/sink.out")" = "$n $sum" ] ||
        fail "sink of 64 MiB with RekeyLimit=1M: the server read '$(cat "$dir/sink.out")', want '$n $sum'"
    ok "64 MiB to the server, the client rekeying every MiB: every byte right"
    sshc s -i "$KEY_ED25519" carol@127.0.0.1 stats >"$dir/stats.out" 2>"$dir/ssh.err" || fail "stats: $?"
    rk=$(sed -n 's/.* rekeys=\([0-9]*\) .*/\1/p' "$dir/stats.out")
    [ -n "$rk" ] && [ "$rk" -ge 100 ] ||
        fail "the server counted '$rk' rekeys for 2 x 64 MiB at RekeyLimit=1M (want >= 100): $(cat "$dir/stats.out")"
    ok "the server counted $rk rekeys"
    stop_server "$spid" s
    # Rekeys the server starts itself.
    start_server r "$HOST_KEY" --rekey-bytes 4194304
    m=33554432
    sshc r -i "$KEY_ED25519" carol@127.0.0.1 "source $m" 2>"$dir/ssh.err" | sha256sum >"$dir/src.sum"
    want=$(pattern_sha $m)
    got=$(cut -d' ' -f1 "$dir/src.sum")
    [ "$got" = "$want" ] || fail "source $m with the server rekeying every 4 MiB: sha256 $got, want $want"
    sshc r -i "$KEY_ED25519" carol@127.0.0.1 stats >"$dir/stats.out" 2>"$dir/ssh.err" || fail "stats: $?"
    rk=$(sed -n 's/.* rekeys=\([0-9]*\) .*/\1/p' "$dir/stats.out")
    [ -n "$rk" ] && [ "$rk" -ge 6 ] ||
        fail "the server counted '$rk' rekeys for 32 MiB at --rekey-bytes 4 MiB (want >= 6): $(cat "$dir/stats.out")"
    ok "32 MiB with the server rekeying every 4 MiB: every byte right, $rk rekeys"
    stop_server "$spid" r
    ;;
channels)
    start_server s "$HOST_KEY" --stats
    sock=$dir/cm.sock
    sshm s -o ControlMaster=yes -o ControlPath="$sock" -o ControlPersist=no -N \
        -i "$KEY_ED25519" carol@127.0.0.1 </dev/null 2>"$dir/master.err" &
    mpid=$!
    pids="$pids $mpid"
    wait_for "the ControlMaster socket" "$mpid" test -S "$sock"
    mux() {
        ssh -F /dev/null -o ControlMaster=no -o ControlPath="$sock" -p "$port" carol@127.0.0.1 "$@"
    }
    wait_for "the ControlMaster answering" "$mpid" mux -O check 2>/dev/null
    i=1
    cpids=""
    while [ $i -le 20 ]; do
        head -c $((1000 + i * 4099)) /dev/urandom >"$dir/in.$i"
        mux cat <"$dir/in.$i" >"$dir/out.$i" 2>"$dir/mux.$i.err" &
        cpids="$cpids $!"
        i=$((i + 1))
    done
    for p in $cpids; do
        wait "$p" || fail "a multiplexed ssh cat exited with status $?"
    done
    i=1
    while [ $i -le 20 ]; do
        cmp -s "$dir/in.$i" "$dir/out.$i" || fail "session $i through the ControlMaster: wrong echo"
        i=$((i + 1))
    done
    mux whoami >"$dir/who.out" 2>/dev/null || fail "whoami through the master: $?"
    has "$dir/who.out" "user=carol"
    mux -O exit 2>/dev/null
    wait "$mpid" || true
    ok "20 sessions at once on one connection (ControlMaster), each echo right"

    printf 'hello shell\n' | sshc s -T -i "$KEY_ED25519" carol@127.0.0.1 >"$dir/shell.out" 2>"$dir/ssh.err" ||
        fail "shell: ssh exited with status $?"
    [ "$(cat "$dir/shell.out")" = "hello shell" ] || fail "shell echo: '$(cat "$dir/shell.out")'"
    sshc s -tt -i "$KEY_ED25519" carol@127.0.0.1 whoami </dev/null >"$dir/who.out" 2>"$dir/ssh.err" ||
        fail "whoami with a pty: ssh exited with status $?"
    has "$dir/who.out" "pty=1"
    ok "shell (echo) without a pty; exec with a pty (pty=1)"

    # direct-tcpip to the server's own port: the relay brings its banner.
    sshc s -i "$KEY_ED25519" -W "127.0.0.1:$port" carol@127.0.0.1 </dev/null >"$dir/w.out" 2>"$dir/ssh.err" ||
        fail "ssh -W 127.0.0.1:$port exited with status $?"
    has "$dir/w.out" "SSH-2.0-"
    rc=0
    sshc s -i "$KEY_ED25519" -W "127.0.0.2:$port" carol@127.0.0.1 </dev/null >"$dir/w.out" 2>"$dir/ssh.err" || rc=$?
    [ $rc -ne 0 ] || fail "direct-tcpip to 127.0.0.2 was not refused"
    has "$dir/ssh.err" "administratively prohibited"
    ok "direct-tcpip to 127.0.0.1 relayed ($(head -c 40 "$dir/w.out" | tr -d '\r\n')); 127.0.0.2 refused"
    stop_server "$spid" s
    ;;
*)
    fail "unknown part '$part' (ciphers, auth, rekey, channels)"
    ;;
esac
echo "PASS: $me"
