/* web_agent_post — the book's POST with the Agent (chapter 5): the request
 * body comes from a producer (Twisted's IBodyProducer) that the agent
 * starts once the connection is ready. coil_http_body_from_bytes is the
 * book's StringProducer: some bytes with a known length. (Your own
 * producer is a coil_http_body_producer with start / pause / resume / stop
 * / destroy: start writes with coil_http_body_write, then calls
 * coil_http_body_done.)
 *
 * The answer is read whole with coil_http_response_read_body (Twisted's
 * readBody), the short way to what web_agent does with a body protocol.
 *
 *   ./web_form &
 *   ./web_agent_post [URL [DATA]]   (http://127.0.0.1:8000/ and
 *                                    "form-field=python" by default)
 *                    200 OK
 *                    <html><body>You submitted: python</body></html>
 *
 * DATA is sent as a form (application/x-www-form-urlencoded), what the
 * form page reads. Exit status: 0 for a 2xx answer, 1 otherwise, 2 for bad
 * usage.
 */
#include <string.h>

#include "web_common.h"

static int failed;

/* The head is in: print the status, then wait for the whole body. */
static void got_response(coil_deferred *d, void *arg)
{
    (void)arg;
    coil_http_response *resp = coil_deferred_result(d);
    int status = coil_http_response_status(resp);
    printf("%d %s\n", status, coil_http_response_reason(resp));
    failed = status < 200 || status > 299;
    coil_deferred_chain(d, coil_http_response_read_body(resp, 0));
}

static void print_body(coil_deferred *d, void *arg)
{
    (void)arg;
    coil_http_bytes *body = coil_deferred_result(d);
    fwrite(body->data, 1, body->len, stdout);
}

static void print_error(coil_deferred *d, void *arg)
{
    (void)arg;
    fprintf(stderr, "web_agent_post: %s\n",
            coil_failure_message(coil_deferred_failure(d)));
    failed = 1;
    coil_deferred_set_result(d, NULL, NULL); /* handled */
}

int main(int argc, char **argv)
{
    if (argc > 3 || (argc > 1 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: %s [URL [DATA]]\n", argv[0]);
        return 2;
    }
    const char *url = argc > 1 ? argv[1] : "http://127.0.0.1:8000/";
    const char *data = argc > 2 ? argv[2] : "form-field=python";
    /* A reactor, and agent = Agent(reactor) (web_common.h) */
    coil_reactor *r;
    coil_http_agent *agent;
    if (web_client_start("web_agent_post", &r, &agent) != 0)
        return 1;
    coil_http_headers *h = coil_http_headers_new();
    if (!h ||
        coil_http_headers_add(h, "Content-Type", "application/x-www-form-urlencoded"))
        return 1;

    /* body = StringProducer(data); agent.request('POST', url, headers, body):
     * the agent owns the producer from here on. */
    coil_http_body_producer *body = coil_http_body_from_bytes(data, strlen(data));
    coil_deferred *d = coil_http_agent_request(agent, "POST", url, h, body);
    coil_http_headers_free(h);
    coil_deferred_add_callback(d, got_response, NULL);
    coil_deferred_add_callbacks(d, print_body, print_error, NULL);
    coil_deferred_add_both(d, web_stop, r);
    coil_reactor_run(r);

    coil_deferred_unref(d);
    web_client_end(r, agent);
    return failed;
}
