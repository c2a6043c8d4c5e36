/* Length-prefixed receivers (Twisted's Int16StringReceiver and
 * Int32StringReceiver); see include/coil/prefixed.h.
 *
 * Frames are buffered in buf[off..len) until complete. The re-entrancy
 * rules are those of the line receiver (line.c): one delivery loop, never
 * nested; the buffer is not moved under a running callback (`retired`);
 * destroy during delivery is deferred. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <coil/log.h>
#include <coil/prefixed.h>

#define LOG_MODULE "prefixed"
#define MIN_CAP    256

/* See line.c: no "is it closing?" query exists; a write fails once the
 * connection is closing or half-closed, and half-closing again fails only
 * when it is closing. */
static int transport_closing(coil_transport *t)
{
    if (!t)
        return 0;
    if (coil_transport_write(t, "", 0) != COIL_ECLOSED)
        return 0;
    return coil_transport_lose_write_connection(t) == COIL_ECLOSED;
}

/* ---- the buffer ----------------------------------------------------------- */

static int append(coil_prefixed_receiver *pr, const void *data, size_t n)
{
    if (n > pr->cap - pr->len) {
        size_t live = pr->len - pr->off;
        if (n > SIZE_MAX - live)
            return COIL_ENOMEM;
        if (!pr->delivering && pr->off >= live && live + n <= pr->cap) {
            memmove(pr->buf, pr->buf + pr->off, live); /* paid by what was consumed */
        } else {
            size_t cap = pr->cap > MIN_CAP ? pr->cap : MIN_CAP;
            while (cap < live + n) {
                if (cap > SIZE_MAX / 2)
                    return COIL_ENOMEM;
                cap *= 2;
            }
            unsigned char *nb = malloc(cap);
            if (!nb)
                return COIL_ENOMEM;
            if (live)
                memcpy(nb, pr->buf + pr->off, live);
            if (pr->delivering && !pr->retired)
                pr->retired = pr->buf; /* the running callback may read it */
            else
                free(pr->buf);
            pr->buf = nb;
            pr->cap = cap;
        }
        pr->len = live;
        pr->off = 0;
    }
    memcpy(pr->buf + pr->len, data, n);
    pr->len += n;
    return 0;
}

static void tidy(coil_prefixed_receiver *pr)
{
    size_t live = pr->len - pr->off;
    if (live == 0 || pr->broken) {
        free(pr->buf);
        pr->buf = NULL;
        pr->off = pr->len = pr->cap = 0;
        return;
    }
    if (pr->off > 0) {
        memmove(pr->buf, pr->buf + pr->off, live);
        pr->len = live;
        pr->off = 0;
    }
}

/* ---- delivery ------------------------------------------------------------- */

static void free_and_destroy(coil_prefixed_receiver *pr)
{
    free(pr->buf);
    free(pr->retired);
    pr->buf = pr->retired = NULL;
    pr->off = pr->len = pr->cap = 0;
    if (pr->ops->destroy)
        pr->ops->destroy(pr);
}

/* Returns 1 when the callback destroyed `pr`. */
static int after_callback(coil_prefixed_receiver *pr)
{
    free(pr->retired);
    pr->retired = NULL;
    if (pr->destroyed) {
        free_and_destroy(pr);
        return 1;
    }
    if (!pr->closing && transport_closing(pr->protocol.transport))
        pr->closing = 1;
    return 0;
}

/* The loop; `delivering` is set. Returns 1 when `pr` was destroyed. */
static int run(coil_prefixed_receiver *pr)
{
    size_t prefix = (size_t)pr->prefix;
    if (!pr->closing && transport_closing(pr->protocol.transport))
        pr->closing = 1;
    while (!pr->broken && !pr->closing && pr->len - pr->off >= prefix) {
        const unsigned char *h = pr->buf + pr->off;
        uint64_t n = prefix == 2 ? (uint64_t)h[0] << 8 | h[1]
                                 : (uint64_t)h[0] << 24 | (uint64_t)h[1] << 16 |
                                       (uint64_t)h[2] << 8 | h[3];
        if (n > pr->max_length) {
            pr->broken = 1; /* nothing after it can be framed */
            pr->off = pr->len;
            if (pr->ops->length_limit_exceeded) {
                pr->ops->length_limit_exceeded(pr, n);
                return after_callback(pr);
            }
            coil_log(COIL_LOG_DEBUG, LOG_MODULE,
                     "string of %llu bytes announced, over the limit of %zu; closing",
                     (unsigned long long)n, pr->max_length);
            pr->closing = 1;
            if (pr->protocol.transport)
                coil_transport_lose_connection(pr->protocol.transport);
            return 0;
        }
        if (pr->len - pr->off - prefix < n)
            break; /* not all here yet */
        const unsigned char *data = h + prefix;
        pr->off += prefix + (size_t)n;
        if (pr->ops->string_received)
            pr->ops->string_received(pr, data, (size_t)n);
        if (after_callback(pr))
            return 1;
    }
    return 0;
}

/* ---- the protocol the transport sees ---------------------------------------- */

static void p_connection_made(coil_protocol *p)
{
    coil_prefixed_receiver *pr = (coil_prefixed_receiver *)p;
    if (pr->ops->connection_made)
        pr->ops->connection_made(pr);
}

static void p_data_received(coil_protocol *p, const void *data, size_t n)
{
    coil_prefixed_receiver *pr = (coil_prefixed_receiver *)p;
    if (pr->broken || pr->closing || n == 0)
        return;
    if (append(pr, data, n) != 0) {
        coil_log(COIL_LOG_ERROR, LOG_MODULE,
                 "out of memory buffering %zu bytes; aborting", n);
        pr->closing = 1;
        if (pr->protocol.transport)
            coil_transport_abort_connection(pr->protocol.transport);
        return;
    }
    if (pr->delivering)
        return; /* re-entered from a callback: the running loop gets to it */
    pr->delivering = 1;
    if (run(pr))
        return;
    pr->delivering = 0;
    tidy(pr);
}

static void p_connection_lost(coil_protocol *p, const coil_failure *reason)
{
    coil_prefixed_receiver *pr = (coil_prefixed_receiver *)p;
    pr->closing = 1;
    if (pr->ops->connection_lost)
        pr->ops->connection_lost(pr, reason);
}

static void p_destroy(coil_protocol *p)
{
    coil_prefixed_receiver *pr = (coil_prefixed_receiver *)p;
    if (pr->delivering) {
        pr->destroyed = 1; /* freed once the running callback returns */
        pr->closing = 1;
        return;
    }
    free_and_destroy(pr);
}

static const coil_protocol_ops prefixed_protocol_ops = {
    .connection_made = p_connection_made,
    .data_received = p_data_received,
    .connection_lost = p_connection_lost,
    .destroy = p_destroy,
};

static const coil_prefixed_ops no_ops = {0};

/* ---- the API ---------------------------------------------------------------- */

int coil_prefixed_receiver_init(coil_prefixed_receiver *pr, int prefix_bytes,
                                const coil_prefixed_ops *ops)
{
    memset(pr, 0, sizeof *pr);
    pr->protocol.ops = &prefixed_protocol_ops;
    pr->ops = ops ? ops : &no_ops;
    pr->max_length = COIL_PREFIXED_DEFAULT_MAX;
    if (prefix_bytes != 2 && prefix_bytes != 4) {
        pr->broken = 1; /* safe to hand to a transport: it delivers nothing */
        return COIL_EINVAL;
    }
    pr->prefix = prefix_bytes;
    return 0;
}

int coil_prefixed_send(coil_prefixed_receiver *pr, const void *data, size_t len)
{
    unsigned char head[4];
    if ((len > 0 && !data) || (pr->prefix != 2 && pr->prefix != 4))
        return COIL_EINVAL;
    if (pr->prefix == 2) {
        if (len > 0xffff)
            return COIL_EINVAL;
        head[0] = (unsigned char)(len >> 8);
        head[1] = (unsigned char)len;
    } else {
        if ((uint64_t)len > 0xffffffffu)
            return COIL_EINVAL;
        head[0] = (unsigned char)((uint64_t)len >> 24);
        head[1] = (unsigned char)(len >> 16);
        head[2] = (unsigned char)(len >> 8);
        head[3] = (unsigned char)len;
    }
    if (!pr->protocol.transport)
        return COIL_ECLOSED;
    struct iovec iov[2] = {{head, (size_t)pr->prefix}, {(void *)data, len}};
    /* No empty iovec: some transports stop sending at one. */
    return coil_transport_writev(pr->protocol.transport, iov, len ? 2 : 1);
}
