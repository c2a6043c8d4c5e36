/* SSH wire format (RFC 4251 section 5), private to ssh/: a bounds-checked
 * reader over a received payload and a writer into a caller's buffer.
 *
 * The reader never reads past its end: once any get fails, `bad` is set and
 * every later get fails too, so a parser checks once at the end
 * (coil__sshr_done). Strings are views into the payload (not copied, not
 * NUL terminated). The writer never writes past `cap`: an overflow sets
 * `bad` and the caller reports it. */
#ifndef COIL_SSH_SSHWIRE_H
#define COIL_SSH_SSHWIRE_H

#include <stddef.h>
#include <stdint.h>

typedef struct coil__sshr {
    const unsigned char *p;
    size_t len, off;
    int bad;
} coil__sshr;

/* A string view. */
typedef struct coil__sshs {
    const unsigned char *p;
    size_t len;
} coil__sshs;

void coil__sshr_init(coil__sshr *r, const void *p, size_t len);
int coil__sshr_u8(coil__sshr *r, uint8_t *out);
int coil__sshr_bool(coil__sshr *r, int *out);
int coil__sshr_u32(coil__sshr *r, uint32_t *out);
int coil__sshr_u64(coil__sshr *r, uint64_t *out);
/* A string of at most `max` bytes (longer: bad). */
int coil__sshr_string(coil__sshr *r, coil__sshs *out, size_t max);
/* A string copied into out as a C string (at most size-1 bytes, no NUL
 * inside, else bad). */
int coil__sshr_cstring(coil__sshr *r, char *out, size_t size);
/* n raw bytes. */
int coil__sshr_bytes(coil__sshr *r, const unsigned char **out, size_t n);
/* Bytes left. */
size_t coil__sshr_left(const coil__sshr *r);
/* 0 when every get succeeded and the whole payload was read (or, with
 * allow_trailing, when every get succeeded). */
int coil__sshr_done(const coil__sshr *r, int allow_trailing);

/* 1 when the string equals the C string `s`. */
int coil__sshs_eq(coil__sshs a, const char *s);
/* 1 when the comma-separated name-list `list` contains `name`. */
int coil__sshs_list_has(coil__sshs list, const char *name);

typedef struct coil__sshw {
    unsigned char *p;
    size_t cap, len;
    int bad;
} coil__sshw;

void coil__sshw_init(coil__sshw *w, void *buf, size_t cap);
void coil__sshw_u8(coil__sshw *w, uint8_t v);
void coil__sshw_bool(coil__sshw *w, int v);
void coil__sshw_u32(coil__sshw *w, uint32_t v);
void coil__sshw_u64(coil__sshw *w, uint64_t v);
void coil__sshw_bytes(coil__sshw *w, const void *p, size_t n);
void coil__sshw_string(coil__sshw *w, const void *p, size_t n);
void coil__sshw_cstring(coil__sshw *w, const char *s);
/* An mpint from an unsigned big-endian number (leading zeros dropped, a 0
 * byte added when the top bit is set). */
void coil__sshw_mpint(coil__sshw *w, const unsigned char *be, size_t n);

static inline uint32_t coil__ssh_get32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void coil__ssh_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

#endif
