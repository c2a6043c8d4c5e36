/* coil-tunnel: ssh -L / -R with coil. One SSH session carries every
 * forwarded connection; it is made again, with a jittered exponential
 * back-off, when it drops, and the -R forwards are asked for again.
 *
 * Each forwarded connection is a pair of protocols, one on the local TCP
 * connection and one on the SSH channel, relaying both ways: each side is
 * registered as the producer of the other's transport (a full write queue
 * pauses reading on the other side), and an EOF is passed on as a
 * half-close.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <coil/coil.h>
#include <coil/ssh.h>

#include "toolutil.h"

static const char usage[] =
    "Usage: coil-tunnel [-v] [-L [BIND:]PORT:HOST:HOSTPORT]... "
    "[-R [BIND:]PORT:HOST:HOSTPORT]... SSH-ENDPOINT\n"
    "\n"
    "Forwards TCP connections through an SSH server, as ssh -L and -R do,\n"
    "over one SSH session (libssh2; ciphers aes*-ctr with hmac-sha2).\n"
    "\n"
    "  -L [BIND:]PORT:HOST:HOSTPORT\n"
    "        listen on BIND:PORT here (BIND: 127.0.0.1 unless given; PORT 0:\n"
    "        any free port, printed) and forward each connection to HOST:HOSTPORT\n"
    "        as the SSH server sees it (a direct-tcpip channel)\n"
    "  -R [BIND:]PORT:HOST:HOSTPORT\n"
    "        ask the SSH server to listen on BIND:PORT (BIND: localhost; PORT 0:\n"
    "        the server picks one, printed) and connect each connection it gets\n"
    "        to HOST:HOSTPORT from here\n"
    "  -w, --wait S   how long a local connection waits for the SSH session\n"
    "        while it is down (default 30); later ones are refused\n"
    "  -v, --verbose  one line per forwarded connection when it ends\n"
    "  -h, --help     this text\n"
    "\n"
    "IPv6 addresses go in brackets: -L [::1]:8000:[::1]:7000.\n"
    "\n"
    "SSH-ENDPOINT is the session part of an ssh: endpoint (no to=/exec=):\n"
    "  ssh:HOST[:PORT]:user=USER[:identity=FILE][:knownHosts=FILE][:agent=yes]\n"
    "     [:password=env:VAR][:hostKeys=strict|accept-new|insecure-accept-any]\n"
    "     [:keepalive=S][:timeout=S]\n"
    "Host keys are checked against ~/.ssh/known_hosts (or knownHosts=) unless\n"
    "hostKeys= says otherwise.\n"
    "\n"
    "When a session is up it prints, per forward,\n"
    "  coil-tunnel: listening on 127.0.0.1:PORT -> HOST:HOSTPORT via ssh USER@HOST:PORT\n"
    "  coil-tunnel: forwarding localhost:PORT at the server -> HOST:HOSTPORT via ssh "
    "...\n"
    "When the session drops it reconnects (0.5 s doubling to 30 s, jittered),\n"
    "printing why; local connections meanwhile wait up to --wait seconds.\n"
    "SIGINT or SIGTERM close every connection and exit 0.\n"
    "\n"
    "Example:\n"
    "  coil-tunnel -L 8000:127.0.0.1:7000 ssh:gw.example:22:user=me:agent=yes\n"
    "\n"
    "Exit status: 0 after SIGINT/SIGTERM, 1 when the session cannot be made\n"
    "(host key refused, authentication failed) or a port cannot be listened\n"
    "on, 2 for bad arguments.\n";

#define MAX_FORWARDS 32
#define MAX_WAITING  256
#define RETRY_FIRST  0.5
#define RETRY_MAX    30.0

typedef struct tunnel tunnel;
typedef struct pair pair;

typedef struct forward {
    coil_factory f; /* -R: builds the channel side of each pair */
    tunnel *t;
    int remote;
    char bind[256];
    int port;
    char host[256];
    int hostport;
    char target[300];         /* "HOST:HOSTPORT" as printed */
    coil_listener *l;         /* -L */
    int bound_port;           /* -L: the real port */
    int announced;            /* -L: the listening line was printed */
    coil_endpoint *dest;      /* -R: tcp:HOST:HOSTPORT */
    coil_ssh_listener *rl;    /* -R: while the server forwards */
    struct session *asked_on; /* -R: the session the listen was asked on */
} forward;

/* One SSH session attempt; replaced by a new one when it ends. */
typedef struct session {
    tunnel *t;
    coil_ssh_session *s;
    int refs; /* t->cur and the ready deferred */
    int up;
    int dead;
} session;

struct tunnel {
    coil_factory lf; /* -L: builds the local side of each pair */
    coil_reactor *r;
    const char *text;
    char label[256];
    int verbose;
    double wait;
    forward fw[MAX_FORWARDS];
    int nfw;
    session *cur;
    coil_timer *retry;
    int failures;
    int ever_up;
    int stopping;
    int status; /* -1 until decided */
    pair *waiting;
    int nwaiting;
    unsigned long next_id;
};

/* ---- the relay ------------------------------------------------------------- */

typedef struct side {
    coil_protocol p;    /* first */
    coil_producer prod; /* pauses this side's reading; on the other's transport */
    pair *pair;
    int alive; /* between connection_made and connection_lost */
    int ended; /* connection_lost ran, or it was destroyed unmade */
    int read_eof, write_shut;
    uint64_t bytes; /* received on this side */
} side;

struct pair {
    side l, c; /* the local TCP connection, the SSH channel */
    int refs;
    tunnel *t;
    forward *fw;
    unsigned long id;
    char from[96];
    double started;
    pair *wnext, **wprev;
    coil_timer *wait_timer;
    int other_given; /* -L: the channel side given to open_channel; -R: the
                        local side given to coil_connect_protocol */
    const char *end; /* how it ended, for -v */
    char why[160];
};

static void pair_unref(pair *pr);
static void pair_report(pair *pr);

static side *other(side *s)
{
    return s == &s->pair->l ? &s->pair->c : &s->pair->l;
}

static void side_pause(coil_producer *p)
{
    side *s = (side *)((char *)p - offsetof(side, prod));
    if (s->alive)
        coil_transport_pause_reading(s->p.transport);
}

static void side_resume(coil_producer *p)
{
    side *s = (side *)((char *)p - offsetof(side, prod));
    if (s->alive)
        coil_transport_resume_reading(s->p.transport);
}

static void side_stop(coil_producer *p)
{
    (void)p;
}

static const coil_producer_ops side_producer_ops = {
    .pause_producing = side_pause,
    .resume_producing = side_resume,
    .stop_producing = side_stop,
};

static void wait_remove(pair *pr)
{
    if (!pr->wprev)
        return;
    *pr->wprev = pr->wnext;
    if (pr->wnext)
        pr->wnext->wprev = pr->wprev;
    pr->wnext = NULL;
    pr->wprev = NULL;
    pr->t->nwaiting--;
    if (pr->wait_timer) {
        coil_timer_cancel(pr->wait_timer);
        coil_timer_release(pr->wait_timer);
        pr->wait_timer = NULL;
    }
}

static void maybe_close(side *s);

static void side_made(coil_protocol *p)
{
    side *s = (side *)p;
    side *o = other(s);
    s->alive = 1;
    if (!o->alive) {
        /* Nowhere to put its bytes yet. */
        coil_transport_pause_reading(p->transport);
        return;
    }
    /* Both up: each side throttles the other, then bytes flow. */
    coil_transport_register_producer(o->p.transport, &s->prod, 1);
    coil_transport_register_producer(p->transport, &o->prod, 1);
    coil_transport_resume_reading(o->p.transport);
    if (o->read_eof && !s->write_shut) {
        /* The other side's EOF came while this one was connecting. */
        s->write_shut = 1;
        coil_transport_lose_write_connection(p->transport);
        maybe_close(o);
    }
}

static void side_data(coil_protocol *p, const void *data, size_t len)
{
    side *s = (side *)p;
    side *o = other(s);
    s->bytes += len;
    if (o->alive && !o->write_shut)
        coil_transport_write(o->p.transport, data, len);
}

static void maybe_close(side *s)
{
    if (s->alive && s->read_eof && s->write_shut)
        coil_transport_lose_connection(s->p.transport);
}

static void side_read_lost(coil_protocol *p)
{
    side *s = (side *)p;
    side *o = other(s);
    s->read_eof = 1;
    if (o->alive && !o->write_shut) {
        o->write_shut = 1;
        coil_transport_lose_write_connection(o->p.transport);
        maybe_close(o);
    } else if (!o->alive) {
        /* The other side still connecting: it gets the EOF once up (the
         * bytes before it were delivered or wait here, reading paused). */
        if (!o->ended)
            return;
        coil_transport_lose_connection(p->transport);
        return;
    }
    maybe_close(s);
}

static void pair_report(pair *pr)
{
    if (!pr->t->verbose)
        return;
    double secs = coil_reactor_seconds(pr->t->r) - pr->started;
    tool_error("#%lu %s %s %s: %" PRIu64 " bytes out, %" PRIu64 " bytes in, %.2f s%s%s",
               pr->id, pr->from, pr->fw->remote ? "<-" : "->", pr->fw->target,
               pr->l.bytes, pr->c.bytes, secs, pr->why[0] ? ": " : "", pr->why);
}

static void side_lost(coil_protocol *p, const coil_failure *reason)
{
    side *s = (side *)p;
    side *o = other(s);
    pair *pr = s->pair;
    s->alive = 0;
    s->ended = 1;
    if (!pr->why[0] && reason && coil_failure_code(reason) != COIL_ECLOSED) {
        char *txt = tool_failure_text(reason);
        snprintf(pr->why, sizeof pr->why, "%s", txt ? txt : "lost");
        free(txt);
    }
    if (s == &pr->l)
        wait_remove(pr);
    if (o->alive) {
        coil_transport_unregister_producer(o->p.transport);
        coil_transport_lose_connection(o->p.transport);
    }
}

static void side_destroy(coil_protocol *p)
{
    side *s = (side *)p;
    pair *pr = s->pair;
    s->ended = 1;
    /* The other side was never handed to anyone: its share goes too. */
    if (s == &pr->l && !pr->fw->remote && !pr->other_given) {
        pr->other_given = 1;
        pair_unref(pr);
    } else if (s == &pr->c && pr->fw->remote && !pr->other_given) {
        pr->other_given = 1;
        pair_unref(pr);
    }
    pair_unref(pr);
}

static const coil_protocol_ops side_ops = {
    .connection_made = side_made,
    .data_received = side_data,
    .read_connection_lost = side_read_lost,
    .connection_lost = side_lost,
    .destroy = side_destroy,
};

static pair *pair_new(tunnel *t, forward *fw, const char *from)
{
    pair *pr = calloc(1, sizeof *pr);
    if (!pr)
        return NULL;
    pr->refs = 2; /* the two sides */
    pr->t = t;
    pr->fw = fw;
    pr->id = ++t->next_id;
    snprintf(pr->from, sizeof pr->from, "%s", from);
    pr->started = coil_reactor_seconds(t->r);
    pr->l.p.ops = pr->c.p.ops = &side_ops;
    pr->l.prod.ops = pr->c.prod.ops = &side_producer_ops;
    pr->l.pair = pr->c.pair = pr;
    return pr;
}

static void pair_unref(pair *pr)
{
    if (--pr->refs > 0)
        return;
    wait_remove(pr);
    pair_report(pr);
    free(pr);
}

/* ---- -L: local connections through direct-tcpip channels ---------------------- */

static void channel_opened(coil_deferred *d, void *arg)
{
    (void)d;
    pair_unref(arg);
}

static void channel_refused(coil_deferred *d, void *arg)
{
    pair *pr = arg;
    coil_failure *f = coil_deferred_take_failure(d); /* handled here */
    char *txt = tool_failure_text(f);
    coil_failure_free(f);
    tool_error("#%lu %s -> %s: %s", pr->id, pr->from, pr->fw->target,
               txt ? txt : "cannot open the channel");
    free(txt);
    if (pr->l.alive)
        coil_transport_abort_connection(pr->l.p.transport);
    pair_unref(pr);
}

static void open_channel(pair *pr)
{
    tunnel *t = pr->t;
    coil_ssh_channel_options o = {
        .type = COIL_SSH_DIRECT_TCPIP, .host = pr->fw->host, .port = pr->fw->hostport};
    pr->other_given = 1;
    pr->refs++; /* the deferred's */
    coil_deferred *d = coil_ssh_open_channel(t->cur->s, &o, &pr->c.p);
    if (!d) {
        tool_error("out of memory opening a channel");
        pair_unref(pr); /* the channel side was destroyed */
        if (pr->l.alive)
            coil_transport_abort_connection(pr->l.p.transport);
        return;
    }
    coil_deferred_add_callbacks(d, channel_opened, channel_refused, pr);
    coil_deferred_unref(d);
}

static int wait_expired(void *arg)
{
    pair *pr = arg;
    coil_timer_release(pr->wait_timer);
    pr->wait_timer = NULL;
    wait_remove(pr);
    tool_error("#%lu %s -> %s: the SSH session to %s did not come up within %g s; "
               "connection closed",
               pr->id, pr->from, pr->fw->target, pr->t->label, pr->t->wait);
    if (pr->l.alive)
        coil_transport_abort_connection(pr->l.p.transport);
    return 0;
}

static void local_made(pair *pr)
{
    tunnel *t = pr->t;
    if (t->cur && t->cur->up) {
        open_channel(pr);
        return;
    }
    if (t->nwaiting >= MAX_WAITING) {
        tool_error("#%lu %s -> %s: refused: the SSH session to %s is down and %d "
                   "connections wait already",
                   pr->id, pr->from, pr->fw->target, t->label, MAX_WAITING);
        coil_transport_abort_connection(pr->l.p.transport);
        return;
    }
    pr->wait_timer = coil_reactor_call_later(t->r, t->wait, wait_expired, pr);
    pr->wnext = t->waiting;
    if (t->waiting)
        t->waiting->wprev = &pr->wnext;
    pr->wprev = &t->waiting;
    t->waiting = pr;
    t->nwaiting++;
}

/* The local side's connection_made: as side_made, then find a channel. */
static void local_side_made(coil_protocol *p)
{
    side_made(p);
    local_made(((side *)p)->pair);
}

static const coil_protocol_ops local_side_ops = {
    .connection_made = local_side_made,
    .data_received = side_data,
    .read_connection_lost = side_read_lost,
    .connection_lost = side_lost,
    .destroy = side_destroy,
};

static coil_protocol *local_build(coil_factory *f, const coil_address *peer)
{
    forward *fw = f->user; /* one factory per -L */
    char from[96];
    coil_address_format(peer, from, sizeof from);
    pair *pr = pair_new(fw->t, fw, from);
    if (!pr)
        return NULL;
    pr->l.p.ops = &local_side_ops;
    return &pr->l.p;
}

static const coil_factory_ops local_factory_ops = {.build_protocol = local_build};

static void flush_waiting(tunnel *t)
{
    while (t->waiting && t->cur && t->cur->up) {
        pair *pr = t->waiting;
        wait_remove(pr);
        if (pr->l.alive)
            open_channel(pr);
    }
}

/* ---- -R: channels from the server to local connections -------------------------- */

static void dest_connected(coil_deferred *d, void *arg)
{
    (void)d;
    pair_unref(arg);
}

static void dest_failed(coil_deferred *d, void *arg)
{
    pair *pr = arg;
    coil_failure *f = coil_deferred_take_failure(d); /* handled here */
    char *txt = tool_failure_text(f);
    coil_failure_free(f);
    tool_error("#%lu %s <- %s: %s", pr->id, pr->from, pr->fw->target,
               txt ? txt : "cannot connect");
    free(txt);
    if (pr->c.alive)
        coil_transport_abort_connection(pr->c.p.transport);
    pair_unref(pr);
}

static void remote_side_made(coil_protocol *p)
{
    side_made(p);
    pair *pr = ((side *)p)->pair;
    pr->refs++; /* the deferred's */
    pr->other_given = 1;
    coil_deferred *d = coil_connect_protocol(pr->t->r, pr->fw->dest, &pr->l.p);
    if (!d) {
        pair_unref(pr);
        coil_transport_abort_connection(p->transport);
        return;
    }
    coil_deferred_add_callbacks(d, dest_connected, dest_failed, pr);
    coil_deferred_unref(d);
}

static const coil_protocol_ops remote_side_ops = {
    .connection_made = remote_side_made,
    .data_received = side_data,
    .read_connection_lost = side_read_lost,
    .connection_lost = side_lost,
    .destroy = side_destroy,
};

static coil_protocol *remote_build(coil_factory *f, const coil_address *peer)
{
    forward *fw = (forward *)f;
    char from[96];
    if (peer && peer->kind == COIL_ADDR_SSH)
        snprintf(from, sizeof from, "%s", peer->name);
    else if (peer)
        coil_address_format(peer, from, sizeof from);
    else
        snprintf(from, sizeof from, "?");
    pair *pr = pair_new(fw->t, fw, from);
    if (!pr)
        return NULL;
    pr->c.p.ops = &remote_side_ops;
    return &pr->c.p;
}

static const coil_factory_ops remote_factory_ops = {.build_protocol = remote_build};

/* ---- the session ---------------------------------------------------------------- */

static void session_unref(session *w)
{
    if (--w->refs > 0)
        return;
    if (w->s) {
        coil_ssh_session_on_lost(w->s, NULL, NULL);
        coil_ssh_session_free(w->s);
    }
    free(w);
}

static int unref_soon(void *arg)
{
    session_unref(arg);
    return 0;
}

static void connect_session(tunnel *t);

static int retry_now(void *arg)
{
    tunnel *t = arg;
    coil_timer_release(t->retry);
    t->retry = NULL;
    connect_session(t);
    return 0;
}

static void schedule_retry(tunnel *t)
{
    if (t->stopping || t->retry)
        return;
    double delay = RETRY_FIRST;
    for (int i = 0; i < t->failures && delay < RETRY_MAX; i++)
        delay *= 2;
    if (delay > RETRY_MAX)
        delay = RETRY_MAX;
    /* +-25 %, so that many tunnels do not come back in step. */
    delay *= 0.75 + 0.5 * (double)randombytes_uniform(10001) / 10000.0;
    t->failures++;
    tool_error("reconnecting to %s in %.1f s", t->label, delay);
    t->retry = coil_reactor_call_later(t->r, delay, retry_now, t);
    if (!t->retry)
        tool_error("out of memory: not reconnecting");
}

static int permanent(const coil_failure *f)
{
    for (; f; f = coil_failure_cause(f)) {
        if (coil_failure_domain(f) != COIL_DOMAIN_SSH)
            continue;
        int c = coil_failure_code(f);
        if (c == COIL_SSH_EHOSTKEY_UNKNOWN || c == COIL_SSH_EHOSTKEY_CHANGED ||
            c == COIL_SSH_EHOSTKEY_REVOKED || c == COIL_SSH_EAUTH)
            return 1;
    }
    return 0;
}

/* The session `w` ended (or never came up). */
static void session_down(session *w, const coil_failure *why)
{
    tunnel *t = w->t;
    if (w->dead)
        return;
    w->dead = 1;
    int was_up = w->up;
    w->up = 0;
    for (int i = 0; i < t->nfw; i++) {
        forward *fw = &t->fw[i];
        if (fw->remote && fw->asked_on == w) {
            fw->asked_on = NULL;
            if (fw->rl) {
                coil_ssh_listener_close(fw->rl);
                fw->rl = NULL;
            }
        }
    }
    if (t->cur == w) {
        t->cur = NULL;
        /* Not freed inside the session's own callback. */
        if (coil_reactor_call_soon(t->r, unref_soon, w) != 0)
            w->refs--; /* leaks the session rather than freeing it in use */
    }
    if (t->stopping)
        return;
    char *txt = why ? tool_failure_text(why) : NULL;
    tool_error("%s %s: %s", was_up ? "lost the session to" : "cannot connect to",
               t->label, txt ? txt : "closed");
    free(txt);
    if (!t->ever_up && why && permanent(why)) {
        t->status = TOOL_EXIT_FAILURE;
        tool_quit(t->r);
        return;
    }
    schedule_retry(t);
}

static void session_lost(void *arg, coil_ssh_session *s, const coil_failure *reason)
{
    (void)s;
    session_down(arg, reason);
}

static void remote_listening(coil_deferred *d, void *arg)
{
    forward *fw = arg;
    coil_ssh_listener *l = coil_deferred_result(d);
    if (!fw->asked_on || fw->t->stopping) {
        coil_ssh_listener_close(l);
        return;
    }
    fw->rl = l;
    tool_error("forwarding %s:%d at the server -> %s via ssh %s", fw->bind,
               coil_ssh_listener_port(l), fw->target, fw->t->label);
}

static void remote_refused(coil_deferred *d, void *arg)
{
    forward *fw = arg;
    fw->asked_on = NULL;
    coil_failure *f = coil_deferred_take_failure(d); /* handled here */
    char *txt = tool_failure_text(f);
    coil_failure_free(f);
    tool_error("the server refused to listen on %s:%d for -R: %s", fw->bind, fw->port,
               txt ? txt : "refused");
    free(txt);
}

static void session_ready(coil_deferred *d, void *arg)
{
    (void)d;
    session *w = arg;
    tunnel *t = w->t;
    if (w->dead || t->cur != w || t->stopping) {
        session_unref(w);
        return;
    }
    w->up = 1;
    t->failures = 0;
    if (t->ever_up || t->verbose)
        tool_error("session to %s up (%s %s, host key %s %s)", t->label,
                   coil_ssh_session_cipher(w->s) ? coil_ssh_session_cipher(w->s) : "?",
                   coil_ssh_session_mac(w->s) ? coil_ssh_session_mac(w->s) : "?",
                   coil_ssh_session_host_key_type(w->s)
                       ? coil_ssh_session_host_key_type(w->s)
                       : "?",
                   coil_ssh_session_host_key_fingerprint(w->s)
                       ? coil_ssh_session_host_key_fingerprint(w->s)
                       : "?");
    t->ever_up = 1;
    for (int i = 0; i < t->nfw; i++) {
        forward *fw = &t->fw[i];
        if (!fw->remote) {
            if (!fw->announced) {
                fw->announced = 1;
                int v6 = strchr(fw->bind, ':') != NULL;
                tool_error("listening on %s%s%s:%d -> %s via ssh %s", v6 ? "[" : "",
                           fw->bind, v6 ? "]" : "", fw->bound_port, fw->target, t->label);
            }
            continue;
        }
        fw->asked_on = w;
        coil_deferred *ld = coil_ssh_listen(w->s, fw->bind, fw->port, &fw->f);
        if (!ld) {
            tool_error("out of memory asking for -R %d", fw->port);
            continue;
        }
        coil_deferred_add_callbacks(ld, remote_listening, remote_refused, fw);
        coil_deferred_unref(ld);
    }
    flush_waiting(t);
    session_unref(w);
}

static void session_failed(coil_deferred *d, void *arg)
{
    session *w = arg;
    coil_failure *f = coil_deferred_take_failure(d);
    session_down(w, f);
    coil_failure_free(f);
    session_unref(w);
}

/* A new session. With `first` (the first attempt), a description that
 * does not parse is handed back in *first instead of being retried. */
static int connect_session_ex(tunnel *t, coil_failure **first)
{
    session *w = calloc(1, sizeof *w);
    if (!w) {
        tool_error("out of memory");
        schedule_retry(t);
        return 0;
    }
    w->t = t;
    coil_failure *err = NULL;
    if (coil_ssh_session_connect_endpoint(t->r, t->text, &w->s, t->label, sizeof t->label,
                                          &err) != 0) {
        if (first && coil_failure_code(err) == COIL_EINVAL) {
            free(w);
            *first = err;
            return COIL_EINVAL;
        }
        w->refs = 1;
        session_down(w, err); /* not current: only reports and retries */
        coil_failure_free(err);
        session_unref(w);
        return 0;
    }
    w->refs = 2;
    t->cur = w;
    coil_ssh_session_on_lost(w->s, session_lost, w);
    coil_deferred *d = coil_ssh_session_ready(w->s);
    if (!d) {
        session_unref(w);
        session_down(w, NULL);
        return 0;
    }
    coil_deferred_add_callbacks(d, session_ready, session_failed, w);
    coil_deferred_unref(d);
    return 0;
}

static void connect_session(tunnel *t)
{
    connect_session_ex(t, NULL);
}

/* ---- arguments ------------------------------------------------------------------ */

/* Split "[BIND:]PORT:HOST:HOSTPORT" at the ':' outside brackets. */
static int parse_forward(const char *spec, int remote, forward *fw)
{
    char parts[4][256];
    int n = 0;
    size_t o = 0;
    int depth = 0;
    for (const char *p = spec;; p++) {
        if (*p == '[')
            depth++;
        else if (*p == ']')
            depth--;
        if ((*p == ':' && depth == 0) || !*p) {
            if (n == 4)
                return -1;
            parts[n][o] = '\0';
            /* Brackets only group an IPv6 address. */
            if (parts[n][0] == '[' && o >= 2 && parts[n][o - 1] == ']') {
                memmove(parts[n], parts[n] + 1, o - 2);
                parts[n][o - 2] = '\0';
            }
            n++;
            o = 0;
            if (!*p)
                break;
            continue;
        }
        if (o + 1 >= sizeof parts[0])
            return -1;
        parts[n < 4 ? n : 3][o++] = *p;
    }
    if (n != 3 && n != 4)
        return -1;
    int i = 0;
    if (n == 4)
        snprintf(fw->bind, sizeof fw->bind, "%.255s", parts[i++]);
    else
        snprintf(fw->bind, sizeof fw->bind, "%s", remote ? "localhost" : "127.0.0.1");
    char *end;
    long port = strtol(parts[i], &end, 10);
    if (!parts[i][0] || *end || port < 0 || port > 65535)
        return -1;
    fw->port = (int)port;
    snprintf(fw->host, sizeof fw->host, "%.255s", parts[i + 1]);
    long hp = strtol(parts[i + 2], &end, 10);
    if (!parts[i + 2][0] || *end || hp < 1 || hp > 65535 || !fw->host[0] || !fw->bind[0])
        return -1;
    fw->hostport = (int)hp;
    int v6 = strchr(fw->host, ':') != NULL;
    snprintf(fw->target, sizeof fw->target, "%s%s%s:%d", v6 ? "[" : "", fw->host,
             v6 ? "]" : "", fw->hostport);
    fw->remote = remote;
    return 0;
}

/* tcp:HOST:PORT with the host's ':' escaped. */
static int dest_endpoint(forward *fw, coil_failure **err)
{
    char text[700];
    size_t o = 0;
    o += (size_t)snprintf(text, sizeof text, "tcp:");
    for (const char *p = fw->host; *p && o + 4 < sizeof text; p++) {
        if (*p == ':' || *p == '\\')
            text[o++] = '\\';
        text[o++] = *p;
    }
    snprintf(text + o, sizeof text - o, ":%d", fw->hostport);
    return coil_endpoint_client(text, &fw->dest, err);
}

static int listen_local(tunnel *t, forward *fw)
{
    coil_tcp_listen_options o = {.interface = fw->bind, .port = fw->port};
    coil_failure *err = NULL;
    if (coil_tcp_listen(t->r, &o, &fw->f, &fw->l, &err) != 0) {
        tool_error_failure(err, "-L %d:%s", fw->port, fw->target);
        coil_failure_free(err);
        return -1;
    }
    coil_address a;
    fw->bound_port = fw->port;
    if (coil_listener_get_host(fw->l, &a) == 0 && coil_address_port(&a) > 0)
        fw->bound_port = coil_address_port(&a);
    return 0;
}

int main(int argc, char **argv)
{
    tool_init("coil-tunnel", usage);
    if (sodium_init() < 0) {
        tool_error("cannot initialise libsodium");
        return TOOL_EXIT_FAILURE;
    }
    static tunnel t;
    t.lf.ops = &local_factory_ops;
    t.wait = 30;
    t.status = -1;
    const char *text = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return tool_help();
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            t.verbose = 1;
            continue;
        }
        if (!strncmp(a, "-L", 2) || !strncmp(a, "-R", 2) || !strcmp(a, "-w") ||
            !strcmp(a, "--wait") || !strncmp(a, "--wait=", 7)) {
            const char *v = NULL;
            int is_wait = a[1] == 'w' || a[1] == '-';
            if (!strncmp(a, "--wait=", 7))
                v = a + 7;
            else if (!is_wait && a[2])
                v = a + 2;
            else if (i + 1 < argc)
                v = argv[++i];
            if (!v)
                return tool_usage_error("%s needs a value", a);
            if (is_wait) {
                char *end;
                t.wait = strtod(v, &end);
                if (!*v || *end || !(t.wait > 0) || t.wait > 86400)
                    return tool_usage_error("--wait '%s' is not a number of seconds "
                                            "above 0",
                                            v);
                continue;
            }
            if (t.nfw == MAX_FORWARDS)
                return tool_usage_error("at most %d forwards", MAX_FORWARDS);
            forward *fw = &t.fw[t.nfw];
            if (parse_forward(v, a[1] == 'R', fw) != 0)
                return tool_usage_error("bad %s '%s': use %s[BIND:]PORT:HOST:HOSTPORT "
                                        "(ports 1-65535, PORT may be 0; IPv6 in "
                                        "brackets)",
                                        a[1] == 'R' ? "-R" : "-L", v,
                                        a[1] == 'R' ? "-R " : "-L ");
            fw->t = &t;
            t.nfw++;
            continue;
        }
        if (a[0] == '-' && a[1])
            return tool_usage_error("unknown option '%s'", a);
        if (text)
            return tool_usage_error("one SSH-ENDPOINT only; unexpected '%s'", a);
        text = a;
    }
    if (!text)
        return tool_usage_error("missing SSH-ENDPOINT (e.g. ssh:gw.example:22:user=me)");
    if (t.nfw == 0)
        return tool_usage_error("nothing to forward: give -L and/or -R");
    t.text = text;

    if (tool_reactor_new(&t.r) != 0)
        return TOOL_EXIT_FAILURE;
    int rc = 0;
    for (int i = 0; i < t.nfw && rc == 0; i++) {
        forward *fw = &t.fw[i];
        if (fw->remote) {
            coil_failure *err = NULL;
            fw->f.ops = &remote_factory_ops;
            if (dest_endpoint(fw, &err) != 0) {
                rc = tool_bad_endpoint(err);
                break;
            }
        } else {
            /* One factory per -L, to know the forward in build_protocol. */
            fw->f = t.lf;
            fw->f.user = fw;
            rc = listen_local(&t, fw) ? TOOL_EXIT_FAILURE : 0;
        }
    }
    if (rc == 0) {
        /* A bad description is a usage error, found before anything runs. */
        coil_failure *err = NULL;
        if (connect_session_ex(&t, &err) != 0)
            rc = tool_bad_endpoint(err);
    }
    if (rc == 0 && t.status < 0)
        coil_reactor_run(t.r);

    t.stopping = 1;
    if (t.retry) {
        coil_timer_cancel(t.retry);
        coil_timer_release(t.retry);
        t.retry = NULL;
    }
    for (int i = 0; i < t.nfw; i++) {
        forward *fw = &t.fw[i];
        if (fw->l)
            coil_listener_close(fw->l);
        fw->l = NULL;
        if (fw->rl)
            coil_ssh_listener_close(fw->rl);
        fw->rl = NULL;
    }
    while (t.waiting) {
        pair *pr = t.waiting;
        wait_remove(pr);
        if (pr->l.alive)
            coil_transport_abort_connection(pr->l.p.transport);
    }
    if (t.cur) {
        coil_deferred_unref(coil_ssh_session_close(t.cur->s));
    }
    tool_shutdown(t.r, 5.0);
    if (t.cur) {
        session *w = t.cur;
        t.cur = NULL;
        session_unref(w);
    }
    for (int i = 0; i < t.nfw; i++)
        coil_endpoint_free(t.fw[i].dest);
    coil_reactor_free(t.r);
    if (rc)
        return rc;
    return t.status < 0 ? TOOL_EXIT_OK : t.status;
}
