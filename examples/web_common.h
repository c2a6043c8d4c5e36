/* web_common.h — what the web examples (web_*.c) share, so that each of
 * them shows only its own part, as the book's ten-line programs do.
 *
 * Servers: web_listen_arg() reads where to listen from the command line,
 * web_serve() runs a site (or any factory) there until Ctrl-C:
 *
 *   ./web_clock                        http://127.0.0.1:8000/
 *   ./web_clock --port 8080            another port (0: any free one)
 *   ./web_clock --listen unix:/tmp/web.sock
 *   ./web_clock --listen tls:8443:privateKey=key.pem:certKey=cert.pem
 *
 * Each server prints "listening on 127.0.0.1:PORT" (the address it got)
 * once it listens; the tests wait for that line.
 *
 * Clients: web_client_start() makes the reactor and the agent (the book's
 * `agent = Agent(reactor)`: coil_http_agent_new with the default options),
 * web_stop() is the book's `d.addBoth(stop)`, web_client_end() frees the
 * agent and the reactor once run() has returned.
 *
 * Header only (static inline functions): every example is one .c file.
 */
#ifndef WEB_COMMON_H
#define WEB_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coil/coil.h>

/* Take "--port PORT" or "--listen ENDPOINT" out of argv (argc shrinks).
 * Writes the endpoint description to buf: "tcp:8000:interface=127.0.0.1"
 * by default. Returns 0, or -1 (after a message) when the value is bad. */
static inline int web_listen_arg(int *argc, char **argv, char *buf, size_t size)
{
    snprintf(buf, size, "tcp:8000:interface=127.0.0.1");
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *v = i + 1 < *argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--port") == 0 && v) {
            char *end;
            long port = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || port < 0 || port > 65535) {
                fprintf(stderr, "%s: --port takes a number from 0 to 65535, not '%s'\n",
                        argv[0], v);
                return -1;
            }
            snprintf(buf, size, "tcp:%ld:interface=127.0.0.1", port);
            i++;
        } else if (strcmp(argv[i], "--listen") == 0 && v) {
            snprintf(buf, size, "%s", v);
            i++;
        } else {
            argv[out++] = argv[i]; /* not ours: keep it */
        }
    }
    *argc = out;
    argv[out] = NULL;
    return 0;
}

static inline int web_announce(void *text)
{
    printf("listening on %s\n", (const char *)text);
    fflush(stdout);
    return 0;
}

/* Listen on `where` with `root` as a site's root resource (its reference
 * passes in), or with `factory` when root is NULL (the line-based echo,
 * which speaks HTTP by hand). Print where it listens, run the reactor until
 * Ctrl-C or SIGTERM, then close everything. Returns main's exit status. */
static inline int web_serve(const char *prog, const char *where, coil_http_resource *root,
                            coil_factory *factory)
{
    coil_reactor *r;
    coil_reactor_options ro = {.handle_signals = 1}; /* Ctrl-C stops run() */
    if (coil_reactor_new(&r, &ro) != 0) {
        coil_http_resource_unref(root);
        return 1;
    }
    coil_failure *err = NULL;
    coil_http_site *site = NULL;
    if (root) {
        /* Twisted's Site(root): the factory that serves the resource tree. */
        if (coil_http_site_new(r, root, NULL, &site, &err) != 0)
            goto failed;
        factory = coil_http_site_factory(site);
    }
    coil_listener *l;
    if (coil_listen(r, where, factory, &l, &err) != 0)
        goto failed;

    /* Say where we listen (port 0 picked a free one), once the reactor
     * runs: whoever waits for the line may then send SIGTERM at once. */
    coil_address a;
    static char text[256];
    if (coil_listener_get_host(l, &a) == 0)
        coil_address_format(&a, text, sizeof text);
    else
        snprintf(text, sizeof text, "%.255s", where);
    coil_reactor_call_when_running(r, web_announce, text);

    coil_reactor_run(r);

    /* Stop listening, close the connections still open (cleanly, aborting
     * those not done within 2 s), then free the site and the reactor. */
    coil_listener_close(l);
    coil_reactor_shutdown(r, 2.0);
    coil_http_site_free(site);
    coil_reactor_free(r);
    return 0;

failed:
    fprintf(stderr, "%s: %s\n", prog, coil_failure_message(err));
    coil_failure_free(err);
    coil_http_site_free(site);
    coil_reactor_free(r);
    return 1;
}

/* The book's stop(): a step for coil_deferred_add_both that stops the
 * reactor. Through call_soon, because a deferred may fire before run()
 * has started (a bad URL fails at once). `arg` is the reactor. */
static inline int web_stop_now(void *arg)
{
    coil_reactor_stop(arg);
    return 0;
}

static inline void web_stop(coil_deferred *d, void *arg)
{
    (void)d;
    coil_reactor_call_soon(arg, web_stop_now, arg);
}

/* A client's one argument, the URL (http://127.0.0.1:8000/ by default).
 * NULL after the usage message when the arguments are wrong. */
static inline const char *web_url_arg(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: %s [URL]\n", argv[0]);
        return NULL;
    }
    return argc == 2 ? argv[1] : "http://127.0.0.1:8000/";
}

/* A reactor and an agent with the default options for the client `prog`.
 * Returns 0, or -1 (after a message when the agent failed). */
static inline int web_client_start(const char *prog, coil_reactor **r,
                                   coil_http_agent **agent)
{
    if (coil_reactor_new(r, NULL) != 0)
        return -1;
    coil_failure *err = NULL;
    if (coil_http_agent_new(*r, NULL, agent, &err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, coil_failure_message(err));
        coil_failure_free(err);
        coil_reactor_free(*r);
        return -1;
    }
    return 0;
}

/* After run(): free the agent (nothing is in flight any more), close what
 * is still open (aborting what is not done within 2 s), free the reactor. */
static inline void web_client_end(coil_reactor *r, coil_http_agent *agent)
{
    coil_http_agent_free(agent);
    coil_reactor_shutdown(r, 2.0);
    coil_reactor_free(r);
}

#endif
