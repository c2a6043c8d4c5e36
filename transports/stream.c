/* The shared stream machinery; see stream.h. */
#include "stream.h"
#include "plugins_private.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coil/log.h>

#define LOG_MODULE "transport"
#define MAX_IOV    64

/* ---- teardown -------------------------------------------------------------- */

static void teardown(coil__stream *s)
{
    /* Out of the reactor's registry first: what runs below (the protocol,
     * a layer above freeing itself) must not find a half-gone entry. */
    coil__reactor_untrack(&s->tracked);
    coil_protocol *p = s->base.protocol;
    coil_producer *prod = s->producer;
    s->producer = NULL;
    if (prod && prod->ops->stop_producing)
        prod->ops->stop_producing(prod);
    while (s->head) {
        coil__chunk *c = s->head;
        s->head = c->next;
        free(c);
    }
    s->tail = NULL;
    s->queued = 0;
    coil_failure *reason = s->reason;
    s->reason = NULL;
    if (p) {
        if (s->connected && p->ops->connection_lost)
            p->ops->connection_lost(p, reason);
        p->transport = NULL;
        s->base.protocol = NULL;
        if (p->ops->destroy)
            p->ops->destroy(p);
    }
    s->lower->lost(s, reason);
    coil_failure_free(reason);
    s->lower->free(s);
}

static int teardown_soon(void *arg)
{
    teardown(arg);
    return 0;
}

/* The connection is over: release what is below now, tell the protocol
 * once no callback of ours is on the stack. */
static void finish(coil__stream *s, coil_failure *reason, int abort)
{
    if (s->state == COIL__STREAM_CLOSED) {
        coil_failure_free(reason);
        return;
    }
    s->state = COIL__STREAM_CLOSED;
    s->base.disconnecting = 1;
    s->reason = reason;
    s->lower->want_write(s, 0);
    s->lower->set_reading(s, 0);
    s->lower->close(s, abort);
    if (s->lingering)
        return; /* coil__stream_close_done() goes on */
    if (s->depth > 0) {
        s->free_pending = 1;
    } else if (coil_reactor_call_soon(s->base.reactor, teardown_soon, s) != 0) {
        /* Out of memory: tear down here rather than leak. */
        teardown(s);
    }
}

void coil__stream_close_done(coil__stream *s, coil_failure *reason)
{
    if (!s->lingering) {
        coil_failure_free(reason);
        return;
    }
    s->lingering = 0;
    if (reason) {
        coil_failure_free(s->reason);
        s->reason = reason;
    }
    /* At once when we can: the layer below is ending now, and whoever
     * learns of it after our protocol (a client factory) hears it from
     * inside that end. */
    if (s->depth > 0)
        s->free_pending = 1;
    else
        teardown(s);
}

static void enter(coil__stream *s)
{
    s->depth++;
}

static void leave(coil__stream *s)
{
    if (--s->depth == 0 && s->free_pending) {
        s->free_pending = 0;
        teardown(s);
    }
}

void coil__stream_hold(coil__stream *s)
{
    enter(s);
}

void coil__stream_release(coil__stream *s)
{
    leave(s);
}

static coil_failure *clean_close(void)
{
    return coil_failure_new(COIL_DOMAIN_COIL, COIL_ECLOSED, "connection closed cleanly");
}

/* ---- the write queue ------------------------------------------------------ */

static int append(coil__stream *s, const unsigned char *data, size_t len)
{
    while (len > 0) {
        coil__chunk *c = s->tail;
        if (!c || c->end == c->cap) {
            size_t cap = len > COIL__CHUNK_SIZE ? len : COIL__CHUNK_SIZE;
            c = malloc(sizeof *c + cap);
            if (!c)
                return COIL_ENOMEM;
            c->next = NULL;
            c->start = c->end = 0;
            c->cap = cap;
            if (s->tail)
                s->tail->next = c;
            else
                s->head = c;
            s->tail = c;
        }
        size_t n = c->cap - c->end < len ? c->cap - c->end : len;
        memcpy(c->data + c->end, data, n);
        c->end += n;
        s->queued += n;
        data += n;
        len -= n;
    }
    return 0;
}

static void consume(coil__stream *s, size_t n)
{
    s->queued -= n;
    while (n > 0 && s->head) {
        coil__chunk *c = s->head;
        size_t avail = c->end - c->start;
        if (n < avail) {
            c->start += n;
            return;
        }
        n -= avail;
        s->head = c->next;
        if (!s->head)
            s->tail = NULL;
        free(c); /* drained chunks go at once: no idle buffer is kept */
    }
}

/* A pull producer is asked for more while the queue is at or below the
 * low-water mark, in this loop: never from inside its own resume_producing
 * (a write it makes there only says it may go on), so a producer writing
 * small pieces to a fast socket does not recurse once per piece. */
static void pull_more(coil__stream *s)
{
    if (s->pulling) {
        s->pull_again = 1;
        return;
    }
    enter(s); /* the producer may close the connection */
    s->pulling = 1;
    do {
        s->pull_again = 0;
        coil_producer *p = s->producer;
        if (!p || s->streaming || s->state == COIL__STREAM_CLOSED ||
            s->queued > s->low_water)
            break;
        p->ops->resume_producing(p);
    } while (s->pull_again);
    s->pulling = 0;
    leave(s);
}

static void producer_check(coil__stream *s)
{
    coil_producer *p = s->producer;
    if (!p || s->state == COIL__STREAM_CLOSED)
        return;
    if (s->streaming) {
        if (!s->producer_paused && s->queued > s->high_water) {
            s->producer_paused = 1;
            p->ops->pause_producing(p);
        } else if (s->producer_paused && s->queued <= s->low_water) {
            s->producer_paused = 0;
            p->ops->resume_producing(p);
        }
    } else if (s->queued <= s->low_water) {
        pull_more(s);
    }
}

static void after_flush(coil__stream *s)
{
    if (s->queued > 0)
        return;
    s->lower->want_write(s, 0);
    if (s->state == COIL__STREAM_CLOSING) {
        finish(s, clean_close(), 0);
        return;
    }
    if (s->write_shut_requested && !s->write_shut) {
        s->write_shut = 1;
        int rc = s->lower->shutdown_write(s);
        if (rc < 0) {
            finish(s, coil_failure_from_errno(-rc, "shutting down the write side failed"),
                   1);
            return;
        }
        coil_protocol *p = s->base.protocol;
        if (p && p->ops->write_connection_lost) {
            enter(s);
            p->ops->write_connection_lost(p);
            leave(s);
        }
        if (s->read_shut && s->state == COIL__STREAM_OPEN)
            finish(s, clean_close(), 0);
    }
}

/* Send what is queued; returns 0 or the negative errno that broke it. */
static int flush(coil__stream *s)
{
    while (s->queued > 0) {
        struct iovec iov[MAX_IOV];
        int n = 0;
        for (coil__chunk *c = s->head; c && n < MAX_IOV; c = c->next) {
            iov[n].iov_base = c->data + c->start;
            iov[n].iov_len = c->end - c->start;
            n++;
        }
        ssize_t sent = s->lower->send(s, iov, n);
        if (sent < 0)
            return (int)sent;
        if (sent == 0)
            break;
        consume(s, (size_t)sent);
    }
    return 0;
}

static void lost_errno(coil__stream *s, int err, const char *what)
{
    coil_failure *cause = coil_failure_from_errno(err, "%s", what);
    finish(s,
           coil_failure_wrap(cause, COIL_DOMAIN_COIL, COIL_ECONNLOST, "connection lost"),
           1);
}

int coil__stream_writev(coil_transport *t, const struct iovec *iov, int iovcnt)
{
    coil__stream *s = (coil__stream *)t;
    if (iovcnt < 0 || (iovcnt > 0 && !iov))
        return COIL_EINVAL;
    if (s->state != COIL__STREAM_OPEN || s->write_shut_requested)
        return COIL_ECLOSED;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    int skip = 0;
    size_t off = 0;
    if (s->queued == 0) {
        /* Nothing queued: try to send at once, queue only the rest. */
        ssize_t sent = s->lower->send(s, iov, iovcnt > MAX_IOV ? MAX_IOV : iovcnt);
        if (sent < 0) {
            lost_errno(s, (int)-sent, "write failed");
            return 0; /* reported through connection_lost */
        }
        size_t left = (size_t)sent;
        while (skip < iovcnt && left >= iov[skip].iov_len) {
            left -= iov[skip].iov_len;
            skip++;
        }
        off = left;
    }
    for (int i = skip; i < iovcnt; i++) {
        size_t o = i == skip ? off : 0;
        if (append(s, (const unsigned char *)iov[i].iov_base + o, iov[i].iov_len - o) !=
            0) {
            coil_log(COIL_LOG_ERROR, LOG_MODULE, "out of memory queueing %zu bytes",
                     total);
            return COIL_ENOMEM;
        }
    }
    if (s->queued > 0)
        s->lower->want_write(s, 1);
    producer_check(s);
    return 0;
}

int coil__stream_write(coil_transport *t, const void *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    return coil__stream_writev(t, &iov, 1);
}

int coil_transport_send_file(coil_transport *t, int fd, off_t *offset, size_t len,
                             size_t *sent)
{
    *sent = 0;
    if (!t || fd < 0 || !offset)
        return COIL_EINVAL;
    if (t->ops->write != coil__stream_write)
        return COIL_ENOTSUP;
    coil__stream *s = (coil__stream *)t;
    if (!s->lower->send_file)
        return COIL_ENOTSUP;
    if (s->state != COIL__STREAM_OPEN || s->write_shut_requested)
        return COIL_ECLOSED;
    if (len == 0)
        return 0;
    if (s->queued > 0)
        return COIL_EAGAIN; /* queued bytes go first; the drain asks again */
    ssize_t n = s->lower->send_file(s, fd, *offset, len);
    if (n == -EINVAL || n == -ENOSYS || n == -EOVERFLOW)
        return COIL_ENOTSUP;
    if (n == -ENODATA || n == -EIO || n == -EBADF || n == -ENOMEM) {
        errno = (int)-n;
        return COIL_ESYSTEM;
    }
    if (n < 0) {
        lost_errno(s, (int)-n, "sendfile failed");
        return COIL_ECLOSED;
    }
    if (n == 0) {
        /* The socket is full: writable -> after_flush -> producer_check
         * asks the pull producer again. */
        s->lower->want_write(s, 1);
        return COIL_EAGAIN;
    }
    *offset += n;
    *sent = (size_t)n;
    if (s->pulling)
        s->pull_again = 1; /* it made progress: ask again once it returns */
    return 0;
}

void coil__stream_writable(coil__stream *s)
{
    if (s->state == COIL__STREAM_CLOSED)
        return;
    enter(s);
    int rc = flush(s);
    if (rc < 0)
        lost_errno(s, -rc, "write failed");
    else {
        after_flush(s);
        producer_check(s);
    }
    leave(s);
}

/* ---- closing ------------------------------------------------------------- */

int coil__stream_lose_connection(coil_transport *t)
{
    coil__stream *s = (coil__stream *)t;
    if (s->state != COIL__STREAM_OPEN)
        return 0;
    s->state = COIL__STREAM_CLOSING;
    s->base.disconnecting = 1;
    s->lower->set_reading(s, 0);
    if (s->queued == 0)
        finish(s, clean_close(), 0);
    return 0;
}

int coil__stream_abort_connection(coil_transport *t)
{
    coil__stream *s = (coil__stream *)t;
    if (s->state == COIL__STREAM_CLOSED)
        return 0;
    finish(s,
           coil_failure_new(COIL_DOMAIN_COIL, COIL_EABORTED,
                            "connection aborted by this side; %zu queued bytes dropped",
                            s->queued),
           1);
    return 0;
}

int coil__stream_lose_write_connection(coil_transport *t)
{
    coil__stream *s = (coil__stream *)t;
    if (s->state != COIL__STREAM_OPEN)
        return COIL_ECLOSED;
    if (s->write_shut_requested)
        return 0;
    s->write_shut_requested = 1;
    if (s->queued == 0) {
        enter(s);
        after_flush(s);
        leave(s);
    }
    return 0;
}

void coil__stream_lost(coil__stream *s, coil_failure *reason)
{
    finish(s, reason, 1);
}

/* ---- reading --------------------------------------------------------------- */

void coil__stream_connected(coil__stream *s)
{
    coil_protocol *p = s->base.protocol;
    s->connected = 1;
    enter(s);
    if (p && p->ops->connection_made)
        p->ops->connection_made(p);
    if (s->state == COIL__STREAM_OPEN && s->reading)
        s->lower->set_reading(s, 1);
    leave(s);
}

void coil__stream_data(coil__stream *s, const void *data, size_t len)
{
    coil_protocol *p = s->base.protocol;
    if (s->state == COIL__STREAM_CLOSED || !p || len == 0)
        return;
    enter(s);
    if (p->ops->data_received)
        p->ops->data_received(p, data, len);
    leave(s);
}

void coil__stream_eof(coil__stream *s)
{
    coil_protocol *p = s->base.protocol;
    if (s->state == COIL__STREAM_CLOSED || s->read_shut)
        return;
    s->read_shut = 1;
    s->lower->set_reading(s, 0);
    enter(s);
    if (s->state == COIL__STREAM_CLOSING) {
        /* Already closing: nothing more to tell. */
    } else if (p && p->ops->read_connection_lost) {
        p->ops->read_connection_lost(p);
        if (s->write_shut && s->state == COIL__STREAM_OPEN)
            finish(s, clean_close(), 0);
    } else {
        /* A protocol that does not handle half-close: the peer is done, so
         * finish sending and close. */
        coil__stream_lose_connection(&s->base);
    }
    leave(s);
}

int coil__stream_pause_reading(coil_transport *t)
{
    coil__stream *s = (coil__stream *)t;
    if (s->state == COIL__STREAM_CLOSED)
        return COIL_ECLOSED;
    s->reading = 0;
    s->lower->set_reading(s, 0);
    return 0;
}

int coil__stream_resume_reading(coil_transport *t)
{
    coil__stream *s = (coil__stream *)t;
    if (s->state == COIL__STREAM_CLOSED)
        return COIL_ECLOSED;
    s->reading = 1;
    if (s->state == COIL__STREAM_OPEN && !s->read_shut && s->connected)
        s->lower->set_reading(s, 1);
    return 0;
}

/* ---- producers, addresses, info --------------------------------------------- */

int coil__stream_register_producer(coil_transport *t, coil_producer *p, int streaming)
{
    coil__stream *s = (coil__stream *)t;
    if (!p || !p->ops)
        return COIL_EINVAL;
    if (s->producer)
        return COIL_EBUSY;
    if (s->state == COIL__STREAM_CLOSED)
        return COIL_ECLOSED;
    s->producer = p;
    s->streaming = streaming;
    s->producer_paused = 0;
    /* Push: assumed producing; paused at once if the queue is past the
     * mark already. Pull: asked for its first data now. */
    if (!streaming)
        pull_more(s);
    else
        producer_check(s);
    return 0;
}

int coil_transport_set_water_marks(coil_transport *t, size_t high, size_t low)
{
    if (!t || low > high)
        return COIL_EINVAL;
    /* Every kind built on this machinery (TCP, UNIX, memory, a layer's
     * plaintext queue) registers producers here; another kind has
     * no queue of ours to mark. */
    if (t->ops->register_producer != coil__stream_register_producer)
        return COIL_ENOTSUP;
    coil__stream *s = (coil__stream *)t;
    s->high_water = high;
    s->low_water = low;
    producer_check(s); /* the queue may be past a new mark already */
    return 0;
}

int coil__stream_unregister_producer(coil_transport *t)
{
    coil__stream *s = (coil__stream *)t;
    s->producer = NULL;
    s->producer_paused = 0;
    return 0;
}

int coil__stream_get_peer(const coil_transport *t, coil_address *out)
{
    const coil__stream *s = (const coil__stream *)t;
    return s->lower->get_peer(s, out);
}

int coil__stream_get_host(const coil_transport *t, coil_address *out)
{
    const coil__stream *s = (const coil__stream *)t;
    return s->lower->get_host(s, out);
}

int coil__stream_info(const coil_transport *t, coil_transport_info *out)
{
    const coil__stream *s = (const coil__stream *)t;
    memset(out, 0, sizeof *out);
    out->kind = t->ops->kind;
    out->write_queued = s->queued;
    out->high_water = s->high_water;
    out->low_water = s->low_water;
    out->reading = s->reading && !s->read_shut && s->state == COIL__STREAM_OPEN;
    out->peer_pid = -1;
    out->peer_uid = -1;
    out->peer_gid = -1;
    s->lower->info(s, out);
    if (out->n_layers == 0) /* a bottom transport that says no more */
        coil_transport_info_push(out, NULL, t->ops->kind);
    return 0;
}

int coil_transport_no_start_tls(coil_transport *t, void *tls_context, int server)
{
    return COIL_ENOTSUP;
}

size_t coil_transport_no_pending(const coil_transport *t)
{
    return 0;
}

void coil__stream_init(coil__stream *s, const coil_transport_ops *ops,
                       const coil__stream_lower *lower, coil_reactor *r,
                       coil_protocol *protocol)
{
    s->base.ops = ops;
    s->base.protocol = protocol;
    s->base.reactor = r;
    s->base.disconnecting = 0;
    s->lower = lower;
    s->high_water = COIL__STREAM_HIGH_WATER;
    s->low_water = COIL__STREAM_LOW_WATER;
    s->reading = 1;
    s->state = COIL__STREAM_OPEN;
    if (protocol)
        protocol->transport = &s->base;
    coil__stream_track(s);
}

/* ---- the reactor's registry ------------------------------------------------ */

static coil__stream *from_tracked(coil__tracked *t)
{
    return (coil__stream *)((char *)t - offsetof(coil__stream, tracked));
}

static void tracked_close(coil__tracked *t)
{
    coil__stream *s = from_tracked(t);
    if (s->state == COIL__STREAM_OPEN)
        coil_transport_lose_connection(&s->base);
}

static void tracked_abort(coil__tracked *t)
{
    /* A stream that is closed but lingering ends when the transport below it
     * does: that one is tracked too, and aborted. */
    coil__stream *s = from_tracked(t);
    if (s->state != COIL__STREAM_CLOSED)
        coil_transport_abort_connection(&s->base);
}

static const coil__track_ops stream_track_ops = {
    .close = tracked_close,
    .abort = tracked_abort,
};

void coil__stream_track(coil__stream *s)
{
    coil__reactor_track(s->base.reactor, &s->tracked, &stream_track_ops);
}

void coil__stream_set_upper(coil_transport *lower, coil__stream *upper)
{
    /* Every kind built on this machinery aborts through it. */
    if (lower && lower->ops->abort_connection == coil__stream_abort_connection)
        ((coil__stream *)lower)->tracked.upper = &upper->tracked;
}

/* ---- the stack in coil_transport_info -------------------------------------- */

coil_transport_layer_info *coil_transport_info_push(coil_transport_info *out,
                                                    const coil_transport_info *below,
                                                    const char *kind)
{
    if (below && below != out) {
        memcpy(out->stack, below->stack, sizeof out->stack);
        out->n_layers = below->n_layers;
        memcpy(out->layers, below->layers, sizeof out->layers);
    }
    /* "kind/below", cut at the end when too long. */
    char stack[sizeof out->stack];
    size_t k = strnlen(kind, sizeof stack - 2), b = strnlen(out->stack, sizeof stack);
    memcpy(stack, kind, k);
    if (b) {
        stack[k++] = '/';
        size_t room = sizeof stack - 1 - k;
        memcpy(stack + k, out->stack, b < room ? b : room);
        k += b < room ? b : room;
    }
    stack[k] = '\0';
    memcpy(out->stack, stack, sizeof stack);
    int n = out->n_layers < COIL_TRANSPORT_MAX_LAYERS ? out->n_layers
                                                      : COIL_TRANSPORT_MAX_LAYERS - 1;
    memmove(&out->layers[1], &out->layers[0], (size_t)n * sizeof out->layers[0]);
    out->n_layers = n + 1;
    coil_transport_layer_info *l = &out->layers[0];
    memset(l, 0, sizeof *l);
    snprintf(l->kind, sizeof l->kind, "%s", kind);
    return l;
}

const coil_transport_layer_info *
coil_transport_info_layer(const coil_transport_info *info, const char *kind)
{
    for (int i = 0; i < info->n_layers && i < COIL_TRANSPORT_MAX_LAYERS; i++)
        if (strcmp(info->layers[i].kind, kind) == 0)
            return &info->layers[i];
    return NULL;
}

/* ---- start_tls ----------------------------------------------------------------- */

static coil__start_tls_fn start_tls_hook;

void coil__stream_set_start_tls_hook(coil__start_tls_fn fn)
{
    start_tls_hook = fn;
}

int coil__stream_start_tls(coil_transport *t, void *tls_context, int server)
{
    coil__plugins_init(); /* the hook is set by a builtin plug-in */
    if (!start_tls_hook)
        return COIL_ENOTSUP;
    return start_tls_hook(t, tls_context, server);
}
