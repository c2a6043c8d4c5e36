/* Key exchange for coil's SSH server (private to ssh/): our KEXINIT, the
 * negotiation with the client's, curve25519-sha256 (RFC 8731) and key
 * derivation (RFC 4253 section 7.2). Pure functions over payloads: no I/O,
 * no state beyond the arguments (the transport keeps the state).
 *
 * Payloads here start with the message number byte, as they appear in a
 * packet (KEXINIT = 20, KEX_ECDH_INIT = 30, KEX_ECDH_REPLY = 31). */
#ifndef COIL_SSH_SSHKEX_H
#define COIL_SSH_SSHKEX_H

#include <stddef.h>

#include "sshkeys.h"

#define COIL__SSH_MSG_KEXINIT        20
#define COIL__SSH_MSG_NEWKEYS        21
#define COIL__SSH_MSG_KEX_ECDH_INIT  30
#define COIL__SSH_MSG_KEX_ECDH_REPLY 31

/* Longest client KEXINIT coil reads (bigger: the client is refused). */
#define COIL__SSHKEX_MAX_KEXINIT 16384
#define COIL__SSHKEX_NAME        48

/* What negotiation chose (RFC 4253 7.1: the first of the client's names
 * that the server also has). */
typedef struct coil__kexalgs {
    char kex[COIL__SSHKEX_NAME];     /* "curve25519-sha256" or @libssh.org */
    char hostkey[COIL__SSHKEX_NAME]; /* "ssh-ed25519", "ecdsa-sha2-nistp256" */
    char cipher_c2s[COIL__SSHKEX_NAME], cipher_s2c[COIL__SSHKEX_NAME];
    char mac_c2s[COIL__SSHKEX_NAME], mac_s2c[COIL__SSHKEX_NAME]; /* "" for AEAD */
    int strict;     /* the client offered kex-strict-c-v00@openssh.com
                       (only looked at in the first exchange) */
    int ext_info_c; /* the client offered ext-info-c (first exchange) */
    int first_kex_packet_follows;
    int guess_right; /* ... and its guess matched what was chosen */
} coil__kexalgs;

/* Our KEXINIT payload into buf (random cookie). `first`: add
 * kex-strict-s-v00@openssh.com to the kex list (the first exchange only).
 * `have_ecdsa`: offer ecdsa-sha2-nistp256 as a host key algorithm besides
 * ssh-ed25519. Returns the length, or 0 when cap is too small (1024 is
 * enough). */
size_t coil__kex_build_kexinit(unsigned char *buf, size_t cap, int first, int have_ecdsa);

/* Parse the client's KEXINIT payload and negotiate against ours. 0 with
 * *out, or -1 with why ("no common cipher: the client offers 3des-cbc;
 * coil offers chacha20-poly1305@openssh.com,...", "malformed KEXINIT").
 * `first` and `have_ecdsa` as for build. Compression must include "none". */
int coil__kex_negotiate(const unsigned char *payload, size_t len, int first,
                        int have_ecdsa, coil__kexalgs *out, char *why, size_t why_size);

/* The output of a curve25519 exchange. Wipe with coil__kex_result_wipe. */
typedef struct coil__kex_result {
    unsigned char H[32]; /* the exchange hash (session id on the first) */
    unsigned char K[40]; /* the shared secret as an SSH mpint (4-byte
                            length included), for derivation */
    size_t K_len;
} coil__kex_result;
void coil__kex_result_wipe(coil__kex_result *res);

/* Answer the client's KEX_ECDH_INIT payload: make an ephemeral X25519 key,
 * compute the shared secret (an all-zero one is refused), the exchange
 * hash over V_C, V_S (identification lines without CR LF), I_C, I_S (the
 * two KEXINIT payloads), K_S (the host key blob), Q_C, Q_S and K, sign H
 * with `hostkey`, and write the KEX_ECDH_REPLY payload into reply
 * (cap >= 512). 0 with *reply_len and *res, or -1 with why ("malformed
 * ECDH_INIT: the client's key is 31 bytes, not 32", "the shared secret is
 * zero (a low-order key)"). */
int coil__kex_ecdh_reply(const coil__sshkey *hostkey, const char *v_c, const char *v_s,
                         const unsigned char *i_c, size_t i_c_len,
                         const unsigned char *i_s, size_t i_s_len,
                         const unsigned char *init, size_t init_len, unsigned char *reply,
                         size_t cap, size_t *reply_len, coil__kex_result *res, char *why,
                         size_t why_size);

/* ---- for tests only (tests/test_sshkex.c, the fuzz target) ----
 * coil__kex_ecdh_reply with a given ephemeral secret instead of a random
 * one, so known-answer tests are deterministic. Never call it elsewhere. */
int coil__kex_ecdh_reply_fixed(const coil__sshkey *hostkey, const unsigned char eph[32],
                               const char *v_c, const char *v_s, const unsigned char *i_c,
                               size_t i_c_len, const unsigned char *i_s, size_t i_s_len,
                               const unsigned char *init, size_t init_len,
                               unsigned char *reply, size_t cap, size_t *reply_len,
                               coil__kex_result *res, char *why, size_t why_size);
/* The exchange hash H = SHA-256(string V_C || string V_S || string I_C ||
 * string I_S || string K_S || string Q_C || string Q_S || K), K given as an
 * encoded mpint (length included). 0, or -1 when OpenSSL fails. Used by
 * coil__kex_ecdh_reply; exposed for the known-answer tests. */
int coil__kex_exchange_hash(const char *v_c, const char *v_s, const unsigned char *i_c,
                            size_t i_c_len, const unsigned char *i_s, size_t i_s_len,
                            const unsigned char *k_s, size_t k_s_len,
                            const unsigned char q_c[32], const unsigned char q_s[32],
                            const unsigned char *k, size_t k_len, unsigned char H[32]);

/* Derive `need` bytes of key material with letter 'A'..'F' (HASH(K || H ||
 * letter || session_id), extended with HASH(K || H || K1 ...) as RFC 4253
 * 7.2 says) into out (need <= 128). */
void coil__kex_derive(const coil__kex_result *res, const unsigned char *session_id,
                      size_t session_id_len, char letter, unsigned char *out,
                      size_t need);

#endif
