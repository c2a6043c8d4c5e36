/* The length-prefixed receivers (2- and 4-byte big-endian prefixes) over the
 * test transport: valid strings, splits at every byte boundary, the length
 * limit, closing from callbacks, sending and refusing what does not fit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include <coil/memory.h>
#include <coil/prefixed.h>

typedef struct prec {
    coil_prefixed_receiver pr; /* first */
    char log[4096];
    size_t loglen;
    size_t count;
    int made, lost, destroyed;
    int seq_bad;
} prec;

static void note(prec *r, const char *s, size_t n)
{
    CU_ASSERT_FATAL(r->loglen + n + 4 < sizeof r->log);
    memcpy(r->log + r->loglen, "S:", 2);
    memcpy(r->log + r->loglen + 2, s, n);
    r->loglen += n + 2;
    r->log[r->loglen++] = '|';
    r->log[r->loglen] = '\0';
}

static void r_made(coil_prefixed_receiver *pr)
{
    ((prec *)pr)->made++;
}

static void r_string(coil_prefixed_receiver *pr, const void *data, size_t len)
{
    prec *r = (prec *)pr;
    coil_transport *t = pr->protocol.transport;
    r->count++;
    note(r, data, len);
    if (len == 5 && memcmp(data, "close", 5) == 0)
        coil_transport_lose_connection(t);
    else if (len == 5 && memcmp(data, "abort", 5) == 0)
        coil_transport_abort_connection(t);
}

static void r_limit(coil_prefixed_receiver *pr, uint64_t length)
{
    prec *r = (prec *)pr;
    char s[64];
    int n = snprintf(s, sizeof s, "X:%llu|", (unsigned long long)length);
    memcpy(r->log + r->loglen, s, (size_t)n + 1);
    r->loglen += (size_t)n;
}

static void r_lost(coil_prefixed_receiver *pr, const coil_failure *reason)
{
    (void)reason;
    ((prec *)pr)->lost++;
}

static void r_destroy(coil_prefixed_receiver *pr)
{
    ((prec *)pr)->destroyed++;
}

static const coil_prefixed_ops rec_ops = {
    .connection_made = r_made,
    .string_received = r_string,
    .length_limit_exceeded = r_limit,
    .connection_lost = r_lost,
    .destroy = r_destroy,
};

static const coil_prefixed_ops rec_default_ops = {
    .connection_made = r_made,
    .string_received = r_string,
    .connection_lost = r_lost,
    .destroy = r_destroy,
};

static coil_reactor *reactor;

static void env_start(void)
{
    reactor = coil_test_fake_start();
}

static void env_end(void)
{
    coil_test_fake_end(reactor);
}
static coil_transport *rec_open(prec *r, int prefix, const coil_prefixed_ops *ops,
                                size_t max)
{
    memset(r, 0, sizeof *r);
    CU_ASSERT_EQUAL(coil_prefixed_receiver_init(&r->pr, prefix, ops), 0);
    CU_ASSERT_EQUAL(r->pr.max_length, COIL_PREFIXED_DEFAULT_MAX);
    if (max)
        r->pr.max_length = max;
    coil_transport *t = coil_memory_transport_new(reactor, &r->pr.protocol);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(r->made, 1);
    return t;
}

static void rec_close(prec *r, coil_transport *t)
{
    coil_memory_transport_free(t);
    coil_reactor_advance(reactor, 0);
    CU_ASSERT_EQUAL(r->lost, 1);
    CU_ASSERT_EQUAL(r->destroyed, 1);
    CU_ASSERT_PTR_NULL(r->pr.rx.buf);
}

static void feed(coil_transport *t, const void *s, size_t n)
{
    CU_ASSERT_EQUAL(coil_memory_transport_feed(t, s, n), 0);
}

struct split_case {
    int prefix;
    size_t max;
    const char *want;
    size_t want_len;
};

static int split_one(void *arg, const char *const *pieces, const size_t *lens,
                     size_t count, int quiet)
{
    const struct split_case *c = arg;
    prec r;
    coil_transport *t = rec_open(&r, c->prefix, &rec_ops, c->max);
    for (size_t i = 0; i < count; i++)
        feed(t, pieces[i], lens[i]);
    int ok = r.loglen == c->want_len && memcmp(r.log, c->want, c->want_len) == 0;
    if (!ok && !quiet)
        fprintf(stderr, "\ngot \"%s\" ", r.log);
    rec_close(&r, t);
    return ok;
}

static void check_every_split(int prefix, const char *in, size_t n, size_t max,
                              const char *want, size_t want_len)
{
    struct split_case c = {prefix, max, want, want_len};
    coil_test_every_split(in, n, split_one, &c);
}

static void test_init(void)
{
    coil_prefixed_receiver pr;
    CU_ASSERT_EQUAL(coil_prefixed_receiver_init(&pr, 3, NULL), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_prefixed_receiver_init(&pr, 0, NULL), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_prefixed_send(&pr, "x", 1), COIL_EINVAL);
    /* Still safe to feed and destroy: it delivers nothing. */
    pr.protocol.ops->data_received(&pr.protocol, "\0\0\0\1x", 5);
    CU_ASSERT_PTR_NULL(pr.rx.buf);
    pr.protocol.ops->destroy(&pr.protocol);
    CU_ASSERT_EQUAL(coil_prefixed_receiver_init(&pr, 2, NULL), 0);
    CU_ASSERT_EQUAL(coil_prefixed_receiver_init(&pr, 4, NULL), 0);
    CU_ASSERT_EQUAL(coil_prefixed_send(&pr, "x", 1), COIL_ECLOSED);
}

static void test_int16_valid(void)
{
    env_start();
    prec r;
    coil_transport *t = rec_open(&r, 2, &rec_ops, 0);
    feed(t, "\0\3abc\0\0\0\1z\0\2a\0", 14);
    CU_ASSERT_EQUAL(r.count, 4);
    CU_ASSERT_EQUAL(r.loglen, 18);
    CU_ASSERT_EQUAL(memcmp(r.log, "S:abc|S:|S:z|S:a\0|", 18), 0);
    CU_ASSERT_PTR_NULL(r.pr.rx.buf);
    feed(t, "\1", 1);
    CU_ASSERT_PTR_NOT_NULL(r.pr.rx.buf);
    feed(t, "\0", 1); /* 256 bytes to come */
    char body[256];
    memset(body, 'q', sizeof body);
    feed(t, body, 255);
    CU_ASSERT_EQUAL(r.count, 4);
    feed(t, body, 1);
    CU_ASSERT_EQUAL(r.count, 5);
    CU_ASSERT_EQUAL(r.loglen, 18 + 259);
    CU_ASSERT_PTR_NULL(r.pr.rx.buf);
    rec_close(&r, t);
    env_end();
}

static void test_int32_valid(void)
{
    env_start();
    prec r;
    coil_transport *t = rec_open(&r, 4, &rec_ops, 0);
    feed(t, "\0\0\0\3abc\0\0\0\0\0\0\0\1z", 16);
    CU_ASSERT_EQUAL(r.count, 3);
    CU_ASSERT_STRING_EQUAL(r.log, "S:abc|S:|S:z|");
    CU_ASSERT_PTR_NULL(r.pr.rx.buf);
    rec_close(&r, t);
    env_end();
}

static void test_split_every_boundary(void)
{
    env_start();
    const char in16[] = "\0\3abc\0\0\1\4\0\1z";
    check_every_split(2, in16, sizeof in16 - 1, 0, "S:abc|S:|", 9);
    const char in16b[] = "\0\3abc\0\0\0\1z";
    check_every_split(2, in16b, sizeof in16b - 1, 0, "S:abc|S:|S:z|", 13);
    const char in32[] = "\0\0\0\3abc\0\0\0\0\0\0\0\1z\0\0";
    check_every_split(4, in32, sizeof in32 - 1, 0, "S:abc|S:|S:z|", 13);
    /* Over the limit: reported at the same place however reads split. */
    const char over[] = "\0\0\0\2ab\0\0\0\x0b"
                        "0123456789a\0\0\0\1z";
    check_every_split(4, over, sizeof over - 1, 10, "S:ab|X:11|", 10);
    env_end();
}

static void test_over_limit(void)
{
    env_start();
    prec r;
    /* Exactly the limit is fine; one more is refused, and the default
     * closes the connection. */
    coil_transport *t = rec_open(&r, 2, &rec_default_ops, 10);
    feed(t,
         "\0\x0a"
         "0123456789\0\x0b"
         "0123456789a\0\1z",
         28);
    CU_ASSERT_STRING_EQUAL(r.log, "S:0123456789|");
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t),
                    COIL_MEMORY_CLOSED | COIL_MEMORY_CLOSED_CLEAN);
    rec_close(&r, t);

    /* A custom hook hears the length; nothing more is delivered even when
     * it leaves the connection open. */
    t = rec_open(&r, 4, &rec_ops, 0);
    feed(t, "\xff\xff\xff\xff", 4);
    CU_ASSERT_STRING_EQUAL(r.log, "X:4294967295|");
    feed(t, "\0\0\0\1z", 5);
    CU_ASSERT_STRING_EQUAL(r.log, "X:4294967295|");
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t), 0);
    CU_ASSERT_PTR_NULL(r.pr.rx.buf);
    rec_close(&r, t);

    /* Refused as soon as the prefix arrives, before any data. */
    t = rec_open(&r, 4, &rec_default_ops, 0);
    feed(t, "\0\1\x86", 3);
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t), 0);
    feed(t, "\xa0", 1); /* 100000 > 99999 */
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t),
                    COIL_MEMORY_CLOSED | COIL_MEMORY_CLOSED_CLEAN);
    rec_close(&r, t);
    t = rec_open(&r, 4, &rec_default_ops, 0);
    feed(t, "\0\1\x86\x9f", 4); /* 99999: allowed */
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t), 0);
    rec_close(&r, t);
    env_end();
}

static void test_close_in_callback(void)
{
    env_start();
    prec r;
    coil_transport *t = rec_open(&r, 2, &rec_ops, 0);
    feed(t, "\0\1a\0\5close\0\1b", 13);
    CU_ASSERT_STRING_EQUAL(r.log, "S:a|S:close|");
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t),
                    COIL_MEMORY_CLOSED | COIL_MEMORY_CLOSED_CLEAN);
    rec_close(&r, t);
    t = rec_open(&r, 4, &rec_ops, 0);
    feed(t, "\0\0\0\5abort\0\0\0\1b", 14);
    CU_ASSERT_STRING_EQUAL(r.log, "S:abort|");
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t),
                    COIL_MEMORY_CLOSED | COIL_MEMORY_ABORTED);
    rec_close(&r, t);
    env_end();
}

static void r_count(coil_prefixed_receiver *pr, const void *data, size_t len)
{
    prec *r = (prec *)pr;
    if (len != 2 || memcmp(data, "ok", 2) != 0)
        r->seq_bad++;
    r->count++;
}

static const coil_prefixed_ops count_ops = {
    .connection_made = r_made,
    .string_received = r_count,
    .connection_lost = r_lost,
    .destroy = r_destroy,
};

static void test_many_strings(void)
{
    env_start();
    prec r;
    coil_transport *t = rec_open(&r, 2, &count_ops, 0);
    size_t n = 100000 * 4;
    char *in = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    for (size_t i = 0; i < n; i += 4)
        memcpy(in + i, "\0\2ok", 4);
    feed(t, in, n - 1);
    CU_ASSERT_EQUAL(r.count, 99999);
    feed(t, "k", 1);
    CU_ASSERT_EQUAL(r.count, 100000);
    CU_ASSERT_EQUAL(r.seq_bad, 0);
    CU_ASSERT_PTR_NULL(r.pr.rx.buf);
    free(in);
    rec_close(&r, t);
    env_end();
}

static void test_send(void)
{
    env_start();
    prec r;
    coil_transport *t = rec_open(&r, 2, &rec_ops, 0);
    size_t n;
    CU_ASSERT_EQUAL(coil_prefixed_send(&r.pr, "abc", 3), 0);
    CU_ASSERT_EQUAL(coil_prefixed_send(&r.pr, "", 0), 0);
    const char *w = coil_memory_transport_written(t, &n);
    CU_ASSERT_EQUAL(n, 7);
    CU_ASSERT_EQUAL(memcmp(w, "\0\3abc\0\0", 7), 0);
    coil_memory_transport_clear(t);

    /* 65535 fits a 2-byte prefix, 65536 does not: refused, nothing sent. */
    char *big = calloc(1, 65536);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    CU_ASSERT_EQUAL(coil_prefixed_send(&r.pr, big, 65536), COIL_EINVAL);
    w = coil_memory_transport_written(t, &n);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(coil_prefixed_send(&r.pr, big, 65535), 0);
    w = coil_memory_transport_written(t, &n);
    CU_ASSERT_EQUAL(n, 65537);
    CU_ASSERT_EQUAL(memcmp(w, "\xff\xff", 2), 0);
    rec_close(&r, t);

    t = rec_open(&r, 4, &rec_ops, 0);
    CU_ASSERT_EQUAL(coil_prefixed_send(&r.pr, "abc", 3), 0);
    CU_ASSERT_EQUAL(coil_prefixed_send(&r.pr, big, 65536), 0);
    w = coil_memory_transport_written(t, &n);
    CU_ASSERT_EQUAL(n, 7 + 4 + 65536);
    CU_ASSERT_EQUAL(memcmp(w, "\0\0\0\3abc\0\1\0\0", 11), 0);
    /* A length a 4-byte prefix cannot carry is refused before anything is
     * read from `data`. */
    CU_ASSERT_EQUAL(coil_prefixed_send(&r.pr, big, (size_t)0xffffffffu + 1), COIL_EINVAL);
    coil_memory_transport_clear(t);
    /* Round trip: what we send, we read back. */
    CU_ASSERT_EQUAL(coil_prefixed_send(&r.pr, "hello", 5), 0);
    w = coil_memory_transport_written(t, &n);
    feed(t, w, n);
    CU_ASSERT_STRING_EQUAL(r.log, "S:hello|");
    free(big);
    rec_close(&r, t);
    env_end();
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_init),
        COIL_TEST(test_int16_valid),
        COIL_TEST(test_int32_valid),
        COIL_TEST(test_split_every_boundary),
        COIL_TEST(test_over_limit),
        COIL_TEST(test_close_in_callback),
        COIL_TEST(test_many_strings),
        COIL_TEST(test_send),
        {NULL, NULL},
    };
    return coil_test_add_suite("prefixed", cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
