/* Fuzz target: URLs as the agent takes them (protocols/http/util.c).
 *
 * Input: text. The whole input (up to the first NUL) is parsed as a URL;
 * when it parses, the parts obey the rules (a known scheme, a port in
 * range, a target starting with '/', no credentials) and the URL written
 * back from them parses to the same parts. The input is also resolved as a
 * reference against fixed bases (http, https with IPv6 and a port,
 * http+unix) and, when it holds a newline, its second line against its
 * first; every result is checked and written back the same way. unquote and
 * html_escape get the input too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coil/http.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)              \
    do {                      \
        if (!(x))             \
            __builtin_trap(); \
    } while (0)

/* The URL written back: scheme://authority/target, the UNIX socket path
 * percent-encoded as the host. */
static char *format(const coil_http_url *u)
{
    size_t cap = 3 * strlen(u->host) + strlen(u->target) + strlen(u->authority) + 64;
    char *s = malloc(cap), *p = s;
    CHECK(s);
    p += sprintf(p, "%s://", u->scheme);
    if (strcmp(u->scheme, "http+unix") == 0) {
        for (const unsigned char *c = (const unsigned char *)u->host; *c; c++)
            p += sprintf(p, "%%%02X", *c);
    } else {
        p += sprintf(p, "%s", u->authority);
    }
    sprintf(p, "%s", u->target);
    return s;
}

static void check_url(const coil_http_url *u)
{
    int unix_sock = strcmp(u->scheme, "http+unix") == 0;
    CHECK(unix_sock || strcmp(u->scheme, "http") == 0 || strcmp(u->scheme, "https") == 0);
    CHECK(u->secure == (strcmp(u->scheme, "https") == 0));
    if (unix_sock)
        CHECK(u->port == 0 && strcmp(u->authority, "localhost") == 0);
    else
        CHECK(u->port >= 1 && u->port <= 65535 && u->authority[0]);
    CHECK(u->host[0]);
    CHECK(!strchr(u->authority, '@'));
    CHECK(u->target[0] == '/' && u->path[0] == '/');
    CHECK(strncmp(u->target, u->path, strlen(u->path)) == 0);
    CHECK(!strchr(u->target, '#') && !strchr(u->path, '?'));
    for (const char *c = u->target; *c; c++)
        CHECK((unsigned char)*c > 0x20 && (unsigned char)*c < 0x7f);
    /* written back, it parses to the same parts */
    char *text = format(u);
    coil_http_url *v = NULL;
    coil_failure *err = NULL;
    CHECK(coil_http_url_parse(text, &v, &err) == 0);
    CHECK(!err);
    CHECK(strcmp(u->scheme, v->scheme) == 0 && strcmp(u->host, v->host) == 0 &&
          u->port == v->port && strcmp(u->authority, v->authority) == 0 &&
          strcmp(u->target, v->target) == 0 && strcmp(u->path, v->path) == 0 &&
          strcmp(u->query, v->query) == 0 && u->secure == v->secure);
    coil_http_url_free(v);
    free(text);
}

static void resolve(const coil_http_url *base, const char *ref)
{
    coil_http_url *u = NULL;
    coil_failure *err = NULL;
    if (coil_http_url_resolve(base, ref, &u, &err) == 0) {
        CHECK(u && !err);
        check_url(u);
        coil_http_url_free(u);
    } else {
        CHECK(!u && err && coil_failure_message(err)[0]);
        coil_failure_free(err);
    }
}

static const char *const bases[] = {
    "http://a/b/c/d;p?q",
    "https://[::1]:8443/x/",
    "http+unix://%2Frun%2Fapp.sock/a/b?c",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > COIL_HTTP_MAX_URL + 16)
        return 0;
    char *text = malloc(size + 1);
    CHECK(text);
    memcpy(text, data, size);
    text[size] = '\0';

    coil_http_url *u = NULL;
    coil_failure *err = NULL;
    if (coil_http_url_parse(text, &u, &err) == 0) {
        CHECK(u && !err);
        check_url(u);
        coil_http_url_free(u);
    } else {
        CHECK(!u && err && coil_failure_message(err)[0]);
        coil_failure_free(err);
    }
    for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
        coil_http_url *b = NULL;
        CHECK(coil_http_url_parse(bases[i], &b, NULL) == 0);
        resolve(b, text);
        coil_http_url_free(b);
    }
    char *nl = strchr(text, '\n');
    if (nl) {
        *nl = '\0';
        coil_http_url *b = NULL;
        err = NULL;
        if (coil_http_url_parse(text, &b, &err) == 0) {
            resolve(b, nl + 1);
            coil_http_url_free(b);
        } else {
            coil_failure_free(err);
        }
        *nl = '\n';
    }

    size_t len = strlen(text);
    char *out = malloc(len + 1);
    CHECK(out);
    ssize_t n = coil_http_unquote(text, len, out, size & 1);
    CHECK(n >= -1 && n <= (ssize_t)len);
    if (n >= 0)
        CHECK(out[n] == '\0');
    free(out);
    char *e = coil_http_html_escape(text);
    CHECK(e && !strpbrk(e, "<>\"'"));
    free(e);
    free(text);
    return 0;
}
