/* Fuzz target: the line receiver over the test transport.
 *
 * Input: two configuration bytes, an optional delimiter, then the stream.
 *   byte 0: bit 0 accept_lf, bit 1 custom delimiter (length bits 2-4, + 1),
 *           bit 5 act on lines (else: differential mode), bit 6 start in
 *           raw mode, bit 7 end with EOF
 *   byte 1: max_length (255: the default)
 *   byte 2: salt for the chunk sizes
 * The stream is fed in chunks whose sizes come from the stream's own bytes.
 *
 * Differential mode: the same stream is fed in one piece to a second
 * receiver; both must hear the same lines and over-long reports, whatever
 * the split. Action mode: a line's first byte makes the callback switch
 * modes, pause, resume, clear, close, abort, half-close, change settings or
 * feed more data re-entrantly; invariants are checked on every line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <coil/line.h>
#include <coil/memory.h>
#include <coil/reactor.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)              \
    do {                      \
        if (!(x))             \
            __builtin_trap(); \
    } while (0)

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const void *d, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        CHECK(p);
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
}

typedef struct fz {
    coil_line_receiver lr; /* first */
    int act;
    sbuf log;
    int *destroyed;
    size_t raw_take;
} fz;

static void log_event(fz *f, char tag, const void *d, size_t n)
{
    char head[1 + sizeof n];
    head[0] = tag;
    memcpy(head + 1, &n, sizeof n);
    sb_add(&f->log, head, sizeof head);
    sb_add(&f->log, d, n);
}

static void check_line(coil_line_receiver *lr, const char *line, size_t len)
{
    CHECK(line[len] == '\0');
    CHECK(len <= lr->max_length);
    if (lr->accept_lf)
        CHECK(!memchr(line, '\n', len));
    if (lr->delimiter_len >= 1 && lr->delimiter_len <= COIL_LINE_MAX_DELIMITER)
        CHECK(!memmem(line, len, lr->delimiter, lr->delimiter_len));
}

static void on_line(coil_line_receiver *lr, const char *line, size_t len)
{
    fz *f = (fz *)lr;
    coil_transport *t = lr->protocol.transport;
    check_line(lr, line, len);
    log_event(f, 'L', line, len);
    if (!f->act || len == 0 || !t)
        return;
    switch (line[0]) {
    case 'R':
        f->raw_take = len > 1 ? (unsigned char)line[1] % 16 : 0;
        coil_line_set_raw_mode(lr);
        break;
    case 'P':
        coil_line_pause(lr);
        break;
    case 'U':
        coil_line_resume(lr);
        break;
    case 'C':
        coil_transport_lose_connection(t);
        break;
    case 'A':
        coil_transport_abort_connection(t);
        break;
    case 'H':
        coil_transport_lose_write_connection(t);
        break;
    case 'X': {
        size_t n;
        free(coil_line_clear_buffer(lr, &n));
        break;
    }
    case 'S':
        coil_line_sendf(lr, "%.*s", (int)len, line);
        coil_line_send(lr, line + 1, len - 1);
        break;
    case 'D':
        coil_line_set_delimiter(lr, line + 1, len - 1);
        break;
    case 'N':
        lr->accept_lf = !lr->accept_lf;
        break;
    case 'M':
        lr->max_length = len > 1 ? (unsigned char)line[1] : 0;
        break;
    case 'E':
        coil_line_set_line_mode(lr, line + 1, len - 1);
        break;
    case 'F':
        /* Re-entrant data while `line` is still in use. */
        if (len > 1)
            coil_memory_transport_feed(t, line + 1, len - 1);
        check_line(lr, line, len);
        break;
    default:
        break;
    }
}

static void on_raw(coil_line_receiver *lr, const void *data, size_t len)
{
    fz *f = (fz *)lr;
    const unsigned char *d = data;
    size_t take = f->raw_take && f->raw_take < len ? f->raw_take : len;
    log_event(f, 'R', data, take);
    if (f->raw_take) {
        f->raw_take -= take;
        if (f->raw_take == 0)
            coil_line_set_line_mode(lr, d + take, len - take);
        return;
    }
    if (d[0] == 'L')
        coil_line_set_line_mode(lr, d + 1, len - 1);
    else if (d[0] == 'P')
        coil_line_pause(lr);
    else if (d[0] == 'C' && lr->protocol.transport)
        coil_transport_lose_connection(lr->protocol.transport);
}

static void on_long(coil_line_receiver *lr, const char *partial, size_t len)
{
    fz *f = (fz *)lr;
    log_event(f, 'X', partial, len);
    if (f->act && len > 0 && partial[0] == 'C' && lr->protocol.transport)
        coil_transport_lose_connection(lr->protocol.transport);
}

static void on_destroy(coil_line_receiver *lr)
{
    fz *f = (fz *)lr;
    (*f->destroyed)++;
    free(f->log.p);
    free(f);
}

static const coil_line_ops fz_ops = {
    .line_received = on_line,
    .raw_data_received = on_raw,
    .line_length_exceeded = on_long,
    .destroy = on_destroy,
};

/* The default length handler (closes) for half of the action runs. */
static const coil_line_ops fz_default_ops = {
    .line_received = on_line,
    .raw_data_received = on_raw,
    .destroy = on_destroy,
};

typedef struct conf {
    uint8_t flags, max, salt;
    char delim[COIL_LINE_MAX_DELIMITER];
    size_t delim_len;
} conf;

static fz *open_one(coil_reactor *r, const conf *c, int act, int *destroyed,
                    coil_transport **t)
{
    fz *f = calloc(1, sizeof *f);
    CHECK(f);
    coil_line_receiver_init(&f->lr, act && (c->salt & 1) ? &fz_default_ops : &fz_ops);
    f->act = act;
    f->destroyed = destroyed;
    f->lr.accept_lf = c->flags & 1;
    if (c->delim_len)
        CHECK(coil_line_set_delimiter(&f->lr, c->delim, c->delim_len) == 0);
    f->lr.accept_lf = c->flags & 1; /* set_delimiter clears it */
    if (c->max != 255)
        f->lr.max_length = c->max;
    *t = coil_memory_transport_new(r, &f->lr.protocol);
    CHECK(*t);
    if (act && (c->flags & 0x40))
        coil_line_set_raw_mode(&f->lr); /* raw reads split as they come */
    return f;
}

/* Feed `in` in chunks sized by its own bytes. */
static void feed_chunks(coil_transport *t, fz *f, const int *destroyed, const uint8_t *in,
                        size_t n, const conf *c, int act)
{
    size_t pos = 0;
    while (pos < n) {
        size_t k = (size_t)((in[pos] ^ c->salt) % 23) + 1;
        if (k > n - pos)
            k = n - pos;
        if (coil_memory_transport_feed(t, in + pos, k) != 0)
            return; /* closed */
        pos += k;
        if (*destroyed)
            return; /* `f` is gone with its connection */
        if (act && f->lr.paused && (in[pos - 1] & 1))
            coil_line_resume(&f->lr);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    conf c = {.flags = data[0], .max = data[1], .salt = data[2]};
    size_t pos = 3;
    if (c.flags & 2) {
        c.delim_len = ((c.flags >> 2) & 7) + 1;
        if (size - pos < c.delim_len)
            return 0;
        memcpy(c.delim, data + pos, c.delim_len);
        pos += c.delim_len;
    }
    const uint8_t *in = data + pos;
    size_t n = size - pos;
    int act = (c.flags & 0x20) != 0;

    coil_clock *clk = coil_clock_new_fake();
    CHECK(clk);
    coil_reactor_options o = {0};
    o.clock = clk;
    coil_reactor *r = NULL;
    CHECK(coil_reactor_new(&r, &o) == 0);

    int destroyed_a = 0, destroyed_b = 0;
    coil_transport *ta, *tb = NULL;
    fz *a = open_one(r, &c, act, &destroyed_a, &ta);
    feed_chunks(ta, a, &destroyed_a, in, n, &c, act);
    if (!act) {
        /* Same stream in one piece: same events. */
        fz *b = open_one(r, &c, 0, &destroyed_b, &tb);
        if (n)
            CHECK(coil_memory_transport_feed(tb, in, n) == 0);
        CHECK(a->log.len == b->log.len);
        CHECK(a->log.len == 0 || memcmp(a->log.p, b->log.p, a->log.len) == 0);
    } else if (destroyed_a == 0) {
        coil_line_resume(&a->lr);
    }
    if ((c.flags & 0x80) && destroyed_a == 0)
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
