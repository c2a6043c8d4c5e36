/* The transport conformance suite: one set of cases run against every
 * transport kind through a table of "make a connected pair" functions.
 *
 * To run it against a transport of your own, write a make_pair that joins
 * two protocols over your transport on a given reactor, then either add a
 * row to the table in test_conformance.c, or link conformance.c into your
 * own CUnit program and call coil_conformance_add_suites() with your table
 * (see README.md in this folder). */
#ifndef COIL_CONFORMANCE_H
#define COIL_CONFORMANCE_H

#include <coil/coil.h>

typedef struct coil_conformance_kind {
    const char *name;
    /* Join `client` and `server` over this transport on `r`: each protocol
     * becomes owned by its transport and hears connection_made (now or on
     * a later pass). Returns 0, or a negative code when the pair cannot be
     * made. `ctx` is the row's own. */
    int (*make_pair)(coil_reactor *r, coil_protocol *client, coil_protocol *server,
                     void *ctx);
    void *ctx;
    /* Called when the kind's suite ends (may be NULL): free what make_pair
     * kept (listeners, connectors). */
    void (*cleanup)(coil_reactor *r, void *ctx);
    /* How many bytes a writer may have queued above the high-water mark in
     * the backpressure case (one write's worth is always allowed). */
    size_t slack;
    /* 1 when an abort reaches the far end as EOF, not as a reset (UNIX
     * sockets have no reset). */
    int abort_is_eof;
    /* How get_peer / get_host are checked (may be NULL: each end's peer is
     * the other's host, as on TCP). A kind whose two ends are different
     * sockets joined by a relay (an SSH server) says what holds instead;
     * the strings are the addresses as coil_address_format writes them. */
    void (*check_addresses)(const char *client_host, const char *client_peer,
                            const char *server_host, const char *server_peer, void *ctx);
    /* How many connections the "many at once" case opens (0: 1,000). A
     * kind whose every connection costs a process somewhere (an SSH exec
     * channel runs a command on the server) may ask for fewer. */
    int many;
} coil_conformance_kind;

/* Register one CUnit suite per kind, each with every case. The table must
 * outlive the run. Returns 0 or -1. */
int coil_conformance_add_suites(const coil_conformance_kind *kinds, size_t n);

/* COIL_TEST_ONLY=TEXT (by hand, while working on one row): 1 when `name`
 * contains TEXT, or when it is not set. */
int coil_conformance_selected(const char *name);

/* coil_conformance_add_suites for the kinds of `table` that
 * coil_conformance_selected picks, copied to `rows` (room for n; it must outlive the
 * run). */
int coil_conformance_add_selected(const coil_conformance_kind *table, size_t n,
                                  coil_conformance_kind *rows);

/* The TLS contexts the conformance programs share, made once from the
 * certificates of tests/tls/make-certs.sh in $COIL_TEST_CERTS (the ctest
 * fixture tls_certs sets it): 0, or COIL_EINVAL with a message saying what
 * to do. The getters give them (NULL before a successful call); _free
 * frees both, and a later call makes them again. */
int coil_conformance_tls_contexts(void);
coil_tls_context *coil_conformance_tls_server_ctx(void);
coil_tls_context *coil_conformance_tls_client_ctx(void);
void coil_conformance_tls_contexts_free(void);

/* Turn `r` until cond(arg) holds; 1 if it did within `timeout` seconds. */
int coil_conformance_run_until(coil_reactor *r, int (*cond)(void *arg), void *arg,
                               double timeout);

/* ---- ends for the memory-bound suites (test_conformance_ssh, test_conformance_sshd) */

/* Byte i of what a flooding end writes. */
unsigned char coil_conformance_pattern(size_t i);

/* One end: floods (a streaming producer on its transport, `total` bytes of
 * the pattern) or reads, checking the pattern. */
typedef struct coil_conformance_end {
    coil_protocol base;
    coil_producer prod;
    coil_reactor *r;
    /* May be NULL: the write queue of the transport below (an SSH
     * channel's session), kept in max_lower after each write. */
    size_t (*below)(coil_transport *t);
    int made, destroyed, lost;
    int flood;        /* write `total` bytes of the pattern */
    int start_paused; /* pause reading in connection_made */
    size_t total, sent, got;
    int mismatch;
    int paused, pauses; /* the producer */
    size_t max_queued;  /* this transport's write queue, seen after writes */
    size_t max_lower;   /* what `below` said, at most */
    double last_write;  /* when the producer last wrote */
    unsigned char chunk[32 * 1024];
} coil_conformance_end;

/* Two ends on `r` for `total` bytes: with client_floods the client floods
 * and the server starts paused, else the other way. Both calloc'd: free
 * them once destroyed. 0, or COIL_ENOMEM (nothing made). */
int coil_conformance_ends_new(coil_reactor *r, int client_floods, size_t total,
                              coil_conformance_end **c, coil_conformance_end **s);

/* After the pair was opened: turn `r` until both ends are connected (20 s
 * at most; a CUnit assertion). 1 if they are. */
int coil_conformance_ends_made(coil_reactor *r, coil_conformance_end *c,
                               coil_conformance_end *s);

/* Close the client end and turn `r` until both ends are destroyed (30 s at
 * most; a CUnit assertion). */
void coil_conformance_ends_finish(coil_reactor *r, coil_conformance_end *c,
                                  coil_conformance_end *s);

/* A run_until condition: the end (arg) got its `total` bytes, or lost its
 * connection. */
int coil_conformance_end_got_all(void *arg);

#endif
