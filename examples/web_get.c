/* web_get — the book's getPage (chapter 5): fetch a URL and print the page.
 * coil_http_get returns a deferred that fires with the whole body, or fails
 * (a refused connection, a bad URL, a status of 400 or more).
 *
 *   ./web_get [URL]            (http://127.0.0.1:8000/ by default)
 *   ./web_get https://example.org/
 *
 * Exit status: 0 when the page came, 1 when it did not, 2 for bad usage.
 */
#include "web_common.h"

static int failed;

/* printPage: the value is the body (coil_http_bytes, owned by the
 * deferred: it goes when the deferred does). It may hold any bytes. */
static void print_page(coil_deferred *d, void *arg)
{
    (void)arg;
    coil_http_bytes *page = coil_deferred_result(d);
    fwrite(page->data, 1, page->len, stdout);
}

/* printErr: say what went wrong, and recover (the failure is handled). */
static void print_error(coil_deferred *d, void *arg)
{
    (void)arg;
    fprintf(stderr, "web_get: %s\n", coil_failure_message(coil_deferred_failure(d)));
    failed = 1;
    coil_deferred_set_result(d, NULL, NULL);
}

int main(int argc, char **argv)
{
    const char *url = web_url_arg(argc, argv);
    if (!url)
        return 2; /* bad usage */
    /* A reactor, and agent = Agent(reactor) (web_common.h) */
    coil_reactor *r;
    coil_http_agent *agent;
    if (web_client_start("web_get", &r, &agent) != 0)
        return 1;

    /* d = getPage(url); d.addCallbacks(printPage, printErr); d.addBoth(stop) */
    coil_deferred *d = coil_http_get(agent, url);
    coil_deferred_add_callbacks(d, print_page, print_error, NULL);
    coil_deferred_add_both(d, web_stop, r);
    coil_reactor_run(r);

    coil_deferred_unref(d);
    web_client_end(r, agent);
    return failed;
}
