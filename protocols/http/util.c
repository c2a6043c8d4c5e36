/* coil — HTTP: util (skeleton: every function answers "not supported" until written). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_private.h"

const char *coil_http_status_text(int status)
{
    (void)status;
    return NULL;
}

coil_http_headers *coil_http_headers_new(void)
{
    return NULL;
}

void coil_http_headers_free(coil_http_headers *h)
{
    (void)h;
}

int coil_http_headers_add(coil_http_headers *h, const char *name, const char *value)
{
    (void)h;
    (void)name;
    (void)value;
    return COIL_ENOTSUP;
}

int coil_http_headers_set(coil_http_headers *h, const char *name, const char *value)
{
    (void)h;
    (void)name;
    (void)value;
    return COIL_ENOTSUP;
}

size_t coil_http_headers_remove(coil_http_headers *h, const char *name)
{
    (void)h;
    (void)name;
    return 0;
}

const char *coil_http_headers_get(const coil_http_headers *h, const char *name)
{
    (void)h;
    (void)name;
    return NULL;
}

size_t coil_http_headers_count(const coil_http_headers *h)
{
    (void)h;
    return 0;
}

int coil_http_headers_at(const coil_http_headers *h, size_t i, const char **name,
                         const char **value)
{
    (void)h;
    (void)i;
    (void)name;
    (void)value;
    return COIL_ENOTSUP;
}

int coil_http_url_parse(const char *text, coil_http_url **out, coil_failure **err)
{
    (void)text;
    (void)out;
    (void)err;
    return COIL_ENOTSUP;
}

void coil_http_url_free(coil_http_url *u)
{
    (void)u;
}

int coil_http_url_resolve(const coil_http_url *base, const char *ref, coil_http_url **out,
                          coil_failure **err)
{
    (void)base;
    (void)ref;
    (void)out;
    (void)err;
    return COIL_ENOTSUP;
}

ssize_t coil_http_unquote(const char *in, size_t len, char *out, int plus_is_space)
{
    (void)in;
    (void)len;
    (void)out;
    (void)plus_is_space;
    return -1;
}

char *coil_http_html_escape(const char *s)
{
    (void)s;
    return NULL;
}

size_t coil_http_date_format(time_t t, char *buf, size_t size)
{
    (void)t;
    (void)buf;
    (void)size;
    return 0;
}

int coil_http_date_parse(const char *s, time_t *out)
{
    (void)s;
    (void)out;
    return COIL_ENOTSUP;
}

void coil_http_bytes_free(void *bytes)
{
    (void)bytes;
}
