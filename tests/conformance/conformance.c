/* The transport conformance suite; see conformance.h. Every case makes a
 * fresh pair with the kind's make_pair and runs a real reactor (epoll or
 * poll, from $COIL_REACTOR) until the case is decided or times out. */
#include "conformance.h"

#include <CUnit/CUnit.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const coil_conformance_kind *kinds;
static size_t nkinds;
static int current = -1;
static const coil_conformance_kind *K;
static coil_reactor *R;

/* ---- a configurable peer ---- */

typedef struct peer {
    coil_protocol base;
    int made, lost, lost_code, read_lost, write_lost, destroyed;
    size_t got;         /* bytes received */
    int mismatch;       /* a byte differed from the pattern */
    int check_pattern;  /* verify received bytes against pattern(offset) */
    int echo;           /* write back what arrives */
    size_t abort_after; /* abort once this many bytes arrived (0: never) */
    int reply_on_eof;   /* half-close aware: reply, then shut writing */
    char host[128], peer_addr[128];
    unsigned char *store; /* small cases keep the bytes */
    size_t store_cap;
} peer;

static unsigned char pattern(size_t i)
{
    return (unsigned char)((i * 131u) ^ (i >> 9));
}

static void fill(unsigned char *buf, size_t off, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern(off + i);
}

static void p_made(coil_protocol *bp)
{
    peer *p = (peer *)bp;
    coil_address a;
    p->made++;
    if (coil_transport_get_host(bp->transport, &a) == 0)
        coil_address_format(&a, p->host, sizeof p->host);
    if (coil_transport_get_peer(bp->transport, &a) == 0)
        coil_address_format(&a, p->peer_addr, sizeof p->peer_addr);
}

static void p_data(coil_protocol *bp, const void *data, size_t len)
{
    peer *p = (peer *)bp;
    const unsigned char *d = data;
    if (p->check_pattern)
        for (size_t i = 0; i < len && !p->mismatch; i++)
            if (d[i] != pattern(p->got + i))
                p->mismatch = 1;
    if (p->store && p->got + len <= p->store_cap)
        memcpy(p->store + p->got, d, len);
    p->got += len;
    if (p->echo)
        coil_transport_write(bp->transport, data, len);
    if (p->abort_after && p->got >= p->abort_after) {
        p->abort_after = 0;
        coil_transport_abort_connection(bp->transport);
    }
}

static void p_read_lost(coil_protocol *bp)
{
    peer *p = (peer *)bp;
    p->read_lost++;
    if (p->reply_on_eof) {
        coil_transport_write(bp->transport, "reply", 5);
        coil_transport_lose_write_connection(bp->transport);
    }
}

static void p_write_lost(coil_protocol *bp)
{
    ((peer *)bp)->write_lost++;
}

static void p_lost(coil_protocol *bp, const coil_failure *reason)
{
    peer *p = (peer *)bp;
    p->lost++;
    p->lost_code = coil_failure_code(reason);
}

static void p_destroy(coil_protocol *bp)
{
    ((peer *)bp)->destroyed++;
}

static const coil_protocol_ops peer_ops = {
    .connection_made = p_made,
    .data_received = p_data,
    .connection_lost = p_lost,
    .destroy = p_destroy,
};

static const coil_protocol_ops half_ops = {
    .connection_made = p_made,
    .data_received = p_data,
    .read_connection_lost = p_read_lost,
    .write_connection_lost = p_write_lost,
    .connection_lost = p_lost,
    .destroy = p_destroy,
};

static void peer_init(peer *p, const coil_protocol_ops *ops)
{
    memset(p, 0, sizeof *p);
    p->base.ops = ops;
}

/* ---- running ---- */

typedef int (*cond_fn)(void *arg);

/* Turn the reactor until cond(arg) holds; 1 if it did within `timeout`. */
int coil_conformance_run_until(coil_reactor *r, int (*cond)(void *arg), void *arg,
                               double timeout)
{
    double end = coil_reactor_seconds(r) + timeout;
    while (!cond(arg)) {
        if (coil_reactor_seconds(r) > end)
            return 0;
        coil_reactor_iterate(r, 0.01);
    }
    return 1;
}

static int run_until(cond_fn cond, void *arg, double timeout)
{
    return coil_conformance_run_until(R, cond, arg, timeout);
}

static int both_made(void *arg)
{
    peer **p = arg;
    return p[0]->made && p[1]->made;
}

static int both_destroyed(void *arg)
{
    peer **p = arg;
    return p[0]->destroyed && p[1]->destroyed;
}

static int make(peer *client, peer *server)
{
    int rc = K->make_pair(R, &client->base, &server->base, K->ctx);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0)
        return 0;
    peer *both[2] = {client, server};
    int ok = run_until(both_made, both, 10);
    CU_ASSERT(ok);
    return ok;
}

/* Every case closes its connection; wait for both ends to go, and abort
 * what is still there after 30 s so one failure does not leak into the
 * next case. */
static void finish(peer *client, peer *server)
{
    peer *both[2] = {client, server};
    int ok = run_until(both_destroyed, both, 30);
    CU_ASSERT(ok);
    if (!ok) {
        if (client->base.transport)
            coil_transport_abort_connection(client->base.transport);
        if (server->base.transport)
            coil_transport_abort_connection(server->base.transport);
        run_until(both_destroyed, both, 10);
    }
    CU_ASSERT_EQUAL(client->destroyed, 1);
    CU_ASSERT_EQUAL(server->destroyed, 1);
    free(client->store);
    free(server->store);
}

/* ---- echo of 1 B, 64 KiB, 16 MiB ---- */

struct echo_wait {
    peer *client;
    size_t want;
};

static int echoed(void *arg)
{
    struct echo_wait *w = arg;
    return w->client->got >= w->want || w->client->lost;
}

static void echo_size(size_t size)
{
    peer c, s;
    peer_init(&c, &peer_ops);
    peer_init(&s, &peer_ops);
    c.check_pattern = 1;
    s.echo = 1;
    if (!make(&c, &s))
        return;
    enum { BLOCK = 256 * 1024 };
    unsigned char *buf = malloc(BLOCK);
    for (size_t off = 0; off < size; off += BLOCK) {
        size_t n = size - off < BLOCK ? size - off : BLOCK;
        fill(buf, off, n);
        CU_ASSERT_EQUAL(coil_transport_write(c.base.transport, buf, n), 0);
    }
    free(buf);
    struct echo_wait w = {&c, size};
    CU_ASSERT(run_until(echoed, &w, 60));
    CU_ASSERT_EQUAL(c.got, size);
    CU_ASSERT_EQUAL(c.mismatch, 0);
    coil_transport_lose_connection(c.base.transport);
    finish(&c, &s);
    CU_ASSERT_EQUAL(c.lost_code, COIL_ECLOSED);
    CU_ASSERT_EQUAL(s.lost_code, COIL_ECLOSED);
}

static void test_echo_1_byte(void)
{
    echo_size(1);
}

static void test_echo_64_kib(void)
{
    echo_size(64 * 1024);
}

static void test_echo_16_mib(void)
{
    echo_size(16 * 1024 * 1024);
}

/* ---- ordering across many writes and writev ---- */

static int got_at_least(void *arg)
{
    struct echo_wait *w = arg;
    return w->client->got >= w->want;
}

static void test_ordering_writes_and_writev(void)
{
    peer c, s;
    peer_init(&c, &peer_ops);
    peer_init(&s, &peer_ops);
    s.check_pattern = 1;
    if (!make(&c, &s))
        return;
    size_t off = 0;
    unsigned char buf[300];
    for (int i = 0; i < 5000; i++) {
        size_t n = 1 + (size_t)(i * 37) % 200;
        fill(buf, off, n);
        CU_ASSERT_EQUAL(coil_transport_write(c.base.transport, buf, n), 0);
        off += n;
        /* Every 10th write is a writev of three pieces. */
        if (i % 10 == 0) {
            fill(buf, off, 300);
            struct iovec iov[3] = {{buf, 1}, {buf + 1, 150}, {buf + 151, 149}};
            CU_ASSERT_EQUAL(coil_transport_writev(c.base.transport, iov, 3), 0);
            off += 300;
        }
    }
    struct echo_wait w = {&s, off};
    CU_ASSERT(run_until(got_at_least, &w, 30));
    CU_ASSERT_EQUAL(s.got, off);
    CU_ASSERT_EQUAL(s.mismatch, 0);
    coil_transport_lose_connection(c.base.transport);
    finish(&c, &s);
}

/* ---- lose_connection flushes; abort drops ---- */

/* Write `size` bytes of the pattern in one write. */
static int write_pattern(coil_transport *t, size_t size)
{
    unsigned char *buf = malloc(size);
    if (!buf)
        return COIL_ENOMEM;
    fill(buf, 0, size);
    int rc = coil_transport_write(t, buf, size);
    free(buf);
    return rc;
}

static void test_lose_connection_delivers_queue(void)
{
    peer c, s;
    peer_init(&c, &peer_ops);
    peer_init(&s, &peer_ops);
    s.check_pattern = 1;
    if (!make(&c, &s))
        return;
    size_t size = 8 * 1024 * 1024;
    CU_ASSERT_EQUAL(write_pattern(c.base.transport, size), 0);
    coil_transport_info info;
    coil_transport_info_get(c.base.transport, &info);
    CU_ASSERT(info.write_queued > 0); /* more than any buffer below holds */
    CU_ASSERT_EQUAL(c.base.transport->disconnecting, 0);
    coil_transport_lose_connection(c.base.transport);
    CU_ASSERT_EQUAL(c.base.transport->disconnecting, 1);
    CU_ASSERT_EQUAL(coil_transport_write(c.base.transport, "x", 1), COIL_ECLOSED);
    peer *both[2] = {&c, &s};
    CU_ASSERT(run_until(both_destroyed, both, 60));
    CU_ASSERT_EQUAL(s.got, size);
    CU_ASSERT_EQUAL(s.mismatch, 0);
    CU_ASSERT_EQUAL(c.lost_code, COIL_ECLOSED);
    CU_ASSERT_EQUAL(s.lost_code, COIL_ECLOSED);
    finish(&c, &s);
}

/* The issue-10 case: the writer queues 8 MiB and closes while its reader
 * has paused for 6 s mid-stream (longer than TLS's old 5 s close timeout);
 * every byte still arrives and both ends see a clean close. */
static int resume_reader(void *arg)
{
    peer *p = arg;
    if (p->base.transport)
        coil_transport_resume_reading(p->base.transport);
    return 0;
}

static void p_data_pausing(coil_protocol *bp, const void *data, size_t len)
{
    peer *p = (peer *)bp;
    int pause = p->got < 1024 * 1024 && p->got + len >= 1024 * 1024;
    p_data(bp, data, len);
    if (pause && bp->transport) {
        coil_transport_pause_reading(bp->transport);
        coil_timer_release(coil_reactor_call_later(R, 6.0, resume_reader, p));
    }
}

static const coil_protocol_ops pausing_ops = {
    .connection_made = p_made,
    .data_received = p_data_pausing,
    .connection_lost = p_lost,
    .destroy = p_destroy,
};

static void test_close_to_paused_reader(void)
{
    peer c, s;
    peer_init(&c, &pausing_ops);
    peer_init(&s, &peer_ops);
    c.check_pattern = 1;
    if (!make(&c, &s))
        return;
    size_t size = 8 * 1024 * 1024;
    CU_ASSERT_EQUAL(write_pattern(s.base.transport, size), 0);
    coil_transport_lose_connection(s.base.transport);
    double t0 = coil_reactor_seconds(R);
    peer *both[2] = {&c, &s};
    CU_ASSERT(run_until(both_destroyed, both, 60));
    CU_ASSERT(coil_reactor_seconds(R) - t0 >= 5.9); /* the pause happened */
    CU_ASSERT_EQUAL(c.got, size);
    CU_ASSERT_EQUAL(c.mismatch, 0);
    CU_ASSERT_EQUAL(c.lost_code, COIL_ECLOSED);
    CU_ASSERT_EQUAL(s.lost_code, COIL_ECLOSED);
    finish(&c, &s);
}

static void test_abort_drops_queue(void)
{
    peer c, s;
    peer_init(&c, &peer_ops);
    peer_init(&s, &peer_ops);
    if (!make(&c, &s))
        return;
    size_t size = 16 * 1024 * 1024;
    unsigned char *buf = calloc(1, size);
    coil_transport_write(c.base.transport, buf, size);
    free(buf);
    coil_transport_abort_connection(c.base.transport);
    CU_ASSERT_EQUAL(c.base.transport->disconnecting, 1);
    peer *both[2] = {&c, &s};
    CU_ASSERT(run_until(both_destroyed, both, 30));
    CU_ASSERT_EQUAL(c.lost_code, COIL_EABORTED);
    /* The far end sees a reset (lost) where the transport has resets; a
     * UNIX socket has none, and its reader sees EOF after what had already
     * reached its receive buffer. */
    CU_ASSERT(s.lost_code == COIL_ECONNLOST ||
              (K->abort_is_eof && s.lost_code == COIL_ECLOSED));
    CU_ASSERT(s.got < size);
    finish(&c, &s);
}

/* ---- close reasons: a clean close seen from both sides ---- */

static void test_clean_close_reasons(void)
{
    peer c, s;
    peer_init(&c, &peer_ops);
    peer_init(&s, &peer_ops);
    if (!make(&c, &s))
        return;
    coil_transport_write(s.base.transport, "bye", 3);
    coil_transport_lose_connection(s.base.transport);
    peer *both[2] = {&c, &s};
    CU_ASSERT(run_until(both_destroyed, both, 10));
    CU_ASSERT_EQUAL(c.got, 3);
    CU_ASSERT_EQUAL(c.lost, 1);
    CU_ASSERT_EQUAL(s.lost, 1);
    CU_ASSERT_EQUAL(c.lost_code, COIL_ECLOSED);
    CU_ASSERT_EQUAL(s.lost_code, COIL_ECLOSED);
    finish(&c, &s);
}

/* ---- half-close, both ways ---- */

static void test_half_close(void)
{
    peer c, s;
    peer_init(&c, &half_ops);
    peer_init(&s, &half_ops);
    s.reply_on_eof = 1;
    c.store = malloc(64);
    c.store_cap = 64;
    if (!make(&c, &s))
        return;
    coil_transport_write(c.base.transport, "question", 8);
    coil_transport_lose_write_connection(c.base.transport);
    peer *both[2] = {&c, &s};
    CU_ASSERT(run_until(both_destroyed, both, 10));
    /* The server read to EOF, answered on its still-open write side, and
     * shut it; the client read the answer after its own write side shut. */
    CU_ASSERT_EQUAL(s.got, 8);
    CU_ASSERT_EQUAL(s.read_lost, 1);
    CU_ASSERT_EQUAL(s.write_lost, 1);
    CU_ASSERT_EQUAL(c.write_lost, 1);
    CU_ASSERT_EQUAL(c.read_lost, 1);
    CU_ASSERT_EQUAL(c.got, 5);
    CU_ASSERT(c.got == 5 && memcmp(c.store, "reply", 5) == 0);
    CU_ASSERT_EQUAL(c.lost_code, COIL_ECLOSED);
    CU_ASSERT_EQUAL(s.lost_code, COIL_ECLOSED);
    finish(&c, &s);
}

/* ---- addresses ---- */

static void test_peer_and_host(void)
{
    peer c, s;
    peer_init(&c, &peer_ops);
    peer_init(&s, &peer_ops);
    if (!make(&c, &s))
        return;
    if (K->check_addresses) {
        K->check_addresses(c.host, c.peer_addr, s.host, s.peer_addr, K->ctx);
    } else {
        CU_ASSERT_STRING_EQUAL(c.peer_addr, s.host);
        CU_ASSERT_STRING_EQUAL(s.peer_addr, c.host);
    }
    CU_ASSERT(strlen(c.host) > 0 && strlen(s.host) > 0);
    coil_transport_lose_connection(c.base.transport);
    finish(&c, &s);
}

/* ---- backpressure: a fast producer and a slow reader ---- */

typedef struct flood {
    coil_producer base;
    coil_transport *t;
    size_t sent, total, max_queued, high_water;
    int paused, pauses, resumes;
    size_t piece; /* bytes per write; 0: all of chunk */
    /* The queue when pause_producing / resume_producing came. */
    size_t min_at_pause, max_at_pause, max_at_resume;
    unsigned char chunk[64 * 1024];
} flood;

static size_t flood_queued(const flood *f)
{
    coil_transport_info info;
    if (!f->t || coil_transport_info_get(f->t, &info) != 0)
        return 0;
    return info.write_queued;
}

static void flood_pump(flood *f)
{
    while (!f->paused && f->sent < f->total && f->t) {
        size_t n = f->piece ? f->piece : sizeof f->chunk;
        if (n > f->total - f->sent)
            n = f->total - f->sent;
        fill(f->chunk, f->sent, n);
        if (coil_transport_write(f->t, f->chunk, n) != 0)
            return;
        f->sent += n;
        coil_transport_info info;
        coil_transport_info_get(f->t, &info);
        if (info.write_queued > f->max_queued)
            f->max_queued = info.write_queued;
        f->high_water = info.high_water;
    }
}

static void flood_pause(coil_producer *bp)
{
    flood *f = (flood *)bp;
    f->paused = 1;
    f->pauses++;
    size_t q = flood_queued(f);
    if (f->pauses == 1 || q < f->min_at_pause)
        f->min_at_pause = q;
    if (q > f->max_at_pause)
        f->max_at_pause = q;
}

static void flood_resume(coil_producer *bp)
{
    flood *f = (flood *)bp;
    f->paused = 0;
    f->resumes++;
    size_t q = flood_queued(f);
    if (q > f->max_at_resume)
        f->max_at_resume = q;
    flood_pump(f);
}

static void flood_stop(coil_producer *bp)
{
    ((flood *)bp)->t = NULL;
}

static const coil_producer_ops flood_ops = {flood_pause, flood_resume, flood_stop};

static int slow_reader(void *arg)
{
    /* Read in short bursts: resume, let a pass happen, pause again. */
    peer *s = arg;
    if (!s->base.transport)
        return 0;
    static int on;
    on = !on;
    if (on)
        coil_transport_resume_reading(s->base.transport);
    else
        coil_transport_pause_reading(s->base.transport);
    return 0;
}

/* Pour f->total bytes from the producer `f` into a reader `s` that starts
 * paused and then takes a little every 2 ms; every byte must arrive. */
static void flood_to_slow_reader(flood *f, peer *s)
{
    coil_transport_pause_reading(s->base.transport);
    CU_ASSERT_EQUAL(coil_transport_register_producer(f->t, &f->base, 1), 0);
    flood_pump(f);
    coil_looping_call *lc = coil_looping_call_new(R, slow_reader, s);
    CU_ASSERT_EQUAL(coil_looping_call_start(lc, 0.002, 0, NULL), 0);
    struct echo_wait w = {s, f->total};
    CU_ASSERT(run_until(got_at_least, &w, 120));
    coil_looping_call_free(lc);
    if (s->base.transport)
        coil_transport_resume_reading(s->base.transport);
    CU_ASSERT_EQUAL(s->got, f->total);
    CU_ASSERT_EQUAL(s->mismatch, 0);
}

static void test_backpressure_bounded(void)
{
    peer c, s;
    peer_init(&c, &peer_ops);
    peer_init(&s, &peer_ops);
    s.check_pattern = 1;
    if (!make(&c, &s))
        return;
    flood *f = calloc(1, sizeof *f);
    f->base.ops = &flood_ops;
    f->t = c.base.transport;
    f->total = 32 * 1024 * 1024;
    flood_to_slow_reader(f, &s);
    CU_ASSERT(f->pauses > 0);
    /* The queue never grew past the high-water mark by more than one
     * write (the write that crossed it) plus the kind's slack. */
    CU_ASSERT(f->max_queued <= f->high_water + sizeof f->chunk + K->slack);
    if (f->max_queued > f->high_water + sizeof f->chunk + K->slack)
        fprintf(stderr, "max queued %zu, high water %zu\n", f->max_queued, f->high_water);
    if (c.base.transport) {
        coil_transport_unregister_producer(c.base.transport);
        coil_transport_lose_connection(c.base.transport);
    }
    finish(&c, &s);
    free(f);
}

/* Marks set on the transport (coil_transport_set_water_marks) instead of
 * the defaults: the producer is paused just past the new high mark and
 * resumed at the new low one, whatever the kind. */
static void test_backpressure_custom_marks(void)
{
    enum { HIGH = 8 * 1024, LOW = 2 * 1024, PIECE = 1024 };
    peer c, s;
    peer_init(&c, &peer_ops);
    peer_init(&s, &peer_ops);
    s.check_pattern = 1;
    if (!make(&c, &s))
        return;
    flood *f = calloc(1, sizeof *f);
    f->base.ops = &flood_ops;
    f->t = c.base.transport;
    f->total = 16 * 1024 * 1024; /* past what the kernel buffers for TCP */
    f->piece = PIECE;
    CU_ASSERT_EQUAL(coil_transport_set_water_marks(f->t, LOW, HIGH), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_transport_set_water_marks(f->t, HIGH, LOW), 0);
    coil_transport_info info;
    CU_ASSERT_EQUAL(coil_transport_info_get(f->t, &info), 0);
    CU_ASSERT_EQUAL(info.high_water, HIGH);
    CU_ASSERT_EQUAL(info.low_water, LOW);
    flood_to_slow_reader(f, &s);
    CU_ASSERT(f->pauses > 0 && f->resumes > 0);
    /* Paused by the write that crossed the new mark: never before it,
     * never a whole default mark (64 KiB) later. */
    CU_ASSERT(f->min_at_pause > HIGH);
    CU_ASSERT(f->max_at_pause <= HIGH + PIECE);
    CU_ASSERT(f->max_at_resume <= LOW);
    CU_ASSERT(f->max_queued <= HIGH + PIECE + K->slack);
    if (f->min_at_pause <= HIGH || f->max_at_pause > HIGH + PIECE ||
        f->max_at_resume > LOW)
        fprintf(stderr, "paused at %zu..%zu, resumed at up to %zu (marks %d/%d)\n",
                f->min_at_pause, f->max_at_pause, f->max_at_resume, HIGH, LOW);
    if (c.base.transport) {
        coil_transport_unregister_producer(c.base.transport);
        coil_transport_lose_connection(c.base.transport);
    }
    finish(&c, &s);
    free(f);
}

/* ---- many connections at once ---- */

enum { MANY_DEFAULT = 1000 };

static int many_count(void)
{
    return K->many > 0 ? K->many : MANY_DEFAULT;
}

static int all_echoed(void *arg)
{
    peer *c = arg;
    for (int i = 0; i < many_count(); i++)
        if (c[i].got < 100)
            return 0;
    return 1;
}

static void test_thousand_connections(void)
{
    peer *c = calloc(many_count(), sizeof *c), *s = calloc(many_count(), sizeof *s);
    int made = 0;
    for (int i = 0; i < many_count(); i++) {
        peer_init(&c[i], &peer_ops);
        peer_init(&s[i], &peer_ops);
        c[i].check_pattern = 1;
        s[i].echo = 1;
        if (K->make_pair(R, &c[i].base, &s[i].base, K->ctx) != 0)
            break;
        made++;
    }
    CU_ASSERT_EQUAL_FATAL(made, many_count());
    /* Wait until all are up, then every client sends 100 bytes at once. */
    for (int i = 0; i < many_count(); i++) {
        peer *both[2] = {&c[i], &s[i]};
        CU_ASSERT_FATAL(run_until(both_made, both, 30));
    }
    unsigned char buf[100];
    fill(buf, 0, sizeof buf);
    for (int i = 0; i < many_count(); i++)
        coil_transport_write(c[i].base.transport, buf, sizeof buf);
    CU_ASSERT(run_until(all_echoed, c, 60));
    int bad = 0;
    for (int i = 0; i < many_count(); i++) {
        bad += c[i].got != 100 || c[i].mismatch;
        coil_transport_lose_connection(c[i].base.transport);
    }
    CU_ASSERT_EQUAL(bad, 0);
    for (int i = 0; i < many_count(); i++)
        finish(&c[i], &s[i]);
    free(c);
    free(s);
}

/* ---- a peer reset mid-stream ---- */

static void test_peer_reset_mid_stream(void)
{
    peer c, s;
    peer_init(&c, &peer_ops);
    peer_init(&s, &peer_ops);
    s.abort_after = 100 * 1024;
    if (!make(&c, &s))
        return;
    size_t size = 8 * 1024 * 1024;
    unsigned char *buf = calloc(1, size);
    coil_transport_write(c.base.transport, buf, size);
    free(buf);
    peer *both[2] = {&c, &s};
    CU_ASSERT(run_until(both_destroyed, both, 30));
    CU_ASSERT_EQUAL(s.lost_code, COIL_EABORTED);
    CU_ASSERT_EQUAL(c.lost_code, COIL_ECONNLOST);
    finish(&c, &s);
}

/* ---- registration ---- */

static int suite_init(void)
{
    current++;
    K = &kinds[current];
    coil_reactor_options o = {0};
    return coil_reactor_new(&R, &o) == 0 ? 0 : -1;
}

static int suite_clean(void)
{
    /* Let closes in flight finish (until every transport is freed: an
     * event, not a number of turns; what a case left open is closed), then
     * check nothing is left. */
    int aborted = coil_reactor_shutdown(R, 10.0);
    int bad = aborted != 0 || coil_reactor_transport_count(R) != 0;
    if (bad)
        fprintf(stderr, "conformance %s: %d connections had to be aborted, %zu left\n",
                K->name, aborted, coil_reactor_transport_count(R));
    if (K->cleanup)
        K->cleanup(R, K->ctx);
    coil_reactor_free(R);
    R = NULL;
    return bad ? -1 : 0;
}

int coil_conformance_add_suites(const coil_conformance_kind *table, size_t n)
{
    static const struct {
        const char *name;
        CU_TestFunc fn;
    } cases[] = {
        {"echo 1 B", test_echo_1_byte},
        {"echo 64 KiB", test_echo_64_kib},
        {"echo 16 MiB", test_echo_16_mib},
        {"ordering across writes and writev", test_ordering_writes_and_writev},
        {"lose_connection delivers the queue", test_lose_connection_delivers_queue},
        {"close to a reader paused 6 s delivers every byte", test_close_to_paused_reader},
        {"abort drops the queue", test_abort_drops_queue},
        {"clean close reasons", test_clean_close_reasons},
        {"half-close both ways", test_half_close},
        {"get_peer / get_host", test_peer_and_host},
        {"backpressure with a bounded queue", test_backpressure_bounded},
        {"backpressure at water marks set on the transport",
         test_backpressure_custom_marks},
        {"1,000 simultaneous connections (or the kind's own count)",
         test_thousand_connections},
        {"peer reset mid-stream", test_peer_reset_mid_stream},
    };
    kinds = table;
    nkinds = n;
    for (size_t k = 0; k < n; k++) {
        char name[128];
        snprintf(name, sizeof name, "conformance: %s", table[k].name);
        CU_pSuite s = CU_add_suite(name, suite_init, suite_clean);
        if (!s)
            return -1;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            if (!CU_add_test(s, cases[i].name, cases[i].fn))
                return -1;
    }
    return 0;
}

/* ---- TLS contexts for the conformance programs ---- */

static coil_tls_context *tls_server_ctx, *tls_client_ctx;

int coil_conformance_tls_contexts(void)
{
    if (tls_server_ctx)
        return 0;
    const char *dir = getenv("COIL_TEST_CERTS");
    if (!dir) {
        fprintf(stderr, "conformance: COIL_TEST_CERTS is not set: run through ctest, "
                        "or run tests/tls/make-certs.sh DIR and set it to DIR\n");
        return COIL_EINVAL;
    }
    char cert[512], key[512], ca[512];
    snprintf(cert, sizeof cert, "%s/server-chain.pem", dir);
    snprintf(key, sizeof key, "%s/server.key", dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    coil_tls_options so = {0}, co = {0};
    so.cert_file = cert;
    so.key_file = key;
    co.ca_file = ca;
    coil_failure *err = NULL;
    if (coil_tls_context_new(COIL_TLS_SERVER, &so, &tls_server_ctx, &err) != 0 ||
        coil_tls_context_new(COIL_TLS_CLIENT, &co, &tls_client_ctx, &err) != 0) {
        coil_failure_print(err, stderr);
        coil_failure_free(err);
        coil_tls_context_free(tls_server_ctx);
        tls_server_ctx = NULL;
        return COIL_EINVAL;
    }
    return 0;
}

void coil_conformance_tls_contexts_free(void)
{
    coil_tls_context_free(tls_server_ctx);
    coil_tls_context_free(tls_client_ctx);
    tls_server_ctx = tls_client_ctx = NULL;
}

coil_tls_context *coil_conformance_tls_server_ctx(void)
{
    return tls_server_ctx;
}

coil_tls_context *coil_conformance_tls_client_ctx(void)
{
    return tls_client_ctx;
}

/* ---- ends for the memory-bound suites ---- */

unsigned char coil_conformance_pattern(size_t i)
{
    return (unsigned char)((i * 131u) ^ (i >> 9));
}

static void end_pump(coil_conformance_end *e)
{
    coil_transport *t = e->base.transport;
    while (t && !e->paused && e->sent < e->total) {
        size_t n = sizeof e->chunk;
        if (n > e->total - e->sent)
            n = e->total - e->sent;
        for (size_t i = 0; i < n; i++)
            e->chunk[i] = coil_conformance_pattern(e->sent + i);
        if (coil_transport_write(t, e->chunk, n) != 0)
            return;
        e->sent += n;
        e->last_write = coil_reactor_seconds(e->r);
        coil_transport_info info;
        if (coil_transport_info_get(t, &info) == 0 && info.write_queued > e->max_queued)
            e->max_queued = info.write_queued;
        if (e->below) {
            size_t lq = e->below(t);
            if (lq > e->max_lower)
                e->max_lower = lq;
        }
    }
}

static coil_conformance_end *end_of_prod(coil_producer *p)
{
    return (coil_conformance_end *)((char *)p - offsetof(coil_conformance_end, prod));
}

static void end_prod_pause(coil_producer *p)
{
    coil_conformance_end *e = end_of_prod(p);
    e->paused = 1;
    e->pauses++;
}

static void end_prod_resume(coil_producer *p)
{
    coil_conformance_end *e = end_of_prod(p);
    e->paused = 0;
    end_pump(e);
}

static void end_prod_stop(coil_producer *p)
{
    end_of_prod(p)->paused = 1;
}

static const coil_producer_ops end_prod_ops = {
    .pause_producing = end_prod_pause,
    .resume_producing = end_prod_resume,
    .stop_producing = end_prod_stop,
};

static void end_made(coil_protocol *p)
{
    coil_conformance_end *e = (coil_conformance_end *)p;
    e->made = 1;
    if (e->start_paused)
        coil_transport_pause_reading(p->transport);
    if (e->flood) {
        e->prod.ops = &end_prod_ops;
        CU_ASSERT_EQUAL(coil_transport_register_producer(p->transport, &e->prod, 1), 0);
        end_pump(e);
    }
}

static void end_data(coil_protocol *p, const void *data, size_t len)
{
    coil_conformance_end *e = (coil_conformance_end *)p;
    const unsigned char *d = data;
    for (size_t i = 0; i < len && !e->mismatch; i++)
        if (d[i] != coil_conformance_pattern(e->got + i))
            e->mismatch = 1;
    e->got += len;
}

static void end_lost(coil_protocol *p, const coil_failure *reason)
{
    (void)reason;
    ((coil_conformance_end *)p)->lost = 1;
}

static void end_destroy(coil_protocol *p)
{
    ((coil_conformance_end *)p)->destroyed = 1;
}

static const coil_protocol_ops end_ops = {
    .connection_made = end_made,
    .data_received = end_data,
    .connection_lost = end_lost,
    .destroy = end_destroy,
};

int coil_conformance_ends_new(coil_reactor *r, int client_floods, size_t total,
                              coil_conformance_end **c, coil_conformance_end **s)
{
    *c = calloc(1, sizeof **c);
    *s = calloc(1, sizeof **s);
    if (!*c || !*s) {
        free(*c);
        free(*s);
        *c = *s = NULL;
        return COIL_ENOMEM;
    }
    (*c)->base.ops = (*s)->base.ops = &end_ops;
    (*c)->r = (*s)->r = r;
    (*c)->total = (*s)->total = total;
    (*c)->flood = (*s)->start_paused = client_floods;
    (*c)->start_paused = (*s)->flood = !client_floods;
    return 0;
}

static int ends_made(void *arg)
{
    coil_conformance_end **e = arg;
    return e[0]->made && e[1]->made;
}

static int ends_destroyed(void *arg)
{
    coil_conformance_end **e = arg;
    return e[0]->destroyed && e[1]->destroyed;
}

int coil_conformance_ends_made(coil_reactor *r, coil_conformance_end *c,
                               coil_conformance_end *s)
{
    coil_conformance_end *both[2] = {c, s};
    int ok = coil_conformance_run_until(r, ends_made, both, 20);
    CU_ASSERT(ok);
    return ok;
}

void coil_conformance_ends_finish(coil_reactor *r, coil_conformance_end *c,
                                  coil_conformance_end *s)
{
    if (c->base.transport)
        coil_transport_lose_connection(c->base.transport);
    coil_conformance_end *both[2] = {c, s};
    CU_ASSERT(coil_conformance_run_until(r, ends_destroyed, both, 30));
}

int coil_conformance_end_got_all(void *arg)
{
    coil_conformance_end *e = arg;
    return e->got >= e->total || e->lost;
}

/* ---- choosing rows ---- */

int coil_conformance_selected(const char *name)
{
    const char *only = getenv("COIL_TEST_ONLY");
    return !only || !*only || strstr(name, only) != NULL;
}

int coil_conformance_add_selected(const coil_conformance_kind *table, size_t n,
                                  coil_conformance_kind *rows)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (coil_conformance_selected(table[i].name))
            rows[m++] = table[i];
    return coil_conformance_add_suites(rows, m);
}
