/* coil — HTTP: the shared pieces of include/coil/http.h: status texts,
 * header lists, URLs (RFC 3986: parse and resolve), percent-decoding, HTML
 * escaping, HTTP-dates and collected bytes. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_private.h"

/* ---- status texts --------------------------------------------------------- */

const char *coil_http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 102:
        return "Processing";
    case 103:
        return "Early Hints";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 203:
        return "Non-Authoritative Information";
    case 204:
        return "No Content";
    case 205:
        return "Reset Content";
    case 206:
        return "Partial Content";
    case 207:
        return "Multi-Status";
    case 208:
        return "Already Reported";
    case 226:
        return "IM Used";
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 305:
        return "Use Proxy";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 418:
        return "I'm a teapot";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
    case 423:
        return "Locked";
    case 424:
        return "Failed Dependency";
    case 425:
        return "Too Early";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 451:
        return "Unavailable For Legal Reasons";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    case 506:
        return "Variant Also Negotiates";
    case 507:
        return "Insufficient Storage";
    case 508:
        return "Loop Detected";
    case 510:
        return "Not Extended";
    case 511:
        return "Network Authentication Required";
    default:
        return "";
    }
}

/* ---- header lists --------------------------------------------------------- */

typedef struct hfield {
    char *name; /* one allocation: name, NUL, value, NUL */
    char *value;
} hfield;

struct coil_http_headers {
    hfield *items;
    size_t count, cap;
};

coil_http_headers *coil_http_headers_new(void)
{
    return calloc(1, sizeof(coil_http_headers));
}

void coil_http_headers_free(coil_http_headers *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->count; i++)
        free(h->items[i].name);
    free(h->items);
    free(h);
}

static int name_is(const char *a, const char *b)
{
    return coil__http_eq(a, strlen(a), b);
}

int coil_http_headers_add(coil_http_headers *h, const char *name, const char *value)
{
    if (!h || !name || !value)
        return COIL_EINVAL;
    size_t nl = strlen(name), vl = strlen(value);
    if (!coil__http_is_token(name, nl) || !coil__http_is_field_value(value, vl))
        return COIL_EINVAL;
    if (h->count == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        hfield *items = realloc(h->items, cap * sizeof *items);
        if (!items)
            return COIL_ENOMEM;
        h->items = items;
        h->cap = cap;
    }
    char *p = malloc(nl + vl + 2);
    if (!p)
        return COIL_ENOMEM;
    memcpy(p, name, nl + 1);
    memcpy(p + nl + 1, value, vl + 1);
    h->items[h->count].name = p;
    h->items[h->count].value = p + nl + 1;
    h->count++;
    return 0;
}

int coil_http_headers_set(coil_http_headers *h, const char *name, const char *value)
{
    if (!h || !name || !value)
        return COIL_EINVAL;
    if (!coil__http_is_token(name, strlen(name)) ||
        !coil__http_is_field_value(value, strlen(value)))
        return COIL_EINVAL;
    coil_http_headers_remove(h, name);
    return coil_http_headers_add(h, name, value);
}

size_t coil_http_headers_remove(coil_http_headers *h, const char *name)
{
    if (!h || !name)
        return 0;
    size_t kept = 0, gone = 0;
    for (size_t i = 0; i < h->count; i++) {
        if (name_is(h->items[i].name, name)) {
            free(h->items[i].name);
            gone++;
        } else {
            h->items[kept++] = h->items[i];
        }
    }
    h->count = kept;
    return gone;
}

const char *coil_http_headers_get(const coil_http_headers *h, const char *name)
{
    if (!h || !name)
        return NULL;
    for (size_t i = 0; i < h->count; i++)
        if (name_is(h->items[i].name, name))
            return h->items[i].value;
    return NULL;
}

size_t coil_http_headers_count(const coil_http_headers *h)
{
    return h ? h->count : 0;
}

int coil_http_headers_at(const coil_http_headers *h, size_t i, const char **name,
                         const char **value)
{
    if (!h || i >= h->count)
        return COIL_EINVAL;
    if (name)
        *name = h->items[i].name;
    if (value)
        *value = h->items[i].value;
    return 0;
}

/* ---- URLs ----------------------------------------------------------------- */

static int is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int hexv(int c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* unreserved / sub-delims: what a reg-name holds besides escapes */
static int is_regname(int c)
{
    return is_alpha(c) || is_digit(c) || (c && strchr("-._~!$&'()*+,;=", c));
}

static int bad_url(coil_failure **err, const char *text, const char *what)
{
    if (err)
        *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL, "URL '%.200s%s' %s", text,
                                strlen(text) > 200 ? "..." : "", what);
    return COIL_EINVAL;
}

/* A bump allocator over the URL's one block. */
typedef struct bump {
    char *p;
} bump;

static char *put(bump *b, const char *s, size_t n)
{
    char *r = b->p;
    memcpy(r, s, n);
    r[n] = '\0';
    b->p += n + 1;
    return r;
}

int coil_http_url_parse(const char *text, coil_http_url **out, coil_failure **err)
{
    if (out)
        *out = NULL;
    if (err)
        *err = NULL;
    if (!text || !out)
        return bad_url(err, text ? text : "(null)", "is missing");
    size_t len = strnlen(text, COIL_HTTP_MAX_URL + 1);
    if (len > COIL_HTTP_MAX_URL)
        return bad_url(err, text, "is longer than 8192 bytes");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c <= 0x20 || c >= 0x7f)
            return bad_url(err, text,
                           "holds a space, a control or a non-ASCII byte (percent-encode "
                           "it)");
    }
    /* scheme */
    size_t i = 0;
    while (i < len && (is_alpha(text[i]) ||
                       (i > 0 && (is_digit(text[i]) || strchr("+-.", text[i])))))
        i++;
    if (i == 0 || i >= len || text[i] != ':')
        return bad_url(err, text, "is not absolute (it needs scheme://host)");
    char scheme[16];
    if (i >= sizeof scheme)
        return bad_url(err, text,
                       "has an unknown scheme; coil's agent speaks http, https "
                       "and http+unix");
    for (size_t k = 0; k < i; k++)
        scheme[k] = (char)(text[k] >= 'A' && text[k] <= 'Z' ? text[k] | 0x20 : text[k]);
    scheme[i] = '\0';
    int unix_sock = strcmp(scheme, "http+unix") == 0;
    int secure = strcmp(scheme, "https") == 0;
    if (!unix_sock && !secure && strcmp(scheme, "http") != 0) {
        if (err)
            *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                    "URL '%.200s' has scheme '%s'; coil's agent speaks "
                                    "http, https and http+unix",
                                    text, scheme);
        return COIL_EINVAL;
    }
    if (strncmp(text + i, "://", 3) != 0)
        return bad_url(err, text, "is not absolute (it needs scheme://host)");
    /* authority */
    size_t as = i + 3, ae = as;
    while (ae < len && text[ae] != '/' && text[ae] != '?' && text[ae] != '#')
        ae++;
    if (memchr(text + as, '@', ae - as))
        return bad_url(err, text,
                       "holds credentials (user@host); send them in a header "
                       "instead");
    size_t hs = as, he, ps = 0, pe = 0;
    int v6 = 0;
    if (hs < ae && text[hs] == '[') {
        const char *rb = memchr(text + hs, ']', ae - hs);
        if (!rb)
            return bad_url(err, text, "has an IPv6 address without its closing ']'");
        he = (size_t)(rb - text) + 1;
        if (he < ae && text[he] != ':')
            return bad_url(err, text, "has bytes after the IPv6 address's ']'");
        char a6[64];
        struct in6_addr tmp;
        size_t n6 = he - hs - 2;
        if (n6 >= sizeof a6)
            return bad_url(err, text, "has a malformed IPv6 address");
        memcpy(a6, text + hs + 1, n6);
        a6[n6] = '\0';
        if (inet_pton(AF_INET6, a6, &tmp) != 1)
            return bad_url(err, text, "has a malformed IPv6 address");
        v6 = 1;
    } else {
        const char *colon = memchr(text + hs, ':', ae - hs);
        he = colon ? (size_t)(colon - text) : ae;
        for (size_t k = hs; k < he; k++) {
            if (text[k] == '%') {
                if (k + 2 >= he || hexv(text[k + 1]) < 0 || hexv(text[k + 2]) < 0)
                    return bad_url(err, text, "has a bad percent-escape in its host");
            } else if (!is_regname(text[k])) {
                return bad_url(err, text, "has a byte a host name cannot hold");
            }
        }
    }
    if (he == hs)
        return bad_url(err, text, "has no host");
    int port = unix_sock ? 0 : secure ? 443 : 80;
    if (he < ae) { /* ":port" */
        ps = he + 1;
        pe = ae;
        if (unix_sock)
            return bad_url(err, text, "gives a port for a UNIX socket");
        if (ps < pe) {
            long p = 0;
            for (size_t k = ps; k < pe; k++) {
                if (!is_digit(text[k]) || p > 65535)
                    return bad_url(err, text,
                                   "has a port that is not a number in 1..65535");
                p = p * 10 + (text[k] - '0');
            }
            if (p < 1 || p > 65535)
                return bad_url(err, text, "has a port that is not a number in 1..65535");
            port = (int)p;
        }
    }
    /* path, query; the fragment is dropped */
    size_t qs = ae;
    while (qs < len && text[qs] != '?' && text[qs] != '#')
        qs++;
    size_t fs = qs;
    while (fs < len && text[fs] != '#')
        fs++;
    for (size_t k = ae; k < fs; k++)
        if (text[k] == '%' &&
            (k + 2 >= fs || hexv(text[k + 1]) < 0 || hexv(text[k + 2]) < 0))
            return bad_url(err, text,
                           "has a bad percent-escape (% must be followed by two "
                           "hex digits)");
    int has_query = qs < len && text[qs] == '?';

    /* one block: the struct, then the strings */
    size_t room = sizeof(coil_http_url) + 4 * len + 64;
    coil_http_url *u = calloc(1, room);
    if (!u) {
        if (err)
            *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                    "out of memory parsing a URL");
        return COIL_ENOMEM;
    }
    bump b = {(char *)(u + 1)};
    u->scheme = put(&b, scheme, i);
    u->port = port;
    u->secure = secure;
    if (unix_sock) {
        char *h = b.p;
        ssize_t n = coil_http_unquote(text + hs, he - hs, h, 0);
        if (n <= 0 || memchr(h, '\0', (size_t)n)) {
            free(u);
            return bad_url(err, text, "has an empty or malformed socket path");
        }
        u->host = h;
        b.p += n + 1;
        u->authority = put(&b, "localhost", 9);
    } else {
        size_t h0 = v6 ? hs + 1 : hs, h1 = v6 ? he - 1 : he;
        u->host = put(&b, text + h0, h1 - h0);
        for (char *c = u->host; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c | 0x20);
        char port_text[16] = "";
        if (port != (secure ? 443 : 80))
            snprintf(port_text, sizeof port_text, ":%d", port);
        u->authority = b.p;
        b.p +=
            sprintf(b.p, "%s%s%s%s", v6 ? "[" : "", u->host, v6 ? "]" : "", port_text) +
            1;
    }
    size_t plen = qs - ae;
    u->path = plen ? put(&b, text + ae, plen) : put(&b, "/", 1);
    u->query = has_query ? put(&b, text + qs + 1, fs - qs - 1) : put(&b, "", 0);
    u->target = b.p;
    b.p += sprintf(b.p, "%s%s%s", u->path, has_query ? "?" : "", u->query) + 1;
    *out = u;
    return 0;
}

void coil_http_url_free(coil_http_url *u)
{
    free(u);
}

/* RFC 3986 5.2.4, in place (the output never passes the input). */
static void remove_dot_segments(char *p)
{
    char *in = p, *out = p;
    while (*in) {
        if (strncmp(in, "../", 3) == 0) {
            in += 3;
        } else if (strncmp(in, "./", 2) == 0) {
            in += 2;
        } else if (strncmp(in, "/./", 3) == 0) {
            in += 2;
        } else if (strcmp(in, "/.") == 0) {
            in[1] = '/';
            in += 1;
        } else if (strncmp(in, "/../", 4) == 0 || strcmp(in, "/..") == 0) {
            if (in[3] == '/') {
                in += 3;
            } else {
                in[2] = '/';
                in += 2;
            }
            while (out > p && *--out != '/') {
            }
        } else if (strcmp(in, ".") == 0 || strcmp(in, "..") == 0) {
            in += strlen(in);
        } else {
            /* the first segment, with its leading '/', goes to the output */
            char *seg = in + (*in == '/');
            while (*seg && *seg != '/')
                seg++;
            size_t n = (size_t)(seg - in);
            memmove(out, in, n);
            out += n;
            in = seg;
        }
    }
    *out = '\0';
}

int coil_http_url_resolve(const coil_http_url *base, const char *ref, coil_http_url **out,
                          coil_failure **err)
{
    if (out)
        *out = NULL;
    if (err)
        *err = NULL;
    if (!base || !ref || !out)
        return bad_url(err, ref ? ref : "(null)",
                       "cannot be resolved (missing argument)");
    size_t rlen = strnlen(ref, COIL_HTTP_MAX_URL + 1);
    if (rlen > COIL_HTTP_MAX_URL)
        return bad_url(err, ref, "is longer than 8192 bytes");
    /* split the reference: [scheme:][//authority]path[?query][#fragment] */
    size_t i = 0;
    while (i < rlen &&
           (is_alpha(ref[i]) || (i > 0 && (is_digit(ref[i]) || strchr("+-.", ref[i])))))
        i++;
    if (i > 0 && i < rlen && ref[i] == ':')
        return coil_http_url_parse(ref, out, err); /* absolute */
    size_t fs = 0;
    while (fs < rlen && ref[fs] != '#')
        fs++;
    const char *r = ref;
    size_t rn = fs; /* without the fragment */
    size_t hasq_at = 0;
    while (hasq_at < rn && r[hasq_at] != '?')
        hasq_at++;
    int ref_has_query = hasq_at < rn;

    /* the base's authority as it was written */
    size_t cap = 3 * strlen(base->host) + strlen(base->path) + strlen(base->query) + rn +
                 strlen(base->scheme) + 64;
    char *auth = malloc(3 * strlen(base->host) + 32);
    char *buf = malloc(cap);
    char *path = malloc(strlen(base->path) + rn + 2);
    if (!auth || !buf || !path) {
        free(auth);
        free(buf);
        free(path);
        if (err)
            *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                    "out of memory resolving a URL");
        return COIL_ENOMEM;
    }
    if (strcmp(base->scheme, "http+unix") == 0) {
        char *a = auth;
        for (const unsigned char *c = (const unsigned char *)base->host; *c; c++) {
            if (is_alpha(*c) || is_digit(*c) || strchr("-._~", *c))
                *a++ = (char)*c;
            else
                a += sprintf(a, "%%%02X", *c);
        }
        *a = '\0';
    } else {
        int v6 = strchr(base->host, ':') != NULL;
        int dflt = base->port == (base->secure ? 443 : 80);
        sprintf(auth, "%s%s%s", v6 ? "[" : "", base->host, v6 ? "]" : "");
        if (!dflt)
            sprintf(auth + strlen(auth), ":%d", base->port);
    }

    int rc;
    if (rn >= 2 && r[0] == '/' && r[1] == '/') {
        /* network-path reference: the base's scheme, the rest is the ref's */
        snprintf(buf, cap, "%s:%.*s", base->scheme, (int)rn, r);
    } else {
        const char *query;
        size_t qlen;
        int has_query;
        if (hasq_at == 0) { /* empty path */
            strcpy(path, base->path);
            if (ref_has_query) {
                query = r + 1;
                qlen = rn - 1;
                has_query = 1;
            } else {
                query = base->query;
                qlen = strlen(base->query);
                has_query = strchr(base->target, '?') != NULL;
            }
        } else {
            if (r[0] == '/') {
                memcpy(path, r, hasq_at);
                path[hasq_at] = '\0';
            } else {
                /* merge (5.2.3): the base path up to its last '/' */
                const char *slash = strrchr(base->path, '/');
                size_t keep = slash ? (size_t)(slash - base->path) + 1 : 0;
                memcpy(path, base->path, keep);
                if (keep == 0)
                    path[keep++] = '/';
                memcpy(path + keep, r, hasq_at);
                path[keep + hasq_at] = '\0';
            }
            remove_dot_segments(path);
            query = r + hasq_at + 1;
            qlen = ref_has_query ? rn - hasq_at - 1 : 0;
            has_query = ref_has_query;
        }
        snprintf(buf, cap, "%s://%s%s%s%.*s", base->scheme, auth, path,
                 has_query ? "?" : "", (int)qlen, query);
    }
    rc = coil_http_url_parse(buf, out, err);
    free(auth);
    free(buf);
    free(path);
    return rc;
}

/* ---- small helpers -------------------------------------------------------- */

ssize_t coil_http_unquote(const char *in, size_t len, char *out, int plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            if (len - i < 3 || hexv(in[i + 1]) < 0 || hexv(in[i + 2]) < 0) {
                out[o] = '\0';
                return -1;
            }
            out[o++] = (char)(hexv(in[i + 1]) * 16 + hexv(in[i + 2]));
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out[o++] = ' ';
        } else {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    return (ssize_t)o;
}

char *coil_http_html_escape(const char *s)
{
    if (!s)
        return NULL;
    size_t n = 0;
    for (const char *p = s; *p; p++) {
        switch (*p) {
        case '&':
            n += 5;
            break;
        case '<':
        case '>':
            n += 4;
            break;
        case '"':
            n += 6;
            break;
        case '\'':
            n += 6;
            break;
        default:
            n += 1;
            break;
        }
    }
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *p = s; *p; p++) {
        const char *e = NULL;
        switch (*p) {
        case '&':
            e = "&amp;";
            break;
        case '<':
            e = "&lt;";
            break;
        case '>':
            e = "&gt;";
            break;
        case '"':
            e = "&quot;";
            break;
        case '\'':
            e = "&#x27;";
            break;
        default:
            *o++ = *p;
            continue;
        }
        size_t k = strlen(e);
        memcpy(o, e, k);
        o += k;
    }
    *o = '\0';
    return out;
}

/* ---- HTTP-dates ----------------------------------------------------------- */

static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const wdays_long[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                          "Thursday", "Friday", "Saturday"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

size_t coil_http_date_format(time_t t, char *buf, size_t size)
{
    struct tm tm;
    if (!buf || size < COIL_HTTP_DATE_LEN || !gmtime_r(&t, &tm) ||
        tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
        if (buf && size)
            buf[0] = '\0';
        return 0;
    }
    int n = snprintf(buf, size, "%s, %02d %s %04d %02d:%02d:%02d GMT", wdays[tm.tm_wday],
                     tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
    return n > 0 ? (size_t)n : 0;
}

/* Read exactly `n` digits. */
static int digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit((*s)[i]))
            return -1;
        v = v * 10 + ((*s)[i] - '0');
    }
    *s += n;
    *out = v;
    return 0;
}

static int lit(const char **s, const char *l)
{
    size_t n = strlen(l);
    if (strncmp(*s, l, n) != 0)
        return -1;
    *s += n;
    return 0;
}

static int month(const char **s, int *mon)
{
    for (int i = 0; i < 12; i++) {
        if (strncmp(*s, months[i], 3) == 0) {
            *mon = i;
            *s += 3;
            return 0;
        }
    }
    return -1;
}

static int hms(const char **s, struct tm *tm)
{
    if (digits(s, 2, &tm->tm_hour) || lit(s, ":") || digits(s, 2, &tm->tm_min) ||
        lit(s, ":") || digits(s, 2, &tm->tm_sec))
        return -1;
    return tm->tm_hour > 23 || tm->tm_min > 59 || tm->tm_sec > 60 ? -1 : 0;
}

int coil_http_date_parse(const char *s, time_t *out)
{
    if (!s || !out)
        return COIL_EINVAL;
    struct tm tm = {0};
    int year = 0, wday = -1;
    const char *p = s;
    for (int i = 0; i < 7 && wday < 0; i++) {
        if (strncmp(p, wdays_long[i], strlen(wdays_long[i])) == 0 &&
            p[strlen(wdays_long[i])] == ',') {
            wday = i;
            p += strlen(wdays_long[i]);
        } else if (strncmp(p, wdays[i], 3) == 0) {
            wday = i;
            p += 3;
        }
    }
    if (wday < 0)
        return COIL_EINVAL;
    if (p - s == 3 && *p == ',') {
        /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
        if (lit(&p, ", ") || digits(&p, 2, &tm.tm_mday) || lit(&p, " ") ||
            month(&p, &tm.tm_mon) || lit(&p, " ") || digits(&p, 4, &year) ||
            lit(&p, " ") || hms(&p, &tm) || lit(&p, " GMT") || *p)
            return COIL_EINVAL;
    } else if (p - s > 3) {
        /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
        int yy;
        if (lit(&p, ", ") || digits(&p, 2, &tm.tm_mday) || lit(&p, "-") ||
            month(&p, &tm.tm_mon) || lit(&p, "-") || digits(&p, 2, &yy) || lit(&p, " ") ||
            hms(&p, &tm) || lit(&p, " GMT") || *p)
            return COIL_EINVAL;
        /* RFC 9110 5.6.7: a year more than 50 years ahead is in the past
         * century */
        time_t now = time(NULL);
        struct tm nt;
        int this_year = gmtime_r(&now, &nt) ? nt.tm_year + 1900 : 2026;
        year = (this_year / 100) * 100 + yy;
        if (year > this_year + 50)
            year -= 100;
    } else {
        /* asctime: Sun Nov  6 08:49:37 1994 */
        if (lit(&p, " ") || month(&p, &tm.tm_mon) || lit(&p, " "))
            return COIL_EINVAL;
        if (*p == ' ') {
            p++;
            if (digits(&p, 1, &tm.tm_mday))
                return COIL_EINVAL;
        } else if (digits(&p, 2, &tm.tm_mday)) {
            return COIL_EINVAL;
        }
        if (lit(&p, " ") || hms(&p, &tm) || lit(&p, " ") || digits(&p, 4, &year) || *p)
            return COIL_EINVAL;
    }
    if (tm.tm_mday < 1 || tm.tm_mday > 31 || year < 1900)
        return COIL_EINVAL;
    tm.tm_year = year - 1900;
    int mday = tm.tm_mday, mon = tm.tm_mon;
    int sec = tm.tm_sec;
    if (sec == 60)
        tm.tm_sec = 59; /* a leap second: the second before */
    time_t t = timegm(&tm);
    /* timegm normalises Feb 30 to Mar 2: refuse such dates */
    if (t == (time_t)-1 || tm.tm_mday != mday || tm.tm_mon != mon)
        return COIL_EINVAL;
    *out = t;
    return 0;
}

void coil_http_bytes_free(void *bytes)
{
    coil_http_bytes *b = bytes;
    if (!b)
        return;
    free(b->data);
    free(b);
}
