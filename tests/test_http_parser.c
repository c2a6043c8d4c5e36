/* The HTTP/1.1 parser (protocols/http/parse.c): request and response heads
 * and the chunked decoder. Every case is parsed in one piece, growing byte
 * by byte and cut in two at every point; each way must give the same
 * result (a description of everything the parser filled in, views as
 * offsets). Valid requests, a table of malformed and smuggling requests
 * with the status each must get, responses and their framing, chunked
 * bodies. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "http_parse.h"

#define NFIELDS 128

/* ---- heads ---------------------------------------------------------------- */

typedef struct parsed {
    int rc;
    const char *why;
    coil__http_head h;
    coil__http_field fields[NFIELDS];
    char desc[8192];
} parsed;

static void view(char *d, size_t size, size_t *at, const char *tag, const char *base,
                 size_t len, const char *p, size_t n)
{
    if (!p) {
        *at += (size_t)snprintf(d + *at, size - *at, "%s=NULL ", tag);
        return;
    }
    /* Views must lie inside the buffer. */
    CU_ASSERT(p >= base && p + n <= base + len);
    *at += (size_t)snprintf(d + *at, size - *at, "%s@%zu=[%.*s] ", tag,
                            (size_t)(p - base), (int)n, p);
}

static void describe(parsed *r, const char *buf, size_t len)
{
    size_t at = 0, size = sizeof r->desc;
    char *d = r->desc;
    at += (size_t)snprintf(d, size, "rc=%d ", r->rc);
    if (r->rc < 0) {
        snprintf(d + at, size - at, "why=%s", r->why ? r->why : "(null)");
        return;
    }
    if (r->rc == 0)
        return;
    const coil__http_head *h = &r->h;
    CU_ASSERT((size_t)r->rc == h->head_len);
    CU_ASSERT(h->head_len <= len);
    view(d, size, &at, "M", buf, len, h->method, h->method_len);
    view(d, size, &at, "T", buf, len, h->target, h->target_len);
    view(d, size, &at, "H", buf, len, h->host, h->host_len);
    view(d, size, &at, "R", buf, len, h->reason, h->reason_len);
    at += (size_t)snprintf(d + at, size - at,
                           "S=%d V=%d B=%d CL=%" PRIu64 " KA=%d EC=%d N=%zu ", h->status,
                           h->version, (int)h->body, h->content_length, h->keep_alive,
                           h->expect_continue, h->nfields);
    for (size_t i = 0; i < h->nfields && at < size; i++) {
        view(d, size, &at, "n", buf, len, h->fields[i].name, h->fields[i].name_len);
        view(d, size, &at, "v", buf, len, h->fields[i].value, h->fields[i].value_len);
    }
}

typedef struct hcase {
    int response;
    int head_request;
    coil__http_limits lim;
} hcase;

static int parse_once(const hcase *c, coil__http_parser *st, const char *buf, size_t len,
                      parsed *r)
{
    r->h.fields = r->fields;
    r->h.fields_cap = NFIELDS;
    r->why = NULL;
    if (c->response)
        r->rc = coil__http_parse_response(st, buf, len, &c->lim, c->head_request, &r->h,
                                          &r->why);
    else
        r->rc = coil__http_parse_request(st, buf, len, &c->lim, &r->h, &r->why);
    if (r->rc != 0)
        CU_ASSERT_PTR_NOT_NULL(r->rc < 0 ? r->why : "ok");
    return r->rc;
}

/* An exact-size copy, so the sanitizers see any read past the end. */
static char *copy(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    CU_ASSERT_FATAL(p != NULL);
    memcpy(p, s, n);
    return p;
}

/* Parse `in` one-shot, byte by byte and cut in two everywhere; all must
 * agree. Returns the one-shot result (r->desc describes it). */
static int parse_every_way(const hcase *c, const char *in, size_t n, parsed *r)
{
    static parsed other;
    static char *kept; /* the one-shot buffer: r's views point into it */
    coil__http_parser st = {0};
    free(kept);
    kept = copy(in, n);
    parse_once(c, &st, kept, n, r);
    describe(r, kept, n);
    char *b;

    /* growing one byte at a time */
    coil__http_parser gs = {0};
    int done = 0;
    for (size_t k = 0; k <= n && !done; k++) {
        b = copy(in, k);
        if (parse_once(c, &gs, b, k, &other) != 0 || k == n) {
            describe(&other, b, k);
            if (strcmp(other.desc, r->desc) != 0) {
                fprintf(
                    stderr,
                    "\n  byte by byte (at %zu of %zu):\n    %s\n  one-shot:\n    %s\n", k,
                    n, other.desc, r->desc);
                CU_FAIL("growing parse differs from the one-shot parse");
            }
            done = 1;
        }
        free(b);
    }
    /* two pieces */
    for (size_t i = 0; i < n; i++) {
        coil__http_parser ts = {0};
        b = copy(in, i);
        int rc = parse_once(c, &ts, b, i, &other);
        if (rc != 0) {
            describe(&other, b, i);
            free(b);
            if (strcmp(other.desc, r->desc) != 0) {
                fprintf(stderr, "\n  first piece of %zu:\n    %s\n  one-shot:\n    %s\n",
                        i, other.desc, r->desc);
                CU_FAIL("split parse differs from the one-shot parse");
                break;
            }
            continue;
        }
        free(b);
        b = copy(in, n);
        parse_once(c, &ts, b, n, &other);
        describe(&other, b, n);
        free(b);
        if (strcmp(other.desc, r->desc) != 0) {
            fprintf(stderr, "\n  split at %zu:\n    %s\n  one-shot:\n    %s\n", i,
                    other.desc, r->desc);
            CU_FAIL("split parse differs from the one-shot parse");
            break;
        }
    }
    return r->rc;
}

static parsed res;

static int req(const char *s)
{
    hcase c = {0};
    return parse_every_way(&c, s, strlen(s), &res);
}

static const coil__http_field *field(const char *name)
{
    return coil__http_head_field(&res.h, name);
}

#define VIEW_EQ(p, n, lit) \
    CU_ASSERT((n) == strlen(lit) && (p) != NULL && memcmp((p), (lit), (n)) == 0)

static void test_simple_get(void)
{
    const char *s = "GET /index.html?x=1 HTTP/1.1\r\nHost: example.org\r\n"
                    "User-Agent: t\r\nAccept: */*\r\n\r\n";
    CU_ASSERT_EQUAL(req(s), (int)strlen(s));
    VIEW_EQ(res.h.method, res.h.method_len, "GET");
    VIEW_EQ(res.h.target, res.h.target_len, "/index.html?x=1");
    VIEW_EQ(res.h.host, res.h.host_len, "example.org");
    CU_ASSERT_EQUAL(res.h.version, 11);
    CU_ASSERT_EQUAL(res.h.nfields, 3);
    CU_ASSERT_EQUAL(res.h.body, COIL__HTTP_BODY_NONE);
    CU_ASSERT_EQUAL(res.h.keep_alive, 1);
    CU_ASSERT_EQUAL(res.h.expect_continue, 0);
    const coil__http_field *f = field("user-agent");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    VIEW_EQ(f->value, f->value_len, "t");
    CU_ASSERT_PTR_NULL(field("cookie"));
}

static void test_forms_and_versions(void)
{
    CU_ASSERT(req("GET http://example.org/a?b HTTP/1.1\r\nHost: example.org\r\n\r\n") >
              0);
    VIEW_EQ(res.h.target, res.h.target_len, "http://example.org/a?b");
    CU_ASSERT(req("CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n") >
              0);
    VIEW_EQ(res.h.target, res.h.target_len, "example.org:443");
    CU_ASSERT(req("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n") > 0);
    CU_ASSERT(req("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n") > 0);
    VIEW_EQ(res.h.target, res.h.target_len, "*");
    CU_ASSERT(req("GET / HTTP/1.0\r\n\r\n") > 0);
    CU_ASSERT_EQUAL(res.h.version, 10);
    CU_ASSERT_EQUAL(res.h.keep_alive, 0);
    CU_ASSERT_PTR_NULL(res.h.host);
    CU_ASSERT(req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") > 0);
    CU_ASSERT_EQUAL(res.h.keep_alive, 1);
    CU_ASSERT(req("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n") > 0);
    CU_ASSERT_EQUAL(res.h.keep_alive, 0);
    CU_ASSERT(req("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n") > 0);
    CU_ASSERT_EQUAL(res.h.keep_alive, 1);
    CU_ASSERT(req("M-SEARCH * HTTP/1.1\r\nHost: x\r\n\r\n") == -400); /* * is OPTIONS' */
    CU_ASSERT(req("PROPFIND /d HTTP/1.1\r\nHost: x\r\n\r\n") > 0);
    /* RFC 9112 2.3: a minor version above ours is processed as HTTP/1.1. */
    CU_ASSERT(req("GET / HTTP/1.2\r\nHost: x\r\n\r\n") > 0);
    CU_ASSERT_EQUAL(res.h.version, 11);
}

static void test_leading_lines_and_lf(void)
{
    const char *s = "\r\n\nGET / HTTP/1.1\nHost: x\n\n";
    CU_ASSERT_EQUAL(req(s), (int)strlen(s));
    VIEW_EQ(res.h.method, res.h.method_len, "GET");
    VIEW_EQ(res.h.host, res.h.host_len, "x");
    CU_ASSERT_EQUAL(req("\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"), -400);
    s = "GET / HTTP/1.1\r\nHost: x\nA: b\r\n\n";
    CU_ASSERT_EQUAL(req(s), (int)strlen(s));
    CU_ASSERT_EQUAL(res.h.nfields, 2);
}

static void test_values(void)
{
    const char *s = "POST /f HTTP/1.1\r\nHost: x\r\nX-A:\tone\ttwo \t\r\nX-Empty:\r\n"
                    "X-Utf8: caf\xc3\xa9\r\nContent-Length: 5, 5\r\n"
                    "Content-Length: 5\r\nExpect: 100-Continue\r\n\r\nhello";
    CU_ASSERT_EQUAL(req(s), (int)strlen(s) - 5);
    const coil__http_field *f = field("x-a");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    VIEW_EQ(f->value, f->value_len, "one\ttwo");
    f = field("X-EMPTY");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(f->value_len, 0);
    CU_ASSERT_EQUAL(res.h.body, COIL__HTTP_BODY_LENGTH);
    CU_ASSERT_EQUAL(res.h.content_length, 5);
    CU_ASSERT_EQUAL(res.h.expect_continue, 1);
    /* Expect in 1.0 is ignored. */
    CU_ASSERT(
        req("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n") > 0);
    CU_ASSERT_EQUAL(res.h.expect_continue, 0);
    CU_ASSERT_EQUAL(res.h.body, COIL__HTTP_BODY_LENGTH);
    CU_ASSERT_EQUAL(res.h.content_length, 0);
    CU_ASSERT(req("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n") >
              0);
    CU_ASSERT_EQUAL(res.h.body, COIL__HTTP_BODY_CHUNKED);
    CU_ASSERT(req("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,Chunked ,\r\n\r\n") >
              0);
    CU_ASSERT_EQUAL(res.h.body, COIL__HTTP_BODY_CHUNKED);
    CU_ASSERT(
        req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4611686018427387904\r\n\r\n") >
        0);
    CU_ASSERT_EQUAL(res.h.content_length, UINT64_C(1) << 62);
}

static void test_many_fields(void)
{
    char buf[8192];
    size_t at = (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 1; i < 100; i++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "X-F%d: v%d\r\n", i, i);
    snprintf(buf + at, sizeof buf - at, "\r\n");
    CU_ASSERT(req(buf) > 0);
    CU_ASSERT_EQUAL(res.h.nfields, 100);
    at += (size_t)snprintf(buf + at, sizeof buf - at, "X-Last: 1\r\n\r\n");
    CU_ASSERT_EQUAL(req(buf), -431);
}

/* Each malformed or smuggling request with the status it must get. */
#define NUL_IN_VALUE "GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n"
static const struct bad {
    const char *in;
    int status;
    size_t len; /* 0: strlen */
} bad_requests[] = {
    /* framing */
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: "
     "chunked\r\n\r\n",
     400, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: "
     "5\r\n\r\n",
     400, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400,
     0},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\n", 400, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", 400, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5 5\r\n\r\n", 400, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\n", 400, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5a\r\n\r\n", 400, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n", 400, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5,\r\n\r\n", 400, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4611686018427387905\r\n\r\n", 400, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400,
     0},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     "Transfer-Encoding: chunked\r\n\r\n",
     400, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     "Transfer-Encoding: identity\r\n\r\n",
     400, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n", 400, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 400, 0},
    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n", 400, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\r\n\tgzip\r\n\r\n", 400,
     0},
    {"POST / HTTP/1.1\r\nHost: x\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n", 400, 0},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\rX: y\r\n\r\n", 400, 0},
    /* bare CR, controls, NUL */
    {"GET /\r HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\rHost: x\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\n\rX: a\r\n\r\n", 400, 0},
    {"\rGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
    {NUL_IN_VALUE, 400, sizeof NUL_IN_VALUE - 1},
    {"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01"
     "b\r\n\r\n",
     400, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\nX: a\x7f\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\nX\x01: a\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\nX\x7f: a\r\n\r\n", 400, 0},
    {"GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
    {"GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
    {"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
    {"GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
    /* field syntax */
    {"GET / HTTP/1.1\r\nHost: x\r\nX : a\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\nX\t: a\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n\tb\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\n: a\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\nX(y): a\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\nHost: x\r\nX[y]: a\r\n\r\n", 400, 0},
    /* Host */
    {"GET / HTTP/1.1\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\nX: y\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, 0},
    {"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, 0},
    /* version */
    {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, 0},
    {"GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505, 0},
    {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, 0},
    {"GET / http/1.1\r\nHost: x\r\n\r\n", 400, 0},
    {"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400, 0},
    {"GET / HTTP/11\r\nHost: x\r\n\r\n", 400, 0},
    {"GET / HTTP/1.10\r\nHost: x\r\n\r\n", 400, 0},
    {"GET / FOO\r\nHost: x\r\n\r\n", 400, 0},
    {"GET /\r\nHost: x\r\n\r\n", 400, 0},
    {"GET\r\n\r\n", 400, 0},
    /* request line */
    {"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
    {"GET /  HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
    {" GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
    {"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
    {"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
    {"GE@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
    {"GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
    {"GET a HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
    {"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
    {"CONNECT / HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
    {"CONNECT x HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
    {"\n\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
};

static void test_bad_requests(void)
{
    for (size_t i = 0; i < sizeof bad_requests / sizeof bad_requests[0]; i++) {
        const struct bad *b = &bad_requests[i];
        hcase c = {0};
        size_t n = b->len ? b->len : strlen(b->in);
        int rc = parse_every_way(&c, b->in, n, &res);
        if (rc != -b->status) {
            fprintf(stderr, "\n  case %zu: expected -%d, got %s\n", i, b->status,
                    res.desc);
            CU_FAIL("malformed request got the wrong answer");
        }
    }
}

static void test_limits(void)
{
    char *big = malloc(70000);
    CU_ASSERT_FATAL(big != NULL);
    /* request line over 8 KiB: 414, even before the line ends */
    memcpy(big, "GET /", 5);
    memset(big + 5, 'a', 9000);
    strcpy(big + 9005, " HTTP/1.1\r\nHost: x\r\n\r\n");
    CU_ASSERT_EQUAL(req(big), -414);
    /* exactly at the limit: 8192 bytes with CRLF */
    size_t tlen = 8192 - strlen("GET  HTTP/1.1\r\n");
    big[4] = '/';
    memset(big + 5, 'a', tlen - 1);
    strcpy(big + 4 + tlen, " HTTP/1.1\r\nHost: x\r\n\r\n");
    hcase c = {0};
    coil__http_parser st = {0};
    parsed *r = &res;
    CU_ASSERT(parse_once(&c, &st, big, strlen(big), r) > 0);
    big[5] = 'b';
    memmove(big + 6, big + 5, strlen(big + 5) + 1);
    memset(&st, 0, sizeof st);
    CU_ASSERT_EQUAL(parse_once(&c, &st, big, strlen(big), r), -414);
    /* head over 64 KiB: 431 */
    size_t at = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; at < 66000; i++)
        at += (size_t)sprintf(big + at, "X-%d: %0900d\r\n", i, 0);
    strcpy(big + at, "\r\n");
    memset(&st, 0, sizeof st);
    CU_ASSERT_EQUAL(parse_once(&c, &st, big, at + 2, r), -431);
    memset(&st, 0, sizeof st);
    CU_ASSERT_EQUAL(parse_once(&c, &st, big, at, r), -431); /* before the end */
    /* custom limits */
    c.lim.max_line = 20;
    c.lim.max_head = 40;
    c.lim.max_fields = 1;
    CU_ASSERT_EQUAL(parse_every_way(&c, "GET /0123456789 HTTP/1.1\r\n\r\n", 28, r), -414);
    CU_ASSERT(parse_every_way(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27, r) > 0);
    CU_ASSERT_EQUAL(
        parse_every_way(&c, "GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\n", 33, r), -431);
    CU_ASSERT_EQUAL(
        parse_every_way(&c, "GET / HTTP/1.1\r\nHost: x01234567890123456789\r\n\r\n", 46,
                        r),
        -431);
    free(big);
}

/* ---- responses ------------------------------------------------------------ */

static int resp(const char *s, int head_request)
{
    hcase c = {.response = 1, .head_request = head_request};
    return parse_every_way(&c, s, strlen(s), &res);
}

static void test_responses(void)
{
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello";
    CU_ASSERT_EQUAL(resp(s, 0), (int)strlen(s) - 5);
    CU_ASSERT_EQUAL(res.h.status, 200);
    VIEW_EQ(res.h.reason, res.h.reason_len, "OK");
    CU_ASSERT_EQUAL(res.h.body, COIL__HTTP_BODY_LENGTH);
    CU_ASSERT_EQUAL(res.h.content_length, 5);
    CU_ASSERT_EQUAL(res.h.keep_alive, 1);
    CU_ASSERT(resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 1) > 0);
    CU_ASSERT_EQUAL(res.h.body, COIL__HTTP_BODY_NONE);
    CU_ASSERT(
        resp("HTTP/1.1 404 Not Found Here\r\nTransfer-Encoding: chunked\r\n\r\n", 0) > 0);
    CU_ASSERT_EQUAL(res.h.body, COIL__HTTP_BODY_CHUNKED);
    VIEW_EQ(res.h.reason, res.h.reason_len, "Not Found Here");
    CU_ASSERT(resp("HTTP/1.1 200 \r\n\r\n", 0) > 0);
    CU_ASSERT_EQUAL(res.h.body, COIL__HTTP_BODY_CLOSE);
    CU_ASSERT_EQUAL(res.h.keep_alive, 0);
    CU_ASSERT_EQUAL(res.h.reason_len, 0);
    CU_ASSERT(resp("HTTP/1.1 204\r\nContent-Length: 7\r\n\r\n", 0) > 0);
    CU_ASSERT_EQUAL(res.h.body, COIL__HTTP_BODY_NONE);
    CU_ASSERT(resp("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", 0) >
              0);
    CU_ASSERT_EQUAL(res.h.body, COIL__HTTP_BODY_NONE);
    CU_ASSERT(resp("HTTP/1.1 100 Continue\r\n\r\n", 0) > 0);
    CU_ASSERT_EQUAL(res.h.body, COIL__HTTP_BODY_NONE);
    CU_ASSERT_EQUAL(res.h.status, 100);
    CU_ASSERT(resp("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", 0) > 0);
    CU_ASSERT_EQUAL(res.h.keep_alive, 0);
    CU_ASSERT_EQUAL(res.h.version, 10);
    CU_ASSERT(
        resp("HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n",
             0) > 0);
    CU_ASSERT_EQUAL(res.h.keep_alive, 1);
    CU_ASSERT(resp("HTTP/1.1 200 OK\nContent-Length: 2\nConnection: close\n\n", 0) > 0);
    CU_ASSERT_EQUAL(res.h.keep_alive, 0);
    CU_ASSERT_EQUAL(res.h.content_length, 2);

    static const char *const bad[] = {
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 099 OK\r\n\r\n",
        "HTTP/1.1 600 OK\r\n\r\n",
        "HTTP/1.1 abc OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 O\rK\r\n\r\n",
        "HTTP/1.1 200 OK\x01\r\n\r\n",
        "\r\nHTTP/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX : y\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n",
        "SSH-2.0-OpenSSH\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (resp(bad[i], 0) != -1) {
            fprintf(stderr, "\n  response %zu: expected -1, got %s\n", i, res.desc);
            CU_FAIL("bad response accepted");
        }
    }
}

/* ---- chunked -------------------------------------------------------------- */

typedef struct chres {
    int rc; /* the last result */
    char data[4096];
    size_t data_len;
    size_t end_at; /* where the body ended in the whole input */
    const char *why;
} chres;

static void ch_feed(coil__http_chunked *c, chres *r, const char *in, size_t len,
                    size_t base)
{
    size_t off = 0;
    if (r->rc < 0 || r->rc == COIL__CHUNK_END)
        return;
    while (off < len || len == 0) {
        size_t used = 0, dl = 0;
        const char *d = NULL;
        char *piece = copy(in + off, len - off);
        int rc = coil__http_chunked_feed(c, piece, len - off, &used, &d, &dl, &r->why);
        CU_ASSERT(used <= len - off);
        r->rc = rc;
        if (rc == COIL__CHUNK_DATA) {
            CU_ASSERT(d >= piece && d + dl <= piece + (len - off) && dl > 0);
            CU_ASSERT_FATAL(r->data_len + dl <= sizeof r->data);
            memcpy(r->data + r->data_len, d, dl);
            r->data_len += dl;
        }
        free(piece);
        off += used;
        if (rc == COIL__CHUNK_END)
            r->end_at = base + off;
        if (rc != COIL__CHUNK_DATA)
            break;
    }
    if (r->rc == COIL__CHUNK_DATA)
        r->rc = COIL__CHUNK_MORE;
}

static int ch_same(const chres *a, const chres *b)
{
    return a->rc == b->rc && a->data_len == b->data_len &&
           memcmp(a->data, b->data, a->data_len) == 0 &&
           (a->rc != COIL__CHUNK_END || a->end_at == b->end_at) &&
           (a->rc >= 0 || strcmp(a->why, b->why) == 0);
}

/* Decode `in` one-shot, byte by byte and in two pieces; all must agree. */
static chres ch_every_way(const char *in, size_t n, uint64_t max_chunks)
{
    chres one = {0};
    coil__http_chunked c = {0};
    c.max_chunks = max_chunks;
    ch_feed(&c, &one, in, n, 0);
    for (size_t i = 0; i <= n; i++) {
        chres two = {0};
        coil__http_chunked c2 = {0};
        c2.max_chunks = max_chunks;
        ch_feed(&c2, &two, in, i, 0);
        ch_feed(&c2, &two, in + i, n - i, i);
        if (!ch_same(&one, &two)) {
            fprintf(stderr, "\n  chunked split at %zu: rc %d vs %d\n", i, two.rc, one.rc);
            CU_FAIL("chunked split differs");
            break;
        }
    }
    chres bb = {0};
    coil__http_chunked c3 = {0};
    c3.max_chunks = max_chunks;
    for (size_t i = 0; i < n; i++)
        ch_feed(&c3, &bb, in + i, 1, i);
    if (n && !ch_same(&one, &bb))
        CU_FAIL("chunked byte by byte differs");
    return one;
}

static void test_chunked(void)
{
    const char *s = "5\r\nhello\r\n6;ext=1;q=\"a \\\" b\"\r\n world\r\n"
                    "A ; x\r\n0123456789\r\n0000\r\nX-T: 1\r\nY: \t2\r\n\r\nNEXT";
    chres r = ch_every_way(s, strlen(s), 0);
    CU_ASSERT_EQUAL(r.rc, COIL__CHUNK_END);
    CU_ASSERT_EQUAL(r.data_len, 21);
    CU_ASSERT_NSTRING_EQUAL(r.data, "hello world0123456789", 21);
    CU_ASSERT_EQUAL(r.end_at, strlen(s) - 4);

    r = ch_every_way("0\r\n\r\n", 5, 0);
    CU_ASSERT_EQUAL(r.rc, COIL__CHUNK_END);
    CU_ASSERT_EQUAL(r.end_at, 5);
    r = ch_every_way("3\r\nabc\r\n", 8, 0);
    CU_ASSERT_EQUAL(r.rc, COIL__CHUNK_MORE);
    r = ch_every_way("fffffffffffffff\r\n", 17, 0); /* 2^60 - 1: fine */
    CU_ASSERT_EQUAL(r.rc, COIL__CHUNK_MORE);
    s = "1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n";
    r = ch_every_way(s, strlen(s), 2);
    CU_ASSERT_EQUAL(r.rc, COIL__CHUNK_TOO_MANY);
    s = "1\r\na\r\n1\r\nb\r\n0\r\n\r\n";
    r = ch_every_way(s, strlen(s), 2);
    CU_ASSERT_EQUAL(r.rc, COIL__CHUNK_END);

    static const char *const bad[] = {
        "x\r\n",
        "-5\r\nhello\r\n",
        "+5\r\nhello\r\n",
        " 5\r\nhello\r\n",
        "5 \r\nhello\r\n",
        "0x5\r\nhello\r\n",
        "5\nhello\r\n",
        "5\r\rhello\r\n",
        "5\r\nhelloX\r\n",
        "5\r\nhello\n",
        "5\r\nhello\r\r",
        "4000000000000000\r\n",  /* 2^62 */
        "10000000000000000\r\n", /* 17 digits */
        "00000000000000001\r\n", /* 17 digits even if small */
        "5;\r\nhello\r\n",
        "5;=x\r\nhello\r\n",
        "5;a=\r\nhello\r\n",
        "5;a=b c\r\nhello\r\n",
        "5;a=\"b\x01\"\r\nhello\r\n",
        "5;a=\"b\r\nhello\r\n",
        "5;a b\r\nhello\r\n",
        "5;a@b\r\nhello\r\n",
        "0\r\nX : y\r\n\r\n",
        "0\r\n X: y\r\n\r\n",
        "0\r\nX: y\x01\r\n\r\n",
        "0\r\nX: y\rz\r\n\r\n",
        "0\r\nX: y\n\r\n",
        "0\r\n\n",
        "0\r\n\rx",
        "0\r\n(: y\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = ch_every_way(bad[i], strlen(bad[i]), 0);
        if (r.rc != COIL__CHUNK_ERROR) {
            fprintf(stderr, "\n  chunked case %zu (%s): rc %d\n", i, bad[i], r.rc);
            CU_FAIL("bad chunked body accepted");
        }
    }
    /* size line bounded */
    char *line = malloc(5000);
    CU_ASSERT_FATAL(line != NULL);
    strcpy(line, "5;a=");
    memset(line + 4, 'b', 4200);
    strcpy(line + 4204, "\r\nhello\r\n0\r\n\r\n");
    r = ch_every_way(line, strlen(line), 0);
    CU_ASSERT_EQUAL(r.rc, COIL__CHUNK_ERROR);
    memset(line + 4, 'b', 4000);
    strcpy(line + 4004, "\r\nhello\r\n0\r\n\r\n");
    r = ch_every_way(line, strlen(line), 0);
    CU_ASSERT_EQUAL(r.rc, COIL__CHUNK_END);
    free(line);
    /* trailer bounded */
    coil__http_chunked c = {0};
    c.max_trailer = 10;
    size_t used, dl;
    const char *d, *why;
    const char *t = "0\r\nX-Long-Trailer: 1\r\n\r\n";
    CU_ASSERT_EQUAL(coil__http_chunked_feed(&c, t, strlen(t), &used, &d, &dl, &why),
                    COIL__CHUNK_ERROR);
    /* after the end, nothing more is taken */
    coil__http_chunked e = {0};
    CU_ASSERT_EQUAL(coil__http_chunked_feed(&e, "0\r\n\r\nGET", 8, &used, &d, &dl, &why),
                    COIL__CHUNK_END);
    CU_ASSERT_EQUAL(used, 5);
    CU_ASSERT_EQUAL(coil__http_chunked_feed(&e, "GET", 3, &used, &d, &dl, &why),
                    COIL__CHUNK_END);
    CU_ASSERT_EQUAL(used, 0);
}

/* ---- shared checks -------------------------------------------------------- */

static void test_checks(void)
{
    CU_ASSERT(coil__http_is_token("Content-Type", 12));
    CU_ASSERT(coil__http_is_token("!#$%&'*+-.^_`|~09azAZ", 21));
    CU_ASSERT(!coil__http_is_token("", 0));
    CU_ASSERT(!coil__http_is_token("a b", 3));
    CU_ASSERT(!coil__http_is_token("a:b", 3));
    CU_ASSERT(!coil__http_is_token("a\0b", 3));
    CU_ASSERT(!coil__http_is_token("caf\xc3\xa9", 5));
    CU_ASSERT(coil__http_is_field_value("", 0));
    CU_ASSERT(coil__http_is_field_value("a\tb c\x80\xff", 7));
    CU_ASSERT(!coil__http_is_field_value("a\rb", 3));
    CU_ASSERT(!coil__http_is_field_value("a\nb", 3));
    CU_ASSERT(!coil__http_is_field_value("a\0b", 3));
    CU_ASSERT(!coil__http_is_field_value("a\x7f", 2));
    CU_ASSERT(coil__http_eq("HoSt", 4, "host"));
    CU_ASSERT(!coil__http_eq("Hos", 3, "host"));
    CU_ASSERT(!coil__http_eq("Hosts", 5, "host"));
    CU_ASSERT(coil__http_eq("", 0, ""));
    CU_ASSERT(!coil__http_eq("[", 1, "{"));
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_simple_get),
        COIL_TEST(test_forms_and_versions),
        COIL_TEST(test_leading_lines_and_lf),
        COIL_TEST(test_values),
        COIL_TEST(test_many_fields),
        COIL_TEST(test_bad_requests),
        COIL_TEST(test_limits),
        COIL_TEST(test_responses),
        COIL_TEST(test_chunked),
        COIL_TEST(test_checks),
        {NULL, NULL},
    };
    return coil_test_add_suite("http_parser", cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
