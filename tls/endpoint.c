/* The ssl: and tls: endpoint kinds (tcp: with the TLS layer on every
 * connection), and tls/'s registration as a builtin plug-in. */
#include <stdlib.h>
#include <string.h>

#include <coil/plugin.h>
#include <coil/tls.h>

#include "stream.h"
#include "tls_private.h"

typedef struct tls_ep {
    coil_endpoint_tcp *tcp;
    coil_tls_context *ctx; /* built once at parse time */
    char *sni;             /* clients: the name to verify (default: the host) */
} tls_ep;

static const char TLS_SERVER_USE[] =
    "ssl:PORT:privateKey=KEY.pem[:certKey=CERT.pem][:extraCertChain=FILE]"
    "[:caCerts=FILE][:requireCert=yes][:alpn=h2,http/1.1][:interface=ADDR]"
    "[:ciphersuites=TLS_AES_128_GCM_SHA256][:groups=X25519][:tickets=N]"
    "[:handshakeTimeout=S][:closeTimeout=S][:highWater=BYTES][:lowWater=BYTES]";
static const char TLS_CLIENT_USE[] =
    "tls:HOST:PORT[:caCerts=FILE][:certificate=FILE:privateKey=FILE][:sni=NAME]"
    "[:alpn=...][:resume=no][:ciphersuites=...][:groups=...][:timeout=S]"
    "[:resolveTimeout=S][:handshakeTimeout=S][:closeTimeout=S]"
    "[:bindAddress=ADDR][:highWater=BYTES][:lowWater=BYTES]";

static int tls_context(const coil_endpoint_parser *c, tls_ep *e, int role,
                       const coil_tls_options *o)
{
    coil_failure *why = NULL;
    int rc = coil_tls_context_new(role, o, &e->ctx, &why);
    if (rc != 0) {
        rc = coil_endpoint_bad(c, "%s",
                               why ? coil_failure_message(why) : "cannot set up TLS");
        coil_failure_free(why);
    }
    return rc;
}

/* The keys both TLS sides take: handshakeTimeout=, closeTimeout= (seconds). */
static int tls_timeouts(const coil_endpoint_parser *c, const coil_endpoint_desc *d,
                        coil_tls_options *o)
{
    static const char *const keys[] = {"handshakeTimeout", "closeTimeout"};
    double *dst[] = {&o->handshake_timeout, &o->close_timeout};
    for (int i = 0; i < 2; i++) {
        const char *v = coil_endpoint_desc_get(d, keys[i]);
        int rc;
        if (v && (rc = coil_endpoint_seconds(c, keys[i], v, dst[i])))
            return rc;
    }
    return 0;
}

static int parse_server(const coil_endpoint_parser *c, const coil_endpoint_desc *d,
                        tls_ep *e)
{
    static const char *const keys[] = {
        "privateKey",       "certKey",      "extraCertChain",
        "caCerts",          "requireCert",  "alpn",
        "ciphersuites",     "groups",       "tickets",
        "handshakeTimeout", "closeTimeout", NULL};
    int rc = coil_endpoint_tcp_parse(c, d, 1, keys, &e->tcp);
    if (rc)
        return rc;
    coil_tls_options o = {0};
    if ((rc = tls_timeouts(c, d, &o)))
        return rc;
    const char *t = coil_endpoint_desc_get(d, "tickets");
    if (t) {
        long n;
        if ((rc = coil_endpoint_number(c, "tickets", t, 0, 16, &n)))
            return rc;
        if (n == 0)
            o.no_session_tickets = 1;
        else
            o.tickets = (int)n;
    }
    o.key_file = coil_endpoint_desc_get(d, "privateKey");
    o.cert_file = coil_endpoint_desc_get(d, "certKey");
    if (!o.key_file)
        return coil_endpoint_bad(
            c, "privateKey= is missing (the PEM file of the server's key)");
    if (!o.cert_file)
        o.cert_file = o.key_file; /* Twisted: the key file may hold both */
    o.extra_chain_file = coil_endpoint_desc_get(d, "extraCertChain");
    o.ca_file = coil_endpoint_desc_get(d, "caCerts");
    o.alpn = coil_endpoint_desc_get(d, "alpn");
    const char *v = coil_endpoint_desc_get(d, "requireCert");
    if (v && (rc = coil_endpoint_yes_no(c, "requireCert", v, &o.require_client_cert)))
        return rc;
    if (o.require_client_cert && !o.ca_file)
        return coil_endpoint_bad(c, "requireCert=yes needs caCerts=FILE (whom to trust)");
    o.request_client_cert = o.ca_file != NULL;
    o.ciphersuites = coil_endpoint_desc_get(d, "ciphersuites");
    o.groups = coil_endpoint_desc_get(d, "groups");
    return tls_context(c, e, COIL_TLS_SERVER, &o);
}

static int parse_client(const coil_endpoint_parser *c, const coil_endpoint_desc *d,
                        tls_ep *e)
{
    static const char *const keys[] = {"caCerts",      "certificate", "privateKey",
                                       "sni",          "alpn",        "resume",
                                       "ciphersuites", "groups",      "handshakeTimeout",
                                       "closeTimeout", NULL};
    int rc = coil_endpoint_tcp_parse(c, d, 0, keys, &e->tcp);
    if (rc)
        return rc;
    coil_tls_options o = {0};
    if ((rc = tls_timeouts(c, d, &o)))
        return rc;
    o.ca_file = coil_endpoint_desc_get(d, "caCerts");
    o.cert_file = coil_endpoint_desc_get(d, "certificate");
    o.key_file = coil_endpoint_desc_get(d, "privateKey");
    if (o.key_file && !o.cert_file)
        return coil_endpoint_bad(
            c, "privateKey= needs certificate= (the client certificate)");
    o.alpn = coil_endpoint_desc_get(d, "alpn");
    const char *v = coil_endpoint_desc_get(d, "resume");
    int resume = 1;
    if (v && (rc = coil_endpoint_yes_no(c, "resume", v, &resume)))
        return rc;
    o.no_session_cache = !resume;
    o.ciphersuites = coil_endpoint_desc_get(d, "ciphersuites");
    o.groups = coil_endpoint_desc_get(d, "groups");
    const char *sni = coil_endpoint_desc_get(d, "sni");
    if (sni && !*sni)
        return coil_endpoint_bad(c, "sni is empty");
    if (sni && !(e->sni = strdup(sni)))
        return COIL_ENOMEM;
    return tls_context(c, e, COIL_TLS_CLIENT, &o);
}

static int tls_kind_parse(const coil_endpoint_parser *c, const coil_endpoint_desc *d,
                          int server, void **state)
{
    tls_ep *e = calloc(1, sizeof *e);
    if (!e)
        return COIL_ENOMEM;
    *state = e;
    return server ? parse_server(c, d, e) : parse_client(c, d, e);
}

static void tls_kind_free(void *state)
{
    tls_ep *e = state;
    if (!e)
        return;
    coil_endpoint_tcp_free(e->tcp);
    coil_tls_context_free(e->ctx);
    free(e->sni);
    free(e);
}

static int tls_kind_listen(coil_reactor *r, void *state, coil_factory *f,
                           coil_listener **out, coil_failure **err)
{
    const tls_ep *e = state;
    int rc = coil_endpoint_tcp_listen(r, e->tcp, f, out, err);
    if (rc)
        return rc;
    coil_layer *layer = coil_tls_layer_new(e->ctx, NULL);
    if (!layer || (rc = coil_listener_set_layer(*out, layer)) != 0) {
        coil_listener_close(*out);
        *out = NULL;
        rc = layer ? rc : COIL_ENOMEM;
        if (err)
            *err =
                coil_failure_new(COIL_DOMAIN_COIL, rc, "cannot put TLS on a listener: %s",
                                 coil_strerror(rc));
    }
    return rc;
}

static int tls_kind_connect(coil_reactor *r, void *state, coil_factory *f,
                            coil_connector **out, coil_failure **err)
{
    const tls_ep *e = state;
    int rc = coil_endpoint_tcp_connect(r, e->tcp, f, out, err);
    if (rc)
        return rc;
    /* The connection completes from the reactor loop, never inside the
     * connect call: the layer is in place before any connection exists. */
    coil_layer *layer =
        coil_tls_layer_new(e->ctx, e->sni ? e->sni : coil_endpoint_tcp_host(e->tcp));
    if (!layer || (rc = coil_connector_set_layer(*out, layer)) != 0) {
        coil_connector_free(*out);
        *out = NULL;
        return layer ? rc : COIL_ENOMEM;
    }
    return 0;
}

static const coil_endpoint_kind_ops tls_kind = {
    .name = "tls",
    .alias = "ssl",
    .server_example = "ssl:PORT:privateKey=KEY.pem",
    .client_example = "tls:HOST:PORT",
    .server_usage = TLS_SERVER_USE,
    .client_usage = TLS_CLIENT_USE,
    .parse = tls_kind_parse,
    .listen = tls_kind_listen,
    .connect = tls_kind_connect,
    .free_state = tls_kind_free,
};

int coil__tls_plugin_register(coil_failure **err)
{
    coil__stream_set_start_tls_hook(coil__tls_stream_start_tls);
    return coil_endpoint_register_kind(&tls_kind, err);
}
