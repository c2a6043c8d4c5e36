/* The TLS layer: handshakes, verification, ALPN, SNI, client certificates,
 * resumption, close_notify and truncation, timeouts, coalescing, STARTTLS.
 * Deterministic cases run over the in-memory pair on the fake clock; the
 * rest over real loopback sockets. Certificates come from
 * tests/tls/make-certs.sh ($COIL_TEST_CERTS, set by ctest). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define cert coil_test_cert

/* ---- a protocol that records what happens ---- */

typedef struct peer {
    coil_protocol base;
    int made, lost, destroyed, echo, pause_on_made, read_lost, failed;
    int lost_code;
    char lost_msg[1024];
    char failed_msg[1024];
    coil_transport_info info;
    unsigned char *got;
    size_t got_len, got_cap;
    /* STARTTLS: upgrade when this line arrives, with this context */
    coil_tls_context *starttls_ctx;
    const char *starttls_name;
    int upgraded;
} peer;

static void peer_made(coil_protocol *p)
{
    peer *x = (peer *)p;
    x->made++;
    coil_transport_info_get(p->transport, &x->info);
    if (x->pause_on_made)
        coil_transport_pause_reading(p->transport);
}

static void peer_data(coil_protocol *p, const void *data, size_t len)
{
    peer *x = (peer *)p;
    if (x->got_len + len > x->got_cap) {
        x->got_cap = (x->got_len + len) * 2;
        x->got = realloc(x->got, x->got_cap);
    }
    memcpy(x->got + x->got_len, data, len);
    x->got_len += len;
    if (x->echo)
        coil_transport_write(p->transport, data, len);
    if (x->starttls_ctx && !x->upgraded && x->got_len >= 9 &&
        memcmp(x->got + x->got_len - 9, "STARTTLS\n", 9) == 0) {
        /* The server answers in the clear, then upgrades. */
        coil_transport_write(p->transport, "GO\n", 3);
        coil_transport *t = NULL;
        CU_ASSERT_EQUAL(coil_tls_start(p->transport, x->starttls_ctx, NULL, &t), 0);
        CU_ASSERT_PTR_EQUAL(t, p->transport);
        x->upgraded = 1;
        x->got_len = 0;
    }
}

static void peer_read_lost(coil_protocol *p)
{
    peer *x = (peer *)p;
    x->read_lost++;
    coil_transport_lose_connection(p->transport);
}

static void peer_lost(coil_protocol *p, const coil_failure *reason)
{
    peer *x = (peer *)p;
    x->lost++;
    x->lost_code = coil_failure_code(reason);
    coil_failure_format(reason, x->lost_msg, sizeof x->lost_msg);
}

static void peer_failed(coil_protocol *p, const coil_failure *reason)
{
    peer *x = (peer *)p;
    x->failed++;
    coil_failure_format(reason, x->failed_msg, sizeof x->failed_msg);
}

static void peer_destroy(coil_protocol *p)
{
    peer *x = (peer *)p;
    x->destroyed++;
}

static const coil_protocol_ops peer_ops = {
    .connection_made = peer_made,
    .data_received = peer_data,
    .read_connection_lost = peer_read_lost,
    .connection_lost = peer_lost,
    .destroy = peer_destroy,
};

static const coil_protocol_ops failing_peer_ops = {
    .connection_made = peer_made,
    .data_received = peer_data,
    .read_connection_lost = peer_read_lost,
    .connection_lost = peer_lost,
    .destroy = peer_destroy,
    .connection_failed = peer_failed,
};

static void peer_init(peer *x)
{
    memset(x, 0, sizeof *x);
    x->base.ops = &peer_ops;
}

static void peer_done(peer *x)
{
    free(x->got);
    x->got = NULL;
}

/* ---- contexts ---- */

/* A context for `role` from `o`, with the test certificates filled in
 * where `o` names none; asserts it was made. */
static coil_tls_context *ctx_with(int role, coil_tls_options *o)
{
    if (role == COIL_TLS_SERVER && !o->cert_file && !o->cert_pem) {
        o->cert_file = cert("server-chain.pem");
        o->key_file = cert("server.key");
    }
    if (role == COIL_TLS_CLIENT && !o->ca_file && !o->insecure_no_verify)
        o->ca_file = cert("ca.pem");
    coil_tls_context *c = NULL;
    coil_failure *err = NULL;
    int rc = coil_tls_context_new(role, o, &c, &err);
    if (rc != 0)
        coil_failure_print(err, stderr);
    coil_failure_free(err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return c;
}

static coil_tls_context *server_ctx_with(coil_tls_options *o)
{
    return ctx_with(COIL_TLS_SERVER, o);
}

static coil_tls_context *client_ctx_with(coil_tls_options *o)
{
    return ctx_with(COIL_TLS_CLIENT, o);
}

static coil_tls_context *server_ctx(void)
{
    coil_tls_options o = {0};
    return server_ctx_with(&o);
}

static coil_tls_context *client_ctx(void)
{
    coil_tls_options o = {0};
    return client_ctx_with(&o);
}

/* ---- memory pairs on the fake clock ---- */

static void pump(coil_reactor *r)
{
    for (int i = 0; i < 100; i++)
        coil_reactor_advance(r, 0);
}

static void tls_pair(coil_reactor *r, coil_tls_context *cc, const char *name, peer *c,
                     coil_tls_context *sc, peer *s, coil_transport **ct,
                     coil_transport **st)
{
    coil_protocol *cw = coil_tls_wrap(cc, name, &c->base);
    coil_protocol *sw = coil_tls_wrap(sc, NULL, &s->base);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cw);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sw);
    CU_ASSERT_EQUAL_FATAL(coil_memory_pair(r, cw, sw, 0, ct, st), 0);
}

static void test_handshake_and_info(void)
{
    coil_reactor *r = coil_test_fake_start();
    coil_tls_context *sc = server_ctx(), *cc = client_ctx();
    peer c, s;
    peer_init(&c);
    peer_init(&s);
    s.echo = 1;
    tls_pair(r, cc, "localhost", &c, sc, &s, NULL, NULL);
    pump(r);
    CU_ASSERT_EQUAL(c.made, 1);
    CU_ASSERT_EQUAL(s.made, 1);
    /* connection_made runs after the handshake: info is complete there. */
    CU_ASSERT_STRING_EQUAL(c.info.kind, "tls");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.info.tls_version);
    CU_ASSERT_STRING_EQUAL(c.info.tls_version, "TLSv1.3");
    CU_ASSERT_PTR_NOT_NULL(c.info.tls_cipher);
    CU_ASSERT(strstr(c.info.tls_peer_subject, "CN=localhost") != NULL);
    CU_ASSERT_EQUAL(c.info.tls_peer_verified, 1);
    CU_ASSERT_EQUAL(c.info.tls_resumed, 0);
    CU_ASSERT_STRING_EQUAL(s.info.tls_server_name, "localhost");
    CU_ASSERT_STRING_EQUAL(s.info.tls_peer_subject, ""); /* no client cert */
    CU_ASSERT_EQUAL(s.info.tls_peer_verified, 0);
    coil_transport *t = c.base.transport;
    CU_ASSERT_PTR_NOT_NULL(coil_tls_lower(t));
    CU_ASSERT_EQUAL(coil_transport_start_tls(t, cc, 0), COIL_ENOTSUP);
    coil_transport_write(t, "hello", 5);
    pump(r);
    CU_ASSERT_EQUAL(c.got_len, 5);
    CU_ASSERT(c.got && memcmp(c.got, "hello", 5) == 0);
    /* A clean close: close_notify both ways, clean on both sides. */
    coil_transport_lose_connection(t);
    pump(r);
    CU_ASSERT_EQUAL(c.lost, 1);
    CU_ASSERT_EQUAL(c.lost_code, COIL_ECLOSED);
    CU_ASSERT_EQUAL(s.read_lost, 1);
    CU_ASSERT_EQUAL(s.lost, 1);
    CU_ASSERT_EQUAL(s.lost_code, COIL_ECLOSED);
    CU_ASSERT_EQUAL(c.destroyed, 1);
    CU_ASSERT_EQUAL(s.destroyed, 1);
    peer_done(&c);
    peer_done(&s);
    coil_tls_context_free(sc);
    coil_tls_context_free(cc);
    coil_test_fake_end(r);
}

static void test_tls12_and_versions(void)
{
    coil_reactor *r = coil_test_fake_start();
    coil_tls_options so = {0}, co = {0};
    so.max_version = COIL_TLS_1_2;
    coil_tls_context *sc = server_ctx_with(&so), *cc = client_ctx_with(&co);
    peer c, s;
    peer_init(&c);
    peer_init(&s);
    tls_pair(r, cc, "localhost", &c, sc, &s, NULL, NULL);
    pump(r);
    CU_ASSERT_EQUAL(c.made, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.info.tls_version);
    CU_ASSERT_STRING_EQUAL(c.info.tls_version, "TLSv1.2");
    coil_transport_lose_connection(c.base.transport);
    pump(r);
    CU_ASSERT_EQUAL(c.lost_code, COIL_ECLOSED);
    CU_ASSERT_EQUAL(s.lost_code, COIL_ECLOSED);
    coil_tls_context_free(sc);
    coil_tls_context_free(cc);

    /* Below TLS 1.2 only with the option that says insecure. */
    coil_tls_options old = {0};
    old.min_version = COIL_TLS_1_0;
    old.insecure_no_verify = 1;
    coil_tls_context *x = NULL;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL(coil_tls_context_new(COIL_TLS_CLIENT, &old, &x, &err), COIL_EINVAL);
    CU_ASSERT_PTR_NULL(x);
    CU_ASSERT(err && strstr(coil_failure_message(err), "insecure_allow_old_versions"));
    coil_failure_free(err);
    old.insecure_allow_old_versions = 1;
    coil_test_log_capture_start();
    CU_ASSERT_EQUAL(coil_tls_context_new(COIL_TLS_CLIENT, &old, &x, NULL), 0);
    coil_test_log_capture_stop();
    coil_tls_context_free(x);
    peer_done(&c);
    peer_done(&s);
    coil_test_fake_end(r);
}

static void test_context_errors(void)
{
    coil_tls_options o = {0};
    coil_tls_context *c = NULL;
    coil_failure *err = NULL;
    /* A server without a certificate. */
    CU_ASSERT_EQUAL(coil_tls_context_new(COIL_TLS_SERVER, &o, &c, &err), COIL_EINVAL);
    CU_ASSERT(err && strstr(coil_failure_message(err), "needs a certificate"));
    coil_failure_free(err);
    /* A missing file names the file and the system's reason. */
    o.cert_file = "/nonexistent/server.pem";
    err = NULL;
    CU_ASSERT_EQUAL(coil_tls_context_new(COIL_TLS_SERVER, &o, &c, &err), COIL_EINVAL);
    CU_ASSERT(err && strstr(coil_failure_message(err), "/nonexistent/server.pem"));
    CU_ASSERT(err && strstr(coil_failure_message(err), "No such file"));
    coil_failure_free(err);
    /* A key that is not the certificate's. */
    o.cert_file = cert("server.pem");
    o.key_file = cert("client.key");
    err = NULL;
    CU_ASSERT_EQUAL(coil_tls_context_new(COIL_TLS_SERVER, &o, &c, &err), COIL_EINVAL);
    CU_ASSERT(err && strstr(coil_failure_message(err), "does not match"));
    coil_failure_free(err);
    /* An encrypted key: the wrong passphrase fails, the right one loads. */
    o.key_file = cert("server-enc.key");
    o.key_passphrase = "wrong";
    err = NULL;
    CU_ASSERT_EQUAL(coil_tls_context_new(COIL_TLS_SERVER, &o, &c, &err), COIL_EINVAL);
    CU_ASSERT(err && strstr(coil_failure_message(err), "passphrase"));
    coil_failure_free(err);
    o.key_passphrase = "coil-test-pass";
    CU_ASSERT_EQUAL(coil_tls_context_new(COIL_TLS_SERVER, &o, &c, NULL), 0);
    coil_tls_context_free(c);
    /* Bad ALPN and cipher lists. */
    coil_tls_options a = {0};
    a.insecure_no_verify = 1;
    a.alpn = "h2,,x";
    err = NULL;
    coil_test_log_capture_start();
    CU_ASSERT_EQUAL(coil_tls_context_new(COIL_TLS_CLIENT, &a, &c, &err), COIL_EINVAL);
    CU_ASSERT(err && strstr(coil_failure_message(err), "ALPN"));
    coil_failure_free(err);
    a.alpn = NULL;
    a.ciphersuites = "NOT_A_SUITE";
    err = NULL;
    CU_ASSERT_EQUAL(coil_tls_context_new(COIL_TLS_CLIENT, &a, &c, &err), COIL_EINVAL);
    CU_ASSERT(err && strstr(coil_failure_message(err), "NOT_A_SUITE"));
    coil_failure_free(err);
    coil_test_log_capture_stop();
}

static void test_pem_in_memory(void)
{
    /* The identity may come as PEM text. */
    char *pem[2] = {NULL, NULL};
    const char *files[2] = {cert("server-chain.pem"), cert("server.key")};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(files[i], "r");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        pem[i] = calloc(1, 65536);
        CU_ASSERT(fread(pem[i], 1, 65535, f) > 0);
        fclose(f);
    }
    coil_tls_options so = {0};
    so.cert_pem = pem[0];
    so.key_pem = pem[1];
    coil_reactor *r = coil_test_fake_start();
    coil_tls_context *sc = server_ctx_with(&so), *cc = client_ctx();
    peer c, s;
    peer_init(&c);
    peer_init(&s);
    tls_pair(r, cc, "localhost", &c, sc, &s, NULL, NULL);
    pump(r);
    CU_ASSERT_EQUAL(c.made, 1);
    CU_ASSERT(strstr(c.info.tls_peer_subject, "CN=localhost") != NULL);
    coil_transport_abort_connection(c.base.transport);
    pump(r);
    CU_ASSERT_EQUAL(c.lost_code, COIL_EABORTED);
    CU_ASSERT_EQUAL(s.lost_code, COIL_ECONNLOST);
    coil_tls_context_free(sc);
    coil_tls_context_free(cc);
    free(pem[0]);
    free(pem[1]);
    coil_test_fake_end(r);
}

static void test_alpn(void)
{
    coil_reactor *r = coil_test_fake_start();
    coil_tls_options so = {0}, co = {0}, co2 = {0};
    so.alpn = "h2,http/1.1";
    co.alpn = "http/1.1,h2";
    co2.alpn = "spdy/3";
    coil_tls_context *sc = server_ctx_with(&so), *cc = client_ctx_with(&co),
                     *cc2 = client_ctx_with(&co2);
    peer c, s, c2, s2;
    peer_init(&c);
    peer_init(&s);
    peer_init(&c2);
    peer_init(&s2);
    tls_pair(r, cc, "localhost", &c, sc, &s, NULL, NULL);
    tls_pair(r, cc2, "localhost", &c2, sc, &s2, NULL, NULL);
    pump(r);
    /* The server's preference wins among what the client offers. */
    CU_ASSERT_STRING_EQUAL(c.info.tls_alpn, "h2");
    CU_ASSERT_STRING_EQUAL(s.info.tls_alpn, "h2");
    /* No overlap: the handshake goes on without ALPN. */
    CU_ASSERT_EQUAL(c2.made, 1);
    CU_ASSERT_STRING_EQUAL(c2.info.tls_alpn, "");
    coil_transport_lose_connection(c.base.transport);
    coil_transport_lose_connection(c2.base.transport);
    pump(r);
    coil_tls_context_free(sc);
    coil_tls_context_free(cc);
    coil_tls_context_free(cc2);
    coil_test_fake_end(r);
}

static void test_sni_certificates(void)
{
    coil_reactor *r = coil_test_fake_start();
    coil_tls_sni_cert names[] = {{"other.test", cert("other.pem"), cert("other.key")}};
    coil_tls_options so = {0};
    so.sni_certs = names;
    so.n_sni_certs = 1;
    coil_tls_context *sc = server_ctx_with(&so), *cc = client_ctx();
    peer c, s, c2, s2;
    peer_init(&c);
    peer_init(&s);
    peer_init(&c2);
    peer_init(&s2);
    tls_pair(r, cc, "other.test", &c, sc, &s, NULL, NULL);
    tls_pair(r, cc, "localhost", &c2, sc, &s2, NULL, NULL);
    pump(r);
    CU_ASSERT_EQUAL(c.made, 1);
    CU_ASSERT(strstr(c.info.tls_peer_subject, "CN=other.test") != NULL);
    CU_ASSERT_STRING_EQUAL(s.info.tls_server_name, "other.test");
    CU_ASSERT_EQUAL(c2.made, 1);
    CU_ASSERT(strstr(c2.info.tls_peer_subject, "CN=localhost") != NULL);
    coil_transport_lose_connection(c.base.transport);
    coil_transport_lose_connection(c2.base.transport);
    pump(r);
    coil_tls_context_free(sc);
    coil_tls_context_free(cc);
    coil_test_fake_end(r);
}

static void test_resumption(void)
{
    coil_reactor *r = coil_test_fake_start();
    coil_tls_context *sc = server_ctx(), *cc = client_ctx();
    for (int round = 0; round < 2; round++) {
        peer c, s;
        peer_init(&c);
        peer_init(&s);
        s.echo = 1;
        tls_pair(r, cc, "localhost", &c, sc, &s, NULL, NULL);
        pump(r);
        CU_ASSERT_EQUAL(c.made, 1);
        CU_ASSERT_EQUAL(c.info.tls_resumed, round);
        CU_ASSERT_EQUAL(s.info.tls_resumed, round);
        /* Tickets arrive after the handshake; reading collects them. */
        coil_transport_write(c.base.transport, "x", 1);
        pump(r);
        CU_ASSERT_EQUAL(coil_tls_context_cached_sessions(cc), 1);
        coil_transport_lose_connection(c.base.transport);
        pump(r);
        CU_ASSERT_EQUAL(c.lost_code, COIL_ECLOSED);
        peer_done(&c);
        peer_done(&s);
    }
    coil_tls_context_free(sc);
    coil_tls_context_free(cc);
    coil_test_fake_end(r);
}

static void test_wrong_host_over_memory(void)
{
    /* Without an owner, a failed handshake is logged, with the reason, the
     * certificate and the host that was expected; the protocol above,
     * never connected, is destroyed without connection_lost. */
    coil_reactor *r = coil_test_fake_start();
    coil_tls_context *sc = server_ctx(), *cc = client_ctx();
    peer c, s;
    peer_init(&c);
    peer_init(&s);
    coil_test_log_capture_start();
    tls_pair(r, cc, "other.test", &c, sc, &s, NULL, NULL);
    pump(r);
    coil_test_log_capture_stop();
    CU_ASSERT_EQUAL(c.made, 0);
    CU_ASSERT_EQUAL(c.lost, 0);
    CU_ASSERT_EQUAL(c.destroyed, 1);
    CU_ASSERT_EQUAL(s.made, 0);
    CU_ASSERT_EQUAL(s.destroyed, 1);
    CU_ASSERT(coil_test_log_contains("hostname mismatch"));
    CU_ASSERT(coil_test_log_contains("expected host other.test"));
    CU_ASSERT(coil_test_log_contains("CN=localhost"));
    if (!coil_test_log_contains("expected host other.test"))
        fprintf(stderr, "log: %s\n", coil_test_log_text());
    coil_tls_context_free(sc);
    coil_tls_context_free(cc);
    coil_test_fake_end(r);
}

static void test_wrap_reports_failure_to_protocol(void)
{
    /* A protocol with connection_failed hears why its handshake failed
     * under coil_tls_wrap (no connector, no factory); nothing is logged
     * for it, and it is destroyed without connection_made/lost. */
    coil_reactor *r = coil_test_fake_start();
    coil_tls_context *sc = server_ctx(), *cc = client_ctx();
    peer c, s;
    peer_init(&c);
    peer_init(&s);
    c.base.ops = &failing_peer_ops;
    s.base.ops = &failing_peer_ops;
    tls_pair(r, cc, "other.test", &c, sc, &s, NULL, NULL);
    pump(r);
    CU_ASSERT_EQUAL(c.made, 0);
    CU_ASSERT_EQUAL(c.lost, 0);
    CU_ASSERT_EQUAL(c.failed, 1);
    CU_ASSERT_EQUAL(c.destroyed, 1);
    CU_ASSERT(strstr(c.failed_msg, "hostname mismatch") != NULL);
    CU_ASSERT(strstr(c.failed_msg, "expected host other.test") != NULL);
    CU_ASSERT_EQUAL(s.made, 0);
    CU_ASSERT_EQUAL(s.failed, 1); /* the server hears the client's alert */
    CU_ASSERT(strstr(s.failed_msg, "TLS handshake with") != NULL);
    CU_ASSERT_EQUAL(s.destroyed, 1);
    coil_tls_context_free(sc);
    coil_tls_context_free(cc);
    coil_test_fake_end(r);
}

static void test_failed_handshake_warnings_are_limited(void)
{
    /* 20 failed handshakes against one server context: a few warnings,
     * then one that counts what was suppressed (each side's context has
     * its own limit). */
    coil_reactor *r = coil_test_fake_start();
    coil_tls_context *sc = server_ctx(), *cc = client_ctx();
    peer c[21], s[21];
    coil_test_log_capture_start();
    for (int i = 0; i < 20; i++) {
        peer_init(&c[i]);
        peer_init(&s[i]);
        tls_pair(r, cc, "other.test", &c[i], sc, &s[i], NULL, NULL);
    }
    pump(r);
    size_t during = coil_test_log_count(COIL_LOG_WARN);
    CU_ASSERT(during >= 2 && during <= 10); /* 40 without the limit */
    CU_ASSERT(!coil_test_log_contains("suppressed"));
    coil_reactor_advance(r, 11);
    peer_init(&c[20]);
    peer_init(&s[20]);
    tls_pair(r, cc, "other.test", &c[20], sc, &s[20], NULL, NULL);
    pump(r);
    coil_test_log_capture_stop();
    CU_ASSERT(coil_test_log_contains("(suppressed 15 similar messages)"));
    if (!coil_test_log_contains("(suppressed 15 similar messages)"))
        fprintf(stderr, "log: %s\n", coil_test_log_text());
    for (int i = 0; i < 21; i++)
        CU_ASSERT_EQUAL(s[i].destroyed, 1);
    coil_tls_context_free(sc);
    coil_tls_context_free(cc);
    coil_test_fake_end(r);
}

static void test_handshake_timeout(void)
{
    /* STARTTLS on a single-ended transport whose far end never answers:
     * after 30 s the protocol hears connection_lost with a message. */
    coil_reactor *r = coil_test_fake_start();
    coil_tls_context *cc = client_ctx();
    peer c;
    peer_init(&c);
    coil_transport *t = coil_memory_transport_new(r, &c.base);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    coil_transport_write(t, "STARTTLS\n", 9);
    coil_transport *tls = NULL;
    CU_ASSERT_EQUAL(coil_tls_start(t, cc, "localhost", &tls), 0);
    CU_ASSERT_PTR_EQUAL(c.base.transport, tls);
    /* Clear text first, then the ClientHello. */
    size_t n = 0;
    const unsigned char *w = coil_memory_transport_written(t, &n);
    CU_ASSERT(n > 9 + 5);
    CU_ASSERT(w && memcmp(w, "STARTTLS\n", 9) == 0);
    CU_ASSERT(w && w[9] == 0x16);          /* a handshake record */
    coil_transport_write(tls, "later", 5); /* waits for the handshake */
    coil_reactor_advance(r, 29);
    CU_ASSERT_EQUAL(c.lost, 0);
    coil_reactor_advance(r, 1.5);
    CU_ASSERT_EQUAL(c.lost, 1);
    CU_ASSERT(strstr(c.lost_msg, "did not finish within 30 s") != NULL);
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t) & COIL_MEMORY_CLOSED,
                    COIL_MEMORY_CLOSED);
    coil_memory_transport_free(t);
    coil_tls_context_free(cc);
    coil_test_fake_end(r);
}

/* Two single-ended memory transports joined by hand, so the test sees every
 * byte on the wire. */
typedef struct wire {
    coil_reactor *r;
    coil_tls_context *sc, *cc;
    peer c, s;
    coil_transport *a, *b;
    size_t a_to_b;
    int a_eof, b_eof; /* a write side's shutdown was passed on as EOF */
} wire;

static void wire_pump(wire *w)
{
    for (int i = 0; i < 50; i++) {
        coil_reactor_advance(w->r, 0);
        size_t n;
        const void *d = coil_memory_transport_written(w->a, &n);
        if (n) {
            w->a_to_b += n;
            void *copy = malloc(n);
            memcpy(copy, d, n);
            coil_memory_transport_clear(w->a);
            coil_memory_transport_feed(w->b, copy, n);
            free(copy);
        }
        d = coil_memory_transport_written(w->b, &n);
        if (n) {
            void *copy = malloc(n);
            memcpy(copy, d, n);
            coil_memory_transport_clear(w->b);
            coil_memory_transport_feed(w->a, copy, n);
            free(copy);
        }
        /* A shut write side reaches the far end as EOF (TCP's FIN). */
        if (!w->a_eof && (coil_memory_transport_flags(w->a) & COIL_MEMORY_WRITE_SHUT)) {
            w->a_eof = 1;
            coil_memory_transport_feed_eof(w->b);
        }
        if (!w->b_eof && (coil_memory_transport_flags(w->b) & COIL_MEMORY_WRITE_SHUT)) {
            w->b_eof = 1;
            coil_memory_transport_feed_eof(w->a);
        }
    }
}

/* A client (options `co`, may be NULL) and a server joined by the wire, on
 * the fake clock, handshake done. */
static void wire_open(wire *w, coil_tls_options *co)
{
    coil_tls_options none = {0};
    memset(w, 0, sizeof *w);
    w->r = coil_test_fake_start();
    w->sc = server_ctx();
    w->cc = client_ctx_with(co ? co : &none);
    peer_init(&w->c);
    peer_init(&w->s);
    w->a = coil_memory_transport_new(w->r, coil_tls_wrap(w->cc, "localhost", &w->c.base));
    w->b = coil_memory_transport_new(w->r, coil_tls_wrap(w->sc, NULL, &w->s.base));
    wire_pump(w);
    CU_ASSERT_EQUAL_FATAL(w->c.made, 1);
}

static void wire_close(wire *w)
{
    coil_memory_transport_free(w->a);
    coil_memory_transport_free(w->b);
    peer_done(&w->c);
    peer_done(&w->s);
    coil_tls_context_free(w->sc);
    coil_tls_context_free(w->cc);
    coil_test_fake_end(w->r);
}

static void test_small_writes_coalesce(void)
{
    wire w;
    wire_open(&w, NULL);
    size_t before = w.a_to_b;
    /* 1,000 writes of 10 bytes in one pass: one record, not 1,000 (a
     * TLS 1.3 record adds 22 bytes). */
    for (int i = 0; i < 1000; i++)
        coil_transport_write(w.c.base.transport, "0123456789", 10);
    wire_pump(&w);
    CU_ASSERT_EQUAL(w.s.got_len, 10000);
    size_t wire_bytes = w.a_to_b - before;
    CU_ASSERT(wire_bytes < 10000 + 2 * 22);
    if (wire_bytes >= 10000 + 2 * 22)
        fprintf(stderr, "coalescing: %zu bytes on the wire for 10,000\n", wire_bytes);
    coil_transport_lose_connection(w.c.base.transport);
    wire_pump(&w);
    CU_ASSERT_EQUAL(w.c.lost_code, COIL_ECLOSED);
    wire_close(&w);
}

static void test_close_notify_and_eof_close_at_once(void)
{
    /* The peer's close_notify and its EOF arrive together: the layer ends
     * the connection on that pass (clean), without another round trip. */
    wire w;
    wire_open(&w, NULL);
    coil_transport_lose_connection(w.c.base.transport);
    coil_reactor_advance(w.r, 0);
    size_t n = 0;
    const void *d = coil_memory_transport_written(w.a, &n);
    CU_ASSERT(n > 0); /* close_notify */
    CU_ASSERT(coil_memory_transport_flags(w.a) & COIL_MEMORY_WRITE_SHUT);
    void *copy = malloc(n);
    memcpy(copy, d, n);
    coil_memory_transport_clear(w.a);
    coil_memory_transport_feed(w.b, copy, n);
    coil_memory_transport_feed_eof(w.b);
    free(copy);
    coil_reactor_advance(w.r, 0);
    coil_reactor_advance(w.r, 0);
    CU_ASSERT_EQUAL(w.s.lost, 1);
    CU_ASSERT_EQUAL(w.s.lost_code, COIL_ECLOSED);
    CU_ASSERT(coil_memory_transport_flags(w.b) & COIL_MEMORY_CLOSED);
    w.a_eof = 1;
    wire_pump(&w);
    wire_close(&w);
}

static void test_truncation_is_lost(void)
{
    /* The peer's transport closes without close_notify: the data may be
     * cut off, so the close is lost, not clean. */
    wire w;
    wire_open(&w, NULL);
    coil_memory_transport_feed_eof(w.a); /* TCP FIN, no close_notify */
    wire_pump(&w);
    CU_ASSERT_EQUAL(w.c.lost, 1);
    CU_ASSERT_EQUAL(w.c.lost_code, COIL_ECONNLOST);
    CU_ASSERT(strstr(w.c.lost_msg, "without close_notify") != NULL);
    CU_ASSERT_EQUAL(w.c.read_lost, 0);
    wire_close(&w);
}

static void test_close_is_bounded(void)
{
    /* lose_connection with a peer that never reads: the close waits while
     * the peer makes progress, and once nothing has moved for
     * close_timeout the transport below is aborted and the protocol hears
     * "lost" (bytes were undelivered), never "clean". */
    coil_tls_options co = {0};
    co.close_timeout = 2;
    wire w;
    wire_open(&w, &co);
    coil_transport_write(w.c.base.transport, "bye", 3);
    coil_transport_lose_connection(w.c.base.transport);
    coil_reactor_advance(w.r, 0);
    coil_reactor_advance(w.r, 0);
    /* The far end has taken nothing: no verdict yet. */
    CU_ASSERT_EQUAL(w.c.lost, 0);
    CU_ASSERT_EQUAL(coil_memory_transport_flags(w.a) & COIL_MEMORY_CLOSED, 0);
    coil_test_log_capture_start();
    coil_reactor_advance(w.r, 1.5);
    CU_ASSERT_EQUAL(w.c.lost, 0);
    /* What the peer sends is no progress: it must read. */
    coil_memory_transport_feed(w.a, "chatter", 7);
    coil_reactor_advance(w.r, 1.0);
    coil_reactor_advance(w.r, 0);
    coil_test_log_capture_stop();
    CU_ASSERT_EQUAL(coil_memory_transport_flags(w.a) & COIL_MEMORY_ABORTED,
                    COIL_MEMORY_ABORTED);
    CU_ASSERT_EQUAL(w.c.lost, 1);
    CU_ASSERT_EQUAL(w.c.lost_code, COIL_ECONNLOST);
    CU_ASSERT(strstr(w.c.lost_msg, "close timeout") != NULL);
    wire_close(&w);
}

/* Pass what `a` wrote on to `b`, as the wire would. */
static void wire_pass_a(wire *w)
{
    size_t n = 0;
    const void *d = coil_memory_transport_written(w->a, &n);
    if (!n)
        return;
    void *copy = malloc(n);
    memcpy(copy, d, n);
    coil_memory_transport_clear(w->a);
    coil_memory_transport_feed(w->b, copy, n);
    free(copy);
}

static void test_slow_close_is_waited_for(void)
{
    /* A peer that takes 10 KB a second keeps a close with a 2.5 s timeout
     * alive for as long as it goes on (8 s here); then the close is clean
     * on both sides and every byte got there. */
    coil_tls_options co = {0};
    co.close_timeout = 2.5;
    wire w;
    wire_open(&w, &co);
    coil_memory_transport_set_window(w.a, 0);
    static unsigned char big[200000];
    memset(big, 'x', sizeof big);
    coil_transport_write(w.c.base.transport, big, sizeof big);
    coil_transport_lose_connection(w.c.base.transport);
    for (int i = 0; i < 8; i++) {
        coil_reactor_advance(w.r, 1.0);
        wire_pass_a(&w);
        coil_memory_transport_set_window(w.a, 10000);
        CU_ASSERT_EQUAL(w.c.lost, 0);
    }
    CU_ASSERT(w.s.got_len < sizeof big);
    coil_memory_transport_set_window(w.a, (size_t)1 << 30);
    wire_pump(&w);
    CU_ASSERT_EQUAL(w.s.got_len, sizeof big);
    CU_ASSERT_EQUAL(w.c.lost, 1);
    CU_ASSERT_EQUAL(w.c.lost_code, COIL_ECLOSED);
    CU_ASSERT_EQUAL(w.s.lost_code, COIL_ECLOSED);
    wire_close(&w);
}

static void test_pause_keeps_data(void)
{
    /* Paused above: records wait in the layer; resume delivers them at
     * once, though no new bytes arrive below (no stall). */
    coil_reactor *r = coil_test_fake_start();
    coil_tls_context *sc = server_ctx(), *cc = client_ctx();
    peer c, s;
    peer_init(&c);
    peer_init(&s);
    s.pause_on_made = 1;
    coil_transport *ct = NULL;
    tls_pair(r, cc, "localhost", &c, sc, &s, &ct, NULL);
    pump(r);
    CU_ASSERT_EQUAL_FATAL(s.made, 1);
    unsigned char buf[50000];
    memset(buf, 'z', sizeof buf);
    coil_transport_write(c.base.transport, buf, sizeof buf);
    pump(r);
    CU_ASSERT_EQUAL(s.got_len, 0);
    coil_transport_info info;
    coil_transport_info_get(s.base.transport, &info);
    CU_ASSERT_EQUAL(info.reading, 0);
    coil_transport_resume_reading(s.base.transport);
    pump(r);
    CU_ASSERT_EQUAL(s.got_len, sizeof buf);
    coil_transport_lose_connection(c.base.transport);
    pump(r);
    CU_ASSERT_EQUAL(s.lost_code, COIL_ECLOSED);
    peer_done(&c);
    peer_done(&s);
    coil_tls_context_free(sc);
    coil_tls_context_free(cc);
    coil_test_fake_end(r);
}

static void test_keylog(void)
{
    char path[512];
    CU_ASSERT_FATAL(coil_test_temp_file(path, sizeof path, "keylog") == 0);
    coil_reactor *r = coil_test_fake_start();
    coil_tls_options co = {0};
    co.keylog_file = path;
    coil_test_log_capture_start();
    coil_tls_context *sc = server_ctx(), *cc = client_ctx_with(&co);
    coil_test_log_capture_stop();
    CU_ASSERT(coil_test_log_contains("can decrypt"));
    peer c, s;
    peer_init(&c);
    peer_init(&s);
    tls_pair(r, cc, "localhost", &c, sc, &s, NULL, NULL);
    pump(r);
    coil_transport_lose_connection(c.base.transport);
    pump(r);
    FILE *f = fopen(path, "r");
    char text[4096] = "";
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT(fread(text, 1, sizeof text - 1, f) > 0);
    fclose(f);
    CU_ASSERT(strstr(text, "CLIENT_HANDSHAKE_TRAFFIC_SECRET ") != NULL);
    CU_ASSERT(strstr(text, "CLIENT_TRAFFIC_SECRET_0 ") != NULL);
    unlink(path);
    coil_tls_context_free(sc);
    coil_tls_context_free(cc);
    coil_test_fake_end(r);
}

/* ---- real sockets ---- */

typedef struct cfactory {
    coil_factory base;
    peer *client;
    int connected, failed, lost;
    char failure[1024];
    int lost_code;
} cfactory;

static coil_protocol *cf_build(coil_factory *f, const coil_address *a)
{
    return &((cfactory *)f)->client->base;
}

static void cf_connected(coil_factory *f, coil_connector *k, coil_transport *t)
{
    cfactory *cf = (cfactory *)f;
    cf->connected++;
    CU_ASSERT_STRING_EQUAL(t->ops->kind, "tls");
    CU_ASSERT_PTR_EQUAL(coil_connector_transport(k), t);
}

static void cf_failed(coil_factory *f, coil_connector *k, const coil_failure *reason)
{
    cfactory *cf = (cfactory *)f;
    cf->failed++;
    coil_failure_format(reason, cf->failure, sizeof cf->failure);
}

static void cf_lost(coil_factory *f, coil_connector *k, const coil_failure *reason)
{
    cfactory *cf = (cfactory *)f;
    cf->lost++;
    cf->lost_code = coil_failure_code(reason);
    CU_ASSERT_EQUAL(cf->client->lost, 1); /* after the protocol */
}

static const coil_factory_ops cf_ops = {
    .build_protocol = cf_build,
    .connected = cf_connected,
    .connection_failed = cf_failed,
    .connection_lost = cf_lost,
};

typedef struct sfactory {
    coil_factory base;
    peer servers[4];
    int n;
    coil_tls_context *starttls_ctx;
} sfactory;

static coil_protocol *sf_build(coil_factory *f, const coil_address *a)
{
    sfactory *sf = (sfactory *)f;
    if (sf->n == 4)
        return NULL;
    peer *p = &sf->servers[sf->n++];
    peer_init(p);
    p->echo = !sf->starttls_ctx;
    p->starttls_ctx = sf->starttls_ctx;
    return &p->base;
}

static const coil_factory_ops sf_ops = {.build_protocol = sf_build};

/* Run the loop until every connection has ended and is freed (the TLS
 * close waits for the peer's, bounded): an event, never a fixed number of
 * turns; 10 s at most. */
static void settle_transports(coil_reactor *r)
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

static int run_until(coil_reactor *r, int *flag, int want)
{
    for (int i = 0; i < 1000 && *flag < want; i++)
        coil_reactor_iterate(r, 0.01);
    return *flag >= want;
}

/* Connect a client with `cc` to a TLS listener with `sc`; returns the
 * factory's outcome in cf. */
static void connect_once(coil_tls_context *sc, coil_tls_context *cc, const char *name,
                         cfactory *cf, peer *client, sfactory *sf)
{
    coil_reactor *r = coil_test_reactor(NULL);
    sf->base.ops = &sf_ops;
    coil_listener *l = NULL;
    coil_tcp_listen_options lo = {0};
    lo.interface = "127.0.0.1";
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tls_listen_tcp(r, &lo, sc, &sf->base, &l, &err), 0);
    coil_address a;
    CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);
    cf->base.ops = &cf_ops;
    cf->client = client;
    coil_tcp_connect_options co = {0};
    co.host = "127.0.0.1";
    co.port = coil_address_port(&a);
    coil_connector *k = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tls_connect_tcp(r, &co, cc, name, &cf->base, &k), 0);
    int done = 0;
    for (int i = 0; i < 500 && !cf->connected && !cf->failed; i++)
        coil_reactor_iterate(r, 0.01);
    if (cf->connected && client->base.transport) {
        coil_transport_write(client->base.transport, "ping", 4);
        for (int i = 0; i < 500 && client->got_len < 4 && client->base.transport; i++)
            coil_reactor_iterate(r, 0.01);
        if (client->base.transport)
            coil_transport_lose_connection(client->base.transport);
        run_until(r, &cf->lost, 1);
    }
    (void)done;
    settle_transports(r);
    coil_connector_free(k);
    coil_listener_close(l);
    coil_reactor_advance(r, 0);
    coil_reactor_free(r);
}

static void test_tcp_verified(void)
{
    coil_tls_context *sc = server_ctx(), *cc = client_ctx();
    cfactory cf = {0};
    sfactory sf = {0};
    peer client;
    peer_init(&client);
    connect_once(sc, cc, "localhost", &cf, &client, &sf);
    CU_ASSERT_EQUAL(cf.connected, 1);
    CU_ASSERT_EQUAL(cf.failed, 0);
    CU_ASSERT_EQUAL(client.got_len, 4);
    CU_ASSERT_EQUAL(cf.lost, 1);
    CU_ASSERT_EQUAL(cf.lost_code, COIL_ECLOSED);
    CU_ASSERT_EQUAL(client.destroyed, 1);
    CU_ASSERT_EQUAL(sf.servers[0].lost_code, COIL_ECLOSED);
    peer_done(&client);
    peer_done(&sf.servers[0]);
    coil_tls_context_free(sc);
    coil_tls_context_free(cc);
}

static void expect_failure(coil_tls_options *so, coil_tls_options *co, const char *name,
                           const char *const *needles)
{
    coil_tls_context *sc = server_ctx_with(so), *cc = client_ctx_with(co);
    cfactory cf = {0};
    sfactory sf = {0};
    peer client;
    peer_init(&client);
    coil_test_log_capture_start();
    connect_once(sc, cc, name, &cf, &client, &sf);
    coil_test_log_capture_stop();
    CU_ASSERT_EQUAL(cf.connected, 0);
    CU_ASSERT_EQUAL(cf.failed, 1);
    CU_ASSERT_EQUAL(client.made, 0);
    CU_ASSERT_EQUAL(client.destroyed, 1);
    for (const char *const *n = needles; *n; n++) {
        if (!strstr(cf.failure, *n)) {
            fprintf(stderr, "failure \"%s\" lacks \"%s\"\n", cf.failure, *n);
            CU_FAIL("the failure message lacks a part");
        }
    }
    peer_done(&client);
    for (int i = 0; i < sf.n; i++)
        peer_done(&sf.servers[i]);
    coil_tls_context_free(sc);
    coil_tls_context_free(cc);
}

static void test_tcp_wrong_host(void)
{
    coil_tls_options so = {0}, co = {0};
    so.cert_file = cert("wronghost.pem");
    so.key_file = cert("wronghost.key");
    const char *n[] = {
        "TLS handshake with 127.0.0.1:", "certificate verify failed: hostname mismatch",
        "CN=wrong.example", "expected host localhost", NULL};
    expect_failure(&so, &co, "localhost", n);
}

static void test_tcp_expired(void)
{
    coil_tls_options so = {0}, co = {0};
    so.cert_file = cert("expired.pem");
    so.key_file = cert("expired.key");
    const char *n[] = {"certificate has expired", "CN=localhost", NULL};
    expect_failure(&so, &co, "localhost", n);
}

static void test_tcp_unknown_ca(void)
{
    coil_tls_options so = {0}, co = {0};
    co.ca_file = cert("other.pem"); /* not the CA */
    const char *n[] = {"self-signed certificate in certificate chain",
                       "CN=coil test CA at depth 1", NULL};
    expect_failure(&so, &co, "localhost", n);
}

static void test_tcp_client_cert(void)
{
    /* Required and present: the server sees the client's subject. */
    coil_tls_options so = {0}, co = {0};
    so.require_client_cert = 1;
    so.ca_file = cert("ca.pem");
    co.cert_file = cert("client.pem");
    co.key_file = cert("client.key");
    coil_tls_context *sc = server_ctx_with(&so), *cc = client_ctx_with(&co);
    cfactory cf = {0};
    sfactory sf = {0};
    peer client;
    peer_init(&client);
    connect_once(sc, cc, "localhost", &cf, &client, &sf);
    CU_ASSERT_EQUAL(cf.connected, 1);
    CU_ASSERT_EQUAL(cf.lost_code, COIL_ECLOSED);
    CU_ASSERT(strstr(sf.servers[0].info.tls_peer_subject, "CN=coil test client") != NULL);
    CU_ASSERT_EQUAL(sf.servers[0].info.tls_peer_verified, 1);
    peer_done(&client);
    peer_done(&sf.servers[0]);
    coil_tls_context_free(sc);
    coil_tls_context_free(cc);

    /* Required and missing. In TLS 1.3 the client's handshake is done
     * before the server has checked its certificate: the client connects,
     * then loses the connection to the server's alert. The server logs
     * why, and its protocol never hears of the connection. */
    coil_tls_options so2 = {0}, co2 = {0};
    so2.require_client_cert = 1;
    so2.ca_file = cert("ca.pem");
    sc = server_ctx_with(&so2);
    cc = client_ctx_with(&co2);
    cfactory cf2 = {0};
    sfactory sf2 = {0};
    peer client2;
    peer_init(&client2);
    coil_test_log_capture_start();
    connect_once(sc, cc, "localhost", &cf2, &client2, &sf2);
    coil_test_log_capture_stop();
    CU_ASSERT_EQUAL(client2.lost, 1);
    CU_ASSERT_EQUAL(client2.lost_code, COIL_ECONNLOST);
    CU_ASSERT(strstr(client2.lost_msg, "certificate required") != NULL);
    CU_ASSERT_EQUAL(client2.got_len, 0);
    CU_ASSERT(coil_test_log_contains("peer did not return a certificate"));
    CU_ASSERT_EQUAL(sf2.servers[0].made, 0);
    CU_ASSERT_EQUAL(sf2.servers[0].destroyed, 1);
    peer_done(&client2);
    coil_tls_context_free(sc);
    coil_tls_context_free(cc);
}

static void test_starttls_line(void)
{
    /* A line protocol: "STARTTLS\n" in the clear, "GO\n" in the clear,
     * then TLS both ways, on the same protocol objects. */
    coil_reactor *r = coil_test_reactor(NULL);
    coil_tls_context *sc = server_ctx(), *cc = client_ctx();
    sfactory sf = {0};
    sf.base.ops = &sf_ops;
    sf.starttls_ctx = sc;
    coil_listener *l = NULL;
    coil_tcp_listen_options lo = {0};
    lo.interface = "127.0.0.1";
    CU_ASSERT_EQUAL_FATAL(coil_tcp_listen(r, &lo, &sf.base, &l, NULL), 0);
    coil_address a;
    CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);
    peer client;
    peer_init(&client);
    cfactory cf = {0};
    cf.client = &client;
    static const coil_factory_ops plain_ops = {.build_protocol = cf_build};
    cf.base.ops = &plain_ops;
    coil_tcp_connect_options co = {0};
    co.host = "127.0.0.1";
    co.port = coil_address_port(&a);
    coil_connector *k = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_connect(r, &co, &cf.base, &k), 0);
    run_until(r, &client.made, 1);
    CU_ASSERT_STRING_EQUAL(client.base.transport->ops->kind, "tcp");
    coil_transport_write(client.base.transport, "STARTTLS\n", 9);
    for (int i = 0; i < 500 && client.got_len < 3; i++)
        coil_reactor_iterate(r, 0.01);
    CU_ASSERT_EQUAL_FATAL(client.got_len, 3);
    CU_ASSERT(memcmp(client.got, "GO\n", 3) == 0);
    coil_transport *tls = NULL;
    CU_ASSERT_EQUAL(coil_tls_start(client.base.transport, cc, "localhost", &tls), 0);
    CU_ASSERT_STRING_EQUAL(client.base.transport->ops->kind, "tls");
    coil_transport_write(client.base.transport, "secret\n", 7);
    peer *srv = &sf.servers[0];
    for (int i = 0; i < 500 && srv->got_len < 7; i++)
        coil_reactor_iterate(r, 0.01);
    CU_ASSERT_EQUAL(srv->got_len, 7);
    CU_ASSERT(srv->got && memcmp(srv->got, "secret\n", 7) == 0);
    CU_ASSERT_EQUAL(srv->made, 1); /* not made again */
    CU_ASSERT_EQUAL(client.made, 1);
    coil_transport_info info;
    coil_transport_info_get(srv->base.transport, &info);
    CU_ASSERT_STRING_EQUAL(info.kind, "tls");
    CU_ASSERT_PTR_NOT_NULL(info.tls_version);
    coil_transport_lose_connection(client.base.transport);
    run_until(r, &srv->lost, 1);
    CU_ASSERT_EQUAL(srv->lost_code, COIL_ECLOSED);
    run_until(r, &client.lost, 1);
    CU_ASSERT_EQUAL(client.lost_code, COIL_ECLOSED);
    coil_connector_free(k);
    coil_listener_close(l);
    settle_transports(r);
    peer_done(&client);
    peer_done(srv);
    coil_tls_context_free(sc);
    coil_tls_context_free(cc);
    coil_reactor_free(r);
}

static void test_endpoints(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    char desc[2048];
    snprintf(desc, sizeof desc,
             "ssl:0:interface=127.0.0.1:privateKey=%s:certKey=%s:alpn=coil/1:tickets=1:"
             "handshakeTimeout=5:closeTimeout=7",
             cert("server.key"), cert("server-chain.pem"));
    sfactory sf = {0};
    sf.base.ops = &sf_ops;
    coil_listener *l = NULL;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_listen(r, desc, &sf.base, &l, &err), 0);
    coil_address a;
    CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);
    snprintf(desc, sizeof desc,
             "tls:127.0.0.1:%d:caCerts=%s:sni=localhost:alpn=coil/1:handshakeTimeout=5:"
             "closeTimeout=7:highWater=8192:lowWater=2048",
             coil_address_port(&a), cert("ca.pem"));
    coil_endpoint *e = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_client(desc, &e, &err), 0);
    CU_ASSERT_STRING_EQUAL(coil_endpoint_kind(e), "tls");
    peer client;
    peer_init(&client);
    cfactory cf = {0};
    cf.base.ops = &cf_ops;
    cf.client = &client;
    coil_connector *k = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_connect(r, e, &cf.base, &k, &err), 0);
    run_until(r, &cf.connected, 1);
    CU_ASSERT_EQUAL(cf.connected, 1);
    CU_ASSERT_STRING_EQUAL(client.info.tls_alpn, "coil/1");
    CU_ASSERT(strstr(client.info.tls_peer_subject, "CN=localhost") != NULL);
    /* highWater=/lowWater= hold for the TLS layer's queue too. */
    CU_ASSERT_EQUAL(client.info.high_water, 8192);
    CU_ASSERT_EQUAL(client.info.low_water, 2048);
    coil_transport_lose_connection(client.base.transport);
    run_until(r, &cf.lost, 1);
    coil_connector_free(k);
    coil_endpoint_free(e);
    /* The same server without sni=: 127.0.0.1 is in the certificate. */
    snprintf(desc, sizeof desc, "tls:127.0.0.1:%d:caCerts=%s", coil_address_port(&a),
             cert("ca.pem"));
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_client(desc, &e, &err), 0);
    peer client2;
    peer_init(&client2);
    cfactory cf2 = {0};
    cf2.base.ops = &cf_ops;
    cf2.client = &client2;
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_connect(r, e, &cf2.base, &k, &err), 0);
    run_until(r, &cf2.connected, 1);
    CU_ASSERT_EQUAL(cf2.connected, 1);
    coil_transport_lose_connection(client2.base.transport);
    run_until(r, &cf2.lost, 1);
    coil_connector_free(k);
    coil_endpoint_free(e);
    coil_listener_close(l);
    settle_transports(r);
    for (int i = 0; i < sf.n; i++)
        peer_done(&sf.servers[i]);
    peer_done(&client);
    peer_done(&client2);
    coil_reactor_free(r);

    /* Bad descriptions say what is wrong and how to write them. */
    static const char *const bad[][2] = {
        {"ssl:8443", "privateKey= is missing"},
        {"ssl:8443:privateKey=/nonexistent.pem", "/nonexistent.pem"},
        {"ssl:8443:privateKey=k:requireCert=maybe", "is not yes or no"},
        {"tls:8443:port=x", "use tls:HOST:PORT"},
        {"ssl:8443:privateKey=k:closeTimeout=soon",
         "closeTimeout 'soon' is not a number"},
        {"tls:h:1:handshakeTimeout=0", "handshakeTimeout '0' is not a number"},
        {"ssl:8443:privateKey=k:tickets=99", "tickets '99' is not a number from 0 to 16"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        coil_endpoint *x = NULL;
        err = NULL;
        int server = strncmp(bad[i][0], "ssl", 3) == 0;
        int rc = server ? coil_endpoint_server(bad[i][0], &x, &err)
                        : coil_endpoint_client(bad[i][0], &x, &err);
        CU_ASSERT_EQUAL(rc, COIL_EINVAL);
        CU_ASSERT_PTR_NULL(x);
        if (!err || !strstr(coil_failure_message(err), bad[i][1])) {
            fprintf(stderr, "'%s': %s\n", bad[i][0],
                    err ? coil_failure_message(err) : "-");
            CU_FAIL("endpoint message");
        }
        coil_failure_free(err);
    }
}

static int add(void)
{
    if (!coil_test_cert("ca.pem"))
        return -1;
    static const coil_test_case memory[] = {
        COIL_TEST(test_handshake_and_info),
        COIL_TEST(test_tls12_and_versions),
        COIL_TEST(test_context_errors),
        COIL_TEST(test_pem_in_memory),
        COIL_TEST(test_alpn),
        COIL_TEST(test_sni_certificates),
        COIL_TEST(test_resumption),
        COIL_TEST(test_wrong_host_over_memory),
        COIL_TEST(test_wrap_reports_failure_to_protocol),
        COIL_TEST(test_failed_handshake_warnings_are_limited),
        COIL_TEST(test_handshake_timeout),
        COIL_TEST(test_small_writes_coalesce),
        COIL_TEST(test_close_notify_and_eof_close_at_once),
        COIL_TEST(test_truncation_is_lost),
        COIL_TEST(test_close_is_bounded),
        COIL_TEST(test_slow_close_is_waited_for),
        COIL_TEST(test_pause_keeps_data),
        COIL_TEST(test_keylog),
        {NULL, NULL},
    };
    static const coil_test_case sockets[] = {
        COIL_TEST(test_tcp_verified),    COIL_TEST(test_tcp_wrong_host),
        COIL_TEST(test_tcp_expired),     COIL_TEST(test_tcp_unknown_ca),
        COIL_TEST(test_tcp_client_cert), COIL_TEST(test_starttls_line),
        COIL_TEST(test_endpoints),       {NULL, NULL},
    };
    if (coil_test_add_suite("tls: in memory", memory) != 0)
        return -1;
    return coil_test_add_suite("tls: sockets", sockets);
}

int main(void)
{
    return coil_test_main(add);
}
