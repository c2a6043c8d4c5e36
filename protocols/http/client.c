/* coil — HTTP client: the agent (Twisted's Agent and HTTPConnectionPool),
 * request body producers, responses and their bodies (deliverBody,
 * readBody), coil_http_get and coil_http_download (getPage, downloadPage).
 *
 * Pieces:
 *   agent    options, the pools (one per scheme, host and port, or UNIX
 *            path), every request not yet answered (for agent_free)
 *   pool     its connections (dialing, busy, idle) and the requests that
 *            wait for one, in FIFO order
 *   conn     one connection: a coil_protocol over TCP, TLS, a UNIX socket
 *            or whatever options.connect made. Sends one request at a time
 *            (no pipelining), parses the response head, decodes the body
 *            into the response
 *   req      one request until its deferred fires (redirects and a retry
 *            on a stale pooled connection keep the same req)
 *   response the head, copied, and the body's state: bytes held until
 *            deliver_body, then handed to the user's protocol through a
 *            small transport of kind "http-body"
 *
 * User code runs from many places (the request's deferred, body protocols,
 * body producers) and may free the agent or the response from there. The
 * agent is refcounted (agent_hold/agent_release around anything that calls
 * out); connections and responses too. A connection is "dead" (C_DEAD) as
 * soon as we give up on it: later callbacks from its transport are ignored.
 *
 * Header rules for users: Host and User-Agent given in the request's
 * headers replace the agent's own; Content-Length and Transfer-Encoding are
 * refused (the agent frames the body from the producer's length).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "coil/coil.h"
#include "http_private.h"

#define HOLD_MAX (64 * 1024) /* body bytes held before reading pauses */
#define DRAIN_MAX                                                             \
    (64 * 1024)                 /* bytes of an unwanted body read to keep the \
                                   connection, past that it is closed */
#define MAX_INTERIM 32          /* 1xx responses before the real one */
#define FILE_PIECE  (16 * 1024) /* coil_http_body_from_file reads */
#define MAX_FIELDS  COIL__HTTP_DEFAULT_MAX_FIELDS

/* ======================================================================= */
/* ---- small helpers ------------------------------------------------------ */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static int buf_add(buf *b, const void *d, size_t n)
{
    if (n == 0)
        return 0;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n)
            cap *= 2;
        char *p = realloc(b->p, cap + 1);
        if (!p)
            return COIL_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

static void buf_free(buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static int is_token_str(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= 32 || ch >= 127 || strchr("\"(),/:;<=>?@[\\]{}", ch))
            return 0;
    }
    return 1;
}

/* ======================================================================= */
/* ---- types -------------------------------------------------------------- */

typedef struct pool pool;
typedef struct req req;
typedef struct conn conn;
typedef struct dialer dialer;

enum conn_state { C_DIALING, C_ACTIVE, C_IDLE, C_DEAD };
enum timer_kind { T_NONE, T_CONNECT, T_RESPONSE, T_BODY, T_POOL };

struct coil_http_agent {
    int refs;
    int freeing, sweep_scheduled;
    coil_reactor *r;
    coil_http_agent_options o;
    char *user_agent; /* NULL: send none */
    coil_tls_context *tls;
    pool *pools;
    req *reqs; /* every request whose deferred has not fired */
    coil_http_agent_stats st;
};

struct pool {
    pool *next;
    coil_http_agent *a;
    char *key;
    conn *conns; /* every live connection of the pool */
    size_t nconns, nidle;
    req *wait_head, *wait_tail;
};

struct coil_http_body_consumer {
    req *rq;
    int active; /* between start and done (or stop) */
    int chunked;
    uint64_t sent;
};

struct req {
    req *next, *prev; /* the agent's list */
    req *wnext;       /* the pool's waiting line */
    int waiting;
    coil_http_agent *a;
    pool *pool;
    conn *conn;
    coil_deferred *d;
    char *method;
    coil_http_url *url;
    char *url_text;
    coil_http_headers *headers;
    coil_http_body_producer *body;
    coil_http_body_consumer *cons; /* with body: its own allocation */
    coil_reactor *r;
    int head;      /* HEAD: no body in the response */
    int on_reused; /* sent on a pooled connection */
    int retried;
    int sent; /* the whole request went out */
    unsigned redirects;
};

struct coil_http_response {
    coil_transport bt; /* the "http-body" transport of the body protocol */
    int refs;
    coil_reactor *r;
    int status, version;
    char *reason, *url;
    char **names, **values;
    size_t nheaders;
    int64_t length;
    uint64_t max_body;
    /* the body */
    conn *conn; /* while it comes in */
    enum coil__http_body framing;
    uint64_t expected, received, drained;
    buf held;
    coil_protocol *p;
    int delivered, user_freed, discard, user_paused, ended, finished, aborted;
    int depth, flush_scheduled;
    coil_failure *end_reason;
};

struct conn {
    coil_protocol proto; /* first */
    int refs;
    conn *pnext, *pprev;
    pool *pool;
    coil_http_agent *a;
    coil_reactor *r;
    enum conn_state state;
    req *rq;
    coil_http_response *resp;
    dialer *dl;
    coil_deferred *hookd;
    coil_timer *timer;
    enum timer_kind tkind;
    double tsecs;
    buf in;
    coil__http_parser ps;
    coil__http_head head;
    coil__http_field fields[MAX_FIELDS];
    coil__http_chunked ch;
    unsigned interim;
    int got_bytes, reusable, paused, lost, producer_registered;
    coil_producer up;
    char *where;   /* "127.0.0.1:8080", "unix:/run/app.sock" */
    char *tlshost; /* https: the host the certificate must name */
};

struct dialer {
    coil_factory f; /* first */
    conn *c;
    coil_connector *k;
    coil_reactor *r;
};

static void conn_fail(conn *c, coil_failure *f, int retryable);
static void conn_release(conn *c);
static void conn_close(conn *c);
static void conn_unref(conn *c);
static void conn_send(conn *c, req *rq);
static void conn_update_reading(conn *c);
static void body_feed(conn *c, const char *data, size_t len);
static void body_end(conn *c, coil_failure *f);
static void req_fire(req *rq, coil_http_response *resp, coil_failure *f);
static void req_dispatch(req *rq, int front);
static void resp_unref(coil_http_response *resp);
static void resp_progress(coil_http_response *resp);
static void pool_kick(pool *pl);

/* ======================================================================= */
/* ---- the agent ---------------------------------------------------------- */

static void agent_hold(coil_http_agent *a)
{
    if (a)
        a->refs++;
}

static void agent_release(coil_http_agent *a)
{
    if (!a || --a->refs > 0)
        return;
    while (a->pools) {
        pool *pl = a->pools;
        a->pools = pl->next;
        free(pl->key);
        free(pl);
    }
    if (a->tls)
        coil_tls_context_free(a->tls);
    free(a->user_agent);
    free(a);
}

int coil_http_agent_new(coil_reactor *r, const coil_http_agent_options *o,
                        coil_http_agent **out, coil_failure **err)
{
    if (err)
        *err = NULL;
    if (!r || !out) {
        if (err)
            *err = coil_failure_new(
                COIL_DOMAIN_COIL, COIL_EINVAL,
                "coil_http_agent_new needs a reactor and an out pointer");
        return COIL_EINVAL;
    }
    *out = NULL;
    coil_http_agent *a = calloc(1, sizeof *a);
    if (!a)
        goto nomem;
    a->refs = 1;
    a->r = r;
    if (o)
        a->o = *o;
    if (!a->o.max_per_host)
        a->o.max_per_host = 6;
    if (!a->o.max_idle_per_host)
        a->o.max_idle_per_host = 2;
    if (!(a->o.connect_timeout > 0))
        a->o.connect_timeout = 30;
    if (!(a->o.response_timeout > 0))
        a->o.response_timeout = 60;
    if (!(a->o.idle_timeout > 0))
        a->o.idle_timeout = 60;
    if (!(a->o.pool_timeout > 0))
        a->o.pool_timeout = 60;
    if (!a->o.max_redirects)
        a->o.max_redirects = 20;
    if (!a->o.max_header_bytes)
        a->o.max_header_bytes = COIL__HTTP_DEFAULT_MAX_HEAD;
    if (!a->o.max_body)
        a->o.max_body = 64u * 1024 * 1024;
    const char *ua = a->o.user_agent ? a->o.user_agent : "coil/" COIL_VERSION_STRING;
    if (*ua) {
        if (!coil__http_is_field_value(ua, strlen(ua))) {
            if (err)
                *err =
                    coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                     "user_agent '%s' is not a valid header value", ua);
            free(a);
            return COIL_EINVAL;
        }
        if (!(a->user_agent = strdup(ua)))
            goto nomem;
    }
    a->o.user_agent = NULL;
    if (a->o.tls)
        a->tls = coil_tls_context_ref(a->o.tls);
    a->o.tls = NULL;
    *out = a;
    return 0;
nomem:
    if (a)
        free(a->user_agent);
    free(a);
    if (err)
        *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                "out of memory making an agent");
    return COIL_ENOMEM;
}

/* Take the first request waiting in the pool's line (it has one). */
static req *wait_pop(pool *pl)
{
    req *rq = pl->wait_head;
    pl->wait_head = rq->wnext;
    if (!pl->wait_head)
        pl->wait_tail = NULL;
    rq->wnext = NULL;
    rq->waiting = 0;
    return rq;
}

void coil_http_agent_free(coil_http_agent *a)
{
    if (!a || a->freeing)
        return;
    a->freeing = 1;
    agent_hold(a);
    for (pool *pl = a->pools; pl; pl = pl->next) {
        while (pl->wait_head) {
            req *rq = wait_pop(pl);
            req_fire(rq, NULL,
                     coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED,
                                      "%s %s cancelled: the agent was freed", rq->method,
                                      rq->url_text));
        }
        /* Idle connections close cleanly (no reset for the server). */
        for (;;) {
            conn *idle = NULL;
            for (conn *c = pl->conns; c && !idle; c = c->pnext)
                if (c->state == C_IDLE)
                    idle = c;
            if (!idle)
                break;
            conn_close(idle);
        }
        while (pl->conns) {
            conn *c = pl->conns;
            conn_fail(c,
                      c->rq ? coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED,
                                               "%s %s cancelled: the agent was freed",
                                               c->rq->method, c->rq->url_text)
                            : coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED,
                                               "the agent was freed"),
                      0);
        }
    }
    while (a->reqs)
        req_fire(a->reqs, NULL,
                 coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED,
                                  "%s %s cancelled: the agent was freed", a->reqs->method,
                                  a->reqs->url_text));
    a->refs--;        /* ours (the user's is still held: never the last) */
    agent_release(a); /* the user's */
}

void coil_http_agent_get_stats(const coil_http_agent *a, coil_http_agent_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!a)
        return;
    *out = a->st;
    out->idle = out->active = out->waiting = 0;
    for (pool *pl = a->pools; pl; pl = pl->next) {
        out->idle += pl->nidle;
        out->active += pl->nconns - pl->nidle;
        for (req *rq = pl->wait_head; rq; rq = rq->wnext)
            out->waiting++;
    }
}

/* Pools left with no connection and no request are freed from the loop,
 * where no frame holds one (a crawler meets many hosts once). */
static int agent_sweep(void *arg)
{
    coil_http_agent *a = arg;
    a->sweep_scheduled = 0;
    for (pool **pp = &a->pools; *pp && !a->freeing;) {
        pool *pl = *pp;
        if (pl->nconns == 0 && !pl->wait_head) {
            *pp = pl->next;
            free(pl->key);
            free(pl);
        } else {
            pp = &pl->next;
        }
    }
    agent_release(a);
    return 0;
}

static void agent_sweep_soon(coil_http_agent *a)
{
    if (!a || a->freeing || a->sweep_scheduled)
        return;
    agent_hold(a);
    if (coil_reactor_call_soon(a->r, agent_sweep, a) != 0) {
        agent_release(a);
        return;
    }
    a->sweep_scheduled = 1;
}

static coil_tls_context *agent_tls(coil_http_agent *a, coil_failure **err)
{
    if (a->tls)
        return a->tls;
    coil_tls_options o = {0};
    o.alpn = "http/1.1";
    coil_failure *f = NULL;
    if (coil_tls_context_new(COIL_TLS_CLIENT, &o, &a->tls, &f) != 0) {
        *err = coil_failure_wrap(f, coil_failure_domain(f), coil_failure_code(f),
                                 "cannot make the agent's TLS context for https");
        a->tls = NULL;
        return NULL;
    }
    return a->tls;
}

/* ======================================================================= */
/* ---- URLs --------------------------------------------------------------- */

static char *url_text(const coil_http_url *u)
{
    size_t n = strlen(u->scheme) + strlen(u->target) + 3 * strlen(u->host) +
               strlen(u->authority) + 8;
    char *s = malloc(n);
    if (!s)
        return NULL;
    if (strcmp(u->scheme, "http+unix") == 0) {
        char *w = s + sprintf(s, "%s://", u->scheme);
        for (const unsigned char *h = (const unsigned char *)u->host; *h; h++) {
            if ((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') ||
                (*h >= '0' && *h <= '9') || strchr("-._~", *h))
                *w++ = (char)*h;
            else
                w += sprintf(w, "%%%02X", *h);
        }
        strcpy(w, u->target);
    } else {
        snprintf(s, n, "%s://%s%s", u->scheme, u->authority, u->target);
    }
    return s;
}

/* "127.0.0.1:8080", "[::1]:8443", "unix:/run/app.sock" */
static char *url_where(const coil_http_url *u)
{
    size_t n = strlen(u->host) + 16;
    char *s = malloc(n);
    if (!s)
        return NULL;
    if (strcmp(u->scheme, "http+unix") == 0)
        snprintf(s, n, "unix:%s", u->host);
    else if (strchr(u->host, ':'))
        snprintf(s, n, "[%s]:%d", u->host, u->port);
    else
        snprintf(s, n, "%s:%d", u->host, u->port);
    return s;
}

static char *url_key(const coil_http_url *u)
{
    size_t n = strlen(u->scheme) + strlen(u->host) + 24;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s|%s|%d", u->scheme, u->host, u->port);
    return s;
}

static int same_origin(const coil_http_url *x, const coil_http_url *y)
{
    return strcmp(x->scheme, y->scheme) == 0 && strcmp(x->host, y->host) == 0 &&
           x->port == y->port;
}

/* ======================================================================= */
/* ---- body producers ----------------------------------------------------- */

typedef struct bytes_prod {
    coil_http_body_producer base;
    size_t len;
    char data[];
} bytes_prod;

static void bytes_start(coil_http_body_producer *p, coil_http_body_consumer *c)
{
    bytes_prod *b = (bytes_prod *)p;
    if (b->len && coil_http_body_write(c, b->data, b->len) != 0)
        return;
    (void)coil_http_body_done(c, NULL);
}

static void prod_nothing(coil_http_body_producer *p)
{
    (void)p;
}

static void prod_free(coil_http_body_producer *p)
{
    free(p);
}

static const coil_http_body_producer_ops bytes_ops = {
    .start = bytes_start,
    .pause = prod_nothing,
    .resume = prod_nothing,
    .stop = prod_nothing,
    .destroy = prod_free,
};

coil_http_body_producer *coil_http_body_from_bytes(const void *data, size_t len)
{
    if (!data && len)
        return NULL;
    bytes_prod *b = malloc(sizeof *b + len + 1);
    if (!b)
        return NULL;
    b->base.ops = &bytes_ops;
    b->base.length = (int64_t)len;
    b->base.user = NULL;
    b->len = len;
    if (len)
        memcpy(b->data, data, len);
    return &b->base;
}

/* A body the agent can send again (a retry, a 307/308 redirect). */
static int body_replayable(const coil_http_body_producer *p)
{
    return !p || p->ops == &bytes_ops;
}

typedef struct file_prod {
    coil_http_body_producer base;
    int fd;
    coil_http_body_consumer *c;
    int paused, pumping, done;
    char *path;
} file_prod;

static void file_pump(file_prod *fp)
{
    if (fp->pumping)
        return;
    fp->pumping = 1;
    char piece[FILE_PIECE];
    while (fp->c && !fp->paused && !fp->done) {
        ssize_t n = read(fp->fd, piece, sizeof piece);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fp->done = 1;
            coil_failure *f = n < 0 ? coil_failure_from_errno(errno,
                                                              "cannot read %s for "
                                                              "the request body",
                                                              fp->path)
                                    : NULL;
            (void)coil_http_body_done(fp->c, f);
            break;
        }
        if (coil_http_body_write(fp->c, piece, (size_t)n) != 0)
            break;
    }
    fp->pumping = 0;
}

static void file_start(coil_http_body_producer *p, coil_http_body_consumer *c)
{
    file_prod *fp = (file_prod *)p;
    fp->c = c;
    fp->paused = 0;
    file_pump(fp);
}

static void file_pause(coil_http_body_producer *p)
{
    ((file_prod *)p)->paused = 1;
}

static void file_resume(coil_http_body_producer *p)
{
    file_prod *fp = (file_prod *)p;
    fp->paused = 0;
    file_pump(fp);
}

static void file_stop(coil_http_body_producer *p)
{
    file_prod *fp = (file_prod *)p;
    fp->c = NULL;
    fp->done = 1;
}

static void file_destroy(coil_http_body_producer *p)
{
    file_prod *fp = (file_prod *)p;
    close(fp->fd);
    free(fp->path);
    free(fp);
}

static const coil_http_body_producer_ops file_ops = {
    .start = file_start,
    .pause = file_pause,
    .resume = file_resume,
    .stop = file_stop,
    .destroy = file_destroy,
};

coil_http_body_producer *coil_http_body_from_file(const char *path, coil_failure **err)
{
    if (err)
        *err = NULL;
    if (!path) {
        if (err)
            *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                    "no file name for the body");
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat stbuf;
    int e = fd < 0 ? errno : fstat(fd, &stbuf) != 0 ? errno : 0;
    if (e || !S_ISREG(stbuf.st_mode)) {
        if (fd >= 0)
            close(fd);
        if (err)
            *err = e ? coil_failure_from_errno(e, "cannot open %s for the request body",
                                               path)
                     : coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                        "cannot send %s as a request body: it is not a "
                                        "regular file",
                                        path);
        return NULL;
    }
    file_prod *fp = calloc(1, sizeof *fp);
    if (!fp || !(fp->path = strdup(path))) {
        free(fp);
        close(fd);
        if (err)
            *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory");
        return NULL;
    }
    fp->base.ops = &file_ops;
    fp->base.length = (int64_t)stbuf.st_size;
    fp->fd = fd;
    return &fp->base;
}

/* The request body as the producer writes it. */
static conn *cons_conn(coil_http_body_consumer *c)
{
    if (!c || !c->active || !c->rq)
        return NULL;
    conn *cn = c->rq->conn;
    if (!cn || cn->state != C_ACTIVE || cn->rq != c->rq || !cn->proto.transport)
        return NULL;
    return cn;
}

static void body_stop(req *rq)
{
    if (!rq->cons || !rq->cons->active)
        return;
    rq->cons->active = 0;
    conn *c = rq->conn;
    if (c && c->producer_registered && c->proto.transport) {
        c->producer_registered = 0;
        coil_transport_unregister_producer(c->proto.transport);
    }
    if (rq->body && rq->body->ops->stop)
        rq->body->ops->stop(rq->body);
}

int coil_http_body_write(coil_http_body_consumer *c, const void *data, size_t len)
{
    conn *cn = cons_conn(c);
    if (!cn)
        return COIL_ECLOSED;
    if (len == 0)
        return 0;
    req *rq = c->rq;
    if (rq->body->length >= 0 && c->sent + len > (uint64_t)rq->body->length) {
        body_stop(rq);
        conn_fail(
            cn,
            coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                             "the request body producer for %s %s wrote more than its "
                             "length of %" PRId64 " bytes",
                             rq->method, rq->url_text, rq->body->length),
            0);
        return COIL_EINVAL;
    }
    c->sent += len;
    if (cn->tkind == T_RESPONSE && cn->timer)
        coil_timer_reset(cn->timer, cn->tsecs);
    coil_transport *t = cn->proto.transport;
    if (!c->chunked)
        return coil_transport_write(t, data, len);
    char hex[24];
    int n = snprintf(hex, sizeof hex, "%zx\r\n", len);
    struct iovec iov[3] = {{hex, (size_t)n}, {(void *)data, len}, {(void *)"\r\n", 2}};
    return coil_transport_writev(t, iov, 3);
}

static void conn_timer_arm(conn *c, enum timer_kind kind, double secs);

int coil_http_body_done(coil_http_body_consumer *c, coil_failure *failure)
{
    conn *cn = cons_conn(c);
    if (!cn) {
        coil_failure_free(failure);
        return COIL_ECLOSED;
    }
    req *rq = c->rq;
    c->active = 0;
    if (cn->producer_registered) {
        cn->producer_registered = 0;
        coil_transport_unregister_producer(cn->proto.transport);
    }
    if (failure) {
        conn_fail(cn,
                  coil_failure_wrap(
                      failure, coil_failure_domain(failure), coil_failure_code(failure),
                      "the request body for %s %s failed", rq->method, rq->url_text),
                  0);
        return 0;
    }
    if (rq->body->length >= 0 && c->sent != (uint64_t)rq->body->length) {
        conn_fail(
            cn,
            coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                             "the request body producer for %s %s ended after %" PRIu64
                             " of its %" PRId64 " bytes",
                             rq->method, rq->url_text, c->sent, rq->body->length),
            0);
        return COIL_EINVAL;
    }
    if (c->chunked)
        coil_transport_write(cn->proto.transport, "0\r\n\r\n", 5);
    rq->sent = 1;
    if (!cn->resp && cn->a)
        conn_timer_arm(cn, T_RESPONSE, cn->a->o.response_timeout);
    return 0;
}

/* Flow control from the connection to the request body's producer. */
static conn *up_conn(coil_producer *p)
{
    return (conn *)((char *)p - offsetof(conn, up));
}

static void up_pause(coil_producer *p)
{
    conn *c = up_conn(p);
    if (c->rq && c->rq->cons && c->rq->cons->active && c->rq->body->ops->pause)
        c->rq->body->ops->pause(c->rq->body);
}

static void up_resume(coil_producer *p)
{
    conn *c = up_conn(p);
    if (c->rq && c->rq->cons && c->rq->cons->active && c->rq->body->ops->resume)
        c->rq->body->ops->resume(c->rq->body);
}

static void up_stop(coil_producer *p)
{
    up_conn(p)->producer_registered = 0;
}

static const coil_producer_ops up_ops = {
    .pause_producing = up_pause,
    .resume_producing = up_resume,
    .stop_producing = up_stop,
};

/* ======================================================================= */
/* ---- requests ----------------------------------------------------------- */

static void req_unlink(req *rq)
{
    coil_http_agent *a = rq->a;
    if (rq->prev)
        rq->prev->next = rq->next;
    else if (a && a->reqs == rq)
        a->reqs = rq->next;
    if (rq->next)
        rq->next->prev = rq->prev;
    rq->next = rq->prev = NULL;
}

static void wait_remove(req *rq)
{
    pool *pl = rq->pool;
    if (!rq->waiting || !pl)
        return;
    req **pp = &pl->wait_head;
    req *prev = NULL;
    while (*pp && *pp != rq) {
        prev = *pp;
        pp = &(*pp)->wnext;
    }
    if (*pp) {
        *pp = rq->wnext;
        if (pl->wait_tail == rq)
            pl->wait_tail = prev;
    }
    rq->wnext = NULL;
    rq->waiting = 0;
}

typedef struct body_grave {
    coil_http_body_producer *body;
    coil_http_body_consumer *cons;
} body_grave;

static int body_bury(void *arg)
{
    body_grave *g = arg;
    if (g->body->ops->destroy)
        g->body->ops->destroy(g->body);
    free(g->cons);
    free(g);
    return 0;
}

/* Let go of the request's body: stopped now if it was still going, freed
 * from the loop, as the producer may be inside one of its own calls
 * (coil_http_body_write failing, say); its consumer answers COIL_ECLOSED
 * until then. */
static void body_release(req *rq)
{
    coil_http_body_producer *body = rq->body;
    coil_http_body_consumer *cons = rq->cons;
    rq->body = NULL;
    rq->cons = NULL;
    if (!body) {
        free(cons);
        return;
    }
    if (cons) {
        if (cons->active) {
            cons->active = 0;
            if (body->ops->stop)
                body->ops->stop(body);
        }
        cons->rq = NULL;
    }
    body_grave *g = malloc(sizeof *g);
    if (g && rq->r) {
        g->body = body;
        g->cons = cons;
        if (coil_reactor_call_soon(rq->r, body_bury, g) == 0)
            return;
    }
    free(g);
    if (body->ops->destroy)
        body->ops->destroy(body);
    free(cons);
}

static void req_free(req *rq)
{
    body_release(rq);
    coil_http_url_free(rq->url);
    coil_http_headers_free(rq->headers);
    free(rq->method);
    free(rq->url_text);
    free(rq);
}

/* The request is over: fire its deferred with the response or the failure
 * (both owned). `rq` must be off its connection already. */
static void req_fire(req *rq, coil_http_response *resp, coil_failure *f)
{
    wait_remove(rq);
    req_unlink(rq);
    if (rq->conn && rq->conn->rq == rq)
        rq->conn->rq = NULL;
    rq->conn = NULL;
    coil_deferred *d = rq->d;
    rq->d = NULL;
    req_free(rq);
    if (resp)
        coil_deferred_callback(d, resp, coil_http_response_free);
    else
        coil_deferred_errback(d, f);
    coil_deferred_unref(d);
}

static void req_cancel(coil_deferred *d, void *arg)
{
    req *rq = arg;
    (void)d;
    if (!rq->d)
        return;
    coil_http_agent *a = rq->a;
    agent_hold(a);
    wait_remove(rq);
    req_unlink(rq);
    conn *c = rq->conn;
    rq->conn = NULL;
    if (c && c->rq == rq) {
        c->rq = NULL;
        body_stop(rq);
        conn_fail(c,
                  coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED, "%s %s cancelled",
                                   rq->method, rq->url_text),
                  0);
    }
    coil_deferred *dd = rq->d;
    rq->d = NULL;
    pool *pl = rq->pool;
    req_free(rq);
    coil_deferred_unref(dd); /* the deferred fails with COIL_ECANCELLED */
    if (pl && !a->freeing)
        pool_kick(pl);
    agent_release(a);
}

static int method_idempotent(const char *m)
{
    static const char *const ok[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(m, ok[i]) == 0)
            return 1;
    return 0;
}

static pool *pool_get(coil_http_agent *a, const coil_http_url *u)
{
    char *key = url_key(u);
    if (!key)
        return NULL;
    for (pool *pl = a->pools; pl; pl = pl->next)
        if (strcmp(pl->key, key) == 0) {
            free(key);
            return pl;
        }
    pool *pl = calloc(1, sizeof *pl);
    if (!pl) {
        free(key);
        return NULL;
    }
    pl->a = a;
    pl->key = key;
    pl->next = a->pools;
    a->pools = pl;
    return pl;
}

static void conn_dial(pool *pl, req *rq);

/* Send `rq` on a pooled connection, a new one, or put it in line. */
static void req_dispatch(req *rq, int front)
{
    coil_http_agent *a = rq->a;
    pool *pl = pool_get(a, rq->url);
    if (!pl) {
        req_fire(rq, NULL,
                 coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                  "out of memory for %s %s", rq->method, rq->url_text));
        return;
    }
    rq->pool = pl;
    for (conn *c = pl->conns; c; c = c->pnext) {
        if (c->state != C_IDLE)
            continue;
        if (!c->proto.transport || c->proto.transport->disconnecting)
            continue;
        pl->nidle--;
        a->st.reused++;
        rq->on_reused = 1;
        conn_send(c, rq);
        return;
    }
    if (pl->nconns < a->o.max_per_host) {
        rq->on_reused = 0;
        conn_dial(pl, rq);
        return;
    }
    rq->waiting = 1;
    if (front) {
        rq->wnext = pl->wait_head;
        pl->wait_head = rq;
        if (!pl->wait_tail)
            pl->wait_tail = rq;
    } else {
        rq->wnext = NULL;
        if (pl->wait_tail)
            pl->wait_tail->wnext = rq;
        else
            pl->wait_head = rq;
        pl->wait_tail = rq;
    }
}

/* A connection went away or came free: start the next request in line. */
static void pool_kick(pool *pl)
{
    coil_http_agent *a = pl->a;
    if (a->freeing)
        return;
    while (pl->wait_head) {
        int idle = 0;
        for (conn *c = pl->conns; c; c = c->pnext)
            if (c->state == C_IDLE)
                idle = 1;
        if (!idle && pl->nconns >= a->o.max_per_host)
            return;
        req *rq = wait_pop(pl);
        req_dispatch(rq, 1);
    }
}

static coil_failure *check_headers(const coil_http_headers *h, coil_http_headers **out)
{
    *out = NULL;
    if (!h)
        return NULL;
    coil_http_headers *copy = coil_http_headers_new();
    if (!copy)
        return coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory");
    size_t n = coil_http_headers_count(h);
    for (size_t i = 0; i < n; i++) {
        const char *name, *value;
        if (coil_http_headers_at(h, i, &name, &value) != 0)
            break;
        if (strcasecmp(name, "Content-Length") == 0 ||
            strcasecmp(name, "Transfer-Encoding") == 0) {
            coil_http_headers_free(copy);
            return coil_failure_new(
                COIL_DOMAIN_COIL, COIL_EINVAL,
                "request header '%s' is refused: the agent frames the "
                "body itself (Content-Length from the body producer's "
                "length, chunked when it is -1)",
                name);
        }
        int rc = coil_http_headers_add(copy, name, value);
        if (rc != 0) {
            coil_http_headers_free(copy);
            return coil_failure_new(COIL_DOMAIN_COIL, rc,
                                    "request header '%s' is not a valid field", name);
        }
    }
    *out = copy;
    return NULL;
}

coil_deferred *coil_http_agent_request(coil_http_agent *a, const char *method,
                                       const char *url, const coil_http_headers *headers,
                                       coil_http_body_producer *body)
{
    req *rq = calloc(1, sizeof *rq);
    coil_deferred *d = rq ? coil_deferred_new_cancellable(req_cancel, rq) : NULL;
    if (!d) {
        free(rq);
        if (body && body->ops->destroy)
            body->ops->destroy(body);
        return coil_deferred_fail(coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                                   "out of memory for a request"));
    }
    rq->d = coil_deferred_ref(d);
    rq->a = a;
    rq->r = a ? a->r : NULL;
    rq->body = body;
    coil_failure *f = NULL;
    if (body && !(rq->cons = calloc(1, sizeof *rq->cons))) {
        f = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                             "out of memory for a request");
        goto fail;
    }
    if (!a || a->freeing) {
        f = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL, "no agent for the request");
        goto fail;
    }
    if (!method || !is_token_str(method)) {
        f = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                             "request method '%s' is not an HTTP token",
                             method ? method : "(null)");
        goto fail;
    }
    if (!url) {
        f = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL, "no URL for the request");
        goto fail;
    }
    if (coil_http_url_parse(url, &rq->url, &f) != 0) {
        if (!f)
            f = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL, "bad URL '%.200s'", url);
        goto fail;
    }
    if (!(rq->method = strdup(method)) || !(rq->url_text = url_text(rq->url))) {
        f = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                             "out of memory for a request");
        goto fail;
    }
    if ((f = check_headers(headers, &rq->headers)) != NULL)
        goto fail;
    rq->head = strcmp(method, "HEAD") == 0;
    rq->next = a->reqs;
    if (a->reqs)
        a->reqs->prev = rq;
    a->reqs = rq;
    a->st.requests++;
    agent_hold(a);
    req_dispatch(rq, 0);
    agent_release(a);
    return d;
fail:
    rq->a = NULL;
    coil_deferred *dd = rq->d;
    rq->d = NULL;
    req_free(rq);
    coil_deferred_errback(dd, f);
    coil_deferred_unref(dd);
    return d;
}

/* ======================================================================= */
/* ---- connections -------------------------------------------------------- */

static void conn_free(conn *c)
{
    if (c->timer) {
        coil_timer_cancel(c->timer);
        coil_timer_release(c->timer);
    }
    coil_deferred_unref(c->hookd);
    buf_free(&c->in);
    free(c->where);
    free(c->tlshost);
    free(c);
}

static void conn_unref(conn *c)
{
    if (c && --c->refs == 0)
        conn_free(c);
}

static void conn_unref_arg(void *arg)
{
    conn_unref(arg);
}

static void conn_timer_cancel(conn *c)
{
    if (c->timer) {
        coil_timer_cancel(c->timer);
        coil_timer_release(c->timer);
        c->timer = NULL;
    }
    c->tkind = T_NONE;
}

static int conn_timer_fire(void *arg);

static void conn_timer_arm(conn *c, enum timer_kind kind, double secs)
{
    conn_timer_cancel(c);
    c->tkind = kind;
    c->tsecs = secs;
    c->timer = coil_reactor_call_later(c->r, secs, conn_timer_fire, c);
}

static int dialer_free_soon(void *arg)
{
    dialer *dl = arg;
    if (dl->k)
        coil_connector_free(dl->k);
    free(dl);
    return 0;
}

/* Done with the dialer: from the reactor loop, as a connector must not be
 * freed from inside its own callbacks. */
static void dialer_release(conn *c, int stop)
{
    dialer *dl = c->dl;
    if (!dl)
        return;
    c->dl = NULL;
    dl->c = NULL;
    if (stop && dl->k) {
        coil_transport *t = coil_connector_transport(dl->k);
        coil_connector_stop_connecting(dl->k);
        if (t)
            coil_transport_abort_connection(t);
    }
    if (coil_reactor_call_soon(dl->r, dialer_free_soon, dl) != 0)
        coil_log(COIL_LOG_ERROR, COIL__HTTP_LOG, "out of memory: a connector leaks");
}

/* Off the pool and dead: what it carried is the caller's business. */
static void conn_detach(conn *c, int abort)
{
    if (c->state == C_DEAD)
        return;
    enum conn_state was = c->state;
    c->state = C_DEAD;
    conn_timer_cancel(c);
    if (was == C_DIALING) {
        dialer_release(c, 1);
        if (c->hookd && !coil_deferred_called(c->hookd))
            coil_deferred_cancel(c->hookd);
    }
    coil_transport *t = c->proto.transport;
    if (c->producer_registered && t) {
        c->producer_registered = 0;
        coil_transport_unregister_producer(t);
    }
    if (t && !c->lost) {
        if (abort)
            coil_transport_abort_connection(t);
        else
            coil_transport_lose_connection(t);
    }
    pool *pl = c->pool;
    if (pl) {
        if (c->pprev)
            c->pprev->pnext = c->pnext;
        else
            pl->conns = c->pnext;
        if (c->pnext)
            c->pnext->pprev = c->pprev;
        c->pnext = c->pprev = NULL;
        pl->nconns--;
        if (was == C_IDLE)
            pl->nidle--;
        if (pl->nconns == 0 && !pl->wait_head)
            agent_sweep_soon(pl->a);
        c->pool = NULL;
        c->a = NULL;
        conn_unref(c); /* the pool's reference */
    }
}

/* A finished connection that is not kept: close it cleanly. */
static void conn_close(conn *c)
{
    pool *pl = c->pool;
    coil_http_agent *a = c->a;
    agent_hold(a);
    conn_detach(c, 0);
    if (pl)
        pool_kick(pl);
    agent_release(a);
}

/* The body of `resp` is cut short: how, in words. */
static coil_failure *body_failure(coil_http_response *resp, coil_failure *cause)
{
    if (resp->framing == COIL__HTTP_BODY_LENGTH)
        return coil_failure_wrap(cause, COIL_DOMAIN_COIL, COIL_ECONNLOST,
                                 "response body from %s ended after %" PRIu64
                                 " of %" PRIu64 " bytes",
                                 resp->url, resp->received, resp->expected);
    return coil_failure_wrap(cause, COIL_DOMAIN_COIL, COIL_ECONNLOST,
                             "response body from %s ended after %" PRIu64 " bytes, %s",
                             resp->url, resp->received,
                             resp->framing == COIL__HTTP_BODY_CHUNKED
                                 ? "before its last chunk"
                                 : "before its end");
}

static void req_lost(req *rq, coil_failure *f, int retryable)
{
    coil_http_agent *a = rq->a;
    if (retryable && rq->on_reused && !rq->retried && method_idempotent(rq->method) &&
        body_replayable(rq->body) && a && !a->freeing) {
        /* The server closed a pooled connection as we used it: once more
         * on a new one, as browsers do. */
        coil_log(COIL_LOG_DEBUG, COIL__HTTP_LOG, "retrying %s %s: %s", rq->method,
                 rq->url_text, coil_failure_message(f));
        coil_failure_free(f);
        rq->retried = 1;
        rq->sent = 0;
        req_dispatch(rq, 1);
        return;
    }
    req_fire(rq, NULL, f);
}

/* Give up on `c`: abort it; its request fails with `f` (owned), its body
 * ends with `f` as the cause. */
static void conn_fail(conn *c, coil_failure *f, int retryable)
{
    if (c->state == C_DEAD) {
        coil_failure_free(f);
        return;
    }
    coil_http_agent *a = c->a;
    pool *pl = c->pool;
    agent_hold(a);
    c->refs++;
    req *rq = c->rq;
    coil_http_response *resp = c->resp;
    c->rq = NULL;
    c->resp = NULL;
    if (rq) {
        body_stop(rq);
        rq->conn = NULL;
    }
    conn_detach(c, 1);
    if (resp) {
        resp->conn = NULL;
        coil_failure *bf = coil_failure_copy(f);
        if (!resp->ended) {
            resp->ended = 1;
            resp->end_reason = coil_failure_check(bf, COIL_DOMAIN_COIL, COIL_EABORTED)
                                   ? bf
                                   : body_failure(resp, bf);
        } else {
            coil_failure_free(bf);
        }
        resp->bt.disconnecting = 1;
        resp_progress(resp);
        resp_unref(resp);
    }
    if (rq)
        req_lost(rq, f, retryable);
    else
        coil_failure_free(f);
    if (pl && a && !a->freeing)
        pool_kick(pl);
    conn_unref(c);
    agent_release(a);
}

static coil_failure *connect_failure(conn *c, const coil_failure *why)
{
    /* Same domain and code (coil_failure_check finds them), the words
     * once: the cause is the connector's own cause, if any. */
    const coil_failure *below = coil_failure_cause(why);
    coil_failure *cause = below ? coil_failure_copy(below) : NULL;
    coil_domain dom = coil_failure_domain(why);
    int code = coil_failure_code(why);
    if (dom == COIL_DOMAIN_TLS && code == SSL_R_CERTIFICATE_VERIFY_FAILED)
        return coil_failure_wrap(
            cause, dom, code, "https certificate for %s was not accepted: %s",
            c->tlshost ? c->tlshost : c->where, coil_failure_message(why));
    /* "connect to 127.0.0.1:8080 failed: Connection refused" says no more
     * than the errno; a name that does not resolve says which. */
    if (dom == COIL_DOMAIN_SYSTEM &&
        strncmp(coil_failure_message(why), "connect to ", 11) == 0)
        return coil_failure_wrap(cause, dom, code, "cannot connect to %s: %s", c->where,
                                 strerror(code));
    return coil_failure_wrap(cause, dom, code, "cannot connect to %s: %s", c->where,
                             coil_failure_message(why));
}

static void dial_failed(conn *c, const coil_failure *why)
{
    if (c->state != C_DIALING)
        return;
    conn_fail(c, connect_failure(c, why), 0);
}

static int conn_timer_fire(void *arg)
{
    conn *c = arg;
    enum timer_kind kind = c->tkind;
    coil_timer_release(c->timer);
    c->timer = NULL;
    c->tkind = T_NONE;
    coil_failure *f;
    switch (kind) {
    case T_CONNECT:
        f = coil_failure_new(COIL_DOMAIN_COIL, COIL_ETIMEDOUT,
                             "no connection within %g s", c->tsecs);
        dial_failed(c, f);
        coil_failure_free(f);
        break;
    case T_RESPONSE:
        conn_fail(c,
                  coil_failure_new(COIL_DOMAIN_COIL, COIL_ETIMEDOUT,
                                   "no response from %s within %g s%s%s", c->where,
                                   c->tsecs, c->rq ? " to " : "",
                                   c->rq ? c->rq->url_text : ""),
                  0);
        break;
    case T_BODY:
        conn_fail(c,
                  coil_failure_new(COIL_DOMAIN_COIL, COIL_ETIMEDOUT,
                                   "no data from %s for %g s", c->where, c->tsecs),
                  0);
        break;
    case T_POOL:
        conn_close(c);
        break;
    case T_NONE:
        break;
    }
    return 0;
}

/* -- dialing -- */

static coil_protocol *dialer_build(coil_factory *f, const coil_address *peer)
{
    (void)peer;
    dialer *dl = (dialer *)f;
    conn *c = dl->c;
    if (!c || c->state != C_DIALING)
        return NULL;
    c->refs++; /* the transport's, dropped in destroy */
    return &c->proto;
}

static void dialer_failed(coil_factory *f, coil_connector *k, const coil_failure *why)
{
    (void)k;
    dialer *dl = (dialer *)f;
    if (dl->c)
        dial_failed(dl->c, why);
}

static const coil_factory_ops dialer_ops = {
    .build_protocol = dialer_build,
    .connection_failed = dialer_failed,
};

static void hook_failed(coil_deferred *d, void *arg)
{
    conn *c = arg;
    const coil_failure *why = coil_deferred_failure(d);
    if (c->state == C_DIALING)
        dial_failed(c, why);
    /* handled: the request's deferred carries it */
    coil_deferred_set_result(d, NULL, NULL);
}

static const coil_protocol_ops conn_ops;

static void conn_dial(pool *pl, req *rq)
{
    coil_http_agent *a = pl->a;
    coil_failure *f = NULL;
    conn *c = calloc(1, sizeof *c);
    if (!c || !(c->where = url_where(rq->url))) {
        free(c);
        req_fire(rq, NULL,
                 coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                  "out of memory for %s %s", rq->method, rq->url_text));
        return;
    }
    c->proto.ops = &conn_ops;
    c->refs = 1; /* the pool's */
    c->a = a;
    c->r = a->r;
    c->pool = pl;
    c->state = C_DIALING;
    c->pnext = pl->conns;
    if (pl->conns)
        pl->conns->pprev = c;
    pl->conns = c;
    pl->nconns++;
    c->rq = rq;
    rq->conn = c;
    a->st.connections++;
    c->refs++; /* ours, until the end of this function */
    conn_timer_arm(c, T_CONNECT, a->o.connect_timeout);
    const coil_http_url *u = rq->url;
    if (a->o.connect) {
        c->refs++; /* the hook's, dropped in destroy */
        coil_deferred *hd = a->o.connect(a->o.connect_ud, u, &c->proto);
        if (!hd) {
            f = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                 "the connect hook made no connection");
            goto fail;
        }
        c->hookd = hd;
        c->refs++;
        if (coil_deferred_add_callbacks_full(hd, NULL, hook_failed, c, conn_unref_arg) !=
            0)
            c->refs--; /* the step's, never taken (ours is still held) */
        conn_unref(c);
        return;
    }
    dialer *dl = calloc(1, sizeof *dl);
    if (!dl) {
        f = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory");
        goto fail;
    }
    dl->f.ops = &dialer_ops;
    dl->c = c;
    dl->r = a->r;
    c->dl = dl;
    int rc;
    if (strcmp(u->scheme, "http+unix") == 0) {
        coil_unix_connect_options o = {0};
        o.path = u->host;
        o.timeout = a->o.connect_timeout;
        rc = coil_unix_connect(a->r, &o, &dl->f, &dl->k);
    } else {
        coil_tcp_connect_options o = {0};
        o.host = u->host;
        o.port = u->port;
        o.timeout = a->o.connect_timeout;
        if (u->secure) {
            coil_tls_context *ctx = agent_tls(a, &f);
            if (!ctx)
                goto fail;
            if (!(c->tlshost = strdup(u->host))) {
                f = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory");
                goto fail;
            }
            rc = coil_tls_connect_tcp(a->r, &o, ctx, u->host, &dl->f, &dl->k);
        } else {
            rc = coil_tcp_connect(a->r, &o, &dl->f, &dl->k);
        }
    }
    if (rc != 0) {
        dl->k = NULL;
        f = coil_failure_new(COIL_DOMAIN_COIL, rc, "%s", coil_strerror(rc));
        goto fail;
    }
    conn_unref(c);
    return;
fail:
    dial_failed(c, f);
    coil_failure_free(f);
    conn_unref(c);
}

/* -- sending -- */

static int head_add(buf *b, const char *name, const char *value)
{
    int rc = buf_add(b, name, strlen(name));
    if (rc == 0)
        rc = buf_add(b, ": ", 2);
    if (rc == 0)
        rc = buf_add(b, value, strlen(value));
    if (rc == 0)
        rc = buf_add(b, "\r\n", 2);
    return rc;
}

static void conn_send(conn *c, req *rq)
{
    coil_http_agent *a = c->a;
    conn_timer_cancel(c);
    c->state = C_ACTIVE;
    c->rq = rq;
    rq->conn = c;
    rq->sent = 0;
    c->got_bytes = 0;
    c->reusable = 1;
    c->interim = 0;
    buf_free(&c->in);
    memset(&c->ps, 0, sizeof c->ps);
    coil_transport *t = c->proto.transport;
    if (!t) {
        conn_fail(c,
                  coil_failure_new(COIL_DOMAIN_COIL, COIL_ECONNLOST,
                                   "connection to %s is gone", c->where),
                  1);
        return;
    }
    buf h = {0};
    int rc = buf_add(&h, rq->method, strlen(rq->method));
    rc = rc ? rc : buf_add(&h, " ", 1);
    rc = rc ? rc : buf_add(&h, rq->url->target, strlen(rq->url->target));
    rc = rc ? rc : buf_add(&h, " HTTP/1.1\r\n", 11);
    const char *host = rq->headers ? coil_http_headers_get(rq->headers, "Host") : NULL;
    rc = rc ? rc : head_add(&h, "Host", host ? host : rq->url->authority);
    const char *ua =
        rq->headers ? coil_http_headers_get(rq->headers, "User-Agent") : NULL;
    if (!ua && a->user_agent)
        rc = rc ? rc : head_add(&h, "User-Agent", a->user_agent);
    size_t n = rq->headers ? coil_http_headers_count(rq->headers) : 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *name, *value;
        if (coil_http_headers_at(rq->headers, i, &name, &value) != 0)
            break;
        if (strcasecmp(name, "Host") == 0)
            continue;
        rc = head_add(&h, name, value);
    }
    if (a->o.no_persistent)
        rc = rc ? rc : head_add(&h, "Connection", "close");
    if (rq->cons) {
        memset(rq->cons, 0, sizeof *rq->cons);
        rq->cons->rq = rq;
    }
    if (rq->body) {
        if (rq->body->length >= 0) {
            char len[32];
            snprintf(len, sizeof len, "%" PRId64, rq->body->length);
            rc = rc ? rc : head_add(&h, "Content-Length", len);
        } else {
            rq->cons->chunked = 1;
            rc = rc ? rc : head_add(&h, "Transfer-Encoding", "chunked");
        }
    } else if (strcmp(rq->method, "POST") == 0 || strcmp(rq->method, "PUT") == 0 ||
               strcmp(rq->method, "PATCH") == 0) {
        rc = rc ? rc : head_add(&h, "Content-Length", "0");
    }
    rc = rc ? rc : buf_add(&h, "\r\n", 2);
    if (rc != 0) {
        buf_free(&h);
        conn_fail(c,
                  coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                   "out of memory sending %s %s", rq->method,
                                   rq->url_text),
                  0);
        return;
    }
    rc = coil_transport_write(t, h.p, h.len);
    buf_free(&h);
    if (rc != 0)
        return; /* connection_lost tells */
    /* Also while a body goes out: each piece the producer writes restarts
     * it, so an upload that stalls ends as well. */
    conn_timer_arm(c, T_RESPONSE, a->o.response_timeout);
    if (!rq->body) {
        rq->sent = 1;
        return;
    }
    rq->cons->active = 1;
    c->up.ops = &up_ops;
    if (coil_transport_register_producer(t, &c->up, 1) == 0)
        c->producer_registered = 1;
    c->refs++;
    rq->body->ops->start(rq->body, rq->cons);
    conn_unref(c);
}

/* -- receiving -- */

static coil_http_response *resp_new(conn *c, req *rq)
{
    coil__http_head *hd = &c->head;
    coil_http_response *resp = calloc(1, sizeof *resp);
    if (!resp)
        return NULL;
    resp->refs = 1;
    resp->r = c->r;
    resp->status = hd->status;
    resp->version = hd->version;
    resp->framing = hd->body;
    resp->expected = hd->body == COIL__HTTP_BODY_LENGTH ? hd->content_length : 0;
    resp->max_body = c->a ? c->a->o.max_body : 64u * 1024 * 1024;
    resp->reason = strndup(hd->reason ? hd->reason : "", hd->reason_len);
    resp->url = strdup(rq->url_text);
    size_t total = 0;
    for (size_t i = 0; i < hd->nfields; i++)
        total += hd->fields[i].name_len + hd->fields[i].value_len + 2;
    resp->names = calloc(hd->nfields + 1, sizeof *resp->names);
    resp->values = calloc(hd->nfields + 1, sizeof *resp->values);
    char *block = malloc(total + 1);
    if (!resp->reason || !resp->url || !resp->names || !resp->values || !block) {
        free(block);
        resp_unref(resp);
        return NULL;
    }
    resp->names[0] = block; /* owns the block even with no fields */
    for (size_t i = 0; i < hd->nfields; i++) {
        const coil__http_field *fl = &hd->fields[i];
        resp->names[i] = block;
        memcpy(block, fl->name, fl->name_len);
        block[fl->name_len] = 0;
        block += fl->name_len + 1;
        resp->values[i] = block;
        memcpy(block, fl->value, fl->value_len);
        block[fl->value_len] = 0;
        block += fl->value_len + 1;
    }
    resp->nheaders = hd->nfields;
    switch (hd->body) {
    case COIL__HTTP_BODY_LENGTH:
        resp->length = (int64_t)hd->content_length;
        break;
    case COIL__HTTP_BODY_NONE:
        resp->length = 0;
        if (rq->head) {
            const char *cl = coil_http_response_header(resp, "Content-Length");
            char *end;
            if (cl && *cl >= '0' && *cl <= '9') {
                unsigned long long v = strtoull(cl, &end, 10);
                if (*end == 0 && v < (1ull << 62))
                    resp->length = (int64_t)v;
            }
        }
        break;
    default:
        resp->length = -1;
    }
    return resp;
}

/* The user sent "Connection: close": the server will close after this. */
static int asked_close(const req *rq)
{
    const char *v = rq->headers ? coil_http_headers_get(rq->headers, "Connection") : NULL;
    if (!v)
        return 0;
    for (const char *p = v; (p = strcasestr(p, "close")) != NULL; p += 5) {
        int start = p == v || p[-1] == ',' || p[-1] == ' ' || p[-1] == '\t';
        int end = p[5] == 0 || p[5] == ',' || p[5] == ' ' || p[5] == '\t';
        if (start && end)
            return 1;
    }
    return 0;
}

static int is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 ||
           status == 308;
}

/* Follow the redirect in `resp` for `rq`: 1 when `rq` is ready to be sent
 * to its new URL, -1 when it failed (fired), 0 to hand the response to the
 * user (no Location). */
static int follow_redirect(req *rq, coil_http_response *resp)
{
    const char *loc = coil_http_response_header(resp, "Location");
    if (!loc)
        return 0;
    coil_http_agent *a = rq->a;
    coil_failure *f = NULL;
    coil_http_url *nu = NULL;
    if (rq->redirects >= a->o.max_redirects) {
        f = coil_failure_new(COIL_DOMAIN_COIL, COIL_EPROTO,
                             "too many redirects: more than %u, the last from %s to %s",
                             a->o.max_redirects, rq->url_text, loc);
        goto fail;
    }
    if (coil_http_url_resolve(rq->url, loc, &nu, &f) != 0) {
        f = coil_failure_wrap(f, COIL_DOMAIN_COIL, COIL_EPROTO,
                              "bad Location '%.300s' in the %d response from %s", loc,
                              resp->status, rq->url_text);
        goto fail;
    }
    if (rq->url->secure && !nu->secure) {
        f = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOTSUP,
                             "redirect from %s to %s refused: it leaves https for an "
                             "unencrypted URL (the request would go out in the clear)",
                             rq->url_text, loc);
        goto fail;
    }
    int to_get = resp->status == 303 || ((resp->status == 301 || resp->status == 302) &&
                                         strcmp(rq->method, "POST") == 0);
    if (to_get && strcmp(rq->method, "HEAD") != 0) {
        char *m = strdup("GET");
        if (!m) {
            f = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory");
            goto fail;
        }
        free(rq->method);
        rq->method = m;
    }
    if (to_get && rq->body) {
        body_release(rq);
        if (rq->headers)
            coil_http_headers_remove(rq->headers, "Content-Type");
    } else if (!body_replayable(rq->body)) {
        f = coil_failure_new(
            COIL_DOMAIN_COIL, COIL_ENOTSUP,
            "cannot follow the %d redirect from %s to %s: the request body "
            "cannot be sent again (give it with coil_http_body_from_bytes)",
            resp->status, rq->url_text, loc);
        goto fail;
    }
    char *text = url_text(nu);
    if (!text) {
        f = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory");
        goto fail;
    }
    if (!same_origin(rq->url, nu) && rq->headers) {
        /* Credentials and the Host of the first server are not for another. */
        coil_http_headers_remove(rq->headers, "Authorization");
        coil_http_headers_remove(rq->headers, "Cookie");
        coil_http_headers_remove(rq->headers, "Host");
    }
    coil_log(COIL_LOG_DEBUG, COIL__HTTP_LOG, "%d redirect from %s to %s", resp->status,
             rq->url_text, text);
    coil_http_url_free(rq->url);
    free(rq->url_text);
    rq->url = nu;
    rq->url_text = text;
    rq->redirects++;
    rq->head = strcmp(rq->method, "HEAD") == 0;
    rq->on_reused = 0;
    rq->retried = 0;
    rq->sent = 0;
    return 1;
fail:
    coil_http_url_free(nu);
    req_fire(rq, NULL, f);
    return -1;
}

static void head_done(conn *c, size_t head_len)
{
    req *rq = c->rq;
    coil_http_agent *a = c->a;
    conn_timer_cancel(c);
    coil_http_response *resp = resp_new(c, rq);
    if (!resp) {
        conn_fail(c,
                  coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                   "out of memory reading the response from %s",
                                   c->where),
                  0);
        return;
    }
    if (!c->head.keep_alive || resp->framing == COIL__HTTP_BODY_CLOSE ||
        (a && a->o.no_persistent) || asked_close(rq))
        c->reusable = 0;
    if (rq->cons && rq->cons->active) {
        /* The server answered before taking the whole body. */
        body_stop(rq);
        c->reusable = 0;
    }
    if (resp->framing == COIL__HTTP_BODY_CHUNKED) {
        memset(&c->ch, 0, sizeof c->ch);
        c->ch.max_trailer = a ? a->o.max_header_bytes : 0;
    }
    /* The bytes after the head are the body's. */
    buf rest = c->in;
    memset(&c->in, 0, sizeof c->in);
    c->rq = NULL;
    rq->conn = NULL;
    c->resp = resp;
    resp->conn = c;
    resp->refs++; /* the connection's */
    conn_timer_arm(c, T_BODY, a ? a->o.idle_timeout : 60);
    agent_hold(a);
    c->refs++;
    int redirect = 0;
    if (a && a->o.follow_redirects && is_redirect(resp->status))
        redirect = follow_redirect(rq, resp);
    if (redirect > 0) {
        /* Drain the redirect's body first: the connection may then carry
         * the next request when it goes to the same server. User code may
         * run meanwhile (the next request's producer): `rq` is hidden from
         * agent_free and from a cancel until it goes on. */
        req_unlink(rq);
        coil_deferred *d = rq->d;
        rq->d = NULL;
        resp->refs++;
        coil_http_response_free(resp);
        if (c->resp == resp && c->state == C_ACTIVE)
            body_feed(c, rest.p + head_len, rest.len - head_len);
        resp_unref(resp);
        rq->d = d;
        if (a->freeing || coil_deferred_called(d)) {
            req_fire(rq, NULL,
                     coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED,
                                      "%s %s cancelled", rq->method, rq->url_text));
        } else {
            rq->next = a->reqs;
            if (a->reqs)
                a->reqs->prev = rq;
            a->reqs = rq;
            req_dispatch(rq, 0);
        }
    } else if (redirect < 0) {
        /* failed: rq is gone; the response goes unread */
        resp->refs++;
        coil_http_response_free(resp);
        if (c->resp == resp && c->state == C_ACTIVE)
            body_feed(c, rest.p + head_len, rest.len - head_len);
        resp_unref(resp);
    } else {
        /* The body bytes of this read go in before the user sees the
         * response (held for deliver_body), so a body that is complete is
         * complete whatever the callbacks do (free the agent, say). The
         * request is done with: off every list, its deferred ours alone (a
         * cancel from here on is too late and ignored). */
        req_unlink(rq);
        coil_deferred *d = rq->d;
        rq->d = NULL;
        req_free(rq);
        if (c->resp == resp && c->state == C_ACTIVE)
            body_feed(c, rest.p + head_len, rest.len - head_len);
        coil_deferred_callback(d, resp, coil_http_response_free);
        coil_deferred_unref(d);
    }
    buf_free(&rest);
    conn_unref(c);
    agent_release(a);
}

static void conn_data(coil_protocol *p, const void *data, size_t len)
{
    conn *c = (conn *)p;
    if (c->state == C_IDLE) {
        /* Nothing may come on an idle connection. */
        coil_log(COIL_LOG_DEBUG, COIL__HTTP_LOG,
                 "%zu unexpected bytes on an idle "
                 "connection to %s: closed",
                 len, c->where);
        conn_fail(c, coil_failure_new(COIL_DOMAIN_COIL, COIL_EPROTO, "unexpected bytes"),
                  0);
        return;
    }
    if (c->state != C_ACTIVE)
        return;
    if (c->resp) {
        c->refs++;
        body_feed(c, data, len);
        conn_unref(c);
        return;
    }
    if (!c->rq) {
        conn_fail(c, coil_failure_new(COIL_DOMAIN_COIL, COIL_EPROTO, "unexpected bytes"),
                  0);
        return;
    }
    c->got_bytes = 1;
    size_t max_head = c->a ? c->a->o.max_header_bytes : COIL__HTTP_DEFAULT_MAX_HEAD;
    /* The parser stops at max_head; what follows it in this read is body. */
    if (c->in.len > max_head + 65536 || buf_add(&c->in, data, len) != 0) {
        conn_fail(c,
                  coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                   "out of memory reading the response from %s",
                                   c->where),
                  0);
        return;
    }
    coil__http_limits lim = {0};
    lim.max_head = max_head;
    lim.max_fields = MAX_FIELDS;
    for (;;) {
        const char *why = NULL;
        memset(&c->head, 0, sizeof c->head);
        c->head.fields = c->fields;
        c->head.fields_cap = MAX_FIELDS;
        int rc = coil__http_parse_response(&c->ps, c->in.p, c->in.len, &lim, c->rq->head,
                                           &c->head, &why);
        if (rc == 0)
            return;
        if (rc < 0) {
            conn_fail(c,
                      coil_failure_new(COIL_DOMAIN_COIL, COIL_EPROTO,
                                       "bad response from %s: %s", c->where,
                                       why ? why : "malformed"),
                      0);
            return;
        }
        if (c->head.status == 101) {
            conn_fail(
                c,
                coil_failure_new(COIL_DOMAIN_COIL, COIL_EPROTO,
                                 "bad response from %s: 101 Switching Protocols, but "
                                 "the agent asked for no upgrade",
                                 c->where),
                0);
            return;
        }
        if (c->head.status >= 100 && c->head.status < 200) {
            if (++c->interim > MAX_INTERIM) {
                conn_fail(c,
                          coil_failure_new(COIL_DOMAIN_COIL, COIL_EPROTO,
                                           "bad response from %s: more than %d interim "
                                           "(1xx) responses",
                                           c->where, MAX_INTERIM),
                          0);
                return;
            }
            memmove(c->in.p, c->in.p + rc, c->in.len - (size_t)rc);
            c->in.len -= (size_t)rc;
            memset(&c->ps, 0, sizeof c->ps);
            if (c->in.len == 0)
                return;
            continue;
        }
        head_done(c, (size_t)rc);
        return;
    }
}

/* -- the body, as it comes -- */

static void body_data(conn *c, coil_http_response *resp, const char *d, size_t n)
{
    if (n == 0)
        return;
    resp->received += n;
    if (c->tkind == T_BODY && c->timer)
        coil_timer_reset(c->timer, c->tsecs);
    if (resp->discard) {
        resp->drained += n;
        if (resp->drained > DRAIN_MAX) /* not worth the connection */
            conn_fail(c,
                      coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED,
                                       "nobody reads the response body from %s",
                                       resp->url),
                      0);
        return;
    }
    if (resp->delivered && !resp->user_paused && resp->held.len == 0 &&
        resp->depth == 0 && !resp->finished) {
        coil_protocol *p = resp->p;
        resp->depth++;
        if (p->ops->data_received)
            p->ops->data_received(p, d, n);
        resp->depth--;
        return;
    }
    if (buf_add(&resp->held, d, n) != 0) {
        conn_fail(c,
                  coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                   "out of memory holding the response body from %s",
                                   resp->url),
                  0);
        return;
    }
    conn_update_reading(c);
}

static void body_feed(conn *c, const char *data, size_t len)
{
    coil_http_response *resp = c->resp;
    resp->refs++;
    switch (resp->framing) {
    case COIL__HTTP_BODY_NONE:
    case COIL__HTTP_BODY_LENGTH: {
        uint64_t left = resp->expected - resp->received;
        size_t n = len < left ? len : (size_t)left;
        body_data(c, resp, data, n);
        if (c->resp == resp && resp->received == resp->expected) {
            if (len > n)
                c->reusable = 0; /* more than the response: nothing to trust */
            body_end(c, NULL);
        }
        break;
    }
    case COIL__HTTP_BODY_CHUNKED:
        while (len > 0 && c->resp == resp) {
            size_t used = 0, dlen = 0;
            const char *d = NULL, *why = NULL;
            int rc = coil__http_chunked_feed(&c->ch, data, len, &used, &d, &dlen, &why);
            data += used;
            len -= used;
            if (rc == COIL__CHUNK_DATA) {
                body_data(c, resp, d, dlen);
            } else if (rc == COIL__CHUNK_END) {
                if (len > 0)
                    c->reusable = 0;
                body_end(c, NULL);
                break;
            } else if (rc == COIL__CHUNK_MORE) {
                break;
            } else {
                conn_fail(c,
                          coil_failure_new(COIL_DOMAIN_COIL, COIL_EPROTO,
                                           "bad response from %s: %s", c->where,
                                           why ? why : "bad chunked body"),
                          0);
                break;
            }
        }
        break;
    case COIL__HTTP_BODY_CLOSE:
        body_data(c, resp, data, len);
        break;
    }
    resp_unref(resp);
}

/* The body came to its end (f NULL) on `c`. */
static void body_end(conn *c, coil_failure *f)
{
    coil_http_response *resp = c->resp;
    if (f) {
        conn_fail(c, f, 0);
        return;
    }
    c->resp = NULL;
    resp->conn = NULL;
    resp->ended = 1;
    resp->bt.disconnecting = 1;
    resp->end_reason =
        coil_failure_new(COIL_DOMAIN_COIL, COIL_ECLOSED, "the response body is complete");
    conn_timer_cancel(c);
    c->refs++;
    if (c->paused && c->proto.transport) {
        c->paused = 0;
        coil_transport_resume_reading(c->proto.transport);
    }
    if (c->reusable)
        conn_release(c);
    else
        conn_close(c);
    resp_progress(resp);
    resp_unref(resp); /* the connection's */
    conn_unref(c);
}

static void conn_release(conn *c)
{
    pool *pl = c->pool;
    coil_http_agent *a = c->a;
    if (!pl || !a || a->freeing || !c->proto.transport ||
        c->proto.transport->disconnecting) {
        conn_close(c);
        return;
    }
    c->rq = NULL;
    c->resp = NULL;
    buf_free(&c->in);
    memset(&c->ps, 0, sizeof c->ps);
    if (pl->wait_head) {
        req *rq = wait_pop(pl);
        a->st.reused++;
        rq->on_reused = 1;
        conn_send(c, rq);
        return;
    }
    if (pl->nidle >= a->o.max_idle_per_host) {
        conn_close(c);
        return;
    }
    c->state = C_IDLE;
    pl->nidle++;
    conn_timer_arm(c, T_POOL, a->o.pool_timeout);
}

/* Pause the connection while the body's reader pauses or too much is
 * held for it. */
static void conn_update_reading(conn *c)
{
    coil_http_response *resp = c->resp;
    coil_transport *t = c->proto.transport;
    if (!t || c->state != C_ACTIVE)
        return;
    int want =
        resp && !resp->discard && (resp->user_paused || resp->held.len >= HOLD_MAX);
    if (want && !c->paused) {
        c->paused = 1;
        coil_transport_pause_reading(t);
        if (c->tkind == T_BODY && c->timer) {
            coil_timer_cancel(c->timer);
            coil_timer_release(c->timer);
            c->timer = NULL; /* kind kept: re-armed on resume */
        }
    } else if (!want && c->paused) {
        c->paused = 0;
        coil_transport_resume_reading(t);
        if (c->tkind == T_BODY && !c->timer)
            conn_timer_arm(c, T_BODY, c->tsecs);
    }
}

static void conn_made(coil_protocol *p)
{
    conn *c = (conn *)p;
    if (c->state != C_DIALING) {
        coil_transport_abort_connection(p->transport);
        return;
    }
    dialer_release(c, 0);
    req *rq = c->rq;
    conn_send(c, rq);
}

static void conn_lost(coil_protocol *p, const coil_failure *reason)
{
    conn *c = (conn *)p;
    c->lost = 1;
    c->paused = 0;
    c->producer_registered = 0;
    if (c->state == C_DEAD)
        return;
    if (c->state == C_DIALING) {
        dial_failed(c, reason);
        return;
    }
    if (c->state == C_IDLE) {
        conn_close(c);
        return;
    }
    coil_http_response *resp = c->resp;
    if (resp && resp->framing == COIL__HTTP_BODY_CLOSE &&
        coil_failure_domain(reason) == COIL_DOMAIN_COIL &&
        coil_failure_code(reason) == COIL_ECLOSED) {
        c->reusable = 0;
        body_end(c, NULL);
        return;
    }
    int retryable = c->rq && !c->got_bytes;
    int clean = coil_failure_domain(reason) == COIL_DOMAIN_COIL &&
                coil_failure_code(reason) == COIL_ECLOSED;
    const char *what = c->rq ? (c->got_bytes ? "closed in the middle of the response head"
                                             : "closed before the response")
                       : clean ? "closed by the server"
                               : "lost";
    conn_fail(c,
              coil_failure_wrap(coil_failure_copy(reason), COIL_DOMAIN_COIL,
                                COIL_ECONNLOST, "connection to %s %s", c->where, what),
              retryable);
}

static void conn_connection_failed(coil_protocol *p, const coil_failure *reason)
{
    dial_failed((conn *)p, reason);
}

static void conn_destroy(coil_protocol *p)
{
    conn *c = (conn *)p;
    c->lost = 1;
    if (c->state == C_DIALING && !c->dl) {
        /* options.connect let go of the protocol: its deferred says why
         * (or the connect timeout fires). */
    } else if (c->state == C_DIALING) {
        coil_failure *f = coil_failure_new(COIL_DOMAIN_COIL, COIL_ECONNLOST,
                                           "the connection never came up");
        dial_failed(c, f);
        coil_failure_free(f);
    } else if (c->state != C_DEAD) {
        conn_fail(c,
                  coil_failure_new(COIL_DOMAIN_COIL, COIL_ECONNLOST,
                                   "connection to %s lost", c->where),
                  0);
    }
    conn_unref(c); /* the transport's */
}

static const coil_protocol_ops conn_ops = {
    .connection_made = conn_made,
    .data_received = conn_data,
    .connection_lost = conn_lost,
    .destroy = conn_destroy,
    .connection_failed = conn_connection_failed,
};

/* ======================================================================= */
/* ---- responses ---------------------------------------------------------- */

static void resp_unref(coil_http_response *resp)
{
    if (!resp || --resp->refs > 0)
        return;
    buf_free(&resp->held);
    coil_failure_free(resp->end_reason);
    if (resp->names)
        free(resp->names[0]);
    free(resp->names);
    free(resp->values);
    free(resp->reason);
    free(resp->url);
    free(resp);
}

static int resp_flush_soon(void *arg)
{
    coil_http_response *resp = arg;
    resp->flush_scheduled = 0;
    resp_progress(resp);
    resp_unref(resp);
    return 0;
}

static void resp_schedule(coil_http_response *resp)
{
    if (resp->flush_scheduled)
        return;
    resp->refs++;
    if (coil_reactor_call_soon(resp->r, resp_flush_soon, resp) != 0) {
        resp->refs--;
        return;
    }
    resp->flush_scheduled = 1;
}

/* Hand held bytes, then the end, to the body protocol, as far as it
 * lets us. Never nested inside one of its own callbacks. */
static void resp_progress(coil_http_response *resp)
{
    if (!resp->delivered || resp->finished)
        return;
    if (resp->depth > 0) {
        resp_schedule(resp);
        return;
    }
    resp->refs++;
    coil_protocol *p = resp->p;
    while (!resp->user_paused && resp->held.len > 0 && !resp->finished) {
        buf b = resp->held;
        memset(&resp->held, 0, sizeof resp->held);
        resp->depth++;
        if (p->ops->data_received)
            p->ops->data_received(p, b.p, b.len);
        resp->depth--;
        buf_free(&b);
    }
    if (resp->ended && resp->held.len == 0 && !resp->finished) {
        resp->finished = 1;
        resp->depth++;
        if (p->ops->connection_lost)
            p->ops->connection_lost(p, resp->end_reason);
        p->transport = NULL;
        resp->bt.protocol = NULL;
        resp->p = NULL;
        if (p->ops->destroy)
            p->ops->destroy(p);
        resp->depth--;
        resp_unref(resp); /* the delivery's */
    }
    if (resp->conn)
        conn_update_reading(resp->conn);
    resp_unref(resp);
}

/* The reader is done with the body: stop it and close the connection. */
static void resp_abort(coil_http_response *resp)
{
    if (resp->finished || resp->aborted)
        return;
    resp->aborted = 1;
    buf_free(&resp->held);
    coil_failure *f =
        coil_failure_new(COIL_DOMAIN_COIL, COIL_EABORTED,
                         "response body from %s aborted by its reader", resp->url);
    if (resp->conn) {
        conn_fail(resp->conn, f, 0);
    } else {
        if (!resp->ended) {
            resp->ended = 1;
            resp->end_reason = f;
        } else {
            coil_failure_free(resp->end_reason);
            resp->end_reason = f;
        }
        resp_progress(resp);
    }
}

static coil_http_response *bt_resp(const coil_transport *t)
{
    return (coil_http_response *)t;
}

static int bt_write(coil_transport *t, const void *d, size_t n)
{
    (void)t;
    (void)d;
    (void)n;
    return COIL_ENOTSUP;
}

static int bt_writev(coil_transport *t, const struct iovec *iov, int n)
{
    (void)t;
    (void)iov;
    (void)n;
    return COIL_ENOTSUP;
}

static int bt_abort(coil_transport *t)
{
    resp_abort(bt_resp(t));
    return 0;
}

static int bt_lose_write(coil_transport *t)
{
    (void)t;
    return COIL_ENOTSUP;
}

static int bt_get_peer(const coil_transport *t, coil_address *out)
{
    conn *c = bt_resp(t)->conn;
    if (c && c->proto.transport)
        return coil_transport_get_peer(c->proto.transport, out);
    return COIL_ENOTSUP;
}

static int bt_get_host(const coil_transport *t, coil_address *out)
{
    conn *c = bt_resp(t)->conn;
    if (c && c->proto.transport)
        return coil_transport_get_host(c->proto.transport, out);
    return COIL_ENOTSUP;
}

static int bt_pause(coil_transport *t)
{
    coil_http_response *resp = bt_resp(t);
    resp->user_paused = 1;
    if (resp->conn)
        conn_update_reading(resp->conn);
    return 0;
}

static int bt_resume(coil_transport *t)
{
    coil_http_response *resp = bt_resp(t);
    if (!resp->user_paused)
        return 0;
    resp->user_paused = 0;
    if (resp->held.len || resp->ended)
        resp_schedule(resp);
    else if (resp->conn)
        conn_update_reading(resp->conn);
    return 0;
}

static int bt_register(coil_transport *t, coil_producer *p, int streaming)
{
    (void)t;
    (void)p;
    (void)streaming;
    return COIL_ENOTSUP;
}

static int bt_unregister(coil_transport *t)
{
    (void)t;
    return COIL_ENOTSUP;
}

static int bt_info(const coil_transport *t, coil_transport_info *out)
{
    coil_http_response *resp = bt_resp(t);
    coil_transport_info below;
    memset(out, 0, sizeof *out);
    int have = 0;
    if (resp->conn && resp->conn->proto.transport &&
        coil_transport_info_get(resp->conn->proto.transport, &below) == 0)
        have = 1;
    coil_transport_layer_info *l =
        coil_transport_info_push(out, have ? &below : NULL, "http-body");
    if (l)
        snprintf(l->detail, sizeof l->detail, "%s", resp->url);
    out->kind = "http-body";
    out->reading = !resp->user_paused;
    out->peer_pid = -1;
    out->peer_uid = out->peer_gid = -1;
    return 0;
}

static const coil_transport_ops body_transport_ops = {
    .kind = "http-body",
    .write = bt_write,
    .writev = bt_writev,
    .lose_connection = bt_abort,
    .abort_connection = bt_abort,
    .lose_write_connection = bt_lose_write,
    .get_peer = bt_get_peer,
    .get_host = bt_get_host,
    .pause_reading = bt_pause,
    .resume_reading = bt_resume,
    .register_producer = bt_register,
    .unregister_producer = bt_unregister,
    .start_tls = coil_transport_no_start_tls,
    .info = bt_info,
    .pending = coil_transport_no_pending,
};

int coil_http_response_deliver_body(coil_http_response *resp, coil_protocol *p)
{
    if (!p)
        return COIL_EINVAL;
    if (!resp || resp->delivered) {
        if (p->ops->destroy)
            p->ops->destroy(p);
        return resp ? COIL_ESTATE : COIL_EINVAL;
    }
    resp->delivered = 1;
    resp->p = p;
    resp->refs++; /* the delivery's, until connection_lost */
    resp->bt.ops = &body_transport_ops;
    resp->bt.protocol = p;
    resp->bt.reactor = resp->r;
    resp->bt.disconnecting = resp->ended;
    p->transport = &resp->bt;
    resp->refs++;
    resp->depth++;
    if (p->ops->connection_made)
        p->ops->connection_made(p);
    resp->depth--;
    resp_progress(resp);
    if (resp->conn)
        conn_update_reading(resp->conn);
    resp_unref(resp);
    return 0;
}

void coil_http_response_free(void *arg)
{
    coil_http_response *resp = arg;
    if (!resp)
        return;
    resp->user_freed = 1;
    conn *c = resp->conn;
    if (!resp->delivered && c && !resp->ended) {
        /* Nobody will read the rest: drop it, and keep the connection when
         * little is left. */
        resp->discard = 1;
        resp->drained = resp->held.len;
        buf_free(&resp->held);
        if (resp->framing == COIL__HTTP_BODY_CLOSE ||
            (resp->framing == COIL__HTTP_BODY_LENGTH &&
             resp->expected - resp->received > DRAIN_MAX) ||
            resp->drained > DRAIN_MAX) {
            resp->refs++;
            conn_fail(c,
                      coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED,
                                       "the response was freed before its body was read"),
                      0);
            resp->refs--; /* the hold (the caller's is still held: never the last) */
        } else {
            conn_update_reading(c);
        }
    }
    resp_unref(resp);
}

int coil_http_response_status(const coil_http_response *resp)
{
    return resp ? resp->status : COIL_EINVAL;
}

const char *coil_http_response_reason(const coil_http_response *resp)
{
    return resp ? resp->reason : NULL;
}

int coil_http_response_version(const coil_http_response *resp)
{
    return resp ? resp->version : COIL_EINVAL;
}

const char *coil_http_response_header(const coil_http_response *resp, const char *name)
{
    if (!resp || !name)
        return NULL;
    for (size_t i = 0; i < resp->nheaders; i++)
        if (strcasecmp(resp->names[i], name) == 0)
            return resp->values[i];
    return NULL;
}

size_t coil_http_response_header_count(const coil_http_response *resp)
{
    return resp ? resp->nheaders : 0;
}

int coil_http_response_header_at(const coil_http_response *resp, size_t i,
                                 const char **name, const char **value)
{
    if (!resp || i >= resp->nheaders)
        return COIL_EINVAL;
    if (name)
        *name = resp->names[i];
    if (value)
        *value = resp->values[i];
    return 0;
}

int64_t coil_http_response_length(const coil_http_response *resp)
{
    return resp ? resp->length : -1;
}

const char *coil_http_response_url(const coil_http_response *resp)
{
    return resp ? resp->url : NULL;
}

/* ======================================================================= */
/* ---- readBody ----------------------------------------------------------- */

typedef struct collector {
    coil_protocol p; /* first */
    coil_deferred *d;
    buf b;
    uint64_t max;
    char *url;
} collector;

static void collector_data(coil_protocol *p, const void *data, size_t len)
{
    collector *col = (collector *)p;
    if (!col->d || coil_deferred_called(col->d))
        return;
    if (col->b.len + len > col->max) {
        coil_deferred_errback(col->d,
                              coil_failure_new(COIL_DOMAIN_COIL, COIL_EMSGSIZE,
                                               "response body from %s is larger than the "
                                               "limit of %" PRIu64 " bytes",
                                               col->url, col->max));
        coil_transport_abort_connection(p->transport);
        return;
    }
    if (buf_add(&col->b, data, len) != 0) {
        coil_deferred_errback(
            col->d, coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                     "out of memory reading the body of %s", col->url));
        coil_transport_abort_connection(p->transport);
    }
}

static void collector_lost(coil_protocol *p, const coil_failure *reason)
{
    collector *col = (collector *)p;
    if (!col->d || coil_deferred_called(col->d))
        return;
    if (coil_failure_domain(reason) == COIL_DOMAIN_COIL &&
        coil_failure_code(reason) == COIL_ECLOSED) {
        coil_http_bytes *bytes = malloc(sizeof *bytes);
        if (!bytes) {
            coil_deferred_errback(
                col->d, coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory"));
            return;
        }
        if (!col->b.p)
            col->b.p = calloc(1, 1);
        if (!col->b.p) {
            free(bytes);
            coil_deferred_errback(
                col->d, coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory"));
            return;
        }
        bytes->data = col->b.p;
        bytes->len = col->b.len;
        memset(&col->b, 0, sizeof col->b);
        coil_deferred_callback(col->d, bytes, coil_http_bytes_free);
        return;
    }
    coil_deferred_errback(col->d, coil_failure_copy(reason));
}

static void collector_destroy(coil_protocol *p)
{
    collector *col = (collector *)p;
    buf_free(&col->b);
    free(col->url);
    coil_deferred *d = col->d;
    col->d = NULL;
    free(col);
    coil_deferred_unref(d);
}

static const coil_protocol_ops collector_ops = {
    .data_received = collector_data,
    .connection_lost = collector_lost,
    .destroy = collector_destroy,
};

/* Cancelling the body's deferred stops the body. */
static void body_cancel(coil_deferred *d, void *arg)
{
    coil_protocol *p = arg;
    (void)d;
    if (p->transport)
        coil_transport_abort_connection(p->transport);
}

coil_deferred *coil_http_response_read_body(coil_http_response *resp, uint64_t max)
{
    collector *col = calloc(1, sizeof *col);
    coil_deferred *d = col ? coil_deferred_new_cancellable(body_cancel, col) : NULL;
    if (!d || !resp || !(col->url = strdup(resp->url))) {
        int nomem = !d || resp;
        coil_deferred_unref(d);
        free(col);
        return coil_deferred_fail(
            nomem ? coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory")
                  : coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL, "no response"));
    }
    col->p.ops = &collector_ops;
    col->d = coil_deferred_ref(d);
    col->max = max ? max : resp->max_body;
    if (resp->delivered) {
        coil_deferred_errback(d, coil_failure_new(COIL_DOMAIN_COIL, COIL_ESTATE,
                                                  "the body of %s was already delivered",
                                                  resp->url));
        collector_destroy(&col->p);
        return d;
    }
    (void)coil_http_response_deliver_body(resp, &col->p);
    return d;
}

/* ======================================================================= */
/* ---- getPage and downloadPage ------------------------------------------- */

static coil_failure *status_failure(coil_http_response *resp)
{
    const char *reason = resp->reason && *resp->reason
                             ? resp->reason
                             : coil_http_status_text(resp->status);
    return coil_failure_new(COIL_DOMAIN_HTTP, resp->status, "GET %s: %d %s", resp->url,
                            resp->status, reason ? reason : "");
}

static void get_step(coil_deferred *d, void *arg)
{
    (void)arg;
    coil_http_response *resp = coil_deferred_result(d);
    if (!resp)
        return;
    if (resp->status >= 400) {
        coil_deferred_set_failure(d, status_failure(resp));
        return;
    }
    coil_deferred_chain(d, coil_http_response_read_body(resp, 0));
}

coil_deferred *coil_http_get(coil_http_agent *a, const char *url)
{
    coil_deferred *d = coil_http_agent_request(a, "GET", url, NULL, NULL);
    if (coil_deferred_add_callback(d, get_step, NULL) != 0)
        coil_log(COIL_LOG_ERROR, COIL__HTTP_LOG, "out of memory adding a step");
    return d;
}

typedef struct writer {
    coil_protocol p; /* first */
    coil_deferred *d;
    int fd;
    int werr;
    char *path, *part;
} writer;

static void writer_data(coil_protocol *p, const void *data, size_t len)
{
    writer *w = (writer *)p;
    const char *s = data;
    while (len > 0 && !w->werr) {
        ssize_t n = write(w->fd, s, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            w->werr = errno;
            coil_transport_abort_connection(p->transport);
            return;
        }
        s += n;
        len -= (size_t)n;
    }
}

static void writer_lost(coil_protocol *p, const coil_failure *reason)
{
    writer *w = (writer *)p;
    coil_failure *f = NULL;
    if (w->fd >= 0 && close(w->fd) != 0 && !w->werr)
        w->werr = errno;
    w->fd = -1;
    if (w->werr)
        f = coil_failure_from_errno(w->werr, "cannot write %s", w->part);
    else if (coil_failure_domain(reason) != COIL_DOMAIN_COIL ||
             coil_failure_code(reason) != COIL_ECLOSED)
        f = coil_failure_copy(reason);
    else if (rename(w->part, w->path) != 0)
        f = coil_failure_from_errno(errno, "cannot rename %s to %s", w->part, w->path);
    if (f) {
        unlink(w->part);
        coil_deferred_errback(w->d, f);
    } else {
        coil_deferred_callback(w->d, NULL, NULL);
    }
}

static void writer_destroy(coil_protocol *p)
{
    writer *w = (writer *)p;
    if (w->fd >= 0) {
        close(w->fd);
        unlink(w->part);
    }
    coil_deferred_unref(w->d);
    free(w->path);
    free(w->part);
    free(w);
}

static const coil_protocol_ops writer_ops = {
    .data_received = writer_data,
    .connection_lost = writer_lost,
    .destroy = writer_destroy,
};

static void download_step(coil_deferred *d, void *arg)
{
    const char *path = arg;
    coil_http_response *resp = coil_deferred_result(d);
    if (!resp)
        return;
    if (resp->status >= 400) {
        coil_deferred_set_failure(d, status_failure(resp));
        return;
    }
    if (resp->delivered) {
        coil_deferred_set_failure(
            d, coil_failure_new(COIL_DOMAIN_COIL, COIL_ESTATE,
                                "the body of %s was already delivered", resp->url));
        return;
    }
    writer *w = calloc(1, sizeof *w);
    coil_deferred *wd = w ? coil_deferred_new_cancellable(body_cancel, w) : NULL;
    size_t n = strlen(path) + 6;
    if (!wd || !(w->path = strdup(path)) || !(w->part = malloc(n))) {
        if (w) {
            free(w->path);
            free(w);
        }
        coil_deferred_unref(wd);
        coil_deferred_set_failure(
            d, coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory"));
        return;
    }
    snprintf(w->part, n, "%s.part", path);
    w->p.ops = &writer_ops;
    w->fd = open(w->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (w->fd < 0) {
        coil_failure *f = coil_failure_from_errno(errno, "cannot open %s", w->part);
        free(w->path);
        free(w->part);
        free(w);
        coil_deferred_unref(wd);
        coil_deferred_set_failure(d, f);
        return;
    }
    w->d = coil_deferred_ref(wd);
    (void)coil_http_response_deliver_body(resp, &w->p);
    coil_deferred_chain(d, wd);
}

coil_deferred *coil_http_download(coil_http_agent *a, const char *url, const char *path)
{
    if (!path)
        return coil_deferred_fail(coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                                   "no file to download %s to",
                                                   url ? url : "(null)"));
    char *p = strdup(path);
    if (!p)
        return coil_deferred_fail(
            coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory"));
    coil_deferred *d = coil_http_agent_request(a, "GET", url, NULL, NULL);
    if (coil_deferred_add_callbacks_full(d, download_step, NULL, p, free) != 0)
        coil_log(COIL_LOG_ERROR, COIL__HTTP_LOG, "out of memory adding a step");
    return d;
}
