/* The netstring receiver (Twisted's NetstringReceiver); see
 * include/coil/netstring.h.
 *
 * The length's digits are parsed as they arrive (so an over-long length is
 * refused at once); the data and its ',' are buffered in buf[off..len) until
 * complete. The re-entrancy rules are those of the line receiver (line.c):
 * one delivery loop, never nested; the buffer is not moved under a running
 * callback (`retired`); destroy during delivery is deferred. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coil/log.h>
#include <coil/netstring.h>

#include "rxbuf.h"

#define LOG_MODULE "netstring"

enum { NS_LENGTH, NS_DATA };

/* ---- delivery ------------------------------------------------------------- */

static void free_and_destroy(coil_netstring_receiver *ns)
{
    coil__rxbuf_free(&ns->rx);
    if (ns->ops->destroy)
        ns->ops->destroy(ns);
}

/* Returns 1 when the callback destroyed `ns`. */
static int after_callback(coil_netstring_receiver *ns)
{
    if (coil__rx_after_callback(&ns->rx, ns->protocol.transport)) {
        free_and_destroy(ns);
        return 1;
    }
    return 0;
}

static const char *show_byte(char out[16], unsigned char c)
{
    if (c >= 0x20 && c < 0x7f)
        snprintf(out, 16, "'%c'", c);
    else
        snprintf(out, 16, "byte 0x%02x", c);
    return out;
}

/* Report bad input: nothing is delivered after it. Returns 1 when the
 * callback destroyed `ns`. */
static int bad(coil_netstring_receiver *ns, const char *message)
{
    ns->broken = 1;
    ns->rx.off = ns->rx.len;
    if (ns->ops->bad_input) {
        ns->ops->bad_input(ns, message);
        return after_callback(ns);
    }
    coil_log(COIL_LOG_DEBUG, LOG_MODULE, "%s; closing", message);
    ns->rx.closing = 1;
    if (ns->protocol.transport)
        coil_transport_lose_connection(ns->protocol.transport);
    return 0;
}

/* One byte of the length. Returns 1 when `ns` was destroyed. */
static int length_byte(coil_netstring_receiver *ns, unsigned char c)
{
    char msg[160], b[16];
    if (c >= '0' && c <= '9') {
        size_t d = (size_t)(c - '0');
        if (ns->digits == 1 && ns->want == 0)
            return bad(ns, "netstring length has a leading zero");
        if (d > ns->max_length || ns->want > (ns->max_length - d) / 10) {
            if (ns->digits == 0)
                snprintf(msg, sizeof msg,
                         "netstring length of at least %zu exceeds the limit of %zu", d,
                         ns->max_length);
            else
                snprintf(msg, sizeof msg,
                         "netstring length of at least %zu%zu exceeds the limit of %zu",
                         ns->want, d, ns->max_length);
            return bad(ns, msg);
        }
        ns->want = ns->want * 10 + d;
        ns->digits++;
        return 0;
    }
    if (c == ':' && ns->digits > 0) {
        ns->state = NS_DATA;
        return 0;
    }
    if (c == ':')
        return bad(ns, "netstring length is empty (':' before any digit)");
    snprintf(msg, sizeof msg, "netstring length: expected a digit%s, got %s",
             ns->digits ? " or ':'" : "", show_byte(b, c));
    return bad(ns, msg);
}

/* The loop; `delivering` is set. Returns 1 when `ns` was destroyed. */
static int run(coil_netstring_receiver *ns)
{
    coil_rxbuf *rx = &ns->rx;
    if (coil__receiver_transport_gone(ns->protocol.transport))
        rx->closing = 1;
    while (!ns->broken && !rx->closing && rx->off < rx->len) {
        if (ns->state == NS_LENGTH) {
            if (length_byte(ns, (unsigned char)rx->buf[rx->off++]))
                return 1;
            continue;
        }
        if (rx->len - rx->off <= ns->want)
            break; /* the data and its ',' are not all here yet */
        char *s = rx->buf + rx->off;
        size_t n = ns->want;
        if (s[n] != ',') {
            char msg[160], b[16];
            snprintf(msg, sizeof msg,
                     "netstring of %zu bytes not followed by ',' (got %s)", n,
                     show_byte(b, (unsigned char)s[n]));
            if (bad(ns, msg))
                return 1;
            continue;
        }
        s[n] = '\0';
        rx->off += n + 1;
        ns->state = NS_LENGTH;
        ns->want = ns->digits = 0;
        if (ns->ops->string_received)
            ns->ops->string_received(ns, s, n);
        if (after_callback(ns))
            return 1;
    }
    return 0;
}

/* ---- the protocol the transport sees ---------------------------------------- */

static void p_connection_made(coil_protocol *p)
{
    coil_netstring_receiver *ns = (coil_netstring_receiver *)p;
    if (ns->ops->connection_made)
        ns->ops->connection_made(ns);
}

static void p_data_received(coil_protocol *p, const void *data, size_t n)
{
    coil_netstring_receiver *ns = (coil_netstring_receiver *)p;
    if (ns->broken || !coil__rx_feed(&ns->rx, p->transport, data, n, LOG_MODULE))
        return;
    ns->rx.delivering = 1;
    if (run(ns))
        return;
    ns->rx.delivering = 0;
    coil__rxbuf_tidy(&ns->rx);
}

static void p_connection_lost(coil_protocol *p, const coil_failure *reason)
{
    coil_netstring_receiver *ns = (coil_netstring_receiver *)p;
    ns->rx.closing = 1;
    if (ns->ops->connection_lost)
        ns->ops->connection_lost(ns, reason);
}

static void p_destroy(coil_protocol *p)
{
    coil_netstring_receiver *ns = (coil_netstring_receiver *)p;
    if (coil__rx_destroy_now(&ns->rx))
        free_and_destroy(ns);
}

static const coil_protocol_ops netstring_protocol_ops = {
    .connection_made = p_connection_made,
    .data_received = p_data_received,
    .connection_lost = p_connection_lost,
    .destroy = p_destroy,
};

static const coil_netstring_ops no_ops = {0};

/* ---- the API ---------------------------------------------------------------- */

void coil_netstring_receiver_init(coil_netstring_receiver *ns,
                                  const coil_netstring_ops *ops)
{
    memset(ns, 0, sizeof *ns);
    ns->protocol.ops = &netstring_protocol_ops;
    ns->ops = ops ? ops : &no_ops;
    ns->max_length = COIL_NETSTRING_DEFAULT_MAX;
    ns->state = NS_LENGTH;
}

int coil_netstring_send(coil_netstring_receiver *ns, const void *data, size_t len)
{
    if (len > 0 && !data)
        return COIL_EINVAL;
    if (!ns->protocol.transport)
        return COIL_ECLOSED;
    char head[32];
    int hl = snprintf(head, sizeof head, "%zu:", len);
    /* "LEN:" and "," around the data, in one writev; no empty iovec (some
     * transports stop sending at one): "0:," is one piece. */
    struct iovec iov[3] = {{head, (size_t)hl}, {(void *)data, len}, {",", 1}};
    if (len == 0) {
        head[hl] = ',';
        iov[0].iov_len++;
        return coil_transport_writev(ns->protocol.transport, iov, 1);
    }
    return coil_transport_writev(ns->protocol.transport, iov, 3);
}
