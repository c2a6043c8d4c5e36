/* coil — HTTP: client (skeleton: every function answers "not supported" until written).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_private.h"

int coil_http_body_write(coil_http_body_consumer *c, const void *data, size_t len)
{
    (void)c;
    (void)data;
    (void)len;
    return COIL_ENOTSUP;
}

int coil_http_body_done(coil_http_body_consumer *c, coil_failure *failure)
{
    (void)c;
    (void)failure;
    return COIL_ENOTSUP;
}

coil_http_body_producer *coil_http_body_from_bytes(const void *data, size_t len)
{
    (void)data;
    (void)len;
    return NULL;
}

coil_http_body_producer *coil_http_body_from_file(const char *path, coil_failure **err)
{
    (void)path;
    (void)err;
    return NULL;
}

int coil_http_agent_new(coil_reactor *r, const coil_http_agent_options *o,
                        coil_http_agent **out, coil_failure **err)
{
    (void)r;
    (void)o;
    (void)out;
    (void)err;
    return COIL_ENOTSUP;
}

void coil_http_agent_free(coil_http_agent *a)
{
    (void)a;
}

coil_deferred *coil_http_agent_request(coil_http_agent *a, const char *method,
                                       const char *url, const coil_http_headers *headers,
                                       coil_http_body_producer *body)
{
    (void)a;
    (void)method;
    (void)url;
    (void)headers;
    (void)body;
    return NULL;
}

int coil_http_response_status(const coil_http_response *resp)
{
    (void)resp;
    return COIL_ENOTSUP;
}

const char *coil_http_response_reason(const coil_http_response *resp)
{
    (void)resp;
    return NULL;
}

int coil_http_response_version(const coil_http_response *resp)
{
    (void)resp;
    return COIL_ENOTSUP;
}

const char *coil_http_response_header(const coil_http_response *resp, const char *name)
{
    (void)resp;
    (void)name;
    return NULL;
}

size_t coil_http_response_header_count(const coil_http_response *resp)
{
    (void)resp;
    return 0;
}

int coil_http_response_header_at(const coil_http_response *resp, size_t i,
                                 const char **name, const char **value)
{
    (void)resp;
    (void)i;
    (void)name;
    (void)value;
    return COIL_ENOTSUP;
}

int64_t coil_http_response_length(const coil_http_response *resp)
{
    (void)resp;
    return 0;
}

const char *coil_http_response_url(const coil_http_response *resp)
{
    (void)resp;
    return NULL;
}

void coil_http_response_free(void *resp)
{
    (void)resp;
}

int coil_http_response_deliver_body(coil_http_response *resp, coil_protocol *p)
{
    (void)resp;
    (void)p;
    return COIL_ENOTSUP;
}

coil_deferred *coil_http_response_read_body(coil_http_response *resp, uint64_t max)
{
    (void)resp;
    (void)max;
    return NULL;
}

coil_deferred *coil_http_get(coil_http_agent *a, const char *url)
{
    (void)a;
    (void)url;
    return NULL;
}

coil_deferred *coil_http_download(coil_http_agent *a, const char *url, const char *path)
{
    (void)a;
    (void)url;
    (void)path;
    return NULL;
}

void coil_http_agent_get_stats(const coil_http_agent *a, coil_http_agent_stats *out)
{
    (void)a;
    (void)out;
}
