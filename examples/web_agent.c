/* web_agent — the book's Agent (chapter 5): the general HTTP client. A
 * request is sent with headers of ours; the deferred fires with the
 * response as soon as its head is in; we print the status and headers
 * (the book's printHeaders), then hand the body to a protocol of ours
 * (deliverBody) that prints it piece by piece as it arrives and fires a
 * deferred when it is over (the book's ResourcePrinter).
 *
 *   ./web_agent [URL]          (http://127.0.0.1:8000/ by default)
 *
 * Exit status: 0 when the whole response came, 1 when not, 2 for bad usage.
 */
#include "web_common.h"

static int failed;

/* ResourcePrinter: a protocol like any other; its "transport" is the
 * response body. */
typedef struct printer {
    coil_protocol base; /* first */
    coil_deferred *finished;
} printer;

static void printer_data(coil_protocol *p, const void *data, size_t len)
{
    (void)p;
    fwrite(data, 1, len, stdout);
}

/* The end of the body: COIL_ECLOSED when all of it came (Twisted's
 * ResponseDone), something else when it was cut short. */
static void printer_lost(coil_protocol *p, const coil_failure *reason)
{
    printer *pr = (printer *)p;
    if (coil_failure_check(reason, COIL_DOMAIN_COIL, COIL_ECLOSED))
        coil_deferred_callback(pr->finished, NULL, NULL);
    else
        coil_deferred_errback(pr->finished, coil_failure_copy(reason));
}

static void printer_destroy(coil_protocol *p)
{
    printer *pr = (printer *)p;
    coil_deferred_unref(pr->finished);
    free(pr);
}

static const coil_protocol_ops printer_ops = {
    .data_received = printer_data,
    .connection_lost = printer_lost,
    .destroy = printer_destroy,
};

/* printHeaders, then printResource: deliver the body to a printer and
 * make the chain wait for `finished`. */
static void print_response(coil_deferred *d, void *arg)
{
    (void)arg;
    coil_http_response *resp = coil_deferred_result(d);
    printf("HTTP/%d.%d %d %s\n", coil_http_response_version(resp) / 10,
           coil_http_response_version(resp) % 10, coil_http_response_status(resp),
           coil_http_response_reason(resp));
    const char *name, *value;
    for (size_t i = 0; coil_http_response_header_at(resp, i, &name, &value) == 0; i++)
        printf("%s: %s\n", name, value);
    printf("\n");

    printer *pr = calloc(1, sizeof *pr);
    coil_deferred *finished = coil_deferred_new();
    if (!pr || !finished) {
        free(pr);
        coil_deferred_unref(finished);
        coil_deferred_set_failure(
            d, coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory"));
        return;
    }
    pr->base.ops = &printer_ops;
    pr->finished = coil_deferred_ref(finished); /* the printer fires it */
    coil_http_response_deliver_body(resp, &pr->base);
    coil_deferred_chain(d, finished); /* return finished */
}

static void print_error(coil_deferred *d, void *arg)
{
    (void)arg;
    fprintf(stderr, "web_agent: %s\n", coil_failure_message(coil_deferred_failure(d)));
    failed = 1;
    coil_deferred_set_result(d, NULL, NULL); /* handled */
}

int main(int argc, char **argv)
{
    const char *url = web_url_arg(argc, argv);
    if (!url)
        return 2; /* bad usage */
    /* A reactor, and agent = Agent(reactor) (web_common.h) */
    coil_reactor *r;
    coil_http_agent *agent;
    if (web_client_start("web_agent", &r, &agent) != 0)
        return 1;

    /* The book's Headers({'User-Agent': ['Twisted webbot']}). */
    coil_http_headers *h = coil_http_headers_new();
    if (!h || coil_http_headers_add(h, "User-Agent", "coil webbot") != 0)
        return 1;

    /* d = agent.request('GET', url, headers); d.addCallback(printResource);
     * d.addErrback(printErr); d.addBoth(stop). The errback comes after the
     * callback, so it also hears of a body cut short. */
    coil_deferred *d = coil_http_agent_request(agent, "GET", url, h, NULL);
    coil_http_headers_free(h); /* the agent copied them */
    coil_deferred_add_callback(d, print_response, NULL);
    coil_deferred_add_errback(d, print_error, NULL);
    coil_deferred_add_both(d, web_stop, r);
    coil_reactor_run(r);

    coil_deferred_unref(d);
    web_client_end(r, agent);
    return failed;
}
