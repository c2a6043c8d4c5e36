/*
 * event_tls_echo: libevent 2.1 TLS echo server (bufferevent_openssl over a
 * socket), the peer for coil's TLS benchmark (bench/run_tls_bench.sh).
 *
 *   event_tls_echo PORT CERT.pem KEY.pem    (127.0.0.1; PORT 0 picks a free port)
 *
 * One SSL_CTX: TLS 1.3 only, TLS_AES_128_GCM_SHA256 ($EVENT_TLS_SUITES picks
 * other TLS 1.3 suites), X25519, session tickets
 * on (OpenSSL's default, so resumption works), SSL_MODE_RELEASE_BUFFERS as
 * coil sets it. Prints "listening on 127.0.0.1:PORT pid PID"; exits cleanly on
 * SIGINT/SIGTERM. Echo: the input buffer moves to the output buffer; reading
 * stops above 1 MiB queued and resumes once it drained (as event_echo.c).
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OUT_HIGH_WATER (1024 * 1024)

struct conn {
    struct bufferevent *bev;
    struct conn *prev, *next;
};

static struct event_base *base;
static SSL_CTX *ctx;
static struct conn conns = {NULL, &conns, &conns};

static void conn_free(struct conn *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
    bufferevent_free(c->bev); /* frees the SSL and closes the socket */
    free(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    evbuffer_add_buffer(out, bufferevent_get_input(bev));
    if (evbuffer_get_length(out) > OUT_HIGH_WATER)
        bufferevent_disable(bev, EV_READ);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    if (!(bufferevent_get_enabled(bev) & EV_READ))
        bufferevent_enable(bev, EV_READ);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_free(arg);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = malloc(sizeof *c);
    SSL *ssl = SSL_new(ctx);
    if (!c || !ssl) {
        free(c);
        SSL_free(ssl);
        evutil_closesocket(fd);
        return;
    }
    c->bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        evutil_closesocket(fd);
        free(c);
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    c->next = &conns;
    c->prev = conns.prev;
    conns.prev->next = c;
    conns.prev = c;
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, OUT_HIGH_WATER);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopbreak(base);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s PORT CERT.pem KEY.pem\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    const char *suites = getenv("EVENT_TLS_SUITES");
    signal(SIGPIPE, SIG_IGN);
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, argv[2]) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, suites ? suites : "TLS_AES_128_GCM_SHA256") != 1 ||
        SSL_CTX_set1_groups_list(ctx, "X25519") != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    base = event_base_new();
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    struct evconnlistener *lev = evconnlistener_new_bind(
        base, on_accept, NULL, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 1024,
        (struct sockaddr *)&sin, sizeof sin);
    if (!base || !lev) {
        perror("event_tls_echo: bind/listen");
        return 1;
    }
    struct event *si = evsignal_new(base, SIGINT, on_signal, NULL);
    struct event *st = evsignal_new(base, SIGTERM, on_signal, NULL);
    evsignal_add(si, NULL);
    evsignal_add(st, NULL);
    struct sockaddr_in bound;
    socklen_t blen = sizeof bound;
    getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&bound, &blen);
    printf("listening on 127.0.0.1:%d pid %ld\n", ntohs(bound.sin_port), (long)getpid());
    fflush(stdout);
    event_base_dispatch(base);
    while (conns.next != &conns)
        conn_free(conns.next);
    evconnlistener_free(lev);
    event_free(si);
    event_free(st);
    event_base_free(base);
    SSL_CTX_free(ctx);
    return 0;
}
