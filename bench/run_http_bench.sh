#!/usr/bin/env bash
# The issue-13 HTTP comparison in one run: coil's HTTP server against
# nginx-light (one worker), libevent's evhttp and Twisted web, driven by
# Debian's wrk over keep-alive connections on loopback.
#
#   bench/run_http_bench.sh [BUILD_DIR]          (default BUILD_DIR: build;
#                                                 build it Release)
#
# Environment:
#   BENCH_SECONDS  measured seconds per run (default 5)
#   RUNS           runs per cell; medians are reported (default 3)
#   WARMUP         seconds of the warm-up run before each cell (default 1)
#   CONNS          wrk connections (default 100)
#   THREADS        wrk threads (default 1 when pinned, else 2)
#   PIN            1 (default, with 2+ CPUs): the server on CPU 0, wrk on CPU 1
#   SERVERS        default "coil coil-web nginx evhttp twisted"
#   ROWS           default "hello 4k 1m"
#
# The servers, each on a free loopback port, all serving the same scratch
# folder (4k.bin: 4096 random bytes, 1m.bin: 1 MiB) and /hello ("Hello,
# world!", 13 bytes, made per request):
#   coil      bench/http_hello --root DIR (coil_http_site: a resource for
#             /hello on a coil_http_file_new root; no access log)
#   coil-web  tools/coil-web serve --root DIR (the static rows only: it has
#             no /hello; its access log goes to a file in the scratch folder)
#   nginx     nginx-light, bench/nginx.conf.in through bench/nginx_conf.sh:
#             worker_processes 1, access_log off, sendfile on,
#             keepalive_requests 1000000, `location = /hello { return 200
#             "Hello, world!"; }`
#   evhttp    bench/evhttp_hello --root DIR (evbuffer_add_file: sendfile)
#   twisted   /usr/bin/python3 bench/twisted_web.py --root DIR (static.File,
#             a Resource for /hello; the site's log off)
# Every server's answers are checked with curl (body byte for byte) before
# it is measured. Then for each row a warm-up run per server, and RUNS
# rounds that go round the servers in turn (a burst of background load hits
# all alike): `wrk -c CONNS -t THREADS -d BENCH_SECONDS -s bench/wrk_report.lua
# URL`. Server CPU = utime+stime of the server's processes (nginx: master
# and worker) from /proc/PID/stat, read just before wrk starts and just
# after it exits, divided by the requests wrk completed.
#
# Output: a Markdown report on stdout, ready for BENCHMARKS.md; progress and
# errors on stderr. Exits non-zero when a server or a run failed.
set -uo pipefail

build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
case $build in /*) ;; *) build=$root/$build ;; esac
seconds=${BENCH_SECONDS:-5}
runs=${RUNS:-3}
warmup=${WARMUP:-1}
conns=${CONNS:-100}
servers=${SERVERS:-coil coil-web nginx evhttp twisted}
rows=${ROWS:-hello 4k 1m}
py=/usr/bin/python3 # Debian's interpreter, the one with python3-twisted
me=run_http_bench
say() { echo "$*" >&2; }

for t in wrk curl taskset; do
    command -v "$t" >/dev/null || { say "$me: $t is missing (tools/install-deps)"; exit 2; }
done

pin_server=()
pin_client=()
if [ "${PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ]; then
    pin_server=(taskset -c 0)
    pin_client=(taskset -c 1)
    threads=${THREADS:-1}
else
    threads=${THREADS:-2}
fi

tmp=$(mktemp -d)
chmod 755 "$tmp"
all_pids=()
cleanup() {
    local p
    for p in "${all_pids[@]}"; do
        kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

www=$tmp/www
mkdir -p "$www"
head -c 4096 /dev/urandom >"$www/4k.bin"
head -c 1048576 /dev/urandom >"$www/1m.bin"
printf 'Hello, world!' >"$tmp/hello.expected"

free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# accepting PORT: 0 once something accepts on 127.0.0.1:PORT.
accepting() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_ready NAME PID LOG [PORT]: until the server prints "listening on
# HOST:PORT" (or, given PORT, accepts there); sets `port`. 1 when it died or
# 30 s passed.
wait_ready() {
    local name=$1 pid=$2 log=$3 want=${4:-}
    port=
    for _ in $(seq 1 600); do
        if [ -n "$want" ]; then
            accepting "$want" && { port=$want; return 0; }
        else
            port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log" | head -n 1)
            [ -n "$port" ] && return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    say "$me: $name did not start:"
    sed 's/^/    /' "$log" >&2
    return 1
}

declare -A spid=() sport=() srows=() gone=()

# start NAME: starts the server, sets spid[NAME] and sport[NAME]; 1 when it
# is not built or did not start.
start() {
    local n=$1 log=$tmp/$1.log p pid
    case $n in
    coil)
        [ -x "$build/bench/http_hello" ] || { say "$me: $build/bench/http_hello is not built"; return 1; }
        "${pin_server[@]}" "$build/bench/http_hello" --root "$www" 0 127.0.0.1 >"$log" 2>&1 &
        pid=$!
        all_pids+=("$pid")
        wait_ready coil "$pid" "$log" || return 1
        ;;
    coil-web)
        [ -x "$build/tools/coil-web" ] || { say "$me: $build/tools/coil-web is not built"; return 1; }
        p=$(free_port)
        "${pin_server[@]}" "$build/tools/coil-web" serve --quiet "tcp:$p:interface=127.0.0.1" \
            --root "$www" >"$log" 2>&1 &
        pid=$!
        all_pids+=("$pid")
        wait_ready coil-web "$pid" "$log" "$p" || return 1
        srows[$n]="4k 1m"
        ;;
    nginx)
        command -v nginx >/dev/null || { say "$me: nginx is missing (Debian: nginx-light)"; return 1; }
        mkdir -p "$tmp/nginx"
        p=$(free_port)
        sh "$here/nginx_conf.sh" "$tmp/nginx" "$p" "$www" off || return 1
        "${pin_server[@]}" nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" \
            -e "$tmp/nginx/error.log" >"$log" 2>&1 &
        pid=$!
        all_pids+=("$pid")
        wait_ready nginx "$pid" "$tmp/nginx/error.log" "$p" || return 1
        ;;
    evhttp)
        [ -x "$build/bench/evhttp_hello" ] || { say "$me: $build/bench/evhttp_hello is not built (libevent-dev)"; return 1; }
        "${pin_server[@]}" "$build/bench/evhttp_hello" --root "$www" 0 127.0.0.1 >"$log" 2>&1 &
        pid=$!
        all_pids+=("$pid")
        wait_ready evhttp "$pid" "$log" || return 1
        ;;
    twisted)
        "$py" -c 'import twisted.web' 2>/dev/null ||
            { say "$me: python3-twisted is missing for $py"; return 1; }
        "${pin_server[@]}" "$py" "$here/twisted_web.py" --root "$www" 0 127.0.0.1 >"$log" 2>&1 &
        pid=$!
        all_pids+=("$pid")
        wait_ready twisted "$pid" "$log" || return 1
        ;;
    *)
        say "$me: unknown server $n"
        return 1
        ;;
    esac
    spid[$n]=$pid
    sport[$n]=$port
    [ -n "${srows[$n]:-}" ] || srows[$n]="hello 4k 1m"
    say "== $n: pid $pid, port $port"
}

path_of() { # ROW -> URL path
    case $1 in hello) echo /hello ;; 4k) echo /4k.bin ;; 1m) echo /1m.bin ;; esac
}
expected_of() {
    case $1 in hello) echo "$tmp/hello.expected" ;; 4k) echo "$www/4k.bin" ;; 1m) echo "$www/1m.bin" ;; esac
}

# check NAME ROW: the server's answer is the expected bytes (status 200,
# the Content-Length as long as the body).
check() {
    local n=$1 row=$2 url out
    url="http://127.0.0.1:${sport[$n]}$(path_of "$row")"
    out=$(curl -s -o "$tmp/check.body" -w '%{http_code} %{size_download}' "$url") ||
        { say "$me: $n: curl $url failed"; return 1; }
    if [ "${out%% *}" != 200 ] || ! cmp -s "$tmp/check.body" "$(expected_of "$row")"; then
        say "$me: $n: $url answered '$out', not the expected body"
        return 1
    fi
}

# cpu NAME: utime+stime in clock ticks of the server and its children;
# nothing when the server is gone.
cpu() {
    local total=0 p line rest f
    [ -r "/proc/${spid[$1]}/stat" ] || return 1
    for p in "${spid[$1]}" $(pgrep -P "${spid[$1]}"); do
        read -r line <"/proc/$p/stat" 2>/dev/null || continue
        rest=${line##*) }
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}
hz=$(getconf CLK_TCK)

failures=0
up=()
for n in $servers; do
    if start "$n"; then
        up+=("$n")
    else
        failures=$((failures + 1))
    fi
done

results=$tmp/results.tsv # server row run requests duration_us bytes errors non2xx p50 p99 ticks
: >"$results"
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

for row in $rows; do
    cell=()
    for n in "${up[@]}"; do
        case " ${srows[$n]} " in *" $row "*) ;; *) continue ;; esac
        [ -z "${gone[$n]:-}" ] || continue
        if ! check "$n" "$row"; then
            failures=$((failures + 1))
            continue
        fi
        cell+=("$n")
        say "== $row: $n warm-up"
        "${pin_client[@]}" wrk -t "$threads" -c "$conns" -d "${warmup}s" \
            "http://127.0.0.1:${sport[$n]}$(path_of "$row")" >/dev/null 2>&1
    done
    for run in $(seq 1 "$runs"); do
        for n in "${cell[@]}"; do
            [ -z "${gone[$n]:-}" ] || continue
            c0=$(cpu "$n")
            out=$("${pin_client[@]}" wrk -t "$threads" -c "$conns" -d "${seconds}s" \
                -s "$here/wrk_report.lua" "http://127.0.0.1:${sport[$n]}$(path_of "$row")" 2>&1)
            rc=$?
            c1=$(cpu "$n")
            if [ -z "$c0" ] || [ -z "$c1" ]; then
                wait "${spid[$n]}" 2>/dev/null
                say "   $row $n run $run: the server is GONE (exit status $?); its output:"
                tail -n 20 "$tmp/$n.log" | sed 's/^/    /' >&2
                failures=$((failures + 1))
                gone[$n]=1
                continue
            fi
            line=$(grep '^RESULT' <<<"$out" | tail -n 1)
            if [ $rc -ne 0 ] || [ -z "$line" ]; then
                say "   $row $n run $run FAILED (wrk exit $rc):"
                sed 's/^/    /' <<<"$out" >&2
                failures=$((failures + 1))
                continue
            fi
            errs=$(field errors "$line")
            bad=$(field non2xx "$line")
            if [ "$errs" != 0 ] || [ "$bad" != 0 ]; then
                say "   $row $n run $run: $errs socket errors, $bad bad statuses (counted as a failure)"
                failures=$((failures + 1))
            fi
            say "   $row $n run $run: ${line#RESULT } cpu_ticks=$((c1 - c0))"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$row" "$run" \
                "$(field requests "$line")" "$(field duration_us "$line")" \
                "$(field bytes "$line")" "$errs" "$bad" "$(field p50_us "$line")" \
                "$(field p99_us "$line")" "$((c1 - c0))" >>"$results"
        done
    done
done

# ---- the report ----------------------------------------------------------------
cmdline="BENCH_SECONDS=$seconds RUNS=$runs WARMUP=$warmup CONNS=$conns THREADS=$threads"
cmdline="$cmdline bench/run_http_bench.sh ${1:-build}"
cpuname=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
versions="nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), libevent $(pkg-config --modversion libevent 2>/dev/null || echo ?), Twisted $("$py" -c 'import twisted; print(twisted.__version__)' 2>/dev/null || echo ?), $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1,2)"
"$py" - "$results" "$cmdline" "$cpuname" "$(nproc)" "$(uname -r)" "$hz" \
    "${#pin_server[@]}" "$servers" "$rows" "$versions" <<'PY'
import statistics, sys
results, cmdline, cpuname, ncpu, kernel, hz, pinned, servers, rows, versions = sys.argv[1:]
hz = float(hz)
servers = servers.split()
rows = rows.split()
cells = {}
for line in open(results):
    n, row, run, req, dur, byt, errs, bad, p50, p99, ticks = line.rstrip("\n").split("\t")
    req, dur, ticks = int(req), int(dur), int(ticks)
    cells.setdefault((n, row), []).append(dict(
        rps=req / (dur / 1e6), cpu_us=ticks / hz * 1e6 / req if req else float("nan"),
        cpu_pct=100 * ticks / hz / (dur / 1e6), p50=int(p50) / 1e3, p99=int(p99) / 1e3,
        mbps=int(byt) / (dur / 1e6) / 1e6))

def med(n, row, k):
    c = cells.get((n, row))
    return None if not c else statistics.median(r[k] for r in c)

label = {"hello": "hello (13 B)", "4k": "4 KiB file", "1m": "1 MiB file"}
title = {"coil": "coil (bench/http_hello)", "coil-web": "coil-web serve",
         "nginx": "nginx-light, 1 worker", "evhttp": "libevent evhttp",
         "twisted": "Twisted web"}
print("Command: `%s`" % cmdline)
print()
print("Machine: %s, %s CPUs, Linux %s; %s. %s. Keep-alive, loopback. Medians of the runs."
      % (cpuname, ncpu, kernel,
         "server pinned to CPU 0, wrk to CPU 1" if pinned != "0" else "no CPU pinning",
         versions))
print("Server CPU = utime+stime of the server's processes (nginx: master + worker) from"
      " /proc/PID/stat around each wrk run, divided by the requests wrk completed.")
print("The machine is shared and noisy: the ratios, measured in the same rounds, matter"
      " more than the absolute figures.")
print()
print("| row | server | requests/s | server CPU µs/request | server CPU | p50 | p99 |")
print("|---|---|---:|---:|---:|---:|---:|")
for row in rows:
    for n in servers:
        if (n, row) not in cells:
            continue
        print("| %s | %s | %.0f | %.1f | %.0f%% | %.2f ms | %.2f ms |" % (
            label.get(row, row), title.get(n, n), med(n, row, "rps"), med(n, row, "cpu_us"),
            med(n, row, "cpu_pct"), med(n, row, "p50"), med(n, row, "p99")))

def ratio(a, b, row, k="cpu_us"):
    x, y = med(a, row, k), med(b, row, k)
    return None if x is None or not y else x / y

print()
print("Server CPU per request, coil / peer (lower is better for coil). Goal: <= 1 against"
      " nginx on the files and against evhttp on hello; <= 0.20 against Twisted everywhere:")
print()
print("| row | coil server | coil/nginx | coil/evhttp | coil/Twisted | goal |")
print("|---|---|---:|---:|---:|---|")
for row in rows:
    for c in ("coil", "coil-web"):
        if (c, row) not in cells:
            continue
        rn, re, rt = ratio(c, "nginx", row), ratio(c, "evhttp", row), ratio(c, "twisted", row)
        main = re if row == "hello" else rn
        goal = []
        if main is not None:
            goal.append(("met" if main <= 1 else "MISSED") + " vs " +
                        ("evhttp" if row == "hello" else "nginx"))
        if rt is not None:
            goal.append(("met" if rt <= 0.2 else "MISSED") + " vs Twisted")
        f = lambda v: "—" if v is None else "%.2f" % v
        print("| %s | %s | %s | %s | %s | %s |" % (label.get(row, row), c, f(rn), f(re), f(rt),
                                                   ", ".join(goal) or "—"))
PY
[ "$failures" -eq 0 ] || { say "$me: $failures failure(s)"; exit 1; }
