#!/usr/bin/python3
"""Writes the seed corpus of fuzz_ssh_channel (see fuzz_ssh_channel.c for the
input format) into tests/fuzz/corpus/ssh_channel/."""
from sshcorpus import (adjust, close, data, eof, ext, glob, open_session, open_tcpip, req,
                       s, u32, wait, write_corpus)


def act(k, i=0):
    return bytes([0xff, k, i])


def pty(sid):
    return req(sid, "pty-req", 1, s("xterm-256color") + u32(80) + u32(24) + u32(0) +
               u32(0) + s(b"\x81\x00\x00\x96\x00\x00"))


def env(sid, n, v):
    return req(sid, "env", 1, s(n) + s(v))


def winch(sid, c, r):
    return req(sid, "window-change", 0, u32(c) + u32(r) + u32(0) + u32(0))


seeds = {
    "exec_echo": (0, [open_session(0), req(0, "exec", 1, s("cat")), data(0, "hello"),
                      eof(0), close(0)]),
    "shell_pty": (0, [open_session(5), pty(0), env(0, "LANG", "C"), env(0, "A=B", "x"),
                      req(0, "shell"), winch(0, 100, 40), data(0, "p"), data(0, "abc"),
                      act(1), data(0, "more"), act(7), act(4), close(0)]),
    "tcpip": (0, [open_tcpip(1, 7000), open_tcpip(2, 22), data(0, "ping"),
                  req(0, "exec", 1, s("x")), close(0), close(1)]),
    "globals": (0, [glob("keepalive@openssh.com"),
                    glob("tcpip-forward", 1, s("0.0.0.0") + u32(8080)),
                    glob("cancel-tcpip-forward", 1, s("0.0.0.0") + u32(8080)),
                    open_session(0), glob("no-more-sessions@openssh.com", 0),
                    bytes([82]), bytes([81]), open_session(1)]),
    "window": (0, [open_session(3, 24 * 1024, 1024), req(0, "exec", 0, s("yes")),
                   data(0, "w"), adjust(0, 10000), adjust(0, 50000), adjust(0, 100000),
                   act(6), adjust(0, 20000), close(0)]),
    "overflow": (1, [open_session(0), req(0, "exec", 0, s("cat")), data(0, "p"),
                     data(0, b"x" * 3000), data(0, b"y" * 2000)]),
    "bigpacket": (4, [open_session(0), req(0, "exec", 0, s("cat")),
                      data(0, b"z" * 1025)]),
    "many": (2, [x for i in range(6) for x in (open_session(10 + i),
                                              req(i, "exec", 0, s("cat")),
                                              data(i, "d%d" % i))] + [close(2), eof(1)]),
    "stderr_linger": (0, [open_session(7, 2), req(0, "exec", 0, s("sh")), act(3), act(2),
                          act(3), adjust(0, 200000), ext(0, "client-err"), act(4),
                          wait(40), close(0), open_session(8)]),
    "requests": (0, [open_session(0), req(0, "subsystem", 1, s("sftp")),
                     open_session(1), req(1, "subsystem", 1, s("nope")),
                     req(1, "signal", 1, s("TERM")), req(1, "x11-req", 1),
                     req(1, "auth-agent-req@openssh.com", 1),
                     req(1, "keepalive@openssh.com", 1), req(1, "exec", 1, s("a")),
                     req(1, "shell", 1), act(5, 1), close(1)]),
    "garbage": (0, [bytes([85]), bytes([120, 1, 2]), bytes([91]) + u32(0) * 4,
                    bytes([90]) + s("x11") + u32(0) + u32(0) + u32(0), bytes([90]),
                    data(9, "x")]),
    "abort_lost": (0, [open_session(0), req(0, "exec", 0, s("cat")), data(0, "p"),
                       data(0, "held"), open_session(1), req(1, "exec", 0, s("cat")),
                       data(1, "a"), data(1, "c")]),
}

write_corpus("ssh_channel", seeds)
