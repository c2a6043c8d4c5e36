/* Key exchange; see sshkex.h.
 *
 * RFC 4253 7.1 (negotiation), 7.2 (key derivation), RFC 8731
 * (curve25519-sha256), RFC 5656 4 (the ECDH message layout), OpenSSH's
 * PROTOCOL (strict kex, ext-info). */
#include "sshkex.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sodium.h>

#include "sshcrypto.h"
#include "sshwire.h"

/* ---- our algorithm lists (in preference order) ---- */

#define KEX_LIST     "curve25519-sha256,curve25519-sha256@libssh.org"
#define KEX_STRICT_S "kex-strict-s-v00@openssh.com"
#define KEX_STRICT_C "kex-strict-c-v00@openssh.com"
#define EXT_INFO_C   "ext-info-c"
#define HOSTKEY_ED   "ssh-ed25519"
#define HOSTKEY_EC   "ecdsa-sha2-nistp256"
#define CIPHER_LIST                                                                \
    "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com," \
    "aes256-ctr,aes128-ctr"
#define MAC_LIST                                                                 \
    "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha2-256," \
    "hmac-sha2-512"

/* One name-list of the client's KEXINIT may be this long at most. */
#define MAX_NAMELIST 4096

static const char *const kex_names[] = {"curve25519-sha256",
                                        "curve25519-sha256@libssh.org"};
static const char *const cipher_names[] = {
    "chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com", "aes128-gcm@openssh.com",
    "aes256-ctr", "aes128-ctr"};
static const char *const mac_names[] = {"hmac-sha2-256-etm@openssh.com",
                                        "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256",
                                        "hmac-sha2-512"};

size_t coil__kex_build_kexinit(unsigned char *buf, size_t cap, int first, int have_ecdsa)
{
    unsigned char cookie[16];
    coil__sshw w;
    coil__sshw_init(&w, buf, cap);
    coil__sshw_u8(&w, COIL__SSH_MSG_KEXINIT);
    randombytes_buf(cookie, sizeof cookie);
    coil__sshw_bytes(&w, cookie, sizeof cookie);
    coil__sshw_cstring(&w, first ? KEX_LIST "," KEX_STRICT_S : KEX_LIST);
    coil__sshw_cstring(&w, have_ecdsa ? HOSTKEY_ED "," HOSTKEY_EC : HOSTKEY_ED);
    coil__sshw_cstring(&w, CIPHER_LIST);
    coil__sshw_cstring(&w, CIPHER_LIST);
    coil__sshw_cstring(&w, MAC_LIST);
    coil__sshw_cstring(&w, MAC_LIST);
    coil__sshw_cstring(&w, "none");
    coil__sshw_cstring(&w, "none");
    coil__sshw_cstring(&w, "");
    coil__sshw_cstring(&w, "");
    coil__sshw_bool(&w, 0);
    coil__sshw_u32(&w, 0);
    return w.bad ? 0 : w.len;
}

/* ---- negotiation ---- */

#if defined(__GNUC__)
static void set_why(char *why, size_t why_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#endif
static void set_why(char *why, size_t why_size, const char *fmt, ...)
{
    va_list ap;
    if (!why || why_size == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, why_size, fmt, ap);
    va_end(ap);
}

/* The client's list as printable text for a message: at most ~200 bytes,
 * bytes outside printable ASCII as '?', "..." when cut. */
static void printable_list(coil__sshs list, char *out, size_t size)
{
    size_t n = 0, max = size - 4 < 200 ? size - 4 : 200;
    for (size_t i = 0; i < list.len && n < max; i++) {
        unsigned char ch = list.p[i];
        out[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    if (list.len > max) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    if (n == 0) {
        memcpy(out, "(nothing)", 10);
        return;
    }
    out[n] = '\0';
}

/* Check a name-list is well formed (RFC 4251 5: names of 1..64 printable
 * ASCII characters without commas or spaces, separated by single commas;
 * an empty list is allowed). */
static int namelist_ok(coil__sshs list)
{
    size_t start = 0;
    if (list.len == 0)
        return 1;
    for (size_t i = 0; i <= list.len; i++) {
        if (i == list.len || list.p[i] == ',') {
            if (i == start || i - start > 64)
                return 0;
            start = i + 1;
            continue;
        }
        if (list.p[i] <= 0x20 || list.p[i] >= 0x7f)
            return 0;
    }
    return 1;
}

/* The first name of the client's `list` that is one of ours (`names`,
 * count n). Copied into out; 0, or -1 when there is none. */
static int choose(coil__sshs list, const char *const *names, size_t n, char *out)
{
    size_t i = 0;
    while (i < list.len) {
        size_t j = i;
        while (j < list.len && list.p[j] != ',')
            j++;
        for (size_t k = 0; k < n; k++) {
            size_t l = strlen(names[k]);
            if (l == j - i && memcmp(list.p + i, names[k], l) == 0) {
                memcpy(out, names[k], l + 1);
                return 0;
            }
        }
        i = j + 1;
    }
    return -1;
}

/* 1 when the first name of `list` is `name`. */
static int first_is(coil__sshs list, const char *name)
{
    size_t j = 0, n = strlen(name);
    while (j < list.len && list.p[j] != ',')
        j++;
    return j == n && memcmp(list.p, name, n) == 0;
}

static int no_common(const char *what, coil__sshs client, const char *ours, char *why,
                     size_t why_size)
{
    char theirs[256];
    printable_list(client, theirs, sizeof theirs);
    set_why(why, why_size, "no common %s: the client offers %s; coil offers %s", what,
            theirs, ours);
    return -1;
}

int coil__kex_negotiate(const unsigned char *payload, size_t len, int first,
                        int have_ecdsa, coil__kexalgs *out, char *why, size_t why_size)
{
    static const char *const lnames[10] = {"kex algorithms",
                                           "host key algorithms",
                                           "ciphers (client->server)",
                                           "ciphers (server->client)",
                                           "MACs (client->server)",
                                           "MACs (server->client)",
                                           "compression (client->server)",
                                           "compression (server->client)",
                                           "languages (client->server)",
                                           "languages (server->client)"};
    const char *hk_names[2] = {HOSTKEY_ED, HOSTKEY_EC};
    coil__sshr r;
    coil__sshs l[10];
    const unsigned char *cookie;
    uint8_t type;
    uint32_t reserved;
    int follows;

    memset(out, 0, sizeof *out);
    if (len > COIL__SSHKEX_MAX_KEXINIT) {
        set_why(why, why_size, "KEXINIT of %zu bytes refused: coil reads %d at most", len,
                COIL__SSHKEX_MAX_KEXINIT);
        return -1;
    }
    coil__sshr_init(&r, payload, len);
    if (coil__sshr_u8(&r, &type) < 0 || type != COIL__SSH_MSG_KEXINIT) {
        set_why(why, why_size, "malformed KEXINIT: not a KEXINIT message");
        return -1;
    }
    coil__sshr_bytes(&r, &cookie, 16);
    for (int i = 0; i < 10; i++) {
        if (coil__sshr_string(&r, &l[i], MAX_NAMELIST) < 0) {
            set_why(why, why_size,
                    "malformed KEXINIT: the %s name-list is cut short or longer than %d "
                    "bytes",
                    lnames[i], MAX_NAMELIST);
            return -1;
        }
        if (!namelist_ok(l[i])) {
            set_why(why, why_size,
                    "malformed KEXINIT: the %s name-list is not a valid "
                    "comma-separated list of names",
                    lnames[i]);
            return -1;
        }
    }
    coil__sshr_bool(&r, &follows);
    coil__sshr_u32(&r, &reserved);
    if (coil__sshr_done(&r, 0) < 0) {
        set_why(why, why_size, "%s",
                r.bad ? "malformed KEXINIT: cut short after the name-lists"
                      : "malformed KEXINIT: extra bytes after the reserved field");
        return -1;
    }
    (void)reserved; /* RFC 4253: reserved for future extension, ignored */

    /* kex: the client's pseudo-algorithms are never among kex_names, so
     * they are never chosen. */
    if (choose(l[0], kex_names, 2, out->kex) < 0)
        return no_common("key exchange algorithm", l[0], KEX_LIST, why, why_size);
    if (choose(l[1], hk_names, have_ecdsa ? 2 : 1, out->hostkey) < 0)
        return no_common("host key algorithm", l[1],
                         have_ecdsa ? HOSTKEY_ED "," HOSTKEY_EC : HOSTKEY_ED, why,
                         why_size);
    if (choose(l[2], cipher_names, 5, out->cipher_c2s) < 0)
        return no_common("cipher (client->server)", l[2], CIPHER_LIST, why, why_size);
    if (choose(l[3], cipher_names, 5, out->cipher_s2c) < 0)
        return no_common("cipher (server->client)", l[3], CIPHER_LIST, why, why_size);
    if (!coil__sshc_is_aead(out->cipher_c2s) &&
        choose(l[4], mac_names, 4, out->mac_c2s) < 0)
        return no_common("MAC (client->server)", l[4], MAC_LIST, why, why_size);
    if (!coil__sshc_is_aead(out->cipher_s2c) &&
        choose(l[5], mac_names, 4, out->mac_s2c) < 0)
        return no_common("MAC (server->client)", l[5], MAC_LIST, why, why_size);
    if (!coil__sshs_list_has(l[6], "none"))
        return no_common("compression (client->server)", l[6], "none", why, why_size);
    if (!coil__sshs_list_has(l[7], "none"))
        return no_common("compression (server->client)", l[7], "none", why, why_size);
    /* Languages: nothing to choose (RFC 4253: may be empty; coil uses none). */

    if (first) {
        out->strict = coil__sshs_list_has(l[0], KEX_STRICT_C);
        out->ext_info_c = coil__sshs_list_has(l[0], EXT_INFO_C);
    }
    out->first_kex_packet_follows = follows;
    if (follows)
        out->guess_right = first_is(l[0], out->kex) && first_is(l[1], out->hostkey);
    return 0;
}

/* ---- curve25519-sha256 ---- */

void coil__kex_result_wipe(coil__kex_result *res)
{
    sodium_memzero(res, sizeof *res);
}

/* SHA-256 over a chain of updates (one-shot helpers below). */
typedef struct hasher {
    EVP_MD_CTX *ctx;
    int bad;
} hasher;

static void h_init(hasher *h)
{
    h->ctx = EVP_MD_CTX_new();
    h->bad = !h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1;
}
static void h_bytes(hasher *h, const void *p, size_t n)
{
    if (!h->bad && n > 0 && EVP_DigestUpdate(h->ctx, p, n) != 1)
        h->bad = 1;
}
static void h_string(hasher *h, const void *p, size_t n)
{
    unsigned char l[4];
    coil__ssh_put32(l, (uint32_t)n);
    h_bytes(h, l, 4);
    h_bytes(h, p, n);
}
static int h_final(hasher *h, unsigned char out[32])
{
    unsigned int n = 0;
    if (!h->bad && EVP_DigestFinal_ex(h->ctx, out, &n) != 1)
        h->bad = 1;
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
    return h->bad || n != 32 ? -1 : 0;
}

int coil__kex_exchange_hash(const char *v_c, const char *v_s, const unsigned char *i_c,
                            size_t i_c_len, const unsigned char *i_s, size_t i_s_len,
                            const unsigned char *k_s, size_t k_s_len,
                            const unsigned char q_c[32], const unsigned char q_s[32],
                            const unsigned char *k, size_t k_len, unsigned char H[32])
{
    hasher h;
    h_init(&h);
    h_string(&h, v_c, strlen(v_c));
    h_string(&h, v_s, strlen(v_s));
    h_string(&h, i_c, i_c_len);
    h_string(&h, i_s, i_s_len);
    h_string(&h, k_s, k_s_len);
    h_string(&h, q_c, 32);
    h_string(&h, q_s, 32);
    h_bytes(&h, k, k_len); /* already an mpint with its length */
    return h_final(&h, H);
}

static int reply_with(const coil__sshkey *hostkey, const unsigned char eph[32],
                      const char *v_c, const char *v_s, const unsigned char *i_c,
                      size_t i_c_len, const unsigned char *i_s, size_t i_s_len,
                      const unsigned char *init, size_t init_len, unsigned char *reply,
                      size_t cap, size_t *reply_len, coil__kex_result *res, char *why,
                      size_t why_size)
{
    coil__sshr r;
    coil__sshw w;
    coil__sshs q_c;
    uint8_t type;
    unsigned char q_s[32], shared[32], sig[COIL__SSHKEY_SIG_MAX];
    const unsigned char *k_s;
    size_t k_s_len = 0, sig_len = 0;
    int rc = -1;

    memset(res, 0, sizeof *res);
    *reply_len = 0;
    coil__sshr_init(&r, init, init_len);
    if (coil__sshr_u8(&r, &type) < 0 || type != COIL__SSH_MSG_KEX_ECDH_INIT) {
        set_why(why, why_size, "malformed ECDH_INIT: not a KEX_ECDH_INIT message");
        return -1;
    }
    if (coil__sshr_string(&r, &q_c, 1024) < 0 || coil__sshr_done(&r, 0) < 0) {
        set_why(why, why_size,
                "malformed ECDH_INIT: the client's key is cut short or followed by extra "
                "bytes");
        return -1;
    }
    if (q_c.len != 32) {
        set_why(why, why_size,
                "malformed ECDH_INIT: the client's key is %zu bytes, not 32", q_c.len);
        return -1;
    }
    if (crypto_scalarmult_base(q_s, eph) != 0) {
        set_why(why, why_size, "curve25519: making the ephemeral key failed");
        return -1;
    }
    /* libsodium refuses (-1) a result of all zeros (a low-order point);
     * check again to be independent of the version. */
    if (crypto_scalarmult(shared, eph, q_c.p) != 0 || sodium_is_zero(shared, 32)) {
        set_why(why, why_size,
                "the shared secret is zero (the client sent a low-order curve25519 "
                "key)");
        goto out;
    }
    /* K: the 32 bytes as a big-endian unsigned number (RFC 8731 3.1). */
    coil__sshw_init(&w, res->K, sizeof res->K);
    coil__sshw_mpint(&w, shared, 32);
    if (w.bad)
        goto out;
    res->K_len = w.len;

    k_s = coil__sshkey_blob(hostkey, &k_s_len);
    if (!k_s || k_s_len == 0) {
        set_why(why, why_size, "the host key has no public blob");
        goto out;
    }
    if (coil__kex_exchange_hash(v_c, v_s, i_c, i_c_len, i_s, i_s_len, k_s, k_s_len, q_c.p,
                                q_s, res->K, res->K_len, res->H) < 0) {
        set_why(why, why_size, "SHA-256 of the exchange hash failed (OpenSSL)");
        goto out;
    }
    if (coil__sshkey_sign(hostkey, res->H, 32, sig, sizeof sig, &sig_len) < 0) {
        set_why(why, why_size, "signing the exchange hash with the %s host key failed",
                coil__sshkey_name(hostkey));
        goto out;
    }
    coil__sshw_init(&w, reply, cap);
    coil__sshw_u8(&w, COIL__SSH_MSG_KEX_ECDH_REPLY);
    coil__sshw_string(&w, k_s, k_s_len);
    coil__sshw_string(&w, q_s, 32);
    coil__sshw_string(&w, sig, sig_len);
    if (w.bad) {
        set_why(why, why_size, "the KEX_ECDH_REPLY does not fit its buffer");
        goto out;
    }
    *reply_len = w.len;
    rc = 0;
out:
    sodium_memzero(shared, sizeof shared);
    if (rc < 0)
        coil__kex_result_wipe(res);
    return rc;
}

int coil__kex_ecdh_reply(const coil__sshkey *hostkey, const char *v_c, const char *v_s,
                         const unsigned char *i_c, size_t i_c_len,
                         const unsigned char *i_s, size_t i_s_len,
                         const unsigned char *init, size_t init_len, unsigned char *reply,
                         size_t cap, size_t *reply_len, coil__kex_result *res, char *why,
                         size_t why_size)
{
    unsigned char eph[32];
    int rc;
    randombytes_buf(eph, sizeof eph);
    rc = reply_with(hostkey, eph, v_c, v_s, i_c, i_c_len, i_s, i_s_len, init, init_len,
                    reply, cap, reply_len, res, why, why_size);
    sodium_memzero(eph, sizeof eph);
    return rc;
}

int coil__kex_ecdh_reply_fixed(const coil__sshkey *hostkey, const unsigned char eph[32],
                               const char *v_c, const char *v_s, const unsigned char *i_c,
                               size_t i_c_len, const unsigned char *i_s, size_t i_s_len,
                               const unsigned char *init, size_t init_len,
                               unsigned char *reply, size_t cap, size_t *reply_len,
                               coil__kex_result *res, char *why, size_t why_size)
{
    return reply_with(hostkey, eph, v_c, v_s, i_c, i_c_len, i_s, i_s_len, init, init_len,
                      reply, cap, reply_len, res, why, why_size);
}

/* ---- key derivation ---- */

void coil__kex_derive(const coil__kex_result *res, const unsigned char *session_id,
                      size_t session_id_len, char letter, unsigned char *out, size_t need)
{
    unsigned char buf[128 + 32];
    size_t have = 0;
    hasher h;
    int bad = 0;

    if (need > 128) {
        memset(out, 0, need);
        return; /* a caller's bug: the contract says need <= 128 */
    }
    /* K1 = HASH(K || H || letter || session_id) */
    h_init(&h);
    h_bytes(&h, res->K, res->K_len);
    h_bytes(&h, res->H, 32);
    h_bytes(&h, &letter, 1);
    h_bytes(&h, session_id, session_id_len);
    bad |= h_final(&h, buf);
    have = 32;
    /* Kn = HASH(K || H || K1 || ... || Kn-1) */
    while (have < need) {
        h_init(&h);
        h_bytes(&h, res->K, res->K_len);
        h_bytes(&h, res->H, 32);
        h_bytes(&h, buf, have);
        bad |= h_final(&h, buf + have);
        have += 32;
    }
    if (bad)
        memset(out, 0, need); /* OpenSSL failed (no memory): the MACs will not match */
    else
        memcpy(out, buf, need);
    sodium_memzero(buf, sizeof buf);
}
