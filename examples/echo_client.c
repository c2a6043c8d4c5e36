/* echo_client — the seed book's example 2-2 in coil: connect to the echo
 * server, send "Hello, world!", print the answer, hang up.
 *
 *   ./echo_server &  ./echo_client [[--port] PORT]     (port 8000 by default)
 *
 * The Twisted original is in README.md, beside a walk-through.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coil/coil.h>

static coil_reactor *reactor;
static int failed;

/* Stop the reactor on its next pass. Going through call_soon also works
 * when a failure is reported before run() has started (a refused connect
 * may be known at once). */
static int stop_reactor(void *arg)
{
    coil_reactor_stop(reactor);
    return 0;
}

/* Runs once the TCP connection is up; p->transport is ready to use. */
static void client_connection_made(coil_protocol *p)
{
    coil_transport_write(p->transport, "Hello, world!", 13);
}

/* `data` is borrowed and not NUL-terminated: print it with its length.
 * lose_connection sends what is queued, then closes. */
static void client_data_received(coil_protocol *p, const void *data, size_t len)
{
    printf("Server said: %.*s\n", (int)len, (const char *)data);
    coil_transport_lose_connection(p->transport);
}

/* The transport frees the protocol through destroy when it is done. */
static void client_destroy(coil_protocol *p)
{
    free(p);
}

static const coil_protocol_ops client_ops = {
    .connection_made = client_connection_made,
    .data_received = client_data_received,
    .destroy = client_destroy,
};

/* The factory's hooks. A client factory also hears how its connection
 * attempt went (the book's clientConnectionFailed / clientConnectionLost). */
static coil_protocol *client_build(coil_factory *f, const coil_address *peer)
{
    coil_protocol *p = calloc(1, sizeof *p);
    if (p)
        p->ops = &client_ops;
    return p;
}

static void client_failed(coil_factory *f, coil_connector *c, const coil_failure *why)
{
    printf("Connection failed.\n");
    failed = 1;
    coil_reactor_call_soon(reactor, stop_reactor, NULL);
}

static void client_lost(coil_factory *f, coil_connector *c, const coil_failure *why)
{
    printf("Connection lost.\n");
    coil_reactor_call_soon(reactor, stop_reactor, NULL);
}

static const coil_factory_ops client_factory_ops = {
    .build_protocol = client_build,
    .connection_failed = client_failed,
    .connection_lost = client_lost,
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

    /* Start connecting: this only registers interest with the reactor; the
     * connection is made while run() turns the loop. */
    coil_factory f = {.ops = &client_factory_ops};
    coil_tcp_connect_options co = {.host = "localhost", .port = port};
    coil_connector *c;
    if (coil_tcp_connect(reactor, &co, &f, &c) != 0) {
        coil_reactor_free(reactor);
        return 1;
    }
    coil_reactor_run(reactor); /* until stop_reactor */

    /* The connection is over and its transport and protocol are freed (a
     * connection still open would be closed here, within 2 s); the
     * connector is ours to free. */
    coil_connector_free(c);
    coil_reactor_shutdown(reactor, 2.0);
    coil_reactor_free(reactor);
    return failed;
}
