/* coil — an SSH server of coil's own: ordinary ssh clients log in, and each
 * channel they open is a coil transport for one of your factories.
 *
 * libssh2 has no server side, so coil implements the server half of SSH
 * itself, as Twisted's Conch does: the transport layer (RFC 4253, with
 * OpenSSH's strict key exchange), user authentication (RFC 4252/4256) and
 * the connection protocol (RFC 4254), on coil's reactor. Crypto comes from
 * libsodium (X25519, Ed25519, ChaCha20-Poly1305, random, wiping,
 * constant-time compares) and OpenSSL (AES-CTR, AES-GCM, HMAC-SHA2, ECDSA
 * and RSA verification).
 *
 *   coil_ssh_server_options o = {
 *       .host_key_file = "host_ed25519", .generate_host_key = 1,
 *       .authorized_keys_file = "authorized_keys",
 *       .shell = &chat_factory,      // "ssh -p 2222 alice@host"
 *       .exec = &echo_factory,       // "ssh -p 2222 alice@host cat"
 *   };
 *   coil_ssh_server *srv;
 *   if (coil_ssh_server_new(r, &o, &srv, &err) != 0) ...   // err says why
 *   coil_tcp_listen_options lo = {.interface = "127.0.0.1", .port = 2222};
 *   coil_tcp_listen(r, &lo, coil_ssh_server_factory(srv), &listener, &err);
 *   ...
 *   coil_listener_close(listener);
 *   coil_ssh_server_free(srv);   // connections still open keep what they need
 *
 * or, with an endpoint description (tools take these):
 *   coil_listen(r, "ssh:2222:hostKey=host_ed25519:authorizedKeys=FILE",
 *               &factory, &listener, &err);
 * where `factory` serves both shell and exec channels.
 *
 * The server runs on any transport: coil_ssh_server_factory() on a TCP,
 * UNIX or TLS listener, coil_ssh_server_protocol() on a transport you have
 * (the in-memory pair in tests).
 *
 * Each channel a client opens after logging in is a transport of kind
 * "ssh-channel" whose protocol comes from the factory for its kind (shell,
 * exec, subsystem by name, direct-tcpip by policy). The protocol learns who
 * logged in, how, the command, the pty and the environment from
 * coil_ssh_server_channel_info(); coil_transport_info() describes the stack
 * ("ssh-channel/tcp") with the user and key fingerprint in the channel's
 * layer entry. A channel follows the transport contract: writes respect the
 * client's window and packet size (a slow client pauses your producer),
 * pause_reading stops the client's window from reopening, lose_connection
 * sends the exit status (coil_ssh_server_channel_set_exit), EOF and CLOSE
 * after every byte, lose_write_connection sends EOF, and the client's EOF
 * is read_connection_lost.
 *
 * Algorithms (strongest first): kex curve25519-sha256(@libssh.org) with
 * kex-strict-s-v00@openssh.com; host keys ssh-ed25519 (required) and
 * ecdsa-sha2-nistp256 (optional); ciphers chacha20-poly1305@openssh.com,
 * aes256-gcm@openssh.com, aes128-gcm@openssh.com, aes256-ctr, aes128-ctr;
 * MACs hmac-sha2-256-etm@openssh.com, hmac-sha2-512-etm@openssh.com,
 * hmac-sha2-256, hmac-sha2-512; no compression. User keys ssh-ed25519,
 * ecdsa-sha2-nistp256, rsa-sha2-256/512 (RSA of 2048 bits or more; SHA-1
 * ssh-rsa only with allow_ssh_rsa_sha1).
 *
 * Threads: everything runs on the reactor thread except the password and
 * keyboard-interactive checks, which run on the reactor's thread pool
 * (coil/threadpool.h) so a slow hash (Argon2id) never stalls the reactor.
 */
#ifndef COIL_SSH_SERVER_H
#define COIL_SSH_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "failure.h"
#include "protocol.h"
#include "reactor.h"
#include "transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coil_ssh_server coil_ssh_server;

/* A user's public key as the client offered it. */
typedef struct coil_ssh_user_key {
    const char *type;          /* "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa" */
    const unsigned char *blob; /* the SSH wire-format public key */
    size_t blob_len;
    const char *fingerprint; /* "SHA256:..." as ssh-keygen -l prints it */
} coil_ssh_user_key;

/* May `user` log in with `key`? Return 1 to allow, 0 to refuse. Called on
 * the reactor thread, for the query (the client asking whether a key would
 * do) and again, after the signature checked out, for the real attempt. */
typedef int (*coil_ssh_authorize_key_fn)(void *arg, const char *user,
                                         const coil_ssh_user_key *key);

/* Is `password` (len bytes, not NUL terminated; wiped after the call) right
 * for `user`? Return 1 to allow. Runs on a thread-pool thread: it must be
 * thread-safe, and may be slow (coil_ssh_password_verify). Unknown users
 * must cost as much as known ones: verify against a dummy hash. coil keeps
 * no user list: it calls this for every password and keyboard-interactive
 * attempt whatever the user name, and sends every failure answer no earlier
 * than auth_failure_delay after the request, so an unknown user looks and
 * times exactly like a wrong password. */
typedef int (*coil_ssh_password_fn)(void *arg, const char *user, const char *password,
                                    size_t len);

/* Which factory serves a direct-tcpip channel (ssh -L / -W through this
 * server) from `user` to host:port; NULL refuses it ("administratively
 * prohibited"). Reactor thread. */
typedef coil_factory *(*coil_ssh_direct_tcpip_fn)(void *arg, const char *user,
                                                  const char *host, int port);

/* May `user` have this server listen on bind_address:port and forward
 * each connection it accepts back through the SSH connection (a
 * "tcpip-forward" global request: ssh -R)? Return 1 to allow, 0 to refuse
 * (REQUEST_FAILURE). bind_address is what the client asked ("" for any,
 * "localhost", "127.0.0.1", ...); port 0 asks for a free port. As sshd does
 * with its default GatewayPorts no, the listener is on loopback whatever
 * the address: ::1 when "::1" is asked, 127.0.0.1 otherwise. At most 16
 * forwards per connection; "cancel-tcpip-forward" and the end of the
 * connection close them. Reactor thread. */
typedef int (*coil_ssh_tcpip_forward_fn)(void *arg, const char *user,
                                         const char *bind_address, int port);

/* A subsystem ("sftp", ...) and the factory serving it. */
typedef struct coil_ssh_subsystem {
    const char *name;
    coil_factory *factory;
} coil_ssh_subsystem;

typedef struct coil_ssh_server_options {
    /* ---- host keys ---- */
    /* The ed25519 host key: an unencrypted OpenSSH private key file
     * (ssh-keygen -t ed25519 -N ''). Required. */
    const char *host_key_file;
    /* 1: create host_key_file (mode 0600) with a new key when it does not
     * exist (logged with its fingerprint). */
    int generate_host_key;
    /* Optional second host key, ecdsa-sha2-nistp256 (OpenSSH format). */
    const char *ecdsa_host_key_file;

    /* ---- authentication (at least one way in is required) ---- */
    /* OpenSSH authorized_keys file: its keys may log in as any user name
     * (lines with options such as from= are skipped with a warning). Read
     * once, at coil_ssh_server_new. */
    const char *authorized_keys_file;
    /* And/or a callback deciding per user and key. */
    coil_ssh_authorize_key_fn authorize_key;
    void *authorize_key_arg;
    /* Password check, for "password" and for "keyboard-interactive" (one
     * "Password: " prompt). */
    coil_ssh_password_fn check_password;
    void *check_password_arg;
    /* 1: anyone logs in with "none" or an empty keyboard-interactive
     * exchange, under any user name (ssh-chat's way; coil's anonymous=yes). */
    int anonymous;
    /* 1: accept RSA signatures with SHA-1 ("ssh-rsa"; old clients such as
     * libssh2 1.10). Off by default. */
    int allow_ssh_rsa_sha1;
    /* Sent before authentication when not NULL (SSH_MSG_USERAUTH_BANNER). */
    const char *banner;

    /* ---- limits (0: the default) ---- */
    int max_auth_tries;                 /* failed attempts per connection: 6 */
    double login_grace_time;            /* seconds from connect to logged in: 120 */
    int max_unauthenticated;            /* connections not yet logged in, in total: 100 */
    int max_unauthenticated_per_source; /* ... from one address: 10 */
    double auth_failure_delay;          /* seconds every failure answer takes at
                                           least (unknown user = wrong password): 0.25 */
    int max_channels;                   /* open channels per connection: 64 */
    uint32_t window;                    /* our receive window per channel: 2 MiB */
    uint32_t max_packet;  /* largest channel data packet we accept: 32 KiB */
    uint64_t rekey_bytes; /* rekey after this many bytes each way: 1 GiB */
    double idle_timeout;  /* seconds without a byte from the client
                             before the connection is dropped: 0 = never */

    /* ---- what channels are for ---- */
    /* "session" channels: a "shell" request goes to `shell`, "exec" to
     * `exec`, a subsystem to its entry in `subsystems`. A request without a
     * factory is refused. */
    coil_factory *shell;
    coil_factory *exec;
    const coil_ssh_subsystem *subsystems; /* n_subsystems entries (copied) */
    size_t n_subsystems;
    /* direct-tcpip: refused unless this says which factory serves it. */
    coil_ssh_direct_tcpip_fn direct_tcpip;
    void *direct_tcpip_arg;
    /* tcpip-forward (remote forwarding, ssh -R): refused unless this
     * allows it; each connection accepted on the forwarded port is relayed
     * over a "forwarded-tcpip" channel to the client, both ways, with
     * backpressure (a slow side stops the other), EOF passed on. */
    coil_ssh_tcpip_forward_fn tcpip_forward;
    void *tcpip_forward_arg;

    /* ---- identity ---- */
    /* The software version in our identification line: "coil_0.1". */
    const char *version;
} coil_ssh_server_options;

/* Build a server context: load (or generate) the host keys, read the
 * authorized_keys file, copy the options. The context is shared by every
 * connection it serves. Returns 0, or a negative code with *err (may be
 * NULL) saying what is wrong ("host key file 'x' is not an OpenSSH
 * ed25519 private key: ...; create one with ssh-keygen -t ed25519 -N '' -f
 * x"). Reactor thread. */
int coil_ssh_server_new(coil_reactor *r, const coil_ssh_server_options *o,
                        coil_ssh_server **out, coil_failure **err) COIL_MUST_CHECK;

/* Drop the caller's reference. Connections already served keep the context
 * alive until they end; the factory of coil_ssh_server_factory() must not
 * be used by a listener any more. */
void coil_ssh_server_free(coil_ssh_server *srv);

/* The factory to give a listener: every connection it accepts runs the SSH
 * server. Owned by the context. */
coil_factory *coil_ssh_server_factory(coil_ssh_server *srv);

/* The SSH server protocol for one connection on a transport you hold (for
 * example one end of coil_memory_pair); the transport owns it as it owns
 * any protocol. NULL when out of memory or at the unauthenticated cap. */
coil_protocol *coil_ssh_server_protocol(coil_ssh_server *srv, const coil_address *peer);

/* The host key's fingerprint ("SHA256:...") and type ("ssh-ed25519"). */
const char *coil_ssh_server_host_key_fingerprint(const coil_ssh_server *srv);

/* Counters, for tests and monitoring. */
typedef struct coil_ssh_server_stats {
    size_t connections;     /* open now */
    size_t unauthenticated; /* open now and not logged in */
    size_t channels;        /* open now */
    uint64_t logins;        /* ever */
    uint64_t auth_failures; /* ever */
    uint64_t rekeys;        /* ever, both directions' key changes counted once */
    uint64_t refused;       /* connections refused at a cap */
} coil_ssh_server_stats;
void coil_ssh_server_get_stats(const coil_ssh_server *srv, coil_ssh_server_stats *out);

/* ---- on a channel ------------------------------------------------------- */

/* What a channel's protocol may know about its session. Strings are owned
 * by the channel (valid while the transport exists); never NULL ("" when
 * absent). */
typedef struct coil_ssh_channel_info {
    const char *user;            /* the name the client logged in with */
    const char *auth_method;     /* "publickey", "password",
                                    "keyboard-interactive", "none" */
    const char *key_type;        /* publickey: "ssh-ed25519", ... */
    const char *key_fingerprint; /* publickey: "SHA256:..." */
    const char *client_version;  /* "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3" */
    const char *cipher;          /* "chacha20-poly1305@openssh.com" */
    const char *channel_type;    /* "session", "direct-tcpip",
                                    "forwarded-tcpip" */
    const char *request;         /* "shell", "exec", "subsystem", "" */
    const char *command;         /* exec: the command; subsystem: its name;
                                    direct-tcpip: "host:port" */
    int has_pty;                 /* a pty-req was accepted */
    const char *term;            /* TERM of the pty-req */
    unsigned cols, rows;         /* its size (updated by window-change) */
    unsigned width_px, height_px;
    size_t n_env; /* env requests accepted: "NAME=value" */
    const char *const *env;
} coil_ssh_channel_info;

/* The info of an SSH server channel, or NULL when `t` is not one. */
const coil_ssh_channel_info *coil_ssh_server_channel_info(const coil_transport *t);

/* The exit status (0..255) sent as "exit-status" before EOF and CLOSE when
 * the channel is closed by lose_connection (0 when never set). COIL_EINVAL
 * when `t` is not an SSH server channel. */
int coil_ssh_server_channel_set_exit(coil_transport *t, int status);

/* Write to the channel's stderr stream (extended data 1), in order with the
 * rest, within the same window. COIL_ECLOSED once closing. */
int coil_ssh_server_channel_write_stderr(coil_transport *t, const void *data, size_t len);

/* Called on the reactor thread when the client changes the pty size
 * (window-change); the new size is already in the channel's info. */
int coil_ssh_server_channel_on_resize(coil_transport *t,
                                      void (*fn)(void *arg, coil_transport *t),
                                      void *arg);

/* ---- password hashes ---------------------------------------------------- */

/* Hash a password with Argon2id (libsodium's crypto_pwhash_str, interactive
 * limits) into out (at least COIL_SSH_PASSWORD_HASH_SIZE bytes, the
 * "$argon2id$..." string). 0 or COIL_ENOMEM. Slow on purpose. */
#define COIL_SSH_PASSWORD_HASH_SIZE 128
int coil_ssh_password_hash(const char *password, size_t len, char *out,
                           size_t size) COIL_MUST_CHECK;
/* 1 when `password` matches `hash`, 0 otherwise (also for a malformed or
 * NULL hash, in the same time as a wrong password). Thread-safe; slow. */
int coil_ssh_password_verify(const char *hash, const char *password, size_t len);

#ifdef __cplusplus
}
#endif
#endif
