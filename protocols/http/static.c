/* coil — HTTP: static files (twisted.web.static.File).
 *
 * One leaf resource serves a directory tree: the request's postpath is
 * checked segment by segment (no "", ".", "..", '/', NUL; no dot files
 * unless show_hidden) and opened beneath the root's directory fd with
 * openat2(RESOLVE_BENEATH), one system call. A symlink that leaves the root
 * (or an absolute one) makes openat2 refuse; then realpath() decides: inside
 * the root it is served, outside only with follow_symlinks. Files are opened
 * O_NONBLOCK so a FIFO cannot block the reactor in open(), and anything but
 * a regular file or a directory is 404.
 *
 * The body: up to FIRST_PIECE bytes are read in the renderer (the server
 * sends the head and them in one write). A bigger body starts on the next
 * pass of the reactor. On plain TCP and UNIX sockets the head goes alone
 * (coil__http_request_send_head) and a pull producer sends every byte of
 * the file by sendfile (coil_transport_send_file), counted with
 * coil__http_request_count_sent. Elsewhere (TLS, SSH channels, memory) the
 * first piece is read and written with coil_http_request_write, which puts
 * the head on the wire in the same write, and the producer goes on in
 * READ_PIECE pieces read with pread. The file is closed when the body is
 * sent, fails, or the client goes (stop_producing); the producer itself is
 * freed on the pass after, once the transport has let go of it.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "coil/log.h"
#include "http_private.h"

#define FIRST_PIECE (16 * 1024)
#define READ_PIECE  (64 * 1024)
#define SEND_PIECE  (1024 * 1024) /* most one sendfile call is asked for */

/* ---- MIME types ---------------------------------------------------------- */

typedef struct mime_entry {
    const char *ext;
    const char *type;
} mime_entry;

/* Sorted by extension (bsearch). */
static const mime_entry mime_table[] = {
    {"7z", "application/x-7z-compressed"},
    {"aac", "audio/aac"},
    {"apng", "image/apng"},
    {"avif", "image/avif"},
    {"bin", "application/octet-stream"},
    {"bmp", "image/bmp"},
    {"bz2", "application/x-bzip2"},
    {"c", "text/x-c; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"deb", "application/vnd.debian.binary-package"},
    {"doc", "application/msword"},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {"eot", "application/vnd.ms-fontobject"},
    {"epub", "application/epub+zip"},
    {"flac", "audio/flac"},
    {"gif", "image/gif"},
    {"gz", "application/gzip"},
    {"h", "text/x-c; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"html", "text/html; charset=utf-8"},
    {"ico", "image/vnd.microsoft.icon"},
    {"ics", "text/calendar; charset=utf-8"},
    {"jar", "application/java-archive"},
    {"jpeg", "image/jpeg"},
    {"jpg", "image/jpeg"},
    {"js", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"jsonld", "application/ld+json"},
    {"m4a", "audio/mp4"},
    {"m4v", "video/mp4"},
    {"map", "application/json"},
    {"md", "text/markdown; charset=utf-8"},
    {"mid", "audio/midi"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"mov", "video/quicktime"},
    {"mp3", "audio/mpeg"},
    {"mp4", "video/mp4"},
    {"mpeg", "video/mpeg"},
    {"odt", "application/vnd.oasis.opendocument.text"},
    {"oga", "audio/ogg"},
    {"ogg", "audio/ogg"},
    {"ogv", "video/ogg"},
    {"opus", "audio/opus"},
    {"otf", "font/otf"},
    {"pdf", "application/pdf"},
    {"png", "image/png"},
    {"ppt", "application/vnd.ms-powerpoint"},
    {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
    {"py", "text/x-python; charset=utf-8"},
    {"rss", "application/rss+xml"},
    {"rtf", "application/rtf"},
    {"sh", "text/x-shellscript; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"tar", "application/x-tar"},
    {"tgz", "application/gzip"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"toml", "application/toml"},
    {"ts", "video/mp2t"},
    {"ttf", "font/ttf"},
    {"txt", "text/plain; charset=utf-8"},
    {"wasm", "application/wasm"},
    {"wav", "audio/wav"},
    {"weba", "audio/webm"},
    {"webm", "video/webm"},
    {"webmanifest", "application/manifest+json"},
    {"webp", "image/webp"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"xhtml", "application/xhtml+xml"},
    {"xls", "application/vnd.ms-excel"},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    {"xml", "application/xml"},
    {"xz", "application/x-xz"},
    {"yaml", "application/yaml"},
    {"yml", "application/yaml"},
    {"zip", "application/zip"},
    {"zst", "application/zstd"},
};

static int mime_cmp(const void *key, const void *elem)
{
    return strcmp((const char *)key, ((const mime_entry *)elem)->ext);
}

const char *coil_http_mime_type(const char *filename)
{
    if (!filename)
        return NULL;
    const char *base = strrchr(filename, '/');
    base = base ? base + 1 : filename;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base || !dot[1])
        return NULL; /* no extension; ".profile" is a name, not an extension */
    char ext[16];
    size_t n = strlen(dot + 1);
    if (n >= sizeof ext)
        return NULL;
    for (size_t i = 0; i <= n; i++) {
        char c = dot[1 + i];
        ext[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    const mime_entry *e =
        bsearch(ext, mime_table, sizeof mime_table / sizeof mime_table[0],
                sizeof mime_table[0], mime_cmp);
    return e ? e->type : NULL;
}

/* ---- the root ------------------------------------------------------------ */

typedef struct file_root {
    unsigned refs;
    int dir_fd;      /* the root directory (O_PATH), or -1 for a single file */
    char *real;      /* realpath of the root */
    size_t real_len; /* strlen(real); 1 for "/" */
    char *index;     /* "" for none */
    char *default_type;
    int no_listings, follow_symlinks, show_hidden;
    coil__http_file_counts stats;
} file_root;

static int no_openat2; /* the kernel (or a seccomp filter) refused it once */

static void root_unref(file_root *fr)
{
    if (!fr || --fr->refs > 0)
        return;
    if (fr->dir_fd >= 0)
        close(fr->dir_fd);
    free(fr->real);
    free(fr->index);
    free(fr->default_type);
    free(fr);
}

/* 1 when the absolute, resolved `path` is the root or below it. */
static int inside_root(const file_root *fr, const char *path)
{
    if (strcmp(fr->real, "/") == 0)
        return 1;
    return strncmp(path, fr->real, fr->real_len) == 0 &&
           (path[fr->real_len] == '/' || path[fr->real_len] == '\0');
}

/* Open `rel` (segments checked, joined by '/'; "" for the root itself)
 * beneath the root. Returns an fd, or -1 with errno (ENOENT for anything
 * that must not be served). */
static int open_beneath(file_root *fr, const char *rel)
{
    const int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    if (!*rel)
        return openat(fr->dir_fd, ".", flags | O_DIRECTORY);
    if (!no_openat2) {
        struct open_how how = {.flags = (uint64_t)flags,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
        long fd = syscall(SYS_openat2, fr->dir_fd, rel, &how, sizeof how);
        if (fd >= 0)
            return (int)fd;
        if (errno == ENOSYS || errno == EPERM || errno == E2BIG)
            no_openat2 = 1;
        else if (errno != EXDEV && errno != ELOOP)
            return -1; /* ENOENT, ENOTDIR, EACCES, ... */
        /* EXDEV: a symlink left the root or is absolute: realpath decides. */
    }
    char full[PATH_MAX], real[PATH_MAX];
    int n = snprintf(full, sizeof full, "%s/%s", fr->real, rel);
    if (n < 0 || (size_t)n >= sizeof full) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (!realpath(full, real))
        return -1;
    if (!inside_root(fr, real) && !fr->follow_symlinks) {
        errno = ENOENT;
        return -1;
    }
    return open(real, flags | O_NOFOLLOW);
}

/* ---- the body producer --------------------------------------------------- */

typedef struct file_body {
    coil_producer base; /* first */
    coil_http_request *req;
    file_root *fr;
    coil_reactor *reactor;
    int fd;
    off_t offset, end;
    int use_sendfile; /* 0 once coil_transport_send_file said ENOTSUP */
    int over;         /* finished or stopped: the free is scheduled */
    int registered;
} file_body;

static int body_free_cb(void *arg)
{
    file_body *b = arg;
    if (b->fd >= 0) {
        close(b->fd);
        b->fr->stats.open_bodies--;
    }
    coil_http_request_unref(b->req);
    root_unref(b->fr);
    free(b);
    return 0;
}

/* The body is over (sent, failed or abandoned): close the file now, free
 * the producer on the next pass (the transport may still hold it until the
 * call that got us here returns). */
static void body_end(file_body *b)
{
    if (b->over)
        return;
    b->over = 1;
    if (b->fd >= 0) {
        close(b->fd);
        b->fd = -1;
        b->fr->stats.open_bodies--;
    }
    if (coil_reactor_call_soon(b->reactor, body_free_cb, b) != 0) {
        /* Out of memory: leak the small struct rather than free it under
         * the transport's feet. */
        coil_log(COIL_LOG_ERROR, COIL__HTTP_LOG, "static: cannot schedule a free");
    }
}

static void body_fail(file_body *b, int err, const char *what)
{
    coil_log(COIL_LOG_WARN, COIL__HTTP_LOG,
             "static: %s %s at byte %jd of %jd: %s (%s); the connection is aborted",
             coil_http_request_method(b->req), coil_http_request_uri(b->req),
             (intmax_t)b->offset, (intmax_t)b->end, what,
             err ? strerror(err) : "the file shrank while it was sent");
    body_end(b);
    /* Finishing short of the Content-Length aborts the connection. */
    (void)coil_http_request_finish(b->req);
}

/* Read one piece at the offset and write it. 1: wrote; 0: done or over. */
static int body_read_piece(file_body *b, size_t max)
{
    char buf[READ_PIECE];
    size_t want = (size_t)(b->end - b->offset);
    if (want > max)
        want = max;
    if (want > sizeof buf)
        want = sizeof buf;
    ssize_t n;
    do
        n = pread(b->fd, buf, want, b->offset);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        body_fail(b, n < 0 ? errno : 0, "reading the file failed");
        return 0;
    }
    b->offset += n;
    b->fr->stats.read_bytes += (uint64_t)n;
    int rc = coil_http_request_write(b->req, buf, (size_t)n);
    if (rc < 0) {
        body_end(b); /* the client is gone */
        return 0;
    }
    return 1;
}

static void body_done(file_body *b)
{
    body_end(b);
    (void)coil_http_request_finish(b->req);
}

static void body_resume(coil_producer *p)
{
    file_body *b = (file_body *)p;
    if (b->over)
        return;
    if (coil_http_request_disconnected(b->req)) {
        body_end(b);
        return;
    }
    if (b->offset >= b->end) {
        body_done(b);
        return;
    }
    coil_transport *t = b->use_sendfile ? coil_http_request_transport(b->req) : NULL;
    if (t) {
        size_t left = (size_t)(b->end - b->offset), sent = 0;
        int rc = coil_transport_send_file(t, b->fd, &b->offset,
                                          left > SEND_PIECE ? SEND_PIECE : left, &sent);
        if (rc == 0) {
            b->fr->stats.sendfile_bytes += sent;
            coil__http_request_count_sent(b->req, sent);
            if (b->offset >= b->end)
                body_done(b);
            return; /* the transport asks again */
        }
        if (rc == COIL_EAGAIN)
            return; /* asked again when the socket drains */
        if (rc == COIL_ECLOSED) {
            body_end(b);
            return;
        }
        if (rc == COIL_ESYSTEM) {
            body_fail(b, errno == ENODATA ? 0 : errno, "sendfile failed");
            return;
        }
        b->use_sendfile = 0; /* COIL_ENOTSUP: read and write instead */
    }
    if (body_read_piece(b, READ_PIECE) && b->offset >= b->end)
        body_done(b);
}

static void body_pause(coil_producer *p)
{
    (void)p; /* a pull producer is never paused */
}

static void body_stop(coil_producer *p)
{
    body_end((file_body *)p);
}

static const coil_producer_ops body_ops = {
    .pause_producing = body_pause,
    .resume_producing = body_resume,
    .stop_producing = body_stop,
};

/* After the renderer returned: the first piece puts the head on the wire,
 * then the producer takes over. */
static int body_start(void *arg)
{
    file_body *b = arg;
    if (b->over)
        return 0;
    if (coil_http_request_disconnected(b->req) || coil_http_request_finished(b->req)) {
        body_end(b);
        return 0;
    }
    /* Over a socket the head goes alone and sendfile takes every byte of
     * the file (as nginx: measured, the 16 KiB first piece read and sent
     * from user space cost ~25% on 1 MiB files); elsewhere the first piece
     * puts the head on the wire in the same write. */
    coil_transport *t = coil_http_request_transport(b->req);
    off_t probe = 0;
    size_t none = 0;
    if (t && coil_transport_send_file(t, b->fd, &probe, 0, &none) == 0) {
        if (coil__http_request_send_head(b->req) < 0) {
            body_end(b);
            return 0;
        }
    } else if (!body_read_piece(b, FIRST_PIECE)) {
        return 0;
    }
    if (b->offset >= b->end) {
        body_done(b);
        return 0;
    }
    int rc = coil_http_request_register_producer(b->req, &b->base, 0);
    if (rc < 0) {
        coil_log(COIL_LOG_ERROR, COIL__HTTP_LOG,
                 "static: %s: registering the producer: %s",
                 coil_http_request_uri(b->req), coil_strerror(rc));
        body_end(b);
        (void)coil_http_request_finish(b->req); /* short: aborts */
        return 0;
    }
    b->registered = 1;
    return 0;
}

/* ---- conditional requests and ranges ------------------------------------- */

static const char *skip_ows(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* 1 when the If-None-Match list `v` matches `etag` (weak comparison). */
static int etag_list_matches(const char *v, const char *etag)
{
    const char *mine = etag[0] == 'W' && etag[1] == '/' ? etag + 2 : etag;
    size_t mine_len = strlen(mine);
    v = skip_ows(v);
    if (*v == '*' && *skip_ows(v + 1) == '\0')
        return 1;
    while (*v) {
        v = skip_ows(v);
        if (v[0] == 'W' && v[1] == '/')
            v += 2;
        if (*v != '"') {
            /* not an entity-tag: skip to the next comma */
            const char *c = strchr(v, ',');
            if (!c)
                break;
            v = c + 1;
            continue;
        }
        const char *q = strchr(v + 1, '"');
        if (!q)
            break;
        size_t len = (size_t)(q - v) + 1;
        if (len == mine_len && memcmp(v, mine, len) == 0)
            return 1;
        v = skip_ows(q + 1);
        if (*v == ',')
            v++;
        else if (*v)
            break;
    }
    return 0;
}

/* Parse a decimal position (no sign); 0, or -1 when not digits or too big. */
static int parse_pos(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 19)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

enum { RANGE_NONE, RANGE_ONE, RANGE_UNSATISFIABLE };

/* A Range header: one satisfiable range -> RANGE_ONE with [*first, *last];
 * none satisfiable -> RANGE_UNSATISFIABLE; bad syntax or several ranges ->
 * RANGE_NONE (the whole file, as RFC 9110 14.2 allows). */
static int parse_range(const char *v, uint64_t size, uint64_t *first, uint64_t *last)
{
    v = skip_ows(v);
    if (strncasecmp(v, "bytes=", 6) != 0)
        return RANGE_NONE;
    v = skip_ows(v + 6);
    if (strchr(v, ','))
        return RANGE_NONE;
    const char *dash = strchr(v, '-');
    if (!dash)
        return RANGE_NONE;
    const char *end = v + strlen(v);
    while (end > dash + 1 && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    uint64_t a, b;
    if (dash == v) { /* suffix: the last N bytes */
        if (parse_pos(dash + 1, (size_t)(end - dash - 1), &b) != 0)
            return RANGE_NONE;
        if (b == 0 || size == 0)
            return RANGE_UNSATISFIABLE;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return RANGE_ONE;
    }
    if (parse_pos(v, (size_t)(dash - v), &a) != 0)
        return RANGE_NONE;
    if (end == dash + 1)
        b = UINT64_MAX; /* open-ended */
    else if (parse_pos(dash + 1, (size_t)(end - dash - 1), &b) != 0 || b < a)
        return RANGE_NONE;
    if (a >= size)
        return RANGE_UNSATISFIABLE;
    *first = a;
    *last = b >= size ? size - 1 : b;
    return RANGE_ONE;
}

/* If-Range: an entity-tag must equal ours (strong), a date must equal
 * Last-Modified. */
static int if_range_matches(const char *v, const char *etag, time_t mtime)
{
    v = skip_ows(v);
    if (*v == '"') {
        size_t n = strlen(etag);
        const char *e = v + strlen(v);
        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        return (size_t)(e - v) == n && memcmp(v, etag, n) == 0;
    }
    if (v[0] == 'W' && v[1] == '/')
        return 0; /* weak tags never match If-Range */
    time_t t;
    return coil_http_date_parse(v, &t) == 0 && t == mtime;
}

/* ---- rendering ----------------------------------------------------------- */

static int set_hdr(coil_http_request *req, const char *name, const char *value)
{
    int rc = coil_http_request_set_header(req, name, value);
    if (rc < 0)
        coil_log(COIL_LOG_ERROR, COIL__HTTP_LOG, "static: setting %s: %s", name,
                 coil_strerror(rc));
    return rc;
}

static int serve_file(file_root *fr, coil_http_request *req, int fd,
                      const struct stat *st, const char *name, int head)
{
    char etag[64], date[COIL_HTTP_DATE_LEN + 2], buf[96];
    uint64_t size = (uint64_t)st->st_size;
    uint64_t mtime_ns =
        (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
    snprintf(etag, sizeof etag, "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 "\"",
             (uint64_t)st->st_ino, size, mtime_ns);
    coil_http_date_format(st->st_mtim.tv_sec, date, sizeof date);
    const char *type = coil_http_mime_type(name);
    if (set_hdr(req, "Content-Type", type ? type : fr->default_type) < 0 ||
        set_hdr(req, "Last-Modified", date) < 0 || set_hdr(req, "ETag", etag) < 0 ||
        set_hdr(req, "Accept-Ranges", "bytes") < 0)
        goto fail;

    /* RFC 9110 13.2.2: If-None-Match first; If-Modified-Since only without
     * it. */
    const char *inm = coil_http_request_header(req, "If-None-Match");
    const char *ims = coil_http_request_header(req, "If-Modified-Since");
    int not_modified = 0;
    if (inm)
        not_modified = etag_list_matches(inm, etag);
    else if (ims) {
        time_t t;
        not_modified = coil_http_date_parse(ims, &t) == 0 && st->st_mtim.tv_sec <= t;
    }
    if (not_modified) {
        close(fd);
        (void)coil_http_request_set_status(req, 304, NULL);
        return COIL_HTTP_DONE;
    }

    uint64_t first = 0, last = size ? size - 1 : 0, len = size;
    const char *range = head ? NULL : coil_http_request_header(req, "Range");
    const char *if_range = coil_http_request_header(req, "If-Range");
    if (range && if_range && !if_range_matches(if_range, etag, st->st_mtim.tv_sec))
        range = NULL;
    if (range) {
        int kind = parse_range(range, size, &first, &last);
        if (kind == RANGE_UNSATISFIABLE) {
            close(fd);
            snprintf(buf, sizeof buf, "bytes */%" PRIu64, size);
            (void)set_hdr(req, "Content-Range", buf);
            (void)coil_http_request_error(req, 416,
                                          "The range asked for is not in the file.");
            return COIL_HTTP_DONE;
        }
        if (kind == RANGE_ONE) {
            snprintf(buf, sizeof buf, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first,
                     last, size);
            if (set_hdr(req, "Content-Range", buf) < 0)
                goto fail;
            (void)coil_http_request_set_status(req, 206, NULL);
            len = last - first + 1;
        } else {
            first = 0;
        }
    }
    int rc = coil_http_request_set_length(req, len);
    if (rc < 0)
        goto fail;
    if (head || len == 0) {
        close(fd);
        return COIL_HTTP_DONE;
    }
    if (len <= FIRST_PIECE) {
        /* Small: read it now; the server sends the head and the bytes in
         * one write when the renderer returns. */
        char small[FIRST_PIECE];
        size_t got = 0;
        while (got < len) {
            ssize_t n = pread(fd, small + got, (size_t)len - got, (off_t)(first + got));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                coil_log(COIL_LOG_ERROR, COIL__HTTP_LOG, "static: reading %s for %s: %s",
                         name, coil_http_request_uri(req),
                         n < 0 ? strerror(errno) : "the file shrank");
                close(fd);
                return COIL_ESYSTEM;
            }
            got += (size_t)n;
        }
        close(fd);
        fr->stats.read_bytes += got;
        rc = coil_http_request_write(req, small, got);
        return rc < 0 && rc != COIL_ECLOSED ? rc : COIL_HTTP_DONE;
    }

    file_body *b = calloc(1, sizeof *b);
    if (!b)
        goto fail;
    b->base.ops = &body_ops;
    b->req = coil_http_request_ref(req);
    b->fr = fr;
    fr->refs++;
    b->reactor = coil_http_request_reactor(req);
    b->fd = fd;
    b->offset = (off_t)first;
    b->end = (off_t)(first + len);
    b->use_sendfile = 1;
    fr->stats.bodies++;
    fr->stats.open_bodies++;
    coil__http_request_send_on_eof(req); /* `printf 'GET ...' | nc -N` gets it */
    if (coil_reactor_call_soon(b->reactor, body_start, b) != 0) {
        b->fd = -1;
        fr->stats.open_bodies--;
        coil_http_request_unref(b->req);
        root_unref(fr);
        free(b);
        goto fail;
    }
    return COIL_HTTP_NOT_DONE_YET;

fail:
    close(fd);
    return COIL_ENOMEM;
}

/* ---- listings ------------------------------------------------------------ */

typedef struct list_entry {
    char *name;
    int is_dir;
    uint64_t size;
} list_entry;

static int entry_cmp(const void *a, const void *b)
{
    const list_entry *x = a, *y = b;
    if (x->is_dir != y->is_dir)
        return y->is_dir - x->is_dir;
    return strcmp(x->name, y->name);
}

typedef struct sbuf {
    char *data;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_add(sbuf *s, const char *text, size_t n)
{
    if (s->failed)
        return;
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *d = realloc(s->data, cap);
        if (!d) {
            s->failed = 1;
            return;
        }
        s->data = d;
        s->cap = cap;
    }
    memcpy(s->data + s->len, text, n);
    s->len += n;
    s->data[s->len] = 0;
}

static void sb_str(sbuf *s, const char *text)
{
    sb_add(s, text, strlen(text));
}

static void sb_escaped(sbuf *s, const char *text)
{
    for (const char *p = text; *p; p++) {
        switch (*p) {
        case '&':
            sb_str(s, "&amp;");
            break;
        case '<':
            sb_str(s, "&lt;");
            break;
        case '>':
            sb_str(s, "&gt;");
            break;
        case '"':
            sb_str(s, "&quot;");
            break;
        case '\'':
            sb_str(s, "&#x27;");
            break;
        default:
            sb_add(s, p, 1);
        }
    }
}

/* Percent-encode all but RFC 3986's unreserved characters. */
static void sb_quoted(sbuf *s, const char *text)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
            (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~')
            sb_add(s, (const char *)p, 1);
        else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            sb_add(s, e, 3);
        }
    }
}

/* 1 when the symlink `name` in the directory `rel` resolves outside the
 * root (so it would be 404: the listing leaves it out). */
static int link_leaves_root(const file_root *fr, const char *rel, const char *name)
{
    char full[PATH_MAX], real[PATH_MAX];
    int n =
        snprintf(full, sizeof full, "%s/%s%s%s", fr->real, rel, *rel ? "/" : "", name);
    if (n < 0 || (size_t)n >= sizeof full || !realpath(full, real))
        return 1;
    return !inside_root(fr, real);
}

static int render_listing(file_root *fr, coil_http_request *req, int fd, const char *rel)
{
    int dfd = dup(fd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    close(fd);
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        coil_log(COIL_LOG_ERROR, COIL__HTTP_LOG,
                 "static: reading the directory for %s: %s", coil_http_request_uri(req),
                 strerror(errno));
        (void)coil_http_request_error(req, 500, "The directory could not be read.");
        return COIL_HTTP_DONE;
    }
    list_entry *items = NULL;
    size_t n = 0, cap = 0;
    int oom = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' &&
            (!fr->show_hidden || !e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, 0) != 0)
            continue; /* dangling symlink, vanished file */
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
            continue; /* FIFOs, sockets, devices are never served */
        if (!fr->follow_symlinks && e->d_type != DT_REG && e->d_type != DT_DIR &&
            link_leaves_root(fr, rel, e->d_name))
            continue; /* a symlink out of the root: 404, so not listed */
        if (n == cap) {
            size_t c = cap ? cap * 2 : 64;
            list_entry *ni = realloc(items, c * sizeof *ni);
            if (!ni) {
                oom = 1;
                break;
            }
            items = ni;
            cap = c;
        }
        items[n].name = strdup(e->d_name);
        if (!items[n].name) {
            oom = 1;
            break;
        }
        items[n].is_dir = S_ISDIR(st.st_mode);
        items[n].size = (uint64_t)st.st_size;
        n++;
    }
    closedir(d);

    sbuf s = {0};
    if (!oom) {
        if (n > 1)
            qsort(items, n, sizeof *items, entry_cmp);
        const char *raw = coil_http_request_path(req);
        size_t rl = strlen(raw);
        char *title = malloc(rl + 1);
        if (title && coil_http_unquote(raw, rl, title, 0) < 0)
            strcpy(title, raw);
        sb_str(&s, "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n"
                   "<title>Directory listing for ");
        sb_escaped(&s, title ? title : raw);
        sb_str(&s, "</title>\n</head>\n<body>\n<h1>Directory listing for ");
        sb_escaped(&s, title ? title : raw);
        sb_str(&s, "</h1>\n<table>\n<tr><th>Name</th><th>Size</th></tr>\n");
        free(title);
        if (rel[0])
            sb_str(&s, "<tr><td><a href=\"../\">../</a></td><td></td></tr>\n");
        for (size_t i = 0; i < n; i++) {
            char size[32];
            sb_str(&s, "<tr><td><a href=\"");
            sb_quoted(&s, items[i].name);
            sb_str(&s, items[i].is_dir ? "/\">" : "\">");
            sb_escaped(&s, items[i].name);
            sb_str(&s, items[i].is_dir ? "/</a></td><td>" : "</a></td><td>");
            if (items[i].is_dir)
                size[0] = 0;
            else
                snprintf(size, sizeof size, "%" PRIu64, items[i].size);
            sb_str(&s, size);
            sb_str(&s, "</td></tr>\n");
        }
        sb_str(&s, "</table>\n</body>\n</html>\n");
    }
    for (size_t i = 0; i < n; i++)
        free(items[i].name);
    free(items);
    if (oom || s.failed) {
        free(s.data);
        return COIL_ENOMEM;
    }
    int rc = set_hdr(req, "Content-Type", "text/html; charset=utf-8");
    if (rc == 0)
        rc = coil_http_request_set_length(req, s.len);
    if (rc == 0)
        rc = coil_http_request_write(req, s.data, s.len);
    free(s.data);
    return rc < 0 && rc != COIL_ECLOSED ? rc : COIL_HTTP_DONE;
}

/* ---- the resource -------------------------------------------------------- */

/* Join the postpath into `rel` after checking every segment. 0, or -1 when
 * the path must be 404. `*trailing` is 1 when the path ends with '/'. */
static int build_rel(const file_root *fr, coil_http_request *req, char *rel, size_t size,
                     const char **last_name)
{
    const char *raw = coil_http_request_path(req);
    if (!raw || strncmp(raw, "//", 2) == 0)
        return -1;
    /* A NUL byte cannot survive as a C string segment: refuse it raw. */
    for (const char *p = raw; (p = strchr(p, '%')) != NULL; p++)
        if (p[1] == '0' && p[2] == '0')
            return -1;
    const char *const *seg;
    size_t n = coil_http_request_postpath(req, &seg);
    size_t len = 0;
    rel[0] = 0;
    *last_name = "";
    for (size_t i = 0; i < n; i++) {
        const char *s = seg[i];
        if (!*s) {
            if (i + 1 == n)
                break; /* the trailing slash */
            return -1;
        }
        if (s[0] == '.' && (!fr->show_hidden || !s[1] || (s[1] == '.' && !s[2])))
            return -1;
        if (strchr(s, '/'))
            return -1;
        size_t sl = strlen(s);
        if (sl > NAME_MAX || len + sl + 2 > size)
            return -1;
        if (len)
            rel[len++] = '/';
        memcpy(rel + len, s, sl + 1);
        len += sl;
        *last_name = s;
    }
    return 0;
}

static int not_found(coil_http_request *req)
{
    (void)coil_http_request_error(req, 404, "No such resource.");
    return COIL_HTTP_DONE;
}

static int open_error(coil_http_request *req, int err)
{
    if (err == EACCES) {
        (void)coil_http_request_error(req, 403, "Access to this resource is forbidden.");
        return COIL_HTTP_DONE;
    }
    if (err == EMFILE || err == ENFILE || err == ENOMEM) {
        coil_log(COIL_LOG_ERROR, COIL__HTTP_LOG, "static: opening for %s: %s",
                 coil_http_request_uri(req), strerror(err));
        (void)coil_http_request_error(req, 503, "The server is out of resources.");
        return COIL_HTTP_DONE;
    }
    return not_found(req);
}

static int file_render(coil_http_resource *res, coil_http_request *req, int head)
{
    file_root *fr = coil_http_resource_user(res);
    const char *raw = coil_http_request_path(req);
    char rel[PATH_MAX];
    const char *name;
    if (build_rel(fr, req, rel, sizeof rel, &name) != 0)
        return not_found(req);
    int trailing = raw && *raw && raw[strlen(raw) - 1] == '/';

    int fd;
    if (fr->dir_fd < 0) { /* the root is a single file */
        if (rel[0] || trailing)
            return not_found(req);
        fd = open(fr->real, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        name = fr->real;
    } else
        fd = open_beneath(fr, rel);
    if (fd < 0)
        return open_error(req, errno);
    fr->stats.opened++;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return open_error(req, err);
    }
    if (S_ISREG(st.st_mode)) {
        if (trailing) {
            close(fd);
            return not_found(req);
        }
        return serve_file(fr, req, fd, &st, name, head);
    }
    if (!S_ISDIR(st.st_mode)) {
        close(fd);
        return not_found(req);
    }
    if (!trailing) {
        close(fd);
        const char *q = coil_http_request_query(req);
        size_t n = strlen(raw) + 2 + (q ? strlen(q) + 1 : 0);
        char *loc = malloc(n);
        if (!loc)
            return COIL_ENOMEM;
        snprintf(loc, n, "%s/%s%s", raw, q && *q ? "?" : "", q && *q ? q : "");
        (void)coil_http_request_redirect(req, loc, 301);
        free(loc);
        return COIL_HTTP_DONE;
    }
    if (fr->index[0]) {
        char idx[PATH_MAX];
        int k = snprintf(idx, sizeof idx, "%s%s%s", rel, rel[0] ? "/" : "", fr->index);
        if (k > 0 && (size_t)k < sizeof idx) {
            int ifd = open_beneath(fr, idx);
            struct stat ist;
            if (ifd >= 0 && fstat(ifd, &ist) == 0 && S_ISREG(ist.st_mode)) {
                close(fd);
                fr->stats.opened++;
                return serve_file(fr, req, ifd, &ist, fr->index, head);
            }
            if (ifd >= 0)
                close(ifd);
        }
    }
    if (fr->no_listings) {
        close(fd);
        (void)coil_http_request_error(req, 403,
                                      "Directory listings are not allowed here.");
        return COIL_HTTP_DONE;
    }
    return render_listing(fr, req, fd, rel);
}

static int file_get(coil_http_resource *res, coil_http_request *req)
{
    return file_render(res, req, 0);
}

static int file_head(coil_http_resource *res, coil_http_request *req)
{
    return file_render(res, req, 1);
}

static void file_destroy(coil_http_resource *res)
{
    root_unref(coil_http_resource_user(res));
}

static const coil_http_resource_ops file_ops = {
    .render_get = file_get,
    .render_head = file_head,
    .destroy = file_destroy,
};

void coil__http_file_stats(const coil_http_resource *res, coil__http_file_counts *out)
{
    const file_root *fr = coil_http_resource_user(res);
    memset(out, 0, sizeof *out);
    if (fr)
        *out = fr->stats;
}

int coil_http_file_new(const char *path, const coil_http_file_options *o,
                       coil_http_resource **out, coil_failure **err)
{
    *out = NULL;
    if (err)
        *err = NULL;
    if (!path || !*path) {
        if (err)
            *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                    "static files: no path given to serve");
        return COIL_EINVAL;
    }
    coil_http_file_options def = {0};
    if (!o)
        o = &def;
    file_root *fr = calloc(1, sizeof *fr);
    if (!fr)
        goto oom;
    fr->refs = 1;
    fr->dir_fd = -1;
    fr->no_listings = o->no_listings;
    fr->follow_symlinks = o->follow_symlinks;
    fr->show_hidden = o->show_hidden;
    fr->index = strdup(o->index ? o->index : "index.html");
    fr->default_type =
        strdup(o->default_type && *o->default_type ? o->default_type
                                                   : "application/octet-stream");
    if (!fr->index || !fr->default_type)
        goto oom;
    if (strchr(fr->index, '/') || strcmp(fr->index, ".") == 0 ||
        strcmp(fr->index, "..") == 0) {
        if (err)
            *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                    "static files: index '%s' must be a plain file name",
                                    fr->index);
        root_unref(fr);
        return COIL_EINVAL;
    }
    fr->real = realpath(path, NULL);
    struct stat st;
    if (!fr->real || stat(fr->real, &st) != 0) {
        int e = errno;
        if (err)
            *err = coil_failure_from_errno(e, "static files: cannot serve '%s'", path);
        root_unref(fr);
        return COIL_ESYSTEM;
    }
    fr->real_len = strlen(fr->real);
    if (S_ISDIR(st.st_mode)) {
        fr->dir_fd = open(fr->real, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fr->dir_fd < 0) {
            int e = errno;
            if (err)
                *err = coil_failure_from_errno(e, "static files: cannot open '%s'", path);
            root_unref(fr);
            return COIL_ESYSTEM;
        }
    } else if (!S_ISREG(st.st_mode)) {
        if (err)
            *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                    "static files: '%s' is neither a directory nor a "
                                    "regular file",
                                    path);
        root_unref(fr);
        return COIL_EINVAL;
    }
    coil_http_resource *res = coil_http_resource_new(&file_ops, fr);
    if (!res)
        goto oom;
    coil_http_resource_set_leaf(res, 1);
    *out = res;
    return 0;

oom:
    root_unref(fr);
    if (err)
        *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                "static files: out of memory serving '%s'", path);
    return COIL_ENOMEM;
}
