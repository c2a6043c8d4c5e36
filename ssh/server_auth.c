/* coil's SSH server: user authentication (RFC 4252, keyboard-interactive of
 * RFC 4256), as OpenSSH's sshd behaves; see server_private.h.
 *
 * One attempt at a time. A USERAUTH_REQUEST is parsed, every length bounded,
 * and answered:
 *   - "none": success when the server is anonymous, else FAILURE listing the
 *     methods (the first "none" is free, as in OpenSSH; never delayed).
 *   - "publickey": the key is checked (coil__ssh_userkey_check) and
 *     authorized (authorized_keys and/or the callback); without a signature
 *     PK_OK, with one the signature over the session id and the request is
 *     verified, the key authorized again, and the user logged in.
 *   - "password" and "keyboard-interactive" (one "Password: " prompt): the
 *     callback runs on the reactor's thread pool, on copies of the user and
 *     password that are wiped after; the connection's input is held
 *     meanwhile (coil__sshd_hold_input).
 * Every failure answer (FAILURE, or the DISCONNECT at max_auth_tries) leaves
 * no earlier than auth_failure_delay after its request arrived, on a timer,
 * input held meanwhile: an unknown user takes the same path, the same
 * callbacks and the same time as a wrong key or password (coil has no user
 * list of its own; the callbacks decide). The login grace timer runs from
 * the client's identification line to success. */
#include "server_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <coil/log.h>
#include <coil/ssh.h>
#include <coil/threadpool.h>

#include "known_hosts.h"

#define MOD "ssh-server"

#define DEFAULT_MAX_TRIES     6
#define DEFAULT_GRACE         120.0
#define DEFAULT_FAILURE_DELAY 0.25
#define MAX_ATTEMPTS          1024  /* requests of any kind (OpenSSH's bound) */
#define MAX_NAME              256   /* service, method, algorithm names */
#define MAX_KEY_BLOB          16384 /* an RSA-16384 key is about 2 KiB */
#define MAX_SIGNATURE         16384
#define MAX_BANNER            16384

enum { KBD_NONE = 0, KBD_PASSWORD = 1, KBD_EMPTY = 2 };

static const char *const method_password = "password";
static const char *const method_kbd = "keyboard-interactive";

/* ---- small helpers ------------------------------------------------------ */

static const coil_ssh_server_options *opts(const coil__sshd *s)
{
    return &s->srv->o;
}

static int max_tries(const coil__sshd *s)
{
    return opts(s)->max_auth_tries > 0 ? opts(s)->max_auth_tries : DEFAULT_MAX_TRIES;
}

static double grace_time(const coil__sshd *s)
{
    return opts(s)->login_grace_time > 0 ? opts(s)->login_grace_time : DEFAULT_GRACE;
}

static double failure_delay(const coil__sshd *s)
{
    return opts(s)->auth_failure_delay > 0 ? opts(s)->auth_failure_delay
                                           : DEFAULT_FAILURE_DELAY;
}

static int offers_publickey(const coil__sshd *s)
{
    return s->srv->authkeys != NULL || opts(s)->authorize_key != NULL;
}

static int offers_password(const coil__sshd *s)
{
    return opts(s)->check_password != NULL;
}

static int offers_kbd(const coil__sshd *s)
{
    return opts(s)->check_password != NULL || opts(s)->anonymous;
}

/* A name from the network, printable for a log line: bytes outside
 * printable ASCII as \xHH, cut at the buffer's size. */
static const char *vis(const void *p, size_t len, char *buf, size_t size)
{
    const unsigned char *in = p;
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < size; i++) {
        unsigned char c = in[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            buf[o++] = (char)c;
        } else {
            snprintf(buf + o, size - o, "\\x%02x", c);
            o += 4;
        }
    }
    buf[o] = '\0';
    return buf;
}

static const char *vis_user(const coil__sshd *s, char *buf, size_t size)
{
    return vis(s->auth.user, strlen(s->auth.user), buf, size);
}

static int protocol_error(coil__sshd *s, const char *what)
{
    coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_PROTOCOL_ERROR, "%s", what);
    return -1;
}

static int is_dead(const coil__sshd *s)
{
    return s->state == COIL__SSHD_DEAD || s->lower == NULL;
}

/* Input stays in the buffer while an attempt is checked or its failure
 * answer waits; released when the answer is sent. */
static void hold(coil__sshd *s)
{
    if (!s->auth.busy) {
        s->auth.busy = 1;
        coil__sshd_hold_input(s, 1);
    }
}

static void release(coil__sshd *s)
{
    if (s->auth.busy) {
        s->auth.busy = 0;
        coil__sshd_hold_input(s, 0);
    }
}

/* Cancel a timer of ours; drops the reference it held when it was still
 * pending. Returns 1 when that reference must be dropped. */
static int cancel_timer(coil_timer **tp)
{
    coil_timer *t = *tp;
    int pending;
    if (!t)
        return 0;
    *tp = NULL;
    pending = coil_timer_cancel(t) == 0;
    coil_timer_release(t);
    return pending;
}

/* ---- messages we send --------------------------------------------------- */

/* Send a payload built by `w` into a buffer of our own. */
static int send_w(coil__sshd *s, const coil__sshw *w)
{
    if (w->bad)
        return protocol_error(s, "internal error: an authentication answer did not fit");
    return coil__sshd_send(s, w->p, w->len) == 0 ? 0 : -1;
}

static void methods_list(const coil__sshd *s, char *buf, size_t size)
{
    buf[0] = '\0';
    if (offers_publickey(s))
        snprintf(buf, size, "publickey");
    if (offers_password(s))
        snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", buf[0] ? "," : "",
                 method_password);
    if (offers_kbd(s))
        snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", buf[0] ? "," : "",
                 method_kbd);
}

static int send_failure(coil__sshd *s)
{
    char methods[64];
    unsigned char buf[96];
    coil__sshw w;
    methods_list(s, methods, sizeof methods);
    coil__sshw_init(&w, buf, sizeof buf);
    coil__sshw_u8(&w, COIL__SSH_MSG_USERAUTH_FAILURE);
    coil__sshw_cstring(&w, methods);
    coil__sshw_bool(&w, 0); /* partial success */
    return send_w(s, &w);
}

/* The banner, once, before the first answer. A banner longer than 16 KiB is
 * cut at a UTF-8 character boundary. */
static int send_banner(coil__sshd *s)
{
    const char *text = s->srv->banner ? s->srv->banner : opts(s)->banner;
    size_t len, room;
    unsigned char *p;
    coil__sshw w;
    if (s->auth.banner_sent || !text || !*text)
        return 0;
    s->auth.banner_sent = 1;
    len = strlen(text);
    if (len > MAX_BANNER) {
        len = MAX_BANNER;
        while (len > 0 && ((unsigned char)text[len] & 0xc0) == 0x80)
            len--;
    }
    p = coil__sshd_packet_begin(s, len + 16, &room);
    if (!p)
        return -1;
    coil__sshw_init(&w, p, room);
    coil__sshw_u8(&w, COIL__SSH_MSG_USERAUTH_BANNER);
    coil__sshw_string(&w, text, len);
    coil__sshw_cstring(&w, ""); /* language tag */
    return coil__sshd_packet_end(s, w.bad ? 0 : w.len);
}

/* ---- the outcome of an attempt ------------------------------------------ */

/* Answer a failed attempt whose delay has passed: FAILURE, or DISCONNECT
 * once max_auth_tries attempts have failed. 0, or -1 when disconnected. */
static int answer_failure(coil__sshd *s)
{
    if (s->auth.failures >= max_tries(s)) {
        char u[128];
        coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE,
                              "too many authentication failures for %s",
                              vis_user(s, u, sizeof u));
        return -1;
    }
    return send_failure(s);
}

static int delay_fired(void *arg)
{
    coil__sshd *s = arg;
    coil_timer_release(s->auth.delay);
    s->auth.delay = NULL;
    if (!is_dead(s) && answer_failure(s) == 0)
        release(s);
    coil__sshd_unref(s);
    return 0;
}

/* A failed attempt: count it (unless it is OpenSSH's free first "none"),
 * log it, and answer no earlier than the failure delay after the request
 * arrived (s->auth.started), holding input until then. */
static int fail_attempt(coil__sshd *s, const char *method, int counted, int delayed)
{
    char u[128];
    coil_log(strcmp(method, "none") == 0 ? COIL_LOG_DEBUG : COIL_LOG_INFO, MOD,
             "%s: failed %s for %s", s->peer, method, vis_user(s, u, sizeof u));
    if (counted) {
        s->auth.failures++;
        s->srv->stats.auth_failures++;
    }
    if (delayed) {
        double wait = s->auth.started + failure_delay(s) - coil_reactor_seconds(s->r);
        if (wait > 0) {
            coil_timer *t = coil_reactor_call_later(s->r, wait, delay_fired, s);
            if (t) {
                hold(s);
                coil__sshd_ref(s);
                s->auth.delay = t;
                return 0;
            }
            /* out of memory for a timer: answer now rather than never */
        }
    }
    if (answer_failure(s) != 0)
        return -1;
    release(s);
    return 0;
}

static int succeed(coil__sshd *s, const char *method, const char *key_type,
                   const char *key_fp)
{
    static const unsigned char msg = COIL__SSH_MSG_USERAUTH_SUCCESS;
    char u[128], m[sizeof s->auth.method];
    snprintf(m, sizeof m, "%s", method); /* method may be s->auth.method itself */
    method = m;
    snprintf(s->auth.method, sizeof s->auth.method, "%s", method);
    snprintf(s->auth.key_type, sizeof s->auth.key_type, "%s", key_type ? key_type : "");
    snprintf(s->auth.key_fp, sizeof s->auth.key_fp, "%s", key_fp ? key_fp : "");
    if (coil__sshd_send(s, &msg, 1) != 0)
        return -1;
    s->auth.done = 1;
    s->auth.kbd_pending = KBD_NONE;
    if (cancel_timer(&s->auth.grace))
        coil__sshd_unref(s); /* the caller holds s: never the last reference */
    if (key_type)
        coil_log(COIL_LOG_INFO, MOD, "%s: accepted %s for %s (%s %s)", s->peer, method,
                 vis_user(s, u, sizeof u), coil__ssh_key_type_short(key_type), key_fp);
    else
        coil_log(COIL_LOG_INFO, MOD, "%s: accepted %s for %s%s", s->peer, method,
                 vis_user(s, u, sizeof u), strcmp(method, "none") ? "" : " (anonymous)");
    coil__sshd_authenticated(s); /* counts the login in the stats */
    /* packets that arrived meanwhile are the connection protocol's now */
    release(s);
    return 0;
}

/* ---- password checks on the thread pool --------------------------------- */

typedef struct pw_job {
    coil_ssh_password_fn fn;
    void *fn_arg;
    char user[256];
    char *pw; /* len bytes + a NUL; wiped */
    size_t len;
} pw_job;

static char pw_yes; /* the value of a deferred whose password was right */

static coil_failure *pw_thread(void *arg, void **value, coil_destroy_fn *destroy)
{
    pw_job *j = arg;
    int ok = j->fn(j->fn_arg, j->user, j->pw, j->len) == 1;
    sodium_memzero(j->pw, j->len);
    *value = ok ? &pw_yes : NULL;
    *destroy = NULL;
    return NULL;
}

static void pw_job_free(void *arg)
{
    pw_job *j = arg;
    sodium_memzero(j->pw, j->len + 1);
    free(j->pw);
    sodium_memzero(j, sizeof *j);
    free(j);
}

static void pw_unref_conn(void *arg)
{
    coil__sshd_unref(arg);
}

/* The check came back (reactor thread), or was cancelled by auth_stop. */
static void pw_done(coil_deferred *d, void *arg)
{
    coil__sshd *s = arg;
    int ok = 0;
    if (coil_deferred_is_failure(d)) {
        coil_failure *f = coil_deferred_take_failure(d);
        if (s->auth.job == d)
            coil_log(COIL_LOG_WARN, MOD, "%s: the password check could not run: %s",
                     s->peer, coil_failure_message(f));
        coil_failure_free(f);
    } else {
        ok = coil_deferred_result(d) == &pw_yes;
    }
    if (s->auth.job != d)
        return; /* auth_stop cancelled it: the connection ended */
    s->auth.job = NULL;
    if (is_dead(s))
        return;
    if (ok)
        succeed(s, s->auth.method, NULL, NULL);
    else
        fail_attempt(s, s->auth.method, 1, 1);
}

/* Check `pw` (len bytes, copied) for the current user with the password
 * callback on the thread pool; method names the attempt. */
static int start_password_check(coil__sshd *s, const char *method,
                                const unsigned char *pw, size_t len)
{
    pw_job *j = calloc(1, sizeof *j);
    coil_deferred *d;
    if (j)
        j->pw = malloc(len + 1);
    if (!j || !j->pw) {
        free(j);
        coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_BY_APPLICATION,
                              "out of memory for a password check");
        return -1;
    }
    j->fn = opts(s)->check_password;
    j->fn_arg = opts(s)->check_password_arg;
    memcpy(j->user, s->auth.user, sizeof j->user);
    memcpy(j->pw, pw, len);
    j->pw[len] = '\0';
    j->len = len;
    snprintf(s->auth.method, sizeof s->auth.method, "%s", method);
    hold(s);
    d = coil_defer_to_thread(s->r, pw_thread, j, pw_job_free);
    if (!d) {
        coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_BY_APPLICATION,
                              "out of memory for a password check");
        return -1;
    }
    coil__sshd_ref(s);
    s->auth.job = d;
    /* pw_done may run at once (a full pool queue fails the deferred now) */
    if (coil_deferred_add_callbacks_full(d, pw_done, pw_done, s, pw_unref_conn) != 0) {
        s->auth.job = NULL;
        coil_deferred_cancel(d);
        coil_deferred_unref(d);
        coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_BY_APPLICATION,
                              "out of memory for a password check");
        return -1;
    }
    coil_deferred_unref(d); /* the pool holds its own until it fires */
    return is_dead(s) ? -1 : 0;
}

/* ---- methods ------------------------------------------------------------ */

/* Is `blob` (of key type `type`) allowed for the current user? */
static int key_authorized(coil__sshd *s, const char *type, const unsigned char *blob,
                          size_t blob_len, const char *fp)
{
    if (s->srv->authkeys && coil__authkeys_has(s->srv->authkeys, blob, blob_len))
        return 1;
    if (opts(s)->authorize_key) {
        coil_ssh_user_key k = {type, blob, blob_len, fp};
        return opts(s)->authorize_key(opts(s)->authorize_key_arg, s->auth.user, &k) == 1;
    }
    return 0;
}

static int auth_publickey(coil__sshd *s, coil__sshr *r)
{
    int has_sig;
    coil__sshs alg, blob, sig = {NULL, 0};
    char algc[MAX_NAME + 1], type[64], fp[64], why[160];
    coil__sshr kr;

    coil__sshr_bool(r, &has_sig);
    coil__sshr_string(r, &alg, MAX_NAME);
    coil__sshr_string(r, &blob, MAX_KEY_BLOB);
    if (has_sig)
        coil__sshr_string(r, &sig, MAX_SIGNATURE);
    if (coil__sshr_done(r, 0) != 0)
        return protocol_error(s, "malformed publickey userauth request");

    if (memchr(alg.p, '\0', alg.len)) {
        snprintf(why, sizeof why, "a NUL in the algorithm name");
        goto refused;
    }
    memcpy(algc, alg.p, alg.len);
    algc[alg.len] = '\0';
    if (coil__ssh_userkey_check(algc, blob.p, blob.len, opts(s)->allow_ssh_rsa_sha1, why,
                                sizeof why) != 0)
        goto refused;
    /* the key's own type ("ssh-rsa" for rsa-sha2-256), checked above */
    coil__sshr_init(&kr, blob.p, blob.len);
    if (coil__sshr_cstring(&kr, type, sizeof type) != 0 ||
        coil_ssh_fingerprint(blob.p, blob.len, fp, sizeof fp) != 0) {
        snprintf(why, sizeof why, "unreadable key");
        goto refused;
    }
    if (!has_sig) {
        unsigned char *p;
        size_t room;
        coil__sshw w;
        if (!key_authorized(s, type, blob.p, blob.len, fp)) {
            snprintf(why, sizeof why, "key %s not authorized", fp);
            goto refused;
        }
        /* the key would do: PK_OK, the client signs next (not an attempt
         * that failed, as in OpenSSH) */
        p = coil__sshd_packet_begin(s, alg.len + blob.len + 16, &room);
        if (!p)
            return -1;
        coil__sshw_init(&w, p, room);
        coil__sshw_u8(&w, COIL__SSH_MSG_USERAUTH_PK_OK);
        coil__sshw_string(&w, alg.p, alg.len);
        coil__sshw_string(&w, blob.p, blob.len);
        return coil__sshd_packet_end(s, w.len) == 0 ? 0 : -1;
    } else {
        /* RFC 4252 7: what the client signed */
        size_t user_len = strlen(s->auth.user);
        size_t cap = 4 + sizeof s->session_id + 1 + 4 + user_len + 4 + 14 + 4 + 9 + 1 +
                     4 + alg.len + 4 + blob.len;
        unsigned char *data = malloc(cap);
        coil__sshw w;
        int bad;
        if (!data) {
            coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_BY_APPLICATION,
                                  "out of memory checking a signature");
            return -1;
        }
        coil__sshw_init(&w, data, cap);
        coil__sshw_string(&w, s->session_id, sizeof s->session_id);
        coil__sshw_u8(&w, COIL__SSH_MSG_USERAUTH_REQUEST);
        coil__sshw_string(&w, s->auth.user, user_len);
        coil__sshw_cstring(&w, "ssh-connection");
        coil__sshw_cstring(&w, "publickey");
        coil__sshw_bool(&w, 1);
        coil__sshw_string(&w, alg.p, alg.len);
        coil__sshw_string(&w, blob.p, blob.len);
        bad = w.bad || coil__ssh_userkey_verify(algc, blob.p, blob.len, sig.p, sig.len,
                                                data, w.len, opts(s)->allow_ssh_rsa_sha1,
                                                why, sizeof why) != 0;
        free(data);
        if (bad)
            goto refused;
        if (!key_authorized(s, type, blob.p, blob.len, fp)) {
            snprintf(why, sizeof why, "key %s not authorized", fp);
            goto refused;
        }
        return succeed(s, "publickey", type, fp);
    }

refused : {
    char u[128], a[96];
    coil_log(COIL_LOG_DEBUG, MOD, "%s: publickey %s for %s refused: %s", s->peer,
             vis(alg.p, alg.len, a, sizeof a), vis_user(s, u, sizeof u), why);
}
    return fail_attempt(s, "publickey", 1, 1);
}

static int auth_password(coil__sshd *s, coil__sshr *r)
{
    int change;
    coil__sshs pw, newpw;
    coil__sshr_bool(r, &change);
    coil__sshr_string(r, &pw, SIZE_MAX);
    if (change)
        coil__sshr_string(r, &newpw, SIZE_MAX);
    if (coil__sshr_done(r, 0) != 0)
        return protocol_error(s, "malformed password userauth request");
    if (change) {
        coil_log(COIL_LOG_DEBUG, MOD, "%s: password change requested; not supported",
                 s->peer);
        return fail_attempt(s, method_password, 1, 1);
    }
    return start_password_check(s, method_password, pw.p, pw.len);
}

static int auth_kbd(coil__sshd *s, coil__sshr *r)
{
    coil__sshs lang, sub;
    unsigned char buf[64];
    coil__sshw w;
    coil__sshr_string(r, &lang, MAX_NAME);
    coil__sshr_string(r, &sub, 1024);
    if (coil__sshr_done(r, 0) != 0)
        return protocol_error(s, "malformed keyboard-interactive userauth request");
    coil__sshw_init(&w, buf, sizeof buf);
    coil__sshw_u8(&w, COIL__SSH_MSG_USERAUTH_INFO_REQUEST);
    coil__sshw_cstring(&w, ""); /* name */
    coil__sshw_cstring(&w, ""); /* instruction */
    coil__sshw_cstring(&w, ""); /* language tag */
    if (offers_password(s)) {
        coil__sshw_u32(&w, 1);
        coil__sshw_cstring(&w, "Password: ");
        coil__sshw_bool(&w, 0); /* echo */
        s->auth.kbd_pending = KBD_PASSWORD;
    } else {
        /* anonymous: nothing to ask; an empty answer logs in */
        coil__sshw_u32(&w, 0);
        s->auth.kbd_pending = KBD_EMPTY;
    }
    return send_w(s, &w);
}

static int info_response(coil__sshd *s, const unsigned char *payload, size_t len)
{
    coil__sshr r;
    uint32_t n;
    int pending = s->auth.kbd_pending;
    if (pending == KBD_NONE)
        return protocol_error(s, "USERAUTH_INFO_RESPONSE without an INFO_REQUEST");
    s->auth.kbd_pending = KBD_NONE;
    s->auth.started = coil_reactor_seconds(s->r);
    coil__sshr_init(&r, payload + 1, len - 1);
    coil__sshr_u32(&r, &n);
    if (pending == KBD_EMPTY) {
        if (coil__sshr_done(&r, 0) != 0 || n != 0)
            return protocol_error(s, "USERAUTH_INFO_RESPONSE: expected no answers");
        return succeed(s, method_kbd, NULL, NULL);
    } else {
        coil__sshs pw;
        coil__sshr_string(&r, &pw, SIZE_MAX);
        if (coil__sshr_done(&r, 0) != 0 || n != 1)
            return protocol_error(s, "USERAUTH_INFO_RESPONSE: expected one answer");
        return start_password_check(s, method_kbd, pw.p, pw.len);
    }
}

static int userauth_request(coil__sshd *s, const unsigned char *payload, size_t len)
{
    coil__sshr r;
    char user[256], a[128], b[128], m[64];
    coil__sshs service, method;

    coil__sshr_init(&r, payload + 1, len - 1);
    coil__sshr_cstring(&r, user, sizeof user);
    coil__sshr_string(&r, &service, MAX_NAME);
    coil__sshr_string(&r, &method, MAX_NAME);
    if (r.bad)
        return protocol_error(s,
                              "malformed userauth request (a user name is at most "
                              "255 bytes without NUL; service and method at most 256)");
    if (s->auth.attempts >= MAX_ATTEMPTS) {
        coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE,
                              "too many authentication requests for %s",
                              vis_user(s, a, sizeof a));
        return -1;
    }
    if (s->auth.attempts == 0) {
        if (!coil__sshs_eq(service, "ssh-connection")) {
            coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_SERVICE_NOT_AVAILABLE,
                                  "service '%s' not available (only ssh-connection)",
                                  vis(service.p, service.len, a, sizeof a));
            return -1;
        }
        memcpy(s->auth.user, user, sizeof s->auth.user);
    } else if (strcmp(user, s->auth.user) != 0 ||
               !coil__sshs_eq(service, "ssh-connection")) {
        coil__sshd_disconnect(
            s, COIL__SSH_DISCONNECT_PROTOCOL_ERROR,
            "change of user or service not allowed: (%s,ssh-connection) "
            "-> (%s,%s)",
            vis_user(s, a, sizeof a), vis(user, strlen(user), b, sizeof b),
            vis(service.p, service.len, m, sizeof m));
        return -1;
    }
    s->auth.attempts++;
    s->auth.kbd_pending = KBD_NONE; /* a new request abandons keyboard-interactive */
    s->auth.started = coil_reactor_seconds(s->r);
    if (send_banner(s) != 0)
        return -1;

    if (coil__sshs_eq(method, "none")) {
        if (coil__sshr_done(&r, 0) != 0)
            return protocol_error(s, "malformed none userauth request");
        if (opts(s)->anonymous)
            return succeed(s, "none", NULL, NULL);
        return fail_attempt(s, "none", s->auth.attempts > 1, 0);
    }
    if (coil__sshs_eq(method, "publickey") && offers_publickey(s))
        return auth_publickey(s, &r);
    if (coil__sshs_eq(method, method_password) && offers_password(s))
        return auth_password(s, &r);
    if (coil__sshs_eq(method, method_kbd) && offers_kbd(s))
        return auth_kbd(s, &r);
    /* a method we do not offer (hostbased, gssapi-with-mic, ...) */
    return fail_attempt(s, vis(method.p, method.len, m, sizeof m), 1, 1);
}

/* ---- the part's entry points -------------------------------------------- */

static int grace_fired(void *arg)
{
    coil__sshd *s = arg;
    coil_timer_release(s->auth.grace);
    s->auth.grace = NULL;
    if (!s->auth.done && !is_dead(s))
        coil__sshd_disconnect(s, COIL__SSH_DISCONNECT_BY_APPLICATION,
                              "login grace time (%g s) exceeded", grace_time(s));
    coil__sshd_unref(s);
    return 0;
}

void coil__sshd_auth_start(coil__sshd *s)
{
    if (s->auth.grace || s->auth.done)
        return;
    s->auth.grace = coil_reactor_call_later(s->r, grace_time(s), grace_fired, s);
    if (s->auth.grace)
        coil__sshd_ref(s);
    else
        coil_log(COIL_LOG_WARN, MOD, "%s: out of memory for the login grace timer",
                 s->peer);
}

int coil__sshd_auth_packet(coil__sshd *s, const unsigned char *payload, size_t len)
{
    if (len == 0)
        return protocol_error(s, "empty userauth message");
    if (s->auth.done) {
        /* after success, userauth messages are ignored (RFC 4252 5.1) */
        return 0;
    }
    if (s->auth.busy)
        return protocol_error(s, "a userauth message arrived while the previous attempt "
                                 "was being checked");
    switch (payload[0]) {
    case COIL__SSH_MSG_USERAUTH_REQUEST:
        return userauth_request(s, payload, len);
    case COIL__SSH_MSG_USERAUTH_INFO_RESPONSE:
        return info_response(s, payload, len);
    default: {
        char what[96];
        snprintf(what, sizeof what, "unexpected message %u during user authentication",
                 payload[0]);
        return protocol_error(s, what);
    }
    }
}

void coil__sshd_auth_stop(coil__sshd *s)
{
    coil_deferred *job = s->auth.job;
    int drop;
    coil__sshd_ref(s); /* what follows may drop the references of timers and job */
    s->auth.job = NULL;
    s->auth.kbd_pending = KBD_NONE;
    drop = cancel_timer(&s->auth.grace) + cancel_timer(&s->auth.delay);
    while (drop-- > 0)
        coil__sshd_unref(s);
    if (job)
        coil_deferred_cancel(job); /* its step drops the job's reference */
    coil__sshd_unref(s);
}
