#!/usr/bin/env bash
# The issue-11 SSH tunnel comparison in one run: coil-tunnel -L against
# OpenSSH's `ssh -N -L` (its default cipher, chacha20-poly1305, and
# -c aes128-ctr -m hmac-sha2-256, what libssh2 1.10 negotiates), through
# the same throwaway sshd (tests/ssh/sshd-fixture.sh, loopback) to the same
# coil-echo server, and direct for reference; driven by coil-bench.
#
#   bench/run_ssh_bench.sh [BUILD_DIR]          (default BUILD_DIR: build)
#
# Environment: BENCH_SECONDS (default 5), RUNS (default 3; medians; a short
# run 0 warms up), TUNNELS (default "coil ssh-default ssh-aes128ctr direct"),
# PROFILE (default 0; 1, as root with perf: where coil-tunnel's CPU goes in
# a stream run, by library, and how often each tunnel calls OpenSSL's
# EVP_Cipher per MB, counted with a uprobe; the probe is removed after).
#
# Loads: stream c=1 s=64k (MB/s echoed; each byte crosses the tunnel twice)
# and echo c=10 s=64 (requests/s). The CPU measured is the CLIENT-side
# tunnel process's (coil-tunnel or ssh): utime+stime from /proc/PID/stat over
# exactly the measured window (coil-bench --cpu-pid), per MB echoed and per
# request. The cipher each negotiated: coil-tunnel -v prints it
# (coil_ssh_session_cipher / _mac); ssh -v prints "kex: server->client
# cipher: ...". Output: Markdown on stdout for BENCHMARKS.md; progress on
# stderr. Everything started here is stopped by PID on exit.
set -uo pipefail

build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
case $build in /*) ;; *) build=$root/$build ;; esac
seconds=${BENCH_SECONDS:-5}
runs=${RUNS:-3}
tunnels=${TUNNELS:-coil ssh-default ssh-aes128ctr direct}
bench=$build/tools/coil-bench
echo_bin=$build/tools/coil-echo
tunnel_bin=$build/tools/coil-tunnel
for b in "$bench" "$echo_bin" "$tunnel_bin"; do
    [ -x "$b" ] || { echo "run_ssh_bench: $b is not built" >&2; exit 2; }
done
command -v ssh >/dev/null || { echo "run_ssh_bench: ssh (openssh-client) is missing" >&2; exit 2; }

me=run_ssh_bench
# shellcheck source=sshbench.sh source-path=SCRIPTDIR
. "$here/sshbench.sh"
bench_sshd_fixture
bench_echo_server "$echo_bin"

declare -A tpid=() tport=() cipher=()
ssh_opts=(-N -v -p "$SSHD_PORT" -i "$SSH_KEY_ED25519" -o IdentitiesOnly=yes -o BatchMode=yes
    -o UserKnownHostsFile="$SSH_KNOWN_HOSTS" -o StrictHostKeyChecking=yes
    -o ExitOnForwardFailure=yes -o ControlMaster=no -o ControlPath=none -F /dev/null)
start_tunnel() { # NAME
    local name=$1 lp
    case $name in
    coil)
        "$tunnel_bin" -v -L "0:127.0.0.1:$eport" \
            "ssh:$SSHD_HOST:$SSHD_PORT:user=$SSH_USER:identity=$SSH_KEY_ED25519:knownHosts=$SSH_KNOWN_HOSTS" \
            2>"$tmp/$name.err" &
        tpid[$name]=$!
        all_pids+=("${tpid[$name]}")
        wait_line "$tmp/$name.err" "listening on" "${tpid[$name]}" || return 1
        tport[$name]=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\) -> .*/\1/p' "$tmp/$name.err" | head -n 1)
        cipher[$name]=$(sed -n 's/.*session to .* up (\([^ ]*\) \([^,]*\),.*/\1 \2/p' "$tmp/$name.err" | head -n 1)
        ;;
    ssh-default | ssh-aes128ctr)
        lp=$(free_port)
        local extra=()
        [ "$name" = ssh-aes128ctr ] && extra=(-c aes128-ctr -m hmac-sha2-256)
        ssh "${ssh_opts[@]}" "${extra[@]}" -L "127.0.0.1:$lp:127.0.0.1:$eport" \
            "$SSH_USER@$SSHD_HOST" 2>"$tmp/$name.err" &
        tpid[$name]=$!
        all_pids+=("${tpid[$name]}")
        wait_line "$tmp/$name.err" "Local forwarding listening on 127.0.0.1 port $lp" "${tpid[$name]}" || return 1
        tport[$name]=$lp
        cipher[$name]=$(sed -n 's/.*kex: server->client cipher: \([^ ]*\) MAC: \([^ ]*\) .*/\1 \2/p' "$tmp/$name.err" | head -n 1)
        ;;
    direct)
        tpid[$name]=
        tport[$name]=$eport
        cipher[$name]="(none)"
        ;;
    esac
    echo "== $name: 127.0.0.1:${tport[$name]}, ${cipher[$name]}" >&2
}

up=()
for name in $tunnels; do
    start_tunnel "$name" && up+=("$name")
done

results=$tmp/results.tsv
: >"$results"
failures=0
loads=("stream|stream|1|64k" "echo|echo|10|64")
for load in "${loads[@]}"; do
    IFS='|' read -r label mode conns size <<<"$load"
    for run in 0 $(seq 1 "$runs"); do # run 0 warms up
        for name in "${up[@]}"; do
            d=$seconds
            [ "$run" = 0 ] && d=1
            cpu_opt=()
            [ -n "${tpid[$name]}" ] && cpu_opt=(--cpu-pid "${tpid[$name]}")
            out=$("$bench" "$mode" "tcp:127.0.0.1:${tport[$name]}" -c "$conns" -s "$size" \
                -d "$d" -w 0 -q "${cpu_opt[@]}" 2>"$tmp/err")
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

# Where the time goes (PROFILE=1): perf record on coil-tunnel during a
# stream run; then OpenSSL EVP_Cipher calls (a uprobe) while a fixed 8 MB
# goes through coil-tunnel and through ssh -c aes128-ctr and back (16 MB
# ciphered by each client: out and back).
profile=$tmp/profile.txt
: >"$profile"
if [ "${PROFILE:-0}" = 1 ] && command -v perf >/dev/null && [ -n "${tpid[coil]:-}" ]; then
    perf record -g -o "$tmp/perf.data" -p "${tpid[coil]}" -- sleep "$seconds" >"$tmp/perf.out" 2>&1 &
    rec=$!
    "$bench" stream "tcp:127.0.0.1:${tport[coil]}" -c 1 -s 64k -d "$seconds" -w 0 -q >/dev/null 2>&1
    wait "$rec"
    {
        echo "perf record -g -p <coil-tunnel>, stream c=1 s=64k for $seconds s; self time by library:"
        perf report -i "$tmp/perf.data" --no-children --sort dso --stdio -g none 2>&1 |
            grep '%' | head -n 6
        echo "top symbols:"
        perf report -i "$tmp/perf.data" --no-children --sort dso,symbol --stdio -g none 2>&1 |
            grep '%' | head -n 8
    } >>"$profile"
    libcrypto=$(ldd "$tunnel_bin" | awk '/libcrypto/ { print $3 }')
    head -c 8000000 /dev/urandom >"$tmp/8mb"
    if perf probe -q -x "$libcrypto" EVP_Cipher 2>/dev/null; then
        for name in coil ssh-aes128ctr; do
            [ -n "${tpid[$name]:-}" ] || continue
            perf stat -e probe_libcrypto:EVP_Cipher -p "${tpid[$name]}" -o "$tmp/stat.$name" &
            st=$!
            sleep 0.5 # perf attaches
            "$echo_bin" send "tcp:127.0.0.1:${tport[$name]}" <"$tmp/8mb" >/dev/null 2>&1
            kill -INT "$st"
            wait "$st"
            calls=$(awk '/EVP_Cipher/ { gsub(",", "", $1); print $1 }' "$tmp/stat.$name")
            [ -n "$calls" ] && [ "$calls" -gt 0 ] &&
                echo "EVP_Cipher calls by $name for 8 MB there and back (16 MB ciphered): $calls," \
                    "$(awk -v c="$calls" 'BEGIN { printf "%.0f per MB ciphered, one per %.0f bytes", c / 16, 16e6 / c }')" >>"$profile"
        done
        perf probe -q -d probe_libcrypto:EVP_Cipher 2>/dev/null
    fi
fi

ciphers=$tmp/ciphers.tsv
: >"$ciphers"
for name in "${up[@]}"; do printf '%s\t%s\n' "$name" "${cipher[$name]}" >>"$ciphers"; done
cmdline="BENCH_SECONDS=$seconds RUNS=$runs${PROFILE:+ PROFILE=$PROFILE} bench/run_ssh_bench.sh ${1:-build}"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
python3 - "$results" "$ciphers" "$cmdline" "$cpu" "$(nproc)" "$(ssh -V 2>&1 | head -n 1)" "$profile" <<'PY'
import statistics, sys
results, ciphers, cmdline, cpu, ncpu, sshv, profile = sys.argv[1:]
rows = {}
for line in open(results):
    name, label, res = line.rstrip("\n").split("\t")
    kv = dict(p.split("=", 1) for p in res.split()[1:] if "=" in p)
    rows.setdefault((name, label), []).append(kv)
cipher = dict(l.rstrip("\n").split("\t", 1) for l in open(ciphers) if "\t" in l)
names = list(cipher)
title = {"coil": "coil-tunnel -L", "ssh-default": "ssh -N -L (default)",
         "ssh-aes128ctr": "ssh -N -L -c aes128-ctr -m hmac-sha2-256", "direct": "direct (no tunnel)"}

def med(name, label, f):
    r = rows.get((name, label))
    if not r:
        return None
    vals = [f(k) for k in r]
    vals = [v for v in vals if v == v]
    return statistics.median(vals) if vals else None

def cpu_per(name, label, unit):
    def f(k):
        if "server_cpu_s" not in k:
            return float("nan")
        c = float(k["server_cpu_s"])
        n = float(k["bytes"]) / 1e6 if unit == "MB" else float(k["requests"])
        return c * 1e6 / n if n else float("nan")
    return med(name, label, f)

fig = {}
for n in names:
    fig[n] = (med(n, "stream", lambda k: float(k["mbps"])), cpu_per(n, "stream", "MB"),
              med(n, "echo", lambda k: float(k["rps"])), cpu_per(n, "echo", "req"))

def fmt(v, f="%.0f"):
    return "—" if v is None else f % v

print("Command: `%s`" % cmdline)
print()
print("Machine: %s, %s CPUs, nothing pinned (coil-bench, the tunnel client, sshd and the"
      " coil-echo server share them). %s; the sshd is tests/ssh/sshd-fixture.sh's on"
      " loopback. Medians of the runs. CPU = the client-side tunnel process"
      " (coil-tunnel or ssh), utime+stime over the measured window; MB = 10^6 bytes"
      " echoed (each crosses the tunnel twice)." % (cpu, ncpu, sshv))
print()
print("| tunnel | cipher, MAC | stream c=1 s=64k MB/s | client CPU µs/MB | echo c=10 s=64 req/s | client CPU µs/req |")
print("|---|---|---:|---:|---:|---:|")
for n in names:
    s, sc, e, ec = fig[n]
    print("| %s | %s | %s | %s | %s | %s |" % (title.get(n, n), cipher[n], fmt(s), fmt(sc),
                                             fmt(e), fmt(ec, "%.1f")))
base = fig.get("ssh-aes128ctr")
if base and all(base):
    print()
    print("Ratios against `ssh -L -c aes128-ctr -m hmac-sha2-256` (throughput: higher is better;"
          " CPU: lower is better):")
    print()
    print("| tunnel | MB/s | CPU/MB | req/s | CPU/req |")
    print("|---|---:|---:|---:|---:|")
    for n in names:
        if n == "direct":
            continue
        s, sc, e, ec = fig[n]
        r = lambda a, b: "—" if a is None or not b else "%.2f" % (a / b)
        print("| %s | %s | %s | %s | %s |" % (title.get(n, n), r(s, base[0]), r(sc, base[1]),
                                             r(e, base[2]), r(ec, base[3])))
prof = open(profile).read().strip()
if prof:
    print()
    print("```")
    print(prof)
    print("```")
PY
[ "$failures" -eq 0 ] || { echo "run_ssh_bench: $failures failed run(s)" >&2; exit 1; }
