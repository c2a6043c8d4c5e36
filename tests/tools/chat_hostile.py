"""Hostile clients against coil-chat, on loopback (run by run_tools.sh hostile).

Usage: chat_hostile.py CASE COIL_CHAT PORT SOCK SERVER_PID
  stall     (server: --max-queue 1M) a registered client that never reads
            while another floods 32 MiB: it is closed with a line saying
            why, the server's RSS stays bounded, a third client gets every
            line in order and promptly
  inject    control bytes, bad UTF-8, C1 controls and bidi overrides in a
            line reach the others escaped ("^M", "^[", "\\xff", "\\u202e")
  names     bad names refused with one short line each (too long, spaces,
            control bytes, not UTF-8, a case-folded twin); five close the
            connection; garbage names never make the server send more than
            it received
  timeout   (server: --name-timeout 3) no name: closed with a line after
            the timeout; a registered client is not
  caps      (server: --max-unregistered 4 --max-unregistered-per-address 2)
            over either cap a new connection gets one line and is closed
  join      coil-chat join against a fake server that sends raw control
            bytes: nothing but "\\n" reaches its stdout raw (SOCK is the
            fake server's socket path)
Exits non-zero with a message on the first failure.
"""
import os
import select
import socket
import subprocess
import sys
import threading
import time

CASE, CHAT, PORT, SOCK, PID = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
TIMEOUT = 10.0  # generous: the machine may be busy; a hang still fails


class Client:
    def __init__(self, who, source="127.0.0.1", unix=False, rcvbuf=0):
        self.who = who
        if unix:
            self.s = socket.socket(socket.AF_UNIX)
            self.s.settimeout(TIMEOUT)
            self.s.connect(SOCK)
        else:
            self.s = socket.socket()
            if rcvbuf:
                self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.s.bind((source, 0))
            self.s.settimeout(TIMEOUT)
            self.s.connect(("127.0.0.1", PORT))
        self.buf = b""
        self.received = 0

    def send(self, data):
        self.s.sendall(data)

    def recv(self):
        d = self.s.recv(1 << 16)
        self.received += len(d)
        return d

    def line(self):
        """The next line, which must end with \\r\\n."""
        while b"\n" not in self.buf:
            d = self.recv()
            if not d:
                raise AssertionError("%s: connection closed; have %r" % (self.who, self.buf[:200]))
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        if not line.endswith(b"\r"):
            raise AssertionError("%s: line %r does not end with \\r\\n" % (self.who, line[:200]))
        return line[:-1]

    def expect(self, want):
        got = self.line()
        if got != want:
            raise AssertionError("%s: got %r, want %r" % (self.who, got[:300], want[:300]))

    def expect_close(self):
        """EOF (or a reset) next, nothing before it."""
        try:
            d = self.recv()
        except ConnectionResetError:
            d = b""
        if d or self.buf:
            raise AssertionError("%s: expected the close, got %r" % (self.who, (self.buf + d)[:200]))

    def register(self, name, *others):
        self.expect(b"What is your name?")
        self.send(name + b"\r\n")
        self.expect(b"Welcome, " + name + b"!")
        for o in others:
            o.expect(name + b" has joined the channel.")

    def close(self):
        self.s.close()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def case_stall():
    alice = Client("alice")
    alice.register(b"alice")
    bob = Client("bob")
    bob.register(b"bob", alice)
    # A small receive buffer: the kernel holds little, the server's queue
    # for slow grows at once.
    slow = Client("slow", rcvbuf=4096)
    slow.register(b"slow", alice, bob)
    base = rss_kib(PID)
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(PID))
            done.wait(0.02)

    LINES, FILL, CHUNK = 32768, b"f" * 1000, 256  # 32 MiB, in 256 KiB sends
    # alice stays at most 512 lines (512 KiB) ahead of bob, whatever the
    # speed of each: bob is a reader that keeps up (were this process slow
    # to read, his queue must still stay under the 1 MiB cap), slow is one
    # that does not.
    bob_got = [0]
    progress = threading.Condition()

    def flood():
        for start in range(0, LINES, CHUNK):
            with progress:
                if not progress.wait_for(lambda: bob_got[0] >= start - 2 * CHUNK, TIMEOUT):
                    return  # bob stalled: his loop below fails
            alice.send(b"".join(b"%05d %s\r\n" % (i, FILL) for i in range(start, start + CHUNK)))

    sampler = threading.Thread(target=sample)
    sender = threading.Thread(target=flood)
    sampler.start()
    t0 = time.time()
    sender.start()
    # bob reads as fast as he can: every line, in order. A gap of TIMEOUT
    # seconds fails (socket timeout).
    for i in range(LINES):
        got = bob.line()
        if got != b"<alice> %05d %s" % (i, FILL):
            raise AssertionError("bob: line %d is %r" % (i, got[:60]))
        if (i + 1) % CHUNK == 0:
            with progress:
                bob_got[0] = i + 1
                progress.notify()
    sender.join()
    flood_s = time.time() - t0
    done.set()
    sampler.join()
    # Promptly: a line sent now reaches bob at once, whatever slow does.
    t1 = time.time()
    alice.send(b"ping\r\n")
    bob.expect(b"<alice> ping")
    ping_s = time.time() - t1
    grown = (peak[0] - base) / 1024.0
    print("stall: 32 MiB flood in %.1f s; server RSS %.1f MiB -> peak %.1f MiB (+%.1f); "
          "ping %.3f s" % (flood_s, base / 1024.0, peak[0] / 1024.0, grown, ping_s))
    if grown > 16:
        raise AssertionError("the server grew by %.1f MiB for one stalled reader" % grown)
    if ping_s > 2:
        raise AssertionError("a line took %.1f s to reach bob" % ping_s)
    # slow reads at last: what was queued for it, then why it was closed,
    # then the end.
    slow.s.settimeout(TIMEOUT)
    last, n = None, 0
    while True:
        try:
            l = slow.line()
        except AssertionError:
            if slow.buf:
                raise
            break
        last, n = l, n + 1
    if not last or not last.startswith(b"You are not reading") or b"1048576 bytes" not in last:
        raise AssertionError("slow: the last line is %r, not why it was closed" % (last or b"")[:200])
    # 1 MiB queued in the server, plus what the kernel buffers held.
    if n > 8000:
        raise AssertionError("slow: %d lines were queued for it (the cap is 1 MiB)" % n)
    bob.expect(b"slow has left the channel.")
    alice.expect(b"slow has left the channel.")
    print("stall: slow got %d lines, then %r" % (n - 1, last))


def case_inject():
    bob = Client("bob")
    bob.register(b"bob")
    mal = Client("mallory")
    mal.register(b"mallory", bob)
    cases = [
        (b"hi\r<bob> forged", b"hi^M<bob> forged"),
        (b"\x1b[2J\x1b]0;title\x07bell", b"^[[2J^[]0;title^Gbell"),
        (b"nul\x00byte\x7fdel", b"nul^@byte^?del"),
        (b"tab\tstays", b"tab\tstays"),
        (b"bad utf8 \xff\xc3", b"bad utf8 \\xff\\xc3"),
        (b"c1 \xc2\x9b31m", b"c1 \\u009b31m"),
        (b"rlo \xe2\x80\xaeevil", b"rlo \\u202eevil"),
        (b"caf\xc3\xa9 \xe2\x82\xac ok", b"caf\xc3\xa9 \xe2\x82\xac ok"),
    ]
    for sent, _ in cases:
        mal.send(sent + b"\r\n")
    for sent, want in cases:
        got = bob.line()
        if got != b"<mallory> " + want:
            raise AssertionError("bob: %r arrived as %r, want %r" % (sent, got, b"<mallory> " + want))
        if any(c < 0x20 and c != 9 for c in got) or 0x7f in got:
            raise AssertionError("bob: a control byte in %r" % got)
    print("inject: %d lines escaped" % len(cases))


def case_names():
    alice = Client("alice")
    alice.register(b"alice")
    SPACE = b"Bad name: no spaces or control characters."
    LONG = b"Bad name: 32 characters at most."
    c = Client("c1")
    c.expect(b"What is your name?")
    for name, want in [(b"x" * 33, LONG), (b"b b", SPACE), (b"bo\x1bb", SPACE),
                       (b"ALICE", b"Name taken, please choose another.")]:
        c.send(name + b"\r\n")
        c.expect(want)
    c.send(b"\r\n")                       # an empty line: no answer
    c.send(b"y" * 32 + b"\r\n")           # 32 is fine
    c.expect(b"Welcome, " + b"y" * 32 + b"!")
    alice.expect(b"y" * 32 + b" has joined the channel.")
    d = Client("d1")
    d.expect(b"What is your name?")
    for name, want in [(b"\xff\xfe", b"Bad name: not UTF-8."), (b"tab\tname", SPACE),
                       (b"\xe2\x80\x8bbob", SPACE), (b"\xc2\x9bx", SPACE),
                       ]:
        d.send(name + b"\r\n")
        d.expect(want)
    d.send(b"\xc3\xa9" * 33 + b"\r\n")       # 33 characters, 66 bytes
    # the fifth bad name: closed
    d.expect(b"Too many bad names; closing.")
    d.expect_close()
    e = Client("e1")
    e.register(b"\xc3\xa9" * 32, alice)   # 32 characters, 64 bytes
    f = Client("f1")
    f.expect(b"What is your name?")
    f.send(b"Y" * 32 + b"\r\n")           # y*32's twin
    f.expect(b"Name taken, please choose another.")
    f.close()
    # Garbage names never make the server send more than it got.
    g = Client("g1")
    junk = b"\n" * 10000 + b"alice\n" * 20000 + b"\x01\n" * 20000
    sent = 0
    try:
        for i in range(0, len(junk), 4096):
            g.send(junk[i:i + 4096])
            sent += len(junk[i:i + 4096])
    except (BrokenPipeError, ConnectionResetError):
        pass                              # closed after a few bad names
    try:
        while g.recv():
            pass
    except ConnectionResetError:
        pass
    print("names: garbage: sent %d bytes, received %d" % (sent, g.received))
    if g.received > 1024 or g.received >= sent:
        raise AssertionError("garbage names: sent %d bytes, received %d" % (sent, g.received))


def case_timeout():
    reg = Client("reg")
    reg.register(b"reg")
    t0 = time.time()
    c = Client("idle")
    c.expect(b"What is your name?")
    c.s.settimeout(3 + TIMEOUT)
    c.expect(b"No name given within 3 s; closing.")
    took = time.time() - t0
    c.expect_close()
    if took < 2.5:
        raise AssertionError("closed after %.1f s, before the 3 s timeout" % took)
    # A registered user is not timed out: still here after the timeout.
    other = Client("other")
    other.register(b"other", reg)
    other.send(b"still there?\r\n")
    reg.expect(b"<other> still there?")
    print("timeout: closed after %.1f s" % took)


def case_caps():
    PROMPT = b"What is your name?"
    PER = b"Too many connections from your address waiting to give a name; try again later."
    ALL = b"Too many connections waiting to give a name; try again later."
    a1, a2 = Client("a1"), Client("a2")
    a1.expect(PROMPT)
    a2.expect(PROMPT)
    a3 = Client("a3")
    a3.expect(PER)
    a3.expect_close()
    b1, b2 = Client("b1", "127.0.0.2"), Client("b2", "127.0.0.2")
    b1.expect(PROMPT)
    b2.expect(PROMPT)
    c1 = Client("c1", "127.0.0.3")        # a fresh address, but 4 are waiting
    c1.expect(ALL)
    c1.expect_close()
    a1.send(b"a1\r\n")                    # registered: no longer counted
    a1.expect(b"Welcome, a1!")
    a4 = Client("a4")
    a4.expect(PROMPT)
    b1.send(b"b1\r\n")
    b1.expect(b"Welcome, b1!")
    b2.send(b"b2\r\n")
    b2.expect(b"Welcome, b2!")
    a2.send(b"a2\r\n")
    a2.expect(b"Welcome, a2!")
    # UNIX connections count per uid: two wait, the third is refused (one
    # waits on TCP: 3 in all, under the total cap).
    u1, u2 = Client("u1", unix=True), Client("u2", unix=True)
    u1.expect(PROMPT)
    u2.expect(PROMPT)
    u3 = Client("u3", unix=True)
    u3.expect(PER)
    u3.expect_close()
    print("caps: per address and in total")


def case_join():
    l = socket.socket(socket.AF_UNIX)
    l.bind(SOCK)
    l.listen(1)
    p = subprocess.Popen([CHAT, "join", "unix:" + SOCK, "--name", "eve"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    l.settimeout(TIMEOUT)
    c, _ = l.accept()
    c.settimeout(TIMEOUT)
    c.sendall(b"What is your name?\r\n")
    name = b""
    while not name.endswith(b"\n"):
        d = c.recv(100)
        if not d:
            raise AssertionError("join closed before sending its name")
        name += d
    if name != b"eve\r\n":
        raise AssertionError("join sent %r as its name" % name)
    c.sendall(b"evil \x1b[31mred\x1b[0m\rX\x07\x00 \xc2\x9b \xff end\r\n")
    c.close()
    try:
        out, err = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        raise AssertionError("join did not exit when the server closed")
    want = b"What is your name?\nevil ^[[31mred^[[0m^MX^G^@ \\u009b \\xff end\n"
    if out != want:
        raise AssertionError("join printed %r, want %r (stderr %r)" % (out, want, err))
    print("join: control bytes from the server escaped")


{"stall": case_stall, "inject": case_inject, "names": case_names, "timeout": case_timeout,
 "caps": case_caps, "join": case_join}[CASE]()
