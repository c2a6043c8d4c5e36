#!/usr/bin/env bash
# The issue-3 echo comparison in one run: coil's echo server against libuv,
# libevent and Twisted peers, driven by coil-bench.
#
#   bench/run_echo_bench.sh [BUILD_DIR]          (default BUILD_DIR: build)
#
# Environment:
#   BENCH_SECONDS  measured seconds per run (default 5)
#   RUNS           runs per cell; medians are reported (default 3)
#   WARMUP         seconds of the separate warm-up run before each cell (default 1)
#   IDLE_CONNS     idle connections for the RSS test (default 10000; 0 skips it)
#   SERVERS        which servers (default "coil libuv libevent twisted")
#   PIN            1 (default, with 2+ CPUs): server on CPU 0, coil-bench on CPU 1
#
# For every load (echo c=1 s=64, echo c=1 s=16k, echo c=100 s=64, echo c=100
# s=16k, stream c=1 s=64k) every server is started on a free loopback port and
# warmed up by a short coil-bench run; then RUNS rounds measure each server in
# turn (so a burst of background load hits all servers alike) with
# `coil-bench ... -w 0 --cpu-pid SERVER_PID`: coil-bench reads the server's
# utime+stime from /proc/PID/stat at the two edges of its measured window, so
# the CPU figures cover exactly the requests counted. Then, on a fresh server
# each, IDLE_CONNS idle connections are opened (coil-bench idle) and the
# growth of the server's VmRSS is divided by their number.
#
# Output: a Markdown report on stdout, ready for BENCHMARKS.md; progress and
# errors on stderr. Exits non-zero when a run failed.
set -uo pipefail

build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
case $build in /*) ;; *) build=$root/$build ;; esac
seconds=${BENCH_SECONDS:-5}
runs=${RUNS:-3}
warmup=${WARMUP:-1}
idle_conns=${IDLE_CONNS:-10000}
servers=${SERVERS:-coil libuv libevent twisted}
py=/usr/bin/python3 # Debian's interpreter, the one with python3-twisted
bench=$build/tools/coil-bench

loads=("echo 1 64" "echo 1 16k" "echo 100 64" "echo 100 16k" "stream 1 64k")

if [ ! -x "$bench" ]; then
    echo "run_echo_bench: $bench is not built (tools/build $build)" >&2
    exit 2
fi

tmp=$(mktemp -d)
server_pid=
client_pid=
all_pids=() # every server started, for the exit trap
cleanup() {
    [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null && wait "$client_pid" 2>/dev/null
    local p
    for p in "${all_pids[@]}"; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Enough descriptors for the idle test, on both sides.
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt $((idle_conns + 200)) ]; then
    echo "run_echo_bench: ulimit -Hn is $hard: idle test reduced to $((hard - 200)) connections" >&2
    idle_conns=$((hard - 200))
fi
ulimit -n "$hard" 2>/dev/null || true

pin_server=()
pin_client=()
if [ "${PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    pin_server=(taskset -c 0)
    pin_client=(taskset -c 1)
fi

server_cmd() { # NAME -> the command line in the array `cmd`, or return 1
    case $1 in
    coil) cmd=("$build/tools/coil-echo" serve tcp:0:interface=127.0.0.1) ;;
    libuv) cmd=("$build/bench/uv_echo" 0 127.0.0.1) ;;
    libevent) cmd=("$build/bench/event_echo" 0 127.0.0.1) ;;
    twisted) cmd=("$py" "$here/twisted_echo.py" 0 127.0.0.1) ;;
    *) return 1 ;;
    esac
    if [ "$1" = twisted ]; then
        "$py" -c 'import twisted' 2>/dev/null
    else
        [ -x "${cmd[0]}" ]
    fi
}

# start_server NAME: sets server_pid and port. The servers print their
# address ("listening on 127.0.0.1:PORT pid PID", or coil-echo's "serving
# echo on tcp:PORT (127.0.0.1:PORT)").
start_server() {
    local cmd
    server_cmd "$1" || return 1
    "${pin_server[@]}" "${cmd[@]}" >"$tmp/server-$1.out" 2>&1 &
    server_pid=$!
    all_pids+=("$server_pid")
    port=
    local i
    for i in $(seq 1 100); do
        port=$(sed -n 's/.*127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$tmp/server-$1.out" | head -n 1)
        [ -n "$port" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "run_echo_bench: $1 did not start:" >&2
    sed 's/^/    /' "$tmp/server-$1.out" >&2
    stop_server
    return 1
}

stop_server() {
    [ -n "$server_pid" ] || return 0
    kill -TERM "$server_pid" 2>/dev/null
    local i
    for i in $(seq 1 50); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    server_pid=
}

failures=0
results=$tmp/results.tsv # server mode conns size run rps mbps requests bytes cpu_s p50 p99
idle=$tmp/idle.tsv       # server conns rss_before_kb rss_after_kb
: >"$results"
: >"$idle"

field() { # KEY RESULT_LINE
    sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"
}

# The loads: every server of a load runs at once (an idle server costs no
# CPU), and the runs go round the servers in turn, so a burst of background
# load on the machine hits every server alike instead of one.
for load in "${loads[@]}"; do
    read -r mode conns size <<<"$load"
    declare -A pids=() ports=()
    up=()
    for name in $servers; do
        if start_server "$name"; then
            pids[$name]=$server_pid
            ports[$name]=$port
            up+=("$name")
        else
            echo "run_echo_bench: $name: skipped (not built or failed to start)" >&2
        fi
        server_pid=
    done
    for name in "${up[@]}"; do
        echo "== $name $mode c=$conns s=$size: warm-up (pid ${pids[$name]}, port ${ports[$name]})" >&2
        if ! "${pin_client[@]}" "$bench" "$mode" "tcp:127.0.0.1:${ports[$name]}" \
            -c "$conns" -s "$size" -d "$warmup" -w 0 -q >/dev/null 2>"$tmp/err"; then
            echo "   warm-up FAILED:" >&2
            sed 's/^/    /' "$tmp/err" >&2
            failures=$((failures + 1))
        fi
    done
    for run in $(seq 1 "$runs"); do
        for name in "${up[@]}"; do
            out=$("${pin_client[@]}" "$bench" "$mode" "tcp:127.0.0.1:${ports[$name]}" \
                -c "$conns" -s "$size" -d "$seconds" -w 0 -q \
                --cpu-pid "${pids[$name]}" 2>"$tmp/err")
            rc=$?
            line=$(grep '^RESULT' <<<"$out" | tail -n 1)
            if [ $rc -ne 0 ] || [ -z "$line" ]; then
                echo "   $name run $run FAILED (exit $rc):" >&2
                sed 's/^/    /' "$tmp/err" >&2
                failures=$((failures + 1))
                continue
            fi
            echo "   $name run $run: $line" >&2
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$mode" \
                "$conns" "$size" "$run" "$(field rps "$line")" "$(field mbps "$line")" \
                "$(field requests "$line")" "$(field bytes "$line")" \
                "$(field server_cpu_s "$line")" "$(field p50_us "$line")" \
                "$(field p99_us "$line")" >>"$results"
        done
    done
    for name in "${up[@]}"; do
        server_pid=${pids[$name]}
        stop_server
    done
    unset pids ports
done

# RSS per idle connection, each on a fresh server.
for name in $servers; do
    [ "$idle_conns" -gt 0 ] || break
    start_server "$name" || continue
    echo "== $name idle c=$idle_conns (pid $server_pid)" >&2
    sleep 0.3
    rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$server_pid/status"; }
    nfd() { ls "/proc/$server_pid/fd" 2>/dev/null | wc -l; }
    before=$(rss)
    fds_before=$(nfd)
    "${pin_client[@]}" "$bench" idle "tcp:127.0.0.1:$port" -c "$idle_conns" -q \
        >"$tmp/idle.out" 2>"$tmp/err" &
    client_pid=$!
    ok=0
    for i in $(seq 1 600); do
        if grep -q '^RESULT mode=idle' "$tmp/idle.out"; then
            ok=1
            break
        fi
        kill -0 "$client_pid" 2>/dev/null || break
        sleep 0.1
    done
    # Connected on our side does not mean accepted on the server's: wait
    # until the server holds a descriptor for each.
    if [ $ok = 1 ]; then
        for i in $(seq 1 100); do
            [ $(($(nfd) - fds_before)) -ge "$idle_conns" ] && break
            sleep 0.1
        done
        sleep 0.5
        after=$(rss)
        accepted=$(($(nfd) - fds_before))
        echo "   RSS ${before} kB -> ${after} kB, $accepted connections accepted" >&2
        printf '%s\t%s\t%s\t%s\n' "$name" "$accepted" "$before" "$after" >>"$idle"
    else
        echo "   idle FAILED:" >&2
        sed 's/^/    /' "$tmp/err" "$tmp/idle.out" >&2
        failures=$((failures + 1))
    fi
    kill -TERM "$client_pid" 2>/dev/null
    wait "$client_pid" 2>/dev/null
    client_pid=
    stop_server
done

# ---- the report ----------------------------------------------------------------
cmdline="BENCH_SECONDS=$seconds RUNS=$runs WARMUP=$warmup IDLE_CONNS=$idle_conns"
cmdline="$cmdline bench/run_echo_bench.sh ${1:-build}"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
python3 - "$results" "$idle" "$cmdline" "$cpu" "$(nproc)" "$(uname -r)" \
    "${#pin_server[@]}" "$servers" <<'EOF'
import statistics, sys
results, idle, cmdline, cpu, ncpu, kernel, pinned, servers = sys.argv[1:]
servers = servers.split()
cells = {}
for line in open(results):
    name, mode, conns, size, run, rps, mbps, req, byt, cpu_s, p50, p99 = line.rstrip("\n").split("\t")
    cells.setdefault((name, mode, conns, size), []).append(
        dict(rps=float(rps), mbps=float(mbps), req=int(req), bytes=int(byt),
             cpu=float(cpu_s) if cpu_s else float("nan"), p50=float(p50), p99=float(p99)))
loads = [("echo", "1", "64"), ("echo", "1", "16k"), ("echo", "100", "64"),
         ("echo", "100", "16k"), ("stream", "1", "64k")]

def med(rows, f):
    return statistics.median(f(r) for r in rows)

def cell(name, load):
    rows = cells.get((name,) + load)
    if not rows:
        return None
    stream = load[0] == "stream"
    per_req = lambda r: r["cpu"] * 1e6 / r["req"] if r["req"] else float("nan")
    per_mb = lambda r: r["cpu"] * 1e6 / (r["bytes"] / 1e6) if r["bytes"] else float("nan")
    return dict(rps=med(rows, lambda r: r["rps"]), mbps=med(rows, lambda r: r["mbps"]),
                p50=med(rows, lambda r: r["p50"]), p99=med(rows, lambda r: r["p99"]),
                cpu_pct=med(rows, lambda r: 100 * r["cpu"] / (r["req"] / r["rps"]) if r["rps"] else 0),
                per_req=med(rows, per_req), per_mb=med(rows, per_mb),
                unit=med(rows, per_mb if stream else per_req), n=len(rows))

def label(load):
    return "%s c=%s s=%s" % load

print("Command: `%s`" % cmdline)
print()
print("Machine: %s, %s CPUs, Linux %s; %s. Medians of the runs; MB = 10^6 bytes echoed."
      % (cpu, ncpu, kernel,
         "server pinned to CPU 0, coil-bench to CPU 1" if pinned != "0" else "no CPU pinning"))
print("Server CPU is utime+stime from /proc/PID/stat over exactly the measured window;")
print("the runs of a load go round the servers in turn.")
print()
print("### Throughput (echo: requests/s; stream: MB/s)")
print()
print("| load | " + " | ".join(servers) + " |")
print("|---|" + "---:|" * len(servers))
for load in loads:
    out = []
    for s in servers:
        c = cell(s, load)
        if c is None:
            out.append("n/a")
        elif load[0] == "stream":
            out.append("%.0f MB/s" % c["mbps"])
        else:
            out.append("%.0f/s (p50 %.0f µs, p99 %.0f µs)" % (c["rps"], c["p50"], c["p99"]))
    print("| %s | %s |" % (label(load), " | ".join(out)))
print()
print("### Server CPU per unit (echo: µs per request; stream: µs per MB)")
print()
have_ratio = "coil" in servers and "libuv" in servers
print("| load | " + " | ".join(servers) + (" | coil/libuv |" if have_ratio else " |"))
print("|---|" + "---:|" * (len(servers) + have_ratio))
for load in loads:
    out = []
    for s in servers:
        c = cell(s, load)
        out.append("n/a" if c is None else "%.2f (%.0f%% CPU)" % (c["unit"], c["cpu_pct"]))
    if have_ratio:
        a, b = cell("coil", load), cell("libuv", load)
        out.append("%.2f" % (a["unit"] / b["unit"]) if a and b and b["unit"] else "n/a")
    print("| %s | %s |" % (label(load), " | ".join(out)))
print()
print("Echo rows also give server CPU per MB:")
print()
print("| load | " + " | ".join(servers) + " |")
print("|---|" + "---:|" * len(servers))
for load in loads[:4]:
    out = []
    for s in servers:
        c = cell(s, load)
        out.append("n/a" if c is None else "%.0f µs/MB" % c["per_mb"])
    print("| %s | %s |" % (label(load), " | ".join(out)))
idle_rows = [l.rstrip("\n").split("\t") for l in open(idle)]
if idle_rows:
    print()
    print("### Memory per idle TCP connection")
    print()
    print("| server | connections | VmRSS before | VmRSS after | bytes per connection |")
    print("|---|---:|---:|---:|---:|")
    for name, n, before, after in idle_rows:
        n, before, after = int(n), int(before), int(after)
        print("| %s | %d | %d kB | %d kB | %.0f |" % (name, n, before, after,
              (after - before) * 1024 / n if n else float("nan")))
EOF
if [ "$failures" -ne 0 ]; then
    echo "run_echo_bench: $failures failed run(s)" >&2
    exit 1
fi
