"""SSH payloads and records for the seed corpora of the SSH server's fuzz
targets (make_ssh_channel_corpus.py, make_ssh_server_corpus.py): each
target reads byte 0 as its options, then records (uint16 length, big
endian, and that many bytes), most of them one payload."""
import os
import struct
import sys


def u32(v):
    return struct.pack(">I", v)


def s(b):
    if isinstance(b, str):
        b = b.encode()
    return u32(len(b)) + b


def rec(payload):
    return struct.pack(">H", len(payload)) + payload


def open_session(cid, win=1 << 20, maxpkt=32768):
    return bytes([90]) + s("session") + u32(cid) + u32(win) + u32(maxpkt)


def open_tcpip(cid, port, win=1 << 20):
    return (bytes([90]) + s("direct-tcpip") + u32(cid) + u32(win) + u32(32768) +
            s("127.0.0.1") + u32(port) + s("10.0.0.1") + u32(4444))


def req(sid, name, want=1, extra=b""):
    return bytes([98]) + u32(sid) + s(name) + bytes([want]) + extra


def data(sid, b):
    return bytes([94]) + u32(sid) + s(b)


def ext(sid, b):
    return bytes([95]) + u32(sid) + u32(1) + s(b)


def adjust(sid, n):
    return bytes([93]) + u32(sid) + u32(n)


def eof(sid):
    return bytes([96]) + u32(sid)


def close(sid):
    return bytes([97]) + u32(sid)


def glob(name, want=1, extra=b""):
    return bytes([80]) + s(name) + bytes([want]) + extra


def wait(sec):
    """The record that advances the target's fake clock `sec` seconds."""
    return bytes([0xfe, sec])


def write_corpus(name, seeds):
    """seeds: {file: (options byte, [payload, ...])}, written into argv[1]
    or tests/fuzz/corpus/NAME/."""
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", name)
    os.makedirs(out, exist_ok=True)
    for fname, (opts, recs) in seeds.items():
        with open(os.path.join(out, fname), "wb") as f:
            f.write(bytes([opts]) + b"".join(rec(r) for r in recs))
