/* Looping calls under the fake clock (Twisted's LoopingCall tests). */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

struct loop_ctx {
    coil_reactor *r;
    double times[64];
    unsigned long counts[64];
    int calls;
    int fail_at; /* return an error on this call number (1-based) */
    int stop_at; /* stop from inside on this call */
    int free_at; /* free from inside on this call */
    coil_looping_call *lc;
};

static int loop_fn(void *arg)
{
    struct loop_ctx *c = arg;
    c->times[c->calls++] = coil_reactor_seconds(c->r);
    if (c->calls == c->fail_at)
        return COIL_EINVAL;
    if (c->calls == c->stop_at)
        CU_ASSERT_EQUAL(coil_looping_call_stop(c->lc), 0);
    if (c->calls == c->free_at) {
        coil_looping_call_free(c->lc);
        c->lc = NULL;
    }
    return 0;
}

static int count_fn(void *arg, unsigned long count)
{
    struct loop_ctx *c = arg;
    c->counts[c->calls] = count;
    return loop_fn(arg);
}

struct done_ctx {
    int fired;
    int failed;
    int code;
};

static void on_done(coil_deferred *d, void *arg)
{
    struct done_ctx *dc = arg;
    dc->fired++;
    if (coil_deferred_is_failure(d)) {
        dc->failed = 1;
        dc->code = coil_failure_code(coil_deferred_failure(d));
        coil_deferred_set_result(d, NULL, NULL);
    }
}

static void setup(coil_clock **c, struct loop_ctx *ctx)
{
    *c = coil_clock_new_fake();
    memset(ctx, 0, sizeof *ctx);
    ctx->r = coil_test_reactor(*c);
}

static void teardown(coil_clock *c, struct loop_ctx *ctx)
{
    CU_ASSERT_EQUAL(coil_reactor_pending_timers(ctx->r), 0);
    coil_reactor_free(ctx->r);
    coil_clock_free(c);
}

static void test_start_now(void)
{
    coil_clock *c;
    struct loop_ctx ctx;
    setup(&c, &ctx);
    ctx.lc = coil_looping_call_new(ctx.r, loop_fn, &ctx);
    coil_deferred *done;
    CU_ASSERT_EQUAL(coil_looping_call_start(ctx.lc, 1.0, 1, &done), 0);
    CU_ASSERT_EQUAL(ctx.calls, 1);
    CU_ASSERT(coil_looping_call_running(ctx.lc));
    coil_reactor_advance(ctx.r, 1);
    coil_reactor_advance(ctx.r, 1);
    coil_reactor_advance(ctx.r, 1);
    CU_ASSERT_EQUAL(ctx.calls, 4);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_DOUBLE_EQUAL(ctx.times[i], (double)i, 1e-9);
    struct done_ctx dc = {0};
    coil_deferred_add_both(done, on_done, &dc);
    CU_ASSERT_EQUAL(dc.fired, 0);
    CU_ASSERT_EQUAL(coil_looping_call_stop(ctx.lc), 0);
    CU_ASSERT_EQUAL(dc.fired, 1);
    CU_ASSERT_EQUAL(dc.failed, 0);
    CU_ASSERT_EQUAL(coil_looping_call_stop(ctx.lc), COIL_ESTATE);
    coil_reactor_advance(ctx.r, 5);
    CU_ASSERT_EQUAL(ctx.calls, 4);
    coil_deferred_unref(done);
    coil_looping_call_free(ctx.lc);
    teardown(c, &ctx);
}

static void test_start_later_keeps_schedule(void)
{
    coil_clock *c;
    struct loop_ctx ctx;
    setup(&c, &ctx);
    ctx.lc = coil_looping_call_new(ctx.r, loop_fn, &ctx);
    CU_ASSERT_EQUAL(coil_looping_call_start(ctx.lc, 2.0, 0, NULL), 0);
    CU_ASSERT_EQUAL(ctx.calls, 0);
    coil_reactor_advance(ctx.r, 1.9);
    CU_ASSERT_EQUAL(ctx.calls, 0);
    coil_reactor_advance(ctx.r, 0.1);
    CU_ASSERT_EQUAL(ctx.calls, 1);
    /* The clock jumps past 4 to 5: one call at 5, the next back on the grid
     * at 6, not at 7. */
    coil_clock_advance(c, 3.0);
    coil_reactor_advance(ctx.r, 0);
    CU_ASSERT_EQUAL(ctx.calls, 2);
    CU_ASSERT_DOUBLE_EQUAL(ctx.times[1], 5.0, 1e-9);
    coil_reactor_advance(ctx.r, 1.0);
    CU_ASSERT_EQUAL(ctx.calls, 3);
    CU_ASSERT_DOUBLE_EQUAL(ctx.times[2], 6.0, 1e-9);
    coil_looping_call_free(ctx.lc); /* stops it */
    teardown(c, &ctx);
}

static void test_with_count_reports_skipped(void)
{
    coil_clock *c;
    struct loop_ctx ctx;
    setup(&c, &ctx);
    ctx.lc = coil_looping_call_new_with_count(ctx.r, count_fn, &ctx);
    CU_ASSERT_EQUAL(coil_looping_call_start(ctx.lc, 1.0, 1, NULL), 0);
    CU_ASSERT_EQUAL(ctx.calls, 1);
    CU_ASSERT_EQUAL(ctx.counts[0], 1);
    coil_reactor_advance(ctx.r, 1);
    CU_ASSERT_EQUAL(ctx.counts[1], 1);
    /* Fall behind by three and a half intervals. */
    coil_clock_advance(c, 3.5);
    coil_reactor_advance(ctx.r, 0);
    CU_ASSERT_EQUAL(ctx.calls, 3);
    CU_ASSERT_EQUAL(ctx.counts[2], 3);
    coil_reactor_advance(ctx.r, 0.5); /* t = 5 */
    CU_ASSERT_EQUAL(ctx.calls, 4);
    CU_ASSERT_EQUAL(ctx.counts[3], 1);
    CU_ASSERT_DOUBLE_EQUAL(ctx.times[3], 5.0, 1e-9);
    coil_looping_call_stop(ctx.lc);
    coil_looping_call_free(ctx.lc);
    teardown(c, &ctx);
}

static void test_with_count_start_later(void)
{
    coil_clock *c;
    struct loop_ctx ctx;
    setup(&c, &ctx);
    ctx.lc = coil_looping_call_new_with_count(ctx.r, count_fn, &ctx);
    CU_ASSERT_EQUAL(coil_looping_call_start(ctx.lc, 0.5, 0, NULL), 0);
    coil_reactor_advance(ctx.r, 0.5);
    CU_ASSERT_EQUAL(ctx.calls, 1);
    CU_ASSERT_EQUAL(ctx.counts[0], 1);
    coil_clock_advance(c, 1.0); /* 1.5 */
    coil_reactor_advance(ctx.r, 0);
    CU_ASSERT_EQUAL(ctx.counts[1], 2);
    coil_looping_call_free(ctx.lc);
    teardown(c, &ctx);
}

static void test_error_stops_and_fails_deferred(void)
{
    coil_clock *c;
    struct loop_ctx ctx;
    setup(&c, &ctx);
    ctx.fail_at = 3;
    ctx.lc = coil_looping_call_new(ctx.r, loop_fn, &ctx);
    coil_deferred *done;
    CU_ASSERT_EQUAL(coil_looping_call_start(ctx.lc, 1.0, 0, &done), 0);
    struct done_ctx dc = {0};
    coil_deferred_add_both(done, on_done, &dc);
    coil_deferred_unref(done);
    coil_reactor_advance(ctx.r, 10);
    CU_ASSERT_EQUAL(ctx.calls, 3);
    CU_ASSERT_EQUAL(dc.fired, 1);
    CU_ASSERT_EQUAL(dc.failed, 1);
    CU_ASSERT_EQUAL(dc.code, COIL_EINVAL);
    CU_ASSERT(!coil_looping_call_running(ctx.lc));
    /* It can be started again. */
    ctx.fail_at = 0;
    CU_ASSERT_EQUAL(coil_looping_call_start(ctx.lc, 1.0, 1, NULL), 0);
    CU_ASSERT_EQUAL(ctx.calls, 4);
    coil_looping_call_free(ctx.lc);
    teardown(c, &ctx);
}

static void test_error_message_names_code(void)
{
    coil_clock *c;
    struct loop_ctx ctx;
    setup(&c, &ctx);
    ctx.fail_at = 1;
    ctx.lc = coil_looping_call_new(ctx.r, loop_fn, &ctx);
    coil_deferred *done;
    CU_ASSERT_EQUAL(coil_looping_call_start(ctx.lc, 1.0, 1, &done), 0);
    CU_ASSERT(coil_deferred_is_failure(done));
    CU_ASSERT_STRING_EQUAL(coil_failure_message(coil_deferred_failure(done)),
                           "looping call stopped: its function returned COIL_EINVAL "
                           "(invalid argument)");
    coil_test_log_capture_start();
    coil_deferred_unref(done); /* nobody handled it: reported */
    CU_ASSERT(coil_test_log_contains("Unhandled error in deferred"));
    coil_test_log_capture_stop();
    coil_looping_call_free(ctx.lc);
    teardown(c, &ctx);
}

static void test_stop_and_free_inside(void)
{
    coil_clock *c;
    struct loop_ctx ctx;
    setup(&c, &ctx);
    ctx.stop_at = 2;
    ctx.lc = coil_looping_call_new(ctx.r, loop_fn, &ctx);
    coil_deferred *done;
    CU_ASSERT_EQUAL(coil_looping_call_start(ctx.lc, 1.0, 1, &done), 0);
    struct done_ctx dc = {0};
    coil_deferred_add_both(done, on_done, &dc);
    coil_deferred_unref(done);
    coil_reactor_advance(ctx.r, 5);
    CU_ASSERT_EQUAL(ctx.calls, 2);
    CU_ASSERT_EQUAL(dc.fired, 1);
    CU_ASSERT_EQUAL(dc.failed, 0);

    ctx.free_at = 4;
    ctx.stop_at = 0;
    CU_ASSERT_EQUAL(coil_looping_call_start(ctx.lc, 1.0, 1, NULL), 0);
    coil_reactor_advance(ctx.r, 5);
    CU_ASSERT_EQUAL(ctx.calls, 4);
    CU_ASSERT_PTR_NULL(ctx.lc);
    teardown(c, &ctx);
}

static void test_bad_arguments(void)
{
    coil_clock *c;
    struct loop_ctx ctx;
    setup(&c, &ctx);
    ctx.lc = coil_looping_call_new(ctx.r, loop_fn, &ctx);
    CU_ASSERT_EQUAL(coil_looping_call_start(ctx.lc, 0, 1, NULL), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_looping_call_start(ctx.lc, -1, 1, NULL), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_looping_call_start(ctx.lc, 1, 0, NULL), 0);
    CU_ASSERT_EQUAL(coil_looping_call_start(ctx.lc, 1, 0, NULL), COIL_ESTATE);
    CU_ASSERT_PTR_NULL(coil_looping_call_new(ctx.r, NULL, NULL));
    coil_looping_call_free(ctx.lc);
    teardown(c, &ctx);
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_start_now),
        COIL_TEST(test_start_later_keeps_schedule),
        COIL_TEST(test_with_count_reports_skipped),
        COIL_TEST(test_with_count_start_later),
        COIL_TEST(test_error_stops_and_fails_deferred),
        COIL_TEST(test_error_message_names_code),
        COIL_TEST(test_stop_and_free_inside),
        COIL_TEST(test_bad_arguments),
        {NULL, NULL},
    };
    return coil_test_add_suite("looping_call", cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
