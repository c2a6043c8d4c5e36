/* HTTP's shared pieces (protocols/http/util.c): status texts, header lists,
 * URLs (parse, and resolve with RFC 3986 section 5.4's examples), percent-
 * decoding, HTML escaping, HTTP-dates in their three forms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include <coil/http.h>

static void test_status_text(void)
{
    CU_ASSERT_STRING_EQUAL(coil_http_status_text(200), "OK");
    CU_ASSERT_STRING_EQUAL(coil_http_status_text(404), "Not Found");
    CU_ASSERT_STRING_EQUAL(coil_http_status_text(431), "Request Header Fields Too Large");
    CU_ASSERT_STRING_EQUAL(coil_http_status_text(505), "HTTP Version Not Supported");
    CU_ASSERT_STRING_EQUAL(coil_http_status_text(299), "");
    CU_ASSERT_STRING_EQUAL(coil_http_status_text(-1), "");
}

static void test_headers(void)
{
    coil_http_headers *h = coil_http_headers_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_EQUAL(coil_http_headers_count(h), 0);
    CU_ASSERT_EQUAL(coil_http_headers_add(h, "Accept", "text/html"), 0);
    CU_ASSERT_EQUAL(coil_http_headers_add(h, "X-A", "1"), 0);
    CU_ASSERT_EQUAL(coil_http_headers_add(h, "x-a", "2\tand 3"), 0);
    CU_ASSERT_EQUAL(coil_http_headers_add(h, "Empty", ""), 0);
    CU_ASSERT_EQUAL(coil_http_headers_count(h), 4);
    CU_ASSERT_STRING_EQUAL(coil_http_headers_get(h, "X-a"), "1");
    CU_ASSERT_STRING_EQUAL(coil_http_headers_get(h, "empty"), "");
    CU_ASSERT_PTR_NULL(coil_http_headers_get(h, "Nope"));
    const char *n, *v;
    CU_ASSERT_EQUAL(coil_http_headers_at(h, 2, &n, &v), 0);
    CU_ASSERT_STRING_EQUAL(n, "x-a");
    CU_ASSERT_STRING_EQUAL(v, "2\tand 3");
    CU_ASSERT_EQUAL(coil_http_headers_at(h, 4, &n, &v), COIL_EINVAL);

    /* bad names and values */
    CU_ASSERT_EQUAL(coil_http_headers_add(h, "Bad Name", "x"), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_http_headers_add(h, "Bad:", "x"), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_http_headers_add(h, "", "x"), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_http_headers_add(h, "X", "a\r\nInjected: 1"), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_http_headers_add(h, "X", "a\nb"), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_http_headers_add(h, "X", "a\x01"), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_http_headers_add(h, "X", "a\x7f"), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_http_headers_set(h, "X\r", "a"), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_http_headers_add(h, "X", NULL), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_http_headers_count(h), 4);

    /* set replaces every field of the name, at the end */
    CU_ASSERT_EQUAL(coil_http_headers_set(h, "X-A", "3"), 0);
    CU_ASSERT_EQUAL(coil_http_headers_count(h), 3);
    CU_ASSERT_STRING_EQUAL(coil_http_headers_get(h, "x-a"), "3");
    CU_ASSERT_EQUAL(coil_http_headers_at(h, 0, &n, &v), 0);
    CU_ASSERT_STRING_EQUAL(n, "Accept");
    CU_ASSERT_EQUAL(coil_http_headers_at(h, 2, &n, &v), 0);
    CU_ASSERT_STRING_EQUAL(n, "X-A");
    CU_ASSERT_EQUAL(coil_http_headers_remove(h, "ACCEPT"), 1);
    CU_ASSERT_EQUAL(coil_http_headers_remove(h, "Accept"), 0);
    CU_ASSERT_EQUAL(coil_http_headers_count(h), 2);
    for (int i = 0; i < 100; i++)
        CU_ASSERT_EQUAL(coil_http_headers_add(h, "Many", "x"), 0);
    CU_ASSERT_EQUAL(coil_http_headers_remove(h, "many"), 100);
    CU_ASSERT_EQUAL(coil_http_headers_count(h), 2);
    coil_http_headers_free(h);
    coil_http_headers_free(NULL);
}

/* ---- URLs ----------------------------------------------------------------- */

static void url_ok(const char *text, const char *scheme, const char *host, int port,
                   const char *authority, const char *target, const char *path,
                   const char *query)
{
    coil_http_url *u = NULL;
    coil_failure *err = NULL;
    int rc = coil_http_url_parse(text, &u, &err);
    if (rc != 0) {
        fprintf(stderr, "\n  %s: ", text);
        coil_failure_print(err, stderr);
        coil_failure_free(err);
        CU_FAIL("URL refused");
        return;
    }
    CU_ASSERT_PTR_NULL(err);
    CU_ASSERT_STRING_EQUAL(u->scheme, scheme);
    CU_ASSERT_STRING_EQUAL(u->host, host);
    CU_ASSERT_EQUAL(u->port, port);
    CU_ASSERT_STRING_EQUAL(u->authority, authority);
    CU_ASSERT_STRING_EQUAL(u->target, target);
    CU_ASSERT_STRING_EQUAL(u->path, path);
    CU_ASSERT_STRING_EQUAL(u->query, query);
    CU_ASSERT_EQUAL(u->secure, strcmp(scheme, "https") == 0);
    coil_http_url_free(u);
}

static void url_bad(const char *text, const char *needle)
{
    coil_http_url *u = (coil_http_url *)1;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL(coil_http_url_parse(text, &u, &err), COIL_EINVAL);
    CU_ASSERT_PTR_NULL(u);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    const char *msg = coil_failure_message(err);
    if (!strstr(msg, needle)) {
        fprintf(stderr, "\n  %s: expected '%s' in: %s\n", text, needle, msg);
        CU_FAIL("unexpected message");
    }
    coil_failure_free(err);
}

static void test_url_parse(void)
{
    url_ok("http://example.org", "http", "example.org", 80, "example.org", "/", "/", "");
    url_ok("HTTP://Example.ORG:80/A%20b?x=1&y#frag", "http", "example.org", 80,
           "example.org", "/A%20b?x=1&y", "/A%20b", "x=1&y");
    url_ok("https://example.org/", "https", "example.org", 443, "example.org", "/", "/",
           "");
    url_ok("https://example.org:8443/x?", "https", "example.org", 8443,
           "example.org:8443", "/x?", "/x", "");
    url_ok("http://127.0.0.1:8080?q", "http", "127.0.0.1", 8080, "127.0.0.1:8080", "/?q",
           "/", "q");
    url_ok("https://[::1]:8443/x", "https", "::1", 8443, "[::1]:8443", "/x", "/x", "");
    url_ok("http://[2001:DB8::1]/", "http", "2001:db8::1", 80, "[2001:db8::1]", "/", "/",
           "");
    url_ok("http://h:/p", "http", "h", 80, "h", "/p", "/p", "");
    url_ok("http://h:65535/", "http", "h", 65535, "h:65535", "/", "/", "");
    url_ok("http+unix://%2Frun%2Fapp.sock/path?a=b", "http+unix", "/run/app.sock", 0,
           "localhost", "/path?a=b", "/path", "a=b");
    url_ok("http://xn--bcher-kva.example/%7Euser/", "http", "xn--bcher-kva.example", 80,
           "xn--bcher-kva.example", "/%7Euser/", "/%7Euser/", "");

    url_bad("ftp://example.org/", "has scheme 'ftp'; coil's agent speaks http, https");
    url_bad("example.org/x", "is not absolute");
    url_bad("/x", "is not absolute");
    url_bad("mailto:a@b", "has scheme 'mailto'");
    url_bad("http:/x", "is not absolute");
    url_bad("", "is not absolute");
    url_bad("http://user:pw@example.org/", "credentials");
    url_bad("http://@example.org/", "credentials");
    url_bad("http://example.org:0/", "port");
    url_bad("http://example.org:65536/", "port");
    url_bad("http://example.org:99999999999999999999/", "port");
    url_bad("http://example.org:-1/", "port");
    url_bad("http://example.org:8o/", "port");
    url_bad("http:///x", "has no host");
    url_bad("http://", "has no host");
    url_bad("http://[::1/", "IPv6");
    url_bad("http://[::g]/", "IPv6");
    url_bad("http://[::1]x/", "after the IPv6");
    url_bad("http://exa mple.org/", "space");
    url_bad("http://example.org/a b", "space");
    url_bad("http://example.org/\xc3\xa9", "non-ASCII");
    url_bad("http://example.org/%zz", "percent-escape");
    url_bad("http://example.org/%4", "percent-escape");
    url_bad("http://exa\"mple/", "host name");
    url_bad("http+unix://%2Frun%2Fx.sock:80/", "port for a UNIX socket");
    url_bad("http+unix://%00/", "socket path");
    url_bad("http+unix://%zz/", "percent-escape");
    char *big = malloc(COIL_HTTP_MAX_URL + 100);
    CU_ASSERT_FATAL(big != NULL);
    strcpy(big, "http://example.org/");
    memset(big + 19, 'a', COIL_HTTP_MAX_URL);
    big[COIL_HTTP_MAX_URL + 19] = '\0';
    url_bad(big, "longer than 8192");
    big[COIL_HTTP_MAX_URL] = '\0';
    url_ok(big, "http", "example.org", 80, "example.org", big + 18, big + 18, "");
    free(big);

    coil_failure *err = NULL;
    coil_http_url *u;
    CU_ASSERT_EQUAL(coil_http_url_parse(NULL, &u, &err), COIL_EINVAL);
    coil_failure_free(err);
    coil_http_url_free(NULL);
}

/* "scheme://authority" + target */
static char *url_text(const coil_http_url *u)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s://%s%s", u->scheme,
             strcmp(u->scheme, "http+unix") == 0 ? "(unix)" : u->authority, u->target);
    return buf;
}

static void resolve_ok(const char *base, const char *ref, const char *want)
{
    coil_http_url *b = NULL, *u = NULL;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_http_url_parse(base, &b, &err), 0);
    int rc = coil_http_url_resolve(b, ref, &u, &err);
    if (rc != 0) {
        fprintf(stderr, "\n  resolve '%s': ", ref);
        coil_failure_print(err, stderr);
        coil_failure_free(err);
        CU_FAIL("resolve failed");
    } else if (strcmp(url_text(u), want) != 0) {
        fprintf(stderr, "\n  resolve '%s': got %s, want %s\n", ref, url_text(u), want);
        CU_FAIL("resolve gave the wrong URL");
    }
    coil_http_url_free(u);
    coil_http_url_free(b);
}

static void test_url_resolve(void)
{
    /* RFC 3986 5.4.1 and 5.4.2 (the base has no fragment; ours always have
     * a path, so "http://g" reads "http://g/") */
    const char *base = "http://a/b/c/d;p?q";
    static const char *const cases[][2] = {
        {"g", "http://a/b/c/g"},
        {"./g", "http://a/b/c/g"},
        {"g/", "http://a/b/c/g/"},
        {"/g", "http://a/g"},
        {"//g", "http://g/"},
        {"?y", "http://a/b/c/d;p?y"},
        {"g?y", "http://a/b/c/g?y"},
        {"#s", "http://a/b/c/d;p?q"},
        {"g#s", "http://a/b/c/g"},
        {"g?y#s", "http://a/b/c/g?y"},
        {";x", "http://a/b/c/;x"},
        {"g;x", "http://a/b/c/g;x"},
        {"g;x?y#s", "http://a/b/c/g;x?y"},
        {"", "http://a/b/c/d;p?q"},
        {".", "http://a/b/c/"},
        {"./", "http://a/b/c/"},
        {"..", "http://a/b/"},
        {"../", "http://a/b/"},
        {"../g", "http://a/b/g"},
        {"../..", "http://a/"},
        {"../../", "http://a/"},
        {"../../g", "http://a/g"},
        {"../../../g", "http://a/g"},
        {"../../../../g", "http://a/g"},
        {"/./g", "http://a/g"},
        {"/../g", "http://a/g"},
        {"g.", "http://a/b/c/g."},
        {".g", "http://a/b/c/.g"},
        {"g..", "http://a/b/c/g.."},
        {"..g", "http://a/b/c/..g"},
        {"./../g", "http://a/b/g"},
        {"./g/.", "http://a/b/c/g/"},
        {"g/./h", "http://a/b/c/g/h"},
        {"g/../h", "http://a/b/c/h"},
        {"g;x=1/./y", "http://a/b/c/g;x=1/y"},
        {"g;x=1/../y", "http://a/b/c/y"},
        {"g?y/./x", "http://a/b/c/g?y/./x"},
        {"g?y/../x", "http://a/b/c/g?y/../x"},
        {"g#s/./x", "http://a/b/c/g"},
        {"g#s/../x", "http://a/b/c/g"},
        {"http:g", NULL}, /* strict parsers: "http:g" is absolute, and not ours */
        {"https://other.example:8443/z?k", "https://other.example:8443/z?k"},
        {"HTTP://A/x", "http://a/x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i][1]) {
            resolve_ok(base, cases[i][0], cases[i][1]);
        } else {
            coil_http_url *b, *u = NULL;
            coil_failure *err = NULL;
            CU_ASSERT_EQUAL_FATAL(coil_http_url_parse(base, &b, &err), 0);
            CU_ASSERT_EQUAL(coil_http_url_resolve(b, cases[i][0], &u, &err), COIL_EINVAL);
            CU_ASSERT_PTR_NULL(u);
            CU_ASSERT_PTR_NOT_NULL(err);
            coil_failure_free(err);
            coil_http_url_free(b);
        }
    }
    /* the base's port, IPv6 host and UNIX socket are kept */
    resolve_ok("https://[::1]:8443/a/b", "c?d", "https://[::1]:8443/a/c?d");
    resolve_ok("http://h:8080/a/b", "/x", "http://h:8080/x");
    resolve_ok("http+unix://%2Frun%2Fapp.sock/a/b", "../c", "http+unix://(unix)/c");
    coil_http_url *b, *u;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL_FATAL(
        coil_http_url_parse("http+unix://%2Frun%2Fapp%20x.sock/a", &b, &err), 0);
    CU_ASSERT_EQUAL_FATAL(coil_http_url_resolve(b, "z", &u, &err), 0);
    CU_ASSERT_STRING_EQUAL(u->host, "/run/app x.sock");
    CU_ASSERT_STRING_EQUAL(u->target, "/z");
    coil_http_url_free(u);
    CU_ASSERT_EQUAL(coil_http_url_resolve(b, "ftp://x/", &u, &err), COIL_EINVAL);
    COIL_TEST_ASSERT_HAS(coil_failure_message(err), "has scheme 'ftp'");
    coil_failure_free(err);
    err = NULL;
    CU_ASSERT_EQUAL(coil_http_url_resolve(b, "a b", &u, &err), COIL_EINVAL);
    coil_failure_free(err);
    coil_http_url_free(b);
}

static void test_unquote(void)
{
    char out[64];
    CU_ASSERT_EQUAL(coil_http_unquote("a%20b+c%2B%2f", 13, out, 0), 7);
    CU_ASSERT_STRING_EQUAL(out, "a b+c+/");
    CU_ASSERT_EQUAL(coil_http_unquote("a%20b+c", 7, out, 1), 5);
    CU_ASSERT_STRING_EQUAL(out, "a b c");
    CU_ASSERT_EQUAL(coil_http_unquote("%00x", 4, out, 0), 2);
    CU_ASSERT_EQUAL(out[0], 0);
    CU_ASSERT_EQUAL(out[1], 'x');
    CU_ASSERT_EQUAL(coil_http_unquote("", 0, out, 0), 0);
    CU_ASSERT_STRING_EQUAL(out, "");
    CU_ASSERT_EQUAL(coil_http_unquote("%zz", 3, out, 0), -1);
    CU_ASSERT_EQUAL(coil_http_unquote("%4", 2, out, 0), -1);
    CU_ASSERT_EQUAL(coil_http_unquote("ab%", 3, out, 0), -1);
    CU_ASSERT_EQUAL(coil_http_unquote("%4g", 3, out, 0), -1);
    /* only `len` bytes are read */
    CU_ASSERT_EQUAL(coil_http_unquote("ab%41", 3, out, 0), -1);
    CU_ASSERT_EQUAL(coil_http_unquote("ab%41", 2, out, 0), 2);
    /* in place */
    char s[] = "%E2%82%AC%20x";
    CU_ASSERT_EQUAL(coil_http_unquote(s, strlen(s), s, 0), 5);
    CU_ASSERT_STRING_EQUAL(s, "\xe2\x82\xac x");
}

static void test_html_escape(void)
{
    char *e = coil_http_html_escape("<a href=\"x\">Tom & Jerry's</a>");
    CU_ASSERT_STRING_EQUAL(
        e, "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#x27;s&lt;/a&gt;");
    free(e);
    e = coil_http_html_escape("");
    CU_ASSERT_STRING_EQUAL(e, "");
    free(e);
    e = coil_http_html_escape("plain caf\xc3\xa9");
    CU_ASSERT_STRING_EQUAL(e, "plain caf\xc3\xa9");
    free(e);
    CU_ASSERT_PTR_NULL(coil_http_html_escape(NULL));
}

static void test_dates(void)
{
    char buf[COIL_HTTP_DATE_LEN];
    CU_ASSERT_EQUAL(coil_http_date_format(784111777, buf, sizeof buf), 29);
    CU_ASSERT_STRING_EQUAL(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
    CU_ASSERT_EQUAL(coil_http_date_format(0, buf, sizeof buf), 29);
    CU_ASSERT_STRING_EQUAL(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
    CU_ASSERT_EQUAL(coil_http_date_format(0, buf, 29), 0); /* no room for the NUL */

    time_t t = 0;
    CU_ASSERT_EQUAL(coil_http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", &t), 0);
    CU_ASSERT_EQUAL(t, 784111777);
    t = 0;
    CU_ASSERT_EQUAL(coil_http_date_parse("Sunday, 06-Nov-94 08:49:37 GMT", &t), 0);
    CU_ASSERT_EQUAL(t, 784111777);
    t = 0;
    CU_ASSERT_EQUAL(coil_http_date_parse("Sun Nov  6 08:49:37 1994", &t), 0);
    CU_ASSERT_EQUAL(t, 784111777);
    CU_ASSERT_EQUAL(coil_http_date_parse("Thu Nov 16 08:49:37 1994", &t), 0);
    CU_ASSERT_EQUAL(t, 784111777 + 10 * 86400);
    CU_ASSERT_EQUAL(coil_http_date_parse("Tue, 29 Feb 2028 23:59:59 GMT", &t), 0);
    /* RFC 850's two-digit years: more than 50 years ahead is the past */
    CU_ASSERT_EQUAL(coil_http_date_parse("Friday, 01-Jan-99 00:00:00 GMT", &t), 0);
    CU_ASSERT_EQUAL(t, 915148800); /* 1999: 2099 is more than 50 years ahead */
    CU_ASSERT_EQUAL(coil_http_date_parse("Monday, 01-Jan-35 00:00:00 GMT", &t), 0);
    CU_ASSERT_EQUAL(coil_http_date_format(t, buf, sizeof buf), 29);
    CU_ASSERT_STRING_EQUAL(buf, "Mon, 01 Jan 2035 00:00:00 GMT");

    static const char *const bad[] = {
        "",
        "Sun, 06 Nov 1994 08:49:37",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 GMT ",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 29 Feb 2027 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:49:37 GMT",
        "Sun, 06 Nov 1994 08:60:37 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun 06 Nov 1994 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sunday 06-Nov-94 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994",
        "Sun Nov  6 08:49:37 94",
        "Sun Nov  6 08:49:37 1994 GMT",
        "1994-11-06T08:49:37Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (coil_http_date_parse(bad[i], &t) != COIL_EINVAL) {
            fprintf(stderr, "\n  accepted bad date '%s'\n", bad[i]);
            CU_FAIL("bad date accepted");
        }
    }
    /* round trip over a range of times */
    for (time_t x = -86400LL * 365 * 60; x < 86400LL * 365 * 200;
         x += 86400 * 37 + 3671) {
        time_t back = -1;
        if (x < 0 && -x > 86400LL * 365 * 69)
            continue;
        CU_ASSERT_EQUAL_FATAL(coil_http_date_format(x, buf, sizeof buf), 29);
        CU_ASSERT_EQUAL_FATAL(coil_http_date_parse(buf, &back), 0);
        CU_ASSERT_EQUAL_FATAL(back, x);
    }
}

static void test_bytes_free(void)
{
    coil_http_bytes *b = malloc(sizeof *b);
    CU_ASSERT_FATAL(b != NULL);
    b->data = strdup("abc");
    b->len = 3;
    coil_http_bytes_free(b);
    coil_http_bytes_free(NULL);
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_status_text),
        COIL_TEST(test_headers),
        COIL_TEST(test_url_parse),
        COIL_TEST(test_url_resolve),
        COIL_TEST(test_unquote),
        COIL_TEST(test_html_escape),
        COIL_TEST(test_dates),
        COIL_TEST(test_bytes_free),
        {NULL, NULL},
    };
    return coil_test_add_suite("http_util", cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
