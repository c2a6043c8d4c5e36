# Shared by the tools' test scripts and tests/sshd/sshdlib.sh (sourced,
# POSIX sh): a scratch folder that goes away with every process the script
# started, fail() that shows their stderr, and wait_for(), which polls for
# an event, never a fixed sleep.
#
#   . "$here/testlib.sh"; testlib_setup NAME      -> $dir, $pids
# Set before use, if wanted: me (named in FAIL lines), testlib_wait (how
# long wait_for waits, in seconds: 30), testlib_err_lines (fail shows the
# last N lines of each *.err instead of all of it).

testlib_setup() {
    dir=$(mktemp -d "${TMPDIR:-/tmp}/coil-$1.XXXXXX")
    pids=""
    trap testlib_cleanup EXIT
    trap 'exit 1' INT TERM
}

testlib_cleanup() {
    for p in $pids; do
        kill -KILL "$p" 2>/dev/null || true
    done
    rm -rf "$dir"
}

fail() {
    echo "FAIL${me:+ ($me)}: $*" >&2
    for f in "$dir"/*.err; do
        [ -f "$f" ] || continue
        if [ -n "${testlib_err_lines:-}" ]; then
            echo "--- $f (last $testlib_err_lines lines):" >&2
            tail -n "$testlib_err_lines" "$f" >&2
        else
            echo "--- $f:" >&2
            cat "$f" >&2
        fi
    done
    exit 1
}

# wait_for WHAT PID CMD...: until CMD succeeds; fail when process PID (0:
# none) has exited first, or after $testlib_wait (30) s, saying WHAT was
# awaited. Polled every 0.05 s, so a slow machine only makes a test slower,
# never wrong.
wait_for() {
    what=$1
    wpid=$2
    shift 2
    i=0
    until "$@"; do
        if [ "$wpid" -ne 0 ] && ! kill -0 "$wpid" 2>/dev/null; then
            "$@" || fail "$what: the process exited first"
            return 0
        fi
        i=$((i + 1))
        [ $i -lt $((${testlib_wait:-30} * 20)) ] || fail "$what: not within ${testlib_wait:-30} s"
        sleep 0.05
    done
}
