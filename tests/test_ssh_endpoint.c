/* The ssh: client endpoint kind: its parser's messages, and against the
 * real OpenSSH sshd of the ctest fixture `sshd`: direct-tcpip and exec
 * channels through coil_connect_protocol and through a connector (the
 * factory hears started_connecting / connected / connection_failed /
 * connection_lost as with TCP), and one shared session per reactor, server,
 * user and session options, dropped when nothing uses it. The protocol runs
 * on the channel itself: coil_ssh_channel_exit_status and
 * coil_ssh_channel_session work, and highWater=/lowWater= are its marks.
 *
 * Every wait runs the reactor until something happened, bounded by a
 * generous timeout that fails the test; nothing sleeps. */
#include "testutil.h"

#include <coil/ssh.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_SECONDS 60.0

static int wait_sessions(coil_reactor *r, size_t n, double seconds)
{
    double end = coil_reactor_seconds(r) + seconds;
    while (coil_ssh_endpoint_session_count(r) != n && coil_reactor_seconds(r) < end)
        coil_reactor_iterate(r, 0.05);
    return coil_ssh_endpoint_session_count(r) == n;
}

/* "ssh:127.0.0.1:PORT:user=U:identity=K:knownHosts=F" + extra */
static const char *ssh_desc(const char *extra)
{
    static char buf[4][2048];
    static int i;
    char *b = buf[i++ % 4];
    snprintf(b, sizeof buf[0], "ssh:%s:%s:user=%s:identity=%s:knownHosts=%s%s",
             coil_test_sshd("SSHD_HOST"), coil_test_sshd("SSHD_PORT"),
             coil_test_sshd("SSH_USER"), coil_test_sshd("SSH_KEY_ED25519"),
             coil_test_sshd("SSH_KNOWN_HOSTS"), extra);
    return b;
}

/* ---- the parser -------------------------------------------------------------- */

static void expect_bad(const char *text, const char *needle)
{
    coil_test_endpoint_bad(0, text, needle, "(use ssh:HOST[:PORT]:user=USER");
}

static void test_parse_errors(void)
{
    expect_bad("ssh:h:22:user=u", "the channel is missing: add :to=DESTHOST\\:DESTPORT");
    expect_bad("ssh:h:22:user=u:to=a\\:1:exec=cat", "give to= or exec=, not both");
    expect_bad("ssh:h:22:user=u:to=127.0.0.1", "to='127.0.0.1' is not DESTHOST:DESTPORT");
    /* The ':' of to= not escaped: the port reads as a third positional. */
    expect_bad("ssh:h:22:user=u:to=127.0.0.1:7000", "unexpected argument '7000'");
    expect_bad("ssh:h:22:user=u:to=a\\:0",
               "to= port '0' is not a number from 1 to 65535");
    expect_bad("ssh:h:22:user=u:to=[\\:\\:1\\:7000",
               "a bracketed IPv6 host needs its ']'");
    expect_bad("ssh:h:99999:user=u:exec=cat",
               "port '99999' is not a number from 1 to 65535");
    expect_bad("ssh::22:user=u:exec=cat", "the SSH server's host is missing");
    expect_bad("ssh:h:22:host=g:user=u:exec=cat",
               "host is given both as 'h' and as host=g");
    expect_bad("ssh:h:22:user=:exec=cat", "user is empty");
    expect_bad("ssh:h:22:user=u:exec=", "exec= is empty");
    expect_bad("ssh:h:22:user=u:colour=red:exec=cat", "unknown option 'colour'");
    expect_bad("ssh:h:22:user=u:agent=maybe:exec=cat", "agent='maybe' is not yes or no");
    expect_bad("ssh:h:22:user=u:hostKeys=trusting:exec=cat",
               "hostKeys='trusting' is not strict, accept-new or insecure-accept-any");
    expect_bad("ssh:h:22:user=u:keepalive=-1:exec=cat",
               "keepalive '-1' is not a number of seconds above 0");
    expect_bad("ssh:h:22:user=u:timeout=soon:exec=cat",
               "timeout 'soon' is not a number of seconds above 0");
    expect_bad("ssh:h:22:user=u:password=hunter2:exec=cat",
               "password= takes env:VAR, the name of an environment variable");
    unsetenv("COIL_TEST_NO_SUCH_VAR");
    expect_bad("ssh:h:22:user=u:password=env\\:COIL_TEST_NO_SUCH_VAR:exec=cat",
               "the environment variable COIL_TEST_NO_SUCH_VAR is not set");
    expect_bad("ssh:h:22:user=u:identity=/nonexistent/key:exec=cat",
               "identity file '/nonexistent/key' cannot be read: No such file");
    expect_bad("ssh:h:22:user=u:highWater=8192:lowWater=9000:exec=cat",
               "lowWater (9000) is above highWater (8192)");
    expect_bad("ssh:h:22:user=u:highWater=lots:exec=cat",
               "highWater 'lots' is not a number of bytes");

    /* A client description given to a server (the server form is tested
     * in test_sshd_endpoint). */
    coil_endpoint *e = COIL_TEST_POISON;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL(coil_endpoint_server("ssh:h:22:user=u:exec=cat", &e, &err),
                    COIL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    COIL_TEST_ASSERT_HAS(coil_failure_message(err),
                         "user= belongs to a client description");
    coil_failure_free(err);

    /* The session part alone is for coil-tunnel. */
    coil_reactor *r = coil_test_reactor(NULL);
    coil_ssh_session *s = COIL_TEST_POISON;
    err = NULL;
    CU_ASSERT_EQUAL(coil_ssh_session_connect_endpoint(r, "ssh:h:22:user=u:to=a\\:1", &s,
                                                      NULL, 0, &err),
                    COIL_EINVAL);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    COIL_TEST_ASSERT_HAS(coil_failure_message(err), "to= does not belong here");
    coil_failure_free(err);
    err = NULL;
    CU_ASSERT_EQUAL(coil_ssh_session_connect_endpoint(r, "ssh:h:22:user=u:highWater=9000",
                                                      &s, NULL, 0, &err),
                    COIL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    COIL_TEST_ASSERT_HAS(coil_failure_message(err),
                         "highWater=/lowWater= do not belong here");
    coil_failure_free(err);
    err = NULL;
    CU_ASSERT_EQUAL(coil_ssh_session_connect_endpoint(r, "tcp:h:22", &s, NULL, 0, &err),
                    COIL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    COIL_TEST_ASSERT_HAS(coil_failure_message(err), "not an ssh: description");
    coil_failure_free(err);
    coil_reactor_free(r);
}

static void expect_good(const char *text)
{
    coil_test_endpoint_good(0, text, "ssh");
}

static void test_parse_good(void)
{
    setenv("COIL_TEST_SSH_PW", "secret", 1);
    expect_good("ssh:gw.example:user=me:to=127.0.0.1\\:7000");
    expect_good("ssh:host=gw.example:port=2222:user=me:agent=yes:to=db\\:5432");
    /* IPv6: the server, bare or bracketed destinations (every ':' escaped). */
    expect_good("ssh:\\:\\:1:22:user=me:to=[\\:\\:1]\\:7000");
    expect_good("ssh:gw:22:user=me:to=\\:\\:1\\:7000");
    /* A command with colons and a backslash. */
    expect_good("ssh:gw:22:user=me:exec=date +%H\\:%M\\:%S; echo a\\\\b");
    expect_good("ssh:gw:22:user=me:password=env\\:COIL_TEST_SSH_PW:hostKeys=accept-new"
                ":keepalive=15:timeout=5:exec=cat");
    expect_good("ssh:gw:22:user=me:highWater=4096:lowWater=1024:to=db\\:5432");
    expect_good("ssh:gw:22:user=me:lowWater=100:exec=cat");
    unsetenv("COIL_TEST_SSH_PW");
}

/* ---- an echo server ------------------------------------------------------------- */

typedef struct echo {
    coil_protocol p;
} echo;

static void echo_data(coil_protocol *p, const void *data, size_t len)
{
    coil_transport_write(p->transport, data, len);
}

static void echo_destroy(coil_protocol *p)
{
    free(p);
}

static const coil_protocol_ops echo_ops = {.data_received = echo_data,
                                           .destroy = echo_destroy};

static coil_protocol *echo_build(coil_factory *f, const coil_address *peer)
{
    (void)f;
    (void)peer;
    echo *e = calloc(1, sizeof *e);
    if (e)
        e->p.ops = &echo_ops;
    return &e->p;
}

static const coil_factory_ops echo_factory_ops = {.build_protocol = echo_build};
static coil_factory echo_factory = {.ops = &echo_factory_ops};

static coil_listener *start_echo(coil_reactor *r, int *port)
{
    coil_tcp_listen_options o = {.interface = "127.0.0.1"};
    coil_listener *l = NULL;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_listen(r, &o, &echo_factory, &l, &err), 0);
    coil_address a;
    CU_ASSERT_EQUAL_FATAL(coil_listener_get_host(l, &a), 0);
    *port = coil_address_port(&a);
    return l;
}

/* ---- a client that collects what comes back ------------------------------------- */

typedef struct client {
    coil_protocol p;
    char got[256];
    size_t n;
    int made, lost, destroyed;
    char reason[512];
    int exit_known, exit_status; /* coil_ssh_channel_exit_status in connection_lost */
    int had_session;             /* coil_ssh_channel_session non-NULL there */
} client;

static void client_made(coil_protocol *p)
{
    ((client *)p)->made = 1;
}

static void client_data(coil_protocol *p, const void *data, size_t len)
{
    client *c = (client *)p;
    if (c->n + len < sizeof c->got) {
        memcpy(c->got + c->n, data, len);
        c->n += len;
        c->got[c->n] = '\0';
    }
}

static void client_lost(coil_protocol *p, const coil_failure *reason)
{
    client *c = (client *)p;
    c->lost++;
    snprintf(c->reason, sizeof c->reason, "%s", coil_failure_message(reason));
    /* The protocol runs on the channel itself: what coil/ssh.h says of a
     * channel works through an ssh: endpoint too. */
    const char *sig = NULL;
    c->exit_known = coil_ssh_channel_exit_status(p->transport, &c->exit_status, &sig);
    c->had_session = coil_ssh_channel_session(p->transport) != NULL;
}

static void client_destroy(coil_protocol *p)
{
    ((client *)p)->destroyed = 1;
}

static const coil_protocol_ops client_ops = {.connection_made = client_made,
                                             .data_received = client_data,
                                             .connection_lost = client_lost,
                                             .destroy = client_destroy};

static int has_echo(coil_reactor *r, client *c, const char *want)
{
    double end = coil_reactor_seconds(r) + WAIT_SECONDS;
    while (strcmp(c->got, want) != 0 && !c->lost && coil_reactor_seconds(r) < end)
        coil_reactor_iterate(r, 0.05);
    return strcmp(c->got, want) == 0;
}

/* Connect a `client` with coil_connect_protocol; 1 when it came up. */
static int connect_client(coil_reactor *r, const char *text, client *c)
{
    memset(c, 0, sizeof *c);
    c->p.ops = &client_ops;
    coil_endpoint *e = NULL;
    coil_failure *err = NULL;
    if (coil_endpoint_client(text, &e, &err) != 0) {
        fprintf(stderr, "\n    %s: %s\n", text, coil_failure_message(err));
        coil_failure_free(err);
        return 0;
    }
    coil_deferred *d = coil_connect_protocol(r, e, &c->p);
    coil_endpoint_free(e);
    CU_ASSERT_FATAL(d != NULL);
    int ok = coil_test_wait_fired(r, d, WAIT_SECONDS) && !coil_deferred_is_failure(d);
    if (!ok && coil_deferred_called(d))
        fprintf(stderr, "\n    %s: %s\n", text,
                coil_failure_message(coil_deferred_failure(d)));
    coil_deferred_unref(d);
    return ok;
}

static void test_shared_session(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    int port;
    coil_listener *l = start_echo(r, &port);
    char extra[64];
    snprintf(extra, sizeof extra, ":to=127.0.0.1\\:%d", port);
    const char *text = ssh_desc(extra);

    client a, b, c;
    CU_ASSERT_FATAL(connect_client(r, text, &a));
    CU_ASSERT_FATAL(connect_client(r, text, &b));
    CU_ASSERT_EQUAL(coil_ssh_endpoint_session_count(r), 1);
    /* The transport is the channel's. */
    coil_transport_info info;
    CU_ASSERT_EQUAL(coil_transport_info_get(a.p.transport, &info), 0);
    CU_ASSERT_STRING_EQUAL(info.kind, "ssh-channel");
    CU_ASSERT_EQUAL(coil_transport_write(a.p.transport, "one", 3), 0);
    CU_ASSERT_EQUAL(coil_transport_write(b.p.transport, "two", 3), 0);
    CU_ASSERT(has_echo(r, &a, "one"));
    CU_ASSERT(has_echo(r, &b, "two"));

    /* Other session options: another session. */
    snprintf(extra, sizeof extra, ":keepalive=30:to=127.0.0.1\\:%d", port);
    CU_ASSERT_FATAL(connect_client(r, ssh_desc(extra), &c));
    CU_ASSERT_EQUAL(coil_ssh_endpoint_session_count(r), 2);
    CU_ASSERT_EQUAL(coil_transport_write(c.p.transport, "three", 5), 0);
    CU_ASSERT(has_echo(r, &c, "three"));

    /* Closing the channels drops the sessions. */
    coil_transport_lose_connection(a.p.transport);
    coil_transport_lose_connection(b.p.transport);
    coil_transport_lose_connection(c.p.transport);
    CU_ASSERT(coil_test_wait_flag(r, &a.destroyed, WAIT_SECONDS));
    CU_ASSERT(coil_test_wait_flag(r, &b.destroyed, WAIT_SECONDS));
    CU_ASSERT(coil_test_wait_flag(r, &c.destroyed, WAIT_SECONDS));
    COIL_TEST_ASSERT_HAS(a.reason, "");
    CU_ASSERT(wait_sessions(r, 0, WAIT_SECONDS));

    coil_listener_close(l);
    CU_ASSERT(coil_reactor_shutdown(r, 5.0) >= 0);
    coil_reactor_free(r);
}

static void test_exec(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    client a, b;
    CU_ASSERT_FATAL(connect_client(r, ssh_desc(":exec=cat"), &a));
    CU_ASSERT_EQUAL(coil_transport_write(a.p.transport, "x:y", 3), 0);
    CU_ASSERT(has_echo(r, &a, "x:y"));
    CU_ASSERT_PTR_NOT_NULL(coil_ssh_channel_session(a.p.transport));
    coil_transport_lose_write_connection(a.p.transport); /* EOF: cat exits */
    CU_ASSERT(coil_test_wait_flag(r, &a.lost, WAIT_SECONDS));
    COIL_TEST_ASSERT_HAS(a.reason, "status 0");
    CU_ASSERT_EQUAL(a.exit_known, 1);
    CU_ASSERT_EQUAL(a.exit_status, 0);
    CU_ASSERT(a.had_session);
    /* A command with ':' in it, and its exit status. */
    CU_ASSERT_FATAL(connect_client(r, ssh_desc(":exec=echo a\\:b; exit 3"), &b));
    CU_ASSERT(coil_test_wait_flag(r, &b.lost, WAIT_SECONDS));
    CU_ASSERT_STRING_EQUAL(b.got, "a:b\n");
    COIL_TEST_ASSERT_HAS(b.reason, "status 3");
    CU_ASSERT_EQUAL(b.exit_known, 1);
    CU_ASSERT_EQUAL(b.exit_status, 3);
    CU_ASSERT(b.had_session);
    CU_ASSERT(coil_test_wait_flag(r, &b.destroyed, WAIT_SECONDS));
    CU_ASSERT_EQUAL(b.lost, 1);
    CU_ASSERT(wait_sessions(r, 0, WAIT_SECONDS));
    CU_ASSERT(coil_reactor_shutdown(r, 5.0) >= 0);
    coil_reactor_free(r);
}

/* ---- a connector and what its factory hears -------------------------------------- */

typedef struct counting {
    coil_factory f;
    client c;
    int started, connected, failed, lost, builds;
    coil_transport *t;
    char why[512];
} counting;

static coil_protocol *counting_build(coil_factory *f, const coil_address *peer)
{
    counting *k = (counting *)f;
    CU_ASSERT_EQUAL(peer->kind, COIL_ADDR_SSH);
    k->builds++;
    memset(&k->c, 0, sizeof k->c);
    k->c.p.ops = &client_ops;
    return &k->c.p;
}

static void counting_started(coil_factory *f, coil_connector *c)
{
    (void)c;
    ((counting *)f)->started++;
}

static void counting_connected(coil_factory *f, coil_connector *c, coil_transport *t)
{
    counting *k = (counting *)f;
    CU_ASSERT(coil_connector_transport(c) == t);
    CU_ASSERT(k->c.made); /* after the protocol's connection_made */
    k->connected++;
    k->t = t;
}

static void counting_failed(coil_factory *f, coil_connector *c, const coil_failure *why)
{
    (void)c;
    counting *k = (counting *)f;
    k->failed++;
    snprintf(k->why, sizeof k->why, "%s [%d]", coil_failure_message(why),
             coil_failure_code(why));
}

static void counting_lost(coil_factory *f, coil_connector *c, const coil_failure *why)
{
    counting *k = (counting *)f;
    CU_ASSERT(k->c.lost); /* after the protocol's connection_lost */
    CU_ASSERT_PTR_NULL(coil_connector_transport(c));
    k->lost++;
    snprintf(k->why, sizeof k->why, "%s", coil_failure_message(why));
}

static const coil_factory_ops counting_ops = {.build_protocol = counting_build,
                                              .started_connecting = counting_started,
                                              .connected = counting_connected,
                                              .connection_failed = counting_failed,
                                              .connection_lost = counting_lost};

static void test_connector(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    int port;
    coil_listener *l = start_echo(r, &port);
    char extra[64];
    snprintf(extra, sizeof extra, ":to=127.0.0.1\\:%d", port);
    coil_endpoint *e = NULL;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_client(ssh_desc(extra), &e, &err), 0);
    counting k = {.f.ops = &counting_ops};
    coil_connector *c = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_connect(r, e, &k.f, &c, &err), 0);
    CU_ASSERT_STRING_EQUAL(coil_connector_kind(c), "ssh-channel");
    CU_ASSERT_EQUAL(k.started, 1);
    CU_ASSERT(coil_test_wait_flag(r, &k.connected, WAIT_SECONDS));
    CU_ASSERT_EQUAL(coil_transport_write(k.t, "hi", 2), 0);
    CU_ASSERT(has_echo(r, &k.c, "hi"));
    /* Busy: a second attempt while connected is refused. */
    CU_ASSERT_EQUAL(coil_connector_connect(c), COIL_ESTATE);
    coil_transport_lose_connection(k.t);
    CU_ASSERT(coil_test_wait_flag(r, &k.lost, WAIT_SECONDS));
    CU_ASSERT_EQUAL(k.failed, 0);
    /* Again, on the same session (the connector keeps it). */
    CU_ASSERT_EQUAL(coil_ssh_endpoint_session_count(r), 1);
    CU_ASSERT_EQUAL(coil_connector_connect(c), 0);
    CU_ASSERT_EQUAL(k.started, 2);
    double end = coil_reactor_seconds(r) + WAIT_SECONDS;
    while (k.connected < 2 && coil_reactor_seconds(r) < end)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT_EQUAL(k.connected, 2);
    CU_ASSERT_EQUAL(coil_ssh_endpoint_session_count(r), 1);
    /* Freeing the connector leaves the connection alone. */
    coil_connector_free(c);
    CU_ASSERT_EQUAL(coil_transport_write(k.t, "yo", 2), 0);
    CU_ASSERT(has_echo(r, &k.c, "yo"));
    coil_transport_lose_connection(k.t);
    CU_ASSERT(coil_test_wait_flag(r, &k.c.destroyed, WAIT_SECONDS));
    CU_ASSERT_EQUAL(k.lost, 1); /* the freed connector reports nothing */
    CU_ASSERT(wait_sessions(r, 0, WAIT_SECONDS));
    coil_endpoint_free(e);

    /* A destination the server cannot reach: connection_failed, with the
     * server's word; the protocol was never made. */
    int dead;
    coil_listener *l2 = start_echo(r, &dead);
    coil_listener_close(l2);
    snprintf(extra, sizeof extra, ":to=127.0.0.1\\:%d", dead);
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_client(ssh_desc(extra), &e, &err), 0);
    counting k2 = {.f.ops = &counting_ops};
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_connect(r, e, &k2.f, &c, &err), 0);
    CU_ASSERT_EQUAL(k2.failed, 0); /* never before connect returns */
    CU_ASSERT(coil_test_wait_flag(r, &k2.failed, WAIT_SECONDS));
    CU_ASSERT_EQUAL(k2.connected, 0);
    CU_ASSERT_EQUAL(k2.c.made, 0);
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", dead);
    COIL_TEST_ASSERT_HAS(k2.why, port_text);
    /* Stopped: connection_failed with COIL_ECANCELLED. */
    CU_ASSERT_EQUAL(coil_connector_connect(c), 0);
    coil_connector_stop_connecting(c);
    end = coil_reactor_seconds(r) + WAIT_SECONDS;
    while (k2.failed < 2 && coil_reactor_seconds(r) < end)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT_EQUAL(k2.failed, 2);
    char cancelled[32];
    snprintf(cancelled, sizeof cancelled, "[%d]", COIL_ECANCELLED);
    COIL_TEST_ASSERT_HAS(k2.why, cancelled);
    coil_connector_free(c);
    coil_endpoint_free(e);
    CU_ASSERT(wait_sessions(r, 0, WAIT_SECONDS));

    /* An unknown host key: connection_failed says so. */
    char kh[256];
    CU_ASSERT_EQUAL_FATAL(coil_test_temp_file(kh, sizeof kh, "kh"), 0);
    char text[2048];
    snprintf(text, sizeof text, "ssh:%s:%s:user=%s:identity=%s:knownHosts=%s:exec=cat",
             coil_test_sshd("SSHD_HOST"), coil_test_sshd("SSHD_PORT"),
             coil_test_sshd("SSH_USER"), coil_test_sshd("SSH_KEY_ED25519"), kh);
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_client(text, &e, &err), 0);
    counting k3 = {.f.ops = &counting_ops};
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_connect(r, e, &k3.f, &c, &err), 0);
    CU_ASSERT(coil_test_wait_flag(r, &k3.failed, WAIT_SECONDS));
    COIL_TEST_ASSERT_HAS(k3.why, "SHA256:");
    coil_connector_free(c);
    coil_endpoint_free(e);
    unlink(kh);
    CU_ASSERT(wait_sessions(r, 0, WAIT_SECONDS));

    coil_listener_close(l);
    CU_ASSERT(coil_reactor_shutdown(r, 5.0) >= 0);
    coil_reactor_free(r);
}

/* The factory's protocol on the channel itself (exit status, session, water
 * marks through a connector); connection_lost once; a connector freed while
 * its channel lives, or while it opens, is never called again and the
 * session still goes when the channel does. */
static void test_connector_channel(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_endpoint *e = NULL;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL_FATAL(
        coil_endpoint_client(ssh_desc(":highWater=4096:lowWater=1024:exec=cat"), &e,
                             &err),
        0);
    counting k = {.f.ops = &counting_ops};
    coil_connector *c = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_connect(r, e, &k.f, &c, &err), 0);
    CU_ASSERT(coil_test_wait_flag(r, &k.connected, WAIT_SECONDS));
    CU_ASSERT_FATAL(k.t != NULL);
    CU_ASSERT(k.c.p.transport == k.t); /* no transport in between */
    CU_ASSERT(coil_connector_transport(c) == k.t);
    coil_transport_info info;
    CU_ASSERT_EQUAL(coil_transport_info_get(k.t, &info), 0);
    CU_ASSERT_STRING_EQUAL(info.kind, "ssh-channel");
    CU_ASSERT_EQUAL(info.high_water, 4096);
    CU_ASSERT_EQUAL(info.low_water, 1024);
    /* The caller may set them again on the channel. */
    CU_ASSERT_EQUAL(coil_transport_set_water_marks(k.t, 8192, 2048), 0);
    CU_ASSERT_EQUAL(coil_transport_info_get(k.t, &info), 0);
    CU_ASSERT_EQUAL(info.high_water, 8192);
    CU_ASSERT_EQUAL(info.low_water, 2048);
    CU_ASSERT_PTR_NOT_NULL(coil_ssh_channel_session(k.t));
    CU_ASSERT_EQUAL(coil_transport_write(k.t, "ping", 4), 0);
    CU_ASSERT(has_echo(r, &k.c, "ping"));
    coil_transport_lose_write_connection(k.t); /* EOF: cat exits 0 */
    CU_ASSERT(coil_test_wait_flag(r, &k.lost, WAIT_SECONDS));
    CU_ASSERT_EQUAL(k.c.lost, 1);
    CU_ASSERT_EQUAL(k.c.exit_known, 1);
    CU_ASSERT_EQUAL(k.c.exit_status, 0);
    CU_ASSERT(k.c.had_session);
    CU_ASSERT(coil_test_wait_flag(r, &k.c.destroyed, WAIT_SECONDS));
    /* Exactly once, also after more turns of the loop. */
    for (int i = 0; i < 10; i++)
        coil_reactor_iterate(r, 0.01);
    CU_ASSERT_EQUAL(k.lost, 1);
    CU_ASSERT_EQUAL(k.failed, 0);
    CU_ASSERT_PTR_NULL(coil_connector_transport(c));
    /* The connector keeps its session; the ended channel's user is gone. */
    CU_ASSERT_EQUAL(coil_ssh_endpoint_session_count(r), 1);

    /* Again, with a command that ends by itself; the connector is freed
     * while the channel lives: its end reaches the protocol only. */
    coil_endpoint_free(e);
    coil_connector_free(c);
    CU_ASSERT_EQUAL_FATAL(
        coil_endpoint_client(ssh_desc(":exec=read x; echo got $x; exit 7"), &e, &err), 0);
    counting k2 = {.f.ops = &counting_ops};
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_connect(r, e, &k2.f, &c, &err), 0);
    CU_ASSERT(coil_test_wait_flag(r, &k2.connected, WAIT_SECONDS));
    CU_ASSERT_FATAL(k2.t != NULL);
    coil_connector_free(c);
    coil_endpoint_free(e);
    CU_ASSERT_EQUAL(coil_transport_write(k2.t, "it\n", 3), 0);
    CU_ASSERT(coil_test_wait_flag(r, &k2.c.destroyed, WAIT_SECONDS));
    CU_ASSERT_STRING_EQUAL(k2.c.got, "got it\n");
    CU_ASSERT_EQUAL(k2.c.lost, 1);
    CU_ASSERT_EQUAL(k2.c.exit_known, 1);
    CU_ASSERT_EQUAL(k2.c.exit_status, 7);
    CU_ASSERT_EQUAL(k2.lost, 0); /* the freed connector reports nothing */
    CU_ASSERT_EQUAL(k2.failed, 0);
    /* Its user of the session went with the channel. */
    CU_ASSERT(wait_sessions(r, 0, WAIT_SECONDS));

    /* A connector freed while its channel opens: nothing more is heard and
     * the session goes. */
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_client(ssh_desc(":exec=cat"), &e, &err), 0);
    counting k3 = {.f.ops = &counting_ops};
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_connect(r, e, &k3.f, &c, &err), 0);
    coil_connector_free(c);
    coil_endpoint_free(e);
    CU_ASSERT(wait_sessions(r, 0, WAIT_SECONDS));
    for (int i = 0; i < 10; i++)
        coil_reactor_iterate(r, 0.01);
    CU_ASSERT_EQUAL(k3.connected + k3.failed + k3.lost, 0);

    CU_ASSERT(coil_reactor_shutdown(r, 5.0) >= 0);
    coil_reactor_free(r);
}

static int add(void)
{
    static const coil_test_case parse[] = {
        COIL_TEST(test_parse_errors), COIL_TEST(test_parse_good), {NULL, NULL}};
    static const coil_test_case live[] = {COIL_TEST(test_shared_session),
                                          COIL_TEST(test_exec),
                                          COIL_TEST(test_connector),
                                          COIL_TEST(test_connector_channel),
                                          {NULL, NULL}};
    if (coil_test_add_suite("ssh endpoint parser", parse) ||
        coil_test_add_suite("ssh endpoint against sshd", live))
        return -1;
    return 0;
}

int main(void)
{
    coil_test_sshd("SSHD_PORT"); /* fails loudly without the fixture */
    return coil_test_main(add);
}
