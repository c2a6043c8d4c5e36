/* Shared helpers of the command-line tools (coil-echo, coil-chat, coil-web):
 * argument parsing, usage and error messages, the reactor with signal-driven
 * clean shutdown, a server's listeners, and an input reader for stdin that works on
 * pipes, terminals, sockets and regular files alike.
 *
 * Exit statuses: TOOL_EXIT_OK (0) on success, TOOL_EXIT_FAILURE (1) when
 * the work failed (could not connect, connection lost, cannot listen),
 * TOOL_EXIT_USAGE (2) for bad arguments.
 */
#ifndef COIL_TOOLUTIL_H
#define COIL_TOOLUTIL_H

#include <stddef.h>

#include <coil/coil.h>

#define TOOL_EXIT_OK      0
#define TOOL_EXIT_FAILURE 1
#define TOOL_EXIT_USAGE   2

/* ---- messages ------------------------------------------------------------ */

/* Call first in main: `name` prefixes every message; `usage` is the --help
 * text (both static strings). Ignores SIGPIPE (a closed stdout is an error
 * we report, not a silent death) and routes coil's log through tool_error's
 * format ("NAME: module: message"). */
void tool_init(const char *name, const char *usage);
const char *tool_name(void);

/* "NAME: message\n" on stderr. */
void tool_error(const char *fmt, ...) COIL_PRINTF(1, 2);

/* "NAME: context: what failed\n" on stderr, where the failure's messages
 * and its causes' are joined by ": ". */
void tool_error_failure(const coil_failure *f, const char *fmt, ...) COIL_PRINTF(2, 3);

/* The failure's message followed by its causes' messages, joined by ": "
 * (no domains or code names: text for a person). Caller frees; NULL only
 * when memory runs out. */
char *tool_failure_text(const coil_failure *f);

/* The same, leaving out an empty message and a cause whose message the
 * text already holds (messages that quote their cause, as the HTTP agent's
 * do). */
char *tool_failure_text_brief(const coil_failure *f);

/* Print "NAME: message" and a hint to try --help on stderr; returns
 * TOOL_EXIT_USAGE. */
int tool_usage_error(const char *fmt, ...) COIL_PRINTF(1, 2);

/* A description that does not parse: print the failure as a usage error,
 * free it, and return TOOL_EXIT_USAGE. */
int tool_bad_endpoint(coil_failure *err);

/* Print the usage text on stdout; returns TOOL_EXIT_OK. */
int tool_help(void);

/* ---- arguments ----------------------------------------------------------- */

/* One option: --long, and -s when `short_name` is not 0. With `value` (or
 * `each`) set, the option takes a value ("--name NAME", "--name=NAME", "-n
 * NAME"), stored (borrowed from argv) in *value; otherwise *flag is set to
 * 1. The table ends with an entry whose long_name is NULL. */
typedef struct tool_option {
    const char *long_name;
    char short_name;
    const char **value;
    int *flag;
    /* Or, for an option given any number of times (coil-web's -H): called
     * with each value in order; a non-zero return (after printing what was
     * wrong) ends parsing with -TOOL_EXIT_USAGE. */
    int (*each)(void *arg, const char *value);
    void *each_arg;
} tool_option;

#define TOOL_ARGS_HELP (-1)

/* Parse argv[1..argc-1]: options from `opts` anywhere ("--" ends them),
 * -h / --help. Positional arguments are moved, in order, to argv[0..n-1]
 * (argv[0] is overwritten) and n is returned. Returns TOOL_ARGS_HELP when
 * help was asked for, or -TOOL_EXIT_USAGE after printing what was wrong
 * (unknown option, missing value). `opts` may be NULL. */
int tool_parse_args(int argc, char **argv, const tool_option *opts);

/* ---- the reactor ----------------------------------------------------------- */

/* A reactor that stops cleanly on SIGINT and SIGTERM while it runs. Prints
 * what went wrong and returns non-zero on failure. */
int tool_reactor_new(coil_reactor **out);

/* Stop the reactor: now when it runs, else as soon as it starts (callbacks
 * such as connection_failed may run before coil_reactor_run). */
void tool_quit(coil_reactor *r);

/* After run() returned (and the listeners are closed): close every
 * connection cleanly, wait up to `seconds` for the peers, abort the rest,
 * and run until every transport (TLS handshakes and closes included) is
 * freed (coil_reactor_shutdown). Returns how many had to be aborted. */
int tool_shutdown(coil_reactor *r, double seconds);

/* ---- listeners and output -------------------------------------------------- */

/* A description of where `l` (listening on server endpoint text `text`)
 * listens, for "serving on ..." messages: "tcp:PORT (ADDR:PORT)" with the
 * real port, or "unix:PATH". */
void tool_listener_describe(const coil_listener *l, const char *text, char *buf,
                            size_t size);

/* What a server tool listens on: one server endpoint per description
 * (`eps`, parsed by the tool), its listener, and where it listens
 * (tool_listener_describe) for the announcement. */
typedef struct tool_serving {
    int n; /* descriptions */
    coil_endpoint **eps;
    coil_listener **listeners;
    char **names;
    int listening;    /* listeners open: listeners[0..listening) */
    const char *what; /* the announcement: "NAME: WHAT WHERE" a listener */
} tool_serving;

/* Room for `n` descriptions. Returns 0, or -1 after "out of memory". */
int tool_serving_init(tool_serving *sv, int n, const char *what);

/* Listen with `f` on every endpoint (texts[i] is eps[i]'s description, for
 * messages), then announce each listener once the reactor runs (a signal
 * sent by whoever waits for these lines then finds the handlers in place).
 * Returns 0, or -1 after a message. */
int tool_serving_listen(tool_serving *sv, coil_reactor *r, coil_factory *f,
                        char *const *texts);

/* Close the listeners (before tool_shutdown). */
void tool_serving_close(tool_serving *sv);

/* Free the endpoints, names and arrays (after tool_serving_close). */
void tool_serving_free(tool_serving *sv);

/* Write all of buf to fd (blocking; waits out EAGAIN on a non-blocking fd).
 * Returns 0 or a positive errno value. */
int tool_write_all(int fd, const void *buf, size_t len);

/* ---- input ----------------------------------------------------------------- */

/* Reads an fd (stdin) in chunks and hands them to on_data. Pipes, terminals
 * and sockets are watched with the reactor; regular files and other fds
 * epoll cannot watch are read one chunk per loop pass from a zero-delay
 * timer. Callbacks may call tool_input_pause/resume/free. */
typedef struct tool_input tool_input;

typedef struct tool_input_ops {
    void (*on_data)(void *arg, const char *data, size_t len);
    void (*on_eof)(void *arg);
    void (*on_error)(void *arg, int err); /* errno value of the failed read */
} tool_input_ops;

/* Start reading `fd` (not closed by tool_input_free). Returns NULL with a
 * message printed on failure. */
tool_input *tool_input_new(coil_reactor *r, int fd, const tool_input_ops *ops, void *arg);
void tool_input_pause(tool_input *in);
void tool_input_resume(tool_input *in);
/* Stop reading and free. NULL is allowed. */
void tool_input_free(tool_input *in);

/* ---- a client driven by stdin ---------------------------------------------- */

/* One connection to a client endpoint with stdin (tool_input) as a push
 * producer of it: stdin is paused while the connection's write queue is
 * full. Embed it first in your struct; your protocol is embedded too and
 * handed over by ops->build. */
typedef struct tool_client tool_client;
typedef struct tool_client_ops {
    coil_protocol *(*build)(tool_client *c);
    /* The exit status when SIGINT/SIGTERM stopped the run undecided. */
    int (*interrupted)(tool_client *c);
} tool_client_ops;

struct tool_client {
    coil_factory f; /* first */
    coil_producer producer;
    const tool_client_ops *ops;
    const char *endpoint; /* the client endpoint's text */
    coil_reactor *r;
    coil_connector *connector;
    coil_protocol *protocol; /* once built */
    tool_input *in;          /* stdin, once started */
    int status;              /* -1 until decided */
};

void tool_client_init(tool_client *c, const tool_client_ops *ops, const char *endpoint);
/* The connection's transport, or NULL when there is none (yet or any more). */
coil_transport *tool_client_transport(const tool_client *c);
/* Decide the exit status (the first decision stands), stop reading stdin
 * and stop the reactor. */
void tool_client_finish(tool_client *c, int status);
/* finish with failure and abort the connection. */
void tool_client_fail(tool_client *c);
/* From connection_made: make stdin the connection's producer and, when
 * `ops` is not NULL, start reading it. Fails (with a message) otherwise. */
void tool_client_attach(tool_client *c, const tool_input_ops *ops, void *arg);
/* Start reading stdin now (after attach with NULL ops). */
void tool_client_start_input(tool_client *c, const tool_input_ops *ops, void *arg);
/* Connect, run until finished or interrupted, tear down. Returns the exit
 * status. */
int tool_client_run(tool_client *c);

#endif
