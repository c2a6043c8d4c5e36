/* coil's own SSH client (libssh2 1.10: aes-ctr + hmac-sha2-256, no strict
 * kex, no ext-info) against coil's SSH server, both in this process on
 * loopback TCP: publickey ed25519 and ecdsa, password, keyboard-interactive,
 * a wrong password, exec with exit statuses, flow-controlled transfers
 * both ways, and 50 exec channels on one session, each `cat` echoing its
 * own data. Host keys are checked strictly against a known_hosts written
 * for the server's port. Keys come from the interop fixture
 * (interop-fixture.sh): $COIL_TEST_SSHD_INTEROP/env. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include <coil/coil.h>
#include <coil/ssh.h>
#include <coil/ssh_server.h>

#include "sshd_app.h"
#include "testutil.h"

#define WAIT 60.0

/* ---- the server ------------------------------------------------------------------ */

static coil_reactor *R;
static sshd_app *APP;
static int PORT;
static char KNOWN_HOSTS[256];

static int suite_init(void)
{
    coil_reactor_options ro = {0};
    if (coil_reactor_new(&R, &ro) != 0) {
        fprintf(stderr, "test_sshd_libssh2: cannot make a reactor (COIL_REACTOR=%s)\n",
                getenv("COIL_REACTOR") ? getenv("COIL_REACTOR") : "");
        return -1;
    }
    sshd_app_options o = {0};
    o.host_key_file = coil_test_sshd_interop("HOST_KEY");
    o.authorized_keys_file = coil_test_sshd_interop("AUTHORIZED_KEYS");
    o.quiet = !getenv("COIL_TEST_VERBOSE");
    coil_failure *err = NULL;
    if (sshd_app_start(R, &o, &APP, &err) != 0) {
        fprintf(stderr, "test_sshd_libssh2: the server did not start: %s\n",
                err ? coil_failure_message(err) : "?");
        coil_failure_free(err);
        return -1;
    }
    PORT = sshd_app_port(APP);
    return coil_test_sshd_interop_known_hosts(KNOWN_HOSTS, sizeof KNOWN_HOSTS, PORT,
                                              "sshd-kh");
}

static int suite_clean(void)
{
    sshd_app_stop(APP);
    int aborted = coil_reactor_shutdown(R, 10.0);
    coil_ssh_server_stats st;
    coil_ssh_server_get_stats(sshd_app_server(APP), &st);
    int bad = aborted != 0 || st.connections != 0 || st.channels != 0;
    if (bad)
        fprintf(stderr,
                "test_sshd_libssh2: at the end %d connection(s) aborted, the server "
                "still counts %zu connections and %zu channels\n",
                aborted, st.connections, st.channels);
    sshd_app_free(APP);
    coil_reactor_free(R);
    unlink(KNOWN_HOSTS);
    return bad ? -1 : 0;
}

/* ---- a client session ------------------------------------------------------------ */

static int answer_prompt(void *arg, const char *name, const char *instruction,
                         const char *prompt, int echo, char *answer, size_t size)
{
    (void)name, (void)instruction, (void)echo;
    int *count = arg;
    (*count)++;
    if (!strstr(prompt, "assword"))
        fprintf(stderr, "test_sshd_libssh2: unexpected prompt '%s'\n", prompt);
    snprintf(answer, size, "%s", "secret");
    return 0;
}

static void base_options(coil_ssh_options *o, const char *user)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = PORT;
    o->user = user;
    o->known_hosts_file = KNOWN_HOSTS;
    o->host_key_policy = COIL_SSH_HOST_KEY_STRICT;
}

/* Connect and wait for the ready deferred: the session when it fired,
 * NULL with *failure (the caller's) when it failed. */
static coil_ssh_session *connect_session(const coil_ssh_options *o,
                                         coil_failure **failure)
{
    coil_ssh_session *s = NULL;
    coil_failure *err = NULL;
    *failure = NULL;
    if (coil_ssh_session_connect(R, o, &s, &err) != 0) {
        *failure = err;
        return NULL;
    }
    coil_deferred *d = coil_ssh_session_ready(s);
    int fired = coil_test_wait_fired(R, d, WAIT);
    CU_ASSERT(fired);
    if (fired && coil_deferred_is_failure(d))
        *failure = coil_deferred_take_failure(d);
    coil_deferred_unref(d);
    if (!fired || *failure) {
        coil_deferred *c = coil_ssh_session_close(s);
        coil_test_wait_fired(R, c, WAIT);
        coil_deferred_unref(c);
        coil_ssh_session_free(s);
        return NULL;
    }
    return s;
}

static void close_session(coil_ssh_session *s)
{
    coil_deferred *d = coil_ssh_session_close(s);
    CU_ASSERT(coil_test_wait_fired(R, d, WAIT));
    coil_deferred_unref(d);
    coil_ssh_session_free(s);
}

/* A session as "dave" with the fixture's key KEY (a key name of its env);
 * the test stops when the login fails. */
static coil_ssh_session *login_dave(const char *key)
{
    coil_ssh_options o;
    base_options(&o, "dave");
    o.identity_file = coil_test_sshd_interop(key);
    coil_failure *f = NULL;
    coil_ssh_session *s = connect_session(&o, &f);
    if (!s) {
        coil_failure_free(f);
        CU_FAIL_FATAL("login failed");
    }
    return s;
}

/* A login that must be refused (COIL_SSH_EAUTH); its message in msg when
 * msg is not NULL. */
static void expect_refused(const coil_ssh_options *o, char *msg, size_t cap)
{
    coil_failure *f = NULL;
    coil_ssh_session *s = connect_session(o, &f);
    CU_ASSERT(s == NULL);
    CU_ASSERT(f && coil_failure_check(f, COIL_DOMAIN_SSH, COIL_SSH_EAUTH));
    if (msg)
        coil_failure_format(f, msg, cap);
    coil_failure_free(f);
    if (s)
        close_session(s);
}

/* ---- an exec channel: sends `send`, EOF, records output and exit status --------- */

typedef struct xp {
    coil_protocol base;
    const unsigned char *send;
    size_t send_len;
    unsigned char *got;
    size_t len, cap;
    int made, lost, destroyed;
    int hold_eof; /* 1: EOF only when the test says (send_eof) */
    int exit_kind, exit_status;
    char reason[512];
    int *done_count;
} xp;

static void xp_made(coil_protocol *p)
{
    xp *x = (xp *)p;
    x->made = 1;
    if (x->send_len)
        coil_transport_write(p->transport, x->send, x->send_len);
    if (!x->hold_eof)
        coil_transport_lose_write_connection(p->transport);
}

static void xp_data(coil_protocol *p, const void *d, size_t n)
{
    xp *x = (xp *)p;
    if (x->len + n > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < x->len + n)
            cap *= 2;
        unsigned char *g = realloc(x->got, cap);
        if (!g)
            abort();
        x->got = g;
        x->cap = cap;
    }
    memcpy(x->got + x->len, d, n);
    x->len += n;
}

static void xp_lost(coil_protocol *p, const coil_failure *reason)
{
    xp *x = (xp *)p;
    const char *sig = NULL;
    x->exit_kind = coil_ssh_channel_exit_status(p->transport, &x->exit_status, &sig);
    coil_failure_format(reason, x->reason, sizeof x->reason);
    x->lost = 1;
    if (x->done_count)
        (*x->done_count)++;
}

static void xp_destroy(coil_protocol *p)
{
    ((xp *)p)->destroyed = 1;
}

static const coil_protocol_ops xp_ops = {
    .connection_made = xp_made,
    .data_received = xp_data,
    .connection_lost = xp_lost,
    .destroy = xp_destroy,
};

static void xp_init(xp *x, const void *send, size_t len)
{
    memset(x, 0, sizeof *x);
    x->base.ops = &xp_ops;
    x->send = send;
    x->send_len = len;
}

static void open_failed(coil_deferred *d, void *arg)
{
    coil_failure *f = coil_deferred_take_failure(d);
    char *m = coil_failure_to_string(f);
    fprintf(stderr, "test_sshd_libssh2: exec '%s' did not open: %s\n", (const char *)arg,
            m);
    free(m);
    coil_failure_free(f);
}

static void start_exec(coil_ssh_session *s, const char *command, xp *x)
{
    coil_ssh_channel_options co = {0};
    co.type = COIL_SSH_EXEC;
    co.command = command;
    coil_deferred *d = coil_ssh_open_channel(s, &co, &x->base);
    CU_ASSERT_FATAL(d != NULL);
    coil_deferred_add_errback(d, open_failed, (void *)command);
    coil_deferred_unref(d);
}

static int xp_destroyed(void *arg)
{
    return ((xp *)arg)->destroyed;
}

static int wait_until(int (*cond)(void *), void *arg, double seconds)
{
    double end = coil_reactor_seconds(R) + seconds;
    while (!cond(arg) && coil_reactor_seconds(R) < end)
        coil_reactor_iterate(R, 0.05);
    return cond(arg);
}

/* Run `command` with `send` as its stdin; x holds the result (the caller
 * frees x->got). */
static void run_exec(coil_ssh_session *s, const char *command, const void *send,
                     size_t len, xp *x)
{
    xp_init(x, send, len);
    start_exec(s, command, x);
    CU_ASSERT(wait_until(xp_destroyed, x, WAIT));
    CU_ASSERT(x->made);
}

/* whoami's output, NUL-terminated, in buf. */
static void whoami(coil_ssh_session *s, char *buf, size_t size)
{
    xp x;
    run_exec(s, "whoami", NULL, 0, &x);
    size_t n = x.len < size - 1 ? x.len : size - 1;
    memcpy(buf, x.got ? (const char *)x.got : "", n);
    buf[n] = '\0';
    CU_ASSERT(x.exit_kind == 1 && x.exit_status == 0);
    free(x.got);
}

/* ---- the cases -------------------------------------------------------------------- */

static void check_login(const char *user, const char *key, const char *method,
                        const char *key_type, const char *fp)
{
    coil_ssh_options o;
    base_options(&o, user);
    o.identity_file = key;
    coil_failure *f = NULL;
    coil_ssh_session *s = connect_session(&o, &f);
    if (!s) {
        char *m = coil_failure_to_string(f);
        fprintf(stderr, "\n    login as %s with %s failed: %s\n", user, key, m);
        free(m);
        coil_failure_free(f);
        CU_FAIL("login failed");
        return;
    }
    /* What libssh2 1.10 negotiates with coil's server. */
    COIL_TEST_ASSERT_HAS(coil_ssh_session_cipher(s), "-ctr");
    COIL_TEST_ASSERT_HAS(coil_ssh_session_mac(s), "hmac-sha2-");
    CU_ASSERT_STRING_EQUAL(coil_ssh_session_host_key_type(s), "ssh-ed25519");
    CU_ASSERT_STRING_EQUAL(coil_ssh_session_host_key_fingerprint(s),
                           coil_test_sshd_interop("HOST_FP"));
    COIL_TEST_ASSERT_HAS(coil_ssh_session_server_banner(s), "SSH-2.0-coil");
    char line[1024], want[512];
    whoami(s, line, sizeof line);
    snprintf(want, sizeof want, "user=%s method=%s key_type=%s fingerprint=%s cipher=%s",
             user, method, key_type, fp, coil_ssh_session_cipher(s));
    COIL_TEST_ASSERT_HAS(line, want);
    COIL_TEST_ASSERT_HAS(line, "client=SSH-2.0-libssh2_1.10");
    close_session(s);
}

static void test_publickey_ed25519(void)
{
    check_login("dave", coil_test_sshd_interop("KEY_ED25519"), "publickey", "ssh-ed25519",
                coil_test_sshd_interop("FP_ED25519"));
}

static void test_publickey_ecdsa(void)
{
    check_login("dave", coil_test_sshd_interop("KEY_ECDSA"), "publickey",
                "ecdsa-sha2-nistp256", coil_test_sshd_interop("FP_ECDSA"));
}

static void allow_sha1(void *arg, coil_ssh_server_options *o)
{
    (void)arg;
    o->allow_ssh_rsa_sha1 = 1;
}

static int server_idle(void *arg)
{
    coil_ssh_server_stats st;
    coil_ssh_server_get_stats(sshd_app_server(arg), &st);
    return st.connections == 0 && st.channels == 0;
}

/* libssh2 1.10 signs with an RSA key as "ssh-rsa" (SHA-1) only: refused by
 * default, accepted by a server with allow_ssh_rsa_sha1. */
static void test_rsa_sha1(void)
{
    coil_ssh_options o;
    base_options(&o, "dave");
    o.identity_file = coil_test_sshd_interop("KEY_RSA");
    expect_refused(&o, NULL, 0);

    coil_failure *f = NULL;
    sshd_app *app2 = NULL;
    sshd_app_options ao = {0};
    ao.host_key_file = coil_test_sshd_interop("HOST_KEY");
    ao.authorized_keys_file = coil_test_sshd_interop("AUTHORIZED_KEYS");
    ao.quiet = 1;
    ao.tweak = allow_sha1;
    CU_ASSERT_FATAL(sshd_app_start(R, &ao, &app2, &f) == 0);
    /* Same host key: the known_hosts line differs only by the port. */
    FILE *kh = fopen(KNOWN_HOSTS, "r");
    char line[1024] = "";
    CU_ASSERT_FATAL(kh && fgets(line, sizeof line, kh));
    fclose(kh);
    char *key = strchr(line, ' ');
    kh = fopen(KNOWN_HOSTS, "a");
    CU_ASSERT_FATAL(kh != NULL && key != NULL);
    fprintf(kh, "[127.0.0.1]:%d%s", sshd_app_port(app2), key);
    fclose(kh);
    o.port = sshd_app_port(app2);
    coil_ssh_session *s = connect_session(&o, &f);
    if (!s) {
        coil_failure_print(f, stderr);
        coil_failure_free(f);
        CU_FAIL("an RSA key with SHA-1 refused by a server that allows it");
    } else {
        char who[1024], want[256];
        whoami(s, who, sizeof who);
        snprintf(want, sizeof want, "method=publickey key_type=ssh-rsa fingerprint=%s",
                 coil_test_sshd_interop("FP_RSA"));
        COIL_TEST_ASSERT_HAS(who, want);
        close_session(s);
    }
    CU_ASSERT(wait_until(server_idle, app2, WAIT));
    sshd_app_free(app2);
}

static void test_wrong_key(void)
{
    coil_ssh_options o;
    base_options(&o, "dave");
    o.identity_file = coil_test_sshd_interop("KEY_WRONG1");
    expect_refused(&o, NULL, 0);
}

static void test_password(void)
{
    coil_ssh_options o;
    base_options(&o, "alice");
    o.password = "secret";
    coil_failure *f = NULL;
    coil_ssh_session *s = connect_session(&o, &f);
    if (!s) {
        coil_failure_print(f, stderr);
        coil_failure_free(f);
        CU_FAIL_FATAL("password login failed");
    }
    char line[1024];
    whoami(s, line, sizeof line);
    COIL_TEST_ASSERT_HAS(line, "user=alice method=password ");
    close_session(s);
}

static void test_keyboard_interactive(void)
{
    coil_ssh_options o;
    base_options(&o, "alice");
    int prompts = 0;
    o.prompt = answer_prompt;
    o.prompt_arg = &prompts;
    coil_failure *f = NULL;
    coil_ssh_session *s = connect_session(&o, &f);
    if (!s) {
        coil_failure_print(f, stderr);
        coil_failure_free(f);
        CU_FAIL_FATAL("keyboard-interactive login failed");
    }
    CU_ASSERT_EQUAL(prompts, 1);
    char line[1024];
    whoami(s, line, sizeof line);
    COIL_TEST_ASSERT_HAS(line, "user=alice method=keyboard-interactive ");
    close_session(s);
}

static void test_wrong_password_and_unknown_user(void)
{
    const char *users[2] = {"alice", "mallory"};
    const char *passwords[2] = {"wrong", "secret"};
    char msg[2][1024];
    for (int i = 0; i < 2; i++) {
        coil_ssh_options o;
        base_options(&o, users[i]);
        o.password = passwords[i];
        expect_refused(&o, msg[i], sizeof msg[i]);
    }
    /* The same answer (the methods left) for both, user names aside. */
    const char *a = strstr(msg[0], "the server allows");
    const char *b = strstr(msg[1], "the server allows");
    CU_ASSERT(a && b && strcmp(a, b) == 0);
    if (!a || !b || strcmp(a, b) != 0)
        fprintf(stderr, "\n    wrong password: %s\n    unknown user: %s\n", msg[0],
                msg[1]);
}

static void test_exit_status(void)
{
    coil_ssh_session *s = login_dave("KEY_ED25519");
    static const int statuses[] = {0, 3, 255};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        char cmd[32];
        snprintf(cmd, sizeof cmd, "exit %d", statuses[i]);
        xp x;
        run_exec(s, cmd, NULL, 0, &x);
        CU_ASSERT_EQUAL(x.exit_kind, 1);
        CU_ASSERT_EQUAL(x.exit_status, statuses[i]);
        free(x.got);
    }
    xp x;
    run_exec(s, "no-such-command", NULL, 0, &x);
    CU_ASSERT_EQUAL(x.exit_kind, 1);
    CU_ASSERT_EQUAL(x.exit_status, 127);
    free(x.got);
    close_session(s);
}

/* 8 MiB each way: source checked against the pattern, sink's count and
 * SHA-256 against ours (the windows of both ends keep it flowing). */
static void test_transfers(void)
{
    enum { N = 8 * 1024 * 1024 };
    coil_ssh_session *s = login_dave("KEY_ECDSA");
    char cmd[64];
    snprintf(cmd, sizeof cmd, "source %d", N);
    xp x;
    run_exec(s, cmd, NULL, 0, &x);
    CU_ASSERT_EQUAL(x.len, (size_t)N);
    size_t bad = (size_t)-1;
    for (size_t i = 0; i < x.len && bad == (size_t)-1; i++)
        if (x.got[i] != sshd_app_pattern(i))
            bad = i;
    CU_ASSERT_EQUAL(bad, (size_t)-1);
    CU_ASSERT(x.exit_kind == 1 && x.exit_status == 0);
    free(x.got);

    unsigned char *data = malloc(N);
    CU_ASSERT_FATAL(data != NULL);
    for (size_t i = 0; i < N; i++)
        data[i] = (unsigned char)((i * 7919u) >> 5);
    unsigned char h[32];
    char hex[65], want[128];
    crypto_hash_sha256(h, data, N);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    snprintf(want, sizeof want, "%d %s\n", N, hex);
    run_exec(s, "sink", data, N, &x);
    CU_ASSERT(x.len == strlen(want) && memcmp(x.got, want, x.len) == 0);
    if (!(x.len == strlen(want) && memcmp(x.got, want, x.len) == 0))
        fprintf(stderr, "\n    sink said '%.*s', want '%s'\n", (int)x.len,
                x.got ? (const char *)x.got : "", want);
    free(x.got);
    free(data);
    close_session(s);
}

/* 50 exec channels open at once on one session, each `cat` echoing its
 * own 32-64 KiB: each sends its data at once but its EOF (which ends the
 * command) only when all 50 are open, so they are open together. */
static void test_fifty_channels(void)
{
    enum { N = 50 };
    coil_ssh_session *s = login_dave("KEY_ED25519");
    static xp x[N];
    static unsigned char *data[N];
    size_t len[N];
    int done = 0;
    for (int i = 0; i < N; i++) {
        len[i] = 32768 + (size_t)i * 677;
        data[i] = malloc(len[i]);
        CU_ASSERT_FATAL(data[i] != NULL);
        for (size_t j = 0; j < len[i]; j++)
            data[i][j] = (unsigned char)(i * 31 + j * 13 + (j >> 8));
        xp_init(&x[i], data[i], len[i]);
        x[i].done_count = &done;
        x[i].hold_eof = 1;
        start_exec(s, "cat", &x[i]);
    }
    double end = coil_reactor_seconds(R) + WAIT;
    int made = 0;
    while (made < N && coil_reactor_seconds(R) < end) {
        coil_reactor_iterate(R, 0.05);
        made = 0;
        for (int i = 0; i < N; i++)
            made += x[i].made;
    }
    CU_ASSERT_EQUAL(made, N);
    coil_ssh_server_stats st;
    coil_ssh_server_get_stats(sshd_app_server(APP), &st);
    CU_ASSERT_EQUAL(st.channels, (size_t)N);
    for (int i = 0; i < N; i++)
        if (x[i].made && !x[i].lost)
            coil_transport_lose_write_connection(x[i].base.transport);
    int destroyed = 0, max_open = (int)st.channels;
    while (destroyed < N && coil_reactor_seconds(R) < end) {
        coil_reactor_iterate(R, 0.05);
        coil_ssh_server_get_stats(sshd_app_server(APP), &st);
        if ((int)st.channels > max_open)
            max_open = (int)st.channels;
        destroyed = 0;
        for (int i = 0; i < N; i++)
            destroyed += x[i].destroyed;
    }
    CU_ASSERT_EQUAL(destroyed, N);
    CU_ASSERT_EQUAL(done, N);
    int right = 0;
    for (int i = 0; i < N; i++) {
        if (x[i].len == len[i] && memcmp(x[i].got, data[i], len[i]) == 0 &&
            x[i].exit_kind == 1 && x[i].exit_status == 0)
            right++;
        else
            fprintf(stderr, "\n    channel %d: %zu of %zu bytes back, exit %d/%d: %s\n",
                    i, x[i].len, len[i], x[i].exit_kind, x[i].exit_status, x[i].reason);
        free(x[i].got);
        free(data[i]);
    }
    CU_ASSERT_EQUAL(right, N);
    CU_ASSERT_EQUAL(max_open, N);
    if (getenv("COIL_TEST_VERBOSE"))
        fprintf(stderr, "\n    at most %d channels open at once on the server\n",
                max_open);
    close_session(s);
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_publickey_ed25519),
        COIL_TEST(test_publickey_ecdsa),
        COIL_TEST(test_wrong_key),
        COIL_TEST(test_rsa_sha1),
        COIL_TEST(test_password),
        COIL_TEST(test_keyboard_interactive),
        COIL_TEST(test_wrong_password_and_unknown_user),
        COIL_TEST(test_exit_status),
        COIL_TEST(test_transfers),
        COIL_TEST(test_fifty_channels),
        {NULL, NULL},
    };
    return coil_test_add_suite_with("coil SSH client (libssh2) -> coil SSH server",
                                    suite_init, suite_clean, cases);
}

int main(void)
{
    (void)coil_test_sshd_interop("HOST_KEY");
    return coil_test_main(add_suites);
}
