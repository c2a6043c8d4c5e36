/* Key exchange; see sshkex.h. (Skeleton: filled in by its owner.) */
#include "sshkex.h"

#include <string.h>

size_t coil__kex_build_kexinit(unsigned char *buf, size_t cap, int first, int have_ecdsa)
{
    (void)buf, (void)cap, (void)first, (void)have_ecdsa;
    return 0;
}
int coil__kex_negotiate(const unsigned char *payload, size_t len, int first,
                        int have_ecdsa, coil__kexalgs *out, char *why, size_t why_size)
{
    (void)payload, (void)len, (void)first, (void)have_ecdsa, (void)out, (void)why,
        (void)why_size;
    return -1;
}
void coil__kex_result_wipe(coil__kex_result *res)
{
    memset(res, 0, sizeof *res);
}
int coil__kex_ecdh_reply(const coil__sshkey *hostkey, const char *v_c, const char *v_s,
                         const unsigned char *i_c, size_t i_c_len,
                         const unsigned char *i_s, size_t i_s_len,
                         const unsigned char *init, size_t init_len, unsigned char *reply,
                         size_t cap, size_t *reply_len, coil__kex_result *res, char *why,
                         size_t why_size)
{
    (void)hostkey, (void)v_c, (void)v_s, (void)i_c, (void)i_c_len, (void)i_s,
        (void)i_s_len, (void)init, (void)init_len, (void)reply, (void)cap,
        (void)reply_len, (void)res, (void)why, (void)why_size;
    return -1;
}
void coil__kex_derive(const coil__kex_result *res, const unsigned char *session_id,
                      size_t session_id_len, char letter, unsigned char *out, size_t need)
{
    (void)res, (void)session_id, (void)session_id_len, (void)letter;
    memset(out, 0, need);
}
