/* coil-echo: an echo server on any number of endpoints, and a client that
 * sends its stdin through an echo server and writes the echo to stdout.
 *
 * The server is what coil's performance is measured by: each connection is
 * one small struct, data_received writes the borrowed bytes straight back
 * (the transport copies only what the kernel does not take at once), and
 * backpressure comes from the transport itself: the protocol registers as a
 * streaming producer on its own transport, so a write queue above the
 * high-water mark pauses reading and a drained one resumes it.
 *
 * Over SSH (server endpoint ssh:PORT:hostKey=FILE:authorizedKeys=FILE) every
 * exec channel, whatever its command, and every shell echoes the same way,
 * byte for byte: no line editing, no "\r\n" (the client's own terminal
 * shows what comes back). On a session with a pty, whose terminal is raw,
 * Ctrl-C or Ctrl-D ends the session (there is no other way out but ssh's
 * "~."). The exit status is 0.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <coil/coil.h>
#include <coil/ssh_server.h>

#include "toolutil.h"

static const char usage[] =
    "Usage: coil-echo serve ENDPOINT...\n"
    "       coil-echo send ENDPOINT\n"
    "\n"
    "serve  Echo every byte back, on every server endpoint given, until\n"
    "       SIGINT or SIGTERM. Prints where it listens (the real port for\n"
    "       tcp:0) on stderr.\n"
    "send   Send stdin to the echo server at a client endpoint and write the\n"
    "       echo to stdout; exits 0 once all of it came back, 1 when the\n"
    "       connection fails or is lost first.\n"
    "\n"
    "Server endpoints: tcp:PORT[:interface=ADDR][:backlog=N]\n"
    "                  unix:PATH[:mode=0660][:backlog=N]\n"
    "                  ssh:PORT:hostKey=FILE:authorizedKeys=FILE (or :anonymous=yes)\n"
    "                       exec (any command) and shell sessions echo\n"
    "Client endpoints: tcp:HOST:PORT[:timeout=S]   unix:PATH[:timeout=S]\n"
    "                  ssh:HOST:PORT:user=USER:to=DESTHOST\\:DESTPORT (via sshd)\n"
    "\n"
    "Examples:\n"
    "  coil-echo serve tcp:8000 unix:/tmp/echo.sock\n"
    "  coil-echo serve ssh:2222:hostKey=host_ed25519:authorizedKeys=$HOME/.ssh/"
    "authorized_keys\n"
    "  echo hello | ssh -p 2222 127.0.0.1 anything\n"
    "  echo hello | coil-echo send tcp:127.0.0.1:8000\n"
    "\n"
    "Exit status: 0 success, 1 failure, 2 bad arguments.\n";

/* ---- the server ------------------------------------------------------------ */

typedef struct echo_server echo_server;

typedef struct echo_conn {
    coil_protocol p; /* first: the transport's protocol */
    coil_producer producer;
    echo_server *srv;
    int raw_terminal; /* an SSH session with a pty: Ctrl-C / Ctrl-D leave */
    struct echo_conn *prev, *next;
} echo_conn;

struct echo_server {
    coil_factory f; /* first */
    coil_reactor *r;
    echo_conn *conns; /* live connections, for shutdown */
    size_t nconns;
};

#define CONN_OF_PRODUCER(pp) ((echo_conn *)((char *)(pp)-offsetof(echo_conn, producer)))

static void echo_pause(coil_producer *pp)
{
    echo_conn *c = CONN_OF_PRODUCER(pp);
    if (c->p.transport)
        coil_transport_pause_reading(c->p.transport);
}

static void echo_resume(coil_producer *pp)
{
    echo_conn *c = CONN_OF_PRODUCER(pp);
    if (c->p.transport)
        coil_transport_resume_reading(c->p.transport);
}

static void echo_stop(coil_producer *pp)
{
    /* The connection is going away; destroy follows. */
}

static const coil_producer_ops echo_producer_ops = {
    .pause_producing = echo_pause,
    .resume_producing = echo_resume,
    .stop_producing = echo_stop,
};

static void echo_made(coil_protocol *p)
{
    echo_conn *c = (echo_conn *)p;
    if (coil_transport_register_producer(p->transport, &c->producer, 1) != 0) {
        coil_transport_abort_connection(p->transport);
        return;
    }
    const coil_ssh_channel_info *si = coil_ssh_server_channel_info(p->transport);
    if (si) {
        (void)coil_ssh_server_channel_set_exit(p->transport, 0);
        c->raw_terminal = si->has_pty;
    }
}

static void echo_data(coil_protocol *p, const void *data, size_t len)
{
    echo_conn *c = (echo_conn *)p;
    if (c->raw_terminal) {
        /* Echo up to a Ctrl-C or Ctrl-D, then close. */
        const char *d = data;
        size_t n = 0;
        while (n < len && d[n] != 0x03 && d[n] != 0x04)
            n++;
        if (n < len) {
            if (n > 0 && coil_transport_write(p->transport, data, n) != 0) {
                coil_transport_abort_connection(p->transport);
                return;
            }
            coil_transport_lose_connection(p->transport);
            return;
        }
    }
    /* An error (out of memory) closes the connection: the echo is broken. */
    if (coil_transport_write(p->transport, data, len) != 0)
        coil_transport_abort_connection(p->transport);
}

static void echo_destroy(coil_protocol *p)
{
    echo_conn *c = (echo_conn *)p;
    echo_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    free(c);
}

/* No read_connection_lost: when the peer half-closes, the transport sends
 * what is queued and closes, which is what an echo server wants. */
static const coil_protocol_ops echo_ops = {
    .connection_made = echo_made,
    .data_received = echo_data,
    .destroy = echo_destroy,
};

static coil_protocol *echo_build(coil_factory *f, const coil_address *peer)
{
    echo_server *s = (echo_server *)f;
    echo_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL; /* refused: the listener closes the socket */
    c->p.ops = &echo_ops;
    c->producer.ops = &echo_producer_ops;
    c->srv = s;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    return &c->p;
}

static const coil_factory_ops echo_factory_ops = {.build_protocol = echo_build};

static int serve(int n, char **texts)
{
    int status = TOOL_EXIT_FAILURE;
    echo_server s = {.f.ops = &echo_factory_ops};
    tool_serving sv;
    if (tool_serving_init(&sv, n, "serving echo on") != 0)
        goto out;
    /* Check every description before listening on any. */
    for (int i = 0; i < n; i++) {
        coil_failure *err = NULL;
        if (coil_endpoint_server(texts[i], &sv.eps[i], &err) != 0) {
            status = tool_bad_endpoint(err);
            goto out;
        }
    }
    if (tool_reactor_new(&s.r) != 0)
        goto out;
    if (tool_serving_listen(&sv, s.r, &s.f, texts) != 0)
        goto out;
    coil_reactor_run(s.r);
    status = TOOL_EXIT_OK;
out:
    tool_serving_close(&sv);
    if (s.r) {
        /* Close what is still connected: cleanly (what is queued is sent)
         * when the peers let us within a moment, else abort; TLS
         * connections still in their handshake or close included. The
         * transports free themselves, and their protocols, as they end. */
        tool_shutdown(s.r, 1.0);
        if (s.nconns > 0)
            tool_error("%zu connections did not close", s.nconns);
        coil_reactor_free(s.r);
    }
    tool_serving_free(&sv);
    return status;
}

/* ---- the client -------------------------------------------------------------- */

typedef struct sender {
    tool_client c;   /* first */
    coil_protocol p; /* the one connection's protocol, embedded */
    uint64_t sent, received;
    int in_eof;
    int closing;
} sender;

#define SENDER_OF(ptr, member) ((sender *)((char *)(ptr)-offsetof(sender, member)))

/* Everything was sent and has come back: close cleanly. */
static void maybe_done(sender *s)
{
    if (!s->in_eof || s->received < s->sent || s->closing || !s->p.transport)
        return;
    s->closing = 1;
    coil_transport_lose_connection(s->p.transport);
}

static void stdin_data(void *arg, const char *data, size_t len)
{
    sender *s = arg;
    if (!s->p.transport)
        return;
    int rc = coil_transport_write(s->p.transport, data, len);
    if (rc != 0) {
        tool_error("cannot send to %s: %s", s->c.endpoint, coil_strerror(rc));
        tool_client_fail(&s->c);
        return;
    }
    s->sent += len;
}

static void stdin_eof(void *arg)
{
    sender *s = arg;
    s->in_eof = 1;
    tool_input_free(s->c.in);
    s->c.in = NULL;
    maybe_done(s);
}

static void stdin_error(void *arg, int err)
{
    sender *s = arg;
    tool_error("cannot read stdin: %s", strerror(err));
    tool_client_fail(&s->c);
}

static const tool_input_ops stdin_ops = {
    .on_data = stdin_data,
    .on_eof = stdin_eof,
    .on_error = stdin_error,
};

static void sender_made(coil_protocol *p)
{
    sender *s = SENDER_OF(p, p);
    tool_client_attach(&s->c, &stdin_ops, s);
}

static void sender_data(coil_protocol *p, const void *data, size_t len)
{
    sender *s = SENDER_OF(p, p);
    if (s->c.status >= 0)
        return;
    int err = tool_write_all(STDOUT_FILENO, data, len);
    if (err) {
        tool_error("cannot write stdout: %s", strerror(err));
        tool_client_fail(&s->c);
        return;
    }
    s->received += len;
    maybe_done(s);
}

static void sender_lost(coil_protocol *p, const coil_failure *reason)
{
    sender *s = SENDER_OF(p, p);
    if (s->c.status < 0 && (!s->in_eof || s->received < s->sent)) {
        tool_error_failure(reason,
                           "connection to %s lost after %" PRIu64 " of %" PRIu64
                           " bytes came back%s",
                           s->c.endpoint, s->received, s->sent,
                           s->in_eof ? "" : " (stdin not yet fully sent)");
        tool_client_finish(&s->c, TOOL_EXIT_FAILURE);
        return;
    }
    tool_client_finish(&s->c, TOOL_EXIT_OK);
}

static void sender_destroy(coil_protocol *p)
{
    /* Embedded in the sender: nothing to free. */
}

static const coil_protocol_ops sender_ops = {
    .connection_made = sender_made,
    .data_received = sender_data,
    .connection_lost = sender_lost,
    .destroy = sender_destroy,
};

static coil_protocol *sender_build(tool_client *c)
{
    return &((sender *)c)->p;
}

static int sender_interrupted(tool_client *c)
{
    sender *s = (sender *)c;
    tool_error("interrupted after %" PRIu64 " of %" PRIu64 " bytes came back",
               s->received, s->sent);
    return TOOL_EXIT_FAILURE;
}

static const tool_client_ops sender_client_ops = {
    .build = sender_build,
    .interrupted = sender_interrupted,
};

static int send_stdin(const char *text)
{
    sender s;
    tool_client_init(&s.c, &sender_client_ops, text);
    s.p = (coil_protocol){.ops = &sender_ops};
    s.sent = s.received = 0;
    s.in_eof = s.closing = 0;
    return tool_client_run(&s.c);
}

int main(int argc, char **argv)
{
    tool_init("coil-echo", usage);
    int n = tool_parse_args(argc, argv, NULL);
    if (n == TOOL_ARGS_HELP)
        return tool_help();
    if (n < 0)
        return -n;
    if (n == 0)
        return tool_usage_error("missing command: serve or send");
    if (strcmp(argv[0], "serve") == 0) {
        if (n < 2)
            return tool_usage_error("serve: missing ENDPOINT (e.g. tcp:8000)");
        return serve(n - 1, argv + 1);
    }
    if (strcmp(argv[0], "send") == 0) {
        if (n < 2)
            return tool_usage_error("send: missing ENDPOINT (e.g. tcp:127.0.0.1:8000)");
        if (n > 2)
            return tool_usage_error("send: one ENDPOINT only; unexpected '%s'", argv[2]);
        return send_stdin(argv[1]);
    }
    return tool_usage_error("unknown command '%s' (use serve or send)", argv[0]);
}
