/* coil — the reactor: one event loop per thread.
 *
 * A reactor watches file descriptors, runs timers and runs callbacks. It is
 * an explicit object: there is no hidden global, and several reactors may
 * live in one process (one per thread). Backends are epoll (the default on
 * Linux) and poll, chosen by coil_reactor_options.backend or the environment
 * variable COIL_REACTOR=epoll|poll. An idle reactor sleeps in epoll_wait/poll
 * until the next timer is due; it uses no CPU.
 *
 * Threads: every function here must be called from the reactor's own thread,
 * except coil_reactor_call_from_thread(), the one thread-safe entry.
 *
 * Errors: a callback returns 0 or a negative COIL_E* code; a callback that
 * reports an error does not stop the loop, the error is logged.
 */
#ifndef COIL_REACTOR_H
#define COIL_REACTOR_H

#include <stddef.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coil_reactor coil_reactor;
typedef struct coil_timer coil_timer;
typedef struct coil_watch coil_watch;
typedef struct coil_clock coil_clock;
typedef struct coil_trigger coil_trigger;
typedef struct coil_looping_call coil_looping_call;
typedef struct coil_deferred coil_deferred;

/* A scheduled function. Returns 0, or a negative code that is logged. */
typedef int (*coil_callback)(void *arg);

/* ---- clocks ------------------------------------------------------------ */

/* A fake clock for deterministic tests (Twisted's task.Clock): time starts at
 * 0 and moves only when coil_reactor_advance() or coil_clock_advance() moves
 * it. Pass it in coil_reactor_options.clock; it must outlive the reactors
 * that use it. Returns NULL when memory runs out. */
coil_clock *coil_clock_new_fake(void);
void coil_clock_free(coil_clock *c);
/* Seconds on this clock. */
double coil_clock_seconds(const coil_clock *c);
/* Move the clock forward (negative or NaN: COIL_EINVAL). This runs nothing:
 * reactors using the clock notice on their next pass. */
int coil_clock_advance(coil_clock *c, double seconds);

/* ---- life cycle -------------------------------------------------------- */

typedef enum coil_backend {
    COIL_BACKEND_DEFAULT = 0, /* $COIL_REACTOR, else epoll */
    COIL_BACKEND_EPOLL,
    COIL_BACKEND_POLL
} coil_backend;

/* Options for coil_reactor_new(); zero-initialise, then set what you need. */
typedef struct coil_reactor_options {
    coil_backend backend;
    coil_clock *clock;        /* NULL: CLOCK_MONOTONIC; else a fake clock (borrowed) */
    int handle_signals;       /* non-zero: SIGINT/SIGTERM stop the reactor cleanly
                                 while it runs (one such reactor per process) */
    size_t thread_pool_size;  /* most worker threads of the reactor's thread
                                 pool (coil/threadpool.h); 0: 4 */
    size_t thread_pool_queue; /* most jobs waiting for a worker; 0: 1024 */
} coil_reactor_options;

/* Create a reactor. `opts` may be NULL for the defaults. Returns 0, or
 * COIL_EINVAL (bad backend name in $COIL_REACTOR), COIL_ENOMEM or
 * COIL_ESYSTEM (epoll/eventfd creation failed; errno is kept). */
int coil_reactor_new(coil_reactor **out,
                     const coil_reactor_options *opts) COIL_MUST_CHECK;

/* Free the reactor. It first stops the thread pool (coil/threadpool.h:
 * queued jobs cancelled, running ones joined), then runs the call_soon queue
 * until it is empty (bounded), so the teardowns a close queued (connection
 * lost, the transport's memory, TLS state) run even when the close happened
 * in the same pass; then cancels every pending timer and watch, drops the
 * call_when_running queue and removes triggers. Connections still open are
 * not closed: they are logged as leaked (close them first, see
 * coil_reactor_shutdown()). Must not be called while run() is on the stack.
 * NULL is allowed. */
void coil_reactor_free(coil_reactor *r);

/* "epoll" or "poll". */
const char *coil_reactor_backend_name(const coil_reactor *r);

/* Run the loop until coil_reactor_stop(). Runs the startup triggers and the
 * call_when_running queue first. After stop() the loop finishes its current
 * pass, runs the shutdown triggers (waiting for the deferreds that "before"
 * triggers return, while the loop keeps turning), then returns 0.
 *
 * run() may be called again after it returns: timers, watches and triggers
 * persist, and startup/shutdown triggers run again on each run.
 * Returns COIL_ERUNNING when already running. */
int coil_reactor_run(coil_reactor *r);

/* Ask a running reactor to stop after the current pass. Returns
 * COIL_ENOTRUNNING when it is not running or already stopping. */
int coil_reactor_stop(coil_reactor *r);

/* 1 between the start of run() and its return. */
int coil_reactor_is_running(const coil_reactor *r);

/* One pass of the loop without run(): wait at most `max_wait` seconds for
 * I/O (0: do not wait), then run due timers and queued calls. For tests and
 * for embedding coil in another loop. */
int coil_reactor_iterate(coil_reactor *r, double max_wait);

/* The reactor's clock in seconds (monotonic; arbitrary origin). */
double coil_reactor_seconds(const coil_reactor *r);

/* Fake clock only: advance it by `seconds` and run, in deadline order, every
 * timer that becomes due, including timers those calls schedule within the
 * window, and the call_soon queue (Twisted's Clock.advance). Returns
 * COIL_ENOTSUP on a real clock, COIL_EINVAL for a negative amount. */
int coil_reactor_advance(coil_reactor *r, double seconds);

/* ---- timers ------------------------------------------------------------ */

/* Run fn(arg) once, `delay` seconds from now (>= 0). Equal deadlines fire in
 * the order they were scheduled. Scheduling, cancelling and firing are
 * O(log n).
 *
 * Returns a handle owned by the caller (Twisted's DelayedCall): it stays
 * valid, whatever happens to the call and even after the reactor is freed,
 * until the caller drops it with coil_timer_release(). The reactor holds its
 * own reference while the call is pending. Releasing does not cancel: a
 * pending call still runs. To stop it, cancel first:
 *
 *     coil_timer_cancel(t);   // COIL_ECALLED/COIL_ECANCELLED are harmless
 *     coil_timer_release(t);
 *
 * Fire and forget: coil_reactor_call_later_forget(), or release the handle at
 * once. Returns NULL when memory runs out or the delay is negative or NaN. */
coil_timer *coil_reactor_call_later(coil_reactor *r, double delay, coil_callback fn,
                                    void *arg) COIL_MUST_CHECK;

/* Run fn(arg) once, `delay` seconds from now, without a handle: the call
 * cannot be cancelled. Returns 0, COIL_EINVAL (negative or NaN delay, no fn)
 * or COIL_ENOMEM. */
int coil_reactor_call_later_forget(coil_reactor *r, double delay, coil_callback fn,
                                   void *arg);

/* The state of a call, and what the functions below return once it is no
 * longer pending:
 *
 *   pending      cancel, reset and delay act and return 0; active is 1.
 *   run          from the moment fn is entered (so also inside fn itself):
 *                cancel, reset and delay return COIL_ECALLED; active is 0.
 *                As in Twisted, a call cannot be re-armed from inside its own
 *                function: schedule a new one.
 *   cancelled    cancel, reset and delay return COIL_ECANCELLED; active is 0.
 *                Freeing the reactor cancels every pending call.
 *
 * A NULL handle: cancel, reset and delay return COIL_EINVAL, active is 0. */

/* Cancel a pending call. Returns 0, COIL_ECALLED or COIL_ECANCELLED. */
int coil_timer_cancel(coil_timer *t);
/* Reschedule a pending call to `delay` seconds from now (>= 0). Returns 0,
 * COIL_EINVAL, COIL_ECALLED or COIL_ECANCELLED. */
int coil_timer_reset(coil_timer *t, double delay);
/* Move a pending call later (or earlier, with a negative amount). Returns 0,
 * COIL_EINVAL (NaN), COIL_ECALLED or COIL_ECANCELLED. */
int coil_timer_delay(coil_timer *t, double seconds);
/* 1 while the call is pending, else 0. */
int coil_timer_active(const coil_timer *t);
/* The time at which the call is (or was) due, on the reactor's clock. */
double coil_timer_time(const coil_timer *t);
/* Take another reference to the handle; drop it with coil_timer_release(). */
void coil_timer_ref(coil_timer *t);
/* Drop a reference (the one call_later returned, or one from ref). Does not
 * cancel. NULL is allowed. Allowed from inside the call's own function. */
void coil_timer_release(coil_timer *t);

/* Number of pending timers. */
size_t coil_reactor_pending_timers(const coil_reactor *r);
/* How many fds are being watched (the reactor's own excluded): 0 once every
 * connection, listener and connector has let go of its socket. */
size_t coil_reactor_watch_count(const coil_reactor *r);

/* ---- shutting down ----------------------------------------------------

   What a program does at the end, once run() has returned (after
   coil_reactor_stop() or SIGINT/SIGTERM with handle_signals):

       coil_listener_close(listener);        // accept nothing more
       coil_connector_free(connector);       // stop connecting (reconnectors too)
       int aborted = coil_reactor_shutdown(r, 5.0);
       ...free factories and the rest...
       coil_reactor_free(r);

   Shutdown closes every connection cleanly and waits, so a TLS peer gets its
   close_notify and every queued byte; the timeout bounds the wait for peers
   that never finish (a handshake that stalls, a reader that stopped). */

/* The transports the reactor owns and that are not torn down yet: every
 * TCP, UNIX, in-memory and TLS transport, each layer of a stack counted
 * (TLS over TCP is 2). 0 once every connection has ended and its memory is
 * freed. */
size_t coil_reactor_transport_count(const coil_reactor *r);

/* Close every connection and run the loop until each has ended: each
 * transport the reactor owns gets lose_connection (a TLS connection is
 * closed by its TLS layer, which closes the transport below in turn),
 * including connections that come up meanwhile; after `timeout` seconds of
 * real time (also with a fake clock) the rest are aborted (abort_connection)
 * and the loop runs until they are freed. Protocols hear connection_lost as
 * usual. Shutdown triggers are not fired (run() fires them).
 *
 * Returns the number of connections that had to be aborted (a TLS stack
 * counts once; 0: all closed cleanly in time), COIL_ERUNNING when called
 * while run() or a shutdown is on the stack (from a callback), or
 * COIL_EINVAL. */
int coil_reactor_shutdown(coil_reactor *r, double timeout);

/* ---- calls ------------------------------------------------------------- */

/* Run fn(arg) on the next pass of the loop, in FIFO order. Calls queued by
 * such a call run on the pass after. Returns 0 or COIL_ENOMEM. */
int coil_reactor_call_soon(coil_reactor *r, coil_callback fn, void *arg);

/* Run fn(arg) once the reactor runs: at once (on the next pass) when it is
 * running, else at the start of the next run(). */
int coil_reactor_call_when_running(coil_reactor *r, coil_callback fn, void *arg);

/* The one thread-safe entry: queue fn(arg) to run on the reactor's thread
 * and wake the reactor (eventfd). Every call is delivered once, in order per
 * calling thread. Returns 0 or COIL_ENOMEM. */
int coil_reactor_call_from_thread(coil_reactor *r, coil_callback fn, void *arg);

/* ---- system event triggers -------------------------------------------- */

typedef enum coil_event { COIL_EVENT_STARTUP = 0, COIL_EVENT_SHUTDOWN = 1 } coil_event;
typedef enum coil_phase {
    COIL_PHASE_BEFORE = 0,
    COIL_PHASE_DURING = 1,
    COIL_PHASE_AFTER = 2
} coil_phase;

/* A trigger. A "before" trigger may return a deferred (ownership passes to
 * the reactor), and the event waits until every such deferred has fired;
 * a failure is logged and does not stop the event. Triggers of the other
 * phases return NULL (a deferred they return is waited for all the same). */
typedef coil_deferred *(*coil_trigger_fn)(void *arg);

/* Add a trigger; phases run in order before, during, after; within a phase,
 * triggers run in the order added. Returns NULL when memory runs out. The
 * handle stays valid until removed or the reactor is freed. */
coil_trigger *coil_reactor_add_trigger(coil_reactor *r, coil_event event,
                                       coil_phase phase, coil_trigger_fn fn, void *arg);
/* Remove a trigger (also allowed from inside a trigger). */
void coil_reactor_remove_trigger(coil_reactor *r, coil_trigger *t);

/* ---- file descriptors ------------------------------------------------- */

enum coil_io_events {
    COIL_IO_READ = 1u,  /* readable (or EOF) */
    COIL_IO_WRITE = 2u, /* writable */
    COIL_IO_ERROR = 4u, /* reported only: error condition on the fd */
    COIL_IO_HUP = 8u    /* reported only: peer hung up */
};

/* Called with the events that are ready (level-triggered). */
typedef void (*coil_io_fn)(void *arg, int fd, unsigned events);

/* Watch `fd` for `events` (COIL_IO_READ | COIL_IO_WRITE, or 0 to keep the
 * watch but wait for nothing). The fd stays the caller's: coil never closes
 * it. One watch per fd. Returns 0, COIL_EINVAL, COIL_EBUSY (fd already
 * watched), COIL_ENOMEM or COIL_ESYSTEM. */
int coil_reactor_watch_fd(coil_reactor *r, int fd, unsigned events, coil_io_fn fn,
                          void *arg, coil_watch **out) COIL_MUST_CHECK;
/* Change the events a watch waits for. */
int coil_watch_set_events(coil_watch *w, unsigned events) COIL_MUST_CHECK;
unsigned coil_watch_events(const coil_watch *w);
/* Stop watching and free the watch; safe from inside any callback,
 * including the watch's own. Call it before closing the fd. */
void coil_watch_free(coil_watch *w);

/* ---- looping calls ---------------------------------------------------- */

/* The function of a looping call: 0 to go on; a negative code stops the loop
 * and fails its deferred. */
typedef int (*coil_loop_fn)(void *arg);
/* With-count variant: `count` is the number of intervals that elapsed since
 * the previous call: 1 on time (the call made by start with now=1 counts 1),
 * more when the reactor fell behind and intervals were skipped (Twisted's
 * LoopingCall.withCount). */
typedef int (*coil_loop_count_fn)(void *arg, unsigned long count);

coil_looping_call *coil_looping_call_new(coil_reactor *r, coil_loop_fn fn, void *arg);
coil_looping_call *coil_looping_call_new_with_count(coil_reactor *r,
                                                    coil_loop_count_fn fn, void *arg);

/* Start calling every `interval` seconds (> 0): at once when `now` is
 * non-zero, else after one interval. Calls keep to the schedule
 * start + k * interval; missed intervals are skipped, not queued (Twisted's
 * LoopingCall). When `done` is not NULL it receives a new reference to a
 * deferred (unref it) that fires with NULL when the loop is stopped, or
 * fails when the function returns an error. Returns 0, COIL_EINVAL,
 * COIL_ESTATE (already running) or COIL_ENOMEM. */
int coil_looping_call_start(coil_looping_call *lc, double interval, int now,
                            coil_deferred **done) COIL_MUST_CHECK;
/* Stop the loop; its deferred fires. COIL_ESTATE when not running. */
int coil_looping_call_stop(coil_looping_call *lc);
int coil_looping_call_running(const coil_looping_call *lc);
/* Stop (when running) and free. Allowed from inside the function. */
void coil_looping_call_free(coil_looping_call *lc);

#ifdef __cplusplus
}
#endif
#endif
