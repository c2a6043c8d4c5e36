/* In-memory transports: a joined pair, and a single end driven by a test.
 * Both are coil__stream kinds, so they share every rule of the stream
 * machinery with TCP and UNIX sockets. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coil/memory.h>

#include "stream.h"

typedef struct buf {
    unsigned char *data;
    size_t len, cap;
} buf;

static int buf_append(buf *b, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len)
            cap *= 2;
        unsigned char *p = realloc(b->data, cap);
        if (!p)
            return COIL_ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static void buf_free(buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

typedef struct mem_end {
    coil__stream s; /* first */
    struct mem_end *peer;
    int test_kind;
    unsigned id, peer_id; /* for addresses: "memory:ID" */

    /* Toward this end: bytes not yet delivered, and what follows them. */
    buf in;
    size_t window;
    int in_eof;   /* the far end shut its write side */
    int in_close; /* the far end went: 1 clean, 2 reset */
    int reading;
    int want_write;
    int scheduled; /* a delivery is queued on the reactor */
    int dead;      /* freed while a delivery was queued */

    /* Test kind. */
    buf out;
    size_t test_window;
    unsigned flags;
    int released; /* coil_memory_transport_free called */
    int torn_down;
} mem_end;

static atomic_uint next_id = 1; /* one counter for every reactor thread */

static void end_free_memory(mem_end *e)
{
    buf_free(&e->in);
    buf_free(&e->out);
    free(e);
}

/* ---- delivery ---- */

static void deliver(mem_end *e)
{
    coil__stream *s = &e->s;
    coil__stream_hold(s);
    if (e->reading && e->in.len > 0) {
        buf b = e->in;
        memset(&e->in, 0, sizeof e->in);
        coil__stream_data(s, b.data, b.len);
        buf_free(&b);
        /* The writer toward us has room again. */
        if (e->peer && e->peer->want_write)
            coil__stream_writable(&e->peer->s);
    }
    if (e->in.len == 0 && s->state != COIL__STREAM_CLOSED) {
        if (e->in_close == 2) {
            coil__stream_lost(
                s,
                coil_failure_wrap(coil_failure_from_errno(ECONNRESET, "peer reset"),
                                  COIL_DOMAIN_COIL, COIL_ECONNLOST, "connection lost"));
        } else if (e->in_eof || e->in_close == 1) {
            if (e->reading || e->in_close)
                coil__stream_eof(s);
        }
    }
    coil__stream_release(s);
}

static int deliver_soon(void *arg)
{
    mem_end *e = arg;
    e->scheduled = 0;
    if (e->dead) {
        end_free_memory(e);
        return 0;
    }
    deliver(e);
    return 0;
}

static void schedule(mem_end *e)
{
    if (e->scheduled || e->test_kind)
        return;
    if (coil_reactor_call_soon(e->s.base.reactor, deliver_soon, e) == 0)
        e->scheduled = 1;
}

/* ---- the lower table of a pair end ---- */

static ssize_t pair_send(coil__stream *s, const struct iovec *iov, int iovcnt)
{
    mem_end *e = (mem_end *)s;
    mem_end *peer = e->peer;
    if (!peer)
        return -EPIPE;
    size_t taken = 0;
    for (int i = 0; i < iovcnt; i++) {
        size_t space = peer->window - peer->in.len;
        size_t n = iov[i].iov_len < space ? iov[i].iov_len : space;
        if (n == 0)
            break;
        if (buf_append(&peer->in, iov[i].iov_base, n) != 0)
            break;
        taken += n;
        if (n < iov[i].iov_len)
            break;
    }
    if (taken)
        schedule(peer);
    return (ssize_t)taken;
}

static void pair_want_write(coil__stream *s, int on)
{
    ((mem_end *)s)->want_write = on;
}

static void pair_set_reading(coil__stream *s, int on)
{
    mem_end *e = (mem_end *)s;
    e->reading = on;
    if (on && (e->in.len || e->in_eof || e->in_close))
        schedule(e);
}

static int pair_shutdown_write(coil__stream *s)
{
    mem_end *e = (mem_end *)s;
    if (e->peer) {
        e->peer->in_eof = 1;
        schedule(e->peer);
    }
    return 0;
}

static void pair_close(coil__stream *s, int abort)
{
    mem_end *e = (mem_end *)s;
    mem_end *peer = e->peer;
    e->peer = NULL;
    if (!peer)
        return;
    peer->peer = NULL;
    if (abort) {
        buf_free(&peer->in); /* a reset drops what the reader has not read */
        peer->in_close = 2;
    } else {
        peer->in_close = 1;
    }
    schedule(peer);
}

static void pair_free(coil__stream *s)
{
    mem_end *e = (mem_end *)s;
    if (e->scheduled)
        e->dead = 1;
    else
        end_free_memory(e);
}

static int mem_address(const coil__stream *s, coil_address *out, int peer)
{
    const mem_end *e = (const mem_end *)s;
    memset(out, 0, sizeof *out);
    out->kind = COIL_ADDR_MEMORY;
    unsigned id = peer ? e->peer_id : e->id;
    snprintf(out->name, sizeof out->name, "memory:%u", id);
    return 0;
}

static int mem_get_peer(const coil__stream *s, coil_address *out)
{
    return mem_address(s, out, 1);
}

static int mem_get_host(const coil__stream *s, coil_address *out)
{
    return mem_address(s, out, 0);
}

static void mem_info(const coil__stream *s, coil_transport_info *out)
{
    const mem_end *e = (const mem_end *)s;
    if (e->peer)
        out->unacked = e->peer->in.len;
    else if (e->test_kind)
        out->unacked = e->out.len; /* written, not yet taken by the test */
}

static void mem_lost(coil__stream *s, const coil_failure *reason)
{
}

static const coil__stream_lower pair_lower = {
    .send = pair_send,
    .want_write = pair_want_write,
    .set_reading = pair_set_reading,
    .shutdown_write = pair_shutdown_write,
    .close = pair_close,
    .lost = mem_lost,
    .free = pair_free,
    .get_peer = mem_get_peer,
    .get_host = mem_get_host,
    .info = mem_info,
};

static const coil_transport_ops memory_ops = {COIL__STREAM_OPS("memory")};

static int connect_both(void *arg)
{
    mem_end *a = arg, *b = a->peer;
    /* Hold both: either protocol may close inside connection_made. */
    coil__stream_hold(&a->s);
    if (b)
        coil__stream_hold(&b->s);
    coil__stream_connected(&a->s);
    if (b) {
        coil__stream_connected(&b->s);
        coil__stream_release(&b->s);
    }
    coil__stream_release(&a->s);
    return 0;
}

int coil_memory_pair(coil_reactor *r, coil_protocol *a, coil_protocol *b, size_t window,
                     coil_transport **ta, coil_transport **tb)
{
    mem_end *ea = calloc(1, sizeof *ea), *eb = calloc(1, sizeof *eb);
    if (!ea || !eb || coil_reactor_call_soon(r, connect_both, ea) != 0) {
        free(ea);
        free(eb);
        if (a && a->ops->destroy)
            a->ops->destroy(a);
        if (b && b->ops->destroy)
            b->ops->destroy(b);
        return COIL_ENOMEM;
    }
    if (!window)
        window = COIL_MEMORY_DEFAULT_WINDOW;
    coil__stream_init(&ea->s, &memory_ops, &pair_lower, r, a);
    coil__stream_init(&eb->s, &memory_ops, &pair_lower, r, b);
    ea->peer = eb;
    eb->peer = ea;
    ea->window = eb->window = window;
    ea->id = eb->peer_id = next_id++;
    eb->id = ea->peer_id = next_id++;
    if (ta)
        *ta = &ea->s.base;
    if (tb)
        *tb = &eb->s.base;
    return 0;
}

/* ---- the test-driven end ---- */

static ssize_t test_send(coil__stream *s, const struct iovec *iov, int iovcnt)
{
    mem_end *e = (mem_end *)s;
    size_t taken = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len == 0)
            continue;
        size_t n = iov[i].iov_len < e->test_window ? iov[i].iov_len : e->test_window;
        if (n == 0 || buf_append(&e->out, iov[i].iov_base, n) != 0)
            break;
        if (e->test_window != SIZE_MAX)
            e->test_window -= n;
        taken += n;
        if (n < iov[i].iov_len)
            break;
    }
    return (ssize_t)taken;
}

static int test_shutdown_write(coil__stream *s)
{
    ((mem_end *)s)->flags |= COIL_MEMORY_WRITE_SHUT;
    return 0;
}

static void test_close(coil__stream *s, int abort)
{
    mem_end *e = (mem_end *)s;
    if (s->reason && coil_failure_code(s->reason) == COIL_EABORTED)
        e->flags |= COIL_MEMORY_ABORTED;
    else if (!abort)
        e->flags |= COIL_MEMORY_CLOSED_CLEAN;
}

static void test_set_reading(coil__stream *s, int on)
{
    mem_end *e = (mem_end *)s;
    e->reading = on;
    if (on && (e->in.len || e->in_eof))
        deliver(e);
}

static void test_free(coil__stream *s)
{
    mem_end *e = (mem_end *)s;
    e->flags |= COIL_MEMORY_CLOSED;
    e->torn_down = 1;
    if (e->released)
        end_free_memory(e);
}

static const coil__stream_lower test_lower = {
    .send = test_send,
    .want_write = pair_want_write,
    .set_reading = test_set_reading,
    .shutdown_write = test_shutdown_write,
    .close = test_close,
    .lost = mem_lost,
    .free = test_free,
    .get_peer = mem_get_peer,
    .get_host = mem_get_host,
    .info = mem_info,
};

coil_transport *coil_memory_transport_new(coil_reactor *r, coil_protocol *p)
{
    mem_end *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    coil__stream_init(&e->s, &memory_ops, &test_lower, r, p);
    e->test_kind = 1;
    e->test_window = SIZE_MAX;
    e->id = next_id++;
    e->reading = 1;
    coil__stream_hold(&e->s);
    coil__stream_connected(&e->s);
    coil__stream_release(&e->s);
    return &e->s.base;
}

void coil_memory_transport_free(coil_transport *t)
{
    if (!t)
        return;
    mem_end *e = (mem_end *)t;
    e->released = 1;
    if (e->torn_down) {
        end_free_memory(e);
        return;
    }
    /* Still open: abort it; connection_lost and destroy run on the next
     * pass of the reactor, and the memory goes with them. */
    coil__stream_abort_connection(t);
}

const void *coil_memory_transport_written(const coil_transport *t, size_t *len)
{
    const mem_end *e = (const mem_end *)t;
    if (len)
        *len = e->out.len;
    return e->out.data ? (const void *)e->out.data : (const void *)"";
}

void coil_memory_transport_clear(coil_transport *t)
{
    ((mem_end *)t)->out.len = 0;
}

void coil_memory_transport_set_window(coil_transport *t, size_t bytes)
{
    mem_end *e = (mem_end *)t;
    e->test_window = bytes;
    if (e->want_write && bytes > 0)
        coil__stream_writable(&e->s);
}

int coil_memory_transport_feed(coil_transport *t, const void *data, size_t len)
{
    mem_end *e = (mem_end *)t;
    if (e->torn_down || e->s.state == COIL__STREAM_CLOSED)
        return COIL_ECLOSED;
    if (e->reading && e->in.len == 0) {
        coil__stream_data(&e->s, data, len);
        return 0;
    }
    return buf_append(&e->in, data, len);
}

int coil_memory_transport_feed_eof(coil_transport *t)
{
    mem_end *e = (mem_end *)t;
    if (e->torn_down || e->s.state == COIL__STREAM_CLOSED)
        return COIL_ECLOSED;
    e->in_eof = 1;
    if (e->reading && e->in.len == 0)
        coil__stream_eof(&e->s);
    return 0;
}

int coil_memory_transport_peer_close(coil_transport *t, int lost)
{
    mem_end *e = (mem_end *)t;
    if (e->torn_down || e->s.state == COIL__STREAM_CLOSED)
        return COIL_ECLOSED;
    if (!lost)
        return coil_memory_transport_feed_eof(t);
    coil__stream_lost(
        &e->s, coil_failure_wrap(coil_failure_from_errno(ECONNRESET, "peer reset"),
                                 COIL_DOMAIN_COIL, COIL_ECONNLOST, "connection lost"));
    return 0;
}

unsigned coil_memory_transport_flags(const coil_transport *t)
{
    return ((const mem_end *)t)->flags;
}
