/* The line receiver over the test transport: delimiters, splits at every
 * byte boundary, the length limit, raw mode, pause/resume, closing and
 * destroying from callbacks, re-entrant data, sending. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#include <coil/line.h>
#include <coil/memory.h>

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b->p);
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static const char *sb_text(const sbuf *b)
{
    return b->p ? b->p : "";
}

/* A line receiver that records what it hears and acts on some lines. */
typedef struct lrec {
    coil_line_receiver lr; /* first */
    sbuf log;              /* every event */
    sbuf lines;            /* lines only */
    sbuf raw;              /* raw bytes, concatenated */
    size_t count;
    int quiet;     /* count lines, do not log them */
    size_t seq_ok; /* quiet mode: lines equal to "line N" in order */
    int nul_bad;   /* a line was not NUL-terminated */
    size_t raw_take;
    int made, lost, read_lost, destroyed;
    int lost_code;
    int destroyed_in_callback;
} lrec;

static void log_line(lrec *r, const char *tag, const char *s, size_t n)
{
    sb_str(&r->log, tag);
    sb_add(&r->log, s, n);
    sb_str(&r->log, "|");
}

static void r_made(coil_line_receiver *lr)
{
    ((lrec *)lr)->made++;
}

static void r_line(coil_line_receiver *lr, const char *line, size_t len)
{
    lrec *r = (lrec *)lr;
    coil_transport *t = lr->protocol.transport;
    r->count++;
    if (line[len] != '\0')
        r->nul_bad = 1;
    if (r->quiet) {
        char want[32];
        int n = snprintf(want, sizeof want, "line %zu", r->seq_ok);
        if ((size_t)n == len && memcmp(want, line, len) == 0)
            r->seq_ok++;
        return;
    }
    if (len == 4 && memcmp(line, "feed", 4) == 0) {
        /* Re-entrant data, large enough to move the buffer; then read
         * `line` again: it must still be valid. */
        sbuf more = {0};
        for (int i = 0; i < 10000; i++)
            sb_str(&more, "z\r\n");
        CU_ASSERT_EQUAL(coil_memory_transport_feed(t, more.p, more.len), 0);
        free(more.p);
    }
    log_line(r, "L:", line, len);
    sb_add(&r->lines, line, len);
    sb_str(&r->lines, "|");
    if (len > 4 && memcmp(line, "raw:", 4) == 0) {
        r->raw_take = (size_t)atoi(line + 4);
        coil_line_set_raw_mode(lr);
    } else if (len == 5 && memcmp(line, "pause", 5) == 0) {
        coil_line_pause(lr);
    } else if (len == 5 && memcmp(line, "close", 5) == 0) {
        coil_transport_lose_connection(t);
    } else if (len == 5 && memcmp(line, "abort", 5) == 0) {
        coil_transport_abort_connection(t);
    } else if (len == 4 && memcmp(line, "half", 4) == 0) {
        CU_ASSERT_EQUAL(coil_transport_lose_write_connection(t), 0);
    } else if (len == 3 && memcmp(line, "bye", 3) == 0) {
        CU_ASSERT_EQUAL(coil_line_send(lr, "bye", 3), 0);
        coil_transport_lose_connection(t);
    } else if (len == 5 && memcmp(line, "clear", 5) == 0) {
        size_t n;
        char *rest = coil_line_clear_buffer(lr, &n);
        log_line(r, "C:", rest ? rest : "", n);
        free(rest);
    } else if (len == 7 && memcmp(line, "destroy", 7) == 0) {
        /* What a transport tearing down under us would do. */
        lr->protocol.ops->destroy(&lr->protocol);
        r->destroyed_in_callback = r->destroyed;
    }
}

static void r_raw(coil_line_receiver *lr, const void *data, size_t len)
{
    lrec *r = (lrec *)lr;
    size_t take = len < r->raw_take ? len : r->raw_take;
    if (r->raw_take == 0)
        take = len; /* no limit: raw to the end */
    sb_add(&r->raw, data, take);
    log_line(r, "R:", data, take);
    if (r->raw_take > 0) {
        r->raw_take -= take;
        if (r->raw_take == 0)
            coil_line_set_line_mode(lr, (const char *)data + take, len - take);
    }
}

static void r_exceeded(coil_line_receiver *lr, const char *partial, size_t len)
{
    log_line((lrec *)lr, "X:", partial, len);
}

static void r_read_lost(coil_line_receiver *lr)
{
    ((lrec *)lr)->read_lost++;
}

static void r_lost(coil_line_receiver *lr, const coil_failure *reason)
{
    lrec *r = (lrec *)lr;
    r->lost++;
    r->lost_code = coil_failure_code(reason);
}

static void r_destroy(coil_line_receiver *lr)
{
    ((lrec *)lr)->destroyed++;
}

static const coil_line_ops rec_ops = {
    .connection_made = r_made,
    .line_received = r_line,
    .raw_data_received = r_raw,
    .connection_lost = r_lost,
    .destroy = r_destroy,
};

static const coil_line_ops rec_limit_ops = {
    .connection_made = r_made,
    .line_received = r_line,
    .raw_data_received = r_raw,
    .line_length_exceeded = r_exceeded,
    .connection_lost = r_lost,
    .destroy = r_destroy,
};

static const coil_line_ops rec_half_ops = {
    .connection_made = r_made,
    .line_received = r_line,
    .read_connection_lost = r_read_lost,
    .connection_lost = r_lost,
    .destroy = r_destroy,
};

/* ---- harness ---------------------------------------------------------------- */

static coil_reactor *reactor;

static void env_start(void)
{
    reactor = coil_test_fake_start();
}

static void env_end(void)
{
    coil_test_fake_end(reactor);
}
static coil_transport *rec_open(lrec *r, const coil_line_ops *ops)
{
    memset(r, 0, sizeof *r);
    coil_line_receiver_init(&r->lr, ops);
    coil_transport *t = coil_memory_transport_new(reactor, &r->lr.protocol);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(r->made, 1);
    return t;
}

static void rec_close(lrec *r, coil_transport *t)
{
    coil_memory_transport_free(t);
    coil_reactor_advance(reactor, 0);
    CU_ASSERT_EQUAL(r->destroyed, 1);
    CU_ASSERT_EQUAL(r->lost, 1);
    CU_ASSERT_FALSE(r->nul_bad);
    free(r->log.p);
    free(r->lines.p);
    free(r->raw.p);
}

static void feed(coil_transport *t, const char *s, size_t n)
{
    CU_ASSERT_EQUAL(coil_memory_transport_feed(t, s, n), 0);
}

static void feeds(coil_transport *t, const char *s)
{
    feed(t, s, strlen(s));
}

/* Feed `in` in three pieces cut at i and j (i <= j), for every i and j,
 * checking the lines (and raw bytes) are the same each time. */
struct split_case {
    const coil_line_ops *ops;
    const char *delim;
    size_t max_length;
    const char *want_lines, *want_raw;
};

static int split_one(void *arg, const char *const *pieces, const size_t *lens,
                     size_t count, int quiet)
{
    const struct split_case *c = arg;
    lrec r;
    coil_transport *t = rec_open(&r, c->ops);
    if (c->delim)
        CU_ASSERT_EQUAL(coil_line_set_delimiter(&r.lr, c->delim, strlen(c->delim)), 0);
    if (c->max_length)
        r.lr.max_length = c->max_length;
    for (size_t i = 0; i < count; i++)
        feed(t, pieces[i], lens[i]);
    const char *got = c->want_raw ? sb_text(&r.lines) : sb_text(&r.log);
    int ok = strcmp(got, c->want_lines) == 0 &&
             (!c->want_raw || strcmp(sb_text(&r.raw), c->want_raw) == 0);
    if (!ok && !quiet)
        fprintf(stderr, "\ngot \"%s\" raw \"%s\" ", got, sb_text(&r.raw));
    rec_close(&r, t);
    return ok;
}

static void check_every_split(const coil_line_ops *ops, const char *delim,
                              size_t max_length, const char *in, const char *want_lines,
                              const char *want_raw)
{
    struct split_case c = {ops, delim, max_length, want_lines, want_raw};
    coil_test_every_split(in, strlen(in), split_one, &c);
}

/* ---- delimiters --------------------------------------------------------------- */

static void test_crlf_lf_mixed(void)
{
    env_start();
    lrec r;
    coil_transport *t = rec_open(&r, &rec_ops);
    feeds(t, "a\r\nb\nc\r\r\n\r\n\nend");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|L:b|L:c\r|L:|L:|");
    CU_ASSERT_EQUAL(r.count, 5);
    feeds(t, "\r");
    CU_ASSERT_EQUAL(r.count, 5);
    feeds(t, "\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|L:b|L:c\r|L:|L:|L:end|");
    /* A lone "\r" is data. */
    feeds(t, "x\ry\r\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|L:b|L:c\r|L:|L:|L:end|L:x\ry|");
    rec_close(&r, t);
    env_end();
}

static void test_split_every_boundary(void)
{
    env_start();
    check_every_split(&rec_ops, NULL, 0, "one\r\ntwo\nthree\r\r\n\r\nfour\n\nfive",
                      "L:one|L:two|L:three\r|L:|L:four|L:|", NULL);
    env_end();
}

static void test_accept_lf_off(void)
{
    env_start();
    lrec r;
    coil_transport *t = rec_open(&r, &rec_ops);
    r.lr.accept_lf = 0;
    feeds(t, "a\nb\r\nc\r\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a\nb|L:c|");
    /* Turned back on with a partial line buffered: it is searched again. */
    feeds(t, "d\ne");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a\nb|L:c|");
    r.lr.accept_lf = 1;
    feeds(t, "\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a\nb|L:c|L:d|L:e|");
    rec_close(&r, t);
    env_end();
}

static void test_custom_delimiter(void)
{
    env_start();
    lrec r;
    coil_transport *t = rec_open(&r, &rec_ops);
    CU_ASSERT_EQUAL(coil_line_set_delimiter(&r.lr, "", 0), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_line_set_delimiter(&r.lr, "123456789", 9), COIL_EINVAL);
    CU_ASSERT_EQUAL(r.lr.accept_lf, 1); /* unchanged by the refusals */
    CU_ASSERT_EQUAL(coil_line_set_delimiter(&r.lr, "<>", 2), 0);
    CU_ASSERT_EQUAL(r.lr.accept_lf, 0);
    feeds(t, "a<>b\nc<");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|");
    feeds(t, ">");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|L:b\nc|");
    rec_close(&r, t);

    check_every_split(&rec_ops, "<>", 0, "a<>b<c<><>d<<>x", "L:a|L:b<c|L:|L:d<|", NULL);
    check_every_split(&rec_ops, "xx", 0, "axxxbxxyxx", "L:a|L:xb|L:y|", NULL);
    check_every_split(&rec_ops, "12345678", 0, "a1234567b12345678c1234568",
                      "L:a1234567b|", NULL);
    check_every_split(&rec_ops, "|", 0, "|a||b|", "L:|L:a|L:|L:b|", NULL);
    env_end();
}

/* ---- the length limit ---------------------------------------------------------- */

static void test_max_length_default_closes(void)
{
    env_start();
    lrec r;
    coil_transport *t = rec_open(&r, &rec_ops);
    r.lr.max_length = 5;
    feeds(t, "abcde\r\nabcdef\r\nnext\r\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:abcde|");
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t),
                    COIL_MEMORY_CLOSED | COIL_MEMORY_CLOSED_CLEAN);
    CU_ASSERT_EQUAL(r.lost_code, COIL_ECLOSED);
    rec_close(&r, t);

    /* No delimiter at all: refused once it cannot be a line of 5. */
    t = rec_open(&r, &rec_ops);
    r.lr.max_length = 5;
    feeds(t, "abcde\r");
    feeds(t, "\n");
    feeds(t, "abcdef");
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t), 0);
    CU_ASSERT_PTR_NOT_NULL(r.lr.rx.buf);
    feeds(t, "g");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:abcde|");
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t),
                    COIL_MEMORY_CLOSED | COIL_MEMORY_CLOSED_CLEAN);
    rec_close(&r, t);
    env_end();
}

static void test_max_length_exact(void)
{
    env_start();
    check_every_split(&rec_ops, NULL, 5, "abcde\r\n12345\n\r\n", "L:abcde|L:12345|L:|",
                      NULL);
    lrec r;
    coil_transport *t = rec_open(&r, &rec_ops);
    r.lr.max_length = 0;
    feeds(t, "\r\n\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:|L:|");
    feeds(t, "x\r\n");
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t) & COIL_MEMORY_CLOSED,
                    COIL_MEMORY_CLOSED);
    rec_close(&r, t);
    env_end();
}

static void test_max_length_custom_hook(void)
{
    env_start();
    lrec r;
    coil_transport *t = rec_open(&r, &rec_limit_ops);
    r.lr.max_length = 5;
    feeds(t, "ok\r\ntoolong-line\r\nnext\r\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:ok|X:toolong|L:next|");
    /* With no delimiter yet: reported once, the rest skipped as it comes. */
    feeds(t, "0123456789");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:ok|X:toolong|L:next|X:0123456|");
    feeds(t, "more bytes of the same line");
    feeds(t, "\r");
    feeds(t, "\nafter\r\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:ok|X:toolong|L:next|X:0123456|L:after|");
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t), 0);
    CU_ASSERT_PTR_NULL(r.lr.rx.buf);
    rec_close(&r, t);

    /* The same report wherever the reads split. */
    check_every_split(&rec_limit_ops, NULL, 5, "ok\r\n0123456789abc\r\nnext\n",
                      "L:ok|X:0123456|L:next|", NULL);
    check_every_split(&rec_limit_ops, "<>", 3, "abcd<>abc<>", "X:abcd<|L:abc|", NULL);
    env_end();
}

/* ---- modes ------------------------------------------------------------------------ */

static void test_raw_mode_and_back(void)
{
    env_start();
    lrec r;
    coil_transport *t = rec_open(&r, &rec_ops);
    feeds(t, "hdr\r\nraw:5\r\n12345tail\r\nmore");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:hdr|L:raw:5|R:12345|L:tail|");
    feeds(t, "\r\nraw:3\r\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log),
                           "L:hdr|L:raw:5|R:12345|L:tail|L:more|L:raw:3|");
    /* Raw bytes arriving alone go straight through. */
    feeds(t, "ab");
    feeds(t, "cd\r\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log),
                           "L:hdr|L:raw:5|R:12345|L:tail|L:more|L:raw:3|R:ab|R:c|L:d|");
    CU_ASSERT_PTR_NULL(r.lr.rx.buf);
    rec_close(&r, t);

    check_every_split(&rec_ops, NULL, 0,
                      "hdr\r\nraw:5\r\n12345tail\r\nraw:2\r\nxy\nz\r\n",
                      "hdr|raw:5|tail|raw:2||z|", "12345xy");
    env_end();
}

static void test_raw_mode_from_outside(void)
{
    env_start();
    lrec r;
    coil_transport *t = rec_open(&r, &rec_ops);
    feeds(t, "a\r\npart");
    coil_line_set_raw_mode(&r.lr); /* the partial line is raw data now */
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|R:part|");
    CU_ASSERT_PTR_NULL(r.lr.rx.buf);
    feeds(t, "xyz\r\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|R:part|R:xyz\r\n|");
    coil_line_set_line_mode(&r.lr, "b\r\nc", 4);
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|R:part|R:xyz\r\n|L:b|");
    feeds(t, "\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|R:part|R:xyz\r\n|L:b|L:c|");
    /* Extra data goes before what is buffered. */
    feeds(t, "e\r\n");
    feeds(t, "tail");
    coil_line_set_line_mode(&r.lr, "d\r\n", 3);
    feeds(t, "\r\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log),
                           "L:a|R:part|R:xyz\r\n|L:b|L:c|L:e|L:d|L:tail|");
    rec_close(&r, t);
    env_end();
}

static void test_pause_resume(void)
{
    env_start();
    lrec r;
    coil_transport *t = rec_open(&r, &rec_ops);
    coil_transport_info info;
    feeds(t, "a\r\npause\r\nb\r\nc\r\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|L:pause|");
    CU_ASSERT_EQUAL(coil_transport_info_get(t, &info), 0);
    CU_ASSERT_EQUAL(info.reading, 0);
    feeds(t, "d\r\n"); /* held by the transport while reading is paused */
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|L:pause|");
    coil_line_resume(&r.lr);
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|L:pause|L:b|L:c|L:d|");
    CU_ASSERT_EQUAL(coil_transport_info_get(t, &info), 0);
    CU_ASSERT_EQUAL(info.reading, 1);

    /* Paused again by a line; resumed while more lines wait behind it,
     * one of which pauses again. */
    feeds(t, "pause\r\ne\r\npause\r\nf\r\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|L:pause|L:b|L:c|L:d|L:pause|");
    coil_line_resume(&r.lr);
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log),
                           "L:a|L:pause|L:b|L:c|L:d|L:pause|L:e|L:pause|");
    CU_ASSERT_EQUAL(coil_transport_info_get(t, &info), 0);
    CU_ASSERT_EQUAL(info.reading, 0); /* paused again before reading resumed */
    coil_line_resume(&r.lr);
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log),
                           "L:a|L:pause|L:b|L:c|L:d|L:pause|L:e|L:pause|L:f|");
    CU_ASSERT_PTR_NULL(r.lr.rx.buf);

    /* Paused from outside. */
    coil_line_pause(&r.lr);
    feeds(t, "g\r\n");
    CU_ASSERT_EQUAL(r.count, 9);
    coil_line_resume(&r.lr);
    CU_ASSERT_EQUAL(r.count, 10);
    rec_close(&r, t);
    env_end();
}

/* ---- closing from callbacks ------------------------------------------------------- */

static void test_close_in_callback_stops_delivery(void)
{
    env_start();
    lrec r;
    coil_transport *t = rec_open(&r, &rec_ops);
    feeds(t, "a\r\nclose\r\nb\r\nc\r\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|L:close|");
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t),
                    COIL_MEMORY_CLOSED | COIL_MEMORY_CLOSED_CLEAN);
    CU_ASSERT_EQUAL(r.lost_code, COIL_ECLOSED);
    CU_ASSERT_EQUAL(coil_memory_transport_feed(t, "d\r\n", 3), COIL_ECLOSED);
    rec_close(&r, t);

    t = rec_open(&r, &rec_ops);
    feeds(t, "a\r\nabort\r\nb\r\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|L:abort|");
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t),
                    COIL_MEMORY_CLOSED | COIL_MEMORY_ABORTED);
    CU_ASSERT_EQUAL(r.lost_code, COIL_EABORTED);
    rec_close(&r, t);

    /* Closing with writes still queued: the connection is closing, not
     * closed, when the callback returns; delivery stops all the same. */
    t = rec_open(&r, &rec_ops);
    coil_memory_transport_set_window(t, 0);
    feeds(t, "a\r\nbye\r\nb\r\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|L:bye|");
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t), 0);
    coil_memory_transport_set_window(t, 1000);
    size_t n;
    const char *w = coil_memory_transport_written(t, &n);
    CU_ASSERT_EQUAL(n, 5);
    CU_ASSERT_NSTRING_EQUAL(w, "bye\r\n", 5);
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t),
                    COIL_MEMORY_CLOSED | COIL_MEMORY_CLOSED_CLEAN);
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|L:bye|");
    rec_close(&r, t);

    /* A half-close does not stop reading. */
    t = rec_open(&r, &rec_ops);
    feeds(t, "a\r\nhalf\r\nb\r\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|L:half|L:b|");
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t), COIL_MEMORY_WRITE_SHUT);
    feeds(t, "c\r\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|L:half|L:b|L:c|");
    rec_close(&r, t);
    env_end();
}

static void test_destroy_during_delivery(void)
{
    /* No transport: the test plays one that destroys the protocol while a
     * line is being delivered. The user's destroy must wait for the
     * callback to return, and nothing more is delivered. */
    lrec r;
    memset(&r, 0, sizeof r);
    coil_line_receiver_init(&r.lr, &rec_ops);
    const char *in = "a\r\ndestroy\r\nb\r\n";
    r.lr.protocol.ops->data_received(&r.lr.protocol, in, strlen(in));
    CU_ASSERT_EQUAL(r.destroyed_in_callback, 0);
    CU_ASSERT_EQUAL(r.destroyed, 1);
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:a|L:destroy|");
    CU_ASSERT_PTR_NULL(r.lr.rx.buf);
    free(r.log.p);
    free(r.lines.p);
}

static void test_reentrant_data(void)
{
    env_start();
    lrec r;
    coil_transport *t = rec_open(&r, &rec_ops);
    feeds(t, "feed\r\nafter\r\n");
    CU_ASSERT_EQUAL(r.count, 2 + 10000);
    CU_ASSERT_NSTRING_EQUAL(sb_text(&r.log), "L:feed|L:after|L:z|L:z|", 23);
    CU_ASSERT_EQUAL(r.log.len, strlen("L:feed|L:after|") + 10000 * 4);
    feeds(t, "part\n");
    CU_ASSERT_EQUAL(r.count, 2 + 10000 + 1);
    CU_ASSERT_STRING_EQUAL(r.log.p + r.log.len - 7, "L:part|");
    rec_close(&r, t);
    env_end();
}

static void test_half_close_forwarding(void)
{
    env_start();
    lrec r;
    coil_transport *t = rec_open(&r, &rec_half_ops);
    feeds(t, "a\r\n");
    CU_ASSERT_EQUAL(coil_memory_transport_feed_eof(t), 0);
    CU_ASSERT_EQUAL(r.read_lost, 1);
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t), 0);
    CU_ASSERT_EQUAL(coil_line_send(&r.lr, "still here", 10), 0);
    rec_close(&r, t);

    /* Without read_connection_lost, a half-close closes, as for any
     * protocol. */
    t = rec_open(&r, &rec_ops);
    CU_ASSERT_EQUAL(coil_memory_transport_feed_eof(t), 0);
    CU_ASSERT_EQUAL(coil_memory_transport_flags(t),
                    COIL_MEMORY_CLOSED | COIL_MEMORY_CLOSED_CLEAN);
    rec_close(&r, t);
    env_end();
}

/* ---- volume and buffers -------------------------------------------------------------
 */

static void test_many_lines_one_feed(void)
{
    env_start();
    lrec r;
    coil_transport *t = rec_open(&r, &rec_ops);
    r.quiet = 1;
    sbuf in = {0};
    char line[32];
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(line, sizeof line, "line %d\r\n", i);
        sb_add(&in, line, (size_t)n);
    }
    feed(t, in.p, in.len);
    CU_ASSERT_EQUAL(r.count, 100000);
    CU_ASSERT_EQUAL(r.seq_ok, 100000);
    CU_ASSERT_PTR_NULL(r.lr.rx.buf);
    free(in.p);
    rec_close(&r, t);
    env_end();
}

static void test_line_one_byte_at_a_time(void)
{
    env_start();
    lrec r;
    coil_transport *t = rec_open(&r, &rec_ops);
    r.quiet = 1;
    r.lr.max_length = 200000;
    for (int i = 0; i < 100000; i++)
        feed(t, "x", 1);
    CU_ASSERT_EQUAL(r.count, 0);
    CU_ASSERT(r.lr.rx.cap >= 100000 && r.lr.rx.cap <= 4 * 100000);
    feed(t, "\r", 1);
    CU_ASSERT_EQUAL(r.count, 0);
    feed(t, "\n", 1);
    CU_ASSERT_EQUAL(r.count, 1);
    CU_ASSERT_PTR_NULL(r.lr.rx.buf);
    rec_close(&r, t);
    env_end();
}

static void test_buffer_freed_when_empty(void)
{
    env_start();
    lrec r;
    coil_transport *t = rec_open(&r, &rec_ops);
    CU_ASSERT_PTR_NULL(r.lr.rx.buf);
    feeds(t, "abc\r\n");
    CU_ASSERT_PTR_NULL(r.lr.rx.buf);
    feeds(t, "ab");
    CU_ASSERT_PTR_NOT_NULL(r.lr.rx.buf);
    feeds(t, "\r\n");
    CU_ASSERT_PTR_NULL(r.lr.rx.buf);
    /* A big read leaves a small partial line in a small buffer. */
    sbuf in = {0};
    for (int i = 0; i < 20000; i++)
        sb_str(&in, "q\r\n");
    sb_str(&in, "tail");
    feed(t, in.p, in.len);
    CU_ASSERT_PTR_NOT_NULL(r.lr.rx.buf);
    CU_ASSERT(r.lr.rx.cap <= 1024);
    free(in.p);
    rec_close(&r, t);
    env_end();
}

static void test_clear_buffer(void)
{
    env_start();
    lrec r;
    coil_transport *t = rec_open(&r, &rec_ops);
    size_t n = 99;
    CU_ASSERT_PTR_NULL(coil_line_clear_buffer(&r.lr, &n));
    CU_ASSERT_EQUAL(n, 0);
    feeds(t, "partial");
    char *got = coil_line_clear_buffer(&r.lr, &n);
    CU_ASSERT_EQUAL(n, 7);
    CU_ASSERT_STRING_EQUAL(got, "partial");
    free(got);
    CU_ASSERT_PTR_NULL(r.lr.rx.buf);
    feeds(t, "x\r\n");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:x|");
    /* From a callback: what followed in the same read. */
    feeds(t, "clear\r\nrest1\r\nrest2");
    CU_ASSERT_STRING_EQUAL(sb_text(&r.log), "L:x|L:clear|C:rest1\r\nrest2|");
    CU_ASSERT_PTR_NULL(r.lr.rx.buf);
    rec_close(&r, t);
    env_end();
}

/* A read larger than the receiver's slice (64 KiB) is buffered a slice at
 * a time: lines, clear_buffer, pause and re-entrant data see the whole
 * read as buffered, in order, as if it had been copied at once. */
static void test_large_read_sliced(void)
{
    env_start();
    enum { N = 100000 }; /* 300 KB of lines after the first */
    lrec r;
    coil_transport *t = rec_open(&r, &rec_ops);
    sbuf in = {0};
    sb_str(&in, "one\r\nclear\r\n");
    size_t rest_at = in.len;
    for (int i = 0; i < N; i++)
        sb_str(&in, "z\r\n");
    sb_str(&in, "tail");
    feed(t, in.p, in.len);
    CU_ASSERT_EQUAL(r.count, 2);
    /* "L:one|L:clear|C:" then every byte after "clear\r\n", then "|". */
    const char *log = sb_text(&r.log);
    CU_ASSERT_EQUAL(strncmp(log, "L:one|L:clear|C:", 16), 0);
    CU_ASSERT_EQUAL(r.log.len, 16 + (in.len - rest_at) + 1);
    CU_ASSERT(r.log.len > 16 && memcmp(log + 16, in.p + rest_at, in.len - rest_at) == 0);
    CU_ASSERT_PTR_NULL(r.lr.rx.buf);
    rec_close(&r, t);
    free(in.p);

    /* Paused by the first line: the rest waits, then comes in order. */
    t = rec_open(&r, &rec_ops);
    memset(&in, 0, sizeof in);
    sb_str(&in, "pause\r\n");
    for (int i = 0; i < N; i++)
        sb_str(&in, "q\r\n");
    feed(t, in.p, in.len);
    CU_ASSERT_EQUAL(r.count, 1);
    coil_line_resume(&r.lr);
    CU_ASSERT_EQUAL(r.count, 1 + N);
    CU_ASSERT_EQUAL(r.lines.len, strlen("pause|") + 2 * (size_t)N);
    rec_close(&r, t);
    free(in.p);

    /* Data fed from a callback comes after the whole read. */
    t = rec_open(&r, &rec_ops);
    memset(&in, 0, sizeof in);
    sb_str(&in, "feed\r\n");
    for (int i = 0; i < N; i++)
        sb_str(&in, "y\r\n");
    feed(t, in.p, in.len);
    CU_ASSERT_EQUAL(r.count, 1 + N + 10000);
    const char *lines = sb_text(&r.lines);
    const char *first_z = strchr(lines, 'z');
    const char *last_y = strrchr(lines, 'y');
    CU_ASSERT(first_z && last_y && last_y < first_z);
    rec_close(&r, t);
    free(in.p);
    env_end();
}

/* ---- cost ------------------------------------------------------------------------- */

/* A bare "\n" ends a line; a receiver that searched the rest of the buffer
 * for "\r\n" at every line took quadratic time (60 KB/s of "\n" pinned a
 * core). 16 MiB of "\n" must cost under 1 s of CPU, whatever the split
 * and the delimiter settings: the linear receiver takes about 0.16 s on an
 * idle core and came to 0.2 s on a loaded CI-sized machine, while a
 * quadratic one needs hours (64 KiB of "\n" alone took it 2.25 s).
 * Sanitizers and -O0 multiply every cost, and a quadratic receiver still
 * fails by far. */
enum { LF_TOTAL = 16 * 1024 * 1024, LF_CHUNK = 64 * 1024, LF_TRIES = 10 };
#if defined(__SANITIZE_ADDRESS__)
#define LF_SLOWDOWN 15.0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LF_SLOWDOWN 15.0
#endif
#endif
#ifndef LF_SLOWDOWN
#ifdef __OPTIMIZE__
#define LF_SLOWDOWN 1.0
#else
#define LF_SLOWDOWN 4.0
#endif
#endif
#define LF_BUDGET (1.0 * LF_SLOWDOWN) /* seconds of CPU */

typedef struct lfrec {
    coil_line_receiver lr; /* first */
    size_t count, nonempty;
    double start;
    int over_budget;
} lfrec;

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void lf_line(coil_line_receiver *lr, const char *line, size_t len)
{
    lfrec *r = (lfrec *)lr;
    r->count++;
    if (len)
        r->nonempty++;
    /* A slow receiver must fail the test, not hang it: stop once the
     * budget is spent (looking often at first, when a quadratic receiver
     * is slowest, then seldom: the clock is a system call). */
    size_t mask = r->count < 4096 ? 15 : 16383;
    if ((r->count & mask) == 0 && cpu_now() - r->start > LF_BUDGET) {
        r->over_budget = 1;
        coil_transport_abort_connection(lr->protocol.transport);
    }
}

static const coil_line_ops lf_ops = {.line_received = lf_line};

/* Feed `in` (n bytes) in pieces of `chunk` to a fresh receiver and check
 * it delivered `want` empty lines. Returns the CPU seconds it took: the
 * least of up to LF_TRIES tries (it stops at the first under budget), as
 * other processes on the machine only ever add to it (a shared core and
 * cache: under a full parallel test run on two cores one try in a few
 * takes twice as long). A quadratic receiver fails every try. */
static double lf_run(const char *in, size_t n, size_t chunk, const char *delim,
                     int accept_lf, size_t want)
{
    double best = 1e9;
    for (int i = 0; i < LF_TRIES && best >= LF_BUDGET; i++) {
        lfrec r;
        memset(&r, 0, sizeof r);
        coil_line_receiver_init(&r.lr, &lf_ops);
        if (delim)
            CU_ASSERT_EQUAL(coil_line_set_delimiter(&r.lr, delim, strlen(delim)), 0);
        r.lr.accept_lf = accept_lf;
        coil_transport *t = coil_memory_transport_new(reactor, &r.lr.protocol);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        r.start = cpu_now();
        for (size_t off = 0; off < n && !r.over_budget; off += chunk)
            coil_memory_transport_feed(t, in + off, n - off < chunk ? n - off : chunk);
        double spent = cpu_now() - r.start;
        if (spent < best)
            best = spent;
        CU_ASSERT_EQUAL(r.nonempty, 0);
        if (!r.over_budget)
            CU_ASSERT_EQUAL(r.count, want);
        coil_memory_transport_free(t);
        coil_reactor_advance(reactor, 0);
    }
    return best;
}

static void test_bare_lf_linear(void)
{
    env_start();
    char *in = malloc(LF_TOTAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    memset(in, '\n', LF_TOTAL);
    double spent;

    spent = lf_run(in, LF_TOTAL, LF_TOTAL, NULL, 1, LF_TOTAL);
    printf("\n  16 MiB of \"\\n\" in one piece: %.3f s CPU (budget %.1f)", spent,
           LF_BUDGET);
    CU_ASSERT(spent < LF_BUDGET);
    spent = lf_run(in, LF_TOTAL, LF_CHUNK, NULL, 1, LF_TOTAL);
    printf("\n  in 64 KiB pieces: %.3f s CPU ", spent);
    CU_ASSERT(spent < LF_BUDGET);

    /* A "\r\n" far ahead of many bare "\n": found once, not per line. */
    memcpy(in + LF_TOTAL - 2, "\r\n", 2);
    spent = lf_run(in, LF_TOTAL, LF_TOTAL, NULL, 1, LF_TOTAL - 1);
    CU_ASSERT(spent < LF_BUDGET);

    /* A delimiter that does not end in "\n", with bare "\n" accepted too:
     * two searches, each linear. */
    memset(in, '\n', LF_TOTAL);
    spent = lf_run(in, LF_TOTAL, LF_CHUNK, "<>", 1, LF_TOTAL);
    printf("\n  \"<>\" and bare \"\\n\", 64 KiB pieces: %.3f s CPU ", spent);
    CU_ASSERT(spent < LF_BUDGET);
    for (size_t i = 0; i + 2 <= LF_TOTAL; i += 2)
        memcpy(in + i, "<>", 2);
    spent = lf_run(in, LF_TOTAL / 2, LF_CHUNK, "<>", 1, LF_TOTAL / 4);
    CU_ASSERT(spent < LF_BUDGET);
    /* ... and the delimiter alone. */
    spent = lf_run(in, LF_TOTAL / 2, LF_TOTAL / 2, "<>", 0, LF_TOTAL / 4);
    CU_ASSERT(spent < LF_BUDGET);
    free(in);
    env_end();
}

/* ---- sending --------------------------------------------------------------------- */

static void test_send_and_sendf(void)
{
    env_start();
    lrec r;
    coil_transport *t = rec_open(&r, &rec_ops);
    size_t n;
    CU_ASSERT_EQUAL(coil_line_send(&r.lr, "hello", 5), 0);
    CU_ASSERT_EQUAL(coil_line_send(&r.lr, "", 0), 0);
    CU_ASSERT_EQUAL(coil_line_sendf(&r.lr, "n=%d %s", 42, "x"), 0);
    const char *w = coil_memory_transport_written(t, &n);
    CU_ASSERT_EQUAL(n, 7 + 2 + 8);
    CU_ASSERT_NSTRING_EQUAL(w, "hello\r\n\r\nn=42 x\r\n", n);
    coil_memory_transport_clear(t);

    /* Refused: the peer would see two lines. Nothing is written. */
    CU_ASSERT_EQUAL(coil_line_send(&r.lr, "a\r\nb", 4), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_line_send(&r.lr, "a\nb", 3), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_line_sendf(&r.lr, "%s", "x\r\ny"), COIL_EINVAL);
    coil_memory_transport_written(t, &n);
    CU_ASSERT_EQUAL(n, 0);
    r.lr.accept_lf = 0;
    CU_ASSERT_EQUAL(coil_line_send(&r.lr, "a\nb", 3), 0);
    coil_memory_transport_clear(t);

    /* Long enough for the heap. */
    char big[3000];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CU_ASSERT_EQUAL(coil_line_sendf(&r.lr, "<%s>", big), 0);
    w = coil_memory_transport_written(t, &n);
    CU_ASSERT_EQUAL(n, 2999 + 2 + 2);
    CU_ASSERT_EQUAL(w[0], '<');
    CU_ASSERT_EQUAL(w[3000], '>');
    CU_ASSERT_NSTRING_EQUAL(w + 3001, "\r\n", 2);
    coil_memory_transport_clear(t);

    CU_ASSERT_EQUAL(coil_line_set_delimiter(&r.lr, "\0;", 2), 0);
    CU_ASSERT_EQUAL(coil_line_send(&r.lr, "ab", 2), 0);
    CU_ASSERT_EQUAL(coil_line_send(&r.lr, "a\0;b", 4), COIL_EINVAL);
    w = coil_memory_transport_written(t, &n);
    CU_ASSERT_EQUAL(n, 4);
    CU_ASSERT_EQUAL(memcmp(w, "ab\0;", 4), 0);

    coil_transport_lose_connection(t);
    CU_ASSERT_EQUAL(coil_line_send(&r.lr, "late", 4), COIL_ECLOSED);
    rec_close(&r, t);
    env_end();
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_crlf_lf_mixed),
        COIL_TEST(test_split_every_boundary),
        COIL_TEST(test_accept_lf_off),
        COIL_TEST(test_custom_delimiter),
        COIL_TEST(test_max_length_default_closes),
        COIL_TEST(test_max_length_exact),
        COIL_TEST(test_max_length_custom_hook),
        COIL_TEST(test_raw_mode_and_back),
        COIL_TEST(test_raw_mode_from_outside),
        COIL_TEST(test_pause_resume),
        COIL_TEST(test_close_in_callback_stops_delivery),
        COIL_TEST(test_destroy_during_delivery),
        COIL_TEST(test_reentrant_data),
        COIL_TEST(test_half_close_forwarding),
        COIL_TEST(test_many_lines_one_feed),
        COIL_TEST(test_line_one_byte_at_a_time),
        COIL_TEST(test_buffer_freed_when_empty),
        COIL_TEST(test_clear_buffer),
        COIL_TEST(test_large_read_sliced),
        COIL_TEST(test_bare_lf_linear),
        COIL_TEST(test_send_and_sendf),
        {NULL, NULL},
    };
    return coil_test_add_suite("line", cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
