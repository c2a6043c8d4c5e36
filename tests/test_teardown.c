/* Teardown: the reactor's registry of transports, coil_reactor_shutdown
 * (close everything, wait, abort the rest) and coil_reactor_free running
 * the teardowns a close queued. Run under ASan (the COIL_SANITIZE build):
 * a leak fails the test. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* ---- a protocol on the heap that counts what happens to it ---- */

typedef struct counts {
    int built, made, lost, clean, destroyed;
    int close_on_made;    /* lose_connection as soon as connection_made runs */
    int pause_on_made;    /* never read */
    coil_reactor *nested; /* connection_lost tries a shutdown of this one */
    int nested_refused;
} counts;

typedef struct proto {
    coil_protocol base;
    counts *c;
} proto;

static void p_made(coil_protocol *p)
{
    counts *c = ((proto *)p)->c;
    c->made++;
    if (c->pause_on_made)
        coil_transport_pause_reading(p->transport);
    if (c->close_on_made) {
        /* More than a socket buffer would take in one go is not needed:
         * the close_notify alone must wait for a peer that never reads. */
        coil_transport_write(p->transport, "bye\n", 4);
        coil_transport_lose_connection(p->transport);
    }
}

static void p_data(coil_protocol *p, const void *data, size_t len)
{
}

static void p_lost(coil_protocol *p, const coil_failure *reason)
{
    counts *c = ((proto *)p)->c;
    c->lost++;
    if (coil_failure_code(reason) == COIL_ECLOSED)
        c->clean++;
    if (c->nested && coil_reactor_shutdown(c->nested, 1) == COIL_ERUNNING)
        c->nested_refused++;
}

static void p_destroy(coil_protocol *p)
{
    ((proto *)p)->c->destroyed++;
    free(p);
}

static const coil_protocol_ops p_ops = {
    .connection_made = p_made,
    .data_received = p_data,
    .connection_lost = p_lost,
    .destroy = p_destroy,
};

static coil_protocol *proto_new(counts *c)
{
    proto *p = calloc(1, sizeof *p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    p->base.ops = &p_ops;
    p->c = c;
    c->built++;
    return &p->base;
}

typedef struct factory {
    coil_factory base;
    counts c;
} factory;

static coil_protocol *f_build(coil_factory *f, const coil_address *peer)
{
    return proto_new(&((factory *)f)->c);
}

static const coil_factory_ops f_ops = {.build_protocol = f_build};

static void factory_init(factory *f)
{
    memset(f, 0, sizeof *f);
    f->base.ops = &f_ops;
}

static coil_tls_context *tls_ctx(int role)
{
    coil_tls_options o = {0};
    if (role == COIL_TLS_SERVER) {
        o.cert_file = coil_test_cert("server-chain.pem");
        o.key_file = coil_test_cert("server.key");
    } else {
        o.ca_file = coil_test_cert("ca.pem");
    }
    coil_tls_context *ctx = NULL;
    coil_failure *err = NULL;
    int rc = coil_tls_context_new(role, &o, &ctx, &err);
    if (rc != 0)
        coil_failure_print(err, stderr);
    coil_failure_free(err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return ctx;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the registry and freeing in the same pass ---- */

static void test_count_and_clean_shutdown(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    counts a = {0}, b = {0};
    CU_ASSERT_EQUAL(coil_reactor_transport_count(r), 0);
    CU_ASSERT_EQUAL_FATAL(
        coil_memory_pair(r, proto_new(&a), proto_new(&b), 0, NULL, NULL), 0);
    CU_ASSERT_EQUAL(coil_reactor_transport_count(r), 2);
    coil_reactor_iterate(r, 0);
    CU_ASSERT_EQUAL(a.made, 1);
    CU_ASSERT_EQUAL(b.made, 1);
    a.nested = r; /* a shutdown from a callback of a shutdown is refused */
    /* Both ends can close at once: nothing aborted, both clean. */
    CU_ASSERT_EQUAL(coil_reactor_shutdown(r, 5), 0);
    CU_ASSERT_EQUAL(a.nested_refused, 1);
    CU_ASSERT_EQUAL(coil_reactor_transport_count(r), 0);
    CU_ASSERT_EQUAL(a.clean, 1);
    CU_ASSERT_EQUAL(b.clean, 1);
    CU_ASSERT_EQUAL(a.destroyed, 1);
    CU_ASSERT_EQUAL(b.destroyed, 1);
    /* Nothing left: again is a no-op. */
    CU_ASSERT_EQUAL(coil_reactor_shutdown(r, 0), 0);
    CU_ASSERT_EQUAL(coil_reactor_shutdown(r, NAN), COIL_EINVAL);
    coil_reactor_free(r);
}

static int shutdown_inside_run(void *arg)
{
    CU_ASSERT_EQUAL(coil_reactor_shutdown(arg, 1), COIL_ERUNNING);
    return coil_reactor_stop(arg);
}

static void test_shutdown_refused_while_running(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    CU_ASSERT_EQUAL(coil_reactor_call_soon(r, shutdown_inside_run, r), 0);
    CU_ASSERT_EQUAL(coil_reactor_run(r), 0);
    coil_reactor_free(r);
}

/* A close queues the teardown (connection_lost, destroy, the memory) for
 * the next pass; a reactor freed in this pass runs it. Without that, ASan
 * reports both ends and both protocols as leaked. */
static void test_free_in_same_pass_as_close(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    counts a = {0}, b = {0};
    coil_transport *ta = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_memory_pair(r, proto_new(&a), proto_new(&b), 0, &ta, NULL),
                          0);
    coil_reactor_iterate(r, 0);
    CU_ASSERT_EQUAL_FATAL(a.made, 1);
    coil_transport_lose_connection(ta);
    CU_ASSERT_EQUAL(a.destroyed, 0);
    coil_reactor_free(r);
    CU_ASSERT_EQUAL(a.lost, 1);
    CU_ASSERT_EQUAL(b.lost, 1);
    CU_ASSERT_EQUAL(a.destroyed, 1);
    CU_ASSERT_EQUAL(b.destroyed, 1);
}

/* The same with TLS on both ends of the pair (layers, SSL objects, the
 * memory ends below): a clean close is a dialogue of queued calls
 * (close_notify each way, then the ends below), all run by the free. */
static void tls_pair_closed_and_freed(int abort)
{
    coil_clock *clock = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(clock);
    coil_tls_context *sc = tls_ctx(COIL_TLS_SERVER), *cc = tls_ctx(COIL_TLS_CLIENT);
    counts a = {0}, b = {0};
    coil_protocol *pa = proto_new(&a);
    coil_protocol *cw = coil_tls_wrap(cc, "localhost", pa);
    coil_protocol *sw = coil_tls_wrap(sc, NULL, proto_new(&b));
    CU_ASSERT_PTR_NOT_NULL_FATAL(cw);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sw);
    CU_ASSERT_EQUAL_FATAL(coil_memory_pair(r, cw, sw, 0, NULL, NULL), 0);
    for (int i = 0; i < 100 && (a.made < 1 || b.made < 1); i++)
        coil_reactor_advance(r, 0);
    CU_ASSERT_EQUAL_FATAL(a.made, 1);
    CU_ASSERT_EQUAL_FATAL(b.made, 1);
    /* Two memory ends and two TLS layers. */
    CU_ASSERT_EQUAL(coil_reactor_transport_count(r), 4);
    if (abort)
        coil_transport_abort_connection(pa->transport);
    else
        coil_transport_lose_connection(pa->transport);
    coil_reactor_free(r);
    CU_ASSERT_EQUAL(a.lost, 1);
    CU_ASSERT_EQUAL(b.lost, 1);
    CU_ASSERT_EQUAL(a.clean, !abort);
    CU_ASSERT_EQUAL(b.clean, !abort);
    CU_ASSERT_EQUAL(a.destroyed, 1);
    CU_ASSERT_EQUAL(b.destroyed, 1);
    coil_clock_free(clock);
    coil_tls_context_free(sc);
    coil_tls_context_free(cc);
}

static void test_free_tls_pair_in_same_pass_as_close(void)
{
    tls_pair_closed_and_freed(0);
}

static void test_free_tls_pair_in_same_pass_as_abort(void)
{
    tls_pair_closed_and_freed(1);
}

/* ---- a TLS server with connections stuck in handshakes and closes ---- */

enum { STUCK_HANDSHAKES = 50, STUCK_CLOSES = 50, RESPONSIVE = 10 };

static int raw_connect(int port, const void *send_first, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    if (len)
        CU_ASSERT_EQUAL(send(fd, send_first, len, 0), (ssize_t)len);
    return fd;
}

static int listen_tls(coil_reactor *r, coil_tls_context *sc, factory *f,
                      coil_listener **l)
{
    coil_tcp_listen_options lo = {0};
    lo.interface = "127.0.0.1";
    lo.backlog = 256;
    coil_failure *err = NULL;
    int rc = coil_tls_listen_tcp(r, &lo, sc, &f->base, l, &err);
    if (rc != 0)
        coil_failure_print(err, stderr);
    coil_failure_free(err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    coil_address a;
    CU_ASSERT_EQUAL_FATAL(coil_listener_get_host(*l, &a), 0);
    return coil_address_port(&a);
}

static coil_connector *connect_tls(coil_reactor *r, int port, coil_tls_context *cc,
                                   factory *f)
{
    coil_tcp_connect_options co = {0};
    co.host = "127.0.0.1";
    co.port = port;
    coil_connector *k = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tls_connect_tcp(r, &co, cc, "localhost", &f->base, &k), 0);
    return k;
}

/* Turn the reactors until `*value` reaches `want` (bounded: 20 s). */
static int wait_for(coil_reactor *r, coil_reactor *r2, const int *value, int want)
{
    double end = now() + 20;
    while (*value < want && now() < end) {
        coil_reactor_iterate(r, 0.002);
        if (r2)
            coil_reactor_iterate(r2, 0.002);
    }
    return *value >= want;
}

static void test_shutdown_tls_server_with_stuck_connections(void)
{
    coil_reactor *r = coil_test_reactor(NULL);     /* the server */
    coil_reactor *peers = coil_test_reactor(NULL); /* clients that stop reading */
    coil_tls_context *sc = tls_ctx(COIL_TLS_SERVER), *cc = tls_ctx(COIL_TLS_CLIENT);
    factory closing, serving, stuck_clients, good_clients;
    factory_init(&closing);
    factory_init(&serving);
    factory_init(&stuck_clients);
    factory_init(&good_clients);
    closing.c.close_on_made = 1;
    stuck_clients.c.pause_on_made = 1;

    coil_listener *lc = NULL, *ls = NULL;
    int port_closing = listen_tls(r, sc, &closing, &lc);
    int port_serving = listen_tls(r, sc, &serving, &ls);

    /* 50 clients on their own reactor finish the handshake, then that
     * reactor never turns again: the server's lose_connection sends
     * close_notify and waits for an answer that never comes. */
    coil_connector *k[STUCK_CLOSES + RESPONSIVE];
    for (int i = 0; i < STUCK_CLOSES; i++)
        k[i] = connect_tls(peers, port_closing, cc, &stuck_clients);
    CU_ASSERT_FATAL(wait_for(r, peers, &closing.c.made, STUCK_CLOSES));
    for (int i = 0; i < 50; i++)
        coil_reactor_iterate(r, 0);

    /* 50 raw TCP clients stuck in the handshake: half send nothing, half
     * the start of a ClientHello. */
    static const unsigned char partial_hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01,
                                                  0x00, 0x01, 0xfc, 0x03, 0x03};
    int raw[STUCK_HANDSHAKES];
    for (int i = 0; i < STUCK_HANDSHAKES; i++)
        raw[i] =
            raw_connect(port_serving, partial_hello, i % 2 ? sizeof partial_hello : 0);

    /* 10 well-behaved TLS clients on the server's own reactor: shutdown
     * closes both of their ends cleanly. */
    for (int i = 0; i < RESPONSIVE; i++)
        k[STUCK_CLOSES + i] = connect_tls(r, port_serving, cc, &good_clients);
    CU_ASSERT_FATAL(wait_for(r, NULL, &good_clients.c.made, RESPONSIVE));
    CU_ASSERT_FATAL(wait_for(r, NULL, &serving.c.made, RESPONSIVE));
    CU_ASSERT_FATAL(wait_for(r, NULL, &serving.c.built, STUCK_HANDSHAKES + RESPONSIVE));
    for (int i = 0; i < 20; i++)
        coil_reactor_iterate(r, 0);
    CU_ASSERT_EQUAL(closing.c.destroyed, 0);
    CU_ASSERT_EQUAL(serving.c.destroyed, 0);

    /* What a server does at the end. */
    coil_listener_close(lc);
    coil_listener_close(ls);
    for (int i = STUCK_CLOSES; i < STUCK_CLOSES + RESPONSIVE; i++)
        coil_connector_free(k[i]);
    /* TLS over TCP: two transports per connection. */
    CU_ASSERT_EQUAL(coil_reactor_transport_count(r),
                    2 * (STUCK_CLOSES + STUCK_HANDSHAKES + 2 * RESPONSIVE));
    double t0 = now();
    int aborted = coil_reactor_shutdown(r, 0.5);
    double took = now() - t0;
    CU_ASSERT_EQUAL(aborted, STUCK_CLOSES + STUCK_HANDSHAKES);
    CU_ASSERT(took >= 0.5);
    CU_ASSERT(took < 5);
    CU_ASSERT_EQUAL(coil_reactor_transport_count(r), 0);
    CU_ASSERT_EQUAL(coil_reactor_watch_count(r), 0);
    /* Every protocol built was destroyed; the responsive ones closed clean
     * on both sides, the stuck ones did not. */
    CU_ASSERT_EQUAL(closing.c.destroyed, STUCK_CLOSES);
    CU_ASSERT_EQUAL(closing.c.clean, 0);
    CU_ASSERT_EQUAL(serving.c.destroyed, STUCK_HANDSHAKES + RESPONSIVE);
    CU_ASSERT_EQUAL(serving.c.made, RESPONSIVE);
    CU_ASSERT_EQUAL(serving.c.clean, RESPONSIVE);
    CU_ASSERT_EQUAL(good_clients.c.destroyed, RESPONSIVE);
    CU_ASSERT_EQUAL(good_clients.c.clean, RESPONSIVE);
    coil_reactor_free(r);

    /* The stuck clients: their server is gone (reset); shut them down too. */
    for (int i = 0; i < STUCK_CLOSES; i++)
        coil_connector_free(k[i]);
    CU_ASSERT(coil_reactor_shutdown(peers, 2) >= 0);
    CU_ASSERT_EQUAL(coil_reactor_transport_count(peers), 0);
    CU_ASSERT_EQUAL(stuck_clients.c.destroyed, STUCK_CLOSES);
    coil_reactor_free(peers);
    for (int i = 0; i < STUCK_HANDSHAKES; i++)
        close(raw[i]);
    coil_tls_context_free(sc);
    coil_tls_context_free(cc);
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_count_and_clean_shutdown),
        COIL_TEST(test_shutdown_refused_while_running),
        COIL_TEST(test_free_in_same_pass_as_close),
        COIL_TEST(test_free_tls_pair_in_same_pass_as_close),
        COIL_TEST(test_free_tls_pair_in_same_pass_as_abort),
        COIL_TEST(test_shutdown_tls_server_with_stuck_connections),
        {NULL, NULL},
    };
    return coil_test_add_suite("teardown", cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
