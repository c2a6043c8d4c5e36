/* SSH authentication and host-key verification against a real OpenSSH sshd
 * (the ctest fixture `sshd`, tests/ssh/sshd-fixture.sh) and, for password and
 * keyboard-interactive, a Twisted Conch server with in-memory accounts
 * (tests/ssh/conch_server.py, started by the tests that need it).
 *
 * Every wait runs the reactor until a deferred fires, bounded by a generous
 * timeout that fails the test; nothing sleeps. Fingerprints are checked
 * against what ssh-keygen -l prints (the fixture's SSHD_FP_* or ssh-keygen
 * run here on a known_hosts file). */
#include "testutil.h"

#include <coil/ssh.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef COIL_TEST_SSH_DIR
#error "COIL_TEST_SSH_DIR (the tests/ssh source folder) must be defined by the build"
#endif

#define WAIT_SECONDS 60.0 /* any single step; a healthy one takes well under 1 s */

/* ---- small helpers ----------------------------------------------------------- */

#define ASSERT_HAS_CI(hay, needle)                                              \
    do {                                                                        \
        const char *h_ = (hay), *n_ = (needle);                                 \
        int ok_ = h_ && n_ && strcasestr(h_, n_) != NULL;                       \
        if (!ok_)                                                               \
            fprintf(stderr, "\n    %s:%d: expected \"%s\" (any case) in: %s\n", \
                    __FILE__, __LINE__, n_, h_ ? h_ : "(null)");                \
        CU_ASSERT(ok_);                                                         \
    } while (0)

static int sshd_port(void)
{
    return atoi(coil_test_sshd("SSHD_PORT"));
}

/* "[127.0.0.1]:PORT" */
static const char *host_port(int port)
{
    static char buf[64];
    snprintf(buf, sizeof buf, "127.0.0.1:%d", port);
    return buf;
}

/* The whole contents of a (small) file, NUL-terminated, for the caller to
 * free; NULL (with a message) when unreadable. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(65536);
    size_t n = buf ? fread(buf, 1, 65535, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int rc = fputs(text, f) < 0 ? -1 : 0;
    return fclose(f) != 0 ? -1 : rc;
}

/* The SHA256 fingerprint ssh-keygen -l prints for the first key in `path`
 * (a .pub or known_hosts file), in `out`; 0 or -1. */
static int keygen_fingerprint(const char *path, char *out, size_t size)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "ssh-keygen -l -E sha256 -f '%s'", path);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char line[1024];
    int rc = -1;
    if (fgets(line, sizeof line, p)) {
        char *fp = strstr(line, "SHA256:");
        if (fp) {
            fp[strcspn(fp, " \n")] = '\0';
            snprintf(out, size, "%s", fp);
            rc = 0;
        }
    }
    if (pclose(p) != 0)
        rc = -1;
    if (rc != 0)
        fprintf(stderr, "ssh-keygen -lf %s gave no fingerprint\n", path);
    return rc;
}

/* ---- one connection attempt ------------------------------------------------ */

typedef struct attempt {
    coil_reactor *r;
    coil_ssh_session *s;
    coil_failure *fail; /* why ready failed (owned), NULL when it succeeded */
    char *text;         /* fail's whole text (owned) */
    int fired;
} attempt;

/* Options for the fixture's sshd, strict host keys against its known_hosts. */
static coil_ssh_options sshd_options(void)
{
    coil_ssh_options o = {0};
    o.host = "127.0.0.1";
    o.port = sshd_port();
    o.user = coil_test_sshd("SSH_USER");
    o.known_hosts_file = coil_test_sshd("SSH_KNOWN_HOSTS");
    o.host_key_policy = COIL_SSH_HOST_KEY_STRICT;
    o.handshake_timeout = WAIT_SECONDS;
    return o;
}

/* Connect with `o` and run until the session is ready or has failed. */
static void attempt_run(attempt *a, const coil_ssh_options *o)
{
    memset(a, 0, sizeof *a);
    a->r = coil_test_reactor(NULL);
    coil_failure *err = NULL;
    if (coil_ssh_session_connect(a->r, o, &a->s, &err) != 0) {
        a->s = NULL;
        a->fired = 1;
        a->fail =
            err ? err : coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL, "connect failed");
        a->text = coil_failure_to_string(a->fail);
        return;
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(a->s);
    coil_deferred *d = coil_ssh_session_ready(a->s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    a->fired = coil_test_wait_fired(a->r, d, WAIT_SECONDS + 10);
    if (!a->fired)
        fprintf(stderr, "\n    session to %s:%d as %s: ready did not fire in %.0f s\n",
                o->host, o->port, o->user ? o->user : "$USER", WAIT_SECONDS + 10);
    CU_ASSERT(a->fired);
    if (a->fired && coil_deferred_is_failure(d)) {
        a->fail = coil_deferred_take_failure(d);
        a->text = coil_failure_to_string(a->fail);
        if (getenv("COIL_TEST_VERBOSE")) /* to read the messages */
            fprintf(stderr, "\n    [%s] %s\n", o->user ? o->user : "", a->text);
    }
    if (!a->fired)
        coil_deferred_cancel(d);
    if (coil_deferred_is_failure(d))
        coil_failure_free(coil_deferred_take_failure(d));
    coil_deferred_unref(d);
}

/* The attempt must have succeeded; prints why not. */
static int attempt_ok(const attempt *a)
{
    if (a->fired && !a->fail)
        return 1;
    fprintf(stderr, "\n    expected a ready session, got: %s\n",
            a->text ? a->text : "no result in time");
    CU_FAIL("session not ready");
    return 0;
}

/* The attempt must have failed with COIL_DOMAIN_SSH `code` somewhere in its
 * chain; prints what it got otherwise. */
static int attempt_failed_with(const attempt *a, int code)
{
    if (a->fail && coil_failure_check(a->fail, COIL_DOMAIN_SSH, code))
        return 1;
    fprintf(stderr, "\n    expected an ssh failure with code %d, got: %s\n", code,
            a->fail ? a->text : (a->fired ? "success" : "no result in time"));
    CU_FAIL("wrong outcome");
    return 0;
}

/* Close and free everything; the reactor is drained (bounded). */
static void attempt_end(attempt *a)
{
    if (a->s) {
        coil_deferred *c = coil_ssh_session_close(a->s);
        if (c) {
            int fired = coil_test_wait_fired(a->r, c, WAIT_SECONDS);
            if (!fired)
                fprintf(stderr, "\n    session close did not finish in %.0f s\n",
                        WAIT_SECONDS);
            CU_ASSERT(fired);
            if (coil_deferred_is_failure(c))
                coil_failure_free(coil_deferred_take_failure(c));
            coil_deferred_unref(c);
        }
        coil_ssh_session_free(a->s);
        a->s = NULL;
    }
    double end = coil_reactor_seconds(a->r) + 10;
    while (coil_reactor_transport_count(a->r) > 0 && coil_reactor_seconds(a->r) < end)
        coil_reactor_iterate(a->r, 0.05);
    CU_ASSERT_EQUAL(coil_reactor_transport_count(a->r), 0);
    coil_reactor_free(a->r);
    coil_failure_free(a->fail);
    free(a->text);
    memset(a, 0, sizeof *a);
}

/* The server's host key type and fingerprint as the session reports them,
 * checked against the fixture's (ssh-keygen's) fingerprints. */
static void check_sshd_host_key(const attempt *a)
{
    const char *type = coil_ssh_session_host_key_type(a->s);
    const char *fp = coil_ssh_session_host_key_fingerprint(a->s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(type);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    if (strcmp(type, "ssh-ed25519") == 0) {
        CU_ASSERT_STRING_EQUAL(fp, coil_test_sshd("SSHD_FP_ED25519"));
    } else if (strncmp(type, "ecdsa-sha2-nistp256", 19) == 0) {
        CU_ASSERT_STRING_EQUAL(fp, coil_test_sshd("SSHD_FP_ECDSA"));
    } else {
        fprintf(stderr, "\n    unexpected host key type %s\n", type);
        CU_FAIL("host key type");
    }
}

/* sshd_options() with the ed25519 key and, when `kh` is not NULL, that
 * known_hosts file. */
static coil_ssh_options ed25519_options(const char *kh)
{
    coil_ssh_options o = sshd_options();
    o.identity_file = coil_test_sshd("SSH_KEY_ED25519");
    if (kh)
        o.known_hosts_file = kh;
    return o;
}

/* Connect with `o`: the session must become ready; with `check_key`, its
 * host key is checked against the fixture's too. */
static void expect_ready(const coil_ssh_options *o, int check_key)
{
    attempt a;
    attempt_run(&a, o);
    if (attempt_ok(&a) && check_key)
        check_sshd_host_key(&a);
    attempt_end(&a);
}

/* Connect with `o`: it must fail with COIL_DOMAIN_SSH `code`. */
static void expect_failure(const coil_ssh_options *o, int code)
{
    attempt a;
    attempt_run(&a, o);
    attempt_failed_with(&a, code);
    attempt_end(&a);
}

/* ---- an exec channel that collects what the command prints ---------------- */

typedef struct collect {
    coil_protocol base;
    char out[4096];
    size_t out_len;
    int made, lost, destroyed;
} collect;

static void c_made(coil_protocol *p)
{
    ((collect *)p)->made = 1;
}

static void c_data(coil_protocol *p, const void *data, size_t len)
{
    collect *c = (collect *)p;
    size_t room = sizeof c->out - 1 - c->out_len;
    if (len > room)
        len = room;
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    c->out[c->out_len] = '\0';
}

static void c_lost(coil_protocol *p, const coil_failure *reason)
{
    (void)reason;
    ((collect *)p)->lost = 1;
}

static void c_destroy(coil_protocol *p)
{
    ((collect *)p)->destroyed = 1;
}

static const coil_protocol_ops collect_ops = {
    .connection_made = c_made,
    .data_received = c_data,
    .connection_lost = c_lost,
    .destroy = c_destroy,
};

/* Run `command` on the session and check it prints `want`. */
static void check_exec(attempt *a, const char *command, const char *want)
{
    collect c = {.base.ops = &collect_ops};
    coil_ssh_channel_options co = {.type = COIL_SSH_EXEC, .command = command};
    coil_deferred *d = coil_ssh_open_channel(a->s, &co, &c.base);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT(coil_test_wait_fired(a->r, d, WAIT_SECONDS));
    if (coil_deferred_is_failure(d)) {
        char *t = coil_failure_to_string(coil_deferred_failure(d));
        fprintf(stderr, "\n    exec '%s' failed: %s\n", command, t ? t : "?");
        free(t);
        CU_FAIL("exec channel did not open");
        coil_failure_free(coil_deferred_take_failure(d));
    } else {
        int lost = coil_test_wait_flag(a->r, &c.lost, WAIT_SECONDS);
        if (!lost || strcmp(c.out, want) != 0)
            fprintf(
                stderr,
                "\n    exec '%s': made %d, connection_lost %s in %.0f s, output \"%s\" "
                "(wanted \"%s\")\n",
                command, c.made, lost ? "came" : "did NOT come", WAIT_SECONDS, c.out,
                want);
        CU_ASSERT(lost);
        CU_ASSERT(c.made);
        CU_ASSERT_STRING_EQUAL(c.out, want);
    }
    coil_deferred_unref(d);
    CU_ASSERT(coil_test_wait_flag(a->r, &c.destroyed, WAIT_SECONDS));
}

/* ---- the fixture ------------------------------------------------------------------ */

/* The fixture is up: its port accepts and speaks SSH. */
static void test_fixture_banner(void)
{
    int port = sshd_port();
    CU_ASSERT_FATAL(port > 0 && port < 65536);
    CU_ASSERT_STRING_EQUAL(coil_test_sshd("SSHD_HOST"), "127.0.0.1");
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    close(fd);
    CU_ASSERT_FATAL(n > 8);
    buf[n] = '\0';
    CU_ASSERT_NSTRING_EQUAL(buf, "SSH-2.0-", 8);
    COIL_TEST_ASSERT_HAS(coil_test_sshd("SSHD_FP_ECDSA"), "SHA256:");
}

/* ---- public keys --------------------------------------------------------------------
 */

static void key_file_ok(const char *env_key, const char *passphrase)
{
    coil_ssh_options o = sshd_options();
    o.identity_file = coil_test_sshd(env_key);
    o.passphrase = passphrase;
    attempt a;
    attempt_run(&a, &o);
    if (attempt_ok(&a)) {
        CU_ASSERT(coil_ssh_session_is_ready(a.s));
        check_sshd_host_key(&a);
        COIL_TEST_ASSERT_HAS(coil_ssh_session_server_banner(a.s), "SSH-2.0-OpenSSH");
        COIL_TEST_ASSERT_HAS(coil_ssh_session_cipher(a.s), "aes");
        COIL_TEST_ASSERT_HAS(coil_ssh_session_mac(a.s), "hmac-sha2");
    }
    attempt_end(&a);
}

static void test_key_ed25519(void)
{
    key_file_ok("SSH_KEY_ED25519", NULL);
}

static void test_key_ecdsa(void)
{
    key_file_ok("SSH_KEY_ECDSA", NULL);
}

static void test_key_passphrase(void)
{
    key_file_ok("SSH_KEY_ED25519_PASS", coil_test_sshd("SSH_KEY_PASSPHRASE"));
}

/* A session runs a command end to end (the rest is test_ssh_channel's). */
static void test_key_exec_echo(void)
{
    coil_ssh_options o = ed25519_options(NULL);
    attempt a;
    attempt_run(&a, &o);
    if (attempt_ok(&a))
        check_exec(&a, "echo hello", "hello\n");
    attempt_end(&a);
}

/* A wrong (or missing) passphrase: a failure that names the key file and
 * says the passphrase is the problem. */
static void key_bad_passphrase(const char *passphrase)
{
    coil_ssh_options o = sshd_options();
    const char *key = coil_test_sshd("SSH_KEY_ED25519_PASS");
    o.identity_file = key;
    o.passphrase = passphrase;
    attempt a;
    attempt_run(&a, &o);
    CU_ASSERT_PTR_NOT_NULL(a.fail);
    if (a.fail) {
        COIL_TEST_ASSERT_HAS(a.text, key);
        ASSERT_HAS_CI(a.text, "passphrase");
    }
    attempt_end(&a);
}

static void test_key_wrong_passphrase(void)
{
    key_bad_passphrase("not the passphrase");
}

static void test_key_no_passphrase(void)
{
    key_bad_passphrase(NULL);
}

static void key_memory_ok(const char *env_key, const char *passphrase)
{
    char *pem = slurp(coil_test_sshd(env_key));
    CU_ASSERT_PTR_NOT_NULL_FATAL(pem);
    coil_ssh_options o = sshd_options();
    o.key_pem = pem;
    o.passphrase = passphrase;
    expect_ready(&o, 0);
    free(pem);
}

static void test_key_memory_ed25519(void)
{
    key_memory_ok("SSH_KEY_ED25519", NULL);
}

static void test_key_memory_ecdsa(void)
{
    key_memory_ok("SSH_KEY_ECDSA", NULL);
}

static void test_key_memory_passphrase(void)
{
    key_memory_ok("SSH_KEY_ED25519_PASS", coil_test_sshd("SSH_KEY_PASSPHRASE"));
}

/* An encrypted key in memory with the wrong passphrase: says so, and the
 * key's text never appears in the message. */
static void test_key_memory_wrong_passphrase(void)
{
    char *pem = slurp(coil_test_sshd("SSH_KEY_ED25519_PASS"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(pem);
    coil_ssh_options o = sshd_options();
    o.key_pem = pem;
    o.passphrase = "not the passphrase";
    attempt a;
    attempt_run(&a, &o);
    CU_ASSERT_PTR_NOT_NULL(a.fail);
    if (a.fail) {
        ASSERT_HAS_CI(a.text, "passphrase");
        CU_ASSERT(strstr(a.text, "not the passphrase") == NULL);
        CU_ASSERT(strstr(a.text, "BEGIN OPENSSH") == NULL);
    }
    attempt_end(&a);
    free(pem);
}

static void test_agent(void)
{
    coil_ssh_options o = sshd_options();
    o.agent = 1;
    o.agent_socket = coil_test_sshd("SSH_AUTH_SOCK_TEST");
    expect_ready(&o, 0);
}

/* The agent holds only the ed25519 key; an unlisted identity file after it
 * is not needed (the agent's key is tried first and succeeds). */
static void test_agent_then_file(void)
{
    coil_ssh_options o = sshd_options();
    o.agent = 1;
    o.agent_socket = coil_test_sshd("SSH_AUTH_SOCK_TEST");
    o.identity_file = coil_test_sshd("SSH_KEY_UNLISTED");
    expect_ready(&o, 0);
}

/* An RSA key is in authorized_keys, but libssh2 1.10 signs with ssh-rsa
 * (SHA-1), which sshd 8.8+ refuses: the failure says exactly that. */
static void test_key_rsa_refused(void)
{
    coil_ssh_options o = sshd_options();
    o.identity_file = coil_test_sshd("SSH_KEY_RSA");
    attempt a;
    attempt_run(&a, &o);
    if (attempt_failed_with(&a, COIL_SSH_EAUTH)) {
        COIL_TEST_ASSERT_HAS(a.text, "ssh-rsa");
        COIL_TEST_ASSERT_HAS(a.text, "SHA-1");
        COIL_TEST_ASSERT_HAS(a.text, "libssh2");
        COIL_TEST_ASSERT_HAS(a.text, coil_test_sshd("SSH_KEY_RSA"));
    }
    attempt_end(&a);
}

/* A key the server does not list: the failure names the user, the server,
 * what was tried and what the server allows. */
static void test_key_unlisted(void)
{
    coil_ssh_options o = sshd_options();
    o.identity_file = coil_test_sshd("SSH_KEY_UNLISTED");
    attempt a;
    attempt_run(&a, &o);
    if (attempt_failed_with(&a, COIL_SSH_EAUTH)) {
        COIL_TEST_ASSERT_HAS(a.text, coil_test_sshd("SSH_USER"));
        COIL_TEST_ASSERT_HAS(a.text, host_port(sshd_port()));
        COIL_TEST_ASSERT_HAS(a.text, coil_test_sshd("SSH_KEY_UNLISTED"));
        const char *allows = a.text ? strstr(a.text, "allows") : NULL;
        COIL_TEST_ASSERT_HAS(allows, "publickey");
    }
    attempt_end(&a);
}

/* No method at all: still a clear failure listing what the server allows. */
static void test_no_method(void)
{
    coil_ssh_options o = sshd_options();
    attempt a;
    attempt_run(&a, &o);
    if (attempt_failed_with(&a, COIL_SSH_EAUTH)) {
        const char *allows = a.text ? strstr(a.text, "allows") : NULL;
        COIL_TEST_ASSERT_HAS(allows, "publickey");
    }
    attempt_end(&a);
}

/* ---- host keys -----------------------------------------------------------------------
 */

/* The known_hosts file given: the fixture's, accepted with the key reported. */
static void test_host_key_accepted(void)
{
    coil_ssh_options o = ed25519_options(NULL);
    expect_ready(&o, 1);
}

/* Handshake only: fires once the key is verified, before authentication. */
static void test_host_key_handshake_deferred(void)
{
    coil_ssh_options o = ed25519_options(NULL);
    coil_reactor *r = coil_test_reactor(NULL);
    coil_ssh_session *s = NULL;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_ssh_session_connect(r, &o, &s, &err), 0);
    CU_ASSERT(coil_ssh_session_host_key_fingerprint(s) == NULL);
    coil_deferred *h = coil_ssh_session_handshake(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT(coil_test_wait_fired(r, h, WAIT_SECONDS));
    CU_ASSERT_FALSE(coil_deferred_is_failure(h));
    COIL_TEST_ASSERT_HAS(coil_ssh_session_host_key_fingerprint(s), "SHA256:");
    coil_deferred_unref(h);
    attempt a = {.r = r, .s = s, .fired = 1};
    attempt_end(&a);
}

/* An empty known_hosts: refused, saying host:port, key type, fingerprint and
 * how to add it. */
static void test_host_key_unknown(void)
{
    char kh[256];
    CU_ASSERT_EQUAL_FATAL(coil_test_temp_file(kh, sizeof kh, "kh-empty"), 0);
    coil_ssh_options o = ed25519_options(kh);
    attempt a;
    attempt_run(&a, &o);
    if (attempt_failed_with(&a, COIL_SSH_EHOSTKEY_UNKNOWN)) {
        COIL_TEST_ASSERT_HAS(a.text, host_port(sshd_port()));
        COIL_TEST_ASSERT_HAS(a.text, kh);
        int ecdsa = a.text && strstr(a.text, coil_test_sshd("SSHD_FP_ECDSA"));
        int ed = a.text && strstr(a.text, coil_test_sshd("SSHD_FP_ED25519"));
        if (!ecdsa && !ed)
            fprintf(stderr, "\n    no server fingerprint (%s or %s) in: %s\n",
                    coil_test_sshd("SSHD_FP_ECDSA"), coil_test_sshd("SSHD_FP_ED25519"),
                    a.text);
        CU_ASSERT(ecdsa || ed);
        COIL_TEST_ASSERT_HAS(a.text, ecdsa ? "ECDSA" : "ED25519");
        COIL_TEST_ASSERT_HAS(a.text, "ssh-keyscan");
        COIL_TEST_ASSERT_HAS(a.text, "accept-new");
    }
    /* Nothing was written to the file. */
    char *after = slurp(kh);
    CU_ASSERT(after && after[0] == '\0');
    free(after);
    attempt_end(&a);
    unlink(kh);
}

/* A missing known_hosts file is an empty one. */
static void test_host_key_unknown_missing_file(void)
{
    char kh[256];
    CU_ASSERT_EQUAL_FATAL(coil_test_temp_file(kh, sizeof kh, "kh-missing"), 0);
    unlink(kh);
    coil_ssh_options o = ed25519_options(kh);
    expect_failure(&o, COIL_SSH_EHOSTKEY_UNKNOWN);
    CU_ASSERT_EQUAL(access(kh, F_OK), -1);
}

/* known_hosts listing, for [127.0.0.1]:PORT, keys of both of the server's
 * types that it does not have (SSH_OTHER_HOST_PUB, ecdsa, and an ed25519
 * user key's public half), so the key is "changed" whichever type libssh2
 * negotiates. */
static void write_changed_known_hosts(const char *kh)
{
    char path[600];
    snprintf(path, sizeof path, "%s.pub", coil_test_sshd("SSH_KEY_UNLISTED"));
    char *other = slurp(coil_test_sshd("SSH_OTHER_HOST_PUB"));
    char *wrong_ed = slurp(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(other);
    CU_ASSERT_PTR_NOT_NULL_FATAL(wrong_ed);
    other[strcspn(other, "\n")] = '\0';
    wrong_ed[strcspn(wrong_ed, "\n")] = '\0';
    char text[8192];
    int port = sshd_port();
    snprintf(text, sizeof text, "[127.0.0.1]:%d %s\n[127.0.0.1]:%d %s\n", port, other,
             port, wrong_ed);
    CU_ASSERT_EQUAL(write_text(kh, text), 0);
    free(other);
    free(wrong_ed);
}

static void test_host_key_changed(void)
{
    char kh[256];
    CU_ASSERT_EQUAL_FATAL(coil_test_temp_file(kh, sizeof kh, "kh-changed"), 0);
    write_changed_known_hosts(kh);
    coil_ssh_options o = ed25519_options(kh);
    attempt a;
    attempt_run(&a, &o);
    if (attempt_failed_with(&a, COIL_SSH_EHOSTKEY_CHANGED)) {
        COIL_TEST_ASSERT_HAS(a.text, "CHANGED");
        COIL_TEST_ASSERT_HAS(a.text, host_port(sshd_port()));
        COIL_TEST_ASSERT_HAS(a.text, kh);
    }
    attempt_end(&a);
    /* accept-new does not accept a changed key either. */
    o.host_key_policy = COIL_SSH_HOST_KEY_ACCEPT_NEW;
    expect_failure(&o, COIL_SSH_EHOSTKEY_CHANGED);
    unlink(kh);
}

/* known_hosts text made of `fmt` lines with %1$d the port and %2$s / %3$s
 * the server's ecdsa / ed25519 public key ("type base64"). */
static void write_known_hosts_with_server_keys(const char *kh, const char *fmt, int port)
{
    char *ecdsa = slurp(coil_test_sshd("SSHD_HOST_KEY_ECDSA_PUB"));
    char *ed = slurp(coil_test_sshd("SSHD_HOST_KEY_ED25519_PUB"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(ecdsa);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ed);
    ecdsa[strcspn(ecdsa, "\n")] = '\0';
    ed[strcspn(ed, "\n")] = '\0';
    char text[8192];
    snprintf(text, sizeof text, fmt, port, ecdsa, ed);
    CU_ASSERT_EQUAL(write_text(kh, text), 0);
    free(ecdsa);
    free(ed);
}

/* Both server keys @revoked (and listed plainly too): refused as revoked,
 * whichever type is negotiated. */
static void test_host_key_revoked(void)
{
    char kh[256];
    CU_ASSERT_EQUAL_FATAL(coil_test_temp_file(kh, sizeof kh, "kh-revoked"), 0);
    write_known_hosts_with_server_keys(kh,
                                       "[127.0.0.1]:%1$d %2$s\n[127.0.0.1]:%1$d %3$s\n"
                                       "@revoked * %2$s\n@revoked * %3$s\n",
                                       sshd_port());
    coil_ssh_options o = ed25519_options(kh);
    attempt a;
    attempt_run(&a, &o);
    if (attempt_failed_with(&a, COIL_SSH_EHOSTKEY_REVOKED)) {
        COIL_TEST_ASSERT_HAS(a.text, "REVOKED");
        COIL_TEST_ASSERT_HAS(a.text, host_port(sshd_port()));
    }
    attempt_end(&a);
    /* No policy gets past a revoked key, accept-new included. */
    o.host_key_policy = COIL_SSH_HOST_KEY_ACCEPT_NEW;
    expect_failure(&o, COIL_SSH_EHOSTKEY_REVOKED);
    unlink(kh);
}

/* The keys listed for the same address on another port, and for the
 * address without a port (port 22): unknown here. Then, in a file of
 * comments, other hosts and the right line in the middle: accepted. */
static void test_host_key_port_specific(void)
{
    char kh[256];
    CU_ASSERT_EQUAL_FATAL(coil_test_temp_file(kh, sizeof kh, "kh-port"), 0);
    int other = sshd_port() == 65000 ? 65001 : 65000;
    write_known_hosts_with_server_keys(kh,
                                       "[127.0.0.1]:%1$d %2$s\n[127.0.0.1]:%1$d %3$s\n"
                                       "127.0.0.1 %2$s\n127.0.0.1 %3$s\n",
                                       other);
    coil_ssh_options o = ed25519_options(kh);
    expect_failure(&o, COIL_SSH_EHOSTKEY_UNKNOWN);

    write_known_hosts_with_server_keys(kh,
                                       "# coil test\n\nexample.org %2$s\n"
                                       "[localhost]:%1$d %3$s\n"
                                       "[127.0.0.1]:%1$d,[::1]:%1$d %2$s\n"
                                       "[127.0.0.1]:%1$d %3$s\n# end\n",
                                       sshd_port());
    expect_ready(&o, 1);
    unlink(kh);
}

/* accept-new: an empty file gets the key and the next strict connection
 * with it succeeds. */
static void test_host_key_accept_new(void)
{
    char kh[256];
    CU_ASSERT_EQUAL_FATAL(coil_test_temp_file(kh, sizeof kh, "kh-new"), 0);
    coil_ssh_options o = ed25519_options(kh);
    o.host_key_policy = COIL_SSH_HOST_KEY_ACCEPT_NEW;
    attempt a;
    attempt_run(&a, &o);
    char fp[128] = "";
    if (attempt_ok(&a)) {
        check_sshd_host_key(&a);
        snprintf(fp, sizeof fp, "%s", coil_ssh_session_host_key_fingerprint(a.s));
    }
    attempt_end(&a);
    char *text = slurp(kh);
    char want[64];
    snprintf(want, sizeof want, "[127.0.0.1]:%d ", sshd_port());
    COIL_TEST_ASSERT_HAS(text, want);
    free(text);
    char kfp[128] = "";
    CU_ASSERT_EQUAL(keygen_fingerprint(kh, kfp, sizeof kfp), 0);
    CU_ASSERT_STRING_EQUAL(kfp, fp);

    o.host_key_policy = COIL_SSH_HOST_KEY_STRICT;
    expect_ready(&o, 0);
    unlink(kh);
}

/* insecure-accept-any: no known_hosts entry, or a changed one, still
 * connects, with a warning in the log. */
static void test_host_key_insecure_accept_any(void)
{
    char kh[256];
    CU_ASSERT_EQUAL_FATAL(coil_test_temp_file(kh, sizeof kh, "kh-any"), 0);
    coil_ssh_options o = ed25519_options(kh);
    o.host_key_policy = COIL_SSH_HOST_KEY_INSECURE_ACCEPT_ANY;
    coil_test_log_capture_start();
    expect_ready(&o, 0);
    size_t warnings = coil_test_log_count(COIL_LOG_WARN);
    if (warnings == 0)
        fprintf(stderr, "\n    no warning logged; the log: %s\n", coil_test_log_text());
    CU_ASSERT(warnings >= 1);
    coil_test_log_capture_stop();
    char *text = slurp(kh);
    CU_ASSERT(text && text[0] == '\0'); /* nothing added */
    free(text);

    write_changed_known_hosts(kh);
    expect_ready(&o, 0);
    unlink(kh);
}

/* Hashed entries (ssh-keygen -H) match too. */
static void test_host_key_hashed(void)
{
    char kh[256];
    CU_ASSERT_EQUAL_FATAL(coil_test_temp_file(kh, sizeof kh, "kh-hashed"), 0);
    char *plain = slurp(coil_test_sshd("SSH_KNOWN_HOSTS"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(plain);
    CU_ASSERT_EQUAL(write_text(kh, plain), 0);
    free(plain);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ssh-keygen -q -H -f '%s' >/dev/null 2>&1", kh);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
    char old[300];
    snprintf(old, sizeof old, "%s.old", kh);
    unlink(old);
    char *hashed = slurp(kh);
    COIL_TEST_ASSERT_HAS(hashed, "|1|");
    CU_ASSERT(hashed && strstr(hashed, "127.0.0.1") == NULL);
    free(hashed);

    coil_ssh_options o = ed25519_options(kh);
    expect_ready(&o, 1);
    unlink(kh);
}

/* ---- password and keyboard-interactive: the Conch server ----------------------- */

typedef struct conch {
    pid_t pid;
    int in_fd; /* its stdin: closing it ends the server */
    int port;
    char known_hosts[256]; /* written by the server */
    char fingerprint[128]; /* as it printed it */
} conch;

/* Start tests/ssh/conch_server.py with /usr/bin/python3 and read its PORT
 * line (bounded); fails the test loudly when it cannot. */
static int conch_start(conch *c, const char *host_key)
{
    memset(c, 0, sizeof *c);
    c->pid = -1;
    c->in_fd = -1;
    if (access("/usr/bin/python3", X_OK) != 0) {
        fprintf(stderr,
                "\n    /usr/bin/python3 is missing: install python3 and python3-twisted "
                "(tools/install-deps)\n");
        CU_FAIL("no /usr/bin/python3");
        return -1;
    }
    if (coil_test_temp_file(c->known_hosts, sizeof c->known_hosts, "kh-conch") != 0) {
        CU_FAIL("temp file");
        return -1;
    }
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
        CU_FAIL("pipe");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        CU_FAIL("fork");
        return -1;
    }
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        execl("/usr/bin/python3", "python3", COIL_TEST_SSH_DIR "/conch_server.py",
              "--host-key", host_key, "--known-hosts", c->known_hosts, (char *)NULL);
        fprintf(stderr, "exec /usr/bin/python3 failed: %s\n", strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    c->pid = pid;
    c->in_fd = in[1];
    /* Read lines until PORT, at most 60 s. */
    char buf[4096];
    size_t len = 0;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        buf[len] = '\0';
        char *p = strstr(buf, "PORT ");
        if (p && strchr(p, '\n')) {
            c->port = atoi(p + 5);
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        int left = 60000 - (int)((now.tv_sec - t0.tv_sec) * 1000 +
                                 (now.tv_nsec - t0.tv_nsec) / 1000000);
        struct pollfd pfd = {.fd = out[0], .events = POLLIN};
        int n = left > 0 ? poll(&pfd, 1, left) : 0;
        if (n <= 0) {
            fprintf(stderr, "\n    conch_server.py printed no PORT line in 60 s\n");
            break;
        }
        ssize_t got = read(out[0], buf + len, sizeof buf - 1 - len);
        if (got <= 0) {
            fprintf(stderr,
                    "\n    conch_server.py exited before listening (its stderr above "
                    "says why; is python3-twisted installed? tools/install-deps)\n");
            break;
        }
        len += (size_t)got;
        if (len >= sizeof buf - 1)
            break;
    }
    buf[len] = '\0';
    char *fp = strstr(buf, "FINGERPRINT ");
    if (fp)
        snprintf(c->fingerprint, sizeof c->fingerprint, "%.*s",
                 (int)strcspn(fp + 12, "\n"), fp + 12);
    close(out[0]);
    if (c->port <= 0) {
        CU_FAIL("the Conch test server did not start");
        return -1;
    }
    return 0;
}

/* Stop a Conch server: EOF on its stdin, then TERM, then KILL (bounded,
 * 30 s in all). 0, or -1 (with a message) when it had to be killed. */
static int conch_stop(conch *c)
{
    int rc = 0;
    if (c->in_fd >= 0)
        close(c->in_fd); /* it exits on EOF */
    c->in_fd = -1;
    if (c->pid > 0) {
        int status = 0;
        for (int i = 0; i < 600 && c->pid > 0; i++) {
            if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
                c->pid = -1;
                break;
            }
            if (i == 300)
                kill(c->pid, SIGTERM);
            /* waiting for the child to exit: poll its status every 50 ms */
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (c->pid > 0) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &status, 0);
            c->pid = -1;
            fprintf(stderr,
                    "the Conch test server did not exit on stdin EOF or SIGTERM\n");
            rc = -1;
        }
    }
    if (c->known_hosts[0])
        unlink(c->known_hosts);
    c->known_hosts[0] = '\0';
    return rc;
}

/* The Conch servers are shared by the tests of the suite (a Python start
 * costs more than all the logins): one per host key type, started on first
 * use, stopped by the suite's cleanup. */
static conch conch_servers[2];
static int conch_started[2];

static const conch *conch_get(const char *host_key)
{
    int i = strcmp(host_key, "ecdsa") == 0;
    if (conch_started[i]) {
        int status;
        if (waitpid(conch_servers[i].pid, &status, WNOHANG) == 0)
            return &conch_servers[i];
        fprintf(stderr,
                "\n    the Conch test server (%s) died (status %d); starting another\n",
                host_key, status);
        CU_FAIL("the Conch test server died");
        conch_servers[i].pid = -1; /* reaped */
        conch_stop(&conch_servers[i]);
        conch_started[i] = 0;
    }
    if (conch_start(&conch_servers[i], host_key) != 0) {
        conch_stop(&conch_servers[i]);
        return NULL;
    }
    conch_started[i] = 1;
    return &conch_servers[i];
}

static int conch_cleanup(void)
{
    int rc = 0;
    for (int i = 0; i < 2; i++)
        if (conch_started[i]) {
            if (conch_stop(&conch_servers[i]) != 0)
                rc = -1;
            conch_started[i] = 0;
        }
    return rc;
}

static coil_ssh_options conch_options(const conch *c, const char *user)
{
    coil_ssh_options o = {0};
    o.host = "127.0.0.1";
    o.port = c->port;
    o.user = user;
    o.known_hosts_file = c->known_hosts;
    o.host_key_policy = COIL_SSH_HOST_KEY_STRICT;
    o.handshake_timeout = WAIT_SECONDS;
    return o;
}

/* The server's fingerprint: as it printed it, as ssh-keygen reads it from
 * the known_hosts it wrote, and as the session saw it. */
static void check_conch_host_key(const conch *c, const attempt *a, const char *type)
{
    char kfp[128] = "";
    CU_ASSERT_EQUAL(keygen_fingerprint(c->known_hosts, kfp, sizeof kfp), 0);
    CU_ASSERT_STRING_EQUAL(kfp, c->fingerprint);
    const char *fp = coil_ssh_session_host_key_fingerprint(a->s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    CU_ASSERT_STRING_EQUAL(fp, kfp);
    const char *t = coil_ssh_session_host_key_type(a->s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    COIL_TEST_ASSERT_HAS(t, type);
}

static void test_password(void)
{
    const conch *cp = conch_get("ed25519");
    if (cp) {
        conch c = *cp;
        coil_ssh_options o = conch_options(&c, "alice");
        o.password = "wonderland";
        attempt a;
        attempt_run(&a, &o);
        if (attempt_ok(&a)) {
            check_conch_host_key(&c, &a, "ssh-ed25519");
            COIL_TEST_ASSERT_HAS(coil_ssh_session_server_banner(a.s), "SSH-2.0-Twisted");
            check_exec(&a, "echo hello", "hello\n");
        }
        attempt_end(&a);
    }
}

static void test_password_wrong(void)
{
    const conch *cp = conch_get("ed25519");
    if (cp) {
        conch c = *cp;
        coil_ssh_options o = conch_options(&c, "alice");
        o.password = "looking-glass";
        attempt a;
        attempt_run(&a, &o);
        if (attempt_failed_with(&a, COIL_SSH_EAUTH)) {
            COIL_TEST_ASSERT_HAS(a.text, "alice");
            COIL_TEST_ASSERT_HAS(a.text, host_port(c.port));
            COIL_TEST_ASSERT_HAS(a.text, "password");
            const char *allows = a.text ? strstr(a.text, "allows") : NULL;
            COIL_TEST_ASSERT_HAS(allows, "password");
            COIL_TEST_ASSERT_HAS(allows, "keyboard-interactive");
            /* The password itself never appears in a message. */
            CU_ASSERT(a.text && strstr(a.text, "looking-glass") == NULL);
        }
        attempt_end(&a);
    }
}

/* Answers keyboard-interactive prompts from a table; records what it saw. */
typedef struct prompter {
    int calls;
    int echo_seen[4];
    char prompts[4][64];
    const char *answer_password; /* for "Password: " */
    const char *answer_code;     /* for "Code: " */
} prompter;

static int answer(void *arg, const char *name, const char *instruction,
                  const char *prompt, int echo, char *out, size_t size)
{
    (void)name;
    (void)instruction;
    prompter *p = arg;
    if (p->calls < 4) {
        snprintf(p->prompts[p->calls], sizeof p->prompts[0], "%s", prompt ? prompt : "");
        p->echo_seen[p->calls] = echo;
    }
    p->calls++;
    const char *a = NULL;
    if (prompt && strstr(prompt, "Password"))
        a = p->answer_password;
    else if (prompt && strstr(prompt, "Code"))
        a = p->answer_code;
    if (!a)
        return -1;
    snprintf(out, size, "%s", a);
    return 0;
}

static void test_keyboard_interactive(void)
{
    const conch *cp = conch_get("ed25519");
    if (cp) {
        conch c = *cp;
        coil_ssh_options o = conch_options(&c, "bob");
        prompter p = {.answer_password = "hunter2"};
        o.prompt = answer;
        o.prompt_arg = &p;
        attempt a;
        attempt_run(&a, &o);
        if (attempt_ok(&a))
            check_exec(&a, "echo bob", "bob\n");
        CU_ASSERT_EQUAL(p.calls, 1);
        CU_ASSERT_STRING_EQUAL(p.prompts[0], "Password: ");
        CU_ASSERT_EQUAL(p.echo_seen[0], 0);
        attempt_end(&a);
    }
}

/* Two prompts in one request, one echoed; the server's key is ECDSA. */
static void test_keyboard_interactive_two_prompts(void)
{
    const conch *cp = conch_get("ecdsa");
    if (cp) {
        conch c = *cp;
        coil_ssh_options o = conch_options(&c, "carol");
        prompter p = {.answer_password = "hunter2", .answer_code = "42"};
        o.prompt = answer;
        o.prompt_arg = &p;
        attempt a;
        attempt_run(&a, &o);
        if (attempt_ok(&a))
            check_conch_host_key(&c, &a, "ecdsa-sha2-nistp256");
        CU_ASSERT_EQUAL(p.calls, 2);
        CU_ASSERT_STRING_EQUAL(p.prompts[0], "Password: ");
        CU_ASSERT_EQUAL(p.echo_seen[0], 0);
        CU_ASSERT_STRING_EQUAL(p.prompts[1], "Code: ");
        CU_ASSERT_NOT_EQUAL(p.echo_seen[1], 0);
        attempt_end(&a);
    }
}

/* A password and no prompt callback: the password answers the one
 * non-echo keyboard-interactive prompt (after the password method failed:
 * bob has no password in the server's table). */
static void test_keyboard_interactive_with_password(void)
{
    const conch *cp = conch_get("ed25519");
    if (cp) {
        conch c = *cp;
        coil_ssh_options o = conch_options(&c, "bob");
        o.password = "hunter2";
        expect_ready(&o, 0);
    }
}

static void test_keyboard_interactive_wrong(void)
{
    const conch *cp = conch_get("ed25519");
    if (cp) {
        conch c = *cp;
        coil_ssh_options o = conch_options(&c, "bob");
        prompter p = {.answer_password = "swordfish"};
        o.prompt = answer;
        o.prompt_arg = &p;
        attempt a;
        attempt_run(&a, &o);
        if (attempt_failed_with(&a, COIL_SSH_EAUTH)) {
            COIL_TEST_ASSERT_HAS(a.text, "keyboard-interactive");
            const char *allows = a.text ? strstr(a.text, "allows") : NULL;
            COIL_TEST_ASSERT_HAS(allows, "password");
            COIL_TEST_ASSERT_HAS(allows, "keyboard-interactive");
            CU_ASSERT(a.text && strstr(a.text, "swordfish") == NULL);
        }
        CU_ASSERT(p.calls >= 1);
        attempt_end(&a);
    }
}

/* The prompt callback gives up (-1): authentication fails cleanly. */
static void test_keyboard_interactive_give_up(void)
{
    const conch *cp = conch_get("ed25519");
    if (cp) {
        conch c = *cp;
        coil_ssh_options o = conch_options(&c, "carol");
        prompter p = {.answer_password = "hunter2"}; /* no answer for "Code: " */
        o.prompt = answer;
        o.prompt_arg = &p;
        expect_failure(&o, COIL_SSH_EAUTH);
    }
}

/* The Conch server's key is not in an empty known_hosts: refused (strict)
 * with its fingerprint, as with sshd. */
static void test_conch_host_key_unknown(void)
{
    const conch *cp = conch_get("ed25519");
    if (cp) {
        conch c = *cp;
        char kh[256];
        CU_ASSERT_EQUAL_FATAL(coil_test_temp_file(kh, sizeof kh, "kh-conch-empty"), 0);
        coil_ssh_options o = conch_options(&c, "alice");
        o.password = "wonderland";
        o.known_hosts_file = kh;
        attempt a;
        attempt_run(&a, &o);
        if (attempt_failed_with(&a, COIL_SSH_EHOSTKEY_UNKNOWN)) {
            COIL_TEST_ASSERT_HAS(a.text, host_port(c.port));
            COIL_TEST_ASSERT_HAS(a.text, "ED25519");
            COIL_TEST_ASSERT_HAS(a.text, c.fingerprint);
        }
        attempt_end(&a);
        unlink(kh);
    }
}

static int add(void)
{
    static const coil_test_case sshd_cases[] = {
        COIL_TEST(test_fixture_banner),
        COIL_TEST(test_key_ed25519),
        COIL_TEST(test_key_ecdsa),
        COIL_TEST(test_key_passphrase),
        COIL_TEST(test_key_exec_echo),
        COIL_TEST(test_key_wrong_passphrase),
        COIL_TEST(test_key_no_passphrase),
        COIL_TEST(test_key_memory_ed25519),
        COIL_TEST(test_key_memory_ecdsa),
        COIL_TEST(test_key_memory_passphrase),
        COIL_TEST(test_key_memory_wrong_passphrase),
        COIL_TEST(test_agent),
        COIL_TEST(test_agent_then_file),
        COIL_TEST(test_key_rsa_refused),
        COIL_TEST(test_key_unlisted),
        COIL_TEST(test_no_method),
        COIL_TEST(test_host_key_accepted),
        COIL_TEST(test_host_key_handshake_deferred),
        COIL_TEST(test_host_key_unknown),
        COIL_TEST(test_host_key_unknown_missing_file),
        COIL_TEST(test_host_key_changed),
        COIL_TEST(test_host_key_revoked),
        COIL_TEST(test_host_key_port_specific),
        COIL_TEST(test_host_key_accept_new),
        COIL_TEST(test_host_key_insecure_accept_any),
        COIL_TEST(test_host_key_hashed),
        {NULL, NULL}};
    static const coil_test_case conch_cases[] = {
        COIL_TEST(test_password),
        COIL_TEST(test_password_wrong),
        COIL_TEST(test_keyboard_interactive),
        COIL_TEST(test_keyboard_interactive_two_prompts),
        COIL_TEST(test_keyboard_interactive_with_password),
        COIL_TEST(test_keyboard_interactive_wrong),
        COIL_TEST(test_keyboard_interactive_give_up),
        COIL_TEST(test_conch_host_key_unknown),
        {NULL, NULL}};
    if (coil_test_add_suite("ssh_auth_sshd", sshd_cases) != 0)
        return -1;
    CU_pSuite conch_suite = CU_add_suite("ssh_auth_conch", NULL, conch_cleanup);
    if (!conch_suite)
        return -1;
    for (const coil_test_case *t = conch_cases; t->name; t++)
        if (!CU_add_test(conch_suite, t->name, t->fn))
            return -1;
    return 0;
}

int main(void)
{
    /* Never the user's own agent or ~/.ssh: every test names its files and
     * agent socket; a bug that fell back to the defaults fails instead. */
    unsetenv("SSH_AUTH_SOCK");
    setenv("HOME", "/nonexistent/coil-test-home", 1);
    signal(SIGPIPE, SIG_IGN);
    return coil_test_main(add);
}
