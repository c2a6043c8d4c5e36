#!/usr/bin/python3
"""Twisted's Agent (Debian's python3-twisted) against coil-web serve, as
run_client_interop.sh starts it (its www folder).

Usage: twisted_agent_client.py HTTP_PORT HTTPS_PORT CA_PEM FILE_SHA256

  - GET /hello.txt with readBody
  - a persistent HTTPConnectionPool: two requests, one connection (counted
    at the endpoint: connect() is called once)
  - https://localhost with BrowserLikePolicyForHTTPS trusting only the test
    CA (host name checked by service_identity); the 1 MiB file's sha256
  - a 404
Exits 0, or 1 with what went wrong on stderr.
"""
import hashlib
import sys

from twisted.internet import defer, endpoints, reactor, ssl, task
from twisted.web.client import (Agent, BrowserLikePolicyForHTTPS,
                                HTTPConnectionPool, readBody)
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

HTTP_PORT = int(sys.argv[1])
HTTPS_PORT = int(sys.argv[2])
CA_PEM = sys.argv[3]
FILE_SHA = sys.argv[4]


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


class CountingEndpoint:
    """Wraps an endpoint; counts the connections it makes."""

    def __init__(self, inner, counter):
        self.inner = inner
        self.counter = counter

    def connect(self, factory):
        self.counter[0] += 1
        return self.inner.connect(factory)


@implementer(IAgentEndpointFactory)
class CountingEndpointFactory:
    def __init__(self):
        self.connects = [0]

    def endpointForURI(self, uri):
        inner = endpoints.TCP4ClientEndpoint(reactor, uri.host.decode(), uri.port, timeout=10)
        return CountingEndpoint(inner, self.connects)


@defer.inlineCallbacks
def run():
    base = "http://127.0.0.1:%d" % HTTP_PORT

    # GET with readBody.
    agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
    resp = yield agent.request(b"GET", (base + "/hello.txt").encode())
    body = yield readBody(resp)
    check(resp.code == 200, "GET /hello.txt: %d" % resp.code)
    check(body == b"hello\n", "GET /hello.txt: %r" % body)
    check(resp.headers.getRawHeaders(b"content-type", [b""])[0].startswith(b"text/plain"),
          "GET /hello.txt: Content-Type %r" % resp.headers.getRawHeaders(b"content-type"))

    # A 404.
    resp = yield agent.request(b"GET", (base + "/nope").encode())
    body = yield readBody(resp)
    check(resp.code == 404, "GET /nope: %d" % resp.code)

    # A persistent pool: two requests, one connection.
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 1
    ef = CountingEndpointFactory()
    pagent = Agent.usingEndpointFactory(reactor, ef, pool=pool)
    for path in (b"/hello.txt", b"/sub/a.txt", b"/hello.txt"):
        resp = yield pagent.request(b"GET", base.encode() + path)
        body = yield readBody(resp)
        check(resp.code == 200, "pooled GET %r: %d" % (path, resp.code))
        # The connection goes back to the pool once the body is read; give
        # the reactor a turn to do that before the next request.
        yield task.deferLater(reactor, 0, lambda: None)
    check(ef.connects[0] == 1, "three pooled requests used %d connections" % ef.connects[0])
    yield pool.closeCachedConnections()

    # https, trusting the test CA only.
    with open(CA_PEM, "rb") as f:
        ca = ssl.Certificate.loadPEM(f.read())
    tagent = Agent(reactor, contextFactory=BrowserLikePolicyForHTTPS(trustRoot=ca),
                   pool=HTTPConnectionPool(reactor, persistent=False))
    resp = yield tagent.request(b"GET", b"https://localhost:%d/file.bin" % HTTPS_PORT)
    body = yield readBody(resp)
    check(resp.code == 200, "https GET /file.bin: %d" % resp.code)
    check(hashlib.sha256(body).hexdigest() == FILE_SHA, "https GET /file.bin: the bytes differ")
    resp = yield tagent.request(b"GET", b"https://localhost:%d/hello.txt" % HTTPS_PORT)
    body = yield readBody(resp)
    check(body == b"hello\n", "https GET /hello.txt: %r" % body)

    # Trusting only the system's CAs, the test certificate is refused.
    sagent = Agent(reactor, contextFactory=BrowserLikePolicyForHTTPS(),
                   pool=HTTPConnectionPool(reactor, persistent=False))
    refused = False
    try:
        resp = yield sagent.request(b"GET", b"https://localhost:%d/hello.txt" % HTTPS_PORT)
        yield readBody(resp)
    except Exception:
        refused = True
    check(refused, "https with a certificate from an unknown CA was accepted")


def main():
    result = []

    def done(r):
        if not result:
            result.append(r)
            reactor.stop()

    reactor.callWhenRunning(lambda: run().addBoth(done))
    reactor.callLater(60, lambda: done(Fail("not done within 60 s")))
    reactor.run()
    r = result[0] if result else Fail("the reactor stopped early")
    if hasattr(r, "getTraceback") or isinstance(r, Exception):
        sys.stderr.write("twisted_agent_client.py: FAIL: %s\n" %
                         (r.getTraceback() if hasattr(r, "getTraceback") else r))
        sys.exit(1)
    print("twisted_agent_client.py: ok")


if __name__ == "__main__":
    main()
