/* coil-ssh-relay HOST PORT: the remote command of the conformance suite's
 * "SSH exec" row. It connects to HOST:PORT over TCP and relays its stdin to
 * the socket and the socket to its stdout, so an exec channel joins a coil
 * client protocol to a coil server listening on HOST:PORT (the suite needs
 * a coil end on both sides; `exec cat` would only echo). The data path is
 * the one of `exec cat`: channel -> sshd -> the command's stdin, its stdout
 * -> sshd -> channel.
 *
 * Why not `nc -N`: Debian ships two netcats (netcat-openbsd has -N,
 * netcat-traditional does not), and their exit on a half-closed socket
 * differs between versions; the suite's half-close and reset cases need
 * exactly this:
 *   stdin EOF       -> shutdown(SHUT_WR) on the socket (the channel's EOF
 *                      reaches the coil server as a half-close);
 *   socket EOF      -> close stdout and stderr (the server's half-close
 *                      reaches the channel as EOF: sshd sends EOF only once
 *                      both of the command's outputs are closed);
 *   both done       -> exit 0 (exit-status 0, a clean close);
 *   a socket error (the server reset the connection) or a write error on
 *   stdout (the channel is gone) -> exit 1 at once.
 * Blocking writes are the backpressure: while the socket is full the relay
 * does not read stdin, so sshd stops taking channel data and the window
 * closes. Never run by hand; the suite passes its own path to the server. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    int rc = getaddrinfo(argv[1], argv[2], &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "relay: bad address %s:%s: %s\n", argv[1], argv[2],
                gai_strerror(rc));
        return 2;
    }
    int s = socket(ai->ai_family, SOCK_STREAM, 0);
    if (s < 0 || connect(s, ai->ai_addr, ai->ai_addrlen) != 0) {
        fprintf(stderr, "relay: connect to %s:%s failed: %s\n", argv[1], argv[2],
                strerror(errno));
        freeaddrinfo(ai);
        return 2;
    }
    freeaddrinfo(ai);

    static char buf[64 * 1024];
    int in_open = 1, sock_open = 1;
    while (in_open || sock_open) {
        struct pollfd p[2] = {{in_open ? 0 : -1, POLLIN, 0},
                              {sock_open ? s : -1, POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (in_open && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(0, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return 1;
            if (n == 0) {
                in_open = 0;
                shutdown(s, SHUT_WR);
            } else if (write_all(s, buf, (size_t)n) != 0) {
                return 1;
            }
        }
        if (sock_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(s, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return 1; /* reset */
            if (n == 0) {
                sock_open = 0;
                close(1);
                close(2);
            } else if (write_all(1, buf, (size_t)n) != 0) {
                return 1;
            }
        }
    }
    return 0;
}
