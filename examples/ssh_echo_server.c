/* ssh_echo_server — the seed book's echo server (example 2-1) served over
 * SSH by coil's own SSH server: the same kind of protocol as
 * echo_server.c, unchanged, on an SSH channel instead of a TCP socket.
 *
 *   ssh-keygen -t ed25519 -N '' -f ~/.ssh/id_ed25519    (if you have no key)
 *   ./ssh_echo_server [--port PORT] [--host-key FILE] [--authorized-keys FILE]
 *   ssh -p 8022 alice@127.0.0.1 cat                     (type lines: echoed)
 *   echo hi | ssh -p 8022 alice@127.0.0.1 anything      (prints "hi")
 *
 * Who may log in: the keys in the authorized keys file (default
 * ~/.ssh/authorized_keys, else ~/.ssh/id_ed25519.pub). The host key is made
 * on the first run (default ./ssh_echo_host_ed25519, mode 0600); ssh asks
 * you to trust it once, as for any new server.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <coil/coil.h>
#include <coil/ssh_server.h>

/* One channel's protocol: greet on stderr, then echo. Nothing in it knows
 * about SSH except the greeting, which asks who logged in. */
typedef struct echo {
    coil_protocol base;
} echo;

static void echo_connection_made(coil_protocol *p)
{
    const coil_ssh_channel_info *info = coil_ssh_server_channel_info(p->transport);
    if (info) { /* NULL on any other transport */
        char hello[512];
        int n =
            snprintf(hello, sizeof hello, "hello %s (%s %s), echoing '%s'\n", info->user,
                     info->auth_method, info->key_fingerprint, info->command);
        if (n > 0)
            coil_ssh_server_channel_write_stderr(
                p->transport, hello,
                (size_t)n < sizeof hello ? (size_t)n : sizeof hello - 1);
    }
}

static void echo_data_received(coil_protocol *p, const void *data, size_t len)
{
    coil_transport_write(p->transport, data, len);
}

/* The client sent EOF (^D, or the end of a pipe): everything echoed so far
 * goes out, then exit status 0, EOF and CLOSE. */
static void echo_read_connection_lost(coil_protocol *p)
{
    coil_ssh_server_channel_set_exit(p->transport, 0);
    coil_transport_lose_connection(p->transport);
}

static void echo_destroy(coil_protocol *p)
{
    free(p);
}

static const coil_protocol_ops echo_ops = {
    .connection_made = echo_connection_made,
    .data_received = echo_data_received,
    .read_connection_lost = echo_read_connection_lost,
    .destroy = echo_destroy,
};

static coil_protocol *echo_build(coil_factory *f, const coil_address *peer)
{
    (void)f, (void)peer;
    echo *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->base.ops = &echo_ops;
    return &e->base;
}

static const coil_factory_ops echo_factory_ops = {.build_protocol = echo_build};

/* ~/.ssh/NAME when it exists, else NULL. */
static const char *home_file(const char *name, char *buf, size_t size)
{
    const char *home = getenv("HOME");
    if (!home || snprintf(buf, size, "%s/.ssh/%s", home, name) >= (int)size)
        return NULL;
    return access(buf, R_OK) == 0 ? buf : NULL;
}

int main(int argc, char **argv)
{
    int port = 8022;
    const char *host_key = "ssh_echo_host_ed25519", *keys = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--host-key") == 0)
            host_key = argv[i + 1];
        else if (strcmp(argv[i], "--authorized-keys") == 0)
            keys = argv[i + 1];
        else
            port = -1;
    }
    char b1[512], b2[512];
    if (!keys && !(keys = home_file("authorized_keys", b1, sizeof b1)))
        keys = home_file("id_ed25519.pub", b2, sizeof b2);
    if (argc % 2 == 0 || port <= 0 || port > 65535 || !keys) {
        fprintf(stderr,
                "usage: %s [--port PORT] [--host-key FILE] [--authorized-keys FILE]\n"
                "(with no authorized keys file: make a key with ssh-keygen -t ed25519)\n",
                argv[0]);
        return 2;
    }

    coil_reactor *r;
    coil_reactor_options ro = {.handle_signals = 1};
    if (coil_reactor_new(&r, &ro) != 0)
        return 1;

    /* The server context: host key (made on the first run), who may log
     * in, and which factory serves which kind of channel. Here exec (any
     * command) and shell both get the echo. */
    coil_factory f = {.ops = &echo_factory_ops};
    coil_ssh_server_options so = {
        .host_key_file = host_key,
        .generate_host_key = 1,
        .authorized_keys_file = keys,
        .shell = &f,
        .exec = &f,
    };
    coil_ssh_server *srv = NULL;
    coil_listener *l = NULL;
    coil_failure *err = NULL;
    coil_tcp_listen_options lo = {.interface = "127.0.0.1", .port = port};
    if (coil_ssh_server_new(r, &so, &srv, &err) != 0 ||
        coil_tcp_listen(r, &lo, coil_ssh_server_factory(srv), &l, &err) != 0) {
        fprintf(stderr, "ssh_echo_server: %s\n",
                err ? coil_failure_message(err) : "out of memory");
        coil_failure_free(err);
        coil_ssh_server_free(srv);
        coil_reactor_free(r);
        return 1;
    }
    printf("ssh_echo_server: listening on 127.0.0.1:%d, host key %s\n", port,
           coil_ssh_server_host_key_fingerprint(srv));
    fflush(stdout);

    coil_reactor_run(r); /* until SIGINT / SIGTERM */

    coil_listener_close(l);
    coil_reactor_shutdown(r, 2.0); /* every connection closed and gone */
    coil_ssh_server_free(srv);
    coil_reactor_free(r);
    return 0;
}
