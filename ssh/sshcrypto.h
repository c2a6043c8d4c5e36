/* Packet protection for coil's SSH server (private to ssh/): one direction's
 * cipher and MAC, applied in place (RFC 4253 section 6, OpenSSH's
 * PROTOCOL.chacha20poly1305, RFC 5647 as OpenSSH does AES-GCM, and the
 * -etm@openssh.com MACs).
 *
 * A binary packet on the wire is
 *   uint32 packet_length | byte padding_length | payload | padding | mac/tag
 * coil__sshc_seal builds it in place around a payload the caller wrote at
 * buf + 5; coil__sshc_peek / coil__sshc_open take it apart in place. No
 * allocation per packet. MACs and tags are compared in constant time
 * (CRYPTO_memcmp / sodium_memcmp) and checked before decrypting for
 * chacha20-poly1305, AES-GCM and the -etm MACs; aes-ctr with a plain
 * hmac-sha2 MAC (encrypt-and-MAC) must decrypt first, as the RFC defines.
 *
 * Names: ciphers "none" (before the first NEWKEYS), "chacha20-poly1305@openssh.com",
 * "aes256-gcm@openssh.com", "aes128-gcm@openssh.com", "aes256-ctr",
 * "aes128-ctr"; MACs "none", "hmac-sha2-256", "hmac-sha2-512",
 * "hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com" (ignored
 * for the AEAD ciphers; "none" goes only with "none"). */
#ifndef COIL_SSH_SSHCRYPTO_H
#define COIL_SSH_SSHCRYPTO_H

#include <stddef.h>
#include <stdint.h>

/* Longest packet_length coil accepts from a peer (RFC 4253 wants 35000 at
 * least) and the largest it builds. */
#define COIL__SSH_MAX_PACKET (256 * 1024)
/* Most bytes seal adds around a payload: 5 header bytes, up to 255+... of
 * padding is never used: padding is 4..(block+3), plus a tag of <= 64. */
#define COIL__SSHC_OVERHEAD (5 + 32 + 4 + 64)

/* What a cipher / MAC pair needs from key derivation (RFC 4253 7.2). */
typedef struct coil__sshc_sizes {
    size_t iv_len;      /* IV (A/B): 0 for chacha, 12 for GCM, 16 for CTR */
    size_t key_len;     /* key (C/D): 64 for chacha, 16/32 for AES */
    size_t mac_key_len; /* integrity key (E/F): 0 for AEAD, 32 / 64 for HMAC */
} coil__sshc_sizes;

/* 0 and *out for a known pair (mac ignored for AEAD ciphers), -1 for an
 * unknown name. */
int coil__sshc_sizes_of(const char *cipher, const char *mac, coil__sshc_sizes *out);
/* 1 when `cipher` is an AEAD (chacha20-poly1305, aes-gcm): no MAC is
 * negotiated for it. */
int coil__sshc_is_aead(const char *cipher);

typedef struct coil__sshc {
    int cipher;                          /* internal enum */
    int mac;                             /* internal enum */
    int encrypt;                         /* 1 sealing, 0 opening */
    size_t block;                        /* 8 for none and chacha, 16 for AES */
    size_t tag_len;                      /* bytes after the packet: 0, 16, 32, 64 */
    int etm;                             /* length in the clear, MAC over ciphertext */
    void *evp;                           /* EVP_CIPHER_CTX: AES, ChaCha20 (K_2) */
    void *mac_ctx;                       /* EVP_MAC_CTX: HMAC, Poly1305 */
    unsigned char k_main[32], k_hdr[32]; /* chacha20-poly1305 keys */
    unsigned char iv[16];                /* GCM nonce (fixed 4 + counter 8) */
    unsigned char mac_key[64];
    size_t mac_key_len;
    unsigned char peeked[16]; /* opening: the first block, decrypted by peek */
    int peek_done;
    uint32_t peek_len;         /* packet_length peek returned */
    unsigned char pad_key[32]; /* sealing: padding is ChaCha20 keystream */
    uint64_t pad_n;            /* under this random key, nonce pad_n++ */
} coil__sshc;

/* A "none"/"none" state (before the first NEWKEYS). Never fails. */
void coil__sshc_init_none(coil__sshc *c, int encrypt);
/* Set up one direction. Keys are copied (the caller wipes its copies).
 * 0, or -1 for an unknown name or an OpenSSL failure. */
int coil__sshc_init(coil__sshc *c, const char *cipher, const char *mac,
                    const unsigned char *iv, const unsigned char *key,
                    const unsigned char *mac_key, int encrypt);
/* Wipe and free (safe on a zeroed or none state, and twice). */
void coil__sshc_free(coil__sshc *c);

/* Sealing. `buf` has the payload at buf + 5 (payload_len bytes) and room
 * for payload_len + COIL__SSHC_OVERHEAD bytes in all. Writes the length,
 * padding length and random padding, encrypts in place and appends the
 * MAC/tag (seq = the packet's sequence number). Returns the bytes to send
 * (header + payload + padding + tag). */
size_t coil__sshc_seal(coil__sshc *c, uint32_t seq, unsigned char *buf,
                       size_t payload_len);

/* Opening, step 1: how many bytes must be present before peek can run
 * (4 for none, chacha, GCM and -etm; the block size for aes-ctr with a
 * plain MAC). */
size_t coil__sshc_peek_need(const coil__sshc *c);
/* Step 1: the packet_length of the packet starting at buf (at least
 * coil__sshc_peek_need bytes there). May decrypt the first block in place
 * (aes-ctr, plain MAC) or into c->peeked: call once per packet. Returns 0
 * with *packet_length checked (>= 5 ... <= COIL__SSH_MAX_PACKET, a
 * multiple of the block size where the mode demands), or -1 for a bad
 * length (the caller disconnects). */
int coil__sshc_peek(coil__sshc *c, uint32_t seq, unsigned char *buf,
                    uint32_t *packet_length);
/* Bytes the whole packet occupies on the wire: 4 + packet_length + tag. */
size_t coil__sshc_wire_len(const coil__sshc *c, uint32_t packet_length);
/* Step 2, once coil__sshc_wire_len bytes are at buf: verify the MAC/tag
 * (constant time), decrypt in place. Returns 0 with *payload (= buf + 5)
 * and *payload_len, or -1: bad MAC/tag or bad padding (the caller
 * disconnects with "corrupt packet"). */
int coil__sshc_open(coil__sshc *c, uint32_t seq, unsigned char *buf,
                    uint32_t packet_length, unsigned char **payload, size_t *payload_len);

#endif
