/* coil's SSH server: user authentication; see server_private.h.
 * (Skeleton: filled in by its owner.) */
#include "server_private.h"

void coil__sshd_auth_start(coil__sshd *s)
{
    (void)s;
}
int coil__sshd_auth_packet(coil__sshd *s, const unsigned char *payload, size_t len)
{
    (void)s, (void)payload, (void)len;
    return -1;
}
void coil__sshd_auth_stop(coil__sshd *s)
{
    (void)s;
}
