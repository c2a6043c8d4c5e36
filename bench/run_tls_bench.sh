#!/usr/bin/env bash
# The issue-4 TLS comparison in one run: coil's TLS echo server (coil-echo
# serve ssl:...) against a libevent bufferevent_openssl echo server
# (bench/event_tls_echo.c) and Twisted's TLS echo server
# (bench/twisted_tls_echo.py), all with the same ECDSA P-256 certificate, TLS
# 1.3, TLS_AES_128_GCM_SHA256 and X25519 (the client offers only those),
# driven by coil-bench; plus `openssl speed` for the limits.
#
#   bench/run_tls_bench.sh [BUILD_DIR]          (default BUILD_DIR: build)
#
# Environment: BENCH_SECONDS (default 4), RUNS (default 3; medians),
# IDLE_CONNS (default 5000; 0 skips), SERVERS (default "coil libevent
# twisted"), PIN (default 1: server on CPU 0, coil-bench on CPU 1).
#
# Loads: stream c=1 s=64k (MB/s), echo c=100 s=64 (requests/s), full
# handshakes (connect -c 4, tls:...:resume=no), resumed handshakes (connect
# -c 4, the client's session cache), then IDLE_CONNS idle TLS connections
# per server (VmRSS growth / connections). Server CPU comes from
# /proc/PID/stat over exactly the measured window (coil-bench --cpu-pid).
# Output: Markdown on stdout for BENCHMARKS.md; progress on stderr.
set -uo pipefail

build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
case $build in /*) ;; *) build=$root/$build ;; esac
seconds=${BENCH_SECONDS:-4}
runs=${RUNS:-3}
idle_conns=${IDLE_CONNS:-5000}
servers=${SERVERS:-coil libevent twisted}
py=/usr/bin/python3
bench=$build/tools/coil-bench
[ -x "$bench" ] || { echo "run_tls_bench: $bench is not built" >&2; exit 2; }

tmp=$(mktemp -d)
certs=$tmp/certs
sh "$root/tests/tls/make-certs.sh" "$certs" || exit 2
suite=ciphersuites=TLS_AES_128_GCM_SHA256:groups=X25519
server_pid=
all_pids=()
cleanup() {
    local p
    for p in "${all_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
hard=$(ulimit -Hn)
ulimit -n "$hard" 2>/dev/null || true

pin_server=()
pin_client=()
if [ "${PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    pin_server=(taskset -c 0)
    pin_client=(taskset -c 1)
fi

start_server() { # NAME -> server_pid, port
    local cmd
    case $1 in
    coil) cmd=("$build/tools/coil-echo" serve
        "ssl:0:interface=127.0.0.1:privateKey=$certs/server.key:certKey=$certs/server-chain.pem:$suite") ;;
    libevent) cmd=("$build/bench/event_tls_echo" 0 "$certs/server-chain.pem" "$certs/server.key") ;;
    twisted) cmd=("$py" "$here/twisted_tls_echo.py" 0 "$certs/server-chain.pem" "$certs/server.key") ;;
    esac
    "${pin_server[@]}" "${cmd[@]}" >"$tmp/server-$1.out" 2>&1 &
    server_pid=$!
    all_pids+=("$server_pid")
    port=
    for _ in $(seq 1 100); do
        port=$(sed -n 's/.*127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$tmp/server-$1.out" | head -n 1)
        [ -n "$port" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "run_tls_bench: $1 did not start:" >&2
    cat "$tmp/server-$1.out" >&2
    return 1
}

stop_server() {
    kill -TERM "$1" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

results=$tmp/results.tsv
idle=$tmp/idle.tsv
: >"$results"
: >"$idle"
failures=0
declare -A pids=() ports=()
up=()
for name in $servers; do
    if start_server "$name"; then
        pids[$name]=$server_pid
        ports[$name]=$port
        up+=("$name")
    fi
done

# load label, coil-bench mode, -c, -s, endpoint suffix
loads=("stream|stream|1|64k|" "echo|echo|100|64|" "full|connect|4|1|:resume=no"
    "resumed|connect|4|1|")
for load in "${loads[@]}"; do
    IFS='|' read -r label mode conns size extra <<<"$load"
    for run in 0 $(seq 1 "$runs"); do # run 0 warms up
        for name in "${up[@]}"; do
            ep="tls:127.0.0.1:${ports[$name]}:caCerts=$certs/ca.pem:sni=localhost:$suite$extra"
            d=$seconds
            [ "$run" = 0 ] && d=1
            out=$("${pin_client[@]}" "$bench" "$mode" "$ep" -c "$conns" -s "$size" -d "$d" \
                -w 0 -q --cpu-pid "${pids[$name]}" 2>"$tmp/err")
            rc=$?
            line=$(grep '^RESULT' <<<"$out" | tail -n 1)
            if [ $rc -ne 0 ] || [ -z "$line" ]; then
                echo "   $name $label run $run FAILED: $(cat "$tmp/err")" >&2
                failures=$((failures + 1))
                continue
            fi
            echo "   $name $label run $run: $line" >&2
            [ "$run" = 0 ] || printf '%s\t%s\t%s\n' "$name" "$label" "$line" >>"$results"
        done
    done
done
for name in "${up[@]}"; do stop_server "${pids[$name]}"; done

# Fresh against warm (issue 10): the stream on a server started for it (its
# first seconds, no warm-up), then again on the same server, with the suite
# OpenSSL picks by default, TLS_AES_256_GCM_SHA384.
suite256=ciphersuites=TLS_AES_256_GCM_SHA384:groups=X25519
suite128=$suite
suite=$suite256 # the servers started below offer it
export EVENT_TLS_SUITES=TLS_AES_256_GCM_SHA384
for run in $(seq 1 "$runs"); do
    for name in $servers; do
        [ "$name" = twisted ] && continue
        start_server "$name" || continue
        for phase in fresh warm; do
            ep="tls:127.0.0.1:$port:caCerts=$certs/ca.pem:sni=localhost:$suite256"
            out=$("${pin_client[@]}" "$bench" stream "$ep" -c 1 -s 64k -d "$seconds" \
                -w 0 -q --cpu-pid "$server_pid" 2>"$tmp/err")
            line=$(grep '^RESULT' <<<"$out" | tail -n 1)
            if [ -z "$line" ]; then
                echo "   $name stream-$phase run $run FAILED: $(cat "$tmp/err")" >&2
                failures=$((failures + 1))
                continue
            fi
            echo "   $name stream-$phase run $run: $line" >&2
            printf '%s\t%s\t%s\n' "$name" "stream-$phase" "$line" >>"$results"
        done
        stop_server "$server_pid"
    done
done
suite=$suite128
unset EVENT_TLS_SUITES

for name in $servers; do
    [ "$idle_conns" -gt 0 ] || break
    start_server "$name" || continue
    sleep 0.5
    rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$server_pid/status"; }
    nfd() { ls "/proc/$server_pid/fd" 2>/dev/null | wc -l; }
    before=$(rss)
    fds_before=$(nfd)
    "${pin_client[@]}" "$bench" idle "tls:127.0.0.1:$port:caCerts=$certs/ca.pem:$suite" \
        -c "$idle_conns" -q >"$tmp/idle.out" 2>"$tmp/err" &
    client=$!
    for _ in $(seq 1 900); do
        grep -q '^RESULT mode=idle' "$tmp/idle.out" && break
        kill -0 "$client" 2>/dev/null || break
        sleep 0.1
    done
    for _ in $(seq 1 100); do
        [ $(($(nfd) - fds_before)) -ge "$idle_conns" ] && break
        sleep 0.1
    done
    sleep 1
    after=$(rss)
    n=$(($(nfd) - fds_before))
    echo "== $name idle: RSS $before kB -> $after kB, $n connections" >&2
    printf '%s\t%s\t%s\t%s\n' "$name" "$n" "$before" "$after" >>"$idle"
    kill -TERM "$client" 2>/dev/null
    wait "$client" 2>/dev/null
    stop_server "$server_pid"
done

# The limits on this machine.
speed=$tmp/speed.txt
{
    openssl speed -seconds 2 -evp aes-128-gcm 2>/dev/null | tail -n 1
    openssl speed -seconds 2 -evp aes-256-gcm 2>/dev/null | tail -n 1
    openssl speed -seconds 2 ecdsap256 2>/dev/null | grep 'ecdsa (nistp256)'
    openssl speed -seconds 2 ecdhx25519 2>/dev/null | grep 'X25519'
} >"$speed"

cmdline="BENCH_SECONDS=$seconds RUNS=$runs IDLE_CONNS=$idle_conns bench/run_tls_bench.sh ${1:-build}"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
python3 - "$results" "$idle" "$speed" "$cmdline" "$cpu" "$(nproc)" "$servers" <<'PY'
import re, statistics, sys
results, idle, speed, cmdline, cpu, ncpu, servers = sys.argv[1:]
servers = servers.split()
rows = {}
for line in open(results):
    name, label, res = line.rstrip("\n").split("\t")
    kv = dict(p.split("=", 1) for p in res.split()[1:] if "=" in p)
    rows.setdefault((name, label), []).append(kv)
sp = open(speed).read().splitlines()
aes = float(sp[0].split()[-1].rstrip("k")) * 1000 if sp else float("nan")  # bytes/s, 16 KiB blocks
aes256 = float(sp[1].split()[-1].rstrip("k")) * 1000 if len(sp) > 1 else float("nan")
sp = sp[:1] + sp[2:]
sign = float(sp[1].split()[-2]) if len(sp) > 1 else float("nan")            # ECDSA P-256 sign/s
x = float(sp[2].split()[-1]) if len(sp) > 2 else float("nan")               # X25519 ops/s
cipher256_us_per_mb = 1e6 / (aes256 / 1e6)
cipher_us_per_mb = 1e6 / (aes / 1e6)
hs_limit = 1 / (1 / sign + 1 / x)   # one signature + one X25519 per full handshake

def med(name, label, f):
    r = rows.get((name, label))
    return statistics.median(f(k) for k in r) if r else None

def cpu_per(name, label, unit):
    def f(k):
        c = float(k.get("server_cpu_s", "nan"))
        n = float(k["bytes"]) / 1e6 if unit == "MB" else float(k["requests"])
        return c * 1e6 / n if n else float("nan")
    return med(name, label, f)

print("Command: `%s`" % cmdline)
print()
print("Machine: %s, %s CPUs; server on CPU 0, coil-bench on CPU 1. Medians of the runs." % (cpu, ncpu))
print("TLS 1.3, TLS_AES_128_GCM_SHA256, X25519, ECDSA P-256 certificate, same for all servers.")
print()
print("| load | " + " | ".join(servers) + " |")
print("|---|" + "---:|" * len(servers))
spec = [("stream", "stream c=1 s=64k", "mbps", "MB/s", "MB"),
        ("echo", "echo c=100 s=64", "rps", "req/s", "req"),
        ("full", "full handshakes (c=4)", "rps", "hs/s", "hs"),
        ("resumed", "resumed handshakes (c=4)", "rps", "hs/s", "hs")]
for label, title, key, unit, per in spec:
    out = []
    for s in servers:
        v = med(s, label, lambda k: float(k[key]))
        c = cpu_per(s, label, "MB" if per == "MB" else "n")
        if v is None:
            out.append("n/a")
        else:
            extra = ""
            if label == "resumed":
                extra = ", %.0f%% resumed" % med(s, label, lambda k: 100 * float(k.get("tls_resumed", 0)) / max(1, float(k.get("tls_handshakes", 1))))
            out.append("%.0f %s, %.1f µs CPU/%s%s" % (v, unit, c, per, extra))
    print("| %s | %s |" % (title, " | ".join(out)))
print()
print("Limits (`openssl speed`, one core): AES-128-GCM %.0f MB/s (16 KiB blocks) = %.0f µs per MB;"
      " ECDSA P-256 %.0f signs/s, X25519 %.0f ops/s: at most %.0f full handshakes/s of server"
      " public-key work." % (aes / 1e6, cipher_us_per_mb, sign, x, hs_limit))
print()
print("| coil figure | value | limit | coil / limit |")
print("|---|---:|---:|---:|")
c = cpu_per("coil", "stream", "MB")
if c:
    print("| server CPU per MB echoed (decrypt + encrypt each byte) | %.0f µs | 2 x %.0f = %.0f µs | %.2f |"
          % (c, cipher_us_per_mb, 2 * cipher_us_per_mb, c / (2 * cipher_us_per_mb)))
c = cpu_per("coil", "full", "n")
if c:
    print("| server CPU per full handshake | %.0f µs | %.0f µs | %.2f |" % (c, 1e6 / hs_limit, c / (1e6 / hs_limit)))
fw = [s for s in servers if rows.get((s, "stream-fresh"))]
if fw:
    print()
    print("Fresh against warm, TLS_AES_256_GCM_SHA384 (the suite OpenSSL picks), stream c=1 s=64k;"
          " limit: decrypt + encrypt with `openssl speed -evp aes-256-gcm` = 2 x %.0f = %.0f µs per MB."
          % (cipher256_us_per_mb, 2 * cipher256_us_per_mb))
    print()
    print("| server | fresh MB/s | fresh µs CPU/MB | x limit | warm MB/s | warm µs CPU/MB | x limit |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    lim = 2 * cipher256_us_per_mb
    for s in fw:
        fm = med(s, "stream-fresh", lambda k: float(k["mbps"]))
        fc = cpu_per(s, "stream-fresh", "MB")
        wm = med(s, "stream-warm", lambda k: float(k["mbps"]))
        wc = cpu_per(s, "stream-warm", "MB")
        print("| %s | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f |" % (s, fm, fc, fc / lim, wm, wc, wc / lim))
idle_rows = [l.rstrip("\n").split("\t") for l in open(idle)]
if idle_rows:
    print()
    print("| server | idle TLS connections | VmRSS before | after | bytes per connection |")
    print("|---|---:|---:|---:|---:|")
    for name, n, b, a in idle_rows:
        n, b, a = int(n), int(b), int(a)
        print("| %s | %d | %d kB | %d kB | %.0f |" % (name, n, b, a, (a - b) * 1024 / n if n else float("nan")))
PY
[ "$failures" -eq 0 ] || { echo "run_tls_bench: $failures failed run(s)" >&2; exit 1; }
