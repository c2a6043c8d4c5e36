/* Host keys, user keys, authorized_keys, password hashes; see sshkeys.h.
 *
 * Host keys are read and written in OpenSSH's own private key format
 * (PROTOCOL.key in openssh-portable): PEM-like armour around base64 of
 *
 *     "openssh-key-v1\0", string cipher, string kdf, string kdfoptions,
 *     uint32 N, string public key blob (N times), string private section
 *
 * where the private section (unencrypted: cipher and kdf "none") is
 * uint32 checkint twice, then per key the agent encoding of the private key
 * and a comment string, padded with bytes 1, 2, 3, ... to a multiple of 8.
 * coil reads exactly one key per file. */
#include "sshkeys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <sodium.h>

#include <coil/error.h>
#include <coil/log.h>
#include <coil/ssh.h>
#include <coil/ssh_server.h>

#include "sshwire.h"

#define LOG_MODULE "ssh"

#define KEY_FILE_MAX  (64 * 1024) /* a host key file is ~0.5 KiB */
#define AUTHKEYS_LINE (16 * 1024)
#define AUTHKEYS_MAX  (64 * 1024 * 1024) /* whole file */
#define NAME_MAX_LEN  64
#define COMMENT_MAX   4096
#define BLOB_MAX      128 /* our own host key blobs */
#define P256_POINT    65  /* 0x04 || x || y */
#define P256_SCALAR   32
#define RSA_MIN_BITS  2048
#define RSA_MAX_BITS  16384
#define RSA_E_MAX     8 /* bytes of the public exponent */
#define FP_LEN        64
#define WRAP          70 /* base64 line length in the file, as ssh-keygen */

static const char MAGIC[] = "openssh-key-v1"; /* written with its NUL */
static const char BEGIN[] = "-----BEGIN OPENSSH PRIVATE KEY-----";
static const char END[] = "-----END OPENSSH PRIVATE KEY-----";

struct coil__sshkey {
    int type;
    unsigned char sk[64]; /* ed25519: seed || public */
    unsigned char q[P256_POINT];
    unsigned char d[P256_SCALAR]; /* ecdsa: private scalar, big-endian */
    EVP_PKEY *pkey;               /* ecdsa */
    unsigned char blob[BLOB_MAX];
    size_t blob_len;
    char fp[FP_LEN];
};

/* libsodium's sodium_init (thread-safe, idempotent): 0, or -1 when it
 * cannot start (no random source). */
static int sodium_ready(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

static const char *type_name(int type)
{
    return type == COIL__SSHKEY_ECDSA_P256 ? "ecdsa-sha2-nistp256" : "ssh-ed25519";
}

static const char *type_word(int type)
{
    return type == COIL__SSHKEY_ECDSA_P256 ? "ecdsa" : "ed25519";
}

/* ---- small helpers ------------------------------------------------------------ */

/* An mpint holding a non-negative number: the value without leading zeros
 * (at most max bytes). 0 or -1 (negative, too long, or a needless leading
 * zero). */
static int get_mpint(coil__sshr *r, coil__sshs *out, size_t max)
{
    coil__sshs s;
    if (coil__sshr_string(r, &s, max + 1))
        return -1;
    if (s.len && (s.p[0] & 0x80))
        return -1; /* negative */
    if (s.len && s.p[0] == 0) {
        if (s.len == 1 || !(s.p[1] & 0x80))
            return -1; /* not minimal */
        s.p++, s.len--;
    }
    if (s.len > max)
        return -1;
    *out = s;
    return 0;
}

static void why_set(char *why, size_t size, const char *fmt, ...) COIL_PRINTF(3, 4);
static void why_set(char *why, size_t size, const char *fmt, ...)
{
    if (!why || size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, size, fmt, ap);
    va_end(ap);
}

/* At most n bytes of p (to a NUL) as printable text in out (size > n),
 * others shown as '?': names from the network, in messages. */
static const char *printable(char *out, const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t i = 0;
    for (; i < n && b[i]; i++)
        out[i] = b[i] >= 0x20 && b[i] < 0x7f ? (char)b[i] : '?';
    out[i] = 0;
    return out;
}

/* ---- ECDSA P-256 with OpenSSL ------------------------------------------------- */

/* An EVP_PKEY for the point q (and the scalar d when not NULL). */
static EVP_PKEY *p256_key(const unsigned char q[P256_POINT], const unsigned char *d,
                          size_t d_len)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    BIGNUM *bn = NULL;
    if (!bld)
        return NULL;
    if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1",
                                         0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, q, P256_POINT))
        goto out;
    if (d) {
        bn = BN_secure_new();
        if (!bn || !BN_bin2bn(d, (int)d_len, bn) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, bn))
            goto out;
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
                          params) <= 0) {
        pkey = NULL;
        goto out;
    }
    /* The point must be on the curve (and match d): a full check. */
    EVP_PKEY_CTX_free(ctx);
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (!ctx || (d ? EVP_PKEY_pairwise_check(ctx) : EVP_PKEY_public_check(ctx)) <= 0) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    BN_clear_free(bn);
    if (params) {
        OSSL_PARAM *priv = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_PRIV_KEY);
        if (priv && priv->data)
            OPENSSL_cleanse(priv->data, priv->data_size);
    }
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

/* ---- host keys -------------------------------------------------------------- */

static int finish_key(coil__sshkey *k)
{
    coil__sshw w;
    coil__sshw_init(&w, k->blob, sizeof k->blob);
    coil__sshw_cstring(&w, type_name(k->type));
    if (k->type == COIL__SSHKEY_ED25519) {
        coil__sshw_string(&w, k->sk + 32, 32);
    } else {
        coil__sshw_cstring(&w, "nistp256");
        coil__sshw_string(&w, k->q, P256_POINT);
    }
    if (w.bad)
        return COIL_EINVAL;
    k->blob_len = w.len;
    if (coil_ssh_fingerprint(k->blob, k->blob_len, k->fp, sizeof k->fp) != 0)
        return COIL_ENOMEM;
    return 0;
}

void coil__sshkey_free(coil__sshkey *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    sodium_memzero(k, sizeof *k);
    free(k);
}

static coil__sshkey *key_new(int type)
{
    coil__sshkey *k = calloc(1, sizeof *k);
    if (k)
        k->type = type;
    return k;
}

int coil__sshkey_generate(int type, coil__sshkey **out)
{
    if (!out || (type != COIL__SSHKEY_ED25519 && type != COIL__SSHKEY_ECDSA_P256))
        return COIL_EINVAL;
    *out = NULL;
    if (sodium_ready())
        return COIL_ESYSTEM;
    coil__sshkey *k = key_new(type);
    if (!k)
        return COIL_ENOMEM;
    if (type == COIL__SSHKEY_ED25519) {
        unsigned char pk[32];
        crypto_sign_keypair(pk, k->sk);
    } else {
        BIGNUM *d = NULL;
        size_t qlen = 0;
        k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        if (!k->pkey ||
            !EVP_PKEY_get_octet_string_param(k->pkey, OSSL_PKEY_PARAM_PUB_KEY, k->q,
                                             sizeof k->q, &qlen) ||
            qlen != P256_POINT || k->q[0] != 0x04 ||
            !EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_PRIV_KEY, &d) ||
            BN_bn2binpad(d, k->d, P256_SCALAR) != P256_SCALAR) {
            BN_clear_free(d);
            coil__sshkey_free(k);
            return COIL_ENOMEM;
        }
        BN_clear_free(d);
    }
    int rc = finish_key(k);
    if (rc) {
        coil__sshkey_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

const char *coil__sshkey_name(const coil__sshkey *k)
{
    return type_name(k->type);
}

const unsigned char *coil__sshkey_blob(const coil__sshkey *k, size_t *len)
{
    *len = k->blob_len;
    return k->blob;
}

const char *coil__sshkey_fingerprint(const coil__sshkey *k)
{
    return k->fp;
}

/* The SSH form of a DER ECDSA-Sig-Value: mpint r, mpint s. */
static int ecdsa_der_to_ssh(const unsigned char *der, size_t der_len, coil__sshw *w)
{
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    unsigned char rb[P256_SCALAR], sb[P256_SCALAR];
    int ok = 0;
    if (!es)
        return -1;
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG_get0(es, &r, &s);
    if (r && s && BN_bn2binpad(r, rb, sizeof rb) == sizeof rb &&
        BN_bn2binpad(s, sb, sizeof sb) == sizeof sb) {
        unsigned char inner[2 * (4 + P256_SCALAR + 1)];
        coil__sshw iw;
        coil__sshw_init(&iw, inner, sizeof inner);
        coil__sshw_mpint(&iw, rb, sizeof rb);
        coil__sshw_mpint(&iw, sb, sizeof sb);
        if (!iw.bad) {
            coil__sshw_string(w, inner, iw.len);
            ok = 1;
        }
    }
    ECDSA_SIG_free(es);
    return ok ? 0 : -1;
}

int coil__sshkey_sign(const coil__sshkey *k, const unsigned char *data, size_t len,
                      unsigned char *sig, size_t cap, size_t *sig_len)
{
    coil__sshw w;
    if (!k || !sig || !sig_len || (!data && len))
        return -1;
    coil__sshw_init(&w, sig, cap);
    coil__sshw_cstring(&w, type_name(k->type));
    if (k->type == COIL__SSHKEY_ED25519) {
        unsigned char s[crypto_sign_BYTES];
        if (crypto_sign_detached(s, NULL, data, len, k->sk) != 0)
            return -1;
        coil__sshw_string(&w, s, sizeof s);
    } else {
        unsigned char der[80];
        size_t der_len = sizeof der;
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        int ok =
            md &&
            EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, k->pkey, NULL) > 0 &&
            EVP_DigestSign(md, der, &der_len, data, len) > 0;
        EVP_MD_CTX_free(md);
        if (!ok || ecdsa_der_to_ssh(der, der_len, &w) != 0)
            return -1;
    }
    if (w.bad)
        return -1;
    *sig_len = w.len;
    return 0;
}

/* ---- reading the private key format ------------------------------------------- */

static int fail(coil_failure **err, int code, const char *fmt, ...) COIL_PRINTF(3, 4);
static int fail(coil_failure **err, int code, const char *fmt, ...)
{
    if (err) {
        char msg[PATH_MAX + 1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        *err = coil_failure_new(COIL_DOMAIN_COIL, code, "%s", msg);
    }
    return code;
}

static const char *find(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, n) == 0)
            return hay + i;
    return NULL;
}

/* Why a text without the OpenSSH armour is not usable, in words. */
static int not_openssh(const char *what, const char *text, size_t len, int type,
                       coil_failure **err)
{
    const char *want = type_word(type);
    if (find(text, len, "-----BEGIN RSA PRIVATE KEY-----"))
        return fail(err, COIL_EINVAL,
                    "%s holds an RSA key; coil needs %s (ssh-keygen -t %s)", what, want,
                    want);
    if (find(text, len, "-----BEGIN DSA PRIVATE KEY-----"))
        return fail(err, COIL_EINVAL,
                    "%s holds a DSA key; coil needs %s (ssh-keygen -t %s)", what, want,
                    want);
    if (find(text, len, "-----BEGIN ENCRYPTED PRIVATE KEY-----") ||
        find(text, len, "Proc-Type: 4,ENCRYPTED"))
        return fail(
            err, COIL_EINVAL,
            "%s is encrypted; coil needs an unencrypted host key in OpenSSH format "
            "(ssh-keygen -t %s -N '')",
            what, want);
    if (find(text, len, "-----BEGIN EC PRIVATE KEY-----") ||
        find(text, len, "-----BEGIN PRIVATE KEY-----"))
        return fail(
            err, COIL_EINVAL,
            "%s is a PEM private key; coil reads OpenSSH's format: convert it with "
            "ssh-keygen -p -N '' -f FILE, or make a new one with ssh-keygen -t %s -N ''",
            what, want);
    return fail(err, COIL_EINVAL,
                "%s is not an OpenSSH private key (no \"%s\" line); make one with "
                "ssh-keygen -t %s -N ''",
                what, BEGIN, want);
}

static int malformed(const char *what, const char *detail, coil_failure **err)
{
    return fail(
        err, COIL_EINVAL,
        "%s is not a valid OpenSSH private key (%s); make a new one with ssh-keygen",
        what, detail);
}

/* The key of the private section, checked against the public blob. */
static int parse_private_key(const char *what, coil__sshr *r, int type, coil__sshs pub,
                             coil__sshkey *k, coil_failure **err)
{
    coil__sshs name, a, b, c;
    if (coil__sshr_string(r, &name, NAME_MAX_LEN))
        return malformed(what, "truncated private section", err);
    if (!coil__sshs_eq(name, type_name(type)))
        return malformed(what, "private and public key types differ", err);
    if (type == COIL__SSHKEY_ED25519) {
        unsigned char pk[32], sk[64];
        if (coil__sshr_string(r, &a, 32) || coil__sshr_string(r, &b, 64) || a.len != 32 ||
            b.len != 64)
            return malformed(what, "bad ed25519 private key", err);
        memcpy(k->sk, b.p, 64);
        crypto_sign_seed_keypair(pk, sk, k->sk);
        int same = sodium_memcmp(sk, k->sk, 64) == 0 && memcmp(pk, a.p, 32) == 0;
        sodium_memzero(sk, sizeof sk);
        if (!same)
            return malformed(what, "ed25519 private key does not match its public key",
                             err);
    } else {
        if (coil__sshr_string(r, &a, 16) || !coil__sshs_eq(a, "nistp256") ||
            coil__sshr_string(r, &b, P256_POINT) || b.len != P256_POINT ||
            get_mpint(r, &c, P256_SCALAR))
            return malformed(what, "bad ecdsa-sha2-nistp256 private key", err);
        memcpy(k->q, b.p, P256_POINT);
        memset(k->d, 0, sizeof k->d);
        memcpy(k->d + P256_SCALAR - c.len, c.p, c.len);
        k->pkey = p256_key(k->q, k->d, P256_SCALAR);
        if (!k->pkey)
            return malformed(what, "ecdsa private key does not match its public key",
                             err);
    }
    int rc = finish_key(k);
    if (rc)
        return fail(err, rc, "%s: cannot encode its public key", what);
    if (pub.len != k->blob_len || memcmp(pub.p, k->blob, pub.len) != 0)
        return malformed(what, "public key does not match the private key", err);
    return 0;
}

static int parse_decoded(const char *what, const unsigned char *buf, size_t len, int type,
                         coil__sshkey *k, coil_failure **err)
{
    coil__sshr r, pr;
    coil__sshs cipher, kdf, kdfopts, pub, priv, comment;
    uint32_t n, check1, check2;
    const unsigned char *magic;
    coil__sshr_init(&r, buf, len);
    if (coil__sshr_bytes(&r, &magic, sizeof MAGIC) ||
        memcmp(magic, MAGIC, sizeof MAGIC) != 0)
        return malformed(what, "no openssh-key-v1 header", err);
    if (coil__sshr_string(&r, &cipher, NAME_MAX_LEN) ||
        coil__sshr_string(&r, &kdf, NAME_MAX_LEN) ||
        coil__sshr_string(&r, &kdfopts, 1024) || coil__sshr_u32(&r, &n))
        return malformed(what, "truncated header", err);
    if (n != 1)
        return malformed(what, "coil reads files holding exactly one key", err);
    if (coil__sshr_string(&r, &pub, KEY_FILE_MAX) ||
        coil__sshr_string(&r, &priv, KEY_FILE_MAX) || coil__sshr_done(&r, 0))
        return malformed(what, "truncated key list", err);

    /* The public key is never encrypted: say first what type it is. */
    char pubtype[NAME_MAX_LEN + 1], shown[NAME_MAX_LEN + 1];
    coil__sshr tr;
    coil__sshr_init(&tr, pub.p, pub.len);
    if (coil__sshr_cstring(&tr, pubtype, sizeof pubtype))
        return malformed(what, "bad public key", err);
    if (strcmp(pubtype, type_name(type)) != 0) {
        const char *what_type = strcmp(pubtype, "ssh-rsa") == 0       ? "an RSA"
                                : strcmp(pubtype, "ssh-dss") == 0     ? "a DSA"
                                : strncmp(pubtype, "ecdsa-", 6) == 0  ? "an ECDSA"
                                : strcmp(pubtype, "ssh-ed25519") == 0 ? "an ed25519"
                                                                      : "a";
        return fail(err, COIL_EINVAL,
                    "%s holds %s key (%s); coil needs %s (%s) here: make one with "
                    "ssh-keygen -t %s%s -N '' -f FILE",
                    what, what_type, printable(shown, pubtype, NAME_MAX_LEN),
                    type_word(type), type_name(type), type_word(type),
                    type == COIL__SSHKEY_ECDSA_P256 ? " -b 256" : "");
    }
    if (!coil__sshs_eq(cipher, "none") || !coil__sshs_eq(kdf, "none"))
        return fail(err, COIL_EINVAL,
                    "%s is encrypted (cipher %s); coil needs an unencrypted host key: "
                    "remove the passphrase with ssh-keygen -p -N '' -f FILE, or make a "
                    "new key with ssh-keygen -t %s -N ''",
                    what, printable(shown, cipher.p, cipher.len), type_word(type));
    if (kdfopts.len != 0)
        return malformed(what, "options for kdf none", err);

    if (priv.len % 8 != 0)
        return malformed(what, "private section not a multiple of 8 bytes", err);
    coil__sshr_init(&pr, priv.p, priv.len);
    if (coil__sshr_u32(&pr, &check1) || coil__sshr_u32(&pr, &check2))
        return malformed(what, "truncated private section", err);
    if (check1 != check2)
        return malformed(what, "check numbers differ", err);
    int rc = parse_private_key(what, &pr, type, pub, k, err);
    if (rc)
        return rc;
    if (coil__sshr_string(&pr, &comment, COMMENT_MAX))
        return malformed(what, "truncated comment", err);
    size_t pad = coil__sshr_left(&pr);
    if (pad >= 8)
        return malformed(what, "more than one key or trailing data", err);
    for (size_t i = 0; i < pad; i++) {
        uint8_t b;
        if (coil__sshr_u8(&pr, &b) || b != (uint8_t)(i + 1))
            return malformed(what, "bad padding", err);
    }
    return 0;
}

static int parse_text(const char *what, const char *text, size_t len, int type,
                      coil__sshkey **out, coil_failure **err)
{
    if (err)
        *err = NULL;
    if (!out || (!text && len) ||
        (type != COIL__SSHKEY_ED25519 && type != COIL__SSHKEY_ECDSA_P256))
        return fail(err, COIL_EINVAL, "%s: invalid argument", what);
    *out = NULL;
    if (len > KEY_FILE_MAX)
        return malformed(what, "larger than 64 KiB", err);
    const char *b = text ? find(text, len, BEGIN) : NULL;
    if (!b)
        return not_openssh(what, text ? text : "", len, type, err);
    b += strlen(BEGIN);
    const char *e = find(b, len - (size_t)(b - text), END);
    if (!e)
        return malformed(what, "no END line", err);
    size_t cap = (size_t)(e - b) / 4 * 3 + 3;
    unsigned char *buf = malloc(cap ? cap : 1);
    if (!buf)
        return fail(err, COIL_ENOMEM, "%s: out of memory", what);
    size_t n = 0;
    const char *end = NULL;
    int rc;
    if (sodium_base642bin(buf, cap, b, (size_t)(e - b), " \t\r\n", &n, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != e) {
        rc = malformed(what, "bad base64", err);
        goto out;
    }
    coil__sshkey *k = key_new(type);
    if (!k) {
        rc = fail(err, COIL_ENOMEM, "%s: out of memory", what);
        goto out;
    }
    rc = parse_decoded(what, buf, n, type, k, err);
    if (rc)
        coil__sshkey_free(k);
    else
        *out = k;
out:
    sodium_memzero(buf, cap);
    free(buf);
    return rc;
}

int coil__sshkey_parse_private(const char *text, size_t len, int type, coil__sshkey **out,
                               coil_failure **err)
{
    return parse_text("the host key text", text, len, type, out, err);
}

/* ---- writing it ------------------------------------------------------------------ */

/* The whole file text (malloc'd, wiped by the caller with its length). */
static char *key_text(const coil__sshkey *k, size_t *text_len)
{
    unsigned char priv[256], bin[512];
    coil__sshw p, w;
    uint32_t check = randombytes_random();
    char *text = NULL;
    coil__sshw_init(&p, priv, sizeof priv);
    coil__sshw_u32(&p, check);
    coil__sshw_u32(&p, check);
    coil__sshw_cstring(&p, type_name(k->type));
    if (k->type == COIL__SSHKEY_ED25519) {
        coil__sshw_string(&p, k->sk + 32, 32);
        coil__sshw_string(&p, k->sk, 64);
    } else {
        coil__sshw_cstring(&p, "nistp256");
        coil__sshw_string(&p, k->q, P256_POINT);
        coil__sshw_mpint(&p, k->d, P256_SCALAR);
    }
    coil__sshw_cstring(&p, "coil host key");
    for (uint8_t i = 1; p.len % 8 != 0; i++)
        coil__sshw_u8(&p, i);

    coil__sshw_init(&w, bin, sizeof bin);
    coil__sshw_bytes(&w, MAGIC, sizeof MAGIC);
    coil__sshw_cstring(&w, "none");
    coil__sshw_cstring(&w, "none");
    coil__sshw_string(&w, "", 0);
    coil__sshw_u32(&w, 1);
    coil__sshw_string(&w, k->blob, k->blob_len);
    coil__sshw_string(&w, priv, p.bad ? 0 : p.len);
    if (p.bad || w.bad)
        goto out;

    size_t b64_size = sodium_base64_encoded_len(w.len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(b64_size);
    size_t cap = sizeof BEGIN + sizeof END + b64_size + b64_size / WRAP + 4;
    text = malloc(cap);
    if (!b64 || !text) {
        free(b64);
        free(text);
        text = NULL;
        goto out;
    }
    sodium_bin2base64(b64, b64_size, bin, w.len, sodium_base64_VARIANT_ORIGINAL);
    size_t n = 0, blen = strlen(b64);
    n += (size_t)snprintf(text + n, cap - n, "%s\n", BEGIN);
    for (size_t i = 0; i < blen; i += WRAP) {
        size_t m = blen - i < WRAP ? blen - i : WRAP;
        memcpy(text + n, b64 + i, m);
        n += m;
        text[n++] = '\n';
    }
    n += (size_t)snprintf(text + n, cap - n, "%s\n", END);
    *text_len = n;
    sodium_memzero(b64, b64_size);
    free(b64);
out:
    sodium_memzero(priv, sizeof priv);
    sodium_memzero(bin, sizeof bin);
    return text;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read fd into buf until end of file or cap bytes; *n counts what was read.
 * 0 or the errno of a failed read (what came before it stays counted). */
static int read_fd(int fd, char *buf, size_t cap, size_t *n)
{
    while (*n < cap) {
        ssize_t r = read(fd, buf + *n, cap - *n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno;
        if (r == 0)
            break;
        *n += (size_t)r;
    }
    return 0;
}

/* Write the whole text to a new file (O_CREAT | O_EXCL, 0600). 0 or errno. */
static int write_new(const char *path, const char *text, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return errno;
    int e = 0;
    errno = 0;
    if (fchmod(fd, 0600) != 0 || write_all(fd, text, len) != 0 || fsync(fd) != 0)
        e = errno ? errno : EIO;
    if (close(fd) != 0 && !e)
        e = errno;
    if (e)
        unlink(path);
    return e;
}

/* Create `path` holding k, whole or not at all: written to a temporary
 * file beside it, then linked to its name (which fails when the name
 * exists, as O_EXCL would). 0, EEXIST when it appeared meanwhile, or
 * another errno. */
static int write_key_file(const char *path, const coil__sshkey *k)
{
    size_t len = 0;
    char *text = key_text(k, &len);
    char tmp[PATH_MAX];
    if (!text)
        return ENOMEM;
    int e = ENAMETOOLONG;
    unsigned rnd = randombytes_random();
    if (snprintf(tmp, sizeof tmp, "%s.new-%08x", path, rnd) < (int)sizeof tmp) {
        e = write_new(tmp, text, len);
        if (!e) {
            e = link(tmp, path) == 0 ? 0 : errno;
            unlink(tmp);
            /* No hard links on this file system: create the name itself. */
            if (e == EPERM || e == ENOTSUP || e == EXDEV || e == EMLINK)
                e = write_new(path, text, len);
        }
    }
    sodium_memzero(text, len);
    free(text);
    return e;
}

int coil__sshkey_load_host(const char *path, int type, int generate, coil__sshkey **out,
                           coil_failure **err)
{
    if (err)
        *err = NULL;
    if (!path || !out ||
        (type != COIL__SSHKEY_ED25519 && type != COIL__SSHKEY_ECDSA_P256))
        return fail(err, COIL_EINVAL, "loading a host key: invalid argument");
    *out = NULL;
    char what[PATH_MAX + 64];
    snprintf(what, sizeof what, "host key file '%s'", path);
    const char *tflag = type == COIL__SSHKEY_ECDSA_P256 ? "ecdsa -b 256" : "ed25519";

    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && generate) {
            coil__sshkey *k = NULL;
            int rc = coil__sshkey_generate(type, &k);
            if (rc)
                return fail(err, rc, "cannot generate a new %s host key for '%s': %s",
                            type_word(type), path, coil_strerror(rc));
            int e = write_key_file(path, k);
            if (e == EEXIST) {
                coil__sshkey_free(k); /* another process made it: read that one */
                continue;
            }
            if (e) {
                coil__sshkey_free(k);
                if (err)
                    *err = coil_failure_from_errno(e,
                                                   "cannot write the new host key file "
                                                   "'%s' (check the directory exists "
                                                   "and is writable)",
                                                   path);
                return COIL_ESYSTEM;
            }
            coil_log(COIL_LOG_INFO, LOG_MODULE, "generated a new %s host key in '%s': %s",
                     type_word(type), path, k->fp);
            *out = k;
            return 0;
        }
        if (fd < 0) {
            int e = errno;
            if (e == ENOENT)
                return fail(
                    err, COIL_ESYSTEM,
                    "host key file '%s' does not exist; create it with ssh-keygen -t %s "
                    "-N '' -f %s (or let coil generate one)",
                    path, tflag, path);
            if (err)
                *err = coil_failure_from_errno(e, "cannot open host key file '%s'", path);
            return COIL_ESYSTEM;
        }
        struct stat st;
        if (fstat(fd, &st) != 0) {
            int e = errno;
            close(fd);
            if (err)
                *err = coil_failure_from_errno(e, "cannot stat host key file '%s'", path);
            return COIL_ESYSTEM;
        }
        if (!S_ISREG(st.st_mode)) {
            close(fd);
            return fail(err, COIL_EINVAL, "host key file '%s' is not a regular file",
                        path);
        }
        if (st.st_mode & 077) {
            close(fd);
            return fail(
                err, COIL_EINVAL,
                "host key file '%s' is readable by others (mode %04o); chmod 600 %s",
                path, (unsigned)(st.st_mode & 07777), path);
        }
        if (st.st_size > KEY_FILE_MAX) {
            close(fd);
            return malformed(what, "larger than 64 KiB", err);
        }
        char *text = malloc(KEY_FILE_MAX + 1);
        if (!text) {
            close(fd);
            return fail(err, COIL_ENOMEM, "reading host key file '%s': out of memory",
                        path);
        }
        size_t n = 0;
        int e = read_fd(fd, text, KEY_FILE_MAX + 1, &n);
        close(fd);
        int rc;
        if (e) {
            if (err)
                *err = coil_failure_from_errno(e, "cannot read host key file '%s'", path);
            rc = COIL_ESYSTEM;
        } else {
            rc = parse_text(what, text, n, type, out, err);
        }
        sodium_memzero(text, n);
        free(text);
        return rc;
    }
    return fail(err, COIL_ESYSTEM, "host key file '%s' keeps appearing and disappearing",
                path);
}

/* ---- user keys ------------------------------------------------------------------ */

typedef enum { UK_ED25519, UK_ECDSA, UK_RSA } uk_kind;

typedef struct userkey {
    uk_kind kind;
    const char *md; /* digest for ECDSA / RSA */
    coil__sshs ed, q, e, n;
    int bits;
} userkey;

/* Parse and check `blob` for algorithm `alg`. */
static int userkey_parse(const char *alg, const unsigned char *blob, size_t blob_len,
                         int allow_sha1, userkey *uk, char *why, size_t why_size)
{
    coil__sshr r;
    coil__sshs type;
    memset(uk, 0, sizeof *uk);
    if (!alg || (!blob && blob_len)) {
        why_set(why, why_size, "no key");
        return -1;
    }
    coil__sshr_init(&r, blob, blob_len);
    if (coil__sshr_string(&r, &type, NAME_MAX_LEN)) {
        why_set(why, why_size, "malformed key blob");
        return -1;
    }
    if (strcmp(alg, "ssh-ed25519") == 0) {
        uk->kind = UK_ED25519;
        if (!coil__sshs_eq(type, alg)) {
            why_set(why, why_size, "key blob is not an ssh-ed25519 key");
            return -1;
        }
        if (coil__sshr_string(&r, &uk->ed, 32) || uk->ed.len != 32 ||
            coil__sshr_done(&r, 0)) {
            why_set(why, why_size, "malformed ssh-ed25519 key");
            return -1;
        }
        return 0;
    }
    if (strcmp(alg, "ecdsa-sha2-nistp256") == 0) {
        coil__sshs curve;
        uk->kind = UK_ECDSA;
        uk->md = "SHA256";
        if (!coil__sshs_eq(type, alg)) {
            why_set(why, why_size, "key blob is not an ecdsa-sha2-nistp256 key");
            return -1;
        }
        if (coil__sshr_string(&r, &curve, 16) || !coil__sshs_eq(curve, "nistp256") ||
            coil__sshr_string(&r, &uk->q, P256_POINT) || uk->q.len != P256_POINT ||
            uk->q.p[0] != 0x04 || coil__sshr_done(&r, 0)) {
            why_set(why, why_size, "malformed ecdsa-sha2-nistp256 key");
            return -1;
        }
        return 0;
    }
    if (strcmp(alg, "rsa-sha2-256") == 0 || strcmp(alg, "rsa-sha2-512") == 0 ||
        strcmp(alg, "ssh-rsa") == 0) {
        uk->kind = UK_RSA;
        uk->md = strcmp(alg, "rsa-sha2-256") == 0   ? "SHA256"
                 : strcmp(alg, "rsa-sha2-512") == 0 ? "SHA512"
                                                    : "SHA1";
        if (!coil__sshs_eq(type, "ssh-rsa")) {
            why_set(why, why_size, "algorithm %s needs an ssh-rsa key", alg);
            return -1;
        }
        if (strcmp(alg, "ssh-rsa") == 0 && !allow_sha1) {
            why_set(why, why_size, "ssh-rsa signs with SHA-1, refused; use rsa-sha2-256");
            return -1;
        }
        if (get_mpint(&r, &uk->e, RSA_E_MAX) || get_mpint(&r, &uk->n, RSA_MAX_BITS / 8) ||
            coil__sshr_done(&r, 0) || uk->e.len == 0 || uk->n.len == 0 ||
            !(uk->e.p[uk->e.len - 1] & 1) || (uk->e.len == 1 && uk->e.p[0] < 3) ||
            !(uk->n.p[uk->n.len - 1] & 1)) {
            why_set(why, why_size, "malformed ssh-rsa key");
            return -1;
        }
        int top = 8;
        while (top > 0 && !(uk->n.p[0] & (1u << (top - 1))))
            top--;
        uk->bits = (int)(uk->n.len - 1) * 8 + top;
        if (uk->bits < RSA_MIN_BITS) {
            why_set(why, why_size, "RSA keys need %d bits at least (this one has %d)",
                    RSA_MIN_BITS, uk->bits);
            return -1;
        }
        return 0;
    }
    char t[NAME_MAX_LEN + 1];
    why_set(why, why_size,
            "public key algorithm '%s' is not supported (coil accepts ssh-ed25519, "
            "ecdsa-sha2-nistp256, rsa-sha2-256, rsa-sha2-512)",
            printable(t, alg, NAME_MAX_LEN));
    return -1;
}

int coil__ssh_userkey_check(const char *alg, const unsigned char *blob, size_t blob_len,
                            int allow_sha1, char *why, size_t why_size)
{
    userkey uk;
    if (userkey_parse(alg, blob, blob_len, allow_sha1, &uk, why, why_size))
        return -1;
    if (uk.kind == UK_ECDSA) {
        EVP_PKEY *pk = p256_key(uk.q.p, NULL, 0);
        if (!pk) {
            why_set(why, why_size, "ecdsa-sha2-nistp256 key is not a point on the curve");
            return -1;
        }
        EVP_PKEY_free(pk);
    }
    return 0;
}

static EVP_PKEY *rsa_key(const userkey *uk)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    BIGNUM *n = BN_bin2bn(uk->n.p, (int)uk->n.len, NULL);
    BIGNUM *e = BN_bin2bn(uk->e.p, (int)uk->e.len, NULL);
    if (!bld || !n || !e || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
out:
    BN_free(n);
    BN_free(e);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

static int digest_verify(EVP_PKEY *pk, const char *md, const unsigned char *sig,
                         size_t sig_len, const unsigned char *data, size_t data_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit_ex(ctx, NULL, md, NULL, NULL, pk, NULL) > 0 &&
             EVP_DigestVerify(ctx, sig, sig_len, data, data_len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* The DER ECDSA-Sig-Value of the SSH form (mpint r, mpint s). */
static int ecdsa_ssh_to_der(coil__sshs in, unsigned char *der, size_t cap,
                            size_t *der_len)
{
    coil__sshr r;
    coil__sshs rs, ss;
    coil__sshr_init(&r, in.p, in.len);
    if (get_mpint(&r, &rs, P256_SCALAR) || get_mpint(&r, &ss, P256_SCALAR) ||
        coil__sshr_done(&r, 0) || rs.len == 0 || ss.len == 0)
        return -1;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *br = BN_bin2bn(rs.p, (int)rs.len, NULL);
    BIGNUM *bs = BN_bin2bn(ss.p, (int)ss.len, NULL);
    int rc = -1;
    if (!es || !br || !bs || !ECDSA_SIG_set0(es, br, bs)) {
        BN_free(br);
        BN_free(bs);
        goto out;
    }
    int n = i2d_ECDSA_SIG(es, NULL);
    if (n > 0 && (size_t)n <= cap) {
        unsigned char *p = der;
        if (i2d_ECDSA_SIG(es, &p) == n) {
            *der_len = (size_t)n;
            rc = 0;
        }
    }
out:
    ECDSA_SIG_free(es);
    return rc;
}

int coil__ssh_userkey_verify(const char *alg, const unsigned char *blob, size_t blob_len,
                             const unsigned char *sig, size_t sig_len,
                             const unsigned char *data, size_t data_len, int allow_sha1,
                             char *why, size_t why_size)
{
    userkey uk;
    coil__sshr r;
    coil__sshs salg, s;
    if (userkey_parse(alg, blob, blob_len, allow_sha1, &uk, why, why_size))
        return -1;
    if ((!sig && sig_len) || (!data && data_len)) {
        why_set(why, why_size, "no signature");
        return -1;
    }
    coil__sshr_init(&r, sig, sig_len);
    if (coil__sshr_string(&r, &salg, NAME_MAX_LEN) ||
        coil__sshr_string(&r, &s, RSA_MAX_BITS / 8) || coil__sshr_done(&r, 0)) {
        why_set(why, why_size, "malformed signature blob");
        return -1;
    }
    if (!coil__sshs_eq(salg, alg)) {
        char t[NAME_MAX_LEN + 1];
        why_set(why, why_size, "signature is of algorithm '%s', the request said '%s'",
                printable(t, salg.p, salg.len), alg);
        return -1;
    }
    switch (uk.kind) {
    case UK_ED25519:
        if (s.len != crypto_sign_BYTES ||
            crypto_sign_verify_detached(s.p, data, data_len, uk.ed.p) != 0) {
            why_set(why, why_size, "ssh-ed25519 signature does not verify");
            return -1;
        }
        return 0;
    case UK_ECDSA: {
        unsigned char der[80];
        size_t der_len = 0;
        if (ecdsa_ssh_to_der(s, der, sizeof der, &der_len) != 0) {
            why_set(why, why_size, "malformed ecdsa-sha2-nistp256 signature");
            return -1;
        }
        EVP_PKEY *pk = p256_key(uk.q.p, NULL, 0);
        if (!pk) {
            why_set(why, why_size, "ecdsa-sha2-nistp256 key is not a point on the curve");
            return -1;
        }
        int rc = digest_verify(pk, uk.md, der, der_len, data, data_len);
        EVP_PKEY_free(pk);
        if (rc)
            why_set(why, why_size, "ecdsa-sha2-nistp256 signature does not verify");
        return rc;
    }
    case UK_RSA: {
        unsigned char padded[RSA_MAX_BITS / 8];
        size_t mod = uk.n.len;
        if (s.len == 0 || s.len > mod) {
            why_set(why, why_size, "%s signature of %zu bytes for a %d-bit key", alg,
                    s.len, uk.bits);
            return -1;
        }
        /* A signature shorter than the modulus had leading zero bytes
         * dropped by its signer; OpenSSH accepts it, so does coil. */
        memset(padded, 0, mod - s.len);
        memcpy(padded + (mod - s.len), s.p, s.len);
        EVP_PKEY *pk = rsa_key(&uk);
        if (!pk) {
            why_set(why, why_size, "cannot use this ssh-rsa key");
            return -1;
        }
        int rc = digest_verify(pk, uk.md, padded, mod, data, data_len);
        EVP_PKEY_free(pk);
        if (rc)
            why_set(why, why_size, "%s signature does not verify", alg);
        return rc;
    }
    }
    return -1;
}

/* ---- authorized_keys ----------------------------------------------------------- */

typedef struct authkey {
    unsigned char *blob;
    size_t len;
} authkey;

struct coil__authkeys {
    authkey *keys;
    size_t n, cap;
};

size_t coil__authkeys_count(const coil__authkeys *a)
{
    return a ? a->n : 0;
}

void coil__authkeys_free(coil__authkeys *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        free(a->keys[i].blob);
    free(a->keys);
    free(a);
}

int coil__authkeys_has(const coil__authkeys *a, const unsigned char *blob, size_t len)
{
    int found = 0;
    if (!a || !blob || len == 0)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->keys[i].len == len)
            found |= sodium_memcmp(a->keys[i].blob, blob, len) == 0;
    return found;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* A key type name as OpenSSH writes it first on a line. */
static int looks_like_type(const char *s, size_t n)
{
    static const char *const names[] = {"ssh-ed25519",
                                        "ssh-rsa",
                                        "ssh-dss",
                                        "ecdsa-sha2-nistp256",
                                        "ecdsa-sha2-nistp384",
                                        "ecdsa-sha2-nistp521"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0)
            return 1;
    /* sk-..., ...-cert-v01@openssh.com and other names with '@' */
    if (n > 3 && n <= NAME_MAX_LEN && (memcmp(s, "sk-", 3) == 0 || memchr(s, '@', n)))
        return !memchr(s, '=', n) && !memchr(s, '"', n);
    return 0;
}

/* Decode "TYPE BASE64" at s (n bytes, from the type). 1 and the blob when
 * the base64 holds a key of that type, else 0. */
static int decode_key(const char *s, size_t n, unsigned char **blob, size_t *blob_len)
{
    size_t t = 0;
    while (t < n && !is_space(s[t]))
        t++;
    if (!looks_like_type(s, t))
        return 0;
    size_t b = t;
    while (b < n && is_space(s[b]))
        b++;
    size_t e = b;
    while (e < n && !is_space(s[e]))
        e++;
    if (e == b)
        return 0;
    size_t cap = (e - b) / 4 * 3 + 3, len = 0;
    unsigned char *buf = malloc(cap);
    if (!buf)
        return -1;
    char type[NAME_MAX_LEN + 1];
    coil__sshr r;
    if (sodium_base642bin(buf, cap, s + b, e - b, NULL, &len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        goto bad;
    coil__sshr_init(&r, buf, len);
    if (coil__sshr_cstring(&r, type, sizeof type) || strlen(type) != t ||
        memcmp(type, s, t) != 0)
        goto bad;
    *blob = buf;
    *blob_len = len;
    return 1;
bad:
    free(buf);
    return 0;
}

/* The end of an options field: up to the first space outside quotes. */
static size_t skip_options(const char *s, size_t n)
{
    size_t i = 0;
    int quoted = 0;
    for (; i < n; i++) {
        if (s[i] == '\\' && quoted && i + 1 < n)
            i++;
        else if (s[i] == '"')
            quoted = !quoted;
        else if (!quoted && is_space(s[i]))
            break;
    }
    return i;
}

static int add_key(coil__authkeys *a, unsigned char *blob, size_t len)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        authkey *k = realloc(a->keys, cap * sizeof *k);
        if (!k)
            return COIL_ENOMEM;
        a->keys = k;
        a->cap = cap;
    }
    a->keys[a->n].blob = blob;
    a->keys[a->n].len = len;
    a->n++;
    return 0;
}

static int parse_line(coil__authkeys *a, const char *name, size_t lineno, const char *s,
                      size_t n)
{
    while (n && (s[n - 1] == '\r' || s[n - 1] == '\n'))
        n--;
    size_t i = 0;
    while (i < n && is_space(s[i]))
        i++;
    if (i == n || s[i] == '#')
        return 0;
    if (n > AUTHKEYS_LINE) {
        coil_log(COIL_LOG_WARN, LOG_MODULE, "%s line %zu: longer than %d bytes, skipped",
                 name, lineno, AUTHKEYS_LINE);
        return 0;
    }
    unsigned char *blob = NULL;
    size_t len = 0;
    int rc = decode_key(s + i, n - i, &blob, &len);
    if (rc < 0)
        return COIL_ENOMEM;
    if (rc == 1) {
        if (add_key(a, blob, len) != 0) {
            free(blob);
            return COIL_ENOMEM;
        }
        return 0;
    }
    size_t o = skip_options(s + i, n - i);
    size_t k = i + o;
    while (k < n && is_space(s[k]))
        k++;
    rc = k < n ? decode_key(s + k, n - k, &blob, &len) : 0;
    if (rc < 0)
        return COIL_ENOMEM;
    if (rc == 1) {
        char t[64];
        free(blob);
        coil_log(
            COIL_LOG_WARN, LOG_MODULE,
            "%s line %zu: the key has options (%s%s); coil does not apply them, so the "
            "line is skipped",
            name, lineno, printable(t, s + i, o > 60 ? 60 : o), o > 60 ? "..." : "");
        return 0;
    }
    coil_log(COIL_LOG_WARN, LOG_MODULE, "%s line %zu: not a key coil can read, skipped",
             name, lineno);
    return 0;
}

static int parse_all(const char *name, const char *text, size_t len, coil__authkeys **out)
{
    *out = NULL;
    coil__authkeys *a = calloc(1, sizeof *a);
    if (!a)
        return COIL_ENOMEM;
    size_t start = 0, lineno = 0;
    while (start < len) {
        const char *nl = memchr(text + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - text) : len;
        lineno++;
        int rc = parse_line(a, name, lineno, text + start, end - start);
        if (rc) {
            coil__authkeys_free(a);
            return rc;
        }
        start = end + 1;
    }
    *out = a;
    return 0;
}

int coil__authkeys_parse(const char *text, size_t len, coil__authkeys **out)
{
    if (!out || (!text && len))
        return COIL_EINVAL;
    return parse_all("authorized_keys", text, len, out);
}

int coil__authkeys_load(const char *path, coil__authkeys **out, coil_failure **err)
{
    if (err)
        *err = NULL;
    if (!path || !out)
        return fail(err, COIL_EINVAL, "loading authorized_keys: invalid argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (err)
            *err = coil_failure_from_errno(errno, "cannot open authorized_keys file '%s'",
                                           path);
        return COIL_ESYSTEM;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        if (err)
            *err =
                coil_failure_from_errno(e, "cannot stat authorized_keys file '%s'", path);
        return COIL_ESYSTEM;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > AUTHKEYS_MAX) {
        close(fd);
        return fail(err, COIL_EINVAL,
                    "authorized_keys file '%s' is not a regular file of at most 64 MiB",
                    path);
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *text = malloc(cap);
    if (!text) {
        close(fd);
        return fail(err, COIL_ENOMEM, "reading authorized_keys file '%s': out of memory",
                    path);
    }
    int e = read_fd(fd, text, cap, &n);
    close(fd);
    if (e) {
        free(text);
        if (err)
            *err =
                coil_failure_from_errno(e, "cannot read authorized_keys file '%s'", path);
        return COIL_ESYSTEM;
    }
    /* A file that grew meanwhile is read up to its size at open time + 1;
     * the rest waits for the next load. */
    char name[PATH_MAX + 64];
    snprintf(name, sizeof name, "authorized_keys file '%s'", path);
    int rc = parse_all(name, text, n, out);
    free(text);
    if (rc)
        return fail(err, rc, "reading %s: %s", name, coil_strerror(rc));
    return 0;
}

/* ---- password hashes --------------------------------------------------------------- */

static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static char dummy_hash[crypto_pwhash_STRBYTES];

static void make_dummy(void)
{
    unsigned char pw[16];
    if (sodium_ready()) {
        dummy_hash[0] = 0;
        return;
    }
    randombytes_buf(pw, sizeof pw);
    if (crypto_pwhash_str(dummy_hash, (const char *)pw, sizeof pw,
                          crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        dummy_hash[0] = 0;
    sodium_memzero(pw, sizeof pw);
}

int coil_ssh_password_hash(const char *password, size_t len, char *out, size_t size)
{
    if ((!password && len) || !out || size < crypto_pwhash_STRBYTES)
        return COIL_EINVAL;
    if (sodium_ready())
        return COIL_ESYSTEM;
    if (crypto_pwhash_str(out, password ? password : "", len,
                          crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        return COIL_ENOMEM;
    return 0;
}

int coil_ssh_password_verify(const char *hash, const char *password, size_t len)
{
    if (!password && len)
        return 0;
    if (!password)
        password = "";
    if (sodium_ready())
        return 0;
    int good =
        hash && strnlen(hash, crypto_pwhash_STRBYTES) < crypto_pwhash_STRBYTES &&
        (strncmp(hash, "$argon2id$", 10) == 0 || strncmp(hash, "$argon2i$", 9) == 0) &&
        crypto_pwhash_str_needs_rehash(hash, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                       crypto_pwhash_MEMLIMIT_INTERACTIVE) >= 0;
    if (!good) {
        /* Spend the time a real check takes, then say no. */
        pthread_once(&dummy_once, make_dummy);
        if (dummy_hash[0] && crypto_pwhash_str_verify(dummy_hash, password, len) == 0)
            return 0; /* a random password: never */
        return 0;
    }
    return crypto_pwhash_str_verify(hash, password, len) == 0;
}
