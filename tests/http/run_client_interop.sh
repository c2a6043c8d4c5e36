#!/bin/sh
# Real HTTP clients against coil's server, served by coil-web serve on a TCP,
# a TLS (https, ALPN http/1.1) and a UNIX endpoint at once.
#
# Usage: run_client_interop.sh curl|python|twisted|get COIL_WEB
#   curl     a 1 MiB file byte for byte (sha256), HEAD, Range (206),
#            If-None-Match (304), a listing (escaped names), the redirect
#            to the slash, 404, keep-alive (two URLs in one curl reuse the
#            connection), https with --cacert (ALPN http/1.1 in curl -v),
#            --unix-socket, POST -d (405 with Allow); the access log lines
#   python   Python's http.client and raw sockets (pyclient.py): keep-alive,
#            pipelined requests, chunked and oversized request bodies,
#            HTTP/1.0; coil-web's --header-timeout (a stalled head is cut),
#            --idle-timeout, --max-body, --no-listings, --index, --quiet
#   twisted  Twisted's Agent (twisted_agent_client.py)
#   get      coil-web get: -o (FILE.part, -, a FIFO), -i, -L, -X/-d/-H as
#            the server logs them, exit 22 on 404, --cacert / --insecure /
#            verification failure, a refused port, http+unix, the progress
#            bar on a pty; bad arguments of serve and get
# Needs curl and Debian's python3 with python3-twisted (tools/install-deps);
# fails, never skips, without them. COIL_TEST_CERTS: the tls_certs fixture.
set -eu

part=$1
WEB=$2
PY=/usr/bin/python3
here=$(cd "$(dirname "$0")" && pwd)
certs=${COIL_TEST_CERTS:?COIL_TEST_CERTS is not set (the tls_certs ctest fixture sets it)}
# Every client command is bounded: a hang fails the test, it does not stall it.
T="timeout -k 2 30"
me="http_client_interop $part"

. "$here/../tools/testlib.sh"
testlib_setup http-interop

[ -x "$PY" ] || fail "$PY is missing: install Debian's python3 (tools/install-deps)"
command -v curl >/dev/null 2>&1 || fail "curl is missing: install Debian's curl (tools/install-deps)"

# ---- the site -----------------------------------------------------------------

www=$dir/www
mkdir -p "$www/sub" "$www/site"
head -c 1048576 /dev/urandom >"$www/file.bin"
printf 'hello\n' >"$www/hello.txt"
printf 'a\n' >"$www/sub/a.txt"
printf 'b\n' >"$www/sub/b.txt"
printf 'amp\n' >"$www/sub/a&b.txt"
printf '<html><body>index</body></html>\n' >"$www/site/index.html"
printf '<html><body>home</body></html>\n' >"$www/site/home.html"
printf 'secret\n' >"$dir/secret.txt" # outside the root: never served

sha() {
    sha256sum "$1" | cut -d' ' -f1
}

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_web NAME ARGS...: coil-web serve ARGS (access log in NAME.log,
# messages in NAME.err); waits for its "listening on" line for the last
# endpoint and sets $web_pid, $port (the first TCP port), $tls_port (the
# first TLS port, if any).
start_web() {
    name=$1
    shift
    "$WEB" serve "$@" >"$dir/$name.log" 2>"$dir/$name.err" &
    web_pid=$!
    pids="$pids $web_pid"
    n=0
    for a in "$@"; do
        case $a in
        tcp:* | tls:* | ssl:* | unix:*) n=$((n + 1)) ;;
        esac
    done
    wait_for "coil-web ($name) listening on $n endpoints" "$web_pid" \
        sh -c "[ \$(grep -c 'listening on' '$dir/$name.err') -ge $n ]"
    port=$(sed -n 's/.*listening on tcp:\([0-9][0-9]*\).*/\1/p' "$dir/$name.err" | head -n1)
    tls_port=$(sed -n 's/.*listening on ssl:\([0-9][0-9]*\).*/\1/p' "$dir/$name.err" | head -n1)
}

# stop_web: SIGTERM; it must exit 0 (under ASan: without leaks).
stop_web() {
    kill -TERM "$web_pid"
    rc=0
    wait "$web_pid" || rc=$?
    [ "$rc" -eq 0 ] || fail "coil-web serve exited $rc after SIGTERM"
}

# log_has PATTERN: a line of the access log (web.log) matches (grep -E).
log_has() {
    # The line is written when the request is over, which may come a moment
    # after the client saw the whole response.
    wait_for "an access log line matching '$1'" "$web_pid" grep -Eq -- "$1" "$dir/web.log"
}

start_web web "tcp:0:interface=127.0.0.1" \
    "tls:0:interface=127.0.0.1:privateKey=$certs/server.key:certKey=$certs/server-chain.pem" \
    "unix:$dir/web.sock" --root "$www"
[ -n "$port" ] || fail "coil-web printed no TCP port: $(cat "$dir/web.err")"
[ -n "$tls_port" ] || fail "coil-web printed no TLS port: $(cat "$dir/web.err")"
base=http://127.0.0.1:$port

# ---- curl -------------------------------------------------------------------

# code ARGS...: curl's status code for ARGS (body to $dir/body, headers to
# $dir/head).
code() {
    # curl leaves -o's file alone when no body comes (304, HEAD): start empty.
    : >"$dir/body"
    $T curl -sS -o "$dir/body" -D "$dir/head" -w '%{http_code}' "$@" 2>"$dir/curl.err" ||
        fail "curl $*: $(cat "$dir/curl.err")"
}

header() {
    tr -d '\r' <"$dir/head" | sed -n "s/^$1: //Ip" | head -n1
}

test_curl() {
    # A 1 MiB file, byte for byte.
    [ "$(code "$base/file.bin")" = 200 ] || fail "GET /file.bin: $(cat "$dir/head")"
    [ "$(sha "$dir/body")" = "$(sha "$www/file.bin")" ] || fail "GET /file.bin: the bytes differ"
    [ "$(header Content-Length)" = 1048576 ] || fail "GET /file.bin: Content-Length $(header Content-Length)"
    header Content-Type | grep -q . || fail "GET /file.bin: no Content-Type"
    log_has '^127\.0\.0\.1 - - \[[^]]+\] "GET /file\.bin HTTP/1\.1" 200 1048576 "-" "curl/[^"]*"$'
    # A client that sends its request and half-closes (nc -N shuts its
    # write side at the end of stdin) still gets the whole file: a body
    # being sent is not abandoned at the client's EOF.
    printf 'GET /file.bin HTTP/1.0\r\n\r\n' | $T nc -N 127.0.0.1 "$port" >"$dir/nc.out" ||
        fail "nc -N GET /file.bin failed"
    sed '1,/^\r$/d' "$dir/nc.out" >"$dir/nc.body"
    [ "$(sha "$dir/nc.body")" = "$(sha "$www/file.bin")" ] ||
        fail "GET /file.bin with a half-close (nc -N): $(wc -c <"$dir/nc.body") bytes, not the file"
    [ "$(code "$base/hello.txt")" = 200 ] || fail "GET /hello.txt"
    [ "$(cat "$dir/body")" = hello ] || fail "GET /hello.txt: '$(cat "$dir/body")'"
    header Content-Type | grep -q '^text/plain' || fail "hello.txt: Content-Type $(header Content-Type)"

    # HEAD: the headers of GET, no body (pyclient.py's pipelined HEAD shows
    # no stray bytes follow on the wire).
    out=$($T curl -sS -I -o /dev/null -D "$dir/head" -w '%{http_code} %{size_download}' "$base/file.bin") ||
        fail "HEAD /file.bin"
    [ "$out" = "200 0" ] || fail "HEAD /file.bin: status and body size '$out'"
    [ "$(header Content-Length)" = 1048576 ] || fail "HEAD: Content-Length $(header Content-Length)"
    log_has '"HEAD /file\.bin HTTP/1\.1" 200 '

    # One range.
    [ "$(code -r 100-199 "$base/file.bin")" = 206 ] || fail "Range 100-199: $(cat "$dir/head")"
    dd if="$www/file.bin" of="$dir/want" bs=1 skip=100 count=100 2>/dev/null
    cmp -s "$dir/body" "$dir/want" || fail "Range 100-199: wrong bytes"
    [ "$(header Content-Range)" = "bytes 100-199/1048576" ] ||
        fail "Range: Content-Range '$(header Content-Range)'"
    [ "$(code -r 2000000-2000010 "$base/file.bin")" = 416 ] || fail "an unsatisfiable range is not 416"

    # ETag and If-None-Match: 304 without a body.
    code "$base/hello.txt" >/dev/null
    etag=$(header ETag)
    [ -n "$etag" ] || fail "no ETag on /hello.txt"
    [ "$(code -H "If-None-Match: $etag" "$base/hello.txt")" = 304 ] || fail "If-None-Match $etag: not 304"
    [ ! -s "$dir/body" ] || fail "304 with a body"
    lm=$(code "$base/hello.txt" >/dev/null && header Last-Modified)
    [ -n "$lm" ] || fail "no Last-Modified on /hello.txt"
    [ "$(code -H "If-Modified-Since: $lm" "$base/hello.txt")" = 304 ] || fail "If-Modified-Since: not 304"

    # A listing, names escaped; the directory without its slash redirects.
    [ "$(code "$base/sub/")" = 200 ] || fail "GET /sub/"
    grep -q 'a\.txt' "$dir/body" && grep -q 'b\.txt' "$dir/body" || fail "the listing lacks a.txt, b.txt: $(cat "$dir/body")"
    grep -q 'a&amp;b\.txt' "$dir/body" || fail "the listing does not escape 'a&b.txt': $(cat "$dir/body")"
    ! grep -q 'a&b\.txt' "$dir/body" || fail "the listing holds a raw '&'"
    c=$(code "$base/sub")
    case $c in 301 | 302 | 307 | 308) ;; *) fail "GET /sub: $c, not a redirect" ;; esac
    header Location | grep -q 'sub/$' || fail "GET /sub: Location '$(header Location)'"
    [ "$(code -L "$base/sub")" = 200 ] || fail "curl -L /sub"
    [ "$(code "$base/site/")" = 200 ] || fail "GET /site/"
    grep -q index "$dir/body" || fail "/site/ is not its index.html"

    # 404, and no way out of the root.
    [ "$(code "$base/nope")" = 404 ] || fail "GET /nope: not 404"
    for path in /../secret.txt /sub/../../secret.txt /%2e%2e/secret.txt /sub/%2e%2e/%2e%2e/secret.txt \
        /..%2fsecret.txt /secret.txt%00; do
        c=$(code --path-as-is "$base$path")
        ! grep -q secret "$dir/body" || fail "GET $path served the file outside the root ($c)"
        case $c in 400 | 403 | 404) ;; *) fail "GET $path: $c, not 400/403/404" ;; esac
    done
    log_has '"GET /nope HTTP/1\.1" 404 '

    # Keep-alive: two URLs, one connection.
    $T curl -sS -v -o /dev/null -o /dev/null "$base/hello.txt" "$base/sub/a.txt" 2>"$dir/curl.v" ||
        fail "curl with two URLs: $(cat "$dir/curl.v")"
    grep -q "Re-using existing connection" "$dir/curl.v" ||
        fail "curl did not reuse the connection: $(cat "$dir/curl.v")"

    # https with the test CA; ALPN chose http/1.1.
    $T curl -sS -v --cacert "$certs/ca.pem" -o "$dir/body" "https://localhost:$tls_port/hello.txt" \
        2>"$dir/curl.v" || fail "https: $(cat "$dir/curl.v")"
    [ "$(cat "$dir/body")" = hello ] || fail "https: '$(cat "$dir/body")'"
    grep -Eiq 'ALPN.*(accepted|selected).*http/1\.1' "$dir/curl.v" ||
        fail "https: no ALPN http/1.1 in curl -v: $(cat "$dir/curl.v")"
    [ "$(code --cacert "$certs/ca.pem" "https://localhost:$tls_port/file.bin")" = 200 ] || fail "https /file.bin"
    [ "$(sha "$dir/body")" = "$(sha "$www/file.bin")" ] || fail "https /file.bin: the bytes differ"
    rc=0
    $T curl -sS -o /dev/null "https://localhost:$tls_port/hello.txt" 2>/dev/null || rc=$?
    [ "$rc" -ne 0 ] || fail "https without the test CA was accepted"

    # A UNIX socket.
    [ "$(code --unix-socket "$dir/web.sock" http://localhost/file.bin)" = 200 ] || fail "--unix-socket"
    [ "$(sha "$dir/body")" = "$(sha "$www/file.bin")" ] || fail "--unix-socket: the bytes differ"

    # POST to a file: 405 with Allow.
    [ "$(code -d 'a=1' "$base/hello.txt")" = 405 ] || fail "POST /hello.txt: not 405"
    header Allow | grep -q GET || fail "405 without Allow: GET: $(cat "$dir/head")"
    log_has '"POST /hello\.txt HTTP/1\.1" 405 '
    stop_web
}

# ---- python -----------------------------------------------------------------

test_python() {
    $T "$PY" "$here/pyclient.py" requests 127.0.0.1 "$port" "$dir/web.log" >"$dir/py.out" 2>"$dir/py.err" ||
        fail "pyclient.py requests: $(cat "$dir/py.err")"
    stop_web
    # The server's options: a stalled request head is cut by a short
    # --header-timeout, an idle keep-alive connection by --idle-timeout, a
    # body over --max-body is 413; --no-listings, --index.
    start_web slow "tcp:0:interface=127.0.0.1" --root "$www" --header-timeout 1 --idle-timeout 1 \
        --max-body 64k --no-listings --index home.html --quiet
    for what in slowloris idle oversize; do
        $T "$PY" "$here/pyclient.py" $what 127.0.0.1 "$port" >"$dir/py.out" 2>"$dir/py.err" ||
            fail "pyclient.py $what: $(cat "$dir/py.err")"
    done
    base=http://127.0.0.1:$port
    [ "$(code "$base/sub/")" = 403 ] || fail "--no-listings: GET /sub/ is not 403"
    [ "$(code "$base/site/")" = 200 ] && grep -q home "$dir/body" || fail "--index home.html: /site/ is not home.html"
    stop_web
    [ ! -s "$dir/slow.log" ] || fail "--quiet: an access log was written: $(cat "$dir/slow.log")"
}

# ---- twisted ----------------------------------------------------------------

test_twisted() {
    "$PY" -c 'import twisted.web.client, service_identity' 2>/dev/null ||
        fail "Twisted is missing: install Debian's python3-twisted and python3-service-identity (tools/install-deps)"
    $T "$PY" "$here/twisted_agent_client.py" "$port" "$tls_port" "$certs/ca.pem" "$(sha "$www/file.bin")" \
        >"$dir/tw.out" 2>"$dir/tw.err" || fail "twisted_agent_client.py: $(cat "$dir/tw.err")"
    log_has '"GET /hello\.txt HTTP/1\.1" 200 6 "-" "[^"]*"$'
    stop_web
}

# ---- coil-web get -------------------------------------------------------------

# expect_rc WANT PATTERN CMD...: CMD exits WANT and its stderr matches
# PATTERN (grep -E; empty: anything). stdout in $dir/out.
expect_rc() {
    want=$1
    pattern=$2
    shift 2
    rc=0
    $T "$@" >"$dir/out" 2>"$dir/cmd.err" </dev/null || rc=$?
    [ "$rc" -eq "$want" ] || fail "'$*' exited $rc, want $want: $(cat "$dir/cmd.err")"
    if [ -n "$pattern" ] && ! grep -Eq -- "$pattern" "$dir/cmd.err"; then
        fail "'$*': stderr does not match '$pattern': $(cat "$dir/cmd.err")"
    fi
    return 0
}

test_get() {
    # -o: FILE.part renamed at the end; stderr is no terminal: no bar.
    expect_rc 0 "" "$WEB" get "$base/file.bin" -o "$dir/got.bin"
    [ "$(sha "$dir/got.bin")" = "$(sha "$www/file.bin")" ] || fail "get -o: the bytes differ"
    [ ! -e "$dir/got.bin.part" ] || fail "get -o left got.bin.part"
    [ ! -s "$dir/cmd.err" ] || fail "get -o wrote on stderr (not a terminal): $(cat "$dir/cmd.err")"
    # To stdout (also -o -); -o naming a FIFO (or /dev/null) writes it in
    # place, no FIFO.part renamed over it.
    expect_rc 0 "" "$WEB" get "$base/hello.txt"
    [ "$(cat "$dir/out")" = hello ] || fail "get to stdout: '$(cat "$dir/out")'"
    expect_rc 0 "" "$WEB" get "$base/hello.txt" -o -
    [ "$(cat "$dir/out")" = hello ] || fail "get -o -: '$(cat "$dir/out")'"
    mkfifo "$dir/fifo"
    cat "$dir/fifo" >"$dir/from-fifo" &
    cat_pid=$!
    expect_rc 0 "" "$WEB" get "$base/hello.txt" -o "$dir/fifo"
    wait "$cat_pid" || fail "reading the FIFO failed"
    [ "$(cat "$dir/from-fifo")" = hello ] || fail "get -o FIFO: '$(cat "$dir/from-fifo")'"
    [ -p "$dir/fifo" ] && [ ! -e "$dir/fifo.part" ] || fail "get -o FIFO replaced the FIFO"
    expect_rc 1 "is a directory" "$WEB" get "$base/hello.txt" -o "$dir"
    # 404: exit 22 (as curl -f), nothing saved; --fail-ok: 0 and the page.
    expect_rc 22 "404" "$WEB" get "$base/nope" -o "$dir/nope"
    [ ! -e "$dir/nope" ] && [ ! -e "$dir/nope.part" ] || fail "get of a 404 left a file"
    expect_rc 0 "" "$WEB" get --fail-ok "$base/nope"
    [ -s "$dir/out" ] || fail "get --fail-ok: no error page"
    # -i: the status line and the headers first.
    expect_rc 0 "" "$WEB" get -i "$base/hello.txt"
    tr -d '\r' <"$dir/out" >"$dir/out.lf"
    head -n1 "$dir/out.lf" | grep -q '^HTTP/1\.1 200 OK$' || fail "get -i: first line '$(head -n1 "$dir/out.lf")'"
    grep -qi '^Content-Length: 6$' "$dir/out.lf" || fail "get -i: no Content-Length: 6: $(cat "$dir/out.lf")"
    [ "$(sed -n '/^$/,$p' "$dir/out.lf" | sed 1d)" = hello ] || fail "get -i: body after the head: $(cat "$dir/out.lf")"
    # -L follows the redirect to the slash.
    expect_rc 0 "" "$WEB" get -L "$base/sub"
    grep -q 'a\.txt' "$dir/out" || fail "get -L /sub: not the listing: $(cat "$dir/out")"
    # -X, -d and -H reach the server (the access log shows method, Referer
    # and User-Agent).
    expect_rc 22 "405" "$WEB" get -X PUT -d 'x=1' -H 'User-Agent: coil-web-test/1' \
        -H 'Referer: http://ref.example/' "$base/hello.txt"
    log_has '"PUT /hello\.txt HTTP/1\.1" 405 [0-9-]+ "http://ref\.example/" "coil-web-test/1"$'
    printf 'from a file' >"$dir/data"
    expect_rc 22 "405" "$WEB" get -d "@$dir/data" "$base/sub/a.txt"
    log_has '"POST /sub/a\.txt HTTP/1\.1" 405 '
    expect_rc 2 "Name: value" "$WEB" get -H 'no colon' "$base/hello.txt"
    # The bodies themselves, echoed by a Python server: -d DATA (form type
    # by default), -d @FILE (1 MiB), -d @- from stdin with -X PUT and a type.
    "$PY" "$here/pyclient.py" echoserver "$dir/echo.port" 2>"$dir/echo.err" &
    echo_pid=$!
    pids="$pids $echo_pid"
    wait_for "the echo server's port" "$echo_pid" test -s "$dir/echo.port"
    echo_url=http://127.0.0.1:$(cat "$dir/echo.port")/echo
    expect_rc 0 "" "$WEB" get -i -d 'a=1&b=x y' "$echo_url"
    tr -d '\r' <"$dir/out" >"$dir/out.lf"
    grep -q '^X-Got-Method: POST$' "$dir/out.lf" || fail "-d: not a POST: $(cat "$dir/out.lf")"
    grep -q '^X-Got-Content-Type: application/x-www-form-urlencoded$' "$dir/out.lf" ||
        fail "-d: Content-Type: $(cat "$dir/out.lf")"
    [ "$(tail -n1 "$dir/out.lf")" = "a=1&b=x y" ] || fail "-d: the echo is '$(tail -n1 "$dir/out.lf")'"
    expect_rc 0 "" "$WEB" get -d "@$www/file.bin" -o "$dir/echo.bin" "$echo_url"
    [ "$(sha "$dir/echo.bin")" = "$(sha "$www/file.bin")" ] || fail "-d @FILE: the echo differs"
    rc=0
    printf 'from stdin' | $T "$WEB" get -i -X PUT -d @- -H 'Content-Type: text/plain' "$echo_url" \
        >"$dir/out" 2>"$dir/cmd.err" || rc=$?
    [ "$rc" -eq 0 ] || fail "-d @-: exit $rc: $(cat "$dir/cmd.err")"
    tr -d '\r' <"$dir/out" >"$dir/out.lf"
    grep -q '^X-Got-Method: PUT$' "$dir/out.lf" && grep -q '^X-Got-Content-Type: text/plain$' "$dir/out.lf" &&
        grep -q '^X-Got-Length: 10$' "$dir/out.lf" || fail "-X PUT -d @- -H: $(cat "$dir/out.lf")"
    [ "$(tail -n1 "$dir/out.lf")" = "from stdin" ] || fail "-d @-: the echo is '$(tail -n1 "$dir/out.lf")'"
    expect_rc 1 "cannot send '$dir/none'" "$WEB" get -d "@$dir/none" "$echo_url"
    # https: verified against --cacert; refused without it; --insecure warns.
    expect_rc 0 "" "$WEB" get --cacert "$certs/ca.pem" "https://localhost:$tls_port/file.bin" -o "$dir/tls.bin"
    [ "$(sha "$dir/tls.bin")" = "$(sha "$www/file.bin")" ] || fail "get https: the bytes differ"
    expect_rc 1 "certificate verify failed" "$WEB" get "https://localhost:$tls_port/hello.txt"
    expect_rc 1 "certificate verify failed" "$WEB" get --cacert "$certs/other.pem" "https://localhost:$tls_port/hello.txt"
    expect_rc 0 "warning: --insecure" "$WEB" get --insecure "https://localhost:$tls_port/hello.txt"
    [ "$(cat "$dir/out")" = hello ] || fail "get --insecure: '$(cat "$dir/out")'"
    # A UNIX socket (http+unix, the path percent-encoded as the host).
    enc=$("$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$dir/web.sock")
    expect_rc 0 "" "$WEB" get "http+unix://$enc/hello.txt"
    [ "$(cat "$dir/out")" = hello ] || fail "get http+unix: '$(cat "$dir/out")'"
    # Nobody listening: exit 1, said plainly.
    p=$(free_port)
    expect_rc 1 "^coil-web: cannot connect to 127\.0\.0\.1:$p: Connection refused$" "$WEB" get "http://127.0.0.1:$p/"
    expect_rc 2 "" "$WEB" get "ftp://127.0.0.1/"
    # Arguments: usage errors exit 2 with a message, --help 0, a port in
    # use or a missing root 1.
    expect_rc 0 "" "$WEB" --help
    grep -q '^Usage: coil-web serve' "$dir/out" || fail "--help: $(cat "$dir/out")"
    expect_rc 2 "missing command" "$WEB"
    expect_rc 2 "missing --root" "$WEB" serve tcp:0
    expect_rc 2 "are for get" "$WEB" serve tcp:0 --root "$www" -o x
    expect_rc 2 "are for serve" "$WEB" get "$base/" --root "$www"
    expect_rc 2 "do not go together" "$WEB" get --cacert "$certs/ca.pem" --insecure "$base/"
    expect_rc 2 "positive size" "$WEB" serve tcp:0 --root "$www" --max-body 0
    expect_rc 2 "positive number of seconds" "$WEB" serve tcp:0 --root "$www" --idle-timeout x
    expect_rc 2 "'tls:0:privateKey=$dir/nokey'" "$WEB" serve "tls:0:privateKey=$dir/nokey" --root "$www"
    expect_rc 1 "cannot serve '$dir/nothere'" "$WEB" serve tcp:0 --root "$dir/nothere"
    expect_rc 1 "cannot serve on 'tcp:$port:interface=127.0.0.1'" \
        "$WEB" serve "tcp:$port:interface=127.0.0.1" --root "$www"
    # A body cut short; the progress bar: stderr on a pty, a body that
    # takes about a second.
    for what in truncated progress; do
        $T "$PY" "$here/pyclient.py" $what "$WEB" "$dir/$what.bin" >"$dir/py.out" 2>"$dir/py.err" ||
            fail "pyclient.py $what: $(cat "$dir/py.err")"
    done
    stop_web
}

case $part in
curl) test_curl ;;
python) test_python ;;
twisted) test_twisted ;;
get) test_get ;;
*)
    echo "usage: run_client_interop.sh curl|python|twisted|get COIL_WEB" >&2
    exit 2
    ;;
esac
echo "http_client_interop $part: ok"
