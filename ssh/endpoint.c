/* The ssh: client endpoint kind: a direct-tcpip or exec channel through an
 * SSH server, as a connector like TCP's, with one shared session per
 * reactor, server, user and session options.
 *
 *   ssh:HOST[:PORT]:user=USER[:identity=FILE][:knownHosts=FILE][:agent=yes]
 *       [:password=env:VAR][:hostKeys=strict|accept-new|insecure-accept-any]
 *       [:keepalive=S][:timeout=S][:highWater=BYTES][:lowWater=BYTES]
 *       :to=DESTHOST\:DESTPORT     (or :exec=COMMAND)
 *
 * Server descriptions (ssh:PORT:hostKey=FILE:..., coil's own SSH server)
 * are parsed and served by server_endpoint.c; this file only hands them
 * over.
 *
 * Pieces:
 *  - the parser (one function for the registry's parse and for
 *    coil_ssh_session_connect_endpoint, which takes no to=/exec=);
 *  - the session cache: entries keyed by reactor and session options, each
 *    holding the caller's reference of one session and a count of users
 *    (connectors and live channels); dropped from the cache when the
 *    session ends, closed when the last user goes;
 *  - the connector (struct coil_connector first): each attempt opens a
 *    channel on the shared session, the factory's protocol running on the
 *    channel transport itself (so coil_ssh_channel_exit_status,
 *    coil_ssh_channel_session and coil_transport_set_water_marks work on
 *    it); highWater=/lowWater= are set on the channel once it is open.
 *    The connector hears the channel end through coil__ssh_channel_on_lost
 *    (after the protocol's connection_lost) and tells the factory
 *    connection_lost, as TCP does. A live channel holds a user of its
 *    session entry until that hook runs; a connector freed first hands the
 *    hook over to one that only releases that user.
 */
#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include <coil/endpoint.h>
#include <coil/log.h>
#include <coil/plugin.h>
#include <coil/ssh.h>

#include "server_private.h"
#include "ssh_private.h"

/* ---- the parsed description ----------------------------------------------- */

typedef struct ssh_ep {
    int refs; /* the endpoint's state and every connector made from it */
    char *host;
    int port;
    char *user;
    char *identity;
    char *known_hosts;
    int agent;
    char *password_var; /* password=env:VAR: VAR (read at connect time) */
    int policy;
    double keepalive;
    double timeout;
    /* The channel: type, direct-tcpip destination or exec command. */
    int has_channel;
    int type;
    char *to_host;
    int to_port;
    char *command;
    size_t high_water; /* highWater=/lowWater= of each channel; 0: not given */
    size_t low_water;
    char *key;         /* the session cache key */
    char peer[64];     /* for build_protocol: "ssh:127.0.0.1:7000" */
    char label[200];   /* "deploy@gw.example:22" for messages */
    char channel[160]; /* "direct-tcpip to 127.0.0.1:7000", "exec 'cat'" */
    /* A server description: coil's own SSH server (server_endpoint.c);
     * nothing above is used then. */
    coil__sshd_endpoint *server;
} ssh_ep;

static void ep_unref(ssh_ep *e)
{
    if (!e || --e->refs > 0)
        return;
    free(e->host);
    free(e->user);
    free(e->identity);
    free(e->known_hosts);
    free(e->password_var);
    free(e->to_host);
    free(e->command);
    free(e->key);
    coil__sshd_endpoint_free(e->server);
    free(e);
}

static void ep_free_state(void *state)
{
    ep_unref(state);
}

static const char SSH_CLIENT_USE[] =
    "ssh:HOST[:PORT]:user=USER[:identity=FILE][:knownHosts=FILE][:agent=yes]"
    "[:password=env:VAR][:hostKeys=strict|accept-new|insecure-accept-any]"
    "[:keepalive=S][:timeout=S][:highWater=BYTES][:lowWater=BYTES]"
    ":to=DESTHOST\\:DESTPORT or ...:exec=COMMAND";
static const char SSH_SESSION_USE[] =
    "ssh:HOST[:PORT]:user=USER[:identity=FILE][:knownHosts=FILE][:agent=yes]"
    "[:password=env:VAR][:hostKeys=strict|accept-new|insecure-accept-any]"
    "[:keepalive=S][:timeout=S]";

/* Where mistakes go: the registry's parser (its standard wording), or, for
 * coil_ssh_session_connect_endpoint, a failure of the same wording. */
typedef struct parse_ctx {
    const coil_endpoint_parser *p;
    const char *text;
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
    if (c->p)
        return coil_endpoint_bad(c->p, "%s", msg);
    if (c->err) {
        char q[160];
        size_t o = 0;
        for (size_t i = 0; c->text[i] && o + 5 < sizeof q; i++) {
            unsigned char ch = (unsigned char)c->text[i];
            if (i >= 120) {
                memcpy(q + o, "...", 3);
                o += 3;
                break;
            }
            if (ch >= 0x20 && ch < 0x7f)
                q[o++] = (char)ch;
            else
                o += (size_t)snprintf(q + o, sizeof q - o, "\\x%02x", ch);
        }
        q[o] = '\0';
        *c->err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                   "bad SSH endpoint '%s': %s (use %s)", q, msg,
                                   SSH_SESSION_USE);
    }
    return COIL_EINVAL;
}

static int get_port(const parse_ctx *c, const char *what, const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *s == '+' || *s == '-' || *s == ' ' || *end || errno || v < 1 || v > 65535)
        return bad(c, "%s '%.40s' is not a number from 1 to 65535", what, s);
    *out = (int)v;
    return 0;
}

static int get_seconds(const parse_ctx *c, const char *key, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *s == ' ' || *end || errno || !(v > 0) || v > 86400)
        return bad(c, "%s '%.40s' is not a number of seconds above 0", key, s);
    *out = v;
    return 0;
}

static int dup_to(char **dst, const char *s)
{
    if (!s)
        return 0;
    *dst = strdup(s);
    return *dst ? 0 : COIL_ENOMEM;
}

/* to=HOST:PORT (the ':' escaped in the description): the last ':' splits;
 * an IPv6 host may be bracketed ("[::1]:7000") or bare ("::1:7000"). */
static int parse_to(const parse_ctx *c, const char *v, ssh_ep *e)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v)
        return bad(c,
                   "to='%.60s' is not DESTHOST:DESTPORT (escape the ':' as \\:, "
                   "e.g. to=127.0.0.1\\:7000)",
                   v);
    const char *h = v;
    size_t hl = (size_t)(colon - v);
    if (h[0] == '[') {
        if (hl < 3 || h[hl - 1] != ']')
            return bad(c,
                       "to='%.60s': a bracketed IPv6 host needs its ']' before the "
                       "port ([::1]\\:7000)",
                       v);
        h++;
        hl -= 2;
    }
    if (hl > 255)
        return bad(c, "to= host is longer than 255 characters");
    int rc = get_port(c, "to= port", colon + 1, &e->to_port);
    if (rc)
        return rc;
    if (!(e->to_host = strndup(h, hl)))
        return COIL_ENOMEM;
    return 0;
}

static const char *const SSH_KEYS[] = {"host",       "port",     "user",     "identity",
                                       "knownHosts", "agent",    "password", "hostKeys",
                                       "keepalive",  "timeout",  "to",       "exec",
                                       "highWater",  "lowWater", NULL};

/* Parse `d` into a new *out (set as soon as it exists). `channel`: to= or
 * exec= is required (the endpoint kind); 0: refused (a session only). */
static int parse_ssh(const parse_ctx *c, const coil_endpoint_desc *d, int channel,
                     ssh_ep **out)
{
    ssh_ep *e = calloc(1, sizeof *e);
    if (!e)
        return COIL_ENOMEM;
    e->refs = 1;
    *out = e;
    int pos = 0;
    const char *host = NULL, *port = NULL;
    for (int i = 0; i < d->nargs; i++) {
        const coil_endpoint_arg *a = &d->args[i];
        if (!a->key) {
            if (pos == 0)
                host = a->value;
            else if (pos == 1)
                port = a->value;
            else
                return bad(c,
                           "unexpected argument '%.40s' (options are KEY=VALUE; "
                           "escape a ':' inside a value as \\:)",
                           a->value);
            pos++;
            continue;
        }
        int ok = 0;
        for (const char *const *k = SSH_KEYS; *k; k++)
            ok |= strcmp(*k, a->key) == 0;
        if (!ok)
            return bad(c, "unknown option '%.40s'", a->key);
    }
    const char *v;
    if ((v = coil_endpoint_desc_get(d, "host"))) {
        if (host)
            return bad(c, "host is given both as '%.40s' and as host=%.40s", host, v);
        host = v;
    }
    if ((v = coil_endpoint_desc_get(d, "port"))) {
        if (port)
            return bad(c, "port is given both as '%.40s' and as port=%.40s", port, v);
        port = v;
    }
    if (!host || !*host)
        return bad(c, "the SSH server's host is missing");
    if (strlen(host) > 255)
        return bad(c, "host '%.40s...' is longer than 255 characters", host);
    int rc;
    e->port = 22;
    if (port && (rc = get_port(c, "port", port, &e->port)))
        return rc;
    if ((rc = dup_to(&e->host, host)))
        return rc;

    const char *user = coil_endpoint_desc_get(d, "user");
    if (user && !*user)
        return bad(c, "user is empty");
    if (!user) {
        user = getenv("USER");
        if (!user || !*user) {
            struct passwd *pw = getpwuid(getuid());
            user = pw ? pw->pw_name : NULL;
        }
        if (!user)
            return bad(c, "user= is missing and $USER is not set");
    }
    if (strlen(user) > 255)
        return bad(c, "user is longer than 255 characters");
    if ((rc = dup_to(&e->user, user)))
        return rc;

    if ((v = coil_endpoint_desc_get(d, "identity"))) {
        if (!*v)
            return bad(c, "identity is empty");
        if (access(v, R_OK) != 0)
            return bad(c, "identity file '%.200s' cannot be read: %s", v,
                       strerror(errno));
        if ((rc = dup_to(&e->identity, v)))
            return rc;
    }
    if ((v = coil_endpoint_desc_get(d, "knownHosts"))) {
        if (!*v)
            return bad(c, "knownHosts is empty");
        if ((rc = dup_to(&e->known_hosts, v)))
            return rc;
    }
    if ((v = coil_endpoint_desc_get(d, "agent"))) {
        if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
            e->agent = 1;
        else if (strcmp(v, "no") && strcmp(v, "false") && strcmp(v, "0"))
            return bad(c, "agent='%.40s' is not yes or no", v);
    }
    if ((v = coil_endpoint_desc_get(d, "password"))) {
        /* Never the password itself in a description: it would sit in
         * shell histories, ps output and logs. */
        if (strncmp(v, "env:", 4) != 0 || !v[4])
            return bad(c, "password= takes env:VAR, the name of an environment variable "
                          "holding the password (never the password itself)");
        if (!getenv(v + 4))
            return bad(c, "password=env:%.60s: the environment variable %.60s is not set",
                       v + 4, v + 4);
        if ((rc = dup_to(&e->password_var, v + 4)))
            return rc;
    }
    if ((v = coil_endpoint_desc_get(d, "hostKeys"))) {
        if (!strcmp(v, "strict"))
            e->policy = COIL_SSH_HOST_KEY_STRICT;
        else if (!strcmp(v, "accept-new"))
            e->policy = COIL_SSH_HOST_KEY_ACCEPT_NEW;
        else if (!strcmp(v, "insecure-accept-any"))
            e->policy = COIL_SSH_HOST_KEY_INSECURE_ACCEPT_ANY;
        else
            return bad(c,
                       "hostKeys='%.40s' is not strict, accept-new or "
                       "insecure-accept-any",
                       v);
    }
    if ((v = coil_endpoint_desc_get(d, "keepalive")) &&
        (rc = get_seconds(c, "keepalive", v, &e->keepalive)))
        return rc;
    if ((v = coil_endpoint_desc_get(d, "timeout")) &&
        (rc = get_seconds(c, "timeout", v, &e->timeout)))
        return rc;

    const char *to = coil_endpoint_desc_get(d, "to");
    const char *exec = coil_endpoint_desc_get(d, "exec");
    if (!channel && (to || exec))
        return bad(c, "%s= does not belong here: give the SSH server only",
                   to ? "to" : "exec");
    if (!channel &&
        (coil_endpoint_desc_get(d, "highWater") || coil_endpoint_desc_get(d, "lowWater")))
        return bad(c, "highWater=/lowWater= do not belong here (they are a channel's "
                      "write queue marks): give the SSH server only");
    if (channel && c->p &&
        (rc = coil_endpoint_water_marks(c->p, d, &e->high_water, &e->low_water)))
        return rc;
    if (channel) {
        if (to && exec)
            return bad(c, "give to= or exec=, not both");
        if (!to && !exec)
            return bad(c, "the channel is missing: add :to=DESTHOST\\:DESTPORT (a TCP "
                          "connection made by the server) or :exec=COMMAND");
        e->has_channel = 1;
        if (to) {
            e->type = COIL_SSH_DIRECT_TCPIP;
            if ((rc = parse_to(c, to, e)))
                return rc;
            int v6 = strchr(e->to_host, ':') != NULL;
            snprintf(e->channel, sizeof e->channel, "direct-tcpip to %s%.100s%s:%d",
                     v6 ? "[" : "", e->to_host, v6 ? "]" : "", e->to_port);
            snprintf(e->peer, sizeof e->peer, "ssh:%s%.40s%s:%d", v6 ? "[" : "",
                     e->to_host, v6 ? "]" : "", e->to_port);
        } else {
            if (!*exec)
                return bad(c, "exec= is empty (the command to run)");
            if (strlen(exec) > 1024)
                return bad(c, "exec= command is longer than 1024 characters");
            e->type = COIL_SSH_EXEC;
            if ((rc = dup_to(&e->command, exec)))
                return rc;
            snprintf(e->channel, sizeof e->channel, "exec '%.100s'", exec);
            snprintf(e->peer, sizeof e->peer, "ssh-exec:%.50s", exec);
        }
    }
    int v6 = strchr(e->host, ':') != NULL;
    snprintf(e->label, sizeof e->label, "%.100s@%s%.60s%s:%d", e->user, v6 ? "[" : "",
             e->host, v6 ? "]" : "", e->port);
    /* Channels share a session only when everything that decides how it
     * is made and checked is the same. */
    char key[2048];
    snprintf(key, sizeof key, "%s\x1f%d\x1f%s\x1f%s\x1f%s\x1f%d\x1f%s\x1f%d\x1f%g\x1f%g",
             e->host, e->port, e->user, e->identity ? e->identity : "",
             e->known_hosts ? e->known_hosts : "", e->agent,
             e->password_var ? e->password_var : "", e->policy, e->keepalive, e->timeout);
    return dup_to(&e->key, key);
}

static int ssh_kind_parse(const coil_endpoint_parser *p, const coil_endpoint_desc *d,
                          int server, void **state)
{
    parse_ctx c = {p, coil_endpoint_parser_text(p), NULL};
    ssh_ep *e = NULL;
    if (server) {
        /* coil's own SSH server (server_endpoint.c). */
        if (!(e = calloc(1, sizeof *e)))
            return COIL_ENOMEM;
        e->refs = 1;
        *state = e;
        return coil__sshd_endpoint_parse(p, d, &e->server);
    }
    int rc = parse_ssh(&c, d, 1, &e);
    *state = e;
    return rc;
}

/* ---- the session cache ------------------------------------------------------ */

typedef struct sess_entry {
    struct sess_entry *next;
    coil_reactor *r;
    char *key;
    coil_ssh_session *s; /* our (the caller's) reference */
    int users;
    int dead; /* the session ended: out of the cache */
    int finish_queued;
} sess_entry;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static sess_entry *cache;

static void cache_unlink(sess_entry *en)
{
    pthread_mutex_lock(&cache_lock);
    for (sess_entry **pp = &cache; *pp; pp = &(*pp)->next) {
        if (*pp == en) {
            *pp = en->next;
            break;
        }
    }
    en->next = NULL;
    pthread_mutex_unlock(&cache_lock);
}

static void entry_lost(void *arg, coil_ssh_session *s, const coil_failure *reason)
{
    (void)s;
    (void)reason;
    sess_entry *en = arg;
    if (!en->dead) {
        en->dead = 1;
        cache_unlink(en);
    }
}

/* Runs from the loop, never inside the session's own callbacks (a channel's
 * destroy is where the last user usually goes). */
static int entry_finish(void *arg)
{
    sess_entry *en = arg;
    en->finish_queued = 0;
    if (en->users > 0)
        return 0; /* used again meanwhile */
    coil_ssh_session_on_lost(en->s, NULL, NULL);
    if (!en->dead) {
        en->dead = 1;
        cache_unlink(en);
        coil_deferred_unref(coil_ssh_session_close(en->s));
    }
    coil_ssh_session_free(en->s);
    free(en->key);
    free(en);
    return 0;
}

static void entry_release(sess_entry *en)
{
    if (!en || --en->users > 0 || en->finish_queued)
        return;
    en->finish_queued = 1;
    if (coil_reactor_call_soon(en->r, entry_finish, en) != 0)
        entry_finish(en);
}

size_t coil_ssh_endpoint_session_count(const coil_reactor *r)
{
    size_t n = 0;
    pthread_mutex_lock(&cache_lock);
    for (sess_entry *en = cache; en; en = en->next)
        n += en->r == r;
    pthread_mutex_unlock(&cache_lock);
    return n;
}

/* A new session with the options of `e`, connecting. */
static int session_start(coil_reactor *r, const ssh_ep *e, coil_ssh_session **out,
                         coil_failure **err)
{
    coil_ssh_options o = {0};
    o.host = e->host;
    o.port = e->port;
    o.user = e->user;
    o.known_hosts_file = e->known_hosts;
    o.host_key_policy = e->policy;
    o.agent = e->agent;
    o.identity_file = e->identity;
    o.connect_timeout = e->timeout;
    o.handshake_timeout = e->timeout;
    o.keepalive_interval = e->keepalive;
    char *password = NULL;
    if (e->password_var) {
        const char *pw = getenv(e->password_var);
        if (!pw) {
            if (err)
                *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                        "SSH to %s: the environment variable %s "
                                        "(password=env:%s) is not set",
                                        e->label, e->password_var, e->password_var);
            return COIL_EINVAL;
        }
        if (!(password = strdup(pw)))
            return COIL_ENOMEM;
        o.password = password;
    }
    int rc = coil_ssh_session_connect(r, &o, out, err);
    if (password) {
        sodium_memzero(password, strlen(password));
        free(password);
    }
    return rc;
}

/* The live shared session for `e` on `r`, with one more user. */
static int entry_acquire(coil_reactor *r, const ssh_ep *e, sess_entry **out,
                         coil_failure **err)
{
    pthread_mutex_lock(&cache_lock);
    for (sess_entry *en = cache; en; en = en->next) {
        if (en->r == r && !en->dead && strcmp(en->key, e->key) == 0) {
            en->users++;
            pthread_mutex_unlock(&cache_lock);
            *out = en;
            return 0;
        }
    }
    pthread_mutex_unlock(&cache_lock);
    sess_entry *en = calloc(1, sizeof *en);
    if (!en || !(en->key = strdup(e->key))) {
        free(en);
        return COIL_ENOMEM;
    }
    int rc = session_start(r, e, &en->s, err);
    if (rc) {
        free(en->key);
        free(en);
        return rc;
    }
    en->r = r;
    en->users = 1;
    coil_ssh_session_on_lost(en->s, entry_lost, en);
    pthread_mutex_lock(&cache_lock);
    en->next = cache;
    cache = en;
    pthread_mutex_unlock(&cache_lock);
    *out = en;
    return 0;
}

/* ---- the connector ------------------------------------------------------------ */

typedef struct ssh_connector ssh_connector;

/* One open under way; outlives a connector freed meanwhile (k NULL). */
typedef struct attempt {
    ssh_connector *k;
    sess_entry *entry; /* one user of the session, handed to the channel */
    coil_deferred *d;
} attempt;

struct ssh_connector {
    struct coil_connector base; /* first */
    coil_reactor *r;
    coil_factory *f;
    ssh_ep *e;         /* a reference */
    sess_entry *entry; /* the session last used (one user) */
    attempt *opening;  /* the open under way */
    /* The channel, once open, until its lost hook ran; the factory's
     * protocol runs on it directly. */
    coil_transport *conn;
    sess_entry *conn_entry; /* the channel's user of its session */
    coil_timer *timer;      /* a failure found inside connect, delivered soon */
    coil_failure *pending;
    int in_connect;
    int started;
};

/* The channel of a freed connector ended: only its session user goes. */
static void channel_lost_alone(void *arg, coil_transport *t, const coil_failure *reason)
{
    (void)t;
    (void)reason;
    entry_release(arg);
}

/* The channel ended (its protocol heard connection_lost and was destroyed):
 * as TCP, the factory hears connection_lost, also when the channel ended
 * before `connected` was said. */
static void channel_lost(void *arg, coil_transport *t, const coil_failure *reason)
{
    (void)t;
    ssh_connector *k = arg;
    sess_entry *en = k->conn_entry;
    k->conn = NULL;
    k->conn_entry = NULL;
    /* The factory may free the connector or connect again from here. */
    if (k->f->ops->connection_lost)
        k->f->ops->connection_lost(k->f, &k->base, reason);
    entry_release(en);
}

static void fail_now(ssh_connector *k, coil_failure *reason)
{
    if (k->f->ops->connection_failed)
        k->f->ops->connection_failed(k->f, &k->base, reason);
    coil_failure_free(reason);
}

static int deliver_pending(void *arg)
{
    ssh_connector *k = arg;
    coil_timer_release(k->timer);
    k->timer = NULL;
    coil_failure *reason = k->pending;
    k->pending = NULL;
    fail_now(k, reason);
    return 0;
}

/* A failure found inside connect reaches the factory from the loop. */
static void fail_soon(ssh_connector *k, coil_failure *reason)
{
    k->pending = reason;
    k->timer = coil_reactor_call_later(k->r, 0, deliver_pending, k);
    if (!k->timer) {
        k->pending = NULL;
        fail_now(k, reason);
    }
}

static void attempt_done(attempt *a)
{
    if (a->k && a->k->opening == a)
        a->k->opening = NULL;
    coil_deferred_unref(a->d);
    free(a);
}

/* The channel is open (its protocol's connection_made ran; the channel is
 * held until this returns, so it is alive here even if it already ended). */
static void open_ok(coil_deferred *d, void *arg)
{
    attempt *a = arg;
    ssh_connector *k = a->k;
    sess_entry *en = a->entry;
    coil_transport *t = coil_deferred_result(d);
    attempt_done(a);
    if (!k) {
        /* Freed meanwhile: the channel goes on alone, holding its user. */
        if (coil__ssh_channel_on_lost(t, channel_lost_alone, en) != 0)
            entry_release(en);
        return;
    }
    k->conn = t;
    k->conn_entry = en;
    if (coil__ssh_channel_on_lost(t, channel_lost, k) != 0) {
        k->conn = NULL;
        k->conn_entry = NULL;
        entry_release(en);
        coil_log(COIL_LOG_ERROR, "ssh", "ssh: %s via %s: not an SSH channel",
                 k->e->channel, k->e->label);
        return;
    }
    if (k->e->high_water || k->e->low_water) {
        size_t high = k->e->high_water ? k->e->high_water : 64 * 1024;
        size_t low = k->e->low_water ? k->e->low_water : high / 4;
        int rc = coil_transport_set_water_marks(t, high, low);
        if (rc)
            coil_log(COIL_LOG_WARN, "ssh",
                     "%s via ssh %s: highWater=%zu/lowWater=%zu not applied: %s",
                     k->e->channel, k->e->label, high, low, coil_strerror(rc));
    }
    if (k->f->ops->connected)
        k->f->ops->connected(k->f, &k->base, t);
}

static void open_failed(coil_deferred *d, void *arg)
{
    attempt *a = arg;
    ssh_connector *k = a->k;
    sess_entry *en = a->entry;
    coil_failure *why = coil_deferred_take_failure(d);
    int in_connect = k && k->in_connect;
    attempt_done(a);
    if (!k) {
        entry_release(en);
        coil_failure_free(why);
        return;
    }
    if (!why)
        why = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory");
    /* The session ended: the next attempt starts a new one. */
    if (k->entry && k->entry->dead) {
        entry_release(k->entry);
        k->entry = NULL;
    }
    entry_release(en);
    if (in_connect)
        fail_soon(k, why);
    else
        fail_now(k, why);
}

static int ssh_connect_again(coil_connector *base)
{
    ssh_connector *k = (ssh_connector *)base;
    const ssh_ep *e = k->e;
    if (k->opening || k->conn || k->pending)
        return COIL_ESTATE;
    if (k->f->ops->started_connecting)
        k->f->ops->started_connecting(k->f, &k->base);
    if (k->opening || k->conn || k->pending)
        return 0; /* the factory connected it again meanwhile */
    if (k->entry && k->entry->dead) {
        entry_release(k->entry);
        k->entry = NULL;
    }
    coil_failure *err = NULL;
    int rc;
    if (!k->entry && (rc = entry_acquire(k->r, e, &k->entry, &err)) != 0) {
        if (!err)
            err = coil_failure_new(COIL_DOMAIN_COIL, rc, "SSH to %s: %s", e->label,
                                   coil_strerror(rc));
        fail_soon(k, coil_failure_wrap(err, COIL_DOMAIN_COIL, coil_failure_code(err),
                                       "%s via ssh %s failed", e->channel, e->label));
        return 0;
    }
    coil_address peer = {.kind = COIL_ADDR_SSH};
    snprintf(peer.name, sizeof peer.name, "%s", e->peer);
    coil_protocol *p = k->f->ops->build_protocol(k->f, &peer);
    if (!p) {
        fail_soon(k, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED,
                                      "%s via ssh %s refused by the factory", e->channel,
                                      e->label));
        return 0;
    }
    attempt *a = calloc(1, sizeof *a);
    if (!a) {
        if (p->ops->destroy)
            p->ops->destroy(p);
        fail_soon(k, coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory"));
        return 0;
    }
    a->k = k;
    a->entry = k->entry;
    k->entry->users++;
    k->opening = a;
    coil_ssh_channel_options co = {
        .type = e->type, .host = e->to_host, .port = e->to_port, .command = e->command};
    coil_deferred *d = coil_ssh_open_channel(k->entry->s, &co, p);
    if (!d) {
        /* The protocol was destroyed: nothing else to undo. */
        k->opening = NULL;
        entry_release(a->entry);
        free(a);
        fail_soon(k, coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory"));
        return 0;
    }
    a->d = d;
    k->in_connect = 1;
    coil_deferred_add_callbacks(d, open_ok, open_failed, a);
    k->in_connect = 0;
    return 0;
}

static void ssh_stop_connecting(coil_connector *base)
{
    ssh_connector *k = (ssh_connector *)base;
    if (k->timer) {
        coil_timer_cancel(k->timer);
        coil_timer_release(k->timer);
        k->timer = NULL;
        coil_failure_free(k->pending);
        k->pending = NULL;
        fail_now(k, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED,
                                     "connecting to %s via ssh %s was stopped",
                                     k->e->channel, k->e->label));
        return;
    }
    if (k->opening)
        coil_deferred_cancel(k->opening->d); /* open_failed tells the factory */
}

static coil_transport *ssh_transport(const coil_connector *base)
{
    const ssh_connector *k = (const ssh_connector *)base;
    return k->conn;
}

static int ssh_set_layer(coil_connector *base, coil_layer *layer)
{
    (void)base;
    if (layer && layer->ops->free)
        layer->ops->free(layer);
    return COIL_ENOTSUP;
}

static void ssh_connector_free(coil_connector *base)
{
    ssh_connector *k = (ssh_connector *)base;
    if (!k)
        return;
    if (k->timer) {
        coil_timer_cancel(k->timer);
        coil_timer_release(k->timer);
        coil_failure_free(k->pending);
    }
    if (k->opening) {
        attempt *a = k->opening;
        k->opening = NULL;
        a->k = NULL;
        coil_deferred_cancel(a->d); /* give up the open; `a` frees itself */
    }
    if (k->conn) {
        /* The channel goes on alone: its hook no longer names us, and its
         * session user is released when it ends. */
        if (coil__ssh_channel_on_lost(k->conn, channel_lost_alone, k->conn_entry) != 0)
            entry_release(k->conn_entry);
        k->conn = NULL;
        k->conn_entry = NULL;
    }
    if (k->started)
        coil_factory_do_stop(k->f);
    entry_release(k->entry);
    ep_unref(k->e);
    free(k);
}

static const coil_connector_ops ssh_connector_ops = {
    .kind = "ssh-channel",
    .connect = ssh_connect_again,
    .stop_connecting = ssh_stop_connecting,
    .transport = ssh_transport,
    .set_layer = ssh_set_layer,
    .free = ssh_connector_free,
};

static int ssh_kind_connect(coil_reactor *r, void *state, coil_factory *f,
                            coil_connector **out, coil_failure **err)
{
    (void)err;
    if (((ssh_ep *)state)->server)
        return COIL_EINVAL; /* a server description: the registry never asks */
    ssh_connector *k = calloc(1, sizeof *k);
    if (!k)
        return COIL_ENOMEM;
    k->base.ops = &ssh_connector_ops;
    k->r = r;
    k->f = f;
    k->e = state;
    k->e->refs++;
    coil_factory_do_start(f);
    k->started = 1;
    *out = &k->base;
    return ssh_connect_again(&k->base);
}

static int ssh_kind_listen(coil_reactor *r, void *state, coil_factory *f,
                           coil_listener **out, coil_failure **err)
{
    const ssh_ep *e = state;
    if (e->server)
        return coil__sshd_endpoint_listen(r, e->server, f, out, err);
    *out = NULL;
    if (err)
        *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                "a client ssh: description cannot listen (serve with "
                                "ssh:PORT:hostKey=FILE:authorizedKeys=FILE)");
    return COIL_EINVAL;
}

static const coil_endpoint_kind_ops ssh_kind = {
    .name = "ssh",
    .server_example = "ssh:PORT:hostKey=FILE:authorizedKeys=FILE",
    .client_example = "ssh:HOST:PORT:user=USER:to=DESTHOST\\:DESTPORT",
    .server_usage = coil__sshd_endpoint_usage,
    .client_usage = SSH_CLIENT_USE,
    .parse = ssh_kind_parse,
    .listen = ssh_kind_listen,
    .connect = ssh_kind_connect,
    .free_state = ep_free_state,
};

int coil__ssh_endpoint_register(coil_failure **err);
int coil__ssh_endpoint_register(coil_failure **err)
{
    return coil_endpoint_register_kind(&ssh_kind, err);
}

/* ---- a session from a description (coil-tunnel) ------------------------------- */

int coil_ssh_session_connect_endpoint(coil_reactor *r, const char *text,
                                      coil_ssh_session **out, char *label,
                                      size_t label_size, coil_failure **err)
{
    *out = NULL;
    if (err)
        *err = NULL;
    parse_ctx c = {NULL, text ? text : "", err};
    coil_endpoint_desc *d = NULL;
    coil_failure *inner = NULL;
    int rc = coil_endpoint_desc_parse(text, &d, &inner);
    if (rc) {
        const char *msg = inner ? strstr(coil_failure_message(inner), "': ") : NULL;
        const char *use = msg ? strstr(msg, " (use ") : NULL;
        int n = use ? (int)(use - msg - 3) : 200;
        rc = rc == COIL_ENOMEM ? rc
                               : bad(&c, "%.*s", n, msg ? msg + 3 : "cannot parse it");
        coil_failure_free(inner);
        return rc;
    }
    if (strcmp(d->kind, "ssh") != 0) {
        rc = bad(&c, "it is not an ssh: description (kind '%.40s')", d->kind);
        coil_endpoint_desc_free(d);
        return rc;
    }
    ssh_ep *e = NULL;
    rc = parse_ssh(&c, d, 0, &e);
    coil_endpoint_desc_free(d);
    if (rc == 0)
        rc = session_start(r, e, out, err);
    if (rc == 0 && label && label_size)
        snprintf(label, label_size, "%s", e->label);
    ep_unref(e);
    return rc;
}
