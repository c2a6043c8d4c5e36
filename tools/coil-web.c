/* coil-web: serve a directory over HTTP (as `twistd web --path`), and fetch
 * a URL (a small curl).
 *
 * serve: one site (coil_http_site) whose root is a static file resource
 * (coil_http_file_new) on every endpoint given; TLS endpoints get ALPN
 * http/1.1 unless the user chose. Each request ends with one line in the
 * combined log format on stdout (line-buffered, so `| tee` and tests see it
 * at once); messages go to stderr.
 *
 * get: one request through coil's agent. The body goes to stdout or, with
 * -o, to FILE.part as it arrives (coil_http_response_deliver_body), renamed
 * to FILE once complete and removed otherwise. Exit statuses as curl's
 * where they overlap: 22 for a status of 400 or more (curl -f).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <coil/coil.h>

#include "toolutil.h"

#define EXIT_HTTP_ERROR 22 /* curl -f's status for a response >= 400 */

static const char usage[] =
    "Usage: coil-web serve ENDPOINT... --root DIR [--no-listings] [--index NAME]\n"
    "                [--quiet] [--max-body BYTES] [--idle-timeout S]\n"
    "                [--header-timeout S]\n"
    "       coil-web get URL [-o FILE] [-X METHOD] [-d DATA|-d @FILE]\n"
    "                [-H 'Name: value']... [-i] [-L] [--cacert FILE] [--insecure]\n"
    "                [--fail-ok] [--quiet]\n"
    "\n"
    "serve  Serve the files under DIR (GET and HEAD, ranges, ETag and\n"
    "       Last-Modified, directory listings) on every server endpoint given,\n"
    "       until SIGINT or SIGTERM. One line per request in the combined log\n"
    "       format on stdout; where it listens on stderr.\n"
    "         --no-listings      directories without an index are 403\n"
    "         --index NAME       the file served for a directory (index.html;\n"
    "                            '' for none)\n"
    "         --quiet, -q        no access log\n"
    "         --max-body BYTES   largest request body (1M; suffix k, m, g)\n"
    "         --idle-timeout S   keep-alive connections idle longer are closed (60)\n"
    "         --header-timeout S a request head must arrive within S seconds (20)\n"
    "get    Send one request to URL (http://, https://, or\n"
    "       http+unix://%2Fpath%2Fto.sock/file) and write the body to stdout.\n"
    "         -o FILE            write the body to FILE (via FILE.part; '-':\n"
    "                            stdout)\n"
    "         -X METHOD          the method (GET; POST with -d)\n"
    "         -d DATA, -d @FILE  send DATA, or FILE's bytes (@-: stdin), as the\n"
    "                            body (Content-Type application/x-www-form-\n"
    "                            urlencoded unless -H gives one)\n"
    "         -H 'Name: value'   add a request header (repeatable)\n"
    "         -i                 write the status line and headers first\n"
    "         -L                 follow redirects\n"
    "         --cacert FILE      also trust the CA certificates in FILE\n"
    "         --insecure, -k     do not verify the server's certificate\n"
    "         --fail-ok          a status of 400 or more is not a failure\n"
    "         --quiet, -q        no progress bar (shown on a terminal for\n"
    "                            downloads that take a while)\n"
    "\n"
    "Server endpoints: tcp:PORT[:interface=ADDR]   unix:PATH[:mode=0660]\n"
    "                  tls:PORT:privateKey=KEY:certKey=CERT (https; alpn=http/1.1\n"
    "                  is added unless given)\n"
    "\n"
    "Examples:\n"
    "  coil-web serve tcp:8080 --root /srv/www\n"
    "  coil-web get http://127.0.0.1:8080/file.tar -o file.tar\n"
    "  coil-web get -X PUT -d @notes.txt -H 'Content-Type: text/plain' http://h/x\n"
    "\n"
    "Exit status: 0 success, 1 failure, 2 bad arguments, 22 (get) a response\n"
    "status of 400 or more.\n";

/* ---- argument helpers ----------------------------------------------------- */

static int parse_seconds(const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || !(v > 0) || v > 1e6)
        return tool_usage_error("%s needs a positive number of seconds, not '%s'", opt,
                                s);
    *out = v;
    return 0;
}

static int parse_bytes(const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!errno && end != s && s[0] != '-') {
        unsigned long long mult = 1;
        if (*end == 'k' || *end == 'K')
            mult = 1024ULL, end++;
        else if (*end == 'm' || *end == 'M')
            mult = 1024ULL * 1024, end++;
        else if (*end == 'g' || *end == 'G')
            mult = 1024ULL * 1024 * 1024, end++;
        if (!*end && v > 0 && v <= UINT64_MAX / mult) {
            *out = (uint64_t)(v * mult);
            return 0;
        }
    }
    return tool_usage_error("%s needs a positive size in bytes (e.g. 1048576, 64k, 1M), "
                            "not '%s'",
                            opt, s);
}

/* ======================================================================= */
/* ---- serve ---------------------------------------------------------------- */

typedef struct serve_config {
    const char *root;
    int no_listings;
    const char *index;
    int quiet;
    coil_http_server_options so;
} serve_config;

typedef struct web_server {
    coil_reactor *r;
    coil_http_site *site;
    tool_serving sv;
    int quiet;
    int log_broken; /* stdout failed once: said so, no more lines */
} web_server;

static void access_log(void *ud, coil_http_request *req, const char *line)
{
    (void)req;
    web_server *s = ud;
    if (s->quiet || s->log_broken)
        return;
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (fwrite(line, 1, len, stdout) != len || fputc('\n', stdout) == EOF ||
        fflush(stdout) == EOF) {
        s->log_broken = 1;
        tool_error("cannot write the access log to stdout: %s; serving on without it",
                   strerror(errno));
    }
}

/* `text` with ":alpn=http/1.1" appended when it is a TLS server endpoint
 * that names no ALPN protocols (clients such as curl then see http/1.1
 * chosen). A new string, NULL when memory runs out. */
static char *with_alpn(const char *text)
{
    coil_endpoint_desc *d = NULL;
    int add = 0;
    if (coil_endpoint_desc_parse(text, &d, NULL) == 0) {
        add = (strcmp(d->kind, "tls") == 0 || strcmp(d->kind, "ssl") == 0) &&
              !coil_endpoint_desc_get(d, "alpn");
        coil_endpoint_desc_free(d);
    }
    /* A description that does not parse is reported by coil_endpoint_server. */
    if (!add)
        return strdup(text);
    size_t len = strlen(text) + sizeof ":alpn=http/1.1";
    char *s = malloc(len);
    if (s)
        snprintf(s, len, "%s:alpn=http/1.1", text);
    return s;
}

static int serve(int n, char **texts, serve_config *cfg)
{
    int status = TOOL_EXIT_FAILURE;
    web_server s = {.quiet = cfg->quiet};
    if (tool_serving_init(&s.sv, n, "listening on") != 0)
        goto out;
    /* Check every description before listening on any; mistakes are
     * reported against what the user wrote, before ALPN is added. */
    for (int i = 0; i < n; i++) {
        coil_failure *err = NULL;
        if (coil_endpoint_server(texts[i], &s.sv.eps[i], &err) != 0) {
            status = tool_bad_endpoint(err);
            goto out;
        }
        char *text = with_alpn(texts[i]);
        if (!text) {
            tool_error("out of memory");
            goto out;
        }
        if (strcmp(text, texts[i]) != 0) {
            coil_endpoint_free(s.sv.eps[i]);
            s.sv.eps[i] = NULL;
            if (coil_endpoint_server(text, &s.sv.eps[i], &err) != 0) {
                free(text);
                status = tool_bad_endpoint(err);
                goto out;
            }
        }
        free(text);
    }
    struct stat st;
    if (stat(cfg->root, &st) != 0) {
        tool_error("cannot serve '%s': %s", cfg->root, strerror(errno));
        goto out;
    }
    coil_http_file_options fo = {
        .no_listings = cfg->no_listings,
        .index = cfg->index,
    };
    coil_http_resource *root = NULL;
    coil_failure *err = NULL;
    if (coil_http_file_new(cfg->root, &fo, &root, &err) != 0) {
        tool_error_failure(err, "cannot serve '%s'", cfg->root);
        coil_failure_free(err);
        goto out;
    }
    if (tool_reactor_new(&s.r) != 0) {
        coil_http_resource_unref(root);
        goto out;
    }
    /* --quiet: no log callback at all (the server then formats no line). */
    cfg->so.log = cfg->quiet ? NULL : access_log;
    cfg->so.log_ud = &s;
    /* The site takes root's reference, also when it fails. */
    if (coil_http_site_new(s.r, root, &cfg->so, &s.site, &err) != 0) {
        tool_error_failure(err, "cannot start the web site");
        coil_failure_free(err);
        goto out;
    }
    if (tool_serving_listen(&s.sv, s.r, coil_http_site_factory(s.site), texts) != 0)
        goto out;
    coil_reactor_run(s.r);
    status = TOOL_EXIT_OK;
out:
    tool_serving_close(&s.sv);
    if (s.r) {
        /* Requests in flight get a moment to finish (a download to a slow
         * client is cut); TLS closes included. */
        tool_shutdown(s.r, 1.0);
        coil_http_site_free(s.site);
        coil_reactor_free(s.r);
    }
    tool_serving_free(&s.sv);
    return status;
}

/* ======================================================================= */
/* ---- get ------------------------------------------------------------------ */

typedef struct get_config {
    const char *url;
    const char *out_path; /* -o */
    const char *method;   /* -X */
    const char *data;     /* -d */
    coil_http_headers *headers;
    int have_content_type;
    int include;  /* -i */
    int follow;   /* -L */
    int fail_ok;  /* --fail-ok */
    int quiet;    /* no progress bar */
    int insecure; /* --insecure */
    const char *cacert;
} get_config;

typedef struct getter {
    coil_protocol body; /* first: the response body's protocol */
    const get_config *cfg;
    const char *method;
    coil_reactor *r;
    coil_http_response *resp;
    int http_status;
    int keep;   /* the body goes to the output (not an error page) */
    int fd;     /* the output: stdout, FILE.part or a device; -1 before */
    char *part; /* FILE.part with -o, once created */
    int direct; /* -o names a device or a FIFO: written in place */
    uint64_t received;
    int64_t length; /* -1 unknown */
    int status;     /* exit status, -1 while undecided */
    /* the progress bar */
    int tty;
    double started, drawn_at;
    int drawn;
} getter;

#define GETTER_OF_BODY(pp) ((getter *)(pp))

static int add_header(void *arg, const char *text)
{
    get_config *cfg = arg;
    const char *colon = strchr(text, ':');
    if (!colon || colon == text)
        return tool_usage_error("-H needs 'Name: value', not '%s'", text);
    size_t nlen = (size_t)(colon - text);
    char *name = strndup(text, nlen);
    if (!name)
        return tool_usage_error("out of memory");
    const char *value = colon + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    int rc =
        cfg->headers ? coil_http_headers_add(cfg->headers, name, value) : COIL_ENOMEM;
    if (rc == 0 && strcasecmp(name, "Content-Type") == 0)
        cfg->have_content_type = 1;
    free(name);
    if (rc != 0)
        return tool_usage_error("-H '%s': %s", text,
                                rc == COIL_EINVAL
                                    ? "the name must be a token and the value hold no "
                                      "control characters"
                                    : coil_strerror(rc));
    return 0;
}

/* ---- the progress bar (stderr, on a terminal, for downloads that last) ---- */

#define PROGRESS_AFTER    0.5 /* seconds before a bar appears */
#define PROGRESS_INTERVAL 0.1 /* at most ten redraws a second */

static void human_bytes(double v, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (v >= 1024 && u < 4)
        v /= 1024, u++;
    if (u == 0)
        snprintf(buf, size, "%.0f %s", v, units[u]);
    else
        snprintf(buf, size, "%.1f %s", v, units[u]);
}

static int term_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

static void progress_draw(getter *g, double now)
{
    char got[32], total[32], rate[32], line[512];
    double elapsed = now - g->started;
    human_bytes((double)g->received, got, sizeof got);
    human_bytes(elapsed > 0 ? (double)g->received / elapsed : 0, rate, sizeof rate);
    int width = term_width() - 1;
    if (width > (int)sizeof line - 1)
        width = (int)sizeof line - 1;
    int len;
    if (g->length > 0) {
        double frac = (double)g->received / (double)g->length;
        if (frac > 1)
            frac = 1;
        human_bytes((double)g->length, total, sizeof total);
        char tail[128];
        snprintf(tail, sizeof tail, " %3d%%  %s / %s  %s/s", (int)(frac * 100), got,
                 total, rate);
        /* A fixed width (the tail is at most about 48 columns), so the bar
         * does not jump as the numbers change. */
        int bar = width - 50;
        if (bar > 40)
            bar = 40;
        len = 0;
        if (bar >= 10) {
            int fill = (int)(frac * bar);
            line[len++] = '[';
            for (int i = 0; i < bar; i++)
                line[len++] = i < fill ? '#' : '.';
            line[len++] = ']';
        }
        len += snprintf(line + len, sizeof line - (size_t)len, "%s", tail);
    } else {
        len = snprintf(line, sizeof line, " %s  %s/s", got, rate);
    }
    if (len > width)
        len = width;
    /* \r, the line, then clear what a longer earlier line left. */
    fprintf(stderr, "\r%.*s\033[K", len, line);
    fflush(stderr);
    g->drawn = 1;
    g->drawn_at = now;
}

static void progress_update(getter *g)
{
    if (!g->tty)
        return;
    double now = coil_reactor_seconds(g->r);
    if (now - g->started < PROGRESS_AFTER ||
        (g->drawn && now - g->drawn_at < PROGRESS_INTERVAL))
        return;
    progress_draw(g, now);
}

static void progress_clear(getter *g)
{
    if (g->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        g->drawn = 0;
    }
}

/* ---- the outcome ---------------------------------------------------------- */

static void get_finish(getter *g, int status)
{
    if (g->status < 0)
        g->status = status;
    progress_clear(g);
    tool_quit(g->r);
}

/* Close the output; with -o, FILE.part becomes FILE when `complete`, and
 * goes away otherwise. Returns 0, or 1 after saying what failed. */
static int output_close(getter *g, int complete)
{
    int rc = 0;
    if (g->fd < 0)
        return 0;
    if (g->part) {
        if (close(g->fd) != 0 && complete) {
            tool_error("cannot write '%s': %s", g->part, strerror(errno));
            complete = 0;
            rc = 1;
        }
        if (complete && rename(g->part, g->cfg->out_path) != 0) {
            tool_error("cannot rename '%s' to '%s': %s", g->part, g->cfg->out_path,
                       strerror(errno));
            rc = 1;
            complete = 0;
        }
        if (!complete)
            unlink(g->part);
        free(g->part);
        g->part = NULL;
    } else if (g->direct) {
        if (close(g->fd) != 0 && complete) {
            tool_error("cannot write '%s': %s", g->cfg->out_path, strerror(errno));
            rc = 1;
        }
        g->direct = 0;
    }
    g->fd = -1;
    return rc;
}

static int output_write(getter *g, const void *data, size_t len)
{
    int err = tool_write_all(g->fd, data, len);
    if (err) {
        tool_error("cannot write '%s': %s",
                   g->part     ? g->part
                   : g->direct ? g->cfg->out_path
                               : "stdout",
                   strerror(err));
        return -1;
    }
    return 0;
}

/* Open where the body goes: stdout (no -o, or -o -); a device or FIFO
 * named by -o (/dev/null) as it is; else FILE.part, renamed at the end.
 * Returns 0, or -1 after saying what failed. */
static int output_open(getter *g)
{
    const char *path = g->cfg->out_path;
    struct stat st;
    if (!path || strcmp(path, "-") == 0) {
        g->fd = STDOUT_FILENO;
        return 0;
    }
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        if (S_ISDIR(st.st_mode)) {
            tool_error("cannot write '%s': it is a directory", path);
            return -1;
        }
        if ((g->fd = open(path, O_WRONLY | O_CLOEXEC)) < 0) {
            tool_error("cannot open '%s': %s", path, strerror(errno));
            return -1;
        }
        g->direct = 1;
        return 0;
    }
    size_t len = strlen(path) + sizeof ".part";
    if (!(g->part = malloc(len))) {
        tool_error("out of memory");
        return -1;
    }
    snprintf(g->part, len, "%s.part", path);
    g->fd = open(g->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (g->fd < 0) {
        tool_error("cannot create '%s': %s", g->part, strerror(errno));
        free(g->part);
        g->part = NULL;
        return -1;
    }
    return 0;
}

/* The status line and headers, as curl -i shows them. */
static int output_head(getter *g, int fd)
{
    coil_http_response *resp = g->resp;
    int v = coil_http_response_version(resp);
    const char *reason = coil_http_response_reason(resp);
    size_t cap = 256, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return -1;
    len = (size_t)snprintf(buf, cap, "HTTP/%d.%d %d %s\r\n", v / 10, v % 10,
                           g->http_status, reason ? reason : "");
    if (len >= cap)
        len = cap - 1;
    size_t n = coil_http_response_header_count(resp);
    for (size_t i = 0; i <= n; i++) {
        const char *name = "", *value = "";
        if (i < n && coil_http_response_header_at(resp, i, &name, &value) != 0)
            continue;
        size_t need = i < n ? strlen(name) + strlen(value) + 4 : 2;
        if (len + need + 1 > cap) {
            size_t ncap = (len + need + 1) * 2;
            char *nbuf = realloc(buf, ncap);
            if (!nbuf) {
                free(buf);
                return -1;
            }
            buf = nbuf;
            cap = ncap;
        }
        if (i < n)
            len += (size_t)snprintf(buf + len, cap - len, "%s: %s\r\n", name, value);
        else
            len += (size_t)snprintf(buf + len, cap - len, "\r\n");
    }
    int fd_saved = g->fd;
    g->fd = fd;
    int rc = output_write(g, buf, len);
    g->fd = fd_saved;
    free(buf);
    return rc;
}

/* ---- the body, as it arrives ---------------------------------------------- */

static void body_data(coil_protocol *p, const void *data, size_t len)
{
    getter *g = GETTER_OF_BODY(p);
    if (g->status >= 0)
        return;
    g->received += len;
    if (g->keep && output_write(g, data, len) != 0) {
        get_finish(g, TOOL_EXIT_FAILURE);
        coil_transport_abort_connection(p->transport);
        return;
    }
    progress_update(g);
}

static void body_lost(coil_protocol *p, const coil_failure *reason)
{
    getter *g = GETTER_OF_BODY(p);
    if (g->status >= 0)
        return;
    progress_clear(g);
    /* Only the top failure says how the body ended (its causes may hold a
     * clean close of the connection under a cut body), and a short count
     * is never whole. */
    int whole = coil_failure_domain(reason) == COIL_DOMAIN_COIL &&
                coil_failure_code(reason) == COIL_ECLOSED &&
                (g->length < 0 || g->received == (uint64_t)g->length);
    if (!whole) {
        char *why = tool_failure_text_brief(reason);
        tool_error("%s %s: the body was cut short after %" PRIu64 " bytes%s: %s",
                   g->method, g->cfg->url, g->received, g->part ? " (nothing saved)" : "",
                   why ? why : "connection lost");
        free(why);
        output_close(g, 0);
        get_finish(g, TOOL_EXIT_FAILURE);
        return;
    }
    if (output_close(g, g->keep) != 0) {
        get_finish(g, TOOL_EXIT_FAILURE);
        return;
    }
    if (g->http_status >= 400 && !g->cfg->fail_ok) {
        tool_error("%s %s: %d %s", g->method, g->cfg->url, g->http_status,
                   coil_http_response_reason(g->resp) ? coil_http_response_reason(g->resp)
                                                      : "");
        get_finish(g, EXIT_HTTP_ERROR);
        return;
    }
    get_finish(g, TOOL_EXIT_OK);
}

static void body_destroy(coil_protocol *p)
{
    /* Embedded in the getter. */
    (void)p;
}

static const coil_protocol_ops body_ops = {
    .data_received = body_data,
    .connection_lost = body_lost,
    .destroy = body_destroy,
};

/* ---- the response --------------------------------------------------------- */

static void got_response(coil_deferred *d, void *arg)
{
    getter *g = arg;
    coil_destroy_fn destroy = NULL;
    g->resp = coil_deferred_take_result(d, &destroy);
    if (!g->resp) {
        tool_error("%s %s: no response", g->method, g->cfg->url);
        get_finish(g, TOOL_EXIT_FAILURE);
        return;
    }
    g->http_status = coil_http_response_status(g->resp);
    g->length = coil_http_response_length(g->resp);
    g->started = coil_reactor_seconds(g->r);
    g->keep = g->http_status < 400 || g->cfg->fail_ok;
    if (g->keep && output_open(g) != 0) {
        get_finish(g, TOOL_EXIT_FAILURE);
        return;
    }
    if (g->cfg->include && output_head(g, g->fd >= 0 ? g->fd : STDOUT_FILENO) != 0) {
        output_close(g, 0);
        get_finish(g, TOOL_EXIT_FAILURE);
        return;
    }
    g->body = (coil_protocol){.ops = &body_ops};
    int rc = coil_http_response_deliver_body(g->resp, &g->body);
    if (rc != 0) {
        tool_error("%s %s: cannot read the body: %s", g->method, g->cfg->url,
                   coil_strerror(rc));
        output_close(g, 0);
        get_finish(g, TOOL_EXIT_FAILURE);
    }
}

/* Errors a connection attempt ends with: said as "cannot connect to
 * HOST:PORT: Connection refused". */
static int connect_errno(int e)
{
    return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH ||
           e == EADDRNOTAVAIL || e == ENOENT || e == EACCES;
}

static void request_failed(coil_deferred *d, void *arg)
{
    getter *g = arg;
    coil_failure *f = coil_deferred_take_failure(d);
    if (g->status >= 0) {
        /* Cancelled at the end (interrupted): already said. */
        coil_failure_free(f);
        return;
    }
    const coil_failure *sys = NULL;
    for (const coil_failure *c = f; c; c = coil_failure_cause(c))
        if (coil_failure_domain(c) == COIL_DOMAIN_SYSTEM &&
            connect_errno(coil_failure_code(c)))
            sys = c;
    coil_http_url *u = NULL;
    if (sys && coil_http_url_parse(g->cfg->url, &u, NULL) == 0) {
        if (strcmp(u->scheme, "http+unix") == 0)
            tool_error("cannot connect to %s: %s", u->host,
                       strerror(coil_failure_code(sys)));
        else if (strchr(u->host, ':'))
            tool_error("cannot connect to [%s]:%d: %s", u->host, u->port,
                       strerror(coil_failure_code(sys)));
        else
            tool_error("cannot connect to %s:%d: %s", u->host, u->port,
                       strerror(coil_failure_code(sys)));
        coil_http_url_free(u);
    } else if (f) {
        char *why = tool_failure_text_brief(f);
        /* "cannot connect to HOST:PORT: ..." says enough without the URL. */
        if (why && strncmp(why, "cannot connect to ", 18) == 0)
            tool_error("%s", why);
        else
            tool_error("%s %s: %s", g->method, g->cfg->url, why ? why : "out of memory");
        free(why);
        int tls = 0;
        for (const coil_failure *c = f; c; c = coil_failure_cause(c))
            tls |= coil_failure_domain(c) == COIL_DOMAIN_TLS;
        if (tls && !g->cfg->cacert && !g->cfg->insecure)
            tool_error("hint: --cacert FILE trusts the CA that signed the server's "
                       "certificate");
    } else {
        tool_error("%s %s failed", g->method, g->cfg->url);
    }
    coil_failure_free(f);
    get_finish(g, TOOL_EXIT_FAILURE);
}

#define MAX_STREAM_BODY (64u << 20) /* -d @- : read into memory, at most this */

/* A body read whole from `path` ("-": stdin) that is no regular file; NULL
 * after saying what failed. */
static coil_http_body_producer *body_from_stream(const char *path)
{
    int std = strcmp(path, "-") == 0;
    const char *name = std ? "stdin" : path;
    int fd = std ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        tool_error("cannot send '%s': %s", name, strerror(errno));
        return NULL;
    }
    size_t len = 0, cap = 64 * 1024;
    char *buf = malloc(cap);
    coil_http_body_producer *body = NULL;
    if (!buf) {
        tool_error("out of memory");
        goto out;
    }
    for (;;) {
        if (len == cap) {
            if (cap >= MAX_STREAM_BODY) {
                tool_error(
                    "cannot send '%s': more than %u MiB; give a regular file with -d "
                    "@FILE",
                    name, MAX_STREAM_BODY >> 20);
                goto out;
            }
            char *nbuf = realloc(buf, cap * 2);
            if (!nbuf) {
                tool_error("out of memory");
                goto out;
            }
            buf = nbuf;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            tool_error("cannot read '%s': %s", name, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (!(body = coil_http_body_from_bytes(buf, len)))
        tool_error("out of memory");
out:
    free(buf);
    if (!std)
        close(fd);
    return body;
}

static int get(get_config *cfg)
{
    getter g = {.cfg = cfg, .fd = -1, .status = -1, .length = -1};
    g.method = cfg->method ? cfg->method : cfg->data ? "POST" : "GET";
    g.tty = !cfg->quiet && isatty(STDERR_FILENO);
    coil_http_body_producer *body = NULL;
    coil_tls_context *tls = NULL;
    coil_http_agent *agent = NULL;
    coil_deferred *d = NULL;
    coil_failure *err = NULL;

    if (cfg->data && cfg->data[0] == '@') {
        const char *path = cfg->data + 1;
        struct stat st;
        if (strcmp(path, "-") == 0 || (stat(path, &st) == 0 && !S_ISREG(st.st_mode))) {
            /* stdin, a pipe, a FIFO: read whole (bounded), sent with its
             * length. */
            if (!(body = body_from_stream(path)))
                return TOOL_EXIT_FAILURE;
        } else if (!(body = coil_http_body_from_file(path, &err))) {
            char *why = err ? tool_failure_text_brief(err) : NULL;
            tool_error("cannot send '%s': %s", path, why ? why : "cannot open it");
            free(why);
            coil_failure_free(err);
            return TOOL_EXIT_FAILURE;
        }
    } else if (cfg->data) {
        if (!(body = coil_http_body_from_bytes(cfg->data, strlen(cfg->data)))) {
            tool_error("out of memory");
            return TOOL_EXIT_FAILURE;
        }
    }
    if (cfg->data && !cfg->have_content_type &&
        coil_http_headers_add(cfg->headers, "Content-Type",
                              "application/x-www-form-urlencoded") != 0) {
        tool_error("out of memory");
        goto out;
    }
    if (cfg->cacert || cfg->insecure) {
        struct stat st;
        coil_tls_options to = {
            .ca_file = cfg->cacert,
            /* --cacert adds to the system's trust store. */
            .ca_dir =
                cfg->cacert && stat("/etc/ssl/certs", &st) == 0 ? "/etc/ssl/certs" : NULL,
            .alpn = "http/1.1",
            .insecure_no_verify = cfg->insecure,
        };
        if (cfg->insecure)
            tool_error(
                "warning: --insecure: the server's certificate and name are not checked");
        if (coil_tls_context_new(COIL_TLS_CLIENT, &to, &tls, &err) != 0) {
            tool_error_failure(err, "cannot use --cacert '%s'",
                               cfg->cacert ? cfg->cacert : "");
            coil_failure_free(err);
            goto out;
        }
    }
    if (tool_reactor_new(&g.r) != 0)
        goto out;
    coil_http_agent_options ao = {
        .tls = tls,
        .follow_redirects = cfg->follow,
        .max_per_host = 1,
        /* One request: no connection to keep (and the server sees a clean
         * close, not an idle connection aborted at exit). */
        .no_persistent = 1,
        .user_agent = "coil-web/" COIL_VERSION_STRING,
    };
    if (coil_http_agent_new(g.r, &ao, &agent, &err) != 0) {
        if (err)
            tool_error_failure(err, "cannot make the HTTP agent");
        else
            tool_error("cannot make the HTTP agent");
        coil_failure_free(err);
        goto out;
    }
    d = coil_http_agent_request(agent, g.method, cfg->url, cfg->headers, body);
    body = NULL; /* passed in */
    if (!d) {
        tool_error("%s %s: cannot send the request (out of memory?)", g.method, cfg->url);
        goto out;
    }
    if (coil_deferred_add_callbacks(d, got_response, request_failed, &g) != 0) {
        tool_error("out of memory");
        goto out;
    }
    coil_reactor_run(g.r);
    if (g.status < 0) {
        progress_clear(&g);
        tool_error("%s %s: interrupted after %" PRIu64 " bytes%s", g.method, cfg->url,
                   g.received, g.part ? " (nothing saved)" : "");
        g.status = TOOL_EXIT_FAILURE;
    }
out:
    output_close(&g, 0); /* only when not closed already: an unfinished -o */
    if (d) {
        coil_deferred_cancel(d);
        /* A cancelled request's failure is no news. */
        if (coil_deferred_called(d) && coil_deferred_is_failure(d))
            coil_failure_free(coil_deferred_take_failure(d));
        coil_deferred_unref(d);
    }
    coil_http_response_free(g.resp);
    coil_http_agent_free(agent);
    if (body && body->ops->destroy)
        body->ops->destroy(body);
    coil_tls_context_free(tls);
    if (g.r) {
        tool_shutdown(g.r, 2.0);
        coil_reactor_free(g.r);
    }
    return g.status < 0 ? TOOL_EXIT_FAILURE : g.status;
}

/* ======================================================================= */

int main(int argc, char **argv)
{
    tool_init("coil-web", usage);
    serve_config sc = {0};
    get_config gc = {.headers = coil_http_headers_new()};
    const char *max_body = NULL, *idle = NULL, *header_timeout = NULL;
    int quiet = 0;
    const tool_option opts[] = {
        {.long_name = "root", .value = &sc.root},
        {.long_name = "no-listings", .flag = &sc.no_listings},
        {.long_name = "index", .value = &sc.index},
        {.long_name = "quiet", .short_name = 'q', .flag = &quiet},
        {.long_name = "max-body", .value = &max_body},
        {.long_name = "idle-timeout", .value = &idle},
        {.long_name = "header-timeout", .value = &header_timeout},
        {.long_name = "output", .short_name = 'o', .value = &gc.out_path},
        {.long_name = "request", .short_name = 'X', .value = &gc.method},
        {.long_name = "data", .short_name = 'd', .value = &gc.data},
        {.long_name = "header", .short_name = 'H', .each = add_header, .each_arg = &gc},
        {.long_name = "include", .short_name = 'i', .flag = &gc.include},
        {.long_name = "location", .short_name = 'L', .flag = &gc.follow},
        {.long_name = "cacert", .value = &gc.cacert},
        {.long_name = "insecure", .short_name = 'k', .flag = &gc.insecure},
        {.long_name = "fail-ok", .flag = &gc.fail_ok},
        {0},
    };
    int status;
    int n = tool_parse_args(argc, argv, opts);
    if (n == TOOL_ARGS_HELP) {
        status = tool_help();
        goto out;
    }
    if (n < 0) {
        status = -n;
        goto out;
    }
    if (!gc.headers) {
        tool_error("out of memory");
        status = TOOL_EXIT_FAILURE;
        goto out;
    }
    if (n == 0) {
        status = tool_usage_error("missing command: serve or get");
        goto out;
    }
    if (strcmp(argv[0], "serve") == 0) {
        status = TOOL_EXIT_USAGE;
        if (gc.out_path || gc.method || gc.data || coil_http_headers_count(gc.headers) ||
            gc.include || gc.follow || gc.cacert || gc.insecure || gc.fail_ok) {
            tool_usage_error("serve: -o, -X, -d, -H, -i, -L, --cacert, --insecure and "
                             "--fail-ok are for get");
            goto out;
        }
        if (n < 2) {
            tool_usage_error("serve: missing ENDPOINT (e.g. tcp:8080)");
            goto out;
        }
        if (!sc.root) {
            tool_usage_error("serve: missing --root DIR (the directory to serve)");
            goto out;
        }
        if (max_body && parse_bytes("--max-body", max_body, &sc.so.max_body) != 0)
            goto out;
        if (idle && parse_seconds("--idle-timeout", idle, &sc.so.idle_timeout) != 0)
            goto out;
        if (header_timeout &&
            parse_seconds("--header-timeout", header_timeout, &sc.so.header_timeout) != 0)
            goto out;
        sc.quiet = quiet;
        setvbuf(stdout, NULL, _IOLBF, 0);
        status = serve(n - 1, argv + 1, &sc);
        goto out;
    }
    if (strcmp(argv[0], "get") == 0) {
        status = TOOL_EXIT_USAGE;
        if (sc.root || sc.no_listings || sc.index || max_body || idle || header_timeout) {
            tool_usage_error(
                "get: --root, --no-listings, --index, --max-body, --idle-timeout "
                "and --header-timeout are for serve");
            goto out;
        }
        if (n < 2) {
            tool_usage_error("get: missing URL (e.g. http://127.0.0.1:8080/)");
            goto out;
        }
        if (n > 2) {
            tool_usage_error("get: one URL only; unexpected '%s'", argv[2]);
            goto out;
        }
        if (gc.cacert && gc.insecure) {
            tool_usage_error("get: --cacert and --insecure do not go together");
            goto out;
        }
        if (gc.out_path && !gc.out_path[0]) {
            tool_usage_error("get: -o needs a file name");
            goto out;
        }
        coil_http_url *u = NULL;
        coil_failure *err = NULL;
        if (coil_http_url_parse(argv[1], &u, &err) != 0) {
            if (err) {
                char *why = tool_failure_text(err);
                tool_usage_error("%s", why ? why : "bad URL");
                free(why);
                coil_failure_free(err);
            } else {
                tool_usage_error("bad URL '%s'", argv[1]);
            }
            goto out;
        }
        coil_http_url_free(u);
        gc.url = argv[1];
        gc.quiet = quiet;
        status = get(&gc);
        goto out;
    }
    status = tool_usage_error("unknown command '%s' (use serve or get)", argv[0]);
out:
    coil_http_headers_free(gc.headers);
    return status;
}
