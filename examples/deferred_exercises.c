/* The Deferred exercises of "Twisted Network Programming Essentials",
 * chapter 3 ("how do these Deferred chains work?"), in C.
 *
 * In Twisted a callback takes the result and returns the next one. In coil a
 * step works on the deferred's current result in place:
 *   coil_deferred_result(d)            read the value
 *   coil_deferred_failure(d)           read the failure (in an errback)
 *   coil_deferred_set_result(d, v, fn) "return v": in an errback, recover
 *   coil_deferred_set_failure(d, f)    "raise"
 * and a step that changes none of it passes the result on, as `return res`
 * and `return fail` do in Python.
 *
 * Each exercise prints the steps in the order they run, then how the chain
 * ends. Compare with the book: an error raised at step N is handled by the
 * errback of step N+1, never by the errback beside it (the book's
 * "addCallbacks内幕").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coil/coil.h>

/* def callback1(res): print('call 1', res); return res */
static void callback1(coil_deferred *d, void *arg)
{
    printf("  callback 1 got: %s\n", (const char *)coil_deferred_result(d));
}

/* def callback2(res): print('call 2', res); return res */
static void callback2(coil_deferred *d, void *arg)
{
    printf("  callback 2 got: %s\n", (const char *)coil_deferred_result(d));
}

/* def callback3(res): raise Exception('call 3') */
static void callback3(coil_deferred *d, void *arg)
{
    printf("  callback 3 raises \"call 3\"\n");
    coil_deferred_set_failure(d, coil_failure_new(COIL_DOMAIN_USER, 3, "call 3"));
}

/* def errback1(fail): print('err 1', fail); return fail */
static void errback1(coil_deferred *d, void *arg)
{
    printf("  errback 1 got: %s (passes it on)\n",
           coil_failure_message(coil_deferred_failure(d)));
}

/* def errback3(fail): print('err 3', fail); return "everything is fine now" */
static void errback3(coil_deferred *d, void *arg)
{
    printf("  errback 3 got: %s (recovers)\n",
           coil_failure_message(coil_deferred_failure(d)));
    coil_deferred_set_result(d, strdup("everything is fine now"), free);
}

/* class myerr(BaseException): prints its message when it is made. */
static coil_failure *myerr(const char *msg)
{
    printf("  myerr(\"%s\") is made\n", msg);
    return coil_failure_new(COIL_DOMAIN_USER, 42, "%s", msg);
}

/* Print how the chain ended, then drop our reference. A failure nobody
 * handled is reported by the logger when the deferred is freed. */
static void finish(coil_deferred *d)
{
    if (coil_deferred_is_failure(d))
        printf("  => ends with a failure nobody handled: %s\n",
               coil_failure_message(coil_deferred_failure(d)));
    else
        printf("  => ends with the value: %s\n", (const char *)coil_deferred_result(d));
    coil_deferred_unref(d);
    printf("\n");
}

/* Show log messages on stdout, so the run reads top to bottom. */
static void log_to_stdout(void *ud, coil_log_level level, const char *module,
                          const char *msg)
{
    printf("  [%s %s] %s\n", coil_log_level_name(level), module, msg);
}

int main(void)
{
    coil_log_set_sink(log_to_stdout, NULL);
    coil_deferred *d;

    printf("1. callback1, callback2, callback3; d.callback(\"test\")\n");
    d = coil_deferred_new();
    coil_deferred_add_callback(d, callback1, NULL);
    coil_deferred_add_callback(d, callback2, NULL);
    coil_deferred_add_callback(d, callback3, NULL);
    coil_deferred_callback(d, strdup("test"), free); /* the chain runs now */
    finish(d);

    printf("2. the same, then addErrback(errback3)\n");
    d = coil_deferred_new();
    coil_deferred_add_callback(d, callback1, NULL);
    coil_deferred_add_callback(d, callback2, NULL);
    coil_deferred_add_callback(d, callback3, NULL);
    coil_deferred_add_errback(d, errback3, NULL);
    coil_deferred_callback(d, strdup("test"), free);
    finish(d);

    printf("3. addErrback(errback1); d.errback(\"test\")\n");
    d = coil_deferred_new();
    coil_deferred_add_errback(d, errback1, NULL);
    coil_deferred_errback(d, coil_failure_new(COIL_DOMAIN_USER, 1, "test"));
    finish(d);

    printf("4. addErrback(errback1); d.errback(myerr(\"test\"))\n");
    d = coil_deferred_new();
    coil_deferred_add_errback(d, errback1, NULL);
    coil_deferred_errback(d, myerr("test"));
    finish(d);

    /* addCallbacks puts callback3 and errback3 on the same level: the error
     * callback3 raises goes to the NEXT level, and there is none. */
    printf("5. addCallbacks(callback3, errback3): errback3 is NOT called\n");
    d = coil_deferred_new();
    coil_deferred_add_callbacks(d, callback3, errback3, NULL);
    coil_deferred_callback(d, strdup("test"), free);
    finish(d);

    /* addCallback then addErrback: two levels, so errback3 sees the error. */
    printf("6. addCallback(callback3) then addErrback(errback3): it is\n");
    d = coil_deferred_new();
    coil_deferred_add_callback(d, callback3, NULL);
    coil_deferred_add_errback(d, errback3, NULL);
    coil_deferred_callback(d, strdup("test"), free);
    finish(d);

    coil_log_set_sink(NULL, NULL);
    return 0;
}
