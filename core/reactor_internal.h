/* Reactor internals shared by reactor.c, the backends and looping_call.c. */
#ifndef COIL_CORE_REACTOR_INTERNAL_H
#define COIL_CORE_REACTOR_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include <coil/reactor.h>

#include "heap.h"

struct coil_clock {
    int64_t now_ns;
};

struct coil_watch {
    coil_reactor *r;
    int fd;
    unsigned events;
    coil_io_fn fn;
    void *arg;
    int closed;        /* freed by the user; memory kept until pass end */
    size_t poll_index; /* poll backend: slot in its pollfd array */
    struct coil_watch *next_dead;
};

/* A backend: a few static functions behind one table, its state behind
 * r->backend_state. */
typedef struct coil__backend {
    const char *name;
    int (*init)(coil_reactor *r);
    void (*destroy)(coil_reactor *r);
    int (*add)(coil_reactor *r, coil_watch *w);
    int (*modify)(coil_reactor *r, coil_watch *w);
    void (*del)(coil_reactor *r, coil_watch *w);
    /* Wait up to timeout_ms (-1: forever) and report ready watches through
     * coil__reactor_io(). Returns 0 or COIL_ESYSTEM. */
    int (*wait)(coil_reactor *r, int timeout_ms);
} coil__backend;

extern const coil__backend coil__backend_epoll;
extern const coil__backend coil__backend_poll;

/* Called by a backend for each ready watch; skips closed ones. */
void coil__reactor_io(coil_watch *w, unsigned events);

typedef struct coil__call {
    coil_callback fn;
    void *arg;
} coil__call;

typedef struct coil__callq {
    coil__call *items;
    size_t head, len, cap;
} coil__callq;

struct coil_trigger {
    coil_event event;
    coil_phase phase;
    coil_trigger_fn fn;
    void *arg;
    int removed;
    struct coil_trigger *next;
};

struct coil_reactor {
    const coil__backend *backend;
    void *backend_state;
    coil_clock *clock; /* NULL: CLOCK_MONOTONIC */

    coil__heap timers;
    uint64_t timer_seq;

    coil__callq soon;
    coil__callq when_running;

    coil_watch **by_fd; /* fd -> watch, for "one watch per fd" */
    size_t by_fd_len;
    size_t n_watches;       /* live fd watches, ours included */
    int wake_watch_counted; /* the wake-up eventfd is one of them */
    coil_watch *dead_watches;

    /* call_from_thread */
    pthread_mutex_t thread_lock;
    coil__callq thread_calls;
    atomic_int wake_pending;
    int wake_fd; /* eventfd */
    coil_watch *wake_watch;

    coil_trigger *triggers;
    int firing_triggers;
    size_t event_waiting; /* deferreds a running event waits for */

    int running;
    int stopping; /* stop() called; shutdown pending or under way */
    int handle_signals;
    volatile sig_atomic_t signal_caught;
    struct sigaction old_sigint, old_sigterm;
    int signals_installed;

    /* The thread pool (threadpool.c): created on first use. */
    struct coil__threadpool *pool;
    size_t pool_threads, pool_queue; /* its limits */
    int pool_closed;                 /* the reactor is being freed */
};

/* Now on the reactor's clock, in nanoseconds. */
int64_t coil__reactor_now_ns(const coil_reactor *r);
/* Seconds to nanoseconds, clamped, for delays. */
int64_t coil__seconds_to_ns(double s);

/* Stop the thread pool (cancel queued jobs, join running ones, fire their
 * deferreds) and free it; later jobs fail. First thing coil_reactor_free
 * does, while the reactor is still whole. */
void coil__threadpool_free(coil_reactor *r);

#endif
