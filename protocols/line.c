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
#define SLICE       (64 * 1024)

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

/* Search everything pending again (its start changed, or the settings). */
static void rescan(coil_line_receiver *lr)
{
    lr->scan = lr->scan_nl = lr->rx.off;
    lr->scan_hit = lr->scan_nl_hit = 0;
}

/* A search position after the live bytes moved from old_off to rx.off; one
 * before old_off was stale (what it found is consumed): start again. */
static size_t moved_pos(const coil_line_receiver *lr, size_t pos, size_t old_off,
                        int *hit)
{
    if (pos < old_off) {
        *hit = 0;
        return lr->rx.off;
    }
    return pos - old_off + lr->rx.off;
}

static void moved(coil_line_receiver *lr, size_t old_off)
{
    lr->scan = moved_pos(lr, lr->scan, old_off, &lr->scan_hit);
    lr->scan_nl = moved_pos(lr, lr->scan_nl, old_off, &lr->scan_nl_hit);
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
        rescan(lr);
        return 0;
    }
    size_t live = lr->rx.len - lr->rx.off;
    if (n > SIZE_MAX - live || coil__rxbuf_relocate(&lr->rx, data, n, live + n) != 0)
        return COIL_ENOMEM;
    rescan(lr);
    return 0;
}

static void tidy(coil_line_receiver *lr)
{
    size_t old_off = lr->rx.off;
    coil__rxbuf_tidy(&lr->rx);
    if (!lr->rx.buf)
        rescan(lr);
    else if (lr->rx.off != old_off)
        moved(lr, old_off);
}

/* ---- finding lines -------------------------------------------------------- */

static const char crlf[COIL_LINE_MAX_DELIMITER] = "\r\n";

/* The delimiter in force: COIL_LINE_MAX_DELIMITER bytes at *d, the first
 * *dl of them used. */
static void delimiter(const coil_line_receiver *lr, const char **d, size_t *dl)
{
    if (lr->delimiter_len == 0 || lr->delimiter_len > COIL_LINE_MAX_DELIMITER) {
        *d = crlf; /* settings are public: never act on a bad length */
        *dl = 2;
    } else {
        *d = lr->delimiter;
        *dl = lr->delimiter_len;
    }
}

static size_t sat_add(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/* The settings a run of lines is delivered under. They are public and a
 * callback may change them: after each line they are compared with what
 * was taken (whole arrays of constant size: a few compares, no call). */
typedef struct line_settings {
    char delimiter[COIL_LINE_MAX_DELIMITER]; /* lr->delimiter as taken */
    size_t delimiter_len;                    /* lr->delimiter_len as taken */
    int accept_lf;
    size_t max_length;
    const char *d; /* the delimiter in force: d[0..dl) */
    size_t dl;
    /* The longest delimiter a partial line may end with ("\r\n" under
     * accept_lf): a partial line longer than max_length plus this is over
     * the limit whatever follows. */
    size_t longest;
    size_t cap_partial; /* max_length + longest */
    /* accept_lf with a delimiter ending in "\n" ("\r\n", the default):
     * every line ends at a "\n", so the search is for "\n" alone. */
    int lf_only;
    int crlf; /* lf_only with the delimiter "\r\n" */
} line_settings;

static void settings_take(coil_line_receiver *lr, line_settings *s)
{
    memcpy(s->delimiter, lr->delimiter, COIL_LINE_MAX_DELIMITER);
    s->delimiter_len = lr->delimiter_len;
    s->accept_lf = lr->accept_lf;
    s->max_length = lr->max_length;
    delimiter(lr, &s->d, &s->dl);
    s->longest = s->accept_lf && s->dl < 2 ? 2 : s->dl;
    s->cap_partial = sat_add(s->max_length, s->longest);
    s->lf_only = s->accept_lf && s->d[s->dl - 1] == '\n';
    s->crlf = s->lf_only && s->dl == 2 && s->d[0] == '\r';
    if (s->dl != lr->scan_delim_len || s->accept_lf != lr->scan_lf ||
        memcmp(s->d, lr->scan_delim, COIL_LINE_MAX_DELIMITER) != 0) {
        /* What was searched must be searched again (a change in the unused
         * tail of the array only costs a needless search). */
        memcpy(lr->scan_delim, s->d, COIL_LINE_MAX_DELIMITER);
        lr->scan_delim_len = s->dl;
        lr->scan_lf = s->accept_lf;
        rescan(lr);
    }
}

static inline int settings_same(const coil_line_receiver *lr, const line_settings *s)
{
    return lr->delimiter_len == s->delimiter_len && lr->accept_lf == s->accept_lf &&
           lr->max_length == s->max_length &&
           memcmp(lr->delimiter, s->delimiter, COIL_LINE_MAX_DELIMITER) == 0;
}

/* 1 when p[0..dl) is the delimiter; dl is at most COIL_LINE_MAX_DELIMITER
 * and usually 2: a loop, not a call. */
static inline int starts_with(const char *p, const char *d, size_t dl)
{
    for (size_t i = 0; i < dl; i++)
        if (p[i] != d[i])
            return 0;
    return 1;
}

/* The first delimiter d[0..dl) in p[0..n), n >= dl, or NULL. memchr finds
 * candidates (glibc's memmem walks short needles a byte at a time). */
static inline const char *find_delimiter(const char *p, size_t n, const char *d,
                                         size_t dl)
{
    if (starts_with(p, d, dl))
        return p;                    /* short lines: no search to set up */
    const char *last = p + (n - dl); /* the last place one may start */
    for (p++; p <= last; p++) {
        p = memchr(p, d[0], (size_t)(last - p) + 1);
        if (!p)
            return NULL;
        if (starts_with(p, d, dl))
            return p;
    }
    return NULL;
}

/* Find the first line in buf[off..len): the one whose delimiter completes
 * first (the same wherever reads split the stream); when the delimiter and
 * a bare "\n" complete at the same byte, the longer delimiter wins. Sets the
 * line's length and the bytes it takes with its delimiter; returns 0 when no
 * line is complete.
 *
 * Each search resumes where the last one stopped, and a delimiter or "\n"
 * found ahead is remembered until the bytes before it are consumed: every
 * byte is searched once, however the lines end (searching the whole rest
 * for "\r\n" at each bare "\n" made a stream of "\n" quadratic). */
static inline int find_line(coil_line_receiver *lr, const line_settings *s,
                            size_t *line_len, size_t *consume)
{
    const char *buf = lr->rx.buf, *d = s->d;
    size_t off = lr->rx.off, len = lr->rx.len, dl = s->dl;
    if (s->lf_only) {
        /* The first "\n" ends the line; the delimiter wins if it ends
         * there too. */
        if (lr->scan_nl_hit ? lr->scan_nl < off : lr->scan_nl < len) {
            size_t at = lr->scan_nl < off ? off : lr->scan_nl;
            const char *p = buf + at;
            const char *nl = *p == '\n' ? p : memchr(p, '\n', len - at);
            lr->scan_nl_hit = nl != NULL;
            lr->scan_nl = nl ? (size_t)(nl - buf) : len;
        }
        if (!lr->scan_nl_hit)
            return 0;
        size_t ni = lr->scan_nl - off; /* the "\n", relative to off */
        *consume = ni + 1;
        if (ni + 1 >= dl && starts_with(buf + lr->scan_nl + 1 - dl, d, dl))
            *line_len = ni + 1 - dl;
        else
            *line_len = ni > 0 && buf[lr->scan_nl - 1] == '\r' ? ni - 1 : ni;
        return 1;
    }
    /* Search on when what was found has been consumed, or when nothing was
     * and new bytes came (scan stops dl - 1 bytes from the end). */
    if (lr->scan_hit ? lr->scan < off : len - lr->scan >= dl) {
        size_t at = lr->scan < off ? off : lr->scan;
        const char *hit =
            len - at >= dl ? find_delimiter(buf + at, len - at, d, dl) : NULL;
        lr->scan_hit = hit != NULL;
        /* Not found: a delimiter may start in the last dl - 1 bytes. */
        lr->scan = hit ? (size_t)(hit - buf) : len - at >= dl ? len - (dl - 1) : at;
    }
    size_t end = lr->scan - off, cons = end + dl; /* relative to off */
    int found = lr->scan_hit;
    if (s->accept_lf) {
        /* A "\n" that completes before the delimiter does. */
        size_t stop = found ? lr->scan + dl - 1 : len;
        if (lr->scan_nl_hit ? lr->scan_nl < off : lr->scan_nl < stop) {
            size_t at = lr->scan_nl < off ? off : lr->scan_nl;
            const char *p = buf + at, *nl = NULL;
            if (at < stop)
                nl = *p == '\n' ? p : memchr(p, '\n', stop - at);
            lr->scan_nl_hit = nl != NULL;
            lr->scan_nl = nl ? (size_t)(nl - buf) : at < stop ? stop : at;
        }
        if (lr->scan_nl_hit && lr->scan_nl < stop) {
            size_t ni = lr->scan_nl - off;
            found = 1;
            cons = ni + 1;
            end = ni > 0 && buf[lr->scan_nl - 1] == '\r' ? ni - 1 : ni;
        }
    }
    *line_len = end;
    *consume = cons;
    return found;
}

/* ---- delivery ------------------------------------------------------------- */

static __attribute__((noinline)) void free_and_destroy(coil_line_receiver *lr)
{
    coil__rxbuf_free(&lr->rx);
    rescan(lr);
    if (lr->ops->destroy)
        lr->ops->destroy(lr);
}

/* After each callback: stop if it destroyed us (returns 1: `lr` is gone) or
 * began closing the connection. */
static inline int after_callback(coil_line_receiver *lr)
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

enum { STOP, MORE, GONE };

/* Deliver the next line, or deal with a partial one, under settings `s`.
 * Returns MORE when the loop may go on, STOP when it waits for input, GONE
 * when `lr` was destroyed. */
static inline int next_line(coil_line_receiver *lr, const line_settings *s)
{
    size_t line_len, consume;
    if (!find_line(lr, s, &line_len, &consume)) {
        size_t live = lr->rx.len - lr->rx.off;
        if (!lr->discarding && live <= s->cap_partial - 1)
            return STOP; /* a partial line, within the limit so far */
        /* Over the limit with no end in sight: drop it, but keep what
         * could be the start of its delimiter, and skip the rest of
         * the line as it comes. */
        char *partial = lr->rx.buf + lr->rx.off;
        size_t plen = live < s->cap_partial ? live : s->cap_partial;
        int report = !lr->discarding;
        lr->discarding = 1;
        lr->rx.off = lr->rx.len - (live < s->longest - 1 ? live : s->longest - 1);
        if (!report)
            return STOP;
        too_long(lr, partial, plen);
        return after_callback(lr) ? GONE : MORE;
    }
    char *line = lr->rx.buf + lr->rx.off;
    lr->rx.off += consume;
    if (lr->discarding) {
        lr->discarding = 0; /* the end of the over-long line */
        return MORE;
    }
    if (line_len > s->max_length) {
        too_long(lr, line, consume < s->cap_partial ? consume : s->cap_partial);
    } else {
        line[line_len] = '\0'; /* over the delimiter, consumed already */
        if (lr->ops->line_received)
            lr->ops->line_received(lr, line, line_len);
    }
    return after_callback(lr) ? GONE : MORE;
}

/* 1 while there is input the receiver may deliver now. */
static inline int may_deliver(const coil_line_receiver *lr)
{
    return !lr->paused && !lr->rx.closing && lr->rx.off < lr->rx.len;
}

/* next_line's loop cut to the bone for the common case under accept_lf:
 * lines ending in "\n" before any delimiter could, of at most max_length,
 * not discarding, with a line_received callback. A stream of empty lines
 * costs a few instructions a line, about what a bare memchr loop does.
 * Returns MORE, the search state saved, at a line it leaves to
 * next_line. */
static int lf_lines(coil_line_receiver *lr, const line_settings *s)
{
    for (;;) {
        char *buf = lr->rx.buf;
        size_t off = lr->rx.off, len = lr->rx.len, at = lr->scan_nl;
        char *nl;
        if (lr->scan_nl_hit && at >= off) {
            nl = buf + at;
        } else {
            if (at < off)
                at = off;
            if (at >= len)
                nl = NULL; /* searched to the end already */
            else
                nl = buf[at] == '\n' ? buf + at : memchr(buf + at, '\n', len - at);
            if (!nl) {
                lr->scan_nl = len;
                lr->scan_nl_hit = 0;
                return MORE;
            }
        }
        size_t nli = (size_t)(nl - buf), ni = nli - off, line_len; /* the "\n" */
        if (s->crlf) {
            line_len = ni > 0 && nl[-1] == '\r' ? ni - 1 : ni;
        } else if (s->lf_only) {
            if (ni + 1 >= s->dl && starts_with(nl + 1 - s->dl, s->d, s->dl))
                line_len = ni + 1 - s->dl; /* the delimiter ends here too: it wins */
            else
                line_len = ni > 0 && nl[-1] == '\r' ? ni - 1 : ni;
        } else if (lr->scan >= off && nli + 1 < lr->scan + s->dl) {
            /* No delimiter starts before scan: this "\n" ends the line. */
            line_len = ni > 0 && nl[-1] == '\r' ? ni - 1 : ni;
        } else {
            line_len = SIZE_MAX; /* the delimiter may come first: search */
        }
        if (line_len > s->max_length) {
            lr->scan_nl = (size_t)(nl - buf);
            lr->scan_nl_hit = 1;
            return MORE;
        }
        lr->rx.off = off + ni + 1;  /* the found "\n" is behind off now: stale */
        buf[off + line_len] = '\0'; /* over the delimiter, consumed already */
        lr->ops->line_received(lr, buf + off, line_len);
        if (after_callback(lr))
            return GONE;
        if (!may_deliver(lr) || lr->raw || lr->discarding || !settings_same(lr, s))
            return MORE;
    }
}

/* The loop; `delivering` is set. Returns 1 when `lr` was destroyed. */
static int run(coil_line_receiver *lr)
{
    if (coil__receiver_transport_gone(lr->protocol.transport))
        lr->rx.closing = 1;
    while (may_deliver(lr)) {
        if (lr->raw) {
            const char *data = lr->rx.buf + lr->rx.off;
            size_t n = lr->rx.len - lr->rx.off;
            lr->rx.off = lr->rx.len;
            if (lr->ops->raw_data_received)
                lr->ops->raw_data_received(lr, data, n);
            if (after_callback(lr))
                return 1;
            continue;
        }
        /* Lines, as long as nothing changes: the settings are taken once,
         * not per line (a stream of empty lines is the worst case). */
        line_settings s;
        settings_take(lr, &s);
        int rc;
        do {
            rc = MORE;
            if (s.accept_lf && !lr->discarding && lr->ops->line_received)
                rc = lf_lines(lr, &s);
            if (rc == MORE && may_deliver(lr) && !lr->raw && settings_same(lr, &s))
                rc = next_line(lr, &s); /* one line the general way */
        } while (rc == MORE && may_deliver(lr) && !lr->raw && settings_same(lr, &s));
        if (rc == GONE)
            return 1;
        if (rc == STOP)
            break;
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
    if (lr->pending_len) {
        /* Re-entered while a read is being sliced: its rest comes first. */
        const char *rest = lr->pending;
        size_t rest_len = lr->pending_len;
        lr->pending_len = 0;
        if (append(lr, rest, rest_len) != 0) {
            out_of_memory(lr, rest_len);
            return;
        }
    }
    const char *in = data;
    while (n > 0) {
        /* A large read goes in slices, each delivered before the next is
         * copied, so the buffer stays small and in cache rather than
         * growing to the whole read (16 MiB of empty lines in one piece
         * cost a third more). Only while lines can be delivered now: when
         * re-entered, paused or raw, the rest is buffered at once. */
        size_t k = n;
        if (k > SLICE && !lr->rx.delivering && !lr->paused && !lr->raw)
            k = SLICE;
        if (append(lr, in, k) != 0) {
            out_of_memory(lr, n);
            return;
        }
        /* The rest of the read counts as buffered (clear_buffer takes it). */
        lr->pending = in + k;
        lr->pending_len = n - k;
        /* Re-entered from a callback: the running loop gets to it. */
        if (deliver(lr))
            return; /* destroyed */
        in = lr->pending;
        n = lr->pending_len;
        lr->pending = NULL;
        lr->pending_len = 0;
        if (lr->rx.closing)
            return; /* nothing will be delivered again */
    }
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
    size_t live = lr->rx.len - lr->rx.off, n = live + lr->pending_len;
    char *copy = NULL;
    if (n > 0) {
        copy = malloc(n + 1);
        if (copy) {
            if (live)
                memcpy(copy, lr->rx.buf + lr->rx.off, live);
            if (lr->pending_len)
                memcpy(copy + live, lr->pending, lr->pending_len);
            copy[n] = '\0';
        }
    }
    lr->pending_len = 0; /* the rest of a read being sliced goes too */
    lr->rx.off = lr->rx.len;
    if (!lr->rx.delivering)
        tidy(lr);
    if (len)
        *len = copy ? n : 0;
    return copy;
}
