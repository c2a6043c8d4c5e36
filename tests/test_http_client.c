/* The HTTP agent (protocols/http/client.c): requests and responses over the
 * in-memory pair with the fake clock (through options.connect) against a
 * scripted server that the test drives byte by byte; then TCP, UNIX sockets
 * and TLS on loopback with an automatic scripted server. Certificates come
 * from tests/tls/make-certs.sh ($COIL_TEST_CERTS, set by ctest). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_testutil.h"
#include "testutil.h"

/* ======================================================================= */
/* ---- a scripted server ----------------------------------------------- */

typedef struct T T;

typedef struct srv {
    coil_protocol p;
    T *t;
    char *in;
    size_t len, cap;
    int made, closed, gone;
    int close_code;
    int autorespond; /* answer every head with its target as the body */
    int answered;
    char alpn[64], sni[256]; /* TLS, as the server saw it */
} srv;

#define MAX_SRV 1024

struct T {
    coil_reactor *r;
    coil_http_agent *a;
    srv *srvs[MAX_SRV];
    int nsrv;
    int open_now, max_open;
    int autorespond;
    /* a connect hook that never connects, or fails */
    int never, refuse;
    coil_http_site *site; /* set: connections go to coil's own server */
    coil_protocol *held[8];
    coil_deferred *heldd[8];
    int nheld;
    coil_factory f; /* for listeners */
};

static void srv_answer_heads(srv *s);

static void srv_made(coil_protocol *p)
{
    srv *s = (srv *)p;
    s->made = 1;
    coil_transport_info info;
    if (coil_transport_info_get(p->transport, &info) == 0) {
        snprintf(s->alpn, sizeof s->alpn, "%s", info.tls_alpn);
        snprintf(s->sni, sizeof s->sni, "%s", info.tls_server_name);
    }
    s->t->open_now++;
    if (s->t->open_now > s->t->max_open)
        s->t->max_open = s->t->open_now;
}

static void srv_data(coil_protocol *p, const void *data, size_t len)
{
    srv *s = (srv *)p;
    if (s->len + len + 1 > s->cap) {
        s->cap = (s->len + len + 1) * 2;
        s->in = realloc(s->in, s->cap);
    }
    memcpy(s->in + s->len, data, len);
    s->len += len;
    s->in[s->len] = 0;
    if (s->autorespond)
        srv_answer_heads(s);
}

static void srv_lost(coil_protocol *p, const coil_failure *reason)
{
    srv *s = (srv *)p;
    s->closed = 1;
    s->close_code = coil_failure_code(reason);
    if (s->made)
        s->t->open_now--;
}

static void srv_destroy(coil_protocol *p)
{
    ((srv *)p)->gone = 1;
}

static const coil_protocol_ops srv_ops = {
    .connection_made = srv_made,
    .data_received = srv_data,
    .connection_lost = srv_lost,
    .destroy = srv_destroy,
};

static srv *srv_new(T *t)
{
    CU_ASSERT_FATAL(t->nsrv < MAX_SRV);
    srv *s = calloc(1, sizeof *s);
    s->p.ops = &srv_ops;
    s->t = t;
    s->autorespond = t->autorespond;
    t->srvs[t->nsrv++] = s;
    return s;
}

/* Take the first request head the client sent (up to the blank line) into
 * out; 1 when there was one. */
static int srv_take_head(srv *s, char *out, size_t size)
{
    char *end = s->in ? strstr(s->in, "\r\n\r\n") : NULL;
    if (!end)
        return 0;
    size_t n = (size_t)(end + 4 - s->in);
    snprintf(out, size, "%.*s", (int)n, s->in);
    memmove(s->in, s->in + n, s->len - n + 1);
    s->len -= n;
    return 1;
}

static void srv_answer_heads(srv *s)
{
    char head[4096], target[1024], resp[2048];
    while (srv_take_head(s, head, sizeof head)) {
        if (sscanf(head, "%*s %1023s", target) != 1)
            strcpy(target, "?");
        int n = snprintf(resp, sizeof resp,
                         "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
                         strlen(target), target);
        coil_transport_write(s->p.transport, resp, (size_t)n);
        s->answered++;
    }
}

static void srv_send(srv *s, const char *text)
{
    CU_ASSERT_FATAL(s->p.transport != NULL);
    CU_ASSERT_EQUAL(coil_transport_write(s->p.transport, text, strlen(text)), 0);
}

static void srv_close(srv *s)
{
    if (s->p.transport)
        coil_transport_lose_connection(s->p.transport);
}

static coil_protocol *tf_build(coil_factory *f, const coil_address *peer)
{
    (void)peer;
    T *t = f->user;
    return &srv_new(t)->p;
}

static const coil_factory_ops tf_ops = {.build_protocol = tf_build};

/* options.connect over the memory pair. */
typedef struct hookctx {
    coil_deferred *d;
} hookctx;

static coil_deferred *mem_connect(void *ud, const coil_http_url *url, coil_protocol *p)
{
    (void)url;
    T *t = ud;
    if (t->refuse) {
        p->ops->destroy(p);
        return coil_deferred_fail(
            coil_failure_from_errno(ECONNREFUSED, "connect to %s failed", url->host));
    }
    if (t->never) {
        CU_ASSERT_FATAL(t->nheld < 8);
        coil_deferred *d = coil_deferred_new();
        t->held[t->nheld] = p;
        t->heldd[t->nheld++] = coil_deferred_ref(d);
        return d;
    }
    if (t->site) {
        coil_protocol *sp = coil_http_site_protocol(t->site, NULL);
        CU_ASSERT_FATAL(sp != NULL);
        CU_ASSERT_FATAL(coil_memory_pair(t->r, p, sp, 0, NULL, NULL) == 0);
        return coil_deferred_succeed(NULL, NULL);
    }
    srv *s = srv_new(t);
    coil_transport *ta;
    CU_ASSERT_FATAL(coil_memory_pair(t->r, p, &s->p, 0, &ta, NULL) == 0);
    return coil_deferred_succeed(NULL, NULL);
}

static void pump(T *t)
{
    for (int i = 0; i < 12; i++)
        coil_reactor_advance(t->r, 0);
}

/* Send `text` to the agent and let it take it in. */
static void srv_answer(srv *s, const char *text)
{
    srv_send(s, text);
    pump(s->t);
}

static void t_start(T *t, const coil_http_agent_options *o)
{
    memset(t, 0, sizeof *t);
    t->r = coil_test_fake_start();
    coil_http_agent_options ao = o ? *o : (coil_http_agent_options){0};
    ao.connect = mem_connect;
    ao.connect_ud = t;
    coil_failure *err = NULL;
    CU_ASSERT_FATAL(coil_http_agent_new(t->r, &ao, &t->a, &err) == 0);
}

static void t_end(T *t)
{
    coil_http_agent_free(t->a);
    for (int i = 0; i < t->nheld; i++) {
        coil_deferred_errback(
            t->heldd[i],
            coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED, "test over"));
        coil_deferred_unref(t->heldd[i]);
        if (t->held[i]->ops->destroy)
            t->held[i]->ops->destroy(t->held[i]);
    }
    pump(t);
    for (int i = 0; i < t->nsrv; i++)
        if (t->srvs[i]->p.transport)
            coil_transport_abort_connection(t->srvs[i]->p.transport);
    pump(t);
    coil_test_fake_end(t->r);
    for (int i = 0; i < t->nsrv; i++) {
        CU_ASSERT(t->srvs[i]->gone);
        free(t->srvs[i]->in);
        free(t->srvs[i]);
    }
}

/* ---- deferred results ---- */

typedef struct res {
    int fired;
    void *value;
    coil_destroy_fn destroy;
    coil_failure *f;
    char msg[2048];
} res;

static void res_ok(coil_deferred *d, void *arg)
{
    res *x = arg;
    x->fired++;
    x->value = coil_deferred_take_result(d, &x->destroy);
}

static void res_err(coil_deferred *d, void *arg)
{
    res *x = arg;
    x->fired++;
    x->f = coil_deferred_take_failure(d);
    coil_failure_format(x->f, x->msg, sizeof x->msg);
    if (getenv("COIL_TEST_SHOW_FAILURES")) /* to read the messages */
        fprintf(stderr, "\n    failure: %s\n", x->msg);
}

static void res_watch(coil_deferred *d, res *x)
{
    memset(x, 0, sizeof *x);
    CU_ASSERT_FATAL(d != NULL);
    CU_ASSERT(coil_deferred_add_callbacks(d, res_ok, res_err, x) == 0);
    coil_deferred_unref(d);
}

static void res_clear(res *x)
{
    if (x->destroy && x->value)
        x->destroy(x->value);
    coil_failure_free(x->f);
    memset(x, 0, sizeof *x);
}

static coil_http_response *res_resp(res *x)
{
    if (x->f)
        fprintf(stderr, "\n    unexpected failure: %s\n", x->msg);
    CU_ASSERT_FATAL(x->fired == 1 && x->value != NULL);
    return x->value;
}

/* The result `x` is a coil failure with `code` whose words hold `needle`. */
#define ASSERT_FAILED(x, code, needle)                                                   \
    do {                                                                                 \
        CU_ASSERT((x).f != NULL && coil_failure_check((x).f, COIL_DOMAIN_COIL, (code))); \
        COIL_TEST_ASSERT_HAS((x).msg, (needle));                                         \
    } while (0)

/* ---- a body protocol ---- */

typedef struct bodyp {
    coil_protocol p;
    char data[65536 * 4];
    size_t len;
    int made, lost, destroyed, pause_on_data;
    int lost_code;
    char lost_msg[1024];
    char kind[32];
} bodyp;

static void bp_made(coil_protocol *p)
{
    bodyp *b = (bodyp *)p;
    b->made++;
    coil_transport_info info;
    if (coil_transport_info_get(p->transport, &info) == 0)
        snprintf(b->kind, sizeof b->kind, "%s", info.kind);
}

static void bp_data(coil_protocol *p, const void *data, size_t len)
{
    bodyp *b = (bodyp *)p;
    CU_ASSERT_FATAL(b->len + len <= sizeof b->data);
    memcpy(b->data + b->len, data, len);
    b->len += len;
    if (b->pause_on_data)
        coil_transport_pause_reading(p->transport);
}

static void bp_lost(coil_protocol *p, const coil_failure *reason)
{
    bodyp *b = (bodyp *)p;
    b->lost++;
    b->lost_code = coil_failure_code(reason);
    coil_failure_format(reason, b->lost_msg, sizeof b->lost_msg);
}

static void bp_destroy(coil_protocol *p)
{
    ((bodyp *)p)->destroyed++;
}

static const coil_protocol_ops bp_ops = {
    .connection_made = bp_made,
    .data_received = bp_data,
    .connection_lost = bp_lost,
    .destroy = bp_destroy,
};

static void bp_init(bodyp *b)
{
    memset(b, 0, sizeof *b);
    b->p.ops = &bp_ops;
}

static coil_http_agent_stats stats(T *t)
{
    coil_http_agent_stats st;
    coil_http_agent_get_stats(t->a, &st);
    return st;
}

/* Request, let it reach the server, return the server side. */
static srv *req_on(T *t, res *x, const char *method, const char *url, char *head,
                   size_t size)
{
    res_watch(coil_http_agent_request(t->a, method, url, NULL, NULL), x);
    pump(t);
    CU_ASSERT_FATAL(t->nsrv > 0);
    for (int i = t->nsrv - 1; i >= 0; i--)
        if (t->srvs[i]->len && srv_take_head(t->srvs[i], head, size))
            return t->srvs[i];
    CU_FAIL_FATAL("no request reached the server");
    return NULL;
}

/* GET `url` and let the server answer it with `response`; returns the
 * server side. */
static srv *get_answered(T *t, res *x, const char *url, const char *response)
{
    char head[4096];
    srv *s = req_on(t, x, "GET", url, head, sizeof head);
    srv_answer(s, response);
    return s;
}

/* ======================================================================= */
/* ---- memory pair cases ------------------------------------------------- */

static void test_get_basic(void)
{
    T t;
    t_start(&t, NULL);
    res x;
    char head[4096];
    srv *s = req_on(&t, &x, "GET", "http://example.test/x?y=1", head, sizeof head);
    COIL_TEST_ASSERT_HAS(head, "GET /x?y=1 HTTP/1.1\r\n");
    COIL_TEST_ASSERT_HAS(head, "\r\nHost: example.test\r\n");
    COIL_TEST_ASSERT_HAS(head, "\r\nUser-Agent: coil/" COIL_VERSION_STRING "\r\n");
    CU_ASSERT(strstr(head, "Content-Length") == NULL);
    CU_ASSERT_EQUAL(x.fired, 0);
    srv_send(
        s, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhel");
    pump(&t);
    coil_http_response *resp = res_resp(&x);
    CU_ASSERT_EQUAL(coil_http_response_status(resp), 200);
    CU_ASSERT_STRING_EQUAL(coil_http_response_reason(resp), "OK");
    CU_ASSERT_EQUAL(coil_http_response_version(resp), 11);
    CU_ASSERT_STRING_EQUAL(coil_http_response_header(resp, "content-type"), "text/plain");
    CU_ASSERT_EQUAL(coil_http_response_header_count(resp), 2);
    CU_ASSERT_EQUAL(coil_http_response_length(resp), 5);
    CU_ASSERT_STRING_EQUAL(coil_http_response_url(resp), "http://example.test/x?y=1");
    const char *n, *v;
    CU_ASSERT_EQUAL(coil_http_response_header_at(resp, 1, &n, &v), 0);
    CU_ASSERT_STRING_EQUAL(n, "Content-Length");
    CU_ASSERT_EQUAL(coil_http_response_header_at(resp, 2, &n, &v), COIL_EINVAL);
    res body;
    res_watch(coil_http_response_read_body(resp, 0), &body);
    CU_ASSERT_EQUAL(body.fired, 0);
    srv_answer(s, "lo");
    CU_ASSERT_EQUAL_FATAL(body.fired, 1);
    coil_http_bytes *b = body.value;
    CU_ASSERT_FATAL(b != NULL);
    CU_ASSERT_EQUAL(b->len, 5);
    CU_ASSERT_STRING_EQUAL(b->data, "hello");
    coil_http_agent_stats st = stats(&t);
    CU_ASSERT_EQUAL(st.requests, 1);
    CU_ASSERT_EQUAL(st.connections, 1);
    CU_ASSERT_EQUAL(st.idle, 1);
    CU_ASSERT_EQUAL(st.active, 0);
    res_clear(&body);
    res_clear(&x);
    t_end(&t);
}

static void test_keepalive_reuse(void)
{
    T t;
    t_start(&t, NULL);
    char head[4096];
    for (int i = 0; i < 5; i++) {
        res x, body;
        char url[64];
        snprintf(url, sizeof url, "http://example.test/%d", i);
        get_answered(&t, &x, url, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        res_watch(coil_http_response_read_body(res_resp(&x), 0), &body);
        CU_ASSERT_EQUAL(body.fired, 1);
        res_clear(&body);
        res_clear(&x);
    }
    coil_http_agent_stats st = stats(&t);
    CU_ASSERT_EQUAL(st.connections, 1);
    CU_ASSERT_EQUAL(st.reused, 4);
    CU_ASSERT_EQUAL(t.nsrv, 1);
    /* Connection: close and HTTP/1.0 are not kept. */
    res x;
    srv *s =
        get_answered(&t, &x, "http://example.test/c",
                     "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    res_resp(&x);
    CU_ASSERT_EQUAL(stats(&t).idle, 0);
    CU_ASSERT(s->closed);
    res_clear(&x);
    s = req_on(&t, &x, "GET", "http://example.test/d", head, sizeof head);
    CU_ASSERT_EQUAL(t.nsrv, 2);
    srv_answer(s, "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    res_resp(&x);
    CU_ASSERT_EQUAL(stats(&t).idle, 0);
    res_clear(&x);
    t_end(&t);
}

static void test_per_host_limit(void)
{
    T t;
    coil_http_agent_options o = {0};
    o.max_per_host = 2;
    t_start(&t, &o);
    res x[10];
    for (int i = 0; i < 10; i++) {
        char url[64];
        snprintf(url, sizeof url, "http://example.test/%d", i);
        res_watch(coil_http_agent_request(t.a, "GET", url, NULL, NULL), &x[i]);
    }
    pump(&t);
    CU_ASSERT_EQUAL(t.nsrv, 2);
    coil_http_agent_stats st = stats(&t);
    CU_ASSERT_EQUAL(st.waiting, 8);
    CU_ASSERT_EQUAL(st.active, 2);
    /* Answer what arrives until every request is done; FIFO order. */
    int order[10], n = 0;
    for (int round = 0; round < 20 && n < 10; round++) {
        for (int i = 0; i < t.nsrv; i++) {
            char head[4096];
            while (srv_take_head(t.srvs[i], head, sizeof head)) {
                int k = -1;
                sscanf(head, "GET /%d", &k);
                order[n++] = k;
                srv_send(t.srvs[i], "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx");
            }
        }
        pump(&t);
    }
    CU_ASSERT_EQUAL(n, 10);
    for (int i = 0; i < 10; i++) {
        CU_ASSERT_EQUAL(order[i], i);
        coil_http_response *resp = res_resp(&x[i]);
        CU_ASSERT_EQUAL(coil_http_response_status(resp), 200);
        res_clear(&x[i]);
    }
    pump(&t);
    CU_ASSERT(t.max_open <= 2);
    CU_ASSERT_EQUAL(t.nsrv, 2);
    st = stats(&t);
    CU_ASSERT_EQUAL(st.connections, 2);
    CU_ASSERT_EQUAL(st.reused, 8);
    CU_ASSERT_EQUAL(st.waiting, 0);
    t_end(&t);
}

static void test_idle_closed_by_server(void)
{
    T t;
    t_start(&t, NULL);
    res x;
    char head[4096];
    srv *s = get_answered(&t, &x, "http://example.test/",
                          "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    res_clear(&x);
    CU_ASSERT_EQUAL(stats(&t).idle, 1);
    srv_close(s);
    pump(&t);
    CU_ASSERT_EQUAL(stats(&t).idle, 0);
    s = req_on(&t, &x, "GET", "http://example.test/2", head, sizeof head);
    CU_ASSERT_EQUAL(t.nsrv, 2);
    CU_ASSERT_EQUAL(stats(&t).reused, 0);
    srv_answer(s, "HTTP/1.1 204 No Content\r\n\r\n");
    CU_ASSERT_EQUAL(coil_http_response_status(res_resp(&x)), 204);
    res_clear(&x);
    /* The pool timeout drops an idle connection. */
    CU_ASSERT_EQUAL(stats(&t).idle, 1);
    coil_reactor_advance(t.r, 61);
    pump(&t);
    CU_ASSERT_EQUAL(stats(&t).idle, 0);
    CU_ASSERT(s->closed);
    t_end(&t);
}

static void test_retry_stale(void)
{
    T t;
    t_start(&t, NULL);
    res x;
    char head[4096];
    srv *s = get_answered(&t, &x, "http://example.test/",
                          "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    res_clear(&x);
    /* The server drops the connection as the next request arrives. */
    res_watch(
        coil_http_agent_request(t.a, "GET", "http://example.test/again", NULL, NULL), &x);
    srv_close(s);
    pump(&t);
    CU_ASSERT_EQUAL(x.fired, 0);
    CU_ASSERT_EQUAL_FATAL(t.nsrv, 2);
    srv *s2 = t.srvs[1];
    CU_ASSERT(srv_take_head(s2, head, sizeof head));
    COIL_TEST_ASSERT_HAS(head, "GET /again ");
    srv_answer(s2, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    CU_ASSERT_EQUAL(coil_http_response_status(res_resp(&x)), 200);
    res_clear(&x);
    /* POST is not retried. */
    res_watch(coil_http_agent_request(t.a, "POST", "http://example.test/p", NULL,
                                      coil_http_body_from_bytes("abc", 3)),
              &x);
    srv_close(s2);
    pump(&t);
    CU_ASSERT_EQUAL(x.fired, 1);
    ASSERT_FAILED(x, COIL_ECONNLOST,
                  "connection to example.test:80 closed before the response");
    res_clear(&x);
    t_end(&t);
}

static void test_chunked_and_close(void)
{
    T t;
    t_start(&t, NULL);
    res x, body;
    srv *s = get_answered(
        &t, &x, "http://example.test/c",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    coil_http_response *resp = res_resp(&x);
    CU_ASSERT_EQUAL(coil_http_response_length(resp), -1);
    res_watch(coil_http_response_read_body(resp, 0), &body);
    srv_send(s, "6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n");
    pump(&t);
    CU_ASSERT_EQUAL_FATAL(body.fired, 1);
    CU_ASSERT_STRING_EQUAL(((coil_http_bytes *)body.value)->data, "hello world");
    CU_ASSERT_EQUAL(stats(&t).idle, 1);
    res_clear(&body);
    res_clear(&x);
    /* A body that ends with the connection. */
    s = get_answered(&t, &x, "http://example.test/close",
                     "HTTP/1.1 200 OK\r\n\r\nuntil the end");
    resp = res_resp(&x);
    res_watch(coil_http_response_read_body(resp, 0), &body);
    pump(&t);
    CU_ASSERT_EQUAL(body.fired, 0);
    srv_close(s);
    pump(&t);
    CU_ASSERT_EQUAL_FATAL(body.fired, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body.value);
    CU_ASSERT_STRING_EQUAL(((coil_http_bytes *)body.value)->data, "until the end");
    CU_ASSERT_EQUAL(stats(&t).idle, 0);
    res_clear(&body);
    res_clear(&x);
    t_end(&t);
}

static void test_interim_and_head(void)
{
    T t;
    t_start(&t, NULL);
    res x, body;
    char head[4096];
    srv *s = req_on(&t, &x, "GET", "http://example.test/", head, sizeof head);
    srv_send(
        s, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n");
    pump(&t);
    CU_ASSERT_EQUAL(x.fired, 0);
    srv_answer(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
    coil_http_response *resp = res_resp(&x);
    CU_ASSERT_EQUAL(coil_http_response_status(resp), 200);
    CU_ASSERT_PTR_NULL(coil_http_response_header(resp, "Link"));
    res_clear(&x); /* freed unread: drained, connection kept */
    pump(&t);
    CU_ASSERT_EQUAL(stats(&t).idle, 1);
    /* HEAD: the length is announced, no body follows. */
    s = req_on(&t, &x, "HEAD", "http://example.test/h", head, sizeof head);
    COIL_TEST_ASSERT_HAS(head, "HEAD /h HTTP/1.1\r\n");
    srv_answer(s, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
    resp = res_resp(&x);
    CU_ASSERT_EQUAL(coil_http_response_length(resp), 100);
    res_watch(coil_http_response_read_body(resp, 0), &body);
    pump(&t);
    CU_ASSERT_EQUAL_FATAL(body.fired, 1);
    CU_ASSERT_EQUAL(((coil_http_bytes *)body.value)->len, 0);
    CU_ASSERT_EQUAL(stats(&t).idle, 1);
    CU_ASSERT_EQUAL(t.nsrv, 1);
    res_clear(&body);
    res_clear(&x);
    /* 101 is refused. */
    s = req_on(&t, &x, "GET", "http://example.test/up", head, sizeof head);
    srv_send(
        s,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n");
    pump(&t);
    ASSERT_FAILED(x, COIL_EPROTO, "bad response from example.test:80: 101");
    res_clear(&x);
    t_end(&t);
}

/* A producer of unknown length the test drives. */
typedef struct manual_prod {
    coil_http_body_producer base;
    coil_http_body_consumer *c;
    int started, paused, stopped, destroyed;
} manual_prod;

static void mp_start(coil_http_body_producer *p, coil_http_body_consumer *c)
{
    manual_prod *m = (manual_prod *)p;
    m->c = c;
    m->started++;
}
static void mp_pause(coil_http_body_producer *p)
{
    ((manual_prod *)p)->paused++;
}
static void mp_resume(coil_http_body_producer *p)
{
    ((manual_prod *)p)->paused = 0;
}
static void mp_stop(coil_http_body_producer *p)
{
    ((manual_prod *)p)->stopped++;
}
static void mp_destroy(coil_http_body_producer *p)
{
    ((manual_prod *)p)->destroyed++;
}

static const coil_http_body_producer_ops mp_ops = {
    .start = mp_start,
    .pause = mp_pause,
    .resume = mp_resume,
    .stop = mp_stop,
    .destroy = mp_destroy,
};

static void test_uploads(void)
{
    T t;
    t_start(&t, NULL);
    res x;
    char head[4096];
    manual_prod m = {0};
    m.base.ops = &mp_ops;
    m.base.length = -1;
    res_watch(
        coil_http_agent_request(t.a, "PUT", "http://example.test/up", NULL, &m.base), &x);
    pump(&t);
    CU_ASSERT_EQUAL_FATAL(m.started, 1);
    srv *s = t.srvs[0];
    CU_ASSERT(srv_take_head(s, head, sizeof head));
    COIL_TEST_ASSERT_HAS(head, "PUT /up HTTP/1.1\r\n");
    COIL_TEST_ASSERT_HAS(head, "\r\nTransfer-Encoding: chunked\r\n");
    CU_ASSERT_EQUAL(coil_http_body_write(m.c, "abc", 3), 0);
    pump(&t);
    CU_ASSERT_EQUAL(coil_http_body_write(m.c, "defghijklmnopqrst", 17), 0);
    CU_ASSERT_EQUAL(coil_http_body_done(m.c, NULL), 0);
    CU_ASSERT_EQUAL(coil_http_body_write(m.c, "late", 4), COIL_ECLOSED);
    pump(&t);
    CU_ASSERT_STRING_EQUAL(s->in, "3\r\nabc\r\n11\r\ndefghijklmnopqrst\r\n0\r\n\r\n");
    s->len = 0;
    s->in[0] = 0;
    srv_answer(s, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    CU_ASSERT_EQUAL(coil_http_response_status(res_resp(&x)), 201);
    res_clear(&x);
    CU_ASSERT_EQUAL(m.destroyed, 1);
    CU_ASSERT_EQUAL(m.stopped, 0);
    /* Content-Length from bytes; 0 for an empty POST. */
    coil_http_headers *h = coil_http_headers_new();
    CU_ASSERT_EQUAL(coil_http_headers_add(h, "Content-Type", "text/plain"), 0);
    res_watch(coil_http_agent_request(t.a, "POST", "http://example.test/p", h,
                                      coil_http_body_from_bytes("hello", 5)),
              &x);
    pump(&t);
    CU_ASSERT(srv_take_head(s, head, sizeof head));
    COIL_TEST_ASSERT_HAS(head, "POST /p HTTP/1.1\r\n");
    COIL_TEST_ASSERT_HAS(head, "\r\nContent-Length: 5\r\n");
    COIL_TEST_ASSERT_HAS(head, "\r\nContent-Type: text/plain\r\n");
    CU_ASSERT_STRING_EQUAL(s->in, "hello");
    s->len = 0;
    srv_answer(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    res_resp(&x);
    res_clear(&x);
    res_watch(coil_http_agent_request(t.a, "POST", "http://example.test/e", NULL, NULL),
              &x);
    pump(&t);
    CU_ASSERT(srv_take_head(s, head, sizeof head));
    COIL_TEST_ASSERT_HAS(head, "\r\nContent-Length: 0\r\n");
    srv_answer(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    res_resp(&x);
    res_clear(&x);
    /* The user may not frame the body. */
    CU_ASSERT_EQUAL(coil_http_headers_add(h, "Content-Length", "3"), 0);
    res_watch(coil_http_agent_request(t.a, "POST", "http://example.test/p", h, NULL), &x);
    ASSERT_FAILED(x, COIL_EINVAL, "request header 'Content-Length' is refused");
    res_clear(&x);
    coil_http_headers_free(h);
    /* A producer that lies about its length. */
    manual_prod m2 = {0};
    m2.base.ops = &mp_ops;
    m2.base.length = 10;
    res_watch(
        coil_http_agent_request(t.a, "PUT", "http://example.test/short", NULL, &m2.base),
        &x);
    pump(&t);
    CU_ASSERT_FATAL(m2.started == 1);
    CU_ASSERT_EQUAL(coil_http_body_write(m2.c, "abc", 3), 0);
    CU_ASSERT_EQUAL(coil_http_body_done(m2.c, NULL), COIL_EINVAL);
    CU_ASSERT(x.f != NULL);
    COIL_TEST_ASSERT_HAS(x.msg, "ended after 3 of its 10 bytes");
    res_clear(&x);
    CU_ASSERT_EQUAL(m2.destroyed, 0); /* from the loop: it may be in a call of its own */
    pump(&t);
    CU_ASSERT_EQUAL(m2.destroyed, 1);
    t_end(&t);
}

static void test_upload_flow_control(void)
{
    T t;
    t_start(&t, NULL);
    res x;
    char head[4096];
    manual_prod m = {0};
    m.base.ops = &mp_ops;
    m.base.length = -1;
    res_watch(
        coil_http_agent_request(t.a, "POST", "http://example.test/big", NULL, &m.base),
        &x);
    pump(&t);
    CU_ASSERT_FATAL(m.started == 1);
    static char piece[32768];
    memset(piece, 'z', sizeof piece);
    srv *s = t.srvs[0];
    /* The server stops reading: the producer is paused. */
    coil_transport_pause_reading(s->p.transport);
    for (int i = 0; i < 40 && !m.paused; i++)
        CU_ASSERT_EQUAL(coil_http_body_write(m.c, piece, sizeof piece), 0);
    CU_ASSERT(m.paused > 0);
    coil_transport_resume_reading(s->p.transport);
    pump(&t);
    CU_ASSERT_EQUAL(m.paused, 0);
    CU_ASSERT_EQUAL(coil_http_body_done(m.c, NULL), 0);
    pump(&t);
    CU_ASSERT(srv_take_head(s, head, sizeof head));
    srv_answer(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    res_resp(&x);
    res_clear(&x);
    t_end(&t);
}

static void test_deliver_body_pause(void)
{
    T t;
    t_start(&t, NULL);
    res x;
    srv *s = get_answered(&t, &x, "http://example.test/b",
                          "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nfirst");
    coil_http_response *resp = res_resp(&x);
    bodyp *b = malloc(sizeof *b);
    bp_init(b);
    b->pause_on_data = 1;
    CU_ASSERT_EQUAL(coil_http_response_deliver_body(resp, &b->p), 0);
    CU_ASSERT_EQUAL(b->made, 1);
    CU_ASSERT_STRING_EQUAL(b->kind, "http-body");
    CU_ASSERT_EQUAL(b->len, 5);
    /* paused: more arrives but is held */
    srv_answer(s, "second!");
    CU_ASSERT_EQUAL(b->len, 5);
    CU_ASSERT_EQUAL(b->lost, 0);
    b->pause_on_data = 0;
    CU_ASSERT_EQUAL(coil_transport_write(b->p.transport, "x", 1), COIL_ENOTSUP);
    coil_transport_resume_reading(b->p.transport);
    pump(&t);
    CU_ASSERT_EQUAL(b->len, 12);
    CU_ASSERT(memcmp(b->data, "firstsecond!", 12) == 0);
    CU_ASSERT_EQUAL(b->lost, 1);
    CU_ASSERT_EQUAL(b->lost_code, COIL_ECLOSED);
    CU_ASSERT_EQUAL(b->destroyed, 1);
    /* a second delivery is refused */
    bodyp *b2 = malloc(sizeof *b2);
    bp_init(b2);
    CU_ASSERT_EQUAL(coil_http_response_deliver_body(resp, &b2->p), COIL_ESTATE);
    CU_ASSERT_EQUAL(b2->destroyed, 1);
    res_clear(&x);
    /* a body cut short */
    s = get_answered(&t, &x, "http://example.test/cut",
                     "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    bp_init(b);
    CU_ASSERT_EQUAL(coil_http_response_deliver_body(res_resp(&x), &b->p), 0);
    srv_close(s);
    pump(&t);
    CU_ASSERT_EQUAL(b->len, 10);
    CU_ASSERT_EQUAL(b->lost_code, COIL_ECONNLOST);
    COIL_TEST_ASSERT_HAS(
        b->lost_msg, "response body from http://example.test/cut ended after 10 of 100 "
                     "bytes");
    res_clear(&x);
    /* the reader aborts */
    s = get_answered(&t, &x, "http://example.test/ab",
                     "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    bp_init(b);
    CU_ASSERT_EQUAL(coil_http_response_deliver_body(res_resp(&x), &b->p), 0);
    coil_transport_abort_connection(b->p.transport);
    pump(&t);
    CU_ASSERT_EQUAL(b->lost, 1);
    CU_ASSERT_EQUAL(b->lost_code, COIL_EABORTED);
    CU_ASSERT(s->closed);
    res_clear(&x);
    free(b);
    free(b2);
    t_end(&t);
}

static void test_body_held_and_limit(void)
{
    T t;
    t_start(&t, NULL);
    res x, body;
    char head[4096];
    /* A large body before deliver_body: the connection pauses. */
    srv *s = req_on(&t, &x, "GET", "http://example.test/big", head, sizeof head);
    size_t total = 1024 * 1024;
    char *big = malloc(total + 200);
    int n = sprintf(big, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", total);
    memset(big + n, 'b', total);
    big[n + total] = 0;
    srv_answer(s, big);
    coil_http_response *resp = res_resp(&x);
    /* the agent holds 64 KiB and a read at most: the rest waits at the
     * server */
    coil_transport_info info;
    CU_ASSERT(coil_transport_info_get(s->p.transport, &info) == 0);
    CU_ASSERT(info.write_queued + info.unacked > total / 2);
    res_watch(coil_http_response_read_body(resp, 0), &body);
    pump(&t);
    CU_ASSERT_EQUAL_FATAL(body.fired, 1);
    CU_ASSERT_EQUAL(((coil_http_bytes *)body.value)->len, total);
    CU_ASSERT(coil_transport_info_get(s->p.transport, &info) == 0);
    CU_ASSERT_EQUAL(info.write_queued + info.unacked, 0);
    res_clear(&body);
    res_clear(&x);
    /* read_body with a limit */
    s = get_answered(&t, &x, "http://example.test/lim",
                     "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789");
    res_watch(coil_http_response_read_body(res_resp(&x), 4), &body);
    pump(&t);
    ASSERT_FAILED(body, COIL_EMSGSIZE, "larger than the limit of 4 bytes");
    res_clear(&body);
    res_clear(&x);
    free(big);
    t_end(&t);
}

static void test_redirects(void)
{
    T t;
    t_start(&t, NULL);
    res x;
    char head[4096];
    /* off: the 3xx comes back as it is */
    srv *s =
        get_answered(&t, &x, "http://example.test/old",
                     "HTTP/1.1 302 Found\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n");
    CU_ASSERT_EQUAL(coil_http_response_status(res_resp(&x)), 302);
    CU_ASSERT_STRING_EQUAL(coil_http_response_header(res_resp(&x), "Location"), "/new");
    res_clear(&x);
    t_end(&t);

    coil_http_agent_options o = {0};
    o.follow_redirects = 1;
    o.max_redirects = 3;
    t_start(&t, &o);
    s = get_answered(
        &t, &x, "http://example.test/a",
        "HTTP/1.1 301 Moved\r\nLocation: /b\r\nContent-Length: 3\r\n\r\nabc");
    CU_ASSERT(srv_take_head(s, head, sizeof head));
    COIL_TEST_ASSERT_HAS(head, "GET /b HTTP/1.1\r\n");
    srv_answer(s, "HTTP/1.1 302 Found\r\nLocation: http://other.test/c\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n2\r\nzz\r\n0\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(t.nsrv, 2);
    srv *s2 = t.srvs[1];
    CU_ASSERT(srv_take_head(s2, head, sizeof head));
    COIL_TEST_ASSERT_HAS(head, "GET /c HTTP/1.1\r\nHost: other.test\r\n");
    srv_answer(s2, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone");
    coil_http_response *resp = res_resp(&x);
    CU_ASSERT_EQUAL(coil_http_response_status(resp), 200);
    CU_ASSERT_STRING_EQUAL(coil_http_response_url(resp), "http://other.test/c");
    res_clear(&x);
    CU_ASSERT_EQUAL(stats(&t).idle, 2);
    /* 303 after a POST: GET without the body */
    res_watch(coil_http_agent_request(t.a, "POST", "http://example.test/form", NULL,
                                      coil_http_body_from_bytes("a=1", 3)),
              &x);
    pump(&t);
    CU_ASSERT(srv_take_head(s, head, sizeof head));
    CU_ASSERT_STRING_EQUAL(s->in, "a=1");
    s->len = 0;
    srv_answer(s,
               "HTTP/1.1 303 See Other\r\nLocation: /done\r\nContent-Length: 0\r\n\r\n");
    CU_ASSERT(srv_take_head(s, head, sizeof head));
    COIL_TEST_ASSERT_HAS(head, "GET /done HTTP/1.1\r\n");
    CU_ASSERT(strstr(head, "Content-Length") == NULL);
    CU_ASSERT_EQUAL(s->len, 0);
    srv_answer(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    CU_ASSERT_EQUAL(coil_http_response_status(res_resp(&x)), 200);
    res_clear(&x);
    /* 307 keeps the method and the body */
    res_watch(coil_http_agent_request(t.a, "POST", "http://example.test/keep", NULL,
                                      coil_http_body_from_bytes("b=2", 3)),
              &x);
    pump(&t);
    CU_ASSERT(srv_take_head(s, head, sizeof head));
    s->len = 0;
    srv_answer(s, "HTTP/1.1 307 Temporary Redirect\r\nLocation: /kept\r\nContent-Length: "
                  "0\r\n\r\n");
    CU_ASSERT(srv_take_head(s, head, sizeof head));
    COIL_TEST_ASSERT_HAS(head, "POST /kept HTTP/1.1\r\n");
    COIL_TEST_ASSERT_HAS(head, "Content-Length: 3\r\n");
    CU_ASSERT_STRING_EQUAL(s->in, "b=2");
    s->len = 0;
    srv_answer(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    res_resp(&x);
    res_clear(&x);
    /* a loop past the limit */
    res_watch(coil_http_agent_request(t.a, "GET", "http://example.test/loop", NULL, NULL),
              &x);
    for (int i = 0; i < 6 && !x.fired; i++) {
        pump(&t);
        if (srv_take_head(s, head, sizeof head))
            srv_send(
                s, "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n");
    }
    CU_ASSERT(x.f != NULL);
    COIL_TEST_ASSERT_HAS(x.msg, "too many redirects: more than 3");
    res_clear(&x);
    /* https to http is refused */
    res_watch(coil_http_agent_request(t.a, "GET", "https://secure.test/", NULL, NULL),
              &x);
    pump(&t);
    srv *s3 = t.srvs[t.nsrv - 1];
    CU_ASSERT(srv_take_head(s3, head, sizeof head));
    srv_answer(s3,
               "HTTP/1.1 302 Found\r\nLocation: http://secure.test/\r\nContent-Length: "
               "0\r\n\r\n");
    ASSERT_FAILED(x, COIL_ENOTSUP, "refused: it leaves https");
    res_clear(&x);
    t_end(&t);
}

static void test_timeouts(void)
{
    T t;
    coil_http_agent_options o = {0};
    o.response_timeout = 5;
    o.idle_timeout = 7;
    o.connect_timeout = 3;
    t_start(&t, &o);
    res x, body;
    char head[4096];
    srv *s = req_on(&t, &x, "GET", "http://example.test/slow", head, sizeof head);
    coil_reactor_advance(t.r, 4);
    CU_ASSERT_EQUAL(x.fired, 0);
    coil_reactor_advance(t.r, 2);
    ASSERT_FAILED(x, COIL_ETIMEDOUT, "no response from example.test:80 within 5 s");
    pump(&t);
    CU_ASSERT(s->closed);
    res_clear(&x);
    /* idle body */
    s = get_answered(&t, &x, "http://example.test/idle",
                     "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    res_watch(coil_http_response_read_body(res_resp(&x), 0), &body);
    coil_reactor_advance(t.r, 6);
    srv_answer(s, "de");
    coil_reactor_advance(t.r, 6);
    CU_ASSERT_EQUAL(body.fired, 0);
    coil_reactor_advance(t.r, 2);
    CU_ASSERT(body.f && coil_failure_check(body.f, COIL_DOMAIN_COIL, COIL_ETIMEDOUT));
    ASSERT_FAILED(body, COIL_ECONNLOST, "ended after 5 of 10 bytes");
    COIL_TEST_ASSERT_HAS(body.msg, "no data from example.test:80 for 7 s");
    res_clear(&body);
    res_clear(&x);
    /* connect */
    t.never = 1;
    res_watch(
        coil_http_agent_request(t.a, "GET", "http://nowhere.test:8080/", NULL, NULL), &x);
    coil_reactor_advance(t.r, 2);
    CU_ASSERT_EQUAL(x.fired, 0);
    coil_reactor_advance(t.r, 2);
    ASSERT_FAILED(x, COIL_ETIMEDOUT,
                  "cannot connect to nowhere.test:8080: no connection within 3 s");
    res_clear(&x);
    t_end(&t);
}

static void expect_bad(const char *response, const char *needle)
{
    T t;
    t_start(&t, NULL);
    res x;
    srv *s = get_answered(&t, &x, "http://127.0.0.1:8080/", response);
    ASSERT_FAILED(x, COIL_EPROTO, "bad response from 127.0.0.1:8080: ");
    COIL_TEST_ASSERT_HAS(x.msg, needle);
    pump(&t);
    CU_ASSERT(s->closed);
    res_clear(&x);
    t_end(&t);
}

static void test_bad_responses(void)
{
    expect_bad("garbage\r\n\r\n", "");
    expect_bad(
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", "");
    /* a truncated or broken chunked body */
    T t;
    t_start(&t, NULL);
    res x, body;
    srv *s = get_answered(
        &t, &x, "http://127.0.0.1:8080/t",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly part");
    res_watch(coil_http_response_read_body(res_resp(&x), 0), &body);
    srv_close(s);
    pump(&t);
    ASSERT_FAILED(body, COIL_ECONNLOST,
                  "response body from http://127.0.0.1:8080/t ended after 9 "
                  "bytes");
    res_clear(&body);
    res_clear(&x);
    s = get_answered(&t, &x, "http://127.0.0.1:8080/z",
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    res_watch(coil_http_response_read_body(res_resp(&x), 0), &body);
    pump(&t);
    ASSERT_FAILED(body, COIL_EPROTO, "bad response from 127.0.0.1:8080");
    res_clear(&body);
    res_clear(&x);
    /* the server closes before answering */
    s = get_answered(&t, &x, "http://127.0.0.1:8080/n", "HTTP/1.1 200 O");
    srv_close(s);
    pump(&t);
    ASSERT_FAILED(x, COIL_ECONNLOST, "closed in the middle of the response");
    res_clear(&x);
    t_end(&t);
}

static void test_get_and_download(void)
{
    T t;
    t_start(&t, NULL);
    res x;
    char head[4096];
    res_watch(coil_http_get(t.a, "http://example.test/page"), &x);
    pump(&t);
    srv *s = t.srvs[0];
    CU_ASSERT(srv_take_head(s, head, sizeof head));
    srv_answer(s, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\npage");
    CU_ASSERT_EQUAL_FATAL(x.fired, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x.value);
    CU_ASSERT_STRING_EQUAL(((coil_http_bytes *)x.value)->data, "page");
    res_clear(&x);
    res_watch(coil_http_get(t.a, "http://example.test/missing"), &x);
    pump(&t);
    CU_ASSERT(srv_take_head(s, head, sizeof head));
    srv_answer(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot here!");
    CU_ASSERT_FATAL(x.f != NULL);
    CU_ASSERT_EQUAL(coil_failure_domain(x.f), COIL_DOMAIN_HTTP);
    CU_ASSERT_EQUAL(coil_failure_code(x.f), 404);
    CU_ASSERT_STRING_EQUAL(coil_failure_message(x.f),
                           "GET http://example.test/missing: 404 Not Found");
    res_clear(&x);
    pump(&t);
    CU_ASSERT_EQUAL(stats(&t).idle, 1); /* the small error body was drained */
    /* download */
    char path[256], part[300];
    CU_ASSERT_FATAL(coil_test_temp_file(path, sizeof path, "http-dl") == 0);
    unlink(path);
    snprintf(part, sizeof part, "%s.part", path);
    res_watch(coil_http_download(t.a, "http://example.test/file", path), &x);
    pump(&t);
    CU_ASSERT(srv_take_head(s, head, sizeof head));
    srv_answer(s, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nfile ");
    CU_ASSERT(access(part, F_OK) == 0);
    CU_ASSERT(access(path, F_OK) != 0);
    srv_answer(s, "bytes!");
    CU_ASSERT_EQUAL(x.fired, 1);
    CU_ASSERT_PTR_NULL(x.f);
    char got[64] = "";
    FILE *fp = fopen(path, "r");
    CU_ASSERT_FATAL(fp != NULL);
    CU_ASSERT_EQUAL(fread(got, 1, sizeof got - 1, fp), 11);
    fclose(fp);
    CU_ASSERT_STRING_EQUAL(got, "file bytes!");
    CU_ASSERT(access(part, F_OK) != 0);
    unlink(path);
    res_clear(&x);
    /* a download that breaks leaves nothing */
    res_watch(coil_http_download(t.a, "http://example.test/file", path), &x);
    pump(&t);
    CU_ASSERT(srv_take_head(s, head, sizeof head));
    srv_answer(s, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nfile ");
    CU_ASSERT(access(part, F_OK) == 0);
    srv_close(s);
    pump(&t);
    ASSERT_FAILED(x, COIL_ECONNLOST, "ended after 5 of 11 bytes");
    CU_ASSERT(access(part, F_OK) != 0);
    CU_ASSERT(access(path, F_OK) != 0);
    res_clear(&x);
    /* a 404 download makes no file */
    res_watch(coil_http_download(t.a, "http://example.test/none", path), &x);
    pump(&t);
    s = t.srvs[t.nsrv - 1];
    CU_ASSERT(srv_take_head(s, head, sizeof head));
    srv_answer(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    CU_ASSERT(x.f && coil_failure_domain(x.f) == COIL_DOMAIN_HTTP);
    CU_ASSERT(access(part, F_OK) != 0);
    res_clear(&x);
    t_end(&t);
}

static void test_cancel(void)
{
    T t;
    t_start(&t, NULL);
    res x;
    char head[4096];
    coil_deferred *d =
        coil_http_agent_request(t.a, "GET", "http://example.test/c", NULL, NULL);
    coil_deferred_ref(d);
    res_watch(d, &x);
    pump(&t);
    srv *s = t.srvs[0];
    CU_ASSERT(srv_take_head(s, head, sizeof head));
    coil_deferred_cancel(d);
    coil_deferred_unref(d);
    CU_ASSERT(x.f && coil_failure_check(x.f, COIL_DOMAIN_COIL, COIL_ECANCELLED));
    pump(&t);
    CU_ASSERT(s->closed);
    CU_ASSERT_EQUAL(stats(&t).active, 0);
    res_clear(&x);
    /* cancelled while waiting in line */
    t_end(&t);
    coil_http_agent_options o = {0};
    o.max_per_host = 1;
    t_start(&t, &o);
    res y;
    res_watch(coil_http_agent_request(t.a, "GET", "http://example.test/1", NULL, NULL),
              &x);
    d = coil_http_agent_request(t.a, "GET", "http://example.test/2", NULL, NULL);
    coil_deferred_ref(d);
    res_watch(d, &y);
    CU_ASSERT_EQUAL(stats(&t).waiting, 1);
    coil_deferred_cancel(d);
    coil_deferred_unref(d);
    CU_ASSERT_EQUAL(stats(&t).waiting, 0);
    CU_ASSERT(y.f && coil_failure_check(y.f, COIL_DOMAIN_COIL, COIL_ECANCELLED));
    pump(&t);
    s = t.srvs[0];
    CU_ASSERT(srv_take_head(s, head, sizeof head));
    srv_answer(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    res_resp(&x);
    res_clear(&x);
    res_clear(&y);
    t_end(&t);
}

static void test_agent_free_in_flight(void)
{
    T t;
    coil_http_agent_options o = {0};
    o.max_per_host = 1;
    t_start(&t, &o);
    res x, y, z;
    /* one response with a body coming, one request sent, one waiting */
    srv *s = get_answered(&t, &x, "http://example.test/body",
                          "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome");
    bodyp *b = malloc(sizeof *b);
    bp_init(b);
    CU_ASSERT_EQUAL(coil_http_response_deliver_body(res_resp(&x), &b->p), 0);
    res_watch(coil_http_agent_request(t.a, "GET", "http://other.test/sent", NULL, NULL),
              &y);
    res_watch(coil_http_agent_request(t.a, "GET", "http://example.test/wait", NULL, NULL),
              &z);
    pump(&t);
    CU_ASSERT_EQUAL(stats(&t).waiting, 1);
    coil_http_agent_free(t.a);
    t.a = NULL;
    CU_ASSERT(y.f && coil_failure_check(y.f, COIL_DOMAIN_COIL, COIL_ECANCELLED));
    CU_ASSERT(z.f && coil_failure_check(z.f, COIL_DOMAIN_COIL, COIL_ECANCELLED));
    pump(&t);
    CU_ASSERT_EQUAL(b->lost, 1);
    CU_ASSERT_EQUAL(b->lost_code, COIL_ECONNLOST);
    CU_ASSERT(s->closed);
    /* the response outlives the agent */
    CU_ASSERT_EQUAL(coil_http_response_status(res_resp(&x)), 200);
    res_clear(&x);
    res_clear(&y);
    res_clear(&z);
    free(b);
    t_end(&t);
}

static void test_bad_urls(void)
{
    T t;
    t_start(&t, NULL);
    static const char *const bad[] = {"ftp://example.test/",
                                      "http://user:pw@example.test/", "not a url",
                                      "http://", "http://exa mple.test/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        res x;
        res_watch(coil_http_agent_request(t.a, "GET", bad[i], NULL, NULL), &x);
        CU_ASSERT_EQUAL(x.fired, 1);
        CU_ASSERT(x.f && coil_failure_check(x.f, COIL_DOMAIN_COIL, COIL_EINVAL));
        if (!x.f)
            fprintf(stderr, "\n    URL '%s' was taken\n", bad[i]);
        res_clear(&x);
    }
    res x;
    res_watch(coil_http_agent_request(t.a, "GE T", "http://example.test/", NULL, NULL),
              &x);
    COIL_TEST_ASSERT_HAS(x.msg, "request method 'GE T' is not an HTTP token");
    res_clear(&x);
    res_watch(coil_http_get(t.a, "gopher://x/"), &x);
    COIL_TEST_ASSERT_HAS(x.msg, "gopher");
    res_clear(&x);
    CU_ASSERT_EQUAL(t.nsrv, 0);
    CU_ASSERT_EQUAL(stats(&t).connections, 0);
    t_end(&t);
}

static void test_file_upload(void)
{
    T t;
    t_start(&t, NULL);
    char path[256];
    CU_ASSERT_FATAL(coil_test_temp_file(path, sizeof path, "http-up") == 0);
    size_t total = 1024 * 1024 + 7;
    char *data = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (char)('a' + i % 23);
    FILE *fp = fopen(path, "w");
    CU_ASSERT_FATAL(fp && fwrite(data, 1, total, fp) == total);
    fclose(fp);
    coil_failure *err = NULL;
    coil_http_body_producer *body = coil_http_body_from_file(path, &err);
    CU_ASSERT_FATAL(body != NULL);
    CU_ASSERT_EQUAL(body->length, (int64_t)total);
    res x;
    res_watch(coil_http_agent_request(t.a, "PUT", "http://example.test/f", NULL, body),
              &x);
    char head[4096];
    srv *s = NULL;
    for (int i = 0; i < 200; i++) {
        pump(&t);
        s = t.nsrv ? t.srvs[0] : NULL;
        if (s && s->len >= total + 60)
            break;
    }
    CU_ASSERT_FATAL(s && srv_take_head(s, head, sizeof head));
    COIL_TEST_ASSERT_HAS(head, "\r\nContent-Length: 1048583\r\n");
    CU_ASSERT_EQUAL_FATAL(s->len, total);
    CU_ASSERT(memcmp(s->in, data, total) == 0);
    srv_answer(s, "HTTP/1.1 204 No Content\r\n\r\n");
    CU_ASSERT_EQUAL(coil_http_response_status(res_resp(&x)), 204);
    res_clear(&x);
    /* a file that shrinks after its length was taken */
    body = coil_http_body_from_file(path, &err);
    CU_ASSERT_FATAL(body != NULL);
    CU_ASSERT(truncate(path, 1000) == 0);
    res_watch(coil_http_agent_request(t.a, "PUT", "http://example.test/f", NULL, body),
              &x);
    for (int i = 0; i < 5 && !x.fired; i++)
        pump(&t);
    ASSERT_FAILED(x, COIL_EINVAL, "ended after 1000 of its 1048583 bytes");
    res_clear(&x);
    unlink(path);
    free(data);
    /* files that cannot be sent */
    CU_ASSERT_PTR_NULL(coil_http_body_from_file("/nonexistent/x", &err));
    CU_ASSERT_FATAL(err != NULL);
    COIL_TEST_ASSERT_HAS(coil_failure_message(err), "cannot open /nonexistent/x");
    coil_failure_free(err);
    CU_ASSERT_PTR_NULL(coil_http_body_from_file("/tmp", &err));
    CU_ASSERT_FATAL(err != NULL);
    COIL_TEST_ASSERT_HAS(coil_failure_message(err), "not a regular file");
    coil_failure_free(err);
    t_end(&t);
}

static void test_connect_hook_failures(void)
{
    T t;
    t_start(&t, NULL);
    res x;
    t.refuse = 1;
    res_watch(
        coil_http_agent_request(t.a, "GET", "http://example.test:8080/", NULL, NULL), &x);
    pump(&t);
    CU_ASSERT(x.f && coil_failure_check(x.f, COIL_DOMAIN_SYSTEM, ECONNREFUSED));
    COIL_TEST_ASSERT_HAS(x.msg,
                         "cannot connect to example.test:8080: Connection refused");
    res_clear(&x);
    /* cancelled while connecting */
    t.refuse = 0;
    t.never = 1;
    coil_deferred *d =
        coil_http_agent_request(t.a, "GET", "http://example.test/", NULL, NULL);
    coil_deferred_ref(d);
    res_watch(d, &x);
    pump(&t);
    CU_ASSERT_EQUAL(stats(&t).active, 1);
    coil_deferred_cancel(d);
    coil_deferred_unref(d);
    CU_ASSERT(x.f && coil_failure_check(x.f, COIL_DOMAIN_COIL, COIL_ECANCELLED));
    CU_ASSERT_EQUAL(stats(&t).active, 0);
    res_clear(&x);
    t_end(&t);
}

static coil_http_agent *victim;

static void free_agent_step(coil_deferred *d, void *arg)
{
    (void)d;
    (void)arg;
    coil_http_agent_free(victim);
    victim = NULL;
}

static void test_free_from_callback(void)
{
    T t;
    coil_http_agent_options o = {0};
    o.max_per_host = 1;
    t_start(&t, &o);
    res x, y;
    char head[4096];
    coil_deferred *d =
        coil_http_agent_request(t.a, "GET", "http://example.test/1", NULL, NULL);
    CU_ASSERT(coil_deferred_add_callback(d, free_agent_step, NULL) == 0);
    res_watch(d, &x);
    res_watch(coil_http_agent_request(t.a, "GET", "http://example.test/2", NULL, NULL),
              &y);
    pump(&t);
    srv *s = t.srvs[0];
    CU_ASSERT(srv_take_head(s, head, sizeof head));
    victim = t.a;
    t.a = NULL;
    srv_answer(s, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
    CU_ASSERT_PTR_NULL(victim);
    CU_ASSERT_EQUAL(x.fired, 1);
    CU_ASSERT(y.f && coil_failure_check(y.f, COIL_DOMAIN_COIL, COIL_ECANCELLED));
    /* the body was complete: it can still be read */
    res body;
    res_watch(coil_http_response_read_body(res_resp(&x), 0), &body);
    CU_ASSERT_EQUAL(body.fired, 1);
    CU_ASSERT(body.value && strcmp(((coil_http_bytes *)body.value)->data, "abc") == 0);
    res_clear(&body);
    res_clear(&x);
    res_clear(&y);
    t_end(&t);
}

static void test_byte_by_byte(void)
{
    T t;
    coil_http_agent_options o = {0};
    o.max_header_bytes = 1024;
    t_start(&t, &o);
    res x, body;
    char head[4096];
    srv *s = req_on(&t, &x, "GET", "http://example.test/slow", head, sizeof head);
    const char *resp =
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: "
        "chunked\r\nX-A: b\r\n\r\n3\r\nabc\r\n10;x=\"y\"\r\n0123456789abcdef\r\n"
        "0\r\nT: 1\r\n\r\n";
    for (const char *p = resp; *p; p++) {
        char one[2] = {*p, 0};
        srv_send(s, one);
        coil_reactor_advance(t.r, 0);
        coil_reactor_advance(t.r, 0);
    }
    pump(&t);
    coil_http_response *r = res_resp(&x);
    CU_ASSERT_STRING_EQUAL(coil_http_response_header(r, "X-A"), "b");
    res_watch(coil_http_response_read_body(r, 0), &body);
    CU_ASSERT_EQUAL_FATAL(body.fired, 1);
    CU_ASSERT_STRING_EQUAL(((coil_http_bytes *)body.value)->data, "abc0123456789abcdef");
    CU_ASSERT_EQUAL(stats(&t).idle, 1);
    res_clear(&body);
    res_clear(&x);
    /* more than the response announced: the connection is not trusted again */
    s = get_answered(&t, &x, "http://example.test/extra",
                     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA");
    res_watch(coil_http_response_read_body(res_resp(&x), 0), &body);
    CU_ASSERT_EQUAL_FATAL(body.fired, 1);
    CU_ASSERT_STRING_EQUAL(((coil_http_bytes *)body.value)->data, "ok");
    pump(&t);
    CU_ASSERT_EQUAL(stats(&t).idle, 0);
    CU_ASSERT(s->closed);
    res_clear(&body);
    res_clear(&x);
    /* a head past max_header_bytes */
    s = req_on(&t, &x, "GET", "http://example.test/fat", head, sizeof head);
    char fat[2048];
    int n = snprintf(fat, sizeof fat, "HTTP/1.1 200 OK\r\nX-Fat: ");
    memset(fat + n, 'f', 1500);
    strcpy(fat + n + 1500, "\r\n\r\n");
    srv_answer(s, fat);
    ASSERT_FAILED(x, COIL_EPROTO, "bad response from example.test:80: ");
    res_clear(&x);
    t_end(&t);
}

static void test_idle_limit_and_no_persistent(void)
{
    T t;
    t_start(&t, NULL);
    res x[3];
    for (int i = 0; i < 3; i++)
        res_watch(coil_http_agent_request(t.a, "GET", "http://example.test/", NULL, NULL),
                  &x[i]);
    pump(&t);
    CU_ASSERT_EQUAL_FATAL(t.nsrv, 3);
    char head[4096];
    for (int i = 0; i < 3; i++) {
        CU_ASSERT(srv_take_head(t.srvs[i], head, sizeof head));
        srv_send(t.srvs[i], "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }
    pump(&t);
    for (int i = 0; i < 3; i++) {
        res_resp(&x[i]);
        res_clear(&x[i]);
    }
    coil_http_agent_stats st = stats(&t);
    CU_ASSERT_EQUAL(st.idle, 2); /* max_idle_per_host */
    CU_ASSERT_EQUAL(t.srvs[0]->closed + t.srvs[1]->closed + t.srvs[2]->closed, 1);
    t_end(&t);

    coil_http_agent_options o = {0};
    o.no_persistent = 1;
    t_start(&t, &o);
    for (int i = 0; i < 2; i++) {
        srv *s = req_on(&t, &x[0], "GET", "http://example.test/np", head, sizeof head);
        COIL_TEST_ASSERT_HAS(head, "\r\nConnection: close\r\n");
        srv_answer(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        res_resp(&x[0]);
        res_clear(&x[0]);
        CU_ASSERT(s->closed);
    }
    CU_ASSERT_EQUAL(stats(&t).connections, 2);
    CU_ASSERT_EQUAL(stats(&t).idle, 0);
    t_end(&t);
    /* the user's Connection: close is heard too */
    t_start(&t, NULL);
    coil_http_headers *h = coil_http_headers_new();
    CU_ASSERT(coil_http_headers_add(h, "Connection", "Close") == 0);
    res_watch(coil_http_agent_request(t.a, "GET", "http://example.test/uc", h, NULL),
              &x[0]);
    coil_http_headers_free(h);
    pump(&t);
    CU_ASSERT(srv_take_head(t.srvs[0], head, sizeof head));
    COIL_TEST_ASSERT_HAS(head, "\r\nConnection: Close\r\n");
    srv_send(t.srvs[0], "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    pump(&t);
    res_resp(&x[0]);
    res_clear(&x[0]);
    CU_ASSERT_EQUAL(stats(&t).idle, 0);
    t_end(&t);
}

static void test_unread_body_dropped(void)
{
    T t;
    t_start(&t, NULL);
    res x;
    char head[4096];
    /* a large chunked body nobody wants: the connection goes */
    srv *s = get_answered(&t, &x, "http://example.test/big",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    res_clear(&x); /* freed unread */
    static char piece[8300];
    int n = snprintf(piece, sizeof piece, "2000\r\n");
    memset(piece + n, 'q', 8192);
    strcpy(piece + n + 8192, "\r\n");
    for (int i = 0; i < 12 && s->p.transport; i++) {
        srv_answer(s, piece);
    }
    CU_ASSERT(s->closed);
    CU_ASSERT_EQUAL(stats(&t).idle, 0);
    /* a small one is read to its end and the connection kept */
    s = req_on(&t, &x, "GET", "http://example.test/small", head, sizeof head);
    CU_ASSERT_EQUAL(t.nsrv, 2);
    srv_answer(s, "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n");
    res_clear(&x);
    char body[5001];
    memset(body, 's', 5000);
    body[5000] = 0;
    srv_answer(s, body);
    CU_ASSERT(!s->closed);
    CU_ASSERT_EQUAL(stats(&t).idle, 1);
    t_end(&t);
}

/* Mutated responses in random pieces, closes and clock jumps: whatever the
 * server does, each request ends (response or failure) and nothing leaks
 * (the ASan build checks). A fixed seed: the same run every time. */
static void test_random_servers(void)
{
    static const char *const base[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        "HTTP/1.0 200 OK\r\n\r\nuntil close",
        "HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n",
    };
    unsigned seed =
        getenv("COIL_TEST_SEED") ? (unsigned)atoi(getenv("COIL_TEST_SEED")) : 12345;
#define RND() (seed = seed * 1103515245u + 12345u, (seed >> 16) & 0x7fff)
    coil_http_agent_options o = {0};
    o.follow_redirects = 1;
    o.max_redirects = 2;
    o.response_timeout = 3;
    o.idle_timeout = 3;
    T t;
    t_start(&t, &o);
    for (int round = 0; round < 300; round++) {
        res x, body;
        memset(&body, 0, sizeof body);
        int upload = RND() % 4 == 0;
        coil_deferred *rd = coil_http_agent_request(
            t.a,
            upload      ? "PUT"
            : RND() % 4 ? "GET"
                        : "HEAD",
            "http://example.test/r", NULL,
            upload ? coil_http_body_from_bytes("payload", 7) : NULL);
        coil_deferred_ref(rd);
        res_watch(rd, &x);
        int cancel_at = RND() % 8 == 0 ? (int)(RND() % 3) : -1;
        char msg[512];
        const char *b = base[RND() % (sizeof base / sizeof base[0])];
        size_t n = strlen(b);
        memcpy(msg, b, n + 1);
        int muts = (int)(RND() % 4);
        for (int m = 0; m < muts && n > 0; m++) {
            size_t at = RND() % n;
            switch (RND() % 3) {
            case 0:
                msg[at] = (char)(RND() & 0xff);
                break;
            case 1: /* cut */
                n = at;
                break;
            default:
                msg[at] = "\r\n :0;"[RND() % 6];
            }
        }
        int closing = RND() % 3 == 0;
        for (int steps = 0; steps < 8 && !x.fired; steps++) {
            if (steps == cancel_at)
                coil_deferred_cancel(rd);
            pump(&t);
            srv *s = t.nsrv ? t.srvs[t.nsrv - 1] : NULL;
            char head[4096];
            if (s && s->p.transport && srv_take_head(s, head, sizeof head)) {
                size_t off = 0;
                while (off < n && s->p.transport) {
                    size_t k = 1 + RND() % 16;
                    if (k > n - off)
                        k = n - off;
                    coil_transport_write(s->p.transport, msg + off, k);
                    off += k;
                    coil_reactor_advance(t.r, 0);
                }
                if (closing && s->p.transport)
                    srv_close(s);
            }
            if (!x.fired)
                coil_reactor_advance(t.r, 2);
        }
        if (!x.fired)
            coil_reactor_advance(t.r, 10);
        pump(&t);
        CU_ASSERT_EQUAL_FATAL(x.fired, 1);
        coil_deferred_unref(rd);
        if (getenv("COIL_TEST_SHOW_FAILURES"))
            fprintf(stderr, "round %d: %s\n", round, x.value ? "response" : x.msg);
        int mode = (int)(RND() % 3);
        if (x.value && mode == 0) {
            res_watch(coil_http_response_read_body(x.value, 100), &body);
            for (int i = 0; i < 4 && !body.fired; i++) {
                pump(&t);
                coil_reactor_advance(t.r, 2);
            }
            CU_ASSERT_EQUAL(body.fired, 1);
            res_clear(&body);
        } else if (x.value && mode == 1) {
            /* a reader that pauses, resumes, and sometimes aborts */
            static bodyp bp;
            bp_init(&bp);
            bp.pause_on_data = 1;
            CU_ASSERT(coil_http_response_deliver_body(x.value, &bp.p) == 0);
            for (int i = 0; i < 6 && !bp.lost; i++) {
                pump(&t);
                if (bp.p.transport) {
                    if (RND() % 5 == 0)
                        coil_transport_abort_connection(bp.p.transport);
                    else
                        coil_transport_resume_reading(bp.p.transport);
                }
                coil_reactor_advance(t.r, 2);
            }
            CU_ASSERT_EQUAL(bp.lost, 1);
            CU_ASSERT_EQUAL(bp.destroyed, 1);
        }
        res_clear(&x);
        /* the server side ends its connection now and then */
        if (RND() % 2)
            for (int i = 0; i < t.nsrv; i++)
                if (t.srvs[i]->p.transport)
                    srv_close(t.srvs[i]);
    }
#undef RND
    t_end(&t);
}

/* ---- against coil's own server (server.c) ---- */

static int echo_render(coil_http_resource *rs, coil_http_request *req)
{
    (void)rs;
    size_t len = 0;
    const void *body = coil_http_request_body(req, &len);
    coil_http_request_set_header(req, "Content-Type", "application/octet-stream");
    return coil_http_request_write(req, body ? body : "", len) == 0 ? COIL_HTTP_DONE
                                                                    : COIL_EINVAL;
}

static int chunky_go(void *arg)
{
    coil_http_request *req = arg;
    coil_http_request_write(req, "one ", 4);
    coil_http_request_write(req, "two ", 4);
    coil_http_request_write(req, "three", 5);
    coil_http_request_finish(req);
    coil_http_request_unref(req);
    return 0;
}

static int chunky_render(coil_http_resource *rs, coil_http_request *req)
{
    (void)rs;
    coil_http_request_ref(req);
    CU_ASSERT(coil_reactor_call_later_forget(coil_http_request_reactor(req), 0.5,
                                             chunky_go, req) == 0);
    return COIL_HTTP_NOT_DONE_YET;
}

static const coil_http_resource_ops echo_ops = {.render_post = echo_render,
                                                .render_put = echo_render};
static const coil_http_resource_ops chunky_ops = {.render_get = chunky_render};

static coil_http_site *make_site(coil_reactor *r)
{
    static const coil_http_resource_ops root_ops = {0};
    coil_http_resource *root = coil_http_resource_new(&root_ops, NULL);
    CU_ASSERT_FATAL(root != NULL);
    CU_ASSERT(coil_http_resource_put_child(
                  root, "hello",
                  coil_http_data_resource_new("hello world", 11, "text/plain")) == 0);
    CU_ASSERT(coil_http_resource_put_child(root, "echo",
                                           coil_http_resource_new(&echo_ops, NULL)) == 0);
    CU_ASSERT(coil_http_resource_put_child(
                  root, "chunky", coil_http_resource_new(&chunky_ops, NULL)) == 0);
    CU_ASSERT(coil_http_resource_put_child(
                  root, "old", coil_http_redirect_resource_new("/hello", 302)) == 0);
    coil_http_site *site;
    coil_failure *err = NULL;
    CU_ASSERT_FATAL(coil_http_site_new(r, root, NULL, &site, &err) == 0);
    return site;
}

static void *wait_value(T *t, coil_deferred *d, res *x)
{
    res_watch(d, x);
    for (int i = 0; i < 20 && !x->fired; i++) {
        pump(t);
        coil_reactor_advance(t->r, 0.5);
    }
    if (x->f)
        fprintf(stderr, "\n    unexpected failure: %s\n", x->msg);
    CU_ASSERT_FATAL(x->fired == 1 && x->value != NULL);
    return x->value;
}

static void test_coil_site(void)
{
    T t;
    coil_http_agent_options o = {0};
    o.follow_redirects = 1;
    t_start(&t, &o);
    t.site = make_site(t.r);
    res x, y;
    coil_http_bytes *b = wait_value(&t, coil_http_get(t.a, "http://site.test/hello"), &x);
    CU_ASSERT_STRING_EQUAL(b->data, "hello world");
    res_clear(&x);
    /* POST with a length, PUT chunked */
    coil_deferred *d = coil_http_agent_request(t.a, "POST", "http://site.test/echo", NULL,
                                               coil_http_body_from_bytes("ping", 4));
    coil_http_response *resp = wait_value(&t, d, &x);
    CU_ASSERT_EQUAL(coil_http_response_status(resp), 200);
    b = wait_value(&t, coil_http_response_read_body(resp, 0), &y);
    CU_ASSERT_STRING_EQUAL(b->data, "ping");
    res_clear(&y);
    res_clear(&x);
    manual_prod m = {0};
    m.base.ops = &mp_ops;
    m.base.length = -1;
    res_watch(coil_http_agent_request(t.a, "PUT", "http://site.test/echo", NULL, &m.base),
              &x);
    pump(&t);
    CU_ASSERT_FATAL(m.started == 1);
    CU_ASSERT_EQUAL(coil_http_body_write(m.c, "abc", 3), 0);
    pump(&t);
    CU_ASSERT_EQUAL(coil_http_body_write(m.c, "def", 3), 0);
    CU_ASSERT_EQUAL(coil_http_body_done(m.c, NULL), 0);
    pump(&t);
    resp = res_resp(&x);
    b = wait_value(&t, coil_http_response_read_body(resp, 0), &y);
    CU_ASSERT_STRING_EQUAL(b->data, "abcdef");
    res_clear(&y);
    res_clear(&x);
    /* a chunked response, finished later */
    d = coil_http_agent_request(t.a, "GET", "http://site.test/chunky", NULL, NULL);
    resp = wait_value(&t, d, &x);
    CU_ASSERT_EQUAL(coil_http_response_length(resp), -1);
    b = wait_value(&t, coil_http_response_read_body(resp, 0), &y);
    CU_ASSERT_STRING_EQUAL(b->data, "one two three");
    res_clear(&y);
    res_clear(&x);
    /* a redirect followed; HEAD; a 404 */
    d = coil_http_agent_request(t.a, "GET", "http://site.test/old", NULL, NULL);
    resp = wait_value(&t, d, &x);
    CU_ASSERT_STRING_EQUAL(coil_http_response_url(resp), "http://site.test/hello");
    b = wait_value(&t, coil_http_response_read_body(resp, 0), &y);
    CU_ASSERT_STRING_EQUAL(b->data, "hello world");
    res_clear(&y);
    res_clear(&x);
    d = coil_http_agent_request(t.a, "HEAD", "http://site.test/hello", NULL, NULL);
    resp = wait_value(&t, d, &x);
    CU_ASSERT_EQUAL(coil_http_response_length(resp), 11);
    b = wait_value(&t, coil_http_response_read_body(resp, 0), &y);
    CU_ASSERT_EQUAL(b->len, 0);
    res_clear(&y);
    res_clear(&x);
    res_watch(coil_http_get(t.a, "http://site.test/missing"), &x);
    for (int i = 0; i < 10 && !x.fired; i++)
        pump(&t);
    CU_ASSERT(x.f && coil_failure_domain(x.f) == COIL_DOMAIN_HTTP &&
              coil_failure_code(x.f) == 404);
    res_clear(&x);
    pump(&t);
    /* one connection carried everything */
    coil_http_agent_stats st = stats(&t);
    CU_ASSERT_EQUAL(st.connections, 1);
    CU_ASSERT_EQUAL(st.requests, 7);
    CU_ASSERT_EQUAL(st.reused, 7); /* 8 sent (one redirect), the first on a new one */
    coil_http_site_stats ss;
    coil_http_site_get_stats(t.site, &ss);
    CU_ASSERT_EQUAL(ss.connections, 1);
    coil_http_agent_free(t.a);
    t.a = NULL;
    pump(&t);
    coil_http_site_free(t.site);
    t_end(&t);
}

/* ======================================================================= */
/* ---- real sockets ----------------------------------------------------- */

typedef struct net {
    T t;
    coil_listener *l;
    int port;
    char unix_path[256];
} net;

static void net_start(net *n, int kind, coil_tls_context *sctx)
{
    memset(n, 0, sizeof *n);
    n->t.r = coil_test_reactor(NULL);
    n->t.autorespond = 1;
    n->t.f.ops = &tf_ops;
    n->t.f.user = &n->t;
    coil_failure *err = NULL;
    int rc;
    if (kind == 'u') {
        snprintf(n->unix_path, sizeof n->unix_path, "/tmp/coil-http-client-%d.sock",
                 (int)getpid());
        unlink(n->unix_path);
        coil_unix_listen_options o = {0};
        o.path = n->unix_path;
        rc = coil_unix_listen(n->t.r, &o, &n->t.f, &n->l, &err);
    } else {
        coil_tcp_listen_options o = {0};
        o.interface = "127.0.0.1";
        rc = sctx ? coil_tls_listen_tcp(n->t.r, &o, sctx, &n->t.f, &n->l, &err)
                  : coil_tcp_listen(n->t.r, &o, &n->t.f, &n->l, &err);
    }
    if (rc != 0)
        coil_failure_print(err, stderr);
    CU_ASSERT_FATAL(rc == 0);
    coil_address a;
    if (kind != 'u') {
        CU_ASSERT_FATAL(coil_listener_get_host(n->l, &a) == 0);
        n->port = coil_address_port(&a);
    }
}

static void net_agent(net *n, coil_http_agent_options *o)
{
    coil_failure *err = NULL;
    CU_ASSERT_FATAL(coil_http_agent_new(n->t.r, o, &n->t.a, &err) == 0);
}

static void net_end(net *n)
{
    coil_http_agent_free(n->t.a);
    coil_listener_close(n->l);
    coil_reactor_shutdown(n->t.r, 5);
    coil_reactor_free(n->t.r);
    for (int i = 0; i < n->t.nsrv; i++) {
        free(n->t.srvs[i]->in);
        free(n->t.srvs[i]);
    }
    if (n->unix_path[0])
        unlink(n->unix_path);
}

static void get_ok(net *n, const char *url, const char *want)
{
    res x;
    coil_deferred *d = coil_http_get(n->t.a, url);
    coil_deferred_ref(d);
    res_watch(d, &x);
    CU_ASSERT(coil_test_wait_fired(n->t.r, d, 10));
    coil_deferred_unref(d);
    if (x.f)
        fprintf(stderr, "\n    GET %s: %s\n", url, x.msg);
    CU_ASSERT_FATAL(x.value != NULL);
    CU_ASSERT_STRING_EQUAL(((coil_http_bytes *)x.value)->data, want);
    res_clear(&x);
}

static void get_fails(net *n, const char *url, res *x)
{
    coil_deferred *d = coil_http_get(n->t.a, url);
    coil_deferred_ref(d);
    res_watch(d, x);
    CU_ASSERT(coil_test_wait_fired(n->t.r, d, 10));
    coil_deferred_unref(d);
    CU_ASSERT(x->f != NULL);
}

static void test_tcp(void)
{
    net n;
    net_start(&n, 't', NULL);
    net_agent(&n, NULL);
    char url[128];
    for (int i = 0; i < 5; i++) {
        snprintf(url, sizeof url, "http://127.0.0.1:%d/n%d", n.port, i);
        char want[16];
        snprintf(want, sizeof want, "/n%d", i);
        get_ok(&n, url, want);
    }
    CU_ASSERT_EQUAL(n.t.nsrv, 1);
    coil_http_agent_stats st = stats(&n.t);
    CU_ASSERT_EQUAL(st.connections, 1);
    CU_ASSERT_EQUAL(st.reused, 4);
    /* localhost by name */
    snprintf(url, sizeof url, "http://localhost:%d/name", n.port);
    get_ok(&n, url, "/name");
    /* refused */
    coil_listener_close(n.l);
    n.l = NULL;
    int port = n.port;
    net_end(&n);
    net_start(&n, 't', NULL);
    net_agent(&n, NULL);
    coil_listener_close(n.l);
    n.l = NULL;
    res x;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", n.port);
    get_fails(&n, url, &x);
    char want[128];
    snprintf(want, sizeof want, "cannot connect to 127.0.0.1:%d: Connection refused",
             n.port);
    COIL_TEST_ASSERT_HAS(x.msg, want);
    CU_ASSERT(coil_failure_check(x.f, COIL_DOMAIN_SYSTEM, ECONNREFUSED));
    res_clear(&x);
    (void)port;
    net_end(&n);
}

static void test_unix(void)
{
    net n;
    net_start(&n, 'u', NULL);
    net_agent(&n, NULL);
    char url[512], enc[400], *w = enc;
    for (const char *p = n.unix_path; *p; p++)
        w += *p == '/' ? sprintf(w, "%%2F") : sprintf(w, "%c", *p);
    *w = 0;
    snprintf(url, sizeof url, "http+unix://%s/over/unix", enc);
    get_ok(&n, url, "/over/unix");
    get_ok(&n, url, "/over/unix");
    CU_ASSERT_EQUAL(n.t.nsrv, 1);
    net_end(&n);
}

static coil_tls_context *server_ctx(const char *name)
{
    char certf[64], keyf[64];
    snprintf(certf, sizeof certf, "%s.pem", name);
    snprintf(keyf, sizeof keyf, "%s.key", name);
    coil_tls_options o = {0};
    const char *c = coil_test_cert(certf);
    CU_ASSERT_FATAL(c != NULL);
    char cpath[1024];
    snprintf(cpath, sizeof cpath, "%s", c);
    o.cert_file = cpath;
    o.key_file = coil_test_cert(keyf);
    o.alpn = "http/1.1";
    coil_tls_context *ctx;
    coil_failure *err = NULL;
    if (coil_tls_context_new(COIL_TLS_SERVER, &o, &ctx, &err) != 0)
        coil_failure_print(err, stderr);
    CU_ASSERT_FATAL(err == NULL);
    return ctx;
}

static coil_tls_context *client_ctx(void)
{
    coil_tls_options o = {0};
    o.ca_file = coil_test_cert("ca.pem");
    o.alpn = "http/1.1";
    coil_tls_context *ctx;
    coil_failure *err = NULL;
    CU_ASSERT_FATAL(coil_tls_context_new(COIL_TLS_CLIENT, &o, &ctx, &err) == 0);
    return ctx;
}

static void test_tls(void)
{
    if (!coil_test_cert("ca.pem")) {
        CU_FAIL("COIL_TEST_CERTS is not set: run through ctest (tls_certs fixture)");
        return;
    }
    coil_tls_context *sctx = server_ctx("server");
    coil_tls_context *cctx = client_ctx();
    net n;
    net_start(&n, 't', sctx);
    coil_http_agent_options o = {0};
    o.tls = cctx;
    net_agent(&n, &o);
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/secure", n.port);
    get_ok(&n, url, "/secure");
    CU_ASSERT_STRING_EQUAL(n.t.srvs[0]->alpn, "http/1.1");
    snprintf(url, sizeof url, "https://localhost:%d/again", n.port);
    get_ok(&n, url, "/again");
    CU_ASSERT_STRING_EQUAL(n.t.srvs[1]->sni, "localhost");
    CU_ASSERT_EQUAL(stats(&n.t).connections, 2); /* two hosts, two pools */
    snprintf(url, sizeof url, "https://127.0.0.1:%d/kept", n.port);
    get_ok(&n, url, "/kept");
    CU_ASSERT_EQUAL(stats(&n.t).connections, 2);
    CU_ASSERT_EQUAL(stats(&n.t).reused, 1);
    /* an unknown CA: the agent's default context */
    coil_http_agent_free(n.t.a);
    net_agent(&n, NULL);
    res x;
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", n.port);
    get_fails(&n, url, &x);
    COIL_TEST_ASSERT_HAS(x.msg, "https certificate for 127.0.0.1 was not accepted");
    res_clear(&x);
    net_end(&n);
    /* a certificate for another name */
    coil_tls_context_free(sctx);
    sctx = server_ctx("wronghost");
    net_start(&n, 't', sctx);
    net_agent(&n, &o);
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", n.port);
    get_fails(&n, url, &x);
    COIL_TEST_ASSERT_HAS(x.msg, "https certificate for 127.0.0.1 was not accepted");
    COIL_TEST_ASSERT_HAS(x.msg, "mismatch");
    res_clear(&x);
    net_end(&n);
    coil_tls_context_free(sctx);
    coil_tls_context_free(cctx);
}

static int path_render(coil_http_resource *rs, coil_http_request *req)
{
    (void)rs;
    coil_http_request_writef(req, "%s", coil_http_request_path(req));
    return COIL_HTTP_DONE;
}

static const coil_http_resource_ops path_ops = {.render_get = path_render};

/* The crawler's pattern: many GETs, 5 connections at most, a list at the end. */
static void test_tcp_many(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_http_site *site;
    int port;
    coil_listener *l = http_test_leaf_site(r, &path_ops, &site, &port);
    coil_failure *err = NULL;
    coil_http_agent_options o = {0};
    o.max_per_host = 5;
    o.max_idle_per_host = 5;
    coil_http_agent *a;
    CU_ASSERT_FATAL(coil_http_agent_new(r, &o, &a, &err) == 0);
    enum { N = 200 };
    coil_deferred *ds[N];
    for (int i = 0; i < N; i++) {
        char url[128];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/item/%d", port, i);
        ds[i] = coil_http_get(a, url);
    }
    coil_deferred *all = coil_deferred_list(ds, N, 0);
    CU_ASSERT(coil_test_wait_fired(r, all, 30));
    coil_deferred_list_result *lr = coil_deferred_result(all);
    CU_ASSERT_FATAL(lr != NULL && lr->count == N);
    for (int i = 0; i < N; i++) {
        char want[64];
        snprintf(want, sizeof want, "/item/%d", i);
        CU_ASSERT(lr->items[i].ok);
        coil_http_bytes *b = lr->items[i].value;
        CU_ASSERT(b && strcmp(b->data, want) == 0);
    }
    coil_http_agent_stats st;
    coil_http_agent_get_stats(a, &st);
    CU_ASSERT_EQUAL(st.connections, 5);
    CU_ASSERT_EQUAL(st.reused, N - 5);
    CU_ASSERT_EQUAL(st.idle, 5);
    coil_deferred_unref(all);
    for (int i = 0; i < N; i++)
        coil_deferred_unref(ds[i]);
    coil_http_agent_free(a);
    coil_listener_close(l);
    coil_reactor_shutdown(r, 5);
    coil_http_site_free(site);
    coil_reactor_free(r);
}

static int add(void)
{
    static const coil_test_case mem[] = {
        COIL_TEST(test_get_basic),
        COIL_TEST(test_keepalive_reuse),
        COIL_TEST(test_per_host_limit),
        COIL_TEST(test_idle_closed_by_server),
        COIL_TEST(test_retry_stale),
        COIL_TEST(test_chunked_and_close),
        COIL_TEST(test_interim_and_head),
        COIL_TEST(test_uploads),
        COIL_TEST(test_upload_flow_control),
        COIL_TEST(test_deliver_body_pause),
        COIL_TEST(test_body_held_and_limit),
        COIL_TEST(test_redirects),
        COIL_TEST(test_timeouts),
        COIL_TEST(test_bad_responses),
        COIL_TEST(test_get_and_download),
        COIL_TEST(test_cancel),
        COIL_TEST(test_agent_free_in_flight),
        COIL_TEST(test_bad_urls),
        COIL_TEST(test_file_upload),
        COIL_TEST(test_connect_hook_failures),
        COIL_TEST(test_free_from_callback),
        COIL_TEST(test_coil_site),
        COIL_TEST(test_byte_by_byte),
        COIL_TEST(test_idle_limit_and_no_persistent),
        COIL_TEST(test_unread_body_dropped),
        COIL_TEST(test_random_servers),
        {NULL, NULL},
    };
    static const coil_test_case sockets[] = {
        COIL_TEST(test_tcp),      COIL_TEST(test_unix), COIL_TEST(test_tls),
        COIL_TEST(test_tcp_many), {NULL, NULL},
    };
    return coil_test_add_suite("http_client_memory", mem) ||
           coil_test_add_suite("http_client_sockets", sockets);
}

int main(void)
{
    return coil_test_main(add);
}
