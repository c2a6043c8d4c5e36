/* Fuzz target: the SSH server's connection protocol (ssh/server_channel.c).
 *
 * A server connection on the single-ended memory transport, logged in with
 * coil__sshd_test_skip_kex (plain packets), is fed connection-protocol
 * payloads taken from the input; its shell, exec, subsystem "sftp" and
 * direct-tcpip (to port 7000) factories build protocols that act on what
 * they receive.
 *
 * Input: byte 0 options (bit 0: a 4 KiB window; bit 1: at most 4 channels;
 * bit 2: a 1 KiB max packet), then records: uint16 length (big endian) and
 * that many bytes. A record is one payload, except
 *   0xff k i  act on live channel i: k%8 = pause, resume, write 100 KiB,
 *             stderr, lose_connection, abort, half-close, set_exit
 *   0xfe s    advance the fake clock s seconds
 * A protocol's data whose first byte is one of "pcahsxw" does the same
 * (echo otherwise).
 *
 * Checked: every packet the server sends is framed right; data and
 * extended data never exceed the window and max packet the client gave for
 * its channel (tracked for client ids < 256 opened once); every protocol
 * built is destroyed once the connection is freed; ASan checks the rest. */
#include "sshd_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LIVE 64

typedef struct fp {
    coil_protocol base;
    int idx;
} fp;

static fp *live[MAX_LIVE];
static int built, destroyed;

static void act(coil_transport *t, int k)
{
    static unsigned char big[100 * 1024];
    switch (k % 8) {
    case 0:
        coil_transport_pause_reading(t);
        break;
    case 1:
        coil_transport_resume_reading(t);
        break;
    case 2:
        coil_transport_write(t, big, sizeof big);
        break;
    case 3:
        coil_ssh_server_channel_write_stderr(t, "err", 3);
        break;
    case 4:
        coil_transport_lose_connection(t);
        break;
    case 5:
        coil_transport_abort_connection(t);
        break;
    case 6:
        coil_transport_lose_write_connection(t);
        break;
    default:
        coil_ssh_server_channel_set_exit(t, k & 0xff);
        break;
    }
}

static void fp_made(coil_protocol *p)
{
    CHECK(coil_ssh_server_channel_info(p->transport) != NULL);
    coil_transport_info ti;
    CHECK(coil_transport_info_get(p->transport, &ti) == 0);
}

static void fp_data(coil_protocol *p, const void *d, size_t n)
{
    const unsigned char *b = d;
    const char *acts = "prwscahx";
    const char *k = n ? memchr(acts, b[0], 8) : NULL;
    if (k && b[0])
        act(p->transport, (int)(k - acts));
    else
        coil_transport_write(p->transport, d, n);
}

static void fp_eof(coil_protocol *p)
{
    coil_transport_write(p->transport, "bye", 3);
    coil_transport_lose_connection(p->transport);
}

static void fp_resize(void *arg, coil_transport *t)
{
    (void)arg;
    CHECK(coil_ssh_server_channel_info(t) != NULL);
}

static void fp_lost(coil_protocol *p, const coil_failure *why)
{
    (void)p;
    CHECK(why != NULL);
}

static void fp_destroy(coil_protocol *p)
{
    fp *f = (fp *)p;
    if (f->idx >= 0)
        live[f->idx] = NULL;
    destroyed++;
    free(f);
}

static const coil_protocol_ops fp_ops = {
    .connection_made = fp_made,
    .data_received = fp_data,
    .read_connection_lost = fp_eof,
    .connection_lost = fp_lost,
    .destroy = fp_destroy,
};

static coil_protocol *fp_build(coil_factory *f, const coil_address *peer)
{
    (void)f, (void)peer;
    fp *p = calloc(1, sizeof *p);
    CHECK(p);
    p->base.ops = &fp_ops;
    p->idx = -1;
    for (int i = 0; i < MAX_LIVE; i++)
        if (!live[i]) {
            live[i] = p;
            p->idx = i;
            break;
        }
    built++;
    return &p->base;
}

static const coil_factory_ops fp_factory_ops = {.build_protocol = fp_build};
static coil_factory fac = {.ops = &fp_factory_ops};

static coil_factory *allow(void *arg, const char *user, const char *host, int port)
{
    (void)arg, (void)user, (void)host;
    return port == 7000 ? &fac : NULL;
}

/* ---- checking what the server sends ---- */

typedef struct chk {
    uint64_t win[256];
    uint32_t maxpkt[256];
    uint8_t state[256]; /* 0 never opened, 1 open asked once, 2 untracked */
    uint32_t pend_win[256], pend_max[256];
    int sid_cid[512]; /* our id -> client id + 1 (0: unknown) */
    unsigned char *acc;
    size_t len;
} chk;

static void note_input(chk *c, const unsigned char *p, size_t n)
{
    coil__sshr r;
    coil__sshr_init(&r, p, n);
    uint8_t msg;
    if (coil__sshr_u8(&r, &msg) != 0)
        return;
    if (msg == COIL__SSH_MSG_CHANNEL_OPEN) {
        coil__sshs type;
        uint32_t cid, win, maxpkt;
        coil__sshr_string(&r, &type, 64);
        coil__sshr_u32(&r, &cid);
        coil__sshr_u32(&r, &win);
        coil__sshr_u32(&r, &maxpkt);
        if (r.bad || cid >= 256)
            return;
        c->state[cid] = c->state[cid] ? 2 : 1;
        c->pend_win[cid] = win;
        c->pend_max[cid] = maxpkt;
    } else if (msg == COIL__SSH_MSG_CHANNEL_WINDOW_ADJUST) {
        uint32_t sid, add;
        coil__sshr_u32(&r, &sid);
        coil__sshr_u32(&r, &add);
        if (r.bad || sid >= 512 || !c->sid_cid[sid])
            return;
        int cid = c->sid_cid[sid] - 1;
        c->win[cid] += add;
    }
}

static void check_output(chk *c, coil_transport *t)
{
    fuzz_sshd_take_output(t, &c->acc, &c->len);
    size_t off = 0, plen;
    const unsigned char *pl;
    while (fuzz_sshd_next_packet(c->acc, c->len, &off, &pl, &plen)) {
        coil__sshr r;
        coil__sshr_init(&r, pl + 1, plen - 1);
        uint32_t a = 0, b = 0;
        coil__sshs s;
        switch (pl[0]) {
        case COIL__SSH_MSG_CHANNEL_OPEN_CONFIRMATION:
            coil__sshr_u32(&r, &a);
            coil__sshr_u32(&r, &b);
            CHECK(!r.bad);
            CHECK(b < 512);
            c->sid_cid[b] = 0;
            if (a < 256 && c->state[a] == 1) {
                c->sid_cid[b] = (int)a + 1;
                c->win[a] = c->pend_win[a];
                c->maxpkt[a] = c->pend_max[a];
            }
            break;
        case COIL__SSH_MSG_CHANNEL_DATA:
        case COIL__SSH_MSG_CHANNEL_EXTENDED_DATA:
            coil__sshr_u32(&r, &a);
            if (pl[0] == COIL__SSH_MSG_CHANNEL_EXTENDED_DATA) {
                coil__sshr_u32(&r, &b);
                CHECK(b == 1);
            }
            coil__sshr_string(&r, &s, COIL__SSH_MAX_PACKET);
            CHECK(coil__sshr_done(&r, 0) == 0);
            CHECK(s.len > 0);
            if (a < 256 && c->state[a] == 1) {
                CHECK(s.len <= c->win[a]);
                CHECK(s.len <= c->maxpkt[a]);
                c->win[a] -= s.len;
            }
            break;
        default:
            break;
        }
    }
    fuzz_sshd_consumed(c->acc, &c->len, off);
}

/* ---- the server, made once ---- */

static coil_ssh_server *srv[8];

static coil_ssh_server *server_for(int opts)
{
    opts &= 7;
    if (srv[opts])
        return srv[opts];
    static const coil_ssh_subsystem subs[] = {{"sftp", &fac}};
    coil_ssh_server_options o = {
        .host_key_file = fuzz_sshd_host_key("ssh-channel"),
        .generate_host_key = 1,
        .anonymous = 1,
        .shell = &fac,
        .exec = &fac,
        .subsystems = subs,
        .n_subsystems = 1,
        .direct_tcpip = allow,
        .window = opts & 1 ? 4096 : 0,
        .max_channels = opts & 2 ? 4 : 0,
        .max_packet = opts & 4 ? 1024 : 0,
    };
    coil_failure *err = NULL;
    CHECK(coil_ssh_server_new(fuzz_sshd_reactor(), &o, &srv[opts], &err) == 0);
    return srv[opts];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    coil_ssh_server *sv = server_for(data[0]);
    coil_reactor *r = fuzz_sshd_reactor();
    built = destroyed = 0;
    memset(live, 0, sizeof live);
    chk *c = calloc(1, sizeof *c);
    CHECK(c);
    coil_address peer;
    memset(&peer, 0, sizeof peer);
    peer.kind = COIL_ADDR_MEMORY;
    snprintf(peer.name, sizeof peer.name, "memory:fuzz");
    coil__sshd *s;
    coil_transport *t = fuzz_sshd_connect(sv, &peer, "alice", &s);
    coil_reactor_advance(r, 0);
    check_output(c, t);

    static unsigned char frame[70000];
    size_t pos = 1, n;
    const unsigned char *rec;
    while (!fuzz_sshd_closed(t) && fuzz_sshd_record(data, size, &pos, &rec, &n)) {
        if (n >= 2 && rec[0] == 0xfe) {
            coil_reactor_advance(r, rec[1]);
        } else if (n >= 3 && rec[0] == 0xff) {
            fp *f = live[rec[2] % MAX_LIVE];
            if (f && f->base.transport)
                act(f->base.transport, rec[1]);
            coil_reactor_advance(r, 0);
            if (f && live[rec[2] % MAX_LIVE] == f && f->base.transport)
                coil_ssh_server_channel_on_resize(f->base.transport, fp_resize, NULL);
        } else if (n > 0) {
            note_input(c, rec, n);
            size_t k = coil__sshd_test_frame(rec, n, frame, sizeof frame);
            if (k)
                coil_memory_transport_feed(t, frame, k);
            coil_reactor_advance(r, 0);
        }
        check_output(c, t);
    }
    coil_memory_transport_free(t);
    coil_reactor_advance(r, 0);
    coil_reactor_advance(r, 60);
    CHECK(built == destroyed);
    coil_ssh_server_stats st;
    coil_ssh_server_get_stats(sv, &st);
    CHECK(st.channels == 0);
    free(c->acc);
    free(c);
    return 0;
}
