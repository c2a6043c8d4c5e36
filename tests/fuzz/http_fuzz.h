/* Shared pieces of the HTTP parser fuzz targets (fuzz_http_request,
 * fuzz_http_response): exact-size copies, head comparison (result, reason
 * and every view as an offset), a head parsed whole and in pieces, and a
 * chunked decode one-shot and in pieces. Header only. */
#ifndef COIL_HTTP_FUZZ_H
#define COIL_HTTP_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_parse.h"

#define CHECK(x)              \
    do {                      \
        if (!(x))             \
            __builtin_trap(); \
    } while (0)

#define NF 64

typedef struct res {
    int rc;
    const char *why;
    coil__http_head h;
    coil__http_field f[NF];
} res;

static inline char *dup_exact(const uint8_t *p, size_t n)
{
    char *b = malloc(n ? n : 1);
    CHECK(b);
    if (n)
        memcpy(b, p, n);
    else
        b[0] = '\0';
    return b;
}

/* Limits from the configuration byte's low bits. */
static inline void limits(uint8_t cfg, coil__http_limits *lim)
{
    memset(lim, 0, sizeof *lim);
    switch (cfg & 3) {
    case 1:
        lim->max_line = 64;
        lim->max_head = 256;
        lim->max_fields = 8;
        break;
    case 2:
        lim->max_line = 16;
        lim->max_head = 24;
        lim->max_fields = 1;
        break;
    case 3:
        lim->max_fields = 3;
        break;
    default:
        break;
    }
}

#define INSIDE(p, n, b, len)                            \
    CHECK((p) >= (b) && (size_t)((p) - (b)) <= (len) && \
          (n) <= (len) - (size_t)((p) - (b)))

/* Same result, reason and views (as offsets) for two parses. */
static inline void same(const res *a, const char *ba, const res *b, const char *bb)
{
    CHECK(a->rc == b->rc);
    if (a->rc < 0)
        CHECK(strcmp(a->why, b->why) == 0);
    if (a->rc <= 0)
        return;
    const coil__http_head *x = &a->h, *y = &b->h;
#define OFF(h, p, base) ((p) ? (ptrdiff_t)((p) - (base)) : (ptrdiff_t)-1)
    CHECK(OFF(x, x->method, ba) == OFF(y, y->method, bb) &&
          x->method_len == y->method_len);
    CHECK(OFF(x, x->target, ba) == OFF(y, y->target, bb) &&
          x->target_len == y->target_len);
    CHECK(OFF(x, x->host, ba) == OFF(y, y->host, bb) && x->host_len == y->host_len);
    CHECK(OFF(x, x->reason, ba) == OFF(y, y->reason, bb) &&
          x->reason_len == y->reason_len);
    CHECK(x->status == y->status);
    CHECK(x->version == y->version && x->body == y->body &&
          x->content_length == y->content_length && x->keep_alive == y->keep_alive &&
          x->expect_continue == y->expect_continue && x->nfields == y->nfields &&
          x->head_len == y->head_len);
    for (size_t i = 0; i < x->nfields; i++) {
        CHECK(x->fields[i].name - ba == y->fields[i].name - bb);
        CHECK(x->fields[i].name_len == y->fields[i].name_len);
        CHECK(x->fields[i].value - ba == y->fields[i].value - bb);
        CHECK(x->fields[i].value_len == y->fields[i].value_len);
    }
}

/* A target's parser and its rules for an accepted head; `arg` is the
 * target's own (the response target's HEAD flag). */
typedef struct fuzz_parser {
    int (*parse)(coil__http_parser *st, const char *b, size_t n,
                 const coil__http_limits *lim, int arg, res *r);
    void (*check)(const res *r, const char *b, size_t len, const coil__http_limits *lim,
                  int arg);
    int arg;
} fuzz_parser;

/* Point r's head at its own field slots before a parse. */
static inline void res_reset(res *r)
{
    r->h.fields = r->f;
    r->h.fields_cap = NF;
    r->why = NULL;
}

/* Parse in[0..n) in one piece into *one, then again as it would arrive in
 * pieces (sizes from the input's own bytes, xor `salt`), each piece in an
 * exact-size buffer, into *grown: both must agree, and an accepted head
 * obeys the target's rules. */
static inline void parse_both_ways(const fuzz_parser *fp, const uint8_t *in, size_t n,
                                   uint8_t salt, const coil__http_limits *lim, res *one,
                                   res *grown)
{
    coil__http_parser st = {0};
    char *whole = dup_exact(in, n);
    fp->parse(&st, whole, n, lim, fp->arg, one);
    if (one->rc > 0)
        fp->check(one, whole, n, lim, fp->arg);

    coil__http_parser gs = {0};
    size_t have = 0, i = 0;
    grown->rc = 0;
    while (have < n) {
        size_t k = (size_t)((in[i++ % n] ^ salt) % 17) + 1;
        have = have + k > n ? n : have + k;
        char *b = dup_exact(in, have);
        if (fp->parse(&gs, b, have, lim, fp->arg, grown) != 0) {
            if (grown->rc > 0)
                fp->check(grown, b, have, lim, fp->arg);
            same(one, whole, grown, b);
            free(b);
            break;
        }
        free(b);
    }
    if (n == 0 || grown->rc == 0)
        CHECK(one->rc == 0);
    free(whole);
}

/* Decode a chunked body from `in` in pieces; returns the last result and
 * fills the data seen and where the body ended. */
typedef struct chout {
    int rc;
    size_t data_len;
    uint64_t sum; /* a checksum of the data */
    size_t end;
} chout;

static inline void chunked(const uint8_t *in, size_t n, const uint8_t *sizes,
                           size_t nsizes, uint64_t max_chunks, chout *o)
{
    coil__http_chunked c = {0};
    c.max_chunks = max_chunks;
    c.max_trailer = 512;
    size_t pos = 0, si = 0;
    memset(o, 0, sizeof *o);
    o->rc = COIL__CHUNK_MORE;
    while (pos < n) {
        size_t k = nsizes ? (size_t)(sizes[si++ % nsizes] % 9) + 1 : n - pos;
        if (k > n - pos)
            k = n - pos;
        char *piece = dup_exact(in + pos, k);
        size_t off = 0;
        int rc;
        do {
            size_t used = 0, dl = 0;
            const char *d = NULL, *why = NULL;
            rc = coil__http_chunked_feed(&c, piece + off, k - off, &used, &d, &dl, &why);
            CHECK(used <= k - off);
            if (rc == COIL__CHUNK_DATA) {
                CHECK(dl > 0 && d >= piece + off && d + dl <= piece + k);
                for (size_t i = 0; i < dl; i++)
                    o->sum = o->sum * 31 + (unsigned char)d[i];
                o->data_len += dl;
            } else if (rc < 0) {
                CHECK(why && why[0]);
            }
            off += used;
        } while (rc == COIL__CHUNK_DATA && off < k);
        free(piece);
        pos += off;
        if (rc == COIL__CHUNK_DATA)
            rc = COIL__CHUNK_MORE;
        o->rc = rc;
        if (rc == COIL__CHUNK_END) {
            o->end = pos;
            return;
        }
        if (rc < 0)
            return;
        CHECK(off == k);
    }
}

/* Decode the chunked body in[0..n) one-shot and in pieces (sizes from
 * sizes[0..nsizes)): both must agree. Returns the one-shot result. */
static inline chout chunked_both_ways(const uint8_t *in, size_t n, const uint8_t *sizes,
                                      size_t nsizes, uint64_t max_chunks)
{
    chout a, b;
    chunked(in, n, NULL, 0, max_chunks, &a);
    chunked(in, n, sizes, nsizes, max_chunks, &b);
    CHECK(a.rc == b.rc && a.data_len == b.data_len && a.sum == b.sum && a.end == b.end);
    return a;
}

#endif
