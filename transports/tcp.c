/* TCP over IPv4 and IPv6: the "tcp" ops table, listen and connect. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socket.h"

#include <coil/threadpool.h>

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

static void describe(const struct sockaddr_storage *ss, socklen_t len, char *buf,
                     size_t size);

/* Host names are resolved on the reactor's thread pool (getaddrinfo blocks
 * for as long as DNS takes); literals never leave the reactor thread. */
typedef struct resolve_job {
    coil_resolver_fn fn;
    void *arg;
    int port;
    char host[]; /* NUL-terminated */
} resolve_job;

static void resolve_job_free(void *arg)
{
    free(arg);
}

/* On a worker thread. */
static coil_failure *resolve_on_worker(void *arg, void **value, coil_destroy_fn *destroy)
{
    resolve_job *j = arg;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_UNSPEC;
    int rc = j->fn ? j->fn(j->arg, j->host, NULL, &hints, &res)
                   : getaddrinfo(j->host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        int e = errno;
        if (res)
            freeaddrinfo(res);
        if (rc == EAI_SYSTEM)
            return coil_failure_from_errno(e, "cannot resolve host name '%s'", j->host);
        return coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                "cannot resolve host name '%s': %s", j->host,
                                rc ? gai_strerror(rc) : "no address");
    }
    coil__resolved *out = calloc(1, sizeof *out);
    for (struct addrinfo *ai = res; out && ai && out->count < COIL__MAX_ADDRS;
         ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof out->addrs[0].ss)
            continue;
        coil__resolved_addr *a = &out->addrs[out->count];
        memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
        a->len = ai->ai_addrlen;
        if (a->ss.ss_family == AF_INET)
            ((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)j->port);
        else
            ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((uint16_t)j->port);
        int dup = 0;
        for (size_t i = 0; i < out->count && !dup; i++)
            dup = out->addrs[i].len == a->len &&
                  memcmp(&out->addrs[i].ss, &a->ss, a->len) == 0;
        if (dup)
            continue;
        describe(&a->ss, a->len, a->desc, sizeof a->desc);
        out->count++;
    }
    freeaddrinfo(res);
    if (!out || out->count == 0) {
        free(out);
        return coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                "cannot resolve host name '%s': %s", j->host,
                                "out of memory or no IPv4/IPv6 address");
    }
    *value = out;
    *destroy = free;
    return NULL;
}

coil_deferred *coil__tcp_resolve(coil_reactor *r, const char *host, int port,
                                 coil_resolver_fn fn, void *arg)
{
    size_t n = strlen(host);
    resolve_job *j = malloc(sizeof *j + n + 1);
    if (!j)
        return NULL;
    j->fn = fn;
    j->arg = arg;
    j->port = port;
    memcpy(j->host, host, n + 1);
    return coil_defer_to_thread(r, resolve_on_worker, j, resolve_job_free);
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
    if (!r || !o || !f || !out || o->port < 0 || o->port > 65535 || o->backlog < 0 ||
        !coil__sock_marks_valid(o->high_water, o->low_water)) {
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
    coil__sock_options so = {o->no_delay, o->keepalive, o->high_water, o->low_water};
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
    if (!r || !o || !o->host || !f || !out || o->port <= 0 || o->port > 65535 ||
        !(o->resolve_timeout >= 0) ||
        !coil__sock_marks_valid(o->high_water, o->low_water))
        return COIL_EINVAL;
    struct sockaddr_storage ss, bs;
    socklen_t len, blen = 0;
    if (o->bind_address && literal(o->bind_address, 0, &bs, &blen) != 0)
        return COIL_EINVAL;
    coil__sock_options so = {o->no_delay, o->keepalive, o->high_water, o->low_water};
    if (literal(o->host, o->port, &ss, &len) != 0)
        return coil__connector_new_named(
            r, &tcp_ops, o->host, o->port, blen ? (struct sockaddr *)&bs : NULL, blen,
            o->timeout, o->resolve_timeout, o->resolver, o->resolver_arg, &so, f, out);
    char desc[80];
    describe(&ss, len, desc, sizeof desc);
    return coil__connector_new(r, &tcp_ops, (struct sockaddr *)&ss, len,
                               blen ? (struct sockaddr *)&bs : NULL, blen, desc,
                               o->timeout, &so, f, NULL, out);
}
