/* Fuzz target: a client's KEXINIT (ssh/sshkex.c coil__kex_negotiate). The
 * first packet of every SSH connection after the identification line, read
 * before any authentication: every byte comes from whoever connects. The
 * input is negotiated as the whole payload, for both `first` values and
 * with and without an ECDSA host key, and answered as a KEX_ECDH_INIT with
 * a generated ed25519 host key. Checked: no crash, the result is either a
 * refusal with a message or names from coil's own lists, all strings NUL
 * terminated. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sshkex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const kexes[] = {"curve25519-sha256", "curve25519-sha256@libssh.org"};
static const char *const hostkeys[] = {"ssh-ed25519", "ecdsa-sha2-nistp256"};
static const char *const ciphers[] = {"chacha20-poly1305@openssh.com",
                                      "aes256-gcm@openssh.com", "aes128-gcm@openssh.com",
                                      "aes256-ctr", "aes128-ctr"};
static const char *const macs[] = {"", "hmac-sha2-256-etm@openssh.com",
                                   "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256",
                                   "hmac-sha2-512"};

static int one_of(const char *s, size_t size, const char *const *names, size_t n)
{
    if (memchr(s, '\0', size) == NULL)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return 1;
    return 0;
}

#define ONE_OF(field, names) \
    one_of(field, sizeof field, names, sizeof names / sizeof names[0])

static void check(const uint8_t *data, size_t size, int first, int have_ecdsa)
{
    coil__kexalgs a;
    char why[300];
    memset(why, 'Z', sizeof why);
    memset(&a, 0xa5, sizeof a);
    int rc = coil__kex_negotiate(data, size, first, have_ecdsa, &a, why, sizeof why);
    if (rc == -1) {
        if (memchr(why, '\0', sizeof why) == NULL || why[0] == '\0')
            abort();
        return;
    }
    if (rc != 0)
        abort();
    if (!ONE_OF(a.kex, kexes) || !ONE_OF(a.hostkey, hostkeys) ||
        !ONE_OF(a.cipher_c2s, ciphers) || !ONE_OF(a.cipher_s2c, ciphers) ||
        !ONE_OF(a.mac_c2s, macs) || !ONE_OF(a.mac_s2c, macs))
        abort();
    if (!have_ecdsa && strcmp(a.hostkey, "ssh-ed25519") != 0)
        abort();
    if (!first && (a.strict || a.ext_info_c))
        abort();
    if (a.guess_right && !a.first_kex_packet_follows)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static coil__sshkey *key; /* one for the whole run */
    unsigned char reply[512];
    size_t reply_len = 1;
    coil__kex_result res;
    char why[200];
    int rc;

    check(data, size, 1, 1);
    check(data, size, 1, 0);
    check(data, size, 0, 1);
    check(data, size, 0, 0);

    /* The same bytes as a KEX_ECDH_INIT. */
    if (!key && coil__sshkey_generate(COIL__SSHKEY_ED25519, &key) != 0) {
        fprintf(stderr, "fuzz_ssh_kexinit: coil__sshkey_generate(ed25519) failed\n");
        abort();
    }
    why[0] = '\0';
    rc = coil__kex_ecdh_reply(key, "SSH-2.0-c", "SSH-2.0-s", data, size, data, size, data,
                              size, reply, sizeof reply, &reply_len, &res, why,
                              sizeof why);
    if (rc == 0) {
        /* Only a well-formed INIT with a 32-byte key gets here. */
        if (size != 37 || data[0] != COIL__SSH_MSG_KEX_ECDH_INIT || reply_len < 100 ||
            reply[0] != COIL__SSH_MSG_KEX_ECDH_REPLY || res.K_len < 5 || res.K_len > 37)
            abort();
        coil__kex_result_wipe(&res);
    } else if (rc != -1 || reply_len != 0 || why[0] == '\0') {
        abort();
    }
    return 0;
}
