/* TCP (IPv4, IPv6) and UNIX sockets on loopback, with a real reactor:
 * echo, addresses, credentials, refused connections, stale socket files. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "socket.h" /* coil__accept_hook */
#include "testutil.h"

/* ---- an echo server ---- */

typedef struct echo {
    coil_protocol base;
} echo;

static void echo_data(coil_protocol *p, const void *data, size_t len)
{
    coil_transport_write(p->transport, data, len);
}

static void echo_destroy(coil_protocol *p)
{
    free(p);
}

static const coil_protocol_ops echo_ops = {
    .data_received = echo_data,
    .destroy = echo_destroy,
};

static int servers_built;
static coil_protocol *echo_build(coil_factory *f, const coil_address *peer)
{
    echo *e = calloc(1, sizeof *e);
    e->base.ops = &echo_ops;
    servers_built++;
    return &e->base;
}

static const coil_factory_ops echo_factory_ops = {.build_protocol = echo_build};

/* ---- a client that sends a message and checks the echo ---- */

typedef struct client {
    coil_protocol base;
    coil_reactor *r;
    unsigned char *msg;
    size_t len, got;
    int mismatch, lost, lost_code;
    coil_transport_info info;
    char host[128], peer[128];
} client;

static client *the_client;

static void client_made(coil_protocol *p)
{
    client *c = (client *)p;
    coil_address a;
    coil_transport_get_host(p->transport, &a);
    coil_address_format(&a, c->host, sizeof c->host);
    coil_transport_get_peer(p->transport, &a);
    coil_address_format(&a, c->peer, sizeof c->peer);
    coil_transport_info_get(p->transport, &c->info);
    coil_transport_write(p->transport, c->msg, c->len);
}

static void client_data(coil_protocol *p, const void *data, size_t len)
{
    client *c = (client *)p;
    if (c->got + len > c->len || memcmp(c->msg + c->got, data, len) != 0)
        c->mismatch = 1;
    c->got += len;
    if (c->got >= c->len)
        coil_transport_lose_connection(p->transport);
}

static void client_lost(coil_protocol *p, const coil_failure *reason)
{
    client *c = (client *)p;
    c->lost++;
    c->lost_code = coil_failure_code(reason);
    coil_reactor_stop(c->r);
}

static void client_destroy(coil_protocol *p)
{
}

static const coil_protocol_ops client_ops = {
    .connection_made = client_made,
    .data_received = client_data,
    .connection_lost = client_lost,
    .destroy = client_destroy,
};

typedef struct client_factory {
    coil_factory base;
    int started, failed, factory_lost;
    char failure[256];
    int failure_domain, failure_code;
    coil_reactor *r;
} client_factory;

static coil_protocol *client_build(coil_factory *f, const coil_address *peer)
{
    return &the_client->base;
}

static void client_started(coil_factory *f, coil_connector *c)
{
    ((client_factory *)f)->started++;
}

static void client_failed(coil_factory *f, coil_connector *c, const coil_failure *reason)
{
    client_factory *cf = (client_factory *)f;
    cf->failed++;
    snprintf(cf->failure, sizeof cf->failure, "%s", coil_failure_message(reason));
    cf->failure_domain = coil_failure_domain(reason);
    cf->failure_code = coil_failure_code(reason);
    coil_reactor_stop(cf->r);
}

static void client_factory_lost(coil_factory *f, coil_connector *c,
                                const coil_failure *reason)
{
    ((client_factory *)f)->factory_lost++;
}

static const coil_factory_ops client_factory_ops = {
    .build_protocol = client_build,
    .started_connecting = client_started,
    .connection_failed = client_failed,
    .connection_lost = client_factory_lost,
};

/* Free the reactor once every connection has ended and is freed: waits for
 * that event (bounded), never a fixed time. */
static void reactor_end(coil_reactor *r)
{
    CU_ASSERT_EQUAL(coil_reactor_shutdown(r, 10.0), 0);
    CU_ASSERT_EQUAL(coil_reactor_transport_count(r), 0);
    coil_reactor_free(r);
}

static int give_up(void *arg)
{
    coil_reactor_stop(arg);
    return 0;
}

static void run_echo(coil_reactor *r, size_t size,
                     int (*connect_fn)(coil_reactor *, coil_factory *, coil_connector **),
                     client *c, client_factory *cf)
{
    memset(c, 0, sizeof *c);
    memset(cf, 0, sizeof *cf);
    c->base.ops = &client_ops;
    c->r = r;
    c->len = size;
    c->msg = malloc(size);
    for (size_t i = 0; i < size; i++)
        c->msg[i] = (unsigned char)(i * 31 + 7);
    the_client = c;
    cf->base.ops = &client_factory_ops;
    cf->r = r;
    coil_connector *k = NULL;
    CU_ASSERT_EQUAL_FATAL(connect_fn(r, &cf->base, &k), 0);
    coil_timer *t = coil_reactor_call_later(r, 20, give_up, r);
    coil_reactor_run(r);
    coil_timer_cancel(t);
    coil_timer_release(t);
    CU_ASSERT_EQUAL(cf->started, 1);
    CU_ASSERT_EQUAL(cf->failed, 0);
    CU_ASSERT_EQUAL(c->got, size);
    CU_ASSERT_EQUAL(c->mismatch, 0);
    CU_ASSERT_EQUAL(c->lost, 1);
    CU_ASSERT_EQUAL(c->lost_code, COIL_ECLOSED);
    CU_ASSERT_EQUAL(cf->factory_lost, 1);
    coil_connector_free(k);
    free(c->msg);
}

static coil_factory server_factory = {&echo_factory_ops, 0, NULL};
static int tcp_port;
static const char *tcp_host;
static const char *tcp_bind;

static int connect_tcp(coil_reactor *r, coil_factory *f, coil_connector **k)
{
    coil_tcp_connect_options o = {0};
    o.host = tcp_host;
    o.port = tcp_port;
    o.bind_address = tcp_bind;
    return coil_tcp_connect(r, &o, f, k);
}

static void tcp_echo(const char *iface, const char *host, const char *prefix)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_tcp_listen_options lo = {0};
    lo.interface = iface;
    coil_listener *l = NULL;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_listen(r, &lo, &server_factory, &l, &err), 0);
    coil_address a;
    CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);
    tcp_port = coil_address_port(&a);
    CU_ASSERT(tcp_port > 0);
    tcp_host = host;
    size_t sizes[] = {1, 64 * 1024, 4 * 1024 * 1024};
    for (size_t i = 0; i < 3; i++) {
        client c;
        client_factory cf;
        run_echo(r, sizes[i], connect_tcp, &c, &cf);
        CU_ASSERT_STRING_EQUAL(c.info.kind, "tcp");
        CU_ASSERT(strncmp(c.peer, prefix, strlen(prefix)) == 0);
        char want[64];
        snprintf(want, sizeof want, "%s:%d", prefix, tcp_port);
        CU_ASSERT_STRING_EQUAL(c.peer, want);
    }
    coil_listener_close(l);
    CU_ASSERT_EQUAL(server_factory.users, 0);
    reactor_end(r);
}

static void test_tcp4_echo(void)
{
    tcp_echo("127.0.0.1", "127.0.0.1", "127.0.0.1");
}

static void test_tcp6_echo(void)
{
    tcp_echo("::1", "::1", "[::1]");
}

static void test_tcp_refused(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    /* Find a free port: listen, note it, close. */
    coil_tcp_listen_options lo = {0};
    lo.interface = "127.0.0.1";
    coil_listener *l;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_listen(r, &lo, &server_factory, &l, NULL), 0);
    coil_address a;
    coil_listener_get_host(l, &a);
    int port = coil_address_port(&a);
    coil_listener_close(l);

    client_factory cf = {0};
    cf.base.ops = &client_factory_ops;
    cf.r = r;
    coil_tcp_connect_options o = {0};
    o.host = "127.0.0.1";
    o.port = port;
    coil_connector *k;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_connect(r, &o, &cf.base, &k), 0);
    coil_timer *t = coil_reactor_call_later(r, 10, give_up, r);
    coil_reactor_run(r);
    coil_timer_cancel(t);
    coil_timer_release(t);
    CU_ASSERT_EQUAL(cf.failed, 1);
    CU_ASSERT_EQUAL(cf.failure_domain, COIL_DOMAIN_SYSTEM);
    CU_ASSERT_EQUAL(cf.failure_code, ECONNREFUSED);
    char want[128];
    snprintf(want, sizeof want, "connect to 127.0.0.1:%d failed: Connection refused",
             port);
    CU_ASSERT_STRING_EQUAL(cf.failure, want);
    coil_connector_free(k);

    /* An unreachable network (TCP to a multicast address: the kernel has
     * no route for it) fails saying so. */
    memset(&cf, 0, sizeof cf);
    cf.base.ops = &client_factory_ops;
    cf.r = r;
    o.host = "224.0.0.1";
    o.port = 9;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_connect(r, &o, &cf.base, &k), 0);
    for (int i = 0; i < 100 && !cf.failed; i++)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT_EQUAL(cf.failed, 1);
    CU_ASSERT_EQUAL(cf.failure_domain, COIL_DOMAIN_SYSTEM);
    CU_ASSERT_EQUAL(cf.failure_code, ENETUNREACH);
    CU_ASSERT_STRING_EQUAL(cf.failure,
                           "connect to 224.0.0.1:9 failed: Network is unreachable");
    coil_connector_free(k);

    /* A name that does not resolve fails the same way, saying so. */
    memset(&cf, 0, sizeof cf);
    cf.base.ops = &client_factory_ops;
    cf.r = r;
    o.host = "no-such-host.invalid";
    CU_ASSERT_EQUAL_FATAL(coil_tcp_connect(r, &o, &cf.base, &k), 0);
    CU_ASSERT_EQUAL(cf.failed, 0); /* reported from the loop, not from inside */
    /* The name is looked up on the reactor's thread pool: wait for it. */
    for (int i = 0; i < 600 && !cf.failed; i++)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT_EQUAL(cf.failed, 1);
    CU_ASSERT(strstr(cf.failure, "cannot resolve host name 'no-such-host.invalid'") !=
              NULL);
    coil_connector_free(k);
    coil_reactor_free(r);
}

/* A resolver answering ::1 first, then 127.0.0.1 (as Debian's /etc/hosts
 * does for localhost). */
static int dual_resolve(void *arg, const char *host, const char *service,
                        const struct addrinfo *hints, struct addrinfo **res)
{
    (void)arg;
    (void)host;
    struct addrinfo *six = NULL, *four = NULL;
    struct addrinfo h = *hints;
    h.ai_flags |= AI_NUMERICHOST;
    h.ai_family = AF_UNSPEC;
    if (getaddrinfo("::1", service, &h, &six) != 0)
        six = NULL;
    int rc = getaddrinfo("127.0.0.1", service, &h, &four);
    if (rc != 0) {
        if (six)
            freeaddrinfo(six);
        return rc;
    }
    if (!six) {
        *res = four;
        return 0;
    }
    struct addrinfo *tail = six;
    while (tail->ai_next)
        tail = tail->ai_next;
    tail->ai_next = four; /* glibc's freeaddrinfo frees node by node */
    *res = six;
    return 0;
}

/* A name with several addresses: each is tried in turn. */
static void test_tcp_next_address(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_tcp_listen_options lo = {.interface = "127.0.0.1"};
    coil_listener *l = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_listen(r, &lo, &server_factory, &l, NULL), 0);
    coil_address a;
    CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);
    tcp_port = coil_address_port(&a);
    tcp_host = "dual.test";
    client c;
    client_factory cf;
    memset(&c, 0, sizeof c);
    memset(&cf, 0, sizeof cf);
    c.base.ops = &client_ops;
    c.r = r;
    c.len = 5;
    c.msg = (unsigned char *)strdup("hello");
    the_client = &c;
    cf.base.ops = &client_factory_ops;
    cf.r = r;
    coil_tcp_connect_options o = {.host = "dual.test", .port = tcp_port};
    o.resolver = dual_resolve;
    coil_connector *k = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_connect(r, &o, &cf.base, &k), 0);
    coil_timer *t = coil_reactor_call_later(r, 20, give_up, r);
    coil_reactor_run(r);
    coil_timer_cancel(t);
    coil_timer_release(t);
    CU_ASSERT_EQUAL(cf.failed, 0);
    CU_ASSERT_EQUAL(c.got, 5);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", tcp_port);
    CU_ASSERT_STRING_EQUAL(c.peer, want);
    coil_connector_free(k);
    free(c.msg);

    /* nobody on either address: the last one's failure */
    coil_listener_close(l);
    memset(&cf, 0, sizeof cf);
    cf.base.ops = &client_factory_ops;
    cf.r = r;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_connect(r, &o, &cf.base, &k), 0);
    t = coil_reactor_call_later(r, 20, give_up, r);
    coil_reactor_run(r);
    coil_timer_cancel(t);
    coil_timer_release(t);
    CU_ASSERT_EQUAL(cf.failed, 1);
    snprintf(want, sizeof want, "connect to 127.0.0.1:%d failed", tcp_port);
    CU_ASSERT_PTR_NOT_NULL(strstr(cf.failure, want));
    coil_connector_free(k);
    reactor_end(r);
}

static void test_listen_errors(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_tcp_listen_options lo = {0};
    lo.interface = "not-an-address";
    coil_listener *l;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL(coil_tcp_listen(r, &lo, &server_factory, &l, &err), COIL_EINVAL);
    CU_ASSERT_STRING_EQUAL(coil_failure_message(err),
                           "interface 'not-an-address' is not an IPv4 or IPv6 address");
    coil_failure_free(err);
    /* The same port twice. */
    lo.interface = "127.0.0.1";
    coil_listener *l1;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_listen(r, &lo, &server_factory, &l1, NULL), 0);
    coil_address a;
    coil_listener_get_host(l1, &a);
    lo.port = coil_address_port(&a);
    CU_ASSERT_EQUAL(coil_tcp_listen(r, &lo, &server_factory, &l, &err), COIL_ESYSTEM);
    char want[128];
    snprintf(want, sizeof want, "cannot listen on 127.0.0.1:%d: Address already in use",
             lo.port);
    CU_ASSERT_STRING_EQUAL(coil_failure_message(err), want);
    coil_failure_free(err);
    coil_listener_close(l1);
    coil_reactor_free(r);
}

static char unix_path[108];

static int connect_unix(coil_reactor *r, coil_factory *f, coil_connector **k)
{
    coil_unix_connect_options o = {0};
    o.path = unix_path;
    return coil_unix_connect(r, &o, f, k);
}

static void test_unix_echo_mode_and_credentials(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    snprintf(unix_path, sizeof unix_path, "/tmp/coil-test-%d.sock", (int)getpid());
    unlink(unix_path);
    coil_unix_listen_options lo = {0};
    lo.path = unix_path;
    lo.mode = 0600;
    coil_listener *l;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_unix_listen(r, &lo, &server_factory, &l, &err), 0);
    struct stat st;
    CU_ASSERT_EQUAL(stat(unix_path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    CU_ASSERT(S_ISSOCK(st.st_mode));
    client c;
    client_factory cf;
    run_echo(r, 1 << 20, connect_unix, &c, &cf);
    CU_ASSERT_STRING_EQUAL(c.info.kind, "unix");
    CU_ASSERT_EQUAL(c.info.peer_pid, getpid());
    CU_ASSERT_EQUAL(c.info.peer_uid, (long)getuid());
    char want[160];
    snprintf(want, sizeof want, "unix:%s", unix_path);
    CU_ASSERT_STRING_EQUAL(c.peer, want);

    /* A live socket is never replaced. */
    coil_listener *l2;
    CU_ASSERT_EQUAL(coil_unix_listen(r, &lo, &server_factory, &l2, &err), COIL_ESYSTEM);
    CU_ASSERT(strstr(coil_failure_message(err), "a live server is using it") != NULL);
    coil_failure_free(err);
    coil_listener_close(l);
    CU_ASSERT_NOT_EQUAL(access(unix_path, F_OK), 0); /* removed on close */
    reactor_end(r);
}

static void test_unix_stale_socket_replaced(void)
{
    snprintf(unix_path, sizeof unix_path, "/tmp/coil-stale-%d.sock", (int)getpid());
    unlink(unix_path);
    /* A socket file whose server is gone. */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un un = {0};
    un.sun_family = AF_UNIX;
    strcpy(un.sun_path, unix_path);
    CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&un, sizeof un), 0);
    close(fd);
    coil_reactor *r = coil_test_reactor(NULL);
    coil_unix_listen_options lo = {0};
    lo.path = unix_path;
    coil_listener *l;
    CU_ASSERT_EQUAL_FATAL(coil_unix_listen(r, &lo, &server_factory, &l, NULL), 0);
    client c;
    client_factory cf;
    run_echo(r, 100, connect_unix, &c, &cf);
    coil_listener_close(l);
    reactor_end(r);

    /* A regular file is not a stale socket: left alone, error. */
    FILE *f = fopen(unix_path, "w");
    fclose(f);
    r = coil_test_reactor(NULL);
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL(coil_unix_listen(r, &lo, &server_factory, &l, &err), COIL_ESYSTEM);
    CU_ASSERT(err && strstr(coil_failure_message(err), "Address already in use"));
    coil_failure_free(err);
    CU_ASSERT_EQUAL(access(unix_path, F_OK), 0);
    unlink(unix_path);
    coil_reactor_free(r);
}

static void test_unix_abstract(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    snprintf(unix_path, sizeof unix_path, "@coil-abstract-%d", (int)getpid());
    coil_unix_listen_options lo = {0};
    lo.path = unix_path;
    coil_listener *l;
    CU_ASSERT_EQUAL_FATAL(coil_unix_listen(r, &lo, &server_factory, &l, NULL), 0);
    client c;
    client_factory cf;
    run_echo(r, 1000, connect_unix, &c, &cf);
    char want[160];
    snprintf(want, sizeof want, "unix:%s", unix_path);
    CU_ASSERT_STRING_EQUAL(c.peer, want);
    coil_listener_close(l);
    reactor_end(r);
}

/* A client bound to 127.0.0.2 first is seen by the server from there. */
static void test_tcp_bind_address_and_reuse_port(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_tcp_listen_options lo = {0};
    lo.interface = "127.0.0.1";
    lo.reuse_port = 1;
    coil_listener *l = NULL, *l2 = NULL, *l3 = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_listen(r, &lo, &server_factory, &l, NULL), 0);
    coil_address a;
    CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);
    tcp_port = coil_address_port(&a);
    tcp_host = "127.0.0.1";
    tcp_bind = "127.0.0.2";
    client c;
    client_factory cf;
    run_echo(r, 100, connect_tcp, &c, &cf);
    CU_ASSERT(strncmp(c.host, "127.0.0.2:", 10) == 0);
    tcp_bind = NULL;

    /* SO_REUSEPORT: a second listener on the same port is allowed with
     * the option on both, refused without it. */
    lo.port = tcp_port;
    CU_ASSERT_EQUAL(coil_tcp_listen(r, &lo, &server_factory, &l2, NULL), 0);
    lo.reuse_port = 0;
    coil_failure *err = NULL;
    CU_ASSERT_NOT_EQUAL(coil_tcp_listen(r, &lo, &server_factory, &l3, &err), 0);
    CU_ASSERT(err && strstr(coil_failure_message(err), "Address already in use") != NULL);
    coil_failure_free(err);
    coil_listener_close(l2);
    coil_listener_close(l);
    reactor_end(r);
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Turn the loop for `seconds` of the reactor's clock. A fixed time on
 * purpose: what is measured is what the listener does (CPU, retries) over
 * that time. */
static void turn_for(coil_reactor *r, double seconds)
{
    double end = coil_reactor_seconds(r) + seconds;
    while (coil_reactor_seconds(r) < end)
        coil_reactor_iterate(r, end - coil_reactor_seconds(r));
}

/* Out of file descriptors, the listener neither spins nor dies: every
 * 0.1 s it sheds one pending connection (with a spare descriptor kept for
 * that), and it accepts again once descriptors are free. */
static void test_accept_survives_emfile(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_tcp_listen_options lo = {0};
    lo.interface = "127.0.0.1";
    coil_listener *l = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_listen(r, &lo, &server_factory, &l, NULL), 0);
    coil_address a;
    CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)coil_address_port(&a));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    /* Five clients wait in the accept queue (the kernel completes their
     * handshakes); while descriptors lack, the listener sheds them. */
    enum { CLIENTS = 5 };
    int cl[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        cl[i] = socket(AF_INET, SOCK_STREAM, 0);
        CU_ASSERT_EQUAL_FATAL(connect(cl[i], (struct sockaddr *)&sin, sizeof sin), 0);
    }

    /* Use up every descriptor under a lowered limit. */
    struct rlimit old, low;
    CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 256;
    CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_NOFILE, &low), 0);
    int hog[256], nhog = 0;
    while (nhog < 256) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        hog[nhog++] = fd;
    }
    CU_ASSERT_EQUAL(errno, EMFILE);

    int built = servers_built;
    coil_test_log_capture_start();
    double cpu0 = cpu_seconds();
    turn_for(r, 0.5);
    double cpu = cpu_seconds() - cpu0;
    CU_ASSERT(coil_test_log_contains("out of file descriptors"));
    coil_test_log_capture_stop();
    /* No busy loop: a few retries at 0.1 s, not a spinning accept. */
    CU_ASSERT(cpu < 0.2);
    if (cpu >= 0.2)
        fprintf(stderr, "\nEMFILE: %.3f s of CPU in 0.5 s\n", cpu);
    CU_ASSERT_EQUAL(servers_built, built);

    /* Descriptors come back: a new client is accepted. */
    for (int i = 0; i < nhog; i++)
        close(hog[i]);
    CU_ASSERT_EQUAL(setrlimit(RLIMIT_NOFILE, &old), 0);
    /* The clients shed meanwhile saw their connection end at once rather
     * than wait in the queue (libuv does the same). */
    int shed = 0;
    for (int i = 0; i < CLIENTS; i++) {
        char b;
        fcntl(cl[i], F_SETFL, O_NONBLOCK);
        ssize_t n = read(cl[i], &b, 1);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            shed++;
    }
    CU_ASSERT(shed >= 1);
    int fresh = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_EQUAL(connect(fresh, (struct sockaddr *)&sin, sizeof sin), 0);
    for (int i = 0; i < 100 && servers_built == built; i++)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT(servers_built > built);
    close(fresh);
    for (int i = 0; i < CLIENTS; i++)
        close(cl[i]);
    coil_listener_close(l);
    reactor_end(r);
}

/* ---- accept errors ---- */

/* listener_io calls this instead of accept4 while a test sets it. */
static int fail_errno; /* 0: accept for real */
static int fail_count; /* failures left; -1: without end */
static int accept_calls;
static int accept_hook(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    accept_calls++;
    if (fail_errno && fail_count != 0) {
        if (fail_count > 0)
            fail_count--;
        errno = fail_errno;
        return -1;
    }
    return accept4(fd, addr, len, flags);
}

/* A listener on 127.0.0.1 with one client waiting in its queue. */
static coil_listener *listen_with_client(coil_reactor *r, int *fd)
{
    coil_tcp_listen_options lo = {0};
    lo.interface = "127.0.0.1";
    coil_listener *l = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_listen(r, &lo, &server_factory, &l, NULL), 0);
    coil_address a;
    CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)coil_address_port(&a));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_EQUAL_FATAL(connect(*fd, (struct sockaddr *)&sin, sizeof sin), 0);
    return l;
}

/* ENOBUFS, ENOMEM, EPERM from accept used to be logged and retried at
 * once, forever (30 MB of log in 3 s, a core spinning): now they pause
 * accepting as EMFILE does, and accepting resumes once they stop. */
static void test_accept_errors_pause(void)
{
    static const int errs[] = {ENOBUFS, ENOMEM, EPERM, EINVAL};
    for (size_t k = 0; k < sizeof errs / sizeof errs[0]; k++) {
        coil_reactor *r = coil_test_reactor(NULL);
        int cl;
        coil_listener *l = listen_with_client(r, &cl);
        coil__accept_hook = accept_hook;
        fail_errno = errs[k];
        fail_count = -1;
        accept_calls = 0;
        int built = servers_built;
        coil_test_log_capture_start();
        double cpu0 = cpu_seconds();
        turn_for(r, 0.5);
        double cpu = cpu_seconds() - cpu0;
        /* Tries at 0, 0.1 and 0.3 s: a pause, not a spin. */
        CU_ASSERT(accept_calls >= 2 && accept_calls <= 4);
        CU_ASSERT(cpu < 0.1);
        if (accept_calls > 4 || cpu >= 0.1)
            fprintf(stderr, "\n%s: %d accept calls, %.3f s of CPU in 0.5 s\n",
                    strerror(errs[k]), accept_calls, cpu);
        CU_ASSERT(coil_test_log_contains(strerror(errs[k])));
        CU_ASSERT(coil_test_log_contains("pausing accept"));
        CU_ASSERT(coil_test_log_count(COIL_LOG_WARN) <= 4);
        CU_ASSERT_EQUAL(servers_built, built);
        coil_test_log_capture_stop();

        /* The error goes away: the waiting client is accepted. */
        fail_errno = 0;
        for (int i = 0; i < 100 && servers_built == built; i++)
            coil_reactor_iterate(r, 0.05);
        CU_ASSERT_EQUAL(servers_built, built + 1);
        coil__accept_hook = NULL;
        close(cl);
        coil_listener_close(l);
        reactor_end(r);
    }
}

/* The same on the fake clock, over a longer time: the pause doubles up to
 * 1 s, the log says a few lines and then how many it held back, and after
 * the errors a short pause again. */
static void test_accept_errors_backoff_and_log_limit(void)
{
    coil_clock *clk = coil_clock_new_fake();
    coil_reactor *r = coil_test_reactor(clk);
    int cl;
    coil_listener *l = listen_with_client(r, &cl);
    coil__accept_hook = accept_hook;
    fail_errno = ENOBUFS;
    fail_count = -1;
    accept_calls = 0;
    int built = servers_built;
    coil_test_log_capture_start();
    /* 30 s in 10 ms steps, looking at the socket at each. */
    for (int i = 0; i < 3000; i++) {
        coil_reactor_iterate(r, 0);
        coil_reactor_advance(r, 0.01);
    }
    /* At 0, 0.1, 0.3, 0.7, 1.5, then every second: about 33 tries, where
     * retrying at once made 3000. */
    CU_ASSERT(accept_calls >= 30 && accept_calls <= 36);
    /* Five lines per 10 s window at most, and a count of the rest. */
    size_t lines = coil_test_log_count(COIL_LOG_WARN);
    CU_ASSERT(lines >= 10 && lines <= 15);
    CU_ASSERT(coil_test_log_contains("similar messages)"));
    CU_ASSERT(coil_test_log_contains("pausing accept for 1.0 s"));
    CU_ASSERT_EQUAL(servers_built, built);
    coil_test_log_capture_stop();

    /* Accepting comes back within the longest pause. */
    fail_errno = 0;
    for (int i = 0; i < 110 && servers_built == built; i++) {
        coil_reactor_iterate(r, 0);
        coil_reactor_advance(r, 0.01);
    }
    CU_ASSERT_EQUAL(servers_built, built + 1);

    /* A new error after a success pauses briefly again. */
    int cl2;
    coil_listener *l2 = listen_with_client(r, &cl2);
    coil_listener_close(l2);
    close(cl2);
    fail_errno = ENOMEM;
    accept_calls = 0;
    int cl3 = -1;
    {
        coil_address a;
        CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);
        struct sockaddr_in sin = {0};
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)coil_address_port(&a));
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cl3 = socket(AF_INET, SOCK_STREAM, 0);
        CU_ASSERT_EQUAL(connect(cl3, (struct sockaddr *)&sin, sizeof sin), 0);
    }
    coil_test_log_capture_start();
    for (int i = 0; i < 12; i++) {
        coil_reactor_iterate(r, 0);
        coil_reactor_advance(r, 0.01);
    }
    CU_ASSERT_EQUAL(accept_calls, 2); /* at 0 and 0.1 s */
    CU_ASSERT(coil_test_log_contains("pausing accept for 0.1 s"));
    coil_test_log_capture_stop();
    fail_errno = 0;
    for (int i = 0; i < 100 && servers_built == built + 1; i++) {
        coil_reactor_iterate(r, 0);
        coil_reactor_advance(r, 0.01);
    }
    CU_ASSERT_EQUAL(servers_built, built + 2);

    coil__accept_hook = NULL;
    close(cl);
    close(cl3);
    coil_listener_close(l);
    reactor_end(r);
    coil_clock_free(clk);
}

/* An error about one connection (its handshake was aborted, a network
 * error pending on it) does not pause: the next one is accepted at once. */
static void test_accept_transient_error_goes_on(void)
{
    static const int errs[] = {ECONNABORTED, EPROTO, EINTR, ENETUNREACH};
    for (size_t k = 0; k < sizeof errs / sizeof errs[0]; k++) {
        coil_clock *clk = coil_clock_new_fake();
        coil_reactor *r = coil_test_reactor(clk);
        int cl;
        coil_listener *l = listen_with_client(r, &cl);
        coil__accept_hook = accept_hook;
        fail_errno = errs[k];
        fail_count = 2;
        accept_calls = 0;
        int built = servers_built;
        /* The clock never moves: no pause could end. */
        for (int i = 0; i < 100 && servers_built == built; i++)
            coil_reactor_iterate(r, 0.05);
        CU_ASSERT_EQUAL(servers_built, built + 1);
        /* Two failures, the client, then "nothing more" (EAGAIN). */
        CU_ASSERT_EQUAL(accept_calls, 4);
        coil__accept_hook = NULL;
        close(cl);
        coil_listener_close(l);
        reactor_end(r);
        coil_clock_free(clk);
    }
}

/* get_peer answers after the connection closed: the address kept from
 * accept (a failed TLS handshake is reported once the socket is gone). */
static char peer_at_made[128], peer_at_lost[128];
static int peer_lost_rc = 99;

static void peer_made(coil_protocol *p)
{
    coil_address a;
    if (coil_transport_get_peer(p->transport, &a) == 0)
        coil_address_format(&a, peer_at_made, sizeof peer_at_made);
    coil_transport_abort_connection(p->transport);
}

static void peer_lost(coil_protocol *p, const coil_failure *reason)
{
    coil_address a;
    peer_lost_rc = coil_transport_get_peer(p->transport, &a);
    if (peer_lost_rc == 0)
        coil_address_format(&a, peer_at_lost, sizeof peer_at_lost);
}

static const coil_protocol_ops peer_ops = {
    .connection_made = peer_made,
    .connection_lost = peer_lost,
    .destroy = echo_destroy,
};

static coil_protocol *peer_build(coil_factory *f, const coil_address *peer)
{
    echo *e = calloc(1, sizeof *e);
    e->base.ops = &peer_ops;
    servers_built++;
    return &e->base;
}

static const coil_factory_ops peer_factory_ops = {.build_protocol = peer_build};

static void test_peer_address_after_close(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_factory f = {&peer_factory_ops, 0, NULL};
    coil_tcp_listen_options lo = {0};
    lo.interface = "127.0.0.1";
    coil_listener *l = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_listen(r, &lo, &f, &l, NULL), 0);
    coil_address a;
    CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)coil_address_port(&a));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int cl = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_EQUAL_FATAL(connect(cl, (struct sockaddr *)&sin, sizeof sin), 0);
    struct sockaddr_in mine;
    socklen_t len = sizeof mine;
    CU_ASSERT_EQUAL(getsockname(cl, (struct sockaddr *)&mine, &len), 0);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", ntohs(mine.sin_port));
    peer_at_made[0] = peer_at_lost[0] = '\0';
    peer_lost_rc = 99;
    for (int i = 0; i < 100 && peer_lost_rc == 99; i++)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT_STRING_EQUAL(peer_at_made, want);
    CU_ASSERT_EQUAL(peer_lost_rc, 0);
    CU_ASSERT_STRING_EQUAL(peer_at_lost, want);
    close(cl);
    coil_listener_close(l);
    reactor_end(r);
}

/* Water marks from the listener's and the connector's options reach each
 * connection; 0 takes the defaults; low above high is refused. */
static coil_transport_info marks_server_info;
static int marks_server_made;

static void marks_made(coil_protocol *p)
{
    coil_transport_info_get(p->transport, &marks_server_info);
    marks_server_made = 1;
}

static const coil_protocol_ops marks_ops = {
    .connection_made = marks_made,
    .destroy = echo_destroy,
};

static coil_protocol *marks_build(coil_factory *f, const coil_address *peer)
{
    echo *e = calloc(1, sizeof *e);
    e->base.ops = &marks_ops;
    return &e->base;
}

static const coil_factory_ops marks_factory_ops = {.build_protocol = marks_build};

static void test_water_mark_options(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    coil_factory sf = {&marks_factory_ops, 0, NULL};
    coil_tcp_listen_options lo = {0};
    lo.interface = "127.0.0.1";
    lo.high_water = 100;
    lo.low_water = 200;
    coil_listener *l = NULL;
    coil_failure *err = NULL;
    CU_ASSERT_EQUAL(coil_tcp_listen(r, &lo, &sf, &l, &err), COIL_EINVAL);
    coil_failure_free(err);
    lo.high_water = 1000 * 1000;
    lo.low_water = 0; /* a quarter */
    CU_ASSERT_EQUAL_FATAL(coil_tcp_listen(r, &lo, &sf, &l, NULL), 0);
    coil_address a;
    CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);

    client c;
    memset(&c, 0, sizeof c);
    c.base.ops = &client_ops;
    c.r = r;
    c.msg = (unsigned char *)strdup("x");
    c.len = 1;
    the_client = &c;
    coil_tcp_connect_options co = {0};
    co.host = "127.0.0.1";
    co.port = coil_address_port(&a);
    co.high_water = 4096;
    co.low_water = 8192;
    coil_connector *k = NULL;
    client_factory cf;
    memset(&cf, 0, sizeof cf);
    cf.base.ops = &client_factory_ops;
    CU_ASSERT_EQUAL(coil_tcp_connect(r, &co, &cf.base, &k), COIL_EINVAL);
    co.low_water = 1024;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_connect(r, &co, &cf.base, &k), 0);
    marks_server_made = 0;
    for (int i = 0; i < 200 && !(marks_server_made && c.info.kind); i++)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT_EQUAL(marks_server_info.high_water, 1000 * 1000);
    CU_ASSERT_EQUAL(marks_server_info.low_water, 250 * 1000);
    CU_ASSERT_EQUAL(c.info.high_water, 4096);
    CU_ASSERT_EQUAL(c.info.low_water, 1024);
    coil_connector_free(k);
    coil_listener_close(l);
    free(c.msg);
    reactor_end(r);

    /* UNIX: only high set. */
    r = coil_test_reactor(NULL);
    char path[108];
    snprintf(path, sizeof path, "@coil-marks-%d", (int)getpid());
    coil_unix_listen_options ulo = {0};
    ulo.path = path;
    ulo.high_water = 8000;
    CU_ASSERT_EQUAL_FATAL(coil_unix_listen(r, &ulo, &sf, &l, NULL), 0);
    coil_unix_connect_options uco = {0};
    uco.path = path;
    uco.low_water = 70 * 1024; /* above the default high */
    CU_ASSERT_EQUAL(coil_unix_connect(r, &uco, &cf.base, &k), COIL_EINVAL);
    uco.low_water = 0;
    memset(&c, 0, sizeof c);
    c.base.ops = &client_ops;
    c.r = r;
    c.msg = (unsigned char *)strdup("x");
    c.len = 1;
    the_client = &c;
    CU_ASSERT_EQUAL_FATAL(coil_unix_connect(r, &uco, &cf.base, &k), 0);
    marks_server_made = 0;
    for (int i = 0; i < 200 && !marks_server_made; i++)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT_EQUAL(marks_server_info.high_water, 8000);
    CU_ASSERT_EQUAL(marks_server_info.low_water, 2000);
    coil_connector_free(k);
    coil_listener_close(l);
    free(c.msg);
    reactor_end(r);
}

/* ---- sendfile from a pull producer ---- */

typedef struct file_sender {
    coil_protocol base;
    coil_producer prod;
    int fd;
    off_t off, size;
    int calls, eagain, done, err;
} file_sender;

static file_sender *the_sender;

static void sender_resume(coil_producer *p)
{
    file_sender *fs = (file_sender *)((char *)p - offsetof(file_sender, prod));
    coil_transport *t = fs->base.transport;
    fs->calls++;
    size_t sent = 0;
    int rc = coil_transport_send_file(t, fs->fd, &fs->off, (size_t)(fs->size - fs->off),
                                      &sent);
    if (rc == COIL_EAGAIN) {
        fs->eagain++;
        return;
    }
    if (rc != 0) {
        fs->err = rc;
        coil_transport_unregister_producer(t);
        coil_transport_abort_connection(t);
        return;
    }
    if (fs->off == fs->size) {
        fs->done = 1;
        coil_transport_unregister_producer(t);
        coil_transport_lose_connection(t);
    }
}

static void sender_noop(coil_producer *p)
{
    (void)p;
}

static const coil_producer_ops sender_prod_ops = {
    .pause_producing = sender_noop,
    .resume_producing = sender_resume,
    .stop_producing = sender_noop,
};

static int sender_shut_first; /* shut our socket's write side before sendfile */

/* The fd of the socket whose local and peer ports are those of `t`. */
static int socket_fd_of(coil_transport *t)
{
    coil_address host, peer;
    if (coil_transport_get_host(t, &host) != 0 || coil_transport_get_peer(t, &peer) != 0)
        return -1;
    for (int fd = 3; fd < 1024; fd++) {
        struct sockaddr_storage a, b;
        socklen_t al = sizeof a, bl = sizeof b;
        if (getsockname(fd, (struct sockaddr *)&a, &al) != 0 ||
            getpeername(fd, (struct sockaddr *)&b, &bl) != 0 || a.ss_family != AF_INET)
            continue;
        if (ntohs(((struct sockaddr_in *)&a)->sin_port) == coil_address_port(&host) &&
            ntohs(((struct sockaddr_in *)&b)->sin_port) == coil_address_port(&peer))
            return fd;
    }
    return -1;
}

static void sender_made(coil_protocol *p)
{
    file_sender *fs = (file_sender *)p;
    if (sender_shut_first) {
        /* sendfile then fails with EPIPE, which raises SIGPIPE unless coil
         * keeps it from this process (the default action ends it). */
        int fd = socket_fd_of(p->transport);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_EQUAL(shutdown(fd, SHUT_WR), 0);
        CU_ASSERT_EQUAL(coil_transport_register_producer(p->transport, &fs->prod, 0), 0);
        return;
    }
    /* Queued bytes go first: send_file must wait for them. */
    CU_ASSERT_EQUAL(coil_transport_write(p->transport, "HEAD", 4), 0);
    CU_ASSERT_EQUAL(coil_transport_register_producer(p->transport, &fs->prod, 0), 0);
}

static const coil_protocol_ops sender_ops = {.connection_made = sender_made};

static coil_protocol *sender_build(coil_factory *f, const coil_address *peer)
{
    (void)f;
    (void)peer;
    return &the_sender->base;
}

static const coil_factory_ops sender_factory_ops = {.build_protocol = sender_build};

typedef struct sink {
    coil_protocol base;
    coil_reactor *r;
    size_t got;
    int mismatch, lost, lost_code;
} sink;

static void sink_made(coil_protocol *p)
{
    coil_transport_pause_reading(p->transport); /* a slow reader at first */
}

static size_t sink_abort_after; /* 0: read everything */

static void sink_data(coil_protocol *p, const void *data, size_t len)
{
    sink *k = (sink *)p;
    if (sink_abort_after && k->got + len >= sink_abort_after) {
        k->got += len;
        coil_transport_abort_connection(p->transport); /* a reset, mid-file */
        return;
    }
    const unsigned char *b = data;
    for (size_t i = 0; i < len; i++, k->got++) {
        unsigned char want = k->got < 4 ? (unsigned char)"HEAD"[k->got]
                                        : (unsigned char)((k->got - 4) * 13 + 1);
        if (b[i] != want)
            k->mismatch = 1;
    }
}

static void sink_lost(coil_protocol *p, const coil_failure *reason)
{
    sink *k = (sink *)p;
    k->lost++;
    k->lost_code = coil_failure_code(reason);
    coil_reactor_stop(k->r);
}

static const coil_protocol_ops sink_ops = {
    .connection_made = sink_made,
    .data_received = sink_data,
    .connection_lost = sink_lost,
};

static sink *the_sink;
static coil_protocol *sink_build(coil_factory *f, const coil_address *peer)
{
    (void)f;
    (void)peer;
    return &the_sink->base;
}

static const coil_factory_ops sink_factory_ops = {.build_protocol = sink_build};

static void test_send_file_tcp(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    char path[256];
    CU_ASSERT_EQUAL_FATAL(coil_test_temp_file(path, sizeof path, "sendfile"), 0);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    CU_ASSERT_FATAL(fd >= 0);
    const size_t size = 8 * 1024 * 1024 + 3;
    unsigned char *buf = malloc(size);
    for (size_t i = 0; i < size; i++)
        buf[i] = (unsigned char)(i * 13 + 1);
    CU_ASSERT_EQUAL_FATAL(write(fd, buf, size), (ssize_t)size);
    free(buf);

    file_sender fs = {.base.ops = &sender_ops, .prod.ops = &sender_prod_ops, .fd = fd};
    fs.size = (off_t)size;
    the_sender = &fs;
    coil_factory sf = {&sender_factory_ops, 0, NULL};
    coil_tcp_listen_options lo = {.interface = "127.0.0.1"};
    coil_listener *l = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_listen(r, &lo, &sf, &l, NULL), 0);
    coil_address a;
    CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);

    sink k = {.base.ops = &sink_ops, .r = r};
    the_sink = &k;
    coil_factory cf = {&sink_factory_ops, 0, NULL};
    coil_tcp_connect_options co = {.host = "127.0.0.1", .port = coil_address_port(&a)};
    coil_connector *c = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_connect(r, &co, &cf, &c), 0);
    /* Wait until the socket is full (the reader is paused), then read. */
    for (int i = 0; i < 2000 && fs.eagain < 1; i++)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT(fs.eagain >= 1);
    CU_ASSERT(fs.off > 0 && fs.off < (off_t)size);
    coil_transport_resume_reading(k.base.transport);
    coil_timer *t = coil_reactor_call_later(r, 20, give_up, r);
    coil_reactor_run(r);
    coil_timer_cancel(t);
    coil_timer_release(t);
    CU_ASSERT_EQUAL(fs.done, 1);
    CU_ASSERT_EQUAL(fs.err, 0);
    CU_ASSERT_EQUAL(k.got, size + 4);
    CU_ASSERT_EQUAL(k.mismatch, 0);
    CU_ASSERT_EQUAL(k.lost_code, COIL_ECLOSED);
    coil_connector_free(c);
    coil_listener_close(l);
    close(fd);
    unlink(path);
    reactor_end(r);
}

/* A client that resets the connection in the middle of a file: the
 * sender's connection is lost, and the process lives (sendfile cannot take
 * MSG_NOSIGNAL; SIGPIPE keeps its default action in this test program). */
static void test_send_file_peer_resets(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    char path[256];
    CU_ASSERT_EQUAL_FATAL(coil_test_temp_file(path, sizeof path, "sendfile-rst"), 0);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL_FATAL(ftruncate(fd, 64 * 1024 * 1024), 0);
    coil_tcp_listen_options lo = {.interface = "127.0.0.1"};
    coil_listener *l = NULL;
    coil_factory sf = {&sender_factory_ops, 0, NULL};
    CU_ASSERT_EQUAL_FATAL(coil_tcp_listen(r, &lo, &sf, &l, NULL), 0);
    coil_address a;
    CU_ASSERT_EQUAL(coil_listener_get_host(l, &a), 0);
    sink_abort_after = 1024 * 1024;
    for (int round = 0; round < 10; round++) {
        file_sender fs = {
            .base.ops = &sender_ops, .prod.ops = &sender_prod_ops, .fd = fd};
        fs.size = 64 * 1024 * 1024;
        the_sender = &fs;
        sink k = {.base.ops = &sink_ops, .r = r};
        the_sink = &k;
        coil_factory cf = {&sink_factory_ops, 0, NULL};
        coil_tcp_connect_options co = {.host = "127.0.0.1",
                                       .port = coil_address_port(&a)};
        coil_connector *c = NULL;
        CU_ASSERT_EQUAL_FATAL(coil_tcp_connect(r, &co, &cf, &c), 0);
        for (int i = 0; i < 200 && !k.base.transport; i++)
            coil_reactor_iterate(r, 0.05);
        if (k.base.transport)
            coil_transport_resume_reading(k.base.transport);
        coil_timer *t = coil_reactor_call_later(r, 20, give_up, r);
        coil_reactor_run(r); /* the sink's abort stops it */
        coil_timer_cancel(t);
        coil_timer_release(t);
        CU_ASSERT_EQUAL(k.lost_code, COIL_EABORTED);
        /* the sender hears the reset (or its own write fails) */
        for (int i = 0; i < 400 && coil_reactor_transport_count(r) > 0; i++)
            coil_reactor_iterate(r, 0.05);
        CU_ASSERT_EQUAL(coil_reactor_transport_count(r), 0);
        CU_ASSERT_EQUAL(fs.done, 0);
        coil_connector_free(c);
    }
    sink_abort_after = 0;

    /* EPIPE for sure: our write side is shut under the transport */
    sender_shut_first = 1;
    file_sender fs = {.base.ops = &sender_ops, .prod.ops = &sender_prod_ops, .fd = fd};
    fs.size = 1024 * 1024;
    the_sender = &fs;
    sink k = {.base.ops = &sink_ops, .r = r};
    the_sink = &k;
    coil_factory cf = {&sink_factory_ops, 0, NULL};
    coil_tcp_connect_options co = {.host = "127.0.0.1", .port = coil_address_port(&a)};
    coil_connector *c = NULL;
    CU_ASSERT_EQUAL_FATAL(coil_tcp_connect(r, &co, &cf, &c), 0);
    for (int i = 0; i < 400 && fs.err == 0 && !fs.done; i++)
        coil_reactor_iterate(r, 0.05);
    CU_ASSERT_EQUAL(fs.err, COIL_ECLOSED); /* the connection is lost, we live */
    if (k.base.transport)
        coil_transport_abort_connection(k.base.transport);
    for (int i = 0; i < 400 && coil_reactor_transport_count(r) > 0; i++)
        coil_reactor_iterate(r, 0.05);
    coil_connector_free(c);
    sender_shut_first = 0;
    coil_listener_close(l);
    close(fd);
    unlink(path);
    reactor_end(r);
}

static void test_send_file_not_on_memory(void)
{
    coil_reactor *r = coil_test_reactor(NULL);
    static const coil_protocol_ops none = {0};
    coil_protocol p = {.ops = &none};
    coil_transport *t = coil_memory_transport_new(r, &p);
    CU_ASSERT_FATAL(t != NULL);
    off_t off = 0;
    size_t sent = 7;
    CU_ASSERT_EQUAL(coil_transport_send_file(t, 0, &off, 10, &sent), COIL_ENOTSUP);
    CU_ASSERT_EQUAL(sent, 0);
    coil_memory_transport_free(t);
    reactor_end(r);
}

static int add_suites(void)
{
    static const coil_test_case cases[] = {
        COIL_TEST(test_tcp4_echo),
        COIL_TEST(test_tcp6_echo),
        COIL_TEST(test_tcp_refused),
        COIL_TEST(test_tcp_next_address),
        COIL_TEST(test_listen_errors),
        COIL_TEST(test_unix_echo_mode_and_credentials),
        COIL_TEST(test_unix_stale_socket_replaced),
        COIL_TEST(test_unix_abstract),
        COIL_TEST(test_tcp_bind_address_and_reuse_port),
        COIL_TEST(test_accept_survives_emfile),
        COIL_TEST(test_accept_errors_pause),
        COIL_TEST(test_accept_errors_backoff_and_log_limit),
        COIL_TEST(test_accept_transient_error_goes_on),
        COIL_TEST(test_peer_address_after_close),
        COIL_TEST(test_water_mark_options),
        COIL_TEST(test_send_file_tcp),
        COIL_TEST(test_send_file_peer_resets),
        COIL_TEST(test_send_file_not_on_memory),
        {NULL, NULL},
    };
    return coil_test_add_suite("sockets", cases);
}

int main(void)
{
    return coil_test_main(add_suites);
}
