#!/usr/bin/python3
"""A small SSH server for coil's password and keyboard-interactive tests,
written with Twisted Conch (Debian's python3-twisted 22.4; run it with
/usr/bin/python3). Accounts live in memory, never the system's:

  alice  password "wonderland"                       (method "password")
  bob    keyboard-interactive, one prompt:
           "Password: " (no echo)  -> "hunter2"
  carol  keyboard-interactive, two prompts:
           "Password: " (no echo)  -> "hunter2"
           "Code: "     (echo)     -> "42"

Every user is offered "password,keyboard-interactive" (a user without a
password or without prompts simply fails that method), so a refused login
lists both. After login, a session channel runs an exec request with
/bin/sh -c COMMAND (stdout, stderr, exit status as sshd does; "cat" echoes),
and direct-tcpip channels connect where asked.

It listens on 127.0.0.1 on a free port (or --port), with a throwaway host
key made at start (--host-key ed25519 | ecdsa, ed25519 by default: both are
ones libssh2 1.10 verifies; Conch 22.4 and libssh2 1.10 agree on kex
curve25519-sha256, aes*-ctr and hmac-sha2-256/512). Once it listens it prints
on stdout, in this order:

  HOSTKEY <type> <base64 blob>
  FINGERPRINT SHA256:<base64, unpadded>   (as ssh-keygen -l prints it)
  PORT <n>

(and writes [127.0.0.1]:<n> <type> <blob> to --known-hosts FILE if given).
It exits when its stdin reaches EOF (so it never outlives the test that
started it; --forever turns that off) or on SIGTERM / SIGINT.
"""

import argparse
import base64
import hashlib
import os
import struct
import sys
import warnings

# cryptography 38 warns about the old ciphers Conch lists (Blowfish, CAST5);
# keep stderr for real errors.
warnings.filterwarnings("ignore")

try:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from twisted.conch import avatar, error, interfaces
    from twisted.conch.ssh import (
        common,
        connection,
        factory,
        forwarding,
        keys,
        session,
        userauth,
    )
    from twisted.cred import checkers, portal
    from twisted.cred.error import UnauthorizedLogin
    from twisted.internet import defer, protocol, reactor, stdio
    from twisted.python import components
    from zope.interface import implementer
except ImportError as e:  # pragma: no cover - the message is the point
    sys.stderr.write(
        "conch_server.py: cannot import Twisted Conch (%s): install the Debian "
        "package python3-twisted (tools/install-deps) and run this with "
        "/usr/bin/python3 (now %s)\n" % (e, sys.executable)
    )
    sys.exit(3)

PASSWORDS = {b"alice": b"wonderland"}
# user -> [(prompt, echo, expected answer)]
PROMPTS = {
    b"bob": [(b"Password: ", False, b"hunter2")],
    b"carol": [(b"Password: ", False, b"hunter2"), (b"Code: ", True, b"42")],
}

MSG_USERAUTH_INFO_REQUEST = 60
VERBOSE = False


def log(msg):
    if VERBOSE:
        sys.stderr.write("conch_server: %s\n" % msg)
        sys.stderr.flush()


class Avatar(avatar.ConchUser):
    def __init__(self, username):
        avatar.ConchUser.__init__(self)
        self.username = username
        self.channelLookup.update(
            {
                b"session": session.SSHSession,
                b"direct-tcpip": forwarding.openConnectForwardingClient,
            }
        )


@implementer(portal.IRealm)
class Realm:
    def requestAvatar(self, avatarId, mind, *ifaces):
        if interfaces.IConchUser not in ifaces:
            raise NotImplementedError("only SSH users here")
        return interfaces.IConchUser, Avatar(avatarId), lambda: None


@implementer(session.ISession)
class Session:
    """exec runs /bin/sh -c COMMAND in a child process; no shell, no pty."""

    def __init__(self, avatar_):
        self.avatar = avatar_
        self.proc = None

    def getPty(self, term, windowSize, modes):
        pass  # accepted and ignored: the command runs without a terminal

    def windowChanged(self, newWindowSize):
        pass

    def openShell(self, proto):
        raise error.ConchError("no shell on this test server; use exec")

    def execCommand(self, proto, command):
        log("exec %r for %r" % (command, self.avatar.username))
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C"}
        self.proc = reactor.spawnProcess(
            proto, "/bin/sh", ["/bin/sh", "-c", command.decode("utf-8", "replace")], env
        )

    def eofReceived(self):
        if self.proc is not None:
            self.proc.closeStdin()

    def closed(self):
        if self.proc is not None:
            try:
                self.proc.signalProcess("HUP")
            except Exception:
                pass
            self.proc = None


components.registerAdapter(Session, Avatar, session.ISession)


class UserAuth(userauth.SSHUserAuthServer):
    """Conch 22.4's server has no keyboard-interactive: add it (RFC 4256)
    with in-memory prompts, and answer bad passwords at once (no 1 s
    delay: tests)."""

    passwordDelay = 0
    attemptsBeforeDisconnect = 20

    def serviceStarted(self):
        userauth.SSHUserAuthServer.serviceStarted(self)
        self.supportedAuthentications = [b"password", b"keyboard-interactive"]
        self._kbd = None  # (deferred, user, expected prompts)

    def auth_keyboard_interactive(self, packet):
        # string language tag, string submethods: both ignored.
        if self._kbd is not None:
            return defer.fail(error.ConchError("keyboard-interactive already running"))
        user = self.user
        prompts = PROMPTS.get(user)
        if prompts is None:
            # Ask anyway (as a real server would) and then fail.
            prompts = [(b"Password: ", False, None)]
        d = defer.Deferred()
        self._kbd = (d, user, prompts)
        data = common.NS(b"coil test") + common.NS(b"answer the prompts") + common.NS(b"")
        data += struct.pack(">L", len(prompts))
        for prompt, echo, _ in prompts:
            data += common.NS(prompt) + (b"\x01" if echo else b"\x00")
        self.transport.sendPacket(MSG_USERAUTH_INFO_REQUEST, data)
        return d

    def ssh_USERAUTH_INFO_RESPONSE(self, packet):
        if self._kbd is None:
            self.transport.sendDisconnect(
                2, b"USERAUTH_INFO_RESPONSE without a keyboard-interactive request"
            )
            return
        d, user, prompts = self._kbd
        self._kbd = None
        try:
            (n,) = struct.unpack(">L", packet[:4])
            answers = list(common.getNS(packet[4:], n)[:n]) if n else []
        except Exception:
            d.errback(UnauthorizedLogin("malformed response"))
            return
        ok = n == len(prompts) and all(
            exp is not None and ans == exp for (_, _, exp), ans in zip(prompts, answers)
        )
        log("keyboard-interactive for %r: %s" % (user, "ok" if ok else "refused"))
        if ok:
            d.callback(Realm().requestAvatar(user, None, interfaces.IConchUser))
        else:
            d.errback(UnauthorizedLogin("wrong answers"))


def make_host_key(kind):
    if kind == "ed25519":
        k = keys.Key(ed25519.Ed25519PrivateKey.generate())
    else:
        k = keys.Key(ec.generate_private_key(ec.SECP256R1()))
    return k


class Factory(factory.SSHFactory):
    services = {b"ssh-userauth": UserAuth, b"ssh-connection": connection.SSHConnection}

    def __init__(self, host_key):
        self._key = host_key
        self.portal = portal.Portal(
            Realm(), [checkers.InMemoryUsernamePasswordDatabaseDontUse(**{
                u.decode(): p for u, p in PASSWORDS.items()})]
        )

    def getPublicKeys(self):
        return {self._key.sshType(): self._key.public()}

    def getPrivateKeys(self):
        return {self._key.sshType(): self._key}

    def getPrimes(self):
        return None  # no DH group exchange: curve25519 / ecdh are enough


class StdinWatch(protocol.Protocol):
    def dataReceived(self, data):
        pass

    def connectionLost(self, reason):
        log("stdin closed: exiting")
        if reactor.running:
            reactor.stop()


def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    ap.add_argument("--host-key", choices=["ed25519", "ecdsa"], default="ed25519")
    ap.add_argument("--known-hosts", help="write a known_hosts line for the server here")
    ap.add_argument("--forever", action="store_true", help="do not exit when stdin closes")
    ap.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    a = ap.parse_args()
    VERBOSE = a.verbose

    key = make_host_key(a.host_key)
    f = Factory(key)
    listening = reactor.listenTCP(a.port, f, interface="127.0.0.1")
    port = listening.getHost().port
    blob = key.public().blob()
    ktype = key.sshType().decode()
    b64 = base64.b64encode(blob).decode()
    fp = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    if a.known_hosts:
        with open(a.known_hosts, "w") as kh:
            kh.write("[127.0.0.1]:%d %s %s\n" % (port, ktype, b64))
    if not a.forever:
        stdio.StandardIO(StdinWatch(), stdout=os.open(os.devnull, os.O_WRONLY))
    sys.stdout.write("HOSTKEY %s %s\nFINGERPRINT %s\nPORT %d\n" % (ktype, b64, fp, port))
    sys.stdout.flush()
    reactor.run()


if __name__ == "__main__":
    main()
