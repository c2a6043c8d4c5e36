/* coil — HTTP: the server side (Twisted's Site, HTTPChannel and Request).
 *
 * A site is a factory; each connection gets an http_conn protocol that
 * keeps one bounded input buffer (coil_rxbuf). Request heads are parsed in
 * place (coil__http_parse_request), then copied once into the request's own
 * block as C strings, so a request never holds the connection's buffer.
 * One request is handled at a time: pipelined requests wait in the buffer
 * (reading pauses once more than a head's worth is buffered) and are
 * answered in order.
 *
 * The response: writes made while the renderer runs are held, so a
 * renderer that finishes at once gets a Content-Length and one writev;
 * otherwise the head goes out with the first later write, or once more than
 * 64 KiB is held, in the same writev as those bytes (a file's first piece
 * leaves with the head), chunked for HTTP/1.1 and close-delimited for 1.0
 * without a length; later bytes go out as they come.
 * Response producers are registered on the transport itself, so flow
 * control works at every layer.
 *
 * Expect: 100-continue: "100 Continue" goes out only when the body is
 * wanted. A request answered without its body (413 for a Content-Length
 * over the limit; 404 from an error resource, 405 for a method the
 * resource does not render: coil__http_resource_allows) gets that answer
 * at once with Connection: close, and the connection closes with a
 * lingering close (RFC 9110 10.1.1, as nginx).
 *
 * The client's EOF: a client that goes away (curl --max-time, a closed
 * browser tab) sends a FIN, not a reset, so an EOF while a response is
 * still being made means the client is gone, as Twisted's HTTPChannel and
 * nginx (ngx_http_test_reading) take it. Once the EOF is read, a request
 * whose renderer returned NOT_DONE_YET and is waiting (no producer
 * registered, no coil__http_request_send_on_eof: a static file about to
 * go), or whose body is still expected, is abandoned as on a reset (notify_finish fails
 * with COIL_ECONNLOST, waited deferreds are cancelled, its producer is stopped),
 * pipelined requests still buffered are dropped and the connection closes after what is
 * already queued. Requests answered at once keep their answers: a client that sends whole
 * requests and half-closes (`printf 'GET / HTTP/1.0\r\n\r\n' | nc -N`) gets every one of
 * those answered, in order, then the close.
 *
 * Lifetimes: the transport owns the connection (one reference); each
 * request holds one on its connection; the connection holds one on the
 * site. The connection holds its current request; renderers borrow it and
 * take references (coil_http_request_ref) to finish later.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <arpa/inet.h>

#include <coil/coil.h>
#include <coil/log.h>
#include <coil/rxbuf.h>

#include "../rxbuf.h"
#include "http_private.h"

#define DEF_MAX_BODY       ((uint64_t)1024 * 1024)
#define DEF_MAX_CHUNKS     ((uint64_t)1000 * 1000)
#define DEF_HEADER_TIMEOUT 20.0
#define DEF_BODY_TIMEOUT   60.0
#define DEF_IDLE_TIMEOUT   60.0
#define DEF_WRITE_TIMEOUT  300.0
#define DEF_MAX_REQUESTS   1000u
/* Each connection holds an array of this many field views. */
#define MAX_FIELDS_LIMIT 10000

/* The Content-Type of a response with a body that names none (Twisted's
 * Request.defaultContentType). */
#define DEFAULT_CONTENT_TYPE "text/html"

/* Writes held while a renderer runs: past this the head goes out. */
#define HOLD_MAX (64 * 1024)
/* A lingering close reads and drops at most this much for this long. */
#define LINGER_BYTES   (64 * 1024)
#define LINGER_SECONDS 2.0

#define LOG_MODULE COIL__HTTP_LOG

typedef struct http_conn http_conn;

struct coil_http_site {
    coil_factory factory;
    coil_reactor *r;
    coil_http_resource *root;
    coil_http_server_options o;
    char *server_name; /* NULL: no Server header */
    int refs;
    int caller_ref;
    coil_http_site_stats stats;
    time_t date_at;
    char date[COIL_HTTP_DATE_LEN + 2];
};

typedef struct resp_header {
    char *name; /* name\0value\0 in one allocation */
    char *value;
} resp_header;

typedef struct waiter {
    struct waiter *next, *prev;
    coil_http_request *req;
    coil_deferred *d;
} waiter;

enum out_mode {
    OUT_NONE = 0, /* the head has not gone out */
    OUT_LENGTH,   /* Content-Length */
    OUT_CHUNKED,  /* Transfer-Encoding: chunked */
    OUT_CLOSE,    /* until the connection closes (HTTP/1.0) */
    OUT_NOBODY    /* HEAD, 1xx, 204, 304 */
};

enum body_mode { BODY_NONE = 0, BODY_LENGTH, BODY_CHUNKED };

struct coil_http_request {
    int refs;
    http_conn *c;
    coil_http_site *site;

    /* the head, copied: every string below lives in `block` */
    char *block;
    const char *method, *uri, *path, *query;
    const char *request_line; /* for logs: "GET /x HTTP/1.1" */
    int version;
    const char **hname, **hvalue;
    size_t nh;
    char **segs;
    size_t nsegs, pos;
    coil__http_args args;
    int is_head;
    int keep_alive;
    int expect_continue;
    time_t started;

    /* the body */
    enum body_mode body_mode;
    uint64_t body_left;
    coil__http_chunked chunked;
    uint64_t body_max;
    uint64_t body_got;
    int body_done;
    int body_stream;
    char *body;
    size_t body_len, body_cap;
    const coil_http_body_handler *bh;
    void *bud;
    int body_paused;
    int body_told; /* bh->done was called */

    coil_http_resource *res;

    /* the response */
    int status;
    char *reason;
    resp_header *rh;
    size_t nrh, caprh;
    int has_length;
    uint64_t length;
    int in_render;
    enum out_mode out;
    int finished;
    int disconnected;
    int logged;
    int close_wanted; /* Connection: close set by the renderer */
    int linger;       /* an error answer: close with a lingering close */
    char *held;
    size_t held_len, held_cap;
    uint64_t sent; /* body bytes written (counted for HEAD) */
    coil_producer *producer;
    int producer_streaming;
    int pull_kick;   /* a call_soon to ask a HEAD's pull producer again */
    int send_on_eof; /* coil__http_request_send_on_eof: not abandoned at EOF */
    coil_deferred **notify;
    size_t nnotify, capnotify;
    waiter *waiters;
};

enum rtimer_kind { RT_NONE = 0, RT_IDLE, RT_HEADER, RT_BODY, RT_LINGER };

struct http_conn {
    coil_protocol proto; /* first */
    coil_http_site *site;
    coil_reactor *r;
    coil_transport *t; /* NULL once the connection is gone */
    int refs;
    coil_rxbuf in;
    coil__http_parser ps;
    coil__http_field *fields;
    coil__http_limits lim;
    coil_http_request *cur;
    unsigned nreq;
    int processing, again;
    int soon; /* a call_soon(process) is queued (holds a reference) */
    int closing;
    int lingering;
    size_t linger_bytes;
    int write_shut;
    int eof; /* the client half-closed */
    int paused;
    int pause_pipeline, pause_body;
    coil_timer *rtimer;
    enum rtimer_kind rkind;
    coil_timer *wtimer;
    uint64_t out_total, taken_last;
    coil_address peer;
    int have_peer;
    char peer_host[64];
    int counted_open;
};

static void process(http_conn *c);
static void schedule_process(http_conn *c);
static void conn_unref(http_conn *c);
static int send_head(coil_http_request *req, int final, const void *more,
                     size_t more_len);
static void request_fail(coil_http_request *req, int status, const char *why);
static void request_abandon(coil_http_request *req);
static void body_failed(http_conn *c, coil_http_request *req, int status,
                        const char *why);
static void log_request(coil_http_request *req);
static void start_close(http_conn *c, int linger);

/* ======================================================================
 * Small helpers
 * ====================================================================== */

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static int is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
           (ch >= 'A' && ch <= 'Z') || (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int token_ok(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (!is_tchar((unsigned char)*s))
            return 0;
    return 1;
}

static int value_ok(const char *s)
{
    if (!s)
        return 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return 0;
    }
    return 1;
}

static int has_token(const char *list, const char *tok)
{
    size_t n = strlen(tok);
    const char *p = list;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *end = e;
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if ((size_t)(end - p) == n && strncasecmp(p, tok, n) == 0)
            return 1;
        p = e;
    }
    return 0;
}

static double opt_or(double v, double def)
{
    return v > 0 ? v : def;
}

static const char *site_date(coil_http_site *site)
{
    time_t now = time(NULL);
    if (now != site->date_at || !site->date[0]) {
        site->date_at = now;
        if (coil_http_date_format(now, site->date, sizeof site->date) == 0) {
            struct tm tm;
            gmtime_r(&now, &tm);
            strftime(site->date, sizeof site->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        }
    }
    return site->date;
}

static const char *status_reason(int status)
{
    const char *s = coil_http_status_text(status);
    if (s && *s)
        return s;
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* ======================================================================
 * The site
 * ====================================================================== */

static void site_ref(coil_http_site *site)
{
    site->refs++;
}

static void site_unref(coil_http_site *site)
{
    if (!site || --site->refs > 0)
        return;
    coil_http_resource_unref(site->root);
    free(site->server_name);
    free(site);
}

static coil_protocol *factory_build(coil_factory *f, const coil_address *peer)
{
    coil_http_site *site = f->user;
    if (!site->caller_ref) {
        coil_log(COIL_LOG_WARN, LOG_MODULE,
                 "a listener still uses the factory of a site that was freed; "
                 "connection refused (close the listener before coil_http_site_free)");
        return NULL;
    }
    return coil_http_site_protocol(site, peer);
}

static const coil_factory_ops factory_ops = {.build_protocol = factory_build};

int coil_http_site_new(coil_reactor *r, coil_http_resource *root,
                       const coil_http_server_options *o, coil_http_site **out,
                       coil_failure **err)
{
    if (out)
        *out = NULL;
    if (!r || !out) {
        if (err)
            *err = coil_failure_new(
                COIL_DOMAIN_COIL, COIL_EINVAL,
                "coil_http_site_new: no reactor or no place for the site");
        coil_http_resource_unref(root);
        return COIL_EINVAL;
    }
    if (o && o->max_header_fields > MAX_FIELDS_LIMIT) {
        if (err)
            *err = coil_failure_new(
                COIL_DOMAIN_COIL, COIL_EINVAL,
                "max_header_fields %zu is more than coil allows (%d); "
                "give at most that, or 0 for the default (%d)",
                o->max_header_fields, MAX_FIELDS_LIMIT, COIL__HTTP_DEFAULT_MAX_FIELDS);
        coil_http_resource_unref(root);
        return COIL_EINVAL;
    }
    coil_http_site *site = calloc(1, sizeof *site);
    if (!site)
        goto nomem;
    if (o)
        site->o = *o;
    const char *name =
        site->o.server_name ? site->o.server_name : "coil/" COIL_VERSION_STRING;
    if (!value_ok(name)) {
        free(site);
        coil_http_resource_unref(root);
        if (err)
            *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                    "server_name holds a control byte; give a plain "
                                    "header value such as \"coil\"");
        return COIL_EINVAL;
    }
    if (*name) {
        site->server_name = dupstr(name);
        if (!site->server_name) {
            free(site);
            goto nomem;
        }
    }
    site->o.server_name = NULL;
    if (!root)
        root = coil_http_no_resource_new();
    site->root = root;
    site->r = r;
    site->refs = 1;
    site->caller_ref = 1;
    site->factory.ops = &factory_ops;
    site->factory.user = site;
    *out = site;
    return 0;
nomem:
    coil_http_resource_unref(root);
    if (err)
        *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                "out of memory creating a site");
    return COIL_ENOMEM;
}

void coil_http_site_free(coil_http_site *site)
{
    if (!site || !site->caller_ref)
        return;
    site->caller_ref = 0;
    site_unref(site);
}

coil_http_resource *coil_http_site_root(const coil_http_site *site)
{
    return site ? site->root : NULL;
}

coil_factory *coil_http_site_factory(coil_http_site *site)
{
    return site ? &site->factory : NULL;
}

void coil_http_site_get_stats(const coil_http_site *site, coil_http_site_stats *out)
{
    if (!out)
        return;
    if (!site) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = site->stats;
}

/* ======================================================================
 * Connection: lifetime, timers, reading
 * ====================================================================== */

static const coil_protocol_ops conn_ops;

static void conn_ref(http_conn *c)
{
    c->refs++;
}

static void conn_unref(http_conn *c)
{
    if (!c || --c->refs > 0)
        return;
    coil__rxbuf_free(&c->in);
    free(c->fields);
    site_unref(c->site);
    free(c);
}

static void timer_drop(coil_timer **t)
{
    if (*t) {
        (void)coil_timer_cancel(*t);
        coil_timer_release(*t);
        *t = NULL;
    }
}

static int rtimer_fire(void *arg);

/* One read timer per connection (idle, head, body, linger), moved rather
 * than re-made from one kind to the next; "none" leaves it to fire idle. */
static void rtimer_set(http_conn *c, enum rtimer_kind kind, double delay)
{
    if (kind == RT_NONE) {
        c->rkind = RT_NONE;
        return;
    }
    if (!c->t)
        return;
    if (c->rtimer && coil_timer_reset(c->rtimer, delay) == 0) {
        c->rkind = kind;
        return;
    }
    timer_drop(&c->rtimer);
    c->rkind = RT_NONE;
    c->rtimer = coil_reactor_call_later(c->r, delay, rtimer_fire, c);
    if (c->rtimer)
        c->rkind = kind;
}

static void rtimer_clear(http_conn *c)
{
    rtimer_set(c, RT_NONE, 0);
}

static void update_reading(http_conn *c)
{
    if (!c->t)
        return;
    int want_pause = (c->pause_pipeline || c->pause_body) && !c->lingering;
    if (want_pause && !c->paused) {
        c->paused = 1;
        (void)coil_transport_pause_reading(c->t);
    } else if (!want_pause && c->paused) {
        c->paused = 0;
        (void)coil_transport_resume_reading(c->t);
    }
}

static int wtimer_fire(void *arg);

/* Bytes handed to the transport; the write timer watches them leave. */
static void note_written(http_conn *c, size_t n)
{
    c->out_total += n;
    if (!c->wtimer && c->t)
        c->wtimer = coil_reactor_call_later(
            c->r, opt_or(c->site->o.write_timeout, DEF_WRITE_TIMEOUT), wtimer_fire, c);
}

static int conn_writev(http_conn *c, const struct iovec *iov, int n)
{
    if (!c->t)
        return COIL_ECLOSED;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    int rc = coil_transport_writev(c->t, iov, n);
    if (rc == 0)
        note_written(c, total);
    return rc;
}

static int conn_write(http_conn *c, const void *data, size_t len)
{
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    return conn_writev(c, &iov, 1);
}

static int wtimer_fire(void *arg)
{
    http_conn *c = arg;
    coil_timer_release(c->wtimer);
    c->wtimer = NULL;
    if (!c->t)
        return 0;
    coil_transport_info info;
    memset(&info, 0, sizeof info);
    if (coil_transport_info_get(c->t, &info) != 0)
        return 0;
    uint64_t queued = (uint64_t)info.write_queued + info.unacked;
    uint64_t taken = c->out_total > queued ? c->out_total - queued : 0;
    if (queued == 0)
        return 0; /* the client has everything; armed again by the next write */
    if (taken > c->taken_last) {
        c->taken_last = taken;
        c->wtimer = coil_reactor_call_later(
            c->r, opt_or(c->site->o.write_timeout, DEF_WRITE_TIMEOUT), wtimer_fire, c);
        return 0;
    }
    c->site->stats.timeouts++;
    coil_log(COIL_LOG_INFO, LOG_MODULE,
             "%s: the client took nothing of the response for %g s (%" PRIu64
             " bytes waiting); connection aborted",
             c->peer_host, opt_or(c->site->o.write_timeout, DEF_WRITE_TIMEOUT), queued);
    (void)coil_transport_abort_connection(c->t);
    return 0;
}

/* A response that ends the connection: 400 from the parser, 408 for a head
 * that took too long. No request object exists yet. */
static void respond_bare(http_conn *c, int status, const char *why)
{
    coil_http_site *site = c->site;
    char body[512];
    int blen = snprintf(body, sizeof body, "%d %s: %s\n", status, status_reason(status),
                        why ? why : "malformed request");
    if (blen < 0)
        blen = 0;
    if ((size_t)blen >= sizeof body)
        blen = (int)sizeof body - 1;
    char head[768];
    int hlen = snprintf(
        head, sizeof head,
        "HTTP/1.1 %d %s\r\nDate: %s\r\n%s%s%sContent-Type: text/plain; "
        "charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
        status, status_reason(status), site_date(site),
        site->server_name ? "Server: " : "", site->server_name ? site->server_name : "",
        site->server_name ? "\r\n" : "", blen);
    if (hlen < 0 || (size_t)hlen >= sizeof head)
        hlen = 0;
    struct iovec iov[2] = {{.iov_base = head, .iov_len = (size_t)hlen},
                           {.iov_base = body, .iov_len = (size_t)blen}};
    (void)conn_writev(c, iov, 2);
    start_close(c, 1);
}

static void bad_request(http_conn *c, int status, const char *why)
{
    c->site->stats.bad_requests++;
    coil_log(COIL_LOG_DEBUG, LOG_MODULE, "%s: %d: %s", c->peer_host, status,
             why ? why : "malformed request");
    respond_bare(c, status, why);
}

/* Close after what is queued. A lingering close shuts the write side
 * first and reads (dropping it) what the client still sends for a while,
 * so the client reads the answer instead of a reset (nginx's
 * lingering_close). */
static void start_close(http_conn *c, int linger)
{
    if (!c->t || c->closing)
        return;
    c->closing = 1;
    rtimer_clear(c);
    if (!linger) {
        (void)coil_transport_lose_connection(c->t);
        return;
    }
    c->lingering = 1;
    c->linger_bytes = 0;
    c->in.off = c->in.len; /* what is buffered goes unread */
    update_reading(c);
    if (coil_transport_lose_write_connection(c->t) != 0) {
        (void)coil_transport_lose_connection(c->t);
        return;
    }
    rtimer_set(c, RT_LINGER, LINGER_SECONDS);
}

static int rtimer_fire(void *arg)
{
    http_conn *c = arg;
    enum rtimer_kind kind = c->rkind;
    coil_timer_release(c->rtimer);
    c->rtimer = NULL;
    c->rkind = RT_NONE;
    if (!c->t)
        return 0;
    conn_ref(c);
    switch (kind) {
    case RT_IDLE: {
        /* Idle means nothing to send either: a client still reading the
         * last response is the write timer's business. */
        coil_transport_info info;
        memset(&info, 0, sizeof info);
        if (coil_transport_info_get(c->t, &info) == 0 && info.write_queued > 0) {
            rtimer_set(c, RT_IDLE, opt_or(c->site->o.idle_timeout, DEF_IDLE_TIMEOUT));
            break;
        }
        c->site->stats.timeouts++;
        start_close(c, 0);
        break;
    }
    case RT_HEADER: {
        c->site->stats.timeouts++;
        char why[96];
        snprintf(why, sizeof why, "the request head did not arrive within %g s",
                 opt_or(c->site->o.header_timeout, DEF_HEADER_TIMEOUT));
        coil_log(COIL_LOG_INFO, LOG_MODULE, "%s: %s; closing", c->peer_host, why);
        respond_bare(c, 408, why);
        break;
    }
    case RT_BODY: {
        c->site->stats.timeouts++;
        char why[96];
        snprintf(why, sizeof why, "no request body bytes for %g s",
                 opt_or(c->site->o.body_timeout, DEF_BODY_TIMEOUT));
        coil_log(COIL_LOG_INFO, LOG_MODULE, "%s: %s; closing", c->peer_host, why);
        if (c->cur && !c->cur->finished && c->cur->out == OUT_NONE)
            body_failed(c, c->cur, 408, why);
        else
            (void)coil_transport_abort_connection(c->t);
        break;
    }
    case RT_LINGER:
        (void)coil_transport_lose_connection(c->t);
        break;
    case RT_NONE:
        break;
    }
    conn_unref(c);
    return 0;
}

/* ======================================================================
 * Requests: creation from a parsed head
 * ====================================================================== */

static void request_free(coil_http_request *req)
{
    free(req->block);
    coil__http_args_free(&req->args);
    free(req->body);
    free(req->reason);
    for (size_t i = 0; i < req->nrh; i++)
        free(req->rh[i].name);
    free(req->rh);
    free(req->held);
    free(req->notify);
    coil_http_resource_unref(req->res);
    http_conn *c = req->c;
    free(req);
    conn_unref(c);
}

coil_http_request *coil_http_request_ref(coil_http_request *req)
{
    if (req)
        req->refs++;
    return req;
}

void coil_http_request_unref(coil_http_request *req)
{
    if (req && --req->refs == 0)
        request_free(req);
}

/* The path part of a request target (origin-form up to '?'; absolute-form
 * after the authority; "*" and authority-form as they are). */
static void split_target(const char *t, size_t n, size_t *path_off, size_t *path_len,
                         size_t *q_off, size_t *q_len)
{
    size_t start = 0;
    if (n > 0 && t[0] != '/' && t[0] != '*') {
        const char *sep = memchr(t, ':', n);
        if (sep && (size_t)(sep - t) + 2 < n && sep[1] == '/' && sep[2] == '/') {
            size_t i = (size_t)(sep - t) + 3;
            while (i < n && t[i] != '/' && t[i] != '?')
                i++;
            start = i;
        }
    }
    size_t i = start;
    while (i < n && t[i] != '?')
        i++;
    *path_off = start;
    *path_len = i - start;
    if (i < n) {
        *q_off = i + 1;
        *q_len = n - i - 1;
    } else {
        *q_off = n;
        *q_len = 0;
    }
}

/* Build a request from the parsed head (views into the input buffer):
 * every string is copied into one block. NULL when memory runs out. */
static coil_http_request *request_new(http_conn *c, const coil__http_head *h)
{
    coil_http_request *req = calloc(1, sizeof *req);
    if (!req)
        return NULL;
    req->refs = 1;
    req->c = c;
    conn_ref(c);
    req->site = c->site;
    req->status = 200;
    req->version = h->version;
    req->keep_alive = h->keep_alive;
    req->expect_continue = h->expect_continue;
    req->started = time(NULL);
    req->is_head = h->method_len == 4 && memcmp(h->method, "HEAD", 4) == 0;

    size_t po, pl, qo, ql;
    split_target(h->target, h->target_len, &po, &pl, &qo, &ql);
    size_t nsegs = pl ? 0 : 1; /* an empty path is "/": one empty segment */
    for (size_t i = 0; i < pl; i++)
        if (h->target[po + i] == '/')
            nsegs++;
    /* One block: the pointer arrays, then every string. */
    size_t nf = h->nfields;
    size_t ptrs = (2 * nf + nsegs + 1) * sizeof(char *);
    size_t rl = h->method_len + 1 + h->target_len + 10;
    size_t need = ptrs + rl + h->method_len + 1 + h->target_len + 1 + (pl ? pl : 1) + 1 +
                  ql + 1 + (pl + 2) /* decoded segments */;
    for (size_t i = 0; i < nf; i++)
        need += h->fields[i].name_len + 1 + h->fields[i].value_len + 1;
    char *b = malloc(need);
    if (!b) {
        request_free(req);
        return NULL;
    }
    req->block = b;
    req->hname = (const char **)(void *)b;
    req->hvalue = req->hname + nf;
    req->segs = (char **)(void *)(req->hvalue + nf);
    b += ptrs;
    req->request_line = b;
    memcpy(b, h->method, h->method_len);
    b += h->method_len;
    *b++ = ' ';
    memcpy(b, h->target, h->target_len);
    b += h->target_len;
    memcpy(b, h->version == 10 ? " HTTP/1.0" : " HTTP/1.1", 10);
    b += 10;
#define PUT(dst, src, len)       \
    do {                         \
        memcpy(b, (src), (len)); \
        b[(len)] = '\0';         \
        (dst) = b;               \
        b += (len) + 1;          \
    } while (0)
    PUT(req->method, h->method, h->method_len);
    PUT(req->uri, h->target, h->target_len);
    if (pl)
        PUT(req->path, h->target + po, pl);
    else
        PUT(req->path, "/", 1);
    PUT(req->query, h->target + qo, ql);
    for (size_t i = 0; i < h->nfields; i++) {
        PUT(req->hname[i], h->fields[i].name, h->fields[i].name_len);
        PUT(req->hvalue[i], h->fields[i].value, h->fields[i].value_len);
    }
    req->nh = h->nfields;
#undef PUT
    /* The decoded segments go in the rest of the block. */
    const char *path = req->path;
    if (path[0] == '/') {
        const char *p = path + 1;
        for (;;) {
            const char *e = strchr(p, '/');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            ssize_t d = coil_http_unquote(p, n, b, 0);
            if (d < 0 || memchr(b, '\0', (size_t)d) != NULL) {
                req->nsegs = SIZE_MAX; /* refused by start_request */
                break;
            }
            req->segs[req->nsegs++] = b;
            b += d + 1;
            if (!e)
                break;
            p = e + 1;
        }
    }
    return req;
}

const char *coil__http_request_next_segment(const coil_http_request *req)
{
    if (!req || req->pos >= req->nsegs)
        return NULL;
    return req->segs[req->pos];
}

void coil__http_request_advance(coil_http_request *req)
{
    if (req && req->pos < req->nsegs)
        req->pos++;
}

/* ======================================================================
 * Requests: the body, rendering
 * ====================================================================== */

static void render(coil_http_request *req);

static void body_timer_arm(http_conn *c)
{
    double t = opt_or(c->site->o.body_timeout, DEF_BODY_TIMEOUT);
    if (c->rkind == RT_BODY && c->rtimer && coil_timer_reset(c->rtimer, t) == 0)
        return;
    rtimer_set(c, RT_BODY, t);
}

static int collect_forms(coil_http_request *req)
{
    const char *ct = coil_http_request_header(req, "Content-Type");
    if (!ct || req->body_len == 0)
        return 0;
    const char *why = NULL;
    int rc = 0;
    size_t n = strcspn(ct, "; \t");
    if (n == 33 && strncasecmp(ct, "application/x-www-form-urlencoded", n) == 0)
        rc = coil__http_args_add_urlencoded(&req->args, req->body, req->body_len, &why);
    else if (n == 19 && strncasecmp(ct, "multipart/form-data", n) == 0)
        rc =
            coil__http_args_add_multipart(&req->args, ct, req->body, req->body_len, &why);
    if (rc == COIL_ENOTSUP)
        return 0; /* forms.c not there yet: the body stays raw */
    if (rc < 0) {
        request_fail(req, rc == COIL_EMSGSIZE ? 413 : 400,
                     why ? why : "malformed form body");
        return -1;
    }
    return 0;
}

static void body_complete(http_conn *c, coil_http_request *req)
{
    req->body_done = 1;
    if (c->rkind == RT_BODY)
        rtimer_clear(c);
    if (req->body_stream) {
        if (req->bh && !req->body_told) {
            req->body_told = 1;
            if (req->bh->done)
                req->bh->done(req->bud, req, NULL);
        }
        return;
    }
    if (collect_forms(req) == 0)
        render(req);
}

/* Tell a streaming renderer its body will not come whole. */
static void body_tell_failure(coil_http_request *req, coil_domain domain, int code,
                              const char *why)
{
    if (!req->body_stream || !req->bh || req->body_told)
        return;
    req->body_told = 1;
    coil_failure *f = coil_failure_new(domain, code, "%s", why);
    if (req->bh->done)
        req->bh->done(req->bud, req, f);
    coil_failure_free(f);
}

/* The body cannot be read on: answer `status` (if nothing went out) and
 * close. */
static void body_failed(http_conn *c, coil_http_request *req, int status, const char *why)
{
    if (status != 408)
        c->site->stats.bad_requests++;
    req->body_done = 1; /* nothing more is read: the connection closes */
    body_tell_failure(req, COIL_DOMAIN_HTTP, status, why);
    if (!req->finished && !req->disconnected)
        request_fail(req, status, why);
}

/* Body bytes: collected, or handed to the renderer. 0, or -1 when the
 * request failed (past its limit). */
static int body_deliver(http_conn *c, coil_http_request *req, const char *p, size_t n)
{
    if (n == 0)
        return 0;
    req->body_got += n;
    if (req->body_got > req->body_max) {
        char why[96];
        snprintf(why, sizeof why, "request body larger than %" PRIu64 " bytes",
                 req->body_max);
        body_failed(c, req, 413, why);
        return -1;
    }
    body_timer_arm(c);
    if (req->body_stream) {
        if (req->bh && req->bh->data && !req->disconnected)
            req->bh->data(req->bud, req, p, n);
        return 0;
    }
    if (req->body_len + n + 1 > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 1024;
        while (cap < req->body_len + n + 1)
            cap *= 2;
        char *nb = realloc(req->body, cap);
        if (!nb) {
            body_failed(c, req, 413, "out of memory collecting the request body");
            return -1;
        }
        req->body = nb;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, p, n);
    req->body_len += n;
    req->body[req->body_len] = '\0';
    return 0;
}

/* Feed buffered body bytes. Returns 1 when it made progress. */
static int feed_body(http_conn *c, coil_http_request *req)
{
    if (req->body_stream && (!req->bh || req->body_paused))
        return 0;
    size_t live = coil__rxbuf_live(&c->in);
    if (live == 0)
        return 0;
    const char *p = c->in.buf + c->in.off;
    if (req->body_mode == BODY_LENGTH) {
        size_t take = live;
        if ((uint64_t)take > req->body_left)
            take = (size_t)req->body_left;
        c->in.off += take;
        req->body_left -= take;
        if (body_deliver(c, req, p, take) < 0)
            return 0;
        if (req->body_left == 0 && !req->body_done)
            body_complete(c, req);
        return 1;
    }
    size_t consumed = 0, dlen = 0;
    const char *data = NULL, *why = NULL;
    int rc =
        coil__http_chunked_feed(&req->chunked, p, live, &consumed, &data, &dlen, &why);
    if (consumed > live)
        consumed = live;
    switch (rc) {
    case COIL__CHUNK_DATA:
        if (body_deliver(c, req, data, dlen) < 0)
            return 0;
        c->in.off += consumed;
        return 1;
    case COIL__CHUNK_END:
        c->in.off += consumed;
        body_complete(c, req);
        return 1;
    case COIL__CHUNK_MORE:
        c->in.off += consumed;
        body_timer_arm(c);
        return 0;
    case COIL__CHUNK_TOO_MANY:
        body_failed(c, req, 413, "too many chunks in the request body");
        return 0;
    default:
        body_failed(c, req, 400, why ? why : "malformed chunked request body");
        return 0;
    }
}

static void render_failed(coil_http_request *req, int rc, const coil_failure *f)
{
    http_conn *c = req->c;
    c->site->stats.errors++;
    char buf[512];
    if (f)
        coil_failure_format(f, buf, sizeof buf);
    else
        snprintf(buf, sizeof buf, "%s (%s)", coil_strerror(rc), coil_err_name(rc));
    coil_log(COIL_LOG_ERROR, LOG_MODULE, "%s: \"%s\" failed: %s", c->peer_host,
             req->request_line, buf);
    if (req->finished || req->disconnected)
        return;
    if (req->out == OUT_NONE) {
        /* Nothing went out: the answer is a 500, and the connection stays. */
        req->held_len = 0;
        req->sent = 0;
        req->has_length = 0;
        for (size_t i = 0; i < req->nrh; i++)
            free(req->rh[i].name);
        req->nrh = 0;
        if (req->producer) {
            if (c->t)
                (void)coil_transport_unregister_producer(c->t);
            req->producer = NULL;
        }
        (void)coil_http_request_set_status(req, 500, NULL);
        (void)coil_http_request_set_header(req, "Content-Type",
                                           "text/plain; charset=utf-8");
        static const char msg[] = "500 Internal Server Error: the server failed to "
                                  "answer this request (see its log)\n";
        int saved = req->in_render;
        req->in_render = 1; /* hold: one writev with a Content-Length */
        (void)coil_http_request_write(req, msg, sizeof msg - 1);
        req->in_render = saved;
        (void)coil_http_request_finish(req);
    } else if (c->t) {
        (void)coil_transport_abort_connection(c->t);
    }
}

static void render(coil_http_request *req)
{
    if (req->disconnected || req->finished)
        return;
    coil_http_request_ref(req);
    req->in_render = 1;
    int rc = coil__http_resource_render(req->res, req);
    req->in_render = 0;
    if (rc < 0) {
        render_failed(req, rc, NULL);
    } else if (!req->finished && !req->disconnected) {
        if (rc == COIL_HTTP_DONE)
            (void)coil_http_request_finish(req);
        else if (req->held_len > 0 && req->out == OUT_NONE)
            (void)send_head(req, 0, NULL, 0);
    }
    coil_http_request_unref(req);
}

/* The head is in: the walk, the limits, 100-continue, then the body or
 * the renderer. */
static void start_request(http_conn *c, coil_http_request *req, const coil__http_head *h)
{
    coil_http_site *site = c->site;
    if (req->nsegs == SIZE_MAX) {
        req->nsegs = 0;
        site->stats.bad_requests++;
        request_fail(req, 400, "bad percent-escape (or %00) in the request path");
        return;
    }
    if (req->query[0]) {
        const char *why = NULL;
        int rc = coil__http_args_add_urlencoded(&req->args, req->query,
                                                strlen(req->query), &why);
        if (rc < 0 && rc != COIL_ENOTSUP) {
            site->stats.bad_requests++;
            request_fail(req, 400, why ? why : "bad query string");
            return;
        }
    }
    req->res = coil__http_resource_locate(site->root, req);
    if (!req->res) {
        render_failed(req, COIL_ENOMEM, NULL);
        return;
    }
    uint64_t max = coil__http_resource_max_body(req->res);
    if (max == 0)
        max = site->o.max_body ? site->o.max_body : DEF_MAX_BODY;
    req->body_max = max;
    req->body_stream = coil__http_resource_streams_body(req->res) == 1;
    switch (h->body) {
    case COIL__HTTP_BODY_LENGTH:
        req->body_mode = BODY_LENGTH;
        req->body_left = h->content_length;
        if (h->content_length > max) {
            char why[96];
            snprintf(why, sizeof why,
                     "request body of %" PRIu64 " bytes; the limit is %" PRIu64,
                     h->content_length, max);
            site->stats.bad_requests++;
            req->body_done = 1; /* not read: the connection closes */
            request_fail(req, 413, why);
            return;
        }
        if (h->content_length == 0)
            req->body_done = 1;
        break;
    case COIL__HTTP_BODY_CHUNKED:
        req->body_mode = BODY_CHUNKED;
        req->chunked.max_chunks =
            site->o.max_chunks ? site->o.max_chunks : DEF_MAX_CHUNKS;
        req->chunked.max_trailer = c->lim.max_head;
        break;
    default:
        req->body_mode = BODY_NONE;
        req->body_done = 1;
        break;
    }
    if (!req->body_done && req->expect_continue && req->version == 11 &&
        !coil__http_resource_allows(req->res, req->method)) {
        /* The answer (404, 405) does not need the body: give it now
         * instead of 100 Continue, and close after it without reading the
         * body (RFC 9110 10.1.1; nginx does the same). body_done stays 0,
         * so the connection closes with a lingering close. */
        req->close_wanted = 1;
        req->linger = 1;
        render(req);
        return;
    }
    if (!req->body_done) {
        if (req->expect_continue && req->version == 11) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            (void)conn_write(c, cont, sizeof cont - 1);
        }
        body_timer_arm(c);
    }
    if (req->body_stream || req->body_done) {
        if (!req->body_stream)
            body_complete(c, req); /* forms from no body; renders */
        else
            render(req);
    }
}

/* Parse a head from the buffer. 1 when a request started. */
static int parse_head(http_conn *c)
{
    size_t live = coil__rxbuf_live(&c->in);
    const char *p = c->in.buf + c->in.off;
    if (c->rkind != RT_HEADER)
        rtimer_set(c, RT_HEADER, opt_or(c->site->o.header_timeout, DEF_HEADER_TIMEOUT));
    coil__http_head h;
    memset(&h, 0, sizeof h);
    h.fields = c->fields;
    h.fields_cap = c->lim.max_fields;
    const char *why = NULL;
    int rc = coil__http_parse_request(&c->ps, p, live, &c->lim, &h, &why);
    if (rc == 0)
        return 0;
    if (rc < 0) {
        int status = -rc;
        if (status < 400 || status > 599)
            status = 400;
        bad_request(c, status, why);
        return 0;
    }
    rtimer_clear(c);
    coil_http_request *req = request_new(c, &h);
    c->in.off += (size_t)rc;
    memset(&c->ps, 0, sizeof c->ps);
    if (!req) {
        coil_log(COIL_LOG_ERROR, LOG_MODULE, "%s: out of memory for a request; aborting",
                 c->peer_host);
        (void)coil_transport_abort_connection(c->t);
        return 0;
    }
    c->cur = req;
    c->nreq++;
    c->site->stats.requests++;
    start_request(c, req, &h);
    return 1;
}

/* The current request is over (finished, its body read or given up). */
static void end_request(http_conn *c)
{
    coil_http_request *req = c->cur;
    c->cur = NULL;
    unsigned max_req =
        c->site->o.max_requests ? c->site->o.max_requests : DEF_MAX_REQUESTS;
    int keep = req->keep_alive && !req->close_wanted && req->out != OUT_CLOSE &&
               req->body_done && c->nreq < max_req && !req->disconnected;
    int linger = !req->body_done || req->linger || coil__rxbuf_live(&c->in) > 0;
    if (!req->body_done)
        body_tell_failure(req, COIL_DOMAIN_COIL, COIL_ECLOSED,
                          "the response was finished before the whole request body "
                          "arrived; the rest is not read");
    coil_http_request_unref(req);
    c->pause_pipeline = 0;
    c->pause_body = 0;
    if (!keep) {
        start_close(c, linger);
        return;
    }
    update_reading(c);
}

void coil__http_request_send_on_eof(coil_http_request *req)
{
    req->send_on_eof = 1;
}

/* The client closed its side (EOF) while the current request still waits
 * for its body, or for its renderer to start the answer: it went away (Twisted's
 * HTTPChannel; nginx's "client prematurely closed connection"). The request is abandoned
 * as on a reset (notify_finish fails, waited deferreds are cancelled, the producer is
 * stopped), buffered pipelined requests are dropped, and the connection closes after what
 * is already queued. */
static void client_gone(http_conn *c, coil_http_request *req)
{
    coil_log(COIL_LOG_INFO, LOG_MODULE,
             "%s: the client closed the connection before the response to \"%s\" "
             "was finished; request abandoned",
             c->peer_host, req->request_line);
    c->cur = NULL;
    coil_producer *p = req->producer;
    if (p && c->t)
        (void)coil_transport_unregister_producer(c->t);
    request_abandon(req); /* disconnected from here: writes and finish refused */
    if (p)
        p->ops->stop_producing(p);
    coil_http_request_unref(req);
    c->pause_pipeline = 0;
    c->pause_body = 0;
    c->in.off = c->in.len; /* pipelined requests go unanswered */
    start_close(c, 0);
}

static void process(http_conn *c)
{
    if (c->processing) {
        c->again = 1;
        return;
    }
    conn_ref(c);
    c->processing = 1;
    c->in.delivering = 1;
    do {
        c->again = 0;
        for (;;) {
            if (!c->t)
                break;
            if (c->lingering) {
                size_t live = coil__rxbuf_live(&c->in);
                c->linger_bytes += live;
                c->in.off = c->in.len;
                if (c->linger_bytes > LINGER_BYTES) {
                    (void)coil_transport_lose_connection(c->t);
                    c->lingering = 0;
                }
                break;
            }
            if (c->closing || c->t->disconnecting)
                break;
            coil_http_request *req = c->cur;
            if (req) {
                if (req->finished || req->disconnected) {
                    end_request(c);
                    continue;
                }
                if (!req->body_done) {
                    if (feed_body(c, req))
                        continue;
                    if (c->eof && !req->body_done && c->t) {
                        /* The rest of the body can no longer come. */
                        client_gone(c, req);
                        break;
                    }
                    if (req->body_stream && (!req->bh || req->body_paused) &&
                        coil__rxbuf_live(&c->in) > c->lim.max_head) {
                        c->pause_body = 1;
                        update_reading(c);
                    }
                    break;
                }
                if (c->eof && !req->in_render && !req->producer && !req->send_on_eof) {
                    /* The renderer answers later (it waits on something),
                     * and the client has closed its side: it went away. A
                     * body being produced (a producer registered, a file
                     * about to go) is still sent, as nginx sends a file: a
                     * client that truly left resets the connection at the
                     * next bytes, and one that only half-closed gets it
                     * all. */
                    client_gone(c, req);
                    break;
                }
                /* Waiting for the response: pipelined input stays
                 * buffered, up to a head's worth. */
                if (coil__rxbuf_live(&c->in) > c->lim.max_head && !c->pause_pipeline) {
                    c->pause_pipeline = 1;
                    update_reading(c);
                }
                break;
            }
            if (c->eof) {
                /* Only whole requests are left to answer. */
                if (coil__rxbuf_live(&c->in) == 0 || !parse_head(c)) {
                    if (!c->cur && !c->closing && c->t)
                        start_close(c, 0);
                    break;
                }
                continue;
            }
            if (coil__rxbuf_live(&c->in) == 0) {
                if (c->rkind != RT_IDLE)
                    rtimer_set(c, RT_IDLE,
                               opt_or(c->site->o.idle_timeout, DEF_IDLE_TIMEOUT));
                break;
            }
            if (!parse_head(c))
                break;
        }
    } while (c->again && c->t);
    c->in.delivering = 0;
    coil__rxbuf_callback_done(&c->in);
    coil__rxbuf_tidy(&c->in);
    c->processing = 0;
    conn_unref(c);
}

static int process_soon(void *arg)
{
    http_conn *c = arg;
    c->soon = 0;
    process(c);
    conn_unref(c);
    return 0;
}

static void schedule_process(http_conn *c)
{
    if (c->processing) {
        c->again = 1;
        return;
    }
    if (c->soon || !c->t)
        return;
    conn_ref(c);
    if (coil_reactor_call_soon(c->r, process_soon, c) != 0) {
        conn_unref(c);
        process(c);
        return;
    }
    c->soon = 1;
}

/* ======================================================================
 * The connection protocol
 * ====================================================================== */

static void conn_made(coil_protocol *p)
{
    http_conn *c = (http_conn *)p;
    c->t = p->transport;
    if (!c->have_peer) {
        coil_address a;
        if (coil_transport_get_peer(c->t, &a) == 0) {
            c->peer = a;
            c->have_peer = 1;
        }
    }
    if (c->have_peer) {
        if (c->peer.kind == COIL_ADDR_TCP4)
            inet_ntop(AF_INET, &c->peer.u.in4.sin_addr, c->peer_host,
                      sizeof c->peer_host);
        else if (c->peer.kind == COIL_ADDR_TCP6)
            inet_ntop(AF_INET6, &c->peer.u.in6.sin6_addr, c->peer_host,
                      sizeof c->peer_host);
        else
            coil_address_format(&c->peer, c->peer_host, sizeof c->peer_host);
    }
    if (!c->peer_host[0])
        snprintf(c->peer_host, sizeof c->peer_host, "-");
    c->site->stats.connections++;
    c->site->stats.open++;
    c->counted_open = 1;
    rtimer_set(c, RT_IDLE, opt_or(c->site->o.idle_timeout, DEF_IDLE_TIMEOUT));
}

static void conn_data(coil_protocol *p, const void *data, size_t len)
{
    http_conn *c = (http_conn *)p;
    if (c->lingering) {
        c->linger_bytes += len;
        if (c->linger_bytes > LINGER_BYTES && c->t) {
            c->lingering = 0;
            (void)coil_transport_lose_connection(c->t);
        }
        return;
    }
    if (c->closing || !c->t)
        return;
    (void)coil__rx_feed(&c->in, c->t, data, len, LOG_MODULE);
    if (c->t)
        process(c); /* re-entered: the running loop goes again */
}

static void conn_read_lost(coil_protocol *p)
{
    http_conn *c = (http_conn *)p;
    if (!c->t)
        return;
    c->eof = 1;
    if (c->lingering || c->closing) {
        (void)coil_transport_lose_connection(c->t);
        return;
    }
    /* See "The client's EOF" at the top: process() answers what can be
     * answered at once and takes the client as gone otherwise. */
    process(c);
}

static void conn_write_lost(coil_protocol *p)
{
    http_conn *c = (http_conn *)p;
    c->write_shut = 1;
}

static void conn_lost(coil_protocol *p, const coil_failure *reason)
{
    (void)reason;
    http_conn *c = (http_conn *)p;
    conn_ref(c);
    timer_drop(&c->rtimer);
    c->rkind = RT_NONE;
    timer_drop(&c->wtimer);
    c->t = NULL;
    if (c->counted_open) {
        c->counted_open = 0;
        c->site->stats.open--;
    }
    coil_http_request *req = c->cur;
    c->cur = NULL;
    if (req) {
        request_abandon(req);
        coil_http_request_unref(req);
    }
    conn_unref(c);
}

static void conn_destroy(coil_protocol *p)
{
    /* A running process() holds its own reference. */
    conn_unref((http_conn *)p);
}

static const coil_protocol_ops conn_ops = {
    .connection_made = conn_made,
    .data_received = conn_data,
    .read_connection_lost = conn_read_lost,
    .write_connection_lost = conn_write_lost,
    .connection_lost = conn_lost,
    .destroy = conn_destroy,
};

coil_protocol *coil_http_site_protocol(coil_http_site *site, const coil_address *peer)
{
    if (!site)
        return NULL;
    http_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->lim.max_line =
        site->o.max_request_line ? site->o.max_request_line : COIL__HTTP_DEFAULT_MAX_LINE;
    c->lim.max_head =
        site->o.max_header_bytes ? site->o.max_header_bytes : COIL__HTTP_DEFAULT_MAX_HEAD;
    c->lim.max_fields = site->o.max_header_fields ? site->o.max_header_fields
                                                  : COIL__HTTP_DEFAULT_MAX_FIELDS;
    c->fields = calloc(c->lim.max_fields, sizeof *c->fields);
    if (!c->fields) {
        free(c);
        return NULL;
    }
    c->proto.ops = &conn_ops;
    c->site = site;
    site_ref(site);
    c->r = site->r;
    c->refs = 1; /* the transport's, dropped in destroy */
    if (peer) {
        c->peer = *peer;
        c->have_peer = 1;
    }
    return &c->proto;
}

/* The client went away before the response was finished. */
static void request_abandon(coil_http_request *req)
{
    coil_http_request_ref(req);
    int finished = req->finished;
    if (!finished)
        req->disconnected = 1; /* first: a body handler told below cannot answer */
    if (!req->body_done)
        body_tell_failure(req, COIL_DOMAIN_COIL, COIL_ECONNLOST,
                          "the client went away before the whole request body arrived");
    if (!finished) {
        req->producer = NULL; /* stop_producing is told by the caller */
        coil_deferred **nd = req->notify;
        size_t nn = req->nnotify;
        req->notify = NULL;
        req->nnotify = req->capnotify = 0;
        for (size_t i = 0; i < nn; i++) {
            (void)coil_deferred_errback(
                nd[i], coil_failure_new(COIL_DOMAIN_COIL, COIL_ECONNLOST,
                                        "the client went away before the response to "
                                        "\"%s\" was finished",
                                        req->request_line));
            coil_deferred_unref(nd[i]);
        }
        free(nd);
        for (waiter *w = req->waiters, *next; w; w = next) {
            next = w->next;
            coil_deferred_cancel(w->d);
        }
        log_request(req);
    }
    coil_http_request_unref(req);
}

/* ======================================================================
 * The response
 * ====================================================================== */

static int bodyless_status(int status)
{
    return (status >= 100 && status < 200) || status == 204 || status == 304;
}

/* The response head is built here: on the stack unless it is large. */
typedef struct hbuf {
    char *p;
    size_t len, cap;
    int failed;
    char stack[1024];
} hbuf;

static void hb_put(hbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap * 2;
        while (cap - b->len < n)
            cap *= 2;
        char *np = b->p == b->stack ? malloc(cap) : realloc(b->p, cap);
        if (!np) {
            b->failed = 1;
            return;
        }
        if (b->p == b->stack)
            memcpy(np, b->stack, b->len);
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void hb_str(hbuf *b, const char *s)
{
    hb_put(b, s, strlen(s));
}

static void hb_u64(hbuf *b, uint64_t v)
{
    char d[24];
    size_t i = sizeof d;
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    hb_put(b, d + i, sizeof d - i);
}

static void hb_field(hbuf *b, const char *name, const char *value)
{
    hb_str(b, name);
    hb_put(b, ": ", 2);
    hb_str(b, value);
    hb_put(b, "\r\n", 2);
}

/* Send the head with what was held and `more` (the write that sends the
 * head), in one writev: a large response or a file's first piece leaves in
 * the head's packet. `final`: the response is complete, so its length is
 * known. */
static int send_head(coil_http_request *req, int final, const void *more, size_t more_len)
{
    http_conn *c = req->c;
    coil_http_site *site = req->site;
    unsigned max_req = site->o.max_requests ? site->o.max_requests : DEF_MAX_REQUESTS;
    enum out_mode mode;
    uint64_t length = 0;
    if (bodyless_status(req->status)) {
        mode = OUT_NOBODY;
    } else if (req->has_length) {
        mode = OUT_LENGTH;
        length = req->length;
    } else if (final) {
        mode = OUT_LENGTH;
        length = req->is_head ? req->sent : req->held_len;
    } else if (req->is_head) {
        mode = OUT_NOBODY;
    } else if (req->version >= 11) {
        mode = OUT_CHUNKED;
    } else {
        mode = OUT_CLOSE;
    }
    int keep =
        req->keep_alive && !req->close_wanted && mode != OUT_CLOSE && c->nreq < max_req;
    hbuf hb;
    hb.p = hb.stack;
    hb.len = 0;
    hb.cap = sizeof hb.stack;
    hb.failed = 0;
    hb_put(&hb, "HTTP/1.1 ", 9);
    hb_u64(&hb, (uint64_t)req->status);
    hb_put(&hb, " ", 1);
    hb_str(&hb, req->reason ? req->reason : status_reason(req->status));
    hb_put(&hb, "\r\n", 2);
    if (!coil_http_request_response_header(req, "Date"))
        hb_field(&hb, "Date", site_date(site));
    if (site->server_name && !coil_http_request_response_header(req, "Server"))
        hb_field(&hb, "Server", site->server_name);
    for (size_t i = 0; i < req->nrh; i++)
        hb_field(&hb, req->rh[i].name, req->rh[i].value);
    /* Twisted's Request.defaultContentType, for a response with a body (a
     * HEAD's is the one a GET would have). */
    int has_body;
    if (bodyless_status(req->status))
        has_body = 0;
    else if (req->has_length)
        has_body = req->length > 0;
    else if (final)
        has_body = (req->is_head ? req->sent : req->held_len) > 0;
    else
        has_body = !req->is_head || req->sent > 0; /* bytes are being written */
    if (has_body && !coil_http_request_response_header(req, "Content-Type"))
        hb_str(&hb, "Content-Type: " DEFAULT_CONTENT_TYPE "\r\n");
    if (mode == OUT_LENGTH || (mode == OUT_NOBODY && req->is_head && req->has_length)) {
        hb_put(&hb, "Content-Length: ", 16);
        hb_u64(&hb, mode == OUT_LENGTH ? length : req->length);
        hb_put(&hb, "\r\n", 2);
    } else if (mode == OUT_CHUNKED) {
        hb_str(&hb, "Transfer-Encoding: chunked\r\n");
    }
    if (!keep)
        hb_str(&hb, "Connection: close\r\n");
    else if (req->version == 10)
        hb_str(&hb, "Connection: keep-alive\r\n");
    hb_put(&hb, "\r\n", 2);
    if (hb.failed) {
        if (hb.p != hb.stack)
            free(hb.p);
        return COIL_ENOMEM;
    }
    char *h = hb.p;
    size_t len = hb.len;
    if (!keep)
        req->close_wanted = 1;
    req->out = mode;
    if (req->is_head && mode == OUT_LENGTH)
        req->out = OUT_NOBODY;
    struct iovec iov[5];
    int n = 0;
    iov[n++] = (struct iovec){.iov_base = h, .iov_len = len};
    char pre[24];
    size_t held = req->held_len;
    if (held + more_len && req->out != OUT_NOBODY) {
        if (req->out == OUT_CHUNKED) {
            int pl = snprintf(pre, sizeof pre, "%zx\r\n", held + more_len);
            iov[n++] = (struct iovec){.iov_base = pre, .iov_len = (size_t)pl};
        }
        if (held)
            iov[n++] = (struct iovec){.iov_base = req->held, .iov_len = held};
        if (more_len)
            iov[n++] = (struct iovec){.iov_base = (void *)more, .iov_len = more_len};
        if (req->out == OUT_CHUNKED)
            iov[n++] = (struct iovec){.iov_base = "\r\n", .iov_len = 2};
    }
    int rc = conn_writev(c, iov, n);
    if (h != hb.stack)
        free(h);
    free(req->held);
    req->held = NULL;
    req->held_len = req->held_cap = 0;
    return rc;
}

/* Body bytes once the head is out. */
static int send_body(coil_http_request *req, const void *data, size_t len)
{
    http_conn *c = req->c;
    switch (req->out) {
    case OUT_CHUNKED: {
        char pre[24];
        int pl = snprintf(pre, sizeof pre, "%zx\r\n", len);
        struct iovec iov[3] = {{.iov_base = pre, .iov_len = (size_t)pl},
                               {.iov_base = (void *)data, .iov_len = len},
                               {.iov_base = "\r\n", .iov_len = 2}};
        return conn_writev(c, iov, 3);
    }
    case OUT_LENGTH:
    case OUT_CLOSE:
        return conn_write(c, data, len);
    default:
        return 0;
    }
}

static int pull_kick(void *arg)
{
    coil_http_request *req = arg;
    req->pull_kick = 0;
    if (req->producer && !req->producer_streaming && !req->finished && !req->disconnected)
        req->producer->ops->resume_producing(req->producer);
    coil_http_request_unref(req);
    return 0;
}

int coil_http_request_write(coil_http_request *req, const void *data, size_t len)
{
    if (!req || (!data && len))
        return COIL_EINVAL;
    if (req->disconnected || req->finished || !req->c->t)
        return COIL_ECLOSED;
    if (len == 0)
        return 0;
    if (req->has_length && req->sent + len > req->length) {
        coil_log(COIL_LOG_ERROR, LOG_MODULE,
                 "\"%s\": a write of %zu bytes would pass the Content-Length %" PRIu64
                 " (%" PRIu64 " sent); refused",
                 req->request_line, len, req->length, req->sent);
        return COIL_EINVAL;
    }
    req->sent += len;
    if (req->is_head || bodyless_status(req->status)) {
        /* Counted, dropped. A pull producer is asked again, as the
         * transport would once its bytes left. */
        if (req->producer && !req->producer_streaming && !req->pull_kick) {
            coil_http_request_ref(req);
            if (coil_reactor_call_soon(req->c->r, pull_kick, req) == 0)
                req->pull_kick = 1;
            else
                coil_http_request_unref(req);
        }
        return 0;
    }
    if (req->out != OUT_NONE)
        return send_body(req, data, len);
    /* The head has not gone out: past what is held (or once the renderer
     * returned) it leaves now, with these bytes in the same writev. */
    if (!req->in_render || req->held_len + len > HOLD_MAX)
        return send_head(req, 0, data, len);
    if (req->held_len + len > req->held_cap) {
        size_t cap = req->held_cap ? req->held_cap : 1024;
        while (cap < req->held_len + len)
            cap *= 2;
        char *nb = realloc(req->held, cap);
        if (!nb)
            return COIL_ENOMEM;
        req->held = nb;
        req->held_cap = cap;
    }
    memcpy(req->held + req->held_len, data, len);
    req->held_len += len;
    return 0;
}

int coil__http_request_send_head(coil_http_request *req)
{
    if (!req)
        return COIL_EINVAL;
    if (req->disconnected || req->finished || !req->c->t)
        return COIL_ECLOSED;
    if (req->out != OUT_NONE || req->in_render)
        return 0;
    return send_head(req, 0, NULL, 0);
}

int coil_http_request_writef(coil_http_request *req, const char *fmt, ...)
{
    if (!req || !fmt)
        return COIL_EINVAL;
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return COIL_EINVAL;
    if ((size_t)n < sizeof small)
        return coil_http_request_write(req, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big)
        return COIL_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = coil_http_request_write(req, big, (size_t)n);
    free(big);
    return rc;
}

int coil_http_request_finish(coil_http_request *req)
{
    if (!req)
        return COIL_EINVAL;
    if (req->finished)
        return COIL_EALREADY;
    if (req->disconnected || !req->c->t)
        return COIL_ECLOSED;
    http_conn *c = req->c;
    coil_http_request_ref(req);
    req->finished = 1;
    int short_body = 0;
    if (req->out == OUT_NONE) {
        if (req->has_length && !req->is_head && req->sent < req->length)
            short_body = 1;
        else
            (void)send_head(req, 1, NULL, 0);
    } else if (req->out == OUT_CHUNKED) {
        static const char last[] = "0\r\n\r\n";
        (void)conn_write(c, last, sizeof last - 1);
    } else if (req->out == OUT_LENGTH && req->sent < req->length) {
        short_body = 1;
    }
    if (req->producer) {
        if (c->t)
            (void)coil_transport_unregister_producer(c->t);
        req->producer = NULL;
    }
    if (short_body) {
        coil_log(COIL_LOG_ERROR, LOG_MODULE,
                 "%s: \"%s\" finished after %" PRIu64 " of its %" PRIu64
                 " bytes (Content-Length); connection aborted so the client does not "
                 "take a short body as whole",
                 c->peer_host, req->request_line, req->sent, req->length);
        req->close_wanted = 1;
        if (c->t)
            (void)coil_transport_abort_connection(c->t);
    } else {
        c->site->stats.responses++;
    }
    /* notify_finish */
    coil_deferred **nd = req->notify;
    size_t nn = req->nnotify;
    req->notify = NULL;
    req->nnotify = req->capnotify = 0;
    for (size_t i = 0; i < nn; i++) {
        if (short_body)
            (void)coil_deferred_errback(nd[i],
                                        coil_failure_new(COIL_DOMAIN_COIL, COIL_ECONNLOST,
                                                         "the response was cut short"));
        else
            (void)coil_deferred_callback(nd[i], NULL, NULL);
        coil_deferred_unref(nd[i]);
    }
    free(nd);
    log_request(req);
    if (c->cur == req) {
        if (req->out == OUT_CLOSE)
            req->close_wanted = 1;
        schedule_process(c);
    }
    coil_http_request_unref(req);
    return 0;
}

int coil_http_request_finished(const coil_http_request *req)
{
    return req ? req->finished : 0;
}

int coil_http_request_disconnected(const coil_http_request *req)
{
    return req ? req->disconnected : 0;
}

int coil_http_request_set_status(coil_http_request *req, int status, const char *reason)
{
    if (!req || status < 100 || status > 999)
        return COIL_EINVAL;
    if (req->out != OUT_NONE || req->finished)
        return COIL_EALREADY;
    char *r = NULL;
    if (reason) {
        if (!value_ok(reason))
            return COIL_EINVAL;
        r = dupstr(reason);
        if (!r)
            return COIL_ENOMEM;
    }
    free(req->reason);
    req->reason = r;
    req->status = status;
    return 0;
}

int coil_http_request_status(const coil_http_request *req)
{
    return req ? req->status : COIL_EINVAL;
}

/* Content-Length, Transfer-Encoding and Connection are the server's to
 * frame: a Content-Length is taken as set_length, "Connection: close" as
 * a wish to close, a Transfer-Encoding refused. */
static int special_header(coil_http_request *req, const char *name, const char *value,
                          int *handled)
{
    *handled = 1;
    if (strcasecmp(name, "Content-Length") == 0) {
        char *end;
        if (!*value || !isdigit((unsigned char)*value))
            return COIL_EINVAL;
        unsigned long long v = strtoull(value, &end, 10);
        if (*end)
            return COIL_EINVAL;
        return coil_http_request_set_length(req, v);
    }
    if (strcasecmp(name, "Transfer-Encoding") == 0)
        return COIL_EINVAL;
    if (strcasecmp(name, "Connection") == 0) {
        if (has_token(value, "close"))
            req->close_wanted = 1;
        return 0;
    }
    *handled = 0;
    return 0;
}

static int header_put(coil_http_request *req, const char *name, const char *value,
                      int replace)
{
    if (!req || !token_ok(name) || !value_ok(value))
        return COIL_EINVAL;
    if (req->out != OUT_NONE || req->finished)
        return COIL_EALREADY;
    int handled;
    int rc = special_header(req, name, value, &handled);
    if (handled)
        return rc;
    if (replace) {
        size_t j = 0;
        for (size_t i = 0; i < req->nrh; i++) {
            if (strcasecmp(req->rh[i].name, name) == 0)
                free(req->rh[i].name);
            else
                req->rh[j++] = req->rh[i];
        }
        req->nrh = j;
    }
    if (req->nrh == req->caprh) {
        size_t cap = req->caprh ? req->caprh * 2 : 8;
        resp_header *n = realloc(req->rh, cap * sizeof *n);
        if (!n)
            return COIL_ENOMEM;
        req->rh = n;
        req->caprh = cap;
    }
    size_t nl = strlen(name), vl = strlen(value);
    char *b = malloc(nl + vl + 2);
    if (!b)
        return COIL_ENOMEM;
    memcpy(b, name, nl + 1);
    memcpy(b + nl + 1, value, vl + 1);
    req->rh[req->nrh].name = b;
    req->rh[req->nrh].value = b + nl + 1;
    req->nrh++;
    return 0;
}

int coil_http_request_set_header(coil_http_request *req, const char *name,
                                 const char *value)
{
    return header_put(req, name, value, 1);
}

int coil_http_request_add_header(coil_http_request *req, const char *name,
                                 const char *value)
{
    return header_put(req, name, value, 0);
}

const char *coil_http_request_response_header(const coil_http_request *req,
                                              const char *name)
{
    if (!req || !name)
        return NULL;
    for (size_t i = 0; i < req->nrh; i++)
        if (strcasecmp(req->rh[i].name, name) == 0)
            return req->rh[i].value;
    return NULL;
}

int coil_http_request_set_length(coil_http_request *req, uint64_t length)
{
    if (!req)
        return COIL_EINVAL;
    if (req->out != OUT_NONE || req->finished)
        return COIL_EALREADY;
    if (req->sent > length)
        return COIL_EINVAL;
    req->has_length = 1;
    req->length = length;
    return 0;
}

uint64_t coil_http_request_sent(const coil_http_request *req)
{
    return req ? req->sent : 0;
}

void coil__http_request_count_sent(coil_http_request *req, uint64_t n)
{
    if (!req)
        return;
    req->sent += n; /* sendfile (static.c) wrote them to the transport itself */
    /* ...and the write timer counts them among the bytes handed over, or a
     * client taking a large file would look stalled. */
    if (req->c->t && n)
        note_written(req->c, (size_t)n);
}

int coil_http_request_register_producer(coil_http_request *req, coil_producer *p,
                                        int streaming)
{
    if (!req || !p || !p->ops)
        return COIL_EINVAL;
    if (req->disconnected || req->finished || !req->c->t)
        return COIL_ECLOSED;
    if (req->producer)
        return COIL_EBUSY;
    req->producer = p;
    req->producer_streaming = streaming;
    int rc = coil_transport_register_producer(req->c->t, p, streaming);
    if (rc != 0 && req->producer == p)
        req->producer = NULL;
    return rc;
}

int coil_http_request_unregister_producer(coil_http_request *req)
{
    if (!req)
        return COIL_EINVAL;
    if (!req->producer)
        return 0;
    req->producer = NULL;
    if (req->c->t)
        return coil_transport_unregister_producer(req->c->t);
    return 0;
}

/* ---- streamed request bodies ------------------------------------------ */

int coil_http_request_read_body(coil_http_request *req, const coil_http_body_handler *h,
                                void *ud)
{
    if (!req || !h)
        return COIL_EINVAL;
    if (!req->body_stream)
        return COIL_ESTATE;
    if (req->bh)
        return COIL_EBUSY;
    req->bh = h;
    req->bud = ud;
    if (req->body_done) {
        if (!req->body_told) {
            req->body_told = 1;
            if (h->done)
                h->done(ud, req, NULL);
        }
        return 0;
    }
    if (req->disconnected)
        return COIL_ECLOSED;
    schedule_process(req->c);
    return 0;
}

int coil_http_request_pause_body(coil_http_request *req)
{
    if (!req)
        return COIL_EINVAL;
    if (!req->body_stream)
        return COIL_ESTATE;
    req->body_paused = 1;
    http_conn *c = req->c;
    if (c->cur == req && !req->body_done) {
        c->pause_body = 1;
        update_reading(c);
        if (c->rkind == RT_BODY)
            rtimer_clear(c); /* the renderer, not the client, holds it up */
    }
    return 0;
}

int coil_http_request_resume_body(coil_http_request *req)
{
    if (!req)
        return COIL_EINVAL;
    if (!req->body_stream)
        return COIL_ESTATE;
    req->body_paused = 0;
    http_conn *c = req->c;
    if (c->cur == req && !req->body_done) {
        c->pause_body = 0;
        update_reading(c);
        body_timer_arm(c);
        schedule_process(c);
    }
    return 0;
}

/* ---- errors the server answers itself ------------------------------------ */

/* Answer `status` with a text/plain reason and close after it (the body,
 * if any, is not read). */
static void request_fail(coil_http_request *req, int status, const char *why)
{
    http_conn *c = req->c;
    if (req->finished || req->disconnected || !c->t)
        return;
    if (req->out != OUT_NONE) {
        (void)coil_transport_abort_connection(c->t);
        return;
    }
    coil_http_request_ref(req);
    req->close_wanted = 1;
    req->held_len = 0;
    req->sent = 0;
    req->has_length = 0;
    for (size_t i = 0; i < req->nrh; i++)
        free(req->rh[i].name);
    req->nrh = 0;
    if (req->producer) {
        (void)coil_transport_unregister_producer(c->t);
        req->producer = NULL;
    }
    req->linger = 1;
    (void)coil_http_request_set_status(req, status, NULL);
    (void)coil_http_request_set_header(req, "Content-Type", "text/plain; charset=utf-8");
    char body[512];
    int n =
        snprintf(body, sizeof body, "%d %s: %s\n", status, status_reason(status), why);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof body)
        n = (int)sizeof body - 1;
    int saved = req->in_render;
    req->in_render = 1;
    (void)coil_http_request_write(req, body, (size_t)n);
    req->in_render = saved;
    (void)coil_http_request_finish(req);
    coil_http_request_unref(req);
}

/* ---- lifetime helpers: notify_finish, wait -------------------------------- */

coil_deferred *coil_http_request_notify_finish(coil_http_request *req)
{
    if (!req)
        return NULL;
    if (req->finished)
        return coil_deferred_succeed(NULL, NULL);
    if (req->disconnected)
        return coil_deferred_fail(coil_failure_new(COIL_DOMAIN_COIL, COIL_ECONNLOST,
                                                   "the client went away before the "
                                                   "response to \"%s\" was finished",
                                                   req->request_line));
    if (req->nnotify == req->capnotify) {
        size_t cap = req->capnotify ? req->capnotify * 2 : 2;
        coil_deferred **n = realloc(req->notify, cap * sizeof *n);
        if (!n)
            return NULL;
        req->notify = n;
        req->capnotify = cap;
    }
    coil_deferred *d = coil_deferred_new();
    if (!d)
        return NULL;
    req->notify[req->nnotify++] = coil_deferred_ref(d);
    return d;
}

static void waiter_done(waiter *w)
{
    coil_http_request *req = w->req;
    if (w->prev)
        w->prev->next = w->next;
    else
        req->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    coil_deferred_unref(w->d);
    free(w);
    coil_http_request_unref(req);
}

static void wait_ok(coil_deferred *d, void *arg)
{
    (void)d;
    waiter *w = arg;
    coil_http_request *req = w->req;
    if (!req->finished && !req->disconnected)
        (void)coil_http_request_finish(req);
    waiter_done(w);
}

static void wait_fail(coil_deferred *d, void *arg)
{
    waiter *w = arg;
    coil_http_request *req = w->req;
    if (!req->disconnected) {
        const coil_failure *f = coil_deferred_failure(d);
        render_failed(req, f ? coil_failure_code(f) : COIL_EUNHANDLED, f);
    }
    coil_deferred_set_result(d, NULL, NULL); /* handled here */
    waiter_done(w);
}

int coil_http_request_wait(coil_http_request *req, coil_deferred *d)
{
    if (!req || !d)
        return COIL_EINVAL;
    waiter *w = calloc(1, sizeof *w);
    if (!w)
        return COIL_ENOMEM;
    w->req = coil_http_request_ref(req);
    w->d = coil_deferred_ref(d);
    w->next = req->waiters;
    if (w->next)
        w->next->prev = w;
    req->waiters = w;
    if (coil_deferred_add_callbacks(d, wait_ok, wait_fail, w) != 0) {
        waiter_done(w);
        return COIL_ENOMEM;
    }
    if (req->disconnected && req->waiters) {
        for (waiter *x = req->waiters; x; x = x->next)
            if (x == w) {
                coil_deferred_cancel(d);
                break;
            }
    }
    return COIL_HTTP_NOT_DONE_YET;
}

/* ---- getters ------------------------------------------------------------ */

const char *coil_http_request_method(const coil_http_request *req)
{
    return req ? req->method : NULL;
}

const char *coil_http_request_uri(const coil_http_request *req)
{
    return req ? req->uri : NULL;
}

const char *coil_http_request_path(const coil_http_request *req)
{
    return req ? req->path : NULL;
}

const char *coil_http_request_query(const coil_http_request *req)
{
    return req ? req->query : NULL;
}

int coil_http_request_version(const coil_http_request *req)
{
    return req ? req->version : COIL_EINVAL;
}

const char *coil_http_request_header(const coil_http_request *req, const char *name)
{
    if (!req || !name)
        return NULL;
    for (size_t i = 0; i < req->nh; i++)
        if (strcasecmp(req->hname[i], name) == 0)
            return req->hvalue[i];
    return NULL;
}

size_t coil_http_request_header_count(const coil_http_request *req)
{
    return req ? req->nh : 0;
}

int coil_http_request_header_at(const coil_http_request *req, size_t i, const char **name,
                                const char **value)
{
    if (!req || i >= req->nh)
        return COIL_EINVAL;
    if (name)
        *name = req->hname[i];
    if (value)
        *value = req->hvalue[i];
    return 0;
}

size_t coil_http_request_postpath(const coil_http_request *req,
                                  const char *const **segments)
{
    if (!req) {
        if (segments)
            *segments = NULL;
        return 0;
    }
    if (segments)
        *segments = (const char *const *)req->segs + req->pos;
    return req->nsegs - req->pos;
}

size_t coil_http_request_prepath(const coil_http_request *req,
                                 const char *const **segments)
{
    if (!req) {
        if (segments)
            *segments = NULL;
        return 0;
    }
    if (segments)
        *segments = (const char *const *)req->segs;
    return req->pos;
}

const char *coil_http_request_arg(const coil_http_request *req, const char *name)
{
    const coil_http_arg *a = coil_http_request_arg_find(req, name);
    return a ? a->value : NULL;
}

size_t coil_http_request_arg_count(const coil_http_request *req)
{
    return req ? req->args.count : 0;
}

const coil_http_arg *coil_http_request_arg_at(const coil_http_request *req, size_t i)
{
    if (!req || i >= req->args.count)
        return NULL;
    return &req->args.items[i];
}

const coil_http_arg *coil_http_request_arg_find(const coil_http_request *req,
                                                const char *name)
{
    if (!req || !name)
        return NULL;
    for (size_t i = 0; i < req->args.count; i++)
        if (req->args.items[i].name && strcmp(req->args.items[i].name, name) == 0)
            return &req->args.items[i];
    return NULL;
}

const void *coil_http_request_body(const coil_http_request *req, size_t *len)
{
    if (len)
        *len = 0;
    if (!req || req->body_stream)
        return NULL;
    if (len)
        *len = req->body_len;
    return req->body ? req->body : "";
}

int coil_http_request_peer(const coil_http_request *req, coil_address *out)
{
    if (!req || !out)
        return COIL_EINVAL;
    if (req->c->have_peer) {
        *out = req->c->peer;
        return 0;
    }
    if (req->c->t)
        return coil_transport_get_peer(req->c->t, out);
    return COIL_ECLOSED;
}

int coil_http_request_host(const coil_http_request *req, coil_address *out)
{
    if (!req || !out)
        return COIL_EINVAL;
    if (!req->c->t)
        return COIL_ECLOSED;
    return coil_transport_get_host(req->c->t, out);
}

int coil_http_request_transport_info(const coil_http_request *req,
                                     coil_transport_info *out)
{
    if (!req || !out)
        return COIL_EINVAL;
    if (!req->c->t)
        return COIL_ECLOSED;
    memset(out, 0, sizeof *out);
    return coil_transport_info_get(req->c->t, out);
}

int coil_http_request_is_secure(const coil_http_request *req)
{
    coil_transport_info info;
    if (coil_http_request_transport_info(req, &info) != 0)
        return 0;
    return coil_transport_info_layer(&info, "tls") != NULL;
}

coil_transport *coil_http_request_transport(const coil_http_request *req)
{
    return req ? req->c->t : NULL;
}

coil_reactor *coil_http_request_reactor(const coil_http_request *req)
{
    return req ? req->c->r : NULL;
}

coil_http_site *coil_http_request_site(const coil_http_request *req)
{
    return req ? req->site : NULL;
}

/* ---- the access log ---------------------------------------------------- */

/* Append `s` with quotes, backslashes, control and non-ASCII bytes as
 * \xNN (nginx's escaping of logged request fields). */
static size_t log_escape(char *out, size_t size, size_t at, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
            char e[4] = {'\\', 'x', hex[ch >> 4], hex[ch & 15]};
            for (int i = 0; i < 4; i++, at++)
                if (at + 1 < size)
                    out[at] = e[i];
        } else {
            if (at + 1 < size)
                out[at] = (char)ch;
            at++;
        }
    }
    return at;
}

static size_t log_put(char *out, size_t size, size_t at, const char *s)
{
    for (; *s; s++, at++)
        if (at + 1 < size)
            out[at] = *s;
    return at;
}

size_t coil_http_request_log_line(const coil_http_request *req, char *buf, size_t size)
{
    if (!req)
        return 0;
    char tbuf[64];
    struct tm tm;
    time_t t = req->started;
    gmtime_r(&t, &tm);
    strftime(tbuf, sizeof tbuf, "[%d/%b/%Y:%H:%M:%S +0000]", &tm);
    char num[48];
    size_t at = 0;
    at = log_put(buf, size, at, req->c->peer_host[0] ? req->c->peer_host : "-");
    at = log_put(buf, size, at, " - - ");
    at = log_put(buf, size, at, tbuf);
    at = log_put(buf, size, at, " \"");
    at = log_escape(buf, size, at, req->request_line);
    at = log_put(buf, size, at, "\" ");
    if (req->sent && !req->is_head)
        snprintf(num, sizeof num, "%d %" PRIu64, req->status, req->sent);
    else
        snprintf(num, sizeof num, "%d -", req->status);
    at = log_put(buf, size, at, num);
    const char *ref = coil_http_request_header(req, "Referer");
    const char *ua = coil_http_request_header(req, "User-Agent");
    at = log_put(buf, size, at, " \"");
    at = ref ? log_escape(buf, size, at, ref) : log_put(buf, size, at, "-");
    at = log_put(buf, size, at, "\" \"");
    at = ua ? log_escape(buf, size, at, ua) : log_put(buf, size, at, "-");
    at = log_put(buf, size, at, "\"");
    if (size > 0)
        buf[at < size ? at : size - 1] = '\0';
    return at;
}

static void log_request(coil_http_request *req)
{
    if (req->logged)
        return;
    req->logged = 1;
    coil_http_site *site = req->site;
    if (!site->o.log)
        return;
    char line[1024];
    size_t n = coil_http_request_log_line(req, line, sizeof line);
    if (n >= sizeof line) {
        char *big = malloc(n + 1);
        if (big) {
            coil_http_request_log_line(req, big, n + 1);
            site->o.log(site->o.log_ud, req, big);
            free(big);
            return;
        }
    }
    site->o.log(site->o.log_ud, req, line);
}
