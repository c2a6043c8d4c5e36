/* The stream machinery over the in-memory transports: writes, reads, pause,
 * close states, half-close, producers and closing from inside callbacks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* A protocol that records what happens to it. */
typedef struct rec_proto {
    coil_protocol base;
    char log[1024];
    unsigned char *data;
    size_t len, cap;
    int made, lost, read_lost, write_lost, destroyed;
    int lost_code, lost_cause_errno;
    int close_on_data; /* lose_connection inside data_received */
    int abort_on_data; /* abort_connection inside data_received */
    int echo;          /* write back what arrives */
    int keep;          /* do not free in destroy: the test reads it after */
} rec_proto;

static void note(rec_proto *p, const char *s)
{
    strncat(p->log, s, sizeof p->log - strlen(p->log) - 1);
}

static void r_made(coil_protocol *bp)
{
    rec_proto *p = (rec_proto *)bp;
    p->made++;
    note(p, "made;");
}

static void r_data(coil_protocol *bp, const void *data, size_t len)
{
    rec_proto *p = (rec_proto *)bp;
    if (p->len + len > p->cap) {
        p->cap = (p->len + len) * 2;
        p->data = realloc(p->data, p->cap);
    }
    memcpy(p->data + p->len, data, len);
    p->len += len;
    if (p->echo)
        coil_transport_write(bp->transport, data, len);
    if (p->close_on_data)
        coil_transport_lose_connection(bp->transport);
    if (p->abort_on_data)
        coil_transport_abort_connection(bp->transport);
}

static void r_read_lost(coil_protocol *bp)
{
    rec_proto *p = (rec_proto *)bp;
    p->read_lost++;
    note(p, "read_lost;");
}

static void r_write_lost(coil_protocol *bp)
{
    rec_proto *p = (rec_proto *)bp;
    p->write_lost++;
    note(p, "write_lost;");
}

static void r_lost(coil_protocol *bp, const coil_failure *reason)
{
    rec_proto *p = (rec_proto *)bp;
    p->lost++;
    p->lost_code = coil_failure_code(reason);
    const coil_failure *cause = coil_failure_cause(reason);
    p->lost_cause_errno = cause && coil_failure_domain(cause) == COIL_DOMAIN_SYSTEM
                              ? coil_failure_code(cause)
                              : 0;
    note(p, "lost;");
}

static void r_destroy(coil_protocol *bp)
{
    rec_proto *p = (rec_proto *)bp;
    p->destroyed++;
    note(p, "destroy;");
}

static const coil_protocol_ops rec_ops = {
    .connection_made = r_made,
    .data_received = r_data,
    .connection_lost = r_lost,
    .destroy = r_destroy,
};

static const coil_protocol_ops rec_half_ops = {
    .connection_made = r_made,
    .data_received = r_data,
    .read_connection_lost = r_read_lost,
    .write_connection_lost = r_write_lost,
    .connection_lost = r_lost,
    .destroy = r_destroy,
};

static void rec_init(rec_proto *p, const coil_protocol_ops *ops)
{
    memset(p, 0, sizeof *p);
    p->base.ops = ops;
}

static void rec_done(rec_proto *p)
{
    free(p->data);
}

static coil_clock *clk;
static coil_reactor *r;

static int setup(void)
{
    clk = coil_clock_new_fake();
    coil_reactor_options o = {0};
    o.clock = clk;
    return coil_reactor_new(&r, &o);
}

static int teardown_all(void)
{
    coil_reactor_free(r);
    coil_clock_free(clk);
    return 0;
}

static void pump(void)
{
    coil_reactor_advance(r, 0);
}

/* ---- the test-driven end ---- */

static void test_write_and_inspect(void)
{
    rec_proto p;
    rec_init(&p, &rec_ops);
    coil_transport *t = coil_memory_transport_new(r, &p.base);
    CU_ASSERT_PTR_EQUAL(p.base.transport, t);
    CU_ASSERT_STRING_EQUAL(p.log, "made;");
    CU_ASSERT_EQUAL(coil_transport_write(t, "hello ", 6), 0);
    struct iovec iov[2] = {{"wor", 3}, {"ld", 2}};
    CU_ASSERT_EQUAL(coil_transport_writev(t, iov, 2), 0);
    size_t len;
    const char *w = coil_memory_transport_written(t, &len);
    CU_ASSERT_EQUAL(len, 11);
    CU_ASSERT_NSTRING_EQUAL(w, "hello world", 11);
    coil_memory_transport_clear(t);
    coil_memory_transport_written(t, &len);
    CU_ASSERT_EQUAL(len, 0);
    coil_transport_info info;
    coil_transport_info_get(t, &info);
    CU_ASSERT_STRING_EQUAL(info.kind, "memory");
    CU_ASSERT_EQUAL(info.write_queued, 0);
    coil_memory_transport_free(t);
    pump();
    CU_ASSERT_STRING_EQUAL(p.log, "made;lost;destroy;");
    CU_ASSERT_EQUAL(p.lost_code, COIL_EABORTED);
    rec_done(&p);
}

static void test_feed_pause_resume(void)
{
    rec_proto p;
    rec_init(&p, &rec_ops);
    coil_transport *t = coil_memory_transport_new(r, &p.base);
    coil_memory_transport_feed(t, "ab", 2);
    CU_ASSERT_EQUAL(p.len, 2);
    coil_transport_pause_reading(t);
    coil_memory_transport_feed(t, "cd", 2);
    coil_memory_transport_feed(t, "ef", 2);
    CU_ASSERT_EQUAL(p.len, 2);
    coil_transport_resume_reading(t);
    CU_ASSERT_EQUAL(p.len, 6);
    CU_ASSERT_NSTRING_EQUAL(p.data, "abcdef", 6);
    coil_memory_transport_free(t);
    pump();
    rec_done(&p);
}

static void test_lose_connection_flushes_first(void)
{
    rec_proto p;
    rec_init(&p, &rec_ops);
    coil_transport *t = coil_memory_transport_new(r, &p.base);
    coil_memory_transport_set_window(t, 4);
    coil_transport_write(t, "0123456789", 10);
    coil_transport_lose_connection(t);
    CU_ASSERT_EQUAL(coil_transport_write(t, "x", 1), COIL_ECLOSED);
    pump();
    CU_ASSERT_EQUAL(p.lost, 0); /* six bytes still queued */
    coil_memory_transport_set_window(t, 100);
    pump();
    size_t len;
    const char *w = coil_memory_transport_written(t, &len);
    CU_ASSERT_EQUAL(len, 10);
    CU_ASSERT_NSTRING_EQUAL(w, "0123456789", 10);
    CU_ASSERT_EQUAL(p.lost, 1);
    CU_ASSERT_EQUAL(p.lost_code, COIL_ECLOSED);
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t),
                    COIL_MEMORY_CLOSED | COIL_MEMORY_CLOSED_CLEAN);
    coil_memory_transport_free(t);
    rec_done(&p);
}

static void test_abort_drops_queue(void)
{
    rec_proto p;
    rec_init(&p, &rec_ops);
    coil_transport *t = coil_memory_transport_new(r, &p.base);
    coil_memory_transport_set_window(t, 3);
    coil_transport_write(t, "abcdef", 6);
    coil_transport_abort_connection(t);
    pump();
    size_t len;
    coil_memory_transport_written(t, &len);
    CU_ASSERT_EQUAL(len, 3);
    CU_ASSERT_EQUAL(p.lost_code, COIL_EABORTED);
    CU_ASSERT(coil_memory_transport_flags(t) & COIL_MEMORY_ABORTED);
    CU_ASSERT_STRING_EQUAL(p.log, "made;lost;destroy;");
    coil_memory_transport_free(t);
    rec_done(&p);
}

static void test_close_inside_data_received(void)
{
    rec_proto p;
    rec_init(&p, &rec_ops);
    p.echo = 1;
    p.close_on_data = 1;
    coil_transport *t = coil_memory_transport_new(r, &p.base);
    coil_memory_transport_feed(t, "bye", 3);
    /* connection_lost ran when data_received returned, not inside it. */
    CU_ASSERT_STRING_EQUAL(p.log, "made;lost;destroy;");
    CU_ASSERT_EQUAL(p.lost_code, COIL_ECLOSED);
    size_t len;
    coil_memory_transport_written(t, &len);
    CU_ASSERT_EQUAL(len, 3);
    CU_ASSERT_EQUAL(coil_memory_transport_feed(t, "more", 4), COIL_ECLOSED);
    coil_memory_transport_free(t);
    rec_done(&p);

    rec_init(&p, &rec_ops);
    p.abort_on_data = 1;
    t = coil_memory_transport_new(r, &p.base);
    coil_memory_transport_feed(t, "x", 1);
    CU_ASSERT_EQUAL(p.lost_code, COIL_EABORTED);
    coil_memory_transport_free(t);
    rec_done(&p);
}

static void test_half_close(void)
{
    /* A protocol without read_connection_lost: EOF closes after the flush. */
    rec_proto p;
    rec_init(&p, &rec_ops);
    coil_transport *t = coil_memory_transport_new(r, &p.base);
    coil_transport_write(t, "last words", 10);
    coil_memory_transport_feed_eof(t);
    CU_ASSERT_STRING_EQUAL(p.log, "made;lost;destroy;");
    CU_ASSERT_EQUAL(p.lost_code, COIL_ECLOSED);
    coil_memory_transport_free(t);
    rec_done(&p);

    /* A half-close-aware protocol keeps writing after EOF, then shuts its
     * own write side: the connection ends cleanly. */
    rec_init(&p, &rec_half_ops);
    t = coil_memory_transport_new(r, &p.base);
    coil_memory_transport_feed_eof(t);
    CU_ASSERT_STRING_EQUAL(p.log, "made;read_lost;");
    CU_ASSERT_EQUAL(coil_transport_write(t, "reply", 5), 0);
    CU_ASSERT_EQUAL(coil_transport_lose_write_connection(t), 0);
    CU_ASSERT(coil_memory_transport_flags(t) & COIL_MEMORY_WRITE_SHUT);
    pump();
    CU_ASSERT_STRING_EQUAL(p.log, "made;read_lost;write_lost;lost;destroy;");
    CU_ASSERT_EQUAL(p.lost_code, COIL_ECLOSED);
    coil_memory_transport_free(t);
    rec_done(&p);

    /* Our write side shut first, reading goes on. */
    rec_init(&p, &rec_half_ops);
    t = coil_memory_transport_new(r, &p.base);
    coil_memory_transport_set_window(t, 0);
    coil_transport_write(t, "queued", 6);
    coil_transport_lose_write_connection(t);
    CU_ASSERT_EQUAL(coil_transport_write(t, "x", 1), COIL_ECLOSED);
    CU_ASSERT_EQUAL(p.write_lost, 0); /* not before the flush */
    coil_memory_transport_set_window(t, 100);
    CU_ASSERT_EQUAL(p.write_lost, 1);
    coil_memory_transport_feed(t, "still reading", 13);
    CU_ASSERT_EQUAL(p.len, 13);
    coil_memory_transport_free(t);
    pump();
    rec_done(&p);
}

static void test_peer_reset_is_lost(void)
{
    rec_proto p;
    rec_init(&p, &rec_ops);
    coil_transport *t = coil_memory_transport_new(r, &p.base);
    coil_memory_transport_peer_close(t, 1);
    pump();
    CU_ASSERT_EQUAL(p.lost_code, COIL_ECONNLOST);
    CU_ASSERT_EQUAL(p.lost_cause_errno, ECONNRESET);
    coil_memory_transport_free(t);
    rec_done(&p);
}

/* A push producer: paused above the high-water mark, resumed below low. */
typedef struct prod {
    coil_producer base;
    int paused, resumed, stopped;
} prod;

static void p_pause(coil_producer *bp)
{
    ((prod *)bp)->paused++;
}
static void p_resume(coil_producer *bp)
{
    ((prod *)bp)->resumed++;
}
static void p_stop(coil_producer *bp)
{
    ((prod *)bp)->stopped++;
}
static const coil_producer_ops prod_ops = {p_pause, p_resume, p_stop};

static void test_producer_watermarks(void)
{
    rec_proto p;
    rec_init(&p, &rec_ops);
    coil_transport *t = coil_memory_transport_new(r, &p.base);
    prod pr = {{&prod_ops}, 0, 0, 0};
    CU_ASSERT_EQUAL(coil_transport_register_producer(t, &pr.base, 1), 0);
    CU_ASSERT_EQUAL(coil_transport_register_producer(t, &pr.base, 1), COIL_EBUSY);
    coil_memory_transport_set_window(t, 0);
    static char block[40 * 1024];
    coil_transport_write(t, block, sizeof block);
    CU_ASSERT_EQUAL(pr.paused, 0);
    coil_transport_write(t, block, sizeof block); /* 80 KiB > 64 KiB */
    CU_ASSERT_EQUAL(pr.paused, 1);
    coil_transport_info info;
    coil_transport_info_get(t, &info);
    CU_ASSERT_EQUAL(info.write_queued, 2 * sizeof block);
    coil_memory_transport_set_window(t, 60 * 1024); /* 20 KiB left: above low */
    CU_ASSERT_EQUAL(pr.resumed, 0);
    coil_memory_transport_set_window(t, 10 * 1024); /* 10 KiB left: below */
    CU_ASSERT_EQUAL(pr.resumed, 1);
    coil_memory_transport_free(t);
    pump();
    CU_ASSERT_EQUAL(pr.stopped, 1);
    rec_done(&p);
}

/* Marks set on the transport: the producer is paused past the new high
 * mark and resumed at the new low one; setting them applies at once. A
 * push producer is not resumed when registered, only after a pause. */
static void test_producer_custom_marks(void)
{
    rec_proto p;
    rec_init(&p, &rec_ops);
    coil_transport *t = coil_memory_transport_new(r, &p.base);
    CU_ASSERT_EQUAL(coil_transport_set_water_marks(t, 100, 1000), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_transport_set_water_marks(t, 1000, 100), 0);
    coil_transport_info info;
    coil_transport_info_get(t, &info);
    CU_ASSERT_EQUAL(info.high_water, 1000);
    CU_ASSERT_EQUAL(info.low_water, 100);
    prod pr = {{&prod_ops}, 0, 0, 0};
    CU_ASSERT_EQUAL(coil_transport_register_producer(t, &pr.base, 1), 0);
    CU_ASSERT_EQUAL(pr.resumed, 0); /* producing already: not resumed */
    coil_memory_transport_set_window(t, 0);
    static char block[600];
    coil_transport_write(t, block, sizeof block);
    CU_ASSERT_EQUAL(pr.paused, 0);
    coil_transport_write(t, block, sizeof block); /* 1200 > 1000 */
    CU_ASSERT_EQUAL(pr.paused, 1);
    coil_memory_transport_set_window(t, 1200 - 101); /* 101 left */
    CU_ASSERT_EQUAL(pr.resumed, 0);
    coil_memory_transport_set_window(t, 1); /* 100 left: resumed */
    CU_ASSERT_EQUAL(pr.resumed, 1);

    /* Lowering the high mark under what is queued pauses at once ... */
    coil_transport_write(t, block, sizeof block); /* 700 queued */
    CU_ASSERT_EQUAL(pr.paused, 1);
    CU_ASSERT_EQUAL(coil_transport_set_water_marks(t, 500, 200), 0);
    CU_ASSERT_EQUAL(pr.paused, 2);
    /* ... and raising the low one over it resumes at once. */
    CU_ASSERT_EQUAL(coil_transport_set_water_marks(t, 800, 700), 0);
    CU_ASSERT_EQUAL(pr.resumed, 2);
    coil_transport_unregister_producer(t);

    /* A push producer registered while the queue is past the mark is
     * paused from register itself. */
    prod pr2 = {{&prod_ops}, 0, 0, 0};
    CU_ASSERT_EQUAL(coil_transport_set_water_marks(t, 600, 100), 0);
    CU_ASSERT_EQUAL(coil_transport_register_producer(t, &pr2.base, 1), 0);
    CU_ASSERT_EQUAL(pr2.paused, 1);
    CU_ASSERT_EQUAL(pr2.resumed, 0);
    coil_memory_transport_free(t);
    pump();
    CU_ASSERT_EQUAL(pr2.stopped, 1);
    rec_done(&p);
}

/* A pull producer is asked for data when registered and after each write
 * that leaves the queue at or below the low mark, one call after another:
 * 8 bytes a call to a transport that takes everything used to nest one
 * resume_producing per piece (half a million deep: the stack overflowed). */
typedef struct puller {
    coil_producer base;
    coil_transport *t;
    size_t calls, sent, total;
    int depth, max_depth;
} puller;

static void pull_resume(coil_producer *bp)
{
    puller *pl = (puller *)bp;
    pl->calls++;
    if (++pl->depth > pl->max_depth)
        pl->max_depth = pl->depth;
    if (pl->sent < pl->total) {
        coil_transport_write(pl->t, "01234567", 8);
        pl->sent += 8;
    }
    pl->depth--;
}
static const coil_producer_ops pull_ops = {p_pause, pull_resume, p_stop};

static void test_pull_producer(void)
{
    rec_proto p;
    rec_init(&p, &rec_ops);
    coil_transport *t = coil_memory_transport_new(r, &p.base);
    puller pl = {{&pull_ops}, t, 0, 0, 4 * 1024 * 1024, 0, 0};
    CU_ASSERT_EQUAL(coil_transport_register_producer(t, &pl.base, 0), 0);
    CU_ASSERT_EQUAL(pl.sent, pl.total); /* all of it, from register */
    CU_ASSERT_EQUAL(pl.max_depth, 1);
    size_t n;
    coil_memory_transport_written(t, &n);
    CU_ASSERT_EQUAL(n, pl.total);
    coil_transport_unregister_producer(t);
    coil_memory_transport_clear(t);

    /* Into a full transport: asked until the queue passes the low mark,
     * then again once it drains. */
    coil_memory_transport_set_window(t, 0);
    CU_ASSERT_EQUAL(coil_transport_set_water_marks(t, 1000, 80), 0);
    puller p2 = {{&pull_ops}, t, 0, 0, 1000, 0, 0};
    CU_ASSERT_EQUAL(coil_transport_register_producer(t, &p2.base, 0), 0);
    CU_ASSERT_EQUAL(p2.sent, 88); /* 11 pieces: 88 > 80 */
    coil_memory_transport_set_window(t, 1 << 20);
    CU_ASSERT_EQUAL(p2.sent, p2.total);
    CU_ASSERT_EQUAL(p2.max_depth, 1);
    coil_memory_transport_free(t);
    pump();
    rec_done(&p);
}

/* ---- the pair ---- */

static void test_pair_echo_with_backpressure(void)
{
    rec_proto client, server;
    rec_init(&client, &rec_ops);
    rec_init(&server, &rec_ops);
    server.echo = 1;
    coil_transport *tc, *ts;
    CU_ASSERT_EQUAL_FATAL(coil_memory_pair(r, &client.base, &server.base, 4096, &tc, &ts),
                          0);
    pump();
    CU_ASSERT_EQUAL(client.made, 1);
    CU_ASSERT_EQUAL(server.made, 1);
    coil_address a, b;
    coil_transport_get_host(tc, &a);
    coil_transport_get_peer(ts, &b);
    char x[64], y[64];
    coil_address_format(&a, x, sizeof x);
    coil_address_format(&b, y, sizeof y);
    CU_ASSERT_STRING_EQUAL(x, y);
    enum { N = 1 << 20 };
    unsigned char *msg = malloc(N);
    for (size_t i = 0; i < N; i++)
        msg[i] = (unsigned char)(i * 7 + 3);
    coil_transport_write(tc, msg, N);
    coil_transport_info info;
    coil_transport_info_get(tc, &info);
    CU_ASSERT(info.write_queued >= N - 4096); /* the window holds the rest */
    for (int i = 0; i < 10000 && client.len < N; i++)
        pump();
    CU_ASSERT_EQUAL(client.len, N);
    CU_ASSERT(client.len == N && memcmp(client.data, msg, N) == 0);
    coil_transport_lose_connection(tc);
    for (int i = 0; i < 10; i++)
        pump();
    CU_ASSERT_EQUAL(client.lost_code, COIL_ECLOSED);
    CU_ASSERT_EQUAL(server.lost_code, COIL_ECLOSED);
    CU_ASSERT_STRING_EQUAL(client.log, "made;lost;destroy;");
    CU_ASSERT_STRING_EQUAL(server.log, "made;lost;destroy;");
    free(msg);
    rec_done(&client);
    rec_done(&server);
}

static void test_pair_abort_resets_peer(void)
{
    rec_proto a, b;
    rec_init(&a, &rec_ops);
    rec_init(&b, &rec_ops);
    coil_transport *ta;
    CU_ASSERT_EQUAL_FATAL(coil_memory_pair(r, &a.base, &b.base, 0, &ta, NULL), 0);
    pump();
    coil_transport_write(ta, "never read", 10);
    coil_transport_abort_connection(ta);
    for (int i = 0; i < 5; i++)
        pump();
    CU_ASSERT_EQUAL(a.lost_code, COIL_EABORTED);
    CU_ASSERT_EQUAL(b.lost_code, COIL_ECONNLOST);
    CU_ASSERT_EQUAL(b.lost_cause_errno, ECONNRESET);
    CU_ASSERT_EQUAL(b.len, 0);
    rec_done(&a);
    rec_done(&b);
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_write_and_inspect),
        COIL_TEST(test_feed_pause_resume),
        COIL_TEST(test_lose_connection_flushes_first),
        COIL_TEST(test_abort_drops_queue),
        COIL_TEST(test_close_inside_data_received),
        COIL_TEST(test_half_close),
        COIL_TEST(test_peer_reset_is_lost),
        COIL_TEST(test_producer_watermarks),
        COIL_TEST(test_producer_custom_marks),
        COIL_TEST(test_pull_producer),
        COIL_TEST(test_pair_echo_with_backpressure),
        COIL_TEST(test_pair_abort_resets_peer),
        {NULL, NULL},
    };
    return coil_test_add_suite_with("memory transports", setup, teardown_all, cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
