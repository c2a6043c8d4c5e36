/* coil — length-prefixed receivers (Twisted's Int16StringReceiver and
 * Int32StringReceiver).
 *
 * Each string is sent as its length in network byte order (2 or 4 bytes)
 * followed by the bytes. Embed coil_prefixed_receiver FIRST in your struct,
 * fill in a static const coil_prefixed_ops and call
 * coil_prefixed_receiver_init() with the prefix size from build_protocol.
 *
 * A length over max_length calls length_limit_exceeded as soon as its
 * prefix arrives; the default closes the connection, and nothing more is
 * delivered whatever the hook does. The buffer is freed as soon as it is
 * empty. Once the connection is closing (lose_connection or
 * abort_connection, from a callback or the default hook), nothing more is
 * delivered.
 */
#ifndef COIL_PREFIXED_H
#define COIL_PREFIXED_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"
#include "rxbuf.h"
#include "transport.h"

#ifdef __cplusplus
extern "C" {
#endif

#define COIL_PREFIXED_DEFAULT_MAX 99999

typedef struct coil_prefixed_receiver coil_prefixed_receiver;

typedef struct coil_prefixed_ops {
    void (*connection_made)(coil_prefixed_receiver *pr);
    /* `data` is borrowed until the call returns. */
    void (*string_received)(coil_prefixed_receiver *pr, const void *data, size_t len);
    /* The announced length was over max_length. NULL: lose the
     * connection. */
    void (*length_limit_exceeded)(coil_prefixed_receiver *pr, uint64_t length);
    void (*connection_lost)(coil_prefixed_receiver *pr, const coil_failure *reason);
    void (*destroy)(coil_prefixed_receiver *pr);
} coil_prefixed_ops;

struct coil_prefixed_receiver {
    coil_protocol protocol; /* first */
    const coil_prefixed_ops *ops;
    size_t max_length; /* default COIL_PREFIXED_DEFAULT_MAX */
    /* Private. */
    int prefix;    /* 2 or 4 */
    coil_rxbuf rx; /* input not yet delivered */
    int broken;
};

/* `prefix_bytes` is 2 or 4. COIL_EINVAL otherwise: `pr` is then still set
 * up (its destroy forwards) but delivers nothing. */
int coil_prefixed_receiver_init(coil_prefixed_receiver *pr, int prefix_bytes,
                                const coil_prefixed_ops *ops);
/* Send one string (one writev); COIL_EINVAL when it does not fit the
 * prefix (over 65535 bytes for 2, over 4294967295 for 4) and nothing is
 * sent; COIL_ECLOSED without a transport; otherwise as
 * coil_transport_write. */
int coil_prefixed_send(coil_prefixed_receiver *pr, const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif
