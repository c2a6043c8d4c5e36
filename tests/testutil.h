/* Shared helpers for coil's CUnit suites. */
#ifndef COIL_TESTUTIL_H
#define COIL_TESTUTIL_H

#include <CUnit/CUnit.h>
#include <stddef.h>

#include <coil/coil.h>

/* Run the suites registered by `add` and return the exit status for main():
 * 0 when every test passed. Prints CUnit's summary. */
int coil_test_main(int (*add)(void));

/* Capture log messages (all levels) into a buffer instead of stderr. */
void coil_test_log_capture_start(void);
/* Stop capturing; the default sink is restored. */
void coil_test_log_capture_stop(void);
/* Everything captured since start, one message per line ("LEVEL module: msg"). */
const char *coil_test_log_text(void);
/* Number of captured messages at or above `level`. */
size_t coil_test_log_count(coil_log_level level);
/* 1 when some captured message contains `needle`. */
int coil_test_log_contains(const char *needle);

/* A reactor for a test, on the backend $COIL_REACTOR selects; asserts. */
coil_reactor *coil_test_reactor(coil_clock *clock);

/* A non-NULL pointer that points at nothing of the type: put it in an
 * out-parameter before a call that must set the out-parameter to NULL. */
extern char coil_test_poison_byte;
#define COIL_TEST_POISON ((void *)&coil_test_poison_byte)

/* Add a suite with NULL-terminated pairs of (name, fn). */
#define COIL_TEST(fn) \
    {                 \
#fn, fn       \
    }
typedef struct coil_test_case {
    const char *name;
    CU_TestFunc fn;
} coil_test_case;
int coil_test_add_suite(const char *name, const coil_test_case *cases);

#endif
