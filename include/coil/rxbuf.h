/* The input buffer of coil's framing receivers (line, netstring,
 * length-prefixed). It is public only because those receivers are structs
 * you embed; its fields are private to protocols/.
 *
 * Input not yet delivered lies in buf[off..len). While a callback runs
 * (`delivering`), the bytes it was handed are never moved or freed: a
 * buffer replaced under it is kept in `retired` until the callback returns.
 * An idle connection holds no buffer at all. */
#ifndef COIL_RXBUF_H
#define COIL_RXBUF_H

#include <stddef.h>

typedef struct coil_rxbuf {
    char *buf;
    size_t off, len, cap;
    char *retired;
    int delivering; /* a delivery loop is running */
    int destroyed;  /* destroy came during delivery: finish it after */
    int closing;    /* nothing more is delivered */
} coil_rxbuf;

#endif
