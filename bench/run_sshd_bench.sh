#!/usr/bin/env bash
# The issue-12 SSH server comparison in one run: coil's SSH server
# (tests/sshd/coil_sshd_test_server, the interop tests' server) against
# OpenSSH's sshd (tests/ssh/sshd-fixture.sh's throwaway one: loopback, its
# own config and keys, started by this script, as root when run as root),
# with the same OpenSSH client, the same cipher (chacha20-poly1305@openssh.com,
# then aes128-gcm@openssh.com), kex curve25519-sha256 and host key
# ssh-ed25519 forced on both, and an ed25519 user key.
#
#   bench/run_sshd_bench.sh [BUILD_DIR]          (default BUILD_DIR: build)
#
# Environment: BENCH_SECONDS (default 4), RUNS (default 3; medians),
# CIPHERS (default "chacha20-poly1305@openssh.com aes128-gcm@openssh.com"),
# SERVERS (default "coil sshd"), CAT_MB (default 256: MiB through exec cat),
# CONN_WORKERS (default 2: ssh loops in parallel for the connection rate).
#
# Loads, each on its own fresh SSH connection(s):
#   stream   ssh -N -L to a coil-echo server behind the SSH server
#            (direct-tcpip), coil-bench stream c=1 s=64k: MB/s echoed
#   echo     the same tunnel, coil-bench echo c=10 s=64: requests/s
#   cat      dd of CAT_MB MiB | ssh HOST cat | wc -c: MB/s through exec
#            `cat` (each byte crosses the connection twice)
#   connect  CONN_WORKERS loops of `ssh HOST 'exit 0'` (kex + auth + one
#            exec + close): connections/s
# Server CPU: utime+stime+cutime+cstime of the server process from
# /proc/PID/stat (fields 14-17), read before the load's connection is made
# and again after it is closed and, for sshd, after every per-connection
# child is gone (pgrep -P LISTENER empty): sshd's listener reaps its
# per-connection monitors, which reap their session children, which reap
# the shell and `cat`, so the listener's cutime+cstime holds all of them.
# coil's server is one process (children: none). The figures thus include
# each load's connection setup (kex, auth, channel open, a few ms) and the
# drain after coil-bench's window: small against seconds of load.
# Output: Markdown on stdout for BENCHMARKS.md; progress on stderr.
# Everything started here is stopped by PID on exit.
set -uo pipefail

build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
case $build in /*) ;; *) build=$root/$build ;; esac
seconds=${BENCH_SECONDS:-4}
runs=${RUNS:-3}
ciphers=${CIPHERS:-chacha20-poly1305@openssh.com aes128-gcm@openssh.com}
servers=${SERVERS:-coil sshd}
cat_mb=${CAT_MB:-256}
conn_workers=${CONN_WORKERS:-2}
bench=$build/tools/coil-bench
echo_bin=$build/tools/coil-echo
coil_server=$build/tests/sshd/coil_sshd_test_server
for b in "$bench" "$echo_bin" "$coil_server"; do
    [ -x "$b" ] || { echo "run_sshd_bench: $b is not built" >&2; exit 2; }
done
for t in ssh ssh-keygen pgrep ss; do
    command -v "$t" >/dev/null || { echo "run_sshd_bench: $t is missing" >&2; exit 2; }
done

me=run_sshd_bench
bench_wait=60
# shellcheck source=sshbench.sh source-path=SCRIPTDIR
. "$here/sshbench.sh"
bench_sshd_fixture
say() { echo "$*" >&2; }

# ---- the servers --------------------------------------------------------------------
bench_echo_server "$echo_bin"

declare -A spid=() sport=() skh=() suser=()
# coil: the interop tests' server, the fixture's authorized_keys, a fresh
# host key.
"$coil_server" "$tmp/coil_host_ed25519" "$SSH_AUTHORIZED_KEYS" >"$tmp/coil.out" 2>"$tmp/coil.err" &
spid[coil]=$!
all_pids+=("${spid[coil]}")
wait_line "$tmp/coil.out" "^listening on" "${spid[coil]}" || exit 1
sport[coil]=$(sed -n 's/^listening on //p' "$tmp/coil.out")
printf '[127.0.0.1]:%s %s\n' "${sport[coil]}" \
    "$(ssh-keygen -y -f "$tmp/coil_host_ed25519" | cut -d' ' -f1,2)" >"$tmp/coil.kh"
skh[coil]=$tmp/coil.kh
suser[coil]=bench
spid[sshd]=$SSHD_PID
sport[sshd]=$SSHD_PORT
skh[sshd]=$SSH_KNOWN_HOSTS
suser[sshd]=$SSH_USER

# ---- measuring ----------------------------------------------------------------------
# cpu PID: utime+stime+cutime+cstime in clock ticks.
cpu() {
    local line rest
    read -r line <"/proc/$1/stat" || { echo 0; return; }
    rest=${line##*) }
    read -r -a f <<<"$rest"
    echo $((f[11] + f[12] + f[13] + f[14]))
}
own_cpu() {
    local line rest
    read -r line <"/proc/$1/stat" || { echo 0; return; }
    rest=${line##*) }
    read -r -a f <<<"$rest"
    echo $((f[11] + f[12]))
}
hz=$(getconf CLK_TCK)

# settle NAME: until the server has no connection left (and sshd no child).
settle() {
    local i
    for i in $(seq 1 600); do
        if [ -z "$(ss -Htn state established "( sport = :${sport[$1]} )" 2>/dev/null)" ] &&
            { [ "$1" != sshd ] || ! pgrep -P "${spid[$1]}" >/dev/null; }; then
            return 0
        fi
        sleep 0.05
    done
    say "run_sshd_bench: $1 still has connections or children after 30 s"
    return 1
}

# ssh_args NAME CIPHER: the ssh options for server NAME in ${sa[@]}.
ssh_args() {
    sa=(-F /dev/null -o BatchMode=yes -o UserKnownHostsFile="${skh[$1]}"
        -o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null
        -o IdentitiesOnly=yes -i "$SSH_KEY_ED25519" -o ControlMaster=no -o ControlPath=none
        -o KexAlgorithms=curve25519-sha256 -o HostKeyAlgorithms=ssh-ed25519 -c "$2"
        -p "${sport[$1]}")
}
sshx() { # NAME CIPHER COMMAND
    local sa
    ssh_args "$1" "$2"
    ssh "${sa[@]}" "${suser[$1]}@127.0.0.1" "$3"
}


results=$tmp/results.tsv
: >"$results"
failures=0
record() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$results"; } # NAME CIPHER LOAD k=v...

# tunnel_load NAME CIPHER LOAD MODE CONNS SIZE
tunnel_load() {
    local n=$1 c=$2 load=$3 mode=$4 conns=$5 size=$6 lp tp c0 o0 c1 o1 out line
    settle "$n" || return 1
    c0=$(cpu "${spid[$n]}")
    o0=$(own_cpu "${spid[$n]}")
    lp=$(free_port)
    ssh_args "$n" "$c"
    ssh "${sa[@]}" -N -v -o ExitOnForwardFailure=yes -L "127.0.0.1:$lp:127.0.0.1:$eport" \
        "${suser[$n]}@127.0.0.1" 2>"$tmp/tunnel.err" &
    tp=$!
    wait_line "$tmp/tunnel.err" "Local forwarding listening on 127.0.0.1 port $lp" "$tp" || return 1
    grep -q "kex: server->client cipher: $c" "$tmp/tunnel.err" ||
        { say "   $n: the tunnel did not negotiate $c"; kill "$tp"; return 1; }
    out=$("$bench" "$mode" "tcp:127.0.0.1:$lp" -c "$conns" -s "$size" -d "$seconds" -w 0 -q 2>"$tmp/err")
    kill -TERM "$tp" 2>/dev/null
    wait "$tp" 2>/dev/null
    settle "$n" || return 1
    c1=$(cpu "${spid[$n]}")
    o1=$(own_cpu "${spid[$n]}")
    line=$(grep '^RESULT' <<<"$out" | tail -n 1)
    [ -n "$line" ] || { say "   $n $c $load FAILED: $(cat "$tmp/err")"; return 1; }
    record "$n" "$c" "$load" "${line#RESULT } cpu_ticks=$((c1 - c0)) own_ticks=$((o1 - o0))"
    say "   $n $c $load: ${line#RESULT } server CPU $(((c1 - c0) * 1000 / hz)) ms (own $(((o1 - o0) * 1000 / hz)) ms)"
}

cat_load() { # NAME CIPHER
    local n=$1 c=$2 c0 o0 c1 o1 t0 t1 got
    settle "$n" || return 1
    c0=$(cpu "${spid[$n]}")
    o0=$(own_cpu "${spid[$n]}")
    t0=$EPOCHREALTIME
    got=$(dd if=/dev/zero bs=64k count=$((cat_mb * 16)) 2>/dev/null |
        sshx "$n" "$c" cat 2>"$tmp/cat.err" | wc -c)
    t1=$EPOCHREALTIME
    settle "$n" || return 1
    c1=$(cpu "${spid[$n]}")
    o1=$(own_cpu "${spid[$n]}")
    [ "$got" = $((cat_mb * 1048576)) ] ||
        { say "   $n $c cat FAILED: $got bytes back: $(cat "$tmp/cat.err")"; return 1; }
    record "$n" "$c" cat "bytes=$got seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') cpu_ticks=$((c1 - c0)) own_ticks=$((o1 - o0))"
    say "   $n $c cat: $got bytes in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s, server CPU $(((c1 - c0) * 1000 / hz)) ms (own $(((o1 - o0) * 1000 / hz)) ms)"
}

conn_load() { # NAME CIPHER
    local n=$1 c=$2 c0 o0 c1 o1 t0 t1 w total=0 bad=0 end wpids=()
    settle "$n" || return 1
    c0=$(cpu "${spid[$n]}")
    o0=$(own_cpu "${spid[$n]}")
    t0=$EPOCHREALTIME
    end=$(awk -v a="$t0" -v s="$seconds" 'BEGIN { printf "%.6f", a + s }')
    for w in $(seq 1 "$conn_workers"); do
        (
            k=0
            while awk -v now="$EPOCHREALTIME" -v end="$end" 'BEGIN { exit !(now < end) }'; do
                sshx "$n" "$c" 'exit 0' </dev/null 2>>"$tmp/conn.err" >/dev/null || { echo "bad"; exit 1; }
                k=$((k + 1))
            done
            echo "$k"
        ) >"$tmp/conn.$w" &
        wpids+=($!)
    done
    wait "${wpids[@]}"
    t1=$EPOCHREALTIME
    settle "$n" || return 1
    c1=$(cpu "${spid[$n]}")
    o1=$(own_cpu "${spid[$n]}")
    for w in $(seq 1 "$conn_workers"); do
        v=$(cat "$tmp/conn.$w")
        case $v in '' | *[!0-9]*) bad=1 ;; *) total=$((total + v)) ;; esac
    done
    [ $bad = 0 ] || { say "   $n $c connect FAILED: $(tail -n 3 "$tmp/conn.err")"; return 1; }
    record "$n" "$c" connect "connections=$total seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') cpu_ticks=$((c1 - c0)) own_ticks=$((o1 - o0))"
    say "   $n $c connect: $total connections, server CPU $(((c1 - c0) * 1000 / hz)) ms (own $(((o1 - o0) * 1000 / hz)) ms)"
}

for run in $(seq 1 "$runs"); do
    for c in $ciphers; do
        for n in $servers; do
            say "== run $run, $n, $c"
            tunnel_load "$n" "$c" stream stream 1 64k || failures=$((failures + 1))
            tunnel_load "$n" "$c" echo echo 10 64 || failures=$((failures + 1))
            cat_load "$n" "$c" || failures=$((failures + 1))
            conn_load "$n" "$c" || failures=$((failures + 1))
        done
    done
done

cmdline="BENCH_SECONDS=$seconds RUNS=$runs CAT_MB=$cat_mb CONN_WORKERS=$conn_workers bench/run_sshd_bench.sh ${1:-build}"
cpuname=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
/usr/bin/python3 - "$results" "$cmdline" "$cpuname" "$(nproc)" "$(ssh -V 2>&1 | head -n 1)" "$hz" "$ciphers" "$servers" <<'PY'
import statistics, sys
results, cmdline, cpuname, ncpu, sshv, hz, ciphers, servers = sys.argv[1:]
hz = float(hz)
ciphers = ciphers.split()
servers = servers.split()
rows = {}
for line in open(results):
    name, cipher, load, res = line.rstrip("\n").split("\t")
    kv = dict(p.split("=", 1) for p in res.split() if "=" in p)
    rows.setdefault((name, cipher, load), []).append(kv)

def med(name, cipher, load, f):
    r = rows.get((name, cipher, load))
    if not r:
        return None
    return statistics.median(f(k) for k in r)

def cpu_s(k):
    return float(k["cpu_ticks"]) / hz

figs = {}
for n in servers:
    for c in ciphers:
        figs[(n, c)] = {
            "stream": med(n, c, "stream", lambda k: float(k["mbps"])),
            "stream_cpu": med(n, c, "stream", lambda k: cpu_s(k) * 1e6 / (float(k["bytes"]) / 1e6)),
            "cat": med(n, c, "cat", lambda k: float(k["bytes"]) / 1e6 / float(k["seconds"])),
            "cat_cpu": med(n, c, "cat", lambda k: cpu_s(k) * 1e6 / (float(k["bytes"]) / 1e6)),
            "echo": med(n, c, "echo", lambda k: float(k["rps"])),
            "echo_cpu": med(n, c, "echo", lambda k: cpu_s(k) * 1e6 / float(k["requests"])),
            "conn": med(n, c, "connect", lambda k: float(k["connections"]) / float(k["seconds"])),
            "conn_cpu": med(n, c, "connect", lambda k: cpu_s(k) * 1e3 / float(k["connections"])),
            "own": med(n, c, "connect", lambda k: float(k["own_ticks"]) / max(float(k["cpu_ticks"]), 1)),
        }

def fmt(v, f="%.0f"):
    return "—" if v is None else f % v

title = {"coil": "coil (coil_sshd_test_server)", "sshd": "OpenSSH sshd"}
print("Command: `%s`" % cmdline)
print()
print("Machine: %s, %s CPUs, nothing pinned (the ssh clients, coil-bench, the servers and the"
      " coil-echo server share them). Client: %s, kex curve25519-sha256, host key ssh-ed25519,"
      " ed25519 user key, on both servers. Medians of the runs. Server CPU = utime+stime+cutime+cstime"
      " of the server process (sshd: its listener, after every per-connection child was reaped),"
      " from before each load's connection to after it closed; MB = 10^6 bytes echoed." % (cpuname, ncpu, sshv))
print()
print("| server | cipher | stream MB/s | CPU µs/MB | exec cat MB/s | CPU µs/MB | echo req/s | CPU µs/req | conn/s | CPU ms/conn |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in ciphers:
    for n in servers:
        f = figs[(n, c)]
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            title.get(n, n), c, fmt(f["stream"]), fmt(f["stream_cpu"]), fmt(f["cat"]),
            fmt(f["cat_cpu"]), fmt(f["echo"]), fmt(f["echo_cpu"], "%.1f"), fmt(f["conn"], "%.1f"),
            fmt(f["conn_cpu"], "%.2f")))
if "coil" in servers and "sshd" in servers:
    print()
    print("Ratios coil / sshd with the same cipher (rates: higher is better for coil; CPU: lower"
          " is better for coil, the goal is <= 1.00):")
    print()
    print("| cipher | stream MB/s | CPU/MB | cat MB/s | CPU/MB | echo req/s | CPU/req | conn/s | CPU/conn |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in ciphers:
        a, b = figs[("coil", c)], figs[("sshd", c)]
        r = lambda k: "—" if a[k] is None or not b[k] else "%.2f" % (a[k] / b[k])
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            c, r("stream"), r("stream_cpu"), r("cat"), r("cat_cpu"), r("echo"), r("echo_cpu"),
            r("conn"), r("conn_cpu")))
    own = figs[("sshd", ciphers[0])]["own"]
    if own is not None:
        print()
        print("sshd's listener itself used %.0f%% of the sshd CPU counted for the connection"
              " load (%s); the rest is its reaped per-connection children." % (own * 100, ciphers[0]))
PY
[ "$failures" -eq 0 ] || { echo "run_sshd_bench: $failures failed load(s)" >&2; exit 1; }
