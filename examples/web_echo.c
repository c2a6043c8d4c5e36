/* web_echo — the book's first web server (chapter 4): HTTP spoken by hand
 * on a line receiver, no HTTP library. It collects the request's lines up
 * to the empty one that ends the head, answers with everything it was
 * sent, and hangs up.
 *
 *   ./web_echo [--port PORT]           (port 8000 on 127.0.0.1 by default)
 *   curl http://127.0.0.1:8000/hello   You said:
 *                                      GET /hello HTTP/1.1
 *                                      Host: 127.0.0.1:8000 ...
 *
 * The real server (web_pages.c and after) parses requests properly; this
 * one shows that HTTP is lines of text over TCP.
 */
#include <stdlib.h>
#include <string.h>

#include "web_common.h"

/* One connection: the line receiver first (it is the protocol the
 * transport sees), then the lines collected so far. */
typedef struct http_echo {
    coil_line_receiver line;
    char *lines; /* "line\r\nline\r\n..." (owned) */
    size_t len;
    int done;
} http_echo;

/* The response: a status line, an empty line, then the body; then close
 * (no Content-Length: the end of the connection ends the body). */
static void send_response(http_echo *e)
{
    coil_line_sendf(&e->line, "HTTP/1.1 200 OK");
    coil_line_send(&e->line, "", 0); /* the empty line: the head ends */
    coil_transport *t = e->line.protocol.transport;
    coil_transport_write(t, "You said:\r\n\r\n", 13);
    coil_transport_write(t, e->lines, e->len);
    coil_transport_lose_connection(t);
}

/* `line` comes without its "\r\n" and is only lent to us: copy it. */
static void echo_line_received(coil_line_receiver *lr, const char *line, size_t len)
{
    http_echo *e = (http_echo *)lr;
    if (e->done)
        return;
    if (len == 0) { /* the empty line: the head is complete */
        e->done = 1;
        send_response(e);
        return;
    }
    if (e->len + len + 2 > 64 * 1024) { /* bound what a client makes us keep */
        coil_transport_abort_connection(lr->protocol.transport);
        return;
    }
    char *grown = realloc(e->lines, e->len + len + 2);
    if (!grown)
        return;
    e->lines = grown;
    memcpy(e->lines + e->len, line, len);
    memcpy(e->lines + e->len + len, "\r\n", 2);
    e->len += len + 2;
}

/* The transport owns the protocol and frees it through destroy. */
static void echo_destroy(coil_line_receiver *lr)
{
    http_echo *e = (http_echo *)lr;
    free(e->lines);
    free(e);
}

static const coil_line_ops echo_ops = {
    .line_received = echo_line_received,
    .destroy = echo_destroy,
};

/* The factory: one http_echo per connection (the book's HTTPEchoFactory). */
static coil_protocol *echo_build(coil_factory *f, const coil_address *peer)
{
    (void)f;
    (void)peer;
    http_echo *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    coil_line_receiver_init(&e->line, &echo_ops);
    return &e->line.protocol;
}

static const coil_factory_ops echo_factory_ops = {.build_protocol = echo_build};

int main(int argc, char **argv)
{
    char where[256];
    if (web_listen_arg(&argc, argv, where, sizeof where) != 0 || argc != 1) {
        fprintf(stderr, "usage: %s [--port PORT | --listen ENDPOINT]\n", argv[0]);
        return 2;
    }
    coil_factory f = {.ops = &echo_factory_ops};
    return web_serve("web_echo", where, NULL, &f);
}
