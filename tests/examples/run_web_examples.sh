#!/bin/sh
# Runs the seed book's chapter-4 and chapter-5 examples (examples/web_*.c)
# for real on loopback and checks what they serve and print.
#
# Usage: run_web_examples.sh PART BINDIR [COIL_WEB]
#   BINDIR holds the example programs; PART is one of
#   echo      web_echo with curl: "You said:" and every request line back
#   pages     web_pages: "/" and "/about", 404 for the rest, any method
#   static    web_static on a scratch folder: index.html, types, a range,
#             a listing, a 1 MiB file intact, no way out of the folder
#   clock     web_clock: "The time is ...", on every path; POST is 405
#   calendar  web_calendar: /2026 is Python's calendar.calendar(2026) byte
#             for byte (and holds "December"), non-digits 404, /now a 302
#             to this year
#   form      web_form: the form; a POST escaped ("<b>" comes back as
#             "&lt;b&gt;"), urlencoded and multipart; no field is 400
#   busy      web_busy --delay 3: a second request is taken while the first
#             waits; both answer after the delay; a client that leaves
#             first has its page abandoned
#   clients   web_get, web_download, web_agent, web_agent_post against
#             web_pages, web_static, web_form and web_echo; failures exit 1
#   crawler   web_crawler against web_static serving 31 linked pages: each
#             fetched exactly once, nothing off the site, at most 5 (and
#             more than 1) requests in flight
#   crawler-coil-web  the same against `coil-web serve` (COIL_WEB)
#   unix      web_clock and web_static on a UNIX socket: curl --unix-socket,
#             web_get and the crawler with http+unix:// URLs
#   tls       web_calendar on a TLS endpoint (certificates made on the spot):
#             curl and web_get (verifying) get the page; an unknown CA fails
# Every server must exit 0 on SIGTERM (under ASan: with no leaks).
set -eu

part=$1
bin=$2
COIL_WEB=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
me="web $part"
. "$here/../tools/testlib.sh"
testlib_setup web-examples
PY=${PYTHON3:-/usr/bin/python3}
command -v curl >/dev/null 2>&1 || fail "curl is missing (tools/install-deps installs it)"
T="timeout -k 2 20" # a hung client fails the test instead of stalling it
CURL="$T curl -sS"

# start NAME ARGS...: run $bin/NAME --port 0 ARGS (stdout in NAME.out,
# stderr in NAME.err), wait for its "listening on 127.0.0.1:PORT" line;
# sets $server (its PID), $port and $base.
start() {
    name=$1
    shift
    "$bin/$name" --port 0 "$@" >"$dir/$name.out" 2>"$dir/$name.err" &
    server=$!
    pids="$pids $server"
    wait_for "$name's listening line" "$server" grep -q '^listening on 127\.0\.0\.1:' "$dir/$name.out"
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$dir/$name.out")
    [ -n "$port" ] || fail "$name: no port in: $(cat "$dir/$name.out")"
    base="http://127.0.0.1:$port"
}

# stop [PID NAME]: SIGTERM; the server must close everything and exit 0.
stop() {
    spid=${1:-$server}
    sname=${2:-$name}
    kill -TERM "$spid"
    rc=0
    wait "$spid" || rc=$?
    [ "$rc" -eq 0 ] || fail "$sname exited $rc after SIGTERM"
}

# get URL [CURL ARGS...]: the body in $dir/body, the head in $dir/head, the
# status in $code.
get() {
    url=$1
    shift
    code=$($CURL -D "$dir/head" -o "$dir/body" -w '%{http_code}' "$@" "$url") ||
        fail "curl $* $url failed"
}

# expect_code WANT: the last get's status.
expect_code() {
    [ "$code" = "$1" ] || fail "$url: status $code, expected $1; body: $(head -c 300 "$dir/body")"
}

# has FILE TEXT: FILE holds TEXT (a fixed string).
has() {
    grep -qF -- "$2" "$1" || fail "$1 lacks '$2'; it holds:
$(head -c 2000 "$1")"
}

# header NAME: the value of a response header of the last get.
header() {
    tr -d '\r' <"$dir/head" | sed -n "s/^$1: //Ip" | tail -n 1
}

# same FILE TEXT: FILE holds exactly TEXT (no final newline added).
same() {
    printf '%s' "$2" >"$dir/want"
    cmp -s "$1" "$dir/want" || fail "$1 is not what was expected:
--- expected:
$2
--- got:
$(head -c 2000 "$1")"
}

# make_site DIR: index.html linking a/p1..a/p10; page k (a/: 1-10, b/:
# 11-20, c/: 21-30) links to k+1 (or to the index), to 7k mod 30 + 1, to
# the index, to a fragment, to mail, to another site, and through "../" and
# "./" paths that name the same pages; every page is reachable.
make_site() {
    "$PY" - "$1" <<'EOF'
import os, sys
root = sys.argv[1]
def where(k):
    return "%s/p%d.html" % ("abc"[(k - 1) // 10], k)
for d in "abc":
    os.makedirs(os.path.join(root, d), exist_ok=True)
links = "".join('<a href="a/p%d.html">%d</a>\n' % (k, k) for k in range(1, 11))
with open(os.path.join(root, "index.html"), "w") as f:
    f.write("<html><body><h1>Index</h1>\n%s</body></html>\n" % links)
for k in range(1, 31):
    nxt = "../" + where(k + 1) if k < 30 else "../index.html"
    jump = "/" + where(7 * k % 30 + 1)
    same_dir = "./p%d.html" % k
    detour = "../%s/../%s" % ("abc"[(k % 3)], where(k))
    with open(os.path.join(root, where(k)), "w") as f:
        f.write('<html><body id="top"><h1>Page %d</h1>\n'
                '<a href="%s">next</a> <a href=\'%s\'>jump</a>\n'
                '<A HREF="/index.html">home</A> <a href="#top">top</a>\n'
                '<a href="mailto:web@example.invalid">mail</a>\n'
                '<a href="http://example.invalid/x.html">elsewhere</a>\n'
                '<a href="%s">me</a> <a href="%s">me again</a>\n'
                '</body></html>\n' % (k, nxt, jump, same_dir, detour))
EOF
}

# crawl: web_crawler from $base/index.html; every page once, nothing else.
crawl() {
    $T "$bin/web_crawler" "$base/index.html" >"$dir/crawl.out" 2>"$dir/crawl.err" ||
        fail "web_crawler exited $?"
    ! grep -q '^ERR' "$dir/crawl.out" || fail "failed fetches: $(grep '^ERR' "$dir/crawl.out")"
    ! grep -q 'example.invalid' "$dir/crawl.out" || fail "the crawler left the site"
    grep '^200 ' "$dir/crawl.out" | awk '{print $3}' | sort >"$dir/fetched"
    {
        echo "$base/index.html"
        for k in $(seq 1 30); do
            d=$(echo abc | cut -c $(((k - 1) / 10 + 1)))
            echo "$base/$d/p$k.html"
        done
    } | sort >"$dir/expected"
    cmp -s "$dir/fetched" "$dir/expected" || fail "pages fetched (left) differ from the site's (right):
$(diff "$dir/fetched" "$dir/expected" || true)"
    [ "$(grep -c '^200 ' "$dir/crawl.out")" -eq 31 ] || fail "pages fetched more than once"
    summary=$(tail -n 1 "$dir/crawl.out")
    case $summary in
    "crawled 31 pages ("*" bytes) from $base/index.html, 0 failed, at most "[2-5]" requests in flight") ;;
    *) fail "summary: '$summary' (want 31 pages, 0 failed, 2 to 5 in flight)" ;;
    esac
}

case $part in
echo)
    start web_echo
    get "$base/hello?x=1" -H 'X-Test: yes'
    expect_code 200
    has "$dir/body" "You said:"
    has "$dir/body" "GET /hello?x=1 HTTP/1.1"
    has "$dir/body" "X-Test: yes"
    head -n 1 "$dir/body" | grep -q '^You said:' || fail "the body does not start with 'You said:'"
    stop
    ;;
pages)
    start web_pages
    get "$base/"
    expect_code 200
    same "$dir/body" "<h1>Home</h1>Home page"
    [ "$(header Content-Type)" = "text/html" ] || fail "Content-Type: '$(header Content-Type)'"
    get "$base/about"
    expect_code 200
    same "$dir/body" "<h1>About</h1>All about me"
    get "$base/about/more"
    expect_code 404
    same "$dir/body" "<h1>Not Found</h1>"
    get "$base/nothing-here"
    expect_code 404
    get "$base/about" -X POST -d 'x=1' # process() takes every method
    expect_code 200
    same "$dir/body" "<h1>About</h1>All about me"
    stop
    ;;
static)
    mkdir -p "$dir/www/sub" "$dir/secret"
    printf '<h1>It works</h1>\n' >"$dir/www/index.html"
    printf 'plain text\n' >"$dir/www/notes.txt"
    printf 'body { color: red }\n' >"$dir/www/sub/style.css"
    printf 'keep out\n' >"$dir/secret/key.txt"
    head -c 1048576 /dev/urandom >"$dir/www/big.bin"
    start web_static "$dir/www"
    get "$base/"
    expect_code 200
    same "$dir/body" "<h1>It works</h1>
"
    get "$base/notes.txt"
    expect_code 200
    case $(header Content-Type) in text/plain*) ;; *) fail "notes.txt: Content-Type '$(header Content-Type)'" ;; esac
    get "$base/sub/style.css"
    case $(header Content-Type) in text/css*) ;; *) fail "style.css: Content-Type '$(header Content-Type)'" ;; esac
    get "$base/sub/" # no index.html: a listing
    expect_code 200
    has "$dir/body" "style.css"
    get "$base/big.bin"
    expect_code 200
    cmp -s "$dir/body" "$dir/www/big.bin" || fail "big.bin came back different"
    get "$base/big.bin" -r 100-199
    expect_code 206
    [ "$(wc -c <"$dir/body")" -eq 100 ] || fail "the range 100-199 gave $(wc -c <"$dir/body") bytes"
    get "$base/missing.html"
    expect_code 404
    get "$base/../secret/key.txt" --path-as-is
    expect_code 404
    get "$base/%2e%2e/secret/key.txt" --path-as-is
    expect_code 404
    ! grep -q 'keep out' "$dir/body" || fail "a file outside the root was served"
    stop
    ;;
clock)
    start web_clock
    get "$base/"
    expect_code 200
    grep -Eq '^The time is [A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} [0-9]{4}$' "$dir/body" ||
        fail "the clock says: $(cat "$dir/body")"
    get "$base/any/path/below" # a leaf renders every path
    expect_code 200
    has "$dir/body" "The time is "
    get "$base/" -X POST -d x=1
    expect_code 405
    case $(header Allow) in *GET*) ;; *) fail "405 without GET in Allow: '$(header Allow)'" ;; esac
    stop
    ;;
calendar)
    start web_calendar
    get "$base/"
    expect_code 200
    has "$dir/body" "<h1>Welcome</h1>"
    for year in 2026 2024 1900 1 9999; do
        get "$base/$year"
        expect_code 200
        "$PY" -c 'import calendar, sys; sys.stdout.write("<html><body><pre>%s</pre></body></html>" % calendar.calendar(int(sys.argv[1])))' \
            "$year" >"$dir/want.html"
        cmp -s "$dir/body" "$dir/want.html" || fail "/$year differs from Python's calendar.calendar($year):
$(diff "$dir/want.html" "$dir/body" || true)"
    done
    get "$base/2026"
    has "$dir/body" "December"
    has "$dir/body" "January"
    get "$base/2026/extra" # a year page is a leaf
    expect_code 200
    has "$dir/body" "December"
    for bad in abc 20x6 0 12345 -1; do
        get "$base/$bad"
        expect_code 404
    done
    get "$base/now"
    expect_code 302
    year=$(date +%Y)
    case $(header Location) in */"$year") ;; *) fail "/now went to '$(header Location)', not this year ($year)" ;; esac
    get "$base/now" -L
    expect_code 200
    has "$dir/body" "$year"
    has "$dir/body" "December"
    stop
    ;;
form)
    start web_form
    get "$base/"
    expect_code 200
    has "$dir/body" '<form method="POST" action="/">'
    has "$dir/body" 'name="form-field"'
    get "$base/" -d 'form-field=<b>bold</b> & "quotes"'
    expect_code 200
    has "$dir/body" 'You submitted: &lt;b&gt;bold&lt;/b&gt; '
    ! grep -qF '<b>' "$dir/body" || fail "the form echoed '<b>' unescaped"
    get "$base/" --data-urlencode 'form-field=<script>x</script>'
    expect_code 200
    has "$dir/body" 'You submitted: &lt;script&gt;x&lt;/script&gt;'
    get "$base/" --form-string 'form-field=<i>multipart</i>'
    expect_code 200
    has "$dir/body" 'You submitted: &lt;i&gt;multipart&lt;/i&gt;'
    get "$base/" -d 'other=1'
    expect_code 400
    stop
    ;;
busy)
    start web_busy --delay 3
    t0=$(date +%s%N)
    $CURL -o "$dir/a.body" "$base/" 2>"$dir/curl-a.err" &
    a=$!
    wait_for "the first request" "$server" grep -q '^request 1: busy' "$dir/web_busy.out"
    $CURL -o "$dir/b.body" "$base/" 2>"$dir/curl-b.err" &
    b=$!
    # The server takes the second request while the first still waits: a
    # blocking page (the book's time.sleep) would render it only afterwards.
    wait_for "the second request" "$server" grep -q '^request 2: busy' "$dir/web_busy.out"
    kill -0 "$a" 2>/dev/null || fail "the first request was answered before the second was taken"
    wait "$a" || fail "curl (first request) exited $?"
    t1=$(date +%s%N)
    wait "$b" || fail "curl (second request) exited $?"
    has "$dir/a.body" "Finally done at "
    has "$dir/b.body" "Finally done at "
    [ $(((t1 - t0) / 1000000)) -ge 2900 ] || fail "the page came after $(((t1 - t0) / 1000000)) ms, before its 3 s delay"
    # A client that leaves first (its connection reset once the server took
    # the request): the page is abandoned, the deferred cancelled.
    $T "$PY" - "$port" "$dir/web_busy.out" >"$dir/leave.out" 2>"$dir/leave.err" <<'EOF' || fail "the python3 client failed"
import socket, struct, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
for _ in range(400):
    if "request 3: busy" in open(sys.argv[2]).read():
        break
    time.sleep(0.05)
else:
    sys.exit("the server did not take the request")
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()  # with SO_LINGER 0: a reset, the connection is gone
EOF
    wait_for "the abandoned page" "$server" grep -q '^request 3: the client left' "$dir/web_busy.out"
    ! grep -q '^request 3: done' "$dir/web_busy.out" || fail "the abandoned page was still made"
    stop
    ;;
clients)
    start web_pages
    pages=$server
    pages_base=$base
    $T "$bin/web_get" "$pages_base/" >"$dir/get.out" 2>"$dir/get.err" || fail "web_get exited $?"
    same "$dir/get.out" "<h1>Home</h1>Home page"
    rc=0
    $T "$bin/web_get" "$pages_base/missing" >"$dir/get.out" 2>"$dir/get.err" || rc=$?
    [ "$rc" -eq 1 ] || fail "web_get of a 404 exited $rc, expected 1"
    has "$dir/get.err" "404"
    rc=0
    $T "$bin/web_get" "ftp://127.0.0.1/" >"$dir/get.out" 2>"$dir/get.err" || rc=$?
    [ "$rc" -eq 1 ] && [ -s "$dir/get.err" ] || fail "web_get of an ftp URL exited $rc and said '$(cat "$dir/get.err")'"

    $T "$bin/web_download" "$pages_base/about" "$dir/about.html" >"$dir/dl.out" 2>"$dir/dl.err" ||
        fail "web_download exited $?"
    same "$dir/about.html" "<h1>About</h1>All about me"
    has "$dir/dl.out" "saved $pages_base/about to $dir/about.html (26 bytes)"
    rc=0
    $T "$bin/web_download" "$pages_base/missing" "$dir/missing.html" >"$dir/dl.out" 2>"$dir/dl.err" || rc=$?
    [ "$rc" -eq 1 ] || fail "web_download of a 404 exited $rc, expected 1"
    [ ! -e "$dir/missing.html" ] && [ ! -e "$dir/missing.html.part" ] || fail "a failed download left a file"

    $T "$bin/web_agent" "$pages_base/about" >"$dir/agent.out" 2>"$dir/agent.err" || fail "web_agent exited $?"
    [ "$(head -n 1 "$dir/agent.out")" = "HTTP/1.1 200 OK" ] || fail "web_agent's first line: $(head -n 1 "$dir/agent.out")"
    grep -qi '^Content-Type: text/html$' "$dir/agent.out" || fail "web_agent printed no Content-Type: $(cat "$dir/agent.out")"
    [ "$(tail -n 1 "$dir/agent.out")" = "<h1>About</h1>All about me" ] || fail "web_agent's body: $(tail -n 1 "$dir/agent.out")"
    stop "$pages" web_pages

    # The agent's request as the echo server saw it (a body up to the close).
    start web_echo
    $T "$bin/web_agent" "$base/echo/me" >"$dir/agent.out" 2>"$dir/agent.err" || fail "web_agent (echo) exited $?"
    has "$dir/agent.out" "You said:"
    has "$dir/agent.out" "GET /echo/me HTTP/1.1"
    has "$dir/agent.out" "User-Agent: coil webbot"
    stop

    start web_form
    $T "$bin/web_agent_post" "$base/" 'form-field=%3Cb%3Ecoil%3C%2Fb%3E' >"$dir/post.out" 2>"$dir/post.err" ||
        fail "web_agent_post exited $?"
    [ "$(head -n 1 "$dir/post.out")" = "200 OK" ] || fail "web_agent_post: $(cat "$dir/post.out")"
    has "$dir/post.out" "You submitted: &lt;b&gt;coil&lt;/b&gt;"
    $T "$bin/web_agent_post" "$base/" >"$dir/post.out" 2>"$dir/post.err" || fail "web_agent_post (default) exited $?"
    has "$dir/post.out" "You submitted: python"
    rc=0
    $T "$bin/web_agent_post" "$base/" 'nothing=1' >"$dir/post.out" 2>"$dir/post.err" || rc=$?
    [ "$rc" -eq 1 ] && [ "$(head -n 1 "$dir/post.out")" = "400 Bad Request" ] ||
        fail "web_agent_post without the field exited $rc: $(cat "$dir/post.out")"
    stop

    # A 1 MiB file through getPage and downloadPage, and a closed port.
    mkdir -p "$dir/www"
    head -c 1048576 /dev/urandom >"$dir/www/big.bin"
    start web_static "$dir/www"
    $T "$bin/web_get" "$base/big.bin" >"$dir/big.get" 2>"$dir/get.err" || fail "web_get big.bin exited $?"
    cmp -s "$dir/big.get" "$dir/www/big.bin" || fail "web_get: big.bin came back different"
    $T "$bin/web_download" "$base/big.bin" "$dir/big.dl" >"$dir/dl.out" 2>"$dir/dl.err" || fail "web_download big.bin exited $?"
    cmp -s "$dir/big.dl" "$dir/www/big.bin" || fail "web_download: big.bin came back different"
    stop
    rc=0
    $T "$bin/web_get" "$base/" >"$dir/get.out" 2>"$dir/get.err" || rc=$?
    [ "$rc" -eq 1 ] && [ -s "$dir/get.err" ] || fail "web_get to a closed port exited $rc and said '$(cat "$dir/get.err")'"
    ;;
crawler)
    mkdir -p "$dir/site"
    make_site "$dir/site"
    start web_static "$dir/site"
    crawl
    stop
    ;;
unix)
    # The same site over a UNIX socket: http+unix:// URLs name the socket.
    sock="$dir/web.sock"
    unix_base="http+unix://$(printf '%s' "$sock" | sed 's|/|%2F|g')"
    "$bin/web_clock" --listen "unix:$sock" >"$dir/web_clock.out" 2>"$dir/web_clock.err" &
    server=$!
    name=web_clock
    pids="$pids $server"
    wait_for "web_clock's listening line" "$server" grep -qx "listening on unix:$sock" "$dir/web_clock.out"
    $CURL --unix-socket "$sock" -o "$dir/body" http://localhost/ || fail "curl --unix-socket failed"
    has "$dir/body" "The time is "
    $T "$bin/web_get" "$unix_base/any" >"$dir/get.out" 2>"$dir/get.err" || fail "web_get over UNIX exited $?"
    has "$dir/get.out" "The time is "
    stop
    mkdir -p "$dir/site"
    make_site "$dir/site"
    "$bin/web_static" --listen "unix:$sock" "$dir/site" >"$dir/web_static.out" 2>"$dir/web_static.err" &
    server=$!
    name=web_static
    pids="$pids $server"
    wait_for "web_static's listening line" "$server" grep -qx "listening on unix:$sock" "$dir/web_static.out"
    base=$unix_base
    crawl
    stop
    ;;
tls)
    # https: the same resources behind a TLS endpoint, with throwaway
    # certificates; web_get verifies by default (SSL_CERT_FILE names our CA).
    sh "$here/../tls/make-certs.sh" "$dir/certs" >"$dir/certs.log" 2>&1 || fail "make-certs.sh failed: $(cat "$dir/certs.log")"
    "$bin/web_calendar" --listen "tls:0:interface=127.0.0.1:privateKey=$dir/certs/server.key:certKey=$dir/certs/server.pem" \
        >"$dir/web_calendar.out" 2>"$dir/web_calendar.err" &
    server=$!
    name=web_calendar
    pids="$pids $server"
    wait_for "web_calendar's listening line" "$server" grep -q '^listening on 127\.0\.0\.1:' "$dir/web_calendar.out"
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$dir/web_calendar.out")
    base="https://127.0.0.1:$port"
    get "$base/2026" --cacert "$dir/certs/ca.pem"
    expect_code 200
    has "$dir/body" "December"
    SSL_CERT_FILE="$dir/certs/ca.pem" $T "$bin/web_get" "$base/2026" >"$dir/get.out" 2>"$dir/get.err" ||
        fail "web_get over https exited $?"
    cmp -s "$dir/get.out" "$dir/body" || fail "web_get over https got another page than curl"
    rc=0
    SSL_CERT_FILE=/dev/null $T "$bin/web_get" "$base/2026" >"$dir/get.out" 2>"$dir/get.err" || rc=$?
    [ "$rc" -eq 1 ] || fail "web_get trusted an unknown CA (exit $rc)"
    has "$dir/get.err" "certificate verify failed"
    stop
    ;;
crawler-coil-web)
    [ -n "$COIL_WEB" ] && [ -x "$COIL_WEB" ] || fail "coil-web is missing: give its path as the third argument"
    mkdir -p "$dir/site"
    make_site "$dir/site"
    "$COIL_WEB" serve tcp:0:interface=127.0.0.1 --root "$dir/site" >"$dir/coil-web.log" 2>"$dir/coil-web.err" &
    server=$!
    pids="$pids $server"
    wait_for "coil-web's listening line" "$server" grep -q 'listening on' "$dir/coil-web.err"
    port=$(sed -n 's/.*listening on .*127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$dir/coil-web.err" | head -n 1)
    [ -n "$port" ] || fail "coil-web: no port in: $(cat "$dir/coil-web.err")"
    base="http://127.0.0.1:$port"
    crawl
    # coil-web logs each request once, when it is over.
    logged() { [ "$(grep -c '"GET /' "$dir/coil-web.log")" -ge 31 ]; }
    wait_for "31 lines in coil-web's access log" "$server" logged
    [ "$(grep -c '"GET /' "$dir/coil-web.log")" -eq 31 ] || fail "coil-web logged $(grep -c '"GET /' "$dir/coil-web.log") requests, not 31"
    stop "$server" coil-web
    ;;
*)
    fail "unknown part '$part'"
    ;;
esac
echo "ok: web $part"
