/* coil's SSH server: the context and the transport layer of each
 * connection; see server_private.h. (Skeleton: filled in by its owner.) */
#include "server_private.h"

int coil_ssh_server_new(coil_reactor *r, const coil_ssh_server_options *o,
                        coil_ssh_server **out, coil_failure **err)
{
    (void)r, (void)o, (void)out, (void)err;
    return COIL_ENOTSUP;
}
void coil_ssh_server_free(coil_ssh_server *srv)
{
    (void)srv;
}
coil_factory *coil_ssh_server_factory(coil_ssh_server *srv)
{
    return &srv->factory;
}
coil_protocol *coil_ssh_server_protocol(coil_ssh_server *srv, const coil_address *peer)
{
    (void)srv, (void)peer;
    return NULL;
}
const char *coil_ssh_server_host_key_fingerprint(const coil_ssh_server *srv)
{
    (void)srv;
    return "";
}
void coil_ssh_server_get_stats(const coil_ssh_server *srv, coil_ssh_server_stats *out)
{
    *out = srv->stats;
}
void coil__sshd_server_ref(coil_ssh_server *srv)
{
    srv->refs++;
}
void coil__sshd_server_unref(coil_ssh_server *srv)
{
    srv->refs--;
}
void coil__sshd_ref(coil__sshd *s)
{
    s->refs++;
}
void coil__sshd_unref(coil__sshd *s)
{
    s->refs--;
}
unsigned char *coil__sshd_packet_begin(coil__sshd *s, size_t min_room, size_t *room)
{
    (void)s, (void)min_room, (void)room;
    return NULL;
}
int coil__sshd_packet_end(coil__sshd *s, size_t len)
{
    (void)s, (void)len;
    return -1;
}
int coil__sshd_send(coil__sshd *s, const void *payload, size_t len)
{
    (void)s, (void)payload, (void)len;
    return -1;
}
int coil__sshd_can_send_data(const coil__sshd *s)
{
    (void)s;
    return 0;
}
void coil__sshd_disconnect(coil__sshd *s, int code, const char *fmt, ...)
{
    (void)s, (void)code, (void)fmt;
}
void coil__sshd_authenticated(coil__sshd *s)
{
    (void)s;
}
void coil__sshd_test_skip_kex(coil__sshd *s, const char *user)
{
    (void)s, (void)user;
}
size_t coil__sshd_test_frame(const void *payload, size_t len, unsigned char *out, size_t cap)
{
    (void)payload, (void)len, (void)out, (void)cap;
    return 0;
}
void coil__sshd_hold_input(coil__sshd *s, int on)
{
    (void)s, (void)on;
}
