/* The transport conformance suite over coil's SSH client talking to coil's
 * SSH server, both in this process on loopback TCP: the suite's client
 * protocol runs on a channel of a coil_ssh_session (libssh2), and its
 * server protocol runs on the server's end of the same channel, built
 * straight by the server's factory (exec) or direct-tcpip policy. Both
 * ends are coil protocols on SSH channels; nothing relays.
 *
 * Rows:
 *  - "coil SSH server exec": an exec channel ("conformance"), the server
 *    end from coil_ssh_server_options.exec;
 *  - "coil SSH server direct-tcpip": a direct-tcpip channel (to
 *    127.0.0.1:1, never connected: the policy hands the channel itself to
 *    the server protocol).
 * What differs from TCP: abort_is_eof (a channel has no reset: abort sends
 * CLOSE, the far end reads EOF); addresses: the client's host names the
 * session ("ssh:USER@127.0.0.1:PORT") and its peer the channel, the
 * server end's host and peer are the SSH connection's.
 * The suite "coil SSH server channel memory bound", both ways: a paused
 * reader on either end stops the writer on the other, and the process's
 * heap (client and server together) grows by no more than the windows and
 * queues while 32 MiB wait to be sent. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <coil/ssh.h>
#include <coil/ssh_server.h>

#include "conformance.h"
#include "sshd_app.h"
#include "testutil.h"

/* ---- a server and a session on one reactor ----------------------------------------- */

#define USER "conformance"

typedef struct end_queue {
    coil_protocol **p;
    size_t head, len, cap;
} end_queue;

typedef struct row {
    const char *name;
    int exec;               /* 1: exec channels; 0: direct-tcpip */
    uint32_t server_window; /* 0: the server's default */
    coil_factory queue_factory;
    end_queue q;
    coil_ssh_server *srv;
    coil_listener *listener;
    int port;
    coil_ssh_session *session;
    char known_hosts[256];
} row;

/* Server ends in the order their channels were opened (the server opens
 * them in the order the client asked). */
static coil_protocol *queue_build(coil_factory *f, const coil_address *peer)
{
    (void)peer;
    row *x = f->user;
    if (x->q.head == x->q.len)
        return NULL;
    return x->q.p[x->q.head++];
}

static const coil_factory_ops queue_factory_ops = {.build_protocol = queue_build};

static coil_factory *direct_policy(void *arg, const char *user, const char *host,
                                   int port)
{
    (void)user, (void)host, (void)port;
    return &((row *)arg)->queue_factory;
}

static int queue_push(end_queue *q, coil_protocol *p)
{
    if (q->len == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 64;
        coil_protocol **n = realloc(q->p, ncap * sizeof *n);
        if (!n)
            return COIL_ENOMEM;
        q->p = n;
        q->cap = ncap;
    }
    q->p[q->len++] = p;
    return 0;
}

static void queue_remove(end_queue *q, coil_protocol *p)
{
    for (size_t i = q->head; i < q->len; i++) {
        if (q->p[i] == p) {
            memmove(q->p + i, q->p + i + 1, (q->len - i - 1) * sizeof *q->p);
            q->len--;
            return;
        }
    }
}

static void session_lost(void *arg, coil_ssh_session *s, const coil_failure *reason)
{
    (void)s;
    if (getenv("COIL_TEST_VERBOSE")) {
        char *m = coil_failure_to_string(reason);
        fprintf(stderr, "conformance: %s: session ended: %s\n", (const char *)arg, m);
        free(m);
    }
}

/* Server, listener and client session of a row on `r` (once per suite). */
static int row_setup(coil_reactor *r, row *x, size_t client_window)
{
    if (x->session)
        return 0;
    x->queue_factory.ops = &queue_factory_ops;
    x->queue_factory.user = x;
    coil_ssh_server_options o = {0};
    o.host_key_file = coil_test_sshd_interop("HOST_KEY");
    o.authorized_keys_file = coil_test_sshd_interop("AUTHORIZED_KEYS");
    o.exec = &x->queue_factory;
    o.direct_tcpip = direct_policy;
    o.direct_tcpip_arg = x;
    o.max_channels = 1100; /* the "1,000 connections" case on one session */
    o.window = x->server_window;
    coil_failure *err = NULL;
    coil_address a;
    coil_tcp_listen_options lo = {0};
    lo.interface = "127.0.0.1";
    if (coil_ssh_server_new(r, &o, &x->srv, &err) != 0 ||
        coil_tcp_listen(r, &lo, coil_ssh_server_factory(x->srv), &x->listener, &err) !=
            0 ||
        coil_listener_get_host(x->listener, &a) != 0) {
        fprintf(stderr, "conformance: %s: the server did not start: %s\n", x->name,
                err ? coil_failure_message(err) : "?");
        coil_failure_free(err);
        return COIL_EINVAL;
    }
    x->port = coil_address_port(&a);
    if (coil_test_sshd_interop_known_hosts(x->known_hosts, sizeof x->known_hosts, x->port,
                                           "sshd-conf-kh") != 0)
        return COIL_EINVAL;
    coil_ssh_options so = {0};
    so.host = "127.0.0.1";
    so.port = x->port;
    so.user = USER;
    so.known_hosts_file = x->known_hosts;
    so.host_key_policy = COIL_SSH_HOST_KEY_STRICT;
    so.identity_file = coil_test_sshd_interop("KEY_ED25519");
    so.window = client_window;
    if (coil_ssh_session_connect(r, &so, &x->session, &err) != 0) {
        fprintf(stderr, "conformance: %s: cannot start the session: %s\n", x->name,
                err ? coil_failure_message(err) : "?");
        coil_failure_free(err);
        return COIL_EINVAL;
    }
    coil_ssh_session_on_lost(x->session, session_lost, (void *)x->name);
    return 0;
}

/* After the reactor's shutdown closed every connection. */
static void row_cleanup(row *x)
{
    if (x->session)
        coil_ssh_session_free(x->session);
    if (x->listener)
        coil_listener_close(x->listener);
    if (x->srv)
        coil_ssh_server_free(x->srv);
    if (x->known_hosts[0])
        unlink(x->known_hosts);
    free(x->q.p);
    const char *name = x->name;
    int exec = x->exec;
    uint32_t w = x->server_window;
    memset(x, 0, sizeof *x);
    x->name = name;
    x->exec = exec;
    x->server_window = w;
}

typedef struct open_ctx {
    row *x;
    coil_protocol *server;
} open_ctx;

static void open_failed(coil_deferred *d, void *arg)
{
    open_ctx *o = arg;
    queue_remove(&o->x->q, o->server);
    coil_failure *f = coil_deferred_take_failure(d);
    char *m = coil_failure_to_string(f);
    fprintf(stderr, "conformance: %s: channel open failed: %s\n", o->x->name, m);
    free(m);
    coil_failure_free(f);
}

/* Open a channel for client protocol c, whose server end will be s. */
static int open_pair(row *x, coil_protocol *c, coil_protocol *s)
{
    int rc = queue_push(&x->q, s);
    if (rc != 0)
        return rc;
    coil_ssh_channel_options o = {0};
    if (x->exec) {
        o.type = COIL_SSH_EXEC;
        o.command = "conformance";
    } else {
        o.type = COIL_SSH_DIRECT_TCPIP;
        o.host = "127.0.0.1";
        o.port = 1;
    }
    open_ctx *oc = malloc(sizeof *oc);
    if (!oc)
        return COIL_ENOMEM;
    oc->x = x;
    oc->server = s;
    coil_deferred *d = coil_ssh_open_channel(x->session, &o, c);
    if (!d) {
        free(oc);
        return COIL_ENOMEM;
    }
    coil_deferred_add_callbacks_full(d, NULL, open_failed, oc, free);
    coil_deferred_unref(d);
    return 0;
}

/* ---- the conformance rows ------------------------------------------------------------
 */

static int make_pair(coil_reactor *r, coil_protocol *c, coil_protocol *s, void *ctx)
{
    row *x = ctx;
    int rc = row_setup(r, x, 0);
    return rc != 0 ? rc : open_pair(x, c, s);
}

static void cleanup(coil_reactor *r, void *ctx)
{
    (void)r;
    row_cleanup(ctx);
}

static void check_addresses(const char *client_host, const char *client_peer,
                            const char *server_host, const char *server_peer, void *ctx)
{
    row *x = ctx;
    char want[160];
    snprintf(want, sizeof want, "ssh:%s@127.0.0.1:%d", USER, x->port);
    CU_ASSERT_STRING_EQUAL(client_host, want);
    snprintf(want, sizeof want, "ssh:127.0.0.1:%d/", x->port);
    CU_ASSERT(strncmp(client_peer, want, strlen(want)) == 0);
    CU_ASSERT(strstr(client_peer, x->exec ? "exec " : "direct-tcpip ") != NULL);
    /* The server end: the SSH connection's own addresses. */
    snprintf(want, sizeof want, "127.0.0.1:%d", x->port);
    CU_ASSERT_STRING_EQUAL(server_host, want);
    CU_ASSERT(strncmp(server_peer, "127.0.0.1:", 10) == 0 &&
              strcmp(server_peer, want) != 0);
    if (getenv("COIL_TEST_VERBOSE"))
        fprintf(stderr, "client %s -> %s, server %s <- %s\n", client_host, client_peer,
                server_host, server_peer);
}

static row exec_row = {.name = "coil SSH server exec", .exec = 1},
           direct_row = {.name = "coil SSH server direct-tcpip", .exec = 0};

static const coil_conformance_kind table[] = {
    {.name = "coil SSH server exec",
     .make_pair = make_pair,
     .ctx = &exec_row,
     .cleanup = cleanup,
     .slack = 0,
     .abort_is_eof = 1,
     .check_addresses = check_addresses},
    {.name = "coil SSH server direct-tcpip",
     .make_pair = make_pair,
     .ctx = &direct_row,
     .cleanup = cleanup,
     .slack = 0,
     .abort_is_eof = 1,
     .check_addresses = check_addresses},
};

/* ---- the memory bound, both ways ------------------------------------------------------
 */

static coil_reactor *R;
#define WINDOW (1024 * 1024) /* both ends' receive windows */
#define TOTAL  (32 * 1024 * 1024)
/* The heap may grow by the two windows, the write queues and the session's
 * and server's input buffers while TOTAL waits: 4 MiB, an eighth of it (about 1.2 MiB
 * seen). */
#define HEAP_BOUND (4 * 1024 * 1024)
static row mem_row = {.name = "memory bound", .exec = 0, .server_window = WINDOW};

extern size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

/* Bytes the process has allocated now (ASan's count under ASan). */
static size_t heap_bytes(void)
{
    if (__sanitizer_get_current_allocated_bytes)
        return __sanitizer_get_current_allocated_bytes();
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

typedef coil_conformance_end end;

static int mem_init(void)
{
    coil_reactor_options ro = {0};
    if (coil_reactor_new(&R, &ro) != 0) {
        fprintf(stderr,
                "test_conformance_sshd: cannot make a reactor (COIL_REACTOR=%s)\n",
                getenv("COIL_REACTOR") ? getenv("COIL_REACTOR") : "");
        return -1;
    }
    return row_setup(R, &mem_row, WINDOW) == 0 ? 0 : -1;
}

static int mem_clean(void)
{
    int aborted = coil_reactor_shutdown(R, 10.0);
    int bad = aborted != 0 || coil_reactor_transport_count(R) != 0;
    row_cleanup(&mem_row);
    coil_reactor_free(R);
    R = NULL;
    return bad ? -1 : 0;
}

static int mem_pair(end *c, end *s)
{
    CU_ASSERT_EQUAL_FATAL(open_pair(&mem_row, &c->base, &s->base), 0);
    return coil_conformance_ends_made(R, c, s);
}

/* `writer` floods `reader`, which does not read: the writer must end
 * paused and stay so, with the heap bounded. Then the reader reads and
 * every byte arrives in order. */
static void flood_stopped_reader(end *writer, end *reader, const char *what)
{
    size_t heap0 = heap_bytes(), heap_max = heap0;
    double limit = coil_reactor_seconds(R) + 60;
    /* Until the writer has been paused, not writing, for 1 s. */
    while (!(writer->paused && coil_reactor_seconds(R) - writer->last_write > 1.0) &&
           !writer->lost && !reader->lost && coil_reactor_seconds(R) < limit) {
        coil_reactor_iterate(R, 0.01);
        size_t h = heap_bytes();
        if (h > heap_max)
            heap_max = h;
    }
    CU_ASSERT(writer->paused);
    CU_ASSERT(writer->sent < TOTAL);
    CU_ASSERT_EQUAL(reader->got, 0);
    CU_ASSERT(heap_max - heap0 <= HEAP_BOUND);
    coil_transport_info info;
    if (writer->base.transport &&
        coil_transport_info_get(writer->base.transport, &info) == 0)
        CU_ASSERT(writer->max_queued <= info.high_water + sizeof writer->chunk);
    if (heap_max - heap0 > HEAP_BOUND || getenv("COIL_TEST_VERBOSE"))
        fprintf(
            stderr,
            "\n    %s: writer stopped after %zu bytes (queue up to %zu), heap grew by "
            "%zu (bound %d)\n",
            what, writer->sent, writer->max_queued, heap_max - heap0, HEAP_BOUND);
    coil_transport_resume_reading(reader->base.transport);
    CU_ASSERT(coil_conformance_run_until(R, coil_conformance_end_got_all, reader, 120));
    CU_ASSERT_EQUAL(reader->got, (size_t)TOTAL);
    CU_ASSERT_EQUAL(reader->mismatch, 0);
    CU_ASSERT(writer->pauses > 0);
    if (writer->base.transport)
        coil_transport_unregister_producer(writer->base.transport);
}

static void test_server_writer_client_paused(void)
{
    end *c, *s;
    CU_ASSERT_EQUAL_FATAL(coil_conformance_ends_new(R, 0, TOTAL, &c, &s), 0);
    if (mem_pair(c, s)) {
        flood_stopped_reader(s, c, "server writes, client paused");
        coil_conformance_ends_finish(R, c, s);
    }
    free(c);
    free(s);
}

static void test_client_writer_server_paused(void)
{
    end *c, *s;
    CU_ASSERT_EQUAL_FATAL(coil_conformance_ends_new(R, 1, TOTAL, &c, &s), 0);
    if (mem_pair(c, s)) {
        flood_stopped_reader(c, s, "client writes, server paused");
        coil_conformance_ends_finish(R, c, s);
    }
    free(c);
    free(s);
}

/* ---- main ----------------------------------------------------------------------------
 */

static int add_suites(void)
{
    static coil_conformance_kind rows[sizeof table / sizeof table[0]];
    if (coil_conformance_add_selected(table, sizeof table / sizeof table[0], rows) != 0)
        return -1;
    if (!coil_conformance_selected("coil SSH server channel memory bound"))
        return 0;
    CU_pSuite s =
        CU_add_suite("coil SSH server channel memory bound", mem_init, mem_clean);
    if (!s ||
        !CU_add_test(s, "the server writes, the client's reader is paused: writer stops",
                     test_server_writer_client_paused) ||
        !CU_add_test(s, "the client writes, the server's reader is paused: writer stops",
                     test_client_writer_server_paused))
        return -1;
    return 0;
}

int main(void)
{
    (void)coil_test_sshd_interop("HOST_KEY");
    return coil_test_main(add_suites);
}
