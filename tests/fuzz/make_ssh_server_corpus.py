#!/usr/bin/python3
"""Writes the seed corpus of fuzz_ssh_server (see fuzz_ssh_server.c for the
input format) into tests/fuzz/corpus/ssh_server/."""
from sshcorpus import (adjust, close, data, eof, glob, open_session, open_tcpip, req, s,
                       u32, wait, write_corpus)


def raw(b):
    return bytes([0xfd]) + b


def kexinit(strict=False, follows=0, kex="curve25519-sha256",
            cipher="aes128-ctr", mac="hmac-sha2-256"):
    k = kex + (",kex-strict-c-v00@openssh.com" if strict else "")
    return (bytes([20]) + bytes(range(16)) + s(k) + s("ssh-ed25519") + s(cipher) +
            s(cipher) + s(mac) + s(mac) + s("none") + s("none") + s("") + s("") +
            bytes([follows]) + u32(0))


def ecdh_init(key=bytes(range(1, 33))):
    return bytes([30]) + s(key)


def service(name="ssh-userauth"):
    return bytes([5]) + s(name)


def userauth(user, method, extra=b""):
    return bytes([50]) + s(user) + s("ssh-connection") + s(method) + extra


ED25519_BLOB = s("ssh-ed25519") + s(bytes(range(32)))


def disconnect(code, text):
    return bytes([1]) + u32(code) + s(text) + s("")


seeds = {
    # logged in: a session, exec, data, window adjust, EOF, close
    "exec": (0, [open_session(0), req(0, "exec", 1, s("cat")), data(0, "hello"),
                 adjust(0, 65536), data(0, "again"), eof(0), close(0)]),
    "shell_pty": (0, [open_session(1), req(0, "pty-req", 1, s("xterm") + u32(80) + u32(24) +
                                           u32(0) + u32(0) + s(b"\x00")),
                      req(0, "env", 1, s("LANG") + s("C")), req(0, "shell"),
                      req(0, "window-change", 0, u32(100) + u32(40) + u32(0) + u32(0)),
                      data(0, "typed\r"), close(0)]),
    "tcpip": (0, [open_tcpip(2, 7000), open_tcpip(3, 22), data(0, "ping"), close(0)]),
    "globals": (0, [glob("keepalive@openssh.com"),
                    glob("tcpip-forward", 1, s("0.0.0.0") + u32(8080)),
                    glob("no-more-sessions@openssh.com", 0), glob("x", 1)]),
    # transport messages after the handshake
    "transport": (0, [bytes([2]) + s("ignored"), bytes([4, 1]) + s("debug") + s(""),
                      bytes([3]) + u32(7), bytes([7]) + u32(0), bytes([200]),
                      bytes([15]), service(), service("ssh-connection")]),
    "disconnect": (0, [open_session(0), disconnect(11, "bye")]),
    "garbage": (0, [raw(b"\xff\xff\xff\xff\x00"), open_session(0)]),
    "short_len": (0, [raw(b"\x00\x00\x00\x01\x00\x00\x00\x00")]),
    "empty": (0, [b"", bytes([0])]),
    # a key re-exchange the client starts, and what may come during it
    "rekey_client": (0, [open_session(0), req(0, "exec", 1, s("cat")), kexinit(),
                         data(0, "during"), ecdh_init(), bytes([21]), data(0, "x")]),
    "rekey_guess": (0, [kexinit(follows=1, kex="ecdh-sha2-nistp256,curve25519-sha256"),
                        ecdh_init(), ecdh_init()]),
    "rekey_zero": (0, [kexinit(), ecdh_init(bytes(32))]),
    "rekey_server": (2, [open_session(0), req(0, "exec", 1, s("cat"))] +
                     [data(0, b"d" * 400) for _ in range(6)] +
                     [kexinit(cipher="chacha20-poly1305@openssh.com"), ecdh_init()]),
    "newkeys_early": (0, [bytes([21]), bytes([30])]),
    # not logged in yet: authentication runs
    "auth_none": (1, [userauth("alice", "none"), open_session(0)]),
    "auth_before_service": (1, [open_session(0)]),
    "auth_pk_query": (1, [service(), userauth("bob", "publickey",
                                             bytes([0]) + s("ssh-ed25519") + ED25519_BLOB),
                          userauth("bob", "publickey", bytes([1]) + s("ssh-ed25519") +
                                   ED25519_BLOB + s(s("ssh-ed25519") + s(bytes(64)))),
                          userauth("bob", "keyboard-interactive", s("") + s("")),
                          bytes([61]) + u32(0), wait(5), open_session(0)]),
    "split_hold": (4 | 8, [open_session(0), req(0, "exec", 1, s("cat")), data(0, "a"),
                           data(0, "b"), data(0, "c"), data(0, "d"), eof(0), close(0)]),
    "auth_split_hold": (1 | 4 | 8, [service(), userauth("x", "none"), service(),
                                    userauth("x", "password", bytes([0]) + s("pw")),
                                    open_session(0), req(0, "exec", 1, s("cat"))]),
}

write_corpus("ssh_server", seeds)
