/* Deferreds: Twisted's Deferred in C. See coil/deferred.h for the contract.
 *
 * The chain runs in one loop, never by recursion: when a deferred that
 * another waits on finishes its chain, the loop hands the result over and
 * goes on with the waiting one (Twisted's _runCallbacks does the same with
 * its chain stack), so neither long chains nor deep nests grow the C stack.
 * Freeing and cancelling walk the same links with loops, for the same
 * reason. */
#include "deferred_internal.h"

#include <stdlib.h>
#include <string.h>

#include <coil/log.h>

#define LOG_MODULE "deferred"

/* ---- results ------------------------------------------------------------ */

static void clear_result(coil_deferred *d)
{
    coil_failure *f = d->failure;
    void *v = d->value;
    coil_destroy_fn destroy = d->destroy;
    d->failure = NULL;
    d->value = NULL;
    d->destroy = NULL;
    /* Destroy after clearing: a destroy function may look at the deferred. */
    coil_failure_free(f);
    if (destroy)
        destroy(v);
}

void coil_deferred_set_result(coil_deferred *d, void *value, coil_destroy_fn destroy)
{
    clear_result(d);
    d->value = value;
    d->destroy = destroy;
}

void coil_deferred_set_failure(coil_deferred *d, coil_failure *failure)
{
    clear_result(d);
    d->failure = failure;
}

void *coil_deferred_take_result(coil_deferred *d, coil_destroy_fn *destroy)
{
    void *v = d->value;
    if (destroy)
        *destroy = d->destroy;
    d->value = NULL;
    d->destroy = NULL;
    return v;
}

coil_failure *coil_deferred_take_failure(coil_deferred *d)
{
    coil_failure *f = d->failure;
    d->failure = NULL;
    return f;
}

int coil_deferred_is_failure(const coil_deferred *d)
{
    return d->failure != NULL;
}

void *coil_deferred_result(const coil_deferred *d)
{
    return d->failure ? NULL : d->value;
}

const coil_failure *coil_deferred_failure(const coil_deferred *d)
{
    return d->failure;
}

/* Move `from`'s result into `to`, leaving a NULL value in `from`. */
static void move_result(coil_deferred *from, coil_deferred *to)
{
    coil_failure *f = from->failure;
    void *v = from->value;
    coil_destroy_fn destroy = from->destroy;
    from->failure = NULL;
    from->value = NULL;
    from->destroy = NULL;
    clear_result(to);
    to->failure = f;
    to->value = v;
    to->destroy = destroy;
}

/* ---- life cycle --------------------------------------------------------- */

coil_deferred *coil_deferred_new(void)
{
    coil_deferred *d = calloc(1, sizeof *d);
    if (d)
        d->refs = 1;
    return d;
}

coil_deferred *coil__deferred_new_cancellable_full(coil_canceller_fn canceller, void *arg,
                                                   coil_destroy_fn destroy_arg)
{
    coil_deferred *d = coil_deferred_new();
    if (d) {
        d->canceller = canceller;
        d->canceller_arg = arg;
        d->canceller_destroy = destroy_arg;
    }
    return d;
}

coil_deferred *coil_deferred_new_cancellable(coil_canceller_fn canceller, void *arg)
{
    return coil__deferred_new_cancellable_full(canceller, arg, NULL);
}

coil_deferred *coil_deferred_succeed(void *value, coil_destroy_fn destroy)
{
    coil_deferred *d = coil_deferred_new();
    if (!d) {
        if (destroy)
            destroy(value);
        return NULL;
    }
    coil_deferred_callback(d, value, destroy);
    return d;
}

coil_deferred *coil_deferred_fail(coil_failure *failure)
{
    coil_deferred *d = coil_deferred_new();
    if (!d) {
        coil_failure_free(failure);
        return NULL;
    }
    coil_deferred_errback(d, failure);
    return d;
}

coil_deferred *coil_deferred_ref(coil_deferred *d)
{
    if (d)
        d->refs++;
    return d;
}

/* Free `d`. Returns the deferred that waited on it, whose reference `d` held
 * and the caller must now drop: unref loops over it instead of recursing, so
 * abandoning a deep nest of unfired deferreds does not grow the stack. */
static coil_deferred *deferred_free(coil_deferred *d)
{
    coil_deferred *outer = d->chained_to;
    if (outer)
        outer->waiting_on = NULL; /* it stays paused: nobody can fire `d` now */
    /* Pending steps never run; their arguments are still released. */
    for (size_t i = d->head; i < d->len; i++)
        if (d->steps[i].destroy_arg)
            d->steps[i].destroy_arg(d->steps[i].arg);
    free(d->steps);
    if (d->canceller_destroy)
        d->canceller_destroy(d->canceller_arg);
    if (d->failure) {
        char *text = coil_failure_to_string(d->failure);
        coil_log(COIL_LOG_ERROR, LOG_MODULE, "Unhandled error in deferred: %s",
                 text ? text : coil_failure_message(d->failure));
        free(text);
    }
    clear_result(d);
    free(d);
    return outer;
}

void coil_deferred_unref(coil_deferred *d)
{
    while (d && --d->refs == 0)
        d = deferred_free(d);
}

int coil_deferred_called(const coil_deferred *d)
{
    return d->called;
}

int coil_deferred_paused(const coil_deferred *d)
{
    return d->paused;
}

/* ---- the run loop -------------------------------------------------------- */

static void run_callbacks(coil_deferred *d)
{
    /* The loop holds a reference to the deferred it runs, so a step may drop
     * the last outside reference. */
    coil_deferred *cur = coil_deferred_ref(d);
    while (cur) {
        /* Running further up the stack, or waiting: that loop, or the
         * handover, goes on with it. */
        if (cur->running || cur->paused || !cur->called) {
            coil_deferred_unref(cur);
            return;
        }
        cur->running = 1;
        while (cur->head < cur->len && !cur->paused) {
            /* A copy: a step may add steps, which may move the array. */
            coil__step s = cur->steps[cur->head++];
            coil_deferred_fn fn = cur->failure ? s.errback : s.callback;
            if (fn)
                fn(cur, s.arg);
            if (s.destroy_arg)
                s.destroy_arg(s.arg);
        }
        cur->running = 0;
        if (cur->paused) {
            coil_deferred_unref(cur);
            return;
        }
        cur->head = cur->len = 0;
        coil_deferred *outer = cur->chained_to;
        if (!outer) {
            coil_deferred_unref(cur);
            return;
        }
        /* Hand the result over and go on with the deferred that waited. The
         * link's reference to `outer` becomes the loop's. */
        cur->chained_to = NULL;
        outer->waiting_on = NULL;
        outer->paused = 0;
        move_result(cur, outer);
        coil_deferred_unref(cur);
        cur = outer;
    }
}

/* ---- firing --------------------------------------------------------------- */

static int fire(coil_deferred *d, void *value, coil_destroy_fn destroy,
                coil_failure *failure)
{
    if (d->called) {
        int suppressed = d->suppress;
        d->suppress = 0;
        coil_failure_free(failure);
        if (destroy)
            destroy(value);
        return suppressed ? 0 : COIL_EALREADY;
    }
    d->called = 1;
    d->value = value;
    d->destroy = destroy;
    d->failure = failure;
    run_callbacks(d);
    return 0;
}

int coil_deferred_callback(coil_deferred *d, void *value, coil_destroy_fn destroy)
{
    return fire(d, value, destroy, NULL);
}

int coil_deferred_errback(coil_deferred *d, coil_failure *failure)
{
    if (!failure)
        failure = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                   "coil_deferred_errback called without a failure");
    return fire(d, NULL, NULL, failure);
}

/* ---- the chain ------------------------------------------------------------- */

int coil_deferred_add_callbacks_full(coil_deferred *d, coil_deferred_fn callback,
                                     coil_deferred_fn errback, void *arg,
                                     coil_destroy_fn destroy_arg)
{
    if (d->len == d->cap) {
        if (d->head > 0 && !d->running) {
            /* Reuse the space of the steps that have run. */
            memmove(d->steps, d->steps + d->head, (d->len - d->head) * sizeof *d->steps);
            d->len -= d->head;
            d->head = 0;
        }
        if (d->len == d->cap) {
            size_t cap = d->cap ? d->cap * 2 : 4;
            coil__step *steps = realloc(d->steps, cap * sizeof *steps);
            if (!steps) {
                if (destroy_arg)
                    destroy_arg(arg);
                return COIL_ENOMEM;
            }
            d->steps = steps;
            d->cap = cap;
        }
    }
    d->steps[d->len++] = (coil__step){callback, errback, arg, destroy_arg};
    if (d->called && !d->running && !d->paused)
        run_callbacks(d);
    return 0;
}

int coil_deferred_add_callbacks(coil_deferred *d, coil_deferred_fn callback,
                                coil_deferred_fn errback, void *arg)
{
    return coil_deferred_add_callbacks_full(d, callback, errback, arg, NULL);
}

int coil_deferred_add_callback(coil_deferred *d, coil_deferred_fn callback, void *arg)
{
    return coil_deferred_add_callbacks_full(d, callback, NULL, arg, NULL);
}

int coil_deferred_add_errback(coil_deferred *d, coil_deferred_fn errback, void *arg)
{
    return coil_deferred_add_callbacks_full(d, NULL, errback, arg, NULL);
}

int coil_deferred_add_both(coil_deferred *d, coil_deferred_fn fn, void *arg)
{
    return coil_deferred_add_callbacks_full(d, fn, fn, arg, NULL);
}

void coil_deferred_chain(coil_deferred *d, coil_deferred *other)
{
    if (!other) {
        /* Most likely a constructor that ran out of memory. */
        coil_deferred_set_failure(
            d, coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                "deferred chained to NULL (out of memory?)"));
        return;
    }
    if (!d->called || d->paused) {
        /* Not inside a step, or a second chain in the same step: there is no
         * result to fail, and the chain already waits on something. */
        coil_log(COIL_LOG_ERROR, LOG_MODULE,
                 "coil_deferred_chain on a deferred that is %s; ignored",
                 d->paused ? "already paused" : "not fired");
        coil_deferred_unref(other);
        return;
    }
    if (other == d || other->chained_to) {
        coil_deferred_unref(other);
        coil_deferred_set_failure(
            d, coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                other == d ? "a deferred cannot be chained to itself"
                                           : "deferred is already chained"));
        return;
    }
    if (other->called && !other->running && !other->paused) {
        /* It has its final result: take it now, without pausing. */
        move_result(other, d);
        coil_deferred_unref(other);
        return;
    }
    /* The step's result is used up: what `d` goes on with is `other`'s. Free
     * it now, so a paused deferred holds no failure to report if it is
     * abandoned. */
    clear_result(d);
    d->paused = 1;
    d->waiting_on = other;
    other->chained_to = coil_deferred_ref(d);
    /* `other` lives as long as whoever will fire it holds it. If nobody does,
     * this frees it, and `d` simply stays paused. */
    coil_deferred_unref(other);
}

/* ---- cancellation and timeouts ---------------------------------------------- */

void coil_deferred_cancel(coil_deferred *d)
{
    /* A deferred paused on another cancels that one, down to the innermost
     * (a loop, not recursion: nests may be deep). */
    while (d->called && d->paused && d->waiting_on)
        d = d->waiting_on;
    if (d->called)
        return;
    coil_deferred_ref(d);
    if (d->canceller)
        d->canceller(d, d->canceller_arg);
    else
        /* Nobody stops the operation, so its producer will still fire d:
         * swallow that one call (Twisted's _suppressAlreadyCalled). With a
         * canceller, a later fire is the producer's bug and gets
         * COIL_EALREADY, as Twisted raises AlreadyCalledError. */
        d->suppress = 1;
    if (!d->called)
        coil_deferred_errback(d, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED,
                                                  "deferred was cancelled"));
    coil_deferred_unref(d);
}

typedef struct timeout_ctx {
    coil_deferred *d;
    coil_timer *timer; /* pending, or NULL once it fired or was cancelled */
    double seconds;
    int timed_out;
} timeout_ctx;

/* The step's argument: the timer handle goes with it. */
static void timeout_ctx_free(void *arg)
{
    timeout_ctx *t = arg;
    if (t->timer) {
        (void)coil_timer_cancel(t->timer);
        coil_timer_release(t->timer);
    }
    free(t);
}

/* The timer: time is up. It holds a reference to `d` until it has run. */
static int timeout_fire(void *arg)
{
    timeout_ctx *t = arg;
    coil_deferred *d = t->d;
    /* The step that runs inside cancel must not cancel this timer, nor drop
     * the timer's reference: that is done here, after. */
    coil_timer_release(t->timer);
    t->timer = NULL;
    t->timed_out = 1;
    /* `t` may be freed by the step that runs inside cancel: not used after. */
    coil_deferred_cancel(d);
    coil_deferred_unref(d); /* the timer's reference */
    return 0;
}

/* The step, at the end of the chain as it was when the timeout was added:
 * runs once, when `d` has its result there (or never, when `d` is freed
 * first; then only its argument is freed). */
static void timeout_step(coil_deferred *d, void *arg)
{
    timeout_ctx *t = arg;
    if (t->timer) {
        /* `d` fired in time. The reactor has no destroy function for a
         * timer's argument, so the timer's reference is dropped here. The
         * chain's own reference keeps `d` alive through the step. */
        (void)coil_timer_cancel(t->timer);
        coil_timer_release(t->timer);
        t->timer = NULL;
        coil_deferred_unref(t->d);
    }
    if (t->timed_out && d->failure &&
        coil_failure_check(d->failure, COIL_DOMAIN_COIL, COIL_ECANCELLED)) {
        coil_deferred_set_failure(d, coil_failure_wrap(coil_deferred_take_failure(d),
                                                       COIL_DOMAIN_COIL, COIL_ETIMEDOUT,
                                                       "deferred timed out after %g s",
                                                       t->seconds));
    }
}

int coil_deferred_add_timeout(coil_deferred *d, coil_reactor *r, double seconds)
{
    if (!d || !r || !(seconds >= 0))
        return COIL_EINVAL;
    /* Fired and done: the step would run at once and cancel the timer.
     * (A paused or running deferred still gets one: it may be waiting.) */
    if (d->called && !d->paused && !d->running)
        return 0;
    timeout_ctx *t = calloc(1, sizeof *t);
    if (!t)
        return COIL_ENOMEM;
    t->d = d;
    t->seconds = seconds;
    /* If the reactor is freed with the timer pending, the timer's reference
     * to `d` is never dropped and `d` leaks: free reactors after their
     * deferreds have fired (or cancel them first). */
    t->timer = coil_reactor_call_later(r, seconds, timeout_fire, t);
    if (!t->timer) {
        free(t);
        return COIL_ENOMEM;
    }
    coil_deferred_ref(d);
    int rc = coil_deferred_add_callbacks_full(d, timeout_step, timeout_step, t,
                                              timeout_ctx_free);
    if (rc != 0) {
        /* `t` is already freed, and with it the timer cancelled. */
        coil_deferred_unref(d);
    }
    return rc;
}

/* deferLater: the timer owns the context and a reference to the deferred
 * until it runs or is cancelled; the canceller (which runs only while the
 * deferred is unfired, so while the timer is pending) cancels it. */
typedef struct later_ctx {
    coil_deferred *d;
    coil_timer *timer;
} later_ctx;

static int later_fire(void *arg)
{
    later_ctx *l = arg;
    coil_deferred *d = l->d;
    coil_timer_release(l->timer);
    free(l);
    /* The context is gone: a cancel from a callback below must not see it
     * (it could not run anyway once `d` has fired). */
    d->canceller = NULL;
    d->canceller_arg = NULL;
    (void)coil_deferred_callback(d, NULL, NULL);
    coil_deferred_unref(d); /* the timer's reference */
    return 0;
}

static void later_cancel(coil_deferred *d, void *arg)
{
    later_ctx *l = arg;
    (void)coil_timer_cancel(l->timer);
    coil_timer_release(l->timer);
    free(l);
    d->canceller_arg = NULL;
    /* coil_deferred_cancel holds its own reference while this runs, then
     * fails `d` with COIL_ECANCELLED. */
    coil_deferred_unref(d); /* the timer's reference */
}

coil_deferred *coil_deferred_later(coil_reactor *r, double seconds)
{
    if (!r)
        return NULL;
    if (!(seconds >= 0) || seconds > 1e12)
        return coil_deferred_fail(coil_failure_new(
            COIL_DOMAIN_COIL, COIL_EINVAL,
            "coil_deferred_later: delay %g s is not a number of seconds >= 0", seconds));
    later_ctx *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    coil_deferred *d = coil_deferred_new_cancellable(later_cancel, l);
    if (!d) {
        free(l);
        return NULL;
    }
    l->d = d;
    l->timer = coil_reactor_call_later(r, seconds, later_fire, l);
    if (!l->timer) {
        free(l);
        d->canceller = NULL;
        d->canceller_arg = NULL;
        coil_deferred_unref(d);
        return NULL;
    }
    coil_deferred_ref(d); /* the timer's */
    return d;
}
