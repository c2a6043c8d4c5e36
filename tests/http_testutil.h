/* Shared helpers for the HTTP tests (header only; CUnit asserts).
 *
 *  - http_test_client: a raw HTTP client as a coil protocol. It sends the
 *    bytes you give it and collects what comes back (all of it, or only
 *    the first keep_max bytes while counting the rest), and records how the
 *    connection ended. The state is the test's (a struct on the stack); the
 *    protocol the transport owns points at it.
 *  - http_test_pair: a site's protocol and a client joined by the in-memory
 *    pair (coil/memory.h): deterministic, with the fake clock.
 *  - http_test_listen / http_test_connect: a site on a loopback endpoint
 *    ("tcp:0:interface=127.0.0.1", "unix:PATH", "tls:0:...") and a client
 *    connected to it (real clock); http_test_leaf_site: a site of one leaf
 *    resource on a loopback TCP port.
 *  - http_test_pump / http_test_wait_*: run the reactor until something
 *    happens (bounded; never fixed sleeps).
 *  - http_test_parse_response: one response out of the collected bytes
 *    (Content-Length, chunked, or to the close), for assertions.
 */
#ifndef COIL_HTTP_TESTUTIL_H
#define COIL_HTTP_TESTUTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "testutil.h"

#include <coil/endpoint.h>
#include <coil/http.h>
#include <coil/memory.h>

typedef struct http_test_client {
    coil_transport *t; /* NULL once the connection is gone */
    coil_reactor *r;
    int fake; /* the reactor runs on a fake clock: pump with advance(0) */
    char *buf;
    size_t len, cap;
    size_t keep_max; /* 0: keep everything; else keep this many bytes */
    uint64_t total;  /* bytes received */
    int made, eof, lost, destroyed;
    int lost_code;        /* COIL_ECLOSED, COIL_ECONNLOST, ... */
    int read_paused;      /* pause reading as soon as connected (a slow client) */
    int keep_open_on_eof; /* 1: an EOF from the server does not close ours */
} http_test_client;

typedef struct http_test_proto {
    coil_protocol base;
    http_test_client *c;
} http_test_proto;

static inline void http_test__made(coil_protocol *p)
{
    http_test_client *c = ((http_test_proto *)p)->c;
    c->t = p->transport;
    c->made = 1;
    if (c->read_paused)
        (void)coil_transport_pause_reading(c->t);
}

static inline void http_test__data(coil_protocol *p, const void *data, size_t len)
{
    http_test_client *c = ((http_test_proto *)p)->c;
    c->total += len;
    size_t keep = len;
    if (c->keep_max && c->len + keep > c->keep_max)
        keep = c->keep_max > c->len ? c->keep_max - c->len : 0;
    if (keep == 0)
        return;
    if (c->len + keep + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + keep + 1)
            cap *= 2;
        char *nb = realloc(c->buf, cap);
        CU_ASSERT_PTR_NOT_NULL_FATAL(nb);
        c->buf = nb;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, data, keep);
    c->len += keep;
    c->buf[c->len] = '\0';
}

/* The server closed its side: close ours too, as a client does (so `lost`
 * says the server ended the connection). keep_open_on_eof keeps writing. */
static inline void http_test__read_lost(coil_protocol *p)
{
    http_test_client *c = ((http_test_proto *)p)->c;
    c->eof = 1;
    if (!c->keep_open_on_eof && p->transport)
        (void)coil_transport_lose_connection(p->transport);
}

static inline void http_test__lost(coil_protocol *p, const coil_failure *reason)
{
    http_test_client *c = ((http_test_proto *)p)->c;
    c->lost = 1;
    c->lost_code = reason ? coil_failure_code(reason) : 0;
    c->t = NULL;
}

static inline void http_test__destroy(coil_protocol *p)
{
    ((http_test_proto *)p)->c->destroyed = 1;
    free(p);
}

static const coil_protocol_ops http_test__ops = {
    .connection_made = http_test__made,
    .data_received = http_test__data,
    .read_connection_lost = http_test__read_lost,
    .connection_lost = http_test__lost,
    .destroy = http_test__destroy,
};

/* A protocol for the client state `c` (owned by the transport it is given
 * to). */
static inline coil_protocol *http_test_client_protocol(http_test_client *c)
{
    http_test_proto *p = calloc(1, sizeof *p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    p->base.ops = &http_test__ops;
    p->c = c;
    return &p->base;
}

/* One pass of the loop. */
static inline void http_test_pump(http_test_client *c)
{
    if (c->fake)
        (void)coil_reactor_advance(c->r, 0);
    else
        (void)coil_reactor_iterate(c->r, 0.01);
}

/* Join `site` and the client `c` over the memory pair (`window` 0: the
 * default) on a fake-clock reactor; returns the server's transport. */
static inline coil_transport *http_test_pair(coil_reactor *r, coil_http_site *site,
                                             http_test_client *c, size_t window)
{
    c->r = r;
    c->fake = 1;
    coil_protocol *sp = coil_http_site_protocol(site, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sp);
    coil_transport *st = NULL, *ct = NULL;
    CU_ASSERT_EQUAL_FATAL(
        coil_memory_pair(r, sp, http_test_client_protocol(c), window, &st, &ct), 0);
    for (int i = 0; i < 10 && !c->made; i++)
        http_test_pump(c);
    CU_ASSERT_TRUE(c->made);
    return st;
}

/* Listen with the site on `desc`; the port (0 for UNIX) in *port. */
static inline coil_listener *http_test_listen(coil_reactor *r, coil_http_site *site,
                                              const char *desc, int *port)
{
    coil_listener *l = NULL;
    coil_failure *err = NULL;
    int rc = coil_listen(r, desc, coil_http_site_factory(site), &l, &err);
    if (rc != 0) {
        fprintf(stderr, "\n    listening on %s failed: ", desc);
        coil_failure_print(err, stderr);
        coil_failure_free(err);
    }
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    coil_address a;
    if (port) {
        *port = 0;
        if (coil_listener_get_host(l, &a) == 0)
            *port = coil_address_port(&a);
    }
    return l;
}

/* A site whose root is a leaf resource with `ops` (every path renders
 * there) in *site, listening on a loopback TCP port (in *port). */
static inline coil_listener *http_test_leaf_site(coil_reactor *r,
                                                 const coil_http_resource_ops *ops,
                                                 coil_http_site **site, int *port)
{
    coil_http_resource *root = coil_http_resource_new(ops, NULL);
    coil_http_resource_set_leaf(root, 1);
    coil_failure *err = NULL;
    CU_ASSERT_FATAL(coil_http_site_new(r, root, NULL, site, &err) == 0);
    return http_test_listen(r, *site, "tcp:0:interface=127.0.0.1", port);
}

/* Connect the client `c` to the client endpoint `desc` (real clock);
 * asserts it came up within 10 s. */
static inline void http_test_connect(coil_reactor *r, const char *desc,
                                     http_test_client *c)
{
    c->r = r;
    c->fake = 0;
    coil_endpoint *e = NULL;
    coil_failure *err = NULL;
    int rc = coil_endpoint_client(desc, &e, &err);
    if (rc != 0) {
        fprintf(stderr, "\n    bad client endpoint %s: ", desc);
        coil_failure_print(err, stderr);
        coil_failure_free(err);
    }
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    coil_deferred *d = coil_connect_protocol(r, e, http_test_client_protocol(c));
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_TRUE(coil_test_wait_fired(r, d, 10.0));
    if (coil_deferred_is_failure(d)) {
        fprintf(stderr, "\n    connecting to %s failed: ", desc);
        coil_failure_print(coil_deferred_failure(d), stderr);
        coil_deferred_set_result(d, NULL, NULL);
    }
    coil_deferred_unref(d);
    coil_endpoint_free(e);
    for (int i = 0; i < 1000 && !c->made && !c->lost; i++)
        http_test_pump(c);
    CU_ASSERT_TRUE_FATAL(c->made);
}

/* Send bytes (all at once). */
static inline void http_test_send(http_test_client *c, const void *data, size_t len)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(c->t);
    CU_ASSERT_EQUAL(coil_transport_write(c->t, data, len), 0);
}

static inline void http_test_send_str(http_test_client *c, const char *s)
{
    http_test_send(c, s, strlen(s));
}

/* Run until the client holds `n` bytes (or the connection ended); at most
 * `passes` passes. Returns 1 when it does. */
static inline int http_test_wait_len(http_test_client *c, size_t n, int passes)
{
    for (int i = 0; i < passes && c->len < n && !c->lost; i++)
        http_test_pump(c);
    return c->len >= n;
}

/* Run until the connection ended (at most `passes` passes). */
static inline int http_test_wait_lost(http_test_client *c, int passes)
{
    for (int i = 0; i < passes && !c->lost; i++)
        http_test_pump(c);
    return c->lost;
}

/* Run until *flag (at most `passes` passes). */
static inline int http_test_wait_flag(http_test_client *c, const int *flag, int passes)
{
    for (int i = 0; i < passes && !*flag; i++)
        http_test_pump(c);
    return *flag;
}

/* ---- reading responses ------------------------------------------------- */

typedef struct http_test_response {
    int status;
    char head[4096]; /* the head as received, NUL-terminated */
    char *body;      /* de-chunked, NUL-terminated; free() it */
    size_t body_len;
    int chunked;
    int64_t length; /* Content-Length, -1 if none */
} http_test_response;

/* A header's value in a response head (first match), copied into buf;
 * NULL when absent. */
static inline const char *http_test_header(const http_test_response *resp,
                                           const char *name, char *buf, size_t size)
{
    size_t n = strlen(name);
    const char *p = strstr(resp->head, "\r\n");
    while (p && p[2] != '\r' && p[2]) {
        p += 2;
        const char *e = strstr(p, "\r\n");
        if (!e)
            break;
        if ((size_t)(e - p) > n && p[n] == ':' && strncasecmp(p, name, n) == 0) {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            size_t vl = (size_t)(e - v);
            if (vl >= size)
                vl = size - 1;
            memcpy(buf, v, vl);
            buf[vl] = '\0';
            return buf;
        }
        p = e;
    }
    return NULL;
}

/* Parse one response from buf[*off..len). `no_body`: the request was HEAD
 * (or the status has none). `closed`: the connection ended (a response
 * without length ends there). Returns 1 with *out filled and *off moved
 * past it, 0 when incomplete, -1 when malformed. */
static inline int http_test_parse_response(const char *buf, size_t len, size_t *off,
                                           int no_body, int closed,
                                           http_test_response *out)
{
    memset(out, 0, sizeof *out);
    out->length = -1;
    const char *p = buf + *off;
    size_t avail = len - *off;
    const char *end = NULL;
    for (size_t i = 0; i + 3 < avail; i++)
        if (memcmp(p + i, "\r\n\r\n", 4) == 0) {
            end = p + i + 4;
            break;
        }
    if (!end)
        return 0;
    size_t hl = (size_t)(end - p);
    if (hl >= sizeof out->head)
        return -1;
    memcpy(out->head, p, hl);
    out->head[hl] = '\0';
    if (sscanf(out->head, "HTTP/1.%*d %d", &out->status) != 1)
        return -1;
    char v[64];
    if (http_test_header(out, "Content-Length", v, sizeof v))
        out->length = strtoll(v, NULL, 10);
    if (http_test_header(out, "Transfer-Encoding", v, sizeof v))
        out->chunked = strcasecmp(v, "chunked") == 0;
    int bodyless = no_body || (out->status >= 100 && out->status < 200) ||
                   out->status == 204 || out->status == 304;
    const char *b = end;
    size_t left = avail - hl;
    if (bodyless) {
        out->body = calloc(1, 1);
        *off += hl;
        return 1;
    }
    if (out->length >= 0) {
        if (left < (size_t)out->length)
            return 0;
        out->body = malloc((size_t)out->length + 1);
        memcpy(out->body, b, (size_t)out->length);
        out->body[out->length] = '\0';
        out->body_len = (size_t)out->length;
        *off += hl + (size_t)out->length;
        return 1;
    }
    if (out->chunked) {
        size_t at = 0, blen = 0;
        char *body = malloc(left + 1);
        for (;;) {
            const char *nl = NULL;
            for (size_t i = at; i + 1 < left; i++)
                if (b[i] == '\r' && b[i + 1] == '\n') {
                    nl = b + i;
                    break;
                }
            if (!nl) {
                free(body);
                return 0;
            }
            unsigned long sz = strtoul(b + at, NULL, 16);
            at = (size_t)(nl - b) + 2;
            if (sz == 0) {
                if (left < at + 2) {
                    free(body);
                    return 0;
                }
                at += 2; /* no trailers from coil */
                break;
            }
            if (left < at + sz + 2) {
                free(body);
                return 0;
            }
            memcpy(body + blen, b + at, sz);
            blen += sz;
            at += sz + 2;
        }
        body[blen] = '\0';
        out->body = body;
        out->body_len = blen;
        *off += hl + at;
        return 1;
    }
    if (!closed)
        return 0;
    out->body = malloc(left + 1);
    memcpy(out->body, b, left);
    out->body[left] = '\0';
    out->body_len = left;
    *off += hl + left;
    return 1;
}

/* Run until the client holds a complete response at *off and parse it;
 * asserts it came (at most `passes` passes). */
static inline int http_test_next_response(http_test_client *c, size_t *off, int no_body,
                                          int passes, http_test_response *out)
{
    for (int i = 0; i <= passes; i++) {
        int rc = http_test_parse_response(c->buf ? c->buf : "", c->len, off, no_body,
                                          c->lost, out);
        if (rc != 0)
            return rc;
        if (c->lost)
            break;
        http_test_pump(c);
    }
    memset(out, 0, sizeof *out);
    return 0;
}

#endif
