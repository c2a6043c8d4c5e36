/* coil — TCP (IPv4 and IPv6): listen and connect.
 *
 * Connections are coil_transport "tcp"; TCP_NODELAY is on unless turned
 * off. Errors come back as coil_failure values that say what failed and
 * where ("connect to 127.0.0.1:9 failed: Connection refused").
 */
#ifndef COIL_TCP_H
#define COIL_TCP_H

#include "failure.h"
#include "protocol.h"
#include "reactor.h"
#include "transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coil_listener coil_listener;

/* Zero-initialise, then set what you need. */
typedef struct coil_tcp_listen_options {
    const char *interface; /* NULL or "": 0.0.0.0; "::" listens on IPv6 (and
                              IPv4-mapped); or a literal address */
    int port;              /* 0: a free port (ask coil_listener_get_host) */
    int backlog;           /* 0: 50 */
    int reuse_port;        /* SO_REUSEPORT */
    int no_delay;          /* 0 or 1: TCP_NODELAY on (default); -1: off */
    int keepalive;         /* SO_KEEPALIVE on accepted connections */
    /* Write queue marks of each connection (coil_transport_set_water_marks):
     * 0 for the defaults, 64 KiB and high_water / 4 (16 KiB). */
    size_t high_water;
    size_t low_water;
} coil_tcp_listen_options;

/* Listen; each accepted connection gets a protocol from `f` (borrowed: it
 * must outlive the listener). Returns 0, or a negative code with *err (if
 * err is not NULL) saying why ("cannot listen on 0.0.0.0:80: Permission
 * denied"). */
int coil_tcp_listen(coil_reactor *r, const coil_tcp_listen_options *o, coil_factory *f,
                    coil_listener **out, coil_failure **err) COIL_MUST_CHECK;

/* Where the listener listens (the real port when 0 was asked). */
int coil_listener_get_host(const coil_listener *l, coil_address *out);
/* Stop listening and free the listener; connections already accepted go
 * on. The factory's stop runs when it was the factory's last user. */
void coil_listener_close(coil_listener *l);

struct addrinfo;

/* A name resolver with getaddrinfo()'s contract (returns 0 or an EAI_*
 * code; *res is freed with freeaddrinfo(), so build it with getaddrinfo),
 * plus the `arg` given with it. It runs on a worker thread of the reactor's
 * thread pool (coil/threadpool.h), never on the reactor thread, so it may
 * block; it must not call coil functions. For tests (a slow or failing
 * resolver) and for programs with their own name service. */
typedef int (*coil_resolver_fn)(void *arg, const char *host, const char *service,
                                const struct addrinfo *hints, struct addrinfo **res);

typedef struct coil_tcp_connect_options {
    const char *host; /* literal address or name */
    int port;
    double timeout;           /* seconds; 0: 30 */
    const char *bind_address; /* local address to bind first, or NULL */
    int no_delay;             /* as for listening */
    int keepalive;
    /* Host names. A literal IPv4/IPv6 address is used as it is, at once. A
     * name is resolved again before every attempt, on the reactor's thread
     * pool, so the reactor never blocks on DNS; its addresses (up to 8, in
     * getaddrinfo's order) are tried one after another until one connects
     * ("localhost" reaches a server on 127.0.0.1 when ::1 comes first and
     * refuses); the last one's failure is reported. The attempt fails with COIL_ETIMEDOUT
     * ("resolving host name 'db.example' timed out after 30 s") when resolution takes
     * longer than `resolve_timeout`, and with "cannot resolve host name ..." when the
     * name does not resolve. Stopping or freeing the connector cancels the
     * resolution (a lookup already running finishes on its worker and its
     * result is dropped). */
    double resolve_timeout;    /* seconds; 0: `timeout` */
    coil_resolver_fn resolver; /* NULL: getaddrinfo */
    void *resolver_arg;
    /* Write queue marks of each connection (coil_transport_set_water_marks):
     * 0 for the defaults, 64 KiB and high_water / 4 (16 KiB). */
    size_t high_water;
    size_t low_water;
} coil_tcp_connect_options;

/* Start connecting; the factory hears started_connecting, then either
 * build_protocol (connected) or connection_failed, and later
 * connection_lost. connection_failed always comes from the reactor loop,
 * never before this call has returned, even for a failure found at once
 * (a UNIX socket refusing, a bind failing). The connector is the caller's: free it with
 * coil_connector_free() (which stops an attempt under way; an established
 * connection goes on). */
int coil_tcp_connect(coil_reactor *r, const coil_tcp_connect_options *o, coil_factory *f,
                     coil_connector **out) COIL_MUST_CHECK;

/* These work on every connector, whatever its kind (TCP, UNIX, a plug-in's:
 * coil/plugin.h), as do coil_listener_get_host and coil_listener_close on
 * every listener. */

/* Connect again with the same options (after a failure or a loss). */
int coil_connector_connect(coil_connector *c);
/* Stop an attempt under way (connection_failed with COIL_ECANCELLED). */
void coil_connector_stop_connecting(coil_connector *c);
/* The transport of the established connection, or NULL. */
coil_transport *coil_connector_transport(const coil_connector *c);
void coil_connector_free(coil_connector *c);

#ifdef __cplusplus
}
#endif
#endif
