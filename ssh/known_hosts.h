/* coil's own OpenSSH known_hosts reader (private to ssh/): host key checks
 * for the SSH session, the fingerprint of ssh.h, appending for accept-new.
 *
 * Supported: plain host lists ("a,b,*.example,!bad.example", patterns with
 * * and ?, negation with !), the [host]:port form for ports other than 22
 * (a plain host name for 22), hashed names |1|base64(salt)|base64(HMAC-SHA1)
 * as ssh-keygen -H writes them, several keys per host, @revoked lines,
 * comments, blank lines, CRLF. @cert-authority lines are ignored (coil does
 * not verify host certificates). Lines longer than COIL__KH_MAX_LINE are
 * skipped. Needs OpenSSL and libsodium, not libssh2. */
#ifndef COIL_SSH_KNOWN_HOSTS_H
#define COIL_SSH_KNOWN_HOSTS_H

#include <stddef.h>

#include <coil/failure.h>
#include <coil/ssh.h>

/* Longest known_hosts line coil reads (longer ones are skipped). */
#define COIL__KH_MAX_LINE 8192

/* What a known_hosts text says about one host key. */
enum coil__kh_status {
    COIL__KH_MATCH = 0,   /* a line lists this key for the host */
    COIL__KH_UNKNOWN = 1, /* no key of this type for the host */
    COIL__KH_CHANGED = 2, /* another key of this type for the host, none equal */
    COIL__KH_REVOKED = 3  /* the key is on a @revoked line (any host) */
};

typedef struct coil__kh_result {
    int status;           /* enum coil__kh_status */
    unsigned long line;   /* MATCH: the matching line; CHANGED: the first line
                             with the other key; REVOKED: the @revoked line;
                             UNKNOWN: 0 */
    unsigned long n_keys; /* lines that matched the host (any key type) */
} coil__kh_result;

/* Decide whether to trust the server key `blob` (SSH wire-format public key;
 * its type is the blob's first string) for host:port (port 0: 22) under
 * `policy` (enum coil_ssh_host_key_policy), reading known_hosts `path`
 * (NULL: ~/.ssh/known_hosts; a missing file is empty). Returns 0 when
 * trusted (with ACCEPT_NEW an unknown key was appended; with
 * INSECURE_ACCEPT_ANY anything is trusted and the file is not read).
 * Otherwise a negative code and *err (the caller's):
 *  -COIL_SSH_EHOSTKEY_UNKNOWN / _CHANGED / _REVOKED with a COIL_DOMAIN_SSH
 *   failure of that code, the full message of ssh.h (host:port, key type,
 *   SHA256 fingerprint, the file (and line), what to do);
 *  COIL_ESYSTEM: the file exists but cannot be read, or cannot be appended
 *   to (COIL_DOMAIN_SYSTEM failure naming the file);
 *  COIL_EINVAL: the blob is not an SSH public key; COIL_ENOMEM. */
int coil__known_hosts_verify(const char *path, const char *host, int port,
                             const unsigned char *blob, size_t blob_len, int policy,
                             coil_failure **err) COIL_MUST_CHECK;

/* The pure part, on text in memory (any bytes; used by the fuzz target):
 * what `text` says about `blob` for host:port. Returns 0 with *res filled,
 * or COIL_EINVAL when the blob has no valid type string. */
int coil__known_hosts_check_text(const char *text, size_t len, const char *host, int port,
                                 const unsigned char *blob, size_t blob_len,
                                 coil__kh_result *res) COIL_MUST_CHECK;

/* Append "[host]:port TYPE BASE64\n" (or "host TYPE BASE64" for port 22) to
 * `path` (NULL: ~/.ssh/known_hosts), creating the file (mode 0600) and its
 * directory (mode 0700) when missing. 0, or a negative code with *err. */
int coil__known_hosts_append(const char *path, const char *host, int port,
                             const unsigned char *blob, size_t blob_len,
                             coil_failure **err) COIL_MUST_CHECK;

/* The key type of a blob (its first SSH string) into out (NUL terminated).
 * 0, or COIL_EINVAL when the blob is malformed or the type does not fit or
 * is not printable. */
int coil__ssh_key_type(const unsigned char *blob, size_t len, char *out,
                       size_t size) COIL_MUST_CHECK;

/* "ED25519", "ECDSA", "RSA", "DSA" (as ssh-keygen -l names them) for a key
 * type name; the type name itself for others. */
const char *coil__ssh_key_type_short(const char *type);

#endif
