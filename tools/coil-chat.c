/* coil-chat: the chat server of "Twisted Network Programming Essentials"
 * (example 2-5) on any number of endpoints sharing one user table, and an
 * interactive line client for it.
 *
 * The server asks each new connection for a name; a free name is welcomed
 * and announced to everyone registered, a taken one is refused; each later
 * line goes to every other registered user as "<NAME> LINE"; a registered
 * user leaving is announced. Lines end with "\r\n" (a bare "\n" is accepted);
 * a line over the limit (16 KiB) closes that client after telling it why.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <coil/coil.h>

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
    "  -h, --help        this text\n"
    "\n"
    "Server endpoints: tcp:PORT[:interface=ADDR][:backlog=N]\n"
    "                  unix:PATH[:mode=0660][:backlog=N]\n"
    "Client endpoints: tcp:HOST:PORT[:timeout=S]   unix:PATH[:timeout=S]\n"
    "\n"
    "Examples:\n"
    "  coil-chat serve tcp:8123 unix:/tmp/chat.sock\n"
    "  coil-chat join tcp:127.0.0.1:8123 --name alice\n"
    "\n"
    "Exit status: 0 success, 1 failure, 2 bad arguments.\n";

/* ---- the server ------------------------------------------------------------ */

typedef struct chat_server chat_server;

typedef struct chat_user {
    coil_line_receiver lr; /* first: the transport's protocol */
    chat_server *srv;
    char *name; /* NULL until registered */
    size_t name_len;
    int dead; /* destroyed during a broadcast: freed when it ends */
    struct chat_user *prev, *next;
} chat_user;

struct chat_server {
    coil_factory f; /* first */
    coil_reactor *r;
    chat_user *head, *tail; /* every connection, oldest first */
    size_t nconns;
    int broadcasting; /* broadcasts on the stack */
    int have_dead;
};

static chat_user *find_user(chat_server *s, const char *name, size_t len)
{
    for (chat_user *u = s->head; u; u = u->next)
        if (u->name && !u->dead && u->name_len == len && memcmp(u->name, name, len) == 0)
            return u;
    return NULL;
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
    free(u);
}

/* Send `msg` to every registered user but `from`. A user whose connection
 * goes away meanwhile is not freed until the walk is over. */
static void broadcast(chat_server *s, const chat_user *from, const char *msg, size_t len)
{
    s->broadcasting++;
    for (chat_user *u = s->head; u; u = u->next) {
        if (u == from || !u->name || u->dead || !u->lr.protocol.transport)
            continue;
        /* A failed send (the peer is closing) only concerns that peer. */
        (void)coil_line_send(&u->lr, msg, len);
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

/* Broadcast PREFIX NAME MIDDLE LINE SUFFIX, built byte-safely (names and
 * lines may hold any byte but the delimiter). */
static void announce(chat_server *s, const chat_user *from, const char *prefix,
                     const char *name, size_t name_len, const char *middle,
                     const char *line, size_t line_len, const char *suffix)
{
    size_t lp = strlen(prefix), lm = strlen(middle), ls = strlen(suffix);
    size_t len = lp + name_len + lm + line_len + ls;
    char *msg = malloc(len + 1);
    if (!msg) {
        tool_error("out of memory: a message was not delivered");
        return;
    }
    char *p = msg;
    memcpy(p, prefix, lp);
    p += lp;
    memcpy(p, name, name_len);
    p += name_len;
    memcpy(p, middle, lm);
    p += lm;
    if (line_len)
        memcpy(p, line, line_len);
    p += line_len;
    memcpy(p, suffix, ls);
    broadcast(s, from, msg, len);
    free(msg);
}

static void send_text(chat_user *u, const char *text)
{
    (void)coil_line_send(&u->lr, text, strlen(text));
}

static void chat_made(coil_line_receiver *lr)
{
    send_text((chat_user *)lr, "What is your name?");
}

static void handle_register(chat_user *u, const char *name, size_t len)
{
    chat_server *s = u->srv;
    if (len == 0) {
        send_text(u, "A name cannot be empty, please choose another.");
        return;
    }
    if (find_user(s, name, len)) {
        send_text(u, "Name taken, please choose another.");
        return;
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        tool_error("out of memory registering a user");
        coil_transport_lose_connection(u->lr.protocol.transport);
        return;
    }
    memcpy(copy, name, len);
    copy[len] = '\0';
    size_t wl = len + sizeof "Welcome, !";
    char *welcome = malloc(wl);
    if (welcome) {
        memcpy(welcome, "Welcome, ", 9);
        memcpy(welcome + 9, name, len);
        welcome[9 + len] = '!';
        (void)coil_line_send(&u->lr, welcome, len + 10);
        free(welcome);
    }
    announce(s, u, "", name, len, " has joined the channel.", NULL, 0, "");
    u->name = copy;
    u->name_len = len;
}

static void chat_line(coil_line_receiver *lr, const char *line, size_t len)
{
    chat_user *u = (chat_user *)lr;
    if (!u->name) {
        handle_register(u, line, len);
        return;
    }
    announce(u->srv, u, "<", u->name, u->name_len, "> ", line, len, "");
}

static void chat_too_long(coil_line_receiver *lr, const char *partial, size_t len)
{
    char msg[96];
    snprintf(msg, sizeof msg, "Line too long (limit %zu bytes); closing.",
             lr->max_length);
    send_text((chat_user *)lr, msg);
    coil_transport_lose_connection(lr->protocol.transport);
}

static void chat_lost(coil_line_receiver *lr, const coil_failure *reason)
{
    chat_user *u = (chat_user *)lr;
    if (!u->name)
        return;
    /* Unregister first: the name is free again, and the leaver hears
     * nothing of its own leaving. */
    char *name = u->name;
    size_t len = u->name_len;
    u->name = NULL;
    announce(u->srv, u, "", name, len, " has left the channel.", NULL, 0, "");
    free(name);
}

static void chat_destroy(coil_line_receiver *lr)
{
    chat_user *u = (chat_user *)lr;
    chat_server *s = u->srv;
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

static int serve(int n, char **texts)
{
    int status = TOOL_EXIT_FAILURE, nlisteners = 0;
    chat_server s = {.f.ops = &chat_factory_ops};
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
    char nl = '\n';
    int err = tool_write_all(STDOUT_FILENO, line, len);
    if (!err)
        err = tool_write_all(STDOUT_FILENO, &nl, 1);
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
    return status;
}

int main(int argc, char **argv)
{
    const char *name = NULL;
    const tool_option opts[] = {
        {.long_name = "name", .short_name = 'n', .value = &name},
        {0},
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
        return serve(n - 1, argv + 1);
    }
    if (strcmp(argv[0], "join") == 0) {
        if (n < 2)
            return tool_usage_error("join: missing ENDPOINT (e.g. tcp:127.0.0.1:8123)");
        if (n > 2)
            return tool_usage_error("join: one ENDPOINT only; unexpected '%s'", argv[2]);
        if (!name)
            return tool_usage_error("join: missing --name NAME");
        if (name[0] == '\0' || strpbrk(name, "\r\n"))
            return tool_usage_error("join: the name must be non-empty, on one line");
        return join(argv[1], name);
    }
    return tool_usage_error("unknown command '%s' (use serve or join)", argv[0]);
}
