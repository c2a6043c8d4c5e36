/* coil — the one transport interface.
 *
 * Every transport (TCP, UNIX, the in-memory pair, later TLS and SSH
 * channels) is a coil_transport whose first member points at a static const
 * table of operations, in the manner of the kernel's file_operations.
 * Callers never touch the table: they use the inline wrappers below.
 *
 * Ownership: a transport owns its protocol. The transport frees itself
 * after the connection is over and connection_lost has returned; a
 * protocol's pointer to it is valid until then. `write` copies: callers keep
 * no lifetime burden.
 *
 * Close reasons, as passed to connection_lost (coil_failure_code in domain
 * COIL_DOMAIN_COIL):
 *   COIL_ECLOSED    clean close: lose_connection finished, or the peer
 *                   closed cleanly (EOF)
 *   COIL_ECONNLOST  lost: reset, broken pipe, ... (the cause holds errno)
 *   COIL_EABORTED   abort_connection was called here
 */
#ifndef COIL_TRANSPORT_H
#define COIL_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "address.h"
#include "error.h"
#include "protocol.h"
#include "reactor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- producers --------------------------------------------------------- */

/* Something that writes into a transport and can be told to stop and go
 * (Twisted's IPushProducer / IPullProducer). Embed it first in your struct.
 *
 * A streaming (push) producer is taken to be producing when it is
 * registered: it is not resumed then. pause_producing is called when the
 * transport's write queue passes the high-water mark (at once, from
 * coil_transport_register_producer, if it already has), and
 * resume_producing only after such a pause, once the queue has drained to
 * the low-water mark or below.
 *
 * A non-streaming (pull) producer is asked for data (resume_producing) at
 * once, from coil_transport_register_producer, and again whenever the
 * queue is at or below the low-water mark after one of its writes or after
 * a flush. Each call should write something: one that writes nothing is
 * not asked again until the queue next drains. The calls come one after
 * another, never nested inside the producer's own resume_producing.
 *
 * The marks are 64 KiB and 16 KiB unless set with
 * coil_transport_set_water_marks() or a listener's or connector's options
 * (high_water, low_water). */
typedef struct coil_producer coil_producer;
typedef struct coil_producer_ops {
    void (*pause_producing)(coil_producer *p);
    void (*resume_producing)(coil_producer *p);
    void (*stop_producing)(coil_producer *p); /* the connection is going away */
} coil_producer_ops;
struct coil_producer {
    const coil_producer_ops *ops;
};

/* ---- information ------------------------------------------------------- */

/* One layer of a stack of transports (TLS over an SSH channel over TCP),
 * as that layer describes itself. Strings are copied here ("" when the
 * layer has nothing to say). */
#define COIL_TRANSPORT_MAX_LAYERS 4
typedef struct coil_transport_layer_info {
    char kind[24];     /* "tcp", "unix", "memory", "tls", "ssh-channel" */
    char protocol[64]; /* "TLSv1.3"; the SSH server's banner */
    char cipher[64];   /* "TLS_AES_128_GCM_SHA256"; "aes128-ctr hmac-sha2-256" */
    char peer[256];    /* who the far end proved to be: the certificate's
                          subject; the host key type and SHA256 fingerprint */
    int verified;      /* 1: `peer` was verified (CA chain, known_hosts) */
    char detail[128];  /* anything else: "alpn=h2 resumed";
                          "direct-tcpip 127.0.0.1:7000" */
} coil_transport_layer_info;

typedef struct coil_transport_info {
    const char *kind;    /* "tcp", "unix", "memory", ... (static string):
                            the top layer's kind */
    size_t write_queued; /* bytes accepted by write but not yet sent */
    /* Bytes sent but not yet taken by the peer, as far as this transport
     * can tell: the kernel's unacknowledged send queue (SIOCOUTQ) for TCP,
     * the unread bytes of the peer's socket buffer for UNIX sockets, the
     * bytes the far end has not yet read for the in-memory pair; 0 where
     * unknown. A layer closing cleanly watches write_queued + unacked to
     * tell a slow peer from one that has stopped. */
    size_t unacked;
    size_t high_water; /* the write queue's marks */
    size_t low_water;
    int reading; /* 0 while paused */
    /* UNIX sockets: the peer's credentials (SO_PEERCRED); -1 otherwise. */
    pid_t peer_pid;
    long peer_uid;
    long peer_gid;
    /* TLS (the "tls" kind, once the handshake is done); NULL, 0 or ""
     * otherwise. The strings are static or copied here. */
    const char *tls_version;    /* "TLSv1.3" */
    const char *tls_cipher;     /* "TLS_AES_128_GCM_SHA256" */
    char tls_alpn[64];          /* the ALPN protocol agreed, "" if none */
    char tls_server_name[256];  /* SNI: asked for (client) or received */
    char tls_peer_subject[256]; /* the peer certificate's subject, one line */
    int tls_peer_verified;      /* 1: the peer's certificate was verified */
    int tls_resumed;            /* 1: the session was resumed */
    /* The whole stack, top first: "tls/ssh-channel/tcp", "tls/tcp",
     * "memory"; and each layer's own entry, layers[0] the top (the deepest
     * ones are left out past COIL_TRANSPORT_MAX_LAYERS; `stack` still names
     * them). Find one with coil_transport_info_layer(). */
    char stack[96];
    int n_layers;
    coil_transport_layer_info layers[COIL_TRANSPORT_MAX_LAYERS];
} coil_transport_info;

/* For a layer's info operation: put the layer `kind` on top of the stack
 * in `out`, and return its entry (zeroed) to fill. When `below` is not NULL
 * (what the transport below reported: ask it first), its stack is taken
 * into `out` first; NULL keeps what `out` holds (a bottom transport starts
 * from nothing). A layer whose transport below is gone reports itself
 * alone. */
coil_transport_layer_info *coil_transport_info_push(coil_transport_info *out,
                                                    const coil_transport_info *below,
                                                    const char *kind);
/* The topmost entry of the layer `kind` ("tls"), or NULL. */
const coil_transport_layer_info *
coil_transport_info_layer(const coil_transport_info *info, const char *kind);

/* ---- the table --------------------------------------------------------- */

typedef struct coil_transport_ops {
    const char *kind;
    int (*write)(coil_transport *t, const void *data, size_t len);
    int (*writev)(coil_transport *t, const struct iovec *iov, int iovcnt);
    int (*lose_connection)(coil_transport *t);
    int (*abort_connection)(coil_transport *t);
    int (*lose_write_connection)(coil_transport *t);
    int (*get_peer)(const coil_transport *t, coil_address *out);
    int (*get_host)(const coil_transport *t, coil_address *out);
    int (*pause_reading)(coil_transport *t);
    int (*resume_reading)(coil_transport *t);
    int (*register_producer)(coil_transport *t, coil_producer *p, int streaming);
    int (*unregister_producer)(coil_transport *t);
    int (*start_tls)(coil_transport *t, void *tls_context, int server);
    int (*info)(const coil_transport *t, coil_transport_info *out);
    /* Bytes buffered inside this layer that no fd event will announce (TLS
     * and SSH hold decrypted data); the reactor drains them before sleeping.
     * Plain sockets return 0. */
    size_t (*pending)(const coil_transport *t);
} coil_transport_ops;

struct coil_transport {
    const coil_transport_ops *ops;
    coil_protocol *protocol;
    coil_reactor *reactor;
    /* 1 once lose_connection or abort_connection has been called or the
     * connection has ended (Twisted's transport.disconnecting): a protocol
     * checks it to stop delivering what it still has buffered. Kept by the
     * transport; read-only for everyone else. A half-close
     * (lose_write_connection) does not set it. */
    int disconnecting;
};

/* ---- wrappers (all return 0 or a negative COIL_E* code) ---------------- */

/* Queue bytes (copied). Never blocks; bytes go out in order. COIL_ECLOSED
 * after lose_connection / lose_write_connection or once the connection is
 * gone; the bytes are then dropped. */
static inline int coil_transport_write(coil_transport *t, const void *data, size_t len)
{
    return t->ops->write(t, data, len);
}
static inline int coil_transport_writev(coil_transport *t, const struct iovec *iov,
                                        int iovcnt)
{
    return t->ops->writev(t, iov, iovcnt);
}
/* Send everything queued, then close cleanly. */
static inline int coil_transport_lose_connection(coil_transport *t)
{
    return t->ops->lose_connection(t);
}
/* Close now; what is queued is dropped. */
static inline int coil_transport_abort_connection(coil_transport *t)
{
    return t->ops->abort_connection(t);
}
/* Half-close: send what is queued, then shut the write side; keep reading. */
static inline int coil_transport_lose_write_connection(coil_transport *t)
{
    return t->ops->lose_write_connection(t);
}
/* The far end's / our own address. Sockets keep the peer's address, so
 * get_peer still answers once the connection is closed (during and after
 * connection_lost, as long as the transport exists). */
static inline int coil_transport_get_peer(const coil_transport *t, coil_address *out)
{
    return t->ops->get_peer(t, out);
}
static inline int coil_transport_get_host(const coil_transport *t, coil_address *out)
{
    return t->ops->get_host(t, out);
}
/* Stop / restart delivering data_received (the transport as a producer). */
static inline int coil_transport_pause_reading(coil_transport *t)
{
    return t->ops->pause_reading(t);
}
static inline int coil_transport_resume_reading(coil_transport *t)
{
    return t->ops->resume_reading(t);
}
/* One producer at a time: COIL_EBUSY when one is registered. See
 * coil_producer for when it is paused and resumed. */
static inline int coil_transport_register_producer(coil_transport *t, coil_producer *p,
                                                   int streaming)
{
    return t->ops->register_producer(t, p, streaming);
}
static inline int coil_transport_unregister_producer(coil_transport *t)
{
    return t->ops->unregister_producer(t);
}
/* Upgrade in place (STARTTLS); COIL_ENOTSUP where a transport cannot. */
static inline int coil_transport_start_tls(coil_transport *t, void *tls_context,
                                           int server)
{
    return t->ops->start_tls(t, tls_context, server);
}
static inline int coil_transport_info_get(const coil_transport *t,
                                          coil_transport_info *out)
{
    return t->ops->info(t, out);
}
static inline size_t coil_transport_pending(const coil_transport *t)
{
    return t->ops->pending(t);
}

/* Set the write queue's high- and low-water marks (bytes; low <= high,
 * else COIL_EINVAL): a streaming producer is paused once more than `high`
 * bytes are queued and resumed at `low` or below; applies at once (a
 * producer past the new mark is paused now). Every transport built on
 * coil's stream machinery takes them (TCP, UNIX, memory, TLS: the TLS
 * layer's plaintext queue); others return COIL_ENOTSUP. */
int coil_transport_set_water_marks(coil_transport *t, size_t high, size_t low);

/* Send `len` bytes of the file `fd` from *offset straight from the kernel
 * (sendfile(2)): for a registered pull producer serving a file (the HTTP
 * server's static files). Plain TCP and UNIX transports only: every other
 * kind (TLS, SSH channels, the memory pair) returns COIL_ENOTSUP and the
 * caller reads and writes instead. Returns 0 with *sent bytes gone
 * (*offset advanced by as many); COIL_EAGAIN when bytes are queued ahead or
 * the socket is full: the registered pull producer is asked again
 * (resume_producing) once it can go on; COIL_ECLOSED when the connection is
 * gone or closing (a socket error is reported through connection_lost);
 * COIL_ESYSTEM with errno set when reading the file failed (ENODATA: the
 * file ended before offset + len). */
int coil_transport_send_file(coil_transport *t, int fd, off_t *offset, size_t len,
                             size_t *sent) COIL_MUST_CHECK;

/* Shared stubs for operations a transport cannot do (no NULL slots): they
 * return COIL_ENOTSUP and log nothing. */
int coil_transport_no_start_tls(coil_transport *t, void *tls_context, int server);
size_t coil_transport_no_pending(const coil_transport *t);

#ifdef __cplusplus
}
#endif
#endif
