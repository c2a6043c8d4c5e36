/*
 * evhttp_hello: libevent 2.1's evhttp as a peer for coil's HTTP benchmark
 * (bench/run_http_bench.sh), with the same routes as bench/http_hello.c:
 *
 *   /hello   "Hello, world!" (13 bytes, text/plain)
 *   /NAME    the regular file ROOT/NAME (one path segment, no dot files),
 *            opened per request and added with evbuffer_add_file, so
 *            libevent sends it with sendfile as nginx does
 *
 *   evhttp_hello [--root DIR] PORT [HOST]   (HOST: 127.0.0.1; PORT 0: free)
 *
 * Prints "listening on HOST:PORT pid PID" once listening and exits cleanly
 * on SIGINT/SIGTERM. evhttp keeps connections alive (HTTP/1.1) and adds
 * Content-Length, Date and Content-Type (when set) itself.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static struct event_base *base;
static const char *root_dir;
static const char hello_text[] = "Hello, world!";

static void send_status(struct evhttp_request *req, int code, const char *reason)
{
    evhttp_send_error(req, code, reason);
}

static void on_hello(struct evhttp_request *req, void *arg)
{
    (void)arg;
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain");
    evbuffer_add_reference(out, hello_text, sizeof hello_text - 1, NULL, NULL);
    evhttp_send_reply(req, HTTP_OK, "OK", NULL);
}

static const char *type_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot && strcmp(dot, ".html") == 0)
        return "text/html";
    if (dot && strcmp(dot, ".txt") == 0)
        return "text/plain";
    return "application/octet-stream";
}

/* Everything else: a file directly under the root. */
static void on_file(struct evhttp_request *req, void *arg)
{
    (void)arg;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        send_status(req, 405, "Method Not Allowed");
        return;
    }
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (!root_dir || !path || path[0] != '/' || path[1] == 0 || path[1] == '.' ||
        strchr(path + 1, '/') || strlen(path) > 255) {
        send_status(req, HTTP_NOTFOUND, "Not Found");
        return;
    }
    char full[4096];
    snprintf(full, sizeof full, "%s%s", root_dir, path);
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        send_status(req, HTTP_NOTFOUND, "Not Found");
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      type_of(path));
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    /* The buffer owns fd from here (closed once sent). */
    if (evbuffer_add_file(out, fd, 0, st.st_size) != 0) {
        send_status(req, HTTP_INTERNAL, "Internal Server Error");
        return;
    }
    evhttp_send_reply(req, HTTP_OK, "OK", NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    event_base_loopbreak(base);
}

int main(int argc, char **argv)
{
    int i = 1;
    if (i + 1 < argc && strcmp(argv[i], "--root") == 0) {
        root_dir = argv[i + 1];
        i += 2;
    }
    if (i >= argc || argc - i > 2) {
        fprintf(stderr, "usage: evhttp_hello [--root DIR] PORT [HOST]\n");
        return 2;
    }
    int port = atoi(argv[i]);
    const char *host = i + 1 < argc ? argv[i + 1] : "127.0.0.1";

    base = event_base_new();
    struct evhttp *http = base ? evhttp_new(base) : NULL;
    if (!http) {
        fprintf(stderr, "evhttp_hello: cannot create the event base\n");
        return 1;
    }
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_cb(http, "/hello", on_hello, NULL);
    evhttp_set_gencb(http, on_file, NULL);
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(http, host, port);
    if (!bound) {
        fprintf(stderr, "evhttp_hello: cannot listen on %s:%d\n", host, port);
        return 1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sl) !=
        0) {
        perror("evhttp_hello: getsockname");
        return 1;
    }
    int bound_port = ss.ss_family == AF_INET6
                         ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);

    struct event *sigint = evsignal_new(base, SIGINT, on_signal, NULL);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, NULL);
    evsignal_add(sigint, NULL);
    evsignal_add(sigterm, NULL);
    signal(SIGPIPE, SIG_IGN);

    printf("listening on %s:%d pid %ld\n", host, bound_port, (long)getpid());
    fflush(stdout);
    event_base_dispatch(base);

    event_free(sigint);
    event_free(sigterm);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
