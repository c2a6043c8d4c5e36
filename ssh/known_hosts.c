/* coil's own OpenSSH known_hosts reader (see known_hosts.h for what it
 * supports) and the SHA256 fingerprint of ssh.h. libssh2 has a known_hosts
 * reader too, but it ignores @revoked lines and reports less than a person
 * needs (which line, which other keys), so coil reads the file itself.
 *
 * Where coil differs from OpenSSH (hostfile.c), on purpose:
 *  - a key on a @revoked line is refused for every host, whatever host
 *    patterns that line names (OpenSSH applies the line's patterns, which
 *    are "*" in practice): a revoked key is compromised everywhere;
 *  - @cert-authority lines are ignored: coil does not verify host
 *    certificates (libssh2 1.10 does not negotiate them), so a host known
 *    only through a CA is "unknown";
 *  - only the name the user gave is looked up (no CheckHostIP).
 * As in OpenSSH: a host whose lines list only other key types is unknown
 * for this type ("No ED25519 host key is known for ..."), accept-new adds
 * the key; a listed key of the same type that differs is CHANGED unless
 * another line lists this very key. */
#include "known_hosts.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include <coil/error.h>
#include <coil/log.h>

#define LOG_MODULE "ssh"

#define MAX_HOST   255                         /* a DNS name, an address */
#define MAX_NAME   (MAX_HOST + 9)              /* "[" host "]:65535" */
#define MAX_TYPE   64                          /* longest key type name we take */
#define MAX_BLOB   (COIL__KH_MAX_LINE / 4 * 3) /* what one line can encode */
#define SHA1_LEN   20
#define FP_SIZE    52
#define READ_CHUNK 16384

/* ---- key blobs -------------------------------------------------------------- */

int coil__ssh_key_type(const unsigned char *blob, size_t len, char *out, size_t size)
{
    if (!blob || len < 4 || !out || size == 0)
        return COIL_EINVAL;
    size_t n = ((size_t)blob[0] << 24) | ((size_t)blob[1] << 16) |
               ((size_t)blob[2] << 8) | (size_t)blob[3];
    if (n == 0 || n > len - 4 || n >= size || n > MAX_TYPE)
        return COIL_EINVAL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = blob[4 + i];
        if (c <= ' ' || c >= 0x7f)
            return COIL_EINVAL;
    }
    memcpy(out, blob + 4, n);
    out[n] = '\0';
    return 0;
}

const char *coil__ssh_key_type_short(const char *type)
{
    if (strcmp(type, "ssh-ed25519") == 0)
        return "ED25519";
    if (strncmp(type, "ecdsa-sha2-", 11) == 0)
        return "ECDSA";
    if (strcmp(type, "ssh-rsa") == 0)
        return "RSA";
    if (strcmp(type, "ssh-dss") == 0)
        return "DSA";
    if (strcmp(type, "ssh-ed448") == 0)
        return "ED448";
    return type;
}

int coil_ssh_fingerprint(const void *blob, size_t len, char *out, size_t size)
{
    unsigned char md[32];
    if (!out || size < FP_SIZE || (!blob && len))
        return COIL_EINVAL;
    if (!EVP_Digest(blob, len, md, NULL, EVP_sha256(), NULL))
        return COIL_ENOMEM;
    memcpy(out, "SHA256:", 7);
    sodium_bin2base64(out + 7, size - 7, md, sizeof md,
                      sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    return 0;
}

/* ---- host names and patterns ------------------------------------------------- */

/* OpenSSH's match_pattern: '*' any run, '?' one character; the pattern is
 * compared lower-cased (the name already is). Greedy with one backtrack
 * point: O(len(name) * len(pattern)) at worst, no recursion. */
static int pattern_match(const char *s, size_t slen, const char *p, size_t plen)
{
    size_t si = 0, pi = 0, star_p = (size_t)-1, star_s = 0;
    while (si < slen) {
        if (pi < plen && p[pi] == '*') {
            star_p = pi++;
            star_s = si;
        } else if (pi < plen && (p[pi] == '?' ||
                                 tolower((unsigned char)p[pi]) == (unsigned char)s[si])) {
            pi++;
            si++;
        } else if (star_p != (size_t)-1) {
            pi = star_p + 1;
            si = ++star_s;
        } else {
            return 0;
        }
    }
    while (pi < plen && p[pi] == '*')
        pi++;
    return pi == plen;
}

/* OpenSSH's match_pattern_list for a host field: 1 when a positive pattern
 * matches and no negated one does, 0 otherwise (a negated match wins). */
static int host_list_match(const char *name, const char *list, size_t len)
{
    size_t slen = strlen(name);
    int positive = 0;
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && list[j] != ',')
            j++;
        const char *p = list + i;
        size_t plen = j - i;
        int negated = 0;
        if (plen && p[0] == '!') {
            negated = 1;
            p++;
            plen--;
        }
        if (plen && pattern_match(name, slen, p, plen)) {
            if (negated)
                return 0;
            positive = 1;
        }
        i = j + 1;
    }
    return positive;
}

/* Padded base64, as OpenSSH's decoder wants it. */
static int b64_decode(const char *in, size_t len, unsigned char *out, size_t cap,
                      size_t *out_len)
{
    return sodium_base642bin(out, cap, in, len, NULL, out_len, NULL,
                             sodium_base64_VARIANT_ORIGINAL);
}

/* A hashed host field "|1|base64(salt)|base64(HMAC-SHA1(salt, name))", as
 * ssh-keygen -H writes it: 1 when it is the hash of `name`. */
static int hashed_match(const char *name, const char *field, size_t len)
{
    if (len < 3 || memcmp(field, "|1|", 3) != 0)
        return 0;
    const char *salt64 = field + 3;
    const char *bar = memchr(salt64, '|', len - 3);
    if (!bar)
        return 0;
    unsigned char salt[64], hash[64], mac[EVP_MAX_MD_SIZE];
    size_t salt_len, hash_len;
    unsigned int mac_len = 0;
    if (b64_decode(salt64, (size_t)(bar - salt64), salt, sizeof salt, &salt_len) != 0 ||
        b64_decode(bar + 1, len - (size_t)(bar + 1 - field), hash, sizeof hash,
                   &hash_len) != 0)
        return 0;
    /* OpenSSH takes only SHA-1-sized salts and hashes. */
    if (salt_len != SHA1_LEN || hash_len != SHA1_LEN)
        return 0;
    if (!HMAC(EVP_sha1(), salt, (int)salt_len, (const unsigned char *)name, strlen(name),
              mac, &mac_len) ||
        mac_len != SHA1_LEN)
        return 0;
    return CRYPTO_memcmp(mac, hash, SHA1_LEN) == 0;
}

/* A host name we can look up and write back: printable, no space, no
 * character that means something in a host field. */
static int host_ok(const char *host)
{
    size_t n = host ? strlen(host) : 0;
    if (n == 0 || n > MAX_HOST)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= ' ' || c >= 0x7f || strchr(",#|*?![]@\"'\\", c))
            return 0;
    }
    return 1;
}

/* The name known_hosts files use: "host" for port 22, "[host]:port" else;
 * lower-cased as ssh does. */
static void lookup_name(const char *host, int port, char *out, size_t size)
{
    char lower[MAX_HOST + 1];
    size_t n = strlen(host);
    for (size_t i = 0; i < n && i < MAX_HOST; i++)
        lower[i] = (char)tolower((unsigned char)host[i]);
    lower[n < MAX_HOST ? n : MAX_HOST] = '\0';
    if (port == 0 || port == 22)
        snprintf(out, size, "%s", lower);
    else
        snprintf(out, size, "[%s]:%d", lower, port);
}

/* "host:port" for messages, "[::1]:2222" for an IPv6 address. */
static void display_name(const char *host, int port, char *out, size_t size)
{
    if (strchr(host, ':'))
        snprintf(out, size, "[%s]:%d", host, port ? port : 22);
    else
        snprintf(out, size, "%s:%d", host, port ? port : 22);
}

/* ---- lines -------------------------------------------------------------------- */

typedef struct scan {
    /* What we look for. */
    const char *name; /* lookup name */
    const unsigned char *blob;
    size_t blob_len;
    char type[MAX_TYPE + 1];
    /* What we found. */
    unsigned long match_line, changed_line, revoked_line, other_line;
    unsigned long n_keys;
    char changed_fp[FP_SIZE]; /* the other key on changed_line */
    /* The line being assembled. */
    unsigned long lineno;
    size_t len;
    int overflow;
    char line[COIL__KH_MAX_LINE + 1];
    unsigned char key[MAX_BLOB];
} scan;

static size_t skip_space(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

static size_t skip_word(const char *s, size_t i, size_t n)
{
    while (i < n && s[i] != ' ' && s[i] != '\t')
        i++;
    return i;
}

static void scan_line(scan *sc, const char *s, size_t n)
{
    if (memchr(s, '\0', n))
        return; /* not text */
    while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    size_t i = skip_space(s, 0, n);
    if (i == n || s[i] == '#')
        return;

    int revoked = 0;
    if (s[i] == '@') {
        size_t e = skip_word(s, i, n);
        if (e - i == 8 && memcmp(s + i, "@revoked", 8) == 0)
            revoked = 1;
        else
            return; /* @cert-authority (not supported) or an unknown marker */
        i = skip_space(s, e, n);
    }
    size_t hosts = i, hosts_end = skip_word(s, i, n);
    size_t type = skip_space(s, hosts_end, n), type_end = skip_word(s, type, n);
    size_t b64 = skip_space(s, type_end, n), b64_end = skip_word(s, b64, n);
    if (hosts == hosts_end || type == type_end || b64 == b64_end)
        return;

    size_t key_len;
    char key_type[MAX_TYPE + 1];
    if (b64_decode(s + b64, b64_end - b64, sc->key, sizeof sc->key, &key_len) != 0 ||
        coil__ssh_key_type(sc->key, key_len, key_type, sizeof key_type) != 0 ||
        strlen(key_type) != type_end - type ||
        memcmp(key_type, s + type, type_end - type) != 0)
        return; /* not a key, or the type field does not say what the key is */

    int same_type = strcmp(key_type, sc->type) == 0;
    int same_key =
        same_type && key_len == sc->blob_len && memcmp(sc->key, sc->blob, key_len) == 0;
    if (revoked) {
        if (same_key && !sc->revoked_line)
            sc->revoked_line = sc->lineno;
        return;
    }
    int host_match = s[hosts] == '|'
                         ? hashed_match(sc->name, s + hosts, hosts_end - hosts)
                         : host_list_match(sc->name, s + hosts, hosts_end - hosts);
    if (!host_match)
        return;
    sc->n_keys++;
    if (same_key) {
        if (!sc->match_line)
            sc->match_line = sc->lineno;
    } else if (same_type) {
        if (!sc->changed_line) {
            sc->changed_line = sc->lineno;
            if (coil_ssh_fingerprint(sc->key, key_len, sc->changed_fp,
                                     sizeof sc->changed_fp) != 0)
                sc->changed_fp[0] = '\0';
        }
    } else if (!sc->other_line) {
        sc->other_line = sc->lineno;
    }
}

/* Feed bytes; lines end at '\n' (a final line may lack it). */
static void scan_feed(scan *sc, const char *data, size_t len)
{
    while (len) {
        const char *nl = memchr(data, '\n', len);
        size_t seg = nl ? (size_t)(nl - data) : len;
        if (!sc->overflow && seg <= COIL__KH_MAX_LINE - sc->len) {
            memcpy(sc->line + sc->len, data, seg);
            sc->len += seg;
        } else if (!sc->overflow) {
            sc->overflow = 1;
        }
        if (!nl)
            return;
        sc->lineno++;
        if (sc->overflow)
            coil_log(COIL_LOG_DEBUG, LOG_MODULE,
                     "known_hosts line %lu longer than %d bytes: skipped", sc->lineno,
                     COIL__KH_MAX_LINE);
        else
            scan_line(sc, sc->line, sc->len);
        sc->len = 0;
        sc->overflow = 0;
        data = nl + 1;
        len -= seg + 1;
    }
}

static void scan_end(scan *sc)
{
    if (sc->len || sc->overflow)
        scan_feed(sc, "\n", 1);
}

static int scan_init(scan *sc, const char *host, int port, const unsigned char *blob,
                     size_t blob_len, char *name, size_t name_size)
{
    memset(sc, 0, offsetof(scan, line));
    if (!host_ok(host) || port < 0 || port > 65535 ||
        coil__ssh_key_type(blob, blob_len, sc->type, sizeof sc->type) != 0)
        return COIL_EINVAL;
    lookup_name(host, port, name, name_size);
    sc->name = name;
    sc->blob = blob;
    sc->blob_len = blob_len;
    return 0;
}

static void scan_result(const scan *sc, coil__kh_result *res)
{
    res->n_keys = sc->n_keys;
    if (sc->revoked_line) {
        res->status = COIL__KH_REVOKED;
        res->line = sc->revoked_line;
    } else if (sc->match_line) {
        res->status = COIL__KH_MATCH;
        res->line = sc->match_line;
    } else if (sc->changed_line) {
        res->status = COIL__KH_CHANGED;
        res->line = sc->changed_line;
    } else {
        res->status = COIL__KH_UNKNOWN;
        res->line = 0;
    }
}

int coil__known_hosts_check_text(const char *text, size_t len, const char *host, int port,
                                 const unsigned char *blob, size_t blob_len,
                                 coil__kh_result *res)
{
    char name[MAX_NAME + 1];
    scan *sc = malloc(sizeof *sc);
    if (!sc)
        return COIL_ENOMEM;
    int rc = scan_init(sc, host, port, blob, blob_len, name, sizeof name);
    if (rc == 0) {
        if (text)
            scan_feed(sc, text, len);
        scan_end(sc);
        scan_result(sc, res);
    }
    free(sc);
    return rc;
}

/* ---- files ------------------------------------------------------------------- */

/* ~/.ssh/known_hosts into buf; 0 or COIL_EINVAL (no home directory). */
static int default_path(char *buf, size_t size)
{
    const char *home = getenv("HOME");
    if (!home || !*home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : NULL;
    }
    if (!home || !*home)
        return COIL_EINVAL;
    int n = snprintf(buf, size, "%s/.ssh/known_hosts", home);
    return n > 0 && (size_t)n < size ? 0 : COIL_EINVAL;
}

/* The key line OpenSSH writes: "NAME TYPE BASE64\n". */
static char *key_line(const char *name, const char *type, const unsigned char *blob,
                      size_t len)
{
    size_t b64 = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    size_t size = strlen(name) + strlen(type) + b64 + 4;
    char *line = malloc(size);
    if (!line)
        return NULL;
    int n = snprintf(line, size, "%s %s ", name, type);
    sodium_bin2base64(line + n, size - (size_t)n, blob, len,
                      sodium_base64_VARIANT_ORIGINAL);
    strcat(line, "\n");
    return line;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The directory of `path`, created (0700) when missing (one level: ~/.ssh). */
static int make_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return 0;
    size_t n = (size_t)(slash - path);
    char dir[PATH_MAX];
    if (n >= sizeof dir)
        return ENAMETOOLONG;
    memcpy(dir, path, n);
    dir[n] = '\0';
    if (mkdir(dir, 0700) == 0 || errno == EEXIST)
        return 0;
    return errno;
}

int coil__known_hosts_append(const char *path, const char *host, int port,
                             const unsigned char *blob, size_t blob_len,
                             coil_failure **err)
{
    char home_path[PATH_MAX], name[MAX_NAME + 1], type[MAX_TYPE + 1];
    if (!path) {
        if (default_path(home_path, sizeof home_path) != 0) {
            *err =
                coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                 "cannot add a host key: no home directory for "
                                 "~/.ssh/known_hosts (set HOME or give knownHosts=FILE)");
            return COIL_EINVAL;
        }
        path = home_path;
    }
    if (!host_ok(host) || port < 0 || port > 65535 ||
        coil__ssh_key_type(blob, blob_len, type, sizeof type) != 0) {
        *err =
            coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                             "cannot add a host key to %s: bad host name or key", path);
        return COIL_EINVAL;
    }
    lookup_name(host, port, name, sizeof name);
    char *line = key_line(name, type, blob, blob_len);
    if (!line) {
        *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory");
        return COIL_ENOMEM;
    }
    int e = make_parent(path);
    if (e) {
        free(line);
        *err = coil_failure_from_errno(
            e, "cannot create the directory of known_hosts file %s", path);
        return COIL_ESYSTEM;
    }
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        e = errno;
        free(line);
        *err =
            coil_failure_from_errno(e, "cannot add the host key of %s to %s", name, path);
        return COIL_ESYSTEM;
    }
    /* A last line without its newline would swallow ours. */
    struct stat st;
    char last = '\n';
    int rc = 0;
    if (fstat(fd, &st) == 0 && st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) != 1)
        last = '\n';
    if ((last != '\n' && write_all(fd, "\n", 1) != 0) ||
        write_all(fd, line, strlen(line)) != 0)
        rc = -1;
    e = errno;
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    free(line);
    if (rc != 0) {
        *err =
            coil_failure_from_errno(e, "cannot add the host key of %s to %s", name, path);
        return COIL_ESYSTEM;
    }
    return 0;
}

/* Read `path` through the scanner. 0 (a missing file reads as empty), or
 * an errno value. */
static int scan_file(scan *sc, const char *path)
{
    FILE *f = fopen(path, "rbe");
    if (!f)
        return errno == ENOENT ? 0 : errno;
    char *buf = malloc(READ_CHUNK);
    if (!buf) {
        fclose(f);
        return ENOMEM;
    }
    size_t n;
    while ((n = fread(buf, 1, READ_CHUNK, f)) > 0)
        scan_feed(sc, buf, n);
    int e = ferror(f) ? (errno ? errno : EIO) : 0;
    free(buf);
    fclose(f);
    scan_end(sc);
    return e;
}

int coil__known_hosts_verify(const char *path, const char *host, int port,
                             const unsigned char *blob, size_t blob_len, int policy,
                             coil_failure **err)
{
    char home_path[PATH_MAX], name[MAX_NAME + 1], shown[MAX_NAME + 8], fp[FP_SIZE];
    if (policy == COIL_SSH_HOST_KEY_INSECURE_ACCEPT_ANY)
        return 0;
    if (!host_ok(host) || port < 0 || port > 65535) {
        *err = coil_failure_new(
            COIL_DOMAIN_COIL, COIL_EINVAL,
            "cannot check the host key: bad host name '%.64s' or port %d",
            host ? host : "(none)", port);
        return COIL_EINVAL;
    }
    display_name(host, port, shown, sizeof shown);
    scan *sc = malloc(sizeof *sc);
    if (!sc) {
        *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory");
        return COIL_ENOMEM;
    }
    int rc = scan_init(sc, host, port, blob, blob_len, name, sizeof name);
    if (rc != 0) {
        free(sc);
        *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                "host key of %s is not an SSH public key", shown);
        return COIL_EINVAL;
    }
    if (!path) {
        if (default_path(home_path, sizeof home_path) != 0) {
            free(sc);
            *err =
                coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                 "cannot check the host key of %s: no home directory for "
                                 "~/.ssh/known_hosts (set HOME or give knownHosts=FILE)",
                                 shown);
            return COIL_EINVAL;
        }
        path = home_path;
    }
    int e = scan_file(sc, path);
    if (e) {
        free(sc);
        *err = coil_failure_from_errno(
            e,
            "cannot read known_hosts file %s to check the host key "
            "of %s (fix its permissions or give another file)",
            path, shown);
        return COIL_ESYSTEM;
    }
    coil__kh_result res;
    scan_result(sc, &res);
    const char *kind = coil__ssh_key_type_short(sc->type);
    unsigned long other_line = sc->other_line;
    char old_fp[FP_SIZE];
    memcpy(old_fp, sc->changed_fp, sizeof old_fp);
    free(sc);
    if (coil_ssh_fingerprint(blob, blob_len, fp, sizeof fp) != 0)
        snprintf(fp, sizeof fp, "(no fingerprint)");

    switch (res.status) {
    case COIL__KH_MATCH:
        return 0;
    case COIL__KH_REVOKED:
        *err =
            coil_failure_new(COIL_DOMAIN_SSH, COIL_SSH_EHOSTKEY_REVOKED,
                             "host key for %s (%s %s) is REVOKED: %s line %lu marks it "
                             "@revoked; refusing to connect. The server uses a key that "
                             "was withdrawn; ask its administrator",
                             shown, kind, fp, path, res.line);
        return -COIL_SSH_EHOSTKEY_REVOKED;
    case COIL__KH_CHANGED: {
        char hint[MAX_NAME + 8];
        if (port == 0 || port == 22)
            snprintf(hint, sizeof hint, "%s", name);
        else
            snprintf(hint, sizeof hint, "'%s'", name);
        *err = coil_failure_new(
            COIL_DOMAIN_SSH, COIL_SSH_EHOSTKEY_CHANGED,
            "@@@ WARNING: HOST KEY FOR %s HAS CHANGED! @@@ The server sent %s %s but %s "
            "line %lu "
            "lists a different %s key for it (%s). Someone may be intercepting this "
            "connection "
            "(man-in-the-middle attack), or the host key was just replaced. Refusing to "
            "connect. If the change is expected, check the new fingerprint with the "
            "server's "
            "administrator, then remove the old key with ssh-keygen -R %s -f %s",
            shown, kind, fp, path, res.line, kind, old_fp, hint, path);
        return -COIL_SSH_EHOSTKEY_CHANGED;
    }
    default:
        break;
    }
    if (policy == COIL_SSH_HOST_KEY_ACCEPT_NEW) {
        coil_failure *aerr = NULL;
        rc = coil__known_hosts_append(path, host, port, blob, blob_len, &aerr);
        if (rc != 0) {
            *err =
                coil_failure_wrap(aerr, COIL_DOMAIN_SSH, COIL_SSH_EHOSTKEY_UNKNOWN,
                                  "host key for %s (%s %s) is new and could not be added "
                                  "to %s",
                                  shown, kind, fp, path);
            return -COIL_SSH_EHOSTKEY_UNKNOWN;
        }
        coil_log(
            COIL_LOG_WARN, LOG_MODULE,
            "permanently added %s (%s %s) to the known hosts in %s (hostKeys=accept-new)",
            name, kind, fp, path);
        return 0;
    }
    char other[160] = "";
    if (other_line)
        snprintf(
            other, sizeof other,
            " (only other key types are listed for it, e.g. line %lu; OpenSSH too treats "
            "this key as unknown)",
            other_line);
    char keyscan[24] = "";
    if (port != 0 && port != 22)
        snprintf(keyscan, sizeof keyscan, "-p %d ", port);
    *err = coil_failure_new(
        COIL_DOMAIN_SSH, COIL_SSH_EHOSTKEY_UNKNOWN,
        "host key for %s is not in %s (%s %s)%s; add it with ssh-keyscan "
        "%s%s >> %s, or connect once with hostKeys=accept-new",
        shown, path, kind, fp, other, keyscan, host, path);
    return -COIL_SSH_EHOSTKEY_UNKNOWN;
}
