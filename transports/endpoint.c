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

#include <pthread.h>

#include <coil/endpoint.h>
#include <coil/log.h>
#include <coil/plugin.h>
#include <coil/unix.h>

#include "plugins_private.h"

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

/* ---- the table of kinds -------------------------------------------------------- */

#define MAX_KINDS 64

static pthread_mutex_t kinds_lock = PTHREAD_MUTEX_INITIALIZER;
static const coil_endpoint_kind_ops *kinds[MAX_KINDS];
static int n_kinds;
static pthread_once_t plugins_once = PTHREAD_ONCE_INIT;
/* Set on the thread registering coil's own kinds (inside the once). */
static _Thread_local int in_builtins;

static const coil_endpoint_kind_ops tcp_kind, unix_kind;

static void register_builtins(void)
{
    in_builtins = 1;
    if (coil_endpoint_register_kind(&tcp_kind, NULL) != 0 ||
        coil_endpoint_register_kind(&unix_kind, NULL) != 0)
        coil_log(COIL_LOG_ERROR, "endpoint", "cannot register the tcp: and unix: kinds");
    coil__builtin_plugins_register();
    in_builtins = 0;
}

void coil__plugins_init(void)
{
    if (!in_builtins) /* a builtin plug-in asking from inside: it is under way */
        pthread_once(&plugins_once, register_builtins);
}

static int kind_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 31)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '_')
            return 0;
    return 1;
}

/* The kind answering to `name` (its name or alias); the lock is held. */
static const coil_endpoint_kind_ops *find_locked(const char *name)
{
    for (int i = 0; i < n_kinds; i++)
        if (strcmp(kinds[i]->name, name) == 0 ||
            (kinds[i]->alias && strcmp(kinds[i]->alias, name) == 0))
            return kinds[i];
    return NULL;
}

static int register_error(coil_failure **err, int code, const char *fmt, ...)
    COIL_PRINTF(3, 4);
static int register_error(coil_failure **err, int code, const char *fmt, ...)
{
    if (err) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        *err = coil_failure_new(COIL_DOMAIN_COIL, code, "%s", msg);
    }
    return code;
}

int coil_endpoint_register_kind(const coil_endpoint_kind_ops *k, coil_failure **err)
{
    if (err)
        *err = NULL;
    coil__plugins_init(); /* coil's own kinds come first, always */
    if (!k || !kind_name_ok(k->name) || (k->alias && !kind_name_ok(k->alias)))
        return register_error(err, COIL_EINVAL,
                              "cannot register endpoint kind '%.40s': a name (and alias) "
                              "is 1 to 31 letters, digits, '-' or '_'",
                              k && k->name ? k->name : "(null)");
    if (!k->parse || (!k->listen && !k->connect))
        return register_error(err, COIL_EINVAL,
                              "cannot register endpoint kind '%s': it needs parse and "
                              "listen, connect or both",
                              k->name);
    pthread_mutex_lock(&kinds_lock);
    const coil_endpoint_kind_ops *old = find_locked(k->name);
    const char *taken = k->name;
    if (!old && k->alias && (old = find_locked(k->alias)))
        taken = k->alias;
    if (old || n_kinds == MAX_KINDS) {
        pthread_mutex_unlock(&kinds_lock);
        if (old)
            return register_error(
                err, COIL_EBUSY,
                "cannot register endpoint kind '%s': the name '%s' is "
                "taken by the kind '%s' registered before; pick another "
                "name",
                k->name, taken, old->name);
        return register_error(err, COIL_ENOMEM,
                              "cannot register endpoint kind '%s': the table is full (%d "
                              "kinds)",
                              k->name, MAX_KINDS);
    }
    kinds[n_kinds++] = k;
    pthread_mutex_unlock(&kinds_lock);
    return 0;
}

const coil_endpoint_kind_ops *coil_endpoint_find_kind(const char *name)
{
    coil__plugins_init();
    if (!name)
        return NULL;
    pthread_mutex_lock(&kinds_lock);
    const coil_endpoint_kind_ops *k = find_locked(name);
    pthread_mutex_unlock(&kinds_lock);
    return k;
}

/* "tcp:PORT, unix:PATH or mykind:ARGS": every kind's short
 * form for one side, in the order they were registered. */
static void list_examples(int server, char *out, size_t size)
{
    const char *ex[MAX_KINDS];
    int n = 0;
    coil__plugins_init(); /* the first description parsed: kinds not yet in */
    pthread_mutex_lock(&kinds_lock);
    for (int i = 0; i < n_kinds; i++) {
        const char *e = server ? kinds[i]->server_example : kinds[i]->client_example;
        if (e && (server ? kinds[i]->listen != NULL : kinds[i]->connect != NULL))
            ex[n++] = e;
    }
    pthread_mutex_unlock(&kinds_lock);
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < n && o < size; i++)
        o += (size_t)snprintf(out + o, size - o, "%s%s",
                              i == 0       ? ""
                              : i == n - 1 ? " or "
                                           : ", ",
                              ex[i]);
}

/* "tcp, unix, mykind, its-alias": the names every kind answers to. */
static void list_names(char *out, size_t size)
{
    size_t o = 0;
    out[0] = '\0';
    pthread_mutex_lock(&kinds_lock);
    for (int i = 0; i < n_kinds && o < size; i++) {
        o += (size_t)snprintf(out + o, size - o, "%s%s", i ? ", " : "", kinds[i]->name);
        if (kinds[i]->alias && o < size)
            o += (size_t)snprintf(out + o, size - o, ", %s", kinds[i]->alias);
    }
    pthread_mutex_unlock(&kinds_lock);
}

/* ---- endpoints --------------------------------------------------------------- */

struct coil_endpoint {
    int refs; /* coil__endpoint_copy shares */
    const coil_endpoint_kind_ops *kind;
    int server;
    char *text;
    void *state; /* the kind's */
};

struct coil_endpoint_parser {
    const char *text;
    const char *what; /* "server endpoint" */
    const char *use;
    int server;
    coil_failure **err;
};

void coil_endpoint_free(coil_endpoint *e)
{
    if (!e || --e->refs > 0)
        return;
    if (e->state && e->kind->free_state)
        e->kind->free_state(e->state);
    free(e->text);
    free(e);
}

const char *coil_endpoint_kind(const coil_endpoint *e)
{
    return e->kind->name;
}

const char *coil_endpoint_text(const coil_endpoint *e)
{
    return e->text;
}

/* ---- helpers for the kinds' parsers -------------------------------------------- */

static int vbad(const coil_endpoint_parser *c, const char *fmt, va_list ap)
    COIL_PRINTF(2, 0);
static int vbad(const coil_endpoint_parser *c, const char *fmt, va_list ap)
{
    char msg[600];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (c->err && *c->err) /* the first mistake is the one to fix */
        return COIL_EINVAL;
    return desc_error(c->err, COIL_EINVAL, c->what, c->text, "%s (use %s)", msg, c->use);
}

int coil_endpoint_bad(const coil_endpoint_parser *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vbad(c, fmt, ap);
    va_end(ap);
    return rc;
}

#define bad coil_endpoint_bad

int coil_endpoint_parser_is_server(const coil_endpoint_parser *p)
{
    return p->server;
}

const char *coil_endpoint_parser_text(const coil_endpoint_parser *p)
{
    return p->text;
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

int coil_endpoint_port(const coil_endpoint_parser *c, const char *s, int allow_zero,
                       int *out)
{
    long v;
    if (parse_long(s, 10, allow_zero ? 0 : 1, 65535, &v) != 0)
        return bad(c, "port '%.40s' is not a number from %d to 65535", s,
                   allow_zero ? 0 : 1);
    *out = (int)v;
    return 0;
}

int coil_endpoint_seconds(const coil_endpoint_parser *c, const char *key, const char *s,
                          double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(v > 0) || v > 86400 || isspace((unsigned char)*s))
        return bad(c, "%s '%.40s' is not a number of seconds above 0", key, s);
    *out = v;
    return 0;
}

int coil_endpoint_number(const coil_endpoint_parser *c, const char *key, const char *s,
                         long lo, long hi, long *out)
{
    if (parse_long(s, 10, lo, hi, out) != 0)
        return bad(c, "%s '%.40s' is not a number from %ld to %ld", key, s, lo, hi);
    return 0;
}

int coil_endpoint_yes_no(const coil_endpoint_parser *c, const char *key, const char *v,
                         int *out)
{
    if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
        *out = 1;
    else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0"))
        *out = 0;
    else
        return bad(c, "%s='%.40s' is not yes or no", key, v);
    return 0;
}

int coil_endpoint_check_keys(const coil_endpoint_parser *c, const coil_endpoint_desc *d,
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
        for (const char *const *k = keys; k && *k; k++)
            ok |= strcmp(*k, a->key) == 0;
        if (!ok)
            return bad(c, "unknown option '%.40s'", a->key);
    }
    return 0;
}

const char *coil_endpoint_positional(const coil_endpoint_desc *d, int n)
{
    for (int i = 0; i < d->nargs; i++)
        if (!d->args[i].key && n-- == 0)
            return d->args[i].value;
    return NULL;
}

int coil_endpoint_pick(const coil_endpoint_parser *c, const coil_endpoint_desc *d, int n,
                       const char *key, const char **out)
{
    const char *p = coil_endpoint_positional(d, n), *k = coil_endpoint_desc_get(d, key);
    *out = NULL;
    if (p && k)
        return bad(c, "%s is given both as '%.40s' and as %s=%.40s", key, p, key, k);
    *out = p ? p : k;
    return 0;
}

/* highWater= / lowWater=: the write queue marks of each connection, in
 * bytes (coil_transport_set_water_marks); unset, the defaults (64 KiB, and
 * a quarter of highWater). */
int coil_endpoint_water_marks(const coil_endpoint_parser *c, const coil_endpoint_desc *d,
                              size_t *high_out, size_t *low_out)
{
    static const char *const keys[] = {"highWater", "lowWater"};
    size_t *dst[] = {high_out, low_out};
    *high_out = *low_out = 0;
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
    size_t high = *high_out ? *high_out : 64 * 1024;
    size_t low = *low_out ? *low_out : high / 4;
    if (low > high)
        return bad(c, "lowWater (%zu) is above highWater (%zu)", low, high);
    return 0;
}

static int dup_to(char **dst, const char *s)
{
    if (!s)
        return 0;
    *dst = strdup(s);
    return *dst ? 0 : COIL_ENOMEM;
}

/* ---- tcp: ----------------------------------------------------------------------- */

struct coil_endpoint_tcp {
    int server;
    char *host; /* server: the interface */
    char *bind;
    int port;
    int backlog;
    double timeout;
    double resolve_timeout;       /* clients: seconds to resolve the host name */
    size_t high_water, low_water; /* each connection's write queue; 0: default */
};

static const char TCP_SERVER_USE[] =
    "tcp:PORT[:interface=ADDR][:backlog=N][:highWater=BYTES][:lowWater=BYTES]";
static const char TCP_CLIENT_USE[] =
    "tcp:HOST:PORT or tcp:host=HOST:port=PORT, then [:timeout=S][:bindAddress=ADDR]"
    "[:resolveTimeout=S][:highWater=BYTES][:lowWater=BYTES]";

static const char *const TCP_SERVER_KEYS[] = {"port",      "interface", "backlog",
                                              "highWater", "lowWater",  NULL};
static const char *const TCP_CLIENT_KEYS[] = {
    "host",           "port",      "timeout",  "bindAddress",
    "resolveTimeout", "highWater", "lowWater", NULL};

static int tcp_parse_server(const coil_endpoint_parser *c, const coil_endpoint_desc *d,
                            coil_endpoint_tcp *e, const char *const *keys)
{
    const char *v;
    int rc;
    if ((rc = coil_endpoint_check_keys(c, d, keys, 1)) ||
        (rc = coil_endpoint_pick(c, d, 0, "port", &v)))
        return rc;
    if (!v)
        return bad(c, "the port is missing");
    if ((rc = coil_endpoint_port(c, v, 1, &e->port)))
        return rc;
    long n;
    if ((v = coil_endpoint_desc_get(d, "backlog")) &&
        (rc = coil_endpoint_number(c, "backlog", v, 1, 65535, &n)))
        return rc;
    if (v)
        e->backlog = (int)n;
    if ((rc = coil_endpoint_water_marks(c, d, &e->high_water, &e->low_water)))
        return rc;
    v = coil_endpoint_desc_get(d, "interface");
    if (v && !*v)
        return bad(c, "interface is empty");
    return dup_to(&e->host, v);
}

static int tcp_parse_client(const coil_endpoint_parser *c, const coil_endpoint_desc *d,
                            coil_endpoint_tcp *e, const char *const *keys)
{
    const char *host, *port, *v;
    int rc;
    if ((rc = coil_endpoint_check_keys(c, d, keys, 2)))
        return rc;
    if (coil_endpoint_desc_get(d, "host")) {
        /* host= given: a lone positional is the port. */
        if (coil_endpoint_positional(d, 1))
            return bad(c, "host is given both as '%.40s' and as host=%.40s",
                       coil_endpoint_positional(d, 0), coil_endpoint_desc_get(d, "host"));
        host = coil_endpoint_desc_get(d, "host");
        rc = coil_endpoint_pick(c, d, 0, "port", &port);
    } else {
        host = coil_endpoint_positional(d, 0);
        rc = coil_endpoint_pick(c, d, 1, "port", &port);
    }
    if (rc)
        return rc;
    if (!host || !*host)
        return bad(c, "the host is missing");
    if (!port)
        return bad(c, "the port is missing");
    if ((rc = coil_endpoint_port(c, port, 0, &e->port)))
        return rc;
    if ((v = coil_endpoint_desc_get(d, "timeout")) &&
        (rc = coil_endpoint_seconds(c, "timeout", v, &e->timeout)))
        return rc;
    /* Said as "timeout" too, as it always was. */
    if ((v = coil_endpoint_desc_get(d, "resolveTimeout")) &&
        (rc = coil_endpoint_seconds(c, "timeout", v, &e->resolve_timeout)))
        return rc;
    if ((rc = coil_endpoint_water_marks(c, d, &e->high_water, &e->low_water)))
        return rc;
    v = coil_endpoint_desc_get(d, "bindAddress");
    if (v && !*v)
        return bad(c, "bindAddress is empty");
    if ((rc = dup_to(&e->bind, v)))
        return rc;
    return dup_to(&e->host, host);
}

void coil_endpoint_tcp_free(coil_endpoint_tcp *t)
{
    if (!t)
        return;
    free(t->host);
    free(t->bind);
    free(t);
}

int coil_endpoint_tcp_parse(const coil_endpoint_parser *c, const coil_endpoint_desc *d,
                            int server, const char *const *extra_keys,
                            coil_endpoint_tcp **out)
{
    *out = NULL;
    const char *keys[COIL_ENDPOINT_MAX_ARGS * 2 + 16];
    size_t n = 0;
    for (const char *const *k = server ? TCP_SERVER_KEYS : TCP_CLIENT_KEYS; *k; k++)
        keys[n++] = *k;
    for (const char *const *k = extra_keys; k && *k && n + 1 < sizeof keys / sizeof *keys;
         k++)
        keys[n++] = *k;
    keys[n] = NULL;
    coil_endpoint_tcp *t = calloc(1, sizeof *t);
    if (!t)
        return COIL_ENOMEM;
    t->server = server;
    int rc = server ? tcp_parse_server(c, d, t, keys) : tcp_parse_client(c, d, t, keys);
    if (rc) {
        coil_endpoint_tcp_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

const char *coil_endpoint_tcp_host(const coil_endpoint_tcp *t)
{
    return t->host;
}

int coil_endpoint_tcp_port(const coil_endpoint_tcp *t)
{
    return t->port;
}

int coil_endpoint_tcp_listen(coil_reactor *r, const coil_endpoint_tcp *e, coil_factory *f,
                             coil_listener **out, coil_failure **err)
{
    coil_tcp_listen_options o = {.interface = e->host,
                                 .port = e->port,
                                 .backlog = e->backlog,
                                 .high_water = e->high_water,
                                 .low_water = e->low_water};
    return coil_tcp_listen(r, &o, f, out, err);
}

int coil_endpoint_tcp_connect(coil_reactor *r, const coil_endpoint_tcp *e,
                              coil_factory *f, coil_connector **out, coil_failure **err)
{
    coil_tcp_connect_options o = {.host = e->host,
                                  .port = e->port,
                                  .timeout = e->timeout,
                                  .resolve_timeout = e->resolve_timeout,
                                  .bind_address = e->bind,
                                  .high_water = e->high_water,
                                  .low_water = e->low_water};
    if (err)
        *err = NULL;
    return coil_tcp_connect(r, &o, f, out);
}

static int tcp_kind_parse(const coil_endpoint_parser *c, const coil_endpoint_desc *d,
                          int server, void **state)
{
    coil_endpoint_tcp *t;
    int rc = coil_endpoint_tcp_parse(c, d, server, NULL, &t);
    *state = t;
    return rc;
}

static int tcp_kind_listen(coil_reactor *r, void *state, coil_factory *f,
                           coil_listener **out, coil_failure **err)
{
    return coil_endpoint_tcp_listen(r, state, f, out, err);
}

static int tcp_kind_connect(coil_reactor *r, void *state, coil_factory *f,
                            coil_connector **out, coil_failure **err)
{
    return coil_endpoint_tcp_connect(r, state, f, out, err);
}

static void tcp_kind_free(void *state)
{
    coil_endpoint_tcp_free(state);
}

static const coil_endpoint_kind_ops tcp_kind = {
    .name = "tcp",
    .server_example = "tcp:PORT",
    .client_example = "tcp:HOST:PORT",
    .server_usage = TCP_SERVER_USE,
    .client_usage = TCP_CLIENT_USE,
    .parse = tcp_kind_parse,
    .listen = tcp_kind_listen,
    .connect = tcp_kind_connect,
    .free_state = tcp_kind_free,
};

/* ---- unix: ---------------------------------------------------------------------- */

typedef struct unix_ep {
    char *path;
    unsigned mode;
    int backlog;
    double timeout;
    size_t high_water, low_water;
} unix_ep;

static const char UNIX_SERVER_USE[] =
    "unix:PATH[:mode=0660][:backlog=N][:highWater=BYTES][:lowWater=BYTES]";
static const char UNIX_CLIENT_USE[] =
    "unix:PATH or unix:path=PATH, then [:timeout=S][:highWater=BYTES][:lowWater=BYTES]";

static int unix_parse_server(const coil_endpoint_parser *c, const coil_endpoint_desc *d,
                             unix_ep *e)
{
    static const char *const keys[] = {"address",  "path",      "mode",     "backlog",
                                       "lockfile", "highWater", "lowWater", NULL};
    const char *v, *alt;
    int rc;
    if ((rc = coil_endpoint_check_keys(c, d, keys, 1)) ||
        (rc = coil_endpoint_pick(c, d, 0, "address", &v)) ||
        (rc = coil_endpoint_pick(c, d, 0, "path", &alt)))
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
    long n;
    if ((m = coil_endpoint_desc_get(d, "backlog")) &&
        (rc = coil_endpoint_number(c, "backlog", m, 1, 65535, &n)))
        return rc;
    if (m)
        e->backlog = (int)n;
    if ((rc = coil_endpoint_water_marks(c, d, &e->high_water, &e->low_water)))
        return rc;
    return dup_to(&e->path, v);
}

static int unix_parse_client(const coil_endpoint_parser *c, const coil_endpoint_desc *d,
                             unix_ep *e)
{
    static const char *const keys[] = {"path",      "timeout",  "checkPID",
                                       "highWater", "lowWater", NULL};
    const char *v;
    int rc;
    if ((rc = coil_endpoint_check_keys(c, d, keys, 1)) ||
        (rc = coil_endpoint_pick(c, d, 0, "path", &v)))
        return rc;
    if (!v || !*v)
        return bad(c, "the socket path is missing");
    if (strlen(v) > 107)
        return bad(c, "socket path '%.40s...' is longer than 107 bytes", v);
    const char *t = coil_endpoint_desc_get(d, "timeout");
    if (t && (rc = coil_endpoint_seconds(c, "timeout", t, &e->timeout)))
        return rc;
    if ((rc = coil_endpoint_water_marks(c, d, &e->high_water, &e->low_water)))
        return rc;
    return dup_to(&e->path, v);
}

static void unix_kind_free(void *state)
{
    unix_ep *e = state;
    if (e) {
        free(e->path);
        free(e);
    }
}

static int unix_kind_parse(const coil_endpoint_parser *c, const coil_endpoint_desc *d,
                           int server, void **state)
{
    unix_ep *e = calloc(1, sizeof *e);
    if (!e)
        return COIL_ENOMEM;
    *state = e;
    return server ? unix_parse_server(c, d, e) : unix_parse_client(c, d, e);
}

static int unix_kind_listen(coil_reactor *r, void *state, coil_factory *f,
                            coil_listener **out, coil_failure **err)
{
    const unix_ep *e = state;
    coil_unix_listen_options o = {.path = e->path,
                                  .mode = e->mode,
                                  .backlog = e->backlog,
                                  .high_water = e->high_water,
                                  .low_water = e->low_water};
    return coil_unix_listen(r, &o, f, out, err);
}

static int unix_kind_connect(coil_reactor *r, void *state, coil_factory *f,
                             coil_connector **out, coil_failure **err)
{
    const unix_ep *e = state;
    coil_unix_connect_options o = {.path = e->path,
                                   .timeout = e->timeout,
                                   .high_water = e->high_water,
                                   .low_water = e->low_water};
    return coil_unix_connect(r, &o, f, out);
}

static const coil_endpoint_kind_ops unix_kind = {
    .name = "unix",
    .server_example = "unix:PATH",
    .client_example = "unix:PATH",
    .server_usage = UNIX_SERVER_USE,
    .client_usage = UNIX_CLIENT_USE,
    .parse = unix_kind_parse,
    .listen = unix_kind_listen,
    .connect = unix_kind_connect,
    .free_state = unix_kind_free,
};

/* ---- parsing a description ------------------------------------------------------- */

static int endpoint_parse(const char *text, int server, coil_endpoint **out,
                          coil_failure **err)
{
    *out = NULL;
    if (err)
        *err = NULL;
    char examples[1024];
    list_examples(server, examples, sizeof examples);
    coil_endpoint_parser c = {text ? text : "",
                              server ? "server endpoint" : "client endpoint", examples,
                              server, err};
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
    const coil_endpoint_kind_ops *kind = coil_endpoint_find_kind(d->kind);
    if (!kind) {
        char names[1024];
        list_names(names, sizeof names);
        rc = bad(&c, "unknown kind '%.40s'; registered kinds: %s", d->kind, names);
        coil_endpoint_desc_free(d);
        return rc;
    }
    if (server ? !kind->listen : !kind->connect) {
        rc =
            bad(&c, "kind '%s' has no %s side", kind->name, server ? "server" : "client");
        coil_endpoint_desc_free(d);
        return rc;
    }
    coil_endpoint *e = calloc(1, sizeof *e);
    if (!e || !(e->text = strdup(text))) {
        free(e);
        coil_endpoint_desc_free(d);
        return desc_error(err, COIL_ENOMEM, c.what, c.text, "out of memory");
    }
    e->refs = 1;
    e->kind = kind;
    e->server = server;
    const char *use = server ? kind->server_usage : kind->client_usage;
    if (!use)
        use = server ? kind->server_example : kind->client_example;
    c.use = use ? use : kind->name;
    rc = kind->parse(&c, d, server, &e->state);
    if (rc == COIL_ENOMEM) {
        if (err) {
            coil_failure_free(*err);
            *err = NULL;
        }
        desc_error(err, rc, c.what, c.text, "out of memory");
    } else if (rc && err && !*err) {
        bad(&c, "it is not a valid %s: description", kind->name);
    }
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

/* For the reconnector: the same endpoint, shared (the kinds' states are
 * read-only once parsed). */
coil_endpoint *coil__endpoint_copy(const coil_endpoint *e);
coil_endpoint *coil__endpoint_copy(const coil_endpoint *e)
{
    coil_endpoint *c = (coil_endpoint *)e;
    c->refs++;
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
    if (!e->server)
        return wrong_side(e, "server", err);
    int rc = e->kind->listen(r, e->state, f, out, err);
    if (rc && err && !*err)
        *err = coil_failure_new(COIL_DOMAIN_COIL, rc, "cannot listen on '%s': %s",
                                e->text, coil_strerror(rc));
    return rc;
}

int coil_endpoint_connect(coil_reactor *r, const coil_endpoint *e, coil_factory *f,
                          coil_connector **out, coil_failure **err)
{
    if (err)
        *err = NULL;
    if (e->server)
        return wrong_side(e, "client", err);
    coil_failure *why = NULL;
    int rc = e->kind->connect(r, e->state, f, out, &why);
    if (rc && err)
        *err = why ? why
                   : coil_failure_new(COIL_DOMAIN_COIL, rc, "cannot connect to '%s': %s",
                                      e->text, coil_strerror(rc));
    else
        coil_failure_free(why);
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
