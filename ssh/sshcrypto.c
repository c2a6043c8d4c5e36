/* Packet protection; see sshcrypto.h. (Skeleton: filled in by its owner.) */
#include "sshcrypto.h"

#include <string.h>

int coil__sshc_sizes_of(const char *cipher, const char *mac, coil__sshc_sizes *out)
{
    (void)cipher, (void)mac, (void)out;
    return -1;
}
int coil__sshc_is_aead(const char *cipher)
{
    (void)cipher;
    return 0;
}
void coil__sshc_init_none(coil__sshc *c, int encrypt)
{
    memset(c, 0, sizeof *c);
    c->encrypt = encrypt;
    c->block = 8;
}
int coil__sshc_init(coil__sshc *c, const char *cipher, const char *mac,
                    const unsigned char *iv, const unsigned char *key,
                    const unsigned char *mac_key, int encrypt)
{
    (void)c, (void)cipher, (void)mac, (void)iv, (void)key, (void)mac_key, (void)encrypt;
    return -1;
}
void coil__sshc_free(coil__sshc *c)
{
    (void)c;
}
size_t coil__sshc_seal(coil__sshc *c, uint32_t seq, unsigned char *buf, size_t payload_len)
{
    (void)c, (void)seq, (void)buf, (void)payload_len;
    return 0;
}
size_t coil__sshc_peek_need(const coil__sshc *c)
{
    (void)c;
    return 4;
}
int coil__sshc_peek(coil__sshc *c, uint32_t seq, unsigned char *buf, uint32_t *packet_length)
{
    (void)c, (void)seq, (void)buf, (void)packet_length;
    return -1;
}
size_t coil__sshc_wire_len(const coil__sshc *c, uint32_t packet_length)
{
    return 4 + (size_t)packet_length + c->tag_len;
}
int coil__sshc_open(coil__sshc *c, uint32_t seq, unsigned char *buf,
                    uint32_t packet_length, unsigned char **payload, size_t *payload_len)
{
    (void)c, (void)seq, (void)buf, (void)packet_length, (void)payload, (void)payload_len;
    return -1;
}
