/* coil — UNIX stream sockets: listen and connect.
 *
 * Paths starting with '@' name the Linux abstract namespace. A listener
 * removes a stale socket file left by a dead process, never a live one.
 * The peer's credentials (SO_PEERCRED) are in coil_transport_info.
 */
#ifndef COIL_UNIX_H
#define COIL_UNIX_H

#include "tcp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coil_unix_listen_options {
    const char *path; /* file path, or "@name" */
    unsigned mode;    /* file mode of the socket; 0: 0666 */
    int backlog;      /* 0: 50 */
    /* Write queue marks of each connection (coil_transport_set_water_marks):
     * 0 for the defaults, 64 KiB and high_water / 4 (16 KiB). */
    size_t high_water;
    size_t low_water;
} coil_unix_listen_options;

int coil_unix_listen(coil_reactor *r, const coil_unix_listen_options *o, coil_factory *f,
                     coil_listener **out, coil_failure **err) COIL_MUST_CHECK;

typedef struct coil_unix_connect_options {
    const char *path;
    double timeout; /* 0: 30 */
    /* Write queue marks of each connection (coil_transport_set_water_marks):
     * 0 for the defaults, 64 KiB and high_water / 4 (16 KiB). */
    size_t high_water;
    size_t low_water;
} coil_unix_connect_options;

int coil_unix_connect(coil_reactor *r, const coil_unix_connect_options *o,
                      coil_factory *f, coil_connector **out) COIL_MUST_CHECK;

#ifdef __cplusplus
}
#endif
#endif
