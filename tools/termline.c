/* A terminal line editor for pty sessions without a kernel pty; see
 * termline.h. */
#include "termline.h"

#include <stdlib.h>
#include <string.h>

#define CTRL(c) ((c)&0x1f)
#define ESC     0x1b
#define DEL     0x7f
/* An escape sequence longer than this is not one a terminal sends: stop
 * swallowing (the bytes after it are taken as typed). */
#define ESC_MAX 32

int termline_out_put(termline_out *o, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (len > o->cap - o->len) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap - o->len < len)
            cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p)
            return -1;
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, data, len);
    o->len += len;
    return 0;
}

static int put_str(termline_out *o, const char *s)
{
    return termline_out_put(o, s, strlen(s));
}

void termline_init(termline *t)
{
    memset(t, 0, sizeof *t);
}

void termline_set_prompt(termline *t, const char *prompt)
{
    size_t n = strlen(prompt);
    if (n > TERMLINE_PROMPT_MAX)
        n = TERMLINE_PROMPT_MAX;
    memcpy(t->prompt, prompt, n);
    t->prompt[n] = '\0';
}

/* The input being typed: none right after a line was returned. */
static size_t input_len(const termline *t)
{
    return t->done ? 0 : t->len;
}

int termline_redraw(const termline *t, termline_out *out)
{
    /* CR, erase to the end of the line, the prompt, the input. */
    if (put_str(out, "\r\x1b[K") || put_str(out, t->prompt) ||
        termline_out_put(out, t->line, input_len(t)))
        return -1;
    return 0;
}

int termline_print(termline *t, const char *text, size_t len, termline_out *out)
{
    if (put_str(out, "\r\x1b[K") || termline_out_put(out, text, len) ||
        put_str(out, "\r\n") || put_str(out, t->prompt) ||
        termline_out_put(out, t->line, input_len(t)))
        return -1;
    return 0;
}

/* The length of the UTF-8 sequence a lead byte starts (0: not a lead). */
static size_t utf8_need(unsigned char c)
{
    if (c >= 0xc2 && c <= 0xdf)
        return 2;
    if (c >= 0xe0 && c <= 0xef)
        return 3;
    if (c >= 0xf0 && c <= 0xf4)
        return 4;
    return 0;
}

static unsigned long utf8_value(const unsigned char *p, size_t n)
{
    unsigned long cp = p[0] & (n == 2 ? 0x1f : n == 3 ? 0x0f : 0x07);
    for (size_t i = 1; i < n; i++)
        cp = (cp << 6) | (p[i] & 0x3f);
    return cp;
}

/* Characters a terminal shows two columns wide (East Asian wide and full
 * width, most emoji): erased with two columns. */
static int is_wide(unsigned long cp)
{
    return (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0x303e) ||
           (cp >= 0x3041 && cp <= 0x33ff) || (cp >= 0x3400 && cp <= 0x4dbf) ||
           (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0xa000 && cp <= 0xa4cf) ||
           (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
           (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
           (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1f64f) ||
           (cp >= 0x1f900 && cp <= 0x1f9ff) || (cp >= 0x20000 && cp <= 0x3fffd);
}

/* Is the complete sequence p[0..n) well-formed (no overlong form, no
 * surrogate, at most U+10FFFF) and not a C1 control (U+0080..U+009F)? */
static int utf8_ok(const unsigned char *p, size_t n)
{
    unsigned long cp = utf8_value(p, n);
    unsigned long min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return cp >= 0xa0;
}

/* Add a complete character (1-4 bytes) to the line and echo it; at the
 * bound, ring the bell instead. */
static int add_char(termline *t, const void *c, size_t n, termline_out *out)
{
    if (t->len + n > TERMLINE_MAX)
        return put_str(out, "\a");
    memcpy(t->line + t->len, c, n);
    t->len += n;
    t->line[t->len] = '\0';
    return termline_out_put(out, c, n);
}

/* Remove the last character (a whole UTF-8 sequence); echo "\b \b". */
static int erase_char(termline *t, termline_out *out)
{
    if (t->len == 0)
        return 0;
    size_t end = t->len;
    do
        t->len--;
    while (t->len > 0 && ((unsigned char)t->line[t->len] & 0xc0) == 0x80);
    const unsigned char *c = (const unsigned char *)t->line + t->len;
    int wide = end - t->len > 1 && is_wide(utf8_value(c, end - t->len));
    t->line[t->len] = '\0';
    return put_str(out, wide ? "\b\b  \b\b" : "\b \b");
}

/* Ctrl-W: spaces before the cursor, then the word. */
static int erase_word(termline *t, termline_out *out)
{
    while (t->len > 0 && t->line[t->len - 1] == ' ')
        if (erase_char(t, out))
            return -1;
    while (t->len > 0 && t->line[t->len - 1] != ' ')
        if (erase_char(t, out))
            return -1;
    return 0;
}

int termline_feed(termline *t, const void *data, size_t len, size_t *used,
                  termline_out *out)
{
    const unsigned char *p = data;
    if (t->done) {
        /* The line returned last time is over: start the next one. */
        t->done = 0;
        t->len = 0;
        t->line[0] = '\0';
    }
    size_t i = 0;
    int rc = TERMLINE_MORE, err = 0;
    while (i < len && rc == TERMLINE_MORE && !err) {
        unsigned char c = p[i++];
        int after_cr = t->after_cr;
        t->after_cr = 0;
        if (t->esc) {
            /* ESC [ params... final (0x40-0x7e); ESC O x; ESC x (Alt+x). */
            t->esc_n++;
            if (t->esc == 1)
                t->esc = c == '[' ? 2 : c == 'O' ? 3 : 0;
            else if (t->esc == 3 || (c >= 0x40 && c <= 0x7e))
                t->esc = 0;
            else if (c < 0x20 || c > 0x7e || t->esc_n > ESC_MAX)
                t->esc = 0; /* not a sequence after all */
            continue;
        }
        if (t->pend_need) {
            if ((c & 0xc0) == 0x80) {
                t->pend[t->pend_len++] = c;
                if (t->pend_len == t->pend_need) {
                    if (utf8_ok(t->pend, t->pend_len))
                        err = add_char(t, t->pend, t->pend_len, out);
                    t->pend_need = t->pend_len = 0;
                }
                continue;
            }
            /* Cut short: drop the partial character, take c afresh. */
            t->pend_need = t->pend_len = 0;
        }
        if (c >= 0x80) {
            size_t need = utf8_need(c);
            if (need) {
                t->pend[0] = c;
                t->pend_len = 1;
                t->pend_need = need;
            }
            continue; /* a stray continuation or an invalid byte: dropped */
        }
        switch (c) {
        case '\r':
            t->after_cr = 1;
            rc = TERMLINE_LINE;
            break;
        case '\n':
            if (after_cr)
                break; /* the LF of a CR LF */
            rc = TERMLINE_LINE;
            break;
        case DEL:
        case '\b':
            err = erase_char(t, out);
            break;
        case CTRL('U'):
            t->len = 0;
            t->line[0] = '\0';
            err = termline_redraw(t, out);
            break;
        case CTRL('W'):
            err = erase_word(t, out);
            break;
        case CTRL('L'):
            err = termline_redraw(t, out);
            break;
        case CTRL('C'):
            rc = TERMLINE_INTERRUPT;
            break;
        case CTRL('D'):
            if (t->len == 0)
                rc = TERMLINE_EOF;
            break;
        case ESC:
            t->esc = 1;
            t->esc_n = 0;
            break;
        case '\t':
            err = add_char(t, " ", 1, out);
            break;
        default:
            if (c >= 0x20)
                err = add_char(t, &c, 1, out);
            /* other control bytes: ignored */
            break;
        }
    }
    *used = i;
    if (err)
        return TERMLINE_NOMEM;
    if (rc == TERMLINE_LINE) {
        t->done = 1;
        if (put_str(out, "\r\n") || put_str(out, t->prompt))
            return TERMLINE_NOMEM;
    } else if (rc == TERMLINE_INTERRUPT || rc == TERMLINE_EOF) {
        if (put_str(out, rc == TERMLINE_INTERRUPT ? "^C\r\n" : "\r\n"))
            return TERMLINE_NOMEM;
    }
    return rc;
}
