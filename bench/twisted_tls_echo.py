#!/usr/bin/python3
"""Twisted TLS echo server (epoll reactor, pyOpenSSL), the Twisted peer of
coil's TLS benchmark (bench/run_tls_bench.sh).

    /usr/bin/python3 bench/twisted_tls_echo.py PORT CERT.pem KEY.pem

Listens on 127.0.0.1 (PORT 0 picks a free port); TLS 1.3 only, with
TLS_AES_128_GCM_SHA256 and X25519 as the other servers; prints
"listening on 127.0.0.1:PORT pid PID".
"""
import os
import sys

from twisted.internet import epollreactor

epollreactor.install()

from OpenSSL import SSL  # noqa: E402
from twisted.internet import reactor, ssl  # noqa: E402
from twisted.internet.protocol import Factory, Protocol  # noqa: E402


class Echo(Protocol):
    def connectionMade(self):
        self.transport.setTcpNoDelay(True)

    def dataReceived(self, data):
        self.transport.write(data)


class EchoFactory(Factory):
    protocol = Echo
    noisy = False


class Context(ssl.ContextFactory):
    def __init__(self, cert, key):
        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
        ctx.use_certificate_chain_file(cert)
        ctx.use_privatekey_file(key)
        # pyOpenSSL 23 has no setter for TLS 1.3 suites: call OpenSSL through
        # its cffi binding. It has none for groups either (and the binding
        # lacks SSL_CTX_ctrl); the benchmark client offers X25519 only, which
        # every server here accepts, so the key exchange is the same.
        SSL._lib.SSL_CTX_set_ciphersuites(ctx._context, b"TLS_AES_128_GCM_SHA256")
        ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
        self.ctx = ctx

    def getContext(self):
        return self.ctx


def main(argv):
    if len(argv) != 4:
        sys.stderr.write("usage: %s PORT CERT.pem KEY.pem\n" % argv[0])
        return 2
    p = reactor.listenSSL(int(argv[1]), EchoFactory(), Context(argv[2], argv[3]),
                          backlog=1024, interface="127.0.0.1")
    print("listening on 127.0.0.1:%d pid %d" % (p.getHost().port, os.getpid()), flush=True)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
