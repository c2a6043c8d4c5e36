/* quote_server — the seed book's example 2-3 in coil. Each client sends a
 * quote and gets back the quote the previous client sent (the first gets
 * the factory's default); the server counts the open connections.
 *
 *   ./quote_server [[--port] PORT]      (port 8000 by default)
 *   echo "Carpe diem" | nc -q1 localhost 8000
 *
 * The Twisted original is in README.md, beside a walk-through.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coil/coil.h>

typedef struct quote_conn {
    coil_protocol base;      /* first: coil sees a coil_protocol * */
    struct quote_conn *next; /* the factory's list of live connections */
} quote_conn;

/* State shared by every connection lives in the factory, as in the book:
 * a protocol lives only as long as its connection. */
typedef struct quote_factory {
    coil_factory base;
    char *quote; /* the quote to hand out next (owned, NUL-terminated) */
    int num_connections;
    quote_conn *conns; /* every live connection, for shutdown */
} quote_factory;

static void quote_connection_made(coil_protocol *p)
{
    ((quote_factory *)p->user)->num_connections++;
}

static void quote_data_received(coil_protocol *p, const void *data, size_t len)
{
    quote_factory *f = p->user;
    printf("Number of active connections: %d\n", f->num_connections);
    printf("> Received: ``%.*s''\n>  Sending: ``%s''\n", (int)len, (const char *)data,
           f->quote);
    coil_transport_write(p->transport, f->quote, strlen(f->quote));
    /* updateQuote: `data` is only lent to us, so keep a copy of our own. */
    char *copy = strndup(data, len);
    if (copy) {
        free(f->quote);
        f->quote = copy;
    }
}

/* The end of a connection, clean or not (`reason` says which). */
static void quote_connection_lost(coil_protocol *p, const coil_failure *reason)
{
    ((quote_factory *)p->user)->num_connections--;
}

static void quote_destroy(coil_protocol *p)
{
    quote_conn *q = (quote_conn *)p;
    quote_factory *f = p->user;
    quote_conn **pp = &f->conns; /* take it off the factory's list */
    while (*pp != q)
        pp = &(*pp)->next;
    *pp = q->next;
    free(q);
}

static const coil_protocol_ops quote_ops = {
    .connection_made = quote_connection_made,
    .data_received = quote_data_received,
    .connection_lost = quote_connection_lost,
    .destroy = quote_destroy,
};

/* buildProtocol: each protocol gets a pointer back to its factory. */
static coil_protocol *quote_build(coil_factory *base, const coil_address *peer)
{
    quote_factory *f = (quote_factory *)base;
    quote_conn *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->base.ops = &quote_ops;
    q->base.user = f;
    q->next = f->conns; /* put it on the factory's list */
    f->conns = q;
    return &q->base;
}

static const coil_factory_ops quote_factory_ops = {.build_protocol = quote_build};

int main(int argc, char **argv)
{
    /* The port: the book's 8000, or PORT / --port PORT. */
    int port = argc == 1 ? 8000 : atoi(argv[argc - 1]);
    if (argc > 3 || (argc == 3 && strcmp(argv[1], "--port") != 0) || port <= 0 ||
        port > 65535) {
        fprintf(stderr, "usage: %s [[--port] PORT]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* show each line at once, even in a pipe */

    quote_factory f = {.base.ops = &quote_factory_ops,
                       .quote = strdup("An apple a day keeps the doctor away")};
    coil_reactor *r;
    coil_reactor_options ro = {.handle_signals = 1}; /* Ctrl-C stops run() */
    if (!f.quote || coil_reactor_new(&r, &ro) != 0) {
        free(f.quote);
        return 1;
    }

    /* "::" takes IPv6 and IPv4 alike; without IPv6, IPv4 only. */
    coil_tcp_listen_options lo = {.interface = "::", .port = port};
    coil_listener *l;
    coil_failure *err = NULL;
    if (coil_tcp_listen(r, &lo, &f.base, &l, NULL) != 0) {
        lo.interface = "0.0.0.0";
        if (coil_tcp_listen(r, &lo, &f.base, &l, &err) != 0) {
            fprintf(stderr, "quote_server: %s\n", coil_failure_message(err));
            coil_failure_free(err);
            free(f.quote);
            coil_reactor_free(r);
            return 1;
        }
    }

    coil_reactor_run(r); /* until SIGINT / SIGTERM */

    /* Shutdown: stop listening, then close every connection cleanly (each
     * peer gets what was queued) and wait for them, aborting those still
     * open after 2 s; the transports free the protocols as they end. */
    coil_listener_close(l);
    coil_reactor_shutdown(r, 2.0);
    coil_reactor_free(r);
    free(f.quote);
    return 0;
}
