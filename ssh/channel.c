/* SSH channels as transports ("ssh-channel"), opening them through the
 * session's queue, the sweep that reads every channel fairly, and remote
 * forwarding (tcpip-forward).
 *
 * A channel is a coil__stream: the shared machinery keeps the write queue,
 * the water marks and the close states; the lower operations here map them
 * onto libssh2:
 *   send           libssh2_channel_write, at most 32,700 bytes a call, only
 *                  while the transport below the session is under its
 *                  high-water mark; 0 when the channel's window is full
 *   set_reading    stop / resume reading this channel: while it is not read,
 *                  its receive window is not re-granted and the far writer
 *                  stops (at most one window is buffered in libssh2)
 *   shutdown_write libssh2_channel_send_eof
 *   close          EOF + CLOSE, then linger until the far CLOSE (or
 *                  close_timeout); abort closes without waiting
 * libssh2 reads the packets of every channel into one list and raises no
 * event for them: the sweep (after every pass of the session) reads each
 * channel a bounded amount, round-robin, stdout and stderr, and finds EOF
 * and the far CLOSE. */
#include "ssh_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coil/log.h>

#define LOG_MODULE    "ssh"
#define WRITE_MAX     32700 /* libssh2_channel_write's own limit */
#define READ_CHUNK    (32 * 1024)
#define READ_BUDGET   (128 * 1024) /* per channel per sweep */
#define ACCEPT_BUDGET 16

static const coil_transport_ops channel_ops;

/* ---- the list of channels ------------------------------------------------------- */

static void list_add(coil_ssh_session *s, coil__ssh_channel *c)
{
    c->prev = NULL;
    c->next = s->ch_head;
    if (s->ch_head)
        s->ch_head->prev = c;
    s->ch_head = c;
    c->in_list = 1;
    s->n_channels++;
}

static void list_del(coil_ssh_session *s, coil__ssh_channel *c)
{
    if (!c->in_list)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->ch_head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->in_list = 0;
    s->n_channels--;
}

/* ---- operations' deferreds -------------------------------------------------------- */

void coil__ssh_op_free(coil__ssh_op *op)
{
    if (!op)
        return;
    if (op->proto) {
        coil_protocol *p = op->proto;
        op->proto = NULL;
        if (p->ops->destroy)
            p->ops->destroy(p);
    }
    coil_deferred_unref(op->d);
    free(op->strings);
    free(op);
}

void coil__ssh_free_lchannel(coil_ssh_session *s, LIBSSH2_CHANNEL *ch)
{
    if (!ch)
        return;
    /* Sends EOF and CLOSE if not sent yet (a dead session's send fails and
     * libssh2 frees the channel anyway). Channel numbers are never reused,
     * so a far CLOSE arriving later is ignored. While its CLOSE waits for a
     * packet libssh2 says EAGAIN: the sweep tries again. */
    if (libssh2_channel_free(ch) != LIBSSH2_ERROR_EAGAIN)
        return;
    if (s->n_zombies == s->cap_zombies) {
        size_t cap = s->cap_zombies ? s->cap_zombies * 2 : 8;
        LIBSSH2_CHANNEL **z = realloc(s->zombies, cap * sizeof *z);
        if (!z)
            return; /* freed with the session */
        s->zombies = z;
        s->cap_zombies = cap;
    }
    s->zombies[s->n_zombies++] = ch;
}

static void reap_zombies(coil_ssh_session *s)
{
    size_t j = 0;
    for (size_t i = 0; i < s->n_zombies; i++) {
        if (libssh2_channel_free(s->zombies[i]) == LIBSSH2_ERROR_EAGAIN)
            s->zombies[j++] = s->zombies[i];
    }
    s->n_zombies = j;
}

void coil__ssh_op_fail(coil_ssh_session *s, coil__ssh_op *op, const coil_failure *f)
{
    if (op->kind == COIL__OP_OPEN && op->proto && op->proto->ops->connection_failed)
        op->proto->ops->connection_failed(op->proto, f);
    if (op->lch) {
        coil__ssh_free_lchannel(s, op->lch);
        op->lch = NULL;
    }
    if (op->kind == COIL__OP_LISTEN && op->l) {
        coil_ssh_listener *l = op->l;
        l->pending = 0;
        if (l->closed) {
            free(l->bind_host);
            free(l);
        }
        op->l = NULL;
    }
    if (op->d)
        coil_deferred_errback(op->d, coil_failure_copy(f));
}

/* ---- describing a channel ---------------------------------------------------------- */

static void describe(char *buf, size_t size, const coil_ssh_channel_options *o)
{
    switch (o->type) {
    case COIL_SSH_DIRECT_TCPIP:
        snprintf(buf, size, "direct-tcpip %s:%d", o->host, o->port);
        break;
    case COIL_SSH_EXEC:
        snprintf(buf, size, "exec '%s'", o->command);
        break;
    case COIL_SSH_SHELL:
        snprintf(buf, size, "shell");
        break;
    default:
        snprintf(buf, size, "subsystem %s", o->command);
        break;
    }
}

/* ---- the stream's lower operations ----------------------------------------------------
 */

static ssize_t ch_send(coil__stream *st, const struct iovec *iov, int iovcnt)
{
    coil__ssh_channel *c = (coil__ssh_channel *)st;
    coil_ssh_session *s = c->s;
    if (!c->ch || !coil__ssh_session_usable(s) || s->lower_full || c->closing)
        return 0;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            if (s->lower_full)
                return (ssize_t)total;
            size_t n = left < WRITE_MAX ? left : WRITE_MAX;
            ssize_t w = libssh2_channel_write_ex(c->ch, 0, p, n);
            if (w == LIBSSH2_ERROR_EAGAIN || w == 0)
                return (ssize_t)total; /* the window is full: the sweep retries */
            if (w < 0) {
                int code;
                const char *msg = coil__ssh_errmsg(s, &code);
                if (w == LIBSSH2_ERROR_CHANNEL_CLOSED ||
                    w == LIBSSH2_ERROR_CHANNEL_EOF_SENT ||
                    w == LIBSSH2_ERROR_CHANNEL_UNKNOWN ||
                    w == LIBSSH2_ERROR_CHANNEL_FAILURE)
                    return total > 0 ? (ssize_t)total : -EPIPE;
                coil__ssh_fatal(s, (int)w, "writing to a channel");
                (void)msg;
                return (ssize_t)total;
            }
            total += (size_t)w;
            p += w;
            left -= (size_t)w;
        }
    }
    return (ssize_t)total;
}

static void ch_want_write(coil__stream *st, int on)
{
    coil__ssh_channel *c = (coil__ssh_channel *)st;
    c->want_write = on;
}

static void ch_set_reading(coil__stream *st, int on)
{
    coil__ssh_channel *c = (coil__ssh_channel *)st;
    int was = c->reading;
    c->reading = on;
    if (on && !was)
        coil__ssh_drive_soon(c->s); /* data already in libssh2 raises no event */
}

static int ch_shutdown_write(coil__stream *st)
{
    coil__ssh_channel *c = (coil__ssh_channel *)st;
    if (!c->ch || !coil__ssh_session_usable(c->s))
        return 0;
    int rc = libssh2_channel_send_eof(c->ch);
    if (rc == LIBSSH2_ERROR_EAGAIN)
        c->eof_pending = 1; /* a key exchange runs: the sweep sends it */
    return 0;
}

static void exit_info(coil__ssh_channel *c)
{
    if (!c->ch || c->type == COIL_SSH_DIRECT_TCPIP || c->exit_kind)
        return;
    char *sig = NULL;
    size_t siglen = 0;
    if (libssh2_channel_get_exit_signal(c->ch, &sig, &siglen, NULL, NULL, NULL, NULL) ==
            0 &&
        sig && siglen > 0) {
        snprintf(c->exit_signal, sizeof c->exit_signal, "%.*s", (int)siglen, sig);
        c->exit_kind = 2;
    } else {
        c->exit_status = libssh2_channel_get_exit_status(c->ch);
        c->exit_kind = 1;
    }
    if (sig)
        libssh2_free(c->s->ssh, sig);
}

/* The reason a channel ended cleanly: with the remote command's fate. */
static coil_failure *clean_reason(coil__ssh_channel *c)
{
    char where[300];
    coil__ssh_where(c->s, where, sizeof where);
    if (c->exit_kind == 1)
        return coil_failure_new(COIL_DOMAIN_COIL, COIL_ECLOSED,
                                "SSH channel %s on %s closed: exited with status %d",
                                c->desc, where, c->exit_status);
    if (c->exit_kind == 2)
        return coil_failure_new(COIL_DOMAIN_COIL, COIL_ECLOSED,
                                "SSH channel %s on %s closed: killed by signal %s",
                                c->desc, where, c->exit_signal);
    return coil_failure_new(COIL_DOMAIN_COIL, COIL_ECLOSED,
                            "SSH channel %s on %s closed cleanly", c->desc, where);
}

static int close_timeout_cb(void *arg)
{
    coil__ssh_channel *c = arg;
    coil_timer_release(c->close_timer);
    c->close_timer = NULL;
    if (!c->st.lingering)
        return 0;
    char where[300];
    coil__ssh_where(c->s, where, sizeof where);
    coil_failure *f = coil_failure_new(COIL_DOMAIN_COIL, COIL_ECONNLOST,
                                       "SSH channel %s on %s lost: the server did not "
                                       "close it within %g s of our close",
                                       c->desc, where, c->s->close_timeout);
    if (c->ch) {
        coil__ssh_free_lchannel(c->s, c->ch);
        c->ch = NULL;
    }
    coil__stream_close_done(&c->st, f);
    return 0;
}

static void ch_close(coil__stream *st, int abort)
{
    coil__ssh_channel *c = (coil__ssh_channel *)st;
    coil_ssh_session *s = c->s;
    c->reading = 0;
    c->want_write = 0;
    if (!c->ch)
        return;
    if (!coil__ssh_session_usable(s) || abort || c->remote_closed) {
        exit_info(c);
        coil__ssh_free_lchannel(s, c->ch);
        c->ch = NULL;
        return;
    }
    /* Clean: EOF + CLOSE from the sweep, then wait for the far CLOSE. */
    c->closing = 1;
    st->lingering = 1;
    c->close_timer = coil_reactor_call_later(s->r, s->close_timeout, close_timeout_cb, c);
    coil__ssh_drive_soon(s);
}

static void ch_lost(coil__stream *st, const coil_failure *reason)
{
    coil__ssh_channel *c = (coil__ssh_channel *)st;
    void (*fn)(void *, coil_transport *, const coil_failure *) = c->on_lost;
    c->on_lost = NULL;
    if (fn)
        fn(c->on_lost_arg, &st->base, reason);
}

int coil__ssh_channel_on_lost(coil_transport *t,
                              void (*fn)(void *arg, coil_transport *t,
                                         const coil_failure *reason),
                              void *arg)
{
    if (!t || t->ops != &channel_ops)
        return COIL_EINVAL;
    coil__ssh_channel *c = (coil__ssh_channel *)t;
    c->on_lost = fn;
    c->on_lost_arg = arg;
    return 0;
}

static void ch_free(coil__stream *st)
{
    coil__ssh_channel *c = (coil__ssh_channel *)st;
    coil_ssh_session *s = c->s;
    if (c->close_timer) {
        coil_timer_cancel(c->close_timer);
        coil_timer_release(c->close_timer);
    }
    if (c->ch)
        coil__ssh_free_lchannel(s, c->ch);
    list_del(s, c);
    coil_failure_free(c->close_reason);
    free(c);
    if (s->close_when_idle && s->ever_opened && s->n_channels == 0 &&
        s->state == COIL__SSH_READY && !s->close_requested) {
        s->close_requested = 1;
        coil_deferred *d = coil_ssh_session_close(s);
        coil_deferred_unref(d);
    } else if (s->state == COIL__SSH_CLOSING) {
        coil__ssh_drive_soon(s);
    }
    coil__ssh_unref(s);
}

/* Names longer than coil_address.name are cut. */
static void set_name(coil_address *a, const char *text)
{
    size_t n = strlen(text);
    if (n >= sizeof a->name)
        n = sizeof a->name - 1;
    memcpy(a->name, text, n);
    a->name[n] = 0;
}

static void ssh_addr(const coil__ssh_channel *c, coil_address *out, int peer)
{
    memset(out, 0, sizeof *out);
    out->kind = COIL_ADDR_SSH;
    char where[300], text[600];
    coil__ssh_where(c->s, where, sizeof where);
    if (peer)
        snprintf(text, sizeof text, "ssh:%s/%s", where, c->desc);
    else
        snprintf(text, sizeof text, "ssh:%s@%s", c->s->user, where);
    set_name(out, text);
}

static int ch_get_peer(const coil__stream *st, coil_address *out)
{
    ssh_addr((const coil__ssh_channel *)st, out, 1);
    return 0;
}

static int ch_get_host(const coil__stream *st, coil_address *out)
{
    ssh_addr((const coil__ssh_channel *)st, out, 0);
    return 0;
}

/* "a b" (or "a") into dst, cut to fit. */
static void put2(char *dst, size_t size, const char *a, const char *b)
{
    size_t la = strlen(a), lb = b ? strlen(b) : 0, n = 0;
    for (size_t i = 0; i < la && n + 1 < size; i++)
        dst[n++] = a[i];
    if (b && n + 1 < size)
        dst[n++] = ' ';
    for (size_t i = 0; i < lb && n + 1 < size; i++)
        dst[n++] = b[i];
    dst[n] = 0;
}

static void ch_info(const coil__stream *st, coil_transport_info *out)
{
    const coil__ssh_channel *c = (const coil__ssh_channel *)st;
    const coil_ssh_session *s = c->s;
    coil_transport_info li;
    const coil_transport_info *below = NULL;
    if (s->lower && !s->lower_gone && coil_transport_info_get(s->lower, &li) == 0) {
        out->peer_pid = li.peer_pid;
        out->peer_uid = li.peer_uid;
        out->peer_gid = li.peer_gid;
        below = &li;
    }
    coil_transport_layer_info *me = coil_transport_info_push(out, below, "ssh-channel");
    if (!me)
        return;
    put2(me->detail, sizeof me->detail, c->desc, NULL);
    if (!s->hs_done)
        return;
    put2(me->protocol, sizeof me->protocol, s->banner, NULL);
    put2(me->cipher, sizeof me->cipher, s->cipher, s->mac);
    put2(me->peer, sizeof me->peer, s->hk_type, s->hk_fp);
    me->verified = s->policy != COIL_SSH_HOST_KEY_INSECURE_ACCEPT_ANY;
}

static size_t ch_pending(const coil_transport *t)
{
    const coil__ssh_channel *c = (const coil__ssh_channel *)t;
    if (!c->ch)
        return 0;
    unsigned long avail = 0;
    libssh2_channel_window_read_ex(c->ch, &avail, NULL);
    return avail;
}

static const coil__stream_lower channel_lower = {
    .send = ch_send,
    .want_write = ch_want_write,
    .set_reading = ch_set_reading,
    .shutdown_write = ch_shutdown_write,
    .close = ch_close,
    .lost = ch_lost,
    .free = ch_free,
    .get_peer = ch_get_peer,
    .get_host = ch_get_host,
    .info = ch_info,
};

static const coil_transport_ops channel_ops = {
    .kind = "ssh-channel",
    .write = coil__stream_write,
    .writev = coil__stream_writev,
    .lose_connection = coil__stream_lose_connection,
    .abort_connection = coil__stream_abort_connection,
    .lose_write_connection = coil__stream_lose_write_connection,
    .get_peer = coil__stream_get_peer,
    .get_host = coil__stream_get_host,
    .pause_reading = coil__stream_pause_reading,
    .resume_reading = coil__stream_resume_reading,
    .register_producer = coil__stream_register_producer,
    .unregister_producer = coil__stream_unregister_producer,
    .start_tls = coil__stream_start_tls,
    .info = coil__stream_info,
    .pending = ch_pending,
};

/* A new channel transport for an open libssh2 channel: connection_made runs
 * inside. Returns it held (release with coil__stream_release), or NULL (the
 * protocol destroyed, the libssh2 channel freed). */
static coil__ssh_channel *channel_new(coil_ssh_session *s, LIBSSH2_CHANNEL *lch,
                                      coil_protocol *p, const char *desc, int type,
                                      const coil_ssh_channel_options *o)
{
    coil__ssh_channel *c = calloc(1, sizeof *c);
    if (!c) {
        coil__ssh_free_lchannel(s, lch);
        if (p->ops->destroy)
            p->ops->destroy(p);
        return NULL;
    }
    c->s = s;
    c->ch = lch;
    c->type = type;
    c->reading = 1;
    snprintf(c->desc, sizeof c->desc, "%s", desc);
    if (o) {
        c->on_stderr = o->on_stderr;
        c->stderr_arg = o->stderr_arg;
    }
    coil__ssh_ref(s);
    list_add(s, c);
    s->ever_opened = 1;
    coil__stream_init(&c->st, &channel_ops, &channel_lower, s->r, p);
    if (s->high_water > 0) {
        size_t low = s->low_water ? s->low_water : s->high_water / 4;
        if (low > s->high_water)
            low = s->high_water;
        coil_transport_set_water_marks(&c->st.base, s->high_water, low);
    }
    coil__stream_hold(&c->st);
    coil__stream_connected(&c->st);
    return c;
}

/* ---- opening -------------------------------------------------------------------------
 */

static void cancel_open(coil_deferred *d, void *arg)
{
    coil__ssh_op *op = arg;
    op->cancelled = 1;
}

coil_deferred *coil_ssh_open_channel(coil_ssh_session *s,
                                     const coil_ssh_channel_options *o, coil_protocol *p)
{
    if (!s || !o || !p) {
        if (p && p->ops->destroy)
            p->ops->destroy(p);
        return coil_deferred_fail(coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                                   "coil_ssh_open_channel: missing "
                                                   "session, options or protocol"));
    }
    const char *why = NULL;
    if (o->type == COIL_SSH_DIRECT_TCPIP &&
        (!o->host || !*o->host || o->port <= 0 || o->port > 65535))
        why = "direct-tcpip needs a host and a port (1-65535)";
    else if ((o->type == COIL_SSH_EXEC || o->type == COIL_SSH_SUBSYSTEM) &&
             (!o->command || !*o->command))
        why =
            o->type == COIL_SSH_EXEC ? "exec needs a command" : "subsystem needs a name";
    else if (o->type < COIL_SSH_DIRECT_TCPIP || o->type > COIL_SSH_SUBSYSTEM)
        why = "unknown channel type";
    if (why) {
        if (p->ops->destroy)
            p->ops->destroy(p);
        return coil_deferred_fail(coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                                   "coil_ssh_open_channel: %s", why));
    }
    if (s->state == COIL__SSH_DEAD || s->state == COIL__SSH_CLOSING) {
        if (p->ops->destroy)
            p->ops->destroy(p);
        char where[300];
        coil__ssh_where(s, where, sizeof where);
        if (s->end_reason)
            return coil_deferred_fail(coil_failure_wrap(
                coil_failure_copy(s->end_reason), COIL_DOMAIN_COIL, COIL_ECLOSED,
                "cannot open a channel: the SSH session with %s has ended", where));
        return coil_deferred_fail(coil_failure_new(COIL_DOMAIN_COIL, COIL_ECLOSED,
                                                   "cannot open a channel: the SSH "
                                                   "session with %s is closing",
                                                   where));
    }
    coil__ssh_op *op = calloc(1, sizeof *op);
    if (!op)
        goto nomem;
    op->kind = COIL__OP_OPEN;
    op->co = *o;
    size_t hl = o->host ? strlen(o->host) + 1 : 0;
    size_t cl = o->command ? strlen(o->command) + 1 : 0;
    size_t tl = o->term ? strlen(o->term) + 1 : 0;
    op->strings = malloc(hl + cl + tl + 1);
    if (!op->strings)
        goto nomem;
    char *q = op->strings;
    if (o->host) {
        memcpy(q, o->host, hl);
        op->co.host = q;
        q += hl;
    }
    if (o->command) {
        memcpy(q, o->command, cl);
        op->co.command = q;
        q += cl;
    }
    if (o->term) {
        memcpy(q, o->term, tl);
        op->co.term = q;
    }
    op->d = coil_deferred_new_cancellable(cancel_open, op);
    if (!op->d)
        goto nomem;
    op->proto = p;
    coil_deferred *ret = coil_deferred_ref(op->d);
    coil__ssh_enqueue(s, op);
    return ret;
nomem:
    if (op) {
        free(op->strings);
        free(op);
    }
    if (p->ops->destroy)
        p->ops->destroy(p);
    return NULL;
}

static int store_str(unsigned char *p, const char *str, size_t len)
{
    p[0] = (unsigned char)(len >> 24);
    p[1] = (unsigned char)(len >> 16);
    p[2] = (unsigned char)(len >> 8);
    p[3] = (unsigned char)len;
    memcpy(p + 4, str, len);
    return (int)(4 + len);
}

static int store_u32(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
    return 4;
}

/* The channel was refused: fail the open with what the server said. */
static int open_refused(coil_ssh_session *s, coil__ssh_op *op, int rc, const char *what)
{
    char where[300], desc[200];
    coil__ssh_where(s, where, sizeof where);
    if (op->co.type == COIL_SSH_DIRECT_TCPIP)
        snprintf(desc, sizeof desc, "direct-tcpip to %s:%d", op->co.host, op->co.port);
    else
        describe(desc, sizeof desc, &op->co);
    int code;
    const char *msg = coil__ssh_errmsg(s, &code);
    /* OpenSSH refuses session channels past MaxSessions (10 by default)
     * with "connect failed": say so. */
    const char *hint = op->co.type != COIL_SSH_DIRECT_TCPIP && !*what &&
                               strstr(msg, "connect failed") && s->n_channels >= 10
                           ? " (the server's limit of sessions per connection? "
                             "OpenSSH's MaxSessions is 10 by default)"
                           : "";
    coil_failure *f = coil_failure_new(COIL_DOMAIN_SSH, COIL_SSH_ECHANNEL,
                                       "%s%s refused by %s: %s%s (libssh2 error %d)",
                                       desc, what, where, msg, hint, rc);
    coil__ssh_op_fail(s, op, f);
    coil_failure_free(f);
    return 0;
}

int coil__ssh_open_step(coil_ssh_session *s, coil__ssh_op *op)
{
    /* Cancelled: at once, unless libssh2 is inside its one session-wide
     * channel open (abandoning that would hand its answer to the next
     * open); then once the answer is in (the channel is freed). */
    if (op->cancelled && (op->stage > 0 || !op->started)) {
        coil_failure *f =
            coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED, "channel open cancelled");
        coil__ssh_op_fail(s, op, f);
        coil_failure_free(f);
        return 0;
    }
    const coil_ssh_channel_options *o = &op->co;
    if (op->stage == 0 && s->state == COIL__SSH_CLOSING) {
        char where[300];
        coil__ssh_where(s, where, sizeof where);
        coil_failure *f = coil_failure_new(COIL_DOMAIN_COIL, COIL_ECLOSED,
                                           "cannot open a channel: the SSH session with "
                                           "%s is closing",
                                           where);
        coil__ssh_op_fail(s, op, f);
        coil_failure_free(f);
        return 0;
    }
    for (;;) {
        switch (op->stage) {
        case 0: {
            LIBSSH2_CHANNEL *lch;
            op->started = 1;
            unsigned win = (unsigned)s->window;
            if (o->type == COIL_SSH_DIRECT_TCPIP) {
                /* libssh2_channel_direct_tcpip_ex takes no window size: the
                 * same request, built here, through libssh2_channel_open_ex. */
                unsigned char msg[600];
                size_t hl = strlen(o->host);
                if (hl > 255)
                    hl = 255;
                int n = 0;
                n += store_str(msg + n, o->host, hl);
                n += store_u32(msg + n, (unsigned)o->port);
                n += store_str(msg + n, "127.0.0.1", 9);
                n += store_u32(msg + n, 0);
                lch = libssh2_channel_open_ex(s->ssh, "direct-tcpip", 12, win,
                                              LIBSSH2_CHANNEL_PACKET_DEFAULT, (char *)msg,
                                              (unsigned)n);
            } else {
                lch = libssh2_channel_open_ex(s->ssh, "session", 7, win,
                                              LIBSSH2_CHANNEL_PACKET_DEFAULT, NULL, 0);
            }
            if (!lch) {
                int rc = libssh2_session_last_errno(s->ssh);
                if (rc == LIBSSH2_ERROR_EAGAIN)
                    return 1;
                if (rc == LIBSSH2_ERROR_CHANNEL_FAILURE || rc == LIBSSH2_ERROR_ALLOC)
                    return open_refused(s, op, rc, "");
                coil__ssh_fatal(s, rc, "opening a channel");
                return -1;
            }
            op->lch = lch;
            if (op->cancelled) {
                coil_failure *f = coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED,
                                                   "channel open cancelled");
                coil__ssh_op_fail(s, op, f);
                coil_failure_free(f);
                return 0;
            }
            op->stage = o->type == COIL_SSH_DIRECT_TCPIP ? 3 : (o->pty ? 1 : 2);
            continue;
        }
        case 1: {
            const char *term = o->term ? o->term : "xterm";
            int rc = libssh2_channel_request_pty_ex(op->lch, term, (unsigned)strlen(term),
                                                    NULL, 0, o->cols > 0 ? o->cols : 80,
                                                    o->rows > 0 ? o->rows : 24, 0, 0);
            if (rc == LIBSSH2_ERROR_EAGAIN)
                return 1;
            if (rc != 0) {
                if (coil__ssh_is_session_error(rc)) {
                    coil__ssh_fatal(s, rc, "asking for a pty");
                    return -1;
                }
                return open_refused(s, op, rc, " (pty request)");
            }
            op->stage = 2;
            continue;
        }
        case 2: {
            int rc;
            if (o->type == COIL_SSH_EXEC)
                rc = libssh2_channel_process_startup(op->lch, "exec", 4, o->command,
                                                     (unsigned)strlen(o->command));
            else if (o->type == COIL_SSH_SHELL)
                rc = libssh2_channel_process_startup(op->lch, "shell", 5, NULL, 0);
            else
                rc = libssh2_channel_process_startup(op->lch, "subsystem", 9, o->command,
                                                     (unsigned)strlen(o->command));
            if (rc == LIBSSH2_ERROR_EAGAIN)
                return 1;
            if (rc != 0) {
                if (coil__ssh_is_session_error(rc)) {
                    coil__ssh_fatal(s, rc, "starting a command");
                    return -1;
                }
                return open_refused(s, op, rc, "");
            }
            op->stage = 3;
            continue;
        }
        default: {
            char desc[200];
            describe(desc, sizeof desc, o);
            coil_protocol *p = op->proto;
            LIBSSH2_CHANNEL *lch = op->lch;
            op->proto = NULL;
            op->lch = NULL;
            coil__ssh_channel *c = channel_new(s, lch, p, desc, o->type, o);
            if (!c) {
                coil_deferred_errback(
                    op->d,
                    coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory"));
                return 0;
            }
            coil_deferred_callback(op->d, &c->st.base, NULL);
            coil__stream_release(&c->st);
            return 0;
        }
        }
    }
}

/* ---- the sweep
 * ------------------------------------------------------------------------- */

static int session_error(int rc)
{
    switch (rc) {
    case LIBSSH2_ERROR_CHANNEL_FAILURE:
    case LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED:
    case LIBSSH2_ERROR_CHANNEL_UNKNOWN:
    case LIBSSH2_ERROR_CHANNEL_WINDOW_EXCEEDED:
    case LIBSSH2_ERROR_CHANNEL_PACKET_EXCEEDED:
    case LIBSSH2_ERROR_CHANNEL_CLOSED:
    case LIBSSH2_ERROR_CHANNEL_EOF_SENT:
    case LIBSSH2_ERROR_REQUEST_DENIED:
    case LIBSSH2_ERROR_EAGAIN:
    case LIBSSH2_ERROR_INVAL:
        return 0;
    default:
        return 1;
    }
}

int coil__ssh_is_session_error(int rc)
{
    return session_error(rc);
}

/* Read stream `id` of c, at most `budget` bytes; deliver (stdout), hand to
 * on_stderr or drop. Returns bytes read, or -1 when the session died. *ended
 * is set when the stream reports its end (0). */
static long read_stream(coil__ssh_channel *c, int id, size_t budget, int deliver,
                        int *ended)
{
    coil_ssh_session *s = c->s;
    if (!s->rbuf && !(s->rbuf = malloc(READ_CHUNK)))
        return 0;
    unsigned char *buf = s->rbuf;
    long total = 0;
    *ended = 0;
    while ((size_t)total < budget && c->ch) {
        ssize_t n = libssh2_channel_read_ex(c->ch, id, (char *)buf, READ_CHUNK);
        if (n == LIBSSH2_ERROR_EAGAIN)
            break;
        if (n == 0) {
            *ended = 1;
            break;
        }
        if (n < 0) {
            if (coil__ssh_is_session_error(n)) {
                coil__ssh_fatal(s, (int)n, "reading a channel");
                return -1;
            }
            *ended = 1;
            break;
        }
        total += n;
        if (id == 0) {
            if (deliver)
                coil__stream_data(&c->st, buf, (size_t)n);
        } else if (c->on_stderr && deliver) {
            c->on_stderr(c->stderr_arg, buf, (size_t)n);
        }
        if (s->state == COIL__SSH_DEAD)
            return -1;
        if (id == 0 && deliver && (!c->reading || c->st.state == COIL__STREAM_CLOSED))
            break; /* paused or closed from inside data_received */
    }
    return total;
}

/* One channel's share of a sweep. Returns 1 when it has more to read. */
static int sweep_one(coil__ssh_channel *c)
{
    coil_ssh_session *s = c->s;
    int more = 0, ended = 0;
    if (!c->ch)
        return 0;
    if (c->eof_pending) {
        int rc = libssh2_channel_send_eof(c->ch);
        if (rc != LIBSSH2_ERROR_EAGAIN)
            c->eof_pending = 0;
    }
    /* Writes first: window adjustments came with the last input. */
    if (c->want_write && !s->lower_full && c->st.state != COIL__STREAM_CLOSED)
        coil__stream_writable(&c->st);
    if (!c->ch || s->state == COIL__SSH_DEAD)
        return 0;
    int open = c->st.state != COIL__STREAM_CLOSED;
    /* stderr is always read (EOF waits for it); stdout while the protocol
     * reads, or to drop it while we close. */
    long n = 0;
    if (c->type != COIL_SSH_DIRECT_TCPIP) /* tcpip channels have no stderr */
        n = read_stream(c, 1, READ_BUDGET, open, &ended);
    if (n < 0)
        return 0;
    if ((size_t)n >= READ_BUDGET)
        more = 1;
    if (!c->ch)
        return 0;
    if ((c->reading && !c->eof_seen && open) || c->closing) {
        n = read_stream(c, 0, READ_BUDGET, open && !c->closing, &ended);
        if (n < 0)
            return 0;
        if ((size_t)n >= READ_BUDGET)
            more = 1;
        if (!c->ch)
            return 0;
        if (ended && !c->eof_seen && c->type == COIL_SSH_DIRECT_TCPIP &&
            libssh2_channel_eof(c->ch) == 0) {
            /* A server that sent extended data on a tcpip channel: drop it,
             * or EOF would never show. */
            int e2;
            if (read_stream(c, 1, READ_BUDGET, 0, &e2) < 0 || !c->ch)
                return 0;
        }
        if (ended && !c->eof_seen && libssh2_channel_eof(c->ch) == 1) {
            c->eof_seen = 1;
            if (open && !c->closing)
                coil__stream_eof(&c->st);
        }
    }
    if (!c->ch)
        return more;
    /* The far CLOSE. */
    if (c->closing && !c->close_sent) {
        int rc = libssh2_channel_close(c->ch);
        if (rc != LIBSSH2_ERROR_EAGAIN)
            c->close_sent = 1;
    }
    if ((c->eof_seen || c->closing) && !c->remote_closed && c->ch &&
        libssh2_channel_eof(c->ch) == 1) {
        int rc = libssh2_channel_wait_closed(c->ch);
        if (rc == 0)
            c->remote_closed = 1;
        else if (rc != LIBSSH2_ERROR_EAGAIN && coil__ssh_is_session_error(rc) &&
                 rc != LIBSSH2_ERROR_INVAL) {
            coil__ssh_fatal(s, rc, "waiting for a channel's close");
            return 0;
        }
    }
    if (c->remote_closed && c->ch) {
        exit_info(c);
        if (c->st.lingering) {
            if (c->close_timer) {
                coil_timer_cancel(c->close_timer);
                coil_timer_release(c->close_timer);
                c->close_timer = NULL;
            }
            libssh2_channel_close(c->ch);
            coil__ssh_free_lchannel(s, c->ch);
            c->ch = NULL;
            coil__stream_close_done(&c->st, clean_reason(c));
        } else if (c->st.state != COIL__STREAM_CLOSED) {
            /* The far side closed while ours was open or half open: the
             * end, and lost if bytes of ours could not go (as a reset on
             * TCP: sshd closes a direct-tcpip channel when its socket to
             * the far end breaks). */
            if (c->st.queued > 0) {
                char where[300];
                coil__ssh_where(s, where, sizeof where);
                coil__stream_lost(
                    &c->st, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECONNLOST,
                                             "SSH channel %s on %s lost: the server "
                                             "closed it with %zu bytes of ours "
                                             "not sent",
                                             c->desc, where, c->st.queued));
            } else {
                coil__stream_lost(&c->st, clean_reason(c));
            }
        }
    }
    return more;
}

static void accept_some(coil_ssh_listener *l);

int coil__ssh_sweep(coil_ssh_session *s)
{
    size_t n = s->n_channels;
    int more = 0;
    if (s->n_zombies)
        reap_zombies(s);
    if (n > 0) {
        coil__ssh_channel **v = malloc(n * sizeof *v);
        if (!v)
            return 1;
        size_t i = 0;
        for (coil__ssh_channel *c = s->ch_head; c && i < n; c = c->next) {
            coil__stream_hold(&c->st);
            v[i++] = c;
        }
        n = i;
        size_t start = n ? s->rr++ % n : 0;
        for (size_t k = 0; k < n && s->state != COIL__SSH_DEAD; k++)
            more |= sweep_one(v[(start + k) % n]);
        for (i = 0; i < n; i++)
            coil__stream_release(&v[i]->st);
        free(v);
    }
    for (coil_ssh_listener *l = s->l_head; l && s->state != COIL__SSH_DEAD;) {
        coil_ssh_listener *next = l->next;
        if (l->lls && !l->closed)
            accept_some(l);
        l = next;
    }
    return more;
}

/* The session's channels, each held (coil__stream_hold) so that none is
 * freed while a loop calls into them, in a new array of *n; NULL when there
 * are none or no memory. release_channels lets them go and frees it. */
static coil__ssh_channel **hold_channels(coil_ssh_session *s, size_t *n)
{
    *n = 0;
    size_t want = s->n_channels;
    if (want == 0)
        return NULL;
    coil__ssh_channel **v = malloc(want * sizeof *v);
    if (!v)
        return NULL;
    size_t i = 0;
    for (coil__ssh_channel *c = s->ch_head; c && i < want; c = c->next) {
        coil__stream_hold(&c->st);
        v[i++] = c;
    }
    *n = i;
    return v;
}

static void release_channels(coil__ssh_channel **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        coil__stream_release(&v[i]->st);
    free(v);
}

void coil__ssh_channels_lost(coil_ssh_session *s, const coil_failure *reason)
{
    size_t n;
    coil__ssh_channel **v = hold_channels(s, &n);
    if (!v)
        return;
    size_t i;
    for (i = 0; i < n; i++) {
        coil__ssh_channel *c = v[i];
        if (c->close_timer) {
            coil_timer_cancel(c->close_timer);
            coil_timer_release(c->close_timer);
            c->close_timer = NULL;
        }
        if (c->st.lingering)
            coil__stream_close_done(
                &c->st, coil_failure_wrap(coil_failure_copy(reason), COIL_DOMAIN_COIL,
                                          COIL_ECONNLOST,
                                          "SSH channel %s lost while closing", c->desc));
        else if (c->st.state != COIL__STREAM_CLOSED)
            coil__stream_lost(&c->st, coil_failure_wrap(coil_failure_copy(reason),
                                                        COIL_DOMAIN_COIL, COIL_ECONNLOST,
                                                        "SSH channel %s lost", c->desc));
    }
    release_channels(v, n);
}

void coil__ssh_channels_close(coil_ssh_session *s)
{
    size_t n;
    coil__ssh_channel **v = hold_channels(s, &n);
    if (!v)
        return;
    size_t i;
    for (i = 0; i < n; i++)
        coil_transport_lose_connection(&v[i]->st.base);
    release_channels(v, n);
}

/* ---- accessors
 * ---------------------------------------------------------------------------- */

int coil_ssh_channel_exit_status(const coil_transport *t, int *status,
                                 const char **signal)
{
    if (!t || t->ops != &channel_ops)
        return 0;
    const coil__ssh_channel *c = (const coil__ssh_channel *)t;
    if (c->exit_kind == 1) {
        if (status)
            *status = c->exit_status;
        return 1;
    }
    if (c->exit_kind == 2) {
        if (signal)
            *signal = c->exit_signal;
        return 2;
    }
    return 0;
}

coil_ssh_session *coil_ssh_channel_session(const coil_transport *t)
{
    if (!t || t->ops != &channel_ops)
        return NULL;
    return ((const coil__ssh_channel *)t)->s;
}

/* ---- remote forwarding
 * ---------------------------------------------------------------------- */

static void listener_unlink(coil_ssh_session *s, coil_ssh_listener *l)
{
    for (coil_ssh_listener **pp = &s->l_head; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            l->next = NULL;
            return;
        }
}

coil_deferred *coil_ssh_listen(coil_ssh_session *s, const char *bind_host, int port,
                               coil_factory *f)
{
    if (!s || !f || port < 0 || port > 65535)
        return coil_deferred_fail(coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                                   "coil_ssh_listen: bad arguments"));
    if (s->state == COIL__SSH_DEAD || s->state == COIL__SSH_CLOSING)
        return coil_deferred_fail(coil_failure_new(COIL_DOMAIN_COIL, COIL_ECLOSED,
                                                   "coil_ssh_listen: the SSH session has "
                                                   "ended"));
    coil_ssh_listener *l = calloc(1, sizeof *l);
    coil__ssh_op *op = calloc(1, sizeof *op);
    if (!l || !op || !(l->bind_host = strdup(bind_host ? bind_host : "localhost")))
        goto nomem;
    op->d = coil_deferred_new();
    if (!op->d)
        goto nomem;
    l->s = s;
    l->f = f;
    l->port_req = port;
    l->pending = 1;
    op->kind = COIL__OP_LISTEN;
    op->l = l;
    coil_deferred *ret = coil_deferred_ref(op->d);
    coil__ssh_enqueue(s, op);
    return ret;
nomem:
    if (l)
        free(l->bind_host);
    free(l);
    free(op);
    return NULL;
}

int coil__ssh_listen_step(coil_ssh_session *s, coil__ssh_op *op)
{
    coil_ssh_listener *l = op->l;
    int bound = 0;
    LIBSSH2_LISTENER *lls =
        libssh2_channel_forward_listen_ex(s->ssh, l->bind_host, l->port_req, &bound, 16);
    if (!lls) {
        int rc = libssh2_session_last_errno(s->ssh);
        if (rc == LIBSSH2_ERROR_EAGAIN)
            return 1;
        if (coil__ssh_is_session_error(rc) && rc != LIBSSH2_ERROR_PROTO) {
            coil__ssh_fatal(s, rc, "asking for tcpip-forward");
            return -1;
        }
        char where[300];
        coil__ssh_where(s, where, sizeof where);
        int code;
        const char *msg = coil__ssh_errmsg(s, &code);
        coil_failure *f = coil_failure_new(COIL_DOMAIN_SSH, COIL_SSH_ECHANNEL,
                                           "tcpip-forward on %s:%d refused by %s: %s",
                                           l->bind_host, l->port_req, where, msg);
        coil__ssh_op_fail(s, op, f);
        coil_failure_free(f);
        return 0;
    }
    l->pending = 0;
    op->l = NULL;
    l->lls = lls;
    l->port = l->port_req ? l->port_req : bound;
    if (l->closed) {
        /* Closed while the server was answering: cancel it at once. */
        coil__ssh_op *c = calloc(1, sizeof *c);
        if (c) {
            c->kind = COIL__OP_CANCEL;
            c->lls = lls;
            coil__ssh_enqueue(s, c);
        }
        free(l->bind_host);
        free(l);
        coil_deferred_errback(op->d, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED,
                                                      "the listener was closed"));
        return 0;
    }
    l->next = s->l_head;
    s->l_head = l;
    coil__ssh_ref(s);
    coil_factory_do_start(l->f);
    coil_deferred_callback(op->d, l, NULL);
    return 0;
}

int coil__ssh_cancel_step(coil_ssh_session *s, coil__ssh_op *op)
{
    int rc = libssh2_channel_forward_cancel(op->lls);
    if (rc == LIBSSH2_ERROR_EAGAIN)
        return 1;
    return 0;
}

static void accept_some(coil_ssh_listener *l)
{
    coil_ssh_session *s = l->s;
    for (int i = 0; i < ACCEPT_BUDGET && l->lls && !l->closed; i++) {
        LIBSSH2_CHANNEL *lch = libssh2_channel_forward_accept(l->lls);
        if (!lch) {
            int rc = libssh2_session_last_errno(s->ssh);
            if (rc != LIBSSH2_ERROR_EAGAIN && coil__ssh_is_session_error(rc) &&
                rc != LIBSSH2_ERROR_CHANNEL_UNKNOWN)
                coil__ssh_fatal(s, rc, "accepting a forwarded connection");
            return;
        }
        char desc[160], where[300];
        coil__ssh_where(s, where, sizeof where);
        snprintf(desc, sizeof desc, "forwarded-tcpip %s:%d", l->bind_host, l->port);
        coil_address peer;
        memset(&peer, 0, sizeof peer);
        peer.kind = COIL_ADDR_SSH;
        char text[600];
        snprintf(text, sizeof text, "ssh:%s/%s:%d", where, l->bind_host, l->port);
        set_name(&peer, text);
        coil_protocol *p = l->f->ops->build_protocol(l->f, &peer);
        if (!p) {
            coil__ssh_free_lchannel(s, lch);
            continue;
        }
        coil__ssh_channel *c = channel_new(s, lch, p, desc, COIL_SSH_DIRECT_TCPIP, NULL);
        if (c)
            coil__stream_release(&c->st);
    }
}

int coil_ssh_listener_port(const coil_ssh_listener *l)
{
    return l ? l->port : -1;
}

void coil_ssh_listener_close(coil_ssh_listener *l)
{
    if (!l || l->closed)
        return;
    l->closed = 1;
    if (l->pending)
        return; /* the LISTEN operation frees it */
    coil_ssh_session *s = l->s;
    listener_unlink(s, l);
    if (l->lls && coil__ssh_session_usable(s)) {
        coil__ssh_op *c = calloc(1, sizeof *c);
        if (c) {
            c->kind = COIL__OP_CANCEL;
            c->lls = l->lls;
            coil__ssh_enqueue(s, c);
        }
    }
    coil_factory_do_stop(l->f);
    free(l->bind_host);
    free(l);
    coil__ssh_unref(s);
}

void coil__ssh_listeners_free(coil_ssh_session *s)
{
    /* Only reached once every listener was closed (each holds a reference). */
    (void)s;
}
