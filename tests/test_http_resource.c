/* twisted.web's resource model in coil: form arguments (forms.c: query
 * strings, urlencoded and multipart bodies), the resource tree (resource.c),
 * and a site driven over the in-memory transport with the fake clock: the
 * tree walk, render by method, deferred rendering, redirects, error pages
 * and the seed book's chapter 4 pages (calendar, FormPage, BusyPage). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_private.h"
#include "testutil.h"

/* ======================================================================= */
/* ---- forms.c ------------------------------------------------------------ */

static void test_urlencoded(void)
{
    coil__http_args a = {0};
    const char *why = COIL_TEST_POISON;
    static const char q[] = "a=1&b=x+y&c=%41%42&d&e=&&f=%00z&a=2&%3D=%26";
    CU_ASSERT_EQUAL_FATAL(coil__http_args_add_urlencoded(&a, q, strlen(q), &why), 0);
    CU_ASSERT_PTR_NULL(why);
    CU_ASSERT_EQUAL_FATAL(a.count, 8);
    static const struct {
        const char *name, *value;
        size_t len;
    } want[] = {{"a", "1", 1}, {"b", "x y", 3}, {"c", "AB", 2}, {"d", "", 0},
                {"e", "", 0},  {"f", "\0z", 2}, {"a", "2", 1},  {"=", "&", 1}};
    for (size_t i = 0; i < 8; i++) {
        CU_ASSERT_STRING_EQUAL(a.items[i].name, want[i].name);
        CU_ASSERT_EQUAL(a.items[i].len, want[i].len);
        CU_ASSERT(memcmp(a.items[i].value, want[i].value, want[i].len + 1) == 0);
        CU_ASSERT_PTR_NULL(a.items[i].filename);
        CU_ASSERT_PTR_NULL(a.items[i].content_type);
    }
    /* find gives the first; the list keeps growing across calls (query,
     * then body). */
    CU_ASSERT_STRING_EQUAL(coil__http_args_find(&a, "a")->value, "1");
    CU_ASSERT_PTR_NULL(coil__http_args_find(&a, "zz"));
    CU_ASSERT_EQUAL(coil__http_args_add_urlencoded(&a, "zz=last", 7, &why), 0);
    CU_ASSERT_STRING_EQUAL(coil__http_args_find(&a, "zz")->value, "last");
    CU_ASSERT_EQUAL(coil__http_args_add_urlencoded(&a, "", 0, &why), 0);
    CU_ASSERT_EQUAL(a.count, 9);
    /* Only `len` bytes are read. */
    CU_ASSERT_EQUAL(coil__http_args_add_urlencoded(&a, "k=v&junk", 3, &why), 0);
    CU_ASSERT_STRING_EQUAL(a.items[9].name, "k");
    CU_ASSERT_STRING_EQUAL(a.items[9].value, "v");
    coil__http_args_free(&a);
    CU_ASSERT_EQUAL(a.count, 0);
    CU_ASSERT_PTR_NULL(a.items);
    coil__http_args_free(&a); /* twice: harmless */
}

static void test_urlencoded_refused(void)
{
    static const char *const bad[] = {"a=%zz", "a=%4", "ok=1&b=%", "%g1=x",
                                      "x=1&admin%00=1"};
    coil__http_args a = {0};
    CU_ASSERT_EQUAL(coil__http_args_add_urlencoded(&a, "keep=1", 6, NULL), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        CU_ASSERT_EQUAL(coil__http_args_add_urlencoded(&a, bad[i], strlen(bad[i]), &why),
                        COIL_EINVAL);
        CU_ASSERT_PTR_NOT_NULL(why);
        /* A refused call leaves the list as it was. */
        CU_ASSERT_EQUAL(a.count, 1);
    }
    const char *why = NULL;
    coil__http_args_add_urlencoded(&a, "a=%zz", 5, &why);
    COIL_TEST_ASSERT_HAS(why, "bad percent escape");
    coil__http_args_add_urlencoded(&a, "admin%00x=1", 11, &why);
    COIL_TEST_ASSERT_HAS(why, "NUL");
    coil__http_args_free(&a);

    /* At most COIL__HTTP_MAX_ARGS arguments. */
    size_t n = COIL__HTTP_MAX_ARGS + 1;
    char *many = malloc(2 * n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(many);
    for (size_t i = 0; i < n; i++) {
        many[2 * i] = 'x';
        many[2 * i + 1] = '&';
    }
    CU_ASSERT_EQUAL(coil__http_args_add_urlencoded(&a, many, 2 * n - 1, &why),
                    COIL_EMSGSIZE);
    COIL_TEST_ASSERT_HAS(why, "more than 1000");
    CU_ASSERT_EQUAL(a.count, 0);
    CU_ASSERT_EQUAL(coil__http_args_add_urlencoded(&a, many, 2 * (n - 1) - 1, &why), 0);
    CU_ASSERT_EQUAL(a.count, COIL__HTTP_MAX_ARGS);
    coil__http_args_free(&a);
    free(many);
}

/* A browser's body: a preamble, a text field, a file with binary bytes
 * (NUL, CR, LF, "--" and a near-boundary inside), an empty field, an
 * epilogue. */
static const char mp_type[] = "multipart/form-data; boundary=----WebKitFormBoundaryX3";
static const char mp_body[] = "preamble to ignore\r\n"
                              "------WebKitFormBoundaryX3\r\n"
                              "Content-Disposition: form-data; name=\"form-field\"\r\n"
                              "\r\n"
                              "hello <world>\r\n"
                              "------WebKitFormBoundaryX3   \r\n"
                              "content-disposition: Form-Data; NAME=\"upload\"; "
                              "filename=\"a \\\"b\\\".bin\"\r\n"
                              "Content-Type:  application/octet-stream \r\n"
                              "X-Other: ignored\r\n"
                              "\r\n"
                              "\0\r\n--\r\n------WebKitFormBoundaryX\r\nend\r\n"
                              "------WebKitFormBoundaryX3\r\n"
                              "Content-Disposition: form-data; name=empty\r\n"
                              "\r\n"
                              "\r\n"
                              "------WebKitFormBoundaryX3--\r\n"
                              "epilogue, ignored too\r\n";

static void test_multipart(void)
{
    coil__http_args a = {0};
    const char *why = NULL;
    int rc =
        coil__http_args_add_multipart(&a, mp_type, mp_body, sizeof mp_body - 1, &why);
    if (rc != 0)
        fprintf(stderr, "\n    refused: %s\n", why);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL_FATAL(a.count, 3);
    CU_ASSERT_STRING_EQUAL(a.items[0].name, "form-field");
    CU_ASSERT_STRING_EQUAL(a.items[0].value, "hello <world>");
    CU_ASSERT_EQUAL(a.items[0].len, 13);
    CU_ASSERT_PTR_NULL(a.items[0].filename);
    CU_ASSERT_PTR_NULL(a.items[0].content_type);

    const coil_http_arg *f = coil__http_args_find(&a, "upload");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    static const char file[] = "\0\r\n--\r\n------WebKitFormBoundaryX\r\nend";
    CU_ASSERT_EQUAL(f->len, sizeof file - 1);
    CU_ASSERT(memcmp(f->value, file, sizeof file) == 0); /* NUL-terminated too */
    CU_ASSERT_STRING_EQUAL(f->filename, "a \"b\".bin");
    CU_ASSERT_STRING_EQUAL(f->content_type, "application/octet-stream");

    CU_ASSERT_STRING_EQUAL(a.items[2].name, "empty");
    CU_ASSERT_EQUAL(a.items[2].len, 0);
    CU_ASSERT_STRING_EQUAL(a.items[2].value, "");
    coil__http_args_free(&a);

    /* Quoted boundary with characters a token cannot hold, body opening
     * with the boundary, no epilogue, an empty filename (a file input left
     * empty). */
    static const char qt[] =
        "Multipart/Form-Data ; charset=utf-8; Boundary=\"a:b=c?d e\"";
    static const char qb[] =
        "--a:b=c?d e\r\n"
        "Content-Disposition: form-data; name=\"f\"; filename=\"\"\r\n"
        "\r\n"
        "\r\n"
        "--a:b=c?d e--";
    CU_ASSERT_EQUAL(coil__http_args_add_multipart(&a, qt, qb, sizeof qb - 1, &why), 0);
    CU_ASSERT_EQUAL_FATAL(a.count, 1);
    CU_ASSERT_STRING_EQUAL(a.items[0].filename, "");
    CU_ASSERT_EQUAL(a.items[0].len, 0);
    coil__http_args_free(&a);

    /* No parts at all: a close delimiter only. */
    CU_ASSERT_EQUAL(coil__http_args_add_multipart(&a, "multipart/form-data; boundary=z",
                                                  "--z--\r\n", 7, &why),
                    0);
    CU_ASSERT_EQUAL(a.count, 0);
    coil__http_args_free(&a);
}

/* A boundary of 70 characters is the most RFC 2046 allows. */
static void test_multipart_boundary_length(void)
{
    char type[200], body[400], b[72];
    memset(b, 'b', 70);
    b[70] = '\0';
    snprintf(type, sizeof type, "multipart/form-data; boundary=%s", b);
    int n = snprintf(body, sizeof body,
                     "--%s\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--%s--",
                     b, b);
    coil__http_args a = {0};
    const char *why = NULL;
    CU_ASSERT_EQUAL(coil__http_args_add_multipart(&a, type, body, (size_t)n, &why), 0);
    CU_ASSERT_EQUAL(a.count, 1);
    coil__http_args_free(&a);
    b[70] = 'b';
    b[71] = '\0';
    snprintf(type, sizeof type, "multipart/form-data; boundary=%s", b);
    CU_ASSERT_EQUAL(coil__http_args_add_multipart(&a, type, body, (size_t)n, &why),
                    COIL_EINVAL);
    COIL_TEST_ASSERT_HAS(why, "longer than 70");
}

typedef struct mp_case {
    const char *type, *body, *why;
} mp_case;

#define CD "Content-Disposition: form-data; name=x\r\n"

static const mp_case mp_bad[] = {
    {"text/plain; boundary=b", "--b\r\n" CD "\r\nv\r\n--b--", "not multipart/form-data"},
    {"multipart/form-datax; boundary=b", "--b\r\n" CD "\r\nv\r\n--b--",
     "not multipart/form-data"},
    {"multipart/form-data", "--b\r\n" CD "\r\nv\r\n--b--", "no boundary parameter"},
    {"multipart/form-data; charset=x", "--b\r\n" CD "\r\nv\r\n--b--", "no boundary"},
    {"multipart/form-data; boundary=\"\"", "--\r\n", "does not allow"},
    {"multipart/form-data; boundary=a;boundary=b", "--b--", "two boundary"},
    {"multipart/form-data; boundary=a<b", "--a<b--", "does not allow"},
    {"multipart/form-data; boundary=\"a \"", "--a --", "does not allow"},
    {"multipart/form-data; boundary=\"ab", "--ab--", "unterminated"},
    {"multipart/form-data; boundary", "--b--", "name=value"},
    {"multipart/form-data boundary=b", "--b--", "separated by ';'"},
    {"multipart/form-data; boundary=b", "", "no boundary line"},
    {"multipart/form-data; boundary=b", "no delimiter at all", "no boundary line"},
    {"multipart/form-data; boundary=b", "--b\r\n" CD "\r\nvalue with no end",
     "no closing boundary"},
    {"multipart/form-data; boundary=b", "--b\r\n" CD "\r\nv\r\n--b",
     "no closing boundary"},
    {"multipart/form-data; boundary=b", "--b\r\n" CD "\r\nv\r\n--b\r\n",
     "no blank line after it"},
    {"multipart/form-data; boundary=b", "--b\n" CD "\r\nv\r\n--b--", "LF, not CRLF"},
    {"multipart/form-data; boundary=b", "--bx\r\n" CD "\r\nv\r\n--b--",
     "other text after the boundary"},
    {"multipart/form-data; boundary=b", "--b\r\n" CD "\r\nv\r\n--bb\r\n--b--",
     "other text after the boundary"},
    {"multipart/form-data; boundary=b", "--b\r\n\r\nv\r\n--b--",
     "no Content-Disposition"},
    {"multipart/form-data; boundary=b",
     "--b\r\nContent-Type: text/plain\r\n\r\nv\r\n--b--", "no Content-Disposition"},
    {"multipart/form-data; boundary=b",
     "--b\r\nContent-Disposition: attachment; name=x\r\n\r\nv\r\n--b--", "not form-data"},
    {"multipart/form-data; boundary=b",
     "--b\r\nContent-Disposition: form-data; filename=x\r\n\r\nv\r\n--b--",
     "has no name"},
    {"multipart/form-data; boundary=b",
     "--b\r\nContent-Disposition: form-data; name=x; name=y\r\n\r\nv\r\n--b--",
     "two name parameters"},
    {"multipart/form-data; boundary=b", "--b\r\n" CD CD "\r\nv\r\n--b--",
     "two Content-Disposition"},
    {"multipart/form-data; boundary=b",
     "--b\r\n" CD "Content-Type: a\r\nContent-Type: b\r\n\r\nv\r\n--b--",
     "two Content-Type"},
    {"multipart/form-data; boundary=b", "--b\r\n" CD " folded\r\n\r\nv\r\n--b--",
     "obs-fold"},
    {"multipart/form-data; boundary=b",
     "--b\r\nContent-Disposition : form-data; name=x\r\n\r\n"
     "v\r\n--b--",
     "bad header field name"},
    {"multipart/form-data; boundary=b", "--b\r\nno colon here\r\n" CD "\r\nv\r\n--b--",
     "not a header field"},
    {"multipart/form-data; boundary=b",
     "--b\r\nContent-Disposition: form-data; name=\"x\ty\1\"\r\n"
     "\r\nv\r\n--b--",
     "control byte"},
    {"multipart/form-data; boundary=b", "--b\r\nX: a\rb\r\n" CD "\r\nv\r\n--b--",
     "bare CR"},
    {"multipart/form-data; boundary=b", "--b\r\nX: a\nb\r\n" CD "\r\nv\r\n--b--",
     "bare LF"},
    {"multipart/form-data; boundary=b",
     "--b\r\nContent-Disposition: form-data; name=\"x\r\n\r\nv\r\n--b--", "unterminated"},
    {"multipart/form-data; boundary=b",
     "--b\r\nContent-Disposition: form-data; name=x y\r\n\r\nv\r\n--b--",
     "separated by ';'"},
    {"multipart/form-data; boundary=b", "--b\r\n" CD "--b\r\n" CD "\r\nv\r\n--b--",
     "runs into the next boundary"},
};

static void test_multipart_refused(void)
{
    for (size_t i = 0; i < sizeof mp_bad / sizeof mp_bad[0]; i++) {
        coil__http_args a = {0};
        CU_ASSERT_EQUAL(coil__http_args_add_urlencoded(&a, "keep=1", 6, NULL), 0);
        const char *why = NULL;
        int rc = coil__http_args_add_multipart(&a, mp_bad[i].type, mp_bad[i].body,
                                               strlen(mp_bad[i].body), &why);
        if (rc != COIL_EINVAL || !why || !strstr(why, mp_bad[i].why))
            fprintf(stderr, "\n    case %zu: rc %d, why \"%s\", wanted \"%s\"\n", i, rc,
                    why ? why : "(null)", mp_bad[i].why);
        CU_ASSERT_EQUAL(rc, COIL_EINVAL);
        CU_ASSERT(why && strstr(why, mp_bad[i].why));
        CU_ASSERT_EQUAL(a.count, 1); /* unchanged */
        coil__http_args_free(&a);
    }
}

/* Part heads are bounded (8 KiB), and so is the number of parts. */
static void test_multipart_limits(void)
{
    size_t big = 9000;
    char *body = malloc(big + 200);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    size_t n = (size_t)sprintf(body, "--b\r\n" CD "X-Long: ");
    memset(body + n, 'l', big);
    n += big;
    n += (size_t)sprintf(body + n, "\r\n\r\nv\r\n--b--");
    coil__http_args a = {0};
    const char *why = NULL;
    CU_ASSERT_EQUAL(coil__http_args_add_multipart(&a, "multipart/form-data; boundary=b",
                                                  body, n, &why),
                    COIL_EINVAL);
    COIL_TEST_ASSERT_HAS(why, "longer than 8 KiB");
    free(body);

    static const char part[] = "--b\r\n" CD "\r\nv\r\n";
    size_t parts = COIL__HTTP_MAX_ARGS + 1;
    body = malloc(parts * (sizeof part - 1) + 8);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    n = 0;
    for (size_t i = 0; i < parts; i++) {
        memcpy(body + n, part, sizeof part - 1);
        n += sizeof part - 1;
    }
    memcpy(body + n, "--b--", 5);
    n += 5;
    CU_ASSERT_EQUAL(coil__http_args_add_multipart(&a, "multipart/form-data; boundary=b",
                                                  body, n, &why),
                    COIL_EMSGSIZE);
    COIL_TEST_ASSERT_HAS(why, "more than 1000");
    CU_ASSERT_EQUAL(a.count, 0);
    /* One part fewer fits. */
    size_t off = sizeof part - 1;
    CU_ASSERT_EQUAL(coil__http_args_add_multipart(&a, "multipart/form-data; boundary=b",
                                                  body + off, n - off, &why),
                    0);
    CU_ASSERT_EQUAL(a.count, COIL__HTTP_MAX_ARGS);
    coil__http_args_free(&a);
    free(body);
}

/* ======================================================================= */
/* ---- the tree, without a server ------------------------------------------ */

static int destroyed;
static void count_destroy(coil_http_resource *res)
{
    (void)res;
    destroyed++;
}
static const coil_http_resource_ops counted_ops = {.destroy = count_destroy};

static void test_tree(void)
{
    destroyed = 0;
    int tag = 0;
    coil_http_resource *root = coil_http_resource_new(&counted_ops, &tag);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    CU_ASSERT_PTR_EQUAL(coil_http_resource_user(root), &tag);
    coil_http_resource *a = coil_http_resource_new(&counted_ops, NULL);
    CU_ASSERT_EQUAL(coil_http_resource_put_child(root, "a", a), 0);
    CU_ASSERT_PTR_EQUAL(coil_http_resource_get_child(root, "a"), a);
    CU_ASSERT_PTR_NULL(coil_http_resource_get_child(root, "b"));
    CU_ASSERT_PTR_NULL(coil_http_resource_get_child(root, ""));

    /* Replacing drops the old child. */
    coil_http_resource *a2 = coil_http_resource_new(&counted_ops, NULL);
    CU_ASSERT_EQUAL(coil_http_resource_put_child(root, "a", a2), 0);
    CU_ASSERT_EQUAL(destroyed, 1);
    CU_ASSERT_PTR_EQUAL(coil_http_resource_get_child(root, "a"), a2);

    /* Refused: a '/' in the segment, the resource itself. The reference
     * passed in is dropped either way. */
    CU_ASSERT_EQUAL(coil_http_resource_put_child(
                        root, "x/y", coil_http_resource_new(&counted_ops, NULL)),
                    COIL_EINVAL);
    CU_ASSERT_EQUAL(destroyed, 2);
    CU_ASSERT_EQUAL(
        coil_http_resource_put_child(root, "self", coil_http_resource_ref(root)),
        COIL_EINVAL);
    CU_ASSERT_EQUAL(destroyed, 2);

    /* Many children, in any order, each found. */
    char seg[16];
    for (int i = 0; i < 200; i++) {
        snprintf(seg, sizeof seg, "%d", (i * 7919) % 200);
        CU_ASSERT_EQUAL(coil_http_resource_put_child(
                            root, seg, coil_http_resource_new(&counted_ops, NULL)),
                        0);
    }
    CU_ASSERT_EQUAL(coil_http_resource_put_child(root, "", coil_http_resource_ref(a2)),
                    0);
    for (int i = 0; i < 200; i++) {
        snprintf(seg, sizeof seg, "%d", i);
        CU_ASSERT_PTR_NOT_NULL(coil_http_resource_get_child(root, seg));
    }
    CU_ASSERT_PTR_EQUAL(coil_http_resource_get_child(root, ""), a2);

    /* A child outlives its parent while referenced elsewhere. */
    coil_http_resource_ref(a2);
    coil_http_resource_unref(root);
    CU_ASSERT_EQUAL(destroyed, 2 + 200 + 1);
    coil_http_resource_unref(a2);
    CU_ASSERT_EQUAL(destroyed, 2 + 200 + 2);

    /* Options the server asks for. */
    coil_http_resource *r = coil_http_resource_new(NULL, NULL);
    CU_ASSERT_EQUAL(coil__http_resource_max_body(r), 0);
    CU_ASSERT_EQUAL(coil__http_resource_streams_body(r), 0);
    coil_http_resource_set_max_body(r, 12345);
    coil_http_resource_set_stream_body(r, 7);
    CU_ASSERT_EQUAL(coil__http_resource_max_body(r), 12345);
    CU_ASSERT_EQUAL(coil__http_resource_streams_body(r), 1);
    coil_http_resource_unref(r);
    coil_http_resource_unref(NULL);
}

static void test_builtins(void)
{
    coil_http_resource *r = coil_http_no_resource_new();
    CU_ASSERT_PTR_NOT_NULL(r);
    coil_http_resource_unref(r);
    r = coil_http_error_resource_new(503, "Busy", "Come back <later>");
    CU_ASSERT_PTR_NOT_NULL(r);
    coil_http_resource_unref(r);
    CU_ASSERT_PTR_NULL(coil_http_error_resource_new(42, NULL, NULL));
    r = coil_http_redirect_resource_new("/there", 0);
    CU_ASSERT_PTR_NOT_NULL(r);
    coil_http_resource_unref(r);
    CU_ASSERT_PTR_NULL(coil_http_redirect_resource_new("/x\r\nSet-Cookie: a=b", 302));
    CU_ASSERT_PTR_NULL(coil_http_redirect_resource_new("/x", 200));
    r = coil_http_data_resource_new("abc", 3, "text/plain");
    CU_ASSERT_PTR_NOT_NULL(r);
    coil_http_resource_unref(r);
    r = coil_http_data_resource_new(NULL, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL(r);
    coil_http_resource_unref(r);
}

/* ======================================================================= */

static int add_suites(void)
{
    static const coil_test_case forms[] = {
        COIL_TEST(test_urlencoded),
        COIL_TEST(test_urlencoded_refused),
        COIL_TEST(test_multipart),
        COIL_TEST(test_multipart_boundary_length),
        COIL_TEST(test_multipart_refused),
        COIL_TEST(test_multipart_limits),
        {NULL, NULL},
    };
    static const coil_test_case tree[] = {
        COIL_TEST(test_tree),
        COIL_TEST(test_builtins),
        {NULL, NULL},
    };
    if (coil_test_add_suite("forms", forms) != 0)
        return -1;
    return coil_test_add_suite("resource tree", tree);
}

int main(void)
{
    return coil_test_main(add_suites);
}
