/* The SSH client's internals (private to ssh/): the session, its queue of
 * multi-step operations, channels as coil__stream transports, remote
 * forwarding listeners.
 *
 * Threading of control: everything runs on the reactor thread. libssh2 is
 * only ever called from coil__ssh_drive() (and from the channel operations
 * it reaches through the stream machinery), never blocking: its recv
 * callback takes from s->in and returns -EAGAIN when that is empty, its
 * send callback copies the whole packet into the transport below. */
#ifndef COIL_SSH_PRIVATE_H
#define COIL_SSH_PRIVATE_H

#include <stddef.h>

#include <libssh2.h>

#include <coil/ssh.h>

#include "stream.h"

typedef struct coil__ssh_channel coil__ssh_channel;
typedef struct coil__ssh_op coil__ssh_op;
typedef struct coil__ssh_waiter coil__ssh_waiter;

enum coil__ssh_state {
    COIL__SSH_NEW,       /* no transport below yet */
    COIL__SSH_HANDSHAKE, /* key exchange, host key check */
    COIL__SSH_AUTH,      /* authenticating */
    COIL__SSH_READY,     /* authenticated */
    COIL__SSH_CLOSING,   /* coil_ssh_session_close: channels closing, DISCONNECT */
    COIL__SSH_DEAD       /* lost or closed: nothing more is done */
};

enum coil__ssh_op_kind {
    COIL__OP_HANDSHAKE,
    COIL__OP_AUTH,
    COIL__OP_OPEN,   /* a channel (open + pty + exec/shell/subsystem) */
    COIL__OP_LISTEN, /* tcpip-forward */
    COIL__OP_CANCEL, /* cancel-tcpip-forward */
    COIL__OP_DISCONNECT,
    COIL__OP_KEEPALIVE /* a probe the server must answer */
};

/* One multi-step operation; the head of the session's queue is the one
 * libssh2 works on. */
struct coil__ssh_op {
    coil__ssh_op *next;
    int kind;
    int stage;
    coil_deferred *d; /* ended by the op (our reference), or NULL */
    /* COIL__OP_OPEN */
    coil_protocol *proto;        /* owned until the channel opens */
    coil_ssh_channel_options co; /* strings point into `strings` */
    char *strings;               /* host, command, term */
    LIBSSH2_CHANNEL *lch;        /* opened, requests not yet done */
    int cancelled;               /* the deferred was cancelled */
    int started;                 /* libssh2's open is under way */
    /* COIL__OP_LISTEN / _CANCEL */
    coil_ssh_listener *l;
    LIBSSH2_LISTENER *lls; /* _CANCEL: the libssh2 listener to cancel */
};

/* A deferred waiting for the handshake, authentication or close. */
struct coil__ssh_waiter {
    coil__ssh_waiter *next;
    coil_deferred *d;
};

struct coil_ssh_session {
    coil_reactor *r;
    int refs; /* the caller's, the transport below's, each channel's and
                 each listener's */
    int caller_ref;

    coil_protocol down; /* our protocol on the transport below */
    coil_producer prod; /* registered on the transport below */
    coil_transport *lower;
    int lower_seen;   /* connection_made from below */
    int lower_gone;   /* connection_lost from below */
    int lower_full;   /* the transport below is past its high-water mark */
    int lower_paused; /* we paused reading below (s->in is full) */
    int lower_eof;
    coil__tracked tracked;     /* in the reactor's registry while connected:
                                  coil_reactor_shutdown closes the session */
    coil_connector *connector; /* coil_ssh_session_connect */
    coil_factory cfactory;     /* its factory */

    LIBSSH2_SESSION *ssh;
    LIBSSH2_AGENT *agent;
    int state; /* enum coil__ssh_state */

    /* input from below, not yet taken by libssh2 */
    unsigned char *in;
    size_t in_start, in_end, in_cap;

    /* options (copies; secrets wiped when freed) */
    char *host, *user, *known_hosts, *agent_socket, *identity_file;
    char *key_pem, *passphrase, *password;
    int port, policy, use_agent;
    coil_ssh_prompt_fn prompt;
    void *prompt_arg;
    double connect_timeout, handshake_timeout, keepalive_interval, close_timeout;
    int close_when_idle;
    size_t window, high_water, low_water;

    /* the queue */
    coil__ssh_op *op_head, *op_tail;

    /* channels open (as transports) and listeners */
    coil__ssh_channel *ch_head;
    size_t n_channels;
    size_t rr; /* round-robin start of the next sweep */
    int ever_opened;
    coil_ssh_listener *l_head;
    LIBSSH2_CHANNEL **zombies; /* closed channels libssh2 could not free yet */
    size_t n_zombies, cap_zombies;
    unsigned char *rbuf; /* the sweep's read buffer */

    /* waiters */
    coil__ssh_waiter *hs_waiters, *ready_waiters, *close_waiters;
    coil_failure *hs_failure;    /* the handshake failed: why */
    coil_failure *ready_failure; /* authentication (or before) failed: why */
    coil_failure *end_reason;    /* why the session ended */
    int hs_done, auth_done;

    /* what the handshake found */
    char hk_type[64];
    char hk_fp[64];
    char banner[256];
    char cipher[64], mac[64];
    char disc_msg[256]; /* the server's DISCONNECT message */

    /* authentication progress */
    int auth_stage;
    char *auth_methods; /* what the server allows (copy) */
    char tried[512];    /* "publickey (agent), password" */
    int rsa_refused;
    int last_rc; /* the last attempt's libssh2 code */
    struct libssh2_agent_publickey *agent_prev;
    int agent_connected;

    /* timers and scheduling */
    coil_timer *hs_timer;
    coil_timer *ka_timer;
    double last_rx; /* when bytes last came from the server */
    int ka_queued;  /* a keepalive probe is in the queue */
    int drive_scheduled;
    int driving, drive_again;
    int lost_delivered;
    int close_requested;
    int disconnect_sent;

    void (*on_lost)(void *arg, coil_ssh_session *s, const coil_failure *reason);
    void *on_lost_arg;
};

struct coil__ssh_channel {
    coil__stream st; /* first: the channel is a coil_transport */
    coil_ssh_session *s;
    LIBSSH2_CHANNEL *ch;
    coil__ssh_channel *prev, *next;
    int type;
    char desc[160]; /* "direct-tcpip 127.0.0.1:7000", "exec 'cat'" */
    void (*on_stderr)(void *arg, const void *data, size_t len);
    void *stderr_arg;
    int reading;    /* the stream wants data */
    int want_write; /* the stream has bytes queued */
    int eof_seen;   /* the far side's EOF was delivered */
    int remote_closed;
    int closing;    /* our close runs (lingering) */
    int close_sent; /* libssh2_channel_close finished */
    int freed_ssh;  /* the libssh2 channel is freed */
    int exit_kind;  /* 0 unknown, 1 status, 2 signal */
    int exit_status;
    char exit_signal[32];
    coil_timer *close_timer;
    coil_failure *close_reason; /* why the linger ended badly */
    int eof_pending;            /* EOF to send (the first try met EAGAIN) */
    int in_list;
    /* Told once the protocol heard connection_lost (the ssh: connector's
     * factory hears connection_lost from it); see
     * coil__ssh_channel_on_lost. */
    void (*on_lost)(void *arg, coil_transport *t, const coil_failure *reason);
    void *on_lost_arg;
};

struct coil_ssh_listener {
    coil_ssh_listener *next;
    coil_ssh_session *s;
    LIBSSH2_LISTENER *lls;
    coil_factory *f;
    char *bind_host;
    int port_req;
    int port;    /* bound */
    int pending; /* the LISTEN operation runs */
    int closed;  /* coil_ssh_listener_close called */
};

/* ---- channel.c ---- */
/* Call fn(arg, t, reason) after the protocol of channel `t` heard its
 * connection_lost (reason borrowed), once; NULL removes it. For whoever
 * made the channel on behalf of a factory (the ssh: endpoint's connector),
 * as a socket connector hears its connection end. Returns COIL_EINVAL when
 * `t` is not an SSH channel. */
int coil__ssh_channel_on_lost(coil_transport *t,
                              void (*fn)(void *arg, coil_transport *t,
                                         const coil_failure *reason),
                              void *arg);

/* ---- session.c ---- */
void coil__ssh_ref(coil_ssh_session *s);
void coil__ssh_unref(coil_ssh_session *s);
/* Run libssh2 on whatever can move now: the queued operation, channel
 * writes, the channel sweep, accepts, closes. Re-entrant calls are folded
 * into the outer one. */
void coil__ssh_drive(coil_ssh_session *s);
/* Drive on the next pass (after a stream callback that must not recurse). */
void coil__ssh_drive_soon(coil_ssh_session *s);
/* Append an operation; drive. */
void coil__ssh_enqueue(coil_ssh_session *s, coil__ssh_op *op);
/* libssh2's last error as text ("Channel open failure (connect failed)"). */
const char *coil__ssh_errmsg(coil_ssh_session *s, int *code);
/* A fatal libssh2 error (or DISCONNECT): the session is lost. */
void coil__ssh_fatal(coil_ssh_session *s, int rc, const char *what);
/* "127.0.0.1:2222" */
void coil__ssh_where(const coil_ssh_session *s, char *buf, size_t size);
int coil__ssh_session_usable(const coil_ssh_session *s);

/* ---- channel.c ---- */
/* Step an OPEN / LISTEN / CANCEL operation: 0 done (the op ended its
 * deferred), 1 waiting (EAGAIN), negative: the session is lost. */
int coil__ssh_open_step(coil_ssh_session *s, coil__ssh_op *op);
int coil__ssh_listen_step(coil_ssh_session *s, coil__ssh_op *op);
int coil__ssh_cancel_step(coil_ssh_session *s, coil__ssh_op *op);
/* Fail a queued OPEN / LISTEN with `f` (borrowed) and release what it holds. */
void coil__ssh_op_fail(coil_ssh_session *s, coil__ssh_op *op, const coil_failure *f);
void coil__ssh_op_free(coil__ssh_op *op);
/* Writes, reads (bounded per channel, round-robin), closes, accepts.
 * Returns 1 when a channel still has data to read (call again later). */
int coil__ssh_sweep(coil_ssh_session *s);
/* The session ended: every channel hears connection_lost with `reason`. */
void coil__ssh_channels_lost(coil_ssh_session *s, const coil_failure *reason);
/* Begin closing every channel cleanly (coil_ssh_session_close). */
void coil__ssh_channels_close(coil_ssh_session *s);
/* The session is being freed: drop the listeners. */
void coil__ssh_listeners_free(coil_ssh_session *s);
/* 1 when a libssh2 error ends the whole session (not just a channel). */
int coil__ssh_is_session_error(int rc);
/* Free a libssh2 channel now or, when it must wait, on a later sweep. */
void coil__ssh_free_lchannel(coil_ssh_session *s, LIBSSH2_CHANNEL *ch);

#endif
