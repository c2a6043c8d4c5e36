/* The reactor: timers, queued calls, fd watches, triggers, signals and the
 * loop. The backends (reactor_epoll.c, reactor_poll.c) only wait for I/O. */
#include "reactor_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <coil/deferred.h>
#include <coil/log.h>
#include <coil/threadpool.h>

#define LOG_MODULE "reactor"

/* ---- time ------------------------------------------------------------------ */

int64_t coil__seconds_to_ns(double s)
{
    /* ~146 years: far enough, and far from overflow when added to now. */
    const double max = 4.6e18;
    double ns = s * 1e9;
    if (isnan(ns))
        return 0;
    if (ns > max)
        return (int64_t)max;
    if (ns < -max)
        return -(int64_t)max;
    return (int64_t)llround(ns);
}

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t coil__reactor_now_ns(const coil_reactor *r)
{
    return r->clock ? r->clock->now_ns : monotonic_ns();
}

double coil_reactor_seconds(const coil_reactor *r)
{
    return (double)coil__reactor_now_ns(r) / 1e9;
}

coil_clock *coil_clock_new_fake(void)
{
    return calloc(1, sizeof(coil_clock));
}

void coil_clock_free(coil_clock *c)
{
    free(c);
}

double coil_clock_seconds(const coil_clock *c)
{
    return (double)c->now_ns / 1e9;
}

int coil_clock_advance(coil_clock *c, double seconds)
{
    if (!(seconds >= 0))
        return COIL_EINVAL;
    c->now_ns += coil__seconds_to_ns(seconds);
    return 0;
}

/* ---- call queues ------------------------------------------------------------ */

static int callq_push(coil__callq *q, coil_callback fn, void *arg)
{
    if (q->head + q->len == q->cap) {
        if (q->head > 0 && q->head >= q->cap / 2) {
            memmove(q->items, q->items + q->head, q->len * sizeof *q->items);
            q->head = 0;
        } else {
            size_t cap = q->cap ? q->cap * 2 : 16;
            coil__call *items = realloc(q->items, cap * sizeof *items);
            if (!items)
                return COIL_ENOMEM;
            q->items = items;
            q->cap = cap;
        }
    }
    q->items[q->head + q->len++] = (coil__call){fn, arg};
    return 0;
}

static void callq_free(coil__callq *q)
{
    free(q->items);
    memset(q, 0, sizeof *q);
}

static void run_callback(coil_callback fn, void *arg, const char *what)
{
    int rc = fn(arg);
    if (rc < 0)
        coil_log(COIL_LOG_ERROR, LOG_MODULE, "%s returned %s (%s); the loop goes on",
                 what, coil_err_name(rc), coil_strerror(rc));
}

/* Run the calls queued before this point; calls they queue wait for the
 * next pass. */
static void run_queue(coil__callq *q, const char *what)
{
    size_t n = q->len;
    while (n-- > 0 && q->len > 0) {
        coil__call c = q->items[q->head++];
        q->len--;
        if (q->len == 0)
            q->head = 0;
        run_callback(c.fn, c.arg, what);
    }
}

int coil_reactor_call_soon(coil_reactor *r, coil_callback fn, void *arg)
{
    if (!r || !fn)
        return COIL_EINVAL;
    return callq_push(&r->soon, fn, arg);
}

int coil_reactor_call_when_running(coil_reactor *r, coil_callback fn, void *arg)
{
    if (!r || !fn)
        return COIL_EINVAL;
    if (r->running)
        return callq_push(&r->soon, fn, arg);
    return callq_push(&r->when_running, fn, arg);
}

static void wake(coil_reactor *r)
{
    /* One write is enough until the reactor drains the eventfd. */
    if (atomic_exchange(&r->wake_pending, 1) == 0) {
        uint64_t one = 1;
        ssize_t n;
        do
            n = write(r->wake_fd, &one, sizeof one);
        while (n < 0 && errno == EINTR);
    }
}

int coil_reactor_call_from_thread(coil_reactor *r, coil_callback fn, void *arg)
{
    if (!r || !fn)
        return COIL_EINVAL;
    pthread_mutex_lock(&r->thread_lock);
    int rc = callq_push(&r->thread_calls, fn, arg);
    pthread_mutex_unlock(&r->thread_lock);
    if (rc == 0)
        wake(r);
    return rc;
}

static void handle_signal_caught(coil_reactor *r);

static void run_thread_calls(coil_reactor *r)
{
    coil__callq batch;
    pthread_mutex_lock(&r->thread_lock);
    batch = r->thread_calls;
    memset(&r->thread_calls, 0, sizeof r->thread_calls);
    pthread_mutex_unlock(&r->thread_lock);
    for (size_t i = 0; i < batch.len; i++)
        run_callback(batch.items[batch.head + i].fn, batch.items[batch.head + i].arg,
                     "call_from_thread callback");
    callq_free(&batch);
}

static void wake_readable(void *arg, int fd, unsigned events)
{
    coil_reactor *r = arg;
    uint64_t v;
    /* Drain the eventfd first, then clear the flag, then take the queue: a
     * call queued after the flag is cleared writes the eventfd again, and a
     * call queued before it is in the batch we take. (Clearing before
     * draining could swallow that write and leave the flag set for good.) */
    while (read(fd, &v, sizeof v) < 0 && errno == EINTR)
        ;
    atomic_store(&r->wake_pending, 0);
    run_thread_calls(r);
    handle_signal_caught(r);
}

/* ---- timers ------------------------------------------------------------------- */

enum timer_state { TIMER_PENDING, TIMER_CALLED, TIMER_CANCELLED };

/* A timer is shared by the caller (one reference from call_later, more from
 * coil_timer_ref) and the reactor (one reference while the call is pending
 * or running). Every operation looks at `state` first, so a handle whose
 * call has run, was cancelled or whose reactor is gone never touches the
 * reactor. */
struct coil_timer {
    coil__heap_node node; /* first: the heap hands back node pointers */
    coil_reactor *r;      /* NULL once the timer is no longer pending */
    coil_callback fn;
    void *arg;
    int refs;
    enum timer_state state;
};

static void timer_unref(coil_timer *t)
{
    if (--t->refs == 0)
        free(t);
}

void coil_timer_ref(coil_timer *t)
{
    if (t)
        t->refs++;
}

void coil_timer_release(coil_timer *t)
{
    if (t)
        timer_unref(t);
}

coil_timer *coil_reactor_call_later(coil_reactor *r, double delay, coil_callback fn,
                                    void *arg)
{
    if (!r || !fn || !(delay >= 0))
        return NULL;
    coil_timer *t = malloc(sizeof *t);
    if (!t)
        return NULL;
    t->node.key = coil__reactor_now_ns(r) + coil__seconds_to_ns(delay);
    t->node.seq = r->timer_seq++;
    t->node.index = SIZE_MAX;
    t->r = r;
    t->fn = fn;
    t->arg = arg;
    t->refs = 2; /* the caller's, and the reactor's while pending */
    t->state = TIMER_PENDING;
    if (coil__heap_push(&r->timers, &t->node) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

int coil_reactor_call_later_forget(coil_reactor *r, double delay, coil_callback fn,
                                   void *arg)
{
    if (!r || !fn || !(delay >= 0))
        return COIL_EINVAL;
    coil_timer *t = coil_reactor_call_later(r, delay, fn, arg);
    if (!t)
        return COIL_ENOMEM;
    coil_timer_release(t);
    return 0;
}

static int timer_inactive_code(const coil_timer *t)
{
    return t->state == TIMER_CALLED ? COIL_ECALLED : COIL_ECANCELLED;
}

/* No longer pending: out of the heap, the reactor's reference dropped. */
static void timer_retire(coil_timer *t, enum timer_state state)
{
    t->state = state;
    coil__heap_remove(&t->r->timers, &t->node);
    t->r = NULL;
    timer_unref(t);
}

int coil_timer_cancel(coil_timer *t)
{
    if (!t)
        return COIL_EINVAL;
    if (t->state != TIMER_PENDING)
        return timer_inactive_code(t);
    timer_retire(t, TIMER_CANCELLED);
    return 0;
}

static void timer_move(coil_timer *t, int64_t when)
{
    t->node.key = when;
    /* A moved call goes behind calls already due at the same time. */
    t->node.seq = t->r->timer_seq++;
    coil__heap_update(&t->r->timers, &t->node);
}

int coil_timer_reset(coil_timer *t, double delay)
{
    if (!t)
        return COIL_EINVAL;
    if (t->state != TIMER_PENDING)
        return timer_inactive_code(t);
    if (!(delay >= 0))
        return COIL_EINVAL;
    timer_move(t, coil__reactor_now_ns(t->r) + coil__seconds_to_ns(delay));
    return 0;
}

int coil_timer_delay(coil_timer *t, double seconds)
{
    if (!t)
        return COIL_EINVAL;
    if (t->state != TIMER_PENDING)
        return timer_inactive_code(t);
    if (isnan(seconds))
        return COIL_EINVAL;
    timer_move(t, t->node.key + coil__seconds_to_ns(seconds));
    return 0;
}

int coil_timer_active(const coil_timer *t)
{
    return t && t->state == TIMER_PENDING;
}

double coil_timer_time(const coil_timer *t)
{
    return t ? (double)t->node.key / 1e9 : NAN;
}

size_t coil_reactor_watch_count(const coil_reactor *r)
{
    /* The reactor's own wake-up descriptor is not counted. */
    return r->n_watches - (r->wake_watch_counted ? 1 : 0);
}

size_t coil_reactor_pending_timers(const coil_reactor *r)
{
    return r->timers.len;
}

/* Fire the timers due at `now`. Only timers scheduled before this pass
 * began fire in it, so a call that schedules a zero-delay call cannot keep
 * the pass going forever. */
static void run_timers(coil_reactor *r, int64_t now)
{
    uint64_t limit = r->timer_seq;
    for (;;) {
        coil__heap_node *n = coil__heap_top(&r->timers);
        if (!n || n->key > now || n->seq >= limit)
            break;
        coil__heap_remove(&r->timers, n);
        coil_timer *t = (coil_timer *)n;
        /* Inside fn the call counts as run (cancel: COIL_ECALLED); the
         * reactor's reference keeps the handle valid until fn returns, even
         * when fn releases the caller's. */
        t->state = TIMER_CALLED;
        t->r = NULL;
        run_callback(t->fn, t->arg, "timed call");
        timer_unref(t);
    }
}

/* ---- fd watches --------------------------------------------------------- */

int coil_reactor_watch_fd(coil_reactor *r, int fd, unsigned events, coil_io_fn fn,
                          void *arg, coil_watch **out)
{
    if (!r || fd < 0 || !fn || !out || (events & ~(COIL_IO_READ | COIL_IO_WRITE)))
        return COIL_EINVAL;
    if ((size_t)fd >= r->by_fd_len) {
        size_t len = r->by_fd_len ? r->by_fd_len : 64;
        while (len <= (size_t)fd)
            len *= 2;
        coil_watch **by_fd = realloc(r->by_fd, len * sizeof *by_fd);
        if (!by_fd)
            return COIL_ENOMEM;
        memset(by_fd + r->by_fd_len, 0, (len - r->by_fd_len) * sizeof *by_fd);
        r->by_fd = by_fd;
        r->by_fd_len = len;
    }
    if (r->by_fd[fd])
        return COIL_EBUSY;
    coil_watch *w = calloc(1, sizeof *w);
    if (!w)
        return COIL_ENOMEM;
    w->r = r;
    w->fd = fd;
    w->events = events;
    w->fn = fn;
    w->arg = arg;
    int rc = r->backend->add(r, w);
    if (rc != 0) {
        free(w);
        return rc;
    }
    r->by_fd[fd] = w;
    r->n_watches++;
    *out = w;
    return 0;
}

int coil_watch_set_events(coil_watch *w, unsigned events)
{
    if (w->closed || (events & ~(COIL_IO_READ | COIL_IO_WRITE)))
        return COIL_EINVAL;
    if (events == w->events)
        return 0;
    unsigned old = w->events;
    w->events = events;
    int rc = w->r->backend->modify(w->r, w);
    if (rc != 0)
        w->events = old;
    return rc;
}

unsigned coil_watch_events(const coil_watch *w)
{
    return w->events;
}

void coil_watch_free(coil_watch *w)
{
    if (!w || w->closed)
        return;
    coil_reactor *r = w->r;
    r->backend->del(r, w);
    r->by_fd[w->fd] = NULL;
    r->n_watches--;
    w->closed = 1;
    /* Events for it may still sit in the backend's batch: free at pass end. */
    w->next_dead = r->dead_watches;
    r->dead_watches = w;
}

void coil__reactor_io(coil_watch *w, unsigned events)
{
    /* A watch waiting for nothing hears nothing, not even a hang-up: a
     * paused reader must not spin on a closed peer. */
    if (w->closed || w->events == 0)
        return;
    events &= w->events | COIL_IO_ERROR | COIL_IO_HUP;
    if (events)
        w->fn(w->arg, w->fd, events);
}

static void free_dead_watches(coil_reactor *r)
{
    while (r->dead_watches) {
        coil_watch *w = r->dead_watches;
        r->dead_watches = w->next_dead;
        free(w);
    }
}

/* ---- the registry of transports ------------------------------------------ */

static void drain_soon(coil_reactor *r);

static void tracked_push(coil__tracked **head, coil__tracked *t)
{
    t->next = *head;
    if (*head)
        (*head)->pprev = &t->next;
    *head = t;
    t->pprev = head;
}

static void tracked_unlink(coil__tracked *t)
{
    *t->pprev = t->next;
    if (t->next)
        t->next->pprev = t->pprev;
    t->next = NULL;
    t->pprev = NULL;
}

void coil__reactor_track(coil_reactor *r, coil__tracked *t, const coil__track_ops *ops)
{
    if (!r || t->pprev)
        return;
    t->r = r;
    t->ops = ops;
    tracked_push(&r->tracked, t);
    r->n_tracked++;
}

void coil__reactor_untrack(coil__tracked *t)
{
    if (!t->pprev)
        return;
    tracked_unlink(t);
    t->r->n_tracked--;
    t->r = NULL;
}

size_t coil_reactor_transport_count(const coil_reactor *r)
{
    return r->n_tracked;
}

/* An entry with a tracked layer above it belongs to that layer's
 * connection: the layer closes it, and it is not counted apart. */
static int tracked_is_top(const coil__tracked *t)
{
    return !t->upper || !coil__tracked_is_tracked(t->upper);
}

/* Take every entry of *from into r->tracked_done and close (abort = 0) or
 * abort it. A close or abort may untrack any entry, or track new ones (in
 * r->tracked), at any time: every entry is unlinked before its hook runs. */
static void tracked_sweep(coil_reactor *r, coil__tracked **from, int abort)
{
    /* The batch lives in the reactor, not on the stack: entries point back
     * at its head. */
    r->tracked_batch = *from;
    *from = NULL;
    if (r->tracked_batch)
        r->tracked_batch->pprev = &r->tracked_batch;
    while (r->tracked_batch) {
        coil__tracked *t = r->tracked_batch;
        tracked_unlink(t);
        tracked_push(&r->tracked_done, t);
        if (abort)
            t->ops->abort(t);
        else if (tracked_is_top(t))
            t->ops->close(t);
    }
}

static size_t tracked_connections(const coil_reactor *r)
{
    size_t n = 0;
    for (const coil__tracked *t = r->tracked; t; t = t->next)
        n += tracked_is_top(t);
    for (const coil__tracked *t = r->tracked_done; t; t = t->next)
        n += tracked_is_top(t);
    return n;
}

/* ---- signals -------------------------------------------------------------- */

static coil_reactor *_Atomic signal_reactor;

static void on_signal(int signo)
{
    int saved = errno;
    coil_reactor *r = atomic_load(&signal_reactor);
    if (r) {
        r->signal_caught = signo;
        uint64_t one = 1;
        /* The flag may be set by a thread call: write regardless. */
        if (write(r->wake_fd, &one, sizeof one) < 0) {
            /* nothing to do in a signal handler */
        }
    }
    errno = saved;
}

static void install_signals(coil_reactor *r)
{
    coil_reactor *expected = NULL;
    if (!atomic_compare_exchange_strong(&signal_reactor, &expected, r)) {
        coil_log(COIL_LOG_WARN, LOG_MODULE,
                 "SIGINT/SIGTERM are already handled by another reactor; "
                 "this one will not stop on them");
        return;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, &r->old_sigint);
    sigaction(SIGTERM, &sa, &r->old_sigterm);
    r->signals_installed = 1;
}

static void restore_signals(coil_reactor *r)
{
    if (!r->signals_installed)
        return;
    sigaction(SIGINT, &r->old_sigint, NULL);
    sigaction(SIGTERM, &r->old_sigterm, NULL);
    r->signals_installed = 0;
    atomic_store(&signal_reactor, NULL);
}

static void handle_signal_caught(coil_reactor *r)
{
    int signo = r->signal_caught;
    if (!signo)
        return;
    r->signal_caught = 0;
    coil_log(COIL_LOG_INFO, LOG_MODULE, "received %s; stopping the reactor",
             signo == SIGINT    ? "SIGINT"
             : signo == SIGTERM ? "SIGTERM"
                                : "a signal");
    if (r->running && !r->stopping)
        coil_reactor_stop(r);
}

/* ---- life cycle ------------------------------------------------------------ */

static const coil__backend *backend_from(coil_backend b, int *rc)
{
    *rc = 0;
    if (b == COIL_BACKEND_DEFAULT) {
        const char *env = getenv("COIL_REACTOR");
        if (!env || !*env || strcmp(env, "epoll") == 0)
            return &coil__backend_epoll;
        if (strcmp(env, "poll") == 0)
            return &coil__backend_poll;
        coil_log(COIL_LOG_ERROR, LOG_MODULE,
                 "COIL_REACTOR=%s is not a reactor backend; use epoll or poll", env);
        *rc = COIL_EINVAL;
        return NULL;
    }
    if (b == COIL_BACKEND_EPOLL)
        return &coil__backend_epoll;
    if (b == COIL_BACKEND_POLL)
        return &coil__backend_poll;
    *rc = COIL_EINVAL;
    return NULL;
}

int coil_reactor_new(coil_reactor **out, const coil_reactor_options *opts)
{
    coil_reactor_options defaults = {0};
    if (!out)
        return COIL_EINVAL;
    *out = NULL;
    if (!opts)
        opts = &defaults;
    int rc;
    const coil__backend *backend = backend_from(opts->backend, &rc);
    if (!backend)
        return rc;
    coil_reactor *r = calloc(1, sizeof *r);
    if (!r)
        return COIL_ENOMEM;
    r->backend = backend;
    r->clock = opts->clock;
    r->handle_signals = opts->handle_signals;
    r->pool_threads =
        opts->thread_pool_size ? opts->thread_pool_size : COIL_THREAD_POOL_DEFAULT_SIZE;
    r->pool_queue = opts->thread_pool_queue ? opts->thread_pool_queue
                                            : COIL_THREAD_POOL_DEFAULT_QUEUE;
    r->wake_fd = -1;
    coil__heap_init(&r->timers);
    pthread_mutex_init(&r->thread_lock, NULL);
    atomic_init(&r->wake_pending, 0);
    rc = backend->init(r);
    if (rc != 0) {
        pthread_mutex_destroy(&r->thread_lock);
        free(r);
        return rc;
    }
    r->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->wake_fd < 0) {
        coil_log(COIL_LOG_ERROR, LOG_MODULE, "eventfd failed: %s", strerror(errno));
        coil_reactor_free(r);
        return COIL_ESYSTEM;
    }
    rc = coil_reactor_watch_fd(r, r->wake_fd, COIL_IO_READ, wake_readable, r,
                               &r->wake_watch);
    if (rc != 0) {
        coil_reactor_free(r);
        return rc;
    }
    r->wake_watch_counted = 1;
    *out = r;
    return 0;
}

void coil_reactor_free(coil_reactor *r)
{
    if (!r)
        return;
    if (r->running)
        coil_log(COIL_LOG_ERROR, LOG_MODULE, "coil_reactor_free called while running");
    coil__threadpool_free(r);
    /* What a close queued (a transport's teardown: connection_lost, its
     * memory, a TLS layer's state) runs now, so a reactor freed in the same
     * pass as a close frees everything. */
    drain_soon(r);
    if (r->n_tracked > 0) {
        coil_log(COIL_LOG_WARN, LOG_MODULE,
                 "coil_reactor_free: %zu transport%s still open and leaked; close "
                 "them first (coil_reactor_shutdown)",
                 r->n_tracked, r->n_tracked == 1 ? "" : "s");
        /* Their entries must not reach back into this memory later. */
        while (r->tracked)
            coil__reactor_untrack(r->tracked);
        while (r->tracked_done)
            coil__reactor_untrack(r->tracked_done);
    }
    coil__heap_node *n;
    while ((n = coil__heap_top(&r->timers)) != NULL)
        timer_retire((coil_timer *)n, TIMER_CANCELLED);
    coil__heap_destroy(&r->timers);
    if (r->wake_watch)
        coil_watch_free(r->wake_watch);
    for (size_t fd = 0; fd < r->by_fd_len; fd++)
        if (r->by_fd[fd])
            coil_watch_free(r->by_fd[fd]);
    free_dead_watches(r);
    free(r->by_fd);
    r->backend->destroy(r);
    if (r->wake_fd >= 0)
        close(r->wake_fd);
    callq_free(&r->soon);
    callq_free(&r->when_running);
    callq_free(&r->thread_calls);
    pthread_mutex_destroy(&r->thread_lock);
    while (r->triggers) {
        coil_trigger *t = r->triggers;
        r->triggers = t->next;
        free(t);
    }
    restore_signals(r);
    free(r);
}

const char *coil_reactor_backend_name(const coil_reactor *r)
{
    return r->backend->name;
}

int coil_reactor_is_running(const coil_reactor *r)
{
    return r->running;
}

/* ---- the pass ---------------------------------------------------------------- */

static int poll_timeout_ms(coil_reactor *r, double max_wait)
{
    if (r->soon.len > 0 || max_wait == 0)
        return 0;
    int64_t limit_ns = max_wait < 0 ? -1 : coil__seconds_to_ns(max_wait);
    coil__heap_node *n = coil__heap_top(&r->timers);
    if (n) {
        int64_t now = coil__reactor_now_ns(r);
        int64_t until = n->key - now;
        if (until <= 0)
            return 0;
        /* A fake clock does not move while we sleep: its timers only wake
         * us when advanced. */
        if (!r->clock && (limit_ns < 0 || until < limit_ns))
            limit_ns = until;
    }
    if (limit_ns < 0)
        return -1;
    /* Round up: waking a little late is fine, waking early spins. */
    int64_t ms = (limit_ns + 999999) / 1000000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

static void pass(coil_reactor *r, double max_wait);

/* Run the call_soon queue until it is empty: the teardowns a close queued,
 * and what they queue in turn. Bounded, for a call that requeues itself. */
static void drain_soon(coil_reactor *r)
{
    for (int round = 0; round < 1000 && r->soon.len > 0; round++) {
        run_queue(&r->soon, "call_soon callback");
        free_dead_watches(r);
    }
}

int coil_reactor_shutdown(coil_reactor *r, double timeout)
{
    if (!r || isnan(timeout))
        return COIL_EINVAL;
    if (r->running || r->shutting_down)
        return COIL_ERUNNING;
    r->shutting_down = 1;
    int64_t start = monotonic_ns();
    int64_t deadline = start + coil__seconds_to_ns(timeout > 0 ? timeout : 0);
    /* Ask every connection to close cleanly, including any that comes up
     * while we wait, and wait for them all (at least one pass, so what can
     * close at once is not counted as aborted). */
    for (int passes = 0;; passes++) {
        tracked_sweep(r, &r->tracked, 0);
        if (r->n_tracked == 0)
            break;
        int64_t left = deadline - monotonic_ns();
        if (left <= 0 && passes > 0)
            break;
        pass(r, left > 0 ? (double)left / 1e9 : 0);
    }
    int aborted = 0;
    if (r->n_tracked > 0) {
        size_t n = tracked_connections(r);
        aborted = n > INT32_MAX ? INT32_MAX : (int)n;
        coil_log(COIL_LOG_INFO, LOG_MODULE,
                 "shutdown: %zu connection%s did not close within %g s; aborting", n,
                 n == 1 ? "" : "s", timeout);
        /* An aborted transport ends on the next pass; a layer above it
         * hears that and ends too. */
        int64_t grace = monotonic_ns() + 5 * (int64_t)1000000000;
        tracked_sweep(r, &r->tracked_done, 1);
        while (r->n_tracked > 0 && monotonic_ns() < grace) {
            tracked_sweep(r, &r->tracked, 1);
            pass(r, 0.01);
        }
        if (r->n_tracked > 0)
            coil_log(COIL_LOG_ERROR, LOG_MODULE,
                     "shutdown: %zu transport%s still open after being aborted",
                     r->n_tracked, r->n_tracked == 1 ? "" : "s");
    }
    drain_soon(r);
    r->shutting_down = 0;
    return aborted;
}

static void pass(coil_reactor *r, double max_wait)
{
    int rc = r->backend->wait(r, poll_timeout_ms(r, max_wait));
    if (rc != 0)
        coil_log(COIL_LOG_ERROR, LOG_MODULE, "%s wait failed: %s", r->backend->name,
                 strerror(errno));
    run_timers(r, coil__reactor_now_ns(r));
    run_queue(&r->soon, "call_soon callback");
    free_dead_watches(r);
}

int coil_reactor_iterate(coil_reactor *r, double max_wait)
{
    if (!r || isnan(max_wait))
        return COIL_EINVAL;
    pass(r, max_wait);
    return 0;
}

int coil_reactor_advance(coil_reactor *r, double seconds)
{
    if (!r->clock)
        return COIL_ENOTSUP;
    if (!(seconds >= 0))
        return COIL_EINVAL;
    int64_t target = r->clock->now_ns + coil__seconds_to_ns(seconds);
    /* Step the clock from deadline to deadline so each call sees the time it
     * was due at, and calls scheduled inside the window run too. */
    for (;;) {
        run_queue(&r->soon, "call_soon callback");
        coil__heap_node *n = coil__heap_top(&r->timers);
        if (!n || n->key > target)
            break;
        if (n->key > r->clock->now_ns)
            r->clock->now_ns = n->key;
        run_timers(r, r->clock->now_ns);
    }
    r->clock->now_ns = target;
    run_queue(&r->soon, "call_soon callback");
    free_dead_watches(r);
    return 0;
}

/* ---- system event triggers -------------------------------------------------- */

coil_trigger *coil_reactor_add_trigger(coil_reactor *r, coil_event event,
                                       coil_phase phase, coil_trigger_fn fn, void *arg)
{
    if (!r || !fn || (unsigned)event > COIL_EVENT_SHUTDOWN ||
        (unsigned)phase > COIL_PHASE_AFTER)
        return NULL;
    coil_trigger *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->event = event;
    t->phase = phase;
    t->fn = fn;
    t->arg = arg;
    coil_trigger **p = &r->triggers;
    while (*p)
        p = &(*p)->next;
    *p = t;
    return t;
}

static void sweep_triggers(coil_reactor *r)
{
    coil_trigger **p = &r->triggers;
    while (*p) {
        coil_trigger *t = *p;
        if (t->removed) {
            *p = t->next;
            free(t);
        } else {
            p = &t->next;
        }
    }
}

void coil_reactor_remove_trigger(coil_reactor *r, coil_trigger *t)
{
    if (!r || !t)
        return;
    t->removed = 1;
    if (!r->firing_triggers)
        sweep_triggers(r);
}

static void trigger_deferred_done(coil_deferred *d, void *arg)
{
    coil_reactor *r = arg;
    if (coil_deferred_is_failure(d)) {
        char *text = coil_failure_to_string(coil_deferred_failure(d));
        coil_log(COIL_LOG_ERROR, LOG_MODULE, "a system event trigger failed: %s",
                 text ? text : "(out of memory)");
        free(text);
        coil_deferred_set_result(d, NULL, NULL); /* reported: handled */
    }
    r->event_waiting--;
}

static void fire_phase(coil_reactor *r, coil_event event, coil_phase phase)
{
    r->firing_triggers++;
    for (coil_trigger *t = r->triggers; t; t = t->next) {
        if (t->removed || t->event != event || t->phase != phase)
            continue;
        coil_deferred *d = t->fn(t->arg);
        if (!d)
            continue;
        r->event_waiting++;
        if (coil_deferred_add_both(d, trigger_deferred_done, r) != 0) {
            r->event_waiting--;
            coil_log(COIL_LOG_ERROR, LOG_MODULE,
                     "out of memory waiting for a trigger's deferred; not waiting");
        }
        coil_deferred_unref(d);
    }
    r->firing_triggers--;
    if (!r->firing_triggers)
        sweep_triggers(r);
}

/* Fire an event's three phases, turning the loop while "before" deferreds
 * are outstanding. */
static void fire_event(coil_reactor *r, coil_event event)
{
    for (coil_phase phase = COIL_PHASE_BEFORE; phase <= COIL_PHASE_AFTER; phase++) {
        fire_phase(r, event, phase);
        while (r->event_waiting > 0)
            pass(r, -1);
    }
}

/* ---- run / stop ---------------------------------------------------------------- */

int coil_reactor_run(coil_reactor *r)
{
    if (!r)
        return COIL_EINVAL;
    if (r->running)
        return COIL_ERUNNING;
    r->running = 1;
    r->stopping = 0;
    if (r->handle_signals)
        install_signals(r);
    fire_event(r, COIL_EVENT_STARTUP);
    /* call_when_running calls join the soon queue, in order. */
    while (!r->stopping && r->when_running.len > 0) {
        coil__callq q = r->when_running;
        memset(&r->when_running, 0, sizeof q);
        for (size_t i = 0; i < q.len; i++)
            if (callq_push(&r->soon, q.items[q.head + i].fn, q.items[q.head + i].arg))
                coil_log(COIL_LOG_ERROR, LOG_MODULE,
                         "out of memory queueing a call_when_running call; dropped");
        callq_free(&q);
    }
    while (!r->stopping)
        pass(r, -1);
    fire_event(r, COIL_EVENT_SHUTDOWN);
    restore_signals(r);
    r->running = 0;
    r->stopping = 0;
    return 0;
}

int coil_reactor_stop(coil_reactor *r)
{
    if (!r || !r->running || r->stopping)
        return COIL_ENOTRUNNING;
    r->stopping = 1;
    return 0;
}
