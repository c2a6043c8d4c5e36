/* Fuzz target: the TLS layer's inbound path. Arbitrary bytes reach a
 * server-side TLS layer over the in-memory test transport, fed in chunks
 * whose sizes come from the input; the layer must answer with an alert or
 * keep waiting, never crash, leak or hang.
 *
 * Input: byte 0 flags (bit 0: the protocol above pauses reading, then
 * resumes after the feed; bit 1: end with EOF; bit 2: end with a clean
 * close of the transport below; bit 3: abort from above at the end),
 * byte 1 salt for the chunk sizes, then the stream. The seed corpus holds
 * real ClientHellos (TLS 1.2 and 1.3) and broken variants.
 *
 * The server's certificate is made in memory once (ECDSA P-256,
 * self-signed), so the target needs no files. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <coil/log.h>
#include <coil/memory.h>
#include <coil/reactor.h>
#include <coil/tls.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)              \
    do {                      \
        if (!(x))             \
            __builtin_trap(); \
    } while (0)

static char *to_pem(int key, void *obj)
{
    BIO *b = BIO_new(BIO_s_mem());
    CHECK(b);
    if (key)
        CHECK(PEM_write_bio_PrivateKey(b, obj, NULL, NULL, 0, NULL, NULL) == 1);
    else
        CHECK(PEM_write_bio_X509(b, obj) == 1);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = malloc((size_t)n + 1);
    CHECK(s);
    memcpy(s, p, (size_t)n);
    s[n] = 0;
    BIO_free(b);
    return s;
}

static coil_tls_context *server_context(void)
{
    static coil_tls_context *ctx;
    if (ctx)
        return ctx;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    CHECK(key && x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz",
                               -1, -1, 0);
    X509_set_issuer_name(x, name);
    CHECK(X509_sign(x, key, EVP_sha256()) > 0);
    char *cert = to_pem(0, x), *kp = to_pem(1, key);
    coil_tls_options o = {0};
    o.cert_pem = cert;
    o.key_pem = kp;
    o.alpn = "h2,http/1.1";
    CHECK(coil_tls_context_new(COIL_TLS_SERVER, &o, &ctx, NULL) == 0);
    free(cert);
    free(kp);
    X509_free(x);
    EVP_PKEY_free(key);
    return ctx; /* kept for the process: one context for every run */
}

typedef struct up {
    coil_protocol base;
    int made, lost, destroyed;
} up;

static void up_made(coil_protocol *p)
{
    ((up *)p)->made++;
}

static void up_data(coil_protocol *p, const void *d, size_t n)
{
    coil_transport_write(p->transport, d, n); /* echo */
}

static void up_lost(coil_protocol *p, const coil_failure *why)
{
    ((up *)p)->lost++;
}

static void up_destroy(coil_protocol *p)
{
    ((up *)p)->destroyed++;
}

static const coil_protocol_ops up_ops = {
    .connection_made = up_made,
    .data_received = up_data,
    .connection_lost = up_lost,
    .destroy = up_destroy,
};

static void quiet(void *ud, coil_log_level level, const char *module, const char *msg)
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    coil_log_set_sink(quiet, NULL);
    unsigned flags = data[0], salt = data[1];
    data += 2;
    size -= 2;
    coil_clock *clock = coil_clock_new_fake();
    coil_reactor_options ro = {0};
    ro.clock = clock;
    coil_reactor *r = NULL;
    CHECK(clock && coil_reactor_new(&r, &ro) == 0);

    up u = {0};
    u.base.ops = &up_ops;
    coil_protocol *down = coil_tls_wrap(server_context(), NULL, &u.base);
    CHECK(down);
    coil_transport *t = coil_memory_transport_new(r, down);
    CHECK(t);
    size_t off = 0;
    unsigned k = salt;
    while (off < size && !(coil_memory_transport_flags(t) & COIL_MEMORY_CLOSED)) {
        k = k * 1103515245u + 12345u;
        size_t n = 1 + (k >> 16) % 700;
        if (n > size - off)
            n = size - off;
        coil_memory_transport_feed(t, data + off, n);
        off += n;
        coil_reactor_advance(r, 0);
        if ((flags & 1) && u.made && u.base.transport)
            coil_transport_pause_reading(u.base.transport);
    }
    if ((flags & 1) && u.base.transport)
        coil_transport_resume_reading(u.base.transport);
    coil_reactor_advance(r, 0);
    if ((flags & 8) && u.base.transport)
        coil_transport_abort_connection(u.base.transport);
    if (flags & 2)
        coil_memory_transport_feed_eof(t);
    if (flags & 4)
        coil_memory_transport_peer_close(t, 0);
    coil_reactor_advance(r, 0);
    coil_reactor_advance(r, 60); /* handshake and close timeouts */
    coil_reactor_advance(r, 0);
    coil_memory_transport_free(t);
    coil_reactor_advance(r, 0);
    CHECK(u.destroyed == 1);
    CHECK(u.lost <= u.made);
    coil_reactor_free(r);
    coil_clock_free(clock);
    coil_log_set_sink(NULL, NULL);
    return 0;
}
