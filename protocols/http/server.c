/* coil — HTTP: server (skeleton: every function answers "not supported" until written).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_private.h"

const char *coil_http_request_method(const coil_http_request *req)
{
    (void)req;
    return NULL;
}

const char *coil_http_request_uri(const coil_http_request *req)
{
    (void)req;
    return NULL;
}

const char *coil_http_request_path(const coil_http_request *req)
{
    (void)req;
    return NULL;
}

const char *coil_http_request_query(const coil_http_request *req)
{
    (void)req;
    return NULL;
}

int coil_http_request_version(const coil_http_request *req)
{
    (void)req;
    return COIL_ENOTSUP;
}

const char *coil_http_request_header(const coil_http_request *req, const char *name)
{
    (void)req;
    (void)name;
    return NULL;
}

size_t coil_http_request_header_count(const coil_http_request *req)
{
    (void)req;
    return 0;
}

int coil_http_request_header_at(const coil_http_request *req, size_t i, const char **name,
                                const char **value)
{
    (void)req;
    (void)i;
    (void)name;
    (void)value;
    return COIL_ENOTSUP;
}

size_t coil_http_request_postpath(const coil_http_request *req,
                                  const char *const **segments)
{
    (void)req;
    (void)segments;
    return 0;
}

size_t coil_http_request_prepath(const coil_http_request *req,
                                 const char *const **segments)
{
    (void)req;
    (void)segments;
    return 0;
}

const char *coil_http_request_arg(const coil_http_request *req, const char *name)
{
    (void)req;
    (void)name;
    return NULL;
}

size_t coil_http_request_arg_count(const coil_http_request *req)
{
    (void)req;
    return 0;
}

const coil_http_arg *coil_http_request_arg_at(const coil_http_request *req, size_t i)
{
    (void)req;
    (void)i;
    return NULL;
}

const coil_http_arg *coil_http_request_arg_find(const coil_http_request *req,
                                                const char *name)
{
    (void)req;
    (void)name;
    return NULL;
}

const void *coil_http_request_body(const coil_http_request *req, size_t *len)
{
    (void)req;
    (void)len;
    return NULL;
}

int coil_http_request_peer(const coil_http_request *req, coil_address *out)
{
    (void)req;
    (void)out;
    return COIL_ENOTSUP;
}

int coil_http_request_host(const coil_http_request *req, coil_address *out)
{
    (void)req;
    (void)out;
    return COIL_ENOTSUP;
}

int coil_http_request_is_secure(const coil_http_request *req)
{
    (void)req;
    return COIL_ENOTSUP;
}

int coil_http_request_transport_info(const coil_http_request *req,
                                     coil_transport_info *out)
{
    (void)req;
    (void)out;
    return COIL_ENOTSUP;
}

coil_transport *coil_http_request_transport(const coil_http_request *req)
{
    (void)req;
    return NULL;
}

coil_reactor *coil_http_request_reactor(const coil_http_request *req)
{
    (void)req;
    return NULL;
}

coil_http_site *coil_http_request_site(const coil_http_request *req)
{
    (void)req;
    return NULL;
}

int coil_http_request_read_body(coil_http_request *req, const coil_http_body_handler *h,
                                void *ud)
{
    (void)req;
    (void)h;
    (void)ud;
    return COIL_ENOTSUP;
}

int coil_http_request_pause_body(coil_http_request *req)
{
    (void)req;
    return COIL_ENOTSUP;
}

int coil_http_request_resume_body(coil_http_request *req)
{
    (void)req;
    return COIL_ENOTSUP;
}

int coil_http_request_set_status(coil_http_request *req, int status, const char *reason)
{
    (void)req;
    (void)status;
    (void)reason;
    return COIL_ENOTSUP;
}

int coil_http_request_status(const coil_http_request *req)
{
    (void)req;
    return COIL_ENOTSUP;
}

int coil_http_request_set_header(coil_http_request *req, const char *name,
                                 const char *value)
{
    (void)req;
    (void)name;
    (void)value;
    return COIL_ENOTSUP;
}

int coil_http_request_add_header(coil_http_request *req, const char *name,
                                 const char *value)
{
    (void)req;
    (void)name;
    (void)value;
    return COIL_ENOTSUP;
}

const char *coil_http_request_response_header(const coil_http_request *req,
                                              const char *name)
{
    (void)req;
    (void)name;
    return NULL;
}

int coil_http_request_set_length(coil_http_request *req, uint64_t length)
{
    (void)req;
    (void)length;
    return COIL_ENOTSUP;
}

int coil_http_request_write(coil_http_request *req, const void *data, size_t len)
{
    (void)req;
    (void)data;
    (void)len;
    return COIL_ENOTSUP;
}

int coil_http_request_writef(coil_http_request *req, const char *fmt, ...)
{
    (void)req;
    (void)fmt;
    return COIL_ENOTSUP;
}

int coil_http_request_finish(coil_http_request *req)
{
    (void)req;
    return COIL_ENOTSUP;
}

int coil_http_request_finished(const coil_http_request *req)
{
    (void)req;
    return COIL_ENOTSUP;
}

int coil_http_request_disconnected(const coil_http_request *req)
{
    (void)req;
    return COIL_ENOTSUP;
}

int coil_http_request_register_producer(coil_http_request *req, coil_producer *p,
                                        int streaming)
{
    (void)req;
    (void)p;
    (void)streaming;
    return COIL_ENOTSUP;
}

int coil_http_request_unregister_producer(coil_http_request *req)
{
    (void)req;
    return COIL_ENOTSUP;
}

uint64_t coil_http_request_sent(const coil_http_request *req)
{
    (void)req;
    return 0;
}

coil_http_request *coil_http_request_ref(coil_http_request *req)
{
    (void)req;
    return NULL;
}

void coil_http_request_unref(coil_http_request *req)
{
    (void)req;
}

coil_deferred *coil_http_request_notify_finish(coil_http_request *req)
{
    (void)req;
    return NULL;
}

int coil_http_request_wait(coil_http_request *req, coil_deferred *d)
{
    (void)req;
    (void)d;
    return COIL_ENOTSUP;
}

size_t coil_http_request_log_line(const coil_http_request *req, char *buf, size_t size)
{
    (void)req;
    (void)buf;
    (void)size;
    return 0;
}

int coil_http_site_new(coil_reactor *r, coil_http_resource *root,
                       const coil_http_server_options *o, coil_http_site **out,
                       coil_failure **err)
{
    (void)r;
    (void)root;
    (void)o;
    (void)out;
    (void)err;
    return COIL_ENOTSUP;
}

void coil_http_site_free(coil_http_site *site)
{
    (void)site;
}

coil_http_resource *coil_http_site_root(const coil_http_site *site)
{
    (void)site;
    return NULL;
}

coil_factory *coil_http_site_factory(coil_http_site *site)
{
    (void)site;
    return NULL;
}

coil_protocol *coil_http_site_protocol(coil_http_site *site, const coil_address *peer)
{
    (void)site;
    (void)peer;
    return NULL;
}

void coil_http_site_get_stats(const coil_http_site *site, coil_http_site_stats *out)
{
    (void)site;
    (void)out;
}

const char *coil__http_request_next_segment(const coil_http_request *req)
{
    (void)req;
    return NULL;
}

void coil__http_request_advance(coil_http_request *req)
{
    (void)req;
}

void coil__http_request_count_sent(coil_http_request *req, uint64_t n)
{
    (void)req;
    (void)n;
}
