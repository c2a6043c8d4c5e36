/* The SSH server's connection protocol (ssh/server_channel.c): a server
 * connection on the single-ended memory transport, logged in with
 * coil__sshd_test_skip_kex, fed plain packets built here; what it sends is
 * parsed back packet by packet. Fake clock: the lingering close's timeout
 * is driven by hand. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <coil/coil.h>
#include <coil/memory.h>
#include <coil/ssh_server.h>

#include "server_private.h"
#include "sshd_testutil.h"
#include "testutil.h"

/* ---- the test's protocols ---------------------------------------------------------- */

enum {
    M_ECHO = 1,       /* write back what arrives */
    M_PAUSE = 2,      /* pause reading at connection_made */
    M_WRITE = 4,      /* write `write_n` pattern bytes at connection_made */
    M_CLOSE_EOF = 8,  /* lose_connection on the client's EOF */
    M_PRODUCER = 16,  /* a streaming producer writing 16 KiB pieces */
    M_LATE_WRITE = 32 /* on EOF: write "late", then lose_connection */
};

#define MAX_RECS 128

typedef struct rec {
    int used, made, eof, lost, destroyed, resized, paused_prod;
    int lost_code;
    char lost_msg[400];
    coil_transport *t;
    unsigned char *got;
    size_t got_len;
    size_t produced;
} rec;

static rec recs[MAX_RECS];
static int n_recs;

typedef struct tp {
    coil_protocol base;
    coil_producer prod;
    int mode;
    size_t write_n;
    rec *r;
} tp;

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 7 + (i >> 8));
}

static void produce(tp *p)
{
    rec *r = p->r;
    unsigned char buf[16 * 1024];
    r->paused_prod = 0;
    for (int i = 0; i < 64 && !r->paused_prod && r->t; i++) {
        for (size_t k = 0; k < sizeof buf; k++)
            buf[k] = pattern(r->produced + k);
        if (coil_transport_write(r->t, buf, sizeof buf) != 0)
            break;
        r->produced += sizeof buf;
    }
}

static void prod_pause(coil_producer *pr)
{
    tp *p = (tp *)((char *)pr - offsetof(tp, prod));
    p->r->paused_prod = 1;
}

static void prod_resume(coil_producer *pr)
{
    produce((tp *)((char *)pr - offsetof(tp, prod)));
}

static void prod_stop(coil_producer *pr)
{
    (void)pr;
}

static const coil_producer_ops prod_ops = {prod_pause, prod_resume, prod_stop};

static void tp_made(coil_protocol *pp)
{
    tp *p = (tp *)pp;
    p->r->made = 1;
    p->r->t = pp->transport;
    if (p->mode & M_PAUSE)
        coil_transport_pause_reading(pp->transport);
    if (p->mode & M_WRITE) {
        unsigned char *b = malloc(p->write_n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        for (size_t i = 0; i < p->write_n; i++)
            b[i] = pattern(i);
        CU_ASSERT_EQUAL(coil_transport_write(pp->transport, b, p->write_n), 0);
        free(b);
    }
    if (p->mode & M_PRODUCER) {
        p->prod.ops = &prod_ops;
        CU_ASSERT_EQUAL(coil_transport_register_producer(pp->transport, &p->prod, 1), 0);
        produce(p);
    }
}

static void tp_data(coil_protocol *pp, const void *d, size_t n)
{
    tp *p = (tp *)pp;
    rec *r = p->r;
    unsigned char *g = realloc(r->got, r->got_len + n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    memcpy(g + r->got_len, d, n);
    r->got = g;
    r->got_len += n;
    if (p->mode & M_ECHO)
        coil_transport_write(pp->transport, d, n);
}

static void tp_eof(coil_protocol *pp)
{
    tp *p = (tp *)pp;
    p->r->eof = 1;
    if (p->mode & M_LATE_WRITE)
        coil_transport_write(pp->transport, "late", 4);
    if (p->mode & (M_CLOSE_EOF | M_LATE_WRITE))
        coil_transport_lose_connection(pp->transport);
}

static void tp_lost(coil_protocol *pp, const coil_failure *why)
{
    tp *p = (tp *)pp;
    p->r->lost = 1;
    p->r->lost_code = coil_failure_code(why);
    snprintf(p->r->lost_msg, sizeof p->r->lost_msg, "%s", coil_failure_message(why));
    p->r->t = NULL;
}

static void tp_destroy(coil_protocol *pp)
{
    tp *p = (tp *)pp;
    p->r->destroyed = 1;
    free(p);
}

static const coil_protocol_ops tp_ops = {
    .connection_made = tp_made,
    .data_received = tp_data,
    .read_connection_lost = tp_eof,
    .connection_lost = tp_lost,
    .destroy = tp_destroy,
};

typedef struct tf {
    coil_factory f;
    int mode;
    size_t write_n;
    int refuse;
    char last_peer[64];
} tf;

static coil_protocol *tf_build(coil_factory *f, const coil_address *peer)
{
    tf *x = (tf *)f;
    snprintf(x->last_peer, sizeof x->last_peer, "%s", peer ? peer->name : "");
    if (x->refuse || n_recs >= MAX_RECS)
        return NULL;
    tp *p = calloc(1, sizeof *p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    p->base.ops = &tp_ops;
    p->mode = x->mode;
    p->write_n = x->write_n;
    p->r = &recs[n_recs++];
    p->r->used = 1;
    return &p->base;
}

static const coil_factory_ops tf_ops = {.build_protocol = tf_build};

static tf factory_of(int mode)
{
    tf x;
    memset(&x, 0, sizeof x);
    x.f.ops = &tf_ops;
    x.mode = mode;
    return x;
}

static void recs_reset(void)
{
    for (int i = 0; i < n_recs; i++)
        free(recs[i].got);
    memset(recs, 0, sizeof recs);
    n_recs = 0;
}

/* ---- the fixture ---------------------------------------------------------------------
 */

static char key_path[256];

typedef struct fx {
    coil_reactor *r;
    coil_ssh_server *srv;
    coil_protocol *p;
    coil_transport *t;
    coil__sshd *s;
    unsigned char *acc; /* bytes written by the server, not yet parsed */
    size_t acc_len, acc_off;
    unsigned char pkt[COIL__SSH_MAX_PACKET]; /* the last packet's payload */
    size_t pkt_len;
} fx;

static fx *fx_start(coil_ssh_server_options *o)
{
    recs_reset();
    fx *x = calloc(1, sizeof *x);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    x->r = coil_test_fake_start();
    o->host_key_file = key_path;
    o->generate_host_key = 1;
    o->anonymous = 1;
    coil_failure *err = NULL;
    int rc = coil_ssh_server_new(x->r, o, &x->srv, &err);
    if (rc != 0)
        fprintf(stderr, "\n    coil_ssh_server_new: %s\n",
                err ? coil_failure_message(err) : "?");
    coil_failure_free(err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    coil_address peer;
    memset(&peer, 0, sizeof peer);
    peer.kind = COIL_ADDR_MEMORY;
    snprintf(peer.name, sizeof peer.name, "memory:test");
    x->p = coil_ssh_server_protocol(x->srv, &peer);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x->p);
    x->t = coil_memory_transport_new(x->r, x->p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x->t);
    x->s = coil__sshd_of(x->p);
    coil_memory_transport_clear(x->t);
    coil__sshd_test_skip_kex(x->s, "alice");
    coil_reactor_advance(x->r, 0);
    coil_memory_transport_clear(x->t);
    return x;
}

static void fx_end(fx *x)
{
    coil_memory_transport_free(x->t);
    coil_ssh_server_free(x->srv);
    coil_test_fake_end(x->r);
    free(x->acc);
    free(x);
    for (int i = 0; i < n_recs; i++)
        CU_ASSERT(recs[i].destroyed);
    recs_reset();
}

/* Send one payload built with the writer. */
static void fx_send(fx *x, const coil__sshw *w)
{
    CU_ASSERT_FATAL(!w->bad);
    /* a closed connection takes nothing (COIL_ECLOSED): not a failure here */
    CU_ASSERT_FATAL(sshd_test_frame_feed(x->t, w->p, w->len) != COIL_ENOMEM);
    coil_reactor_advance(x->r, 0);
}

/* The next packet the server sent (its payload in x->pkt); 0 when none. */
static int fx_next(fx *x)
{
    CU_ASSERT_EQUAL_FATAL(sshd_test_gather(x->t, &x->acc, &x->acc_len), 0);
    const unsigned char *p;
    int rc = sshd_test_next_packet(x->acc, x->acc_len, &x->acc_off, &p, &x->pkt_len);
    CU_ASSERT_FATAL(rc >= 0); /* framed right */
    if (rc == 1)
        memcpy(x->pkt, p, x->pkt_len);
    return rc;
}

/* The next packet, which must be message `msg`; a reader after its number. */
static coil__sshr fx_expect(fx *x, int msg)
{
    coil__sshr r;
    int got = fx_next(x);
    if (!got || x->pkt[0] != msg)
        fprintf(stderr, "\n    expected message %d, got %d\n", msg, got ? x->pkt[0] : -1);
    CU_ASSERT_FATAL(got && x->pkt[0] == msg);
    coil__sshr_init(&r, x->pkt + 1, x->pkt_len - 1);
    return r;
}

static void fx_nothing(fx *x)
{
    int got = fx_next(x);
    if (got)
        fprintf(stderr, "\n    expected nothing, got message %d\n", x->pkt[0]);
    CU_ASSERT(!got);
}

#define W(x_, name_)                 \
    unsigned char name_##buf[70000]; \
    coil__sshw name_;                \
    coil__sshw_init(&name_, name_##buf, sizeof name_##buf)

/* Open a session (client id cid) and return the server's id. */
static uint32_t open_session(fx *x, uint32_t cid, uint32_t win, uint32_t maxpkt)
{
    W(x, w);
    coil__sshw_u8(&w, COIL__SSH_MSG_CHANNEL_OPEN);
    coil__sshw_cstring(&w, "session");
    coil__sshw_u32(&w, cid);
    coil__sshw_u32(&w, win);
    coil__sshw_u32(&w, maxpkt);
    fx_send(x, &w);
    coil__sshr r = fx_expect(x, COIL__SSH_MSG_CHANNEL_OPEN_CONFIRMATION);
    uint32_t rcid = 0, sid = 0, swin = 0, smax = 0;
    coil__sshr_u32(&r, &rcid);
    coil__sshr_u32(&r, &sid);
    coil__sshr_u32(&r, &swin);
    coil__sshr_u32(&r, &smax);
    CU_ASSERT_EQUAL(coil__sshr_done(&r, 0), 0);
    CU_ASSERT_EQUAL(rcid, cid);
    return sid;
}

/* A channel request; `arg` (may be NULL) is a string argument. */
static void request(fx *x, uint32_t sid, const char *name, int want, const char *arg)
{
    W(x, w);
    coil__sshw_u8(&w, COIL__SSH_MSG_CHANNEL_REQUEST);
    coil__sshw_u32(&w, sid);
    coil__sshw_cstring(&w, name);
    coil__sshw_bool(&w, want);
    if (arg)
        coil__sshw_cstring(&w, arg);
    fx_send(x, &w);
}

static void expect_reply(fx *x, uint32_t cid, int ok)
{
    coil__sshr r =
        fx_expect(x, ok ? COIL__SSH_MSG_CHANNEL_SUCCESS : COIL__SSH_MSG_CHANNEL_FAILURE);
    uint32_t id = 0;
    coil__sshr_u32(&r, &id);
    CU_ASSERT_EQUAL(id, cid);
}

static void send_data(fx *x, uint32_t sid, const void *d, size_t n)
{
    W(x, w);
    coil__sshw_u8(&w, COIL__SSH_MSG_CHANNEL_DATA);
    coil__sshw_u32(&w, sid);
    coil__sshw_string(&w, d, n);
    fx_send(x, &w);
}

static void send_u32(fx *x, int msg, uint32_t sid, int two, uint32_t v)
{
    W(x, w);
    coil__sshw_u8(&w, (uint8_t)msg);
    coil__sshw_u32(&w, sid);
    if (two)
        coil__sshw_u32(&w, v);
    fx_send(x, &w);
}

/* The next packet is DATA for cid; its bytes in *d (into x->pkt). */
static size_t expect_data(fx *x, uint32_t cid, const unsigned char **d)
{
    coil__sshr r = fx_expect(x, COIL__SSH_MSG_CHANNEL_DATA);
    uint32_t id = 0;
    coil__sshs s;
    coil__sshr_u32(&r, &id);
    coil__sshr_string(&r, &s, COIL__SSH_MAX_PACKET);
    CU_ASSERT_EQUAL(coil__sshr_done(&r, 0), 0);
    CU_ASSERT_EQUAL(id, cid);
    *d = s.p;
    return s.len;
}

static void expect_u32(fx *x, int msg, uint32_t cid)
{
    coil__sshr r = fx_expect(x, msg);
    uint32_t id = 0;
    coil__sshr_u32(&r, &id);
    CU_ASSERT_EQUAL(id, cid);
}

static void expect_exit(fx *x, uint32_t cid, uint32_t status)
{
    coil__sshr r = fx_expect(x, COIL__SSH_MSG_CHANNEL_REQUEST);
    uint32_t id = 0, st = 99;
    coil__sshs name;
    int want = 1;
    coil__sshr_u32(&r, &id);
    coil__sshr_string(&r, &name, 64);
    coil__sshr_bool(&r, &want);
    coil__sshr_u32(&r, &st);
    CU_ASSERT_EQUAL(coil__sshr_done(&r, 0), 0);
    CU_ASSERT_EQUAL(id, cid);
    CU_ASSERT(coil__sshs_eq(name, "exit-status"));
    CU_ASSERT_EQUAL(want, 0);
    CU_ASSERT_EQUAL(st, status);
}

static void expect_disconnect(fx *x)
{
    coil__sshr r;
    int got;
    while ((got = fx_next(x)) && x->pkt[0] != COIL__SSH_MSG_DISCONNECT)
        ;
    CU_ASSERT_FATAL(got);
    coil__sshr_init(&r, x->pkt + 1, x->pkt_len - 1);
    uint32_t code = 0;
    coil__sshr_u32(&r, &code);
    CU_ASSERT_EQUAL(code, COIL__SSH_DISCONNECT_PROTOCOL_ERROR);
}

/* ---- tests
 * ----------------------------------------------------------------------------- */

static void test_exec_echo(void)
{
    tf f = factory_of(M_ECHO | M_CLOSE_EOF);
    coil_ssh_server_options o = {.exec = &f.f};
    fx *x = fx_start(&o);
    uint32_t sid = open_session(x, 7, 1 << 20, 32768);
    request(x, sid, "exec", 1, "cat");
    expect_reply(x, 7, 1);
    CU_ASSERT_EQUAL_FATAL(n_recs, 1);
    rec *r = &recs[0];
    CU_ASSERT(r->made);
    COIL_TEST_ASSERT_HAS(f.last_peer, "alice@");

    const coil_ssh_channel_info *in = coil_ssh_server_channel_info(r->t);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    CU_ASSERT_STRING_EQUAL(in->user, "alice");
    CU_ASSERT_STRING_EQUAL(in->auth_method, "none");
    CU_ASSERT_STRING_EQUAL(in->channel_type, "session");
    CU_ASSERT_STRING_EQUAL(in->request, "exec");
    CU_ASSERT_STRING_EQUAL(in->command, "cat");
    CU_ASSERT_STRING_EQUAL(in->client_version, "SSH-2.0-coil-test");
    CU_ASSERT_EQUAL(in->has_pty, 0);
    coil_transport_info ti;
    CU_ASSERT_EQUAL(coil_transport_info_get(r->t, &ti), 0);
    CU_ASSERT_STRING_EQUAL(ti.kind, "ssh-channel");
    COIL_TEST_ASSERT_HAS(ti.stack, "ssh-channel/memory");
    const coil_transport_layer_info *li = coil_transport_info_layer(&ti, "ssh-channel");
    CU_ASSERT_PTR_NOT_NULL_FATAL(li);
    CU_ASSERT_STRING_EQUAL(li->detail, "exec 'cat'");
    CU_ASSERT_STRING_EQUAL(li->peer, "alice (none)");
    CU_ASSERT_STRING_EQUAL(li->protocol, "SSH-2.0-coil-test");
    CU_ASSERT_EQUAL(li->verified, 1);
    coil_address a;
    CU_ASSERT_EQUAL(coil_transport_get_peer(r->t, &a), 0);
    coil_address below; /* the connection's own */
    CU_ASSERT_EQUAL(coil_transport_get_peer(x->t, &below), 0);
    CU_ASSERT_EQUAL(a.kind, COIL_ADDR_MEMORY);
    CU_ASSERT_STRING_EQUAL(a.name, below.name);
    CU_ASSERT_PTR_NULL(coil_ssh_server_channel_info(x->t)); /* not a channel */

    send_data(x, sid, "hello", 5);
    const unsigned char *d;
    size_t n = expect_data(x, 7, &d);
    CU_ASSERT_EQUAL(n, 5);
    CU_ASSERT(memcmp(d, "hello", 5) == 0);

    /* EOF: the protocol closes; exec's status 0, EOF, CLOSE in that order. */
    send_u32(x, COIL__SSH_MSG_CHANNEL_EOF, sid, 0, 0);
    CU_ASSERT(r->eof);
    expect_exit(x, 7, 0);
    expect_u32(x, COIL__SSH_MSG_CHANNEL_EOF, 7);
    expect_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, 7);
    fx_nothing(x);
    CU_ASSERT(!r->lost); /* lingering until the client's CLOSE */
    coil_ssh_server_stats st;
    coil_ssh_server_get_stats(x->srv, &st);
    CU_ASSERT_EQUAL(st.channels, 1);
    send_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, sid, 0, 0);
    CU_ASSERT(r->lost);
    CU_ASSERT_EQUAL(r->lost_code, COIL_ECLOSED);
    fx_nothing(x); /* our CLOSE went already */
    coil_ssh_server_get_stats(x->srv, &st);
    CU_ASSERT_EQUAL(st.channels, 0);
    /* The number is free again. */
    CU_ASSERT_EQUAL(open_session(x, 8, 1 << 20, 32768), sid);
    fx_end(x);
}

static void test_no_factory_and_second_exec(void)
{
    tf f = factory_of(M_ECHO);
    coil_ssh_server_options o = {.exec = &f.f};
    fx *x = fx_start(&o);
    uint32_t sid = open_session(x, 1, 1 << 20, 32768);
    request(x, sid, "shell", 1, NULL); /* no shell factory */
    expect_reply(x, 1, 0);
    request(x, sid, "subsystem", 1, "sftp");
    expect_reply(x, 1, 0);
    request(x, sid, "signal", 1, "TERM");
    expect_reply(x, 1, 0);
    request(x, sid, "x11-req", 1, NULL);
    expect_reply(x, 1, 0);
    request(x, sid, "keepalive@openssh.com", 1, NULL);
    expect_reply(x, 1, 0);
    request(x, sid, "keepalive@openssh.com", 0, NULL);
    fx_nothing(x);
    request(x, sid, "exec", 1, "cat");
    expect_reply(x, 1, 1);
    request(x, sid, "exec", 1, "ls"); /* a second one on the channel */
    expect_reply(x, 1, 0);
    CU_ASSERT_EQUAL(n_recs, 1);
    f.refuse = 1;
    uint32_t sid2 = open_session(x, 2, 1 << 20, 32768);
    request(x, sid2, "exec", 1, "cat"); /* the factory says no */
    expect_reply(x, 2, 0);
    fx_end(x);
}

static void test_window_honoured(void)
{
    tf f = factory_of(M_WRITE);
    f.write_n = 100 * 1024;
    coil_ssh_server_options o = {.exec = &f.f};
    fx *x = fx_start(&o);
    uint32_t sid = open_session(x, 3, 24 * 1024, 1024);
    request(x, sid, "exec", 0, "yes");
    size_t total = 0, window = 24 * 1024;
    unsigned char *all = malloc(f.write_n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(all);
    while (total < f.write_n) {
        size_t round = 0;
        while (fx_next(x)) {
            CU_ASSERT_EQUAL_FATAL(x->pkt[0], COIL__SSH_MSG_CHANNEL_DATA);
            coil__sshr r;
            coil__sshr_init(&r, x->pkt + 1, x->pkt_len - 1);
            uint32_t id;
            coil__sshs s;
            coil__sshr_u32(&r, &id);
            coil__sshr_string(&r, &s, 1 << 20);
            CU_ASSERT_EQUAL(id, 3);
            CU_ASSERT(s.len <= 1024);
            CU_ASSERT_FATAL(total + s.len <= f.write_n);
            memcpy(all + total, s.p, s.len);
            total += s.len;
            round += s.len;
        }
        CU_ASSERT_FATAL(round <= window);
        CU_ASSERT_FATAL(round > 0);
        window = 10000;
        send_u32(x, COIL__SSH_MSG_CHANNEL_WINDOW_ADJUST, sid, 1, (uint32_t)window);
    }
    CU_ASSERT_EQUAL(total, f.write_n);
    for (size_t i = 0; i < total; i++)
        if (all[i] != pattern(i)) {
            CU_FAIL("data differs");
            break;
        }
    free(all);
    fx_end(x);
}

static void test_window_overflow(void)
{
    tf f = factory_of(M_PAUSE);
    coil_ssh_server_options o = {.exec = &f.f, .window = 4096, .max_packet = 32768};
    fx *x = fx_start(&o);
    uint32_t sid = open_session(x, 4, 1 << 20, 32768);
    request(x, sid, "exec", 0, "cat");
    static unsigned char b[5000];
    send_data(x, sid, b, 2000);
    send_data(x, sid, b, 2000);
    fx_nothing(x);
    coil_test_log_capture_start();
    send_data(x, sid, b, 97); /* 4097 of a window of 4096 */
    expect_disconnect(x);
    coil_reactor_advance(x->r, 0);
    CU_ASSERT(recs[0].lost);
    coil_test_log_capture_stop();
    fx_end(x);
}

static void test_max_packet_overflow(void)
{
    tf f = factory_of(M_ECHO);
    coil_ssh_server_options o = {.exec = &f.f, .max_packet = 1024};
    fx *x = fx_start(&o);
    coil_test_log_capture_start();
    uint32_t sid = open_session(x, 4, 1 << 20, 32768);
    request(x, sid, "exec", 0, "cat");
    static unsigned char b[2000];
    send_data(x, sid, b, 1025);
    expect_disconnect(x);
    coil_reactor_advance(x->r, 0);
    CU_ASSERT(recs[0].lost);
    CU_ASSERT_EQUAL(recs[0].lost_code, COIL_ECONNLOST);
    coil_test_log_capture_stop();
    fx_end(x);
}

static void test_paused_stops_window(void)
{
    tf f = factory_of(M_PAUSE);
    coil_ssh_server_options o = {.exec = &f.f, .window = 64 * 1024};
    fx *x = fx_start(&o);
    uint32_t sid = open_session(x, 5, 1 << 20, 32768);
    request(x, sid, "exec", 0, "cat");
    rec *r = &recs[0];
    static unsigned char b[32 * 1024];
    for (size_t i = 0; i < sizeof b; i++)
        b[i] = (unsigned char)i;
    send_data(x, sid, b, sizeof b);
    send_data(x, sid, b, sizeof b);
    coil_reactor_advance(x->r, 0);
    fx_nothing(x); /* no WINDOW_ADJUST while paused */
    CU_ASSERT_EQUAL(r->got_len, 0);
    coil_transport_info ti;
    CU_ASSERT_EQUAL(coil_transport_info_get(r->t, &ti), 0);
    CU_ASSERT_EQUAL(ti.reading, 0);
    CU_ASSERT_EQUAL(coil_transport_pending(r->t), 2 * sizeof b); /* held, bounded */
    /* Resumed: everything arrives, and the window reopens. */
    coil_transport_resume_reading(r->t);
    coil_reactor_advance(x->r, 0);
    CU_ASSERT_EQUAL(r->got_len, 2 * sizeof b);
    CU_ASSERT_EQUAL(coil_transport_pending(r->t), 0);
    coil__sshr rr = fx_expect(x, COIL__SSH_MSG_CHANNEL_WINDOW_ADJUST);
    uint32_t id = 0, n = 0;
    coil__sshr_u32(&rr, &id);
    coil__sshr_u32(&rr, &n);
    CU_ASSERT_EQUAL(id, 5);
    CU_ASSERT_EQUAL(n, 64 * 1024);
    /* Paused again and filled: one byte past the window is the client's
     * fault; what we held is bounded by the window. */
    coil_transport_pause_reading(r->t);
    send_data(x, sid, b, sizeof b);
    send_data(x, sid, b, sizeof b);
    fx_nothing(x);
    CU_ASSERT_EQUAL(coil_transport_pending(r->t), 64 * 1024); /* one window, no more */
    coil_test_log_capture_start();
    send_data(x, sid, b, 1);
    expect_disconnect(x);
    coil_test_log_capture_stop();
    coil_reactor_advance(x->r, 0);
    CU_ASSERT_EQUAL(r->got_len, 2 * sizeof b);
    fx_end(x);
}

static void test_slow_client_pauses_producer(void)
{
    tf f = factory_of(M_PRODUCER);
    coil_ssh_server_options o = {.exec = &f.f};
    fx *x = fx_start(&o);
    uint32_t sid = open_session(x, 6, 32 * 1024, 32 * 1024);
    request(x, sid, "exec", 0, "yes");
    rec *r = &recs[0];
    CU_ASSERT(r->paused_prod);
    coil_transport_info ti;
    CU_ASSERT_EQUAL(coil_transport_info_get(r->t, &ti), 0);
    /* One window sent, the rest queued up to the mark plus one write. */
    CU_ASSERT(ti.write_queued <= ti.high_water + 16 * 1024);
    CU_ASSERT(r->produced <= 32 * 1024 + ti.high_water + 16 * 1024);
    size_t total = 0;
    const unsigned char *d;
    while (fx_next(x)) {
        CU_ASSERT_EQUAL_FATAL(x->pkt[0], COIL__SSH_MSG_CHANNEL_DATA);
        total += x->pkt_len - 9;
    }
    (void)d;
    CU_ASSERT_EQUAL(total, 32 * 1024);
    /* The client takes more: the producer is resumed once below the low mark. */
    size_t before = r->produced;
    send_u32(x, COIL__SSH_MSG_CHANNEL_WINDOW_ADJUST, sid, 1, 1 << 20);
    CU_ASSERT(r->produced > before);
    CU_ASSERT(r->paused_prod);
    fx_end(x);
}

static void test_half_close(void)
{
    tf f = factory_of(M_LATE_WRITE);
    coil_ssh_server_options o = {.exec = &f.f};
    fx *x = fx_start(&o);
    uint32_t sid = open_session(x, 9, 1 << 20, 32768);
    request(x, sid, "exec", 1, "cat");
    expect_reply(x, 9, 1);
    send_data(x, sid, "abc", 3);
    send_u32(x, COIL__SSH_MSG_CHANNEL_EOF, sid, 0, 0);
    rec *r = &recs[0];
    CU_ASSERT(r->eof);
    CU_ASSERT_EQUAL(r->got_len, 3);
    const unsigned char *d;
    size_t n = expect_data(x, 9, &d); /* written after the client's EOF */
    CU_ASSERT_EQUAL(n, 4);
    CU_ASSERT(memcmp(d, "late", 4) == 0);
    expect_exit(x, 9, 0);
    expect_u32(x, COIL__SSH_MSG_CHANNEL_EOF, 9);
    expect_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, 9);
    send_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, sid, 0, 0);
    CU_ASSERT(r->lost);
    CU_ASSERT_EQUAL(r->lost_code, COIL_ECLOSED);
    fx_end(x);
}

static void test_exit_status_shell(void)
{
    tf f = factory_of(0);
    coil_ssh_server_options o = {.shell = &f.f};
    fx *x = fx_start(&o);
    uint32_t sid = open_session(x, 10, 1 << 20, 32768);
    request(x, sid, "shell", 1, NULL);
    expect_reply(x, 10, 1);
    rec *r = &recs[0];
    CU_ASSERT_EQUAL(coil_ssh_server_channel_set_exit(r->t, 256), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_ssh_server_channel_set_exit(x->t, 1), COIL_EINVAL);
    CU_ASSERT_EQUAL(coil_ssh_server_channel_set_exit(r->t, 3), 0);
    coil_transport_write(r->t, "bye\n", 4);
    coil_transport_lose_connection(r->t);
    const unsigned char *d;
    CU_ASSERT_EQUAL(expect_data(x, 10, &d), 4);
    expect_exit(x, 10, 3);
    expect_u32(x, COIL__SSH_MSG_CHANNEL_EOF, 10);
    expect_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, 10);
    send_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, sid, 0, 0);
    CU_ASSERT(r->lost);
    CU_ASSERT_EQUAL(r->lost_code, COIL_ECLOSED);

    /* A shell without set_exit sends no status. */
    sid = open_session(x, 11, 1 << 20, 32768);
    request(x, sid, "shell", 0, NULL);
    coil_transport_lose_connection(recs[1].t);
    expect_u32(x, COIL__SSH_MSG_CHANNEL_EOF, 11);
    expect_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, 11);
    send_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, sid, 0, 0);
    fx_end(x);
}

static int resized;
static void on_resize(void *arg, coil_transport *t)
{
    const coil_ssh_channel_info *in = coil_ssh_server_channel_info(t);
    CU_ASSERT_PTR_EQUAL(arg, &resized);
    CU_ASSERT_EQUAL(in->cols, 100);
    resized++;
}

static void pty_req(fx *x, uint32_t sid, int want)
{
    W(x, w);
    coil__sshw_u8(&w, COIL__SSH_MSG_CHANNEL_REQUEST);
    coil__sshw_u32(&w, sid);
    coil__sshw_cstring(&w, "pty-req");
    coil__sshw_bool(&w, want);
    coil__sshw_cstring(&w, "xterm");
    coil__sshw_u32(&w, 80);
    coil__sshw_u32(&w, 24);
    coil__sshw_u32(&w, 640);
    coil__sshw_u32(&w, 480);
    coil__sshw_string(&w, "\x81\0\0\x96\0\0", 6);
    fx_send(x, &w);
}

static void env_req(fx *x, uint32_t sid, const char *n, const char *v)
{
    W(x, w);
    coil__sshw_u8(&w, COIL__SSH_MSG_CHANNEL_REQUEST);
    coil__sshw_u32(&w, sid);
    coil__sshw_cstring(&w, "env");
    coil__sshw_bool(&w, 1);
    coil__sshw_cstring(&w, n);
    coil__sshw_cstring(&w, v);
    fx_send(x, &w);
}

static void test_pty_env_window_change(void)
{
    tf f = factory_of(M_ECHO);
    coil_ssh_server_options o = {.shell = &f.f};
    fx *x = fx_start(&o);
    uint32_t sid = open_session(x, 12, 1 << 20, 32768);
    pty_req(x, sid, 1);
    expect_reply(x, 12, 1);
    pty_req(x, sid, 1); /* one pty per session */
    expect_reply(x, 12, 0);
    env_req(x, sid, "LANG", "C.UTF-8");
    expect_reply(x, 12, 1);
    env_req(x, sid, "BAD=NAME", "x");
    expect_reply(x, 12, 0);
    char big[1100];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = 0;
    env_req(x, sid, "BIG", big); /* over 1 KiB */
    expect_reply(x, 12, 0);
    for (int i = 1; i < 64; i++) {
        char n[16];
        snprintf(n, sizeof n, "V%d", i);
        env_req(x, sid, n, "1");
        expect_reply(x, 12, 1);
    }
    env_req(x, sid, "V64", "1"); /* the 65th */
    expect_reply(x, 12, 0);
    request(x, sid, "shell", 1, NULL);
    expect_reply(x, 12, 1);
    rec *r = &recs[0];
    const coil_ssh_channel_info *in = coil_ssh_server_channel_info(r->t);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    CU_ASSERT_EQUAL(in->has_pty, 1);
    CU_ASSERT_STRING_EQUAL(in->term, "xterm");
    CU_ASSERT_EQUAL(in->cols, 80);
    CU_ASSERT_EQUAL(in->rows, 24);
    CU_ASSERT_EQUAL(in->width_px, 640);
    CU_ASSERT_EQUAL(in->height_px, 480);
    CU_ASSERT_EQUAL(in->n_env, 64);
    CU_ASSERT_STRING_EQUAL(in->env[0], "LANG=C.UTF-8");
    CU_ASSERT_STRING_EQUAL(in->env[63], "V63=1");
    CU_ASSERT_STRING_EQUAL(in->request, "shell");
    coil_transport_info ti;
    CU_ASSERT_EQUAL(coil_transport_info_get(r->t, &ti), 0);
    CU_ASSERT_STRING_EQUAL(coil_transport_info_layer(&ti, "ssh-channel")->detail,
                           "shell (pty xterm 80x24)");

    CU_ASSERT_EQUAL(coil_ssh_server_channel_on_resize(r->t, on_resize, &resized), 0);
    resized = 0;
    W(x, w);
    coil__sshw_u8(&w, COIL__SSH_MSG_CHANNEL_REQUEST);
    coil__sshw_u32(&w, sid);
    coil__sshw_cstring(&w, "window-change");
    coil__sshw_bool(&w, 0);
    coil__sshw_u32(&w, 100);
    coil__sshw_u32(&w, 40);
    coil__sshw_u32(&w, 0);
    coil__sshw_u32(&w, 0);
    fx_send(x, &w);
    fx_nothing(x);
    CU_ASSERT_EQUAL(resized, 1);
    CU_ASSERT_EQUAL(in->cols, 100);
    CU_ASSERT_EQUAL(in->rows, 40);
    fx_end(x);
}

static coil_factory *allow_7000(void *arg, const char *user, const char *host, int port)
{
    CU_ASSERT_STRING_EQUAL(user, "alice");
    CU_ASSERT_STRING_EQUAL(host, "127.0.0.1");
    return port == 7000 ? arg : NULL;
}

static void open_tcpip(fx *x, uint32_t cid, int port)
{
    W(x, w);
    coil__sshw_u8(&w, COIL__SSH_MSG_CHANNEL_OPEN);
    coil__sshw_cstring(&w, "direct-tcpip");
    coil__sshw_u32(&w, cid);
    coil__sshw_u32(&w, 1 << 20);
    coil__sshw_u32(&w, 32768);
    coil__sshw_cstring(&w, "127.0.0.1");
    coil__sshw_u32(&w, (uint32_t)port);
    coil__sshw_cstring(&w, "10.0.0.1");
    coil__sshw_u32(&w, 5555);
    fx_send(x, &w);
}

static void expect_open_failure(fx *x, uint32_t cid, uint32_t code)
{
    coil__sshr r = fx_expect(x, COIL__SSH_MSG_CHANNEL_OPEN_FAILURE);
    uint32_t id = 0, c = 0;
    coil__sshr_u32(&r, &id);
    coil__sshr_u32(&r, &c);
    CU_ASSERT_EQUAL(id, cid);
    CU_ASSERT_EQUAL(c, code);
}

static void test_direct_tcpip(void)
{
    tf f = factory_of(M_ECHO);
    coil_test_log_capture_start();
    coil_ssh_server_options o0 = {.exec = &f.f};
    fx *x = fx_start(&o0);
    open_tcpip(x, 20, 7000); /* denied by default */
    expect_open_failure(x, 20, 1);
    fx_end(x);

    coil_ssh_server_options o = {.direct_tcpip = allow_7000, .direct_tcpip_arg = &f.f};
    x = fx_start(&o);
    open_tcpip(x, 21, 7001);
    expect_open_failure(x, 21, 1);
    open_tcpip(x, 22, 7000);
    coil__sshr r = fx_expect(x, COIL__SSH_MSG_CHANNEL_OPEN_CONFIRMATION);
    uint32_t cid = 0, sid = 0;
    coil__sshr_u32(&r, &cid);
    coil__sshr_u32(&r, &sid);
    CU_ASSERT_EQUAL(cid, 22);
    CU_ASSERT_EQUAL_FATAL(n_recs, 1);
    CU_ASSERT(recs[0].made);
    const coil_ssh_channel_info *in = coil_ssh_server_channel_info(recs[0].t);
    CU_ASSERT_STRING_EQUAL(in->channel_type, "direct-tcpip");
    CU_ASSERT_STRING_EQUAL(in->command, "127.0.0.1:7000");
    coil_transport_info ti;
    CU_ASSERT_EQUAL(coil_transport_info_get(recs[0].t, &ti), 0);
    CU_ASSERT_STRING_EQUAL(coil_transport_info_layer(&ti, "ssh-channel")->detail,
                           "direct-tcpip 127.0.0.1:7000");
    send_data(x, sid, "ping", 4);
    const unsigned char *d;
    CU_ASSERT_EQUAL(expect_data(x, 22, &d), 4);
    request(x, sid, "exec", 1, "cat"); /* no requests on tcpip channels */
    expect_reply(x, 22, 0);
    /* The client's CLOSE without EOF: lost. */
    send_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, sid, 0, 0);
    expect_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, 22);
    CU_ASSERT(recs[0].lost);
    CU_ASSERT_EQUAL(recs[0].lost_code, COIL_ECONNLOST);
    fx_end(x);
    coil_test_log_capture_stop();
}

static void test_fifty_channels(void)
{
    tf f = factory_of(M_ECHO | M_CLOSE_EOF);
    coil_ssh_server_options o = {.exec = &f.f};
    fx *x = fx_start(&o);
    uint32_t sid[50];
    for (uint32_t i = 0; i < 50; i++) {
        sid[i] = open_session(x, 100 + i, 1 << 20, 32768);
        request(x, sid[i], "exec", 1, "cat");
        expect_reply(x, 100 + i, 1);
    }
    coil_ssh_server_stats st;
    coil_ssh_server_get_stats(x->srv, &st);
    CU_ASSERT_EQUAL(st.channels, 50);
    for (uint32_t i = 0; i < 50; i++) {
        char m[16];
        int n = snprintf(m, sizeof m, "ch%u", i);
        send_data(x, sid[i], m, (size_t)n);
        const unsigned char *d;
        size_t k = expect_data(x, 100 + i, &d);
        CU_ASSERT(k == (size_t)n && memcmp(d, m, k) == 0);
    }
    for (uint32_t i = 0; i < 50; i++) {
        send_u32(x, COIL__SSH_MSG_CHANNEL_EOF, sid[i], 0, 0);
        expect_exit(x, 100 + i, 0);
        expect_u32(x, COIL__SSH_MSG_CHANNEL_EOF, 100 + i);
        expect_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, 100 + i);
        send_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, sid[i], 0, 0);
    }
    coil_ssh_server_get_stats(x->srv, &st);
    CU_ASSERT_EQUAL(st.channels, 0);
    for (int i = 0; i < 50; i++)
        CU_ASSERT(recs[i].lost && recs[i].lost_code == COIL_ECLOSED);
    fx_end(x);
}

static void test_channel_cap(void)
{
    coil_ssh_server_options o = {.max_channels = 3};
    fx *x = fx_start(&o);
    uint32_t a = open_session(x, 1, 1000, 1000);
    open_session(x, 2, 1000, 1000);
    open_session(x, 3, 1000, 1000);
    W(x, w);
    coil__sshw_u8(&w, COIL__SSH_MSG_CHANNEL_OPEN);
    coil__sshw_cstring(&w, "session");
    coil__sshw_u32(&w, 4);
    coil__sshw_u32(&w, 1000);
    coil__sshw_u32(&w, 1000);
    fx_send(x, &w);
    expect_open_failure(x, 4, 4);
    send_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, a, 0, 0);
    expect_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, 1);
    CU_ASSERT_EQUAL(open_session(x, 5, 1000, 1000), a);
    /* Unknown types. */
    W(x, w2);
    coil__sshw_u8(&w2, COIL__SSH_MSG_CHANNEL_OPEN);
    coil__sshw_cstring(&w2, "x11");
    coil__sshw_u32(&w2, 6);
    coil__sshw_u32(&w2, 1000);
    coil__sshw_u32(&w2, 1000);
    fx_send(x, &w2);
    expect_open_failure(x, 6, 3);
    fx_end(x);
}

static void global_req(fx *x, const char *name, int want)
{
    W(x, w);
    coil__sshw_u8(&w, COIL__SSH_MSG_GLOBAL_REQUEST);
    coil__sshw_cstring(&w, name);
    coil__sshw_bool(&w, want);
    if (strstr(name, "tcpip-forward")) {
        coil__sshw_cstring(&w, "127.0.0.1");
        coil__sshw_u32(&w, 8080);
    }
    fx_send(x, &w);
}

static void test_global_requests(void)
{
    coil_ssh_server_options o = {0};
    fx *x = fx_start(&o);
    global_req(x, "keepalive@openssh.com", 1);
    fx_expect(x, COIL__SSH_MSG_REQUEST_FAILURE);
    global_req(x, "tcpip-forward", 1);
    fx_expect(x, COIL__SSH_MSG_REQUEST_FAILURE);
    global_req(x, "cancel-tcpip-forward", 1);
    fx_expect(x, COIL__SSH_MSG_REQUEST_FAILURE);
    global_req(x, "whatever@example.com", 0);
    fx_nothing(x);
    open_session(x, 1, 1000, 1000);
    global_req(x, "no-more-sessions@openssh.com", 1);
    fx_expect(x, COIL__SSH_MSG_REQUEST_SUCCESS);
    /* REQUEST_SUCCESS/FAILURE from the client: ignored. */
    unsigned char m = COIL__SSH_MSG_REQUEST_FAILURE;
    coil__sshw w;
    coil__sshw_init(&w, &m, 1);
    w.len = 1;
    fx_send(x, &w);
    fx_nothing(x);
    /* Another session after no-more-sessions: sshd's "possible attack". */
    coil_test_log_capture_start();
    W(x, w2);
    coil__sshw_u8(&w2, COIL__SSH_MSG_CHANNEL_OPEN);
    coil__sshw_cstring(&w2, "session");
    coil__sshw_u32(&w2, 2);
    coil__sshw_u32(&w2, 1000);
    coil__sshw_u32(&w2, 1000);
    fx_send(x, &w2);
    expect_disconnect(x);
    coil_test_log_capture_stop();
    fx_end(x);
}

static void test_unknown_channel(void)
{
    coil_ssh_server_options o = {0};
    fx *x = fx_start(&o);
    coil_test_log_capture_start();
    send_data(x, 42, "x", 1);
    expect_disconnect(x);
    coil_test_log_capture_stop();
    fx_end(x);
}

static void test_stderr_order(void)
{
    tf f = factory_of(0);
    coil_ssh_server_options o = {.exec = &f.f};
    fx *x = fx_start(&o);
    uint32_t sid = open_session(x, 30, 2, 32768);
    request(x, sid, "exec", 0, "sh");
    coil_transport *t = recs[0].t;
    CU_ASSERT_EQUAL(coil_transport_write(t, "out1", 4), 0);
    CU_ASSERT_EQUAL(coil_ssh_server_channel_write_stderr(t, "err", 3), 0);
    CU_ASSERT_EQUAL(coil_transport_write(t, "out2", 4), 0);
    CU_ASSERT_EQUAL(coil_ssh_server_channel_write_stderr(x->t, "e", 1), COIL_EINVAL);
    const unsigned char *d;
    CU_ASSERT_EQUAL(expect_data(x, 30, &d), 2);
    CU_ASSERT(memcmp(d, "ou", 2) == 0);
    fx_nothing(x);
    send_u32(x, COIL__SSH_MSG_CHANNEL_WINDOW_ADJUST, sid, 1, 100);
    CU_ASSERT_EQUAL(expect_data(x, 30, &d), 2);
    CU_ASSERT(memcmp(d, "t1", 2) == 0);
    coil__sshr r = fx_expect(x, COIL__SSH_MSG_CHANNEL_EXTENDED_DATA);
    uint32_t id = 0, code = 0;
    coil__sshs s;
    coil__sshr_u32(&r, &id);
    coil__sshr_u32(&r, &code);
    coil__sshr_string(&r, &s, 100);
    CU_ASSERT_EQUAL(id, 30);
    CU_ASSERT_EQUAL(code, 1);
    CU_ASSERT(coil__sshs_eq(s, "err"));
    CU_ASSERT_EQUAL(expect_data(x, 30, &d), 4);
    CU_ASSERT(memcmp(d, "out2", 4) == 0);
    /* EXTENDED_DATA from the client: ignored, counted in the window. */
    W(x, w);
    coil__sshw_u8(&w, COIL__SSH_MSG_CHANNEL_EXTENDED_DATA);
    coil__sshw_u32(&w, sid);
    coil__sshw_u32(&w, 1);
    coil__sshw_string(&w, "zzz", 3);
    fx_send(x, &w);
    CU_ASSERT_EQUAL(recs[0].got_len, 0);
    coil_transport_lose_connection(t);
    CU_ASSERT_EQUAL(coil_ssh_server_channel_write_stderr(t, "e", 1), COIL_ECLOSED);
    fx_end(x);
}

static void test_linger_timeout_and_abort(void)
{
    tf f = factory_of(0);
    coil_ssh_server_options o = {.exec = &f.f};
    fx *x = fx_start(&o);
    uint32_t sid = open_session(x, 40, 1 << 20, 32768);
    request(x, sid, "exec", 0, "true");
    coil_transport_lose_connection(recs[0].t);
    expect_exit(x, 40, 0);
    expect_u32(x, COIL__SSH_MSG_CHANNEL_EOF, 40);
    expect_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, 40);
    coil_reactor_advance(x->r, 29);
    CU_ASSERT(!recs[0].lost);
    coil_reactor_advance(x->r, 2);
    CU_ASSERT(recs[0].lost);
    CU_ASSERT_EQUAL(recs[0].lost_code, COIL_ECONNLOST);
    COIL_TEST_ASSERT_HAS(recs[0].lost_msg, "did not answer our CLOSE");
    /* Its number stays taken until the client's late CLOSE. */
    uint32_t sid2 = open_session(x, 41, 1 << 20, 32768);
    CU_ASSERT(sid2 != sid);
    send_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, sid, 0, 0);
    fx_nothing(x);
    /* abort: CLOSE at once, no EOF. */
    request(x, sid2, "exec", 0, "true");
    coil_transport_abort_connection(recs[1].t);
    coil_reactor_advance(x->r, 0);
    expect_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, 41);
    CU_ASSERT(recs[1].lost);
    CU_ASSERT_EQUAL(recs[1].lost_code, COIL_EABORTED);
    send_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, sid2, 0, 0);
    fx_nothing(x);
    coil_ssh_server_stats st;
    coil_ssh_server_get_stats(x->srv, &st);
    CU_ASSERT_EQUAL(st.channels, 0);
    CU_ASSERT_EQUAL(open_session(x, 42, 1000, 1000), 0);
    fx_end(x);
}

static void test_connection_lost(void)
{
    tf f = factory_of(M_PAUSE);
    coil_ssh_server_options o = {.exec = &f.f};
    fx *x = fx_start(&o);
    for (uint32_t i = 0; i < 3; i++) {
        uint32_t sid = open_session(x, i, 1 << 20, 32768);
        if (i < 2)
            request(x, sid, "exec", 0, "cat");
        send_data(x, sid, "buffered", 8);
    }
    coil_transport_lose_connection(recs[1].t); /* lingering */
    coil_memory_transport_peer_close(x->t, 1);
    coil_reactor_advance(x->r, 0);
    for (int i = 0; i < 2; i++) {
        CU_ASSERT(recs[i].lost);
        CU_ASSERT_EQUAL(recs[i].lost_code, COIL_ECONNLOST);
    }
    fx_end(x);
}

/* Two writers behind a slow connection take turns: the second is not
 * starved while the first still has data. */
static void test_fair_writers(void)
{
    tf f = factory_of(M_WRITE);
    f.write_n = 512 * 1024;
    coil_ssh_server_options o = {.exec = &f.f};
    fx *x = fx_start(&o);
    /* Both start with a closed window: all they write waits in their
     * queues; then one feed opens both windows while the connection below
     * takes 16 KiB a round. */
    uint32_t a = open_session(x, 50, 0, 32768);
    uint32_t b = open_session(x, 51, 0, 32768);
    request(x, a, "exec", 0, "yes");
    request(x, b, "exec", 0, "yes");
    fx_nothing(x);
    coil_memory_transport_set_window(x->t, 0);
    unsigned char two[64];
    size_t n = 0;
    for (int i = 0; i < 2; i++) {
        unsigned char m[9];
        m[0] = COIL__SSH_MSG_CHANNEL_WINDOW_ADJUST;
        coil__ssh_put32(m + 1, i ? b : a);
        coil__ssh_put32(m + 5, 1 << 20);
        n += coil__sshd_test_frame(m, sizeof m, two + n, sizeof two - n);
    }
    coil_memory_transport_feed(x->t, two, n);
    size_t got[2] = {0, 0}, b_when_a_done = 0;
    for (int round = 0; round < 1000 && (got[0] < f.write_n || got[1] < f.write_n);
         round++) {
        coil_memory_transport_set_window(x->t, 16 * 1024);
        coil_reactor_advance(x->r, 0);
        while (fx_next(x)) {
            CU_ASSERT_EQUAL_FATAL(x->pkt[0], COIL__SSH_MSG_CHANNEL_DATA);
            uint32_t cid = coil__ssh_get32(x->pkt + 1);
            CU_ASSERT_FATAL(cid == 50 || cid == 51);
            got[cid - 50] += coil__ssh_get32(x->pkt + 5);
            if (cid == 50 && got[0] == f.write_n)
                b_when_a_done = got[1];
        }
    }
    CU_ASSERT_EQUAL(got[0], f.write_n);
    CU_ASSERT_EQUAL(got[1], f.write_n);
    /* Fair within the room of a few packets. */
    CU_ASSERT(b_when_a_done + 4 * 32768 >= f.write_n);
    if (b_when_a_done + 4 * 32768 < f.write_n)
        fprintf(stderr, "\n    the second writer had %zu bytes when the first finished\n",
                b_when_a_done);
    fx_end(x);
}

static int add(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_exec_echo),
        COIL_TEST(test_no_factory_and_second_exec),
        COIL_TEST(test_window_honoured),
        COIL_TEST(test_window_overflow),
        COIL_TEST(test_max_packet_overflow),
        COIL_TEST(test_paused_stops_window),
        COIL_TEST(test_slow_client_pauses_producer),
        COIL_TEST(test_half_close),
        COIL_TEST(test_exit_status_shell),
        COIL_TEST(test_pty_env_window_change),
        COIL_TEST(test_direct_tcpip),
        COIL_TEST(test_fifty_channels),
        COIL_TEST(test_channel_cap),
        COIL_TEST(test_global_requests),
        COIL_TEST(test_unknown_channel),
        COIL_TEST(test_stderr_order),
        COIL_TEST(test_linger_timeout_and_abort),
        COIL_TEST(test_connection_lost),
        COIL_TEST(test_fair_writers),
        {NULL, NULL},
    };
    return coil_test_add_suite("sshd_channel", cases);
}

int main(void)
{
    /* One host key for every case, generated by the first. */
    if (coil_test_temp_file(key_path, sizeof key_path, "sshd-channel-key") != 0)
        return 1;
    unlink(key_path);
    int rc = coil_test_main(add);
    unlink(key_path);
    return rc;
}
