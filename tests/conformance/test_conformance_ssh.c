/* The conformance suite over SSH channels, through the throwaway OpenSSH
 * sshd of the ctest fixture `sshd` (tests/ssh/sshd-fixture.sh), plus the
 * channel's memory bound both ways.
 *
 * Rows (one SSH session per row, shared by all its pairs; strict host keys
 * against the fixture's known_hosts; the fixture's ed25519 user key):
 *  - "SSH direct-tcpip": the client protocol on a direct-tcpip channel to
 *    127.0.0.1:PORT, where a coil TCP listener runs the server protocol
 *    (sshd connects to it);
 *  - "SSH exec": an exec channel running tests/ssh/relay.c (coil-ssh-relay
 *    127.0.0.1 PORT) on the server, which joins the command's stdin/stdout
 *    to the same kind of coil listener. `exec cat` would give one coil end
 *    only (it echoes); the relay keeps the suite's two ends and the data
 *    path of `exec cat` (channel -> sshd -> the command's pipes). relay.c
 *    says why it is not `nc -N`;
 *  - "TLS over SSH direct-tcpip": coil's TLS client layer on the channel, a
 *    coil TLS listener at the far end (certificates from $COIL_TEST_CERTS,
 *    as the TLS rows).
 * What differs from TCP, per row:
 *  - abort_is_eof: an SSH channel has no reset. Aborting a channel sends
 *    CLOSE; sshd then closes its socket to the far end (direct-tcpip) or
 *    the relay's stdin (exec), and the far end reads EOF;
 *  - addresses (check_addresses): the two ends are different sockets
 *    joined by sshd, so the client's peer names the channel
 *    ("ssh:127.0.0.1:PORT/direct-tcpip 127.0.0.1:LPORT": the far end's own
 *    address as seen from the server) and its host names the session
 *    ("ssh:USER@127.0.0.1:PORT"), while the server end sees sshd's (or the
 *    relay's) socket on 127.0.0.1;
 *  - slack: 0. A channel's write queue is bounded by its own marks like
 *    TCP's; below it, the session's transport holds at most its own
 *    high-water mark plus one packet (channel writes stop while it is past
 *    its mark), which the "SSH channel memory bound" suite asserts.
 * The suite "SSH channel memory bound" (after the rows): a channel reader
 *  paused while the far end floods it stops the far writer, with what coil
 *  buffers for it (libssh2's unread window plus the session's input)
 *  under one window plus the session's input bound; and a writer flooding a
 *  far end that does not read stays bounded in the channel's queue and in
 *  the session's transport below. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conformance.h"
#include "ssh_private.h"
#include "testutil.h"

/* ---- the session ----------------------------------------------------------------- */

static void session_lost(void *arg, coil_ssh_session *s, const coil_failure *reason)
{
    /* Expected at the end of each suite (the reactor's shutdown closes the
     * transport below); anything else shows in the cases that fail. */
    if (getenv("COIL_TEST_VERBOSE")) {
        char *m = coil_failure_to_string(reason);
        fprintf(stderr, "conformance: SSH session %s ended: %s\n", (const char *)arg, m);
        free(m);
    }
}

/* A session to the fixture's sshd: strict host keys against its
 * known_hosts, its ed25519 user key. */
static coil_ssh_session *session_to_fixture(coil_reactor *r, const char *tag,
                                            size_t window)
{
    coil_ssh_options o = {0};
    o.host = coil_test_sshd("SSHD_HOST");
    o.port = atoi(coil_test_sshd("SSHD_PORT"));
    o.user = coil_test_sshd("SSH_USER");
    o.known_hosts_file = coil_test_sshd("SSH_KNOWN_HOSTS");
    o.host_key_policy = COIL_SSH_HOST_KEY_STRICT;
    o.identity_file = coil_test_sshd("SSH_KEY_ED25519");
    o.window = window;
    coil_ssh_session *s = NULL;
    coil_failure *err = NULL;
    if (coil_ssh_session_connect(r, &o, &s, &err) != 0) {
        char *m = coil_failure_to_string(err);
        fprintf(stderr, "conformance: cannot start an SSH session to %s:%d: %s\n", o.host,
                o.port, m);
        free(m);
        coil_failure_free(err);
        return NULL;
    }
    coil_ssh_session_on_lost(s, session_lost, (void *)tag);
    return s;
}

/* A channel that does not open says why (its protocol is destroyed by
 * coil; the case then fails waiting for connection_made). */
static void open_failed(coil_deferred *d, void *arg)
{
    coil_failure *f = coil_deferred_take_failure(d);
    char *m = coil_failure_to_string(f);
    fprintf(stderr, "conformance: %s: channel open failed: %s\n", (const char *)arg, m);
    free(m);
    coil_failure_free(f);
}

static int open_channel(coil_ssh_session *s, const coil_ssh_channel_options *o,
                        coil_protocol *p, const char *tag)
{
    coil_deferred *d = coil_ssh_open_channel(s, o, p);
    if (!d)
        return COIL_ENOMEM;
    coil_deferred_add_errback(d, open_failed, (void *)tag);
    coil_deferred_unref(d);
    return 0;
}

/* ---- the rows -------------------------------------------------------------------- */

enum { ROW_DIRECT, ROW_EXEC };

typedef struct ssh_row {
    const char *name;
    int kind; /* ROW_DIRECT, ROW_EXEC */
    int tls;  /* TLS over the channel */
    coil_ssh_session *session;
    coil_factory server_factory;
    coil_listener *listener;
    int port;
    char command[600];
    /* Server protocols waiting for their connection, in open order. Exec
     * relays may connect out of order when many channels open at once;
     * only the 1,000-connections case does that, and its server ends are
     * all alike. */
    coil_protocol **pending;
    size_t head, len, cap;
} ssh_row;

static coil_protocol *server_build(coil_factory *f, const coil_address *peer)
{
    ssh_row *x = f->user;
    if (x->head == x->len)
        return NULL;
    return x->pending[x->head++];
}

static const coil_factory_ops server_factory_ops = {.build_protocol = server_build};

static int row_setup(coil_reactor *r, ssh_row *x)
{
    if (x->session)
        return 0;
    if (x->tls && coil_conformance_tls_contexts() != 0)
        return COIL_EINVAL;
    x->server_factory.ops = &server_factory_ops;
    x->server_factory.user = x;
    coil_tcp_listen_options lo = {0};
    lo.interface = "127.0.0.1";
    lo.backlog = 1024;
    coil_failure *err = NULL;
    int rc = x->tls ? coil_tls_listen_tcp(r, &lo, coil_conformance_tls_server_ctx(),
                                          &x->server_factory, &x->listener, &err)
                    : coil_tcp_listen(r, &lo, &x->server_factory, &x->listener, &err);
    coil_address a;
    if (rc == 0 && (rc = coil_listener_get_host(x->listener, &a)) == 0)
        x->port = coil_address_port(&a);
    if (rc != 0) {
        char *m = coil_failure_to_string(err);
        fprintf(stderr, "conformance: %s: cannot listen on 127.0.0.1: %s\n", x->name, m);
        free(m);
        coil_failure_free(err);
        return rc;
    }
    if (x->kind == ROW_EXEC) {
        const char *relay = getenv("COIL_TEST_SSH_RELAY");
        if (!relay || !*relay) {
            fprintf(stderr,
                    "conformance: COIL_TEST_SSH_RELAY is not set: run through ctest "
                    "(it names the coil-ssh-relay program the build made)\n");
            return COIL_EINVAL;
        }
        snprintf(x->command, sizeof x->command, "'%s' 127.0.0.1 %d", relay, x->port);
    }
    x->session = session_to_fixture(r, x->name, 0);
    return x->session ? 0 : COIL_EINVAL;
}

/* A channel that did not open takes its server end out of the queue (no
 * connection will come for it), so the next pair gets the right one. */
typedef struct open_ctx {
    ssh_row *x;
    coil_protocol *server;
} open_ctx;

static void row_open_failed(coil_deferred *d, void *arg)
{
    open_ctx *o = arg;
    ssh_row *x = o->x;
    for (size_t i = x->head; i < x->len; i++) {
        if (x->pending[i] == o->server) {
            memmove(x->pending + i, x->pending + i + 1,
                    (x->len - i - 1) * sizeof *x->pending);
            x->len--;
            break;
        }
    }
    open_failed(d, (void *)x->name);
}

static int ssh_pair(coil_reactor *r, coil_protocol *c, coil_protocol *s, void *ctx)
{
    ssh_row *x = ctx;
    int rc = row_setup(r, x);
    if (rc != 0)
        return rc;
    if (x->len == x->cap) {
        size_t ncap = x->cap ? x->cap * 2 : 64;
        coil_protocol **p = realloc(x->pending, ncap * sizeof *p);
        if (!p)
            return COIL_ENOMEM;
        x->pending = p;
        x->cap = ncap;
    }
    x->pending[x->len++] = s;
    coil_protocol *p = c;
    if (x->tls && !(p = coil_tls_wrap(coil_conformance_tls_client_ctx(), "localhost", c)))
        return COIL_ENOMEM;
    coil_ssh_channel_options o = {0};
    if (x->kind == ROW_DIRECT) {
        o.type = COIL_SSH_DIRECT_TCPIP;
        o.host = "127.0.0.1";
        o.port = x->port;
    } else {
        o.type = COIL_SSH_EXEC;
        o.command = x->command;
    }
    open_ctx *oc = malloc(sizeof *oc);
    if (!oc)
        return COIL_ENOMEM;
    oc->x = x;
    oc->server = s;
    coil_deferred *d = coil_ssh_open_channel(x->session, &o, p);
    if (!d) {
        free(oc);
        return COIL_ENOMEM;
    }
    coil_deferred_add_callbacks_full(d, NULL, row_open_failed, oc, free);
    coil_deferred_unref(d);
    return 0;
}

static void ssh_cleanup(coil_reactor *r, void *ctx)
{
    ssh_row *x = ctx;
    /* The reactor's shutdown has closed every connection, the session's
     * transport too: only the caller's reference is left. */
    coil_ssh_session_free(x->session);
    coil_listener_close(x->listener);
    free(x->pending);
    const char *name = x->name;
    int kind = x->kind, tls = x->tls;
    memset(x, 0, sizeof *x);
    x->name = name;
    x->kind = kind;
    x->tls = tls;
    if (tls)
        coil_conformance_tls_contexts_free();
}

/* get_peer / get_host of an SSH row: see the header comment. */
static void ssh_check_addresses(const char *client_host, const char *client_peer,
                                const char *server_host, const char *server_peer,
                                void *ctx)
{
    ssh_row *x = ctx;
    char want[160];
    const char *user = coil_test_sshd("SSH_USER");
    const char *where_host = coil_test_sshd("SSHD_HOST");
    const char *where_port = coil_test_sshd("SSHD_PORT");
    /* The session: "ssh:USER@HOST:PORT". */
    snprintf(want, sizeof want, "ssh:%s@%s:%s", user, where_host, where_port);
    CU_ASSERT_STRING_EQUAL(client_host, want);
    /* The channel, naming the far end's own address for direct-tcpip. */
    snprintf(want, sizeof want, "ssh:%s:%s/", where_host, where_port);
    CU_ASSERT(strncmp(client_peer, want, strlen(want)) == 0);
    if (x->kind == ROW_DIRECT) {
        snprintf(want, sizeof want, "direct-tcpip %s", server_host);
        CU_ASSERT(strstr(client_peer, want) != NULL);
    } else {
        CU_ASSERT(strstr(client_peer, "exec ") != NULL);
    }
    snprintf(want, sizeof want, "127.0.0.1:%d", x->port);
    CU_ASSERT_STRING_EQUAL(server_host, want);
    CU_ASSERT(strncmp(server_peer, "127.0.0.1:", 10) == 0);
    if (getenv("COIL_TEST_VERBOSE"))
        fprintf(stderr, "client %s -> %s, server %s <- %s\n", client_host, client_peer,
                server_host, server_peer);
}

static ssh_row direct = {.name = "SSH direct-tcpip", .kind = ROW_DIRECT},
               exec_row = {.name = "SSH exec", .kind = ROW_EXEC},
               tls_direct = {
                   .name = "TLS over SSH direct-tcpip", .kind = ROW_DIRECT, .tls = 1};

static const coil_conformance_kind table[] = {
    {.name = "SSH direct-tcpip",
     .make_pair = ssh_pair,
     .ctx = &direct,
     .cleanup = ssh_cleanup,
     .slack = 0,
     .abort_is_eof = 1,
     .check_addresses = ssh_check_addresses},
    {.name = "SSH exec",
     .make_pair = ssh_pair,
     .ctx = &exec_row,
     .cleanup = ssh_cleanup,
     .slack = 0,
     .abort_is_eof = 1,
     .check_addresses = ssh_check_addresses,
     /* Every exec channel is a shell and a relay process on the server: 200
      * at once (the fixture's sshd allows MaxSessions 1100) test the same
      * session multiplexing without forking 2,000 processes on a 2-core CI
      * machine; the direct-tcpip rows open the full 1,000. */
     .many = 200},
    {.name = "TLS over SSH direct-tcpip",
     .make_pair = ssh_pair,
     .ctx = &tls_direct,
     .cleanup = ssh_cleanup,
     .slack = 0,
     .abort_is_eof = 1,
     .check_addresses = ssh_check_addresses},
};

/* ---- the channel's memory bound, both ways ---------------------------------------- */

static coil_reactor *R;

typedef int (*cond_fn)(void *arg);

static int run_until(cond_fn cond, void *arg, double timeout)
{
    return coil_conformance_run_until(R, cond, arg, timeout);
}

typedef coil_conformance_end end;

static size_t lower_queued(coil_transport *t)
{
    coil_ssh_session *s = coil_ssh_channel_session(t);
    coil_transport_info info;
    if (!s || !s->lower || s->lower_gone || coil_transport_info_get(s->lower, &info) != 0)
        return 0;
    return info.write_queued;
}

/* The far end: one coil TCP listener, one connection at a time. */
static end *far_end;
static coil_protocol *far_build(coil_factory *f, const coil_address *peer)
{
    coil_protocol *p = far_end ? &far_end->base : NULL;
    far_end = NULL;
    return p;
}
static const coil_factory_ops far_factory_ops = {.build_protocol = far_build};
static coil_factory far_factory = {.ops = &far_factory_ops};
static coil_listener *far_listener;
static int far_port;
static coil_ssh_session *mem_session;

#define WINDOW (1024 * 1024)
/* What the session may hold of its input before it pauses reading the
 * transport below (IN_HIGH, 256 KiB, in ssh/session.c), plus the read that
 * crossed it (at most 256 KiB more, a generous bound on one read). */
#define SESSION_IN_BOUND (512 * 1024)

static int mem_init(void)
{
    coil_reactor_options ro = {0};
    if (coil_reactor_new(&R, &ro) != 0)
        return -1;
    coil_tcp_listen_options lo = {0};
    lo.interface = "127.0.0.1";
    coil_failure *err = NULL;
    coil_address a;
    if (coil_tcp_listen(R, &lo, &far_factory, &far_listener, &err) != 0 ||
        coil_listener_get_host(far_listener, &a) != 0) {
        coil_failure_print(err, stderr);
        coil_failure_free(err);
        return -1;
    }
    far_port = coil_address_port(&a);
    /* A window smaller than the default, to see the option honoured. */
    mem_session = session_to_fixture(R, "memory bound", WINDOW);
    return mem_session ? 0 : -1;
}

static int mem_clean(void)
{
    int aborted = coil_reactor_shutdown(R, 10.0);
    coil_ssh_session_free(mem_session);
    coil_listener_close(far_listener);
    int bad = aborted != 0 || coil_reactor_transport_count(R) != 0;
    coil_reactor_free(R);
    R = NULL;
    return bad ? -1 : 0;
}

/* A pair: `c` on a direct-tcpip channel, `s` at the far end. */
static int mem_pair(end *c, end *s)
{
    far_end = s;
    coil_ssh_channel_options o = {0};
    o.type = COIL_SSH_DIRECT_TCPIP;
    o.host = "127.0.0.1";
    o.port = far_port;
    CU_ASSERT_EQUAL_FATAL(open_channel(mem_session, &o, &c->base, "memory bound"), 0);
    return coil_conformance_ends_made(R, c, s);
}

/* What coil holds of the channel's input: libssh2's unread packets for it
 * and the session's input not yet taken by libssh2. */
static size_t held_for_reading(end *c)
{
    coil_transport *t = c->base.transport;
    if (!t)
        return 0;
    coil_ssh_session *s = coil_ssh_channel_session(t);
    return coil_transport_pending(t) + (s ? s->in_end - s->in_start : 0);
}

struct flood_wait {
    end *c, *s;
};

static void test_paused_reader_stops_far_writer(void)
{
    enum { TOTAL = 32 * 1024 * 1024 };
    end *c, *s;
    CU_ASSERT_EQUAL_FATAL(coil_conformance_ends_new(R, 0, TOTAL, &c, &s), 0);
    c->below = s->below = lower_queued;
    if (!mem_pair(c, s))
        goto out;
    /* The far writer (the coil server behind sshd) ends paused by its own
     * transport: the window is not re-granted while we do not read, so
     * sshd stops sending, then stops reading its socket to the far end.
     * Run until the far writer has been paused without writing for 1 s
     * (the check is that nothing more moves), watching what coil holds
     * for the paused reader all along: at most one window in libssh2 plus
     * the session's input bound. */
    size_t max_held = 0;
    double limit = coil_reactor_seconds(R) + 60;
    while (!(s->paused && coil_reactor_seconds(R) - s->last_write > 1.0) && !s->lost &&
           !c->lost && coil_reactor_seconds(R) < limit) {
        coil_reactor_iterate(R, 0.01);
        size_t h = held_for_reading(c);
        if (h > max_held)
            max_held = h;
    }
    CU_ASSERT(s->paused);
    CU_ASSERT(coil_reactor_seconds(R) - s->last_write > 1.0);
    CU_ASSERT(s->sent < TOTAL);
    CU_ASSERT(max_held > 0);
    CU_ASSERT(max_held <= WINDOW + SESSION_IN_BOUND);
    CU_ASSERT(c->base.transport && coil_transport_pending(c->base.transport) <= WINDOW);
    CU_ASSERT_EQUAL(c->got, 0);
    if (max_held > WINDOW + SESSION_IN_BOUND || getenv("COIL_TEST_VERBOSE"))
        fprintf(
            stderr,
            "paused reader: coil held up to %zu bytes (window %d, session input bound "
            "%d); far writer stopped after %zu bytes\n",
            max_held, WINDOW, SESSION_IN_BOUND, s->sent);
    /* Reading again: every byte arrives, in order. */
    coil_transport_resume_reading(c->base.transport);
    CU_ASSERT(run_until(coil_conformance_end_got_all, c, 120));
    CU_ASSERT_EQUAL(c->got, TOTAL);
    CU_ASSERT_EQUAL(c->mismatch, 0);
    CU_ASSERT(s->pauses > 0);
    if (s->base.transport)
        coil_transport_unregister_producer(s->base.transport);
    coil_conformance_ends_finish(R, c, s);
out:
    free(c);
    free(s);
}

static int far_reader_full(void *arg)
{
    struct flood_wait *w = arg;
    return w->c->paused || w->c->lost || w->s->lost;
}

static void test_writer_to_stopped_reader_bounded(void)
{
    enum { TOTAL = 32 * 1024 * 1024 };
    end *c, *s;
    CU_ASSERT_EQUAL_FATAL(coil_conformance_ends_new(R, 1, TOTAL, &c, &s), 0);
    c->below = s->below = lower_queued;
    if (!mem_pair(c, s))
        goto out;
    struct flood_wait w = {c, s};
    CU_ASSERT(run_until(far_reader_full, &w, 60));
    CU_ASSERT(c->paused);
    /* Held there (bounded: nothing more may be queued meanwhile). */
    double until = coil_reactor_seconds(R) + 1.0;
    while (coil_reactor_seconds(R) < until) {
        coil_reactor_iterate(R, 0.01);
        if (c->base.transport) {
            size_t lq = lower_queued(c->base.transport);
            if (lq > c->max_lower)
                c->max_lower = lq;
        }
    }
    coil_transport_info info, lower;
    CU_ASSERT_EQUAL_FATAL(coil_transport_info_get(c->base.transport, &info), 0);
    coil_ssh_session *ss = coil_ssh_channel_session(c->base.transport);
    CU_ASSERT_FATAL(ss != NULL && ss->lower != NULL);
    CU_ASSERT_EQUAL_FATAL(coil_transport_info_get(ss->lower, &lower), 0);
    /* The channel's queue: its high-water mark plus the write that crossed
     * it. The session's transport below: its own mark plus one packet (a
     * channel write of at most 32,700 bytes, with the packet's framing). */
    CU_ASSERT(c->max_queued <= info.high_water + sizeof c->chunk);
    CU_ASSERT(c->max_lower <= lower.high_water + 32768 + 256);
    if (c->max_queued > info.high_water + sizeof c->chunk ||
        c->max_lower > lower.high_water + 32768 + 256 || getenv("COIL_TEST_VERBOSE"))
        fprintf(
            stderr,
            "stopped reader: channel queue up to %zu (mark %zu), session transport up to "
            "%zu (mark %zu); sent %zu\n",
            c->max_queued, info.high_water, c->max_lower, lower.high_water, c->sent);
    CU_ASSERT(c->sent < TOTAL);
    coil_transport_resume_reading(s->base.transport);
    CU_ASSERT(run_until(coil_conformance_end_got_all, s, 120));
    CU_ASSERT_EQUAL(s->got, TOTAL);
    CU_ASSERT_EQUAL(s->mismatch, 0);
    if (c->base.transport)
        coil_transport_unregister_producer(c->base.transport);
    coil_conformance_ends_finish(R, c, s);
out:
    free(c);
    free(s);
}

/* ---- main ------------------------------------------------------------------------ */

static int add_suites(void)
{
    static coil_conformance_kind rows[sizeof table / sizeof table[0]];
    if (coil_conformance_add_selected(table, sizeof table / sizeof table[0], rows) != 0)
        return -1;
    if (!coil_conformance_selected("SSH channel memory bound"))
        return 0;
    CU_pSuite s = CU_add_suite("SSH channel memory bound", mem_init, mem_clean);
    if (!s ||
        !CU_add_test(s,
                     "a paused reader stops the far writer (coil holds at most a window)",
                     test_paused_reader_stops_far_writer) ||
        !CU_add_test(s,
                     "a writer to a stopped reader: channel and session queues bounded",
                     test_writer_to_stopped_reader_bounded))
        return -1;
    return 0;
}

int main(void)
{
    /* Fail at once, naming what to do, when the fixture is not there. */
    (void)coil_test_sshd("SSHD_PORT");
    return coil_test_main(add_suites);
}
