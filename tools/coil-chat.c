/* coil-chat: the chat server of "Twisted Network Programming Essentials"
 * (example 2-5) on any number of endpoints sharing one user table, and an
 * interactive line client for it.
 *
 * The server asks each new connection for a name; a free name is welcomed
 * and announced to everyone registered, a taken one is refused; each later
 * line goes to every other registered user as "<NAME> LINE"; a registered
 * user leaving is announced. Lines end with "\r\n" (a bare "\n" is accepted);
 * a line over the limit (16 KiB) closes that client after telling it why.
 *
 * Hostile clients are bounded: a client whose write queue passes
 * --max-queue (it does not read) is closed with a line saying why, and the
 * others go on; a name must come within --name-timeout, be 1-32 characters
 * without spaces or control characters and differ from every other name
 * also in ASCII case; a few bad names close the connection; connections
 * without a name are capped in total and per source (IP address, or uid on
 * a UNIX socket); control bytes in lines are shown as "^[", "^M", ... so no
 * line can forge another or drive a terminal. coil-chat join escapes the
 * same way whatever the server sends.
 *
 * Over SSH (a server endpoint ssh:PORT:hostKey=FILE:authorizedKeys=FILE,
 * coil's own SSH server) the SSH user name is the chat name: the prompt is
 * skipped unless that name is taken or not a valid name (then the prompt
 * asks for another). The join line shows how the user logged in, the key
 * fingerprint for a key ("alice (ED25519 SHA256:...) has joined the
 * channel."). A session with a pty gets a line editor (termline.c):
 * what is typed is echoed and can be erased, lines from others are printed
 * above the line being typed, and Ctrl-C or Ctrl-D (on an empty line)
 * leaves; without a pty (ssh -T, or a command) it is the line protocol as
 * over TCP.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <coil/coil.h>
#include <coil/ssh_server.h>

#include "termline.h"
#include "toolutil.h"

static const char usage[] =
    "Usage: coil-chat serve ENDPOINT...\n"
    "       coil-chat join ENDPOINT --name NAME\n"
    "\n"
    "serve  Run the chat server on every server endpoint given (one channel\n"
    "       for all of them) until SIGINT or SIGTERM.\n"
    "join   Connect to a chat server, answer its name prompt with NAME, then\n"
    "       send stdin line by line and print the server's lines on stdout.\n"
    "       Exits 0 at stdin EOF or when the server closes, 1 when it cannot\n"
    "       connect or the connection breaks.\n"
    "\n"
    "Options:\n"
    "  -n, --name NAME   the name to join with (join)\n"
    "  --max-queue BYTES          close a client that has more than this\n"
    "                             waiting to be sent to it (serve; default\n"
    "                             1M; suffixes k, M, G)\n"
    "  --name-timeout SECONDS     close a client that gives no name by then\n"
    "                             (serve; default 60)\n"
    "  --max-unregistered N       connections without a name, in all (serve;\n"
    "                             default 256); more are told so and closed\n"
    "  --max-unregistered-per-address N\n"
    "                             the same per IP address, or per uid on a\n"
    "                             UNIX socket (serve; default 8)\n"
    "  -h, --help        this text\n"
    "\n"
    "Server endpoints: tcp:PORT[:interface=ADDR][:backlog=N]\n"
    "                  unix:PATH[:mode=0660][:backlog=N]\n"
    "                  ssl:PORT:privateKey=KEY.pem:certKey=CERT.pem\n"
    "                  ssh:PORT:hostKey=FILE:authorizedKeys=FILE (or :anonymous=yes)\n"
    "                       users log in with ssh -p PORT NAME@HOST; NAME is\n"
    "                       their chat name; the host key is made if missing\n"
    "Client endpoints: tcp:HOST:PORT[:timeout=S]   unix:PATH[:timeout=S]\n"
    "                  ssh:HOST:PORT:user=USER:to=DESTHOST\\:DESTPORT (via sshd)\n"
    "\n"
    "Examples:\n"
    "  coil-chat serve tcp:8123 unix:/tmp/chat.sock\n"
    "  coil-chat serve ssh:2222:hostKey=host_ed25519:authorizedKeys=$HOME/.ssh/"
    "authorized_keys\n"
    "  ssh -p 2222 alice@127.0.0.1\n"
    "  coil-chat join tcp:127.0.0.1:8123 --name alice\n"
    "\n"
    "Exit status: 0 success, 1 failure, 2 bad arguments.\n";

/* ---- text a terminal shows as it is ----------------------------------------- */

/* Decode one UTF-8 sequence at p[0..len): its code point and length, or -1
 * when it is not well-formed (overlong forms, surrogates and code points
 * past U+10FFFF included). */
static long utf8_decode(const unsigned char *p, size_t len, size_t *n)
{
    unsigned char c = p[0];
    size_t need;
    long cp, min;
    if (c < 0x80) {
        *n = 1;
        return c;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
        cp = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        cp = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return -1;
    }
    if (len < need)
        return -1;
    for (size_t i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return -1;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    *n = need;
    return cp;
}

/* Code points a terminal acts on instead of showing, or that change how the
 * rest of a line is shown: C1 controls, bidirectional overrides and
 * isolates (a line could display in another order than it was written). */
static int is_hidden_control(long cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* Blank or invisible code points, refused in names so that two names
 * cannot look the same (or empty): spaces, zero-width characters, the
 * soft hyphen, the byte order mark. */
static int is_blank(long cp)
{
    return cp == ' ' || cp == 0xa0 || cp == 0xad || cp == 0x1680 || cp == 0x180e ||
           (cp >= 0x2000 && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202f) ||
           (cp >= 0x205f && cp <= 0x206f) || cp == 0x3000 || cp == 0xfeff ||
           (cp >= 0xfff9 && cp <= 0xfffb);
}

/* A growing output buffer (freed by the caller). */
typedef struct textbuf {
    char *p;
    size_t len, cap;
} textbuf;

static int textbuf_put(textbuf *b, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (len > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < len)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

/* Append `text` made visible: control bytes but tab become caret notation
 * ("^[" for ESC, "^M" for CR, "^?" for DEL), bytes that are not UTF-8
 * "\xNN", C1 controls and bidirectional overrides "\u202e". What comes out
 * holds no byte a terminal acts on, so no line can move the cursor, clear
 * the screen or forge another line ("\r<bob> ..."). At most 4 bytes out
 * per byte in. */
static int textbuf_put_visible(textbuf *b, const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0, plain = 0; /* p[plain..i) is copied as it is */
    while (i < len) {
        size_t n;
        long cp = utf8_decode(p + i, len - i, &n);
        char esc[16];
        int elen = 0;
        if (cp < 0)
            elen = snprintf(esc, sizeof esc, "\\x%02x", p[i]), n = 1;
        else if ((cp < 0x20 && cp != '\t') || cp == 0x7f)
            elen = snprintf(esc, sizeof esc, "^%c", (int)(cp ^ 0x40));
        else if (is_hidden_control(cp))
            elen = snprintf(esc, sizeof esc, "\\u%04lx", cp);
        if (elen > 0) {
            if (textbuf_put(b, p + plain, i - plain) != 0 ||
                textbuf_put(b, esc, (size_t)elen) != 0)
                return -1;
            plain = i + n;
        }
        i += n;
    }
    return textbuf_put(b, p + plain, len - plain);
}

/* ---- the server ------------------------------------------------------------ */

#define CHAT_NAME_MAX 32 /* characters (code points) */
/* A client that answers the prompt with this many bad names is closed:
 * garbage in never makes the server write more than a few short lines. */
#define CHAT_MAX_BAD_NAMES 5
/* A client disconnected for not reading gets this long to read the line
 * that says why; then the connection is aborted. Nothing more is queued
 * for it meanwhile, so the wait costs no more than max_queue. */
#define CHAT_KICK_GRACE 30.0

#define CHAT_DEFAULT_MAX_QUEUE                   (1024 * 1024)
#define CHAT_DEFAULT_NAME_TIMEOUT                60.0
#define CHAT_DEFAULT_MAX_UNREGISTERED            256
#define CHAT_DEFAULT_MAX_UNREGISTERED_PER_SOURCE 8

typedef struct chat_config {
    size_t max_queue;        /* a client's write queue: over it, it is closed */
    double name_timeout;     /* seconds to answer the name prompt */
    size_t max_unregistered; /* connections without a name, in total */
    size_t max_unregistered_per_source; /* ... per IP address or UNIX uid */
} chat_config;

typedef struct chat_server chat_server;

typedef struct chat_user {
    coil_line_receiver lr;  /* first: the transport's protocol */
    coil_producer producer; /* told when the write queue passes high water */
    chat_server *srv;
    char *name; /* NULL until registered */
    size_t name_len;
    char source[64];   /* "ip:ADDR", "uid:N": for the unregistered caps */
    coil_timer *timer; /* the name timeout, then the kick grace; ours */
    int waiting;       /* on the unregistered list */
    int bad_names;
    int over_high;    /* the write queue is above its high-water mark */
    int check_always; /* max_queue is under high water: measure each send */
    int kicked;       /* closing: nothing more is sent */
    int dead;         /* destroyed during a broadcast: freed when it ends */
    termline *term;   /* an SSH shell with a pty: the line editor, or NULL */
    char ident[96];   /* how an SSH user logged in, for the join line */
    struct chat_user *prev, *next;
    struct chat_user *wprev, *wnext; /* the unregistered list */
} chat_user;

struct chat_server {
    coil_factory f; /* first */
    coil_reactor *r;
    chat_config cfg;
    chat_user *head, *tail; /* every connection, oldest first */
    size_t nconns;
    chat_user *waiting; /* connections that have no name yet */
    size_t nwaiting;
    int broadcasting; /* broadcasts on the stack */
    int have_dead;
};

#define USER_OF_PRODUCER(ptr) ((chat_user *)((char *)(ptr)-offsetof(chat_user, producer)))

/* ASCII case folding: "Bob" and "bob" are one name. Other letters are
 * compared as they are. */
static int same_name(const char *a, const char *b, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x += 'a' - 'A';
        if (y >= 'A' && y <= 'Z')
            y += 'a' - 'A';
        if (x != y)
            return 0;
    }
    return 1;
}

static chat_user *find_user(chat_server *s, const char *name, size_t len)
{
    for (chat_user *u = s->head; u; u = u->next)
        if (u->name && !u->dead && u->name_len == len && same_name(u->name, name, len))
            return u;
    return NULL;
}

static void drop_timer(chat_user *u)
{
    if (u->timer) {
        coil_timer_cancel(u->timer); /* COIL_ECALLED / ECANCELLED: fine */
        coil_timer_release(u->timer);
        u->timer = NULL;
    }
}

static void stop_waiting(chat_user *u)
{
    chat_server *s = u->srv;
    if (!u->waiting)
        return;
    if (u->wprev)
        u->wprev->wnext = u->wnext;
    else
        s->waiting = u->wnext;
    if (u->wnext)
        u->wnext->wprev = u->wprev;
    u->wprev = u->wnext = NULL;
    u->waiting = 0;
    s->nwaiting--;
}

static void unlink_user(chat_server *s, chat_user *u)
{
    if (u->prev)
        u->prev->next = u->next;
    else
        s->head = u->next;
    if (u->next)
        u->next->prev = u->prev;
    else
        s->tail = u->prev;
    s->nconns--;
    free(u->name);
    free(u->term);
    free(u);
}

/* Send one line to `u`: with "\r\n" (coil_line_send), or, on a terminal
 * session, printed above the line being typed. */
static int send_line(chat_user *u, const char *msg, size_t len)
{
    if (!u->term)
        return coil_line_send(&u->lr, msg, len);
    coil_transport *t = u->lr.protocol.transport;
    if (!t)
        return COIL_ECLOSED;
    termline_out o = {0};
    int rc = termline_print(u->term, msg, len, &o) != 0
                 ? COIL_ENOMEM
                 : coil_transport_write(t, o.p, o.len);
    free(o.p);
    return rc;
}

static int kick_grace_over(void *arg)
{
    chat_user *u = arg;
    if (u->lr.protocol.transport)
        coil_transport_abort_connection(u->lr.protocol.transport);
    return 0;
}

/* Close `u` after a last line saying why. The line is queued behind what
 * is already there: a client that reads again gets everything and then the
 * reason; one that does not is aborted after CHAT_KICK_GRACE, and nothing
 * more is queued for it meanwhile, so its memory is bounded. */
static void kick(chat_user *u, const char *why)
{
    coil_transport *t = u->lr.protocol.transport;
    if (u->kicked || !t)
        return;
    u->kicked = 1;
    (void)send_line(u, why, strlen(why));
    (void)coil_ssh_server_channel_set_exit(t, 1); /* COIL_EINVAL off SSH: fine */
    drop_timer(u);
    /* Armed first: should the close complete at once, destroy drops it. */
    u->timer = coil_reactor_call_later(u->srv->r, CHAT_KICK_GRACE, kick_grace_over, u);
    if (!u->timer)
        tool_error("out of memory: a client being closed may stay until it reads");
    if (u->lr.protocol.transport)
        coil_transport_lose_connection(u->lr.protocol.transport);
}

static void check_queue(chat_user *u);

/* Queue one line for `u`; a client whose queue passes max_queue is closed,
 * so that one reader that stalls costs a bounded amount of memory and the
 * others are not held up. */
static void user_send(chat_user *u, const char *msg, size_t len)
{
    coil_transport *t = u->lr.protocol.transport;
    if (!t || u->kicked || t->disconnecting)
        return;
    /* A failed send (the peer is closing) only concerns that peer. */
    (void)send_line(u, msg, len);
    check_queue(u);
}

/* Close `u` when its write queue passed max_queue. */
static void check_queue(chat_user *u)
{
    coil_transport *t = u->lr.protocol.transport;
    if (!t || u->kicked || (!u->over_high && !u->check_always))
        return;
    coil_transport_info info;
    if (!u->lr.protocol.transport || coil_transport_info_get(t, &info) != 0)
        return;
    if (info.write_queued > u->srv->cfg.max_queue) {
        char why[128];
        snprintf(why, sizeof why,
                 "You are not reading: over %zu bytes are waiting for you; closing.",
                 u->srv->cfg.max_queue);
        kick(u, why);
    }
}

static void send_text(chat_user *u, const char *text)
{
    user_send(u, text, strlen(text));
}

/* Send `msg` to every registered user but `from`. A user whose connection
 * goes away meanwhile is not freed until the walk is over. */
static void broadcast(chat_server *s, const chat_user *from, const char *msg, size_t len)
{
    s->broadcasting++;
    for (chat_user *u = s->head; u; u = u->next) {
        if (u == from || !u->name || u->dead || !u->lr.protocol.transport)
            continue;
        user_send(u, msg, len);
    }
    if (--s->broadcasting == 0 && s->have_dead) {
        s->have_dead = 0;
        for (chat_user *u = s->head, *next; u; u = next) {
            next = u->next;
            if (u->dead)
                unlink_user(s, u);
        }
    }
}

/* Broadcast PREFIX NAME MIDDLE LINE, where LINE (any bytes but the
 * delimiter) is made visible first; names are checked when registered. */
static void announce(chat_server *s, const chat_user *from, const char *prefix,
                     const char *name, size_t name_len, const char *middle,
                     const char *line, size_t line_len)
{
    textbuf b = {0};
    if (textbuf_put(&b, prefix, strlen(prefix)) != 0 ||
        textbuf_put(&b, name, name_len) != 0 ||
        textbuf_put(&b, middle, strlen(middle)) != 0 ||
        textbuf_put_visible(&b, line, line_len) != 0) {
        tool_error("out of memory: a message was not delivered");
        free(b.p);
        return;
    }
    broadcast(s, from, b.p, b.len);
    free(b.p);
}

/* NULL when `name` is acceptable, else the reason (a short line). */
static const char *bad_name(const char *name, size_t len)
{
    const unsigned char *p = (const unsigned char *)name;
    size_t chars = 0;
    for (size_t i = 0, n; i < len; i += n) {
        long cp = utf8_decode(p + i, len - i, &n);
        if (cp < 0)
            return "Bad name: not UTF-8.";
        if (cp < 0x20 || cp == 0x7f || is_hidden_control(cp) || is_blank(cp))
            return "Bad name: no spaces or control characters.";
        if (++chars > CHAT_NAME_MAX)
            break;
    }
    if (chars > CHAT_NAME_MAX)
        return "Bad name: 32 characters at most.";
    return NULL;
}

static int name_timeout(void *arg)
{
    chat_user *u = arg;
    char why[96];
    snprintf(why, sizeof why, "No name given within %g s; closing.",
             u->srv->cfg.name_timeout);
    kick(u, why);
    return 0;
}

/* Register `u` as `name` (checked): welcome it, announce it. */
static void do_register(chat_user *u, const char *name, size_t len)
{
    chat_server *s = u->srv;
    char *copy = malloc(len + 1);
    if (!copy) {
        tool_error("out of memory registering a user");
        if (u->lr.protocol.transport)
            coil_transport_lose_connection(u->lr.protocol.transport);
        return;
    }
    memcpy(copy, name, len);
    copy[len] = '\0';
    stop_waiting(u);
    drop_timer(u);
    size_t wl = len + sizeof "Welcome, !";
    char *welcome = malloc(wl);
    if (welcome) {
        memcpy(welcome, "Welcome, ", 9);
        memcpy(welcome + 9, name, len);
        welcome[9 + len] = '!';
        user_send(u, welcome, len + 10);
        free(welcome);
    }
    if (u->term) {
        send_text(u, "Type a line and Enter to talk; Ctrl-D leaves.");
        /* From now on the input line starts with a prompt. */
        termline_set_prompt(u->term, "> ");
        termline_out o = {0};
        if (termline_redraw(u->term, &o) == 0 && u->lr.protocol.transport && !u->kicked)
            (void)coil_transport_write(u->lr.protocol.transport, o.p, o.len);
        free(o.p);
    }
    /* " (ED25519 SHA256:...) has joined the channel." for SSH users. */
    char joined[160];
    snprintf(joined, sizeof joined, "%s%s%s has joined the channel.",
             u->ident[0] ? " (" : "", u->ident, u->ident[0] ? ")" : "");
    announce(s, u, "", name, len, joined, NULL, 0);
    u->name = copy;
    u->name_len = len;
}

static void handle_register(chat_user *u, const char *name, size_t len)
{
    chat_server *s = u->srv;
    if (len == 0)
        return; /* an empty line: still waiting for the name */
    const char *why = bad_name(name, len);
    if (!why && find_user(s, name, len))
        why = "Name taken, please choose another.";
    if (why) {
        /* One short reply per bad line, a few times, then the close:
         * whatever arrives, a connection gets at most the prompt, four
         * replies and a closing line (about 200 bytes). */
        if (++u->bad_names >= CHAT_MAX_BAD_NAMES)
            kick(u, "Too many bad names; closing.");
        else
            send_text(u, why);
        return;
    }
    do_register(u, name, len);
}

static void chat_line(coil_line_receiver *lr, const char *line, size_t len)
{
    chat_user *u = (chat_user *)lr;
    if (!u->name) {
        handle_register(u, line, len);
        return;
    }
    announce(u->srv, u, "<", u->name, u->name_len, "> ", line, len);
}

static void chat_too_long(coil_line_receiver *lr, const char *partial, size_t len)
{
    char msg[96];
    snprintf(msg, sizeof msg, "Line too long (limit %zu bytes); closing.",
             lr->max_length);
    send_text((chat_user *)lr, msg);
    coil_transport_lose_connection(lr->protocol.transport);
}

static void producer_pause(coil_producer *p)
{
    USER_OF_PRODUCER(p)->over_high = 1;
}

static void producer_resume(coil_producer *p)
{
    USER_OF_PRODUCER(p)->over_high = 0;
}

static void producer_stop(coil_producer *p)
{
    USER_OF_PRODUCER(p)->over_high = 0;
}

/* The chat does not stop writing to a slow reader (that would stall every
 * sender): it only wants to know when the queue is long enough to be
 * measured. */
static const coil_producer_ops chat_producer_ops = {
    .pause_producing = producer_pause,
    .resume_producing = producer_resume,
    .stop_producing = producer_stop,
};

/* Where the connection comes from, for the per-source cap: the IPv4
 * address, the IPv6 /64 (one host commonly has a whole /64), the peer's uid
 * on a UNIX socket. */
static void describe_source(coil_transport *t, char *buf, size_t size)
{
    coil_transport_info info;
    coil_address a;
    if (coil_transport_info_get(t, &info) == 0 && info.peer_uid >= 0) {
        snprintf(buf, size, "uid:%ld", info.peer_uid);
        return;
    }
    if (coil_transport_get_peer(t, &a) != 0) {
        snprintf(buf, size, "unknown");
        return;
    }
    char host[INET6_ADDRSTRLEN + 8] = "";
    if (a.kind == COIL_ADDR_TCP4)
        inet_ntop(AF_INET, &a.u.in4.sin_addr, host, sizeof host);
    else if (a.kind == COIL_ADDR_TCP6) {
        struct in6_addr net = a.u.in6.sin6_addr;
        int prefix = 128;
        if (!IN6_IS_ADDR_V4MAPPED(&net)) {
            memset(net.s6_addr + 8, 0, 8);
            prefix = 64;
        }
        inet_ntop(AF_INET6, &net, host, sizeof host);
        if (host[0])
            snprintf(host + strlen(host), sizeof host - strlen(host), "/%d", prefix);
    }
    if (host[0])
        snprintf(buf, size, "ip:%s", host);
    else
        coil_address_format(&a, buf, size);
}

/* "ED25519" for "ssh-ed25519", as ssh-keygen -l names key types. */
static const char *key_type_label(const char *type)
{
    if (strcmp(type, "ssh-ed25519") == 0)
        return "ED25519";
    if (strncmp(type, "ecdsa-sha2-", 11) == 0)
        return "ECDSA";
    if (strcmp(type, "ssh-rsa") == 0 || strncmp(type, "rsa-sha2-", 9) == 0)
        return "RSA";
    return type;
}

/* connection_made of an SSH server channel: note how the user logged in,
 * start the line editor on a pty, and register the SSH user name when it
 * is a free, valid name. 1 when done with `u` (registered or closing), 0
 * when the name prompt should follow (or this is not an SSH channel). */
static int ssh_user_made(chat_user *u, coil_transport *t)
{
    const coil_ssh_channel_info *si = coil_ssh_server_channel_info(t);
    if (!si)
        return 0;
    if (strcmp(si->auth_method, "publickey") == 0 && si->key_fingerprint[0])
        snprintf(u->ident, sizeof u->ident, "%.20s %.70s", key_type_label(si->key_type),
                 si->key_fingerprint);
    else if (strcmp(si->auth_method, "none") == 0 || !si->auth_method[0])
        snprintf(u->ident, sizeof u->ident, "SSH, no key");
    else
        snprintf(u->ident, sizeof u->ident, "SSH, %.40s", si->auth_method);
    /* Leaving (Ctrl-C, Ctrl-D, the server stopping) is a success. */
    (void)coil_ssh_server_channel_set_exit(t, 0);
    if (si->has_pty) {
        /* The client's terminal is raw: we echo and edit (termline.c). */
        if (!(u->term = malloc(sizeof *u->term))) {
            tool_error("out of memory: closing a new SSH session");
            coil_transport_abort_connection(t);
            return 1;
        }
        termline_init(u->term);
        coil_line_set_raw_mode(&u->lr);
    }
    const char *name = si->user;
    size_t len = strlen(name);
    const char *why = len == 0 ? "Bad name: empty." : bad_name(name, len);
    if (!why && find_user(u->srv, name, len))
        why = "Name taken.";
    if (!why) {
        do_register(u, name, len);
        return 1;
    }
    /* The prompt follows: say why the SSH name did not do. */
    textbuf b = {0};
    static const char pre[] = "Your SSH user name '";
    if (textbuf_put(&b, pre, sizeof pre - 1) == 0 &&
        textbuf_put_visible(&b, name, len > 64 ? 64 : len) == 0 &&
        textbuf_put(&b, "' cannot be your chat name: ", 28) == 0 &&
        textbuf_put(&b, why, strlen(why)) == 0)
        user_send(u, b.p, b.len);
    free(b.p);
    return 0;
}

/* Bytes typed on an SSH pty session: the line editor echoes them and hands
 * over whole lines. */
static void chat_typed(coil_line_receiver *lr, const void *data, size_t len)
{
    chat_user *u = (chat_user *)lr;
    const char *p = data;
    termline_out o = {0};
    while (len > 0 && u->term && !u->kicked && lr->protocol.transport &&
           !lr->protocol.transport->disconnecting) {
        size_t used = 0;
        o.len = 0;
        int rc = termline_feed(u->term, p, len, &used, &o);
        p += used;
        len -= used;
        if (rc == TERMLINE_NOMEM) {
            tool_error("out of memory: closing an SSH session");
            coil_transport_abort_connection(lr->protocol.transport);
            break;
        }
        /* The echo counts against max_queue as lines do: typing without
         * reading what comes back costs a bounded amount. */
        if (o.len > 0 && coil_transport_write(lr->protocol.transport, o.p, o.len) != 0)
            break;
        check_queue(u);
        if (u->kicked)
            break;
        if (rc == TERMLINE_LINE) {
            chat_line(lr, u->term->line, u->term->len);
        } else if (rc == TERMLINE_INTERRUPT || rc == TERMLINE_EOF) {
            /* Ctrl-C, or Ctrl-D on an empty line: the user leaves. */
            u->kicked = 1;
            coil_transport_lose_connection(lr->protocol.transport);
            break;
        }
    }
    free(o.p);
}

static void chat_made(coil_line_receiver *lr)
{
    chat_user *u = (chat_user *)lr;
    chat_server *s = u->srv;
    coil_transport *t = lr->protocol.transport;
    coil_transport_info info;
    u->producer.ops = &chat_producer_ops;
    if (coil_transport_register_producer(t, &u->producer, 1) != 0 ||
        coil_transport_info_get(t, &info) != 0 || s->cfg.max_queue <= info.high_water)
        u->check_always = 1;

    /* An SSH channel: the user logged in already; its name is the chat
     * name when free and valid. */
    if (ssh_user_made(u, t))
        return;
    if (!lr->protocol.transport || u->kicked)
        return;

    /* A connection that has no name yet costs us memory and a prompt: cap
     * how many there are, in all and from one source, so one host cannot
     * take every slot. */
    describe_source(t, u->source, sizeof u->source);
    const char *refuse = NULL;
    if (s->nwaiting >= s->cfg.max_unregistered) {
        refuse = "Too many connections waiting to give a name; try again later.";
    } else {
        size_t same = 0;
        for (chat_user *w = s->waiting; w; w = w->wnext)
            if (strcmp(w->source, u->source) == 0)
                same++;
        if (same >= s->cfg.max_unregistered_per_source)
            refuse = "Too many connections from your address waiting to give a name; "
                     "try again later.";
    }
    if (refuse) {
        send_text(u, refuse);
        u->kicked = 1;
        coil_transport_lose_connection(t);
        return;
    }
    u->waiting = 1;
    u->wnext = s->waiting;
    if (s->waiting)
        s->waiting->wprev = u;
    s->waiting = u;
    s->nwaiting++;
    u->timer = coil_reactor_call_later(s->r, s->cfg.name_timeout, name_timeout, u);
    if (!u->timer) {
        tool_error("out of memory: closing a new connection");
        coil_transport_abort_connection(t);
        return;
    }
    send_text(u, "What is your name?");
}

static void chat_lost(coil_line_receiver *lr, const coil_failure *reason)
{
    chat_user *u = (chat_user *)lr;
    drop_timer(u);
    stop_waiting(u);
    if (!u->name)
        return;
    /* Unregister first: the name is free again, and the leaver hears
     * nothing of its own leaving. */
    char *name = u->name;
    size_t len = u->name_len;
    u->name = NULL;
    announce(u->srv, u, "", name, len, " has left the channel.", NULL, 0);
    free(name);
}

static void chat_destroy(coil_line_receiver *lr)
{
    chat_user *u = (chat_user *)lr;
    chat_server *s = u->srv;
    drop_timer(u);
    stop_waiting(u);
    if (s->broadcasting > 0) {
        u->dead = 1;
        s->have_dead = 1;
        return;
    }
    unlink_user(s, u);
}

static const coil_line_ops chat_ops = {
    .connection_made = chat_made,
    .line_received = chat_line,
    .raw_data_received = chat_typed,
    .line_length_exceeded = chat_too_long,
    .connection_lost = chat_lost,
    .destroy = chat_destroy,
};

static coil_protocol *chat_build(coil_factory *f, const coil_address *peer)
{
    chat_server *s = (chat_server *)f;
    chat_user *u = calloc(1, sizeof *u);
    if (!u)
        return NULL; /* refused: the listener closes the socket */
    coil_line_receiver_init(&u->lr, &chat_ops);
    u->srv = s;
    u->prev = s->tail;
    if (s->tail)
        s->tail->next = u;
    else
        s->head = u;
    s->tail = u;
    s->nconns++;
    return &u->lr.protocol;
}

static const coil_factory_ops chat_factory_ops = {.build_protocol = chat_build};

typedef struct serving {
    int n;
    char **names;
} serving;

static int announce_serving(void *arg)
{
    /* Printed once the reactor runs: signals already stop it cleanly. */
    serving *sv = arg;
    for (int i = 0; i < sv->n; i++)
        tool_error("serving chat on %s", sv->names[i]);
    return 0;
}

static int serve(int n, char **texts, const chat_config *cfg)
{
    int status = TOOL_EXIT_FAILURE, nlisteners = 0;
    chat_server s = {.f.ops = &chat_factory_ops, .cfg = *cfg};
    serving sv = {0};
    coil_endpoint **eps = calloc((size_t)n, sizeof *eps);
    coil_listener **ls = calloc((size_t)n, sizeof *ls);
    sv.names = calloc((size_t)n, sizeof *sv.names);
    if (!eps || !ls || !sv.names) {
        tool_error("out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        coil_failure *err = NULL;
        if (coil_endpoint_server(texts[i], &eps[i], &err) != 0) {
            status = tool_bad_endpoint(err);
            goto out;
        }
    }
    if (tool_reactor_new(&s.r) != 0)
        goto out;
    for (int i = 0; i < n; i++) {
        coil_failure *err = NULL;
        if (coil_endpoint_listen(s.r, eps[i], &s.f, &ls[i], &err) != 0) {
            tool_error_failure(err, "cannot serve on '%s'", texts[i]);
            coil_failure_free(err);
            goto out;
        }
        nlisteners = i + 1;
        char where[512];
        tool_listener_describe(ls[i], texts[i], where, sizeof where);
        if (!(sv.names[i] = strdup(where))) {
            tool_error("out of memory");
            goto out;
        }
        sv.n = i + 1;
    }
    if (coil_reactor_call_when_running(s.r, announce_serving, &sv) != 0) {
        tool_error("out of memory");
        goto out;
    }
    coil_reactor_run(s.r);
    status = TOOL_EXIT_OK;
out:
    for (int i = 0; i < nlisteners; i++)
        coil_listener_close(ls[i]);
    if (s.r) {
        /* Close what is still connected: cleanly when the peers let us
         * within a moment, else abort; TLS connections still in their
         * handshake or close included. */
        tool_shutdown(s.r, 1.0);
        if (s.nconns > 0)
            tool_error("%zu connections did not close", s.nconns);
        coil_reactor_free(s.r);
    }
    for (int i = 0; i < n; i++) {
        if (eps)
            coil_endpoint_free(eps[i]);
        if (sv.names)
            free(sv.names[i]);
    }
    free(eps);
    free(ls);
    free(sv.names);
    return status;
}

/* ---- the client -------------------------------------------------------------- */

/* A stdin line longer than this is sent as it is (the server will refuse it
 * as too long) rather than buffered without bound. */
#define JOIN_MAX_PENDING (64 * 1024)
/* Lines from the server: its limit plus a name and a prefix. */
#define JOIN_MAX_LINE (1024 * 1024)

typedef struct joiner {
    tool_client c;         /* first */
    coil_line_receiver lr; /* the one connection's protocol, embedded */
    const char *name;
    int named;     /* the name prompt was answered */
    char *pending; /* a partial stdin line */
    size_t plen, pcap;
    textbuf out; /* a server line made visible, for stdout */
} joiner;

#define JOINER_OF(ptr, member) ((joiner *)((char *)(ptr)-offsetof(joiner, member)))

static coil_transport *join_transport(joiner *j)
{
    return j->lr.protocol.transport;
}

static void join_send(joiner *j, const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    coil_transport *t = join_transport(j);
    if (!t)
        return;
    int rc = coil_line_send(&j->lr, line, len);
    if (rc != 0 && rc != COIL_ECLOSED) {
        tool_error("cannot send to %s: %s", j->c.endpoint, coil_strerror(rc));
        tool_client_fail(&j->c);
    }
}

static void stdin_data(void *arg, const char *data, size_t len)
{
    joiner *j = arg;
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        if (j->plen + take > j->pcap) {
            size_t cap = j->pcap ? j->pcap : 256;
            while (cap < j->plen + take)
                cap *= 2;
            char *p = realloc(j->pending, cap);
            if (!p) {
                tool_error("out of memory reading stdin");
                tool_client_fail(&j->c);
                return;
            }
            j->pending = p;
            j->pcap = cap;
        }
        memcpy(j->pending + j->plen, data, take);
        j->plen += take;
        if (nl || j->plen >= JOIN_MAX_PENDING) {
            join_send(j, j->pending, j->plen);
            j->plen = 0;
        }
        if (nl)
            take++;
        data += take;
        len -= take;
        if (!j->c.in)
            return; /* finished meanwhile */
    }
}

static void stdin_eof(void *arg)
{
    joiner *j = arg;
    if (j->plen > 0) {
        join_send(j, j->pending, j->plen);
        j->plen = 0;
    }
    tool_input_free(j->c.in);
    j->c.in = NULL;
    if (join_transport(j))
        coil_transport_lose_connection(join_transport(j));
}

static void stdin_error(void *arg, int err)
{
    joiner *j = arg;
    tool_error("cannot read stdin: %s", strerror(err));
    tool_client_fail(&j->c);
}

static const tool_input_ops stdin_ops = {
    .on_data = stdin_data,
    .on_eof = stdin_eof,
    .on_error = stdin_error,
};

static void join_made(coil_line_receiver *lr)
{
    joiner *j = JOINER_OF(lr, lr);
    tool_client_attach(&j->c, NULL, NULL); /* stdin starts once named */
}

static void join_line(coil_line_receiver *lr, const char *line, size_t len)
{
    joiner *j = JOINER_OF(lr, lr);
    if (j->c.status >= 0)
        return;
    /* Whatever the server sends, no control byte reaches the terminal: a
     * server (or a user it does not filter) could otherwise move the
     * cursor, rewrite earlier lines or worse. */
    j->out.len = 0;
    if (textbuf_put_visible(&j->out, line, len) != 0 ||
        textbuf_put(&j->out, "\n", 1) != 0) {
        tool_error("out of memory writing a line");
        tool_client_fail(&j->c);
        return;
    }
    int err = tool_write_all(STDOUT_FILENO, j->out.p, j->out.len);
    if (err) {
        tool_error("cannot write stdout: %s", strerror(err));
        tool_client_fail(&j->c);
        return;
    }
    if (j->named)
        return;
    /* The first line is the name prompt: answer it, then let stdin flow
     * (stdin lines read before would have been taken as the name). */
    j->named = 1;
    join_send(j, j->name, strlen(j->name));
    tool_client_start_input(&j->c, &stdin_ops, j);
}

static void join_lost(coil_line_receiver *lr, const coil_failure *reason)
{
    joiner *j = JOINER_OF(lr, lr);
    if (j->c.status < 0 && !coil_failure_check(reason, COIL_DOMAIN_COIL, COIL_ECLOSED)) {
        tool_error_failure(reason, "connection to %s broke", j->c.endpoint);
        tool_client_finish(&j->c, TOOL_EXIT_FAILURE);
        return;
    }
    tool_client_finish(&j->c, TOOL_EXIT_OK);
}

static void join_destroy(coil_line_receiver *lr)
{
    /* Embedded in the joiner: nothing to free. */
}

static const coil_line_ops join_ops = {
    .line_received = join_line,
    .connection_made = join_made,
    .connection_lost = join_lost,
    .destroy = join_destroy,
};

static coil_protocol *join_build(tool_client *c)
{
    joiner *j = (joiner *)c;
    coil_line_receiver_init(&j->lr, &join_ops);
    j->lr.max_length = JOIN_MAX_LINE;
    return &j->lr.protocol;
}

static int join_interrupted(tool_client *c)
{
    (void)c;
    return TOOL_EXIT_OK; /* stopped by SIGINT/SIGTERM: the user left */
}

static const tool_client_ops join_client_ops = {
    .build = join_build,
    .interrupted = join_interrupted,
};

static int join(const char *text, const char *name)
{
    joiner j = {.name = name};
    tool_client_init(&j.c, &join_client_ops, text);
    int status = tool_client_run(&j.c);
    free(j.pending);
    free(j.out.p);
    return status;
}

/* A positive byte count, optionally with a binary suffix: "1048576",
 * "64k", "1M", "1MiB", "2G". Returns 0 or -1. */
static int parse_bytes(const char *text, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text || errno || text[0] == '-')
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10, end++;
        break;
    case 'm':
    case 'M':
        shift = 20, end++;
        break;
    case 'g':
    case 'G':
        shift = 30, end++;
        break;
    }
    if (shift && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0))
        end += strlen(end);
    if (*end || v == 0 || v > (SIZE_MAX >> shift))
        return -1;
    *out = (size_t)(v << shift);
    return 0;
}

static int parse_count(const char *text, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text || *end || errno || text[0] == '-' || v == 0 || v > SIZE_MAX)
        return -1;
    *out = (size_t)v;
    return 0;
}

static int parse_seconds(const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || errno || !(v > 0) || v > 1e9)
        return -1;
    *out = v;
    return 0;
}

/* The serve options into `cfg`; 0, or a usage error's exit status. */
static int serve_options(chat_config *cfg, const char *max_queue,
                         const char *name_timeout, const char *max_unreg,
                         const char *max_unreg_source)
{
    if (max_queue && parse_bytes(max_queue, &cfg->max_queue) != 0)
        return tool_usage_error("--max-queue needs a positive size in bytes "
                                "(e.g. 1048576, 64k, 1M), not '%s'",
                                max_queue);
    if (name_timeout && parse_seconds(name_timeout, &cfg->name_timeout) != 0)
        return tool_usage_error(
            "--name-timeout needs a positive number of seconds, not '%s'", name_timeout);
    if (max_unreg && parse_count(max_unreg, &cfg->max_unregistered) != 0)
        return tool_usage_error("--max-unregistered needs a positive number, not '%s'",
                                max_unreg);
    if (max_unreg_source &&
        parse_count(max_unreg_source, &cfg->max_unregistered_per_source) != 0)
        return tool_usage_error(
            "--max-unregistered-per-address needs a positive number, not '%s'",
            max_unreg_source);
    return 0;
}

int main(int argc, char **argv)
{
    const char *name = NULL, *max_queue = NULL, *name_timeout = NULL, *max_unreg = NULL,
               *max_unreg_source = NULL;
    const tool_option opts[] = {
        {.long_name = "name", .short_name = 'n', .value = &name},
        {.long_name = "max-queue", .value = &max_queue},
        {.long_name = "name-timeout", .value = &name_timeout},
        {.long_name = "max-unregistered", .value = &max_unreg},
        {.long_name = "max-unregistered-per-address", .value = &max_unreg_source},
        {0},
    };
    chat_config cfg = {
        .max_queue = CHAT_DEFAULT_MAX_QUEUE,
        .name_timeout = CHAT_DEFAULT_NAME_TIMEOUT,
        .max_unregistered = CHAT_DEFAULT_MAX_UNREGISTERED,
        .max_unregistered_per_source = CHAT_DEFAULT_MAX_UNREGISTERED_PER_SOURCE,
    };
    tool_init("coil-chat", usage);
    int n = tool_parse_args(argc, argv, opts);
    if (n == TOOL_ARGS_HELP)
        return tool_help();
    if (n < 0)
        return -n;
    if (n == 0)
        return tool_usage_error("missing command: serve or join");
    if (strcmp(argv[0], "serve") == 0) {
        if (n < 2)
            return tool_usage_error("serve: missing ENDPOINT (e.g. tcp:8123)");
        if (name)
            return tool_usage_error("serve: --name is for join");
        int rc =
            serve_options(&cfg, max_queue, name_timeout, max_unreg, max_unreg_source);
        if (rc != 0)
            return rc;
        return serve(n - 1, argv + 1, &cfg);
    }
    if (strcmp(argv[0], "join") == 0) {
        if (n < 2)
            return tool_usage_error("join: missing ENDPOINT (e.g. tcp:127.0.0.1:8123)");
        if (n > 2)
            return tool_usage_error("join: one ENDPOINT only; unexpected '%s'", argv[2]);
        if (!name)
            return tool_usage_error("join: missing --name NAME");
        if (max_queue || name_timeout || max_unreg || max_unreg_source)
            return tool_usage_error("join: --max-queue, --name-timeout and "
                                    "--max-unregistered* are for serve");
        if (name[0] == '\0' || strpbrk(name, "\r\n"))
            return tool_usage_error("join: the name must be non-empty, on one line");
        return join(argv[1], name);
    }
    return tool_usage_error("unknown command '%s' (use serve or join)", argv[0]);
}
