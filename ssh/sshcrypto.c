/* Packet protection; see sshcrypto.h.
 *
 * One coil__sshc protects one direction. Every per-packet operation is a
 * whole-packet call into OpenSSL (EVP ChaCha20 for the payload, EVP_MAC
 * Poly1305 and HMAC-SHA2, EVP AES-CTR and AES-GCM; libsodium's ChaCha20 for
 * the length and the padding keystream): no per-block loops here. Nothing is
 * allocated per packet by coil; OpenSSL 3.0's HMAC allocates inside (the
 * aes-ctr + hmac-sha2 modes), chacha20-poly1305 and AES-GCM do not. */
#include "sshcrypto.h"

#include "sshwire.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sodium.h>
#include <string.h>

enum {
    CIPH_NONE = 0,
    CIPH_CHACHA,
    CIPH_AES128_GCM,
    CIPH_AES256_GCM,
    CIPH_AES128_CTR,
    CIPH_AES256_CTR,
};

enum {
    MAC_NONE = 0,
    MAC_SHA256,
    MAC_SHA512,
};

static const struct {
    const char *name;
    int id;
    size_t iv_len, key_len, block;
} ciphers[] = {
    {"none", CIPH_NONE, 0, 0, 8},
    {"chacha20-poly1305@openssh.com", CIPH_CHACHA, 0, 64, 8},
    {"aes128-gcm@openssh.com", CIPH_AES128_GCM, 12, 16, 16},
    {"aes256-gcm@openssh.com", CIPH_AES256_GCM, 12, 32, 16},
    {"aes128-ctr", CIPH_AES128_CTR, 16, 16, 16},
    {"aes256-ctr", CIPH_AES256_CTR, 16, 32, 16},
};

static const struct {
    const char *name;
    int id;
    int etm;
    size_t key_len; /* = tag length */
} macs[] = {
    {"none", MAC_NONE, 0, 0},
    {"hmac-sha2-256", MAC_SHA256, 0, 32},
    {"hmac-sha2-512", MAC_SHA512, 0, 64},
    {"hmac-sha2-256-etm@openssh.com", MAC_SHA256, 1, 32},
    {"hmac-sha2-512-etm@openssh.com", MAC_SHA512, 1, 64},
};

#define NCIPHERS (sizeof ciphers / sizeof ciphers[0])
#define NMACS    (sizeof macs / sizeof macs[0])

static int find_cipher(const char *name)
{
    if (name == NULL)
        return -1;
    for (size_t i = 0; i < NCIPHERS; i++)
        if (strcmp(ciphers[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int find_mac(const char *name)
{
    if (name == NULL)
        return -1;
    for (size_t i = 0; i < NMACS; i++)
        if (strcmp(macs[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int id_is_aead(int id)
{
    return id == CIPH_CHACHA || id == CIPH_AES128_GCM || id == CIPH_AES256_GCM;
}

static int id_is_gcm(int id)
{
    return id == CIPH_AES128_GCM || id == CIPH_AES256_GCM;
}

static int id_is_ctr(int id)
{
    return id == CIPH_AES128_CTR || id == CIPH_AES256_CTR;
}

/* The MAC table entry for a non-AEAD cipher, or -1. "none" goes only with
 * "none": AES-CTR without a MAC (or a MAC over plaintext sent in the
 * clear) is refused. */
static int find_mac_for(int cipher_id, const char *mac)
{
    int mi = find_mac(mac);
    if (mi < 0 || (macs[mi].id == MAC_NONE) != (cipher_id == CIPH_NONE))
        return -1;
    return mi;
}

int coil__sshc_is_aead(const char *cipher)
{
    int i = find_cipher(cipher);
    return i >= 0 && id_is_aead(ciphers[i].id);
}

int coil__sshc_sizes_of(const char *cipher, const char *mac, coil__sshc_sizes *out)
{
    int ci = find_cipher(cipher);
    if (ci < 0)
        return -1;
    size_t mac_key_len = 0;
    if (!id_is_aead(ciphers[ci].id)) {
        int mi = find_mac_for(ciphers[ci].id, mac);
        if (mi < 0)
            return -1;
        mac_key_len = macs[mi].key_len;
    }
    out->iv_len = ciphers[ci].iv_len;
    out->key_len = ciphers[ci].key_len;
    out->mac_key_len = mac_key_len;
    return 0;
}

/* The 4 length bytes are inside the blocks (and hidden) unless the mode
 * sends them in the clear (etm) or protects them apart (AEAD). */
static int length_in_blocks(const coil__sshc *c)
{
    return !c->etm && !id_is_aead(c->cipher);
}

static void seed_padding(coil__sshc *c)
{
    /* sodium_init is idempotent and thread-safe; it fails only when no
     * random source exists, and randombytes_buf then aborts by itself. */
    if (sodium_init() < 0) {
        /* nothing better to do: see above */
    }
    randombytes_buf(c->pad_key, sizeof c->pad_key);
    c->pad_n = 0;
}

static int new_mac_ctx(coil__sshc *c, const char *name)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, name, NULL);
    if (mac == NULL)
        return -1;
    c->mac_ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context holds its own reference */
    return c->mac_ctx != NULL ? 0 : -1;
}

void coil__sshc_init_none(coil__sshc *c, int encrypt)
{
    memset(c, 0, sizeof *c);
    c->cipher = CIPH_NONE;
    c->mac = MAC_NONE;
    c->encrypt = encrypt;
    c->block = 8;
    if (encrypt)
        seed_padding(c);
}

int coil__sshc_init(coil__sshc *c, const char *cipher, const char *mac,
                    const unsigned char *iv, const unsigned char *key,
                    const unsigned char *mac_key, int encrypt)
{
    coil__sshc_init_none(c, encrypt);
    int ci = find_cipher(cipher);
    if (ci < 0)
        return -1;
    int id = ciphers[ci].id;
    int mi = 0; /* "none" */
    if (!id_is_aead(id)) {
        mi = find_mac_for(id, mac);
        if (mi < 0)
            return -1;
    }
    c->cipher = id;
    c->block = ciphers[ci].block;
    c->mac = macs[mi].id;
    c->etm = macs[mi].etm;
    c->tag_len = macs[mi].key_len;
    c->mac_key_len = macs[mi].key_len;
    if (c->mac_key_len > 0) {
        /* HMAC keyed once here; each packet re-initialises with the same
         * key (EVP_MAC_init without a key). */
        memcpy(c->mac_key, mac_key, c->mac_key_len);
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(
                OSSL_MAC_PARAM_DIGEST, c->mac == MAC_SHA256 ? "SHA256" : "SHA512", 0),
            OSSL_PARAM_construct_end(),
        };
        if (new_mac_ctx(c, "HMAC") != 0 ||
            EVP_MAC_init(c->mac_ctx, c->mac_key, c->mac_key_len, params) != 1)
            goto fail;
    }

    if (id == CIPH_NONE)
        return 0;

    const EVP_CIPHER *ev = NULL;
    switch (id) {
    case CIPH_CHACHA:
        ev = EVP_chacha20();
        break;
    case CIPH_AES128_GCM:
        ev = EVP_aes_128_gcm();
        break;
    case CIPH_AES256_GCM:
        ev = EVP_aes_256_gcm();
        break;
    case CIPH_AES128_CTR:
        ev = EVP_aes_128_ctr();
        break;
    case CIPH_AES256_CTR:
        ev = EVP_aes_256_ctr();
        break;
    default:
        return -1;
    }
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        goto fail;
    c->evp = ctx;
    if (id == CIPH_CHACHA) {
        /* PROTOCOL.chacha20poly1305: the first 256 bits are K_2 (payload
         * and Poly1305 key), the second 256 bits K_1 (length only). K_2
         * runs in OpenSSL (long inputs), K_1 in libsodium (4 bytes). */
        memcpy(c->k_main, key, 32);
        memcpy(c->k_hdr, key + 32, 32);
        c->tag_len = 16;
        if (EVP_CipherInit_ex(ctx, ev, NULL, c->k_main, NULL, 1) != 1 ||
            new_mac_ctx(c, "POLY1305") != 0)
            goto fail;
    } else if (id_is_gcm(id)) {
        c->tag_len = 16;
        memcpy(c->iv, iv, 12);
        if (EVP_CipherInit_ex(ctx, ev, NULL, NULL, NULL, encrypt) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
            EVP_CipherInit_ex(ctx, NULL, NULL, key, NULL, encrypt) != 1)
            goto fail;
    } else {
        if (EVP_CipherInit_ex(ctx, ev, NULL, key, iv, encrypt) != 1)
            goto fail;
    }
    return 0;
fail:
    coil__sshc_free(c);
    return -1;
}

void coil__sshc_free(coil__sshc *c)
{
    int encrypt = c->encrypt;
    EVP_CIPHER_CTX_free((EVP_CIPHER_CTX *)c->evp);
    EVP_MAC_CTX_free((EVP_MAC_CTX *)c->mac_ctx);
    sodium_memzero(c, sizeof *c);
    /* Left as a usable "none" state without a padding key (zeros). */
    c->encrypt = encrypt;
    c->block = 8;
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

/* HMAC-SHA2 over uint32 seq || p[0..n) into out (tag_len bytes). */
static int mac_compute(const coil__sshc *c, uint32_t seq, const unsigned char *p,
                       size_t n, unsigned char *out)
{
    EVP_MAC_CTX *ctx = c->mac_ctx;
    unsigned char s[4];
    size_t outl = 0;
    coil__ssh_put32(s, seq);
    if (EVP_MAC_init(ctx, NULL, 0, NULL) != 1 || EVP_MAC_update(ctx, s, 4) != 1 ||
        EVP_MAC_update(ctx, p, n) != 1 ||
        EVP_MAC_final(ctx, out, &outl, c->tag_len) != 1 || outl != c->tag_len)
        return -1;
    return 0;
}

/* 0 when the MAC at p + n matches. Constant time. */
static int mac_verify(const coil__sshc *c, uint32_t seq, const unsigned char *p, size_t n)
{
    unsigned char want[64];
    int bad = mac_compute(c, seq, p, n, want) != 0 ||
              CRYPTO_memcmp(want, p + n, c->tag_len) != 0;
    sodium_memzero(want, sizeof want);
    return bad ? -1 : 0;
}

/* chacha20-poly1305@openssh.com, after the length: start K_2's stream for
 * packet `seq` (block 0 gives the Poly1305 key, so the stream is then at
 * block 1 for the payload) and compute the tag over n bytes at p. */
static int chacha_start(coil__sshc *c, uint32_t seq, unsigned char *polykey)
{
    static const unsigned char zero[64];
    unsigned char iv[16] = {0}; /* 64-bit block counter 0, 64-bit nonce = seq */
    unsigned char block0[64];
    int outl = 0;
    put64(iv + 8, seq);
    int rc = EVP_CipherInit_ex(c->evp, NULL, NULL, NULL, iv, -1) == 1 &&
                     EVP_CipherUpdate(c->evp, block0, &outl, zero, 64) == 1 && outl == 64
                 ? 0
                 : -1;
    memcpy(polykey, block0, 32);
    sodium_memzero(block0, sizeof block0);
    return rc;
}

static int poly1305(coil__sshc *c, const unsigned char *polykey, const unsigned char *p,
                    size_t n, unsigned char *tag)
{
    EVP_MAC_CTX *ctx = c->mac_ctx;
    size_t outl = 0;
    if (EVP_MAC_init(ctx, polykey, 32, NULL) != 1 || EVP_MAC_update(ctx, p, n) != 1 ||
        EVP_MAC_final(ctx, tag, &outl, 16) != 1 || outl != 16)
        return -1;
    return 0;
}

static void gcm_next_iv(coil__sshc *c)
{
    /* 8-byte invocation counter after the 4 fixed bytes (RFC 5647 7.1). */
    for (int i = 11; i >= 4; i--)
        if (++c->iv[i] != 0)
            break;
}

/* AES-GCM over buf: AAD = the 4 length bytes, then n bytes at buf + 4
 * in place; the tag at buf + 4 + n (written when sealing, checked when
 * opening). */
static int gcm_crypt(coil__sshc *c, unsigned char *buf, size_t n)
{
    EVP_CIPHER_CTX *ctx = c->evp;
    int outl = 0, ok = 0;
    if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, c->iv, -1) != 1)
        goto out;
    if (!c->encrypt &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, buf + 4 + n) != 1)
        goto out;
    if (EVP_CipherUpdate(ctx, NULL, &outl, buf, 4) != 1 ||
        EVP_CipherUpdate(ctx, buf + 4, &outl, buf + 4, (int)n) != 1 || (size_t)outl != n)
        goto out;
    if (EVP_CipherFinal_ex(ctx, buf + 4 + n, &outl) != 1)
        goto out;
    if (c->encrypt &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, buf + 4 + n) != 1)
        goto out;
    ok = 1;
out:
    gcm_next_iv(c);
    return ok ? 0 : -1;
}

/* A stream cipher in place: AES-CTR (keystream continuous across
 * packets) or ChaCha20 under K_2 (from where chacha_start left it). */
static int ctr_crypt(coil__sshc *c, unsigned char *p, size_t n)
{
    int outl = 0;
    if (n == 0)
        return 0;
    if (EVP_CipherUpdate((EVP_CIPHER_CTX *)c->evp, p, &outl, p, (int)n) != 1 ||
        (size_t)outl != n)
        return -1;
    return 0;
}

size_t coil__sshc_seal(coil__sshc *c, uint32_t seq, unsigned char *buf,
                       size_t payload_len)
{
    size_t block = c->block ? c->block : 8;
    if (payload_len > COIL__SSH_MAX_PACKET - 1 - (block + 3))
        return 0;
    size_t len = 1 + payload_len + (length_in_blocks(c) ? 4 : 0);
    size_t pad = block - len % block;
    if (pad < 4)
        pad += block;
    size_t packet_length = 1 + payload_len + pad;
    coil__ssh_put32(buf, (uint32_t)packet_length);
    buf[4] = (unsigned char)pad;

    unsigned char nonce[8];
    put64(nonce, c->pad_n++);
    crypto_stream_chacha20(buf + 5 + payload_len, pad, nonce, c->pad_key);

    size_t n = 4 + packet_length; /* bytes before the tag */
    switch (c->cipher) {
    case CIPH_NONE:
        break;
    case CIPH_CHACHA: {
        unsigned char polykey[32];
        put64(nonce, seq);
        crypto_stream_chacha20_xor(buf, buf, 4, nonce, c->k_hdr);
        int bad = chacha_start(c, seq, polykey) != 0 ||
                  ctr_crypt(c, buf + 4, packet_length) != 0 ||
                  poly1305(c, polykey, buf, n, buf + n) != 0;
        sodium_memzero(polykey, sizeof polykey);
        if (bad)
            return 0;
        break;
    }
    case CIPH_AES128_GCM:
    case CIPH_AES256_GCM:
        if (gcm_crypt(c, buf, packet_length) != 0)
            return 0;
        break;
    case CIPH_AES128_CTR:
    case CIPH_AES256_CTR:
        if (c->etm) {
            if (ctr_crypt(c, buf + 4, packet_length) != 0 ||
                mac_compute(c, seq, buf, n, buf + n) != 0)
                return 0;
        } else {
            if (mac_compute(c, seq, buf, n, buf + n) != 0 || ctr_crypt(c, buf, n) != 0)
                return 0;
        }
        break;
    default:
        return 0;
    }
    return n + c->tag_len;
}

size_t coil__sshc_peek_need(const coil__sshc *c)
{
    return id_is_ctr(c->cipher) && !c->etm ? c->block : 4;
}

int coil__sshc_peek(coil__sshc *c, uint32_t seq, unsigned char *buf,
                    uint32_t *packet_length)
{
    size_t block = c->block ? c->block : 8;
    uint32_t len;
    c->peek_done = 0;
    if (c->cipher == CIPH_CHACHA) {
        unsigned char nonce[8];
        put64(nonce, seq);
        crypto_stream_chacha20_xor(c->peeked, buf, 4, nonce, c->k_hdr);
        len = coil__ssh_get32(c->peeked);
    } else if (id_is_ctr(c->cipher) && !c->etm) {
        if (ctr_crypt(c, buf, block) != 0)
            return -1;
        len = coil__ssh_get32(buf);
    } else {
        len = coil__ssh_get32(buf);
    }
    if (len < 5 || len > COIL__SSH_MAX_PACKET)
        return -1;
    if ((length_in_blocks(c) ? 4 + (size_t)len : (size_t)len) % block != 0)
        return -1;
    if (id_is_ctr(c->cipher) && !c->etm && 4 + (size_t)len < block)
        return -1;
    c->peek_done = 1;
    c->peek_len = len;
    *packet_length = len;
    return 0;
}

size_t coil__sshc_wire_len(const coil__sshc *c, uint32_t packet_length)
{
    return 4 + (size_t)packet_length + c->tag_len;
}

int coil__sshc_open(coil__sshc *c, uint32_t seq, unsigned char *buf,
                    uint32_t packet_length, unsigned char **payload, size_t *payload_len)
{
    int peeked = c->peek_done;
    c->peek_done = 0;
    if (!peeked || packet_length != c->peek_len)
        return -1;
    size_t n = 4 + (size_t)packet_length;
    switch (c->cipher) {
    case CIPH_NONE:
        break;
    case CIPH_CHACHA: {
        unsigned char polykey[32], tag[16];
        int bad = chacha_start(c, seq, polykey) != 0 ||
                  poly1305(c, polykey, buf, n, tag) != 0 ||
                  CRYPTO_memcmp(tag, buf + n, 16) != 0;
        sodium_memzero(polykey, sizeof polykey);
        if (bad || ctr_crypt(c, buf + 4, packet_length) != 0)
            return -1;
        memcpy(buf, c->peeked, 4);
        break;
    }
    case CIPH_AES128_GCM:
    case CIPH_AES256_GCM:
        if (gcm_crypt(c, buf, packet_length) != 0)
            return -1;
        break;
    case CIPH_AES128_CTR:
    case CIPH_AES256_CTR:
        if (c->etm) {
            if (mac_verify(c, seq, buf, n) != 0 ||
                ctr_crypt(c, buf + 4, packet_length) != 0)
                return -1;
        } else {
            if (ctr_crypt(c, buf + c->block, n - c->block) != 0 ||
                mac_verify(c, seq, buf, n) != 0)
                return -1;
        }
        break;
    default:
        return -1;
    }
    size_t pad = buf[4];
    if (pad < 4 || pad >= packet_length)
        return -1;
    *payload = buf + 5;
    *payload_len = packet_length - 1 - pad;
    return 0;
}
