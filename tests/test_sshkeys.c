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
#include "sshwire.h"
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

static int have_python(void)
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
    coil_test_log_capture_start();
    coil__sshkey *k = load(name, type, 1, msg, sizeof msg);
    coil_test_log_capture_stop();
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
    /* An encrypted RSA key: the type is what to fix first. */
    if (keygen("encrsa", "-t rsa -b 2048", "secret pass") == 0) {
        CU_ASSERT(load("encrsa", COIL__SSHKEY_ED25519, 0, msg, sizeof msg) == NULL);
        COIL_TEST_ASSERT_HAS(msg, "holds an RSA key");
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
    /* Nothing else left beside it (the temporary file is gone). */
    char ls[1024];
    snprintf(cmd, sizeof cmd, "ls -A '%s'", tmpdir);
    CU_ASSERT_EQUAL(run(cmd, ls, sizeof ls), 0);
    CU_ASSERT_STRING_EQUAL(ls, "gen\n");

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

/* ---- user keys, signed by Python's cryptography ---------------------------------- */

/* argv: key file, algorithm, data (hex), ["short"]. Prints the data (hex),
 * the public key blob and the SSH signature blob (string alg, string sig).
 * "short": an RSA signature whose first byte is 0, sent without it (data
 * changes until one turns up). */
static const char SIGNER[] =
    "import sys, struct, base64\n"
    "from cryptography.hazmat.primitives import serialization, hashes\n"
    "from cryptography.hazmat.primitives.asymmetric import ed25519, ec, padding\n"
    "from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature\n"
    "def s(b): return struct.pack('>I', len(b)) + b\n"
    "def mp(i): return s(i.to_bytes((i.bit_length() + 8) // 8, 'big'))\n"
    "key = serialization.load_ssh_private_key(open(sys.argv[1], 'rb').read(), None)\n"
    "alg, data = sys.argv[2], bytes.fromhex(sys.argv[3])\n"
    "short = len(sys.argv) > 4\n"
    "pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH,\n"
    "                                    serialization.PublicFormat.OpenSSH)\n"
    "blob = base64.b64decode(pub.split()[1])\n"
    "def sign(data):\n"
    "    if isinstance(key, ed25519.Ed25519PrivateKey): return key.sign(data)\n"
    "    if isinstance(key, ec.EllipticCurvePrivateKey):\n"
    "        r, t = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))\n"
    "        return mp(r) + mp(t)\n"
    "    h = {'rsa-sha2-256': hashes.SHA256(), 'rsa-sha2-512': hashes.SHA512(),\n"
    "         'ssh-rsa': hashes.SHA1()}[alg]\n"
    "    return key.sign(data, padding.PKCS1v15(), h)\n"
    "raw = sign(data)\n"
    "while short and raw[0] != 0:\n"
    "    data = data + b'x'\n"
    "    raw = sign(data)\n"
    "if short: raw = raw[1:]\n"
    "print(data.hex(), blob.hex(), (s(alg.encode()) + s(raw)).hex())\n";

typedef struct signed_data {
    unsigned char data[4096], blob[2048], sig[2048];
    size_t data_len, blob_len, sig_len;
} signed_data;

static int unhex(const char *h, size_t n, unsigned char *out, size_t cap, size_t *len)
{
    return sodium_hex2bin(out, cap, h, n, NULL, len, NULL);
}

/* Sign `data` with the key file tmpdir/name through Python. */
static int py_sign(const char *name, const char *alg, const char *data, int shorten,
                   signed_data *sd)
{
    char hex[256], cmd[2048];
    static char out[32768];
    FILE *f = fopen(path_in("signer.py"), "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs(SIGNER, f);
    fclose(f);
    sodium_bin2hex(hex, sizeof hex, (const unsigned char *)data, strlen(data));
    snprintf(cmd, sizeof cmd, PYTHON " '%s' '%s' '%s' %s %s", path_in("signer.py"),
             path_in(name), alg, hex, shorten ? "short" : "");
    int rc = run(cmd, out, sizeof out);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) {
        fprintf(stderr, "\n    %s failed (%d)\n", cmd, rc);
        return -1;
    }
    char *a = out, *b = strchr(a, ' '), *c = b ? strchr(b + 1, ' ') : NULL;
    CU_ASSERT_FATAL(b && c);
    b++, c++;
    CU_ASSERT_FATAL(
        unhex(a, (size_t)(b - 1 - a), sd->data, sizeof sd->data, &sd->data_len) == 0);
    CU_ASSERT_FATAL(
        unhex(b, (size_t)(c - 1 - b), sd->blob, sizeof sd->blob, &sd->blob_len) == 0);
    CU_ASSERT_FATAL(unhex(c, strcspn(c, "\n"), sd->sig, sizeof sd->sig, &sd->sig_len) ==
                    0);
    return 0;
}

static int verify(const char *alg, const signed_data *sd, int allow_sha1, char *why,
                  size_t n)
{
    why[0] = 0;
    return coil__ssh_userkey_verify(alg, sd->blob, sd->blob_len, sd->sig, sd->sig_len,
                                    sd->data, sd->data_len, allow_sha1, why, n);
}

/* A signature by `name` for `alg` verifies; changed data does not. */
static void check_signed(const char *name, const char *alg)
{
    signed_data sd;
    char why[256];
    if (py_sign(name, alg, "session id and userauth request", 0, &sd))
        return;
    CU_ASSERT_EQUAL(
        coil__ssh_userkey_check(alg, sd.blob, sd.blob_len, 0, why, sizeof why), 0);
    CU_ASSERT_EQUAL(verify(alg, &sd, 0, why, sizeof why), 0);
    if (why[0])
        fprintf(stderr, "\n    %s: %s\n", alg, why);
    sd.data[3] ^= 4;
    CU_ASSERT_EQUAL(verify(alg, &sd, 0, why, sizeof why), -1);
    COIL_TEST_ASSERT_HAS(why, "does not verify");
    sd.data[3] ^= 4;
    sd.sig[sd.sig_len - 2] ^= 1;
    CU_ASSERT_EQUAL(verify(alg, &sd, 0, why, sizeof why), -1);
    sd.sig[sd.sig_len - 2] ^= 1;
    /* Every truncation of the signature and of the key blob fails. */
    for (size_t n = 0; n < sd.sig_len; n++)
        CU_ASSERT_EQUAL(coil__ssh_userkey_verify(alg, sd.blob, sd.blob_len, sd.sig, n,
                                                 sd.data, sd.data_len, 0, why,
                                                 sizeof why),
                        -1);
    for (size_t n = 0; n < sd.blob_len; n++)
        CU_ASSERT_EQUAL(coil__ssh_userkey_verify(alg, sd.blob, n, sd.sig, sd.sig_len,
                                                 sd.data, sd.data_len, 0, why,
                                                 sizeof why),
                        -1);
}

static void test_user_ed25519_ecdsa(void)
{
    make_tmpdir();
    if (have_keygen() && have_python() && keygen("ed", "-t ed25519", NULL) == 0 &&
        keygen("ec", "-t ecdsa -b 256", NULL) == 0) {
        check_signed("ed", "ssh-ed25519");
        check_signed("ec", "ecdsa-sha2-nistp256");
    }
    rm_tmpdir();
}

static void test_user_rsa(void)
{
    signed_data sd;
    char why[256];
    make_tmpdir();
    if (!have_keygen() || !have_python() || keygen("rsa", "-t rsa -b 2048", NULL) ||
        keygen("rsa1k", "-t rsa -b 1024", NULL))
        goto out;
    check_signed("rsa", "rsa-sha2-256");
    check_signed("rsa", "rsa-sha2-512");

    /* The signature's algorithm must be the request's. */
    if (py_sign("rsa", "rsa-sha2-512", "data", 0, &sd) == 0) {
        CU_ASSERT_EQUAL(verify("rsa-sha2-256", &sd, 0, why, sizeof why), -1);
        COIL_TEST_ASSERT_HAS(why, "rsa-sha2-512");
    }
    /* ssh-rsa (SHA-1) only when allowed. */
    if (py_sign("rsa", "ssh-rsa", "data", 0, &sd) == 0) {
        CU_ASSERT_EQUAL(verify("ssh-rsa", &sd, 0, why, sizeof why), -1);
        COIL_TEST_ASSERT_HAS(why, "ssh-rsa signs with SHA-1, refused; use rsa-sha2-256");
        CU_ASSERT_EQUAL(
            coil__ssh_userkey_check("ssh-rsa", sd.blob, sd.blob_len, 0, why, sizeof why),
            -1);
        CU_ASSERT_EQUAL(verify("ssh-rsa", &sd, 1, why, sizeof why), 0);
        CU_ASSERT_EQUAL(
            coil__ssh_userkey_check("ssh-rsa", sd.blob, sd.blob_len, 1, why, sizeof why),
            0);
    }
    /* A signature one byte shorter than the modulus (its leading zero
     * dropped), as some signers send: accepted, as OpenSSH does. */
    if (py_sign("rsa", "rsa-sha2-256", "short", 1, &sd) == 0) {
        CU_ASSERT_EQUAL(verify("rsa-sha2-256", &sd, 0, why, sizeof why), 0);
        if (why[0])
            fprintf(stderr, "\n    short: %s\n", why);
    }
    /* 1024 bits: refused, saying so. */
    if (py_sign("rsa1k", "rsa-sha2-256", "data", 0, &sd) == 0) {
        CU_ASSERT_EQUAL(verify("rsa-sha2-256", &sd, 0, why, sizeof why), -1);
        COIL_TEST_ASSERT_HAS(why, "RSA keys need 2048 bits at least (this one has 1024)");
        CU_ASSERT_EQUAL(coil__ssh_userkey_check("rsa-sha2-256", sd.blob, sd.blob_len, 0,
                                                why, sizeof why),
                        -1);
        COIL_TEST_ASSERT_HAS(why, "2048 bits");
    }
out:
    rm_tmpdir();
}

/* argv: key file, data (hex), SSH signature blob (hex). Exit 0 when the
 * signature verifies with the key's public half. */
static const char CHECKER[] =
    "import sys, struct\n"
    "from cryptography.hazmat.primitives import serialization, hashes\n"
    "from cryptography.hazmat.primitives.asymmetric import ed25519, ec\n"
    "from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature\n"
    "def take(b):\n"
    "    n = struct.unpack('>I', b[:4])[0]\n"
    "    assert len(b) >= 4 + n\n"
    "    return b[4:4 + n], b[4 + n:]\n"
    "key = serialization.load_ssh_private_key(open(sys.argv[1], 'rb').read(), None)\n"
    "data, sig = bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])\n"
    "alg, rest = take(sig)\n"
    "raw, rest = take(rest)\n"
    "assert rest == b''\n"
    "pub = key.public_key()\n"
    "if isinstance(key, ed25519.Ed25519PrivateKey):\n"
    "    assert alg == b'ssh-ed25519'\n"
    "    pub.verify(raw, data)\n"
    "else:\n"
    "    assert alg == b'ecdsa-sha2-nistp256'\n"
    "    r, rest = take(raw)\n"
    "    t, rest = take(rest)\n"
    "    assert rest == b'' and not (r[0] & 0x80) and not (t[0] & 0x80)\n"
    "    der = encode_dss_signature(int.from_bytes(r, 'big'), int.from_bytes(t, 'big'))\n"
    "    pub.verify(der, data, ec.ECDSA(hashes.SHA256()))\n";

/* Host key signatures verify with Python's cryptography. */
static void test_sign_verified_by_python(void)
{
    make_tmpdir();
    if (!have_python())
        goto out;
    FILE *f = fopen(path_in("checker.py"), "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs(CHECKER, f);
    fclose(f);
    for (int type = COIL__SSHKEY_ED25519; type <= COIL__SSHKEY_ECDSA_P256; type++) {
        char msg[1024], cmd[2048], dhex[65], shex[2 * COIL__SSHKEY_SIG_MAX + 1];
        unsigned char data[32], sig[COIL__SSHKEY_SIG_MAX];
        size_t sig_len = 0;
        const char *name = type == COIL__SSHKEY_ED25519 ? "ed" : "ec";
        coil_test_log_capture_start();
        coil__sshkey *k = load(name, type, 1, msg, sizeof msg);
        coil_test_log_capture_stop();
        CU_ASSERT_FATAL(k != NULL);
        for (int i = 0; i < 3; i++) {
            randombytes_buf(data, sizeof data);
            CU_ASSERT_FATAL(
                coil__sshkey_sign(k, data, sizeof data, sig, sizeof sig, &sig_len) == 0);
            sodium_bin2hex(dhex, sizeof dhex, data, sizeof data);
            sodium_bin2hex(shex, sizeof shex, sig, sig_len);
            snprintf(cmd, sizeof cmd, PYTHON " '%s' '%s' %s %s", path_in("checker.py"),
                     path_in(name), dhex, shex);
            CU_ASSERT_EQUAL(run(cmd, NULL, 0), 0);
            data[0] ^= 1;
            sodium_bin2hex(dhex, sizeof dhex, data, sizeof data);
            snprintf(cmd, sizeof cmd, PYTHON " '%s' '%s' %s %s 2>/dev/null",
                     path_in("checker.py"), path_in(name), dhex, shex);
            CU_ASSERT_NOT_EQUAL(run(cmd, NULL, 0), 0);
        }
        coil__sshkey_free(k);
    }
out:
    rm_tmpdir();
}

/* Blobs that do not match their algorithm, or are malformed. */
static void test_user_key_check(void)
{
    char why[256];
    unsigned char b[256];
    coil__sshkey *ed = NULL, *ec = NULL;
    size_t edl, ecl;
    CU_ASSERT_FATAL(coil__sshkey_generate(COIL__SSHKEY_ED25519, &ed) == 0);
    CU_ASSERT_FATAL(coil__sshkey_generate(COIL__SSHKEY_ECDSA_P256, &ec) == 0);
    const unsigned char *edb = coil__sshkey_blob(ed, &edl),
                        *ecb = coil__sshkey_blob(ec, &ecl);
    CU_ASSERT_EQUAL(coil__ssh_userkey_check("ssh-ed25519", edb, edl, 0, why, sizeof why),
                    0);
    CU_ASSERT_EQUAL(
        coil__ssh_userkey_check("ecdsa-sha2-nistp256", ecb, ecl, 0, why, sizeof why), 0);
    /* Crossed algorithms. */
    CU_ASSERT_EQUAL(coil__ssh_userkey_check("ssh-ed25519", ecb, ecl, 0, why, sizeof why),
                    -1);
    CU_ASSERT_EQUAL(
        coil__ssh_userkey_check("ecdsa-sha2-nistp256", edb, edl, 0, why, sizeof why), -1);
    CU_ASSERT_EQUAL(coil__ssh_userkey_check("rsa-sha2-256", edb, edl, 0, why, sizeof why),
                    -1);
    COIL_TEST_ASSERT_HAS(why, "needs an ssh-rsa key");
    /* Unknown algorithms. */
    CU_ASSERT_EQUAL(coil__ssh_userkey_check("ssh-dss", edb, edl, 0, why, sizeof why), -1);
    COIL_TEST_ASSERT_HAS(why, "not supported");
    CU_ASSERT_EQUAL(
        coil__ssh_userkey_check("ecdsa-sha2-nistp384", ecb, ecl, 0, why, sizeof why), -1);
    /* Trailing bytes, truncations. */
    memcpy(b, edb, edl);
    b[edl] = 0;
    CU_ASSERT_EQUAL(
        coil__ssh_userkey_check("ssh-ed25519", b, edl + 1, 0, why, sizeof why), -1);
    for (size_t n = 0; n < edl; n++)
        CU_ASSERT_EQUAL(
            coil__ssh_userkey_check("ssh-ed25519", edb, n, 0, why, sizeof why), -1);
    for (size_t n = 0; n < ecl; n++)
        CU_ASSERT_EQUAL(
            coil__ssh_userkey_check("ecdsa-sha2-nistp256", ecb, n, 0, why, sizeof why),
            -1);
    /* A point off the curve. */
    memcpy(b, ecb, ecl);
    b[ecl - 1] ^= 1;
    CU_ASSERT_EQUAL(
        coil__ssh_userkey_check("ecdsa-sha2-nistp256", b, ecl, 0, why, sizeof why), -1);
    COIL_TEST_ASSERT_HAS(why, "not a point on the curve");
    /* Huge lengths. */
    memcpy(b, "\xff\xff\xff\xf0ssh-ed25519", 15);
    CU_ASSERT_EQUAL(coil__ssh_userkey_check("ssh-ed25519", b, 15, 0, why, sizeof why),
                    -1);
    memcpy(b, edb, edl);
    coil__ssh_put32(b + 15, 0xffffffffu);
    CU_ASSERT_EQUAL(coil__ssh_userkey_check("ssh-ed25519", b, edl, 0, why, sizeof why),
                    -1);
    /* An RSA blob by hand: e = 65537, n of 2048 bits, and a negative n. */
    coil__sshw w;
    unsigned char n[257];
    memset(n, 0xa5, sizeof n);
    n[0] = 0;
    coil__sshw_init(&w, b, sizeof b);
    CU_ASSERT_EQUAL(coil__ssh_userkey_check("rsa-sha2-256", NULL, 0, 0, why, sizeof why),
                    -1);
    unsigned char big[600];
    coil__sshw_init(&w, big, sizeof big);
    coil__sshw_cstring(&w, "ssh-rsa");
    coil__sshw_mpint(&w, (const unsigned char *)"\x01\x00\x01", 3);
    coil__sshw_mpint(&w, n + 1, 256);
    CU_ASSERT_FATAL(!w.bad);
    CU_ASSERT_EQUAL(
        coil__ssh_userkey_check("rsa-sha2-512", big, w.len, 0, why, sizeof why), 0);
    big[w.len - 257] = 0x80; /* the 0 byte before the top: now negative */
    CU_ASSERT_EQUAL(
        coil__ssh_userkey_check("rsa-sha2-512", big, w.len, 0, why, sizeof why), -1);
    /* A signature blob with a huge length. */
    unsigned char sig[16] = {0,   0,   0,   11,  's', 's', 'h', '-',
                             'e', 'd', '2', '5', '5', '1', '9', 0xff};
    CU_ASSERT_EQUAL(coil__ssh_userkey_verify("ssh-ed25519", edb, edl, sig, sizeof sig,
                                             (const unsigned char *)"x", 1, 0, why,
                                             sizeof why),
                    -1);
    /* A signature of another algorithm, its name shown printable. */
    unsigned char sig2[16 + 64] = {0,    0,   0,   11,  's', 's', 'h', '-', 'e', 'd',
                                   0x01, '5', '5', '1', '9', 0,   0,   0,   64};
    CU_ASSERT_EQUAL(coil__ssh_userkey_verify("ssh-ed25519", edb, edl, sig2, 15 + 4 + 64,
                                             (const unsigned char *)"x", 1, 0, why,
                                             sizeof why),
                    -1);
    COIL_TEST_ASSERT_HAS(why, "signature is of algorithm 'ssh-ed?5519'");
    coil__sshkey_free(ed);
    coil__sshkey_free(ec);
}

/* ---- authorized_keys --------------------------------------------------------------- */

static void test_authorized_keys(void)
{
    coil__sshkey *a = NULL, *b = NULL, *c = NULL;
    char line[3][512];
    size_t al, bl, cl;
    CU_ASSERT_FATAL(coil__sshkey_generate(COIL__SSHKEY_ED25519, &a) == 0);
    CU_ASSERT_FATAL(coil__sshkey_generate(COIL__SSHKEY_ECDSA_P256, &b) == 0);
    CU_ASSERT_FATAL(coil__sshkey_generate(COIL__SSHKEY_ED25519, &c) == 0);
    const unsigned char *ab = coil__sshkey_blob(a, &al), *bb = coil__sshkey_blob(b, &bl),
                        *cb = coil__sshkey_blob(c, &cl);
    coil__sshkey *keys[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        size_t n, len;
        const unsigned char *blob = coil__sshkey_blob(keys[i], &len);
        n = (size_t)snprintf(line[i], sizeof line[i], "%s ", coil__sshkey_name(keys[i]));
        sodium_bin2base64(line[i] + n, sizeof line[i] - n, blob, len,
                          sodium_base64_VARIANT_ORIGINAL);
    }
    char text[4096];
    snprintf(
        text, sizeof text,
        "# comment\n"
        "\n"
        "   \t\n"
        "%s user@host\r\n"
        "  %s\n"
        "from=\"10.0.0.1\",command=\"echo hi there\" %s c@host\n"
        "ssh-ed25519 AAAA!!!not-base64\n"
        "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIGlyk+lFmzCFXAQN45bLAc2+v2KgfhOmk53HNEOlruQx\n"
        "garbage\n",
        line[0], line[1], line[2]);
    coil__authkeys *ak = COIL_TEST_POISON;
    coil_test_log_capture_start();
    CU_ASSERT_EQUAL_FATAL(coil__authkeys_parse(text, strlen(text), &ak), 0);
    coil_test_log_capture_stop();
    CU_ASSERT_EQUAL(coil__authkeys_count(ak), 2);
    CU_ASSERT_EQUAL(coil__authkeys_has(ak, ab, al), 1);
    CU_ASSERT_EQUAL(coil__authkeys_has(ak, bb, bl), 1);
    CU_ASSERT_EQUAL(coil__authkeys_has(ak, cb, cl), 0); /* it had options */
    CU_ASSERT_EQUAL(coil__authkeys_has(ak, ab, al - 1), 0);
    CU_ASSERT_EQUAL(coil__authkeys_has(ak, ab, 0), 0);
    COIL_TEST_ASSERT_HAS(coil_test_log_text(), "line 6");
    COIL_TEST_ASSERT_HAS(coil_test_log_text(), "options");
    COIL_TEST_ASSERT_HAS(coil_test_log_text(), "line 7");
    COIL_TEST_ASSERT_HAS(coil_test_log_text(), "line 8");
    COIL_TEST_ASSERT_HAS(coil_test_log_text(), "line 9");
    CU_ASSERT(strstr(coil_test_log_text(), "line 4") == NULL);
    coil__authkeys_free(ak);

    /* A line beyond 16 KiB is skipped, the next one read; no newline at
     * the end is fine. */
    size_t big = 17 * 1024;
    char *t = malloc(big + 1024);
    memset(t, 'A', big);
    memcpy(t, "ssh-ed25519 ", 12);
    t[big] = '\n';
    size_t n = big + 1 + (size_t)snprintf(t + big + 1, 1000, "%s", line[2]);
    coil_test_log_capture_start();
    CU_ASSERT_EQUAL_FATAL(coil__authkeys_parse(t, n, &ak), 0);
    coil_test_log_capture_stop();
    COIL_TEST_ASSERT_HAS(coil_test_log_text(), "line 1: longer than");
    CU_ASSERT_EQUAL(coil__authkeys_count(ak), 1);
    CU_ASSERT_EQUAL(coil__authkeys_has(ak, cb, cl), 1);
    coil__authkeys_free(ak);
    free(t);

    /* Empty text; any bytes. */
    CU_ASSERT_EQUAL_FATAL(coil__authkeys_parse("", 0, &ak), 0);
    CU_ASSERT_EQUAL(coil__authkeys_count(ak), 0);
    CU_ASSERT_EQUAL(coil__authkeys_has(ak, ab, al), 0);
    coil__authkeys_free(ak);
    unsigned char junk[2048];
    for (int i = 0; i < 50; i++) {
        randombytes_buf(junk, sizeof junk);
        coil_test_log_capture_start();
        CU_ASSERT_EQUAL_FATAL(coil__authkeys_parse((const char *)junk, sizeof junk, &ak),
                              0);
        coil_test_log_capture_stop();
        coil__authkeys_free(ak);
    }

    /* From a file; a missing file names itself. */
    coil_failure *err = NULL;
    make_tmpdir();
    write_file(path_in("authorized_keys"), text, strlen(text), 0600);
    coil_test_log_capture_start();
    CU_ASSERT_EQUAL(coil__authkeys_load(path_in("authorized_keys"), &ak, &err), 0);
    coil_test_log_capture_stop();
    COIL_TEST_ASSERT_HAS(coil_test_log_text(), path_in("authorized_keys"));
    CU_ASSERT_EQUAL(coil__authkeys_count(ak), 2);
    coil__authkeys_free(ak);
    ak = COIL_TEST_POISON;
    CU_ASSERT(coil__authkeys_load(path_in("missing"), &ak, &err) != 0);
    CU_ASSERT(ak == NULL);
    COIL_TEST_ASSERT_HAS(err ? coil_failure_message(err) : NULL, path_in("missing"));
    coil_failure_free(err);
    rm_tmpdir();
    coil__sshkey_free(a);
    coil__sshkey_free(b);
    coil__sshkey_free(c);
}

/* ssh-keygen's own public key lines are read. */
static void test_authorized_keys_ssh_keygen(void)
{
    char text[8192] = "";
    make_tmpdir();
    if (have_keygen() && keygen("ed", "-t ed25519", NULL) == 0 &&
        keygen("ec", "-t ecdsa -b 256", NULL) == 0 &&
        keygen("rsa", "-t rsa -b 2048", NULL) == 0) {
        const char *names[] = {"ed.pub", "ec.pub", "rsa.pub"};
        unsigned char blob[1024];
        for (int i = 0; i < 3; i++)
            strcat(text, read_file(path_in(names[i]), NULL));
        coil__authkeys *ak = NULL;
        CU_ASSERT_EQUAL_FATAL(coil__authkeys_parse(text, strlen(text), &ak), 0);
        CU_ASSERT_EQUAL(coil__authkeys_count(ak), 3);
        for (int i = 0; i < 3; i++) {
            size_t len = pub_blob(read_file(path_in(names[i]), NULL), blob, sizeof blob);
            CU_ASSERT(len > 0 && coil__authkeys_has(ak, blob, len) == 1);
            blob[len - 1] ^= 1;
            CU_ASSERT(coil__authkeys_has(ak, blob, len) == 0);
        }
        coil__authkeys_free(ak);
    }
    rm_tmpdir();
}

/* ---- password hashes --------------------------------------------------------------- */

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_password_hash(void)
{
    char hash[COIL_SSH_PASSWORD_HASH_SIZE], small[16];
    CU_ASSERT_EQUAL_FATAL(coil_ssh_password_hash("hunter2", 7, hash, sizeof hash), 0);
    CU_ASSERT(strncmp(hash, "$argon2id$", 10) == 0);
    CU_ASSERT_EQUAL(coil_ssh_password_hash("hunter2", 7, small, sizeof small),
                    COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_ssh_password_verify(hash, "hunter2", 7), 1);
    CU_ASSERT_EQUAL(coil_ssh_password_verify(hash, "hunter2x", 8), 0);
    CU_ASSERT_EQUAL(coil_ssh_password_verify(hash, "hunter", 6), 0);
    CU_ASSERT_EQUAL(coil_ssh_password_verify(hash, "", 0), 0);
    /* Not NUL terminated: len counts. */
    CU_ASSERT_EQUAL(coil_ssh_password_verify(hash, "hunter2 and more", 7), 1);
    /* Another hash of the same password differs (salt) and verifies. */
    char hash2[COIL_SSH_PASSWORD_HASH_SIZE];
    CU_ASSERT_EQUAL_FATAL(coil_ssh_password_hash("hunter2", 7, hash2, sizeof hash2), 0);
    CU_ASSERT(strcmp(hash, hash2) != 0);
    CU_ASSERT_EQUAL(coil_ssh_password_verify(hash2, "hunter2", 7), 1);
    /* An empty password hashes and verifies too. */
    CU_ASSERT_EQUAL_FATAL(coil_ssh_password_hash("", 0, hash2, sizeof hash2), 0);
    CU_ASSERT_EQUAL(coil_ssh_password_verify(hash2, "", 0), 1);
    CU_ASSERT_EQUAL(coil_ssh_password_verify(hash2, "x", 1), 0);

    /* Malformed or NULL hashes: 0, in about the time of a real check. */
    double t0 = cpu_now();
    CU_ASSERT_EQUAL(coil_ssh_password_verify(hash, "wrong", 5), 0);
    double wrong = cpu_now() - t0;
    const char *bad[] = {NULL,
                         "",
                         "hunter2",
                         "$argon2id$",
                         "$argon2id$v=19$m=garbage",
                         "$2b$10$abcdefghijklmnopqrstuv"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t0 = cpu_now();
        CU_ASSERT_EQUAL(coil_ssh_password_verify(bad[i], "hunter2", 7), 0);
        double took = cpu_now() - t0;
        if (took < wrong * 0.3)
            fprintf(stderr,
                    "\n    malformed hash %zu took %.4f s of CPU, a real check %.4f s\n",
                    i, took, wrong);
        CU_ASSERT(took >= wrong * 0.3);
    }
    char longhash[300];
    memset(longhash, 'a', sizeof longhash - 1);
    longhash[sizeof longhash - 1] = 0;
    CU_ASSERT_EQUAL(coil_ssh_password_verify(longhash, "hunter2", 7), 0);
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
    static const coil_test_case user[] = {
        COIL_TEST(test_user_ed25519_ecdsa),
        COIL_TEST(test_sign_verified_by_python),
        COIL_TEST(test_user_rsa),
        COIL_TEST(test_user_key_check),
        {NULL, NULL},
    };
    static const coil_test_case authkeys[] = {
        COIL_TEST(test_authorized_keys),
        COIL_TEST(test_authorized_keys_ssh_keygen),
        {NULL, NULL},
    };
    static const coil_test_case password[] = {
        COIL_TEST(test_password_hash),
        {NULL, NULL},
    };
    if (coil_test_add_suite("sshkeys_host", host) ||
        coil_test_add_suite("sshkeys_user", user) ||
        coil_test_add_suite("sshkeys_authorized_keys", authkeys))
        return -1;
    return coil_test_add_suite("sshkeys_password", password);
}

int main(void)
{
    return coil_test_main(add_suites);
}
