/* UNIX stream sockets: the "unix" ops table, listen (file mode, stale file
 * removal, abstract namespace) and connect. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "socket.h"

static const coil_transport_ops unix_ops = {COIL__STREAM_OPS("unix")};

/* "@name" is the abstract namespace (a leading NUL byte). */
static int unix_addr(const char *path, struct sockaddr_un *un, socklen_t *len,
                     coil_failure **err)
{
    size_t n = path ? strlen(path) : 0;
    memset(un, 0, sizeof *un);
    un->sun_family = AF_UNIX;
    if (n == 0 || n >= sizeof un->sun_path) {
        if (err)
            *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                    "UNIX socket path '%s' must be 1 to %zu bytes",
                                    path ? path : "", sizeof un->sun_path - 1);
        return COIL_EINVAL;
    }
    memcpy(un->sun_path, path, n);
    if (path[0] == '@') {
        un->sun_path[0] = '\0';
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return 0;
}

/* A socket file is stale when nothing accepts on it any more. */
static int is_stale(const struct sockaddr_un *un, socklen_t len)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int rc = connect(fd, (const struct sockaddr *)un, len);
    int e = errno;
    close(fd);
    return rc != 0 && e == ECONNREFUSED;
}

int coil_unix_listen(coil_reactor *r, const coil_unix_listen_options *o, coil_factory *f,
                     coil_listener **out, coil_failure **err)
{
    if (err)
        *err = NULL;
    if (!r || !o || !f || !out || o->backlog < 0 || o->mode > 07777 ||
        !coil__sock_marks_valid(o->high_water, o->low_water)) {
        if (err)
            *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                    "bad UNIX listen options");
        return COIL_EINVAL;
    }
    struct sockaddr_un un;
    socklen_t len;
    if (unix_addr(o->path, &un, &len, err) != 0)
        return COIL_EINVAL;
    int abstract = o->path[0] == '@';
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&un, len) != 0) {
        struct stat st;
        if (errno != EADDRINUSE || abstract || lstat(o->path, &st) != 0 ||
            !S_ISSOCK(st.st_mode) || !is_stale(&un, len)) {
            if (errno == EADDRINUSE && err) {
                int e = errno;
                close(fd);
                *err = coil_failure_from_errno(
                    e, "cannot listen on unix:%s: a live server is using it", o->path);
                return COIL_ESYSTEM;
            }
            goto fail;
        }
        /* Stale: left by a process that died. Replace it. */
        unlink(o->path);
        if (bind(fd, (struct sockaddr *)&un, len) != 0)
            goto fail;
    }
    if (!abstract && chmod(o->path, o->mode ? o->mode : 0666) != 0)
        goto fail;
    if (listen(fd, o->backlog ? o->backlog : 50) != 0)
        goto fail;
    coil__sock_options so = {0, 0, o->high_water, o->low_water};
    return coil__listener_new(r, &unix_ops, fd, f, &so, abstract ? NULL : o->path, out,
                              err);
fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (err)
        *err = coil_failure_from_errno(e, "cannot listen on unix:%s", o->path);
    return COIL_ESYSTEM;
}

int coil_unix_connect(coil_reactor *r, const coil_unix_connect_options *o,
                      coil_factory *f, coil_connector **out)
{
    struct sockaddr_un un;
    socklen_t len;
    if (!r || !o || !f || !out || unix_addr(o->path, &un, &len, NULL) != 0 ||
        !coil__sock_marks_valid(o->high_water, o->low_water))
        return COIL_EINVAL;
    char desc[128];
    snprintf(desc, sizeof desc, "unix:%s", o->path);
    coil__sock_options so = {0, 0, o->high_water, o->low_water};
    return coil__connector_new(r, &unix_ops, (struct sockaddr *)&un, len, NULL, 0, desc,
                               o->timeout, &so, f, NULL, out);
}
