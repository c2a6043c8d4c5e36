/* http_hello: coil's HTTP server for bench/run_http_bench.sh, the same two
 * routes as the nginx, evhttp and Twisted peers:
 *
 *   /hello   "Hello, world!" (13 bytes, text/plain), rendered per request
 *   /NAME    the regular files directly in ROOT, each a coil_http_file_new
 *            child of the root (Twisted's static.File; sendfile on plain
 *            TCP). coil's File resource is a leaf, so unlike Twisted's it
 *            cannot hold /hello as a put child: the root is a plain
 *            resource holding both.
 *
 *   http_hello [--root DIR] [PORT [HOST]]     (PORT 0: a free port;
 *                                              HOST: 127.0.0.1)
 *
 * Prints "listening on HOST:PORT pid PID" once the reactor runs and stops
 * cleanly on SIGINT/SIGTERM. No access log (nginx's access_log off).
 * SIGPIPE is ignored, as in every server: sendfile(2) has no MSG_NOSIGNAL,
 * so a client that goes away in the middle of a file would otherwise kill
 * the process (coil's library leaves the signal alone). */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <coil/coil.h>
#include <coil/http.h>
#include <coil/tcp.h>

static const char hello_text[] = "Hello, world!";

static int hello_get(coil_http_resource *res, coil_http_request *req)
{
    (void)res;
    int rc = coil_http_request_set_header(req, "Content-Type", "text/plain");
    if (rc == 0)
        rc = coil_http_request_write(req, hello_text, sizeof hello_text - 1);
    return rc < 0 ? rc : COIL_HTTP_DONE;
}

static const coil_http_resource_ops hello_ops = {.render_get = hello_get};

/* The root: it only holds children. */
static const coil_http_resource_ops empty_ops = {0};

/* A File child for every regular file directly in `dir` (no dot files). */
static int put_files(coil_http_resource *root, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        if (e->d_name[0] == '.' || strcmp(e->d_name, "hello") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        coil_http_resource *f = NULL;
        coil_failure *err = NULL;
        if (coil_http_file_new(path, NULL, &f, &err) != 0) {
            fprintf(stderr, "http_hello: cannot serve %s: %s\n", path,
                    err ? coil_failure_message(err) : "?");
            coil_failure_free(err);
            rc = -1;
        } else if (coil_http_resource_put_child(root, e->d_name, f) != 0) {
            fprintf(stderr, "http_hello: out of memory\n");
            rc = -1;
        }
    }
    closedir(d);
    return rc;
}

typedef struct announce_ctx {
    coil_listener *l;
    const char *host;
} announce_ctx;

static int announce(void *arg)
{
    announce_ctx *a = arg;
    coil_address addr;
    if (coil_listener_get_host(a->l, &addr) != 0) {
        fprintf(stderr, "http_hello: cannot tell where the listener is\n");
        return 0;
    }
    printf("listening on %s:%d pid %ld\n", a->host, coil_address_port(&addr),
           (long)getpid());
    fflush(stdout);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: http_hello [--root DIR] [PORT [HOST]]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *root_dir = NULL;
    int i = 1;
    if (i < argc && strcmp(argv[i], "--root") == 0) {
        if (i + 1 >= argc)
            return usage();
        root_dir = argv[i + 1];
        i += 2;
    }
    const char *port = i < argc ? argv[i++] : "0";
    const char *host = i < argc ? argv[i++] : "127.0.0.1";
    if (i < argc)
        return usage();

    signal(SIGPIPE, SIG_IGN);
    coil_reactor *r = NULL;
    coil_reactor_options ro = {.handle_signals = 1};
    int rc = coil_reactor_new(&r, &ro);
    if (rc != 0) {
        fprintf(stderr, "http_hello: cannot create the reactor: %s\n", coil_strerror(rc));
        return 1;
    }
    coil_failure *err = NULL;
    coil_http_resource *root = coil_http_resource_new(&empty_ops, NULL);
    if (!root) {
        fprintf(stderr, "http_hello: out of memory\n");
        coil_reactor_free(r);
        return 1;
    }
    if (root_dir && put_files(root, root_dir) != 0) {
        coil_http_resource_unref(root);
        coil_reactor_free(r);
        return 1;
    }
    coil_http_resource *hello = coil_http_resource_new(&hello_ops, NULL);
    if (!hello || coil_http_resource_put_child(root, "hello", hello) != 0) {
        fprintf(stderr, "http_hello: out of memory\n");
        coil_http_resource_unref(root);
        coil_reactor_free(r);
        return 1;
    }
    coil_http_site *site = NULL;
    coil_http_server_options so = {.max_requests = 1000000};
    if (coil_http_site_new(r, root, &so, &site, &err) != 0) {
        fprintf(stderr, "http_hello: cannot make the site: %s\n",
                err ? coil_failure_message(err) : "?");
        coil_failure_free(err);
        coil_reactor_free(r);
        return 1;
    }
    char desc[256];
    snprintf(desc, sizeof desc, "tcp:%s:interface=%s:backlog=1024", port, host);
    coil_listener *l = NULL;
    if (coil_listen(r, desc, coil_http_site_factory(site), &l, &err) != 0) {
        fprintf(stderr, "http_hello: cannot listen on %s: %s\n", desc,
                err ? coil_failure_message(err) : "?");
        coil_failure_free(err);
        coil_http_site_free(site);
        coil_reactor_free(r);
        return 1;
    }
    announce_ctx a = {l, host};
    if (coil_reactor_call_when_running(r, announce, &a) != 0) {
        fprintf(stderr, "http_hello: out of memory\n");
        rc = 1;
    } else {
        coil_reactor_run(r);
        rc = 0;
    }
    coil_listener_close(l);
    coil_reactor_shutdown(r, 1.0);
    coil_http_site_free(site);
    coil_reactor_free(r);
    return rc;
}
