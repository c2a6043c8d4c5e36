/* coil — SSH client: sessions over any transport, channels as transports.
 *
 * An SSH session is a protocol to the transport below (TCP usually; a UNIX
 * socket, TLS, an in-memory pair or one end of a socketpair work the same)
 * and each SSH channel is a coil_transport with the same operations as TCP:
 * any protocol and factory run unchanged through an SSH server (the chat
 * client, the echo client, TLS inside a direct-tcpip channel).
 *
 *   coil_ssh_options o = {0};
 *   o.host = "build.example"; o.port = 22; o.user = "deploy";
 *   o.identity_file = "/home/me/.ssh/id_ed25519";   // and/or agent, password
 *   coil_ssh_session *s;
 *   if (coil_ssh_session_connect(r, &o, &s, &err) != 0) ...   // over TCP
 *   coil_deferred *ready = coil_ssh_session_ready(s);   // authenticated
 *   coil_deferred *d = coil_ssh_open_channel(s,
 *       &(coil_ssh_channel_options){.type = COIL_SSH_DIRECT_TCPIP,
 *                                   .host = "127.0.0.1", .port = 7000},
 *       &my_protocol->base);                 // fires with the transport
 *   ...
 *   coil_ssh_session_close(s);   // closes every channel, then the session
 *   coil_ssh_session_free(s);    // the caller's reference
 *
 * The engine is libssh2, driven without ever blocking: it reads and writes
 * through LIBSSH2_CALLBACK_RECV / _SEND into coil's buffers and is called
 * again when the transport below has data or room. Operations that take
 * several round trips (handshake, authentication, opening a channel,
 * tcpip-forward) run one at a time per session, each ending a deferred.
 *
 * What libssh2 1.10.0 (Debian 12) can do, and so what this client can
 * negotiate: key exchange curve25519-sha256, ecdh-sha2-nistp*, dh group14/16;
 * host keys ssh-ed25519, ecdsa-sha2-nistp*, ssh-rsa; ciphers aes128/192/256-
 * ctr, aes*-cbc; MACs hmac-sha2-256/512, hmac-sha1. NOT in 1.10:
 * chacha20-poly1305, AES-GCM, -etm MACs, strict key exchange (the Terrapin
 * countermeasure) and rsa-sha2-256/512 signatures: an RSA *user* key is
 * refused by OpenSSH 8.8 and later (it allows only rsa-sha2 signatures), and
 * coil says so in the authentication failure. Use ed25519 or ecdsa keys.
 * coil_ssh_version() names the libssh2 in use.
 *
 * Host keys are verified by default against an OpenSSH known_hosts file
 * (~/.ssh/known_hosts unless known_hosts_file is given): hashed entries
 * (|1|salt|hash), the [host]:port form for ports other than 22, several keys
 * per host, @revoked lines, comments. Outcomes:
 *  - the key is listed for host:port: the handshake goes on;
 *  - no key for host:port: refused, "host key for 127.0.0.1:2222 is not in
 *    /home/me/.ssh/known_hosts (ECDSA SHA256:...); add it with
 *    ssh-keyscan -p 2222 127.0.0.1 >> /home/me/.ssh/known_hosts, or connect
 *    once with hostKeys=accept-new" (COIL_DOMAIN_SSH, COIL_SSH_EHOSTKEY_UNKNOWN);
 *  - a different key of that type is listed: refused loudly, "HOST KEY FOR
 *    ... HAS CHANGED ... someone may be intercepting this connection ..."
 *    (COIL_SSH_EHOSTKEY_CHANGED); a revoked key: COIL_SSH_EHOSTKEY_REVOKED.
 * Policies: COIL_SSH_HOST_KEY_STRICT (default), COIL_SSH_HOST_KEY_ACCEPT_NEW
 * (an unknown host's key is appended to known_hosts; a changed one is still
 * refused), COIL_SSH_HOST_KEY_INSECURE_ACCEPT_ANY (tests only; logs a
 * warning once per session).
 *
 * Authentication (coil_ssh_options, tried in this order, each only when
 * given and still allowed by the server): ssh-agent (SSH_AUTH_SOCK), the
 * identity file(s) or in-memory key, password, keyboard-interactive. A
 * failure names what was tried and the methods the server still allows
 * ("authentication as deploy at 127.0.0.1:2222 failed: tried publickey
 * (/home/me/.ssh/id_ed25519); the server allows: publickey,password").
 * Passwords, passphrases and key material that coil copies are wiped with
 * sodium_memzero after use.
 *
 * Channels. Each is a coil_transport of kind "ssh-channel":
 *  - writes queue in coil and go out as the channel's window allows; the
 *    high/low-water marks pause and resume a producer as on TCP;
 *  - pause_reading stops reading the channel, so its receive window is not
 *    re-granted and the far writer stops: memory stays bounded on both sides
 *    (at most one window, 2 MiB unless `window` is set, is buffered here);
 *  - lose_write_connection sends EOF; the far side's EOF reaches
 *    read_connection_lost; lose_connection sends what is queued, EOF and
 *    CLOSE, and connection_lost runs when the far side's CLOSE arrives
 *    (bounded by close_timeout);
 *  - exec channels: stdout is data_received, stderr goes to the stderr
 *    callback (read always, so EOF is never held up); the exit status or
 *    signal is in the connection_lost reason: COIL_ECLOSED with "... exited
 *    with status 0"; a non-zero status or a signal is COIL_ECLOSED too, with
 *    the message saying so, and coil_ssh_channel_exit_status() tells both;
 *  - losing the session (the transport below breaks, the server
 *    disconnects) ends every channel with COIL_ECONNLOST and the reason.
 * Reading among channels is fair: after each pass coil sweeps every channel
 * with data buffered in libssh2, round-robin, a bounded amount each.
 */
#ifndef COIL_SSH_H
#define COIL_SSH_H

#include <stddef.h>

#include "deferred.h"
#include "failure.h"
#include "protocol.h"
#include "reactor.h"
#include "tcp.h"
#include "transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coil_ssh_session coil_ssh_session;
typedef struct coil_ssh_listener coil_ssh_listener;

/* Codes of COIL_DOMAIN_SSH failures made by coil itself (libssh2's own
 * error codes, all negative, are passed on as they are). */
enum {
    COIL_SSH_EHOSTKEY_UNKNOWN = 1001,
    COIL_SSH_EHOSTKEY_CHANGED = 1002,
    COIL_SSH_EHOSTKEY_REVOKED = 1003,
    COIL_SSH_EAUTH = 1004,         /* no method succeeded */
    COIL_SSH_EDISCONNECTED = 1005, /* the server sent DISCONNECT */
    COIL_SSH_ECHANNEL = 1006       /* a channel open or request was refused */
};

enum coil_ssh_host_key_policy {
    COIL_SSH_HOST_KEY_STRICT = 0,
    COIL_SSH_HOST_KEY_ACCEPT_NEW = 1,
    COIL_SSH_HOST_KEY_INSECURE_ACCEPT_ANY = 2 /* tests only */
};

/* A keyboard-interactive prompt: fill `answer` (up to `size` bytes, NUL
 * terminated); return 0, or -1 to give up. `echo` is 0 for secrets. Runs on
 * the reactor thread, inside the authentication step: it must not block. */
typedef int (*coil_ssh_prompt_fn)(void *arg, const char *name, const char *instruction,
                                  const char *prompt, int echo, char *answer,
                                  size_t size);

/* Zero-initialise, then set what you need. Strings are copied by
 * coil_ssh_session_new / _connect; secrets in the copies are wiped after
 * use. */
typedef struct coil_ssh_options {
    const char *host; /* as the user named it: for known_hosts and messages
                         (and, with coil_ssh_session_connect, to connect) */
    int port;         /* 0: 22 */
    const char *user; /* NULL: $USER */

    /* Host keys. */
    const char *known_hosts_file; /* NULL: ~/.ssh/known_hosts */
    int host_key_policy;          /* enum coil_ssh_host_key_policy */

    /* Authentication, in the order coil tries them. */
    int agent;                 /* 1: try the keys of ssh-agent (SSH_AUTH_SOCK).
                                  libssh2 1.10 cannot talk to the agent
                                  without blocking: each exchange with it
                                  (local, answering at once) runs on the
                                  reactor thread and gives up after 5 s */
    const char *agent_socket;  /* NULL: $SSH_AUTH_SOCK */
    const char *identity_file; /* private key file (OpenSSH or PEM format);
                                  the public key is derived, or read from
                                  FILE.pub when present */
    const char *key_pem;       /* or a private key in memory (OpenSSH/PEM) */
    const char *passphrase;    /* for an encrypted key */
    const char *password;      /* "password" method */
    coil_ssh_prompt_fn prompt; /* "keyboard-interactive"; NULL: not tried
                                  (with a password and no prompt, the
                                  password answers one non-echo prompt) */
    void *prompt_arg;

    double connect_timeout;    /* coil_ssh_session_connect: TCP; 0: 30 s */
    double handshake_timeout;  /* handshake + authentication; 0: 30 s */
    double keepalive_interval; /* seconds between keepalives; 0: off. A
                                  server silent for 3 intervals loses the
                                  session (not counted while a channel open
                                  waits for the server: a direct-tcpip
                                  connect at the far end may take minutes) */
    double close_timeout;      /* a closing channel's CLOSE wait; 0: 30 s */
    int close_when_idle;       /* 1: close the session when its last channel
                                  ends (after at least one was opened) */
    size_t window;             /* each channel's receive window (direct-tcpip
                                  too); 0: 2 MiB */
    size_t high_water;         /* channels' write-queue marks; 0: defaults */
    size_t low_water;
} coil_ssh_options;

/* ---- sessions -------------------------------------------------------------- */

/* A session not yet on a transport. Give coil_ssh_session_protocol(s) to a
 * transport (coil_memory_pair, a connector's factory, ...): the handshake,
 * host key check and authentication start at connection_made. The session
 * is reference-counted: the caller holds one reference (drop it with
 * coil_ssh_session_free); the transport below holds another while it
 * lives. */
int coil_ssh_session_new(coil_reactor *r, const coil_ssh_options *o,
                         coil_ssh_session **out, coil_failure **err) COIL_MUST_CHECK;
/* The protocol to run on the transport below (once; owned by that
 * transport from then on). */
coil_protocol *coil_ssh_session_protocol(coil_ssh_session *s);
/* New + connect over TCP to o->host:o->port (resolved on the thread pool). */
int coil_ssh_session_connect(coil_reactor *r, const coil_ssh_options *o,
                             coil_ssh_session **out, coil_failure **err) COIL_MUST_CHECK;

/* Fires (with the session, borrowed) once the handshake is done and the
 * host key verified; fails with why (host key refused, transport lost,
 * timeout). Each call returns a new deferred (the caller's). */
coil_deferred *coil_ssh_session_handshake(coil_ssh_session *s);
/* Fires once authenticated (with the session, borrowed); fails with the
 * authentication failure or whatever came before it. */
coil_deferred *coil_ssh_session_ready(coil_ssh_session *s);
/* 1 while authenticated and not closing. */
int coil_ssh_session_is_ready(const coil_ssh_session *s);

/* The server's host key: its type ("ssh-ed25519", "ecdsa-sha2-nistp256")
 * and SHA256 fingerprint ("SHA256:..."), once the handshake is done; NULL
 * before. */
const char *coil_ssh_session_host_key_type(const coil_ssh_session *s);
const char *coil_ssh_session_host_key_fingerprint(const coil_ssh_session *s);
/* "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", the negotiated cipher and MAC
 * (server to client), once the handshake is done. */
const char *coil_ssh_session_server_banner(const coil_ssh_session *s);
const char *coil_ssh_session_cipher(const coil_ssh_session *s);
const char *coil_ssh_session_mac(const coil_ssh_session *s);
/* Channels open now. */
size_t coil_ssh_session_channel_count(const coil_ssh_session *s);

/* Close cleanly: every channel is closed (lose_connection), then the
 * session sends DISCONNECT and closes the transport below. The deferred
 * (the caller's) fires once the transport below is gone. */
coil_deferred *coil_ssh_session_close(coil_ssh_session *s);
/* Drop the caller's reference. A session still connected goes on until it
 * is closed or lost (close it first to end it). */
void coil_ssh_session_free(coil_ssh_session *s);

/* Called when the session ends (transport lost, closed, DISCONNECT
 * received), after every channel heard its connection_lost; `reason` is
 * borrowed. One callback per session; NULL removes it. */
void coil_ssh_session_on_lost(coil_ssh_session *s,
                              void (*fn)(void *arg, coil_ssh_session *s,
                                         const coil_failure *reason),
                              void *arg);

/* ---- channels ---------------------------------------------------------------- */

enum coil_ssh_channel_type {
    COIL_SSH_DIRECT_TCPIP = 0, /* host:port as seen from the server */
    COIL_SSH_EXEC,             /* command */
    COIL_SSH_SHELL,
    COIL_SSH_SUBSYSTEM /* subsystem ("sftp") */
};

typedef struct coil_ssh_channel_options {
    int type; /* enum coil_ssh_channel_type */
    /* direct-tcpip: where the server connects to. */
    const char *host;
    int port;
    /* exec: the command line (the server's shell runs it); subsystem: its
     * name. */
    const char *command;
    /* exec, shell, subsystem: ask for a pseudo-terminal first. */
    int pty;
    const char *term; /* NULL: "xterm" */
    int cols, rows;   /* 0: 80 x 24 */
    /* exec, shell, subsystem: where the remote stderr goes (borrowed data).
     * NULL: it is read and dropped (never left unread). */
    void (*on_stderr)(void *arg, const void *data, size_t len);
    void *stderr_arg;
} coil_ssh_channel_options;

/* Open a channel and run `p` on it (owned from now on: destroyed if the
 * channel never opens). The deferred (the caller's) fires with the channel's
 * transport (borrowed: it lives until p's connection_lost) after p's
 * connection_made, or fails with why (the server refused: "direct-tcpip to
 * 127.0.0.1:9 refused by 127.0.0.1:2222: Connection refused
 * (administratively prohibited / connect failed)"). Waits for the session
 * to be ready when it is not yet. Cancelling the deferred gives up the open.
 * Returns NULL only when memory runs out (p destroyed). */
coil_deferred *coil_ssh_open_channel(coil_ssh_session *s,
                                     const coil_ssh_channel_options *o, coil_protocol *p);

/* During (and before) connection_lost of an exec / shell channel: 1 with
 * *status set when the remote command exited, 2 with *signal ("TERM") when
 * it was killed by a signal, 0 when neither is known (yet). libssh2 1.10
 * cannot tell "no exit-status received" from status 0: a command whose end
 * the server did not report reads as status 0. */
int coil_ssh_channel_exit_status(const coil_transport *t, int *status,
                                 const char **signal);
/* The session a channel belongs to (NULL if `t` is not an SSH channel). */
coil_ssh_session *coil_ssh_channel_session(const coil_transport *t);

/* ---- remote forwarding (tcpip-forward) ---------------------------------------- */

/* Ask the server to listen on bind_host:port (NULL: "localhost"; port 0: a
 * port the server picks) and hand each connection it accepts to a protocol
 * built by `f` (build_protocol gets an address of kind COIL_ADDR_SSH naming
 * the originator), so a server protocol runs on the far side. The deferred
 * (the caller's) fires with the listener (borrowed) once the server agreed;
 * coil_ssh_listener_port() is then the port bound. */
coil_deferred *coil_ssh_listen(coil_ssh_session *s, const char *bind_host, int port,
                               coil_factory *f);
int coil_ssh_listener_port(const coil_ssh_listener *l);
/* Stop forwarding (cancel-tcpip-forward) and free the listener;
 * connections already accepted go on. */
void coil_ssh_listener_close(coil_ssh_listener *l);

/* ---- endpoints ------------------------------------------------------------------- */

/* The ssh: client endpoint kind (registered with coil's built-in kinds;
 * see coil/endpoint.h for the syntax): a direct-tcpip or exec channel per
 * connection, on a session shared by every ssh: connection of a reactor to
 * the same host, port and user with the same session options.
 *
 * A new session, not shared, from the session part of an ssh: description
 * ("ssh:HOST[:PORT]:user=USER[:identity=FILE]...", no to= or exec=),
 * connecting over TCP as coil_ssh_session_connect does; password=env:VAR is
 * read now and wiped after use. `label` (may be NULL) gets "USER@HOST:PORT"
 * for messages. A bad description fails with COIL_EINVAL and a message
 * naming the bad part (coil-tunnel uses this). */
int coil_ssh_session_connect_endpoint(coil_reactor *r, const char *text,
                                      coil_ssh_session **out, char *label,
                                      size_t label_size,
                                      coil_failure **err) COIL_MUST_CHECK;
/* How many sessions the ssh: endpoint kind holds for reactor `r` now (live
 * or connecting; for tests and status). */
size_t coil_ssh_endpoint_session_count(const coil_reactor *r);

/* ---- misc ------------------------------------------------------------------------ */

/* "libssh2 1.10.0". */
const char *coil_ssh_version(void);

/* "SHA256:" + unpadded base64 of the SHA-256 of an SSH public key blob, as
 * ssh-keygen -l prints it. `size` >= 52 holds any. Returns 0 or
 * COIL_EINVAL (buffer too small). */
int coil_ssh_fingerprint(const void *blob, size_t len, char *out, size_t size);

#ifdef __cplusplus
}
#endif
#endif
