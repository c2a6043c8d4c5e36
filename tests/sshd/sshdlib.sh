# Shared by run_openssh.sh and run_conch.sh (sourced, POSIX sh): the tools'
# testlib.sh (scratch folder $dir, fail, wait_for: 60 s waits, the last 40
# lines of each *.err on failure), the interop fixture's keys, and the
# server under test (coil_sshd_test_server).
#
#   here=$(cd "$(dirname "$0")" && pwd); me=...
#   . "$here/sshdlib.sh"; sshd_setup NAME FIXTURE_DIR
. "$here/../tools/testlib.sh"
testlib_wait=60
testlib_err_lines=40

# sshd_setup NAME FIXTURE_DIR: FIXTURE_DIR/env (interop-fixture.sh) read
# into shell variables (KEY_ED25519, HOST_KEY, SERVER_BIN, ...), then
# testlib_setup NAME.
sshd_setup() {
    [ -f "$2/env" ] || {
        echo "$me: $2/env is missing: the ctest fixture sshd_interop (interop-fixture.sh) did not run" >&2
        exit 1
    }
    while IFS='=' read -r k v; do
        case $k in [A-Z]*) eval "$k=\$v" ;; esac
    done <"$2/env"
    testlib_setup "$1"
}

# start_server NAME HOSTKEY [ARGS...]: sets $spid $port, writes
# $dir/known_hosts.NAME; the server's stdout/stderr in $dir/NAME.out/.err.
start_server() {
    name=$1
    hk=$2
    shift 2
    "$SERVER_BIN" "$@" "$hk" "$AUTHORIZED_KEYS" >"$dir/$name.out" 2>"$dir/$name.err" &
    spid=$!
    pids="$pids $spid"
    wait_for "the server's 'listening on' line" "$spid" grep -q '^listening on [0-9]' "$dir/$name.out"
    port=$(sed -n 's/^listening on \([0-9][0-9]*\)$/\1/p' "$dir/$name.out")
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$hk.pub")" >"$dir/known_hosts.$name"
}

# stop_server PID NAME: SIGTERM, then it must exit 0 (under ASan: no leak,
# no error) and have logged nothing alarming.
stop_server() {
    kill -TERM "$1" 2>/dev/null || fail "$2: the server is gone already"
    rc=0
    wait "$1" || rc=$?
    [ $rc -eq 0 ] || fail "$2: the server exited with status $rc after SIGTERM"
    if grep -q -e 'AddressSanitizer' -e 'runtime error:' -e 'LeakSanitizer' "$dir/$2.err"; then
        fail "$2: the sanitizers reported errors (see $dir/$2.err)"
    fi
}
