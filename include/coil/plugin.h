/* coil — plug-ins: your own connectors, listeners, layers and endpoint
 * kinds, built the way coil's own are.
 *
 * Three things can be plugged in, each as a small static const ops table
 * that your struct embeds first (as coil_transport and coil_protocol are):
 *
 *  - connectors and listeners (struct coil_connector / struct coil_listener):
 *    what coil_connector_connect(), coil_listener_close() and the rest
 *    dispatch on. TCP and UNIX sockets are built in; an SSH channel
 *    connector is another.
 *  - layers (struct coil_layer): something that sits between a new
 *    connection and the factory's protocol, such as TLS. A connector or
 *    listener carries at most one; every connection it makes runs through
 *    it.
 *  - endpoint kinds (coil_endpoint_kind_ops): a name ("tcp", "unix", "tls",
 *    "ssh", "mykind"), a parser for its arguments and listen / connect
 *    functions, so coil_listen(r, "mykind:...", ...) and every tool that
 *    takes an endpoint string take yours too (Twisted's endpoint string
 *    parser plug-ins).
 *
 * ---- writing your own endpoint kind ----------------------------------------
 *
 * A "loop:" kind that is TCP on 127.0.0.1 (server "loop:PORT", client
 * "loop:PORT[:timeout=S]"):
 *
 *   typedef struct { int port; double timeout; } loop_ep;
 *
 *   static int loop_parse(const coil_endpoint_parser *p,
 *                         const coil_endpoint_desc *d, int server, void **state)
 *   {
 *       static const char *const keys[] = {"port", "timeout", NULL};
 *       const char *v;
 *       int rc;
 *       if ((rc = coil_endpoint_check_keys(p, d, keys, 1)) ||
 *           (rc = coil_endpoint_pick(p, d, 0, "port", &v)))
 *           return rc;
 *       if (!v)
 *           return coil_endpoint_bad(p, "the port is missing");
 *       loop_ep *e = calloc(1, sizeof *e);
 *       if (!e)
 *           return COIL_ENOMEM;               // coil says "out of memory"
 *       *state = e;                           // freed by free_state, also
 *                                             // when parsing fails below
 *       if ((rc = coil_endpoint_port(p, v, server, &e->port)))
 *           return rc;
 *       if ((v = coil_endpoint_desc_get(d, "timeout")))
 *           rc = coil_endpoint_seconds(p, "timeout", v, &e->timeout);
 *       return rc;
 *   }
 *   static int loop_listen(coil_reactor *r, void *state, coil_factory *f,
 *                          coil_listener **out, coil_failure **err)
 *   {
 *       const loop_ep *e = state;
 *       coil_tcp_listen_options o = {.interface = "127.0.0.1", .port = e->port};
 *       return coil_tcp_listen(r, &o, f, out, err);
 *   }
 *   static int loop_connect(coil_reactor *r, void *state, coil_factory *f,
 *                           coil_connector **out, coil_failure **err)
 *   {
 *       const loop_ep *e = state;
 *       coil_tcp_connect_options o = {.host = "127.0.0.1", .port = e->port,
 *                                     .timeout = e->timeout};
 *       return coil_tcp_connect(r, &o, f, out);
 *   }
 *   static const coil_endpoint_kind_ops loop_kind = {
 *       .name = "loop",
 *       .server_example = "loop:PORT", .client_example = "loop:PORT",
 *       .server_usage = "loop:PORT", .client_usage = "loop:PORT[:timeout=S]",
 *       .parse = loop_parse, .listen = loop_listen, .connect = loop_connect,
 *       .free_state = free,
 *   };
 *
 *   coil_failure *err;
 *   if (coil_endpoint_register_kind(&loop_kind, &err) != 0) ... // once, at start
 *   coil_listen(r, "loop:8000", &factory, &listener, &err);
 *
 * Mistakes in a description read the same for every kind: the parser helpers
 * below say "bad client endpoint 'loop:99999': port '99999' is not a number
 * from 1 to 65535 (use loop:PORT[:timeout=S])".
 *
 * To add a layer to every connection of a kind (as tls: is TCP with the TLS
 * layer), listen or connect as the kind below does, then give the listener
 * or connector your layer with coil_listener_set_layer /
 * coil_connector_set_layer. coil_endpoint_tcp_parse() and friends parse,
 * listen and connect exactly as tcp: does, with your extra keys accepted.
 *
 * Kinds and layers are used on the reactor's thread; registering may happen
 * on any thread, but before the kind's name is first used.
 *
 * coil's own modules plug in the same way: tls/ registers ssl:/tls: and the
 * TLS layer, ssh/ registers ssh: and its channel connector, from a list the
 * build turns into one registration call made before the first lookup.
 */
#ifndef COIL_PLUGIN_H
#define COIL_PLUGIN_H

#include "endpoint.h"
#include "failure.h"
#include "protocol.h"
#include "reactor.h"
#include "tcp.h"
#include "transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coil_layer coil_layer;

/* ---- connectors ----------------------------------------------------------- */

/* A connector makes (and remakes) one client connection for a factory
 * (coil/protocol.h says what the factory hears). Embed struct coil_connector
 * first in yours; the public coil_connector_* functions of coil/tcp.h
 * dispatch through the table. Every slot is required except set_layer. */
typedef struct coil_connector_ops {
    const char *kind; /* "tcp", "unix", "ssh-channel", ... (static) */
    /* Start an attempt (the first one is usually started by whoever made
     * the connector). COIL_ESTATE while one is under way or connected. The
     * factory hears connection_failed from the reactor loop, never before
     * this returns. */
    int (*connect)(coil_connector *c);
    /* Give up the attempt under way: connection_failed(COIL_ECANCELLED). */
    void (*stop_connecting)(coil_connector *c);
    /* The established connection's transport as the protocol sees it (the
     * top of the layers), or NULL. */
    coil_transport *(*transport)(const coil_connector *c);
    /* Put `layer` (owned from now on, also on failure) on every connection
     * made from now on; NULL: COIL_ENOTSUP (the layer is freed). */
    int (*set_layer)(coil_connector *c, coil_layer *layer);
    /* Stop any attempt, forget the connection (it goes on alone), call the
     * factory's do_stop if it was started, free. */
    void (*free)(coil_connector *c);
} coil_connector_ops;

struct coil_connector {
    const coil_connector_ops *ops;
};

/* The connector's kind ("tcp", "unix", ...). */
const char *coil_connector_kind(const coil_connector *c);

/* ---- listeners ----------------------------------------------------------- */

/* A listener hands each incoming connection to its factory. Embed struct
 * coil_listener first in yours. Every slot is required except set_layer. */
typedef struct coil_listener_ops {
    const char *kind; /* "tcp", "unix", ... (static) */
    /* Where it listens (coil_listener_get_host). COIL_ENOTSUP if it has no
     * address to tell. */
    int (*get_host)(const coil_listener *l, coil_address *out);
    /* As for connectors: the layer runs on every connection accepted from
     * now on. */
    int (*set_layer)(coil_listener *l, coil_layer *layer);
    /* Stop listening and free (coil_listener_close). */
    void (*close)(coil_listener *l);
} coil_listener_ops;

struct coil_listener {
    const coil_listener_ops *ops;
};

const char *coil_listener_kind(const coil_listener *l);

/* ---- layers -------------------------------------------------------------- */

/* What a layer tells the owner of the connection below it (the socket
 * connector that made the connection). Each call names the transport the
 * layer runs on (`lower`, the one whose protocol the layer is), so the owner
 * finds its connection. A layer calls, while `lower` is alive (before its
 * connection_lost has returned):
 *   up(lower, top)        once, when the layer is ready (TLS: handshake
 *                         done) and the protocol above had connection_made;
 *                         `top` is the transport the protocol writes to. The
 *                         factory hears `connected` with `top`.
 *   failed(lower, why)    instead of up, when it never came up (handshake
 *                         failed or timed out): connection_failed.
 *   lost(lower, why)      after up, when the connection ended, after the
 *                         protocol's connection_lost: connection_lost.
 * A layer that says nothing and sees the transport below end has failed:
 * the owner reports connection_failed with the reason from below. */
typedef struct coil_layer_events {
    void (*up)(coil_transport *lower, coil_transport *top);
    void (*failed)(coil_transport *lower, const coil_failure *reason);
    void (*lost)(coil_transport *lower, const coil_failure *reason);
} coil_layer_events;

typedef struct coil_layer_ops {
    const char *name; /* "tls", ... (static) */
    /* Put the layer between a new connection and `upper` (the factory's
     * protocol, owned from now on): return the protocol to give the
     * transport below, or NULL when that cannot be done (then `upper` has
     * been destroyed). `peer` names the far end ("127.0.0.1:443"; TLS keys
     * its session cache with it), NULL on listeners. `events` is NULL on
     * listeners (nobody waits) and borrowed (static) on connectors. Called
     * on the reactor's thread, once per connection. */
    coil_protocol *(*wrap)(coil_layer *layer, coil_protocol *upper, const char *peer,
                           const coil_layer_events *events);
    /* Free the layer: the connector or listener that owned it is gone.
     * Connections it wrapped go on (keep references in them for what they
     * share). */
    void (*free)(coil_layer *layer);
} coil_layer_ops;

/* Embed first in your layer's struct. One layer object belongs to one
 * connector or listener. */
struct coil_layer {
    const coil_layer_ops *ops;
};

/* Run `layer` (owned from now on, freed also on failure) on every connection
 * the connector makes / the listener accepts from now on. Set it before the
 * first connection comes up (the connection completes from the reactor
 * loop, so right after coil_tcp_connect is in time). COIL_ENOTSUP from a
 * kind that takes no layers, COIL_EBUSY when one is set already. */
int coil_connector_set_layer(coil_connector *c, coil_layer *layer) COIL_MUST_CHECK;
int coil_listener_set_layer(coil_listener *l, coil_layer *layer) COIL_MUST_CHECK;

/* ---- endpoint kinds ------------------------------------------------------ */

/* The description being parsed, for the helpers below (what side, which
 * text, which usage to show). Opaque; valid during parse only. */
typedef struct coil_endpoint_parser coil_endpoint_parser;

typedef struct coil_endpoint_kind_ops {
    /* The text before the first ':' ("tcp"), and what coil_endpoint_kind()
     * returns. Letters, digits, '-' and '_'; at most 31 characters. */
    const char *name;
    /* Another name for the same kind, or NULL ("ssl" for "tls"). */
    const char *alias;
    /* Short forms for messages that list every kind ("use tcp:PORT,
     * unix:PATH or ssl:PORT:privateKey=KEY.pem"); NULL: the kind has no such
     * side (ssh: has no server). */
    const char *server_example;
    const char *client_example;
    /* The full forms, shown after a mistake in a description of this kind
     * ("... (use tcp:PORT[:interface=ADDR][:backlog=N]...)"). */
    const char *server_usage;
    const char *client_usage;
    /* Check the arguments of `d` (kind already matched; `server` 1 or 0) and
     * build the endpoint's state in *state (set it as soon as it exists:
     * it is freed with free_state whatever parse returns). Returns 0, or
     * the code of a coil_endpoint_bad()-family helper (the message is set),
     * or COIL_ENOMEM (coil says out of memory). Load files (certificates,
     * keys) here, so mistakes show at parse time. */
    int (*parse)(const coil_endpoint_parser *p, const coil_endpoint_desc *d, int server,
                 void **state);
    /* Listen / connect with a parsed state (as coil_tcp_listen and
     * coil_tcp_connect). State is shared by every listen and connect of an
     * endpoint and by its copies (coil_reconnector): treat it as read-only
     * and take references to what connections keep. A failing connect may
     * leave *err NULL: coil then says "cannot connect to 'TEXT': REASON". */
    int (*listen)(coil_reactor *r, void *state, coil_factory *f, coil_listener **out,
                  coil_failure **err);
    int (*connect)(coil_reactor *r, void *state, coil_factory *f, coil_connector **out,
                   coil_failure **err);
    /* Free a state (also a half-built one after a failed parse); NULL:
     * nothing is freed. */
    void (*free_state)(void *state);
} coil_endpoint_kind_ops;

/* Add a kind (borrowed: it must stay valid while the program runs; a static
 * const table). coil's own kinds (tcp, unix, tls/ssl, ssh) are always
 * registered first. Returns 0, or COIL_EBUSY when the name or alias is
 * taken ("cannot register endpoint kind 'tcp': the name 'tcp' is taken by
 * the kind 'tcp' registered before; pick another name"), COIL_EINVAL for a
 * bad name or a missing function, COIL_ENOMEM for a full table (64 kinds),
 * each with *err (may be NULL). Thread-safe. */
int coil_endpoint_register_kind(const coil_endpoint_kind_ops *k,
                                coil_failure **err) COIL_MUST_CHECK;
/* The kind registered under `name` (or alias), or NULL. */
const coil_endpoint_kind_ops *coil_endpoint_find_kind(const char *name);

/* ---- helpers for parse: coil's standard wording ---------------------------
 *
 * Each returns 0, or COIL_EINVAL with the caller's error set to
 *   "bad server endpoint 'TEXT': WHAT (use USAGE)"
 * where USAGE is the kind's usage for the side being parsed. */

/* Any message: returns COIL_EINVAL. */
int coil_endpoint_bad(const coil_endpoint_parser *p, const char *fmt, ...)
    COIL_PRINTF(2, 3);
/* Every KEY= of `d` is in `keys` (NULL-terminated) and there are at most
 * `max_positional` positional arguments ("unknown option 'x'",
 * "unexpected argument 'y'"). */
int coil_endpoint_check_keys(const coil_endpoint_parser *p, const coil_endpoint_desc *d,
                             const char *const *keys, int max_positional);
/* The n-th positional argument (from 0), or NULL. */
const char *coil_endpoint_positional(const coil_endpoint_desc *d, int n);
/* A value given as the n-th positional argument or as KEY=, not both
 * ("port is given both as '80' and as port=81"); *out NULL when neither. */
int coil_endpoint_pick(const coil_endpoint_parser *p, const coil_endpoint_desc *d, int n,
                       const char *key, const char **out);
/* A port: 1..65535, or 0..65535 with allow_zero ("port '80x' is not a
 * number from 0 to 65535"). */
int coil_endpoint_port(const coil_endpoint_parser *p, const char *value, int allow_zero,
                       int *out);
/* Seconds above 0, at most a day ("timeout 'abc' is not a number of
 * seconds above 0"). */
int coil_endpoint_seconds(const coil_endpoint_parser *p, const char *key,
                          const char *value, double *out);
/* yes/no, true/false, 1/0 ("resume='maybe' is not yes or no"). */
int coil_endpoint_yes_no(const coil_endpoint_parser *p, const char *key,
                         const char *value, int *out);
/* A decimal number lo..hi ("backlog '0' is not a number from 1 to 65535"). */
int coil_endpoint_number(const coil_endpoint_parser *p, const char *key,
                         const char *value, long lo, long hi, long *out);
/* highWater= and lowWater= (bytes; 0 in *high / *low when not given), with
 * the same checks as tcp: ("lowWater (9000) is above highWater (8192)"). */
int coil_endpoint_water_marks(const coil_endpoint_parser *p, const coil_endpoint_desc *d,
                              size_t *high, size_t *low);
/* 1 while parsing a server description, 0 for a client; the description's
 * text (as given). */
int coil_endpoint_parser_is_server(const coil_endpoint_parser *p);
const char *coil_endpoint_parser_text(const coil_endpoint_parser *p);

/* ---- kinds built on tcp: ------------------------------------------------- */

/* The arguments of a tcp: description, parsed exactly as tcp: parses them
 * (same keys, same messages), with `extra_keys` (NULL-terminated, may be
 * NULL) accepted too, for your kind to read with coil_endpoint_desc_get. */
typedef struct coil_endpoint_tcp coil_endpoint_tcp;
int coil_endpoint_tcp_parse(const coil_endpoint_parser *p, const coil_endpoint_desc *d,
                            int server, const char *const *extra_keys,
                            coil_endpoint_tcp **out) COIL_MUST_CHECK;
/* Clients: the host; servers: the interface (NULL when not given). */
const char *coil_endpoint_tcp_host(const coil_endpoint_tcp *t);
int coil_endpoint_tcp_port(const coil_endpoint_tcp *t);
int coil_endpoint_tcp_listen(coil_reactor *r, const coil_endpoint_tcp *t, coil_factory *f,
                             coil_listener **out, coil_failure **err) COIL_MUST_CHECK;
int coil_endpoint_tcp_connect(coil_reactor *r, const coil_endpoint_tcp *t,
                              coil_factory *f, coil_connector **out,
                              coil_failure **err) COIL_MUST_CHECK;
void coil_endpoint_tcp_free(coil_endpoint_tcp *t);

#ifdef __cplusplus
}
#endif
#endif
