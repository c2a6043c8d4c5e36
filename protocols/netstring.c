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

#define LOG_MODULE "netstring"
#define MIN_CAP    256

enum { NS_LENGTH, NS_DATA };

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

static int append(coil_netstring_receiver *ns, const void *data, size_t n)
{
    if (n > ns->cap - ns->len) {
        size_t live = ns->len - ns->off;
        if (n > SIZE_MAX - live)
            return COIL_ENOMEM;
        if (!ns->delivering && ns->off >= live && live + n <= ns->cap) {
            memmove(ns->buf, ns->buf + ns->off, live); /* paid by what was consumed */
        } else {
            size_t cap = ns->cap > MIN_CAP ? ns->cap : MIN_CAP;
            while (cap < live + n) {
                if (cap > SIZE_MAX / 2)
                    return COIL_ENOMEM;
                cap *= 2;
            }
            char *nb = malloc(cap);
            if (!nb)
                return COIL_ENOMEM;
            if (live)
                memcpy(nb, ns->buf + ns->off, live);
            if (ns->delivering && !ns->retired)
                ns->retired = ns->buf; /* the running callback may read it */
            else
                free(ns->buf);
            ns->buf = nb;
            ns->cap = cap;
        }
        ns->len = live;
        ns->off = 0;
    }
    memcpy(ns->buf + ns->len, data, n);
    ns->len += n;
    return 0;
}

static void tidy(coil_netstring_receiver *ns)
{
    size_t live = ns->len - ns->off;
    if (live == 0 || ns->broken) {
        free(ns->buf);
        ns->buf = NULL;
        ns->off = ns->len = ns->cap = 0;
        return;
    }
    if (ns->off > 0) {
        memmove(ns->buf, ns->buf + ns->off, live);
        ns->len = live;
        ns->off = 0;
    }
}

/* ---- delivery ------------------------------------------------------------- */

static void free_and_destroy(coil_netstring_receiver *ns)
{
    free(ns->buf);
    free(ns->retired);
    ns->buf = ns->retired = NULL;
    ns->off = ns->len = ns->cap = 0;
    if (ns->ops->destroy)
        ns->ops->destroy(ns);
}

/* Returns 1 when the callback destroyed `ns`. */
static int after_callback(coil_netstring_receiver *ns)
{
    free(ns->retired);
    ns->retired = NULL;
    if (ns->destroyed) {
        free_and_destroy(ns);
        return 1;
    }
    if (!ns->closing && transport_closing(ns->protocol.transport))
        ns->closing = 1;
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
    ns->off = ns->len;
    if (ns->ops->bad_input) {
        ns->ops->bad_input(ns, message);
        return after_callback(ns);
    }
    coil_log(COIL_LOG_DEBUG, LOG_MODULE, "%s; closing", message);
    ns->closing = 1;
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
    if (!ns->closing && transport_closing(ns->protocol.transport))
        ns->closing = 1;
    while (!ns->broken && !ns->closing && ns->off < ns->len) {
        if (ns->state == NS_LENGTH) {
            if (length_byte(ns, (unsigned char)ns->buf[ns->off++]))
                return 1;
            continue;
        }
        if (ns->len - ns->off <= ns->want)
            break; /* the data and its ',' are not all here yet */
        char *s = ns->buf + ns->off;
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
        ns->off += n + 1;
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
    if (ns->broken || ns->closing || n == 0)
        return;
    if (append(ns, data, n) != 0) {
        coil_log(COIL_LOG_ERROR, LOG_MODULE,
                 "out of memory buffering %zu bytes; aborting", n);
        ns->closing = 1;
        if (ns->protocol.transport)
            coil_transport_abort_connection(ns->protocol.transport);
        return;
    }
    if (ns->delivering)
        return; /* re-entered from a callback: the running loop gets to it */
    ns->delivering = 1;
    if (run(ns))
        return;
    ns->delivering = 0;
    tidy(ns);
}

static void p_connection_lost(coil_protocol *p, const coil_failure *reason)
{
    coil_netstring_receiver *ns = (coil_netstring_receiver *)p;
    ns->closing = 1;
    if (ns->ops->connection_lost)
        ns->ops->connection_lost(ns, reason);
}

static void p_destroy(coil_protocol *p)
{
    coil_netstring_receiver *ns = (coil_netstring_receiver *)p;
    if (ns->delivering) {
        ns->destroyed = 1; /* freed once the running callback returns */
        ns->closing = 1;
        return;
    }
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
