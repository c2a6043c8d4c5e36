#!/usr/bin/python3
"""Python's http.client and raw sockets against coil-web serve
(run_client_interop.sh starts the server; the site is its www folder).

  pyclient.py requests HOST PORT ACCESS_LOG
      keep-alive: several requests on one HTTPConnection over one socket;
      pipelining: three requests in one send, three responses in order;
      a chunked request body (405 from the static files); HTTP/1.0
  pyclient.py slowloris HOST PORT     (server run with --header-timeout 1)
      a request head that never ends is answered 408 and closed in time
  pyclient.py idle HOST PORT          (server run with --idle-timeout 1)
      a keep-alive connection left idle is closed in time
  pyclient.py oversize HOST PORT      (server run with --max-body 64k)
      a Content-Length over the limit is answered 413 before the body
  pyclient.py echoserver PORTFILE
      an HTTP server answering POST and PUT with the body it got (for
      coil-web get -d); its port goes to PORTFILE
  pyclient.py truncated COIL_WEB OUT
      coil-web get -o from a server that closes inside the body: exit 1,
      nothing saved
  pyclient.py progress COIL_WEB OUT
      coil-web get with stderr on a pty, from a slow server of our own:
      the progress bar is drawn (percent, bytes, rate) and cleared

Exits 0, or 1 with what went wrong on stderr.
"""
import http.client
import os
import pty
import re
import select
import socket
import subprocess
import sys
import threading
import time


def fail(msg):
    sys.stderr.write("pyclient.py: FAIL: %s\n" % msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


# ---- a response reader over a raw socket ----------------------------------


class Reader:
    """Reads HTTP/1.1 responses one after the other from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _more(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("the server closed the connection")
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            self._more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exactly(self, n):
        while len(self.buf) < n:
            self._more()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self, head_only=False):
        status = self.line().decode("latin-1")
        m = re.match(r"HTTP/1\.[01] (\d{3}) ", status + " ")
        if not m:
            fail("bad status line %r" % status)
        headers = {}
        while True:
            h = self.line()
            if not h:
                break
            name, _, value = h.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if head_only:
            pass
        elif "content-length" in headers:
            body = self.exactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self.line().split(b";")[0], 16)
                if size == 0:
                    while self.line():
                        pass
                    break
                body += self.exactly(size)
                self.exactly(2)
        return int(m.group(1)), headers, body

    def at_eof(self, timeout):
        """True when the server closes within `timeout` seconds (bytes
        still in flight are read and dropped)."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not self.sock.recv(65536):
                    return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        return False


def connect(host, port):
    s = socket.create_connection((host, port), timeout=20)
    return s


# ---- requests ----------------------------------------------------------------


def keep_alive(host, port, log):
    conn = http.client.HTTPConnection(host, port, timeout=20)
    paths = ["/hello.txt", "/sub/a.txt", "/nope", "/hello.txt", "/sub/"]
    first = None
    for p in paths:
        conn.request("GET", p, headers={"User-Agent": "pyclient-keepalive"})
        resp = conn.getresponse()
        body = resp.read()
        if p == "/nope":
            check(resp.status == 404, "GET /nope: %d" % resp.status)
        else:
            check(resp.status == 200, "GET %s: %d" % (p, resp.status))
        if p == "/hello.txt":
            check(body == b"hello\n", "GET /hello.txt: %r" % body)
        check(not resp.will_close, "GET %s: the server means to close" % p)
        # http.client opens a new socket when the old one closed: the same
        # socket (object and local port) all along means one connection.
        here = (id(conn.sock), conn.sock.getsockname())
        if first is None:
            first = here
        check(here == first, "GET %s went on another connection" % p)
    # The server logged every one of them.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(log) as f:
            n = sum(1 for line in f if '"pyclient-keepalive"' in line)
        if n == len(paths):
            break
        time.sleep(0.05)
    check(n == len(paths), "%d access log lines for %d requests" % (n, len(paths)))
    conn.close()


def pipelining(host, port):
    s = connect(host, port)
    reqs = (
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /sub/a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        b"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    s.sendall(reqs)  # one send: the requests arrive together
    r = Reader(s)
    st, h, body = r.response()
    check((st, body) == (200, b"hello\n"), "pipelined 1: %d %r" % (st, body))
    st, h, body = r.response()
    check((st, body) == (200, b"a\n"), "pipelined 2: %d %r" % (st, body))
    st, h, body = r.response(head_only=True)
    check(st == 200 and h.get("content-length") == "6", "pipelined HEAD: %d %r" % (st, h))
    st, h, body = r.response()
    check(st == 404, "pipelined 4: %d" % st)
    check(h.get("connection", "").lower() == "close", "no Connection: close after the last: %r" % h)
    check(r.at_eof(10), "the connection stayed open after Connection: close")
    s.close()


def chunked_body(host, port):
    conn = http.client.HTTPConnection(host, port, timeout=20)
    conn.request(
        "POST",
        "/hello.txt",
        body=iter([b"a=1&", b"b=2"]),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        encode_chunked=True,
    )
    resp = conn.getresponse()
    resp.read()
    check(resp.status == 405, "chunked POST /hello.txt: %d, want 405" % resp.status)
    check("GET" in (resp.getheader("Allow") or ""), "405 without Allow: GET")
    # The connection is still good or closed cleanly; either way the next
    # request works (http.client reconnects when it was closed).
    conn.request("GET", "/hello.txt")
    resp = conn.getresponse()
    check(resp.status == 200 and resp.read() == b"hello\n", "GET after the chunked POST")
    conn.close()


def http10(host, port):
    s = connect(host, port)
    s.sendall(b"GET /hello.txt HTTP/1.0\r\n\r\n")
    r = Reader(s)
    st, h, body = r.response()
    check((st, body) == (200, b"hello\n"), "HTTP/1.0: %d %r" % (st, body))
    check(r.at_eof(10), "HTTP/1.0 without keep-alive: the connection stayed open")
    s.close()


def requests(host, port, log):
    keep_alive(host, port, log)
    pipelining(host, port)
    chunked_body(host, port)
    http10(host, port)


def slowloris(host, port):
    s = connect(host, port)
    t0 = time.monotonic()
    s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    r = Reader(s)
    s.settimeout(15)
    try:
        st, h, body = r.response()
        check(st == 408, "a stalled head: %d, want 408" % st)
    except EOFError:
        pass  # closed without an answer: also cut
    check(r.at_eof(15), "the stalled connection stayed open")
    took = time.monotonic() - t0
    check(0.5 <= took < 10, "cut after %.1f s with --header-timeout 1" % took)
    s.close()
    # A complete request on a fresh connection still works.
    conn = http.client.HTTPConnection(host, port, timeout=20)
    conn.request("GET", "/hello.txt")
    check(conn.getresponse().read() == b"hello\n", "GET after the stalled one")
    conn.close()


def idle(host, port):
    s = connect(host, port)
    s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    r = Reader(s)
    st, h, body = r.response()
    check((st, body) == (200, b"hello\n"), "GET /hello.txt: %d %r" % (st, body))
    t0 = time.monotonic()
    check(r.at_eof(15), "an idle keep-alive connection stayed open")
    took = time.monotonic() - t0
    check(0.5 <= took < 10, "an idle connection closed after %.1f s with --idle-timeout 1" % took)
    s.close()


def oversize(host, port):
    s = connect(host, port)
    s.sendall(b"PUT /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n"
              b"Expect: 100-continue\r\n\r\n")
    r = Reader(s)
    st, h, body = r.response()
    check(st == 413, "a 10 MiB body with --max-body 64k: %d, want 413" % st)
    s.close()
    # Chunked over the limit: 413 (or 405 when the file resource refuses the
    # method first); never a 2xx, never a hang.
    s = connect(host, port)
    s.sendall(b"POST /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    r = Reader(s)
    chunk = b"%x\r\n%s\r\n" % (16384, b"x" * 16384)
    try:
        for _ in range(8):
            s.sendall(chunk)
        s.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # answered and closed while we were still sending
    st, h, body = r.response()
    check(st in (405, 413), "a chunked 128 KiB body with --max-body 64k: %d" % st)
    s.close()


# ---- the progress bar ----------------------------------------------------------

SLOW_SIZE = 200000
SLOW_PIECES = 25


def slow_server():
    """A one-shot HTTP server that sends SLOW_SIZE bytes in pieces over about
    1.25 s. Returns (port, thread)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)

    def run():
        c, _ = ls.accept()
        c.settimeout(20)
        data = b""
        while b"\r\n\r\n" not in data:
            d = c.recv(4096)
            if not d:
                return
            data += d
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % SLOW_SIZE)
        piece = SLOW_SIZE // SLOW_PIECES
        for _ in range(SLOW_PIECES):
            c.sendall(b"z" * piece)
            time.sleep(0.05)
        c.close()
        ls.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return ls.getsockname()[1], t


def truncated(web, out):
    """coil-web get -o from a server that closes 10 bytes into a 1000-byte
    body: exit 1, said plainly, nothing left behind."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)

    def run():
        c, _ = ls.accept()
        c.settimeout(20)
        data = b""
        while b"\r\n\r\n" not in data:
            d = c.recv(4096)
            if not d:
                return
            data += d
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"y" * 10)
        c.close()
        ls.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    p = subprocess.run([web, "get", "http://127.0.0.1:%d/short" % ls.getsockname()[1], "-o", out],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=30)
    err = p.stderr.decode("utf-8", "replace")
    check(p.returncode == 1, "a cut body: exit %d: %s" % (p.returncode, err))
    check("cut short after 10 bytes" in err, "a cut body: %r" % err)
    check(not os.path.exists(out) and not os.path.exists(out + ".part"),
          "a cut body left %s or its .part" % out)


def progress(web, out):
    port, t = slow_server()
    master, slave = pty.openpty()
    p = subprocess.Popen([web, "get", "http://127.0.0.1:%d/slow" % port, "-o", out],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.5)
        if r:
            try:
                d = os.read(master, 4096)
            except OSError:  # EIO: the pty's other side is closed
                break
            if not d:
                break
            seen += d
        elif p.poll() is not None:
            break
    rc = p.wait(timeout=20)
    os.close(master)
    check(rc == 0, "coil-web get exited %d: %r" % (rc, seen))
    with open(out, "rb") as f:
        check(f.read() == b"z" * SLOW_SIZE, "the slow download's bytes differ")
    text = seen.decode("utf-8", "replace")
    check("%" in text and "/s" in text, "no progress bar with percent and rate: %r" % text)
    draws = text.count("\r") - 1
    check(1 <= draws <= 30, "%d redraws in about a second (at most ~10/s wanted): %r" % (draws, text))
    check(text.endswith("\r\x1b[K"), "the bar was not cleared at the end: %r" % text[-40:])


# ---- an echo server for coil-web get's request bodies -----------------------


def echo_server(portfile):
    """Answers POST and PUT with the request body and what came with it
    (X-Got-Method, X-Got-Content-Type, X-Got-Length); writes its port to
    `portfile` once listening; runs until killed."""
    import http.server

    class Echo(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def echo(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            self.send_response(200)
            self.send_header("X-Got-Method", self.command)
            self.send_header("X-Got-Content-Type", self.headers.get("Content-Type", "-"))
            self.send_header("X-Got-Length", str(n))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_PUT = echo

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    with open(portfile + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(portfile + ".tmp", portfile)
    srv.serve_forever()


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "requests":
        requests(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif cmd == "slowloris":
        slowloris(sys.argv[2], int(sys.argv[3]))
    elif cmd == "idle":
        idle(sys.argv[2], int(sys.argv[3]))
    elif cmd == "oversize":
        oversize(sys.argv[2], int(sys.argv[3]))
    elif cmd == "echoserver":
        echo_server(sys.argv[2])
    elif cmd == "truncated":
        truncated(sys.argv[2], sys.argv[3])
    elif cmd == "progress":
        progress(sys.argv[2], sys.argv[3])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
    print("pyclient.py %s: ok" % cmd)


if __name__ == "__main__":
    main()
