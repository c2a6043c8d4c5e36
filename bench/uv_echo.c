/*
 * uv_echo: libuv TCP echo server, a peer for coil's echo benchmark.
 *
 *   uv_echo PORT [HOST]        (HOST defaults to 127.0.0.1; PORT 0 picks a free port)
 *
 * Prints "listening on HOST:PORT pid PID" once listening and exits cleanly on
 * SIGINT/SIGTERM, closing every handle and the loop.
 *
 * Data path: every read lands in one shared static 64 KiB buffer (read_cb consumes it
 * completely before returning, so sharing is safe in this single-threaded loop). The
 * echo tries uv_try_write first; whatever the kernel did not take is copied into a
 * heap-allocated write request and queued with uv_write, which keeps the bytes alive
 * until its callback. uv_try_write returns UV_EAGAIN while anything is queued, so byte
 * order is preserved. When the queued bytes exceed 1 MiB the connection stops reading
 * until the queue has drained.
 */
#include <uv.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_BUF_SIZE (64 * 1024)
#define WQ_HIGH_WATER (1024 * 1024) /* stop reading above this many queued bytes */
#define WQ_LOW_WATER  0             /* resume reading once drained to this */

struct conn {
    uv_tcp_t tcp; /* first member: the handle pointer is the conn pointer */
    uv_shutdown_t shutdown_req;
    int paused;
};

struct write_req {
    uv_write_t req;
    uv_buf_t buf;
    char data[];
};

static uv_loop_t loop;
static uv_tcp_t server;
static uv_signal_t sig_int, sig_term;
static char read_buf[READ_BUF_SIZE];

static void die_uv(const char *what, int err)
{
    fprintf(stderr, "uv_echo: %s: %s\n", what, uv_strerror(err));
    exit(1);
}

static void on_conn_close(uv_handle_t *h)
{
    free((struct conn *)h);
}

static void conn_close(struct conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_conn_close);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status)
{
    struct conn *c = (struct conn *)req->handle;

    free(req); /* req is the first member of struct write_req */
    if (status < 0) {
        conn_close(c); /* no-op if already closing (UV_ECANCELED) */
        return;
    }
    if (c->paused &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) <= WQ_LOW_WATER) {
        c->paused = 0;
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
            conn_close(c);
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_close((struct conn *)req->handle);
}

static void echo(struct conn *c, const char *data, size_t len)
{
    uv_stream_t *s = (uv_stream_t *)&c->tcp;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write(s, &b, 1);

    if (n == UV_EAGAIN || n == UV_ENOSYS)
        n = 0;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if ((size_t)n == len)
        return;

    size_t rest = len - (size_t)n;
    struct write_req *w = malloc(sizeof *w + rest);
    if (w == NULL) {
        conn_close(c);
        return;
    }
    memcpy(w->data, data + n, rest);
    w->buf = uv_buf_init(w->data, (unsigned)rest);
    int err = uv_write(&w->req, s, &w->buf, 1, on_write);
    if (err < 0) {
        free(w);
        conn_close(c);
        return;
    }
    if (uv_stream_get_write_queue_size(s) > WQ_HIGH_WATER) {
        c->paused = 1;
        uv_read_stop(s);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = (struct conn *)s;

    if (nread > 0) {
        echo(c, buf->base, (size_t)nread);
        return;
    }
    if (nread == 0)
        return; /* EAGAIN: nothing read */
    if (nread == UV_EOF) {
        /* Half-close from the peer: flush what is queued, then shut down and close. */
        if (uv_shutdown(&c->shutdown_req, s, on_shutdown) == 0)
            return;
    }
    conn_close(c);
}

static void on_connection(uv_stream_t *srv, int status)
{
    if (status < 0) {
        fprintf(stderr, "uv_echo: accept: %s\n", uv_strerror(status));
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    uv_tcp_init(&loop, &c->tcp);
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

static void close_any(uv_handle_t *h, void *arg)
{
    if (uv_is_closing(h))
        return;
    if (h == (uv_handle_t *)&server || h == (uv_handle_t *)&sig_int ||
        h == (uv_handle_t *)&sig_term)
        uv_close(h, NULL);
    else
        uv_close(h, on_conn_close); /* the only other handles are connections */
}

static void on_signal(uv_signal_t *h, int signum)
{
    uv_walk(&loop, close_any, NULL);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s PORT [HOST]\n", argv[0]);
        return 2;
    }
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end != '\0' || port < 0 || port > 65535) {
        fprintf(stderr, "uv_echo: bad port '%s'\n", argv[1]);
        return 2;
    }
    const char *host = argc == 3 ? argv[2] : "127.0.0.1";

    signal(SIGPIPE, SIG_IGN); /* libuv writes with write(2), not MSG_NOSIGNAL */

    struct sockaddr_storage ss;
    int err = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss);
    if (err < 0)
        err = uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss);
    if (err < 0) {
        fprintf(stderr, "uv_echo: bad host '%s'\n", host);
        return 2;
    }

    if ((err = uv_loop_init(&loop)) < 0)
        die_uv("uv_loop_init", err);
    uv_tcp_init(&loop, &server);
    if ((err = uv_tcp_bind(&server, (struct sockaddr *)&ss, 0)) < 0)
        die_uv("bind", err);
    if ((err = uv_listen((uv_stream_t *)&server, SOMAXCONN, on_connection)) < 0)
        die_uv("listen", err); /* bind errors such as EADDRINUSE surface here */

    uv_signal_init(&loop, &sig_int);
    uv_signal_init(&loop, &sig_term);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_term, on_signal, SIGTERM);

    struct sockaddr_storage bound;
    int blen = sizeof bound;
    if ((err = uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &blen)) < 0)
        die_uv("getsockname", err);
    int bport =
        ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                          : ((struct sockaddr_in *)&bound)->sin_port);
    printf("listening on %s:%d pid %ld\n", host, bport, (long)getpid());
    fflush(stdout);

    uv_run(&loop, UV_RUN_DEFAULT);
    /* Every handle was closed by on_signal; their close callbacks have run. */
    err = uv_loop_close(&loop);
    if (err < 0)
        die_uv("uv_loop_close", err);
    uv_library_shutdown();
    return 0;
}
