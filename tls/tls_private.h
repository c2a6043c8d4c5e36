/* TLS internals shared by tls/context.c (options -> SSL_CTX, the client
 * session cache, the key log), tls/layer.c (the transport, the plug-in
 * layer) and tls/endpoint.c (the endpoint kinds). */
#ifndef COIL_TLS_PRIVATE_H
#define COIL_TLS_PRIVATE_H

#include <openssl/ssl.h>

#include <coil/log.h>
#include <coil/plugin.h>
#include <coil/tls.h>

typedef struct coil__tls_session {
    struct coil__tls_session *next;
    SSL_SESSION *session;
    char key[];
} coil__tls_session;

struct coil_tls_context {
    int refs;
    int role;
    SSL_CTX *ctx;
    SSL_CTX **sni_ctx; /* per-name server contexts, n_sni of them */
    char **sni_names;
    size_t n_sni;
    char *server_name;
    int no_verify;
    int no_cache;
    double handshake_timeout;
    double close_timeout;
    int keylog_fd;            /* -1: off */
    unsigned char *alpn_wire; /* ALPN list in wire format (length-prefixed) */
    unsigned alpn_len;
    coil__tls_session *sessions; /* newest first */
    size_t n_sessions;
    coil_log_limit hs_log_limit; /* failed-handshake warnings (zero: defaults) */
};

/* The per-connection data OpenSSL's callbacks reach through
 * SSL_get_app_data: the layer keeps one first in its struct. */
typedef struct coil__tls_conn_info {
    coil_tls_context *ctx;
    const char *session_key; /* client: the cache key; NULL: no caching */
    /* Set by the verify callback: the first certificate that failed. */
    int verify_error;
    int verify_depth;
    char verify_subject[256];
} coil__tls_conn_info;

/* Store `sess` (owned) under `key`, replacing an older one. */
void coil__tls_cache_put(coil_tls_context *ctx, const char *key, SSL_SESSION *sess);
/* The cached session for `key` (borrowed) or NULL. */
SSL_SESSION *coil__tls_cache_get(coil_tls_context *ctx, const char *key);

/* The OpenSSL reason of the newest queued error ("certificate verify
 * failed"), with the system error for file errors; clears the queue. */
void coil__tls_error_text(char *buf, size_t size);

/* coil_tls_wrap with the events of a connector's layer (coil/plugin.h:
 * what the owner of the transport below hears) and a session-cache key
 * ("host:port"). */
coil_protocol *coil__tls_wrap_owned(coil_tls_context *ctx, const char *server_name,
                                    const char *session_key, coil_protocol *upper,
                                    const coil_layer_events *owner);

/* STARTTLS on coil's byte streams (TCP, UNIX, memory): the hook behind
 * their start_tls operation. */
int coil__tls_stream_start_tls(coil_transport *t, void *tls_context, int server);

/* The plug-ins of tls/ (tls/endpoint.c): the ssl: and tls: endpoint kinds
 * and the start_tls hook of byte streams. Listed in COIL_BUILTIN_PLUGINS. */
int coil__tls_plugin_register(coil_failure **err);

#endif
