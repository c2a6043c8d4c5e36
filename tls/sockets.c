/* TLS over TCP and UNIX sockets: the listeners and connectors of
 * transports/socket.c with a TLS layer on each connection. */
#include <coil/tls.h>

#include "socket.h"

static int check_role(coil_tls_context *ctx, int role, coil_failure **err)
{
    if (ctx && coil_tls_context_role(ctx) == role)
        return 0;
    if (err)
        *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                "%s needs a TLS %s context (coil_tls_context_new with "
                                "%s)",
                                role == COIL_TLS_SERVER ? "listening" : "connecting",
                                role == COIL_TLS_SERVER ? "server" : "client",
                                role == COIL_TLS_SERVER ? "COIL_TLS_SERVER"
                                                        : "COIL_TLS_CLIENT");
    return COIL_EINVAL;
}

int coil_tls_listen_tcp(coil_reactor *r, const coil_tcp_listen_options *o,
                        coil_tls_context *ctx, coil_factory *f, coil_listener **out,
                        coil_failure **err)
{
    int rc = check_role(ctx, COIL_TLS_SERVER, err);
    if (rc == 0 && (rc = coil_tcp_listen(r, o, f, out, err)) == 0)
        coil__listener_set_tls(*out, ctx);
    return rc;
}

int coil_tls_listen_unix(coil_reactor *r, const coil_unix_listen_options *o,
                         coil_tls_context *ctx, coil_factory *f, coil_listener **out,
                         coil_failure **err)
{
    int rc = check_role(ctx, COIL_TLS_SERVER, err);
    if (rc == 0 && (rc = coil_unix_listen(r, o, f, out, err)) == 0)
        coil__listener_set_tls(*out, ctx);
    return rc;
}

/* The connection completes from the reactor loop, never inside the connect
 * call, so the layer is in place before any connection exists. */
static int attach(coil_connector *k, coil_tls_context *ctx, const char *server_name)
{
    int rc = coil__connector_set_tls(k, ctx, server_name);
    if (rc != 0)
        coil_connector_free(k);
    return rc;
}

int coil_tls_connect_tcp(coil_reactor *r, const coil_tcp_connect_options *o,
                         coil_tls_context *ctx, const char *server_name, coil_factory *f,
                         coil_connector **out)
{
    if (check_role(ctx, COIL_TLS_CLIENT, NULL) != 0 || !o)
        return COIL_EINVAL;
    int rc = coil_tcp_connect(r, o, f, out);
    if (rc != 0)
        return rc;
    return attach(*out, ctx, server_name ? server_name : o->host);
}

int coil_tls_connect_unix(coil_reactor *r, const coil_unix_connect_options *o,
                          coil_tls_context *ctx, const char *server_name, coil_factory *f,
                          coil_connector **out)
{
    if (check_role(ctx, COIL_TLS_CLIENT, NULL) != 0)
        return COIL_EINVAL;
    int rc = coil_unix_connect(r, o, f, out);
    if (rc != 0)
        return rc;
    return attach(*out, ctx, server_name);
}
