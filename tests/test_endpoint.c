/* Endpoint descriptions: the generic syntax, each kind's rules and their
 * error messages, and listening / connecting / connect_protocol on real
 * loopback sockets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

/* ---- the generic syntax ---------------------------------------------------- */

static void test_desc_split_and_escapes(void)
{
    coil_endpoint_desc *d;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL_FATAL(
        coil_endpoint_desc_parse("tcp:8000:interface=\\:\\:1:backlog=5:a\\=b", &d, &err),
        0);
    CU_ASSERT_STRING_EQUAL(d->kind, "tcp");
    CU_ASSERT_EQUAL_FATAL(d->nargs, 4);
    CU_ASSERT_PTR_NULL(d->args[0].key);
    CU_ASSERT_STRING_EQUAL(d->args[0].value, "8000");
    CU_ASSERT_STRING_EQUAL(d->args[1].key, "interface");
    CU_ASSERT_STRING_EQUAL(d->args[1].value, "::1");
    CU_ASSERT_STRING_EQUAL(coil_endpoint_desc_get(d, "backlog"), "5");
    /* An escaped '=' is data: a positional argument "a=b". */
    CU_ASSERT_PTR_NULL(d->args[3].key);
    CU_ASSERT_STRING_EQUAL(d->args[3].value, "a=b");
    CU_ASSERT_PTR_NULL(coil_endpoint_desc_get(d, "port"));
    coil_endpoint_desc_free(d);

    /* A value may hold '=' after the first one, and be empty. */
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_desc_parse("x:k=a=b:e=:\\\\", &d, NULL), 0);
    CU_ASSERT_STRING_EQUAL(coil_endpoint_desc_get(d, "k"), "a=b");
    CU_ASSERT_STRING_EQUAL(coil_endpoint_desc_get(d, "e"), "");
    CU_ASSERT_STRING_EQUAL(d->args[2].value, "\\");
    coil_endpoint_desc_free(d);
}

/* Parse `text` expecting failure; the message must contain `needle`. */
static void desc_fails(const char *text, const char *needle)
{
    coil_endpoint_desc *d = COIL_TEST_POISON;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL(coil_endpoint_desc_parse(text, &d, &err), COIL_EINVAL);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    if (!strstr(coil_failure_message(err), needle))
        fprintf(stderr, "\n'%s': got '%s', want '%s'\n", text, coil_failure_message(err),
                needle);
    CU_ASSERT_PTR_NOT_NULL(strstr(coil_failure_message(err), needle));
    coil_failure_free(err);
}

static void test_desc_errors(void)
{
    desc_fails("", "it is empty");
    desc_fails(":8000", "the kind before the first ':' is empty");
    desc_fails("tcp", "no arguments after the kind 'tcp'");
    desc_fails("tcp:80\\", "lone backslash");
    desc_fails("tcp:=5", "'=' but no name");
    desc_fails("tcp:port=1:port=2", "option 'port' is given twice");
    char many[200] = "tcp";
    for (int i = 0; i < COIL_ENDPOINT_MAX_ARGS + 1; i++)
        strcat(many, ":1");
    desc_fails(many, "more than 32 arguments");
    char *huge = malloc(COIL_ENDPOINT_MAX_LEN + 10);
    memset(huge, 'a', COIL_ENDPOINT_MAX_LEN + 9);
    memcpy(huge, "unix:", 5);
    huge[COIL_ENDPOINT_MAX_LEN + 9] = '\0';
    desc_fails(huge, "longer than 4096");
    free(huge);
    /* Non-printable bytes are shown escaped, never raw. */
    desc_fails("\x01:\\", "\\x01");
}

/* ---- kinds ----------------------------------------------------------------- */

static void endpoint_fails(int server, const char *text, const char *needle)
{
    coil_endpoint *e = COIL_TEST_POISON;
    coil_failure *err = NULL;
    int rc = server ? coil_endpoint_server(text, &e, &err)
                    : coil_endpoint_client(text, &e, &err);
    CU_ASSERT_EQUAL(rc, COIL_EINVAL);
    CU_ASSERT_PTR_NULL(e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    if (!strstr(coil_failure_message(err), needle))
        fprintf(stderr, "\n'%s': got '%s', want '%s'\n", text, coil_failure_message(err),
                needle);
    CU_ASSERT_PTR_NOT_NULL(strstr(coil_failure_message(err), needle));
    coil_failure_free(err);
}

static void endpoint_ok(int server, const char *text, const char *kind)
{
    coil_endpoint *e = NULL;
    coil_failure *err = NULL;
    int rc = server ? coil_endpoint_server(text, &e, &err)
                    : coil_endpoint_client(text, &e, &err);
    if (rc)
        fprintf(stderr, "\n'%s': %s\n", text, coil_failure_message(err));
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_PTR_NULL(err);
    CU_ASSERT_STRING_EQUAL(coil_endpoint_kind(e), kind);
    CU_ASSERT_STRING_EQUAL(coil_endpoint_text(e), text);
    coil_endpoint_free(e);
}

static void test_server_kinds(void)
{
    /* The first description a process parses: the kinds register then, and
     * the message must already list their examples. */
    endpoint_fails(1, "quic:443", "(use tcp:PORT, unix:PATH");
    endpoint_ok(1, "tcp:8000", "tcp");
    endpoint_ok(1, "tcp:0:interface=127.0.0.1:backlog=5", "tcp");
    endpoint_ok(1, "tcp:port=8000:interface=\\:\\:1", "tcp");
    endpoint_ok(1, "unix:/tmp/a\\:b.sock:mode=0660", "unix");
    endpoint_ok(1, "unix:address=/tmp/x.sock:backlog=10", "unix");
    endpoint_ok(1, "unix:@abstract", "unix");

    endpoint_fails(1, "tcp:80x",
                   "bad server endpoint 'tcp:80x': port '80x' is not a number from 0 to "
                   "65535 (use tcp:PORT[:interface=ADDR][:backlog=N][:highWater=BYTES]"
                   "[:lowWater=BYTES])");
    endpoint_fails(1, "tcp:70000", "port '70000' is not a number from 0 to 65535");
    endpoint_fails(1, "tcp:-1", "port '-1'");
    endpoint_fails(1, "tcp:interface=127.0.0.1", "the port is missing");
    endpoint_fails(1, "tcp:80:bogus=1", "unknown option 'bogus'");
    endpoint_fails(1, "tcp:80:81", "unexpected argument '81'");
    endpoint_fails(1, "tcp:80:port=81", "port is given both as '80' and as port=81");
    endpoint_fails(1, "tcp:80:backlog=0", "backlog '0' is not a number from 1 to 65535");
    endpoint_fails(1, "tcp:80:interface=", "interface is empty");
    endpoint_fails(1, "unix:/tmp/x:mode=999", "mode '999' is not an octal file mode");
    endpoint_fails(1, "unix:mode=0600", "the socket path is missing");
    endpoint_fails(1, "quic:443", "unknown kind 'quic'");
    endpoint_fails(
        1, "tcp:80\\",
        "lone backslash (use tcp:PORT, unix:PATH, ssl:PORT:privateKey=KEY.pem or "
        "ssh:PORT:hostKey=FILE:authorizedKeys=FILE)");
    char longpath[200] = "unix:/";
    memset(longpath + 6, 'p', 120);
    endpoint_fails(1, longpath, "longer than 107 bytes");
}

static void test_client_kinds(void)
{
    endpoint_ok(0, "tcp:localhost:80", "tcp");
    endpoint_ok(0, "tcp:host=127.0.0.1:port=80:timeout=2.5:bindAddress=127.0.0.1", "tcp");
    endpoint_ok(0, "tcp:host=\\:\\:1:port=80", "tcp");
    endpoint_ok(0, "tcp:host=example.org:80", "tcp");
    endpoint_ok(0, "unix:/run/x.sock", "unix");
    endpoint_ok(0, "unix:path=/run/x.sock:timeout=3", "unix");

    endpoint_fails(0, "tcp:localhost", "the port is missing");
    endpoint_fails(0, "tcp:port=80", "the host is missing");
    endpoint_fails(0, "tcp:localhost:0", "port '0' is not a number from 1 to 65535");
    endpoint_fails(0, "tcp:localhost:80:timeout=abc",
                   "timeout 'abc' is not a number of seconds above 0");
    endpoint_fails(0, "tcp:localhost:80:timeout=-1", "timeout '-1'");
    endpoint_ok(0, "tcp:localhost:80:resolveTimeout=2.5", "tcp");
    endpoint_fails(0, "tcp:localhost:80:resolveTimeout=soon",
                   "timeout 'soon' is not a number of seconds above 0");
    endpoint_fails(0, "tcp:a:80:host=b", "host is given both as 'a' and as host=b");
    endpoint_fails(0, "tcp:localhost:80:interface=x", "unknown option 'interface'");
    endpoint_fails(0, "unix:", "the socket path is missing");
    endpoint_fails(0, "unix", "no arguments after the kind 'unix'");
    endpoint_fails(0, "unix:/x:/y", "unexpected argument '/y'");
}

/* highWater= / lowWater= on every kind and side; bad values refused with
 * the reason. */
static void test_water_mark_keys(void)
{
    endpoint_ok(1, "tcp:0:highWater=1048576:lowWater=65536", "tcp");
    endpoint_ok(1, "unix:/tmp/x.sock:highWater=8192", "unix");
    endpoint_ok(0, "tcp:localhost:80:lowWater=1024", "tcp");
    endpoint_ok(0, "unix:/run/x.sock:highWater=4096:lowWater=4096", "unix");
    endpoint_fails(1, "tcp:0:highWater=lots",
                   "highWater 'lots' is not a number of bytes from 1 to 1073741824");
    endpoint_fails(1, "tcp:0:highWater=0", "highWater '0' is not a number of bytes");
    endpoint_fails(0, "tcp:localhost:80:lowWater=-5", "lowWater '-5' is not a number");
    endpoint_fails(1, "tcp:0:highWater=1000:lowWater=2000",
                   "lowWater (2000) is above highWater (1000)");
    endpoint_fails(0, "unix:/x:lowWater=100000",
                   "lowWater (100000) is above highWater (65536)");
    endpoint_fails(1, "ssl:443:privateKey=k.pem:highWater=2:lowWater=3",
                   "lowWater (3) is above highWater (2)");
}

/* The marks reach the connections on both sides. */
static coil_transport_info marks_info[2]; /* server, client */
static int marks_made[2];

static void marks_server_made(coil_protocol *p)
{
    coil_transport_info_get(p->transport, &marks_info[0]);
    marks_made[0] = 1;
}

static void marks_client_made(coil_protocol *p)
{
    coil_transport_info_get(p->transport, &marks_info[1]);
    marks_made[1] = 1;
}

static void free_marks_proto(coil_protocol *p)
{
    free(p);
}

static const coil_protocol_ops marks_server_ops = {.connection_made = marks_server_made,
                                                   .destroy = free_marks_proto};
static const coil_protocol_ops marks_client_ops = {.connection_made = marks_client_made,
                                                   .destroy = free_marks_proto};

static coil_protocol *marks_build(coil_factory *f, const coil_address *peer)
{
    coil_protocol *p = calloc(1, sizeof *p);
    p->ops = &marks_server_ops;
    return p;
}

static const coil_factory_ops marks_factory_ops = {.build_protocol = marks_build};

static void test_water_marks_reach_connections(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_factory f = {.ops = &marks_factory_ops};
    coil_listener *l;
    CU_ASSERT_EQUAL_FATAL(
        coil_listen(r, "tcp:0:interface=127.0.0.1:highWater=200000", &f, &l, NULL), 0);
    coil_address a;
    CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);
    char text[128];
    snprintf(text, sizeof text, "tcp:127.0.0.1:%d:highWater=4096:lowWater=1000",
             coil_address_port(&a));
    coil_endpoint *e;
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_client(text, &e, NULL), 0);
    coil_protocol *c = calloc(1, sizeof *c);
    c->ops = &marks_client_ops;
    marks_made[0] = marks_made[1] = 0;
    coil_deferred *d = coil_connect_protocol(r, e, c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    for (int i = 0; i < 200 && !(marks_made[0] && marks_made[1]); i++)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT_EQUAL(marks_info[0].high_water, 200000);
    CU_ASSERT_EQUAL(marks_info[0].low_water, 50000);
    CU_ASSERT_EQUAL(marks_info[1].high_water, 4096);
    CU_ASSERT_EQUAL(marks_info[1].low_water, 1000);
    if (c->transport)
        coil_transport_abort_connection(c->transport);
    coil_deferred_unref(d);
    coil_endpoint_free(e);
    coil_listener_close(l);
    CU_ASSERT_EQUAL(coil_reactor_shutdown(r, 5.0), 0);
    coil_reactor_free(r);
}

/* ---- real sockets --------------------------------------------------------------- */

typedef struct echo {
    coil_protocol p;
} echo;

static void echo_data(coil_protocol *p, const void *data, size_t len)
{
    coil_transport_write(p->transport, data, len);
}

static void free_proto(coil_protocol *p)
{
    free(p);
}

static const coil_protocol_ops echo_ops = {.data_received = echo_data,
                                           .destroy = free_proto};

static coil_protocol *echo_build(coil_factory *f, const coil_address *peer)
{
    echo *e = calloc(1, sizeof *e);
    e->p.ops = &echo_ops;
    return &e->p;
}

static const coil_factory_ops echo_factory_ops = {.build_protocol = echo_build};

typedef struct client {
    coil_protocol p;
    char got[64];
    size_t len;
    int *made, *lost;
} client;

static void client_made(coil_protocol *p)
{
    client *c = (client *)p;
    ++*c->made;
    coil_transport_write(p->transport, "ping", 4);
}

static void client_data(coil_protocol *p, const void *data, size_t len)
{
    client *c = (client *)p;
    if (c->len + len < sizeof c->got) {
        memcpy(c->got + c->len, data, len);
        c->len += len;
    }
    if (c->len == 4)
        coil_reactor_stop(p->transport->reactor);
}

static void client_lost(coil_protocol *p, const coil_failure *why)
{
    client *c = (client *)p;
    ++*c->lost;
}

static const coil_protocol_ops client_ops = {.connection_made = client_made,
                                             .data_received = client_data,
                                             .connection_lost = client_lost,
                                             .destroy = free_proto};

typedef struct outcome {
    int fired, failed, code, sys_errno;
    char msg[256];
    coil_protocol *proto;
    coil_reactor *r;
} outcome;

static void on_ok(coil_deferred *d, void *arg)
{
    outcome *o = arg;
    o->fired = 1;
    o->proto = coil_deferred_result(d);
}

static void on_fail(coil_deferred *d, void *arg)
{
    outcome *o = arg;
    const coil_failure *f = coil_deferred_failure(d);
    o->fired = o->failed = 1;
    o->code = coil_failure_code(f);
    snprintf(o->msg, sizeof o->msg, "%s", coil_failure_message(f));
    coil_deferred_set_result(d, NULL, NULL); /* handled */
    coil_reactor_stop(o->r);
}

static int give_up(void *arg)
{
    coil_reactor_stop(arg);
    return 0;
}

static void ping_over(coil_reactor *r, const char *server, const char *client_text)
{
    coil_factory f = {.ops = &echo_factory_ops};
    coil_listener *l;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_listen(r, server, &f, &l, &err), 0);
    char text[256];
    if (strstr(client_text, "%d")) {
        coil_address a;
        CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);
        snprintf(text, sizeof text, client_text, coil_address_port(&a));
    } else {
        snprintf(text, sizeof text, "%s", client_text);
    }
    coil_endpoint *e;
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_client(text, &e, &err), 0);
    int made = 0, lost = 0;
    client *c = calloc(1, sizeof *c);
    c->p.ops = &client_ops;
    c->made = &made;
    c->lost = &lost;
    outcome o = {.r = r};
    coil_deferred *d = coil_connect_protocol(r, e, &c->p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    coil_deferred_add_callbacks(d, on_ok, on_fail, &o);
    coil_timer *t = coil_reactor_call_later(r, 10, give_up, r);
    coil_reactor_run(r);
    coil_timer_cancel(t);
    coil_timer_release(t);
    CU_ASSERT_EQUAL(o.fired, 1);
    CU_ASSERT_EQUAL(o.failed, 0);
    CU_ASSERT_PTR_EQUAL(o.proto, &c->p);
    CU_ASSERT_EQUAL(made, 1);
    CU_ASSERT_EQUAL(c->len, 4);
    CU_ASSERT_EQUAL(memcmp(c->got, "ping", 4), 0);
    coil_transport_lose_connection(c->p.transport);
    for (int i = 0; i < 100 && !lost; i++)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT_EQUAL(lost, 1);
    coil_deferred_unref(d);
    coil_endpoint_free(e);
    coil_listener_close(l);
    coil_reactor_iterate(r, 0);
}

static void test_connect_protocol_tcp_and_unix(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    ping_over(r, "tcp:0:interface=127.0.0.1", "tcp:127.0.0.1:%d");
    ping_over(r, "tcp:port=0:interface=\\:\\:1", "tcp:host=\\:\\:1:port=%d:timeout=5");
    char path[64], server[80], cl[80];
    snprintf(path, sizeof path, "/tmp/coil-ep-%d.sock", (int)getpid());
    snprintf(server, sizeof server, "unix:%s:mode=0600", path);
    snprintf(cl, sizeof cl, "unix:path=%s", path);
    ping_over(r, server, cl);
    unlink(path);
    coil_reactor_free(r);
}

/* A port nobody listens on: one we listened on, then closed. */
static int closed_port(coil_reactor *r)
{
    coil_factory f = {.ops = &echo_factory_ops};
    coil_listener *l;
    coil_address a;
    CU_ASSERT_EQUAL_FATAL(coil_listen(r, "tcp:0:interface=127.0.0.1", &f, &l, NULL), 0);
    coil_listener_get_host(l, &a);
    coil_listener_close(l);
    return coil_address_port(&a);
}

static void test_connect_protocol_refused(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    char text[64];
    snprintf(text, sizeof text, "tcp:127.0.0.1:%d", closed_port(r));
    coil_endpoint *e;
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_client(text, &e, NULL), 0);
    int made = 0, lost = 0;
    client *c = calloc(1, sizeof *c);
    c->p.ops = &client_ops;
    c->made = &made;
    c->lost = &lost;
    outcome o = {.r = r};
    coil_deferred *d = coil_connect_protocol(r, e, &c->p);
    coil_deferred_add_callbacks(d, on_ok, on_fail, &o);
    coil_timer *t = coil_reactor_call_later(r, 10, give_up, r);
    coil_reactor_run(r);
    coil_timer_cancel(t);
    coil_timer_release(t);
    CU_ASSERT_EQUAL(o.failed, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(o.msg, "Connection refused"));
    CU_ASSERT_PTR_NOT_NULL(strstr(o.msg, "127.0.0.1"));
    CU_ASSERT_EQUAL(made, 0);
    coil_deferred_unref(d);
    coil_endpoint_free(e);
    coil_reactor_iterate(r, 0); /* the one-shot factory frees itself */
    coil_reactor_free(r);
}

static void test_connect_protocol_cancel(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    /* A UNIX path that is not there fails at once; a TCP connect to a
     * non-routable address stays pending, so cancel it. */
    coil_endpoint *e;
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_client("tcp:10.255.255.1:9:timeout=30", &e, NULL),
                          0);
    int made = 0, lost = 0;
    client *c = calloc(1, sizeof *c);
    c->p.ops = &client_ops;
    c->made = &made;
    c->lost = &lost;
    outcome o = {.r = r};
    coil_deferred *d = coil_connect_protocol(r, e, &c->p);
    coil_deferred_add_callbacks(d, on_ok, on_fail, &o);
    if (!o.fired) {
        coil_deferred_cancel(d);
        CU_ASSERT_EQUAL(o.failed, 1);
        CU_ASSERT_EQUAL(o.code, COIL_ECANCELLED);
    } else {
        /* No route at all on this machine: the attempt failed at once. */
        CU_ASSERT_EQUAL(o.failed, 1);
    }
    coil_deferred_unref(d);
    coil_endpoint_free(e);
    coil_reactor_iterate(r, 0);
    coil_reactor_free(r);
}

/* A listener that never accepts, with its accept queue full: the kernel
 * drops further SYNs, so a connect hangs until coil's timeout. */
typedef struct fail_rec {
    coil_factory f;
    coil_reactor *r;
    int failed, code;
    char msg[256];
} fail_rec;

static void rec_failed(coil_factory *f, coil_connector *c, const coil_failure *why)
{
    fail_rec *fr = (fail_rec *)f;
    fr->failed++;
    fr->code = coil_failure_code(why);
    snprintf(fr->msg, sizeof fr->msg, "%s", coil_failure_message(why));
    coil_reactor_stop(fr->r);
}

static const coil_factory_ops rec_ops = {.build_protocol = echo_build,
                                         .connection_failed = rec_failed};

static void test_connect_timeout(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    CU_ASSERT_EQUAL_FATAL(bind(lfd, (struct sockaddr *)&sa, sl), 0);
    CU_ASSERT_EQUAL_FATAL(listen(lfd, 0), 0);
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    /* Fill the accept queue (backlog 0 holds one) with blocking connects. */
    int fillers[4], nf = 0;
    for (; nf < 2; nf++) {
        fillers[nf] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fillers[nf], (struct sockaddr *)&sa, sl);
    }
    /* The first is in the queue once its handshake is done (it turns
     * writable): wait for that, not for a fixed time. The second's SYN is
     * dropped, as ours will be. */
    struct pollfd pfd = {.fd = fillers[0], .events = POLLOUT};
    CU_ASSERT_EQUAL_FATAL(poll(&pfd, 1, 10000), 1);
    char text[64];
    snprintf(text, sizeof text, "tcp:127.0.0.1:%d:timeout=0.5", ntohs(sa.sin_port));
    fail_rec fr = {.f.ops = &rec_ops, .r = r};
    coil_connector *k;
    coil_failure *err = NULL;
    double t0 = coil_reactor_seconds(r);
    CU_ASSERT_EQUAL_FATAL(coil_connect(r, text, &fr.f, &k, &err), 0);
    coil_timer *t = coil_reactor_call_later(r, 10, give_up, r);
    coil_reactor_run(r);
    coil_timer_cancel(t);
    coil_timer_release(t);
    double took = coil_reactor_seconds(r) - t0;
    CU_ASSERT_EQUAL(fr.failed, 1);
    CU_ASSERT_EQUAL(fr.code, COIL_ETIMEDOUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(fr.msg, "timed out after 0.5 s"));
    CU_ASSERT_PTR_NOT_NULL(strstr(fr.msg, "127.0.0.1"));
    CU_ASSERT(took >= 0.45 && took < 5);
    coil_connector_free(k);
    for (int i = 0; i < nf; i++)
        close(fillers[i]);
    close(lfd);
    coil_reactor_free(r);
}

static void test_wrong_side_and_listen_error(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_factory f = {.ops = &echo_factory_ops};
    coil_endpoint *e;
    coil_failure *err = NULL;
    coil_listener *l;
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_client("tcp:localhost:80", &e, NULL), 0);
    CU_ASSERT_EQUAL(coil_endpoint_listen(r, e, &f, &l, &err), COIL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    CU_ASSERT_PTR_NOT_NULL(strstr(coil_failure_message(err), "is not a server endpoint"));
    coil_failure_free(err);
    coil_endpoint_free(e);

    /* Listening twice on one port: the second says where and why. */
    CU_ASSERT_EQUAL_FATAL(coil_listen(r, "tcp:0:interface=127.0.0.1", &f, &l, NULL), 0);
    coil_address a;
    coil_listener_get_host(l, &a);
    char text[64];
    snprintf(text, sizeof text, "tcp:%d:interface=127.0.0.1", coil_address_port(&a));
    coil_listener *l2;
    CU_ASSERT_NOT_EQUAL(coil_listen(r, text, &f, &l2, &err), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    CU_ASSERT_PTR_NOT_NULL(strstr(coil_failure_message(err), "in use"));
    coil_failure_free(err);
    coil_listener_close(l);

    /* A bad description through coil_connect says so. */
    coil_connector *k;
    CU_ASSERT_EQUAL(coil_connect(r, "tcp:nohost", &f, &k, &err), COIL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(coil_failure_message(err), "bad client endpoint"));
    coil_failure_free(err);
    coil_reactor_free(r);
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_desc_split_and_escapes),
        COIL_TEST(test_desc_errors),
        COIL_TEST(test_server_kinds),
        COIL_TEST(test_client_kinds),
        COIL_TEST(test_water_mark_keys),
        COIL_TEST(test_water_marks_reach_connections),
        COIL_TEST(test_connect_protocol_tcp_and_unix),
        COIL_TEST(test_connect_protocol_refused),
        COIL_TEST(test_connect_protocol_cancel),
        COIL_TEST(test_connect_timeout),
        COIL_TEST(test_wrong_side_and_listen_error),
        {NULL, NULL},
    };
    return coil_test_add_suite("endpoint", cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
