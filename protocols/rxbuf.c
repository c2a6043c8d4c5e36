/* The framing receivers' shared input buffer; see rxbuf.h. */
#include "rxbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <coil/error.h>
#include <coil/log.h>

#define MIN_CAP 256

/* A buffer the running callback may be reading is kept until it returns;
 * an intermediate one no callback has seen goes at once. */
static void drop_storage(coil_rxbuf *b, char *old)
{
    if (!old)
        return;
    if (b->delivering && !b->retired)
        b->retired = old;
    else
        free(old);
}

int coil__rxbuf_relocate(coil_rxbuf *b, const void *front, size_t nfront, size_t need)
{
    size_t live = b->len - b->off;
    size_t cap = b->cap > MIN_CAP ? b->cap : MIN_CAP;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return COIL_ENOMEM;
        cap *= 2;
    }
    char *nb = malloc(cap);
    if (!nb)
        return COIL_ENOMEM;
    if (nfront)
        memcpy(nb, front, nfront);
    if (live)
        memcpy(nb + nfront, b->buf + b->off, live);
    drop_storage(b, b->buf);
    b->buf = nb;
    b->cap = cap;
    b->off = 0;
    b->len = nfront + live;
    return 0;
}

int coil__rxbuf_append(coil_rxbuf *b, const void *data, size_t n)
{
    if (n == 0)
        return 0;
    if (n > b->cap - b->len) {
        size_t live = b->len - b->off;
        if (n > SIZE_MAX - live)
            return COIL_ENOMEM;
        if (!b->delivering && b->off >= live && live + n <= b->cap) {
            /* At least half the buffer is consumed: compacting is paid for
             * by the bytes consumed since the last move. */
            memmove(b->buf, b->buf + b->off, live);
            b->len = live;
            b->off = 0;
        } else if (coil__rxbuf_relocate(b, NULL, 0, live + n) != 0) {
            return COIL_ENOMEM;
        }
    }
    memcpy(b->buf + b->len, data, n);
    b->len += n;
    return 0;
}

void coil__rxbuf_tidy(coil_rxbuf *b)
{
    size_t live = b->len - b->off;
    if (live == 0) {
        free(b->buf);
        b->buf = NULL;
        b->off = b->len = b->cap = 0;
        return;
    }
    if (b->off > 0) {
        memmove(b->buf, b->buf + b->off, live);
        b->len = live;
        b->off = 0;
    }
    if (b->cap > 4 * MIN_CAP && live <= b->cap / 4) {
        size_t cap = b->cap;
        while (cap / 2 >= 2 * live && cap / 2 >= MIN_CAP)
            cap /= 2;
        char *nb = realloc(b->buf, cap);
        if (nb) {
            b->buf = nb;
            b->cap = cap;
        }
    }
}

void coil__rxbuf_callback_done(coil_rxbuf *b)
{
    free(b->retired);
    b->retired = NULL;
}

void coil__rxbuf_free(coil_rxbuf *b)
{
    free(b->buf);
    free(b->retired);
    memset(b, 0, sizeof *b);
}

int coil__rx_feed(coil_rxbuf *b, coil_transport *t, const void *data, size_t n,
                  const char *module)
{
    if (b->closing || n == 0)
        return 0;
    if (coil__rxbuf_append(b, data, n) != 0) {
        coil_log(COIL_LOG_ERROR, module, "out of memory buffering %zu bytes; aborting",
                 n);
        b->closing = 1;
        if (t)
            coil_transport_abort_connection(t);
        return 0;
    }
    return !b->delivering;
}

int coil__rx_destroy_now(coil_rxbuf *b)
{
    if (b->delivering) {
        b->destroyed = 1; /* freed once the running callback returns */
        b->closing = 1;
        return 0;
    }
    return 1;
}
