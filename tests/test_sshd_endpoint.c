/* The server side of the ssh: endpoint kind (ssh/server_endpoint.c): its
 * parser's messages, and listening: the host key made when missing (mode
 * 0600), the listener's kind and address, the factory started and stopped
 * with it; and both halves of the kind together: coil's client (ssh:...:
 * exec=) through coil's server (ssh:PORT:hostKey=...), the factory's
 * protocol on the exec channel, learning the user and key. OpenSSH's ssh
 * through it: tests/tools/sshd_tools.py and tests/sshd/. */
#include "testutil.h"

#include <coil/plugin.h>
#include <coil/ssh.h>
#include <coil/ssh_server.h>

#include <sodium.h>

#include "sshkeys.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A scratch folder for key files, made once. */
static char tmpdir[256];

static const char *path_in(const char *name)
{
    static char buf[8][512];
    static int i;
    char *b = buf[i++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", tmpdir, name);
    return b;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    CU_ASSERT_FATAL(fd >= 0);
    size_t len = strlen(text);
    CU_ASSERT_EQUAL(write(fd, text, len), (ssize_t)len);
    close(fd);
    CU_ASSERT_EQUAL(chmod(path, mode), 0);
}

static const char USER_KEY[] =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIFexBNOwe2CVOnEiJFRasW2kQQccMHrhkAjQHgTpimO "
    "alice@test\n";

static int setup(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/coil-sshd-endpoint-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir))
        return -1;
    return 0;
}

static int teardown(void)
{
    const char *names[] = {"authorized_keys", "empty_keys", "host",        "host_made",
                           "garbage",         "open_key",   "known_hosts", NULL};
    for (int i = 0; names[i]; i++)
        unlink(path_in(names[i]));
    rmdir(tmpdir);
    return 0;
}

static void expect_bad(const char *text, const char *needle)
{
    coil_test_endpoint_bad(1, text, needle,
                           "(use ssh:PORT:hostKey=FILE[:authorizedKeys=FILE]");
}

static void expect_good(const char *text)
{
    coil_test_endpoint_good(1, text, "ssh");
}

static void test_parse_errors(void)
{
    char text[1024];
    write_file(path_in("authorized_keys"), USER_KEY, 0600);
    write_file(path_in("empty_keys"), "# nobody yet\n", 0600);
    const char *ak = path_in("authorized_keys");
    const char *host = path_in("host");

    snprintf(text, sizeof text, "ssh:2222:hostKey=%s", host);
    expect_bad(text, "nobody could log in: give authorizedKeys=FILE or anonymous=yes");
    snprintf(text, sizeof text, "ssh:2222:hostKey=%s:anonymous=no", host);
    expect_bad(text, "give authorizedKeys=FILE");
    snprintf(text, sizeof text, "ssh:2222:authorizedKeys=%s", ak);
    expect_bad(text, "hostKey=FILE is missing");
    expect_bad("ssh:2222:hostKey=:anonymous=yes", "hostKey is empty");
    snprintf(text, sizeof text, "ssh:2222:hostKey=%s:authorizedKeys=", host);
    expect_bad(text, "authorizedKeys is empty");
    snprintf(text, sizeof text, "ssh:2222:hostKey=%s:anonymous=maybe", host);
    expect_bad(text, "anonymous='maybe' is not yes or no");
    expect_bad("ssh:2222:hostKey=/nonexistent-coil-dir/host:anonymous=yes",
               "host key file '/nonexistent-coil-dir/host' does not exist and cannot be "
               "made in '/nonexistent-coil-dir': No such file");
    snprintf(text, sizeof text, "ssh:2222:hostKey=%s:authorizedKeys=%s/none", host,
             tmpdir);
    expect_bad(text, "none");
    snprintf(text, sizeof text, "ssh:2222:hostKey=%s:authorizedKeys=%s", host,
             path_in("empty_keys"));
    expect_bad(text, "holds no usable key");
    /* A host key file that is not a key: named, with what to do. */
    write_file(path_in("garbage"), "not a key\n", 0600);
    snprintf(text, sizeof text, "ssh:2222:hostKey=%s:anonymous=yes", path_in("garbage"));
    expect_bad(text, path_in("garbage"));
    /* tcp:'s keys and messages. */
    snprintf(text, sizeof text, "ssh:99999:hostKey=%s:anonymous=yes", host);
    expect_bad(text, "port '99999' is not a number from 0 to 65535");
    snprintf(text, sizeof text, "ssh:hostKey=%s:anonymous=yes", host);
    expect_bad(text, "the port is missing");
    snprintf(text, sizeof text, "ssh:2222:hostKey=%s:anonymous=yes:backlog=0", host);
    expect_bad(text, "backlog '0' is not a number from 1 to 65535");
    snprintf(text, sizeof text, "ssh:2222:hostKey=%s:anonymous=yes:colour=red", host);
    expect_bad(text, "unknown option 'colour'");
    snprintf(text, sizeof text,
             "ssh:2222:hostKey=%s:anonymous=yes:highWater=8192:lowWater=9000", host);
    expect_bad(text, "lowWater (9000) is above highWater (8192)");
    /* A client description given to a server. */
    expect_bad("ssh:gw:22:user=me:to=db\\:5432",
               "user= belongs to a client description (ssh:HOST:PORT:user=USER:...); "
               "to serve SSH give a port and hostKey=FILE");
    expect_bad("ssh:gw:22:exec=cat", "exec= belongs to a client description");
    /* Parsing never made the key. */
    CU_ASSERT_NOT_EQUAL(access(host, F_OK), 0);
}

static void test_parse_good(void)
{
    char text[1024];
    write_file(path_in("authorized_keys"), USER_KEY, 0600);
    const char *host = path_in("host");
    unlink(host);
    snprintf(text, sizeof text, "ssh:2222:hostKey=%s:authorizedKeys=%s", host,
             path_in("authorized_keys"));
    expect_good(text);
    snprintf(text, sizeof text, "ssh:0:hostKey=%s:anonymous=yes", host);
    expect_good(text);
    snprintf(text, sizeof text,
             "ssh:port=2222:interface=127.0.0.1:backlog=10:highWater=65536:lowWater=1024:"
             "hostKey=%s:authorizedKeys=%s:anonymous=no",
             host, path_in("authorized_keys"));
    expect_good(text);
    /* Parsing does not make the host key (descriptions are parsed by
     * --help paths and fuzzers too): listening does. */
    CU_ASSERT_NOT_EQUAL(access(host, F_OK), 0);
}

/* The kinds listed after a mistake show the SSH server's form. */
static void test_listed(void)
{
    coil_endpoint *e = NULL;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL(coil_endpoint_server("tcp:80\\", &e, &err), COIL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    COIL_TEST_ASSERT_HAS(coil_failure_message(err),
                         "ssh:PORT:hostKey=FILE:authorizedKeys=FILE");
    coil_failure_free(err);
}

/* ---- listening ------------------------------------------------------------------ */

typedef struct counting_factory {
    coil_factory f;
    int starts, stops, built;
} counting_factory;

static void cf_start(coil_factory *f)
{
    ((counting_factory *)f)->starts++;
}
static void cf_stop(coil_factory *f)
{
    ((counting_factory *)f)->stops++;
}
static coil_protocol *cf_build(coil_factory *f, const coil_address *peer)
{
    (void)peer;
    ((counting_factory *)f)->built++;
    return NULL;
}
static const coil_factory_ops cf_ops = {
    .build_protocol = cf_build, .start = cf_start, .stop = cf_stop};

static void test_listen(void)
{
    char text[1024];
    const char *host = path_in("host_made");
    unlink(host);
    snprintf(text, sizeof text, "ssh:0:interface=127.0.0.1:hostKey=%s:anonymous=yes",
             host);
    coil_reactor *r = coil_test_reactor(NULL);
    counting_factory cf = {.f.ops = &cf_ops};
    coil_listener *l = NULL;
    coil_failure *err = NULL;
    int rc = coil_listen(r, text, &cf.f, &l, &err);
    if (rc)
        fprintf(stderr, "\n    %s: %s\n", text, err ? coil_failure_message(err) : "?");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    CU_ASSERT_STRING_EQUAL(coil_listener_kind(l), "ssh");
    CU_ASSERT_EQUAL(cf.starts, 1);
    coil_address a;
    CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);
    CU_ASSERT(coil_address_port(&a) > 0);
    /* The host key was made, readable by its owner only. */
    struct stat st;
    CU_ASSERT_EQUAL_FATAL(stat(host, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    coil_listener_close(l);
    CU_ASSERT_EQUAL(cf.stops, 1);
    CU_ASSERT_EQUAL(cf.built, 0);

    /* Now the key exists: parsing loads it, and a second server uses it. */
    snprintf(text, sizeof text, "ssh:0:interface=127.0.0.1:hostKey=%s:anonymous=yes",
             host);
    expect_good(text);
    CU_ASSERT_EQUAL(coil_listen(r, text, &cf.f, &l, &err), 0);
    coil_listener_close(l);
    /* A host key others may read is refused, saying how to fix it. */
    CU_ASSERT_EQUAL(chmod(host, 0644), 0);
    expect_bad(text, "chmod");
    CU_ASSERT(coil_reactor_shutdown(r, 5.0) >= 0);
    coil_reactor_free(r);
}

/* ---- coil's client through coil's server ------------------------------------------- */

#define WAIT_SECONDS 60.0

typedef struct echo_conn {
    coil_protocol p;
    char user[64], method[32], fp[80], command[64];
    int has_pty;
} echo_conn;

static echo_conn *last_echo; /* the one the test made */

static void echo_made(coil_protocol *p)
{
    echo_conn *c = (echo_conn *)p;
    const coil_ssh_channel_info *si = coil_ssh_server_channel_info(p->transport);
    if (si) {
        snprintf(c->user, sizeof c->user, "%s", si->user);
        snprintf(c->method, sizeof c->method, "%s", si->auth_method);
        snprintf(c->fp, sizeof c->fp, "%s", si->key_fingerprint);
        snprintf(c->command, sizeof c->command, "%s", si->command);
        c->has_pty = si->has_pty;
    }
}
static void echo_data(coil_protocol *p, const void *data, size_t len)
{
    coil_transport_write(p->transport, data, len);
}
static void echo_destroy(coil_protocol *p)
{
    if (last_echo == (echo_conn *)p)
        last_echo = NULL;
    free(p);
}
static const coil_protocol_ops echo_ops = {
    .connection_made = echo_made, .data_received = echo_data, .destroy = echo_destroy};
static coil_protocol *echo_build(coil_factory *f, const coil_address *peer)
{
    (void)f, (void)peer;
    echo_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->p.ops = &echo_ops;
    last_echo = c;
    return &c->p;
}
static const coil_factory_ops echo_factory_ops = {.build_protocol = echo_build};

typedef struct client {
    coil_protocol p;
    char got[64];
    size_t n;
    int lost;
} client;
static void client_data(coil_protocol *p, const void *data, size_t len)
{
    client *c = (client *)p;
    if (c->n + len < sizeof c->got) {
        memcpy(c->got + c->n, data, len);
        c->n += len;
        c->got[c->n] = '\0';
    }
}
static void client_lost(coil_protocol *p, const coil_failure *reason)
{
    (void)reason;
    ((client *)p)->lost = 1;
}
static void client_destroy(coil_protocol *p)
{
    (void)p;
}
static const coil_protocol_ops client_ops = {.data_received = client_data,
                                             .connection_lost = client_lost,
                                             .destroy = client_destroy};

/* "ssh-ed25519 BASE64" of a key. */
static void key_line(const coil__sshkey *k, char *out, size_t size)
{
    size_t blen;
    const unsigned char *blob = coil__sshkey_blob(k, &blen);
    char b64[256];
    sodium_bin2base64(b64, sizeof b64, blob, blen, sodium_base64_VARIANT_ORIGINAL);
    snprintf(out, size, "%s %s", coil__sshkey_name(k), b64);
}

static void test_coil_client_to_coil_server(void)
{
    /* A user key in OpenSSH's format (made as a host key is), authorized. */
    coil__sshkey *user = NULL, *hostk = NULL;
    coil_failure *err = NULL;
    const char *user_file = path_in("open_key");
    unlink(user_file);
    CU_ASSERT_EQUAL_FATAL(
        coil__sshkey_load_host(user_file, COIL__SSHKEY_ED25519, 1, &user, &err), 0);
    char line[512], text[2048];
    key_line(user, line, sizeof line);
    snprintf(text, sizeof text, "%s alice@test\n", line);
    write_file(path_in("authorized_keys"), text, 0600);

    coil_reactor *r = coil_test_reactor(NULL);
    coil_factory f = {.ops = &echo_factory_ops};
    coil_listener *l = NULL;
    snprintf(text, sizeof text, "ssh:0:interface=127.0.0.1:hostKey=%s:authorizedKeys=%s",
             path_in("host"), path_in("authorized_keys"));
    int rc = coil_listen(r, text, &f, &l, &err);
    if (rc)
        fprintf(stderr, "\n    %s: %s\n", text, err ? coil_failure_message(err) : "?");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    coil_address a;
    CU_ASSERT_EQUAL_FATAL(coil_listener_get_host(l, &a), 0);
    int port = coil_address_port(&a);

    /* known_hosts from the host key the server made. */
    CU_ASSERT_EQUAL_FATAL(
        coil__sshkey_load_host(path_in("host"), COIL__SSHKEY_ED25519, 0, &hostk, &err),
        0);
    key_line(hostk, line, sizeof line);
    snprintf(text, sizeof text, "[127.0.0.1]:%d %s\n", port, line);
    write_file(path_in("known_hosts"), text, 0600);

    snprintf(text, sizeof text,
             "ssh:127.0.0.1:%d:user=alice:identity=%s:knownHosts=%s:exec=echo this", port,
             user_file, path_in("known_hosts"));
    coil_endpoint *e = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_endpoint_client(text, &e, &err), 0);
    client c = {.p.ops = &client_ops};
    coil_deferred *d = coil_connect_protocol(r, e, &c.p);
    coil_endpoint_free(e);
    CU_ASSERT_FATAL(d != NULL);
    int ok = coil_test_wait_fired(r, d, WAIT_SECONDS) && !coil_deferred_is_failure(d);
    if (!ok && coil_deferred_called(d))
        fprintf(stderr, "\n    %s: %s\n", text,
                coil_failure_message(coil_deferred_failure(d)));
    CU_ASSERT_FATAL(ok);
    coil_deferred_unref(d);
    /* The factory's protocol runs on the exec channel, knowing who came. */
    CU_ASSERT_PTR_NOT_NULL_FATAL(last_echo);
    CU_ASSERT_STRING_EQUAL(last_echo->user, "alice");
    CU_ASSERT_STRING_EQUAL(last_echo->method, "publickey");
    CU_ASSERT_STRING_EQUAL(last_echo->fp, coil__sshkey_fingerprint(user));
    CU_ASSERT_STRING_EQUAL(last_echo->command, "echo this");
    CU_ASSERT_EQUAL(last_echo->has_pty, 0);
    CU_ASSERT_EQUAL(coil_transport_write(c.p.transport, "ping", 4), 0);
    double end = coil_reactor_seconds(r) + WAIT_SECONDS;
    while (strcmp(c.got, "ping") != 0 && !c.lost && coil_reactor_seconds(r) < end)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT_STRING_EQUAL(c.got, "ping");
    coil_transport_lose_connection(c.p.transport);
    end = coil_reactor_seconds(r) + WAIT_SECONDS;
    while (!c.lost && coil_reactor_seconds(r) < end)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT(c.lost);
    coil_listener_close(l);
    CU_ASSERT(coil_reactor_shutdown(r, 5.0) >= 0);
    coil_reactor_free(r);
    coil__sshkey_free(user);
    coil__sshkey_free(hostk);
}

static int add(void)
{
    static const coil_test_case parse[] = {COIL_TEST(test_parse_errors),
                                           COIL_TEST(test_parse_good),
                                           COIL_TEST(test_listed),
                                           {NULL, NULL}};
    static const coil_test_case listen[] = {
        COIL_TEST(test_listen), COIL_TEST(test_coil_client_to_coil_server), {NULL, NULL}};
    if (coil_test_add_suite("ssh server endpoint parser", parse) ||
        coil_test_add_suite("ssh server endpoint listening", listen))
        return -1;
    return 0;
}

int main(void)
{
    if (setup() != 0) {
        perror("test_sshd_endpoint: mkdtemp");
        return 1;
    }
    int rc = coil_test_main(add);
    teardown();
    return rc;
}
