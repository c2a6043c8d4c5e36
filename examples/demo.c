/* coil-demo: timers, a looping call and a deferred chain on one reactor.
 *
 * What happens:
 *   - a looping call ticks every 0.2 s;
 *   - a "slow fetch" returns a deferred that fires 0.5 s later; a chain of
 *     callbacks turns its value into a greeting, fails on purpose, and an
 *     errback recovers;
 *   - a timer is scheduled and then cancelled, another is reset later;
 *   - after 1.2 s the reactor stops, and a shutdown trigger says goodbye.
 * Press Ctrl-C to stop it early: the reactor handles SIGINT cleanly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coil/coil.h>

static coil_reactor *reactor;

static double now(void)
{
    return coil_reactor_seconds(reactor);
}

static double t0;

#define SAY(...)                          \
    do {                                  \
        printf("[%5.2f s] ", now() - t0); \
        printf(__VA_ARGS__);              \
        printf("\n");                     \
        fflush(stdout);                   \
    } while (0)

/* ---- a looping call ---- */
static int tick(void *arg, unsigned long count)
{
    int *ticks = arg;
    *ticks += 1;
    SAY("tick %d (intervals since last tick: %lu)", *ticks, count);
    return 0;
}

/* ---- a deferred chain ---- */
static int fire_fetch(void *arg)
{
    coil_deferred *d = arg;
    SAY("slow fetch done: firing its deferred with \"coil\"");
    coil_deferred_callback(d, strdup("coil"), free);
    coil_deferred_unref(d); /* the producer's reference */
    return 0;
}

/* Returns a deferred that fires in 0.5 s: the caller gets one reference,
 * the timer keeps another until it has fired the deferred. */
static coil_deferred *slow_fetch(void)
{
    coil_deferred *d = coil_deferred_new();
    if (!d)
        return NULL;
    int rc =
        coil_reactor_call_later_forget(reactor, 0.5, fire_fetch, coil_deferred_ref(d));
    if (rc != 0) {
        coil_deferred_unref(d);
        coil_deferred_unref(d);
        return NULL;
    }
    return d;
}

static void greet(coil_deferred *d, void *arg)
{
    const char *name = coil_deferred_result(d);
    char *greeting = malloc(64);
    snprintf(greeting, 64, "hello, %s", name);
    SAY("callback 1: got \"%s\", returning \"%s\"", name, greeting);
    coil_deferred_set_result(d, greeting, free); /* the old value is freed */
}

static void fail_on_purpose(coil_deferred *d, void *arg)
{
    SAY("callback 2: got \"%s\", failing on purpose",
        (const char *)coil_deferred_result(d));
    coil_deferred_set_failure(
        d, coil_failure_new(COIL_DOMAIN_USER, 42, "callback 2 gave up on purpose"));
}

static void never_called(coil_deferred *d, void *arg)
{
    SAY("callback 3: not reached, the result is a failure");
}

static void recover(coil_deferred *d, void *arg)
{
    char *text = coil_failure_to_string(coil_deferred_failure(d));
    SAY("errback 4: recovering from: %s", text);
    free(text);
    coil_deferred_set_result(d, strdup("recovered"), free);
}

static void show_final(coil_deferred *d, void *arg)
{
    SAY("callback 5: final result \"%s\"", (const char *)coil_deferred_result(d));
}

/* ---- timers ---- */
static int never(void *arg)
{
    SAY("this cancelled timer must never run");
    return 0;
}

static int late(void *arg)
{
    SAY("reset timer ran (it was moved from 0.3 s to 0.9 s)");
    return 0;
}

static int stop_now(void *arg)
{
    SAY("stopping the reactor");
    coil_reactor_stop(reactor);
    return 0;
}

static coil_deferred *goodbye(void *arg)
{
    SAY("shutdown trigger: goodbye");
    return NULL;
}

int main(void)
{
    coil_reactor_options opts = {0};
    opts.handle_signals = 1;
    if (coil_reactor_new(&reactor, &opts) != 0) {
        fprintf(stderr, "coil-demo: cannot create a reactor\n");
        return 1;
    }
    t0 = now();
    printf("coil %s demo on the %s reactor\n", COIL_VERSION_STRING,
           coil_reactor_backend_name(reactor));

    int ticks = 0;
    coil_looping_call *lc = coil_looping_call_new_with_count(reactor, tick, &ticks);
    if (!lc || coil_looping_call_start(lc, 0.2, 1, NULL) != 0)
        return 1;

    coil_deferred *d = slow_fetch();
    if (!d)
        return 1;
    coil_deferred_add_callback(d, greet, NULL);
    coil_deferred_add_callback(d, fail_on_purpose, NULL);
    coil_deferred_add_callback(d, never_called, NULL);
    coil_deferred_add_errback(d, recover, NULL);
    coil_deferred_add_callback(d, show_final, NULL);
    coil_deferred_unref(d); /* the chain runs whether or not we hold it */

    /* A handle is the caller's until released; releasing does not cancel. */
    coil_timer *t = coil_reactor_call_later(reactor, 0.1, never, NULL);
    coil_timer_cancel(t);
    coil_timer_release(t);
    coil_timer *moved = coil_reactor_call_later(reactor, 0.3, late, NULL);
    coil_timer_reset(moved, 0.9);
    coil_timer_release(moved);

    coil_reactor_call_later_forget(reactor, 1.2, stop_now, NULL);
    coil_reactor_add_trigger(reactor, COIL_EVENT_SHUTDOWN, COIL_PHASE_AFTER, goodbye,
                             NULL);

    coil_reactor_run(reactor);
    coil_looping_call_free(lc);
    coil_reactor_free(reactor);
    printf("done: %d ticks\n", ticks);
    return 0;
}
