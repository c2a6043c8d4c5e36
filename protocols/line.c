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

#define LOG_MODULE  "line"
#define MIN_CAP     256
#define SENDF_STACK 512

/* ---- the transport ------------------------------------------------------ */

/* The transport interface has no "is it closing?" query. A write fails with
 * COIL_ECLOSED once lose_connection or abort_connection has been called, but
 * also after a half-close (lose_write_connection), which must not stop us
 * reading. Asking an already half-closed transport to half-close is a no-op
 * that succeeds, while a closing one refuses with COIL_ECLOSED: so the second
 * call tells the two apart without changing anything. */
static int transport_closing(coil_transport *t)
{
    if (!t)
        return 0; /* not connected yet, or connection_lost has run (closing) */
    if (coil_transport_write(t, "", 0) != COIL_ECLOSED)
        return 0;
    return coil_transport_lose_write_connection(t) == COIL_ECLOSED;
}

static void lose_connection(coil_line_receiver *lr)
{
    lr->closing = 1;
    if (lr->protocol.transport)
        coil_transport_lose_connection(lr->protocol.transport);
}

/* Out of memory while buffering input: we cannot keep the stream's bytes,
 * so the connection cannot go on. */
static void out_of_memory(coil_line_receiver *lr, size_t n)
{
    coil_log(COIL_LOG_ERROR, LOG_MODULE, "out of memory buffering %zu bytes; aborting",
             n);
    lr->closing = 1;
    if (lr->protocol.transport)
        coil_transport_abort_connection(lr->protocol.transport);
}

/* ---- the buffer ----------------------------------------------------------- */

static void drop_storage(coil_line_receiver *lr, char *old)
{
    if (!old)
        return;
    if (lr->delivering && !lr->retired)
        lr->retired = old; /* the running callback may be reading it */
    else
        free(old); /* an intermediate buffer no callback has seen */
}

/* Move the live bytes, with `front` bytes before them, into a new buffer of
 * at least `need` bytes. */
static int relocate(coil_line_receiver *lr, const void *front, size_t nfront, size_t need)
{
    size_t live = lr->len - lr->off;
    size_t cap = lr->cap > MIN_CAP ? lr->cap : MIN_CAP;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return COIL_ENOMEM;
        cap *= 2;
    }
    char *nb = malloc(cap);
    if (!nb)
        return COIL_ENOMEM;
    if (nfront)
        memcpy(nb, front, nfront); /* `front` may lie in the old buffer */
    if (live)
        memcpy(nb + nfront, lr->buf + lr->off, live);
    size_t scan = lr->scan > lr->off ? lr->scan - lr->off : 0;
    drop_storage(lr, lr->buf);
    lr->buf = nb;
    lr->cap = cap;
    lr->off = 0;
    lr->len = nfront + live;
    lr->scan = nfront ? 0 : scan;
    return 0;
}

static int append(coil_line_receiver *lr, const void *data, size_t n)
{
    if (n > lr->cap - lr->len) {
        size_t live = lr->len - lr->off;
        if (n > SIZE_MAX - live)
            return COIL_ENOMEM;
        if (!lr->delivering && lr->off >= live && live + n <= lr->cap) {
            /* At least half the buffer is consumed: compacting is paid for
             * by the bytes consumed since the last move. */
            memmove(lr->buf, lr->buf + lr->off, live);
            lr->scan -= lr->scan > lr->off ? lr->off : lr->scan;
            lr->len = live;
            lr->off = 0;
        } else if (relocate(lr, NULL, 0, live + n) != 0) {
            return COIL_ENOMEM;
        }
    }
    memcpy(lr->buf + lr->len, data, n);
    lr->len += n;
    return 0;
}

/* Put `data` before what is pending (set_line_mode's extra). */
static int prepend(coil_line_receiver *lr, const void *data, size_t n)
{
    if (!lr->delivering && lr->off >= n) {
        lr->off -= n;
        memmove(lr->buf + lr->off, data, n);
        lr->scan = lr->off;
        return 0;
    }
    size_t live = lr->len - lr->off;
    if (n > SIZE_MAX - live)
        return COIL_ENOMEM;
    return relocate(lr, data, n, live + n);
}

/* Between reads: free an empty buffer (an idle connection holds none), move
 * a partial line to the front, give back most of an oversized buffer. */
static void tidy(coil_line_receiver *lr)
{
    size_t live = lr->len - lr->off;
    if (live == 0) {
        free(lr->buf);
        lr->buf = NULL;
        lr->off = lr->len = lr->cap = lr->scan = 0;
        return;
    }
    if (lr->off > 0) {
        memmove(lr->buf, lr->buf + lr->off, live);
        lr->scan -= lr->scan > lr->off ? lr->off : lr->scan;
        lr->len = live;
        lr->off = 0;
    }
    if (lr->cap > 4 * MIN_CAP && live <= lr->cap / 4) {
        size_t cap = lr->cap;
        while (cap / 2 >= 2 * live && cap / 2 >= MIN_CAP)
            cap /= 2;
        char *nb = realloc(lr->buf, cap);
        if (nb) {
            lr->buf = nb;
            lr->cap = cap;
        }
    }
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
        lr->scan = lr->off;
    }
    size_t from = lr->scan > lr->off ? lr->scan : lr->off;
    const char *p = lr->buf + from;
    size_t n = lr->len - from;
    const char *hit = dl == 1 ? memchr(p, d[0], n) : memmem(p, n, d, dl);
    size_t end = 0, cons = 0; /* relative to off */
    if (hit) {
        end = (size_t)(hit - lr->buf) - lr->off;
        cons = end + dl;
    }
    if (lr->accept_lf) {
        /* A "\n" that completes before the delimiter does. */
        size_t limit = hit ? (size_t)(hit - p) + dl - 1 : n;
        const char *nl = memchr(p, '\n', limit);
        if (nl) {
            size_t ni = (size_t)(nl - lr->buf) - lr->off;
            cons = ni + 1;
            end = ni > 0 && lr->buf[lr->off + ni - 1] == '\r' ? ni - 1 : ni;
            hit = nl;
        }
    }
    if (!hit) {
        lr->scan = lr->len - lr->off >= dl ? lr->len - (dl - 1) : lr->off;
        return 0;
    }
    *line_len = end;
    *consume = cons;
    return 1;
}

/* ---- delivery ------------------------------------------------------------- */

static void free_and_destroy(coil_line_receiver *lr)
{
    free(lr->buf);
    free(lr->retired);
    lr->buf = lr->retired = NULL;
    lr->off = lr->len = lr->cap = lr->scan = 0;
    if (lr->ops->destroy)
        lr->ops->destroy(lr);
}

/* After each callback: the buffer it could read may go; stop if it destroyed
 * us (returns 1: `lr` is gone) or began closing the connection. */
static int after_callback(coil_line_receiver *lr)
{
    free(lr->retired);
    lr->retired = NULL;
    if (lr->destroyed) {
        free_and_destroy(lr);
        return 1;
    }
    if (!lr->closing && transport_closing(lr->protocol.transport))
        lr->closing = 1;
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
    if (!lr->closing && transport_closing(lr->protocol.transport))
        lr->closing = 1;
    while (!lr->paused && !lr->closing && lr->off < lr->len) {
        if (lr->raw) {
            const char *data = lr->buf + lr->off;
            size_t n = lr->len - lr->off;
            lr->off = lr->scan = lr->len;
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
            size_t live = lr->len - lr->off;
            if (!lr->discarding && live <= cap_partial - 1)
                break; /* a partial line, within the limit so far */
            /* Over the limit with no end in sight: drop it, but keep what
             * could be the start of its delimiter, and skip the rest of
             * the line as it comes. */
            char *partial = lr->buf + lr->off;
            size_t plen = live < cap_partial ? live : cap_partial;
            int report = !lr->discarding;
            lr->discarding = 1;
            lr->off = lr->len - (live < longest - 1 ? live : longest - 1);
            if (lr->scan < lr->off)
                lr->scan = lr->off;
            if (!report)
                break;
            too_long(lr, partial, plen);
            if (after_callback(lr))
                return 1;
            continue;
        }
        char *line = lr->buf + lr->off;
        lr->off += consume;
        lr->scan = lr->off;
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
    if (lr->delivering)
        return 0;
    lr->delivering = 1;
    if (run(lr))
        return 1;
    lr->delivering = 0;
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
    if (lr->closing || n == 0)
        return; /* nothing will be delivered again */
    if (lr->delivering) {
        /* Re-entered from a callback (a transport resumed inside one may
         * deliver at once): the running loop gets to it. */
        if (append(lr, data, n) != 0)
            out_of_memory(lr, n);
        return;
    }
    if (lr->raw && !lr->paused && lr->off == lr->len) {
        /* Raw bytes with nothing before them: hand them over uncopied. */
        lr->delivering = 1;
        if (lr->ops->raw_data_received)
            lr->ops->raw_data_received(lr, data, n);
        if (after_callback(lr) || run(lr))
            return;
        lr->delivering = 0;
        tidy(lr);
        return;
    }
    if (append(lr, data, n) != 0) {
        out_of_memory(lr, n);
        return;
    }
    deliver(lr);
}

static void p_read_connection_lost(coil_protocol *p)
{
    coil_line_receiver *lr = (coil_line_receiver *)p;
    lr->ops->read_connection_lost(lr); /* only in the table when set */
}

static void p_connection_lost(coil_protocol *p, const coil_failure *reason)
{
    coil_line_receiver *lr = (coil_line_receiver *)p;
    lr->closing = 1;
    if (lr->ops->connection_lost)
        lr->ops->connection_lost(lr, reason);
}

static void p_destroy(coil_protocol *p)
{
    coil_line_receiver *lr = (coil_line_receiver *)p;
    if (lr->delivering) {
        /* A transport tearing down under our loop: finish after the
         * callback on the stack returns. */
        lr->destroyed = 1;
        lr->closing = 1;
        return;
    }
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
    if (extra && len > 0 && !lr->closing && prepend(lr, extra, len) != 0) {
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
    if (!lr->paused && !lr->closing && lr->protocol.transport)
        coil_transport_resume_reading(lr->protocol.transport);
}

char *coil_line_clear_buffer(coil_line_receiver *lr, size_t *len)
{
    size_t n = lr->len - lr->off;
    char *copy = NULL;
    if (n > 0) {
        copy = malloc(n + 1);
        if (copy) {
            memcpy(copy, lr->buf + lr->off, n);
            copy[n] = '\0';
        }
    }
    lr->off = lr->scan = lr->len;
    if (!lr->delivering)
        tidy(lr);
    if (len)
        *len = copy ? n : 0;
    return copy;
}
