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

#include "rxbuf.h"

#define LOG_MODULE "prefixed"

/* ---- delivery ------------------------------------------------------------- */

static void free_and_destroy(coil_prefixed_receiver *pr)
{
    coil__rxbuf_free(&pr->rx);
    if (pr->ops->destroy)
        pr->ops->destroy(pr);
}

/* Returns 1 when the callback destroyed `pr`. */
static int after_callback(coil_prefixed_receiver *pr)
{
    if (coil__rx_after_callback(&pr->rx, pr->protocol.transport)) {
        free_and_destroy(pr);
        return 1;
    }
    return 0;
}

/* The loop; `delivering` is set. Returns 1 when `pr` was destroyed. */
static int run(coil_prefixed_receiver *pr)
{
    size_t prefix = (size_t)pr->prefix;
    coil_rxbuf *rx = &pr->rx;
    if (coil__receiver_transport_gone(pr->protocol.transport))
        rx->closing = 1;
    while (!pr->broken && !rx->closing && rx->len - rx->off >= prefix) {
        const unsigned char *h = (const unsigned char *)rx->buf + rx->off;
        uint64_t n = prefix == 2 ? (uint64_t)h[0] << 8 | h[1]
                                 : (uint64_t)h[0] << 24 | (uint64_t)h[1] << 16 |
                                       (uint64_t)h[2] << 8 | h[3];
        if (n > pr->max_length) {
            pr->broken = 1; /* nothing after it can be framed */
            rx->off = rx->len;
            if (pr->ops->length_limit_exceeded) {
                pr->ops->length_limit_exceeded(pr, n);
                return after_callback(pr);
            }
            coil_log(COIL_LOG_DEBUG, LOG_MODULE,
                     "string of %llu bytes announced, over the limit of %zu; closing",
                     (unsigned long long)n, pr->max_length);
            rx->closing = 1;
            if (pr->protocol.transport)
                coil_transport_lose_connection(pr->protocol.transport);
            return 0;
        }
        if (rx->len - rx->off - prefix < n)
            break; /* not all here yet */
        const unsigned char *data = h + prefix;
        rx->off += prefix + (size_t)n;
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
    if (pr->broken || !coil__rx_feed(&pr->rx, p->transport, data, n, LOG_MODULE))
        return;
    pr->rx.delivering = 1;
    if (run(pr))
        return;
    pr->rx.delivering = 0;
    coil__rxbuf_tidy(&pr->rx);
}

static void p_connection_lost(coil_protocol *p, const coil_failure *reason)
{
    coil_prefixed_receiver *pr = (coil_prefixed_receiver *)p;
    pr->rx.closing = 1;
    if (pr->ops->connection_lost)
        pr->ops->connection_lost(pr, reason);
}

static void p_destroy(coil_protocol *p)
{
    coil_prefixed_receiver *pr = (coil_prefixed_receiver *)p;
    if (coil__rx_destroy_now(&pr->rx))
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
