/* Fuzz target: received SSH binary packets (ssh/sshcrypto.c). Every byte
 * after the key exchange comes through coil__sshc_peek / coil__sshc_open,
 * including hostile lengths, so they must never read or write outside the
 * packet and must refuse anything not sealed with the right keys.
 *
 * Input: the first byte picks the cipher / MAC pair (fixed keys, below);
 * the rest is what the peer sent: up to 8 packets in a row on one
 * receiving context (sequence numbers 0, 1, ...), each in an exactly sized
 * heap copy so ASan sees any overread. A payload that opens is sealed
 * again and opened by a second pair of contexts, which must give it back.
 *
 * Seeds with valid packets (so open is reached) come from this file built
 * with -DFUZZ_SSH_PACKET_SEEDS (a main that writes corpus files):
 *   cc -DFUZZ_SSH_PACKET_SEEDS -Issh tests/fuzz/fuzz_ssh_packet.c ssh/sshcrypto.c \
 *      -lcrypto -lsodium -o /tmp/seeds && /tmp/seeds tests/fuzz/corpus/ssh_packet */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sshcrypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
    const char *cipher, *mac;
} pairs[] = {
    {"none", "none"},
    {"chacha20-poly1305@openssh.com", NULL},
    {"aes128-gcm@openssh.com", NULL},
    {"aes256-gcm@openssh.com", NULL},
    {"aes128-ctr", "hmac-sha2-256"},
    {"aes256-ctr", "hmac-sha2-512"},
    {"aes128-ctr", "hmac-sha2-256-etm@openssh.com"},
    {"aes256-ctr", "hmac-sha2-512-etm@openssh.com"},
};
#define NPAIRS (sizeof pairs / sizeof pairs[0])

static void keys(unsigned char *iv, unsigned char *key, unsigned char *mac_key)
{
    for (int i = 0; i < 16; i++)
        iv[i] = (unsigned char)(0xf0 + i);
    for (int i = 0; i < 64; i++) {
        key[i] = (unsigned char)(i * 11 + 5);
        mac_key[i] = (unsigned char)(i * 3 + 0x33);
    }
}

static void init(coil__sshc *c, size_t p, int encrypt)
{
    unsigned char iv[16], key[64], mac_key[64];
    keys(iv, key, mac_key);
    if (coil__sshc_init(c, pairs[p].cipher, pairs[p].mac, iv, key, mac_key, encrypt) != 0)
        abort();
}

/* Seal `payload` on tx, open it on rx: must round-trip. */
static void reseal(coil__sshc *tx, coil__sshc *rx, uint32_t seq,
                   const unsigned char *payload, size_t len)
{
    unsigned char *b = malloc(len + COIL__SSHC_OVERHEAD);
    if (b == NULL)
        abort();
    memcpy(b + 5, payload, len);
    size_t n = coil__sshc_seal(tx, seq, b, len);
    uint32_t plen;
    unsigned char *out;
    size_t out_len;
    if (n == 0 || n > len + COIL__SSHC_OVERHEAD ||
        coil__sshc_peek(rx, seq, b, &plen) != 0 || coil__sshc_wire_len(rx, plen) != n ||
        coil__sshc_open(rx, seq, b, plen, &out, &out_len) != 0 || out_len != len ||
        memcmp(out, payload, len) != 0)
        abort();
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t p = data[0] % NPAIRS;
    data++, size--;
    coil__sshc rx, tx2, rx2;
    init(&rx, p, 0);
    init(&tx2, p, 1);
    init(&rx2, p, 0);
    for (uint32_t seq = 0; seq < 8; seq++) {
        size_t need = coil__sshc_peek_need(&rx);
        if (size < need)
            break;
        /* peek may decrypt in place: work on a copy of what is there */
        unsigned char *b = malloc(size);
        if (b == NULL)
            abort();
        memcpy(b, data, size);
        uint32_t len;
        if (coil__sshc_peek(&rx, seq, b, &len) != 0) {
            free(b);
            break;
        }
        if (len < 5 || len > COIL__SSH_MAX_PACKET)
            abort();
        size_t wire = coil__sshc_wire_len(&rx, len);
        if (wire > size) {
            free(b);
            break;
        }
        /* exactly the packet's bytes: ASan sees any read past it */
        unsigned char *pkt = malloc(wire);
        if (pkt == NULL)
            abort();
        memcpy(pkt, b, wire);
        free(b);
        unsigned char *payload;
        size_t payload_len;
        int rc = coil__sshc_open(&rx, seq, pkt, len, &payload, &payload_len);
        if (rc == 0) {
            if (payload != pkt + 5 || payload_len > len - 5)
                abort();
            reseal(&tx2, &rx2, seq, payload, payload_len);
        }
        free(pkt);
        if (rc != 0)
            break;
        data += wire, size -= wire;
    }
    coil__sshc_free(&rx);
    coil__sshc_free(&tx2);
    coil__sshc_free(&rx2);
    return 0;
}

#ifdef FUZZ_SSH_PACKET_SEEDS
/* Writes seed files into argv[1]: per pair, three valid packets in a row
 * (sizes 0, 17 and 300 bytes of payload), one valid packet followed by a
 * truncated one, and one with a flipped tag byte. */
int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    static unsigned char out[4096], b[1024];
    int k = 0;
    for (size_t p = 0; p < NPAIRS; p++) {
        for (int variant = 0; variant < 3; variant++) {
            coil__sshc tx;
            init(&tx, p, 1);
            size_t n = 0;
            out[n++] = (unsigned char)p;
            static const size_t sizes[] = {0, 17, 300};
            for (uint32_t seq = 0; seq < 3; seq++) {
                for (size_t i = 0; i < sizes[seq]; i++)
                    b[5 + i] = (unsigned char)(i * 7 + seq);
                if (sizes[seq] > 0)
                    b[5] = (unsigned char)(90 + seq); /* a message number */
                size_t w = coil__sshc_seal(&tx, seq, b, sizes[seq]);
                if (variant == 1 && seq == 1)
                    w /= 2;
                if (variant == 2 && seq == 1)
                    b[w - 1] ^= 1;
                memcpy(out + n, b, w);
                n += w;
                if (variant != 0 && seq == 1)
                    break;
            }
            coil__sshc_free(&tx);
            char path[4096];
            snprintf(path, sizeof path, "%s/seed%02d", argv[1], k++);
            FILE *f = fopen(path, "wb");
            if (f == NULL || fwrite(out, 1, n, f) != n || fclose(f) != 0)
                return 1;
        }
    }
    return 0;
}
#endif
