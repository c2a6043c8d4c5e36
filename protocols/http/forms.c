/* coil — HTTP: forms (skeleton: every function answers "not supported" until written). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_private.h"

int coil__http_args_add_urlencoded(coil__http_args *a, const char *s, size_t len,
                                   const char **why)
{
    (void)a;
    (void)s;
    (void)len;
    (void)why;
    return COIL_ENOTSUP;
}

int coil__http_args_add_multipart(coil__http_args *a, const char *content_type,
                                  const char *body, size_t len, const char **why)
{
    (void)a;
    (void)content_type;
    (void)body;
    (void)len;
    (void)why;
    return COIL_ENOTSUP;
}

const coil_http_arg *coil__http_args_find(const coil__http_args *a, const char *name)
{
    (void)a;
    (void)name;
    return NULL;
}

void coil__http_args_free(coil__http_args *a)
{
    (void)a;
}
