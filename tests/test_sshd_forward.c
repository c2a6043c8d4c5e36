/* Remote forwarding (tcpip-forward, ssh -R) in coil's SSH server
 * (ssh/server_channel.c).
 *
 * Without arguments: a server connection on the single-ended memory
 * transport, logged in with coil__sshd_test_skip_kex and fed plain packets
 * (as test_sshd_channel does), on a real reactor, because the forwarded
 * ports are real TCP listeners on loopback: the policy (refused by
 * default, allowed, port 0 answered with the port, the cap, cancel), the
 * forwarded-tcpip channel the server opens for each connection, the relay
 * both ways with half-closes, backpressure both ways, a refused open, the
 * end of the connection.
 *
 * With "openssh": OpenSSH's ssh -N -R 127.0.0.1:0:127.0.0.1:ECHO against
 * coil's server on loopback (keys from ssh-keygen); the port it prints
 * ("Allocated port N") carries 1 MiB to an echo server and back, every byte
 * checked, then a half-close. Fails when ssh or ssh-keygen is missing. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <coil/coil.h>
#include <coil/memory.h>
#include <coil/ssh_server.h>
#include <coil/tcp.h>

#include "server_private.h"
#include "sshd_testutil.h"
#include "testutil.h"

extern char **environ;

static char key_path[256];

/* ---- raw loopback sockets (the "remote" user of a forwarded port) ---------- */

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* ---- the fixture ------------------------------------------------------------ */

typedef struct policy {
    int allow;
    int calls;
    char user[64], bind[64];
    int port;
} policy;

static int policy_fn(void *arg, const char *user, const char *bind, int port)
{
    policy *p = arg;
    p->calls++;
    snprintf(p->user, sizeof p->user, "%s", user);
    snprintf(p->bind, sizeof p->bind, "%s", bind);
    p->port = port;
    return p->allow;
}

typedef struct fx {
    coil_reactor *r;
    coil_ssh_server *srv;
    coil_transport *t;
    coil__sshd *s;
    policy pol;
    unsigned char *acc;
    size_t acc_len, acc_off;
    unsigned char pkt[COIL__SSH_MAX_PACKET];
    size_t pkt_len;
} fx;

static fx *fx_start(int with_policy, int allow)
{
    coil_test_log_capture_start();
    fx *x = calloc(1, sizeof *x);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    x->r = coil_test_reactor(NULL);
    x->pol.allow = allow;
    coil_ssh_server_options o;
    memset(&o, 0, sizeof o);
    o.host_key_file = key_path;
    o.generate_host_key = 1;
    o.anonymous = 1;
    o.window = 64 * 1024;
    if (with_policy) {
        o.tcpip_forward = policy_fn;
        o.tcpip_forward_arg = &x->pol;
    }
    coil_failure *err = NULL;
    int rc = coil_ssh_server_new(x->r, &o, &x->srv, &err);
    coil_failure_free(err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    coil_address peer;
    memset(&peer, 0, sizeof peer);
    peer.kind = COIL_ADDR_MEMORY;
    snprintf(peer.name, sizeof peer.name, "memory:test");
    coil_protocol *p = coil_ssh_server_protocol(x->srv, &peer);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    x->t = coil_memory_transport_new(x->r, p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x->t);
    x->s = coil__sshd_of(p);
    coil_memory_transport_clear(x->t);
    coil__sshd_test_skip_kex(x->s, "alice");
    coil_reactor_iterate(x->r, 0);
    coil_memory_transport_clear(x->t);
    return x;
}

static void fx_end(fx *x)
{
    if (x->t)
        coil_memory_transport_free(x->t);
    coil_ssh_server_free(x->srv);
    /* the relays' TCP connections close once their queues are sent */
    double end = coil_reactor_seconds(x->r) + 5;
    do
        coil_reactor_iterate(x->r, 0.005);
    while (coil_reactor_transport_count(x->r) > 0 && coil_reactor_seconds(x->r) < end);
    CU_ASSERT_EQUAL(coil_reactor_transport_count(x->r), 0);
    coil_reactor_free(x->r);
    free(x->acc);
    free(x);
    coil_test_log_capture_stop();
}

static void fx_send(fx *x, const coil__sshw *w)
{
    CU_ASSERT_FATAL(!w->bad);
    /* a closed connection takes nothing (COIL_ECLOSED): not a failure here */
    CU_ASSERT_FATAL(sshd_test_frame_feed(x->t, w->p, w->len) != COIL_ENOMEM);
    coil_reactor_iterate(x->r, 0);
}

/* The next packet the server sent, without waiting; 0 when none yet. */
static int fx_poll(fx *x)
{
    CU_ASSERT_EQUAL_FATAL(sshd_test_gather(x->t, &x->acc, &x->acc_len), 0);
    const unsigned char *p;
    int rc = sshd_test_next_packet(x->acc, x->acc_len, &x->acc_off, &p, &x->pkt_len);
    CU_ASSERT_FATAL(rc >= 0); /* framed right */
    if (rc == 1)
        memcpy(x->pkt, p, x->pkt_len);
    return rc;
}

/* The next packet, waiting for it (the reactor runs) up to 5 s. */
static int fx_next(fx *x)
{
    double end = coil_reactor_seconds(x->r) + 5;
    while (!fx_poll(x)) {
        if (coil_reactor_seconds(x->r) > end)
            return 0;
        coil_reactor_iterate(x->r, 0.01);
    }
    return 1;
}

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

/* Run the reactor a little and check nothing was sent. */
static void fx_quiet(fx *x)
{
    for (int i = 0; i < 5; i++)
        coil_reactor_iterate(x->r, 0.01);
    int got = fx_poll(x);
    if (got)
        fprintf(stderr, "\n    expected nothing, got message %d\n", x->pkt[0]);
    CU_ASSERT(!got);
}

#define W(name_)                     \
    unsigned char name_##buf[70000]; \
    coil__sshw name_;                \
    coil__sshw_init(&name_, name_##buf, sizeof name_##buf)

static void global(fx *x, const char *name, const char *bind, uint32_t port, int want)
{
    W(w);
    coil__sshw_u8(&w, COIL__SSH_MSG_GLOBAL_REQUEST);
    coil__sshw_cstring(&w, name);
    coil__sshw_bool(&w, want);
    coil__sshw_cstring(&w, bind);
    coil__sshw_u32(&w, port);
    fx_send(x, &w);
}

/* tcpip-forward; the port listened on, or -1 when refused. */
static int forward(fx *x, const char *bind, uint32_t port)
{
    global(x, "tcpip-forward", bind, port, 1);
    CU_ASSERT_FATAL(fx_next(x));
    if (x->pkt[0] == COIL__SSH_MSG_REQUEST_FAILURE) {
        CU_ASSERT_EQUAL(x->pkt_len, 1);
        return -1;
    }
    CU_ASSERT_FATAL(x->pkt[0] == COIL__SSH_MSG_REQUEST_SUCCESS);
    if (port != 0) {
        CU_ASSERT_EQUAL(x->pkt_len, 1); /* the port only when 0 was asked */
        return (int)port;
    }
    CU_ASSERT_EQUAL_FATAL(x->pkt_len, 5);
    uint32_t p = coil__ssh_get32(x->pkt + 1);
    CU_ASSERT(p > 0 && p <= 65535);
    return (int)p;
}

static void send_u32(fx *x, int msg, uint32_t id, int two, uint32_t v)
{
    W(w);
    coil__sshw_u8(&w, (uint8_t)msg);
    coil__sshw_u32(&w, id);
    if (two)
        coil__sshw_u32(&w, v);
    fx_send(x, &w);
}

static void send_data(fx *x, uint32_t sid, const void *d, size_t n)
{
    W(w);
    coil__sshw_u8(&w, COIL__SSH_MSG_CHANNEL_DATA);
    coil__sshw_u32(&w, sid);
    coil__sshw_string(&w, d, n);
    fx_send(x, &w);
}

static void expect_u32(fx *x, int msg, uint32_t cid)
{
    coil__sshr r = fx_expect(x, msg);
    uint32_t id = 0;
    coil__sshr_u32(&r, &id);
    CU_ASSERT_EQUAL(id, cid);
}

/* The server's CHANNEL_OPEN for a connection to `port`: its channel id. */
static uint32_t expect_open(fx *x, const char *bind, int port, int from_port)
{
    coil__sshr r = fx_expect(x, COIL__SSH_MSG_CHANNEL_OPEN);
    coil__sshs type;
    uint32_t sid = 99, win = 0, maxpkt = 0, cport = 0, oport = 0;
    char cbind[256], orig[64];
    coil__sshr_string(&r, &type, 64);
    coil__sshr_u32(&r, &sid);
    coil__sshr_u32(&r, &win);
    coil__sshr_u32(&r, &maxpkt);
    coil__sshr_cstring(&r, cbind, sizeof cbind);
    coil__sshr_u32(&r, &cport);
    coil__sshr_cstring(&r, orig, sizeof orig);
    coil__sshr_u32(&r, &oport);
    CU_ASSERT_EQUAL_FATAL(coil__sshr_done(&r, 0), 0);
    CU_ASSERT(coil__sshs_eq(type, "forwarded-tcpip"));
    CU_ASSERT_EQUAL(win, 64 * 1024);
    CU_ASSERT(maxpkt > 0);
    CU_ASSERT_STRING_EQUAL(cbind, bind);
    CU_ASSERT_EQUAL(cport, (uint32_t)port);
    CU_ASSERT_STRING_EQUAL(orig, "127.0.0.1");
    if (from_port > 0)
        CU_ASSERT_EQUAL(oport, (uint32_t)from_port);
    return sid;
}

static void confirm(fx *x, uint32_t sid, uint32_t cid, uint32_t win)
{
    W(w);
    coil__sshw_u8(&w, COIL__SSH_MSG_CHANNEL_OPEN_CONFIRMATION);
    coil__sshw_u32(&w, sid);
    coil__sshw_u32(&w, cid);
    coil__sshw_u32(&w, win);
    coil__sshw_u32(&w, 32768);
    fx_send(x, &w);
}

static int local_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    return ntohs(a.sin_port);
}

/* Read from fd (nonblocking) until `want` bytes or EOF, running the
 * reactor; returns the count (into buf). *eof set when EOF came. */
static size_t fd_read(fx *x, int fd, unsigned char *buf, size_t want, int *eof)
{
    size_t got = 0;
    double end = coil_reactor_seconds(x->r) + 5;
    *eof = 0;
    while (got < want && coil_reactor_seconds(x->r) < end) {
        ssize_t n = recv(fd, buf + got, want - got, 0);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0) {
            *eof = 1;
            break;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            *eof = 1;
            break;
        }
        coil_reactor_iterate(x->r, 0.01);
    }
    return got;
}

static int log_has(const char *needle)
{
    int ok = coil_test_log_contains(needle);
    if (!ok)
        fprintf(stderr, "\n    no log line with \"%s\" in:\n%s\n", needle,
                coil_test_log_text());
    return ok;
}

/* ---- the policy ------------------------------------------------------------- */

static void test_refused_by_default(void)
{
    fx *x = fx_start(0, 0);
    CU_ASSERT_EQUAL(forward(x, "127.0.0.1", 0), -1);
    CU_ASSERT(log_has("tcpip-forward 127.0.0.1:0 refused: no policy allows it"));
    /* without want_reply: no answer, still refused */
    global(x, "tcpip-forward", "", 0, 0);
    fx_quiet(x);
    CU_ASSERT_PTR_NULL(x->s->conn.fwds);
    fx_end(x);
}

static void test_policy_refuses(void)
{
    fx *x = fx_start(1, 0);
    CU_ASSERT_EQUAL(forward(x, "localhost", 8022), -1);
    CU_ASSERT_EQUAL(x->pol.calls, 1);
    CU_ASSERT_STRING_EQUAL(x->pol.user, "alice");
    CU_ASSERT_STRING_EQUAL(x->pol.bind, "localhost");
    CU_ASSERT_EQUAL(x->pol.port, 8022);
    CU_ASSERT(log_has("the tcpip_forward policy refused it"));
    /* a port beyond 65535 never reaches the policy */
    CU_ASSERT_EQUAL(forward(x, "", 70000), -1);
    CU_ASSERT_EQUAL(x->pol.calls, 1);
    fx_end(x);
}

static void test_allowed_port0_and_fixed(void)
{
    fx *x = fx_start(1, 1);
    int p = forward(x, "", 0);
    CU_ASSERT_FATAL(p > 0);
    CU_ASSERT_STRING_EQUAL(x->pol.bind, "");
    CU_ASSERT_EQUAL(x->pol.port, 0);
    CU_ASSERT(log_has("listening on 127.0.0.1 port"));
    /* listening on loopback: a connection comes in */
    int fd = tcp_connect(p);
    CU_ASSERT_FATAL(fd >= 0);
    (void)expect_open(x, "", p, local_port(fd));
    close(fd);
    /* the same port again: already in use, refused with the reason logged */
    CU_ASSERT_EQUAL(forward(x, "localhost", (uint32_t)p), -1);
    CU_ASSERT(log_has("refused: cannot listen"));
    /* cancelled, then asked for by number: success without a port */
    global(x, "cancel-tcpip-forward", "", (uint32_t)p, 1);
    CU_ASSERT(fx_next(x) && x->pkt[0] == COIL__SSH_MSG_REQUEST_SUCCESS);
    CU_ASSERT_EQUAL(forward(x, "0.0.0.0", (uint32_t)p), p);
    CU_ASSERT_EQUAL(x->s->conn.n_fwds, 1);
    fx_end(x);
}

static void test_cap(void)
{
    fx *x = fx_start(1, 1);
    int ports[16];
    for (int i = 0; i < 16; i++) {
        ports[i] = forward(x, "localhost", 0);
        CU_ASSERT(ports[i] > 0);
    }
    CU_ASSERT_EQUAL(forward(x, "localhost", 0), -1);
    CU_ASSERT(log_has("the most ports a connection may (16)"));
    CU_ASSERT_EQUAL(x->pol.calls, 16);
    /* one cancelled: room for one more */
    global(x, "cancel-tcpip-forward", "localhost", (uint32_t)ports[3], 1);
    CU_ASSERT(fx_next(x) && x->pkt[0] == COIL__SSH_MSG_REQUEST_SUCCESS);
    CU_ASSERT(forward(x, "localhost", 0) > 0);
    fx_end(x);
}

static void test_cancel(void)
{
    fx *x = fx_start(1, 1);
    int p = forward(x, "127.0.0.1", 0);
    CU_ASSERT_FATAL(p > 0);
    /* wrong address, wrong port: no such forward */
    global(x, "cancel-tcpip-forward", "localhost", (uint32_t)p, 1);
    CU_ASSERT(fx_next(x) && x->pkt[0] == COIL__SSH_MSG_REQUEST_FAILURE);
    global(x, "cancel-tcpip-forward", "127.0.0.1", (uint32_t)p + 1, 1);
    CU_ASSERT(fx_next(x) && x->pkt[0] == COIL__SSH_MSG_REQUEST_FAILURE);
    CU_ASSERT(log_has("no such forward"));
    global(x, "cancel-tcpip-forward", "127.0.0.1", (uint32_t)p, 1);
    CU_ASSERT(fx_next(x) && x->pkt[0] == COIL__SSH_MSG_REQUEST_SUCCESS);
    CU_ASSERT_EQUAL(x->s->conn.n_fwds, 0);
    int fd = tcp_connect(p);
    CU_ASSERT(fd < 0 && errno == ECONNREFUSED);
    if (fd >= 0)
        close(fd);
    fx_end(x);
}

static void test_malformed(void)
{
    fx *x = fx_start(1, 1);
    W(w);
    coil__sshw_u8(&w, COIL__SSH_MSG_GLOBAL_REQUEST);
    coil__sshw_cstring(&w, "tcpip-forward");
    coil__sshw_bool(&w, 1);
    coil__sshw_cstring(&w, "127.0.0.1"); /* no port */
    fx_send(x, &w);
    CU_ASSERT(fx_next(x) && x->pkt[0] == COIL__SSH_MSG_DISCONNECT);
    CU_ASSERT_EQUAL(x->pol.calls, 0);
    fx_end(x);
}

/* ---- the relay -------------------------------------------------------------- */

static void test_relay_both_ways(void)
{
    fx *x = fx_start(1, 1);
    int p = forward(x, "127.0.0.1", 0);
    CU_ASSERT_FATAL(p > 0);
    int fd = tcp_connect(p);
    CU_ASSERT_FATAL(fd >= 0);
    /* bytes sent before the client confirms wait */
    CU_ASSERT_EQUAL(send(fd, "early ", 6, 0), 6);
    uint32_t sid = expect_open(x, "127.0.0.1", p, local_port(fd));
    fx_quiet(x);
    coil_ssh_server_stats st;
    coil_ssh_server_get_stats(x->srv, &st);
    CU_ASSERT_EQUAL(st.channels, 1);
    confirm(x, sid, 7, 1 << 20);
    CU_ASSERT_EQUAL(send(fd, "hello", 5, 0), 5);
    /* TCP -> channel */
    char got[64] = "";
    size_t n = 0;
    while (n < 11) {
        coil__sshr r = fx_expect(x, COIL__SSH_MSG_CHANNEL_DATA);
        uint32_t id = 0;
        coil__sshs d;
        coil__sshr_u32(&r, &id);
        coil__sshr_string(&r, &d, 1000);
        CU_ASSERT_EQUAL_FATAL(id, 7);
        CU_ASSERT_FATAL(n + d.len <= 11);
        memcpy(got + n, d.p, d.len);
        n += d.len;
    }
    CU_ASSERT_NSTRING_EQUAL(got, "early hello", 11);
    /* channel -> TCP */
    send_data(x, sid, "world", 5);
    unsigned char buf[16];
    int eof = 0;
    CU_ASSERT_EQUAL(fd_read(x, fd, buf, 5, &eof), 5);
    CU_ASSERT(memcmp(buf, "world", 5) == 0);
    /* the TCP peer half-closes: EOF on the channel, the other way still open */
    shutdown(fd, SHUT_WR);
    expect_u32(x, COIL__SSH_MSG_CHANNEL_EOF, 7);
    send_data(x, sid, "after", 5);
    CU_ASSERT_EQUAL(fd_read(x, fd, buf, 5, &eof), 5);
    CU_ASSERT(memcmp(buf, "after", 5) == 0);
    /* the client's EOF: the TCP peer reads EOF, the channel closes */
    send_u32(x, COIL__SSH_MSG_CHANNEL_EOF, sid, 0, 0);
    CU_ASSERT_EQUAL(fd_read(x, fd, buf, sizeof buf, &eof), 0);
    CU_ASSERT(eof);
    expect_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, 7);
    send_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, sid, 0, 0);
    for (int i = 0; i < 10; i++)
        coil_reactor_iterate(x->r, 0.005);
    coil_ssh_server_get_stats(x->srv, &st);
    CU_ASSERT_EQUAL(st.channels, 0);
    close(fd);
    fx_end(x);
}

static void test_client_refuses_open(void)
{
    fx *x = fx_start(1, 1);
    int p = forward(x, "127.0.0.1", 0);
    CU_ASSERT_FATAL(p > 0);
    int fd = tcp_connect(p);
    CU_ASSERT_FATAL(fd >= 0);
    uint32_t sid = expect_open(x, "127.0.0.1", p, local_port(fd));
    /* data for a channel not yet confirmed is a protocol error; first the
     * refusal */
    W(w);
    coil__sshw_u8(&w, COIL__SSH_MSG_CHANNEL_OPEN_FAILURE);
    coil__sshw_u32(&w, sid);
    coil__sshw_u32(&w, 2);
    coil__sshw_cstring(&w, "connect failed");
    coil__sshw_cstring(&w, "");
    fx_send(x, &w);
    unsigned char buf[8];
    int eof = 0;
    CU_ASSERT_EQUAL(fd_read(x, fd, buf, sizeof buf, &eof), 0);
    CU_ASSERT(eof);
    CU_ASSERT(log_has("the client refused forwarded-tcpip 127.0.0.1:"));
    CU_ASSERT(log_has("connect failed (2)"));
    coil_ssh_server_stats st;
    coil_ssh_server_get_stats(x->srv, &st);
    CU_ASSERT_EQUAL(st.channels, 0);
    close(fd);
    /* a second connection; the client sends data before confirming: fatal */
    fd = tcp_connect(p);
    CU_ASSERT_FATAL(fd >= 0);
    sid = expect_open(x, "127.0.0.1", p, local_port(fd));
    send_data(x, sid, "x", 1);
    CU_ASSERT(fx_next(x) && x->pkt[0] == COIL__SSH_MSG_DISCONNECT);
    CU_ASSERT_EQUAL(fd_read(x, fd, buf, sizeof buf, &eof), 0);
    CU_ASSERT(eof);
    close(fd);
    fx_end(x);
}

/* The TCP peer writes and closes before the client confirms: once it does,
 * the bytes and the EOF go through, and the channel closes. */
static void test_tcp_gone_before_confirm(void)
{
    fx *x = fx_start(1, 1);
    int p = forward(x, "127.0.0.1", 0);
    CU_ASSERT_FATAL(p > 0);
    int fd = tcp_connect(p);
    CU_ASSERT_FATAL(fd >= 0);
    uint32_t sid = expect_open(x, "127.0.0.1", p, local_port(fd));
    CU_ASSERT_EQUAL(send(fd, "bye", 3, 0), 3);
    close(fd);
    fx_quiet(x);
    confirm(x, sid, 9, 1 << 20);
    coil__sshr r = fx_expect(x, COIL__SSH_MSG_CHANNEL_DATA);
    uint32_t id = 0;
    coil__sshs d;
    coil__sshr_u32(&r, &id);
    coil__sshr_string(&r, &d, 100);
    CU_ASSERT_EQUAL(id, 9);
    CU_ASSERT(d.len == 3 && memcmp(d.p, "bye", 3) == 0);
    expect_u32(x, COIL__SSH_MSG_CHANNEL_EOF, 9);
    send_u32(x, COIL__SSH_MSG_CHANNEL_EOF, sid, 0, 0);
    expect_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, 9);
    send_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, sid, 0, 0);
    fx_end(x);
}

/* The client closes the channel without EOF: the TCP connection ends. */
static void test_client_closes_channel(void)
{
    fx *x = fx_start(1, 1);
    int p = forward(x, "127.0.0.1", 0);
    CU_ASSERT_FATAL(p > 0);
    int fd = tcp_connect(p);
    CU_ASSERT_FATAL(fd >= 0);
    uint32_t sid = expect_open(x, "127.0.0.1", p, local_port(fd));
    confirm(x, sid, 3, 1 << 20);
    send_data(x, sid, "last", 4);
    send_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, sid, 0, 0);
    expect_u32(x, COIL__SSH_MSG_CHANNEL_CLOSE, 3);
    unsigned char buf[16];
    int eof = 0;
    CU_ASSERT_EQUAL(fd_read(x, fd, buf, sizeof buf, &eof), 4);
    CU_ASSERT(memcmp(buf, "last", 4) == 0);
    CU_ASSERT(eof || fd_read(x, fd, buf, sizeof buf, &eof) == 0);
    CU_ASSERT(eof);
    coil_ssh_server_stats st;
    coil_ssh_server_get_stats(x->srv, &st);
    CU_ASSERT_EQUAL(st.channels, 0);
    close(fd);
    fx_end(x);
}

/* A closed client window stops reading from the TCP peer: the server holds
 * at most the window plus its write queue's high-water mark; everything
 * arrives, in order, once the window opens. */
static void test_backpressure_tcp_to_channel(void)
{
    fx *x = fx_start(1, 1);
    int p = forward(x, "127.0.0.1", 0);
    CU_ASSERT_FATAL(p > 0);
    int fd = tcp_connect(p);
    CU_ASSERT_FATAL(fd >= 0);
    int small = 16 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    uint32_t sid = expect_open(x, "127.0.0.1", p, local_port(fd));
    confirm(x, sid, 7, 32 * 1024); /* one window, never adjusted yet */
    size_t total = 32u << 20, sent = 0, recvd = 0;
    unsigned char chunk[16384];
    int stalls = 0;
    while (sent < total && stalls < 50) {
        for (size_t k = 0; k < sizeof chunk; k++)
            chunk[k] = (unsigned char)((sent + k) * 13 + ((sent + k) >> 10));
        ssize_t n = send(fd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n > 0) {
            sent += (size_t)n;
            stalls = 0;
        } else {
            stalls++;
        }
        coil_reactor_iterate(x->r, stalls ? 0.01 : 0);
    }
    CU_ASSERT(sent < total); /* the TCP peer was stopped */
    /* what the server holds for the channel is bounded */
    coil__sshd_channel *c = x->s->conn.chans[sid];
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    coil_transport_info info;
    CU_ASSERT_EQUAL(coil_transport_info_get((coil_transport *)c, &info), 0);
    CU_ASSERT(info.write_queued <= info.high_water + 256 * 1024);
    /* then the window opens: every byte, in order */
    while (recvd < sent) {
        int got = fx_next(x);
        CU_ASSERT_FATAL(got);
        if (x->pkt[0] != COIL__SSH_MSG_CHANNEL_DATA) {
            fprintf(stderr, "\n    unexpected message %d\n", x->pkt[0]);
            CU_FAIL_FATAL("unexpected message");
        }
        coil__sshr r;
        coil__sshr_init(&r, x->pkt + 1, x->pkt_len - 1);
        uint32_t id = 0;
        coil__sshs d;
        coil__sshr_u32(&r, &id);
        coil__sshr_string(&r, &d, COIL__SSH_MAX_PACKET);
        for (size_t k = 0; k < d.len; k++) {
            size_t i = recvd + k;
            if (d.p[k] != (unsigned char)(i * 13 + (i >> 10))) {
                fprintf(stderr, "\n    byte %zu differs\n", i);
                CU_FAIL_FATAL("data differs");
            }
        }
        recvd += d.len;
        send_u32(x, COIL__SSH_MSG_CHANNEL_WINDOW_ADJUST, sid, 1, (uint32_t)d.len);
    }
    CU_ASSERT_EQUAL(recvd, sent);
    close(fd);
    fx_end(x);
}

/* A TCP peer that does not read stops the window: the server re-grants
 * only what it passed on, so the client can never send more than the
 * window beyond what the peer took. */
static void test_backpressure_channel_to_tcp(void)
{
    fx *x = fx_start(1, 1);
    int p = forward(x, "127.0.0.1", 0);
    CU_ASSERT_FATAL(p > 0);
    int fd = tcp_connect(p);
    CU_ASSERT_FATAL(fd >= 0);
    /* (no small SO_RCVBUF after connect: Linux then stalls the sender in
     * zero-window probes for seconds) */
    uint32_t sid = expect_open(x, "127.0.0.1", p, local_port(fd));
    confirm(x, sid, 7, 1 << 20);
    uint64_t window = 64 * 1024, sent = 0;
    unsigned char chunk[8192];
    /* send while the server grants window; stop when it stops */
    int idle = 0;
    while (idle < 30 && sent < (64u << 20)) {
        while (window >= sizeof chunk) {
            for (size_t k = 0; k < sizeof chunk; k++)
                chunk[k] = (unsigned char)((sent + k) * 7 + ((sent + k) >> 9));
            send_data(x, sid, chunk, sizeof chunk);
            sent += sizeof chunk;
            window -= sizeof chunk;
        }
        coil_reactor_iterate(x->r, 0.01);
        if (fx_poll(x)) {
            CU_ASSERT_FATAL(x->pkt[0] == COIL__SSH_MSG_CHANNEL_WINDOW_ADJUST);
            window += coil__ssh_get32(x->pkt + 5);
            idle = 0;
        } else {
            idle++;
        }
    }
    CU_ASSERT(sent < (64u << 20)); /* the window closed */
    coil__sshd_channel *c = x->s->conn.chans[sid];
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT(coil_transport_pending((coil_transport *)c) <= 64 * 1024);
    /* the TCP peer reads everything, in order, and the window reopens */
    unsigned char buf[65536];
    uint64_t got = 0;
    int eof = 0;
    double end = coil_reactor_seconds(x->r) + 10;
    while (got < sent && coil_reactor_seconds(x->r) < end) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
            for (ssize_t k = 0; k < n; k++) {
                uint64_t i = got + (uint64_t)k;
                if (buf[k] != (unsigned char)(i * 7 + (i >> 9))) {
                    fprintf(stderr, "\n    byte %llu differs\n", (unsigned long long)i);
                    CU_FAIL_FATAL("data differs");
                }
            }
            got += (uint64_t)n;
        } else if (n == 0) {
            eof = 1;
            break;
        } else {
            coil_reactor_iterate(x->r, 0.005);
        }
        while (fx_poll(x))
            CU_ASSERT(x->pkt[0] == COIL__SSH_MSG_CHANNEL_WINDOW_ADJUST);
    }
    CU_ASSERT(!eof);
    if (got != sent)
        fprintf(stderr, "\n    the TCP peer got %llu of %llu bytes\n",
                (unsigned long long)got, (unsigned long long)sent);
    CU_ASSERT_EQUAL(got, sent);
    close(fd);
    fx_end(x);
}

/* The end of the SSH connection closes its listeners and relays. */
static void test_connection_end(void)
{
    fx *x = fx_start(1, 1);
    int p = forward(x, "127.0.0.1", 0);
    int q = forward(x, "127.0.0.1", 0);
    CU_ASSERT_FATAL(p > 0 && q > 0);
    int a = tcp_connect(p); /* confirmed */
    CU_ASSERT_FATAL(a >= 0);
    uint32_t sid = expect_open(x, "127.0.0.1", p, local_port(a));
    confirm(x, sid, 7, 1 << 20);
    int b = tcp_connect(q); /* not yet answered */
    CU_ASSERT_FATAL(b >= 0);
    (void)expect_open(x, "127.0.0.1", q, local_port(b));
    coil_memory_transport_peer_close(x->t, 1);
    coil_memory_transport_free(x->t);
    x->t = NULL;
    unsigned char buf[8];
    int eof = 0;
    CU_ASSERT_EQUAL(fd_read(x, a, buf, sizeof buf, &eof), 0);
    CU_ASSERT(eof);
    CU_ASSERT_EQUAL(fd_read(x, b, buf, sizeof buf, &eof), 0);
    CU_ASSERT(eof);
    int c = tcp_connect(p);
    CU_ASSERT(c < 0 && errno == ECONNREFUSED);
    if (c >= 0)
        close(c);
    close(a);
    close(b);
    coil_ssh_server_stats st;
    coil_ssh_server_get_stats(x->srv, &st);
    CU_ASSERT_EQUAL(st.channels, 0);
    fx_end(x);
}

/* ---- OpenSSH's ssh -R against coil's server ----------------------------------- */

typedef struct echo_p {
    coil_protocol p;
} echo_p;

static void echo_data(coil_protocol *p, const void *d, size_t n)
{
    coil_transport_write(p->transport, d, n);
}

static void echo_eof(coil_protocol *p)
{
    coil_transport_lose_connection(p->transport);
}

static void echo_destroy(coil_protocol *p)
{
    free(p);
}

static const coil_protocol_ops echo_ops = {
    .data_received = echo_data,
    .read_connection_lost = echo_eof,
    .destroy = echo_destroy,
};

static coil_protocol *echo_build(coil_factory *f, const coil_address *peer)
{
    (void)f, (void)peer;
    echo_p *e = calloc(1, sizeof *e);
    if (e)
        e->p.ops = &echo_ops;
    return e ? &e->p : NULL;
}

static const coil_factory_ops echo_factory_ops = {.build_protocol = echo_build};

static int allow_all(void *arg, const char *user, const char *bind, int port)
{
    (void)user, (void)bind, (void)port;
    ++*(int *)arg;
    return 1;
}

static int listen_port(coil_listener *l)
{
    coil_address a;
    CU_ASSERT_FATAL(coil_listener_get_host(l, &a) == 0);
    return coil_address_port(&a);
}

static int run_cmd(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "\n    '%s' failed (status %d)\n", cmd, rc);
    return rc;
}

static int have(const char *prog)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
    return system(cmd) == 0;
}

static void test_openssh_remote_forward(void)
{
    if (!have("ssh") || !have("ssh-keygen")) {
        fprintf(stderr, "\n    OpenSSH's ssh and ssh-keygen are needed "
                        "(apt-get install openssh-client)\n");
        CU_FAIL_FATAL("ssh missing");
    }
    char dir[] = "/tmp/coil-sshd-forward-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char cmd[2048], hostkey[300], userkey[300], auth[300], known[300];
    snprintf(hostkey, sizeof hostkey, "%s/host_ed25519", dir);
    snprintf(userkey, sizeof userkey, "%s/id_ed25519", dir);
    snprintf(auth, sizeof auth, "%s/authorized_keys", dir);
    snprintf(known, sizeof known, "%s/known_hosts", dir);
    snprintf(cmd, sizeof cmd,
             "ssh-keygen -q -t ed25519 -N '' -f %s && ssh-keygen -q -t ed25519 -N '' "
             "-f %s && cp %s.pub %s",
             hostkey, userkey, userkey, auth);
    CU_ASSERT_EQUAL_FATAL(run_cmd(cmd), 0);

    coil_reactor *r = coil_test_reactor(NULL);
    int calls = 0;
    coil_ssh_server_options o;
    memset(&o, 0, sizeof o);
    o.host_key_file = hostkey;
    o.authorized_keys_file = auth;
    o.tcpip_forward = allow_all;
    o.tcpip_forward_arg = &calls;
    coil_ssh_server *srv = NULL;
    coil_failure *err = NULL;
    int rc = coil_ssh_server_new(r, &o, &srv, &err);
    coil_failure_free(err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    coil_listener *sl = NULL, *el = NULL;
    coil_tcp_listen_options lo = {.interface = "127.0.0.1"};
    CU_ASSERT_EQUAL_FATAL(
        coil_tcp_listen(r, &lo, coil_ssh_server_factory(srv), &sl, NULL), 0);
    coil_factory ef = {.ops = &echo_factory_ops};
    CU_ASSERT_EQUAL_FATAL(coil_tcp_listen(r, &lo, &ef, &el, NULL), 0);
    int sport = listen_port(sl), eport = listen_port(el);
    snprintf(cmd, sizeof cmd, "printf '[127.0.0.1]:%d ' > %s && cat %s.pub >> %s", sport,
             known, hostkey, known);
    CU_ASSERT_EQUAL_FATAL(run_cmd(cmd), 0);

    /* ssh -N -R 127.0.0.1:0:127.0.0.1:ECHO, its stderr to us */
    int errp[2];
    CU_ASSERT_FATAL(pipe(errp) == 0);
    char pstr[16], rspec[64], idopt[320], khopt[320];
    snprintf(pstr, sizeof pstr, "%d", sport);
    snprintf(rspec, sizeof rspec, "127.0.0.1:0:127.0.0.1:%d", eport);
    snprintf(idopt, sizeof idopt, "IdentityFile=%s", userkey);
    snprintf(khopt, sizeof khopt, "UserKnownHostsFile=%s", known);
    char *argv[] = {"ssh",
                    "-F",
                    "/dev/null",
                    "-N",
                    "-p",
                    pstr,
                    "-o",
                    idopt,
                    "-o",
                    "IdentitiesOnly=yes",
                    "-o",
                    khopt,
                    "-o",
                    "StrictHostKeyChecking=yes",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "ExitOnForwardFailure=yes",
                    "-R",
                    rspec,
                    "alice@127.0.0.1",
                    NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    posix_spawn_file_actions_addclose(&fa, errp[0]);
    pid_t pid = 0;
    CU_ASSERT_EQUAL_FATAL(posix_spawnp(&pid, "ssh", &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(errp[1]);
    fcntl(errp[0], F_SETFL, fcntl(errp[0], F_GETFL) | O_NONBLOCK);

    /* wait for "Allocated port N for remote forward to ..." */
    char text[4096] = "";
    size_t tl = 0;
    int fport = 0, ended = 0;
    double end = coil_reactor_seconds(r) + 30;
    while (!fport && !ended && coil_reactor_seconds(r) < end) {
        ssize_t n = read(errp[0], text + tl, sizeof text - 1 - tl);
        if (n > 0) {
            tl += (size_t)n;
            text[tl] = 0;
            const char *a = strstr(text, "Allocated port ");
            if (a && strchr(a, '\n'))
                fport = atoi(a + strlen("Allocated port "));
        } else if (n == 0) {
            ended = 1;
        } else {
            coil_reactor_iterate(r, 0.01);
        }
    }
    if (!fport)
        fprintf(stderr, "\n    ssh printed no allocated port; its stderr:\n%s\n", text);
    CU_ASSERT_FATAL(fport > 0);
    CU_ASSERT_EQUAL(calls, 1);

    /* 1 MiB through the forwarded port to the echo server and back */
    int fd = tcp_connect(fport);
    CU_ASSERT_FATAL(fd >= 0);
    size_t total = 1u << 20, sent = 0, got = 0;
    unsigned char *out = malloc(total), *in = malloc(total + 1);
    CU_ASSERT_FATAL(out && in);
    for (size_t i = 0; i < total; i++)
        out[i] = (unsigned char)(i * 31 + (i >> 11));
    int eof = 0, shut = 0;
    end = coil_reactor_seconds(r) + 60;
    while (!eof && coil_reactor_seconds(r) < end) {
        int progress = 0;
        if (sent < total) {
            ssize_t n = send(fd, out + sent, total - sent, MSG_DONTWAIT);
            if (n > 0)
                sent += (size_t)n, progress = 1;
        } else if (!shut) {
            shutdown(fd, SHUT_WR); /* the echo server answers EOF with EOF */
            shut = 1;
        }
        ssize_t n = recv(fd, in + got, total - got + 1, MSG_DONTWAIT);
        if (n > 0) {
            got += (size_t)n;
            progress = 1;
        } else if (n == 0) {
            eof = 1;
        }
        coil_reactor_iterate(r, progress ? 0 : 0.005);
    }
    CU_ASSERT(eof);
    CU_ASSERT_EQUAL(got, total);
    CU_ASSERT(got == total && memcmp(in, out, total) == 0);
    close(fd);
    free(out);
    free(in);

    kill(pid, SIGTERM);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    close(errp[0]);
    coil_listener_close(sl);
    coil_listener_close(el);
    for (int i = 0; i < 50; i++) {
        coil_ssh_server_stats st;
        coil_ssh_server_get_stats(srv, &st);
        if (st.connections == 0)
            break;
        coil_reactor_iterate(r, 0.02);
    }
    coil_ssh_server_free(srv);
    end = coil_reactor_seconds(r) + 5;
    do
        coil_reactor_iterate(r, 0.005);
    while (coil_reactor_transport_count(r) > 0 && coil_reactor_seconds(r) < end);
    CU_ASSERT_EQUAL(coil_reactor_transport_count(r), 0);
    coil_reactor_free(r);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

/* ---- main ------------------------------------------------------------------- */

static int openssh_mode;

static int add(void)
{
    static const coil_test_case unit[] = {
        COIL_TEST(test_refused_by_default),
        COIL_TEST(test_policy_refuses),
        COIL_TEST(test_allowed_port0_and_fixed),
        COIL_TEST(test_cap),
        COIL_TEST(test_cancel),
        COIL_TEST(test_malformed),
        COIL_TEST(test_relay_both_ways),
        COIL_TEST(test_client_refuses_open),
        COIL_TEST(test_tcp_gone_before_confirm),
        COIL_TEST(test_client_closes_channel),
        COIL_TEST(test_backpressure_tcp_to_channel),
        COIL_TEST(test_backpressure_channel_to_tcp),
        COIL_TEST(test_connection_end),
        {NULL, NULL},
    };
    static const coil_test_case openssh[] = {
        COIL_TEST(test_openssh_remote_forward),
        {NULL, NULL},
    };
    return coil_test_add_suite(openssh_mode ? "sshd_forward_openssh" : "sshd_forward",
                               openssh_mode ? openssh : unit);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    openssh_mode = argc > 1 && strcmp(argv[1], "openssh") == 0;
    if (coil_test_temp_file(key_path, sizeof key_path, "sshd-forward-key") != 0)
        return 1;
    unlink(key_path);
    int rc = coil_test_main(add);
    unlink(key_path);
    return rc;
}
