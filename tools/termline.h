/* A terminal line editor for a server talking to a person through a pty
 * it does not have: SSH shell sessions with a pty-req, where the client's
 * terminal is in raw mode and the server must echo and edit, as the kernel's
 * line discipline would.
 *
 * Bytes typed go in (termline_feed); what the terminal should show comes
 * out (the echo, erasures, "\r\n"), and complete lines are handed back one
 * at a time:
 *   - printable characters are echoed and kept; UTF-8 sequences are kept
 *     whole (held until complete; malformed ones dropped) and never split
 *     by the length bound;
 *   - CR or LF ends the line ("\r\n" echoed; CR LF counts once);
 *   - DEL or BS erases the last character ("\b \b"), Ctrl-W the last word,
 *     Ctrl-U the whole line; Ctrl-L redraws it;
 *   - Ctrl-C leaves (TERMLINE_INTERRUPT), Ctrl-D on an empty line leaves
 *     (TERMLINE_EOF; on a non-empty line it is ignored, as in a shell);
 *   - escape sequences (arrow keys, function keys, Alt+key) and other
 *     control bytes are ignored;
 *   - at most TERMLINE_MAX bytes per line: more rings the bell.
 *
 * Output that arrives while the person types (termline_print) goes on its
 * own line: the input line is cleared, the text printed with "\r\n", and
 * the prompt and the partial input drawn again below it.
 *
 * Plain C, no I/O: the caller writes what comes out. */
#ifndef COIL_TOOLS_TERMLINE_H
#define COIL_TOOLS_TERMLINE_H

#include <stddef.h>

#define TERMLINE_MAX        1024 /* bytes of one input line */
#define TERMLINE_PROMPT_MAX 64

/* A growing output buffer (the caller frees p; reset len to reuse). */
typedef struct termline_out {
    char *p;
    size_t len, cap;
} termline_out;

/* 0, or -1 when out of memory. */
int termline_out_put(termline_out *o, const void *data, size_t len);

typedef struct termline {
    char line[TERMLINE_MAX + 1]; /* the input so far, NUL-terminated */
    size_t len;
    char prompt[TERMLINE_PROMPT_MAX + 1];
    /* Private. */
    unsigned char pend[4]; /* a UTF-8 sequence not yet complete */
    size_t pend_len, pend_need;
    int esc;      /* in an escape sequence: 1 after ESC, 2 in CSI, 3 in SS3 */
    size_t esc_n; /* bytes of the sequence so far (bounded) */
    int after_cr; /* the last byte ended a line with CR (a LF next is its pair) */
    int done;     /* a line was returned: cleared by the next feed */
} termline;

enum {
    TERMLINE_MORE = 0,      /* everything was taken; no line yet */
    TERMLINE_LINE = 1,      /* a line is complete: line/len; feed the rest */
    TERMLINE_INTERRUPT = 2, /* Ctrl-C */
    TERMLINE_EOF = 3,       /* Ctrl-D on an empty line */
    TERMLINE_NOMEM = -1
};

void termline_init(termline *t);
/* The prompt drawn before the input (at most TERMLINE_PROMPT_MAX bytes;
 * longer is cut). Not drawn here: see termline_redraw. */
void termline_set_prompt(termline *t, const char *prompt);

/* Take bytes typed: up to the end of the first line, Ctrl-C or Ctrl-D
 * (*used says how many were taken), appending what the terminal should show
 * to `out`. On TERMLINE_LINE the line is in t->line (t->len bytes, valid
 * until the next call); "\r\n" and the prompt for the next line are in
 * `out` already. Call again with the rest. */
int termline_feed(termline *t, const void *data, size_t len, size_t *used,
                  termline_out *out);

/* Show `text` (len bytes, no line ending; the caller makes it safe to show)
 * above the input line: clear the line, the text, "\r\n", then the prompt
 * and the input again. 0 or -1 (out of memory). */
int termline_print(termline *t, const char *text, size_t len, termline_out *out);

/* Draw the prompt and the input from the start of the line. */
int termline_redraw(const termline *t, termline_out *out);

#endif
