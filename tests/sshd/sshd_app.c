/* The interop tests' SSH server: see sshd_app.h. */
#include "sshd_app.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

struct sshd_app {
    coil_reactor *r;
    coil_ssh_server *srv;
    coil_listener *listener;
    int port;
    int log_stats, quiet;
    coil_factory exec_factory, shell_factory, relay_factory;
    char alice_hash[COIL_SSH_PASSWORD_HASH_SIZE];
    char dummy_hash[COIL_SSH_PASSWORD_HASH_SIZE];
};

static void log_stats(sshd_app *a, const char *when)
{
    coil_ssh_server_stats st;
    coil_ssh_server_get_stats(a->srv, &st);
    fprintf(stderr,
            "stats (%s): connections=%zu unauthenticated=%zu channels=%zu logins=%" PRIu64
            " auth_failures=%" PRIu64 " rekeys=%" PRIu64 " refused=%" PRIu64 "\n",
            when, st.connections, st.unauthenticated, st.channels, st.logins,
            st.auth_failures, st.rekeys, st.refused);
}

/* ---- authentication ---------------------------------------------------------- */

/* Thread-pool thread: reads the two hashes only (written before the
 * server started). */
static int check_password(void *arg, const char *user, const char *password, size_t len)
{
    sshd_app *a = arg;
    int known = strcmp(user, "alice") == 0;
    int ok =
        coil_ssh_password_verify(known ? a->alice_hash : a->dummy_hash, password, len);
    return known && ok;
}

/* ---- exec and shell channels --------------------------------------------------- */

enum { CMD_ECHO, CMD_SINK, CMD_SOURCE, CMD_DONE };

#define SOURCE_CHUNK (32 * 1024)

typedef struct cmd {
    coil_protocol base; /* first */
    coil_producer prod; /* echo: pauses our reading; source: our writer */
    sshd_app *app;
    int kind;
    int paused;
    uint64_t total, done; /* source: bytes to write / written; sink: read */
    crypto_hash_sha256_state sha;
} cmd;

/* 251 * 131 + SOURCE_CHUNK bytes of the pattern: chunk k starts at offset
 * (bytes written) % 251. */
static unsigned char pattern_buf[251 * 131 + SOURCE_CHUNK];
static int pattern_ready;

static cmd *cmd_of_prod(coil_producer *p)
{
    return (cmd *)((char *)p - offsetof(cmd, prod));
}

static void source_pump(cmd *c)
{
    coil_transport *t = c->base.transport;
    while (t && c->kind == CMD_SOURCE && !c->paused && c->done < c->total) {
        size_t n = SOURCE_CHUNK;
        if (n > c->total - c->done)
            n = (size_t)(c->total - c->done);
        if (coil_transport_write(t, pattern_buf + c->done % 251, n) != 0)
            return;
        c->done += n;
    }
    if (t && c->kind == CMD_SOURCE && c->done >= c->total) {
        c->kind = CMD_DONE;
        coil_transport_unregister_producer(t);
        coil_transport_lose_connection(t);
    }
}

static void prod_pause(coil_producer *p)
{
    cmd *c = cmd_of_prod(p);
    c->paused = 1;
    if (c->kind == CMD_ECHO && c->base.transport)
        coil_transport_pause_reading(c->base.transport);
}

static void prod_resume(coil_producer *p)
{
    cmd *c = cmd_of_prod(p);
    c->paused = 0;
    if (c->kind == CMD_ECHO && c->base.transport)
        coil_transport_resume_reading(c->base.transport);
    else if (c->kind == CMD_SOURCE)
        source_pump(c);
}

static void prod_stop(coil_producer *p)
{
    cmd_of_prod(p)->paused = 1;
}

static const coil_producer_ops cmd_prod_ops = {prod_pause, prod_resume, prod_stop};

static void finish(coil_transport *t, int status)
{
    coil_ssh_server_channel_set_exit(t, status);
    coil_transport_lose_connection(t);
}

static void say(coil_transport *t, const char *fmt, ...) COIL_PRINTF(2, 3);
static void say(coil_transport *t, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        coil_transport_write(t, line,
                             (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void cmd_made(coil_protocol *p)
{
    cmd *c = (cmd *)p;
    coil_transport *t = p->transport;
    const coil_ssh_channel_info *in = coil_ssh_server_channel_info(t);
    if (!in) {
        fprintf(stderr, "channel: not an SSH server channel\n");
        coil_transport_abort_connection(t);
        return;
    }
    if (!c->app->quiet)
        fprintf(stderr,
                "channel: %s '%s' user=%s method=%s key=%s %s cipher=%s client=%s\n",
                in->request, in->command, in->user, in->auth_method, in->key_type,
                in->key_fingerprint, in->cipher, in->client_version);
    const char *command = strcmp(in->request, "exec") == 0 ? in->command : "cat";
    c->prod.ops = &cmd_prod_ops;
    if (strcmp(command, "cat") == 0) {
        c->kind = CMD_ECHO;
        coil_transport_register_producer(t, &c->prod, 1);
    } else if (strcmp(command, "sink") == 0) {
        c->kind = CMD_SINK;
        crypto_hash_sha256_init(&c->sha);
    } else if (strncmp(command, "source ", 7) == 0) {
        char *end;
        c->total = strtoull(command + 7, &end, 10);
        if (*end) {
            coil_ssh_server_channel_write_stderr(t, "source: bad count\n", 18);
            finish(t, 2);
            return;
        }
        c->kind = CMD_SOURCE;
        coil_transport_register_producer(t, &c->prod, 1);
        source_pump(c);
    } else if (strncmp(command, "exit ", 5) == 0) {
        c->kind = CMD_DONE;
        finish(t, atoi(command + 5));
    } else if (strcmp(command, "whoami") == 0) {
        c->kind = CMD_DONE;
        say(t,
            "user=%s method=%s key_type=%s fingerprint=%s cipher=%s client=%s request=%s "
            "command=%s pty=%d term=%s\n",
            in->user, in->auth_method, in->key_type, in->key_fingerprint, in->cipher,
            in->client_version, in->request, in->command, in->has_pty, in->term);
        finish(t, 0);
    } else if (strcmp(command, "stats") == 0) {
        c->kind = CMD_DONE;
        coil_ssh_server_stats st;
        coil_ssh_server_get_stats(c->app->srv, &st);
        say(t,
            "connections=%zu unauthenticated=%zu channels=%zu logins=%" PRIu64
            " auth_failures=%" PRIu64 " rekeys=%" PRIu64 " refused=%" PRIu64 "\n",
            st.connections, st.unauthenticated, st.channels, st.logins, st.auth_failures,
            st.rekeys, st.refused);
        finish(t, 0);
    } else {
        c->kind = CMD_DONE;
        char msg[300];
        int n = snprintf(msg, sizeof msg, "unknown command: %.200s\n", command);
        coil_ssh_server_channel_write_stderr(t, msg, (size_t)n);
        finish(t, 127);
    }
}

static void cmd_data(coil_protocol *p, const void *data, size_t len)
{
    cmd *c = (cmd *)p;
    if (c->kind == CMD_ECHO) {
        coil_transport_write(p->transport, data, len);
    } else if (c->kind == CMD_SINK) {
        crypto_hash_sha256_update(&c->sha, data, len);
        c->done += len;
    }
}

static void cmd_read_lost(coil_protocol *p)
{
    cmd *c = (cmd *)p;
    coil_transport *t = p->transport;
    if (c->kind == CMD_ECHO) {
        c->kind = CMD_DONE;
        coil_transport_unregister_producer(t);
        finish(t, 0);
    } else if (c->kind == CMD_SINK) {
        unsigned char h[crypto_hash_sha256_BYTES];
        char hex[2 * sizeof h + 1];
        crypto_hash_sha256_final(&c->sha, h);
        sodium_bin2hex(hex, sizeof hex, h, sizeof h);
        c->kind = CMD_DONE;
        say(t, "%" PRIu64 " %s\n", c->done, hex);
        finish(t, 0);
    }
    /* source and the one-shot commands: the client's EOF changes nothing. */
}

static void cmd_lost(coil_protocol *p, const coil_failure *reason)
{
    cmd *c = (cmd *)p;
    if (c->kind == CMD_SOURCE && c->done < c->total)
        fprintf(stderr,
                "channel: source ended after %" PRIu64 " of %" PRIu64 " bytes: %s\n",
                c->done, c->total, reason ? coil_failure_message(reason) : "?");
    if (c->app->log_stats)
        log_stats(c->app, "channel end");
}

static void cmd_destroy(coil_protocol *p)
{
    free(p);
}

static const coil_protocol_ops cmd_ops = {
    .connection_made = cmd_made,
    .data_received = cmd_data,
    .read_connection_lost = cmd_read_lost,
    .connection_lost = cmd_lost,
    .destroy = cmd_destroy,
};

static coil_protocol *cmd_build(coil_factory *f, const coil_address *peer)
{
    (void)peer;
    cmd *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->base.ops = &cmd_ops;
    c->app = f->user;
    return &c->base;
}

static const coil_factory_ops cmd_factory_ops = {.build_protocol = cmd_build};

/* ---- direct-tcpip: a relay to 127.0.0.1:PORT ----------------------------------- */

typedef struct relay relay;

typedef struct side {
    coil_protocol p;    /* first */
    coil_producer prod; /* registered on the OTHER side's transport */
    relay *rl;
    int alive, ended, read_eof, write_shut;
} side;

struct relay {
    side ch, tcp; /* the SSH channel, the TCP connection */
    int refs;
    coil_endpoint *to;
};

static void relay_unref(relay *rl)
{
    if (--rl->refs > 0)
        return;
    coil_endpoint_free(rl->to);
    free(rl);
}

static side *other(side *s)
{
    return s == &s->rl->ch ? &s->rl->tcp : &s->rl->ch;
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

static const coil_producer_ops side_prod_ops = {side_pause, side_resume, side_stop};

static void maybe_close(side *s)
{
    if (s->alive && s->read_eof && s->write_shut)
        coil_transport_lose_connection(s->p.transport);
}

static void connect_failed(coil_deferred *d, void *arg)
{
    relay *rl = arg;
    coil_failure *f = coil_deferred_take_failure(d);
    fprintf(stderr, "direct-tcpip: %s\n", f ? coil_failure_message(f) : "connect failed");
    coil_failure_free(f);
    if (rl->ch.alive)
        coil_transport_lose_connection(rl->ch.p.transport);
    relay_unref(rl);
}

static void connect_done(coil_deferred *d, void *arg)
{
    (void)d;
    relay_unref(arg);
}

static void side_made(coil_protocol *p)
{
    side *s = (side *)p;
    side *o = other(s);
    relay *rl = s->rl;
    s->alive = 1;
    if (s == &rl->ch) {
        /* Nowhere to put the client's bytes until the TCP side is up. */
        coil_transport_pause_reading(p->transport);
        const coil_ssh_channel_info *in = coil_ssh_server_channel_info(p->transport);
        const char *colon = in ? strrchr(in->command, ':') : NULL;
        char desc[160];
        coil_failure *err = NULL;
        if (!colon ||
            snprintf(desc, sizeof desc, "tcp:127.0.0.1:%s", colon + 1) >=
                (int)sizeof desc ||
            coil_endpoint_client(desc, &rl->to, &err) != 0) {
            fprintf(stderr, "direct-tcpip: bad target '%s': %s\n", in ? in->command : "?",
                    err ? coil_failure_message(err) : "no port");
            coil_failure_free(err);
            coil_transport_lose_connection(p->transport);
            return;
        }
        rl->refs++; /* the TCP side, until it is destroyed */
        rl->refs++; /* the deferred's callbacks */
        coil_deferred *d =
            coil_connect_protocol(p->transport->reactor, rl->to, &rl->tcp.p);
        if (!d) {
            rl->refs--;
            coil_transport_lose_connection(p->transport);
            return;
        }
        coil_deferred_add_callbacks(d, connect_done, connect_failed, rl);
        coil_deferred_unref(d);
        return;
    }
    /* The TCP side is up: each side throttles the other, then bytes flow. */
    if (!o->alive) {
        coil_transport_lose_connection(p->transport);
        return;
    }
    coil_transport_register_producer(o->p.transport, &s->prod, 1);
    coil_transport_register_producer(p->transport, &o->prod, 1);
    coil_transport_resume_reading(o->p.transport);
    if (o->read_eof && !s->write_shut) {
        s->write_shut = 1;
        coil_transport_lose_write_connection(p->transport);
        maybe_close(o);
    }
}

static void side_data(coil_protocol *p, const void *data, size_t len)
{
    side *o = other((side *)p);
    if (o->alive && !o->write_shut)
        coil_transport_write(o->p.transport, data, len);
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
    } else if (!o->alive && o->ended) {
        coil_transport_lose_connection(p->transport);
        return;
    }
    maybe_close(s);
}

static void side_lost(coil_protocol *p, const coil_failure *reason)
{
    (void)reason;
    side *s = (side *)p;
    side *o = other(s);
    s->alive = 0;
    s->ended = 1;
    if (o->alive) {
        coil_transport_unregister_producer(o->p.transport);
        coil_transport_lose_connection(o->p.transport);
    }
}

static void side_destroy(coil_protocol *p)
{
    side *s = (side *)p;
    s->ended = 1;
    relay_unref(s->rl);
}

static const coil_protocol_ops side_ops = {
    .connection_made = side_made,
    .data_received = side_data,
    .read_connection_lost = side_read_lost,
    .connection_lost = side_lost,
    .destroy = side_destroy,
};

static coil_protocol *relay_build(coil_factory *f, const coil_address *peer)
{
    (void)f, (void)peer;
    relay *rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    rl->refs = 1; /* the channel side */
    rl->ch.p.ops = rl->tcp.p.ops = &side_ops;
    rl->ch.prod.ops = rl->tcp.prod.ops = &side_prod_ops;
    rl->ch.rl = rl->tcp.rl = rl;
    return &rl->ch.p;
}

static const coil_factory_ops relay_factory_ops = {.build_protocol = relay_build};

static coil_factory *direct_tcpip(void *arg, const char *user, const char *host, int port)
{
    sshd_app *a = arg;
    (void)user, (void)port;
    if (strcmp(host, "127.0.0.1") != 0) {
        fprintf(stderr, "direct-tcpip to %s:%d refused (127.0.0.1 only)\n", host, port);
        return NULL;
    }
    return &a->relay_factory;
}

/* ---- the server -------------------------------------------------------------------- */

int sshd_app_start(coil_reactor *r, const sshd_app_options *opt, sshd_app **out,
                   coil_failure **err)
{
    *out = NULL;
    if (sodium_init() < 0) {
        *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL, "sodium_init failed");
        return COIL_EINVAL;
    }
    if (!pattern_ready) {
        for (size_t i = 0; i < sizeof pattern_buf; i++)
            pattern_buf[i] = sshd_app_pattern(i);
        pattern_ready = 1;
    }
    sshd_app *a = calloc(1, sizeof *a);
    if (!a) {
        *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory");
        return COIL_ENOMEM;
    }
    a->r = r;
    a->log_stats = opt->log_stats;
    a->quiet = opt->quiet;
    a->exec_factory.ops = a->shell_factory.ops = &cmd_factory_ops;
    a->exec_factory.user = a->shell_factory.user = a;
    a->relay_factory.ops = &relay_factory_ops;
    a->relay_factory.user = a;
    unsigned char dummy[32];
    randombytes_buf(dummy, sizeof dummy);
    int rc;
    if (coil_ssh_password_hash("secret", 6, a->alice_hash, sizeof a->alice_hash) != 0 ||
        coil_ssh_password_hash((const char *)dummy, sizeof dummy, a->dummy_hash,
                               sizeof a->dummy_hash) != 0) {
        *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                "coil_ssh_password_hash failed");
        rc = COIL_ENOMEM;
        goto fail;
    }
    coil_ssh_server_options o = {0};
    o.host_key_file = opt->host_key_file;
    o.generate_host_key = 1;
    o.authorized_keys_file = opt->authorized_keys_file;
    o.check_password = check_password;
    o.check_password_arg = a;
    o.max_auth_tries = opt->max_auth_tries;
    o.rekey_bytes = opt->rekey_bytes;
    o.shell = &a->shell_factory;
    o.exec = &a->exec_factory;
    o.direct_tcpip = direct_tcpip;
    o.direct_tcpip_arg = a;
    if (opt->tweak)
        opt->tweak(opt->tweak_arg, &o);
    if ((rc = coil_ssh_server_new(r, &o, &a->srv, err)) != 0)
        goto fail;
    coil_tcp_listen_options lo = {0};
    lo.interface = opt->interface ? opt->interface : "127.0.0.1";
    lo.port = opt->port;
    lo.backlog = 256;
    coil_address addr;
    if ((rc = coil_tcp_listen(r, &lo, coil_ssh_server_factory(a->srv), &a->listener,
                              err)) != 0)
        goto fail;
    if ((rc = coil_listener_get_host(a->listener, &addr)) != 0) {
        *err = coil_failure_new(COIL_DOMAIN_COIL, rc, "cannot read the listening port");
        goto fail;
    }
    a->port = coil_address_port(&addr);
    *out = a;
    return 0;
fail:
    sshd_app_stop(a);
    sshd_app_free(a);
    return rc;
}

int sshd_app_port(const sshd_app *a)
{
    return a->port;
}

coil_ssh_server *sshd_app_server(sshd_app *a)
{
    return a->srv;
}

void sshd_app_stop(sshd_app *a)
{
    if (a && a->listener) {
        coil_listener_close(a->listener);
        a->listener = NULL;
    }
}

void sshd_app_free(sshd_app *a)
{
    if (!a)
        return;
    sshd_app_stop(a);
    if (a->srv)
        coil_ssh_server_free(a->srv);
    sodium_memzero(a, sizeof *a);
    free(a);
}
