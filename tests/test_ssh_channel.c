/* SSH channels as transports against a real OpenSSH sshd (the ctest fixture
 * `sshd`, tests/ssh/sshd-fixture.sh): direct-tcpip to a coil echo server,
 * exec (cat, stderr and exit status, a signal), shell with a pty, the sftp
 * subsystem, remote forwarding serving a coil protocol, many channels on
 * one session, a paused reader bounding memory, losing the session,
 * close_when_idle, keepalive, and a session over a UNIX socket to `sshd -i`.
 *
 * Every wait runs the reactor until a flag or a deferred says so, bounded by
 * a generous timeout that fails the test; nothing sleeps. */
#include "testutil.h"

#include <coil/ssh.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_SECONDS 60.0

/* ---- waiting ------------------------------------------------------------------ */

static int wait_count(coil_reactor *r, const int *n, int want, double seconds)
{
    double end = coil_reactor_seconds(r) + seconds;
    while (*n < want && coil_reactor_seconds(r) < end)
        coil_reactor_iterate(r, 0.05);
    return *n >= want;
}

/* ---- a recording protocol ---------------------------------------------------------- */

typedef struct rec {
    coil_protocol base;
    unsigned char *data;
    size_t len, cap;
    size_t expect; /* close (lose_connection) once this much arrived; 0: never */
    int made, eof, lost, destroyed, failed;
    int half_close_on_made; /* lose_write_connection after writing `send` */
    const unsigned char *send;
    size_t send_len;
    int echo;       /* write back what arrives (a server protocol) */
    int handle_eof; /* 1: read_connection_lost handled (stay half open) */
    char reason[1024];
    int reason_code;
    char err[4096]; /* stderr */
    size_t err_len;
    int exit_kind, exit_status;
    char exit_signal[32];
    int *count_done; /* incremented at connection_lost */
} rec;

static void rec_made(coil_protocol *p)
{
    rec *x = (rec *)p;
    x->made = 1;
    if (x->send_len)
        coil_transport_write(p->transport, x->send, x->send_len);
    if (x->half_close_on_made)
        coil_transport_lose_write_connection(p->transport);
}

static void rec_data(coil_protocol *p, const void *d, size_t n)
{
    rec *x = (rec *)p;
    if (x->echo) {
        coil_transport_write(p->transport, d, n);
        return;
    }
    if (x->len + n > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < x->len + n)
            cap *= 2;
        x->data = realloc(x->data, cap);
        x->cap = cap;
    }
    memcpy(x->data + x->len, d, n);
    x->len += n;
    if (x->expect && x->len >= x->expect)
        coil_transport_lose_connection(p->transport);
}

static void rec_eof(coil_protocol *p)
{
    rec *x = (rec *)p;
    x->eof = 1;
    if (!x->handle_eof)
        coil_transport_lose_connection(p->transport);
}

static void rec_lost(coil_protocol *p, const coil_failure *reason)
{
    rec *x = (rec *)p;
    x->lost = 1;
    coil_failure_format(reason, x->reason, sizeof x->reason);
    x->reason_code = coil_failure_code(reason);
    int st = 0;
    const char *sig = NULL;
    x->exit_kind = coil_ssh_channel_exit_status(p->transport, &st, &sig);
    x->exit_status = st;
    if (sig)
        snprintf(x->exit_signal, sizeof x->exit_signal, "%s", sig);
    if (x->count_done)
        (*x->count_done)++;
}

static void rec_failed(coil_protocol *p, const coil_failure *reason)
{
    rec *x = (rec *)p;
    x->failed = 1;
    coil_failure_format(reason, x->reason, sizeof x->reason);
}

static void rec_destroy(coil_protocol *p)
{
    rec *x = (rec *)p;
    x->destroyed = 1; /* the test frees it */
}

static const coil_protocol_ops rec_ops = {
    .connection_made = rec_made,
    .data_received = rec_data,
    .read_connection_lost = rec_eof,
    .connection_lost = rec_lost,
    .destroy = rec_destroy,
    .connection_failed = rec_failed,
};

static void rec_init(rec *x)
{
    memset(x, 0, sizeof *x);
    x->base.ops = &rec_ops;
}

static void rec_stderr(void *arg, const void *d, size_t n)
{
    rec *x = arg;
    size_t room = sizeof x->err - 1 - x->err_len;
    if (n > room)
        n = room;
    memcpy(x->err + x->err_len, d, n);
    x->err_len += n;
    x->err[x->err_len] = 0;
}

/* ---- a coil echo server ---------------------------------------------------------------
 */

typedef struct echo_proto {
    coil_protocol base;
} echo_proto;

static void echo_data(coil_protocol *p, const void *d, size_t n)
{
    coil_transport_write(p->transport, d, n);
}

static void echo_eof(coil_protocol *p)
{
    coil_transport_lose_connection(p->transport);
}

static void echo_destroy(coil_protocol *p)
{
    free(p);
}

static const coil_protocol_ops echo_ops = {
    .data_received = echo_data,
    .read_connection_lost = echo_eof,
    .destroy = echo_destroy,
};

static coil_protocol *echo_build(coil_factory *f, const coil_address *peer)
{
    echo_proto *e = calloc(1, sizeof *e);
    e->base.ops = &echo_ops;
    return &e->base;
}

static const coil_factory_ops echo_factory_ops = {.build_protocol = echo_build};

typedef struct echo_server {
    coil_factory f;
    coil_listener *l;
    int port;
} echo_server;

static void echo_start(coil_reactor *r, echo_server *e)
{
    memset(e, 0, sizeof *e);
    e->f.ops = &echo_factory_ops;
    coil_tcp_listen_options o = {0};
    o.interface = "127.0.0.1";
    coil_failure *err = NULL;
    CU_ASSERT_FATAL(coil_tcp_listen(r, &o, &e->f, &e->l, &err) == 0);
    coil_address a;
    CU_ASSERT_FATAL(coil_listener_get_host(e->l, &a) == 0);
    e->port = coil_address_port(&a);
}

static void echo_stop(echo_server *e)
{
    coil_listener_close(e->l);
}

/* ---- sessions -----------------------------------------------------------------------
 */

static void base_options(coil_ssh_options *o)
{
    memset(o, 0, sizeof *o);
    o->host = coil_test_sshd("SSHD_HOST");
    o->port = atoi(coil_test_sshd("SSHD_PORT"));
    o->user = coil_test_sshd("SSH_USER");
    o->known_hosts_file = coil_test_sshd("SSH_KNOWN_HOSTS");
    o->identity_file = coil_test_sshd("SSH_KEY_ED25519");
}

/* Connect and wait until authenticated; asserts. */
static coil_ssh_session *session_up(coil_reactor *r, const coil_ssh_options *o)
{
    coil_ssh_session *s = NULL;
    coil_failure *err = NULL;
    int rc = coil_ssh_session_connect(r, o, &s, &err);
    if (rc != 0) {
        coil_failure_print(err, stderr);
        coil_failure_free(err);
    }
    CU_ASSERT_FATAL(rc == 0);
    coil_deferred *d = coil_ssh_session_ready(s);
    CU_ASSERT_FATAL(coil_test_wait_fired(r, d, WAIT_SECONDS));
    if (coil_deferred_is_failure(d))
        coil_failure_print(coil_deferred_failure(d), stderr);
    CU_ASSERT_FATAL(!coil_deferred_is_failure(d));
    coil_deferred_unref(d);
    CU_ASSERT(coil_ssh_session_is_ready(s));
    return s;
}

/* A session to the fixture's sshd with base_options(); asserts. */
static coil_ssh_session *fixture_session(coil_reactor *r)
{
    coil_ssh_options o;
    base_options(&o);
    return session_up(r, &o);
}

/* Close the session and wait for the transport below to go. */
static void session_down(coil_reactor *r, coil_ssh_session *s)
{
    coil_deferred *d = coil_ssh_session_close(s);
    CU_ASSERT(coil_test_wait_fired(r, d, WAIT_SECONDS));
    coil_deferred_unref(d);
    coil_ssh_session_free(s);
}

/* Open a channel running `x`; waits for the open; returns the transport
 * (NULL when it failed, with x->reason set). */
static coil_transport *open_ch(coil_reactor *r, coil_ssh_session *s,
                               const coil_ssh_channel_options *o, rec *x)
{
    coil_deferred *d = coil_ssh_open_channel(s, o, &x->base);
    CU_ASSERT_FATAL(d != NULL);
    CU_ASSERT_FATAL(coil_test_wait_fired(r, d, WAIT_SECONDS));
    coil_transport *t = NULL;
    if (coil_deferred_is_failure(d)) {
        coil_failure *f = coil_deferred_take_failure(d);
        coil_failure_format(f, x->reason, sizeof x->reason);
        coil_failure_free(f);
    } else
        t = coil_deferred_result(d);
    coil_deferred_unref(d);
    return t;
}

static void end_reactor(coil_reactor *r)
{
    /* Let teardowns run, then check nothing is left. */
    for (int i = 0; i < 20 && coil_reactor_transport_count(r) > 0; i++)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT(coil_reactor_transport_count(r) == 0);
    coil_reactor_free(r);
}

static unsigned char *pattern(size_t n)
{
    unsigned char *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 131 + (i >> 9));
    return p;
}

/* ---- direct-tcpip
 * --------------------------------------------------------------------------- */

static void test_direct_tcpip_echo(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    echo_server e;
    echo_start(r, &e);
    coil_ssh_session *s = fixture_session(r);
    CU_ASSERT_STRING_EQUAL(coil_ssh_session_host_key_fingerprint(s),
                           coil_test_sshd("SSHD_FP_ECDSA"));
    COIL_TEST_ASSERT_HAS(coil_ssh_session_server_banner(s), "OpenSSH");
    COIL_TEST_ASSERT_HAS(coil_ssh_session_cipher(s), "aes");

    const size_t N = 4 * 1024 * 1024;
    unsigned char *msg = pattern(N);
    rec x;
    rec_init(&x);
    x.send = msg;
    x.send_len = N;
    x.expect = N;
    coil_ssh_channel_options co = {
        .type = COIL_SSH_DIRECT_TCPIP, .host = "127.0.0.1", .port = e.port};
    coil_transport *t = open_ch(r, s, &co, &x);
    CU_ASSERT_FATAL(t != NULL);
    CU_ASSERT_STRING_EQUAL(t->ops->kind, "ssh-channel");
    CU_ASSERT(coil_ssh_channel_session(t) == s);
    coil_address a;
    CU_ASSERT(coil_transport_get_peer(t, &a) == 0);
    CU_ASSERT(a.kind == COIL_ADDR_SSH);
    COIL_TEST_ASSERT_HAS(a.name, "direct-tcpip");
    CU_ASSERT(coil_ssh_session_channel_count(s) == 1);
    coil_transport_info info;
    CU_ASSERT(coil_transport_info_get(t, &info) == 0);
    CU_ASSERT_STRING_EQUAL(info.stack, "ssh-channel/tcp");
    const coil_transport_layer_info *li = coil_transport_info_layer(&info, "ssh-channel");
    CU_ASSERT_FATAL(li != NULL);
    COIL_TEST_ASSERT_HAS(li->protocol, "SSH-2.0-OpenSSH");
    COIL_TEST_ASSERT_HAS(li->cipher, "aes");
    COIL_TEST_ASSERT_HAS(li->cipher, "hmac-sha2");
    COIL_TEST_ASSERT_HAS(li->peer, coil_test_sshd("SSHD_FP_ECDSA"));
    COIL_TEST_ASSERT_HAS(li->peer, "ecdsa-sha2-nistp256");
    CU_ASSERT(li->verified == 1);
    char want[64];
    snprintf(want, sizeof want, "direct-tcpip 127.0.0.1:%d", e.port);
    CU_ASSERT_STRING_EQUAL(li->detail, want);
    CU_ASSERT(coil_test_wait_flag(r, &x.lost, WAIT_SECONDS));
    CU_ASSERT(x.len == N);
    CU_ASSERT(x.len == N && memcmp(x.data, msg, N) == 0);
    CU_ASSERT(x.reason_code == COIL_ECLOSED);
    COIL_TEST_ASSERT_HAS(x.reason, "closed");
    CU_ASSERT(x.destroyed);
    CU_ASSERT(coil_ssh_session_channel_count(s) == 0);

    /* The far side closes first: the echo server ends when we half-close. */
    rec y;
    rec_init(&y);
    y.send = (const unsigned char *)"hello";
    y.send_len = 5;
    y.half_close_on_made = 1;
    y.handle_eof = 1;
    CU_ASSERT_FATAL(open_ch(r, s, &co, &y) != NULL);
    CU_ASSERT(coil_test_wait_flag(r, &y.lost, WAIT_SECONDS));
    CU_ASSERT(y.eof);
    CU_ASSERT(y.len == 5 && memcmp(y.data, "hello", 5) == 0);
    CU_ASSERT(y.reason_code == COIL_ECLOSED);

    /* Refused: nothing listens on the port. */
    rec z;
    rec_init(&z);
    coil_ssh_channel_options bad = {
        .type = COIL_SSH_DIRECT_TCPIP, .host = "127.0.0.1", .port = 1};
    CU_ASSERT(open_ch(r, s, &bad, &z) == NULL);
    COIL_TEST_ASSERT_HAS(z.reason, "direct-tcpip to 127.0.0.1:1 refused by");
    CU_ASSERT(z.destroyed);

    session_down(r, s);
    echo_stop(&e);
    free(msg);
    free(x.data);
    free(y.data);
    end_reactor(r);
}

/* ---- exec
 * ------------------------------------------------------------------------------------ */

static void test_exec_cat(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_ssh_session *s = fixture_session(r);
    const size_t N = 1024 * 1024;
    unsigned char *msg = pattern(N);
    rec x;
    rec_init(&x);
    x.send = msg;
    x.send_len = N;
    x.half_close_on_made = 1; /* EOF: cat gives everything back and exits */
    x.handle_eof = 1;
    coil_ssh_channel_options co = {.type = COIL_SSH_EXEC, .command = "cat"};
    CU_ASSERT_FATAL(open_ch(r, s, &co, &x) != NULL);
    CU_ASSERT(coil_test_wait_flag(r, &x.lost, WAIT_SECONDS));
    CU_ASSERT(x.eof);
    CU_ASSERT(x.len == N && memcmp(x.data, msg, N) == 0);
    CU_ASSERT(x.reason_code == COIL_ECLOSED);
    COIL_TEST_ASSERT_HAS(x.reason, "exited with status 0");
    CU_ASSERT(x.exit_kind == 1 && x.exit_status == 0);
    session_down(r, s);
    free(msg);
    free(x.data);
    end_reactor(r);
}

static void test_exec_stderr_status(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_ssh_session *s = fixture_session(r);
    rec x;
    rec_init(&x);
    coil_ssh_channel_options co = {.type = COIL_SSH_EXEC,
                                   .command = "sh -c 'echo out; echo err >&2; exit 3'",
                                   .on_stderr = rec_stderr,
                                   .stderr_arg = &x};
    CU_ASSERT_FATAL(open_ch(r, s, &co, &x) != NULL);
    CU_ASSERT(coil_test_wait_flag(r, &x.lost, WAIT_SECONDS));
    CU_ASSERT(x.len == 4 && memcmp(x.data, "out\n", 4) == 0);
    CU_ASSERT_STRING_EQUAL(x.err, "err\n");
    CU_ASSERT(x.reason_code == COIL_ECLOSED);
    COIL_TEST_ASSERT_HAS(x.reason, "exited with status 3");
    CU_ASSERT(x.exit_kind == 1 && x.exit_status == 3);

    /* stderr with no callback is read and dropped: EOF still comes. */
    rec y;
    rec_init(&y);
    coil_ssh_channel_options co2 = {
        .type = COIL_SSH_EXEC,
        .command = "sh -c 'head -c 300000 /dev/zero >&2; echo done'"};
    CU_ASSERT_FATAL(open_ch(r, s, &co2, &y) != NULL);
    CU_ASSERT(coil_test_wait_flag(r, &y.lost, WAIT_SECONDS));
    CU_ASSERT(y.eof);
    CU_ASSERT(y.len == 5 && memcmp(y.data, "done\n", 5) == 0);
    COIL_TEST_ASSERT_HAS(y.reason, "exited with status 0");

    /* Killed by a signal. */
    rec z;
    rec_init(&z);
    coil_ssh_channel_options co3 = {.type = COIL_SSH_EXEC, .command = "kill -TERM $$"};
    CU_ASSERT_FATAL(open_ch(r, s, &co3, &z) != NULL);
    CU_ASSERT(coil_test_wait_flag(r, &z.lost, WAIT_SECONDS));
    COIL_TEST_ASSERT_HAS(z.reason, "killed by signal TERM");
    CU_ASSERT(z.exit_kind == 2);
    CU_ASSERT_STRING_EQUAL(z.exit_signal, "TERM");

    session_down(r, s);
    free(x.data);
    free(y.data);
    free(z.data);
    end_reactor(r);
}

static void test_shell_pty_and_subsystem(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_ssh_session *s = fixture_session(r);

    rec x;
    rec_init(&x);
    const char *cmd = "echo pty-is-$(tty | cut -c1-8); exit 7\n";
    x.send = (const unsigned char *)cmd;
    x.send_len = strlen(cmd);
    coil_ssh_channel_options co = {
        .type = COIL_SSH_SHELL, .pty = 1, .term = "vt100", .cols = 100, .rows = 30};
    CU_ASSERT_FATAL(open_ch(r, s, &co, &x) != NULL);
    CU_ASSERT(coil_test_wait_flag(r, &x.lost, WAIT_SECONDS));
    x.data = realloc(x.data, x.len + 1);
    x.data[x.len] = 0;
    COIL_TEST_ASSERT_HAS((char *)x.data, "pty-is-/dev/pts");
    COIL_TEST_ASSERT_HAS(x.reason, "exited with status 7");

    /* The sftp subsystem opens and answers SSH_FXP_INIT with VERSION. */
    rec y;
    rec_init(&y);
    static const unsigned char init[] = {0, 0, 0, 5, 1, 0, 0, 0, 3};
    y.send = init;
    y.send_len = sizeof init;
    y.expect = 9; /* length(4) type(1) version(4) at least */
    coil_ssh_channel_options co2 = {.type = COIL_SSH_SUBSYSTEM, .command = "sftp"};
    CU_ASSERT_FATAL(open_ch(r, s, &co2, &y) != NULL);
    CU_ASSERT(coil_test_wait_flag(r, &y.lost, WAIT_SECONDS));
    CU_ASSERT(y.len >= 9 && y.data[4] == 2); /* SSH_FXP_VERSION */

    /* An unknown subsystem is refused. */
    rec z;
    rec_init(&z);
    coil_ssh_channel_options co3 = {.type = COIL_SSH_SUBSYSTEM, .command = "no-such"};
    CU_ASSERT(open_ch(r, s, &co3, &z) == NULL);
    COIL_TEST_ASSERT_HAS(z.reason, "subsystem no-such refused");

    session_down(r, s);
    free(x.data);
    free(y.data);
    end_reactor(r);
}

/* ---- remote forwarding
 * ------------------------------------------------------------------------- */

typedef struct rf_factory {
    coil_factory f;
    int built;
} rf_factory;

static coil_protocol *rf_build(coil_factory *f, const coil_address *peer)
{
    rf_factory *rf = (rf_factory *)f;
    rf->built++;
    echo_proto *e = calloc(1, sizeof *e);
    e->base.ops = &echo_ops;
    return &e->base;
}

static const coil_factory_ops rf_ops = {.build_protocol = rf_build};

typedef struct tcp_client {
    coil_factory f;
    rec *x;
} tcp_client;

static coil_protocol *tc_build(coil_factory *f, const coil_address *peer)
{
    return &((tcp_client *)f)->x->base;
}

static const coil_factory_ops tc_ops = {.build_protocol = tc_build};

static void test_remote_forward(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_ssh_session *s = fixture_session(r);
    rf_factory rf = {.f.ops = &rf_ops};
    coil_deferred *d = coil_ssh_listen(s, "127.0.0.1", 0, &rf.f);
    CU_ASSERT_FATAL(coil_test_wait_fired(r, d, WAIT_SECONDS));
    if (coil_deferred_is_failure(d))
        coil_failure_print(coil_deferred_failure(d), stderr);
    CU_ASSERT_FATAL(!coil_deferred_is_failure(d));
    coil_ssh_listener *l = coil_deferred_result(d);
    coil_deferred_unref(d);
    int port = coil_ssh_listener_port(l);
    CU_ASSERT_FATAL(port > 0);

    for (int round = 0; round < 2; round++) {
        rec x;
        rec_init(&x);
        const char *msg = "through the server and back";
        x.send = (const unsigned char *)msg;
        x.send_len = strlen(msg);
        x.expect = strlen(msg);
        tcp_client tc = {.f.ops = &tc_ops, .x = &x};
        coil_tcp_connect_options co = {.host = "127.0.0.1", .port = port};
        coil_connector *k = NULL;
        CU_ASSERT_FATAL(coil_tcp_connect(r, &co, &tc.f, &k) == 0);
        CU_ASSERT(coil_test_wait_flag(r, &x.lost, WAIT_SECONDS));
        CU_ASSERT(x.len == strlen(msg) && memcmp(x.data, msg, x.len) == 0);
        coil_connector_free(k);
        free(x.data);
    }
    CU_ASSERT(rf.built == 2);
    coil_ssh_listener_close(l);
    session_down(r, s);
    end_reactor(r);
}

/* ---- many channels
 * --------------------------------------------------------------------------------- */

static void test_fifty_channels(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    echo_server e;
    echo_start(r, &e);
    coil_ssh_session *s = fixture_session(r);
    enum { N = 50, SIZE = 200 * 1024 };
    static rec x[N];
    unsigned char *msg[N];
    coil_deferred *d[N];
    int done = 0;
    coil_ssh_channel_options co = {
        .type = COIL_SSH_DIRECT_TCPIP, .host = "127.0.0.1", .port = e.port};
    for (int i = 0; i < N; i++) {
        rec_init(&x[i]);
        msg[i] = pattern(SIZE);
        msg[i][0] = (unsigned char)i;
        x[i].send = msg[i];
        x[i].send_len = SIZE;
        x[i].expect = SIZE;
        x[i].count_done = &done;
        d[i] = coil_ssh_open_channel(s, &co, &x[i].base);
    }
    CU_ASSERT(wait_count(r, &done, N, WAIT_SECONDS * 2));
    for (int i = 0; i < N; i++) {
        CU_ASSERT(coil_deferred_called(d[i]) && !coil_deferred_is_failure(d[i]));
        CU_ASSERT(x[i].len == SIZE && memcmp(x[i].data, msg[i], SIZE) == 0);
        CU_ASSERT(x[i].reason_code == COIL_ECLOSED);
        coil_deferred_unref(d[i]);
        free(msg[i]);
        free(x[i].data);
    }
    session_down(r, s);
    echo_stop(&e);
    end_reactor(r);
}

/* ---- a paused reader
 * ---------------------------------------------------------------------------------- */

static void test_paused_reader_bounded(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_ssh_options o;
    base_options(&o);
    o.window = 256 * 1024;
    coil_ssh_session *s = session_up(r, &o);
    rec x;
    rec_init(&x);
    /* The far writer has 64 MiB to say; we read nothing. */
    coil_ssh_channel_options co = {.type = COIL_SSH_EXEC,
                                   .command = "head -c 67108864 /dev/zero"};
    coil_transport *t = open_ch(r, s, &co, &x);
    CU_ASSERT_FATAL(t != NULL);
    coil_transport_pause_reading(t);
    /* Let it run for a while: whatever arrived stays within about a window. */
    double end = coil_reactor_seconds(r) + 1.5;
    while (coil_reactor_seconds(r) < end)
        coil_reactor_iterate(r, 0.05);
    size_t pending = coil_transport_pending(t);
    CU_ASSERT(x.len < 256 * 1024); /* delivered before the pause took effect */
    CU_ASSERT(pending <= 300 * 1024);
    /* Resume: everything arrives. */
    double t0 = coil_reactor_seconds(r);
    coil_transport_resume_reading(t);
    CU_ASSERT(coil_test_wait_flag(r, &x.lost, WAIT_SECONDS));
    if (getenv("COIL_TEST_VERBOSE"))
        fprintf(stderr,
                "\n    paused: %zu bytes held in libssh2 (window 256 KiB); 64 MiB "
                "then took %.2f s (%.0f MB/s)\n",
                pending, coil_reactor_seconds(r) - t0,
                67.108864 / (coil_reactor_seconds(r) - t0));
    CU_ASSERT(x.len == 67108864);
    COIL_TEST_ASSERT_HAS(x.reason, "exited with status 0");
    session_down(r, s);
    free(x.data);
    end_reactor(r);
}

/* ---- losing the session
 * --------------------------------------------------------------------------------- */

typedef struct lost_note {
    int called;
    char reason[1024];
} lost_note;

static void on_lost(void *arg, coil_ssh_session *s, const coil_failure *reason)
{
    lost_note *n = arg;
    n->called++;
    coil_failure_format(reason, n->reason, sizeof n->reason);
}

typedef struct one_factory {
    coil_factory f;
    coil_ssh_session *s;
    int used;
} one_factory;

static coil_protocol *one_build(coil_factory *f, const coil_address *peer)
{
    one_factory *of = (one_factory *)f;
    if (of->used++)
        return NULL;
    return coil_ssh_session_protocol(of->s);
}

static const coil_factory_ops one_ops = {.build_protocol = one_build};

/* The session runs on a TCP connection of ours, which we then abort. */
static void test_session_lost(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    echo_server e;
    echo_start(r, &e);
    coil_ssh_options o;
    base_options(&o);
    coil_ssh_session *s = NULL;
    coil_failure *err = NULL;
    CU_ASSERT_FATAL(coil_ssh_session_new(r, &o, &s, &err) == 0);
    one_factory of = {.f.ops = &one_ops, .s = s};
    coil_tcp_connect_options tco = {.host = o.host, .port = o.port};
    coil_connector *k = NULL;
    CU_ASSERT_FATAL(coil_tcp_connect(r, &tco, &of.f, &k) == 0);
    coil_deferred *rd = coil_ssh_session_ready(s);
    CU_ASSERT_FATAL(coil_test_wait_fired(r, rd, WAIT_SECONDS));
    CU_ASSERT_FATAL(!coil_deferred_is_failure(rd));
    coil_deferred_unref(rd);
    lost_note note = {0};
    coil_ssh_session_on_lost(s, on_lost, &note);
    enum { N = 3 };
    rec x[N];
    int done = 0;
    coil_ssh_channel_options co = {
        .type = COIL_SSH_DIRECT_TCPIP, .host = "127.0.0.1", .port = e.port};
    coil_ssh_channel_options cat = {.type = COIL_SSH_EXEC, .command = "cat"};
    for (int i = 0; i < N; i++) {
        rec_init(&x[i]);
        x[i].count_done = &done;
        CU_ASSERT_FATAL(open_ch(r, s, i ? &co : &cat, &x[i]) != NULL);
    }
    /* Abort the TCP connection below the session. */
    coil_transport *lower = coil_connector_transport(k);
    CU_ASSERT_FATAL(lower != NULL);
    coil_transport_abort_connection(lower);
    CU_ASSERT(wait_count(r, &done, N, WAIT_SECONDS));
    for (int i = 0; i < N; i++) {
        CU_ASSERT(x[i].reason_code == COIL_ECONNLOST);
        COIL_TEST_ASSERT_HAS(x[i].reason, "lost");
        free(x[i].data);
    }
    CU_ASSERT(coil_test_wait_flag(r, &note.called, WAIT_SECONDS));
    CU_ASSERT(note.called == 1);
    COIL_TEST_ASSERT_HAS(note.reason, "lost");
    CU_ASSERT(!coil_ssh_session_is_ready(s));
    /* New channels fail at once with why. */
    rec y;
    rec_init(&y);
    CU_ASSERT(open_ch(r, s, &co, &y) == NULL);
    COIL_TEST_ASSERT_HAS(y.reason, "has ended");
    coil_ssh_session_free(s);
    coil_connector_free(k);
    echo_stop(&e);
    end_reactor(r);
}

/* ---- close_when_idle, keepalive
 * ------------------------------------------------------------------------------ */

static void test_close_when_idle_keepalive(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_ssh_options o;
    base_options(&o);
    o.close_when_idle = 1;
    o.keepalive_interval = 1;
    coil_ssh_session *s = session_up(r, &o);
    lost_note note = {0};
    coil_ssh_session_on_lost(s, on_lost, &note);
    /* Idle with keepalives for a few intervals: still up. */
    double end = coil_reactor_seconds(r) + 3.5;
    while (coil_reactor_seconds(r) < end)
        coil_reactor_iterate(r, 0.1);
    CU_ASSERT(coil_ssh_session_is_ready(s));
    CU_ASSERT(note.called == 0);
    rec x;
    rec_init(&x);
    coil_ssh_channel_options co = {.type = COIL_SSH_EXEC, .command = "echo bye"};
    CU_ASSERT_FATAL(open_ch(r, s, &co, &x) != NULL);
    CU_ASSERT(coil_test_wait_flag(r, &x.lost, WAIT_SECONDS));
    /* The last channel ended: the session closes by itself, cleanly. */
    CU_ASSERT(coil_test_wait_flag(r, &note.called, WAIT_SECONDS));
    COIL_TEST_ASSERT_HAS(note.reason, "closed");
    coil_ssh_session_free(s);
    free(x.data);
    end_reactor(r);
}

/* ---- a session over a UNIX socket to `sshd -i`
 * ----------------------------------------------------------------- */

/* coil_reactor_shutdown closes channels and the session cleanly. */
static void test_reactor_shutdown(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_ssh_session *s = fixture_session(r);
    lost_note note = {0};
    coil_ssh_session_on_lost(s, on_lost, &note);
    rec x;
    rec_init(&x);
    coil_ssh_channel_options co = {.type = COIL_SSH_EXEC, .command = "cat"};
    CU_ASSERT_FATAL(open_ch(r, s, &co, &x) != NULL);
    CU_ASSERT(coil_reactor_transport_count(r) == 3); /* channel, session, tcp */
    CU_ASSERT(coil_reactor_shutdown(r, 10.0) == 0);
    CU_ASSERT(x.lost);
    CU_ASSERT(x.reason_code == COIL_ECLOSED);
    CU_ASSERT(note.called == 1);
    COIL_TEST_ASSERT_HAS(note.reason, "closed");
    coil_ssh_session_free(s);
    free(x.data);
    end_reactor(r);
}

/* `sshd -i` on the other end of a UNIX socket (its stdin and stdout), the
 * session `s` on ours; waits until it is ready. Returns sshd's pid. */
static pid_t sshd_inetd(coil_reactor *r, coil_ssh_session *s)
{
    char path[108];
    snprintf(path, sizeof path, "/tmp/coil-ssh-i-%d.sock", (int)getpid());
    unlink(path);
    coil_failure *err = NULL;
    one_factory of = {.f.ops = &one_ops, .s = s};
    coil_unix_listen_options lo = {.path = path};
    coil_listener *l = NULL;
    CU_ASSERT_FATAL(coil_unix_listen(r, &lo, &of.f, &l, &err) == 0);
    const char *bin = coil_test_sshd("SSHD_BIN");
    const char *config = coil_test_sshd("SSHD_CONFIG");
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
            _exit(111);
        dup2(fd, 0);
        dup2(fd, 1);
        close(fd);
        execl(bin, "sshd", "-i", "-f", config, (char *)NULL);
        _exit(112);
    }
    coil_deferred *d = coil_ssh_session_ready(s);
    CU_ASSERT_FATAL(coil_test_wait_fired(r, d, WAIT_SECONDS));
    if (coil_deferred_is_failure(d))
        coil_failure_print(coil_deferred_failure(d), stderr);
    CU_ASSERT_FATAL(!coil_deferred_is_failure(d));
    coil_deferred_unref(d);
    coil_listener_close(l);
    unlink(path);
    return pid;
}

static void test_over_unix_sshd_inetd(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_ssh_options o;
    base_options(&o);
    coil_ssh_session *s = NULL;
    coil_failure *err = NULL;
    CU_ASSERT_FATAL(coil_ssh_session_new(r, &o, &s, &err) == 0);
    pid_t pid = sshd_inetd(r, s);
    coil_transport_info info;
    rec x;
    rec_init(&x);
    x.send = (const unsigned char *)"over a unix socket\n";
    x.send_len = strlen((const char *)x.send);
    x.half_close_on_made = 1;
    x.handle_eof = 1;
    coil_ssh_channel_options co = {.type = COIL_SSH_EXEC, .command = "cat"};
    coil_transport *t = open_ch(r, s, &co, &x);
    CU_ASSERT_FATAL(t != NULL);
    if (!x.lost) {
        CU_ASSERT(coil_transport_info_get(t, &info) == 0);
        CU_ASSERT_STRING_EQUAL(info.stack, "ssh-channel/unix");
        const coil_transport_layer_info *li =
            coil_transport_info_layer(&info, "ssh-channel");
        CU_ASSERT(li && strcmp(li->detail, "exec 'cat'") == 0);
    }
    CU_ASSERT(coil_test_wait_flag(r, &x.lost, WAIT_SECONDS));
    CU_ASSERT(x.len == x.send_len && memcmp(x.data, x.send, x.len) == 0);
    COIL_TEST_ASSERT_HAS(x.reason, "exited with status 0");
    session_down(r, s);
    int st = 0;
    waitpid(pid, &st, 0);
    free(x.data);
    end_reactor(r);
}

/* A server that stops answering (SIGSTOP) is lost after about 3 keepalive
 * intervals, with the reason. */
static void test_keepalive_silent_server(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_ssh_options o;
    base_options(&o);
    o.keepalive_interval = 0.5;
    coil_ssh_session *s = NULL;
    coil_failure *err = NULL;
    CU_ASSERT_FATAL(coil_ssh_session_new(r, &o, &s, &err) == 0);
    pid_t pid = sshd_inetd(r, s);
    lost_note note = {0};
    coil_ssh_session_on_lost(s, on_lost, &note);
    /* Alive: probes are answered for several intervals. */
    double end = coil_reactor_seconds(r) + 2.5;
    while (coil_reactor_seconds(r) < end)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT(note.called == 0);
    CU_ASSERT(coil_ssh_session_is_ready(s));
    /* Still usable after the probes (their answers do not linger). */
    rf_factory rf = {.f.ops = &rf_ops};
    coil_deferred *d = coil_ssh_listen(s, "127.0.0.1", 0, &rf.f);
    CU_ASSERT_FATAL(coil_test_wait_fired(r, d, WAIT_SECONDS));
    CU_ASSERT(!coil_deferred_is_failure(d));
    coil_ssh_listener *l = coil_deferred_is_failure(d) ? NULL : coil_deferred_result(d);
    coil_deferred_unref(d);
    kill(pid, SIGSTOP);
    double t0 = coil_reactor_seconds(r);
    CU_ASSERT(coil_test_wait_flag(r, &note.called, WAIT_SECONDS));
    double took = coil_reactor_seconds(r) - t0;
    CU_ASSERT(took >= 1.0 && took < 4.0);
    COIL_TEST_ASSERT_HAS(note.reason, "3 keepalive intervals");
    kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    if (l)
        coil_ssh_listener_close(l);
    coil_ssh_session_free(s);
    end_reactor(r);
}

/* A silent "server" (a coil listener that never speaks). */
static coil_protocol *mute_build(coil_factory *f, const coil_address *peer)
{
    echo_proto *e = calloc(1, sizeof *e);
    static const coil_protocol_ops mute_ops = {.destroy = echo_destroy};
    e->base.ops = &mute_ops;
    return &e->base;
}

static const coil_factory_ops mute_factory_ops = {.build_protocol = mute_build};

/* TCP refused, a server that never answers, and a cancelled open. */
static void test_connect_failures_and_cancel(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    /* Nothing listens: ready (and the handshake) fail with the TCP error. */
    echo_server e;
    echo_start(r, &e);
    int closed_port = e.port;
    echo_stop(&e);
    coil_ssh_options o;
    base_options(&o);
    o.port = closed_port;
    coil_ssh_session *s = NULL;
    coil_failure *err = NULL;
    CU_ASSERT_FATAL(coil_ssh_session_connect(r, &o, &s, &err) == 0);
    coil_deferred *hs = coil_ssh_session_handshake(s);
    coil_deferred *rd = coil_ssh_session_ready(s);
    CU_ASSERT_FATAL(coil_test_wait_fired(r, rd, WAIT_SECONDS));
    CU_ASSERT(coil_deferred_called(hs) && coil_deferred_is_failure(hs));
    CU_ASSERT(coil_deferred_is_failure(rd));
    char text[1024] = "";
    if (coil_deferred_is_failure(rd))
        coil_failure_format(coil_deferred_failure(rd), text, sizeof text);
    COIL_TEST_ASSERT_HAS(text, "refused");
    coil_failure_free(coil_deferred_take_failure(hs));
    coil_failure_free(coil_deferred_take_failure(rd));
    coil_deferred_unref(hs);
    coil_deferred_unref(rd);
    coil_ssh_session_free(s);

    /* A server that accepts and says nothing: the handshake times out. */
    coil_factory mute = {.ops = &mute_factory_ops};
    coil_tcp_listen_options lo = {.interface = "127.0.0.1"};
    coil_listener *l = NULL;
    CU_ASSERT_FATAL(coil_tcp_listen(r, &lo, &mute, &l, &err) == 0);
    coil_address a;
    coil_listener_get_host(l, &a);
    base_options(&o);
    o.port = coil_address_port(&a);
    o.handshake_timeout = 0.5;
    CU_ASSERT_FATAL(coil_ssh_session_connect(r, &o, &s, &err) == 0);
    rd = coil_ssh_session_ready(s);
    CU_ASSERT_FATAL(coil_test_wait_fired(r, rd, WAIT_SECONDS));
    CU_ASSERT(coil_deferred_is_failure(rd));
    text[0] = 0;
    if (coil_deferred_is_failure(rd))
        coil_failure_format(coil_deferred_failure(rd), text, sizeof text);
    COIL_TEST_ASSERT_HAS(text, "did not finish within 0.5 s");
    coil_failure_free(coil_deferred_take_failure(rd));
    coil_deferred_unref(rd);
    coil_ssh_session_free(s);
    coil_listener_close(l);

    /* Cancelling an open: the protocol is destroyed, the session goes on. */
    base_options(&o);
    s = session_up(r, &o);
    rec x;
    rec_init(&x);
    coil_ssh_channel_options co = {.type = COIL_SSH_EXEC, .command = "cat"};
    coil_deferred *d = coil_ssh_open_channel(s, &co, &x.base);
    coil_deferred_cancel(d);
    CU_ASSERT(coil_deferred_called(d) && coil_deferred_is_failure(d));
    coil_failure_free(coil_deferred_take_failure(d));
    coil_deferred_unref(d);
    rec y;
    rec_init(&y);
    y.send = (const unsigned char *)"still here";
    y.send_len = 10;
    y.half_close_on_made = 1;
    y.handle_eof = 1;
    CU_ASSERT_FATAL(open_ch(r, s, &co, &y) != NULL);
    CU_ASSERT(coil_test_wait_flag(r, &y.lost, WAIT_SECONDS));
    CU_ASSERT(y.len == 10 && memcmp(y.data, "still here", 10) == 0);
    CU_ASSERT(x.destroyed && !x.made);
    CU_ASSERT(coil_ssh_session_channel_count(s) == 0);
    session_down(r, s);
    free(y.data);
    end_reactor(r);
}

/* The server process goes away: every channel is lost, then the owner
 * hears why. */
static void test_server_goes_away(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_ssh_options o;
    base_options(&o);
    coil_ssh_session *s = NULL;
    coil_failure *err = NULL;
    CU_ASSERT_FATAL(coil_ssh_session_new(r, &o, &s, &err) == 0);
    pid_t pid = sshd_inetd(r, s);
    lost_note note = {0};
    coil_ssh_session_on_lost(s, on_lost, &note);
    rec x[2];
    int done = 0;
    coil_ssh_channel_options cat = {.type = COIL_SSH_EXEC, .command = "cat"};
    for (int i = 0; i < 2; i++) {
        rec_init(&x[i]);
        x[i].count_done = &done;
        CU_ASSERT_FATAL(open_ch(r, s, &cat, &x[i]) != NULL);
    }
    kill(pid, SIGKILL);
    CU_ASSERT(wait_count(r, &done, 2, WAIT_SECONDS));
    for (int i = 0; i < 2; i++) {
        CU_ASSERT(x[i].reason_code == COIL_ECONNLOST);
        COIL_TEST_ASSERT_HAS(x[i].reason, "exec 'cat' lost");
        COIL_TEST_ASSERT_HAS(x[i].reason, "the server closed the connection");
    }
    CU_ASSERT(note.called == 1);
    COIL_TEST_ASSERT_HAS(note.reason, "the server closed the connection");
    int st = 0;
    waitpid(pid, &st, 0);
    coil_ssh_session_free(s);
    end_reactor(r);
}

/* ---- main -------------------------------------------------------------- */

static int add(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_direct_tcpip_echo),
        COIL_TEST(test_exec_cat),
        COIL_TEST(test_exec_stderr_status),
        COIL_TEST(test_shell_pty_and_subsystem),
        COIL_TEST(test_remote_forward),
        COIL_TEST(test_fifty_channels),
        COIL_TEST(test_paused_reader_bounded),
        COIL_TEST(test_session_lost),
        COIL_TEST(test_close_when_idle_keepalive),
        COIL_TEST(test_reactor_shutdown),
        COIL_TEST(test_over_unix_sshd_inetd),
        COIL_TEST(test_keepalive_silent_server),
        COIL_TEST(test_connect_failures_and_cancel),
        COIL_TEST(test_server_goes_away),
        {NULL, NULL},
    };
    return coil_test_add_suite("ssh_channel", cases);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    return coil_test_main(add);
}
