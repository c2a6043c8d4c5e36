/* The stream machinery shared by every byte-stream transport: the write
 * queue (chained chunks, flushed with writev), the high/low-water marks and
 * the producer they pause and resume, the close states (flush then close,
 * flush then half-close, abort), and safe dispatch to the protocol, so a
 * protocol may close or abort from inside any callback.
 *
 * A transport kind (TCP, UNIX, the in-memory pair) embeds coil__stream
 * first and supplies a coil__stream_lower table: how to send bytes, how to
 * ask for write readiness and for reading, how to shut the write side and
 * how to release itself. It reports what happens below through the
 * coil__stream_* event functions. */
#ifndef COIL_TRANSPORTS_STREAM_H
#define COIL_TRANSPORTS_STREAM_H

#include <coil/transport.h>

#include "reactor_internal.h"

typedef struct coil__stream coil__stream;

typedef struct coil__stream_lower {
    /* Send bytes from iov: returns the count taken (0: would block) or a
     * negative errno on a fatal error. */
    ssize_t (*send)(coil__stream *s, const struct iovec *iov, int iovcnt);
    /* Ask for (on=1) or stop (0) coil__stream_writable() calls. */
    void (*want_write)(coil__stream *s, int on);
    /* Start (1) or stop (0) delivering data through coil__stream_data(). */
    void (*set_reading)(coil__stream *s, int on);
    /* Shut the write side once the queue is flushed; 0 or negative errno. */
    int (*shutdown_write)(coil__stream *s);
    /* Release what is below (close the fd, detach from the peer), once.
     * `abort` is 1 for abort_connection and lost connections. A layer whose
     * close goes on below (one that waits for the peer to take every byte) sets
     * s->lingering here and calls coil__stream_close_done() when it ends:
     * connection_lost waits for it. */
    void (*close)(coil__stream *s, int abort);
    /* After the protocol heard connection_lost: tell whoever else must
     * know (a client factory), with the same reason (borrowed). */
    void (*lost)(coil__stream *s, const coil_failure *reason);
    /* Free the transport's memory (the stream is embedded first). */
    void (*free)(coil__stream *s);
    int (*get_peer)(const coil__stream *s, coil_address *out);
    int (*get_host)(const coil__stream *s, coil_address *out);
    /* Fill kind-specific fields of info (kind, credentials). */
    void (*info)(const coil__stream *s, coil_transport_info *out);
    /* Optional (NULL: the kind cannot): send len bytes of file `fd` from
     * `offset` (sendfile): the count taken, 0 when the socket is full,
     * -ENODATA when the file ended first, or another negative errno
     * (-EINVAL/-ENOSYS: this file cannot be sent so). */
    ssize_t (*send_file)(coil__stream *s, int fd, off_t offset, size_t len);
} coil__stream_lower;

typedef struct coil__chunk {
    struct coil__chunk *next;
    size_t start, end, cap;
    unsigned char data[];
} coil__chunk;

enum coil__stream_state {
    COIL__STREAM_OPEN,
    COIL__STREAM_CLOSING, /* lose_connection: flush, then close */
    COIL__STREAM_CLOSED   /* connection_lost delivered or pending */
};

struct coil__stream {
    coil_transport base; /* first: a coil__stream is a coil_transport */
    const coil__stream_lower *lower;

    coil__chunk *head, *tail;
    size_t queued;
    size_t high_water, low_water;

    coil_producer *producer;
    int streaming;
    int producer_paused;
    int pulling;    /* inside a pull producer's resume_producing */
    int pull_again; /* it wrote there: ask again once it returns */

    enum coil__stream_state state;
    int write_shut_requested; /* lose_write_connection: shut after flush */
    int write_shut;           /* the write side is shut */
    int read_shut;            /* EOF seen */
    int reading;              /* 0 while paused by the protocol */
    int connected;            /* connection_made delivered */

    int lingering;         /* the lower close goes on: teardown waits */
    coil__tracked tracked; /* in the reactor's registry until torn down */
    int depth;             /* callbacks of ours on the stack */
    int free_pending;      /* tear down when depth returns to 0 */
    coil_failure *reason;
};

/* Set up `s` (zeroed by the caller) for `protocol` on `r`. */
void coil__stream_init(coil__stream *s, const coil_transport_ops *ops,
                       const coil__stream_lower *lower, coil_reactor *r,
                       coil_protocol *protocol);

/* Register `s` with its reactor (base.reactor), for coil_reactor_shutdown
 * and coil_reactor_transport_count. coil__stream_init does it when given a
 * reactor; a layer that learns its reactor later calls this then. Idempotent;
 * the entry goes when the stream is torn down. */
void coil__stream_track(coil__stream *s);
/* `lower` carries the layer whose stream is `upper` (a layer over it): shutdown
 * closes the layer, not `lower`, and counts the two as one connection.
 * Does nothing when `lower` is not a stream of this machinery. */
void coil__stream_set_upper(coil_transport *lower, coil__stream *upper);

/* Keep `s` alive across several event calls: a protocol may close inside
 * any of them, and the transport is freed only after the outermost
 * release. */
void coil__stream_hold(coil__stream *s);
void coil__stream_release(coil__stream *s);

/* Events from below. Each may free `s` when called without a hold. */
void coil__stream_connected(coil__stream *s); /* delivers connection_made */
void coil__stream_data(coil__stream *s, const void *data, size_t len);
void coil__stream_eof(coil__stream *s);
void coil__stream_writable(coil__stream *s);
/* The connection broke below: `reason` (owned) goes to connection_lost. */
void coil__stream_lost(coil__stream *s, coil_failure *reason);
/* A lingering close (see coil__stream_lower.close) has ended: the protocol
 * hears connection_lost now (or once no callback of ours is on the stack),
 * with `reason` (owned) when not NULL, else the reason the close began
 * with. */
void coil__stream_close_done(coil__stream *s, coil_failure *reason);

/* The named initializers of a stream kind's ops table: each kind still
 * defines its own static const table (one per file), with its own name:
 *   static const coil_transport_ops tcp_ops = {COIL__STREAM_OPS("tcp")};  */
#define COIL__STREAM_OPS(kind_name)                                                  \
    .kind = (kind_name), .write = coil__stream_write, .writev = coil__stream_writev, \
    .lose_connection = coil__stream_lose_connection,                                 \
    .abort_connection = coil__stream_abort_connection,                               \
    .lose_write_connection = coil__stream_lose_write_connection,                     \
    .get_peer = coil__stream_get_peer, .get_host = coil__stream_get_host,            \
    .pause_reading = coil__stream_pause_reading,                                     \
    .resume_reading = coil__stream_resume_reading,                                   \
    .register_producer = coil__stream_register_producer,                             \
    .unregister_producer = coil__stream_unregister_producer,                         \
    .start_tls = coil__stream_start_tls, .info = coil__stream_info,                  \
    .pending = coil_transport_no_pending

/* The start_tls operation of byte streams: calls the hook a plug-in set
 * (coil's builtin plug-ins are registered first), COIL_ENOTSUP without
 * one. */
int coil__stream_start_tls(coil_transport *t, void *tls_context, int server);
typedef int (*coil__start_tls_fn)(coil_transport *t, void *tls_context, int server);
void coil__stream_set_start_tls_hook(coil__start_tls_fn fn);

/* The operations, for kinds that wrap one (all take the coil_transport). */
int coil__stream_write(coil_transport *t, const void *data, size_t len);
int coil__stream_writev(coil_transport *t, const struct iovec *iov, int iovcnt);
int coil__stream_lose_connection(coil_transport *t);
int coil__stream_abort_connection(coil_transport *t);
int coil__stream_lose_write_connection(coil_transport *t);
int coil__stream_get_peer(const coil_transport *t, coil_address *out);
int coil__stream_get_host(const coil_transport *t, coil_address *out);
int coil__stream_pause_reading(coil_transport *t);
int coil__stream_resume_reading(coil_transport *t);
int coil__stream_register_producer(coil_transport *t, coil_producer *p, int streaming);
int coil__stream_unregister_producer(coil_transport *t);
int coil__stream_info(const coil_transport *t, coil_transport_info *out);

#define COIL__STREAM_HIGH_WATER (64 * 1024)
#define COIL__STREAM_LOW_WATER  (16 * 1024)
#define COIL__CHUNK_SIZE        (16 * 1024)

#endif
