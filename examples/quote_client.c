/* quote_client — the seed book's example 2-4 in coil: three connections
 * to the quote server at once, each sending its own quote and printing the
 * one it gets back; the reactor stops when all three are over.
 *
 *   ./quote_server &  ./quote_client [[--port] PORT]    (port 8000 by default)
 *
 * The Twisted original is in README.md, beside a walk-through.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coil/coil.h>

#define NQUOTES 3
static const char *const quotes[NQUOTES] = {"You snooze you lose",
                                            "The early bird gets the worm", "Carpe diem"};

static coil_reactor *reactor;
static int quote_counter = NQUOTES; /* connections not over yet */
static int failures;

static int stop_reactor(void *arg)
{
    coil_reactor_stop(reactor);
    return 0;
}

/* Each connection ends once, by failing or by being lost; the last one to
 * end stops the reactor. Stopping through call_soon also works when a
 * failure is known before run() starts. */
static void maybe_stop_reactor(void)
{
    if (--quote_counter == 0)
        coil_reactor_call_soon(reactor, stop_reactor, NULL);
}

/* One factory per quote: the factory is where a connection finds its
 * configuration (here, the quote to send). */
typedef struct quote_client_factory {
    coil_factory base;
    const char *quote;
} quote_client_factory;

/* p->user points at our factory (set in quote_build). */
static void quote_connection_made(coil_protocol *p)
{
    const char *quote = ((quote_client_factory *)p->user)->quote;
    coil_transport_write(p->transport, quote, strlen(quote));
}

static void quote_data_received(coil_protocol *p, const void *data, size_t len)
{
    printf("Received quote: %.*s\n", (int)len, (const char *)data);
    coil_transport_lose_connection(p->transport);
}

static void quote_destroy(coil_protocol *p)
{
    free(p);
}

static const coil_protocol_ops quote_ops = {
    .connection_made = quote_connection_made,
    .data_received = quote_data_received,
    .destroy = quote_destroy,
};

static coil_protocol *quote_build(coil_factory *f, const coil_address *peer)
{
    coil_protocol *p = calloc(1, sizeof *p);
    if (p) {
        p->ops = &quote_ops;
        p->user = f;
    }
    return p;
}

/* `reason` is borrowed: read it here, do not keep it. */
static void quote_failed(coil_factory *f, coil_connector *c, const coil_failure *reason)
{
    printf("connection failed: %s\n", coil_failure_message(reason));
    failures++;
    maybe_stop_reactor();
}

static void quote_lost(coil_factory *f, coil_connector *c, const coil_failure *reason)
{
    printf("connection lost: %s\n", coil_failure_message(reason));
    maybe_stop_reactor();
}

static const coil_factory_ops quote_client_factory_ops = {
    .build_protocol = quote_build,
    .connection_failed = quote_failed,
    .connection_lost = quote_lost,
};

int main(int argc, char **argv)
{
    /* The port: the book's 8000, or PORT / --port PORT. */
    int port = argc == 1 ? 8000 : atoi(argv[argc - 1]);
    if (argc > 3 || (argc == 3 && strcmp(argv[1], "--port") != 0) || port <= 0 ||
        port > 65535) {
        fprintf(stderr, "usage: %s [[--port] PORT]\n", argv[0]);
        return 2;
    }
    if (coil_reactor_new(&reactor, NULL) != 0)
        return 1;

    /* Three connection attempts at once: each is only registered here and
     * goes ahead, interleaved with the others, once the reactor runs. */
    quote_client_factory factories[NQUOTES];
    coil_connector *connectors[NQUOTES] = {0};
    coil_tcp_connect_options co = {.host = "localhost", .port = port};
    for (int i = 0; i < NQUOTES; i++) {
        factories[i] = (quote_client_factory){.base.ops = &quote_client_factory_ops,
                                              .quote = quotes[i]};
        if (coil_tcp_connect(reactor, &co, &factories[i].base, &connectors[i]) != 0) {
            failures++;
            maybe_stop_reactor(); /* this one will never end by itself */
        }
    }
    coil_reactor_run(reactor);

    for (int i = 0; i < NQUOTES; i++)
        coil_connector_free(connectors[i]); /* NULL is allowed */
    coil_reactor_shutdown(reactor, 2.0);    /* closes what is still open */
    coil_reactor_free(reactor);
    return failures ? 1 : 0;
}
