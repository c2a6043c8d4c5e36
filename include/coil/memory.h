/* coil — in-memory transports for deterministic tests of any protocol or
 * layer.
 *
 * Two tools:
 *  - coil_memory_pair: two protocols joined in memory, as if by a socket
 *    pair. Bytes written on one side arrive at the other on a later pass of
 *    the reactor (run coil_reactor_advance(r, 0) or coil_reactor_iterate under
 *    a fake clock); each direction holds at most `window` bytes in flight,
 *    so a slow reader stops a fast writer exactly as a kernel socket buffer
 *    does, and the pair passes the transport conformance suite.
 *  - coil_memory_transport: one transport whose far end is the test itself
 *    (Twisted's StringTransport): what the protocol writes is inspectable,
 *    the test feeds data, EOF and closes in, and sees what the protocol did.
 */
#ifndef COIL_MEMORY_H
#define COIL_MEMORY_H

#include <stddef.h>

#include "transport.h"

#ifdef __cplusplus
extern "C" {
#endif

#define COIL_MEMORY_DEFAULT_WINDOW (256 * 1024)

/* Join `a` and `b` (each owned by its transport from now on). connection_made
 * reaches both on the next pass. `window` 0 means the default. The
 * transports are returned in *ta and *tb (may be NULL); they are owned by
 * the connection, as any transport. Returns 0 or COIL_ENOMEM (the
 * protocols' destroy functions have then been called). */
int coil_memory_pair(coil_reactor *r, coil_protocol *a, coil_protocol *b, size_t window,
                     coil_transport **ta, coil_transport **tb) COIL_MUST_CHECK;

/* ---- the single-ended test transport ---------------------------------- */

/* A transport for `p` whose far end is the test. connection_made is called
 * before this returns. Unlike other transports it is owned by the test,
 * which frees it with coil_memory_transport_free() (connection_lost and
 * destroy have run by then, or run then). NULL when memory runs out. */
coil_transport *coil_memory_transport_new(coil_reactor *r, coil_protocol *p);
void coil_memory_transport_free(coil_transport *t);

/* Everything the protocol wrote that the test has not cleared; borrowed. */
const void *coil_memory_transport_written(const coil_transport *t, size_t *len);
void coil_memory_transport_clear(coil_transport *t);

/* How many more bytes the far end accepts before writes queue in the
 * transport (default: unlimited). Lowering it makes backpressure testable;
 * raising it lets the queue flush. */
void coil_memory_transport_set_window(coil_transport *t, size_t bytes);

/* Deliver data (data_received runs now, or when reading resumes), EOF (the
 * far end half-closed), or a close: clean (lost=0) or a reset (lost=1). */
int coil_memory_transport_feed(coil_transport *t, const void *data, size_t len);
int coil_memory_transport_feed_eof(coil_transport *t);
int coil_memory_transport_peer_close(coil_transport *t, int lost);

/* What the near end did, as flags. */
enum coil_memory_flags {
    COIL_MEMORY_CLOSED = 1,      /* connection_lost was delivered */
    COIL_MEMORY_ABORTED = 2,     /* abort_connection */
    COIL_MEMORY_WRITE_SHUT = 4,  /* the write side was shut (after flush) */
    COIL_MEMORY_CLOSED_CLEAN = 8 /* lose_connection finished its flush */
};
unsigned coil_memory_transport_flags(const coil_transport *t);

#ifdef __cplusplus
}
#endif
#endif
