/* The TLS layer: a protocol ("down") to the transport below and a transport
 * (a coil__stream, "up") to the protocol above.
 *
 * Ciphertext moves through a custom BIO: inbound bytes are read by OpenSSL
 * straight from the buffer data_received lent us, and only what OpenSSL has
 * not taken yet is copied into a chunk queue that frees each chunk when it
 * is drained; outbound records collect in a buffer for one OpenSSL pass and
 * go to the transport below in one write.
 *
 * Buffers: a connection moving data keeps OpenSSL's record buffers and our
 * ciphertext buffer (freeing and regrowing them every pass cost more than
 * the cipher); once it has been quiet for IDLE_AFTER seconds they are
 * released (SSL_MODE_RELEASE_BUFFERS + SSL_free_buffers), so an idle
 * connection holds no I/O buffer. A new connection starts released.
 *
 * Plaintext written above queues in the stream; it is encrypted once per
 * reactor pass (call_soon), so many small writes become full records. A
 * write of DIRECT_MIN bytes or more with nothing queued is encrypted at
 * once, straight from the caller's buffer (no copy into the queue).
 *
 * Lifetime: the layer is referenced by the stream above (until its free op)
 * and by the transport below (until it destroys the down protocol). */
#include "tls_private.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <coil/log.h>

#include "stream.h"

#define LOG_MODULE  "tls"
#define READ_BUF    (16 * 1024)
#define WRITE_SLICE (64 * 1024) /* plaintext per SSL_write call */
#define OUT_FLUSH   (64 * 1024) /* hand ciphertext below past this much */
#define DIRECT_MIN  4096        /* encrypt at once from the caller's buffer */
#define IDLE_AFTER  0.5         /* seconds quiet before buffers are released */

typedef struct tls_layer {
    coil__stream up;        /* first: the TLS transport */
    coil__tls_conn_info ci; /* what OpenSSL's callbacks see */
    coil_protocol down;     /* our protocol on the transport below */
    coil_producer prod;     /* paused when the transport below is full */
    coil_tls_context *ctx;
    SSL *ssl;
    coil_transport *lower;
    int refs;
    char *server_name;
    char *session_key;
    const coil_layer_events *owner;

    /* inbound ciphertext OpenSSL has not read: queued, then lent */
    coil__chunk *in_head, *in_tail;
    size_t in_queued;
    const unsigned char *cur;
    size_t cur_len;

    /* outbound ciphertext of the current pass */
    unsigned char *out;
    size_t out_len, out_cap;

    int lower_seen;   /* the transport below called connection_made */
    int lower_gone;   /* ... and connection_lost */
    int lower_eof;    /* the transport below saw EOF */
    int lower_paused; /* the transport below is full */
    int handshake_done;
    int failed;       /* handshake or protocol failure: no more I/O */
    int starttls;     /* the protocol above was connected before */
    int owner_up;     /* owner->up was called */
    int lower_ending; /* the transport below is telling us it ended */
    int read_enabled; /* the protocol above wants data */
    int want_write;   /* the stream has plaintext queued */
    int in_flush;     /* inside our flush pass: send may encrypt */
    int flush_scheduled;
    int drain_scheduled;
    int shut_after_handshake;
    int sent_close_notify;
    int got_close_notify;
    coil_timer *hs_timer;
    coil_timer *close_timer;     /* the close watchdog: progress or give up */
    size_t close_mark;           /* bytes undelivered at the last check */
    double close_progress;       /* when the peer last took or sent something */
    coil_failure *close_failure; /* why the watchdog gave up */
    coil_address *peer_after;    /* the peer, copied as the transport below ends */
    int busy;                    /* holding buffers while data moves */
    unsigned long activity;      /* records moved; the idle check compares */
    unsigned long idle_mark;
    coil_timer *idle_timer;
} tls_layer;

static const coil_transport_ops tls_ops;

static void unref(tls_layer *L)
{
    if (--L->refs > 0)
        return;
    coil__reactor_untrack(&L->up.tracked); /* a stream that never ran */
    coil_timer_cancel(L->hs_timer);
    coil_timer_release(L->hs_timer);
    coil_timer_cancel(L->close_timer);
    coil_timer_release(L->close_timer);
    coil_timer_cancel(L->idle_timer);
    coil_timer_release(L->idle_timer);
    coil_failure_free(L->close_failure);
    free(L->peer_after);
    SSL_free(L->ssl); /* frees the BIO */
    while (L->in_head) {
        coil__chunk *c = L->in_head;
        L->in_head = c->next;
        free(c);
    }
    free(L->out);
    free(L->server_name);
    free(L->session_key);
    coil_tls_context_free(L->ctx);
    free(L);
}

/* ---- the BIO between OpenSSL and the transport below ------------------------ */

static int bio_write_ex(BIO *b, const char *data, size_t len, size_t *written)
{
    tls_layer *L = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (L->out_len + len > L->out_cap) {
        size_t cap = L->out_cap ? L->out_cap : 4096;
        while (cap < L->out_len + len)
            cap *= 2;
        unsigned char *n = realloc(L->out, cap);
        if (!n)
            return 0;
        L->out = n;
        L->out_cap = cap;
    }
    memcpy(L->out + L->out_len, data, len);
    L->out_len += len;
    *written = len;
    return 1;
}

static int bio_read_ex(BIO *b, char *buf, size_t len, size_t *readbytes)
{
    tls_layer *L = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    size_t n = 0;
    while (n < len && L->in_head) {
        coil__chunk *c = L->in_head;
        size_t take = c->end - c->start;
        if (take > len - n)
            take = len - n;
        memcpy(buf + n, c->data + c->start, take);
        c->start += take;
        n += take;
        L->in_queued -= take;
        if (c->start == c->end) {
            L->in_head = c->next;
            if (!L->in_head)
                L->in_tail = NULL;
            free(c); /* drained chunks go at once */
        }
    }
    if (n < len && L->cur_len > 0) {
        size_t take = L->cur_len < len - n ? L->cur_len : len - n;
        memcpy(buf + n, L->cur, take);
        L->cur += take;
        L->cur_len -= take;
        n += take;
    }
    *readbytes = n;
    if (n > 0)
        return 1;
    if (!L->lower_eof)
        BIO_set_retry_read(b);
    return 0; /* with retry: no data yet; without: EOF */
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    tls_layer *L = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF:
        return L && L->lower_eof && L->in_queued == 0 && L->cur_len == 0;
    case BIO_CTRL_PENDING:
        return L ? (long)(L->in_queued + L->cur_len) : 0;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
    BIO_METHOD *m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "coil transport");
    if (!m)
        return;
    BIO_meth_set_write_ex(m, bio_write_ex);
    BIO_meth_set_read_ex(m, bio_read_ex);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    bio_method = m;
}

/* Hand the ciphertext of this pass to the transport below; the buffer
 * stays while the connection is busy. */
static void out_flush(tls_layer *L, int keep)
{
    if (L->out_len > 0 && L->lower && !L->lower_gone)
        coil_transport_write(L->lower, L->out, L->out_len);
    L->out_len = 0;
    if (!keep && !L->busy) {
        free(L->out);
        L->out = NULL;
        L->out_cap = 0;
    }
}

/* ---- buffers: kept while busy, released when idle ---------------------------- */

static int idle_check(void *arg)
{
    tls_layer *L = arg;
    coil_timer_release(L->idle_timer);
    L->idle_timer = NULL;
    if (L->activity != L->idle_mark && L->up.base.reactor) {
        L->idle_mark = L->activity;
        L->idle_timer =
            coil_reactor_call_later(L->up.base.reactor, IDLE_AFTER, idle_check, L);
        if (L->idle_timer)
            return 0;
    }
    /* Quiet: give the buffers back. OpenSSL keeps a buffer that still
     * holds part of a record; it goes with the next read in release mode. */
    L->busy = 0;
    SSL_set_mode(L->ssl, SSL_MODE_RELEASE_BUFFERS);
    SSL_free_buffers(L->ssl);
    if (L->out_len == 0) {
        free(L->out);
        L->out = NULL;
        L->out_cap = 0;
    }
    return 0;
}

/* Data moved: keep the buffers until the connection goes quiet. */
static void mark_busy(tls_layer *L)
{
    L->activity++;
    if (L->busy || !L->up.base.reactor)
        return;
    L->idle_mark = L->activity;
    L->idle_timer =
        coil_reactor_call_later(L->up.base.reactor, IDLE_AFTER, idle_check, L);
    if (!L->idle_timer)
        return; /* no timer, no keeping */
    L->busy = 1;
    SSL_clear_mode(L->ssl, SSL_MODE_RELEASE_BUFFERS);
}

/* ---- messages ----------------------------------------------------------------- */

static void peer_text(const tls_layer *L, char *buf, size_t size)
{
    coil_address a;
    if (L->lower && !L->lower_gone && coil_transport_get_peer(L->lower, &a) == 0 &&
        coil_address_format(&a, buf, size) > 0)
        return;
    if (L->peer_after && coil_address_format(L->peer_after, buf, size) > 0)
        return;
    snprintf(buf, size, "%s", L->server_name ? L->server_name : "the peer");
}

/* What the handshake's failure was, in words: the OpenSSL reason, and for a
 * verification failure the certificate and the host expected. */
static coil_failure *handshake_failure(tls_layer *L, const char *fixed)
{
    char peer[300], why[700];
    peer_text(L, peer, sizeof peer);
    unsigned long e = ERR_peek_last_error();
    int code = e ? ERR_GET_REASON(e) : 0;
    if (fixed) {
        snprintf(why, sizeof why, "%s", fixed);
        ERR_clear_error();
    } else if (L->ci.verify_error) {
        code = SSL_R_CERTIFICATE_VERIFY_FAILED;
        char expect[300] = "";
        if ((L->ci.verify_error == X509_V_ERR_HOSTNAME_MISMATCH ||
             L->ci.verify_error == X509_V_ERR_IP_ADDRESS_MISMATCH) &&
            L->server_name)
            snprintf(expect, sizeof expect, ", expected host %s", L->server_name);
        snprintf(why, sizeof why,
                 "certificate verify failed: %s (certificate subject %s at depth %d%s)",
                 X509_verify_cert_error_string(L->ci.verify_error),
                 L->ci.verify_subject[0] ? L->ci.verify_subject : "unknown",
                 L->ci.verify_depth, expect);
        ERR_clear_error();
    } else if (e && ERR_GET_LIB(e) == ERR_LIB_SSL &&
               ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        snprintf(why, sizeof why, "the peer closed the connection during the handshake");
        ERR_clear_error();
    } else {
        coil__tls_error_text(why, sizeof why);
        if (e && ERR_GET_REASON(e) == SSL_R_UNSUPPORTED_PROTOCOL)
            snprintf(why + strlen(why), sizeof why - strlen(why),
                     " (this side accepts TLS 1.2 and newer)");
    }
    return coil_failure_new(COIL_DOMAIN_TLS, code, "TLS handshake with %s failed: %s",
                            peer, why);
}

/* ---- the layer's life ---------------------------------------------------------- */

static void cancel_timer(coil_timer **t)
{
    if (*t) {
        coil_timer_cancel(*t);
        coil_timer_release(*t);
        *t = NULL;
    }
}

/* End the stream above now (connection_lost runs before this returns
 * unless a callback of ours is on the stack). */
static void up_lost(tls_layer *L, coil_failure *reason)
{
    coil__stream_hold(&L->up);
    coil__stream_lost(&L->up, reason);
    coil__stream_release(&L->up);
}

static void handshake_fail(tls_layer *L, coil_failure *f)
{
    if (L->failed || L->up.state == COIL__STREAM_CLOSED) {
        coil_failure_free(f);
        return;
    }
    L->failed = 1;
    cancel_timer(&L->hs_timer);
    if (!L->starttls) {
        /* The protocol above never had connection_made: it hears why here,
         * its factory (a connector's) from the owner. */
        coil_protocol *up = L->up.base.protocol;
        if (up && up->ops->connection_failed)
            up->ops->connection_failed(up, f);
        if (L->owner && L->owner->failed && !L->lower_gone)
            L->owner->failed(L->lower, f);
        else if (!up || !up->ops->connection_failed)
            /* A server facing a scanner or a flood of bad clients: a few
             * warnings per window, then a count. */
            coil_log_ratelimited(&L->ctx->hs_log_limit,
                                 coil_reactor_seconds(L->up.base.reactor), COIL_LOG_WARN,
                                 LOG_MODULE, "%s", coil_failure_message(f));
    }
    up_lost(L, f);
}

static int handshake_timeout(void *arg)
{
    tls_layer *L = arg;
    coil_timer_release(L->hs_timer);
    L->hs_timer = NULL;
    char msg[128];
    snprintf(msg, sizeof msg, "it did not finish within %g s", L->ctx->handshake_timeout);
    handshake_fail(L, handshake_failure(L, msg));
    return 0;
}

static void maybe_schedule_flush(tls_layer *L);

static void handshake_finished(tls_layer *L)
{
    L->handshake_done = 1;
    cancel_timer(&L->hs_timer);
    if (L->shut_after_handshake && !L->sent_close_notify) {
        SSL_shutdown(L->ssl);
        L->sent_close_notify = 1;
        out_flush(L, 0);
    }
    if (!L->starttls) {
        coil__stream_connected(&L->up); /* connection_made; reading on */
        if (L->up.state != COIL__STREAM_CLOSED && L->owner && L->owner->up &&
            !L->lower_gone) {
            L->owner_up = 1;
            L->owner->up(L->lower, &L->up.base);
        }
    } else {
        L->read_enabled = L->up.reading;
        if (!L->read_enabled && L->lower)
            coil_transport_pause_reading(L->lower);
    }
    maybe_schedule_flush(L);
}

/* A fatal error after the handshake. */
static void protocol_error(tls_layer *L)
{
    char peer[300], why[512];
    peer_text(L, peer, sizeof peer);
    unsigned long e = ERR_peek_last_error();
    L->failed = 1;
    coil_failure *f;
    if (e && ERR_GET_LIB(e) == ERR_LIB_SSL &&
        ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ERR_clear_error();
        f = coil_failure_new(COIL_DOMAIN_COIL, COIL_ECONNLOST,
                             "TLS connection with %s lost: the peer closed the "
                             "connection without close_notify (the data may be "
                             "truncated)",
                             peer);
    } else {
        coil__tls_error_text(why, sizeof why);
        coil_failure *cause =
            coil_failure_new(COIL_DOMAIN_TLS, e ? ERR_GET_REASON(e) : 0, "%s", why);
        f = coil_failure_wrap(cause, COIL_DOMAIN_COIL, COIL_ECONNLOST,
                              "TLS connection with %s lost: %s", peer, why);
    }
    up_lost(L, f);
}

static size_t buffered_in(const tls_layer *L);

/* Run OpenSSL on what has arrived: the handshake, then records for the
 * protocol above while it reads. */
static void drive(tls_layer *L)
{
    if (L->up.state == COIL__STREAM_CLOSED || L->failed)
        return;
    coil__stream_hold(&L->up);
    if (!L->handshake_done) {
        ERR_clear_error();
        int r = SSL_do_handshake(L->ssl);
        out_flush(L, 0);
        if (r == 1) {
            handshake_finished(L);
        } else {
            int e = SSL_get_error(L->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                handshake_fail(L, handshake_failure(L, NULL));
            else if (L->lower_eof)
                handshake_fail(
                    L, handshake_failure(L, "the peer closed the connection during "
                                            "the handshake"));
        }
    }
    unsigned char buf[READ_BUF];
    /* Only ask OpenSSL for records when bytes are there (or EOF is): a read
     * that finds nothing makes it allocate its 17 KB read buffer and keep
     * it, which an idle connection must not hold. */
    while (L->handshake_done && !L->failed && L->read_enabled && !L->got_close_notify &&
           L->up.state != COIL__STREAM_CLOSED && (buffered_in(L) > 0 || L->lower_eof)) {
        size_t got = 0;
        ERR_clear_error();
        if (SSL_read_ex(L->ssl, buf, sizeof buf, &got) == 1) {
            mark_busy(L);
            coil__stream_data(&L->up, buf, got);
            continue;
        }
        int e = SSL_get_error(L->ssl, 0);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        out_flush(L, 0);
        if (e == SSL_ERROR_ZERO_RETURN) {
            L->got_close_notify = 1;
            coil__stream_eof(&L->up);
        } else {
            protocol_error(L);
        }
        break;
    }
    out_flush(L, 0); /* tickets, key updates, alerts */
    coil__stream_release(&L->up);
}

static int drain_cb(void *arg)
{
    tls_layer *L = arg;
    L->drain_scheduled = 0;
    drive(L);
    coil__stream_release(&L->up);
    return 0;
}

static size_t buffered_in(const tls_layer *L)
{
    return L->in_queued + L->cur_len + (L->ssl && SSL_has_pending(L->ssl) ? 1 : 0);
}

/* After resume_reading: data already inside the layer raises no event. */
static void schedule_drain(tls_layer *L)
{
    if (L->drain_scheduled || (buffered_in(L) == 0 && !L->lower_eof))
        return;
    coil__stream_hold(&L->up);
    if (coil_reactor_call_soon(L->up.base.reactor, drain_cb, L) != 0) {
        coil__stream_release(&L->up);
        return;
    }
    L->drain_scheduled = 1;
}

static int flush_cb(void *arg)
{
    tls_layer *L = arg;
    L->flush_scheduled = 0;
    L->in_flush = 1;
    coil__stream_writable(&L->up);
    L->in_flush = 0;
    out_flush(L, 0);
    coil__stream_release(&L->up);
    return 0;
}

/* Encrypt what is queued on the next pass: every write of this pass goes
 * out together, as full records. */
static void maybe_schedule_flush(tls_layer *L)
{
    if (!L->want_write || !L->handshake_done || L->lower_paused || !L->lower ||
        L->lower_gone || L->failed || L->flush_scheduled)
        return;
    coil__stream_hold(&L->up);
    if (coil_reactor_call_soon(L->up.base.reactor, flush_cb, L) != 0) {
        coil__stream_release(&L->up);
        return;
    }
    L->flush_scheduled = 1;
}

/* Records encrypted straight from a caller's write wait in L->out until the
 * end of the pass, so the records of one pass leave in one send. */
static void schedule_out_flush(tls_layer *L)
{
    if (L->flush_scheduled)
        return;
    coil__stream_hold(&L->up);
    if (coil_reactor_call_soon(L->up.base.reactor, flush_cb, L) != 0) {
        coil__stream_release(&L->up);
        out_flush(L, 0);
        return;
    }
    L->flush_scheduled = 1;
}

/* ---- the stream's lower operations (the TLS transport) ------------------------- */

static ssize_t tls_send(coil__stream *s, const struct iovec *iov, int iovcnt)
{
    tls_layer *L = (tls_layer *)s;
    if (!L->handshake_done || L->lower_paused || !L->lower || L->lower_gone ||
        L->failed || L->sent_close_notify)
        return 0;
    if (!L->in_flush) {
        /* Outside our flush pass: only a large write with nothing queued
         * (the stream asks then) is encrypted now, from the caller's
         * buffer; small ones wait to share a record. */
        size_t want = 0;
        for (int i = 0; i < iovcnt; i++)
            want += iov[i].iov_len;
        if (want < DIRECT_MIN)
            return 0;
    }
    mark_busy(L);
    size_t total = 0;
    for (int i = 0; i < iovcnt && !L->lower_paused; i++) {
        const unsigned char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0 && !L->lower_paused) {
            size_t w = 0, n = left < WRITE_SLICE ? left : WRITE_SLICE;
            ERR_clear_error();
            if (SSL_write_ex(L->ssl, p, n, &w) != 1) {
                int e = SSL_get_error(L->ssl, 0);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                    goto done;
                out_flush(L, 0);
                protocol_error(L);
                return (ssize_t)total;
            }
            total += w;
            p += w;
            left -= w;
            if (L->out_len >= OUT_FLUSH)
                out_flush(L, 1); /* may pause us */
        }
    }
done:
    if (L->in_flush || L->out_len == 0)
        out_flush(L, 0);
    else
        schedule_out_flush(L);
    return (ssize_t)total;
}

static void tls_want_write(coil__stream *s, int on)
{
    tls_layer *L = (tls_layer *)s;
    L->want_write = on;
    if (on)
        maybe_schedule_flush(L);
}

static void tls_set_reading(coil__stream *s, int on)
{
    tls_layer *L = (tls_layer *)s;
    L->read_enabled = on;
    if (!L->lower || L->lower_gone || !L->handshake_done)
        return; /* the handshake reads regardless */
    if (on) {
        coil_transport_resume_reading(L->lower);
        schedule_drain(L);
    } else {
        coil_transport_pause_reading(L->lower);
    }
}

static int tls_shutdown_write(coil__stream *s)
{
    tls_layer *L = (tls_layer *)s;
    if (!L->handshake_done) {
        L->shut_after_handshake = 1;
        return 0;
    }
    if (!L->sent_close_notify) {
        ERR_clear_error();
        SSL_shutdown(L->ssl);
        L->sent_close_notify = 1;
        out_flush(L, 0);
    }
    return 0;
}

/* ---- closing: the watchdog ----------------------------------------------------
 *
 * A clean close (and the lose_connection before it) waits for the peer to
 * take every byte: the plaintext still queued here, the ciphertext queued
 * below and what the kernel has sent but the peer has not acknowledged. A
 * slow reader is waited for as long as it makes progress; only when none of
 * those bytes has moved for close_timeout does the layer give up. Bytes the
 * peer sends do not count: a peer that writes and never reads must not hold
 * the connection forever. With bytes undelivered the layer then aborts the
 * connection below and the protocol hears "lost", never "clean"; with
 * everything taken it closes below normally. */

static size_t undelivered(const tls_layer *L)
{
    size_t n = L->up.queued + L->out_len;
    coil_transport_info li;
    if (L->lower && !L->lower_gone && coil_transport_info_get(L->lower, &li) == 0)
        n += li.write_queued + li.unacked;
    return n;
}

static int close_timeout_cb(void *arg);

/* Check four times per close_timeout, so "no progress for close_timeout"
 * holds to within a quarter of it. */
static void arm_close_check(tls_layer *L)
{
    if (!L->close_timer && L->lower && !L->lower_gone)
        L->close_timer = coil_reactor_call_later(
            L->up.base.reactor, L->ctx->close_timeout / 4, close_timeout_cb, L);
}

static void watch_close(tls_layer *L)
{
    if (L->close_timer)
        return; /* already watching */
    L->close_mark = undelivered(L);
    L->close_progress = coil_reactor_seconds(L->up.base.reactor);
    arm_close_check(L);
}

static int close_timeout_cb(void *arg)
{
    tls_layer *L = arg;
    coil_timer_release(L->close_timer);
    L->close_timer = NULL;
    if (!L->lower || L->lower_gone || L->lower_ending)
        return 0;
    size_t left = undelivered(L);
    double now = coil_reactor_seconds(L->up.base.reactor);
    if (left < L->close_mark) {
        L->close_progress = now; /* the peer is slow, not gone */
    }
    L->close_mark = left;
    if (now - L->close_progress < L->ctx->close_timeout) {
        arm_close_check(L);
        return 0;
    }
    char peer[300];
    peer_text(L, peer, sizeof peer);
    if (left == 0 && L->up.lingering) {
        /* The peer has taken every byte but does not close its side: close
         * ours normally (no reset: nothing of ours is lost). */
        coil_log(COIL_LOG_INFO, LOG_MODULE,
                 "TLS close with %s: the peer took every byte but did not close "
                 "within %g s; closing",
                 peer, L->ctx->close_timeout);
        coil_transport_lose_connection(L->lower);
        return 0;
    }
    coil_log(COIL_LOG_INFO, LOG_MODULE,
             "TLS close with %s made no progress for %g s with %zu bytes undelivered: "
             "aborting",
             peer, L->ctx->close_timeout, left);
    coil_failure *f = coil_failure_new(
        COIL_DOMAIN_COIL, COIL_ECONNLOST,
        "TLS connection with %s lost: the peer took none of the %zu bytes still "
        "undelivered for %g s (the close timeout); connection aborted",
        peer, left, L->ctx->close_timeout);
    if (L->up.lingering) {
        coil_failure_free(L->close_failure);
        L->close_failure = f; /* reported when the transport below ends */
        coil_transport_abort_connection(L->lower);
    } else {
        up_lost(L, f); /* still flushing plaintext: end it now */
    }
    return 0;
}

static int tls_lose_connection(coil_transport *t)
{
    tls_layer *L = (tls_layer *)t;
    int rc = coil__stream_lose_connection(t);
    /* Plaintext still queued (the peer reads slowly): watch it go. */
    if (rc == 0 && L->up.state == COIL__STREAM_CLOSING)
        watch_close(L);
    return rc;
}

static void tls_close(coil__stream *s, int abort)
{
    tls_layer *L = (tls_layer *)s;
    cancel_timer(&L->hs_timer);
    L->read_enabled = 0;
    if (!L->lower || L->lower_gone || L->lower_ending)
        return;
    /* The protocol above hears connection_lost once the transport below
     * has ended (down_connection_lost): only then do we know whether every
     * byte got there. */
    s->lingering = 1;
    if (abort && !L->failed) {
        coil_transport_abort_connection(L->lower);
        return;
    }
    /* Clean, or failed with an alert to deliver: flush, close_notify after a
     * finished handshake (never mid-handshake), then close below. */
    if (L->handshake_done && !L->failed && !L->sent_close_notify) {
        ERR_clear_error();
        SSL_shutdown(L->ssl);
        L->sent_close_notify = 1;
    }
    out_flush(L, 0);
    /* Shut our side below but keep reading until the peer closes: closing
     * a socket with unread input (a TLS 1.3 ticket, the peer's
     * close_notify) resets the connection, and the peer could lose what
     * we sent. What arrives now is dropped; the watchdog bounds the wait. */
    if (L->failed || coil_transport_lose_write_connection(L->lower) != 0)
        coil_transport_lose_connection(L->lower);
    else
        coil_transport_resume_reading(L->lower);
    if (!L->lower_gone && !L->lower_ending)
        watch_close(L);
}

static void tls_lost(coil__stream *s, const coil_failure *reason)
{
    tls_layer *L = (tls_layer *)s;
    if (L->owner_up && !L->lower_gone && L->owner->lost) {
        L->owner_up = 0;
        L->owner->lost(L->lower, reason);
    }
}

static void tls_free(coil__stream *s)
{
    unref((tls_layer *)s);
}

static int tls_get_peer(const coil__stream *s, coil_address *out)
{
    const tls_layer *L = (const tls_layer *)s;
    if (!L->lower || L->lower_gone) {
        if (!L->peer_after)
            return COIL_ECLOSED;
        *out = *L->peer_after; /* as the sockets do: the peer stays known */
        return 0;
    }
    return coil_transport_get_peer(L->lower, out);
}

static int tls_get_host(const coil__stream *s, coil_address *out)
{
    const tls_layer *L = (const tls_layer *)s;
    if (!L->lower || L->lower_gone)
        return COIL_ECLOSED;
    return coil_transport_get_host(L->lower, out);
}

static void tls_info(const coil__stream *s, coil_transport_info *out)
{
    const tls_layer *L = (const tls_layer *)s;
    coil_transport_info li;
    const coil_transport_info *below = NULL;
    if (L->lower && !L->lower_gone && coil_transport_info_get(L->lower, &li) == 0) {
        out->peer_pid = li.peer_pid;
        out->peer_uid = li.peer_uid;
        out->peer_gid = li.peer_gid;
        below = &li;
    }
    coil_transport_layer_info *me = coil_transport_info_push(out, below, "tls");
    const char *sni = SSL_get_servername(L->ssl, TLSEXT_NAMETYPE_host_name);
    if (sni)
        snprintf(out->tls_server_name, sizeof out->tls_server_name, "%s", sni);
    if (!L->handshake_done)
        return;
    out->tls_version = SSL_get_version(L->ssl);
    out->tls_cipher = SSL_get_cipher_name(L->ssl);
    const unsigned char *alpn = NULL;
    unsigned alen = 0;
    SSL_get0_alpn_selected(L->ssl, &alpn, &alen);
    if (alpn && alen < sizeof out->tls_alpn) {
        memcpy(out->tls_alpn, alpn, alen);
        out->tls_alpn[alen] = 0;
    }
    X509 *peer = SSL_get0_peer_certificate(L->ssl);
    if (peer) {
        X509_NAME_oneline(X509_get_subject_name(peer), out->tls_peer_subject,
                          sizeof out->tls_peer_subject);
        out->tls_peer_verified =
            SSL_get_verify_result(L->ssl) == X509_V_OK &&
            !(coil_tls_context_role(L->ctx) == COIL_TLS_CLIENT && L->ctx->no_verify);
    }
    out->tls_resumed = SSL_session_reused(L->ssl);
    snprintf(me->protocol, sizeof me->protocol, "%s", out->tls_version);
    snprintf(me->cipher, sizeof me->cipher, "%s", out->tls_cipher ? out->tls_cipher : "");
    snprintf(me->peer, sizeof me->peer, "%s", out->tls_peer_subject);
    me->verified = out->tls_peer_verified;
    snprintf(me->detail, sizeof me->detail, "%s%s%s%s%s%s",
             out->tls_alpn[0] ? "alpn=" : "", out->tls_alpn,
             out->tls_alpn[0] && sni ? " " : "", sni ? "sni=" : "", sni ? sni : "",
             out->tls_resumed ? (sni || out->tls_alpn[0] ? " resumed" : "resumed") : "");
}

static size_t tls_pending(const coil_transport *t)
{
    return buffered_in((const tls_layer *)t);
}

static int tls_start_tls(coil_transport *t, void *tls_context, int server)
{
    return COIL_ENOTSUP; /* TLS in TLS: wrap explicitly if you mean it */
}

static const coil__stream_lower tls_lower = {
    .send = tls_send,
    .want_write = tls_want_write,
    .set_reading = tls_set_reading,
    .shutdown_write = tls_shutdown_write,
    .close = tls_close,
    .lost = tls_lost,
    .free = tls_free,
    .get_peer = tls_get_peer,
    .get_host = tls_get_host,
    .info = tls_info,
};

static const coil_transport_ops tls_ops = {
    .kind = "tls",
    .write = coil__stream_write,
    .writev = coil__stream_writev,
    .lose_connection = tls_lose_connection,
    .abort_connection = coil__stream_abort_connection,
    .lose_write_connection = coil__stream_lose_write_connection,
    .get_peer = coil__stream_get_peer,
    .get_host = coil__stream_get_host,
    .pause_reading = coil__stream_pause_reading,
    .resume_reading = coil__stream_resume_reading,
    .register_producer = coil__stream_register_producer,
    .unregister_producer = coil__stream_unregister_producer,
    .start_tls = tls_start_tls,
    .info = coil__stream_info,
    .pending = tls_pending,
};

/* ---- the protocol on the transport below --------------------------------------- */

static tls_layer *from_down(coil_protocol *p)
{
    return (tls_layer *)((char *)p - offsetof(tls_layer, down));
}

static void prod_pause(coil_producer *p)
{
    tls_layer *L = (tls_layer *)((char *)p - offsetof(tls_layer, prod));
    L->lower_paused = 1;
}

static void prod_resume(coil_producer *p)
{
    tls_layer *L = (tls_layer *)((char *)p - offsetof(tls_layer, prod));
    L->lower_paused = 0;
    maybe_schedule_flush(L);
}

static const coil_producer_ops prod_ops = {prod_pause, prod_resume, NULL};

static void down_connection_made(coil_protocol *p)
{
    tls_layer *L = from_down(p);
    L->lower = p->transport;
    L->lower_seen = 1;
    L->up.base.reactor = L->lower->reactor;
    /* Now known to the reactor: shutdown closes this layer, not the
     * transport below it. */
    coil__stream_track(&L->up);
    coil__stream_set_upper(L->lower, &L->up);
    /* Water marks set for the connection (highWater=, listen/connect
     * options) hold for the plaintext queue above too. */
    coil_transport_info li;
    if (coil_transport_info_get(L->lower, &li) == 0 && li.high_water > 0)
        coil_transport_set_water_marks(&L->up.base, li.high_water, li.low_water);
    /* A producer the protocol above had registered (STARTTLS) keeps its
     * place; flow control then rests on it. */
    coil_transport_register_producer(L->lower, &L->prod, 1);
    L->hs_timer = coil_reactor_call_later(L->up.base.reactor, L->ctx->handshake_timeout,
                                          handshake_timeout, L);
    if (coil_tls_context_role(L->ctx) == COIL_TLS_CLIENT)
        drive(L); /* ClientHello */
}

static void down_data_received(coil_protocol *p, const void *data, size_t len)
{
    tls_layer *L = from_down(p);
    if (L->up.state == COIL__STREAM_CLOSED || L->failed)
        return;
    coil__stream_hold(&L->up);
    L->cur = data;
    L->cur_len = len;
    if (!L->handshake_done || L->read_enabled)
        drive(L);
    /* Keep what OpenSSL did not take (the protocol above is paused). */
    while (L->cur_len > 0 && L->up.state != COIL__STREAM_CLOSED) {
        size_t n = L->cur_len;
        coil__chunk *c = malloc(sizeof *c + n);
        if (!c) {
            up_lost(L, coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                        "out of memory buffering TLS input"));
            break;
        }
        memcpy(c->data, L->cur, n);
        c->next = NULL;
        c->start = 0;
        c->end = c->cap = n;
        if (L->in_tail)
            L->in_tail->next = c;
        else
            L->in_head = c;
        L->in_tail = c;
        L->in_queued += n;
        L->cur_len = 0;
    }
    L->cur = NULL;
    L->cur_len = 0;
    coil__stream_release(&L->up);
}

static void down_read_connection_lost(coil_protocol *p)
{
    tls_layer *L = from_down(p);
    L->lower_eof = 1;
    if (L->got_close_notify)
        return; /* the peer closed cleanly, then shut its side */
    drive(L);   /* the handshake or the reader meets the EOF */
}

static void down_connection_lost(coil_protocol *p, const coil_failure *reason)
{
    tls_layer *L = from_down(p);
    cancel_timer(&L->close_timer);
    L->lower_ending = 1;
    /* Keep the peer's address for what is said after this (an idle
     * connection does not pay for the copy). */
    coil_address a;
    if (!L->peer_after && coil_transport_get_peer(L->lower, &a) == 0 &&
        (L->peer_after = malloc(sizeof a)))
        *L->peer_after = a;
    char peer[300];
    peer_text(L, peer, sizeof peer);
    int clean = coil_failure_check(reason, COIL_DOMAIN_COIL, COIL_ECLOSED);
    if (L->up.lingering) {
        /* Our close is over: clean when the connection below ended
         * cleanly (the peer took everything and closed), else why not. */
        coil_failure *r = L->close_failure;
        L->close_failure = NULL;
        if (!r && !clean &&
            coil_failure_check(L->up.reason, COIL_DOMAIN_COIL, COIL_ECLOSED))
            r = coil_failure_wrap(coil_failure_copy(reason), COIL_DOMAIN_COIL,
                                  COIL_ECONNLOST,
                                  "TLS connection with %s lost while closing", peer);
        coil__stream_close_done(&L->up, r);
    } else if (L->up.state != COIL__STREAM_CLOSED) {
        if (!L->handshake_done && !L->failed) {
            handshake_fail(
                L, coil_failure_wrap(coil_failure_copy(reason), COIL_DOMAIN_TLS, 0,
                                     "TLS handshake with %s failed: the connection ended "
                                     "during the handshake",
                                     peer));
        } else if (clean && L->got_close_notify) {
            up_lost(L, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECLOSED,
                                        "connection closed cleanly"));
        } else if (clean) {
            up_lost(L, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECONNLOST,
                                        "TLS connection with %s lost: the peer closed "
                                        "the connection without close_notify (the data "
                                        "may be truncated)",
                                        peer));
        } else {
            up_lost(L, coil_failure_wrap(coil_failure_copy(reason), COIL_DOMAIN_COIL,
                                         COIL_ECONNLOST, "TLS connection with %s lost",
                                         peer));
        }
    }
    L->lower_gone = 1;
}

static void down_destroy(coil_protocol *p)
{
    tls_layer *L = from_down(p);
    L->lower_gone = 1;
    if (!L->lower_seen) {
        /* The transport below never came up: the stream above never
         * started; release the protocol above and the stream's reference. */
        coil_protocol *up = L->up.base.protocol;
        L->up.base.protocol = NULL;
        if (up) {
            up->transport = NULL;
            if (up->ops->destroy)
                up->ops->destroy(up);
        }
        L->refs--;
    }
    unref(L);
}

static const coil_protocol_ops down_ops = {
    .connection_made = down_connection_made,
    .data_received = down_data_received,
    .read_connection_lost = down_read_connection_lost,
    .connection_lost = down_connection_lost,
    .destroy = down_destroy,
};

/* ---- creating ------------------------------------------------------------------ */

static int is_ip_literal(const char *name)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

static tls_layer *layer_new(coil_tls_context *ctx, const char *server_name,
                            const char *session_key, coil_protocol *upper,
                            coil_reactor *r)
{
    pthread_once(&bio_once, bio_method_init);
    tls_layer *L = calloc(1, sizeof *L);
    if (!L || !bio_method)
        goto fail;
    L->refs = 2;
    L->ctx = coil_tls_context_ref(ctx);
    L->ci.ctx = ctx;
    if (!server_name)
        server_name = ctx->server_name;
    if (server_name && !(L->server_name = strdup(server_name)))
        goto fail;
    if (!session_key)
        session_key = server_name;
    if (session_key && !(L->session_key = strdup(session_key)))
        goto fail;
    L->ci.session_key = L->session_key;
    L->ssl = SSL_new(ctx->ctx);
    if (!L->ssl)
        goto fail;
    SSL_set_app_data(L->ssl, &L->ci);
    BIO *bio = BIO_new(bio_method);
    if (!bio)
        goto fail;
    BIO_set_data(bio, L);
    SSL_set_bio(L->ssl, bio, bio);
    if (coil_tls_context_role(ctx) == COIL_TLS_CLIENT) {
        SSL_set_connect_state(L->ssl);
        if (L->server_name) {
            if (!is_ip_literal(L->server_name))
                SSL_set_tlsext_host_name(L->ssl, L->server_name);
            if (!ctx->no_verify) {
                int ok = is_ip_literal(L->server_name)
                             ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(L->ssl),
                                                             L->server_name)
                             : SSL_set1_host(L->ssl, L->server_name);
                if (ok != 1)
                    goto fail;
            }
        } else if (!ctx->no_verify) {
            coil_log(COIL_LOG_ERROR, LOG_MODULE,
                     "a verifying TLS client needs the server's host name: pass one "
                     "or set server_name in the context options");
            goto fail;
        }
        SSL_SESSION *sess = ctx->no_cache || !L->session_key
                                ? NULL
                                : coil__tls_cache_get(ctx, L->session_key);
        if (sess)
            SSL_set_session(L->ssl, sess);
    } else {
        SSL_set_accept_state(L->ssl);
    }
    L->prod.ops = &prod_ops;
    L->down.ops = &down_ops;
    coil__stream_init(&L->up, &tls_ops, &tls_lower, r, upper);
    return L;
fail:
    ERR_clear_error();
    if (L) {
        SSL_free(L->ssl);
        free(L->server_name);
        free(L->session_key);
        coil_tls_context_free(L->ctx);
        free(L);
    }
    if (upper && upper->ops->destroy)
        upper->ops->destroy(upper);
    return NULL;
}

coil_protocol *coil__tls_wrap_owned(coil_tls_context *ctx, const char *server_name,
                                    const char *session_key, coil_protocol *upper,
                                    const coil_layer_events *owner)
{
    if (!ctx || !upper)
        return NULL;
    /* The reactor comes from the transport below, at connection_made; the
     * stream is initialised with none and fixed up then. */
    tls_layer *L = layer_new(ctx, server_name, session_key, upper, NULL);
    if (!L)
        return NULL;
    L->owner = owner;
    return &L->down;
}

coil_protocol *coil_tls_wrap(coil_tls_context *ctx, const char *server_name,
                             coil_protocol *upper)
{
    return coil__tls_wrap_owned(ctx, server_name, NULL, upper, NULL);
}

int coil_tls_start(coil_transport *t, coil_tls_context *ctx, const char *server_name,
                   coil_transport **out)
{
    if (!t || !ctx || !t->protocol)
        return COIL_EINVAL;
    if (t->ops == &tls_ops)
        return COIL_ENOTSUP;
    if (t->disconnecting)
        return COIL_ECLOSED;
    coil_protocol *p = t->protocol;
    tls_layer *L = layer_new(ctx, server_name, NULL, NULL, t->reactor);
    if (!L)
        return COIL_ENOMEM;
    /* The protocol above moves onto the TLS transport, already connected. */
    L->starttls = 1;
    L->up.base.protocol = p;
    L->up.connected = 1;
    p->transport = &L->up.base;
    t->protocol = &L->down;
    L->down.transport = t;
    down_connection_made(&L->down);
    if (out)
        *out = &L->up.base;
    return 0;
}

coil_transport *coil_tls_lower(const coil_transport *t)
{
    if (!t || t->ops != &tls_ops)
        return NULL;
    const tls_layer *L = (const tls_layer *)t;
    return L->lower_gone ? NULL : L->lower;
}

/* ---- the plug-in layer ------------------------------------------------------- */

typedef struct tls_plugin_layer {
    coil_layer base; /* first */
    coil_tls_context *ctx;
    char *server_name;
} tls_plugin_layer;

static coil_protocol *plugin_wrap(coil_layer *layer, coil_protocol *upper,
                                  const char *peer, const coil_layer_events *events)
{
    tls_plugin_layer *pl = (tls_plugin_layer *)layer;
    return coil__tls_wrap_owned(pl->ctx, pl->server_name, peer, upper, events);
}

static void plugin_free(coil_layer *layer)
{
    tls_plugin_layer *pl = (tls_plugin_layer *)layer;
    coil_tls_context_free(pl->ctx);
    free(pl->server_name);
    free(pl);
}

static const coil_layer_ops plugin_layer_ops = {
    .name = "tls",
    .wrap = plugin_wrap,
    .free = plugin_free,
};

coil_layer *coil_tls_layer_new(coil_tls_context *ctx, const char *server_name)
{
    if (!ctx)
        return NULL;
    tls_plugin_layer *pl = calloc(1, sizeof *pl);
    if (!pl)
        return NULL;
    if (server_name && !(pl->server_name = strdup(server_name))) {
        free(pl);
        return NULL;
    }
    pl->base.ops = &plugin_layer_ops;
    pl->ctx = coil_tls_context_ref(ctx);
    return &pl->base;
}

/* The start_tls operation of TCP, UNIX and in-memory transports (the hook
 * transports/stream.c calls; registered by tls/endpoint.c). */
int coil__tls_stream_start_tls(coil_transport *t, void *tls_context, int server)
{
    coil_tls_context *ctx = tls_context;
    if (!ctx ||
        coil_tls_context_role(ctx) != (server ? COIL_TLS_SERVER : COIL_TLS_CLIENT))
        return COIL_EINVAL;
    return coil_tls_start(t, ctx, NULL, NULL);
}
