/* The server side of the ssh: endpoint kind (coil's own SSH server):
 *
 *   ssh:PORT:hostKey=FILE[:authorizedKeys=FILE][:anonymous=yes]
 *       [:interface=ADDR][:backlog=N][:highWater=BYTES][:lowWater=BYTES]
 *
 * PORT, interface=, backlog=, highWater= and lowWater= are tcp:'s (the
 * water marks apply to the TCP connections below SSH). hostKey= is the
 * ed25519 host key, an OpenSSH private key file, made (mode 0600, its
 * fingerprint logged) when it does not exist. authorizedKeys= lets the keys
 * of an OpenSSH authorized_keys file in under any user name; anonymous=yes
 * lets anyone in (ssh-chat's way). One of the two is required.
 *
 * Parsing checks what it can without side effects (descriptions are parsed
 * by fuzzers and --help paths too): an existing host key is loaded and
 * checked, a missing one only needs a directory it can be made in; the
 * authorized_keys file is read. Listening builds the server context
 * (coil_ssh_server_new, which makes the host key when missing) with the
 * caller's factory for shell and exec channels, and a TCP listener running
 * it, both owned by a listener of ours: closing it closes the TCP listener
 * and drops the context (connections still open keep what they need).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <coil/endpoint.h>
#include <coil/log.h>
#include <coil/plugin.h>
#include <coil/ssh_server.h>

#include "server_private.h"

const char coil__sshd_endpoint_usage[] =
    "ssh:PORT:hostKey=FILE[:authorizedKeys=FILE][:anonymous=yes][:interface=ADDR]"
    "[:backlog=N][:highWater=BYTES][:lowWater=BYTES]";

struct coil__sshd_endpoint {
    coil_endpoint_tcp *tcp;
    char *host_key;
    char *authorized_keys; /* or NULL */
    int anonymous;
};

void coil__sshd_endpoint_free(coil__sshd_endpoint *e)
{
    if (!e)
        return;
    coil_endpoint_tcp_free(e->tcp);
    free(e->host_key);
    free(e->authorized_keys);
    free(e);
}

static const char *const SERVER_KEYS[] = {"hostKey", "authorizedKeys", "anonymous", NULL};
/* Keys of the client form: given to a server, the user most likely meant a
 * client (or copied the wrong line); say so rather than "unknown option". */
static const char *const CLIENT_ONLY_KEYS[] = {
    "host",     "user",      "identity", "knownHosts", "agent", "password",
    "hostKeys", "keepalive", "timeout",  "to",         "exec",  NULL};

/* The error of a key or authorized_keys helper as a parse error. */
static int bad_failure(const coil_endpoint_parser *p, int rc, coil_failure *err,
                       const char *what, const char *path)
{
    if (rc == COIL_ENOMEM) {
        coil_failure_free(err);
        return COIL_ENOMEM;
    }
    if (err) {
        rc = coil_endpoint_bad(p, "%s", coil_failure_message(err));
        coil_failure_free(err);
        return rc;
    }
    return coil_endpoint_bad(p, "%s '%.200s' cannot be used: %s", what, path,
                             coil_strerror(rc));
}

/* hostKey=: an existing file must be a usable key; a missing one must be
 * creatable (its directory exists and is writable). */
static int check_host_key(const coil_endpoint_parser *p, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT)
            return coil_endpoint_bad(p, "host key file '%.200s' cannot be read: %s", path,
                                     strerror(errno));
        char dir[4096];
        const char *slash = strrchr(path, '/');
        if (!slash)
            snprintf(dir, sizeof dir, ".");
        else if (slash == path)
            snprintf(dir, sizeof dir, "/");
        else
            snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        if (access(dir, W_OK | X_OK) != 0)
            return coil_endpoint_bad(
                p,
                "host key file '%.200s' does not exist and cannot be "
                "made in '%.200s': %s",
                path, dir, strerror(errno));
        return 0; /* made at listen time */
    }
    if (!S_ISREG(st.st_mode))
        return coil_endpoint_bad(p, "host key file '%.200s' is not a regular file", path);
    coil__sshkey *k = NULL;
    coil_failure *err = NULL;
    int rc = coil__sshkey_load_host(path, COIL__SSHKEY_ED25519, 0, &k, &err);
    coil__sshkey_free(k);
    if (rc)
        return bad_failure(p, rc, err, "host key file", path);
    coil_failure_free(err);
    return 0;
}

static int check_authorized_keys(const coil_endpoint_parser *p, const char *path,
                                 int anonymous)
{
    coil__authkeys *a = NULL;
    coil_failure *err = NULL;
    int rc = coil__authkeys_load(path, &a, &err);
    if (rc)
        return bad_failure(p, rc, err, "authorized keys file", path);
    coil_failure_free(err);
    size_t n = coil__authkeys_count(a);
    coil__authkeys_free(a);
    if (n == 0 && !anonymous)
        return coil_endpoint_bad(p,
                                 "authorized keys file '%.200s' holds no usable key "
                                 "(lines such as 'ssh-ed25519 AAAA... you@host', as in "
                                 "~/.ssh/id_ed25519.pub)",
                                 path);
    return 0;
}

int coil__sshd_endpoint_parse(const coil_endpoint_parser *p, const coil_endpoint_desc *d,
                              coil__sshd_endpoint **out)
{
    *out = NULL;
    for (const char *const *k = CLIENT_ONLY_KEYS; *k; k++) {
        if (coil_endpoint_desc_get(d, *k))
            return coil_endpoint_bad(p,
                                     "%s= belongs to a client description "
                                     "(ssh:HOST:PORT:user=USER:...); to serve SSH give a "
                                     "port and hostKey=FILE",
                                     *k);
    }
    coil__sshd_endpoint *e = calloc(1, sizeof *e);
    if (!e)
        return COIL_ENOMEM;
    *out = e;
    int rc = coil_endpoint_tcp_parse(p, d, 1, SERVER_KEYS, &e->tcp);
    if (rc)
        return rc;
    const char *v;
    if ((v = coil_endpoint_desc_get(d, "anonymous")) &&
        (rc = coil_endpoint_yes_no(p, "anonymous", v, &e->anonymous)))
        return rc;
    const char *key = coil_endpoint_desc_get(d, "hostKey");
    if (!key)
        return coil_endpoint_bad(
            p, "hostKey=FILE is missing (the server's ed25519 key, an "
               "OpenSSH private key file; made when it does not exist)");
    if (!*key)
        return coil_endpoint_bad(p, "hostKey is empty");
    const char *ak = coil_endpoint_desc_get(d, "authorizedKeys");
    if (ak && !*ak)
        return coil_endpoint_bad(p, "authorizedKeys is empty");
    if (!ak && !e->anonymous)
        return coil_endpoint_bad(p,
                                 "nobody could log in: give authorizedKeys=FILE or "
                                 "anonymous=yes (an OpenSSH authorized_keys file, whose "
                                 "keys log in under any user name; or anyone at all)");
    if ((rc = check_host_key(p, key)))
        return rc;
    if (ak && (rc = check_authorized_keys(p, ak, e->anonymous)))
        return rc;
    if (!(e->host_key = strdup(key)) || (ak && !(e->authorized_keys = strdup(ak))))
        return COIL_ENOMEM;
    return 0;
}

/* ---- the listener ------------------------------------------------------------ */

typedef struct sshd_listener {
    struct coil_listener base; /* first */
    coil_listener *tcp;
    coil_ssh_server *srv;
    coil_factory *f; /* the caller's: started while we listen */
} sshd_listener;

static int sshd_get_host(const coil_listener *base, coil_address *out)
{
    const sshd_listener *l = (const sshd_listener *)base;
    return coil_listener_get_host(l->tcp, out);
}

static int sshd_set_layer(coil_listener *base, coil_layer *layer)
{
    (void)base;
    /* A layer would go under SSH (on the TCP connections); nothing needs
     * that, and above SSH there is one per channel kind. */
    if (layer && layer->ops->free)
        layer->ops->free(layer);
    return COIL_ENOTSUP;
}

static void sshd_close(coil_listener *base)
{
    sshd_listener *l = (sshd_listener *)base;
    if (!l)
        return;
    coil_listener_close(l->tcp);
    coil_ssh_server_free(l->srv);
    coil_factory_do_stop(l->f);
    free(l);
}

static const coil_listener_ops sshd_listener_ops = {
    .kind = "ssh",
    .get_host = sshd_get_host,
    .set_layer = sshd_set_layer,
    .close = sshd_close,
};

int coil__sshd_endpoint_listen(coil_reactor *r, const coil__sshd_endpoint *e,
                               coil_factory *f, coil_listener **out, coil_failure **err)
{
    *out = NULL;
    if (err)
        *err = NULL;
    sshd_listener *l = calloc(1, sizeof *l);
    if (!l)
        return COIL_ENOMEM;
    l->base.ops = &sshd_listener_ops;
    l->f = f;
    coil_ssh_server_options o = {
        .host_key_file = e->host_key,
        .generate_host_key = 1,
        .authorized_keys_file = e->authorized_keys,
        .anonymous = e->anonymous,
        .shell = f,
        .exec = f,
    };
    int rc = coil_ssh_server_new(r, &o, &l->srv, err);
    if (rc) {
        free(l);
        return rc;
    }
    rc = coil_endpoint_tcp_listen(r, e->tcp, coil_ssh_server_factory(l->srv), &l->tcp,
                                  err);
    if (rc) {
        coil_ssh_server_free(l->srv);
        free(l);
        return rc;
    }
    coil_factory_do_start(f);
    coil_address a;
    char where[128] = "";
    if (coil_listener_get_host(l->tcp, &a) == 0)
        coil_address_format(&a, where, sizeof where);
    coil_log(COIL_LOG_INFO, "ssh", "SSH server on %s: host key ssh-ed25519 %s%s", where,
             coil_ssh_server_host_key_fingerprint(l->srv),
             e->anonymous ? " (anonymous=yes: anyone may log in)" : "");
    *out = &l->base;
    return 0;
}
