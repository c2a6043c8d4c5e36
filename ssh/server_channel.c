/* coil's SSH server: the connection protocol, channels as transports; see
 * server_private.h. (Skeleton: filled in by its owner.) */
#include "server_private.h"

int coil__sshd_conn_packet(coil__sshd *s, const unsigned char *payload, size_t len)
{
    (void)s, (void)payload, (void)len;
    return -1;
}
void coil__sshd_conn_writable(coil__sshd *s)
{
    (void)s;
}
void coil__sshd_conn_lost(coil__sshd *s, const coil_failure *why)
{
    (void)s, (void)why;
}
const coil_ssh_channel_info *coil_ssh_server_channel_info(const coil_transport *t)
{
    (void)t;
    return NULL;
}
int coil_ssh_server_channel_set_exit(coil_transport *t, int status)
{
    (void)t, (void)status;
    return COIL_EINVAL;
}
int coil_ssh_server_channel_write_stderr(coil_transport *t, const void *data, size_t len)
{
    (void)t, (void)data, (void)len;
    return COIL_EINVAL;
}
int coil_ssh_server_channel_on_resize(coil_transport *t,
                                      void (*fn)(void *arg, coil_transport *t), void *arg)
{
    (void)t, (void)fn, (void)arg;
    return COIL_EINVAL;
}
