#!/usr/bin/python3
"""An SSH client written with Twisted Conch (Debian's python3-twisted 22.4;
run it with /usr/bin/python3) for coil's SSH server interop test.

  conch_client.py --port N --known-host-key FILE.pub --key FILE --user NAME
                  [--cipher aes256-ctr] [--mac hmac-sha2-512]
                  [--echo-bytes N] [--command CMD]

Offers only the given cipher and MAC (aes256-ctr and hmac-sha2-512 by
default; Conch 22.4 knows no strict kex, no chacha20-poly1305, no GCM),
verifies the server's host key against FILE.pub (an OpenSSH public key
line: anything else is refused), logs in with the private key FILE (public
key method only), then:
  - runs `whoami` and prints its line (user, method, cipher as the server
    saw them);
  - runs `cat`, sends N bytes (1 MiB by default) of random data in pieces,
    sends EOF, and checks that exactly those bytes came back and the exit
    status was 0;
  - with --command, runs CMD instead and prints its output and status.
Prints "OK ..." lines and exits 0 when everything checked out; otherwise
prints what went wrong and exits 1. Gives up after 60 s.
"""

import argparse
import os
import sys
import warnings

warnings.filterwarnings("ignore")

try:
    from twisted.conch.ssh import channel, common, connection, keys, transport, userauth
    from twisted.internet import defer, protocol, reactor
except ImportError as e:  # pragma: no cover - a missing package is a failure
    sys.stderr.write(
        "conch_client.py: Twisted Conch is not importable (%s): install the Debian "
        "package python3-twisted and run with /usr/bin/python3\n" % e
    )
    sys.exit(1)

args = None
result = {"status": 1, "why": "did not finish"}


def done(status, why=""):
    if result.get("finished"):
        return
    result["finished"] = True
    result["status"] = status
    result["why"] = why
    if reactor.running:
        reactor.stop()


class Transport(transport.SSHClientTransport):
    def connectionMade(self):
        self.supportedCiphers = [args.cipher.encode()]
        self.supportedMACs = [args.mac.encode()]
        self.supportedPublicKeys = [b"ssh-ed25519"]
        transport.SSHClientTransport.connectionMade(self)

    def verifyHostKey(self, hostKey, fingerprint):
        want = keys.Key.fromFile(args.known_host_key)
        got = keys.Key.fromString(hostKey)
        if got.blob() != want.blob():
            done(1, "host key %s is not the one in %s" % (got.fingerprint(), args.known_host_key))
            return defer.fail(Exception("host key mismatch"))
        print("OK host key %s %s" % (got.sshType().decode(), got.fingerprint(keys.FingerprintFormats.SHA256_BASE64)))
        return defer.succeed(True)

    def connectionSecure(self):
        print(
            "OK kex %s cipher %s mac %s"
            % (
                self.kexAlg.decode(),
                self.nextEncryptions.outCipType.decode(),
                self.nextEncryptions.outMACType.decode(),
            )
        )
        self.requestService(UserAuth(args.user.encode(), Connection()))

    def receiveError(self, reasonCode, description):
        done(1, "the server disconnected: %d %s" % (reasonCode, description))


class UserAuth(userauth.SSHUserAuthClient):
    preferredOrder = [b"publickey"]

    def getPublicKey(self):
        if getattr(self, "_offered", False):
            return None
        self._offered = True
        return keys.Key.fromFile(args.key + ".pub")

    def getPrivateKey(self):
        return defer.succeed(keys.Key.fromFile(args.key))

    def ssh_USERAUTH_SUCCESS(self, packet):
        print("OK logged in as %s by publickey" % args.user)
        return userauth.SSHUserAuthClient.ssh_USERAUTH_SUCCESS(self, packet)


class Exec(channel.SSHChannel):
    name = b"session"

    def __init__(self, command, payload, finished, *a, **kw):
        channel.SSHChannel.__init__(self, *a, **kw)
        self.command = command
        self.payload = payload
        self.finished = finished
        self.got = []
        self.err = []
        self.exit = None

    def channelOpen(self, data):
        d = self.conn.sendRequest(self, b"exec", common.NS(self.command.encode()), wantReply=True)
        d.addCallbacks(self.started, self.refused)

    def refused(self, why):
        self.finished.errback(Exception("exec %s refused: %s" % (self.command, why)))

    def started(self, _):
        if self.payload is not None:
            # In pieces of 16 KiB: Conch queues what the window does not take.
            for i in range(0, len(self.payload), 16384):
                self.write(self.payload[i : i + 16384])
            self.conn.sendEOF(self)

    def dataReceived(self, data):
        self.got.append(data)

    def extReceived(self, t, data):
        self.err.append(data)

    def request_exit_status(self, data):
        import struct

        self.exit = struct.unpack(">L", data[:4])[0]
        return True

    def closed(self):
        if not self.finished.called:
            self.finished.callback((b"".join(self.got), b"".join(self.err), self.exit))


class Connection(connection.SSHConnection):
    def serviceStarted(self):
        connection.SSHConnection.serviceStarted(self)
        self.run()

    @defer.inlineCallbacks
    def run(self):
        try:
            if args.command:
                out, err, status = yield self.execute(args.command, None)
                sys.stdout.write(out.decode(errors="replace"))
                sys.stderr.write(err.decode(errors="replace"))
                print("OK exit status %s" % status)
                done(0)
                return
            out, err, status = yield self.execute("whoami", None)
            print("OK whoami: %s" % out.decode(errors="replace").strip())
            payload = os.urandom(args.echo_bytes)
            out, err, status = yield self.execute("cat", payload)
            if out != payload:
                done(1, "cat echoed %d bytes, not the %d sent (or different ones)" % (len(out), len(payload)))
                return
            if status != 0:
                done(1, "cat exited with status %r" % status)
                return
            print("OK cat echoed %d bytes, exit status 0" % len(out))
            out, err, status = yield self.execute("exit 9", None)
            if status != 9:
                done(1, "'exit 9' gave exit status %r" % status)
                return
            print("OK exit status 9")
            done(0)
        except Exception as e:
            done(1, "failed: %s" % e)

    def execute(self, command, payload):
        d = defer.Deferred()
        self.openChannel(Exec(command, payload, d, conn=self))
        return d


class Factory(protocol.ClientFactory):
    protocol = Transport

    def clientConnectionFailed(self, connector, reason):
        done(1, "cannot connect: %s" % reason.getErrorMessage())

    def clientConnectionLost(self, connector, reason):
        if not result.get("finished"):
            done(1, "connection lost: %s" % reason.getErrorMessage())


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--known-host-key", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--user", default="conch")
    p.add_argument("--cipher", default="aes256-ctr")
    p.add_argument("--mac", default="hmac-sha2-512")
    p.add_argument("--echo-bytes", type=int, default=1 << 20)
    p.add_argument("--command")
    args = p.parse_args()
    reactor.connectTCP("127.0.0.1", args.port, Factory())
    reactor.callLater(60, done, 1, "gave up after 60 s")
    reactor.run()
    if result["status"] != 0:
        sys.stderr.write("conch_client.py: %s\n" % result["why"])
    sys.exit(result["status"])


if __name__ == "__main__":
    main()
