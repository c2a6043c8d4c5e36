/* What TCP and UNIX sockets share: the connection (a coil__stream over a
 * non-blocking fd), the listener (accept loop, EMFILE handling) and the
 * connector (non-blocking connect with a timeout). tcp.c and unix.c add
 * their addresses, options and ops tables. */
#ifndef COIL_TRANSPORTS_SOCKET_H
#define COIL_TRANSPORTS_SOCKET_H

#include <sys/socket.h>

#include <coil/deferred.h>
#include <coil/plugin.h>
#include <coil/tcp.h>
#include <coil/unix.h>

#include "stream.h"

typedef struct coil__sock_options {
    int no_delay; /* TCP only: 1 on, -1 off */
    int keepalive;
    size_t high_water, low_water; /* 0: the defaults (see coil/tcp.h) */
} coil__sock_options;

/* 1 when the options' water marks are usable (low <= high once the
 * defaults are filled in). */
int coil__sock_marks_valid(size_t high_water, size_t low_water);

/* Wrap a connected fd (owned from now on) as a transport for `p`, and
 * deliver connection_made. `ops` is the kind's table. Returns the
 * transport or NULL (fd closed, protocol destroyed). */
coil_transport *coil__sock_conn_new(coil_reactor *r, const coil_transport_ops *ops,
                                    int fd, coil_protocol *p,
                                    const coil__sock_options *o);

/* Tests only: when set, listeners call this instead of accept4 (same
 * arguments; -1 with errno set on failure), to make accept fail at will. */
extern int (*coil__accept_hook)(int fd, struct sockaddr *addr, socklen_t *len, int flags);

/* Listen on a bound, listening fd (owned). */
int coil__listener_new(coil_reactor *r, const coil_transport_ops *ops, int fd,
                       coil_factory *f, const coil__sock_options *o,
                       const char *unlink_path, coil_listener **out, coil_failure **err);

/* A connector for an address already resolved. `desc` names the target in
 * messages ("127.0.0.1:9", "unix:/run/x.sock"). When `error` is not NULL
 * (owned: the address could not be resolved), every attempt fails with it. */
int coil__connector_new(coil_reactor *r, const coil_transport_ops *ops,
                        const struct sockaddr *addr, socklen_t addrlen,
                        const struct sockaddr *bind_addr, socklen_t bind_len,
                        const char *desc, double timeout, const coil__sock_options *o,
                        coil_factory *f, coil_failure *error, coil_connector **out);

/* A connector to a host name: before each attempt the name is resolved on
 * the reactor's thread pool with coil__tcp_resolve (failing the attempt
 * after `resolve_timeout` seconds), then connected to like an address. */
int coil__connector_new_named(coil_reactor *r, const coil_transport_ops *ops,
                              const char *host, int port,
                              const struct sockaddr *bind_addr, socklen_t bind_len,
                              double timeout, double resolve_timeout,
                              coil_resolver_fn resolver, void *resolver_arg,
                              const coil__sock_options *o, coil_factory *f,
                              coil_connector **out);

/* What a host name resolved to: the value coil__tcp_resolve fires with. */
/* What a name resolved to: up to COIL__MAX_ADDRS IPv4/IPv6 addresses in
 * getaddrinfo's order (RFC 6724: "localhost" is often ::1 first, then
 * 127.0.0.1). A connector tries them in turn until one connects. */
#define COIL__MAX_ADDRS 8
typedef struct coil__resolved_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char desc[80]; /* "127.0.0.1:8080" */
} coil__resolved_addr;
typedef struct coil__resolved {
    size_t count; /* >= 1 */
    coil__resolved_addr addrs[COIL__MAX_ADDRS];
} coil__resolved;

/* Resolve host:port on `r`'s thread pool with `fn` (NULL: getaddrinfo).
 * The deferred (the caller's reference) fires on the reactor thread with a
 * coil__resolved, or fails with "cannot resolve host name 'HOST': REASON".
 * NULL when memory runs out. In tcp.c. */
coil_deferred *coil__tcp_resolve(coil_reactor *r, const char *host, int port,
                                 coil_resolver_fn fn, void *arg);

#endif
