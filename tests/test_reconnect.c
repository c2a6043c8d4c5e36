/* The reconnecting client: back-off schedule on the fake clock, jitter,
 * giving up, reset after a success, stop/start, and a real server that
 * comes and goes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

typedef struct counts {
    coil_factory f;
    coil_reactor *r;
    int started, failed, connected, lost, gave_up, made;
    double attempt_at[64];
    char last[256];
} counts;

typedef struct proto {
    coil_protocol p;
    counts *c;
} proto;

static void p_made(coil_protocol *p)
{
    ((proto *)p)->c->made++;
}

static void p_free(coil_protocol *p)
{
    free(p);
}

static const coil_protocol_ops proto_ops = {.connection_made = p_made, .destroy = p_free};

static coil_protocol *c_build(coil_factory *f, const coil_address *peer)
{
    proto *p = calloc(1, sizeof *p);
    p->p.ops = &proto_ops;
    p->c = (counts *)f;
    return &p->p;
}

static void c_started(coil_factory *f, coil_connector *k)
{
    counts *c = (counts *)f;
    if (c->started < 64)
        c->attempt_at[c->started] = coil_reactor_seconds(c->r);
    c->started++;
}

static void c_connected(coil_factory *f, coil_connector *k, coil_transport *t)
{
    ((counts *)f)->connected++;
}

static void c_failed(coil_factory *f, coil_connector *k, const coil_failure *why)
{
    counts *c = (counts *)f;
    c->failed++;
    snprintf(c->last, sizeof c->last, "%s", coil_failure_message(why));
}

static void c_lost(coil_factory *f, coil_connector *k, const coil_failure *why)
{
    ((counts *)f)->lost++;
}

static const coil_factory_ops counts_ops = {
    .build_protocol = c_build,
    .started_connecting = c_started,
    .connected = c_connected,
    .connection_failed = c_failed,
    .connection_lost = c_lost,
};

static void on_gave_up(coil_reconnector *rc, const coil_failure *last, void *arg)
{
    counts *c = arg;
    c->gave_up++;
    CU_ASSERT_PTR_NOT_NULL(last);
}

static void sock_path(char *buf, size_t size, const char *tag)
{
    snprintf(buf, size, "/tmp/coil-rc-%s-%d.sock", tag, (int)getpid());
    unlink(buf);
}

/* Let real socket events through without moving the fake clock, for a
 * check that nothing happens (a short fixed wait is all such a check can
 * do; it cannot fail because the machine is slow). */
static void pump(coil_reactor *r)
{
    for (int i = 0; i < 20; i++)
        coil_reactor_iterate(r, 0.005);
}

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Let real socket events through until `cond` holds: a wait for an event,
 * bounded at 10 s of real time (the fake clock does not move). */
#define PUMP_UNTIL(r, cond)                      \
    do {                                         \
        double end_ = wall_seconds() + 10;       \
        while (!(cond) && wall_seconds() < end_) \
            coil_reactor_iterate((r), 0.005);    \
    } while (0)

static coil_endpoint *client_ep(const char *path)
{
    char text[128];
    snprintf(text, sizeof text, "unix:%s", path);
    coil_endpoint *e = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_client(text, &e, NULL), 0);
    return e;
}

static void test_backoff_schedule_and_give_up(void)
{
    coil_clock *clk = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(clk);
    char path[64];
    sock_path(path, sizeof path, "none");
    coil_endpoint *e = client_ep(path);
    counts c = {.f.ops = &counts_ops, .r = r};
    coil_reconnect_options o = coil_reconnect_defaults();
    o.initial_delay = 1;
    o.factor = 2;
    o.max_delay = 5;
    o.jitter = 0;
    o.max_retries = 5;
    o.gave_up = on_gave_up;
    o.arg = &c;
    coil_reconnector *rc;
    coil_test_log_capture_start();
    CU_ASSERT_EQUAL_FATAL(coil_reconnector_new(r, e, &c.f, &o, &rc, NULL), 0);
    /* The first attempt starts at once; its failure (no such socket) is
     * known at once too but reported from the loop, after new returned. */
    CU_ASSERT_EQUAL(c.started, 1);
    CU_ASSERT_EQUAL(c.failed, 0);
    coil_reactor_advance(r, 0);
    CU_ASSERT_EQUAL(c.failed, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(c.last, path));
    /* Retries at +1, +2, +4, +5 (capped), +5. */
    static const double expect[] = {0, 1, 3, 7, 12, 17};
    for (int i = 0; i < 30; i++)
        coil_reactor_advance(r, 1);
    CU_ASSERT_EQUAL(c.started, 6);
    CU_ASSERT_EQUAL(c.failed, 6);
    for (int i = 0; i < 6 && i < c.started; i++)
        CU_ASSERT_DOUBLE_EQUAL(c.attempt_at[i], expect[i], 1e-9);
    CU_ASSERT_EQUAL(c.gave_up, 1);
    CU_ASSERT(coil_test_log_contains("giving up on unix:"));
    coil_test_log_capture_stop();
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 0);
    coil_reconnector_free(rc);
    coil_endpoint_free(e);
    coil_reactor_free(r);
    coil_clock_free(clk);
}

static void test_jitter_spreads_delays(void)
{
    coil_clock *clk = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(clk);
    char path[64];
    sock_path(path, sizeof path, "jit");
    coil_endpoint *e = client_ep(path);
    counts c = {.f.ops = &counts_ops, .r = r};
    coil_reconnect_options o = coil_reconnect_defaults();
    o.initial_delay = 1;
    o.factor = 1;
    o.max_delay = 1;
    o.jitter = 0.2;
    coil_reconnector *rc;
    CU_ASSERT_EQUAL_FATAL(coil_reconnector_new(r, e, &c.f, &o, &rc, NULL), 0);
    /* Step the clock finely and record when each attempt happens. */
    for (int i = 0; i < 200 * 100 && c.started < 64; i++)
        coil_reactor_advance(r, 0.01);
    CU_ASSERT_EQUAL_FATAL(c.started, 64);
    double sum = 0, sq = 0;
    int n = 63;
    for (int i = 1; i < 64; i++) {
        double d = c.attempt_at[i] - c.attempt_at[i - 1];
        sum += d;
        sq += d * d;
    }
    double mean = sum / n, sd = sqrt(sq / n - mean * mean);
    /* N(1, 0.2) sampled 63 times (0.01 s steps): mean within 0.1, spread
     * clearly non-zero and not wild. */
    CU_ASSERT(fabs(mean - 1.0) < 0.1);
    CU_ASSERT(sd > 0.08 && sd < 0.4);
    coil_reconnector_free(rc);
    coil_endpoint_free(e);
    coil_reactor_free(r);
    coil_clock_free(clk);
}

/* A server whose connections we can drop. */
typedef struct srv {
    coil_factory f;
    coil_transport *last;
    int accepted;
} srv;

typedef struct sproto {
    coil_protocol p;
    srv *s;
} sproto;

static void s_made(coil_protocol *p)
{
    sproto *sp = (sproto *)p;
    sp->s->last = p->transport;
    sp->s->accepted++;
}

static void s_lost(coil_protocol *p, const coil_failure *why)
{
    sproto *sp = (sproto *)p;
    if (sp->s->last == p->transport)
        sp->s->last = NULL;
}

static const coil_protocol_ops sproto_ops = {
    .connection_made = s_made, .connection_lost = s_lost, .destroy = p_free};

static coil_protocol *s_build(coil_factory *f, const coil_address *peer)
{
    sproto *p = calloc(1, sizeof *p);
    p->p.ops = &sproto_ops;
    p->s = (srv *)f;
    return &p->p;
}

static const coil_factory_ops srv_ops = {.build_protocol = s_build};

static void test_reset_after_success_and_reconnect_after_loss(void)
{
    coil_clock *clk = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(clk);
    char path[64], server[80];
    sock_path(path, sizeof path, "up");
    snprintf(server, sizeof server, "unix:%s", path);
    coil_endpoint *e = client_ep(path);
    counts c = {.f.ops = &counts_ops, .r = r};
    coil_reconnect_options o = coil_reconnect_defaults();
    o.initial_delay = 1;
    o.factor = 3;
    o.jitter = 0;
    coil_reconnector *rc;
    CU_ASSERT_EQUAL_FATAL(coil_reconnector_new(r, e, &c.f, &o, &rc, NULL), 0);
    coil_reactor_advance(r, 1); /* second failure: next waits 3 */
    CU_ASSERT_EQUAL(c.failed, 2);
    CU_ASSERT_DOUBLE_EQUAL(coil_reconnector_delay(rc), 3, 1e-9);
    CU_ASSERT_EQUAL(coil_reconnector_retries(rc), 2);

    /* The server comes up; the retry at +3 connects. */
    srv s = {.f.ops = &srv_ops};
    coil_listener *l;
    CU_ASSERT_EQUAL_FATAL(coil_listen(r, server, &s.f, &l, NULL), 0);
    coil_reactor_advance(r, 2.9);
    CU_ASSERT_EQUAL(c.started, 2);
    coil_reactor_advance(r, 0.1);
    PUMP_UNTIL(r, c.made == 1 && s.accepted == 1);
    CU_ASSERT_EQUAL(c.started, 3);
    CU_ASSERT_EQUAL(c.connected, 1);
    CU_ASSERT_EQUAL(c.made, 1);
    CU_ASSERT_EQUAL(s.accepted, 1);
    CU_ASSERT_PTR_NOT_NULL(coil_reconnector_transport(rc));
    CU_ASSERT_EQUAL(coil_reconnector_retries(rc), 0);
    CU_ASSERT_DOUBLE_EQUAL(coil_reconnector_delay(rc), 1, 1e-9);

    /* The server drops it: the client reconnects after the initial delay. */
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.last);
    coil_transport_abort_connection(s.last);
    PUMP_UNTIL(r, c.lost == 1);
    CU_ASSERT_EQUAL(c.lost, 1);
    CU_ASSERT_PTR_NULL(coil_reconnector_transport(rc));
    coil_reactor_advance(r, 0.99);
    pump(r);
    CU_ASSERT_EQUAL(c.started, 3);
    coil_reactor_advance(r, 0.01);
    PUMP_UNTIL(r, c.connected == 2 && s.accepted == 2);
    CU_ASSERT_EQUAL(c.started, 4);
    CU_ASSERT_EQUAL(c.connected, 2);
    CU_ASSERT_EQUAL(s.accepted, 2);

    /* Stop: the live connection stays; after it ends, no retry. */
    coil_reconnector_stop(rc);
    coil_transport_abort_connection(s.last);
    PUMP_UNTIL(r, c.lost == 2);
    CU_ASSERT_EQUAL(c.lost, 2);
    coil_reactor_advance(r, 100);
    pump(r);
    CU_ASSERT_EQUAL(c.started, 4);
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 0);

    /* Start again: connects at once. */
    CU_ASSERT_EQUAL(coil_reconnector_start(rc), 0);
    PUMP_UNTIL(r, c.connected == 3);
    CU_ASSERT_EQUAL(c.started, 5);
    CU_ASSERT_EQUAL(c.connected, 3);

    /* Free with the connection live: it goes on until closed. */
    coil_transport *t = coil_reconnector_transport(rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    coil_reconnector_free(rc);
    coil_transport_lose_connection(t);
    PUMP_UNTIL(r, coil_reactor_transport_count(r) == 0);
    CU_ASSERT_EQUAL(coil_reactor_transport_count(r), 0);
    coil_listener_close(l);
    coil_endpoint_free(e);
    coil_reactor_free(r);
    coil_clock_free(clk);
    unlink(path);
}

/* Freeing the reconnector from inside the factory's callback is safe. */
static coil_reconnector *victim;
static void free_on_fail(coil_factory *f, coil_connector *k, const coil_failure *why)
{
    c_failed(f, k, why);
    if (((counts *)f)->failed == 2) {
        coil_reconnector_free(victim);
        victim = NULL;
    }
}

static const coil_factory_ops free_ops = {
    .build_protocol = c_build,
    .started_connecting = c_started,
    .connection_failed = free_on_fail,
};

static void test_free_inside_callback_and_bad_options(void)
{
    coil_clock *clk = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(clk);
    char path[64];
    sock_path(path, sizeof path, "free");
    coil_endpoint *e = client_ep(path);
    counts c = {.f.ops = &free_ops, .r = r};
    coil_reconnect_options o = coil_reconnect_defaults();
    o.jitter = 0;
    CU_ASSERT_EQUAL_FATAL(coil_reconnector_new(r, e, &c.f, &o, &victim, NULL), 0);
    coil_reactor_advance(r, 10);
    CU_ASSERT_EQUAL(c.failed, 2);
    CU_ASSERT_PTR_NULL(victim);
    coil_reactor_advance(r, 100);
    CU_ASSERT_EQUAL(c.started, 2);
    CU_ASSERT_EQUAL(c.f.users, 0);

    coil_failure *err = NULL;
    coil_reconnector *rc = COIL_TEST_POISON;
    o.factor = 0.5;
    CU_ASSERT_EQUAL(coil_reconnector_new(r, e, &c.f, &o, &rc, &err), COIL_EINVAL);
    CU_ASSERT_PTR_NULL(rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    CU_ASSERT_PTR_NOT_NULL(strstr(coil_failure_message(err), "factor >= 1"));
    coil_failure_free(err);

    /* A server endpoint is refused with a message. */
    coil_endpoint *se;
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_server("tcp:0", &se, NULL), 0);
    o = coil_reconnect_defaults();
    CU_ASSERT_EQUAL(coil_reconnector_new(r, se, &c.f, &o, &rc, &err), COIL_EINVAL);
    CU_ASSERT(err && strstr(coil_failure_message(err), "not a client") != NULL);
    coil_failure_free(err);
    CU_ASSERT_EQUAL(c.f.users, 0);
    coil_endpoint_free(se);
    coil_endpoint_free(e);
    coil_reactor_free(r);
    coil_clock_free(clk);
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_backoff_schedule_and_give_up),
        COIL_TEST(test_jitter_spreads_delays),
        COIL_TEST(test_reset_after_success_and_reconnect_after_loss),
        COIL_TEST(test_free_inside_callback_and_bad_options),
        {NULL, NULL},
    };
    return coil_test_add_suite("reconnect", cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
