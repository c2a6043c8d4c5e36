/* The HTTP agent over SSH channels: options.connect opens a direct-tcpip
 * channel through the fixture's OpenSSH sshd (ctest fixture `sshd`) to
 * coil's own site on a loopback port. HTTP runs unchanged over the channel;
 * keep-alive reuses one channel, and the agent's requests share one SSH
 * session. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_testutil.h"
#include "testutil.h"

typedef struct hook {
    coil_reactor *r;
    coil_endpoint *eps[16];
    int neps;
    int calls;
} hook;

/* "ssh:HOST:PORT:user=U:identity=K:knownHosts=F:to=DEST\:PORT" */
static coil_deferred *ssh_connect(void *ud, const coil_http_url *url, coil_protocol *p)
{
    hook *h = ud;
    char desc[2048];
    snprintf(desc, sizeof desc, "ssh:%s:%s:user=%s:identity=%s:knownHosts=%s:to=%s\\:%d",
             coil_test_sshd("SSHD_HOST"), coil_test_sshd("SSHD_PORT"),
             coil_test_sshd("SSH_USER"), coil_test_sshd("SSH_KEY_ED25519"),
             coil_test_sshd("SSH_KNOWN_HOSTS"), url->host, url->port);
    coil_endpoint *e = NULL;
    coil_failure *err = NULL;
    h->calls++;
    if (h->neps == 16 || coil_endpoint_client(desc, &e, &err) != 0) {
        p->ops->destroy(p);
        return coil_deferred_fail(
            err ? err : coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "too many"));
    }
    h->eps[h->neps++] = e; /* kept until the test ends */
    return coil_connect_protocol(h->r, e, p);
}

static int hello(coil_http_resource *rs, coil_http_request *req)
{
    (void)rs;
    coil_http_request_set_header(req, "Content-Type", "text/plain");
    coil_http_request_writef(req, "hello over %s", coil_http_request_path(req));
    return COIL_HTTP_DONE;
}

static const coil_http_resource_ops hello_ops = {.render_get = hello};

static coil_http_bytes *get(coil_reactor *r, coil_http_agent *a, const char *url,
                            char *msg, size_t size)
{
    coil_deferred *d = coil_http_get(a, url);
    CU_ASSERT_FATAL(d != NULL);
    CU_ASSERT(coil_test_wait_fired(r, d, 20));
    coil_http_bytes *b = NULL;
    if (coil_deferred_is_failure(d)) {
        coil_failure *f = coil_deferred_take_failure(d);
        coil_failure_format(f, msg, size);
        coil_failure_free(f);
    } else
        b = coil_deferred_take_result(d, NULL);
    coil_deferred_unref(d);
    return b;
}

static void test_over_ssh_channel(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_http_site *site;
    int port;
    coil_listener *l = http_test_leaf_site(r, &hello_ops, &site, &port);
    coil_failure *err = NULL;

    hook h = {.r = r};
    coil_http_agent_options o = {0};
    o.connect = ssh_connect;
    o.connect_ud = &h;
    coil_http_agent *a;
    CU_ASSERT_FATAL(coil_http_agent_new(r, &o, &a, &err) == 0);
    char url[128], msg[2048] = "";
    for (int i = 0; i < 3; i++) {
        snprintf(url, sizeof url, "http://127.0.0.1:%d/page%d", port, i);
        coil_http_bytes *b = get(r, a, url, msg, sizeof msg);
        if (!b)
            fprintf(stderr, "\n    GET %s over SSH: %s\n", url, msg);
        CU_ASSERT_FATAL(b != NULL);
        char want[64];
        snprintf(want, sizeof want, "hello over /page%d", i);
        CU_ASSERT_STRING_EQUAL(b->data, want);
        coil_http_bytes_free(b);
    }
    coil_http_agent_stats st;
    coil_http_agent_get_stats(a, &st);
    CU_ASSERT_EQUAL(st.connections, 1); /* one channel, kept alive */
    CU_ASSERT_EQUAL(st.reused, 2);
    CU_ASSERT_EQUAL(h.calls, 1);

    /* a destination nobody listens on: the channel is refused */
    coil_listener_close(l);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/gone", port);
    coil_http_agent_free(a);
    CU_ASSERT_FATAL(coil_http_agent_new(r, &o, &a, &err) == 0);
    CU_ASSERT_PTR_NULL(get(r, a, url, msg, sizeof msg));
    COIL_TEST_ASSERT_HAS(msg, "cannot connect to 127.0.0.1:");
    if (getenv("COIL_TEST_SHOW_FAILURES"))
        fprintf(stderr, "\n    failure: %s\n", msg);

    coil_http_agent_free(a);
    coil_reactor_shutdown(r, 5);
    coil_http_site_free(site);
    for (int i = 0; i < h.neps; i++)
        coil_endpoint_free(h.eps[i]);
    coil_reactor_free(r);
}

static int add(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_over_ssh_channel),
        {NULL, NULL},
    };
    return coil_test_add_suite("http_client_ssh", cases);
}

int main(void)
{
    return coil_test_main(add);
}
