#!/bin/sh
# A throwaway OpenSSH sshd and ssh-agent for coil's SSH tests (Contract A in
# the SSH plan). Never touches the machine's own sshd, host keys, accounts or
# ~/.ssh: everything lives in DIR, sshd listens on a free high port on
# 127.0.0.1 with its own config, host keys, authorized_keys and pid file.
#
#   sh sshd-fixture.sh start DIR   make keys, start sshd + ssh-agent, wait
#                                  until sshd accepts, write DIR/env
#   sh sshd-fixture.sh stop DIR    stop both (by their PIDs) and check they
#                                  are gone
# (COIL_SSHD=/abs/path/sshd picks another sshd binary.)
#
# DIR/env holds KEY=VALUE lines (no quotes, absolute paths):
#   SSHD_HOST SSHD_PORT SSHD_PID SSHD_CONFIG SSHD_LOG SSHD_BIN
#   SSH_USER                  the user to log in as (the current user)
#   SSH_KNOWN_HOSTS           known_hosts with every host key as [127.0.0.1]:PORT
#   SSH_KEY_ED25519 SSH_KEY_ECDSA   unencrypted user keys (OpenSSH format,
#                             .pub beside), in authorized_keys
#   SSH_KEY_ED25519_PASS SSH_KEY_PASSPHRASE   an encrypted ed25519 key in
#                             authorized_keys, and its passphrase
#   SSH_KEY_RSA               an RSA key in authorized_keys (libssh2 1.10 signs
#                             ssh-rsa/SHA-1 only: sshd 8.8+ refuses it)
#   SSH_KEY_UNLISTED          an ed25519 key not in authorized_keys
#   SSH_AUTH_SOCK_TEST SSH_AGENT_PID   a throwaway agent holding SSH_KEY_ED25519 only
#   SSH_OTHER_HOST_PUB        a .pub host key the server does not have, of the
#                             type of its ecdsa key (for "host key changed")
# and, for checking what a client reports:
#   SSHD_HOST_KEY_ED25519_PUB SSHD_HOST_KEY_ECDSA_PUB   the server's public host keys
#   SSHD_FP_ED25519 SSHD_FP_ECDSA   their SHA256 fingerprints (ssh-keygen -l)
#   SSH_OTHER_HOST_FP         the fingerprint of SSH_OTHER_HOST_PUB
#   SSH_FP_ED25519 SSH_FP_ECDSA SSH_FP_RSA SSH_FP_UNLISTED   user keys' fingerprints
#   SSH_AUTHORIZED_KEYS       the authorized_keys file
#
# Run as root, sshd needs its privilege-separation directory /run/sshd (made
# here when missing, mode 0755, as Debian's own unit does). Run as another
# user, sshd runs unprivileged and only that user can log in.
# Without a working sshd this FAILS (it never skips): install openssh-server
# and openssh-client (tools/install-deps).
set -eu

usage() {
    echo "usage: sshd-fixture.sh start|stop DIR" >&2
    exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
me="sshd-fixture.sh"

fail() {
    echo "$me: $*" >&2
    exit 1
}

# The value of KEY in DIR/env ("" when absent).
envval() {
    [ -f "$dir/env" ] || return 0
    sed -n "s/^$1=//p" "$dir/env" | head -n 1
}

# PID runs (a zombie waiting for its reaper counts as gone).
alive() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
    if [ -r "/proc/$1/stat" ]; then
        st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
        [ "$st" != Z ] || return 1
    fi
    return 0
}

# stop_pid PID NAME: TERM, wait up to 5 s, then KILL; fails if it lives on.
stop_pid() {
    pid=$1
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    i=0
    while alive "$pid" && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.1
    fi
    if alive "$pid"; then
        echo "$me: $2 (pid $pid) did not stop" >&2
        return 1
    fi
    return 0
}

do_stop() {
    [ -d "$dir" ] || return 0
    rc=0
    spid=$(envval SSHD_PID)
    [ -n "$spid" ] || { [ -f "$dir/sshd.pid.start" ] && spid=$(cat "$dir/sshd.pid.start"); } || true
    apid=$(envval SSH_AGENT_PID)
    [ -n "$apid" ] || { [ -f "$dir/agent.pid.start" ] && apid=$(cat "$dir/agent.pid.start"); } || true
    # Only our own processes: the PIDs this script started, checked to be
    # sshd / ssh-agent still (a PID may have been reused since).
    if [ -n "$spid" ] && alive "$spid"; then
        if grep -q sshd "/proc/$spid/cmdline" 2>/dev/null || [ ! -d /proc ]; then
            stop_pid "$spid" sshd || rc=1
        fi
    fi
    if [ -n "$apid" ] && alive "$apid"; then
        if grep -q ssh-agent "/proc/$apid/cmdline" 2>/dev/null || [ ! -d /proc ]; then
            stop_pid "$apid" ssh-agent || rc=1
        fi
    fi
    rm -f "$dir/agent.sock" "$dir/sshd.pid.start" "$dir/agent.pid.start"
    return $rc
}

if [ "$cmd" = stop ]; then
    do_stop
    exit $?
fi
[ "$cmd" = start ] || usage

# ---- what we need -------------------------------------------------------------
# $COIL_SSHD names another sshd binary (absolute path) to use instead.
sshd_bin=
if [ -n "${COIL_SSHD:-}" ]; then
    case $COIL_SSHD in /*) ;; *) fail "COIL_SSHD must be an absolute path (sshd re-executes itself): $COIL_SSHD" ;; esac
    [ -x "$COIL_SSHD" ] || fail "COIL_SSHD=$COIL_SSHD is not an executable sshd"
    sshd_bin=$COIL_SSHD
fi
for c in /usr/sbin/sshd /usr/local/sbin/sshd $(command -v sshd 2>/dev/null || true); do
    [ -z "$sshd_bin" ] || break
    case $c in /*) ;; *) continue ;; esac
    if [ -x "$c" ]; then
        sshd_bin=$c
    fi
done
[ -n "$sshd_bin" ] ||
    fail "OpenSSH's sshd is not installed (looked for /usr/sbin/sshd and sshd on PATH): install the Debian package 'openssh-server' (tools/install-deps). The SSH tests need it; they do not skip."
for t in ssh-keygen ssh-agent ssh-add; do
    command -v "$t" >/dev/null 2>&1 ||
        fail "'$t' is missing: install the Debian package 'openssh-client' (tools/install-deps)"
done

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# A previous run's processes, if any, go first.
do_stop || true
rm -rf "$dir/keys" "$dir/env" "$dir/env.tmp" "$dir/sshd_config" "$dir/sshd.log" \
    "$dir/agent.log" "$dir/known_hosts" "$dir/authorized_keys" "$dir/sshd.pid"
mkdir -p "$dir/keys"
chmod 700 "$dir/keys"
k=$dir/keys

user=$(id -un)
uid=$(id -u)
if [ "$uid" -eq 0 ] && [ ! -d /run/sshd ]; then
    # sshd's privilege-separation chroot: an empty root-owned directory,
    # the one Debian's ssh.service makes too (RuntimeDirectory=sshd).
    mkdir -p /run/sshd && chmod 0755 /run/sshd ||
        fail "cannot create /run/sshd, which sshd needs when run as root"
fi

# ---- keys ---------------------------------------------------------------------------
kg() { ssh-keygen -q "$@" </dev/null >/dev/null || fail "ssh-keygen $* failed"; }
kg -t ed25519 -N '' -C coil-test-host -f "$k/ssh_host_ed25519_key"
kg -t ecdsa -b 256 -N '' -C coil-test-host -f "$k/ssh_host_ecdsa_key"
kg -t ecdsa -b 256 -N '' -C coil-test-other-host -f "$k/other_host_ecdsa_key"
kg -t ed25519 -N '' -C coil-test-ed25519 -f "$k/id_ed25519"
kg -t ecdsa -b 256 -N '' -C coil-test-ecdsa -f "$k/id_ecdsa"
passphrase="coil test passphrase"
kg -t ed25519 -N "$passphrase" -C coil-test-ed25519-pass -f "$k/id_ed25519_pass"
kg -t rsa -b 2048 -N '' -C coil-test-rsa -f "$k/id_rsa"
kg -t ed25519 -N '' -C coil-test-unlisted -f "$k/id_unlisted"
cat "$k/id_ed25519.pub" "$k/id_ecdsa.pub" "$k/id_ed25519_pass.pub" "$k/id_rsa.pub" \
    >"$dir/authorized_keys"
chmod 600 "$dir/authorized_keys"

fp() { ssh-keygen -l -E sha256 -f "$1" | awk '{ print $2 }'; }

# ---- sshd ------------------------------------------------------------------------
write_config() {
    cat >"$dir/sshd_config" <<EOF
# coil test sshd: throwaway, loopback only; made by tests/ssh/sshd-fixture.sh
ListenAddress 127.0.0.1
Port $1
AddressFamily inet
HostKey $k/ssh_host_ed25519_key
HostKey $k/ssh_host_ecdsa_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
AuthorizedPrincipalsFile none
UsePAM no
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
PermitRootLogin prohibit-password
PermitEmptyPasswords no
PermitUserEnvironment no
PermitUserRC no
AllowTcpForwarding yes
AllowStreamLocalForwarding no
GatewayPorts no
X11Forwarding no
AllowAgentForwarding no
PermitTunnel no
PrintMotd no
PrintLastLog no
Banner none
UseDNS no
Compression no
MaxStartups 200
MaxSessions 1100
MaxAuthTries 10
LoginGraceTime 60
ClientAliveInterval 0
Subsystem sftp internal-sftp
LogLevel VERBOSE
# Sessions run the user's login shell; Debian's bash sources ~/.bashrc when
# started by sshd (SSH_CLIENT set, SHLVL < 2). A user's rc (pyenv init takes
# a lock shared by every shell) made commands wait up to a minute on a busy
# machine: with SHLVL=1 inherited, bash skips it and commands start at once.
SetEnv SHLVL=1
EOF
}

# A port in 20000..59999 that nothing listens on now; sshd's own bind is the
# real test (another process may take it first: then we try another).
pick_port() {
    while :; do
        n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
        p=$((20000 + n % 40000))
        if command -v nc >/dev/null 2>&1 && nc -z 127.0.0.1 "$p" 2>/dev/null; then
            continue
        fi
        echo "$p"
        return
    done
}

log=$dir/sshd.log
port=
spid=
attempt=0
while [ $attempt -lt 10 ]; do
    attempt=$((attempt + 1))
    p=$(pick_port)
    write_config "$p"
    : >"$log"
    # Check the config first: a bad one says why at once.
    if ! out=$("$sshd_bin" -t -f "$dir/sshd_config" 2>&1); then
        fail "sshd rejects its test config $dir/sshd_config: $out"
    fi
    "$sshd_bin" -D -E "$log" -f "$dir/sshd_config" </dev/null >>"$log" 2>&1 &
    spid=$!
    echo "$spid" >"$dir/sshd.pid.start"
    # Wait (bounded, 60 s: CI machines are slow and loaded) until it says it
    # listens, or it dies. Polls the log: the 0.1 s sleeps are the poll interval.
    i=0
    state=wait
    while [ $i -lt 600 ]; do
        if grep -q "Server listening on 127.0.0.1 port $p" "$log" 2>/dev/null; then
            state=up
            break
        fi
        if ! alive "$spid"; then
            state=dead
            break
        fi
        sleep 0.1
        i=$((i + 1))
    done
    if [ $state = up ]; then
        port=$p
        break
    fi
    if [ $state = dead ] && grep -qi "address already in use" "$log"; then
        echo "$me: port $p taken, trying another" >&2
        continue
    fi
    stop_pid "$spid" sshd || true
    echo "$me: sshd ($sshd_bin) did not start on 127.0.0.1:$p ($state); the end of $log:" >&2
    tail -n 20 "$log" >&2
    exit 1
done
[ -n "$port" ] || fail "sshd found no free port in $attempt tries; the end of $log: $(tail -n 5 "$log")"

# It listens; check it accepts (and speaks SSH) when nc is there.
if command -v nc >/dev/null 2>&1; then
    i=0
    while ! nc -z 127.0.0.1 "$port" 2>/dev/null; do
        i=$((i + 1))
        if [ $i -ge 600 ] || ! alive "$spid"; then
            stop_pid "$spid" sshd || true
            echo "$me: sshd logged that it listens on 127.0.0.1:$port but does not accept; the end of $log:" >&2
            tail -n 20 "$log" >&2
            exit 1
        fi
        sleep 0.1
    done
fi

{
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$k/ssh_host_ed25519_key.pub")"
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$k/ssh_host_ecdsa_key.pub")"
} >"$dir/known_hosts"

# ---- ssh-agent ---------------------------------------------------------------------
sock=$dir/agent.sock
rm -f "$sock"
ssh-agent -D -a "$sock" </dev/null >"$dir/agent.log" 2>&1 &
apid=$!
echo "$apid" >"$dir/agent.pid.start"
i=0
while [ ! -S "$sock" ]; do
    i=$((i + 1))
    if [ $i -ge 600 ] || ! alive "$apid"; then
        do_stop || true
        fail "ssh-agent did not create $sock: $(cat "$dir/agent.log")"
    fi
    sleep 0.1
done
if ! out=$(SSH_AUTH_SOCK=$sock ssh-add "$k/id_ed25519" 2>&1 </dev/null); then
    do_stop || true
    fail "ssh-add to the test agent failed: $out"
fi

# ---- env ------------------------------------------------------------------------------
cat >"$dir/env.tmp" <<EOF
SSHD_HOST=127.0.0.1
SSHD_PORT=$port
SSHD_PID=$spid
SSHD_CONFIG=$dir/sshd_config
SSHD_LOG=$log
SSHD_BIN=$sshd_bin
SSH_USER=$user
SSH_KNOWN_HOSTS=$dir/known_hosts
SSH_AUTHORIZED_KEYS=$dir/authorized_keys
SSH_KEY_ED25519=$k/id_ed25519
SSH_KEY_ECDSA=$k/id_ecdsa
SSH_KEY_ED25519_PASS=$k/id_ed25519_pass
SSH_KEY_PASSPHRASE=$passphrase
SSH_KEY_RSA=$k/id_rsa
SSH_KEY_UNLISTED=$k/id_unlisted
SSH_AUTH_SOCK_TEST=$sock
SSH_AGENT_PID=$apid
SSH_OTHER_HOST_PUB=$k/other_host_ecdsa_key.pub
SSH_OTHER_HOST_FP=$(fp "$k/other_host_ecdsa_key.pub")
SSHD_HOST_KEY_ED25519_PUB=$k/ssh_host_ed25519_key.pub
SSHD_HOST_KEY_ECDSA_PUB=$k/ssh_host_ecdsa_key.pub
SSHD_FP_ED25519=$(fp "$k/ssh_host_ed25519_key.pub")
SSHD_FP_ECDSA=$(fp "$k/ssh_host_ecdsa_key.pub")
SSH_FP_ED25519=$(fp "$k/id_ed25519.pub")
SSH_FP_ECDSA=$(fp "$k/id_ecdsa.pub")
SSH_FP_RSA=$(fp "$k/id_rsa.pub")
SSH_FP_UNLISTED=$(fp "$k/id_unlisted.pub")
EOF
mv "$dir/env.tmp" "$dir/env"
rm -f "$dir/sshd.pid.start" "$dir/agent.pid.start"
echo "$me: sshd (pid $spid) on 127.0.0.1:$port as $user, agent (pid $apid) at $sock; see $dir/env"
