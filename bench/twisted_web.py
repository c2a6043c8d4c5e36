#!/usr/bin/python3
"""Twisted web as a peer for coil's HTTP benchmark (bench/run_http_bench.sh)
and as a server for coil's agent in tests/http/test_http_agent_interop.c.

    /usr/bin/python3 bench/twisted_web.py [--root DIR] [PORT [HOST]]

Prints "listening on HOST:PORT pid PID" once listening; stops on SIGTERM or
SIGINT. No access log (nginx's access_log off). Routes:

    /hello          "Hello, world!" (13 bytes, text/plain): the benchmark's
                    dynamic row
    /NAME           the files under DIR (static.File)
    /chunked        three pieces written later, without a length: Twisted
                    sends them chunked to an HTTP/1.1 client
    /echo           POST: the request body back (Content-Type as sent), and
                    the request's Transfer-Encoding / Content-Length in the
                    X-Seen-Transfer-Encoding / X-Seen-Content-Length headers
    /redirect       302 to /hello (redirectTo)
    /redirect2      302 to /redirect (two hops)
    /loop           302 to itself (a redirect loop)
    /conn           the client's port ("127.0.0.1:PORT"): tells connections
                    apart
"""
import os
import sys

from twisted.internet import reactor
from twisted.web import resource, server, static, util

HELLO = b"Hello, world!"


class Hello(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"text/plain")
        return HELLO


class Chunked(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"text/plain")
        pieces = [b"first piece\n", b"second piece\n", b"third and last piece\n"]

        def step():
            if request._disconnected:
                return
            if pieces:
                request.write(pieces.pop(0))
                reactor.callLater(0.01, step)
            else:
                request.finish()

        step()
        return server.NOT_DONE_YET


class Echo(resource.Resource):
    isLeaf = True

    def render_POST(self, request):
        body = request.content.read()
        ctype = request.getHeader(b"content-type") or b"application/octet-stream"
        request.setHeader(b"Content-Type", ctype)
        request.setHeader(b"X-Seen-Transfer-Encoding",
                          request.getHeader(b"transfer-encoding") or b"none")
        request.setHeader(b"X-Seen-Content-Length",
                          request.getHeader(b"content-length") or b"none")
        return body


class Redirect(resource.Resource):
    isLeaf = True

    def __init__(self, to):
        resource.Resource.__init__(self)
        self.to = to

    def render_GET(self, request):
        return util.redirectTo(self.to, request)


class Conn(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        peer = request.getClientAddress()
        request.setHeader(b"Content-Type", b"text/plain")
        return ("%s:%d" % (peer.host, peer.port)).encode()


class QuietSite(server.Site):
    def log(self, request):
        pass


def main(argv):
    root_dir = None
    if len(argv) >= 2 and argv[0] == "--root":
        root_dir = argv[1]
        argv = argv[2:]
    port = int(argv[0]) if argv else 0
    host = argv[1] if len(argv) > 1 else "127.0.0.1"
    if root_dir:
        root = static.File(root_dir)
    else:
        root = resource.Resource()
    root.putChild(b"hello", Hello())
    root.putChild(b"chunked", Chunked())
    root.putChild(b"echo", Echo())
    root.putChild(b"redirect", Redirect(b"/hello"))
    root.putChild(b"redirect2", Redirect(b"/redirect"))
    root.putChild(b"loop", Redirect(b"/loop"))
    root.putChild(b"conn", Conn())
    site = QuietSite(root)
    port = reactor.listenTCP(port, site, interface=host, backlog=1024)

    def announce():
        print("listening on %s:%d pid %d" % (host, port.getHost().port, os.getpid()),
              flush=True)

    reactor.callWhenRunning(announce)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
