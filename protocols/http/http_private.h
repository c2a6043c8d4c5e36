/* coil — HTTP internals shared by the server's files (internal).
 *
 *   server.c    the site, the connection protocol (parsing, keep-alive,
 *               pipelining, timeouts, 100-continue, body collection and
 *               streaming, response framing), the request object and every
 *               coil_http_request_* function but those in resource.c
 *   resource.c  resources, the tree walk, render by method, the built-in
 *               resources, coil_http_request_redirect / _error /
 *               _write_escaped
 *   forms.c     argument lists: query strings, urlencoded and multipart
 *               bodies
 *   static.c    coil_http_file_new (static.File), coil_http_mime_type
 *   util.c      headers, URLs, dates, status texts, unquote, html escape
 *   parse.c     http_parse.h
 *   client.c    the agent (and body producers, get, download)
 */
#ifndef COIL_HTTP_PRIVATE_H
#define COIL_HTTP_PRIVATE_H

#include "coil/http.h"
#include "http_parse.h"

#define COIL__HTTP_LOG "http"

/* ---- resource.c, called by server.c ---------------------------------- */

/* Walk from `root` along the request's postpath (coil__http_request_next_
 * segment / _advance) to the resource that renders it: put children
 * first, then get_child; a leaf stops the walk. Returns a NEW reference to
 * that resource, or a NoResource (404) when a step finds nothing. Never
 * NULL unless memory runs out. */
coil_http_resource *coil__http_resource_locate(coil_http_resource *root,
                                               coil_http_request *req);
/* Render by method: render_METHOD, HEAD -> render_get, OPTIONS -> 204 with
 * Allow, `render`, else 405 with Allow. Returns what the renderer returned
 * (COIL_HTTP_DONE, COIL_HTTP_NOT_DONE_YET, or a negative code). */
int coil__http_resource_render(coil_http_resource *res, coil_http_request *req);
/* 1 when `res` renders `method` itself; 0 when rendering it would be a
 * 405 or `res` is a built-in error resource (NoResource, ErrorPage): the
 * answer does not depend on the request body (100-continue is skipped). */
int coil__http_resource_allows(const coil_http_resource *res, const char *method);
uint64_t coil__http_resource_max_body(const coil_http_resource *res); /* 0: site's */
int coil__http_resource_streams_body(const coil_http_resource *res);

/* ---- server.c, called by resource.c ---------------------------------- */

/* The next postpath segment (decoded), NULL when none is left. */
const char *coil__http_request_next_segment(const coil_http_request *req);
/* Move the next postpath segment to the prepath. */
void coil__http_request_advance(coil_http_request *req);
/* The renderer returns NOT_DONE_YET but its answer is as good as started
 * (a file body that begins on the next reactor pass): a client EOF does
 * not abandon it (see server.c, client_gone). */
void coil__http_request_send_on_eof(coil_http_request *req);
/* Put the head (and what the renderer wrote) on the wire now, without body
 * bytes: static.c before it sendfiles a file from its first byte. 0 (also
 * when the head is out already or the renderer still runs), or
 * COIL_ECLOSED / a write error. */
int coil__http_request_send_head(coil_http_request *req);

/* ---- server.c, called by static.c ------------------------------------ */

/* Count `n` body bytes that went to the transport without
 * coil_http_request_write (sendfile): coil_http_request_sent, the
 * Content-Length check at finish and the log line's size include them. */
void coil__http_request_count_sent(coil_http_request *req, uint64_t n);

/* ---- static.c -------------------------------------------------------- */

/* What a coil_http_file_new resource has done (tests prove which path ran). */
typedef struct coil__http_file_counts {
    uint64_t opened;         /* files and directories opened for requests */
    uint64_t bodies;         /* file bodies started (GET with bytes to send) */
    uint64_t open_bodies;    /* bodies whose file is still open */
    uint64_t sendfile_bytes; /* body bytes sent by coil_transport_send_file */
    uint64_t read_bytes;     /* body bytes read and written (the read loop) */
} coil__http_file_counts;
void coil__http_file_stats(const coil_http_resource *file, coil__http_file_counts *out);

/* ---- forms.c --------------------------------------------------------- */

/* An argument list (the request's args). Zero it to start. Bounded: at
 * most COIL__HTTP_MAX_ARGS arguments (more: COIL_EMSGSIZE). */
#define COIL__HTTP_MAX_ARGS 1000
typedef struct coil__http_args {
    coil_http_arg *items;
    size_t count, cap;
    void **blocks; /* storage owned by the list */
    size_t nblocks, blocks_cap;
} coil__http_args;
/* "a=1&b=x+y&c=%41" (decoded, '+' is a space). A bad escape: COIL_EINVAL
 * with *why. */
int coil__http_args_add_urlencoded(coil__http_args *a, const char *s, size_t len,
                                   const char **why);
/* A multipart/form-data body: `content_type` is the request's Content-Type
 * (its boundary parameter is used). Parts become arguments (filename and
 * content_type set for file parts). Malformed: COIL_EINVAL with *why
 * ("multipart body has no closing boundary"). Bounded by the body (already
 * limited) and COIL__HTTP_MAX_ARGS parts; part heads at most 8 KiB. */
int coil__http_args_add_multipart(coil__http_args *a, const char *content_type,
                                  const char *body, size_t len, const char **why);
const coil_http_arg *coil__http_args_find(const coil__http_args *a, const char *name);
void coil__http_args_free(coil__http_args *a);

#endif
