/* The line receiver (Twisted's LineReceiver); see include/coil/line.h.
 *
 * What arrives is appended to one buffer, buf[off..len), and delivered from
 * there by a single loop (deliver()). Callbacks run inside that loop and may
 * do anything: switch modes, pause, clear the buffer, feed more data (a
 * transport resumed from a callback may deliver at once), close, or even
 * destroy the receiver. So:
 *  - the loop is never nested: data arriving while it runs is appended and
 *    the running loop reaches it (`delivering`);
 *  - a callback may hold a pointer into the buffer, so while one runs the
 *    buffer is never moved or compacted: growing it makes a new one and
 *    keeps the old one (`retired`) until the callback returns;
 *  - destroy during delivery only marks the receiver (`destroyed`); the loop
 *    frees it once the callback has returned.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coil/line.h>
#include <coil/log.h>

#include "rxbuf.h"

#define LOG_MODULE  "line"
#define SENDF_STACK 512

/* ---- the transport ------------------------------------------------------ */

static void lose_connection(coil_line_receiver *lr)
{
    lr->rx.closing = 1;
    if (lr->protocol.transport)
        coil_transport_lose_connection(lr->protocol.transport);
}

/* Out of memory while buffering input: we cannot keep the stream's bytes,
 * so the connection cannot go on. */
static void out_of_memory(coil_line_receiver *lr, size_t n)
{
    coil_log(COIL_LOG_ERROR, LOG_MODULE, "out of memory buffering %zu bytes; aborting",
             n);
    lr->rx.closing = 1;
    if (lr->protocol.transport)
        coil_transport_abort_connection(lr->protocol.transport);
}

/* ---- the buffer ----------------------------------------------------------- */

/* The live bytes moved from rx.off to the front: the scan position moves
 * with them. */
static void moved(coil_line_receiver *lr, size_t old_off)
{
    lr->scan -= lr->scan > old_off ? old_off : lr->scan;
}

static int append(coil_line_receiver *lr, const void *data, size_t n)
{
    size_t old_off = lr->rx.off;
    int rc = coil__rxbuf_append(&lr->rx, data, n);
    if (lr->rx.off != old_off)
        moved(lr, old_off);
    return rc;
}

/* Put `data` before what is pending (set_line_mode's extra); the search
 * starts again at the front. */
static int prepend(coil_line_receiver *lr, const void *data, size_t n)
{
    if (!lr->rx.delivering && lr->rx.off >= n) {
        lr->rx.off -= n;
        memmove(lr->rx.buf + lr->rx.off, data, n);
        lr->scan = lr->rx.off;
        return 0;
    }
    size_t live = lr->rx.len - lr->rx.off;
    if (n > SIZE_MAX - live || coil__rxbuf_relocate(&lr->rx, data, n, live + n) != 0)
        return COIL_ENOMEM;
    lr->scan = 0;
    return 0;
}

static void tidy(coil_line_receiver *lr)
{
    size_t old_off = lr->rx.off;
    coil__rxbuf_tidy(&lr->rx);
    if (!lr->rx.buf)
        lr->scan = 0;
    else if (lr->rx.off != old_off)
        moved(lr, old_off);
}

/* ---- finding lines -------------------------------------------------------- */

static void delimiter(const coil_line_receiver *lr, const char **d, size_t *dl)
{
    if (lr->delimiter_len == 0 || lr->delimiter_len > COIL_LINE_MAX_DELIMITER) {
        *d = "\r\n"; /* settings are public: never act on a bad length */
        *dl = 2;
    } else {
        *d = lr->delimiter;
        *dl = lr->delimiter_len;
    }
}

/* The longest delimiter a partial line may end with: a partial line longer
 * than max_length plus this is over the limit whatever follows. */
static size_t longest_delimiter(const coil_line_receiver *lr)
{
    const char *d;
    size_t dl;
    delimiter(lr, &d, &dl);
    return lr->accept_lf && dl < 2 ? 2 : dl; /* "\r\n" under accept_lf */
}

static size_t sat_add(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/* Find the first line in buf[off..len): the one whose delimiter completes
 * first (the same wherever reads split the stream); when the delimiter and
 * a bare "\n" complete at the same byte, the longer delimiter wins. Sets the
 * line's length and the bytes it takes with its delimiter; returns 0 and
 * remembers where to resume when no line is complete. */
static int find_line(coil_line_receiver *lr, size_t *line_len, size_t *consume)
{
    const char *d;
    size_t dl;
    delimiter(lr, &d, &dl);
    if (dl != lr->scan_delim_len || lr->accept_lf != lr->scan_lf ||
        memcmp(d, lr->scan_delim, dl) != 0) {
        /* The settings changed: what was scanned must be scanned again. */
        memcpy(lr->scan_delim, d, dl);
        lr->scan_delim_len = dl;
        lr->scan_lf = lr->accept_lf;
        lr->scan = lr->rx.off;
    }
    size_t from = lr->scan > lr->rx.off ? lr->scan : lr->rx.off;
    const char *p = lr->rx.buf + from;
    size_t n = lr->rx.len - from;
    const char *hit = dl == 1 ? memchr(p, d[0], n) : memmem(p, n, d, dl);
    size_t end = 0, cons = 0; /* relative to off */
    if (hit) {
        end = (size_t)(hit - lr->rx.buf) - lr->rx.off;
        cons = end + dl;
    }
    if (lr->accept_lf) {
        /* A "\n" that completes before the delimiter does. */
        size_t limit = hit ? (size_t)(hit - p) + dl - 1 : n;
        const char *nl = memchr(p, '\n', limit);
        if (nl) {
            size_t ni = (size_t)(nl - lr->rx.buf) - lr->rx.off;
            cons = ni + 1;
            end = ni > 0 && lr->rx.buf[lr->rx.off + ni - 1] == '\r' ? ni - 1 : ni;
            hit = nl;
        }
    }
    if (!hit) {
        lr->scan = lr->rx.len - lr->rx.off >= dl ? lr->rx.len - (dl - 1) : lr->rx.off;
        return 0;
    }
    *line_len = end;
    *consume = cons;
    return 1;
}

/* ---- delivery ------------------------------------------------------------- */

static void free_and_destroy(coil_line_receiver *lr)
{
    coil__rxbuf_free(&lr->rx);
    lr->scan = 0;
    if (lr->ops->destroy)
        lr->ops->destroy(lr);
}

/* After each callback: stop if it destroyed us (returns 1: `lr` is gone) or
 * began closing the connection. */
static int after_callback(coil_line_receiver *lr)
{
    if (coil__rx_after_callback(&lr->rx, lr->protocol.transport)) {
        free_and_destroy(lr);
        return 1;
    }
    return 0;
}

static void too_long(coil_line_receiver *lr, const char *partial, size_t n)
{
    if (lr->ops->line_length_exceeded) {
        lr->ops->line_length_exceeded(lr, partial, n);
        return;
    }
    coil_log(COIL_LOG_DEBUG, LOG_MODULE, "line longer than %zu bytes; closing",
             lr->max_length);
    lose_connection(lr);
}

/* The loop; `delivering` is set. Returns 1 when `lr` was destroyed. */
static int run(coil_line_receiver *lr)
{
    if (coil__receiver_transport_gone(lr->protocol.transport))
        lr->rx.closing = 1;
    while (!lr->paused && !lr->rx.closing && lr->rx.off < lr->rx.len) {
        if (lr->raw) {
            const char *data = lr->rx.buf + lr->rx.off;
            size_t n = lr->rx.len - lr->rx.off;
            lr->rx.off = lr->scan = lr->rx.len;
            if (lr->ops->raw_data_received)
                lr->ops->raw_data_received(lr, data, n);
            if (after_callback(lr))
                return 1;
            continue;
        }
        size_t line_len, consume;
        size_t longest = longest_delimiter(lr);
        size_t cap_partial = sat_add(lr->max_length, longest);
        if (!find_line(lr, &line_len, &consume)) {
            size_t live = lr->rx.len - lr->rx.off;
            if (!lr->discarding && live <= cap_partial - 1)
                break; /* a partial line, within the limit so far */
            /* Over the limit with no end in sight: drop it, but keep what
             * could be the start of its delimiter, and skip the rest of
             * the line as it comes. */
            char *partial = lr->rx.buf + lr->rx.off;
            size_t plen = live < cap_partial ? live : cap_partial;
            int report = !lr->discarding;
            lr->discarding = 1;
            lr->rx.off = lr->rx.len - (live < longest - 1 ? live : longest - 1);
            if (lr->scan < lr->rx.off)
                lr->scan = lr->rx.off;
            if (!report)
                break;
            too_long(lr, partial, plen);
            if (after_callback(lr))
                return 1;
            continue;
        }
        char *line = lr->rx.buf + lr->rx.off;
        lr->rx.off += consume;
        lr->scan = lr->rx.off;
        if (lr->discarding) {
            lr->discarding = 0; /* the end of the over-long line */
            continue;
        }
        if (line_len > lr->max_length) {
            too_long(lr, line, consume < cap_partial ? consume : cap_partial);
        } else {
            line[line_len] = '\0'; /* over the delimiter, consumed already */
            if (lr->ops->line_received)
                lr->ops->line_received(lr, line, line_len);
        }
        if (after_callback(lr))
            return 1;
    }
    return 0;
}

/* Deliver what is buffered, unless the loop is already running further up
 * the stack (it will get there). Returns 1 when `lr` was destroyed. */
static int deliver(coil_line_receiver *lr)
{
    if (lr->rx.delivering)
        return 0;
    lr->rx.delivering = 1;
    if (run(lr))
        return 1;
    lr->rx.delivering = 0;
    tidy(lr);
    return 0;
}

/* ---- the protocol the transport sees ---------------------------------------- */

static void p_connection_made(coil_protocol *p)
{
    coil_line_receiver *lr = (coil_line_receiver *)p;
    if (lr->ops->connection_made)
        lr->ops->connection_made(lr);
}

static void p_data_received(coil_protocol *p, const void *data, size_t n)
{
    coil_line_receiver *lr = (coil_line_receiver *)p;
    if (lr->rx.closing || n == 0)
        return; /* nothing will be delivered again */
    if (lr->raw && !lr->paused && !lr->rx.delivering && lr->rx.off == lr->rx.len) {
        /* Raw bytes with nothing before them: hand them over uncopied. */
        lr->rx.delivering = 1;
        if (lr->ops->raw_data_received)
            lr->ops->raw_data_received(lr, data, n);
        if (after_callback(lr) || run(lr))
            return;
        lr->rx.delivering = 0;
        tidy(lr);
        return;
    }
    if (append(lr, data, n) != 0) {
        out_of_memory(lr, n);
        return;
    }
    deliver(lr); /* re-entered from a callback: the running loop gets to it */
}

static void p_read_connection_lost(coil_protocol *p)
{
    coil_line_receiver *lr = (coil_line_receiver *)p;
    lr->ops->read_connection_lost(lr); /* only in the table when set */
}

static void p_connection_lost(coil_protocol *p, const coil_failure *reason)
{
    coil_line_receiver *lr = (coil_line_receiver *)p;
    lr->rx.closing = 1;
    if (lr->ops->connection_lost)
        lr->ops->connection_lost(lr, reason);
}

static void p_destroy(coil_protocol *p)
{
    coil_line_receiver *lr = (coil_line_receiver *)p;
    if (coil__rx_destroy_now(&lr->rx))
        free_and_destroy(lr);
}

/* Two tables: a user without read_connection_lost gets the transport's
 * default for a half-close (lose the connection), as a bare protocol would. */
static const coil_protocol_ops line_protocol_ops = {
    .connection_made = p_connection_made,
    .data_received = p_data_received,
    .connection_lost = p_connection_lost,
    .destroy = p_destroy,
};

static const coil_protocol_ops line_protocol_half_ops = {
    .connection_made = p_connection_made,
    .data_received = p_data_received,
    .read_connection_lost = p_read_connection_lost,
    .connection_lost = p_connection_lost,
    .destroy = p_destroy,
};

static const coil_line_ops no_ops = {0};

/* ---- the API ---------------------------------------------------------------- */

void coil_line_receiver_init(coil_line_receiver *lr, const coil_line_ops *ops)
{
    memset(lr, 0, sizeof *lr);
    lr->ops = ops ? ops : &no_ops;
    lr->protocol.ops =
        lr->ops->read_connection_lost ? &line_protocol_half_ops : &line_protocol_ops;
    memcpy(lr->delimiter, "\r\n", 2);
    lr->delimiter_len = 2;
    lr->accept_lf = 1;
    lr->max_length = COIL_LINE_DEFAULT_MAX;
}

int coil_line_set_delimiter(coil_line_receiver *lr, const char *delim, size_t len)
{
    if (!delim || len == 0 || len > COIL_LINE_MAX_DELIMITER)
        return COIL_EINVAL;
    memcpy(lr->delimiter, delim, len);
    lr->delimiter_len = len;
    lr->accept_lf = 0;
    return 0;
}

int coil_line_send(coil_line_receiver *lr, const char *line, size_t len)
{
    const char *d;
    size_t dl;
    delimiter(lr, &d, &dl);
    if (len > 0 && !line)
        return COIL_EINVAL;
    /* A line holding a delimiter would reach the peer as two lines. */
    if (len > 0 &&
        (memmem(line, len, d, dl) || (lr->accept_lf && memchr(line, '\n', len))))
        return COIL_EINVAL;
    if (!lr->protocol.transport)
        return COIL_ECLOSED;
    struct iovec iov[2] = {{(void *)line, len}, {(void *)d, dl}};
    /* No empty iovec: some transports stop sending at one. */
    return len ? coil_transport_writev(lr->protocol.transport, iov, 2)
               : coil_transport_writev(lr->protocol.transport, iov + 1, 1);
}

int coil_line_vsendf(coil_line_receiver *lr, const char *fmt, va_list ap)
{
    char stack[SENDF_STACK];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(stack, sizeof stack, fmt, ap);
    int rc;
    if (n < 0) {
        rc = COIL_EINVAL;
    } else if ((size_t)n < sizeof stack) {
        rc = coil_line_send(lr, stack, (size_t)n);
    } else {
        char *heap = malloc((size_t)n + 1);
        if (!heap) {
            rc = COIL_ENOMEM;
        } else {
            vsnprintf(heap, (size_t)n + 1, fmt, again);
            rc = coil_line_send(lr, heap, (size_t)n);
            free(heap);
        }
    }
    va_end(again);
    return rc;
}

int coil_line_sendf(coil_line_receiver *lr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = coil_line_vsendf(lr, fmt, ap);
    va_end(ap);
    return rc;
}

void coil_line_set_raw_mode(coil_line_receiver *lr)
{
    lr->raw = 1;
    lr->discarding = 0;
    /* A partial line already buffered is raw data now: deliver it rather
     * than wait for more bytes that may never come. */
    deliver(lr);
}

void coil_line_set_line_mode(coil_line_receiver *lr, const void *extra, size_t len)
{
    lr->raw = 0;
    if (extra && len > 0 && !lr->rx.closing && prepend(lr, extra, len) != 0) {
        out_of_memory(lr, len);
        return;
    }
    deliver(lr);
}

void coil_line_pause(coil_line_receiver *lr)
{
    lr->paused = 1;
    if (lr->protocol.transport)
        coil_transport_pause_reading(lr->protocol.transport);
}

void coil_line_resume(coil_line_receiver *lr)
{
    lr->paused = 0;
    if (deliver(lr))
        return;
    /* Inside a callback the running loop delivers what is buffered; bytes
     * the transport then hands over are appended after them. */
    if (!lr->paused && !lr->rx.closing && lr->protocol.transport)
        coil_transport_resume_reading(lr->protocol.transport);
}

char *coil_line_clear_buffer(coil_line_receiver *lr, size_t *len)
{
    size_t n = lr->rx.len - lr->rx.off;
    char *copy = NULL;
    if (n > 0) {
        copy = malloc(n + 1);
        if (copy) {
            memcpy(copy, lr->rx.buf + lr->rx.off, n);
            copy[n] = '\0';
        }
    }
    lr->rx.off = lr->scan = lr->rx.len;
    if (!lr->rx.delivering)
        tidy(lr);
    if (len)
        *len = copy ? n : 0;
    return copy;
}
