/* Shared helpers for coil's CUnit suites. */
#ifndef COIL_TESTUTIL_H
#define COIL_TESTUTIL_H

#include <CUnit/CUnit.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

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

/* A reactor on a fresh fake clock (the clock is the harness's); free both
 * with coil_test_fake_end, which first runs what is queued. */
coil_reactor *coil_test_fake_start(void);
void coil_test_fake_end(coil_reactor *r);

/* Feed bytes into an in-memory transport (coil/memory.h); asserts. */
void coil_test_feed(coil_transport *t, const void *data, size_t len);

/* Stream-splitting check for receivers: `one` builds a fresh receiver,
 * feeds it `count` pieces in order and returns 1 when what it delivered is
 * right (printing what it got otherwise). coil_test_every_split calls it
 * with `in` cut in three at every (i, j), i <= j, and one byte at a time,
 * and asserts every call was right; only the first wrong one prints. */
typedef int (*coil_test_split_fn)(void *arg, const char *const *pieces,
                                  const size_t *lens, size_t count, int quiet);
void coil_test_every_split(const char *in, size_t n, coil_test_split_fn one, void *arg);

/* The path of a test certificate made by tests/tls/make-certs.sh in
 * $COIL_TEST_CERTS (ctest's tls_certs fixture sets it): "ca.pem",
 * "server.pem", ... The string lasts for the next 7 calls. NULL, with a
 * message saying what to do, when the variable is not set. */
const char *coil_test_cert(const char *name);

/* The value of KEY in $COIL_TEST_SSHD/env, written by the ctest fixture
 * `sshd` (tests/ssh/sshd-fixture.sh; see the keys it lists): "SSHD_PORT",
 * "SSH_KEY_ED25519", ... The string lives until the program ends. A missing
 * variable, file or key prints what to do and exits with status 1: an SSH
 * test never runs (or skips) without its sshd. */
const char *coil_test_sshd(const char *key);

/* The same for $COIL_TEST_SSHD_INTEROP/env, written by the ctest fixture
 * `sshd_interop` (tests/sshd/interop-fixture.sh: the keys for the tests of
 * coil's SSH server): "KEY_ED25519", "HOST_FP", ... */
const char *coil_test_sshd_interop(const char *key);

/* A new known_hosts file (coil_test_temp_file with TAG, its path in buf)
 * naming the interop fixture's host key (HOST_KEY_PUB) for
 * "[127.0.0.1]:PORT"; the test unlinks it. 0, or -1 with a message. */
int coil_test_sshd_interop_known_hosts(char *buf, size_t size, int port, const char *tag);

/* Create a new empty file $TMPDIR/coil-TAG-PID-N (mode 0600, never an
 * existing one) and put its path in buf; the test unlinks it. 0 or -1. */
int coil_test_temp_file(char *buf, size_t size, const char *tag);

/* A non-NULL pointer that points at nothing of the type: put it in an
 * out-parameter before a call that must set the out-parameter to NULL. */
extern char coil_test_poison_byte;
#define COIL_TEST_POISON ((void *)&coil_test_poison_byte)

/* TEXT parsed as a server (server=1) or client endpoint description must be
 * refused: COIL_EINVAL, no endpoint, a message that holds "bad server
 * endpoint '" (or client), `needle` and `usage` (CUnit assertions). */
void coil_test_endpoint_bad(int server, const char *text, const char *needle,
                            const char *usage);

/* TEXT must parse (server or client) into an endpoint of `kind`. */
void coil_test_endpoint_good(int server, const char *text, const char *kind);

/* Run `r` until `d` fires or `seconds` pass; 1 when it fired, else 0. */
int coil_test_wait_fired(coil_reactor *r, coil_deferred *d, double seconds);

/* Run `r` until *flag is set or `seconds` pass; returns *flag. */
int coil_test_wait_flag(coil_reactor *r, const int *flag, double seconds);

/* Asserts that the string `hay` contains `needle` (NULL fails), printing
 * the text that lacked it. */
#define COIL_TEST_ASSERT_HAS(hay, needle)                                                \
    do {                                                                                 \
        const char *h_ = (hay), *n_ = (needle);                                          \
        int ok_ = h_ && n_ && strstr(h_, n_) != NULL;                                    \
        if (!ok_)                                                                        \
            fprintf(stderr, "\n    %s:%d: expected \"%s\" in: %s\n", __FILE__, __LINE__, \
                    n_ ? n_ : "(null)", h_ ? h_ : "(null)");                             \
        CU_ASSERT(ok_);                                                                  \
    } while (0)

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
/* The same with the suite's init and clean functions (CUnit's). */
int coil_test_add_suite_with(const char *name, CU_InitializeFunc init,
                             CU_CleanupFunc clean, const coil_test_case *cases);

#endif
