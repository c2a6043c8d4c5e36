#!/usr/bin/python3
"""Record the KEXINIT an SSH client sends (seeds for tests/fuzz/corpus/ssh_kexinit).

    /usr/bin/python3 tests/ssh/capture_kexinit.py OUTFILE [PORTFILE]

Listens on 127.0.0.1 (a free port, printed on stdout and written to
PORTFILE when given), accepts one connection, sends an identification line
and a KEXINIT of its own (some clients wait for the server's first), reads
the client's identification line and its first binary packet (plain: no
keys yet), writes that packet's payload to OUTFILE and closes. Point a
client at it, e.g. `ssh -p PORT 127.0.0.1`; the client then fails, as it
should.
"""
import os
import socket
import struct
import sys


def namelist(s):
    return struct.pack(">I", len(s)) + s.encode()


def server_kexinit():
    lists = ["curve25519-sha256", "ssh-ed25519",
             "chacha20-poly1305@openssh.com,aes128-ctr",
             "chacha20-poly1305@openssh.com,aes128-ctr",
             "hmac-sha2-256", "hmac-sha2-256", "none", "none", "", ""]
    payload = bytes([20]) + os.urandom(16) + b"".join(namelist(x) for x in lists)
    payload += b"\0\0\0\0\0"
    pad = 8 - (5 + len(payload)) % 8
    if pad < 4:
        pad += 8
    return struct.pack(">IB", 1 + len(payload) + pad, pad) + payload + bytes(pad)


def read_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise SystemExit("capture_kexinit: the client closed after %d of %d bytes"
                             % (len(buf), n))
        buf += chunk
    return buf


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    print(port, flush=True)
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as f:
            f.write("%d\n" % port)
    srv.settimeout(60)
    conn, _ = srv.accept()
    conn.settimeout(30)
    conn.sendall(b"SSH-2.0-capture_kexinit\r\n" + server_kexinit())
    line = b""
    while not line.endswith(b"\n"):
        line += read_exact(conn, 1)
        if len(line) > 255:
            raise SystemExit("capture_kexinit: no identification line")
        if line.endswith(b"\n") and not line.startswith(b"SSH-"):
            line = b""  # a banner line before the identification
    sys.stderr.write("client: %s\n" % line.strip().decode(errors="replace"))
    length, padlen = struct.unpack(">IB", read_exact(conn, 5))
    if length > 35000 or padlen >= length:
        raise SystemExit("capture_kexinit: bad packet length %d" % length)
    body = read_exact(conn, length - 1)
    payload = body[:length - 1 - padlen]
    if not payload or payload[0] != 20:
        raise SystemExit("capture_kexinit: the first packet is not a KEXINIT")
    with open(sys.argv[1], "wb") as f:
        f.write(payload)
    conn.close()


main()
