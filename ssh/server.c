/* coil's SSH server: the context and the transport layer of each
 * connection (RFC 4253 with OpenSSH's strict key exchange); see
 * server_private.h for the parts and coil/ssh_server.h for the API.
 *
 * A connection (coil__sshd) is the protocol on its transport below. Bytes
 * from below go into a bounded input buffer; the packet loop takes the
 * identification line, then binary packets, opened in place
 * (coil__sshc_peek / coil__sshc_open), and hands each payload to the
 * per-state allowlist (handle_packet). Packets we send are built in place
 * in s->out (coil__sshd_packet_begin), sealed in place and written below
 * (coil__sshd_packet_end); while a key exchange runs, non-kex packets are
 * copied aside and sent after our NEWKEYS. */
#include "server_private.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <coil/log.h>

#define LOG_MODULE "ssh-server"

/* The identification line: at most 255 bytes with CR LF (RFC 4253 4.2). */
#define VERSION_MAX 255
/* The payload packet_begin offers at most (packet_length <= MAX_PACKET). */
#define MAX_PAYLOAD (COIL__SSH_MAX_PACKET - 64)
/* Room in s->out at first: a 32 KiB channel data packet and its header. */
#define OUT_ROOM_START (36 * 1024)
/* Input buffered while input is held before we pause reading below, and
 * the most we ever buffer (a transport below that keeps delivering after
 * being paused is cut off there). */
#define IN_HELD_PAUSE (64 * 1024)
#define IN_HARD_MAX   (COIL__SSH_MAX_PACKET + 4 * 1024 * 1024)
/* Non-kex packets held during a key exchange, at most. */
#define HELD_MAX (16 * 1024 * 1024)
/* Rekey after this many packets either way (OpenSSH: 2^31 for 32-bit
 * sequence numbers). */
#define REKEY_PACKETS ((uint64_t)1 << 31)

struct coil__sshd_held {
    struct coil__sshd_held *next;
    size_t len;
    unsigned char data[];
};

static coil_log_limit refuse_limit = COIL_LOG_LIMIT_INIT(10.0, 5);

/* ======================================================================
 * The context
 * ====================================================================== */

static char *dupstr(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static void server_destroy(coil_ssh_server *srv)
{
    coil__sshkey_free(srv->host_ed25519);
    coil__sshkey_free(srv->host_ecdsa);
    coil__authkeys_free(srv->authkeys);
    free(srv->banner);
    free(srv->version_line);
    if (srv->subsystem_names)
        for (size_t i = 0; i < srv->o.n_subsystems; i++)
            free(srv->subsystem_names[i]);
    free(srv->subsystem_names);
    free(srv->subsystems);
    while (srv->sources) {
        coil__sshd_source *n = srv->sources->next;
        free(srv->sources);
        srv->sources = n;
    }
    free(srv);
}

void coil__sshd_server_ref(coil_ssh_server *srv)
{
    srv->refs++;
}

void coil__sshd_server_unref(coil_ssh_server *srv)
{
    if (srv && --srv->refs == 0)
        server_destroy(srv);
}

static coil_protocol *factory_build(coil_factory *f, const coil_address *peer)
{
    coil_ssh_server *srv = f->user;
    if (!srv->caller_ref) {
        coil_log(COIL_LOG_WARN, LOG_MODULE,
                 "a listener still uses the factory of a server that was "
                 "freed; connection refused (close the listener before "
                 "coil_ssh_server_free)");
        return NULL;
    }
    return coil_ssh_server_protocol(srv, peer);
}

static const coil_factory_ops factory_ops = {.build_protocol = factory_build};

/* The software version: printable ASCII without spaces and '-' (RFC 4253
 * 4.2), at most 200 bytes. */
static int version_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > 200)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] <= ' ' || v[i] > '~' || v[i] == '-')
            return 0;
    return 1;
}

int coil_ssh_server_new(coil_reactor *r, const coil_ssh_server_options *o,
                        coil_ssh_server **out, coil_failure **err)
{
    coil_failure *dummy = NULL;
    if (!err)
        err = &dummy;
    *err = NULL;
    if (out)
        *out = NULL;
    if (!r || !o || !out) {
        *err = coil_failure_new(
            COIL_DOMAIN_COIL, COIL_EINVAL,
            "coil_ssh_server_new: reactor, options and out are required");
        goto fail_early;
    }
    if (!o->host_key_file || !*o->host_key_file) {
        *err =
            coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                             "SSH server: no host key: set host_key_file to an ed25519 "
                             "private key (ssh-keygen -t ed25519 -N '' -f FILE), or add "
                             "generate_host_key = 1 to create one");
        goto fail_early;
    }
    if (!o->authorized_keys_file && !o->authorize_key && !o->check_password &&
        !o->anonymous) {
        *err = coil_failure_new(
            COIL_DOMAIN_COIL, COIL_EINVAL,
            "SSH server: no way to log in: set authorized_keys_file, authorize_key, "
            "check_password, or anonymous = 1");
        goto fail_early;
    }
    const char *version = o->version && *o->version ? o->version : "coil_0.1";
    if (!version_ok(version)) {
        *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                "SSH server: version '%.64s' is not allowed in an SSH "
                                "identification line (printable ASCII, no spaces or '-', "
                                "at most 200 bytes)",
                                version);
        goto fail_early;
    }
    for (size_t i = 0; i < o->n_subsystems; i++)
        if (!o->subsystems || !o->subsystems[i].name || !o->subsystems[i].factory) {
            *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                    "SSH server: subsystem %zu has no name or no factory",
                                    i);
            goto fail_early;
        }

    coil_ssh_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        goto nomem_early;
    srv->r = r;
    srv->refs = 1;
    srv->caller_ref = 1;
    srv->factory.ops = &factory_ops;
    srv->factory.user = srv;
    srv->o = *o;

    /* defaults */
    coil_ssh_server_options *so = &srv->o;
    if (so->max_auth_tries <= 0)
        so->max_auth_tries = 6;
    if (!(so->login_grace_time > 0))
        so->login_grace_time = 120;
    if (so->max_unauthenticated <= 0)
        so->max_unauthenticated = 100;
    if (so->max_unauthenticated_per_source <= 0)
        so->max_unauthenticated_per_source = 10;
    if (!(so->auth_failure_delay > 0))
        so->auth_failure_delay = 0.25;
    if (so->max_channels <= 0)
        so->max_channels = 64;
    if (so->window == 0)
        so->window = 2 * 1024 * 1024;
    if (so->max_packet == 0)
        so->max_packet = 32 * 1024;
    if (so->rekey_bytes == 0)
        so->rekey_bytes = (uint64_t)1 << 30;
    if (!(so->idle_timeout > 0))
        so->idle_timeout = 0;

    /* strings: copies, and the paths are not kept */
    so->host_key_file = NULL;
    so->ecdsa_host_key_file = NULL;
    so->authorized_keys_file = NULL;
    so->version = NULL;
    so->banner = NULL;
    so->subsystems = NULL;
    if (o->banner) {
        srv->banner = dupstr(o->banner);
        if (!srv->banner)
            goto nomem;
        so->banner = srv->banner;
    }
    size_t vl = strlen("SSH-2.0-") + strlen(version) + 1;
    srv->version_line = malloc(vl);
    if (!srv->version_line)
        goto nomem;
    snprintf(srv->version_line, vl, "SSH-2.0-%s", version);
    if (o->n_subsystems) {
        srv->subsystems = calloc(o->n_subsystems, sizeof *srv->subsystems);
        srv->subsystem_names = calloc(o->n_subsystems, sizeof *srv->subsystem_names);
        if (!srv->subsystems || !srv->subsystem_names)
            goto nomem;
        for (size_t i = 0; i < o->n_subsystems; i++) {
            srv->subsystem_names[i] = dupstr(o->subsystems[i].name);
            if (!srv->subsystem_names[i])
                goto nomem;
            srv->subsystems[i].name = srv->subsystem_names[i];
            srv->subsystems[i].factory = o->subsystems[i].factory;
        }
        so->subsystems = srv->subsystems;
    }

    /* keys */
    int rc = coil__sshkey_load_host(o->host_key_file, COIL__SSHKEY_ED25519,
                                    o->generate_host_key, &srv->host_ed25519, err);
    if (rc != 0)
        goto fail;
    if (o->ecdsa_host_key_file && *o->ecdsa_host_key_file) {
        rc = coil__sshkey_load_host(o->ecdsa_host_key_file, COIL__SSHKEY_ECDSA_P256,
                                    o->generate_host_key, &srv->host_ecdsa, err);
        if (rc != 0)
            goto fail;
    }
    if (o->authorized_keys_file && *o->authorized_keys_file) {
        rc = coil__authkeys_load(o->authorized_keys_file, &srv->authkeys, err);
        if (rc != 0)
            goto fail;
        if (coil__authkeys_count(srv->authkeys) == 0)
            coil_log(COIL_LOG_WARN, LOG_MODULE,
                     "authorized keys file '%s' holds no usable key",
                     o->authorized_keys_file);
    }
    coil_log(COIL_LOG_DEBUG, LOG_MODULE, "host key %s %s%s%s",
             coil__sshkey_name(srv->host_ed25519),
             coil__sshkey_fingerprint(srv->host_ed25519), srv->host_ecdsa ? ", " : "",
             srv->host_ecdsa ? coil__sshkey_fingerprint(srv->host_ecdsa) : "");
    *out = srv;
    return 0;

nomem:
    *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "SSH server: out of memory");
    rc = COIL_ENOMEM;
fail:
    if (rc >= 0)
        rc = COIL_EINVAL;
    server_destroy(srv);
    if (dummy)
        coil_failure_free(dummy);
    return rc;
nomem_early:
    *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "SSH server: out of memory");
    if (dummy)
        coil_failure_free(dummy);
    return COIL_ENOMEM;
fail_early:
    if (dummy)
        coil_failure_free(dummy);
    return COIL_EINVAL;
}

void coil_ssh_server_free(coil_ssh_server *srv)
{
    if (!srv || !srv->caller_ref)
        return;
    srv->caller_ref = 0;
    coil__sshd_server_unref(srv);
}

coil_factory *coil_ssh_server_factory(coil_ssh_server *srv)
{
    return &srv->factory;
}

const char *coil_ssh_server_host_key_fingerprint(const coil_ssh_server *srv)
{
    if (!srv || !srv->host_ed25519)
        return "";
    return coil__sshkey_fingerprint(srv->host_ed25519);
}

void coil_ssh_server_get_stats(const coil_ssh_server *srv, coil_ssh_server_stats *out)
{
    *out = srv->stats;
}

static coil__sshd_source *source_find(coil_ssh_server *srv, const char *host)
{
    for (coil__sshd_source *x = srv->sources; x; x = x->next)
        if (strcmp(x->addr, host) == 0)
            return x;
    return NULL;
}

/* ======================================================================
 * Connections: counts and lifetime
 * ====================================================================== */

static const coil_protocol_ops sshd_ops;
static const coil_producer_ops sshd_producer_ops;

static void peer_strings(const coil_address *peer, char *full, size_t full_size,
                         char *host, size_t host_size)
{
    if (!peer) {
        snprintf(full, full_size, "unknown");
        snprintf(host, host_size, "unknown");
        return;
    }
    coil_address_format(peer, full, full_size);
    if (peer->kind == COIL_ADDR_TCP4) {
        if (!inet_ntop(AF_INET, &peer->u.in4.sin_addr, host, (socklen_t)host_size))
            snprintf(host, host_size, "%.63s", full);
    } else if (peer->kind == COIL_ADDR_TCP6) {
        if (!inet_ntop(AF_INET6, &peer->u.in6.sin6_addr, host, (socklen_t)host_size))
            snprintf(host, host_size, "%.63s", full);
    } else {
        snprintf(host, host_size, "%.63s", full);
    }
}

coil_protocol *coil_ssh_server_protocol(coil_ssh_server *srv, const coil_address *peer)
{
    if (!srv)
        return NULL;
    char full[96], host[64];
    peer_strings(peer, full, sizeof full, host, sizeof host);
    double now = coil_reactor_seconds(srv->r);
    if (srv->stats.unauthenticated >= (size_t)srv->o.max_unauthenticated) {
        srv->stats.refused++;
        coil_log_ratelimited(&refuse_limit, now, COIL_LOG_WARN, LOG_MODULE,
                             "%s: refused: %zu connections are not logged in "
                             "yet (max_unauthenticated %d)",
                             full, srv->stats.unauthenticated,
                             srv->o.max_unauthenticated);
        return NULL;
    }
    coil__sshd_source *src = source_find(srv, host);
    if (src && src->unauth >= srv->o.max_unauthenticated_per_source) {
        srv->stats.refused++;
        coil_log_ratelimited(&refuse_limit, now, COIL_LOG_WARN, LOG_MODULE,
                             "%s: refused: %d connections from %s are not "
                             "logged in yet (max_unauthenticated_per_source %d)",
                             full, src->unauth, host,
                             srv->o.max_unauthenticated_per_source);
        return NULL;
    }
    coil__sshd *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (!src) {
        src = calloc(1, sizeof *src);
        if (!src) {
            free(s);
            return NULL;
        }
        snprintf(src->addr, sizeof src->addr, "%s", host);
        src->next = srv->sources;
        srv->sources = src;
    }
    s->proto.ops = &sshd_ops;
    s->prod.ops = &sshd_producer_ops;
    s->srv = srv;
    coil__sshd_server_ref(srv);
    s->r = srv->r;
    s->refs = 1; /* the transport's, dropped in destroy */
    s->state = COIL__SSHD_VERSION;
    snprintf(s->peer, sizeof s->peer, "%s", full);
    snprintf(s->peer_host, sizeof s->peer_host, "%s", host);
    coil__sshc_init_none(&s->rx, 0);
    coil__sshc_init_none(&s->tx, 1);
    src->unauth++;
    s->counted_unauth = 1;
    srv->stats.unauthenticated++;
    s->counted_conn = 1;
    srv->stats.connections++;
    return &s->proto;
}

/* Leave the unauthenticated counts (logged in, or gone). */
static void uncount_unauth(coil__sshd *s)
{
    if (!s->counted_unauth)
        return;
    s->counted_unauth = 0;
    coil_ssh_server *srv = s->srv;
    srv->stats.unauthenticated--;
    for (coil__sshd_source **pp = &srv->sources; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->addr, s->peer_host) == 0) {
            coil__sshd_source *x = *pp;
            if (--x->unauth <= 0) {
                *pp = x->next;
                free(x);
            }
            break;
        }
    }
}

static void release_counts(coil__sshd *s)
{
    uncount_unauth(s);
    if (s->counted_conn) {
        s->counted_conn = 0;
        s->srv->stats.connections--;
    }
}

static void held_drop(coil__sshd *s)
{
    while (s->held_head) {
        struct coil__sshd_held *h = s->held_head;
        s->held_head = h->next;
        sodium_memzero(h->data, h->len);
        free(h);
    }
    s->held_tail = NULL;
    s->held_bytes = 0;
}

/* The pending idle timer holds a reference to s; the caller holds another. */
static void stop_idle_timer(coil__sshd *s)
{
    if (s->idle_timer) {
        int was_pending = coil_timer_cancel(s->idle_timer) == 0;
        coil_timer_release(s->idle_timer);
        s->idle_timer = NULL;
        if (was_pending)
            coil__sshd_unref(s);
    }
}

void coil__sshd_ref(coil__sshd *s)
{
    s->refs++;
}

void coil__sshd_unref(coil__sshd *s)
{
    if (!s || --s->refs > 0)
        return;
    release_counts(s);
    held_drop(s);
    coil__sshc_free(&s->rx);
    coil__sshc_free(&s->tx);
    coil__sshc_free(&s->pending_rx);
    coil__sshc_free(&s->pending_tx);
    coil__kex_result_wipe(&s->kres);
    sodium_memzero(s->session_id, sizeof s->session_id);
    if (s->in) {
        sodium_memzero(s->in, s->in_cap);
        free(s->in);
    }
    if (s->out) {
        sodium_memzero(s->out, s->out_cap);
        free(s->out);
    }
    if (s->spill) {
        sodium_memzero(s->spill, s->spill_cap);
        free(s->spill);
    }
    free(s->kexinit_c);
    free(s->kexinit_s);
    coil_failure_free(s->end_reason);
    coil__sshd_server_unref(s->srv);
    free(s);
}

/* ======================================================================
 * Reading below: pause and resume
 * ====================================================================== */

static void process_input(coil__sshd *s);
static int in_append(coil__sshd *s, const void *data, size_t len);

static void update_reading(coil__sshd *s)
{
    if (!s->lower || s->state == COIL__SSHD_DEAD)
        return;
    size_t buffered = s->in_end - s->in_start + s->spill_len;
    int want_pause = s->lower_full || (s->input_held && buffered >= IN_HELD_PAUSE);
    if (want_pause && !s->reading_paused) {
        s->reading_paused = 1;
        coil_transport_pause_reading(s->lower);
    } else if (!want_pause && s->reading_paused) {
        /* The transport below may deliver what it holds from inside
         * resume_reading: never do it with the packet loop on the stack. */
        if (s->in_loop)
            return;
        s->reading_paused = 0;
        coil_transport_resume_reading(s->lower);
    }
}

static int kick_cb(void *arg)
{
    coil__sshd *s = arg;
    s->kick_pending = 0;
    if (s->state != COIL__SSHD_DEAD && s->lower) {
        process_input(s);
        update_reading(s);
    }
    coil__sshd_unref(s);
    return 0;
}

/* Process input and re-evaluate reading on the next reactor pass. */
static void kick(coil__sshd *s)
{
    if (s->kick_pending || s->state == COIL__SSHD_DEAD)
        return;
    if (coil_reactor_call_soon(s->r, kick_cb, s) == 0) {
        s->kick_pending = 1;
        coil__sshd_ref(s);
    }
}

void coil__sshd_hold_input(coil__sshd *s, int on)
{
    if (on) {
        s->input_held = 1;
        return;
    }
    if (!s->input_held)
        return;
    s->input_held = 0;
    kick(s);
}

static void prod_pause(coil_producer *p)
{
    coil__sshd *s = (coil__sshd *)((char *)p - offsetof(coil__sshd, prod));
    s->lower_full = 1;
    update_reading(s);
}

static void prod_resume(coil_producer *p)
{
    coil__sshd *s = (coil__sshd *)((char *)p - offsetof(coil__sshd, prod));
    s->lower_full = 0;
    if (s->state == COIL__SSHD_DEAD)
        return;
    kick(s); /* resume reading on the next pass */
    if (coil__sshd_can_send_data(s))
        coil__sshd_conn_writable(s);
}

static void prod_stop(coil_producer *p)
{
    (void)p;
}

static const coil_producer_ops sshd_producer_ops = {
    .pause_producing = prod_pause,
    .resume_producing = prod_resume,
    .stop_producing = prod_stop,
};

/* ======================================================================
 * Sending
 * ====================================================================== */

static const char *reason_name(int code)
{
    switch (code) {
    case 1:
        return "host not allowed to connect";
    case 2:
        return "protocol error";
    case 3:
        return "key exchange failed";
    case 4:
        return "reserved";
    case 5:
        return "MAC error";
    case 6:
        return "compression error";
    case 7:
        return "service not available";
    case 8:
        return "protocol version not supported";
    case 9:
        return "host key not verifiable";
    case 10:
        return "connection lost";
    case 11:
        return "by application";
    case 12:
        return "too many connections";
    case 13:
        return "auth cancelled by user";
    case 14:
        return "no more auth methods available";
    case 15:
        return "illegal user name";
    default:
        return "unknown reason";
    }
}

static int out_reserve(coil__sshd *s, size_t payload)
{
    size_t need = 5 + payload + COIL__SSHC_OVERHEAD;
    if (s->out_cap >= need)
        return 0;
    size_t cap = s->out_cap ? s->out_cap : 5 + OUT_ROOM_START + COIL__SSHC_OVERHEAD;
    while (cap < need)
        cap *= 2;
    unsigned char *n = malloc(cap);
    if (!n)
        return -1;
    if (s->out) {
        sodium_memzero(s->out, s->out_cap);
        free(s->out);
    }
    s->out = n;
    s->out_cap = cap;
    return 0;
}

unsigned char *coil__sshd_packet_begin(coil__sshd *s, size_t min_room, size_t *room)
{
    if (!s || s->state == COIL__SSHD_DEAD || !s->lower || min_room > MAX_PAYLOAD)
        return NULL;
    if (out_reserve(s, min_room ? min_room : 1) != 0)
        return NULL;
    size_t r = s->out_cap - 5 - COIL__SSHC_OVERHEAD;
    if (r > MAX_PAYLOAD)
        r = MAX_PAYLOAD;
    if (room)
        *room = r;
    return s->out + 5;
}

static void start_kex(coil__sshd *s);

static void check_rekey(coil__sshd *s)
{
    if (s->kex_running || s->kex_count == 0 || s->state == COIL__SSHD_DEAD)
        return;
    uint64_t limit = s->srv->o.rekey_bytes;
    if (s->tx_bytes >= limit || s->rx_bytes >= limit || s->tx_packets >= REKEY_PACKETS ||
        s->rx_packets >= REKEY_PACKETS)
        start_kex(s);
}

/* A message that may go out while a key exchange runs (RFC 4253 7.1:
 * transport generic messages but SERVICE_*, and the kex messages). */
static int kex_message(unsigned char msg)
{
    return (msg >= 1 && msg <= 4) || (msg >= 20 && msg <= 49);
}

/* Seal what is at s->out + 5 and write it below. */
static int seal_and_write(coil__sshd *s, size_t len)
{
    size_t n = coil__sshc_seal(&s->tx, s->tx_seq, s->out, len);
    if (n == 0)
        return -1;
    s->tx_seq++;
    s->tx_bytes += n;
    s->tx_packets++;
    int rc = coil_transport_write(s->lower, s->out, n);
    return rc == 0 ? 0 : -1;
}

int coil__sshd_packet_end(coil__sshd *s, size_t len)
{
    if (!s || s->state == COIL__SSHD_DEAD || !s->lower || len == 0 || len > MAX_PAYLOAD ||
        5 + len + COIL__SSHC_OVERHEAD > s->out_cap)
        return -1;
    unsigned char msg = s->out[5];
    if (s->kex_running && !s->kex_sent_newkeys && !kex_message(msg)) {
        if (s->held_bytes + len > HELD_MAX) {
            coil__sshd_disconnect(
                s, COIL__SSH_DISCONNECT_BY_APPLICATION,
                "more than %d bytes of output held during a key exchange", HELD_MAX);
            return -1;
        }
        struct coil__sshd_held *h = malloc(sizeof *h + len);
        if (!h)
            return -1;
        h->next = NULL;
        h->len = len;
        memcpy(h->data, s->out + 5, len);
        if (s->held_tail)
            s->held_tail->next = h;
        else
            s->held_head = h;
        s->held_tail = h;
        s->held_bytes += len;
        return 0;
    }
    if (seal_and_write(s, len) != 0)
        return -1;
    check_rekey(s);
    return 0;
}

int coil__sshd_send(coil__sshd *s, const void *payload, size_t len)
{
    size_t room;
    unsigned char *p = coil__sshd_packet_begin(s, len, &room);
    if (!p)
        return -1;
    memcpy(p, payload, len);
    return coil__sshd_packet_end(s, len);
}

int coil__sshd_can_send_data(const coil__sshd *s)
{
    return s && s->state == COIL__SSHD_OPEN && s->lower && !s->kex_running &&
           !s->lower_full;
}

/* Send what was held during the key exchange (after our NEWKEYS). */
static void held_flush(coil__sshd *s)
{
    while (s->held_head && s->state != COIL__SSHD_DEAD) {
        struct coil__sshd_held *h = s->held_head;
        s->held_head = h->next;
        if (!s->held_head)
            s->held_tail = NULL;
        s->held_bytes -= h->len;
        size_t room;
        unsigned char *p = coil__sshd_packet_begin(s, h->len, &room);
        if (p) {
            memcpy(p, h->data, h->len);
            coil__sshd_packet_end(s, h->len);
        }
        sodium_memzero(h->data, h->len);
        free(h);
    }
}

/* Printable copy of text from the network for a log line. */
static void printable(char *dst, size_t size, const unsigned char *src, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < size; i++)
        dst[j++] = (src[i] >= ' ' && src[i] <= '~') ? (char)src[i] : '?';
    dst[j] = 0;
}

static void end_with(coil__sshd *s, coil_failure *why)
{
    if (!s->end_reason)
        s->end_reason = why;
    else
        coil_failure_free(why);
}

void coil__sshd_disconnect(coil__sshd *s, int code, const char *fmt, ...)
{
    if (!s || s->state == COIL__SSHD_DEAD)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    coil_log(COIL_LOG_INFO, LOG_MODULE, "%s: %s: %s", s->peer, reason_name(code), msg);
    if (s->lower && s->state != COIL__SSHD_VERSION) {
        unsigned char buf[320];
        coil__sshw w;
        coil__sshw_init(&w, buf, sizeof buf);
        coil__sshw_u8(&w, COIL__SSH_MSG_DISCONNECT);
        coil__sshw_u32(&w, (uint32_t)code);
        coil__sshw_cstring(&w, msg);
        coil__sshw_cstring(&w, "");
        size_t room;
        unsigned char *p = w.bad ? NULL : coil__sshd_packet_begin(s, w.len, &room);
        if (p) {
            /* sealed and written directly: never held, never a rekey */
            memcpy(p, buf, w.len);
            seal_and_write(s, w.len);
        }
    }
    end_with(s, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECLOSED,
                                 "SSH server disconnected %s: %s: %s", s->peer,
                                 reason_name(code), msg));
    s->state = COIL__SSHD_DEAD;
    held_drop(s);
    stop_idle_timer(s);
    if (s->lower)
        coil_transport_lose_connection(s->lower);
}

void coil__sshd_authenticated(coil__sshd *s)
{
    if (!s || s->state == COIL__SSHD_DEAD)
        return;
    if (s->state == COIL__SSHD_AUTH)
        s->state = COIL__SSHD_OPEN;
    if (s->counted_unauth)
        s->srv->stats.logins++;
    uncount_unauth(s);
}

/* ======================================================================
 * Key exchange
 * ====================================================================== */

static void start_kex(coil__sshd *s)
{
    if (s->kex_running || s->state == COIL__SSHD_DEAD)
        return;
    if (!s->kexinit_s) {
        s->kexinit_s = malloc(1024);
        if (!s->kexinit_s) {
            coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_BY_APPLICATION,
                                  "out of memory");
            return;
        }
    }
    size_t n = coil__kex_build_kexinit(s->kexinit_s, 1024, s->kex_count == 0,
                                       s->srv->host_ecdsa != NULL);
    if (n == 0) {
        coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_KEY_EXCHANGE_FAILED,
                              "could not build our KEXINIT");
        return;
    }
    s->kexinit_s_len = n;
    s->kex_running = 1;
    s->kex_got_kexinit = 0;
    s->kex_sent_newkeys = 0;
    s->kex_got_newkeys = 0;
    s->kex_replied = 0;
    s->ignore_next_kex_packet = 0;
    if (s->kex_count > 0)
        coil_log(COIL_LOG_DEBUG, LOG_MODULE, "%s: key re-exchange begins", s->peer);
    coil__sshd_send(s, s->kexinit_s, n);
}

static void describe_algs(const coil__sshd *s, char *buf, size_t size)
{
    const coil__kexalgs *a = &s->algs;
    if (coil__sshc_is_aead(a->cipher_s2c) || !a->mac_s2c[0])
        snprintf(buf, size, "%s", a->cipher_s2c);
    else
        snprintf(buf, size, "%s %s", a->cipher_s2c, a->mac_s2c);
}

static void kex_finish(coil__sshd *s)
{
    s->kex_running = 0;
    s->kex_got_kexinit = 0;
    s->kex_sent_newkeys = 0;
    s->kex_got_newkeys = 0;
    s->kex_replied = 0;
    if (s->kexinit_c) {
        free(s->kexinit_c);
        s->kexinit_c = NULL;
        s->kexinit_c_len = 0;
    }
    coil__kex_result_wipe(&s->kres);
    s->kex_count++;
    describe_algs(s, s->cipher_name, sizeof s->cipher_name);
    const coil__kexalgs *a = &s->algs;
    char mac[80] = "";
    if (!coil__sshc_is_aead(a->cipher_c2s) && a->mac_c2s[0])
        snprintf(mac, sizeof mac, ", mac %s", a->mac_c2s);
    if (s->kex_count == 1) {
        if (s->state == COIL__SSHD_KEX)
            s->state = COIL__SSHD_AUTH;
        coil_log(COIL_LOG_DEBUG, LOG_MODULE, "%s: kex %s, host key %s, cipher %s%s%s",
                 s->peer, a->kex, a->hostkey, a->cipher_c2s, mac,
                 s->strict ? ", strict kex" : "");
    } else {
        s->srv->stats.rekeys++;
        coil_log(COIL_LOG_DEBUG, LOG_MODULE,
                 "%s: key re-exchange %d done (%s, cipher %s%s)", s->peer,
                 s->kex_count - 1, a->kex, a->cipher_c2s, mac);
    }
    if (coil__sshd_can_send_data(s))
        coil__sshd_conn_writable(s);
}

static int disconnect_kex(coil__sshd *s, const char *why)
{
    coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_KEY_EXCHANGE_FAILED, "%s", why);
    return -1;
}

static int on_kexinit(coil__sshd *s, const unsigned char *p, size_t len, uint32_t seq)
{
    if (s->kex_got_kexinit) {
        coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_PROTOCOL_ERROR,
                              "a second KEXINIT during one key exchange");
        return -1;
    }
    if (len > COIL__SSHKEX_MAX_KEXINIT) {
        coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_KEY_EXCHANGE_FAILED,
                              "the client's KEXINIT is %zu bytes (coil reads at most %d)",
                              len, COIL__SSHKEX_MAX_KEXINIT);
        return -1;
    }
    if (!s->kex_running) {
        start_kex(s); /* the client begins a re-exchange */
        if (s->state == COIL__SSHD_DEAD)
            return -1;
    }
    int first = s->kex_count == 0;
    char why[256] = "";
    if (coil__kex_negotiate(p, len, first, s->srv->host_ecdsa != NULL, &s->algs, why,
                            sizeof why) != 0)
        return disconnect_kex(s, why[0] ? why : "key exchange negotiation failed");
    if (first) {
        s->strict = s->algs.strict;
        s->ext_info_c = s->algs.ext_info_c;
        if (s->strict && seq != 0) {
            coil__sshd_disconnect(
                s, COIL__SSH_DISCONNECT_PROTOCOL_ERROR,
                "strict key exchange: KEXINIT was not the client's first "
                "packet (%u packets came before it)",
                (unsigned)seq);
            return -1;
        }
    }
    free(s->kexinit_c);
    s->kexinit_c = malloc(len);
    if (!s->kexinit_c)
        return disconnect_kex(s, "out of memory");
    memcpy(s->kexinit_c, p, len);
    s->kexinit_c_len = len;
    s->kex_got_kexinit = 1;
    if (s->algs.first_kex_packet_follows && !s->algs.guess_right)
        s->ignore_next_kex_packet = 1;
    return 0;
}

static int derive_dir(coil__sshd *s, coil__sshc *c, const char *cipher, const char *mac,
                      char l_iv, char l_key, char l_mac, int encrypt)
{
    const char *m = (mac && *mac && !coil__sshc_is_aead(cipher)) ? mac : "none";
    coil__sshc_sizes sz;
    if (coil__sshc_sizes_of(cipher, m, &sz) != 0 || sz.iv_len > 64 || sz.key_len > 64 ||
        sz.mac_key_len > 64)
        return -1;
    unsigned char iv[64], key[64], mk[64];
    const unsigned char *sid = s->session_id;
    if (sz.iv_len)
        coil__kex_derive(&s->kres, sid, 32, l_iv, iv, sz.iv_len);
    if (sz.key_len)
        coil__kex_derive(&s->kres, sid, 32, l_key, key, sz.key_len);
    if (sz.mac_key_len)
        coil__kex_derive(&s->kres, sid, 32, l_mac, mk, sz.mac_key_len);
    coil__sshc_free(c);
    int rc = coil__sshc_init(c, cipher, m, iv, key, mk, encrypt);
    sodium_memzero(iv, sizeof iv);
    sodium_memzero(key, sizeof key);
    sodium_memzero(mk, sizeof mk);
    return rc;
}

static void send_ext_info(coil__sshd *s)
{
    unsigned char buf[256];
    coil__sshw w;
    coil__sshw_init(&w, buf, sizeof buf);
    coil__sshw_u8(&w, COIL__SSH_MSG_EXT_INFO);
    coil__sshw_u32(&w, 1);
    coil__sshw_cstring(&w, "server-sig-algs");
    coil__sshw_cstring(&w, s->srv->o.allow_ssh_rsa_sha1
                               ? "ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,"
                                 "rsa-sha2-256,ssh-rsa"
                               : "ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,"
                                 "rsa-sha2-256");
    if (!w.bad)
        coil__sshd_send(s, buf, w.len);
}

/* NEWKEYS one way (ours sent, or the client's received): the keys taken at
 * the key exchange replace the old ones, and the counts that trigger the
 * next rekey start again; strict kex also restarts the sequence number. */
static void take_keys(coil__sshd *s, coil__sshc *keys, coil__sshc *pending, uint32_t *seq,
                      uint64_t *bytes, uint64_t *packets)
{
    coil__sshc_free(keys);
    *keys = *pending;
    memset(pending, 0, sizeof *pending);
    if (s->strict)
        *seq = 0;
    *bytes = 0;
    *packets = 0;
}

static int on_ecdh_init(coil__sshd *s, const unsigned char *p, size_t len)
{
    if (!s->kex_got_kexinit || s->kex_replied) {
        coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_PROTOCOL_ERROR,
                              s->kex_replied
                                  ? "a second KEX_ECDH_INIT in one key exchange"
                                  : "KEX_ECDH_INIT before KEXINIT");
        return -1;
    }
    const coil__sshkey *hk = s->srv->host_ed25519;
    if (s->srv->host_ecdsa &&
        strcmp(s->algs.hostkey, coil__sshkey_name(s->srv->host_ecdsa)) == 0)
        hk = s->srv->host_ecdsa;
    size_t room;
    unsigned char *reply = coil__sshd_packet_begin(s, 1024, &room);
    if (!reply)
        return -1;
    size_t reply_len = 0;
    char why[256] = "";
    if (coil__kex_ecdh_reply(hk, s->client_version, s->srv->version_line, s->kexinit_c,
                             s->kexinit_c_len, s->kexinit_s, s->kexinit_s_len, p, len,
                             reply, room, &reply_len, &s->kres, why, sizeof why) != 0)
        return disconnect_kex(s, why[0] ? why : "the key exchange failed");
    s->kex_replied = 1;
    if (!s->have_session_id) {
        memcpy(s->session_id, s->kres.H, 32);
        s->have_session_id = 1;
    }
    if (derive_dir(s, &s->pending_tx, s->algs.cipher_s2c, s->algs.mac_s2c, 'B', 'D', 'F',
                   1) != 0 ||
        derive_dir(s, &s->pending_rx, s->algs.cipher_c2s, s->algs.mac_c2s, 'A', 'C', 'E',
                   0) != 0) {
        coil__kex_result_wipe(&s->kres);
        return disconnect_kex(s, "could not set up the negotiated cipher");
    }
    coil__kex_result_wipe(&s->kres);
    if (coil__sshd_packet_end(s, reply_len) != 0)
        return -1;
    unsigned char nk = COIL__SSH_MSG_NEWKEYS;
    if (coil__sshd_send(s, &nk, 1) != 0)
        return -1;
    /* our direction switches now */
    take_keys(s, &s->tx, &s->pending_tx, &s->tx_seq, &s->tx_bytes, &s->tx_packets);
    s->kex_sent_newkeys = 1;
    if (s->kex_count == 0 && s->ext_info_c)
        send_ext_info(s);
    held_flush(s);
    if (s->state == COIL__SSHD_DEAD)
        return -1;
    if (s->kex_got_newkeys)
        kex_finish(s);
    return 0;
}

static int on_newkeys(coil__sshd *s)
{
    if (!s->kex_sent_newkeys || s->kex_got_newkeys) {
        coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_PROTOCOL_ERROR,
                              "NEWKEYS before the key exchange reply");
        return -1;
    }
    take_keys(s, &s->rx, &s->pending_rx, &s->rx_seq, &s->rx_bytes, &s->rx_packets);
    s->kex_got_newkeys = 1;
    kex_finish(s);
    return 0;
}

/* ======================================================================
 * Received packets: the allowlist
 * ====================================================================== */

static int send_unimplemented(coil__sshd *s, uint32_t seq)
{
    unsigned char b[5];
    b[0] = COIL__SSH_MSG_UNIMPLEMENTED;
    coil__ssh_put32(b + 1, seq);
    coil__sshd_send(s, b, sizeof b);
    return 0;
}

static int protocol_error(coil__sshd *s, const char *fmt, unsigned msg)
{
    coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_PROTOCOL_ERROR, fmt, msg);
    return -1;
}

static int on_client_disconnect(coil__sshd *s, const unsigned char *p, size_t len)
{
    coil__sshr r;
    coil__sshr_init(&r, p + 1, len - 1);
    uint32_t code = 0;
    coil__sshs desc = {0};
    coil__sshr_u32(&r, &code);
    coil__sshr_string(&r, &desc, 1024);
    char text[160];
    printable(text, sizeof text, desc.p, r.bad ? 0 : desc.len);
    coil_log(COIL_LOG_INFO, LOG_MODULE, "%s: the client disconnected: %u (%s)%s%s",
             s->peer, (unsigned)code, reason_name((int)code), text[0] ? ": " : "", text);
    end_with(s, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECLOSED,
                                 "the SSH client %s disconnected: %s%s%s", s->peer,
                                 reason_name((int)code), text[0] ? ": " : "", text));
    s->state = COIL__SSHD_DEAD;
    held_drop(s);
    stop_idle_timer(s);
    if (s->lower)
        coil_transport_lose_connection(s->lower);
    return -1;
}

static int on_service_request(coil__sshd *s, const unsigned char *p, size_t len)
{
    coil__sshr r;
    coil__sshr_init(&r, p + 1, len - 1);
    coil__sshs name;
    coil__sshr_string(&r, &name, 64);
    if (coil__sshr_done(&r, 1) != 0)
        return protocol_error(s, "malformed SERVICE_REQUEST (message %u)", p[0]);
    if (!coil__sshs_eq(name, "ssh-userauth")) {
        char text[80];
        printable(text, sizeof text, name.p, name.len);
        coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_SERVICE_NOT_AVAILABLE,
                              "service '%s' not available (only ssh-userauth)", text);
        return -1;
    }
    unsigned char buf[32];
    coil__sshw w;
    coil__sshw_init(&w, buf, sizeof buf);
    coil__sshw_u8(&w, COIL__SSH_MSG_SERVICE_ACCEPT);
    coil__sshw_cstring(&w, "ssh-userauth");
    if (coil__sshd_send(s, buf, w.len) != 0)
        return -1;
    s->auth.service_ok = 1;
    return 0;
}

static int handle_packet(coil__sshd *s, const unsigned char *p, size_t len, uint32_t seq)
{
    if (len == 0)
        return protocol_error(s, "an empty packet (%u bytes of payload)", 0);
    unsigned msg = p[0];
    if (s->ignore_next_kex_packet) {
        /* the client guessed the kex wrong: its guessed packet is dropped */
        s->ignore_next_kex_packet = 0;
        return 0;
    }
    if (msg == COIL__SSH_MSG_DISCONNECT)
        return on_client_disconnect(s, p, len);

    if (s->kex_count == 0) {
        /* the first key exchange */
        switch (msg) {
        case COIL__SSH_MSG_KEXINIT:
            return on_kexinit(s, p, len, seq);
        case COIL__SSH_MSG_KEX_ECDH_INIT:
            return on_ecdh_init(s, p, len);
        case COIL__SSH_MSG_NEWKEYS:
            return on_newkeys(s);
        case COIL__SSH_MSG_IGNORE:
        case COIL__SSH_MSG_DEBUG:
        case COIL__SSH_MSG_UNIMPLEMENTED:
            if (s->kex_got_kexinit && s->strict)
                return protocol_error(
                    s,
                    "strict key exchange: message %u during the initial "
                    "key exchange",
                    msg);
            return 0;
        default:
            if (s->strict)
                return protocol_error(
                    s,
                    "strict key exchange: message %u during the initial "
                    "key exchange",
                    msg);
            return protocol_error(s, "message %u before the key exchange finished", msg);
        }
    }

    if (s->kex_got_kexinit) {
        /* a re-exchange the client has joined */
        switch (msg) {
        case COIL__SSH_MSG_KEX_ECDH_INIT:
            return on_ecdh_init(s, p, len);
        case COIL__SSH_MSG_NEWKEYS:
            return on_newkeys(s);
        case COIL__SSH_MSG_IGNORE:
        case COIL__SSH_MSG_DEBUG:
        case COIL__SSH_MSG_UNIMPLEMENTED:
            return 0;
        default:
            return protocol_error(s, "message %u during a key re-exchange", msg);
        }
    }

    switch (msg) {
    case COIL__SSH_MSG_IGNORE:
    case COIL__SSH_MSG_DEBUG:
        return 0;
    case COIL__SSH_MSG_UNIMPLEMENTED:
        coil_log(COIL_LOG_DEBUG, LOG_MODULE,
                 "%s: the client did not understand one of our packets", s->peer);
        return 0;
    case COIL__SSH_MSG_SERVICE_REQUEST:
        return on_service_request(s, p, len);
    case COIL__SSH_MSG_EXT_INFO:
        return 0;
    case COIL__SSH_MSG_KEXINIT:
        return on_kexinit(s, p, len, seq);
    case COIL__SSH_MSG_SERVICE_ACCEPT:
    case COIL__SSH_MSG_NEWKEYS:
    case COIL__SSH_MSG_KEX_ECDH_INIT:
    case COIL__SSH_MSG_KEX_ECDH_REPLY:
        return protocol_error(s, "unexpected message %u", msg);
    default:
        break;
    }
    if (msg >= 50 && msg <= 79) {
        if (!s->auth.service_ok)
            return protocol_error(s,
                                  "authentication message %u before the ssh-userauth "
                                  "service was requested",
                                  msg);
        if (s->auth.done || s->state != COIL__SSHD_AUTH)
            return 0; /* logged in already: ignored */
        return coil__sshd_auth_packet(s, p, len);
    }
    if (msg >= 80 && msg <= 127) {
        if (s->state != COIL__SSHD_OPEN)
            return protocol_error(s, "message %u before authentication", msg);
        return coil__sshd_conn_packet(s, p, len);
    }
    return send_unimplemented(s, seq);
}

/* ======================================================================
 * The packet loop
 * ====================================================================== */

static void mismatch(coil__sshd *s, const char *why)
{
    static const char text[] = "Protocol mismatch.\r\n";
    coil_log(COIL_LOG_INFO, LOG_MODULE, "%s: protocol mismatch: %s", s->peer, why);
    end_with(s, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECLOSED,
                                 "SSH server: %s: protocol mismatch: %s", s->peer, why));
    s->state = COIL__SSHD_DEAD;
    stop_idle_timer(s);
    if (s->lower) {
        coil_transport_write(s->lower, text, sizeof text - 1);
        coil_transport_lose_connection(s->lower);
    }
}

/* The identification line: 1 when taken, 0 when more bytes are needed,
 * -1 when the connection ended. */
static int take_version(coil__sshd *s)
{
    unsigned char *b = s->in + s->in_start;
    size_t avail = s->in_end - s->in_start;
    size_t lim = avail < VERSION_MAX ? avail : VERSION_MAX;
    unsigned char *nl = memchr(b, '\n', lim);
    if (!nl) {
        if (avail >= VERSION_MAX) {
            mismatch(s, "no identification line in the first 255 bytes");
            return -1;
        }
        return 0;
    }
    size_t n = (size_t)(nl - b);
    size_t used = n + 1;
    if (n > 0 && b[n - 1] == '\r')
        n--;
    if (memchr(b, 0, n)) {
        mismatch(s, "a NUL byte in the identification line");
        return -1;
    }
    char line[VERSION_MAX + 1];
    memcpy(line, b, n);
    line[n] = 0;
    if (strncmp(line, "SSH-2.0-", 8) != 0 && strncmp(line, "SSH-1.99-", 9) != 0) {
        char shown[80];
        printable(shown, sizeof shown, b, n < 64 ? n : 64);
        char why[128];
        snprintf(why, sizeof why, "the client sent '%s', not SSH-2.0", shown);
        mismatch(s, why);
        return -1;
    }
    snprintf(s->client_version, sizeof s->client_version, "%s", line);
    s->in_start += used;
    s->state = COIL__SSHD_KEX;
    char shown[VERSION_MAX + 1];
    printable(shown, sizeof shown, (const unsigned char *)line, n);
    coil_log(COIL_LOG_DEBUG, LOG_MODULE, "%s: client %s", s->peer, shown);
    return 1;
}

static void process_input(coil__sshd *s)
{
    if (s->in_loop)
        return;
    if (s->spill_len) {
        if (in_append(s, s->spill, s->spill_len) != 0) {
            coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_BY_APPLICATION,
                                  "too much input buffered");
            return;
        }
        s->spill_len = 0;
    }
    s->in_loop = 1;
    coil__sshd_ref(s);
    while (s->state != COIL__SSHD_DEAD && !s->input_held && s->lower) {
        if (s->state == COIL__SSHD_VERSION) {
            int rc = take_version(s);
            if (rc <= 0)
                break;
            continue;
        }
        unsigned char *b = s->in + s->in_start;
        size_t avail = s->in_end - s->in_start;
        if (!s->rx_peeked) {
            if (avail < coil__sshc_peek_need(&s->rx))
                break;
            uint32_t plen;
            if (coil__sshc_peek(&s->rx, s->rx_seq, b, &plen) != 0) {
                coil__sshd_disconnect(
                    s, COIL__SSH_DISCONNECT_PROTOCOL_ERROR,
                    "bad packet length (a corrupt or not an SSH packet)");
                break;
            }
            s->rx_packet_length = plen;
            s->rx_peeked = 1;
        }
        size_t wire = coil__sshc_wire_len(&s->rx, s->rx_packet_length);
        if (avail < wire)
            break;
        unsigned char *payload;
        size_t plen;
        if (coil__sshc_open(&s->rx, s->rx_seq, b, s->rx_packet_length, &payload, &plen) !=
            0) {
            coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_MAC_ERROR,
                                  "corrupt packet (bad MAC, tag or padding)");
            break;
        }
        s->rx_peeked = 0;
        s->in_start += wire;
        uint32_t seq = s->rx_seq++;
        s->rx_bytes += wire;
        s->rx_packets++;
        handle_packet(s, payload, plen, seq);
        if (s->state != COIL__SSHD_DEAD)
            check_rekey(s);
    }
    if (s->in_start == s->in_end)
        s->in_start = s->in_end = 0;
    s->in_loop = 0;
    coil__sshd_unref(s);
}

/* Room for `len` more bytes after the `used` first of *buf (capacity *cap):
 * a buffer twice as large until it fits (16 KiB at first, IN_HARD_MAX at
 * most), the old one wiped and freed. 0, or -1 past the bound or out of
 * memory (*buf unchanged). */
static int reserve(unsigned char **buf, size_t *cap, size_t used, size_t len)
{
    size_t need = used + len;
    if (need > IN_HARD_MAX)
        return -1;
    size_t ncap = *cap ? *cap : 16 * 1024;
    while (ncap < need)
        ncap *= 2;
    if (ncap > IN_HARD_MAX)
        ncap = IN_HARD_MAX;
    unsigned char *n = malloc(ncap);
    if (!n)
        return -1;
    if (*buf) {
        memcpy(n, *buf, used);
        sodium_memzero(*buf, *cap);
        free(*buf);
    }
    *buf = n;
    *cap = ncap;
    return 0;
}

/* Append bytes to the input buffer, moving and growing it as needed
 * (never with the packet loop on the stack). 0, or -1 past the bound. */
static int in_append(coil__sshd *s, const void *data, size_t len)
{
    if (s->in_start == s->in_end)
        s->in_start = s->in_end = 0;
    if (s->in_cap - s->in_end < len && s->in_start > 0) {
        memmove(s->in, s->in + s->in_start, s->in_end - s->in_start);
        s->in_end -= s->in_start;
        s->in_start = 0;
    }
    if (s->in_cap - s->in_end < len && reserve(&s->in, &s->in_cap, s->in_end, len) != 0)
        return -1;
    memcpy(s->in + s->in_end, data, len);
    s->in_end += len;
    return 0;
}

static int spill_append(coil__sshd *s, const void *data, size_t len)
{
    if (s->spill_cap - s->spill_len < len &&
        reserve(&s->spill, &s->spill_cap, s->spill_len, len) != 0)
        return -1;
    memcpy(s->spill + s->spill_len, data, len);
    s->spill_len += len;
    return 0;
}

static void sshd_data_received(coil_protocol *p, const void *data, size_t len)
{
    coil__sshd *s = coil__sshd_of(p);
    if (s->state == COIL__SSHD_DEAD || len == 0)
        return;
    s->last_rx = coil_reactor_seconds(s->r);
    if (s->in_loop) {
        /* delivered from inside a callback of ours: keep it for later */
        if (spill_append(s, data, len) != 0)
            coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_BY_APPLICATION,
                                  "too much input buffered");
        else
            kick(s);
        return;
    }
    coil__sshd_ref(s);
    if (s->spill_len) {
        if (in_append(s, s->spill, s->spill_len) != 0)
            goto toomuch;
        s->spill_len = 0;
    }
    if (in_append(s, data, len) != 0)
        goto toomuch;
    process_input(s);
    update_reading(s);
    coil__sshd_unref(s);
    return;
toomuch:
    coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_BY_APPLICATION,
                          "more than %d bytes of input buffered", IN_HARD_MAX);
    coil__sshd_unref(s);
}

/* ======================================================================
 * The protocol on the transport below
 * ====================================================================== */

static int idle_cb(void *arg)
{
    coil__sshd *s = arg;
    coil_timer_release(s->idle_timer);
    s->idle_timer = NULL;
    if (s->state == COIL__SSHD_DEAD) {
        coil__sshd_unref(s);
        return 0;
    }
    double idle = s->srv->o.idle_timeout;
    double quiet = coil_reactor_seconds(s->r) - s->last_rx;
    if (quiet + 1e-9 >= idle) {
        coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_BY_APPLICATION,
                              "no data from the client for %g seconds (idle_timeout)",
                              idle);
    } else {
        s->idle_timer = coil_reactor_call_later(s->r, idle - quiet, idle_cb, s);
        if (s->idle_timer)
            return 0; /* keeps its reference */
    }
    coil__sshd_unref(s);
    return 0;
}

static void sshd_connection_made(coil_protocol *p)
{
    coil__sshd *s = coil__sshd_of(p);
    s->lower = p->transport;
    s->made = 1;
    s->last_rx = coil_reactor_seconds(s->r);
    if (out_reserve(s, OUT_ROOM_START) != 0) {
        coil_log(COIL_LOG_ERROR, LOG_MODULE, "%s: out of memory", s->peer);
        s->state = COIL__SSHD_DEAD;
        coil_transport_abort_connection(s->lower);
        return;
    }
    if (!s->in) {
        s->in = malloc(16 * 1024);
        if (!s->in) {
            s->state = COIL__SSHD_DEAD;
            coil_transport_abort_connection(s->lower);
            return;
        }
        s->in_cap = 16 * 1024;
    }
    coil_transport_register_producer(s->lower, &s->prod, 1);
    char line[300];
    int n = snprintf(line, sizeof line, "%s\r\n", s->srv->version_line);
    coil_transport_write(s->lower, line, (size_t)n);
    start_kex(s);
    if (s->state == COIL__SSHD_DEAD)
        return;
    if (s->srv->o.idle_timeout > 0) {
        s->idle_timer = coil_reactor_call_later(s->r, s->srv->o.idle_timeout, idle_cb, s);
        if (s->idle_timer)
            coil__sshd_ref(s);
    }
    coil__sshd_auth_start(s);
}

static void sshd_connection_lost(coil_protocol *p, const coil_failure *reason)
{
    coil__sshd *s = coil__sshd_of(p);
    coil__sshd_ref(s);
    s->state = COIL__SSHD_DEAD;
    stop_idle_timer(s);
    held_drop(s);
    release_counts(s);
    if (!s->end_reason && reason) {
        char text[256];
        coil_failure_format(reason, text, sizeof text);
        coil_log(COIL_LOG_DEBUG, LOG_MODULE, "%s: connection ended: %s", s->peer, text);
        s->end_reason = coil_failure_copy(reason);
    }
    if (s->made) {
        coil__sshd_auth_stop(s);
        coil__sshd_conn_lost(s, s->end_reason ? s->end_reason : reason);
    }
    s->lower = NULL;
    coil__sshd_unref(s);
}

static void sshd_destroy(coil_protocol *p)
{
    coil__sshd *s = coil__sshd_of(p);
    s->state = COIL__SSHD_DEAD;
    s->lower = NULL;
    release_counts(s);
    coil__sshd_unref(s);
}

static const coil_protocol_ops sshd_ops = {
    .connection_made = sshd_connection_made,
    .data_received = sshd_data_received,
    .connection_lost = sshd_connection_lost,
    .destroy = sshd_destroy,
};

/* ======================================================================
 * Test hooks
 * ====================================================================== */

void coil__sshd_test_skip_kex(coil__sshd *s, const char *user)
{
    if (!s || s->state == COIL__SSHD_DEAD)
        return;
    snprintf(s->client_version, sizeof s->client_version, "SSH-2.0-coil-test");
    s->in_start = s->in_end = 0;
    s->rx_peeked = 0;
    held_drop(s);
    coil__sshc_free(&s->rx);
    coil__sshc_free(&s->tx);
    coil__sshc_init_none(&s->rx, 0);
    coil__sshc_init_none(&s->tx, 1);
    s->rx_seq = s->tx_seq = 0;
    s->rx_bytes = s->tx_bytes = s->rx_packets = s->tx_packets = 0;
    s->kex_running = 0;
    s->kex_got_kexinit = s->kex_sent_newkeys = s->kex_got_newkeys = s->kex_replied = 0;
    s->ignore_next_kex_packet = 0;
    s->kex_count = 1;
    s->strict = 0;
    s->ext_info_c = 0;
    memset(&s->algs, 0, sizeof s->algs);
    snprintf(s->algs.kex, sizeof s->algs.kex, "none");
    snprintf(s->algs.hostkey, sizeof s->algs.hostkey, "none");
    snprintf(s->algs.cipher_c2s, sizeof s->algs.cipher_c2s, "none");
    snprintf(s->algs.cipher_s2c, sizeof s->algs.cipher_s2c, "none");
    free(s->kexinit_c);
    s->kexinit_c = NULL;
    s->kexinit_c_len = 0;
    memset(s->session_id, 0x5a, sizeof s->session_id);
    s->have_session_id = 1;
    snprintf(s->cipher_name, sizeof s->cipher_name, "none");
    s->state = COIL__SSHD_AUTH;
    s->auth.service_ok = 1;
    if (user) {
        snprintf(s->auth.user, sizeof s->auth.user, "%s", user);
        snprintf(s->auth.method, sizeof s->auth.method, "none");
        s->auth.done = 1;
        coil__sshd_auth_stop(s); /* no grace timer for a connection logged in */
        coil__sshd_authenticated(s);
    }
}

size_t coil__sshd_test_frame(const void *payload, size_t len, unsigned char *out,
                             size_t cap)
{
    size_t pad = 8 - (5 + len) % 8;
    if (pad < 4)
        pad += 8;
    size_t total = 5 + len + pad;
    if (len > COIL__SSH_MAX_PACKET || total > cap)
        return 0;
    coil__ssh_put32(out, (uint32_t)(1 + len + pad));
    out[4] = (unsigned char)pad;
    if (len)
        memmove(out + 5, payload, len);
    memset(out + 5 + len, 0, pad);
    return total;
}
