/* The epoll backend. A watch waiting for nothing is taken out of the epoll
 * set, since epoll reports hang-ups even for an empty event mask. */
#include "reactor_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_EVENTS 256

struct epoll_state {
    int fd;
    struct epoll_event events[MAX_EVENTS];
};

static int epoll_init(coil_reactor *r)
{
    struct epoll_state *s = malloc(sizeof *s);
    if (!s)
        return COIL_ENOMEM;
    s->fd = epoll_create1(EPOLL_CLOEXEC);
    if (s->fd < 0) {
        free(s);
        return COIL_ESYSTEM;
    }
    r->backend_state = s;
    return 0;
}

static void epoll_destroy(coil_reactor *r)
{
    struct epoll_state *s = r->backend_state;
    close(s->fd);
    free(s);
}

static int ctl(coil_reactor *r, int op, coil_watch *w)
{
    struct epoll_state *s = r->backend_state;
    struct epoll_event ev = {0};
    ev.events = ((w->events & COIL_IO_READ) ? EPOLLIN | EPOLLRDHUP : 0) |
                ((w->events & COIL_IO_WRITE) ? EPOLLOUT : 0);
    ev.data.ptr = w;
    return epoll_ctl(s->fd, op, w->fd, &ev) == 0 ? 0 : COIL_ESYSTEM;
}

/* poll_index doubles as "is in the epoll set". */
static int epoll_add(coil_reactor *r, coil_watch *w)
{
    w->poll_index = 0;
    if (w->events == 0)
        return 0;
    int rc = ctl(r, EPOLL_CTL_ADD, w);
    if (rc == 0)
        w->poll_index = 1;
    return rc;
}

static int epoll_modify(coil_reactor *r, coil_watch *w)
{
    if (w->events == 0) {
        if (w->poll_index)
            epoll_ctl(((struct epoll_state *)r->backend_state)->fd, EPOLL_CTL_DEL, w->fd,
                      NULL);
        w->poll_index = 0;
        return 0;
    }
    int rc = ctl(r, w->poll_index ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, w);
    if (rc == 0)
        w->poll_index = 1;
    return rc;
}

static void epoll_del(coil_reactor *r, coil_watch *w)
{
    struct epoll_state *s = r->backend_state;
    /* The fd may already be closed by a careless caller: ignore errors. */
    if (w->poll_index)
        epoll_ctl(s->fd, EPOLL_CTL_DEL, w->fd, NULL);
    w->poll_index = 0;
}

static int epoll_wait_events(coil_reactor *r, int timeout_ms)
{
    struct epoll_state *s = r->backend_state;
    int n = epoll_wait(s->fd, s->events, MAX_EVENTS, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : COIL_ESYSTEM;
    for (int i = 0; i < n; i++) {
        uint32_t e = s->events[i].events;
        unsigned ev = ((e & (EPOLLIN | EPOLLRDHUP)) ? COIL_IO_READ : 0) |
                      ((e & EPOLLOUT) ? COIL_IO_WRITE : 0) |
                      ((e & EPOLLERR) ? COIL_IO_ERROR : 0) |
                      ((e & EPOLLHUP) ? COIL_IO_HUP : 0);
        coil__reactor_io(s->events[i].data.ptr, ev);
    }
    return 0;
}

const coil__backend coil__backend_epoll = {
    .name = "epoll",
    .init = epoll_init,
    .destroy = epoll_destroy,
    .add = epoll_add,
    .modify = epoll_modify,
    .del = epoll_del,
    .wait = epoll_wait_events,
};
