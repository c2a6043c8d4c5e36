/* Fuzz target: the whole SSH server state machine (ssh/server.c, with
 * server_auth.c and server_channel.c behind it) fed arbitrary packets after
 * a fixed handshake.
 *
 * A server connection on the single-ended memory transport is put past the
 * key exchange with coil__sshd_test_skip_kex (no cipher: plain packets),
 * logged in as "fuzz" or (option bit 0) still waiting for authentication;
 * then the input's records are framed as plain packets
 * (coil__sshd_test_frame) and fed, with reactor passes in between.
 *
 * Input: byte 0 options
 *   bit 0: not logged in (authentication runs: anonymous, and a key
 *          callback that allows every key)
 *   bit 1: rekey_bytes = 1500 (the server starts its own key exchanges and
 *          holds what it sends meanwhile)
 *   bit 2: feed each framed packet in two pieces (split by its first byte)
 *   bit 3: hold input (coil__sshd_hold_input) around every 4th record
 * then records: uint16 length (big endian) and that many bytes. A record is
 * one payload, except
 *   0xfe s      advance the fake clock s seconds
 *   0xfd bytes  fed as they are, not framed (lengths, garbage)
 * Exec, shell and direct-tcpip (port 7000) channels echo.
 *
 * Checked on what the server writes, while it is in the clear (until its
 * NEWKEYS): every packet framed right and no longer than the maximum;
 * nothing >= 80 before USERAUTH_SUCCESS; between the server's KEXINIT and
 * its NEWKEYS only transport and kex messages (1-4, 20-49); nothing after
 * DISCONNECT. At the end every protocol built was destroyed, and the
 * server's counts are back to zero. ASan checks the rest. */
#include "sshd_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int built, destroyed;

static void e_data(coil_protocol *p, const void *d, size_t n)
{
    coil_transport_write(p->transport, d, n);
}

static void e_destroy(coil_protocol *p)
{
    destroyed++;
    free(p);
}

static const coil_protocol_ops e_ops = {.data_received = e_data, .destroy = e_destroy};

static coil_protocol *e_build(coil_factory *f, const coil_address *peer)
{
    (void)f, (void)peer;
    coil_protocol *p = calloc(1, sizeof *p);
    CHECK(p);
    p->ops = &e_ops;
    built++;
    return p;
}

static const coil_factory_ops e_factory_ops = {.build_protocol = e_build};
static coil_factory fac = {.ops = &e_factory_ops};

static coil_factory *allow(void *arg, const char *user, const char *host, int port)
{
    (void)arg, (void)user, (void)host;
    return port == 7000 ? &fac : NULL;
}

static int any_key(void *arg, const char *user, const coil_ssh_user_key *key)
{
    (void)arg, (void)user, (void)key;
    return 1;
}

/* ---- what the server writes ---- */

typedef struct chk {
    unsigned char *acc;
    size_t len;
    int encrypted; /* the server sent NEWKEYS: no more checks */
    int in_kex;    /* the server sent KEXINIT, not yet NEWKEYS */
    int authed;    /* USERAUTH_SUCCESS seen (or logged in from the start) */
    int disconnected;
} chk;

static void check_output(chk *c, coil_transport *t)
{
    size_t n = 0;
    (void)coil_memory_transport_written(t, &n);
    if (n == 0)
        return;
    if (c->encrypted) {
        coil_memory_transport_clear(t);
        return;
    }
    CHECK(!c->disconnected);
    fuzz_sshd_take_output(t, &c->acc, &c->len);
    size_t off = 0, plen;
    const unsigned char *pl;
    while (!c->encrypted && fuzz_sshd_next_packet(c->acc, c->len, &off, &pl, &plen)) {
        unsigned msg = pl[0];
        CHECK(!c->disconnected);
        if (msg >= 80)
            CHECK(c->authed);
        if (c->in_kex)
            CHECK((msg >= 1 && msg <= 4) || (msg >= 20 && msg <= 49));
        if (msg == COIL__SSH_MSG_USERAUTH_SUCCESS)
            c->authed = 1;
        if (msg == COIL__SSH_MSG_KEXINIT)
            c->in_kex = 1;
        if (msg == COIL__SSH_MSG_NEWKEYS)
            c->encrypted = 1;
        if (msg == COIL__SSH_MSG_DISCONNECT)
            c->disconnected = 1;
    }
    fuzz_sshd_consumed(c->acc, &c->len, off);
}

/* ---- the servers, made once ---- */

static coil_ssh_server *srv[4];

static coil_ssh_server *server_for(int opts)
{
    opts &= 3;
    if (srv[opts])
        return srv[opts];
    coil_ssh_server_options o = {
        .host_key_file = fuzz_sshd_host_key("ssh-server"),
        .generate_host_key = 1,
        .anonymous = 1,
        .authorize_key = any_key,
        .shell = &fac,
        .exec = &fac,
        .direct_tcpip = allow,
        .rekey_bytes = opts & 2 ? 1500 : 0,
        .auth_failure_delay = 0.01,
    };
    coil_failure *err = NULL;
    CHECK(coil_ssh_server_new(fuzz_sshd_reactor(), &o, &srv[opts], &err) == 0);
    return srv[opts];
}

static void cleanup(void)
{
    for (int i = 0; i < 4; i++)
        coil_ssh_server_free(srv[i]);
    fuzz_sshd_reactor_free();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int registered;
    if (!registered) {
        registered = 1;
        atexit(cleanup);
    }
    if (size < 1)
        return 0;
    int opts = data[0];
    coil_ssh_server *sv = server_for(opts);
    built = destroyed = 0;
    coil_reactor *r = fuzz_sshd_reactor();
    chk *c = calloc(1, sizeof *c);
    CHECK(c);
    coil__sshd *s;
    coil_transport *t = fuzz_sshd_connect(sv, NULL, opts & 1 ? NULL : "fuzz", &s);
    c->authed = !(opts & 1);
    coil_reactor_advance(r, 0);
    check_output(c, t);

    static unsigned char frame[70000];
    size_t pos = 1, n;
    const unsigned char *rec;
    int rec_no = 0, held = 0;
    while (!fuzz_sshd_closed(t) && fuzz_sshd_record(data, size, &pos, &rec, &n)) {
        rec_no++;
        if ((opts & 8) && rec_no % 4 == 0) {
            held = !held;
            coil__sshd_hold_input(s, held);
        }
        if (n >= 2 && rec[0] == 0xfe) {
            coil_reactor_advance(r, rec[1]);
        } else if (n >= 1 && rec[0] == 0xfd) {
            if (n > 1)
                coil_memory_transport_feed(t, rec + 1, n - 1);
            coil_reactor_advance(r, 0);
        } else if (n > 0) {
            size_t k = coil__sshd_test_frame(rec, n, frame, sizeof frame);
            if (k && (opts & 4)) {
                size_t cut = rec[0] % k;
                coil_memory_transport_feed(t, frame, cut);
                coil_reactor_advance(r, 0);
                if (!fuzz_sshd_closed(t))
                    coil_memory_transport_feed(t, frame + cut, k - cut);
            } else if (k) {
                coil_memory_transport_feed(t, frame, k);
            }
            coil_reactor_advance(r, 0);
        }
        check_output(c, t);
    }
    if (held && !fuzz_sshd_closed(t))
        coil__sshd_hold_input(s, 0); /* s is freed once the transport closed */
    coil_reactor_advance(r, 0);
    check_output(c, t);
    coil_memory_transport_free(t);
    coil_reactor_advance(r, 0);
    coil_reactor_advance(r, 200);
    CHECK(built == destroyed);
    coil_ssh_server_stats st;
    coil_ssh_server_get_stats(sv, &st);
    CHECK(st.channels == 0 && st.connections == 0 && st.unauthenticated == 0);
    free(c->acc);
    free(c);
    return 0;
}
