/* web_clock — the book's clock page (chapter 4): dynamic content from a
 * resource of our own. It is a leaf (Twisted's isLeaf = True): it renders
 * every path below it itself instead of looking for children.
 *
 *   ./web_clock [--port PORT]
 *   curl http://127.0.0.1:8000/        The time is Tue Dec  1 23:50:00 2026
 *   curl http://127.0.0.1:8000/any/x   the same page
 */
#include <time.h>

#include "web_common.h"

/* The book's render_GET: write the page, return COIL_HTTP_DONE (the
 * server then finishes the response, with a Content-Length). Other
 * methods than GET and HEAD get 405 Method Not Allowed. */
static int clock_get(coil_http_resource *res, coil_http_request *req)
{
    (void)res;
    char now[32];
    time_t t = time(NULL);
    ctime_r(&t, now); /* "Tue Dec  1 23:50:00 2026\n" */
    now[strcspn(now, "\n")] = '\0';
    coil_http_request_set_header(req, "Content-Type", "text/plain");
    coil_http_request_writef(req, "The time is %s", now);
    return COIL_HTTP_DONE;
}

static const coil_http_resource_ops clock_ops = {.render_get = clock_get};

int main(int argc, char **argv)
{
    char where[256];
    if (web_listen_arg(&argc, argv, where, sizeof where) != 0 || argc != 1) {
        fprintf(stderr, "usage: %s [--port PORT | --listen ENDPOINT]\n", argv[0]);
        return 2;
    }
    coil_http_resource *clock = coil_http_resource_new(&clock_ops, NULL);
    if (!clock)
        return 1;
    coil_http_resource_set_leaf(clock, 1); /* isLeaf = True */
    return web_serve("web_clock", where, clock, NULL);
}
