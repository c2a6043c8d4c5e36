/* Endpoints from strings (Twisted's description syntax), listening and
 * connecting on them, and connect_protocol. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coil/endpoint.h>
#include <coil/tls.h>
#include <coil/log.h>
#include <coil/unix.h>

/* ---- the generic syntax ------------------------------------------------------ */

void coil_endpoint_desc_free(coil_endpoint_desc *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->nargs; i++) {
        free(d->args[i].key);
        free(d->args[i].value);
    }
    free(d->kind);
    free(d);
}

const char *coil_endpoint_desc_get(const coil_endpoint_desc *d, const char *key)
{
    for (int i = 0; i < d->nargs; i++)
        if (d->args[i].key && strcmp(d->args[i].key, key) == 0)
            return d->args[i].value;
    return NULL;
}

/* The description as it may appear in a message: printable ASCII, at most
 * 120 characters, the rest elided. */
static void quote_text(const char *text, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; text[i] && o + 5 < size; i++) {
        unsigned char c = (unsigned char)text[i];
        if (i >= 120) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f)
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
    }
    out[o] = '\0';
}

static int desc_error(coil_failure **err, int code, const char *what, const char *text,
                      const char *fmt, ...) COIL_PRINTF(5, 6);
static int desc_error(coil_failure **err, int code, const char *what, const char *text,
                      const char *fmt, ...)
{
    if (err) {
        char q[512], msg[1024];
        quote_text(text, q, sizeof q);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        *err = coil_failure_new(COIL_DOMAIN_COIL, code, "bad %s '%s': %s", what, q, msg);
    }
    return code;
}

/* One field, unescaped, up to an unescaped character of `stops` (or the
 * end). On return *pos is at that character or the end, and *found is it
 * ('\0' at the end). NULL with *found == '\\' for a trailing backslash,
 * NULL otherwise when memory runs out. */
static char *take_field(const char *text, size_t *pos, const char *stops, char *found)
{
    size_t n = strlen(text + *pos);
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0, i = *pos;
    *found = '\0';
    while (text[i]) {
        char c = text[i];
        if (c == '\\') {
            if (!text[i + 1]) {
                free(out);
                *found = '\\';
                return NULL;
            }
            out[o++] = text[i + 1];
            i += 2;
            continue;
        }
        if (strchr(stops, c)) {
            *found = c;
            break;
        }
        out[o++] = c;
        i++;
    }
    out[o] = '\0';
    *pos = i;
    return out;
}

int coil_endpoint_desc_parse(const char *text, coil_endpoint_desc **out,
                             coil_failure **err)
{
    static const char what[] = "endpoint description";
    *out = NULL;
    if (!text || !*text)
        return desc_error(
            err, COIL_EINVAL, what, "",
            "it is empty (use KIND:ARGS, e.g. tcp:8000 or unix:/run/x.sock)");
    if (strnlen(text, COIL_ENDPOINT_MAX_LEN + 1) > COIL_ENDPOINT_MAX_LEN)
        return desc_error(err, COIL_EINVAL, what, text, "it is longer than %d characters",
                          COIL_ENDPOINT_MAX_LEN);
    coil_endpoint_desc *d = calloc(1, sizeof *d);
    if (!d)
        return desc_error(err, COIL_ENOMEM, what, text, "out of memory");
    size_t pos = 0;
    char found;
    d->kind = take_field(text, &pos, ":", &found);
    if (!d->kind) {
        int code = found == '\\' ? COIL_EINVAL : COIL_ENOMEM;
        coil_endpoint_desc_free(d);
        return desc_error(err, code, what, text,
                          code == COIL_EINVAL ? "it ends with a lone backslash"
                                              : "out of memory");
    }
    if (!d->kind[0]) {
        coil_endpoint_desc_free(d);
        return desc_error(err, COIL_EINVAL, what, text,
                          "the kind before the first ':' is empty (tcp, unix, ...)");
    }
    if (!text[pos]) {
        int code = desc_error(err, COIL_EINVAL, what, text,
                              "it has no arguments after the kind '%.40s'", d->kind);
        coil_endpoint_desc_free(d);
        return code;
    }
    while (text[pos] == ':') {
        pos++;
        if (d->nargs == COIL_ENDPOINT_MAX_ARGS) {
            coil_endpoint_desc_free(d);
            return desc_error(err, COIL_EINVAL, what, text,
                              "it has more than %d arguments", COIL_ENDPOINT_MAX_ARGS);
        }
        coil_endpoint_arg *a = &d->args[d->nargs];
        char *first = take_field(text, &pos, ":=", &found);
        if (!first)
            goto bad_field;
        if (found == '=') {
            pos++;
            char *value = take_field(text, &pos, ":", &found);
            if (!value) {
                free(first);
                goto bad_field;
            }
            if (!first[0]) {
                int code =
                    desc_error(err, COIL_EINVAL, what, text,
                               "argument %d has '=' but no name before it", d->nargs + 1);
                free(first);
                free(value);
                coil_endpoint_desc_free(d);
                return code;
            }
            if (coil_endpoint_desc_get(d, first)) {
                int code = desc_error(err, COIL_EINVAL, what, text,
                                      "option '%.40s' is given twice", first);
                free(first);
                free(value);
                coil_endpoint_desc_free(d);
                return code;
            }
            a->key = first;
            a->value = value;
        } else {
            a->value = first;
        }
        d->nargs++;
    }
    *out = d;
    return 0;
bad_field:
    coil_endpoint_desc_free(d);
    return found == '\\'
               ? desc_error(err, COIL_EINVAL, what, text, "it ends with a lone backslash")
               : desc_error(err, COIL_ENOMEM, what, text, "out of memory");
}

/* ---- endpoints --------------------------------------------------------------- */

typedef enum {
    EP_TCP_SERVER,
    EP_UNIX_SERVER,
    EP_TCP_CLIENT,
    EP_UNIX_CLIENT,
    EP_TLS_SERVER,
    EP_TLS_CLIENT
} ep_type;

struct coil_endpoint {
    ep_type type;
    coil_tls_context *tls; /* TLS endpoints: built once at parse time */
    char *sni;             /* TLS clients: the name to verify (default host) */
    char *text;
    char *host; /* interface / host / path */
    char *bind;
    int port;
    int backlog;
    unsigned mode;
    double timeout;
    double resolve_timeout;       /* clients: seconds to resolve the host name */
    size_t high_water, low_water; /* each connection's write queue; 0: default */
};

void coil_endpoint_free(coil_endpoint *e)
{
    if (!e)
        return;
    free(e->text);
    free(e->host);
    free(e->bind);
    free(e->sni);
    coil_tls_context_free(e->tls);
    free(e);
}

const char *coil_endpoint_kind(const coil_endpoint *e)
{
    if (e->type == EP_TLS_SERVER || e->type == EP_TLS_CLIENT)
        return "tls";
    return e->type == EP_TCP_SERVER || e->type == EP_TCP_CLIENT ? "tcp" : "unix";
}

const char *coil_endpoint_text(const coil_endpoint *e)
{
    return e->text;
}

static const char TCP_SERVER_USE[] =
    "tcp:PORT[:interface=ADDR][:backlog=N][:highWater=BYTES][:lowWater=BYTES]";
static const char UNIX_SERVER_USE[] =
    "unix:PATH[:mode=0660][:backlog=N][:highWater=BYTES][:lowWater=BYTES]";
static const char TCP_CLIENT_USE[] =
    "tcp:HOST:PORT or tcp:host=HOST:port=PORT, then [:timeout=S][:bindAddress=ADDR]"
    "[:resolveTimeout=S][:highWater=BYTES][:lowWater=BYTES]";
static const char UNIX_CLIENT_USE[] =
    "unix:PATH or unix:path=PATH, then [:timeout=S][:highWater=BYTES][:lowWater=BYTES]";
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

typedef struct parse_ctx {
    const char *text;
    const char *what; /* "server endpoint" */
    const char *use;
    coil_failure **err;
} parse_ctx;

static int bad(const parse_ctx *c, const char *fmt, ...) COIL_PRINTF(2, 3);
static int bad(const parse_ctx *c, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return desc_error(c->err, COIL_EINVAL, c->what, c->text, "%s (use %s)", msg, c->use);
}

static int parse_long(const char *s, int base, long lo, long hi, long *out)
{
    if (!*s || isspace((unsigned char)*s) || *s == '+' || *s == '-')
        return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, base);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int get_port(const parse_ctx *c, const char *s, int *out, int allow_zero)
{
    long v;
    if (parse_long(s, 10, allow_zero ? 0 : 1, 65535, &v) != 0)
        return bad(c, "port '%.40s' is not a number from %d to 65535", s,
                   allow_zero ? 0 : 1);
    *out = (int)v;
    return 0;
}

static int get_timeout(const parse_ctx *c, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(v > 0) || v > 86400 || isspace((unsigned char)*s))
        return bad(c, "timeout '%.40s' is not a number of seconds above 0", s);
    *out = v;
    return 0;
}

static int get_backlog(const parse_ctx *c, const char *s, int *out)
{
    long v;
    if (parse_long(s, 10, 1, 65535, &v) != 0)
        return bad(c, "backlog '%.40s' is not a number from 1 to 65535", s);
    *out = (int)v;
    return 0;
}

/* Every KEY= must be one of `keys`; at most `max_pos` positionals. */
static int check_args(const parse_ctx *c, const coil_endpoint_desc *d,
                      const char *const *keys, int max_pos)
{
    int pos = 0;
    for (int i = 0; i < d->nargs; i++) {
        const coil_endpoint_arg *a = &d->args[i];
        if (!a->key) {
            if (++pos > max_pos)
                return bad(c, "unexpected argument '%.40s'", a->value);
            continue;
        }
        int ok = 0;
        for (const char *const *k = keys; *k; k++)
            ok |= strcmp(*k, a->key) == 0;
        if (!ok)
            return bad(c, "unknown option '%.40s'", a->key);
    }
    return 0;
}

/* The i-th positional argument, or NULL. */
static const char *positional(const coil_endpoint_desc *d, int n)
{
    for (int i = 0; i < d->nargs; i++)
        if (!d->args[i].key && n-- == 0)
            return d->args[i].value;
    return NULL;
}

/* A value given positionally at `n` or as `key`, not both. `*out` is always
 * set (NULL on error), so callers never read an uninitialised pointer. */
static int pick(const parse_ctx *c, const coil_endpoint_desc *d, int n, const char *key,
                const char **out)
{
    const char *p = positional(d, n), *k = coil_endpoint_desc_get(d, key);
    *out = NULL;
    if (p && k)
        return bad(c, "%s is given both as '%.40s' and as %s=%.40s", key, p, key, k);
    *out = p ? p : k;
    return 0;
}

static int dup_to(char **dst, const char *s)
{
    if (!s)
        return 0;
    *dst = strdup(s);
    return *dst ? 0 : COIL_ENOMEM;
}

static const char *const TCP_SERVER_KEYS[] = {"port",      "interface", "backlog",
                                              "highWater", "lowWater",  NULL};
static const char *const TCP_CLIENT_KEYS[] = {
    "host",           "port",      "timeout",  "bindAddress",
    "resolveTimeout", "highWater", "lowWater", NULL};

/* highWater= / lowWater=: the write queue marks of each connection, in
 * bytes (coil_transport_set_water_marks); unset, the defaults (64 KiB, and
 * a quarter of highWater). */
static int get_marks(const parse_ctx *c, const coil_endpoint_desc *d, coil_endpoint *e)
{
    static const char *const keys[] = {"highWater", "lowWater"};
    size_t *dst[] = {&e->high_water, &e->low_water};
    for (int i = 0; i < 2; i++) {
        const char *v = coil_endpoint_desc_get(d, keys[i]);
        long n;
        if (!v)
            continue;
        if (parse_long(v, 10, 1, 1L << 30, &n) != 0)
            return bad(c, "%s '%.40s' is not a number of bytes from 1 to 1073741824",
                       keys[i], v);
        *dst[i] = (size_t)n;
    }
    size_t high = e->high_water ? e->high_water : 64 * 1024;
    size_t low = e->low_water ? e->low_water : high / 4;
    if (low > high)
        return bad(c, "lowWater (%zu) is above highWater (%zu)", low, high);
    return 0;
}

static int parse_tcp_server(const parse_ctx *c, const coil_endpoint_desc *d,
                            coil_endpoint *e, const char *const *keys)
{
    const char *v;
    int rc;
    if ((rc = check_args(c, d, keys, 1)) || (rc = pick(c, d, 0, "port", &v)))
        return rc;
    if (!v)
        return bad(c, "the port is missing");
    if ((rc = get_port(c, v, &e->port, 1)))
        return rc;
    if ((v = coil_endpoint_desc_get(d, "backlog")) &&
        (rc = get_backlog(c, v, &e->backlog)))
        return rc;
    if ((rc = get_marks(c, d, e)))
        return rc;
    v = coil_endpoint_desc_get(d, "interface");
    if (v && !*v)
        return bad(c, "interface is empty");
    return dup_to(&e->host, v);
}

static int parse_unix_server(const parse_ctx *c, const coil_endpoint_desc *d,
                             coil_endpoint *e)
{
    static const char *const keys[] = {"address",  "path",      "mode",     "backlog",
                                       "lockfile", "highWater", "lowWater", NULL};
    const char *v, *alt;
    int rc;
    if ((rc = check_args(c, d, keys, 1)) || (rc = pick(c, d, 0, "address", &v)) ||
        (rc = pick(c, d, 0, "path", &alt)))
        return rc;
    if (v && alt && coil_endpoint_desc_get(d, "path") &&
        coil_endpoint_desc_get(d, "address"))
        return bad(c, "give the path once, as PATH, path= or address=");
    if (!v)
        v = alt;
    if (!v || !*v)
        return bad(c, "the socket path is missing");
    if (strlen(v) > 107)
        return bad(c, "socket path '%.40s...' is longer than 107 bytes", v);
    const char *m = coil_endpoint_desc_get(d, "mode");
    if (m) {
        long mode;
        if (parse_long(m, 8, 0, 07777, &mode) != 0)
            return bad(c, "mode '%.40s' is not an octal file mode such as 0660", m);
        e->mode = (unsigned)mode;
    }
    if ((m = coil_endpoint_desc_get(d, "backlog")) &&
        (rc = get_backlog(c, m, &e->backlog)))
        return rc;
    if ((rc = get_marks(c, d, e)))
        return rc;
    return dup_to(&e->host, v);
}

static int parse_tcp_client(const parse_ctx *c, const coil_endpoint_desc *d,
                            coil_endpoint *e, const char *const *keys)
{
    const char *host, *port, *v;
    int rc;
    if ((rc = check_args(c, d, keys, 2)))
        return rc;
    if (coil_endpoint_desc_get(d, "host")) {
        /* host= given: a lone positional is the port. */
        if (positional(d, 1))
            return bad(c, "host is given both as '%.40s' and as host=%.40s",
                       positional(d, 0), coil_endpoint_desc_get(d, "host"));
        host = coil_endpoint_desc_get(d, "host");
        rc = pick(c, d, 0, "port", &port);
    } else {
        host = positional(d, 0);
        rc = pick(c, d, 1, "port", &port);
    }
    if (rc)
        return rc;
    if (!host || !*host)
        return bad(c, "the host is missing");
    if (!port)
        return bad(c, "the port is missing");
    if ((rc = get_port(c, port, &e->port, 0)))
        return rc;
    if ((v = coil_endpoint_desc_get(d, "timeout")) &&
        (rc = get_timeout(c, v, &e->timeout)))
        return rc;
    if ((v = coil_endpoint_desc_get(d, "resolveTimeout")) &&
        (rc = get_timeout(c, v, &e->resolve_timeout)))
        return rc;
    if ((rc = get_marks(c, d, e)))
        return rc;
    v = coil_endpoint_desc_get(d, "bindAddress");
    if (v && !*v)
        return bad(c, "bindAddress is empty");
    if ((rc = dup_to(&e->bind, v)))
        return rc;
    return dup_to(&e->host, host);
}

static int parse_unix_client(const parse_ctx *c, const coil_endpoint_desc *d,
                             coil_endpoint *e)
{
    static const char *const keys[] = {"path",      "timeout",  "checkPID",
                                       "highWater", "lowWater", NULL};
    const char *v;
    int rc;
    if ((rc = check_args(c, d, keys, 1)) || (rc = pick(c, d, 0, "path", &v)))
        return rc;
    if (!v || !*v)
        return bad(c, "the socket path is missing");
    if (strlen(v) > 107)
        return bad(c, "socket path '%.40s...' is longer than 107 bytes", v);
    const char *t = coil_endpoint_desc_get(d, "timeout");
    if (t && (rc = get_timeout(c, t, &e->timeout)))
        return rc;
    if ((rc = get_marks(c, d, e)))
        return rc;
    return dup_to(&e->host, v);
}

/* yes/no, true/false, 1/0 */
static int get_bool(const parse_ctx *c, const char *key, const char *v, int *out)
{
    if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
        *out = 1;
    else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0"))
        *out = 0;
    else
        return bad(c, "%s='%.40s' is not yes or no", key, v);
    return 0;
}

static int tls_context(const parse_ctx *c, coil_endpoint *e, int role,
                       const coil_tls_options *o)
{
    coil_failure *why = NULL;
    int rc = coil_tls_context_new(role, o, &e->tls, &why);
    if (rc != 0) {
        rc = bad(c, "%s", why ? coil_failure_message(why) : "cannot set up TLS");
        coil_failure_free(why);
    }
    return rc;
}

/* The keys both TLS sides take: handshakeTimeout=, closeTimeout= (seconds). */
static int tls_timeouts(const parse_ctx *c, const coil_endpoint_desc *d,
                        coil_tls_options *o)
{
    static const char *const keys[] = {"handshakeTimeout", "closeTimeout"};
    double *dst[] = {&o->handshake_timeout, &o->close_timeout};
    for (int i = 0; i < 2; i++) {
        const char *v = coil_endpoint_desc_get(d, keys[i]);
        if (!v)
            continue;
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        if (!*v || *end || errno || !(x > 0) || x > 86400 || isspace((unsigned char)*v))
            return bad(c, "%s '%.40s' is not a number of seconds above 0", keys[i], v);
        *dst[i] = x;
    }
    return 0;
}

static int parse_tls_server(const parse_ctx *c, const coil_endpoint_desc *d,
                            coil_endpoint *e)
{
    static const char *const keys[] = {
        "port",           "interface", "backlog",          "privateKey",   "certKey",
        "extraCertChain", "caCerts",   "requireCert",      "alpn",         "ciphersuites",
        "groups",         "tickets",   "handshakeTimeout", "closeTimeout", "highWater",
        "lowWater",       NULL};
    int rc = parse_tcp_server(c, d, e, keys);
    if (rc)
        return rc;
    coil_tls_options o = {0};
    if ((rc = tls_timeouts(c, d, &o)))
        return rc;
    const char *t = coil_endpoint_desc_get(d, "tickets");
    if (t) {
        long n;
        if (parse_long(t, 10, 0, 16, &n) != 0)
            return bad(c, "tickets '%.40s' is not a number from 0 to 16", t);
        if (n == 0)
            o.no_session_tickets = 1;
        else
            o.tickets = (int)n;
    }
    o.key_file = coil_endpoint_desc_get(d, "privateKey");
    o.cert_file = coil_endpoint_desc_get(d, "certKey");
    if (!o.key_file)
        return bad(c, "privateKey= is missing (the PEM file of the server's key)");
    if (!o.cert_file)
        o.cert_file = o.key_file; /* Twisted: the key file may hold both */
    o.extra_chain_file = coil_endpoint_desc_get(d, "extraCertChain");
    o.ca_file = coil_endpoint_desc_get(d, "caCerts");
    o.alpn = coil_endpoint_desc_get(d, "alpn");
    const char *v = coil_endpoint_desc_get(d, "requireCert");
    if (v && (rc = get_bool(c, "requireCert", v, &o.require_client_cert)))
        return rc;
    if (o.require_client_cert && !o.ca_file)
        return bad(c, "requireCert=yes needs caCerts=FILE (whom to trust)");
    o.request_client_cert = o.ca_file != NULL;
    o.ciphersuites = coil_endpoint_desc_get(d, "ciphersuites");
    o.groups = coil_endpoint_desc_get(d, "groups");
    return tls_context(c, e, COIL_TLS_SERVER, &o);
}

static int parse_tls_client(const parse_ctx *c, const coil_endpoint_desc *d,
                            coil_endpoint *e)
{
    static const char *const keys[] = {"host",         "port",
                                       "timeout",      "resolveTimeout",
                                       "bindAddress",  "caCerts",
                                       "certificate",  "privateKey",
                                       "sni",          "alpn",
                                       "resume",       "ciphersuites",
                                       "groups",       "handshakeTimeout",
                                       "closeTimeout", "highWater",
                                       "lowWater",     NULL};
    int rc = parse_tcp_client(c, d, e, keys);
    if (rc)
        return rc;
    coil_tls_options o = {0};
    if ((rc = tls_timeouts(c, d, &o)))
        return rc;
    o.ca_file = coil_endpoint_desc_get(d, "caCerts");
    o.cert_file = coil_endpoint_desc_get(d, "certificate");
    o.key_file = coil_endpoint_desc_get(d, "privateKey");
    if (o.key_file && !o.cert_file)
        return bad(c, "privateKey= needs certificate= (the client certificate)");
    o.alpn = coil_endpoint_desc_get(d, "alpn");
    const char *v = coil_endpoint_desc_get(d, "resume");
    int resume = 1;
    if (v && (rc = get_bool(c, "resume", v, &resume)))
        return rc;
    o.no_session_cache = !resume;
    o.ciphersuites = coil_endpoint_desc_get(d, "ciphersuites");
    o.groups = coil_endpoint_desc_get(d, "groups");
    const char *sni = coil_endpoint_desc_get(d, "sni");
    if (sni && !*sni)
        return bad(c, "sni is empty");
    if ((rc = dup_to(&e->sni, sni)))
        return rc;
    return tls_context(c, e, COIL_TLS_CLIENT, &o);
}

static int endpoint_parse(const char *text, int server, coil_endpoint **out,
                          coil_failure **err)
{
    *out = NULL;
    if (err)
        *err = NULL;
    parse_ctx c = {text ? text : "", server ? "server endpoint" : "client endpoint",
                   server ? "tcp:PORT, unix:PATH or ssl:PORT:privateKey=KEY.pem"
                          : "tcp:HOST:PORT, unix:PATH or tls:HOST:PORT",
                   err};
    coil_endpoint_desc *d;
    int rc = coil_endpoint_desc_parse(text, &d, NULL);
    if (rc == COIL_ENOMEM)
        return desc_error(err, rc, c.what, c.text, "out of memory");
    if (rc) {
        coil_failure *inner = NULL;
        rc = coil_endpoint_desc_parse(text, &d, &inner);
        coil_endpoint_desc_free(d);
        /* Reword "bad endpoint description 'x': why" for this side. */
        const char *msg = inner ? strstr(coil_failure_message(inner), "': ") : NULL;
        rc = bad(&c, "%s", msg ? msg + 3 : "cannot parse it");
        coil_failure_free(inner);
        return rc;
    }
    coil_endpoint *e = calloc(1, sizeof *e);
    if (!e || !(e->text = strdup(text))) {
        free(e);
        coil_endpoint_desc_free(d);
        return desc_error(err, COIL_ENOMEM, c.what, c.text, "out of memory");
    }
    if (strcmp(d->kind, "tcp") == 0) {
        e->type = server ? EP_TCP_SERVER : EP_TCP_CLIENT;
        c.use = server ? TCP_SERVER_USE : TCP_CLIENT_USE;
        rc = server ? parse_tcp_server(&c, d, e, TCP_SERVER_KEYS)
                    : parse_tcp_client(&c, d, e, TCP_CLIENT_KEYS);
    } else if (strcmp(d->kind, "unix") == 0) {
        e->type = server ? EP_UNIX_SERVER : EP_UNIX_CLIENT;
        c.use = server ? UNIX_SERVER_USE : UNIX_CLIENT_USE;
        rc = server ? parse_unix_server(&c, d, e) : parse_unix_client(&c, d, e);
    } else if (strcmp(d->kind, "ssl") == 0 || strcmp(d->kind, "tls") == 0) {
        e->type = server ? EP_TLS_SERVER : EP_TLS_CLIENT;
        c.use = server ? TLS_SERVER_USE : TLS_CLIENT_USE;
        rc = server ? parse_tls_server(&c, d, e) : parse_tls_client(&c, d, e);
    } else {
        rc = bad(&c, "unknown kind '%.40s'", d->kind);
    }
    if (rc == COIL_ENOMEM)
        desc_error(err, rc, c.what, c.text, "out of memory");
    coil_endpoint_desc_free(d);
    if (rc) {
        coil_endpoint_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

int coil_endpoint_server(const char *text, coil_endpoint **out, coil_failure **err)
{
    return endpoint_parse(text, 1, out, err);
}

int coil_endpoint_client(const char *text, coil_endpoint **out, coil_failure **err)
{
    return endpoint_parse(text, 0, out, err);
}

coil_endpoint *coil__endpoint_copy(const coil_endpoint *e);
coil_endpoint *coil__endpoint_copy(const coil_endpoint *e)
{
    coil_endpoint *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    *c = *e;
    c->text = c->host = c->bind = c->sni = NULL;
    c->tls = coil_tls_context_ref(e->tls);
    if (dup_to(&c->text, e->text) || dup_to(&c->host, e->host) ||
        dup_to(&c->bind, e->bind) || dup_to(&c->sni, e->sni)) {
        coil_endpoint_free(c);
        return NULL;
    }
    return c;
}

/* ---- listening and connecting ------------------------------------------------ */

static int wrong_side(const coil_endpoint *e, const char *need, coil_failure **err)
{
    if (err)
        *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                "endpoint '%s' is not a %s endpoint", e->text, need);
    return COIL_EINVAL;
}

int coil_endpoint_listen(coil_reactor *r, const coil_endpoint *e, coil_factory *f,
                         coil_listener **out, coil_failure **err)
{
    if (err)
        *err = NULL;
    if (e->type == EP_TCP_SERVER || e->type == EP_TLS_SERVER) {
        coil_tcp_listen_options o = {.interface = e->host,
                                     .port = e->port,
                                     .backlog = e->backlog,
                                     .high_water = e->high_water,
                                     .low_water = e->low_water};
        if (e->tls)
            return coil_tls_listen_tcp(r, &o, e->tls, f, out, err);
        return coil_tcp_listen(r, &o, f, out, err);
    }
    if (e->type == EP_UNIX_SERVER) {
        coil_unix_listen_options o = {.path = e->host,
                                      .mode = e->mode,
                                      .backlog = e->backlog,
                                      .high_water = e->high_water,
                                      .low_water = e->low_water};
        return coil_unix_listen(r, &o, f, out, err);
    }
    return wrong_side(e, "server", err);
}

int coil_endpoint_connect(coil_reactor *r, const coil_endpoint *e, coil_factory *f,
                          coil_connector **out, coil_failure **err)
{
    if (err)
        *err = NULL;
    int rc;
    if (e->type == EP_TCP_CLIENT || e->type == EP_TLS_CLIENT) {
        coil_tcp_connect_options o = {.host = e->host,
                                      .port = e->port,
                                      .timeout = e->timeout,
                                      .resolve_timeout = e->resolve_timeout,
                                      .bind_address = e->bind,
                                      .high_water = e->high_water,
                                      .low_water = e->low_water};
        rc = e->tls ? coil_tls_connect_tcp(r, &o, e->tls, e->sni, f, out)
                    : coil_tcp_connect(r, &o, f, out);
    } else if (e->type == EP_UNIX_CLIENT) {
        coil_unix_connect_options o = {.path = e->host,
                                       .timeout = e->timeout,
                                       .high_water = e->high_water,
                                       .low_water = e->low_water};
        rc = coil_unix_connect(r, &o, f, out);
    } else {
        return wrong_side(e, "client", err);
    }
    if (rc && err)
        *err = coil_failure_new(COIL_DOMAIN_COIL, rc, "cannot connect to '%s': %s",
                                e->text, coil_strerror(rc));
    return rc;
}

int coil_listen(coil_reactor *r, const char *text, coil_factory *f, coil_listener **out,
                coil_failure **err)
{
    coil_endpoint *e;
    int rc = coil_endpoint_server(text, &e, err);
    if (rc)
        return rc;
    rc = coil_endpoint_listen(r, e, f, out, err);
    coil_endpoint_free(e);
    return rc;
}

int coil_connect(coil_reactor *r, const char *text, coil_factory *f, coil_connector **out,
                 coil_failure **err)
{
    coil_endpoint *e;
    int rc = coil_endpoint_client(text, &e, err);
    if (rc)
        return rc;
    rc = coil_endpoint_connect(r, e, f, out, err);
    coil_endpoint_free(e);
    return rc;
}

/* ---- connect_protocol ---------------------------------------------------------
 *
 * A one-shot factory that hands out `p` once. It lives until the attempt is
 * decided: the deferred fires (connected or failed), then the factory frees
 * its connector and itself on a later pass (never inside the connector's
 * own callback). */

typedef struct one_shot {
    coil_factory f;
    coil_reactor *r;
    coil_protocol *p; /* until handed out */
    coil_deferred *d; /* our reference, until fired */
    coil_connector *c;
    int done;
} one_shot;

static int one_shot_free(void *arg)
{
    one_shot *s = arg;
    coil_connector_free(s->c);
    if (s->p && s->p->ops->destroy)
        s->p->ops->destroy(s->p);
    free(s);
    return 0;
}

static void one_shot_finish(one_shot *s)
{
    if (s->done)
        return;
    s->done = 1;
    coil_deferred_unref(s->d);
    s->d = NULL;
    if (coil_reactor_call_soon(s->r, one_shot_free, s) != 0)
        coil_log(COIL_LOG_ERROR, "endpoint", "out of memory: a connector leaks");
}

static coil_protocol *one_shot_build(coil_factory *f, const coil_address *peer)
{
    one_shot *s = (one_shot *)f;
    coil_protocol *p = s->p;
    s->p = NULL;
    return p;
}

static void one_shot_connected(coil_factory *f, coil_connector *c, coil_transport *t)
{
    one_shot *s = (one_shot *)f;
    coil_deferred *d = s->d;
    s->d = NULL;
    one_shot_finish(s);
    coil_deferred_callback(d, t->protocol, NULL);
    coil_deferred_unref(d);
}

static void one_shot_failed(coil_factory *f, coil_connector *c, const coil_failure *why)
{
    one_shot *s = (one_shot *)f;
    if (s->done)
        return;
    coil_deferred *d = s->d;
    s->d = NULL;
    one_shot_finish(s);
    coil_deferred_errback(d, coil_failure_copy(why));
    coil_deferred_unref(d);
}

static void one_shot_lost(coil_factory *f, coil_connector *c, const coil_failure *why)
{
    /* The connection came up and made connection_made, but closed before
     * `connected` (e.g. the protocol closed it at once): fail if still
     * waiting. */
    one_shot_failed(f, c, why);
}

static const coil_factory_ops one_shot_ops = {
    .build_protocol = one_shot_build,
    .connected = one_shot_connected,
    .connection_failed = one_shot_failed,
    .connection_lost = one_shot_lost,
};

static void one_shot_cancel(coil_deferred *d, void *arg)
{
    one_shot *s = arg;
    if (s->done)
        return;
    /* connection_failed(ECANCELLED) fires the deferred through us. */
    coil_connector_stop_connecting(s->c);
}

coil_deferred *coil_connect_protocol(coil_reactor *r, const coil_endpoint *e,
                                     coil_protocol *p)
{
    one_shot *s = calloc(1, sizeof *s);
    coil_deferred *d = s ? coil_deferred_new_cancellable(one_shot_cancel, s) : NULL;
    if (!d) {
        free(s);
        if (p->ops->destroy)
            p->ops->destroy(p);
        return NULL;
    }
    s->f.ops = &one_shot_ops;
    s->r = r;
    s->p = p;
    s->d = coil_deferred_ref(d);
    coil_failure *err = NULL;
    int rc = coil_endpoint_connect(r, e, &s->f, &s->c, &err);
    if (rc != 0) {
        /* Nothing was started: fail now and free at once. */
        if (!s->done) {
            s->done = 1;
            coil_deferred_unref(s->d);
            s->d = NULL;
            coil_deferred_errback(d, err ? err
                                         : coil_failure_new(COIL_DOMAIN_COIL, rc,
                                                            "cannot connect to '%s'",
                                                            e->text));
            err = NULL;
            one_shot_free(s);
        }
        coil_failure_free(err);
    }
    return d;
}
