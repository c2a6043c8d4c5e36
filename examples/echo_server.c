/* echo_server — the seed book's example 2-1 in coil: whatever a client
 * sends comes straight back.
 *
 *   ./echo_server [[--port] PORT]      (port 8000 by default, as in the book)
 *   nc localhost 8000                  (type lines; each one is echoed)
 *
 * The Twisted original is in README.md, beside a walk-through.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coil/coil.h>

/* A protocol: the state and logic of ONE connection. coil_protocol comes
 * first, so the coil_protocol * that coil hands us is also our echo *.
 * The links put every live connection on the factory's list, so that
 * main() can close them all at shutdown. */
typedef struct echo {
    coil_protocol base;
    struct echo *next; /* the factory's list of live connections */
} echo;

/* A factory: what outlives a single connection. It builds one protocol per
 * accepted connection. */
typedef struct echo_factory {
    coil_factory base;
    echo *conns;
} echo_factory;

/* Runs each time bytes arrive. `data` is only lent to us for the duration
 * of the call; write() copies it, so echoing is one line. */
static void echo_data_received(coil_protocol *p, const void *data, size_t len)
{
    coil_transport_write(p->transport, data, len);
}

/* The transport owns its protocol: once the connection is over (after
 * connection_lost) it calls destroy, the one place where we free it. */
static void echo_destroy(coil_protocol *p)
{
    echo *e = (echo *)p;
    echo_factory *f = p->user;
    echo **pp = &f->conns; /* take it off the factory's list */
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    free(e);
}

static const coil_protocol_ops echo_ops = {
    .data_received = echo_data_received,
    .destroy = echo_destroy,
};

/* The listener calls this for every accepted connection; coil then sets
 * p->transport and calls connection_made (we need none). NULL refuses. */
static coil_protocol *echo_build(coil_factory *base, const coil_address *peer)
{
    echo_factory *f = (echo_factory *)base;
    echo *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->base.ops = &echo_ops;
    e->base.user = f;
    e->next = f->conns; /* put it on the factory's list */
    f->conns = e;
    return &e->base;
}

static const coil_factory_ops echo_factory_ops = {.build_protocol = echo_build};

int main(int argc, char **argv)
{
    /* The port: the book's 8000, or PORT / --port PORT. */
    int port = argc == 1 ? 8000 : atoi(argv[argc - 1]);
    if (argc > 3 || (argc == 3 && strcmp(argv[1], "--port") != 0) || port <= 0 ||
        port > 65535) {
        fprintf(stderr, "usage: %s [[--port] PORT]\n", argv[0]);
        return 2;
    }

    /* The reactor is the event loop: nothing happens until it runs. With
     * handle_signals, Ctrl-C (SIGINT) or SIGTERM makes run() return. */
    coil_reactor *r;
    coil_reactor_options ro = {.handle_signals = 1};
    if (coil_reactor_new(&r, &ro) != 0)
        return 1;

    /* Listen on every address: "::" takes IPv6 and IPv4 alike, so clients
     * reach us whichever one "localhost" names; hosts without IPv6 get
     * "0.0.0.0", IPv4 only. */
    echo_factory f = {.base.ops = &echo_factory_ops};
    coil_tcp_listen_options lo = {.interface = "::", .port = port};
    coil_listener *l;
    coil_failure *err = NULL;
    if (coil_tcp_listen(r, &lo, &f.base, &l, NULL) != 0) {
        lo.interface = "0.0.0.0";
        if (coil_tcp_listen(r, &lo, &f.base, &l, &err) != 0) {
            fprintf(stderr, "echo_server: %s\n", coil_failure_message(err));
            coil_failure_free(err);
            coil_reactor_free(r);
            return 1;
        }
    }

    coil_reactor_run(r); /* until a signal stops it */

    /* Shutdown: stop listening, then close every connection cleanly (each
     * peer gets what was queued) and wait for them, aborting those still
     * open after 2 s; the transports free the protocols as they end. */
    coil_listener_close(l);
    coil_reactor_shutdown(r, 2.0);
    coil_reactor_free(r);
    return 0;
}
