/* coil — HTTP resources (twisted.web.resource): the tree, the walk from the
 * root to the resource that renders a request, rendering by method, and the
 * built-in resources (NoResource, ErrorPage, Redirect, static.Data).
 *
 * Children put with put_child live in a sorted array searched by bisection:
 * a resource has a handful of them, and a sorted array is smaller and faster
 * than a hash at that size. Resources are reference counted; a child holds
 * no reference to its parent, so a tree is freed from its root (a cycle made
 * by putting an ancestor under its descendant would never be freed: put_child
 * refuses only the direct one, res under itself).
 *
 * Only the public request API is used here (plus the walk's two internal
 * calls), so this file works with any server behind it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_private.h"

typedef struct child {
    char *segment;
    coil_http_resource *res;
} child;

struct coil_http_resource {
    unsigned refs;
    const coil_http_resource_ops *ops;
    void *user;
    int leaf;
    int stream_body;
    uint64_t max_body;
    child *children; /* sorted by segment (strcmp) */
    size_t nchildren, cap;
};

/* ---- life cycle ------------------------------------------------------------ */

coil_http_resource *coil_http_resource_new(const coil_http_resource_ops *ops, void *user)
{
    static const coil_http_resource_ops none = {0};
    coil_http_resource *res = calloc(1, sizeof *res);
    if (!res)
        return NULL;
    res->refs = 1;
    res->ops = ops ? ops : &none;
    res->user = user;
    return res;
}

coil_http_resource *coil_http_resource_ref(coil_http_resource *res)
{
    if (res)
        res->refs++;
    return res;
}

void coil_http_resource_unref(coil_http_resource *res)
{
    if (!res || --res->refs > 0)
        return;
    if (res->ops->destroy)
        res->ops->destroy(res);
    for (size_t i = 0; i < res->nchildren; i++) {
        free(res->children[i].segment);
        coil_http_resource_unref(res->children[i].res);
    }
    free(res->children);
    free(res);
}

void *coil_http_resource_user(const coil_http_resource *res)
{
    return res ? res->user : NULL;
}

void coil_http_resource_set_leaf(coil_http_resource *res, int leaf)
{
    if (res)
        res->leaf = leaf != 0;
}

void coil_http_resource_set_max_body(coil_http_resource *res, uint64_t max)
{
    if (res)
        res->max_body = max;
}

void coil_http_resource_set_stream_body(coil_http_resource *res, int stream)
{
    if (res)
        res->stream_body = stream != 0;
}

uint64_t coil__http_resource_max_body(const coil_http_resource *res)
{
    return res ? res->max_body : 0;
}

int coil__http_resource_streams_body(const coil_http_resource *res)
{
    return res ? res->stream_body : 0;
}

/* ---- children ------------------------------------------------------------- */

/* The index of `segment`, or where it would go (*found 0). */
static size_t find_child(const coil_http_resource *res, const char *segment, int *found)
{
    size_t lo = 0, hi = res->nchildren;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(res->children[mid].segment, segment);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

int coil_http_resource_put_child(coil_http_resource *res, const char *segment,
                                 coil_http_resource *child_res)
{
    if (!res || !segment || !child_res || child_res == res || strchr(segment, '/')) {
        coil_http_resource_unref(child_res);
        return COIL_EINVAL;
    }
    int found;
    size_t i = find_child(res, segment, &found);
    if (found) {
        coil_http_resource *old = res->children[i].res;
        res->children[i].res = child_res;
        coil_http_resource_unref(old);
        return 0;
    }
    char *copy = strdup(segment);
    if (!copy) {
        coil_http_resource_unref(child_res);
        return COIL_ENOMEM;
    }
    if (res->nchildren == res->cap) {
        size_t cap = res->cap ? res->cap * 2 : 4;
        child *grown = realloc(res->children, cap * sizeof *grown);
        if (!grown) {
            free(copy);
            coil_http_resource_unref(child_res);
            return COIL_ENOMEM;
        }
        res->children = grown;
        res->cap = cap;
    }
    memmove(res->children + i + 1, res->children + i,
            (res->nchildren - i) * sizeof *res->children);
    res->children[i].segment = copy;
    res->children[i].res = child_res;
    res->nchildren++;
    return 0;
}

coil_http_resource *coil_http_resource_get_child(const coil_http_resource *res,
                                                 const char *segment)
{
    if (!res || !segment)
        return NULL;
    int found;
    size_t i = find_child(res, segment, &found);
    return found ? res->children[i].res : NULL;
}

/* ---- the walk --------------------------------------------------------------- */

coil_http_resource *coil__http_resource_locate(coil_http_resource *root,
                                               coil_http_request *req)
{
    if (!root)
        return coil_http_no_resource_new();
    coil_http_resource *res = coil_http_resource_ref(root);
    const char *seg;
    /* Twisted's getChildForRequest: a leaf, or a resource reached with no
     * segment left, renders the request. */
    while (!res->leaf && (seg = coil__http_request_next_segment(req)) != NULL) {
        coil_http_resource *next = coil_http_resource_get_child(res, seg);
        if (next) {
            coil_http_resource_ref(next);
            coil__http_request_advance(req);
        } else {
            /* As Twisted, the segment is in the prepath when getChild runs
             * (the segment's storage stays with the request). */
            coil__http_request_advance(req);
            if (res->ops->get_child)
                next = res->ops->get_child(res, seg, req);
            if (!next && seg[0] == '\0' && coil__http_request_next_segment(req) == NULL) {
                /* A trailing slash with no "" child renders the resource
                 * itself ("/" on a root that renders). Twisted answers 404
                 * there unless getChild("") returns self, as the book's
                 * calendar does; coil spares every resource that code. */
                break;
            }
        }
        coil_http_resource_unref(res);
        if (!next)
            return coil_http_no_resource_new();
        res = next;
    }
    return res;
}

/* ---- rendering by method ---------------------------------------------------- */

/* The methods a resource renders, for Allow (HEAD with GET; OPTIONS always,
 * as the server answers it). */
static void allowed_methods(const coil_http_resource *res, char *buf, size_t size)
{
    const coil_http_resource_ops *o = res->ops;
    const struct {
        const char *name;
        int have;
    } m[] = {
        {"GET", o->render_get != NULL},
        {"HEAD", o->render_head != NULL || o->render_get != NULL},
        {"POST", o->render_post != NULL},
        {"PUT", o->render_put != NULL},
        {"DELETE", o->render_delete != NULL},
        {"PATCH", o->render_patch != NULL},
        {"OPTIONS", 1},
    };
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        if (!m[i].have)
            continue;
        int w = snprintf(buf + n, size - n, "%s%s", n ? ", " : "", m[i].name);
        if (w < 0 || (size_t)w >= size - n)
            break;
        n += (size_t)w;
    }
}

/* The table's renderer for `method` (HEAD falls back to GET), or NULL. */
static coil_http_render_fn renderer_for(const coil_http_resource_ops *o,
                                        const char *method)
{
    if (strcmp(method, "GET") == 0)
        return o->render_get;
    if (strcmp(method, "HEAD") == 0)
        return o->render_head ? o->render_head : o->render_get;
    if (strcmp(method, "POST") == 0)
        return o->render_post;
    if (strcmp(method, "PUT") == 0)
        return o->render_put;
    if (strcmp(method, "DELETE") == 0)
        return o->render_delete;
    if (strcmp(method, "PATCH") == 0)
        return o->render_patch;
    if (strcmp(method, "OPTIONS") == 0)
        return o->render_options;
    return NULL;
}

int coil__http_resource_render(coil_http_resource *res, coil_http_request *req)
{
    if (!res || !req)
        return COIL_EINVAL;
    const coil_http_resource_ops *o = res->ops;
    const char *method = coil_http_request_method(req);
    if (!method)
        method = "";
    coil_http_render_fn fn = renderer_for(o, method);
    if (fn)
        return fn(res, req);

    char allow[64];
    allowed_methods(res, allow, sizeof allow);
    if (strcmp(method, "OPTIONS") == 0) {
        int rc = coil_http_request_set_status(req, 204, NULL);
        if (rc == 0)
            rc = coil_http_request_set_header(req, "Allow", allow);
        if (rc == 0)
            rc = coil_http_request_finish(req);
        return rc < 0 ? rc : COIL_HTTP_DONE;
    }
    if (o->render)
        return o->render(res, req);

    int rc = coil_http_request_set_header(req, "Allow", allow);
    if (rc < 0)
        return rc;
    /* Twisted's UnsupportedMethod page, escaped by the page writer. */
    char detail[256 + 64];
    const char *uri = coil_http_request_path(req);
    snprintf(detail, sizeof detail,
             "Your browser approached me (at %.128s) with the method \"%.64s\". "
             "I only allow the method%s %s here.",
             uri ? uri : "?", method, strchr(allow, ',') ? "s" : "", allow);
    rc = coil_http_request_error(req, 405, detail);
    return rc < 0 ? rc : COIL_HTTP_DONE;
}

static const coil_http_resource_ops error_ops;

int coil__http_resource_allows(const coil_http_resource *res, const char *method)
{
    if (!res || !method || res->ops == &error_ops)
        return 0;
    const coil_http_resource_ops *o = res->ops;
    if (strcmp(method, "OPTIONS") == 0)
        return 1; /* render_options, or the server's 204 with Allow */
    return renderer_for(o, method) != NULL || o->render != NULL;
}

/* ---- pages -------------------------------------------------------------------- */

int coil_http_request_write_escaped(coil_http_request *req, const char *s)
{
    if (!req || !s)
        return COIL_EINVAL;
    const char *run = s;
    for (const char *p = s;; p++) {
        const char *ent = NULL;
        switch (*p) {
        case '&':
            ent = "&amp;";
            break;
        case '<':
            ent = "&lt;";
            break;
        case '>':
            ent = "&gt;";
            break;
        case '"':
            ent = "&quot;";
            break;
        case '\'':
            ent = "&#x27;";
            break;
        case '\0':
            break;
        default:
            continue;
        }
        if (p > run) {
            int rc = coil_http_request_write(req, run, (size_t)(p - run));
            if (rc < 0)
                return rc;
        }
        if (!ent)
            return 0;
        int rc = coil_http_request_write(req, ent, strlen(ent));
        if (rc < 0)
            return rc;
        run = p + 1;
    }
}

/* An error page (Twisted's ErrorPage.render): status, HTML with `brief` as
 * the title and heading and `detail` below, all escaped; finished. */
static int error_page(coil_http_request *req, int status, const char *brief,
                      const char *detail)
{
    if (!req || status < 100 || status > 999)
        return COIL_EINVAL;
    int rc = coil_http_request_set_status(req, status, NULL);
    if (rc < 0)
        return rc;
    rc = coil_http_request_set_header(req, "Content-Type", "text/html; charset=utf-8");
    if (rc < 0)
        return rc;
    if (!brief || !*brief)
        brief = coil_http_status_text(status);
    char code[16];
    snprintf(code, sizeof code, "%d - ", status);
    /* A write fails only once the client is gone; finishing still settles
     * the request then. */
    if (coil_http_request_write(req, "<html>\n  <head><title>", 22) == 0 &&
        coil_http_request_write(req, code, strlen(code)) == 0 &&
        coil_http_request_write_escaped(req, brief) == 0 &&
        coil_http_request_write(req, "</title></head>\n  <body>\n    <h1>", 33) == 0 &&
        coil_http_request_write_escaped(req, brief) == 0 &&
        coil_http_request_write(req, "</h1>\n    <p>", 13) == 0 &&
        coil_http_request_write_escaped(req, detail ? detail : "") == 0)
        (void)coil_http_request_write(req, "</p>\n  </body>\n</html>\n", 23);
    rc = coil_http_request_finish(req);
    return rc == COIL_ECLOSED ? 0 : rc;
}

int coil_http_request_error(coil_http_request *req, int status, const char *detail)
{
    return error_page(req, status, NULL, detail);
}

int coil_http_request_redirect(coil_http_request *req, const char *url, int status)
{
    if (!req || !url)
        return COIL_EINVAL;
    if (status == 0)
        status = 302;
    if (status != 301 && status != 302 && status != 303 && status != 307 && status != 308)
        return COIL_EINVAL;
    /* Location's value is checked by set_header (no CR, LF, NUL). */
    int rc = coil_http_request_set_header(req, "Location", url);
    if (rc < 0)
        return rc;
    rc = coil_http_request_set_status(req, status, NULL);
    if (rc < 0)
        return rc;
    rc = coil_http_request_set_header(req, "Content-Type", "text/html; charset=utf-8");
    if (rc < 0)
        return rc;
    /* Twisted's redirectTo page: a refresh and a link. */
    static const char a[] =
        "<html>\n  <head>\n    <meta http-equiv=\"refresh\" content=\"0;URL=";
    static const char b[] = "\">\n  </head>\n  <body>\n    <a href=\"";
    static const char c[] = "\">click here</a>\n  </body>\n</html>\n";
    if (coil_http_request_write(req, a, sizeof a - 1) == 0 &&
        coil_http_request_write_escaped(req, url) == 0 &&
        coil_http_request_write(req, b, sizeof b - 1) == 0 &&
        coil_http_request_write_escaped(req, url) == 0)
        (void)coil_http_request_write(req, c, sizeof c - 1);
    rc = coil_http_request_finish(req);
    return rc == COIL_ECLOSED ? 0 : rc;
}

/* ---- built-in resources ------------------------------------------------------- */

/* ErrorPage and NoResource. */
typedef struct error_data {
    int status;
    char *brief;
    char *detail; /* NULL: NoResource's text naming the path */
} error_data;

static void error_destroy(coil_http_resource *res)
{
    error_data *e = res->user;
    free(e->brief);
    free(e->detail);
    free(e);
}

static int error_render(coil_http_resource *res, coil_http_request *req)
{
    error_data *e = res->user;
    int rc;
    if (e->detail) {
        rc = error_page(req, e->status, e->brief, e->detail);
    } else {
        const char *path = coil_http_request_path(req);
        char detail[200];
        snprintf(detail, sizeof detail, "No such child resource: %.150s%s",
                 path ? path : "", path && strlen(path) > 150 ? "..." : "");
        rc = error_page(req, e->status, e->brief, detail);
    }
    return rc < 0 ? rc : COIL_HTTP_DONE;
}

/* An error page is its own child, as Twisted's ErrorPage.getChild. */
static coil_http_resource *error_child(coil_http_resource *res, const char *segment,
                                       coil_http_request *req)
{
    (void)segment;
    (void)req;
    return coil_http_resource_ref(res);
}

static const coil_http_resource_ops error_ops = {
    .render = error_render,
    .render_options = error_render,
    .get_child = error_child,
    .destroy = error_destroy,
};

static coil_http_resource *error_new(int status, const char *brief, const char *detail,
                                     int no_resource)
{
    if (status < 100 || status > 999)
        return NULL;
    error_data *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->status = status;
    e->brief = strdup(brief ? brief : coil_http_status_text(status));
    e->detail = no_resource ? NULL : strdup(detail ? detail : "");
    coil_http_resource *res = NULL;
    if (e->brief && (no_resource || e->detail))
        res = coil_http_resource_new(&error_ops, e);
    if (!res) {
        free(e->brief);
        free(e->detail);
        free(e);
    }
    return res;
}

coil_http_resource *coil_http_no_resource_new(void)
{
    return error_new(404, "No Such Resource", NULL, 1);
}

coil_http_resource *coil_http_error_resource_new(int status, const char *brief,
                                                 const char *detail)
{
    return error_new(status, brief, detail, 0);
}

/* util.Redirect: a leaf that redirects every request. */
typedef struct redirect_data {
    int status;
    char url[];
} redirect_data;

static void free_user(coil_http_resource *res)
{
    free(res->user);
}

static int redirect_render(coil_http_resource *res, coil_http_request *req)
{
    redirect_data *d = res->user;
    int rc = coil_http_request_redirect(req, d->url, d->status);
    return rc < 0 ? rc : COIL_HTTP_DONE;
}

static const coil_http_resource_ops redirect_ops = {
    .render = redirect_render,
    .render_options = redirect_render,
    .destroy = free_user,
};

coil_http_resource *coil_http_redirect_resource_new(const char *url, int status)
{
    if (!url || strpbrk(url, "\r\n"))
        return NULL;
    if (status == 0)
        status = 302;
    if (status != 301 && status != 302 && status != 303 && status != 307 && status != 308)
        return NULL;
    size_t n = strlen(url);
    redirect_data *d = malloc(sizeof *d + n + 1);
    if (!d)
        return NULL;
    d->status = status;
    memcpy(d->url, url, n + 1);
    coil_http_resource *res = coil_http_resource_new(&redirect_ops, d);
    if (!res) {
        free(d);
        return NULL;
    }
    res->leaf = 1;
    return res;
}

/* static.Data: fixed bytes for GET (and HEAD). */
typedef struct data_data {
    char *type;
    size_t len;
    char bytes[];
} data_data;

static void data_destroy(coil_http_resource *res)
{
    data_data *d = res->user;
    free(d->type);
    free(d);
}

static int data_render(coil_http_resource *res, coil_http_request *req)
{
    data_data *d = res->user;
    int rc = 0;
    if (d->type)
        rc = coil_http_request_set_header(req, "Content-Type", d->type);
    if (rc == 0)
        rc = coil_http_request_set_length(req, d->len);
    if (rc == 0 && d->len)
        rc = coil_http_request_write(req, d->bytes, d->len);
    if (rc == COIL_ECLOSED)
        rc = 0;
    return rc < 0 ? rc : COIL_HTTP_DONE;
}

static const coil_http_resource_ops data_ops = {
    .render_get = data_render,
    .destroy = data_destroy,
};

coil_http_resource *coil_http_data_resource_new(const void *data, size_t len,
                                                const char *content_type)
{
    if (!data && len)
        return NULL;
    data_data *d = malloc(sizeof *d + len + 1);
    if (!d)
        return NULL;
    d->len = len;
    if (len)
        memcpy(d->bytes, data, len);
    d->bytes[len] = '\0';
    d->type = content_type ? strdup(content_type) : NULL;
    coil_http_resource *res = NULL;
    if (!content_type || d->type)
        res = coil_http_resource_new(&data_ops, d);
    if (!res) {
        free(d->type);
        free(d);
    }
    return res;
}
