/* The conformance suite over every transport coil has today. A transport
 * joins by adding one row to `table`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conformance.h"
#include "testutil.h"

/* ---- the in-memory pair ---- */

static int memory_pair(coil_reactor *r, coil_protocol *c, coil_protocol *s, void *ctx)
{
    return coil_memory_pair(r, c, s, 0, NULL, NULL);
}

/* TLS over the in-memory pair: each side wrapped in its layer. */
static int tls_memory_pair(coil_reactor *r, coil_protocol *c, coil_protocol *s, void *ctx)
{
    if (coil_conformance_tls_contexts() != 0)
        return COIL_EINVAL;
    coil_protocol *cw = coil_tls_wrap(coil_conformance_tls_client_ctx(), "localhost", c);
    if (!cw) {
        if (s->ops->destroy)
            s->ops->destroy(s);
        return COIL_ENOMEM;
    }
    coil_protocol *sw = coil_tls_wrap(coil_conformance_tls_server_ctx(), NULL, s);
    if (!sw) {
        if (cw->ops->destroy)
            cw->ops->destroy(cw);
        return COIL_ENOMEM;
    }
    return coil_memory_pair(r, cw, sw, 0, NULL, NULL);
}

static void tls_memory_cleanup(coil_reactor *r, void *ctx)
{
    coil_conformance_tls_contexts_free();
}

/* ---- sockets: one listener per kind, one connector per pair ---- */

typedef struct sock_ctx {
    const char *kind; /* "tcp4", "tcp6", "unix" */
    int tls;          /* TLS over it */
    coil_factory server_factory;
    coil_listener *listener;
    char path[108];
    int port;
    /* Server protocols waiting for their connection, in connect order. */
    coil_protocol **pending;
    size_t head, len, cap;
    /* Connectors made, freed at cleanup. */
    coil_connector **connectors;
    size_t nconn, capconn;
} sock_ctx;

typedef struct client_factory {
    coil_factory base;
    coil_protocol *client;
    int failed;
} client_factory;

static coil_protocol *server_build(coil_factory *f, const coil_address *peer)
{
    sock_ctx *x = f->user;
    if (x->head == x->len)
        return NULL;
    return x->pending[x->head++];
}

static const coil_factory_ops server_factory_ops = {.build_protocol = server_build};

static coil_protocol *client_build(coil_factory *f, const coil_address *peer)
{
    client_factory *cf = (client_factory *)f;
    coil_protocol *p = cf->client;
    cf->client = NULL;
    return p;
}

static void client_failed(coil_factory *f, coil_connector *k, const coil_failure *reason)
{
    client_factory *cf = (client_factory *)f;
    cf->failed = 1;
    char *s = coil_failure_to_string(reason);
    fprintf(stderr, "conformance: connect failed: %s\n", s);
    free(s);
}

static void client_factory_stop(coil_factory *f)
{
    free(f); /* the connector was freed: its factory goes with it */
}

static const coil_factory_ops client_factory_ops = {
    .build_protocol = client_build,
    .connection_failed = client_failed,
    .stop = client_factory_stop,
};

static int ensure_listener(coil_reactor *r, sock_ctx *x)
{
    if (x->listener)
        return 0;
    if (x->tls && coil_conformance_tls_contexts() != 0)
        return COIL_EINVAL;
    x->server_factory.ops = &server_factory_ops;
    x->server_factory.user = x;
    coil_failure *err = NULL;
    int rc;
    if (strcmp(x->kind, "unix") == 0) {
        snprintf(x->path, sizeof x->path, "/tmp/coil-conformance-%d%s.sock",
                 (int)getpid(), x->tls ? "-tls" : "");
        coil_unix_listen_options o = {0};
        o.path = x->path;
        o.backlog = 1024;
        rc = x->tls ? coil_tls_listen_unix(r, &o, coil_conformance_tls_server_ctx(),
                                           &x->server_factory, &x->listener, &err)
                    : coil_unix_listen(r, &o, &x->server_factory, &x->listener, &err);
    } else {
        coil_tcp_listen_options o = {0};
        o.interface = strcmp(x->kind, "tcp6") == 0 ? "::1" : "127.0.0.1";
        o.backlog = 1024;
        rc = x->tls ? coil_tls_listen_tcp(r, &o, coil_conformance_tls_server_ctx(),
                                          &x->server_factory, &x->listener, &err)
                    : coil_tcp_listen(r, &o, &x->server_factory, &x->listener, &err);
        coil_address a;
        if (rc == 0 && coil_listener_get_host(x->listener, &a) == 0)
            x->port = coil_address_port(&a);
    }
    if (rc != 0) {
        char *s = coil_failure_to_string(err);
        fprintf(stderr, "conformance: cannot listen for %s: %s\n", x->kind, s);
        free(s);
        coil_failure_free(err);
    }
    return rc;
}

static int push(void ***arr, size_t *len, size_t *cap, void *item)
{
    if (*len == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        void **p = realloc(*arr, ncap * sizeof *p);
        if (!p)
            return COIL_ENOMEM;
        *arr = p;
        *cap = ncap;
    }
    (*arr)[(*len)++] = item;
    return 0;
}

static int socket_pair(coil_reactor *r, coil_protocol *c, coil_protocol *s, void *ctx)
{
    sock_ctx *x = ctx;
    int rc = ensure_listener(r, x);
    if (rc != 0)
        return rc;
    if (push((void ***)&x->pending, &x->len, &x->cap, s) != 0)
        return COIL_ENOMEM;
    client_factory *cf = calloc(1, sizeof *cf);
    if (!cf)
        return COIL_ENOMEM;
    cf->base.ops = &client_factory_ops;
    cf->client = c;
    coil_connector *k = NULL;
    if (strcmp(x->kind, "unix") == 0) {
        coil_unix_connect_options o = {0};
        o.path = x->path;
        rc = x->tls ? coil_tls_connect_unix(r, &o, coil_conformance_tls_client_ctx(),
                                            "localhost", &cf->base, &k)
                    : coil_unix_connect(r, &o, &cf->base, &k);
    } else {
        coil_tcp_connect_options o = {0};
        o.host = strcmp(x->kind, "tcp6") == 0 ? "::1" : "127.0.0.1";
        o.port = x->port;
        rc = x->tls ? coil_tls_connect_tcp(r, &o, coil_conformance_tls_client_ctx(), NULL,
                                           &cf->base, &k)
                    : coil_tcp_connect(r, &o, &cf->base, &k);
    }
    if (rc != 0 || cf->failed) {
        coil_connector_free(k);
        return rc ? rc : COIL_ECONNLOST;
    }
    return push((void ***)&x->connectors, &x->nconn, &x->capconn, k);
}

static void socket_cleanup(coil_reactor *r, void *ctx)
{
    sock_ctx *x = ctx;
    for (size_t i = 0; i < x->nconn; i++)
        coil_connector_free(x->connectors[i]);
    free(x->connectors);
    free(x->pending);
    coil_listener_close(x->listener);
    const char *kind = x->kind;
    int tls = x->tls;
    memset(x, 0, sizeof *x);
    x->kind = kind;
    x->tls = tls;
    if (tls)
        coil_conformance_tls_contexts_free();
}

static sock_ctx tcp4 = {.kind = "tcp4"}, tcp6 = {.kind = "tcp6"},
                unixs = {.kind = "unix"}, tls_tcp4 = {.kind = "tcp4", .tls = 1},
                tls_unix = {.kind = "unix", .tls = 1};

/* The table: one row per transport kind. */
static const coil_conformance_kind table[] = {
    {"memory pair", memory_pair, NULL, NULL, 0, 0, NULL, 0},
    {"TCP over IPv4", socket_pair, &tcp4, socket_cleanup, 0, 0, NULL, 0},
    {"TCP over IPv6", socket_pair, &tcp6, socket_cleanup, 0, 0, NULL, 0},
    {"UNIX socket", socket_pair, &unixs, socket_cleanup, 0, 1, NULL, 0},
    /* TLS: the queue bound allows one 16 KiB record in the layer. */
    {"TLS over TCP", socket_pair, &tls_tcp4, socket_cleanup, 0, 0, NULL, 0},
    {"TLS over UNIX", socket_pair, &tls_unix, socket_cleanup, 0, 1, NULL, 0},
    {"TLS over memory pair", tls_memory_pair, NULL, tls_memory_cleanup, 0, 0, NULL, 0},
};

static int add_suites(void)
{
    return coil_conformance_add_suites(table, sizeof table / sizeof table[0]);
}

int main(void)
{
    return coil_test_main(add_suites);
}
