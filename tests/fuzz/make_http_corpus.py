#!/usr/bin/python3
"""Writes the seed corpora of fuzz_http_request, fuzz_http_response and
fuzz_http_url (tests/fuzz/corpus/http_*). Each request/response seed is a
configuration byte (see the targets' headers) followed by the wire bytes.
Run from anywhere: /usr/bin/python3 tests/fuzz/make_http_corpus.py"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))

REQUESTS = {
    "get-simple": b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n",
    "get-curl": b"GET /index.html?x=1&y=%20 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                b"User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
    "get-browser": b"GET /a/b.css HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n"
                   b"Accept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n"
                   b"Cookie: a=1; b=2\r\nIf-None-Match: \"abc\"\r\n"
                   b"If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
    "http10-keepalive": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "lf-only-leading-empty": b"\r\n\nGET / HTTP/1.1\nHost: x\n\n",
    "post-length": b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
                   b"x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\na=1&b=x+y&c",
    "post-chunked": b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                    b"Expect: 100-continue\r\n\r\n5\r\nhello\r\n6;ext=\"q \\\" x\"\r\n world\r\n"
                    b"0\r\nX-Trailer: 1\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "chunked-many": b"PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + b"".join(b"1\r\n%c\r\n" % c for c in b"abcdefgh") + b"0\r\n\r\n",
    "pipelined": b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
    "options-star": b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    "connect": b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n",
    "absolute-form": b"GET http://example.org/p?q HTTP/1.1\r\nHost: example.org\r\n\r\n",
    "smuggle-cl-te": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    "smuggle-te-cl": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n",
    "smuggle-te-te": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"Transfer-encoding: cow\r\n\r\n",
    "smuggle-te-space": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n",
    "smuggle-te-fold": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
    "smuggle-cl-twice": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                        b"Content-Length: 30\r\n\r\nabc",
    "smuggle-cl-list": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc",
    "smuggle-bare-cr": b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rTransfer-Encoding: chunked\r\n\r\n",
    "smuggle-chunk-lf": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"2;\nxx\r\n45\r\n0\r\n\r\n",
    "smuggle-chunk-size-overflow": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                                   b"\r\n\r\nFFFFFFFFFFFFFFFF1\r\nx\r\n0\r\n\r\n",
    "te-gzip-chunked": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    "http2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "no-host": b"GET / HTTP/1.1\r\n\r\n",
    "nul-in-value": b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
}

RESPONSES = {
    "ok-length": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    "ok-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n0\r\nX-T: y\r\n\r\n",
    "nginx-404": b"HTTP/1.1 404 Not Found\r\nServer: nginx/1.22.1\r\n"
                 b"Date: Tue, 01 Dec 2026 23:00:00 GMT\r\nContent-Type: text/html\r\n"
                 b"Content-Length: 9\r\nConnection: keep-alive\r\n\r\nnot found",
    "twisted": b"HTTP/1.1 200 OK\r\nServer: TwistedWeb/22.4.0\r\nContent-Length: 2\r\n\r\nhi",
    "close-delimited": b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close",
    "continue-then-ok": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
                        b"Content-Length: 0\r\n\r\n",
    "no-content": b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
    "not-modified": b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
    "redirect": b"HTTP/1.1 302 Found\r\nLocation: /next?x=1\r\nContent-Length: 0\r\n\r\n",
    "empty-reason-lf": b"HTTP/1.1 200 \nContent-Length: 1\n\nx",
    "bad-cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    "bad-status": b"HTTP/1.1 2000 OK\r\n\r\n",
    "http2": b"HTTP/2.0 200 OK\r\n\r\n",
}

URLS = {
    "http": b"http://example.org/",
    "https-port-query": b"https://Example.ORG:8443/a/b%20c?x=1&y=2#frag",
    "ipv6": b"http://[::1]:8080/x",
    "ipv6-bad": b"http://[::1/",
    "unix": b"http+unix://%2Frun%2Fapp.sock/path?a=b",
    "userinfo": b"http://user:pw@example.org/",
    "ftp": b"ftp://example.org/file",
    "relative": b"../g?y#s",
    "network-path": b"//other.example/z",
    "dots": b"/a/./b/../../../c/.",
    "port-range": b"http://h:65536/",
    "bad-escape": b"http://h/%zz",
    "base-and-ref": b"https://a.example:444/b/c/d;p?q\n../../g;x=1/./y?z",
    "query-only": b"?only",
}


def write(name, seeds, cfgs):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for key, body in seeds.items():
        for cfg in cfgs:
            suffix = "" if not cfg else "-cfg%02x" % cfg
            with open(os.path.join(d, key + suffix), "wb") as f:
                f.write((bytes([cfg]) if cfg is not None else b"") + body)


write("http_request", REQUESTS, [0x00])
write("http_request", {k: REQUESTS[k] for k in ("get-browser", "post-chunked")}, [0x01, 0x06])
write("http_response", RESPONSES, [0x00])
write("http_response", {"ok-length": RESPONSES["ok-length"]}, [0x04])
write("http_url", URLS, [None])
