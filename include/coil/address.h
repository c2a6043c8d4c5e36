/* coil — addresses: where a transport's ends are.
 *
 * A coil_address is a small value type (copy it freely): a TCP IPv4 or IPv6
 * host and port, a UNIX socket path (or abstract name), or a description of
 * a non-socket end (the in-memory transport, later an SSH channel).
 */
#ifndef COIL_ADDRESS_H
#define COIL_ADDRESS_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum coil_address_kind {
    COIL_ADDR_NONE = 0,
    COIL_ADDR_TCP4,
    COIL_ADDR_TCP6,
    COIL_ADDR_UNIX,
    COIL_ADDR_MEMORY,
    COIL_ADDR_SSH
} coil_address_kind;

typedef struct coil_address {
    coil_address_kind kind;
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
    } u;
    socklen_t len; /* socket kinds: the length of u */
    char name[64]; /* MEMORY / SSH: a description ("memory:3") */
} coil_address;

/* Fill `a` from a socket address (AF_INET, AF_INET6 or AF_UNIX). Returns 0
 * or COIL_EINVAL for another family or a bad length. */
int coil_address_from_sockaddr(coil_address *a, const struct sockaddr *sa, socklen_t len);

/* Write a printable form like snprintf: "127.0.0.1:8080", "[::1]:8080",
 * "unix:/run/app.sock", "unix:@abstract", "unix:(unnamed)", "memory:3".
 * Returns the length the whole text needs. */
size_t coil_address_format(const coil_address *a, char *buf, size_t size);

/* The TCP port, or -1 for other kinds. */
int coil_address_port(const coil_address *a);

#ifdef __cplusplus
}
#endif
#endif
