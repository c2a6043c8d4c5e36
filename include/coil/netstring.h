/* coil — the netstring receiver (Twisted's NetstringReceiver).
 *
 * Netstrings (http://cr.yp.to/proto/netstrings.txt) frame each string as
 * "LEN:DATA," with LEN in decimal. Embed coil_netstring_receiver FIRST in
 * your struct, fill in a static const coil_netstring_ops and call
 * coil_netstring_receiver_init() from build_protocol.
 *
 * Bad input (a non-digit length, a leading zero, an empty length, a length
 * over max_length, a missing ',') calls bad_input with a message that says
 * what was wrong; the default closes the connection. Nothing past the bad
 * byte is delivered, whatever bad_input does. A length over max_length is
 * caught at the digit that takes it over, before the ':' arrives. "0:," is
 * the empty string. A string is buffered until complete; the buffer is
 * freed as soon as it is empty. Once the connection is closing
 * (lose_connection or abort_connection, from a callback or the default
 * bad_input), nothing more is delivered.
 */
#ifndef COIL_NETSTRING_H
#define COIL_NETSTRING_H

#include <stddef.h>

#include "protocol.h"
#include "rxbuf.h"
#include "transport.h"

#ifdef __cplusplus
extern "C" {
#endif

#define COIL_NETSTRING_DEFAULT_MAX 99999

typedef struct coil_netstring_receiver coil_netstring_receiver;

typedef struct coil_netstring_ops {
    void (*connection_made)(coil_netstring_receiver *ns);
    /* `data` is borrowed until the call returns and NUL-terminated. */
    void (*string_received)(coil_netstring_receiver *ns, const char *data, size_t len);
    /* What was wrong, e.g. "netstring length 123456 exceeds the limit of
     * 99999". NULL: lose the connection. */
    void (*bad_input)(coil_netstring_receiver *ns, const char *message);
    void (*connection_lost)(coil_netstring_receiver *ns, const coil_failure *reason);
    void (*destroy)(coil_netstring_receiver *ns);
} coil_netstring_ops;

struct coil_netstring_receiver {
    coil_protocol protocol; /* first */
    const coil_netstring_ops *ops;
    size_t max_length; /* default COIL_NETSTRING_DEFAULT_MAX */
    /* Private. */
    coil_rxbuf rx; /* input not yet delivered */
    size_t want;   /* length of the string being read */
    size_t digits; /* digits of it seen so far */
    int state;
    int broken;
};

void coil_netstring_receiver_init(coil_netstring_receiver *ns,
                                  const coil_netstring_ops *ops);
/* Send one netstring (one writev). COIL_ECLOSED without a transport;
 * otherwise as coil_transport_write. */
int coil_netstring_send(coil_netstring_receiver *ns, const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif
