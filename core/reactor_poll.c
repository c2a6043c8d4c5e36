/* The poll(2) backend: a pollfd array with a parallel array of watches. A
 * watch waiting for nothing keeps its slot with fd -1, which poll skips. */
#include "reactor_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

struct poll_state {
    struct pollfd *fds;
    coil_watch **watches;
    size_t len, cap;
    /* The ready set of one wait, copied out so callbacks may add and remove
     * watches (which reorders the arrays) while it is dispatched. */
    coil_watch **ready;
    unsigned *ready_events;
    size_t ready_cap;
};

static int poll_init(coil_reactor *r)
{
    struct poll_state *s = calloc(1, sizeof *s);
    if (!s)
        return COIL_ENOMEM;
    r->backend_state = s;
    return 0;
}

static void poll_destroy(coil_reactor *r)
{
    struct poll_state *s = r->backend_state;
    free(s->fds);
    free(s->watches);
    free(s->ready);
    free(s->ready_events);
    free(s);
}

static short poll_mask(const coil_watch *w)
{
    return (short)(((w->events & COIL_IO_READ) ? POLLIN | POLLRDHUP : 0) |
                   ((w->events & COIL_IO_WRITE) ? POLLOUT : 0));
}

static void fill_slot(struct poll_state *s, size_t i, coil_watch *w)
{
    s->fds[i].fd = w->events ? w->fd : -1;
    s->fds[i].events = poll_mask(w);
    s->fds[i].revents = 0;
    s->watches[i] = w;
    w->poll_index = i;
}

static int poll_add(coil_reactor *r, coil_watch *w)
{
    struct poll_state *s = r->backend_state;
    if (s->len == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct pollfd *fds = realloc(s->fds, cap * sizeof *fds);
        if (!fds)
            return COIL_ENOMEM;
        s->fds = fds;
        coil_watch **watches = realloc(s->watches, cap * sizeof *watches);
        if (!watches)
            return COIL_ENOMEM;
        s->watches = watches;
        s->cap = cap;
    }
    fill_slot(s, s->len++, w);
    return 0;
}

static int poll_modify(coil_reactor *r, coil_watch *w)
{
    fill_slot(r->backend_state, w->poll_index, w);
    return 0;
}

static void poll_del(coil_reactor *r, coil_watch *w)
{
    struct poll_state *s = r->backend_state;
    size_t i = w->poll_index;
    size_t last = --s->len;
    if (i != last)
        fill_slot(s, i, s->watches[last]);
}

static int poll_wait_events(coil_reactor *r, int timeout_ms)
{
    struct poll_state *s = r->backend_state;
    int n = poll(s->fds, (nfds_t)s->len, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : COIL_ESYSTEM;
    if (n == 0)
        return 0;
    if ((size_t)n > s->ready_cap) {
        size_t cap = (size_t)n * 2;
        coil_watch **ready = realloc(s->ready, cap * sizeof *ready);
        if (!ready)
            return COIL_ENOMEM;
        s->ready = ready;
        unsigned *evs = realloc(s->ready_events, cap * sizeof *evs);
        if (!evs)
            return COIL_ENOMEM;
        s->ready_events = evs;
        s->ready_cap = cap;
    }
    size_t k = 0;
    for (size_t i = 0; i < s->len && k < (size_t)n; i++) {
        short re = s->fds[i].revents;
        if (!re)
            continue;
        s->ready[k] = s->watches[i];
        s->ready_events[k++] = ((re & (POLLIN | POLLRDHUP)) ? COIL_IO_READ : 0) |
                               ((re & POLLOUT) ? COIL_IO_WRITE : 0) |
                               ((re & (POLLERR | POLLNVAL)) ? COIL_IO_ERROR : 0) |
                               ((re & POLLHUP) ? COIL_IO_HUP : 0);
    }
    /* Watches freed by a callback stay allocated until the pass ends, and
     * coil__reactor_io skips them. */
    for (size_t i = 0; i < k; i++)
        coil__reactor_io(s->ready[i], s->ready_events[i]);
    return 0;
}

const coil__backend coil__backend_poll = {
    .name = "poll",
    .init = poll_init,
    .destroy = poll_destroy,
    .add = poll_add,
    .modify = poll_modify,
    .del = poll_del,
    .wait = poll_wait_events,
};
