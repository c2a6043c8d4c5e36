/* Interop with real peers started on loopback: OpenSSL's `openssl s_server`
 * for the coil client and `openssl s_client` for the coil server. TLS 1.2
 * and 1.3, client certificates, expired and wrong-host certificates, old
 * versions refused, ALPN, resumption, STARTTLS (s_client -starttls smtp).
 * Certificates come from tests/tls/make-certs.sh ($COIL_TEST_CERTS). The
 * peers must be installed (Debian package openssl): a missing peer fails. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

extern char **environ;

#define cert coil_test_cert

/* ---- a child process whose output we collect while the reactor runs ---- */

typedef struct child {
    pid_t pid;
    int out_fd;
    char out[65536];
    size_t out_len;
    int status;
    int exited;
} child;

static int child_start(child *c, const char *const argv[], const char *input)
{
    memset(c, 0, sizeof *c);
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, out[1], 2);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    int rc = posix_spawnp(&c->pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    if (rc != 0) {
        fprintf(stderr,
                "interop: cannot start %s: %s (install the Debian package "
                "'openssl': tools/install-deps)\n",
                argv[0], strerror(rc));
        close(in[1]);
        close(out[0]);
        return -1;
    }
    if (input && write(in[1], input, strlen(input)) < 0)
        perror("interop: write to child");
    close(in[1]);
    c->out_fd = out[0];
    fcntl(c->out_fd, F_SETFL, O_NONBLOCK);
    return 0;
}

static void child_poll(child *c)
{
    if (c->out_fd >= 0) {
        for (;;) {
            ssize_t n =
                read(c->out_fd, c->out + c->out_len, sizeof c->out - 1 - c->out_len);
            if (n > 0) {
                c->out_len += (size_t)n;
                c->out[c->out_len] = 0;
                continue;
            }
            if (n == 0) {
                close(c->out_fd);
                c->out_fd = -1;
            }
            break;
        }
    }
    if (!c->exited && waitpid(c->pid, &c->status, WNOHANG) == c->pid)
        c->exited = 1;
}

/* Run the reactor until the child has exited (or `seconds` pass: killed). */
static void child_wait(coil_reactor *r, child *c, double seconds)
{
    for (int i = 0; i < seconds * 100 && !(c->exited && c->out_fd < 0); i++) {
        coil_reactor_iterate(r, 0.01);
        child_poll(c);
    }
    if (!c->exited) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, &c->status, 0);
        c->exited = 1;
    }
    if (c->out_fd >= 0) {
        child_poll(c);
        close(c->out_fd);
        c->out_fd = -1;
    }
}

static void child_stop(coil_reactor *r, child *c)
{
    if (!c->exited)
        kill(c->pid, SIGTERM);
    child_wait(r, c, 5);
}

/* Run the reactor until `text` shows in the child's output. */
static int child_expect(coil_reactor *r, child *c, const char *text, double seconds)
{
    for (int i = 0; i < seconds * 100; i++) {
        child_poll(c);
        if (strstr(c->out, text))
            return 1;
        if (c->exited)
            break;
        coil_reactor_iterate(r, 0.01);
    }
    fprintf(stderr, "interop: \"%s\" not seen; the peer said:\n%s\n", text, c->out);
    return 0;
}

/* Let closing connections finish (the TLS close waits for the peer's
 * close, bounded) before the reactor goes: until every transport is freed,
 * an event, never a fixed number of turns; 10 s at most. */
static void settle(coil_reactor *r)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        if (coil_reactor_transport_count(r) == 0)
            return;
        coil_reactor_iterate(r, 0.05);
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (now.tv_sec - t0.tv_sec < 10);
    CU_ASSERT_EQUAL(coil_reactor_transport_count(r), 0);
}

/* Run the loop until the captured log holds `text` (the server logs after
 * the peer has gone), 10 s at most. */
static int wait_log(coil_reactor *r, const char *text)
{
    for (int i = 0; i < 1000 && !coil_test_log_contains(text); i++)
        coil_reactor_iterate(r, 0.01);
    return coil_test_log_contains(text);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* ---- the coil client against openssl s_server -rev ---- */

typedef struct client {
    coil_protocol base;
    coil_transport_info info;
    char got[256];
    size_t got_len;
    int made, lost, lost_code;
} client;

static void client_made(coil_protocol *p)
{
    client *c = (client *)p;
    c->made = 1;
    coil_transport_info_get(p->transport, &c->info);
    coil_transport_write(p->transport, "hello\n", 6);
}

static void client_data(coil_protocol *p, const void *d, size_t n)
{
    client *c = (client *)p;
    if (c->got_len + n < sizeof c->got) {
        memcpy(c->got + c->got_len, d, n);
        c->got_len += n;
    }
    if (memchr(d, '\n', n))
        coil_transport_lose_connection(p->transport);
}

static void client_lost(coil_protocol *p, const coil_failure *why)
{
    client *c = (client *)p;
    c->lost = 1;
    c->lost_code = coil_failure_code(why);
}

static const coil_protocol_ops client_ops = {
    .connection_made = client_made,
    .data_received = client_data,
    .connection_lost = client_lost,
};

typedef struct cfactory {
    coil_factory base;
    client c;
    int failed, ended;
    char failure[1024];
} cfactory;

static coil_protocol *cf_build(coil_factory *f, const coil_address *a)
{
    cfactory *cf = (cfactory *)f;
    memset(&cf->c, 0, sizeof cf->c);
    cf->c.base.ops = &client_ops;
    return &cf->c.base;
}

static void cf_failed(coil_factory *f, coil_connector *k, const coil_failure *why)
{
    cfactory *cf = (cfactory *)f;
    cf->failed = 1;
    cf->ended = 1;
    coil_failure_format(why, cf->failure, sizeof cf->failure);
}

static void cf_lost(coil_factory *f, coil_connector *k, const coil_failure *why)
{
    ((cfactory *)f)->ended = 1;
}

static const coil_factory_ops cf_ops = {
    .build_protocol = cf_build,
    .connection_failed = cf_failed,
    .connection_lost = cf_lost,
};

/* Connect once to 127.0.0.1:port as "localhost" and wait for the end. */
static void coil_connect_once(coil_reactor *r, coil_tls_context *cc, int port,
                              cfactory *cf)
{
    memset(cf, 0, sizeof *cf);
    cf->base.ops = &cf_ops;
    coil_tcp_connect_options o = {0};
    o.host = "127.0.0.1";
    o.port = port;
    coil_connector *k = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tls_connect_tcp(r, &o, cc, "localhost", &cf->base, &k), 0);
    for (int i = 0; i < 1000 && !cf->ended; i++)
        coil_reactor_iterate(r, 0.01);
    CU_ASSERT(cf->ended);
    coil_connector_free(k);
}

static coil_tls_context *client_ctx(const char *alpn)
{
    coil_tls_options o = {0};
    o.ca_file = cert("ca.pem");
    o.alpn = alpn;
    coil_tls_context *c = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tls_context_new(COIL_TLS_CLIENT, &o, &c, NULL), 0);
    return c;
}

/* Start s_server with `extra` arguments; waits until it accepts. */
static int s_server(coil_reactor *r, child *c, int *port, const char *certname,
                    const char *const *extra)
{
    char accept[64], cfile[600], kfile[600];
    *port = free_port();
    snprintf(accept, sizeof accept, "127.0.0.1:%d", *port);
    snprintf(cfile, sizeof cfile, "%s", cert(certname));
    char kname[64];
    snprintf(kname, sizeof kname, "%.*s.key", (int)(strlen(certname) - 4), certname);
    snprintf(kfile, sizeof kfile, "%s", cert(kname));
    const char *argv[32] = {"openssl", "s_server", "-accept", accept, "-cert",
                            cfile,     "-key",     kfile,     "-rev"};
    int n = 9;
    for (; extra && *extra && n < 30; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    if (child_start(c, argv, NULL) != 0)
        return 0;
    return child_expect(r, c, "ACCEPT", 10);
}

static void client_vs_s_server(const char *version_flag, const char *want)
{
    coil_reactor *r = coil_test_reactor(NULL);
    child srv;
    int port;
    const char *extra[] = {version_flag, "-naccept", "1", NULL};
    CU_ASSERT_FATAL(s_server(r, &srv, &port, "server.pem", extra));
    coil_tls_context *cc = client_ctx(NULL);
    cfactory cf;
    coil_connect_once(r, cc, port, &cf);
    CU_ASSERT_EQUAL(cf.failed, 0);
    CU_ASSERT(cf.c.info.tls_version && strcmp(cf.c.info.tls_version, want) == 0);
    CU_ASSERT_EQUAL(cf.c.info.tls_peer_verified, 1);
    CU_ASSERT_EQUAL(cf.c.got_len, 6);
    CU_ASSERT(memcmp(cf.c.got, "olleh\n", 6) == 0);
    child_stop(r, &srv);
    CU_ASSERT(strstr(srv.out, want) != NULL); /* "Protocol version: TLSv1.x" */
    settle(r);
    coil_tls_context_free(cc);
    coil_reactor_free(r);
}

static void test_client_tls13(void)
{
    client_vs_s_server("-tls1_3", "TLSv1.3");
}

static void test_client_tls12(void)
{
    client_vs_s_server("-tls1_2", "TLSv1.2");
}

static void test_client_alpn_and_resumption(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    child srv;
    int port;
    const char *extra[] = {"-alpn", "h2", "-naccept", "2", NULL};
    CU_ASSERT_FATAL(s_server(r, &srv, &port, "server.pem", extra));
    coil_tls_context *cc = client_ctx("http/1.1,h2");
    cfactory cf;
    coil_connect_once(r, cc, port, &cf);
    CU_ASSERT_EQUAL(cf.failed, 0);
    CU_ASSERT_STRING_EQUAL(cf.c.info.tls_alpn, "h2");
    CU_ASSERT_EQUAL(cf.c.info.tls_resumed, 0);
    CU_ASSERT_EQUAL(coil_tls_context_cached_sessions(cc), 1);
    coil_connect_once(r, cc, port, &cf);
    CU_ASSERT_EQUAL(cf.failed, 0);
    CU_ASSERT_EQUAL(cf.c.info.tls_resumed, 1); /* the second connection resumes */
    CU_ASSERT(memcmp(cf.c.got, "olleh\n", 6) == 0);
    child_stop(r, &srv);
    settle(r);
    coil_tls_context_free(cc);
    coil_reactor_free(r);
}

static void client_rejects(const char *certname, const char *const *extra,
                           const char *const *needles)
{
    coil_reactor *r = coil_test_reactor(NULL);
    child srv;
    int port;
    CU_ASSERT_FATAL(s_server(r, &srv, &port, certname, extra));
    coil_tls_context *cc = client_ctx(NULL);
    cfactory cf;
    coil_connect_once(r, cc, port, &cf);
    CU_ASSERT_EQUAL(cf.failed, 1);
    CU_ASSERT_EQUAL(cf.c.made, 0);
    for (; *needles; needles++)
        if (!strstr(cf.failure, *needles)) {
            fprintf(stderr, "interop: failure \"%s\" lacks \"%s\"\n", cf.failure,
                    *needles);
            CU_FAIL("failure message");
        }
    child_stop(r, &srv);
    settle(r);
    coil_tls_context_free(cc);
    coil_reactor_free(r);
}

static void test_client_rejects_expired(void)
{
    const char *extra[] = {"-naccept", "1", NULL};
    const char *n[] = {"TLS handshake with 127.0.0.1:", "certificate has expired",
                       "CN=localhost", NULL};
    client_rejects("expired.pem", extra, n);
}

static void test_client_rejects_wrong_host(void)
{
    const char *extra[] = {"-naccept", "1", NULL};
    const char *n[] = {"hostname mismatch", "CN=wrong.example", "expected host localhost",
                       NULL};
    client_rejects("wronghost.pem", extra, n);
}

static void test_client_refuses_tls11_server(void)
{
    const char *extra[] = {"-tls1_1",  "-cipher", "DEFAULT:@SECLEVEL=0",
                           "-naccept", "1",       NULL};
    const char *n[] = {"TLS handshake with 127.0.0.1:", "protocol version", NULL};
    client_rejects("server.pem", extra, n);
}

/* ---- the coil server against openssl s_client ---- */

typedef struct server {
    coil_protocol base;
    coil_transport_info info;
    int made;
    /* SMTP-like STARTTLS (for s_client -starttls smtp) */
    int smtp, upgraded;
    char line[512];
    size_t line_len;
} server;

typedef struct sfactory {
    coil_factory base;
    server s[4];
    int n;
    int smtp;
    coil_tls_context *ctx;
} sfactory;

static sfactory *the_sf;

static void server_made(coil_protocol *p)
{
    server *s = (server *)p;
    s->made = 1;
    coil_transport_info_get(p->transport, &s->info);
    if (s->smtp)
        coil_transport_write(p->transport, "220 coil ESMTP\r\n", 16);
}

static void smtp_line(server *s, coil_transport *t)
{
    if (strncmp(s->line, "EHLO", 4) == 0) {
        coil_transport_write(t, "250-coil\r\n250 STARTTLS\r\n", 24);
    } else if (strncmp(s->line, "STARTTLS", 8) == 0) {
        coil_transport_write(t, "220 go ahead\r\n", 14);
        CU_ASSERT_EQUAL(coil_tls_start(t, the_sf->ctx, NULL, NULL), 0);
        s->upgraded = 1;
    }
}

static void server_data(coil_protocol *p, const void *d, size_t n)
{
    server *s = (server *)p;
    if (s->smtp && !s->upgraded) {
        const char *c = d;
        for (size_t i = 0; i < n && !s->upgraded; i++) {
            if (c[i] == '\n') {
                s->line[s->line_len] = 0;
                smtp_line(s, p->transport);
                s->line_len = 0;
            } else if (s->line_len < sizeof s->line - 1) {
                s->line[s->line_len++] = c[i];
            }
        }
        return;
    }
    coil_transport_write(p->transport, d, n); /* echo, then close at a newline */
    if (memchr(d, '\n', n)) {
        coil_transport_info_get(p->transport, &s->info);
        coil_transport_lose_connection(p->transport);
    }
}

static const coil_protocol_ops server_ops = {
    .connection_made = server_made,
    .data_received = server_data,
};

static coil_protocol *sf_build(coil_factory *f, const coil_address *a)
{
    sfactory *sf = (sfactory *)f;
    if (sf->n == 4)
        return NULL;
    server *s = &sf->s[sf->n++];
    memset(s, 0, sizeof *s);
    s->base.ops = &server_ops;
    s->smtp = sf->smtp;
    return &s->base;
}

static const coil_factory_ops sf_ops = {.build_protocol = sf_build};

/* A coil TLS server (or plain, for STARTTLS) on a free port. */
static coil_listener *coil_server(coil_reactor *r, sfactory *sf, coil_tls_options *o,
                                  int tls, int *port)
{
    memset(sf, 0, sizeof *sf);
    sf->base.ops = &sf_ops;
    the_sf = sf;
    if (!o->cert_file) {
        o->cert_file = cert("server-chain.pem");
        o->key_file = cert("server.key");
    }
    CU_ASSERT_EQUAL_FATAL(coil_tls_context_new(COIL_TLS_SERVER, o, &sf->ctx, NULL), 0);
    coil_tcp_listen_options lo = {0};
    lo.interface = "127.0.0.1";
    coil_listener *l = NULL;
    int rc = tls ? coil_tls_listen_tcp(r, &lo, sf->ctx, &sf->base, &l, NULL)
                 : coil_tcp_listen(r, &lo, &sf->base, &l, NULL);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    coil_address a;
    CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);
    *port = coil_address_port(&a);
    return l;
}

static void server_end(coil_reactor *r, coil_listener *l, sfactory *sf)
{
    settle(r);
    coil_listener_close(l);
    coil_tls_context_free(sf->ctx);
    coil_reactor_free(r);
}

/* Run s_client against 127.0.0.1:port with `extra`, sending "hello\n". */
static void s_client(coil_reactor *r, child *c, int port, const char *const *extra)
{
    char conn[64];
    snprintf(conn, sizeof conn, "127.0.0.1:%d", port);
    const char *argv[40] = {"openssl",
                            "s_client",
                            "-connect",
                            conn,
                            "-CAfile",
                            cert("ca.pem"),
                            "-verify_hostname",
                            "localhost",
                            "-verify_return_error",
                            "-ign_eof"};
    int n = 10;
    for (; extra && *extra && n < 38; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    CU_ASSERT_FATAL(child_start(c, argv, "hello\n") == 0);
    child_wait(r, c, 20);
}

static void server_vs_s_client(const char *flag, const char *want)
{
    coil_reactor *r = coil_test_reactor(NULL);
    sfactory sf;
    coil_tls_options o = {0};
    int port;
    coil_listener *l = coil_server(r, &sf, &o, 1, &port);
    child c;
    const char *extra[] = {flag, NULL};
    s_client(r, &c, port, extra);
    CU_ASSERT(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    CU_ASSERT(strstr(c.out, "hello\n") != NULL);
    CU_ASSERT(strstr(c.out, "Verify return code: 0 (ok)") != NULL);
    CU_ASSERT_EQUAL(sf.n, 1);
    CU_ASSERT(sf.s[0].info.tls_version && strcmp(sf.s[0].info.tls_version, want) == 0);
    if (!strstr(c.out, "hello\n"))
        fprintf(stderr, "interop: s_client said:\n%s\n", c.out);
    server_end(r, l, &sf);
}

static void test_server_tls13(void)
{
    server_vs_s_client("-tls1_3", "TLSv1.3");
}

static void test_server_tls12(void)
{
    server_vs_s_client("-tls1_2", "TLSv1.2");
}

static void test_server_client_cert(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    sfactory sf;
    coil_tls_options o = {0};
    o.require_client_cert = 1;
    o.ca_file = cert("ca.pem");
    int port;
    coil_listener *l = coil_server(r, &sf, &o, 1, &port);
    /* Required and present. */
    child c;
    const char *with[] = {"-cert", cert("client.pem"), "-key", cert("client.key"), NULL};
    s_client(r, &c, port, with);
    CU_ASSERT(strstr(c.out, "hello\n") != NULL);
    CU_ASSERT(strstr(sf.s[0].info.tls_peer_subject, "CN=coil test client") != NULL);
    CU_ASSERT_EQUAL(sf.s[0].info.tls_peer_verified, 1);
    /* Required and missing: the server refuses with an alert and logs. */
    coil_test_log_capture_start();
    s_client(r, &c, port, NULL);
    wait_log(r, "peer did not return a certificate");
    coil_test_log_capture_stop();
    CU_ASSERT(strstr(c.out, "hello\n") == NULL);
    CU_ASSERT(strstr(c.out, "certificate required") != NULL);
    CU_ASSERT(coil_test_log_contains("peer did not return a certificate"));
    CU_ASSERT_EQUAL(sf.s[1].made, 0);
    server_end(r, l, &sf);
}

static void test_server_refuses_tls11_client(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    sfactory sf;
    coil_tls_options o = {0};
    int port;
    coil_listener *l = coil_server(r, &sf, &o, 1, &port);
    child c;
    const char *extra[] = {"-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", NULL};
    coil_test_log_capture_start();
    s_client(r, &c, port, extra);
    wait_log(r, "unsupported protocol");
    wait_log(r, "accepts TLS 1.2 and newer");
    coil_test_log_capture_stop();
    CU_ASSERT(!(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0));
    CU_ASSERT(strstr(c.out, "hello\n") == NULL);
    CU_ASSERT(coil_test_log_contains("unsupported protocol"));
    CU_ASSERT(coil_test_log_contains("accepts TLS 1.2 and newer"));
    if (!coil_test_log_contains("unsupported protocol"))
        fprintf(stderr, "interop: log:\n%s\ns_client:\n%s\n", coil_test_log_text(),
                c.out);
    CU_ASSERT_EQUAL(sf.n > 0 ? sf.s[0].made : 0, 0);
    server_end(r, l, &sf);
}

static void test_server_alpn_and_resumption(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    sfactory sf;
    coil_tls_options o = {0};
    o.alpn = "h2,http/1.1";
    int port;
    coil_listener *l = coil_server(r, &sf, &o, 1, &port);
    char sess[512];
    CU_ASSERT_FATAL(coil_test_temp_file(sess, sizeof sess, "interop-sess") == 0);
    child c;
    const char *first[] = {"-alpn", "http/1.1", "-sess_out", sess, NULL};
    s_client(r, &c, port, first);
    CU_ASSERT(strstr(c.out, "ALPN protocol: http/1.1") != NULL);
    CU_ASSERT(strstr(c.out, "New, TLSv1.3") != NULL);
    CU_ASSERT_STRING_EQUAL(sf.s[0].info.tls_alpn, "http/1.1");
    const char *second[] = {"-sess_in", sess, NULL};
    s_client(r, &c, port, second);
    CU_ASSERT(strstr(c.out, "Reused, TLSv1.3") != NULL);
    CU_ASSERT_EQUAL(sf.s[1].info.tls_resumed, 1);
    if (!strstr(c.out, "Reused, TLSv1.3"))
        fprintf(stderr, "interop: s_client said:\n%s\n", c.out);
    unlink(sess);
    server_end(r, l, &sf);
}

static void test_server_starttls_smtp(void)
{
    /* s_client speaks SMTP in the clear up to STARTTLS, then TLS; the coil
     * protocol upgrades its own connection in place (coil_tls_start). */
    coil_reactor *r = coil_test_reactor(NULL);
    sfactory sf;
    coil_tls_options o = {0};
    int port;
    coil_listener *l = coil_server(r, &sf, &o, 0, &port);
    sf.smtp = 1;
    child c;
    const char *extra[] = {"-starttls", "smtp", NULL};
    s_client(r, &c, port, extra);
    CU_ASSERT_EQUAL(sf.n, 1);
    CU_ASSERT_EQUAL(sf.s[0].upgraded, 1);
    CU_ASSERT(strstr(c.out, "hello\n") != NULL);
    CU_ASSERT(strstr(c.out, "Verify return code: 0 (ok)") != NULL);
    CU_ASSERT(sf.s[0].info.tls_version != NULL);
    CU_ASSERT_STRING_EQUAL(sf.s[0].info.kind, "tls");
    if (!strstr(c.out, "hello\n"))
        fprintf(stderr, "interop: s_client said:\n%s\n", c.out);
    server_end(r, l, &sf);
}

static int add(void)
{
    if (!coil_test_cert("ca.pem"))
        return -1;
    signal(SIGPIPE, SIG_IGN);
    static const coil_test_case cases[] = {
        COIL_TEST(test_client_tls13),
        COIL_TEST(test_client_tls12),
        COIL_TEST(test_client_alpn_and_resumption),
        COIL_TEST(test_client_rejects_expired),
        COIL_TEST(test_client_rejects_wrong_host),
        COIL_TEST(test_client_refuses_tls11_server),
        COIL_TEST(test_server_tls13),
        COIL_TEST(test_server_tls12),
        COIL_TEST(test_server_client_cert),
        COIL_TEST(test_server_refuses_tls11_client),
        COIL_TEST(test_server_alpn_and_resumption),
        COIL_TEST(test_server_starttls_smtp),
        {NULL, NULL},
    };
    return coil_test_add_suite("tls interop with openssl s_server / s_client", cases);
}

int main(void)
{
    return coil_test_main(add);
}
