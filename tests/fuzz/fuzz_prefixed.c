/* Fuzz target: the length-prefixed receivers over the test transport.
 *
 * Input: byte 0 flags (bit 0 act on strings, else differential mode; bit 1
 * default length_limit_exceeded, which closes; bit 2 a 4-byte prefix, else
 * 2; bit 7 end with EOF), byte 1 max_length (255: the default), byte 2 salt
 * for the chunk sizes, then the stream, fed in chunks whose sizes come from
 * its own bytes.
 *
 * Differential mode: the same stream fed in one piece to a second receiver
 * must give the same strings and the same over-limit report. Action mode:
 * a string's first byte makes the callback close, abort, half-close, send,
 * pause or resume the transport, or feed more data re-entrantly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <coil/memory.h>
#include <coil/prefixed.h>
#include <coil/reactor.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)              \
    do {                      \
        if (!(x))             \
            __builtin_trap(); \
    } while (0)

typedef struct fz {
    coil_prefixed_receiver pr; /* first */
    int act;
    int over_seen;
    char *log;
    size_t len, cap;
    int *destroyed;
} fz;

static void log_event(fz *f, char tag, const void *d, size_t n)
{
    size_t need = f->len + 1 + sizeof n + n;
    if (need > f->cap) {
        size_t cap = f->cap ? f->cap : 256;
        while (cap < need)
            cap *= 2;
        char *p = realloc(f->log, cap);
        CHECK(p);
        f->log = p;
        f->cap = cap;
    }
    f->log[f->len++] = tag;
    memcpy(f->log + f->len, &n, sizeof n);
    f->len += sizeof n;
    if (n)
        memcpy(f->log + f->len, d, n);
    f->len += n;
}

static void on_string(coil_prefixed_receiver *pr, const void *data, size_t len)
{
    fz *f = (fz *)pr;
    coil_transport *t = pr->protocol.transport;
    const unsigned char *s = data;
    CHECK(!f->over_seen); /* nothing after the limit was passed */
    CHECK(len <= pr->max_length);
    log_event(f, 'S', data, len);
    if (!f->act || len == 0 || !t)
        return;
    switch (s[0]) {
    case 'C':
        coil_transport_lose_connection(t);
        break;
    case 'A':
        coil_transport_abort_connection(t);
        break;
    case 'H':
        coil_transport_lose_write_connection(t);
        break;
    case 'S':
        coil_prefixed_send(pr, s + 1, len - 1);
        break;
    case 'P':
        coil_transport_pause_reading(t);
        break;
    case 'U':
        coil_transport_resume_reading(t);
        break;
    case 'F': {
        unsigned char first = s[len - 1];
        if (len > 1)
            coil_memory_transport_feed(t, s + 1, len - 1);
        CHECK(s[len - 1] == first); /* still readable, unchanged */
        break;
    }
    case 'M':
        pr->max_length = len > 1 ? s[1] : 0;
        break;
    default:
        break;
    }
}

static void on_over(coil_prefixed_receiver *pr, uint64_t length)
{
    fz *f = (fz *)pr;
    CHECK(!f->over_seen);
    CHECK(length > pr->max_length);
    f->over_seen = 1;
    log_event(f, 'X', &length, sizeof length);
}

static void on_destroy(coil_prefixed_receiver *pr)
{
    fz *f = (fz *)pr;
    (*f->destroyed)++;
    free(f->log);
    free(f);
}

static const coil_prefixed_ops fz_ops = {
    .string_received = on_string,
    .length_limit_exceeded = on_over,
    .destroy = on_destroy,
};

static const coil_prefixed_ops fz_default_ops = {
    .string_received = on_string,
    .destroy = on_destroy,
};

static fz *open_one(coil_reactor *r, uint8_t flags, uint8_t max, int act, int *destroyed,
                    coil_transport **t)
{
    fz *f = calloc(1, sizeof *f);
    CHECK(f);
    CHECK(coil_prefixed_receiver_init(&f->pr, flags & 4 ? 4 : 2,
                                      act && (flags & 2) ? &fz_default_ops : &fz_ops) ==
          0);
    f->act = act;
    f->destroyed = destroyed;
    if (max != 255)
        f->pr.max_length = max;
    *t = coil_memory_transport_new(r, &f->pr.protocol);
    CHECK(*t);
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint8_t flags = data[0], max = data[1], salt = data[2];
    const uint8_t *in = data + 3;
    size_t n = size - 3;
    int act = flags & 1;

    coil_clock *clk = coil_clock_new_fake();
    CHECK(clk);
    coil_reactor_options o = {0};
    o.clock = clk;
    coil_reactor *r = NULL;
    CHECK(coil_reactor_new(&r, &o) == 0);

    int destroyed_a = 0, destroyed_b = 0;
    coil_transport *ta, *tb = NULL;
    fz *a = open_one(r, flags, max, act, &destroyed_a, &ta);
    for (size_t pos = 0; pos < n && !destroyed_a;) {
        size_t k = (size_t)((in[pos] ^ salt) % 19) + 1;
        if (k > n - pos)
            k = n - pos;
        if (coil_memory_transport_feed(ta, in + pos, k) != 0)
            break;
        pos += k;
        if (act && !destroyed_a && (in[pos - 1] & 1))
            coil_transport_resume_reading(ta);
    }
    if (!act) {
        fz *b = open_one(r, flags, max, 0, &destroyed_b, &tb);
        if (n)
            CHECK(coil_memory_transport_feed(tb, in, n) == 0);
        CHECK(a->len == b->len);
        CHECK(a->len == 0 || memcmp(a->log, b->log, a->len) == 0);
    }
    if ((flags & 0x80) && !destroyed_a)
        coil_memory_transport_feed_eof(ta);
    coil_memory_transport_free(ta);
    if (tb)
        coil_memory_transport_free(tb);
    coil_reactor_advance(r, 0);
    CHECK(destroyed_a == 1);
    CHECK(!tb || destroyed_b == 1);
    coil_reactor_free(r);
    coil_clock_free(clk);
    return 0;
}
