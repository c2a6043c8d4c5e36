/* Addresses: conversion from socket addresses and printable forms. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <coil/address.h>
#include <coil/error.h>

int coil_address_from_sockaddr(coil_address *a, const struct sockaddr *sa, socklen_t len)
{
    memset(a, 0, sizeof *a);
    if (!sa || len > (socklen_t)sizeof a->u)
        return COIL_EINVAL;
    switch (sa->sa_family) {
    case AF_INET:
        if (len < (socklen_t)sizeof(struct sockaddr_in))
            return COIL_EINVAL;
        a->kind = COIL_ADDR_TCP4;
        break;
    case AF_INET6:
        if (len < (socklen_t)sizeof(struct sockaddr_in6))
            return COIL_EINVAL;
        a->kind = COIL_ADDR_TCP6;
        break;
    case AF_UNIX:
        if (len < (socklen_t)offsetof(struct sockaddr_un, sun_path))
            return COIL_EINVAL;
        a->kind = COIL_ADDR_UNIX;
        break;
    default:
        return COIL_EINVAL;
    }
    memcpy(&a->u, sa, len);
    a->len = len;
    return 0;
}

size_t coil_address_format(const coil_address *a, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN];
    int n;
    switch (a->kind) {
    case COIL_ADDR_TCP4:
        inet_ntop(AF_INET, &a->u.in4.sin_addr, host, sizeof host);
        n = snprintf(buf, size, "%s:%u", host, ntohs(a->u.in4.sin_port));
        break;
    case COIL_ADDR_TCP6:
        inet_ntop(AF_INET6, &a->u.in6.sin6_addr, host, sizeof host);
        n = snprintf(buf, size, "[%s]:%u", host, ntohs(a->u.in6.sin6_port));
        break;
    case COIL_ADDR_UNIX: {
        size_t plen = a->len > offsetof(struct sockaddr_un, sun_path)
                          ? a->len - offsetof(struct sockaddr_un, sun_path)
                          : 0;
        const char *p = a->u.un.sun_path;
        if (plen == 0)
            n = snprintf(buf, size, "unix:(unnamed)");
        else if (p[0] == '\0') /* abstract namespace: not NUL-terminated */
            n = snprintf(buf, size, "unix:@%.*s", (int)(plen - 1), p + 1);
        else
            n = snprintf(buf, size, "unix:%.*s", (int)strnlen(p, plen), p);
        break;
    }
    case COIL_ADDR_MEMORY:
    case COIL_ADDR_SSH:
        n = snprintf(buf, size, "%s", a->name);
        break;
    default:
        n = snprintf(buf, size, "(no address)");
        break;
    }
    return n < 0 ? 0 : (size_t)n;
}

int coil_address_port(const coil_address *a)
{
    if (a->kind == COIL_ADDR_TCP4)
        return ntohs(a->u.in4.sin_port);
    if (a->kind == COIL_ADDR_TCP6)
        return ntohs(a->u.in6.sin6_port);
    return -1;
}
