/* Keys for coil's SSH server (private to ssh/): host keys with their
 * private half (load, generate, sign), user public keys (parse, check,
 * verify signatures), authorized_keys files.
 *
 * Host keys: ssh-ed25519 (libsodium) and ecdsa-sha2-nistp256 (OpenSSL), in
 * OpenSSH's private key format ("-----BEGIN OPENSSH PRIVATE KEY-----",
 * openssh-key-v1, unencrypted). Generated keys are written in that format
 * with mode 0600, so ssh-keygen -l -f reads them.
 *
 * User keys: ssh-ed25519, ecdsa-sha2-nistp256, RSA (rsa-sha2-256,
 * rsa-sha2-512, and ssh-rsa (SHA-1) only when allowed) of 2048 bits or
 * more. */
#ifndef COIL_SSH_SSHKEYS_H
#define COIL_SSH_SSHKEYS_H

#include <stddef.h>

#include <coil/failure.h>

enum coil__sshkey_type { COIL__SSHKEY_ED25519 = 1, COIL__SSHKEY_ECDSA_P256 = 2 };

typedef struct coil__sshkey coil__sshkey;

/* Load the host key at `path` of `type`. With `generate` and no file there,
 * create a new key, write it (0600, O_EXCL) and log its fingerprint. 0, or a
 * negative code with *err naming the file and what to do ("host key file
 * 'x' does not exist; create it with ssh-keygen -t ed25519 -N '' -f x",
 * "... is encrypted; coil needs an unencrypted host key", "... holds an RSA
 * key; coil needs ed25519", "... is readable by others (mode 0644); chmod
 * 600 x"). */
int coil__sshkey_load_host(const char *path, int type, int generate, coil__sshkey **out,
                           coil_failure **err);
/* The same from text in memory (no mode check). */
int coil__sshkey_parse_private(const char *text, size_t len, int type, coil__sshkey **out,
                               coil_failure **err);
/* A fresh key in memory (tests, the fuzz target). */
int coil__sshkey_generate(int type, coil__sshkey **out);
void coil__sshkey_free(coil__sshkey *k); /* wipes the private half */

/* "ssh-ed25519" / "ecdsa-sha2-nistp256". */
const char *coil__sshkey_name(const coil__sshkey *k);
/* The public key blob (SSH wire format), owned by k. */
const unsigned char *coil__sshkey_blob(const coil__sshkey *k, size_t *len);
/* "SHA256:..." as ssh-keygen -l prints it. */
const char *coil__sshkey_fingerprint(const coil__sshkey *k);
/* Sign `data` (the exchange hash): writes the SSH signature blob
 * (string name, string signature) into sig (cap >= COIL__SSHKEY_SIG_MAX).
 * 0, or -1 on an OpenSSL failure. */
#define COIL__SSHKEY_SIG_MAX 160
int coil__sshkey_sign(const coil__sshkey *k, const unsigned char *data, size_t len,
                      unsigned char *sig, size_t cap, size_t *sig_len);

/* ---- user keys ---- */

/* Is `alg` (the public key algorithm name of a userauth request) one coil
 * accepts, and does `blob` hold a matching, well-formed key of it? 0, or -1
 * with a reason in why ("RSA keys need 2048 bits at least (this one has
 * 1024)", "ssh-rsa signs with SHA-1, refused; use rsa-sha2-256").
 * allow_sha1 lets alg "ssh-rsa" through. */
int coil__ssh_userkey_check(const char *alg, const unsigned char *blob, size_t blob_len,
                            int allow_sha1, char *why, size_t why_size);
/* Verify the signature blob `sig` (string alg, string bytes) made by the
 * key `blob` over `data`, for algorithm `alg`. 0 when valid, -1 otherwise
 * (why says what did not match). Constant-time where the library is. */
int coil__ssh_userkey_verify(const char *alg, const unsigned char *blob, size_t blob_len,
                             const unsigned char *sig, size_t sig_len,
                             const unsigned char *data, size_t data_len, int allow_sha1,
                             char *why, size_t why_size);

/* ---- authorized_keys ---- */

typedef struct coil__authkeys coil__authkeys;
/* Read an OpenSSH authorized_keys file: "TYPE BASE64 [comment]" lines,
 * comments, blank lines, CRLF. Lines with options (from=, command=, ...)
 * are skipped with a warning naming the line (coil does not apply them);
 * lines longer than 16 KiB are skipped. A missing or unreadable file is an
 * error naming it. */
int coil__authkeys_load(const char *path, coil__authkeys **out, coil_failure **err);
/* The same on text (any bytes; the fuzz target). Never fails except
 * COIL_ENOMEM; *out may hold no keys. */
int coil__authkeys_parse(const char *text, size_t len, coil__authkeys **out);
size_t coil__authkeys_count(const coil__authkeys *a);
/* 1 when the blob is one of the keys (compared in full, constant time per
 * candidate of the same length). */
int coil__authkeys_has(const coil__authkeys *a, const unsigned char *blob, size_t len);
void coil__authkeys_free(coil__authkeys *a);

#endif
