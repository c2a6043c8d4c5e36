/* The reactor's thread pool (Twisted's deferToThread): a bounded queue of
 * jobs, workers started on demand, results carried back to the reactor
 * thread through coil_reactor_call_from_thread. See coil/threadpool.h. */
#include "reactor_internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <coil/log.h>
#include <coil/threadpool.h>

#define LOG_MODULE "threadpool"

/* DROPPED: taken off the queue by a shutdown, about to fail. */
enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_DROPPED };

typedef struct job {
    struct job *prev, *next; /* in the queue, or `next` in the done list */
    struct coil__threadpool *pool;
    coil_thread_fn fn;
    void *arg;
    coil_destroy_fn destroy_arg;
    coil_deferred *d; /* the pool's reference, dropped once fired */
    enum job_state state;
    int cancelled; /* reactor thread only: the deferred has failed already */
    /* What fn returned (set by the worker, read after the hand-over). */
    void *value;
    coil_destroy_fn destroy;
    coil_failure *failure;
} job;

typedef struct coil__threadpool {
    coil_reactor *r;
    pthread_mutex_t lock;
    pthread_cond_t work; /* a job was queued, or the pool stops */

    /* Under `lock`. */
    job *head, *tail; /* jobs waiting for a worker, FIFO */
    size_t queued;
    size_t running;
    size_t idle;
    size_t alive;          /* workers that have not left their loop */
    int quit;              /* workers leave once they see it */
    job *done, *done_tail; /* finished jobs for the reactor thread */
    int drain_posted;      /* a drain call is queued on the reactor */

    /* Reactor thread only. */
    pthread_t *threads; /* every worker started since the last stop */
    size_t n_threads, cap_threads;
    coil_trigger *trigger;
    coil_deferred *stopped; /* fires when a shutdown's running jobs are done */
    int stopping;
} coil__threadpool;

/* ---- workers ------------------------------------------------------------------ */

static int drain(void *arg);

static void *worker(void *arg)
{
    coil__threadpool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->quit && !p->head) {
            p->idle++;
            pthread_cond_wait(&p->work, &p->lock);
            p->idle--;
        }
        if (p->quit)
            break;
        job *j = p->head;
        p->head = j->next;
        if (p->head)
            p->head->prev = NULL;
        else
            p->tail = NULL;
        p->queued--;
        p->running++;
        j->state = JOB_RUNNING;
        j->next = j->prev = NULL;
        pthread_mutex_unlock(&p->lock);

        void *value = NULL;
        coil_destroy_fn destroy = NULL;
        coil_failure *f = j->fn(j->arg, &value, &destroy);

        pthread_mutex_lock(&p->lock);
        j->value = value;
        j->destroy = destroy;
        j->failure = f;
        j->state = JOB_DONE;
        p->running--;
        if (p->done_tail)
            p->done_tail->next = j;
        else
            p->done = j;
        p->done_tail = j;
        if (!p->drain_posted) {
            p->drain_posted = 1;
            /* The argument is the reactor, not the pool: a drain still
             * queued when the pool is freed finds no pool and does nothing. */
            if (coil_reactor_call_from_thread(p->r, drain, p->r) != 0)
                p->drain_posted = 0; /* the next job to finish tries again */
        }
    }
    p->alive--;
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Start a worker when the queue has a job no idle worker will take. Called
 * with the lock held. Returns 0, or COIL_ESYSTEM when no thread could be
 * started and no worker would ever take the job. */
static int maybe_start_worker(coil__threadpool *p)
{
    if (p->idle >= p->queued || p->alive >= p->r->pool_threads)
        return 0;
    if (p->n_threads == p->cap_threads) {
        size_t cap = p->cap_threads ? p->cap_threads * 2 : 4;
        pthread_t *t = realloc(p->threads, cap * sizeof *t);
        if (!t)
            return p->alive ? 0 : COIL_ENOMEM;
        p->threads = t;
        p->cap_threads = cap;
    }
    /* Workers block every signal: SIGINT/SIGTERM belong to the reactor. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&p->threads[p->n_threads], NULL, worker, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        if (p->alive)
            return 0; /* the job waits for a running worker */
        coil_log(COIL_LOG_ERROR, LOG_MODULE, "cannot start a worker thread: %s",
                 strerror(rc));
        return COIL_ESYSTEM;
    }
    p->n_threads++;
    p->alive++;
    return 0;
}

/* ---- the reactor side ----------------------------------------------------------- */

static void job_free(job *j)
{
    if (j->destroy_arg)
        j->destroy_arg(j->arg);
    coil_deferred_unref(j->d);
    free(j);
}

/* Hand a finished job's result to its deferred (or drop it: cancelled). */
static void job_finish(job *j)
{
    if (j->cancelled) {
        if (j->value && j->destroy)
            j->destroy(j->value);
        coil_failure_free(j->failure);
    } else if (j->failure) {
        if (j->value && j->destroy)
            j->destroy(j->value);
        coil_deferred_errback(j->d, j->failure);
    } else {
        coil_deferred_callback(j->d, j->value, j->destroy);
    }
    job_free(j);
}

static void join_workers(coil__threadpool *p)
{
    pthread_mutex_lock(&p->lock);
    p->quit = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    p->n_threads = 0;
    pthread_mutex_lock(&p->lock);
    p->quit = 0;
    pthread_mutex_unlock(&p->lock);
}

/* Deliver the jobs that have finished, in the order they finished. */
static void run_done(coil__threadpool *p)
{
    pthread_mutex_lock(&p->lock);
    job *list = p->done;
    p->done = p->done_tail = NULL;
    p->drain_posted = 0;
    pthread_mutex_unlock(&p->lock);
    while (list) {
        job *j = list;
        list = j->next;
        job_finish(j);
    }
}

/* A shutdown in progress ends once no job runs: the workers are joined and
 * the trigger's deferred fires. */
static void maybe_stopped(coil__threadpool *p)
{
    if (!p->stopping)
        return;
    pthread_mutex_lock(&p->lock);
    size_t running = p->running;
    pthread_mutex_unlock(&p->lock);
    if (running > 0)
        return;
    join_workers(p);
    run_done(p); /* nothing can be there, but keep the invariant */
    p->stopping = 0;
    coil_deferred *d = p->stopped;
    p->stopped = NULL;
    if (d) {
        coil_deferred_callback(d, NULL, NULL);
        coil_deferred_unref(d);
    }
}

static int drain(void *arg)
{
    coil_reactor *r = arg;
    coil__threadpool *p = r->pool;
    if (!p)
        return 0;
    run_done(p);
    maybe_stopped(p);
    return 0;
}

/* Take every queued job out (under the lock) and fail each one. */
static void cancel_queued(coil__threadpool *p, const char *why)
{
    pthread_mutex_lock(&p->lock);
    job *list = p->head;
    p->head = p->tail = NULL;
    p->queued = 0;
    /* Off the queue: a callback that cancels one of them while we fail the
     * others must not unlink it from a queue it is no longer in. */
    for (job *j = list; j; j = j->next)
        j->state = JOB_DROPPED;
    pthread_mutex_unlock(&p->lock);
    while (list) {
        job *j = list;
        list = j->next;
        coil_deferred_errback(j->d, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED,
                                                     "thread job cancelled: %s", why));
        job_free(j);
    }
}

static void canceller(coil_deferred *d, void *arg)
{
    job *j = arg;
    coil__threadpool *p = j->pool;
    pthread_mutex_lock(&p->lock);
    int queued = j->state == JOB_QUEUED;
    if (queued) {
        if (j->prev)
            j->prev->next = j->next;
        else
            p->head = j->next;
        if (j->next)
            j->next->prev = j->prev;
        else
            p->tail = j->prev;
        p->queued--;
    }
    pthread_mutex_unlock(&p->lock);
    if (queued) {
        coil_deferred_errback(d, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED,
                                                  "thread job cancelled before it ran"));
        job_free(j); /* cancel() holds its own reference to d */
        return;
    }
    j->cancelled = 1;
    if (j->state == JOB_DROPPED)
        return; /* cancel() fails it; cancel_queued frees it */
    /* Running, or finished with the result not yet delivered: the result is
     * dropped when it reaches the reactor thread. */
    coil_deferred_errback(d, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED,
                                              "thread job cancelled while running; "
                                              "its result will be discarded"));
}

static coil_deferred *shutdown_trigger(void *arg)
{
    coil__threadpool *p = arg;
    if (p->stopping)
        return NULL;
    p->stopping = 1;
    cancel_queued(p, "the reactor is shutting down");
    run_done(p);
    pthread_mutex_lock(&p->lock);
    size_t running = p->running;
    pthread_mutex_unlock(&p->lock);
    if (running == 0) {
        maybe_stopped(p);
        return NULL;
    }
    coil_log(COIL_LOG_INFO, LOG_MODULE,
             "shutdown waits for %zu thread job(s) still running", running);
    p->stopped = coil_deferred_new();
    return p->stopped ? coil_deferred_ref(p->stopped) : NULL;
}

static coil__threadpool *pool_get(coil_reactor *r)
{
    if (r->pool)
        return r->pool;
    coil__threadpool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->r = r;
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->work, NULL) != 0) {
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
    }
    p->trigger = coil_reactor_add_trigger(r, COIL_EVENT_SHUTDOWN, COIL_PHASE_DURING,
                                          shutdown_trigger, p);
    if (!p->trigger) {
        pthread_cond_destroy(&p->work);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
    }
    r->pool = p;
    return p;
}

static coil_deferred *fail_now(coil_deferred *d, job *j, coil_failure *f)
{
    coil_deferred_errback(d, f);
    job_free(j); /* drops the pool's reference; the caller keeps one */
    return d;
}

coil_deferred *coil_defer_to_thread(coil_reactor *r, coil_thread_fn fn, void *arg,
                                    coil_destroy_fn destroy_arg)
{
    job *j = NULL;
    coil_deferred *d = NULL;
    if (!r || !fn || !(j = calloc(1, sizeof *j)))
        goto oom;
    j->fn = fn;
    j->arg = arg;
    j->destroy_arg = destroy_arg;
    j->state = JOB_QUEUED;
    d = coil_deferred_new_cancellable(canceller, j);
    if (!d)
        goto oom;
    j->d = coil_deferred_ref(d); /* the pool's */
    if (r->pool_closed)
        return fail_now(d, j,
                        coil_failure_new(COIL_DOMAIN_COIL, COIL_ESTATE,
                                         "the thread pool is closed (reactor freed)"));
    coil__threadpool *p = pool_get(r);
    if (!p)
        return fail_now(d, j,
                        coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                         "out of memory starting the thread pool"));
    j->pool = p;
    if (p->stopping)
        return fail_now(
            d, j,
            coil_failure_new(COIL_DOMAIN_COIL, COIL_ESTATE,
                             "the thread pool is stopping (reactor shutdown)"));
    pthread_mutex_lock(&p->lock);
    if (p->queued >= r->pool_queue) {
        size_t queued = p->queued;
        pthread_mutex_unlock(&p->lock);
        return fail_now(d, j,
                        coil_failure_new(COIL_DOMAIN_COIL, COIL_EBUSY,
                                         "thread pool queue is full: %zu jobs waiting "
                                         "for %zu threads",
                                         queued, r->pool_threads));
    }
    j->prev = p->tail;
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->queued++;
    int rc = maybe_start_worker(p);
    if (rc != 0) {
        /* No worker will ever take it: take it back. */
        p->tail = j->prev;
        if (p->tail)
            p->tail->next = NULL;
        else
            p->head = NULL;
        p->queued--;
        pthread_mutex_unlock(&p->lock);
        return fail_now(d, j,
                        rc == COIL_ENOMEM
                            ? coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                               "out of memory starting a worker thread")
                            : coil_failure_new(COIL_DOMAIN_COIL, COIL_ESYSTEM,
                                               "cannot start a worker thread"));
    }
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
    return d;
oom:
    free(j);
    if (destroy_arg)
        destroy_arg(arg);
    return NULL;
}

int coil_reactor_set_thread_pool_size(coil_reactor *r, size_t threads)
{
    if (!r || threads == 0)
        return COIL_EINVAL;
    r->pool_threads = threads;
    return 0;
}

int coil_reactor_set_thread_pool_queue(coil_reactor *r, size_t max_queued)
{
    if (!r || max_queued == 0)
        return COIL_EINVAL;
    r->pool_queue = max_queued;
    return 0;
}

void coil_reactor_thread_pool_stats(coil_reactor *r, coil_thread_pool_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!r)
        return;
    out->max_threads = r->pool_threads;
    out->max_queued = r->pool_queue;
    coil__threadpool *p = r->pool;
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    out->threads = p->alive;
    out->idle = p->idle;
    out->queued = p->queued;
    out->running = p->running;
    pthread_mutex_unlock(&p->lock);
}

void coil__threadpool_free(coil_reactor *r)
{
    coil__threadpool *p = r->pool;
    r->pool_closed = 1;
    if (!p)
        return;
    /* Queued jobs are cancelled, running ones joined, and every deferred
     * fired, while the reactor is still whole: their callbacks may use it. */
    p->stopping = 1;
    cancel_queued(p, "the reactor is being freed");
    join_workers(p);
    run_done(p);
    coil_deferred *d = p->stopped;
    p->stopped = NULL;
    if (d) {
        coil_deferred_callback(d, NULL, NULL);
        coil_deferred_unref(d);
    }
    coil_reactor_remove_trigger(r, p->trigger);
    r->pool = NULL;
    free(p->threads);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
