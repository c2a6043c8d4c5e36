/* coil's SSH server: the connection protocol (RFC 4254), as OpenSSH's sshd
 * answers it; see server_private.h.
 *
 * Each channel is a coil__stream ("ssh-channel") once its protocol runs: a
 * session channel from its shell / exec / subsystem request, a direct-tcpip
 * channel from its open confirmation. The lower operations:
 *   send           CHANNEL_DATA packets built in place, each at most
 *                  min(client window, client max packet, our packet room);
 *                  0 while the window is closed or the connection may not
 *                  send data (key exchange, transport below full)
 *   set_reading    while paused, data is kept in a buffer bounded by our
 *                  window (the window is reopened only for bytes the
 *                  protocol took, so a paused protocol stops the client)
 *   shutdown_write EOF
 *   close          clean: [exit-status], EOF, CLOSE, then linger until the
 *                  client's CLOSE (or LINGER_TIMEOUT); abort: CLOSE at once
 * stderr (coil_ssh_server_channel_write_stderr) keeps its place among the
 * stdout bytes: each piece is tagged with the count of stdout bytes written
 * before it and goes out once those have.
 *
 * Channel numbers are reused only after both CLOSEs: a channel whose
 * transport is gone before the client's CLOSE stays in its slot (a zombie,
 * still counted against max_channels) until that CLOSE or the end of the
 * connection. */
#include "server_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coil/log.h>
#include <coil/tcp.h>

#define LOG_MODULE       "ssh-server"
#define LINGER_TIMEOUT   30.0 /* s to wait for the client's CLOSE after ours */
#define DATA_ROOM        (COIL__SSH_MAX_PACKET - 1024) /* data bytes per packet */
#define DELIVER_CHUNK    (32 * 1024) /* buffered bytes per data_received */
#define MAX_ENV          64
#define MAX_ENV_LEN      1024 /* "NAME=value" */
#define MAX_COMMAND      (16 * 1024)
#define MAX_TERM         128
#define MAX_MODES        1024
#define MAX_HOST         255
#define DEFAULT_WINDOW   (2u * 1024 * 1024)
#define DEFAULT_MAXPKT   (32u * 1024)
#define DEFAULT_CHANNELS 64
#define MAX_FORWARDS     16 /* tcpip-forward listeners per connection */

enum {
    OPEN_PROHIBITED = 1,
    OPEN_CONNECT_FAILED = 2,
    OPEN_UNKNOWN_TYPE = 3,
    OPEN_RESOURCE_SHORTAGE = 4
};
enum { KIND_SESSION, KIND_DIRECT_TCPIP, KIND_FORWARDED_TCPIP };
enum { REQ_NONE, REQ_SHELL, REQ_EXEC, REQ_SUBSYSTEM };

typedef struct relay relay;

typedef struct errchunk {
    struct errchunk *next;
    uint64_t pos; /* stdout bytes written before it */
    size_t off, len;
    unsigned char data[];
} errchunk;

struct coil__sshd_channel {
    coil__stream st; /* first: the transport, once started */
    coil__sshd *s;
    uint32_t id, peer_id;
    int kind, req;
    int started; /* st is initialised: the stream owns this memory */
    int torn;    /* the stream was torn down (zombie until the client's CLOSE) */
    int got_eof, got_close, sent_eof, sent_close;
    int eof_pending;  /* shutdown_write waits for stderr */
    int closing;      /* clean close running: stderr, exit, EOF, CLOSE */
    int reading;      /* the stream wants data */
    int want_write;   /* the stream has queued bytes */
    int drain_queued; /* a call_soon drain is pending */
    int exit_set, exit_status, exit_sent;

    /* windows */
    uint32_t win_size;   /* our window (o.window) */
    uint32_t local_win;  /* what the client may still send */
    uint32_t consumed;   /* taken by the protocol, not yet re-granted */
    uint32_t max_in;     /* our max packet */
    uint32_t remote_win; /* what we may still send */
    uint32_t remote_max; /* the client's max packet */

    /* input kept while the protocol paused reading (<= win_size) */
    unsigned char *in;
    size_t in_start, in_end, in_cap;

    /* stderr, in order with stdout */
    errchunk *err_head, *err_tail;
    uint64_t out_accepted, out_sent;

    coil_timer *linger;
    void (*on_resize)(void *arg, coil_transport *t);
    void *resize_arg;
    coil_address peer, host; /* the lower transport's, taken at open */

    /* info */
    coil_ssh_channel_info info;
    char *command;
    char term[MAX_TERM + 1];
    unsigned char *modes;
    size_t modes_len;
    char *env[MAX_ENV];
    char desc[128];

    /* forwarded-tcpip: a channel we opened; until the client's answer the
     * relay's channel side waits here (not yet a transport's protocol) */
    int we_opened, confirmed;
    relay *relay;
};

static const coil_transport_ops channel_ops;
static const coil__stream_lower channel_lower;
static void writable(coil__sshd_channel *c);
static void try_close(coil__sshd_channel *c);
static void relay_unopened(relay *rl);
static int protocol_error(coil__sshd *s, const char *what);

/* ---- small senders ----------------------------------------------------------------- */

static void send_u32s(coil__sshd *s, int msg, uint32_t a, int n2, uint32_t b)
{
    unsigned char buf[16];
    coil__sshw w;
    coil__sshw_init(&w, buf, sizeof buf);
    coil__sshw_u8(&w, (uint8_t)msg);
    coil__sshw_u32(&w, a);
    if (n2)
        coil__sshw_u32(&w, b);
    coil__sshd_send(s, buf, w.len);
}

static void send_open_failure(coil__sshd *s, uint32_t peer_id, uint32_t code,
                              const char *why)
{
    unsigned char buf[256];
    coil__sshw w;
    coil__sshw_init(&w, buf, sizeof buf);
    coil__sshw_u8(&w, COIL__SSH_MSG_CHANNEL_OPEN_FAILURE);
    coil__sshw_u32(&w, peer_id);
    coil__sshw_u32(&w, code);
    coil__sshw_cstring(&w, why);
    coil__sshw_cstring(&w, "");
    if (!w.bad)
        coil__sshd_send(s, buf, w.len);
}

static void send_reply(coil__sshd_channel *c, int ok)
{
    send_u32s(c->s, ok ? COIL__SSH_MSG_CHANNEL_SUCCESS : COIL__SSH_MSG_CHANNEL_FAILURE,
              c->peer_id, 0, 0);
}

static void send_eof(coil__sshd_channel *c)
{
    if (c->sent_eof || c->sent_close)
        return;
    c->sent_eof = 1;
    send_u32s(c->s, COIL__SSH_MSG_CHANNEL_EOF, c->peer_id, 0, 0);
}

static void send_close(coil__sshd_channel *c)
{
    if (c->sent_close)
        return;
    c->sent_close = 1;
    send_u32s(c->s, COIL__SSH_MSG_CHANNEL_CLOSE, c->peer_id, 0, 0);
}

static int alive(const coil__sshd *s)
{
    return !s->conn.lost && s->state != COIL__SSHD_DEAD && s->lower != NULL;
}

/* ---- slots and freeing --------------------------------------------------------------
 */

static void free_chan(coil__sshd_channel *c)
{
    coil__sshd *s = c->s;
    coil__sshd_conn *cn = &s->conn;
    if (c->id < cn->n_slots && cn->chans[c->id] == c) {
        cn->chans[c->id] = NULL;
        cn->n_open--;
        if (s->srv && s->srv->stats.channels > 0)
            s->srv->stats.channels--;
    }
    if (cn->n_open == 0) {
        free(cn->chans);
        cn->chans = NULL;
        cn->n_slots = 0;
    }
    if (c->linger) {
        coil_timer_cancel(c->linger);
        coil_timer_release(c->linger);
    }
    while (c->err_head) {
        errchunk *e = c->err_head;
        c->err_head = e->next;
        free(e);
    }
    if (c->relay) {
        relay *rl = c->relay;
        c->relay = NULL;
        relay_unopened(rl);
    }
    free(c->in);
    free(c->command);
    free(c->modes);
    for (size_t i = 0; i < c->info.n_env; i++)
        free(c->env[i]);
    free(c);
    coil__sshd_unref(s);
}

static uint32_t max_channels(const coil__sshd *s)
{
    int m = s->srv ? s->srv->o.max_channels : 0;
    return m > 0 ? (uint32_t)m : DEFAULT_CHANNELS;
}

/* A new channel in the lowest free slot, or NULL (no memory). */
static coil__sshd_channel *chan_new(coil__sshd *s, int kind, uint32_t peer_id,
                                    uint32_t win, uint32_t maxpkt)
{
    coil__sshd_conn *cn = &s->conn;
    uint32_t id = 0;
    while (id < cn->n_slots && cn->chans[id])
        id++;
    if (id == cn->n_slots) {
        uint32_t n = cn->n_slots ? cn->n_slots * 2 : 8;
        if (n > max_channels(s))
            n = max_channels(s);
        if (n <= id)
            return NULL;
        coil__sshd_channel **v = realloc(cn->chans, n * sizeof *v);
        if (!v)
            return NULL;
        memset(v + cn->n_slots, 0, (n - cn->n_slots) * sizeof *v);
        cn->chans = v;
        cn->n_slots = n;
    }
    coil__sshd_channel *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    const coil_ssh_server_options *o = s->srv ? &s->srv->o : NULL;
    c->s = s;
    c->id = id;
    c->peer_id = peer_id;
    c->kind = kind;
    c->reading = 1;
    c->win_size = o && o->window ? o->window : DEFAULT_WINDOW;
    c->max_in = o && o->max_packet ? o->max_packet : DEFAULT_MAXPKT;
    c->local_win = c->win_size;
    c->remote_win = win;
    c->remote_max = maxpkt;
    if (s->lower) {
        coil_transport_get_peer(s->lower, &c->peer);
        coil_transport_get_host(s->lower, &c->host);
    }
    coil_ssh_channel_info *in = &c->info;
    in->user = s->auth.user;
    in->auth_method = s->auth.method;
    in->key_type = s->auth.key_type;
    in->key_fingerprint = s->auth.key_fp;
    in->client_version = s->client_version;
    in->cipher = s->cipher_name;
    in->channel_type = kind == KIND_SESSION        ? "session"
                       : kind == KIND_DIRECT_TCPIP ? "direct-tcpip"
                                                   : "forwarded-tcpip";
    in->request = "";
    in->command = "";
    in->term = "";
    in->env = (const char *const *)c->env;
    coil__sshd_ref(s);
    cn->chans[id] = c;
    cn->n_open++;
    if (s->srv)
        s->srv->stats.channels++;
    return c;
}

static coil__sshd_channel *chan_of(coil__sshd *s, uint32_t id)
{
    return id < s->conn.n_slots ? s->conn.chans[id] : NULL;
}

/* ---- input ----------------------------------------------------------------------------
 */

static void maybe_adjust(coil__sshd_channel *c)
{
    if (c->consumed == 0 || c->sent_close || c->got_close || c->got_eof)
        return;
    if (c->local_win >= c->win_size / 2)
        return; /* batch: half a window consumed */
    uint32_t n = c->consumed;
    c->consumed = 0;
    c->local_win += n;
    send_u32s(c->s, COIL__SSH_MSG_CHANNEL_WINDOW_ADJUST, c->peer_id, 1, n);
}

static int stream_open(const coil__sshd_channel *c)
{
    return c->started && !c->torn && c->st.state == COIL__STREAM_OPEN;
}

/* Hand buffered input to the protocol while it reads; then a pending EOF. */
static void drain(coil__sshd_channel *c)
{
    while (c->in_end > c->in_start && c->reading && stream_open(c)) {
        size_t n = c->in_end - c->in_start;
        if (n > DELIVER_CHUNK)
            n = DELIVER_CHUNK;
        const unsigned char *p = c->in + c->in_start;
        c->in_start += n;
        c->consumed += (uint32_t)n;
        coil__stream_data(&c->st, p, n);
    }
    if (c->in_end == c->in_start) {
        c->in_start = c->in_end = 0;
        if (c->in_cap > DELIVER_CHUNK) { /* a big buffer goes once empty */
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
    }
    if (!c->torn)
        maybe_adjust(c);
    if (c->got_eof && c->in_end == c->in_start && stream_open(c) && !c->st.read_shut)
        coil__stream_eof(&c->st);
}

static int drain_soon(void *arg)
{
    coil__sshd_channel *c = arg;
    c->drain_queued = 0;
    if (!c->torn && alive(c->s))
        drain(c);
    coil__stream_release(&c->st);
    return 0;
}

static void schedule_drain(coil__sshd_channel *c)
{
    if (c->drain_queued || !c->started || c->torn)
        return;
    if (coil_reactor_call_soon(c->s->r, drain_soon, c) != 0)
        return;
    c->drain_queued = 1;
    coil__stream_hold(&c->st);
}

/* Keep n bytes for later (room is guaranteed by the window). */
static int keep(coil__sshd_channel *c, const unsigned char *p, size_t n)
{
    if (c->in_end + n > c->in_cap) {
        size_t used = c->in_end - c->in_start;
        if (c->in_start > 0) {
            memmove(c->in, c->in + c->in_start, used);
            c->in_start = 0;
            c->in_end = used;
        }
        if (used + n > c->in_cap) {
            size_t cap = c->in_cap ? c->in_cap : 16 * 1024;
            while (cap < used + n)
                cap *= 2;
            if (cap > c->win_size)
                cap = c->win_size;
            if (cap < used + n)
                return -1; /* cannot happen: the window bounds it */
            unsigned char *q = realloc(c->in, cap);
            if (!q)
                return -1;
            c->in = q;
            c->in_cap = cap;
        }
    }
    memcpy(c->in + c->in_end, p, n);
    c->in_end += n;
    return 0;
}

/* CHANNEL_DATA / EXTENDED_DATA: the window and packet size are checked by
 * the caller. */
static void data_in(coil__sshd_channel *c, const unsigned char *p, size_t n, int ext)
{
    c->local_win -= (uint32_t)n;
    if (ext || !stream_open(c) || c->got_eof) {
        /* Ignored (stderr from the client, no protocol yet, closing), but
         * the client may send that much again. */
        c->consumed += (uint32_t)n;
        maybe_adjust(c);
        return;
    }
    if (c->reading && c->in_end == c->in_start) {
        c->consumed += (uint32_t)n;
        coil__stream_data(&c->st, p, n);
        if (!c->torn)
            maybe_adjust(c);
        return;
    }
    if (keep(c, p, n) != 0) {
        coil__sshd_disconnect(c->s, COIL__SSH_DISCONNECT_BY_APPLICATION,
                              "out of memory buffering channel %u's data", c->id);
        return;
    }
    if (c->reading)
        schedule_drain(c);
}

/* ---- output ---------------------------------------------------------------------------
 */

/* One data packet of up to `max` bytes from iov (starting `skip` bytes in),
 * type 0 (stdout) or 1 (stderr). Returns the bytes sent, 0 when none may go. */
static size_t send_packet(coil__sshd_channel *c, int ext, const struct iovec *iov,
                          int iovcnt, size_t skip, size_t max)
{
    coil__sshd *s = c->s;
    size_t n = max;
    if (n > c->remote_win)
        n = c->remote_win;
    if (n > c->remote_max)
        n = c->remote_max;
    if (n > DATA_ROOM)
        n = DATA_ROOM;
    if (n == 0 || c->sent_close || c->sent_eof || !coil__sshd_can_send_data(s))
        return 0;
    size_t head = ext ? 13 : 9, room = 0;
    unsigned char *p = coil__sshd_packet_begin(s, head + n, &room);
    if (!p || room <= head)
        return 0;
    if (n > room - head)
        n = room - head;
    size_t got = 0;
    for (int i = 0; i < iovcnt && got < n; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        size_t k = len - skip < n - got ? len - skip : n - got;
        memcpy(p + head + got, (const unsigned char *)iov[i].iov_base + skip, k);
        got += k;
        skip = 0;
    }
    p[0] = ext ? COIL__SSH_MSG_CHANNEL_EXTENDED_DATA : COIL__SSH_MSG_CHANNEL_DATA;
    coil__ssh_put32(p + 1, c->peer_id);
    if (ext)
        coil__ssh_put32(p + 5, 1);
    coil__ssh_put32(p + head - 4, (uint32_t)got);
    if (coil__sshd_packet_end(s, head + got) != 0)
        return 0;
    c->remote_win -= (uint32_t)got;
    return got;
}

/* Send stderr pieces whose place has come; 1 when one is still waiting at
 * its place (stdout must not pass it). */
static int flush_stderr(coil__sshd_channel *c)
{
    while (c->err_head && c->err_head->pos <= c->out_sent) {
        errchunk *e = c->err_head;
        while (e->off < e->len) {
            struct iovec v = {e->data + e->off, e->len - e->off};
            size_t k = send_packet(c, 1, &v, 1, 0, v.iov_len);
            if (k == 0)
                return 1;
            e->off += k;
        }
        c->err_head = e->next;
        if (!c->err_head)
            c->err_tail = NULL;
        free(e);
    }
    return 0;
}

static ssize_t ch_send(coil__stream *st, const struct iovec *iov, int iovcnt)
{
    coil__sshd_channel *c = (coil__sshd_channel *)st;
    if (!alive(c->s) || c->got_close)
        return -EPIPE;
    size_t total = 0, all = 0;
    for (int i = 0; i < iovcnt; i++)
        all += iov[i].iov_len;
    while (total < all) {
        if (flush_stderr(c))
            break;
        size_t max = all - total;
        if (c->err_head && c->err_head->pos - c->out_sent < max)
            max = (size_t)(c->err_head->pos - c->out_sent);
        size_t k = send_packet(c, 0, iov, iovcnt, total, max);
        if (k == 0)
            break;
        total += k;
        c->out_sent += k;
    }
    return (ssize_t)total;
}

static void ch_want_write(coil__stream *st, int on)
{
    ((coil__sshd_channel *)st)->want_write = on;
}

static void ch_set_reading(coil__stream *st, int on)
{
    coil__sshd_channel *c = (coil__sshd_channel *)st;
    c->reading = on;
    if (on && (c->in_end > c->in_start || c->got_eof))
        schedule_drain(c);
}

static int ch_shutdown_write(coil__stream *st)
{
    coil__sshd_channel *c = (coil__sshd_channel *)st;
    if (!alive(c->s))
        return 0;
    if (c->err_head && flush_stderr(c))
        c->eof_pending = 1;
    else if (c->err_head == NULL)
        send_eof(c);
    return 0;
}

/* The channel can send (window opened, connection writable): stderr,
 * stdout, then a waiting EOF or close. */
static void writable(coil__sshd_channel *c)
{
    if (!c->started || c->torn || !alive(c->s))
        return;
    coil__stream_hold(&c->st);
    if (c->err_head)
        flush_stderr(c);
    if (c->want_write && c->st.state != COIL__STREAM_CLOSED)
        coil__stream_writable(&c->st);
    if (!c->torn && c->err_head)
        flush_stderr(c);
    if (!c->torn && c->eof_pending && !c->err_head && c->st.queued == 0) {
        c->eof_pending = 0;
        send_eof(c);
    }
    if (!c->torn && c->closing)
        try_close(c);
    coil__stream_release(&c->st);
}

/* ---- closing --------------------------------------------------------------------------
 */

static void describe_end(coil__sshd_channel *c, char *buf, size_t size)
{
    snprintf(buf, size, "SSH channel %u (%.100s) of %.64s@%.96s", c->id, c->desc,
             c->s->auth.user, c->s->peer);
}

static int linger_timeout(void *arg)
{
    coil__sshd_channel *c = arg;
    coil_timer_release(c->linger);
    c->linger = NULL;
    if (!c->st.lingering)
        return 0;
    char d[320];
    describe_end(c, d, sizeof d);
    coil__stream_close_done(
        &c->st, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECONNLOST,
                                 "%s lost: the client did not answer our CLOSE within "
                                 "%g s",
                                 d, LINGER_TIMEOUT));
    return 0;
}

static int sends_exit(const coil__sshd_channel *c)
{
    return c->req == REQ_EXEC || (c->req == REQ_SHELL && c->exit_set);
}

/* The clean close: stderr left, exit-status, EOF, CLOSE; then the client's
 * CLOSE ends the linger. */
static void try_close(coil__sshd_channel *c)
{
    if (c->sent_close || !alive(c->s))
        return;
    if (c->err_head && flush_stderr(c))
        return;
    if (sends_exit(c) && !c->exit_sent) {
        c->exit_sent = 1;
        unsigned char buf[64];
        coil__sshw w;
        coil__sshw_init(&w, buf, sizeof buf);
        coil__sshw_u8(&w, COIL__SSH_MSG_CHANNEL_REQUEST);
        coil__sshw_u32(&w, c->peer_id);
        coil__sshw_cstring(&w, "exit-status");
        coil__sshw_bool(&w, 0);
        coil__sshw_u32(&w, (uint32_t)c->exit_status);
        coil__sshd_send(c->s, buf, w.len);
    }
    send_eof(c);
    send_close(c);
}

static void ch_close(coil__stream *st, int abort)
{
    coil__sshd_channel *c = (coil__sshd_channel *)st;
    c->reading = 0;
    c->want_write = 0;
    if (!alive(c->s) || c->got_close) {
        return;
    }
    if (abort) {
        send_close(c);
        return;
    }
    c->closing = 1;
    st->lingering = 1;
    c->linger = coil_reactor_call_later(c->s->r, LINGER_TIMEOUT, linger_timeout, c);
    try_close(c);
}

static void ch_lost(coil__stream *st, const coil_failure *reason)
{
    (void)st, (void)reason;
}

static void ch_free(coil__stream *st)
{
    coil__sshd_channel *c = (coil__sshd_channel *)st;
    c->torn = 1;
    if (c->got_close || !alive(c->s)) {
        free_chan(c);
        return;
    }
    /* The client's CLOSE is still to come: keep the number taken. */
    send_close(c);
    free(c->in);
    c->in = NULL;
    c->in_start = c->in_end = c->in_cap = 0;
}

static int ch_get_peer(const coil__stream *st, coil_address *out)
{
    *out = ((const coil__sshd_channel *)st)->peer;
    return 0;
}

static int ch_get_host(const coil__stream *st, coil_address *out)
{
    *out = ((const coil__sshd_channel *)st)->host;
    return 0;
}

/* src into dst, cut to fit. */
static void put(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

static const char *key_word(const char *type)
{
    if (strstr(type, "ed25519"))
        return "ED25519";
    if (strstr(type, "ecdsa"))
        return "ECDSA";
    if (strstr(type, "rsa"))
        return "RSA";
    return type;
}

static void ch_info(const coil__stream *st, coil_transport_info *out)
{
    const coil__sshd_channel *c = (const coil__sshd_channel *)st;
    const coil__sshd *s = c->s;
    coil_transport_info li;
    const coil_transport_info *below = NULL;
    if (s->lower && coil_transport_info_get(s->lower, &li) == 0) {
        out->peer_pid = li.peer_pid;
        out->peer_uid = li.peer_uid;
        out->peer_gid = li.peer_gid;
        below = &li;
    }
    coil_transport_layer_info *me = coil_transport_info_push(out, below, "ssh-channel");
    if (!me)
        return;
    put(me->protocol, sizeof me->protocol, s->client_version);
    put(me->cipher, sizeof me->cipher, s->cipher_name);
    if (strcmp(s->auth.method, "publickey") == 0)
        snprintf(me->peer, sizeof me->peer, "%.128s %.32s %.64s", s->auth.user,
                 key_word(s->auth.key_type), s->auth.key_fp);
    else
        snprintf(me->peer, sizeof me->peer, "%.200s (%.31s)", s->auth.user,
                 s->auth.method);
    me->verified = 1;
    put(me->detail, sizeof me->detail, c->desc);
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

/* write / writev count stdout bytes, for stderr's place among them. */
static int ch_writev(coil_transport *t, const struct iovec *iov, int iovcnt)
{
    coil__sshd_channel *c = (coil__sshd_channel *)t;
    size_t total = 0;
    for (int i = 0; i < iovcnt && iov; i++)
        total += iov[i].iov_len;
    uint64_t before = c->out_accepted;
    c->out_accepted += total; /* sent inside, if at all, after this */
    int rc = coil__stream_writev(t, iov, iovcnt);
    if (rc != 0)
        c->out_accepted = before;
    return rc;
}

static int ch_write(coil_transport *t, const void *data, size_t len)
{
    struct iovec v = {(void *)data, len};
    return ch_writev(t, &v, 1);
}

/* Bytes received and held for a protocol that paused reading (at most our
 * window): delivered by a call_soon once it reads again. */
static size_t ch_pending(const coil_transport *t)
{
    const coil__sshd_channel *c = (const coil__sshd_channel *)t;
    return c->in_end - c->in_start;
}

static const coil_transport_ops channel_ops = {
    .kind = "ssh-channel",
    .write = ch_write,
    .writev = ch_writev,
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

/* ---- starting a protocol on a channel ------------------------------------------------
 */

static void describe(coil__sshd_channel *c)
{
    const coil_ssh_channel_info *in = &c->info;
    switch (c->req) {
    case REQ_EXEC:
        snprintf(c->desc, sizeof c->desc, "exec '%s'", in->command);
        break;
    case REQ_SHELL:
        if (in->has_pty)
            snprintf(c->desc, sizeof c->desc, "shell (pty %s %ux%u)", in->term, in->cols,
                     in->rows);
        else
            snprintf(c->desc, sizeof c->desc, "shell");
        break;
    case REQ_SUBSYSTEM:
        snprintf(c->desc, sizeof c->desc, "subsystem %s", in->command);
        break;
    default:
        snprintf(c->desc, sizeof c->desc, "%s%s%s", in->channel_type,
                 *in->command ? " " : "", in->command);
        break;
    }
}

static void peer_address(coil__sshd_channel *c, coil_address *a)
{
    memset(a, 0, sizeof *a);
    a->kind = COIL_ADDR_SSH;
    snprintf(a->name, sizeof a->name, "ssh:%.24s@%.34s", c->s->auth.user, c->s->peer);
}

/* Run protocol p on c: c becomes a transport owning p. */
static void start_protocol(coil__sshd_channel *c, coil_protocol *p)
{
    coil__stream_init(&c->st, &channel_ops, &channel_lower, c->s->r, p);
    c->started = 1;
    coil__stream_hold(&c->st);
    coil__stream_connected(&c->st);
    coil__stream_release(&c->st);
}

/* Build the protocol of f and run it on c. 0, or -1 (the factory said no). */
static int start(coil__sshd_channel *c, coil_factory *f, int reply)
{
    coil_address peer;
    peer_address(c, &peer);
    coil_protocol *p = f->ops->build_protocol(f, &peer);
    if (!p)
        return -1;
    describe(c);
    if (reply)
        send_reply(c, 1);
    start_protocol(c, p);
    return 0;
}

/* ---- remote forwarding (tcpip-forward, ssh -R) ---------------------------------------
 *
 * Each tcpip-forward the policy allows is a TCP listener of this
 * connection. Each connection it accepts is relayed over a
 * "forwarded-tcpip" channel we open: a relay of two protocols, one on the
 * TCP connection, one on the channel once the client confirms it. Each
 * side is the streaming producer of the other's transport, so a full write
 * queue on one side stops reading on the other (the channel's queue fills
 * while the client's window is closed; a channel that stops reading stops
 * re-granting our window, which stops the client). An EOF on one side is a
 * half-close of the other; the end of one side closes the other once its
 * queue is sent. */

struct coil__sshd_fwd {
    coil_factory f; /* first: builds the TCP side of each relay */
    struct coil__sshd_fwd *next;
    coil__sshd *s;
    coil_listener *l;
    char bind[MAX_HOST + 1]; /* the address as the client asked */
    uint32_t port;           /* the port listened on */
};
typedef struct coil__sshd_fwd fwd;

typedef struct rside {
    coil_protocol p;    /* first */
    coil_producer prod; /* pauses this side's reading; on the other's transport */
    relay *rl;
    int alive; /* between connection_made and connection_lost */
    int ended; /* connection_lost ran, or the side never ran */
    int read_eof, write_shut;
} rside;

struct relay {
    rside tcp, ch;
    int refs; /* one per side until it is destroyed */
};

static rside *other_side(rside *x)
{
    return x == &x->rl->tcp ? &x->rl->ch : &x->rl->tcp;
}

static void relay_unref(relay *rl)
{
    if (--rl->refs == 0)
        free(rl);
}

static void side_pause(coil_producer *pr)
{
    rside *x = (rside *)((char *)pr - offsetof(rside, prod));
    if (x->alive)
        coil_transport_pause_reading(x->p.transport);
}

static void side_resume(coil_producer *pr)
{
    rside *x = (rside *)((char *)pr - offsetof(rside, prod));
    if (x->alive)
        coil_transport_resume_reading(x->p.transport);
}

static void side_stop(coil_producer *pr)
{
    (void)pr;
}

static const coil_producer_ops side_producer_ops = {
    .pause_producing = side_pause,
    .resume_producing = side_resume,
    .stop_producing = side_stop,
};

static void side_maybe_close(rside *x)
{
    if (x->alive && x->read_eof && x->write_shut)
        coil_transport_lose_connection(x->p.transport);
}

static void side_made(coil_protocol *p)
{
    rside *x = (rside *)p, *o = other_side(x);
    x->alive = 1;
    if (o->ended) { /* the TCP connection ended before the client confirmed */
        coil_transport_lose_connection(p->transport);
        return;
    }
    if (!o->alive) { /* nowhere to put its bytes yet */
        coil_transport_pause_reading(p->transport);
        return;
    }
    coil_transport_register_producer(o->p.transport, &x->prod, 1);
    coil_transport_register_producer(p->transport, &o->prod, 1);
    coil_transport_resume_reading(o->p.transport);
}

static void side_data(coil_protocol *p, const void *data, size_t len)
{
    rside *x = (rside *)p, *o = other_side(x);
    if (o->alive && !o->write_shut)
        coil_transport_write(o->p.transport, data, len);
}

static void side_read_lost(coil_protocol *p)
{
    rside *x = (rside *)p, *o = other_side(x);
    x->read_eof = 1;
    if (!o->alive) {
        coil_transport_lose_connection(p->transport);
        return;
    }
    if (!o->write_shut) {
        o->write_shut = 1;
        coil_transport_lose_write_connection(o->p.transport);
        side_maybe_close(o);
    }
    side_maybe_close(x);
}

static void side_lost(coil_protocol *p, const coil_failure *reason)
{
    (void)reason;
    rside *x = (rside *)p, *o = other_side(x);
    x->alive = 0;
    x->ended = 1;
    if (o->alive) {
        coil_transport_unregister_producer(o->p.transport);
        coil_transport_lose_connection(o->p.transport);
    }
}

static void side_destroy(coil_protocol *p)
{
    rside *x = (rside *)p;
    x->ended = 1;
    relay_unref(x->rl);
}

static const coil_protocol_ops side_ops = {
    .connection_made = side_made,
    .data_received = side_data,
    .read_connection_lost = side_read_lost,
    .connection_lost = side_lost,
    .destroy = side_destroy,
};

/* The channel of rl goes before the client confirmed it (refused, or the
 * connection ended): its side never runs; the TCP connection is closed. */
static void relay_unopened(relay *rl)
{
    rl->ch.ended = 1;
    if (rl->tcp.alive)
        coil_transport_lose_connection(rl->tcp.p.transport);
    relay_unref(rl);
}

/* The numeric host and port of a TCP address ("" and 0 otherwise). */
static void host_port(const coil_address *a, char *host, size_t size, uint32_t *port)
{
    host[0] = 0;
    *port = 0;
    if (a->kind == COIL_ADDR_TCP4)
        inet_ntop(AF_INET, &a->u.in4.sin_addr, host, (socklen_t)size);
    else if (a->kind == COIL_ADDR_TCP6)
        inet_ntop(AF_INET6, &a->u.in6.sin6_addr, host, (socklen_t)size);
    int p = coil_address_port(a);
    if (p > 0)
        *port = (uint32_t)p;
}

/* A connection on a forwarded port: open a forwarded-tcpip channel to the
 * client; the TCP side waits (reading paused) for its answer. NULL (the
 * connection is closed) when the SSH connection is ending or at its
 * channel cap. */
static coil_protocol *fwd_build(coil_factory *f, const coil_address *peer)
{
    fwd *fw = (fwd *)f;
    coil__sshd *s = fw->s;
    char orig[INET6_ADDRSTRLEN] = "";
    uint32_t oport = 0;
    if (peer)
        host_port(peer, orig, sizeof orig, &oport);
    if (!alive(s) || s->state != COIL__SSHD_OPEN)
        return NULL;
    if (s->conn.n_open >= max_channels(s)) {
        coil_log(COIL_LOG_INFO, LOG_MODULE,
                 "%s@%s: connection from %s:%u to forwarded port %s:%u refused: too "
                 "many open channels (%u)",
                 s->auth.user, s->peer, orig, oport, fw->bind, fw->port, max_channels(s));
        return NULL;
    }
    relay *rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    coil__sshd_channel *c = chan_new(s, KIND_FORWARDED_TCPIP, 0, 0, 0);
    if (!c) {
        free(rl);
        return NULL;
    }
    rl->refs = 2;
    rl->tcp.p.ops = rl->ch.p.ops = &side_ops;
    rl->tcp.prod.ops = rl->ch.prod.ops = &side_producer_ops;
    rl->tcp.rl = rl->ch.rl = rl;
    c->we_opened = 1;
    c->relay = rl;
    char hp[MAX_HOST + 16];
    snprintf(hp, sizeof hp, "%s:%u", fw->bind, fw->port);
    c->command = strdup(hp);
    if (c->command)
        c->info.command = c->command;
    snprintf(c->desc, sizeof c->desc, "forwarded-tcpip %.80s from %s:%u", hp, orig,
             oport);

    unsigned char buf[64 + 2 * (MAX_HOST + 4)];
    coil__sshw w;
    coil__sshw_init(&w, buf, sizeof buf);
    coil__sshw_u8(&w, COIL__SSH_MSG_CHANNEL_OPEN);
    coil__sshw_cstring(&w, "forwarded-tcpip");
    coil__sshw_u32(&w, c->id);
    coil__sshw_u32(&w, c->win_size);
    coil__sshw_u32(&w, c->max_in);
    coil__sshw_cstring(&w, fw->bind);
    coil__sshw_u32(&w, fw->port);
    coil__sshw_cstring(&w, orig);
    coil__sshw_u32(&w, oport);
    if (!w.bad)
        coil__sshd_send(s, buf, w.len);
    /* Unsent (the connection is ending): the channel goes with it, and
     * the TCP connection with the channel. */
    return &rl->tcp.p;
}

static const coil_factory_ops fwd_factory_ops = {.build_protocol = fwd_build};

static void fwd_close(fwd *fw)
{
    coil_listener_close(fw->l);
    free(fw);
}

/* "tcpip-forward": listen when the policy allows it. 1 with *bound (the
 * port listened on), or 0 refused (logged). */
static int fwd_add(coil__sshd *s, const char *bind, uint32_t port, uint32_t *bound)
{
    const coil_ssh_server_options *o = &s->srv->o;
    const char *why = NULL;
    if (port > 65535)
        why = "the port is beyond 65535";
    else if (!o->tcpip_forward)
        why = "no policy allows it";
    else if (s->conn.n_fwds >= MAX_FORWARDS)
        why = "already forwarding the most ports a connection may (16)";
    else if (o->tcpip_forward(o->tcpip_forward_arg, s->auth.user, bind, (int)port) != 1)
        why = "the tcpip_forward policy refused it";
    if (why) {
        coil_log(COIL_LOG_INFO, LOG_MODULE, "%s@%s: tcpip-forward %s:%u refused: %s",
                 s->auth.user, s->peer, bind, port, why);
        return 0;
    }
    fwd *fw = calloc(1, sizeof *fw);
    if (!fw) {
        coil_log(COIL_LOG_WARN, LOG_MODULE,
                 "%s@%s: tcpip-forward %s:%u refused: out of memory", s->auth.user,
                 s->peer, bind, port);
        return 0;
    }
    fw->f.ops = &fwd_factory_ops;
    fw->s = s;
    put(fw->bind, sizeof fw->bind, bind);
    /* As sshd with GatewayPorts no: loopback whatever the client named. */
    coil_tcp_listen_options lo = {
        .interface = strcmp(bind, "::1") == 0 ? "::1" : "127.0.0.1",
        .port = (int)port,
    };
    coil_failure *err = NULL;
    if (coil_tcp_listen(s->r, &lo, &fw->f, &fw->l, &err) != 0) {
        char text[256] = "?";
        if (err)
            coil_failure_format(err, text, sizeof text);
        coil_log(COIL_LOG_INFO, LOG_MODULE, "%s@%s: tcpip-forward %s:%u refused: %s",
                 s->auth.user, s->peer, bind, port, text);
        coil_failure_free(err);
        free(fw);
        return 0;
    }
    coil_address a;
    int p = coil_listener_get_host(fw->l, &a) == 0 ? coil_address_port(&a) : -1;
    fw->port = p > 0 ? (uint32_t)p : port;
    fw->next = s->conn.fwds;
    s->conn.fwds = fw;
    s->conn.n_fwds++;
    coil_log(COIL_LOG_INFO, LOG_MODULE,
             "%s@%s: tcpip-forward %s:%u: listening on %s port %u", s->auth.user, s->peer,
             bind, port, lo.interface, fw->port);
    *bound = fw->port;
    return 1;
}

/* "cancel-tcpip-forward": stop listening (relays already running go on).
 * 1, or 0 when no such forward. */
static int fwd_cancel(coil__sshd *s, const char *bind, uint32_t port)
{
    for (fwd **pp = &s->conn.fwds; *pp; pp = &(*pp)->next) {
        fwd *fw = *pp;
        if (fw->port == port && strcmp(fw->bind, bind) == 0) {
            *pp = fw->next;
            s->conn.n_fwds--;
            fwd_close(fw);
            coil_log(COIL_LOG_INFO, LOG_MODULE, "%s@%s: tcpip-forward %s:%u cancelled",
                     s->auth.user, s->peer, bind, port);
            return 1;
        }
    }
    coil_log(COIL_LOG_INFO, LOG_MODULE,
             "%s@%s: cancel-tcpip-forward %s:%u refused: no such forward", s->auth.user,
             s->peer, bind, port);
    return 0;
}

static void fwd_close_all(coil__sshd *s)
{
    while (s->conn.fwds) {
        fwd *fw = s->conn.fwds;
        s->conn.fwds = fw->next;
        fwd_close(fw);
    }
    s->conn.n_fwds = 0;
}

/* The client's answer to a channel we opened. */
static int on_open_answer(coil__sshd *s, coil__sshd_channel *c, int msg, coil__sshr *r)
{
    if (msg == COIL__SSH_MSG_CHANNEL_OPEN_FAILURE) {
        uint32_t code = 0;
        char why[256] = "";
        coil__sshr_u32(r, &code);
        coil__sshr_cstring(r, why, sizeof why);
        for (char *q = why; *q; q++)
            if (*q < ' ' || *q > '~')
                *q = '?';
        coil_log(COIL_LOG_INFO, LOG_MODULE, "%s@%s: the client refused %s: %s (%u)",
                 s->auth.user, s->peer, c->desc, why, code);
        free_chan(c); /* the TCP connection is closed */
        return 0;
    }
    uint32_t peer_id = 0, win = 0, maxpkt = 0;
    coil__sshr_u32(r, &peer_id);
    coil__sshr_u32(r, &win);
    coil__sshr_u32(r, &maxpkt);
    if (r->bad)
        return protocol_error(s, "malformed SSH_MSG_CHANNEL_OPEN_CONFIRMATION");
    c->peer_id = peer_id;
    c->remote_win = win;
    c->remote_max = maxpkt;
    c->confirmed = 1;
    relay *rl = c->relay;
    c->relay = NULL;
    start_protocol(c, &rl->ch.p);
    return 0;
}

/* ---- messages -----------------------------------------------------------------------
 */

static int protocol_error(coil__sshd *s, const char *what)
{
    coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_PROTOCOL_ERROR, "%s", what);
    return -1;
}

static int on_global_request(coil__sshd *s, coil__sshr *r)
{
    coil__sshs name;
    int want = 0;
    coil__sshr_string(r, &name, 256);
    coil__sshr_bool(r, &want);
    if (r->bad)
        return protocol_error(s, "malformed SSH_MSG_GLOBAL_REQUEST");
    int ok = 0, reply_port = 0;
    uint32_t bound = 0;
    if (coil__sshs_eq(name, "no-more-sessions@openssh.com")) {
        s->conn.no_more_sessions = 1;
        ok = 1;
    } else if (coil__sshs_eq(name, "tcpip-forward") ||
               coil__sshs_eq(name, "cancel-tcpip-forward")) {
        char bind[MAX_HOST + 1];
        uint32_t port = 0;
        coil__sshr_cstring(r, bind, sizeof bind);
        coil__sshr_u32(r, &port);
        if (r->bad)
            return protocol_error(s, "malformed tcpip-forward request");
        if (coil__sshs_eq(name, "cancel-tcpip-forward")) {
            ok = fwd_cancel(s, bind, port);
        } else {
            ok = fwd_add(s, bind, port, &bound);
            reply_port = ok && port == 0; /* RFC 4254 7.1: the port chosen */
        }
    }
    /* keepalive@openssh.com and the rest: refused, as sshd answers what it
     * does not serve (the failure keeps clients' keepalives going). */
    if (want) {
        unsigned char m[5] = {ok ? COIL__SSH_MSG_REQUEST_SUCCESS
                                 : COIL__SSH_MSG_REQUEST_FAILURE};
        if (reply_port)
            coil__ssh_put32(m + 1, bound);
        coil__sshd_send(s, m, reply_port ? 5 : 1);
    }
    return 0;
}

static int on_open(coil__sshd *s, coil__sshr *r)
{
    coil__sshs type;
    uint32_t peer_id = 0, win = 0, maxpkt = 0;
    coil__sshr_string(r, &type, 64);
    coil__sshr_u32(r, &peer_id);
    coil__sshr_u32(r, &win);
    coil__sshr_u32(r, &maxpkt);
    if (r->bad)
        return protocol_error(s, "malformed SSH_MSG_CHANNEL_OPEN");
    int kind;
    char host[MAX_HOST + 1] = "";
    uint32_t port = 0, oport = 0;
    if (coil__sshs_eq(type, "session")) {
        if (coil__sshr_done(r, 1) != 0)
            return protocol_error(s, "malformed session channel open");
        if (s->conn.no_more_sessions && s->conn.sessions > 0)
            return protocol_error(s, "Possible attack: attempt to open a session after "
                                     "additional sessions disabled");
        kind = KIND_SESSION;
    } else if (coil__sshs_eq(type, "direct-tcpip")) {
        char orig[MAX_HOST + 1];
        coil__sshr_cstring(r, host, sizeof host);
        coil__sshr_u32(r, &port);
        coil__sshr_cstring(r, orig, sizeof orig);
        coil__sshr_u32(r, &oport);
        if (r->bad || port > 65535)
            return protocol_error(s, "malformed direct-tcpip channel open");
        kind = KIND_DIRECT_TCPIP;
    } else {
        send_open_failure(s, peer_id, OPEN_UNKNOWN_TYPE, "unknown channel type");
        return 0;
    }
    if (s->conn.n_open >= max_channels(s)) {
        send_open_failure(s, peer_id, OPEN_RESOURCE_SHORTAGE, "too many open channels");
        return 0;
    }
    coil_factory *f = NULL;
    if (kind == KIND_DIRECT_TCPIP) {
        const coil_ssh_server_options *o = &s->srv->o;
        if (o->direct_tcpip)
            f = o->direct_tcpip(o->direct_tcpip_arg, s->auth.user, host, (int)port);
        if (!f) {
            coil_log(COIL_LOG_INFO, LOG_MODULE,
                     "%s@%s: direct-tcpip to %s:%u refused (no policy allows it)",
                     s->auth.user, s->peer, host, port);
            send_open_failure(s, peer_id, OPEN_PROHIBITED, "administratively prohibited");
            return 0;
        }
    }
    coil__sshd_channel *c = chan_new(s, kind, peer_id, win, maxpkt);
    if (!c) {
        send_open_failure(s, peer_id, OPEN_RESOURCE_SHORTAGE, "out of memory");
        return 0;
    }
    if (kind == KIND_SESSION) {
        s->conn.sessions++;
        snprintf(c->desc, sizeof c->desc, "session");
    } else {
        char hp[MAX_HOST + 16];
        snprintf(hp, sizeof hp, "%s:%u", host, port);
        c->command = strdup(hp);
        if (!c->command) {
            send_open_failure(s, peer_id, OPEN_RESOURCE_SHORTAGE, "out of memory");
            free_chan(c);
            return 0;
        }
        c->info.command = c->command;
    }
    unsigned char buf[32];
    coil__sshw w;
    coil__sshw_init(&w, buf, sizeof buf);
    coil__sshw_u8(&w, COIL__SSH_MSG_CHANNEL_OPEN_CONFIRMATION);
    coil__sshw_u32(&w, peer_id);
    coil__sshw_u32(&w, c->id);
    coil__sshw_u32(&w, c->win_size);
    coil__sshw_u32(&w, c->max_in);
    coil__sshd_send(s, buf, w.len);
    if (kind == KIND_DIRECT_TCPIP && start(c, f, 0) != 0) {
        /* The factory refused after all: close the channel we confirmed. */
        send_close(c);
    }
    return 0;
}

static int add_env(coil__sshd_channel *c, coil__sshs name, coil__sshs value)
{
    if (c->info.n_env >= MAX_ENV || name.len == 0 ||
        name.len + 1 + value.len > MAX_ENV_LEN)
        return 0;
    if (memchr(name.p, '=', name.len) || memchr(name.p, 0, name.len) ||
        memchr(value.p, 0, value.len))
        return 0;
    char *e = malloc(name.len + value.len + 2);
    if (!e)
        return 0;
    memcpy(e, name.p, name.len);
    e[name.len] = '=';
    memcpy(e + name.len + 1, value.p, value.len);
    e[name.len + 1 + value.len] = 0;
    c->env[c->info.n_env++] = e;
    return 1;
}

static int on_request(coil__sshd *s, coil__sshd_channel *c, coil__sshr *r)
{
    coil__sshs name;
    int want = 0;
    coil__sshr_string(r, &name, 256);
    coil__sshr_bool(r, &want);
    if (r->bad)
        return protocol_error(s, "malformed SSH_MSG_CHANNEL_REQUEST");
    if (c->sent_close || c->got_close)
        return 0;
    int ok = 0;
    coil_ssh_channel_info *in = &c->info;
    if (c->kind != KIND_SESSION) {
        ok = 0;
    } else if (coil__sshs_eq(name, "pty-req")) {
        char term[MAX_TERM + 1];
        uint32_t cols = 0, rows = 0, wpx = 0, hpx = 0;
        coil__sshs modes;
        coil__sshr_cstring(r, term, sizeof term);
        coil__sshr_u32(r, &cols);
        coil__sshr_u32(r, &rows);
        coil__sshr_u32(r, &wpx);
        coil__sshr_u32(r, &hpx);
        coil__sshr_string(r, &modes, MAX_MODES);
        if (!r->bad && !in->has_pty && !c->started) {
            unsigned char *m = modes.len ? malloc(modes.len) : NULL;
            if (!modes.len || m) {
                if (m)
                    memcpy(m, modes.p, modes.len);
                c->modes = m;
                c->modes_len = modes.len;
                memcpy(c->term, term, sizeof term);
                in->term = c->term;
                in->cols = cols;
                in->rows = rows;
                in->width_px = wpx;
                in->height_px = hpx;
                in->has_pty = 1;
                ok = 1;
            }
        }
    } else if (coil__sshs_eq(name, "env")) {
        coil__sshs n, v;
        coil__sshr_string(r, &n, MAX_ENV_LEN);
        coil__sshr_string(r, &v, MAX_ENV_LEN);
        if (!r->bad && !c->started)
            ok = add_env(c, n, v);
    } else if (coil__sshs_eq(name, "window-change")) {
        uint32_t cols = 0, rows = 0, wpx = 0, hpx = 0;
        coil__sshr_u32(r, &cols);
        coil__sshr_u32(r, &rows);
        coil__sshr_u32(r, &wpx);
        coil__sshr_u32(r, &hpx);
        if (!r->bad) {
            in->cols = cols;
            in->rows = rows;
            in->width_px = wpx;
            in->height_px = hpx;
            ok = 1;
            if (stream_open(c) && c->on_resize) /* the caller holds c */
                c->on_resize(c->resize_arg, &c->st.base);
            if (c->torn || !alive(s))
                return 0;
        }
    } else if (coil__sshs_eq(name, "shell") || coil__sshs_eq(name, "exec") ||
               coil__sshs_eq(name, "subsystem")) {
        const coil_ssh_server_options *o = &s->srv->o;
        coil_factory *f = NULL;
        int req = coil__sshs_eq(name, "shell")  ? REQ_SHELL
                  : coil__sshs_eq(name, "exec") ? REQ_EXEC
                                                : REQ_SUBSYSTEM;
        coil__sshs arg = {NULL, 0};
        if (req != REQ_SHELL)
            coil__sshr_string(r, &arg, MAX_COMMAND);
        if (r->bad || c->started || c->req != REQ_NONE ||
            (arg.len && memchr(arg.p, 0, arg.len)))
            goto reply;
        if (req == REQ_SHELL)
            f = o->shell;
        else if (req == REQ_EXEC)
            f = o->exec;
        else
            for (size_t i = 0; i < o->n_subsystems; i++)
                if (o->subsystems[i].name && coil__sshs_eq(arg, o->subsystems[i].name))
                    f = o->subsystems[i].factory;
        if (!f)
            goto reply;
        if (req != REQ_SHELL) {
            c->command = malloc(arg.len + 1);
            if (!c->command)
                goto reply;
            memcpy(c->command, arg.p, arg.len);
            c->command[arg.len] = 0;
            in->command = c->command;
        }
        c->req = req;
        in->request = req == REQ_SHELL ? "shell" : req == REQ_EXEC ? "exec" : "subsystem";
        if (start(c, f, want) != 0) {
            c->req = REQ_NONE;
            in->request = "";
            goto reply;
        }
        return 0;
    }
    /* signal, x11-req, auth-agent-req@openssh.com, keepalive@openssh.com,
     * break and anything unknown: refused. */
reply:
    if (want)
        send_reply(c, ok);
    return 0;
}

/* The client's CLOSE. */
static void on_close(coil__sshd_channel *c)
{
    if (c->got_close)
        return;
    c->got_close = 1;
    send_close(c);
    if (!c->started || c->torn) {
        free_chan(c);
        return;
    }
    char d[320];
    describe_end(c, d, sizeof d);
    if (c->st.lingering) {
        if (c->linger) {
            coil_timer_cancel(c->linger);
            coil_timer_release(c->linger);
            c->linger = NULL;
        }
        coil__stream_close_done(&c->st, NULL);
    } else if (c->st.state != COIL__STREAM_CLOSED) {
        size_t unsent = c->st.queued;
        for (errchunk *e = c->err_head; e; e = e->next)
            unsent += e->len - e->off;
        if (c->got_eof && unsent == 0 && c->in_end == c->in_start)
            coil__stream_lost(&c->st, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECLOSED,
                                                       "%s closed by the client", d));
        else
            coil__stream_lost(
                &c->st, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECONNLOST,
                                         "%s lost: the client closed it%s with %zu "
                                         "bytes of ours not sent",
                                         d, c->got_eof ? "" : " without EOF", unsent));
    }
}

static int on_channel_msg(coil__sshd *s, int msg, coil__sshr *r)
{
    uint32_t id = 0;
    if (coil__sshr_u32(r, &id) != 0)
        return protocol_error(s, "malformed channel message");
    coil__sshd_channel *c = chan_of(s, id);
    if (!c) {
        char m[80];
        snprintf(m, sizeof m, "message %d for nonexistent channel %u", msg, id);
        return protocol_error(s, m);
    }
    if (c->we_opened && !c->confirmed) {
        if (msg == COIL__SSH_MSG_CHANNEL_OPEN_CONFIRMATION ||
            msg == COIL__SSH_MSG_CHANNEL_OPEN_FAILURE)
            return on_open_answer(s, c, msg, r);
        char m[96];
        snprintf(m, sizeof m, "message %d for channel %u before its open was answered",
                 msg, id);
        return protocol_error(s, m);
    }
    if (c->torn && msg != COIL__SSH_MSG_CHANNEL_CLOSE)
        return 0; /* a zombie waits only for CLOSE */
    int rc = 0;
    coil__stream *held = NULL;
    if (c->started && !c->torn) {
        held = &c->st;
        coil__stream_hold(held);
    }
    switch (msg) {
    case COIL__SSH_MSG_CHANNEL_DATA:
    case COIL__SSH_MSG_CHANNEL_EXTENDED_DATA: {
        uint32_t code = 0;
        coil__sshs d;
        if (msg == COIL__SSH_MSG_CHANNEL_EXTENDED_DATA)
            coil__sshr_u32(r, &code);
        coil__sshr_string(r, &d, COIL__SSH_MAX_PACKET);
        if (coil__sshr_done(r, 0) != 0) {
            rc = protocol_error(s, "malformed channel data");
            break;
        }
        if (d.len > c->local_win || d.len > c->max_in) {
            char m[160];
            snprintf(m, sizeof m,
                     "channel %u: received %zu bytes of data, beyond the window (%u) or "
                     "the max packet (%u)",
                     id, d.len, c->local_win, c->max_in);
            rc = protocol_error(s, m);
            break;
        }
        if (c->got_close)
            break;
        data_in(c, d.p, d.len, msg == COIL__SSH_MSG_CHANNEL_EXTENDED_DATA);
        break;
    }
    case COIL__SSH_MSG_CHANNEL_WINDOW_ADJUST: {
        uint32_t n = 0;
        coil__sshr_u32(r, &n);
        if (r->bad) {
            rc = protocol_error(s, "malformed SSH_MSG_CHANNEL_WINDOW_ADJUST");
            break;
        }
        if ((uint64_t)c->remote_win + n > 0xffffffffu) {
            char m[96];
            snprintf(m, sizeof m, "channel %u: window adjust %u overflows the window %u",
                     id, n, c->remote_win);
            rc = protocol_error(s, m);
            break;
        }
        c->remote_win += n;
        if (n > 0)
            writable(c);
        break;
    }
    case COIL__SSH_MSG_CHANNEL_EOF:
        if (c->got_eof || c->got_close)
            break;
        c->got_eof = 1;
        if (stream_open(c) && c->in_end == c->in_start)
            coil__stream_eof(&c->st);
        break;
    case COIL__SSH_MSG_CHANNEL_CLOSE:
        on_close(c); /* frees c unless held */
        break;
    case COIL__SSH_MSG_CHANNEL_REQUEST:
        rc = on_request(s, c, r);
        break;
    case COIL__SSH_MSG_CHANNEL_SUCCESS:
    case COIL__SSH_MSG_CHANNEL_FAILURE:
        break; /* we ask nothing with want_reply */
    default:   /* OPEN_CONFIRMATION / OPEN_FAILURE for a channel open already */
        rc = protocol_error(s, "channel open answer for a channel not waiting for one");
        break;
    }
    if (held)
        coil__stream_release(held);
    return rc;
}

int coil__sshd_conn_packet(coil__sshd *s, const unsigned char *payload, size_t len)
{
    if (len == 0)
        return protocol_error(s, "empty packet");
    coil__sshr r;
    coil__sshr_init(&r, payload + 1, len - 1);
    int msg = payload[0], rc = 0;
    coil__sshd_ref(s);
    switch (msg) {
    case COIL__SSH_MSG_GLOBAL_REQUEST:
        rc = on_global_request(s, &r);
        break;
    case COIL__SSH_MSG_REQUEST_SUCCESS:
    case COIL__SSH_MSG_REQUEST_FAILURE:
        break; /* answers to nothing we asked: ignored, as sshd does */
    case COIL__SSH_MSG_CHANNEL_OPEN:
        rc = on_open(s, &r);
        break;
    case COIL__SSH_MSG_CHANNEL_OPEN_CONFIRMATION:
    case COIL__SSH_MSG_CHANNEL_OPEN_FAILURE:
    case COIL__SSH_MSG_CHANNEL_WINDOW_ADJUST:
    case COIL__SSH_MSG_CHANNEL_DATA:
    case COIL__SSH_MSG_CHANNEL_EXTENDED_DATA:
    case COIL__SSH_MSG_CHANNEL_EOF:
    case COIL__SSH_MSG_CHANNEL_CLOSE:
    case COIL__SSH_MSG_CHANNEL_REQUEST:
    case COIL__SSH_MSG_CHANNEL_SUCCESS:
    case COIL__SSH_MSG_CHANNEL_FAILURE:
        rc = on_channel_msg(s, msg, &r);
        break;
    default: {
        /* 83..89, 101..127: not ours to know. */
        unsigned char buf[8];
        buf[0] = COIL__SSH_MSG_UNIMPLEMENTED;
        coil__ssh_put32(buf + 1, s->rx_seq - 1);
        coil__sshd_send(s, buf, 5);
        break;
    }
    }
    coil__sshd_unref(s);
    return rc;
}

void coil__sshd_conn_writable(coil__sshd *s)
{
    coil__sshd_conn *cn = &s->conn;
    if (cn->n_slots == 0)
        return;
    coil__sshd_ref(s);
    /* Fair: the channel after the one served first last time goes first,
     * so writers take turns at the room below. */
    uint32_t n = cn->n_slots, start = cn->rr % n;
    int first = 1;
    for (uint32_t k = 0; k < n && coil__sshd_can_send_data(s); k++) {
        if (!cn->chans || cn->n_slots == 0)
            break;
        uint32_t id = (start + k) % cn->n_slots;
        coil__sshd_channel *c = chan_of(s, id);
        if (c && c->started && !c->torn &&
            (c->want_write || c->err_head || c->eof_pending || c->closing)) {
            if (first)
                cn->rr = id + 1;
            first = 0;
            writable(c);
        }
    }
    coil__sshd_unref(s);
}

void coil__sshd_conn_lost(coil__sshd *s, const coil_failure *why)
{
    coil__sshd_conn *cn = &s->conn;
    if (cn->lost)
        return;
    cn->lost = 1;
    coil__sshd_ref(s);
    fwd_close_all(s);
    for (uint32_t i = 0; cn->chans && i < cn->n_slots; i++) {
        coil__sshd_channel *c = cn->chans[i];
        if (!c)
            continue;
        if (!c->started || c->torn) {
            free_chan(c);
            continue;
        }
        char d[320];
        describe_end(c, d, sizeof d);
        coil_failure *f =
            why ? coil_failure_wrap(coil_failure_copy(why), COIL_DOMAIN_COIL,
                                    COIL_ECONNLOST, "%s lost with its connection", d)
                : coil_failure_new(COIL_DOMAIN_COIL, COIL_ECONNLOST,
                                   "%s lost with its connection", d);
        coil__stream_hold(&c->st);
        if (c->linger) {
            coil_timer_cancel(c->linger);
            coil_timer_release(c->linger);
            c->linger = NULL;
        }
        if (c->st.lingering)
            coil__stream_close_done(&c->st, f);
        else if (c->st.state != COIL__STREAM_CLOSED)
            coil__stream_lost(&c->st, f);
        else
            coil_failure_free(f);
        coil__stream_release(&c->st);
    }
    coil__sshd_unref(s);
}

/* ---- the public accessors -----------------------------------------------------------
 */

static coil__sshd_channel *channel_of(const coil_transport *t)
{
    return t && t->ops == &channel_ops ? (coil__sshd_channel *)t : NULL;
}

const coil_ssh_channel_info *coil_ssh_server_channel_info(const coil_transport *t)
{
    coil__sshd_channel *c = channel_of(t);
    return c ? &c->info : NULL;
}

int coil_ssh_server_channel_set_exit(coil_transport *t, int status)
{
    coil__sshd_channel *c = channel_of(t);
    if (!c || status < 0 || status > 255)
        return COIL_EINVAL;
    c->exit_set = 1;
    c->exit_status = status;
    return 0;
}

int coil_ssh_server_channel_write_stderr(coil_transport *t, const void *data, size_t len)
{
    coil__sshd_channel *c = channel_of(t);
    if (!c)
        return COIL_EINVAL;
    if (c->st.state != COIL__STREAM_OPEN || c->st.write_shut_requested || c->sent_eof ||
        c->sent_close)
        return COIL_ECLOSED;
    if (len == 0)
        return 0;
    const unsigned char *p = data;
    if (!c->err_head && c->st.queued == 0 && alive(c->s)) {
        /* At its place already: send what the window takes now. */
        while (len > 0) {
            struct iovec v = {(void *)p, len};
            size_t k = send_packet(c, 1, &v, 1, 0, len);
            if (k == 0)
                break;
            p += k;
            len -= k;
        }
        if (len == 0)
            return 0;
    }
    errchunk *e = malloc(sizeof *e + len);
    if (!e)
        return COIL_ENOMEM;
    e->next = NULL;
    e->pos = c->out_accepted;
    e->off = 0;
    e->len = len;
    memcpy(e->data, p, len);
    if (c->err_tail)
        c->err_tail->next = e;
    else
        c->err_head = e;
    c->err_tail = e;
    return 0;
}

int coil_ssh_server_channel_on_resize(coil_transport *t,
                                      void (*fn)(void *arg, coil_transport *t), void *arg)
{
    coil__sshd_channel *c = channel_of(t);
    if (!c)
        return COIL_EINVAL;
    c->on_resize = fn;
    c->resize_arg = arg;
    return 0;
}
