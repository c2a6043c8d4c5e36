/* Plug-ins (coil/plugin.h): a user's endpoint kind ("hello:", tcp: with a
 * toy layer) listened and connected through coil_listen / coil_connect; a
 * user's layer on socket connectors, whose up / failed / lost reach the
 * factory; duplicate and bad kind names; unknown kinds listing the
 * registered ones; a client-only kind; and the stack that
 * coil_transport_info describes for tcp, unix, memory, tls/tcp and
 * tls/memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* ---- the "hello" layer: each side says a word and a newline; the peer
 * must say the same word, then bytes pass through unchanged ----------------- */

typedef struct hello_layer {
    coil_layer base; /* first */
    char word[16];
    int *freed; /* counts frees, for the test */
} hello_layer;

typedef struct hello_conn {
    coil_protocol p; /* ours, on the transport below */
    coil_protocol *upper;
    const coil_layer_events *ev;
    char word[16];
    char got[17];
    size_t n;
    int up, failed;
} hello_conn;

static void hello_made(coil_protocol *p)
{
    hello_conn *h = (hello_conn *)p;
    coil_transport_write(p->transport, h->word, strlen(h->word));
    coil_transport_write(p->transport, "\n", 1);
}

static void hello_fail(hello_conn *h, const char *fmt, const char *said)
{
    coil_failure *f =
        coil_failure_new(COIL_DOMAIN_COIL, COIL_ECONNLOST, fmt, said, h->word);
    h->failed = 1;
    if (h->upper->ops->connection_failed)
        h->upper->ops->connection_failed(h->upper, f);
    if (h->ev && h->ev->failed)
        h->ev->failed(h->p.transport, f);
    coil_failure_free(f);
    coil_transport_abort_connection(h->p.transport);
}

static void hello_data(coil_protocol *p, const void *data, size_t len)
{
    hello_conn *h = (hello_conn *)p;
    const char *d = data;
    if (h->failed)
        return;
    while (!h->up && len > 0) {
        char c = *d++;
        len--;
        if (c != '\n') {
            if (h->n == sizeof h->got - 1) {
                h->got[h->n] = '\0';
                hello_fail(h,
                           "hello layer: the peer's word '%s...' is too long (want '%s')",
                           h->got);
                return;
            }
            h->got[h->n++] = c;
            continue;
        }
        h->got[h->n] = '\0';
        if (strcmp(h->got, h->word) != 0) {
            hello_fail(h, "hello layer: the peer said '%s', not '%s'", h->got);
            return;
        }
        /* Up: the protocol above writes to the transport below itself. */
        h->up = 1;
        h->upper->transport = p->transport;
        if (h->upper->ops->connection_made)
            h->upper->ops->connection_made(h->upper);
        if (h->ev && h->ev->up && !p->transport->disconnecting)
            h->ev->up(p->transport, p->transport);
    }
    if (h->up && len > 0 && h->upper->ops->data_received)
        h->upper->ops->data_received(h->upper, d, len);
}

static void hello_read_lost(coil_protocol *p)
{
    hello_conn *h = (hello_conn *)p;
    if (h->up && h->upper->ops->read_connection_lost)
        h->upper->ops->read_connection_lost(h->upper);
    else
        coil_transport_lose_connection(p->transport);
}

static void hello_lost(coil_protocol *p, const coil_failure *why)
{
    hello_conn *h = (hello_conn *)p;
    if (!h->up)
        return; /* failed, or the connection ended first: the owner says so */
    if (h->upper->ops->connection_lost)
        h->upper->ops->connection_lost(h->upper, why);
    h->upper->transport = NULL;
    if (h->ev && h->ev->lost)
        h->ev->lost(p->transport, why);
}

static void hello_destroy(coil_protocol *p)
{
    hello_conn *h = (hello_conn *)p;
    if (h->upper->ops->destroy)
        h->upper->ops->destroy(h->upper);
    free(h);
}

static const coil_protocol_ops hello_conn_ops = {
    .connection_made = hello_made,
    .data_received = hello_data,
    .read_connection_lost = hello_read_lost,
    .connection_lost = hello_lost,
    .destroy = hello_destroy,
};

static coil_protocol *hello_wrap(coil_layer *layer, coil_protocol *upper,
                                 const char *peer, const coil_layer_events *events)
{
    hello_layer *l = (hello_layer *)layer;
    hello_conn *h = calloc(1, sizeof *h);
    if (!h) {
        if (upper->ops->destroy)
            upper->ops->destroy(upper);
        return NULL;
    }
    h->p.ops = &hello_conn_ops;
    h->upper = upper;
    h->ev = events;
    memcpy(h->word, l->word, sizeof h->word);
    return &h->p;
}

static void hello_free(coil_layer *layer)
{
    hello_layer *l = (hello_layer *)layer;
    if (l->freed)
        ++*l->freed;
    free(l);
}

static const coil_layer_ops hello_layer_ops = {
    .name = "hello",
    .wrap = hello_wrap,
    .free = hello_free,
};

static coil_layer *hello_layer_new(const char *word, int *freed)
{
    hello_layer *l = calloc(1, sizeof *l);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    l->base.ops = &hello_layer_ops;
    snprintf(l->word, sizeof l->word, "%s", word);
    l->freed = freed;
    return &l->base;
}

/* ---- the "hello:" endpoint kind: tcp: plus the layer, with greeting=WORD ---- */

typedef struct hello_ep {
    coil_endpoint_tcp *tcp;
    char word[16];
} hello_ep;

static int hello_parse(const coil_endpoint_parser *p, const coil_endpoint_desc *d,
                       int server, void **state)
{
    static const char *const extra[] = {"greeting", NULL};
    hello_ep *e = calloc(1, sizeof *e);
    if (!e)
        return COIL_ENOMEM;
    *state = e;
    int rc = coil_endpoint_tcp_parse(p, d, server, extra, &e->tcp);
    if (rc)
        return rc;
    const char *g = coil_endpoint_desc_get(d, "greeting");
    if (g && (!*g || strlen(g) >= sizeof e->word))
        return coil_endpoint_bad(p, "greeting '%.40s' is not 1 to 15 characters", g);
    snprintf(e->word, sizeof e->word, "%s", g ? g : "HELLO");
    return 0;
}

static int hello_listen(coil_reactor *r, void *state, coil_factory *f,
                        coil_listener **out, coil_failure **err)
{
    hello_ep *e = state;
    int rc = coil_endpoint_tcp_listen(r, e->tcp, f, out, err);
    if (rc == 0 && (rc = coil_listener_set_layer(*out, hello_layer_new(e->word, NULL))))
        coil_listener_close(*out);
    return rc;
}

static int hello_connect(coil_reactor *r, void *state, coil_factory *f,
                         coil_connector **out, coil_failure **err)
{
    hello_ep *e = state;
    int rc = coil_endpoint_tcp_connect(r, e->tcp, f, out, err);
    if (rc == 0 && (rc = coil_connector_set_layer(*out, hello_layer_new(e->word, NULL))))
        coil_connector_free(*out);
    return rc;
}

static void hello_ep_free(void *state)
{
    hello_ep *e = state;
    coil_endpoint_tcp_free(e->tcp);
    free(e);
}

static const coil_endpoint_kind_ops hello_kind = {
    .name = "hello",
    .server_example = "hello:PORT",
    .client_example = "hello:HOST:PORT",
    .server_usage = "hello:PORT[:interface=ADDR][:greeting=WORD]",
    .client_usage = "hello:HOST:PORT[:timeout=S][:greeting=WORD]",
    .parse = hello_parse,
    .listen = hello_listen,
    .connect = hello_connect,
    .free_state = hello_ep_free,
};

static void register_hello(void)
{
    static int done;
    if (done)
        return;
    coil_failure *err = NULL;
    int rc = coil_endpoint_register_kind(&hello_kind, &err);
    if (rc)
        fprintf(stderr, "\n%s\n", coil_failure_message(err));
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    done = 1;
}

/* ---- protocols and factories for the tests --------------------------------------- */

static void free_proto(coil_protocol *p)
{
    free(p);
}

static void echo_data(coil_protocol *p, const void *data, size_t len)
{
    coil_transport_write(p->transport, data, len);
}

static const coil_protocol_ops echo_ops = {.data_received = echo_data,
                                           .destroy = free_proto};

static coil_protocol *echo_build(coil_factory *f, const coil_address *peer)
{
    coil_protocol *p = calloc(1, sizeof *p);
    p->ops = &echo_ops;
    return p;
}

static const coil_factory_ops echo_factory_ops = {.build_protocol = echo_build};

/* Says NOPE instead of a greeting. */
static void nope_made(coil_protocol *p)
{
    coil_transport_write(p->transport, "NOPE\n", 5);
}

static const coil_protocol_ops nope_ops = {.connection_made = nope_made,
                                           .destroy = free_proto};

static coil_protocol *nope_build(coil_factory *f, const coil_address *peer)
{
    coil_protocol *p = calloc(1, sizeof *p);
    p->ops = &nope_ops;
    return p;
}

static const coil_factory_ops nope_factory_ops = {.build_protocol = nope_build};

/* The client: sends "ping", closes once it has the echo. */
typedef struct pinger {
    coil_protocol p;
    struct cfactory *f;
    char got[8];
    size_t n;
} pinger;

typedef struct cfactory {
    coil_factory f;
    coil_reactor *r;
    int built, destroyed, made, connected, failed, lost, proto_failed;
    int transport_matches;
    char why[512];
    coil_transport_info info; /* at connected */
} cfactory;

static void pinger_made(coil_protocol *p)
{
    pinger *c = (pinger *)p;
    c->f->made++;
    coil_transport_write(p->transport, "ping", 4);
}

static void pinger_data(coil_protocol *p, const void *data, size_t len)
{
    pinger *c = (pinger *)p;
    size_t take = len < sizeof c->got - c->n ? len : sizeof c->got - c->n;
    memcpy(c->got + c->n, data, take);
    c->n += take;
    if (c->n == 4)
        coil_transport_lose_connection(p->transport);
}

static void pinger_failed(coil_protocol *p, const coil_failure *why)
{
    ((pinger *)p)->f->proto_failed++;
}

static void pinger_destroy(coil_protocol *p)
{
    ((pinger *)p)->f->destroyed++;
    free(p);
}

static const coil_protocol_ops pinger_ops = {.connection_made = pinger_made,
                                             .data_received = pinger_data,
                                             .connection_failed = pinger_failed,
                                             .destroy = pinger_destroy};

static coil_protocol *cf_build(coil_factory *f, const coil_address *peer)
{
    cfactory *cf = (cfactory *)f;
    pinger *c = calloc(1, sizeof *c);
    c->p.ops = &pinger_ops;
    c->f = cf;
    cf->built++;
    return &c->p;
}

static void cf_connected(coil_factory *f, coil_connector *c, coil_transport *t)
{
    cfactory *cf = (cfactory *)f;
    cf->connected++;
    cf->transport_matches = coil_connector_transport(c) == t;
    coil_transport_info_get(t, &cf->info);
}

static void cf_failed(coil_factory *f, coil_connector *c, const coil_failure *why)
{
    cfactory *cf = (cfactory *)f;
    cf->failed++;
    snprintf(cf->why, sizeof cf->why, "%s", coil_failure_message(why));
    coil_reactor_stop(cf->r);
}

static void cf_lost(coil_factory *f, coil_connector *c, const coil_failure *why)
{
    cfactory *cf = (cfactory *)f;
    cf->lost++;
    snprintf(cf->why, sizeof cf->why, "%s", coil_failure_message(why));
    coil_reactor_stop(cf->r);
}

static const coil_factory_ops cf_ops = {.build_protocol = cf_build,
                                        .connected = cf_connected,
                                        .connection_failed = cf_failed,
                                        .connection_lost = cf_lost};

static int give_up(void *arg)
{
    coil_reactor_stop(arg);
    return 0;
}

/* Connect `client` (with "%d" for the listener's port) to a listener on
 * `server` run by `sf`; the reactor runs until the factory hears the end
 * (lost or failed), at most 10 s. */
static void run_client(coil_reactor *r, const char *server, coil_factory *sf,
                       const char *client, cfactory *cf)
{
    coil_listener *l = NULL;
    coil_failure *err = NULL;
    int rc = coil_listen(r, server, sf, &l, &err);
    if (rc)
        fprintf(stderr, "\n%s\n", coil_failure_message(err));
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    char text[1024];
    coil_address a;
    if (strstr(client, "%d")) {
        CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);
        snprintf(text, sizeof text, client, coil_address_port(&a));
    } else {
        snprintf(text, sizeof text, "%s", client);
    }
    memset(cf, 0, sizeof *cf);
    cf->f.ops = &cf_ops;
    cf->r = r;
    coil_connector *c = NULL;
    rc = coil_connect(r, text, &cf->f, &c, &err);
    if (rc)
        fprintf(stderr, "\n%s\n", coil_failure_message(err));
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    coil_timer *t = coil_reactor_call_later(r, 10, give_up, r);
    coil_reactor_run(r);
    coil_timer_cancel(t);
    coil_timer_release(t);
    coil_connector_free(c);
    coil_listener_close(l);
    for (int i = 0; i < 5; i++)
        coil_reactor_iterate(r, 0.01);
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_user_kind_connects(void)
{
    register_hello();
    coil_reactor *r = coil_test_reactor(NULL);
    coil_factory sf = {.ops = &echo_factory_ops};
    cfactory cf;
    run_client(r, "hello:0:interface=127.0.0.1:greeting=HI", &sf,
               "hello:127.0.0.1:%d:greeting=HI:timeout=5", &cf);
    CU_ASSERT_EQUAL(cf.connected, 1);
    CU_ASSERT_EQUAL(cf.made, 1);
    CU_ASSERT_EQUAL(cf.transport_matches, 1);
    CU_ASSERT_EQUAL(cf.failed, 0);
    CU_ASSERT_EQUAL(cf.lost, 1); /* the layer's lost reached the factory */
    CU_ASSERT_PTR_NOT_NULL(strstr(cf.why, "closed"));
    CU_ASSERT_EQUAL(cf.built, 1);
    CU_ASSERT_EQUAL(cf.destroyed, 1);
    /* The layer hands the transport below up: still a plain tcp stack. */
    CU_ASSERT_STRING_EQUAL(cf.info.stack, "tcp");

    /* The endpoint itself. */
    coil_endpoint *e = NULL;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_client("hello:localhost:7:greeting=X", &e, &err),
                          0);
    CU_ASSERT_STRING_EQUAL(coil_endpoint_kind(e), "hello");
    CU_ASSERT_STRING_EQUAL(coil_endpoint_text(e), "hello:localhost:7:greeting=X");
    coil_endpoint_free(e);
    coil_reactor_free(r);
}

/* The reconnector copies the endpoint: a plug-in kind reconnects too. */
typedef struct rfact {
    coil_factory f;
    coil_reactor *r;
    int connected;
} rfact;

static void rf_connected(coil_factory *f, coil_connector *c, coil_transport *t)
{
    rfact *rf = (rfact *)f;
    if (++rf->connected == 2)
        coil_reactor_stop(rf->r);
    coil_transport_lose_connection(t);
}

static coil_protocol *rf_build(coil_factory *f, const coil_address *peer)
{
    coil_protocol *p = calloc(1, sizeof *p);
    p->ops = &echo_ops;
    return p;
}

static const coil_factory_ops rf_ops = {.build_protocol = rf_build,
                                        .connected = rf_connected};

static void test_user_kind_reconnects(void)
{
    register_hello();
    coil_reactor *r = coil_test_reactor(NULL);
    coil_factory sf = {.ops = &echo_factory_ops};
    coil_listener *l = NULL;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_listen(r, "hello:0:interface=127.0.0.1", &sf, &l, &err),
                          0);
    coil_address a;
    CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);
    char text[128];
    snprintf(text, sizeof text, "hello:127.0.0.1:%d", coil_address_port(&a));
    coil_endpoint *e = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_client(text, &e, &err), 0);
    rfact rf = {.f.ops = &rf_ops, .r = r};
    coil_reconnect_options o = coil_reconnect_defaults();
    o.initial_delay = 0.01;
    o.max_delay = 0.05;
    o.jitter = 0;
    coil_reconnector *rc = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_reconnector_new(r, e, &rf.f, &o, &rc, &err), 0);
    coil_endpoint_free(e); /* the reconnector keeps its own copy */
    coil_timer *t = coil_reactor_call_later(r, 10, give_up, r);
    coil_reactor_run(r);
    coil_timer_cancel(t);
    coil_timer_release(t);
    CU_ASSERT_EQUAL(rf.connected, 2);
    coil_reconnector_free(rc);
    coil_listener_close(l);
    for (int i = 0; i < 500 && coil_reactor_transport_count(r) > 0; i++)
        coil_reactor_iterate(r, 0.01);
    CU_ASSERT_EQUAL(coil_reactor_transport_count(r), 0);
    coil_reactor_free(r);
}

static void test_user_layer_failed(void)
{
    register_hello();
    coil_reactor *r = coil_test_reactor(NULL);
    coil_factory sf = {.ops = &nope_factory_ops};
    cfactory cf;
    run_client(r, "tcp:0:interface=127.0.0.1", &sf, "hello:127.0.0.1:%d", &cf);
    CU_ASSERT_EQUAL(cf.failed, 1);
    CU_ASSERT_EQUAL(cf.connected, 0);
    CU_ASSERT_EQUAL(cf.lost, 0);
    CU_ASSERT_EQUAL(cf.made, 0);
    CU_ASSERT_EQUAL(cf.proto_failed, 1);
    CU_ASSERT_EQUAL(cf.destroyed, 1);
    CU_ASSERT_STRING_EQUAL(cf.why, "hello layer: the peer said 'NOPE', not 'HELLO'");
    coil_reactor_free(r);
}

/* A layer on a plain connector and listener (no endpoint kind), and the
 * rules of set_layer. */
static void test_layer_on_socket_connector(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_factory sf = {.ops = &echo_factory_ops};
    coil_listener *l = NULL;
    coil_failure *err = NULL;
    coil_tcp_listen_options lo = {.interface = "127.0.0.1"};
    CU_ASSERT_EQUAL_FATAL(coil_tcp_listen(r, &lo, &sf, &l, &err), 0);
    CU_ASSERT_STRING_EQUAL(coil_listener_kind(l), "tcp");
    int lfreed = 0, cfreed = 0, extra_freed = 0;
    CU_ASSERT_EQUAL(coil_listener_set_layer(l, hello_layer_new("YO", &lfreed)), 0);
    CU_ASSERT_EQUAL(coil_listener_set_layer(l, hello_layer_new("YO", &extra_freed)),
                    COIL_EBUSY);
    CU_ASSERT_EQUAL(extra_freed, 1);
    coil_address a;
    CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);

    cfactory cf = {.f.ops = &cf_ops, .r = r};
    coil_tcp_connect_options co = {.host = "127.0.0.1", .port = coil_address_port(&a)};
    coil_connector *c = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_connect(r, &co, &cf.f, &c), 0);
    CU_ASSERT_STRING_EQUAL(coil_connector_kind(c), "tcp");
    CU_ASSERT_EQUAL(coil_connector_set_layer(c, hello_layer_new("YO", &cfreed)), 0);
    CU_ASSERT_EQUAL(coil_connector_set_layer(c, hello_layer_new("YO", &extra_freed)),
                    COIL_EBUSY);
    CU_ASSERT_EQUAL(extra_freed, 2);
    coil_timer *t = coil_reactor_call_later(r, 10, give_up, r);
    coil_reactor_run(r);
    coil_timer_cancel(t);
    coil_timer_release(t);
    CU_ASSERT_EQUAL(cf.connected, 1);
    CU_ASSERT_EQUAL(cf.lost, 1);
    CU_ASSERT_EQUAL(cf.failed, 0);
    CU_ASSERT_EQUAL(cf.destroyed, 1);
    CU_ASSERT_PTR_NULL(coil_connector_transport(c));
    coil_connector_free(c);
    CU_ASSERT_EQUAL(cfreed, 1);
    coil_listener_close(l);
    CU_ASSERT_EQUAL(lfreed, 1);
    for (int i = 0; i < 5; i++)
        coil_reactor_iterate(r, 0.01);
    coil_reactor_free(r);
}

static void expect_fail(int server, const char *text, const char *want)
{
    coil_endpoint *e = COIL_TEST_POISON;
    coil_failure *err = NULL;
    int rc = server ? coil_endpoint_server(text, &e, &err)
                    : coil_endpoint_client(text, &e, &err);
    CU_ASSERT_EQUAL(rc, COIL_EINVAL);
    CU_ASSERT_PTR_NULL(e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    if (!strstr(coil_failure_message(err), want))
        fprintf(stderr, "\n'%s': got '%s', want '%s'\n", text, coil_failure_message(err),
                want);
    CU_ASSERT_PTR_NOT_NULL(strstr(coil_failure_message(err), want));
    coil_failure_free(err);
}

static void test_user_kind_messages(void)
{
    register_hello();
    expect_fail(
        0, "hello:127.0.0.1:99999",
        "bad client endpoint 'hello:127.0.0.1:99999': port '99999' is not a number "
        "from 1 to 65535 (use hello:HOST:PORT[:timeout=S][:greeting=WORD])");
    expect_fail(1, "hello:80:greeting=",
                "bad server endpoint 'hello:80:greeting=': greeting '' is not 1 to 15 "
                "characters (use hello:PORT[:interface=ADDR][:greeting=WORD])");
    expect_fail(1, "hello:80:colour=red", "unknown option 'colour'");
    /* The kinds listed after a mistake include the user's. */
    expect_fail(1, "tcp:80\\", "(use tcp:PORT, unix:PATH, ssl:PORT:privateKey=KEY.pem");
    expect_fail(1, "tcp:80\\", "hello:PORT");
}

static void test_unknown_kind_lists_kinds(void)
{
    register_hello();
    expect_fail(0, "quic:example.org:443",
                "unknown kind 'quic'; registered kinds: tcp, unix");
    expect_fail(0, "quic:example.org:443", "tls, ssl");
    expect_fail(0, "quic:example.org:443", "hello");
    const coil_endpoint_kind_ops *k = coil_endpoint_find_kind("ssl");
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    CU_ASSERT_STRING_EQUAL(k->name, "tls");
    CU_ASSERT_PTR_NULL(coil_endpoint_find_kind("quic"));
}

static int never_called_parse(const coil_endpoint_parser *p, const coil_endpoint_desc *d,
                              int server, void **state)
{
    return coil_endpoint_bad(p, "never");
}

static int one_connect(coil_reactor *r, void *state, coil_factory *f,
                       coil_connector **out, coil_failure **err)
{
    return COIL_ENOTSUP;
}

static void test_duplicate_and_bad_kinds(void)
{
    register_hello();
    coil_endpoint_kind_ops tcp_again = hello_kind;
    tcp_again.name = "tcp";
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL(coil_endpoint_register_kind(&tcp_again, &err), COIL_EBUSY);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    CU_ASSERT_STRING_EQUAL(
        coil_failure_message(err),
        "cannot register endpoint kind 'tcp': the name 'tcp' is taken by "
        "the kind 'tcp' registered before; pick another name");
    coil_failure_free(err);

    static coil_endpoint_kind_ops alias_clash;
    alias_clash = hello_kind;
    alias_clash.name = "secure";
    alias_clash.alias = "ssl";
    err = NULL;
    CU_ASSERT_EQUAL(coil_endpoint_register_kind(&alias_clash, &err), COIL_EBUSY);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    CU_ASSERT_PTR_NOT_NULL(strstr(coil_failure_message(err),
                                  "the name 'ssl' is taken by the "
                                  "kind 'tls'"));
    coil_failure_free(err);

    err = NULL;
    CU_ASSERT_EQUAL(coil_endpoint_register_kind(&hello_kind, &err), COIL_EBUSY);
    coil_failure_free(err);

    coil_endpoint_kind_ops bad = hello_kind;
    bad.name = "a:b";
    err = NULL;
    CU_ASSERT_EQUAL(coil_endpoint_register_kind(&bad, &err), COIL_EINVAL);
    CU_ASSERT(err && strstr(coil_failure_message(err), "'a:b'") != NULL);
    coil_failure_free(err);
    bad.name = "nothing";
    bad.listen = NULL;
    bad.connect = NULL;
    CU_ASSERT_EQUAL(coil_endpoint_register_kind(&bad, NULL), COIL_EINVAL);

    /* A client-only kind: servers are refused with the reason, and it is
     * not offered among the server kinds. */
    static const coil_endpoint_kind_ops client_only = {
        .name = "clientonly",
        .client_example = "clientonly:X",
        .client_usage = "clientonly:X",
        .parse = never_called_parse,
        .connect = one_connect,
    };
    CU_ASSERT_EQUAL(coil_endpoint_register_kind(&client_only, NULL), 0);
    expect_fail(1, "clientonly:1", "kind 'clientonly' has no server side (use tcp:PORT");
    expect_fail(0, "clientonly:1",
                "bad client endpoint 'clientonly:1': never (use clientonly:X)");
    coil_endpoint *e;
    err = NULL;
    CU_ASSERT_EQUAL(coil_endpoint_server("tcp:80\\", &e, &err), COIL_EINVAL);
    CU_ASSERT_PTR_NULL(strstr(coil_failure_message(err), "clientonly"));
    coil_failure_free(err);
}

/* ---- the stack in coil_transport_info ---------------------------------------- */

static void check_stack(const coil_transport_info *i, const char *stack, int n,
                        const char *kind)
{
    if (strcmp(i->stack, stack) != 0)
        fprintf(stderr, "\nstack: got '%s', want '%s'\n", i->stack, stack);
    CU_ASSERT_STRING_EQUAL(i->stack, stack);
    CU_ASSERT_EQUAL(i->n_layers, n);
    CU_ASSERT_STRING_EQUAL(i->kind, kind);
    CU_ASSERT_STRING_EQUAL(i->layers[0].kind, kind);
}

static void test_stack_tcp_unix(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_factory sf = {.ops = &echo_factory_ops};
    cfactory cf;
    run_client(r, "tcp:0:interface=127.0.0.1", &sf, "tcp:127.0.0.1:%d", &cf);
    CU_ASSERT_EQUAL(cf.connected, 1);
    check_stack(&cf.info, "tcp", 1, "tcp");

    char server[128], client[128], path[64];
    snprintf(path, sizeof path, "/tmp/coil-plugin-%d.sock", (int)getpid());
    snprintf(server, sizeof server, "unix:%s", path);
    snprintf(client, sizeof client, "unix:%s", path);
    run_client(r, server, &sf, client, &cf);
    CU_ASSERT_EQUAL(cf.connected, 1);
    check_stack(&cf.info, "unix", 1, "unix");
    CU_ASSERT_EQUAL(cf.info.peer_pid, getpid()); /* the credentials stay */
    unlink(path);
    coil_reactor_free(r);
}

static void test_stack_tls_tcp(void)
{
    const char *key = coil_test_cert("server.key"),
               *chain = coil_test_cert("server-chain.pem"),
               *ca = coil_test_cert("ca.pem");
    CU_ASSERT_PTR_NOT_NULL_FATAL(key);
    CU_ASSERT_PTR_NOT_NULL_FATAL(chain);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ca);
    char server[1024], client[1024];
    snprintf(server, sizeof server, "ssl:0:interface=127.0.0.1:privateKey=%s:certKey=%s",
             key, chain);
    snprintf(client, sizeof client, "tls:127.0.0.1:%%d:caCerts=%s:sni=localhost", ca);
    coil_reactor *r = coil_test_reactor(NULL);
    coil_factory sf = {.ops = &echo_factory_ops};
    cfactory cf;
    run_client(r, server, &sf, client, &cf);
    CU_ASSERT_EQUAL(cf.connected, 1);
    CU_ASSERT_EQUAL(cf.lost, 1);
    check_stack(&cf.info, "tls/tcp", 2, "tls");
    CU_ASSERT_STRING_EQUAL(cf.info.layers[1].kind, "tcp");
    const coil_transport_layer_info *tls = coil_transport_info_layer(&cf.info, "tls");
    CU_ASSERT_PTR_NOT_NULL_FATAL(tls);
    CU_ASSERT_STRING_EQUAL(tls->protocol, "TLSv1.3");
    CU_ASSERT(tls->cipher[0] != '\0');
    CU_ASSERT_PTR_NOT_NULL(strstr(tls->peer, "localhost"));
    CU_ASSERT_EQUAL(tls->verified, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(tls->detail, "sni=localhost"));
    /* Today's fields stay readable. */
    CU_ASSERT_PTR_NOT_NULL_FATAL(cf.info.tls_version);
    CU_ASSERT_STRING_EQUAL(cf.info.tls_version, "TLSv1.3");
    CU_ASSERT_EQUAL(cf.info.tls_peer_verified, 1);
    CU_ASSERT_PTR_NULL(coil_transport_info_layer(&cf.info, "ssh-channel"));
    coil_reactor_free(r);
}

typedef struct mem_peer {
    coil_protocol p;
    int made;
    coil_transport_info info;
} mem_peer;

static void mem_made(coil_protocol *p)
{
    mem_peer *m = (mem_peer *)p;
    m->made++;
    coil_transport_info_get(p->transport, &m->info);
}

static const coil_protocol_ops mem_ops = {.connection_made = mem_made};

static void test_stack_memory_and_tls_memory(void)
{
    coil_reactor *r = coil_test_fake_start();
    mem_peer a = {.p.ops = &mem_ops}, b = {.p.ops = &mem_ops};
    coil_transport *ta, *tb;
    CU_ASSERT_EQUAL_FATAL(coil_memory_pair(r, &a.p, &b.p, 0, &ta, &tb), 0);
    for (int i = 0; i < 10; i++)
        coil_reactor_advance(r, 0);
    CU_ASSERT_EQUAL(a.made, 1);
    check_stack(&a.info, "memory", 1, "memory");
    coil_transport_abort_connection(ta);
    for (int i = 0; i < 10; i++)
        coil_reactor_advance(r, 0);

    coil_tls_options so = {0}, co = {0};
    so.cert_file = coil_test_cert("server-chain.pem");
    so.key_file = coil_test_cert("server.key");
    co.ca_file = coil_test_cert("ca.pem");
    coil_tls_context *sc = NULL, *cc = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tls_context_new(COIL_TLS_SERVER, &so, &sc, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(coil_tls_context_new(COIL_TLS_CLIENT, &co, &cc, NULL), 0);
    mem_peer c = {.p.ops = &mem_ops}, s = {.p.ops = &mem_ops};
    coil_protocol *cw = coil_tls_wrap(cc, "localhost", &c.p);
    coil_protocol *sw = coil_tls_wrap(sc, NULL, &s.p);
    CU_ASSERT_EQUAL_FATAL(coil_memory_pair(r, cw, sw, 0, &ta, &tb), 0);
    for (int i = 0; i < 100; i++)
        coil_reactor_advance(r, 0);
    CU_ASSERT_EQUAL(c.made, 1);
    CU_ASSERT_EQUAL(s.made, 1);
    check_stack(&c.info, "tls/memory", 2, "tls");
    check_stack(&s.info, "tls/memory", 2, "tls");
    CU_ASSERT_STRING_EQUAL(c.info.layers[1].kind, "memory");
    const coil_transport_layer_info *tls = coil_transport_info_layer(&c.info, "tls");
    CU_ASSERT_PTR_NOT_NULL_FATAL(tls);
    CU_ASSERT_EQUAL(tls->verified, 1);
    CU_ASSERT_STRING_EQUAL(tls->protocol, c.info.tls_version);
    coil_transport_abort_connection(c.p.transport);
    for (int i = 0; i < 100; i++)
        coil_reactor_advance(r, 0);
    coil_tls_context_free(sc);
    coil_tls_context_free(cc);
    coil_test_fake_end(r);
}

/* coil_transport_info_push on its own: deep stacks keep the top entries and
 * name every layer in `stack`. */
static void test_info_push(void)
{
    coil_transport_info i;
    memset(&i, 0, sizeof i);
    coil_transport_info_push(&i, NULL, "tcp");
    coil_transport_info below = i;
    coil_transport_layer_info *l = coil_transport_info_push(&i, &below, "ssh-channel");
    snprintf(l->detail, sizeof l->detail, "direct-tcpip 127.0.0.1:7000");
    below = i;
    coil_transport_info_push(&i, &below, "tls");
    CU_ASSERT_STRING_EQUAL(i.stack, "tls/ssh-channel/tcp");
    CU_ASSERT_EQUAL(i.n_layers, 3);
    CU_ASSERT_STRING_EQUAL(coil_transport_info_layer(&i, "ssh-channel")->detail,
                           "direct-tcpip 127.0.0.1:7000");
    for (int k = 0; k < 3; k++)
        coil_transport_info_push(&i, NULL, "x");
    CU_ASSERT_STRING_EQUAL(i.stack, "x/x/x/tls/ssh-channel/tcp");
    CU_ASSERT_EQUAL(i.n_layers, COIL_TRANSPORT_MAX_LAYERS);
    CU_ASSERT_STRING_EQUAL(i.layers[3].kind, "tls");
    for (int k = 0; k < 40; k++)
        coil_transport_info_push(&i, NULL, "layer");
    CU_ASSERT_EQUAL(strlen(i.stack), sizeof i.stack - 1);
    CU_ASSERT_EQUAL(strncmp(i.stack, "layer/layer/", 12), 0);
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_user_kind_connects),
        COIL_TEST(test_user_kind_reconnects),
        COIL_TEST(test_user_layer_failed),
        COIL_TEST(test_layer_on_socket_connector),
        COIL_TEST(test_user_kind_messages),
        COIL_TEST(test_unknown_kind_lists_kinds),
        COIL_TEST(test_duplicate_and_bad_kinds),
        COIL_TEST(test_stack_tcp_unix),
        COIL_TEST(test_stack_tls_tcp),
        COIL_TEST(test_stack_memory_and_tls_memory),
        COIL_TEST(test_info_push),
        {NULL, NULL},
    };
    return coil_test_add_suite("plugin", cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
