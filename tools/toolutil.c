/* Shared helpers of the command-line tools; see toolutil.h. */
#include "toolutil.h"

#include <errno.h>
#include <stddef.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define INPUT_CHUNK (64 * 1024)

static const char *prog = "coil-tool";
static const char *usage_text = "";

/* ---- messages ------------------------------------------------------------ */

static void log_sink(void *ud, coil_log_level level, const char *module,
                     const char *message)
{
    fprintf(stderr, "%s: %s: %s\n", prog, module, message);
}

void tool_init(const char *name, const char *usage)
{
    prog = name;
    usage_text = usage;
    signal(SIGPIPE, SIG_IGN);
    coil_log_set_sink(log_sink, NULL);
}

const char *tool_name(void)
{
    return prog;
}

void tool_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* tool_failure_text, or with `brief` tool_failure_text_brief. */
static char *failure_join(const coil_failure *f, int brief)
{
    size_t need = 1;
    for (const coil_failure *c = f; c; c = coil_failure_cause(c))
        need += strlen(coil_failure_message(c)) + 2;
    char *s = malloc(need);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (const coil_failure *c = f; c; c = coil_failure_cause(c)) {
        const char *m = coil_failure_message(c);
        if (brief && (!*m || strstr(s, m)))
            continue;
        if (brief ? s[0] != '\0' : c != f)
            strcat(s, ": ");
        strcat(s, m);
    }
    return s;
}

char *tool_failure_text(const coil_failure *f)
{
    return failure_join(f, 0);
}

char *tool_failure_text_brief(const coil_failure *f)
{
    return failure_join(f, 1);
}

void tool_error_failure(const coil_failure *f, const char *fmt, ...)
{
    char *text = tool_failure_text(f);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, ": %s\n", text ? text : "out of memory");
    va_end(ap);
    free(text);
}

int tool_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
    va_end(ap);
    return TOOL_EXIT_USAGE;
}

int tool_bad_endpoint(coil_failure *err)
{
    char *why = tool_failure_text(err);
    coil_failure_free(err);
    tool_usage_error("%s", why ? why : "bad endpoint (out of memory describing it)");
    free(why);
    return TOOL_EXIT_USAGE;
}

int tool_help(void)
{
    fputs(usage_text, stdout);
    return TOOL_EXIT_OK;
}

/* ---- arguments ----------------------------------------------------------- */

static const tool_option *find_long(const tool_option *opts, const char *name, size_t len)
{
    for (; opts && opts->long_name; opts++)
        if (strlen(opts->long_name) == len && memcmp(opts->long_name, name, len) == 0)
            return opts;
    return NULL;
}

static const tool_option *find_short(const tool_option *opts, char c)
{
    for (; opts && opts->long_name; opts++)
        if (opts->short_name && opts->short_name == c)
            return opts;
    return NULL;
}

int tool_parse_args(int argc, char **argv, const tool_option *opts)
{
    int n = 0, options_done = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (options_done || a[0] != '-' || a[1] == '\0') {
            argv[n++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return TOOL_ARGS_HELP;
        const tool_option *o;
        const char *inline_value = NULL;
        if (a[1] == '-') {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            o = find_long(opts, a + 2, len);
            if (eq)
                inline_value = eq + 1;
        } else {
            o = find_short(opts, a[1]);
            if (a[2] != '\0')
                inline_value = a + 2;
        }
        if (!o)
            return -tool_usage_error("unknown option '%s'", a);
        if (!o->value && !o->each) {
            if (inline_value)
                return -tool_usage_error("option '--%s' takes no value", o->long_name);
            *o->flag = 1;
            continue;
        }
        if (!inline_value) {
            if (i + 1 >= argc)
                return -tool_usage_error("option '--%s' needs a value", o->long_name);
            inline_value = argv[++i];
        }
        if (o->each) {
            if (o->each(o->each_arg, inline_value) != 0)
                return -TOOL_EXIT_USAGE;
            continue;
        }
        *o->value = inline_value;
    }
    return n;
}

/* ---- the reactor ----------------------------------------------------------- */

int tool_reactor_new(coil_reactor **out)
{
    coil_reactor_options o = {0};
    o.handle_signals = 1;
    int rc = coil_reactor_new(out, &o);
    if (rc != 0)
        tool_error("cannot create the reactor: %s", coil_strerror(rc));
    return rc;
}

static int stop_cb(void *arg)
{
    coil_reactor_stop(arg);
    return 0;
}

void tool_quit(coil_reactor *r)
{
    if (coil_reactor_is_running(r)) {
        coil_reactor_stop(r); /* COIL_ENOTRUNNING when already stopping: fine */
        return;
    }
    if (coil_reactor_call_when_running(r, stop_cb, r) != 0)
        tool_error("out of memory stopping the reactor");
}

int tool_shutdown(coil_reactor *r, double seconds)
{
    int aborted = coil_reactor_shutdown(r, seconds);
    if (aborted < 0) {
        tool_error("cannot close the connections: %s", coil_strerror(aborted));
        return 0;
    }
    return aborted;
}

/* ---- listeners and output -------------------------------------------------- */

void tool_listener_describe(const coil_listener *l, const char *text, char *buf,
                            size_t size)
{
    coil_address a;
    char where[256];
    if (coil_listener_get_host(l, &a) != 0) {
        snprintf(buf, size, "%s", text);
        return;
    }
    coil_address_format(&a, where, sizeof where);
    int port = coil_address_port(&a);
    int tls = strncmp(text, "ssl:", 4) == 0 || strncmp(text, "tls:", 4) == 0;
    int ssh = strcmp(coil_listener_kind(l), "ssh") == 0;
    if (port >= 0)
        snprintf(buf, size, "%s:%d (%s%s)",
                 tls   ? "ssl"
                 : ssh ? "ssh"
                       : "tcp",
                 port, where,
                 tls   ? ", TLS"
                 : ssh ? ", SSH"
                       : "");
    else
        snprintf(buf, size, "%s", where);
}

int tool_serving_init(tool_serving *sv, int n, const char *what)
{
    memset(sv, 0, sizeof *sv);
    sv->n = n;
    sv->what = what;
    sv->eps = calloc((size_t)n, sizeof *sv->eps);
    sv->listeners = calloc((size_t)n, sizeof *sv->listeners);
    sv->names = calloc((size_t)n, sizeof *sv->names);
    if (!sv->eps || !sv->listeners || !sv->names) {
        tool_error("out of memory");
        return -1;
    }
    return 0;
}

static int serving_announce(void *arg)
{
    tool_serving *sv = arg;
    for (int i = 0; i < sv->listening; i++)
        tool_error("%s %s", sv->what, sv->names[i]);
    return 0;
}

int tool_serving_listen(tool_serving *sv, coil_reactor *r, coil_factory *f,
                        char *const *texts)
{
    for (int i = 0; i < sv->n; i++) {
        coil_failure *err = NULL;
        if (coil_endpoint_listen(r, sv->eps[i], f, &sv->listeners[i], &err) != 0) {
            tool_error_failure(err, "cannot serve on '%s'", texts[i]);
            coil_failure_free(err);
            return -1;
        }
        sv->listening = i + 1;
        char where[512];
        tool_listener_describe(sv->listeners[i], texts[i], where, sizeof where);
        if (!(sv->names[i] = strdup(where))) {
            tool_error("out of memory");
            return -1;
        }
    }
    if (coil_reactor_call_when_running(r, serving_announce, sv) != 0) {
        tool_error("out of memory");
        return -1;
    }
    return 0;
}

void tool_serving_close(tool_serving *sv)
{
    for (int i = 0; i < sv->listening; i++)
        coil_listener_close(sv->listeners[i]);
    sv->listening = 0;
}

void tool_serving_free(tool_serving *sv)
{
    for (int i = 0; i < sv->n; i++) {
        if (sv->eps)
            coil_endpoint_free(sv->eps[i]);
        if (sv->names)
            free(sv->names[i]);
    }
    free(sv->eps);
    free(sv->listeners);
    free(sv->names);
    memset(sv, 0, sizeof *sv);
}

int tool_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                /* A non-blocking stdout (shared with a terminal): wait. */
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                poll(&pfd, 1, -1);
                continue;
            }
            return errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- input ----------------------------------------------------------------- */

struct tool_input {
    coil_reactor *r;
    int fd;
    const tool_input_ops *ops;
    void *arg;
    coil_watch *w;     /* watched mode */
    coil_timer *timer; /* polled mode: the next chunk's read */
    int paused;
    int finished; /* EOF or error reported */
    int depth;    /* callbacks on the stack */
    int dead;     /* freed inside a callback */
    char buf[INPUT_CHUNK];
};

static void input_stop(tool_input *in)
{
    if (in->w) {
        coil_watch_free(in->w);
        in->w = NULL;
    }
    if (in->timer) {
        coil_timer_cancel(in->timer);
        coil_timer_release(in->timer);
        in->timer = NULL;
    }
}

/* Read one chunk and report it. Returns 0 when `in` is still usable. */
static int input_read(tool_input *in)
{
    ssize_t n;
    do
        n = read(in->fd, in->buf, sizeof in->buf);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    int err = n < 0 ? errno : 0;
    in->depth++;
    if (n > 0) {
        in->ops->on_data(in->arg, in->buf, (size_t)n);
    } else {
        in->finished = 1;
        input_stop(in);
        if (n == 0)
            in->ops->on_eof(in->arg);
        else
            in->ops->on_error(in->arg, err);
    }
    if (--in->depth == 0 && in->dead) {
        free(in);
        return -1;
    }
    return 0;
}

static void input_io(void *arg, int fd, unsigned events)
{
    input_read(arg);
}

static int input_tick(void *arg)
{
    tool_input *in = arg;
    coil_timer_release(in->timer);
    in->timer = NULL;
    if (input_read(in) == 0 && !in->finished && !in->paused && !in->timer)
        in->timer = coil_reactor_call_later(in->r, 0, input_tick, in);
    return 0;
}

tool_input *tool_input_new(coil_reactor *r, int fd, const tool_input_ops *ops, void *arg)
{
    tool_input *in = calloc(1, sizeof *in);
    if (!in) {
        tool_error("out of memory reading fd %d", fd);
        return NULL;
    }
    in->r = r;
    in->fd = fd;
    in->ops = ops;
    in->arg = arg;
    struct stat st;
    int polled = fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
    /* epoll refuses regular files and some devices (/dev/null): read those
     * a chunk per pass instead. */
    if (!polled && coil_reactor_watch_fd(r, fd, COIL_IO_READ, input_io, in, &in->w) == 0)
        return in;
    in->timer = coil_reactor_call_later(r, 0, input_tick, in);
    if (!in->timer) {
        tool_error("out of memory reading fd %d", fd);
        free(in);
        return NULL;
    }
    return in;
}

void tool_input_pause(tool_input *in)
{
    if (in->paused || in->finished)
        return;
    in->paused = 1;
    if (in->w && coil_watch_set_events(in->w, 0) != 0)
        tool_error("cannot pause reading fd %d", in->fd);
    if (in->timer) {
        coil_timer_cancel(in->timer);
        coil_timer_release(in->timer);
        in->timer = NULL;
    }
}

void tool_input_resume(tool_input *in)
{
    if (!in->paused || in->finished)
        return;
    in->paused = 0;
    if (in->w) {
        if (coil_watch_set_events(in->w, COIL_IO_READ) != 0)
            tool_error("cannot resume reading fd %d", in->fd);
    } else if (!in->timer) {
        in->timer = coil_reactor_call_later(in->r, 0, input_tick, in);
        if (!in->timer)
            tool_error("out of memory reading fd %d", in->fd);
    }
}

void tool_input_free(tool_input *in)
{
    if (!in || in->dead)
        return;
    input_stop(in);
    in->finished = 1;
    if (in->depth > 0)
        in->dead = 1;
    else
        free(in);
}

/* ---- a client driven by stdin ---------------------------------------------- */

static void client_pause(coil_producer *pp)
{
    tool_client *c = (tool_client *)((char *)pp - offsetof(tool_client, producer));
    if (c->in)
        tool_input_pause(c->in);
}

static void client_resume(coil_producer *pp)
{
    tool_client *c = (tool_client *)((char *)pp - offsetof(tool_client, producer));
    if (c->in)
        tool_input_resume(c->in);
}

static const coil_producer_ops client_producer_ops = {
    .pause_producing = client_pause,
    .resume_producing = client_resume,
};

static coil_protocol *client_build(coil_factory *f, const coil_address *peer)
{
    (void)peer;
    tool_client *c = (tool_client *)f;
    c->protocol = c->ops->build(c);
    return c->protocol;
}

static void client_failed(coil_factory *f, coil_connector *k, const coil_failure *reason)
{
    (void)k;
    tool_client *c = (tool_client *)f;
    tool_error_failure(reason, "cannot connect to %s", c->endpoint);
    tool_client_finish(c, TOOL_EXIT_FAILURE);
}

static const coil_factory_ops client_factory_ops = {
    .build_protocol = client_build,
    .connection_failed = client_failed,
};

void tool_client_init(tool_client *c, const tool_client_ops *ops, const char *endpoint)
{
    memset(c, 0, sizeof *c);
    c->f.ops = &client_factory_ops;
    c->producer.ops = &client_producer_ops;
    c->ops = ops;
    c->endpoint = endpoint;
    c->status = -1;
}

coil_transport *tool_client_transport(const tool_client *c)
{
    return c->protocol ? c->protocol->transport : NULL;
}

void tool_client_finish(tool_client *c, int status)
{
    if (c->status < 0)
        c->status = status;
    tool_input_free(c->in);
    c->in = NULL;
    tool_quit(c->r);
}

void tool_client_fail(tool_client *c)
{
    tool_client_finish(c, TOOL_EXIT_FAILURE);
    coil_transport *t = tool_client_transport(c);
    if (t)
        coil_transport_abort_connection(t);
}

void tool_client_start_input(tool_client *c, const tool_input_ops *ops, void *arg)
{
    if (c->status < 0 && !(c->in = tool_input_new(c->r, STDIN_FILENO, ops, arg)))
        tool_client_fail(c);
}

void tool_client_attach(tool_client *c, const tool_input_ops *ops, void *arg)
{
    coil_transport *t = tool_client_transport(c);
    int rc = coil_transport_register_producer(t, &c->producer, 1);
    if (rc != 0) {
        tool_error("cannot use the connection to %s: %s", c->endpoint, coil_strerror(rc));
        tool_client_fail(c);
        return;
    }
    if (ops)
        tool_client_start_input(c, ops, arg);
}

int tool_client_run(tool_client *c)
{
    coil_endpoint *e = NULL;
    coil_failure *err = NULL;
    if (coil_endpoint_client(c->endpoint, &e, &err) != 0)
        return tool_bad_endpoint(err);
    if (tool_reactor_new(&c->r) != 0) {
        coil_endpoint_free(e);
        return TOOL_EXIT_FAILURE;
    }
    if (coil_endpoint_connect(c->r, e, &c->f, &c->connector, &err) != 0) {
        tool_error_failure(err, "cannot connect to %s", c->endpoint);
        coil_failure_free(err);
        c->status = TOOL_EXIT_FAILURE;
    } else {
        coil_reactor_run(c->r);
    }
    if (c->status < 0)
        c->status = c->ops->interrupted(c);
    tool_input_free(c->in);
    c->in = NULL;
    if (tool_client_transport(c))
        coil_transport_abort_connection(tool_client_transport(c));
    /* A TLS close waits for the server's close_notify, bounded. */
    tool_shutdown(c->r, 6.0);
    coil_connector_free(c->connector);
    coil_reactor_free(c->r);
    c->r = NULL;
    coil_endpoint_free(e);
    return c->status;
}
