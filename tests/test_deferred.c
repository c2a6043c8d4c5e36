/* Deferreds: the seed book's chapter 3 exercises, and every semantic of
 * coil/deferred.h (Twisted's Deferred). Each test records the calls it sees
 * and asserts their exact order and the final result. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ---- recording ---- */

static char trace[8192];

static void rec(const char *fmt, const char *s)
{
    size_t n = strlen(trace);
    snprintf(trace + n, sizeof trace - n, fmt, s ? s : "(null)");
}

static void reset(void)
{
    trace[0] = '\0';
}

static int destroyed;
static void counted_free(void *p)
{
    destroyed++;
    free(p);
}

static char *str(const char *s)
{
    return strdup(s);
}

static const char *value_of(coil_deferred *d)
{
    return coil_deferred_result(d);
}

/* ---- the book's callbacks (chapter 3 exercise) ---- */

/* def callback1(res): print('call 1 ', res); return res */
static void callback1(coil_deferred *d, void *arg)
{
    rec("call 1 %s;", value_of(d));
}

static void callback2(coil_deferred *d, void *arg)
{
    rec("call 2 %s;", value_of(d));
}

/* def callback3(res): raise Exception('call 3') */
static void callback3(coil_deferred *d, void *arg)
{
    rec("call 3 raises;%s", "");
    coil_deferred_set_failure(d, coil_failure_new(COIL_DOMAIN_USER, 3, "call 3"));
}

/* def errback1(fail): print('err 1 ', fail); return fail */
static void errback1(coil_deferred *d, void *arg)
{
    rec("err 1 %s;", coil_failure_message(coil_deferred_failure(d)));
}

/* def errback2(fail): raise Exception('err 2') */
static void errback2(coil_deferred *d, void *arg)
{
    rec("err 2 raises;%s", "");
    coil_deferred_set_failure(d, coil_failure_new(COIL_DOMAIN_USER, 2, "err 2"));
}

/* def errback3(fail): print('err 3 ', fail); return "every thing is fine now" */
static void errback3(coil_deferred *d, void *arg)
{
    rec("err 3 %s;", coil_failure_message(coil_deferred_failure(d)));
    coil_deferred_set_result(d, str("everything is fine now"), free);
}

static void test_book_example_3_1_callback(void)
{
    reset();
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_callback(d, callback1, NULL);
    CU_ASSERT_STRING_EQUAL(trace, "");
    CU_ASSERT_EQUAL(coil_deferred_callback(d, str("ok"), free), 0);
    CU_ASSERT_STRING_EQUAL(trace, "call 1 ok;");
    CU_ASSERT_STRING_EQUAL(value_of(d), "ok");
    coil_deferred_unref(d);
}

static void test_book_example_3_2_errback(void)
{
    reset();
    coil_test_log_capture_start();
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_errback(d, errback1, NULL);
    coil_deferred_errback(d, coil_failure_new(COIL_DOMAIN_USER, 1, "errback"));
    CU_ASSERT_STRING_EQUAL(trace, "err 1 errback;");
    /* errback1 passes the failure on: nobody handles it, so freeing the
     * deferred reports it. */
    CU_ASSERT(coil_deferred_is_failure(d));
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_ERROR), 0);
    coil_deferred_unref(d);
    CU_ASSERT(coil_test_log_contains("Unhandled error in deferred: errback [user 1]"));
    coil_test_log_capture_stop();
}

static void addbold(coil_deferred *d, void *arg)
{
    char buf[128];
    snprintf(buf, sizeof buf, "<b>%s</b>", value_of(d));
    coil_deferred_set_result(d, str(buf), free);
}

static void addital(coil_deferred *d, void *arg)
{
    char buf[128];
    snprintf(buf, sizeof buf, "<i>%s</i>", value_of(d));
    coil_deferred_set_result(d, str(buf), free);
}

static void print_html(coil_deferred *d, void *arg)
{
    rec("%s", value_of(d));
}

static void test_book_example_3_3_chain(void)
{
    reset();
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_callback(d, addbold, NULL);
    coil_deferred_add_callback(d, addital, NULL);
    coil_deferred_add_callback(d, print_html, NULL);
    coil_deferred_callback(d, str("hello"), free);
    CU_ASSERT_STRING_EQUAL(trace, "<i><b>hello</b></i>");
    coil_deferred_unref(d);
}

/* Example 3-4: a headline retriever fires its deferred from a timer. */
typedef struct retriever {
    coil_deferred *d;
    char *input;
} retriever;

static void to_html(coil_deferred *d, void *arg)
{
    rec("html;%s", "");
    char buf[256];
    snprintf(buf, sizeof buf, "<h1>%s</h1>", value_of(d));
    coil_deferred_set_result(d, str(buf), free);
}

static int process_headline(void *arg)
{
    retriever *h = arg;
    rec("process;%s", "");
    if (strlen(h->input) > 50)
        coil_deferred_errback(
            h->d, coil_failure_new(COIL_DOMAIN_USER, 1, "the headline is too long"));
    else
        coil_deferred_callback(h->d, str(h->input), free);
    coil_deferred_unref(h->d);
    h->d = NULL;
    return 0;
}

static coil_deferred *get_headline(coil_reactor *r, retriever *h, const char *input)
{
    h->d = coil_deferred_new();
    h->input = (char *)input;
    coil_deferred_add_callback(h->d, to_html, NULL);
    CU_ASSERT_EQUAL(coil_reactor_call_later_forget(r, 5, process_headline, h), 0);
    return coil_deferred_ref(h->d);
}

static void print_data(coil_deferred *d, void *arg)
{
    rec("data %s;", value_of(d));
}

static void print_error(coil_deferred *d, void *arg)
{
    rec("error %s;", coil_failure_message(coil_deferred_failure(d)));
    coil_deferred_set_result(d, NULL, NULL);
}

static void test_book_example_3_4_headline(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    retriever h = {0};
    reset();
    coil_deferred *d = get_headline(r, &h, "Breaking news: Twisted");
    coil_deferred_add_callbacks(d, print_data, print_error, NULL);
    coil_reactor_advance(r, 4.9);
    CU_ASSERT_STRING_EQUAL(trace, "");
    coil_reactor_advance(r, 0.1);
    CU_ASSERT_STRING_EQUAL(trace, "process;html;data <h1>Breaking news: Twisted</h1>;");
    coil_deferred_unref(d);

    reset();
    d = get_headline(r, &h, "123456789123456789123456789123456789123456789123456789");
    coil_deferred_add_callbacks(d, print_data, print_error, NULL);
    coil_reactor_advance(r, 5);
    /* _toHTML is passed over; printError handles the failure. */
    CU_ASSERT_STRING_EQUAL(trace, "process;error the headline is too long;");
    coil_deferred_unref(d);
    coil_reactor_free(r);
    coil_clock_free(c);
}

/* The exercise's chain: callback1, callback2, callback3 (which raises). */
static coil_deferred *book_chain(void)
{
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_callback(d, callback1, NULL);
    coil_deferred_add_callback(d, callback2, NULL);
    coil_deferred_add_callback(d, callback3, NULL);
    return d;
}

/* Exercise, first chain: the third callback raises and nothing handles it. */
static void test_book_exercise_third_callback_raises(void)
{
    reset();
    coil_test_log_capture_start();
    coil_deferred *d = book_chain();
    coil_deferred_callback(d, str("test"), free);
    CU_ASSERT_STRING_EQUAL(trace, "call 1 test;call 2 test;call 3 raises;");
    CU_ASSERT(coil_deferred_is_failure(d));
    CU_ASSERT_STRING_EQUAL(coil_failure_message(coil_deferred_failure(d)), "call 3");
    coil_deferred_unref(d);
    CU_ASSERT(coil_test_log_contains("Unhandled error in deferred: call 3 [user 3]"));
    coil_test_log_capture_stop();
}

/* Second chain: the same with errback3 after it, which recovers. */
static void test_book_exercise_third_callback_raises_errback_recovers(void)
{
    reset();
    coil_test_log_capture_start();
    coil_deferred *d = book_chain();
    coil_deferred_add_errback(d, errback3, NULL);
    coil_deferred_callback(d, str("test"), free);
    CU_ASSERT_STRING_EQUAL(trace, "call 1 test;call 2 test;call 3 raises;err 3 call 3;");
    CU_ASSERT(!coil_deferred_is_failure(d));
    CU_ASSERT_STRING_EQUAL(value_of(d), "everything is fine now");
    coil_deferred_unref(d);
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_WARN), 0);
    coil_test_log_capture_stop();
}

/* Third chain: d.addErrback(errback1); d.errback("test"). errback1 returns
 * the failure, so it is still there at the end: nobody handled it. */
static void test_book_exercise_errback_passes_failure_on(void)
{
    reset();
    coil_test_log_capture_start();
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_errback(d, errback1, NULL);
    coil_deferred_errback(d, coil_failure_new(COIL_DOMAIN_USER, 9, "test"));
    CU_ASSERT_STRING_EQUAL(trace, "err 1 test;");
    CU_ASSERT(coil_deferred_is_failure(d));
    CU_ASSERT_EQUAL(coil_failure_code(coil_deferred_failure(d)), 9);
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_ERROR), 0); /* not before the free */
    coil_deferred_unref(d);
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_ERROR), 1);
    CU_ASSERT(coil_test_log_contains("Unhandled error in deferred: test [user 9]"));
    coil_test_log_capture_stop();
}

/* Fourth chain: the same, fired with myerr("test"), whose constructor prints
 * its message before errback1 sees it. */
static coil_failure *myerr(const char *msg)
{
    rec("myerr %s;", msg);
    return coil_failure_new(COIL_DOMAIN_USER, 42, "%s", msg);
}

static void test_book_exercise_errback_custom_error(void)
{
    reset();
    coil_test_log_capture_start();
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_errback(d, errback1, NULL);
    coil_deferred_errback(d, myerr("test"));
    CU_ASSERT_STRING_EQUAL(trace, "myerr test;err 1 test;");
    CU_ASSERT(coil_failure_check(coil_deferred_failure(d), COIL_DOMAIN_USER, 42));
    coil_deferred_unref(d);
    CU_ASSERT(coil_test_log_contains("Unhandled error in deferred: test [user 42]"));
    coil_test_log_capture_stop();
}

/* The book's errback2 (raise Exception('err 2')): an errback that raises
 * replaces the failure, and the callbacks between errbacks are passed over. */
static void test_book_errback_raises_anew(void)
{
    reset();
    coil_test_log_capture_start();
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_errback(d, errback1, NULL);
    coil_deferred_add_callback(d, callback1, NULL); /* skipped */
    coil_deferred_add_errback(d, errback2, NULL);   /* raises anew */
    coil_deferred_add_callback(d, callback2, NULL); /* skipped */
    coil_deferred_errback(d, coil_failure_new(COIL_DOMAIN_USER, 9, "test"));
    CU_ASSERT_STRING_EQUAL(trace, "err 1 test;err 2 raises;");
    CU_ASSERT_EQUAL(coil_failure_code(coil_deferred_failure(d)), 2);
    coil_deferred_unref(d);
    CU_ASSERT(coil_test_log_contains("Unhandled error in deferred: err 2"));
    CU_ASSERT(!coil_test_log_contains("test [user 9]")); /* freed, not reported */
    coil_test_log_capture_stop();
}

/* d.addCallbacks(mycallback, myerrback); d.callback("come on") */
static void mycallback(coil_deferred *d, void *arg)
{
    rec("mycallback %s;", value_of(d));
}

static void myerrback(coil_deferred *d, void *arg)
{
    rec("myerrback %s;", coil_failure_message(coil_deferred_failure(d)));
}

static void test_book_add_callbacks_pair(void)
{
    reset();
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_callbacks(d, mycallback, myerrback, NULL);
    coil_deferred_callback(d, str("come on"), free);
    CU_ASSERT_STRING_EQUAL(trace, "mycallback come on;");
    CU_ASSERT_STRING_EQUAL(value_of(d), "come on");
    coil_deferred_unref(d);
}

/* "addCallbacks inside": an error raised by the callback of step N is not
 * handled by the errback added beside it, but by the errback of step N+1. */
static void test_book_add_callbacks_versus_add_callback_add_errback(void)
{
    /* addCallbacks(callback3, errback3): errback3 is not called. */
    reset();
    coil_test_log_capture_start();
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_callbacks(d, callback3, errback3, NULL);
    coil_deferred_callback(d, str("x"), free);
    CU_ASSERT_STRING_EQUAL(trace, "call 3 raises;");
    CU_ASSERT(coil_deferred_is_failure(d));
    coil_deferred_unref(d);
    CU_ASSERT(coil_test_log_contains("Unhandled error in deferred: call 3"));
    coil_test_log_capture_stop();

    /* addCallback(callback3) then addErrback(errback3): errback3 handles. */
    reset();
    d = coil_deferred_new();
    coil_deferred_add_callback(d, callback3, NULL);
    coil_deferred_add_errback(d, errback3, NULL);
    coil_deferred_callback(d, str("x"), free);
    CU_ASSERT_STRING_EQUAL(trace, "call 3 raises;err 3 call 3;");
    CU_ASSERT_STRING_EQUAL(value_of(d), "everything is fine now");
    coil_deferred_unref(d);

    /* addCallbacks on a failure: the errback runs, the callback does not;
     * after recovering, control goes back to the callback chain. */
    reset();
    d = coil_deferred_new();
    coil_deferred_add_callbacks(d, callback1, errback3, NULL);
    coil_deferred_add_callbacks(d, callback2, errback1, NULL);
    coil_deferred_errback(d, coil_failure_new(COIL_DOMAIN_USER, 1, "boom"));
    CU_ASSERT_STRING_EQUAL(trace, "err 3 boom;call 2 everything is fine now;");
    coil_deferred_unref(d);
}

static void both(coil_deferred *d, void *arg)
{
    rec("both(%s);", coil_deferred_is_failure(d) ? "failure" : "value");
}

static void test_add_both(void)
{
    reset();
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_both(d, both, NULL);
    coil_deferred_add_callback(d, callback3, NULL);
    coil_deferred_add_both(d, both, NULL);
    coil_deferred_add_errback(d, errback3, NULL);
    coil_deferred_callback(d, str("v"), free);
    CU_ASSERT_STRING_EQUAL(trace,
                           "both(value);call 3 raises;both(failure);err 3 call 3;");
    coil_deferred_unref(d);
}

/* ---- firing ---- */

static void test_fire_twice_is_an_error(void)
{
    destroyed = 0;
    coil_deferred *d = coil_deferred_new();
    CU_ASSERT(!coil_deferred_called(d));
    CU_ASSERT_EQUAL(coil_deferred_callback(d, str("1"), counted_free), 0);
    CU_ASSERT(coil_deferred_called(d));
    CU_ASSERT_EQUAL(coil_deferred_callback(d, str("2"), counted_free), COIL_EALREADY);
    CU_ASSERT_EQUAL(destroyed, 1); /* the refused value is destroyed */
    CU_ASSERT_EQUAL(coil_deferred_errback(d, coil_failure_new(COIL_DOMAIN_USER, 1, "x")),
                    COIL_EALREADY);
    CU_ASSERT_STRING_EQUAL(value_of(d), "1");
    coil_deferred_unref(d);
    CU_ASSERT_EQUAL(destroyed, 2);
}

static void test_add_after_fire_runs_at_once(void)
{
    reset();
    coil_deferred *d = coil_deferred_succeed(str("now"), free);
    CU_ASSERT(coil_deferred_called(d));
    coil_deferred_add_callback(d, callback1, NULL);
    CU_ASSERT_STRING_EQUAL(trace, "call 1 now;");
    coil_deferred_add_callback(d, callback2, NULL);
    CU_ASSERT_STRING_EQUAL(trace, "call 1 now;call 2 now;");
    coil_deferred_unref(d);

    reset();
    d = coil_deferred_fail(coil_failure_new(COIL_DOMAIN_USER, 5, "gone"));
    coil_deferred_add_callback(d, callback1, NULL);
    coil_deferred_add_errback(d, errback3, NULL);
    CU_ASSERT_STRING_EQUAL(trace, "err 3 gone;");
    coil_deferred_unref(d);
}

static void test_take_and_wrap(void)
{
    coil_deferred *d = coil_deferred_succeed(str("mine"), free);
    coil_destroy_fn fn = NULL;
    char *v = coil_deferred_take_result(d, &fn);
    CU_ASSERT_STRING_EQUAL(v, "mine");
    CU_ASSERT_PTR_EQUAL(fn, free);
    CU_ASSERT_PTR_NULL(coil_deferred_result(d));
    free(v);
    coil_deferred_set_failure(d, coil_failure_new(COIL_DOMAIN_SYSTEM, 111, "refused"));
    coil_deferred_set_failure(d, coil_failure_wrap(coil_deferred_take_failure(d),
                                                   COIL_DOMAIN_USER, 1, "fetch failed"));
    const coil_failure *f = coil_deferred_failure(d);
    CU_ASSERT_STRING_EQUAL(coil_failure_message(f), "fetch failed");
    CU_ASSERT(coil_failure_check(f, COIL_DOMAIN_SYSTEM, 111));
    coil_deferred_set_result(d, NULL, NULL);
    coil_deferred_unref(d);
}

/* ---- ownership ---- */

static void replace(coil_deferred *d, void *arg)
{
    coil_deferred_set_result(d, str("replacement"), counted_free);
}

static int arg_freed;
static void free_arg(void *p)
{
    arg_freed++;
    free(p);
}

static void test_values_and_args_destroyed_once(void)
{
    destroyed = arg_freed = 0;
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_callbacks_full(d, replace, NULL, str("arg1"), free_arg);
    coil_deferred_add_callbacks_full(d, callback3, NULL, str("arg2"), free_arg);
    coil_deferred_add_callbacks_full(d, NULL, errback3, str("arg3"), free_arg);
    coil_deferred_add_callbacks_full(d, callback1, NULL, str("never"), free_arg);
    CU_ASSERT_EQUAL(arg_freed, 0);
    reset();
    coil_deferred_callback(d, str("orig"), counted_free);
    CU_ASSERT_EQUAL(destroyed, 2); /* orig replaced; replacement replaced by failure */
    CU_ASSERT_EQUAL(arg_freed, 4); /* each step's arg, once it ran */
    coil_deferred_unref(d);
    CU_ASSERT_EQUAL(destroyed, 2);

    /* Freed unfired: pending args and nothing else. */
    arg_freed = 0;
    d = coil_deferred_new();
    coil_deferred_add_callbacks_full(d, callback1, NULL, str("a"), free_arg);
    coil_deferred_add_callbacks_full(d, callback1, NULL, str("b"), free_arg);
    coil_deferred_unref(d);
    CU_ASSERT_EQUAL(arg_freed, 2);
}

static void unref_self(coil_deferred *d, void *arg)
{
    rec("unref;%s", "");
    coil_deferred_unref(d); /* the last outside reference */
}

static void test_unref_inside_step(void)
{
    reset();
    destroyed = 0;
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_callback(d, unref_self, NULL);
    coil_deferred_add_callback(d, callback1, NULL);
    coil_deferred_callback(d, str("v"), counted_free);
    /* The chain finished with the deferred alive, then freed it. */
    CU_ASSERT_STRING_EQUAL(trace, "unref;call 1 v;");
    CU_ASSERT_EQUAL(destroyed, 1);
}

/* ---- chaining ---- */

static coil_deferred *inner_d;

static void chain_to_inner(coil_deferred *d, void *arg)
{
    rec("outer step sees %s;", value_of(d));
    coil_deferred_chain(d, coil_deferred_ref(inner_d));
}

static void test_chain_pauses_until_inner_fires(void)
{
    reset();
    destroyed = 0;
    inner_d = coil_deferred_new();
    coil_deferred_add_callback(inner_d, callback1, NULL);
    coil_deferred *outer = coil_deferred_new();
    coil_deferred_add_callback(outer, chain_to_inner, NULL);
    coil_deferred_add_callback(outer, callback2, NULL);
    coil_deferred_callback(outer, str("first"), counted_free);
    CU_ASSERT_STRING_EQUAL(trace, "outer step sees first;");
    CU_ASSERT(coil_deferred_paused(outer));
    coil_deferred_callback(inner_d, str("second"), counted_free);
    CU_ASSERT_STRING_EQUAL(trace, "outer step sees first;call 1 second;call 2 second;");
    CU_ASSERT(!coil_deferred_paused(outer));
    CU_ASSERT_STRING_EQUAL(value_of(outer), "second");
    CU_ASSERT_PTR_NULL(coil_deferred_result(inner_d)); /* moved out */
    CU_ASSERT_EQUAL(destroyed, 1);                     /* "first" */
    coil_deferred_unref(inner_d);
    coil_deferred_unref(outer);
    CU_ASSERT_EQUAL(destroyed, 2);
}

static void test_chain_failure_moves_to_outer(void)
{
    reset();
    inner_d = coil_deferred_new();
    coil_deferred *outer = coil_deferred_new();
    coil_deferred_add_callback(outer, chain_to_inner, NULL);
    coil_deferred_add_callback(outer, callback2, NULL);
    coil_deferred_add_errback(outer, errback3, NULL);
    coil_deferred_callback(outer, str("x"), free);
    coil_test_log_capture_start();
    coil_deferred_errback(inner_d, coil_failure_new(COIL_DOMAIN_USER, 4, "inner failed"));
    coil_deferred_unref(inner_d); /* its failure moved out: nothing to report */
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_WARN), 0);
    coil_test_log_capture_stop();
    CU_ASSERT_STRING_EQUAL(trace, "outer step sees x;err 3 inner failed;");
    coil_deferred_unref(outer);
}

static void chain_fired(coil_deferred *d, void *arg)
{
    coil_deferred_chain(d, coil_deferred_succeed(str("already"), free));
}

static void test_chain_already_fired_continues_at_once(void)
{
    reset();
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_callback(d, chain_fired, NULL);
    coil_deferred_add_callback(d, callback1, NULL);
    coil_deferred_callback(d, str("x"), free);
    CU_ASSERT_STRING_EQUAL(trace, "call 1 already;");
    CU_ASSERT(!coil_deferred_paused(d));
    coil_deferred_unref(d);
}

static void chain_self(coil_deferred *d, void *arg)
{
    coil_deferred_chain(d, coil_deferred_ref(d));
}

static void test_chain_to_itself_fails(void)
{
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_callback(d, chain_self, NULL);
    coil_deferred_callback(d, NULL, NULL);
    CU_ASSERT(coil_deferred_is_failure(d));
    CU_ASSERT(
        coil_failure_check(coil_deferred_failure(d), COIL_DOMAIN_COIL, COIL_EINVAL));
    coil_deferred_set_result(d, NULL, NULL);
    coil_deferred_unref(d);
}

/* 100,000 steps, each chaining an already-fired deferred. */
static unsigned long steps_run;
static void count_and_chain(coil_deferred *d, void *arg)
{
    steps_run++;
    coil_deferred_chain(d, coil_deferred_succeed(NULL, NULL));
}

static void test_long_chain_no_recursion(void)
{
    enum { N = 100000 };
    steps_run = 0;
    coil_deferred *d = coil_deferred_new();
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL_FATAL(coil_deferred_add_callback(d, count_and_chain, NULL), 0);
    coil_deferred_callback(d, NULL, NULL);
    CU_ASSERT_EQUAL(steps_run, N);
    coil_deferred_unref(d);
}

/* d[i]'s callback chains the unfired d[i+1]; firing the last one unwinds
 * 100,000 levels of nesting without recursion. */
static coil_deferred **nest;
static void chain_next(coil_deferred *d, void *arg)
{
    size_t i = (size_t)(uintptr_t)arg;
    coil_deferred_chain(d, coil_deferred_ref(nest[i + 1]));
}

static void test_deep_nesting_no_recursion(void)
{
    enum { N = 100000 };
    nest = calloc(N, sizeof *nest);
    for (size_t i = 0; i < N; i++)
        nest[i] = coil_deferred_new();
    for (size_t i = 0; i + 1 < N; i++) {
        coil_deferred_add_callback(nest[i], chain_next, (void *)(uintptr_t)i);
        coil_deferred_callback(nest[i], NULL, NULL);
        CU_ASSERT(coil_deferred_paused(nest[i]));
    }
    destroyed = 0;
    coil_deferred_callback(nest[N - 1], str("deep"), counted_free);
    CU_ASSERT(!coil_deferred_paused(nest[0]));
    CU_ASSERT_STRING_EQUAL(value_of(nest[0]), "deep");
    CU_ASSERT_EQUAL(destroyed, 0);
    for (size_t i = 0; i < N; i++)
        coil_deferred_unref(nest[i]);
    CU_ASSERT_EQUAL(destroyed, 1);
    free(nest);
}

/* ---- cancellation ---- */

static int canceller_calls;
static void canceller(coil_deferred *d, void *arg)
{
    canceller_calls++;
}

static void canceller_fires(coil_deferred *d, void *arg)
{
    canceller_calls++;
    coil_deferred_callback(d, str("cancelled but answered"), free);
}

static void expect_cancelled(coil_deferred *d, void *arg)
{
    rec("%s;", coil_err_name(coil_failure_code(coil_deferred_failure(d))));
    coil_deferred_set_result(d, NULL, NULL);
}

static void test_cancel_unfired(void)
{
    reset();
    canceller_calls = 0;
    coil_deferred *d = coil_deferred_new_cancellable(canceller, NULL);
    coil_deferred_add_errback(d, expect_cancelled, NULL);
    coil_deferred_cancel(d);
    CU_ASSERT_EQUAL(canceller_calls, 1);
    CU_ASSERT_STRING_EQUAL(trace, "COIL_ECANCELLED;");
    /* With a canceller, a later fire is an error again (as in Twisted). */
    CU_ASSERT_EQUAL(coil_deferred_callback(d, NULL, NULL), COIL_EALREADY);
    coil_deferred_unref(d);

    /* Without a canceller, one later fire is silently ignored. */
    reset();
    destroyed = 0;
    d = coil_deferred_new();
    coil_deferred_add_errback(d, expect_cancelled, NULL);
    coil_deferred_cancel(d);
    CU_ASSERT_EQUAL(coil_deferred_callback(d, str("late"), counted_free), 0);
    CU_ASSERT_EQUAL(destroyed, 1);
    CU_ASSERT_STRING_EQUAL(trace, "COIL_ECANCELLED;");
    coil_deferred_unref(d);
}

static void test_canceller_that_fires(void)
{
    reset();
    canceller_calls = 0;
    coil_deferred *d = coil_deferred_new_cancellable(canceller_fires, NULL);
    coil_deferred_add_callback(d, callback1, NULL);
    coil_deferred_cancel(d);
    CU_ASSERT_EQUAL(canceller_calls, 1);
    CU_ASSERT_STRING_EQUAL(trace, "call 1 cancelled but answered;");
    coil_deferred_unref(d);
}

static void test_cancel_fired_is_noop_and_paused_propagates(void)
{
    reset();
    coil_deferred *d = coil_deferred_succeed(str("v"), free);
    coil_deferred_cancel(d);
    CU_ASSERT_STRING_EQUAL(value_of(d), "v");
    coil_deferred_unref(d);

    canceller_calls = 0;
    inner_d = coil_deferred_new_cancellable(canceller, NULL);
    coil_deferred *outer = coil_deferred_new();
    coil_deferred_add_callback(outer, chain_to_inner, NULL);
    coil_deferred_add_errback(outer, expect_cancelled, NULL);
    coil_deferred_callback(outer, str("o"), free);
    coil_deferred_cancel(outer);
    CU_ASSERT_EQUAL(canceller_calls, 1);
    CU_ASSERT_STRING_EQUAL(trace, "outer step sees o;COIL_ECANCELLED;");
    coil_deferred_unref(inner_d);
    coil_deferred_unref(outer);
}

/* ---- timeouts ---- */

static void expect_code(coil_deferred *d, void *arg)
{
    if (coil_deferred_is_failure(d)) {
        rec("%s;", coil_err_name(coil_failure_code(coil_deferred_failure(d))));
        rec("%s;", coil_failure_message(coil_deferred_failure(d)));
        coil_deferred_set_result(d, NULL, NULL);
    } else {
        rec("value %s;", value_of(d));
    }
}

static void test_timeout_fires(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    reset();
    coil_deferred *d = coil_deferred_new();
    CU_ASSERT_EQUAL(coil_deferred_add_timeout(d, r, 2.5), 0);
    coil_deferred_add_both(d, expect_code, NULL);
    coil_reactor_advance(r, 2.4);
    CU_ASSERT_STRING_EQUAL(trace, "");
    coil_reactor_advance(r, 0.1);
    CU_ASSERT_STRING_EQUAL(trace, "COIL_ETIMEDOUT;deferred timed out after 2.5 s;");
    CU_ASSERT_EQUAL(coil_deferred_callback(d, NULL, NULL), 0); /* ignored once */
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 0);
    coil_deferred_unref(d);
    coil_reactor_free(r);
    coil_clock_free(c);
}

static void test_timeout_not_fired_when_result_first(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    reset();
    coil_deferred *d = coil_deferred_new();
    CU_ASSERT_EQUAL(coil_deferred_add_timeout(d, r, 1), 0);
    coil_deferred_add_both(d, expect_code, NULL);
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 1);
    coil_reactor_advance(r, 0.5);
    coil_deferred_callback(d, str("in time"), free);
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 0);
    coil_reactor_advance(r, 5);
    CU_ASSERT_STRING_EQUAL(trace, "value in time;");
    coil_deferred_unref(d);

    /* A plain cancel is not turned into a timeout. */
    reset();
    d = coil_deferred_new();
    coil_deferred_add_timeout(d, r, 1);
    coil_deferred_add_both(d, expect_code, NULL);
    coil_deferred_cancel(d);
    CU_ASSERT_STRING_EQUAL(trace, "COIL_ECANCELLED;deferred was cancelled;");
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 0);
    coil_deferred_unref(d);
    CU_ASSERT_EQUAL(coil_deferred_add_timeout(d = coil_deferred_new(), r, -1),
                    COIL_EINVAL);
    coil_deferred_unref(d);
    coil_reactor_free(r);
    coil_clock_free(c);
}

/* ---- deferLater ---- */

/* Fires with NULL after the delay on the fake clock; the caller may drop
 * its reference early (the timer holds one); cancelling a fired one is a
 * no-op. */
static void test_later_fires(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    reset();
    coil_deferred *d = coil_deferred_later(r, 5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    coil_deferred_add_both(d, expect_code, NULL);
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 1);
    coil_reactor_advance(r, 4.9);
    CU_ASSERT_STRING_EQUAL(trace, "");
    CU_ASSERT_FALSE(coil_deferred_called(d));
    coil_reactor_advance(r, 0.1);
    CU_ASSERT_STRING_EQUAL(trace, "value (null);");
    CU_ASSERT_TRUE(coil_deferred_called(d));
    coil_deferred_cancel(d); /* after it fired: nothing */
    CU_ASSERT_STRING_EQUAL(trace, "value (null);");
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 0);
    coil_deferred_unref(d);

    /* Dropped at once: the timer keeps it alive and fires it. */
    reset();
    d = coil_deferred_later(r, 0);
    coil_deferred_add_both(d, expect_code, NULL);
    coil_deferred_unref(d);
    coil_reactor_advance(r, 0);
    CU_ASSERT_STRING_EQUAL(trace, "value (null);");
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 0);
    coil_reactor_free(r);
    coil_clock_free(c);
}

static int later_cancelled_seen;
static void later_chain_cancel(coil_deferred *d, void *arg)
{
    (void)arg;
    if (coil_deferred_is_failure(d) &&
        coil_failure_check(coil_deferred_failure(d), COIL_DOMAIN_COIL, COIL_ECANCELLED))
        later_cancelled_seen++;
}

/* Cancelling cancels the timer (nothing pending, no fire later); a bad delay
 * fails at once with a message; cancelling from a callback of another
 * deferred (the HTTP server cancels when a client leaves) is fine. */
static void test_later_cancel(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    reset();
    coil_deferred *d = coil_deferred_later(r, 3);
    coil_deferred_add_both(d, expect_code, NULL);
    coil_reactor_advance(r, 1);
    coil_deferred_cancel(d);
    CU_ASSERT_STRING_EQUAL(trace, "COIL_ECANCELLED;deferred was cancelled;");
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 0);
    coil_reactor_advance(r, 5);
    CU_ASSERT_STRING_EQUAL(trace, "COIL_ECANCELLED;deferred was cancelled;");
    coil_deferred_cancel(d); /* twice: nothing */
    coil_deferred_unref(d);

    /* Cancelled while the caller holds no reference but a chain does. */
    later_cancelled_seen = 0;
    d = coil_deferred_later(r, 2);
    coil_deferred_add_both(d, later_chain_cancel, NULL);
    coil_deferred *keep = coil_deferred_ref(d);
    coil_deferred_unref(d);
    coil_deferred_cancel(keep);
    CU_ASSERT_EQUAL(later_cancelled_seen, 1);
    coil_deferred_unref(keep);
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 0);

    reset();
    d = coil_deferred_later(r, -1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    coil_deferred_add_both(d, expect_code, NULL);
    CU_ASSERT_STRING_EQUAL(
        trace,
        "COIL_EINVAL;coil_deferred_later: delay -1 s is not a number of seconds >= 0;");
    coil_deferred_unref(d);
    CU_ASSERT_PTR_NULL(coil_deferred_later(NULL, 1));
    coil_reactor_free(r);
    coil_clock_free(c);
}

/* The book's BusyPage: deferLater(reactor, 0, ...) then a callback. */
static void test_later_book_busy_page(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    reset();
    coil_deferred *d = coil_deferred_later(r, 0);
    coil_deferred_add_callback(d, callback1, NULL);
    rec("end;%s", "");
    CU_ASSERT_STRING_EQUAL(trace, "end;");
    coil_reactor_advance(r, 0);
    CU_ASSERT_STRING_EQUAL(trace, "end;call 1 (null);");
    coil_deferred_unref(d);
    coil_reactor_free(r);
    coil_clock_free(c);
}

/* ---- lists and gather ---- */

static coil_deferred_list_result *list_result;
static void grab_list(coil_deferred *d, void *arg)
{
    if (coil_deferred_is_failure(d)) {
        rec("list failed: %s;", coil_failure_message(coil_deferred_failure(d)));
        const coil_failure *cause = coil_failure_cause(coil_deferred_failure(d));
        rec("cause: %s;", cause ? coil_failure_message(cause) : "none");
        coil_deferred_set_result(d, NULL, NULL);
        return;
    }
    list_result = coil_deferred_result(d);
    rec("list fired;%s", "");
}

static void test_list_waits_for_all(void)
{
    reset();
    destroyed = 0;
    coil_deferred *ch[3] = {coil_deferred_new(), coil_deferred_new(),
                            coil_deferred_new()};
    coil_deferred *l = coil_deferred_list(ch, 3, 0);
    coil_deferred_add_callback(l, grab_list, NULL);
    coil_deferred_callback(ch[2], str("two"), counted_free);
    coil_deferred_errback(ch[0], coil_failure_new(COIL_DOMAIN_USER, 1, "zero failed"));
    CU_ASSERT_STRING_EQUAL(trace, "");
    coil_deferred_callback(ch[1], str("one"), counted_free);
    CU_ASSERT_STRING_EQUAL(trace, "list fired;");
    CU_ASSERT_EQUAL_FATAL(list_result->count, 3);
    CU_ASSERT_EQUAL(list_result->items[0].ok, 0);
    CU_ASSERT_STRING_EQUAL(coil_failure_message(list_result->items[0].failure),
                           "zero failed");
    CU_ASSERT_EQUAL(list_result->items[1].ok, 1);
    CU_ASSERT_STRING_EQUAL(list_result->items[1].value, "one");
    CU_ASSERT_STRING_EQUAL(list_result->items[2].value, "two");
    CU_ASSERT_PTR_NULL(coil_deferred_result(ch[2])); /* moved into the list */
    coil_deferred_unref(l);
    CU_ASSERT_EQUAL(destroyed, 2);
    /* Without CONSUME_ERRORS the child keeps its failure: reported. */
    coil_test_log_capture_start();
    for (int i = 0; i < 3; i++)
        coil_deferred_unref(ch[i]);
    CU_ASSERT(coil_test_log_contains("Unhandled error in deferred: zero failed"));
    coil_test_log_capture_stop();
}

static void test_list_consume_errors(void)
{
    reset();
    coil_deferred *ch[2] = {coil_deferred_new(), coil_deferred_new()};
    coil_deferred *l = coil_deferred_list(ch, 2, COIL_DL_CONSUME_ERRORS);
    coil_deferred_add_callback(l, grab_list, NULL);
    coil_deferred_errback(ch[0], coil_failure_new(COIL_DOMAIN_USER, 1, "e0"));
    coil_deferred_errback(ch[1], coil_failure_new(COIL_DOMAIN_USER, 2, "e1"));
    CU_ASSERT_STRING_EQUAL(trace, "list fired;");
    CU_ASSERT_EQUAL(coil_failure_code(list_result->items[1].failure), 2);
    CU_ASSERT(!coil_deferred_is_failure(ch[0]));
    coil_test_log_capture_start();
    coil_deferred_unref(ch[0]);
    coil_deferred_unref(ch[1]);
    coil_deferred_unref(l);
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_WARN), 0);
    coil_test_log_capture_stop();
}

static void grab_first(coil_deferred *d, void *arg)
{
    coil_deferred_first_result *f = coil_deferred_result(d);
    char buf[64];
    snprintf(buf, sizeof buf, "first %zu %s;", f->index, (const char *)f->value);
    rec("%s", buf);
}

static void test_list_fire_on_one_callback(void)
{
    reset();
    destroyed = 0;
    coil_deferred *ch[3] = {coil_deferred_new(), coil_deferred_new(),
                            coil_deferred_new()};
    coil_deferred *l = coil_deferred_list(ch, 3, COIL_DL_FIRE_ON_ONE_CALLBACK);
    coil_deferred_add_callback(l, grab_first, NULL);
    coil_deferred_callback(ch[1], str("winner"), counted_free);
    CU_ASSERT_STRING_EQUAL(trace, "first 1 winner;");
    /* Later children are not recorded: their values stay theirs. */
    coil_deferred_callback(ch[0], str("late"), counted_free);
    CU_ASSERT_STRING_EQUAL(value_of(ch[0]), "late");
    coil_deferred_unref(l);
    CU_ASSERT_EQUAL(destroyed, 1);
    coil_deferred_callback(ch[2], NULL, NULL);
    for (int i = 0; i < 3; i++)
        coil_deferred_unref(ch[i]);
    CU_ASSERT_EQUAL(destroyed, 2);
}

static void test_list_fire_on_one_errback(void)
{
    reset();
    coil_deferred *ch[3] = {coil_deferred_new(), coil_deferred_new(),
                            coil_deferred_new()};
    coil_deferred *l =
        coil_deferred_list(ch, 3, COIL_DL_FIRE_ON_ONE_ERRBACK | COIL_DL_CONSUME_ERRORS);
    coil_deferred_add_both(l, grab_list, NULL);
    coil_deferred_callback(ch[0], str("ok"), free);
    coil_deferred_errback(ch[2], coil_failure_new(COIL_DOMAIN_USER, 7, "third broke"));
    CU_ASSERT_STRING_EQUAL(trace,
                           "list failed: deferred 3 of 3 failed;cause: third broke;");
    coil_deferred_unref(l);
    /* A child that never fires is simply dropped: nothing leaks. */
    for (int i = 0; i < 3; i++)
        coil_deferred_unref(ch[i]);
}

/* Which child failed a list, as a value: the index rides on the
 * COIL_EFIRSTERROR failure (Twisted's FirstError.index), survives copies
 * and wrapping, and is found for gather and for a FIRE_ON_ONE_CALLBACK
 * list that nothing satisfied. */
static long first_index; /* -1: not found */
static void grab_index(coil_deferred *d, void *arg)
{
    size_t i;
    first_index = coil_deferred_list_first_error_index(coil_deferred_failure(d), &i) == 0
                      ? (long)i
                      : -1;
    coil_deferred_set_result(d, NULL, NULL);
}

static void test_list_first_error_index(void)
{
    coil_deferred *ch[4] = {coil_deferred_new(), coil_deferred_new(), coil_deferred_new(),
                            coil_deferred_new()};
    coil_deferred *l =
        coil_deferred_list(ch, 4, COIL_DL_FIRE_ON_ONE_ERRBACK | COIL_DL_CONSUME_ERRORS);
    first_index = -2;
    coil_deferred_add_errback(l, grab_index, NULL);
    coil_deferred_callback(ch[0], NULL, NULL);
    coil_deferred_errback(ch[2], coil_failure_new(COIL_DOMAIN_USER, 7, "third broke"));
    coil_deferred_errback(ch[1], coil_failure_new(COIL_DOMAIN_USER, 8, "second broke"));
    CU_ASSERT_EQUAL(first_index, 2);
    coil_deferred_unref(l);
    for (int i = 0; i < 4; i++)
        coil_deferred_unref(ch[i]);

    /* The failure itself: copied, wrapped by a later errback, nested. */
    coil_deferred *in[2] = {coil_deferred_new(), coil_deferred_new()};
    coil_deferred *inner = coil_deferred_list(in, 2, COIL_DL_FIRE_ON_ONE_ERRBACK);
    coil_deferred *out[3] = {coil_deferred_new(), inner, coil_deferred_new()};
    coil_deferred *outer = coil_deferred_list(out, 3, COIL_DL_FIRE_ON_ONE_ERRBACK);
    coil_deferred_errback(in[1], coil_failure_new(COIL_DOMAIN_USER, 1, "deep"));
    CU_ASSERT_FATAL(coil_deferred_is_failure(outer));
    const coil_failure *f = coil_deferred_failure(outer);
    size_t idx = 99;
    CU_ASSERT_EQUAL(coil_deferred_list_first_error_index(f, &idx), 0);
    CU_ASSERT_EQUAL(idx, 1); /* `inner` is the outer list's child 1 */
    CU_ASSERT_EQUAL(coil_deferred_list_first_error_index(coil_failure_cause(f), &idx), 0);
    CU_ASSERT_EQUAL(idx, 1); /* and in[1] the inner list's */
    coil_failure *copy = coil_failure_copy(f);
    coil_failure *wrapped =
        coil_failure_wrap(copy, COIL_DOMAIN_USER, 3, "request failed");
    idx = 99;
    CU_ASSERT_EQUAL(coil_deferred_list_first_error_index(wrapped, &idx), 0);
    CU_ASSERT_EQUAL(idx, 1);
    coil_failure_free(wrapped);
    coil_deferred_set_result(outer, NULL, NULL);
    coil_deferred_set_result(inner, NULL, NULL);
    coil_deferred_unref(outer);
    for (int i = 0; i < 3; i++)
        coil_deferred_unref(out[i]);
    coil_deferred_set_result(in[1], NULL, NULL);
    coil_deferred_unref(in[0]);
    coil_deferred_unref(in[1]);

    /* gather: the first child to fail. */
    coil_deferred *g[3] = {coil_deferred_new(), coil_deferred_new(), coil_deferred_new()};
    coil_deferred *gl = coil_deferred_gather(g, 3);
    first_index = -2;
    coil_deferred_add_errback(gl, grab_index, NULL);
    coil_deferred_errback(g[1], coil_failure_new(COIL_DOMAIN_USER, 1, "no"));
    CU_ASSERT_EQUAL(first_index, 1);
    coil_deferred_unref(gl);
    for (int i = 0; i < 3; i++)
        coil_deferred_unref(g[i]);

    /* FIRE_ON_ONE_CALLBACK, all failed: child 0, whose failure is the cause. */
    coil_deferred *c[2] = {coil_deferred_new(), coil_deferred_new()};
    coil_deferred *cl = coil_deferred_list(c, 2, COIL_DL_FIRE_ON_ONE_CALLBACK);
    first_index = -2;
    coil_deferred_add_errback(cl, grab_index, NULL);
    coil_deferred_errback(c[1], coil_failure_new(COIL_DOMAIN_USER, 1, "b"));
    coil_deferred_errback(c[0], coil_failure_new(COIL_DOMAIN_USER, 1, "a"));
    CU_ASSERT_EQUAL(first_index, 0);
    coil_deferred_unref(cl);
    for (int i = 0; i < 2; i++) {
        coil_deferred_set_result(c[i], NULL, NULL);
        coil_deferred_unref(c[i]);
    }

    /* Not from a list. */
    coil_failure *plain =
        coil_failure_new(COIL_DOMAIN_COIL, COIL_EFIRSTERROR, "look-alike");
    CU_ASSERT_EQUAL(coil_deferred_list_first_error_index(plain, &idx), COIL_EINVAL);
    coil_failure_free(plain);
    CU_ASSERT_EQUAL(coil_deferred_list_first_error_index(NULL, &idx), COIL_EINVAL);
}

static void test_gather(void)
{
    reset();
    coil_deferred *ch[2] = {coil_deferred_new(), coil_deferred_succeed(str("b"), free)};
    coil_deferred *g = coil_deferred_gather(ch, 2);
    coil_deferred_add_both(g, grab_list, NULL);
    coil_deferred_callback(ch[0], str("a"), free);
    CU_ASSERT_STRING_EQUAL(trace, "list fired;");
    CU_ASSERT_EQUAL(list_result->count, 2);
    CU_ASSERT_STRING_EQUAL(list_result->items[0].value, "a");
    CU_ASSERT_STRING_EQUAL(list_result->items[1].value, "b");
    coil_deferred_unref(g);
    coil_deferred_unref(ch[0]);
    coil_deferred_unref(ch[1]);

    reset();
    coil_deferred *e[2] = {coil_deferred_new(), coil_deferred_new()};
    g = coil_deferred_gather(e, 2);
    coil_deferred_add_both(g, grab_list, NULL);
    coil_test_log_capture_start();
    coil_deferred_errback(e[1], coil_failure_new(COIL_DOMAIN_USER, 1, "no"));
    coil_deferred_errback(e[0], coil_failure_new(COIL_DOMAIN_USER, 1, "also no"));
    CU_ASSERT_STRING_EQUAL(trace, "list failed: deferred 2 of 2 failed;cause: no;");
    coil_deferred_unref(g);
    coil_deferred_unref(e[0]);
    coil_deferred_unref(e[1]);
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_WARN), 0); /* consumed */
    coil_test_log_capture_stop();

    reset();
    g = coil_deferred_gather(NULL, 0);
    coil_deferred_add_both(g, grab_list, NULL);
    CU_ASSERT_STRING_EQUAL(trace, "list fired;");
    CU_ASSERT_EQUAL(list_result->count, 0);
    coil_deferred_unref(g);
}

/* ---- more of the chain ---- */

static void errback_null(coil_deferred *d, void *arg)
{
    rec("%s;", coil_err_name(coil_failure_code(coil_deferred_failure(d))));
    coil_deferred_set_result(d, NULL, NULL);
}

static void test_errback_without_failure(void)
{
    reset();
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_errback(d, errback_null, NULL);
    CU_ASSERT_EQUAL(coil_deferred_errback(d, NULL), 0);
    CU_ASSERT_STRING_EQUAL(trace, "COIL_EINVAL;");
    coil_deferred_unref(d);
}

static void test_succeed_and_fail(void)
{
    destroyed = 0;
    coil_deferred *d = coil_deferred_succeed(str("s"), counted_free);
    CU_ASSERT(coil_deferred_called(d));
    CU_ASSERT(!coil_deferred_paused(d));
    CU_ASSERT(!coil_deferred_is_failure(d));
    CU_ASSERT_PTR_NULL(coil_deferred_failure(d));
    CU_ASSERT_STRING_EQUAL(value_of(d), "s");
    coil_deferred_unref(d);
    CU_ASSERT_EQUAL(destroyed, 1);

    coil_test_log_capture_start();
    d = coil_deferred_fail(coil_failure_new(COIL_DOMAIN_USER, 3, "f"));
    CU_ASSERT(coil_deferred_called(d));
    CU_ASSERT(coil_deferred_is_failure(d));
    CU_ASSERT_PTR_NULL(coil_deferred_result(d));
    CU_ASSERT_EQUAL(coil_failure_code(coil_deferred_failure(d)), 3);
    coil_deferred_unref(d);
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_ERROR), 1);
    CU_ASSERT(coil_test_log_contains("error deferred: Unhandled error in deferred: f"));
    coil_test_log_capture_stop();

    /* NULL is allowed. */
    coil_deferred_unref(NULL);
}

/* A step that adds a step to its own running deferred: the new step runs in
 * the same loop, after the ones already there. */
static void add_more(coil_deferred *d, void *arg)
{
    rec("add_more;%s", "");
    coil_deferred_add_callback(d, callback2, NULL);
}

static void test_add_step_inside_running_chain(void)
{
    reset();
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_callback(d, add_more, NULL);
    coil_deferred_add_callback(d, callback1, NULL);
    coil_deferred_callback(d, str("v"), free);
    CU_ASSERT_STRING_EQUAL(trace, "add_more;call 1 v;call 2 v;");
    coil_deferred_unref(d);
}

/* The step chains `inner_d` and fires it itself before returning: the
 * handover happens while the outer loop is still on the stack. */
static void chain_then_fire_inner(coil_deferred *d, void *arg)
{
    coil_deferred_chain(d, coil_deferred_ref(inner_d));
    rec("paused=%s;", coil_deferred_paused(d) ? "yes" : "no");
    coil_deferred_callback(inner_d, str("from inside"), free);
    rec("paused=%s;", coil_deferred_paused(d) ? "yes" : "no");
}

static void test_chain_fired_from_inside_the_step(void)
{
    reset();
    inner_d = coil_deferred_new();
    coil_deferred_add_callback(inner_d, callback1, NULL);
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_callback(d, chain_then_fire_inner, NULL);
    coil_deferred_add_callback(d, callback2, NULL);
    coil_deferred_callback(d, str("outer"), free);
    CU_ASSERT_STRING_EQUAL(trace,
                           "paused=yes;call 1 from inside;paused=no;call 2 from inside;");
    coil_deferred_unref(d);
    coil_deferred_unref(inner_d);
}

/* A failure chained in is handled by the next errback; the errback that
 * chained had handled the original failure, so that one is not reported. */
static void retry(coil_deferred *d, void *arg)
{
    rec("retry after %s;", coil_failure_message(coil_deferred_failure(d)));
    coil_deferred_chain(d, coil_deferred_ref(inner_d));
}

static void test_chain_from_errback(void)
{
    reset();
    coil_test_log_capture_start();
    inner_d = coil_deferred_new();
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_errback(d, retry, NULL);
    coil_deferred_add_callback(d, callback1, NULL);
    coil_deferred_errback(d, coil_failure_new(COIL_DOMAIN_USER, 1, "first try"));
    CU_ASSERT(coil_deferred_paused(d));
    CU_ASSERT(!coil_deferred_is_failure(d)); /* the handled failure is gone */
    coil_deferred_callback(inner_d, str("second try"), free);
    CU_ASSERT_STRING_EQUAL(trace, "retry after first try;call 1 second try;");
    coil_deferred_unref(d);
    coil_deferred_unref(inner_d);
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_WARN), 0);
    coil_test_log_capture_stop();
}

/* Chaining a deferred that another one already waits on fails the step. */
static coil_deferred *second_d;
static void chain_second(coil_deferred *d, void *arg)
{
    coil_deferred_chain(d, coil_deferred_ref(inner_d));
}

static void test_chain_already_chained_fails(void)
{
    inner_d = coil_deferred_new();
    coil_deferred *a = coil_deferred_new();
    second_d = coil_deferred_new();
    coil_deferred_add_callback(a, chain_second, NULL);
    coil_deferred_add_callback(second_d, chain_second, NULL);
    coil_deferred_callback(a, NULL, NULL);
    CU_ASSERT(coil_deferred_paused(a));
    coil_deferred_callback(second_d, NULL, NULL);
    CU_ASSERT(!coil_deferred_paused(second_d));
    CU_ASSERT(coil_failure_check(coil_deferred_failure(second_d), COIL_DOMAIN_COIL,
                                 COIL_EINVAL));
    coil_deferred_set_result(second_d, NULL, NULL);
    coil_deferred_callback(inner_d, str("for a"), free);
    CU_ASSERT_STRING_EQUAL(value_of(a), "for a");
    coil_deferred_unref(a);
    coil_deferred_unref(second_d);
    coil_deferred_unref(inner_d);
}

/* Outside a step, on an unfired deferred, chain has nothing to pause: it
 * logs, drops `other` and leaves `d` as it was. */
static void test_chain_outside_a_step(void)
{
    coil_test_log_capture_start();
    destroyed = 0;
    coil_deferred *d = coil_deferred_new();
    coil_deferred_chain(d, coil_deferred_succeed(str("x"), counted_free));
    CU_ASSERT_EQUAL(destroyed, 1);
    CU_ASSERT(!coil_deferred_called(d));
    CU_ASSERT(!coil_deferred_paused(d));
    CU_ASSERT(coil_test_log_contains("not fired"));
    coil_test_log_capture_stop();
    coil_deferred_unref(d);
}

/* The inner deferred's producer goes away without firing it: the outer one
 * stays paused, and both are freed when their holders drop them, with the
 * pending steps' arguments released and nothing reported. */
static void chain_abandoned(coil_deferred *d, void *arg)
{
    coil_deferred_chain(d, coil_deferred_new()); /* nobody else holds it */
}

static void test_chain_inner_abandoned(void)
{
    coil_test_log_capture_start();
    arg_freed = 0;
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_callbacks_full(d, chain_abandoned, NULL, str("a"), free_arg);
    coil_deferred_add_callbacks_full(d, callback1, NULL, str("b"), free_arg);
    coil_deferred_callback(d, str("v"), free);
    CU_ASSERT(coil_deferred_paused(d));
    CU_ASSERT_EQUAL(arg_freed, 1);
    coil_deferred_cancel(d); /* nothing left to cancel */
    CU_ASSERT(coil_deferred_paused(d));
    coil_deferred_unref(d);
    CU_ASSERT_EQUAL(arg_freed, 2);

    /* The inner one held by the test and dropped last, unfired. */
    inner_d = coil_deferred_new();
    coil_deferred_add_callbacks_full(inner_d, callback1, NULL, str("c"), free_arg);
    d = coil_deferred_new();
    coil_deferred_add_callback(d, chain_to_inner, NULL);
    coil_deferred_add_callbacks_full(d, callback1, NULL, str("d"), free_arg);
    reset();
    coil_deferred_errback(d, coil_failure_new(COIL_DOMAIN_USER, 1, "x"));
    /* chain_to_inner is a callback: the failure passes it, nothing waits. */
    CU_ASSERT(!coil_deferred_paused(d));
    coil_deferred_set_result(d, NULL, NULL);
    coil_deferred_unref(d);
    coil_deferred_unref(inner_d);

    inner_d = coil_deferred_new();
    coil_deferred_add_callbacks_full(inner_d, callback1, NULL, str("e"), free_arg);
    d = coil_deferred_new();
    coil_deferred_add_callback(d, chain_to_inner, NULL);
    coil_deferred_add_callbacks_full(d, callback1, NULL, str("f"), free_arg);
    coil_deferred_callback(d, str("v"), free);
    CU_ASSERT(coil_deferred_paused(d));
    coil_deferred_unref(d); /* kept alive by inner_d, which would carry it on */
    coil_deferred_unref(inner_d);
    CU_ASSERT_EQUAL(arg_freed, 6);
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_WARN), 0);
    coil_test_log_capture_stop();
}

/* A deep nest whose innermost deferred is never fired: dropping it frees the
 * whole nest without recursion. */
static int nest_args;
static void nest_arg_free(void *p)
{
    (void)p;
    nest_args++;
}

static void test_deep_nest_abandoned(void)
{
    enum { N = 100000 };
    nest = calloc(N, sizeof *nest);
    for (size_t i = 0; i < N; i++)
        nest[i] = coil_deferred_new();
    nest_args = 0;
    for (size_t i = 0; i + 1 < N; i++) {
        coil_deferred_add_callback(nest[i], chain_next, (void *)(uintptr_t)i);
        coil_deferred_add_callbacks_full(nest[i], callback1, NULL, NULL, nest_arg_free);
        coil_deferred_callback(nest[i], NULL, NULL);
    }
    for (size_t i = 0; i < N; i++)
        coil_deferred_unref(nest[i]); /* the last one frees them all */
    CU_ASSERT_EQUAL(nest_args, N - 1);
    free(nest);
}

/* Cancelling the outermost of a deep nest cancels the innermost, and the
 * failure travels back out, without recursion either way. */
static void test_cancel_deep_nest(void)
{
    enum { N = 100000 };
    nest = calloc(N, sizeof *nest);
    for (size_t i = 0; i < N; i++)
        nest[i] = coil_deferred_new();
    for (size_t i = 0; i + 1 < N; i++) {
        coil_deferred_add_callback(nest[i], chain_next, (void *)(uintptr_t)i);
        coil_deferred_callback(nest[i], NULL, NULL);
    }
    reset();
    coil_deferred_add_errback(nest[0], expect_cancelled, NULL);
    coil_deferred_cancel(nest[0]);
    CU_ASSERT_STRING_EQUAL(trace, "COIL_ECANCELLED;");
    CU_ASSERT(!coil_deferred_paused(nest[0]));
    CU_ASSERT(!coil_deferred_is_failure(nest[0]));
    for (size_t i = 0; i < N; i++)
        coil_deferred_unref(nest[i]);
    free(nest);
}

/* The canceller's own value, an errback fired later, and a deferred whose
 * holder drops it inside a step of the chain. */
static void test_cancel_then_errback_suppressed(void)
{
    coil_test_log_capture_start();
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_errback(d, expect_cancelled, NULL);
    coil_deferred_cancel(d);
    /* One late fire is swallowed, its failure freed, not reported... */
    CU_ASSERT_EQUAL(
        coil_deferred_errback(d, coil_failure_new(COIL_DOMAIN_USER, 1, "late")), 0);
    /* ...but only one. */
    CU_ASSERT_EQUAL(coil_deferred_errback(d, coil_failure_new(COIL_DOMAIN_USER, 1, "x")),
                    COIL_EALREADY);
    coil_deferred_cancel(d); /* fired: nothing */
    coil_deferred_unref(d);
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_WARN), 0);
    coil_test_log_capture_stop();
}

/* ---- more timeouts ---- */

static coil_deferred *slow_inner;
static void chain_slow(coil_deferred *d, void *arg)
{
    coil_deferred_chain(d, coil_deferred_ref(slow_inner));
}

/* A deferred paused on another times out: the other is cancelled, and its
 * COIL_ECANCELLED becomes the outer one's COIL_ETIMEDOUT. */
static void test_timeout_while_paused(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    reset();
    canceller_calls = 0;
    slow_inner = coil_deferred_new_cancellable(canceller, NULL);
    coil_deferred *d = coil_deferred_new();
    coil_deferred_add_callback(d, chain_slow, NULL);
    coil_deferred_callback(d, NULL, NULL);
    CU_ASSERT(coil_deferred_paused(d));
    CU_ASSERT_EQUAL(coil_deferred_add_timeout(d, r, 3), 0);
    coil_deferred_add_both(d, expect_code, NULL);
    coil_reactor_advance(r, 3);
    CU_ASSERT_EQUAL(canceller_calls, 1);
    CU_ASSERT_STRING_EQUAL(trace, "COIL_ETIMEDOUT;deferred timed out after 3 s;");
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 0);
    /* The inner one has a canceller: its producer's late answer is an error. */
    CU_ASSERT_EQUAL(coil_deferred_callback(slow_inner, NULL, NULL), COIL_EALREADY);
    coil_deferred_unref(slow_inner);
    coil_deferred_unref(d);
    coil_reactor_free(r);
    coil_clock_free(c);
}

/* The timer holds `d`: dropped by everyone else, it still times out, and its
 * unhandled COIL_ETIMEDOUT is reported when the timer lets it go. The
 * timeout's failure wraps the cancellation as its cause. */
static void test_timeout_holds_the_deferred(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    coil_test_log_capture_start();
    coil_deferred *d = coil_deferred_new();
    CU_ASSERT_EQUAL(coil_deferred_add_timeout(d, r, 1.5), 0);
    coil_deferred_unref(d);
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_WARN), 0);
    coil_reactor_advance(r, 2);
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_ERROR), 1);
    CU_ASSERT(coil_test_log_contains("Unhandled error in deferred: deferred timed out "
                                     "after 1.5 s [coil COIL_ETIMEDOUT]"));
    CU_ASSERT(coil_test_log_contains("deferred was cancelled"));
    coil_test_log_capture_stop();
    coil_reactor_free(r);
    coil_clock_free(c);
}

/* A canceller that answers with a value: the timeout step leaves the value
 * alone. And a deferred that has fired gets no timer at all. */
static void test_timeout_canceller_answers(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    reset();
    canceller_calls = 0;
    coil_deferred *d = coil_deferred_new_cancellable(canceller_fires, NULL);
    CU_ASSERT_EQUAL(coil_deferred_add_timeout(d, r, 1), 0);
    coil_deferred_add_both(d, expect_code, NULL);
    coil_reactor_advance(r, 1);
    CU_ASSERT_EQUAL(canceller_calls, 1);
    CU_ASSERT_STRING_EQUAL(trace, "value cancelled but answered;");
    coil_deferred_unref(d);

    d = coil_deferred_succeed(NULL, NULL);
    CU_ASSERT_EQUAL(coil_deferred_add_timeout(d, r, 1), 0);
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 0);
    CU_ASSERT_EQUAL(coil_deferred_add_timeout(d, NULL, 1), COIL_EINVAL);
    coil_deferred_unref(d);
    coil_reactor_free(r);
    coil_clock_free(c);
}

/* Two timeouts: the shorter wins, the longer one's timer is cancelled by its
 * step, and each step's state is freed once (ASan checks). */
static void test_two_timeouts(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    reset();
    coil_deferred *d = coil_deferred_new();
    CU_ASSERT_EQUAL(coil_deferred_add_timeout(d, r, 5), 0);
    CU_ASSERT_EQUAL(coil_deferred_add_timeout(d, r, 2), 0);
    coil_deferred_add_both(d, expect_code, NULL);
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 2);
    coil_reactor_advance(r, 2);
    /* The first step (5 s) had not timed out: it left the cancellation; the
     * second (2 s) turned it into its timeout. */
    CU_ASSERT_STRING_EQUAL(trace, "COIL_ETIMEDOUT;deferred timed out after 2 s;");
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(r), 0);
    coil_deferred_unref(d);
    coil_reactor_free(r);
    coil_clock_free(c);
}

/* ---- more lists ---- */

static void record_value(coil_deferred *d, void *arg)
{
    rec("child %s;", (const char *)arg);
}

static void test_list_of_fired_children(void)
{
    reset();
    coil_test_log_capture_start();
    coil_deferred *ch[2] = {
        coil_deferred_succeed(str("a"), free),
        coil_deferred_fail(coil_failure_new(COIL_DOMAIN_USER, 1, "b"))};
    coil_deferred *l = coil_deferred_list(ch, 2, COIL_DL_CONSUME_ERRORS);
    CU_ASSERT(coil_deferred_called(l));
    coil_deferred_add_callback(l, grab_list, NULL);
    CU_ASSERT_STRING_EQUAL(trace, "list fired;");
    CU_ASSERT_EQUAL(list_result->items[0].ok, 1);
    CU_ASSERT_STRING_EQUAL(list_result->items[0].value, "a");
    CU_ASSERT_EQUAL(list_result->items[1].ok, 0);
    CU_ASSERT_PTR_NULL(list_result->items[1].value);
    CU_ASSERT_EQUAL(coil_failure_code(list_result->items[1].failure), 1);
    /* The steps after the list's in each child see what the list left. */
    coil_deferred_add_callback(ch[0], record_value, "0");
    coil_deferred_add_callback(ch[1], record_value, "1");
    CU_ASSERT_STRING_EQUAL(trace, "list fired;child 0;child 1;");
    CU_ASSERT_PTR_NULL(value_of(ch[0]));
    coil_deferred_unref(ch[0]);
    coil_deferred_unref(ch[1]);
    coil_deferred_unref(l);
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_WARN), 0);
    coil_test_log_capture_stop();
}

/* The list is its children's business: a list dropped by its caller still
 * fires its steps when the children fire, and children freed unfired leave
 * the list unfired; nothing leaks either way. */
static void test_list_lifetimes(void)
{
    reset();
    destroyed = 0;
    coil_deferred *ch[2] = {coil_deferred_new(), coil_deferred_new()};
    coil_deferred *l = coil_deferred_list(ch, 2, 0);
    coil_deferred_add_callback(l, grab_list, NULL);
    coil_deferred_unref(l);
    coil_deferred_callback(ch[0], str("0"), counted_free);
    coil_deferred_callback(ch[1], str("1"), counted_free);
    CU_ASSERT_STRING_EQUAL(trace, "list fired;"); /* then freed */
    CU_ASSERT_EQUAL(destroyed, 2);
    coil_deferred_unref(ch[0]);
    coil_deferred_unref(ch[1]);

    /* One child fires, the other is dropped unfired. */
    reset();
    destroyed = 0;
    ch[0] = coil_deferred_new();
    ch[1] = coil_deferred_new();
    l = coil_deferred_list(ch, 2, 0);
    coil_deferred_add_callback(l, grab_list, NULL);
    coil_deferred_callback(ch[0], str("0"), counted_free);
    coil_deferred_unref(ch[1]);
    CU_ASSERT_STRING_EQUAL(trace, "");
    CU_ASSERT(!coil_deferred_called(l));
    coil_deferred_unref(ch[0]);
    coil_deferred_unref(l);
    CU_ASSERT_EQUAL(destroyed, 1); /* the recorded value, never delivered */

    /* Children dropped first, list last; and list first, children last. */
    ch[0] = coil_deferred_new();
    ch[1] = coil_deferred_new();
    l = coil_deferred_list(ch, 2, COIL_DL_FIRE_ON_ONE_CALLBACK);
    coil_deferred_unref(ch[0]);
    coil_deferred_unref(ch[1]);
    coil_deferred_unref(l);
    ch[0] = coil_deferred_new();
    ch[1] = coil_deferred_new();
    l = coil_deferred_gather(ch, 2);
    coil_deferred_unref(l);
    coil_deferred_unref(ch[0]);
    coil_deferred_unref(ch[1]);
}

/* Every value recorded in a list result is destroyed exactly once, with the
 * result; values recorded before an early failure are destroyed then. */
static void test_list_values_destroyed_once(void)
{
    destroyed = 0;
    coil_deferred *ch[3] = {coil_deferred_new(), coil_deferred_new(),
                            coil_deferred_new()};
    coil_deferred *l = coil_deferred_list(ch, 3, COIL_DL_FIRE_ON_ONE_ERRBACK);
    coil_deferred_add_errback(l, errback_null, NULL);
    coil_deferred_callback(ch[0], str("kept by the list"), counted_free);
    CU_ASSERT_PTR_NULL(value_of(ch[0]));
    coil_test_log_capture_start();
    coil_deferred_errback(ch[1], coil_failure_new(COIL_DOMAIN_USER, 1, "e"));
    CU_ASSERT_EQUAL(destroyed, 1); /* the list failed: the value is dropped */
    /* After the list fired, outcomes stay in the children. */
    coil_deferred_callback(ch[2], str("late"), counted_free);
    CU_ASSERT_STRING_EQUAL(value_of(ch[2]), "late");
    coil_deferred_unref(l);
    for (int i = 0; i < 3; i++)
        coil_deferred_unref(ch[i]);
    CU_ASSERT_EQUAL(destroyed, 2);
    /* Not consumed: ch[1] still had its failure. */
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_ERROR), 1);
    CU_ASSERT(coil_test_log_contains("Unhandled error in deferred: e [user 1]"));
    coil_test_log_capture_stop();
}

/* FIRE_ON_ONE_CALLBACK when no child succeeds: the list fails (a list
 * result would not have the type its callback expects). */
static void test_list_fire_on_one_callback_none_succeed(void)
{
    reset();
    coil_test_log_capture_start();
    coil_deferred *ch[2] = {coil_deferred_new(), coil_deferred_new()};
    coil_deferred *l =
        coil_deferred_list(ch, 2, COIL_DL_FIRE_ON_ONE_CALLBACK | COIL_DL_CONSUME_ERRORS);
    coil_deferred_add_both(l, grab_list, NULL);
    coil_deferred_errback(ch[1], coil_failure_new(COIL_DOMAIN_USER, 1, "e1"));
    coil_deferred_errback(ch[0], coil_failure_new(COIL_DOMAIN_USER, 2, "e0"));
    CU_ASSERT_STRING_EQUAL(trace, "list failed: none of the 2 deferreds succeeded;"
                                  "cause: e0;");
    coil_deferred_unref(l);
    coil_deferred_unref(ch[0]);
    coil_deferred_unref(ch[1]);
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_WARN), 0);

    reset();
    l = coil_deferred_list(NULL, 0, COIL_DL_FIRE_ON_ONE_CALLBACK);
    coil_deferred_add_both(l, grab_list, NULL);
    CU_ASSERT_STRING_EQUAL(trace, "list failed: none of the 0 deferreds succeeded;"
                                  "cause: none;");
    coil_deferred_unref(l);
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_WARN), 0);
    coil_test_log_capture_stop();

    reset();
    l = coil_deferred_list(NULL, 0, 0);
    coil_deferred_add_both(l, grab_list, NULL);
    CU_ASSERT_STRING_EQUAL(trace, "list fired;");
    CU_ASSERT_EQUAL(list_result->count, 0);
    coil_deferred_unref(l);
}

/* Cancelling a list cancels its pending children (Twisted's
 * DeferredList.cancel); the list then fires as its flags say. */
static void test_list_cancel(void)
{
    reset();
    canceller_calls = 0;
    coil_deferred *ch[3] = {coil_deferred_new_cancellable(canceller, NULL),
                            coil_deferred_new(), coil_deferred_new()};
    coil_deferred *l = coil_deferred_list(ch, 3, COIL_DL_CONSUME_ERRORS);
    coil_deferred_add_both(l, grab_list, NULL);
    coil_deferred_callback(ch[1], str("done"), free);
    coil_deferred_cancel(l);
    CU_ASSERT_EQUAL(canceller_calls, 1);
    CU_ASSERT_STRING_EQUAL(trace, "list fired;");
    CU_ASSERT(coil_failure_check(list_result->items[0].failure, COIL_DOMAIN_COIL,
                                 COIL_ECANCELLED));
    CU_ASSERT_STRING_EQUAL(list_result->items[1].value, "done");
    CU_ASSERT(coil_failure_check(list_result->items[2].failure, COIL_DOMAIN_COIL,
                                 COIL_ECANCELLED));
    coil_deferred_unref(l);
    for (int i = 0; i < 3; i++)
        coil_deferred_unref(ch[i]);

    /* gather: the first cancellation fails it. */
    reset();
    coil_deferred *g2[2] = {coil_deferred_new(), coil_deferred_new()};
    l = coil_deferred_gather(g2, 2);
    coil_deferred_add_both(l, grab_list, NULL);
    coil_deferred_unref(g2[1]); /* gone: not cancelled, no harm */
    coil_deferred_cancel(l);
    CU_ASSERT_STRING_EQUAL(trace, "list failed: deferred 1 of 2 failed;"
                                  "cause: deferred was cancelled;");
    coil_deferred_unref(l);
    coil_deferred_unref(g2[0]);
}

/* A child that answers its cancellation by waiting on something else keeps
 * the list from firing: the list then fails with COIL_ECANCELLED itself, and
 * what the child delivers later is left in the child. */
static coil_deferred *slow_second;
static void wait_again(coil_deferred *d, void *arg)
{
    rec("child retries after %s;", coil_failure_message(coil_deferred_failure(d)));
    coil_deferred_chain(d, coil_deferred_ref(slow_second));
}

static void test_list_cancel_child_does_not_fire(void)
{
    reset();
    destroyed = 0;
    slow_inner = coil_deferred_new();
    slow_second = coil_deferred_new();
    coil_deferred *child = coil_deferred_new();
    coil_deferred_add_callback(child, chain_slow, NULL);
    coil_deferred_add_errback(child, wait_again, NULL);
    coil_deferred *l = coil_deferred_list(&child, 1, 0);
    coil_deferred_add_both(l, grab_list, NULL);
    coil_deferred_callback(child, NULL, NULL);
    CU_ASSERT(coil_deferred_paused(child));
    coil_deferred_cancel(l);
    CU_ASSERT_STRING_EQUAL(trace, "child retries after deferred was cancelled;"
                                  "list failed: deferred was cancelled;cause: none;");
    CU_ASSERT(coil_deferred_paused(child));
    coil_deferred_callback(slow_second, str("later"), counted_free);
    CU_ASSERT(!coil_deferred_paused(child));
    CU_ASSERT_STRING_EQUAL(value_of(child), "later");
    CU_ASSERT_EQUAL(destroyed, 0);
    coil_deferred_unref(l);
    coil_deferred_unref(child);
    CU_ASSERT_EQUAL(destroyed, 1);
    coil_deferred_unref(slow_inner);
    coil_deferred_unref(slow_second);
}

/* gather under a timeout: the timer cancels the gather, which cancels the
 * children; the first cancellation fails the gather and the timeout step
 * reports the timeout, its cause chain keeping the rest. */
static void test_gather_with_timeout(void)
{
    coil_clock *c = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(c);
    reset();
    coil_deferred *ch[2] = {coil_deferred_new(), coil_deferred_new()};
    coil_deferred *g = coil_deferred_gather(ch, 2);
    CU_ASSERT_EQUAL(coil_deferred_add_timeout(g, r, 10), 0);
    coil_deferred_add_both(g, expect_code, NULL);
    coil_deferred_callback(ch[1], str("fast"), free);
    coil_reactor_advance(r, 10);
    CU_ASSERT_STRING_EQUAL(trace, "COIL_ETIMEDOUT;deferred timed out after 10 s;");
    CU_ASSERT(!coil_deferred_is_failure(ch[0])); /* consumed */
    coil_deferred_unref(g);
    coil_deferred_unref(ch[0]);
    coil_deferred_unref(ch[1]);
    coil_reactor_free(r);
    coil_clock_free(c);
}

static int add_suites(void)
{
    static const coil_test_case book[] = {
        COIL_TEST(test_book_example_3_1_callback),
        COIL_TEST(test_book_example_3_2_errback),
        COIL_TEST(test_book_example_3_3_chain),
        COIL_TEST(test_book_example_3_4_headline),
        COIL_TEST(test_book_exercise_third_callback_raises),
        COIL_TEST(test_book_exercise_third_callback_raises_errback_recovers),
        COIL_TEST(test_book_exercise_errback_passes_failure_on),
        COIL_TEST(test_book_exercise_errback_custom_error),
        COIL_TEST(test_book_errback_raises_anew),
        COIL_TEST(test_book_add_callbacks_pair),
        COIL_TEST(test_book_add_callbacks_versus_add_callback_add_errback),
        {NULL, NULL},
    };
    static const coil_test_case semantics[] = {
        COIL_TEST(test_add_both),
        COIL_TEST(test_fire_twice_is_an_error),
        COIL_TEST(test_add_after_fire_runs_at_once),
        COIL_TEST(test_take_and_wrap),
        COIL_TEST(test_values_and_args_destroyed_once),
        COIL_TEST(test_unref_inside_step),
        COIL_TEST(test_chain_pauses_until_inner_fires),
        COIL_TEST(test_chain_failure_moves_to_outer),
        COIL_TEST(test_chain_already_fired_continues_at_once),
        COIL_TEST(test_chain_to_itself_fails),
        COIL_TEST(test_long_chain_no_recursion),
        COIL_TEST(test_deep_nesting_no_recursion),
        COIL_TEST(test_cancel_unfired),
        COIL_TEST(test_canceller_that_fires),
        COIL_TEST(test_cancel_fired_is_noop_and_paused_propagates),
        COIL_TEST(test_timeout_fires),
        COIL_TEST(test_timeout_not_fired_when_result_first),
        COIL_TEST(test_list_waits_for_all),
        COIL_TEST(test_list_consume_errors),
        COIL_TEST(test_list_fire_on_one_callback),
        COIL_TEST(test_list_fire_on_one_errback),
        COIL_TEST(test_list_first_error_index),
        COIL_TEST(test_gather),
        COIL_TEST(test_errback_without_failure),
        COIL_TEST(test_succeed_and_fail),
        COIL_TEST(test_add_step_inside_running_chain),
        COIL_TEST(test_chain_fired_from_inside_the_step),
        COIL_TEST(test_chain_from_errback),
        COIL_TEST(test_chain_already_chained_fails),
        COIL_TEST(test_chain_outside_a_step),
        COIL_TEST(test_chain_inner_abandoned),
        COIL_TEST(test_deep_nest_abandoned),
        COIL_TEST(test_cancel_deep_nest),
        COIL_TEST(test_cancel_then_errback_suppressed),
        COIL_TEST(test_timeout_while_paused),
        COIL_TEST(test_timeout_holds_the_deferred),
        COIL_TEST(test_timeout_canceller_answers),
        COIL_TEST(test_two_timeouts),
        COIL_TEST(test_list_of_fired_children),
        COIL_TEST(test_list_lifetimes),
        COIL_TEST(test_list_values_destroyed_once),
        COIL_TEST(test_list_fire_on_one_callback_none_succeed),
        COIL_TEST(test_list_cancel),
        COIL_TEST(test_list_cancel_child_does_not_fire),
        COIL_TEST(test_gather_with_timeout),
        COIL_TEST(test_later_fires),
        COIL_TEST(test_later_cancel),
        COIL_TEST(test_later_book_busy_page),
        {NULL, NULL},
    };
    if (coil_test_add_suite("seed book chapter 3", book) != 0)
        return -1;
    return coil_test_add_suite("deferred", semantics);
}

int main(void)
{
    return coil_test_main(add_suites);
}
