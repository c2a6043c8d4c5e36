/* SSH wire format helpers; see sshwire.h. */
#include "sshwire.h"

#include <string.h>

void coil__sshr_init(coil__sshr *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->off = 0;
    r->bad = 0;
}

static const unsigned char *take(coil__sshr *r, size_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = 1;
        return NULL;
    }
    const unsigned char *p = r->p + r->off;
    r->off += n;
    return p;
}

int coil__sshr_u8(coil__sshr *r, uint8_t *out)
{
    const unsigned char *p = take(r, 1);
    if (!p)
        return -1;
    *out = p[0];
    return 0;
}

int coil__sshr_bool(coil__sshr *r, int *out)
{
    uint8_t v;
    if (coil__sshr_u8(r, &v))
        return -1;
    *out = v != 0;
    return 0;
}

int coil__sshr_u32(coil__sshr *r, uint32_t *out)
{
    const unsigned char *p = take(r, 4);
    if (!p)
        return -1;
    *out = coil__ssh_get32(p);
    return 0;
}

int coil__sshr_u64(coil__sshr *r, uint64_t *out)
{
    const unsigned char *p = take(r, 8);
    if (!p)
        return -1;
    *out = ((uint64_t)coil__ssh_get32(p) << 32) | coil__ssh_get32(p + 4);
    return 0;
}

int coil__sshr_string(coil__sshr *r, coil__sshs *out, size_t max)
{
    uint32_t n;
    if (coil__sshr_u32(r, &n))
        return -1;
    if (n > max) {
        r->bad = 1;
        return -1;
    }
    const unsigned char *p = take(r, n);
    if (!p)
        return -1;
    out->p = p;
    out->len = n;
    return 0;
}

int coil__sshr_cstring(coil__sshr *r, char *out, size_t size)
{
    coil__sshs s;
    if (size == 0 || coil__sshr_string(r, &s, size - 1))
        return -1;
    if (s.len && memchr(s.p, 0, s.len)) {
        r->bad = 1;
        return -1;
    }
    if (s.len)
        memcpy(out, s.p, s.len);
    out[s.len] = 0;
    return 0;
}

int coil__sshr_bytes(coil__sshr *r, const unsigned char **out, size_t n)
{
    const unsigned char *p = take(r, n);
    if (!p)
        return -1;
    *out = p;
    return 0;
}

size_t coil__sshr_left(const coil__sshr *r)
{
    return r->bad ? 0 : r->len - r->off;
}

int coil__sshr_done(const coil__sshr *r, int allow_trailing)
{
    if (r->bad)
        return -1;
    return (allow_trailing || r->off == r->len) ? 0 : -1;
}

int coil__sshs_eq(coil__sshs a, const char *s)
{
    size_t n = strlen(s);
    return a.len == n && (n == 0 || memcmp(a.p, s, n) == 0);
}

int coil__sshs_list_has(coil__sshs list, const char *name)
{
    size_t n = strlen(name), i = 0;
    while (i <= list.len) {
        size_t j = i;
        while (j < list.len && list.p[j] != ',')
            j++;
        if (j - i == n && (n == 0 || memcmp(list.p + i, name, n) == 0))
            return 1;
        i = j + 1;
    }
    return 0;
}

void coil__sshw_init(coil__sshw *w, void *buf, size_t cap)
{
    w->p = buf;
    w->cap = cap;
    w->len = 0;
    w->bad = 0;
}

void coil__sshw_bytes(coil__sshw *w, const void *p, size_t n)
{
    if (w->bad || w->cap - w->len < n) {
        w->bad = 1;
        return;
    }
    if (n)
        memcpy(w->p + w->len, p, n);
    w->len += n;
}

void coil__sshw_u8(coil__sshw *w, uint8_t v)
{
    coil__sshw_bytes(w, &v, 1);
}

void coil__sshw_bool(coil__sshw *w, int v)
{
    coil__sshw_u8(w, v ? 1 : 0);
}

void coil__sshw_u32(coil__sshw *w, uint32_t v)
{
    unsigned char b[4];
    coil__ssh_put32(b, v);
    coil__sshw_bytes(w, b, 4);
}

void coil__sshw_u64(coil__sshw *w, uint64_t v)
{
    coil__sshw_u32(w, (uint32_t)(v >> 32));
    coil__sshw_u32(w, (uint32_t)v);
}

void coil__sshw_string(coil__sshw *w, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        w->bad = 1;
        return;
    }
    coil__sshw_u32(w, (uint32_t)n);
    coil__sshw_bytes(w, p, n);
}

void coil__sshw_cstring(coil__sshw *w, const char *s)
{
    coil__sshw_string(w, s, strlen(s));
}

void coil__sshw_mpint(coil__sshw *w, const unsigned char *be, size_t n)
{
    while (n > 0 && be[0] == 0) {
        be++;
        n--;
    }
    if (n > 0 && (be[0] & 0x80)) {
        coil__sshw_u32(w, (uint32_t)(n + 1));
        coil__sshw_u8(w, 0);
        coil__sshw_bytes(w, be, n);
    } else {
        coil__sshw_string(w, be, n);
    }
}
