#!/usr/bin/python3
"""Twisted TCP echo server (epoll reactor), a peer for coil's echo benchmark.

    /usr/bin/python3 bench/twisted_echo.py PORT [HOST]

HOST defaults to 127.0.0.1; PORT 0 picks a free port. Prints
"listening on HOST:PORT pid PID" once listening; SIGINT/SIGTERM stop the reactor
(Twisted installs those handlers itself) and the process exits 0.

Run it with Debian's /usr/bin/python3, which has python3-twisted.
"""
import os
import sys

from twisted.internet import epollreactor

epollreactor.install()  # before anything imports twisted.internet.reactor

from twisted.internet import reactor  # noqa: E402
from twisted.internet.protocol import Factory, Protocol  # noqa: E402


class Echo(Protocol):
    def connectionMade(self):
        # Same socket option as the C peers, so the comparison is like for like.
        self.transport.setTcpNoDelay(True)

    def dataReceived(self, data):
        self.transport.write(data)


class EchoFactory(Factory):
    protocol = Echo
    noisy = False  # no log line per connection


def main(argv):
    if len(argv) not in (2, 3):
        sys.stderr.write("usage: %s PORT [HOST]\n" % argv[0])
        return 2
    try:
        port = int(argv[1])
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        sys.stderr.write("twisted_echo: bad port '%s'\n" % argv[1])
        return 2
    host = argv[2] if len(argv) == 3 else "127.0.0.1"

    listening = reactor.listenTCP(port, EchoFactory(), backlog=1024, interface=host)
    print("listening on %s:%d pid %d" % (host, listening.getHost().port, os.getpid()),
          flush=True)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
