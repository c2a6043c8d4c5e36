/* coil's known_hosts reader (ssh/known_hosts.c) and coil_ssh_fingerprint.
 *
 * Fixed test vectors, made once with OpenSSH 9.2's tools so the test is
 * deterministic: keys by `ssh-keygen -t ed25519|ecdsa|rsa`, fingerprints by
 * `ssh-keygen -lf KEY.pub`, hashed lines by `ssh-keygen -H` over
 *   [127.0.0.1]:2222 ED_A
 *   build.example EC_A
 *   [Host.Mixed.example]:2200 ED_A
 * Where ssh-keygen is installed the test also asks it (-F) to find what
 * accept-new wrote. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "known_hosts.h"
#include "testutil.h"

#define ED_A    "AAAAC3NzaC1lZDI1NTE5AAAAIGlyk+lFmzCFXAQN45bLAc2+v2KgfhOmk53HNEOlruQx"
#define ED_A_FP "SHA256:wHOWG334U7FnKjVgvnv9mNL7CiFc28HeVg7PocEO7AU"
#define ED_B    "AAAAC3NzaC1lZDI1NTE5AAAAIC6G51+JDAEcl9MHp3xcSKw6eEbuUpkAROY5VA0M5LDA"
#define ED_B_FP "SHA256:UvMcP1Aic5m5zTEY9SQCiNIlg54QVWqS6RBYxLh+W4A"
#define EC_A                                                                       \
    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBOKlwMcC0/KUnIpj1nt03c78" \
    "2Gkb/HF3rfD+rLCE/hMO5IaWT22+bUd/gYcgge7sRieLaTHkf5VCApF1H7A+6Uw="
#define EC_A_FP "SHA256:rtci3Rf1517qBEVASZiw5AnVELcLQCwZpwoRQaBUfHw"
#define EC_B                                                                       \
    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBIrFxBKidDWp3TPuK0A5M5jO" \
    "KLT5stNX6w9VC6NfbGrkQhRCLajsfoOF8+S5RGji4lDL0qm39n0dTnzj6f5MpoE="
#define EC_B_FP "SHA256:FWrod/t58rpaQgkFihZmDF39RNDZEHFbQab/MEmbU9U"
#define RSA_A                                                                      \
    "AAAAB3NzaC1yc2EAAAADAQABAAAAgQDRQpL71tw3fWI35T6exgUJCmZuCpRRvD1QuZ6DNzj5itCU" \
    "RIbSJjWYmay/Ojryir22iyOXcuweLN9Z+0Z56XGD0JSkiEItZ6j/5Ojtjz+rYhwjTt8cMme1Ml5J" \
    "iFe9xcT4ZbuXsw0j/WX5rTzt7acki19YcLWhEnT2TRsnxIXPpQ=="
#define RSA_A_FP "SHA256:mja/nJgqWobXjz3Zm8hkQumMK+DAn4kNuM+XkwTRO8c"

/* ssh-keygen -H of the three lines in the header comment. */
#define HASHED_LOCAL_2222 "|1|WvM3jOF9rLNSLf4PB4BF2U2wSFE=|oyRZ5BZtZypmYyArXPZf500cO4A="
#define HASHED_BUILD      "|1|tpIF2yYGAje8BkuFcTsaHpfVIII=|V5fLfUXGsCO5hwto+MdlYU+7NhM="
#define HASHED_MIXED_2200 "|1|Mj6LwuybYBvSp8Mxo0XEUGyZVto=|DLUyyJBpFDnHXhDplxJaDSSZkuw="

typedef struct key {
    unsigned char blob[512];
    size_t len;
} key;

static key decode(const char *b64)
{
    key k;
    CU_ASSERT_FATAL(sodium_base642bin(k.blob, sizeof k.blob, b64, strlen(b64), NULL,
                                      &k.len, NULL, sodium_base64_VARIANT_ORIGINAL) == 0);
    return k;
}

/* What `text` says about key `b64` for host:port; the line in *line. */
static int check(const char *text, const char *host, int port, const char *b64,
                 unsigned long *line)
{
    key k = decode(b64);
    coil__kh_result res = {-1, 0, 0};
    int rc =
        coil__known_hosts_check_text(text, strlen(text), host, port, k.blob, k.len, &res);
    CU_ASSERT_EQUAL(rc, 0);
    if (line)
        *line = res.line;
    return res.status;
}

static void test_fingerprint_matches_ssh_keygen(void)
{
    static const char *const vec[][2] = {{ED_A, ED_A_FP},
                                         {ED_B, ED_B_FP},
                                         {EC_A, EC_A_FP},
                                         {EC_B, EC_B_FP},
                                         {RSA_A, RSA_A_FP}};
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        key k = decode(vec[i][0]);
        char fp[52];
        CU_ASSERT_EQUAL(coil_ssh_fingerprint(k.blob, k.len, fp, sizeof fp), 0);
        CU_ASSERT_STRING_EQUAL(fp, vec[i][1]);
    }
    key k = decode(ED_A);
    char small[51];
    CU_ASSERT_EQUAL(coil_ssh_fingerprint(k.blob, k.len, small, sizeof small),
                    COIL_EINVAL);
}

static void test_key_type_bounded(void)
{
    char type[65];
    key k = decode(EC_A);
    CU_ASSERT_EQUAL(coil__ssh_key_type(k.blob, k.len, type, sizeof type), 0);
    CU_ASSERT_STRING_EQUAL(type, "ecdsa-sha2-nistp256");
    CU_ASSERT_STRING_EQUAL(coil__ssh_key_type_short(type), "ECDSA");
    k = decode(ED_A);
    CU_ASSERT_EQUAL(coil__ssh_key_type(k.blob, k.len, type, sizeof type), 0);
    CU_ASSERT_STRING_EQUAL(coil__ssh_key_type_short(type), "ED25519");
    /* Too short for its length, a length past the blob, a huge length, an
     * empty type, a non-printable type, a buffer too small. */
    CU_ASSERT_EQUAL(coil__ssh_key_type(k.blob, 3, type, sizeof type), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil__ssh_key_type(k.blob, 10, type, sizeof type), COIL_EINVAL);
    const unsigned char huge[] = {0xff, 0xff, 0xff, 0xff, 's', 's', 'h'};
    CU_ASSERT_EQUAL(coil__ssh_key_type(huge, sizeof huge, type, sizeof type),
                    COIL_EINVAL);
    const unsigned char empty[] = {0, 0, 0, 0};
    CU_ASSERT_EQUAL(coil__ssh_key_type(empty, sizeof empty, type, sizeof type),
                    COIL_EINVAL);
    const unsigned char ctl[] = {0, 0, 0, 3, 's', '\n', 'h'};
    CU_ASSERT_EQUAL(coil__ssh_key_type(ctl, sizeof ctl, type, sizeof type), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil__ssh_key_type(k.blob, k.len, type, 5), COIL_EINVAL);
    coil__kh_result res;
    CU_ASSERT_EQUAL(
        coil__known_hosts_check_text("", 0, "h", 22, empty, sizeof empty, &res),
        COIL_EINVAL);
}

static void test_plain_names_and_ports(void)
{
    unsigned long line;
    const char *t = "127.0.0.1 ssh-ed25519 " ED_A "\n"
                    "[127.0.0.1]:2222 ssh-ed25519 " ED_B " a comment\n";
    CU_ASSERT_EQUAL(check(t, "127.0.0.1", 22, ED_A, &line), COIL__KH_MATCH);
    CU_ASSERT_EQUAL(line, 1);
    CU_ASSERT_EQUAL(check(t, "127.0.0.1", 0, ED_A, NULL), COIL__KH_MATCH);
    CU_ASSERT_EQUAL(check(t, "127.0.0.1", 2222, ED_B, &line), COIL__KH_MATCH);
    CU_ASSERT_EQUAL(line, 2);
    /* The port picks the line: ED_A is not the key of [127.0.0.1]:2222. */
    CU_ASSERT_EQUAL(check(t, "127.0.0.1", 2222, ED_A, &line), COIL__KH_CHANGED);
    CU_ASSERT_EQUAL(line, 2);
    CU_ASSERT_EQUAL(check(t, "127.0.0.1", 2200, ED_A, NULL), COIL__KH_UNKNOWN);
    /* A plain name never stands for another port ([host]:22 is not written). */
    CU_ASSERT_EQUAL(check("[h]:22 ssh-ed25519 " ED_A "\n", "h", 22, ED_A, NULL),
                    COIL__KH_UNKNOWN);
    CU_ASSERT_EQUAL(check(t, "127.0.0.2", 22, ED_A, NULL), COIL__KH_UNKNOWN);
    /* Names compare without case. */
    CU_ASSERT_EQUAL(
        check("Build.Example ssh-ed25519 " ED_A, "build.EXAMPLE", 22, ED_A, NULL),
        COIL__KH_MATCH);
    /* IPv6. */
    CU_ASSERT_EQUAL(check("[::1]:2222 ssh-ed25519 " ED_A, "::1", 2222, ED_A, NULL),
                    COIL__KH_MATCH);
}

static void test_patterns_and_negation(void)
{
    const char *t = "*.example.org,!bad.example.org ssh-ed25519 " ED_A "\n"
                    "host?.lan,other ssh-ed25519 " ED_A "\n"
                    "[*.ports]:2222 ssh-ed25519 " ED_A "\n"
                    "!*.org,*.net ssh-ed25519 " ED_A "\n";
    CU_ASSERT_EQUAL(check(t, "www.example.org", 22, ED_A, NULL), COIL__KH_MATCH);
    CU_ASSERT_EQUAL(check(t, "a.b.example.org", 22, ED_A, NULL), COIL__KH_MATCH);
    CU_ASSERT_EQUAL(check(t, "bad.example.org", 22, ED_A, NULL), COIL__KH_UNKNOWN);
    CU_ASSERT_EQUAL(check(t, "example.org", 22, ED_A, NULL), COIL__KH_UNKNOWN);
    CU_ASSERT_EQUAL(check(t, "host1.lan", 22, ED_A, NULL), COIL__KH_MATCH);
    CU_ASSERT_EQUAL(check(t, "host12.lan", 22, ED_A, NULL), COIL__KH_UNKNOWN);
    CU_ASSERT_EQUAL(check(t, "other", 22, ED_A, NULL), COIL__KH_MATCH);
    CU_ASSERT_EQUAL(check(t, "a.ports", 2222, ED_A, NULL), COIL__KH_MATCH);
    CU_ASSERT_EQUAL(check(t, "a.ports", 22, ED_A, NULL), COIL__KH_UNKNOWN);
    CU_ASSERT_EQUAL(check(t, "x.net", 22, ED_A, NULL), COIL__KH_MATCH);
    /* A negated match voids its line only; a host that no pattern names is
     * not matched by a line of negations. */
    CU_ASSERT_EQUAL(check("!a ssh-ed25519 " ED_A, "b", 22, ED_A, NULL), COIL__KH_UNKNOWN);
    /* Backtracking: many stars, no blow-up. */
    CU_ASSERT_EQUAL(check("*a*a*a*a*a*a*a*a*b ssh-ed25519 " ED_A,
                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 22, ED_A, NULL),
                    COIL__KH_UNKNOWN);
    CU_ASSERT_EQUAL(check("*a*a*a*a*a*a*a*a*b ssh-ed25519 " ED_A,
                          "aaaaaaaaaaaaaaaaaaaaab", 22, ED_A, NULL),
                    COIL__KH_MATCH);
}

static void test_hashed_names(void)
{
    const char *t = HASHED_LOCAL_2222 " ssh-ed25519 " ED_A "\n" HASHED_BUILD
                                      " ecdsa-sha2-nistp256 " EC_A "\n" HASHED_MIXED_2200
                                      " ssh-ed25519 " ED_A "\n";
    unsigned long line;
    CU_ASSERT_EQUAL(check(t, "127.0.0.1", 2222, ED_A, &line), COIL__KH_MATCH);
    CU_ASSERT_EQUAL(line, 1);
    CU_ASSERT_EQUAL(check(t, "127.0.0.1", 2222, ED_B, &line), COIL__KH_CHANGED);
    CU_ASSERT_EQUAL(line, 1);
    CU_ASSERT_EQUAL(check(t, "127.0.0.1", 22, ED_A, NULL), COIL__KH_UNKNOWN);
    CU_ASSERT_EQUAL(check(t, "build.example", 22, EC_A, &line), COIL__KH_MATCH);
    CU_ASSERT_EQUAL(line, 2);
    CU_ASSERT_EQUAL(check(t, "build.example", 22, EC_B, NULL), COIL__KH_CHANGED);
    /* ssh-keygen -H hashed the lower-cased name. */
    CU_ASSERT_EQUAL(check(t, "HOST.mixed.Example", 2200, ED_A, &line), COIL__KH_MATCH);
    CU_ASSERT_EQUAL(line, 3);
    /* A damaged hash, salt or prefix matches nothing (and does not crash). */
    const char *bad[] = {
        "|1|WvM3jOF9rLNSLf4PB4BF2U2wSFE=|oyRZ5BZtZypmYyArXPZf500cO4B= ssh-ed25519 " ED_A,
        "|1|WvM3jOF9rLNSLf4PB4BF2U2wSFF=|oyRZ5BZtZypmYyArXPZf500cO4A= ssh-ed25519 " ED_A,
        "|2|WvM3jOF9rLNSLf4PB4BF2U2wSFE=|oyRZ5BZtZypmYyArXPZf500cO4A= ssh-ed25519 " ED_A,
        "|1|WvM3jOF9rLNSLf4PB4BF2U2wSFE=oyRZ5BZtZypmYyArXPZf500cO4A= ssh-ed25519 " ED_A,
        "|1|WvM3jOF9|oyRZ5BZtZypmYyArXPZf500cO4A= ssh-ed25519 " ED_A,
        "|1|%%%%|oyRZ5BZtZypmYyArXPZf500cO4A= ssh-ed25519 " ED_A,
        "|1||| ssh-ed25519 " ED_A,
        "| ssh-ed25519 " ED_A,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_EQUAL(check(bad[i], "127.0.0.1", 2222, ED_A, NULL), COIL__KH_UNKNOWN);
}

static void test_several_keys_per_host(void)
{
    unsigned long line;
    /* Either listed key of the type is fine, whatever the order. */
    const char *two = "h ssh-ed25519 " ED_A "\nh ssh-ed25519 " ED_B "\n";
    CU_ASSERT_EQUAL(check(two, "h", 22, ED_B, &line), COIL__KH_MATCH);
    CU_ASSERT_EQUAL(line, 2);
    CU_ASSERT_EQUAL(check(two, "h", 22, ED_A, &line), COIL__KH_MATCH);
    CU_ASSERT_EQUAL(line, 1);
    /* One host, several types: each type checked against its own lines. */
    const char *mixed = "h ecdsa-sha2-nistp256 " EC_A "\nh ssh-ed25519 " ED_A "\n";
    CU_ASSERT_EQUAL(check(mixed, "h", 22, EC_A, NULL), COIL__KH_MATCH);
    CU_ASSERT_EQUAL(check(mixed, "h", 22, EC_B, &line), COIL__KH_CHANGED);
    CU_ASSERT_EQUAL(line, 1);
    CU_ASSERT_EQUAL(check(mixed, "h", 22, ED_B, &line), COIL__KH_CHANGED);
    CU_ASSERT_EQUAL(line, 2);
    /* Only other types listed: unknown for this type, as OpenSSH says
     * ("No ED25519 host key is known for h"); n_keys tells they exist. */
    key k = decode(ED_A);
    coil__kh_result res;
    const char *ec_only = "h ecdsa-sha2-nistp256 " EC_A "\nh ssh-rsa " RSA_A "\n";
    CU_ASSERT_EQUAL(coil__known_hosts_check_text(ec_only, strlen(ec_only), "h", 22,
                                                 k.blob, k.len, &res),
                    0);
    CU_ASSERT_EQUAL(res.status, COIL__KH_UNKNOWN);
    CU_ASSERT_EQUAL(res.n_keys, 2);
    /* The same key under one host's several lines and names. */
    CU_ASSERT_EQUAL(check("a,h,b ssh-ed25519 " ED_A, "h", 22, ED_A, NULL),
                    COIL__KH_MATCH);
}

static void test_revoked_and_cert_authority(void)
{
    unsigned long line;
    /* Revoked wins over a line listing the key, before or after it. */
    const char *t1 = "h ssh-ed25519 " ED_A "\n@revoked * ssh-ed25519 " ED_A "\n";
    CU_ASSERT_EQUAL(check(t1, "h", 22, ED_A, &line), COIL__KH_REVOKED);
    CU_ASSERT_EQUAL(line, 2);
    const char *t2 = "@revoked * ssh-ed25519 " ED_A "\nh ssh-ed25519 " ED_A "\n";
    CU_ASSERT_EQUAL(check(t2, "h", 22, ED_A, &line), COIL__KH_REVOKED);
    CU_ASSERT_EQUAL(line, 1);
    /* Refused for any host, whatever the line's patterns name. */
    CU_ASSERT_EQUAL(check("@revoked other ssh-ed25519 " ED_A, "h", 2222, ED_A, NULL),
                    COIL__KH_REVOKED);
    /* Another key of the host is not touched by it. */
    CU_ASSERT_EQUAL(check("@revoked * ssh-ed25519 " ED_A "\nh ssh-ed25519 " ED_B, "h", 22,
                          ED_B, NULL),
                    COIL__KH_MATCH);
    /* @cert-authority lines are ignored (host certificates are not
     * supported), unknown markers too. */
    CU_ASSERT_EQUAL(check("@cert-authority h ssh-ed25519 " ED_A, "h", 22, ED_A, NULL),
                    COIL__KH_UNKNOWN);
    CU_ASSERT_EQUAL(check("@cert-authority h ssh-ed25519 " ED_B, "h", 22, ED_A, NULL),
                    COIL__KH_UNKNOWN);
    CU_ASSERT_EQUAL(check("@whatever h ssh-ed25519 " ED_A, "h", 22, ED_A, NULL),
                    COIL__KH_UNKNOWN);
}

static void test_comments_blank_crlf_whitespace(void)
{
    unsigned long line;
    const char *t = "# a comment h ssh-ed25519 " ED_B "\r\n"
                    "\r\n"
                    "   \t\n"
                    "  # indented comment\n"
                    "\th\tssh-ed25519\t" ED_A "\tcomment with spaces \r\n"
                    "last ssh-ed25519 " ED_A; /* no final newline */
    CU_ASSERT_EQUAL(check(t, "h", 22, ED_A, &line), COIL__KH_MATCH);
    CU_ASSERT_EQUAL(line, 5);
    CU_ASSERT_EQUAL(check(t, "last", 22, ED_A, &line), COIL__KH_MATCH);
    CU_ASSERT_EQUAL(line, 6);
    /* The commented-out key is not a key of h: line 5's is. */
    CU_ASSERT_EQUAL(check(t, "h", 22, ED_B, &line), COIL__KH_CHANGED);
    CU_ASSERT_EQUAL(line, 5);
    CU_ASSERT_EQUAL(check(t, "a", 22, ED_B, NULL), COIL__KH_UNKNOWN);
    CU_ASSERT_EQUAL(check("", "h", 22, ED_A, NULL), COIL__KH_UNKNOWN);
}

static void test_bad_lines_skipped(void)
{
    /* The type field must name the key's own type; base64 must decode; a
     * line needs three fields; a NUL makes a line not text. */
    CU_ASSERT_EQUAL(check("h ssh-rsa " ED_A, "h", 22, ED_A, NULL), COIL__KH_UNKNOWN);
    CU_ASSERT_EQUAL(check("h ssh-ed25519 AAAA%%%", "h", 22, ED_A, NULL),
                    COIL__KH_UNKNOWN);
    CU_ASSERT_EQUAL(check("h ssh-ed25519", "h", 22, ED_A, NULL), COIL__KH_UNKNOWN);
    CU_ASSERT_EQUAL(check("h", "h", 22, ED_A, NULL), COIL__KH_UNKNOWN);
    CU_ASSERT_EQUAL(check("h ssh-ed25519 AAAA", "h", 22, ED_A, NULL), COIL__KH_UNKNOWN);
    char nul[256];
    int n = snprintf(nul, sizeof nul, "h ssh-ed25519 %s\nh", ED_A);
    nul[1] = '\0'; /* "h\0ssh-ed25519 ..." */
    key k = decode(ED_A);
    coil__kh_result res;
    CU_ASSERT_EQUAL(
        coil__known_hosts_check_text(nul, (size_t)n, "h", 22, k.blob, k.len, &res), 0);
    CU_ASSERT_EQUAL(res.status, COIL__KH_UNKNOWN);
    /* Base64 must be padded, as OpenSSH's decoder wants it. */
    char unpadded[256];
    snprintf(unpadded, sizeof unpadded, "h ecdsa-sha2-nistp256 %.*s",
             (int)strlen(EC_A) - 1, EC_A);
    CU_ASSERT_EQUAL(check(unpadded, "h", 22, EC_A, NULL), COIL__KH_UNKNOWN);
    CU_ASSERT_EQUAL(check("h ecdsa-sha2-nistp256 " EC_A, "h", 22, EC_A, NULL),
                    COIL__KH_MATCH);
}

static void test_long_lines_skipped(void)
{
    /* A line over the bound (even one that would list the key) is skipped;
     * the lines after it are read; no crash at any length near the bound. */
    size_t sizes[] = {COIL__KH_MAX_LINE - 1, COIL__KH_MAX_LINE, COIL__KH_MAX_LINE + 1,
                      3 * COIL__KH_MAX_LINE};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t pad = sizes[i];
        const char *tail = " ssh-ed25519 " ED_A;
        size_t cap = pad + strlen(tail) + 200;
        char *t = malloc(cap);
        CU_ASSERT_FATAL(t != NULL);
        /* "h,aaaa...a ssh-ed25519 KEY\nok ssh-ed25519 KEY\n" with the first
         * line `pad` + tail bytes long. */
        memcpy(t, "h,", 2);
        memset(t + 2, 'a', pad - 2);
        size_t len = pad;
        memcpy(t + len, tail, strlen(tail));
        len += strlen(tail);
        size_t first = len;
        len += (size_t)snprintf(t + len, cap - len, "\nok ssh-ed25519 %s\n", ED_A);
        key k = decode(ED_A);
        coil__kh_result res;
        CU_ASSERT_EQUAL(
            coil__known_hosts_check_text(t, len, "ok", 22, k.blob, k.len, &res), 0);
        CU_ASSERT_EQUAL(res.status, COIL__KH_MATCH);
        CU_ASSERT_EQUAL(res.line, 2);
        CU_ASSERT_EQUAL(
            coil__known_hosts_check_text(t, len, "h", 22, k.blob, k.len, &res), 0);
        CU_ASSERT_EQUAL(res.status,
                        first <= COIL__KH_MAX_LINE ? COIL__KH_MATCH : COIL__KH_UNKNOWN);
        free(t);
    }
}

/* ---- files ------------------------------------------------------------------- */

static char tmpdir[256];

static void make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/coil-kh-XXXXXX", base && *base ? base : "/tmp");
    CU_ASSERT_FATAL(mkdtemp(tmpdir) != NULL);
}

static void rm_tmpdir(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_FATAL(f != NULL);
    fputs(text, f);
    fclose(f);
}

static char *read_file(const char *path)
{
    static char buf[8192];
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int verify(const char *path, const char *host, int port, const char *b64,
                  int policy, coil_failure **err)
{
    key k = decode(b64);
    *err = NULL;
    return coil__known_hosts_verify(path, host, port, k.blob, k.len, policy, err);
}

static void test_verify_messages(void)
{
    make_tmpdir();
    char path[320], expect[1024];
    snprintf(path, sizeof path, "%s/known_hosts", tmpdir);
    write_file(path, "# test\n"
                     "[127.0.0.1]:2222 ssh-ed25519 " ED_A "\n"
                     "[127.0.0.1]:2222 ecdsa-sha2-nistp256 " EC_A "\n"
                     "@revoked * ssh-ed25519 " ED_B "\n");
    coil_failure *err;
    CU_ASSERT_EQUAL(verify(path, "127.0.0.1", 2222, ED_A, COIL_SSH_HOST_KEY_STRICT, &err),
                    0);
    CU_ASSERT_PTR_NULL(err);
    CU_ASSERT_EQUAL(verify(path, "127.0.0.1", 2222, EC_A, COIL_SSH_HOST_KEY_STRICT, &err),
                    0);

    /* Unknown: exactly the message of ssh.h. */
    CU_ASSERT_EQUAL(verify(path, "127.0.0.1", 2200, EC_B, COIL_SSH_HOST_KEY_STRICT, &err),
                    -COIL_SSH_EHOSTKEY_UNKNOWN);
    CU_ASSERT_FATAL(err != NULL);
    CU_ASSERT_EQUAL(coil_failure_domain(err), COIL_DOMAIN_SSH);
    CU_ASSERT_EQUAL(coil_failure_code(err), COIL_SSH_EHOSTKEY_UNKNOWN);
    snprintf(expect, sizeof expect,
             "host key for 127.0.0.1:2200 is not in %s (ECDSA " EC_B_FP
             "); add it with ssh-keyscan -p 2200 127.0.0.1 >> %s, or connect once with "
             "hostKeys=accept-new",
             path, path);
    CU_ASSERT_STRING_EQUAL(coil_failure_message(err), expect);
    coil_failure_free(err);
    /* Port 22: no -p. */
    CU_ASSERT_EQUAL(verify(path, "example.org", 22, ED_A, COIL_SSH_HOST_KEY_STRICT, &err),
                    -COIL_SSH_EHOSTKEY_UNKNOWN);
    CU_ASSERT(strstr(coil_failure_message(err),
                     "host key for example.org:22 is not in ") != NULL);
    CU_ASSERT(strstr(coil_failure_message(err), "ssh-keyscan example.org >> ") != NULL);
    coil_failure_free(err);

    /* Changed: loud, names the file, the old key's line and both keys. */
    CU_ASSERT_EQUAL(verify(path, "127.0.0.1", 2222, EC_B, COIL_SSH_HOST_KEY_STRICT, &err),
                    -COIL_SSH_EHOSTKEY_CHANGED);
    CU_ASSERT_FATAL(err != NULL);
    CU_ASSERT_EQUAL(coil_failure_code(err), COIL_SSH_EHOSTKEY_CHANGED);
    const char *m = coil_failure_message(err);
    CU_ASSERT(strstr(m, "HOST KEY FOR 127.0.0.1:2222 HAS CHANGED") != NULL);
    CU_ASSERT(strstr(m, "someone may be intercepting this connection") != NULL ||
              strstr(m, "Someone may be intercepting this connection") != NULL);
    snprintf(expect, sizeof expect, "%s line 3", path);
    CU_ASSERT(strstr(m, expect) != NULL);
    CU_ASSERT(strstr(m, EC_B_FP) != NULL);
    CU_ASSERT(strstr(m, "(" EC_A_FP ")") != NULL);
    CU_ASSERT(strstr(m, "ssh-keygen -R '[127.0.0.1]:2222'") != NULL);
    coil_failure_free(err);
    /* accept-new never accepts a changed key. */
    CU_ASSERT_EQUAL(
        verify(path, "127.0.0.1", 2222, EC_B, COIL_SSH_HOST_KEY_ACCEPT_NEW, &err),
        -COIL_SSH_EHOSTKEY_CHANGED);
    coil_failure_free(err);

    /* Revoked, whatever the policy. */
    for (int policy = COIL_SSH_HOST_KEY_STRICT; policy <= COIL_SSH_HOST_KEY_ACCEPT_NEW;
         policy++) {
        CU_ASSERT_EQUAL(verify(path, "127.0.0.1", 2222, ED_B, policy, &err),
                        -COIL_SSH_EHOSTKEY_REVOKED);
        CU_ASSERT_EQUAL(coil_failure_code(err), COIL_SSH_EHOSTKEY_REVOKED);
        snprintf(expect, sizeof expect, "%s line 4", path);
        CU_ASSERT(strstr(coil_failure_message(err), expect) != NULL);
        CU_ASSERT(strstr(coil_failure_message(err), ED_B_FP) != NULL);
        coil_failure_free(err);
    }

    /* Only another type listed: unknown, and the message says so. */
    write_file(path, "h ecdsa-sha2-nistp256 " EC_A "\n");
    CU_ASSERT_EQUAL(verify(path, "h", 22, ED_A, COIL_SSH_HOST_KEY_STRICT, &err),
                    -COIL_SSH_EHOSTKEY_UNKNOWN);
    CU_ASSERT(strstr(coil_failure_message(err), "only other key types") != NULL);
    coil_failure_free(err);

    /* Insecure: anything, without reading. */
    CU_ASSERT_EQUAL(verify("/nonexistent/dir/kh", "h", 22, ED_A,
                           COIL_SSH_HOST_KEY_INSECURE_ACCEPT_ANY, &err),
                    0);
    CU_ASSERT_PTR_NULL(err);

    /* A missing file is empty. */
    snprintf(path, sizeof path, "%s/missing", tmpdir);
    CU_ASSERT_EQUAL(verify(path, "h", 22, ED_A, COIL_SSH_HOST_KEY_STRICT, &err),
                    -COIL_SSH_EHOSTKEY_UNKNOWN);
    coil_failure_free(err);

    /* A host name that could not be written back, or a blob that is no key. */
    CU_ASSERT_EQUAL(
        verify(path, "h\nx ssh-ed25519", 22, ED_A, COIL_SSH_HOST_KEY_ACCEPT_NEW, &err),
        COIL_EINVAL);
    coil_failure_free(err);
    CU_ASSERT_EQUAL(verify(path, "a,b", 22, ED_A, COIL_SSH_HOST_KEY_ACCEPT_NEW, &err),
                    COIL_EINVAL);
    coil_failure_free(err);
    CU_ASSERT_EQUAL(access(path, F_OK), -1);
    unsigned char junk[8] = {0, 0, 0, 9};
    err = NULL;
    CU_ASSERT_EQUAL(coil__known_hosts_verify(path, "h", 22, junk, sizeof junk,
                                             COIL_SSH_HOST_KEY_STRICT, &err),
                    COIL_EINVAL);
    CU_ASSERT(err && strstr(coil_failure_message(err), "not an SSH public key"));
    coil_failure_free(err);
    rm_tmpdir();
}

static void test_unreadable_file(void)
{
    make_tmpdir();
    coil_failure *err;
    /* A directory (root reads any file, so permissions would not do). */
    CU_ASSERT_EQUAL(verify(tmpdir, "h", 22, ED_A, COIL_SSH_HOST_KEY_STRICT, &err),
                    COIL_ESYSTEM);
    CU_ASSERT_FATAL(err != NULL);
    CU_ASSERT_EQUAL(coil_failure_domain(err), COIL_DOMAIN_SYSTEM);
    CU_ASSERT_EQUAL(coil_failure_code(err), EISDIR);
    char expect[512];
    snprintf(expect, sizeof expect,
             "cannot read known_hosts file %s to check the host key of h:22", tmpdir);
    CU_ASSERT(strstr(coil_failure_message(err), expect) != NULL);
    CU_ASSERT(strstr(coil_failure_message(err), "Is a directory") != NULL);
    coil_failure_free(err);
    /* Under a file: not "missing", an error. */
    char path[320];
    snprintf(path, sizeof path, "%s/file", tmpdir);
    write_file(path, "");
    snprintf(path, sizeof path, "%s/file/known_hosts", tmpdir);
    CU_ASSERT_EQUAL(verify(path, "h", 22, ED_A, COIL_SSH_HOST_KEY_STRICT, &err),
                    COIL_ESYSTEM);
    CU_ASSERT(err && coil_failure_code(err) == ENOTDIR);
    coil_failure_free(err);
    /* accept-new into it: the append fails, the unknown failure says why. */
    snprintf(path, sizeof path, "%s/file/sub/known_hosts", tmpdir);
    CU_ASSERT_EQUAL(verify(path, "h", 22, ED_A, COIL_SSH_HOST_KEY_ACCEPT_NEW, &err),
                    COIL_ESYSTEM);
    coil_failure_free(err);
    rm_tmpdir();
}

static int ssh_keygen_finds(const char *name, const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ssh-keygen -F '%s' -f '%s' >/dev/null 2>&1", name, path);
    return system(cmd) == 0;
}

static void test_accept_new_appends(void)
{
    make_tmpdir();
    char path[320];
    coil_failure *err;
    snprintf(path, sizeof path, "%s/sub/known_hosts", tmpdir);
    coil_test_log_capture_start();
    CU_ASSERT_EQUAL(
        verify(path, "127.0.0.1", 2222, ED_A, COIL_SSH_HOST_KEY_ACCEPT_NEW, &err), 0);
    CU_ASSERT_PTR_NULL(err);
    CU_ASSERT(
        coil_test_log_contains("permanently added [127.0.0.1]:2222 (ED25519 " ED_A_FP));
    coil_test_log_capture_stop();
    struct stat st;
    CU_ASSERT_FATAL(stat(path, &st) == 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    char dir[320];
    snprintf(dir, sizeof dir, "%s/sub", tmpdir);
    CU_ASSERT_FATAL(stat(dir, &st) == 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0700);
    CU_ASSERT_STRING_EQUAL(read_file(path), "[127.0.0.1]:2222 ssh-ed25519 " ED_A "\n");
    /* Now known, strictly; another key of the type is a change. */
    CU_ASSERT_EQUAL(verify(path, "127.0.0.1", 2222, ED_A, COIL_SSH_HOST_KEY_STRICT, &err),
                    0);
    CU_ASSERT_EQUAL(verify(path, "127.0.0.1", 2222, ED_B, COIL_SSH_HOST_KEY_STRICT, &err),
                    -COIL_SSH_EHOSTKEY_CHANGED);
    coil_failure_free(err);
    /* Another type for the same host, and port 22 (plain name, lower-cased). */
    CU_ASSERT_EQUAL(
        verify(path, "127.0.0.1", 2222, EC_A, COIL_SSH_HOST_KEY_ACCEPT_NEW, &err), 0);
    CU_ASSERT_EQUAL(
        verify(path, "Build.Example", 22, EC_B, COIL_SSH_HOST_KEY_ACCEPT_NEW, &err), 0);
    CU_ASSERT_STRING_EQUAL(read_file(path),
                           "[127.0.0.1]:2222 ssh-ed25519 " ED_A "\n"
                           "[127.0.0.1]:2222 ecdsa-sha2-nistp256 " EC_A "\n"
                           "build.example ecdsa-sha2-nistp256 " EC_B "\n");
    CU_ASSERT_EQUAL(
        verify(path, "build.example", 22, EC_B, COIL_SSH_HOST_KEY_STRICT, &err), 0);
    /* OpenSSH reads what coil wrote. */
    CU_ASSERT(ssh_keygen_finds("[127.0.0.1]:2222", path));
    CU_ASSERT(ssh_keygen_finds("build.example", path));

    /* A file whose last line has no newline gets one first. */
    snprintf(path, sizeof path, "%s/nonl", tmpdir);
    write_file(path, "x ssh-ed25519 " ED_B);
    CU_ASSERT_EQUAL(verify(path, "y", 22, ED_A, COIL_SSH_HOST_KEY_ACCEPT_NEW, &err), 0);
    CU_ASSERT_STRING_EQUAL(read_file(path),
                           "x ssh-ed25519 " ED_B "\ny ssh-ed25519 " ED_A "\n");
    CU_ASSERT_EQUAL(verify(path, "x", 22, ED_B, COIL_SSH_HOST_KEY_STRICT, &err), 0);

    /* NULL path: ~/.ssh/known_hosts, ~/.ssh made (0700). */
    char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    setenv("HOME", tmpdir, 1);
    CU_ASSERT_EQUAL(verify(NULL, "h", 2022, ED_A, COIL_SSH_HOST_KEY_STRICT, &err),
                    -COIL_SSH_EHOSTKEY_UNKNOWN);
    char expect[400];
    snprintf(expect, sizeof expect, "is not in %s/.ssh/known_hosts (ED25519", tmpdir);
    CU_ASSERT(err && strstr(coil_failure_message(err), expect));
    coil_failure_free(err);
    CU_ASSERT_EQUAL(verify(NULL, "h", 2022, ED_A, COIL_SSH_HOST_KEY_ACCEPT_NEW, &err), 0);
    snprintf(path, sizeof path, "%s/.ssh/known_hosts", tmpdir);
    CU_ASSERT_STRING_EQUAL(read_file(path), "[h]:2022 ssh-ed25519 " ED_A "\n");
    snprintf(dir, sizeof dir, "%s/.ssh", tmpdir);
    CU_ASSERT(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
    CU_ASSERT_EQUAL(verify(NULL, "h", 2022, ED_A, COIL_SSH_HOST_KEY_STRICT, &err), 0);
    if (old_home) {
        setenv("HOME", old_home, 1);
        free(old_home);
    } else {
        unsetenv("HOME");
    }
    coil_test_log_capture_stop();
    rm_tmpdir();
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_fingerprint_matches_ssh_keygen),
        COIL_TEST(test_key_type_bounded),
        COIL_TEST(test_plain_names_and_ports),
        COIL_TEST(test_patterns_and_negation),
        COIL_TEST(test_hashed_names),
        COIL_TEST(test_several_keys_per_host),
        COIL_TEST(test_revoked_and_cert_authority),
        COIL_TEST(test_comments_blank_crlf_whitespace),
        COIL_TEST(test_bad_lines_skipped),
        COIL_TEST(test_long_lines_skipped),
        COIL_TEST(test_verify_messages),
        COIL_TEST(test_unreadable_file),
        COIL_TEST(test_accept_new_appends),
        {NULL, NULL},
    };
    return coil_test_add_suite("known_hosts", cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
