/* Keys for coil's SSH server (ssh/sshkeys.c): host keys in OpenSSH's
 * private key format, user key signatures, authorized_keys, password
 * hashes.
 *
 * Keys are made at test time by OpenSSH's ssh-keygen, and user key
 * signatures independently by Debian's /usr/bin/python3 with the
 * `cryptography` package (python3-cryptography); a test that needs one of
 * them and does not find it fails, saying what to install. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include <coil/ssh.h>
#include <coil/ssh_server.h>

#include "sshkeys.h"
#include "testutil.h"

#define PYTHON "/usr/bin/python3"

static char tmpdir[256];

static void make_tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/coil-sshkeys-XXXXXX", t && *t ? t : "/tmp");
    CU_ASSERT_FATAL(mkdtemp(tmpdir) != NULL);
}

static void rm_tmpdir(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CU_ASSERT(system(cmd) == 0);
}

static char *path_in(const char *name)
{
    static char buf[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
    return buf[i];
}

/* Run a shell command, its stdout in out (NUL terminated). Exit status. */
static int run(const char *cmd, char *out, size_t size)
{
    FILE *f = popen(cmd, "r");
    size_t n = 0;
    if (!f)
        return -1;
    if (out && size) {
        while (n + 1 < size) {
            size_t r = fread(out + n, 1, size - 1 - n, f);
            if (r == 0)
                break;
            n += r;
        }
        out[n] = 0;
    } else {
        char sink[256];
        while (fread(sink, 1, sizeof sink, f) > 0) {
        }
    }
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The tools the tests need; a missing one fails the test with what to do. */
static int have_keygen(void)
{
    if (access("/usr/bin/ssh-keygen", X_OK) == 0 ||
        run("command -v ssh-keygen", NULL, 0) == 0)
        return 1;
    fprintf(stderr,
            "\n    ssh-keygen is missing: install openssh-client (apt-get install "
            "openssh-client)\n");
    CU_FAIL("ssh-keygen is missing: install openssh-client");
    return 0;
}

static __attribute__((unused)) int have_python(void)
{
    if (access(PYTHON, X_OK) == 0 &&
        run(PYTHON
            " -c 'import cryptography.hazmat.primitives.serialization' 2>/dev/null",
            NULL, 0) == 0)
        return 1;
    fprintf(stderr, "\n    " PYTHON " with the cryptography package is missing: install "
                    "python3-cryptography (apt-get install python3-cryptography)\n");
    CU_FAIL(PYTHON " with cryptography is missing: install python3-cryptography");
    return 0;
}

/* ssh-keygen -t ARGS into tmpdir/name (no passphrase unless given). */
static int keygen(const char *name, const char *args, const char *pass)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ssh-keygen -q %s -N '%s' -C test -f '%s' </dev/null", args,
             pass ? pass : "", path_in(name));
    int rc = run(cmd, NULL, 0);
    CU_ASSERT_EQUAL(rc, 0);
    return rc;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    static char buf[65536];
    size_t n = 0;
    if (!f)
        return NULL;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

static void write_file(const char *path, const char *text, size_t len, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, text, len) == (ssize_t)len);
    CU_ASSERT_FATAL(fchmod(fd, mode) == 0);
    close(fd);
}

/* The public key of "TYPE BASE64 comment" as a blob. */
static size_t pub_blob(const char *line, unsigned char *blob, size_t cap)
{
    const char *b = strchr(line, ' ');
    size_t len = 0;
    if (!b)
        return 0;
    b++;
    size_t n = strcspn(b, " \r\n");
    if (sodium_base642bin(blob, cap, b, n, NULL, &len, NULL,
                          sodium_base64_VARIANT_ORIGINAL))
        return 0;
    return len;
}

/* ---- host keys ------------------------------------------------------------------ */

static coil__sshkey *load(const char *name, int type, int generate, char *msg,
                          size_t size)
{
    coil__sshkey *k = COIL_TEST_POISON;
    coil_failure *err = NULL;
    int rc = coil__sshkey_load_host(path_in(name), type, generate, &k, &err);
    if (msg)
        snprintf(msg, size, "%s", err ? coil_failure_message(err) : "");
    if (rc) {
        CU_ASSERT(k == NULL);
        CU_ASSERT(err != NULL);
        coil_failure_free(err);
        return NULL;
    }
    CU_ASSERT(err == NULL);
    return k;
}

/* A new key file tmpdir/name made by coil. */
static void gen_file(const char *name, int type)
{
    char msg[1024];
    coil__sshkey *k = load(name, type, 1, msg, sizeof msg);
    CU_ASSERT_FATAL(k != NULL);
    coil__sshkey_free(k);
}

/* The key loads and matches what ssh-keygen says of NAME.pub. */
static void check_keygen_key(const char *name, const char *args, int type,
                             const char *alg)
{
    char out[1024], cmd[1024], msg[1024];
    unsigned char blob[256];
    if (!have_keygen() || keygen(name, args, NULL))
        return;
    coil__sshkey *k = load(name, type, 0, msg, sizeof msg);
    CU_ASSERT_FATAL(k != NULL);
    CU_ASSERT_STRING_EQUAL(coil__sshkey_name(k), alg);
    snprintf(cmd, sizeof cmd, "ssh-keygen -l -f '%s.pub'", path_in(name));
    CU_ASSERT_EQUAL(run(cmd, out, sizeof out), 0);
    COIL_TEST_ASSERT_HAS(out, coil__sshkey_fingerprint(k));
    size_t len = pub_blob(read_file(path_in(strcat(strcpy(msg, name), ".pub")), NULL),
                          blob, sizeof blob);
    size_t klen;
    const unsigned char *kb = coil__sshkey_blob(k, &klen);
    CU_ASSERT(len > 0 && klen == len && memcmp(kb, blob, len) == 0);

    /* It signs, and its signature verifies as a user key's would. */
    unsigned char sig[COIL__SSHKEY_SIG_MAX], data[32] = "exchange hash";
    size_t sig_len;
    char why[256] = "";
    CU_ASSERT_EQUAL(coil__sshkey_sign(k, data, sizeof data, sig, sizeof sig, &sig_len),
                    0);
    CU_ASSERT_EQUAL(coil__ssh_userkey_verify(alg, kb, klen, sig, sig_len, data,
                                             sizeof data, 0, why, sizeof why),
                    0);
    coil__sshkey_free(k);
}

static void test_load_ssh_keygen_ed25519(void)
{
    make_tmpdir();
    check_keygen_key("ed", "-t ed25519", COIL__SSHKEY_ED25519, "ssh-ed25519");
    rm_tmpdir();
}

static void test_load_ssh_keygen_ecdsa(void)
{
    make_tmpdir();
    check_keygen_key("ec", "-t ecdsa -b 256", COIL__SSHKEY_ECDSA_P256,
                     "ecdsa-sha2-nistp256");
    rm_tmpdir();
}

static void test_refused_keys(void)
{
    char msg[1024];
    make_tmpdir();
    if (!have_keygen())
        goto out;
    /* RSA and DSA are not host keys coil uses. */
    if (keygen("rsa", "-t rsa -b 2048", NULL) == 0) {
        CU_ASSERT(load("rsa", COIL__SSHKEY_ED25519, 0, msg, sizeof msg) == NULL);
        COIL_TEST_ASSERT_HAS(msg, "holds an RSA key");
        COIL_TEST_ASSERT_HAS(msg, "coil needs ed25519");
        COIL_TEST_ASSERT_HAS(msg, path_in("rsa"));
    }
    /* A PEM RSA key says so too. */
    if (keygen("rsapem", "-t rsa -b 2048 -m PEM", NULL) == 0) {
        CU_ASSERT(load("rsapem", COIL__SSHKEY_ED25519, 0, msg, sizeof msg) == NULL);
        COIL_TEST_ASSERT_HAS(msg, "RSA key");
    }
    /* The other type than asked for. */
    if (keygen("ed", "-t ed25519", NULL) == 0) {
        CU_ASSERT(load("ed", COIL__SSHKEY_ECDSA_P256, 0, msg, sizeof msg) == NULL);
        COIL_TEST_ASSERT_HAS(msg, "ed25519 key");
    }
    if (keygen("ec384", "-t ecdsa -b 384", NULL) == 0) {
        CU_ASSERT(load("ec384", COIL__SSHKEY_ECDSA_P256, 0, msg, sizeof msg) == NULL);
        COIL_TEST_ASSERT_HAS(msg, "ecdsa-sha2-nistp384");
    }
    /* With a passphrase. */
    if (keygen("enc", "-t ed25519", "secret pass") == 0) {
        CU_ASSERT(load("enc", COIL__SSHKEY_ED25519, 0, msg, sizeof msg) == NULL);
        COIL_TEST_ASSERT_HAS(msg, "is encrypted");
        COIL_TEST_ASSERT_HAS(msg, "unencrypted");
    }
    /* Readable by others. */
    if (keygen("open", "-t ed25519", NULL) == 0) {
        CU_ASSERT_FATAL(chmod(path_in("open"), 0644) == 0);
        CU_ASSERT(load("open", COIL__SSHKEY_ED25519, 0, msg, sizeof msg) == NULL);
        COIL_TEST_ASSERT_HAS(msg, "readable by others (mode 0644)");
        COIL_TEST_ASSERT_HAS(msg, "chmod 600");
        CU_ASSERT_FATAL(chmod(path_in("open"), 0640) == 0);
        CU_ASSERT(load("open", COIL__SSHKEY_ED25519, 0, msg, sizeof msg) == NULL);
        COIL_TEST_ASSERT_HAS(msg, "(mode 0640)");
        CU_ASSERT_FATAL(chmod(path_in("open"), 0400) == 0);
        coil__sshkey *k = load("open", COIL__SSHKEY_ED25519, 0, msg, sizeof msg);
        CU_ASSERT(k != NULL);
        coil__sshkey_free(k);
    }
out:
    /* Missing, without generate. */
    CU_ASSERT(load("nothere", COIL__SSHKEY_ED25519, 0, msg, sizeof msg) == NULL);
    COIL_TEST_ASSERT_HAS(msg, "does not exist");
    COIL_TEST_ASSERT_HAS(msg, "ssh-keygen -t ed25519 -N '' -f");
    CU_ASSERT(access(path_in("nothere"), F_OK) != 0);
    /* Not a key at all. */
    write_file(path_in("junk"), "hello\n", 6, 0600);
    CU_ASSERT(load("junk", COIL__SSHKEY_ED25519, 0, msg, sizeof msg) == NULL);
    COIL_TEST_ASSERT_HAS(msg, "not an OpenSSH private key");
    rm_tmpdir();
}

static void check_generate(int type, const char *alg)
{
    char msg[1024], out[1024], cmd[1024], want[1024];
    struct stat st;
    make_tmpdir();
    coil_test_log_capture_start();
    coil__sshkey *k = load("gen", type, 1, msg, sizeof msg);
    coil_test_log_capture_stop();
    CU_ASSERT_FATAL(k != NULL);
    CU_ASSERT(stat(path_in("gen"), &st) == 0 && (st.st_mode & 07777) == 0600);
    COIL_TEST_ASSERT_HAS(coil_test_log_text(), coil__sshkey_fingerprint(k));
    COIL_TEST_ASSERT_HAS(coil_test_log_text(), path_in("gen"));
    CU_ASSERT(strncmp(coil__sshkey_fingerprint(k), "SHA256:", 7) == 0);

    /* Loading it again (generate or not) gives the same key. */
    coil__sshkey *k2 = load("gen", type, 1, msg, sizeof msg);
    CU_ASSERT_FATAL(k2 != NULL);
    CU_ASSERT_STRING_EQUAL(coil__sshkey_fingerprint(k2), coil__sshkey_fingerprint(k));
    coil__sshkey_free(k2);

    if (have_keygen()) {
        snprintf(cmd, sizeof cmd, "ssh-keygen -l -f '%s' 2>&1", path_in("gen"));
        CU_ASSERT_EQUAL(run(cmd, out, sizeof out), 0);
        COIL_TEST_ASSERT_HAS(out, coil__sshkey_fingerprint(k));
        snprintf(cmd, sizeof cmd, "ssh-keygen -y -f '%s' 2>&1", path_in("gen"));
        CU_ASSERT_EQUAL(run(cmd, out, sizeof out), 0);
        size_t blen;
        const unsigned char *blob = coil__sshkey_blob(k, &blen);
        size_t n = (size_t)snprintf(want, sizeof want, "%s ", alg);
        sodium_bin2base64(want + n, sizeof want - n, blob, blen,
                          sodium_base64_VARIANT_ORIGINAL);
        COIL_TEST_ASSERT_HAS(out, want);
    }
    coil__sshkey_free(k);

    /* Generate into a missing directory: an error naming the file. */
    CU_ASSERT(load("no/such/dir", type, 1, msg, sizeof msg) == NULL);
    COIL_TEST_ASSERT_HAS(msg, "no/such/dir");
    rm_tmpdir();
}

static void test_generate_ed25519(void)
{
    check_generate(COIL__SSHKEY_ED25519, "ssh-ed25519");
}

static void test_generate_ecdsa(void)
{
    check_generate(COIL__SSHKEY_ECDSA_P256, "ecdsa-sha2-nistp256");
}

static void sign_round_trip(int type)
{
    coil__sshkey *k = NULL;
    unsigned char data[32], sig[COIL__SSHKEY_SIG_MAX];
    size_t sig_len = 0, blen;
    char why[256];
    CU_ASSERT_FATAL(coil__sshkey_generate(type, &k) == 0);
    const char *alg = coil__sshkey_name(k);
    const unsigned char *blob = coil__sshkey_blob(k, &blen);
    CU_ASSERT_EQUAL(coil__ssh_userkey_check(alg, blob, blen, 0, why, sizeof why), 0);
    for (int i = 0; i < 20; i++) {
        randombytes_buf(data, sizeof data);
        CU_ASSERT_EQUAL_FATAL(
            coil__sshkey_sign(k, data, sizeof data, sig, sizeof sig, &sig_len), 0);
        CU_ASSERT(sig_len <= COIL__SSHKEY_SIG_MAX);
        CU_ASSERT_EQUAL(coil__ssh_userkey_verify(alg, blob, blen, sig, sig_len, data,
                                                 sizeof data, 0, why, sizeof why),
                        0);
        data[i % sizeof data] ^= 1;
        CU_ASSERT_EQUAL(coil__ssh_userkey_verify(alg, blob, blen, sig, sig_len, data,
                                                 sizeof data, 0, why, sizeof why),
                        -1);
        COIL_TEST_ASSERT_HAS(why, "does not verify");
        data[i % sizeof data] ^= 1;
        sig[sig_len - 1 - (size_t)i % 8] ^= 0x10;
        CU_ASSERT_EQUAL(coil__ssh_userkey_verify(alg, blob, blen, sig, sig_len, data,
                                                 sizeof data, 0, why, sizeof why),
                        -1);
        sig[sig_len - 1 - (size_t)i % 8] ^= 0x10;
        /* Truncated or extended signature blobs. */
        CU_ASSERT_EQUAL(coil__ssh_userkey_verify(alg, blob, blen, sig, sig_len - 1, data,
                                                 sizeof data, 0, why, sizeof why),
                        -1);
        CU_ASSERT_EQUAL(coil__ssh_userkey_verify(alg, blob, blen, sig, sig_len + 1, data,
                                                 sizeof data, 0, why, sizeof why),
                        -1);
    }
    /* Too small a buffer. */
    CU_ASSERT_EQUAL(coil__sshkey_sign(k, data, sizeof data, sig, 40, &sig_len), -1);
    coil__sshkey_free(k);
}

static void test_sign_round_trip(void)
{
    sign_round_trip(COIL__SSHKEY_ED25519);
    sign_round_trip(COIL__SSHKEY_ECDSA_P256);
}

/* The key text in memory: every truncation and many corruptions fail
 * cleanly; the whole text loads. */
static void test_parse_malformed(void)
{
    make_tmpdir();
    for (int type = COIL__SSHKEY_ED25519; type <= COIL__SSHKEY_ECDSA_P256; type++) {
        coil__sshkey *k = NULL;
        size_t len = 0;
        gen_file("k", type);
        char *text = read_file(path_in("k"), &len);
        CU_ASSERT_FATAL(text != NULL);
        char *copy = malloc(len + 1);
        memcpy(copy, text, len + 1);
        coil_failure *err = NULL;
        CU_ASSERT_EQUAL(coil__sshkey_parse_private(copy, len, type, &k, &err), 0);
        coil__sshkey_free(k);
        for (size_t n = 0; n + 34 < len; n++) {
            k = COIL_TEST_POISON;
            CU_ASSERT(coil__sshkey_parse_private(copy, n, type, &k, &err) != 0);
            CU_ASSERT(k == NULL && err != NULL);
            coil_failure_free(err);
        }
        /* Decode, corrupt each byte of the binary, encode again. */
        const char *b = strchr(copy, '\n') + 1, *e = strstr(copy, "-----END");
        unsigned char bin[1024];
        size_t bin_len = 0;
        CU_ASSERT_FATAL(sodium_base642bin(bin, sizeof bin, b, (size_t)(e - b), "\n",
                                          &bin_len, NULL,
                                          sodium_base64_VARIANT_ORIGINAL) == 0);
        int accepted = 0;
        for (size_t i = 0; i < bin_len; i++) {
            char t[4096];
            bin[i] ^= 0x41;
            size_t n =
                (size_t)snprintf(t, sizeof t, "-----BEGIN OPENSSH PRIVATE KEY-----\n");
            sodium_bin2base64(t + n, sizeof t - n, bin, bin_len,
                              sodium_base64_VARIANT_ORIGINAL);
            n = strlen(t);
            n += (size_t)snprintf(t + n, sizeof t - n,
                                  "\n-----END OPENSSH PRIVATE KEY-----\n");
            k = NULL;
            err = NULL;
            if (coil__sshkey_parse_private(t, n, type, &k, &err) == 0)
                accepted++; /* only the comment's bytes and the check numbers */
            coil__sshkey_free(k);
            coil_failure_free(err);
            bin[i] ^= 0x41;
        }
        CU_ASSERT_EQUAL(accepted, 13); /* the bytes of the comment "coil host key" */
        free(copy);
        unlink(path_in("k"));
    }
    coil_failure *err = NULL;
    coil__sshkey *k = NULL;
    CU_ASSERT(coil__sshkey_parse_private("", 0, COIL__SSHKEY_ED25519, &k, &err) != 0);
    coil_failure_free(err);
    const char *bad =
        "-----BEGIN OPENSSH PRIVATE KEY-----\n!!!!\n-----END OPENSSH PRIVATE "
        "KEY-----\n";
    CU_ASSERT(coil__sshkey_parse_private(bad, strlen(bad), COIL__SSHKEY_ED25519, &k,
                                         &err) != 0);
    COIL_TEST_ASSERT_HAS(coil_failure_message(err), "bad base64");
    coil_failure_free(err);
    rm_tmpdir();
}

/* Check numbers that differ are refused. */
static void test_checkints_differ(void)
{
    coil__sshkey *k = NULL;
    coil_failure *err = NULL;
    size_t len = 0;
    make_tmpdir();
    gen_file("k", COIL__SSHKEY_ED25519);
    char *text = read_file(path_in("k"), &len);
    const char *b = strchr(text, '\n') + 1, *e = strstr(text, "-----END");
    unsigned char bin[1024];
    size_t bin_len = 0;
    CU_ASSERT_FATAL(sodium_base642bin(bin, sizeof bin, b, (size_t)(e - b), "\n", &bin_len,
                                      NULL, sodium_base64_VARIANT_ORIGINAL) == 0);
    /* magic(15) "none" "none" "" N(4) string pub(4 + 51) string priv(4 + ...) */
    size_t priv = 15 + 8 + 8 + 4 + 4 + 4 + 51 + 4;
    CU_ASSERT_FATAL(priv + 8 < bin_len);
    bin[priv + 7] ^= 1;
    char t[4096];
    size_t n = (size_t)snprintf(t, sizeof t, "-----BEGIN OPENSSH PRIVATE KEY-----\n");
    sodium_bin2base64(t + n, sizeof t - n, bin, bin_len, sodium_base64_VARIANT_ORIGINAL);
    n = strlen(t);
    n += (size_t)snprintf(t + n, sizeof t - n, "\n-----END OPENSSH PRIVATE KEY-----\n");
    CU_ASSERT(coil__sshkey_parse_private(t, n, COIL__SSHKEY_ED25519, &k, &err) != 0);
    CU_ASSERT(k == NULL);
    COIL_TEST_ASSERT_HAS(err ? coil_failure_message(err) : NULL, "check numbers differ");
    coil_failure_free(err);
    rm_tmpdir();
}

static int add_suites(void)
{
    static const coil_test_case host[] = {
        COIL_TEST(test_load_ssh_keygen_ed25519),
        COIL_TEST(test_load_ssh_keygen_ecdsa),
        COIL_TEST(test_refused_keys),
        COIL_TEST(test_generate_ed25519),
        COIL_TEST(test_generate_ecdsa),
        COIL_TEST(test_sign_round_trip),
        COIL_TEST(test_parse_malformed),
        COIL_TEST(test_checkints_differ),
        {NULL, NULL},
    };
    return coil_test_add_suite("sshkeys_host", host);
}

int main(void)
{
    return coil_test_main(add_suites);
}
