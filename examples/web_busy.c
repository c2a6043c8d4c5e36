/* web_busy — the book's busy page (chapter 4), done right: the page takes
 * five seconds to make, but the server does not block for them. The book
 * first calls time.sleep(5) in render_GET, which stalls every other
 * client; then it returns NOT_DONE_YET and finishes from a deferred. Here
 * the renderer asks for a deferred that fires in five seconds
 * (coil_deferred_later, Twisted's deferLater), adds the step that writes
 * the page, and hands it to coil_http_request_wait: the server finishes the
 * response when it fires, and cancels it when the client leaves first.
 *
 *   ./web_busy [--port PORT] [--delay SECONDS]     (5 s by default)
 *   curl http://127.0.0.1:8000/ & curl http://127.0.0.1:8000/
 *                       both answer after 5 s: "Finally done at ..."
 */
#include <string.h>
#include <time.h>

#include "web_common.h"

/* The resource's state: how long a page takes, how many were asked for. */
typedef struct busy {
    double delay;
    unsigned requests;
} busy;

/* One page being made: what the deferred's steps need. */
typedef struct job {
    coil_http_request *req; /* kept alive by coil_http_request_wait */
    unsigned n;
} job;

/* The delay is over: write the page. The server finishes the response
 * after this step, when the deferred has run its chain. */
static void page_ready(coil_deferred *d, void *arg)
{
    (void)d;
    job *j = arg;
    char now[32];
    time_t t = time(NULL);
    ctime_r(&t, now);
    now[strcspn(now, "\n")] = '\0';
    coil_http_request_set_header(j->req, "Content-Type", "text/plain");
    coil_http_request_writef(j->req, "Finally done at %s\n", now);
    printf("request %u: done\n", j->n);
    fflush(stdout);
}

/* The client went away first: the server cancelled the deferred. Nothing
 * to send; recover, so that the cancellation is not reported as an error. */
static void page_cancelled(coil_deferred *d, void *arg)
{
    job *j = arg;
    if (coil_failure_check(coil_deferred_failure(d), COIL_DOMAIN_COIL, COIL_ECANCELLED)) {
        printf("request %u: the client left, page abandoned\n", j->n);
        fflush(stdout);
        coil_deferred_set_result(d, NULL, NULL);
    }
}

static int busy_get(coil_http_resource *res, coil_http_request *req)
{
    busy *b = coil_http_resource_user(res);
    job *j = malloc(sizeof *j);
    if (!j)
        return COIL_ENOMEM; /* a negative return: the client gets a 500 */
    j->req = req;
    j->n = ++b->requests;

    /* deferLater(reactor, delay): fires on the reactor's clock. */
    coil_deferred *d = coil_deferred_later(coil_http_request_reactor(req), b->delay);
    if (!d) {
        free(j);
        return COIL_ENOMEM;
    }
    coil_deferred_add_callbacks_full(d, page_ready, page_cancelled, j, free);
    printf("request %u: busy for %g s, the server serves others meanwhile\n", j->n,
           b->delay);
    fflush(stdout);

    /* NOT_DONE_YET: the request holds `d` (its own reference) until it
     * fires; ours goes. */
    int rc = coil_http_request_wait(req, d);
    coil_deferred_unref(d);
    return rc;
}

static const coil_http_resource_ops busy_ops = {.render_get = busy_get};

int main(int argc, char **argv)
{
    char where[256];
    busy b = {.delay = 5};
    int bad = web_listen_arg(&argc, argv, where, sizeof where) != 0;
    if (argc == 3 && strcmp(argv[1], "--delay") == 0) {
        char *end;
        b.delay = strtod(argv[2], &end);
        bad |= *argv[2] == '\0' || *end != '\0' || !(b.delay >= 0 && b.delay <= 3600);
        argc -= 2;
    }
    if (bad || argc != 1) {
        fprintf(stderr, "usage: %s [--port PORT | --listen ENDPOINT] [--delay SECONDS]\n",
                argv[0]);
        return 2;
    }
    coil_http_resource *page = coil_http_resource_new(&busy_ops, &b);
    if (!page)
        return 1;
    coil_http_resource_set_leaf(page, 1);
    return web_serve("web_busy", where, page, NULL);
}
