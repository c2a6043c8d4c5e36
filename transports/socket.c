/* Sockets: connections, listeners and connectors shared by TCP and UNIX. */
#include "socket.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <coil/log.h>
#include <coil/plugin.h>

#define LOG_MODULE        "socket"
#define READ_SIZE         (64 * 1024)
#define ACCEPTS_PER_EVENT 64
/* After an accept error that is not about one connection (out of
 * descriptors, buffers or memory, refused by policy): pause accepting this
 * long, doubling up to the most while the errors go on. */
#define ACCEPT_PAUSE_MIN 0.1
#define ACCEPT_PAUSE_MAX 1.0

int (*coil__accept_hook)(int fd, struct sockaddr *addr, socklen_t *len, int flags);

/* ---- factories ---------------------------------------------------------------- */

void coil_factory_do_start(coil_factory *f)
{
    if (f->users++ == 0 && f->ops->start)
        f->ops->start(f);
}

void coil_factory_do_stop(coil_factory *f)
{
    if (f->users > 0 && --f->users == 0 && f->ops->stop)
        f->ops->stop(f);
}

/* ---- connections ---------------------------------------------------------------- */

typedef struct sock_connector sock_connector;

typedef struct sock_conn {
    coil__stream s; /* first */
    int fd;
    coil_watch *w;
    unsigned events;
    sock_connector *connector;
    int layered;           /* the connector's layer is our protocol and tells
                              it what happens (see layer_events) */
    int layer_up;          /* ... it said up, not yet lost */
    coil_transport *upper; /* that layer's transport, once up */
    /* The peer's address, kept from accept (or read before closing), so
     * get_peer still answers once the socket is closed: a message about a
     * failed handshake names the peer. */
    coil_address peer;
    int peer_known;
} sock_conn;

struct sock_connector {
    coil_connector base; /* first */
    coil_reactor *r;
    const coil_transport_ops *ops;
    coil_factory *f;
    struct sockaddr_storage addr, bind_addr;
    socklen_t addrlen, bind_len;
    char desc[160];
    double timeout;
    coil__sock_options opts;
    int fd;
    coil_watch *w;
    coil_timer *timer;
    sock_conn *conn;
    int started;           /* factory do_start done */
    coil_failure *error;   /* every attempt fails with it (unresolvable) */
    coil_failure *pending; /* a failure found at once, reported from the loop */
    coil_layer *layer;     /* runs on each connection (ours) */
    /* A host name resolved before each attempt (NULL: `addr` is fixed). */
    char *host;
    coil__resolved *alts; /* what it resolved to; alts->addrs[alt_next] next */
    size_t alt_next;
    int port;
    double resolve_timeout;
    coil_resolver_fn resolver;
    void *resolver_arg;
    coil_deferred *resolving; /* borrowed: the pool holds it until it fires */
};

static void update_events(sock_conn *c)
{
    if (c->w && coil_watch_set_events(c->w, c->events) != 0)
        coil_log(COIL_LOG_ERROR, LOG_MODULE, "cannot change the events of fd %d", c->fd);
}

static ssize_t sock_send(coil__stream *s, const struct iovec *iov, int iovcnt)
{
    sock_conn *c = (sock_conn *)s;
    struct msghdr msg = {0};
    msg.msg_iov = (struct iovec *)iov;
    msg.msg_iovlen = (size_t)iovcnt;
    for (;;) {
        /* One piece (the common echo case): send, which skips sendmsg's
         * copying in of the header and iovec. */
        ssize_t n = iovcnt == 1
                        ? send(c->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
                        : sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -errno;
    }
}

/* sendfile has no MSG_NOSIGNAL: a peer gone in the middle would raise
 * SIGPIPE and kill a program that does not ignore it. The signal is blocked
 * on this thread around the call, and one it raised is taken off the
 * pending set before the mask is restored (a SIGPIPE already pending for
 * another reason is left alone). */
static ssize_t sendfile_nosignal(int out, int in, off_t *off, size_t len)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigset_t pending;
    int was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    ssize_t n = sendfile(out, in, off, len);
    int err = errno;
    if (n < 0 && err == EPIPE && !was_pending) {
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return n;
}

static ssize_t sock_send_file(coil__stream *s, int fd, off_t offset, size_t len)
{
    sock_conn *c = (sock_conn *)s;
    for (;;) {
        off_t off = offset;
        ssize_t n = sendfile_nosignal(c->fd, fd, &off, len);
        if (n > 0)
            return n;
        if (n == 0)
            return -ENODATA; /* the file ended before offset + len */
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -errno;
    }
}

static void sock_want_write(coil__stream *s, int on)
{
    sock_conn *c = (sock_conn *)s;
    unsigned ev = on ? c->events | COIL_IO_WRITE : c->events & ~COIL_IO_WRITE;
    if (ev != c->events) {
        c->events = ev;
        update_events(c);
    }
}

static void sock_set_reading(coil__stream *s, int on)
{
    sock_conn *c = (sock_conn *)s;
    unsigned ev = on ? c->events | COIL_IO_READ : c->events & ~COIL_IO_READ;
    if (ev != c->events) {
        c->events = ev;
        update_events(c);
    }
}

static int sock_shutdown_write(coil__stream *s)
{
    sock_conn *c = (sock_conn *)s;
    return shutdown(c->fd, SHUT_WR) == 0 || errno == ENOTCONN ? 0 : -errno;
}

static void sock_close(coil__stream *s, int abort)
{
    sock_conn *c = (sock_conn *)s;
    if (c->fd < 0)
        return;
    if (!c->peer_known) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0 &&
            coil_address_from_sockaddr(&c->peer, (struct sockaddr *)&ss, len) == 0)
            c->peer_known = 1;
    }
    if (abort) {
        /* Reset, so the peer learns at once and nothing queued lingers. */
        struct linger l = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    coil_watch_free(c->w);
    c->w = NULL;
    close(c->fd);
    c->fd = -1;
}

static void sock_lost(coil__stream *s, const coil_failure *reason)
{
    sock_conn *c = (sock_conn *)s;
    sock_connector *k = c->connector;
    if (!k)
        return;
    k->conn = NULL;
    c->connector = NULL;
    if (c->layered && !c->layer_up) {
        /* The layer ended without a word (it should report first). */
        if (k->f->ops->connection_failed)
            k->f->ops->connection_failed(k->f, &k->base, reason);
    } else if (k->f->ops->connection_lost) {
        k->f->ops->connection_lost(k->f, &k->base, reason);
    }
}

/* ---- a layer on a connector's connection -------------------------------------- */

static void layer_up(coil_transport *lower, coil_transport *top)
{
    sock_conn *c = (sock_conn *)lower;
    sock_connector *k = c->connector;
    if (c->layer_up || !c->layered)
        return;
    c->upper = top;
    c->layer_up = 1;
    if (k && k->f->ops->connected)
        k->f->ops->connected(k->f, &k->base, top);
}

static void layer_failed(coil_transport *lower, const coil_failure *reason)
{
    sock_conn *c = (sock_conn *)lower;
    sock_connector *k = c->connector;
    if (!k || c->layer_up)
        return;
    k->conn = NULL;
    c->connector = NULL;
    if (k->f->ops->connection_failed)
        k->f->ops->connection_failed(k->f, &k->base, reason);
}

static void layer_lost(coil_transport *lower, const coil_failure *reason)
{
    sock_conn *c = (sock_conn *)lower;
    sock_connector *k = c->connector;
    c->upper = NULL;
    if (!k || !c->layer_up)
        return;
    k->conn = NULL;
    c->connector = NULL;
    if (k->f->ops->connection_lost)
        k->f->ops->connection_lost(k->f, &k->base, reason);
}

static const coil_layer_events layer_events = {layer_up, layer_failed, layer_lost};

static void sock_free(coil__stream *s)
{
    free(s);
}

static int sock_name(const coil__stream *s, coil_address *out, int peer)
{
    const sock_conn *c = (const sock_conn *)s;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    memset(out, 0, sizeof *out);
    if (peer && c->peer_known) {
        *out = c->peer;
        return 0;
    }
    if (c->fd < 0)
        return COIL_ECLOSED;
    int rc = peer ? getpeername(c->fd, (struct sockaddr *)&ss, &len)
                  : getsockname(c->fd, (struct sockaddr *)&ss, &len);
    if (rc != 0)
        return COIL_ESYSTEM;
    return coil_address_from_sockaddr(out, (struct sockaddr *)&ss, len);
}

static int sock_get_peer(const coil__stream *s, coil_address *out)
{
    return sock_name(s, out, 1);
}

static int sock_get_host(const coil__stream *s, coil_address *out)
{
    return sock_name(s, out, 0);
}

static void sock_info(const coil__stream *s, coil_transport_info *out)
{
    const sock_conn *c = (const sock_conn *)s;
    struct ucred cred;
    socklen_t len = sizeof cred;
    int outq = 0;
    if (c->fd >= 0 && ioctl(c->fd, SIOCOUTQ, &outq) == 0 && outq > 0)
        out->unacked = (size_t)outq;
    if (c->fd >= 0 && strcmp(out->kind, "unix") == 0 &&
        getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        out->peer_pid = cred.pid;
        out->peer_uid = (long)cred.uid;
        out->peer_gid = (long)cred.gid;
    }
}

static const coil__stream_lower sock_lower = {
    .send = sock_send,
    .want_write = sock_want_write,
    .set_reading = sock_set_reading,
    .shutdown_write = sock_shutdown_write,
    .close = sock_close,
    .lost = sock_lost,
    .free = sock_free,
    .get_peer = sock_get_peer,
    .get_host = sock_get_host,
    .info = sock_info,
    .send_file = sock_send_file,
};

static coil_failure *lost_failure(int err)
{
    return coil_failure_wrap(coil_failure_from_errno(err, "socket error"),
                             COIL_DOMAIN_COIL, COIL_ECONNLOST, "connection lost");
}

static void sock_io(void *arg, int fd, unsigned events)
{
    sock_conn *c = arg;
    coil__stream *s = &c->s;
    coil__stream_hold(s);
    if (events & COIL_IO_READ) {
        /* One read per event: no buffer is kept between reads, and other
         * connections get their turn (the watch is level-triggered). */
        unsigned char buf[READ_SIZE];
        ssize_t n;
        do
            n = read(fd, buf, sizeof buf);
        while (n < 0 && errno == EINTR);
        if (n > 0)
            coil__stream_data(s, buf, (size_t)n);
        else if (n == 0)
            coil__stream_eof(s);
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            coil__stream_lost(s, lost_failure(errno));
    }
    if ((events & COIL_IO_WRITE) && c->fd >= 0)
        coil__stream_writable(s);
    if ((events & COIL_IO_ERROR) && !(events & COIL_IO_READ) && c->fd >= 0) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err)
            coil__stream_lost(s, lost_failure(err));
    }
    coil__stream_release(s);
}

/* The marks the options ask for: 0 takes the default (low: a quarter of
 * high, as the defaults are). */
static void sock_marks(const coil__sock_options *o, size_t *high, size_t *low)
{
    *high = o && o->high_water ? o->high_water : COIL__STREAM_HIGH_WATER;
    *low = o && o->low_water ? o->low_water : *high / 4;
}

int coil__sock_marks_valid(size_t high_water, size_t low_water)
{
    coil__sock_options o = {0, 0, high_water, low_water};
    size_t high, low;
    sock_marks(&o, &high, &low);
    return low <= high;
}

static void apply_options(int fd, const coil_transport_ops *ops,
                          const coil__sock_options *o)
{
    int one = 1;
    if (strcmp(ops->kind, "tcp") == 0 && (!o || o->no_delay >= 0))
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (o && o->keepalive)
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}

/* coil__sock_conn_new, with the peer's address when known (accept). */
static coil_transport *sock_conn_create(coil_reactor *r, const coil_transport_ops *ops,
                                        int fd, coil_protocol *p,
                                        sock_connector *connector,
                                        const coil__sock_options *o,
                                        const coil_address *peer)
{
    sock_conn *c = calloc(1, sizeof *c);
    if (!c || coil_reactor_watch_fd(r, fd, 0, sock_io, c, &c->w) != 0) {
        free(c);
        close(fd);
        if (p && p->ops->destroy)
            p->ops->destroy(p);
        return NULL;
    }
    apply_options(fd, ops, o);
    c->fd = fd;
    if (peer && peer->kind != COIL_ADDR_NONE) {
        c->peer = *peer;
        c->peer_known = 1;
    }
    c->connector = connector;
    c->layered = connector && connector->layer;
    coil__stream_init(&c->s, ops, &sock_lower, r, p);
    if (o && (o->high_water || o->low_water)) {
        size_t high, low;
        sock_marks(o, &high, &low);
        c->s.high_water = high;
        c->s.low_water = low;
    }
    coil__stream *s = &c->s;
    coil__stream_hold(s);
    coil__stream_connected(s); /* turns reading on */
    coil__stream_release(s);
    return &c->s.base;
}

coil_transport *coil__sock_conn_new(coil_reactor *r, const coil_transport_ops *ops,
                                    int fd, coil_protocol *p, const coil__sock_options *o)
{
    return sock_conn_create(r, ops, fd, p, NULL, o, NULL);
}

/* ---- listeners -------------------------------------------------------------- */

typedef struct sock_listener {
    coil_listener base; /* first */
    coil_reactor *r;
    const coil_transport_ops *ops;
    coil_factory *f;
    coil__sock_options opts;
    int fd;
    int spare_fd; /* closed to accept-and-drop when out of descriptors */
    coil_watch *w;
    char *unlink_path;
    coil_timer *retry;
    double pause;             /* the next pause after an accept error (0: the least) */
    coil_log_limit log_limit; /* accept errors: a few lines, then a count */
    coil_layer *layer;        /* runs on each connection (ours) */
} sock_listener;

static int sock_listener_get_host(const coil_listener *base, coil_address *out);

static int resume_accepting(void *arg)
{
    sock_listener *l = arg;
    coil_timer_release(l->retry);
    l->retry = NULL;
    if (coil_watch_set_events(l->w, COIL_IO_READ) != 0)
        coil_log(COIL_LOG_ERROR, LOG_MODULE, "cannot resume accepting on fd %d", l->fd);
    return 0;
}

/* Errors about one pending connection, not the listener: Linux passes a
 * connection's pending network error to accept (see accept(2)). The next
 * connection may be fine: go on accepting. */
static int accept_error_transient(int err)
{
    switch (err) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case ETIMEDOUT:
        return 1;
    default:
        return 0;
    }
}

/* Any other error (out of descriptors, ENOBUFS, ENOMEM, EPERM, or one we
 * do not know): the socket stays readable and accepting again at once
 * would spin, so pause accepting for a while, longer while it goes on. */
static void accept_failed(sock_listener *l, int err)
{
    double pause = l->pause > 0 ? l->pause : ACCEPT_PAUSE_MIN;
    char where[160] = "?";
    coil_address a;
    if (sock_listener_get_host(&l->base, &a) == 0)
        coil_address_format(&a, where, sizeof where);
    if (err == EMFILE || err == ENFILE) {
        /* Accept the waiting connection on the spare descriptor and close it
         * at once, so the client hears a close instead of waiting. */
        if (l->spare_fd >= 0) {
            close(l->spare_fd);
            int fd = accept(l->fd, NULL, NULL);
            if (fd >= 0)
                close(fd);
            l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        }
        coil_log_ratelimited(&l->log_limit, coil_reactor_seconds(l->r), COIL_LOG_WARN,
                             LOG_MODULE,
                             "out of file descriptors accepting connections on %s (%s); "
                             "pausing accept for %.1f s",
                             where, strerror(err), pause);
    } else {
        coil_log_ratelimited(&l->log_limit, coil_reactor_seconds(l->r), COIL_LOG_WARN,
                             LOG_MODULE,
                             "accept failed on %s: %s; pausing accept for %.1f s", where,
                             strerror(err), pause);
    }
    if (l->retry)
        return; /* already paused */
    if (coil_watch_set_events(l->w, 0) != 0)
        return;
    l->retry = coil_reactor_call_later(l->r, pause, resume_accepting, l);
    if (!l->retry) {
        /* No timer, no pause: better a busy listener than a dead one. */
        if (coil_watch_set_events(l->w, COIL_IO_READ) != 0)
            coil_log(COIL_LOG_ERROR, LOG_MODULE, "cannot resume accepting on fd %d",
                     l->fd);
        return;
    }
    l->pause = pause * 2 < ACCEPT_PAUSE_MAX ? pause * 2 : ACCEPT_PAUSE_MAX;
}

static void listener_io(void *arg, int fd, unsigned events)
{
    sock_listener *l = arg;
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
        int cfd = coil__accept_hook
                      ? coil__accept_hook(fd, (struct sockaddr *)&ss, &len, flags)
                      : accept4(fd, (struct sockaddr *)&ss, &len, flags);
        if (cfd < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK)
                return;
            if (accept_error_transient(err)) {
                coil_log(COIL_LOG_DEBUG, LOG_MODULE, "accept: %s; accepting the next",
                         strerror(err));
                continue;
            }
            accept_failed(l, err);
            return;
        }
        l->pause = 0; /* accepting again: the next error pauses briefly */
        coil_address peer;
        if (coil_address_from_sockaddr(&peer, (struct sockaddr *)&ss, len) != 0)
            memset(&peer, 0, sizeof peer);
        coil_protocol *p = l->f->ops->build_protocol(l->f, &peer);
        if (p && l->layer)
            p = l->layer->ops->wrap(l->layer, p, NULL, NULL); /* NULL: destroyed p */
        if (!p) {
            close(cfd);
            continue;
        }
        sock_conn_create(l->r, l->ops, cfd, p, NULL, &l->opts, &peer);
    }
}

static void sock_listener_close(coil_listener *base);
static int sock_listener_set_layer(coil_listener *base, coil_layer *layer);

static const coil_listener_ops tcp_listener_ops = {
    .kind = "tcp",
    .get_host = sock_listener_get_host,
    .set_layer = sock_listener_set_layer,
    .close = sock_listener_close,
};

static const coil_listener_ops unix_listener_ops = {
    .kind = "unix",
    .get_host = sock_listener_get_host,
    .set_layer = sock_listener_set_layer,
    .close = sock_listener_close,
};

int coil__listener_new(coil_reactor *r, const coil_transport_ops *ops, int fd,
                       coil_factory *f, const coil__sock_options *o,
                       const char *unlink_path, coil_listener **out, coil_failure **err)
{
    sock_listener *l = calloc(1, sizeof *l);
    if (!l)
        goto oom;
    l->base.ops = strcmp(ops->kind, "unix") == 0 ? &unix_listener_ops : &tcp_listener_ops;
    l->r = r;
    l->ops = ops;
    l->f = f;
    l->fd = fd;
    if (o)
        l->opts = *o;
    l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    l->log_limit = (coil_log_limit)COIL_LOG_LIMIT_INIT(10.0, 5);
    if (unlink_path && !(l->unlink_path = strdup(unlink_path)))
        goto oom;
    if (coil_reactor_watch_fd(r, fd, COIL_IO_READ, listener_io, l, &l->w) != 0)
        goto oom;
    coil_factory_do_start(f);
    *out = &l->base;
    return 0;
oom:
    if (l) {
        if (l->spare_fd >= 0)
            close(l->spare_fd);
        free(l->unlink_path);
        free(l);
    }
    close(fd);
    if (err)
        *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory listening");
    return COIL_ENOMEM;
}

static int sock_listener_get_host(const coil_listener *base, coil_address *out)
{
    const sock_listener *l = (const sock_listener *)base;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(l->fd, (struct sockaddr *)&ss, &len) != 0)
        return COIL_ESYSTEM;
    return coil_address_from_sockaddr(out, (struct sockaddr *)&ss, len);
}

static int sock_listener_set_layer(coil_listener *base, coil_layer *layer)
{
    sock_listener *l = (sock_listener *)base;
    if (l->layer) {
        layer->ops->free(layer);
        return COIL_EBUSY;
    }
    l->layer = layer;
    return 0;
}

static void sock_listener_close(coil_listener *base)
{
    sock_listener *l = (sock_listener *)base;
    coil_timer_cancel(l->retry);
    coil_timer_release(l->retry);
    coil_watch_free(l->w);
    close(l->fd);
    if (l->spare_fd >= 0)
        close(l->spare_fd);
    if (l->unlink_path)
        unlink(l->unlink_path);
    free(l->unlink_path);
    if (l->layer)
        l->layer->ops->free(l->layer);
    coil_factory_do_stop(l->f);
    free(l);
}

/* ---- connectors -------------------------------------------------------------- */

static void connector_reset(sock_connector *k)
{
    coil_failure_free(k->pending);
    k->pending = NULL;
    if (k->resolving) {
        /* Cleared first: the step that runs inside cancel sees it stale. */
        coil_deferred *d = k->resolving;
        k->resolving = NULL;
        coil_deferred_cancel(d);
    }
    if (k->timer) {
        coil_timer_cancel(k->timer);
        coil_timer_release(k->timer);
        k->timer = NULL;
    }
    if (k->w) {
        coil_watch_free(k->w);
        k->w = NULL;
    }
    if (k->fd >= 0) {
        close(k->fd);
        k->fd = -1;
    }
}

static void connect_failed(sock_connector *k, coil_failure *reason)
{
    connector_reset(k);
    if (k->f->ops->connection_failed)
        k->f->ops->connection_failed(k->f, &k->base, reason);
    coil_failure_free(reason);
}

static int deliver_pending(void *arg)
{
    sock_connector *k = arg;
    coil_timer_release(k->timer);
    k->timer = NULL;
    coil_failure *reason = k->pending;
    k->pending = NULL;
    connect_failed(k, reason);
    return 0;
}

/* A failure found inside coil_connector_connect (refused at once by a UNIX
 * socket, bind failed, no address) reaches the factory from the loop, as
 * every other failure does, never before the connect call has returned. */
static void fail_soon(sock_connector *k, coil_failure *reason)
{
    connector_reset(k);
    k->pending = reason;
    k->timer = coil_reactor_call_later(k->r, 0, deliver_pending, k);
    if (!k->timer) {
        k->pending = NULL;
        connect_failed(k, reason); /* out of memory: at once rather than never */
    }
}

static void connect_socket(sock_connector *k);

/* The name has another address to try after `why`: start on it (`why` is
 * freed; 1). 0 when none is left (`why` is the caller's still). As
 * Twisted's HostnameEndpoint and curl do, so "localhost" reaches a server
 * on 127.0.0.1 when ::1 comes first and refuses. */
static int try_next_address(sock_connector *k, coil_failure *why)
{
    if (!k->alts || k->alt_next >= k->alts->count)
        return 0;
    const coil__resolved_addr *a = &k->alts->addrs[k->alt_next++];
    coil_log(COIL_LOG_DEBUG, LOG_MODULE, "%s; trying %s, the next address of '%s'",
             coil_failure_message(why), a->desc, k->host ? k->host : "");
    coil_failure_free(why);
    connector_reset(k);
    memcpy(&k->addr, &a->ss, a->len);
    k->addrlen = a->len;
    snprintf(k->desc, sizeof k->desc, "%s", a->desc);
    connect_socket(k);
    return 1;
}

static int connect_timeout(void *arg)
{
    sock_connector *k = arg;
    coil_timer_release(k->timer);
    k->timer = NULL;
    coil_failure *f =
        coil_failure_new(COIL_DOMAIN_COIL, COIL_ETIMEDOUT,
                         "connect to %s timed out after %g s", k->desc, k->timeout);
    if (!try_next_address(k, f))
        connect_failed(k, f);
    return 0;
}

static void connected(sock_connector *k)
{
    int fd = k->fd;
    k->fd = -1;
    coil_watch_free(k->w);
    k->w = NULL;
    if (k->timer) {
        coil_timer_cancel(k->timer);
        coil_timer_release(k->timer);
        k->timer = NULL;
    }
    coil_address peer;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0 ||
        coil_address_from_sockaddr(&peer, (struct sockaddr *)&ss, len) != 0)
        memset(&peer, 0, sizeof peer);
    coil_protocol *p = k->f->ops->build_protocol(k->f, &peer);
    if (p && k->layer)
        p = k->layer->ops->wrap(k->layer, p, k->desc, &layer_events);
    if (!p) {
        close(fd);
        if (k->f->ops->connection_failed) {
            coil_failure *f =
                coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED,
                                 "connection to %s refused by the factory", k->desc);
            k->f->ops->connection_failed(k->f, &k->base, f);
            coil_failure_free(f);
        }
        return;
    }
    coil_transport *t = sock_conn_create(k->r, k->ops, fd, p, k, &k->opts, NULL);
    if (t && ((sock_conn *)t)->connector == k) {
        k->conn = (sock_conn *)t;
        if (!k->layer && k->f->ops->connected)
            k->f->ops->connected(k->f, &k->base, t);
    }
}

static void connector_io(void *arg, int fd, unsigned events)
{
    sock_connector *k = arg;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err == 0) {
        connected(k);
        return;
    }
    coil_failure *f = coil_failure_from_errno(err, "connect to %s failed", k->desc);
    if (!try_next_address(k, f))
        connect_failed(k, f);
}

static void start_resolving(sock_connector *k);

static int sock_connector_connect(coil_connector *base)
{
    sock_connector *k = (sock_connector *)base;
    if (k->fd >= 0 || k->conn || k->pending || k->resolving)
        return COIL_ESTATE;
    if (k->f->ops->started_connecting)
        k->f->ops->started_connecting(k->f, &k->base);
    if (k->error) {
        fail_soon(k, coil_failure_copy(k->error));
        return 0;
    }
    if (k->host)
        start_resolving(k);
    else
        connect_socket(k);
    return 0;
}

/* Open the socket and start connecting to k->addr. */
static void connect_socket(sock_connector *k)
{
    int fd = socket(k->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        coil_failure *f = coil_failure_from_errno(errno, "socket for %s failed", k->desc);
        if (!try_next_address(k, f))
            fail_soon(k, f);
        return;
    }
    k->fd = fd;
    if (k->bind_len && bind(fd, (struct sockaddr *)&k->bind_addr, k->bind_len) != 0) {
        fail_soon(k, coil_failure_from_errno(
                         errno, "binding before connecting to %s failed", k->desc));
        return;
    }
    int rc;
    do
        rc = connect(fd, (struct sockaddr *)&k->addr, k->addrlen);
    while (rc != 0 && errno == EINTR);
    if (rc != 0 && errno != EINPROGRESS && errno != EAGAIN) {
        coil_failure *f = coil_failure_from_errno(errno, "connect to %s failed", k->desc);
        if (!try_next_address(k, f))
            fail_soon(k, f);
        return;
    }
    if (coil_reactor_watch_fd(k->r, fd, COIL_IO_WRITE, connector_io, k, &k->w) != 0) {
        fail_soon(k, coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                      "out of memory connecting to %s", k->desc));
        return;
    }
    k->timer = coil_reactor_call_later(k->r, k->timeout, connect_timeout, k);
}

/* Say which name: the resolver's own failures do; the pool's (timed out,
 * cancelled by a shutdown, queue full) do not. */
static coil_failure *resolve_failure(sock_connector *k, coil_failure *f)
{
    if (coil_failure_check(f, COIL_DOMAIN_COIL, COIL_ETIMEDOUT))
        return coil_failure_wrap(f, COIL_DOMAIN_COIL, COIL_ETIMEDOUT,
                                 "resolving host name '%s' timed out after %g s", k->host,
                                 k->resolve_timeout);
    int code = coil_failure_code(f);
    if (coil_failure_domain(f) == COIL_DOMAIN_COIL &&
        (code == COIL_ECANCELLED || code == COIL_EBUSY || code == COIL_ESTATE ||
         code == COIL_ESYSTEM))
        return coil_failure_wrap(f, COIL_DOMAIN_COIL, code,
                                 "cannot resolve host name '%s'", k->host);
    return f;
}

/* The name is resolved (or not) on the reactor thread. */
static void resolve_done(coil_deferred *d, void *arg)
{
    sock_connector *k = arg;
    if (k->resolving != d) {
        /* Cancelled by a reset (stop, free, a new attempt): nobody waits. */
        coil_deferred_set_result(d, NULL, NULL);
        return;
    }
    k->resolving = NULL;
    if (coil_deferred_is_failure(d)) {
        connect_failed(k, resolve_failure(k, coil_deferred_take_failure(d)));
        return;
    }
    coil_destroy_fn destroy = NULL;
    free(k->alts);
    k->alts = coil_deferred_take_result(d, &destroy);
    const coil__resolved_addr *a = &k->alts->addrs[0];
    k->alt_next = 1;
    memcpy(&k->addr, &a->ss, a->len);
    k->addrlen = a->len;
    snprintf(k->desc, sizeof k->desc, "%s", a->desc);
    connect_socket(k);
}

/* Resolve k->host on the thread pool; the attempt goes on in resolve_done. */
static void start_resolving(sock_connector *k)
{
    free(k->alts);
    k->alts = NULL;
    snprintf(k->desc, sizeof k->desc, "%s:%d", k->host, k->port);
    coil_deferred *d =
        coil__tcp_resolve(k->r, k->host, k->port, k->resolver, k->resolver_arg);
    if (!d) {
        fail_soon(k, coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                      "out of memory resolving host name '%s'", k->host));
        return;
    }
    if (coil_deferred_called(d)) {
        /* The pool refused the job (queue full, stopping): reported from the
         * loop like every failure, never inside coil_connector_connect. */
        coil_failure *f = coil_deferred_is_failure(d)
                              ? coil_deferred_take_failure(d)
                              : coil_failure_new(COIL_DOMAIN_COIL, COIL_ESTATE,
                                                 "resolution ended without a result");
        coil_deferred_unref(d);
        fail_soon(k, resolve_failure(k, f));
        return;
    }
    k->resolving = d;
    if (coil_deferred_add_timeout(d, k->r, k->resolve_timeout) != 0 ||
        coil_deferred_add_callbacks(d, resolve_done, resolve_done, k) != 0) {
        k->resolving = NULL;
        coil_deferred_cancel(d);
        coil_deferred_unref(d);
        fail_soon(k, coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                      "out of memory resolving host name '%s'", k->host));
        return;
    }
    /* The pool keeps `d` until it fires it; k->resolving is cleared then. */
    coil_deferred_unref(d);
}

static void sock_connector_stop_connecting(coil_connector *base);
static coil_transport *sock_connector_transport(const coil_connector *base);
static int sock_connector_set_layer(coil_connector *base, coil_layer *layer);
static void sock_connector_free(coil_connector *base);

static const coil_connector_ops tcp_connector_ops = {
    .kind = "tcp",
    .connect = sock_connector_connect,
    .stop_connecting = sock_connector_stop_connecting,
    .transport = sock_connector_transport,
    .set_layer = sock_connector_set_layer,
    .free = sock_connector_free,
};

static const coil_connector_ops unix_connector_ops = {
    .kind = "unix",
    .connect = sock_connector_connect,
    .stop_connecting = sock_connector_stop_connecting,
    .transport = sock_connector_transport,
    .set_layer = sock_connector_set_layer,
    .free = sock_connector_free,
};

/* A connector with what every kind shares; connects nothing yet. */
static sock_connector *connector_alloc(coil_reactor *r, const coil_transport_ops *ops,
                                       const struct sockaddr *bind_addr,
                                       socklen_t bind_len, double timeout,
                                       const coil__sock_options *o, coil_factory *f)
{
    sock_connector *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->base.ops =
        strcmp(ops->kind, "unix") == 0 ? &unix_connector_ops : &tcp_connector_ops;
    k->r = r;
    k->ops = ops;
    k->f = f;
    if (bind_addr) {
        memcpy(&k->bind_addr, bind_addr, bind_len);
        k->bind_len = bind_len;
    }
    k->timeout = timeout > 0 ? timeout : 30;
    if (o)
        k->opts = *o;
    k->fd = -1;
    return k;
}

static int connector_start(sock_connector *k, coil_connector **out)
{
    coil_factory_do_start(k->f);
    k->started = 1;
    *out = &k->base;
    return sock_connector_connect(&k->base);
}

int coil__connector_new(coil_reactor *r, const coil_transport_ops *ops,
                        const struct sockaddr *addr, socklen_t addrlen,
                        const struct sockaddr *bind_addr, socklen_t bind_len,
                        const char *desc, double timeout, const coil__sock_options *o,
                        coil_factory *f, coil_failure *error, coil_connector **out)
{
    if (addrlen > sizeof(struct sockaddr_storage) ||
        bind_len > sizeof(struct sockaddr_storage) || !(timeout >= 0)) {
        coil_failure_free(error);
        return COIL_EINVAL;
    }
    sock_connector *k = connector_alloc(r, ops, bind_addr, bind_len, timeout, o, f);
    if (!k) {
        coil_failure_free(error);
        return COIL_ENOMEM;
    }
    k->error = error;
    memcpy(&k->addr, addr, addrlen);
    k->addrlen = addrlen;
    snprintf(k->desc, sizeof k->desc, "%s", desc);
    return connector_start(k, out);
}

int coil__connector_new_named(coil_reactor *r, const coil_transport_ops *ops,
                              const char *host, int port,
                              const struct sockaddr *bind_addr, socklen_t bind_len,
                              double timeout, double resolve_timeout,
                              coil_resolver_fn resolver, void *resolver_arg,
                              const coil__sock_options *o, coil_factory *f,
                              coil_connector **out)
{
    if (bind_len > sizeof(struct sockaddr_storage) || !(timeout >= 0) ||
        !(resolve_timeout >= 0))
        return COIL_EINVAL;
    sock_connector *k = connector_alloc(r, ops, bind_addr, bind_len, timeout, o, f);
    if (!k)
        return COIL_ENOMEM;
    if (!(k->host = strdup(host))) {
        free(k);
        return COIL_ENOMEM;
    }
    k->port = port;
    k->resolve_timeout = resolve_timeout > 0 ? resolve_timeout : k->timeout;
    k->resolver = resolver;
    k->resolver_arg = resolver_arg;
    snprintf(k->desc, sizeof k->desc, "%s:%d", host, port);
    return connector_start(k, out);
}

static void sock_connector_stop_connecting(coil_connector *base)
{
    sock_connector *k = (sock_connector *)base;
    if (k->fd < 0 && !k->pending && !k->resolving)
        return;
    connect_failed(k, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED,
                                       "connecting to %s was stopped", k->desc));
}

static coil_transport *sock_connector_transport(const coil_connector *base)
{
    const sock_connector *k = (const sock_connector *)base;
    if (!k->conn)
        return NULL;
    if (k->conn->layered)
        return k->conn->layer_up ? k->conn->upper : NULL;
    return &k->conn->s.base;
}

static int sock_connector_set_layer(coil_connector *base, coil_layer *layer)
{
    sock_connector *k = (sock_connector *)base;
    if (k->layer || k->conn) {
        layer->ops->free(layer);
        return COIL_EBUSY;
    }
    k->layer = layer;
    return 0;
}

static void sock_connector_free(coil_connector *base)
{
    sock_connector *k = (sock_connector *)base;
    connector_reset(k);
    if (k->conn)
        k->conn->connector = NULL; /* the connection goes on alone */
    if (k->started)
        coil_factory_do_stop(k->f);
    if (k->layer)
        k->layer->ops->free(k->layer);
    coil_failure_free(k->error);
    free(k->host);
    free(k->alts);
    free(k);
}
