/* coil's HTTP agent (protocols/http/client.c) against real servers started
 * by this test on free loopback ports:
 *
 *   nginx (Debian's nginx-light): bench/nginx.conf.in through
 *     bench/nginx_conf.sh (the benchmark's configuration) with an access log
 *     of "$connection $connection_requests ..." (keep-alive seen on the
 *     wire) and a TLS server with the test CA's certificate
 *     (tests/tls/make-certs.sh, $COIL_TEST_CERTS) in extra-tls.conf
 *   Twisted web (python3-twisted with /usr/bin/python3): bench/twisted_web.py
 *     (/hello, /chunked written without a length, /echo for POST bodies,
 *     /redirect, /redirect2, /loop, /conn that answers the client's port)
 *
 * Cases: a static file byte for byte, keep-alive reuse (the agent's stats
 * and nginx's log), HEAD, 404 (as a response, and as coil_http_get's
 * failure), https with verification (and its failure without the CA),
 * chunked responses (read and delivered to a protocol), POST with a known
 * length and chunked from a producer, redirects (off by default, followed
 * when on, a loop stopped), Twisted keeping the connection.
 *
 * A missing nginx or python3-twisted fails with what to install; nothing is
 * skipped. The servers are stopped (SIGTERM, waited for) at the end. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <coil/http.h>
#include <coil/tls.h>

#include "testutil.h"

#ifndef COIL_SOURCE_DIR
#error "COIL_SOURCE_DIR must name the source tree (tests/CMakeLists.txt sets it)"
#endif

#define STATIC_SIZE (300 * 1024 + 17) /* several reads, not a round size */

static char scratch[256];   /* mkdtemp: www/, nginx/, twisted.out */
static char www[300];       /* the files both servers serve */
static char nginx_dir[300]; /* nginx's -p folder */
static char access_log[400];
static char nginx_sock[400];       /* nginx's access log (format "conn") */
static unsigned char *static_data; /* www/static.bin */
static int nginx_port, nginx_tls_port, twisted_port;
static pid_t nginx_pid = -1, twisted_pid = -1;

/* ---- helpers for the servers ---------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pause_briefly(void)
{
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(0x7f000001)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static int accepts_unix(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) {
        fprintf(stderr,
                "agent interop: socket path %s is too long (set TMPDIR shorter)\n", path);
        if (fd >= 0)
            close(fd);
        return 0;
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static int child_alive(pid_t *pid, const char *what)
{
    int status;
    if (*pid > 0 && waitpid(*pid, &status, WNOHANG) == *pid) {
        fprintf(stderr, "agent interop: %s exited (status %d) before it served\n", what,
                WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
        *pid = -1;
        return 0;
    }
    return *pid > 0;
}

static void print_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        fprintf(stderr, "    %s", line);
    fclose(f);
}

/* Run argv with stdout and stderr to `out` (a path, or NULL to inherit).
 * The child gets SIGTERM if this test dies first (PR_SET_PDEATHSIG), so a
 * crash leaves no server behind. -1 with errno when it cannot start. */
static pid_t spawn(const char *const argv[], const char *out)
{
    int ep[2]; /* the child's exec errno, or EOF once exec worked */
    if (pipe2(ep, O_CLOEXEC) != 0)
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(ep[0]);
        close(ep[1]);
        return -1;
    }
    if (pid == 0) {
        close(ep[0]);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        if (out) {
            int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
                _exit(127);
            close(fd);
        }
        execvp(argv[0], (char *const *)argv);
        int e = errno;
        if (write(ep[1], &e, sizeof e) < 0)
            _exit(127);
        _exit(127);
    }
    close(ep[1]);
    int e = 0;
    ssize_t n;
    while ((n = read(ep[0], &e, sizeof e)) < 0 && errno == EINTR)
        ;
    close(ep[0]);
    if (n == (ssize_t)sizeof e) {
        waitpid(pid, NULL, 0);
        errno = e;
        return -1;
    }
    return pid;
}

static void stop_child(pid_t *pid)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGTERM);
    double end = now_s() + 10;
    int status;
    while (waitpid(*pid, &status, WNOHANG) == 0) {
        if (now_s() > end) {
            kill(*pid, SIGKILL);
            waitpid(*pid, &status, 0);
            break;
        }
        pause_briefly();
    }
    *pid = -1;
}

static int write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        fprintf(stderr, "agent interop: cannot write %s: %s\n", path, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    return fclose(f) == 0 ? 0 : -1;
}

static int start_nginx(void)
{
    const char *cert = coil_test_cert("server.pem");
    const char *key = coil_test_cert("server.key");
    if (!cert || !key)
        return -1;
    snprintf(nginx_dir, sizeof nginx_dir, "%s/nginx", scratch);
    snprintf(access_log, sizeof access_log, "%s/access.log", nginx_dir);
    if (mkdir(nginx_dir, 0755) != 0) {
        fprintf(stderr, "agent interop: mkdir %s: %s\n", nginx_dir, strerror(errno));
        return -1;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        nginx_port = free_port();
        nginx_tls_port = free_port();
        if (nginx_port <= 0 || nginx_tls_port <= 0 || nginx_port == nginx_tls_port)
            continue;
        /* The benchmark's configuration, with the access log on. */
        char port_s[16], log_s[450], gen[400];
        snprintf(port_s, sizeof port_s, "%d", nginx_port);
        snprintf(log_s, sizeof log_s, "%s conn", access_log);
        snprintf(gen, sizeof gen, "%s/bench/nginx_conf.sh", COIL_SOURCE_DIR);
        const char *gen_argv[] = {"sh", gen, nginx_dir, port_s, www, log_s, NULL};
        pid_t g = spawn(gen_argv, NULL);
        int status = -1;
        if (g < 0 || waitpid(g, &status, 0) != g || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            fprintf(stderr, "agent interop: %s failed\n", gen);
            return -1;
        }
        char extra[400], conf[8192];
        snprintf(extra, sizeof extra, "%s/extra-tls.conf", nginx_dir);
        snprintf(nginx_sock, sizeof nginx_sock, "%s/http.sock", nginx_dir);
        unlink(nginx_sock);
        int n = snprintf(conf, sizeof conf,
                         "server {\n"
                         "    listen 127.0.0.1:%d ssl;\n"
                         "    server_name localhost;\n"
                         "    ssl_certificate %s;\n"
                         "    ssl_certificate_key %s;\n"
                         "    root %s;\n"
                         "}\n"
                         "server {\n"
                         "    listen unix:%s;\n"
                         "    root %s;\n"
                         "}\n",
                         nginx_tls_port, cert, key, www, nginx_sock, www);
        if (write_file(extra, conf, (size_t)n) != 0)
            return -1;
        char conf_path[400], err_path[400], out_path[400];
        snprintf(conf_path, sizeof conf_path, "%s/nginx.conf", nginx_dir);
        snprintf(err_path, sizeof err_path, "%s/error.log", nginx_dir);
        snprintf(out_path, sizeof out_path, "%s/nginx.out", nginx_dir);
        const char *argv[] = {"nginx",   "-p", nginx_dir, "-c",
                              conf_path, "-e", err_path,  NULL};
        nginx_pid = spawn(argv, out_path);
        if (nginx_pid < 0) {
            fprintf(stderr,
                    "agent interop: cannot run nginx: %s. Install Debian's nginx-light "
                    "(tools/install-deps): this test needs it as a server\n",
                    strerror(errno));
            return -1;
        }
        double end = now_s() + 30;
        while (child_alive(&nginx_pid, "nginx") && now_s() < end) {
            if (accepts(nginx_port) && accepts(nginx_tls_port) &&
                accepts_unix(nginx_sock))
                return 0;
            pause_briefly();
        }
        fprintf(stderr, "agent interop: nginx did not serve on 127.0.0.1:%d and :%d:\n",
                nginx_port, nginx_tls_port);
        print_file(err_path);
        print_file(out_path);
        stop_child(&nginx_pid);
        /* A port taken in between: try others. */
    }
    return -1;
}

static int start_twisted(void)
{
    char script[400], out[400];
    snprintf(script, sizeof script, "%s/bench/twisted_web.py", COIL_SOURCE_DIR);
    snprintf(out, sizeof out, "%s/twisted.out", scratch);
    const char *argv[] = {"/usr/bin/python3", script, "--root", www, "0",
                          "127.0.0.1",        NULL};
    twisted_pid = spawn(argv, out);
    if (twisted_pid < 0) {
        fprintf(stderr,
                "agent interop: cannot run /usr/bin/python3: %s. Install Debian's "
                "python3 and python3-twisted (tools/install-deps)\n",
                strerror(errno));
        return -1;
    }
    double end = now_s() + 60;
    while (child_alive(&twisted_pid, "Twisted web (bench/twisted_web.py)") &&
           now_s() < end) {
        FILE *f = fopen(out, "r");
        char line[256];
        while (f && fgets(line, sizeof line, f)) {
            if (sscanf(line, "listening on 127.0.0.1:%d", &twisted_port) == 1) {
                fclose(f);
                return 0;
            }
        }
        if (f)
            fclose(f);
        pause_briefly();
    }
    fprintf(stderr,
            "agent interop: Twisted web did not start; it said (python3-twisted must be "
            "installed for /usr/bin/python3: tools/install-deps):\n");
    print_file(out);
    stop_child(&twisted_pid);
    return -1;
}

static int make_www(void)
{
    snprintf(www, sizeof www, "%s/www", scratch);
    if (mkdir(www, 0755) != 0)
        return -1;
    static_data = malloc(STATIC_SIZE);
    if (!static_data)
        return -1;
    uint32_t x = 2463534242u; /* xorshift: reproducible bytes */
    for (size_t i = 0; i < STATIC_SIZE; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        static_data[i] = (unsigned char)x;
    }
    char path[400];
    snprintf(path, sizeof path, "%s/static.bin", www);
    if (write_file(path, static_data, STATIC_SIZE) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/small.txt", www);
    return write_file(path, "small file\n", 11);
}

static void remove_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "agent interop: could not remove %s\n", dir);
}

/* ---- helpers for the agent ------------------------------------------------ */

static coil_reactor *r;

/* Run the reactor until `d` has fired and is not paused on a chained
 * deferred (coil_http_get chains the body read), `seconds` at most. */
static int wait_done(coil_deferred *d, double seconds)
{
    double end = now_s() + seconds;
    while (!(coil_deferred_called(d) && !coil_deferred_paused(d)) && now_s() < end)
        coil_reactor_iterate(r, 0.05);
    return coil_deferred_called(d) && !coil_deferred_paused(d);
}

static void print_failure(const char *what, const coil_failure *f)
{
    char buf[1024] = "(no failure given)";
    if (f)
        coil_failure_format(f, buf, sizeof buf);
    fprintf(stderr, "\n    %s failed: %s\n", what, buf);
}

/* Wait for a request's deferred and take its response (NULL on a failure,
 * printed). */
static coil_http_response *wait_response(coil_deferred *d, const char *what)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    if (!wait_done(d, 30)) {
        fprintf(stderr, "\n    %s: no response within 30 s\n", what);
        coil_deferred_cancel(d);
        coil_deferred_unref(d);
        return NULL;
    }
    if (coil_deferred_is_failure(d)) {
        print_failure(what, coil_deferred_failure(d));
        coil_failure_free(coil_deferred_take_failure(d));
        coil_deferred_unref(d);
        return NULL;
    }
    coil_http_response *resp = coil_deferred_take_result(d, NULL);
    coil_deferred_unref(d);
    return resp;
}

static coil_http_response *do_request(coil_http_agent *a, const char *method,
                                      const char *url, const coil_http_headers *h,
                                      coil_http_body_producer *body)
{
    char what[600];
    snprintf(what, sizeof what, "%s %s", method, url);
    return wait_response(coil_http_agent_request(a, method, url, h, body), what);
}

/* The whole body (NULL on a failure, printed); free with coil_http_bytes_free. */
static coil_http_bytes *wait_body(coil_http_response *resp)
{
    coil_deferred *d = coil_http_response_read_body(resp, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    if (!wait_done(d, 30)) {
        fprintf(stderr, "\n    the body did not arrive within 30 s\n");
        coil_deferred_cancel(d);
        coil_deferred_unref(d);
        return NULL;
    }
    if (coil_deferred_is_failure(d)) {
        print_failure("reading the body", coil_deferred_failure(d));
        coil_failure_free(coil_deferred_take_failure(d));
        coil_deferred_unref(d);
        return NULL;
    }
    coil_http_bytes *b = coil_deferred_take_result(d, NULL);
    coil_deferred_unref(d);
    return b;
}

/* GET/HEAD/... to the end: the status, and the body in *body (may be NULL). */
static int fetch(coil_http_agent *a, const char *method, const char *url,
                 coil_http_bytes **body)
{
    coil_http_response *resp = do_request(a, method, url, NULL, NULL);
    if (!resp)
        return -1;
    int status = coil_http_response_status(resp);
    coil_http_bytes *b = wait_body(resp);
    coil_http_response_free(resp);
    if (!b)
        return -1;
    if (body)
        *body = b;
    else
        coil_http_bytes_free(b);
    return status;
}

static coil_http_agent *agent_new(const coil_http_agent_options *o)
{
    coil_http_agent *a = NULL;
    coil_failure *err = NULL;
    if (coil_http_agent_new(r, o, &a, &err) != 0) {
        print_failure("coil_http_agent_new", err);
        coil_failure_free(err);
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    return a;
}

/* Free the agent, then let its connections close (an event: the reactor's
 * transport count reaching 0; 10 s at most). */
static void agent_done(coil_http_agent *a)
{
    coil_http_agent_free(a);
    double end = now_s() + 10;
    while (coil_reactor_transport_count(r) > 0 && now_s() < end)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT_EQUAL(coil_reactor_transport_count(r), 0);
}

/* Suite init: no CUnit assertions here (no test is running). The backend
 * is $COIL_REACTOR's. */
static int setup(void)
{
    return coil_reactor_new(&r, NULL) == 0 ? 0 : -1;
}

static int teardown(void)
{
    coil_reactor_free(r);
    r = NULL;
    return 0;
}

static void url_of(char *buf, size_t size, const char *scheme, int port, const char *path)
{
    snprintf(buf, size, "%s://%s:%d%s", scheme,
             strcmp(scheme, "https") == 0 ? "localhost" : "127.0.0.1", port, path);
}

/* ---- nginx ---------------------------------------------------------------- */

static void test_nginx_static_file(void)
{
    coil_http_agent *a = agent_new(NULL);
    char url[200];
    url_of(url, sizeof url, "http", nginx_port, "/static.bin");
    coil_http_response *resp = do_request(a, "GET", url, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(coil_http_response_status(resp), 200);
    CU_ASSERT_EQUAL(coil_http_response_version(resp), 11);
    CU_ASSERT_EQUAL(coil_http_response_length(resp), STATIC_SIZE);
    COIL_TEST_ASSERT_HAS(coil_http_response_header(resp, "content-type"),
                         "application/octet-stream");
    COIL_TEST_ASSERT_HAS(coil_http_response_header(resp, "Server"), "nginx");
    coil_http_bytes *b = wait_body(resp);
    coil_http_response_free(resp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(b->len, STATIC_SIZE);
    CU_ASSERT(b->len == STATIC_SIZE && memcmp(b->data, static_data, STATIC_SIZE) == 0);
    coil_http_bytes_free(b);

    /* coil_http_get: the same bytes. */
    coil_deferred *d = coil_http_get(a, url);
    CU_ASSERT_FATAL(wait_done(d, 30));
    if (coil_deferred_is_failure(d))
        print_failure("coil_http_get", coil_deferred_failure(d));
    CU_ASSERT_FATAL(!coil_deferred_is_failure(d));
    coil_http_bytes *g = coil_deferred_result(d);
    CU_ASSERT(g && g->len == STATIC_SIZE &&
              memcmp(g->data, static_data, STATIC_SIZE) == 0);
    coil_deferred_unref(d);
    agent_done(a);
}

/* The access-log lines of requests whose target holds `tag`: their
 * $connection and $connection_requests, in order. Waits (10 s at most) until
 * `want` lines are there: nginx logs a request once it is answered. */
static int log_lines(const char *tag, int want, long *conn, long *nreq)
{
    int n = 0;
    double end = now_s() + 10;
    for (;;) {
        n = 0;
        FILE *f = fopen(access_log, "r");
        char line[1024];
        while (f && fgets(line, sizeof line, f)) {
            long c, k;
            if (strstr(line, tag) && sscanf(line, "%ld %ld", &c, &k) == 2 && n < want) {
                conn[n] = c;
                nreq[n] = k;
                n++;
            }
        }
        if (f)
            fclose(f);
        if (n >= want || now_s() > end)
            return n;
        coil_reactor_iterate(r, 0.02);
    }
}

static void test_nginx_keepalive(void)
{
    coil_http_agent *a = agent_new(NULL);
    enum { N = 5 };
    char tag[64], url[256];
    snprintf(tag, sizeof tag, "keepalive-%ld-%d", (long)getpid(), rand());
    for (int i = 0; i < N; i++) {
        char path[128];
        snprintf(path, sizeof path, "/small.txt?%s-%d", tag, i);
        url_of(url, sizeof url, "http", nginx_port, path);
        coil_http_bytes *b = NULL;
        CU_ASSERT_EQUAL(fetch(a, "GET", url, &b), 200);
        CU_ASSERT(b && b->len == 11 && memcmp(b->data, "small file\n", 11) == 0);
        coil_http_bytes_free(b);
    }
    coil_http_agent_stats st;
    coil_http_agent_get_stats(a, &st);
    CU_ASSERT_EQUAL(st.requests, N);
    CU_ASSERT_EQUAL(st.connections, 1);
    CU_ASSERT_EQUAL(st.reused, N - 1);
    CU_ASSERT_EQUAL(st.idle, 1);
    CU_ASSERT_EQUAL(st.active, 0);
    /* On the wire: one nginx connection carried requests 1..N. */
    long conn[N], nreq[N];
    int got = log_lines(tag, N, conn, nreq);
    CU_ASSERT_EQUAL(got, N);
    for (int i = 0; i < got; i++) {
        if (conn[i] != conn[0] || nreq[i] != i + 1)
            fprintf(stderr, "\n    access log line %d: connection %ld, request %ld\n", i,
                    conn[i], nreq[i]);
        CU_ASSERT_EQUAL(conn[i], conn[0]);
        CU_ASSERT_EQUAL(nreq[i], i + 1);
    }
    agent_done(a);
}

/* Several requests at once: at most max_per_host connections, each kept
 * and used again by the next wave. */
static void test_nginx_parallel_reuse(void)
{
    coil_http_agent_options o = {.max_per_host = 2, .max_idle_per_host = 2};
    coil_http_agent *a = agent_new(&o);
    enum { N = 6 };
    char tag[64];
    snprintf(tag, sizeof tag, "parallel-%ld-%d", (long)getpid(), rand());
    for (int wave = 0; wave < 2; wave++) {
        coil_deferred *d[N];
        for (int i = 0; i < N; i++) {
            char url[256], path[128];
            snprintf(path, sizeof path, "/static.bin?%s-%d-%d", tag, wave, i);
            url_of(url, sizeof url, "http", nginx_port, path);
            d[i] = coil_http_get(a, url);
            CU_ASSERT_PTR_NOT_NULL_FATAL(d[i]);
        }
        coil_http_agent_stats st;
        coil_http_agent_get_stats(a, &st);
        CU_ASSERT(st.active + st.waiting <= N);
        for (int i = 0; i < N; i++) {
            CU_ASSERT(wait_done(d[i], 30));
            if (coil_deferred_is_failure(d[i]))
                print_failure("parallel GET", coil_deferred_failure(d[i]));
            else {
                coil_http_bytes *b = coil_deferred_result(d[i]);
                CU_ASSERT(b && b->len == STATIC_SIZE &&
                          memcmp(b->data, static_data, STATIC_SIZE) == 0);
            }
            CU_ASSERT(!coil_deferred_is_failure(d[i]));
            coil_deferred_unref(d[i]);
        }
    }
    coil_http_agent_stats st;
    coil_http_agent_get_stats(a, &st);
    CU_ASSERT_EQUAL(st.requests, 2 * N);
    CU_ASSERT_EQUAL(st.connections, 2);
    CU_ASSERT_EQUAL(st.reused, 2 * N - 2);
    /* nginx saw two connections, 2N requests in all. */
    long conn[2 * N], nreq[2 * N];
    int got = log_lines(tag, 2 * N, conn, nreq);
    CU_ASSERT_EQUAL(got, 2 * N);
    long c0 = conn[0], c1 = -1, max0 = 0, max1 = 0;
    for (int i = 0; i < got; i++) {
        if (conn[i] != c0 && c1 < 0)
            c1 = conn[i];
        CU_ASSERT(conn[i] == c0 || conn[i] == c1);
        if (conn[i] == c0 && nreq[i] > max0)
            max0 = nreq[i];
        if (conn[i] == c1 && nreq[i] > max1)
            max1 = nreq[i];
    }
    CU_ASSERT_EQUAL(max0 + max1, 2 * N);
    agent_done(a);
}

static void test_nginx_head(void)
{
    coil_http_agent *a = agent_new(NULL);
    char url[200];
    url_of(url, sizeof url, "http", nginx_port, "/static.bin");
    coil_http_response *resp = do_request(a, "HEAD", url, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(coil_http_response_status(resp), 200);
    char len[32];
    snprintf(len, sizeof len, "%d", STATIC_SIZE);
    const char *cl = coil_http_response_header(resp, "Content-Length");
    CU_ASSERT(cl && strcmp(cl, len) == 0);
    coil_http_bytes *b = wait_body(resp);
    coil_http_response_free(resp);
    CU_ASSERT(b && b->len == 0);
    coil_http_bytes_free(b);
    /* The connection is still in step: a GET on it gets its own answer. */
    url_of(url, sizeof url, "http", nginx_port, "/small.txt");
    b = NULL;
    CU_ASSERT_EQUAL(fetch(a, "GET", url, &b), 200);
    CU_ASSERT(b && b->len == 11 && memcmp(b->data, "small file\n", 11) == 0);
    coil_http_bytes_free(b);
    coil_http_agent_stats st;
    coil_http_agent_get_stats(a, &st);
    CU_ASSERT_EQUAL(st.connections, 1);
    CU_ASSERT_EQUAL(st.reused, 1);
    agent_done(a);
}

static void test_nginx_404(void)
{
    coil_http_agent *a = agent_new(NULL);
    char url[200];
    url_of(url, sizeof url, "http", nginx_port, "/no-such-file");
    /* The agent fires with any status: a 404 is a response. */
    coil_http_bytes *b = NULL;
    CU_ASSERT_EQUAL(fetch(a, "GET", url, &b), 404);
    CU_ASSERT(b && strstr(b->data, "404") != NULL);
    coil_http_bytes_free(b);
    /* getPage fails with the status. */
    coil_deferred *d = coil_http_get(a, url);
    CU_ASSERT_FATAL(wait_done(d, 30));
    CU_ASSERT_FATAL(coil_deferred_is_failure(d));
    const coil_failure *f = coil_deferred_failure(d);
    CU_ASSERT_EQUAL(coil_failure_domain(f), COIL_DOMAIN_HTTP);
    CU_ASSERT_EQUAL(coil_failure_code(f), 404);
    COIL_TEST_ASSERT_HAS(coil_failure_message(f), "404");
    coil_failure_free(coil_deferred_take_failure(d));
    coil_deferred_unref(d);
    /* Both on one connection: a 404 with a body keeps it. */
    coil_http_agent_stats st;
    coil_http_agent_get_stats(a, &st);
    CU_ASSERT_EQUAL(st.connections, 1);
    agent_done(a);
}

/* coil_http_download: the file written as it arrives, byte for byte. */
static void test_nginx_download(void)
{
    coil_http_agent *a = agent_new(NULL);
    char url[200], path[400], part[420];
    url_of(url, sizeof url, "http", nginx_port, "/static.bin");
    snprintf(path, sizeof path, "%s/downloaded.bin", scratch);
    snprintf(part, sizeof part, "%s.part", path);
    coil_deferred *d = coil_http_download(a, url, path);
    CU_ASSERT_FATAL(wait_done(d, 30));
    if (coil_deferred_is_failure(d))
        print_failure("coil_http_download", coil_deferred_failure(d));
    CU_ASSERT(!coil_deferred_is_failure(d));
    coil_deferred_unref(d);
    FILE *f = fopen(path, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    unsigned char *got = malloc(STATIC_SIZE + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    size_t n = fread(got, 1, STATIC_SIZE + 1, f);
    fclose(f);
    CU_ASSERT(n == STATIC_SIZE && memcmp(got, static_data, STATIC_SIZE) == 0);
    free(got);
    CU_ASSERT(access(part, F_OK) != 0); /* renamed, not left behind */
    unlink(path);
    /* A 404 fails and leaves no file. */
    url_of(url, sizeof url, "http", nginx_port, "/no-such-file");
    d = coil_http_download(a, url, path);
    CU_ASSERT_FATAL(wait_done(d, 30));
    CU_ASSERT_FATAL(coil_deferred_is_failure(d));
    CU_ASSERT_EQUAL(coil_failure_code(coil_deferred_failure(d)), 404);
    coil_failure_free(coil_deferred_take_failure(d));
    coil_deferred_unref(d);
    CU_ASSERT(access(path, F_OK) != 0);
    CU_ASSERT(access(part, F_OK) != 0);
    agent_done(a);
}

/* http+unix://: nginx listening on a UNIX socket, the path as the host. */
static void test_nginx_unix(void)
{
    char url[1200], host[1000];
    size_t k = 0;
    for (const char *p = nginx_sock; *p && k + 4 < sizeof host; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
            (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_')
            host[k++] = *p;
        else
            k += (size_t)snprintf(host + k, sizeof host - k, "%%%02X", (unsigned char)*p);
    }
    host[k] = 0;
    snprintf(url, sizeof url, "http+unix://%s/static.bin", host);
    coil_http_agent *a = agent_new(NULL);
    for (int i = 0; i < 2; i++) {
        coil_http_bytes *b = NULL;
        CU_ASSERT_EQUAL(fetch(a, "GET", url, &b), 200);
        CU_ASSERT(b && b->len == STATIC_SIZE &&
                  memcmp(b->data, static_data, STATIC_SIZE) == 0);
        coil_http_bytes_free(b);
    }
    coil_http_agent_stats st;
    coil_http_agent_get_stats(a, &st);
    CU_ASSERT_EQUAL(st.connections, 1);
    CU_ASSERT_EQUAL(st.reused, 1);
    agent_done(a);
}

static coil_tls_context *test_ca_context(void)
{
    coil_tls_options to = {.ca_file = coil_test_cert("ca.pem")};
    coil_tls_context *ctx = NULL;
    coil_failure *err = NULL;
    if (coil_tls_context_new(COIL_TLS_CLIENT, &to, &ctx, &err) != 0) {
        print_failure("coil_tls_context_new", err);
        coil_failure_free(err);
    }
    return ctx;
}

static void test_nginx_https(void)
{
    coil_tls_context *ctx = test_ca_context();
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    coil_http_agent_options o = {.tls = ctx};
    coil_http_agent *a = agent_new(&o);
    coil_tls_context_free(ctx); /* the agent took its reference */
    char url[200];
    url_of(url, sizeof url, "https", nginx_tls_port, "/static.bin");
    for (int i = 0; i < 3; i++) {
        coil_http_bytes *b = NULL;
        CU_ASSERT_EQUAL(fetch(a, "GET", url, &b), 200);
        CU_ASSERT(b && b->len == STATIC_SIZE &&
                  memcmp(b->data, static_data, STATIC_SIZE) == 0);
        coil_http_bytes_free(b);
    }
    coil_http_agent_stats st;
    coil_http_agent_get_stats(a, &st);
    CU_ASSERT_EQUAL(st.connections, 1);
    CU_ASSERT_EQUAL(st.reused, 2);
    /* By address: the certificate names 127.0.0.1 too. */
    snprintf(url, sizeof url, "https://127.0.0.1:%d/small.txt", nginx_tls_port);
    CU_ASSERT_EQUAL(fetch(a, "GET", url, NULL), 200);
    agent_done(a);

    /* Without the test CA (the system store): verification fails, and says
     * so. */
    a = agent_new(NULL);
    url_of(url, sizeof url, "https", nginx_tls_port, "/small.txt");
    coil_deferred *d = coil_http_get(a, url);
    CU_ASSERT_FATAL(wait_done(d, 30));
    CU_ASSERT_FATAL(coil_deferred_is_failure(d));
    char msg[1024];
    coil_failure_format(coil_deferred_failure(d), msg, sizeof msg);
    CU_ASSERT(strstr(msg, "certificate") != NULL || strstr(msg, "verify") != NULL);
    if (!strstr(msg, "certificate") && !strstr(msg, "verify"))
        fprintf(stderr, "\n    untrusted https failed with: %s\n", msg);
    coil_failure_free(coil_deferred_take_failure(d));
    coil_deferred_unref(d);
    agent_done(a);
}

/* ---- Twisted web ---------------------------------------------------------- */

static void test_twisted_chunked(void)
{
    coil_http_agent *a = agent_new(NULL);
    char url[200];
    url_of(url, sizeof url, "http", twisted_port, "/chunked");
    static const char want[] = "first piece\nsecond piece\nthird and last piece\n";
    coil_http_response *resp = do_request(a, "GET", url, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(coil_http_response_status(resp), 200);
    CU_ASSERT_EQUAL(coil_http_response_length(resp), -1);
    COIL_TEST_ASSERT_HAS(coil_http_response_header(resp, "Transfer-Encoding"), "chunked");
    coil_http_bytes *b = wait_body(resp);
    coil_http_response_free(resp);
    CU_ASSERT(b && b->len == sizeof want - 1 && memcmp(b->data, want, b->len) == 0);
    coil_http_bytes_free(b);
    /* The chunked body ended the response cleanly: the connection goes on. */
    CU_ASSERT_EQUAL(fetch(a, "GET", url, NULL), 200);
    coil_http_agent_stats st;
    coil_http_agent_get_stats(a, &st);
    CU_ASSERT_EQUAL(st.connections, 1);
    CU_ASSERT_EQUAL(st.reused, 1);
    agent_done(a);
}

/* deliverBody: a protocol that gathers the pieces. */
typedef struct gather {
    coil_protocol p;
    char buf[256];
    size_t len;
    size_t pieces;
    int made, lost, lost_code, destroyed;
} gather;

static void gather_made(coil_protocol *p)
{
    ((gather *)p)->made = 1;
}

static void gather_data(coil_protocol *p, const void *data, size_t len)
{
    gather *g = (gather *)p;
    if (g->len + len <= sizeof g->buf) {
        memcpy(g->buf + g->len, data, len);
        g->len += len;
    } else {
        g->len = sizeof g->buf + 1;
    }
    g->pieces++;
}

static void gather_lost(coil_protocol *p, const coil_failure *reason)
{
    gather *g = (gather *)p;
    g->lost = 1;
    g->lost_code = reason ? coil_failure_code(reason) : 0;
}

static void gather_destroy(coil_protocol *p)
{
    ((gather *)p)->destroyed = 1; /* static storage: nothing to free */
}

static const coil_protocol_ops gather_ops = {
    .connection_made = gather_made,
    .data_received = gather_data,
    .connection_lost = gather_lost,
    .destroy = gather_destroy,
};

static void test_twisted_chunked_deliver(void)
{
    coil_http_agent *a = agent_new(NULL);
    char url[200];
    url_of(url, sizeof url, "http", twisted_port, "/chunked");
    coil_http_response *resp = do_request(a, "GET", url, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    static gather g;
    memset(&g, 0, sizeof g);
    g.p.ops = &gather_ops;
    CU_ASSERT_EQUAL(coil_http_response_deliver_body(resp, &g.p), 0);
    CU_ASSERT(coil_test_wait_flag(r, &g.lost, 30));
    CU_ASSERT(g.made);
    CU_ASSERT_EQUAL(g.lost_code, COIL_ECLOSED);
    static const char want[] = "first piece\nsecond piece\nthird and last piece\n";
    CU_ASSERT(g.len == sizeof want - 1 && memcmp(g.buf, want, g.len) == 0);
    CU_ASSERT(g.pieces >= 1);
    coil_http_response_free(resp);
    agent_done(a);
    CU_ASSERT(g.destroyed);
}

static void test_twisted_post(void)
{
    coil_http_agent *a = agent_new(NULL);
    char url[200];
    url_of(url, sizeof url, "http", twisted_port, "/echo");
    static const char body[] = "name=coil&what=an+echo+of+the+body";
    coil_http_headers *h = coil_http_headers_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_EQUAL(coil_http_headers_add(h, "Content-Type", "text/x-coil-test"), 0);
    coil_http_response *resp =
        do_request(a, "POST", url, h, coil_http_body_from_bytes(body, sizeof body - 1));
    coil_http_headers_free(h);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(coil_http_response_status(resp), 200);
    COIL_TEST_ASSERT_HAS(coil_http_response_header(resp, "Content-Type"),
                         "text/x-coil-test");
    char len[16];
    snprintf(len, sizeof len, "%zu", sizeof body - 1);
    const char *seen = coil_http_response_header(resp, "X-Seen-Content-Length");
    CU_ASSERT(seen && strcmp(seen, len) == 0);
    coil_http_bytes *b = wait_body(resp);
    coil_http_response_free(resp);
    CU_ASSERT(b && b->len == sizeof body - 1 && memcmp(b->data, body, b->len) == 0);
    coil_http_bytes_free(b);
    agent_done(a);
}

/* A producer of unknown length: three pieces, one per timer tick, then
 * done; the agent sends them chunked. */
typedef struct pieces_producer {
    coil_http_body_producer p;
    coil_http_body_consumer *c;
    coil_reactor *r;
    coil_timer *timer;
    int next;
    int paused, stopped, destroyed;
} pieces_producer;

static const char *const piece_text[] = {"one piece, ", "then another, ",
                                         "and the last."};

static int pieces_step(void *arg)
{
    pieces_producer *pp = arg;
    coil_timer_release(pp->timer);
    pp->timer = NULL;
    if (pp->stopped)
        return 0;
    if (pp->next < 3) {
        const char *s = piece_text[pp->next++];
        CU_ASSERT_EQUAL(coil_http_body_write(pp->c, s, strlen(s)), 0);
        pp->timer = coil_reactor_call_later(pp->r, 0.01, pieces_step, pp);
        CU_ASSERT_PTR_NOT_NULL(pp->timer);
    } else {
        CU_ASSERT_EQUAL(coil_http_body_done(pp->c, NULL), 0);
    }
    return 0;
}

static void pieces_start(coil_http_body_producer *p, coil_http_body_consumer *c)
{
    pieces_producer *pp = (pieces_producer *)p;
    pp->c = c;
    pp->timer = coil_reactor_call_later(pp->r, 0, pieces_step, pp);
    CU_ASSERT_PTR_NOT_NULL(pp->timer);
}

static void pieces_pause(coil_http_body_producer *p)
{
    ((pieces_producer *)p)->paused = 1;
}

static void pieces_resume(coil_http_body_producer *p)
{
    ((pieces_producer *)p)->paused = 0;
}

static void pieces_stop(coil_http_body_producer *p)
{
    pieces_producer *pp = (pieces_producer *)p;
    pp->stopped = 1;
    if (pp->timer) {
        coil_timer_cancel(pp->timer);
        coil_timer_release(pp->timer);
        pp->timer = NULL;
    }
}

static int pieces_destroyed;

static void pieces_destroy(coil_http_body_producer *p)
{
    pieces_stop(p);
    pieces_destroyed++;
    free(p);
}

static const coil_http_body_producer_ops pieces_ops = {
    .start = pieces_start,
    .pause = pieces_pause,
    .resume = pieces_resume,
    .stop = pieces_stop,
    .destroy = pieces_destroy,
};

static void test_twisted_post_chunked(void)
{
    coil_http_agent *a = agent_new(NULL);
    char url[200];
    url_of(url, sizeof url, "http", twisted_port, "/echo");
    pieces_producer *pp = calloc(1, sizeof *pp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pp);
    pp->p.ops = &pieces_ops;
    pp->p.length = -1;
    pp->r = r;
    pieces_destroyed = 0;
    coil_http_response *resp = do_request(a, "POST", url, NULL, &pp->p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(coil_http_response_status(resp), 200);
    COIL_TEST_ASSERT_HAS(coil_http_response_header(resp, "X-Seen-Transfer-Encoding"),
                         "chunked");
    coil_http_bytes *b = wait_body(resp);
    coil_http_response_free(resp);
    static const char want[] = "one piece, then another, and the last.";
    CU_ASSERT(b && b->len == sizeof want - 1 && memcmp(b->data, want, b->len) == 0);
    coil_http_bytes_free(b);
    agent_done(a);
    CU_ASSERT_EQUAL(pieces_destroyed, 1);
}

static void test_twisted_redirects(void)
{
    char url[200];
    url_of(url, sizeof url, "http", twisted_port, "/redirect2");
    /* Off by default: the 302 itself. */
    coil_http_agent *a = agent_new(NULL);
    coil_http_response *resp = do_request(a, "GET", url, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(coil_http_response_status(resp), 302);
    COIL_TEST_ASSERT_HAS(coil_http_response_header(resp, "Location"), "/redirect");
    coil_http_bytes *b = wait_body(resp);
    coil_http_bytes_free(b);
    coil_http_response_free(resp);
    agent_done(a);

    /* Followed when on: two hops to /hello. */
    coil_http_agent_options o = {.follow_redirects = 1};
    a = agent_new(&o);
    resp = do_request(a, "GET", url, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(coil_http_response_status(resp), 200);
    COIL_TEST_ASSERT_HAS(coil_http_response_url(resp), "/hello");
    b = wait_body(resp);
    CU_ASSERT(b && b->len == 13 && memcmp(b->data, "Hello, world!", 13) == 0);
    coil_http_bytes_free(b);
    coil_http_response_free(resp);
    /* coil_http_get follows too. */
    coil_deferred *d = coil_http_get(a, url);
    CU_ASSERT_FATAL(wait_done(d, 30));
    if (coil_deferred_is_failure(d))
        print_failure("coil_http_get /redirect2", coil_deferred_failure(d));
    else {
        coil_http_bytes *g = coil_deferred_result(d);
        CU_ASSERT(g && g->len == 13 && memcmp(g->data, "Hello, world!", 13) == 0);
    }
    CU_ASSERT(!coil_deferred_is_failure(d));
    coil_deferred_unref(d);
    agent_done(a);

    /* A loop ends at the limit, with a failure that says so. */
    coil_http_agent_options lo = {.follow_redirects = 1, .max_redirects = 3};
    a = agent_new(&lo);
    url_of(url, sizeof url, "http", twisted_port, "/loop");
    d = coil_http_agent_request(a, "GET", url, NULL, NULL);
    CU_ASSERT_FATAL(wait_done(d, 30));
    CU_ASSERT_FATAL(coil_deferred_is_failure(d));
    char msg[1024];
    coil_failure_format(coil_deferred_failure(d), msg, sizeof msg);
    CU_ASSERT(strstr(msg, "redirect") != NULL);
    if (!strstr(msg, "redirect"))
        fprintf(stderr, "\n    the redirect loop failed with: %s\n", msg);
    coil_failure_free(coil_deferred_take_failure(d));
    coil_deferred_unref(d);
    agent_done(a);
}

/* Twisted keeps the connection: /conn answers the client's port, the same
 * each time. */
static void test_twisted_keepalive(void)
{
    coil_http_agent *a = agent_new(NULL);
    char url[200], first[64] = "";
    url_of(url, sizeof url, "http", twisted_port, "/conn");
    for (int i = 0; i < 4; i++) {
        coil_http_bytes *b = NULL;
        CU_ASSERT_EQUAL(fetch(a, "GET", url, &b), 200);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        if (i == 0)
            snprintf(first, sizeof first, "%s", b->data);
        else
            CU_ASSERT_STRING_EQUAL(b->data, first);
        coil_http_bytes_free(b);
    }
    coil_http_agent_stats st;
    coil_http_agent_get_stats(a, &st);
    CU_ASSERT_EQUAL(st.connections, 1);
    CU_ASSERT_EQUAL(st.reused, 3);
    agent_done(a);
}

static const coil_test_case nginx_cases[] = {COIL_TEST(test_nginx_static_file),
                                             COIL_TEST(test_nginx_keepalive),
                                             COIL_TEST(test_nginx_parallel_reuse),
                                             COIL_TEST(test_nginx_head),
                                             COIL_TEST(test_nginx_404),
                                             COIL_TEST(test_nginx_https),
                                             COIL_TEST(test_nginx_download),
                                             COIL_TEST(test_nginx_unix),
                                             {NULL, NULL}};

static const coil_test_case twisted_cases[] = {COIL_TEST(test_twisted_chunked),
                                               COIL_TEST(test_twisted_chunked_deliver),
                                               COIL_TEST(test_twisted_post),
                                               COIL_TEST(test_twisted_post_chunked),
                                               COIL_TEST(test_twisted_redirects),
                                               COIL_TEST(test_twisted_keepalive),
                                               {NULL, NULL}};

static int add(void)
{
    if (coil_test_add_suite_with("agent_vs_nginx", setup, teardown, nginx_cases) != 0)
        return -1;
    return coil_test_add_suite_with("agent_vs_twisted", setup, teardown, twisted_cases);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *tmpdir = getenv("TMPDIR");
    snprintf(scratch, sizeof scratch, "%s/coil-agent-interop-XXXXXX",
             tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(scratch)) {
        fprintf(stderr, "agent interop: mkdtemp %s: %s\n", scratch, strerror(errno));
        return 1;
    }
    chmod(scratch, 0755); /* nginx's worker reads www/ */
    int status = 1;
    if (make_www() != 0) {
        fprintf(stderr, "agent interop: cannot make the files to serve in %s\n", scratch);
    } else if (start_nginx() != 0 || start_twisted() != 0) {
        fprintf(stderr, "agent interop: FAILED: the servers did not start (see above)\n");
    } else {
        status = coil_test_main(add);
    }
    stop_child(&nginx_pid);
    stop_child(&twisted_pid);
    remove_tree(scratch);
    free(static_data);
    return status;
}
