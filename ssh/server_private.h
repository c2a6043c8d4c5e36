/* coil's SSH server, internals (private to ssh/). See coil/ssh_server.h.
 *
 * Files and owners of each part:
 *   server.c         the context (coil_ssh_server_new/free/factory/protocol,
 *                    stats, caps on unauthenticated connections) and the
 *                    transport layer of each connection (coil__sshd): version
 *                    exchange, packet framing with sshcrypto, the per-state
 *                    message allowlist, key exchange with sshkex (strict kex,
 *                    rekeys both ways), EXT_INFO, SERVICE_REQUEST, IGNORE /
 *                    DEBUG / UNIMPLEMENTED / DISCONNECT, timeouts, teardown.
 *   server_auth.c    user authentication (RFC 4252/4256), the coil__sshd_auth
 *                    part; password helpers (coil_ssh_password_*).
 *   server_channel.c the connection protocol (RFC 4254): channels as
 *                    coil__stream transports, global requests; the
 *                    coil__sshd_conn part; coil_ssh_server_channel_*.
 *   server_endpoint.c  the server side of the ssh: endpoint kind.
 *   sshwire.c, sshcrypto.c, sshkeys.c, sshkex.c   helpers (own headers).
 *
 * Everything runs on the reactor thread; only the password check runs on
 * the thread pool (server_auth.c), and its result comes back on the
 * reactor thread.
 *
 * Lifetime: a coil__sshd is the protocol on its lower transport. It holds
 * references (refs): one for the lower transport (dropped in the
 * protocol's destroy), one per open channel stream (dropped when the
 * channel's memory is freed), one per pending thread-pool job or timer
 * that needs it. At 0 it is freed (coil__sshd_unref). Once `dead` is set
 * (lower connection lost or closing), nothing more is sent.
 */
#ifndef COIL_SSH_SERVER_PRIVATE_H
#define COIL_SSH_SERVER_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include <coil/ssh_server.h>

#include "sshcrypto.h"
#include "sshkex.h"
#include "sshkeys.h"
#include "sshwire.h"
#include "stream.h"

/* ---- message numbers (RFC 4250) ---- */
enum {
    COIL__SSH_MSG_DISCONNECT = 1,
    COIL__SSH_MSG_IGNORE = 2,
    COIL__SSH_MSG_UNIMPLEMENTED = 3,
    COIL__SSH_MSG_DEBUG = 4,
    COIL__SSH_MSG_SERVICE_REQUEST = 5,
    COIL__SSH_MSG_SERVICE_ACCEPT = 6,
    COIL__SSH_MSG_EXT_INFO = 7,
    COIL__SSH_MSG_USERAUTH_REQUEST = 50,
    COIL__SSH_MSG_USERAUTH_FAILURE = 51,
    COIL__SSH_MSG_USERAUTH_SUCCESS = 52,
    COIL__SSH_MSG_USERAUTH_BANNER = 53,
    COIL__SSH_MSG_USERAUTH_PK_OK = 60, /* = INFO_REQUEST for kbd-interactive */
    COIL__SSH_MSG_USERAUTH_INFO_REQUEST = 60,
    COIL__SSH_MSG_USERAUTH_INFO_RESPONSE = 61,
    COIL__SSH_MSG_GLOBAL_REQUEST = 80,
    COIL__SSH_MSG_REQUEST_SUCCESS = 81,
    COIL__SSH_MSG_REQUEST_FAILURE = 82,
    COIL__SSH_MSG_CHANNEL_OPEN = 90,
    COIL__SSH_MSG_CHANNEL_OPEN_CONFIRMATION = 91,
    COIL__SSH_MSG_CHANNEL_OPEN_FAILURE = 92,
    COIL__SSH_MSG_CHANNEL_WINDOW_ADJUST = 93,
    COIL__SSH_MSG_CHANNEL_DATA = 94,
    COIL__SSH_MSG_CHANNEL_EXTENDED_DATA = 95,
    COIL__SSH_MSG_CHANNEL_EOF = 96,
    COIL__SSH_MSG_CHANNEL_CLOSE = 97,
    COIL__SSH_MSG_CHANNEL_REQUEST = 98,
    COIL__SSH_MSG_CHANNEL_SUCCESS = 99,
    COIL__SSH_MSG_CHANNEL_FAILURE = 100
};

/* DISCONNECT reason codes (RFC 4253 11.1) used by coil. */
enum {
    COIL__SSH_DISCONNECT_PROTOCOL_ERROR = 2,
    COIL__SSH_DISCONNECT_KEY_EXCHANGE_FAILED = 3,
    COIL__SSH_DISCONNECT_MAC_ERROR = 5,
    COIL__SSH_DISCONNECT_SERVICE_NOT_AVAILABLE = 7,
    COIL__SSH_DISCONNECT_BY_APPLICATION = 11,
    COIL__SSH_DISCONNECT_TOO_MANY_CONNECTIONS = 12,
    COIL__SSH_DISCONNECT_AUTH_CANCELLED_BY_USER = 13,
    COIL__SSH_DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE = 14
};

typedef struct coil__sshd coil__sshd;
typedef struct coil__sshd_channel coil__sshd_channel;

/* ---- the context ---- */

typedef struct coil__sshd_source {
    struct coil__sshd_source *next;
    char addr[64]; /* the peer's host (no port) */
    int unauth;    /* connections from it not yet logged in */
} coil__sshd_source;

struct coil_ssh_server {
    coil_reactor *r;
    int refs; /* the caller's + each connection's */
    int caller_ref;
    coil_factory factory; /* coil_ssh_server_factory */

    /* options, copied; limits with defaults applied */
    coil_ssh_server_options o;
    char *banner, *version_line; /* "SSH-2.0-coil_0.1" (no CR LF) */
    coil_ssh_subsystem *subsystems;
    char **subsystem_names;

    coil__sshkey *host_ed25519;
    coil__sshkey *host_ecdsa; /* or NULL */
    coil__authkeys *authkeys; /* or NULL */

    coil_ssh_server_stats stats;
    coil__sshd_source *sources;
};

void coil__sshd_server_ref(coil_ssh_server *srv);
void coil__sshd_server_unref(coil_ssh_server *srv);

/* ---- authentication state (server_auth.c owns these fields) ---- */

typedef struct coil__sshd_auth {
    int service_ok; /* "ssh-userauth" accepted (SERVICE_ACCEPT sent) */
    int done;       /* USERAUTH_SUCCESS sent */
    int failures;   /* failed attempts so far */
    int attempts;   /* USERAUTH_REQUESTs so far (the first "none" is not a failure) */
    int busy;       /* an attempt is being checked (thread job / delay) */
    int banner_sent;
    char user[256];    /* the user of the current / successful attempt */
    char method[32];   /* "publickey", ... after success */
    char key_type[48]; /* publickey: the algorithm of the key */
    char key_fp[64];   /* publickey: "SHA256:..." */
    coil_timer *grace; /* login_grace_time */
    coil_timer *delay; /* a failure answer held back until the minimum time */
    double started;    /* when the attempt being checked began */
    int kbd_pending;   /* an INFO_REQUEST was sent, INFO_RESPONSE expected */
    void *job;         /* the thread-pool job's shared state, or NULL */
} coil__sshd_auth;

/* ---- connection protocol state (server_channel.c owns these fields) ---- */

typedef struct coil__sshd_conn {
    coil__sshd_channel **chans;  /* indexed by our channel number; NULL = free */
    uint32_t n_slots;            /* entries in chans */
    uint32_t n_open;             /* channels not yet freed */
    uint32_t rr;                 /* round-robin start for writers */
    int no_more_sessions;        /* "no-more-sessions@openssh.com" received */
    int sessions;                /* session channels opened so far */
    int lost;                    /* coil__sshd_conn_lost ran */
    struct coil__sshd_fwd *fwds; /* tcpip-forward listeners (ssh -R) */
    int n_fwds;
} coil__sshd_conn;

/* ---- one connection ---- */

enum coil__sshd_state {
    COIL__SSHD_VERSION, /* waiting for the client's identification line */
    COIL__SSHD_KEX,     /* the first key exchange */
    COIL__SSHD_AUTH,    /* keys in use; authentication not yet done */
    COIL__SSHD_OPEN,    /* authenticated: the connection protocol runs */
    COIL__SSHD_DEAD     /* disconnected or lost: nothing more is sent */
};

struct coil__sshd {
    coil_protocol proto; /* first: our protocol on the transport below */
    coil_producer prod;  /* registered on the transport below (streaming) */
    coil_ssh_server *srv;
    coil_reactor *r;
    coil_transport *lower; /* NULL once its connection_lost ran */
    int refs;
    int state;                /* enum coil__sshd_state */
    int lower_full;           /* the transport below paused us (its queue is full) */
    int counted_unauth;       /* counted in srv->stats.unauthenticated / source */
    char peer[96];            /* "127.0.0.1:53122" for logs */
    char peer_host[64];       /* "127.0.0.1" for the per-source cap */
    char client_version[256]; /* without CR LF */
    coil_failure *end_reason; /* why it ended (for the channels' lost) */

    /* input: bytes from below not yet consumed; bounded (we pause reading
     * below when full) */
    unsigned char *in;
    size_t in_start, in_end, in_cap;
    uint32_t rx_packet_length; /* peeked length of the packet being read */
    int rx_peeked;

    /* output: one packet is built here, sealed in place, then written below */
    unsigned char *out;
    size_t out_cap;
    /* non-kex packets made while a key exchange runs (sent after NEWKEYS) */
    struct coil__sshd_held *held_head, *held_tail;
    size_t held_bytes;

    /* packet protection and counters */
    coil__sshc rx, tx;
    uint32_t rx_seq, tx_seq;
    uint64_t rx_bytes, tx_bytes;     /* since the last NEWKEYS each way */
    uint64_t rx_packets, tx_packets; /* idem */

    /* key exchange */
    int kex_running;     /* we sent KEXINIT and NEWKEYS is not done both ways */
    int kex_got_kexinit; /* the client's KEXINIT of this exchange arrived */
    int kex_sent_newkeys, kex_got_newkeys;
    int kex_count;                        /* exchanges completed */
    int strict;                           /* strict kex agreed (first exchange) */
    int ext_info_c;                       /* send EXT_INFO after the first NEWKEYS */
    int ignore_next_kex_packet;           /* a wrong first_kex_packet_follows guess */
    unsigned char *kexinit_c, *kexinit_s; /* payloads of this exchange */
    size_t kexinit_c_len, kexinit_s_len;
    coil__kexalgs algs;
    coil__kex_result kres;             /* this exchange's H and K until NEWKEYS */
    coil__sshc pending_tx, pending_rx; /* keys taken at NEWKEYS */
    unsigned char session_id[32];
    int have_session_id;
    char cipher_name[96]; /* "chacha20-poly1305@openssh.com" for info */

    coil_timer *idle_timer;
    double last_rx;

    /* server.c's own bookkeeping */
    int input_held;       /* coil__sshd_hold_input(s, 1): packets wait */
    int reading_paused;   /* we paused reading on the transport below */
    int in_loop;          /* the packet loop is on the stack */
    int kick_pending;     /* a call_soon to resume input is queued */
    int counted_conn;     /* counted in srv->stats.connections */
    int made;             /* connection_made ran */
    int kex_replied;      /* KEX_ECDH_REPLY sent in this exchange */
    unsigned char *spill; /* bytes that arrived while the loop ran */
    size_t spill_len, spill_cap;

    coil__sshd_auth auth;
    coil__sshd_conn conn;
};

/* ---- server.c: the transport layer, for the other parts ---- */

void coil__sshd_ref(coil__sshd *s);
void coil__sshd_unref(coil__sshd *s);

/* Room to build one packet: returns a pointer where the payload goes
 * (message number first) with room for *room bytes (at least min_room,
 * bounded by COIL__SSH_MAX_PACKET), or NULL when nothing may be sent now
 * (dead). Finish with coil__sshd_packet_end; nothing else may be sent in
 * between. Used on the data path: no allocation. During a key exchange it
 * still works for non-kex packets (they are held, copied, until NEWKEYS);
 * channel data should wait instead (coil__sshd_can_send_data). */
unsigned char *coil__sshd_packet_begin(coil__sshd *s, size_t min_room, size_t *room);
/* Seal the payload of `len` bytes built at the pointer packet_begin gave
 * and write it below (or hold it during a key exchange). 0, or -1 when the
 * connection is dead. */
int coil__sshd_packet_end(coil__sshd *s, size_t len);
/* Send a whole payload (copied): packet_begin + memcpy + packet_end. */
int coil__sshd_send(coil__sshd *s, const void *payload, size_t len);
/* 1 when channel data may be sent now: open, no key exchange running, the
 * transport below not past its high-water mark. When it turns 1 again the
 * transport calls coil__sshd_conn_writable. */
int coil__sshd_can_send_data(const coil__sshd *s);
/* Send DISCONNECT with reason code and message (printf), log it with the
 * peer, and close the connection below after it is flushed. Idempotent. */
void coil__sshd_disconnect(coil__sshd *s, int code, const char *fmt, ...)
    COIL_PRINTF(3, 4);
/* Stop (on=1) or restart (on=0) processing received packets, for a
 * password check running elsewhere: while held, complete packets stay in
 * the input buffer (reading below is paused once it fills). Releasing
 * resumes processing on the next reactor pass (never from inside this
 * call), so it may be called from a timer or a thread-pool callback. */
void coil__sshd_hold_input(coil__sshd *s, int on);
/* Authentication succeeded (called by server_auth.c after it sent
 * USERAUTH_SUCCESS): the connection leaves the unauthenticated counts and
 * may use the connection protocol. */
void coil__sshd_authenticated(coil__sshd *s);

/* ---- server_auth.c ---- */

/* The connection is up (version line received): start the grace timer. */
void coil__sshd_auth_start(coil__sshd *s);
/* A userauth message (50..79) from the client, payload[0] = msg number,
 * after SERVICE_ACCEPT. 0, or -1 after coil__sshd_disconnect. */
int coil__sshd_auth_packet(coil__sshd *s, const unsigned char *payload, size_t len);
/* The connection ends: cancel timers; a running password check finds the
 * connection gone when it returns. */
void coil__sshd_auth_stop(coil__sshd *s);

/* ---- server_channel.c ---- */

/* A connection-protocol message (80..127) after authentication.
 * 0, or -1 after coil__sshd_disconnect. */
int coil__sshd_conn_packet(coil__sshd *s, const unsigned char *payload, size_t len);
/* Channel data may flow again (key exchange over, the transport below
 * drained): writers send what their windows allow. */
void coil__sshd_conn_writable(coil__sshd *s);
/* The connection ended (why borrowed): every channel hears connection_lost.
 * server.c calls it once, at the end, with the connection still referenced;
 * channels not yet freed keep their references until they are. */
void coil__sshd_conn_lost(coil__sshd *s, const coil_failure *why);

/* ---- server.c: for fuzz targets and unit tests ---- */

/* The connection behind a protocol from coil_ssh_server_protocol (the
 * protocol is its first member). */
static inline coil__sshd *coil__sshd_of(coil_protocol *p)
{
    return (coil__sshd *)p;
}
/* Skip the version and key exchange of `s` (its connection_made has run):
 * as if client "SSH-2.0-coil-test" and we had agreed on no cipher and no
 * MAC, no strict kex; the session id is 32 bytes of 0x5a. user == NULL: the
 * connection waits for authentication ("ssh-userauth" accepted); otherwise
 * it is logged in as `user` (method "none"). Plain packets are accepted
 * from then on (see coil__sshd_test_frame). */
void coil__sshd_test_skip_kex(coil__sshd *s, const char *user);
/* Frame `payload` as a plain packet (uint32 length, padding length,
 * payload, 4..11 bytes of zero padding, the whole a multiple of 8) into
 * out. Returns the length, 0 when cap is too small. */
size_t coil__sshd_test_frame(const void *payload, size_t len, unsigned char *out,
                             size_t cap);

/* ---- server_endpoint.c ----
 * The server side of the ssh: endpoint kind; ssh/endpoint.c's parse and
 * listen call these for server descriptions. */

typedef struct coil__sshd_endpoint coil__sshd_endpoint;
struct coil_endpoint_parser;
struct coil_endpoint_desc;
struct coil_listener;
/* "ssh:PORT:hostKey=FILE[:authorizedKeys=FILE][:anonymous=yes]..." */
extern const char coil__sshd_endpoint_usage[];
/* Parse a server description (kind already matched) into *out (set as soon
 * as it exists; free it whatever this returns). 0, COIL_ENOMEM or the code
 * of a coil_endpoint_bad() message. */
int coil__sshd_endpoint_parse(const struct coil_endpoint_parser *p,
                              const struct coil_endpoint_desc *d,
                              coil__sshd_endpoint **out);
/* Listen: a server context serving `f` for shell and exec channels, on a
 * TCP listener, both owned by the listener returned. */
int coil__sshd_endpoint_listen(coil_reactor *r, const coil__sshd_endpoint *e,
                               coil_factory *f, struct coil_listener **out,
                               coil_failure **err);
void coil__sshd_endpoint_free(coil__sshd_endpoint *e);

#endif
