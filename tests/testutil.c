#include "testutil.h"

#include <coil/memory.h>

#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char coil_test_poison_byte;

static char *log_buf;
static size_t log_len, log_cap;
static size_t log_counts[COIL_LOG_NONE + 1];

static void capture_sink(void *ud, coil_log_level level, const char *module,
                         const char *message)
{
    (void)ud;
    char line[4096];
    int n = snprintf(line, sizeof line, "%s %s: %s\n", coil_log_level_name(level), module,
                     message);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (log_len + len + 1 > log_cap) {
        size_t cap = (log_cap ? log_cap * 2 : 4096) + len;
        char *p = realloc(log_buf, cap);
        if (!p)
            return;
        log_buf = p;
        log_cap = cap;
    }
    memcpy(log_buf + log_len, line, len);
    log_len += len;
    log_buf[log_len] = '\0';
    if (level <= COIL_LOG_NONE)
        log_counts[level]++;
}

void coil_test_log_capture_start(void)
{
    log_len = 0;
    if (log_buf)
        log_buf[0] = '\0';
    memset(log_counts, 0, sizeof log_counts);
    coil_log_set_level(COIL_LOG_DEBUG);
    coil_log_set_sink(capture_sink, NULL);
}

void coil_test_log_capture_stop(void)
{
    coil_log_set_sink(NULL, NULL);
    coil_log_set_level(COIL_LOG_INFO);
}

const char *coil_test_log_text(void)
{
    return log_buf ? log_buf : "";
}

size_t coil_test_log_count(coil_log_level level)
{
    size_t n = 0;
    for (int l = level; l < COIL_LOG_NONE; l++)
        n += log_counts[l];
    return n;
}

int coil_test_log_contains(const char *needle)
{
    return log_buf && strstr(log_buf, needle) != NULL;
}

coil_reactor *coil_test_reactor(coil_clock *clock)
{
    coil_reactor_options opts = {0};
    opts.clock = clock;
    coil_reactor *r = NULL;
    int rc = coil_reactor_new(&r, &opts);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    return r;
}

int coil_test_add_suite(const char *name, const coil_test_case *cases)
{
    return coil_test_add_suite_with(name, NULL, NULL, cases);
}

int coil_test_add_suite_with(const char *name, CU_InitializeFunc init,
                             CU_CleanupFunc clean, const coil_test_case *cases)
{
    CU_pSuite s = CU_add_suite(name, init, clean);
    if (!s)
        return -1;
    for (; cases->name; cases++)
        if (!CU_add_test(s, cases->name, cases->fn))
            return -1;
    return 0;
}

int coil_test_main(int (*add)(void))
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    if (add() != 0) {
        fprintf(stderr, "test registration failed: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    free(log_buf);
    log_buf = NULL;
    log_len = log_cap = 0;
    if (run == 0) {
        fprintf(stderr, "no test ran\n");
        return 1;
    }
    return failed ? 1 : 0;
}

/* ---- receivers on a fake clock -------------------------------------------- */

static coil_clock *fake_clock;

coil_reactor *coil_test_fake_start(void)
{
    fake_clock = coil_clock_new_fake();
    CU_ASSERT_PTR_NOT_NULL_FATAL(fake_clock);
    return coil_test_reactor(fake_clock);
}

void coil_test_fake_end(coil_reactor *r)
{
    coil_reactor_advance(r, 0);
    coil_reactor_free(r);
    coil_clock_free(fake_clock);
    fake_clock = NULL;
}

void coil_test_feed(coil_transport *t, const void *data, size_t len)
{
    CU_ASSERT_EQUAL(coil_memory_transport_feed(t, data, len), 0);
}

void coil_test_every_split(const char *in, size_t n, coil_test_split_fn one, void *arg)
{
    int bad = 0;
    for (size_t i = 0; i <= n; i++) {
        for (size_t j = i; j <= n; j++) {
            const char *pieces[3] = {in, in + i, in + j};
            size_t lens[3] = {i, j - i, n - j};
            if (!one(arg, pieces, lens, 3, bad)) {
                if (!bad)
                    fprintf(stderr, "(cut at %zu and %zu)\n", i, j);
                bad = 1;
            }
        }
    }
    CU_ASSERT_FALSE(bad);
    const char **pieces = calloc(n ? n : 1, sizeof *pieces);
    size_t *lens = calloc(n ? n : 1, sizeof *lens);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pieces);
    CU_ASSERT_PTR_NOT_NULL_FATAL(lens);
    for (size_t i = 0; i < n; i++) {
        pieces[i] = in + i;
        lens[i] = 1;
    }
    int ok = one(arg, pieces, lens, n, 0);
    if (!ok)
        fprintf(stderr, "(fed one byte at a time)\n");
    CU_ASSERT_TRUE(ok);
    free(pieces);
    free(lens);
}

const char *coil_test_cert(const char *name)
{
    static char bufs[8][600];
    static int next;
    const char *dir = getenv("COIL_TEST_CERTS");
    if (!dir) {
        fprintf(stderr, "COIL_TEST_CERTS is not set: run the test through ctest, or run "
                        "tests/tls/make-certs.sh DIR and set COIL_TEST_CERTS=DIR\n");
        return NULL;
    }
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

int coil_test_temp_file(char *buf, size_t size, const char *tag)
{
    static unsigned counter;
    const char *dir = getenv("TMPDIR");
    for (int tries = 0; tries < 100; tries++) {
        snprintf(buf, size, "%s/coil-%s-%ld-%u", dir && *dir ? dir : "/tmp", tag,
                 (long)getpid(), counter++);
        int fd = open(buf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (errno != EEXIST)
            return -1;
    }
    return -1;
}

/* ---- the fixtures' env files (KEY=VALUE lines in DIR/env) ------------------ */

typedef struct fixture_env {
    const char *var;     /* the variable that names DIR */
    const char *how;     /* what to do when it is not set */
    const char *started; /* what to check when DIR/env cannot be read */
    const char *script;  /* the fixture's script, for a missing key */
    char text[32768];    /* DIR/env, each line a NUL-ended string */
    size_t text_len;
    int loaded;
} fixture_env;

/* The value of KEY in $VAR/env, read once. A missing variable, file or key
 * prints what to do and exits with status 1. */
static const char *fixture_env_get(fixture_env *fe, const char *key)
{
    const char *dir = getenv(fe->var);
    if (!fe->loaded) {
        if (!dir || !*dir) {
            fprintf(stderr, "%s is not set: %s\n", fe->var, fe->how);
            exit(1);
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/env", dir);
        FILE *f = fopen(path, "r");
        if (!f) {
            fprintf(stderr, "cannot read %s (%s): %s\n", path, strerror(errno),
                    fe->started);
            exit(1);
        }
        size_t n = fread(fe->text, 1, sizeof fe->text - 1, f);
        int big = !feof(f);
        fclose(f);
        if (big) {
            fprintf(stderr, "%s is larger than %zu bytes: not the fixture's env file\n",
                    path, sizeof fe->text - 1);
            exit(1);
        }
        for (size_t i = 0; i < n; i++)
            if (fe->text[i] == '\n')
                fe->text[i] = '\0';
        fe->text[n] = '\0';
        fe->text_len = n;
        fe->loaded = 1;
    }
    size_t klen = strlen(key);
    for (const char *line = fe->text; line < fe->text + fe->text_len;
         line += strlen(line) + 1)
        if (strncmp(line, key, klen) == 0 && line[klen] == '=')
            return line + klen + 1;
    fprintf(stderr,
            "%s/env has no %s= line: the fixture (%s) is older than this test, or its "
            "start failed\n",
            dir ? dir : fe->var, key, fe->script);
    exit(1);
}

const char *coil_test_sshd(const char *key)
{
    static fixture_env fe = {
        .var = "COIL_TEST_SSHD",
        .how = "run the SSH tests through ctest (the sshd fixture starts a throwaway "
               "sshd), or run `sh tests/ssh/sshd-fixture.sh start DIR` and set "
               "COIL_TEST_SSHD=DIR",
        .started = "did the sshd fixture start? Its log, sshd.log, is beside it",
        .script = "tests/ssh/sshd-fixture.sh",
    };
    return fixture_env_get(&fe, key);
}

const char *coil_test_sshd_interop(const char *key)
{
    static fixture_env fe = {
        .var = "COIL_TEST_SSHD_INTEROP",
        .how = "run through ctest (the fixture sshd_interop makes the keys), or run `sh "
               "tests/sshd/interop-fixture.sh DIR SERVER_BIN` and set "
               "COIL_TEST_SSHD_INTEROP=DIR",
        .started = "did the fixture sshd_interop run?",
        .script = "tests/sshd/interop-fixture.sh",
    };
    return fixture_env_get(&fe, key);
}

int coil_test_sshd_interop_known_hosts(char *buf, size_t size, int port, const char *tag)
{
    const char *pub_file = coil_test_sshd_interop("HOST_KEY_PUB");
    char pub[1024] = "";
    FILE *f = fopen(pub_file, "r");
    if (!f || !fgets(pub, sizeof pub, f)) {
        fprintf(stderr, "cannot read the server's host key %s\n", pub_file);
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    /* "TYPE BLOB COMMENT": the comment goes */
    char *sp = strchr(pub, ' ');
    sp = sp ? strchr(sp + 1, ' ') : NULL;
    if (sp)
        *sp = '\0';
    pub[strcspn(pub, "\n")] = '\0';
    if (coil_test_temp_file(buf, size, tag) != 0)
        return -1;
    f = fopen(buf, "w");
    if (!f)
        return -1;
    fprintf(f, "[127.0.0.1]:%d %s\n", port, pub);
    fclose(f);
    return 0;
}

void coil_test_endpoint_bad(int server, const char *text, const char *needle,
                            const char *usage)
{
    coil_endpoint *e = COIL_TEST_POISON;
    coil_failure *err = NULL;
    int rc = server ? coil_endpoint_server(text, &e, &err)
                    : coil_endpoint_client(text, &e, &err);
    if (rc != COIL_EINVAL)
        fprintf(stderr, "\n    '%s': %d, not COIL_EINVAL\n", text, rc);
    CU_ASSERT_EQUAL(rc, COIL_EINVAL);
    CU_ASSERT_PTR_NULL(e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    const char *m = coil_failure_message(err);
    COIL_TEST_ASSERT_HAS(m, needle);
    COIL_TEST_ASSERT_HAS(m, server ? "bad server endpoint '" : "bad client endpoint '");
    COIL_TEST_ASSERT_HAS(m, usage);
    coil_failure_free(err);
}

void coil_test_endpoint_good(int server, const char *text, const char *kind)
{
    coil_endpoint *e = NULL;
    coil_failure *err = NULL;
    int rc = server ? coil_endpoint_server(text, &e, &err)
                    : coil_endpoint_client(text, &e, &err);
    if (rc)
        fprintf(stderr, "\n    %s: %s\n", text, err ? coil_failure_message(err) : "?");
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NULL(err);
    if (e)
        CU_ASSERT_STRING_EQUAL(coil_endpoint_kind(e), kind);
    coil_endpoint_free(e);
    coil_failure_free(err);
}

int coil_test_wait_fired(coil_reactor *r, coil_deferred *d, double seconds)
{
    double end = coil_reactor_seconds(r) + seconds;
    while (!coil_deferred_called(d) && coil_reactor_seconds(r) < end)
        coil_reactor_iterate(r, 0.05);
    return coil_deferred_called(d);
}

int coil_test_wait_flag(coil_reactor *r, const int *flag, double seconds)
{
    double end = coil_reactor_seconds(r) + seconds;
    while (!*flag && coil_reactor_seconds(r) < end)
        coil_reactor_iterate(r, 0.05);
    return *flag;
}
