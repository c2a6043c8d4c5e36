/* Shared by the tests and the fuzz targets of coil's SSH server that run a
 * server connection on the single-ended memory transport and read what it
 * writes in the clear (before its first NEWKEYS, or after
 * coil__sshd_test_skip_kex: plain packets). Header only and without CUnit:
 * the fuzz targets build without it. Needs ssh/ on the include path. */
#ifndef COIL_SSHD_TESTUTIL_H
#define COIL_SSHD_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <coil/memory.h>
#include <coil/ssh_server.h>

#include "server_private.h"

/* A connection of `srv` (peer may be NULL) on the memory transport of
 * `r`; *sp is its coil__sshd. NULL when the server refuses it or memory
 * runs out. */
static inline coil_transport *sshd_test_connect(coil_reactor *r, coil_ssh_server *srv,
                                                const coil_address *peer, coil__sshd **sp)
{
    coil_protocol *p = coil_ssh_server_protocol(srv, peer);
    if (!p)
        return NULL;
    coil_transport *t = coil_memory_transport_new(r, p);
    if (t && sp)
        *sp = coil__sshd_of(p);
    return t;
}

/* Move what the server wrote on t to the end of *acc (*len bytes). 0, or
 * -1 out of memory (nothing moved). */
static inline int sshd_test_gather(coil_transport *t, unsigned char **acc, size_t *len)
{
    size_t n = 0;
    const void *w = coil_memory_transport_written(t, &n);
    if (n == 0)
        return 0;
    unsigned char *a = realloc(*acc, *len + n);
    if (!a)
        return -1;
    memcpy(a + *len, w, n);
    *acc = a;
    *len += n;
    coil_memory_transport_clear(t);
    return 0;
}

/* Frame `payload` as a plain packet (coil__sshd_test_frame) and feed it to
 * t: what coil_memory_transport_feed returns (COIL_ECLOSED once the
 * connection is closed), or COIL_ENOMEM. */
static inline int sshd_test_frame_feed(coil_transport *t, const void *payload, size_t len)
{
    size_t cap = len + 64;
    unsigned char *b = malloc(cap);
    if (!b)
        return COIL_ENOMEM;
    size_t n = coil__sshd_test_frame(payload, len, b, cap);
    int rc = n ? coil_memory_transport_feed(t, b, n) : COIL_ENOMEM;
    free(b);
    return rc;
}

/* The next plain packet in buf[*off..len): 1 with its payload in *payload,
 * *plen and *off past it; 0 when it is not whole yet; -1 when it is framed
 * wrong (a length under 5 or over the maximum, packet and length field not
 * a multiple of 8, less than 4 bytes of padding). */
static inline int sshd_test_next_packet(const unsigned char *buf, size_t len, size_t *off,
                                        const unsigned char **payload, size_t *plen)
{
    if (len - *off < 4)
        return 0;
    const unsigned char *p = buf + *off;
    uint32_t n = coil__ssh_get32(p);
    if (n < 5 || n > COIL__SSH_MAX_PACKET || (n + 4) % 8 != 0)
        return -1;
    if (len - *off < 4 + (size_t)n)
        return 0;
    unsigned pad = p[4];
    if (pad < 4 || pad + 1u >= n)
        return -1;
    *payload = p + 5;
    *plen = n - pad - 1;
    *off += 4 + n;
    return 1;
}

/* The signature of a signed publickey USERAUTH_REQUEST by key k (RFC 4252
 * section 7: over the session id, then the request up to the algorithm
 * and key blob). 0, or -1 when it cannot be made. */
static inline int sshd_test_pk_sign(const coil__sshkey *k, const unsigned char sid[32],
                                    const char *user, const char *alg, unsigned char *sig,
                                    size_t cap, size_t *sig_len)
{
    size_t blob_len;
    const unsigned char *blob = coil__sshkey_blob(k, &blob_len);
    unsigned char data[4096];
    coil__sshw d;
    coil__sshw_init(&d, data, sizeof data);
    coil__sshw_string(&d, sid, 32);
    coil__sshw_u8(&d, COIL__SSH_MSG_USERAUTH_REQUEST);
    coil__sshw_cstring(&d, user);
    coil__sshw_cstring(&d, "ssh-connection");
    coil__sshw_cstring(&d, "publickey");
    coil__sshw_bool(&d, 1);
    coil__sshw_cstring(&d, alg);
    coil__sshw_string(&d, blob, blob_len);
    if (d.bad)
        return -1;
    return coil__sshkey_sign(k, data, d.len, sig, cap, sig_len) == 0 ? 0 : -1;
}

/* Seconds on the monotonic clock: real time, for waiting on the auth
 * thread pool while the reactor's fake clock stands still. */
static inline double sshd_test_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

#endif
