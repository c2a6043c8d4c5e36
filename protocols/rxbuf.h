/* Private: the framing receivers' shared input buffer (coil_rxbuf in
 * include/coil/rxbuf.h). All functions return 0 or COIL_ENOMEM. */
#ifndef COIL_PROTOCOLS_RXBUF_H
#define COIL_PROTOCOLS_RXBUF_H

#include <coil/rxbuf.h>
#include <coil/transport.h>

/* Bytes not yet delivered. */
static inline size_t coil__rxbuf_live(const coil_rxbuf *b)
{
    return b->len - b->off;
}

/* Add `n` bytes after the live ones. The live bytes may move to the front
 * of the buffer (off becomes 0), never while a callback may read them. */
int coil__rxbuf_append(coil_rxbuf *b, const void *data, size_t n);

/* Move the live bytes, with `nfront` bytes of `front` before them, into a
 * new buffer of at least `need` bytes (off becomes 0). `front` may lie in
 * the old buffer. */
int coil__rxbuf_relocate(coil_rxbuf *b, const void *front, size_t nfront, size_t need);

/* Between reads: free an empty buffer (an idle connection holds none),
 * move a partial frame to the front, give back most of an oversized
 * buffer. Not while delivering. */
void coil__rxbuf_tidy(coil_rxbuf *b);

/* After a callback returned: the buffer it could read may go. */
void coil__rxbuf_callback_done(coil_rxbuf *b);

/* Free everything. */
void coil__rxbuf_free(coil_rxbuf *b);

/* data_received's common start: buffer `n` bytes unless closing; out of
 * memory aborts the connection (logged under `module`). Returns 1 when the
 * caller should run its delivery loop now: there is input and no loop is
 * running further up the stack (a re-entered call leaves it to that one). */
int coil__rx_feed(coil_rxbuf *b, coil_transport *t, const void *data, size_t n,
                  const char *module);

/* A protocol's destroy: during delivery it is deferred (returns 0: the
 * loop finishes it); otherwise returns 1 and the caller frees now. */
int coil__rx_destroy_now(coil_rxbuf *b);

/* 1 once the connection under a receiver is going away (lose_connection,
 * abort or the end): it delivers nothing more. */
static inline int coil__receiver_transport_gone(const coil_transport *t)
{
    return t && t->disconnecting;
}

/* After each callback: the buffer it could read may go. Returns 1 when the
 * callback destroyed the receiver: the caller frees it now and stops.
 * Otherwise notes whether the transport began closing. Inline: it runs
 * once per frame, and frames can be one byte long. */
static inline int coil__rx_after_callback(coil_rxbuf *b, const coil_transport *t)
{
    if (b->retired)
        coil__rxbuf_callback_done(b);
    if (b->destroyed)
        return 1;
    if (coil__receiver_transport_gone(t))
        b->closing = 1;
    return 0;
}

#endif
