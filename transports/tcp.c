/* TCP over IPv4 and IPv6: the "tcp" ops table, listen and connect. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socket.h"

static const coil_transport_ops tcp_ops = {COIL__STREAM_OPS("tcp")};

/* A literal IPv4 or IPv6 address and a port; 0 or COIL_EINVAL. */
static int literal(const char *host, int port, struct sockaddr_storage *ss,
                   socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *len = sizeof *in4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof *in6;
        return 0;
    }
    return COIL_EINVAL;
}

/* Resolve a host name. This uses getaddrinfo on the reactor's thread: fast
 * for literals and /etc/hosts names, blocking for DNS. */
static int resolve(const char *host, int port, struct sockaddr_storage *ss,
                   socklen_t *len, coil_failure **err)
{
    if (literal(host, port, ss, len) == 0)
        return 0;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_UNSPEC;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        if (err)
            *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                    "cannot resolve host name '%s': %s", host,
                                    gai_strerror(rc));
        return COIL_EINVAL;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return 0;
}

static void describe(const struct sockaddr_storage *ss, socklen_t len, char *buf,
                     size_t size)
{
    coil_address a;
    if (coil_address_from_sockaddr(&a, (const struct sockaddr *)ss, len) == 0)
        coil_address_format(&a, buf, size);
    else
        snprintf(buf, size, "(unknown address)");
}

int coil_tcp_listen(coil_reactor *r, const coil_tcp_listen_options *o, coil_factory *f,
                    coil_listener **out, coil_failure **err)
{
    if (err)
        *err = NULL;
    if (!r || !o || !f || !out || o->port < 0 || o->port > 65535 || o->backlog < 0) {
        if (err)
            *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                    "bad TCP listen options (port must be 0..65535)");
        return COIL_EINVAL;
    }
    const char *iface = o->interface && *o->interface ? o->interface : "0.0.0.0";
    struct sockaddr_storage ss;
    socklen_t len;
    if (literal(iface, o->port, &ss, &len) != 0) {
        if (err)
            *err =
                coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                 "interface '%s' is not an IPv4 or IPv6 address", iface);
        return COIL_EINVAL;
    }
    char desc[80];
    describe(&ss, len, desc, sizeof desc);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (o->reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        goto fail;
    if (ss.ss_family == AF_INET6 && strcmp(iface, "::") == 0)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 ||
        listen(fd, o->backlog ? o->backlog : 50) != 0)
        goto fail;
    coil__sock_options so = {o->no_delay, o->keepalive};
    return coil__listener_new(r, &tcp_ops, fd, f, &so, NULL, out, err);
fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (err)
        *err = coil_failure_from_errno(e, "cannot listen on %s", desc);
    return COIL_ESYSTEM;
}

int coil_tcp_connect(coil_reactor *r, const coil_tcp_connect_options *o, coil_factory *f,
                     coil_connector **out)
{
    if (!r || !o || !o->host || !f || !out || o->port <= 0 || o->port > 65535)
        return COIL_EINVAL;
    struct sockaddr_storage ss, bs;
    socklen_t len, blen = 0;
    coil_failure *err = NULL;
    if (resolve(o->host, o->port, &ss, &len, &err) != 0) {
        /* Reported through connection_failed like any failed attempt, so
         * callers have one path. */
        memset(&ss, 0, sizeof ss);
        return coil__connector_new(r, &tcp_ops, (struct sockaddr *)&ss, sizeof ss, NULL,
                                   0, o->host, o->timeout, NULL, f, err, out);
    }
    if (o->bind_address && literal(o->bind_address, 0, &bs, &blen) != 0)
        return COIL_EINVAL;
    char desc[80];
    describe(&ss, len, desc, sizeof desc);
    coil__sock_options so = {o->no_delay, o->keepalive};
    return coil__connector_new(r, &tcp_ops, (struct sockaddr *)&ss, len,
                               blen ? (struct sockaddr *)&bs : NULL, blen, desc,
                               o->timeout, &so, f, NULL, out);
}
