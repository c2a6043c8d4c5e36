/*
 * event_echo: libevent 2.1 TCP echo server (bufferevents), a peer for coil's echo
 * benchmark.
 *
 *   event_echo PORT [HOST]     (HOST defaults to 127.0.0.1; PORT 0 picks a free port)
 *
 * Prints "listening on HOST:PORT pid PID" once listening and exits cleanly on
 * SIGINT/SIGTERM, freeing every bufferevent, the listener and the base.
 *
 * Data path: the read callback moves the whole input buffer to the output buffer with
 * evbuffer_add_buffer (no copy: chains are moved). When the output buffer exceeds
 * 1 MiB reading is disabled; the write watermark (low = 0) makes the write callback
 * fire once the output has drained, and it re-enables reading.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define OUT_HIGH_WATER (1024 * 1024) /* stop reading above this many buffered bytes */
#define OUT_LOW_WATER  0             /* write callback (resume) once drained to this */

/* Live connections, kept so that a signal can free them all. */
struct conn {
    struct bufferevent *bev;
    struct conn *prev, *next;
};

static struct event_base *base;
static struct conn conns = {NULL, &conns, &conns}; /* list head */

static void conn_free(struct conn *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
    bufferevent_free(c->bev); /* BEV_OPT_CLOSE_ON_FREE closes the socket */
    free(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct evbuffer *out = bufferevent_get_output(bev);

    evbuffer_add_buffer(out, bufferevent_get_input(bev));
    if (evbuffer_get_length(out) > OUT_HIGH_WATER)
        bufferevent_disable(bev, EV_READ);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    /* Called when the output buffer has drained to OUT_LOW_WATER. */
    if (!(bufferevent_get_enabled(bev) & EV_READ))
        bufferevent_enable(bev, EV_READ);
}

/* After the peer's EOF: free the connection once the echo has been flushed. */
static void on_write_then_close(struct bufferevent *bev, void *arg)
{
    conn_free(arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
        evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
        bufferevent_disable(bev, EV_READ);
        bufferevent_setcb(bev, NULL, on_write_then_close, on_event, c);
        return;
    }
    conn_free(c);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    struct conn *c = malloc(sizeof *c);
    if (c == NULL) {
        evutil_closesocket(fd);
        return;
    }
    c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        evutil_closesocket(fd);
        free(c);
        return;
    }
    c->next = &conns;
    c->prev = conns.prev;
    conns.prev->next = c;
    conns.prev = c;

    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW_WATER, OUT_HIGH_WATER);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    fprintf(stderr, "event_echo: accept: %s\n", evutil_socket_error_to_string(err));
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopbreak(base);
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
        fprintf(stderr, "event_echo: bad port '%s'\n", argv[1]);
        return 2;
    }
    const char *host = argc == 3 ? argv[2] : "127.0.0.1";

    signal(SIGPIPE, SIG_IGN); /* bufferevents write with writev(2), not MSG_NOSIGNAL */

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sslen;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        sslen = sizeof *sin;
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        sslen = sizeof *sin6;
    } else {
        fprintf(stderr, "event_echo: bad host '%s'\n", host);
        return 2;
    }

    base = event_base_new();
    if (base == NULL) {
        fprintf(stderr, "event_echo: event_base_new failed\n");
        return 1;
    }
    struct evconnlistener *lev = evconnlistener_new_bind(
        base, on_accept, NULL, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, -1,
        (struct sockaddr *)&ss, (int)sslen);
    if (lev == NULL) {
        perror("event_echo: bind/listen");
        return 1;
    }
    evconnlistener_set_error_cb(lev, on_accept_error);

    struct event *sig_int = evsignal_new(base, SIGINT, on_signal, NULL);
    struct event *sig_term = evsignal_new(base, SIGTERM, on_signal, NULL);
    if (sig_int == NULL || sig_term == NULL || evsignal_add(sig_int, NULL) < 0 ||
        evsignal_add(sig_term, NULL) < 0) {
        fprintf(stderr, "event_echo: cannot install signal handlers\n");
        return 1;
    }

    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&bound, &blen) < 0) {
        perror("event_echo: getsockname");
        return 1;
    }
    int bport =
        ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                          : ((struct sockaddr_in *)&bound)->sin_port);
    printf("listening on %s:%d pid %ld\n", host, bport, (long)getpid());
    fflush(stdout);

    event_base_dispatch(base);

    while (conns.next != &conns)
        conn_free(conns.next);
    evconnlistener_free(lev);
    event_free(sig_int);
    event_free(sig_term);
    event_base_free(base);
    libevent_global_shutdown();
    return 0;
}
