/* Looping calls: a function called every interval, keeping to the schedule
 * start + k * interval and skipping missed intervals (Twisted's
 * LoopingCall, with its withCount variant). */
#include "reactor_internal.h"

#include <stdlib.h>

#include <coil/deferred.h>
#include <coil/log.h>

struct coil_looping_call {
    coil_reactor *r;
    coil_loop_fn fn;
    coil_loop_count_fn count_fn;
    void *arg;
    int64_t interval; /* ns */
    int64_t start;    /* ns */
    int64_t last;     /* ns: time of the previous call (count variant) */
    int have_last;
    int run_at_start;
    int running;
    int in_call;
    int free_after_call;
    coil_timer *timer; /* pending call, or NULL */
    coil_deferred *done;
};

static coil_looping_call *lc_new(coil_reactor *r, coil_loop_fn fn,
                                 coil_loop_count_fn count_fn, void *arg)
{
    if (!r || (!fn && !count_fn))
        return NULL;
    coil_looping_call *lc = calloc(1, sizeof *lc);
    if (!lc)
        return NULL;
    lc->r = r;
    lc->fn = fn;
    lc->count_fn = count_fn;
    lc->arg = arg;
    return lc;
}

coil_looping_call *coil_looping_call_new(coil_reactor *r, coil_loop_fn fn, void *arg)
{
    return lc_new(r, fn, NULL, arg);
}

coil_looping_call *coil_looping_call_new_with_count(coil_reactor *r,
                                                    coil_loop_count_fn fn, void *arg)
{
    return lc_new(r, NULL, fn, arg);
}

static int lc_fire(void *arg);

/* Floor division for the interval number of a time. */
static int64_t interval_of(const coil_looping_call *lc, int64_t t)
{
    int64_t d = t - lc->start;
    int64_t q = d / lc->interval;
    if (d % lc->interval != 0 && d < 0)
        q--;
    return q;
}

static int schedule_from(coil_looping_call *lc, int64_t when)
{
    int64_t running_for = when - lc->start;
    int64_t until_next = lc->interval - (running_for % lc->interval);
    if (until_next <= 0)
        until_next = lc->interval;
    lc->timer = coil_reactor_call_later(lc->r, (double)until_next / 1e9, lc_fire, lc);
    return lc->timer ? 0 : COIL_ENOMEM;
}

static void finish(coil_looping_call *lc, coil_failure *failure)
{
    coil_deferred *d = lc->done;
    lc->done = NULL;
    lc->running = 0;
    if (!d) {
        coil_failure_free(failure);
        return;
    }
    if (failure)
        coil_deferred_errback(d, failure);
    else
        coil_deferred_callback(d, NULL, NULL);
    coil_deferred_unref(d);
}

static int lc_fire(void *arg)
{
    coil_looping_call *lc = arg;
    coil_timer_release(lc->timer);
    lc->timer = NULL;
    int64_t now = coil__reactor_now_ns(lc->r);
    int rc = 0;
    lc->in_call = 1;
    if (lc->fn) {
        rc = lc->fn(lc->arg);
    } else {
        int64_t last =
            lc->have_last ? lc->last : lc->start - (lc->run_at_start ? lc->interval : 0);
        int64_t count = interval_of(lc, now) - interval_of(lc, last);
        if (count > 0) {
            lc->last = now;
            lc->have_last = 1;
            rc = lc->count_fn(lc->arg, (unsigned long)count);
        }
    }
    lc->in_call = 0;
    if (rc < 0) {
        finish(lc, coil_failure_new(COIL_DOMAIN_COIL, rc,
                                    "looping call stopped: its function returned %s (%s)",
                                    coil_err_name(rc), coil_strerror(rc)));
    } else if (lc->running) {
        if (schedule_from(lc, coil__reactor_now_ns(lc->r)) != 0)
            finish(lc, coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                        "looping call stopped: out of memory "
                                        "scheduling its next call"));
    } else {
        finish(lc, NULL); /* stopped from inside the function */
    }
    if (lc->free_after_call)
        free(lc);
    return 0;
}

int coil_looping_call_start(coil_looping_call *lc, double interval, int now,
                            coil_deferred **done)
{
    if (done)
        *done = NULL;
    if (!lc || !(interval > 0))
        return COIL_EINVAL;
    if (lc->running)
        return COIL_ESTATE;
    int64_t ns = coil__seconds_to_ns(interval);
    if (ns <= 0)
        return COIL_EINVAL;
    lc->done = coil_deferred_new();
    if (!lc->done)
        return COIL_ENOMEM;
    lc->interval = ns;
    lc->start = coil__reactor_now_ns(lc->r);
    lc->have_last = 0;
    lc->run_at_start = now != 0;
    lc->running = 1;
    if (done)
        *done = coil_deferred_ref(lc->done);
    if (now) {
        lc_fire(lc);
        return 0;
    }
    if (schedule_from(lc, lc->start) != 0) {
        lc->running = 0;
        if (done) {
            coil_deferred_unref(*done);
            *done = NULL;
        }
        coil_deferred_unref(lc->done);
        lc->done = NULL;
        return COIL_ENOMEM;
    }
    return 0;
}

int coil_looping_call_stop(coil_looping_call *lc)
{
    if (!lc || !lc->running)
        return COIL_ESTATE;
    lc->running = 0;
    if (lc->timer) {
        coil_timer_cancel(lc->timer);
        coil_timer_release(lc->timer);
        lc->timer = NULL;
    }
    /* Inside the function the deferred fires once it returns. */
    if (!lc->in_call)
        finish(lc, NULL);
    return 0;
}

int coil_looping_call_running(const coil_looping_call *lc)
{
    return lc && lc->running;
}

void coil_looping_call_free(coil_looping_call *lc)
{
    if (!lc)
        return;
    if (lc->running)
        coil_looping_call_stop(lc);
    if (lc->in_call)
        lc->free_after_call = 1;
    else
        free(lc);
}
