/* coil — TLS as a layer over any transport (OpenSSL 3).
 *
 * TLS is a protocol to the transport below and a transport to the protocol
 * above: a chat or echo protocol runs over TLS unchanged, and TLS runs over
 * TCP, a UNIX socket, the in-memory pair or an SSH channel.
 *
 *   coil_tls_options o = {0};
 *   o.cert_file = "server.pem";           // chain: leaf first
 *   o.key_file = "server.key";
 *   coil_tls_context *ctx;
 *   if (coil_tls_context_new(COIL_TLS_SERVER, &o, &ctx, &err) != 0) ...
 *   coil_tls_listen_tcp(r, &(coil_tcp_listen_options){.port = 8443}, ctx,
 *                       &factory, &listener, &err);
 *   coil_tls_context_free(ctx);           // listeners and connections keep
 *                                         // their own reference
 *
 * A context is built once from an options struct and shared by every
 * connection made with it (one OpenSSL SSL_CTX, one CA store). It is
 * reference-counted: whoever uses it takes a reference, so the creator may
 * free it as soon as it has handed it out.
 *
 * Secure by default:
 *  - clients verify the peer's chain against the CA file, CA directory or
 *    (neither given) the system store, and the host name they connect to
 *    (SSL_set1_host: DNS names and IP addresses), which is also sent as SNI;
 *  - TLS 1.2 is the minimum, TLS 1.3 preferred; going lower takes an option
 *    named insecure_...;
 *  - no verification at all takes `insecure_no_verify`, meant for tests.
 *
 * Events, as a protocol over TLS sees them:
 *  - connection_made runs once the handshake is done, so info() already
 *    holds the version, cipher, ALPN protocol and peer certificate there
 *    (asyncio's rule). Bytes written before (STARTTLS) wait for it.
 *  - A handshake failure reaches a client's factory as connection_failed,
 *    with a message naming the OpenSSL reason and, for a verification
 *    failure, the certificate's subject and the host that was expected
 *    ("TLS handshake with 127.0.0.1:4433 failed: certificate verify failed:
 *    Hostname mismatch (certificate subject CN=wrong.example, expected
 *    host localhost)"). A protocol that had its connection_made already
 *    (STARTTLS) hears it as connection_lost. Servers log it (warning).
 *  - The handshake must finish within handshake_timeout (30 s default).
 *  - lose_connection sends what is queued, then close_notify, then closes
 *    the transport below once the peer has taken every byte and closed its
 *    side; the protocol hears connection_lost then, not before, so "clean"
 *    means delivered. A slow reader is waited for as long as it makes
 *    progress (takes bytes; what it sends does not count); a peer that
 *    takes none for close_timeout (30 s default) is given up on: with bytes
 *    undelivered the transport below is aborted and the close is reported
 *    lost (COIL_ECONNLOST, "... close timeout ..."); with everything taken
 *    but no close from the peer, ours is closed normally and reported
 *    clean.
 *  - The end of the stream without close_notify (the peer's TCP closed
 *    first) is a lost connection (COIL_ECONNLOST, "truncated"), never a
 *    clean one: a cut-off stream must not look complete.
 *  - Half-close is supported: lose_write_connection sends close_notify and
 *    keeps reading; a peer's close_notify reaches read_connection_lost
 *    (TLS 1.3 allows both; TLS 1.2 peers usually close in reply).
 *  - Everything written in one reactor pass goes out as full records (up
 *    to 16 KiB), not one record per write.
 *  - Flow control passes through: a transport below that is full pauses
 *    the writing above it, and pause_reading above stops reading below.
 */
#ifndef COIL_TLS_H
#define COIL_TLS_H

#include <stddef.h>

#include "failure.h"
#include "protocol.h"
#include "reactor.h"
#include "tcp.h"
#include "transport.h"
#include "unix.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coil_tls_context coil_tls_context;

enum coil_tls_role { COIL_TLS_CLIENT = 0, COIL_TLS_SERVER = 1 };

enum coil_tls_version {
    COIL_TLS_DEFAULT = 0,  /* min: TLS 1.2; max: the newest (TLS 1.3) */
    COIL_TLS_1_0 = 0x0301, /* only with insecure_allow_old_versions */
    COIL_TLS_1_1 = 0x0302, /* only with insecure_allow_old_versions */
    COIL_TLS_1_2 = 0x0303,
    COIL_TLS_1_3 = 0x0304
};

/* A server's certificate for one SNI name (server_name from the client). */
typedef struct coil_tls_sni_cert {
    const char *name;      /* exact host name, or "*.example.org" */
    const char *cert_file; /* PEM chain, leaf first */
    const char *key_file;  /* PEM key; NULL: in cert_file */
} coil_tls_sni_cert;

/* Zero-initialise, then set what you need. Strings are copied or read at
 * context creation; nothing here must outlive coil_tls_context_new. */
typedef struct coil_tls_options {
    /* Our certificate chain and key: files or PEM text in memory. A server
     * needs one; a client needs one only for client-certificate auth. */
    const char *cert_file;        /* PEM: leaf first, then intermediates */
    const char *key_file;         /* PEM private key; NULL: in cert_file */
    const char *cert_pem;         /* or the chain as PEM text */
    const char *key_pem;          /* or the key as PEM text */
    const char *key_passphrase;   /* for an encrypted key (wiped after use
                                     inside coil; the caller's copy is the
                                     caller's) */
    const char *extra_chain_file; /* more intermediates to send (PEM) */

    /* Whom we trust: a CA file and/or directory; neither: the system
     * store (clients), or no client CAs (servers). */
    const char *ca_file;
    const char *ca_dir;

    /* Servers: ask for a client certificate (verified when sent), or
     * require one (the handshake fails without it). */
    int request_client_cert;
    int require_client_cert;

    /* Versions (enum coil_tls_version); 0: TLS 1.2 .. newest. */
    int min_version;
    int max_version;
    /* Allow TLS 1.0 and 1.1 (min_version may then be below 1.2). Insecure:
     * for talking to old peers only. */
    int insecure_allow_old_versions;

    const char *ciphers;      /* TLS 1.2 cipher list (OpenSSL syntax);
                                 NULL: OpenSSL's secure default */
    const char *ciphersuites; /* TLS 1.3 suites; NULL: default */
    const char *groups;       /* key exchange groups, "X25519:P-256";
                                 NULL: default */

    /* ALPN, comma-separated in preference order ("h2,http/1.1"). A server
     * picks the first of its own list the client offers; no overlap: the
     * handshake goes on without ALPN. info().tls_alpn has the result. */
    const char *alpn;

    /* Servers: per-name certificates chosen by the client's SNI name; a
     * name not listed gets cert_file. */
    const coil_tls_sni_cert *sni_certs;
    size_t n_sni_certs;

    /* Resumption. Servers issue session tickets (TLS 1.3 and 1.2) unless
     * no_session_tickets; clients keep the newest session per server
     * (host:port, or the name given to coil_tls_wrap) in the context and
     * offer it on the next connection unless no_session_cache. */
    int no_session_tickets;
    int no_session_cache;
    /* Servers: how many TLS 1.3 tickets to send after a full handshake
     * (each costs about 6% of a handshake's work); 0: OpenSSL's default
     * (2). no_session_tickets sends none. */
    int tickets;

    /* Append the session secrets in NSS key log format (what Wireshark
     * reads with SSLKEYLOGFILE) to this file. Off (NULL) by default:
     * anyone with the file can decrypt the traffic. */
    const char *keylog_file;

    /* Clients: the host name to verify and send as SNI when a connection
     * names none (coil_transport_start_tls, coil_tls_wrap with NULL). */
    const char *server_name;

    /* Clients: accept any certificate and any host name. Insecure: for
     * tests only; a warning is logged once per context. */
    int insecure_no_verify;

    double handshake_timeout; /* seconds; 0: 30 */
    double close_timeout;     /* seconds a closing peer may make no progress
                                 before it is given up on; 0: 30 */
} coil_tls_options;

/* Build a context for `role` (COIL_TLS_CLIENT or COIL_TLS_SERVER). Returns 0
 * or a negative code with *err (may be NULL) saying what failed and where
 * ("cannot load certificate chain server.pem: No such file or directory",
 * "private key server.key does not match certificate server.pem"). */
int coil_tls_context_new(int role, const coil_tls_options *o, coil_tls_context **out,
                         coil_failure **err) COIL_MUST_CHECK;
/* Take another reference / drop one (frees at zero). */
coil_tls_context *coil_tls_context_ref(coil_tls_context *ctx);
void coil_tls_context_free(coil_tls_context *ctx);
int coil_tls_context_role(const coil_tls_context *ctx);
/* Sessions cached by a client context (for tests and tools). */
size_t coil_tls_context_cached_sessions(const coil_tls_context *ctx);

/* ---- layering ------------------------------------------------------------ */

/* Put TLS between a transport-to-be and `upper`: returns the protocol to
 * give to the transport below (coil_memory_pair, an SSH channel, ...). The
 * layer owns `upper` from now on; upper->transport will be the TLS
 * transport. `server_name` (clients) is the host name to verify and send as
 * SNI, and the key of the session cache; NULL with insecure_no_verify only.
 * Returns NULL when memory runs out (upper is then destroyed). */
coil_protocol *coil_tls_wrap(coil_tls_context *ctx, const char *server_name,
                             coil_protocol *upper);

/* The TLS layer as a plug-in layer (coil/plugin.h): give it to a connector
 * or listener (coil_connector_set_layer, coil_listener_set_layer) and every
 * connection it makes runs TLS with `ctx` (a reference is taken). Clients
 * verify `server_name` (NULL: the context's server_name) and send it as
 * SNI; each connection's session is cached under the peer's "host:port".
 * NULL when memory runs out. */
typedef struct coil_layer coil_layer;
coil_layer *coil_tls_layer_new(coil_tls_context *ctx, const char *server_name);

/* STARTTLS: put TLS on the established connection `t` now. Bytes written to
 * `t` before this call go out in the clear; from now on the protocol's
 * transport is the TLS transport: the function sets p->transport (and
 * returns it in *out, may be NULL); keep using p->transport, not `t`. The
 * protocol is not replaced and connection_made does not run again; its
 * writes wait for the handshake. The same as
 * coil_transport_start_tls(t, ctx, role) on TCP, UNIX and in-memory
 * transports. COIL_EINVAL if `t` is closing, COIL_ENOTSUP on a transport that
 * is already TLS. */
int coil_tls_start(coil_transport *t, coil_tls_context *ctx, const char *server_name,
                   coil_transport **out) COIL_MUST_CHECK;

/* The transport below a TLS transport (NULL if `t` is not TLS). */
coil_transport *coil_tls_lower(const coil_transport *t);

/* ---- TLS over TCP and UNIX sockets ------------------------------------------ */

/* Listen; every accepted connection runs TLS with `ctx` (a server context;
 * the listener takes a reference). */
int coil_tls_listen_tcp(coil_reactor *r, const coil_tcp_listen_options *o,
                        coil_tls_context *ctx, coil_factory *f, coil_listener **out,
                        coil_failure **err) COIL_MUST_CHECK;
int coil_tls_listen_unix(coil_reactor *r, const coil_unix_listen_options *o,
                         coil_tls_context *ctx, coil_factory *f, coil_listener **out,
                         coil_failure **err) COIL_MUST_CHECK;

/* Connect and run the TLS handshake; the factory hears connected (with the
 * TLS transport) after the handshake, or connection_failed (TCP or TLS).
 * `server_name` is the name to verify and send as SNI; NULL: o->host. For
 * UNIX sockets there is no host name: server_name is required unless
 * the context has insecure_no_verify. */
int coil_tls_connect_tcp(coil_reactor *r, const coil_tcp_connect_options *o,
                         coil_tls_context *ctx, const char *server_name, coil_factory *f,
                         coil_connector **out) COIL_MUST_CHECK;
int coil_tls_connect_unix(coil_reactor *r, const coil_unix_connect_options *o,
                          coil_tls_context *ctx, const char *server_name, coil_factory *f,
                          coil_connector **out) COIL_MUST_CHECK;

#ifdef __cplusplus
}
#endif
#endif
