/* Fuzz target: the HTTP/1.1 response parser (protocols/http/parse.c) as the
 * agent uses it, and the chunked decoder behind it.
 *
 * Input: one configuration byte, then the bytes a server sends.
 *   byte 0: bits 0-1 the limits (as fuzz_http_request), bit 2 the request
 *           was HEAD, bits 3-7 a salt for the split sizes
 * The head is parsed in one piece and as it would arrive in pieces; both
 * must agree on everything; views lie inside the buffer; an accepted head
 * has a status in 100..599, token names, clean values, and the framing the
 * RFC gives (none for HEAD, 1xx, 204 and 304; never Content-Length with
 * Transfer-Encoding). A chunked body is then decoded one-shot and split. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int parse(coil__http_parser *st, const char *b, size_t n,
                 const coil__http_limits *lim, int head, res *r)
{
    res_reset(r);
    r->rc = coil__http_parse_response(st, b, n, lim, head, &r->h, &r->why);
    CHECK(r->rc >= -1);
    if (r->rc < 0)
        CHECK(r->why && r->why[0]);
    return r->rc;
}

static void check_head(const res *r, const char *b, size_t len,
                       const coil__http_limits *lim, int head)
{
    const coil__http_head *h = &r->h;
    CHECK((size_t)r->rc == h->head_len && h->head_len <= len);
    size_t hl = h->head_len;
    CHECK(h->status >= 100 && h->status <= 599);
    CHECK(h->version == 10 || h->version == 11);
    INSIDE(h->reason, h->reason_len, b, hl);
    CHECK(coil__http_is_field_value(h->reason, h->reason_len));
    CHECK(h->method == NULL && h->target == NULL && h->host == NULL);
    if (lim->max_fields)
        CHECK(h->nfields <= lim->max_fields);
    int cl = 0, te = 0;
    for (size_t i = 0; i < h->nfields; i++) {
        const coil__http_field *f = &h->fields[i];
        INSIDE(f->name, f->name_len, b, hl);
        INSIDE(f->value, f->value_len, b, hl);
        CHECK(coil__http_is_token(f->name, f->name_len));
        CHECK(coil__http_is_field_value(f->value, f->value_len));
        cl += coil__http_eq(f->name, f->name_len, "content-length");
        te += coil__http_eq(f->name, f->name_len, "transfer-encoding");
    }
    CHECK(!(cl && te));
    if (head || h->status < 200 || h->status == 204 || h->status == 304)
        CHECK(h->body == COIL__HTTP_BODY_NONE);
    else if (te)
        CHECK(h->body == COIL__HTTP_BODY_CHUNKED);
    else if (cl)
        CHECK(h->body == COIL__HTTP_BODY_LENGTH);
    else
        CHECK(h->body == COIL__HTTP_BODY_CLOSE && !h->keep_alive);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t cfg = data[0];
    int head = (cfg >> 2) & 1;
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    coil__http_limits lim;
    limits(cfg, &lim);

    static res one, grown;
    const fuzz_parser fp = {parse, check_head, head};
    parse_both_ways(&fp, in, n, (uint8_t)(cfg >> 3), &lim, &one, &grown);

    if (one.rc > 0 && one.h.body == COIL__HTTP_BODY_CHUNKED) {
        size_t hl = one.h.head_len;
        (void)chunked_both_ways(in + hl, n - hl, in, n, 0);
    }
    return 0;
}
