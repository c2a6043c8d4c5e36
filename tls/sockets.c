/* TLS over TCP and UNIX sockets: their listeners and connectors with the
 * TLS layer (coil_tls_layer_new) on each connection. */
#include <coil/plugin.h>
#include <coil/tls.h>

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

/* Put the layer on a new listener `l`; on failure close it (*out NULL). */
static int layer_listener(coil_listener *l, coil_tls_context *ctx, coil_listener **out,
                          coil_failure **err)
{
    coil_layer *layer = coil_tls_layer_new(ctx, NULL);
    int rc = layer ? coil_listener_set_layer(l, layer) : COIL_ENOMEM;
    if (rc != 0) {
        coil_listener_close(l);
        *out = NULL;
        if (err)
            *err =
                coil_failure_new(COIL_DOMAIN_COIL, rc, "cannot put TLS on a listener: %s",
                                 coil_strerror(rc));
    }
    return rc;
}

int coil_tls_listen_tcp(coil_reactor *r, const coil_tcp_listen_options *o,
                        coil_tls_context *ctx, coil_factory *f, coil_listener **out,
                        coil_failure **err)
{
    int rc = check_role(ctx, COIL_TLS_SERVER, err);
    if (rc == 0 && (rc = coil_tcp_listen(r, o, f, out, err)) == 0)
        rc = layer_listener(*out, ctx, out, err);
    return rc;
}

int coil_tls_listen_unix(coil_reactor *r, const coil_unix_listen_options *o,
                         coil_tls_context *ctx, coil_factory *f, coil_listener **out,
                         coil_failure **err)
{
    int rc = check_role(ctx, COIL_TLS_SERVER, err);
    if (rc == 0 && (rc = coil_unix_listen(r, o, f, out, err)) == 0)
        rc = layer_listener(*out, ctx, out, err);
    return rc;
}

/* The connection completes from the reactor loop, never inside the connect
 * call, so the layer is in place before any connection exists. */
static int attach(coil_connector *k, coil_tls_context *ctx, const char *server_name)
{
    coil_layer *layer = coil_tls_layer_new(ctx, server_name);
    int rc = layer ? coil_connector_set_layer(k, layer) : COIL_ENOMEM;
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
