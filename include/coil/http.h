/* coil — HTTP/1.1 over any transport, in the manner of twisted.web.
 *
 * Server: a site (Twisted's Site) serves a tree of resources (Resource,
 * NoResource, File, Redirect). Each request walks the tree from the root,
 * one path segment at a time (put_child / get_child), to a resource that
 * renders it by method; a renderer writes the response now or later
 * (NOT_DONE_YET, or a deferred handed to coil_http_request_wait()).
 *
 *   static int clock_get(coil_http_resource *res, coil_http_request *req)
 *   {
 *       coil_http_request_set_header(req, "Content-Type", "text/plain");
 *       coil_http_request_writef(req, "The time is %s", now_text());
 *       return COIL_HTTP_DONE;         // the server finishes the response
 *   }
 *   static const coil_http_resource_ops clock_ops = {.render_get = clock_get};
 *
 *   coil_http_resource *root = coil_http_resource_new(&clock_ops, NULL);
 *   coil_http_site *site;
 *   coil_http_site_new(r, root, NULL, &site, &err);   // takes root's reference
 *   coil_listen(r, "tcp:8080", coil_http_site_factory(site), &listener, &err);
 *   ...
 *   coil_listener_close(listener);
 *   coil_http_site_free(site);  // open connections keep what they need
 *
 * The site is a factory like any other, so HTTP runs unchanged over TCP,
 * UNIX sockets, TLS ("tls:8443:privateKey=key.pem:certKey=cert.pem:
 * alpn=http/1.1" is https) and SSH channels; coil_http_site_protocol() serves
 * a transport you already hold (the in-memory pair in tests).
 *
 * Client: an agent (Twisted's Agent) sends requests over pooled persistent
 * connections and fires a deferred with the response; its body goes to a
 * protocol of yours (coil_http_response_deliver_body, Twisted's
 * deliverBody) or is collected (coil_http_response_read_body). coil_http_get
 * and coil_http_download are getPage and downloadPage.
 *
 *   coil_http_agent *agent;
 *   coil_http_agent_new(r, NULL, &agent, &err);
 *   coil_deferred *d = coil_http_get(agent, "https://example.org/");
 *   coil_deferred_add_callbacks(d, print_page, print_error, NULL);
 *
 * Parsing is coil's own, strict per RFC 9110 and 9112, incremental over any
 * split of the input and zero-copy (header names and values are views into
 * the connection's input buffer). Anything that could smuggle a request
 * past a proxy is refused: Content-Length with Transfer-Encoding, differing
 * Content-Lengths, a Transfer-Encoding whose last coding is not chunked,
 * bare CR, obs-fold, whitespace before a colon, bad chunk sizes or
 * extensions, NUL and control bytes. Every length is bounded; a request over
 * a limit is answered 400, 413, 414, 431, 501 or 505 with a reason, and the
 * connection is closed after the answer.
 *
 * Strings returned by getters are NUL-terminated, owned by the object they
 * came from, and valid as long as it is (a request: until it is finished and
 * released; see coil_http_request_ref).
 */
#ifndef COIL_HTTP_H
#define COIL_HTTP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "address.h"
#include "deferred.h"
#include "error.h"
#include "failure.h"
#include "protocol.h"
#include "reactor.h"
#include "transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coil_tls_context coil_tls_context;

/* ======================================================================= */
/* ---- shared pieces ------------------------------------------------------ */

/* The standard reason phrase for a status ("Not Found"), "" if unknown. */
const char *coil_http_status_text(int status);

/* A list of header fields in order; names compared case-insensitively.
 * Used for the agent's request headers (and anywhere a user builds a set). */
typedef struct coil_http_headers coil_http_headers;
coil_http_headers *coil_http_headers_new(void);
void coil_http_headers_free(coil_http_headers *h);
/* Add a field (copied). COIL_EINVAL when the name is not an RFC 9110 token
 * or the value holds CR, LF, NUL or another control byte but tab. */
int coil_http_headers_add(coil_http_headers *h, const char *name,
                          const char *value) COIL_MUST_CHECK;
/* Replace every field of that name with one (copied); same checks. */
int coil_http_headers_set(coil_http_headers *h, const char *name,
                          const char *value) COIL_MUST_CHECK;
/* Remove every field of that name; returns how many went. */
size_t coil_http_headers_remove(coil_http_headers *h, const char *name);
/* The first value of `name`, or NULL. */
const char *coil_http_headers_get(const coil_http_headers *h, const char *name);
size_t coil_http_headers_count(const coil_http_headers *h);
/* Field `i` (0-based, in order): COIL_EINVAL past the end. */
int coil_http_headers_at(const coil_http_headers *h, size_t i, const char **name,
                         const char **value);

/* An absolute URL as the agent takes it:
 *   http://host[:port]/path?query       https://[::1]:8443/x
 *   http+unix://%2Frun%2Fapp.sock/path  (the socket path percent-encoded as
 *                                        the host, as requests-unixsocket)
 * Userinfo is refused (credentials do not belong in URLs); a fragment is
 * dropped. Parsed into one allocation. */
typedef struct coil_http_url {
    char *scheme;    /* "http", "https", "http+unix" (lower case) */
    char *host;      /* "example.org", "::1" (no brackets), or the UNIX
                        socket path (decoded) for http+unix */
    int port;        /* 80 / 443 when not given; 0 for http+unix */
    char *authority; /* what goes in Host: "example.org", "[::1]:8443",
                        "localhost" for http+unix */
    char *target;    /* the request target: "/path?query" ("/" if empty) */
    char *path;      /* "/path" (still percent-encoded) */
    char *query;     /* "query" without '?', "" if none */
    int secure;      /* 1 for https */
} coil_http_url;
/* Parse `text`; 0, or COIL_EINVAL with *err ("URL 'ftp://x' has scheme
 * 'ftp'; coil's agent speaks http, https and http+unix"). The length is
 * bounded (COIL_HTTP_MAX_URL). */
#define COIL_HTTP_MAX_URL 8192
int coil_http_url_parse(const char *text, coil_http_url **out,
                        coil_failure **err) COIL_MUST_CHECK;
void coil_http_url_free(coil_http_url *u);
/* Resolve `ref` (absolute, or relative such as "/x", "../y", "z?q") against
 * `base`, as a browser follows a Location header (RFC 3986 section 5). */
int coil_http_url_resolve(const coil_http_url *base, const char *ref, coil_http_url **out,
                          coil_failure **err) COIL_MUST_CHECK;

/* Percent-decode `len` bytes of `in` into `out` (room for len + 1; may be
 * `in` itself); `plus_is_space` for form encoding. Returns the decoded
 * length, or -1 on a bad escape ("%zz", "%4"). `out` is NUL-terminated. */
ssize_t coil_http_unquote(const char *in, size_t len, char *out, int plus_is_space);

/* HTML-escape `s` (& < > " ' become entities), as cgi.escape / html.escape:
 * a new string (free() it), NULL when memory runs out. */
char *coil_http_html_escape(const char *s);

/* An HTTP-date (RFC 9110 5.6.7, IMF-fixdate: "Sun, 06 Nov 1994 08:49:37
 * GMT") for `t` into buf (30 bytes are enough); and back (the two obsolete
 * forms too). Parse returns 0 or COIL_EINVAL. */
#define COIL_HTTP_DATE_LEN 30
size_t coil_http_date_format(time_t t, char *buf, size_t size);
int coil_http_date_parse(const char *s, time_t *out) COIL_MUST_CHECK;

/* Bytes collected for you: a body, a page. data[len] is always 0. */
typedef struct coil_http_bytes {
    char *data;
    size_t len;
} coil_http_bytes;
void coil_http_bytes_free(void *bytes); /* a coil_destroy_fn */

/* ======================================================================= */
/* ---- server: requests and responses ------------------------------------- */

typedef struct coil_http_site coil_http_site;
typedef struct coil_http_request coil_http_request;
typedef struct coil_http_resource coil_http_resource;

/* What a renderer returns. */
enum {
    COIL_HTTP_DONE = 0,        /* the response is complete: the server
                                  finishes it if the renderer did not */
    COIL_HTTP_NOT_DONE_YET = 1 /* the renderer finishes it later (Twisted's
                                  NOT_DONE_YET); see coil_http_request_ref
                                  and coil_http_request_wait */
};
/* A negative return (a COIL_E* code) is a failure: the client gets 500 (if
 * nothing was sent yet; else the connection is aborted) and the failure is
 * logged with the request line. */

/* -- the request -- */
const char *coil_http_request_method(const coil_http_request *req); /* "GET" */
const char *coil_http_request_uri(const coil_http_request *req);    /* raw target:
                                                                     "/a%20b?x=1" */
const char *coil_http_request_path(const coil_http_request *req);   /* "/a%20b" */
const char *coil_http_request_query(const coil_http_request *req);  /* "x=1", "" */
int coil_http_request_version(const coil_http_request *req);        /* 10 or 11 */
/* The first value of a request header (names case-insensitive), or NULL. */
const char *coil_http_request_header(const coil_http_request *req, const char *name);
size_t coil_http_request_header_count(const coil_http_request *req);
int coil_http_request_header_at(const coil_http_request *req, size_t i, const char **name,
                                const char **value);
/* The path segments not yet consumed by the tree walk (Twisted's postpath),
 * decoded: for "/cal/2026/x" seen by the resource at /cal, {"2026", "x"}. */
size_t coil_http_request_postpath(const coil_http_request *req,
                                  const char *const **segments);
/* The segments consumed so far (prepath), decoded. */
size_t coil_http_request_prepath(const coil_http_request *req,
                                 const char *const **segments);

/* Form arguments (Twisted's request.args): from the query string, then from
 * an application/x-www-form-urlencoded or multipart/form-data body (once the
 * body is collected: always so when a renderer runs, unless the resource
 * streams its body). Decoded; values may hold NUL bytes (use `len`). */
typedef struct coil_http_arg {
    const char *name;
    const char *value; /* NUL-terminated */
    size_t len;
    const char *filename;     /* multipart file parts; NULL otherwise */
    const char *content_type; /* multipart parts' Content-Type, or NULL */
} coil_http_arg;
/* The first value of argument `name`, or NULL. */
const char *coil_http_request_arg(const coil_http_request *req, const char *name);
size_t coil_http_request_arg_count(const coil_http_request *req);
/* Argument `i` in order (query first, then body); NULL past the end. */
const coil_http_arg *coil_http_request_arg_at(const coil_http_request *req, size_t i);
/* The first argument called `name` with everything known about it. */
const coil_http_arg *coil_http_request_arg_find(const coil_http_request *req,
                                                const char *name);

/* The collected body (empty for none; NULL when the resource streams it). */
const void *coil_http_request_body(const coil_http_request *req, size_t *len);

/* Where the request came from and arrived. */
int coil_http_request_peer(const coil_http_request *req, coil_address *out);
int coil_http_request_host(const coil_http_request *req, coil_address *out);
/* 1 when a TLS layer is in the transport's stack (https). */
int coil_http_request_is_secure(const coil_http_request *req);
/* The transport's info: TLS version, ALPN, the peer certificate's subject
 * and whether it was verified (client certificates), the SSH user, ... */
int coil_http_request_transport_info(const coil_http_request *req,
                                     coil_transport_info *out);
coil_transport *coil_http_request_transport(const coil_http_request *req); /* NULL
                                                                  once gone */
coil_reactor *coil_http_request_reactor(const coil_http_request *req);
coil_http_site *coil_http_request_site(const coil_http_request *req);

/* -- streamed request bodies (resources with coil_http_resource_set_stream_body) --
 * The renderer runs as soon as the head is read; it calls this to receive
 * the body: `data` for each piece (borrowed), then `done` with NULL (the
 * whole body arrived) or a failure (the client went away, a bad chunk, the
 * size limit: the server answers 400/413 itself when nothing was sent).
 * Pause and resume map to the transport's flow control. */
typedef struct coil_http_body_handler {
    void (*data)(void *ud, coil_http_request *req, const void *data, size_t len);
    void (*done)(void *ud, coil_http_request *req, const coil_failure *reason);
} coil_http_body_handler;
int coil_http_request_read_body(coil_http_request *req, const coil_http_body_handler *h,
                                void *ud) COIL_MUST_CHECK;
int coil_http_request_pause_body(coil_http_request *req);
int coil_http_request_resume_body(coil_http_request *req);

/* -- the response --
 * Status, then headers, then body writes, then finish. The head goes out
 * with the first write made after the renderer returned (writes made inside
 * it are held, so a renderer that finishes at once gets a Content-Length).
 * Without a Content-Length the body is chunked (HTTP/1.1) or ends with the
 * connection (HTTP/1.0). HEAD responses send no body (writes are counted for
 * the Content-Length, then dropped). The server adds Date, Server (unless
 * the site's server_name is ""), Content-Length or Transfer-Encoding and
 * Connection as needed, and "Content-Type: text/html" to a response with a
 * body that names no Content-Type (Twisted's Request.defaultContentType;
 * not to 204, 304 or an empty body; a HEAD response counts the body a GET
 * would have). */
int coil_http_request_set_status(coil_http_request *req, int status,
                                 const char *reason /* NULL: standard */);
int coil_http_request_status(const coil_http_request *req);
/* Replace / add a response header (copied); COIL_EINVAL for a bad name or a
 * value with CR, LF or NUL, COIL_EALREADY once the head went out. The
 * server frames bodies itself, so three names are not stored as given:
 * "Content-Length" acts as coil_http_request_set_length (digits only, else
 * COIL_EINVAL); "Connection: close" closes the connection after this
 * response (other Connection values are ignored); "Transfer-Encoding" is
 * refused with COIL_EINVAL. Without a Content-Type, a response with a body
 * gets "text/html" (above). */
int coil_http_request_set_header(coil_http_request *req, const char *name,
                                 const char *value);
int coil_http_request_add_header(coil_http_request *req, const char *name,
                                 const char *value);
const char *coil_http_request_response_header(const coil_http_request *req,
                                              const char *name);
/* Content-Length for what will follow (a file's size). */
int coil_http_request_set_length(coil_http_request *req, uint64_t length);
/* Body bytes (copied); COIL_ECLOSED once the client is gone or the
 * response is finished (the bytes are dropped), COIL_EINVAL past a set
 * Content-Length. */
int coil_http_request_write(coil_http_request *req, const void *data, size_t len);
int coil_http_request_writef(coil_http_request *req, const char *fmt, ...)
    COIL_PRINTF(2, 3);
/* Write `s` HTML-escaped. */
int coil_http_request_write_escaped(coil_http_request *req, const char *s);
/* End the response. Finishing short of a set Content-Length aborts the
 * connection (the client must not take a short body as whole) and logs it.
 * The next pipelined request, if any, is answered after this. */
int coil_http_request_finish(coil_http_request *req);
/* 1 once finished; 1 once the client is gone (writes are then dropped). */
int coil_http_request_finished(const coil_http_request *req);
int coil_http_request_disconnected(const coil_http_request *req);
/* A producer for the response body (a file, a generator): registered on
 * the transport below, so a slow client pauses it (streaming) or is asked
 * for more only as the queue drains (pull); it writes with
 * coil_http_request_write. Unregistered at finish; stop_producing when the
 * client goes away. */
int coil_http_request_register_producer(coil_http_request *req, coil_producer *p,
                                        int streaming) COIL_MUST_CHECK;
int coil_http_request_unregister_producer(coil_http_request *req);
/* Bytes of the response body written so far (before framing). */
uint64_t coil_http_request_sent(const coil_http_request *req);

/* Twisted's redirectTo: status 302 (or `status`: 301, 303, 307, 308),
 * Location `url`, a short HTML body with the link (escaped), finished. */
int coil_http_request_redirect(coil_http_request *req, const char *url, int status);
/* An error page: status, a short escaped HTML body with `detail`, finished
 * (Twisted's ErrorPage / NoResource rendering). */
int coil_http_request_error(coil_http_request *req, int status, const char *detail);

/* -- lifetime of a request --
 * The renderer gets a borrowed request, valid until the response is
 * finished or the client is gone. A renderer that finishes later takes a
 * reference (and drops it when done: after disconnection, writes and finish
 * just return COIL_ECLOSED), or hands a deferred to coil_http_request_wait.
 * Finished requests are freed when the last reference goes.
 * The client is gone when the connection breaks, and also when it closes
 * its side (EOF: what curl --max-time and a closed browser tab send) while
 * its renderer returned NOT_DONE_YET and it waits (no producer feeds the
 * body; a static file is never abandoned so), or while a streamed body is
 * still expected, as in Twisted and nginx: the request
 * is disconnected (notify_finish fails with COIL_ECONNLOST, a waited
 * deferred is cancelled, a registered producer is stopped), pipelined
 * requests not yet answered are dropped and the connection closes.
 * Requests answered at once still get their answers after an EOF. */
coil_http_request *coil_http_request_ref(coil_http_request *req);
void coil_http_request_unref(coil_http_request *req);
/* A deferred (a new reference; unref it) that fires with NULL when the
 * response has been finished and handed to the transport, or fails
 * (COIL_ECONNLOST) when the client went away first (Twisted's
 * notifyFinish). */
coil_deferred *coil_http_request_notify_finish(coil_http_request *req);
/* Deferred rendering made safe: the request keeps itself and `d` (a
 * reference is taken) until `d` fires. If the client disconnects first, `d`
 * is cancelled. If `d` fails, the client gets 500 (the failure is logged).
 * When `d` succeeds and the response is not finished, it is finished.
 * Returns COIL_HTTP_NOT_DONE_YET, for `return coil_http_request_wait(req,
 * d);` in a renderer. */
int coil_http_request_wait(coil_http_request *req, coil_deferred *d);

/* One line in the combined log format (Apache's and nginx's default):
 *   127.0.0.1 - - [01/Dec/2026:23:11:29 +0000] "GET / HTTP/1.1" 200 13 "-" "curl/7.88.1"
 * Control bytes and quotes from the client are escaped (\xNN). Returns
 * the length snprintf would. */
size_t coil_http_request_log_line(const coil_http_request *req, char *buf, size_t size);

/* ======================================================================= */
/* ---- server: resources -------------------------------------------------- */

/* A renderer: write the response (or part of it) and return COIL_HTTP_DONE
 * or COIL_HTTP_NOT_DONE_YET, or a negative code for a 500. */
typedef int (*coil_http_render_fn)(coil_http_resource *res, coil_http_request *req);

/* A resource's behaviour. Every member is optional (NULL).
 *  render_METHOD   renders that method. A method without one, and without
 *                  `render`, is answered 405 with an Allow header listing
 *                  those that have one. HEAD falls back to render_get (the
 *                  body is dropped); OPTIONS without a renderer answers 204
 *                  with Allow.
 *  render          any method the table does not name (or all of them if
 *                  it names none).
 *  get_child       a child for `segment` (decoded) not put with put_child
 *                  (Twisted's getChild: the book's calendar /YEAR). Return
 *                  a NEW reference (coil_http_resource_new, or _ref of one
 *                  you keep), or NULL for 404. Called only when the
 *                  resource is not a leaf.
 *  destroy         free `res->user`; called when the last reference goes. */
typedef struct coil_http_resource_ops {
    coil_http_render_fn render_get;
    coil_http_render_fn render_head;
    coil_http_render_fn render_post;
    coil_http_render_fn render_put;
    coil_http_render_fn render_delete;
    coil_http_render_fn render_patch;
    coil_http_render_fn render_options;
    coil_http_render_fn render;
    coil_http_resource *(*get_child)(coil_http_resource *res, const char *segment,
                                     coil_http_request *req);
    void (*destroy)(coil_http_resource *res);
} coil_http_resource_ops;

/* A resource with one reference (NULL when memory runs out). `ops` must
 * outlive it (a static const table). */
coil_http_resource *coil_http_resource_new(const coil_http_resource_ops *ops, void *user);
coil_http_resource *coil_http_resource_ref(coil_http_resource *res);
void coil_http_resource_unref(coil_http_resource *res);
void *coil_http_resource_user(const coil_http_resource *res);
/* A leaf renders itself for every path below it (Twisted's isLeaf): the
 * rest of the path is in the request's postpath. */
void coil_http_resource_set_leaf(coil_http_resource *res, int leaf);
/* Put `child` (its reference passes in) at `segment` (one segment, no '/';
 * "" is the child for a trailing slash). Replaces one already there. */
int coil_http_resource_put_child(coil_http_resource *res, const char *segment,
                                 coil_http_resource *child) COIL_MUST_CHECK;
/* The child put at `segment` (borrowed), or NULL. */
coil_http_resource *coil_http_resource_get_child(const coil_http_resource *res,
                                                 const char *segment);
/* The most body a request to this resource may send (bytes); 0: the site's
 * default (max_body). A larger Content-Length is answered 413 before the
 * body is read (and before 100 Continue). */
void coil_http_resource_set_max_body(coil_http_resource *res, uint64_t max);
/* Render as soon as the head is read and stream the body to the renderer
 * (coil_http_request_read_body) instead of collecting it. */
void coil_http_resource_set_stream_body(coil_http_resource *res, int stream);

/* Built-in resources (one reference each; NULL when memory runs out). */
/* 404 with a page saying the path was not found (Twisted's NoResource). */
coil_http_resource *coil_http_no_resource_new(void);
/* Any status with an escaped page (Twisted's ErrorPage). */
coil_http_resource *coil_http_error_resource_new(int status, const char *brief,
                                                 const char *detail);
/* Always redirects to `url` (Twisted's util.Redirect), 302 or `status`. */
coil_http_resource *coil_http_redirect_resource_new(const char *url, int status);
/* Fixed bytes with a Content-Type (Twisted's static.Data); copied. */
coil_http_resource *coil_http_data_resource_new(const void *data, size_t len,
                                                const char *content_type);

/* Static files (Twisted's static.File). */
typedef struct coil_http_file_options {
    int no_listings;          /* 1: directories without an index are 403 */
    int follow_symlinks;      /* 1: serve symlinks that point out of the root
                                 (inside the root they are always followed) */
    const char *index;        /* file served for a directory: "index.html";
                                 "" for none */
    const char *default_type; /* unknown extensions: "application/octet-
                                 stream" */
    int show_hidden;          /* 1: serve and list dot files (default: 404) */
} coil_http_file_options;
/* Serve the file or directory `path`: GET and HEAD (405 otherwise), a
 * Content-Type from the extension, Last-Modified / If-Modified-Since, ETag
 * / If-None-Match (304), one Range (206, 416 when unsatisfiable),
 * directories as escaped listings (with a trailing-slash redirect) or their
 * index.html. Bytes go by sendfile on plain TCP and UNIX sockets
 * (coil_transport_send_file) and by a read loop (64 KiB pieces, paced by the
 * transport) on TLS and the rest; files are opened and read on the reactor
 * thread, as nginx does without aio threads.
 * Nothing outside `path` is served: "..", encoded dots and slashes, NUL,
 * and symlinks out of the root (unless follow_symlinks) are 404. */
int coil_http_file_new(const char *path, const coil_http_file_options *o,
                       coil_http_resource **out, coil_failure **err) COIL_MUST_CHECK;
/* The Content-Type coil gives a file name ("text/html; charset=utf-8"),
 * NULL for an unknown extension. */
const char *coil_http_mime_type(const char *filename);

/* ======================================================================= */
/* ---- server: the site --------------------------------------------------- */

typedef struct coil_http_server_options {
    size_t max_request_line;  /* bytes; 0: 8 KiB (414 past it) */
    size_t max_header_bytes;  /* all header lines; 0: 64 KiB (431) */
    size_t max_header_fields; /* 0: 100 (431) */
    uint64_t max_body;        /* collected bodies; 0: 1 MiB (413); resources
                                 may set their own */
    uint64_t max_chunks;      /* chunks in one chunked body; 0: 1M (413) */
    double header_timeout;    /* seconds for a whole request head to arrive
                                 (slowloris); 0: 20 (408, then close) */
    double body_timeout;      /* seconds without body bytes; 0: 60 */
    double idle_timeout;      /* keep-alive: seconds between requests; 0: 60 */
    double write_timeout;     /* seconds a client may take nothing of a
                                 response; 0: 300 */
    unsigned max_requests;    /* per connection; 0: 1000 (then close) */
    const char *server_name;  /* the Server header; NULL: "coil/VERSION",
                                 "": none */
    /* Called once per request when it is over (finished or abandoned),
     * with the combined log line (Twisted's Site logging). NULL: none. */
    void (*log)(void *ud, coil_http_request *req, const char *line);
    void *log_ud;
} coil_http_server_options;

/* A site serving `root` (its reference passes in; NULL: a NoResource).
 * Refcounted like coil_ssh_server: connections keep it alive. Returns 0 or
 * a negative code with *err. */
int coil_http_site_new(coil_reactor *r, coil_http_resource *root,
                       const coil_http_server_options *o, coil_http_site **out,
                       coil_failure **err) COIL_MUST_CHECK;
void coil_http_site_free(coil_http_site *site);
coil_http_resource *coil_http_site_root(const coil_http_site *site);
/* The factory to give a listener (owned by the site). */
coil_factory *coil_http_site_factory(coil_http_site *site);
/* A protocol serving one connection you already have. */
coil_protocol *coil_http_site_protocol(coil_http_site *site, const coil_address *peer);

typedef struct coil_http_site_stats {
    uint64_t connections;  /* accepted */
    uint64_t open;         /* open now */
    uint64_t requests;     /* parsed */
    uint64_t responses;    /* finished */
    uint64_t bad_requests; /* refused by the parser or a limit */
    uint64_t timeouts;     /* connections closed by a timeout */
    uint64_t errors;       /* renderer failures (500) */
} coil_http_site_stats;
void coil_http_site_get_stats(const coil_http_site *site, coil_http_site_stats *out);

/* ======================================================================= */
/* ---- client: the agent -------------------------------------------------- */

typedef struct coil_http_agent coil_http_agent;
typedef struct coil_http_response coil_http_response;

/* A request body (Twisted's IBodyProducer). The agent calls `start` once
 * the connection is ready with a consumer to write to; the producer writes
 * with coil_http_body_write and ends with coil_http_body_done. pause and
 * resume follow the connection's flow control; stop means the request was
 * abandoned (stop writing; destroy follows). `length` is the body's size,
 * or -1 when unknown (then the body is sent chunked). */
typedef struct coil_http_body_producer coil_http_body_producer;
typedef struct coil_http_body_consumer coil_http_body_consumer;
typedef struct coil_http_body_producer_ops {
    void (*start)(coil_http_body_producer *p, coil_http_body_consumer *c);
    void (*pause)(coil_http_body_producer *p);
    void (*resume)(coil_http_body_producer *p);
    void (*stop)(coil_http_body_producer *p);
    void (*destroy)(coil_http_body_producer *p); /* free it */
} coil_http_body_producer_ops;
struct coil_http_body_producer {
    const coil_http_body_producer_ops *ops;
    int64_t length;
    void *user;
};
int coil_http_body_write(coil_http_body_consumer *c, const void *data, size_t len);
/* The body is complete (NULL) or broke (a failure, ownership passes in:
 * the request fails with it). */
int coil_http_body_done(coil_http_body_consumer *c, coil_failure *failure);
/* The book's StringProducer: `len` bytes (copied) with a known length. */
coil_http_body_producer *coil_http_body_from_bytes(const void *data, size_t len);
/* A file's bytes, read as the connection takes them; the length is the
 * file's size. NULL with *err when it cannot be opened. */
coil_http_body_producer *coil_http_body_from_file(const char *path, coil_failure **err);

/* Connect `p` to where `url` points, your way (an SSH channel, a memory
 * pair, a proxy): return a deferred that fires (any value) once p's
 * connection_made has run, or fails. `p` is owned by the hook from the
 * call (destroyed if the connection never comes up). */
typedef coil_deferred *(*coil_http_connect_fn)(void *ud, const coil_http_url *url,
                                               coil_protocol *p);

typedef struct coil_http_agent_options {
    coil_tls_context *tls;        /* client context for https (a reference is
                                     taken); NULL: one made on first use that
                                     verifies against the system store */
    unsigned max_per_host;        /* connections per scheme://host:port at
                                     once; 0: 6. More requests wait in line */
    unsigned max_idle_per_host;   /* persistent connections kept; 0: 2 */
    int no_persistent;            /* 1: a new connection per request */
    double connect_timeout;       /* seconds; 0: 30 */
    double response_timeout;      /* seconds from the request sent to the
                                     response head; 0: 60 */
    double idle_timeout;          /* seconds without body bytes; 0: 60 */
    double pool_timeout;          /* seconds an idle pooled connection is
                                     kept; 0: 60 */
    int follow_redirects;         /* 1: follow 301/302/303/307/308 (off by
                                     default, as Twisted's Agent) */
    unsigned max_redirects;       /* 0: 20 */
    size_t max_header_bytes;      /* response heads; 0: 64 KiB */
    uint64_t max_body;            /* coil_http_get / read_body; 0: 64 MiB */
    const char *user_agent;       /* NULL: "coil/VERSION"; "": none */
    coil_http_connect_fn connect; /* NULL: TCP, TLS or UNIX by the URL */
    void *connect_ud;
} coil_http_agent_options;

int coil_http_agent_new(coil_reactor *r, const coil_http_agent_options *o,
                        coil_http_agent **out, coil_failure **err) COIL_MUST_CHECK;
/* Close idle connections, fail requests waiting in line (COIL_ECANCELLED),
 * abort those in flight; safe with deferreds still held. */
void coil_http_agent_free(coil_http_agent *a);

/* Send a request. `headers` is copied (NULL: none); `body` passes in (NULL:
 * none). Fires with a coil_http_response * (the value owns it; take it with
 * coil_deferred_take_result or leave it to the deferred) once the head is
 * in, whatever the status; fails on a bad URL, connection or TLS failure,
 * timeout, or a bad response ("bad response from 127.0.0.1:8080: ..."). A
 * cancelled request aborts its connection.
 * Headers: the agent sends Host (the URL's authority) and User-Agent; yours
 * replace them. Content-Length and Transfer-Encoding are refused
 * (COIL_EINVAL): the agent frames the body itself, Content-Length from the
 * producer's length (0 for a POST, PUT or PATCH without a body), chunked
 * when the length is -1. Idempotent requests (GET, HEAD, PUT, DELETE,
 * OPTIONS, TRACE) sent on a pooled connection that the server had closed
 * are sent once more on a new one. A response that is freed before its
 * body is read drops the rest (the connection is kept when little is
 * left). */
coil_deferred *coil_http_agent_request(coil_http_agent *a, const char *method,
                                       const char *url, const coil_http_headers *headers,
                                       coil_http_body_producer *body);

int coil_http_response_status(const coil_http_response *resp);
const char *coil_http_response_reason(const coil_http_response *resp);
int coil_http_response_version(const coil_http_response *resp); /* 10, 11 */
const char *coil_http_response_header(const coil_http_response *resp, const char *name);
size_t coil_http_response_header_count(const coil_http_response *resp);
int coil_http_response_header_at(const coil_http_response *resp, size_t i,
                                 const char **name, const char **value);
/* Content-Length, or -1 when the length is not known. */
int64_t coil_http_response_length(const coil_http_response *resp);
/* The URL this response answers (the last one when redirects were
 * followed). */
const char *coil_http_response_url(const coil_http_response *resp);
void coil_http_response_free(void *resp); /* a coil_destroy_fn */

/* Twisted's deliverBody: `p` (owned from now on) gets connection_made on a
 * transport of kind "http-body" that can pause_reading / resume_reading
 * (flow control reaches the server) and abort_connection (stop; also
 * lose_connection: the connection is closed, connection_lost says
 * COIL_EABORTED), then data_received for each piece and connection_lost:
 * COIL_ECLOSED when the whole body arrived (Twisted's ResponseDone),
 * COIL_ECONNLOST when it was cut short (the cause says why: the server
 * closed, a bad chunk, a timeout). write and the producer calls answer
 * COIL_ENOTSUP. Bytes that came before this call were held for it (the
 * connection pauses past 64 KiB). Call once per response (COIL_ESTATE
 * then; `p` is destroyed). */
int coil_http_response_deliver_body(coil_http_response *resp, coil_protocol *p);
/* Twisted's readBody: a deferred firing with coil_http_bytes * (up to
 * `max` bytes; 0: the agent's max_body; more fails with COIL_EMSGSIZE). */
coil_deferred *coil_http_response_read_body(coil_http_response *resp, uint64_t max);

/* getPage: GET `url`, fire with its body as coil_http_bytes *; a status of
 * 400 or more fails in domain COIL_DOMAIN_HTTP with the status as the code
 * ("GET http://127.0.0.1:8080/x: 404 Not Found"). Bad responses fail with
 * COIL_EPROTO, bodies over max_body with COIL_EMSGSIZE. */
coil_deferred *coil_http_get(coil_http_agent *a, const char *url);
/* downloadPage: GET `url` into `path`, written as it arrives (to
 * PATH.part, renamed at the end; removed on failure; no size limit); fires
 * with a NULL value on success. Same failures as coil_http_get. */
coil_deferred *coil_http_download(coil_http_agent *a, const char *url, const char *path);

typedef struct coil_http_agent_stats {
    uint64_t requests;
    uint64_t connections; /* opened */
    uint64_t reused;      /* requests sent on a pooled connection */
    size_t idle;          /* pooled connections now */
    size_t active;        /* connections carrying a request now */
    size_t waiting;       /* requests waiting for a connection */
} coil_http_agent_stats;
void coil_http_agent_get_stats(const coil_http_agent *a, coil_http_agent_stats *out);

#ifdef __cplusplus
}
#endif

#endif
