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

/* An entry in the reactor's registry of the transports it owns (every
 * byte stream: TCP, UNIX, in-memory, TLS), embedded in the transport. It is
 * what coil_reactor_shutdown() closes, waits for and aborts, and what
 * coil_reactor_transport_count() counts. */
typedef struct coil__tracked coil__tracked;
typedef struct coil__track_ops {
    /* Begin a clean close (lose_connection). Not called on an entry that has
     * a layer above it: the layer closes it. */
    void (*close)(coil__tracked *t);
    /* Close now (abort_connection); the entry must be untracked soon after
     * (once the loop runs its queued calls). */
    void (*abort)(coil__tracked *t);
} coil__track_ops;

struct coil__tracked {
    coil__tracked *next, **pprev; /* pprev NULL: not tracked */
    coil_reactor *r;
    const coil__track_ops *ops;
    /* The layer above (TLS over this stream), or NULL. Its entry lives at
     * least as long as this one's memory. */
    const coil__tracked *upper;
};

/* Register `t` (zeroed or untracked) with `r`. Tracking an entry already
 * tracked does nothing. */
void coil__reactor_track(coil_reactor *r, coil__tracked *t, const coil__track_ops *ops);
/* Remove `t` from the registry; an entry not tracked is left alone. Call it
 * before the memory holding `t` is freed. */
void coil__reactor_untrack(coil__tracked *t);
static inline int coil__tracked_is_tracked(const coil__tracked *t)
{
    return t->pprev != NULL;
}

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

    /* The registry of transports (coil__tracked): those not yet asked to
     * close, and those shutdown has closed or aborted. */
    coil__tracked *tracked, *tracked_done;
    coil__tracked *tracked_batch; /* being closed or aborted by a sweep */
    size_t n_tracked;
    int shutting_down; /* inside coil_reactor_shutdown */

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
