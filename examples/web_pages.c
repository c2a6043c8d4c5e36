/* web_pages — the book's request handler (chapter 4): one function sees
 * every request, looks its path up in a table of pages, and answers it or
 * says 404. The book subclasses http.Request and overrides process(); in
 * coil that is one leaf resource whose `render` takes every method and
 * every path.
 *
 *   ./web_pages [--port PORT]
 *   curl http://127.0.0.1:8000/          <h1>Home</h1>Home page
 *   curl http://127.0.0.1:8000/about     <h1>About</h1>All about me
 *   curl -i http://127.0.0.1:8000/x      HTTP/1.1 404 Not Found ...
 */
#include <string.h>

#include "web_common.h"

/* The book's `resources` dictionary. */
static const struct page {
    const char *path;
    const char *html;
} pages[] = {
    {"/", "<h1>Home</h1>Home page"},
    {"/about", "<h1>About</h1>All about me"},
};

/* The book's process(): headers, then the page or a 404, then finish
 * (returning COIL_HTTP_DONE lets the server finish it for us). */
static int process(coil_http_resource *res, coil_http_request *req)
{
    (void)res;
    coil_http_request_set_header(req, "Content-Type", "text/html");
    const char *path = coil_http_request_path(req);
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        if (strcmp(path, pages[i].path) == 0) {
            coil_http_request_writef(req, "%s", pages[i].html);
            return COIL_HTTP_DONE;
        }
    }
    coil_http_request_set_status(req, 404, NULL);
    coil_http_request_writef(req, "<h1>Not Found</h1>");
    return COIL_HTTP_DONE;
}

static const coil_http_resource_ops handler_ops = {.render = process};

int main(int argc, char **argv)
{
    char where[256];
    if (web_listen_arg(&argc, argv, where, sizeof where) != 0 || argc != 1) {
        fprintf(stderr, "usage: %s [--port PORT | --listen ENDPOINT]\n", argv[0]);
        return 2;
    }
    coil_http_resource *handler = coil_http_resource_new(&handler_ops, NULL);
    if (!handler)
        return 1;
    /* A leaf sees every path below it: the whole site is this handler. */
    coil_http_resource_set_leaf(handler, 1);
    return web_serve("web_pages", where, handler, NULL);
}
