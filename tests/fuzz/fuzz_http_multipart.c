/* Fuzz target: HTTP form bodies (protocols/http/forms.c).
 *
 * Input: byte 0 picks the parser (bit 0 set: urlencoded, the rest of the
 * input is the text; clear: multipart, the rest up to the first '\n' is the
 * Content-Type, after it the body).
 *
 * Checks: a refusal comes with a reason and leaves a list that already held
 * an argument as it was; an accepted body gives NUL-terminated names without
 * NUL inside, values NUL-terminated at their length, at most
 * COIL__HTTP_MAX_ARGS arguments. Then a round trip: the arguments written
 * back out (percent-encoded; or as a multipart body with the same boundary
 * and quoted names) must parse to the same arguments. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)              \
    do {                      \
        if (!(x))             \
            __builtin_trap(); \
    } while (0)

typedef struct out {
    char *p;
    size_t len, cap;
} out;

static void put(out *o, const void *d, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *p = realloc(o->p, cap);
        CHECK(p);
        o->p = p;
        o->cap = cap;
    }
    if (n)
        memcpy(o->p + o->len, d, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void puts_(out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_encoded(out *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[3] = {'%', hex[c >> 4], hex[c & 15]};
        put(o, e, 3);
    }
}

static void put_quoted(out *o, const char *s)
{
    put(o, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            put(o, "\\", 1);
        put(o, s, 1);
    }
    put(o, "\"", 1);
}

static void check_well_formed(const coil__http_args *a)
{
    CHECK(a->count <= COIL__HTTP_MAX_ARGS);
    for (size_t i = 0; i < a->count; i++) {
        const coil_http_arg *g = &a->items[i];
        CHECK(g->name && g->value);
        CHECK(g->value[g->len] == '\0');
        if (g->filename)
            (void)strlen(g->filename);
        if (g->content_type)
            (void)strlen(g->content_type);
        CHECK(coil__http_args_find(a, g->name) != NULL);
    }
}

static int same_arg(const coil_http_arg *x, const coil_http_arg *y, int files)
{
    if (strcmp(x->name, y->name) != 0 || x->len != y->len ||
        memcmp(x->value, y->value, x->len) != 0)
        return 0;
    if (!files)
        return 1;
    if (!x->filename != !y->filename || (x->filename && strcmp(x->filename, y->filename)))
        return 0;
    return !x->content_type == !y->content_type &&
           (!x->content_type || strcmp(x->content_type, y->content_type) == 0);
}

static void check_same(const coil__http_args *a, const coil__http_args *b, int files)
{
    CHECK(a->count == b->count);
    for (size_t i = 0; i < a->count; i++)
        CHECK(same_arg(&a->items[i], &b->items[i], files));
}

static void fuzz_urlencoded(const char *s, size_t n)
{
    coil__http_args a = {0};
    const char *why = NULL;
    CHECK(coil__http_args_add_urlencoded(&a, "k=1", 3, &why) == 0);
    int rc = coil__http_args_add_urlencoded(&a, s, n, &why);
    if (rc < 0) {
        CHECK(why && *why);
        CHECK(a.count == 1);
        coil__http_args_free(&a);
        return;
    }
    check_well_formed(&a);
    out o = {0};
    for (size_t i = 1; i < a.count; i++) {
        if (i > 1)
            put(&o, "&", 1);
        put_encoded(&o, a.items[i].name, strlen(a.items[i].name));
        put(&o, "=", 1);
        put_encoded(&o, a.items[i].value, a.items[i].len);
    }
    coil__http_args b = {0};
    CHECK(coil__http_args_add_urlencoded(&b, "k=1", 3, &why) == 0);
    CHECK(coil__http_args_add_urlencoded(&b, o.p ? o.p : "", o.len, &why) == 0);
    check_same(&a, &b, 0);
    coil__http_args_free(&b);
    coil__http_args_free(&a);
    free(o.p);
}

/* A boundary whose delimiter occurs in no value of `a`. */
static void pick_boundary(const coil__http_args *a, char *b, size_t size)
{
    for (unsigned k = 0;; k++) {
        char delim[96];
        snprintf(b, size, "coil-fuzz-%u", k);
        int n = snprintf(delim, sizeof delim, "\r\n--%s", b);
        size_t i = 1;
        for (; i < a->count; i++)
            if (memmem(a->items[i].value, a->items[i].len, delim, (size_t)n))
                break;
        if (i == a->count)
            return;
    }
}

static void fuzz_multipart(const char *s, size_t n)
{
    const char *nl = memchr(s, '\n', n);
    size_t tlen = nl ? (size_t)(nl - s) : n;
    char *type = malloc(tlen + 1);
    CHECK(type);
    memcpy(type, s, tlen);
    type[tlen] = '\0';
    const char *body = nl ? nl + 1 : s + n;
    size_t blen = nl ? n - tlen - 1 : 0;

    coil__http_args a = {0};
    const char *why = NULL;
    CHECK(coil__http_args_add_urlencoded(&a, "k=1", 3, &why) == 0);
    int rc = coil__http_args_add_multipart(&a, type, body, blen, &why);
    if (rc < 0) {
        CHECK(why && *why);
        CHECK(a.count == 1);
        coil__http_args_free(&a);
        free(type);
        return;
    }
    check_well_formed(&a);
    for (size_t i = 1; i < a.count; i++) /* values are slices of the body */
        CHECK(a.items[i].len <= blen);

    /* Write the parts back with a boundary of our own. */
    char b[40];
    pick_boundary(&a, b, sizeof b);
    out t = {0}, o = {0};
    puts_(&t, "multipart/form-data; boundary=");
    put_quoted(&t, b);
    for (size_t i = 1; i < a.count; i++) {
        const coil_http_arg *g = &a.items[i];
        puts_(&o, "--");
        puts_(&o, b);
        puts_(&o, "\r\nContent-Disposition: form-data; name=");
        put_quoted(&o, g->name);
        if (g->filename) {
            puts_(&o, "; filename=");
            put_quoted(&o, g->filename);
        }
        puts_(&o, "\r\n");
        if (g->content_type) {
            puts_(&o, "Content-Type: ");
            puts_(&o, g->content_type);
            puts_(&o, "\r\n");
        }
        puts_(&o, "\r\n");
        put(&o, g->value, g->len);
        puts_(&o, "\r\n");
    }
    puts_(&o, "--");
    puts_(&o, b);
    puts_(&o, "--\r\n");
    coil__http_args c = {0};
    CHECK(coil__http_args_add_urlencoded(&c, "k=1", 3, &why) == 0);
    rc = coil__http_args_add_multipart(&c, t.p, o.p, o.len, &why);
    if (rc != 0)
        fprintf(stderr, "round trip refused: %s\n", why);
    CHECK(rc == 0);
    check_same(&a, &c, 1);
    coil__http_args_free(&c);
    coil__http_args_free(&a);
    free(t.p);
    free(o.p);
    free(type);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 20)
        return 0;
    const char *s = (const char *)data + 1;
    if (data[0] & 1)
        fuzz_urlencoded(s, size - 1);
    else
        fuzz_multipart(s, size - 1);
    return 0;
}
