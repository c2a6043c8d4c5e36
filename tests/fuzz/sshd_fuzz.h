/* Shared by the fuzz targets of coil's SSH server that feed records to a
 * connection on the memory transport (fuzz_ssh_server.c,
 * fuzz_ssh_channel.c): one fake-clock reactor, a generated host key, a
 * connection put past the key exchange, the input's records, the plain
 * packets the server wrote. Header only
 * (each target is one file plus replay.c); no CUnit. */
#ifndef COIL_SSHD_FUZZ_H
#define COIL_SSHD_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <coil/log.h>
#include <coil/memory.h>
#include <coil/reactor.h>
#include <coil/ssh_server.h>

#include "../sshd_testutil.h"

#define CHECK(x)              \
    do {                      \
        if (!(x))             \
            __builtin_trap(); \
    } while (0)

static coil_clock *fuzz_clk;
static coil_reactor *fuzz_r;

/* The reactor on a fake clock, made at the first call (logging off). */
static inline coil_reactor *fuzz_sshd_reactor(void)
{
    if (!fuzz_r) {
        fuzz_clk = coil_clock_new_fake();
        CHECK(fuzz_clk);
        coil_reactor_options ro = {0};
        ro.clock = fuzz_clk;
        CHECK(coil_reactor_new(&fuzz_r, &ro) == 0);
        coil_log_set_level(COIL_LOG_NONE);
    }
    return fuzz_r;
}

/* Free the reactor and its clock (at exit, after the servers). */
static inline void fuzz_sshd_reactor_free(void)
{
    if (fuzz_r) {
        coil_reactor_free(fuzz_r);
        coil_clock_free(fuzz_clk);
        fuzz_r = NULL;
    }
}

static char fuzz_host_key[64];

static inline void fuzz_sshd_drop_host_key(void)
{
    unlink(fuzz_host_key);
}

/* The path of a host key for the servers to generate:
 * /tmp/coil-fuzz-TAG-PID, removed now and at exit. */
static inline const char *fuzz_sshd_host_key(const char *tag)
{
    if (!fuzz_host_key[0]) {
        snprintf(fuzz_host_key, sizeof fuzz_host_key, "/tmp/coil-fuzz-%s-%ld", tag,
                 (long)getpid());
        unlink(fuzz_host_key);
        atexit(fuzz_sshd_drop_host_key);
    }
    return fuzz_host_key;
}

/* A connection of `sv` on the single-ended memory transport, what it wrote
 * cleared, put past the key exchange with no cipher (plain packets) and
 * logged in as `user` (NULL: authentication still to run). *sp: its
 * coil__sshd. */
static inline coil_transport *fuzz_sshd_connect(coil_ssh_server *sv,
                                                const coil_address *peer,
                                                const char *user, coil__sshd **sp)
{
    coil_transport *t = sshd_test_connect(fuzz_sshd_reactor(), sv, peer, sp);
    CHECK(t);
    coil_memory_transport_clear(t);
    coil__sshd_test_skip_kex(*sp, user);
    return t;
}

static inline int fuzz_sshd_closed(coil_transport *t)
{
    return (coil_memory_transport_flags(t) & COIL_MEMORY_CLOSED) != 0;
}

/* The next record of the input from *pos (after the options byte): a
 * uint16 length (big endian), then that many bytes (what is left, at the
 * end). 0 when no length is left. */
static inline int fuzz_sshd_record(const uint8_t *data, size_t size, size_t *pos,
                                   const unsigned char **rec, size_t *n)
{
    if (*pos + 2 > size)
        return 0;
    *n = ((size_t)data[*pos] << 8) | data[*pos + 1];
    *pos += 2;
    if (*n > size - *pos)
        *n = size - *pos;
    *rec = data + *pos;
    *pos += *n;
    return 1;
}

/* Move what the server wrote on t to the end of *acc (*len bytes). */
static inline void fuzz_sshd_take_output(coil_transport *t, unsigned char **acc,
                                         size_t *len)
{
    CHECK(sshd_test_gather(t, acc, len) == 0);
}

/* The next whole plain packet in acc[*off..len) (sshd_test_next_packet):
 * one framed wrong traps. 0 when it is not whole yet. */
static inline int fuzz_sshd_next_packet(const unsigned char *acc, size_t len, size_t *off,
                                        const unsigned char **payload, size_t *plen)
{
    int rc = sshd_test_next_packet(acc, len, off, payload, plen);
    CHECK(rc >= 0);
    return rc;
}

/* Drop the first `off` bytes of acc (the packets read). */
static inline void fuzz_sshd_consumed(unsigned char *acc, size_t *len, size_t off)
{
    if (off > 0) {
        memmove(acc, acc + off, *len - off);
        *len -= off;
    }
}

#endif
