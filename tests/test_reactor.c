/* The reactor: backends, timers under the fake clock, calls, triggers, fd
 * watches, call_from_thread, signals, errors and idleness. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* A log of what ran, as a string: each call appends its tag. */
static char trace[4096];

static void trace_reset(void)
{
    trace[0] = '\0';
}

static int record(void *arg)
{
    strncat(trace, (const char *)arg, sizeof trace - strlen(trace) - 1);
    return 0;
}

/* Schedule a call nobody will cancel. */
static void later(coil_reactor *r, double delay, coil_callback fn, void *arg)
{
    CU_ASSERT_EQUAL(coil_reactor_call_later_forget(r, delay, fn, arg), 0);
}

/* Each test ends by freeing its reactor and clock; ASan checks nothing is
 * left (libuv's MAKE_VALGRIND_HAPPY). */
static void finish(coil_reactor *r, coil_clock *c)
{
    coil_reactor_free(r);
    coil_clock_free(c);
}

/* ---- backends ---- */

static void test_backend_from_env(void)
{
    const char *env = getenv("COIL_REACTOR");
    coil_reactor *r = coil_test_reactor(NULL);
    CU_ASSERT_STRING_EQUAL(coil_reactor_backend_name(r), env && *env ? env : "epoll");
    coil_reactor_free(r);

    coil_reactor_options o = {0};
    o.backend = COIL_BACKEND_POLL;
    CU_ASSERT_EQUAL_FATAL(coil_reactor_new(&r, &o), 0);
    CU_ASSERT_STRING_EQUAL(coil_reactor_backend_name(r), "poll");
    coil_reactor_free(r);
    o.backend = COIL_BACKEND_EPOLL;
    CU_ASSERT_EQUAL_FATAL(coil_reactor_new(&r, &o), 0);
    CU_ASSERT_STRING_EQUAL(coil_reactor_backend_name(r), "epoll");
    coil_reactor_free(r);
}

static void test_backend_bad_env(void)
{
    char *saved = getenv("COIL_REACTOR") ? strdup(getenv("COIL_REACTOR")) : NULL;
    setenv("COIL_REACTOR", "kqueue", 1);
    coil_test_log_capture_start();
    coil_reactor *r = COIL_TEST_POISON;
    CU_ASSERT_EQUAL(coil_reactor_new(&r, NULL), COIL_EINVAL);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT(coil_test_log_contains("COIL_REACTOR=kqueue is not a reactor backend"));
    coil_test_log_capture_stop();
    if (saved) {
        setenv("COIL_REACTOR", saved, 1);
        free(saved);
    } else {
        unsetenv("COIL_REACTOR");
    }
}

static void test_two_reactors(void)
{
    coil_reactor *a = coil_test_reactor(NULL), *b = coil_test_reactor(NULL);
    trace_reset();
    coil_reactor_call_soon(a, record, "a");
    coil_reactor_call_soon(b, record, "b");
    coil_reactor_iterate(b, 0);
    CU_ASSERT_STRING_EQUAL(trace, "b");
    coil_reactor_iterate(a, 0);
    CU_ASSERT_STRING_EQUAL(trace, "ba");
    coil_reactor_free(a);
    coil_reactor_free(b);
}

/* ---- timers under the fake clock ---- */

static void test_timer_order(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    trace_reset();
    later(r, 3, record, "3");
    later(r, 1, record, "1");
    later(r, 2, record, "2");
    /* Equal deadlines fire in scheduling order. */
    later(r, 5, record, "a");
    later(r, 5, record, "b");
    later(r, 5, record, "c");
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 6);
    CU_ASSERT_EQUAL(coil_reactor_advance(r, 0.999), 0);
    CU_ASSERT_STRING_EQUAL(trace, "");
    CU_ASSERT_EQUAL(coil_reactor_advance(r, 0.001), 0);
    CU_ASSERT_STRING_EQUAL(trace, "1");
    CU_ASSERT_EQUAL(coil_reactor_advance(r, 10), 0);
    CU_ASSERT_STRING_EQUAL(trace, "123abc");
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 0);
    CU_ASSERT_DOUBLE_EQUAL(coil_reactor_seconds(r), 11.0, 1e-9);
    CU_ASSERT_PTR_NULL(coil_reactor_call_later(r, -1, record, "x"));
    CU_ASSERT_PTR_NULL(coil_reactor_call_later(r, NAN, record, "x"));
    CU_ASSERT_EQUAL(coil_reactor_call_later_forget(r, -1, record, "x"), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_reactor_call_later_forget(r, 1, NULL, "x"), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 0);
    finish(r, c);
}

static coil_reactor *chain_r;
static int schedule_next(void *arg)
{
    record(arg);
    if (strlen(trace) < 4)
        later(chain_r, 1, schedule_next, arg);
    return 0;
}

static void test_advance_runs_calls_scheduled_in_window(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = chain_r = coil_test_reactor(c);
    trace_reset();
    later(r, 1, schedule_next, "x");
    coil_reactor_advance(r, 2.5); /* x at 1 and 2 */
    CU_ASSERT_STRING_EQUAL(trace, "xx");
    coil_reactor_advance(r, 10); /* 3, 4 then stops */
    CU_ASSERT_STRING_EQUAL(trace, "xxxx");
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 0);
    finish(r, c);
}

static double seen_time;
static int note_time(void *arg)
{
    seen_time = coil_reactor_seconds(arg);
    return 0;
}

static void test_timer_sees_its_due_time(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    later(r, 1.5, note_time, r);
    coil_reactor_advance(r, 100);
    CU_ASSERT_DOUBLE_EQUAL(seen_time, 1.5, 1e-9);
    finish(r, c);
}

static void test_timer_cancel(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    trace_reset();
    coil_timer *a = coil_reactor_call_later(r, 1, record, "a");
    coil_timer *b = coil_reactor_call_later(r, 1, record, "b");
    CU_ASSERT(coil_timer_active(a));
    CU_ASSERT_EQUAL(coil_timer_cancel(a), 0);
    CU_ASSERT(!coil_timer_active(a));
    CU_ASSERT_EQUAL(coil_timer_cancel(a), COIL_ECANCELLED);
    CU_ASSERT_EQUAL(coil_timer_reset(a, 1), COIL_ECANCELLED);
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 1);
    coil_reactor_advance(r, 1);
    CU_ASSERT_STRING_EQUAL(trace, "b");
    CU_ASSERT(!coil_timer_active(b));
    CU_ASSERT_EQUAL(coil_timer_cancel(b), COIL_ECALLED);
    CU_ASSERT_EQUAL(coil_timer_delay(b, 1), COIL_ECALLED);
    CU_ASSERT_DOUBLE_EQUAL(coil_timer_time(b), 1.0, 1e-9);
    coil_timer_release(a);
    coil_timer_release(b);
    finish(r, c);
}

static void test_timer_reset_and_delay(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    trace_reset();
    coil_timer *a = coil_reactor_call_later(r, 1, record, "a");
    coil_timer *b = coil_reactor_call_later(r, 2, record, "b");
    coil_timer *d = coil_reactor_call_later(r, 3, record, "d");
    coil_reactor_advance(r, 0.5);
    CU_ASSERT_EQUAL(coil_timer_reset(a, 2), 0); /* now due at 2.5 */
    CU_ASSERT_DOUBLE_EQUAL(coil_timer_time(a), 2.5, 1e-9);
    CU_ASSERT_EQUAL(coil_timer_delay(b, 2), 0); /* now due at 4 */
    CU_ASSERT_DOUBLE_EQUAL(coil_timer_time(b), 4.0, 1e-9);
    CU_ASSERT_EQUAL(coil_timer_delay(d, -2.5), 0); /* now due at 0.5: now */
    coil_reactor_advance(r, 0);
    CU_ASSERT_STRING_EQUAL(trace, "d");
    coil_reactor_advance(r, 2);
    CU_ASSERT_STRING_EQUAL(trace, "da");
    coil_reactor_advance(r, 1.5);
    CU_ASSERT_STRING_EQUAL(trace, "dab");
    coil_timer_release(a);
    coil_timer_release(b);
    coil_timer_release(d);
    finish(r, c);
}

/* A reset call goes behind calls already due at the same time. */
static void test_timer_reset_tie_order(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    trace_reset();
    coil_timer *a = coil_reactor_call_later(r, 1, record, "a");
    later(r, 2, record, "b");
    coil_timer_reset(a, 2);
    coil_timer_release(a); /* releasing does not cancel */
    coil_reactor_advance(r, 2);
    CU_ASSERT_STRING_EQUAL(trace, "ba");
    finish(r, c);
}

/* ---- timer handles: valid until released, whatever became of the call ---- */

/* Every operation on a handle whose call has run. Against a reactor that
 * freed the handle once the call ran, each of these reads freed memory. */
static void check_called(coil_timer *t)
{
    CU_ASSERT(!coil_timer_active(t));
    CU_ASSERT_EQUAL(coil_timer_cancel(t), COIL_ECALLED);
    CU_ASSERT_EQUAL(coil_timer_reset(t, 1), COIL_ECALLED);
    CU_ASSERT_EQUAL(coil_timer_delay(t, 1), COIL_ECALLED);
    CU_ASSERT_EQUAL(coil_timer_cancel(t), COIL_ECALLED);
}

static void check_cancelled(coil_timer *t)
{
    CU_ASSERT(!coil_timer_active(t));
    CU_ASSERT_EQUAL(coil_timer_cancel(t), COIL_ECANCELLED);
    CU_ASSERT_EQUAL(coil_timer_reset(t, 1), COIL_ECANCELLED);
    CU_ASSERT_EQUAL(coil_timer_delay(t, 1), COIL_ECANCELLED);
    CU_ASSERT_EQUAL(coil_timer_cancel(t), COIL_ECANCELLED);
}

static void test_timer_handle_after_firing(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    trace_reset();
    coil_timer *t = coil_reactor_call_later(r, 2, record, "t");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT(coil_timer_active(t));
    coil_reactor_advance(r, 2);
    CU_ASSERT_STRING_EQUAL(trace, "t");
    check_called(t);
    /* The time it was due stays readable, and the failed reset/delay did not
     * move it or schedule anything. */
    CU_ASSERT_DOUBLE_EQUAL(coil_timer_time(t), 2.0, 1e-9);
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 0);
    /* Twisted's everyday pattern, long after the call ran. */
    coil_reactor_advance(r, 5);
    if (coil_timer_active(t))
        coil_timer_cancel(t);
    CU_ASSERT_STRING_EQUAL(trace, "t");
    coil_timer_release(t);
    finish(r, c);
}

static void test_timer_handle_after_cancel(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    trace_reset();
    coil_timer *t = coil_reactor_call_later(r, 2, record, "t");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(coil_timer_cancel(t), 0);
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 0);
    check_cancelled(t);
    CU_ASSERT_DOUBLE_EQUAL(coil_timer_time(t), 2.0, 1e-9);
    coil_reactor_advance(r, 10);
    CU_ASSERT_STRING_EQUAL(trace, "");
    check_cancelled(t);
    coil_timer_release(t);
    finish(r, c);
}

/* Inside fn the call counts as run: cancel, reset and delay say
 * COIL_ECALLED (Twisted's AlreadyCalled), active is 0, and nothing is
 * rescheduled. */
static coil_timer *self_timer;
static int self_checks;
static int check_self(void *arg)
{
    check_called(self_timer);
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(arg), 0);
    self_checks++;
    return record("s");
}

static void test_timer_handle_inside_own_callback(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    trace_reset();
    self_checks = 0;
    self_timer = coil_reactor_call_later(r, 1, check_self, r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(self_timer);
    coil_reactor_advance(r, 1);
    CU_ASSERT_EQUAL(self_checks, 1);
    /* A reset tried from inside did not re-arm it. */
    coil_reactor_advance(r, 10);
    CU_ASSERT_STRING_EQUAL(trace, "s");
    check_called(self_timer);
    coil_timer_release(self_timer);
    self_timer = NULL;
    finish(r, c);
}

/* A callback that drops the handle it was stored in (the usual shape:
 * `obj->timer = NULL` at the top of the callback) and then asks about it
 * through a second reference. */
static coil_timer *dropped_timer;
static int release_self(void *arg)
{
    coil_timer *t = dropped_timer;
    dropped_timer = NULL;
    coil_timer_release(t);
    record("r");
    return 0;
}

static void test_timer_release_inside_own_callback(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    trace_reset();
    dropped_timer = coil_reactor_call_later(r, 1, release_self, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dropped_timer);
    coil_timer *extra = dropped_timer;
    coil_timer_ref(extra);
    coil_reactor_advance(r, 1);
    CU_ASSERT_STRING_EQUAL(trace, "r");
    CU_ASSERT_PTR_NULL(dropped_timer);
    check_called(extra);
    coil_timer_release(extra);
    finish(r, c);
}

/* Releasing is not cancelling: the call still runs, and nothing leaks
 * (the ASan build checks). */
static void test_timer_release_while_pending(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    trace_reset();
    coil_timer *t = coil_reactor_call_later(r, 1, record, "a");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    coil_timer_release(t);
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 1);
    coil_reactor_advance(r, 1);
    CU_ASSERT_STRING_EQUAL(trace, "a");
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 0);
    /* Fire and forget, the one-call way. */
    CU_ASSERT_EQUAL(coil_reactor_call_later_forget(r, 1, record, "b"), 0);
    coil_reactor_advance(r, 1);
    CU_ASSERT_STRING_EQUAL(trace, "ab");
    finish(r, c);
}

static void test_timer_cancel_then_release(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    trace_reset();
    coil_timer *t = coil_reactor_call_later(r, 1, record, "never");
    CU_ASSERT_EQUAL(coil_timer_cancel(t), 0);
    coil_timer_release(t);
    /* Released after it ran, too. */
    coil_timer *u = coil_reactor_call_later(r, 1, record, "u");
    coil_reactor_advance(r, 2);
    coil_timer_release(u);
    CU_ASSERT_STRING_EQUAL(trace, "u");
    finish(r, c);
}

/* Extra references: the handle lives until the last one goes. */
static void test_timer_extra_references(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    trace_reset();
    coil_timer *t = coil_reactor_call_later(r, 1, record, "a");
    coil_timer_ref(t);
    coil_timer_ref(t);
    coil_timer_release(t);
    coil_reactor_advance(r, 1);
    coil_timer_release(t);
    check_called(t);
    coil_timer_release(t);
    CU_ASSERT_STRING_EQUAL(trace, "a");
    /* NULL handles are refused, not dereferenced. */
    CU_ASSERT_EQUAL(coil_timer_cancel(NULL), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_timer_reset(NULL, 1), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_timer_delay(NULL, 1), COIL_EINVAL);
    CU_ASSERT(!coil_timer_active(NULL));
    coil_timer_ref(NULL);
    coil_timer_release(NULL);
    finish(r, c);
}

/* Freeing the reactor cancels what is pending; the handles stay the
 * caller's and never reach back into the freed reactor. */
static void test_free_with_pending_timers(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    trace_reset();
    coil_timer *kept = coil_reactor_call_later(r, 1, record, "never");
    coil_timer *moved = coil_reactor_call_later(r, 1, record, "never");
    for (int i = 0; i < 100; i++)
        later(r, i, record, "never");
    CU_ASSERT_EQUAL(coil_timer_delay(moved, 5), 0);
    coil_reactor_free(r);
    check_cancelled(kept);
    check_cancelled(moved);
    CU_ASSERT_DOUBLE_EQUAL(coil_timer_time(moved), 6.0, 1e-9);
    coil_timer_release(kept);
    coil_timer_release(moved);
    coil_clock_free(c);
    CU_ASSERT_STRING_EQUAL(trace, "");
}

/* The same on the real clock, through run(): a handle kept across the run
 * that fired it. */
static coil_timer *run_timer;
static int stop_after_check(void *arg)
{
    CU_ASSERT(!coil_timer_active(run_timer));
    CU_ASSERT_EQUAL(coil_timer_cancel(run_timer), COIL_ECALLED);
    return coil_reactor_stop(arg);
}

static void test_timer_handle_real_clock(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    trace_reset();
    run_timer = coil_reactor_call_later(r, 0, record, "x");
    coil_timer *stopper = coil_reactor_call_later(r, 0.01, stop_after_check, r);
    CU_ASSERT_EQUAL(coil_reactor_run(r), 0);
    CU_ASSERT_STRING_EQUAL(trace, "x");
    check_called(run_timer);
    check_called(stopper);
    coil_timer_release(run_timer);
    coil_timer_release(stopper);
    run_timer = NULL;
    coil_reactor_free(r);
}

static unsigned long fired;
static double last_fired_at;
static int order_ok;
static coil_reactor *big_r;
static int count_fire(void *arg)
{
    double now = coil_reactor_seconds(big_r);
    if (now < last_fired_at)
        order_ok = 0;
    last_fired_at = now;
    fired++;
    return 0;
}

static void test_million_timers(void)
{
    enum { N = 1000000 };
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = big_r = coil_test_reactor(c);
    coil_timer **t = malloc(N * sizeof *t);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    srand(7);
    for (size_t i = 0; i < N; i++) {
        t[i] = coil_reactor_call_later(r, (double)(rand() % 100000) / 1000.0, count_fire,
                                       NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t[i]);
    }
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), N);
    for (size_t i = 0; i < N; i += 2)
        CU_ASSERT_EQUAL(coil_timer_cancel(t[i]), 0);
    for (size_t i = 0; i < N; i++)
        coil_timer_release(t[i]);
    free(t);
    fired = 0;
    last_fired_at = 0;
    order_ok = 1;
    coil_reactor_advance(r, 50);
    CU_ASSERT(fired > N / 4 - N / 50 && fired < N / 4 + N / 50);
    coil_reactor_advance(r, 51);
    CU_ASSERT_EQUAL(fired, N / 2);
    CU_ASSERT(order_ok);
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 0);
    finish(r, c);
}

/* ---- call_soon, run, stop ---- */

static coil_reactor *soon_r;
static int queue_more(void *arg)
{
    record("q");
    coil_reactor_call_soon(soon_r, record, "later");
    return 0;
}

static void test_call_soon_order(void)
{
    coil_reactor *r = soon_r = coil_test_reactor(NULL);
    trace_reset();
    coil_reactor_call_soon(r, record, "1");
    coil_reactor_call_soon(r, queue_more, NULL);
    coil_reactor_call_soon(r, record, "2");
    coil_reactor_iterate(r, 0);
    CU_ASSERT_STRING_EQUAL(trace, "1q2");
    coil_reactor_iterate(r, 0);
    CU_ASSERT_STRING_EQUAL(trace, "1q2later");
    coil_reactor_free(r);
}

static int stop_cb(void *arg)
{
    record("stop");
    CU_ASSERT_EQUAL(coil_reactor_stop(arg), 0);
    CU_ASSERT_EQUAL(coil_reactor_stop(arg), COIL_ENOTRUNNING);
    return 0;
}

static int check_running(void *arg)
{
    CU_ASSERT(coil_reactor_is_running(arg));
    CU_ASSERT_EQUAL(coil_reactor_run(arg), COIL_ERUNNING);
    return record("R");
}

static void test_run_stop_and_run_again(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    trace_reset();
    CU_ASSERT_EQUAL(coil_reactor_stop(r), COIL_ENOTRUNNING);
    coil_reactor_call_when_running(r, check_running, r);
    coil_reactor_call_when_running(r, record, "w");
    later(r, 0.01, stop_cb, r);
    CU_ASSERT_EQUAL(coil_reactor_run(r), 0);
    CU_ASSERT(!coil_reactor_is_running(r));
    CU_ASSERT_STRING_EQUAL(trace, "Rwstop");
    /* run() may be called again; call_when_running queued now waits for it. */
    coil_reactor_call_when_running(r, record, "w2");
    later(r, 0.01, stop_cb, r);
    coil_reactor_iterate(r, 0);
    CU_ASSERT_STRING_EQUAL(trace, "Rwstop");
    CU_ASSERT_EQUAL(coil_reactor_run(r), 0);
    CU_ASSERT_STRING_EQUAL(trace, "Rwstopw2stop");
    coil_reactor_free(r);
}

static int fail_cb(void *arg)
{
    record("f");
    return COIL_EINVAL;
}

static void test_callback_error_is_logged_and_loop_goes_on(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    trace_reset();
    coil_test_log_capture_start();
    coil_reactor_call_soon(r, fail_cb, NULL);
    coil_reactor_call_soon(r, record, "next");
    later(r, 0, fail_cb, NULL);
    later(r, 0.02, stop_cb, r);
    CU_ASSERT_EQUAL(coil_reactor_run(r), 0);
    CU_ASSERT_STRING_EQUAL(trace, "ffnextstop"); /* timers, then the soon queue */
    CU_ASSERT(coil_test_log_contains("call_soon callback returned COIL_EINVAL"));
    CU_ASSERT(coil_test_log_contains("timed call returned COIL_EINVAL"));
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_ERROR), 2);
    coil_test_log_capture_stop();
    coil_reactor_free(r);
}

/* ---- system event triggers ---- */

static coil_reactor *trig_r;
static coil_deferred *slow_d;

static int fire_slow(void *arg)
{
    record("F");
    coil_deferred_callback(slow_d, NULL, NULL);
    coil_deferred_unref(slow_d);
    slow_d = NULL;
    return 0;
}

static coil_deferred *before_slow(void *arg)
{
    record("B");
    slow_d = coil_deferred_new();
    later(trig_r, 0.02, fire_slow, NULL);
    return coil_deferred_ref(slow_d);
}

static coil_deferred *trig_record(void *arg)
{
    record(arg);
    return NULL;
}

static coil_deferred *before_fails(void *arg)
{
    record("X");
    return coil_deferred_fail(coil_failure_new(COIL_DOMAIN_USER, 3, "flush failed"));
}

static void test_shutdown_triggers(void)
{
    coil_reactor *r = trig_r = coil_test_reactor(NULL);
    trace_reset();
    coil_test_log_capture_start();
    /* Added out of phase order on purpose. */
    coil_reactor_add_trigger(r, COIL_EVENT_SHUTDOWN, COIL_PHASE_AFTER, trig_record, "A");
    coil_reactor_add_trigger(r, COIL_EVENT_SHUTDOWN, COIL_PHASE_DURING, trig_record, "D");
    coil_reactor_add_trigger(r, COIL_EVENT_SHUTDOWN, COIL_PHASE_BEFORE, before_slow,
                             NULL);
    coil_reactor_add_trigger(r, COIL_EVENT_SHUTDOWN, COIL_PHASE_BEFORE, before_fails,
                             NULL);
    coil_trigger *gone = coil_reactor_add_trigger(r, COIL_EVENT_SHUTDOWN,
                                                  COIL_PHASE_BEFORE, trig_record, "Z");
    coil_reactor_add_trigger(r, COIL_EVENT_STARTUP, COIL_PHASE_DURING, trig_record, "S");
    coil_reactor_remove_trigger(r, gone);
    later(r, 0.01, stop_cb, r);
    CU_ASSERT_EQUAL(coil_reactor_run(r), 0);
    /* "During" waits until the before-deferred fired. */
    CU_ASSERT_STRING_EQUAL(trace, "SstopBXFDA");
    CU_ASSERT(coil_test_log_contains("a system event trigger failed: flush failed"));
    CU_ASSERT(!coil_test_log_contains("Unhandled"));
    coil_test_log_capture_stop();
    /* Triggers stay registered: a second run fires them again. */
    trace_reset();
    later(r, 0.01, stop_cb, r);
    coil_test_log_capture_start();
    CU_ASSERT_EQUAL(coil_reactor_run(r), 0);
    coil_test_log_capture_stop();
    CU_ASSERT_STRING_EQUAL(trace, "SstopBXFDA");
    coil_reactor_free(r);
}

static coil_trigger *self_trigger;
static coil_deferred *remove_self(void *arg)
{
    record("r");
    coil_reactor_remove_trigger(arg, self_trigger);
    return NULL;
}

static void test_trigger_removes_itself(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    trace_reset();
    self_trigger = coil_reactor_add_trigger(r, COIL_EVENT_SHUTDOWN, COIL_PHASE_DURING,
                                            remove_self, r);
    coil_reactor_add_trigger(r, COIL_EVENT_SHUTDOWN, COIL_PHASE_DURING, trig_record, "n");
    coil_reactor_call_soon(r, stop_cb, r);
    coil_reactor_run(r);
    coil_reactor_call_soon(r, stop_cb, r);
    coil_reactor_run(r);
    CU_ASSERT_STRING_EQUAL(trace, "stoprnstopn");
    coil_reactor_free(r);
}

/* ---- fd watches ---- */

struct pipe_ctx {
    coil_watch *w;
    int reads;
    unsigned last_events;
    char buf[64];
    size_t len;
    int free_in_callback;
};

static void on_readable(void *arg, int fd, unsigned events)
{
    struct pipe_ctx *p = arg;
    p->reads++;
    p->last_events = events;
    ssize_t n = read(fd, p->buf + p->len, sizeof p->buf - p->len - 1);
    if (n > 0)
        p->len += (size_t)n;
    if (p->free_in_callback) {
        coil_watch_free(p->w);
        p->w = NULL;
    }
}

static void test_fd_watch(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    int fds[2];
    CU_ASSERT_EQUAL_FATAL(pipe2(fds, O_NONBLOCK), 0);
    struct pipe_ctx p = {0};
    CU_ASSERT_EQUAL_FATAL(
        coil_reactor_watch_fd(r, fds[0], COIL_IO_READ, on_readable, &p, &p.w), 0);
    coil_watch *dup_w;
    CU_ASSERT_EQUAL(
        coil_reactor_watch_fd(r, fds[0], COIL_IO_READ, on_readable, &p, &dup_w),
        COIL_EBUSY);
    CU_ASSERT_EQUAL(coil_reactor_watch_fd(r, -1, COIL_IO_READ, on_readable, &p, &dup_w),
                    COIL_EINVAL);
    coil_reactor_iterate(r, 0);
    CU_ASSERT_EQUAL(p.reads, 0);
    CU_ASSERT_EQUAL(write(fds[1], "hello", 5), 5);
    coil_reactor_iterate(r, 1);
    CU_ASSERT_EQUAL(p.reads, 1);
    CU_ASSERT_EQUAL(p.len, 5);
    CU_ASSERT(p.last_events & COIL_IO_READ);
    /* Waiting for nothing: no callbacks, even on hang-up. */
    CU_ASSERT_EQUAL(coil_watch_set_events(p.w, 0), 0);
    CU_ASSERT_EQUAL(coil_watch_events(p.w), 0);
    CU_ASSERT_EQUAL(write(fds[1], "!", 1), 1);
    close(fds[1]);
    coil_reactor_iterate(r, 0.02);
    CU_ASSERT_EQUAL(p.reads, 1);
    /* Back on: the data, then EOF with a hang-up; free from the callback. */
    CU_ASSERT_EQUAL(coil_watch_set_events(p.w, COIL_IO_READ), 0);
    coil_reactor_iterate(r, 1);
    CU_ASSERT_EQUAL(p.reads, 2);
    CU_ASSERT_STRING_EQUAL(p.buf, "hello!");
    p.free_in_callback = 1;
    coil_reactor_iterate(r, 1);
    CU_ASSERT_EQUAL(p.reads, 3);
    CU_ASSERT(p.last_events & (COIL_IO_HUP | COIL_IO_READ));
    CU_ASSERT_PTR_NULL(p.w);
    coil_reactor_iterate(r, 0);
    CU_ASSERT_EQUAL(p.reads, 3);
    close(fds[0]);
    coil_reactor_free(r);
}

struct pair_ctx {
    coil_watch *w[2];
    int fd[2];
    int calls;
};

/* Two fds ready in one pass; the first callback frees the other watch. The
 * freed watch must not be called. */
static void free_other(void *arg, int fd, unsigned events)
{
    struct pair_ctx *p = arg;
    p->calls++;
    int other = fd == p->fd[0] ? 1 : 0;
    int self = 1 - other;
    if (p->w[other]) {
        coil_watch_free(p->w[other]);
        p->w[other] = NULL;
    }
    coil_watch_free(p->w[self]);
    p->w[self] = NULL;
}

static void test_free_other_watch_in_same_pass(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    int a[2], b[2];
    CU_ASSERT_EQUAL_FATAL(pipe2(a, O_NONBLOCK), 0);
    CU_ASSERT_EQUAL_FATAL(pipe2(b, O_NONBLOCK), 0);
    struct pair_ctx p = {{NULL, NULL}, {a[0], b[0]}, 0};
    CU_ASSERT_EQUAL(coil_reactor_watch_fd(r, a[0], COIL_IO_READ, free_other, &p, &p.w[0]),
                    0);
    CU_ASSERT_EQUAL(coil_reactor_watch_fd(r, b[0], COIL_IO_READ, free_other, &p, &p.w[1]),
                    0);
    CU_ASSERT_EQUAL(write(a[1], "x", 1), 1);
    CU_ASSERT_EQUAL(write(b[1], "x", 1), 1);
    coil_reactor_iterate(r, 1);
    CU_ASSERT_EQUAL(p.calls, 1);
    for (int i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
    }
    coil_reactor_free(r);
}

static void on_writable(void *arg, int fd, unsigned events)
{
    int *n = arg;
    if (events & COIL_IO_WRITE)
        (*n)++;
}

static void test_fd_writable(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    int fds[2];
    CU_ASSERT_EQUAL_FATAL(pipe2(fds, O_NONBLOCK), 0);
    int n = 0;
    coil_watch *w;
    CU_ASSERT_EQUAL(coil_reactor_watch_fd(r, fds[1], COIL_IO_WRITE, on_writable, &n, &w),
                    0);
    coil_reactor_iterate(r, 0);
    CU_ASSERT_EQUAL(n, 1);
    /* Fill the pipe: no longer writable. */
    char buf[4096] = {0};
    while (write(fds[1], buf, sizeof buf) > 0)
        ;
    coil_reactor_iterate(r, 0);
    CU_ASSERT_EQUAL(n, 1);
    coil_watch_free(w);
    close(fds[0]);
    close(fds[1]);
    coil_reactor_free(r);
}

/* ---- call_from_thread ---- */

enum { THREADS = 4, CALLS = 10000 };
static unsigned char delivered[THREADS * CALLS];
static int total_delivered, duplicates, out_of_order;
static int last_seen[THREADS];
static coil_reactor *thread_r;

static int deliver(void *arg)
{
    size_t id = (size_t)(uintptr_t)arg;
    if (delivered[id]++)
        duplicates++;
    int thread = (int)(id / CALLS), seq = (int)(id % CALLS);
    if (seq <= last_seen[thread])
        out_of_order++;
    last_seen[thread] = seq;
    if (++total_delivered == THREADS * CALLS)
        coil_reactor_stop(thread_r);
    return 0;
}

static void *producer(void *arg)
{
    size_t t = (size_t)(uintptr_t)arg;
    for (size_t i = 0; i < CALLS; i++) {
        int rc = coil_reactor_call_from_thread(thread_r, deliver,
                                               (void *)(uintptr_t)(t * CALLS + i));
        if (rc != 0)
            return (void *)1;
        if (i % 1000 == 0)
            sched_yield();
    }
    return NULL;
}

static int start_producers(void *arg)
{
    pthread_t *th = arg;
    for (size_t i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, producer, (void *)(uintptr_t)i);
    return 0;
}

static void test_call_from_thread(void)
{
    coil_reactor *r = thread_r = coil_test_reactor(NULL);
    memset(delivered, 0, sizeof delivered);
    total_delivered = duplicates = out_of_order = 0;
    for (int i = 0; i < THREADS; i++)
        last_seen[i] = -1;
    pthread_t th[THREADS];
    coil_reactor_call_when_running(r, start_producers, th);
    CU_ASSERT_EQUAL(coil_reactor_run(r), 0);
    for (size_t i = 0; i < THREADS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        CU_ASSERT_PTR_NULL(ret);
    }
    CU_ASSERT_EQUAL(total_delivered, THREADS * CALLS);
    CU_ASSERT_EQUAL(duplicates, 0);
    CU_ASSERT_EQUAL(out_of_order, 0);
    int missing = 0;
    for (size_t i = 0; i < THREADS * CALLS; i++)
        missing += delivered[i] != 1;
    CU_ASSERT_EQUAL(missing, 0);
    coil_reactor_free(r);
}

static void *wake_later(void *arg)
{
    /* The pause is what is tested, not a wait for something: the call
     * should find the reactor asleep. Should the machine be so slow that it
     * comes first, the test still passes (it tests less). */
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL);
    coil_reactor_call_from_thread(arg, record, "woken");
    return NULL;
}

/* A reactor asleep with nothing to do wakes for a call from a thread. */
static void test_call_from_thread_wakes_sleeper(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    trace_reset();
    pthread_t th;
    pthread_create(&th, NULL, wake_later, r);
    coil_reactor_iterate(r, 10); /* would sleep 10 s without the wake-up */
    coil_reactor_iterate(r, 0);
    pthread_join(th, NULL);
    CU_ASSERT_STRING_EQUAL(trace, "woken");
    coil_reactor_free(r);
}

/* ---- signals ---- */

static int raise_signal(void *arg)
{
    record("raise");
    raise(*(int *)arg);
    return 0;
}

static void test_signals_stop_cleanly(void)
{
    static int signals[] = {SIGINT, SIGTERM};
    static const char *names[] = {"received SIGINT; stopping the reactor",
                                  "received SIGTERM; stopping the reactor"};
    for (int i = 0; i < 2; i++) {
        coil_reactor_options o = {0};
        o.handle_signals = 1;
        coil_reactor *r;
        CU_ASSERT_EQUAL_FATAL(coil_reactor_new(&r, &o), 0);
        trace_reset();
        coil_reactor_add_trigger(r, COIL_EVENT_SHUTDOWN, COIL_PHASE_AFTER, trig_record,
                                 "A");
        later(r, 0.01, raise_signal, &signals[i]);
        coil_test_log_capture_start();
        CU_ASSERT_EQUAL(coil_reactor_run(r), 0);
        CU_ASSERT(coil_test_log_contains(names[i]));
        coil_test_log_capture_stop();
        CU_ASSERT_STRING_EQUAL(trace, "raiseA");
        /* The previous disposition is back once run() returns. */
        struct sigaction sa;
        sigaction(signals[i], NULL, &sa);
        CU_ASSERT_PTR_EQUAL(sa.sa_handler, SIG_DFL);
        coil_reactor_free(r);
    }
}

/* Without the option, the reactor leaves signal dispositions alone, also
 * while it runs. */
static void (*handler_while_running)(int);
static int look_at_sigint(void *arg)
{
    struct sigaction sa;
    sigaction(SIGINT, NULL, &sa);
    handler_while_running = sa.sa_handler;
    return coil_reactor_stop(arg);
}

static void test_signals_not_handled_by_default(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_reactor_call_soon(r, look_at_sigint, r);
    handler_while_running = (void (*)(int))1;
    coil_reactor_run(r);
    CU_ASSERT_PTR_EQUAL(handler_while_running, SIG_DFL);
    coil_reactor_free(r);
}

/* ---- idleness ---- */

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_idle_reactor_sleeps(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    trace_reset();
    later(r, 0.5, stop_cb, r);
    double cpu0 = cpu_seconds(), wall0 = coil_reactor_seconds(r);
    CU_ASSERT_EQUAL(coil_reactor_run(r), 0);
    double cpu = cpu_seconds() - cpu0, wall = coil_reactor_seconds(r) - wall0;
    CU_ASSERT(wall >= 0.5);
    CU_ASSERT(wall < 2.0);
    /* Asleep in epoll_wait/poll, not spinning: far under 5% of a core. */
    CU_ASSERT(cpu < 0.025);
    CU_ASSERT_STRING_EQUAL(trace, "stop");
    coil_reactor_free(r);
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_backend_from_env),
        COIL_TEST(test_backend_bad_env),
        COIL_TEST(test_two_reactors),
        COIL_TEST(test_timer_order),
        COIL_TEST(test_advance_runs_calls_scheduled_in_window),
        COIL_TEST(test_timer_sees_its_due_time),
        COIL_TEST(test_timer_cancel),
        COIL_TEST(test_timer_reset_and_delay),
        COIL_TEST(test_timer_reset_tie_order),
        COIL_TEST(test_timer_handle_after_firing),
        COIL_TEST(test_timer_handle_after_cancel),
        COIL_TEST(test_timer_handle_inside_own_callback),
        COIL_TEST(test_timer_release_inside_own_callback),
        COIL_TEST(test_timer_release_while_pending),
        COIL_TEST(test_timer_cancel_then_release),
        COIL_TEST(test_timer_extra_references),
        COIL_TEST(test_free_with_pending_timers),
        COIL_TEST(test_timer_handle_real_clock),
        COIL_TEST(test_million_timers),
        COIL_TEST(test_call_soon_order),
        COIL_TEST(test_run_stop_and_run_again),
        COIL_TEST(test_callback_error_is_logged_and_loop_goes_on),
        COIL_TEST(test_shutdown_triggers),
        COIL_TEST(test_trigger_removes_itself),
        COIL_TEST(test_fd_watch),
        COIL_TEST(test_free_other_watch_in_same_pass),
        COIL_TEST(test_fd_writable),
        COIL_TEST(test_call_from_thread),
        COIL_TEST(test_call_from_thread_wakes_sleeper),
        COIL_TEST(test_signals_stop_cleanly),
        COIL_TEST(test_signals_not_handled_by_default),
        COIL_TEST(test_idle_reactor_sleeps),
        {NULL, NULL},
    };
    return coil_test_add_suite("reactor", cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
