/* The terminal line editor of coil-chat's SSH pty sessions
 * (tools/termline.c): echo, line ends, erasing, leaving, escape sequences,
 * UTF-8, the length bound, and output arriving while a line is typed. */
#include "testutil.h"

#include "termline.h"

#include <stdlib.h>
#include <string.h>

typedef struct fed {
    int rc;
    size_t used;
    char line[TERMLINE_MAX + 1];
} fed;

static termline t;
static termline_out out;

static void reset(const char *prompt)
{
    termline_init(&t);
    termline_set_prompt(&t, prompt);
    out.len = 0;
}

static fed feed(const char *s, size_t n)
{
    fed f;
    f.rc = termline_feed(&t, s, n, &f.used, &out);
    f.line[0] = '\0';
    if (f.rc == TERMLINE_LINE) {
        memcpy(f.line, t.line, t.len);
        f.line[t.len] = '\0';
    }
    return f;
}

static fed feed_s(const char *s)
{
    return feed(s, strlen(s));
}

/* The output so far equals `want` (then it is cleared). */
#define ASSERT_OUT(want)                                                               \
    do {                                                                               \
        const char *w_ = (want);                                                       \
        size_t wl_ = strlen(w_);                                                       \
        int ok_ = out.len == wl_ && memcmp(out.p, w_, wl_) == 0;                       \
        if (!ok_)                                                                      \
            fprintf(stderr, "\n    %s:%d: output '%.*s' (%zu), want '%s'\n", __FILE__, \
                    __LINE__, (int)out.len, out.p ? out.p : "", out.len, w_);          \
        CU_ASSERT(ok_);                                                                \
        out.len = 0;                                                                   \
    } while (0)

static void test_echo_and_line_ends(void)
{
    reset("> ");
    fed f = feed_s("hi\r");
    CU_ASSERT_EQUAL(f.rc, TERMLINE_LINE);
    CU_ASSERT_EQUAL(f.used, 3);
    CU_ASSERT_STRING_EQUAL(f.line, "hi");
    ASSERT_OUT("hi\r\n> ");
    /* CR LF is one line end, also when split between reads. */
    f = feed_s("\nab\r");
    CU_ASSERT_EQUAL(f.rc, TERMLINE_LINE);
    CU_ASSERT_STRING_EQUAL(f.line, "ab");
    ASSERT_OUT("ab\r\n> ");
    f = feed_s("\n");
    CU_ASSERT_EQUAL(f.rc, TERMLINE_MORE);
    ASSERT_OUT("");
    /* A bare LF ends a line too; an empty line is a line. */
    f = feed_s("x\n");
    CU_ASSERT_EQUAL(f.rc, TERMLINE_LINE);
    CU_ASSERT_STRING_EQUAL(f.line, "x");
    f = feed_s("\r");
    CU_ASSERT_EQUAL(f.rc, TERMLINE_LINE);
    CU_ASSERT_STRING_EQUAL(f.line, "");
    out.len = 0;
    /* Two lines in one read: one at a time. */
    f = feed_s("one\rtwo\r");
    CU_ASSERT_EQUAL(f.rc, TERMLINE_LINE);
    CU_ASSERT_EQUAL(f.used, 4);
    CU_ASSERT_STRING_EQUAL(f.line, "one");
    f = feed_s("two\r");
    CU_ASSERT_STRING_EQUAL(f.line, "two");
    ASSERT_OUT("one\r\n> two\r\n> ");
    /* No line yet: everything taken. */
    f = feed_s("par");
    CU_ASSERT_EQUAL(f.rc, TERMLINE_MORE);
    CU_ASSERT_EQUAL(f.used, 3);
    ASSERT_OUT("par");
    /* Tab is a space; other control bytes are ignored. */
    f = feed_s("\t\x01\x02z\r");
    CU_ASSERT_STRING_EQUAL(f.line, "par z");
    ASSERT_OUT(" z\r\n> ");
}

static void test_erase(void)
{
    reset("");
    fed f = feed_s("abc\x7f\x7f"
                   "d\r");
    CU_ASSERT_STRING_EQUAL(f.line, "ad");
    ASSERT_OUT("abc\b \b\b \bd\r\n");
    /* BS as DEL; nothing to erase: nothing shown. */
    f = feed_s("\x7f\bxy\b\r");
    CU_ASSERT_STRING_EQUAL(f.line, "x");
    ASSERT_OUT("xy\b \b\r\n");
    /* Ctrl-U: the whole line, redrawn from the prompt. */
    reset("> ");
    f = feed_s("abc\x15");
    CU_ASSERT_EQUAL(f.rc, TERMLINE_MORE);
    ASSERT_OUT("abc\r\x1b[K> ");
    f = feed_s("x\r");
    CU_ASSERT_STRING_EQUAL(f.line, "x");
    out.len = 0;
    /* Ctrl-W: the last word and the spaces after it. */
    f = feed_s("foo bar  \x17\r");
    CU_ASSERT_STRING_EQUAL(f.line, "foo ");
    out.len = 0;
    /* Ctrl-L: redraw. */
    f = feed_s("ab\x0c");
    ASSERT_OUT("ab\r\x1b[K> ab");
}

static void test_leave(void)
{
    reset("");
    fed f = feed_s("ab\x03zz");
    CU_ASSERT_EQUAL(f.rc, TERMLINE_INTERRUPT);
    CU_ASSERT_EQUAL(f.used, 3);
    ASSERT_OUT("ab^C\r\n");
    reset("");
    f = feed_s("\x04");
    CU_ASSERT_EQUAL(f.rc, TERMLINE_EOF);
    CU_ASSERT_EQUAL(f.used, 1);
    /* Ctrl-D with input: ignored, as a shell does. */
    reset("");
    f = feed_s("ab\x04"
               "c\r");
    CU_ASSERT_EQUAL(f.rc, TERMLINE_LINE);
    CU_ASSERT_STRING_EQUAL(f.line, "abc");
}

static void test_escape_sequences(void)
{
    reset("");
    /* Arrows (CSI and SS3), F1, Home with parameters, Alt+x. */
    fed f = feed_s("a\x1b[A\x1b[Db\x1bOP\x1b[1;5Hc\x1bxd\r");
    CU_ASSERT_STRING_EQUAL(f.line, "abcd");
    ASSERT_OUT("abcd\r\n");
    /* Split between reads. */
    f = feed_s("a\x1b");
    f = feed_s("[");
    f = feed_s("1");
    f = feed_s("~b\r");
    CU_ASSERT_STRING_EQUAL(f.line, "ab");
    /* A sequence that never ends is given up, bounded. */
    char junk[64];
    memset(junk, '1', sizeof junk);
    junk[0] = '\x1b';
    junk[1] = '[';
    f = feed(junk, sizeof junk);
    f = feed_s("\r");
    CU_ASSERT_EQUAL(f.rc, TERMLINE_LINE);
    CU_ASSERT(strlen(f.line) > 0 && strlen(f.line) < sizeof junk);
}

static void test_utf8(void)
{
    reset("");
    /* é split between reads: shown once complete. */
    fed f = feed_s("\xc3");
    CU_ASSERT_EQUAL(f.rc, TERMLINE_MORE);
    ASSERT_OUT("");
    f = feed_s("\xa9\r");
    CU_ASSERT_STRING_EQUAL(f.line, "\xc3\xa9");
    ASSERT_OUT("\xc3\xa9\r\n");
    /* Erased whole: one column. */
    f = feed_s("a\xc3\xa9\x7f\r");
    CU_ASSERT_STRING_EQUAL(f.line, "a");
    ASSERT_OUT("a\xc3\xa9\b \b\r\n");
    /* A wide character (U+65E5) takes two columns. */
    f = feed_s("\xe6\x97\xa5\x7f\r");
    CU_ASSERT_STRING_EQUAL(f.line, "");
    ASSERT_OUT("\xe6\x97\xa5\b\b  \b\b\r\n");
    /* A 4-byte one (U+1F600) whole. */
    f = feed_s("\xf0\x9f\x98\x80\r");
    CU_ASSERT_STRING_EQUAL(f.line, "\xf0\x9f\x98\x80");
    /* Malformed: invalid bytes, a cut-short sequence, an overlong form, a
     * surrogate, a C1 control: dropped. */
    f = feed_s("\xff(\xc3)\xc0\x80\xed\xa0\x80\xc2\x85!\r");
    CU_ASSERT_STRING_EQUAL(f.line, "()!");
    out.len = 0;
}

static void test_bound(void)
{
    reset("");
    char big[TERMLINE_MAX + 100];
    memset(big, 'x', sizeof big);
    fed f = feed(big, sizeof big);
    CU_ASSERT_EQUAL(f.rc, TERMLINE_MORE);
    CU_ASSERT_EQUAL(t.len, TERMLINE_MAX);
    CU_ASSERT_PTR_NOT_NULL(memchr(out.p, '\a', out.len));
    f = feed_s("\r");
    CU_ASSERT_EQUAL(f.rc, TERMLINE_LINE);
    CU_ASSERT_EQUAL(strlen(f.line), TERMLINE_MAX);
    /* A character that does not fit whole is not split. */
    reset("");
    f = feed(big, TERMLINE_MAX - 1);
    out.len = 0;
    f = feed_s("\xc3\xa9\r");
    CU_ASSERT_EQUAL(strlen(f.line), TERMLINE_MAX - 1);
    ASSERT_OUT("\a\r\n");
}

static void test_print_while_typing(void)
{
    reset("> ");
    fed f = feed_s("hel");
    ASSERT_OUT("hel");
    CU_ASSERT_EQUAL(termline_print(&t, "<bob> hi", 8, &out), 0);
    ASSERT_OUT("\r\x1b[K<bob> hi\r\n> hel");
    f = feed_s("lo\r");
    CU_ASSERT_STRING_EQUAL(f.line, "hello");
    ASSERT_OUT("lo\r\n> ");
    /* Right after a line: no old input drawn again. */
    CU_ASSERT_EQUAL(termline_print(&t, "x", 1, &out), 0);
    ASSERT_OUT("\r\x1b[Kx\r\n> ");
    CU_ASSERT_EQUAL(termline_redraw(&t, &out), 0);
    ASSERT_OUT("\r\x1b[K> ");
    /* A long prompt is cut. */
    char longp[200];
    memset(longp, 'p', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    termline_set_prompt(&t, longp);
    CU_ASSERT_EQUAL(strlen(t.prompt), TERMLINE_PROMPT_MAX);
    (void)f;
}

static int add(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_echo_and_line_ends), COIL_TEST(test_erase), COIL_TEST(test_leave),
        COIL_TEST(test_escape_sequences),   COIL_TEST(test_utf8),  COIL_TEST(test_bound),
        COIL_TEST(test_print_while_typing), {NULL, NULL}};
    return coil_test_add_suite("termline", cases);
}

int main(void)
{
    int rc = coil_test_main(add);
    free(out.p);
    return rc;
}
