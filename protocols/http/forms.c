/* coil — HTTP form arguments (Twisted's request.args): query strings and
 * application/x-www-form-urlencoded bodies, and multipart/form-data bodies
 * (RFC 7578 on RFC 2046's framing).
 *
 * Every argument is one allocation (name, value, filename and content type
 * one after the other, each NUL-terminated) kept in the list's blocks; the
 * value may hold NUL bytes, so its length goes with it. A call that fails
 * leaves the list as it was before the call.
 *
 * The multipart parser works on the whole body (the server has collected it
 * within the resource's limit) and never copies more than a part's value.
 * It is strict where leniency could let two readers see different fields:
 * CRLF line ends, one Content-Disposition of type form-data with a name per
 * part, no obs-fold, no control bytes in part heads, a closing delimiter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_private.h"

/* RFC 2046 5.1.1: 1 to 70 characters. */
#define BOUNDARY_MAX 70
/* A part's head (its header lines) at most this many bytes. */
#define PART_HEAD_MAX 8192

/* ---- the list ------------------------------------------------------------- */

/* Room for one more argument and its block. */
static int reserve(coil__http_args *a)
{
    if (a->count >= COIL__HTTP_MAX_ARGS)
        return COIL_EMSGSIZE;
    if (a->count == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        coil_http_arg *items = realloc(a->items, cap * sizeof *items);
        if (!items)
            return COIL_ENOMEM;
        a->items = items;
        a->cap = cap;
    }
    if (a->nblocks == a->blocks_cap) {
        size_t cap = a->blocks_cap ? a->blocks_cap * 2 : 8;
        void **blocks = realloc(a->blocks, cap * sizeof *blocks);
        if (!blocks)
            return COIL_ENOMEM;
        a->blocks = blocks;
        a->blocks_cap = cap;
    }
    return 0;
}

/* Drop what was added since the list had `count` items and `nblocks`. */
static void roll_back(coil__http_args *a, size_t count, size_t nblocks)
{
    while (a->nblocks > nblocks)
        free(a->blocks[--a->nblocks]);
    a->count = count;
}

const coil_http_arg *coil__http_args_find(const coil__http_args *a, const char *name)
{
    if (!a || !name)
        return NULL;
    for (size_t i = 0; i < a->count; i++)
        if (strcmp(a->items[i].name, name) == 0)
            return &a->items[i];
    return NULL;
}

void coil__http_args_free(coil__http_args *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nblocks; i++)
        free(a->blocks[i]);
    free(a->blocks);
    free(a->items);
    memset(a, 0, sizeof *a);
}

/* ---- urlencoded ------------------------------------------------------------ */

/* One "name=value" (or "name", an empty value, as Twisted's parse_qs with
 * keep_blank_values). */
static int add_pair(coil__http_args *a, const char *s, size_t len, const char **why)
{
    const char *eq = memchr(s, '=', len);
    size_t nlen = eq ? (size_t)(eq - s) : len;
    const char *v = eq ? eq + 1 : s + len;
    size_t vlen = eq ? len - nlen - 1 : 0;
    int rc = reserve(a);
    if (rc < 0) {
        *why = rc == COIL_EMSGSIZE ? "more than 1000 form arguments" : "out of memory";
        return rc;
    }
    char *block = malloc(nlen + 1 + vlen + 1);
    if (!block) {
        *why = "out of memory";
        return COIL_ENOMEM;
    }
    char *name = block, *value = block + nlen + 1;
    ssize_t dn = coil_http_unquote(s, nlen, name, 1);
    ssize_t dv = dn < 0 ? -1 : coil_http_unquote(v, vlen, value, 1);
    if (dn < 0 || dv < 0) {
        free(block);
        *why = "form argument has a bad percent escape (% must be followed by two hex "
               "digits)";
        return COIL_EINVAL;
    }
    if (memchr(name, '\0', (size_t)dn)) {
        /* "admin%00x" must not be found as "admin". */
        free(block);
        *why = "form argument name holds a NUL byte (%00)";
        return COIL_EINVAL;
    }
    a->blocks[a->nblocks++] = block;
    a->items[a->count++] = (coil_http_arg){.name = name,
                                           .value = value,
                                           .len = (size_t)dv,
                                           .filename = NULL,
                                           .content_type = NULL};
    return 0;
}

int coil__http_args_add_urlencoded(coil__http_args *a, const char *s, size_t len,
                                   const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (!a || (!s && len)) {
        *why = "no argument list or no text";
        return COIL_EINVAL;
    }
    size_t count = a->count, nblocks = a->nblocks;
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(s + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - s) : len;
        if (end > i) { /* "a=1&&b=2": empty pieces are skipped */
            int rc = add_pair(a, s + i, end - i, why);
            if (rc < 0) {
                roll_back(a, count, nblocks);
                return rc;
            }
        }
        i = end + 1;
    }
    return 0;
}

/* ---- header parameters -------------------------------------------------------- */

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static size_t skip_ows(const char *s, size_t i, size_t len)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

/* A parameter list "; a=b; c="d\"e"" after a media type or disposition
 * type. `each` sees every parameter (name, decoded value); a nonzero return
 * stops with that code. Values: a token, or a quoted-string with quoted-pairs
 * (decoded into `buf`, which holds `len` + 1 bytes). */
typedef int (*param_fn)(void *ud, const char *name, size_t nlen, const char *value,
                        size_t vlen);

static int each_param(const char *s, size_t len, size_t i, char *buf, param_fn fn,
                      void *ud, const char **why)
{
    size_t out = 0;
    for (;;) {
        i = skip_ows(s, i, len);
        if (i == len)
            return 0;
        if (s[i] != ';') {
            *why = "header parameters are not separated by ';'";
            return COIL_EINVAL;
        }
        i = skip_ows(s, i + 1, len);
        if (i == len)
            return 0; /* a trailing ';' */
        size_t n0 = i;
        while (i < len && is_tchar((unsigned char)s[i]))
            i++;
        size_t nlen = i - n0;
        i = skip_ows(s, i, len);
        if (nlen == 0 || i == len || s[i] != '=') {
            *why = "header parameter is not name=value";
            return COIL_EINVAL;
        }
        i = skip_ows(s, i + 1, len);
        const char *value = buf + out;
        size_t vlen = 0;
        if (i < len && s[i] == '"') {
            i++;
            for (;;) {
                if (i == len) {
                    *why = "header parameter has an unterminated quoted string";
                    return COIL_EINVAL;
                }
                char c = s[i++];
                if (c == '"')
                    break;
                if (c == '\\') {
                    if (i == len) {
                        *why = "header parameter has an unterminated quoted string";
                        return COIL_EINVAL;
                    }
                    c = s[i++];
                }
                buf[out + vlen++] = c;
            }
        } else {
            /* Unquoted: a token in RFC 9110; clients also send boundaries
             * with '=' or '/', which are taken up to ';' or white space. */
            while (i < len && s[i] != ';' && s[i] != ' ' && s[i] != '\t' && s[i] != '"')
                buf[out + vlen++] = s[i++];
            if (vlen == 0) {
                *why = "header parameter has an empty value";
                return COIL_EINVAL;
            }
        }
        buf[out + vlen] = '\0';
        out += vlen + 1;
        int rc = fn(ud, s + n0, nlen, value, vlen);
        if (rc != 0)
            return rc;
    }
}

static int name_is(const char *name, size_t nlen, const char *want)
{
    return strlen(want) == nlen && strncasecmp(name, want, nlen) == 0;
}

/* Control bytes (but tab) and DEL have no place in a header value. */
static int has_ctl(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 1;
    }
    return 0;
}

/* ---- the boundary ------------------------------------------------------------ */

typedef struct ct_params {
    const char *boundary;
    size_t blen;
    int seen;
    const char **why;
} ct_params;

static int ct_param(void *ud, const char *name, size_t nlen, const char *value,
                    size_t vlen)
{
    ct_params *p = ud;
    if (!name_is(name, nlen, "boundary"))
        return 0;
    if (p->seen++) {
        *p->why = "multipart Content-Type has two boundary parameters";
        return COIL_EINVAL;
    }
    p->boundary = value;
    p->blen = vlen;
    return 0;
}

/* RFC 2046 bchars: DIGIT ALPHA ' ( ) + _ , - . / : = ? and space (not
 * last). */
static int boundary_ok(const char *b, size_t n)
{
    if (n == 0 || n > BOUNDARY_MAX || b[n - 1] == ' ')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)b[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z') || (c && strchr("'()+_,-./:=? ", c))))
            return 0;
    }
    return 1;
}

/* The boundary of `content_type` into out (BOUNDARY_MAX + 1 bytes). */
static int parse_boundary(const char *ct, char *out, size_t *blen, const char **why)
{
    static const char type[] = "multipart/form-data";
    size_t len = strlen(ct);
    size_t i = skip_ows(ct, 0, len);
    if (len - i < sizeof type - 1 || strncasecmp(ct + i, type, sizeof type - 1) != 0 ||
        (i + sizeof type - 1 < len && !strchr(" \t;", ct[i + sizeof type - 1]))) {
        *why = "Content-Type is not multipart/form-data";
        return COIL_EINVAL;
    }
    if (len > PART_HEAD_MAX) {
        *why = "multipart Content-Type is too long";
        return COIL_EINVAL;
    }
    char *buf = malloc(len + 1);
    if (!buf) {
        *why = "out of memory";
        return COIL_ENOMEM;
    }
    ct_params p = {.why = why};
    int rc = each_param(ct, len, i + sizeof type - 1, buf, ct_param, &p, why);
    if (rc == 0 && !p.seen) {
        *why = "multipart Content-Type has no boundary parameter";
        rc = COIL_EINVAL;
    } else if (rc == 0 && p.blen > BOUNDARY_MAX) {
        *why = "multipart boundary is longer than 70 characters";
        rc = COIL_EINVAL;
    } else if (rc == 0 && !boundary_ok(p.boundary, p.blen)) {
        *why = "multipart boundary holds a character RFC 2046 does not allow";
        rc = COIL_EINVAL;
    }
    if (rc == 0) {
        memcpy(out, p.boundary, p.blen);
        out[p.blen] = '\0';
        *blen = p.blen;
    }
    free(buf);
    return rc;
}

/* ---- a part's head ------------------------------------------------------------- */

typedef struct part_head {
    const char *name, *filename, *ctype; /* into `buf` */
    size_t nlen, flen, clen;
    int have_disposition, have_ctype;
    char *buf; /* decoded parameter values */
    size_t buf_used;
} part_head;

typedef struct cd_params {
    part_head *h;
    int name_seen, filename_seen;
    const char **why;
} cd_params;

static int cd_param(void *ud, const char *name, size_t nlen, const char *value,
                    size_t vlen)
{
    cd_params *p = ud;
    if (name_is(name, nlen, "name")) {
        if (p->name_seen++) {
            *p->why = "multipart part's Content-Disposition has two name parameters";
            return COIL_EINVAL;
        }
        p->h->name = value;
        p->h->nlen = vlen;
    } else if (name_is(name, nlen, "filename")) {
        if (p->filename_seen++) {
            *p->why = "multipart part's Content-Disposition has two filename parameters";
            return COIL_EINVAL;
        }
        p->h->filename = value;
        p->h->flen = vlen;
    }
    /* filename* (RFC 5987) is not to be used in form-data (RFC 7578 4.2):
     * ignored, as other parameters. */
    return 0;
}

/* One header line of a part (without its CRLF). */
static int part_header(part_head *h, const char *line, size_t len, const char **why)
{
    if (len && (line[0] == ' ' || line[0] == '\t')) {
        *why = "multipart part head has a folded line (obs-fold)";
        return COIL_EINVAL;
    }
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line) {
        *why = "multipart part head has a line that is not a header field";
        return COIL_EINVAL;
    }
    size_t nlen = (size_t)(colon - line);
    for (size_t i = 0; i < nlen; i++) {
        if (!is_tchar((unsigned char)line[i])) {
            *why = "multipart part head has a bad header field name";
            return COIL_EINVAL;
        }
    }
    const char *v = colon + 1;
    size_t vlen = len - nlen - 1;
    if (has_ctl(v, vlen)) {
        *why = "multipart part head has a control byte in a header value";
        return COIL_EINVAL;
    }
    size_t i = skip_ows(v, 0, vlen);
    while (vlen > i && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    if (name_is(line, nlen, "Content-Disposition")) {
        if (h->have_disposition++) {
            *why = "multipart part has two Content-Disposition fields";
            return COIL_EINVAL;
        }
        static const char fd[] = "form-data";
        if (vlen - i < sizeof fd - 1 || strncasecmp(v + i, fd, sizeof fd - 1) != 0 ||
            (i + sizeof fd - 1 < vlen && !strchr(" \t;", v[i + sizeof fd - 1]))) {
            *why = "multipart part's Content-Disposition is not form-data";
            return COIL_EINVAL;
        }
        cd_params p = {.h = h, .why = why};
        int rc = each_param(v, vlen, i + sizeof fd - 1, h->buf + h->buf_used, cd_param,
                            &p, why);
        if (rc != 0)
            return rc;
        if (!p.name_seen) {
            *why = "multipart part's Content-Disposition has no name";
            return COIL_EINVAL;
        }
        h->buf_used += vlen + 1;
    } else if (name_is(line, nlen, "Content-Type")) {
        if (h->have_ctype++) {
            *why = "multipart part has two Content-Type fields";
            return COIL_EINVAL;
        }
        /* Copied: the list keeps it NUL-terminated. */
        memcpy(h->buf + h->buf_used, v + i, vlen - i);
        h->buf[h->buf_used + vlen - i] = '\0';
        h->ctype = h->buf + h->buf_used;
        h->clen = vlen - i;
        h->buf_used += vlen - i + 1;
    }
    return 0;
}

/* Parse a head of `len` bytes: lines each ended by CRLF (the blank line
 * that ends the head is not included). */
static int parse_part_head(part_head *h, const char *s, size_t len, const char **why)
{
    size_t i = 0;
    while (i < len) {
        const char *cr = memchr(s + i, '\r', len - i);
        size_t end = cr ? (size_t)(cr - s) : len;
        if (!cr || end + 1 >= len) {
            *why = "multipart part head has a line not ended by CRLF";
            return COIL_EINVAL;
        }
        if (s[end + 1] != '\n') {
            *why = "multipart part head has a bare CR";
            return COIL_EINVAL;
        }
        if (memchr(s + i, '\n', end - i)) {
            *why = "multipart part head has a bare LF";
            return COIL_EINVAL;
        }
        int rc = part_header(h, s + i, end - i, why);
        if (rc != 0)
            return rc;
        i = end + 2;
    }
    if (!h->have_disposition) {
        *why = "multipart part has no Content-Disposition field";
        return COIL_EINVAL;
    }
    return 0;
}

/* ---- the body ------------------------------------------------------------------ */

/* After a delimiter: "--" closes; else optional white space (transport
 * padding) and CRLF start a part. Returns 1 (close), 0 (part at *next) or
 * COIL_EINVAL. */
static int after_delimiter(const char *body, size_t len, size_t i, size_t *next,
                           const char **why)
{
    if (len - i >= 2 && body[i] == '-' && body[i + 1] == '-') {
        *next = i + 2;
        return 1;
    }
    i = skip_ows(body, i, len);
    if (len - i >= 2 && body[i] == '\r' && body[i + 1] == '\n') {
        *next = i + 2;
        return 0;
    }
    if (i < len && body[i] == '\n')
        *why = "multipart boundary line ends with LF, not CRLF";
    else if (i == len)
        *why = "multipart body has no closing boundary";
    else
        *why = "multipart boundary line has other text after the boundary";
    return COIL_EINVAL;
}

int coil__http_args_add_multipart(coil__http_args *a, const char *content_type,
                                  const char *body, size_t len, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (!a || !content_type || (!body && len)) {
        *why = "no argument list, Content-Type or body";
        return COIL_EINVAL;
    }
    if (!body)
        body = "";
    /* "\r\n--" boundary: the delimiter between parts. */
    char delim[4 + BOUNDARY_MAX + 1] = "\r\n--";
    size_t blen = 0;
    int rc = parse_boundary(content_type, delim + 4, &blen, why);
    if (rc < 0)
        return rc;
    size_t dlen = 4 + blen;

    /* The first delimiter may open the body (no CRLF before it) or follow
     * a preamble. */
    size_t i;
    if (len >= dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0) {
        i = dlen - 2;
    } else {
        const char *d = memmem(body, len, delim, dlen);
        if (!d) {
            *why =
                "multipart body has no boundary line (--BOUNDARY from its Content-Type)";
            return COIL_EINVAL;
        }
        i = (size_t)(d - body) + dlen;
    }

    size_t count = a->count, nblocks = a->nblocks;
    size_t next;
    while ((rc = after_delimiter(body, len, i, &next, why)) == 0) {
        i = next;
        /* The head: up to a blank line, at most PART_HEAD_MAX bytes. A part
         * with no header lines starts with the blank line itself (refused
         * below: Content-Disposition is required). */
        size_t hlen;
        if (len - i >= 2 && body[i] == '\r' && body[i + 1] == '\n') {
            hlen = 0;
        } else {
            size_t room = len - i < PART_HEAD_MAX + 4 ? len - i : PART_HEAD_MAX + 4;
            const char *e = memmem(body + i, room, "\r\n\r\n", 4);
            if (!e) {
                *why = room == len - i ? "multipart part head has no blank line after it"
                                       : "multipart part head is longer than 8 KiB";
                rc = COIL_EINVAL;
                break;
            }
            hlen = (size_t)(e - (body + i)) + 2; /* with the last line's CRLF */
        }
        /* Decoded parameters and the copied Content-Type fit in the head's
         * size (each value is shorter than its line). */
        part_head h = {0};
        h.buf = malloc(hlen + 1);
        if (!h.buf) {
            *why = "out of memory";
            rc = COIL_ENOMEM;
            break;
        }
        /* A boundary line inside the head means a part whose head never
         * ended: refused, or two readers could split the body differently. */
        if (memmem(body + i - 2, hlen + 2, delim, dlen)) {
            *why = "multipart part head runs into the next boundary (no blank line after "
                   "it)";
            rc = COIL_EINVAL;
        } else {
            rc = parse_part_head(&h, body + i, hlen, why);
        }
        size_t vstart = i + hlen + 2;
        const char *d = rc == 0 ? memmem(body + vstart, len - vstart, delim, dlen) : NULL;
        if (rc == 0 && !d) {
            *why = "multipart body has no closing boundary";
            rc = COIL_EINVAL;
        }
        if (rc == 0 && memchr(h.name, '\0', h.nlen)) {
            *why = "multipart part name holds a NUL byte";
            rc = COIL_EINVAL;
        }
        if (rc == 0 && (rc = reserve(a)) < 0)
            *why =
                rc == COIL_EMSGSIZE ? "more than 1000 form arguments" : "out of memory";
        if (rc == 0) {
            size_t vlen = (size_t)(d - (body + vstart));
            size_t flen = h.filename ? h.flen + 1 : 0, clen = h.ctype ? h.clen + 1 : 0;
            char *block = malloc(h.nlen + 1 + vlen + 1 + flen + clen);
            if (!block) {
                *why = "out of memory";
                rc = COIL_ENOMEM;
            } else {
                char *p = block;
                coil_http_arg arg = {0};
                arg.name = memcpy(p, h.name, h.nlen);
                p[h.nlen] = '\0';
                p += h.nlen + 1;
                arg.value = p;
                if (vlen)
                    memcpy(p, body + vstart, vlen);
                p[vlen] = '\0';
                arg.len = vlen;
                p += vlen + 1;
                if (h.filename) {
                    arg.filename = memcpy(p, h.filename, h.flen);
                    p[h.flen] = '\0';
                    p += flen;
                }
                if (h.ctype) {
                    arg.content_type = memcpy(p, h.ctype, h.clen);
                    p[h.clen] = '\0';
                }
                a->blocks[a->nblocks++] = block;
                a->items[a->count++] = arg;
                i = (size_t)(d - body) + dlen;
            }
        }
        free(h.buf);
        if (rc != 0)
            break;
    }
    if (rc < 0) {
        roll_back(a, count, nblocks);
        return rc;
    }
    /* Closed: what follows is the epilogue, ignored. */
    return 0;
}
