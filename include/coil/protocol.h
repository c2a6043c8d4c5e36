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
 *   connection_failed(p, reason) the connection never came up (a TLS
 *                               handshake failed or timed out under
 *                               coil_tls_wrap): why, in words; borrowed.
 *                               Called instead of connection_made and
 *                               connection_lost, before destroy
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
    void (*connection_failed)(coil_protocol *p, const coil_failure *reason);
} coil_protocol_ops;

struct coil_protocol {
    const coil_protocol_ops *ops;
    coil_transport *transport; /* set before connection_made; NULL after lost */
    void *user;                /* yours */
};

/* ---- factories --------------------------------------------------------

A factory builds one protocol per connection. Embed coil_factory first in
your struct. Servers use build_protocol, start and stop; client factories
also hear about their connectors. All callbacks but build_protocol are
optional (NULL).

  build_protocol(f, peer)   a new protocol for a connection from/to `peer`
                            (borrowed); NULL refuses the connection
  start(f) / stop(f)        the first listener or connector starts using the
                            factory / the last stops (Twisted's doStart and
                            doStop); counted, so several listeners may share
  started_connecting(f, c)  a connection attempt begins
  connected(f, c, t)        the attempt succeeded: `t` is the new transport,
                            whose protocol's connection_made has run
  connection_failed(f, c, reason)   the attempt failed: refused, timed out,
                            unreachable, name not found (reason borrowed)
  connection_lost(f, c, reason)     an established connection ended; called
                            after the protocol's connection_lost

The factory belongs to the caller, who frees it after every listener and
connector using it is gone (users == 0).
*/
typedef struct coil_factory coil_factory;
typedef struct coil_connector coil_connector;

typedef struct coil_factory_ops {
    coil_protocol *(*build_protocol)(coil_factory *f, const coil_address *peer);
    void (*start)(coil_factory *f);
    void (*stop)(coil_factory *f);
    void (*started_connecting)(coil_factory *f, coil_connector *c);
    void (*connected)(coil_factory *f, coil_connector *c, coil_transport *t);
    void (*connection_failed)(coil_factory *f, coil_connector *c,
                              const coil_failure *reason);
    void (*connection_lost)(coil_factory *f, coil_connector *c,
                            const coil_failure *reason);
} coil_factory_ops;

struct coil_factory {
    const coil_factory_ops *ops;
    int users; /* listeners and connectors using it (start/stop counting) */
    void *user;
};

/* Counted start/stop, called by listeners and connectors. */
void coil_factory_do_start(coil_factory *f);
void coil_factory_do_stop(coil_factory *f);

#ifdef __cplusplus
}
#endif
#endif
