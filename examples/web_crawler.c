/* web_crawler — the seed's crawler in coil: a scheduler's queue of URLs,
 * an engine that keeps at most five requests in flight, and a deferred
 * list over the crawls that stops the reactor when all are over.
 *
 * Each page's links (href="...") are resolved against the page's URL, and
 * those on the same site (scheme, host and port) are queued once each, up
 * to a limit. When a request ends, the engine starts the next ones; when
 * nothing is queued or in flight, its crawl's deferred fires.
 *
 *   ./web_static ~/site &
 *   ./web_crawler [--limit N] [URL...]   (http://127.0.0.1:8000/ by default;
 *                                         N pages per site: 100)
 *   200 5120 http://127.0.0.1:8000/
 *   200 731 http://127.0.0.1:8000/a/1.html
 *   ...
 *   crawled 31 pages (52311 bytes) from http://127.0.0.1:8000/, 0 failed,
 *   at most 5 requests in flight
 *
 * Exit status: 0 when every page came with a status below 400, 1 otherwise,
 * 2 for bad usage.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "web_common.h"

#define MAX_IN_FLIGHT 5 /* the seed's `while len(self.inprogress) < 5` */

/* The scheduler's queue: URLs waiting for a request. */
typedef struct queued {
    char *url;
    struct queued *next;
} queued;

/* The engine of one crawl (the seed's ExecutionEngine and Scheduler). */
typedef struct engine {
    coil_http_agent *agent;
    const char *start_text;
    coil_http_url *start; /* links elsewhere are not followed */
    char *site;           /* "http://127.0.0.1:8000", as the start URL wrote it */
    queued *head, **tail; /* the queue */
    char **seen;          /* every URL ever queued, fetched only once */
    unsigned nseen, limit;
    unsigned in_flight, max_in_flight;
    unsigned fetched, failed; /* responses; failures and statuses >= 400 */
    uint64_t bytes;
    int stopping;             /* the agent is going away: start nothing */
    coil_deferred *closewait; /* fires when the crawl is over */
} engine;

/* One request in flight. */
typedef struct fetch {
    engine *e;
    char *url;
    int status;
} fetch;

static void next_request(engine *e);

/* enqueue_request: once per URL, up to the limit. */
static void enqueue(engine *e, const char *url)
{
    for (unsigned i = 0; i < e->nseen; i++)
        if (strcmp(e->seen[i], url) == 0)
            return;
    if (e->nseen >= e->limit)
        return;
    queued *q = malloc(sizeof *q);
    char *copy = strdup(url);
    if (!q || !copy) {
        free(q);
        free(copy);
        return;
    }
    q->url = copy;
    q->next = NULL;
    *e->tail = q;
    e->tail = &q->next;
    e->seen[e->nseen++] = copy; /* the queue entry and `seen` share it */
}

/* A link from the page at `base`: queue it if it stays on the site. */
static void follow(engine *e, const coil_http_url *base, const char *ref)
{
    coil_http_url *u;
    if (ref[0] == '#' || coil_http_url_resolve(base, ref, &u, NULL) != 0)
        return; /* a fragment, mailto:, ftp:, a bad URL */
    if (strcmp(u->scheme, e->start->scheme) == 0 &&
        strcmp(u->host, e->start->host) == 0 && u->port == e->start->port) {
        char *url;
        if (asprintf(&url, "%s%s", e->site, u->target) >= 0) {
            enqueue(e, url);
            free(url);
        }
    }
    coil_http_url_free(u);
}

/* The spider's parse(): every href="..." or href='...' in the page. */
static void find_links(engine *e, const char *page_url, const char *html, size_t len)
{
    coil_http_url *base;
    if (coil_http_url_parse(page_url, &base, NULL) != 0)
        return;
    for (size_t i = 0; i + 6 < len; i++) {
        if (strncasecmp(html + i, "href=", 5) != 0 ||
            (html[i + 5] != '"' && html[i + 5] != '\''))
            continue;
        const char *v = html + i + 6;
        const char *end = memchr(v, html[i + 5], len - (i + 6));
        if (!end)
            break;
        char ref[2048];
        if ((size_t)(end - v) < sizeof ref) { /* longer links are skipped */
            memcpy(ref, v, (size_t)(end - v));
            ref[end - v] = '\0';
            follow(e, base, ref);
        }
        i = (size_t)(end - html);
    }
    coil_http_url_free(base);
}

/* ---- one request: head, then body, then the engine goes on ----------- */

static void got_response(coil_deferred *d, void *arg)
{
    fetch *f = arg;
    coil_http_response *resp = coil_deferred_result(d);
    f->status = coil_http_response_status(resp);
    coil_deferred_chain(d, coil_http_response_read_body(resp, 0)); /* readBody */
}

/* _handle_downloader_output: print the page's line, queue its links. */
static void got_page(coil_deferred *d, void *arg)
{
    fetch *f = arg;
    coil_http_bytes *page = coil_deferred_result(d);
    printf("%d %zu %s\n", f->status, page->len, f->url);
    f->e->fetched++;
    f->e->bytes += page->len;
    if (f->status >= 400)
        f->e->failed++;
    else
        find_links(f->e, f->url, page->data, page->len);
}

static void page_failed(coil_deferred *d, void *arg)
{
    fetch *f = arg;
    printf("ERR %s: %s\n", f->url, coil_failure_message(coil_deferred_failure(d)));
    f->e->failed++;
    coil_deferred_set_result(d, NULL, NULL); /* handled */
}

/* Either way: the request is no longer in flight; start the next ones. */
static void fetch_over(coil_deferred *d, void *arg)
{
    (void)d;
    fetch *f = arg;
    f->e->in_flight--;
    next_request(f->e);
}

static void fetch_free(void *arg)
{
    fetch *f = arg;
    free(f->url);
    free(f);
}

/* _next_request: fill the free slots from the queue; when nothing is
 * queued or in flight, the crawl is over. */
static void next_request(engine *e)
{
    while (!e->stopping && e->in_flight < MAX_IN_FLIGHT && e->head) {
        queued *q = e->head;
        if (!(e->head = q->next))
            e->tail = &e->head;
        fetch *f = calloc(1, sizeof *f);
        if (!f || !(f->url = strdup(q->url))) {
            free(f);
            free(q);
            continue;
        }
        free(q); /* its URL stays in `seen` */
        f->e = e;
        if (++e->in_flight > e->max_in_flight)
            e->max_in_flight = e->in_flight;
        /* getPage(url), as an agent request and a read of its body. */
        coil_deferred *d = coil_http_agent_request(e->agent, "GET", f->url, NULL, NULL);
        coil_deferred_add_callback(d, got_response, f);
        coil_deferred_add_callbacks(d, got_page, page_failed, f);
        coil_deferred_add_callbacks_full(d, fetch_over, fetch_over, f, fetch_free);
        coil_deferred_unref(d); /* the agent fires it; we need it no more */
    }
    if (e->in_flight == 0 && !e->head && !coil_deferred_called(e->closewait))
        coil_deferred_callback(e->closewait, NULL, NULL);
}

/* The crawler process's _stop_reactor, after a summary of each crawl. */
static void all_done(coil_deferred *d, void *arg)
{
    (void)d;
    engine *engines = arg;
    for (engine *e = engines; e->agent; e++)
        if (e->start) /* not for a bad URL */
            printf("crawled %u pages (%llu bytes) from %s, %u failed, "
                   "at most %u requests in flight\n",
                   e->fetched, (unsigned long long)e->bytes, e->start_text, e->failed,
                   e->max_in_flight);
}

int main(int argc, char **argv)
{
    unsigned limit = 100;
    if (argc >= 3 && strcmp(argv[1], "--limit") == 0) {
        limit = (unsigned)strtoul(argv[2], NULL, 10);
        argc -= 2;
        argv += 2;
    }
    if (limit < 1 || limit > 100000 || (argc > 1 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: web_crawler [--limit PAGES] [URL...]\n");
        return 2;
    }
    char *dflt[] = {argv[0], "http://127.0.0.1:8000/"};
    if (argc == 1) {
        argc = 2;
        argv = dflt;
    }
    size_t n = (size_t)argc - 1;

    /* A reactor, and agent = Agent(reactor) (web_common.h) */
    coil_reactor *r;
    coil_http_agent *agent;
    if (web_client_start("web_crawler", &r, &agent) != 0)
        return 1;

    /* One engine per start URL (the seed's crawler_process.crawl(spider));
     * the array ends with a zeroed one. */
    int status = 0;
    coil_failure *err = NULL;
    engine *engines = calloc(n + 1, sizeof *engines);
    coil_deferred **crawls = calloc(n, sizeof *crawls);
    if (!engines || !crawls)
        return 1;
    for (size_t i = 0; i < n; i++) {
        engine *e = &engines[i];
        const char *url = argv[i + 1];
        e->agent = agent;
        e->start_text = url;
        e->limit = limit;
        e->tail = &e->head;
        e->closewait = crawls[i] = coil_deferred_new();
        e->seen = calloc(limit, sizeof *e->seen);
        if (!e->closewait || !e->seen)
            return 1;
        if (coil_http_url_parse(url, &e->start, &err) != 0) {
            fprintf(stderr, "web_crawler: %s\n", coil_failure_message(err));
            coil_failure_free(err);
            err = NULL;
            status = 2;
            coil_deferred_callback(e->closewait, NULL, NULL); /* nothing to do */
            continue;
        }
        const char *authority = strstr(url, "://") + 3;
        e->site = strndup(url, (size_t)(authority - url) + strcspn(authority, "/?#"));
        enqueue(e, url);
        next_request(e);
    }

    /* DeferredList(crawls).addBoth(stop) */
    coil_deferred *all = coil_deferred_list(crawls, n, 0);
    coil_deferred_add_both(all, all_done, engines);
    coil_deferred_add_both(all, web_stop, r);
    coil_reactor_run(r);

    coil_deferred_unref(all);
    for (engine *e = engines; e->agent; e++) {
        e->stopping = 1;
        if (e->failed && !status)
            status = 1;
    }
    coil_http_agent_free(agent); /* nothing is in flight any more */
    for (engine *e = engines; e->agent; e++) {
        while (e->head) {
            queued *q = e->head;
            e->head = q->next;
            free(q);
        }
        for (unsigned i = 0; i < e->nseen; i++)
            free(e->seen[i]);
        free(e->seen);
        free(e->site);
        coil_http_url_free(e->start);
        coil_deferred_unref(e->closewait);
    }
    free(crawls);
    free(engines);
    coil_reactor_shutdown(r, 2.0);
    coil_reactor_free(r);
    return status;
}
