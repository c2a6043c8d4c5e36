/* Static files (coil_http_file_new, Twisted's static.File): a temporary
 * tree served by a site over the in-memory transport (the read loop) and
 * over TCP on loopback (sendfile; the file resource's counters prove which
 * path carried the bytes): bodies byte for byte, types, validators and 304,
 * ranges (206, 416, several -> 200, If-Range), HEAD, 405, every way out of
 * the root (dots, encoded dots and slashes, NUL, dot files, symlinks, a
 * FIFO), listings (escaped, sorted, dot files hidden), the trailing-slash
 * redirect, index.html, no_listings, a slow reader with bounded queues and
 * clients that leave in the middle of a file (the file is closed). */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http_private.h" /* coil__http_file_stats */
#include "coil/http.h"
#include "coil/memory.h"
#include "testutil.h"

#define BIG_SIZE (1024 * 1024 + 1)

extern char **environ;

static char root[256];
static unsigned char *big; /* the big file's bytes */

/* ---- the tree ------------------------------------------------------------ */

/* The suite's setup runs outside any test: failures are counted here. */
static int setup_failed;

static void setup_check(int ok, const char *what, const char *path)
{
    if (!ok) {
        fprintf(stderr, "test setup: %s %s failed: %s\n", what, path, strerror(errno));
        setup_failed = 1;
    }
}

static void put_file(const char *rel, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "wb");
    setup_check(f != NULL, "creating", path);
    if (!f)
        return;
    if (len)
        setup_check(fwrite(data, 1, len, f) == len, "writing", path);
    setup_check(fclose(f) == 0, "closing", path);
}

static void put_dir(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    setup_check(mkdir(path, 0755) == 0, "mkdir", path);
}

static void put_link(const char *target, const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    setup_check(symlink(target, path) == 0, "symlink", path);
}

static int setup(void)
{
    snprintf(root, sizeof root, "%s/coil-static-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) {
        fprintf(stderr, "cannot make a scratch directory %s: %s\n", root,
                strerror(errno));
        return 1;
    }
    big = malloc(BIG_SIZE);
    if (!big)
        return 1;
    for (size_t i = 0; i < BIG_SIZE; i++)
        big[i] = (unsigned char)(i * 7 + (i >> 10));
    char page[4096];
    memset(page, 'p', sizeof page);
    memcpy(page, "<html>", 6);
    put_file("empty.txt", "", 0);
    put_file("hello.txt", "Hello, world\n", 13);
    put_file("page.html", page, sizeof page);
    put_file("big.bin", big, BIG_SIZE);
    put_file("data.zzunknown", "x", 1);
    put_file("style.CSS", "a{}", 3);
    put_file(".secret", "secret\n", 7);
    put_dir("sub");
    put_file("sub/index.html", "<p>sub index</p>\n", 17);
    put_dir("noindex");
    put_file("noindex/a.txt", "a\n", 2);
    put_file("noindex/with space.txt", "space\n", 6);
    put_file("noindex/<script>.txt", "script\n", 7);
    put_file("noindex/.hidden", "hidden\n", 7);
    put_dir("noindex/z dir");
    put_dir("noindex/b&dir");
    put_link("hello.txt", "link-in");
    char abs[512];
    snprintf(abs, sizeof abs, "%s/hello.txt", root);
    put_link(abs, "link-abs-in");
    put_link("/etc/passwd", "link-out");
    put_link("../", "sub/up");
    char fifo[512];
    snprintf(fifo, sizeof fifo, "%s/fifo", root);
    setup_check(mkfifo(fifo, 0600) == 0, "mkfifo", fifo);
    return setup_failed;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void)
{
    free(big);
    return nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : 1;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* ---- a site -------------------------------------------------------------- */

typedef struct server {
    coil_reactor *r;
    coil_http_resource *file; /* borrowed: the site holds it */
    coil_http_site *site;
    coil_listener *listener;
    int port;
    char log[512];
} server;

static void log_line(void *ud, coil_http_request *req, const char *line)
{
    (void)req;
    server *s = ud;
    snprintf(s->log, sizeof s->log, "%s", line);
}

static void server_start(server *s, coil_reactor *r, const coil_http_file_options *o,
                         int tcp)
{
    memset(s, 0, sizeof *s);
    s->r = r;
    coil_failure *err = NULL;
    int rc = coil_http_file_new(root, o, &s->file, &err);
    if (rc != 0)
        coil_failure_print(err, stderr);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    coil_http_server_options so = {.log = log_line, .log_ud = s};
    rc = coil_http_site_new(r, s->file, &so, &s->site, &err);
    if (rc != 0)
        coil_failure_print(err, stderr);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    if (tcp) {
        CU_ASSERT_EQUAL_FATAL(coil_listen(r, "tcp:0:interface=127.0.0.1",
                                          coil_http_site_factory(s->site), &s->listener,
                                          NULL),
                              0);
        coil_address a;
        CU_ASSERT_EQUAL_FATAL(coil_listener_get_host(s->listener, &a), 0);
        s->port = coil_address_port(&a);
    }
}

static void server_stop(server *s)
{
    /* Wait for the connections to close (a TLS client's close_notify, a
     * socket's EOF) before the reactor goes. */
    coil_http_site_stats st;
    for (int i = 0; i < 1000; i++) {
        coil_http_site_get_stats(s->site, &st);
        if (st.open == 0)
            break;
        coil_reactor_iterate(s->r, 0.005);
    }
    coil_http_site_get_stats(s->site, &st);
    CU_ASSERT_EQUAL(st.open, 0);
    if (s->listener)
        coil_listener_close(s->listener);
    coil_http_site_free(s->site);
}

/* A fake-clock reactor with the site on it (the memory pair's cases);
 * fake_server_end stops both. */
static coil_reactor *fake_server_start(server *s, const coil_http_file_options *o)
{
    coil_reactor *r = coil_test_fake_start();
    server_start(s, r, o, 0);
    return r;
}

static void fake_server_end(server *s)
{
    coil_reactor *r = s->r;
    server_stop(s);
    coil_test_fake_end(r);
}

static coil__http_file_counts counts(const server *s)
{
    coil__http_file_counts c;
    coil__http_file_stats(s->file, &c);
    return c;
}

/* ---- responses ----------------------------------------------------------- */

typedef struct resp {
    int status;
    char head[4096];
    unsigned char *body;
    size_t body_len;
} resp;

static void resp_free(resp *rs)
{
    free(rs->body);
    rs->body = NULL;
}

/* The value of header `name` in the head, or NULL (a static copy). */
static const char *hdr(const resp *rs, const char *name)
{
    static char value[1024];
    size_t n = strlen(name);
    const char *p = strstr(rs->head, "\r\n");
    while (p && p[2]) {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t len = e ? (size_t)(e - v) : strlen(v);
            if (len >= sizeof value)
                len = sizeof value - 1;
            memcpy(value, v, len);
            value[len] = 0;
            return value;
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

/* Parse `data`; 1 when a whole response is there (head, then Content-Length
 * bytes; no body for HEAD, 204, 304), with *used its length. */
static int resp_parse(const unsigned char *data, size_t len, int head_only, resp *rs,
                      size_t *used)
{
    const unsigned char *e = memmem(data, len, "\r\n\r\n", 4);
    if (!e)
        return 0;
    size_t hl = (size_t)(e - data) + 4;
    if (hl >= sizeof rs->head)
        return 0;
    memcpy(rs->head, data, hl);
    rs->head[hl] = 0;
    rs->status = atoi(rs->head + 9);
    size_t cl = 0;
    const char *v = hdr(rs, "Content-Length");
    if (!head_only && rs->status != 304 && rs->status != 204) {
        if (!v)
            return 0;
        cl = strtoul(v, NULL, 10);
    }
    if (len - hl < cl)
        return 0;
    free(rs->body);
    rs->body = malloc(cl + 1);
    memcpy(rs->body, data + hl, cl);
    rs->body[cl] = 0;
    rs->body_len = cl;
    if (used)
        *used = hl + cl;
    return 1;
}

/* Header `name` of response `rs` must be `value`. */
#define EXPECT_HDR(rs, name, value)                                               \
    do {                                                                          \
        const char *v_ = hdr((rs), (name));                                       \
        if (!v_ || strcmp(v_, (value)) != 0)                                      \
            fprintf(stderr, "\n    %s:%d: %s is %s, not %s; head:\n%s", __FILE__, \
                    __LINE__, (name), v_ ? v_ : "missing", (value), (rs)->head);  \
        CU_ASSERT(v_ &&strcmp(v_, (value)) == 0);                                 \
    } while (0)

static int is_head(const char *request)
{
    return strncmp(request, "HEAD ", 5) == 0;
}

/* One request over the in-memory transport; the response in *rs. */
static void mem_request(server *s, const char *request, resp *rs)
{
    memset(rs, 0, sizeof *rs);
    coil_transport *t =
        coil_memory_transport_new(s->r, coil_http_site_protocol(s->site, NULL));
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    coil_test_feed(t, request, strlen(request));
    int done = 0;
    for (int i = 0; i < 100000 && !done; i++) {
        size_t len;
        const unsigned char *w = coil_memory_transport_written(t, &len);
        done = resp_parse(w, len, is_head(request), rs, NULL);
        if (!done)
            coil_reactor_iterate(s->r, 0);
    }
    if (!done)
        fprintf(stderr, "\n    no whole response to %s", request);
    CU_ASSERT(done);
    coil_memory_transport_free(t);
    coil_reactor_iterate(s->r, 0);
}

/* GET `path` (with extra header lines) over memory. */
static void mem_get(server *s, const char *method, const char *path, const char *extra,
                    resp *rs)
{
    char req[2048];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\n%s\r\n", method, path,
             extra ? extra : "");
    mem_request(s, req, rs);
}

static int tcp_connect_rcvbuf(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(fd >= 0);
    /* A small receive buffer (set before connect, so the window is small)
     * keeps the server in the middle of a big file. */
    if (rcvbuf)
        CU_ASSERT_EQUAL(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    CU_ASSERT_EQUAL_FATAL(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    return fd;
}

static int tcp_connect(int port)
{
    return tcp_connect_rcvbuf(port, 0);
}

/* One request over TCP, reading as the reactor runs (10 s at most). */
static void tcp_request(server *s, const char *request, resp *rs)
{
    memset(rs, 0, sizeof *rs);
    int fd = tcp_connect(s->port);
    CU_ASSERT_EQUAL(send(fd, request, strlen(request), MSG_NOSIGNAL),
                    (ssize_t)strlen(request));
    size_t cap = 2 * BIG_SIZE, len = 0;
    unsigned char *buf = malloc(cap);
    int done = 0;
    double end = coil_reactor_seconds(s->r) + 10;
    while (!done && coil_reactor_seconds(s->r) < end) {
        coil_reactor_iterate(s->r, 0.01);
        for (;;) {
            ssize_t n = recv(fd, buf + len, cap - len, 0);
            if (n <= 0)
                break;
            len += (size_t)n;
        }
        done = resp_parse(buf, len, is_head(request), rs, NULL);
    }
    if (!done)
        fprintf(stderr, "\n    no whole response to %s (%zu bytes)", request, len);
    CU_ASSERT(done);
    free(buf);
    close(fd);
    /* Let the server see the close. */
    for (int i = 0; i < 5; i++)
        coil_reactor_iterate(s->r, 0.001);
}

static void tcp_get(server *s, const char *path, const char *extra, resp *rs)
{
    char req[2048];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n", path,
             extra ? extra : "");
    tcp_request(s, req, rs);
}

static void expect_file(const resp *rs, const void *data, size_t len, const char *type)
{
    if (rs->status != 200)
        fprintf(stderr, "\n    expected 200, got: %s", rs->head);
    CU_ASSERT_EQUAL(rs->status, 200);
    CU_ASSERT_EQUAL(rs->body_len, len);
    CU_ASSERT(rs->body_len == len && memcmp(rs->body, data, len) == 0);
    const char *t = hdr(rs, "Content-Type");
    CU_ASSERT_PTR_NOT_NULL(t);
    if (t && type)
        CU_ASSERT_STRING_EQUAL(t, type);
    EXPECT_HDR(rs, "Accept-Ranges", "bytes");
    CU_ASSERT_PTR_NOT_NULL(hdr(rs, "ETag"));
    CU_ASSERT_PTR_NOT_NULL(hdr(rs, "Last-Modified"));
}

/* `method path` (with the header lines `extra`) answers `status`. */
static void expect_answer(server *s, const char *method, const char *path,
                          const char *extra, int status)
{
    resp rs;
    mem_get(s, method, path, extra, &rs);
    if (rs.status != status)
        fprintf(stderr, "\n    %s %s -> %d, not %d", method, path, rs.status, status);
    CU_ASSERT_EQUAL(rs.status, status);
    resp_free(&rs);
}

static void expect_status(server *s, const char *path, int status)
{
    expect_answer(s, "GET", path, NULL, status);
}

/* The validators of /hello.txt: its ETag and Last-Modified. */
static void hello_validators(server *s, char *etag, size_t etag_size, char *lm,
                             size_t lm_size)
{
    resp rs;
    mem_get(s, "GET", "/hello.txt", NULL, &rs);
    snprintf(etag, etag_size, "%s", hdr(&rs, "ETag"));
    snprintf(lm, lm_size, "%s", hdr(&rs, "Last-Modified"));
    resp_free(&rs);
}

/* `method path` (with the header lines `extra`) answers `status` with the
 * header `name: value`. */
static void expect_header(server *s, const char *method, const char *path,
                          const char *extra, int status, const char *name,
                          const char *value)
{
    resp rs;
    mem_get(s, method, path, extra, &rs);
    if (rs.status != status)
        fprintf(stderr, "\n    %s %s -> %d, not %d", method, path, rs.status, status);
    CU_ASSERT_EQUAL(rs.status, status);
    EXPECT_HDR(&rs, name, value);
    resp_free(&rs);
}

/* ---- tests --------------------------------------------------------------- */

static void test_mime_types(void)
{
    CU_ASSERT_STRING_EQUAL(coil_http_mime_type("a.html"), "text/html; charset=utf-8");
    CU_ASSERT_STRING_EQUAL(coil_http_mime_type("/x/y/A.HTML"),
                           "text/html; charset=utf-8");
    CU_ASSERT_STRING_EQUAL(coil_http_mime_type("a.css"), "text/css; charset=utf-8");
    CU_ASSERT_STRING_EQUAL(coil_http_mime_type("a.js"), "text/javascript; charset=utf-8");
    CU_ASSERT_STRING_EQUAL(coil_http_mime_type("a.mjs"),
                           "text/javascript; charset=utf-8");
    CU_ASSERT_STRING_EQUAL(coil_http_mime_type("a.json"), "application/json");
    CU_ASSERT_STRING_EQUAL(coil_http_mime_type("a.txt"), "text/plain; charset=utf-8");
    CU_ASSERT_STRING_EQUAL(coil_http_mime_type("a.svg"), "image/svg+xml");
    CU_ASSERT_STRING_EQUAL(coil_http_mime_type("a.png"), "image/png");
    CU_ASSERT_STRING_EQUAL(coil_http_mime_type("a.jpg"), "image/jpeg");
    CU_ASSERT_STRING_EQUAL(coil_http_mime_type("a.jpeg"), "image/jpeg");
    CU_ASSERT_STRING_EQUAL(coil_http_mime_type("a.webp"), "image/webp");
    CU_ASSERT_STRING_EQUAL(coil_http_mime_type("a.wasm"), "application/wasm");
    CU_ASSERT_STRING_EQUAL(coil_http_mime_type("a.tar.gz"), "application/gzip");
    CU_ASSERT_STRING_EQUAL(coil_http_mime_type("a.woff2"), "font/woff2");
    CU_ASSERT_STRING_EQUAL(coil_http_mime_type("a.mp4"), "video/mp4");
    CU_ASSERT_STRING_EQUAL(coil_http_mime_type("a.md"), "text/markdown; charset=utf-8");
    CU_ASSERT_STRING_EQUAL(coil_http_mime_type("a.csv"), "text/csv; charset=utf-8");
    CU_ASSERT_STRING_EQUAL(coil_http_mime_type("a.pdf"), "application/pdf");
    CU_ASSERT_PTR_NULL(coil_http_mime_type("a.zzunknown"));
    CU_ASSERT_PTR_NULL(coil_http_mime_type("Makefile"));
    CU_ASSERT_PTR_NULL(coil_http_mime_type(".html")); /* a dot file, not an extension */
    CU_ASSERT_PTR_NULL(coil_http_mime_type("a."));
    CU_ASSERT_PTR_NULL(coil_http_mime_type("dir.html/x"));
    CU_ASSERT_PTR_NULL(coil_http_mime_type(NULL));
}

static void test_new_refuses(void)
{
    coil_http_resource *res = COIL_TEST_POISON;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL(coil_http_file_new("/nonexistent/coil-static", NULL, &res, &err),
                    COIL_ESYSTEM);
    CU_ASSERT_PTR_NULL(res);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    COIL_TEST_ASSERT_HAS(coil_failure_message(err), "/nonexistent/coil-static");
    coil_failure_free(err);
    char fifo[512];
    snprintf(fifo, sizeof fifo, "%s/fifo", root);
    err = NULL;
    CU_ASSERT_EQUAL(coil_http_file_new(fifo, NULL, &res, &err), COIL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(err);
    coil_failure_free(err);
    coil_http_file_options o = {.index = "../x"};
    err = NULL;
    CU_ASSERT_EQUAL(coil_http_file_new(root, &o, &res, &err), COIL_EINVAL);
    coil_failure_free(err);
}

static void test_files_memory(void)
{
    server s;
    coil_reactor *r = fake_server_start(&s, NULL);
    resp rs;
    mem_get(&s, "GET", "/hello.txt", NULL, &rs);
    expect_file(&rs, "Hello, world\n", 13, "text/plain; charset=utf-8");
    resp_free(&rs);
    mem_get(&s, "GET", "/empty.txt", NULL, &rs);
    expect_file(&rs, "", 0, "text/plain; charset=utf-8");
    EXPECT_HDR(&rs, "Content-Length", "0");
    resp_free(&rs);
    char page[4096];
    memset(page, 'p', sizeof page);
    memcpy(page, "<html>", 6);
    mem_get(&s, "GET", "/page.html", NULL, &rs);
    expect_file(&rs, page, sizeof page, "text/html; charset=utf-8");
    resp_free(&rs);
    mem_get(&s, "GET", "/big.bin", NULL, &rs);
    expect_file(&rs, big, BIG_SIZE, "application/octet-stream");
    resp_free(&rs);
    mem_get(&s, "GET", "/data.zzunknown", NULL, &rs);
    expect_file(&rs, "x", 1, "application/octet-stream");
    resp_free(&rs);
    mem_get(&s, "GET", "/style.CSS", NULL, &rs);
    expect_file(&rs, "a{}", 3, "text/css; charset=utf-8");
    resp_free(&rs);
    coil__http_file_counts c = counts(&s);
    CU_ASSERT_EQUAL(c.sendfile_bytes, 0);
    CU_ASSERT_EQUAL(c.read_bytes, 13 + 4096 + BIG_SIZE + 1 + 3);
    CU_ASSERT_EQUAL(c.open_bodies, 0);
    server_stop(&s);

    /* Another default type; the file itself as the root. */
    coil_http_file_options o = {.default_type = "text/x-mine"};
    server_start(&s, r, &o, 0);
    mem_get(&s, "GET", "/data.zzunknown", NULL, &rs);
    expect_file(&rs, "x", 1, "text/x-mine");
    resp_free(&rs);
    fake_server_end(&s);
}

static void test_single_file_root(void)
{
    coil_reactor *r = coil_test_fake_start();
    char path[512];
    snprintf(path, sizeof path, "%s/hello.txt", root);
    coil_http_resource *res;
    CU_ASSERT_EQUAL_FATAL(coil_http_file_new(path, NULL, &res, NULL), 0);
    server s = {.r = r, .file = res};
    CU_ASSERT_EQUAL_FATAL(coil_http_site_new(r, res, NULL, &s.site, NULL), 0);
    resp rs;
    mem_get(&s, "GET", "/", NULL, &rs);
    /* "/" names the root itself; a file root has nothing below it. */
    CU_ASSERT(rs.status == 404 || rs.status == 200);
    resp_free(&rs);
    expect_status(&s, "/x", 404);
    fake_server_end(&s);
}

static void test_files_tcp_sendfile(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    server s;
    server_start(&s, r, NULL, 1);
    resp rs;
    tcp_get(&s, "/big.bin", NULL, &rs);
    expect_file(&rs, big, BIG_SIZE, "application/octet-stream");
    resp_free(&rs);
    coil__http_file_counts c = counts(&s);
    CU_ASSERT_EQUAL(c.sendfile_bytes + c.read_bytes, BIG_SIZE);
    /* The first piece puts the head out; sendfile carries the rest. */
    CU_ASSERT(c.sendfile_bytes >= BIG_SIZE - 64 * 1024);
    /* The server counted the sendfile bytes: the log line has the size. */
    COIL_TEST_ASSERT_HAS(s.log, "\"GET /big.bin HTTP/1.1\" 200 1048577 ");
    tcp_get(&s, "/hello.txt", NULL, &rs);
    expect_file(&rs, "Hello, world\n", 13, "text/plain; charset=utf-8");
    resp_free(&rs);
    /* A range from the middle goes by sendfile from its offset. */
    tcp_get(&s, "/big.bin", "Range: bytes=100000-900000\r\n", &rs);
    CU_ASSERT_EQUAL(rs.status, 206);
    CU_ASSERT_EQUAL(rs.body_len, 800001);
    CU_ASSERT(rs.body_len == 800001 && memcmp(rs.body, big + 100000, 800001) == 0);
    EXPECT_HDR(&rs, "Content-Range", "bytes 100000-900000/1048577");
    resp_free(&rs);
    c = counts(&s);
    CU_ASSERT(c.sendfile_bytes >= BIG_SIZE - 64 * 1024 + 800001 - 64 * 1024);
    CU_ASSERT_EQUAL(c.open_bodies, 0);
    server_stop(&s);
    coil_reactor_free(r);
}

/* Run curl (the TLS client) with `args` while the reactor runs; its exit
 * status, or -1. */
static int run_curl(coil_reactor *r, char *const args[])
{
    if (access("/usr/bin/curl", X_OK) != 0) {
        fprintf(stderr, "\n    curl is missing: install it (tools/install-deps)");
        return -1;
    }
    pid_t pid;
    int rc = posix_spawn(&pid, "/usr/bin/curl", NULL, NULL, args, environ);
    if (rc != 0) {
        fprintf(stderr, "\n    cannot run curl: %s", strerror(rc));
        return -1;
    }
    int status = 0;
    double end = coil_reactor_seconds(r) + 30;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (coil_reactor_seconds(r) > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fprintf(stderr, "\n    curl did not finish in 30 s");
            return -1;
        }
        coil_reactor_iterate(r, 0.01);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static unsigned char *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = malloc(2 * BIG_SIZE);
    *len = fread(buf, 1, 2 * BIG_SIZE, f);
    fclose(f);
    return buf;
}

/* Over TLS the bytes go by the read loop (sendfile cannot encrypt). */
static void test_files_tls(void)
{
    const char *key = coil_test_cert("server.key"),
               *chain = coil_test_cert("server-chain.pem"),
               *ca = coil_test_cert("ca.pem");
    CU_ASSERT_PTR_NOT_NULL_FATAL(key);
    char desc[2048], k[512], c[512], cacert[512];
    snprintf(k, sizeof k, "%s", key);
    snprintf(c, sizeof c, "%s", chain);
    snprintf(cacert, sizeof cacert, "%s", ca);
    coil_reactor *r = coil_test_reactor(NULL);
    server s;
    server_start(&s, r, NULL, 0);
    snprintf(desc, sizeof desc,
             "tls:0:interface=127.0.0.1:privateKey=%s:certKey=%s:alpn=http/1.1", k, c);
    coil_failure *err = NULL;
    int rc = coil_listen(r, desc, coil_http_site_factory(s.site), &s.listener, &err);
    if (rc != 0)
        coil_failure_print(err, stderr);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    coil_address a;
    CU_ASSERT_EQUAL_FATAL(coil_listener_get_host(s.listener, &a), 0);
    char url[128], out[512];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/big.bin", coil_address_port(&a));
    CU_ASSERT_EQUAL_FATAL(coil_test_temp_file(out, sizeof out, "static-tls"), 0);
    char *args[] = {"curl", "-sS", "--cacert", cacert, "-o", out, url, NULL};
    CU_ASSERT_EQUAL(run_curl(r, args), 0);
    size_t len = 0;
    unsigned char *got = read_whole(out, &len);
    CU_ASSERT(got && len == BIG_SIZE && memcmp(got, big, BIG_SIZE) == 0);
    free(got);
    char *range[] = {"curl",      "-sS", "--cacert", cacert, "-r",
                     "1000-1999", "-o",  out,        url,    NULL};
    CU_ASSERT_EQUAL(run_curl(r, range), 0);
    got = read_whole(out, &len);
    CU_ASSERT(got && len == 1000 && memcmp(got, big + 1000, 1000) == 0);
    free(got);
    unlink(out);
    coil__http_file_counts n = counts(&s);
    CU_ASSERT_EQUAL(n.sendfile_bytes, 0);
    CU_ASSERT_EQUAL(n.read_bytes, BIG_SIZE + 1000);
    CU_ASSERT_EQUAL(n.open_bodies, 0);
    server_stop(&s);
    coil_reactor_free(r);
}

/* Several GETs in one write on one connection (pipelined), over TCP or a
 * UNIX socket (fd already connected): the responses in order. */
static void exchange(server *s, int fd, const char *requests, resp *rs, int n)
{
    memset(rs, 0, sizeof *rs * (size_t)n);
    CU_ASSERT_EQUAL(send(fd, requests, strlen(requests), MSG_NOSIGNAL),
                    (ssize_t)strlen(requests));
    size_t cap = 4 * BIG_SIZE, len = 0, off = 0;
    unsigned char *buf = malloc(cap);
    int done = 0;
    double end = coil_reactor_seconds(s->r) + 10;
    while (done < n && coil_reactor_seconds(s->r) < end) {
        coil_reactor_iterate(s->r, 0.01);
        for (;;) {
            ssize_t k = recv(fd, buf + len, cap - len, 0);
            if (k <= 0)
                break;
            len += (size_t)k;
        }
        size_t used;
        while (done < n && resp_parse(buf + off, len - off, 0, &rs[done], &used)) {
            off += used;
            done++;
        }
    }
    CU_ASSERT_EQUAL(done, n);
    CU_ASSERT_EQUAL(off, len); /* nothing more than the responses */
    free(buf);
}

/* Keep-alive and pipelining with sendfile bodies in between: each body
 * whole, in order, and the connection still in step afterwards. */
static void test_pipelined_tcp(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    server s;
    server_start(&s, r, NULL, 1);
    int fd = tcp_connect(s.port);
    resp rs[3];
    exchange(&s, fd,
             "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n"
             "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"
             "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=-100000\r\n\r\n",
             rs, 3);
    expect_file(&rs[0], big, BIG_SIZE, "application/octet-stream");
    expect_file(&rs[1], "Hello, world\n", 13, NULL);
    CU_ASSERT_EQUAL(rs[2].status, 206);
    CU_ASSERT(rs[2].body_len == 100000 &&
              memcmp(rs[2].body, big + BIG_SIZE - 100000, 100000) == 0);
    for (int i = 0; i < 3; i++)
        resp_free(&rs[i]);
    /* The same connection goes on. */
    exchange(&s, fd, "GET /page.html HTTP/1.1\r\nHost: t\r\n\r\n", rs, 1);
    CU_ASSERT_EQUAL(rs[0].status, 200);
    CU_ASSERT_EQUAL(rs[0].body_len, 4096);
    resp_free(&rs[0]);
    close(fd);
    coil__http_file_counts c = counts(&s);
    CU_ASSERT(c.sendfile_bytes > BIG_SIZE);
    CU_ASSERT_EQUAL(c.sendfile_bytes + c.read_bytes, BIG_SIZE + 13 + 100000 + 4096);
    for (int i = 0; i < 5; i++)
        coil_reactor_iterate(r, 0.001);
    CU_ASSERT_EQUAL(counts(&s).open_bodies, 0);
    server_stop(&s);
    coil_reactor_free(r);
}

/* UNIX sockets take sendfile too. */
static void test_files_unix(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    server s;
    server_start(&s, r, NULL, 0);
    char path[300], desc[400];
    snprintf(path, sizeof path, "%s/../coil-static-%d.sock", root, (int)getpid());
    snprintf(desc, sizeof desc, "unix:%s", path);
    unlink(path);
    coil_failure *err = NULL;
    int rc = coil_listen(r, desc, coil_http_site_factory(s.site), &s.listener, &err);
    if (rc != 0)
        coil_failure_print(err, stderr);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    CU_ASSERT_FATAL(strlen(path) < sizeof a.sun_path);
    memcpy(a.sun_path, path, strlen(path) + 1);
    CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    CU_ASSERT_EQUAL_FATAL(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    resp rs;
    exchange(&s, fd, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n", &rs, 1);
    expect_file(&rs, big, BIG_SIZE, "application/octet-stream");
    resp_free(&rs);
    close(fd);
    coil__http_file_counts c = counts(&s);
    CU_ASSERT(c.sendfile_bytes >= BIG_SIZE - 64 * 1024);
    CU_ASSERT_EQUAL(c.sendfile_bytes + c.read_bytes, BIG_SIZE);
    for (int i = 0; i < 5; i++)
        coil_reactor_iterate(r, 0.001);
    server_stop(&s);
    unlink(path);
    coil_reactor_free(r);
}

static void test_conditional(void)
{
    server s;
    fake_server_start(&s, NULL);
    resp rs;
    char etag[128], lm[64], extra[512];
    hello_validators(&s, etag, sizeof etag, lm, sizeof lm);
    CU_ASSERT(etag[0] == '"' && etag[strlen(etag) - 1] == '"');
    time_t t;
    CU_ASSERT_EQUAL(coil_http_date_parse(lm, &t), 0);

    /* If-None-Match wins over a stale If-Modified-Since */
    static const char wins[] = "If-None-Match: %s\r\n"
                               "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n";
    const char *same[] = {"If-None-Match: %s\r\n", "If-None-Match: \"x\", %s\r\n",
                          "If-None-Match: W/%s\r\n", "If-None-Match: *\r\n", wins};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        snprintf(extra, sizeof extra, same[i], etag);
        mem_get(&s, "GET", "/hello.txt", extra, &rs);
        CU_ASSERT_EQUAL(rs.status, 304);
        CU_ASSERT_EQUAL(rs.body_len, 0);
        EXPECT_HDR(&rs, "ETag", etag);
        resp_free(&rs);
    }
    snprintf(extra, sizeof extra, "If-Modified-Since: %s\r\n", lm);
    expect_answer(&s, "GET", "/hello.txt", extra, 304);
    snprintf(extra, sizeof extra, "If-None-Match: %s\r\n", etag);
    expect_answer(&s, "HEAD", "/hello.txt", extra, 304);

    /* Not matching: the whole file. A matching date does not help when
     * If-None-Match is there (RFC 9110 13.2.2). */
    const char *other[] = {"If-None-Match: \"nope\"\r\n",
                           "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n",
                           "If-Modified-Since: not a date\r\n"};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        mem_get(&s, "GET", "/hello.txt", other[i], &rs);
        expect_file(&rs, "Hello, world\n", 13, NULL);
        resp_free(&rs);
    }
    snprintf(extra, sizeof extra, "If-None-Match: \"nope\"\r\nIf-Modified-Since: %s\r\n",
             lm);
    mem_get(&s, "GET", "/hello.txt", extra, &rs);
    expect_file(&rs, "Hello, world\n", 13, NULL);
    resp_free(&rs);
    CU_ASSERT_EQUAL(counts(&s).open_bodies, 0);
    fake_server_end(&s);
}

static void expect_range(server *s, const char *range, int status, const char *body,
                         const char *content_range)
{
    char extra[256];
    snprintf(extra, sizeof extra, "Range: %s\r\n", range);
    resp rs;
    mem_get(s, "GET", "/hello.txt", extra, &rs);
    if (rs.status != status)
        fprintf(stderr, "\n    Range: %s -> %d", range, rs.status);
    CU_ASSERT_EQUAL(rs.status, status);
    if (body) {
        CU_ASSERT_EQUAL(rs.body_len, strlen(body));
        CU_ASSERT(rs.body_len == strlen(body) && memcmp(rs.body, body, rs.body_len) == 0);
    }
    const char *cr = hdr(&rs, "Content-Range");
    if (content_range) {
        CU_ASSERT_PTR_NOT_NULL(cr);
        if (cr)
            CU_ASSERT_STRING_EQUAL(cr, content_range);
    } else
        CU_ASSERT_PTR_NULL(cr);
    resp_free(&rs);
}

static void test_ranges(void)
{
    server s;
    fake_server_start(&s, NULL);
    expect_range(&s, "bytes=0-4", 206, "Hello", "bytes 0-4/13");
    expect_range(&s, "bytes=7-", 206, "world\n", "bytes 7-12/13");
    expect_range(&s, "bytes=-6", 206, "world\n", "bytes 7-12/13");
    expect_range(&s, "bytes=-100", 206, "Hello, world\n", "bytes 0-12/13");
    expect_range(&s, "bytes=12-1000", 206, "\n", "bytes 12-12/13");
    expect_range(&s, "bytes=13-", 416, NULL, "bytes */13");
    expect_range(&s, "bytes=100-200", 416, NULL, "bytes */13");
    expect_range(&s, "bytes=-0", 416, NULL, "bytes */13");
    /* several ranges, bad syntax, other units: the whole file */
    expect_range(&s, "bytes=0-1,5-6", 200, "Hello, world\n", NULL);
    expect_range(&s, "bytes=5-2", 200, "Hello, world\n", NULL);
    expect_range(&s, "bytes=x-2", 200, "Hello, world\n", NULL);
    expect_range(&s, "lines=1-2", 200, "Hello, world\n", NULL);
    expect_range(&s, "bytes=99999999999999999999-", 200, "Hello, world\n", NULL);

    /* If-Range: our strong tag or our date keeps the range; else 200. */
    resp rs;
    char etag[128], lm[64], extra[512];
    hello_validators(&s, etag, sizeof etag, lm, sizeof lm);
    snprintf(extra, sizeof extra, "Range: bytes=0-4\r\nIf-Range: %s\r\n", etag);
    expect_answer(&s, "GET", "/hello.txt", extra, 206);
    snprintf(extra, sizeof extra, "Range: bytes=0-4\r\nIf-Range: %s\r\n", lm);
    expect_answer(&s, "GET", "/hello.txt", extra, 206);
    const char *stale[] = {"\"other\"", "W/%s", "Thu, 01 Jan 1970 00:00:00 GMT"};
    for (size_t i = 0; i < 3; i++) {
        char ir[200];
        snprintf(ir, sizeof ir, stale[i], etag);
        snprintf(extra, sizeof extra, "Range: bytes=0-4\r\nIf-Range: %s\r\n", ir);
        mem_get(&s, "GET", "/hello.txt", extra, &rs);
        expect_file(&rs, "Hello, world\n", 13, NULL);
        resp_free(&rs);
    }
    /* HEAD ignores Range; an empty file has no satisfiable range. */
    expect_header(&s, "HEAD", "/hello.txt", "Range: bytes=0-4\r\n", 200, "Content-Length",
                  "13");
    expect_header(&s, "GET", "/empty.txt", "Range: bytes=0-\r\n", 416, "Content-Range",
                  "bytes */0");
    /* A range of the big file over the read loop. */
    mem_get(&s, "GET", "/big.bin", "Range: bytes=-70000\r\n", &rs);
    CU_ASSERT_EQUAL(rs.status, 206);
    CU_ASSERT(rs.body_len == 70000 &&
              memcmp(rs.body, big + BIG_SIZE - 70000, 70000) == 0);
    resp_free(&rs);
    fake_server_end(&s);
}

static void test_head_and_methods(void)
{
    server s;
    fake_server_start(&s, NULL);
    resp rs;
    mem_get(&s, "HEAD", "/big.bin", NULL, &rs);
    CU_ASSERT_EQUAL(rs.status, 200);
    EXPECT_HDR(&rs, "Content-Length", "1048577");
    EXPECT_HDR(&rs, "Content-Type", "application/octet-stream");
    CU_ASSERT_EQUAL(rs.body_len, 0);
    resp_free(&rs);
    CU_ASSERT_EQUAL(counts(&s).bodies, 0); /* nothing was read for HEAD */
    mem_get(&s, "POST", "/hello.txt", "Content-Length: 0\r\n", &rs);
    CU_ASSERT_EQUAL(rs.status, 405);
    COIL_TEST_ASSERT_HAS(hdr(&rs, "Allow"), "GET");
    COIL_TEST_ASSERT_HAS(hdr(&rs, "Allow"), "HEAD");
    resp_free(&rs);
    expect_answer(&s, "DELETE", "/hello.txt", NULL, 405);
    fake_server_end(&s);
}

/* `path` must not be served: 404 (or 400 when the server refuses the
 * target itself), and nothing of /etc/passwd or the secret in the body. */
static void expect_refused(server *s, const char *path)
{
    resp rs;
    mem_get(s, "GET", path, NULL, &rs);
    if (rs.status != 404 && rs.status != 400)
        fprintf(stderr, "\n    GET %s -> %d", path, rs.status);
    CU_ASSERT(rs.status == 404 || rs.status == 400);
    CU_ASSERT(!rs.body || !strstr((const char *)rs.body, "root:"));
    CU_ASSERT(!rs.body || !strstr((const char *)rs.body, "secret"));
    resp_free(&rs);
}

static void test_no_escape(void)
{
    server s;
    coil_reactor *r = fake_server_start(&s, NULL);
    const char *bad[] = {
        "/../etc/passwd",
        "/%2e%2e/etc/passwd",
        "/%2E%2E/%2e%2e/etc/passwd",
        "/noindex/..%2f..%2fetc%2fpasswd",
        "/sub/%2e%2e/.secret",
        "/a%2f..%2f.secret",
        "/hello.txt%00.html",
        "/%00",
        "/.secret",
        "/%2esecret",
        "/noindex/.hidden",
        "/link-out",
        "/fifo",
        "/.",
        "/%2e",
        "/hello.txt/",
        "/nothing-here",
        "/noindex//a.txt",
        "//etc/passwd",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_refused(&s, bad[i]);
    /* Symlinks inside the root are followed, relative or absolute. */
    resp rs;
    mem_get(&s, "GET", "/link-in", NULL, &rs);
    CU_ASSERT_EQUAL(rs.status, 200);
    CU_ASSERT(rs.body_len == 13 && memcmp(rs.body, "Hello, world\n", 13) == 0);
    resp_free(&rs);
    mem_get(&s, "GET", "/sub/up/hello.txt", NULL, &rs); /* up -> "../": the root */
    CU_ASSERT_EQUAL(rs.status, 200);
    CU_ASSERT_EQUAL(rs.body_len, 13);
    resp_free(&rs);
    mem_get(&s, "GET", "/link-abs-in", NULL, &rs);
    CU_ASSERT_EQUAL(rs.status, 200);
    CU_ASSERT_EQUAL(rs.body_len, 13);
    resp_free(&rs);
    CU_ASSERT_EQUAL(counts(&s).open_bodies, 0);
    server_stop(&s);

    /* follow_symlinks serves the link out; show_hidden the dot files; the
     * dots stay refused. */
    coil_http_file_options o = {.follow_symlinks = 1, .show_hidden = 1};
    server_start(&s, r, &o, 0);
    mem_get(&s, "GET", "/link-out", NULL, &rs);
    CU_ASSERT_EQUAL(rs.status, 200);
    COIL_TEST_ASSERT_HAS((const char *)rs.body, "root:");
    resp_free(&rs);
    expect_status(&s, "/.secret", 200);
    mem_get(&s, "GET", "/", NULL, &rs); /* listed now, dot files too */
    COIL_TEST_ASSERT_HAS((const char *)rs.body, "href=\"link-out\"");
    COIL_TEST_ASSERT_HAS((const char *)rs.body, "href=\".secret\"");
    resp_free(&rs);
    const char *still[] = {"/../etc/passwd",
                           "/%2e%2e/etc/passwd",
                           "/%2e%2e%2fetc%2fpasswd",
                           "/%00",
                           "/fifo",
                           "/.",
                           "/%2e"};
    for (size_t i = 0; i < sizeof still / sizeof still[0]; i++) {
        resp x;
        mem_get(&s, "GET", still[i], NULL, &x);
        CU_ASSERT(x.status == 404 || x.status == 400);
        CU_ASSERT(!x.body || !strstr((const char *)x.body, "root:"));
        resp_free(&x);
    }
    fake_server_end(&s);
}

static void test_directories(void)
{
    server s;
    coil_reactor *r = fake_server_start(&s, NULL);
    resp rs;
    expect_header(&s, "GET", "/noindex", NULL, 301, "Location", "/noindex/");
    expect_header(&s, "GET", "/noindex?x=1", NULL, 301, "Location", "/noindex/?x=1");
    expect_header(&s, "GET", "/sub", NULL, 301, "Location", "/sub/");
    mem_get(&s, "GET", "/sub/", NULL, &rs);
    expect_file(&rs, "<p>sub index</p>\n", 17, "text/html; charset=utf-8");
    resp_free(&rs);

    mem_get(&s, "GET", "/noindex/", NULL, &rs);
    CU_ASSERT_EQUAL(rs.status, 200);
    EXPECT_HDR(&rs, "Content-Type", "text/html; charset=utf-8");
    const char *page = (const char *)rs.body;
    COIL_TEST_ASSERT_HAS(page, "<a href=\"with%20space.txt\">with space.txt</a>");
    COIL_TEST_ASSERT_HAS(page, "<a href=\"%3Cscript%3E.txt\">&lt;script&gt;.txt</a>");
    COIL_TEST_ASSERT_HAS(page, "<a href=\"z%20dir/\">z dir/</a>");
    COIL_TEST_ASSERT_HAS(page, "<a href=\"b%26dir/\">b&amp;dir/</a>");
    COIL_TEST_ASSERT_HAS(page, "<td>6</td>");
    CU_ASSERT(page && !strstr(page, "<script>"));
    CU_ASSERT(page && !strstr(page, "hidden"));
    /* directories first, then files, each sorted */
    const char *bdir = strstr(page, "b%26dir/"), *zdir = strstr(page, "z%20dir/"),
               *lt = strstr(page, "%3Cscript%3E.txt"), *a = strstr(page, "\"a.txt\""),
               *ws = strstr(page, "with%20space.txt");
    CU_ASSERT(bdir && zdir && lt && a && ws && bdir < zdir && zdir < lt && lt < a &&
              a < ws);
    resp_free(&rs);

    mem_get(&s, "GET", "/", NULL, &rs);
    CU_ASSERT_EQUAL(rs.status, 200);
    page = (const char *)rs.body;
    COIL_TEST_ASSERT_HAS(page, "href=\"hello.txt\"");
    COIL_TEST_ASSERT_HAS(page, "href=\"sub/\"");
    CU_ASSERT(page && !strstr(page, "secret"));
    CU_ASSERT(page && !strstr(page, "fifo"));
    CU_ASSERT(page && !strstr(page, "link-out")); /* it would be 404 */
    COIL_TEST_ASSERT_HAS(page, "href=\"link-in\"");
    COIL_TEST_ASSERT_HAS(page, "href=\"link-abs-in\"");
    CU_ASSERT(page && !strstr(page, "href=\"../\""));
    resp_free(&rs);
    /* HEAD of a listing: the head alone. */
    mem_get(&s, "HEAD", "/noindex/", NULL, &rs);
    CU_ASSERT_EQUAL(rs.status, 200);
    CU_ASSERT_EQUAL(rs.body_len, 0);
    resp_free(&rs);
    server_stop(&s);

    coil_http_file_options o = {.no_listings = 1};
    server_start(&s, r, &o, 0);
    expect_status(&s, "/noindex/", 403);
    expect_status(&s, "/", 403);
    expect_status(&s, "/sub/", 200);
    server_stop(&s);

    coil_http_file_options none = {.index = ""};
    server_start(&s, r, &none, 0);
    mem_get(&s, "GET", "/sub/", NULL, &rs);
    CU_ASSERT_EQUAL(rs.status, 200);
    COIL_TEST_ASSERT_HAS((const char *)rs.body, "href=\"index.html\"");
    resp_free(&rs);
    fake_server_end(&s);
}

/* Mounted below the root (put_child "static"): the redirect and the
 * listing keep the prefix; encoded names reach their files. */
static void test_mounted(void)
{
    static const coil_http_resource_ops empty_ops = {0};
    coil_reactor *r = coil_test_fake_start();
    coil_http_resource *top = coil_http_resource_new(&empty_ops, NULL), *file;
    CU_ASSERT_PTR_NOT_NULL_FATAL(top);
    CU_ASSERT_EQUAL_FATAL(coil_http_file_new(root, NULL, &file, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(coil_http_resource_put_child(top, "static", file), 0);
    server s = {.r = r, .file = file};
    CU_ASSERT_EQUAL_FATAL(coil_http_site_new(r, top, NULL, &s.site, NULL), 0);
    resp rs;
    expect_header(&s, "GET", "/static", NULL, 301, "Location", "/static/");
    mem_get(&s, "GET", "/static/", NULL, &rs);
    CU_ASSERT_EQUAL(rs.status, 200);
    COIL_TEST_ASSERT_HAS((const char *)rs.body, "Directory listing for /static/");
    resp_free(&rs);
    mem_get(&s, "GET", "/static/noindex/with%20space.txt", NULL, &rs);
    expect_file(&rs, "space\n", 6, "text/plain; charset=utf-8");
    resp_free(&rs);
    mem_get(&s, "GET", "/static/noindex/%3Cscript%3E.txt", NULL, &rs);
    expect_file(&rs, "script\n", 7, NULL);
    resp_free(&rs);
    expect_header(&s, "GET", "/static/noindex/z%20dir", NULL, 301, "Location",
                  "/static/noindex/z%20dir/");
    mem_get(&s, "GET", "/static/noindex/z%20dir/", NULL, &rs);
    CU_ASSERT_EQUAL(rs.status, 200);
    COIL_TEST_ASSERT_HAS((const char *)rs.body,
                         "Directory listing for /static/noindex/z dir/");
    COIL_TEST_ASSERT_HAS((const char *)rs.body, "href=\"../\"");
    resp_free(&rs);
    expect_refused(&s, "/static/%2e%2e/static/hello.txt");
    expect_refused(&s, "/static/sub/..%2f..%2f.secret");
    fake_server_end(&s);
}

/* A client of the site over a memory transport (the test's to free). */
static coil_transport *mem_client(server *s, coil_reactor *r)
{
    coil_transport *t =
        coil_memory_transport_new(r, coil_http_site_protocol(s->site, NULL));
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    return t;
}

/* Move what the site wrote to `t` to got[*len..cap). */
static void mem_collect(coil_transport *t, unsigned char *got, size_t cap, size_t *len)
{
    size_t n;
    const unsigned char *w = coil_memory_transport_written(t, &n);
    if (n) {
        CU_ASSERT_FATAL(*len + n <= cap);
        memcpy(got + *len, w, n);
        *len += n;
        coil_memory_transport_clear(t);
    }
}

/* The end of a big file over memory: the body is the file, and once the
 * client is gone no file stays open; frees the response, `got`, `t` and
 * the fake-clock site. */
static void big_received(server *s, coil_transport *t, resp *rs, unsigned char *got)
{
    CU_ASSERT(rs->body_len == BIG_SIZE && memcmp(rs->body, big, BIG_SIZE) == 0);
    resp_free(rs);
    free(got);
    coil_memory_transport_free(t);
    coil_reactor_iterate(s->r, 0);
    CU_ASSERT_EQUAL(counts(s).open_bodies, 0);
    fake_server_end(s);
}

/* A slow reader over memory: the window opens 8 KiB at a time; the queue
 * below the server never holds much more than a piece past the mark. */
static void test_slow_reader(void)
{
    server s;
    coil_reactor *r = fake_server_start(&s, NULL);
    coil_transport *t = mem_client(&s, r);
    coil_memory_transport_set_window(t, 0);
    const char *req = "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n";
    coil_test_feed(t, req, strlen(req));
    size_t cap = 2 * BIG_SIZE, len = 0, max_queued = 0;
    unsigned char *got = malloc(cap);
    resp rs = {0};
    int done = 0;
    for (int i = 0; i < 200000 && !done; i++) {
        coil_reactor_iterate(r, 0);
        coil_transport_info info;
        CU_ASSERT_EQUAL(coil_transport_info_get(t, &info), 0);
        if (info.write_queued > max_queued)
            max_queued = info.write_queued;
        mem_collect(t, got, cap, &len);
        coil_memory_transport_set_window(t, 8192);
        done = resp_parse(got, len, 0, &rs, NULL);
    }
    CU_ASSERT(done);
    if (max_queued > 160 * 1024)
        fprintf(stderr, "\n    %zu bytes queued at most", max_queued);
    CU_ASSERT(max_queued <= 160 * 1024); /* the high mark (64 KiB) + a 64 KiB piece */
    big_received(&s, t, &rs, got);
}

/* A client that sends its request and half-closes at once (nc -N): the
 * big file, which starts on the next reactor pass, still goes out whole. */
static void test_half_close_memory(void)
{
    server s;
    coil_reactor *r = fake_server_start(&s, NULL);
    coil_transport *t = mem_client(&s, r);
    const char *req = "GET /big.bin HTTP/1.0\r\n\r\n";
    coil_test_feed(t, req, strlen(req));
    CU_ASSERT_EQUAL(coil_memory_transport_feed_eof(t), 0);
    size_t cap = 2 * BIG_SIZE, len = 0;
    unsigned char *got = malloc(cap);
    resp rs = {0};
    int done = 0;
    for (int i = 0; i < 200000 && !done; i++) {
        coil_reactor_iterate(r, 0);
        mem_collect(t, got, cap, &len);
        done = resp_parse(got, len, 0, &rs, NULL);
    }
    CU_ASSERT(done);
    big_received(&s, t, &rs, got);
}

/* A client that goes in the middle of the big file: the file is closed. */
static void test_disconnect_memory(void)
{
    server s;
    coil_reactor *r = fake_server_start(&s, NULL);
    int before = count_fds();
    coil_transport *t = mem_client(&s, r);
    coil_memory_transport_set_window(t, 16384);
    const char *req = "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n";
    coil_test_feed(t, req, strlen(req));
    for (int i = 0; i < 50; i++)
        coil_reactor_iterate(r, 0);
    size_t n;
    coil_memory_transport_written(t, &n);
    CU_ASSERT(n > 0 && n < BIG_SIZE);
    CU_ASSERT_EQUAL(counts(&s).open_bodies, 1);
    CU_ASSERT_EQUAL(count_fds(), before + 1);
    CU_ASSERT_EQUAL(coil_memory_transport_peer_close(t, 1), 0);
    for (int i = 0; i < 10; i++)
        coil_reactor_iterate(r, 0);
    CU_ASSERT_EQUAL(counts(&s).open_bodies, 0);
    CU_ASSERT_EQUAL(count_fds(), before);
    coil_memory_transport_free(t);
    fake_server_end(&s);
}

/* A file that shrinks while it is sent: the connection is aborted (the
 * client must not take a short body as whole) and the cause logged. */
static void test_file_shrinks(void)
{
    coil_reactor *r = coil_test_fake_start();
    static unsigned char data[300000];
    memset(data, 's', sizeof data);
    put_file("shrink.bin", data, sizeof data);
    server s;
    server_start(&s, r, NULL, 0);
    coil_transport *t = mem_client(&s, r);
    coil_memory_transport_set_window(t, 16384);
    const char *req = "GET /shrink.bin HTTP/1.1\r\nHost: t\r\n\r\n";
    coil_test_feed(t, req, strlen(req));
    for (int i = 0; i < 20; i++)
        coil_reactor_iterate(r, 0);
    CU_ASSERT_EQUAL(counts(&s).open_bodies, 1);
    char path[512];
    snprintf(path, sizeof path, "%s/shrink.bin", root);
    CU_ASSERT_EQUAL(truncate(path, 100000), 0);
    coil_test_log_capture_start();
    coil_memory_transport_set_window(t, 1 << 30);
    for (int i = 0; i < 50 && !(coil_memory_transport_flags(t) & COIL_MEMORY_CLOSED); i++)
        coil_reactor_iterate(r, 0);
    CU_ASSERT(coil_memory_transport_flags(t) & COIL_MEMORY_ABORTED);
    CU_ASSERT(coil_test_log_contains("shrank"));
    coil_test_log_capture_stop();
    CU_ASSERT_EQUAL(counts(&s).open_bodies, 0);
    coil_memory_transport_free(t);
    coil_reactor_iterate(r, 0);
    unlink(path);
    fake_server_end(&s);
}

static void test_disconnect_tcp(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    server s;
    server_start(&s, r, NULL, 1);
    /* 64 MiB (sparse): more than the socket buffers on both sides hold. */
    char path[512];
    snprintf(path, sizeof path, "%s/huge.bin", root);
    int hfd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    CU_ASSERT_FATAL(hfd >= 0);
    CU_ASSERT_EQUAL(ftruncate(hfd, 64 << 20), 0);
    close(hfd);
    int before = count_fds();
    int fd = tcp_connect_rcvbuf(s.port, 4096);
    const char *req = "GET /huge.bin HTTP/1.1\r\nHost: t\r\n\r\n";
    CU_ASSERT_EQUAL(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    /* Take a little, so the server is in the middle of the file. */
    char buf[4096];
    size_t got = 0;
    double end = coil_reactor_seconds(r) + 10;
    while (got < 8000 && coil_reactor_seconds(r) < end) {
        coil_reactor_iterate(r, 0.01);
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0)
            got += (size_t)n;
    }
    CU_ASSERT(got >= 8000);
    CU_ASSERT_EQUAL(counts(&s).open_bodies, 1);
    /* Reset, not a clean close: the data left unread makes close() send RST. */
    close(fd);
    end = coil_reactor_seconds(r) + 10;
    while (counts(&s).open_bodies != 0 && coil_reactor_seconds(r) < end)
        coil_reactor_iterate(r, 0.01);
    for (int i = 0; i < 5; i++)
        coil_reactor_iterate(r, 0.001);
    CU_ASSERT_EQUAL(counts(&s).open_bodies, 0);
    CU_ASSERT_EQUAL(count_fds(), before);
    CU_ASSERT(counts(&s).sendfile_bytes > 0);
    unlink(path);
    server_stop(&s);
    coil_reactor_free(r);
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_mime_types),         COIL_TEST(test_new_refuses),
        COIL_TEST(test_files_memory),       COIL_TEST(test_single_file_root),
        COIL_TEST(test_files_tcp_sendfile), COIL_TEST(test_files_tls),
        COIL_TEST(test_pipelined_tcp),      COIL_TEST(test_files_unix),
        COIL_TEST(test_conditional),        COIL_TEST(test_ranges),
        COIL_TEST(test_head_and_methods),   COIL_TEST(test_no_escape),
        COIL_TEST(test_directories),        COIL_TEST(test_mounted),
        COIL_TEST(test_slow_reader),        COIL_TEST(test_half_close_memory),
        COIL_TEST(test_disconnect_memory),  COIL_TEST(test_file_shrinks),
        COIL_TEST(test_disconnect_tcp),     {NULL, NULL},
    };
    return coil_test_add_suite_with("http static files", setup, teardown, cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
