/* coil — HTTP: resource (skeleton: every function answers "not supported" until written).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_private.h"

int coil_http_request_write_escaped(coil_http_request *req, const char *s)
{
    (void)req;
    (void)s;
    return COIL_ENOTSUP;
}

int coil_http_request_redirect(coil_http_request *req, const char *url, int status)
{
    (void)req;
    (void)url;
    (void)status;
    return COIL_ENOTSUP;
}

int coil_http_request_error(coil_http_request *req, int status, const char *detail)
{
    (void)req;
    (void)status;
    (void)detail;
    return COIL_ENOTSUP;
}

coil_http_resource *coil_http_resource_new(const coil_http_resource_ops *ops, void *user)
{
    (void)ops;
    (void)user;
    return NULL;
}

coil_http_resource *coil_http_resource_ref(coil_http_resource *res)
{
    (void)res;
    return NULL;
}

void coil_http_resource_unref(coil_http_resource *res)
{
    (void)res;
}

void *coil_http_resource_user(const coil_http_resource *res)
{
    (void)res;
    return NULL;
}

void coil_http_resource_set_leaf(coil_http_resource *res, int leaf)
{
    (void)res;
    (void)leaf;
}

int coil_http_resource_put_child(coil_http_resource *res, const char *segment,
                                 coil_http_resource *child)
{
    (void)res;
    (void)segment;
    (void)child;
    return COIL_ENOTSUP;
}

coil_http_resource *coil_http_resource_get_child(const coil_http_resource *res,
                                                 const char *segment)
{
    (void)res;
    (void)segment;
    return NULL;
}

void coil_http_resource_set_max_body(coil_http_resource *res, uint64_t max)
{
    (void)res;
    (void)max;
}

void coil_http_resource_set_stream_body(coil_http_resource *res, int stream)
{
    (void)res;
    (void)stream;
}

coil_http_resource *coil_http_no_resource_new(void)
{
    return NULL;
}

coil_http_resource *coil_http_error_resource_new(int status, const char *brief,
                                                 const char *detail)
{
    (void)status;
    (void)brief;
    (void)detail;
    return NULL;
}

coil_http_resource *coil_http_redirect_resource_new(const char *url, int status)
{
    (void)url;
    (void)status;
    return NULL;
}

coil_http_resource *coil_http_data_resource_new(const void *data, size_t len,
                                                const char *content_type)
{
    (void)data;
    (void)len;
    (void)content_type;
    return NULL;
}

coil_http_resource *coil__http_resource_locate(coil_http_resource *root,
                                               coil_http_request *req)
{
    (void)root;
    (void)req;
    return NULL;
}

int coil__http_resource_render(coil_http_resource *res, coil_http_request *req)
{
    (void)res;
    (void)req;
    return COIL_ENOTSUP;
}

uint64_t coil__http_resource_max_body(const coil_http_resource *res)
{
    (void)res;
    return 0;
}

int coil__http_resource_streams_body(const coil_http_resource *res)
{
    (void)res;
    return COIL_ENOTSUP;
}
