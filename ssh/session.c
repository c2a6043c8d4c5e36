/* The SSH session: a protocol on the transport below driving libssh2 without
 * ever blocking; see ssh.h and ssh_private.h.
 *
 * I/O. libssh2 reads through recv_cb from s->in (filled by data_received;
 * reading below pauses while it holds more than IN_HIGH bytes) and returns
 * -EAGAIN when it is empty, 0 once the transport below has seen EOF. It
 * writes through send_cb, which copies the whole packet into the transport
 * below and returns its full length: libssh2 has one outbound packet slot
 * and must never see a short send. Flow control happens above libssh2: the
 * session is a streaming producer on the transport below, and channels stop
 * calling libssh2_channel_write while it is paused.
 *
 * libssh2_session_handshake wants a socket; it only switches it to
 * non-blocking mode (and back at libssh2_session_free) and passes it to the
 * callbacks. Every session uses the read end of one pipe made once per
 * process, which nothing ever reads.
 *
 * ssh-agent. libssh2 1.10 talks to the agent through the same callbacks with
 * the agent's own (blocking) UNIX socket, and its loops lose partial
 * progress on -EAGAIN (src/agent.c, _send_all/_recv_all). So agent I/O is a
 * bounded blocking exchange: each callback waits with poll() for at most
 * AGENT_IO_TIMEOUT seconds and then fails. The agent is a local process
 * that answers at once; only a hung agent (or a key added with ssh-add -c
 * waiting for confirmation) stalls the reactor, for at most that long. */
#include "ssh_private.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sodium.h>

#include <coil/log.h>

#include "known_hosts.h"

#define LOG_MODULE       "ssh"
#define IN_HIGH          (256 * 1024) /* pause reading below past this */
#define IN_LOW           (64 * 1024)
#define AGENT_IO_TIMEOUT 5.0

/* ---- process-wide: libssh2_init and the token fd ------------------------------ */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc = -1;
static int token_fd = -1;

static void global_init(void)
{
    int p[2];
    if (libssh2_init(0) != 0)
        return;
    if (pipe2(p, O_CLOEXEC) != 0)
        return;
    token_fd = p[0]; /* p[1] stays open too: the read end never sees EOF */
    init_rc = 0;
}

const char *coil_ssh_version(void)
{
    static char buf[48];
    const char *v = libssh2_version(0);
    snprintf(buf, sizeof buf, "libssh2 %s", v ? v : LIBSSH2_VERSION);
    return buf;
}

/* ---- small helpers ---------------------------------------------------------- */

static void free_secret(char *p)
{
    if (p) {
        sodium_memzero(p, strlen(p));
        free(p);
    }
}

void coil__ssh_where(const coil_ssh_session *s, char *buf, size_t size)
{
    snprintf(buf, size, "%s:%d", s->host ? s->host : "?", s->port);
}

const char *coil__ssh_errmsg(coil_ssh_session *s, int *code)
{
    char *msg = NULL;
    int rc = libssh2_session_last_error(s->ssh, &msg, NULL, 0);
    if (code)
        *code = rc;
    return msg && *msg ? msg : "unknown error";
}

int coil__ssh_session_usable(const coil_ssh_session *s)
{
    return s->state != COIL__SSH_DEAD && s->ssh && !s->lower_gone;
}

/* ---- reference counting -------------------------------------------------------- */

static void waiters_fail(coil__ssh_waiter **list, const coil_failure *f)
{
    while (*list) {
        coil__ssh_waiter *w = *list;
        *list = w->next;
        coil_deferred_errback(w->d, coil_failure_copy(f));
        coil_deferred_unref(w->d);
        free(w);
    }
}

static void waiters_succeed(coil__ssh_waiter **list, coil_ssh_session *s)
{
    while (*list) {
        coil__ssh_waiter *w = *list;
        *list = w->next;
        coil_deferred_callback(w->d, s, NULL);
        coil_deferred_unref(w->d);
        free(w);
    }
}

static void cancel_timer(coil_timer **t)
{
    if (*t) {
        coil_timer_cancel(*t);
        coil_timer_release(*t);
        *t = NULL;
    }
}

void coil__ssh_ref(coil_ssh_session *s)
{
    s->refs++;
}

static void session_destroy(coil_ssh_session *s)
{
    coil__reactor_untrack(&s->tracked);
    cancel_timer(&s->hs_timer);
    cancel_timer(&s->ka_timer);
    if (s->connector) {
        coil_connector_free(s->connector);
        s->connector = NULL;
    }
    coil__ssh_listeners_free(s);
    while (s->op_head) {
        coil__ssh_op *op = s->op_head;
        s->op_head = op->next;
        coil__ssh_op_free(op);
    }
    coil_failure *f =
        coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED, "the SSH session was freed");
    waiters_fail(&s->hs_waiters, f);
    waiters_fail(&s->ready_waiters, f);
    coil_failure_free(f);
    waiters_succeed(&s->close_waiters, NULL);
    if (s->agent) {
        if (s->agent_connected)
            libssh2_agent_disconnect(s->agent);
        libssh2_agent_free(s->agent);
    }
    if (s->ssh)
        libssh2_session_free(s->ssh); /* frees the zombies' channels too */
    free(s->zombies);
    free(s->rbuf);
    if (s->in) {
        sodium_memzero(s->in, s->in_cap);
        free(s->in);
    }
    free(s->host);
    free(s->user);
    free(s->known_hosts);
    free(s->agent_socket);
    free(s->identity_file);
    free_secret(s->key_pem);
    free_secret(s->passphrase);
    free_secret(s->password);
    free(s->auth_methods);
    coil_failure_free(s->hs_failure);
    coil_failure_free(s->ready_failure);
    coil_failure_free(s->end_reason);
    free(s);
}

void coil__ssh_unref(coil_ssh_session *s)
{
    if (--s->refs > 0)
        return;
    session_destroy(s);
}

/* ---- the end of a session -------------------------------------------------------- */

static void session_end(coil_ssh_session *s, coil_failure *reason)
{
    if (s->state == COIL__SSH_DEAD) {
        coil_failure_free(reason);
        return;
    }
    coil__ssh_ref(s);
    s->state = COIL__SSH_DEAD;
    /* The transport below, if still there, is a connection of its own now. */
    coil__reactor_untrack(&s->tracked);
    cancel_timer(&s->hs_timer);
    cancel_timer(&s->ka_timer);
    s->end_reason = reason;
    if (!s->hs_done) {
        if (!s->hs_failure)
            s->hs_failure = coil_failure_copy(reason);
        waiters_fail(&s->hs_waiters, s->hs_failure);
    }
    if (!s->auth_done) {
        if (!s->ready_failure)
            s->ready_failure = coil_failure_copy(s->hs_failure ? s->hs_failure : reason);
        waiters_fail(&s->ready_waiters, s->ready_failure);
    }
    /* Queued operations fail with the reason. */
    while (s->op_head) {
        coil__ssh_op *op = s->op_head;
        s->op_head = op->next;
        if (!s->op_head)
            s->op_tail = NULL;
        coil__ssh_op_fail(s, op, reason);
        coil__ssh_op_free(op);
    }
    /* Every channel hears it, then the owner. */
    coil__ssh_channels_lost(s, reason);
    /* A close begun below (after DISCONNECT) goes on; anything else ends. */
    if (s->lower && !s->lower_gone && !s->lower->disconnecting)
        coil_transport_abort_connection(s->lower);
    if (!s->lost_delivered) {
        s->lost_delivered = 1;
        if (s->on_lost)
            s->on_lost(s->on_lost_arg, s, reason);
    }
    waiters_succeed(&s->close_waiters, s);
    coil__ssh_unref(s);
}

static int is_fatal(int rc)
{
    switch (rc) {
    case LIBSSH2_ERROR_SOCKET_NONE:
    case LIBSSH2_ERROR_BANNER_RECV:
    case LIBSSH2_ERROR_BANNER_SEND:
    case LIBSSH2_ERROR_INVALID_MAC:
    case LIBSSH2_ERROR_KEX_FAILURE:
    case LIBSSH2_ERROR_ALLOC:
    case LIBSSH2_ERROR_SOCKET_SEND:
    case LIBSSH2_ERROR_KEY_EXCHANGE_FAILURE:
    case LIBSSH2_ERROR_TIMEOUT:
    case LIBSSH2_ERROR_HOSTKEY_INIT:
    case LIBSSH2_ERROR_HOSTKEY_SIGN:
    case LIBSSH2_ERROR_DECRYPT:
    case LIBSSH2_ERROR_SOCKET_DISCONNECT:
    case LIBSSH2_ERROR_PROTO:
    case LIBSSH2_ERROR_SOCKET_RECV:
    case LIBSSH2_ERROR_ENCRYPT:
    case LIBSSH2_ERROR_BAD_SOCKET:
    case LIBSSH2_ERROR_OUT_OF_BOUNDARY:
    case LIBSSH2_ERROR_BAD_USE:
        return 1;
    default:
        return 0;
    }
}

void coil__ssh_fatal(coil_ssh_session *s, int rc, const char *what)
{
    if (s->state == COIL__SSH_DEAD)
        return;
    char where[300];
    coil__ssh_where(s, where, sizeof where);
    int code = 0;
    const char *msg = coil__ssh_errmsg(s, &code);
    coil_failure *cause;
    if (rc == LIBSSH2_ERROR_SOCKET_DISCONNECT && s->disconnect_sent == 2)
        cause = coil_failure_new(COIL_DOMAIN_SSH, COIL_SSH_EDISCONNECTED,
                                 "the server sent DISCONNECT: %s", s->disc_msg);
    else if ((rc == LIBSSH2_ERROR_SOCKET_RECV || rc == LIBSSH2_ERROR_SOCKET_DISCONNECT) &&
             s->lower_eof)
        cause = coil_failure_new(COIL_DOMAIN_SSH, rc,
                                 "the server closed the connection (%s)", msg);
    else
        cause = coil_failure_new(COIL_DOMAIN_SSH, rc, "%s: %s", what, msg);
    session_end(s, coil_failure_wrap(cause, COIL_DOMAIN_COIL, COIL_ECONNLOST,
                                     "SSH session with %s lost", where));
}

/* ---- libssh2's I/O ---------------------------------------------------------------- */

static ssize_t agent_io(int fd, void *buf, size_t len, int out)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        ssize_t n = out ? send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT)
                        : recv(fd, buf, len, MSG_DONTWAIT);
        if (n > 0)
            return n;
        if (n == 0)
            return -ECONNRESET; /* the agent closed: never 0 (libssh2 would loop) */
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -errno;
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double spent = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
        if (spent >= AGENT_IO_TIMEOUT) {
            coil_log(COIL_LOG_WARN, LOG_MODULE,
                     "ssh-agent did not answer within %g s; giving up on it",
                     AGENT_IO_TIMEOUT);
            return -ETIMEDOUT;
        }
        struct pollfd p = {fd, out ? POLLOUT : POLLIN, 0};
        poll(&p, 1, (int)((AGENT_IO_TIMEOUT - spent) * 1000) + 1);
    }
}

static ssize_t recv_cb(libssh2_socket_t fd, void *buf, size_t len, int flags,
                       void **abstract)
{
    coil_ssh_session *s = *abstract;
    if (fd != token_fd)
        return agent_io(fd, buf, len, 0);
    size_t have = s->in_end - s->in_start;
    if (have == 0) {
        if (s->lower_eof || s->lower_gone)
            return 0;
        return -EAGAIN;
    }
    size_t n = have < len ? have : len;
    memcpy(buf, s->in + s->in_start, n);
    s->in_start += n;
    if (s->in_start == s->in_end) {
        s->in_start = s->in_end = 0;
        if (s->in_cap > 64 * 1024) {
            /* A burst is over: an idle session keeps no large buffer. */
            free(s->in);
            s->in = NULL;
            s->in_cap = 0;
        }
    }
    if (s->lower_paused && s->in_end - s->in_start <= IN_LOW && s->lower &&
        !s->lower_gone) {
        s->lower_paused = 0;
        coil_transport_resume_reading(s->lower);
    }
    return (ssize_t)n;
}

static ssize_t send_cb(libssh2_socket_t fd, const void *buf, size_t len, int flags,
                       void **abstract)
{
    coil_ssh_session *s = *abstract;
    if (fd != token_fd)
        return agent_io(fd, (void *)buf, len, 1);
    if (!s->lower || s->lower_gone || s->lower->disconnecting)
        return -EPIPE;
    if (coil_transport_write(s->lower, buf, len) != 0)
        return -EPIPE;
    return (ssize_t)len;
}

static void disconnect_cb(LIBSSH2_SESSION *session, int reason, const char *message,
                          int message_len, const char *language, int language_len,
                          void **abstract)
{
    coil_ssh_session *s = *abstract;
    s->disconnect_sent = 2; /* received, in fact */
    if (message_len < 0)
        message_len = 0;
    snprintf(s->disc_msg, sizeof s->disc_msg, "%.*s (reason %d)",
             message_len > 200 ? 200 : message_len, message ? message : "", reason);
}

/* ---- the queue --------------------------------------------------------------------- */

void coil__ssh_enqueue(coil_ssh_session *s, coil__ssh_op *op)
{
    op->next = NULL;
    if (s->op_tail)
        s->op_tail->next = op;
    else
        s->op_head = op;
    s->op_tail = op;
    coil__ssh_drive_soon(s);
}

static void add_waiter(coil__ssh_waiter **list, coil_deferred *d)
{
    coil__ssh_waiter *w = calloc(1, sizeof *w);
    if (!w) {
        coil_deferred_errback(
            d, coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory"));
        return;
    }
    w->d = coil_deferred_ref(d);
    w->next = *list;
    *list = w;
}

/* ---- handshake and host key -----------------------------------------------------------
 */

static int handshake_step(coil_ssh_session *s, coil__ssh_op *op)
{
    int rc = libssh2_session_handshake(s->ssh, token_fd);
    if (rc == LIBSSH2_ERROR_EAGAIN)
        return 1;
    char where[300];
    coil__ssh_where(s, where, sizeof where);
    if (rc != 0) {
        int code;
        const char *msg = coil__ssh_errmsg(s, &code);
        coil_failure *f;
        if (s->lower_eof || s->lower_gone)
            f = coil_failure_new(COIL_DOMAIN_SSH, rc,
                                 "SSH handshake with %s failed: the server closed the "
                                 "connection (%s)",
                                 where, msg);
        else
            f = coil_failure_new(COIL_DOMAIN_SSH, rc,
                                 "SSH handshake with %s failed: %s (libssh2 1.10 offers "
                                 "curve25519/ecdh/dh key exchange, ssh-ed25519/ecdsa/"
                                 "ssh-rsa host keys, aes-ctr/aes-cbc ciphers and "
                                 "hmac-sha2/hmac-sha1 MACs)",
                                 where, msg);
        session_end(s, f);
        return -1;
    }
    size_t blen = 0;
    int btype = 0;
    const char *blob = libssh2_session_hostkey(s->ssh, &blen, &btype);
    if (!blob || blen == 0) {
        session_end(s, coil_failure_new(COIL_DOMAIN_SSH, LIBSSH2_ERROR_HOSTKEY_INIT,
                                        "SSH handshake with %s: no host key", where));
        return -1;
    }
    if (coil__ssh_key_type((const unsigned char *)blob, blen, s->hk_type,
                           sizeof s->hk_type) != 0)
        snprintf(s->hk_type, sizeof s->hk_type, "unknown");
    if (coil_ssh_fingerprint(blob, blen, s->hk_fp, sizeof s->hk_fp) != 0)
        s->hk_fp[0] = 0;
    const char *banner = libssh2_session_banner_get(s->ssh);
    snprintf(s->banner, sizeof s->banner, "%s", banner ? banner : "");
    const char *c = libssh2_session_methods(s->ssh, LIBSSH2_METHOD_CRYPT_SC);
    const char *m = libssh2_session_methods(s->ssh, LIBSSH2_METHOD_MAC_SC);
    snprintf(s->cipher, sizeof s->cipher, "%s", c ? c : "");
    snprintf(s->mac, sizeof s->mac, "%s", m ? m : "");

    coil_failure *err = NULL;
    if (s->policy == COIL_SSH_HOST_KEY_INSECURE_ACCEPT_ANY)
        coil_log(COIL_LOG_WARN, LOG_MODULE,
                 "host key of %s NOT verified (%s %s): insecure-accept-any is for "
                 "tests only",
                 where, s->hk_type, s->hk_fp);
    rc = coil__known_hosts_verify(s->known_hosts, s->host, s->port,
                                  (const unsigned char *)blob, blen, s->policy, &err);
    if (rc != 0) {
        if (!err)
            err = coil_failure_new(COIL_DOMAIN_SSH, COIL_SSH_EHOSTKEY_UNKNOWN,
                                   "host key of %s refused", where);
        s->hs_failure = coil_failure_copy(err);
        /* Tell the server why we go, then close. */
        libssh2_session_disconnect_ex(s->ssh, SSH_DISCONNECT_HOST_KEY_NOT_VERIFIABLE,
                                      "host key not verified", "");
        if (s->lower && !s->lower_gone)
            coil_transport_lose_connection(s->lower);
        session_end(s, err);
        return -1;
    }
    s->hs_done = 1;
    s->state = COIL__SSH_AUTH;
    waiters_succeed(&s->hs_waiters, s);
    return 0;
}

/* ---- authentication
 * -------------------------------------------------------------------- */

enum {
    AUTH_LIST = 0,
    AUTH_AGENT_START,
    AUTH_AGENT_NEXT,
    AUTH_AGENT_TRY,
    AUTH_FILE,
    AUTH_MEM,
    AUTH_PASSWORD,
    AUTH_KBD,
    AUTH_END
};

static int method_allowed(const coil_ssh_session *s, const char *name)
{
    if (!s->auth_methods)
        return 0;
    size_t n = strlen(name);
    const char *p = s->auth_methods;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

static void tried_add(coil_ssh_session *s, const char *fmt, const char *arg)
{
    size_t len = strlen(s->tried);
    if (len >= sizeof s->tried - 1)
        return;
    if (len > 0)
        snprintf(s->tried + len, sizeof s->tried - len, ", ");
    len = strlen(s->tried);
    snprintf(s->tried + len, sizeof s->tried - len, fmt, arg ? arg : "");
}

/* What a private key text (PEM or OpenSSH format) says about itself: an RSA
 * key (*rsa), encrypted (*enc). Only the public header is decoded. */
static void key_text_info(const char *text, int *rsa, int *enc)
{
    *rsa = strstr(text, "BEGIN RSA PRIVATE KEY") != NULL;
    *enc = strstr(text, "ENCRYPTED") != NULL;
    const char *b = strstr(text, "BEGIN OPENSSH PRIVATE KEY-----");
    if (!b || !(b = strchr(b, '\n')))
        return;
    /* "openssh-key-v1\0", the cipher ("none" unless encrypted), the KDF,
     * its options, the key count and the public key, whose first string is
     * the key type: all in the first 120 bytes. */
    char b64[161];
    size_t n = 0;
    for (const char *p = b + 1; *p && *p != '-' && n < sizeof b64 - 1; p++)
        if (*p != '\n' && *p != '\r')
            b64[n++] = *p;
    n -= n % 4;
    b64[n] = 0;
    unsigned char raw[128];
    int got = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
    if (got > 23 && memcmp(raw, "openssh-key-v1", 15) == 0) {
        unsigned clen = (unsigned)raw[15] << 24 | raw[16] << 16 | raw[17] << 8 | raw[18];
        *enc = !(clen == 4 && memcmp(raw + 19, "none", 4) == 0);
    }
    for (int i = 0; i + 7 <= got; i++)
        if (memcmp(raw + i, "ssh-rsa", 7) == 0)
            *rsa = 1;
    sodium_memzero(b64, sizeof b64);
    sodium_memzero(raw, sizeof raw);
}

static void key_file_info(const char *path, int *rsa, int *enc)
{
    *rsa = *enc = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char buf[2048];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    key_text_info(buf, rsa, enc);
    sodium_memzero(buf, sizeof buf);
}

/* Why a key was not used, in words: its passphrase, or the server. */
static void key_refused(coil_ssh_session *s, const char *what, int rc, int rsa, int enc)
{
    int code;
    const char *msg = coil__ssh_errmsg(s, &code);
    char text[1400];
    /* libssh2 1.10: a key file it cannot decrypt fails in the signing
     * callback ("Callback returned error"), a key in memory with
     * LIBSSH2_ERROR_KEYFILE_AUTH_FAILED ("Private key unpack failed"). */
    int unreadable =
        rc == LIBSSH2_ERROR_FILE || rc == LIBSSH2_ERROR_METHOD_NOT_SUPPORTED ||
        rc == LIBSSH2_ERROR_KEYFILE_AUTH_FAILED || strstr(msg, "unpack failed") != NULL ||
        strstr(msg, "Callback returned error") != NULL ||
        strstr(msg, "Unable to") != NULL;
    if (unreadable && enc && !s->passphrase)
        snprintf(text, sizeof text,
                 "publickey (%s: the key is encrypted and no passphrase was given)",
                 what);
    else if (unreadable && enc)
        snprintf(text, sizeof text,
                 "publickey (%s: the key could not be decrypted: wrong passphrase?)",
                 what);
    else if (unreadable)
        snprintf(text, sizeof text, "publickey (%s: the key could not be read: %s)", what,
                 msg);
    else
        snprintf(text, sizeof text, "publickey (%s: refused by the server)", what);
    tried_add(s, "%s", text);
    if (rsa && !unreadable)
        s->rsa_refused = 1;
}

static void kbd_cb(const char *name, int name_len, const char *instruction,
                   int instruction_len, int num_prompts,
                   const LIBSSH2_USERAUTH_KBDINT_PROMPT *prompts,
                   LIBSSH2_USERAUTH_KBDINT_RESPONSE *responses, void **abstract)
{
    coil_ssh_session *s = *abstract;
    char nm[256], ins[512];
    snprintf(nm, sizeof nm, "%.*s", name_len > 0 ? name_len : 0, name ? name : "");
    snprintf(ins, sizeof ins, "%.*s", instruction_len > 0 ? instruction_len : 0,
             instruction ? instruction : "");
    for (int i = 0; i < num_prompts; i++) {
        char pr[512];
        char answer[1024] = "";
        snprintf(pr, sizeof pr, "%.*s", (int)prompts[i].length,
                 prompts[i].text ? (const char *)prompts[i].text : "");
        int ok = 0;
        if (s->prompt) {
            ok = s->prompt(s->prompt_arg, nm, ins, pr, prompts[i].echo, answer,
                           sizeof answer) == 0;
            answer[sizeof answer - 1] = 0;
        } else if (s->password && !prompts[i].echo) {
            snprintf(answer, sizeof answer, "%s", s->password);
            ok = 1;
        }
        responses[i].text = NULL;
        responses[i].length = 0;
        if (ok) {
            size_t len = strlen(answer);
            /* libssh2 frees it with its allocator (malloc/free here). */
            responses[i].text = malloc(len + 1);
            if (responses[i].text) {
                memcpy(responses[i].text, answer, len + 1);
                responses[i].length = (unsigned int)len;
            }
        }
        sodium_memzero(answer, sizeof answer);
    }
}

static coil_failure *auth_failure(coil_ssh_session *s)
{
    char where[300];
    coil__ssh_where(s, where, sizeof where);
    const char *rsa = s->rsa_refused
                          ? " (an RSA key was refused: libssh2 1.10 signs RSA keys only "
                            "with ssh-rsa/SHA-1, which OpenSSH 8.8 and later refuse by "
                            "default; use an ed25519 or ecdsa key)"
                          : "";
    return coil_failure_new(COIL_DOMAIN_SSH, COIL_SSH_EAUTH,
                            "authentication as %s at %s failed: tried %s; the server "
                            "allows: %s%s",
                            s->user, where, s->tried[0] ? s->tried : "nothing",
                            s->auth_methods ? s->auth_methods : "(none listed)", rsa);
}

/* Result of one attempt: 1 waiting, 0 done (authenticated), 2 refused (go
 * on), negative: fatal. */
static int attempt_result(coil_ssh_session *s, int rc)
{
    s->last_rc = rc;
    if (rc == LIBSSH2_ERROR_EAGAIN)
        return 1;
    if (rc == 0)
        return libssh2_userauth_authenticated(s->ssh) ? 0 : 2;
    if (is_fatal(rc) && rc != LIBSSH2_ERROR_ALLOC) {
        coil__ssh_fatal(s, rc, "authentication");
        return -1;
    }
    return 2;
}

static int auth_step(coil_ssh_session *s, coil__ssh_op *op)
{
    unsigned ulen = (unsigned)strlen(s->user);
    for (;;) {
        int r;
        switch (s->auth_stage) {
        case AUTH_LIST: {
            char *list = libssh2_userauth_list(s->ssh, s->user, ulen);
            if (!list) {
                if (libssh2_userauth_authenticated(s->ssh))
                    goto done; /* "none" was accepted */
                int rc = libssh2_session_last_errno(s->ssh);
                if (rc == LIBSSH2_ERROR_EAGAIN)
                    return 1;
                coil__ssh_fatal(s, rc, "asking for the authentication methods");
                return -1;
            }
            s->auth_methods = strdup(list);
            s->auth_stage = AUTH_AGENT_START;
            continue;
        }
        case AUTH_AGENT_START:
            s->auth_stage = AUTH_FILE;
            if (!s->use_agent || !method_allowed(s, "publickey"))
                continue;
            if (!s->agent_socket && !getenv("SSH_AUTH_SOCK")) {
                tried_add(s, "publickey (agent: SSH_AUTH_SOCK is not set)%s", NULL);
                continue;
            }
            s->agent = libssh2_agent_init(s->ssh);
            if (!s->agent)
                continue;
            if (s->agent_socket)
                libssh2_agent_set_identity_path(s->agent, s->agent_socket);
            if (libssh2_agent_connect(s->agent) != 0) {
                tried_add(s, "publickey (agent: cannot connect to %s)",
                          s->agent_socket ? s->agent_socket : getenv("SSH_AUTH_SOCK"));
                continue;
            }
            s->agent_connected = 1;
            if (libssh2_agent_list_identities(s->agent) != 0) {
                tried_add(s, "publickey (agent: listing its keys failed)%s", NULL);
                continue;
            }
            s->agent_prev = NULL;
            s->auth_stage = AUTH_AGENT_NEXT;
            continue;
        case AUTH_AGENT_NEXT: {
            struct libssh2_agent_publickey *id = NULL;
            if (libssh2_agent_get_identity(s->agent, &id, s->agent_prev) != 0 || !id) {
                if (!s->agent_prev)
                    tried_add(s, "publickey (agent: no keys)%s", NULL);
                s->auth_stage = AUTH_FILE;
                continue;
            }
            s->agent_prev = id;
            s->auth_stage = AUTH_AGENT_TRY;
            continue;
        }
        case AUTH_AGENT_TRY: {
            struct libssh2_agent_publickey *id = s->agent_prev;
            r = attempt_result(s, libssh2_agent_userauth(s->agent, s->user, id));
            if (r == 1 || r < 0)
                return r;
            if (r == 0)
                goto done;
            tried_add(s, "publickey (agent key %s)", id->comment ? id->comment : "?");
            if (id->blob_len > 11 && memcmp(id->blob + 4, "ssh-rsa", 7) == 0)
                s->rsa_refused = 1;
            s->auth_stage = AUTH_AGENT_NEXT;
            continue;
        }
        case AUTH_FILE: {
            if (!s->identity_file || !method_allowed(s, "publickey")) {
                s->auth_stage = AUTH_MEM;
                continue;
            }
            char pub[4096];
            snprintf(pub, sizeof pub, "%s.pub", s->identity_file);
            const char *pubp = access(pub, R_OK) == 0 ? pub : NULL;
            r = attempt_result(s, libssh2_userauth_publickey_fromfile_ex(
                                      s->ssh, s->user, ulen, pubp, s->identity_file,
                                      s->passphrase ? s->passphrase : ""));
            if (r == 1 || r < 0)
                return r;
            if (r == 0)
                goto done;
            int rsa, enc;
            key_file_info(s->identity_file, &rsa, &enc);
            key_refused(s, s->identity_file, s->last_rc, rsa, enc);
            s->auth_stage = AUTH_MEM;
            continue;
        }
        case AUTH_MEM: {
            if (!s->key_pem || !method_allowed(s, "publickey")) {
                s->auth_stage = AUTH_PASSWORD;
                continue;
            }
            r = attempt_result(s, libssh2_userauth_publickey_frommemory(
                                      s->ssh, s->user, ulen, NULL, 0, s->key_pem,
                                      strlen(s->key_pem),
                                      s->passphrase ? s->passphrase : ""));
            if (r == 1 || r < 0)
                return r;
            if (r == 0)
                goto done;
            int rsa, enc;
            key_text_info(s->key_pem, &rsa, &enc);
            key_refused(s, "key in memory", s->last_rc, rsa, enc);
            s->auth_stage = AUTH_PASSWORD;
            continue;
        }
        case AUTH_PASSWORD:
            if (!s->password || !method_allowed(s, "password")) {
                s->auth_stage = AUTH_KBD;
                continue;
            }
            r = attempt_result(
                s, libssh2_userauth_password_ex(s->ssh, s->user, ulen, s->password,
                                                (unsigned)strlen(s->password), NULL));
            if (r == 1 || r < 0)
                return r;
            if (r == 0)
                goto done;
            tried_add(s, "password%s", NULL);
            s->auth_stage = AUTH_KBD;
            continue;
        case AUTH_KBD:
            if ((!s->prompt && !s->password) ||
                !method_allowed(s, "keyboard-interactive")) {
                s->auth_stage = AUTH_END;
                continue;
            }
            r = attempt_result(s, libssh2_userauth_keyboard_interactive_ex(
                                      s->ssh, s->user, ulen, kbd_cb));
            if (r == 1 || r < 0)
                return r;
            if (r == 0)
                goto done;
            tried_add(s, "keyboard-interactive%s", NULL);
            s->auth_stage = AUTH_END;
            continue;
        default: {
            coil_failure *f = auth_failure(s);
            s->ready_failure = coil_failure_copy(f);
            waiters_fail(&s->ready_waiters, s->ready_failure);
            /* Nothing can be done on this session: end it. */
            libssh2_session_disconnect_ex(s->ssh, SSH_DISCONNECT_BY_APPLICATION,
                                          "authentication failed", "");
            if (s->lower && !s->lower_gone)
                coil_transport_lose_connection(s->lower);
            session_end(s, f);
            return -1;
        }
        }
    }
done:
    /* Secrets are not needed any more: wipe them now. */
    free_secret(s->password);
    s->password = NULL;
    free_secret(s->passphrase);
    s->passphrase = NULL;
    free_secret(s->key_pem);
    s->key_pem = NULL;
    if (s->agent) {
        if (s->agent_connected)
            libssh2_agent_disconnect(s->agent);
        s->agent_connected = 0;
        libssh2_agent_free(s->agent);
        s->agent = NULL;
    }
    s->auth_done = 1;
    cancel_timer(&s->hs_timer);
    if (s->state == COIL__SSH_AUTH)
        s->state = COIL__SSH_READY;
    waiters_succeed(&s->ready_waiters, s);
    return 0;
}

/* ---- disconnect
 * --------------------------------------------------------------------------- */

static int disconnect_step(coil_ssh_session *s, coil__ssh_op *op)
{
    if (s->ssh && s->hs_done && s->lower && !s->lower_gone) {
        int rc = libssh2_session_disconnect_ex(s->ssh, SSH_DISCONNECT_BY_APPLICATION,
                                               "closed by the client", "");
        if (rc == LIBSSH2_ERROR_EAGAIN)
            return 1;
    }
    s->disconnect_sent = 1;
    if (s->lower && !s->lower_gone)
        coil_transport_lose_connection(s->lower);
    return 0;
}

/* ---- driving
 * ----------------------------------------------------------------------------- */

/* Keepalive. libssh2_keepalive_send's global request would do, but its
 * reply (REQUEST_FAILURE from OpenSSH) stays in libssh2 1.10's packet list
 * and the next tcpip-forward takes it for its own answer. So the probe is a
 * channel open of a type no server has: the server must answer at once
 * with OPEN_FAILURE (unknown channel type), and libssh2 consumes that
 * answer, keyed by the channel number. Any bytes from the server count as
 * a sign of life (last_rx). */
static int keepalive_step(coil_ssh_session *s, coil__ssh_op *op)
{
    static const char type[] = "keepalive@coil.invalid";
    LIBSSH2_CHANNEL *ch =
        libssh2_channel_open_ex(s->ssh, type, sizeof type - 1, 4096, 4096, NULL, 0);
    if (!ch) {
        int rc = libssh2_session_last_errno(s->ssh);
        if (rc == LIBSSH2_ERROR_EAGAIN)
            return 1;
        s->ka_queued = 0;
        if (is_fatal(rc) && rc != LIBSSH2_ERROR_ALLOC) {
            coil__ssh_fatal(s, rc, "sending a keepalive");
            return -1;
        }
        return 0; /* refused, as expected */
    }
    s->ka_queued = 0;
    coil__ssh_free_lchannel(s, ch); /* a server that took it: close it */
    return 0;
}

static int run_op(coil_ssh_session *s, coil__ssh_op *op)
{
    switch (op->kind) {
    case COIL__OP_HANDSHAKE:
        return handshake_step(s, op);
    case COIL__OP_AUTH:
        return auth_step(s, op);
    case COIL__OP_OPEN:
        return coil__ssh_open_step(s, op);
    case COIL__OP_LISTEN:
        return coil__ssh_listen_step(s, op);
    case COIL__OP_CANCEL:
        return coil__ssh_cancel_step(s, op);
    case COIL__OP_DISCONNECT:
        return disconnect_step(s, op);
    case COIL__OP_KEEPALIVE:
        return keepalive_step(s, op);
    }
    return 0;
}

static void run_queue(coil_ssh_session *s)
{
    while (s->op_head && s->state != COIL__SSH_DEAD) {
        coil__ssh_op *op = s->op_head;
        /* Channels and forwards wait for authentication. */
        if (op->kind != COIL__OP_HANDSHAKE && op->kind != COIL__OP_AUTH &&
            op->kind != COIL__OP_DISCONNECT && !s->auth_done)
            return;
        int rc = run_op(s, op);
        if (rc == 1 || s->state == COIL__SSH_DEAD)
            return;
        if (s->op_head == op) {
            s->op_head = op->next;
            if (!s->op_head)
                s->op_tail = NULL;
            coil__ssh_op_free(op);
        }
    }
}

static void maybe_finish_close(coil_ssh_session *s)
{
    if (s->state != COIL__SSH_CLOSING || s->disconnect_sent || s->n_channels > 0)
        return;
    for (coil__ssh_op *op = s->op_head; op; op = op->next)
        if (op->kind == COIL__OP_DISCONNECT)
            return;
    coil__ssh_op *op = calloc(1, sizeof *op);
    if (!op) {
        if (s->lower && !s->lower_gone)
            coil_transport_lose_connection(s->lower);
        return;
    }
    op->kind = COIL__OP_DISCONNECT;
    coil__ssh_enqueue(s, op);
}

static int drive_cb(void *arg)
{
    coil_ssh_session *s = arg;
    s->drive_scheduled = 0;
    coil__ssh_drive(s);
    coil__ssh_unref(s);
    return 0;
}

void coil__ssh_drive_soon(coil_ssh_session *s)
{
    if (s->drive_scheduled || s->state == COIL__SSH_DEAD)
        return;
    if (coil_reactor_call_soon(s->r, drive_cb, s) != 0)
        return;
    s->drive_scheduled = 1;
    coil__ssh_ref(s);
}

void coil__ssh_drive(coil_ssh_session *s)
{
    if (s->driving) {
        s->drive_again = 1;
        return;
    }
    if (s->state == COIL__SSH_DEAD || s->state == COIL__SSH_NEW)
        return;
    coil__ssh_ref(s);
    s->driving = 1;
    int more = 0;
    int rounds = 0;
    do {
        s->drive_again = 0;
        run_queue(s);
        if (s->state == COIL__SSH_DEAD)
            break;
        if (s->auth_done)
            more = coil__ssh_sweep(s);
        if (s->state == COIL__SSH_DEAD)
            break;
        run_queue(s); /* the sweep may have brought an answer */
        maybe_finish_close(s);
    } while (s->drive_again && ++rounds < 8 && s->state != COIL__SSH_DEAD);
    s->driving = 0;
    if ((more || s->drive_again) && s->state != COIL__SSH_DEAD)
        coil__ssh_drive_soon(s);
    /* The transport below hit EOF and libssh2 has consumed everything: if
     * nothing noticed (no call was waiting), the session is over. */
    if (s->state != COIL__SSH_DEAD && s->lower_eof && s->in_end == s->in_start)
        coil__ssh_fatal(s, LIBSSH2_ERROR_SOCKET_DISCONNECT, "reading");
    coil__ssh_unref(s);
}

/* ---- timers
 * -------------------------------------------------------------------------------- */

static int hs_timeout(void *arg)
{
    coil_ssh_session *s = arg;
    coil_timer_release(s->hs_timer);
    s->hs_timer = NULL;
    if (s->auth_done || s->state == COIL__SSH_DEAD)
        return 0;
    char where[300];
    coil__ssh_where(s, where, sizeof where);
    session_end(s, coil_failure_new(COIL_DOMAIN_COIL, COIL_ETIMEDOUT,
                                    "SSH %s with %s did not finish within %g s",
                                    s->hs_done ? "authentication" : "handshake", where,
                                    s->handshake_timeout));
    return 0;
}

static int ka_tick(void *arg)
{
    coil_ssh_session *s = arg;
    coil_timer_release(s->ka_timer);
    s->ka_timer = NULL;
    if (s->state == COIL__SSH_DEAD)
        return 0;
    double now = coil_reactor_seconds(s->r);
    if (s->op_head && s->op_head->kind == COIL__OP_OPEN && s->op_head->started) {
        /* A channel open waits for the server (a direct-tcpip connect at the
         * far side may take minutes) and holds the queue: no probe can be
         * asked now, and the server's silence means nothing. Keep the link
         * warm (a keepalive that wants no reply) and count again after. */
        int next = 0;
        libssh2_keepalive_config(s->ssh, 0, 1);
        libssh2_keepalive_send(s->ssh, &next);
        s->last_rx = now;
        s->ka_timer = coil_reactor_call_later(s->r, s->keepalive_interval, ka_tick, s);
        return 0;
    }
    if (now - s->last_rx > 3 * s->keepalive_interval) {
        char where[300];
        coil__ssh_where(s, where, sizeof where);
        session_end(s, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECONNLOST,
                                        "SSH session with %s lost: the server sent "
                                        "nothing for %.0f s (3 keepalive intervals)",
                                        where, now - s->last_rx));
        return 0;
    }
    if (s->auth_done && !s->ka_queued && s->state == COIL__SSH_READY) {
        coil__ssh_op *op = calloc(1, sizeof *op);
        if (op) {
            op->kind = COIL__OP_KEEPALIVE;
            s->ka_queued = 1;
            coil__ssh_enqueue(s, op);
        }
    }
    s->ka_timer = coil_reactor_call_later(s->r, s->keepalive_interval, ka_tick, s);
    return 0;
}

/* ---- the protocol on the transport below
 * ------------------------------------------------------- */

/* The reactor's registry: shutdown closes cleanly, then aborts. */
static coil_ssh_session *from_tracked(coil__tracked *t)
{
    return (coil_ssh_session *)((char *)t - offsetof(coil_ssh_session, tracked));
}

static void tracked_close(coil__tracked *t)
{
    coil_ssh_session *s = from_tracked(t);
    coil_deferred_unref(coil_ssh_session_close(s));
}

static void tracked_abort(coil__tracked *t)
{
    coil_ssh_session *s = from_tracked(t);
    coil__reactor_untrack(&s->tracked);
    if (s->lower && !s->lower_gone)
        coil_transport_abort_connection(s->lower);
}

static const coil__track_ops track_ops = {
    .close = tracked_close,
    .abort = tracked_abort,
};

static coil_ssh_session *from_down(coil_protocol *p)
{
    return (coil_ssh_session *)((char *)p - offsetof(coil_ssh_session, down));
}

static void prod_pause(coil_producer *p)
{
    coil_ssh_session *s =
        (coil_ssh_session *)((char *)p - offsetof(coil_ssh_session, prod));
    s->lower_full = 1;
}

static void prod_resume(coil_producer *p)
{
    coil_ssh_session *s =
        (coil_ssh_session *)((char *)p - offsetof(coil_ssh_session, prod));
    s->lower_full = 0;
    coil__ssh_drive_soon(s);
}

static const coil_producer_ops prod_ops = {prod_pause, prod_resume, NULL};

static void down_connection_made(coil_protocol *p)
{
    coil_ssh_session *s = from_down(p);
    s->lower = p->transport;
    s->lower_seen = 1;
    if (s->state == COIL__SSH_DEAD) {
        coil_transport_abort_connection(s->lower);
        return;
    }
    s->state = COIL__SSH_HANDSHAKE;
    s->last_rx = coil_reactor_seconds(s->r);
    /* coil_reactor_shutdown closes the session (channels, DISCONNECT), not
     * the transport below it directly. */
    coil__reactor_track(s->r, &s->tracked, &track_ops);
    if (s->lower->ops->abort_connection == coil__stream_abort_connection)
        ((coil__stream *)s->lower)->tracked.upper = &s->tracked;
    coil_transport_register_producer(s->lower, &s->prod, 1);
    coil__ssh_op *hs = calloc(1, sizeof *hs);
    coil__ssh_op *au = calloc(1, sizeof *au);
    if (!hs || !au) {
        free(hs);
        free(au);
        session_end(s, coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory"));
        return;
    }
    hs->kind = COIL__OP_HANDSHAKE;
    au->kind = COIL__OP_AUTH;
    /* Before anything queued while we were not connected. */
    au->next = s->op_head;
    hs->next = au;
    s->op_head = hs;
    if (!s->op_tail)
        s->op_tail = au;
    s->hs_timer = coil_reactor_call_later(s->r, s->handshake_timeout, hs_timeout, s);
    if (s->keepalive_interval > 0)
        s->ka_timer = coil_reactor_call_later(s->r, s->keepalive_interval, ka_tick, s);
    coil__ssh_drive(s);
}

static void down_data_received(coil_protocol *p, const void *data, size_t len)
{
    coil_ssh_session *s = from_down(p);
    if (s->state == COIL__SSH_DEAD)
        return;
    s->last_rx = coil_reactor_seconds(s->r);
    if (s->in_start > 0 && s->in_end + len > s->in_cap) {
        memmove(s->in, s->in + s->in_start, s->in_end - s->in_start);
        s->in_end -= s->in_start;
        s->in_start = 0;
    }
    if (s->in_end + len > s->in_cap) {
        size_t cap = s->in_cap ? s->in_cap : 32 * 1024;
        while (cap < s->in_end + len)
            cap *= 2;
        unsigned char *n = realloc(s->in, cap);
        if (!n) {
            session_end(s, coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM,
                                            "out of memory buffering SSH input"));
            return;
        }
        s->in = n;
        s->in_cap = cap;
    }
    memcpy(s->in + s->in_end, data, len);
    s->in_end += len;
    if (!s->lower_paused && s->in_end - s->in_start > IN_HIGH) {
        s->lower_paused = 1;
        coil_transport_pause_reading(s->lower);
    }
    coil__ssh_drive(s);
}

static void down_read_connection_lost(coil_protocol *p)
{
    coil_ssh_session *s = from_down(p);
    s->lower_eof = 1;
    coil__ssh_drive(s);
    if (s->state != COIL__SSH_DEAD)
        coil__ssh_fatal(s, LIBSSH2_ERROR_SOCKET_DISCONNECT, "reading");
}

static void down_connection_lost(coil_protocol *p, const coil_failure *reason)
{
    coil_ssh_session *s = from_down(p);
    s->lower_gone = 1;
    if (s->state == COIL__SSH_DEAD)
        return;
    char where[300];
    coil__ssh_where(s, where, sizeof where);
    if (s->disconnect_sent == 1 &&
        coil_failure_check(reason, COIL_DOMAIN_COIL, COIL_ECLOSED))
        session_end(s, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECLOSED,
                                        "SSH session with %s closed", where));
    else if (s->disconnect_sent == 2)
        session_end(s, coil_failure_new(COIL_DOMAIN_SSH, COIL_SSH_EDISCONNECTED,
                                        "SSH session with %s lost: the server sent "
                                        "DISCONNECT: %s",
                                        where, s->disc_msg));
    else
        session_end(s, coil_failure_wrap(coil_failure_copy(reason), COIL_DOMAIN_COIL,
                                         COIL_ECONNLOST,
                                         "SSH session with %s lost: the connection "
                                         "below ended",
                                         where));
}

static void down_destroy(coil_protocol *p)
{
    coil_ssh_session *s = from_down(p);
    s->lower_gone = 1;
    s->lower = NULL;
    if (s->state != COIL__SSH_DEAD)
        session_end(s, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECONNLOST,
                                        "the transport below the SSH session never "
                                        "came up"));
    coil__ssh_unref(s);
}

static const coil_protocol_ops down_ops = {
    .connection_made = down_connection_made,
    .data_received = down_data_received,
    .read_connection_lost = down_read_connection_lost,
    .connection_lost = down_connection_lost,
    .destroy = down_destroy,
};

/* ---- public: sessions
 * ----------------------------------------------------------------------------- */

int coil_ssh_session_new(coil_reactor *r, const coil_ssh_options *o,
                         coil_ssh_session **out, coil_failure **err)
{
    if (out)
        *out = NULL;
    if (err)
        *err = NULL;
    if (!r || !o || !out || !o->host || !*o->host) {
        if (err)
            *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_EINVAL,
                                    "an SSH session needs a reactor and options with "
                                    "the server's host name");
        return COIL_EINVAL;
    }
    pthread_once(&init_once, global_init);
    if (init_rc != 0) {
        if (err)
            *err =
                coil_failure_new(COIL_DOMAIN_SSH, 0, "libssh2 could not be initialised");
        return COIL_ESYSTEM;
    }
    coil_ssh_session *s = calloc(1, sizeof *s);
    if (!s)
        goto nomem;
    s->r = r;
    s->refs = 1;
    s->caller_ref = 1;
    s->down.ops = &down_ops;
    s->prod.ops = &prod_ops;
    s->port = o->port > 0 ? o->port : 22;
    s->policy = o->host_key_policy;
    s->use_agent = o->agent;
    s->prompt = o->prompt;
    s->prompt_arg = o->prompt_arg;
    s->connect_timeout = o->connect_timeout > 0 ? o->connect_timeout : 30;
    s->handshake_timeout = o->handshake_timeout > 0 ? o->handshake_timeout : 30;
    s->keepalive_interval = o->keepalive_interval > 0 ? o->keepalive_interval : 0;
    s->close_timeout = o->close_timeout > 0 ? o->close_timeout : 30;
    s->close_when_idle = o->close_when_idle;
    s->window = o->window > 0 ? o->window : 2 * 1024 * 1024;
    if (s->window > 0x7fffffff)
        s->window = 0x7fffffff;
    s->high_water = o->high_water;
    s->low_water = o->low_water;
    const char *user = o->user ? o->user : getenv("USER");
    s->host = strdup(o->host);
    s->user = strdup(user ? user : "root");
    if (!s->host || !s->user)
        goto nomem;
    if ((o->known_hosts_file && !(s->known_hosts = strdup(o->known_hosts_file))) ||
        (o->agent_socket && !(s->agent_socket = strdup(o->agent_socket))) ||
        (o->identity_file && !(s->identity_file = strdup(o->identity_file))) ||
        (o->key_pem && !(s->key_pem = strdup(o->key_pem))) ||
        (o->passphrase && !(s->passphrase = strdup(o->passphrase))) ||
        (o->password && !(s->password = strdup(o->password))))
        goto nomem;
    s->ssh = libssh2_session_init_ex(NULL, NULL, NULL, s);
    if (!s->ssh)
        goto nomem;
    libssh2_session_set_blocking(s->ssh, 0);
    libssh2_session_callback_set(s->ssh, LIBSSH2_CALLBACK_RECV, (void *)recv_cb);
    libssh2_session_callback_set(s->ssh, LIBSSH2_CALLBACK_SEND, (void *)send_cb);
    libssh2_session_callback_set(s->ssh, LIBSSH2_CALLBACK_DISCONNECT,
                                 (void *)disconnect_cb);
    *out = s;
    return 0;
nomem:
    if (s) {
        s->refs = 1;
        session_destroy(s);
    }
    if (err)
        *err = coil_failure_new(COIL_DOMAIN_COIL, COIL_ENOMEM, "out of memory");
    return COIL_ENOMEM;
}

coil_protocol *coil_ssh_session_protocol(coil_ssh_session *s)
{
    coil__ssh_ref(s); /* the transport below's, dropped at destroy */
    return &s->down;
}

/* coil_ssh_session_connect: the client factory of the TCP connector. */
static coil_ssh_session *from_factory(coil_factory *f)
{
    return (coil_ssh_session *)((char *)f - offsetof(coil_ssh_session, cfactory));
}

static coil_protocol *cf_build(coil_factory *f, const coil_address *peer)
{
    coil_ssh_session *s = from_factory(f);
    if (s->lower_seen || s->state == COIL__SSH_DEAD)
        return NULL;
    return coil_ssh_session_protocol(s);
}

static void cf_failed(coil_factory *f, coil_connector *c, const coil_failure *reason)
{
    coil_ssh_session *s = from_factory(f);
    char where[300];
    coil__ssh_where(s, where, sizeof where);
    session_end(s, coil_failure_wrap(
                       coil_failure_copy(reason), coil_failure_domain(reason),
                       coil_failure_code(reason), "SSH connection to %s failed", where));
}

static const coil_factory_ops cf_ops = {
    .build_protocol = cf_build,
    .connection_failed = cf_failed,
};

int coil_ssh_session_connect(coil_reactor *r, const coil_ssh_options *o,
                             coil_ssh_session **out, coil_failure **err)
{
    int rc = coil_ssh_session_new(r, o, out, err);
    if (rc != 0)
        return rc;
    coil_ssh_session *s = *out;
    s->cfactory.ops = &cf_ops;
    coil_tcp_connect_options co = {0};
    co.host = s->host;
    co.port = s->port;
    co.timeout = s->connect_timeout;
    rc = coil_tcp_connect(r, &co, &s->cfactory, &s->connector);
    if (rc != 0) {
        if (err)
            *err = coil_failure_new(COIL_DOMAIN_COIL, rc, "cannot connect to %s:%d: %s",
                                    s->host, s->port, coil_strerror(rc));
        s->connector = NULL;
        coil_ssh_session_free(s);
        *out = NULL;
        return rc;
    }
    return 0;
}

/* A deferred for a step of the session (the handshake, or being ready):
 * fired now when the step is `done` or has `failed` or the session is
 * dead, else queued on `waiters`. */
static coil_deferred *step_deferred(coil_ssh_session *s, int done,
                                    const coil_failure *failed,
                                    coil__ssh_waiter **waiters)
{
    if (done)
        return coil_deferred_succeed(s, NULL);
    if (failed)
        return coil_deferred_fail(coil_failure_copy(failed));
    if (s->state == COIL__SSH_DEAD)
        return coil_deferred_fail(coil_failure_copy(s->end_reason));
    coil_deferred *d = coil_deferred_new();
    if (d)
        add_waiter(waiters, d);
    return d;
}

coil_deferred *coil_ssh_session_handshake(coil_ssh_session *s)
{
    return step_deferred(s, s->hs_done, s->hs_failure, &s->hs_waiters);
}

coil_deferred *coil_ssh_session_ready(coil_ssh_session *s)
{
    return step_deferred(s, s->auth_done, s->ready_failure, &s->ready_waiters);
}

int coil_ssh_session_is_ready(const coil_ssh_session *s)
{
    return s && s->auth_done && s->state == COIL__SSH_READY;
}

const char *coil_ssh_session_host_key_type(const coil_ssh_session *s)
{
    return s && s->hs_done ? s->hk_type : NULL;
}

const char *coil_ssh_session_host_key_fingerprint(const coil_ssh_session *s)
{
    return s && s->hs_done ? s->hk_fp : NULL;
}

const char *coil_ssh_session_server_banner(const coil_ssh_session *s)
{
    return s && s->hs_done ? s->banner : NULL;
}

const char *coil_ssh_session_cipher(const coil_ssh_session *s)
{
    return s && s->hs_done ? s->cipher : NULL;
}

const char *coil_ssh_session_mac(const coil_ssh_session *s)
{
    return s && s->hs_done ? s->mac : NULL;
}

size_t coil_ssh_session_channel_count(const coil_ssh_session *s)
{
    return s ? s->n_channels : 0;
}

coil_deferred *coil_ssh_session_close(coil_ssh_session *s)
{
    if (s->state == COIL__SSH_DEAD)
        return coil_deferred_succeed(s, NULL);
    coil_deferred *d = coil_deferred_new();
    if (d)
        add_waiter(&s->close_waiters, d);
    if (s->state == COIL__SSH_CLOSING)
        return d;
    if (s->state == COIL__SSH_NEW) {
        char where[300];
        coil__ssh_where(s, where, sizeof where);
        if (s->connector)
            coil_connector_stop_connecting(s->connector);
        session_end(s, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECLOSED,
                                        "SSH session with %s closed before it connected",
                                        where));
        return d;
    }
    if (!s->auth_done) {
        /* Nothing to close cleanly yet: drop the connection. */
        char where[300];
        coil__ssh_where(s, where, sizeof where);
        coil_failure *f = coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED,
                                           "SSH session with %s closed before it was "
                                           "ready",
                                           where);
        if (s->lower && !s->lower_gone)
            coil_transport_lose_connection(s->lower);
        session_end(s, f);
        return d;
    }
    s->state = COIL__SSH_CLOSING;
    coil__ssh_ref(s);
    coil__ssh_channels_close(s);
    maybe_finish_close(s);
    coil__ssh_drive_soon(s);
    coil__ssh_unref(s);
    return d;
}

void coil_ssh_session_free(coil_ssh_session *s)
{
    if (!s || !s->caller_ref)
        return;
    s->caller_ref = 0;
    s->on_lost = NULL;
    if (s->state == COIL__SSH_NEW && !s->lower_seen && s->connector) {
        /* Never connected: nothing else will end it. */
        coil_connector_free(s->connector);
        s->connector = NULL;
        session_end(s, coil_failure_new(COIL_DOMAIN_COIL, COIL_ECANCELLED,
                                        "the SSH session was freed before it connected"));
    }
    coil__ssh_unref(s);
}

void coil_ssh_session_on_lost(coil_ssh_session *s,
                              void (*fn)(void *arg, coil_ssh_session *s,
                                         const coil_failure *reason),
                              void *arg)
{
    s->on_lost = fn;
    s->on_lost_arg = arg;
}
