/* Fuzz target: the HTTP/1.1 request parser (protocols/http/parse.c) and
 * the body framing and chunked decoder behind it.
 *
 * Input: one configuration byte, then the bytes a client sends.
 *   byte 0: bits 0-1 the limits (default, small, tiny, max_fields 3),
 *           bits 2-7 a salt for the split sizes
 * The head is parsed in one piece and again as it would arrive in pieces
 * (sizes from the input's own bytes), each piece in an exact-size buffer.
 * Both must agree on everything (result, reason, every view); views must lie
 * inside the buffer, and an accepted head must obey the rules (a token
 * method, a target without controls, token names, values without CR/LF/
 * NUL, no Content-Length with Transfer-Encoding, Host in 1.1). After the
 * head, a Content-Length body is taken and a chunked one decoded, one-shot
 * and split; both decodings must agree on the data and where it ended. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int parse(coil__http_parser *st, const char *b, size_t n,
                 const coil__http_limits *lim, int arg, res *r)
{
    (void)arg;
    res_reset(r);
    r->rc = coil__http_parse_request(st, b, n, lim, &r->h, &r->why);
    if (r->rc < 0)
        CHECK(r->why && r->why[0]);
    return r->rc;
}

static int is_token(const char *s, size_t n)
{
    return coil__http_is_token(s, n);
}

/* An accepted head obeys the rules; its views lie inside b[0..len). */
static void check_head(const res *r, const char *b, size_t len,
                       const coil__http_limits *lim, int arg)
{
    (void)arg;
    const coil__http_head *h = &r->h;
    CHECK((size_t)r->rc == h->head_len && h->head_len <= len);
    size_t hl = h->head_len;
    INSIDE(h->method, h->method_len, b, hl);
    INSIDE(h->target, h->target_len, b, hl);
    CHECK(is_token(h->method, h->method_len));
    CHECK(h->target_len > 0);
    for (size_t i = 0; i < h->target_len; i++)
        CHECK((unsigned char)h->target[i] > 0x20 && (unsigned char)h->target[i] < 0x7f);
    CHECK(h->version == 10 || h->version == 11);
    CHECK(h->nfields <= NF);
    if (lim->max_fields)
        CHECK(h->nfields <= lim->max_fields);
    int cl = 0, te = 0;
    for (size_t i = 0; i < h->nfields; i++) {
        const coil__http_field *f = &h->fields[i];
        INSIDE(f->name, f->name_len, b, hl);
        INSIDE(f->value, f->value_len, b, hl);
        CHECK(is_token(f->name, f->name_len));
        CHECK(coil__http_is_field_value(f->value, f->value_len));
        if (f->value_len)
            CHECK(f->value[0] != ' ' && f->value[0] != '\t' &&
                  f->value[f->value_len - 1] != ' ' &&
                  f->value[f->value_len - 1] != '\t');
        cl += coil__http_eq(f->name, f->name_len, "content-length");
        te += coil__http_eq(f->name, f->name_len, "transfer-encoding");
    }
    CHECK(!(cl && te));
    if (h->body == COIL__HTTP_BODY_CHUNKED)
        CHECK(te && h->version == 11);
    if (h->body == COIL__HTTP_BODY_LENGTH)
        CHECK(cl && h->content_length <= (UINT64_C(1) << 62));
    CHECK(h->body != COIL__HTTP_BODY_CLOSE);
    if (h->version == 11) {
        CHECK(h->host != NULL);
        INSIDE(h->host, h->host_len, b, hl);
    }
    CHECK(h->keep_alive == 0 || h->keep_alive == 1);
    CHECK(!h->expect_continue || h->version == 11);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t cfg = data[0];
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    coil__http_limits lim;
    limits(cfg, &lim);

    /* whole, and the same bytes arriving in pieces */
    static res one, grown;
    static const fuzz_parser fp = {parse, check_head, 0};
    parse_both_ways(&fp, in, n, (uint8_t)(cfg >> 2), &lim, &one, &grown);

    /* the body */
    if (one.rc > 0) {
        size_t hl = one.h.head_len;
        const uint8_t *rest = in + hl;
        size_t rn = n - hl;
        if (one.h.body == COIL__HTTP_BODY_CHUNKED) {
            chout a = chunked_both_ways(rest, rn, in, n, (cfg & 4) ? 3 : 0);
            if (a.rc == COIL__CHUNK_END)
                CHECK(a.end <= rn);
        } else if (one.h.body == COIL__HTTP_BODY_LENGTH) {
            CHECK(one.h.content_length <= (UINT64_C(1) << 62));
        }
    }
    return 0;
}
