/* Host keys, user keys, authorized_keys, password hashes; see sshkeys.h.
 * (Skeleton: filled in by its owner.) */
#include "sshkeys.h"

#include <coil/ssh_server.h>

int coil__sshkey_load_host(const char *path, int type, int generate, coil__sshkey **out,
                           coil_failure **err)
{
    (void)path, (void)type, (void)generate, (void)out, (void)err;
    return COIL_ENOTSUP;
}
int coil__sshkey_parse_private(const char *text, size_t len, int type, coil__sshkey **out,
                               coil_failure **err)
{
    (void)text, (void)len, (void)type, (void)out, (void)err;
    return COIL_ENOTSUP;
}
int coil__sshkey_generate(int type, coil__sshkey **out)
{
    (void)type, (void)out;
    return COIL_ENOTSUP;
}
void coil__sshkey_free(coil__sshkey *k)
{
    (void)k;
}
const char *coil__sshkey_name(const coil__sshkey *k)
{
    (void)k;
    return "";
}
const unsigned char *coil__sshkey_blob(const coil__sshkey *k, size_t *len)
{
    (void)k;
    *len = 0;
    return NULL;
}
const char *coil__sshkey_fingerprint(const coil__sshkey *k)
{
    (void)k;
    return "";
}
int coil__sshkey_sign(const coil__sshkey *k, const unsigned char *data, size_t len,
                      unsigned char *sig, size_t cap, size_t *sig_len)
{
    (void)k, (void)data, (void)len, (void)sig, (void)cap, (void)sig_len;
    return -1;
}
int coil__ssh_userkey_check(const char *alg, const unsigned char *blob, size_t blob_len,
                            int allow_sha1, char *why, size_t why_size)
{
    (void)alg, (void)blob, (void)blob_len, (void)allow_sha1, (void)why, (void)why_size;
    return -1;
}
int coil__ssh_userkey_verify(const char *alg, const unsigned char *blob, size_t blob_len,
                             const unsigned char *sig, size_t sig_len,
                             const unsigned char *data, size_t data_len, int allow_sha1,
                             char *why, size_t why_size)
{
    (void)alg, (void)blob, (void)blob_len, (void)sig, (void)sig_len, (void)data,
        (void)data_len, (void)allow_sha1, (void)why, (void)why_size;
    return -1;
}
int coil__authkeys_load(const char *path, coil__authkeys **out, coil_failure **err)
{
    (void)path, (void)out, (void)err;
    return COIL_ENOTSUP;
}
int coil__authkeys_parse(const char *text, size_t len, coil__authkeys **out)
{
    (void)text, (void)len, (void)out;
    return COIL_ENOTSUP;
}
size_t coil__authkeys_count(const coil__authkeys *a)
{
    (void)a;
    return 0;
}
int coil__authkeys_has(const coil__authkeys *a, const unsigned char *blob, size_t len)
{
    (void)a, (void)blob, (void)len;
    return 0;
}
void coil__authkeys_free(coil__authkeys *a)
{
    (void)a;
}
int coil_ssh_password_hash(const char *password, size_t len, char *out, size_t size)
{
    (void)password, (void)len, (void)out, (void)size;
    return COIL_ENOTSUP;
}
int coil_ssh_password_verify(const char *hash, const char *password, size_t len)
{
    (void)hash, (void)password, (void)len;
    return 0;
}
