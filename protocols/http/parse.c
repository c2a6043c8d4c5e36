/* coil — HTTP: parse (skeleton: every function answers "not supported" until written). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_private.h"

int coil__http_parse_request(coil__http_parser *st, const char *buf, size_t len,
                             const coil__http_limits *lim, coil__http_head *out,
                             const char **why)
{
    (void)st;
    (void)buf;
    (void)len;
    (void)lim;
    (void)out;
    (void)why;
    return COIL_ENOTSUP;
}

int coil__http_parse_response(coil__http_parser *st, const char *buf, size_t len,
                              const coil__http_limits *lim, int head_request,
                              coil__http_head *out, const char **why)
{
    (void)st;
    (void)buf;
    (void)len;
    (void)lim;
    (void)head_request;
    (void)out;
    (void)why;
    return COIL_ENOTSUP;
}

const coil__http_field *coil__http_head_field(const coil__http_head *h, const char *name)
{
    (void)h;
    (void)name;
    return NULL;
}

int coil__http_chunked_feed(coil__http_chunked *c, const char *in, size_t len,
                            size_t *consumed, const char **data, size_t *data_len,
                            const char **why)
{
    (void)c;
    (void)in;
    (void)len;
    (void)consumed;
    (void)data;
    (void)data_len;
    (void)why;
    return COIL_ENOTSUP;
}

int coil__http_is_token(const char *s, size_t len)
{
    (void)s;
    (void)len;
    return COIL_ENOTSUP;
}

int coil__http_is_field_value(const char *s, size_t len)
{
    (void)s;
    (void)len;
    return COIL_ENOTSUP;
}

int coil__http_eq(const char *s, size_t len, const char *lit)
{
    (void)s;
    (void)len;
    (void)lit;
    return COIL_ENOTSUP;
}
