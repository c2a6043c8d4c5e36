/* Error table, failures and the logger. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static void test_error_names(void)
{
    CU_ASSERT_STRING_EQUAL(coil_err_name(COIL_EAGAIN), "COIL_EAGAIN");
    CU_ASSERT_STRING_EQUAL(coil_err_name(COIL_ETIMEDOUT), "COIL_ETIMEDOUT");
    CU_ASSERT_STRING_EQUAL(coil_err_name(COIL_OK), "COIL_OK");
    CU_ASSERT_STRING_EQUAL(coil_err_name(-9999), "COIL_UNKNOWN");
    CU_ASSERT_STRING_EQUAL(coil_strerror(COIL_ENOMEM), "out of memory");
    CU_ASSERT_STRING_EQUAL(coil_strerror(12345), "unknown coil error code");
    /* Codes are negative and distinct. */
    int codes[] = {
#define X(name, value, msg) COIL_##name,
        COIL_ERROR_MAP(X)
#undef X
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT(codes[i] < 0);
        for (size_t j = i + 1; j < n; j++)
            CU_ASSERT_NOT_EQUAL(codes[i], codes[j]);
    }
}

static void test_failure_basic(void)
{
    coil_failure *f =
        coil_failure_new(COIL_DOMAIN_USER, 7, "fetch of %s failed", "x.org");
    CU_ASSERT_EQUAL(coil_failure_domain(f), COIL_DOMAIN_USER);
    CU_ASSERT_EQUAL(coil_failure_code(f), 7);
    CU_ASSERT_STRING_EQUAL(coil_failure_message(f), "fetch of x.org failed");
    CU_ASSERT_PTR_NULL(coil_failure_cause(f));
    char *s = coil_failure_to_string(f);
    CU_ASSERT_STRING_EQUAL(s, "fetch of x.org failed [user 7]");
    free(s);
    coil_failure_free(f);
    coil_failure_free(NULL);
}

static void test_failure_errno(void)
{
    coil_failure *f =
        coil_failure_from_errno(ECONNREFUSED, "connect to %s:%d failed", "127.0.0.1", 9);
    CU_ASSERT_EQUAL(coil_failure_domain(f), COIL_DOMAIN_SYSTEM);
    CU_ASSERT_EQUAL(coil_failure_code(f), ECONNREFUSED);
    CU_ASSERT_STRING_EQUAL(coil_failure_message(f),
                           "connect to 127.0.0.1:9 failed: Connection refused");
    char buf[256];
    size_t n = coil_failure_format(f, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "connect to 127.0.0.1:9 failed: Connection refused "
                                "[system ECONNREFUSED]");
    CU_ASSERT_EQUAL(n, strlen(buf));
    /* Truncation keeps a terminated string and reports the full length. */
    char small[10];
    CU_ASSERT_EQUAL(coil_failure_format(f, small, sizeof small), n);
    CU_ASSERT_EQUAL(strlen(small), 9);
    coil_failure_free(f);
}

static void test_failure_wrap_check_copy(void)
{
    coil_failure *inner = coil_failure_new(COIL_DOMAIN_COIL, COIL_ETIMEDOUT, "no answer");
    coil_failure *outer =
        coil_failure_wrap(inner, COIL_DOMAIN_TLS, 5, "handshake failed");
    CU_ASSERT_PTR_EQUAL(coil_failure_cause(outer), inner);
    CU_ASSERT(coil_failure_check(outer, COIL_DOMAIN_COIL, COIL_ETIMEDOUT));
    CU_ASSERT(coil_failure_check(outer, COIL_DOMAIN_TLS, 5));
    CU_ASSERT(!coil_failure_check(outer, COIL_DOMAIN_SSH, 5));
    coil_failure *copy = coil_failure_copy(outer);
    coil_failure_free(outer);
    char *s = coil_failure_to_string(copy);
    CU_ASSERT_STRING_EQUAL(s, "handshake failed [tls 5] (caused by: no answer "
                              "[coil COIL_ETIMEDOUT])");
    free(s);
    coil_failure_free(copy);
    CU_ASSERT_STRING_EQUAL(coil_domain_name(COIL_DOMAIN_SSH), "ssh");
}

static void test_failure_print(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    coil_failure *f =
        coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL, "bad port \"%s\"", "x");
    coil_failure_print(f, out);
    fclose(out);
    CU_ASSERT_STRING_EQUAL(buf, "bad port \"x\" [coil COIL_EINVAL]\n");
    free(buf);
    coil_failure_free(f);
}

static void test_log_levels_and_sink(void)
{
    coil_test_log_capture_start();
    coil_log_set_level(COIL_LOG_WARN);
    coil_log(COIL_LOG_INFO, "test", "dropped %d", 1);
    coil_log(COIL_LOG_WARN, "test", "kept %d", 2);
    coil_log(COIL_LOG_ERROR, "mod", "also kept");
    CU_ASSERT_EQUAL(coil_test_log_count(COIL_LOG_DEBUG), 2);
    CU_ASSERT(coil_test_log_contains("warn test: kept 2"));
    CU_ASSERT(coil_test_log_contains("error mod: also kept"));
    CU_ASSERT(!coil_test_log_contains("dropped"));
    CU_ASSERT_EQUAL(coil_log_get_level(), COIL_LOG_WARN);
    coil_test_log_capture_stop();
    CU_ASSERT_STRING_EQUAL(coil_log_level_name(COIL_LOG_ERROR), "error");
}

static void test_log_default_sink_stderr(void)
{
    /* The default sink writes "coil LEVEL [module] message" to stderr. */
    fflush(stderr);
    int saved = dup(2);
    char path[] = "/tmp/coil-log-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    dup2(fd, 2);
    coil_log_set_sink(NULL, NULL);
    coil_log_set_level(COIL_LOG_INFO);
    coil_log(COIL_LOG_ERROR, "reactor", "something broke");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char buf[256] = {0};
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    unlink(path);
    CU_ASSERT(n > 0);
    CU_ASSERT_STRING_EQUAL(buf, "coil error [reactor] something broke\n");
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_error_names),
        COIL_TEST(test_failure_basic),
        COIL_TEST(test_failure_errno),
        COIL_TEST(test_failure_wrap_check_copy),
        COIL_TEST(test_failure_print),
        COIL_TEST(test_log_levels_and_sink),
        COIL_TEST(test_log_default_sink_stderr),
        {NULL, NULL},
    };
    return coil_test_add_suite("failure", cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
