# Shared by run_ssh_bench.sh and run_sshd_bench.sh (sourced, bash): the
# OpenSSH fixture sshd in a scratch folder, the coil-echo server behind the
# tunnels, and waiting for a line.
#
#   me=run_X_bench; . "$here/sshbench.sh"; bench_sshd_fixture
#   (needs $root, the source tree)

# bench_sshd_fixture: $tmp, a scratch folder; all_pids, stopped (by PID)
# with the fixture's sshd and the folder on exit; tests/ssh/sshd-fixture.sh
# started in $tmp/sshd and its env (SSHD_PORT, SSH_KEY_ED25519, ...) read
# into variables. Exits 2 when the fixture does not start.
bench_sshd_fixture() {
    tmp=$(mktemp -d)
    all_pids=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    sh "$root/tests/ssh/sshd-fixture.sh" start "$tmp/sshd" >"$tmp/fixture.out" 2>&1 ||
        { cat "$tmp/fixture.out" >&2; exit 2; }
    local k v
    while IFS='=' read -r k v; do
        case $k in [A-Z]*) printf -v "$k" '%s' "$v" ;; esac
    done <"$tmp/sshd/env"
}

bench_cleanup() {
    local p
    for p in "${all_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    sh "$root/tests/ssh/sshd-fixture.sh" stop "$tmp/sshd" >/dev/null 2>&1
    rm -rf "$tmp"
}

# wait_line FILE PATTERN PID: until FILE has PATTERN ($bench_wait s at
# most: 30 unless set), or PID is gone; 1 with what FILE holds on stderr if
# not.
wait_line() {
    local tries=$((${bench_wait:-30} * 10))
    for _ in $(seq 1 "$tries"); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || break
        sleep 0.1
    done
    echo "$me: waited in vain for '$2' in $1:" >&2
    cat "$1" >&2
    return 1
}

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# bench_echo_server ECHO_BIN: coil-echo on a free loopback port: $echo_pid,
# $eport. Exits 1 when it does not serve.
bench_echo_server() {
    "$1" serve tcp:0:interface=127.0.0.1 2>"$tmp/echo.err" &
    echo_pid=$!
    all_pids+=("$echo_pid")
    wait_line "$tmp/echo.err" "serving .* on tcp:" "$echo_pid" || exit 1
    eport=$(sed -n 's/.*serving .* on tcp:\([0-9][0-9]*\).*/\1/p' "$tmp/echo.err" | head -n 1)
}
