/* coil — the line receiver (Twisted's LineReceiver).
 *
 * A protocol that splits what arrives into lines and can switch to raw
 * mode and back (a header in lines, then a body in bytes). Embed
 * coil_line_receiver FIRST in your struct, fill in a static const
 * coil_line_ops, and call coil_line_receiver_init() from your factory's
 * build_protocol; return &your->line.protocol.
 *
 *   typedef struct { coil_line_receiver line; int count; } counter;
 *   static void got_line(coil_line_receiver *lr, const char *line, size_t n)
 *   {
 *       coil_line_send(lr, line, n);            // echo it back, with "\r\n"
 *   }
 *   static const coil_line_ops counter_ops = {.line_received = got_line,
 *                                             .destroy = free_counter};
 *
 * Lines end with the delimiter, "\r\n" by default; a bare "\n" is accepted
 * too unless accept_lf is cleared (any "\r" before it is then part of the
 * delimiter, never of the line). A line longer than max_length (16 KiB by
 * default) calls line_length_exceeded, whose default closes the
 * connection (lose_connection): the peer cannot make us buffer without
 * bound. Partial lines are kept in a buffer that is freed as soon as it
 * is empty, so an idle connection holds no buffer.
 *
 * Every callback may call any coil_line_* or transport function, including
 * switching modes, pausing, or closing the connection: lines that arrived
 * in the same read are delivered only while the receiver is in line mode,
 * not paused, and the connection is not closing (lose_connection or
 * abort_connection was called, by the receiver or by you; a half-close,
 * lose_write_connection, does not stop delivery).
 */
#ifndef COIL_LINE_H
#define COIL_LINE_H

#include <stdarg.h>
#include <stddef.h>

#include "protocol.h"
#include "rxbuf.h"
#include "transport.h"

#ifdef __cplusplus
extern "C" {
#endif

#define COIL_LINE_DEFAULT_MAX   (16 * 1024)
#define COIL_LINE_MAX_DELIMITER 8

typedef struct coil_line_receiver coil_line_receiver;

/* All optional (NULL). `line` is borrowed until the call returns; it is
 * NUL-terminated for convenience (line[len] == '\0') but may contain NULs. */
typedef struct coil_line_ops {
    void (*connection_made)(coil_line_receiver *lr);
    void (*line_received)(coil_line_receiver *lr, const char *line, size_t len);
    /* Raw mode: bytes as they come. */
    void (*raw_data_received)(coil_line_receiver *lr, const void *data, size_t len);
    /* A line passed max_length; `partial` is its start (max_length plus
     * the delimiter's length, or 2 under accept_lf if more). NULL: lose
     * the connection. Otherwise the over-long line is dropped, up to and
     * including its delimiter when that comes, and the lines after it are
     * delivered as usual. */
    void (*line_length_exceeded)(coil_line_receiver *lr, const char *partial, size_t len);
    void (*read_connection_lost)(coil_line_receiver *lr);
    void (*connection_lost)(coil_line_receiver *lr, const coil_failure *reason);
    void (*destroy)(coil_line_receiver *lr);
} coil_line_ops;

struct coil_line_receiver {
    coil_protocol protocol; /* first: the transport's protocol */
    const coil_line_ops *ops;
    /* Settings: change them any time. */
    char delimiter[COIL_LINE_MAX_DELIMITER]; /* default "\r\n" */
    size_t delimiter_len;
    int accept_lf;     /* also end a line at a bare "\n" (default 1) */
    size_t max_length; /* default COIL_LINE_DEFAULT_MAX */
    /* Private. */
    coil_rxbuf rx; /* input not yet delivered */
    /* Where the searches stopped (indexes in rx.buf): no delimiter starts
     * in [rx.off, scan) and no "\n" lies in [rx.off, scan_nl); when the
     * _hit flag is set, one was found there. */
    size_t scan, scan_nl;
    int scan_hit, scan_nl_hit;
    char scan_delim[COIL_LINE_MAX_DELIMITER]; /* the settings they are for */
    size_t scan_delim_len;
    int scan_lf;
    int raw;
    int paused;
    int discarding; /* skipping the rest of an over-long line */
    /* A large read is buffered in slices: the part not yet buffered. */
    const char *pending;
    size_t pending_len;
};

/* Set up `lr` (its fields are overwritten) for line mode with the
 * defaults. */
void coil_line_receiver_init(coil_line_receiver *lr, const coil_line_ops *ops);

/* Use `delim` (1..COIL_LINE_MAX_DELIMITER bytes) as the delimiter; accept_lf
 * is then cleared. Returns COIL_EINVAL for a bad length. */
int coil_line_set_delimiter(coil_line_receiver *lr, const char *delim, size_t len);

/* Write `line` followed by the delimiter (one writev). COIL_EINVAL when the
 * line holds the delimiter (or a "\n" under accept_lf): the peer would see
 * two lines. COIL_ECLOSED without a transport; otherwise as
 * coil_transport_write. */
int coil_line_send(coil_line_receiver *lr, const char *line, size_t len);
/* printf-style coil_line_send (formats on the stack, on the heap when
 * long). */
int coil_line_sendf(coil_line_receiver *lr, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int coil_line_vsendf(coil_line_receiver *lr, const char *fmt, va_list ap);

/* Switch to raw mode: buffered bytes not yet delivered as lines, and what
 * follows, go to raw_data_received (what is buffered at once, unless called
 * from a callback or paused: then when the running delivery gets to it). */
void coil_line_set_raw_mode(coil_line_receiver *lr);
/* Back to line mode; `extra` (may be NULL; copied) is data to parse first,
 * before anything still buffered, as Twisted's setLineMode(extra): from a
 * raw_data_received callback, pass the bytes after your body. */
void coil_line_set_line_mode(coil_line_receiver *lr, const void *extra, size_t len);

/* Stop delivering lines (buffered ones stay; reading from the transport is
 * paused too) / go on, delivering what is buffered. */
void coil_line_pause(coil_line_receiver *lr);
void coil_line_resume(coil_line_receiver *lr);

/* Drop and return what is buffered, NUL-terminated (caller frees with
 * free()); NULL when nothing is (*len set to 0). From a callback, that is
 * what followed the current line. */
char *coil_line_clear_buffer(coil_line_receiver *lr, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
