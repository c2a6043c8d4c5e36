/* coil's SSH key exchange (ssh/sshkex.c): our KEXINIT, negotiation with a
 * client's (RFC 4253 7.1, OpenSSH's strict kex and ext-info-c),
 * curve25519-sha256 (RFC 8731) and key derivation (RFC 4253 7.2).
 *
 * The known answers in ssh/sshkex_vectors.h come from
 * tests/ssh/make_sshkex_vectors.py: Python's hashlib and python3-cryptography
 * computing the same exchange independently of coil. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "sshkex.h"
#include "sshwire.h"
#include "testutil.h"

#include "ssh/sshkex_vectors.h"

#define OUR_CIPHERS                                                                \
    "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com," \
    "aes256-ctr,aes128-ctr"
#define OUR_MACS                                                                 \
    "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha2-256," \
    "hmac-sha2-512"

/* A client KEXINIT. */
typedef struct client {
    const char *kex, *hostkey, *c_cs, *c_sc, *m_cs, *m_sc, *z_cs, *z_sc, *l_cs, *l_sc;
    int follows;
} client;

static client openssh(void)
{
    /* What OpenSSH 9.2's ssh sends (its default lists, abridged). */
    client c = {
        "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,"
        "diffie-hellman-group14-sha256,ext-info-c,kex-strict-c-v00@openssh.com",
        "ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256,ssh-ed25519,rsa-sha2-512",
        "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,"
        "aes128-gcm@openssh.com,aes256-gcm@openssh.com",
        "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,"
        "aes128-gcm@openssh.com,aes256-gcm@openssh.com",
        "umac-64-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh."
        "com,"
        "hmac-sha1-etm@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1",
        "umac-64-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh."
        "com,"
        "hmac-sha1-etm@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1",
        "none,zlib@openssh.com",
        "none,zlib@openssh.com",
        "",
        "",
        0};
    return c;
}

static size_t build(const client *c, unsigned char *buf, size_t cap)
{
    static const unsigned char cookie[16] = {1, 2, 3,  4,  5,  6,  7,
                                             8, 9, 10, 11, 12, 13, 14};
    coil__sshw w;
    coil__sshw_init(&w, buf, cap);
    coil__sshw_u8(&w, COIL__SSH_MSG_KEXINIT);
    coil__sshw_bytes(&w, cookie, 16);
    coil__sshw_cstring(&w, c->kex);
    coil__sshw_cstring(&w, c->hostkey);
    coil__sshw_cstring(&w, c->c_cs);
    coil__sshw_cstring(&w, c->c_sc);
    coil__sshw_cstring(&w, c->m_cs);
    coil__sshw_cstring(&w, c->m_sc);
    coil__sshw_cstring(&w, c->z_cs);
    coil__sshw_cstring(&w, c->z_sc);
    coil__sshw_cstring(&w, c->l_cs);
    coil__sshw_cstring(&w, c->l_sc);
    coil__sshw_bool(&w, c->follows);
    coil__sshw_u32(&w, 0);
    CU_ASSERT_FATAL(!w.bad);
    return w.len;
}

static unsigned char kbuf[2 * COIL__SSHKEX_MAX_KEXINIT];
static char why[512];

/* Negotiate client c; returns the result code, *a filled. */
static int nego(const client *c, int first, int have_ecdsa, coil__kexalgs *a)
{
    size_t n = build(c, kbuf, sizeof kbuf);
    why[0] = '\0';
    return coil__kex_negotiate(kbuf, n, first, have_ecdsa, a, why, sizeof why);
}

/* ---- our KEXINIT ---- */

static void read_lists(const unsigned char *p, size_t n, char lists[10][512],
                       int *follows)
{
    coil__sshr r;
    uint8_t type;
    const unsigned char *cookie;
    uint32_t reserved = 1;
    coil__sshr_init(&r, p, n);
    coil__sshr_u8(&r, &type);
    CU_ASSERT(type == COIL__SSH_MSG_KEXINIT);
    coil__sshr_bytes(&r, &cookie, 16);
    for (int i = 0; i < 10; i++)
        coil__sshr_cstring(&r, lists[i], 512);
    coil__sshr_bool(&r, follows);
    coil__sshr_u32(&r, &reserved);
    CU_ASSERT(coil__sshr_done(&r, 0) == 0);
    CU_ASSERT(reserved == 0);
}

static void test_build_kexinit(void)
{
    unsigned char a[1024], b[1024];
    char l[10][512];
    int follows = -1;
    size_t na = coil__kex_build_kexinit(a, sizeof a, 1, 0);
    size_t nb = coil__kex_build_kexinit(b, sizeof b, 1, 0);
    CU_ASSERT_FATAL(na > 0 && na == nb);
    /* The cookie is random, the rest the same. */
    CU_ASSERT(memcmp(a + 1, b + 1, 16) != 0);
    CU_ASSERT(memcmp(a + 17, b + 17, na - 17) == 0);

    read_lists(a, na, l, &follows);
    CU_ASSERT_STRING_EQUAL(
        l[0],
        "curve25519-sha256,curve25519-sha256@libssh.org,kex-strict-s-v00@openssh.com");
    CU_ASSERT_STRING_EQUAL(l[1], "ssh-ed25519");
    CU_ASSERT_STRING_EQUAL(l[2], OUR_CIPHERS);
    CU_ASSERT_STRING_EQUAL(l[3], OUR_CIPHERS);
    CU_ASSERT_STRING_EQUAL(l[4], OUR_MACS);
    CU_ASSERT_STRING_EQUAL(l[5], OUR_MACS);
    CU_ASSERT_STRING_EQUAL(l[6], "none");
    CU_ASSERT_STRING_EQUAL(l[7], "none");
    CU_ASSERT_STRING_EQUAL(l[8], "");
    CU_ASSERT_STRING_EQUAL(l[9], "");
    CU_ASSERT(follows == 0);

    na = coil__kex_build_kexinit(a, sizeof a, 0, 1);
    CU_ASSERT_FATAL(na > 0);
    read_lists(a, na, l, &follows);
    CU_ASSERT_STRING_EQUAL(l[0], "curve25519-sha256,curve25519-sha256@libssh.org");
    CU_ASSERT_STRING_EQUAL(l[1], "ssh-ed25519,ecdsa-sha2-nistp256");

    /* Too small a buffer: 0, never an overflow. */
    nb = coil__kex_build_kexinit(b, sizeof b, 1, 1);
    CU_ASSERT(coil__kex_build_kexinit(a, nb - 1, 1, 1) == 0);
    CU_ASSERT(coil__kex_build_kexinit(a, 0, 1, 1) == 0);
}

static void test_round_trip(void)
{
    /* Our own KEXINIT read back as if a client sent it. */
    unsigned char a[1024];
    coil__kexalgs k;
    size_t n = coil__kex_build_kexinit(a, sizeof a, 1, 1);
    CU_ASSERT_FATAL(coil__kex_negotiate(a, n, 1, 1, &k, why, sizeof why) == 0);
    CU_ASSERT_STRING_EQUAL(k.kex, "curve25519-sha256");
    CU_ASSERT_STRING_EQUAL(k.hostkey, "ssh-ed25519");
    CU_ASSERT_STRING_EQUAL(k.cipher_c2s, "chacha20-poly1305@openssh.com");
    CU_ASSERT_STRING_EQUAL(k.cipher_s2c, "chacha20-poly1305@openssh.com");
    CU_ASSERT_STRING_EQUAL(k.mac_c2s, "");
    CU_ASSERT_STRING_EQUAL(k.mac_s2c, "");
    CU_ASSERT(k.strict == 0 && k.ext_info_c == 0); /* -s- is not -c- */
    CU_ASSERT(k.first_kex_packet_follows == 0 && k.guess_right == 0);
}

/* ---- negotiation ---- */

static void test_openssh_client(void)
{
    client c = openssh();
    coil__kexalgs k;
    CU_ASSERT_FATAL(nego(&c, 1, 1, &k) == 0);
    CU_ASSERT_STRING_EQUAL(k.kex, "curve25519-sha256");
    /* The certificate type is not ours; the client's next choice wins. */
    CU_ASSERT_STRING_EQUAL(k.hostkey, "ecdsa-sha2-nistp256");
    CU_ASSERT_STRING_EQUAL(k.cipher_c2s, "chacha20-poly1305@openssh.com");
    CU_ASSERT_STRING_EQUAL(k.mac_c2s, "");
    CU_ASSERT(k.strict == 1 && k.ext_info_c == 1);
    CU_ASSERT_FATAL(nego(&c, 1, 0, &k) == 0);
    CU_ASSERT_STRING_EQUAL(k.hostkey, "ssh-ed25519");
}

static void test_client_order_wins(void)
{
    client c = openssh();
    coil__kexalgs k;
    c.kex = "curve25519-sha256@libssh.org,curve25519-sha256";
    c.c_cs = "aes128-ctr,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com";
    c.c_sc = "aes256-ctr,aes128-ctr";
    c.m_cs = "hmac-sha2-512,hmac-sha2-256-etm@openssh.com";
    c.m_sc = "hmac-md5,hmac-sha2-512-etm@openssh.com,hmac-sha2-256";
    CU_ASSERT_FATAL(nego(&c, 1, 0, &k) == 0);
    CU_ASSERT_STRING_EQUAL(k.kex, "curve25519-sha256@libssh.org");
    CU_ASSERT_STRING_EQUAL(k.cipher_c2s, "aes128-ctr");
    CU_ASSERT_STRING_EQUAL(k.cipher_s2c, "aes256-ctr");
    CU_ASSERT_STRING_EQUAL(k.mac_c2s, "hmac-sha2-512");
    CU_ASSERT_STRING_EQUAL(k.mac_s2c, "hmac-sha2-512-etm@openssh.com");
    CU_ASSERT(k.strict == 0 && k.ext_info_c == 0);

    /* One direction AEAD, the other not. */
    c.c_cs = "aes128-gcm@openssh.com";
    c.c_sc = "aes128-ctr";
    CU_ASSERT_FATAL(nego(&c, 1, 0, &k) == 0);
    CU_ASSERT_STRING_EQUAL(k.mac_c2s, "");
    CU_ASSERT_STRING_EQUAL(k.mac_s2c, "hmac-sha2-512-etm@openssh.com");
}

static void test_aead_needs_no_mac(void)
{
    client c = openssh();
    coil__kexalgs k;
    c.c_cs = c.c_sc = "chacha20-poly1305@openssh.com";
    c.m_cs = c.m_sc = "hmac-md5,umac-64@openssh.com";
    CU_ASSERT(nego(&c, 1, 0, &k) == 0);
    CU_ASSERT_STRING_EQUAL(k.mac_c2s, "");
    CU_ASSERT_STRING_EQUAL(k.mac_s2c, "");
    c.c_cs = c.c_sc = "aes256-gcm@openssh.com";
    c.m_cs = c.m_sc = "";
    CU_ASSERT(nego(&c, 1, 0, &k) == 0);
    CU_ASSERT_STRING_EQUAL(k.cipher_c2s, "aes256-gcm@openssh.com");

    /* A non-AEAD cipher needs a common MAC. */
    c.c_sc = "aes128-ctr";
    c.m_sc = "hmac-md5,hmac-sha1";
    CU_ASSERT(nego(&c, 1, 0, &k) == -1);
    CU_ASSERT_STRING_EQUAL(why, "no common MAC (server->client): the client offers "
                                "hmac-md5,hmac-sha1; coil offers " OUR_MACS);
}

static void test_no_common_messages(void)
{
    client c = openssh();
    coil__kexalgs k;
    char longlist[2000];

    c.c_cs = "3des-cbc,aes128-cbc";
    CU_ASSERT(nego(&c, 1, 0, &k) == -1);
    CU_ASSERT_STRING_EQUAL(why, "no common cipher (client->server): the client offers "
                                "3des-cbc,aes128-cbc; coil offers " OUR_CIPHERS);

    c = openssh();
    c.kex = "diffie-hellman-group14-sha1,ext-info-c,kex-strict-c-v00@openssh.com";
    CU_ASSERT(nego(&c, 1, 0, &k) == -1);
    CU_ASSERT(strncmp(why,
                      "no common key exchange algorithm: the client offers "
                      "diffie-hellman-group14-sha1,",
                      80) == 0);
    CU_ASSERT(strstr(why, "coil offers curve25519-sha256,curve25519-sha256@libssh.org") !=
              NULL);

    /* Pseudo-algorithms are never chosen as the kex. */
    c.kex = "ext-info-c,kex-strict-c-v00@openssh.com,kex-strict-s-v00@openssh.com";
    CU_ASSERT(nego(&c, 1, 0, &k) == -1);
    CU_ASSERT(strncmp(why, "no common key exchange algorithm", 32) == 0);

    c = openssh();
    c.hostkey = "ssh-rsa,rsa-sha2-256";
    CU_ASSERT(nego(&c, 1, 1, &k) == -1);
    CU_ASSERT_STRING_EQUAL(why, "no common host key algorithm: the client offers "
                                "ssh-rsa,rsa-sha2-256; coil offers "
                                "ssh-ed25519,ecdsa-sha2-nistp256");
    c.hostkey = "ecdsa-sha2-nistp256";
    CU_ASSERT(nego(&c, 1, 0, &k) == -1);
    CU_ASSERT(strstr(why, "coil offers ssh-ed25519") != NULL);
    CU_ASSERT(nego(&c, 1, 1, &k) == 0);

    c = openssh();
    c.z_sc = "zlib@openssh.com,zlib";
    CU_ASSERT(nego(&c, 1, 0, &k) == -1);
    CU_ASSERT_STRING_EQUAL(why,
                           "no common compression (server->client): the client offers "
                           "zlib@openssh.com,zlib; coil offers none");
    c.z_sc = "zlib,none";
    CU_ASSERT(nego(&c, 1, 0, &k) == 0);

    /* Empty lists, and a long list cut short in the message. */
    c = openssh();
    c.c_sc = "";
    CU_ASSERT(nego(&c, 1, 0, &k) == -1);
    CU_ASSERT(strstr(why, "the client offers (nothing);") != NULL);
    memset(longlist, 'x', sizeof longlist);
    for (size_t i = 10; i < sizeof longlist - 1; i += 11)
        longlist[i] = ',';
    longlist[sizeof longlist - 1] = '\0';
    c.c_sc = longlist;
    CU_ASSERT(nego(&c, 1, 0, &k) == -1);
    CU_ASSERT(strlen(why) < 400);
    CU_ASSERT(strstr(why, "xx...; coil offers chacha20") != NULL);
    /* A small message buffer is never overrun. */
    {
        char small[16];
        size_t n = build(&c, kbuf, sizeof kbuf);
        memset(small, 'Q', sizeof small);
        CU_ASSERT(coil__kex_negotiate(kbuf, n, 1, 0, &k, small, 10) == -1);
        CU_ASSERT(small[9] == '\0' && small[10] == 'Q');
        CU_ASSERT(coil__kex_negotiate(kbuf, n, 1, 0, &k, NULL, 0) == -1);
    }
}

static void test_strict_and_ext_info(void)
{
    client c = openssh();
    coil__kexalgs k;
    CU_ASSERT_FATAL(nego(&c, 1, 0, &k) == 0);
    CU_ASSERT(k.strict == 1 && k.ext_info_c == 1);
    /* Only the first exchange looks at them. */
    CU_ASSERT_FATAL(nego(&c, 0, 0, &k) == 0);
    CU_ASSERT(k.strict == 0 && k.ext_info_c == 0);

    c.kex = "curve25519-sha256,ext-info-c";
    CU_ASSERT_FATAL(nego(&c, 1, 0, &k) == 0);
    CU_ASSERT(k.strict == 0 && k.ext_info_c == 1);
    c.kex = "kex-strict-c-v00@openssh.com,curve25519-sha256";
    CU_ASSERT_FATAL(nego(&c, 1, 0, &k) == 0);
    CU_ASSERT(k.strict == 1 && k.ext_info_c == 0);
    CU_ASSERT_STRING_EQUAL(k.kex, "curve25519-sha256");
    /* Near misses count for nothing. */
    c.kex = "curve25519-sha256,kex-strict-c-v00@openssh.co,ext-info-s,ext-info-cc";
    CU_ASSERT_FATAL(nego(&c, 1, 0, &k) == 0);
    CU_ASSERT(k.strict == 0 && k.ext_info_c == 0);
}

static void test_guess(void)
{
    client c = openssh();
    coil__kexalgs k;
    c.follows = 1;
    c.hostkey = "ssh-ed25519,ecdsa-sha2-nistp256";
    CU_ASSERT_FATAL(nego(&c, 1, 1, &k) == 0);
    CU_ASSERT(k.first_kex_packet_follows == 1 && k.guess_right == 1);

    /* The client's first kex is not ours: its guessed packet is wrong. */
    c.kex = "diffie-hellman-group14-sha256,curve25519-sha256";
    CU_ASSERT_FATAL(nego(&c, 1, 1, &k) == 0);
    CU_ASSERT(k.first_kex_packet_follows == 1 && k.guess_right == 0);

    /* The first host key algorithm is not ours (no ECDSA key here). */
    c.kex = "curve25519-sha256";
    c.hostkey = "ecdsa-sha2-nistp256,ssh-ed25519";
    CU_ASSERT_FATAL(nego(&c, 1, 0, &k) == 0);
    CU_ASSERT(k.first_kex_packet_follows == 1 && k.guess_right == 0);
    CU_ASSERT_FATAL(nego(&c, 1, 1, &k) == 0);
    CU_ASSERT(k.guess_right == 1);

    c.follows = 0;
    CU_ASSERT_FATAL(nego(&c, 1, 1, &k) == 0);
    CU_ASSERT(k.first_kex_packet_follows == 0 && k.guess_right == 0);
}

static int refused(const unsigned char *p, size_t n, const char *want)
{
    coil__kexalgs k;
    why[0] = '\0';
    if (coil__kex_negotiate(p, n, 1, 1, &k, why, sizeof why) != -1)
        return 0;
    return want == NULL || strstr(why, want) != NULL;
}

static void test_malformed(void)
{
    client c = openssh();
    size_t n = build(&c, kbuf, sizeof kbuf);
    coil__kexalgs k;

    CU_ASSERT_FATAL(coil__kex_negotiate(kbuf, n, 1, 1, &k, why, sizeof why) == 0);
    /* Every prefix is refused. */
    for (size_t i = 0; i < n; i++)
        CU_ASSERT(refused(kbuf, i, "KEXINIT"));
    /* Trailing bytes are refused. */
    kbuf[n] = 0;
    CU_ASSERT(refused(kbuf, n + 1, "extra bytes after the reserved field"));
    /* Not a KEXINIT. */
    kbuf[0] = 21;
    CU_ASSERT(refused(kbuf, n, "not a KEXINIT"));
    kbuf[0] = 20;
    /* A list length pointing past the end. */
    coil__ssh_put32(kbuf + 17, 0xffffffffu);
    CU_ASSERT(refused(kbuf, n, "kex algorithms name-list is cut short"));

    /* Bad names: empty, with a space, a control byte, a NUL, 65 bytes. */
    {
        static const char *bad[] = {",aes128-ctr",
                                    "aes128-ctr,",
                                    "aes128-ctr,,aes256-ctr",
                                    "aes128 ctr",
                                    "aes128-ctr\r\n",
                                    "aes\x7f",
                                    ","};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            c = openssh();
            c.c_sc = bad[i];
            n = build(&c, kbuf, sizeof kbuf);
            CU_ASSERT(
                refused(kbuf, n, "ciphers (server->client) name-list is not a valid"));
        }
        c = openssh();
        c.l_cs = "en-US,\x01";
        n = build(&c, kbuf, sizeof kbuf);
        CU_ASSERT(refused(kbuf, n, "languages (client->server)"));

        char name65[66];
        memset(name65, 'a', 65);
        name65[65] = '\0';
        c = openssh();
        c.m_cs = name65;
        n = build(&c, kbuf, sizeof kbuf);
        CU_ASSERT(refused(kbuf, n, "MACs (client->server) name-list is not a valid"));
        name65[64] = '\0'; /* 64 is fine: just not ours */
        n = build(&c, kbuf, sizeof kbuf);
        CU_ASSERT(coil__kex_negotiate(kbuf, n, 1, 1, &k, why, sizeof why) == 0);
    }
    /* A NUL inside a list. */
    c = openssh();
    c.z_cs = "none,zlib";
    n = build(&c, kbuf, sizeof kbuf);
    {
        unsigned char *z = NULL;
        for (size_t i = 0; i + 9 <= n && !z; i++)
            if (memcmp(kbuf + i, "none,zlib", 9) == 0)
                z = kbuf + i;
        CU_ASSERT_FATAL(z != NULL);
        z[4] = '\0';
        CU_ASSERT(
            refused(kbuf, n, "compression (client->server) name-list is not a valid"));
    }
}

static void test_oversized(void)
{
    static char big[5000];
    client c = openssh();
    size_t n;

    /* One list of more than 4 KiB. */
    for (size_t i = 0; i < sizeof big - 1; i++)
        big[i] = (i % 20 == 19) ? ',' : 'a';
    big[sizeof big - 1] = '\0';
    c.l_sc = big;
    n = build(&c, kbuf, sizeof kbuf);
    CU_ASSERT(refused(kbuf, n,
                      "languages (server->client) name-list is cut short or longer "
                      "than 4096 bytes"));
    /* 4096 is still fine. */
    big[4096] = '\0';
    big[4095] = 'a';
    n = build(&c, kbuf, sizeof kbuf);
    CU_ASSERT(coil__kex_negotiate(kbuf, n, 1, 1, &(coil__kexalgs){0}, why, sizeof why) ==
              0);

    /* A whole KEXINIT over the limit: refused before it is parsed. */
    big[4000] = '\0';
    c.l_cs = c.l_sc = c.m_cs = c.m_sc = big; /* 4 * 4004 + the rest > 16384 */
    n = build(&c, kbuf, sizeof kbuf);
    CU_ASSERT_FATAL(n > COIL__SSHKEX_MAX_KEXINIT);
    CU_ASSERT(refused(kbuf, n, "KEXINIT of"));
    CU_ASSERT(strstr(why, "coil reads 16384 at most") != NULL);
}

/* ---- curve25519-sha256 ---- */

typedef struct kcase {
    const unsigned char *q_c, *q_s, *K, *H, *eph_c, *eph_s, *reply, *a, *c, *f, *e2;
    size_t K_len, reply_len;
} kcase;

#define KCASE(T)                                                                    \
    {                                                                               \
        Q_C_##T, Q_S_##T, K_##T, H_##T, EPH_C_##T, EPH_S_##T, REPLY_##T, KEY_A_##T, \
            KEY_C_##T, KEY_F_##T, KEY_E2_##T, sizeof K_##T, sizeof REPLY_##T        \
    }

static const kcase kcases[] = {KCASE(HIGH), KCASE(ZERO), KCASE(PLAIN)};
#define NCASES (sizeof kcases / sizeof kcases[0])

static void test_exchange_hash_known_answers(void)
{
    for (size_t i = 0; i < NCASES; i++) {
        const kcase *kc = &kcases[i];
        unsigned char H[32], q_c[32];
        /* The public keys follow from the secrets. */
        CU_ASSERT(crypto_scalarmult_base(q_c, kc->eph_c) == 0);
        CU_ASSERT(memcmp(q_c, kc->q_c, 32) == 0);
        CU_ASSERT(coil__kex_exchange_hash(V_C, V_S, I_C, sizeof I_C, I_S, sizeof I_S, K_S,
                                          sizeof K_S, kc->q_c, kc->q_s, kc->K, kc->K_len,
                                          H) == 0);
        CU_ASSERT(memcmp(H, kc->H, 32) == 0);
    }
}

static void test_derive_known_answers(void)
{
    for (size_t i = 0; i < NCASES; i++) {
        const kcase *kc = &kcases[i];
        coil__kex_result res;
        unsigned char out[128];
        memset(&res, 0, sizeof res);
        memcpy(res.H, kc->H, 32);
        memcpy(res.K, kc->K, kc->K_len);
        res.K_len = kc->K_len;
        coil__kex_derive(&res, kc->H, 32, 'A', out, 12);
        CU_ASSERT(memcmp(out, kc->a, 12) == 0);
        coil__kex_derive(&res, kc->H, 32, 'C', out, 64);
        CU_ASSERT(memcmp(out, kc->c, 64) == 0);
        coil__kex_derive(&res, kc->H, 32, 'F', out, 128);
        CU_ASSERT(memcmp(out, kc->f, 128) == 0);
        /* A prefix of a longer derivation is the shorter one. */
        coil__kex_derive(&res, kc->H, 32, 'F', out, 33);
        CU_ASSERT(memcmp(out, kc->f, 33) == 0);
        /* A later exchange: the first session id, not this H. */
        coil__kex_derive(&res, SID2, 32, 'E', out, 32);
        CU_ASSERT(memcmp(out, kc->e2, 32) == 0);
        coil__kex_result_wipe(&res);
        CU_ASSERT(res.K_len == 0 && sodium_is_zero(res.K, sizeof res.K));
    }
}

static size_t ecdh_init(unsigned char *buf, const unsigned char *q, size_t qlen)
{
    coil__sshw w;
    coil__sshw_init(&w, buf, 128);
    coil__sshw_u8(&w, COIL__SSH_MSG_KEX_ECDH_INIT);
    coil__sshw_string(&w, q, qlen);
    return w.len;
}

/* The ECDH_INIT refusals happen before the host key is used. */
static int ecdh_refused(const unsigned char *init, size_t len, const char *want)
{
    unsigned char reply[512];
    size_t reply_len = 99;
    coil__kex_result res;
    int rc;
    why[0] = '\0';
    rc = coil__kex_ecdh_reply(NULL, V_C, V_S, I_C, sizeof I_C, I_S, sizeof I_S, init, len,
                              reply, sizeof reply, &reply_len, &res, why, sizeof why);
    if (rc != -1 || reply_len != 0 || strstr(why, want) == NULL) {
        fprintf(stderr, "ecdh: rc %d, why '%s', wanted '%s'\n", rc, why, want);
        return 0;
    }
    return sodium_is_zero((unsigned char *)&res, sizeof res);
}

static void test_ecdh_malformed(void)
{
    unsigned char init[128], q[40];
    size_t n;
    memcpy(q, Q_C_PLAIN, 32);
    n = ecdh_init(init, q, 31);
    CU_ASSERT(ecdh_refused(init, n, "the client's key is 31 bytes, not 32"));
    n = ecdh_init(init, q, 33);
    CU_ASSERT(ecdh_refused(init, n, "the client's key is 33 bytes, not 32"));
    n = ecdh_init(init, q, 0);
    CU_ASSERT(ecdh_refused(init, n, "the client's key is 0 bytes, not 32"));
    n = ecdh_init(init, q, 32);
    init[n] = 0;
    CU_ASSERT(ecdh_refused(init, n + 1, "followed by extra bytes"));
    for (size_t i = 0; i < n; i++)
        CU_ASSERT(ecdh_refused(init, i, "malformed ECDH_INIT"));
    init[0] = 31;
    CU_ASSERT(ecdh_refused(init, n, "not a KEX_ECDH_INIT"));
}

static void test_ecdh_low_order(void)
{
    /* Points of small order on curve25519 (and their non-canonical
     * encodings): the shared secret is zero whatever our key. */
    static const char *const low[] = {
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "0100000000000000000000000000000000000000000000000000000000000080",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    };
    for (size_t i = 0; i < sizeof low / sizeof low[0]; i++) {
        unsigned char q[32], init[128];
        size_t n;
        CU_ASSERT_FATAL(sodium_hex2bin(q, 32, low[i], 64, NULL, NULL, NULL) == 0);
        n = ecdh_init(init, q, 32);
        CU_ASSERT(ecdh_refused(init, n, "the shared secret is zero"));
    }
}

/* The host key of the vectors (needs ssh/sshkeys.c). */
static coil__sshkey *vector_host_key(void)
{
    coil__sshkey *key = NULL;
    coil_failure *err = NULL;
    int rc = coil__sshkey_parse_private(HOST_KEY_TEXT, strlen(HOST_KEY_TEXT),
                                        COIL__SSHKEY_ED25519, &key, &err);
    if (rc != 0 || key == NULL) {
        fprintf(
            stderr,
            "test_sshkex: coil__sshkey_parse_private could not read the vector's "
            "ed25519 host key (rc %d): ssh/sshkeys.c must read OpenSSH private keys\n",
            rc);
        if (err)
            coil_failure_free(err);
        return NULL;
    }
    return key;
}

static void test_ecdh_reply_known_answers(void)
{
    coil__sshkey *key = vector_host_key();
    CU_ASSERT_FATAL(key != NULL);
    for (size_t i = 0; i < NCASES; i++) {
        const kcase *kc = &kcases[i];
        unsigned char init[128], reply[512];
        size_t n = ecdh_init(init, kc->q_c, 32), reply_len = 0;
        coil__kex_result res;
        int rc = coil__kex_ecdh_reply_fixed(key, kc->eph_s, V_C, V_S, I_C, sizeof I_C,
                                            I_S, sizeof I_S, init, n, reply, sizeof reply,
                                            &reply_len, &res, why, sizeof why);
        CU_ASSERT(rc == 0);
        if (rc != 0) {
            fprintf(stderr, "ecdh_reply_fixed: %s\n", why);
            continue;
        }
        CU_ASSERT(res.K_len == kc->K_len && memcmp(res.K, kc->K, kc->K_len) == 0);
        CU_ASSERT(memcmp(res.H, kc->H, 32) == 0);
        /* Ed25519 signs deterministically: the whole reply is known. */
        CU_ASSERT(reply_len == kc->reply_len && memcmp(reply, kc->reply, reply_len) == 0);
        /* Too small a reply buffer is an error, not an overflow. */
        rc = coil__kex_ecdh_reply_fixed(key, kc->eph_s, V_C, V_S, I_C, sizeof I_C, I_S,
                                        sizeof I_S, init, n, reply, kc->reply_len - 1,
                                        &reply_len, &res, why, sizeof why);
        CU_ASSERT(rc == -1 && reply_len == 0 && strstr(why, "does not fit") != NULL);
        coil__kex_result_wipe(&res);
    }
    coil__sshkey_free(key);
}

/* A random exchange, checked from the client's side with libsodium. */
static void test_ecdh_reply_random(void)
{
    coil__sshkey *key = vector_host_key();
    unsigned char c_pk[32], c_sk[32], init[128], reply[512], shared[32], H[32];
    unsigned char kbytes[40], H_first[32] = {0};
    size_t n, reply_len = 0;
    coil__kex_result res;
    CU_ASSERT_FATAL(key != NULL);
    for (int round = 0; round < 2; round++) {
        coil__sshr r;
        coil__sshw w;
        coil__sshs ks, qs, sig, alg, raw;
        uint8_t type = 0;
        crypto_box_keypair(c_pk, c_sk);
        n = ecdh_init(init, c_pk, 32);
        CU_ASSERT_FATAL(coil__kex_ecdh_reply(key, V_C, V_S, I_C, sizeof I_C, I_S,
                                             sizeof I_S, init, n, reply, sizeof reply,
                                             &reply_len, &res, why, sizeof why) == 0);
        coil__sshr_init(&r, reply, reply_len);
        coil__sshr_u8(&r, &type);
        coil__sshr_string(&r, &ks, 512);
        coil__sshr_string(&r, &qs, 64);
        coil__sshr_string(&r, &sig, 512);
        CU_ASSERT_FATAL(coil__sshr_done(&r, 0) == 0);
        CU_ASSERT(type == COIL__SSH_MSG_KEX_ECDH_REPLY);
        CU_ASSERT(ks.len == sizeof K_S && memcmp(ks.p, K_S, sizeof K_S) == 0);
        CU_ASSERT_FATAL(qs.len == 32);
        CU_ASSERT_FATAL(crypto_scalarmult(shared, c_sk, qs.p) == 0);
        coil__sshw_init(&w, kbytes, sizeof kbytes);
        coil__sshw_mpint(&w, shared, 32);
        CU_ASSERT(w.len == res.K_len && memcmp(kbytes, res.K, w.len) == 0);
        CU_ASSERT(coil__kex_exchange_hash(V_C, V_S, I_C, sizeof I_C, I_S, sizeof I_S, K_S,
                                          sizeof K_S, c_pk, qs.p, kbytes, w.len, H) == 0);
        CU_ASSERT(memcmp(H, res.H, 32) == 0);
        /* Fresh ephemeral keys every time. */
        CU_ASSERT(memcmp(H_first, res.H, 32) != 0);
        memcpy(H_first, res.H, 32);
        /* The signature verifies with the host key (RFC 8709). */
        coil__sshr_init(&r, sig.p, sig.len);
        coil__sshr_string(&r, &alg, 64);
        coil__sshr_string(&r, &raw, 64);
        CU_ASSERT_FATAL(coil__sshr_done(&r, 0) == 0);
        CU_ASSERT(coil__sshs_eq(alg, "ssh-ed25519"));
        CU_ASSERT_FATAL(raw.len == 64);
        CU_ASSERT(crypto_sign_verify_detached(raw.p, res.H, 32, K_S + 19) == 0);
        coil__kex_result_wipe(&res);
    }
    sodium_memzero(c_sk, sizeof c_sk);
    sodium_memzero(shared, sizeof shared);
    coil__sshkey_free(key);
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_build_kexinit),
        COIL_TEST(test_round_trip),
        COIL_TEST(test_openssh_client),
        COIL_TEST(test_client_order_wins),
        COIL_TEST(test_aead_needs_no_mac),
        COIL_TEST(test_no_common_messages),
        COIL_TEST(test_strict_and_ext_info),
        COIL_TEST(test_guess),
        COIL_TEST(test_malformed),
        COIL_TEST(test_oversized),
        COIL_TEST(test_exchange_hash_known_answers),
        COIL_TEST(test_derive_known_answers),
        COIL_TEST(test_ecdh_malformed),
        COIL_TEST(test_ecdh_low_order),
        COIL_TEST(test_ecdh_reply_known_answers),
        COIL_TEST(test_ecdh_reply_random),
        {NULL, NULL},
    };
    if (sodium_init() < 0)
        return -1;
    return coil_test_add_suite("sshkex", cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
