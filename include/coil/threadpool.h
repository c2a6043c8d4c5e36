/* coil — the reactor's thread pool: blocking work off the reactor thread.
 *
 * Twisted's deferToThread. coil_defer_to_thread() queues a function for a
 * worker thread and returns a deferred that fires ON THE REACTOR THREAD with
 * what the function returned: a value (with its destroy function, as every
 * value in a deferred carries one) or a failure. Blocking work never runs
 * on the reactor thread: name resolution (coil_tcp_connect resolves host
 * names here), file I/O that may stall, and the SSH server's Argon2id
 * password hashing, the motivating user, go through this pool.
 *
 * The pool.
 *   - Each reactor has one, created on first use. At most `threads` workers
 *     (coil_reactor_options.thread_pool_size, default 4), started lazily:
 *     a job starts a new thread only when no worker is idle and fewer than
 *     `threads` run. Idle workers sleep on a condition variable (no CPU);
 *     they stay until the pool stops. Workers block every signal, so
 *     SIGINT/SIGTERM reach the reactor's thread.
 *   - The queue of jobs not yet started is bounded
 *     (coil_reactor_options.thread_pool_queue, default 1024). Past the
 *     bound nothing waits and nothing blocks: coil_defer_to_thread returns a
 *     deferred that has already failed with COIL_EBUSY ("thread pool queue
 *     is full: 1024 jobs waiting for 4 threads"), and the function never
 *     runs. The caller may retry later or shed the work.
 *
 * Ownership and threads.
 *   - `fn(arg, &value, &destroy)` runs on a worker. It returns NULL and sets
 *     *value / *destroy (both start NULL) for a result, or returns a
 *     coil_failure (it may build one with the coil_failure constructors,
 *     which are thread-safe) for an error; a value set beside a failure is
 *     destroyed. fn must not call other coil functions on the reactor: only
 *     coil_reactor_call_from_thread() is thread-safe.
 *   - `destroy_arg(arg)`, when not NULL, runs on the reactor thread once fn
 *     has returned, or when the job is dropped without running (cancelled,
 *     queue full, pool stopped, out of memory). arg is never touched again
 *     after that.
 *   - The returned deferred reference is the caller's (coil_deferred_unref
 *     it). The pool holds its own until it fires it, so dropping the
 *     caller's reference early is allowed; a failure nobody handles is then
 *     logged as usual.
 *
 * Cancellation (coil_deferred_cancel, or a timeout from
 * coil_deferred_add_timeout).
 *   - Before a worker has taken the job: the job leaves the queue, fn never
 *     runs, destroy_arg runs, and the deferred fails with COIL_ECANCELLED.
 *   - While fn runs (a thread cannot be interrupted safely): the deferred
 *     fails with COIL_ECANCELLED at once, and whatever fn returns is
 *     destroyed (value) or freed (failure) on the reactor thread when it
 *     arrives.
 *
 * Shutdown.
 *   - The pool stops in the reactor's shutdown, at the "during" phase (as
 *     Twisted's does), so "before" triggers may still use it: jobs still
 *     queued are cancelled as above (their deferreds fail with
 *     COIL_ECANCELLED), jobs running are waited for (the loop keeps turning
 *     meanwhile; their deferreds fire with their results), then every
 *     worker is joined. While the pool stops, coil_defer_to_thread fails at
 *     once with COIL_ESTATE. Once stopped, the pool starts threads again on
 *     demand, so a reactor run again can use it.
 *   - coil_reactor_free stops it the same way, synchronously: queued jobs
 *     are cancelled, running ones joined (it blocks until their functions
 *     return) and their deferreds fired, and no thread is left. Jobs
 *     submitted while the reactor is being freed fail with COIL_ESTATE.
 *   - A function that never returns keeps the shutdown waiting: bound
 *     blocking calls in fn (timeouts on I/O).
 */
#ifndef COIL_THREADPOOL_H
#define COIL_THREADPOOL_H

#include <stddef.h>

#include "deferred.h"
#include "error.h"
#include "failure.h"
#include "reactor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default number of worker threads, and of jobs that may wait for one. */
#define COIL_THREAD_POOL_DEFAULT_SIZE  4
#define COIL_THREAD_POOL_DEFAULT_QUEUE 1024

/* Work for a worker thread; see the header comment. Returns NULL with the
 * result in *value / *destroy, or a failure (owned by the pool from then). */
typedef coil_failure *(*coil_thread_fn)(void *arg, void **value,
                                        coil_destroy_fn *destroy);

/* Run fn(arg) on one of `r`'s worker threads; the returned deferred (one
 * reference, the caller's) fires on the reactor thread with fn's result.
 * A job the pool cannot take fails at once: COIL_EBUSY (queue full),
 * COIL_ESTATE (pool stopping), COIL_ENOMEM or COIL_ESYSTEM (no thread could
 * be started and none is running). Returns NULL only when `r` or `fn` is
 * NULL or no deferred can be allocated; destroy_arg(arg) has then run.
 * Reactor thread only. */
coil_deferred *coil_defer_to_thread(coil_reactor *r, coil_thread_fn fn, void *arg,
                                    coil_destroy_fn destroy_arg);

/* Change the most threads the pool may run (>= 1). Takes effect as threads
 * start: fewer threads than running now do not stop the extra ones before
 * the pool stops. Returns 0 or COIL_EINVAL. */
int coil_reactor_set_thread_pool_size(coil_reactor *r, size_t threads);
/* Change the most jobs that may wait for a thread (>= 1). Jobs already
 * queued stay. Returns 0 or COIL_EINVAL. */
int coil_reactor_set_thread_pool_queue(coil_reactor *r, size_t max_queued);

/* A snapshot of the pool, for tests and monitoring. */
typedef struct coil_thread_pool_stats {
    size_t threads;     /* worker threads alive */
    size_t idle;        /* of those, waiting for a job */
    size_t queued;      /* jobs waiting for a thread */
    size_t running;     /* jobs whose function runs now (cancelled or not) */
    size_t max_threads; /* the size limit */
    size_t max_queued;  /* the queue limit */
} coil_thread_pool_stats;

/* Fill `out` (all zero but the limits when the pool was never used). */
void coil_reactor_thread_pool_stats(coil_reactor *r, coil_thread_pool_stats *out);

#ifdef __cplusplus
}
#endif
#endif
