/* chat_server — the seed book's example 2-5 in coil: a line-based chat
 * room. Each connection is a small state machine: first it registers a
 * name (REGISTER), then every line it sends goes to the others (CHAT).
 *
 *   ./chat_server [[--port] PORT]      (port 8000 by default)
 *   nc localhost 8000                  (in two or three terminals)
 *
 * The Twisted original is in README.md, beside a walk-through.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coil/coil.h>

typedef struct chat_factory chat_factory;

/* One connection. The line receiver comes first: it is the protocol the
 * transport sees, and it cuts the incoming bytes into lines for us. */
typedef struct chat {
    coil_line_receiver line;
    chat_factory *factory;
    enum { REGISTER, CHAT } state;
    char *name;        /* set when registered (owned) */
    struct chat *next; /* the factory's list of live connections */
} chat;

/* The book's `users` dictionary is the connections in state CHAT. */
struct chat_factory {
    coil_factory base;
    chat *conns; /* every live connection */
};

static chat *find_user(chat_factory *f, const char *name)
{
    for (chat *c = f->conns; c; c = c->next)
        if (c->state == CHAT && strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

/* Send one line to every registered user but `self`. */
static COIL_PRINTF(2, 3) void broadcast(chat *self, const char *fmt, ...)
{
    char *msg;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    for (chat *c = self->factory->conns; c; c = c->next)
        if (c != self && c->state == CHAT)
            coil_line_send(&c->line, msg, (size_t)n);
    free(msg);
}

/* Runs when the client has connected: the transport is ready. */
static void chat_connection_made(coil_line_receiver *lr)
{
    coil_line_sendf(lr, "What's your name?");
}

/* `line` comes without its "\r\n" and is only lent to us. */
static void chat_line_received(coil_line_receiver *lr, const char *line, size_t len)
{
    chat *c = (chat *)lr;
    if (c->state == CHAT) {
        broadcast(c, "<%s> %s", c->name, line);
        return;
    }
    if (find_user(c->factory, line)) {
        coil_line_sendf(lr, "Name taken, please choose another.");
        return;
    }
    if (!(c->name = strdup(line)))
        return;
    coil_line_sendf(lr, "Welcome, %s!", c->name);
    broadcast(c, "%s has joined the channel.", c->name);
    c->state = CHAT;
}

static void chat_connection_lost(coil_line_receiver *lr, const coil_failure *reason)
{
    chat *c = (chat *)lr;
    if (c->state == CHAT) {
        c->state = REGISTER; /* del users[name] */
        broadcast(c, "%s has left the channel.", c->name);
    }
}

/* The transport owns the protocol and calls destroy last of all. */
static void chat_destroy(coil_line_receiver *lr)
{
    chat *c = (chat *)lr;
    chat **pp = &c->factory->conns; /* take it off the factory's list */
    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    free(c->name);
    free(c);
}

static const coil_line_ops chat_ops = {
    .connection_made = chat_connection_made,
    .line_received = chat_line_received,
    .connection_lost = chat_connection_lost,
    .destroy = chat_destroy,
};

static coil_protocol *chat_build(coil_factory *base, const coil_address *peer)
{
    chat_factory *f = (chat_factory *)base;
    chat *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    coil_line_receiver_init(&c->line, &chat_ops);
    c->factory = f;
    c->next = f->conns; /* put it on the factory's list */
    f->conns = c;
    return &c->line.protocol;
}

static const coil_factory_ops chat_factory_ops = {.build_protocol = chat_build};

int main(int argc, char **argv)
{
    /* The port: the book's 8000, or PORT / --port PORT. */
    int port = argc == 1 ? 8000 : atoi(argv[argc - 1]);
    if (argc > 3 || (argc == 3 && strcmp(argv[1], "--port") != 0) || port <= 0 ||
        port > 65535) {
        fprintf(stderr, "usage: %s [[--port] PORT]\n", argv[0]);
        return 2;
    }
    coil_reactor *r;
    coil_reactor_options ro = {.handle_signals = 1}; /* Ctrl-C stops run() */
    if (coil_reactor_new(&r, &ro) != 0)
        return 1;

    /* "::" takes IPv6 and IPv4 alike; without IPv6, IPv4 only. */
    chat_factory f = {.base.ops = &chat_factory_ops};
    coil_tcp_listen_options lo = {.interface = "::", .port = port};
    coil_listener *l;
    coil_failure *err = NULL;
    if (coil_tcp_listen(r, &lo, &f.base, &l, NULL) != 0) {
        lo.interface = "0.0.0.0";
        if (coil_tcp_listen(r, &lo, &f.base, &l, &err) != 0) {
            fprintf(stderr, "chat_server: %s\n", coil_failure_message(err));
            coil_failure_free(err);
            coil_reactor_free(r);
            return 1;
        }
    }

    coil_reactor_run(r);

    /* Shutdown: stop listening, then close every connection cleanly (each
     * peer gets what was queued) and wait for them, aborting those still
     * open after 2 s; the transports free the protocols as they end. */
    coil_listener_close(l);
    coil_reactor_shutdown(r, 2.0);
    coil_reactor_free(r);
    return 0;
}
