/* The logger's rate limit (coil_log_ratelimited) on the fake clock: a
 * burst per window, the count of what was held back, new windows, levels,
 * and a limit shared by threads. */
#include <pthread.h>
#include <string.h>

#include "testutil.h"

static coil_clock *clk;

static double now(void)
{
    return coil_clock_seconds(clk);
}

static void start(void)
{
    clk = coil_clock_new_fake();
    CU_ASSERT_PTR_NOT_NULL_FATAL(clk);
    coil_log_set_level(COIL_LOG_DEBUG);
    coil_test_log_capture_start();
}

static void end(void)
{
    coil_test_log_capture_stop();
    coil_log_set_level(COIL_LOG_INFO);
    coil_clock_free(clk);
}

static int flood(coil_log_limit *l, int n, const char *what)
{
    int emitted = 0;
    for (int i = 0; i < n; i++)
        emitted +=
            coil_log_ratelimited(l, now(), COIL_LOG_WARN, "test", "%s %d", what, i);
    return emitted;
}

static void test_burst_then_count(void)
{
    start();
    coil_log_limit l = COIL_LOG_LIMIT_INIT(10.0, 3);
    CU_ASSERT_EQUAL(flood(&l, 1000, "accept failed"), 3);
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_WARN), 3);
    CU_ASSERT(coil_test_log_contains("accept failed 0\n"));
    CU_ASSERT(coil_test_log_contains("accept failed 2\n"));
    CU_ASSERT_FALSE(coil_test_log_contains("accept failed 3"));
    CU_ASSERT_FALSE(coil_test_log_contains("suppressed"));

    /* Still the same window a moment before it ends. */
    coil_clock_advance(clk, 9.99);
    CU_ASSERT_EQUAL(flood(&l, 10, "late"), 0);
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_WARN), 3);

    /* A new window: the first message says how many were held back. */
    coil_clock_advance(clk, 0.01);
    CU_ASSERT_EQUAL(flood(&l, 1, "again"), 1);
    CU_ASSERT(coil_test_log_contains(
        "warn test: again 0 (suppressed 1007 similar messages)\n"));
    CU_ASSERT_EQUAL(l.total_dropped, 1007);
    /* ... and only the first. */
    CU_ASSERT_EQUAL(flood(&l, 2, "more"), 2);
    CU_ASSERT(coil_test_log_contains("more 1\n"));
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_WARN), 6);

    /* One held back: singular. */
    CU_ASSERT_EQUAL(flood(&l, 1, "x"), 0);
    coil_clock_advance(clk, 30);
    CU_ASSERT_EQUAL(flood(&l, 1, "y"), 1);
    CU_ASSERT(coil_test_log_contains("y 0 (suppressed 1 similar message)\n"));
    end();
}

static void test_defaults_and_levels(void)
{
    start();
    static coil_log_limit l = COIL_LOG_LIMIT_INIT(0, 0);
    CU_ASSERT_EQUAL(flood(&l, 50, "d"), COIL_LOG_LIMIT_BURST);
    coil_clock_advance(clk, COIL_LOG_LIMIT_INTERVAL - 0.5);
    CU_ASSERT_EQUAL(flood(&l, 50, "d"), 0);
    coil_clock_advance(clk, 0.5);
    CU_ASSERT_EQUAL(flood(&l, 1, "d"), 1);
    CU_ASSERT(coil_test_log_contains("(suppressed 95 similar messages)"));

    /* Below the level: not emitted, not counted, no window used. */
    coil_log_limit q = COIL_LOG_LIMIT_INIT(10, 2);
    coil_log_set_level(COIL_LOG_ERROR);
    size_t before = coil_test_log_count(COIL_LOG_DEBUG);
    CU_ASSERT_EQUAL(flood(&q, 10, "quiet"), 0);
    CU_ASSERT_EQUAL(q.total_dropped, 0);
    coil_log_set_level(COIL_LOG_DEBUG);
    CU_ASSERT_EQUAL(flood(&q, 10, "loud"), 2);
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_DEBUG), before + 2);
    CU_ASSERT_FALSE(coil_test_log_contains("quiet"));

    /* A clock that goes back (a limit shared by reactors on other clocks)
     * starts a new window rather than holding everything back. */
    coil_log_limit b = COIL_LOG_LIMIT_INIT(10, 1);
    CU_ASSERT_EQUAL(coil_log_ratelimited(&b, 100.0, COIL_LOG_WARN, "t", "a"), 1);
    CU_ASSERT_EQUAL(coil_log_ratelimited(&b, 101.0, COIL_LOG_WARN, "t", "b"), 0);
    CU_ASSERT_EQUAL(coil_log_ratelimited(&b, 5.0, COIL_LOG_WARN, "t", "c"), 1);
    CU_ASSERT(coil_test_log_contains("c (suppressed 1 similar message)"));
    end();
}

/* Many threads on one limit: exactly the burst gets through. */
static coil_log_limit shared = COIL_LOG_LIMIT_INIT(1000, 7);
static int shared_emitted[4];

static void *hammer(void *arg)
{
    int *out = arg;
    for (int i = 0; i < 5000; i++)
        *out += coil_log_ratelimited(&shared, 1.0, COIL_LOG_WARN, "t", "h %d", i);
    return NULL;
}

static void test_shared_by_threads(void)
{
    start();
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, hammer, &shared_emitted[i]),
                              0);
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += shared_emitted[i];
    }
    CU_ASSERT_EQUAL(total, 7);
    CU_ASSERT_EQUAL(shared.total_dropped, 4 * 5000 - 7);
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_WARN), 7);
    end();
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_burst_then_count),
        COIL_TEST(test_defaults_and_levels),
        COIL_TEST(test_shared_by_threads),
        {NULL, NULL},
    };
    return coil_test_add_suite("log", cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
