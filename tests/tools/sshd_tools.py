#!/usr/bin/python3
"""coil-chat and coil-echo served over coil's own SSH server (the ssh:
server endpoint), driven by OpenSSH's ssh.

Usage: sshd_tools.py chat|anonymous|echo COIL_CHAT COIL_ECHO

  chat       coil-chat serve on tcp: and ssh:PORT:hostKey=...:authorizedKeys=...
             (the host key made by the server, 0600, its fingerprint logged);
             alice logs in with `ssh -tt` and a key: her join line carries the
             key's fingerprint, lines end with \\r\\n, what she types is
             echoed, backspace / Ctrl-U erase, arrow keys are ignored, UTF-8
             goes through, a line from bob (TCP) arrives above her half-typed
             line which is drawn again, Ctrl-D leaves with exit status 0; an
             SSH user whose name is taken is asked for another (no pty: plain
             \\r\\n lines); a key not in authorized_keys is refused
  anonymous  ssh:...:anonymous=yes: a user without any key gets in
  echo       coil-echo serve on ssh:: exec (1 MiB of random bytes through
             `cat`, another command, exit status 0) and a shell with a pty
             (bytes back as they are, no line editing; Ctrl-D ends it)

Every wait is for an event (a line printed, a process ending), bounded by
30 s; nothing sleeps a fixed time. ssh and ssh-keygen (Debian's
openssh-client) are required: without them the test fails, saying so.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

WAIT = 30.0


class Failed(Exception):
    pass


def fail(msg):
    raise Failed(msg)


class Stream:
    """Bytes arriving from a process's stdout or a socket, collected by a
    thread; expect() waits for a pattern in what came after `mark`."""

    def __init__(self, name, read):
        self.name = name
        self.read = read
        self.buf = b""
        self.eof = False
        self.mark = 0
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                data = self.read()
            except OSError:
                data = b""
            with self.cond:
                if not data:
                    self.eof = True
                    self.cond.notify_all()
                    return
                self.buf += data
                self.cond.notify_all()

    def expect(self, pattern, what=None, advance=True):
        """Wait for `pattern` (bytes: literal; re.Pattern: regex) after the
        mark; return the match end (the new mark when `advance`)."""
        end = time.monotonic() + WAIT
        with self.cond:
            while True:
                if isinstance(pattern, bytes):
                    i = self.buf.find(pattern, self.mark)
                    m_end = i + len(pattern) if i >= 0 else -1
                    m = None
                else:
                    m = pattern.search(self.buf, self.mark)
                    m_end = m.end() if m else -1
                if m_end >= 0:
                    if advance:
                        self.mark = m_end
                    return m if m is not None else m_end
                left = end - time.monotonic()
                if self.eof or left <= 0:
                    fail("%s: %s never came (%s); after the mark it got: %r" %
                         (self.name, what or pattern, "ended" if self.eof else
                          "not within %g s" % WAIT, self.buf[self.mark:][-600:]))
                self.cond.wait(left)

    def since_mark(self):
        with self.cond:
            return self.buf[self.mark:]

    def wait_eof(self):
        end = time.monotonic() + WAIT
        with self.cond:
            while not self.eof:
                left = end - time.monotonic()
                if left <= 0:
                    fail("%s: did not end within %g s; got %r" %
                         (self.name, WAIT, self.buf[-400:]))
                self.cond.wait(left)


class Test:
    def __init__(self, chat, echo):
        self.chat = chat
        self.echo = echo
        self.dir = tempfile.mkdtemp(prefix="coil-sshd-tools.")
        self.procs = []
        self.socks = []
        self.env = dict(os.environ)
        self.env.pop("SSH_AUTH_SOCK", None)  # no agent: only the keys named
        for tool in ("ssh", "ssh-keygen"):
            if not shutil.which(tool):
                fail("%s is missing: install the Debian package openssh-client "
                     "(tools/install-deps does); these tests need OpenSSH's client"
                     % tool)

    def path(self, name):
        return os.path.join(self.dir, name)

    def cleanup(self):
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def keygen(self, name, kind="ed25519", comment="test"):
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", comment,
                        "-f", self.path(name)], check=True, env=self.env)
        return self.path(name)

    def fingerprint(self, path):
        out = subprocess.run(["ssh-keygen", "-l", "-f", path], check=True,
                             capture_output=True, env=self.env).stdout.decode()
        # "256 SHA256:... comment (ED25519)"
        return out.split()[1]

    def serve(self, tool, *endpoints):
        err = open(self.path("server.err"), "wb")
        p = subprocess.Popen([tool, "serve"] + list(endpoints), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err, env=self.env)
        self.procs.append(p)
        self.server = p
        self.server_err = self.path("server.err")
        # "coil-chat: serving chat on ssh:PORT (127.0.0.1:PORT, SSH)", one per endpoint
        end = time.monotonic() + WAIT
        while True:
            text = open(self.server_err, "rb").read().decode("utf-8", "replace")
            if text.count("serving ") >= len(endpoints):
                break
            if p.poll() is not None:
                fail("the server exited (%d) before serving: %s" % (p.returncode, text))
            if time.monotonic() > end:
                fail("the server did not say it serves within %g s: %s" % (WAIT, text))
            time.sleep(0.05)  # polling for the event, not a fixed wait
        self.ports = {k: int(v) for k, v in
                      re.findall(r"serving \w+ on (tcp|ssh):(\d+)", text)}
        return text

    def stop_server(self):
        self.server.send_signal(signal.SIGTERM)
        try:
            rc = self.server.wait(WAIT)
        except subprocess.TimeoutExpired:
            fail("the server did not stop within %g s of SIGTERM" % WAIT)
        if rc != 0:
            fail("the server exited %d after SIGTERM: %s" %
                 (rc, open(self.server_err, "rb").read().decode("utf-8", "replace")))

    def known_hosts(self, host_key):
        pub = subprocess.run(["ssh-keygen", "-y", "-f", host_key], check=True,
                             capture_output=True, env=self.env).stdout.decode().split()
        kh = self.path("known_hosts")
        with open(kh, "w") as f:
            f.write("[127.0.0.1]:%d %s %s\n" % (self.ports["ssh"], pub[0], pub[1]))
        return kh

    def ssh(self, user, key, *args, tty=True, stdin=subprocess.PIPE):
        """ssh into the server (verifying its host key); returns (proc,
        Stream of stdout)."""
        cmd = ["ssh", "-F", "/dev/null", "-p", str(self.ports["ssh"]),
               "-o", "UserKnownHostsFile=" + self.path("known_hosts"),
               "-o", "GlobalKnownHostsFile=/dev/null",
               "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
               "-o", "ConnectTimeout=30"]
        if key:
            cmd += ["-o", "IdentitiesOnly=yes", "-i", key]
        else:
            cmd += ["-o", "PubkeyAuthentication=no", "-o", "PasswordAuthentication=no"]
        cmd += ["-tt"] if tty else ["-T"]
        cmd += ["%s@127.0.0.1" % user] + list(args)
        err = open(self.path("ssh-%s.err" % user), "wb")
        p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=err,
                             env=self.env)
        self.procs.append(p)
        return p, Stream("ssh %s" % user, lambda: os.read(p.stdout.fileno(), 65536))

    def ssh_err(self, user):
        return open(self.path("ssh-%s.err" % user), "rb").read().decode("utf-8", "replace")

    def wait_exit(self, p, what, want=0):
        try:
            rc = p.wait(WAIT)
        except subprocess.TimeoutExpired:
            fail("%s did not end within %g s" % (what, WAIT))
        if want is not None and rc != want:
            fail("%s exited %d, want %d" % (what, rc, want))
        return rc

    def tcp_user(self, name):
        s = socket.create_connection(("127.0.0.1", self.ports["tcp"]), timeout=WAIT)
        s.settimeout(None)
        self.socks.append(s)
        st = Stream("tcp " + name, lambda: s.recv(65536))
        st.expect(b"What is your name?\r\n")
        s.sendall(name.encode() + b"\r\n")
        st.expect(b"Welcome, " + name.encode() + b"!\r\n")
        return s, st


def check_crlf(data, who):
    """Every line feed in `data` follows a carriage return."""
    for i, b in enumerate(data):
        if b == 0x0A and (i == 0 or data[i - 1] != 0x0D):
            fail("%s: a bare \\n at byte %d in %r" % (who, i, data[max(0, i - 40):i + 10]))


def expect_usage_error(t, tool, endpoint, needle):
    p = subprocess.run([tool, "serve", endpoint], stdin=subprocess.DEVNULL,
                       capture_output=True, env=t.env, timeout=WAIT)
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode != 2 or needle not in err:
        fail("serve %s: exit %d, want 2 with '%s': %s" % (endpoint, p.returncode, needle, err))


def test_chat(t):
    # Bad descriptions: exit 2, saying what is missing.
    expect_usage_error(t, t.chat, "ssh:0:hostKey=%s" % t.path("k"),
                       "give authorizedKeys=FILE or anonymous=yes")
    expect_usage_error(t, t.chat, "ssh:0:anonymous=yes", "hostKey=FILE is missing")
    if os.path.exists(t.path("k")):
        fail("a refused description made the host key")
    user_key = t.keygen("alice_key", comment="alice@test")
    other_key = t.keygen("stranger_key", comment="stranger@test")
    with open(t.path("authorized_keys"), "w") as f:
        f.write("# the test's users\n" + open(user_key + ".pub").read())
    host = t.path("host_ed25519")
    log = t.serve(t.chat, "tcp:0:interface=127.0.0.1",
                  "ssh:0:interface=127.0.0.1:hostKey=%s:authorizedKeys=%s"
                  % (host, t.path("authorized_keys")))
    # The host key was made, owner-only, and logged with its fingerprint.
    mode = os.stat(host).st_mode & 0o777
    if mode != 0o600:
        fail("the host key was made with mode %o, want 600" % mode)
    host_fp = t.fingerprint(host)
    if host_fp not in log:
        fail("the server log does not show the host key's fingerprint %s: %s"
             % (host_fp, log))
    t.known_hosts(host)

    bob, bob_in = t.tcp_user("bob")
    alice, out = t.ssh("alice", user_key)
    out.expect(b"Welcome, alice!\r\n")
    out.expect(b"Type a line and Enter to talk; Ctrl-D leaves.\r\n\r\x1b[K> ",
               "the hint and the prompt")
    fp = t.fingerprint(user_key)
    bob_in.expect(("alice (ED25519 %s) has joined the channel.\r\n" % fp).encode(),
                  "alice's join line with her key's fingerprint")

    def typed(data, echo, what):
        alice.stdin.write(data)
        alice.stdin.flush()
        out.expect(echo, what)

    # Typed input is echoed; backspace (DEL) erases with "\b \b".
    typed(b"helo", b"helo", "the echo of 'helo'")
    typed(b"\x7f", b"\b \b", "the erasure of one character")
    typed(b"lo\r", b"lo\r\n> ", "the echo of 'lo' and the line end")
    bob_in.expect(b"<alice> hello\r\n", "alice's edited line")
    # BS (Ctrl-H) erases too; an arrow key is ignored.
    typed(b"ab\x08\x1b[Ac\r", b"ab\b \bc\r\n", "BS erasing, the arrow key ignored")
    bob_in.expect(b"<alice> ac\r\n")
    # A line from bob while alice is typing: above her line, which is redrawn.
    typed(b"par", b"par", "the echo of 'par'")
    bob.sendall(b"hi alice\r\n")
    out.expect(b"\r\x1b[K<bob> hi alice\r\n> par",
               "bob's line above alice's half-typed one, which is drawn again")
    # Ctrl-U kills the line.
    typed(b"\x15", b"\r\x1b[K> ", "Ctrl-U redrawing an empty line")
    typed(b"ok\r", b"ok\r\n", "the echo of 'ok'")
    bob_in.expect(b"<alice> ok\r\n", "the line typed after Ctrl-U, alone")
    # UTF-8 whole, erased whole.
    typed("d\u00e9j\u00e0 vu\u00e9".encode(), "d\u00e9j\u00e0 vu\u00e9".encode(),
          "the UTF-8 echo")
    typed(b"\x7f\r", b"\b \b\r\n", "erasing a 2-byte character")
    bob_in.expect("<alice> d\u00e9j\u00e0 vu\r\n".encode(), "alice's UTF-8 line")
    check_crlf(out.buf, "alice's terminal")

    # The same SSH name again, without a pty: taken, so the prompt asks.
    bob2, out2 = t.ssh("bob", user_key, tty=False)
    out2.expect(b"Your SSH user name 'bob' cannot be your chat name: Name taken.\r\n")
    out2.expect(b"What is your name?\r\n")
    bob2.stdin.write(b"bobby\n")
    bob2.stdin.flush()
    out2.expect(b"Welcome, bobby!\r\n")
    out.expect(("bobby (ED25519 %s) has joined the channel.\r\n" % fp).encode())
    bob2.stdin.write(b"no pty here\n")
    bob2.stdin.flush()
    out.expect(b"\r\x1b[K<bobby> no pty here\r\n> ", "bobby's line on alice's terminal")
    bob_in.expect(b"<bobby> no pty here\r\n")
    bob2.stdin.close()  # EOF: the session ends
    t.wait_exit(bob2, "ssh bob (no pty) after stdin EOF", want=None)
    out2.wait_eof()
    check_crlf(out2.buf, "bobby's session")
    bob_in.expect(b"bobby has left the channel.\r\n")

    # Ctrl-D on an empty line leaves, exit status 0.
    alice.stdin.write(b"\x04")
    alice.stdin.flush()
    t.wait_exit(alice, "ssh alice after Ctrl-D", want=0)
    bob_in.expect(b"alice has left the channel.\r\n")

    # Ctrl-C leaves too, even with a half-typed line.
    carol, out3 = t.ssh("carol", user_key)
    out3.expect(b"Welcome, carol!\r\n")
    bob_in.expect(b"carol (ED25519 ")
    carol.stdin.write(b"half\x03")
    carol.stdin.flush()
    t.wait_exit(carol, "ssh carol after Ctrl-C", want=0)
    bob_in.expect(b"carol has left the channel.\r\n")
    if b"<carol>" in bob_in.since_mark():
        fail("carol's half-typed line was sent")

    # A taken name on a terminal: the prompt, answered through the editor.
    rob, out4 = t.ssh("bob", user_key)
    out4.expect(b"Your SSH user name 'bob' cannot be your chat name: Name taken.\r\n")
    out4.expect(b"What is your name?\r\n")
    rob.stdin.write(b"rpb\x7f\x7fob\r")
    rob.stdin.flush()
    out4.expect(b"rpb\b \b\b \bob\r\n", "the name typed, edited")
    out4.expect(b"Welcome, rob!\r\n")
    bob_in.expect(b"rob (ED25519 ")
    rob.stdin.write(b"\x04")
    rob.stdin.flush()
    t.wait_exit(rob, "ssh bob (now rob) after Ctrl-D", want=0)
    bob_in.expect(b"rob has left the channel.\r\n")

    # A key that is not in authorized_keys: refused.
    p, o = t.ssh("mallory", other_key, tty=False, stdin=subprocess.DEVNULL)
    rc = t.wait_exit(p, "ssh with a key not in authorized_keys", want=None)
    if rc != 255 or "Permission denied" not in t.ssh_err("mallory"):
        fail("a key not in authorized_keys: ssh exited %d: %s" % (rc, t.ssh_err("mallory")))
    t.stop_server()


def test_anonymous(t):
    host = t.path("host_ed25519")
    t.serve(t.chat, "tcp:0:interface=127.0.0.1",
            "ssh:0:interface=127.0.0.1:hostKey=%s:anonymous=yes" % host)
    t.known_hosts(host)
    bob, bob_in = t.tcp_user("bob")
    dave, out = t.ssh("dave", None)
    out.expect(b"Welcome, dave!\r\n")
    bob_in.expect(re.compile(rb"dave \(SSH, [^)]+\) has joined the channel\.\r\n"),
                  "dave's join line (no key)")
    dave.stdin.write(b"anyone may come in\r")
    dave.stdin.flush()
    bob_in.expect(b"<dave> anyone may come in\r\n")
    dave.stdin.write(b"\x04")
    dave.stdin.flush()
    t.wait_exit(dave, "ssh dave after Ctrl-D", want=0)
    bob_in.expect(b"dave has left the channel.\r\n")
    t.stop_server()


def test_echo(t):
    user_key = t.keygen("user_key")
    with open(t.path("authorized_keys"), "w") as f:
        f.write(open(user_key + ".pub").read())
    host = t.path("host_ed25519")
    t.serve(t.echo, "ssh:0:interface=127.0.0.1:hostKey=%s:authorizedKeys=%s"
            % (host, t.path("authorized_keys")))
    t.known_hosts(host)

    # exec: any command echoes; every byte back; exit status 0.
    data = os.urandom(1 << 20)
    with open(t.path("data"), "wb") as f:
        f.write(data)
    for cmd in ("cat", "anything at all"):
        p, out = t.ssh("x", user_key, cmd, tty=False, stdin=open(t.path("data"), "rb"))
        t.wait_exit(p, "ssh exec '%s'" % cmd, want=0)
        out.wait_eof()
        if out.buf != data:
            fail("exec '%s': %d bytes came back, %s" % (
                cmd, len(out.buf), "different" if len(out.buf) == len(data) else
                "want %d" % len(data)))
    # Empty input: nothing back, exit 0.
    p, out = t.ssh("x", user_key, "cat", tty=False, stdin=subprocess.DEVNULL)
    t.wait_exit(p, "ssh exec with empty stdin", want=0)
    out.wait_eof()
    if out.buf:
        fail("exec with empty stdin echoed %r" % out.buf)

    # shell with a pty: bytes back as they are (no line editing, no \n added).
    p, out = t.ssh("x", user_key)
    p.stdin.write(b"abc\r")
    p.stdin.flush()
    out.expect(b"abc\r", "the shell's echo")
    p.stdin.write(b"\x7f\x1b[A\xc3\xa9\r")
    p.stdin.flush()
    out.expect(b"\x7f\x1b[A\xc3\xa9\r", "DEL, an arrow key and UTF-8 echoed as they are")
    p.stdin.write(b"\x04")
    p.stdin.flush()
    t.wait_exit(p, "ssh shell after Ctrl-D", want=0)
    out.wait_eof()
    if out.buf != b"abc\r\x7f\x1b[A\xc3\xa9\r":
        fail("the shell echo added or lost bytes: %r" % out.buf)
    # shell without a pty: a plain echo until EOF.
    p, out = t.ssh("x", user_key, tty=False)
    p.stdin.write(b"line one\nline two\n\x04 not an exit without a pty\n")
    p.stdin.close()
    t.wait_exit(p, "ssh shell without a pty", want=0)
    out.wait_eof()
    if out.buf != b"line one\nline two\n\x04 not an exit without a pty\n":
        fail("the shell echo without a pty: %r" % out.buf)
    t.stop_server()


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("chat", "anonymous", "echo"):
        print(__doc__, file=sys.stderr)
        return 2
    part, chat, echo = sys.argv[1:]
    t = None
    try:
        t = Test(chat, echo)
        {"chat": test_chat, "anonymous": test_anonymous, "echo": test_echo}[part](t)
    except Failed as e:
        print("FAIL: %s" % e, file=sys.stderr)
        if t:
            for name in sorted(os.listdir(t.dir)):
                if name.endswith(".err"):
                    print("--- %s:\n%s" % (name, open(t.path(name), "rb").read()
                                          .decode("utf-8", "replace")), file=sys.stderr)
        return 1
    finally:
        if t:
            t.cleanup()
    print("ok: %s" % part)
    return 0


if __name__ == "__main__":
    sys.exit(main())
