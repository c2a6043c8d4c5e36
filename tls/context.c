/* TLS contexts: one SSL_CTX per context, built from coil_tls_options and
 * shared by every connection; the client session cache; the key log. */
#include "tls_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include <coil/error.h>
#include <coil/log.h>

#define LOG_MODULE          "tls"
#define MAX_CACHED_SESSIONS 256

void coil__tls_error_text(char *buf, size_t size)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    if (e && ERR_GET_LIB(e) == ERR_LIB_SYS)
        snprintf(buf, size, "%s", strerror(ERR_GET_REASON(e)));
    else if (reason)
        snprintf(buf, size, "%s", reason);
    else if (e)
        snprintf(buf, size, "OpenSSL error %lu", e);
    else
        snprintf(buf, size, "unknown OpenSSL error");
    /* A file that cannot be opened queues the system error first. */
    unsigned long first = ERR_peek_error();
    if (first != e && ERR_GET_LIB(first) == ERR_LIB_SYS) {
        size_t n = strlen(buf);
        snprintf(buf + n, size - n, " (%s)", strerror(ERR_GET_REASON(first)));
    }
    ERR_clear_error();
}

static int fail(coil_failure **err, int code, const char *fmt, const char *a,
                const char *b)
{
    char why[256];
    coil__tls_error_text(why, sizeof why);
    if (err) {
        char what[512];
        snprintf(what, sizeof what, fmt, a ? a : "", b ? b : "");
        *err = coil_failure_new(COIL_DOMAIN_TLS, code, "%s: %s", what, why);
    }
    return COIL_EINVAL;
}

/* ---- the session cache (clients) ----------------------------------------- */

void coil__tls_cache_put(coil_tls_context *ctx, const char *key, SSL_SESSION *sess)
{
    coil__tls_session **pp = &ctx->sessions;
    while (*pp && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    coil__tls_session *e = *pp;
    if (e) {
        *pp = e->next;
        SSL_SESSION_free(e->session);
    } else {
        size_t n = strlen(key) + 1;
        e = malloc(sizeof *e + n);
        if (!e) {
            SSL_SESSION_free(sess);
            return;
        }
        memcpy(e->key, key, n);
        ctx->n_sessions++;
    }
    e->session = sess;
    e->next = ctx->sessions;
    ctx->sessions = e;
    if (ctx->n_sessions > MAX_CACHED_SESSIONS) {
        /* Drop the oldest. */
        coil__tls_session **last = &ctx->sessions;
        while ((*last)->next)
            last = &(*last)->next;
        SSL_SESSION_free((*last)->session);
        free(*last);
        *last = NULL;
        ctx->n_sessions--;
    }
}

SSL_SESSION *coil__tls_cache_get(coil_tls_context *ctx, const char *key)
{
    for (coil__tls_session *e = ctx->sessions; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e->session;
    return NULL;
}

size_t coil_tls_context_cached_sessions(const coil_tls_context *ctx)
{
    return ctx->n_sessions;
}

static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    coil__tls_conn_info *ci = SSL_get_app_data(ssl);
    if (!ci || !ci->session_key || ci->ctx->no_cache || !SSL_SESSION_is_resumable(sess))
        return 0;
    coil__tls_cache_put(ci->ctx, ci->session_key, sess);
    return 1; /* we keep the reference */
}

/* ---- callbacks ------------------------------------------------------------ */

static int verify_cb(int ok, X509_STORE_CTX *store)
{
    if (ok)
        return 1;
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    coil__tls_conn_info *ci = ssl ? SSL_get_app_data(ssl) : NULL;
    if (ci && ci->verify_error == 0) {
        ci->verify_error = X509_STORE_CTX_get_error(store);
        ci->verify_depth = X509_STORE_CTX_get_error_depth(store);
        X509 *cert = X509_STORE_CTX_get_current_cert(store);
        if (!cert)
            cert = X509_STORE_CTX_get0_cert(store);
        ci->verify_subject[0] = 0;
        if (cert)
            X509_NAME_oneline(X509_get_subject_name(cert), ci->verify_subject,
                              sizeof ci->verify_subject);
    }
    return 0;
}

static void keylog_cb(const SSL *ssl, const char *line)
{
    coil__tls_conn_info *ci = SSL_get_app_data(ssl);
    if (!ci || ci->ctx->keylog_fd < 0)
        return;
    size_t n = strlen(line);
    char buf[1024];
    if (n + 1 > sizeof buf)
        return;
    memcpy(buf, line, n);
    buf[n] = '\n';
    /* One write per line: O_APPEND keeps lines whole between processes. */
    if (write(ci->ctx->keylog_fd, buf, n + 1) < 0)
        coil_log(COIL_LOG_WARN, LOG_MODULE, "key log write failed: %s", strerror(errno));
}

static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned inlen, void *arg)
{
    coil_tls_context *ctx = arg;
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, ctx->alpn_wire, ctx->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no overlap: go on without ALPN */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static int name_matches(const char *pattern, const char *name)
{
    if (strncmp(pattern, "*.", 2) == 0) {
        const char *dot = strchr(name, '.');
        return dot && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
    }
    return strcasecmp(pattern, name) == 0;
}

static int servername_cb(SSL *ssl, int *alert, void *arg)
{
    coil_tls_context *ctx = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name)
        return SSL_TLSEXT_ERR_NOACK;
    for (size_t i = 0; i < ctx->n_sni; i++) {
        if (name_matches(ctx->sni_names[i], name)) {
            SSL_set_SSL_CTX(ssl, ctx->sni_ctx[i]);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_OK; /* the default certificate */
}

/* ---- building --------------------------------------------------------------- */

static int pass_cb(char *buf, int size, int rwflag, void *u)
{
    const char *pass = u;
    if (!pass)
        return 0;
    size_t n = strlen(pass);
    if (n > (size_t)size)
        return 0;
    memcpy(buf, pass, n);
    return (int)n;
}

/* The ALPN list "h2,http/1.1" in wire format. */
static int alpn_wire(const char *list, unsigned char **out, unsigned *outlen)
{
    size_t n = strlen(list);
    unsigned char *w = malloc(n + 1);
    if (!w)
        return COIL_ENOMEM;
    size_t len = 0;
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l == 0 || l > 255) {
            free(w);
            return COIL_EINVAL;
        }
        w[len++] = (unsigned char)l;
        memcpy(w + len, p, l);
        len += l;
        p += l;
        if (*p == ',')
            p++;
    }
    if (len == 0) {
        free(w);
        return COIL_EINVAL;
    }
    *out = w;
    *outlen = (unsigned)len;
    return 0;
}

static int load_pem_identity(SSL_CTX *c, const char *cert_pem, const char *key_pem,
                             const char *pass, coil_failure **err)
{
    BIO *b = BIO_new_mem_buf(cert_pem, -1);
    X509 *leaf = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    if (!leaf || SSL_CTX_use_certificate(c, leaf) != 1) {
        X509_free(leaf);
        BIO_free(b);
        return fail(err, 0, "cannot load the certificate from cert_pem%s%s", NULL, NULL);
    }
    X509_free(leaf);
    X509 *extra;
    while ((extra = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(c, extra) != 1) {
            X509_free(extra);
            BIO_free(b);
            return fail(err, 0, "cannot add a chain certificate from cert_pem%s%s", NULL,
                        NULL);
        }
    }
    ERR_clear_error(); /* the end of the PEM text */
    BIO_free(b);
    b = BIO_new_mem_buf(key_pem ? key_pem : cert_pem, -1);
    EVP_PKEY *key = b ? PEM_read_bio_PrivateKey(b, NULL, pass_cb, (void *)pass) : NULL;
    BIO_free(b);
    if (!key || SSL_CTX_use_PrivateKey(c, key) != 1) {
        EVP_PKEY_free(key);
        return fail(err, 0, "cannot load the private key from %s%s",
                    key_pem ? "key_pem" : "cert_pem", NULL);
    }
    EVP_PKEY_free(key);
    return 0;
}

static int load_identity(SSL_CTX *c, const char *cert_file, const char *key_file,
                         const char *cert_pem, const char *key_pem, const char *pass,
                         const char *extra_chain, coil_failure **err)
{
    char *pass_copy = NULL;
    if (pass && !(pass_copy = strdup(pass)))
        return COIL_ENOMEM;
    SSL_CTX_set_default_passwd_cb(c, pass_cb);
    SSL_CTX_set_default_passwd_cb_userdata(c, pass_copy);
    int rc = 0;
    if (cert_pem) {
        rc = load_pem_identity(c, cert_pem, key_pem, pass_copy, err);
    } else if (SSL_CTX_use_certificate_chain_file(c, cert_file) != 1) {
        rc = fail(err, 0, "cannot load certificate chain %s%s", cert_file, NULL);
    } else if (SSL_CTX_use_PrivateKey_file(c, key_file ? key_file : cert_file,
                                           SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_LIB(e) == ERR_LIB_X509 &&
            ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
            return fail(err, 0, "private key %s does not match certificate %s",
                        key_file ? key_file : cert_file, cert_file);
        rc = fail(err, 0, "cannot load private key %s%s", key_file ? key_file : cert_file,
                  pass ? " (is the passphrase right?)" : "");
    }
    SSL_CTX_set_default_passwd_cb(c, NULL);
    SSL_CTX_set_default_passwd_cb_userdata(c, NULL);
    if (pass_copy) {
        sodium_memzero(pass_copy, strlen(pass_copy));
        free(pass_copy);
    }
    if (rc != 0)
        return rc;
    if (SSL_CTX_check_private_key(c) != 1)
        return fail(err, 0, "private key %s does not match certificate %s",
                    key_pem    ? "key_pem"
                    : key_file ? key_file
                               : cert_file,
                    cert_pem ? "cert_pem" : cert_file);
    if (extra_chain) {
        FILE *f = fopen(extra_chain, "r");
        if (!f) {
            if (err)
                *err = coil_failure_from_errno(errno, "cannot open extra chain %s",
                                               extra_chain);
            return COIL_EINVAL;
        }
        X509 *x;
        int n = 0;
        while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
            if (SSL_CTX_add0_chain_cert(c, x) != 1) {
                X509_free(x);
                fclose(f);
                return fail(err, 0, "cannot add a certificate of extra chain %s%s",
                            extra_chain, NULL);
            }
            n++;
        }
        fclose(f);
        ERR_clear_error();
        if (n == 0) {
            if (err)
                *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                        "extra chain %s holds no PEM certificate",
                                        extra_chain);
            return COIL_EINVAL;
        }
    }
    return 0;
}

static int tls_version(int v)
{
    switch (v) {
    case COIL_TLS_1_0:
        return TLS1_VERSION;
    case COIL_TLS_1_1:
        return TLS1_1_VERSION;
    case COIL_TLS_1_2:
        return TLS1_2_VERSION;
    case COIL_TLS_1_3:
        return TLS1_3_VERSION;
    default:
        return -1;
    }
}

/* One SSL_CTX with everything from `o` but the identity given. */
static int build_ctx(coil_tls_context *tc, const coil_tls_options *o,
                     const char *cert_file, const char *key_file, SSL_CTX **out,
                     coil_failure **err)
{
    int server = tc->role == COIL_TLS_SERVER;
    SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!c)
        return fail(err, 0, "cannot create an OpenSSL context%s%s", NULL, NULL);
    *out = c;
    SSL_CTX_set_app_data(c, tc);
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);

    /* Versions: TLS 1.2 at least unless the insecure option says otherwise. */
    int minv = o->min_version ? tls_version(o->min_version) : TLS1_2_VERSION;
    int maxv = o->max_version ? tls_version(o->max_version) : 0;
    if (minv < 0 || maxv < 0 || (maxv && maxv < minv)) {
        if (err)
            *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                    "bad TLS version range (min 0x%x, max 0x%x): use "
                                    "COIL_TLS_1_2 or COIL_TLS_1_3",
                                    (unsigned)o->min_version, (unsigned)o->max_version);
        return COIL_EINVAL;
    }
    if (minv < TLS1_2_VERSION) {
        if (!o->insecure_allow_old_versions) {
            if (err)
                *err = coil_failure_new(
                    COIL_DOMAIN_COIL, COIL_EINVAL,
                    "TLS versions below 1.2 are refused: set "
                    "insecure_allow_old_versions to talk to an old peer");
            return COIL_EINVAL;
        }
        SSL_CTX_set_security_level(c, 0); /* OpenSSL 3 refuses 1.0/1.1 above 0 */
    }
    SSL_CTX_set_min_proto_version(c, minv);
    SSL_CTX_set_max_proto_version(c, maxv);

    if (o->ciphers && SSL_CTX_set_cipher_list(c, o->ciphers) != 1)
        return fail(err, 0, "bad TLS 1.2 cipher list \"%s\"%s", o->ciphers, NULL);
    if (o->ciphersuites && SSL_CTX_set_ciphersuites(c, o->ciphersuites) != 1)
        return fail(err, 0, "bad TLS 1.3 cipher suites \"%s\"%s", o->ciphersuites, NULL);
    if (o->groups && SSL_CTX_set1_groups_list(c, o->groups) != 1)
        return fail(err, 0, "bad key exchange groups \"%s\"%s", o->groups, NULL);

    if (cert_file || o->cert_pem) {
        int rc = load_identity(c, cert_file, key_file, cert_file ? NULL : o->cert_pem,
                               cert_file ? NULL : o->key_pem, o->key_passphrase,
                               o->extra_chain_file, err);
        if (rc != 0)
            return rc;
    }

    /* Trust. */
    if (o->ca_file || o->ca_dir) {
        if (SSL_CTX_load_verify_locations(c, o->ca_file, o->ca_dir) != 1)
            return fail(err, 0, "cannot load CA certificates from %s%s",
                        o->ca_file ? o->ca_file : o->ca_dir, NULL);
    } else if (!server && SSL_CTX_set_default_verify_paths(c) != 1) {
        return fail(err, 0, "cannot load the system's CA store%s%s", NULL, NULL);
    }
    if (server) {
        if (o->request_client_cert || o->require_client_cert) {
            int mode = SSL_VERIFY_PEER;
            if (o->require_client_cert)
                mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
            SSL_CTX_set_verify(c, mode, verify_cb);
            if (o->ca_file) {
                STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca_file);
                if (names)
                    SSL_CTX_set_client_CA_list(c, names);
                ERR_clear_error();
            }
        }
        static const unsigned char sid_ctx[] = "coil";
        SSL_CTX_set_session_id_context(c, sid_ctx, sizeof sid_ctx - 1);
        if (o->no_session_tickets) {
            SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
            SSL_CTX_set_num_tickets(c, 0);
        } else if (o->tickets > 0) {
            SSL_CTX_set_num_tickets(c, (size_t)o->tickets);
        }
        if (tc->alpn_wire)
            SSL_CTX_set_alpn_select_cb(c, alpn_select_cb, tc);
    } else {
        SSL_CTX_set_verify(c, o->insecure_no_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                           o->insecure_no_verify ? NULL : verify_cb);
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT |
                                              SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(c, new_session_cb);
        if (tc->alpn_wire && SSL_CTX_set_alpn_protos(c, tc->alpn_wire, tc->alpn_len) != 0)
            return fail(err, 0, "cannot set ALPN \"%s\"%s", o->alpn, NULL);
    }
    if (tc->keylog_fd >= 0)
        SSL_CTX_set_keylog_callback(c, keylog_cb);
    return 0;
}

int coil_tls_context_new(int role, const coil_tls_options *o, coil_tls_context **out,
                         coil_failure **err)
{
    static const coil_tls_options none;
    if (!o)
        o = &none;
    if (err)
        *err = NULL;
    if (role != COIL_TLS_CLIENT && role != COIL_TLS_SERVER) {
        if (err)
            *err =
                coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                 "TLS role must be COIL_TLS_CLIENT or COIL_TLS_SERVER");
        return COIL_EINVAL;
    }
    if (role == COIL_TLS_SERVER && !o->cert_file && !o->cert_pem) {
        if (err)
            *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                    "a TLS server needs a certificate: set cert_file "
                                    "and key_file (or cert_pem and key_pem)");
        return COIL_EINVAL;
    }
    coil_tls_context *tc = calloc(1, sizeof *tc);
    if (!tc)
        return COIL_ENOMEM;
    tc->refs = 1;
    tc->role = role;
    tc->keylog_fd = -1;
    tc->no_verify = o->insecure_no_verify;
    tc->no_cache = o->no_session_cache;
    tc->handshake_timeout = o->handshake_timeout > 0 ? o->handshake_timeout : 30;
    tc->close_timeout = o->close_timeout > 0 ? o->close_timeout : 30;
    int rc = COIL_ENOMEM;
    if (o->server_name && !(tc->server_name = strdup(o->server_name)))
        goto fail;
    if (o->alpn && (rc = alpn_wire(o->alpn, &tc->alpn_wire, &tc->alpn_len)) != 0) {
        if (err && rc == COIL_EINVAL)
            *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                    "bad ALPN list \"%s\": give protocol names of 1 to "
                                    "255 bytes separated by commas (h2,http/1.1)",
                                    o->alpn);
        goto fail;
    }
    if (o->keylog_file) {
        tc->keylog_fd =
            open(o->keylog_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (tc->keylog_fd < 0) {
            if (err)
                *err = coil_failure_from_errno(errno, "cannot open TLS key log %s",
                                               o->keylog_file);
            rc = COIL_EINVAL;
            goto fail;
        }
        coil_log(COIL_LOG_WARN, LOG_MODULE,
                 "TLS session keys are written to %s: anyone with it can decrypt "
                 "this program's traffic",
                 o->keylog_file);
    }
    rc = build_ctx(tc, o, o->cert_file, o->key_file, &tc->ctx, err);
    if (rc != 0)
        goto fail;
    if (role == COIL_TLS_SERVER && o->n_sni_certs > 0) {
        tc->sni_ctx = calloc(o->n_sni_certs, sizeof *tc->sni_ctx);
        tc->sni_names = calloc(o->n_sni_certs, sizeof *tc->sni_names);
        rc = COIL_ENOMEM;
        if (!tc->sni_ctx || !tc->sni_names)
            goto fail;
        for (size_t i = 0; i < o->n_sni_certs; i++) {
            const coil_tls_sni_cert *sc = &o->sni_certs[i];
            if (!sc->name || !sc->cert_file) {
                if (err)
                    *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                            "SNI certificate %zu needs a name and a "
                                            "cert_file",
                                            i);
                rc = COIL_EINVAL;
                goto fail;
            }
            tc->n_sni = i + 1;
            if (!(tc->sni_names[i] = strdup(sc->name))) {
                rc = COIL_ENOMEM;
                goto fail;
            }
            rc = build_ctx(tc, o, sc->cert_file, sc->key_file, &tc->sni_ctx[i], err);
            if (rc != 0)
                goto fail;
        }
        SSL_CTX_set_tlsext_servername_callback(tc->ctx, servername_cb);
        SSL_CTX_set_tlsext_servername_arg(tc->ctx, tc);
    }
    if (role == COIL_TLS_CLIENT && o->insecure_no_verify)
        coil_log(COIL_LOG_WARN, LOG_MODULE,
                 "TLS client context with insecure_no_verify: peers are not "
                 "authenticated (tests only)");
    *out = tc;
    return 0;
fail:
    if (rc == COIL_ENOMEM && err && !*err)
        *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                "out of memory creating a TLS context");
    coil_tls_context_free(tc);
    return rc;
}

coil_tls_context *coil_tls_context_ref(coil_tls_context *ctx)
{
    if (ctx)
        ctx->refs++;
    return ctx;
}

int coil_tls_context_role(const coil_tls_context *ctx)
{
    return ctx->role;
}

void coil_tls_context_free(coil_tls_context *tc)
{
    if (!tc || --tc->refs > 0)
        return;
    SSL_CTX_free(tc->ctx);
    for (size_t i = 0; i < tc->n_sni; i++) {
        SSL_CTX_free(tc->sni_ctx[i]);
        free(tc->sni_names[i]);
    }
    free(tc->sni_ctx);
    free(tc->sni_names);
    while (tc->sessions) {
        coil__tls_session *e = tc->sessions;
        tc->sessions = e->next;
        SSL_SESSION_free(e->session);
        free(e);
    }
    if (tc->keylog_fd >= 0)
        close(tc->keylog_fd);
    free(tc->alpn_wire);
    free(tc->server_name);
    free(tc);
}
