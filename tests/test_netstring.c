/* The netstring receiver over the test transport: valid strings, splits at
 * every byte boundary, each kind of bad input with its message, the length
 * limit, closing from callbacks, sending. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include <coil/memory.h>
#include <coil/netstring.h>

typedef struct nrec {
    coil_netstring_receiver ns; /* first */
    char log[4096];
    size_t loglen; /* the log may hold NULs */
    size_t count;
    int nul_bad;
    int made, lost, destroyed;
    int close_on_bad; /* custom bad_input closes too */
    int seq_bad;
} nrec;

static void note(nrec *r, const char *tag, const char *s, size_t n)
{
    size_t at = r->loglen;
    CU_ASSERT_FATAL(at + strlen(tag) + n + 2 < sizeof r->log);
    memcpy(r->log + at, tag, strlen(tag));
    at += strlen(tag);
    memcpy(r->log + at, s, n);
    at += n;
    r->log[at++] = '|';
    r->log[at] = '\0';
    r->loglen = at;
}

static void r_made(coil_netstring_receiver *ns)
{
    ((nrec *)ns)->made++;
}

static void r_string(coil_netstring_receiver *ns, const char *data, size_t len)
{
    nrec *r = (nrec *)ns;
    coil_transport *t = ns->protocol.transport;
    r->count++;
    if (data[len] != '\0')
        r->nul_bad = 1;
    note(r, "S:", data, len);
    if (len == 5 && memcmp(data, "close", 5) == 0)
        coil_transport_lose_connection(t);
    else if (len == 5 && memcmp(data, "abort", 5) == 0)
        coil_transport_abort_connection(t);
    else if (len == 4 && memcmp(data, "echo", 4) == 0)
        CU_ASSERT_EQUAL(coil_netstring_send(ns, data, len), 0);
}

static void r_bad(coil_netstring_receiver *ns, const char *message)
{
    nrec *r = (nrec *)ns;
    note(r, "B:", message, strlen(message));
    if (r->close_on_bad)
        coil_transport_lose_connection(ns->protocol.transport);
}

static void r_lost(coil_netstring_receiver *ns, const coil_failure *reason)
{
    (void)reason;
    ((nrec *)ns)->lost++;
}

static void r_destroy(coil_netstring_receiver *ns)
{
    ((nrec *)ns)->destroyed++;
}

static const coil_netstring_ops rec_ops = {
    .connection_made = r_made,
    .string_received = r_string,
    .bad_input = r_bad,
    .connection_lost = r_lost,
    .destroy = r_destroy,
};

/* bad_input left to the default. */
static const coil_netstring_ops rec_default_ops = {
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
static coil_transport *rec_open(nrec *r, const coil_netstring_ops *ops, size_t max)
{
    memset(r, 0, sizeof *r);
    coil_netstring_receiver_init(&r->ns, ops);
    CU_ASSERT_EQUAL(r->ns.max_length, COIL_NETSTRING_DEFAULT_MAX);
    if (max)
        r->ns.max_length = max;
    coil_transport *t = coil_memory_transport_new(reactor, &r->ns.protocol);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(r->made, 1);
    return t;
}

static void rec_close(nrec *r, coil_transport *t)
{
    coil_memory_transport_free(t);
    coil_reactor_advance(reactor, 0);
    CU_ASSERT_EQUAL(r->lost, 1);
    CU_ASSERT_EQUAL(r->destroyed, 1);
    CU_ASSERT_PTR_NULL(r->ns.rx.buf);
    CU_ASSERT_FALSE(r->nul_bad);
}

static void feed(coil_transport *t, const char *s, size_t n)
{
    coil_test_feed(t, s, n);
}

/* Every way of cutting `in` (n bytes) gives the log `want`. */
struct split_case {
    size_t max;
    const char *want;
};

static int split_one(void *arg, const char *const *pieces, const size_t *lens,
                     size_t count, int quiet)
{
    const struct split_case *c = arg;
    nrec r;
    coil_transport *t = rec_open(&r, &rec_ops, c->max);
    for (size_t i = 0; i < count; i++)
        feed(t, pieces[i], lens[i]);
    int ok = strcmp(r.log, c->want) == 0;
    if (!ok && !quiet)
        fprintf(stderr, "\ngot \"%s\" ", r.log);
    rec_close(&r, t);
    return ok;
}

static void check_every_split(const char *in, size_t n, size_t max, const char *want)
{
    struct split_case c = {max, want};
    coil_test_every_split(in, n, split_one, &c);
}

static void test_valid(void)
{
    env_start();
    nrec r;
    coil_transport *t = rec_open(&r, &rec_ops, 0);
    const char in[] = "3:abc,0:,5:he\0lo,12:hello world!,";
    feed(t, in, sizeof in - 1);
    CU_ASSERT_EQUAL(r.count, 4);
    CU_ASSERT_EQUAL(r.loglen, 32);
    CU_ASSERT_EQUAL(memcmp(r.log, "S:abc|S:|S:he\0lo|S:hello world!|", 33), 0);
    CU_ASSERT_PTR_NULL(r.ns.rx.buf);
    feed(t, "4:ab", 4);
    CU_ASSERT_PTR_NOT_NULL(r.ns.rx.buf);
    CU_ASSERT_EQUAL(r.count, 4);
    feed(t, "cd", 2);
    CU_ASSERT_EQUAL(r.count, 4); /* the ',' is still to come */
    feed(t, ",", 1);
    CU_ASSERT_EQUAL(r.count, 5);
    CU_ASSERT_PTR_NULL(r.ns.rx.buf);
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t), 0);
    rec_close(&r, t);
    env_end();
}

static void test_split_every_boundary(void)
{
    env_start();
    const char in[] = "3:abc,0:,11:hello,world,1:,,";
    check_every_split(in, sizeof in - 1, 0, "S:abc|S:|S:hello,world|S:,|");
    /* Bad input is found at the same byte however the reads split. */
    const char bad[] = "2:ab,3:abcd,2:ok,";
    check_every_split(bad, sizeof bad - 1, 0,
                      "S:ab|B:netstring of 3 bytes not followed by ',' (got 'd')|");
    const char over[] = "1:a,123:";
    check_every_split(over, sizeof over - 1, 99,
                      "S:a|B:netstring length of at least 123 exceeds the limit of 99|");
    env_end();
}

static void test_exact_max_length(void)
{
    env_start();
    nrec r;
    coil_transport *t = rec_open(&r, &rec_ops, 5);
    feed(t, "5:abcde,0:,", 11);
    CU_ASSERT_STRING_EQUAL(r.log, "S:abcde|S:|");
    feed(t, "6:", 2);
    CU_ASSERT_STRING_EQUAL(
        r.log, "S:abcde|S:|B:netstring length of at least 6 exceeds the limit of 5|");
    rec_close(&r, t);

    /* A limit of 0 allows only the empty string. */
    t = rec_open(&r, &rec_ops, 0);
    r.ns.max_length = 0;
    feed(t, "0:,1:", 5);
    CU_ASSERT_STRING_EQUAL(r.log,
                           "S:|B:netstring length of at least 1 exceeds the limit of 0|");
    rec_close(&r, t);
    env_end();
}

static const struct bad_case {
    const char *in;
    size_t max;
    const char *message;
} bad_cases[] = {
    {"abc", 0, "netstring length: expected a digit, got 'a'"},
    {"3x", 0, "netstring length: expected a digit or ':', got 'x'"},
    {"-1:a,", 0, "netstring length: expected a digit, got '-'"},
    {" 3:abc,", 0, "netstring length: expected a digit, got ' '"},
    {"\x01", 0, "netstring length: expected a digit, got byte 0x01"},
    {"3\xff", 0, "netstring length: expected a digit or ':', got byte 0xff"},
    {":", 0, "netstring length is empty (':' before any digit)"},
    {"01:a,", 0, "netstring length has a leading zero"},
    {"00:", 0, "netstring length has a leading zero"},
    {"123456:", 0, "netstring length of at least 123456 exceeds the limit of 99999"},
    /* Caught before the digits end, not after reading them all. */
    {"1000000000000000000000000000", 0,
     "netstring length of at least 100000 exceeds the limit of 99999"},
    {"100", 99, "netstring length of at least 100 exceeds the limit of 99"},
    {"3:abc;", 0, "netstring of 3 bytes not followed by ',' (got ';')"},
    {"0:x", 0, "netstring of 0 bytes not followed by ',' (got 'x')"},
    {"3:abc\n", 0, "netstring of 3 bytes not followed by ',' (got byte 0x0a)"},
};

static void test_bad_input_messages(void)
{
    env_start();
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *c = &bad_cases[i];
        char want[256];
        snprintf(want, sizeof want, "S:ok|B:%s|", c->message);
        /* Custom hook that does not close: still nothing more arrives. */
        nrec r;
        coil_transport *t = rec_open(&r, &rec_ops, c->max);
        feed(t, "2:ok,", 5);
        feed(t, c->in, strlen(c->in));
        CU_ASSERT_STRING_EQUAL(r.log, want);
        if (strcmp(r.log, want) != 0)
            fprintf(stderr, "\ncase %zu: got \"%s\"\n", i, r.log);
        feed(t, "2:no,", 5);
        CU_ASSERT_STRING_EQUAL(r.log, want);
        CU_ASSERT_EQUAL(coil_memory_transport_flags(t), 0);
        CU_ASSERT_PTR_NULL(r.ns.rx.buf);
        rec_close(&r, t);

        /* The default closes the connection. */
        t = rec_open(&r, &rec_default_ops, c->max);
        feed(t, "2:ok,", 5);
        feed(t, c->in, strlen(c->in));
        CU_ASSERT_STRING_EQUAL(r.log, "S:ok|");
        CU_ASSERT_EQUAL(coil_memory_transport_flags(t),
                        COIL_MEMORY_CLOSED | COIL_MEMORY_CLOSED_CLEAN);
        rec_close(&r, t);
    }
    env_end();
}

static void test_bad_input_in_same_read(void)
{
    env_start();
    /* Strings before the bad byte are delivered, none after. */
    nrec r;
    coil_transport *t = rec_open(&r, &rec_ops, 0);
    feed(t, "1:a,1:b,x1:c,", 13);
    CU_ASSERT_STRING_EQUAL(r.log,
                           "S:a|S:b|B:netstring length: expected a digit, got 'x'|");
    rec_close(&r, t);

    /* A bad_input that closes. */
    t = rec_open(&r, &rec_ops, 0);
    r.close_on_bad = 1;
    feed(t, "1:a,:1:c,", 9);
    CU_ASSERT_STRING_EQUAL(r.log,
                           "S:a|B:netstring length is empty (':' before any digit)|");
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t),
                    COIL_MEMORY_CLOSED | COIL_MEMORY_CLOSED_CLEAN);
    rec_close(&r, t);
    env_end();
}

static void test_close_in_callback(void)
{
    env_start();
    nrec r;
    coil_transport *t = rec_open(&r, &rec_ops, 0);
    feed(t, "1:a,5:close,1:b,", 16);
    CU_ASSERT_STRING_EQUAL(r.log, "S:a|S:close|");
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t),
                    COIL_MEMORY_CLOSED | COIL_MEMORY_CLOSED_CLEAN);
    rec_close(&r, t);

    t = rec_open(&r, &rec_ops, 0);
    feed(t, "5:abort,1:b,", 12);
    CU_ASSERT_STRING_EQUAL(r.log, "S:abort|");
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t),
                    COIL_MEMORY_CLOSED | COIL_MEMORY_ABORTED);
    rec_close(&r, t);
    env_end();
}

static void r_count(coil_netstring_receiver *ns, const char *data, size_t len)
{
    nrec *r = (nrec *)ns;
    if (len != 1 || data[0] != 'a' + (int)(r->count % 26))
        r->seq_bad++;
    r->count++;
}

static const coil_netstring_ops count_ops = {
    .connection_made = r_made,
    .string_received = r_count,
    .connection_lost = r_lost,
    .destroy = r_destroy,
};

static void test_many_strings(void)
{
    env_start();
    nrec r;
    coil_transport *t = rec_open(&r, &rec_default_ops, 0);
    size_t n = 0, cap = 100000 * 12;
    char *in = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    for (int i = 0; i < 100000; i++)
        n += (size_t)snprintf(in + n, cap - n, "1:%c,", 'a' + i % 26);
    r.ns.ops = &count_ops; /* count, do not log */
    feed(t, in, n);
    CU_ASSERT_EQUAL(r.count, 100000);
    CU_ASSERT_EQUAL(r.seq_bad, 0);
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t), 0);
    CU_ASSERT_PTR_NULL(r.ns.rx.buf);
    free(in);
    rec_close(&r, t);
    env_end();
}

static void test_send(void)
{
    env_start();
    nrec r;
    coil_transport *t = rec_open(&r, &rec_ops, 0);
    size_t n;
    CU_ASSERT_EQUAL(coil_netstring_send(&r.ns, "hello", 5), 0);
    CU_ASSERT_EQUAL(coil_netstring_send(&r.ns, "", 0), 0);
    CU_ASSERT_EQUAL(coil_netstring_send(&r.ns, "a,b", 3), 0);
    const char *w = coil_memory_transport_written(t, &n);
    CU_ASSERT_EQUAL(n, 8 + 3 + 6);
    CU_ASSERT_NSTRING_EQUAL(w, "5:hello,0:,3:a,b,", n);
    coil_memory_transport_clear(t);
    /* What we send, we read back. */
    feed(t, "4:echo,", 7);
    w = coil_memory_transport_written(t, &n);
    CU_ASSERT_EQUAL(n, 7);
    CU_ASSERT_NSTRING_EQUAL(w, "4:echo,", 7);
    coil_transport_lose_connection(t);
    CU_ASSERT_EQUAL(coil_netstring_send(&r.ns, "x", 1), COIL_ECLOSED);
    rec_close(&r, t);
    env_end();
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_valid),
        COIL_TEST(test_split_every_boundary),
        COIL_TEST(test_exact_max_length),
        COIL_TEST(test_bad_input_messages),
        COIL_TEST(test_bad_input_in_same_read),
        COIL_TEST(test_close_in_callback),
        COIL_TEST(test_many_strings),
        COIL_TEST(test_send),
        {NULL, NULL},
    };
    return coil_test_add_suite("netstring", cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
