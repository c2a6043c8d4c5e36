/* Fuzz target: user authentication of coil's SSH server (ssh/server_auth.c)
 * and what the server does around it. One server (not anonymous; an
 * authorized_keys file with one ed25519 key, below; a password check that
 * knows alice/secret) on a fake clock; each input is one connection on the
 * in-memory test transport, put after the key exchange with
 * coil__sshd_test_skip_kex (plain packets, session id 32 bytes of 0x5a).
 *
 * Input: records, each a 2-byte big-endian length and that many bytes, one
 * packet payload each (message number first; a short last record takes
 * what is left). After each packet the password check on the thread pool is
 * waited for and the clock moves 0.3 s, past the failure delay, so every
 * answer and timer path runs. The server's output must be whole plain
 * packets. Ends at the first record after the connection closed.
 *
 * Seeds (none, publickey query and signed with the key below, password and
 * keyboard-interactive right and wrong, six failures, user change, service
 * requests, malformed) come from this file built with
 * -DFUZZ_SSH_USERAUTH_SEEDS (a main that writes corpus files):
 *   cc -DFUZZ_SSH_USERAUTH_SEEDS -Iinclude -Icore -Issh -Itransports \
 *      tests/fuzz/fuzz_ssh_userauth.c build-auth/libcoil.a \
 *      $(pkg-config --libs libssh2 libsodium openssl) -lpthread -lm -o /tmp/seeds &&
 *   /tmp/seeds tests/fuzz/corpus/ssh_userauth */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include <coil/coil.h>
#include <coil/memory.h>
#include <coil/ssh_server.h>
#include <coil/threadpool.h>

#include "../sshd_testutil.h"
#include "server_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef FUZZ_SSH_USERAUTH_SEEDS

/* The public half of the key the seeds sign with (see user_key below). */
static const char user_pub[] =
    "ssh-ed25519 "
    "AAAAC3NzaC1lZDI1NTE5AAAAIGF8YazFUAfFi3PxGeIyIqM7N9adVdTWI+"
    "Pikw2ySwP/ fuzz-userauth\n";

static int check_pw(void *arg, const char *user, const char *pw, size_t len)
{
    (void)arg;
    return strcmp(user, "alice") == 0 && len == 6 && sodium_memcmp(pw, "secret", 6) == 0;
}

static coil_clock *clk;
static coil_reactor *r;
static coil_ssh_server *srv;

static void teardown(void)
{
    coil_ssh_server_free(srv);
    coil_reactor_advance(r, 0);
    coil_reactor_free(r);
    coil_clock_free(clk);
}

static void setup(void)
{
    char hk[128], ak[128];
    coil_reactor_options ro = {0};
    coil_ssh_server_options o = {0};
    coil_failure *err = NULL;
    int fd;

    if (srv)
        return;
    if (sodium_init() < 0)
        abort();
    if (!getenv("FUZZ_VERBOSE"))
        coil_log_set_level(COIL_LOG_NONE);
    clk = coil_clock_new_fake();
    ro.clock = clk;
    if (!clk || coil_reactor_new(&r, &ro) != 0)
        abort();
    snprintf(hk, sizeof hk, "/tmp/coil-fuzz-userauth-%ld-host", (long)getpid());
    unlink(hk);
    snprintf(ak, sizeof ak, "/tmp/coil-fuzz-userauth-XXXXXX");
    fd = mkstemp(ak);
    if (fd < 0 || write(fd, user_pub, strlen(user_pub)) != (ssize_t)strlen(user_pub))
        abort();
    close(fd);
    o.host_key_file = hk;
    o.generate_host_key = 1;
    o.authorized_keys_file = ak;
    o.check_password = check_pw;
    if (coil_ssh_server_new(r, &o, &srv, &err) != 0) {
        fprintf(stderr, "fuzz_ssh_userauth: %s\n", err ? coil_failure_message(err) : "?");
        abort();
    }
    unlink(hk);
    unlink(ak);
    atexit(teardown);
}

/* Run the loop until no pool job runs (a check of a connection that ended
 * still finishes on its thread). */
static void wait_pool(coil__sshd *s)
{
    double end = sshd_test_now() + 30;
    coil_thread_pool_stats st;
    for (;;) {
        coil_reactor_thread_pool_stats(r, &st);
        if (!s->auth.job && st.running == 0 && st.queued == 0)
            break;
        if (sshd_test_now() > end)
            abort(); /* a check that never comes back */
        coil_reactor_iterate(r, 0.01);
    }
    coil_reactor_advance(r, 0);
}

/* The server writes whole plain packets, and never one too big. */
static void check_output(coil_transport *t)
{
    size_t len, off = 0;
    const unsigned char *w = coil_memory_transport_written(t, &len);
    while (off < len) {
        uint32_t plen;
        if (len - off < 5)
            abort();
        plen = coil__ssh_get32(w + off);
        if (plen < 5 || plen > 40000 || (size_t)plen > len - off - 4 ||
            w[off + 4] >= plen || (plen + 4) % 8 != 0)
            abort();
        off += 4 + plen;
    }
    coil_memory_transport_clear(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned char frame[70000];
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(40022)};
    coil_address peer;
    coil_transport *t;
    coil__sshd *s;
    size_t off = 0;

    setup();
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (coil_address_from_sockaddr(&peer, (struct sockaddr *)&sin, sizeof sin) != 0)
        abort();
    t = sshd_test_connect(r, srv, &peer, &s);
    if (!t)
        abort();
    coil__sshd_ref(s); /* ours: s stays readable after it closes */
    coil__sshd_test_skip_kex(s, NULL);
    coil_reactor_advance(r, 0);
    coil_memory_transport_clear(t);

    while (off < size && !(coil_memory_transport_flags(t) & COIL_MEMORY_CLOSED)) {
        size_t len = 0, n;
        unsigned char *payload;
        if (size - off >= 2) {
            len = (size_t)data[off] << 8 | data[off + 1];
            off += 2;
        } else {
            off = size;
        }
        if (len > size - off)
            len = size - off;
        /* an exactly sized copy, so ASan sees a read past the payload */
        payload = malloc(len ? len : 1);
        if (!payload)
            abort();
        memcpy(payload, data + off, len);
        off += len;
        n = len ? coil__sshd_test_frame(payload, len, frame, sizeof frame) : 0;
        free(payload);
        if (n && coil_memory_transport_feed(t, frame, n) != 0)
            break;
        coil_reactor_advance(r, 0);
        wait_pool(s);
        coil_reactor_advance(r, 0.3);
        check_output(t);
    }

    coil_memory_transport_free(t);
    coil_reactor_advance(r, 0);
    wait_pool(s);
    coil__sshd_unref(s);
    coil_reactor_advance(r, 0);
    return 0;
}

#else /* FUZZ_SSH_USERAUTH_SEEDS: write the seed corpus */

/* A throwaway user key (ssh-keygen -t ed25519 -N ''), for this target only. */
static const char user_key[] =
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACBhfGGsxVAHxYtz8RniMiKjOzfWnVXU1iPj4pMNsksD/wAAAJDsFKhz7BSo\n"
    "cwAAAAtzc2gtZWQyNTUxOQAAACBhfGGsxVAHxYtz8RniMiKjOzfWnVXU1iPj4pMNsksD/w\n"
    "AAAECxIA7t9dPfiY1kixx/lPFGgqFwVgXZo5J8+wg4QHEVw2F8YazFUAfFi3PxGeIyIqM7\n"
    "N9adVdTWI+Pikw2ySwP/AAAADWZ1enotdXNlcmF1dGg=\n"
    "-----END OPENSSH PRIVATE KEY-----\n";

static unsigned char input[65536];
static size_t input_len;

static void rec(const void *p, size_t len)
{
    if (input_len + 2 + len > sizeof input)
        abort();
    input[input_len++] = (unsigned char)(len >> 8);
    input[input_len++] = (unsigned char)len;
    memcpy(input + input_len, p, len);
    input_len += len;
}

static void head(coil__sshw *w, unsigned char *buf, size_t cap, const char *user,
                 const char *method)
{
    coil__sshw_init(w, buf, cap);
    coil__sshw_u8(w, COIL__SSH_MSG_USERAUTH_REQUEST);
    coil__sshw_cstring(w, user);
    coil__sshw_cstring(w, "ssh-connection");
    coil__sshw_cstring(w, method);
}

static void none(const char *user)
{
    unsigned char b[512];
    coil__sshw w;
    head(&w, b, sizeof b, user, "none");
    rec(b, w.len);
}

static void password(const char *user, const char *pw)
{
    unsigned char b[512];
    coil__sshw w;
    head(&w, b, sizeof b, user, "password");
    coil__sshw_bool(&w, 0);
    coil__sshw_cstring(&w, pw);
    rec(b, w.len);
}

static void kbd(const char *user)
{
    unsigned char b[512];
    coil__sshw w;
    head(&w, b, sizeof b, user, "keyboard-interactive");
    coil__sshw_cstring(&w, "");
    coil__sshw_cstring(&w, "");
    rec(b, w.len);
}

static void info_response(int n, const char *answer)
{
    unsigned char b[512];
    coil__sshw w;
    coil__sshw_init(&w, b, sizeof b);
    coil__sshw_u8(&w, COIL__SSH_MSG_USERAUTH_INFO_RESPONSE);
    coil__sshw_u32(&w, (uint32_t)n);
    for (int i = 0; i < n; i++)
        coil__sshw_cstring(&w, answer);
    rec(b, w.len);
}

static void service_request(void)
{
    unsigned char b[64];
    coil__sshw w;
    coil__sshw_init(&w, b, sizeof b);
    coil__sshw_u8(&w, COIL__SSH_MSG_SERVICE_REQUEST);
    coil__sshw_cstring(&w, "ssh-userauth");
    rec(b, w.len);
}

static coil__sshkey *key;

/* publickey by the fixed key: sign 0 = query, 1 = signed, 2 = signed over
 * another session id */
static void pk(const char *user, const char *alg, int sign)
{
    unsigned char b[2048], sig[COIL__SSHKEY_SIG_MAX], sid[32];
    size_t blob_len, sig_len;
    const unsigned char *blob = coil__sshkey_blob(key, &blob_len);
    coil__sshw w;
    head(&w, b, sizeof b, user, "publickey");
    coil__sshw_bool(&w, sign != 0);
    coil__sshw_cstring(&w, alg);
    coil__sshw_string(&w, blob, blob_len);
    if (sign) {
        memset(sid, sign == 1 ? 0x5a : 0x00, sizeof sid);
        if (sshd_test_pk_sign(key, sid, user, alg, sig, sizeof sig, &sig_len) != 0)
            abort();
        coil__sshw_string(&w, sig, sig_len);
    }
    if (w.bad)
        abort();
    rec(b, w.len);
}

static void raw(const char *bytes, size_t len)
{
    rec(bytes, len);
}

static void write_seed(const char *dir, const char *name)
{
    char path[1024];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f || fwrite(input, 1, input_len, f) != input_len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    input_len = 0;
}

int main(int argc, char **argv)
{
    coil_failure *err = NULL;
    if (argc != 2 || sodium_init() < 0) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    if (coil__sshkey_parse_private(user_key, strlen(user_key), COIL__SSHKEY_ED25519, &key,
                                   &err) != 0) {
        fprintf(stderr, "%s\n", err ? coil_failure_message(err) : "bad key");
        return 1;
    }
    none("alice");
    none("alice");
    write_seed(argv[1], "none");
    pk("alice", "ssh-ed25519", 0);
    pk("alice", "ssh-ed25519", 1);
    write_seed(argv[1], "publickey-query-then-signed");
    pk("alice", "ssh-ed25519", 2);
    pk("alice", "rsa-sha2-256", 1);
    pk("bob", "ssh-ed25519", 1);
    write_seed(argv[1], "publickey-bad-then-user-change");
    pk("alice", "ssh-ed25519", 1);
    raw("\x50\x00\x00\x00\x15keepalive@openssh.com\x01", 27);
    none("alice");
    write_seed(argv[1], "publickey-then-global-request");
    password("alice", "wrong");
    password("alice", "secret");
    write_seed(argv[1], "password");
    for (int i = 0; i < 7; i++)
        password("mallory", "guess");
    write_seed(argv[1], "password-too-many");
    kbd("alice");
    info_response(1, "nope");
    kbd("alice");
    info_response(1, "secret");
    write_seed(argv[1], "keyboard-interactive");
    kbd("alice");
    info_response(2, "secret");
    write_seed(argv[1], "keyboard-interactive-two-answers");
    kbd("alice");
    none("alice");
    info_response(1, "secret");
    write_seed(argv[1], "keyboard-interactive-abandoned");
    service_request();
    none("alice");
    service_request();
    password("alice", "secret");
    write_seed(argv[1], "service-request-repeated");
    {
        unsigned char b[512];
        coil__sshw w;
        head(&w, b, sizeof b, "alice", "password");
        coil__sshw_bool(&w, 1);
        coil__sshw_cstring(&w, "secret");
        coil__sshw_cstring(&w, "new");
        rec(b, w.len);
        head(&w, b, sizeof b, "alice", "hostbased");
        coil__sshw_cstring(&w, "ssh-ed25519");
        rec(b, w.len);
        head(&w, b, sizeof b, "alice", "ssh-userauth");
        rec(b, w.len);
        write_seed(argv[1], "password-change-hostbased");
    }
    raw("\x32\x00\x00\x00\x05\x61", 6);
    write_seed(argv[1], "truncated");
    raw("\x3d\x00\x00\x00\x00", 5);
    write_seed(argv[1], "info-response-unasked");
    raw("\x5a\x00\x00\x00\x07session\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x80\x00",
        24);
    write_seed(argv[1], "channel-open-before-auth");
    coil__sshkey_free(key);
    return 0;
}

#endif
