/* coil — HTTP/1.1 parsing: request and response heads, the chunked body
 * decoder and the field checks (http_parse.h).
 *
 * Hot path of the server: no allocation, one table lookup per byte for the
 * checks, memchr to find line ends. A head is searched for its end first
 * (incrementally: coil__http_parser.scanned says where the search resumes)
 * and parsed in one pass once it is complete, so the result of a parse
 * never depends on how the input was split; limits are checked on the
 * partial head with the same precedence as on the complete one (request
 * line 414 before head 431). */
#include <stdint.h>
#include <string.h>

#include "http_private.h"

/* Byte classes. */
enum {
    C_TOKEN = 1,  /* tchar (RFC 9110 5.6.2) */
    C_VALUE = 2,  /* field-vchar, obs-text, SP, HT */
    C_TARGET = 4, /* visible ASCII: request-target bytes */
    C_QDTEXT = 8, /* qdtext (RFC 9110 5.6.4) */
    C_HOST = 16,  /* reg-name: unreserved, sub-delims, '%' */
    C_HEX = 32
};

static const unsigned char cls[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  10, 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  10, 31, 6,  15, 31, 31, 31, 31,
    30, 30, 31, 31, 30, 31, 31, 14, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 14, 30,
    14, 30, 14, 14, 14, 63, 63, 63, 63, 63, 63, 31, 31, 31, 31, 31, 31, 31, 31, 31,
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 14, 6,  14, 15, 31, 15, 63, 63, 63,
    63, 63, 63, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31,
    31, 31, 31, 14, 15, 14, 31, 0,  10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
};

#define IS(c, k) (cls[(unsigned char)(c)] & (k))
#define OWS(c)   ((c) == ' ' || (c) == '\t')

static inline unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

static int hexval(unsigned char c)
{
    if (c <= '9')
        return c - '0';
    return (c | 0x20) - 'a' + 10;
}

/* ---- shared checks ------------------------------------------------------ */

int coil__http_is_token(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!IS(s[i], C_TOKEN))
            return 0;
    return 1;
}

int coil__http_is_field_value(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!IS(s[i], C_VALUE))
            return 0;
    return 1;
}

int coil__http_eq(const char *s, size_t len, const char *lit)
{
    for (size_t i = 0; i < len; i++)
        if (lit[i] == '\0' || lower((unsigned char)s[i]) != lower((unsigned char)lit[i]))
            return 0;
    return lit[len] == '\0';
}

const coil__http_field *coil__http_head_field(const coil__http_head *h, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < h->nfields; i++)
        if (h->fields[i].name_len == n && coil__http_eq(h->fields[i].name, n, name))
            return &h->fields[i];
    return NULL;
}

/* ---- heads ---------------------------------------------------------------- */

/* What the fields say about framing and the connection. */
typedef struct fieldinfo {
    int hosts;
    int cl_seen;
    uint64_t cl;
    int te_seen, te_codings, te_chunked, te_other;
    int conn_close, conn_keep_alive;
    int expect_continue;
} fieldinfo;

#define MAX_LENGTH (UINT64_C(1) << 62)

/* The next element of the comma-separated list v[*pos..n), OWS trimmed;
 * 0 when the list is done. */
static int list_next(const char *v, size_t n, size_t *pos, const char **el,
                     size_t *el_len)
{
    if (*pos > n)
        return 0;
    size_t s = *pos;
    const char *comma = memchr(v + s, ',', n - s);
    size_t e = comma ? (size_t)(comma - v) : n;
    *pos = e + 1;
    while (s < e && OWS(v[s]))
        s++;
    while (e > s && OWS(v[e - 1]))
        e--;
    *el = v + s;
    *el_len = e - s;
    return 1;
}

static int content_length(fieldinfo *fi, const char *v, size_t n, const char **why)
{
    size_t pos = 0;
    const char *el;
    size_t el_len;
    while (list_next(v, n, &pos, &el, &el_len)) {
        if (el_len == 0) {
            *why = "empty Content-Length value";
            return -400;
        }
        uint64_t x = 0;
        for (size_t i = 0; i < el_len; i++) {
            unsigned d = (unsigned char)el[i] - '0';
            if (d > 9) {
                *why = "Content-Length is not a decimal number";
                return -400;
            }
            if (x > (MAX_LENGTH - d) / 10) {
                *why = "Content-Length over 2^62";
                return -400;
            }
            x = x * 10 + d;
        }
        if (fi->cl_seen && x != fi->cl) {
            *why = "differing Content-Length values";
            return -400;
        }
        fi->cl_seen = 1;
        fi->cl = x;
    }
    return 0;
}

static int transfer_encoding(fieldinfo *fi, const char *v, size_t n, const char **why)
{
    size_t pos = 0;
    const char *el;
    size_t el_len;
    fi->te_seen = 1;
    while (list_next(v, n, &pos, &el, &el_len)) {
        if (el_len == 0)
            continue; /* empty list elements are allowed (RFC 9110 5.6.1) */
        int chunked = coil__http_eq(el, el_len, "chunked");
        if (fi->te_chunked) {
            *why = chunked ? "Transfer-Encoding names chunked twice"
                           : "chunked is not the last transfer coding";
            return -400;
        }
        size_t k = 0;
        while (k < el_len && IS(el[k], C_TOKEN))
            k++;
        if (k == 0 || (k < el_len && !OWS(el[k]) && el[k] != ';')) {
            *why = "malformed Transfer-Encoding";
            return -400;
        }
        fi->te_codings++;
        if (chunked)
            fi->te_chunked = 1;
        else
            fi->te_other = 1;
    }
    return 0;
}

static void connection(fieldinfo *fi, const char *v, size_t n)
{
    size_t pos = 0;
    const char *el;
    size_t el_len;
    while (list_next(v, n, &pos, &el, &el_len)) {
        if (el_len == 5 && coil__http_eq(el, el_len, "close"))
            fi->conn_close = 1;
        else if (el_len == 10 && coil__http_eq(el, el_len, "keep-alive"))
            fi->conn_keep_alive = 1;
    }
}

/* Host = uri-host [ ":" port ] (RFC 9110 7.2); may be empty. */
static int valid_host(const char *v, size_t n)
{
    size_t i = 0;
    if (n > 0 && v[0] == '[') {
        for (i = 1; i < n && v[i] != ']'; i++)
            if (!IS(v[i], C_HEX) && v[i] != ':' && v[i] != '.' && v[i] != 'v' &&
                v[i] != 'V')
                return 0;
        if (i == n || i == 1)
            return 0;
        i++;
    } else {
        while (i < n && IS(v[i], C_HOST))
            i++;
    }
    if (i == n)
        return 1;
    if (v[i] != ':')
        return 0;
    for (i++; i < n; i++)
        if (v[i] < '0' || v[i] > '9')
            return 0;
    return 1;
}

/* 1 when none of 8 bytes is a control byte (below 0x20, or 0x7f); bytes
 * from 0x80 (obs-text) pass. Word-at-a-time: the usual "has a byte less
 * than n" and "has a zero byte" tests (exact for the question "any?"). */
static inline int clean8(const char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    const uint64_t ones = UINT64_C(0x0101010101010101), high = ones * 0x80;
    uint64_t below_space = (x - ones * 0x20) & ~x & high;
    uint64_t y = x ^ (ones * 0x7f);
    uint64_t del = (y - ones) & ~y & high;
    return (below_space | del) == 0;
}

/* The field lines from `pos` to the blank line that ends at `end`. */
static int parse_fields(const char *buf, size_t pos, size_t end, size_t maxf,
                        coil__http_head *out, fieldinfo *fi, int request,
                        const char **why)
{
    for (;;) {
        const char *lp = buf + pos;
        const char *lf = memchr(lp, '\n', end - pos);
        size_t n = (size_t)(lf - lp);
        pos += n + 1;
        if (n > 0 && lp[n - 1] == '\r')
            n--;
        if (n == 0)
            return 0;
        size_t i = 0;
        while (i < n && IS(lp[i], C_TOKEN))
            i++;
        if (i == n || lp[i] != ':' || i == 0) {
            unsigned char c = (unsigned char)lp[i < n ? i : 0];
            if (OWS(lp[0]))
                *why = "obs-fold (a header line starting with whitespace)";
            else if (i == n)
                *why = "header field line without a colon";
            else if (OWS(c))
                *why = "whitespace before colon in a header field";
            else if (c == '\r')
                *why = "bare CR in a header field name";
            else if (c == ':')
                *why = "empty header field name";
            else
                *why = "header field name holds a byte that is not a token character";
            return -400;
        }
        size_t vs = i + 1, ve = n;
        while (vs < ve && OWS(lp[vs]))
            vs++;
        while (ve > vs && OWS(lp[ve - 1]))
            ve--;
        size_t k = vs;
        while (ve - k >= 8 && clean8(lp + k))
            k += 8;
        for (; k < ve; k++) {
            if (!IS(lp[k], C_VALUE)) {
                unsigned char c = (unsigned char)lp[k];
                *why = c == '\r' ? "bare CR in a header field value"
                       : c == 0  ? "NUL byte in a header field value"
                                 : "control byte in a header field value";
                return -400;
            }
        }
        if (out->nfields >= maxf) {
            *why = "too many header fields";
            return -431;
        }
        coil__http_field *f = &out->fields[out->nfields++];
        f->name = lp;
        f->name_len = i;
        f->value = lp + vs;
        f->value_len = ve - vs;
        int rc = 0;
        switch (i) {
        case 4:
            if (request && coil__http_eq(lp, i, "host")) {
                if (++fi->hosts > 1) {
                    *why = "more than one Host header field";
                    return -400;
                }
                if (!valid_host(f->value, f->value_len)) {
                    *why = "malformed Host header field";
                    return -400;
                }
                out->host = f->value;
                out->host_len = f->value_len;
            }
            break;
        case 6:
            if (request && coil__http_eq(lp, i, "expect") &&
                coil__http_eq(f->value, f->value_len, "100-continue"))
                fi->expect_continue = 1;
            break;
        case 10:
            if (coil__http_eq(lp, i, "connection"))
                connection(fi, f->value, f->value_len);
            break;
        case 14:
            if (coil__http_eq(lp, i, "content-length"))
                rc = content_length(fi, f->value, f->value_len, why);
            break;
        case 17:
            if (coil__http_eq(lp, i, "transfer-encoding"))
                rc = transfer_encoding(fi, f->value, f->value_len, why);
            break;
        default:
            break;
        }
        if (rc < 0)
            return rc;
    }
}

/* Search for the blank line that ends the head, from where the last call
 * stopped. 1 with *end (the offset just past it), or 0. */
static int find_end(coil__http_parser *st, const char *buf, size_t len, size_t start,
                    size_t *end)
{
    size_t pos = st->scanned > start ? st->scanned : start;
    while (pos < len) {
        const char *lf = memchr(buf + pos, '\n', len - pos);
        if (!lf)
            break;
        size_t i = (size_t)(lf - buf);
        if (i + 1 >= len) {
            st->scanned = i;
            return 0;
        }
        if (buf[i + 1] == '\n') {
            *end = i + 2;
            return 1;
        }
        if (buf[i + 1] == '\r') {
            if (i + 2 >= len) {
                st->scanned = i;
                return 0;
            }
            if (buf[i + 2] == '\n') {
                *end = i + 3;
                return 1;
            }
        }
        pos = i + 1;
    }
    st->scanned = len;
    return 0;
}

/* A start line over max_line (line_over) or a head over max_head: the
 * request's status code, or -1 for a response. */
static int limit_error(int line_over, int request, const char **why)
{
    if (line_over) {
        *why = request ? "request line too long" : "status line too long";
        return request ? -414 : -1;
    }
    *why = "header section too large";
    return request ? -431 : -1;
}

/* Limits on a head not complete yet, with the precedence the complete head
 * has: a request line over max_line first, then the head over max_head
 * (once the line is complete). */
static int partial_limits(const char *buf, size_t len, size_t start, size_t max_line,
                          size_t max_head, int request, const char **why)
{
    size_t have = len - start;
    if (have >= max_line && !memchr(buf + start, '\n', max_line))
        return limit_error(1, request, why);
    if (have >= max_head && memchr(buf + start, '\n', have))
        return limit_error(0, request, why);
    return 0;
}

static int skip_empty_lines(coil__http_parser *st, const char *buf, size_t len,
                            size_t *start, const char **why)
{
    size_t pos = st->skipped;
    int lines = 0;
    for (size_t i = 0; i < pos; i++)
        lines += buf[i] == '\n';
    while (pos < len) {
        if (buf[pos] == '\n') {
            pos++;
        } else if (buf[pos] == '\r') {
            if (pos + 1 >= len)
                return 0;
            if (buf[pos + 1] != '\n') {
                *why = "bare CR before the request line";
                return -400;
            }
            pos += 2;
        } else {
            *start = pos;
            return 1;
        }
        if (++lines > 2) {
            *why = "more than two empty lines before the request line";
            return -400;
        }
        st->skipped = pos;
    }
    return 0;
}

static size_t lim_or(size_t v, size_t dflt)
{
    return v ? v : dflt;
}

/* The limits for one head (the defaults where `lim` leaves them 0; no more
 * fields than `out` holds). */
typedef struct headlim {
    size_t max_line, max_head, maxf;
} headlim;

static headlim head_limits(const coil__http_limits *lim, const coil__http_head *out)
{
    headlim hl;
    hl.max_line = lim_or(lim ? lim->max_line : 0, COIL__HTTP_DEFAULT_MAX_LINE);
    hl.max_head = lim_or(lim ? lim->max_head : 0, COIL__HTTP_DEFAULT_MAX_HEAD);
    hl.maxf = lim_or(lim ? lim->max_fields : 0, COIL__HTTP_DEFAULT_MAX_FIELDS);
    if (hl.maxf > out->fields_cap)
        hl.maxf = out->fields_cap;
    return hl;
}

static int parse_version(const char *p, size_t n, int *version)
{
    if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' || p[5] < '0' || p[5] > '9' ||
        p[7] < '0' || p[7] > '9')
        return -400;
    if (p[5] == '1' && p[7] == '0')
        *version = 10;
    else if (p[5] == '1')
        *version = 11; /* RFC 9112 2.3: a higher minor version is read as 1.1 */
    else
        return -505;
    return 0;
}

static int authority_form(const char *p, size_t n)
{
    const char *colon = NULL;
    if (n > 0 && p[0] == '[') {
        const char *rb = memchr(p, ']', n);
        if (!rb)
            return 0;
        colon = rb + 1 < p + n && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(p, ':', n);
    }
    if (!colon || colon == p || colon + 1 == p + n)
        return 0;
    return valid_host(p, n);
}

static int absolute_form(const char *p, size_t n)
{
    size_t i = 0;
    if (n == 0 || !((p[0] | 0x20) >= 'a' && (p[0] | 0x20) <= 'z'))
        return 0;
    for (i = 1; i < n && p[i] != ':'; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!((c | 0x20) >= 'a' && (c | 0x20) <= 'z') && !(c >= '0' && c <= '9') &&
            c != '+' && c != '-' && c != '.')
            return 0;
    }
    return i < n;
}

static int parse_request_line(const char *p, size_t n, coil__http_head *out,
                              const char **why)
{
    if (memchr(p, '\r', n)) {
        *why = "bare CR in the request line";
        return -400;
    }
    size_t i = 0;
    while (i < n && IS(p[i], C_TOKEN))
        i++;
    if (i == 0 || i == n || p[i] != ' ') {
        *why = i == 0   ? "request line does not start with a method"
               : i == n ? "request line has no target"
                        : "method holds a byte that is not a token character";
        return -400;
    }
    out->method = p;
    out->method_len = i;
    size_t t = i + 1, j = t;
    while (j < n && IS(p[j], C_TARGET))
        j++;
    if (j == t || j == n || p[j] != ' ') {
        *why = j == t   ? "empty request target (two spaces?)"
               : j == n ? "request line has no HTTP version"
                        : "request target holds a control, space or non-ASCII byte";
        return -400;
    }
    out->target = p + t;
    out->target_len = j - t;
    int rc = parse_version(p + j + 1, n - j - 1, &out->version);
    if (rc < 0) {
        if (rc == -505)
            *why = "HTTP version not supported (only HTTP/1.0 and HTTP/1.1)";
        else if (memchr(p + j + 1, ' ', n - j - 1))
            *why = "space in the request target";
        else
            *why = "malformed HTTP version in the request line";
        return rc;
    }
    const char *tg = out->target;
    size_t tn = out->target_len;
    int connect = i == 7 && memcmp(p, "CONNECT", 7) == 0;
    if (connect) {
        if (!authority_form(tg, tn)) {
            *why = "CONNECT needs an authority-form target (host:port)";
            return -400;
        }
    } else if (tg[0] == '/') {
        /* origin-form */
    } else if (tn == 1 && tg[0] == '*') {
        if (!(i == 7 && memcmp(p, "OPTIONS", 7) == 0)) {
            *why = "the target * is for OPTIONS only";
            return -400;
        }
    } else if (!absolute_form(tg, tn)) {
        *why = "request target is not in origin, absolute, authority or asterisk form";
        return -400;
    }
    return 0;
}

static void clear_head(coil__http_head *out)
{
    coil__http_field *fields = out->fields;
    size_t cap = out->fields_cap;
    memset(out, 0, sizeof *out);
    out->fields = fields;
    out->fields_cap = cap;
}

/* The complete head buf[start..end): checks its start line and its size
 * against the limits, then clears `out`. *line_len is the start line's
 * length with its LF, *n without its line end. 0, or limit_error's code. */
static int split_head(const char *buf, size_t start, size_t end, const headlim *hl,
                      int request, coil__http_head *out, size_t *line_len, size_t *n,
                      const char **why)
{
    const char *lp = buf + start;
    const char *lf = memchr(lp, '\n', end - start);
    *line_len = (size_t)(lf - lp) + 1;
    if (*line_len > hl->max_line)
        return limit_error(1, request, why);
    if (end - start > hl->max_head)
        return limit_error(0, request, why);
    clear_head(out);
    *n = *line_len - 1;
    if (*n > 0 && lp[*n - 1] == '\r')
        (*n)--;
    return 0;
}

/* Whether the connection stays open after this message. */
static int keeps_alive(const coil__http_head *out, const fieldinfo *fi)
{
    return out->version == 11 ? !fi->conn_close : fi->conn_keep_alive && !fi->conn_close;
}

int coil__http_parse_request(coil__http_parser *st, const char *buf, size_t len,
                             const coil__http_limits *lim, coil__http_head *out,
                             const char **why)
{
    headlim hl = head_limits(lim, out);
    const char *dummy;
    if (!why)
        why = &dummy;

    size_t start = 0, end = 0;
    int rc = skip_empty_lines(st, buf, len, &start, why);
    if (rc <= 0)
        return rc;
    if (!find_end(st, buf, len, start, &end))
        return partial_limits(buf, len, start, hl.max_line, hl.max_head, 1, why);

    size_t line_len, n;
    rc = split_head(buf, start, end, &hl, 1, out, &line_len, &n, why);
    if (rc < 0)
        return rc;
    rc = parse_request_line(buf + start, n, out, why);
    if (rc < 0)
        return rc;
    fieldinfo fi = {0};
    rc = parse_fields(buf, start + line_len, end, hl.maxf, out, &fi, 1, why);
    if (rc < 0)
        return rc;

    if (fi.te_seen) {
        if (fi.cl_seen) {
            *why = "Content-Length and Transfer-Encoding together";
            return -400;
        }
        if (out->version == 10) {
            *why = "Transfer-Encoding in an HTTP/1.0 request";
            return -400;
        }
        if (fi.te_codings == 0) {
            *why = "Transfer-Encoding without a coding";
            return -400;
        }
        if (fi.te_other) {
            *why = "transfer coding other than chunked";
            return -501;
        }
        out->body = COIL__HTTP_BODY_CHUNKED;
    } else if (fi.cl_seen) {
        out->body = COIL__HTTP_BODY_LENGTH;
        out->content_length = fi.cl;
    }
    if (out->version == 11 && fi.hosts == 0) {
        *why = "HTTP/1.1 request without a Host header field";
        return -400;
    }
    out->keep_alive = keeps_alive(out, &fi);
    out->expect_continue = out->version == 11 && fi.expect_continue;
    out->head_len = end;
    return (int)end;
}

int coil__http_parse_response(coil__http_parser *st, const char *buf, size_t len,
                              const coil__http_limits *lim, int head_request,
                              coil__http_head *out, const char **why)
{
    headlim hl = head_limits(lim, out);
    const char *dummy;
    if (!why)
        why = &dummy;

    size_t end = 0;
    if (len > 0 && (buf[0] == '\n' || buf[0] == '\r')) {
        *why = "empty line before the status line";
        return -1;
    }
    if (!find_end(st, buf, len, 0, &end))
        return partial_limits(buf, len, 0, hl.max_line, hl.max_head, 0, why);
    size_t line_len, n;
    if (split_head(buf, 0, end, &hl, 0, out, &line_len, &n, why) < 0)
        return -1;
    /* HTTP/1.x SP 3DIGIT [SP reason] */
    int vrc = n >= 8 ? parse_version(buf, 8, &out->version) : -400;
    if (vrc == -505) {
        *why = "response is not HTTP/1.0 or HTTP/1.1";
        return -1;
    }
    if (vrc < 0 || n < 12 || buf[8] != ' ' || (n > 12 && buf[12] != ' ')) {
        *why = "malformed status line";
        return -1;
    }
    int status = 0;
    for (int k = 9; k < 12; k++) {
        if (buf[k] < '0' || buf[k] > '9') {
            *why = "status code is not three digits";
            return -1;
        }
        status = status * 10 + (buf[k] - '0');
    }
    if (status < 100 || status > 599) {
        *why = "status code outside 100..599";
        return -1;
    }
    out->status = status;
    out->reason = buf + (n > 12 ? 13 : 12);
    out->reason_len = n > 12 ? n - 13 : 0;
    if (!coil__http_is_field_value(out->reason, out->reason_len)) {
        *why = "control byte or bare CR in the reason phrase";
        return -1;
    }
    fieldinfo fi = {0};
    int rc = parse_fields(buf, line_len, end, hl.maxf, out, &fi, 0, why);
    if (rc < 0)
        return -1;
    if (fi.te_seen && fi.cl_seen) {
        *why = "Content-Length and Transfer-Encoding together";
        return -1;
    }
    if (fi.te_seen && out->version == 10) {
        *why = "Transfer-Encoding in an HTTP/1.0 response";
        return -1;
    }
    if (head_request || status < 200 || status == 204 || status == 304) {
        out->body = COIL__HTTP_BODY_NONE;
    } else if (fi.te_seen) {
        if (!fi.te_chunked || fi.te_other) {
            *why = "response transfer coding other than chunked";
            return -1;
        }
        out->body = COIL__HTTP_BODY_CHUNKED;
    } else if (fi.cl_seen) {
        out->body = COIL__HTTP_BODY_LENGTH;
        out->content_length = fi.cl;
    } else {
        out->body = COIL__HTTP_BODY_CLOSE;
    }
    out->keep_alive = keeps_alive(out, &fi);
    if (out->body == COIL__HTTP_BODY_CLOSE)
        out->keep_alive = 0;
    out->head_len = end;
    return (int)end;
}

/* ---- chunked bodies ------------------------------------------------------- */

enum {
    CH_SIZE = 0,       /* the first hex digit of a size */
    CH_SIZE_MORE,      /* more digits, BWS, ';' or CR */
    CH_SIZE_BWS,       /* whitespace after the size: ';' must come */
    CH_EXT_NAME_BWS,   /* after ';' */
    CH_EXT_NAME,       /* in an extension name */
    CH_EXT_NAME_AFTER, /* BWS after the name: '=', ';' or CR */
    CH_EXT_VALUE_BWS,  /* after '=' */
    CH_EXT_TOKEN,      /* in a token value */
    CH_EXT_QUOTED,     /* in a quoted-string value */
    CH_EXT_QUOTED_ESC, /* after a backslash in it */
    CH_EXT_AFTER,      /* BWS after a value: ';' or CR */
    CH_SIZE_LF,        /* CR seen at the end of the size line */
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TRAILER_START, /* a trailer line or the final CRLF */
    CH_TRAILER_NAME,
    CH_TRAILER_VALUE,
    CH_TRAILER_LF, /* CR at the end of a trailer line */
    CH_END_LF,     /* CR of the final CRLF */
    CH_END,
    CH_ERROR
};

#define CHUNK_SIZE_LIMIT (UINT64_C(1) << 62)

int coil__http_chunked_feed(coil__http_chunked *c, const char *in, size_t len,
                            size_t *consumed, const char **data, size_t *data_len,
                            const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    size_t max_trailer = c->max_trailer ? c->max_trailer : COIL__HTTP_DEFAULT_MAX_HEAD;
    size_t pos = 0;
    *consumed = 0;
    if (c->state == CH_END)
        return COIL__CHUNK_END;
    if (c->state == CH_ERROR) {
        *why = "the chunked body already failed";
        return COIL__CHUNK_ERROR;
    }
    while (pos < len) {
        int st = c->state;
        if (st == CH_DATA) {
            size_t take = len - pos;
            if (take > c->remaining)
                take = (size_t)c->remaining;
            *data = in + pos;
            *data_len = take;
            pos += take;
            c->remaining -= take;
            if (c->remaining == 0)
                c->state = CH_DATA_CR;
            *consumed = pos;
            return COIL__CHUNK_DATA;
        }
        unsigned char ch = (unsigned char)in[pos++];
        if (st < CH_DATA && ++c->line > COIL__HTTP_MAX_CHUNK_LINE) {
            *why = "chunk size line too long";
            goto fail;
        }
        if (st >= CH_TRAILER_START && ++c->trailer > max_trailer) {
            *why = "chunked trailer section too large";
            goto fail;
        }
        switch (st) {
        case CH_SIZE:
        case CH_SIZE_MORE:
            if (IS(ch, C_HEX)) {
                if (c->hexdigits >= 16 || c->remaining >= CHUNK_SIZE_LIMIT / 16) {
                    *why = "chunk size too large";
                    goto fail;
                }
                c->remaining = c->remaining * 16 + (uint64_t)hexval(ch);
                c->hexdigits++;
                c->state = CH_SIZE_MORE;
                break;
            }
            if (st == CH_SIZE) {
                *why = "chunk size is not a hex number";
                goto fail;
            }
            if (ch == '\r')
                c->state = CH_SIZE_LF;
            else if (ch == ';')
                c->state = CH_EXT_NAME_BWS;
            else if (OWS(ch))
                c->state = CH_SIZE_BWS;
            else {
                *why = "chunk size is not a hex number";
                goto fail;
            }
            break;
        case CH_SIZE_BWS:
            if (ch == ';')
                c->state = CH_EXT_NAME_BWS;
            else if (!OWS(ch)) {
                *why = "whitespace after a chunk size not followed by an extension";
                goto fail;
            }
            break;
        case CH_EXT_NAME_BWS:
            if (IS(ch, C_TOKEN))
                c->state = CH_EXT_NAME;
            else if (!OWS(ch)) {
                *why = "malformed chunk extension name";
                goto fail;
            }
            break;
        case CH_EXT_NAME:
        case CH_EXT_NAME_AFTER:
            if (st == CH_EXT_NAME && IS(ch, C_TOKEN))
                break;
            if (ch == '=')
                c->state = CH_EXT_VALUE_BWS;
            else if (ch == ';')
                c->state = CH_EXT_NAME_BWS;
            else if (ch == '\r')
                c->state = CH_SIZE_LF;
            else if (OWS(ch))
                c->state = CH_EXT_NAME_AFTER;
            else {
                *why = "malformed chunk extension";
                goto fail;
            }
            break;
        case CH_EXT_VALUE_BWS:
            if (ch == '"')
                c->state = CH_EXT_QUOTED;
            else if (IS(ch, C_TOKEN))
                c->state = CH_EXT_TOKEN;
            else if (!OWS(ch)) {
                *why = "malformed chunk extension value";
                goto fail;
            }
            break;
        case CH_EXT_TOKEN:
        case CH_EXT_AFTER:
            if (st == CH_EXT_TOKEN && IS(ch, C_TOKEN))
                break;
            if (ch == ';')
                c->state = CH_EXT_NAME_BWS;
            else if (ch == '\r')
                c->state = CH_SIZE_LF;
            else if (OWS(ch))
                c->state = CH_EXT_AFTER;
            else {
                *why = "malformed chunk extension value";
                goto fail;
            }
            break;
        case CH_EXT_QUOTED:
            if (ch == '"')
                c->state = CH_EXT_AFTER;
            else if (ch == '\\')
                c->state = CH_EXT_QUOTED_ESC;
            else if (!IS(ch, C_QDTEXT)) {
                *why = "control byte in a quoted chunk extension";
                goto fail;
            }
            break;
        case CH_EXT_QUOTED_ESC:
            /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
            if (!IS(ch, C_VALUE)) {
                *why = "control byte in a quoted chunk extension";
                goto fail;
            }
            c->state = CH_EXT_QUOTED;
            break;
        case CH_SIZE_LF:
            if (ch != '\n') {
                *why = "bare CR in a chunk size line";
                goto fail;
            }
            c->line = 0;
            c->hexdigits = 0;
            if (c->remaining == 0) {
                c->state = CH_TRAILER_START;
                break;
            }
            c->chunks++;
            if (c->max_chunks && c->chunks > c->max_chunks) {
                *why = "too many chunks";
                c->state = CH_ERROR;
                *consumed = pos;
                return COIL__CHUNK_TOO_MANY;
            }
            c->state = CH_DATA;
            break;
        case CH_DATA_CR:
            if (ch != '\r') {
                *why = "chunk data not followed by CRLF";
                goto fail;
            }
            c->state = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (ch != '\n') {
                *why = "chunk data not followed by CRLF";
                goto fail;
            }
            c->state = CH_SIZE;
            break;
        case CH_TRAILER_START:
            if (ch == '\r')
                c->state = CH_END_LF;
            else if (IS(ch, C_TOKEN))
                c->state = CH_TRAILER_NAME;
            else {
                *why = OWS(ch) ? "obs-fold in the chunked trailer"
                               : "malformed trailer field name";
                goto fail;
            }
            break;
        case CH_TRAILER_NAME:
            if (ch == ':')
                c->state = CH_TRAILER_VALUE;
            else if (!IS(ch, C_TOKEN)) {
                *why = OWS(ch) ? "whitespace before colon in a trailer field"
                               : "malformed trailer field name";
                goto fail;
            }
            break;
        case CH_TRAILER_VALUE:
            if (ch == '\r')
                c->state = CH_TRAILER_LF;
            else if (!IS(ch, C_VALUE)) {
                *why = "control byte in a trailer field value";
                goto fail;
            }
            break;
        case CH_TRAILER_LF:
            if (ch != '\n') {
                *why = "bare CR in a trailer field";
                goto fail;
            }
            c->state = CH_TRAILER_START;
            break;
        case CH_END_LF:
            if (ch != '\n') {
                *why = "bare CR at the end of a chunked body";
                goto fail;
            }
            c->state = CH_END;
            *consumed = pos;
            return COIL__CHUNK_END;
        default:
            *why = "chunked decoder in a bad state";
            goto fail;
        }
    }
    *consumed = pos;
    return COIL__CHUNK_MORE;
fail:
    c->state = CH_ERROR;
    *consumed = pos;
    return COIL__CHUNK_ERROR;
}
