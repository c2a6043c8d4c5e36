/* The Deferred exercises of "Twisted Network Programming Essentials",
 * chapter 3, in C.
 *
 * In Twisted a callback takes the result and returns the next one. In coil a
 * step works on the deferred's current result in place:
 *   coil_deferred_result(d)            read the value
 *   coil_deferred_set_result(d, v, fn) return a new value (in an errback:
 *                                      recover)
 *   coil_deferred_set_failure(d, f)    raise
 * and a step that changes nothing passes the result on, as `return result`
 * does in Python.
 *
 * Run it and compare with the book: an error at step N is handled by the
 * errback of step N+1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coil/coil.h>

static void callback1(coil_deferred *d, void *arg)
{
    printf("  callback 1 said: %s\n", (const char *)coil_deferred_result(d));
}

static void callback2(coil_deferred *d, void *arg)
{
    printf("  callback 2 said: %s\n", (const char *)coil_deferred_result(d));
}

/* raise Exception("Callback 3") */
static void callback3(coil_deferred *d, void *arg)
{
    printf("  callback 3 raises\n");
    coil_deferred_set_failure(d, coil_failure_new(COIL_DOMAIN_USER, 3, "Callback 3"));
}

/* return failure: pass it on */
static void errback1(coil_deferred *d, void *arg)
{
    printf("  errback 1 had an error on: %s\n",
           coil_failure_message(coil_deferred_failure(d)));
}

/* return "Everything is fine now.": recover */
static void errback3(coil_deferred *d, void *arg)
{
    printf("  errback 3 took care of: %s\n",
           coil_failure_message(coil_deferred_failure(d)));
    coil_deferred_set_result(d, strdup("Everything is fine now."), free);
}

static void report(const char *title, coil_deferred *d)
{
    if (coil_deferred_is_failure(d))
        printf("  => ends with an unhandled failure: %s\n\n",
               coil_failure_message(coil_deferred_failure(d)));
    else
        printf("  => ends with: %s\n\n", (const char *)coil_deferred_result(d));
    (void)title;
}

/* An unhandled failure is logged when its deferred is freed; we show it on
 * stdout instead of stderr so the run reads top to bottom. */
static void log_to_stdout(void *ud, coil_log_level level, const char *module,
                          const char *msg)
{
    printf("  [log %s] %s\n", coil_log_level_name(level), msg);
}

int main(void)
{
    coil_log_set_sink(log_to_stdout, NULL);
    coil_deferred *d;

    printf("1. callback1, callback2, callback3 (raises); fire with \"Test\"\n");
    d = coil_deferred_new();
    coil_deferred_add_callback(d, callback1, NULL);
    coil_deferred_add_callback(d, callback2, NULL);
    coil_deferred_add_callback(d, callback3, NULL);
    coil_deferred_callback(d, strdup("Test"), free);
    report("1", d);
    coil_deferred_unref(d); /* logs the unhandled failure */
    printf("\n");

    printf("2. the same, with errback3 added after callback3\n");
    d = coil_deferred_new();
    coil_deferred_add_callback(d, callback1, NULL);
    coil_deferred_add_callback(d, callback2, NULL);
    coil_deferred_add_callback(d, callback3, NULL);
    coil_deferred_add_errback(d, errback3, NULL);
    coil_deferred_callback(d, strdup("Test"), free);
    report("2", d);
    coil_deferred_unref(d);

    printf("3. errback1 passes the failure on; fire the errback chain\n");
    d = coil_deferred_new();
    coil_deferred_add_errback(d, errback1, NULL);
    coil_deferred_errback(d, coil_failure_new(COIL_DOMAIN_USER, 1, "Test"));
    report("3", d);
    coil_deferred_unref(d);
    printf("\n");

    printf("4. errback1 then errback3: the second recovers\n");
    d = coil_deferred_new();
    coil_deferred_add_errback(d, errback1, NULL);
    coil_deferred_add_errback(d, errback3, NULL);
    coil_deferred_errback(d, coil_failure_new(COIL_DOMAIN_USER, 1, "Test"));
    report("4", d);
    coil_deferred_unref(d);

    printf("5. addCallbacks(callback3, errback3): errback3 beside callback3 is "
           "NOT called\n");
    d = coil_deferred_new();
    coil_deferred_add_callbacks(d, callback3, errback3, NULL);
    coil_deferred_callback(d, strdup("Test"), free);
    report("5", d);
    coil_deferred_unref(d);
    printf("\n");

    printf("6. addCallback(callback3) then addErrback(errback3): it is\n");
    d = coil_deferred_new();
    coil_deferred_add_callback(d, callback3, NULL);
    coil_deferred_add_errback(d, errback3, NULL);
    coil_deferred_callback(d, strdup("Test"), free);
    report("6", d);
    coil_deferred_unref(d);

    coil_log_set_sink(NULL, NULL);
    return 0;
}
