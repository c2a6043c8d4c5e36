/* coil-bench: a load generator for echo servers, written on coil itself.
 *
 *   coil-bench echo    ENDPOINT -c CONNS -s SIZE -d SECONDS
 *   coil-bench stream  ENDPOINT -c CONNS -s SIZE -d SECONDS
 *   coil-bench connect ENDPOINT -c CONCURRENCY -d SECONDS
 *   coil-bench idle    ENDPOINT -c CONNS [-d SECONDS]
 *
 * One reactor, one thread. Every connection is one preallocated struct that
 * is its own protocol and its own factory (build_protocol says nothing about
 * the connector, so one factory per connection is how a connection finds its
 * state). Payloads are windows into one shared pseudo-random pattern, so
 * sending costs no copy and no allocation, and checking the echo is one
 * memcmp; a window's start depends on the connection and the message number,
 * so a server that mixes up connections or messages is caught. Round trips
 * go into a log-bucketed histogram (1/128 relative bucket width, so
 * percentiles are within 0.4%).
 *
 * The measured window starts once every connection is up and the warm-up
 * has passed; rates count what completed inside the window. With
 * --cpu-pid PID the CPU time of that process (the server) is read from
 * /proc at the two edges of the window, so the figures per request and per
 * MB cover exactly the measured work.
 *
 * The last line on stdout is machine-readable:
 *   RESULT mode=echo conns=100 size=64 seconds=5.00 requests=... rps=...
 *          mbps=... p50_us=... p99_us=... errors=0
 * Exit status: 0 success, 1 failure (connect failed, connection lost,
 * echo mismatch), 2 bad arguments.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <coil/coil.h>

#define EXIT_USAGE            2
#define PATTERN_SPAN          4096 /* distinct window starts */
#define MAX_SIZE              (64u * 1024 * 1024)
#define MAX_CONNS             1000000
#define MAX_CONNECTING        256 /* connection attempts in flight at start */
#define STREAM_BURST          (4u * 1024 * 1024) /* bytes per producer turn */
#define SETTLE_SECONDS        3.0
#define HIST_SUB_BITS         7
#define HIST_SUB              (1u << HIST_SUB_BITS)
#define HIST_LINEAR           (2 * HIST_SUB)
#define HIST_BUCKETS          (HIST_LINEAR + (64 - HIST_SUB_BITS - 1) * HIST_SUB)
#define container_of(p, T, m) ((T *)(void *)((char *)(p)-offsetof(T, m)))

static const char usage[] =
    "Usage: coil-bench MODE ENDPOINT [OPTIONS]\n"
    "\n"
    "Modes:\n"
    "  echo     each connection sends one SIZE-byte message, waits for the whole\n"
    "           echo, checks it byte for byte, and repeats (closed loop); reports\n"
    "           requests/s, MB/s echoed and the p50/p99 round trip\n"
    "  stream   each connection writes SIZE-byte chunks as fast as the transport's\n"
    "           backpressure allows and checks the echo; reports MB/s echoed\n"
    "  connect  keeps -c connection attempts in flight; each connects, sends one\n"
    "           byte, waits for its echo and closes; reports connections/s\n"
    "           (over tls: one handshake per connection, full with\n"
    "           tls:...:resume=no, resumed otherwise; RESULT counts them)\n"
    "  idle     opens -c connections and keeps them open, idle; prints\n"
    "           'RESULT mode=idle conns=N' once all are up, then waits for\n"
    "           SIGINT/SIGTERM (or -d seconds when given)\n"
    "\n"
    "ENDPOINT is a client endpoint: tcp:HOST:PORT, unix:PATH,\n"
    "tls:HOST:PORT[:caCerts=CA.pem][:resume=no],\n"
    "ssh:HOST:PORT:user=USER:to=DESTHOST\\:DESTPORT (channels on one SSH session), ...\n"
    "\n"
    "Options:\n"
    "  -c, --connections N   connections (connect: attempts in flight); default 1\n"
    "  -s, --size SIZE       message or chunk size, suffix k/K (1024) or m/M;\n"
    "                        default 64\n"
    "  -d, --duration S      measured seconds; default 5 (idle: until a signal)\n"
    "  -w, --warmup S        seconds run before measuring; default 1\n"
    "      --cpu-pid PID     report the CPU time process PID (the server) used\n"
    "                        during the measured window, per request and per MB\n"
    "  -q, --quiet           print only the RESULT line\n"
    "  -h, --help            this text\n"
    "\n"
    "MB is 10^6 bytes; MB/s counts echoed bytes once. The last line of output is\n"
    "  RESULT mode=... conns=... size=... seconds=... requests=... rps=... mbps=...\n"
    "         p50_us=... p99_us=... errors=...\n"
    "\n"
    "Example:\n"
    "  coil-bench echo tcp:127.0.0.1:8000 -c 100 -s 16k -d 5\n"
    "\n"
    "Exit status: 0 success, 1 failure (connect failed, connection lost, echo\n"
    "mismatch), 2 bad arguments.\n";

typedef enum mode { MODE_ECHO, MODE_STREAM, MODE_CONNECT, MODE_IDLE } mode;
static const char *const mode_names[] = {"echo", "stream", "connect", "idle"};

typedef struct bench bench;

typedef struct conn {
    coil_protocol proto; /* the transport's protocol */
    coil_factory factory;
    coil_producer producer; /* stream mode */
    bench *b;
    int id;
    coil_connector *connector;
    coil_transport *t; /* while up */
    int connecting;    /* an attempt is under way */
    int up;            /* between connection_made and connection_lost */
    int paused;        /* stream: the transport paused us */
    int finished;      /* connect mode: echo seen, closing on purpose */
    int ever_up;       /* came up at least once */
    uint64_t wseq;     /* message or chunk being sent */
    uint64_t rseq;     /* message or chunk being received */
    size_t roff;       /* bytes of it received */
    uint64_t start_ns; /* when the message went out / the attempt began */
} conn;

struct bench {
    mode mode;
    const char *text;
    int nconns;
    size_t size;
    double duration, warmup;
    int quiet;
    long cpu_pid;

    coil_reactor *r;
    coil_endpoint *ep;
    conn *conns;
    unsigned char *pattern; /* size + PATTERN_SPAN bytes */

    int next_to_start; /* initial connections not started yet */
    int connecting, nup;
    int ever_up; /* connections that came up at least once */
    int all_up;
    int pump_queued;

    int measuring;
    int stopping; /* the run is over: closes are expected */
    int errors;
    uint64_t t_start, t_end; /* measured window, ns */

    uint64_t requests; /* completed in the window */
    uint64_t bytes;    /* echoed bytes received in the window */
    uint64_t hist[HIST_BUCKETS];
    uint64_t hist_n;

    double cpu_start, cpu_end;   /* --cpu-pid, seconds */
    uint64_t tls_handshakes;     /* connect over tls: handshakes measured */
    uint64_t tls_resumed;        /* ... of which resumed a session */
    double self_start, self_end; /* our own CPU, seconds */
    int cpu_ok;
};

/* ---- small helpers ----------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void say(const bench *b, const char *fmt, ...) COIL_PRINTF(2, 3);
static void say(const bench *b, const char *fmt, ...)
{
    if (b->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

/* The failure's message and its causes' messages, joined by ": ". */
static void failure_text(const coil_failure *f, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (; f && n + 1 < size; f = coil_failure_cause(f)) {
        int w =
            snprintf(buf + n, size - n, "%s%s", n ? ": " : "", coil_failure_message(f));
        if (w < 0)
            break;
        n += (size_t)w < size - n ? (size_t)w : size - n - 1;
    }
}

static int usage_error(const char *fmt, ...) COIL_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("coil-bench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(try coil-bench --help)\n", stderr);
    return EXIT_USAGE;
}

/* Where conn `id`'s message or chunk `seq` starts in the pattern. */
static size_t window(int id, uint64_t seq)
{
    return (size_t)(((uint64_t)id * 7919u + seq * 131u) % PATTERN_SPAN);
}

/* ---- the histogram (round trips in ns) ------------------------------------------ */

static unsigned hist_index(uint64_t v)
{
    if (v < HIST_LINEAR)
        return (unsigned)v;
    unsigned top = 63u - (unsigned)__builtin_clzll(v); /* >= HIST_SUB_BITS + 1 */
    unsigned shift = top - HIST_SUB_BITS;
    return HIST_LINEAR + (shift - 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

/* The middle of bucket i. */
static double hist_value(unsigned i)
{
    if (i < HIST_LINEAR)
        return i;
    unsigned shift = (i - HIST_LINEAR) / HIST_SUB + 1;
    uint64_t mant = (i - HIST_LINEAR) % HIST_SUB + HIST_SUB;
    return (double)(mant << shift) + (double)(1ull << shift) / 2;
}

static void hist_add(bench *b, uint64_t ns)
{
    b->hist[hist_index(ns)]++;
    b->hist_n++;
}

/* The p-quantile (0 < p <= 1) in ns: the value of rank ceil(p * n). */
static double hist_quantile(const bench *b, double p)
{
    if (b->hist_n == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(p * (double)b->hist_n);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += b->hist[i];
        if (seen >= rank)
            return hist_value(i);
    }
    return hist_value(HIST_BUCKETS - 1);
}

/* ---- CPU time ---------------------------------------------------------------------- */

/* utime + stime of process `pid` in seconds, or -1. */
static double proc_cpu(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields count from
     * the last ')'. utime and stime are fields 14 and 15. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut, st;
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
               &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ---- the run's phases ----------------------------------------------------------------
 */

/* End the measured window (when open): the figures cover up to now. */
static void close_window(bench *b)
{
    if (!b->measuring)
        return;
    b->measuring = 0;
    b->t_end = now_ns();
    b->self_end = self_cpu();
    if (b->cpu_pid > 0)
        b->cpu_end = proc_cpu(b->cpu_pid);
}

static void stop(bench *b)
{
    close_window(b);
    if (!b->stopping) {
        b->stopping = 1;
        coil_reactor_stop(b->r);
    }
}

static void fail(bench *b)
{
    b->errors++;
    stop(b);
}

static int window_end(void *arg)
{
    stop(arg);
    return 0;
}

static int window_start(void *arg)
{
    bench *b = arg;
    if (b->stopping)
        return 0;
    b->requests = b->bytes = 0;
    memset(b->hist, 0, sizeof b->hist);
    b->hist_n = 0;
    if (b->cpu_pid > 0) {
        b->cpu_start = proc_cpu(b->cpu_pid);
        if (b->cpu_start < 0)
            fprintf(stderr, "coil-bench: cannot read the CPU time of process %ld\n",
                    b->cpu_pid);
    }
    b->self_start = self_cpu();
    b->t_start = now_ns();
    b->measuring = 1;
    if (coil_reactor_call_later_forget(b->r, b->duration, window_end, b) != 0) {
        fprintf(stderr, "coil-bench: out of memory\n");
        fail(b);
    }
    return 0;
}

static int idle_end(void *arg)
{
    stop(arg);
    return 0;
}

/* Every connection is up: start the clock. */
static void all_up(bench *b)
{
    b->all_up = 1;
    if (b->mode == MODE_IDLE) {
        printf("RESULT mode=idle conns=%d\n", b->nconns);
        fflush(stdout);
        if (b->duration > 0 &&
            coil_reactor_call_later_forget(b->r, b->duration, idle_end, b) != 0)
            fail(b);
        return;
    }
    say(b, "%d connection%s up; warming up for %.2f s, then measuring %.2f s\n",
        b->nconns, b->nconns == 1 ? "" : "s", b->warmup, b->duration);
    fflush(stdout);
    if (coil_reactor_call_later_forget(b->r, b->warmup, window_start, b) != 0) {
        fprintf(stderr, "coil-bench: out of memory\n");
        fail(b);
    }
}

static void start_connecting(bench *b, conn *c)
{
    coil_failure *err = NULL;
    c->connecting = 1;
    b->connecting++;
    c->start_ns = now_ns();
    if (coil_endpoint_connect(b->r, b->ep, &c->factory, &c->connector, &err) != 0) {
        char text[512];
        failure_text(err, text, sizeof text);
        fprintf(stderr, "coil-bench: connection %d: %s\n", c->id, text);
        coil_failure_free(err);
        if (c->connecting) {
            c->connecting = 0;
            b->connecting--;
        }
        fail(b);
    }
}

/* Start initial connections, at most MAX_CONNECTING at a time, so that
 * thousands of them do not overflow the server's accept queue. */
static int pump(void *arg)
{
    bench *b = arg;
    b->pump_queued = 0;
    while (!b->stopping && b->next_to_start < b->nconns && b->connecting < MAX_CONNECTING)
        start_connecting(b, &b->conns[b->next_to_start++]);
    return 0;
}

static void pump_soon(bench *b)
{
    if (b->pump_queued || b->next_to_start >= b->nconns)
        return;
    if (coil_reactor_call_soon(b->r, pump, b) == 0)
        b->pump_queued = 1;
    else
        fail(b);
}

/* ---- echo -------------------------------------------------------------------------- */

static void echo_send(conn *c)
{
    bench *b = c->b;
    c->start_ns = now_ns();
    int rc = coil_transport_write(c->t, b->pattern + window(c->id, c->wseq), b->size);
    if (rc != 0 && !b->stopping) {
        fprintf(stderr, "coil-bench: connection %d to %s: write failed: %s\n", c->id,
                b->text, coil_strerror(rc));
        fail(b);
    }
}

/* Check `len` echoed bytes against what chunk `c->rseq` holds from
 * `c->roff` on; reports the first wrong byte. */
static int check(conn *c, const unsigned char *data, size_t len)
{
    bench *b = c->b;
    const unsigned char *want = b->pattern + window(c->id, c->rseq) + c->roff;
    if (memcmp(data, want, len) == 0)
        return 0;
    size_t i = 0;
    while (data[i] == want[i])
        i++;
    fprintf(stderr,
            "coil-bench: connection %d to %s: echo mismatch in %s %" PRIu64
            " at byte offset %zu (stream offset %" PRIu64
            "): expected 0x%02x, got 0x%02x\n",
            c->id, b->text, b->mode == MODE_STREAM ? "chunk" : "message", c->rseq,
            c->roff + i, c->rseq * b->size + c->roff + i, want[i], data[i]);
    fail(b);
    return -1;
}

static void echo_data(conn *c, const unsigned char *data, size_t len)
{
    bench *b = c->b;
    if (b->stopping)
        return;
    if (len > b->size - c->roff) {
        fprintf(stderr,
                "coil-bench: connection %d to %s: %zu unexpected bytes after the "
                "%zu-byte echo of message %" PRIu64 "\n",
                c->id, b->text, len - (b->size - c->roff), b->size, c->rseq);
        fail(b);
        return;
    }
    if (check(c, data, len) != 0)
        return;
    c->roff += len;
    if (c->roff < b->size)
        return;
    if (b->measuring) {
        hist_add(b, now_ns() - c->start_ns);
        b->requests++;
        b->bytes += b->size;
    }
    c->roff = 0;
    c->rseq++;
    c->wseq++;
    echo_send(c);
}

/* ---- stream --------------------------------------------------------------------------
 */

static int stream_more(void *arg);

/* Write chunks until the transport pauses us; a burst is bounded so other
 * connections get their turn. */
static void stream_write(conn *c)
{
    bench *b = c->b;
    size_t written = 0;
    while (c->t && !c->paused && !b->stopping) {
        if (written >= STREAM_BURST) {
            if (coil_reactor_call_soon(b->r, stream_more, c) != 0)
                fail(b);
            return;
        }
        int rc = coil_transport_write(c->t, b->pattern + window(c->id, c->wseq), b->size);
        if (rc != 0) {
            if (b->stopping)
                return;
            if (rc == COIL_ECLOSED)
                fprintf(stderr,
                        "coil-bench: connection %d to %s closed early (after %" PRIu64
                        " chunks and %zu bytes of the next were echoed)\n",
                        c->id, b->text, c->rseq, c->roff);
            else
                fprintf(stderr, "coil-bench: connection %d to %s: write failed: %s\n",
                        c->id, b->text, coil_strerror(rc));
            fail(b);
            return;
        }
        c->wseq++;
        written += b->size;
    }
}

static int stream_more(void *arg)
{
    stream_write(arg);
    return 0;
}

static void producer_pause(coil_producer *p)
{
    container_of(p, conn, producer)->paused = 1;
}

static void producer_resume(coil_producer *p)
{
    conn *c = container_of(p, conn, producer);
    c->paused = 0;
    stream_write(c);
}

static void producer_stop(coil_producer *p)
{
    container_of(p, conn, producer)->paused = 1;
}

static const coil_producer_ops stream_producer_ops = {
    .pause_producing = producer_pause,
    .resume_producing = producer_resume,
    .stop_producing = producer_stop,
};

static void stream_data(conn *c, const unsigned char *data, size_t len)
{
    bench *b = c->b;
    if (b->stopping)
        return;
    if (b->measuring)
        b->bytes += len;
    while (len > 0) {
        size_t n = b->size - c->roff < len ? b->size - c->roff : len;
        if (c->rseq >= c->wseq) {
            fprintf(stderr,
                    "coil-bench: connection %d to %s: %zu more bytes echoed than sent\n",
                    c->id, b->text, len);
            fail(b);
            return;
        }
        if (check(c, data, n) != 0)
            return;
        c->roff += n;
        data += n;
        len -= n;
        if (c->roff == b->size) {
            c->roff = 0;
            c->rseq++;
            if (b->measuring)
                b->requests++;
        }
    }
}

/* ---- connect
 * --------------------------------------------------------------------------- */

static int reconnect(void *arg)
{
    conn *c = arg;
    bench *b = c->b;
    if (b->stopping)
        return 0;
    c->connecting = 1;
    b->connecting++;
    c->start_ns = now_ns();
    int rc = coil_connector_connect(c->connector);
    if (rc != 0) {
        fprintf(stderr, "coil-bench: connection %d to %s: cannot connect again: %s\n",
                c->id, b->text, coil_strerror(rc));
        fail(b);
    }
    return 0;
}

static void connect_data(conn *c, const unsigned char *data, size_t len)
{
    bench *b = c->b;
    if (b->stopping || c->finished)
        return;
    if (len != 1 || data[0] != b->pattern[window(c->id, c->wseq)]) {
        fprintf(stderr,
                "coil-bench: connection %d to %s: expected the 1-byte echo 0x%02x, got "
                "%zu bytes starting 0x%02x\n",
                c->id, b->text, b->pattern[window(c->id, c->wseq)], len, data[0]);
        fail(b);
        return;
    }
    if (b->measuring) {
        hist_add(b, now_ns() - c->start_ns);
        b->requests++;
        b->bytes++;
    }
    c->finished = 1;
    c->wseq++;
    coil_transport_lose_connection(c->t);
}

/* ---- the protocol and the factory ---------------------------------------------------
 */

static void proto_made(coil_protocol *p)
{
    conn *c = container_of(p, conn, proto);
    bench *b = c->b;
    c->t = p->transport;
    c->up = 1;
    c->roff = 0;
    c->finished = 0;
    b->nup++;
    if (c->connecting) {
        c->connecting = 0;
        b->connecting--;
    }
    if (!c->ever_up) {
        c->ever_up = 1;
        b->ever_up++;
        pump_soon(b);
        if (b->ever_up == b->nconns)
            all_up(b);
    }
    if (b->stopping)
        return;
    switch (b->mode) {
    case MODE_ECHO:
        echo_send(c);
        break;
    case MODE_STREAM:
        c->paused = 0;
        if (coil_transport_register_producer(c->t, &c->producer, 1) != 0) {
            fprintf(stderr, "coil-bench: connection %d: cannot register a producer\n",
                    c->id);
            fail(b);
            return;
        }
        stream_write(c);
        break;
    case MODE_CONNECT: {
        coil_transport_info info;
        if (b->measuring && coil_transport_info_get(c->t, &info) == 0 &&
            info.tls_version) {
            b->tls_handshakes++;
            b->tls_resumed += info.tls_resumed != 0;
        }
        int rc = coil_transport_write(c->t, b->pattern + window(c->id, c->wseq), 1);
        if (rc != 0) {
            fprintf(stderr, "coil-bench: connection %d to %s: write failed: %s\n", c->id,
                    b->text, coil_strerror(rc));
            fail(b);
        }
        break;
    }
    case MODE_IDLE:
        break;
    }
}

static void proto_data(coil_protocol *p, const void *data, size_t len)
{
    conn *c = container_of(p, conn, proto);
    switch (c->b->mode) {
    case MODE_ECHO:
        echo_data(c, data, len);
        break;
    case MODE_STREAM:
        stream_data(c, data, len);
        break;
    case MODE_CONNECT:
        connect_data(c, data, len);
        break;
    case MODE_IDLE:
        if (!c->b->stopping) {
            fprintf(stderr,
                    "coil-bench: connection %d to %s: %zu bytes on an idle connection\n",
                    c->id, c->b->text, len);
            fail(c->b);
        }
        break;
    }
}

static void proto_lost(coil_protocol *p, const coil_failure *reason)
{
    conn *c = container_of(p, conn, proto);
    bench *b = c->b;
    c->t = NULL;
    c->up = 0;
    c->paused = 1;
    b->nup--;
    if (b->stopping || c->finished)
        return;
    char text[512];
    failure_text(reason, text, sizeof text);
    if (b->mode == MODE_ECHO || b->mode == MODE_STREAM)
        fprintf(stderr,
                "coil-bench: connection %d to %s lost early (after %" PRIu64
                " %s and %zu bytes of the next): %s\n",
                c->id, b->text, c->rseq, b->mode == MODE_ECHO ? "messages" : "chunks",
                c->roff, text);
    else
        fprintf(stderr, "coil-bench: connection %d to %s lost early: %s\n", c->id,
                b->text, text);
    fail(b);
}

static void proto_destroy(coil_protocol *p)
{
    (void)p; /* the connection struct belongs to the bench */
}

static const coil_protocol_ops conn_proto_ops = {
    .connection_made = proto_made,
    .data_received = proto_data,
    .connection_lost = proto_lost,
    .destroy = proto_destroy,
};

static coil_protocol *factory_build(coil_factory *f, const coil_address *peer)
{
    (void)peer;
    conn *c = container_of(f, conn, factory);
    if (c->up)
        return NULL;
    c->proto.ops = &conn_proto_ops;
    c->proto.transport = NULL;
    return &c->proto;
}

static void factory_failed(coil_factory *f, coil_connector *k, const coil_failure *reason)
{
    (void)k;
    conn *c = container_of(f, conn, factory);
    bench *b = c->b;
    if (c->connecting) {
        c->connecting = 0;
        b->connecting--;
    }
    if (b->stopping)
        return;
    char text[512];
    failure_text(reason, text, sizeof text);
    fprintf(stderr, "coil-bench: connection %d to %s failed: %s\n", c->id, b->text, text);
    fail(b);
}

static void factory_lost(coil_factory *f, coil_connector *k, const coil_failure *reason)
{
    (void)k;
    (void)reason;
    conn *c = container_of(f, conn, factory);
    bench *b = c->b;
    if (b->mode == MODE_CONNECT && !b->stopping && c->finished &&
        coil_reactor_call_soon(b->r, reconnect, c) != 0)
        fail(b);
}

static const coil_factory_ops conn_factory_ops = {
    .build_protocol = factory_build,
    .connection_failed = factory_failed,
    .connection_lost = factory_lost,
};

/* ---- arguments ------------------------------------------------------------------------
 */

static int parse_count(const char *opt, const char *s, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v <= 0 || v > max)
        return usage_error("%s needs a positive number up to %ld, got '%s'", opt, max, s);
    *out = v;
    return 0;
}

static int parse_seconds(const char *opt, const char *s, int zero_ok, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0 || (!zero_ok && v == 0) ||
        v > 1e6)
        return usage_error("%s needs a %s number of seconds, got '%s'", opt,
                           zero_ok ? "non-negative" : "positive", s);
    *out = v;
    return 0;
}

static int parse_size(const char *opt, const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!errno && end != s && s[0] != '-') {
        unsigned long long mult = 1;
        if (*end == 'k' || *end == 'K')
            mult = 1024, end++;
        else if (*end == 'm' || *end == 'M')
            mult = 1024 * 1024, end++;
        if (!*end && v > 0 && v <= MAX_SIZE / mult) {
            *out = (size_t)(v * mult);
            return 0;
        }
    }
    return usage_error("%s needs a positive size up to 64M (suffix k or m allowed), "
                       "got '%s'",
                       opt, s);
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(bench *b, int argc, char **argv)
{
    const char *pos[2];
    int npos = 0, have_d = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (npos == 2)
                return usage_error("unexpected argument '%s'", a);
            pos[npos++] = a;
            continue;
        }
        if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            b->quiet = 1;
            continue;
        }
        /* Options with a value: -c N, --connections N, --connections=N. */
        static const struct {
            const char *s, *l;
        } vopts[] = {{"-c", "--connections"},
                     {"-s", "--size"},
                     {"-d", "--duration"},
                     {"-w", "--warmup"},
                     {NULL, "--cpu-pid"}};
        const char *val = NULL, *name = NULL;
        int which = -1;
        for (int k = 0; k < (int)(sizeof vopts / sizeof vopts[0]); k++) {
            size_t ll = strlen(vopts[k].l);
            if ((vopts[k].s && strcmp(a, vopts[k].s) == 0) ||
                strcmp(a, vopts[k].l) == 0) {
                if (i + 1 >= argc)
                    return usage_error("%s needs a value", a);
                which = k, name = a, val = argv[++i];
                break;
            }
            if (strncmp(a, vopts[k].l, ll) == 0 && a[ll] == '=') {
                which = k, name = vopts[k].l, val = a + ll + 1;
                break;
            }
            if (vopts[k].s && strncmp(a, vopts[k].s, 2) == 0 && a[1] != '-' && a[2]) {
                which = k, name = vopts[k].s, val = a + 2; /* -c100 */
                break;
            }
        }
        long n;
        int rc = 0;
        switch (which) {
        case 0:
            if ((rc = parse_count(name, val, MAX_CONNS, &n)) == 0)
                b->nconns = (int)n;
            break;
        case 1:
            rc = parse_size(name, val, &b->size);
            break;
        case 2:
            rc = parse_seconds(name, val, 0, &b->duration);
            have_d = 1;
            break;
        case 3:
            rc = parse_seconds(name, val, 1, &b->warmup);
            break;
        case 4:
            if ((rc = parse_count(name, val, 1L << 30, &n)) == 0)
                b->cpu_pid = n;
            break;
        default:
            return usage_error("unknown option '%s'", a);
        }
        if (rc)
            return rc;
    }
    if (npos == 0)
        return usage_error("which mode? (echo, stream, connect or idle)");
    int m;
    for (m = 0; m < 4 && strcmp(pos[0], mode_names[m]) != 0; m++)
        ;
    if (m == 4)
        return usage_error("unknown mode '%s' (use echo, stream, connect or idle)",
                           pos[0]);
    b->mode = (mode)m;
    if (npos < 2)
        return usage_error("%s needs an ENDPOINT (e.g. tcp:127.0.0.1:8000)", pos[0]);
    b->text = pos[1];
    if (b->mode == MODE_IDLE && !have_d)
        b->duration = 0;
    if (b->mode == MODE_CONNECT || b->mode == MODE_IDLE)
        b->size = 1;
    if (b->cpu_pid > 0 && proc_cpu(b->cpu_pid) < 0)
        return usage_error("--cpu-pid: cannot read /proc/%ld/stat", b->cpu_pid);
    return -1;
}

/* ---- report
 * ------------------------------------------------------------------------------ */

static void report(bench *b)
{
    double secs = b->t_end > b->t_start ? (double)(b->t_end - b->t_start) / 1e9 : 0;
    double rps = secs > 0 ? (double)b->requests / secs : 0;
    double mbps = secs > 0 ? (double)b->bytes / secs / 1e6 : 0;
    double p50 = hist_quantile(b, 0.50) / 1e3, p99 = hist_quantile(b, 0.99) / 1e3;
    double self = b->self_end - b->self_start;
    double server = -1;
    if (b->cpu_pid > 0 && b->cpu_start >= 0 && b->cpu_end >= 0)
        server = b->cpu_end - b->cpu_start;

    const char *unit = b->mode == MODE_CONNECT ? "connections" : "requests";
    if (b->mode == MODE_STREAM)
        unit = "chunks";
    if (b->t_start == 0)
        goto result; /* failed before measuring: the RESULT line says so */
    say(b, "%s %s, %d connection%s, size %zu, %.2f s measured\n", mode_names[b->mode],
        b->text, b->nconns, b->nconns == 1 ? "" : "s", b->size, secs);
    say(b, "  %" PRIu64 " %s, %.1f %s/s, %.2f MB/s echoed\n", b->requests, unit, rps,
        unit, mbps);
    if (b->mode != MODE_STREAM)
        say(b, "  round trip%s: p50 %.0f us, p99 %.0f us (%" PRIu64 " samples)\n",
            b->mode == MODE_CONNECT ? " (connect, 1 byte, echo)" : "", p50, p99,
            b->hist_n);
    say(b, "  coil-bench CPU: %.0f%% of one core\n", secs > 0 ? 100 * self / secs : 0);
    if (server >= 0)
        say(b,
            "  server (pid %ld) CPU: %.0f%% of one core, %.2f us per %s, %.0f us "
            "per MB\n",
            b->cpu_pid, secs > 0 ? 100 * server / secs : 0,
            b->requests ? server * 1e6 / (double)b->requests : 0,
            b->mode == MODE_CONNECT ? "connection" : "request",
            b->bytes ? server * 1e6 / ((double)b->bytes / 1e6) : 0);
result:
    printf("RESULT mode=%s conns=%d size=%zu seconds=%.2f requests=%" PRIu64
           " rps=%.1f mbps=%.2f bytes=%" PRIu64 " p50_us=%.0f p99_us=%.0f"
           " client_cpu_s=%.3f",
           mode_names[b->mode], b->nconns, b->size, secs, b->requests, rps, mbps,
           b->bytes, p50, p99, self);
    if (server >= 0)
        printf(" server_cpu_s=%.3f", server);
    if (b->tls_handshakes)
        printf(" tls_handshakes=%" PRIu64 " tls_resumed=%" PRIu64, b->tls_handshakes,
               b->tls_resumed);
    printf(" errors=%d\n", b->errors);
}

/* ---- main
 * ---------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static bench bb; /* the histogram is large: keep it off the stack */
    bench *b = &bb;
    b->nconns = 1;
    b->size = 64;
    b->duration = 5;
    b->warmup = 1;
    int rc = parse_args(b, argc, argv);
    if (rc >= 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);

    coil_failure *err = NULL;
    if (coil_endpoint_client(b->text, &b->ep, &err) != 0) {
        char text[512];
        failure_text(err, text, sizeof text);
        coil_failure_free(err);
        return usage_error("%s", text);
    }

    rc = 1;
    b->pattern = malloc(b->size + PATTERN_SPAN);
    b->conns = calloc((size_t)b->nconns, sizeof *b->conns);
    if (!b->pattern || !b->conns) {
        fprintf(stderr, "coil-bench: out of memory\n");
        goto out;
    }
    /* xorshift64: deterministic and without short periods, so a byte out of
     * place never matches by accident of a repeating pattern. */
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < b->size + PATTERN_SPAN; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b->pattern[i] = (unsigned char)(x >> 24);
    }

    coil_reactor_options ro = {.handle_signals = 1};
    if (coil_reactor_new(&b->r, &ro) != 0) {
        fprintf(stderr, "coil-bench: cannot create a reactor\n");
        goto out;
    }
    for (int i = 0; i < b->nconns; i++) {
        conn *c = &b->conns[i];
        c->b = b;
        c->id = i;
        c->factory.ops = &conn_factory_ops;
        c->producer.ops = &stream_producer_ops;
    }
    say(b, "coil-bench %s %s: %d connection%s", mode_names[b->mode], b->text, b->nconns,
        b->nconns == 1 ? "" : "s");
    if (b->mode == MODE_ECHO || b->mode == MODE_STREAM)
        say(b, ", %zu-byte %s", b->size, b->mode == MODE_ECHO ? "messages" : "chunks");
    say(b, " (reactor %s)\n", coil_reactor_backend_name(b->r));
    pump(b);
    if (!b->stopping && coil_reactor_run(b->r) != 0) {
        fprintf(stderr, "coil-bench: the reactor failed to run\n");
        b->errors++;
    }
    if (!b->stopping) {
        /* Stopped by a signal. */
        if (b->mode != MODE_IDLE) {
            fprintf(stderr, "coil-bench: interrupted\n");
            b->errors++;
        }
        b->stopping = 1;
    }
    close_window(b);

    /* Close everything and let the closes finish. A stream's echo is not
     * read any more, so its queue may never drain: abort those. */
    for (int i = 0; i < b->nconns; i++) {
        conn *c = &b->conns[i];
        if (c->t) {
            if (b->mode == MODE_STREAM || b->errors)
                coil_transport_abort_connection(c->t);
            else
                coil_transport_lose_connection(c->t);
        }
        if (c->connecting && c->connector)
            coil_connector_stop_connecting(c->connector);
    }
    /* Let the closes finish; stragglers (a server that never closes) are
     * aborted. */
    coil_reactor_shutdown(b->r, SETTLE_SECONDS);

    if (b->mode != MODE_IDLE)
        report(b);
    else if (!b->all_up)
        printf("RESULT mode=idle conns=%d up=%d errors=%d\n", b->nconns, b->nup,
               b->errors);
    rc = b->errors ? 1 : 0;
    if (b->mode != MODE_IDLE && b->requests == 0 && !b->errors) {
        fprintf(stderr, "coil-bench: nothing completed in the measured window\n");
        rc = 1;
    }

out:
    if (b->conns)
        for (int i = 0; i < b->nconns; i++)
            coil_connector_free(b->conns[i].connector);
    /* Timers and queued calls that point at the bench go with the reactor. */
    coil_reactor_free(b->r);
    coil_endpoint_free(b->ep);
    free(b->conns);
    free(b->pattern);
    if (fflush(stdout) != 0)
        rc = 1;
    return rc;
}
