/* coil — protocols and factories.
 *
 * A protocol holds the logic of one connection; a factory builds one
 * protocol per connection. Protocols see only the transport interface
 * (transport.h), so the same protocol runs over TCP, a UNIX socket, TLS, an
 * SSH channel or the in-memory transport.
 *
 * Embed coil_protocol as the FIRST member of your own struct and fill in a
 * static const coil_protocol_ops table. Every callback is optional (NULL):
 *
 *   connection_made(p)          the transport is in p->transport
 *   data_received(p, data, len) `data` is borrowed until the call returns
 *   read_connection_lost(p)     the peer half-closed (NULL: lose_connection)
 *   write_connection_lost(p)    our write side is shut (after
 *                               lose_write_connection and its flush)
 *   connection_lost(p, reason)  the end; `reason` is borrowed: a failure
 *                               with COIL_ECLOSED for a clean close,
 *                               otherwise what broke (see transport.h)
 *   destroy(p)                  free the protocol; the transport calls it
 *                               once after connection_lost, or when the
 *                               connection never came up
 *
 * A protocol may call any transport operation from inside any callback,
 * including lose_connection and abort_connection during data_received.
 */
#ifndef COIL_PROTOCOL_H
#define COIL_PROTOCOL_H

#include <stddef.h>

#include "address.h"
#include "failure.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coil_transport coil_transport;
typedef struct coil_protocol coil_protocol;

typedef struct coil_protocol_ops {
    void (*connection_made)(coil_protocol *p);
    void (*data_received)(coil_protocol *p, const void *data, size_t len);
    void (*read_connection_lost)(coil_protocol *p);
    void (*write_connection_lost)(coil_protocol *p);
    void (*connection_lost)(coil_protocol *p, const coil_failure *reason);
    void (*destroy)(coil_protocol *p);
} coil_protocol_ops;

struct coil_protocol {
    const coil_protocol_ops *ops;
    coil_transport *transport; /* set before connection_made; NULL after lost */
    void *user;                /* yours */
};

#ifdef __cplusplus
}
#endif
#endif
